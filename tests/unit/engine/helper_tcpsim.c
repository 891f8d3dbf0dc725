/* TCP endpoint and wire model for splice tests; see helper_tcpsim.h. */
#include "helper_tcpsim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2/parse.h"
#include "tcp/splice.h"

#define MS 1000000ull
#define RTO (200 * MS)

enum { CLOSED, SYN_SENT, SYN_RCVD, ESTAB };

#define VIOL(e, why)                                                                              \
    do {                                                                                          \
        (e)->violations++;                                                                        \
        if (getenv("TCPSIM_DEBUG"))                                                               \
            fprintf(stderr, "tcpsim: side %d port %u: %s\n", (e)->side, (e)->port, why);          \
    } while (0)

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_csum(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static uint16_t tcp4_csum(const uint8_t *ip, const uint8_t *tcp, size_t len)
{
    uint32_t sa, da;
    memcpy(&sa, ip + 12, 4);
    memcpy(&da, ip + 16, 4);
    return mqo_cksum_fold(mqo_cksum_partial(tcp, len, mqo_cksum_pseudo4(sa, da, 6, (uint16_t)len, 0)));
}

static uint64_t rnd(struct ts_wire *w)
{
    /* splitmix64 */
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ts_net_init(struct ts_net *n, void *splice, uint64_t seed)
{
    memset(n, 0, sizeof *n);
    n->splice = splice;
    n->wire.rng = seed;
    n->now = 1000 * MS;
    n->delay_ns = 100000; /* 100 us */
}

static void release_held(struct ts_net *n)
{
    for (size_t i = 0; i < n->n_held; i++)
        mqo_msg_unref(n->held[i]);
    n->n_held = 0;
}

void ts_net_free(struct ts_net *n)
{
    release_held(n);
    free(n->held);
    for (size_t i = 0; i < n->n; i++)
        free(n->q[i].data);
    free(n->q);
    free(n->eps);
    memset(n, 0, sizeof *n);
}

void ts_ep_init(struct ts_ep *e, int side, uint32_t ip, uint16_t port, uint32_t peer_ip,
                uint16_t peer_port, uint32_t isn, uint16_t mss, uint32_t rcv_wnd, int ts,
                uint8_t ws)
{
    memset(e, 0, sizeof *e);
    e->side = side;
    e->ip = ip;
    e->peer_ip = peer_ip;
    e->port = port;
    e->peer_port = peer_port;
    e->isn = isn;
    e->mss = mss;
    e->rcv_wnd = rcv_wnd;
    e->ts_ok = ts;
    e->ws_mine = ws;
    uint8_t cm[6] = {0x02, 0, 0, 0, 0, 1}, bm[6] = {0x02, 0, 0, 0, 0, 2};
    memcpy(e->mac, side == MQO_SIDE_CLIENT ? cm : bm, 6);
    memcpy(e->peer_mac, side == MQO_SIDE_CLIENT ? bm : cm, 6);
    e->peer_wnd = 65535;
}

void ts_ep_free(struct ts_ep *e)
{
    mqo_buf_free(&e->app_out);
    mqo_buf_free(&e->app_in);
}

void ts_net_add(struct ts_net *n, struct ts_ep *e)
{
    if (n->n_eps == n->cap_eps) {
        n->cap_eps = n->cap_eps ? n->cap_eps * 2 : 16;
        n->eps = realloc(n->eps, n->cap_eps * sizeof *n->eps);
    }
    n->eps[n->n_eps++] = e;
}

/* ---- wire ---- */

static void enqueue(struct ts_net *n, struct ts_ep *ep, int to_splice, const uint8_t *f,
                    size_t len)
{
    struct ts_wire *w = &n->wire;
    int dir = to_splice ? 0 : 1;
    w->frames[dir]++;
    if (!to_splice && len >= 14 + 20 &&
        (memcmp(f, ep->mac, 6) || memcmp(f + 6, ep->peer_mac, 6) ||
         f[14 + 8] != (ep->peer_ttl ? ep->peer_ttl : 64) || f[14 + 1] != ep->peer_tos))
        ep->misaddressed++;
    if (w->drop && w->drop(w->drop_arg, ep, to_splice, f, len)) {
        w->lost[dir]++;
        return;
    }
    if (w->loss_pct[dir] && rnd(w) % 100 < w->loss_pct[dir]) {
        w->lost[dir]++;
        return;
    }
    int copies = 1;
    if (w->dup_pct[dir] && rnd(w) % 100 < w->dup_pct[dir]) {
        copies = 2;
        w->duped[dir]++;
    }
    for (int k = 0; k < copies; k++) {
        if (n->n == n->cap) {
            n->cap = n->cap ? n->cap * 2 : 64;
            n->q = realloc(n->q, n->cap * sizeof *n->q);
        }
        uint64_t at = n->now + n->delay_ns + (uint64_t)k * 1000;
        if (w->reorder_pct[dir] && rnd(w) % 100 < w->reorder_pct[dir]) {
            at += 3 * n->delay_ns + rnd(w) % (5 * n->delay_ns); /* later ones overtake it */
            w->reordered[dir]++;
        }
        struct ts_frame *q = &n->q[n->n++];
        q->data = malloc(len);
        memcpy(q->data, f, len);
        q->len = len;
        q->to_splice = to_splice;
        q->ep = ep;
        q->at = at;
        q->seq = n->next_seq++;
    }
}

/* A TSO frame cut as a device cuts it: headers copied into every segment, the IP length, id
 * (one each) and checksum, the sequence number and the TCP checksum written per segment, PSH
 * and FIN on the last only. Each segment goes on through ts_emit (and the wire's loss) on its
 * own. A frame that is not what a device takes (its checksum field not the pseudo-header sum
 * without the length, its IP length not the frame's) aborts the test. */
static int emit_tso(struct ts_net *n, int to_side, const uint8_t *frame, size_t len, size_t seg)
{
    static uint8_t out[14 + 60 + 60 + 9000];
    const uint8_t *ip = frame + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4, thl = (size_t)(ip[ihl + 12] >> 4) * 4;
    size_t hdr = 14 + ihl + thl, pay = len - hdr;
    uint32_t sa, da;
    memcpy(&sa, ip + 12, 4);
    memcpy(&da, ip + 16, 4);
    uint16_t want, got;
    want = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(sa, da, 6, 0, 0));
    memcpy(&got, ip + ihl + 16, 2);
    if (ip[9] != 6 || rd16(ip + 2) != len - 14 || got != want || seg == 0 || seg > 9000 ||
        pay <= seg)
        abort();
    n->tso_frames++;
    uint32_t seq = rd32(ip + ihl + 4);
    uint16_t id = rd16(ip + 4);
    uint8_t fl = ip[ihl + 13];
    for (size_t o = 0; o < pay; o += seg) {
        size_t k = pay - o < seg ? pay - o : seg;
        memcpy(out, frame, hdr);
        memcpy(out + hdr, frame + hdr + o, k);
        uint8_t *oip = out + 14, *tcp = oip + ihl;
        wr16(oip + 2, (uint16_t)(ihl + thl + k));
        wr16(oip + 4, (uint16_t)(id + o / seg));
        wr16(oip + 10, 0);
        put_csum(oip + 10, mqo_cksum_fold(mqo_cksum_partial(oip, ihl, 0)));
        wr32(tcp + 4, seq + (uint32_t)o);
        tcp[13] = o + k < pay ? (uint8_t)(fl & ~0x09) : fl; /* PSH, FIN: the last one */
        wr16(tcp + 16, 0);
        put_csum(tcp + 16, tcp4_csum(oip, tcp, thl + k));
        n->tso_segs++;
        ts_emit(n, to_side, out, hdr + k, 0);
    }
    return 0;
}

/* A frame whose TCP checksum the output completes, completed as a device does; its field
 * must hold the pseudo-header sum with the length (else the test aborts). */
static int emit_csum(struct ts_net *n, int to_side, const uint8_t *frame, size_t len)
{
    static uint8_t out[14 + 60 + 60 + 9000];
    const uint8_t *ip = frame + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4, tl = len - 14 - ihl;
    uint32_t sa, da;
    memcpy(&sa, ip + 12, 4);
    memcpy(&da, ip + 16, 4);
    uint16_t want = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(sa, da, 6, (uint16_t)tl, 0)), got;
    memcpy(&got, ip + ihl + 16, 2);
    if (ip[9] != 6 || len > sizeof out || got != want)
        abort();
    memcpy(out, frame, len);
    uint8_t *tcp = out + 14 + ihl;
    wr16(tcp + 16, 0);
    put_csum(tcp + 16, tcp4_csum(out + 14, tcp, tl));
    n->csum_completed++;
    return ts_emit(n, to_side, out, len, 0);
}

