/* l2/frag: splitting, reassembly in any order, duplicates, overlaps (identical and
 * conflicting), length rules, limits, timeout, and pass-through decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2/frag.h"
#include "l2/parse.h"

#define NS 1000000000ull
#define MAXF 8192 /* fragments per test at most */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* A TCP/IPv4 frame 198.18.0.1:40000 -> 198.18.0.2:1883 with plen payload bytes (seeded),
 * identification id, DF set, `vlan`: one 802.1Q tag, `opts` IPv4 option bytes (a multiple
 * of 4). Returns the frame length. */
static size_t mk_frame(uint8_t *f, uint16_t id, size_t plen, unsigned seed, int vlan,
                       const uint8_t *opts, size_t optlen)
{
    static const uint8_t dst[6] = {2, 0, 0, 0, 0, 2}, src[6] = {2, 0, 0, 0, 0, 1};
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    size_t l2 = 12;
    if (vlan) {
        wr16(f + 12, 0x8100);
        wr16(f + 14, 42);
        l2 = 16;
    }
    wr16(f + l2, 0x0800);
    l2 += 2;
    uint8_t *ip = f + l2;
    size_t hl = 20 + optlen;
    ip[0] = (uint8_t)(0x40 | hl / 4);
    ip[1] = 0;
    wr16(ip + 2, (uint16_t)(hl + 20 + plen));
    wr16(ip + 4, id);
    wr16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 6;
    static const uint8_t sa[4] = {198, 18, 0, 1}, da[4] = {198, 18, 0, 2};
    memcpy(ip + 12, sa, 4);
    memcpy(ip + 16, da, 4);
    if (optlen)
        memcpy(ip + 20, opts, optlen);
    uint16_t c = mqo_ipv4_cksum(ip, hl);
    memcpy(ip + 10, &c, 2);
    uint8_t *tcp = ip + hl;
    memset(tcp, 0, 20);
    wr16(tcp, 40000);
    wr16(tcp + 2, 1883);
    tcp[4] = (uint8_t)seed;
    tcp[12] = 5 << 4;
    tcp[13] = MQO_TCP_PSH | MQO_TCP_ACK;
    wr16(tcp + 14, 65535);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < plen; i++) {
        x = x * 1103515245u + 12345u;
        tcp[20 + i] = (uint8_t)(x >> 16);
    }
    uint32_t saddr, daddr;
    memcpy(&saddr, sa, 4);
    memcpy(&daddr, da, 4);
    c = mqo_l4_cksum4(saddr, daddr, 6, tcp, 20 + plen, 16);
    memcpy(tcp + 16, &c, 2);
    return l2 + hl + 20 + plen;
}

struct frags {
    uint8_t *f[MAXF];
    size_t len[MAXF];
    int n;
};

static void frags_free(struct frags *fs)
{
    for (int i = 0; i < fs->n; i++)
        free(fs->f[i]);
    fs->n = 0;
}

/* Appends the pieces of frame split at `size`. Returns how many. */
static int split(struct frags *fs, const uint8_t *frame, size_t len, size_t size)
{
    struct mqo_frag_split s;
    int n = mqo_frag_split_init(&s, frame, len, size);
    assert_true(n >= 2);
    for (int k = 0; k < n; k++) {
        assert_true(fs->n < MAXF);
        uint8_t *b = malloc(len);
        size_t l = mqo_frag_split_next(&s, b, len);
        assert_true(l > 0);
        fs->f[fs->n] = b;
        fs->len[fs->n++] = l;
    }
    uint8_t spare[64];
    assert_int_equal(mqo_frag_split_next(&s, spare, sizeof spare), 0);
    return n;
}

/* A hand-made fragment: the datagram of mk_frame(id, plen, seed) bytes [off, off+n) of its IP
 * payload, MF as given, payload bytes optionally altered. */
static size_t mk_piece(uint8_t *out, const uint8_t *frame, size_t l3_off, uint32_t off,
                       uint32_t n, int mf)
{
    const uint8_t *ip = frame + l3_off;
    size_t hl = (ip[0] & 15) * 4u;
    memcpy(out, frame, l3_off + hl);
    uint8_t *o = out + l3_off;
    wr16(o + 2, (uint16_t)(hl + n));
    wr16(o + 6, (uint16_t)(off / 8 | (mf ? MQO_IPV4_MF : 0)));
    uint16_t c = mqo_ipv4_cksum(o, hl);
    memcpy(o + 10, &c, 2);
    memcpy(o + hl, ip + hl + off, n);
    return l3_off + hl + n;
}

