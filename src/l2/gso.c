/* Segmentation offload on frames; see gso.h. */
#include "l2/gso.h"

#include <string.h>

#include "core/bytes.h"
#include "l2/parse.h"
#include "pktio/pktio.h"


void mqo_vnet_load(struct mqo_vnet_hdr *h, const uint8_t *p)
{
    h->flags = p[0];
    h->gso_type = p[1];
    memcpy(&h->hdr_len, p + 2, 2);
    memcpy(&h->gso_size, p + 4, 2);
    memcpy(&h->csum_start, p + 6, 2);
    memcpy(&h->csum_offset, p + 8, 2);
}

void mqo_vnet_store(const struct mqo_vnet_hdr *h, uint8_t *p)
{
    p[0] = h->flags;
    p[1] = h->gso_type;
    memcpy(p + 2, &h->hdr_len, 2);
    memcpy(p + 4, &h->gso_size, 2);
    memcpy(p + 6, &h->csum_start, 2);
    memcpy(p + 8, &h->csum_offset, 2);
}

/* The IPv4 TCP/UDP headers of a frame whose head holds them: l3 and l4 offsets, the L4
 * protocol and length (from the IPv4 total length: the whole frame's), the TCP header length.
 * 0, or -1. */
struct l4info {
    uint16_t l3_off, l4_off, thl;
    uint8_t proto;
    uint32_t l4_len;
    uint32_t saddr, daddr;
};

static int l4_of(const uint8_t *f, uint32_t len, struct l4info *o)
{
    struct mqo_eth e;
    if (mqo_parse_eth(f, len, &e) || e.type != MQO_ETHERTYPE_IPV4 || len < e.l3_off + 20u)
        return -1;
    const uint8_t *ip = f + e.l3_off;
    unsigned ihl = (unsigned)(ip[0] & 15) * 4;
    if (ip[0] >> 4 != 4 || ihl < 20 || len < e.l3_off + ihl)
        return -1;
    if (rd16(ip + 6) & (MQO_IPV4_MF | MQO_IPV4_OFFMASK))
        return -1; /* a fragment: no L4 header of its own to offload */
    uint16_t tot = rd16(ip + 2);
    if (tot < ihl)
        return -1;
    o->l3_off = e.l3_off;
    o->l4_off = (uint16_t)(e.l3_off + ihl);
    o->proto = ip[9];
    o->l4_len = tot - ihl;
    memcpy(&o->saddr, ip + 12, 4);
    memcpy(&o->daddr, ip + 16, 4);
    o->thl = 0;
    if (o->proto == 6) {
        if (len < o->l4_off + 20u || o->l4_len < 20)
            return -1;
        o->thl = (uint16_t)((f[o->l4_off + 12] >> 4) * 4);
        if (o->thl < 20 || len < (uint32_t)o->l4_off + o->thl || o->l4_len < o->thl)
            return -1;
    } else if (o->proto == 17) {
        if (len < o->l4_off + 8u || o->l4_len < 8)
            return -1;
    } else {
        return -1;
    }
    return 0;
}

/* The pseudo-header sum as a partial checksum field holds it (not complemented), with the L4
 * length or without (TSO's convention). */
static void put_pseudo(uint8_t *field, const struct l4info *l, uint16_t l4_len)
{
    uint16_t v = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(l->saddr, l->daddr, l->proto, l4_len, 0));
    memcpy(field, &v, 2);
}

int mqo_vnet_rx(const struct mqo_vnet_hdr *h, uint8_t *frame, uint32_t len, uint16_t *flags,
                uint16_t *seg)
{
    uint16_t fl = 0;
    *seg = 0;
    if (h->flags & MQO_VNET_F_NEEDS_CSUM) {
        if ((uint32_t)h->csum_start + h->csum_offset + 2 > len)
            return -1;
        fl |= MQO_FRAME_CSUM_PARTIAL;
    }
    if (h->flags & MQO_VNET_F_DATA_VALID)
        fl |= MQO_FRAME_CSUM_VALID;
    uint8_t gt = h->gso_type & (uint8_t)~MQO_VNET_GSO_ECN;
    if (gt == MQO_VNET_GSO_NONE) {
        *flags = fl;
        return 0;
    }
    struct l4info l;
    if (gt != MQO_VNET_GSO_TCPV4 || !h->gso_size || l4_of(frame, len, &l) || l.proto != 6 ||
        (uint32_t)l.l4_off + l.l4_len > len)
        return -1;
    if (l.l4_len - l.thl <= h->gso_size) {
        /* one segment: an ordinary frame (its checksum as the flags say) */
        *flags = fl;
        return 0;
    }
    /* The kernel checked (GRO) or will compute (a local sender's GSO) every segment's sum:
     * the field becomes what a TSO device starts from. */
    put_pseudo(frame + l.l4_off + 16, &l, 0);
    *flags = (uint16_t)((fl & ~MQO_FRAME_CSUM_VALID) | MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_TSO);
    *seg = h->gso_size;
    return 0;
}