int ts_emit(void *ud, int to_side, const uint8_t *frame, size_t len, unsigned flags)
{
    struct ts_net *n = ud;
    if (n->tx_cap && (flags & MQO_SPLICE_EMIT_KEPT)) {
        if (n->now >= n->tx_refill_at) {
            n->tx_room = n->tx_cap;
            n->tx_refill_at = n->now + n->tx_period_ns;
        }
        if (!n->tx_room) {
            n->tx_refused++;
            return -EAGAIN;
        }
        n->tx_room--;
    }
    if (flags & MQO_SPLICE_EMIT_TSO)
        return emit_tso(n, to_side, frame, len, MQO_SPLICE_EMIT_SEG(flags));
    if (flags & MQO_SPLICE_EMIT_CSUM)
        return emit_csum(n, to_side, frame, len);
    if (len < 14 + 20 + 20)
        return 0;
    const uint8_t *ip = frame + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    uint32_t dip, sip;
    memcpy(&sip, ip + 12, 4);
    memcpy(&dip, ip + 16, 4);
    uint16_t sport = rd16(ip + ihl), dport = rd16(ip + ihl + 2);
    for (size_t i = 0; i < n->n_eps; i++) {
        struct ts_ep *e = n->eps[i];
        if (e->side == to_side && e->ip == dip && e->port == dport && e->peer_ip == sip &&
            e->peer_port == sport) {
            enqueue(n, e, 0, frame, len);
            return 0;
        }
    }
    return 0;
}