static void recsum(uint8_t *frame, size_t l3_off)
{
    uint8_t *ip = frame + l3_off;
    uint16_t c = mqo_ipv4_cksum(ip, (ip[0] & 15) * 4u);
    memcpy(ip + 10, &c, 2);
}

static struct mqo_frag *mk(int keep, uint32_t max_dgrams, size_t max_bytes)
{
    struct mqo_frag_cfg c = {.keep = keep, .max_dgrams = max_dgrams, .max_bytes = max_bytes};
    struct mqo_frag *r = mqo_frag_new(&c);
    assert_non_null(r);
    return r;
}

/* The reassembled frame is the original but for the fragment field (the split cleared DF,
 * the first fragment's header is the datagram's) and the header checksum. */
static void same_datagram(const uint8_t *orig, size_t olen, const struct mqo_frag_info *in)
{
    assert_int_equal(in->len, olen);
    struct mqo_hdrs h;
    assert_int_equal(mqo_parse_frame(in->frame, in->len, 0, &h), 0); /* a plain TCP segment */
    const uint8_t *ip = in->frame + h.l3_off;
    assert_int_equal(rd16(ip + 6), 0);
    assert_memory_equal(in->frame, orig, h.l3_off + 6u);
    assert_memory_equal(ip + 8, orig + h.l3_off + 8, 2);
    assert_memory_equal(ip + 12, orig + h.l3_off + 12, olen - h.l3_off - 12);
    uint16_t field;
    memcpy(&field, in->frame + h.l4_off + 16, 2);
    assert_int_equal(mqo_l4_cksum4(h.ip.saddr, h.ip.daddr, 6, in->frame + h.l4_off, h.ip.l4_len,
                                   16),
                     field);
}

static void no_leftovers(struct mqo_frag *r)
{
    const struct mqo_frag_stats *s = mqo_frag_stats(r);
    assert_int_equal(s->in_progress, 0);
    assert_int_equal(s->bytes_held, 0);
}

/* ---- splitting --------------------------------------------------------------------------- */

static void test_split(void **st)
{
    static uint8_t f[2000];
    size_t len = mk_frame(f, 7, 1460, 1, 0, NULL, 0);
    struct frags fs = {0};
    /* 1480 bytes of IP payload at 600 a piece: 600, 600, 280 */
    assert_int_equal(split(&fs, f, len, 605), 3);
    uint32_t off = 0;
    for (int k = 0; k < 3; k++) {
        struct mqo_ipv4 ip;
        assert_int_equal(mqo_parse_ipv4(fs.f[k] + 14, fs.len[k] - 14, 0, &ip), 0);
        assert_true(ip.flags & MQO_IPV4_F_FRAG);
        assert_false(ip.flags & MQO_IPV4_F_DF);
        assert_int_equal(ip.id, 7);
        assert_int_equal(ip.frag_off, off);
        assert_int_equal(ip.l4_len, k < 2 ? 600 : 280);
        assert_int_equal(rd16(fs.f[k] + 14 + 6) & MQO_IPV4_MF, k < 2 ? MQO_IPV4_MF : 0);
        assert_memory_equal(fs.f[k] + 14 + 20, f + 14 + 20 + off, ip.l4_len);
        assert_memory_equal(fs.f[k], f, 14);
        off += ip.l4_len;
    }
    frags_free(&fs);
    /* no split needed, not IPv4, malformed */
    struct mqo_frag_split s;
    assert_int_equal(mqo_frag_split_init(&s, f, len, 1480), 0);
    assert_int_equal(mqo_frag_split_init(&s, f, len, 5000), 0);
    uint8_t arp[60] = {0};
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert_int_equal(mqo_frag_split_init(&s, arp, sizeof arp, 8), 0);
    assert_true(mqo_frag_split_init(&s, f, 30, 8) < 0);
    /* size below 8 means 8 */
    assert_int_equal(split(&fs, f, mk_frame(f, 7, 60, 1, 0, NULL, 0), 3), 10);
    frags_free(&fs);
}

