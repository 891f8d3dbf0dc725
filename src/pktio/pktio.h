/* pktio/: bursts of raw Ethernet frames on a port (an interface), whatever the backend.
 *
 * Backends (mqo_port_cfg.backend): AF_PACKET (afpacket.c, always built), DPDK (dpdk.c) and
 * AF_XDP (afxdp.c), the last two built when their Debian packages are installed
 * (mqo_pktio_backend_built). The layers above see only struct mqo_rawframe: a buffer with a
 * length and a receive timestamp; the backend's memory behind it (AF_PACKET ring slot, DPDK
 * mbuf, AF_XDP UMEM chunk) stays the backend's. Ownership is explicit, as with DPDK's
 * rte_mbuf: a frame returned by rx_burst or alloc belongs to the caller until it is given back
 * with tx_burst (which takes ownership of the frames it accepted) or frame_free. A frame may
 * be sent on a port other than the one it was received on (monitor mode forwards between two
 * ports): every port accepts frames of any port of the same backend in the process.
 */
#ifndef MQO_PKTIO_H
#define MQO_PKTIO_H

#include <stddef.h>
#include <stdint.h>

#define MQO_FRAME_MAX 9216 /* largest frame handled (jumbo) */
/* largest super-segment (MQO_PORT_CAP_LARGE): a 64 KiB IPv4 datagram, Ethernet and 2 tags */
#define MQO_FRAME_LARGE (65536 + 32)