void ts_inject(struct ts_net *n, struct ts_ep *from, const uint8_t *frame, size_t len)
{
    enqueue(n, from, 1, frame, len);
}

/* ---- segments ---- */

size_t ts_build(struct ts_ep *e, uint8_t *out, uint32_t seq, uint32_t ack, uint8_t flags,
                const void *payload, size_t len, int with_ts, uint32_t tsval)
{
    uint8_t *ip = out + 14, *tcp = ip + 20;
    memcpy(out, e->peer_mac, 6);
    memcpy(out + 6, e->mac, 6);
    out[12] = 0x08;
    out[13] = 0x00;
    uint8_t opt[40];
    size_t ol = 0;
    if (flags & 0x02) { /* SYN: MSS, WS, SACK-permitted, TS */
        opt[ol++] = 2;
        opt[ol++] = 4;
        wr16(opt + ol, e->mss);
        ol += 2;
        opt[ol++] = 1;
        opt[ol++] = 3;
        opt[ol++] = 3;
        opt[ol++] = e->ws_mine;
        opt[ol++] = 4;
        opt[ol++] = 2;
    }
    if (with_ts) {
        opt[ol++] = 1;
        opt[ol++] = 1;
        opt[ol++] = 8;
        opt[ol++] = 10;
        wr32(opt + ol, tsval);
        wr32(opt + ol + 4, e->ts_recent);
        ol += 8;
    }
    while (ol % 4)
        opt[ol++] = 0;
    size_t tl = 20 + ol + len;
    ip[0] = 0x45;
    ip[1] = e->tos;
    wr16(ip + 2, (uint16_t)(20 + tl));
    wr16(ip + 4, 0);
    wr16(ip + 6, 0x4000);
    ip[8] = e->ttl ? e->ttl : 64;
    ip[9] = 6;
    wr16(ip + 10, 0);
    memcpy(ip + 12, &e->ip, 4);
    memcpy(ip + 16, &e->peer_ip, 4);
    put_csum(ip + 10, mqo_cksum_fold(mqo_cksum_partial(ip, 20, 0)));
    wr16(tcp, e->port);
    wr16(tcp + 2, e->peer_port);
    wr32(tcp + 4, seq);
    wr32(tcp + 8, ack);
    tcp[12] = (uint8_t)(((20 + ol) / 4) << 4);
    tcp[13] = flags;
    uint64_t wnd = e->rcv_wnd > e->app_in.len ? e->rcv_wnd - e->app_in.len : 0;
    if (!(flags & 0x02))
        wnd >>= e->ws_ok ? e->ws_mine : 0;
    wr16(tcp + 14, (uint16_t)(wnd > 65535 ? 65535 : wnd));
    wr16(tcp + 16, 0);
    wr16(tcp + 18, 0);
    memcpy(tcp + 20, opt, ol);
    if (len)
        memcpy(tcp + 20 + ol, payload, len);
    put_csum(tcp + 16, tcp4_csum(ip, tcp, tl));
    return 14 + 20 + tl;
}

