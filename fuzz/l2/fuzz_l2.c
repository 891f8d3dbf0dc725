/* libFuzzer target for l2/: frame bytes through every parser (no crash, no read past the
 * input), parse invariants, the checksum helpers against a naive RFC 1071 sum, checksum
 * completion verified by re-parsing, the forwarding decision, and the impairment and static
 * table parsers with the input read as text. Also built as a plain replay binary (make). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l2/impair.h"
#include "l2/l2.h"
#include "l2/parse.h"

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
    return 0;
}
