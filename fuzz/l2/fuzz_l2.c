/* libFuzzer target for l2/: frame bytes through every parser (no crash, no read past the
 * input), parse invariants, the checksum helpers against a naive RFC 1071 sum, checksum
 * completion verified by re-parsing, the forwarding decision, the impairment and static
 * table parsers with the input read as text, the IPv4 splitter (its pieces reassemble to the
 * input) and the reassembler driven by a fragment program read from the input (no crash, no
 * leak, memory within its limit, every datagram it returns whole and, when no fragment of it
 * was altered, equal to the original), and the virtio-net header (l2/gso.h) read from the
 * input's first 10 bytes in front of the frame after them: on receive (a super-segment it
 * accepts cuts in software into valid wire segments carrying its payload whole), on send
 * (offsets inside the frame, the same header and bytes when built twice). Also built as a
 * plain replay binary (make). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l2/frag.h"
#include "l2/gso.h"
#include "l2/impair.h"
#include "l2/l2.h"
#include "l2/parse.h"
#include "pktio/pktio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                  \
    do {                                                                                          \
        if (!(c))                                                                                 \
            abort();                                                                              \
    } while (0)

static uint16_t naive_sum(const uint8_t *p, size_t len)
{
    uint64_t s = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static uint16_t host16(uint16_t m)
{
    uint8_t b[2];
    memcpy(b, &m, 2);
    return (uint16_t)(b[0] << 8 | b[1]);
}

static int same_ones(uint16_t a, uint16_t b)
{
    return a == b || ((a == 0 || a == 0xffff) && (b == 0 || b == 0xffff));
}

static void check_pkt(const uint8_t *data, size_t size, const struct mqo_hdrs *pk)
{
    CHECK(pk->l3_off == pk->eth.l3_off && pk->l3_off <= size);
    CHECK(pk->l4_off == pk->l3_off + pk->ip.hlen);
    CHECK((size_t)pk->l3_off + pk->ip.tot_len <= size);
    CHECK(pk->payload_off == pk->l4_off + pk->tcp.hlen);
    CHECK((size_t)pk->payload_off + pk->tcp.payload_len == (size_t)pk->l3_off + pk->ip.tot_len);
    const struct mqo_tcp_opts *o = &pk->tcp.opt;
    if (o->present & MQO_TCPO_MSS)
        CHECK(o->mss_off >= 20 && o->mss_off + 4 <= pk->tcp.hlen);
    if (o->present & MQO_TCPO_TS)
        CHECK(o->ts_off >= 20 && o->ts_off + 10 <= pk->tcp.hlen);
    if (o->present & MQO_TCPO_SACK)
        CHECK(o->nsack >= 1 && o->nsack <= 4 && o->sack_off + 2 + 8 * o->nsack <= pk->tcp.hlen);
    if (o->present & MQO_TCPO_WSCALE)
        CHECK(o->wscale_off + 3 <= pk->tcp.hlen);
    /* the checksum over the received segment, two ways */
    const uint8_t *l4 = data + pk->l4_off;
    uint32_t s = mqo_cksum_pseudo4(pk->ip.saddr, pk->ip.daddr, 6, pk->ip.l4_len, 0);
    s = mqo_cksum_partial(l4, pk->ip.l4_len, s);
    uint16_t field;
    memcpy(&field, l4 + 16, 2);
    uint16_t want = mqo_l4_cksum4(pk->ip.saddr, pk->ip.daddr, 6, l4, pk->ip.l4_len, 16);
    CHECK((mqo_cksum_fold(s) == 0) == same_ones(want, field));
}