static uint32_t tsnow(struct ts_net *n, struct ts_ep *e)
{
    return (uint32_t)(n->now / MS) + (e->side ? 5000000u : 1000u);
}

static void send(struct ts_net *n, struct ts_ep *e, uint64_t off, const uint8_t *p, size_t len,
                 uint8_t flags)
{
    uint8_t f[9300];
    uint32_t ack = (flags & 0x10) ? e->peer_isn + 1 + (uint32_t)e->rcv_nxt + (e->fin_rcvd ? 1 : 0)
                                  : 0;
    uint32_t seq = (flags & 0x02) ? e->isn : e->isn + 1 + (uint32_t)off;
    size_t l = ts_build(e, f, seq, ack, flags, p, len, e->ts_ok, tsnow(n, e));
    enqueue(n, e, 1, f, l);
    e->unacked_segs = 0;
    e->ack_at = 0;
}

static void ack_now(struct ts_net *n, struct ts_ep *e)
{
    send(n, e, e->snd_nxt + (e->fin_sent ? 1 : 0), NULL, 0, 0x10);
}

void ts_ack_now(struct ts_net *n, struct ts_ep *e) { ack_now(n, e); }

static void try_send(struct ts_net *n, struct ts_ep *e)
{
    if (e->state != ESTAB)
        return;
    while (e->snd_nxt < e->app_out_end) {
        uint64_t right = e->snd_una + e->peer_wnd;
        uint64_t room = right > e->snd_nxt ? right - e->snd_nxt : 0;
        uint64_t k = e->app_out_end - e->snd_nxt;
        if (k > e->peer_mss)
            k = e->peer_mss;
        if (k > room)
            k = room;
        if (!k)
            break;
        if (e->cwnd_segs && e->n_seg >= e->cwnd_segs)
            break;
        send(n, e, e->snd_nxt, e->app_out.data + (e->snd_nxt - e->snd_una), (size_t)k, 0x18);
        e->snd_nxt += k;
        if (e->snd_nxt > e->snd_max)
            e->snd_max = e->snd_nxt;
        if (e->n_seg < 64)
            e->seg_end[e->n_seg++] = e->snd_nxt;
        if (!e->rtx_at)
            e->rtx_at = n->now + RTO;
    }
    if (e->fin_sent == 1 && e->snd_nxt == e->app_out_end) {
        send(n, e, e->snd_nxt, NULL, 0, 0x11);
        e->fin_sent = 2; /* on the wire */
        if (!e->rtx_at)
            e->rtx_at = n->now + RTO;
    }
    if (e->snd_nxt < e->app_out_end && e->peer_wnd == 0 && !e->rtx_at)
        e->rtx_at = n->now + RTO; /* persist */
}

