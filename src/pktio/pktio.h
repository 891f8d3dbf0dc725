/* pktio/: bursts of raw Ethernet frames on a port (an interface), whatever the backend.
 *
 * Backends: AF_PACKET (this issue), AF_XDP and DPDK (later). The layers above see only
 * struct mqo_frame: a buffer with a length and a receive timestamp. Ownership is explicit, as
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

struct mqo_frame {
    uint8_t *data;   /* frame bytes, starting with the Ethernet header */
    uint32_t len;    /* bytes in use */
    uint32_t cap;    /* bytes available at data */
    uint64_t ts_ns;  /* receive time (CLOCK_MONOTONIC ns), 0 for allocated frames */
    uint16_t port;   /* index of the port it was received on */
    uint16_t flags;
    void *priv;      /* backend's */
};

enum mqo_pktio_backend {
    MQO_PKTIO_AFPACKET = 0,
};

struct mqo_port_cfg {
    const char *ifname;
    enum mqo_pktio_backend backend;
    uint16_t index;      /* stored in every frame received on this port */
    uint32_t ring_frames; /* 0: backend default */
    int promisc;          /* put the interface in promiscuous mode (restored on close) */
};

struct mqo_port;

/* Opens a port. Returns 0, or -errno with a message in err (e.g. "eth9: no such interface"). */
int mqo_port_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err,
                  size_t errlen);
void mqo_port_close(struct mqo_port *p);

/* Receives up to n frames without blocking. Returns how many were stored in v (0: none ready),
 * or -errno. */
int mqo_port_rx_burst(struct mqo_port *p, struct mqo_frame **v, int n);

/* Sends up to n frames. Returns how many it took (their ownership moved to the port); the
 * caller still owns v[ret..n). Never blocks. */
int mqo_port_tx_burst(struct mqo_port *p, struct mqo_frame **v, int n);

/* A fresh frame buffer for a frame the caller builds (cap >= MQO_FRAME_MAX), NULL when none. */
struct mqo_frame *mqo_frame_alloc(struct mqo_port *p);
/* Gives a frame back without sending it. */
void mqo_frame_free(struct mqo_frame *f);

/* Descriptor that becomes readable when frames arrive (for poll/epoll). */
int mqo_port_fd(const struct mqo_port *p);

/* Counters of the port. */
struct mqo_port_stats {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes, rx_dropped, tx_errors;
};
void mqo_port_stats(const struct mqo_port *p, struct mqo_port_stats *st);

#endif
