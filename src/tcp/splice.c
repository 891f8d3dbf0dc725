/* The splice engine of monitor mode; see splice.h for the model. */
#include "tcp/splice.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/ser.h"
#include "core/map.h"
#include "core/slice.h"
#include "l2/parse.h"

#define NS 1000000000ull
#define MS 1000000ull

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

#define RTO_MIN (200 * MS)
#define RTO_INIT (1000 * MS)
#define RTO_MAX (120 * NS) /* Linux's TCP_RTO_MAX */
#define RETRIES_DEFAULT 15 /* Linux's tcp_retries2 */
#define OOO_MAX (4u << 20) /* out-of-order bytes kept per direction */
#define TSO_MAX 64000 /* payload of a TSO frame at most: its IPv4 length fits 16 bits */
#define FRAME_MAX (14 + 8 + 60 + 60 + TSO_MAX)
#define CS_MIN 256 /* inserts at least this long get a checksum record (csrec) */
#define RING_MAX (1u << 30) /* records (rec, csrec) of a half at most */
/* A segment ending with this many bytes of a fan-out's shared serialization sends them from it
 * (cfg.emit_shared): fewer saved bytes would not pay for the output's extra descriptor (an
 * iovec, a chained mbuf). A round figure, not a measured break-even; what sharing costs and
 * saves at 16 KiB is in docs/ARCHITECTURE.md, "Packet I/O backends". */
#define SHARE_MIN 1024
#define LINGER_NS (10 * NS) /* a closed connection absorbs late segments this long */

enum { C2S = 0, S2C = 1 };
enum { ST_SYN_SENT, ST_SYN_RCVD, ST_EST, ST_CLOSED };

/* Input prefix [0, in_end) is resolved once the receiver acknowledged output [0, out_end). */
struct rec {
    uint64_t in_end, out_end;
};

/* Output bytes [off, off + len) are an inserted packet whose checksum accumulator is sum: a
 * fan-out's payload is summed once (the shared serialization, mqo_msg.sum) and each
 * subscriber's copy only patched for its own bytes (byte 0, packet identifier). From byte
 * `from` on they are msg's own bytes (a reference held while the record lives), which a
 * segment may send from msg instead of a copy (cfg.emit_shared). */
struct csrec {
    uint64_t off;
    uint32_t len;
    uint32_t sum;
    struct mqo_msg *msg;
    uint32_t from;
};

struct ooo {
    struct ooo *next;
    uint64_t off;
    uint32_t len;
    uint8_t fin;
    uint8_t data[];
};

/* One direction: sender X -> receiver Y. Half C2S: X = client, Y = broker. Fields are ordered
 * and sized so that a connection costs little while idle (docs/ARCHITECTURE.md, "Memory per
 * connection"): windows fit 32 bits (a window is at most 65535 << 14), and cwnd and ssthresh
 * saturate at UINT32_MAX, more than any window lets into flight. */
/* What a direction needs only while something is in transit through it: output not
 * acknowledged yet, input out of order or not resolved, a timer armed, recovery, probing or an
 * RTT sample under way. Allocated when the direction needs it, freed once every field is back
 * to its default (cold_trim): an idle connection holds none, and comes back to exactly the
 * state it would have kept (out_nxt and out_max equal out_end then; recover, una_since, the RTT
 * sample's and the probe's offsets are set before they are read again). */
struct hcold {
    struct ooo *ooo;
    size_t ooo_bytes;
    struct rec *recs;
    struct mqo_buf out; /* output bytes [out_una, out_end) */
    struct csrec *cs;   /* inserted packets of CS_MIN bytes or more, in output order */
    uint32_t rec_head, nrec, cap_rec; /* rings of at most 2^30 */
    uint32_t cs_head, ncs, cap_cs;
    uint64_t out_nxt;
    uint64_t out_max; /* highest offset ever sent (out_nxt goes back on a timeout) */
    uint64_t recover;
    uint64_t rtx_deadline, persist_deadline;
    uint64_t una_since; /* when the oldest unacknowledged byte (or FIN) was first sent */
    uint64_t rtt_off, rtt_sent;
    uint64_t probe_end; /* a zero-window probe sent the byte before this offset */
    uint8_t dupacks, in_recovery, backoff;
    uint8_t rtx_pend;   /* a retransmission of the first unacknowledged segment is owed */
    uint8_t probe_pend; /* a zero-window probe is owed */
    uint8_t probes;     /* zero-window probes sent and not answered by any ACK */
    uint8_t pbackoff;   /* probes sent since the window closed: their interval doubles */
    uint8_t rtt_on;
};

/* One direction: sender X -> receiver Y. Half C2S: X = client, Y = broker. What persists while
 * it is idle: sequence spaces, windows, the RTT estimate and timestamps; the rest is in k. Windows
 * fit 32 bits (a window is at most 65535 << 14), and cwnd and ssthresh saturate at UINT32_MAX,
 * more than any window lets into flight. */
struct half {
    struct hcold *k; /* NULL: idle */
    /* input from X; offsets count bytes after the SYN */
    uint64_t rcv_nxt; /* X's FIN, once in order (fin_in), comes after this offset */
    uint64_t in_acct; /* input bytes the engine accounted for */
    uint64_t ack_in;  /* input acknowledged to X */
    /* output toward Y */
    uint64_t out_una, out_end;
    uint64_t ack_at; /* when the receiver's last acceptable ACK arrived */
    /* RTT estimate and retransmission timeout, in microseconds (RTO_MAX fits 32 bits) */
    uint32_t rto_us, srtt_us, rttvar_us;
    uint32_t isn;       /* X's initial sequence number */
    uint32_t ts_recent; /* latest TSval from X */
    uint32_t y_wnd;     /* Y's receive window for this output (bytes) */
    uint32_t cwnd, ssthresh;
    uint16_t mss_y;   /* largest payload toward Y */
    uint8_t wscale_x; /* shift X applies to the windows it advertises */
    uint8_t ts_unknown : 1; /* resumed: no TSval from X seen yet in this process */
    uint8_t fin_in : 1;     /* X's FIN arrived in order, after input offset rcv_nxt */
    uint8_t fin_resolved : 1;
    uint8_t fin_out_sent : 1, fin_out_acked : 1;
};

struct sconn {
    struct mqo_splice *sp;
    struct mqo_conn *ec;
    /* the shared table's entry (cfg.track), NULL: none; whether its quiescent word is set
     * (q_on, with the offsets the entry records), and whether the state may have changed since
     * the last look (q_check) */
    struct mqo_ctab_ent *tent;
    struct sconn *qnext[2], *qprev[2];
    uint64_t last_seen;
    uint64_t closed_at;
    struct half h[2];
    /* position in sp->heap + 1 (0: not in it), whose key is at most the earliest armed
     * deadline (lazy: a deadline cleared or moved later is found when the key comes due) */
    uint32_t hidx;
    uint32_t cip;   /* client address, network order */
    uint16_t cport; /* host order */
    uint16_t ip_id[2];
    uint8_t state;
    /* flags, one bit each (assign 0 or 1: a wider value keeps only its lowest bit) */
    uint8_t ts_ok : 1;
    uint8_t dead : 1;     /* in sp->dead, freed at the end of the settle */
    uint8_t rst_sent : 1;
    uint8_t syn_ws : 1;   /* the client's SYN offered window scaling */
    uint8_t tracked : 1;  /* cfg.track told it is up */
    uint8_t q_on : 1, q_check : 1;
    uint8_t queued[2]; /* in sp->q[side] (1) or sp->dq[side] (2): it may owe frames toward side */
    uint8_t ack_due[2]; /* an ACK is owed toward side */
    uint8_t ka_probe[2]; /* a keep-alive probe is owed toward side (resumed) */
    /* Ethernet header, TTL and TOS of frames toward side: an index in sp->l2 (0: none learned,
     * all zero), the same for almost every connection and kept once (l2_intern) */
    uint32_t l2[2];
    /* a delivery toward the client not written into its output yet (msg NULL: none; a
     * reference held): see dfr_write */
    struct mqo_out dfr;
};
/* 312 bytes, a 320-byte malloc chunk: docs/ARCHITECTURE.md, "Memory per connection" */
_Static_assert(sizeof(struct sconn) <= 312, "struct sconn fits a 320-byte malloc chunk");

/* A frame template of one direction: Ethernet header (14 bytes), TTL, TOS. */
#define L2_HDR 16
struct l2t {
    uint8_t hdr[L2_HDR];
    uint32_t refs;      /* directions of connections using it (entry 0: not counted) */
    uint32_t next_free; /* free: the next free entry + 1 (0: none) */
};

/* The interned templates: entry 0 is all zero; idx maps a template's hash to an entry. */
struct l2tab {
    struct l2t *v;
    uint32_t n, cap;
    uint32_t free1; /* first free entry + 1, 0: none */
    struct mqo_map idx;
};

/* The timer heap's entry: the key in the array, so a sift reads no connection. */
struct hent {
    uint64_t key;
    struct sconn *c;
};

/* Connections that may owe frames toward one side, first marked first served. A connection
 * whose frame the output refused stays at the head, so what waits goes out in order. */
struct sq {
    struct sconn *head, *tail;
};

struct mqo_splice {
    struct mqo_splice_cfg cfg;
    struct mqo_splice_stats st;
    struct mqo_engine *eng;
    struct mqo_map conns; /* (client ip << 16 | port) -> sconn */
    /* connections to the broker whose SYN we did not see: key -> last frame time (ns), with
     * bit 0 set once a FIN or RST was seen (closing: not counted, kept a while so its last
     * ACKs do not count it again) */
    struct mqo_map unseen;
    uint64_t unseen_open;
    uint64_t started;   /* time of the first frame or tick */
    uint8_t in_startup; /* the startup hold is on */
    uint8_t defer_acks; /* mqo_splice_defer_acks */
    struct sq q[2];  /* by side */
    struct sq dq[2]; /* by side: owing only a deferred ACK (q_append) */
    /* connections killed, freed at the end of the settle (room for max_conns, which bounds
     * the connections there are) */
    struct sconn **dead;
    uint32_t ndead;
    struct l2tab l2;
    uint64_t now;
    uint64_t give_up_ns; /* a retransmission stall this long resets the connection */
    /* connections with an armed retransmission or probe deadline, a min-heap on the key (room
     * for max_conns): a tick visits only connections whose timer is due */
    struct hent *heap;
    uint32_t nheap;
    /* idle expiry: both tables are visited a slice per tick, a whole pass a second */
    uint64_t last_tick, conn_credit, unseen_credit;
    size_t conn_slot, unseen_slot;
    struct mqo_splice_offload off[2]; /* by side: what the output does itself */
    uint8_t frame[FRAME_MAX];
};

/* ---- small helpers ---- */


