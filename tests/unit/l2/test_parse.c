/* l2/parse: header parsers and the Internet checksum, the fast code against naive versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2/parse.h"

/* ---- naive references -------------------------------------------------------------------- */

/* RFC 1071 as written: big-endian 16-bit words, odd byte padded, end-around carry. Returns the
 * folded (not complemented) sum in host order. */
static uint16_t naive_sum(const uint8_t *p, size_t len, uint32_t init_host)
{
    uint64_t s = init_host;
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* A memory-order 16-bit value in host order (the bytes as a big-endian number). */
static uint16_t mem16_to_host(uint16_t m)
{
    uint8_t b[2];
    memcpy(b, &m, 2);
    return (uint16_t)(b[0] << 8 | b[1]);
}

static uint16_t host_to_mem16(uint16_t h)
{
    uint8_t b[2] = {(uint8_t)(h >> 8), (uint8_t)h};
    uint16_t m;
    memcpy(&m, b, 2);
    return m;
}

/* Folds an accumulator without complementing (memory order). */
static uint16_t fold_only(uint32_t s) { return (uint16_t)~mqo_cksum_fold(s); }

static uint64_t rng_state = 0x12345678abcdefull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

/* Two folded sums are the same ones' complement number (0x0000 and 0xffff are both zero). */
static int same_ones(uint16_t a, uint16_t b)
{
    return a == b || ((a == 0 || a == 0xffff) && (b == 0 || b == 0xffff));
}

/* ---- checksum ---------------------------------------------------------------------------- */

static void test_csum_vs_naive_random(void **st)
{
    static uint8_t buf[4096 + 64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = iter < 300 ? (size_t)iter : rnd() % 4096;
        size_t off = rnd() % 32;
        fill_random(buf + off, len);
        uint16_t init = iter % 3 == 0 ? 0 : (uint16_t)rnd();
        uint32_t s = mqo_cksum_partial(buf + off, len, host_to_mem16(init));
        uint16_t want = naive_sum(buf + off, len, init);
        if (!same_ones(mem16_to_host(fold_only(s)), want)) {
            fprintf(stderr, "len %zu off %zu init %04x: got %04x want %04x\n", len, off, init,
                    mem16_to_host(fold_only(s)), want);
            fail();
        }
    }
}

static void test_csum_edge_patterns(void **st)
{
    static uint8_t buf[70000];
    /* all ones: every partial sum is at its maximum, carries everywhere */
    memset(buf, 0xff, sizeof buf);
    for (size_t len = 0; len < 300; len++)
        for (size_t off = 0; off < 9; off++)
            assert_true(same_ones(mem16_to_host(fold_only(mqo_cksum_partial(buf + off, len, 0))),
                                  naive_sum(buf + off, len, 0)));
    assert_true(same_ones(mem16_to_host(fold_only(mqo_cksum_partial(buf, 65535, 0xffffffffu))),
                          naive_sum(buf, 65535, 0xffff)));
    /* zeros */
    memset(buf, 0, sizeof buf);
    assert_int_equal(mqo_cksum_partial(buf, 1000, 0), 0);
    assert_int_equal(mqo_cksum_fold(0), 0xffff);
    /* a large buffer: the accumulators must not lose carries */
    size_t big = 8u << 20;
    uint8_t *m = malloc(big + 1);
    assert_non_null(m);
    memset(m, 0xff, big + 1);
    for (size_t i = 0; i < big; i += 4096)
        m[i] = (uint8_t)i;
    assert_true(same_ones(mem16_to_host(fold_only(mqo_cksum_partial(m + 1, big, 7))),
                          naive_sum(m + 1, big, mem16_to_host(7))));
    free(m);
}

static void test_csum_known_value(void **st)
{
    /* RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 */
    const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    assert_int_equal(mem16_to_host(fold_only(mqo_cksum_partial(d, sizeof d, 0))), 0xddf2);
    assert_int_equal(mem16_to_host(mqo_cksum_fold(mqo_cksum_partial(d, sizeof d, 0))), 0x220d);
}

static void test_csum_block_add(void **st)
{
    static uint8_t buf[3000];
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = rnd() % sizeof buf;
        fill_random(buf, len);
        size_t cut = len ? rnd() % (len + 1) : 0;
        size_t cut2 = cut + (len - cut ? rnd() % (len - cut + 1) : 0);
        uint32_t a = mqo_cksum_partial(buf, cut, 0);
        uint32_t b = mqo_cksum_partial(buf + cut, cut2 - cut, 0);
        uint32_t c = mqo_cksum_partial(buf + cut2, len - cut2, 0);
        uint32_t s = mqo_cksum_block_add(mqo_cksum_block_add(a, b, cut), c, cut2);
        assert_true(same_ones(mem16_to_host(fold_only(s)), naive_sum(buf, len, 0)));
    }
}