int mqo_vnet_tx(struct mqo_vnet_hdr *h, uint8_t *head, uint32_t len, uint32_t total,
                uint16_t flags, uint16_t seg)
{
    memset(h, 0, sizeof *h);
    int tso = (flags & MQO_FRAME_TSO) && seg;
    if (!tso && !(flags & MQO_FRAME_CSUM_PARTIAL))
        return 0;
    struct l4info l;
    if (l4_of(head, len, &l) || (tso && l.proto != 6) || (uint64_t)l.l4_off + l.l4_len > total)
        return tso ? -1 : 0;
    h->flags = MQO_VNET_F_NEEDS_CSUM;
    h->csum_start = l.l4_off;
    h->csum_offset = l.proto == 6 ? 16 : 6;
    h->hdr_len = (uint16_t)(l.l4_off + (l.proto == 6 ? l.thl : 8));
    if (tso) {
        /* Linux's GSO starts from the pseudo-header sum with the super-segment's length and
         * adjusts it per segment */
        put_pseudo(head + l.l4_off + 16, &l, (uint16_t)l.l4_len);
        if (l.l4_len - l.thl > seg) {
            h->gso_type = MQO_VNET_GSO_TCPV4;
            h->gso_size = seg;
        }
    }
    return 1;
}

int mqo_tso_split_init(struct mqo_tso_split *s, const uint8_t *frame, uint32_t len, uint16_t seg)
{
    struct l4info l;
    if (!seg || l4_of(frame, len, &l) || l.proto != 6 ||
        (uint32_t)l.l4_off + l.l4_len > len)
        return -1;
    memset(s, 0, sizeof *s);
    s->frame = frame;
    s->len = len;
    s->l3_off = l.l3_off;
    s->l4_off = l.l4_off;
    s->hdr_len = (uint16_t)(l.l4_off + l.thl);
    s->seg = seg;
    s->payload = l.l4_len - l.thl;
    s->seq = rd32(frame + l.l4_off + 4);
    s->id = rd16(frame + l.l3_off + 4);
    s->tcp_flags = frame[l.l4_off + 13];
    s->saddr = l.saddr;
    s->daddr = l.daddr;
    return s->payload ? (int)((s->payload + seg - 1) / seg) : 1;
}

uint32_t mqo_tso_split_next(struct mqo_tso_split *s, uint8_t *out, uint32_t cap)
{
    if (s->off >= s->payload && (s->payload || s->k))
        return 0;
    uint32_t n = s->payload - s->off;
    if (n > s->seg)
        n = s->seg;
    uint32_t flen = s->hdr_len + n;
    if (flen > cap)
        return 0;
    memcpy(out, s->frame, s->hdr_len);
    memcpy(out + s->hdr_len, s->frame + s->hdr_len + s->off, n);
    int last = s->off + n >= s->payload;
    uint8_t *ip = out + s->l3_off, *tcp = out + s->l4_off;
    uint16_t ihl = (uint16_t)(s->l4_off - s->l3_off);
    uint16_t thl = (uint16_t)(s->hdr_len - s->l4_off);
    wr16(ip + 2, (uint16_t)(ihl + thl + n));
    wr16(ip + 4, (uint16_t)(s->id + s->k));
    wr16(ip + 10, 0);
    uint16_t ic = mqo_ipv4_cksum(ip, ihl);
    memcpy(ip + 10, &ic, 2);
    wr32(tcp + 4, s->seq + s->off);
    uint8_t fl = s->tcp_flags;
    if (!last)
        fl &= (uint8_t)~(MQO_TCP_FIN | MQO_TCP_PSH);
    if (s->k)
        fl &= (uint8_t)~MQO_TCP_CWR;
    tcp[13] = fl;
    uint16_t tc = mqo_l4_cksum4(s->saddr, s->daddr, 6, tcp, thl + n, 16);
    memcpy(tcp + 16, &tc, 2);
    s->off += n;
    s->k++;
    return flen;
}
