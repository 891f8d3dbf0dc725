/* l2/parse: header parsing and the Internet checksum. See parse.h for the contracts. */
#include "l2/parse.h"

#include <string.h>

#include "core/bytes.h"

static const char *const perr_names[MQO_P__COUNT] = {
    [MQO_P_OK] = "ok",
    [MQO_P_TRUNC] = "truncated",
    [MQO_P_VLAN_DEPTH] = "too many VLAN tags",
    [MQO_P_IP_VERSION] = "IP version not 4",
    [MQO_P_IP_IHL] = "IPv4 IHL < 5",
    [MQO_P_IP_LEN] = "IPv4 total length invalid",
    [MQO_P_IP_CSUM] = "IPv4 header checksum wrong",
    [MQO_P_TCP_DOFF] = "TCP data offset invalid",
    [MQO_P_TCP_OPT] = "TCP options malformed",
    [MQO_P_NOT_IPV4] = "not IPv4",
    [MQO_P_NOT_TCP] = "not TCP",
    [MQO_P_FRAGMENT] = "IPv4 fragment",
};

const char *mqo_perr_str(int e)
{
    if (e < 0)
        e = -e;
    return e < MQO_P__COUNT ? perr_names[e] : "unknown";
}


/* ---- Ethernet ---------------------------------------------------------------------------- */

int mqo_parse_eth(const uint8_t *p, size_t len, struct mqo_eth *e)
{
    if (len < MQO_ETH_HLEN)
        return -MQO_P_TRUNC;
    e->dst = p;
    e->src = p + 6;
    e->ntags = 0;
    size_t off = 12;
    uint16_t type = rd16(p + off);
    while (type == MQO_ETHERTYPE_VLAN || type == MQO_ETHERTYPE_QINQ ||
           type == MQO_ETHERTYPE_QINQ_OLD) {
        if (e->ntags == MQO_ETH_MAX_TAGS)
            return -MQO_P_VLAN_DEPTH;
        /* tag: TPID (at off) + TCI, then the next type */
        if (len < off + 6)
            return -MQO_P_TRUNC;
        e->tci[e->ntags++] = rd16(p + off + 2);
        off += 4;
        type = rd16(p + off);
    }
    e->type = type;
    e->l3_off = (uint16_t)(off + 2);
    return 0;
}

/* ---- IPv4 -------------------------------------------------------------------------------- */

int mqo_parse_ipv4(const uint8_t *p, size_t len, unsigned opts, struct mqo_ipv4 *ip)
{
    if (len < 20)
        return -MQO_P_TRUNC;
    if (p[0] >> 4 != 4)
        return -MQO_P_IP_VERSION;
    unsigned hlen = (p[0] & 0x0f) * 4u;
    if (hlen < 20)
        return -MQO_P_IP_IHL;
    if (hlen > len)
        return -MQO_P_TRUNC;
    unsigned tot = rd16(p + 2);
    if (tot < hlen)
        return -MQO_P_IP_LEN;
    if (tot > len)
        return -MQO_P_IP_LEN;
    if (!(opts & MQO_PARSE_NO_CSUM) && mqo_cksum_fold(mqo_cksum_partial(p, hlen, 0)) != 0)
        return -MQO_P_IP_CSUM;
    ip->hlen = (uint8_t)hlen;
    ip->tos = p[1];
    ip->tot_len = (uint16_t)tot;
    ip->id = rd16(p + 4);
    uint16_t fo = rd16(p + 6);
    ip->frag_off = (uint16_t)((fo & MQO_IPV4_OFFMASK) * 8u);
    ip->flags = 0;
    if ((fo & MQO_IPV4_MF) || (fo & MQO_IPV4_OFFMASK))
        ip->flags |= MQO_IPV4_F_FRAG;
    if (!(fo & MQO_IPV4_OFFMASK))
        ip->flags |= MQO_IPV4_F_FIRST;
    if (fo & MQO_IPV4_DF)
        ip->flags |= MQO_IPV4_F_DF;
    if (hlen > 20)
        ip->flags |= MQO_IPV4_F_OPTIONS;
    ip->ttl = p[8];
    ip->proto = p[9];
    memcpy(&ip->saddr, p + 12, 4);
    memcpy(&ip->daddr, p + 16, 4);
    ip->l4_len = (uint16_t)(tot - hlen);
    return 0;
}

/* ---- TCP --------------------------------------------------------------------------------- */

