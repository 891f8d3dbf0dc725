/* pktio/: bursts of raw Ethernet frames on a port (an interface), whatever the backend.
 *
 * Backends: AF_PACKET (this issue), AF_XDP and DPDK (later). The layers above see only
 * struct mqo_rawframe: a buffer with a length and a receive timestamp. Ownership is explicit, as
 * with DPDK's rte_mbuf: a frame returned by rx_burst or alloc belongs to the caller until it is
 * given back with tx_burst (which takes ownership of the frames it accepted) or frame_free.
 * A frame may be sent on a port other than the one it was received on (monitor mode forwards
 * between two ports): every port accepts frames of any port of the same process.
 */
#ifndef MQO_PKTIO_H
#define MQO_PKTIO_H

#include <stddef.h>
#include <stdint.h>

#define MQO_FRAME_MAX 9216 /* largest frame handled (jumbo) */

struct mqo_rawframe {
    uint8_t *data;   /* frame bytes, starting with the Ethernet header */
    uint32_t len;    /* bytes in use */
    uint32_t cap;    /* bytes available at data */
    uint64_t ts_ns;  /* receive time (CLOCK_MONOTONIC ns), 0 for allocated frames */
    uint16_t port;   /* index of the port it was received on */
    uint16_t flags;
    void *priv;      /* backend's */
};

/* struct mqo_rawframe.flags, set on receive */
/* The L4 (TCP/UDP) checksum was left for the device to compute (AF_PACKET:
 * TP_STATUS_CSUMNOTREADY, the sender's stack used checksum offload and the frame never met a
 * device). The field holds only the pseudo-header sum: a frame that leaves on a wire must get
 * its checksum completed first (l2/parse.h mqo_cksum_complete4), or its receiver drops it. */
#define MQO_FRAME_CSUM_PARTIAL 0x0001
/* The kernel has already verified the L4 checksum (TP_STATUS_CSUM_VALID). */
#define MQO_FRAME_CSUM_VALID 0x0002
/* The kernel had taken the frame's VLAN tag out (hardware/veth tag offload); the backend put it
 * back, so data holds the frame as it was on the wire. */
#define MQO_FRAME_VLAN_RESTORED 0x0004

enum mqo_pktio_backend {
    MQO_PKTIO_AFPACKET = 0,
};

struct mqo_port_cfg {
    const char *ifname;
    enum mqo_pktio_backend backend;
    uint16_t index;      /* stored in every frame received on this port */
    uint32_t ring_frames; /* 0: backend default */
    int promisc;          /* put the interface in promiscuous mode (restored on close) */
    uint32_t max_frames;  /* frame descriptors beyond the ring (alloc, detach); 0: default */
    unsigned flags;       /* MQO_PORT_* */
};

/* struct mqo_port_cfg.flags */
/* AF_PACKET: send through the device directly (PACKET_QDISC_BYPASS). Frames then skip the
 * qdisc and are not seen by other packet sockets on the interface (tcpdump). */
#define MQO_PORT_QDISC_BYPASS 0x1

struct mqo_port;

/* Opens a port. Returns 0, or -errno with a message in err (e.g. "eth9: no such interface"). */
int mqo_port_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err,
                  size_t errlen);
/* Closes a port. Every frame received on or allocated from it must have been sent or freed. */
void mqo_port_close(struct mqo_port *p);

/* Receives up to n frames without blocking. Returns how many were stored in v (0: none ready),
 * or -errno. */
int mqo_port_rx_burst(struct mqo_port *p, struct mqo_rawframe **v, int n);

/* Sends up to n frames, in order. Returns how many it took (their ownership moved to the
 * port); the caller still owns v[ret..n). Never blocks. Fewer than n means the port is full
 * for now (AF_PACKET: the socket buffer, EAGAIN, or the device's queue, ENOBUFS; DPDK: the TX
 * descriptors; AF_XDP: the TX ring): nothing was lost, the caller keeps the rest in order and
 * offers it again after the port's descriptor signals POLLOUT, or after a short while, since
 * not every backend signals room. Only a frame that can never be sent (longer than the
 * device takes, interface down) is taken and dropped, counted in tx_errors. */
int mqo_port_tx_burst(struct mqo_port *p, struct mqo_rawframe **v, int n);

/* A fresh frame buffer for a frame the caller builds (cap >= MQO_FRAME_MAX), NULL when none. */
struct mqo_rawframe *mqo_frame_alloc(struct mqo_port *p);
/* Gives a frame back without sending it. */
void mqo_frame_free(struct mqo_rawframe *f);

/* Makes the frame own its bytes. A received frame may point into the backend's receive ring
 * (zero-copy); the ring is a FIFO, so a frame held there stops the port's reception when the
 * ring wraps around to it (the kernel drops frames meanwhile, counted in rx_dropped). A holder
 * that keeps a frame past the current burst cycle (a delay queue, data kept for retransmission)
 * detaches it: the bytes are copied to a buffer of the frame's own (cap >= MQO_FRAME_MAX) and
 * the ring slot goes back. f->data changes; the contents and every other field stay.
 * Returns 0 (also when there was nothing to do), or -ENOMEM with the frame unchanged. */
int mqo_frame_detach(struct mqo_rawframe *f);

/* Descriptor that becomes readable when frames arrive (for poll/epoll). */
int mqo_port_fd(const struct mqo_port *p);

/* Counters of the port. */
struct mqo_port_stats {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes, rx_dropped, tx_errors;
    uint64_t rx_truncated; /* larger than a ring slot: dropped (also counted in rx_dropped) */
    uint64_t rx_stalls;    /* rx_burst found the next ring slot still held by the caller */
    uint64_t tx_full;      /* tx_burst returned early: the socket buffer was full */
    uint64_t tx_nobufs;    /* tx_burst returned early: the device's queue was full */
    uint64_t detached;     /* frames copied out of the ring by mqo_frame_detach */
};
void mqo_port_stats(const struct mqo_port *p, struct mqo_port_stats *st);

#endif