static void fuzz_csum(const uint8_t *data, size_t size)
{
    size_t off = size ? data[0] % 8 : 0;
    if (off > size)
        off = size;
    const uint8_t *p = data + off;
    size_t len = size - off;
    uint32_t s = mqo_cksum_partial(p, len, 0);
    CHECK(same_ones(host16((uint16_t)~mqo_cksum_fold(s)), naive_sum(p, len)));
    /* pieces at any split add up to the whole */
    size_t cut = len ? (size_t)(size > 1 ? data[1] : 0) * len / 256 : 0;
    uint32_t a = mqo_cksum_partial(p, cut, 0), b = mqo_cksum_partial(p + cut, len - cut, 0);
    CHECK(same_ones(mqo_cksum_fold(mqo_cksum_block_add(a, b, cut)), mqo_cksum_fold(s)));
    /* incremental update of a 16- and a 32-bit word at even offsets, against recomputation */
    if (len >= 8) {
        uint8_t *c = malloc(len);
        CHECK(c != NULL);
        memcpy(c, p, len);
        uint16_t check = mqo_cksum_fold(mqo_cksum_partial(c, len, 0));
        size_t at = (size_t)(data[size - 1] % (len / 2 - 1)) * 2;
        uint16_t o16, n16 = (uint16_t)(data[size / 2] * 257u + 1);
        memcpy(&o16, c + at, 2);
        memcpy(c + at, &n16, 2);
        check = mqo_cksum_update16(check, o16, n16);
        CHECK(same_ones(check, mqo_cksum_fold(mqo_cksum_partial(c, len, 0))));
        size_t at4 = len >= 12 ? (at + 4) % (len - 4) & ~(size_t)1 : 0;
        uint32_t o32, n32 = 0x9e3779b9u * (uint32_t)size;
        memcpy(&o32, c + at4, 4);
        memcpy(c + at4, &n32, 4);
        check = mqo_cksum_update32(check, o32, n32);
        CHECK(same_ones(check, mqo_cksum_fold(mqo_cksum_partial(c, len, 0))));
        free(c);
    }
}

static void fuzz_complete(const uint8_t *data, size_t size)
{
    uint8_t *c = malloc(size ? size : 1);
    CHECK(c != NULL);
    memcpy(c, data, size);
    if (mqo_cksum_complete4(c, size) == 1) {
        struct mqo_eth e;
        struct mqo_ipv4 ip;
        CHECK(mqo_parse_eth(c, size, &e) == 0);
        CHECK(mqo_parse_ipv4(c + e.l3_off, size - e.l3_off, 0, &ip) == 0);
        const uint8_t *l4 = c + e.l3_off + ip.hlen;
        uint32_t s = mqo_cksum_pseudo4(ip.saddr, ip.daddr, ip.proto, ip.l4_len, 0);
        CHECK(mqo_cksum_fold(mqo_cksum_partial(l4, ip.l4_len, s)) == 0);
        /* only the checksum field changed */
        size_t fo = e.l3_off + ip.hlen + (ip.proto == 6 ? 16 : 6);
        CHECK(memcmp(c, data, fo) == 0 && memcmp(c + fo + 2, data + fo + 2, size - fo - 2) == 0);
    }
    free(c);
}

static void fuzz_l2(const uint8_t *data, size_t size)
{
    static const enum mqo_l2_mode modes[] = {MQO_L2_HUB, MQO_L2_LEARN, MQO_L2_STATIC};
    struct mqo_l2_cfg cfg = {.mode = modes[size % 3], .nports = 2 + size % 3, .max_macs = 8,
                             .aging_ns = 1000};
    struct mqo_l2 *l2 = mqo_l2_new(&cfg);
    CHECK(l2 != NULL);
    /* frames: the input cut in 64-byte pieces, each from a port and at a time it names */
    for (size_t i = 0; i < size; i += 64) {
        size_t n = size - i < 64 ? size - i : 64;
        unsigned in = data[i] % cfg.nports;
        uint32_t m = mqo_l2_decide(l2, in, data + i, n, (uint64_t)i * 37);
        CHECK(!(m & (1u << in)) && !(m >> cfg.nports));
    }
    CHECK(mqo_l2_count(l2) <= 8);
    char err[128];
    (void)mqo_l2_static_parse(l2, (const char *)data, size, err, sizeof err);
    CHECK(mqo_l2_count(l2) <= 8);
    mqo_l2_free(l2);
}

