/* pktio/afpacket: frames the caller builds (mqo_frame_alloc, mqo_frame_alloc_len) on a port
 * over the loopback interface of a network namespace of the test's own (unshare): what is
 * sent comes back, byte for byte, and a short frame gets a small buffer. Every test runs with
 * both ways of receiving: the socket's queue (the default) and the TPACKET_V2 ring
 * (MQO_PORT_RX_RING). Needs root (or
 * CAP_SYS_ADMIN and CAP_NET_RAW): skipped without it. Under ASan a frame written past a small
 * buffer is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pktio/pktio.h"

static int netns_ok = -1;

/* A network namespace of our own with lo up; 0, or -1 when this process may not. */
static int own_netns(void)
{
    if (netns_ok >= 0)
        return netns_ok ? 0 : -1;
    netns_ok = 0;
    if (unshare(CLONE_NEWNET))
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
        return -1;
    ifr.ifr_flags |= IFF_UP;
    int r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    close(fd);
    if (r)
        return -1;
    netns_ok = 1;
    return 0;
}

static unsigned port_flags; /* of the tests running now: 0 or MQO_PORT_RX_RING */

static int rx_queue(void **s)
{
    (void)s;
    port_flags = 0;
    return 0;
}

static int rx_ring(void **s)
{
    (void)s;
    port_flags = MQO_PORT_RX_RING;
    return 0;
}

static struct mqo_port *open_lo(void)
{
    struct mqo_port_cfg cfg = {.ifname = "lo", .backend = MQO_PKTIO_AFPACKET, .ring_frames = 256,
                               .flags = port_flags};
    struct mqo_port *p = NULL;
    char err[256];
    int r = mqo_port_open(&cfg, &p, err, sizeof err);
    if (r)
        fprintf(stderr, "open lo: %s\n", err);
    assert_int_equal(r, 0);
    /* the port says how it receives */
    const char *how = port_flags & MQO_PORT_RX_RING ? "TPACKET_V2 ring" : "socket queue";
    assert_non_null(strstr(mqo_port_info(p)->detail, how));
    return p;
}

/* Ethernet to and from 00:00:00:00:00:00 (lo takes anything), an experimental EtherType, then
 * len - 14 bytes of tag + i. */
static void frame_of(struct mqo_rawframe *f, uint8_t tag, uint32_t len)
{
    memset(f->data, 0, 12);
    f->data[12] = 0x88;
    f->data[13] = 0xb5;
    for (uint32_t i = 14; i < len; i++)
        f->data[i] = (uint8_t)(tag + i);
    f->len = len;
}

/* Receives what lo loops back: exactly n frames into out (within a second). */
static void receive_n(struct mqo_port *p, struct mqo_rawframe **out, int n)
{
    int got = 0;
    for (int tries = 0; got < n && tries < 1000; tries++) {
        struct mqo_rawframe *v[64];
        int r = mqo_port_rx_burst(p, v, 64);
        assert_true(r >= 0);
        assert_true(got + r <= n);
        for (int i = 0; i < r; i++)
            out[got++] = v[i];
        if (got < n)
            usleep(1000);
    }
    assert_int_equal(got, n);
}

/* n frames back, each checked against frame_of(tags[k], lens[k]). */
static void expect_back(struct mqo_port *p, const uint8_t *tags, const uint32_t *lens, int n)
{
    struct mqo_rawframe *v[64];
    assert_true(n <= 64);
    receive_n(p, v, n);
    for (int k = 0; k < n; k++) {
        assert_int_equal(v[k]->len, lens[k]);
        for (uint32_t b = 14; b < lens[k]; b++)
            if (v[k]->data[b] != (uint8_t)(tags[k] + b))
                fail_msg("frame %d byte %u: %u, want %u", k, b, v[k]->data[b],
                         (uint8_t)(tags[k] + b));
        mqo_frame_free(v[k]);
    }
}

/* A short frame gets a small buffer, a longer one the port's full one; both travel whole. */
static void test_alloc_len(void **s)
{
    (void)s;
    if (own_netns()) {
        skip();
        return;
    }
    struct mqo_port *p = open_lo();
    uint32_t cap = mqo_port_info(p)->frame_cap;
    assert_int_equal(cap, MQO_FRAME_MAX);
    const uint32_t lens[] = {60, 140, 448, 449, 1514, MQO_FRAME_MAX};
    const uint8_t tags[] = {1, 2, 3, 4, 5, 6};
    struct mqo_rawframe *v[6];
    for (int k = 0; k < 6; k++) {
        v[k] = mqo_frame_alloc_len(p, lens[k]);
        assert_non_null(v[k]);
        assert_true(v[k]->cap >= lens[k]);
        if (lens[k] <= 448)
            assert_int_equal(v[k]->cap, 448); /* not a jumbo frame's buffer */
        else
            assert_int_equal(v[k]->cap, cap);
        frame_of(v[k], tags[k], lens[k]);
    }
    /* larger than any frame: the full buffer, as mqo_frame_alloc gives */
    struct mqo_rawframe *big = mqo_frame_alloc_len(p, UINT32_MAX);
    assert_non_null(big);
    assert_int_equal(big->cap, cap);
    mqo_frame_free(big);
    assert_int_equal(mqo_port_tx_burst(p, v, 6), 6);
    expect_back(p, tags, lens, 6);
    mqo_port_close(p);
}