void ts_connect(struct ts_net *n, struct ts_ep *e)
{
    e->state = SYN_SENT;
    send(n, e, 0, NULL, 0, 0x02);
    e->rtx_at = n->now + RTO;
}

void ts_write(struct ts_net *n, struct ts_ep *e, const void *p, size_t len)
{
    mqo_buf_append(&e->app_out, p, len);
    e->app_out_end += len;
    try_send(n, e);
}

void ts_close(struct ts_net *n, struct ts_ep *e)
{
    if (!e->fin_sent)
        e->fin_sent = 1;
    try_send(n, e);
}

static void parse_opts(struct ts_ep *e, const uint8_t *tcp, size_t hl, int syn, int *has_ts,
                       uint32_t *tsval, uint32_t *tsecr)
{
    *has_ts = 0;
    for (size_t i = 20; i < hl;) {
        uint8_t k = tcp[i];
        if (k == 0)
            break;
        if (k == 1) {
            i++;
            continue;
        }
        if (i + 1 >= hl || tcp[i + 1] < 2)
            break;
        uint8_t l = tcp[i + 1];
        if (syn && k == 2 && l == 4)
            e->peer_mss = rd16(tcp + i + 2);
        if (syn && k == 3 && l == 3) {
            e->ws_peer = tcp[i + 2];
            e->ws_ok = 1;
        }
        if (syn && k == 4)
            VIOL(e, "SACK-permitted not stripped");
        if (k == 8 && l == 10) {
            *has_ts = 1;
            *tsval = rd32(tcp + i + 2);
            *tsecr = rd32(tcp + i + 6);
        }
        i += l;
    }
}

