/* l2/frag: see frag.h.
 *
 * A datagram in progress holds its payload in one buffer, each byte at its own offset (grown
 * as fragments arrive), and a sorted list of the byte ranges held, merged where they touch:
 * "complete" is the one range [0, total), and an overlap is checked with memcmp against the
 * buffer. A datagram passed untouched keeps only its ranges, to know when all of it went by.
 * Datagrams sit in a chained hash table by key and in a list by age, oldest first, which is
 * both the timeout order (the timeout runs from the first fragment, as in Linux) and the
 * eviction order.
 */
#include "l2/frag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/map.h"
#include "l2/parse.h"

#define NS 1000000000ull
#define IP_MAX 65535u

struct range {
    uint32_t start, end;
};

/* A copy of a fragment frame, kept while its datagram is undecided. */
struct kept {
    struct kept *next;
    uint32_t len;
    uint8_t data[];
};

struct dgram {
    struct dgram *hnext;         /* hash chain */
    struct dgram *older, *newer; /* age list */
    struct mqo_frag_key key;
    uint64_t born;
    uint8_t verdict;             /* enum mqo_frag_verdict */
    uint8_t have_first, have_last;
    uint8_t complete;            /* returned with MQO_FRAG_DONE, waiting for the verdict */
    uint8_t l2_len, ip_hlen;
    uint8_t hdr[MQO_FRAG_L2_MAX + 60]; /* L2 and IPv4 header of the fragment at offset 0 */
    uint32_t total;              /* payload length, known with the last fragment */
    uint32_t max_end;            /* highest payload end seen */
    struct range *rg;
    uint32_t nrg, caprg;
    uint8_t *data;               /* payload at its offsets; NULL once passed or complete */
    uint32_t cap;
    struct kept *kept, **kept_tail;
    uint32_t nkept;
    size_t kept_bytes;
    size_t bytes;                /* what it counts in mqo_frag.bytes */
};

struct mqo_frag {
    struct mqo_frag_cfg cfg;
    struct mqo_frag_stats st;
    struct dgram **tab;
    size_t mask;
    struct dgram *oldest, *newest;
    uint8_t *out; /* the frame of the last completed datagram */
};


/* ---- table ------------------------------------------------------------------------------- */

static size_t slot_of(const struct mqo_frag *r, const struct mqo_frag_key *k)
{
    uint8_t b[11];
    memcpy(b, &k->saddr, 4);
    memcpy(b + 4, &k->daddr, 4);
    b[8] = (uint8_t)(k->id >> 8);
    b[9] = (uint8_t)k->id;
    b[10] = k->proto;
    return (size_t)mqo_hash64(b, sizeof b, r->cfg.seed) & r->mask;
}

static int key_eq(const struct mqo_frag_key *a, const struct mqo_frag_key *b)
{
    return a->saddr == b->saddr && a->daddr == b->daddr && a->id == b->id && a->proto == b->proto;
}

static struct dgram *find(const struct mqo_frag *r, const struct mqo_frag_key *k)
{
    for (struct dgram *d = r->tab[slot_of(r, k)]; d; d = d->hnext)
        if (key_eq(&d->key, k))
            return d;
    return NULL;
}

static size_t dg_bytes(const struct dgram *d)
{
    return sizeof *d + d->cap + (size_t)d->caprg * sizeof(struct range) + d->kept_bytes;
}

/* After any change of a datagram's memory. */
static void recount(struct mqo_frag *r, struct dgram *d)
{
    size_t b = dg_bytes(d);
    r->st.bytes_held = r->st.bytes_held - d->bytes + b;
    d->bytes = b;
}

static void drop_kept(struct dgram *d)
{
    for (struct kept *k = d->kept, *n; k; k = n) {
        n = k->next;
        free(k);
    }
    d->kept = NULL;
    d->kept_tail = &d->kept;
    d->nkept = 0;
    d->kept_bytes = 0;
}

static void dg_free(struct mqo_frag *r, struct dgram *d)
{
    struct dgram **pp = &r->tab[slot_of(r, &d->key)];
    while (*pp != d)
        pp = &(*pp)->hnext;
    *pp = d->hnext;
    if (d->older)
        d->older->newer = d->newer;
    else
        r->oldest = d->newer;
    if (d->newer)
        d->newer->older = d->older;
    else
        r->newest = d->older;
    drop_kept(d);
    free(d->data);
    free(d->rg);
    r->st.bytes_held -= d->bytes;
    r->st.in_progress--;
    free(d);
}

