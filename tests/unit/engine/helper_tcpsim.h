/* A small TCP endpoint and wire model for in-memory tests of the splice (monitor mode).
 *
 * Each endpoint is a simplified TCP: handshake (active or passive), in-order receive (out of
 * order segments are dropped and answered with a duplicate ACK, as a receiver without SACK
 * does), cumulative ACKs (immediately, or delayed: every second segment or after 40 ms),
 * send within the peer's window and MSS, go-back-N retransmission on a fixed timeout, window
 * scaling and timestamps with PAWS checks (a segment whose TSval is older than the last one
 * accepted is dropped, as Linux does), FIN. It checks what it receives: a segment whose
 * sequence number or ACK does not fit the connection is counted as a violation, so the tests
 * can assert the splice never sends one.
 *
 * The wire between an endpoint and the splice can lose, duplicate and reorder frames,
 * from a seeded PRNG, per direction.
 */
#ifndef MQO_TEST_TCPSIM_H
#define MQO_TEST_TCPSIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/msg.h"

struct ts_ep {
    int side;          /* MQO_SIDE_CLIENT or MQO_SIDE_BROKER: where it sits */
    uint8_t mac[6], peer_mac[6];
    /* TTL and TOS of the frames it sends (ttl 0: 64), and of the frames its peer sends */
    uint8_t ttl, tos, peer_ttl, peer_tos;
    uint32_t ip, peer_ip;   /* network order */
    uint16_t port, peer_port;
    int state;              /* 0 closed, 1 syn sent, 2 syn rcvd, 3 established, 4 fin */
    uint32_t isn, peer_isn;
    uint64_t snd_una, snd_nxt; /* offsets after the SYN */
    uint64_t snd_max;          /* highest offset ever sent (snd_nxt goes back on a timeout) */
    struct mqo_buf app_out;    /* bytes written, from snd_una on */
    uint64_t app_out_end;      /* offset after the last byte written */
    uint64_t rcv_nxt;
    struct mqo_buf app_in;     /* bytes received in order (not consumed by the app) */
    uint64_t peer_wnd;
    uint32_t rcv_wnd;          /* our window (bytes) */
    uint8_t ws_mine, ws_peer, ws_ok;
    uint16_t mss, peer_mss;
    int ts_ok;
    uint32_t ts_recent;        /* peer's last TSval accepted */
    uint64_t rtx_at;
    int delayed_ack;           /* 1: ack every second segment or after 40 ms */
    unsigned ack_every;        /* delayed_ack: ack every this many segments instead of 2 (a
                                * stack that gets super-segments: GSO on a veth, GRO) */
    int unacked_segs;
    uint64_t ack_at;
    int fin_sent, fin_rcvd;
    /* congestion window in segments, as Linux counts it: at most cwnd_segs data segments
     * unacknowledged (0: no limit) */
    unsigned cwnd_segs;
    uint64_t rto;      /* current retransmission timeout (doubles on each expiry) */
    uint64_t seg_end[64];
    unsigned n_seg;
    int rst_rcvd;
    /* checks */
    uint64_t violations;       /* segments a correct peer would never send us */
    uint64_t paws_drops;
    uint64_t dup_data;         /* data segments entirely below rcv_nxt */
    uint64_t ooo_drops;
    /* frames it received whose Ethernet addresses, TTL or TOS are not what its peer sends
     * (the splice's own frames take them from the peer's frames) */
    uint64_t misaddressed;
};

struct ts_wire {
    /* impairment per direction: [0] toward the splice, [1] from the splice */
    uint32_t loss_pct[2], dup_pct[2], reorder_pct[2];
    uint64_t rng;
    uint64_t frames[2], lost[2], duped[2], reordered[2];
    /* optional: return 1 to drop this frame (to_splice: from the endpoint ep toward the
     * splice, else from the splice toward ep) */
    int (*drop)(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *frame,
                size_t len);
    void *drop_arg;
};

/* A frame in flight. */
struct ts_frame {
    uint8_t *data;
    size_t len;
    int to_splice; /* 1: from the endpoint toward the splice */
    struct ts_ep *ep;
    uint64_t at;   /* delivery time (ns) */
    uint64_t seq;  /* enqueue order: equal times are delivered first in, first out */
};