static void ep_receive(struct ts_net *n, struct ts_ep *e, const uint8_t *f, size_t len)
{
    const uint8_t *ip = f + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4, tot = rd16(ip + 2);
    const uint8_t *tcp = ip + ihl;
    size_t tl = tot - ihl, hl = (size_t)(tcp[12] >> 4) * 4;
    /* a valid checksum sums (with its own field) to all ones: the folded complement is 0 */
    if (mqo_cksum_fold(mqo_cksum_partial(ip, 20, 0)) != 0 || tcp4_csum(ip, tcp, tl) != 0) {
        VIOL(e, "bad checksum");
        return;
    }
    uint8_t flags = tcp[13];
    uint32_t seq = rd32(tcp + 4), ack = rd32(tcp + 8);
    uint16_t win = rd16(tcp + 14);
    const uint8_t *pl = tcp + hl;
    size_t plen = tl - hl;
    int has_ts;
    uint32_t tsval = 0, tsecr = 0;
    parse_opts(e, tcp, hl, (flags & 0x02) != 0, &has_ts, &tsval, &tsecr);
    if (plen + (hl - 20) > e->mss)
        VIOL(e, "segment larger than the MSS");
    if (flags & 0x04) {
        e->rst_rcvd = 1;
        e->state = CLOSED;
        return;
    }
    if (e->state == CLOSED && e->side == MQO_SIDE_BROKER && (flags & 0x12) == 0x02) {
        e->peer_isn = seq;
        e->state = SYN_RCVD;
        e->peer_wnd = win;
        if (!e->ws_ok)
            e->ws_mine = 0;
        if (has_ts)
            e->ts_recent = tsval;
        else
            e->ts_ok = 0;
        send(n, e, 0, NULL, 0, 0x12);
        e->rtx_at = n->now + RTO;
        return;
    }
    if (e->state == SYN_SENT && (flags & 0x12) == 0x12) {
        if (ack != e->isn + 1) {
            VIOL(e, "SYN-ACK acks the wrong ISN");
            return;
        }
        e->peer_isn = seq;
        e->state = ESTAB;
        e->peer_wnd = win;
        if (!e->ws_ok)
            e->ws_mine = 0;
        if (has_ts)
            e->ts_recent = tsval;
        else
            e->ts_ok = 0;
        e->rtx_at = 0;
        ack_now(n, e);
        try_send(n, e);
        return;
    }
    if (e->state == SYN_RCVD && (flags & 0x10) && ack == e->isn + 1) {
        e->state = ESTAB;
        e->rtx_at = 0;
    }
    if (e->state == SYN_RCVD && (flags & 0x12) == 0x02) {
        send(n, e, 0, NULL, 0, 0x12); /* SYN again: SYN-ACK again */
        return;
    }
    if (e->state != ESTAB)
        return;
    if (flags & 0x02) {
        /* the SYN-ACK again (our ACK of it was lost): acknowledge it again, as a TCP answers
         * any segment it cannot accept, or the peer waits in SYN-RCVD until our data comes */
        ack_now(n, e);
        return;
    }
    /* PAWS */
    if (e->ts_ok && has_ts && (int32_t)(tsval - e->ts_recent) < 0) {
        e->paws_drops++;
        if (getenv("TCPSIM_DEBUG"))
            fprintf(stderr, "PAWS drop side %d: tsval %u < recent %u, flags %02x len %zu\n",
                    e->side, tsval, e->ts_recent, flags, plen);
        ack_now(n, e);
        return;
    }
    int64_t off = (int64_t)(int32_t)(seq - (e->peer_isn + 1) - (uint32_t)e->rcv_nxt) +
                  (int64_t)e->rcv_nxt;
    if (has_ts && off <= (int64_t)e->rcv_nxt)
        e->ts_recent = tsval;
    /* ACK */
    if (flags & 0x10) {
        int64_t a = (int64_t)(int32_t)(ack - (e->isn + 1) - (uint32_t)e->snd_una) +
                    (int64_t)e->snd_una;
        uint64_t limit = (e->snd_max > e->snd_nxt ? e->snd_max : e->snd_nxt) + (e->fin_sent == 2 ? 1 : 0);
        if (a > (int64_t)limit) {
            VIOL(e, "acks what we never sent");
        } else if (a > (int64_t)e->snd_una) {
            uint64_t adv = (uint64_t)a - e->snd_una;
            if (adv > e->app_out_end - e->snd_una)
                adv = e->app_out_end - e->snd_una; /* the FIN */
            mqo_buf_consume(&e->app_out, (size_t)adv);
            e->snd_una += adv;
            if (e->snd_nxt < e->snd_una)
                e->snd_nxt = e->snd_una; /* acked beyond where a timeout sent us back */
            unsigned k = 0;
            while (k < e->n_seg && e->seg_end[k] <= e->snd_una)
                k++;
            memmove(e->seg_end, e->seg_end + k, (e->n_seg - k) * sizeof e->seg_end[0]);
            e->n_seg -= k;
            e->rto = 0;
            e->rtx_at = (e->snd_nxt > e->snd_una) ? n->now + RTO : 0;
        }
        e->peer_wnd = (uint64_t)win << (e->ws_ok ? e->ws_peer : 0);
    }
    /* data */
    uint64_t room = e->rcv_wnd > e->app_in.len ? e->rcv_wnd - e->app_in.len : 0;
    if (plen && off > (int64_t)(e->rcv_nxt + room + 1))
        VIOL(e, "data beyond the window we advertised");
    int fin = (flags & 0x01) != 0;
    if (plen || fin) {
        if (off + (int64_t)plen < (int64_t)e->rcv_nxt ||
            (off + (int64_t)plen == (int64_t)e->rcv_nxt && (!fin || e->fin_rcvd))) {
            e->dup_data++;
            ack_now(n, e);
        } else if (off > (int64_t)e->rcv_nxt) {
            e->ooo_drops++;
            ack_now(n, e);
        } else {
            size_t skip = (size_t)((int64_t)e->rcv_nxt - off);
            size_t take = plen - skip;
            if (take > room)
                take = (size_t)room;
            mqo_buf_append(&e->app_in, pl + skip, take);
            e->rcv_nxt += take;
            if (fin && skip + take == plen)
                e->fin_rcvd = 1;
            e->unacked_segs++;
            if (!e->delayed_ack || e->unacked_segs >= (int)(e->ack_every ? e->ack_every : 2) ||
                fin)
                ack_now(n, e);
            else if (!e->ack_at)
                e->ack_at = n->now + 40 * MS;
        }
    }
    try_send(n, e);
}