static void test_split_options_and_refragment(void **st)
{
    static uint8_t f[2000];
    /* router alert (copied, 4 bytes), a NOP, record route (not copied, 7 bytes) */
    static const uint8_t opts[12] = {0x94, 4, 0, 0, 1, 7, 7, 4, 0, 0, 0, 0};
    size_t len = mk_frame(f, 9, 1000, 2, 1, opts, sizeof opts);
    struct frags fs = {0};
    int n = split(&fs, f, len, 400);
    assert_int_equal(n, 3); /* 1020 bytes: 400, 400, 220 */
    for (int k = 0; k < n; k++) {
        struct mqo_ipv4 ip;
        assert_int_equal(mqo_parse_ipv4(fs.f[k] + 18, fs.len[k] - 18, 0, &ip), 0);
        assert_memory_equal(fs.f[k], f, 18); /* the VLAN tag too */
        if (k == 0) {
            assert_int_equal(ip.hlen, 32);
            assert_memory_equal(fs.f[k] + 18 + 20, opts, sizeof opts);
        } else {
            assert_int_equal(ip.hlen, 24);
            static const uint8_t copied[4] = {0x94, 4, 0, 0};
            assert_memory_equal(fs.f[k] + 18 + 20, copied, 4);
        }
    }
    /* a fragment split again: offsets from its own, MF kept on its last piece */
    struct mqo_frag_split s;
    uint8_t a[2000], b[2000];
    assert_int_equal(mqo_frag_split_init(&s, fs.f[1], fs.len[1], 160), 3);
    uint32_t want_off = 400;
    size_t l;
    int k = 0;
    while ((l = mqo_frag_split_next(&s, a, sizeof a)) > 0) {
        struct mqo_ipv4 ip;
        assert_int_equal(mqo_parse_ipv4(a + 18, l - 18, 0, &ip), 0);
        assert_int_equal(ip.frag_off, want_off);
        assert_true(rd16(a + 18 + 6) & MQO_IPV4_MF); /* the middle piece had MF: all keep it */
        want_off += ip.l4_len;
        k++;
    }
    assert_int_equal(k, 3);
    assert_int_equal(want_off, 800);
    assert_int_equal(mqo_frag_split_init(&s, fs.f[2], fs.len[2], 100), 3);
    for (k = 0; (l = mqo_frag_split_next(&s, b, sizeof b)) > 0; k++)
        assert_int_equal(!!(rd16(b + 18 + 6) & MQO_IPV4_MF), k < 2);
    frags_free(&fs);
}

/* ---- reassembly -------------------------------------------------------------------------- */

