/* pktio/xdp_prog: the AF_XDP port's XDP program, run by the kernel on frames built here
 * (BPF_PROG_TEST_RUN: no interface, no socket). The XSKMAP stays empty, so a frame the program
 * sends to the socket comes back XDP_PASS (the map's fallback); the DEVMAP holds the loopback
 * interface, so a frame it forwards to the peer comes back XDP_REDIRECT. Needs what loading a
 * BPF program needs (root, or CAP_BPF and CAP_NET_ADMIN): skipped without it, and when the
 * AF_XDP backend is not in the build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef MQO_HAVE_AFXDP
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "pktio/xdp_prog.h"

#define BROKER 0x020012c6u /* 198.18.0.2 in network order (as its bytes lie in memory) */
#define CLIENT 0x010012c6u /* 198.18.0.1 */
#define PORT 1883

static int xsk_map = -1, dev_map = -1;

/* The maps, once: -1 when this process may not make them (the tests skip). */
static int maps(void)
{
    if (xsk_map >= 0)
        return 0;
    xsk_map = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "t_xsks", 4, 4, 1, NULL);
    dev_map = bpf_map_create(BPF_MAP_TYPE_DEVMAP, "t_peer", 4, 4, 1, NULL);
    unsigned key = 0, lo = if_nametoindex("lo");
    if (xsk_map < 0 || dev_map < 0 || !lo || bpf_map_update_elem(dev_map, &key, &lo, 0))
        return -1;
    return 0;
}

struct frame {
    uint8_t b[128];
    uint32_t len;
};

/* An Ethernet frame with the given tags (TPIDs, 0-ended) and EtherType; returns the offset of
 * what follows. */
static uint32_t eth(struct frame *f, const uint16_t *tags, uint16_t type)
{
    memset(f, 0, sizeof *f);
    memset(f->b, 0x02, 12);
    uint32_t o = 12;
    for (; tags && *tags; tags++, o += 4) {
        f->b[o] = (uint8_t)(*tags >> 8);
        f->b[o + 1] = (uint8_t)*tags;
        f->b[o + 3] = 7; /* TCI */
    }
    f->b[o] = (uint8_t)(type >> 8);
    f->b[o + 1] = (uint8_t)type;
    f->len = o + 2 + 46;
    return o + 2;
}

struct ip {
    uint32_t src, dst;
    uint8_t proto, vihl;
    uint16_t frag;       /* host order: flags and offset */
    uint16_t sport, dport;
};

static void ipv4(struct frame *f, const uint16_t *tags, const struct ip *ip)
{
    uint32_t l3 = eth(f, tags, 0x0800);
    uint8_t *h = f->b + l3;
    h[0] = ip->vihl ? ip->vihl : 0x45;
    h[6] = (uint8_t)(ip->frag >> 8);
    h[7] = (uint8_t)ip->frag;
    h[8] = 64;
    h[9] = ip->proto ? ip->proto : 6;
    memcpy(h + 12, &ip->src, 4);
    memcpy(h + 16, &ip->dst, 4);
    uint8_t *l4 = h + (h[0] & 15) * 4;
    l4[0] = (uint8_t)(ip->sport >> 8);
    l4[1] = (uint8_t)ip->sport;
    l4[2] = (uint8_t)(ip->dport >> 8);
    l4[3] = (uint8_t)ip->dport;
    f->len = l3 + 60;
}

/* What the program says about the frame: XDP_PASS (to the socket here), XDP_REDIRECT (to the
 * peer), or -1 when the run failed. */
static int verdict(int prog, const struct frame *f)
{
    uint8_t out[256];
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->b, .data_size_in = f->len, .data_out = out,
                .data_size_out = sizeof out, .repeat = 1);
    if (bpf_prog_test_run_opts(prog, &o))
        return -1;
    return (int)o.retval;
}

/* The filter of port a (clients: toward the broker) or port b (its host: from it). */
static int load(int match_dst, int with_peer)
{
    struct mqo_xdp_filter flt = {.ip = BROKER, .port = htons(PORT), .match_dst = match_dst};
    char log[4096];
    int fd = mqo_xdp_prog_load(&flt, xsk_map, with_peer ? dev_map : -1, log, sizeof log);
    if (fd < 0)
        fail_msg("load: %s: %s", strerror(-fd), log);
    return fd;
}

#define SOCKET XDP_PASS
#define PEER XDP_REDIRECT