static void ep_timers(struct ts_net *n, struct ts_ep *e)
{
    if (e->ack_at && n->now >= e->ack_at)
        ack_now(n, e);
    if (!e->rtx_at || n->now < e->rtx_at)
        return;
    e->rtx_at = n->now + RTO;
    if (e->state == SYN_SENT) {
        send(n, e, 0, NULL, 0, 0x02);
        return;
    }
    if (e->state == SYN_RCVD) {
        send(n, e, 0, NULL, 0, 0x12);
        return;
    }
    if (e->state != ESTAB)
        return;
    if (e->snd_una < e->app_out_end) {
        /* go back N, or a one-byte window probe */
        uint64_t k = e->app_out_end - e->snd_una;
        if (k > e->peer_mss)
            k = e->peer_mss;
        if (e->peer_wnd == 0)
            k = 1;
        send(n, e, e->snd_una, e->app_out.data, (size_t)k, 0x18);
        /* go back N, as Linux does after a timeout: what follows is sent again */
        e->snd_nxt = e->snd_una + k;
        if (e->snd_nxt > e->snd_max)
            e->snd_max = e->snd_nxt;
        e->seg_end[0] = e->snd_una + k;
        e->n_seg = 1;
        e->rto = e->rto ? (e->rto * 2 > 3200 * MS ? 3200 * MS : e->rto * 2) : 2 * RTO;
        e->rtx_at = n->now + e->rto;
        return;
    }
    if (e->fin_sent == 2)
        send(n, e, e->snd_nxt, NULL, 0, 0x11);
    else
        e->rtx_at = 0;
}

int ts_emit_shared(void *ud, int to_side, const uint8_t *frame, size_t hlen, struct mqo_msg *msg,
                   size_t ext_off, size_t ext_len, unsigned flags)
{
    struct ts_net *n = ud;
    static uint8_t f[65536 + 128];
    if (!msg->refs || ext_off + ext_len > msg->len || hlen + ext_len > sizeof f || ext_len == 0)
        abort(); /* the splice handed out bytes it does not hold */
    memcpy(f, frame, hlen);
    memcpy(f + hlen, msg->data + ext_off, ext_len);
    int r = ts_emit(ud, to_side, f, hlen + ext_len, flags);
    if (r)
        return r;
    if (n->n_held == n->cap_held) {
        n->cap_held = n->cap_held ? 2 * n->cap_held : 64;
        n->held = realloc(n->held, n->cap_held * sizeof *n->held);
        if (!n->held)
            abort();
    }
    n->held[n->n_held++] = mqo_msg_ref(msg);
    n->shared_frames++;
    return 0;
}