/* Checksum fields hold the folded sum in memory order (l2/parse.h convention). */
static inline void put_csum(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* TCP checksum of an IPv4 segment: 0 when verifying a segment with its field in place. */
static uint16_t tcp4_csum(const uint8_t *ip, const uint8_t *tcp, size_t len)
{
    uint32_t sa, da;
    memcpy(&sa, ip + 12, 4);
    memcpy(&da, ip + 16, 4);
    return mqo_cksum_fold(mqo_cksum_partial(tcp, len, mqo_cksum_pseudo4(sa, da, 6, (uint16_t)len, 0)));
}

static uint64_t conn_key(uint32_t ip, uint16_t port) { return (uint64_t)ip << 16 | port; }

/* A congestion window: beyond 32 bits it lets no more into flight (windows are below 2^30). */
static uint32_t cap32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

/* The next output offset to send: out_end when nothing is in transit. */
static uint64_t out_nxt(const struct half *h) { return h->k ? h->k->out_nxt : h->out_end; }

/* The half's state for traffic in transit, allocated at first need. NULL: no memory (the
 * caller handles it as any allocation failure). */
static struct hcold *cold_get(struct mqo_splice *sp, struct half *h)
{
    if (h->k)
        return h->k;
    struct hcold *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->out_nxt = k->out_max = h->out_end; /* all sent, all acknowledged */
    h->k = k;
    sp->st.flight_states++;
    return k;
}

static void cold_free(struct mqo_splice *sp, struct half *h)
{
    struct hcold *k = h->k;
    if (!k)
        return;
    mqo_buf_free(&k->out);
    free(k->recs);
    for (size_t i = 0; i < k->ncs; i++)
        mqo_msg_unref(k->cs[(k->cs_head + i) % k->cap_cs].msg);
    free(k->cs);
    for (struct ooo *o = k->ooo, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    free(k);
    h->k = NULL;
    sp->st.flight_states--;
}

/* Unwraps sequence number seq of a stream starting at isn to the 64-bit offset (bytes after
 * the SYN) nearest ref. */
static int64_t unwrap(uint32_t seq, uint32_t isn, uint64_t ref)
{
    uint32_t rel = seq - (isn + 1);
    int32_t d = (int32_t)(rel - (uint32_t)ref);
    return (int64_t)ref + d;
}

/* The lines of connections that owe frames toward a side: sp->q[side] (queued 1), and
 * sp->dq[side] (queued 2) for those that owe only an ACK mqo_splice_flush sends
 * (defer_acks), kept apart so that settling each input does not walk them again. */
static void q_append(struct sq *q, struct sconn *c, int side, uint8_t which)
{
    c->queued[side] = which;
    c->qnext[side] = NULL;
    c->qprev[side] = q->tail;
    if (q->tail)
        q->tail->qnext[side] = c;
    else
        q->head = c;
    q->tail = c;
}

static void q_add(struct mqo_splice *sp, struct sconn *c, int side)
{
    q_append(&sp->q[side], c, side, 1);
}

static void q_del(struct mqo_splice *sp, struct sconn *c, int side)
{
    if (!c->queued[side])
        return;
    struct sq *q = c->queued[side] == 2 ? &sp->dq[side] : &sp->q[side];
    c->queued[side] = 0;
    if (c->qprev[side])
        c->qprev[side]->qnext[side] = c->qnext[side];
    else
        q->head = c->qnext[side];
    if (c->qnext[side])
        c->qnext[side]->qprev[side] = c->qprev[side];
    else
        q->tail = c->qprev[side];
}

/* The deferred line joins the end of the line, in its order: behind the deliveries its input
 * set off, and when the output is full, behind connections that owe data, so that settling
 * the next input stops at those (refused) before walking the ACKs again. */
static void dq_return(struct mqo_splice *sp, int side)
{
    struct sq *d = &sp->dq[side], *q = &sp->q[side];
    if (!d->head)
        return;
    for (struct sconn *c = d->head; c; c = c->qnext[side])
        c->queued[side] = 1;
    d->head->qprev[side] = q->tail;
    if (q->tail)
        q->tail->qnext[side] = d->head;
    else
        q->head = d->head;
    q->tail = d->tail;
    d->head = d->tail = NULL;
}

/* The connection may owe frames both ways: settle() sends them. */
static void mark_dirty(struct sconn *c)
{
    if (c->dead)
        return;
    c->q_check = 1;
    for (int side = 0; side < 2; side++)
        if (c->queued[side] != 1) { /* new work: a deferred one joins the line again */
            q_del(c->sp, c, side);
            q_add(c->sp, c, side);
        }
}

/* Half d's output grew by n bytes (n < 0: -n of them were acknowledged or dropped with the
 * connection). The client-to-broker halves' sum is what the splice holds toward the broker
 * (client_window_mem). */
static void held_adj(struct sconn *c, int d, int64_t n)
{
    if (d == C2S)
        c->sp->st.c2s_held += (uint64_t)n;
}

/* ---- frame templates ---- */

static uint64_t l2_key(const uint8_t *hdr) { return mqo_hash64(hdr, L2_HDR, 0x6c32) >> 1; }

/* The entry holding hdr, with a reference taken; 0 when hdr is all zero (the entry every
 * connection starts with), UINT32_MAX when there is no memory for a new one. A template
 * whose hash another one holds gets an entry of its own, not indexed. */
static uint32_t l2_intern(struct mqo_splice *sp, const uint8_t *hdr)
{
    struct l2tab *t = &sp->l2;
    if (!memcmp(hdr, t->v[0].hdr, L2_HDR))
        return 0;
    uint64_t key = l2_key(hdr), v;
    int indexed = mqo_map_get(&t->idx, key, &v);
    if (indexed && !memcmp(t->v[v].hdr, hdr, L2_HDR)) {
        t->v[v].refs++;
        return (uint32_t)v;
    }
    uint32_t i;
    if (t->free1) {
        i = t->free1 - 1;
        t->free1 = t->v[i].next_free;
    } else {
        if (t->n == t->cap) {
            if (t->cap > UINT32_MAX / 4)
                return UINT32_MAX;
            struct l2t *nv = realloc(t->v, 2 * (size_t)t->cap * sizeof *nv);
            if (!nv)
                return UINT32_MAX;
            t->v = nv;
            t->cap *= 2;
        }
        i = t->n++;
    }
    memcpy(t->v[i].hdr, hdr, L2_HDR);
    t->v[i].refs = 1;
    t->v[i].next_free = 0;
    if (!indexed)
        (void)mqo_map_put(&t->idx, key, i); /* without the index it is only not shared */
    return i;
}

static void l2_release(struct mqo_splice *sp, uint32_t i)
{
    struct l2tab *t = &sp->l2;
    if (i == 0 || --t->v[i].refs)
        return;
    uint64_t key = l2_key(t->v[i].hdr), v;
    if (mqo_map_get(&t->idx, key, &v) && v == i)
        mqo_map_del(&t->idx, key);
    t->v[i].next_free = t->free1;
    t->free1 = i + 1;
}

/* Makes hdr c's template toward side `to`. Without memory for a new entry the old one stays
 * (the frames mqoff sends that way keep their previous addresses). */
static void l2_set(struct sconn *c, int to, const uint8_t *hdr)
{
    struct mqo_splice *sp = c->sp;
    if (!memcmp(sp->l2.v[c->l2[to]].hdr, hdr, L2_HDR))
        return;
    uint32_t i = l2_intern(sp, hdr);
    if (i == UINT32_MAX)
        return;
    l2_release(sp, c->l2[to]);
    c->l2[to] = i;
}

static const uint8_t *l2_hdr(const struct sconn *c, int to) { return c->sp->l2.v[c->l2[to]].hdr; }

/* The template toward `to` from its parts (the layout the shared table and the snapshot
 * keep) and back. */
static void l2_set_parts(struct sconn *c, int to, const uint8_t *eth, uint8_t ttl, uint8_t tos)
{
    uint8_t hdr[L2_HDR];
    memcpy(hdr, eth, 14);
    hdr[14] = ttl;
    hdr[15] = tos;
    l2_set(c, to, hdr);
}

/* ---- timer heap ---- */

static void heap_place(struct mqo_splice *sp, uint32_t i, struct hent x)
{
    sp->heap[i] = x;
    x.c->hidx = i + 1;
}

static void heap_up(struct mqo_splice *sp, uint32_t i)
{
    struct hent x = sp->heap[i];
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (sp->heap[p].key <= x.key)
            break;
        heap_place(sp, i, sp->heap[p]);
        i = p;
    }
    heap_place(sp, i, x);
}

static void heap_down(struct mqo_splice *sp, uint32_t i)
{
    struct hent x = sp->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        uint64_t key = x.key;
        if (l < sp->nheap && sp->heap[l].key < key)
            m = l, key = sp->heap[l].key;
        if (l + 1 < sp->nheap && sp->heap[l + 1].key < key)
            m = l + 1;
        if (m == i)
            break;
        heap_place(sp, i, sp->heap[m]);
        i = m;
    }
    heap_place(sp, i, x);
}

static void heap_del(struct mqo_splice *sp, struct sconn *c)
{
    if (!c->hidx)
        return;
    uint32_t i = c->hidx - 1;
    c->hidx = 0;
    struct hent last = sp->heap[--sp->nheap];
    if (last.c == c)
        return;
    heap_place(sp, i, last);
    heap_up(sp, i);
    heap_down(sp, last.c->hidx - 1);
}

/* Puts c in the heap with key t, or moves its key earlier to t. */
static void heap_arm(struct sconn *c, uint64_t t)
{
    struct mqo_splice *sp = c->sp;
    if (c->hidx) {
        if (t < sp->heap[c->hidx - 1].key) {
            sp->heap[c->hidx - 1].key = t;
            heap_up(sp, c->hidx - 1);
        }
        return;
    }
    sp->heap[sp->nheap] = (struct hent){.key = t, .c = c};
    heap_up(sp, sp->nheap++);
}

/* Arms a retransmission or probe deadline (0 disarms; the heap finds out lazily). */
static void arm(struct sconn *c, uint64_t *slot, uint64_t t)
{
    *slot = t;
    if (t)
        heap_arm(c, t);
}

/* The earliest deadline armed on c, 0: none. */
static uint64_t conn_deadline(const struct sconn *c)
{
    uint64_t e = 0;
    for (int d = 0; d < 2; d++) {
        const struct hcold *k = c->h[d].k;
        if (!k)
            continue;
        uint64_t t[2] = {k->rtx_deadline, k->persist_deadline};
        for (int j = 0; j < 2; j++)
            if (t[j] && (!e || t[j] < e))
                e = t[j];
    }
    return e;
}

/* side a half's output goes to, and the side its input comes from */
static int out_side(int d) { return d == C2S ? MQO_SIDE_BROKER : MQO_SIDE_CLIENT; }
static int in_side(int d) { return d == C2S ? MQO_SIDE_CLIENT : MQO_SIDE_BROKER; }

/* ---- resolution records ---- */

/* Doubles a full ring of n elements of `elem` bytes (4 at first), its oldest at *head, into a
 * new block with the oldest first. Returns 0, or -ENOMEM with the ring unchanged. */
static int ring_grow(void **ring, uint32_t *head, uint32_t n, uint32_t *cap, size_t elem)
{
    if (*cap >= RING_MAX)
        return -ENOMEM;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    char *v = malloc((size_t)ncap * elem), *old = *ring;
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        memcpy(v + (size_t)i * elem, old + (size_t)((*head + i) % *cap) * elem, elem);
    free(old);
    *ring = v;
    *cap = ncap;
    *head = 0;
    return 0;
}

static int rec_push(struct hcold *k, uint64_t in_end, uint64_t out_end)
{
    if (k->nrec) {
        struct rec *last = &k->recs[(k->rec_head + k->nrec - 1) % k->cap_rec];
        if (last->out_end == out_end) { /* consecutive edits resolved by the same ack */
            last->in_end = in_end;
            return 0;
        }
    }
    if (k->nrec == k->cap_rec &&
        ring_grow((void **)&k->recs, &k->rec_head, k->nrec, &k->cap_rec, sizeof *k->recs))
        return -ENOMEM;
    k->recs[(k->rec_head + k->nrec) % k->cap_rec] = (struct rec){in_end, out_end};
    k->nrec++;
    return 0;
}

/* Advances ack_in over every record the receiver's acknowledgement resolves. Returns 1 when
 * ack_in (or the FIN) moved. */
static int resolve(struct half *h)
{
    struct hcold *k = h->k;
    int moved = 0;
    while (k && k->nrec) {
        struct rec *r = &k->recs[k->rec_head];
        if (r->out_end > h->out_una)
            break;
        if (r->in_end > h->ack_in) {
            h->ack_in = r->in_end;
            moved = 1;
        }
        k->rec_head = (k->rec_head + 1) % k->cap_rec;
        k->nrec--;
    }
    if (k && !k->nrec && k->recs) {
        free(k->recs);
        k->recs = NULL;
        k->cap_rec = k->rec_head = 0;
    }
    /* Bytes of an incomplete MQTT packet, held by the engine until the packet is whole, are
     * taken by the offload: once everything before them is resolved they are acknowledged at
     * once. Withholding them deadlocks a sender that writes a packet a few bytes at a time
     * (each tiny segment unacknowledged, its congestion window, counted in segments, runs
     * out before the packet is complete). */
    if ((!k || !k->nrec) && h->ack_in >= h->in_acct && h->rcv_nxt > h->ack_in && !h->fin_in) {
        h->ack_in = h->rcv_nxt;
        moved = 1;
    }
    /* the sender's FIN: resolved once our FIN toward the receiver is acknowledged (bytes the
     * engine still held, an incomplete packet before the FIN, are resolved with it) */
    if (h->fin_in && !h->fin_resolved && h->fin_out_acked) {
        h->fin_resolved = 1;
        h->ack_in = h->rcv_nxt; /* where the FIN came: nothing is taken after it */
        moved = 1;
    }
    return moved;
}

/* ---- checksum records ---- */

/* A byte `v` replacing `old` at offset off of summed data. */
static uint32_t sum_patch(uint32_t sum, size_t off, uint8_t old, uint8_t v)
{
    if (old == v)
        return sum;
    sum = mqo_cksum_block_add(sum, ~(uint32_t)old, off);
    return mqo_cksum_block_add(sum, v, off);
}

/* The checksum accumulator of the bytes o stands for: the shared serialization's, summed at
 * its first use, patched for this subscriber's byte 0 and packet identifier. */
static uint32_t out_sum(const struct mqo_out *o)
{
    struct mqo_msg *m = o->msg;
    if (!m->sum_ok) {
        m->sum = mqo_cksum_partial(m->data, m->len, 0);
        m->sum_ok = 1;
    }
    uint32_t sum = sum_patch(m->sum, 0, m->data[0], o->b0);
    if (o->pid_off) {
        sum = sum_patch(sum, o->pid_off, m->data[o->pid_off], (uint8_t)(o->pid >> 8));
        sum = sum_patch(sum, o->pid_off + 1u, m->data[o->pid_off + 1], (uint8_t)o->pid);
    }
    return sum;
}

/* Records an inserted packet's checksum (a failure only costs the saving). */
static void cs_push(struct hcold *k, uint64_t off, const struct mqo_out *o)
{
    if (k->ncs == k->cap_cs &&
        ring_grow((void **)&k->cs, &k->cs_head, k->ncs, &k->cap_cs, sizeof *k->cs))
        return; /* the segments are then summed over their bytes */
    k->cs[(k->cs_head + k->ncs) % k->cap_cs] =
        (struct csrec){off, (uint32_t)o->msg->len, out_sum(o), mqo_msg_ref(o->msg),
                       o->pid_off ? o->pid_off + 2u : 1u};
    k->ncs++;
}

/* The checksum accumulator of output bytes [off, off + len) of half h, at p: records of
 * inserted packets lying wholly inside stand for their bytes, the rest is summed here.
 * Records the receiver acknowledged are dropped on the way. */
static void drop_acked_records(struct half *h)
{
    struct hcold *k = h->k;
    if (!k)
        return;
    while (k->ncs && k->cs[k->cs_head].off + k->cs[k->cs_head].len <= h->out_una) {
        mqo_msg_unref(k->cs[k->cs_head].msg);
        k->cs_head = (k->cs_head + 1) % k->cap_cs;
        k->ncs--;
    }
    if (!k->ncs && k->cs) {
        free(k->cs);
        k->cs = NULL;
        k->cap_cs = k->cs_head = 0;
    }
}