static void test_csum_add_sub(void **st)
{
    for (int i = 0; i < 100000; i++) {
        uint32_t a = rnd() << 8 ^ rnd(), b = rnd() << 8 ^ rnd();
        uint32_t s = mqo_cksum_add(a, b);
        uint64_t ref = (uint64_t)a + b;
        ref = (ref & 0xffffffff) + (ref >> 32);
        assert_int_equal(s, (uint32_t)ref);
        /* (a + b) - b == a as ones' complement numbers */
        assert_true(same_ones(fold_only(mqo_cksum_sub(s, b)), fold_only(a)));
    }
}

/* ---- a frame builder --------------------------------------------------------------------- */

static const uint8_t MAC_A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t MAC_B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t IP_A[4] = {198, 18, 1, 1};
static const uint8_t IP_B[4] = {198, 18, 1, 2};

struct fb {
    int ntags;
    uint8_t proto;  /* 6 TCP, 17 UDP */
    const uint8_t *ipopt;
    size_t ipoptlen;
    const uint8_t *tcpopt;
    size_t tcpoptlen;
    const uint8_t *payload;
    size_t plen;
    uint16_t frag; /* flags/offset field */
    size_t pad;    /* Ethernet padding after the datagram */
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* Builds a frame with correct checksums; returns its length. */
static size_t build(uint8_t *f, const struct fb *b)
{
    size_t o = 0;
    memcpy(f, MAC_B, 6);
    memcpy(f + 6, MAC_A, 6);
    o = 12;
    for (int t = 0; t < b->ntags; t++) {
        put16(f + o, t == 0 && b->ntags > 1 ? 0x88a8 : 0x8100);
        put16(f + o + 2, (uint16_t)(100 + t));
        o += 4;
    }
    put16(f + o, 0x0800);
    o += 2;
    uint8_t *ip = f + o;
    size_t ihl = 20 + b->ipoptlen;
    size_t l4h = b->proto == 17 ? 8 : 20 + b->tcpoptlen;
    size_t tot = ihl + l4h + b->plen;
    memset(ip, 0, ihl);
    ip[0] = (uint8_t)(0x40 | ihl / 4);
    put16(ip + 2, (uint16_t)tot);
    put16(ip + 4, 0x1234);
    put16(ip + 6, b->frag);
    ip[8] = 64;
    ip[9] = b->proto;
    memcpy(ip + 12, IP_A, 4);
    memcpy(ip + 16, IP_B, 4);
    if (b->ipoptlen)
        memcpy(ip + 20, b->ipopt, b->ipoptlen);
    put16(ip + 10, naive_sum(ip, ihl, 0) ^ 0xffff);
    uint8_t *l4 = ip + ihl;
    if (b->proto == 17) {
        put16(l4, 5000);
        put16(l4 + 2, 5001);
        put16(l4 + 4, (uint16_t)(8 + b->plen));
        put16(l4 + 6, 0);
    } else {
        memset(l4, 0, 20);
        put16(l4, 40000);
        put16(l4 + 2, 1883);
        put32(l4 + 4, 0xfffffff0u);
        put32(l4 + 8, 0x01020304u);
        l4[12] = (uint8_t)((20 + b->tcpoptlen) / 4 << 4);
        l4[13] = MQO_TCP_ACK | MQO_TCP_PSH;
        put16(l4 + 14, 65535);
        if (b->tcpoptlen)
            memcpy(l4 + 20, b->tcpopt, b->tcpoptlen);
    }
    memcpy(l4 + l4h, b->payload, b->plen);
    /* naive L4 checksum: pseudo-header + segment */
    uint8_t ph[12];
    memcpy(ph, IP_A, 4);
    memcpy(ph + 4, IP_B, 4);
    ph[8] = 0;
    ph[9] = b->proto;
    put16(ph + 10, (uint16_t)(l4h + b->plen));
    uint16_t s = naive_sum(ph, 12, 0);
    s = naive_sum(l4, l4h + b->plen, s);
    uint16_t c = s ^ 0xffff;
    if (b->proto == 17 && c == 0)
        c = 0xffff;
    put16(l4 + (b->proto == 17 ? 6 : 16), c);
    o += tot;
    memset(f + o, 0, b->pad);
    return o + b->pad;
}

static const uint8_t SYN_OPTS[] = {
    2, 4, 0x05, 0xb4,                       /* MSS 1460 */
    4, 2,                                   /* SACK permitted */
    8, 10, 0, 0, 0, 1, 0, 0, 0, 0,          /* TS val 1 ecr 0 */
    1,                                      /* NOP */
    3, 3, 7,                                /* WS 7 */
};

/* Exact-size heap copy, so ASan catches any read past the end. */
static uint8_t *exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    return c;
}

