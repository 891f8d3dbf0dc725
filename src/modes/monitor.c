/* monitor mode: the bump loop with the TCP splice as its frame hook.
 *
 * IPv4 fragments. The splice relays the stream of a connection it edits, renumbered: the
 * original fragments of one of its segments would corrupt the receiver's stream, so such a
 * segment must reach the splice whole. Fragments of TCP toward the broker's address (from port
 * a) or from it (port b) go to the reassembler (l2/frag.h), which keeps a copy of each until the
 * fragment holding the TCP header (offset 0) shows the connection:
 *   - one the splice tracks, or a client SYN to the broker's port (it opens one): the datagram
 *     is reassembled and the whole segment, possibly longer than the link MTU, goes to the
 *     splice like any other (the splice reassembles its input stream and segments its output
 *     to the receiver's MSS itself);
 *   - anything else (another port, a connection the splice does not edit): the fragments go
 *     on untouched, those held in their arrival order, later ones at once;
 *   - a datagram whose header fragment does not arrive within the timeout (30 s) is dropped
 *     with its fragments, as the receiving host would drop it.
 * Every other fragment (other addresses, other protocols) is forwarded untouched.
 */
#include "modes/monitor.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "net/takeover.h"
#include "l2/parse.h"

struct monitor {
    struct mqo_splice *sp;
    struct mqo_bump *b;   /* valid while the loop runs */
    struct mqo_frag *fr;  /* NULL: fragments are forwarded untouched */
    uint32_t broker_ip;   /* network order */
    uint16_t broker_port; /* host order */
    uint64_t to_splice, declined;
    struct mqo_reload *reload; /* NULL: none */
    volatile int *hup;
    struct mqo_ctl *ctl;       /* NULL: none */
    struct mqo_bump_stats *bst;
    uint64_t last_ctl;
    int tko_fd;          /* takeover listener, -1: none */
    uint64_t last_tko;   /* when it was last looked at */
    volatile int *stop;
    uint8_t handed;      /* handed over: stop, leaving the connections to the new process */
    struct mqo_ctab *ctab;        /* NULL: none */
    struct mqo_ctab_reset *reset; /* a dead predecessor's connections being reset */
    volatile int *upgrade;
    uint64_t reset_started;
};

/* The splice established (up) or forgot a connection: the shared table follows. */
static struct mqo_ctab_ent *on_track(void *ud, const struct mqo_ctab_ent *e, int up)
{
    struct monitor *m = ud;
    if (!m->ctab)
        return NULL;
    if (!up) {
        mqo_ctab_del(m->ctab, e->cip, e->cport);
        return NULL;
    }
    if (mqo_ctab_put(m->ctab, e)) {
        mqo_warn("connection table full: a crash would leave a connection unreset");
        return NULL;
    }
    return mqo_ctab_get(m->ctab, e->cip, e->cport);
}

static int reset_send(void *arg, int to_side, const uint8_t *frame, size_t len)
{
    struct monitor *m = arg;
    return m->b ? mqo_bump_send(m->b, to_side, frame, len, 0) : -ENOTCONN;
}

static void reset_tick(struct monitor *m, uint64_t now)
{
    if (!m->reset)
        return;
    if (!m->reset_started)
        m->reset_started = now;
    if (mqo_ctab_reset_tick(m->reset, now, reset_send, m))
        return;
    size_t done, gave_up;
    mqo_ctab_reset_counts(m->reset, &done, &gave_up);
    mqo_info("connections of the previous mqoff: %zu reset at both ends, %zu gave no sign "
             "(gone already) in %llu ms", done, gave_up,
             (unsigned long long)((now - m->reset_started) / 1000000ull));
    mqo_ctab_reset_free(m->reset);
    m->reset = NULL;
}

/* The splice emits toward a side; side == port (clients on a, the broker host on b). What the
 * splice keeps until acknowledged is the bump's "own" traffic: refused rather than dropped
 * when the port is busy. */
/* The bump's flags for a frame the splice emits. */
static unsigned bump_flags(unsigned flags)
{
    return ((flags & MQO_SPLICE_EMIT_KEPT) ? MQO_BUMP_OWN : 0) |
           ((flags & MQO_SPLICE_EMIT_CSUM) ? MQO_BUMP_CSUM : 0) |
           ((flags & MQO_SPLICE_EMIT_TSO) ? MQO_BUMP_TSO(MQO_SPLICE_EMIT_SEG(flags)) : 0);
}