static void shuffle(int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd() % (unsigned)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Adds every piece of fs in the order of idx; DONE comes with the last. */
static void feed_all(struct mqo_frag *r, struct frags *fs, const int *idx, const uint8_t *orig,
                     size_t olen)
{
    for (int k = 0; k < fs->n; k++) {
        struct mqo_frag_info in;
        int rc = mqo_frag_add(r, fs->f[idx[k]], fs->len[idx[k]], 1000, &in);
        if (k < fs->n - 1) {
            assert_int_equal(rc, MQO_FRAG_HELD);
        } else {
            assert_int_equal(rc, MQO_FRAG_DONE);
            same_datagram(orig, olen, &in);
        }
    }
}

static void test_orders(void **st)
{
    static uint8_t f[70000];
    struct mqo_frag *r = mk(0, 0, 0);
    struct frags fs = {0};
    int idx[MAXF];
    const size_t sizes[] = {8, 16, 100, 576, 1480};
    for (int round = 0; round < 40; round++) {
        size_t plen = round == 0 ? 65515 - 20 : rnd() % 9000 + 100;
        size_t len = mk_frame(f, (uint16_t)round, plen, (unsigned)round, round & 1, NULL, 0);
        size_t size = sizes[round % 5];
        if (plen / size > MAXF - 4)
            size = 1480;
        int n = split(&fs, f, len, size);
        for (int i = 0; i < n; i++)
            idx[i] = round % 3 == 0 ? i : round % 3 == 1 ? n - 1 - i : i;
        if (round % 3 == 2)
            shuffle(idx, n);
        feed_all(r, &fs, idx, f, len);
        no_leftovers(r);
        frags_free(&fs);
    }
    assert_int_equal(mqo_frag_stats(r)->reassembled, 40);
    mqo_frag_free(r);
}

static void test_interleaved_datagrams(void **st)
{
    /* 20 datagrams, their fragments shuffled together, keyed apart by id, source, protocol */
    static uint8_t f[20][4000];
    size_t len[20];
    struct frags fs = {0};
    int owner[MAXF];
    for (int d = 0; d < 20; d++) {
        len[d] = mk_frame(f[d], (uint16_t)(d % 10), 3000, (unsigned)d + 100, 0, NULL, 0);
        if (d >= 10) { /* same ids, another source */
            f[d][14 + 15] = 9;
            recsum(f[d], 14);
        }
        int before = fs.n;
        split(&fs, f[d], len[d], 512);
        for (int k = before; k < fs.n; k++)
            owner[k] = d;
    }
    int idx[MAXF];
    for (int i = 0; i < fs.n; i++)
        idx[i] = i;
    shuffle(idx, fs.n);
    struct mqo_frag *r = mk(0, 0, 0);
    int done = 0;
    for (int k = 0; k < fs.n; k++) {
        struct mqo_frag_info in;
        int rc = mqo_frag_add(r, fs.f[idx[k]], fs.len[idx[k]], 5, &in);
        assert_true(rc == MQO_FRAG_HELD || rc == MQO_FRAG_DONE);
        if (rc == MQO_FRAG_DONE) {
            int d = owner[idx[k]];
            /* the source byte changed after the TCP checksum: compare the bytes only */
            assert_int_equal(in.len, len[d]);
            assert_memory_equal(in.frame + 34, f[d] + 34, len[d] - 34);
            done++;
        }
    }
    assert_int_equal(done, 20);
    no_leftovers(r);
    frags_free(&fs);
    mqo_frag_free(r);
}

static void test_duplicates_and_identical_overlaps(void **st)
{
    static uint8_t f[5000];
    size_t len = mk_frame(f, 1, 4000, 3, 0, NULL, 0);
    struct frags fs = {0};
    int n600 = split(&fs, f, len, 600);
    split(&fs, f, len, 1000); /* the same bytes, other boundaries */
    struct mqo_frag *r = mk(0, 0, 0);
    struct mqo_frag_info in;
    /* every 600-piece but the last, twice */
    for (int k = 0; k < n600 - 1; k++) {
        assert_int_equal(mqo_frag_add(r, fs.f[k], fs.len[k], 1, &in), MQO_FRAG_HELD);
        assert_int_equal(mqo_frag_add(r, fs.f[k], fs.len[k], 1, &in), MQO_FRAG_HELD);
    }
    assert_int_equal(mqo_frag_stats(r)->dups, (uint64_t)n600 - 1);
    /* the 1000-pieces overlap them identically; the last of them completes the datagram */
    int rc = 0;
    for (int k = n600; k < fs.n && rc != MQO_FRAG_DONE; k++)
        rc = mqo_frag_add(r, fs.f[k], fs.len[k], 1, &in);
    assert_int_equal(rc, MQO_FRAG_DONE);
    same_datagram(f, len, &in);
    const struct mqo_frag_stats *s = mqo_frag_stats(r);
    assert_true(s->overlaps >= 1);
    assert_int_equal(s->conflicts, 0);
    no_leftovers(r);
    frags_free(&fs);
    mqo_frag_free(r);
}

static void test_conflicting_overlap(void **st)
{
    static uint8_t f[3000], p[3000];
    mk_frame(f, 2, 2000, 4, 0, NULL, 0);
    struct mqo_frag *r = mk(0, 0, 0);
    struct mqo_frag_info in;
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 800, 1), 1, &in), MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 1600, 420, 0), 1, &in),
                     MQO_FRAG_HELD);
    /* [400, 1200) with one byte changed inside the part already held */
    size_t l = mk_piece(p, f, 14, 400, 800, 1);
    p[14 + 20 + 10] ^= 1;
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), -MQO_FRAG_E_CONFLICT);
    assert_int_equal(mqo_frag_stats(r)->conflicts, 1);
    no_leftovers(r);
    /* the same change where nothing was held yet is no conflict */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 800, 1), 1, &in), MQO_FRAG_HELD);
    l = mk_piece(p, f, 14, 800, 800, 1);
    p[14 + 20 + 700] ^= 1;
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), MQO_FRAG_HELD);
    /* a conflicting change in an exact duplicate */
    l = mk_piece(p, f, 14, 0, 800, 1);
    p[14 + 20 + 799] ^= 0x80;
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), -MQO_FRAG_E_CONFLICT);
    no_leftovers(r);
    mqo_frag_free(r);
}

static void test_length_rules(void **st)
{
    static uint8_t f[3000], p[3000];
    mk_frame(f, 3, 2000, 5, 0, NULL, 0);
    struct mqo_frag *r = mk(0, 0, 0);
    struct mqo_frag_info in;
    /* two last fragments that disagree */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 1600, 420, 0), 1, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 1600, 400, 0), 1, &in),
                     -MQO_FRAG_E_CONFLICT);
    /* a fragment beyond the end */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 800, 400, 0), 1, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 1200, 400, 1), 1, &in),
                     -MQO_FRAG_E_CONFLICT);
    /* a last fragment ending before bytes already held */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 800, 800, 1), 1, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 400, 400, 0), 1, &in),
                     -MQO_FRAG_E_CONFLICT);
    assert_int_equal(mqo_frag_stats(r)->conflicts, 3);
    no_leftovers(r);
    /* a non-last fragment not a multiple of 8 is trimmed, as Linux does: the datagram still
     * completes from the bytes that follow */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 803, 1), 1, &in), MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 800, 1220, 0), 1, &in),
                     MQO_FRAG_DONE);
    assert_int_equal(in.len, 14 + 20 + 2020);
    assert_memory_equal(in.frame + 34, f + 34, 2020);
    no_leftovers(r);
    mqo_frag_free(r);
}