int mqo_tcp_parse_opts(const uint8_t *opt, size_t olen, unsigned base_off, struct mqo_tcp_opts *o)
{
    memset(o, 0, sizeof *o);
    size_t i = 0;
    while (i < olen) {
        uint8_t kind = opt[i];
        if (kind == MQO_TCPOPT_EOL)
            break;
        if (kind == MQO_TCPOPT_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= olen)
            return -MQO_P_TCP_OPT;
        size_t ol = opt[i + 1];
        if (ol < 2 || i + ol > olen)
            return -MQO_P_TCP_OPT;
        const uint8_t *v = opt + i + 2;
        uint8_t off = (uint8_t)(base_off + i);
        switch (kind) {
        case MQO_TCPOPT_MSS:
            if (ol != 4)
                goto badlen;
            o->present |= MQO_TCPO_MSS;
            o->mss = rd16(v);
            o->mss_off = off;
            break;
        case MQO_TCPOPT_WSCALE:
            if (ol != 3)
                goto badlen;
            o->present |= MQO_TCPO_WSCALE;
            o->wscale = v[0];
            o->wscale_off = off;
            break;
        case MQO_TCPOPT_SACK_PERM:
            if (ol != 2)
                goto badlen;
            o->present |= MQO_TCPO_SACK_PERM;
            o->sack_perm_off = off;
            break;
        case MQO_TCPOPT_SACK: {
            size_t n = (ol - 2) / 8;
            if ((ol - 2) % 8 || n < 1 || n > MQO_TCP_MAX_SACK)
                goto badlen;
            o->present |= MQO_TCPO_SACK;
            o->nsack = (uint8_t)n;
            for (size_t k = 0; k < n; k++) {
                o->sack[k][0] = rd32(v + 8 * k);
                o->sack[k][1] = rd32(v + 8 * k + 4);
            }
            o->sack_off = off;
            break;
        }
        case MQO_TCPOPT_TS:
            if (ol != 10)
                goto badlen;
            o->present |= MQO_TCPO_TS;
            o->ts_val = rd32(v);
            o->ts_ecr = rd32(v + 4);
            o->ts_off = off;
            break;
        default:
            o->present |= MQO_TCPO_UNKNOWN;
            break;
        }
        i += ol;
        continue;
    badlen:
        o->present |= MQO_TCPO_BADLEN;
        i += ol;
    }
    return 0;
}

int mqo_parse_tcp(const uint8_t *p, size_t len, struct mqo_tcp *t)
{
    if (len < 20)
        return -MQO_P_TRUNC;
    unsigned hlen = (p[12] >> 4) * 4u;
    if (hlen < 20 || hlen > len)
        return -MQO_P_TCP_DOFF;
    t->sport = rd16(p);
    t->dport = rd16(p + 2);
    t->seq = rd32(p + 4);
    t->ack = rd32(p + 8);
    t->hlen = (uint8_t)hlen;
    t->flags = p[13];
    t->win = rd16(p + 14);
    memcpy(&t->csum, p + 16, 2);
    t->urg = rd16(p + 18);
    t->payload_len = (uint16_t)(len - hlen);
    return mqo_tcp_parse_opts(p + 20, hlen - 20, 20, &t->opt);
}

int mqo_parse_frame(const uint8_t *p, size_t len, unsigned opts, struct mqo_hdrs *pkt)
{
    int r = mqo_parse_eth(p, len, &pkt->eth);
    if (r)
        return r;
    if (pkt->eth.type != MQO_ETHERTYPE_IPV4)
        return -MQO_P_NOT_IPV4;
    pkt->l3_off = pkt->eth.l3_off;
    r = mqo_parse_ipv4(p + pkt->l3_off, len - pkt->l3_off, opts, &pkt->ip);
    if (r)
        return r;
    if (pkt->ip.flags & MQO_IPV4_F_FRAG)
        return -MQO_P_FRAGMENT;
    if (pkt->ip.proto != 6)
        return -MQO_P_NOT_TCP;
    pkt->l4_off = (uint16_t)(pkt->l3_off + pkt->ip.hlen);
    r = mqo_parse_tcp(p + pkt->l4_off, pkt->ip.l4_len, &pkt->tcp);
    if (r)
        return r;
    pkt->payload_off = (uint16_t)(pkt->l4_off + pkt->tcp.hlen);
    return 0;
}

/* ---- Internet checksum ------------------------------------------------------------------- */

/* 8 bytes a step: each 64-bit word is added as two 32-bit halves into 64-bit accumulators, so
 * no carry is lost (2^31 steps fit; chunks keep it far below) and the 16-bit lanes stay in
 * place; folding at the end is arithmetic mod 0xffff, which is what the end-around carry is.
 * memcpy loads make any alignment right; the compiler turns them into plain loads. */
#define CSUM_CHUNK ((size_t)1 << 30)

static uint64_t csum_words(const uint8_t *p, size_t n8)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    while (n8 >= 4) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + 8, 8);
        memcpy(&w2, p + 16, 8);
        memcpy(&w3, p + 24, 8);
        a += (uint32_t)w0 + (w0 >> 32);
        b += (uint32_t)w1 + (w1 >> 32);
        c += (uint32_t)w2 + (w2 >> 32);
        d += (uint32_t)w3 + (w3 >> 32);
        p += 32;
        n8 -= 4;
    }
    while (n8--) {
        uint64_t w;
        memcpy(&w, p, 8);
        a += (uint32_t)w + (w >> 32);
        p += 8;
    }
    /* each accumulator < 2^61 here: the sum of four cannot overflow */
    return a + b + c + d;
}