static void test_parse_frame_ok(void **st)
{
    uint8_t f[2048], payload[100];
    fill_random(payload, sizeof payload);
    struct fb b = {.proto = 6, .tcpopt = SYN_OPTS, .tcpoptlen = sizeof SYN_OPTS,
                   .payload = payload, .plen = sizeof payload};
    size_t n = build(f, &b);
    struct mqo_hdrs pk;
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), 0);
    assert_int_equal(pk.eth.type, 0x0800);
    assert_int_equal(pk.eth.ntags, 0);
    assert_int_equal(pk.l3_off, 14);
    assert_int_equal(pk.ip.hlen, 20);
    assert_int_equal(pk.ip.proto, 6);
    assert_int_equal(pk.ip.l4_len, 20 + sizeof SYN_OPTS + 100);
    assert_int_equal(pk.ip.flags, MQO_IPV4_F_FIRST);
    assert_memory_equal(&pk.ip.saddr, IP_A, 4);
    assert_memory_equal(&pk.ip.daddr, IP_B, 4);
    assert_int_equal(pk.l4_off, 34);
    assert_int_equal(pk.tcp.sport, 40000);
    assert_int_equal(pk.tcp.dport, 1883);
    assert_int_equal(pk.tcp.seq, 0xfffffff0u);
    assert_int_equal(pk.tcp.ack, 0x01020304u);
    assert_int_equal(pk.tcp.hlen, 40);
    assert_int_equal(pk.tcp.flags, MQO_TCP_ACK | MQO_TCP_PSH);
    assert_int_equal(pk.tcp.win, 65535);
    assert_int_equal(pk.tcp.payload_len, 100);
    assert_int_equal(pk.payload_off, 74);
    const struct mqo_tcp_opts *o = &pk.tcp.opt;
    assert_int_equal(o->present, MQO_TCPO_MSS | MQO_TCPO_SACK_PERM | MQO_TCPO_TS |
                                     MQO_TCPO_WSCALE);
    assert_int_equal(o->mss, 1460);
    assert_int_equal(o->wscale, 7);
    assert_int_equal(o->ts_val, 1);
    assert_int_equal(o->ts_ecr, 0);
    assert_int_equal(o->mss_off, 20);
    assert_int_equal(o->sack_perm_off, 24);
    assert_int_equal(o->ts_off, 26);
    assert_int_equal(o->wscale_off, 37);
    /* the TCP checksum built by the naive code verifies with the fast one */
    uint32_t s = mqo_cksum_pseudo4(pk.ip.saddr, pk.ip.daddr, 6, pk.ip.l4_len, 0);
    s = mqo_cksum_partial(f + pk.l4_off, pk.ip.l4_len, s);
    assert_int_equal(mqo_cksum_fold(s), 0);
    uint16_t field;
    memcpy(&field, f + pk.l4_off + 16, 2);
    assert_int_equal(mqo_l4_cksum4(pk.ip.saddr, pk.ip.daddr, 6, f + pk.l4_off, pk.ip.l4_len, 16),
                     field);
    memcpy(&field, f + 14 + 10, 2);
    assert_int_equal(mqo_ipv4_cksum(f + 14, 20), field);
}