static void test_too_big_and_malformed(void **st)
{
    static uint8_t f[70000], p[70000];
    mk_frame(f, 4, 2000, 6, 0, NULL, 0);
    struct mqo_frag *r = mk(0, 0, 0);
    struct mqo_frag_info in;
    /* offset 65520 + 16 bytes: past 65535 with any header */
    size_t l = mk_piece(p, f, 14, 0, 16, 0);
    wr16(p + 14 + 6, 65520 / 8);
    recsum(p, 14);
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), -MQO_FRAG_E_TOO_BIG);
    /* it drops a datagram in progress too */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 800, 1), 1, &in), MQO_FRAG_HELD);
    l = mk_piece(p, f, 14, 0, 16, 0);
    wr16(p + 14 + 6, 65520 / 8);
    recsum(p, 14);
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), -MQO_FRAG_E_TOO_BIG);
    no_leftovers(r);
    /* fits with a 20-byte header, not with the first fragment's 60: found when complete */
    static uint8_t big[70000];
    static const uint8_t opts[40] = {1, 1, 1, 1};
    mk_frame(big, 5, 65475 - 20, 7, 0, opts, sizeof opts);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, big, 14, 0, 65472, 1), 1, &in),
                     MQO_FRAG_HELD);
    mk_piece(p, big, 14, 0, 28, 0);
    p[14] = 0x45; /* the last fragment without the options: [65472, 65500) */
    memmove(p + 34, p + 74, 28);
    wr16(p + 14 + 2, 48);
    wr16(p + 14 + 6, 65472 / 8);
    recsum(p, 14);
    assert_int_equal(mqo_frag_add(r, p, 62, 1, &in), -MQO_FRAG_E_TOO_BIG);
    assert_int_equal(mqo_frag_stats(r)->too_big, 3);
    no_leftovers(r);
    /* not a fragment, bad header checksum, empty, not IPv4 */
    size_t whole = mk_frame(f, 4, 100, 6, 0, NULL, 0);
    assert_int_equal(mqo_frag_add(r, f, whole, 1, &in), -MQO_FRAG_E_MALFORMED);
    l = mk_piece(p, f, 14, 0, 64, 1);
    p[14 + 10] ^= 1;
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), -MQO_FRAG_E_MALFORMED);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 7, 1), 1, &in),
                     -MQO_FRAG_E_MALFORMED);
    l = mk_piece(p, f, 14, 0, 64, 1);
    p[12] = 0x86;
    p[13] = 0xdd;
    assert_int_equal(mqo_frag_add(r, p, l, 1, &in), -MQO_FRAG_E_MALFORMED);
    assert_int_equal(mqo_frag_add(r, p, 10, 1, &in), -MQO_FRAG_E_MALFORMED);
    assert_int_equal(mqo_frag_stats(r)->malformed, 5);
    no_leftovers(r);
    mqo_frag_free(r);
}

static void test_timeout(void **st)
{
    static uint8_t f[3000], p[3000];
    mk_frame(f, 6, 2000, 8, 0, NULL, 0);
    struct mqo_frag *r = mk(0, 0, 0);
    struct mqo_frag_info in;
    assert_int_equal(mqo_frag_next_timer(r, 0), UINT64_MAX);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 800, 1), 10 * NS, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_next_timer(r, 10 * NS), 30 * NS);
    assert_int_equal(mqo_frag_next_timer(r, 39 * NS), NS);
    /* a later fragment does not restart the clock */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 800, 800, 1), 30 * NS, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_expire(r, 40 * NS - 1), 0);
    assert_int_equal(mqo_frag_expire(r, 40 * NS), 1);
    assert_int_equal(mqo_frag_stats(r)->timeouts, 1);
    no_leftovers(r);
    /* the last fragment after the timeout starts a new datagram that never completes */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 1600, 420, 0), 41 * NS, &in),
                     MQO_FRAG_HELD);
    /* expiry also happens on add */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 800, 1), 71 * NS, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_stats(r)->timeouts, 2);
    assert_int_equal(mqo_frag_stats(r)->in_progress, 1);
    mqo_frag_free(r);
}