/* Drops datagrams, oldest first, other than `self`, until `need` more bytes fit. Returns 0, or
 * -1 when only `self` is left and they still do not fit. */
static int make_room(struct mqo_frag *r, const struct dgram *self, size_t need)
{
    while (r->st.bytes_held + need > r->cfg.max_bytes) {
        struct dgram *v = r->oldest;
        if (v && v == self)
            v = v->newer;
        if (!v)
            return -1;
        r->st.evicted++;
        dg_free(r, v);
    }
    return 0;
}

static struct dgram *create(struct mqo_frag *r, const struct mqo_frag_key *k, uint64_t now)
{
    if (r->st.in_progress >= r->cfg.max_dgrams && r->oldest) {
        r->st.evicted++;
        dg_free(r, r->oldest);
    }
    struct dgram *d;
    if (make_room(r, NULL, sizeof *d) || !(d = calloc(1, sizeof *d))) {
        r->st.nomem++;
        return NULL;
    }
    d->key = *k;
    d->born = now;
    d->verdict = r->cfg.keep ? MQO_FRAG_UNDECIDED : MQO_FRAG_REASSEMBLE;
    d->kept_tail = &d->kept;
    size_t s = slot_of(r, k);
    d->hnext = r->tab[s];
    r->tab[s] = d;
    d->older = r->newest;
    if (r->newest)
        r->newest->newer = d;
    else
        r->oldest = d;
    r->newest = d;
    r->st.in_progress++;
    recount(r, d);
    return d;
}

/* Drops the datagram for a reason (enum mqo_frag_err); returns the negative result. */
static int kill(struct mqo_frag *r, struct dgram *d, int err)
{
    if (err == MQO_FRAG_E_CONFLICT)
        r->st.conflicts++;
    else if (err == MQO_FRAG_E_TOO_BIG)
        r->st.too_big++;
    else
        r->st.nomem++;
    dg_free(r, d);
    return -err;
}

/* ---- ranges ------------------------------------------------------------------------------ */

/* Room for one more range. Returns 0 or -1 (the datagram is unchanged). */
static int range_reserve(struct mqo_frag *r, struct dgram *d)
{
    if (d->nrg < d->caprg)
        return 0;
    uint32_t cap = d->caprg ? d->caprg * 2 : 4;
    if (make_room(r, d, (size_t)(cap - d->caprg) * sizeof(struct range)))
        return -1;
    struct range *v = realloc(d->rg, cap * sizeof *v);
    if (!v)
        return -1;
    d->rg = v;
    d->caprg = cap;
    recount(r, d);
    return 0;
}

/* Adds [start, end) to the sorted list, merging what it overlaps or touches (room reserved). */
static void range_add(struct dgram *d, uint32_t start, uint32_t end)
{
    uint32_t i = 0;
    while (i < d->nrg && d->rg[i].end < start)
        i++;
    uint32_t j = i;
    while (j < d->nrg && d->rg[j].start <= end)
        j++;
    /* rg[i, j) overlap or touch [start, end) */
    if (i == j) {
        memmove(d->rg + i + 1, d->rg + i, (d->nrg - i) * sizeof *d->rg);
        d->rg[i] = (struct range){start, end};
        d->nrg++;
        return;
    }
    if (d->rg[i].start < start)
        start = d->rg[i].start;
    if (d->rg[j - 1].end > end)
        end = d->rg[j - 1].end;
    d->rg[i] = (struct range){start, end};
    memmove(d->rg + i + 1, d->rg + j, (d->nrg - j) * sizeof *d->rg);
    d->nrg -= j - i - 1;
}

static int all_there(const struct dgram *d)
{
    return d->have_last && d->nrg == 1 && d->rg[0].start == 0 && d->rg[0].end == d->total;
}

static void show_head(const struct dgram *d, struct mqo_frag_info *info)
{
    if (d->data && d->nrg && d->rg[0].start == 0) {
        info->head = d->data;
        info->head_len = d->rg[0].end < MQO_FRAG_HEAD ? d->rg[0].end : MQO_FRAG_HEAD;
    }
}

/* ---- reassembly -------------------------------------------------------------------------- */

struct mqo_frag *mqo_frag_new(const struct mqo_frag_cfg *cfg)
{
    struct mqo_frag *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    if (!r->cfg.max_dgrams)
        r->cfg.max_dgrams = 1024;
    if (!r->cfg.max_bytes)
        r->cfg.max_bytes = 4u << 20;
    if (!r->cfg.timeout_ns)
        r->cfg.timeout_ns = 30 * NS;
    size_t n = 16;
    while (n < r->cfg.max_dgrams && n < ((size_t)1 << 20))
        n *= 2;
    r->mask = n - 1;
    r->tab = calloc(n, sizeof *r->tab);
    r->out = malloc(MQO_FRAG_OUT_MAX);
    if (!r->tab || !r->out) {
        mqo_frag_free(r);
        return NULL;
    }
    return r;
}