static void fuzz_impair(const uint8_t *data, size_t size)
{
    /* first line: a spec; the rest drives the stage */
    size_t nl = 0;
    while (nl < size && data[nl] != '\n')
        nl++;
    if (nl > 600)
        return;
    char spec[601];
    memcpy(spec, data, nl);
    spec[nl] = 0;
    struct mqo_impair_cfg cfg, again;
    char err[200], buf[300];
    if (mqo_impair_parse(spec, &cfg, err, sizeof err))
        return;
    mqo_impair_format(&cfg, buf, sizeof buf);
    CHECK(mqo_impair_parse(buf, &again, err, sizeof err) == 0);
    CHECK(memcmp(&cfg, &again, sizeof cfg) == 0);
    if (cfg.limit > 64)
        cfg.limit = 64;
    struct mqo_impair *im = mqo_impair_new(&cfg, 0);
    CHECK(im != NULL);
    static unsigned char seen[4096];
    memset(seen, 0, sizeof seen);
    uint64_t now = 0;
    unsigned id = 0, in = 0, out = 0;
    void *v[64];
    for (size_t i = nl; i < size && id < sizeof seen; i++) {
        uint8_t b = data[i];
        now += (uint64_t)(b >> 2) * 250000;
        if (b & 1) {
            int f = mqo_impair_fate(im);
            for (int k = 0; k < f && id < sizeof seen; k++, id++)
                if (mqo_impair_enqueue(im, (void *)(uintptr_t)(id + 1), now) == 0)
                    in++;
        }
        int n = mqo_impair_dequeue(im, now, v, 64);
        for (int k = 0; k < n; k++) {
            unsigned x = (unsigned)(uintptr_t)v[k] - 1;
            CHECK(x < id && !seen[x]);
            seen[x] = 1;
        }
        out += (unsigned)n;
        uint64_t nx = mqo_impair_next(im);
        CHECK(mqo_impair_held(im) == 0 ? nx == UINT64_MAX : nx != UINT64_MAX);
    }
    int n;
    while ((n = mqo_impair_drain(im, v, 64)) > 0)
        out += (unsigned)n;
    CHECK(in == out);
    mqo_impair_free(im);
}

/* ---- IPv4 fragments ---- */

#define NS 1000000000ull

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The input as a frame, split at a size its last byte picks: every piece is a valid IPv4
 * fragment, and a whole datagram reassembles to itself. */
static void fuzz_split(const uint8_t *data, size_t size)
{
    struct mqo_frag_split sp;
    size_t unit = 8 + (size ? data[size - 1] : 0) * 8u;
    int n = mqo_frag_split_init(&sp, data, size, unit);
    if (n <= 0)
        return;
    struct mqo_eth e;
    struct mqo_ipv4 ip;
    CHECK(mqo_parse_eth(data, size, &e) == 0);
    CHECK(mqo_parse_ipv4(data + e.l3_off, size - e.l3_off, MQO_PARSE_NO_CSUM, &ip) == 0);
    int whole = !(ip.flags & MQO_IPV4_F_FRAG);
    /* the reassembler may refuse pieces of a fragment that is no valid one itself: not the last
     * and its payload no multiple of 8 (its last piece is trimmed, maybe to nothing), or ending
     * past 65535 bytes */
    int bad = ((rd16(data + e.l3_off + 6) & MQO_IPV4_MF) && ip.l4_len % 8) ||
              ip.frag_off + ip.l4_len + 20u > 65535;
    struct mqo_frag_cfg cfg = {0};
    struct mqo_frag *r = mqo_frag_new(&cfg);
    CHECK(r != NULL);
    uint8_t *piece = malloc(size);
    CHECK(piece != NULL);
    int k = 0, done = 0;
    size_t l;
    while ((l = mqo_frag_split_next(&sp, piece, size)) > 0) {
        struct mqo_ipv4 pi;
        CHECK(mqo_parse_ipv4(piece + e.l3_off, l - e.l3_off, 0, &pi) == 0);
        CHECK((pi.flags & MQO_IPV4_F_FRAG) && !(pi.flags & MQO_IPV4_F_DF) && pi.id == ip.id);
        CHECK(pi.l4_len <= unit && (k == n - 1 || pi.l4_len % 8 == 0));
        struct mqo_frag_info in;
        int rc = mqo_frag_add(r, piece, l, 1, &in);
        CHECK(rc == MQO_FRAG_HELD || rc == MQO_FRAG_DONE || bad);
        if (rc == MQO_FRAG_DONE) {
            CHECK(whole && k == n - 1);
            CHECK(in.len == (size_t)e.l3_off + ip.tot_len);
            const uint8_t *o = in.frame + e.l3_off;
            CHECK(memcmp(o + ip.hlen, data + e.l3_off + ip.hlen, ip.l4_len) == 0);
            CHECK(memcmp(o + 12, data + e.l3_off + 12, ip.hlen - 12u) == 0);
            CHECK(mqo_cksum_fold(mqo_cksum_partial(o, ip.hlen, 0)) == 0);
            done = 1;
        }
        k++;
    }
    CHECK(k == n && done == whole);
    free(piece);
    mqo_frag_free(r);
}

/* A datagram of the fragment program: TCP/IPv4, payload from the input's seed. */
struct fz_dgram {
    uint8_t frame[18 + 24 + 4000];
    uint16_t l3_off, hlen, plen; /* plen: IP payload */
    int dirty; /* a fragment with an altered byte was offered */
};