static void test_limits(void **st)
{
    static uint8_t f[3000], p[3000];
    mk_frame(f, 0, 2000, 9, 0, NULL, 0);
    /* 4 datagrams at most: a fifth evicts the oldest */
    struct mqo_frag *r = mk(0, 4, 0);
    struct mqo_frag_info in;
    for (int id = 0; id < 5; id++) {
        size_t l = mk_piece(p, f, 14, 0, 800, 1);
        wr16(p + 14 + 4, (uint16_t)id);
        recsum(p, 14);
        assert_int_equal(mqo_frag_add(r, p, l, (uint64_t)id, &in), MQO_FRAG_HELD);
    }
    const struct mqo_frag_stats *s = mqo_frag_stats(r);
    assert_int_equal(s->in_progress, 4);
    assert_int_equal(s->evicted, 1);
    /* datagram 0 is gone: its last fragment does not complete anything */
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 800, 1220, 0), 9, &in),
                     MQO_FRAG_HELD);
    assert_int_equal(s->evicted, 2);
    mqo_frag_free(r);

    /* bytes: room for about two datagrams of 2 kB */
    r = mk(0, 0, 6000);
    s = mqo_frag_stats(r);
    for (int id = 0; id < 3; id++) {
        size_t l = mk_piece(p, f, 14, 0, 800, 1);
        wr16(p + 14 + 4, (uint16_t)id);
        recsum(p, 14);
        assert_int_equal(mqo_frag_add(r, p, l, (uint64_t)id, &in), MQO_FRAG_HELD);
        assert_true(s->bytes_held <= 6000);
    }
    assert_true(s->evicted >= 1);
    mqo_frag_free(r);

    /* one datagram alone over the limit */
    r = mk(0, 0, 1000);
    assert_int_equal(mqo_frag_add(r, p, mk_piece(p, f, 14, 0, 800, 1), 1, &in),
                     -MQO_FRAG_E_NOMEM);
    assert_int_equal(mqo_frag_stats(r)->nomem, 1);
    no_leftovers(r);
    mqo_frag_free(r);
}

/* ---- pass-through decisions -------------------------------------------------------------- */

struct sink {
    uint8_t *f[MAXF];
    size_t len[MAXF];
    int n;
};

static void sink_out(void *ud, const uint8_t *frame, size_t len)
{
    struct sink *k = ud;
    k->f[k->n] = malloc(len);
    memcpy(k->f[k->n], frame, len);
    k->len[k->n++] = len;
}

static void sink_free(struct sink *k)
{
    for (int i = 0; i < k->n; i++)
        free(k->f[i]);
    k->n = 0;
}

static void test_keep_pass(void **st)
{
    static uint8_t f[5000];
    size_t len = mk_frame(f, 11, 4000, 10, 0, NULL, 0);
    struct frags fs = {0};
    int n = split(&fs, f, len, 1000); /* 5 pieces */
    assert_int_equal(n, 5);
    struct mqo_frag *r = mk(1, 0, 0);
    struct mqo_frag_info in;
    /* pieces 3 and 1 first: no L4 header yet */
    assert_int_equal(mqo_frag_add(r, fs.f[3], fs.len[3], 1, &in), MQO_FRAG_HELD);
    assert_int_equal(in.verdict, MQO_FRAG_UNDECIDED);
    assert_int_equal(in.head_len, 0);
    assert_int_equal(mqo_frag_add(r, fs.f[1], fs.len[1], 1, &in), MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_stats(r)->waited, 2);
    assert_int_equal(mqo_frag_add(r, fs.f[0], fs.len[0], 1, &in), MQO_FRAG_HELD);
    assert_int_equal(in.head_len, MQO_FRAG_HEAD);
    assert_int_equal(rd16(in.head + 2), 1883);
    assert_int_equal(mqo_frag_stats(r)->waited, 2);
    /* the caller decides: pass; the copies come back in arrival order */
    struct sink k = {0};
    assert_int_equal(mqo_frag_decide(r, &in.key, MQO_FRAG_PASS, sink_out, &k), 3);
    assert_int_equal(k.n, 3);
    const int order[3] = {3, 1, 0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(k.len[i], fs.len[order[i]]);
        assert_memory_equal(k.f[i], fs.f[order[i]], k.len[i]);
    }
    assert_int_equal(mqo_frag_decide(r, &in.key, MQO_FRAG_PASS, sink_out, &k), -EINVAL);
    /* later pieces, a duplicate among them, pass at once; the marker goes with the last */
    assert_int_equal(mqo_frag_add(r, fs.f[4], fs.len[4], 2, &in), MQO_FRAG_PASSED);
    assert_int_equal(mqo_frag_add(r, fs.f[4], fs.len[4], 2, &in), MQO_FRAG_PASSED);
    assert_int_equal(mqo_frag_stats(r)->in_progress, 1);
    assert_int_equal(mqo_frag_add(r, fs.f[2], fs.len[2], 2, &in), MQO_FRAG_PASSED);
    assert_int_equal(mqo_frag_stats(r)->passed, 6);
    assert_int_equal(mqo_frag_stats(r)->reassembled, 0);
    no_leftovers(r);
    sink_free(&k);
    frags_free(&fs);
    mqo_frag_free(r);
}