/* Many short frames in flight at once, freed and taken again, mixed with full-size ones: every
 * frame keeps its own bytes (a buffer is never given to two frames). */
static void test_reuse(void **s)
{
    (void)s;
    if (own_netns()) {
        skip();
        return;
    }
    struct mqo_port *p = open_lo();
    enum { N = 48 };
    for (int round = 0; round < 4; round++) {
        struct mqo_rawframe *v[N];
        uint8_t tags[N];
        uint32_t lens[N];
        for (int k = 0; k < N; k++) {
            lens[k] = (k % 3 == 2) ? 1000 + (uint32_t)k : 64 + (uint32_t)k * 8;
            tags[k] = (uint8_t)(round * N + k);
            v[k] = (k % 5 == 4) ? mqo_frame_alloc(p) : mqo_frame_alloc_len(p, lens[k]);
            assert_non_null(v[k]);
            assert_true(v[k]->cap >= lens[k]);
        }
        /* every buffer distinct while all are held */
        for (int a = 0; a < N; a++)
            for (int b = a + 1; b < N; b++)
                assert_ptr_not_equal(v[a]->data, v[b]->data);
        for (int k = 0; k < N; k++)
            frame_of(v[k], tags[k], lens[k]);
        if (round % 2) { /* freed unsent: back to their pools */
            for (int k = 0; k < N; k++)
                mqo_frame_free(v[k]);
            continue;
        }
        assert_int_equal(mqo_port_tx_burst(p, v, N), N);
        expect_back(p, tags, lens, N);
    }
    mqo_port_close(p);
}

/* An IPv4 TCP frame of len bytes (a TSO super-segment when longer than one buffer: seg_size
 * 1448) toward an address nothing in the namespace has, its payload tag + i. */
static void tcp_frame_of(uint8_t *b, uint8_t tag, uint32_t len)
{
    static const uint8_t head[54] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00,  /* Ethernet, IPv4 */
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0,        /* IPv4: DF, TTL 64, TCP */
        198, 18, 0, 98, 198, 18, 0, 99,                   /* 198.18.0.98 -> 198.18.0.99 */
        0x30, 0x39, 0x07, 0x5b, 0, 0, 0, 1, 0, 0, 0, 1,   /* ports 12345 -> 1883, seq, ack */
        0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0};              /* 20 bytes, ACK PSH, window */
    memcpy(b, head, sizeof head);
    b[16] = (uint8_t)((len - 14) >> 8);
    b[17] = (uint8_t)(len - 14);
    for (uint32_t i = sizeof head; i < len; i++)
        b[i] = (uint8_t)(tag + i);
}

/* Frames longer than MQO_FRAME_MAX (a super-segment the kernel hands over whole: here lo's,
 * which cuts nothing) come back whole in a large buffer: the queue has the kernel go on into
 * it, the ring reads them from the socket past the slot. Shorter ones around them keep their
 * order. */
static void test_large(void **s)
{
    (void)s;
    if (own_netns()) {
        skip();
        return;
    }
    struct mqo_port *p = open_lo();
    assert_true(mqo_port_info(p)->caps & MQO_PORT_CAP_LARGE);
    enum { N = 5 };
    const uint32_t lens[N] = {MQO_FRAME_MAX + 54, 20000, 60, 40054, 1514};
    static uint8_t want[N][40054];
    struct mqo_rawframe *v[N];
    for (int k = 0; k < N; k++) {
        tcp_frame_of(want[k], (uint8_t)(7 + k), lens[k]);
        v[k] = mqo_frame_alloc(p);
        assert_non_null(v[k]);
        uint32_t first = lens[k] < 1000 ? lens[k] : 1000;
        memcpy(v[k]->data, want[k], first);
        v[k]->len = first;
        if (lens[k] > MQO_FRAME_MAX) {
            v[k]->flags |= MQO_FRAME_TSO;
            v[k]->seg_size = 1448;
        }
        if (lens[k] > first)
            assert_int_equal(mqo_frame_append(v[k], want[k] + first, lens[k] - first), 0);
        assert_int_equal(v[k]->len, lens[k]);
    }
    assert_int_equal(mqo_port_tx_burst(p, v, N), N);
    struct mqo_rawframe *r[N];
    receive_n(p, r, N);
    for (int k = 0; k < N; k++) {
        assert_int_equal(r[k]->len, lens[k]);
        /* all but the TCP checksum, which the sender's offload convention rewrites */
        assert_memory_equal(r[k]->data, want[k], 50);
        assert_memory_equal(r[k]->data + 52, want[k] + 52, lens[k] - 52);
        if (lens[k] > MQO_FRAME_MAX)
            assert_true(r[k]->flags & MQO_FRAME_TSO);
        mqo_frame_free(r[k]);
    }
    mqo_port_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_alloc_len, rx_queue),
        cmocka_unit_test_setup(test_reuse, rx_queue),
        cmocka_unit_test_setup(test_large, rx_queue),
        cmocka_unit_test_setup(test_alloc_len, rx_ring),
        cmocka_unit_test_setup(test_reuse, rx_ring),
        cmocka_unit_test_setup(test_large, rx_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
