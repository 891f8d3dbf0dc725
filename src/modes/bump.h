/* The two-port bump-in-the-wire loop shared by mqoff-bridge (the null forwarder) and monitor
 * mode: frames received on one port go to the other through the L2 decision, an optional
 * per-frame hook (monitor mode's TCP splice), an optional impairment stage per direction, and
 * a send queue per port. One thread, ppoll()-driven.
 *
 * Ports: 0 ("a") and 1 ("b"). Monitor mode puts the clients on port a and the broker host on
 * port b.
 */
#ifndef MQO_MODES_BUMP_H
#define MQO_MODES_BUMP_H

#include <stddef.h>
#include <stdint.h>

#include "l2/impair.h"
#include "l2/l2.h"
#include "pktio/pktio.h"

struct mqo_bump;

struct mqo_bump_hook {
    /* A frame received on port `in` (after the L2 decision let it through to the other port).
     * Return 1 when the hook took it (the loop frees the frame), 0 to forward it. */
    int (*frame)(void *arg, struct mqo_bump *b, int in, const struct mqo_rawframe *f,
                 uint64_t now);
    /* Optional: called after each burst of frames read from a port went through frame (a
     * hook that answers a burst once, not each frame, answers here). */
    void (*burst_end)(void *arg, struct mqo_bump *b, uint64_t now);
    /* Timers: called every loop iteration with the time. */
    void (*tick)(void *arg, struct mqo_bump *b, uint64_t now);
    /* Nanoseconds until the hook's next timer (UINT64_MAX: none). */
    uint64_t (*next)(void *arg, uint64_t now);
    /* Ports (bit 1 << port) toward which the hook holds frames that mqo_bump_send refused
     * (the output was busy). While such a port can take frames the loop does not sleep and
     * calls tick again, so they go out as soon as the output drains. NULL: none ever. */
    unsigned (*pending)(void *arg);
    /* Optional: descriptors the loop also waits on, and what to call when one is readable
     * (used when its fd_ready is set), before the frames that arrived with it are read. */
    int fd, fd2;
    void (*fd_ready)(void *arg, uint64_t now);
    void (*fd2_ready)(void *arg, uint64_t now);
    void *arg;
};

struct mqo_bump_cfg {
    const char *ifname[2];      /* interfaces; DPDK: port ids or device names */
    enum mqo_pktio_backend io;  /* how frames are read and written (AF_PACKET: 0) */
    const char *eal;            /* DPDK: the EAL arguments */
    enum mqo_l2_mode l2_mode;
    unsigned l2_flags;
    uint64_t aging_ns;          /* learn: 0 for the default */
    const char *static_text;    /* static: the table ("MAC PORT" lines) */
    size_t static_len;
    /* impairment of frames leaving port i (i = 1: a->b); NULL: none */
    const struct mqo_impair_cfg *impair_out[2];
    uint32_t ring;              /* RX ring slots (DPDK: descriptors), 0: default */
    /* After a frame, keep polling without sleeping for this long (microseconds; 0: sleep at
     * once). Trades CPU for the wake-up latency of the next frame. */
    uint32_t busy_poll_us;
    unsigned port_flags;        /* MQO_PORT_* */
    int fix_csum;               /* complete partial checksums before forwarding */
    int promisc;
    /* Optional (monitor mode): frames to or from this IPv4 address (network order) and TCP
     * port (host order) are the hook's; a port whose device can steer (DPDK rte_flow, the
     * AF_XDP program) forwards every other frame to the other port itself, so they never
     * reach the loop. Not with a static L2 table (the device would not apply it). 0: none. */
    uint32_t steer_ip;
    uint16_t steer_port;
    struct mqo_bump_hook hook;
    volatile int *stop;         /* set by SIGINT/SIGTERM handlers; SIGHUP wakes the loop too */
    const char *name;           /* for messages ("mqoff-bridge", "mqoff monitor") */
    /* Optional: called once both ports are open and receiving, before the loop (a start
     * message printed earlier would claim forwarding while frames still go nowhere). */
    void (*ready)(void *arg);
    void *ready_arg;
};