static void test_client_port(void **s)
{
    if (maps())
        skip();
    int prog = load(1, 1);
    struct frame f;
    static const uint16_t q[] = {0x8100, 0}, qq[] = {0x88a8, 0x8100, 0},
                          qqq[] = {0x88a8, 0x8100, 0x8100, 0}, old[] = {0x9100, 0};
    struct ip to = {.src = CLIENT, .dst = BROKER, .sport = 40000, .dport = PORT};

    ipv4(&f, NULL, &to);
    assert_int_equal(verdict(prog, &f), SOCKET);   /* the broker's TCP */
    ipv4(&f, q, &to);
    assert_int_equal(verdict(prog, &f), SOCKET);   /* behind an 802.1Q tag */
    ipv4(&f, qq, &to);
    assert_int_equal(verdict(prog, &f), SOCKET);   /* 802.1ad + 802.1Q */
    ipv4(&f, old, &to);
    assert_int_equal(verdict(prog, &f), SOCKET);   /* the old QinQ TPID */
    ipv4(&f, qqq, &to);
    assert_int_equal(verdict(prog, &f), PEER);     /* three tags: monitor mode parses two */

    struct ip x = to;
    x.dport = 1884;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);     /* another port of the broker's host */
    x = to;
    x.sport = PORT;
    x.dport = 40000;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);     /* the broker's port as the source: not ours */
    x = to;
    x.proto = 17;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);     /* UDP */
    x = to;
    x.dst = CLIENT;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);     /* another host */
    x = to;
    x.src = BROKER;
    x.dst = CLIENT;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);     /* from the broker: port b's */

    x = to;
    x.dport = 0x1234;    /* a later fragment: bytes of the payload where the ports were */
    x.frag = 0x00b9;     /* offset 185 x 8 */
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), SOCKET);
    x.frag = 0x2000;     /* the first: MF */
    ipv4(&f, q, &x);
    assert_int_equal(verdict(prog, &f), SOCKET);
    x = to;
    x.dport = 1884;
    x.frag = 0x4000;     /* DF alone is no fragment */
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);
    x = to;
    x.vihl = 0x46;       /* options: the port is further on; the loop reads it */
    x.dport = 1884;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), SOCKET);

    eth(&f, NULL, 0x0806);
    assert_int_equal(verdict(prog, &f), PEER);     /* ARP */
    eth(&f, q, 0x86dd);
    assert_int_equal(verdict(prog, &f), PEER);     /* IPv6 behind a tag */

    ipv4(&f, NULL, &to);
    f.len = 14 + 20 + 2;                           /* the ports cut off */
    assert_int_equal(verdict(prog, &f), SOCKET);
    f.len = 14 + 10;                               /* the address cut off */
    assert_int_equal(verdict(prog, &f), SOCKET);
    eth(&f, q, 0x0800);
    f.len = 16;                                    /* the tag cut off */
    assert_int_equal(verdict(prog, &f), SOCKET);
    close(prog);
}

static void test_broker_port(void **s)
{
    if (maps())
        skip();
    int prog = load(0, 1);
    struct frame f;
    struct ip from = {.src = BROKER, .dst = CLIENT, .sport = PORT, .dport = 40000};
    ipv4(&f, NULL, &from);
    assert_int_equal(verdict(prog, &f), SOCKET);
    struct ip x = from;
    x.sport = 22;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);
    x = from;
    x.src = CLIENT;
    x.dst = BROKER;
    x.sport = 40000;
    x.dport = PORT;
    ipv4(&f, NULL, &x);
    assert_int_equal(verdict(prog, &f), PEER);     /* toward the broker: port a's */
    close(prog);
}

/* No peer (not a bump port): the rest goes to the kernel. No filter: everything to the socket. */
static void test_no_peer_no_filter(void **s)
{
    if (maps())
        skip();
    int prog = load(1, 0);
    struct frame f;
    struct ip to = {.src = CLIENT, .dst = BROKER, .sport = 40000, .dport = 22};
    ipv4(&f, NULL, &to);
    assert_int_equal(verdict(prog, &f), XDP_PASS);
    close(prog);
    struct mqo_xdp_filter all = {0};
    prog = mqo_xdp_prog_load(&all, xsk_map, dev_map, NULL, 0);
    assert_true(prog >= 0);
    eth(&f, NULL, 0x0806);
    assert_int_equal(verdict(prog, &f), SOCKET);
    close(prog);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_port),
        cmocka_unit_test(test_broker_port),
        cmocka_unit_test(test_no_peer_no_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
static void test_not_built(void **s) { skip(); }

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_not_built)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