struct ts_net {
    struct ts_frame *q;
    size_t n, cap;
    uint64_t now;
    struct ts_wire wire;
    void *splice;  /* struct mqo_splice * */
    /* frames the splice emitted, routed back by ts_net_route() */
    struct ts_ep **eps;
    size_t n_eps, cap_eps;
    uint64_t delay_ns; /* one-way wire delay */
    uint64_t next_seq;
    /* optional: called after the splice took each frame (from ep's position), so a test can
     * see what the splice's input changed (its stream counters) frame by frame */
    void (*on_input)(void *arg, struct ts_ep *ep);
    void *on_input_arg;
    /* The splice defers lone ACKs (mqo_splice_defer_acks): it is flushed, as monitor mode does
     * after each burst it reads, once no other frame toward it arrives at the same time. */
    int defer_acks;
    /* The output path's capacity, as a busy port has it: tx_cap frames per tx_period_ns
     * (0: unlimited). Beyond it the splice's kept frames are refused (it must send them
     * again, in order, once the period starts again); frames it cannot keep go through. */
    unsigned tx_cap;
    uint64_t tx_period_ns;
    unsigned tx_room;
    uint64_t tx_refill_at;
    uint64_t tx_refused;
    /* ts_emit_shared: frames that came with a shared tail, and the messages they hold a
     * reference to until the next ts_net_run (as a port holds a block until it sent it) */
    uint64_t shared_frames;
    /* TSO frames (MQO_SPLICE_EMIT_TSO) ts_emit cut into segments, and those segments */
    uint64_t tso_frames, tso_segs;
    uint64_t csum_completed; /* frames whose TCP checksum ts_emit completed */
    struct mqo_msg **held;
    size_t n_held, cap_held;
};

void ts_net_init(struct ts_net *n, void *splice, uint64_t seed);
void ts_net_free(struct ts_net *n);
/* Creates an endpoint pair for a connection client:port <-> broker:bport. */
void ts_ep_init(struct ts_ep *e, int side, uint32_t ip, uint16_t port, uint32_t peer_ip,
                uint16_t peer_port, uint32_t isn, uint16_t mss, uint32_t rcv_wnd, int ts,
                uint8_t ws);
void ts_net_add(struct ts_net *n, struct ts_ep *e);
void ts_ep_free(struct ts_ep *e);

/* Client endpoint: sends its SYN. */
void ts_connect(struct ts_net *n, struct ts_ep *e);
/* Application writes bytes (sent at once within window and MSS). */
void ts_write(struct ts_net *n, struct ts_ep *e, const void *p, size_t len);
/* Sends FIN after the written bytes. */
void ts_close(struct ts_net *n, struct ts_ep *e);

/* The splice's emit callback: queues the frame toward the right endpoint, or refuses a kept
 * frame when the path is over its capacity (tx_cap). A TSO frame is cut into segments first,
 * as a device does, and each meets the wire on its own. */
int ts_emit(void *ud, int to_side, const uint8_t *frame, size_t len, unsigned flags);
/* The splice's emit_shared callback: checks the shared tail lies in the message, keeps a
 * reference to it until the next ts_net_run, and sends head and tail as one frame (ts_emit). */
int ts_emit_shared(void *ud, int to_side, const uint8_t *frame, size_t hlen, struct mqo_msg *msg,
                   size_t ext_off, size_t ext_len, unsigned flags);

/* Processes every event (frame arrival, timer) due before now + max_ns; the clock stops at the
 * last event processed. Returns the time advanced. */
uint64_t ts_net_run(struct ts_net *n, uint64_t max_ns);
/* Same, then moves the clock to now + ns. */
void ts_net_advance(struct ts_net *n, uint64_t ns);
/* 1 while frames are in flight or a retransmission/ACK timer is armed anywhere. */
int ts_net_busy(const struct ts_net *n);

/* Sends a raw frame from an endpoint position toward the splice (for hand-built tests). */
void ts_inject(struct ts_net *n, struct ts_ep *from, const uint8_t *frame, size_t len);
/* e sends a pure ACK now (a window update, as a stack sends one). */
void ts_ack_now(struct ts_net *n, struct ts_ep *e);

/* Builds a segment from e with explicit fields; returns the frame length. */
size_t ts_build(struct ts_ep *e, uint8_t *out, uint32_t seq, uint32_t ack, uint8_t flags,
                const void *payload, size_t len, int with_ts, uint32_t tsval);

#endif