static void test_keep_reassemble(void **st)
{
    static uint8_t f[5000];
    size_t len = mk_frame(f, 12, 4000, 11, 0, NULL, 0);
    struct frags fs = {0};
    split(&fs, f, len, 1000);
    struct mqo_frag *r = mk(1, 0, 0);
    struct mqo_frag_info in;
    assert_int_equal(mqo_frag_add(r, fs.f[0], fs.len[0], 1, &in), MQO_FRAG_HELD);
    assert_int_equal(in.head_len, MQO_FRAG_HEAD);
    uint64_t before = mqo_frag_stats(r)->bytes_held;
    assert_int_equal(mqo_frag_decide(r, &in.key, MQO_FRAG_REASSEMBLE, sink_out, NULL), 0);
    assert_true(mqo_frag_stats(r)->bytes_held < before); /* the copy is gone */
    for (int i = 1; i < 4; i++) {
        assert_int_equal(mqo_frag_add(r, fs.f[i], fs.len[i], 1, &in), MQO_FRAG_HELD);
        assert_int_equal(in.verdict, MQO_FRAG_REASSEMBLE);
    }
    assert_int_equal(mqo_frag_add(r, fs.f[4], fs.len[4], 1, &in), MQO_FRAG_DONE);
    same_datagram(f, len, &in);
    no_leftovers(r);
    struct mqo_frag_key nokey = {0};
    assert_int_equal(mqo_frag_decide(r, &nokey, MQO_FRAG_PASS, NULL, NULL), -ENOENT);
    assert_int_equal(mqo_frag_decide(r, &in.key, MQO_FRAG_UNDECIDED, NULL, NULL), -EINVAL);
    frags_free(&fs);
    mqo_frag_free(r);
}

static void test_keep_complete_before_verdict(void **st)
{
    static uint8_t f[5000];
    size_t len = mk_frame(f, 13, 3000, 12, 0, NULL, 0);
    struct frags fs = {0};
    split(&fs, f, len, 1024); /* 3 pieces */
    struct mqo_frag *r = mk(1, 0, 0);
    struct mqo_frag_info in;
    for (int verdict = MQO_FRAG_REASSEMBLE; verdict <= MQO_FRAG_PASS; verdict++) {
        /* the piece with the header comes last: whole before any verdict */
        assert_int_equal(mqo_frag_add(r, fs.f[2], fs.len[2], 1, &in), MQO_FRAG_HELD);
        assert_int_equal(mqo_frag_add(r, fs.f[1], fs.len[1], 1, &in), MQO_FRAG_HELD);
        assert_int_equal(mqo_frag_add(r, fs.f[0], fs.len[0], 1, &in), MQO_FRAG_DONE);
        assert_int_equal(in.verdict, MQO_FRAG_UNDECIDED);
        same_datagram(f, len, &in);
        /* a duplicate while it waits */
        struct mqo_frag_info in2;
        assert_int_equal(mqo_frag_add(r, fs.f[1], fs.len[1], 1, &in2), MQO_FRAG_HELD);
        assert_int_equal(mqo_frag_add(r, fs.f[0], fs.len[0], 1, &in), MQO_FRAG_HELD);
        struct sink k = {0};
        int n = mqo_frag_decide(r, &in.key, (enum mqo_frag_verdict)verdict, sink_out, &k);
        assert_int_equal(n, verdict == MQO_FRAG_PASS ? 3 : 0);
        if (verdict == MQO_FRAG_PASS)
            for (int i = 0; i < 3; i++)
                assert_memory_equal(k.f[i], fs.f[2 - i], fs.len[2 - i]);
        no_leftovers(r);
        sink_free(&k);
    }
    frags_free(&fs);
    mqo_frag_free(r);
}

