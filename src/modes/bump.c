/* The two-port forwarding loop; see bump.h.
 *
 * Per frame: the l2 decision (drop or the other port); the hook (monitor mode's splice) may
 * take it; a partial checksum left by the sender's offload is completed (the next hop is a
 * wire, not the sender's device); the impairment stage of the output direction, if any; then
 * the frame joins the output port's send queue.
 *
 * Back-pressure. A port takes what it can (pktio.h, tx_burst); the rest of a queue waits, in
 * order, for POLLOUT (or, when the device's queue was full, a millisecond). The hook's own
 * frames (monitor mode's segments, which the splice keeps until acknowledged anyway) are never
 * dropped here: mqo_bump_send refuses them (MQO_BUMP_OWN, -EAGAIN) when the queue is past its
 * share or the port's share of this loop iteration is used, and the hook sends them again when
 * the loop calls its tick, as soon as the port can take them (hook.pending). The last
 * FWD_RESERVE slots of a queue are for forwarded frames, which cannot wait anywhere else:
 * beyond the queue's size they are dropped and counted (q_drops), as a switch does. The share
 * per iteration (OWN_SHARE) bounds what one fan-out sends before the loop reads the receive
 * rings again: the acknowledgements of a fan-out to thousands of subscribers arrive while it
 * is being sent, and a ring that is not read meanwhile overflows (rx_dropped).
 *
 * Frames that an impairment stage may hold (delay, jitter, reorder) are detached from the
 * receive ring first, so holding them never stalls reception (pktio.h, mqo_frame_detach).
 *
 * An impairment stage with frag=SIZE splits IPv4 datagrams longer than that before the stage
 * (l2/frag.h): each fragment is a frame of its own, lost, duplicated or delayed on its own.
 *
 * Ports without a descriptor (DPDK: MQO_PORT_CAP_POLL) are polled: after an iteration that
 * received nothing the loop sleeps POLL_MIN_NS, doubling up to POLL_MAX_NS while the ports stay
 * idle, and back to the minimum at the next frame; --busy-poll keeps it from sleeping at all
 * for a while after a frame. The maximum bounds the wake-up latency an idle port adds (plus
 * the timer's slack); the doubling keeps an idle loop under a few thousand wake-ups a second.
 * Measured with the null forwarder (docs/BENCHMARKS.md, floor).
 *
 * A partial checksum (MQO_FRAME_CSUM_PARTIAL) is completed in software, unless the output
 * port's device completes it (MQO_PORT_CAP_TX_CSUM): then the frame leaves flagged.
 *
 * Super-segments (MQO_FRAME_TSO: the hook's TSO frames, or a GRO'd frame a port received) go
 * out whole toward a port that segments them; toward an impairment stage or a fragmenting
 * direction, or a port without segmentation offload, they are cut in software first (l2/gso.h)
 * into wire segments with complete checksums, each lost, reordered or fragmented on its own,
 * as the device would have sent them. The hook may send TSO frames toward such a direction
 * when the port keeps a frame in one buffer (MQO_PORT_CAP_LARGE).
 */
#include "modes/bump.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "l2/frag.h"
#include "l2/gso.h"
#include "l2/parse.h"

#define BURST 64
#define RX_ROUNDS 64      /* bursts read per port per loop iteration, at most */
#define QCAP 4096         /* frames waiting for one output port */
#define FWD_RESERVE 1024  /* the last slots of a queue: forwarded frames only */
#define OWN_SHARE 512     /* the hook's own frames per port per loop iteration */
#define FLUSH_AT 256      /* a queue this long is handed to its port at once */
#define RETRY_NS 1000000ull /* a port that returned early is offered its queue again after */
#define POLL_MIN_NS 16000ull  /* polled ports: sleep after an idle iteration, doubling ... */
#define POLL_MAX_NS 256000ull /* ... up to this */

struct txq {
    struct mqo_rawframe *f[QCAP];
    unsigned head, n;
    unsigned kept; /* frames at the head already detached from a receive ring */
    int stuck;     /* the port took none of it last time: retry after RETRY_NS, not on
                    * POLLOUT (a full device queue leaves the socket writable: it would spin) */
};

struct outdir {
    struct mqo_impair *im;
    int hold;      /* the stage may keep frames: detach them */
    uint32_t frag; /* split IPv4 datagrams with more payload than this (0: never) */
};