static void test_parse_truncated_everywhere(void **st)
{
    uint8_t f[2048], payload[7] = {1, 2, 3, 4, 5, 6, 7};
    const uint8_t ipopt[4] = {1, 1, 1, 0};
    struct fb b = {.ntags = 2, .proto = 6, .ipopt = ipopt, .ipoptlen = 4, .tcpopt = SYN_OPTS,
                   .tcpoptlen = sizeof SYN_OPTS, .payload = payload, .plen = sizeof payload};
    size_t n = build(f, &b);
    struct mqo_hdrs pk;
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), 0);
    assert_int_equal(pk.eth.ntags, 2);
    assert_int_equal(pk.eth.tci[0], 100);
    assert_int_equal(pk.eth.tci[1], 101);
    assert_int_equal(pk.ip.flags, MQO_IPV4_F_FIRST | MQO_IPV4_F_OPTIONS);
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = exact(f, k);
        int r = mqo_parse_frame(c, k, 0, &pk);
        assert_true(r < 0);
        assert_true(r == -MQO_P_TRUNC || r == -MQO_P_IP_LEN);
        free(c);
    }
}

static void test_parse_eth(void **st)
{
    uint8_t f[64] = {0};
    struct mqo_eth e;
    put16(f + 12, 0x86dd);
    assert_int_equal(mqo_parse_eth(f, 14, &e), 0);
    assert_int_equal(e.type, 0x86dd);
    assert_int_equal(e.l3_off, 14);
    assert_int_equal(mqo_parse_eth(f, 13, &e), -MQO_P_TRUNC);
    /* one tag */
    put16(f + 12, 0x8100);
    put16(f + 14, 0x2005);
    put16(f + 16, 0x0806);
    assert_int_equal(mqo_parse_eth(f, 18, &e), 0);
    assert_int_equal(e.ntags, 1);
    assert_int_equal(e.tci[0], 0x2005);
    assert_int_equal(e.type, 0x0806);
    assert_int_equal(e.l3_off, 18);
    assert_int_equal(mqo_parse_eth(f, 17, &e), -MQO_P_TRUNC);
    /* three tags: refused */
    put16(f + 12, 0x88a8);
    put16(f + 16, 0x8100);
    put16(f + 20, 0x9100);
    put16(f + 24, 0x0800);
    assert_int_equal(mqo_parse_eth(f, 40, &e), -MQO_P_VLAN_DEPTH);
    assert_string_equal(mqo_perr_str(-MQO_P_VLAN_DEPTH), "too many VLAN tags");
    assert_string_equal(mqo_perr_str(999), "unknown");
    /* broadcast / multicast helpers */
    const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mc[6] = {0x01, 0, 0x5e, 0, 0, 1};
    assert_true(mqo_mac_is_broadcast(bc));
    assert_true(mqo_mac_is_multicast(bc));
    assert_false(mqo_mac_is_broadcast(mc));
    assert_true(mqo_mac_is_multicast(mc));
    assert_false(mqo_mac_is_multicast(MAC_A));
}

static void test_parse_ipv4_checks(void **st)
{
    uint8_t f[2048], payload[30] = {0};
    struct fb b = {.proto = 6, .payload = payload, .plen = sizeof payload, .pad = 6};
    size_t n = build(f, &b);
    uint8_t *ip = f + 14;
    struct mqo_ipv4 h;
    assert_int_equal(mqo_parse_ipv4(ip, n - 14, 0, &h), 0);
    assert_int_equal(h.tot_len, 70); /* Ethernet padding is not part of the datagram */
    assert_int_equal(h.l4_len, 50);
    assert_int_equal(h.id, 0x1234);
    assert_int_equal(h.ttl, 64);
    /* version */
    uint8_t c[2048];
    memcpy(c, ip, n - 14);
    c[0] = 0x65;
    assert_int_equal(mqo_parse_ipv4(c, n - 14, 0, &h), -MQO_P_IP_VERSION);
    /* IHL < 5 */
    memcpy(c, ip, n - 14);
    c[0] = 0x44;
    assert_int_equal(mqo_parse_ipv4(c, n - 14, 0, &h), -MQO_P_IP_IHL);
    /* IHL beyond the bytes */
    c[0] = 0x4f;
    assert_int_equal(mqo_parse_ipv4(c, 40, 0, &h), -MQO_P_TRUNC);
    /* total length: shorter than the header, longer than the bytes */
    memcpy(c, ip, n - 14);
    put16(c + 2, 19);
    assert_int_equal(mqo_parse_ipv4(c, n - 14, MQO_PARSE_NO_CSUM, &h), -MQO_P_IP_LEN);
    put16(c + 2, (uint16_t)(n - 14 + 1));
    assert_int_equal(mqo_parse_ipv4(c, n - 14, MQO_PARSE_NO_CSUM, &h), -MQO_P_IP_LEN);
    /* checksum */
    memcpy(c, ip, n - 14);
    c[8] = 63;
    assert_int_equal(mqo_parse_ipv4(c, n - 14, 0, &h), -MQO_P_IP_CSUM);
    assert_int_equal(mqo_parse_ipv4(c, n - 14, MQO_PARSE_NO_CSUM, &h), 0);
    /* an incremental TTL update makes it right again (TTL is the high byte of word 8) */
    uint16_t old_w, new_w, field;
    memcpy(&old_w, ip + 8, 2);
    memcpy(&new_w, c + 8, 2);
    memcpy(&field, c + 10, 2);
    field = mqo_cksum_update16(field, old_w, new_w);
    memcpy(c + 10, &field, 2);
    assert_int_equal(mqo_parse_ipv4(c, n - 14, 0, &h), 0);
    assert_int_equal(h.ttl, 63);
}

