/* tcp/: the splice engine of monitor mode.
 *
 * mqoff monitor sits on the wire between clients and the broker host and is not a TCP endpoint:
 * it never opens or accepts a connection, the SYNs pass (their SACK-permitted option stripped)
 * and both ends keep their own initial sequence numbers. But once the MQTT engine edits a
 * byte stream (a consumed PUBLISH, an inserted delivery), the two ends no longer agree on
 * sequence numbers. The splice gives each direction of each connection two sequence spaces:
 *
 *     sender X --- input space (X's bytes as sent) ---> [engine] --- output space ---> receiver Y
 *
 * and relays the stream instead of the segments: X's segments are reassembled in order and fed
 * to the engine; the engine's output (forwarded bytes, inserted bytes) is a new byte stream
 * toward Y, numbered from X's own initial sequence number, which the splice segments, sends,
 * keeps until Y acknowledges it, and retransmits (RTO with backoff, fast retransmit on three
 * duplicate ACKs), within Y's window and a NewReno-style congestion window.
 *
 * ACKs: Y acknowledges output bytes. X's input bytes are acknowledged to X once each is
 * resolved: consumed by the engine, or forwarded and acknowledged by Y. A record per engine edit
 * (input end, output end) maps one to the other, so a cumulative ACK from Y that covers broker
 * and offload bytes alike becomes exactly the input prefix it resolves: no special case for
 * delayed ACKs, no ACK for bytes the broker has not acknowledged and the offload has not taken.
 *
 *      input (X)   |--fwd--|--consumed--|--fwd--|
 *      output (Y)  |--fwd--|--ins--|--fwd--|
 *                          ^ consumed bytes resolve when Y acks everything before them
 *
 * Windows: the window advertised to X is what X has in flight toward us plus the room left in
 * Y's window after everything the splice holds for Y (forwarded and inserted bytes alike), so
 * inserted data shares the receiver's window with the sender's. Timestamps: segments toward Y
 * carry the latest TSval seen from X (never decreasing, so PAWS accepts them) and echo Y's.
 * SACK: negotiation is stripped from the SYNs (every hop retransmits for itself; translating
 * SACK blocks of two origins buys nothing on one hop). MSS: segments toward Y respect Y's MSS.
 *
 * Output: every frame goes out through the emit callback, which may refuse a frame the splice
 * keeps anyway (MQO_SPLICE_EMIT_KEPT: a segment of an output stream, an ACK) when the path
 * toward the receiver is full. The splice then keeps the connection in line, per side, in the
 * order connections had something to send, and sends from there when it is called again
 * (mqo_splice_tick, or the next input), so a fan-out larger than any queue of the caller goes
 * out whole and in order as the path drains, and its timers run only for what was sent.
 *
 * Giving up: as Linux with tcp_retries2 (mqo_splice_cfg.rtx_retries, 15), a connection is
 * reset only when the receiver acknowledged nothing of what was sent for the time that many
 * backed-off timeouts take (924.6 s for 15), or answered none of that many zero-window probes.
 *
 * Only connections whose SYN the splice saw are edited; others, and every frame that is not
 * TCP to or from the broker's address and port, are the caller's to forward unchanged.
 *
 * No I/O, no clock: frames come in with the time, frames go out through a callback.
 */
#ifndef MQO_TCP_SPLICE_H
#define MQO_TCP_SPLICE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "tcp/ctab.h"

/* Port sides of the bump. */
#define MQO_SIDE_CLIENT 0 /* the port toward the clients */
#define MQO_SIDE_BROKER 1 /* the port toward the broker host */