void mqo_frag_free(struct mqo_frag *r)
{
    if (!r)
        return;
    while (r->oldest)
        dg_free(r, r->oldest);
    free(r->tab);
    free(r->out);
    free(r);
}

const struct mqo_frag_stats *mqo_frag_stats(const struct mqo_frag *r) { return &r->st; }

unsigned mqo_frag_expire(struct mqo_frag *r, uint64_t now)
{
    unsigned n = 0;
    while (r->oldest && now >= r->oldest->born && now - r->oldest->born >= r->cfg.timeout_ns) {
        struct dgram *d = r->oldest;
        if (d->verdict != MQO_FRAG_PASS) {
            r->st.timeouts++;
            r->st.timeout_frags += d->nkept;
        }
        dg_free(r, d);
        n++;
    }
    return n;
}

uint64_t mqo_frag_next_timer(const struct mqo_frag *r, uint64_t now)
{
    if (!r->oldest)
        return UINT64_MAX;
    uint64_t t = r->oldest->born + r->cfg.timeout_ns;
    return t > now ? t - now : 0;
}

/* A fragment of a datagram passed untouched: only its coverage is recorded, so the marker
 * goes once all of the datagram went by. */
static void pass_track(struct mqo_frag *r, struct dgram *d, uint32_t off, uint32_t end, int mf)
{
    if (!mf && !d->have_last) {
        d->have_last = 1;
        d->total = end;
    }
    if (range_reserve(r, d)) {
        dg_free(r, d); /* no room to track it: the fragments pass all the same */
        return;
    }
    range_add(d, off, end);
    if (all_there(d))
        dg_free(r, d);
}

/* The datagram is whole: its frame into r->out. */
static size_t build(struct mqo_frag *r, const struct dgram *d)
{
    uint8_t *o = r->out;
    memcpy(o, d->hdr, (size_t)d->l2_len + d->ip_hlen);
    uint8_t *ip = o + d->l2_len;
    wr16(ip + 2, (uint16_t)(d->ip_hlen + d->total));
    wr16(ip + 6, rd16(ip + 6) & MQO_IPV4_DF); /* MF and the offset cleared */
    uint16_t c = mqo_ipv4_cksum(ip, d->ip_hlen);
    memcpy(ip + 10, &c, 2);
    memcpy(ip + d->ip_hlen, d->data, d->total);
    return (size_t)d->l2_len + d->ip_hlen + d->total;
}