static void test_parse_fragments(void **st)
{
    uint8_t f[2048], payload[24] = {0};
    struct mqo_hdrs pk;
    struct fb b = {.proto = 6, .payload = payload, .plen = sizeof payload, .frag = MQO_IPV4_MF};
    size_t n = build(f, &b);
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), -MQO_P_FRAGMENT);
    assert_int_equal(pk.ip.flags, MQO_IPV4_F_FRAG | MQO_IPV4_F_FIRST);
    assert_int_equal(pk.ip.frag_off, 0);
    b.frag = 3; /* offset 24 bytes, last fragment */
    n = build(f, &b);
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), -MQO_P_FRAGMENT);
    assert_int_equal(pk.ip.flags, MQO_IPV4_F_FRAG);
    assert_int_equal(pk.ip.frag_off, 24);
    b.frag = MQO_IPV4_DF;
    n = build(f, &b);
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), 0);
    assert_int_equal(pk.ip.flags, MQO_IPV4_F_DF | MQO_IPV4_F_FIRST);
    /* not TCP, not IPv4 */
    b.proto = 17;
    b.frag = 0;
    n = build(f, &b);
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), -MQO_P_NOT_TCP);
    put16(f + 12, 0x0806);
    assert_int_equal(mqo_parse_frame(f, n, 0, &pk), -MQO_P_NOT_IPV4);
}

static void test_tcp_options(void **st)
{
    struct mqo_tcp_opts o;
    /* SACK with 1..4 blocks after two NOPs, and a TS */
    for (int nb = 1; nb <= 4; nb++) {
        uint8_t opt[40] = {1, 1, 5, (uint8_t)(2 + 8 * nb)};
        for (int k = 0; k < nb; k++) {
            put32(opt + 4 + 8 * k, 1000u * (unsigned)k);
            put32(opt + 8 + 8 * k, 1000u * (unsigned)k + 500);
        }
        size_t len = 4 + 8 * (size_t)nb;
        if (nb < 4) {
            uint8_t ts[12] = {1, 1, 8, 10, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 9};
            memcpy(opt + len, ts, 12);
            len += 12;
        }
        assert_int_equal(mqo_tcp_parse_opts(opt, len, 20, &o), 0);
        assert_true(o.present & MQO_TCPO_SACK);
        assert_int_equal(o.nsack, nb);
        assert_int_equal(o.sack_off, 22);
        for (int k = 0; k < nb; k++) {
            assert_int_equal(o.sack[k][0], 1000u * (unsigned)k);
            assert_int_equal(o.sack[k][1], 1000u * (unsigned)k + 500);
        }
        if (nb < 4) {
            assert_true(o.present & MQO_TCPO_TS);
            assert_int_equal(o.ts_val, 0xdeadbeefu);
            assert_int_equal(o.ts_ecr, 9);
            assert_int_equal(o.ts_off, 20 + 4 + 8 * nb + 2);
        }
    }
    /* EOL stops the walk: garbage after it is not read as options */
    const uint8_t eol[] = {2, 4, 1, 0, 0, 9, 9, 9};
    assert_int_equal(mqo_tcp_parse_opts(eol, sizeof eol, 20, &o), 0);
    assert_int_equal(o.present, MQO_TCPO_MSS);
    assert_int_equal(o.mss, 256);
    /* structural errors: length 0/1, past the end, kind without length byte */
    const uint8_t l0[] = {2, 0, 0, 0}, l1[] = {30, 1, 0, 0}, past[] = {8, 10, 0, 0},
                  nolen[] = {1, 1, 1, 2};
    assert_int_equal(mqo_tcp_parse_opts(l0, 4, 20, &o), -MQO_P_TCP_OPT);
    assert_int_equal(mqo_tcp_parse_opts(l1, 4, 20, &o), -MQO_P_TCP_OPT);
    assert_int_equal(mqo_tcp_parse_opts(past, 4, 20, &o), -MQO_P_TCP_OPT);
    assert_int_equal(mqo_tcp_parse_opts(nolen, 4, 20, &o), -MQO_P_TCP_OPT);
    /* wrong lengths for known kinds are skipped and flagged; unknown kinds are skipped */
    const uint8_t bad[] = {2, 3, 0, 3, 4, 1, 5, 30, 4, 0, 0, 4, 2};
    assert_int_equal(mqo_tcp_parse_opts(bad, sizeof bad, 20, &o), 0);
    assert_int_equal(o.present, MQO_TCPO_BADLEN | MQO_TCPO_UNKNOWN | MQO_TCPO_SACK_PERM);
    assert_int_equal(o.sack_perm_off, 20 + 11);
    /* SACK with 5 blocks does not fit a TCP header's 40 option bytes: flagged */
    uint8_t five[42] = {5, 42};
    assert_int_equal(mqo_tcp_parse_opts(five, sizeof five, 20, &o), 0);
    assert_int_equal(o.present, MQO_TCPO_BADLEN);
}