struct mqo_splice_cfg {
    uint32_t broker_ip;   /* IPv4, network byte order */
    uint16_t broker_port; /* host byte order */
    /* The engine's configuration (authorization, broker-only topics...); the ops are the
     * splice's own. */
    struct mqo_engine_cfg engine;
    /* Emits a frame toward a side. The frame is only valid during the call. Returns 0 when the
     * path took it; a negative value refuses a frame flagged MQO_SPLICE_EMIT_KEPT (the path is
     * full: the splice sends it again later, see above). Frames without the flag (a SYN or a
     * RST passed on) cannot be sent again: refusing one loses it. */
    int (*emit)(void *ud, int to_side, const uint8_t *frame, size_t len, unsigned flags);
    /* Optional: a segment whose payload ends with at least share_min bytes of a fan-out's
     * shared serialization (an inserted packet past its patched bytes) is emitted as its first
     * hlen bytes (headers, and the payload before those bytes) plus ext_len bytes at
     * msg->data + ext_off, for an output that sends them from the shared message instead of
     * a copy per subscriber. The callee takes a reference on msg (mqo_msg_ref) if it keeps it
     * past the call. Returns as emit. NULL: every frame goes whole through emit. */
    int (*emit_shared)(void *ud, int to_side, const uint8_t *frame, size_t hlen,
                       struct mqo_msg *msg, size_t ext_off, size_t ext_len, unsigned flags);
    size_t share_min; /* 0: 1024 */
    void *ud;
    /* Bytes held for one receiver (unacknowledged output) above which the engine stops
     * offloading to it (QoS 0 dropped, QoS 1 to the broker). 0: 4 MiB. */
    size_t max_queue;
    /* The least window offered to a client for its bytes toward the broker (docs/
     * ARCHITECTURE.md, "The client's window"): the broker's own window stays at its initial
     * size (about 64 KiB) when all the client sends is consumed here, smaller than one large
     * PUBLISH. What is forwarded beyond the broker's window waits here. 0: 256 KiB;
     * MQO_SPLICE_WINDOW_NONE: the broker's window alone. */
    uint32_t client_window;
    /* Above this many bytes held toward the broker, over every connection, no client is
     * offered more than the broker's window. 0: 64 MiB. */
    size_t client_window_mem;
    uint32_t max_conns;   /* table limit, 0: 65536; new connections over it pass untouched */
    uint32_t idle_ms;     /* a connection with no frame for this long is forgotten; 0: 2 h */
    /* For this long after start nothing is offloaded: a client connected before mqoff started
     * may be silent (its subscriptions unknown, its connection not yet seen) until it sends
     * its next keep-alive. Connections seen without their SYN extend the passthrough while
     * they live. Negative: none (a lab that started the broker fresh). 0: 90 s. */
    int32_t startup_hold_ms;
    /* Linux's tcp_retries2: how long a receiver may acknowledge nothing before the connection
     * is reset (mqo_splice_give_up_ns), and how many zero-window probes it may leave
     * unanswered. 0: 15. */
    uint32_t rtx_retries;
    /* Optional: a connection was established (up = 1; *e says what resets both ends, see
     * tcp/ctab.h) or forgotten (up = 0). Called with ud. For up, returns the connection's
     * entry in the shared table (NULL: none), where the splice keeps the resume point (offsets
     * and the quiescent word) while the connection lives; the return for up = 0 is ignored. */
    struct mqo_ctab_ent *(*track)(void *ud, const struct mqo_ctab_ent *e, int up);
};

#define MQO_SPLICE_WINDOW_NONE UINT32_MAX

/* emit flags */
#define MQO_SPLICE_EMIT_KEPT 0x1 /* the splice keeps what the frame carries: it may be refused */
/* A TSO frame (mqo_splice_set_offload): the output cuts it into segments of
 * MQO_SPLICE_EMIT_SEG(flags) payload bytes, and sums each. */
#define MQO_SPLICE_EMIT_TSO 0x2
#define MQO_SPLICE_EMIT_SEG(flags) ((flags) >> 16)
/* The TCP checksum is the output's to complete (mqo_splice_set_offload). */
#define MQO_SPLICE_EMIT_CSUM 0x4