int mqo_frag_add(struct mqo_frag *r, const uint8_t *frame, size_t len, uint64_t now,
                 struct mqo_frag_info *info)
{
    memset(info, 0, sizeof *info);
    r->st.frags_in++;
    mqo_frag_expire(r, now);
    struct mqo_eth e;
    struct mqo_ipv4 ip;
    if (mqo_parse_eth(frame, len, &e) || e.type != MQO_ETHERTYPE_IPV4 ||
        mqo_parse_ipv4(frame + e.l3_off, len - e.l3_off, 0, &ip) ||
        !(ip.flags & MQO_IPV4_F_FRAG)) {
        r->st.malformed++;
        return -MQO_FRAG_E_MALFORMED;
    }
    const uint8_t *iph = frame + e.l3_off, *pl = iph + ip.hlen;
    int mf = (rd16(iph + 6) & MQO_IPV4_MF) != 0;
    uint32_t off = ip.frag_off, plen = ip.l4_len;
    if (mf)
        plen &= ~7u; /* as Linux: a non-last fragment ends on an 8-byte boundary */
    info->key = (struct mqo_frag_key){.saddr = ip.saddr, .daddr = ip.daddr, .id = ip.id,
                                      .proto = ip.proto};
    if (plen == 0) {
        r->st.malformed++;
        return -MQO_FRAG_E_MALFORMED;
    }
    uint32_t end = off + plen;
    struct dgram *d = find(r, &info->key);
    if (d && d->verdict == MQO_FRAG_PASS) {
        info->verdict = MQO_FRAG_PASS;
        r->st.passed++;
        pass_track(r, d, off, end, mf);
        return MQO_FRAG_PASSED;
    }
    if (end + 20 > IP_MAX) { /* with the shortest header: over 65535 bytes */
        if (d)
            return kill(r, d, MQO_FRAG_E_TOO_BIG);
        r->st.too_big++;
        return -MQO_FRAG_E_TOO_BIG;
    }
    if (!d && !(d = create(r, &info->key, now)))
        return -MQO_FRAG_E_NOMEM;
    info->verdict = d->verdict;
    if (d->complete) { /* whole already, waiting for the verdict */
        r->st.dups++;
        return MQO_FRAG_HELD;
    }
    /* lengths: one last fragment, nothing beyond it */
    if (!mf) {
        if ((d->have_last && end != d->total) || d->max_end > end)
            return kill(r, d, MQO_FRAG_E_CONFLICT);
        d->have_last = 1;
        d->total = end;
    } else if (d->have_last && end > d->total) {
        return kill(r, d, MQO_FRAG_E_CONFLICT);
    }
    /* overlaps: the bytes already held must be the same */
    uint32_t covered = 0;
    for (uint32_t i = 0; i < d->nrg && d->rg[i].start < end; i++) {
        if (d->rg[i].end <= off)
            continue;
        uint32_t s = d->rg[i].start > off ? d->rg[i].start : off;
        uint32_t t = d->rg[i].end < end ? d->rg[i].end : end;
        if (memcmp(d->data + s, pl + (s - off), t - s))
            return kill(r, d, MQO_FRAG_E_CONFLICT);
        covered += t - s;
    }
    if (covered == plen) {
        r->st.dups++;
        show_head(d, info);
        return MQO_FRAG_HELD;
    }
    /* room: the payload buffer up to `end`, a range, a copy of the frame */
    if (end > d->cap) {
        uint32_t cap = d->cap ? d->cap : 2048;
        while (cap < end)
            cap *= 2;
        if (cap > IP_MAX)
            cap = IP_MAX;
        if (make_room(r, d, cap - d->cap))
            return kill(r, d, MQO_FRAG_E_NOMEM);
        uint8_t *v = realloc(d->data, cap);
        if (!v)
            return kill(r, d, MQO_FRAG_E_NOMEM);
        d->data = v;
        d->cap = cap;
        recount(r, d);
    }
    if (range_reserve(r, d))
        return kill(r, d, MQO_FRAG_E_NOMEM);
    if (d->verdict == MQO_FRAG_UNDECIDED) {
        struct kept *k;
        if (make_room(r, d, sizeof *k + len) || !(k = malloc(sizeof *k + len)))
            return kill(r, d, MQO_FRAG_E_NOMEM);
        k->next = NULL;
        k->len = (uint32_t)len;
        memcpy(k->data, frame, len);
        *d->kept_tail = k;
        d->kept_tail = &k->next;
        d->nkept++;
        d->kept_bytes += sizeof *k + len;
    }
    memcpy(d->data + off, pl, plen);
    range_add(d, off, end);
    if (covered)
        r->st.overlaps++;
    if (end > d->max_end)
        d->max_end = end;
    if (off == 0 && !d->have_first) {
        d->have_first = 1;
        d->l2_len = (uint8_t)e.l3_off;
        d->ip_hlen = ip.hlen;
        memcpy(d->hdr, frame, (size_t)e.l3_off + ip.hlen);
    }
    recount(r, d);
    if (!all_there(d)) {
        show_head(d, info);
        if (d->verdict == MQO_FRAG_UNDECIDED && !info->head_len)
            r->st.waited++;
        return MQO_FRAG_HELD;
    }
    if ((size_t)d->ip_hlen + d->total > IP_MAX)
        return kill(r, d, MQO_FRAG_E_TOO_BIG);
    info->len = build(r, d);
    info->frame = r->out;
    info->head = r->out + d->l2_len + d->ip_hlen;
    info->head_len = d->total < MQO_FRAG_HEAD ? d->total : MQO_FRAG_HEAD;
    r->st.reassembled++;
    if (d->verdict == MQO_FRAG_REASSEMBLE) {
        dg_free(r, d);
    } else {
        d->complete = 1;
        free(d->data);
        d->data = NULL;
        d->cap = 0;
        recount(r, d);
    }
    return MQO_FRAG_DONE;
}