static void test_parse_tcp_doff(void **st)
{
    uint8_t seg[60] = {0};
    struct mqo_tcp t;
    seg[12] = 4 << 4;
    assert_int_equal(mqo_parse_tcp(seg, 60, &t), -MQO_P_TCP_DOFF);
    seg[12] = 15 << 4;
    assert_int_equal(mqo_parse_tcp(seg, 59, &t), -MQO_P_TCP_DOFF);
    assert_int_equal(mqo_parse_tcp(seg, 60, &t), 0); /* 40 option bytes of EOL */
    assert_int_equal(t.hlen, 60);
    assert_int_equal(t.payload_len, 0);
    assert_int_equal(mqo_parse_tcp(seg, 19, &t), -MQO_P_TRUNC);
}

/* ---- incremental update ------------------------------------------------------------------ */

static void test_csum_incremental_random(void **st)
{
    uint8_t f[2048], payload[1400];
    for (int iter = 0; iter < 3000; iter++) {
        size_t plen = rnd() % sizeof payload;
        fill_random(payload, plen);
        struct fb b = {.proto = 6, .payload = payload, .plen = plen};
        if (iter & 1) {
            b.tcpopt = SYN_OPTS;
            b.tcpoptlen = sizeof SYN_OPTS;
        }
        size_t n = build(f, &b);
        struct mqo_hdrs pk;
        assert_int_equal(mqo_parse_frame(f, n, 0, &pk), 0);
        uint8_t *tcp = f + pk.l4_off;
        uint16_t check;
        memcpy(&check, tcp + 16, 2);
        /* rewrite the ACK number (32 bits, offset 8) and the window (16 bits, offset 14) */
        uint32_t old32, new32 = rnd() ^ rnd() << 16;
        memcpy(&old32, tcp + 8, 4);
        memcpy(tcp + 8, &new32, 4);
        check = mqo_cksum_update32(check, old32, new32);
        uint16_t old16, new16 = (uint16_t)rnd();
        memcpy(&old16, tcp + 14, 2);
        memcpy(tcp + 14, &new16, 2);
        check = mqo_cksum_update16(check, old16, new16);
        /* and a payload region at an even offset (a packet identifier, say) */
        if (plen >= 8) {
            size_t at = (rnd() % (plen - 4)) & ~(size_t)1;
            uint8_t *q = tcp + pk.tcp.hlen + at;
            uint32_t os = mqo_cksum_partial(q, 4, 0);
            fill_random(q, 4);
            check = mqo_cksum_replace(check, os, mqo_cksum_partial(q, 4, 0));
        }
        memcpy(tcp + 16, &check, 2);
        uint32_t s = mqo_cksum_pseudo4(pk.ip.saddr, pk.ip.daddr, 6, pk.ip.l4_len, 0);
        assert_int_equal(mqo_cksum_fold(mqo_cksum_partial(tcp, pk.ip.l4_len, s)), 0);
        /* and it is the value a full computation gives */
        uint16_t full = mqo_l4_cksum4(pk.ip.saddr, pk.ip.daddr, 6, tcp, pk.ip.l4_len, 16);
        assert_true(same_ones(check, full));
    }
}