struct mqo_rawframe {
    uint8_t *data;   /* frame bytes, starting with the Ethernet header */
    uint32_t len;    /* bytes in use */
    uint32_t cap;    /* bytes available at data */
    uint64_t ts_ns;  /* receive time (CLOCK_MONOTONIC ns), 0 for allocated frames */
    uint16_t port;   /* index of the port it was received on */
    uint16_t flags;
    uint32_t ext_len; /* MQO_FRAME_EXT, MQO_FRAME_CHAIN: bytes after data[0..len) */
    uint16_t seg_size; /* MQO_FRAME_TSO: TCP payload bytes per segment */
    void *priv;      /* backend's */
    struct mqo_port *owner; /* the port whose buffer this is (pktio's) */
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
/* Set by mqo_frame_attach: the frame's bytes go on in a block it references (ext_len bytes):
 * only tx_burst reads them; data[0..len) is the head. */
#define MQO_FRAME_EXT 0x0008
/* Set by mqo_frame_append: the frame's bytes go on in buffers chained after its own (counted
 * in ext_len with a block's): only tx_burst reads them. */
#define MQO_FRAME_CHAIN 0x0010
/* Set by the sender: an IPv4 TCP frame the device cuts into segments of seg_size payload
 * bytes (TSO; the port has MQO_PORT_CAP_TSO). Its TCP checksum field holds the pseudo-header
 * sum without the length, its IP header the whole frame's length; the device writes every
 * segment's lengths, sequence numbers, IP ids and checksums. Also set on receive (with
 * MQO_FRAME_CSUM_PARTIAL, the field rewritten to the same convention) for a super-segment
 * the kernel delivered (MQO_PORT_CAP_LARGE: GRO, or a local sender's GSO). */
#define MQO_FRAME_TSO 0x0020

enum mqo_pktio_backend {
    MQO_PKTIO_AFPACKET = 0,
    MQO_PKTIO_DPDK,
    MQO_PKTIO_AFXDP,
};

/* "afpacket", "dpdk", "afxdp" to a backend: 0, or -EINVAL. */
int mqo_pktio_backend_parse(const char *s, enum mqo_pktio_backend *out);
const char *mqo_pktio_backend_name(enum mqo_pktio_backend b);
/* 1 when the backend is in this build (DPDK and AF_XDP need their packages at build time). */
int mqo_pktio_backend_built(enum mqo_pktio_backend b);

struct mqo_port_cfg {
    /* AF_PACKET, AF_XDP: the interface. DPDK: a port id ("0") or a device name
     * ("net_af_packet0", a PCI address) among those the EAL arguments make. */
    const char *ifname;
    enum mqo_pktio_backend backend;
    /* DPDK: the EAL arguments (split as a shell would, without expansion), given to
     * rte_eal_init by the first port opened; the ports of a process share them. */
    const char *eal;
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
/* AF_PACKET: no virtio-net header (PACKET_VNET_HDR): no segmentation or checksum offload,
 * frames of at most MQO_FRAME_MAX bytes, or the ring slot's size (super-segments the kernel
 * delivers are dropped as truncated; endpoints must then not send any). */
#define MQO_PORT_NO_VNET 0x4
/* AF_PACKET: receive through a TPACKET_V2 ring (PACKET_MMAP) instead of the socket's queue
 * (recvmmsg). ring_frames sizes either: the ring's slots, or the queue's room. */
#define MQO_PORT_RX_RING 0x8
/* DPDK: reference shared blocks (mqo_frame_attach) on a software device too (net_af_packet,
 * net_af_xdp...), which copies a chained mbuf's segments into its ring anyway: measured to
 * cost more than the copy it saves, so off unless asked for (tests, measurements). */
#define MQO_PORT_SHARE_SW 0x2

struct mqo_port;

/* What a port can do (mqo_port_info.caps). */
/* The device completes the TCP checksum of a frame flagged MQO_FRAME_CSUM_PARTIAL given to
 * tx_burst (whose field holds the pseudo-header sum): no software sum needed. Without it the
 * sender completes the sum first (l2/parse.h mqo_cksum_complete4). */
#define MQO_PORT_CAP_TX_CSUM 0x01
/* The device verifies received TCP checksums: good ones arrive flagged MQO_FRAME_CSUM_VALID. */
#define MQO_PORT_CAP_RX_CSUM 0x02
/* The device segments TCP (TSO): frames flagged MQO_FRAME_TSO of up to tso_max payload bytes,
 * built with mqo_frame_append beyond the frame's own buffer. */
#define MQO_PORT_CAP_TSO 0x04
/* mqo_frame_attach references the block instead of copying it. */
#define MQO_PORT_CAP_EXT 0x08
/* mqo_port_fd has no descriptor: the caller polls rx_burst (DPDK). */
#define MQO_PORT_CAP_POLL 0x10
/* Frames up to MQO_FRAME_LARGE bytes in one buffer (AF_PACKET with the virtio-net header):
 * super-segments received (GRO, a local sender's GSO: MQO_FRAME_TSO with seg_size) and TSO
 * frames built with mqo_frame_append hold all their bytes in data[0..len), so they can also be
 * cut in software (l2/gso.h) for an output that needs wire segments. */
#define MQO_PORT_CAP_LARGE 0x20

struct mqo_port_info {
    const char *backend;   /* "afpacket", "dpdk", "afxdp" */
    char name[64];         /* the interface or DPDK device */
    char detail[160];      /* the PMD, the XDP mode... for the start line */
    unsigned caps;         /* MQO_PORT_CAP_* */
    uint32_t frame_cap;    /* cap of the frames mqo_frame_alloc gives: the largest frame */
    uint32_t tso_max;      /* MQO_PORT_CAP_TSO: the largest TCP payload of a TSO frame */
};

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

/* A fresh frame buffer for a frame the caller builds, NULL when none. cap is the port's
 * frame_cap: MQO_FRAME_MAX for AF_PACKET; DPDK and AF_XDP: at least the interface's MTU plus
 * the Ethernet and VLAN headers (their buffers are device memory sized for the link). */
struct mqo_rawframe *mqo_frame_alloc(struct mqo_port *p);
/* The same for a frame of len bytes: cap is at least len (or the port's frame_cap, when len
 * is larger), and may be less than frame_cap. AF_PACKET gives a frame of up to 448 bytes a
 * 512-byte buffer instead of one for a jumbo frame, so the frames of a fan-out in flight (a
 * burst to thousands of subscribers) hold little; the others give what mqo_frame_alloc does.
 * The frame grows only as mqo_frame_append allows (a TSO frame moves to a large buffer). */
struct mqo_rawframe *mqo_frame_alloc_len(struct mqo_port *p, uint32_t len);
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

/* A block of bytes shared by several frames (a fan-out's payload, the same for every
 * subscriber): put(arg) is called once when the port no longer needs p. */
struct mqo_frame_ext {
    const uint8_t *p;
    uint32_t len;
    void (*put)(void *arg);
    void *arg;
};

/* Appends ext to an allocated frame: its bytes become data[0..len) then ext. A port with
 * MQO_PORT_CAP_EXT references the block (DPDK: an external-buffer mbuf chained after the
 * frame's own, so every subscriber's frame holds only its headers); the others copy it
 * after data (when it fits cap, or as mqo_frame_append does for a TSO frame) and call put at
 * once. Returns 0 (the frame now owns the
 * reference: put is called when it is sent or freed), or -EMSGSIZE / -ENOMEM with nothing
 * changed and put not called. A frame with a block must only be sent or freed. */
int mqo_frame_attach(struct mqo_rawframe *f, const struct mqo_frame_ext *ext);

/* Appends len bytes to an allocated frame: into its own buffer while it has room (f->len
 * grows), then, for a frame flagged MQO_FRAME_TSO on a port with MQO_PORT_CAP_TSO, into
 * buffers chained after it (ext_len grows, MQO_FRAME_CHAIN). Not after mqo_frame_attach.
 * Returns 0, or -EMSGSIZE (no room) / -ENOMEM with the frame unchanged. */
int mqo_frame_append(struct mqo_rawframe *f, const uint8_t *p, uint32_t len);

/* Traffic steering in the device: frames of the hook's traffic keep coming to rx_burst; every
 * other frame goes straight to `peer` in the device (DPDK: rte_flow rules in its switch) or
 * the kernel (AF_XDP: the XDP program redirects it), never reaching the caller. The hook's
 * traffic: IPv4 whose destination (match_dst) or source is ip; where the device can tell
 * (AF_XDP), only TCP with that port, and IPv4 fragments (they carry no port). */
struct mqo_port_steer {
    uint32_t ip;     /* network order */
    uint16_t port;   /* host order; 0: any */
    int match_dst;
    struct mqo_port *peer;
};
/* Installs it. Returns 0, or -ENOTSUP (msg says why: no flow support, the device refused the
 * rules) with every frame still coming to rx_burst. */
int mqo_port_steer(struct mqo_port *p, const struct mqo_port_steer *s, char *msg, size_t msglen);

/* What the port is and can do. */
const struct mqo_port_info *mqo_port_info(const struct mqo_port *p);

/* Descriptor that becomes readable when frames arrive (for poll/epoll); -1 when the port has
 * none (MQO_PORT_CAP_POLL: call rx_burst now and then). */
int mqo_port_fd(const struct mqo_port *p);

/* Counters of the port. */
struct mqo_port_stats {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes, rx_dropped, tx_errors;
    uint64_t rx_truncated; /* larger than a ring slot: dropped (also counted in rx_dropped) */
    uint64_t rx_stalls;    /* rx_burst found the next ring slot still held by the caller */
    uint64_t tx_full;      /* tx_burst returned early: the socket buffer was full */
    uint64_t tx_nobufs;    /* tx_burst returned early: the device's queue was full */
    uint64_t detached;     /* frames copied out of the ring by mqo_frame_detach */
    uint64_t rx_nobufs;    /* DPDK, AF_XDP: frames the device dropped for want of buffers */
    uint64_t ext_frames;   /* frames sent with a shared block (mqo_frame_attach) */
    uint64_t csum_offloaded; /* frames whose TCP checksum the device completed */
    uint64_t tso_frames;     /* frames the device cut into TCP segments (TSO) */
};
void mqo_port_stats(const struct mqo_port *p, struct mqo_port_stats *st);

#endif