struct fz_ctx {
    struct fz_dgram *d;
    unsigned nd;
    uint64_t passed;
};

static void fz_out(void *ud, const uint8_t *frame, size_t len)
{
    struct fz_ctx *c = ud;
    struct mqo_eth e;
    struct mqo_ipv4 ip;
    CHECK(mqo_parse_eth(frame, len, &e) == 0);
    CHECK(mqo_parse_ipv4(frame + e.l3_off, len - e.l3_off, 0, &ip) == 0);
    CHECK(ip.flags & MQO_IPV4_F_FRAG);
    c->passed++;
}

static void fz_make(struct fz_dgram *d, unsigned k, uint32_t seed)
{
    memset(d, 0, sizeof *d);
    uint8_t *f = d->frame;
    memset(f, 2, 12);
    size_t l2 = 12;
    if (k & 1) {
        wr16(f + 12, 0x8100);
        wr16(f + 14, (uint16_t)k);
        l2 = 16;
    }
    wr16(f + l2, 0x0800);
    d->l3_off = (uint16_t)(l2 + 2);
    uint8_t *ip = f + d->l3_off;
    d->hlen = k == 3 ? 24 : 20;
    d->plen = (uint16_t)(20 + (seed * (k + 1)) % 3900);
    ip[0] = (uint8_t)(0x40 | d->hlen / 4);
    wr16(ip + 2, (uint16_t)(d->hlen + d->plen));
    wr16(ip + 4, (uint16_t)(k < 2 ? 77 : k)); /* datagrams 0 and 1 differ by source only */
    ip[8] = 64;
    ip[9] = 6;
    ip[12] = 198;
    ip[13] = 18;
    ip[15] = (uint8_t)(1 + (k == 1));
    ip[16] = 198;
    ip[17] = 18;
    ip[19] = 2;
    if (d->hlen == 24) {
        ip[20] = 0x94; /* router alert */
        ip[21] = 4;
    }
    uint32_t x = seed ^ (k * 0x9e3779b9u);
    for (unsigned i = 0; i < d->plen; i++) {
        x = x * 1103515245u + 12345u;
        ip[d->hlen + i] = (uint8_t)(x >> 16);
    }
}

/* Builds the fragment [off, off + n) of d into out; returns its length. */
static size_t fz_piece(const struct fz_dgram *d, uint8_t *out, unsigned off, unsigned n, int mf)
{
    const uint8_t *ip = d->frame + d->l3_off;
    memcpy(out, d->frame, (size_t)d->l3_off + d->hlen);
    uint8_t *o = out + d->l3_off;
    wr16(o + 2, (uint16_t)(d->hlen + n));
    wr16(o + 6, (uint16_t)(off / 8 | (mf ? MQO_IPV4_MF : 0)));
    uint16_t c = mqo_ipv4_cksum(o, d->hlen);
    memcpy(o + 10, &c, 2);
    memcpy(o + d->hlen, ip + d->hlen + off, n);
    return (size_t)d->l3_off + d->hlen + n;
}