static void test_csum_update_naive(void **st)
{
    /* RFC 1624 eqn. 3 against recomputation over a 2-word buffer, exhaustive on patterns */
    const uint16_t vals[] = {0x0000, 0x0001, 0x00ff, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x1234};
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < 8; j++)
            for (size_t k = 0; k < 8; k++) {
                uint8_t buf[4];
                put16(buf, vals[i]);
                put16(buf + 2, vals[k]);
                uint16_t check = mqo_cksum_fold(mqo_cksum_partial(buf, 4, 0));
                uint16_t ow, nw = host_to_mem16(vals[j]);
                memcpy(&ow, buf, 2);
                memcpy(buf, &nw, 2);
                uint16_t upd = mqo_cksum_update16(check, ow, nw);
                uint16_t full = mqo_cksum_fold(mqo_cksum_partial(buf, 4, 0));
                assert_true(same_ones(upd, full));
            }
}

static void test_csum_complete4(void **st)
{
    uint8_t f[2048], payload[333];
    for (int proto = 6; proto <= 17; proto += 11) {
        fill_random(payload, sizeof payload);
        struct fb b = {.ntags = 1, .proto = (uint8_t)proto, .payload = payload,
                       .plen = sizeof payload};
        size_t n = build(f, &b);
        size_t l4 = 18 + 20, fo = proto == 6 ? 16 : 6;
        uint16_t good;
        memcpy(&good, f + l4 + fo, 2);
        /* what a sender with checksum offload leaves: the folded pseudo-header sum */
        struct mqo_ipv4 ip;
        assert_int_equal(mqo_parse_ipv4(f + 18, n - 18, 0, &ip), 0);
        uint16_t partial = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(ip.saddr, ip.daddr,
                                                                     (uint8_t)proto, ip.l4_len, 0));
        memcpy(f + l4 + fo, &partial, 2);
        assert_int_equal(mqo_cksum_complete4(f, n), 1);
        uint16_t now;
        memcpy(&now, f + l4 + fo, 2);
        assert_int_equal(now, good);
    }
    /* fragments, ARP, runts are left alone */
    struct fb b = {.proto = 6, .payload = payload, .plen = 10, .frag = MQO_IPV4_MF};
    size_t n = build(f, &b);
    assert_int_equal(mqo_cksum_complete4(f, n), 0);
    put16(f + 12, 0x0806);
    assert_int_equal(mqo_cksum_complete4(f, n), 0);
    assert_int_equal(mqo_cksum_complete4(f, 10), -MQO_P_TRUNC);
}

static void test_pseudo4(void **st)
{
    for (int i = 0; i < 10000; i++) {
        uint8_t ph[12];
        fill_random(ph, 8);
        ph[8] = 0;
        ph[9] = (uint8_t)rnd();
        put16(ph + 10, (uint16_t)rnd());
        uint32_t sa, da;
        memcpy(&sa, ph, 4);
        memcpy(&da, ph + 4, 4);
        uint16_t init = (uint16_t)rnd();
        uint32_t s = mqo_cksum_pseudo4(sa, da, ph[9], (uint16_t)(ph[10] << 8 | ph[11]),
                                      host_to_mem16(init));
        assert_true(same_ones(mem16_to_host(fold_only(s)), naive_sum(ph, 12, init)));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csum_vs_naive_random),
        cmocka_unit_test(test_csum_edge_patterns),
        cmocka_unit_test(test_csum_known_value),
        cmocka_unit_test(test_csum_block_add),
        cmocka_unit_test(test_csum_add_sub),
        cmocka_unit_test(test_parse_frame_ok),
        cmocka_unit_test(test_parse_truncated_everywhere),
        cmocka_unit_test(test_parse_eth),
        cmocka_unit_test(test_parse_ipv4_checks),
        cmocka_unit_test(test_parse_fragments),
        cmocka_unit_test(test_tcp_options),
        cmocka_unit_test(test_parse_tcp_doff),
        cmocka_unit_test(test_csum_incremental_random),
        cmocka_unit_test(test_csum_update_naive),
        cmocka_unit_test(test_csum_complete4),
        cmocka_unit_test(test_pseudo4),
    };
    return cmocka_run_group_tests_name("l2/parse", tests, NULL, NULL);
}