struct mqo_splice_stats {
    uint64_t conns_tracked;     /* now */
    uint64_t conns_total;
    uint64_t conns_untracked;   /* frames of connections whose SYN was not seen */
    uint64_t segs_in, segs_out;
    uint64_t bytes_in[2], bytes_out[2]; /* payload by direction (0: client->broker) */
    uint64_t c2s_held;          /* now: bytes held toward the broker (sent or not, not yet
                                 * acknowledged), over every connection */
    uint64_t retransmits;       /* segments the splice sent again */
    uint64_t fast_retransmits;
    uint64_t rto_expired;
    uint64_t dup_segs_in;       /* segments carrying only bytes already received */
    uint64_t ooo_segs_in;       /* arrived ahead of a gap, kept */
    uint64_t bad_csum;          /* dropped: TCP checksum wrong */
    uint64_t zero_window_probes;
    uint64_t resets;            /* connections the splice reset (both ends), for any reason */
    uint64_t rsts_relayed;      /* RSTs an end sent, passed on to the other end */
    uint64_t rto_give_ups;      /* ... because a receiver acknowledged nothing (rtx_retries) */
    uint64_t probe_give_ups;    /* ... because a receiver answered no zero-window probe */
    uint64_t emit_refused;      /* frames the output refused: they waited in the splice */
    uint64_t csum_reused;       /* payload bytes whose checksum came from the fan-out's sum */
    uint64_t shared_segs;       /* segments emitted with their payload shared (emit_shared) */
    uint64_t shared_bytes;      /* ... payload bytes not copied into them */
    uint64_t tso_frames;        /* frames emitted for the output to segment (TSO) */
    uint64_t tso_bytes;         /* ... their payload bytes */
    uint64_t csum_left;         /* segments whose TCP checksum the output completes */
    uint64_t conns_resumed;     /* connections of a dead predecessor resumed (relayed) */
    /* Directions (two per connection) holding state for traffic in transit (now): output not
     * acknowledged, input out of order or unresolved, a timer armed. An idle connection holds
     * none; what it keeps is in docs/ARCHITECTURE.md, "Memory per connection". */
    uint64_t flight_states;
};

struct mqo_splice;

/* Returns NULL with errno set. */
struct mqo_splice *mqo_splice_new(const struct mqo_splice_cfg *cfg);
void mqo_splice_free(struct mqo_splice *s);

/* A frame arrived on side `from`. Returns 1 when the splice took it (it emits what it decides,
 * now or later), 0 when the caller forwards it unchanged to the other side. csum_ok: the
 * frame's checksums need no verification (set for frames the NIC delivered with partial or
 * already-verified checksums). */
int mqo_splice_input(struct mqo_splice *s, int from, const uint8_t *frame, size_t len,
                     int csum_ok, uint64_t now_ns);

/* Timers: retransmission, zero-window probes, the engine's keep-alive, idle expiry. Call at
 * least every 10 ms. */
void mqo_splice_tick(struct mqo_splice *s, uint64_t now_ns);

/* While on, an ACK that no data carries waits for the next mqo_splice_flush (or tick), which
 * sends it: a burst of input from one sender (the segments of a large PUBLISH) is acknowledged
 * once, after what it set in motion (a fan-out's deliveries), as a receiver that coalesces
 * segments (GRO) acknowledges a super-segment once. The caller flushes after every burst of
 * frames it reads. Off by default: each input is acknowledged at once. */
void mqo_splice_defer_acks(struct mqo_splice *sp, int on);

/* Emits what the splice owes, the ACKs deferred since the last flush included. */
void mqo_splice_flush(struct mqo_splice *sp);

/* Nanoseconds until the next timer is due (UINT64_MAX: none). */
uint64_t mqo_splice_next_timer(const struct mqo_splice *s, uint64_t now_ns);

/* Sides (bit 1 << side) toward which frames wait because emit refused them. They go out from
 * the next mqo_splice_tick (or input): call it again as soon as that side can take frames. */
unsigned mqo_splice_pending(const struct mqo_splice *s);

/* How long a receiver may acknowledge nothing before the splice gives up, for a number of
 * retries: Linux's model of tcp_retries2 (timeouts doubling from 200 ms up to 120 s). 15:
 * 924.6 s. */
uint64_t mqo_splice_give_up_ns(unsigned retries);