/* The reassembler under a program of 4-byte steps {op, a, b, c} after a config byte. */
static void fuzz_reasm(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    uint8_t conf = data[0];
    struct mqo_frag_cfg cfg = {.keep = conf & 1,
                               .max_dgrams = conf & 2 ? 2 : 0,
                               .max_bytes = conf & 4 ? 12000 : 0,
                               .timeout_ns = conf & 8 ? NS : 0};
    struct mqo_frag *r = mqo_frag_new(&cfg);
    CHECK(r != NULL);
    size_t max_bytes = conf & 4 ? 12000 : 4u << 20;
    static struct fz_dgram d[4];
    uint32_t seed = (uint32_t)size * 2654435761u;
    for (unsigned k = 0; k < 4; k++)
        fz_make(&d[k], k, seed);
    struct fz_ctx ctx = {d, 4, 0};
    uint8_t piece[sizeof d[0].frame + 8], last[sizeof piece];
    size_t last_len = 0;
    uint64_t now = 0, passed = 0;
    for (size_t i = 1; i + 4 <= size; i += 4) {
        uint8_t op = data[i], a = data[i + 1], b = data[i + 2], c = data[i + 3];
        struct fz_dgram *g = &d[(op >> 3) & 3];
        struct mqo_frag_info in;
        int rc = -1;
        switch (op & 7) {
        case 0:
        case 1:
        case 2: { /* a fragment: offset a*8, length (b+1)*8, MF unless it reaches the end */
            unsigned off = ((unsigned)a * 8) % ((g->plen + 7u) & ~7u);
            unsigned n = ((unsigned)b + 1) * 8;
            if (off + n >= g->plen)
                n = g->plen - off;
            int mf = off + n < g->plen;
            if (c & 2)
                mf = !mf; /* a lie about the end */
            size_t l = fz_piece(g, piece, off, n, mf);
            if (c & 1) /* an altered byte: a conflict where the bytes overlap */
                piece[l - 1 - (c >> 2) % n] ^= 0x5a;
            if (c & 3)
                g->dirty = 1;
            memcpy(last, piece, l);
            last_len = l;
            rc = mqo_frag_add(r, piece, l, now, &in);
            break;
        }
        case 3: /* the last fragment again */
            if (last_len)
                rc = mqo_frag_add(r, last, last_len, now, &in);
            break;
        case 4:
            now += (uint64_t)a * NS / 8;
            break;
        case 5: {
            struct mqo_frag_key k;
            const uint8_t *ip = g->frame + g->l3_off;
            memcpy(&k.saddr, ip + 12, 4);
            memcpy(&k.daddr, ip + 16, 4);
            k.id = rd16(ip + 4);
            k.proto = 6;
            int n = mqo_frag_decide(r, &k, a & 1 ? MQO_FRAG_PASS : MQO_FRAG_REASSEMBLE, fz_out,
                                    &ctx);
            if (n > 0)
                passed += (uint64_t)n;
            break;
        }
        case 6:
            mqo_frag_expire(r, now);
            break;
        case 7: { /* raw bytes of the input as a frame */
            size_t n = size - i < 64 ? size - i : 64;
            rc = mqo_frag_add(r, data + i, n, now, &in);
            if (rc >= 0) /* it may have forged a fragment of any of them */
                for (unsigned k = 0; k < 4; k++)
                    d[k].dirty = 1;
            break;
        }
        }
        if (rc == MQO_FRAG_PASSED)
            passed++;
        if (rc == MQO_FRAG_DONE) {
            struct mqo_eth e;
            struct mqo_ipv4 ip;
            CHECK(mqo_parse_eth(in.frame, in.len, &e) == 0);
            CHECK(mqo_parse_ipv4(in.frame + e.l3_off, in.len - e.l3_off, 0, &ip) == 0);
            CHECK(!(ip.flags & MQO_IPV4_F_FRAG) && (size_t)e.l3_off + ip.tot_len == in.len);
            CHECK(in.head_len == (ip.l4_len < MQO_FRAG_HEAD ? ip.l4_len : MQO_FRAG_HEAD));
            for (unsigned k = 0; k < 4; k++) {
                const uint8_t *gi = d[k].frame + d[k].l3_off;
                const uint8_t *oi = in.frame + e.l3_off;
                if (d[k].dirty || memcmp(oi + 12, gi + 12, 8) || rd16(oi + 4) != rd16(gi + 4))
                    continue;
                CHECK(ip.l4_len == d[k].plen && ip.hlen == d[k].hlen);
                CHECK(memcmp(oi + ip.hlen, gi + d[k].hlen, d[k].plen) == 0);
            }
        }
        const struct mqo_frag_stats *st = mqo_frag_stats(r);
        CHECK(st->bytes_held <= max_bytes);
        CHECK(st->in_progress <= (conf & 2 ? 2u : 1024u));
        CHECK(st->passed == passed && ctx.passed <= passed);
    }
    mqo_frag_expire(r, now + 31 * NS);
    CHECK(mqo_frag_stats(r)->in_progress == 0 && mqo_frag_stats(r)->bytes_held == 0);
    mqo_frag_free(r);
}