uint64_t ts_net_run(struct ts_net *n, uint64_t max_ns)
{
    release_held(n);
    uint64_t start = n->now, end = n->now + max_ns;
    for (int guard = 0; guard < 1000000; guard++) {
        /* earliest event */
        uint64_t t = UINT64_MAX;
        size_t qi = SIZE_MAX;
        for (size_t i = 0; i < n->n; i++)
            if (n->q[i].at < t || (n->q[i].at == t && qi != SIZE_MAX && n->q[i].seq < n->q[qi].seq)) {
                t = n->q[i].at;
                qi = i;
            }
        for (size_t i = 0; i < n->n_eps; i++) {
            struct ts_ep *e = n->eps[i];
            if (e->rtx_at && e->rtx_at < t) {
                t = e->rtx_at;
                qi = SIZE_MAX;
            }
            if (e->ack_at && e->ack_at < t) {
                t = e->ack_at;
                qi = SIZE_MAX;
            }
        }
        uint64_t st = mqo_splice_next_timer(n->splice, n->now);
        if (st != UINT64_MAX && n->now + st < t) {
            t = n->now + st;
            qi = SIZE_MAX;
        }
        /* refused frames wait in the splice: it is called again when the path has room */
        if (n->tx_cap && mqo_splice_pending(n->splice)) {
            uint64_t r = n->tx_refill_at > n->now ? n->tx_refill_at : n->now;
            if (r < t) {
                t = r;
                qi = SIZE_MAX;
            }
        }
        if (t == UINT64_MAX || t > end)
            break;
        if (t > n->now)
            n->now = t;
        if (getenv("TCPSIM_STORM") && guard % 20000 == 19999)
            fprintf(stderr, "tcpsim: %d events, now %llu, queue %zu, next %s\n", guard + 1,
                    (unsigned long long)n->now, n->n, qi != SIZE_MAX ? (n->q[qi].to_splice ? "to splice" : "to endpoint") : "timer");
        if (qi != SIZE_MAX) {
            struct ts_frame fr = n->q[qi];
            n->q[qi] = n->q[--n->n];
            if (getenv("TCPSIM_TRACE")) {
                const uint8_t *tp = fr.data + 34;
                uint16_t cp = fr.ep->side == MQO_SIDE_CLIENT ? fr.ep->port : fr.ep->peer_port;
                if (cp == (uint16_t)atoi(getenv("TCPSIM_TRACE")))
                    fprintf(stderr, "%llu %s ep%d flags %02x seq %u ack %u win %u len %zu\n",
                            (unsigned long long)(n->now / 1000), fr.to_splice ? "->splice" : "->ep",
                            fr.ep->side, tp[13], rd32(tp + 4), rd32(tp + 8), rd16(tp + 14),
                            fr.len - 34 - (size_t)(tp[12] >> 4) * 4);
            }
            if (fr.to_splice) {
                if (!mqo_splice_input(n->splice, fr.ep->side, fr.data, fr.len, 0, n->now)) {
                    /* not the splice's: it would forward the frame unchanged */
                    ts_emit(n, fr.ep->side ^ 1, fr.data, fr.len, 0);
                }
                if (n->on_input)
                    n->on_input(n->on_input_arg, fr.ep);
                if (n->defer_acks) {
                    int more = 0;
                    for (size_t i = 0; i < n->n && !more; i++)
                        more = n->q[i].to_splice && n->q[i].at <= n->now;
                    if (!more)
                        mqo_splice_flush(n->splice); /* the burst is over */
                }
            } else {
                ep_receive(n, fr.ep, fr.data, fr.len);
            }
            free(fr.data);
        } else {
            mqo_splice_tick(n->splice, n->now);
            for (size_t i = 0; i < n->n_eps; i++)
                ep_timers(n, n->eps[i]);
        }
    }
    mqo_splice_tick(n->splice, n->now);
    return n->now - start;
}

void ts_net_advance(struct ts_net *n, uint64_t ns)
{
    uint64_t end = n->now + ns;
    ts_net_run(n, ns);
    if (n->now < end)
        n->now = end;
    mqo_splice_tick(n->splice, n->now);
}

int ts_net_busy(const struct ts_net *n)
{
    if (n->n)
        return 1;
    for (size_t i = 0; i < n->n_eps; i++)
        if (n->eps[i]->rtx_at || n->eps[i]->ack_at)
            return 1;
    return mqo_splice_next_timer(n->splice, n->now) != UINT64_MAX ||
           mqo_splice_pending(n->splice);
}