int mqo_frag_decide(struct mqo_frag *r, const struct mqo_frag_key *key,
                    enum mqo_frag_verdict verdict,
                    void (*out)(void *ud, const uint8_t *frame, size_t len), void *ud)
{
    if (verdict != MQO_FRAG_REASSEMBLE && verdict != MQO_FRAG_PASS)
        return -EINVAL;
    struct dgram *d = find(r, key);
    if (!d)
        return -ENOENT;
    if (d->verdict != MQO_FRAG_UNDECIDED)
        return -EINVAL;
    int n = 0;
    if (verdict == MQO_FRAG_PASS) {
        for (const struct kept *k = d->kept; k; k = k->next, n++)
            if (out)
                out(ud, k->data, k->len);
        r->st.passed += (uint64_t)n;
    }
    if (d->complete) {
        dg_free(r, d);
        return n;
    }
    drop_kept(d);
    d->verdict = (uint8_t)verdict;
    if (verdict == MQO_FRAG_PASS) {
        free(d->data);
        d->data = NULL;
        d->cap = 0;
    }
    recount(r, d);
    return n;
}

/* ---- splitting --------------------------------------------------------------------------- */

int mqo_frag_split_init(struct mqo_frag_split *s, const uint8_t *frame, size_t len, size_t size)
{
    memset(s, 0, sizeof *s);
    struct mqo_eth e;
    struct mqo_ipv4 ip;
    int rc = mqo_parse_eth(frame, len, &e);
    if (rc)
        return rc;
    if (e.type != MQO_ETHERTYPE_IPV4)
        return 0;
    rc = mqo_parse_ipv4(frame + e.l3_off, len - e.l3_off, MQO_PARSE_NO_CSUM, &ip);
    if (rc)
        return rc;
    if (ip.l4_len <= size)
        return 0;
    if ((uint32_t)ip.frag_off + ip.l4_len > IP_MAX)
        return -MQO_P_IP_LEN; /* its offsets would not fit the field */
    size_t unit = size & ~(size_t)7;
    if (unit < 8)
        unit = 8;
    const uint8_t *iph = frame + e.l3_off;
    s->frame = frame;
    s->l3_off = e.l3_off;
    s->hlen = ip.hlen;
    s->plen = ip.l4_len;
    s->unit = (uint16_t)unit;
    s->base = ip.frag_off;
    s->last_mf = (rd16(iph + 6) & MQO_IPV4_MF) != 0;
    /* the options a later piece carries: those with the copied flag (RFC 791) */
    const uint8_t *opt = iph + 20;
    size_t olen = ip.hlen - 20u, i = 0, n = 0;
    while (i < olen) {
        uint8_t t = opt[i];
        if (t == 0)
            break;
        if (t == 1) {
            i++;
            continue;
        }
        if (i + 1 >= olen || opt[i + 1] < 2 || i + opt[i + 1] > olen)
            break; /* malformed: what follows is not copied */
        if (t & 0x80) {
            memcpy(s->opts + n, opt + i, opt[i + 1]);
            n += opt[i + 1];
        }
        i += opt[i + 1];
    }
    while (n % 4)
        s->opts[n++] = 0;
    s->optlen = (uint8_t)n;
    return (int)((ip.l4_len + unit - 1) / unit);
}

size_t mqo_frag_split_next(struct mqo_frag_split *s, uint8_t *out, size_t cap)
{
    if (!s->frame || s->next >= s->plen)
        return 0;
    int first = s->next == 0;
    size_t hl = first ? s->hlen : 20u + s->optlen;
    size_t n = (size_t)(s->plen - s->next);
    if (n > s->unit)
        n = s->unit;
    int last = s->next + n == s->plen;
    size_t flen = s->l3_off + hl + n;
    if (flen > cap)
        return 0;
    const uint8_t *iph = s->frame + s->l3_off;
    memcpy(out, s->frame, s->l3_off);
    uint8_t *ip = out + s->l3_off;
    memcpy(ip, iph, 20);
    if (first)
        memcpy(ip + 20, iph + 20, s->hlen - 20u);
    else
        memcpy(ip + 20, s->opts, s->optlen);
    ip[0] = (uint8_t)(0x40 | hl / 4);
    wr16(ip + 2, (uint16_t)(hl + n));
    uint16_t fo = (uint16_t)((s->base + s->next) / 8);
    if (!last || s->last_mf)
        fo |= MQO_IPV4_MF;
    fo |= rd16(iph + 6) & 0x8000; /* the reserved bit as it was; DF cleared */
    wr16(ip + 6, fo);
    uint16_t c = mqo_ipv4_cksum(ip, hl);
    memcpy(ip + 10, &c, 2);
    memcpy(ip + hl, iph + s->hlen + s->next, n);
    s->next = (uint16_t)(s->next + n);
    return flen;
}