static void test_keep_timeout(void **st)
{
    static uint8_t f[5000];
    size_t len = mk_frame(f, 14, 3000, 13, 0, NULL, 0);
    struct frags fs = {0};
    split(&fs, f, len, 1024);
    struct mqo_frag *r = mk(1, 0, 0);
    struct mqo_frag_info in;
    assert_int_equal(mqo_frag_add(r, fs.f[1], fs.len[1], 0, &in), MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_add(r, fs.f[2], fs.len[2], 1, &in), MQO_FRAG_HELD);
    assert_int_equal(mqo_frag_expire(r, 30 * NS), 1);
    assert_int_equal(mqo_frag_stats(r)->timeouts, 1);
    assert_int_equal(mqo_frag_stats(r)->timeout_frags, 2);
    no_leftovers(r);
    frags_free(&fs);
    mqo_frag_free(r);
}

/* Random datagrams, fragmented at random sizes (some twice, at different sizes), shuffled
 * together with duplicates: each completes once, intact; with keep, the verdicts alternate and
 * passed datagrams come back whole as their own fragments. */
static void test_random(void **st)
{
    enum { ND = 12 };
    static uint8_t f[ND][12000];
    size_t len[ND];
    for (int keep = 0; keep < 2; keep++) {
        for (int round = 0; round < 30; round++) {
            struct frags fs = {0};
            int owner[MAXF];
            for (int d = 0; d < ND; d++) {
                size_t plen = rnd() % 10000 + 50;
                len[d] = mk_frame(f[d], (uint16_t)(round * ND + d), plen, rnd(), 0, NULL, 0);
                int times = 1 + (int)(rnd() % 2);
                for (int t = 0; t < times; t++) {
                    int before = fs.n;
                    size_t lo = plen > 2000 ? 64 : 8, span = plen < 1500 ? plen : 1500;
                    split(&fs, f[d], len[d], lo + rnd() % span);
                    for (int k = before; k < fs.n; k++)
                        owner[k] = d;
                }
            }
            int idx[MAXF], n = fs.n;
            for (int i = 0; i < n; i++)
                idx[i] = i;
            shuffle(idx, n);
            struct mqo_frag *r = mk(keep, 0, 0);
            int done[ND] = {0};
            size_t passed_bytes[ND] = {0};
            struct sink k = {0};
            for (int i = 0; i < n; i++) {
                struct mqo_frag_info in;
                int x = idx[i], d = owner[x];
                int rc = mqo_frag_add(r, fs.f[x], fs.len[x], (uint64_t)i, &in);
                assert_true(rc >= 0);
                if (rc == MQO_FRAG_PASSED)
                    passed_bytes[d] += fs.len[x];
                if (in.verdict == MQO_FRAG_UNDECIDED && in.head_len >= 20) {
                    enum mqo_frag_verdict v = d % 2 ? MQO_FRAG_PASS : MQO_FRAG_REASSEMBLE;
                    int before = k.n;
                    assert_true(mqo_frag_decide(r, &in.key, v, sink_out, &k) >= 0);
                    for (int j = before; j < k.n; j++)
                        passed_bytes[d] += k.len[j];
                    if (v == MQO_FRAG_PASS && rc == MQO_FRAG_DONE)
                        rc = MQO_FRAG_HELD; /* passed, not reassembled */
                }
                if (rc == MQO_FRAG_DONE) {
                    assert_false(keep && d % 2);
                    same_datagram(f[d], len[d], &in);
                    done[d]++;
                }
            }
            for (int d = 0; d < ND; d++) {
                if (keep && d % 2)
                    assert_true(passed_bytes[d] > len[d]); /* all of it, headers repeated */
                else /* more than once when a second fragmentation outlived the first */
                    assert_true(done[d] >= 1);
            }
            /* leftovers: only duplicates that came after their datagram completed */
            assert_int_equal(mqo_frag_stats(r)->conflicts, 0);
            mqo_frag_expire(r, 1000 * NS);
            no_leftovers(r);
            sink_free(&k);
            frags_free(&fs);
            mqo_frag_free(r);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_options_and_refragment),
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_interleaved_datagrams),
        cmocka_unit_test(test_duplicates_and_identical_overlaps),
        cmocka_unit_test(test_conflicting_overlap),
        cmocka_unit_test(test_length_rules),
        cmocka_unit_test(test_too_big_and_malformed),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_keep_pass),
        cmocka_unit_test(test_keep_reassemble),
        cmocka_unit_test(test_keep_complete_before_verdict),
        cmocka_unit_test(test_keep_timeout),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests_name("l2/frag", tests, NULL, NULL);
}