struct mqo_bump_stats {
    uint64_t csum_fixed, csum_bad, alloc_fail, impair_nomem;
    uint64_t tso_split; /* super-segments cut in software (toward an impairment stage...) */
    /* forwarded frames dropped because their output queue was full (never a frame of the
     * hook's own: those are refused, MQO_BUMP_OWN, and wait in the hook) */
    uint64_t q_drops;
    uint64_t own_deferred; /* mqo_bump_send(MQO_BUMP_OWN) refused: the output was busy */
    uint64_t iterations;   /* loop iterations */
    uint64_t hooked; /* frames the hook took */
    struct mqo_port_stats port[2];
    struct mqo_port_info port_info[2];
    int steered[2];        /* the device forwards what is not the hook's (steer_ip) */
    struct mqo_l2_stats l2;
    struct mqo_impair_stats impair[2]; /* by output port */
    int impair_on[2];
    /* impairment frag=SIZE, by output port: datagrams split, fragments made of them */
    uint64_t frag_split[2], frag_out[2];
};

/* Runs until *cfg->stop. Returns 0, or -errno when it cannot start (message printed). */
int mqo_bump_run(const struct mqo_bump_cfg *cfg, struct mqo_bump_stats *st);

/* mqo_bump_send flags */
/* A frame of the hook's own that it keeps until acknowledged anyway (a segment of a spliced
 * stream, an ACK it can send again): refused (-EAGAIN) when the output is busy, so it waits in
 * the hook, in order, instead of in a queue that would have to drop it. Without the flag the
 * frame is forwarded traffic the hook cannot keep (a SYN, a RST, a fragment passed on): it is
 * queued like any forwarded frame, and dropped and counted (q_drops) only when the queue is
 * full. */
#define MQO_BUMP_OWN 0x1
/* The frame's TCP checksum field holds the pseudo-header sum (pktio MQO_FRAME_CSUM_PARTIAL)
 * for the port to complete: only toward a port whose mqo_bump_csum_offload is 1. */
#define MQO_BUMP_CSUM 0x2
/* A TSO frame (the port cuts it into TCP segments of `seg` payload bytes): only toward a port
 * whose mqo_bump_tso_max is not 0, and at most that much payload. */
#define MQO_BUMP_TSO(seg) ((unsigned)(seg) << 16)

/* For hooks: sends a frame the hook built toward port `out` (copied; through that direction's
 * impairment stage and send queue). Each loop iteration lets a port take a share of the hook's
 * own frames (so reception runs between the parts of a large fan-out and keeps up with its
 * acknowledgements), and a queue leaves room for forwarded frames. Returns 0 when the frame
 * was taken, -EAGAIN when an own frame must wait (see hook.pending), -ENOBUFS when no frame
 * buffer was free (forwarded: counted in alloc_fail). */
int mqo_bump_send(struct mqo_bump *b, int out, const uint8_t *data, size_t len, unsigned flags);

/* As mqo_bump_send, for a frame of hlen bytes of data followed by a shared block (a fan-out's
 * payload, pktio.h struct mqo_frame_ext): the output port references the block where it can
 * (MQO_PORT_CAP_EXT) instead of copying it, and the block's bytes are copied where an
 * impairment stage must see them. Returns as mqo_bump_send; on 0 the frame took the reference
 * (ext->put runs once it is sent or dropped), otherwise the caller still holds it. */
int mqo_bump_send_ext(struct mqo_bump *b, int out, const uint8_t *data, size_t hlen,
                      const struct mqo_frame_ext *ext, unsigned flags);

/* What port `out` does itself for the hook's frames, 0 when nothing: the largest TCP payload
 * of a TSO frame it takes (MQO_BUMP_TSO; pktio MQO_PORT_CAP_TSO), and whether it completes
 * TCP checksums (MQO_BUMP_CSUM; MQO_PORT_CAP_TX_CSUM). Neither where an impairment stage reads
 * that direction's frames: it works on frames as they are on the wire. */
uint32_t mqo_bump_tso_max(const struct mqo_bump *b, int out);
int mqo_bump_csum_offload(const struct mqo_bump *b, int out);

/* Prints the counters (ports, l2, impairment, loop) to f. */
void mqo_bump_print_stats(const struct mqo_bump_cfg *cfg, const struct mqo_bump_stats *st,
                          void *f);

#endif