struct mqo_bump {
    const struct mqo_bump_cfg *cfg;
    struct mqo_bump_stats *st;
    struct mqo_port *port[2];
    struct mqo_l2 *l2;
    struct outdir dir[2]; /* by output port */
    struct txq q[2];
    unsigned share[2];    /* own frames the port may still take this iteration */
    unsigned caps[2];     /* the ports' MQO_PORT_CAP_* */
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Sends what the queue holds, in order, as far as the port takes it. Frames left waiting are
 * detached from the receive ring they point into (a forwarded frame held there would stop the
 * ring when it wraps around to it). */
static void txq_flush(struct mqo_port *p, struct txq *q)
{
    q->stuck = 0;
    while (q->n) {
        unsigned run = QCAP - q->head < q->n ? QCAP - q->head : q->n;
        int r = mqo_port_tx_burst(p, &q->f[q->head], (int)run);
        if (r <= 0) {
            q->stuck = 1;
            break;
        }
        q->head = (q->head + (unsigned)r) % QCAP;
        q->n -= (unsigned)r;
        q->kept = q->kept > (unsigned)r ? q->kept - (unsigned)r : 0;
        if ((unsigned)r < run)
            break;
    }
    /* a frame that cannot be copied out stays in the ring: it goes out when the port drains */
    for (; q->kept < q->n; q->kept++)
        if (mqo_frame_detach(q->f[(q->head + q->kept) % QCAP]))
            break;
}

static int txq_put(struct txq *q, struct mqo_rawframe *f)
{
    if (q->n == QCAP)
        return -1;
    q->f[(q->head + q->n++) % QCAP] = f;
    return 0;
}

/* A frame leaves toward port `out`: through its impairment stage, into its send queue. The
 * frame's ownership moves here. */
static void output_one(struct mqo_bump *b, int out, struct mqo_rawframe *f, uint64_t now)
{
    struct outdir *d = &b->dir[out];
    if (!d->im) {
        if (b->q[out].n == QCAP)
            txq_flush(b->port[out], &b->q[out]);
        if (txq_put(&b->q[out], f)) {
            b->st->q_drops++;
            mqo_frame_free(f);
        }
        return;
    }
    int fate = mqo_impair_fate(d->im);
    if (fate == 0) {
        mqo_frame_free(f);
        return;
    }
    struct mqo_rawframe *copy[2] = {f, NULL};
    if (fate == 2) {
        copy[1] = mqo_frame_alloc(b->port[out]);
        if (copy[1] && copy[1]->cap < f->len) {
            mqo_frame_free(copy[1]);
            copy[1] = NULL;
        }
        if (copy[1]) {
            memcpy(copy[1]->data, f->data, f->len);
            copy[1]->len = f->len;
            copy[1]->flags = f->flags;
            copy[1]->ts_ns = f->ts_ns;
            copy[1]->port = f->port;
        } else {
            b->st->alloc_fail++;
        }
    }
    for (int j = 0; j < 2 && copy[j]; j++) {
        if ((d->hold && mqo_frame_detach(copy[j])) || mqo_impair_enqueue(d->im, copy[j], now)) {
            b->st->impair_nomem++;
            mqo_frame_free(copy[j]);
        }
    }
}

/* frag=SIZE: a datagram longer than SIZE leaves as fragments, each a new frame. Returns 1
 * when it took the frame, 0 when the frame leaves as it is (no split needed, or malformed). */
static int split_out(struct mqo_bump *b, int out, struct mqo_rawframe *f, uint64_t now)
{
    /* a partial checksum covers the whole datagram: complete it before cutting */
    if ((f->flags & MQO_FRAME_CSUM_PARTIAL) && mqo_cksum_complete4(f->data, f->len) > 0)
        f->flags &= (uint16_t)~MQO_FRAME_CSUM_PARTIAL;
    struct mqo_frag_split sp;
    int n = mqo_frag_split_init(&sp, f->data, f->len, b->dir[out].frag);
    if (n <= 0)
        return 0;
    b->st->frag_split[out]++;
    for (int k = 0; k < n; k++) {
        struct mqo_rawframe *g = mqo_frame_alloc(b->port[out]);
        if (!g) {
            b->st->alloc_fail++; /* the rest of the datagram is lost */
            break;
        }
        g->len = (uint32_t)mqo_frag_split_next(&sp, g->data, g->cap);
        if (!g->len) {
            mqo_frame_free(g);
            break;
        }
        g->flags = f->flags;
        g->ts_ns = f->ts_ns;
        g->port = f->port;
        b->st->frag_out[out]++;
        output_one(b, out, g, now);
    }
    mqo_frame_free(f);
    return 1;
}

static void output_seg(struct mqo_bump *b, int out, struct mqo_rawframe *f, uint64_t now)
{
    if (b->dir[out].frag && split_out(b, out, f, now))
        return;
    output_one(b, out, f, now);
}

/* A super-segment toward an output that takes wire segments only: cut here. Returns 1 when it
 * took the frame. */
static int tso_out(struct mqo_bump *b, int out, struct mqo_rawframe *f, uint64_t now)
{
    struct mqo_tso_split sp;
    int n = (f->flags & (MQO_FRAME_EXT | MQO_FRAME_CHAIN))
                ? -1
                : mqo_tso_split_init(&sp, f->data, f->len, f->seg_size);
    if (n < 0) {
        /* not all in one buffer (cannot happen: such frames go only where the device cuts
         * them) or not TCP/IPv4: not sendable as it is */
        b->st->csum_bad++;
        mqo_frame_free(f);
        return 1;
    }
    b->st->tso_split++;
    for (int k = 0; k < n; k++) {
        struct mqo_rawframe *g = mqo_frame_alloc(b->port[out]);
        if (!g) {
            b->st->alloc_fail++; /* the rest is lost: the sender retransmits */
            break;
        }
        g->len = mqo_tso_split_next(&sp, g->data, g->cap);
        if (!g->len) {
            mqo_frame_free(g);
            break;
        }
        g->flags = 0;
        g->ts_ns = f->ts_ns;
        g->port = f->port;
        output_seg(b, out, g, now);
    }
    mqo_frame_free(f);
    return 1;
}

static void output(struct mqo_bump *b, int out, struct mqo_rawframe *f, uint64_t now)
{
    if ((f->flags & MQO_FRAME_TSO) &&
        (b->dir[out].im || b->dir[out].frag || !(b->caps[out] & MQO_PORT_CAP_TSO)) &&
        tso_out(b, out, f, now))
        return;
    output_seg(b, out, f, now);
}

/* Frames waiting toward port `out` in the bump: its queue and its impairment stage. */
static unsigned held_toward(const struct mqo_bump *b, int out)
{
    return b->q[out].n + (b->dir[out].im ? mqo_impair_held(b->dir[out].im) : 0);
}

/* 1 when port `out` takes one more of the hook's own frames now. */
static int own_room(struct mqo_bump *b, int out)
{
    if (!b->share[out])
        return 0;
    if (held_toward(b, out) >= QCAP - FWD_RESERVE) {
        txq_flush(b->port[out], &b->q[out]);
        if (held_toward(b, out) >= QCAP - FWD_RESERVE)
            return 0;
    }
    return 1;
}

/* mqo_bump_send and mqo_bump_send_ext: len bytes of data, then ext's block (or none). */
static int send_frame(struct mqo_bump *b, int out, const uint8_t *data, size_t len,
                      const struct mqo_frame_ext *ext, unsigned flags)
{
    int own = (flags & MQO_BUMP_OWN) != 0;
    if (own && !own_room(b, out)) {
        b->st->own_deferred++;
        return -EAGAIN;
    }
    /* an impairment stage reads and cuts the frame's bytes: they must all be in it */
    int whole = ext && (b->dir[out].im || b->dir[out].frag);
    size_t need = len + (whole ? ext->len : 0);
    struct mqo_rawframe *f =
        mqo_frame_alloc_len(b->port[out], need > UINT32_MAX ? UINT32_MAX : (uint32_t)need);
    uint16_t seg = (uint16_t)(flags >> 16);
    /* offloads only toward a port that does them (a caller's mistake otherwise: refused) */
    if (!f || (need > f->cap && !seg) || (seg && !mqo_bump_tso_max(b, out)) ||
        ((flags & MQO_BUMP_CSUM) && !seg && !mqo_bump_csum_offload(b, out)))
        goto refused;
    /* a TSO frame goes on past the frame's own buffer, in buffers chained to it */
    size_t head = len > f->cap ? f->cap : len;
    memcpy(f->data, data, head);
    f->len = (uint32_t)head;
    f->flags = seg ? MQO_FRAME_TSO : 0;
    f->seg_size = seg;
    if (flags & MQO_BUMP_CSUM)
        f->flags |= MQO_FRAME_CSUM_PARTIAL;
    if (head < len && mqo_frame_append(f, data + head, (uint32_t)(len - head)))
        goto refused;
    if (whole) {
        /* a TSO frame may need to go past the frame's buffer (MQO_PORT_CAP_LARGE) */
        if (mqo_frame_append(f, ext->p, ext->len))
            goto refused;
        if (ext->put)
            ext->put(ext->arg);
    } else if (ext && mqo_frame_attach(f, ext)) {
        goto refused;
    }
    f->port = (uint16_t)(1 - out);
    if (own)
        b->share[out]--;
    output(b, out, f, b->dir[out].im ? now_ns() : 0); /* only an impairment stage needs the time */
    /* a fan-out leaves in bursts while it is being built, not all at the end */
    if (b->q[out].n >= FLUSH_AT)
        txq_flush(b->port[out], &b->q[out]);
    return 0;
refused:
    if (f)
        mqo_frame_free(f);
    if (own) { /* it waits in the hook like any refused frame */
        b->st->own_deferred++;
        return -EAGAIN;
    }
    b->st->alloc_fail++;
    return -ENOBUFS;
}

int mqo_bump_csum_offload(const struct mqo_bump *b, int out)
{
    return (b->caps[out] & MQO_PORT_CAP_TX_CSUM) && !b->dir[out].im && !b->dir[out].frag;
}

uint32_t mqo_bump_tso_max(const struct mqo_bump *b, int out)
{
    /* toward an impairment stage or fragmentation the bump cuts TSO frames itself, which needs
     * them in one buffer */
    if (!(b->caps[out] & MQO_PORT_CAP_TSO) ||
        ((b->dir[out].im || b->dir[out].frag) && !(b->caps[out] & MQO_PORT_CAP_LARGE)))
        return 0;
    return mqo_port_info(b->port[out])->tso_max;
}

int mqo_bump_send(struct mqo_bump *b, int out, const uint8_t *data, size_t len, unsigned flags)
{
    return send_frame(b, out, data, len, NULL, flags);
}

int mqo_bump_send_ext(struct mqo_bump *b, int out, const uint8_t *data, size_t hlen,
                      const struct mqo_frame_ext *ext, unsigned flags)
{
    return send_frame(b, out, data, hlen, ext, flags);
}

/* Returns how many frames it received. */
static int rx_port(struct mqo_bump *b, int i, uint64_t now)
{
    int got = 0;
    const struct mqo_bump_cfg *cfg = b->cfg;
    int out = 1 - i;
    struct mqo_rawframe *v[BURST];
    /* a bounded number of bursts per port per round, so one busy side cannot starve the other;
     * enough that reading keeps ahead of what a round sends (OWN_SHARE) */
    for (int round = 0; round < RX_ROUNDS; round++) {
        int n = mqo_port_rx_burst(b->port[i], v, BURST);
        if (n <= 0)
            break;
        got += n;
        for (int k = 0; k < n; k++) {
            struct mqo_rawframe *f = v[k];
            uint32_t mask = mqo_l2_decide(b->l2, (unsigned)i, f->data, f->len, now);
            if (!(mask & (1u << out))) {
                mqo_frame_free(f);
                continue;
            }
            if (cfg->hook.frame && cfg->hook.frame(cfg->hook.arg, b, i, f, now)) {
                b->st->hooked++;
                mqo_frame_free(f);
                continue;
            }
            if (cfg->fix_csum && (f->flags & MQO_FRAME_CSUM_PARTIAL) &&
                !(f->flags & MQO_FRAME_TSO) && !(b->caps[out] & MQO_PORT_CAP_TX_CSUM)) {
                int r = mqo_cksum_complete4(f->data, f->len);
                if (r > 0) {
                    b->st->csum_fixed++;
                    f->flags &= (uint16_t)~MQO_FRAME_CSUM_PARTIAL;
                } else if (r < 0) {
                    b->st->csum_bad++;
                }
            }
            output(b, out, f, now);
        }
        if (cfg->hook.burst_end)
            cfg->hook.burst_end(cfg->hook.arg, b, now);
        if (n < BURST)
            break;
    }
    return got;
}

static void drain(struct mqo_bump *b)
{
    void *due[BURST];
    for (int d = 0; d < 2; d++) {
        if (!b->dir[d].im)
            continue;
        int n;
        while ((n = mqo_impair_drain(b->dir[d].im, due, BURST)) > 0)
            for (int k = 0; k < n; k++)
                mqo_frame_free(due[k]);
    }
    for (int i = 0; i < 2; i++)
        while (b->q[i].n) {
            mqo_frame_free(b->q[i].f[b->q[i].head]);
            b->q[i].head = (b->q[i].head + 1) % QCAP;
            b->q[i].n--;
        }
}

/* Moves the frames of the impairment stage toward port d that are due into its queue, as far
 * as the queue has room (the rest stay in the stage, due, until it drains). */
static void impair_out(struct mqo_bump *b, int d, uint64_t now)
{
    void *due[BURST];
    struct txq *q = &b->q[d];
    while (q->n < QCAP) {
        int room = (int)(QCAP - q->n) < BURST ? (int)(QCAP - q->n) : BURST;
        int n = mqo_impair_dequeue(b->dir[d].im, now, due, room);
        for (int k = 0; k < n; k++)
            txq_put(q, due[k]);
        if (q->n >= FLUSH_AT)
            txq_flush(b->port[d], q);
        if (n < room)
            break;
    }
}

int mqo_bump_run(const struct mqo_bump_cfg *cfg, struct mqo_bump_stats *st)
{
    const char *name = cfg->name ? cfg->name : "mqoff";
    struct mqo_bump *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    memset(st, 0, sizeof *st);
    b->cfg = cfg;
    b->st = st;
    int rc = 0;
    for (int d = 0; d < 2; d++) {
        const struct mqo_impair_cfg *ic = cfg->impair_out[d];
        if (!ic || !mqo_impair_active(ic))
            continue;
        b->dir[d].im = mqo_impair_new(ic, (uint64_t)d);
        if (!b->dir[d].im) {
            rc = -ENOMEM;
            goto out;
        }
        b->dir[d].hold = ic->delay_ns || ic->jitter_ns || ic->reorder > 0;
        b->dir[d].frag = ic->frag;
        st->impair_on[d] = 1;
    }
    struct mqo_l2_cfg lc = {.mode = cfg->l2_mode, .nports = 2, .flags = cfg->l2_flags,
                            .aging_ns = cfg->aging_ns};
    b->l2 = mqo_l2_new(&lc);
    if (!b->l2) {
        rc = -ENOMEM;
        goto out;
    }
    if (cfg->static_text) {
        char err[200];
        if (mqo_l2_static_parse(b->l2, cfg->static_text, cfg->static_len, err, sizeof err)) {
            fprintf(stderr, "%s: static table: %s\n", name, err);
            rc = -EINVAL;
            goto out;
        }
    }
    for (int i = 0; i < 2; i++) {
        struct mqo_port_cfg pc = {.ifname = cfg->ifname[i], .backend = cfg->io, .eal = cfg->eal,
                                  .index = (uint16_t)i, .ring_frames = cfg->ring,
                                  .promisc = cfg->promisc, .flags = cfg->port_flags};
        char err[600];
        rc = mqo_port_open(&pc, &b->port[i], err, sizeof err);
        if (rc) {
            if (rc == -EPERM && cfg->io == MQO_PKTIO_AFPACKET)
                fprintf(stderr, "%s: %s (raw sockets need root or CAP_NET_RAW)\n", name, err);
            else
                fprintf(stderr, "%s: %s\n", name, err);
            goto out;
        }
        st->port_info[i] = *mqo_port_info(b->port[i]);
        b->caps[i] = st->port_info[i].caps;
    }
    if (cfg->steer_ip && cfg->l2_mode != MQO_L2_STATIC)
        for (int i = 0; i < 2; i++) {
            char msg[300];
            /* port a (clients) sends toward the address, port b (its host) from it */
            struct mqo_port_steer ps = {.ip = cfg->steer_ip, .port = cfg->steer_port,
                                        .match_dst = i == 0, .peer = b->port[1 - i]};
            if (mqo_port_steer(b->port[i], &ps, msg, sizeof msg) == 0)
                st->steered[i] = 1;
            else if (cfg->io != MQO_PKTIO_AFPACKET)
                fprintf(stderr, "%s: %s: every frame goes through the loop\n", name, msg);
            st->port_info[i] = *mqo_port_info(b->port[i]); /* steering may change the port */
        }

    if (cfg->ready)
        cfg->ready(cfg->ready_arg);

    /* The stop signals (and SIGHUP, whose handler sets a flag the hook reads in tick) are
     * blocked except inside ppoll, so one arriving between the check of `stop` and the wait
     * cannot be missed. */
    sigset_t stopsigs, waitmask;
    sigemptyset(&stopsigs);
    sigaddset(&stopsigs, SIGINT);
    sigaddset(&stopsigs, SIGTERM);
    sigaddset(&stopsigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &stopsigs, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGHUP);

    uint64_t busy_ns = (uint64_t)cfg->busy_poll_us * 1000u, last_rx = 0;
    int polled = ((b->caps[0] | b->caps[1]) & MQO_PORT_CAP_POLL) != 0;
    uint64_t idle_ns = POLL_MIN_NS;
    while (!*cfg->stop) {
        uint64_t now = now_ns();
        uint64_t wait = 100000000ull; /* ns: wake up now and then even when idle */
        if (polled)
            wait = idle_ns; /* no descriptor says when frames arrive: look again soon */
        if (busy_ns && now - last_rx < busy_ns)
            wait = 0; /* busy polling: look again without sleeping */
        /* a port whose queue is still waiting is blocked: POLLOUT, or a retry soon (a full
         * device queue has no notification); what waits for it does not spin meanwhile */
        unsigned blocked = (b->q[0].n ? 1u : 0u) | (b->q[1].n ? 2u : 0u);
        if (blocked && wait > RETRY_NS)
            wait = RETRY_NS;
        for (int d = 0; d < 2; d++) {
            if (!b->dir[d].im || (blocked & (1u << d)))
                continue;
            uint64_t t = mqo_impair_next(b->dir[d].im);
            if (t != UINT64_MAX && (t <= now ? 0 : t - now) < wait)
                wait = t <= now ? 0 : t - now;
        }
        if (cfg->hook.next) {
            uint64_t t = cfg->hook.next(cfg->hook.arg, now);
            if (t < wait)
                wait = t;
        }
        if (cfg->hook.pending && (cfg->hook.pending(cfg->hook.arg) & ~blocked & 3u))
            wait = 0; /* the hook has frames for a port that can take them */
        struct pollfd pfd[4];
        for (int i = 0; i < 2; i++) {
            pfd[i].fd = mqo_port_fd(b->port[i]);
            pfd[i].events = POLLIN | (b->q[i].n && !b->q[i].stuck ? POLLOUT : 0);
            pfd[i].revents = 0;
        }
        pfd[2] = (struct pollfd){.fd = cfg->hook.fd_ready ? cfg->hook.fd : -1, .events = POLLIN};
        pfd[3] = (struct pollfd){.fd = cfg->hook.fd2_ready ? cfg->hook.fd2 : -1, .events = POLLIN};
        /* ppoll: nanosecond timeout, so an impairment delay is kept to the timer's precision */
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull),
                              .tv_nsec = (long)(wait % 1000000000ull)};
        int pr = ppoll(pfd, 4, &ts, &waitmask);
        if (pr < 0 && errno != EINTR) {
            fprintf(stderr, "%s: ppoll: %s\n", name, strerror(errno));
            break;
        }
        now = now_ns();
        st->iterations++;
        b->share[0] = b->share[1] = OWN_SHARE;
        /* what these say (a file changed, the broker's view) applies to the frames that
         * arrived with it */
        if (pr > 0 && (pfd[2].revents & POLLIN))
            cfg->hook.fd_ready(cfg->hook.arg, now);
        if (pr > 0 && (pfd[3].revents & POLLIN))
            cfg->hook.fd2_ready(cfg->hook.arg, now);
        int got = 0;
        for (int i = 0; i < 2; i++)
            got += rx_port(b, i, now);
        if (got) {
            last_rx = now;
            idle_ns = POLL_MIN_NS;
        } else if (idle_ns < POLL_MAX_NS) {
            idle_ns *= 2;
        }
        if (cfg->hook.tick)
            cfg->hook.tick(cfg->hook.arg, b, now);
        for (int d = 0; d < 2; d++)
            if (b->dir[d].im)
                impair_out(b, d, now);
        for (int i = 0; i < 2; i++)
            txq_flush(b->port[i], &b->q[i]);
    }
    sigprocmask(SIG_SETMASK, &waitmask, NULL);
    /* Shutdown: what is queued is dropped, every frame goes back before the ports close. */
    drain(b);
    for (int i = 0; i < 2; i++)
        mqo_port_stats(b->port[i], &st->port[i]);
    mqo_l2_get_stats(b->l2, &st->l2);
    for (int d = 0; d < 2; d++)
        if (b->dir[d].im)
            mqo_impair_get_stats(b->dir[d].im, &st->impair[d]);