static inline uint32_t fold64(uint64_t s)
{
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffffffu) + (s >> 32);
    return (uint32_t)s;
}

uint32_t mqo_cksum_partial(const void *buf, size_t len, uint32_t sum)
{
    const uint8_t *p = buf;
    uint64_t acc = sum;
    while (len >= 8) {
        size_t n = len < CSUM_CHUNK ? len : CSUM_CHUNK;
        size_t n8 = n / 8;
        acc = fold64(acc + csum_words(p, n8));
        p += n8 * 8;
        len -= n8 * 8;
    }
    if (len) {
        /* 1..7 bytes starting at an offset that is a multiple of 8: same lanes when padded */
        uint8_t t[8] = {0};
        uint64_t w;
        memcpy(t, p, len);
        memcpy(&w, t, 8);
        acc += (uint32_t)w + (w >> 32);
    }
    return fold64(acc);
}

/* Two memory-order 16-bit lanes of a big-endian value, as the sum sees them. */
static inline uint32_t be16_lane(uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    uint16_t r;
    memcpy(&r, b, 2);
    return r;
}

uint32_t mqo_cksum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto, uint16_t l4_len,
                          uint32_t sum)
{
    uint64_t s = sum;
    s += (saddr & 0xffff) + (saddr >> 16);
    s += (daddr & 0xffff) + (daddr >> 16);
    s += be16_lane(proto);
    s += be16_lane(l4_len);
    return fold64(s);
}

uint16_t mqo_cksum_update16(uint16_t check, uint16_t old_v, uint16_t new_v)
{
    uint32_t s = (uint32_t)(uint16_t)~check + (uint16_t)~old_v + new_v;
    return mqo_cksum_fold(s);
}

uint16_t mqo_cksum_update32(uint16_t check, uint32_t old_v, uint32_t new_v)
{
    uint32_t s = (uint32_t)(uint16_t)~check;
    s += (uint16_t)~(old_v & 0xffff);
    s += (uint16_t)~(old_v >> 16);
    s += new_v & 0xffff;
    s += new_v >> 16;
    return mqo_cksum_fold(s);
}

uint16_t mqo_cksum_replace(uint16_t check, uint32_t old_sum, uint32_t new_sum)
{
    uint32_t s = (uint16_t)~check;
    s = mqo_cksum_add(s, ~old_sum);
    s = mqo_cksum_add(s, new_sum);
    return mqo_cksum_fold(s);
}

uint16_t mqo_ipv4_cksum(const uint8_t *iph, size_t hlen)
{
    uint16_t field;
    memcpy(&field, iph + 10, 2);
    uint32_t s = mqo_cksum_partial(iph, hlen, 0);
    return mqo_cksum_fold(mqo_cksum_sub(s, field));
}

uint16_t mqo_l4_cksum4(uint32_t saddr, uint32_t daddr, uint8_t proto, const uint8_t *l4,
                      size_t l4_len, size_t field_off)
{
    uint32_t s = mqo_cksum_pseudo4(saddr, daddr, proto, (uint16_t)l4_len, 0);
    s = mqo_cksum_partial(l4, l4_len, s);
    if (field_off + 2 <= l4_len) {
        uint16_t field;
        memcpy(&field, l4 + field_off, 2);
        /* field_off is even (TCP 16, UDP 6): the field is in its own lane */
        s = mqo_cksum_sub(s, field);
    }
    return mqo_cksum_fold(s);
}

int mqo_cksum_complete4(uint8_t *frame, size_t len)
{
    struct mqo_eth e;
    struct mqo_ipv4 ip;
    int r = mqo_parse_eth(frame, len, &e);
    if (r)
        return r;
    if (e.type != MQO_ETHERTYPE_IPV4)
        return 0;
    r = mqo_parse_ipv4(frame + e.l3_off, len - e.l3_off, 0, &ip);
    if (r)
        return r;
    if (ip.flags & MQO_IPV4_F_FRAG)
        return 0;
    uint8_t *l4 = frame + e.l3_off + ip.hlen;
    size_t field_off;
    if (ip.proto == 6 && ip.l4_len >= 20)
        field_off = 16;
    else if (ip.proto == 17 && ip.l4_len >= 8)
        field_off = 6;
    else
        return 0;
    uint16_t c = mqo_l4_cksum4(ip.saddr, ip.daddr, ip.proto, l4, ip.l4_len, field_off);
    if (ip.proto == 17 && c == 0)
        c = 0xffff; /* UDP: 0 means "no checksum"; RFC 768 sends all ones instead */
    memcpy(l4 + field_off, &c, 2);
    return 1;
}