static int emit(void *ud, int to_side, const uint8_t *frame, size_t len, unsigned flags)
{
    struct monitor *m = ud;
    if (!m->b)
        return -ENOTCONN;
    return mqo_bump_send(m->b, to_side, frame, len, bump_flags(flags));
}

static void msg_put(void *arg) { mqo_msg_unref(arg); }

/* A segment whose payload ends in a fan-out's shared serialization: the output port sends
 * those bytes from the message (a reference per frame) instead of a copy. */
static int emit_shared(void *ud, int to_side, const uint8_t *frame, size_t hlen,
                       struct mqo_msg *msg, size_t ext_off, size_t ext_len, unsigned flags)
{
    struct monitor *m = ud;
    if (!m->b)
        return -ENOTCONN;
    struct mqo_frame_ext ext = {.p = msg->data + ext_off, .len = (uint32_t)ext_len,
                                .put = msg_put, .arg = mqo_msg_ref(msg)};
    int r = mqo_bump_send_ext(m->b, to_side, frame, hlen, &ext, bump_flags(flags));
    if (r)
        mqo_msg_unref(msg);
    return r;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* 1 for an IPv4 fragment of TCP toward the broker's address (from the clients' side) or from it
 * (from the broker's side). */
static int broker_fragment(const struct monitor *m, int in, const uint8_t *p, size_t len)
{
    struct mqo_eth e;
    if (mqo_parse_eth(p, len, &e) || e.type != MQO_ETHERTYPE_IPV4 || len < e.l3_off + 20u)
        return 0;
    const uint8_t *ip = p + e.l3_off;
    if (ip[0] >> 4 != 4 || ip[9] != 6 || !(rd16(ip + 6) & (MQO_IPV4_MF | MQO_IPV4_OFFMASK)))
        return 0;
    uint32_t a;
    memcpy(&a, ip + (in == MQO_SIDE_CLIENT ? 16 : 12), 4);
    return a == m->broker_ip;
}

/* What to do with a datagram, from the first bytes of its TCP header. */
static enum mqo_frag_verdict verdict(const struct monitor *m, int in,
                                     const struct mqo_frag_info *fi, int whole)
{
    if (fi->head_len < 14) /* ports and flags not there yet */
        return whole ? MQO_FRAG_PASS : MQO_FRAG_UNDECIDED;
    uint16_t sport = rd16(fi->head), dport = rd16(fi->head + 2);
    if (in == MQO_SIDE_CLIENT) {
        if (dport != m->broker_port)
            return MQO_FRAG_PASS;
        if ((fi->head[13] & (MQO_TCP_SYN | MQO_TCP_ACK)) == MQO_TCP_SYN)
            return MQO_FRAG_REASSEMBLE; /* a client SYN: the splice opens its connection */
        return mqo_splice_tracks(m->sp, fi->key.saddr, sport) ? MQO_FRAG_REASSEMBLE
                                                              : MQO_FRAG_PASS;
    }
    if (sport != m->broker_port)
        return MQO_FRAG_PASS;
    return mqo_splice_tracks(m->sp, fi->key.daddr, dport) ? MQO_FRAG_REASSEMBLE : MQO_FRAG_PASS;
}

struct pass_to {
    struct monitor *m;
    int side;
};

/* A fragment passed untouched: out the other port (through its impairment stage). */
static void pass_out(void *ud, const uint8_t *frame, size_t len)
{
    const struct pass_to *p = ud;
    mqo_bump_send(p->m->b, p->side, frame, len, 0);
}

/* A fragment of the broker's TCP. Returns 1 when it was taken (held, passed from the copies, or
 * reassembled), 0 when the loop forwards it as it is. */
static int on_fragment(struct monitor *m, int in, const struct mqo_rawframe *f, uint64_t now)
{
    struct mqo_frag_info fi;
    int r = mqo_frag_add(m->fr, f->data, f->len, now, &fi);
    if (r == MQO_FRAG_PASSED)
        return 0;
    if (r < 0)
        return 1; /* dropped and counted, as the receiving host would */
    if (fi.verdict == MQO_FRAG_UNDECIDED) {
        enum mqo_frag_verdict v = verdict(m, in, &fi, r == MQO_FRAG_DONE);
        if (v == MQO_FRAG_UNDECIDED)
            return 1;
        struct pass_to to = {m, 1 - in};
        mqo_frag_decide(m->fr, &fi.key, v, pass_out, &to);
        if (v == MQO_FRAG_PASS)
            return 1; /* the copies went out in arrival order, this fragment's last */
    }
    if (r == MQO_FRAG_DONE) {
        if (mqo_splice_input(m->sp, in, fi.frame, fi.len, 0, now)) {
            m->to_splice++;
        } else {
            /* not the splice's after all (a SYN over its table limit): on as a whole, if it
             * fits a frame (the fragments are gone) */
            m->declined++;
            mqo_bump_send(m->b, 1 - in, fi.frame, fi.len, 0);
        }
    }
    return 1;
}

/* The bump the hook runs in; the first time, the splice learns what each port does itself
 * (TSO, TCP checksums; the bump's sides are the splice's). */
static void bind_bump(struct monitor *m, struct mqo_bump *b)
{
    if (m->b == b)
        return;
    m->b = b;
    for (int side = 0; side < 2; side++) {
        struct mqo_splice_offload o = {.tso_max = mqo_bump_tso_max(b, side),
                                       .csum = mqo_bump_csum_offload(b, side)};
        mqo_splice_set_offload(m->sp, side, &o);
    }
}

static int on_frame(void *arg, struct mqo_bump *b, int in, const struct mqo_rawframe *f,
                    uint64_t now)
{
    struct monitor *m = arg;
    bind_bump(m, b);
    if (m->reset && !m->reset_started)
        m->reset_started = now;
    if (m->reset && mqo_ctab_reset_frame(m->reset, in, f->data, f->len, reset_send, m))
        return 1; /* a dead predecessor's connection: reset, not forwarded */
    if (m->fr && broker_fragment(m, in, f->data, f->len))
        return on_fragment(m, in, f, now);
    if ((f->flags & (MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_TSO)) == MQO_FRAME_CSUM_PARTIAL) {
        /* A sender's stack left the checksum to its device (offloads on the endpoint's veth):
         * the splice edits some frames in place (a SYN's options) with incremental updates,
         * which need a complete sum. The frame is the bump's to change (the hook's const is
         * for the splice); completed, it is forwarded as it is if the splice leaves it. A
         * super-segment is never edited in place: the splice sends its bytes in segments of
         * its own. */
        struct mqo_rawframe *w = (struct mqo_rawframe *)f;
        if (mqo_cksum_complete4(w->data, w->len) > 0)
            w->flags &= (uint16_t)~MQO_FRAME_CSUM_PARTIAL;
    }
    int csum_ok = (f->flags & (MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_CSUM_VALID)) != 0;
    return mqo_splice_input(m->sp, in, f->data, f->len, csum_ok, now);
}

/* A burst of frames from one port went through on_frame: the ACKs it owes go now, behind
 * the deliveries it set off (mqo_splice_defer_acks). */
static void on_burst_end(void *arg, struct mqo_bump *b, uint64_t now)
{
    struct monitor *m = arg;
    (void)b;
    (void)now;
    mqo_splice_flush(m->sp);
}

/* The watched files changed. */
static void on_reload_fd(void *arg, uint64_t now)
{
    struct monitor *m = arg;
    mqo_reload_changed(m->reload, mqo_splice_engine(m->sp));
}

/* The control socket is readable. */
static void on_ctl_fd(void *arg, uint64_t now)
{
    struct monitor *m = arg;
    mqo_ctl_run(m->ctl, now);
    m->last_ctl = now;
}

/* The monitor's counters for the control socket and the metrics endpoint. */
static size_t ctl_counters(void *arg, struct mqo_ctl_counter *out, size_t cap)
{
    const struct monitor *m = arg;
    const struct mqo_splice_stats *s = mqo_splice_stats(m->sp);
    const struct mqo_bump_stats *b = m->bst;
    uint64_t held[2];
    mqo_splice_held(m->sp, held);
    const struct mqo_ctl_counter v[] = {
        {"mqoff_tcp_connections_total", NULL, "connections spliced", s->conns_total, 0},
        {"mqoff_tcp_connections", NULL, "connections spliced now", s->conns_tracked, 1},
        {"mqoff_tcp_segments_received_total", NULL, "TCP segments of spliced connections",
         s->segs_in, 0},
        {"mqoff_tcp_segments_sent_total", NULL, "TCP segments the splice sent", s->segs_out, 0},
        {"mqoff_tcp_retransmissions_total", NULL, "segments the splice sent again",
         s->retransmits, 0},
        {"mqoff_tcp_fast_retransmissions_total", NULL, "of those, after duplicate ACKs",
         s->fast_retransmits, 0},
        {"mqoff_tcp_retransmission_timeouts_total", NULL, "retransmission timer expiries",
         s->rto_expired, 0},
        {"mqoff_tcp_resets_total", NULL, "connections reset by the splice", s->resets, 0},
        {"mqoff_tcp_resets_relayed_total", NULL, "RSTs an end sent, passed on to the other",
         s->rsts_relayed, 0},
        {"mqoff_tcp_conns_resumed_total", NULL,
         "connections of a crashed predecessor resumed from the connection table",
         s->conns_resumed, 0},
        {"mqoff_tcp_bad_checksums_total", NULL, "segments dropped for a wrong checksum",
         s->bad_csum, 0},
        {"mqoff_frames_waiting_total", NULL, "frames the output refused (they waited)",
         s->emit_refused, 0},
        {"mqoff_frames_dropped_total", NULL, "forwarded frames dropped for a full output queue",
         b ? b->q_drops : 0, 0},
        {"mqoff_fragments_reassembled_total", NULL, "IPv4 datagrams reassembled",
         m->fr ? mqo_frag_stats(m->fr)->reassembled : 0, 0},
        {"mqoff_tcp_flight_states", NULL,
         "connection directions holding state for data in transit (freed within a second of "
         "going idle)", s->flight_states, 1},
        {"mqoff_queued_bytes", "side=\"client\"",
         "bytes the splice holds unacknowledged toward each side", held[MQO_S2C], 1},
        {"mqoff_queued_bytes", "side=\"broker\"",
         "bytes the splice holds unacknowledged toward each side", held[MQO_C2S], 1},
    };
    return mqo_ctl_counters_put(out, cap, v, sizeof v / sizeof v[0]);
}

/* The broker plugin says the broker reloaded: as a SIGHUP to mqoff. */
static void ctl_reloaded(void *arg)
{
    struct monitor *m = arg;
    if (m->reload)
        mqo_reload_hup(m->reload, mqo_splice_engine(m->sp));
}

/* A new process knocked at the takeover socket (looked at every 50 ms): the splice's state
 * goes to it, and this one stops without a frame more. The ports close as this process exits;
 * the new one opens them then (two processes on one port would both forward every frame).
 * Frames that arrive in between are lost on the wire and sent again by the TCP ends, or by the
 * new splice for what it holds. */
static void takeover_poll(struct monitor *m, uint64_t now)
{
    if (m->tko_fd < 0 || now - m->last_tko < 50000000ull)
        return;
    m->last_tko = now;
    struct pollfd p = {.fd = m->tko_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return;
    int fd = mqo_tko_accept(m->tko_fd, "monitor", NULL);
    if (fd < 0)
        return;
    struct mqo_buf st = {0};
    int rc = mqo_splice_save(m->sp, &st);
    if (rc) {
        mqo_warn("takeover: cannot write the state (%s); serving on", strerror(-rc));
        close(fd);
    } else if (mqo_tko_handover(fd, NULL, 0, st.data, st.len)) {
        m->handed = 1;
        *m->stop = 1;
    }
    mqo_buf_free(&st);
}

static void on_tick(void *arg, struct mqo_bump *b, uint64_t now)
{
    struct monitor *m = arg;
    bind_bump(m, b);
    if (m->upgrade && *m->upgrade) {
        *m->upgrade = 0;
        int src = m->tko_fd >= 0 ? mqo_tko_spawn() : -ENOTCONN;
        if (src)
            mqo_warn("SIGUSR2: no successor started: %s",
                     src == -ENOTCONN ? "no takeover socket (--takeover)" : strerror(-src));
    }
    takeover_poll(m, now);
    reset_tick(m, now);
    if (m->ctl && now - m->last_ctl >= 100000000ull) { /* the endpoint's timeouts */
        mqo_ctl_run(m->ctl, now);
        m->last_ctl = now;
    }
    if (m->hup && *m->hup) { /* SIGHUP ends the bump loop's wait: at once */
        *m->hup = 0;
        if (m->reload)
            mqo_reload_hup(m->reload, mqo_splice_engine(m->sp));
    }
    mqo_splice_tick(m->sp, now);
    if (m->fr)
        mqo_frag_expire(m->fr, now);
}

static unsigned on_pending(void *arg)
{
    struct monitor *m = arg;
    return mqo_splice_pending(m->sp);
}

static uint64_t on_next(void *arg, uint64_t now)
{
    struct monitor *m = arg;
    uint64_t t = mqo_splice_next_timer(m->sp, now);
    /* the engine's keep-alive and ordering timers run from tick: at least every 100 ms */
    return t < 100000000ull ? t : 100000000ull;
}

int mqo_monitor_run(const struct mqo_monitor_cfg *cfg, struct mqo_monitor_stats *st)
{
    struct monitor m = {0};
    struct mqo_splice_cfg sc = cfg->splice;
    sc.emit = emit;
    if (cfg->share_min != SIZE_MAX)
        sc.emit_shared = emit_shared;
    sc.share_min = cfg->share_min;
    sc.ud = &m;
    if (cfg->conn_table)
        sc.track = on_track;
    m.sp = mqo_splice_new(&sc);
    if (!m.sp) {
        int err = errno;
        mqo_err("cannot start the splice: %s", strerror(err));
        return -err;
    }
    /* a burst's ACKs go once per sender at its end (on_burst_end), behind the deliveries it
     * set off */
    mqo_splice_defer_acks(m.sp, 1);
    m.tko_fd = -1;
    m.stop = cfg->bump.stop;
    m.upgrade = cfg->upgrade;
    if (cfg->takeover) {
        int tfd = -1;
        int trc = mqo_tko_connect(cfg->takeover, "monitor", &tfd);
        if (trc == 1) {
            int *fds = NULL;
            size_t nfds = 0;
            struct mqo_buf tb = {0};
            const char *why = NULL;
            trc = mqo_tko_receive(tfd, &fds, &nfds, &tb);
            if (trc)
                why = "the state did not arrive whole";
            else if (nfds)
                why = "descriptors came with a monitor mode state", trc = -EINVAL;
            else if ((trc = mqo_splice_load(m.sp, tb.data, tb.len)) != 0)
                why = trc == -EPROTO ? "the splice state's format is another version"
                                     : "the splice state does not load";
            for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
            free(fds);
            mqo_buf_free(&tb);
            if (mqo_tko_finish(tfd, why) != 0)
                trc = trc ? trc : -EPROTO;
            else
                mqo_info("takeover: %llu spliced connections handed over (pid %d); opening the "
                         "ports", (unsigned long long)mqo_splice_stats(m.sp)->conns_tracked,
                         (int)getpid());
        }
        if (trc < 0) {
            mqo_splice_free(m.sp);
            return trc;
        }
        m.tko_fd = mqo_tko_listen(cfg->takeover);
        if (m.tko_fd < 0)
            mqo_warn("takeover socket %s: %s: no process can take over from this one",
                     cfg->takeover, strerror(-m.tko_fd));
    }
    if (cfg->conn_table) {
        size_t stale = 0;
        m.ctab = mqo_ctab_open(cfg->conn_table, cfg->splice.max_conns, cfg->splice.broker_ip,
                               cfg->splice.broker_port, &stale);
        if (!m.ctab) {
            int err = errno;
            mqo_err("connection table %s: %s", cfg->conn_table,
                    err == EBUSY ? "another mqoff monitor uses it" : strerror(err));
            mqo_splice_free(m.sp);
            return -err;
        }
        if (mqo_ctab_old_version(m.ctab))
            mqo_warn("connection table %s was written in format version %u (this mqoff writes "
                     "%u): its connections cannot be read, so they are neither resumed nor "
                     "reset (their clients notice at their keep-alive); the table starts empty",
                     cfg->conn_table, mqo_ctab_old_version(m.ctab), MQO_CTAB_VERSION);
        struct mqo_ctab_ent *v = NULL;
        size_t n = 0;
        if (mqo_ctab_take_stale(m.ctab, &v, &n) == 0 && n) {
            if (mqo_splice_stats(m.sp)->conns_tracked) {
                /* a takeover: they are this process's now (rewritten below) */
            } else {
                /* the quiescent ones resume as relayed connections; the others are reset */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
                size_t nr = 0, k = 0;
                for (size_t i = 0; i < n; i++) {
                    if (mqo_ctab_resumable(&v[i]) && mqo_splice_resume(m.sp, &v[i], now) == 0)
                        nr++;
                    else
                        v[k++] = v[i];
                }
                if (nr)
                    mqo_warn("connection table %s: %zu spliced connections of a previous mqoff "
                             "that did not hand them over were quiescent: resumed, relayed "
                             "unedited until they close (every PUBLISH goes to the broker while "
                             "they live)", cfg->conn_table, nr);
                if (k) {
                    m.reset = mqo_ctab_reset_new(v, k, cfg->splice.broker_ip,
                                                 cfg->splice.broker_port);
                    mqo_warn("connection table %s: %zu spliced connections of a previous mqoff "
                             "that did not hand them over had bytes in transit: resetting both "
                             "ends of each, so their clients reconnect now", cfg->conn_table, k);
                }
            }
        }
        free(v);
        mqo_splice_retrack(m.sp);
    }
    m.reload = cfg->reload;
    m.hup = cfg->hup;
    m.broker_ip = cfg->splice.broker_ip;
    m.broker_port = cfg->splice.broker_port;
    if (!cfg->no_reassembly) {
        struct mqo_frag_cfg fc = cfg->frag;
        fc.keep = 1;
        m.fr = mqo_frag_new(&fc);
        if (!m.fr) {
            mqo_err("cannot start the IPv4 reassembler: out of memory");
            mqo_splice_free(m.sp);
            return -ENOMEM;
        }
    }
    struct mqo_bump_cfg bc = cfg->bump;
    if (cfg->share_min && cfg->share_min != SIZE_MAX)
        bc.port_flags |= MQO_PORT_SHARE_SW; /* asked for: wherever a port can reference */
    bc.hook = (struct mqo_bump_hook){.frame = on_frame, .burst_end = on_burst_end,
                                     .tick = on_tick, .next = on_next, .pending = on_pending,
                                     .arg = &m};
    if (m.reload && mqo_reload_fd(m.reload) >= 0) {
        bc.hook.fd = mqo_reload_fd(m.reload);
        bc.hook.fd_ready = on_reload_fd;
    }
    m.bst = &st->bump;
    struct mqo_ctl_hooks hooks = {.counters = ctl_counters, .broker_reloaded = ctl_reloaded,
                                  .arg = &m};
    if (cfg->ctl) {
        int crc = mqo_ctl_new(cfg->ctl, mqo_splice_engine(m.sp), &hooks, &m.ctl);
        if (crc) {
            mqo_frag_free(m.fr);
            mqo_splice_free(m.sp);
            return crc;
        }
        bc.hook.fd2 = mqo_ctl_fd(m.ctl);
        bc.hook.fd2_ready = on_ctl_fd;
    }
    int rc = mqo_bump_run(&bc, &st->bump);
    mqo_ctl_free(m.ctl);
    m.b = NULL;
    st->splice = *mqo_splice_stats(m.sp);
    st->engine = *mqo_splice_engine_stats(m.sp);
    if (m.fr)
        st->frag = *mqo_frag_stats(m.fr);
    st->frag_to_splice = m.to_splice;
    st->frag_declined = m.declined;
    mqo_frag_free(m.fr);
    if (m.tko_fd >= 0) {
        close(m.tko_fd);
        if (!m.handed) /* handed: the path is the new process's to take */
            unlink(cfg->takeover);
    }
    mqo_ctab_reset_free(m.reset);
    /* the table keeps its entries: connections this process spliced break when it stops, and
     * the next one resets them (a takeover rewrites them as its own) */
    mqo_ctab_close(m.ctab);
    if (!m.handed) /* handed: the state lives on in the new process; nothing is torn down */
        mqo_splice_free(m.sp);
    return rc;
}