static void fuzz_gso(const uint8_t *data, size_t size)
{
    if (size < MQO_VNET_HDR_LEN)
        return;
    struct mqo_vnet_hdr h;
    mqo_vnet_load(&h, data);
    uint8_t raw[MQO_VNET_HDR_LEN];
    mqo_vnet_store(&h, raw);
    CHECK(memcmp(raw, data, sizeof raw) == 0);
    uint32_t len = (uint32_t)(size - MQO_VNET_HDR_LEN);
    uint8_t *f = malloc(len ? len : 1);
    CHECK(f != NULL);
    memcpy(f, data + MQO_VNET_HDR_LEN, len);
    uint16_t fl = 0, seg = 0;
    if (mqo_vnet_rx(&h, f, len, &fl, &seg) == 0 && (fl & MQO_FRAME_TSO)) {
        CHECK(seg > 0 && (fl & MQO_FRAME_CSUM_PARTIAL));
        struct mqo_tso_split sp;
        int n = mqo_tso_split_init(&sp, f, len, seg);
        CHECK(n >= 2);
        uint32_t hdr = sp.hdr_len, got = 0, payload = sp.payload;
        uint8_t *out = malloc((size_t)hdr + seg);
        CHECK(out != NULL);
        /* headers the parsers take (the IPv4 sum aside: each segment gets its own) give
         * segments they take whole */
        struct mqo_hdrs in;
        int parses = mqo_parse_frame(f, len, MQO_PARSE_NO_CSUM, &in) == 0;
        for (int k = 0; k < n; k++) {
            uint32_t ol = mqo_tso_split_next(&sp, out, hdr + seg);
            CHECK(ol > hdr && ol - hdr <= seg);
            if (parses) {
                struct mqo_hdrs pk;
                CHECK(mqo_parse_frame(out, ol, 0, &pk) == 0);
                CHECK(pk.payload_off == hdr);
                uint32_t s = mqo_cksum_pseudo4(pk.ip.saddr, pk.ip.daddr, 6, pk.ip.l4_len, 0);
                CHECK(mqo_cksum_fold(mqo_cksum_partial(out + pk.l4_off, pk.ip.l4_len, s)) == 0);
            }
            CHECK(memcmp(out + hdr, f + hdr + got, ol - hdr) == 0);
            got += ol - hdr;
        }
        CHECK(got == payload);
        CHECK(mqo_tso_split_next(&sp, out, hdr + seg) == 0);
        free(out);
    }
    /* on send, with flags and a segment size from the header's bytes */
    uint16_t tfl = (uint16_t)((data[0] & 1 ? MQO_FRAME_CSUM_PARTIAL : 0) |
                              (data[0] & 2 ? MQO_FRAME_TSO : 0));
    uint32_t head = len > 0 ? (uint32_t)(data[1] * (uint64_t)len / 255) : 0;
    struct mqo_vnet_hdr a, b;
    int r = mqo_vnet_tx(&a, f, head, len, tfl, h.gso_size);
    CHECK(r >= -1 && r <= 1);
    if (r == 1) {
        CHECK((uint32_t)a.csum_start + a.csum_offset + 2 <= head);
        CHECK(a.hdr_len <= head && a.flags == MQO_VNET_F_NEEDS_CSUM);
        uint8_t *c = malloc(head ? head : 1);
        CHECK(c != NULL);
        memcpy(c, f, head);
        CHECK(mqo_vnet_tx(&b, f, head, len, tfl, h.gso_size) == 1);
        CHECK(memcmp(&a, &b, sizeof a) == 0 && memcmp(c, f, head) == 0);
        free(c);
    }
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mqo_hdrs pk;
    if (mqo_parse_frame(data, size, 0, &pk) == 0)
        check_pkt(data, size, &pk);
    if (mqo_parse_frame(data, size, MQO_PARSE_NO_CSUM, &pk) == 0)
        check_pkt(data, size, &pk);
    /* each parser alone, at the start of the input */
    struct mqo_eth e;
    if (mqo_parse_eth(data, size, &e) == 0)
        CHECK(e.l3_off <= size && e.ntags <= MQO_ETH_MAX_TAGS);
    struct mqo_ipv4 ip;
    if (mqo_parse_ipv4(data, size, MQO_PARSE_NO_CSUM, &ip) == 0)
        CHECK(ip.hlen >= 20 && ip.tot_len <= size && ip.l4_len == ip.tot_len - ip.hlen);
    struct mqo_tcp t;
    if (mqo_parse_tcp(data, size, &t) == 0)
        CHECK(t.hlen >= 20 && t.hlen <= size && t.hlen + t.payload_len == size);
    struct mqo_tcp_opts o;
    (void)mqo_tcp_parse_opts(data, size < 40 ? size : 40, 20, &o);
    fuzz_csum(data, size);
    fuzz_complete(data, size);
    fuzz_l2(data, size);
    fuzz_impair(data, size);
    fuzz_split(data, size);
    fuzz_reasm(data, size);
    fuzz_gso(data, size);
    return 0;
}