const struct mqo_splice_stats *mqo_splice_stats(const struct mqo_splice *s);
const struct mqo_engine_stats *mqo_splice_engine_stats(const struct mqo_splice *s);
/* The engine the splice drives, for run-time changes (authorization reloads). */
/* Bytes the splice holds, sent or not, unacknowledged by their receiver: held[MQO_C2S] toward
 * the broker, held[MQO_S2C] toward the clients (walks every connection: for metrics). */
void mqo_splice_held(const struct mqo_splice *sp, uint64_t held[2]);
struct mqo_engine *mqo_splice_engine(struct mqo_splice *s);
/* Distinct frame templates (Ethernet header, TTL, TOS of one direction) the connections hold:
 * kept once each, however many connections share one. */
size_t mqo_splice_templates(const struct mqo_splice *s);

/* What the output toward a side does itself (mqo_splice_set_offload). */
struct mqo_splice_offload {
    /* TSO: new data toward that side leaves in frames of up to tso_max payload bytes (whole
     * multiples of the receiver's MSS, within its window and the congestion window), emitted
     * with MQO_SPLICE_EMIT_TSO and the MSS in MQO_SPLICE_EMIT_SEG(flags). Their TCP checksum
     * field holds the pseudo-header sum without the length (not complemented), their IPv4
     * length the whole frame's, and they take one IP id per segment. Retransmissions of one
     * segment stay one MSS. 0: every segment at most the MSS; at most 64000 is used. */
    uint32_t tso_max;
    /* The TCP checksum: every segment toward that side leaves with MQO_SPLICE_EMIT_CSUM and
     * the pseudo-header sum (with the length, not complemented) in its field; the output
     * completes it (the payload is not summed here). */
    int csum;
};
/* Sets what the output toward `side` does itself; all zero (the default): nothing. */
void mqo_splice_set_offload(struct mqo_splice *s, int side, const struct mqo_splice_offload *o);

/* Whether the splice tracks the connection of a client (address in network byte order, port
 * in host order) with the broker: 1 when it saw its SYN and relays its stream (every segment of
 * it must go through mqo_splice_input: the output is renumbered), 0 when its segments are
 * forwarded untouched. For a caller that decides before it has a whole segment (monitor mode's
 * IPv4 reassembly). A client SYN of a connection not tracked yet opens one in
 * mqo_splice_input. */
int mqo_splice_tracks(const struct mqo_splice *s, uint32_t client_ip, uint16_t client_port);

/* Crash recovery (tcp/ctab.h): rebuilds the connection of a dead predecessor's table entry e,
 * which must be quiescent (mqo_ctab_resumable), as a relayed connection: both streams go on
 * through the fixed translation the entry records, unedited, segments below the recorded
 * input answered with an ACK, and the engine takes it as an unknown connection (every PUBLISH
 * goes to the broker while it lives). Each end gets a keep-alive probe, whose answer tells its
 * window and timestamp; until an end's timestamp is known, segments carry no timestamp option
 * (never an older TSval than the dead process sent, which PAWS would drop). Returns 0, -EEXIST
 * (tracked already), -EINVAL (not resumable), -ENOSPC (table full), -ENOMEM. */
int mqo_splice_resume(struct mqo_splice *sp, const struct mqo_ctab_ent *e, uint64_t now_ns);

/* Takeover: the splice's state (every tracked connection's sequence spaces, held output,
 * records, timers, and the engine's snapshot) appended to out (after settling what can go
 * now). Returns 0, -ENOMEM, -ENOTSUP (engine, mqo_engine_save). */
int mqo_splice_save(struct mqo_splice *sp, struct mqo_buf *out);
/* Calls cfg.track(up) for every established connection (a table written afresh). */
void mqo_splice_retrack(struct mqo_splice *sp);
/* Fills a new splice (same configuration kind, no connection yet) from a save. Returns 0,
 * -EPROTO (another format version), -EINVAL, -ENOMEM, -EBUSY; on failure free the splice. */
int mqo_splice_load(struct mqo_splice *sp, const uint8_t *p, size_t n);

#endif