out:
    for (int d = 0; d < 2; d++)
        mqo_impair_free(b->dir[d].im);
    for (int i = 0; i < 2; i++)
        mqo_port_close(b->port[i]);
    mqo_l2_free(b->l2);
    free(b);
    return rc;
}

void mqo_bump_print_stats(const struct mqo_bump_cfg *cfg, const struct mqo_bump_stats *st,
                          void *fp)
{
    FILE *f = fp;
    const char *nm[2] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        const struct mqo_port_stats *s = &st->port[i];
        fprintf(f,
                "port %s %s: rx %llu frames %llu bytes, tx %llu frames %llu bytes, rx_dropped "
                "%llu, tx_errors %llu, tx_full %llu, tx_nobufs %llu, rx_stalls %llu, detached "
                "%llu, rx_nobufs %llu, shared payload frames %llu, checksums offloaded %llu, "
                "TSO frames %llu\n",
                nm[i], cfg->ifname[i], (unsigned long long)s->rx_frames,
                (unsigned long long)s->rx_bytes, (unsigned long long)s->tx_frames,
                (unsigned long long)s->tx_bytes, (unsigned long long)s->rx_dropped,
                (unsigned long long)s->tx_errors, (unsigned long long)s->tx_full,
                (unsigned long long)s->tx_nobufs, (unsigned long long)s->rx_stalls,
                (unsigned long long)s->detached, (unsigned long long)s->rx_nobufs,
                (unsigned long long)s->ext_frames, (unsigned long long)s->csum_offloaded,
                (unsigned long long)s->tso_frames);
        if (st->port_info[i].backend)
            fprintf(f, "port %s %s: %s, %s%s\n", nm[i], st->port_info[i].name,
                    st->port_info[i].backend, st->port_info[i].detail,
                    st->steered[i] ? ", steered in the device" : "");
    }
    const struct mqo_l2_stats *ls = &st->l2;
    fprintf(f,
            "l2: frames %llu, unicast %llu, flooded %llu, filtered %llu, dropped unknown %llu,"
            " runt %llu, learned %llu, moved %llu, table_full %llu\n",
            (unsigned long long)ls->frames, (unsigned long long)ls->unicast,
            (unsigned long long)ls->flooded, (unsigned long long)ls->filtered,
            (unsigned long long)ls->dropped_unknown, (unsigned long long)ls->dropped_runt,
            (unsigned long long)ls->learned, (unsigned long long)ls->moved,
            (unsigned long long)ls->table_full);
    for (int d = 0; d < 2; d++) {
        if (!st->impair_on[d])
            continue;
        const struct mqo_impair_stats *is = &st->impair[d];
        fprintf(f,
                "impair %s: in %llu, lost %llu, duplicated %llu, reordered %llu, delayed %llu,"
                " out %llu, overflow %llu",
                d ? "a2b" : "b2a", (unsigned long long)is->in, (unsigned long long)is->lost,
                (unsigned long long)is->duped, (unsigned long long)is->reordered,
                (unsigned long long)is->delayed, (unsigned long long)is->out,
                (unsigned long long)is->overflow);
        if (cfg->impair_out[d] && cfg->impair_out[d]->frag)
            fprintf(f, ", datagrams fragmented %llu into %llu fragments",
                    (unsigned long long)st->frag_split[d], (unsigned long long)st->frag_out[d]);
        fputc('\n', f);
    }
    fprintf(f,
            "loop: checksums completed %llu, malformed %llu, queue drops %llu, alloc failures "
            "%llu, impair no memory %llu, frames taken by the hook %llu, own frames deferred "
            "%llu, super-segments cut %llu, iterations %llu\n",
            (unsigned long long)st->csum_fixed, (unsigned long long)st->csum_bad,
            (unsigned long long)st->q_drops, (unsigned long long)st->alloc_fail,
            (unsigned long long)st->impair_nomem, (unsigned long long)st->hooked,
            (unsigned long long)st->own_deferred, (unsigned long long)st->tso_split,
            (unsigned long long)st->iterations);
    fflush(f);
}