static uint32_t payload_sum(struct mqo_splice *sp, struct half *h, uint64_t off,
                            const uint8_t *p, size_t len)
{
    drop_acked_records(h);
    const struct hcold *k = h->k;
    size_t ncs = k ? k->ncs : 0;
    /* the first record ending after off (records are in output order; those of bytes in
     * flight before this segment are skipped by bisection, not walked) */
    size_t lo = 0, hi = ncs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct csrec *r = &k->cs[(k->cs_head + mid) % k->cap_cs];
        if (r->off + r->len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint32_t sum = 0;
    uint64_t cur = off, end = off + len;
    for (size_t i = lo; i < ncs; i++) {
        const struct csrec *r = &k->cs[(k->cs_head + i) % k->cap_cs];
        if (r->off >= end)
            break;
        if (r->off < cur || r->off + r->len > end)
            continue; /* starts before or ends after the segment: summed as plain bytes */
        if (r->off > cur)
            sum = mqo_cksum_block_add(sum, mqo_cksum_partial(p + (cur - off), r->off - cur, 0),
                                      cur - off);
        sum = mqo_cksum_block_add(sum, r->sum, r->off - off);
        sp->st.csum_reused += r->len;
        cur = r->off + r->len;
    }
    if (cur < end)
        sum = mqo_cksum_block_add(sum, mqo_cksum_partial(p + (cur - off), end - cur, 0),
                                  cur - off);
    return sum;
}

/* The record whose shared bytes (from `from` on) end output bytes [off, off + len), when at
 * least min of them are in it: NULL otherwise. *start: where the shared part of the segment
 * begins. Call after drop_acked_records. */
static const struct csrec *shared_tail(const struct half *h, uint64_t off, size_t len, size_t min,
                                       uint64_t *start)
{
    const struct hcold *k = h->k;
    if (!k)
        return NULL;
    uint64_t end = off + len;
    size_t lo = 0, hi = k->ncs;
    while (lo < hi) { /* the first record ending at or after end */
        size_t mid = lo + (hi - lo) / 2;
        const struct csrec *r = &k->cs[(k->cs_head + mid) % k->cap_cs];
        if (r->off + r->len < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == k->ncs)
        return NULL;
    const struct csrec *r = &k->cs[(k->cs_head + lo) % k->cap_cs];
    uint64_t from = r->off + r->from;
    if (r->off >= end || r->off + r->len < end || from >= end)
        return NULL;
    *start = from > off ? from : off;
    return end - *start >= min ? r : NULL;
}

/* ---- frames ---- */

/* Segments carry the timestamp option: both ends use it, and the TSval of both is known (a
 * resumed connection learns them from the ends' first segments; until then none is sent, as an
 * older TSval than the dead process sent would be dropped by PAWS). */
static int ts_on(const struct sconn *c)
{
    return c->ts_ok && !c->h[0].ts_unknown && !c->h[1].ts_unknown;
}

/* Largest payload of a segment toward a half's receiver: its MSS less the options we send (the
 * MSS option counts no options, RFC 6691). */
static uint64_t seg_payload_max(const struct sconn *c, const struct half *h)
{
    uint64_t mss = h->mss_y ? h->mss_y : 536;
    return ts_on(c) ? mss - 12 : mss;
}


/* Ack number and window of segments toward side `to`: they acknowledge the half whose sender is
 * `to`, and advertise that sender's window. */
static uint64_t window_for(const struct sconn *c, const struct half *hi)
{
    const struct mqo_splice *sp = c->sp;
    uint64_t held = hi->rcv_nxt - hi->ack_in;
    uint64_t wnd = hi->y_wnd;
    /* toward the broker: at least the client window, while the splice holds little for it */
    if (hi == &c->h[C2S] && wnd < sp->cfg.client_window &&
        sp->st.c2s_held < sp->cfg.client_window_mem)
        wnd = sp->cfg.client_window;
    int64_t space = (int64_t)(hi->out_una + wnd) - (int64_t)hi->out_end;
    return held + (space > 0 ? (uint64_t)space : 0);
}

/* Builds and emits one segment toward side `to`: payload from half d_out's output at output
 * offset off (len bytes, may be 0), flags. Longer than the receiver's MSS, it is a TSO frame
 * (mqo_splice_set_tso): the output cuts it into segments of the MSS, and it carries the
 * pseudo-header sum as its checksum (what TSO devices start from). Returns 0 when the output
 * took it, -1 when it refused it (the output is busy: the caller keeps its state so the
 * segment is built again later). A RST is never refused. */
static int send_seg(struct sconn *c, int to, uint64_t off, const uint8_t *payload, size_t len,
                    uint8_t flags)
{
    struct mqo_splice *sp = c->sp;
    int d_out = to == MQO_SIDE_BROKER ? C2S : S2C;
    struct half *ho = &c->h[d_out], *hi = &c->h[d_out ^ 1];
    uint8_t *f = sp->frame;
    size_t optlen = ts_on(c) ? 12 : 0;
    size_t tcplen = 20 + optlen + len;
    uint64_t mss = seg_payload_max(c, ho);
    int tso = len > mss;
    int hw = tso || sp->off[to].csum; /* the output sums the payload */
    if (14 + 20 + tcplen > sizeof sp->frame)
        return 0;
    const uint8_t *l2 = l2_hdr(c, to);
    memcpy(f, l2, 14);
    uint8_t *ip = f + 14, *tcp = ip + 20;
    uint8_t cip[4], bip[4];
    memcpy(cip, &c->cip, 4);
    memcpy(bip, &sp->cfg.broker_ip, 4);
    ip[0] = 0x45;
    ip[1] = l2[15];
    wr16(ip + 2, (uint16_t)(20 + tcplen));
    wr16(ip + 4, c->ip_id[to]);
    wr16(ip + 6, 0x4000); /* DF */
    ip[8] = l2[14] ? l2[14] : 64;
    ip[9] = 6;
    wr16(ip + 10, 0);
    memcpy(ip + 12, to == MQO_SIDE_BROKER ? cip : bip, 4);
    memcpy(ip + 16, to == MQO_SIDE_BROKER ? bip : cip, 4);
    put_csum(ip + 10, mqo_cksum_fold(mqo_cksum_partial(ip, 20, 0)));

    uint16_t bport = sp->cfg.broker_port;
    wr16(tcp, to == MQO_SIDE_BROKER ? c->cport : bport);
    wr16(tcp + 2, to == MQO_SIDE_BROKER ? bport : c->cport);
    wr32(tcp + 4, ho->isn + 1 + (uint32_t)off);
    uint64_t ack = hi->ack_in + (hi->fin_resolved ? 1 : 0);
    wr32(tcp + 8, hi->isn + 1 + (uint32_t)ack);
    tcp[12] = (uint8_t)(((20 + optlen) / 4) << 4);
    tcp[13] = flags | TH_ACK;
    uint64_t w = window_for(c, hi) >> ho->wscale_x;
    wr16(tcp + 14, (uint16_t)(w > 65535 ? 65535 : w));
    wr16(tcp + 16, 0);
    wr16(tcp + 18, 0);
    if (optlen) {
        uint8_t *o = tcp + 20;
        o[0] = 1;
        o[1] = 1;
        o[2] = 8;
        o[3] = 10;
        wr32(o + 4, ho->ts_recent); /* the latest TSval of the stream's sender: never older */
        wr32(o + 8, hi->ts_recent); /* echo the receiver's */
    }
    uint32_t sum = mqo_cksum_partial(tcp, 20 + optlen, 0);
    const struct csrec *sh = NULL;
    uint64_t sh_at = 0;
    if (len) {
        /* the header's length is even: the payload's sum adds unrotated; the output sums it
         * itself where it can */
        if (hw)
            drop_acked_records(ho);
        else
            sum = mqo_cksum_add(sum, payload_sum(sp, ho, off, payload, len));
        if (sp->cfg.emit_shared)
            sh = shared_tail(ho, off, len, sp->cfg.share_min, &sh_at);
        /* a shared tail is sent from the message: only what comes before it is copied */
        memcpy(tcp + 20 + optlen, payload, sh ? (size_t)(sh_at - off) : len);
    }
    uint32_t sa, da;
    memcpy(&sa, ip + 12, 4);
    memcpy(&da, ip + 16, 4);
    /* the output's checksum starts from the pseudo-header, uncomplemented: a TSO frame's
     * without the length (each segment has its own) */
    if (hw)
        put_csum(tcp + 16, (uint16_t)~mqo_cksum_fold(
                               mqo_cksum_pseudo4(sa, da, 6, tso ? 0 : (uint16_t)tcplen, 0)));
    else
        put_csum(tcp + 16, mqo_cksum_fold(mqo_cksum_pseudo4(sa, da, 6, (uint16_t)tcplen, sum)));
    unsigned ef = (flags & TH_RST) ? 0 : MQO_SPLICE_EMIT_KEPT;
    if (tso)
        ef |= MQO_SPLICE_EMIT_TSO | (unsigned)mss << 16;
    else if (hw)
        ef |= MQO_SPLICE_EMIT_CSUM;
    int r;
    if (sh) {
        size_t ext = (size_t)(off + len - sh_at);
        r = sp->cfg.emit_shared(sp->cfg.ud, to, f, 14 + 20 + tcplen - ext, sh->msg,
                                (size_t)(sh_at - sh->off), ext, ef);
        if (r >= 0) {
            sp->st.shared_segs++;
            sp->st.shared_bytes += ext;
        }
    } else {
        r = sp->cfg.emit(sp->cfg.ud, to, f, 14 + 20 + tcplen, ef);
    }
    if (r < 0 && ef) {
        sp->st.emit_refused++;
        return -1;
    }
    /* a TSO frame's segments take an IP id each */
    c->ip_id[to] = (uint16_t)(c->ip_id[to] + (tso ? (len + mss - 1) / mss : 1));
    c->ack_due[to] = 0;
    sp->st.segs_out++;
    if (tso) {
        sp->st.tso_frames++;
        sp->st.tso_bytes += len;
    } else if (hw) {
        sp->st.csum_left++;
    }
    sp->st.bytes_out[d_out] += len;
    return 0;
}

static void ctab_quiet_off(struct sconn *c);
static void reset_both(struct sconn *c);
static int dfr_write(struct sconn *c);
static void dfr_drop(struct sconn *c);

/* RST toward `to`, with a sequence number inside its window. */
static void send_rst(struct sconn *c, int to)
{
    ctab_quiet_off(c); /* gone: nothing to resume */
    int d_out = to == MQO_SIDE_BROKER ? C2S : S2C;
    (void)send_seg(c, to, out_nxt(&c->h[d_out]), NULL, 0, TH_RST);
}

/* ---- output ---- */

/* The half's retransmission timeout in nanoseconds. */
static uint64_t rto_ns(const struct half *h) { return (uint64_t)h->rto_us * 1000; }

static void set_rto(struct half *h, uint64_t ns)
{
    if (ns < RTO_MIN)
        ns = RTO_MIN;
    if (ns > RTO_MAX)
        ns = RTO_MAX;
    h->rto_us = (uint32_t)(ns / 1000);
}

static void rtt_sample(struct half *h, uint64_t now)
{
    const struct hcold *k = h->k;
    uint64_t r = (now - k->rtt_sent) / 1000;
    if (r > RTO_MAX / 1000)
        r = RTO_MAX / 1000; /* a sample beyond the largest timeout adds nothing but overflow */
    uint64_t srtt = h->srtt_us, rttvar = h->rttvar_us;
    if (!srtt) {
        srtt = r;
        rttvar = r / 2;
    } else {
        uint64_t d = r > srtt ? r - srtt : srtt - r;
        rttvar = (3 * rttvar + d) / 4;
        srtt = (7 * srtt + r) / 8;
    }
    h->srtt_us = (uint32_t)srtt;
    h->rttvar_us = (uint32_t)rttvar;
    set_rto(h, (srtt + 4 * rttvar) * 1000);
}

/* Notes that a segment goes out at offset off; the clock of the retransmission stall starts
 * with the first byte sent after everything before was acknowledged. */
static void sent_at(struct half *h, uint64_t off, uint64_t now)
{
    struct hcold *k = h->k;
    if (off == h->out_una && k->out_max <= h->out_una) /* not a retransmission */
        k->una_since = now;
}

/* Sends what half d may send now toward its receiver: an owed retransmission or probe first,
 * then new bytes within both windows, then its FIN. Returns 0, or -1 when the output refused
 * a segment (what is left waits: the caller tries again when the output drains). */
static int push_half(struct sconn *c, int d)
{
    struct mqo_splice *sp = c->sp;
    struct half *h = &c->h[d];
    int to = out_side(d);
    uint64_t now = sp->now;
    uint64_t mss = seg_payload_max(c, h);
    /* new data: up to a TSO frame of whole segments where the output cuts them */
    uint64_t seg_max = mss;
    if (sp->off[to].tso_max >= 2 * mss)
        seg_max = sp->off[to].tso_max - sp->off[to].tso_max % mss;
    if (d == S2C && dfr_write(c))
        return 0; /* no memory: reset */
    struct hcold *k = h->k;
    if (!k) {
        /* idle: nothing to send but a FIN, whose timer needs the state */
        if (!h->fin_in || h->fin_out_sent)
            return 0;
        if (!(k = cold_get(sp, h))) {
            reset_both(c); /* no memory */
            return 0;
        }
    }
    if (k->rtx_pend) {
        /* fast retransmit, or a NewReno partial ack: the first unacknowledged segment */
        uint64_t len = k->out_nxt - h->out_una;
        if (len > mss)
            len = mss;
        if (len) {
            if (send_seg(c, to, h->out_una, k->out.data, (size_t)len, TH_PSH))
                return -1;
            sp->st.retransmits++;
        }
        k->rtx_pend = 0;
    }
    if (k->probe_pend) {
        /* zero-window probe: the first unsent byte, one beyond the window; a receiver with
         * room takes it and acknowledges it, one without answers with its window */
        if (h->out_end > h->out_una && k->out_nxt == h->out_una) {
            if (send_seg(c, to, h->out_una, k->out.data, 1, TH_PSH))
                return -1;
            k->probe_end = h->out_una + 1;
            if (k->probes < 255)
                k->probes++;
            if (k->pbackoff < 255)
                k->pbackoff++;
            sp->st.zero_window_probes++;
            mqo_dbg("splice: probe half %d una %llu end %llu", d, (unsigned long long)h->out_una,
                    (unsigned long long)h->out_end);
        }
        k->probe_pend = 0;
    }
    while (k->out_nxt < h->out_end) {
        uint64_t right = h->out_una + h->y_wnd;
        uint64_t wnd_room = right > k->out_nxt ? right - k->out_nxt : 0;
        uint64_t flight = k->out_nxt - h->out_una;
        uint64_t cw_room = h->cwnd > flight ? h->cwnd - flight : 0;
        uint64_t n = h->out_end - k->out_nxt;
        if (n > seg_max)
            n = seg_max;
        if (n > wnd_room)
            n = wnd_room;
        if (n > cw_room)
            n = cw_room;
        if (n == 0) {
            /* zero window with nothing in flight: probe it later */
            if (wnd_room == 0 && flight == 0 && !k->persist_deadline)
                arm(c, &k->persist_deadline, now + (h->rto_us ? rto_ns(h) : RTO_INIT));
            break;
        }
        if (send_seg(c, to, k->out_nxt, k->out.data + (k->out_nxt - h->out_una), (size_t)n,
                     TH_PSH))
            return -1;
        k->persist_deadline = 0;
        sent_at(h, k->out_nxt, now);
        if (!k->rtt_on) {
            k->rtt_on = 1;
            k->rtt_off = k->out_nxt + n;
            k->rtt_sent = now;
        }
        k->out_nxt += n;
        if (k->out_nxt > k->out_max)
            k->out_max = k->out_nxt;
        if (!k->rtx_deadline)
            arm(c, &k->rtx_deadline, now + rto_ns(h));
    }
    /* our FIN follows the sender's, after everything the engine produced */
    if (h->fin_in && !h->fin_out_sent && k->out_nxt == h->out_end) {
        if (send_seg(c, to, h->out_end, NULL, 0, TH_FIN))
            return -1;
        if (h->out_una == h->out_end)
            k->una_since = now;
        h->fin_out_sent = 1;
        if (!k->rtx_deadline)
            arm(c, &k->rtx_deadline, now + rto_ns(h));
    }
    return 0;
}

/* Frees the half's state for traffic in transit once every field of it is back to its
 * default, or holds nothing that is read again before it is set (see struct hcold). Called at
 * every ACK (on_ack), after a connection's frames toward one side went (settle), and from the
 * idle walk (expire_idle), which catches the rest within a second. */
static void cold_trim(struct mqo_splice *sp, struct half *h)
{
    struct hcold *k = h->k;
    if (!k || h->out_una != h->out_end || k->ooo || k->nrec || k->rtx_deadline ||
        k->persist_deadline || k->rtx_pend || k->probe_pend || k->in_recovery || k->dupacks ||
        k->backoff || k->probes || k->pbackoff || k->rtt_on || k->out_max > h->out_end ||
        k->probe_end > h->out_una)
        return;
    drop_acked_records(h); /* every record is acknowledged */
    cold_free(sp, h);
}

/* Emits what a connection owes toward side `to`: data, then an ACK nothing carried. Returns
 * 0, -1 when the output refused a frame (the rest waits), 1 when only that ACK is owed and
 * waits for mqo_splice_flush (defer_acks). */
static int flush_side(struct sconn *c, int to)
{
    if (c->dead || c->state < ST_EST)
        return 0;
    int d_out = to == MQO_SIDE_BROKER ? C2S : S2C;
    if (c->ka_probe[to]) {
        /* one byte below the next: the end answers with an ACK (its window, its TSval) */
        if (send_seg(c, to, out_nxt(&c->h[d_out]) - 1, NULL, 0, 0))
            return -1;
        c->ka_probe[to] = 0;
    }
    if (push_half(c, d_out))
        return -1;
    if (c->ack_due[to]) {
        if (c->sp->defer_acks)
            return 1; /* an ACK alone: mqo_splice_flush sends it */
        uint64_t at = out_nxt(&c->h[d_out]) + (c->h[d_out].fin_out_sent ? 1 : 0);
        if (send_seg(c, to, at, NULL, 0, 0))
            return -1;
    }
    return 0;
}

/* ---- connection lifecycle ---- */

static void kill_conn(struct sconn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    c->sp->dead[c->sp->ndead++] = c;
}

/* Tells cfg.track that c is established (what resets both ends) or gone. */
static void track(struct sconn *c, int up)
{
    struct mqo_splice *sp = c->sp;
    if (!sp->cfg.track || c->tracked == up)
        return;
    c->tracked = (uint8_t)up;
    struct mqo_ctab_ent e = {.cip = c->cip, .cport = c->cport};
    if (up) {
        e.isn[0] = c->h[C2S].isn;
        e.isn[1] = c->h[S2C].isn;
        for (int to = 0; to < 2; to++) {
            const uint8_t *l2 = l2_hdr(c, to);
            memcpy(e.eth[to], l2, 14);
            e.ttl[to] = l2[14];
            e.tos[to] = l2[15];
        }
        e.ts_ok = c->ts_ok ? 1 : 0;
        for (int d = 0; d < 2; d++) {
            e.wscale[d] = c->h[d].wscale_x;
            e.mss[d] = c->h[d].mss_y;
        }
    }
    c->q_on = 0;
    c->q_check = 1;
    c->tent = NULL;
    struct mqo_ctab_ent *t = sp->cfg.track(sp->cfg.ud, &e, up);
    if (up)
        c->tent = t;
}

/* ---- the resume point in the shared table (tcp/ctab.h) ---- */

/* Nothing in transit through the splice either way, and the engine owes nothing: the streams
 * differ by a fixed translation only. */
static int conn_quiet(const struct sconn *c)
{
    if (c->state != ST_EST || c->closed_at || c->dead || c->rst_sent || !c->ec || c->dfr.msg)
        return 0;
    for (int d = 0; d < 2; d++) {
        const struct half *h = &c->h[d];
        if (h->out_end - h->out_una > MQO_CTAB_HELD_MAX || (h->k && (h->k->ooo || h->k->nrec)) ||
            h->ack_in != h->rcv_nxt || h->in_acct != h->rcv_nxt || h->fin_in || h->fin_out_sent)
            return 0;
    }
    return mqo_conn_quiescent(c->ec);
}

static void ctab_quiet_off(struct sconn *c)
{
    if (!c->q_on)
        return;
    c->q_on = 0;
    __atomic_store_n(&c->tent->quiescent, 0, __ATOMIC_RELEASE);
    /* the offsets written next are not seen before the word is clear */
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* Before anything is emitted for c: its entry says quiescent, with the offsets where it is,
 * only while it is. A few stores when that changes, none otherwise. */
static void ctab_sync(struct sconn *c)
{
    if (!c->tent || !c->q_check)
        return;
    c->q_check = 0;
    int q = conn_quiet(c);
    const struct half *h0 = &c->h[0], *h1 = &c->h[1];
    /* the entry holds what was written last (this process is its only writer) */
    const struct mqo_ctab_ent *e = c->tent;
    if (q && c->q_on && e->in_off[0] == h0->rcv_nxt && e->in_off[1] == h1->rcv_nxt &&
        e->out_off[0] == h0->out_una && e->out_off[1] == h1->out_una &&
        e->out_off[0] + e->held_len[0] == h0->out_end &&
        e->out_off[1] + e->held_len[1] == h1->out_end)
        return;
    ctab_quiet_off(c);
    if (!q)
        return;
    struct mqo_ctab_ent *t = c->tent;
    for (int d = 0; d < 2; d++) {
        const struct half *h = &c->h[d];
        size_t held = (size_t)(h->out_end - h->out_una); /* k->out holds exactly these */
        const struct hcold *k = h->k;
        t->in_off[d] = h->rcv_nxt;
        t->out_off[d] = h->out_una;
        t->held_len[d] = (uint16_t)held;
        if (held)
            memcpy(t->held[d], k->out.data, held);
    }
    __atomic_store_n(&t->quiescent, MQO_CTAB_QUIET, __ATOMIC_RELEASE);
    c->q_on = 1;
}

void mqo_splice_retrack(struct mqo_splice *sp)
{
    for (size_t i = 0; i < sp->conns.cap; i++)
        if (mqo_map_slot_used(&sp->conns.slots[i])) {
            struct sconn *c = (struct sconn *)(uintptr_t)sp->conns.slots[i].val;
            c->tracked = 0;
            if (c->state == ST_EST && !c->dead)
                track(c, 1);
            mark_dirty(c); /* the new entry's resume point is written at the next settle */
        }
}

static void free_conn(struct mqo_splice *sp, struct sconn *c)
{
    track(c, 0);
    heap_del(sp, c);
    q_del(sp, c, 0);
    q_del(sp, c, 1);
    mqo_map_del(&sp->conns, conn_key(c->cip, c->cport));
    if (c->ec)
        mqo_engine_conn_close(sp->eng, c->ec, sp->now);
    held_adj(c, C2S, -(int64_t)(c->h[C2S].out_end - c->h[C2S].out_una));
    cold_free(sp, &c->h[0]);
    cold_free(sp, &c->h[1]);
    dfr_drop(c);
    l2_release(sp, c->l2[0]);
    l2_release(sp, c->l2[1]);
    sp->st.conns_tracked--;
    free(c);
}

/* Resets both ends and forgets the connection. */
static void reset_both(struct sconn *c)
{
    if (!c->rst_sent && c->state >= ST_EST) {
        c->rst_sent = 1;
        c->sp->st.resets++;
        send_rst(c, MQO_SIDE_CLIENT);
        send_rst(c, MQO_SIDE_BROKER);
    }
    kill_conn(c);
}

/* ---- engine ops ---- */

static struct sconn *conn_of(struct mqo_conn *ec) { return mqo_conn_ud(ec); }

static void op_peer(void *ud, const struct mqo_conn *ec, struct mqo_peer *p)
{
    (void)ud;
    const struct sconn *c = mqo_conn_ud(ec);
    if (!c)
        return; /* loaded, not bound to its connection yet */
    memcpy(p->ip, &c->cip, 4);
    p->port = c->cport;
    p->fam = 4;
}

static void op_forward(void *ud, struct mqo_conn *ec, enum mqo_dir s, const uint8_t *p, size_t n)
{
    struct sconn *c = conn_of(ec);
    if (s == MQO_S2C && dfr_write(c))
        return;
    struct half *h = &c->h[s];
    struct hcold *k = cold_get(c->sp, h);
    if (!k || mqo_buf_append(&k->out, p, n)) {
        reset_both(c);
        return;
    }
    h->out_end += n;
    held_adj(c, s, (int64_t)n);
    h->in_acct += n;
    if (rec_push(k, h->in_acct, h->out_end)) {
        reset_both(c); /* without its record the input would never be acknowledged */
        return;
    }
    mark_dirty(c);
}

static void op_consume(void *ud, struct mqo_conn *ec, enum mqo_dir s, size_t n)
{
    struct sconn *c = conn_of(ec);
    if (s == MQO_S2C && dfr_write(c))
        return;
    struct half *h = &c->h[s];
    struct hcold *k = cold_get(c->sp, h);
    if (!k) {
        reset_both(c); /* without its record the input would never be acknowledged */
        return;
    }
    h->in_acct += n;
    if (rec_push(k, h->in_acct, h->out_end)) {
        reset_both(c);
        return;
    }
    mark_dirty(c);
}

/* Writes the bytes o stands for at the end of half s's output. Returns 0, or -1 when there was
 * no memory (the connection is reset). */
static int out_write(struct sconn *c, int s, const struct mqo_out *o)
{
    struct half *h = &c->h[s];
    size_t n = mqo_out_len(o);
    struct hcold *k = cold_get(c->sp, h);
    if (!k || mqo_buf_reserve(&k->out, n)) {
        reset_both(c);
        return -1;
    }
    mqo_out_copy(o, k->out.data + k->out.len);
    if (n >= CS_MIN)
        cs_push(k, h->out_end, o);
    k->out.len += n;
    h->out_end += n;
    held_adj(c, s, (int64_t)n);
    mark_dirty(c);
    return 0;
}

/* A delivery that comes while nothing is in transit toward the client waits as the engine gave
 * it (c->dfr: a reference to the fan-out's shared serialization) until the connection's turn
 * to send comes (push_half), or until anything else touches that output first: then it is
 * written, exactly as if at once. Until then it is not part of the TCP stream: no offset,
 * no ACK and no timer sees it. So a fan-out to thousands holds transit state (struct hcold,
 * the output's copy) only for the connections whose frames are out and not acknowledged yet,
 * as many as the output takes per loop iteration, not for all of them at once
 * (docs/ARCHITECTURE.md, "Memory per connection"). Returns 0, or -1 (no memory: reset). */
static int dfr_write(struct sconn *c)
{
    if (!c->dfr.msg)
        return 0;
    struct mqo_out o = c->dfr;
    c->dfr.msg = NULL;
    int rc = out_write(c, S2C, &o);
    mqo_msg_unref(o.msg);
    return rc;
}

static void dfr_drop(struct sconn *c)
{
    mqo_msg_unref(c->dfr.msg);
    c->dfr.msg = NULL;
}

static void op_insert(void *ud, struct mqo_conn *ec, enum mqo_dir s, const struct mqo_out *o)
{
    struct sconn *c = conn_of(ec);
    if (s == MQO_S2C && !c->h[S2C].k && !c->dfr.msg && !c->dead) {
        c->dfr = *o;
        mqo_msg_ref(o->msg);
        mark_dirty(c);
        return;
    }
    if (s == MQO_S2C && dfr_write(c))
        return;
    out_write(c, s, o);
}

/* The limit counts memory: the output buffer's allocation (consumed room and slack included)
 * and the records beside it; the buffer doubles as it grows, so with a limit that is 256 bytes
 * times a power of two (the default 4 MiB) the allocation never passes it. */
static size_t op_room(void *ud, struct mqo_conn *ec)
{
    struct mqo_splice *sp = ud;
    struct sconn *c = conn_of(ec);
    const struct half *h = &c->h[S2C];
    const struct hcold *k = h->k;
    size_t held =
        (k ? k->out.cap + k->cap_rec * sizeof *k->recs + k->cap_cs * sizeof *k->cs : 0) +
        (c->dfr.msg ? mqo_out_len(&c->dfr) : 0);
    if (c->state != ST_EST || h->fin_in)
        return 0;
    return held >= sp->cfg.max_queue ? 0 : sp->cfg.max_queue - held;
}

static size_t op_queued(void *ud, struct mqo_conn *ec)
{
    const struct sconn *c = conn_of(ec);
    const struct half *h = &c->h[S2C];
    return (size_t)(h->out_end - h->out_una) + (c->dfr.msg ? mqo_out_len(&c->dfr) : 0);
}

static void op_close(void *ud, struct mqo_conn *ec, int reason)
{
    /* a limit of the engine's own (memory, identifiers): never a protocol matter, which the
     * broker judges */
    reset_both(conn_of(ec));
}

/* ---- input ---- */

struct seg {
    const uint8_t *eth, *ip, *tcp, *payload;
    size_t len; /* payload */
    uint32_t sip, dip;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint16_t win;
    uint8_t flags;
    uint8_t has_ts, has_ws, has_mss, ws;
    uint16_t mss;
    uint32_t tsval, tsecr;
    size_t sack_ok_at; /* offset of a SACK-permitted option in tcp[], 0: none */
    size_t hlen;       /* TCP header length */
};

/* Parses an IPv4/TCP frame. Returns 0, or -1 when it is not one (or is a fragment). */
static int parse(const uint8_t *f, size_t len, struct seg *s)
{
    memset(s, 0, sizeof *s);
    size_t l2 = 14;
    if (len < 14)
        return -1;
    uint16_t et = rd16(f + 12);
    if (et == 0x8100 && len >= 18) { /* one VLAN tag */
        et = rd16(f + 16);
        l2 = 18;
    }
    if (et != 0x0800 || len < l2 + 20)
        return -1;
    const uint8_t *ip = f + l2;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t tot = rd16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || l2 + tot > len || ip[9] != 6)
        return -1;
    if (rd16(ip + 6) & 0x3fff) /* fragment */
        return -1;
    const uint8_t *tcp = ip + ihl;
    size_t tl = tot - ihl;
    if (tl < 20)
        return -1;
    size_t hl = (size_t)(tcp[12] >> 4) * 4;
    if (hl < 20 || hl > tl)
        return -1;
    s->eth = f;
    s->ip = ip;
    s->tcp = tcp;
    s->hlen = hl;
    s->payload = tcp + hl;
    s->len = tl - hl;
    memcpy(&s->sip, ip + 12, 4);
    memcpy(&s->dip, ip + 16, 4);
    s->sport = rd16(tcp);
    s->dport = rd16(tcp + 2);
    s->seq = rd32(tcp + 4);
    s->ack = rd32(tcp + 8);
    s->flags = tcp[13];
    s->win = rd16(tcp + 14);
    for (size_t i = 20; i < hl;) {
        uint8_t k = tcp[i];
        if (k == 0)
            break;
        if (k == 1) {
            i++;
            continue;
        }
        if (i + 1 >= hl || tcp[i + 1] < 2 || i + tcp[i + 1] > hl)
            break;
        uint8_t ol = tcp[i + 1];
        if (k == 2 && ol == 4) {
            s->has_mss = 1;
            s->mss = rd16(tcp + i + 2);
        } else if (k == 3 && ol == 3) {
            s->has_ws = 1;
            s->ws = tcp[i + 2] > 14 ? 14 : tcp[i + 2];
        } else if (k == 4 && ol == 2) {
            s->sack_ok_at = i;
        } else if (k == 8 && ol == 10) {
            s->has_ts = 1;
            s->tsval = rd32(tcp + i + 2);
            s->tsecr = rd32(tcp + i + 6);
        }
        i += ol;
    }
    return 0;
}

static int csum_valid(const struct seg *s)
{
    return tcp4_csum(s->ip, s->tcp, s->hlen + s->len) == 0;
}

/* Forwards a SYN or SYN-ACK with SACK-permitted replaced by two NOPs. */
static void pass_syn(struct mqo_splice *sp, int to, const struct seg *s, const uint8_t *frame,
                     size_t flen)
{
    if (flen > sizeof sp->frame)
        return;
    uint8_t *f = sp->frame;
    memcpy(f, frame, flen);
    if (s->sack_ok_at) {
        uint8_t *tcp = f + (s->tcp - frame);
        uint8_t *ip = f + (s->ip - frame);
        tcp[s->sack_ok_at] = 1;
        tcp[s->sack_ok_at + 1] = 1;
        wr16(tcp + 16, 0);
        put_csum(tcp + 16, tcp4_csum(ip, tcp, s->hlen + s->len));
    }
    sp->st.segs_out++;
    (void)sp->cfg.emit(sp->cfg.ud, to, f, flen, 0);
}

static void learn_l2(struct sconn *c, int from, const struct seg *s)
{
    /* a frame from side `from` travels toward the other side: its header is the template for
     * frames we send that way */
    uint8_t hdr[L2_HDR];
    memcpy(hdr, s->eth, 12);
    hdr[12] = 0x08;
    hdr[13] = 0x00;
    hdr[14] = s->ip[8];
    hdr[15] = s->ip[1];
    l2_set(c, from ^ 1, hdr);
}

static void init_half(struct half *h)
{
    set_rto(h, RTO_INIT);
    h->ssthresh = UINT32_MAX; /* none yet */
}

static struct sconn *new_conn(struct mqo_splice *sp, const struct seg *s)
{
    if (sp->st.conns_tracked >= sp->cfg.max_conns)
        return NULL;
    struct sconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->sp = sp;
    c->cip = s->sip;
    c->cport = s->sport;
    init_half(&c->h[0]);
    init_half(&c->h[1]);
    c->ec = mqo_engine_conn_open(sp->eng, c, sp->now);
    if (!c->ec || mqo_map_put(&sp->conns, conn_key(c->cip, c->cport), (uint64_t)(uintptr_t)c)) {
        if (c->ec)
            mqo_engine_conn_close(sp->eng, c->ec, sp->now);
        free(c);
        return NULL;
    }
    sp->st.conns_tracked++;
    sp->st.conns_total++;
    return c;
}

/* Client SYN: a connection the splice will edit. */
static void on_syn(struct mqo_splice *sp, struct sconn *c, const struct seg *s)
{
    c->state = ST_SYN_SENT;
    c->h[C2S].isn = s->seq;
    c->h[C2S].wscale_x = s->has_ws ? s->ws : 0;
    c->syn_ws = s->has_ws;
    c->h[S2C].mss_y = s->has_mss ? s->mss : 536; /* what the client receives */
    c->h[S2C].y_wnd = s->win;                    /* unscaled in a SYN */
    c->h[C2S].ts_recent = s->tsval;
    c->ts_ok = s->has_ts;
    c->h[C2S].fin_in = 0;
    c->ack_due[0] = c->ack_due[1] = 0;
}

static void on_synack(struct mqo_splice *sp, struct sconn *c, const struct seg *s)
{
    c->state = ST_SYN_RCVD;
    c->h[S2C].isn = s->seq;
    c->h[S2C].wscale_x = s->has_ws ? s->ws : 0;
    if (!s->has_ws || !c->syn_ws) { /* scaling needs both */
        c->h[S2C].wscale_x = 0;
        c->h[C2S].wscale_x = 0;
    }
    c->h[C2S].mss_y = s->has_mss ? s->mss : 536; /* what the broker receives */
    c->h[C2S].y_wnd = s->win;
    c->h[S2C].ts_recent = s->tsval;
    c->ts_ok = c->ts_ok && s->has_ts;
    for (int d = 0; d < 2; d++) {
        struct half *h = &c->h[d];
        h->cwnd = 10u * (h->mss_y ? h->mss_y : 536u);
        h->ack_at = sp->now;
    }
}

/* Feeds in-order bytes of half d to the engine. */
static void deliver(struct sconn *c, int d, const uint8_t *p, size_t n)
{
    struct half *h = &c->h[d];
    h->rcv_nxt += n;
    c->sp->st.bytes_in[d] += n;
    if (c->ec) {
        mqo_engine_input(c->sp->eng, c->ec, d == C2S ? MQO_C2S : MQO_S2C, p, n, c->sp->now);
        return;
    }
    /* the MQTT session ended with a FIN: what still flows is relayed as it is */
    if (d == S2C && dfr_write(c))
        return;
    struct hcold *k = cold_get(c->sp, h);
    if (!k || mqo_buf_append(&k->out, p, n)) {
        reset_both(c);
        return;
    }
    h->out_end += n;
    held_adj(c, d, (int64_t)n);
    h->in_acct += n;
    if (rec_push(k, h->in_acct, h->out_end)) {
        reset_both(c); /* without its record the input would never be acknowledged */
        return;
    }
    mark_dirty(c);
}

/* A FIN ends the MQTT session of the connection: the engine forgets it (its subscriptions, its
 * deliveries), whatever bytes still come are relayed unedited. */
static void end_session(struct sconn *c)
{
    if (!c->ec)
        return;
    mqo_engine_conn_close(c->sp->eng, c->ec, c->sp->now);
    c->ec = NULL;
}

static void ooo_store(struct mqo_splice *sp, struct half *h, uint64_t off, const uint8_t *p,
                      size_t n, int fin)
{
    if ((h->k ? h->k->ooo_bytes : 0) + n > OOO_MAX)
        return; /* the sender retransmits */
    struct hcold *k = cold_get(sp, h);
    struct ooo *o = k ? malloc(sizeof *o + n) : NULL;
    if (!o)
        return; /* as above */
    o->off = off;
    o->len = (uint32_t)n;
    o->fin = (uint8_t)fin;
    memcpy(o->data, p, n);
    struct ooo **pp = &k->ooo;
    while (*pp && (*pp)->off < off)
        pp = &(*pp)->next;
    o->next = *pp;
    *pp = o;
    k->ooo_bytes += n;
    sp->st.ooo_segs_in++;
}

/* Data (and FIN) of a segment of half d at offset off. */
static void on_data(struct sconn *c, int d, int64_t off, const uint8_t *p, size_t n, int fin)
{
    struct mqo_splice *sp = c->sp;
    struct half *h = &c->h[d];
    int from = in_side(d);
    if (h->fin_in) {
        if (n || fin)
            c->ack_due[from] = 1; /* a retransmission after the FIN */
        return;
    }
    int64_t nxt = (int64_t)h->rcv_nxt;
    if (off + (int64_t)n < nxt || (off + (int64_t)n == nxt && !fin)) {
        if (n || fin) {
            sp->st.dup_segs_in++;
            c->ack_due[from] = 1; /* its ACK was lost, or it timed out: tell it again */
        }
        return;
    }
    if (off > nxt) {
        ooo_store(sp, h, (uint64_t)off, p, n, fin);
        c->ack_due[from] = 1; /* duplicate ACK: lets the sender fast-retransmit */
        return;
    }
    size_t skip = (size_t)(nxt - off);
    if (n > skip)
        deliver(c, d, p + skip, n - skip);
    if (fin) {
        h->fin_in = 1;
        end_session(c);
    }
    /* what was waiting behind the gap */
    struct hcold *k;
    while ((k = h->k) && k->ooo && !h->fin_in && !c->dead) {
        struct ooo *o = k->ooo;
        if (o->off > h->rcv_nxt)
            break;
        k->ooo = o->next;
        k->ooo_bytes -= o->len;
        uint64_t end = o->off + o->len;
        if (end > h->rcv_nxt)
            deliver(c, d, o->data + (h->rcv_nxt - o->off), (size_t)(end - h->rcv_nxt));
        if (o->fin && end >= h->rcv_nxt) {
            h->fin_in = 1;
            end_session(c);
        }
        free(o);
    }
    c->ack_due[from] = 1;
}

/* The ACK field and window of a segment from side `from`, for half d (whose output it acks). */
static void on_ack(struct sconn *c, int d, const struct seg *s)
{
    struct mqo_splice *sp = c->sp;
    struct half *h = &c->h[d];
    struct hcold *k = h->k; /* NULL: everything sent was acknowledged (out_nxt is out_end) */
    uint64_t now = sp->now;
    int64_t a = unwrap(s->ack, h->isn, h->out_una);
    /* after a timeout sent out_nxt back, the receiver may still acknowledge all it got */
    uint64_t sent = k && k->out_max > k->out_nxt ? k->out_max : out_nxt(h);
    uint64_t limit = sent + (h->fin_out_sent ? 1 : 0);
    if (k && k->probe_end > limit)
        limit = k->probe_end; /* the receiver took the probe byte */
    if (a < (int64_t)h->out_una || (uint64_t)a > limit)
        return; /* old, or acks what we never sent */
    if (k)
        k->probes = 0; /* the receiver is there */
    h->ack_at = now;
    uint64_t wnd = (uint64_t)s->win << c->h[d ^ 1].wscale_x;
    uint64_t acked_to = (uint64_t)a;
    int fin_acked = h->fin_out_sent && acked_to == h->out_end + 1;
    if (fin_acked)
        acked_to = h->out_end;
    uint64_t mss = seg_payload_max(c, h);
    if (k && acked_to > h->out_una) {
        uint64_t n = acked_to - h->out_una;
        mqo_buf_consume(&k->out, (size_t)n);
        if (!k->out.len) /* all acknowledged: an idle connection keeps no buffer */
            mqo_buf_free(&k->out);
        h->out_una = acked_to;
        held_adj(c, d, -(int64_t)n);
        k->una_since = now; /* progress: the stall clock starts again */
        if (k->out_nxt < h->out_una)
            k->out_nxt = h->out_una;
        if (k->rtt_on && h->out_una >= k->rtt_off) {
            if (!k->backoff)
                rtt_sample(h, now);
            k->rtt_on = 0;
        }
        k->backoff = 0;
        if (k->in_recovery) {
            if (h->out_una >= k->recover) {
                k->in_recovery = 0;
                h->cwnd = h->ssthresh;
            } else {
                /* NewReno partial ack: the next hole goes out at once (push_half) */
                k->rtx_pend = 1;
            }
        } else if (h->cwnd < h->ssthresh) {
            /* slow start, counting the bytes acknowledged (RFC 3465 without its per-ACK limit,
             * as Linux counts segments): a receiver that acknowledges a super-segment (TSO,
             * GSO on a veth, GRO) or every other one sends one ACK for many MSS, and growing by
             * one MSS per ACK would leave the window at a few segments, a 64 KiB delivery
             * waiting several round trips for it */
            h->cwnd = (uint32_t)(h->cwnd + n > h->ssthresh ? h->ssthresh : h->cwnd + n);
        } else {
            /* congestion avoidance: one MSS per window of bytes acknowledged */
            h->cwnd = cap32(h->cwnd + mss * n / h->cwnd + 1);
        }
        k->dupacks = 0;
        arm(c, &k->rtx_deadline,
            k->out_nxt > h->out_una || (h->fin_out_sent && !fin_acked) ? now + rto_ns(h) : 0);
    } else if (k && s->len == 0 && !(s->flags & (TH_SYN | TH_FIN)) && k->out_nxt > h->out_una &&
               wnd == h->y_wnd) {
        if (++k->dupacks == 3 && !k->in_recovery) {
            uint64_t flight = k->out_nxt - h->out_una;
            h->ssthresh = cap32(flight / 2 > 2 * mss ? flight / 2 : 2 * mss);
            h->cwnd = cap32(h->ssthresh + 3 * mss);
            k->recover = k->out_nxt;
            k->in_recovery = 1;
            k->rtx_pend = 1; /* sent by push_half, before anything new */
            sp->st.fast_retransmits++;
            k->rtt_on = 0;
        } else if (k->in_recovery) {
            h->cwnd = cap32(h->cwnd + mss);
        }
    }
    if (fin_acked) {
        h->fin_out_acked = 1;
        if (k && k->out_nxt == h->out_una)
            k->rtx_deadline = 0; /* nothing left in flight */
    }
    h->y_wnd = (uint32_t)wnd; /* at most 65535 << 14 */
    if (wnd && k) {
        k->persist_deadline = 0;
        k->pbackoff = 0;
    }
    /* the receiver's progress may resolve input of this half: the sender is owed an ACK */
    if (resolve(h))
        c->ack_due[in_side(d)] = 1;
    /* all acknowledged: the transit state goes now, not at the idle walk (during a fan-out
     * the connection may wait long for its turn in the send queue; settle trims again) */
    cold_trim(sp, h);
    mark_dirty(c);
}

static void established_segment(struct sconn *c, int from, const struct seg *s)
{
    int d_in = from == MQO_SIDE_CLIENT ? C2S : S2C; /* half whose sender is `from` */
    struct half *hin = &c->h[d_in];
    if (c->ts_ok && s->has_ts &&
        (hin->ts_unknown || (int32_t)(s->tsval - hin->ts_recent) >= 0)) {
        hin->ts_recent = s->tsval;
        hin->ts_unknown = 0;
    }
    if (s->flags & TH_RST) {
        /* pass it on, inside the other end's window, and forget the connection */
        int to = from ^ 1;
        if (!c->rst_sent) {
            c->rst_sent = 1;
            c->sp->st.rsts_relayed++;
            send_rst(c, to);
        }
        kill_conn(c);
        return;
    }
    if (s->flags & TH_ACK)
        on_ack(c, d_in ^ 1, s);
    if (c->dead)
        return;
    if (s->len || (s->flags & TH_FIN)) {
        int64_t off = unwrap(s->seq, hin->isn, hin->rcv_nxt);
        on_data(c, d_in, off, s->payload, s->len, (s->flags & TH_FIN) != 0);
        if (!c->dead && resolve(hin))
            c->ack_due[from] = 1;
    } else if (s->seq == hin->isn + (uint32_t)hin->rcv_nxt && !(s->flags & TH_SYN)) {
        /* a keep-alive probe (one below the next byte, no data): answer it for the other
         * end. Other old empty segments are not answered: two ends answering each other's
         * stale ACKs would never stop. */
        c->ack_due[from] = 1;
    }
    if (c->state == ST_SYN_RCVD && from == MQO_SIDE_CLIENT && (s->flags & TH_ACK)) {
        /* the client's ACK of the SYN-ACK: the broker gets one from us (ours numbers the
         * streams as it knows them, so it completes its handshake the same way) */
        c->state = ST_EST;
        c->ack_due[MQO_SIDE_BROKER] = 1;
        track(c, 1);
    }
    mark_dirty(c);
    if (c->h[C2S].fin_resolved && c->h[S2C].fin_resolved && c->h[C2S].fin_out_acked &&
        c->h[S2C].fin_out_acked && !c->closed_at)
        c->closed_at = c->sp->now;
}

/* A frame of a connection whose SYN we did not see. */
static void unseen_frame(struct mqo_splice *sp, uint64_t key, int closing, uint64_t now)
{
    uint64_t v;
    int known = mqo_map_get(&sp->unseen, key, &v);
    if (known && (v & 1))
        return; /* closing already */
    if (mqo_map_put(&sp->unseen, key, (now & ~1ull) | (closing ? 1 : 0)))
        return;
    if (!known && !closing)
        sp->unseen_open++;
    else if (known && closing)
        sp->unseen_open--;
    else
        return;
    mqo_engine_set_unseen_clients(sp->eng, sp->unseen_open + sp->in_startup);
}

/* Starts or ends the startup hold. */
static void startup_clock(struct mqo_splice *sp, uint64_t now)
{
    if (!sp->started) {
        sp->started = now ? now : 1;
        if (sp->cfg.startup_hold_ms > 0) {
            sp->in_startup = 1;
            mqo_info("monitor: nothing is offloaded for the first %d s (clients connected before "
                     "mqoff started show themselves by then)", sp->cfg.startup_hold_ms / 1000);
            mqo_engine_set_unseen_clients(sp->eng, sp->unseen_open + 1);
        }
    }
    if (sp->in_startup && now - sp->started >= (uint64_t)sp->cfg.startup_hold_ms * MS) {
        sp->in_startup = 0;
        mqo_engine_set_unseen_clients(sp->eng, sp->unseen_open);
    }
}

/* Emits what every marked connection owes, in the order they were marked, as far as the output
 * takes it (what it refuses waits, first in line, for the next call), then frees the
 * connections that ended. */
static void settle(struct mqo_splice *sp)
{
    /* Every connection whose state changed has its entry in the shared table updated before
     * anything at all is emitted: a frame toward one connection can take another one out of
     * its quiescent state (an ACK to a publisher whose PUBLISH the offload consumed, while the
     * subscriber's delivery still waits), and a crash between the two must not leave the
     * other one marked quiescent at offsets its ends no longer agree with. */
    if (sp->cfg.track)
        for (int to = 0; to < 2; to++)
            for (struct sconn *c = sp->q[to].head; c; c = c->qnext[to])
                ctab_sync(c);
    for (int to = 0; to < 2; to++)
        while (sp->q[to].head) {
            struct sconn *c = sp->q[to].head;
            int r = flush_side(c, to);
            if (r < 0)
                break;
            q_del(sp, c, to);
            if (r > 0) { /* its ACK waits for mqo_splice_flush */
                q_append(&sp->dq[to], c, to, 2);
                continue;
            }
            /* everything toward `to` acknowledged: its transit state goes at once (the idle
             * walk would free it within a second; a fan-out would meanwhile hold it for every
             * subscriber) */
            cold_trim(sp, &c->h[to == MQO_SIDE_BROKER ? C2S : S2C]);
        }
    while (sp->ndead)
        free_conn(sp, sp->dead[--sp->ndead]);
}

int mqo_splice_input(struct mqo_splice *sp, int from, const uint8_t *frame, size_t len,
                     int csum_ok, uint64_t now)
{
    struct seg s;
    if (now > sp->now)
        sp->now = now;
    startup_clock(sp, now);
    if (parse(frame, len, &s))
        return 0;
    uint32_t cip;
    uint16_t cport;
    if (from == MQO_SIDE_CLIENT && s.dip == sp->cfg.broker_ip && s.dport == sp->cfg.broker_port) {
        cip = s.sip;
        cport = s.sport;
    } else if (from == MQO_SIDE_BROKER && s.sip == sp->cfg.broker_ip &&
               s.sport == sp->cfg.broker_port) {
        cip = s.dip;
        cport = s.dport;
    } else {
        return 0;
    }
    uint64_t v;
    struct sconn *c = mqo_map_get(&sp->conns, conn_key(cip, cport), &v)
                          ? (struct sconn *)(uintptr_t)v
                          : NULL;
    if (c && c->dead)
        return 1;
    /* only a client's SYN opens a connection the splice edits */
    int syn = (s.flags & (TH_SYN | TH_ACK)) == TH_SYN && from == MQO_SIDE_CLIENT;
    if (!c && !syn) {
        /* a connection whose start we did not see: never edited, but its client may hold
         * subscriptions we cannot know, so nothing is offloaded while it lives */
        sp->st.conns_untracked++;
        unseen_frame(sp, conn_key(cip, cport), (s.flags & (TH_FIN | TH_RST)) != 0, now);
        return 0;
    }
    if (!csum_ok && !csum_valid(&s)) {
        sp->st.bad_csum++;
        return 1; /* what the receiver would drop */
    }
    sp->st.segs_in++;
    if (syn && from == MQO_SIDE_CLIENT) {
        if (c && c->state >= ST_EST) {
            if (s.seq == c->h[C2S].isn)
                return 1; /* a duplicate of the SYN that opened this connection */
            /* another initial sequence number: a new connection on the same ports (the client
             * lost the old one) */
            free_conn(sp, c);
            c = NULL;
        }
        uint64_t uv;
        if (!c && mqo_map_get(&sp->unseen, conn_key(cip, cport), &uv)) {
            /* a new connection on the ports of an unseen one: that one is gone */
            mqo_map_del(&sp->unseen, conn_key(cip, cport));
            if (!(uv & 1)) {
                sp->unseen_open--;
                mqo_engine_set_unseen_clients(sp->eng, sp->unseen_open + sp->in_startup);
            }
        }
        if (!c && !(c = new_conn(sp, &s))) {
            sp->st.conns_untracked++;
            return 0; /* table full: not edited */
        }
        c->last_seen = now;
        learn_l2(c, from, &s);
        on_syn(sp, c, &s);
        pass_syn(sp, MQO_SIDE_BROKER, &s, frame, len);
        return 1;
    }
    c->last_seen = now;
    learn_l2(c, from, &s);
    if ((s.flags & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK)) {
        if (from == MQO_SIDE_BROKER && c->state == ST_EST && s.seq == c->h[S2C].isn) {
            /* the broker did not get the ACK we sent it for the client's: again */
            c->ack_due[MQO_SIDE_BROKER] = 1;
            mark_dirty(c);
            settle(sp);
            return 1;
        }
        if (from != MQO_SIDE_BROKER || c->state > ST_SYN_RCVD)
            return 1;
        on_synack(sp, c, &s);
        pass_syn(sp, MQO_SIDE_CLIENT, &s, frame, len);
        return 1;
    }
    if (c->state == ST_SYN_SENT) {
        /* No connection yet, nothing edited: whatever else the ends send passes untouched. A
         * RST refuses the connection. A broker socket in TIME_WAIT answers a SYN it does not
         * accept with an ACK, which makes the client reset that TIME_WAIT and try again:
         * swallowing the ACK left the client retrying its SYN into the TIME_WAIT until it
         * expired (seen when a second run of 19,900 clients reused the ports of the first). */
        (void)sp->cfg.emit(sp->cfg.ud, from ^ 1, frame, len, 0);
        if (s.flags & TH_RST)
            kill_conn(c);
        settle(sp);
        return 1;
    }
    if (c->closed_at) {
        /* both directions finished: absorb late segments, re-acknowledge those that carry
         * something (a FIN or data sent again: our ACK was lost). An empty one is not
         * answered and a RST ends the linger: answering the RST a closed socket sends for a
         * late ACK makes it send another, and the two ends trade them forever. */
        if (s.flags & TH_RST) {
            kill_conn(c);
        } else if (s.len || (s.flags & TH_FIN)) {
            c->ack_due[from] = 1;
            mark_dirty(c);
        }
    } else {
        established_segment(c, from, &s);
    }
    settle(sp); /* what this frame set in motion (fan-out marks other connections too) */
    return 1;
}

/* ---- timers ---- */

static void timers_half(struct sconn *c, int d)
{
    struct mqo_splice *sp = c->sp;
    struct half *h = &c->h[d];
    struct hcold *k = h->k;
    if (!k)
        return; /* no timer armed */
    uint64_t now = sp->now;
    uint64_t mss = seg_payload_max(c, h);
    if (k->rtx_deadline && now >= k->rtx_deadline) {
        /* Linux's rule (tcp_retries2): give up once the oldest unacknowledged byte has gone
         * unacknowledged for as long as `retries` backed-off timeouts from RTO_MIN take, and
         * it was sent again at least once. Only bytes that were sent count: what waits for
         * the output (a large fan-out, a busy port) has not been sent, so mqoff's own load
         * never makes a live peer look gone. */
        /* A receiver that closed its window under bytes in flight answers their
         * retransmissions without taking them: they are its probes, and it is given up only
         * when it answered nothing for RTO_MAX (Linux's tcp_retransmit_timer does the same). */
        int gone = h->y_wnd ? now - k->una_since >= sp->give_up_ns : now - h->ack_at > RTO_MAX;
        if (k->backoff && gone) {
            mqo_warn("connection %u.%u.%u.%u:%u: the %s acknowledged nothing for %llu s and %u "
                     "retransmissions; resetting both ends",
                     ((uint8_t *)&c->cip)[0], ((uint8_t *)&c->cip)[1], ((uint8_t *)&c->cip)[2],
                     ((uint8_t *)&c->cip)[3], c->cport, d == C2S ? "broker" : "client",
                     (unsigned long long)((now - k->una_since) / NS), k->backoff);
            sp->st.rto_give_ups++;
            reset_both(c);
            return;
        }
        if (k->backoff < 255)
            k->backoff++;
        sp->st.rto_expired++;
        mqo_dbg("splice: RTO half %d una %llu nxt %llu end %llu fin %d/%d wnd %llu", d,
                (unsigned long long)h->out_una, (unsigned long long)k->out_nxt,
                (unsigned long long)h->out_end, h->fin_out_sent, h->fin_out_acked,
                (unsigned long long)h->y_wnd);
        uint64_t flight = k->out_nxt - h->out_una;
        h->ssthresh = cap32(flight / 2 > 2 * mss ? flight / 2 : 2 * mss);
        h->cwnd = (uint32_t)mss;
        k->in_recovery = 0;
        k->dupacks = 0;
        k->rtt_on = 0;
        set_rto(h, 2 * rto_ns(h));
        /* go back: resend from the first unacknowledged byte */
        k->out_nxt = h->out_una;
        if (h->fin_out_sent && !h->fin_out_acked)
            h->fin_out_sent = 0;
        k->rtx_deadline = 0;
        k->rtx_pend = 0;
        if (h->out_end > h->out_una || h->fin_in)
            sp->st.retransmits++;
        /* push_half resends from out_una when settle() reaches the connection; the deadline
         * is armed again when a segment actually leaves */
        mark_dirty(c);
    }
    if (k->persist_deadline && now >= k->persist_deadline) {
        /* Linux's rule for the persist timer: probes back off like retransmissions for as
         * long as the window stays closed, any ACK from the receiver answers them (on_ack),
         * and `retries` unanswered probes in a row mean the receiver is gone. A receiver that answers with a zero window is alive and
         * is probed for as long as it keeps its window closed. */
        if (k->probes >= sp->cfg.rtx_retries) {
            mqo_warn("connection %u.%u.%u.%u:%u: the %s answered none of %u zero-window probes; "
                     "resetting both ends",
                     ((uint8_t *)&c->cip)[0], ((uint8_t *)&c->cip)[1], ((uint8_t *)&c->cip)[2],
                     ((uint8_t *)&c->cip)[3], c->cport, d == C2S ? "broker" : "client",
                     k->probes);
            sp->st.probe_give_ups++;
            reset_both(c);
            return;
        }
        uint64_t iv = rto_ns(h);
        for (unsigned j = 0; j < k->pbackoff && iv < RTO_MAX; j++)
            iv *= 2;
        arm(c, &k->persist_deadline, now + (iv < RTO_MAX ? iv : RTO_MAX));
        k->probe_pend = 1;
        mark_dirty(c);
    }
}

/* Idle expiry, a slice of both tables per tick: a walk over every connection at once stalls
 * every frame that arrives meanwhile. */
static void expire_idle(struct mqo_splice *sp, uint64_t now, uint64_t dt)
{
    /* unseen connections silent for the idle time are taken as gone */
    for (size_t k = mqo_slice_share(&sp->unseen_credit, sp->unseen.cap, dt, NS); k; k--) {
        if (sp->unseen_slot >= sp->unseen.cap)
            sp->unseen_slot = 0;
        size_t i = sp->unseen_slot++;
        const struct mqo_map_slot *sl = &sp->unseen.slots[i];
        if (!mqo_map_slot_used(sl))
            continue;
        int closing = sl->val & 1;
        uint64_t limit = closing ? LINGER_NS : (uint64_t)sp->cfg.idle_ms * MS;
        if (now - (sl->val & ~1ull) <= limit)
            continue;
        mqo_map_del(&sp->unseen, mqo_map_slot_key(sl));
        if (!closing) {
            sp->unseen_open--;
            mqo_engine_set_unseen_clients(sp->eng, sp->unseen_open + sp->in_startup);
        }
        sp->unseen_slot = i; /* backward-shift deletion may have moved another entry here */
    }
    /* tracked connections: idle, or closed and past the linger time (the map changes only in
     * settle(), which frees them) */
    for (size_t k = mqo_slice_share(&sp->conn_credit, sp->conns.cap, dt, NS); k; k--) {
        if (sp->conn_slot >= sp->conns.cap)
            sp->conn_slot = 0;
        const struct mqo_map_slot *sl = &sp->conns.slots[sp->conn_slot++];
        if (!mqo_map_slot_used(sl))
            continue;
        struct sconn *c = (struct sconn *)(uintptr_t)sl->val;
        if (!c->dead && ((c->closed_at && now - c->closed_at > LINGER_NS) ||
                         now - c->last_seen > (uint64_t)sp->cfg.idle_ms * MS))
            kill_conn(c);
        /* a direction whose transit state outlived its traffic gives it back here (most give
         * it back at the ACK that completes them, on_ack and settle: a fan-out's subscribers
         * would otherwise all hold it at once; allocating it again costs a calloc per
         * delivery) */
        cold_trim(sp, &c->h[0]);
        cold_trim(sp, &c->h[1]);
    }
}

void mqo_splice_tick(struct mqo_splice *sp, uint64_t now)
{
    if (now > sp->now)
        sp->now = now;
    startup_clock(sp, now);
    mqo_engine_tick(sp->eng, now);
    uint64_t dt = sp->last_tick && now > sp->last_tick ? now - sp->last_tick : 0;
    if (!sp->last_tick || dt > NS)
        dt = NS;
    if (now > sp->last_tick)
        sp->last_tick = now;
    expire_idle(sp, now, dt);
    /* connections whose earliest timer is due */
    while (sp->nheap && sp->heap[0].key <= now) {
        struct sconn *c = sp->heap[0].c;
        heap_del(sp, c);
        if (c->dead)
            continue;
        if (c->state >= ST_EST && !c->closed_at) {
            timers_half(c, C2S);
            if (!c->dead)
                timers_half(c, S2C);
        }
        /* a deadline moved later or re-armed: back in at it (one still due is not served
         * in this state: dropped rather than spun on) */
        uint64_t e = conn_deadline(c);
        if (!c->dead && e > now)
            heap_arm(c, e);
    }
    mqo_splice_flush(sp);
}

void mqo_splice_defer_acks(struct mqo_splice *sp, int on) { sp->defer_acks = on != 0; }

void mqo_splice_flush(struct mqo_splice *sp)
{
    uint8_t defer = sp->defer_acks;
    sp->defer_acks = 0; /* what the input so far owes goes now */
    for (int side = 0; side < 2; side++)
        dq_return(sp, side);
    settle(sp);
    sp->defer_acks = defer;
}

unsigned mqo_splice_pending(const struct mqo_splice *sp)
{
    unsigned m = 0;
    for (int side = 0; side < 2; side++)
        if (sp->q[side].head || sp->dq[side].head)
            m |= 1u << side;
    return m;
}

uint64_t mqo_splice_next_timer(const struct mqo_splice *sp, uint64_t now)
{
    if (!sp->nheap)
        return UINT64_MAX;
    uint64_t due = sp->heap[0].key;
    return due > now ? due - now : 0;
}

/* ---- setup ---- */

uint64_t mqo_splice_give_up_ns(unsigned retries)
{
    /* Linux's tcp_model_timeout(): timeouts double from RTO_MIN until they reach RTO_MAX,
     * then stay there; the sum of `retries` of them */
    unsigned thresh = 0;
    while ((RTO_MIN << (thresh + 1)) <= RTO_MAX)
        thresh++;
    if (retries <= thresh)
        return ((2ull << retries) - 1) * RTO_MIN;
    return ((2ull << thresh) - 1) * RTO_MIN + (uint64_t)(retries - thresh) * RTO_MAX;
}

struct mqo_splice *mqo_splice_new(const struct mqo_splice_cfg *cfg)
{
    struct mqo_splice *sp = calloc(1, sizeof *sp);
    if (!sp) {
        errno = ENOMEM;
        return NULL;
    }
    sp->cfg = *cfg;
    if (!sp->cfg.max_queue)
        sp->cfg.max_queue = 4u << 20;
    if (!sp->cfg.client_window)
        sp->cfg.client_window = 256u << 10;
    else if (sp->cfg.client_window == MQO_SPLICE_WINDOW_NONE)
        sp->cfg.client_window = 0;
    if (!sp->cfg.client_window_mem)
        sp->cfg.client_window_mem = 64u << 20;
    if (!sp->cfg.max_conns)
        sp->cfg.max_conns = 65536;
    if (!sp->cfg.rtx_retries)
        sp->cfg.rtx_retries = RETRIES_DEFAULT;
    if (!sp->cfg.share_min)
        sp->cfg.share_min = SHARE_MIN;
    sp->give_up_ns = mqo_splice_give_up_ns(sp->cfg.rtx_retries);
    sp->heap = malloc(sp->cfg.max_conns * sizeof *sp->heap);
    sp->dead = malloc(sp->cfg.max_conns * sizeof *sp->dead);
    sp->l2.v = calloc(8, sizeof *sp->l2.v);
    if (!sp->heap || !sp->dead || !sp->l2.v) {
        free(sp->heap);
        free(sp->dead);
        free(sp->l2.v);
        free(sp);
        errno = ENOMEM;
        return NULL;
    }
    sp->l2.n = 1; /* entry 0: all zero */
    sp->l2.cap = 8;
    if (!sp->cfg.idle_ms)
        sp->cfg.idle_ms = 2 * 3600 * 1000;
    if (!sp->cfg.startup_hold_ms)
        sp->cfg.startup_hold_ms = 90000;
    struct mqo_engine_cfg ec = cfg->engine;
    ec.ops = (struct mqo_engine_ops){.forward = op_forward,
                                     .consume = op_consume,
                                     .insert = op_insert,
                                     .room = op_room,
                                     .queued = op_queued,
                                     .close = op_close,
                                     .peer = op_peer};
    ec.ud = sp;
    sp->eng = mqo_engine_new(&ec);
    if (!sp->eng) {
        int err = errno;
        free(sp->heap);
        free(sp->dead);
        free(sp->l2.v);
        free(sp);
        errno = err;
        return NULL;
    }
    return sp;
}

void mqo_splice_free(struct mqo_splice *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < sp->conns.cap; i++)
        if (mqo_map_slot_used(&sp->conns.slots[i])) {
            struct sconn *c = (struct sconn *)(uintptr_t)sp->conns.slots[i].val;
            if (c->ec)
                mqo_engine_conn_close(sp->eng, c->ec, sp->now);
            c->ec = NULL;
            cold_free(sp, &c->h[0]);
            cold_free(sp, &c->h[1]);
            dfr_drop(c);
            free(c);
        }
    mqo_map_free(&sp->conns);
    mqo_map_free(&sp->unseen);
    mqo_engine_free(sp->eng);
    free(sp->heap);
    free(sp->dead);
    free(sp->l2.v);
    mqo_map_free(&sp->l2.idx);
    free(sp);
}

const struct mqo_splice_stats *mqo_splice_stats(const struct mqo_splice *sp) { return &sp->st; }

size_t mqo_splice_templates(const struct mqo_splice *sp)
{
    size_t n = 0;
    for (uint32_t i = 1; i < sp->l2.n; i++)
        n += sp->l2.v[i].refs != 0;
    return n;
}
const struct mqo_engine_stats *mqo_splice_engine_stats(const struct mqo_splice *sp)
{
    return mqo_engine_stats(sp->eng);
}

static void add_held(void *arg, uint64_t key, uint64_t val)
{
    uint64_t *held = arg;
    const struct sconn *c = (const struct sconn *)(uintptr_t)val;
    for (int d = 0; d < 2; d++)
        held[d] += c->h[d].out_end - c->h[d].out_una;
}

void mqo_splice_held(const struct mqo_splice *sp, uint64_t held[2])
{
    held[0] = held[1] = 0;
    mqo_map_each(&sp->conns, add_held, held);
}

struct mqo_engine *mqo_splice_engine(struct mqo_splice *sp) { return sp->eng; }

void mqo_splice_set_offload(struct mqo_splice *sp, int side, const struct mqo_splice_offload *o)
{
    sp->off[side & 1] = *o;
    if (o->tso_max > TSO_MAX)
        sp->off[side & 1].tso_max = TSO_MAX;
}

int mqo_splice_tracks(const struct mqo_splice *sp, uint32_t client_ip, uint16_t client_port)
{
    return mqo_map_get(&sp->conns, conn_key(client_ip, client_port), NULL);
}

/* ---- crash recovery ---- */

int mqo_splice_resume(struct mqo_splice *sp, const struct mqo_ctab_ent *e, uint64_t now)
{
    if (!mqo_ctab_resumable(e))
        return -EINVAL;
    if (now > sp->now)
        sp->now = now;
    startup_clock(sp, now);
    if (mqo_map_get(&sp->conns, conn_key(e->cip, e->cport), NULL))
        return -EEXIST;
    if (sp->st.conns_tracked >= sp->cfg.max_conns)
        return -ENOSPC;
    struct seg s = {.sip = e->cip, .sport = e->cport};
    struct sconn *c = new_conn(sp, &s);
    if (!c)
        return -ENOMEM;
    c->state = ST_EST;
    c->ts_ok = e->ts_ok;
    c->syn_ws = 1;
    for (int to = 0; to < 2; to++)
        l2_set_parts(c, to, e->eth[to], e->ttl[to], e->tos[to]);
    c->last_seen = sp->now;
    for (int d = 0; d < 2; d++) {
        struct half *h = &c->h[d];
        h->isn = e->isn[d];
        h->wscale_x = e->wscale[d];
        h->mss_y = e->mss[d];
        h->rcv_nxt = h->ack_in = h->in_acct = e->in_off[d];
        /* what the dead process held for the receiver goes again (it may have it already) */
        h->out_una = e->out_off[d];
        h->out_end = e->out_off[d] + e->held_len[d];
        held_adj(c, d, (int64_t)e->held_len[d]);
        if (e->held_len[d]) {
            struct hcold *k = cold_get(sp, h); /* out_max: out_end (the dead process sent them) */
            if (!k || mqo_buf_append(&k->out, e->held[d], e->held_len[d])) {
                free_conn(sp, c);
                return -ENOMEM;
            }
            k->out_nxt = h->out_una;
        }
        /* the receiver's window is learnt from its answer to the probe; meanwhile one
         * segment may go */
        h->y_wnd = h->mss_y;
        h->cwnd = 10u * h->mss_y;
        h->ack_at = sp->now;
        h->ts_unknown = c->ts_ok != 0;
    }
    char why[96];
    const uint8_t *ip = (const uint8_t *)&c->cip;
    snprintf(why, sizeof why, "resumed after a crash of the previous mqoff (%u.%u.%u.%u:%u)",
             ip[0], ip[1], ip[2], ip[3], c->cport);
    mqo_conn_relay_unknown(c->ec, why);
    c->ka_probe[MQO_SIDE_CLIENT] = c->ka_probe[MQO_SIDE_BROKER] = 1;
    track(c, 1);
    mark_dirty(c);
    sp->st.conns_resumed++;
    settle(sp);
    return 0;
}

/* ---- takeover (mqo_splice_save / mqo_splice_load) ----
 *
 * Every tracked connection with both halves: sequence spaces, what is held for each receiver
 * (unacknowledged output), the resolution records, out-of-order input, congestion state and
 * timers (CLOCK_MONOTONIC, the same in every process); then the table of connections whose SYN
 * was not seen, and the engine's snapshot. The checksum records (csrec) are not carried: a
 * segment of those bytes is summed from its bytes. */

#define SPLICE_SNAP_VERSION 1
static const uint8_t SP_MAGIC[8] = {'M', 'Q', 'O', 'S', 'P', 'L', 'C', 0};

static void half_save(struct mqo_wr *w, const struct half *h)
{
    const struct hcold idle = {.out_nxt = h->out_end, .out_max = h->out_end};
    const struct hcold *k = h->k ? h->k : &idle;
    mqo_wr_u32(w, h->isn);
    mqo_wr_u8(w, h->wscale_x);
    mqo_wr_u16(w, h->mss_y);
    mqo_wr_u64(w, h->rcv_nxt);
    uint32_t no = 0;
    for (const struct ooo *o = k->ooo; o; o = o->next)
        no++;
    mqo_wr_u32(w, no);
    for (const struct ooo *o = k->ooo; o; o = o->next) {
        mqo_wr_u64(w, o->off);
        mqo_wr_u8(w, o->fin);
        mqo_wr_blob(w, o->data, o->len);
    }
    mqo_wr_u64(w, h->in_acct);
    mqo_wr_u32(w, (uint32_t)k->nrec);
    for (size_t i = 0; i < k->nrec; i++) {
        const struct rec *r = &k->recs[(k->rec_head + i) % k->cap_rec];
        mqo_wr_u64(w, r->in_end);
        mqo_wr_u64(w, r->out_end);
    }
    /* the FIN's offset (a format field) is rcv_nxt */
    const uint64_t v[] = {h->ack_in, h->rcv_nxt, h->out_una, k->out_nxt, h->out_end, k->out_max,
                          h->y_wnd, h->cwnd, h->ssthresh, k->recover, rto_ns(h),
                          (uint64_t)h->srtt_us * 1000, (uint64_t)h->rttvar_us * 1000, k->rtx_deadline, k->persist_deadline, k->una_since,
                          h->ack_at, k->rtt_off, k->rtt_sent, k->probe_end};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        mqo_wr_u64(w, v[i]);
    const uint8_t f[] = {h->fin_in, h->fin_resolved, h->fin_out_sent, h->fin_out_acked,
                         k->dupacks, k->in_recovery, k->backoff, k->rtx_pend, k->probe_pend,
                         k->probes, k->pbackoff, k->rtt_on, h->ts_unknown};
    mqo_wr_blob(w, f, sizeof f);
    mqo_wr_u32(w, h->ts_recent);
    mqo_wr_blob(w, k->out.data, k->out.len);
}

static void unseen_save(void *arg, uint64_t k, uint64_t v)
{
    mqo_wr_u64(arg, k);
    mqo_wr_u64(arg, v);
}

int mqo_splice_save(struct mqo_splice *sp, struct mqo_buf *out)
{
    settle(sp); /* what can go now goes; dead connections are freed */
    /* deliveries the output had no room for yet are written: the snapshot holds them */
    for (size_t i = 0; i < sp->conns.cap; i++)
        if (mqo_map_slot_used(&sp->conns.slots[i]))
            dfr_write((struct sconn *)(uintptr_t)sp->conns.slots[i].val);
    settle(sp); /* a connection reset meanwhile is freed */
    struct mqo_wr w = {.b = out};
    mqo_wr_bytes_raw(&w, SP_MAGIC, sizeof SP_MAGIC);
    mqo_wr_u32(&w, SPLICE_SNAP_VERSION);
    mqo_wr_u64(&w, sp->started);
    mqo_wr_u8(&w, sp->in_startup);
    mqo_wr_u64(&w, sp->unseen_open);
    size_t nst = sizeof sp->st / sizeof(uint64_t);
    mqo_wr_u32(&w, (uint32_t)nst);
    for (size_t i = 0; i < nst; i++)
        mqo_wr_u64(&w, ((const uint64_t *)&sp->st)[i]);
    mqo_wr_u32(&w, (uint32_t)sp->unseen.n);
    mqo_map_each(&sp->unseen, unseen_save, &w);
    mqo_wr_u32(&w, (uint32_t)sp->conns.n);
    for (size_t i = 0; i < sp->conns.cap; i++) {
        if (!mqo_map_slot_used(&sp->conns.slots[i]))
            continue;
        const struct sconn *c = (const struct sconn *)(uintptr_t)sp->conns.slots[i].val;
        mqo_wr_u32(&w, c->cip);
        mqo_wr_u16(&w, c->cport);
        const uint8_t *l2[2] = {l2_hdr(c, 0), l2_hdr(c, 1)};
        const uint8_t f[] = {c->state,     c->ts_ok,      c->dead,       c->queued[0],
                             c->queued[1], c->ack_due[0], c->ack_due[1], c->rst_sent,
                             c->syn_ws,    l2[0][14],     l2[1][14],     l2[0][15],
                             l2[1][15]};
        mqo_wr_blob(&w, f, sizeof f);
        mqo_wr_bytes_raw(&w, l2[0], 14);
        mqo_wr_bytes_raw(&w, l2[1], 14);
        mqo_wr_u16(&w, c->ip_id[0]);
        mqo_wr_u16(&w, c->ip_id[1]);
        mqo_wr_u64(&w, c->last_seen);
        mqo_wr_u64(&w, c->closed_at);
        mqo_wr_u64(&w, c->ec ? mqo_conn_id(c->ec) : 0);
        half_save(&w, &c->h[0]);
        half_save(&w, &c->h[1]);
    }
    struct mqo_buf eb = {0};
    int rc = mqo_engine_save(sp->eng, &eb);
    mqo_wr_blob(&w, eb.data, eb.len);
    mqo_buf_free(&eb);
    return rc ? rc : w.err;
}

static int half_load(struct mqo_splice *sp, struct mqo_rd *r, struct half *h, size_t max_bytes)
{
    struct hcold *k = cold_get(sp, h); /* freed at the end when idle */
    if (!k)
        return -ENOMEM;
    h->isn = mqo_rd_u32(r);
    h->wscale_x = mqo_rd_u8(r);
    h->mss_y = mqo_rd_u16(r);
    h->rcv_nxt = mqo_rd_u64(r);
    uint32_t no = mqo_rd_count(r, 13);
    struct ooo **tail = &k->ooo;
    for (uint32_t i = 0; i < no && !r->err; i++) {
        uint64_t off = mqo_rd_u64(r);
        uint8_t fin = mqo_rd_u8(r);
        size_t len;
        const uint8_t *p = mqo_rd_blob(r, max_bytes, &len);
        if (r->err)
            return -EINVAL;
        struct ooo *o = malloc(sizeof *o + len);
        if (!o)
            return -ENOMEM;
        o->next = NULL;
        o->off = off;
        o->len = (uint32_t)len;
        o->fin = fin;
        if (len)
            memcpy(o->data, p, len);
        *tail = o;
        tail = &o->next;
        k->ooo_bytes += len;
    }
    h->in_acct = mqo_rd_u64(r);
    uint32_t nr = mqo_rd_count(r, 16);
    if (r->err)
        return -EINVAL;
    if (nr) {
        k->recs = malloc(nr * sizeof *k->recs);
        if (!k->recs)
            return -ENOMEM;
        k->cap_rec = k->nrec = nr;
        for (uint32_t i = 0; i < nr; i++) {
            k->recs[i].in_end = mqo_rd_u64(r);
            k->recs[i].out_end = mqo_rd_u64(r);
        }
    }
    uint64_t fin_off, y_wnd, cwnd, ssthresh, rto, srtt, rttvar;
    uint64_t *v[] = {&h->ack_in, &fin_off, &h->out_una, &k->out_nxt, &h->out_end,
                     &k->out_max, &y_wnd, &cwnd, &ssthresh, &k->recover, &rto,
                     &srtt, &rttvar, &k->rtx_deadline, &k->persist_deadline,
                     &k->una_since, &h->ack_at, &k->rtt_off, &k->rtt_sent, &k->probe_end};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        *v[i] = mqo_rd_u64(r);
    /* a FIN comes after the last input byte (fin_off is rcv_nxt); windows below 2^30, a
     * congestion window saturates at 32 bits (what is more lets no more into flight) */
    (void)fin_off;
    h->y_wnd = cap32(y_wnd);
    h->cwnd = cap32(cwnd);
    h->ssthresh = cap32(ssthresh);
    /* the snapshot keeps nanoseconds; a timeout of 0 is refused below */
    h->rto_us = 0;
    if (rto)
        set_rto(h, rto);
    h->srtt_us = (uint32_t)((srtt > RTO_MAX ? RTO_MAX : srtt) / 1000);
    h->rttvar_us = (uint32_t)((rttvar > RTO_MAX ? RTO_MAX : rttvar) / 1000);
    size_t nf;
    const uint8_t *f = mqo_rd_blob(r, 64, &nf);
    if (r->err || nf < 12)
        return -EINVAL;
    h->fin_in = f[0] != 0;
    h->fin_resolved = f[1] != 0;
    h->fin_out_sent = f[2] != 0;
    h->fin_out_acked = f[3] != 0;
    k->dupacks = f[4];
    k->in_recovery = f[5];
    k->backoff = f[6];
    k->rtx_pend = f[7];
    k->probe_pend = f[8];
    k->probes = f[9];
    k->pbackoff = f[10];
    k->rtt_on = f[11];
    h->ts_unknown = nf > 12 && f[12]; /* later than the first format */
    h->ts_recent = mqo_rd_u32(r);
    size_t ol;
    const uint8_t *o = mqo_rd_blob(r, max_bytes, &ol);
    if (r->err || (ol && mqo_buf_append(&k->out, o, ol)))
        return -EINVAL;
    /* the held output is exactly [out_una, out_end), and the offsets are ordered */
    if (h->out_una > h->out_end || h->out_end - h->out_una != ol || k->out_nxt < h->out_una ||
        k->out_nxt > h->out_end || h->rto_us == 0 || h->wscale_x > 14 || h->mss_y == 0)
        return -EINVAL;
    cold_trim(sp, h);
    return 0;
}

int mqo_splice_load(struct mqo_splice *sp, const uint8_t *p, size_t n)
{
    if (sp->conns.n)
        return -EBUSY;
    struct mqo_rd r = {.p = p, .n = n};
    const uint8_t *m = mqo_rd_raw(&r, sizeof SP_MAGIC);
    if (!m || memcmp(m, SP_MAGIC, sizeof SP_MAGIC) != 0)
        return -EINVAL;
    uint32_t ver = mqo_rd_u32(&r);
    if (r.err)
        return -EINVAL;
    if (ver != SPLICE_SNAP_VERSION)
        return -EPROTO;
    sp->started = mqo_rd_u64(&r);
    sp->in_startup = mqo_rd_u8(&r);
    sp->unseen_open = mqo_rd_u64(&r);
    uint32_t nst = mqo_rd_count(&r, 8);
    struct mqo_splice_stats st = {0};
    for (uint32_t i = 0; i < nst; i++) {
        uint64_t v = mqo_rd_u64(&r);
        if (i < sizeof st / sizeof(uint64_t))
            ((uint64_t *)&st)[i] = v;
    }
    uint32_t nu = mqo_rd_count(&r, 16);
    for (uint32_t i = 0; i < nu && !r.err; i++) {
        uint64_t k = mqo_rd_u64(&r), v = mqo_rd_u64(&r);
        if (mqo_map_put(&sp->unseen, k, v))
            return -ENOMEM;
    }
    uint32_t nc = mqo_rd_count(&r, 64);
    if (r.err || nc > sp->cfg.max_conns)
        return -EINVAL;
    /* the connections' engine ids, to bind after the engine loaded */
    uint64_t *ids = calloc(nc ? nc : 1, sizeof *ids);
    struct sconn **cv = calloc(nc ? nc : 1, sizeof *cv);
    int rc = -ENOMEM;
    if (!ids || !cv)
        goto out;
    rc = -EINVAL;
    size_t max_bytes = sp->cfg.max_queue * 4 + (64u << 20);
    for (uint32_t i = 0; i < nc; i++) {
        struct sconn *c = calloc(1, sizeof *c);
        if (!c) {
            rc = -ENOMEM;
            goto out;
        }
        c->sp = sp;
        c->cip = mqo_rd_u32(&r);
        c->cport = mqo_rd_u16(&r);
        if (r.err || mqo_map_get(&sp->conns, conn_key(c->cip, c->cport), NULL) ||
            mqo_map_put(&sp->conns, conn_key(c->cip, c->cport), (uint64_t)(uintptr_t)c)) {
            free(c);
            goto out;
        }
        cv[i] = c; /* in the table: freed with the splice from here on */
        sp->st.conns_tracked++;
        size_t nf;
        const uint8_t *f = mqo_rd_blob(&r, 64, &nf);
        if (r.err || nf < 13)
            goto out;
        c->state = f[0] <= ST_CLOSED ? f[0] : ST_CLOSED;
        c->ts_ok = f[1] != 0;
        c->dead = 0; /* settled before the save: none is dead */
        c->ack_due[0] = f[5];
        c->ack_due[1] = f[6];
        c->rst_sent = f[7] != 0;
        c->syn_ws = f[8] != 0;
        const uint8_t *eth = mqo_rd_raw(&r, 2 * 14); /* toward each side */
        if (!eth)
            goto out;
        for (int to = 0; to < 2; to++)
            l2_set_parts(c, to, eth + 14 * to, f[9 + to], f[11 + to]);
        c->ip_id[0] = mqo_rd_u16(&r);
        c->ip_id[1] = mqo_rd_u16(&r);
        c->last_seen = mqo_rd_u64(&r);
        c->closed_at = mqo_rd_u64(&r);
        ids[i] = mqo_rd_u64(&r);
        if (r.err || (rc = half_load(sp, &r, &c->h[0], max_bytes)) != 0 ||
            (rc = half_load(sp, &r, &c->h[1], max_bytes)) != 0) {
            rc = rc ? rc : -EINVAL;
            goto out;
        }
        held_adj(c, C2S, (int64_t)(c->h[C2S].out_end - c->h[C2S].out_una));
        rc = -EINVAL;
    }
    size_t el;
    const uint8_t *eb = mqo_rd_blob(&r, SIZE_MAX, &el);
    if (r.err || r.off != r.n)
        goto out;
    if ((rc = mqo_engine_load(sp->eng, eb, el)) != 0)
        goto out;
    rc = -EINVAL;
    size_t bound = 0;
    for (uint32_t i = 0; i < nc; i++)
        bound += ids[i] != 0;
    if (mqo_engine_conn_count(sp->eng) != bound) /* each engine connection is a splice's */
        goto out;
    for (uint32_t i = 0; i < nc; i++) {
        struct sconn *c = cv[i];
        if (!ids[i])
            continue;
        struct mqo_conn *ec = mqo_engine_conn_find(sp->eng, ids[i]);
        if (!ec || mqo_conn_ud(ec))
            goto out;
        c->ec = ec;
        mqo_conn_set_ud(ec, c);
    }
    for (uint32_t i = 0; i < nc; i++) {
        uint64_t t = conn_deadline(cv[i]);
        if (t)
            heap_arm(cv[i], t);
        mark_dirty(cv[i]); /* what is owed goes out at the next settle */
    }
    st.flight_states = sp->st.flight_states; /* this process's own */
    sp->st = st;
    sp->st.conns_tracked = nc;
    rc = 0;
out:
    if (rc) {
        /* engine connections no splice connection took are closed with the engine */
        for (uint32_t i = 0; cv && i < nc; i++)
            if (cv[i] && cv[i]->ec && mqo_conn_ud(cv[i]->ec) != cv[i])
                cv[i]->ec = NULL;
    }
    free(ids);
    free(cv);
    return rc;
}
