/* pktio/afpacket: the AF_PACKET backend of pktio.h.
 *
 * RX, by default: the socket's receive queue, read with recvmmsg (up to RXQ_BATCH frames a call)
 * into the buffers of the port's frame descriptors. The kernel copies each frame; one longer than
 * MQO_FRAME_MAX goes on into a large buffer given with it (virtio-net header only). PACKET_AUXDATA
 * says what the ring's slot header would have: the checksum state and the VLAN tag. The queue's
 * room (SO_RCVBUFFORCE) is ring_frames times RXQ_FRAME_ROOM bytes, as the kernel counts a queued
 * frame's whole buffer. A frame owns its buffer from the start, so one the caller holds keeps
 * nothing else from arriving and mqo_frame_detach has nothing to do. Timestamps are the time
 * rx_burst read the burst.
 *
 * Why the queue and not the ring: on the lab's machines (a paravirtualized guest) a page of the
 * ring the process has not touched for a while costs a trap into the host on the first load and
 * again on the first store, and a ring that holds a fan-out's ACKs is too large to stay warm.
 * Measured in monitor mode at payload-16384 (1 publisher, 10 subscribers of 16 KiB at 500/s), per
 * frame received, reading it plus giving its slot back: ring of 32 768 slots 0.9 + 2.9 to 3.5 us;
 * 8192: 0.29 + 0.85; 2048: 0.10 + 0.20; 1024: 0.09 + 0.13. The queue: 1.0 to 1.2 us, whatever
 * its room. Rings small enough to stay warm drop the ACK bursts of large fan-outs (ARCHITECTURE.md,
 * pktio), so the ring is an option (MQO_PORT_RX_RING), for hosts where its pages stay cheap.
 *
 * RX with MQO_PORT_RX_RING: a TPACKET_V2 PACKET_MMAP ring (one slot per frame, no block-retire
 * timer: a frame is visible as soon as the kernel wrote it). Frames are handed out zero-copy:
 * struct mqo_rawframe points into the ring slot, which goes back to the kernel when the frame is
 * sent (tx_burst copies or the kernel copies it) or freed. The ring is a FIFO: the kernel fills
 * slots in order and stops at a slot the caller still holds, so a frame kept longer than a burst
 * cycle must be detached (mqo_frame_detach); rx_burst stops at such a slot too (rx_stalls). The
 * kernel's poll() looks at the slot before its head: while the caller holds that one, the
 * descriptor stays readable even when nothing new arrived (a held frame costs wakeups).
 *
 * TX: sendmmsg, one system call per burst; the kernel copies straight from the frame (no copy in
 * user space, zero-copy RX frames included), then the frames go back to their pool or ring. The
 * alternative, a TPACKET_V2 TX ring (copy into the slot, one send() kick per burst), was measured
 * against it and dropped. Frames per CPU-second of the sending process (wall rates are noisy: 2
 * cores shared with other work), veth pair, 2 s runs, 2 runs each:
 *                          64-byte frames     1500-byte frames
 *   sendmmsg               606k, 607k         568k, 567k        <- kept
 *   sendmmsg+qdisc bypass  622k, 618k         484k, 575k
 *   TX ring                581k, 569k         479k, 472k
 *   TX ring+qdisc bypass   595k, 524k         510k, 447k
 * The ring loses: it copies in user space and needs a kick and slot bookkeeping, while the kernel
 * copies the same bytes for sendmmsg anyway. Qdisc bypass is within the noise and hides our frames
 * from tcpdump, so it is an option (MQO_PORT_QDISC_BYPASS), not the default. RX ring, first
 * measured with a ring small enough to stay warm: 1.0M to 1.25M frames per CPU-second of the
 * receiving process (64 bytes; the kernel's copy into the ring is charged to the sender's core on
 * a veth), at 90k to 130k frames/s wall (the rate the sending core reached with its softirq work).
 *
 * Timestamps (ring): the ring's tp_sec/tp_nsec are CLOCK_REALTIME (taken by the kernel at
 * receive). They are converted to CLOCK_MONOTONIC with the offset between the two clocks read once
 * per rx_burst, and clamped to that burst's monotonic now, so the per-frame spacing the kernel saw
 * is kept and a wall-clock step can never put a frame in the future.
 *
 * Checksums: a frame the local stack sent with checksum offload reaches a packet socket with
 * TP_STATUS_CSUMNOTREADY; it is flagged MQO_FRAME_CSUM_PARTIAL. VLAN: the kernel takes the 802.1Q
 * tag out of the bytes (tp_vlan_tci); PACKET_RESERVE (ring) or the buffer's headroom (queue)
 * leaves room in front of the frame so the tag is put back in place (MQO_FRAME_VLAN_RESTORED) and
 * the frame is forwarded as it was on the wire.
 *
 * Shared blocks (mqo_frame_attach): a frame's head and its block are two iovecs of the same
 * sendmmsg message, so the kernel copies the block straight from the shared buffer.
 *
 * Segmentation offload (unless MQO_PORT_NO_VNET): the socket reads and writes every frame after a
 * virtio-net header (PACKET_VNET_HDR, l2/gso.h). On send, a frame flagged MQO_FRAME_TSO leaves as
 * one super-segment the kernel cuts (GSO: on a veth it reaches the peer's stack whole, which takes
 * it as GRO would have made it; toward a device with TSO the device cuts it; otherwise the kernel
 * does, in software, after the qdisc) and a partial checksum is left to the kernel (NEEDS_CSUM):
 * on a veth nobody ever sums it, the receiving stack trusts a partial checksum of its own host.
 * TSO frames are built in a buffer of MQO_FRAME_LARGE bytes (mqo_frame_append moves the frame
 * there: MQO_PORT_CAP_LARGE), from a pool of such buffers kept by the port. On receive, the header
 * says what the frame is: a partial or verified checksum, a super-segment (GRO on the port, or a
 * local sender's GSO). Ring slots are sized for the MTU (32 768 slots of 64 KiB would be 2 GiB); a
 * frame longer than its slot is copied by the kernel into the socket's receive queue as well
 * (PACKET_COPY_THRESH, the slot says TP_STATUS_COPY), from where rx_burst reads it whole into a
 * large buffer, in the ring's order.
 *
 * Not thread-safe: the ports of a process and their frames are used from one thread.
 */
#include "pktio/pktio_int.h"

#include "l2/gso.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RX_RESERVE 4         /* PACKET_RESERVE: room to put a VLAN tag back */
#define BUF_HEADROOM 64      /* in front of a frame in an owned buffer */
#define BLOCK_SIZE (1u << 17) /* ring block: 128 KiB, a power of two of pages */
#define DEFAULT_RING 32768 /* a fan-out's ACKs, tens of thousands, arrive in a burst */
#define DEFAULT_EXTRA 8192
#define BURST_MAX 256        /* frames per sendmmsg call */
#define SNDBUF (4 << 20)
#define RCVBUF (32 << 20)    /* the receive queue of super-segments longer than a slot */
#define BIG_POOL 256         /* large buffers kept for reuse */
/* A frame the caller builds that fits this many bytes (mqo_frame_alloc_len: a fan-out's small
 * delivery, an ACK) gets a buffer of this size instead of one for a jumbo frame: the frames in
 * flight of a burst to thousands of subscribers then hold 512 bytes each, not 9 KiB. */
#define SMALL_CAP (512 - BUF_HEADROOM)

/* RX from the socket's queue: messages per recvmmsg call, and the room for the
 * PACKET_AUXDATA control message of each. */
#define RXQ_BATCH 64
#define RXQ_CMSG CMSG_SPACE(sizeof(struct tpacket_auxdata))
/* The socket's receive buffer: this many bytes per frame the ring would have held (the kernel
 * counts a queued frame's whole buffer: about 1 KiB for an ACK from a local TCP). */
#define RXQ_FRAME_ROOM 2048
#define RXQ_RCVBUF_MAX (1 << 30)

/* Where the V2 header ends and the sockaddr_ll the kernel writes after it. */
#define V2_HDR TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
#define V2_HDRLEN (V2_HDR + sizeof(struct sockaddr_ll))

struct afp_frame {
    struct mqo_rawframe f; /* first: f.priv points back to this */
    struct afp_port *port;
    struct afp_frame *next; /* free list */
    struct afp_frame *all;  /* every descriptor of the port, for close */
    uint8_t *buf;           /* owned buffer (BUF_HEADROOM + MQO_FRAME_MAX) or NULL */
    uint8_t *sbuf;          /* small buffer (BUF_HEADROOM + SMALL_CAP) or NULL: such a descriptor
                             * only serves mqo_frame_alloc_len (free_sbuf), never has buf */
    uint8_t *big;           /* large buffer (BUF_HEADROOM + MQO_FRAME_LARGE) in use, or NULL */
    int32_t slot;           /* RX ring slot held, -1 none */
    struct mqo_frame_ext ext; /* MQO_FRAME_EXT: the block */
};

struct afp_port {
    struct mqo_port base; /* first */
    int fd;
    uint16_t index;
    unsigned flags;
    char ifname[IF_NAMESIZE];
    uint8_t *map;
    size_t map_len;
    uint32_t frame_size;
    /* RX ring */
    uint8_t *rx;
    uint32_t rx_n, rx_head, rx_nheld;
    uint8_t *rx_held; /* per slot: 1 while a frame points into it */
    int ignore_outgoing; /* PACKET_IGNORE_OUTGOING accepted */
    /* RX from the socket's queue (the default; not MQO_PORT_RX_RING) */
    int rxq;
    struct mmsghdr *rmm;
    struct iovec *riov;                 /* three per message: virtio-net header, buffer, spill */
    uint8_t (*rvh)[MQO_VNET_HDR_LEN];   /* a header per message */
    struct sockaddr_ll *rsll;           /* a source address per message (its packet type) */
    uint8_t (*rcmsg)[RXQ_CMSG];         /* the auxiliary data per message */
    struct afp_frame **rxd;             /* the descriptor (with a buffer) each message fills */
    uint8_t **rspill;                   /* a large buffer each message may spill into, or NULL */
    /* sendmmsg */
    struct mmsghdr *mm;
    struct iovec *iov; /* three per message: virtio-net header, head, block */
    uint8_t (*vh)[MQO_VNET_HDR_LEN]; /* a header per message */
    int vnet;          /* PACKET_VNET_HDR on */
    void *big_free;    /* pool of large buffers (a link in their first bytes) */
    unsigned nbig_free;
    /* frame descriptors */
    struct afp_frame *free_nobuf, *free_buf, *free_sbuf, *all;
    uint32_t ndesc, max_desc;
    struct mqo_port_stats st;
};

static inline struct tpacket2_hdr *rx_slot(const struct afp_port *p, uint32_t i)
{
    return (struct tpacket2_hdr *)(p->rx + (size_t)i * p->frame_size);
}

static inline uint32_t status_load(const struct tpacket2_hdr *h)
{
    return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
}

static inline void status_store(struct tpacket2_hdr *h, uint32_t v)
{
    __atomic_store_n(&h->tp_status, v, __ATOMIC_RELEASE);
}

/* ---- frame descriptors ------------------------------------------------------------------- */

static struct afp_frame *desc_new(struct afp_port *p)
{
    if (p->ndesc >= p->max_desc)
        return NULL;
    struct afp_frame *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->port = p;
    d->slot = -1;
    d->f.priv = d;
    d->f.owner = &p->base;
    d->all = p->all;
    p->all = d;
    p->ndesc++;
    return d;
}

static int desc_ensure_buf(struct afp_frame *d)
{
    if (!d->buf) {
        d->buf = malloc(BUF_HEADROOM + MQO_FRAME_MAX);
        if (!d->buf)
            return -ENOMEM;
    }
    return 0;
}

static uint8_t *big_get(struct afp_port *p)
{
    uint8_t *b = p->big_free;
    if (b) {
        memcpy(&p->big_free, b, sizeof(void *));
        p->nbig_free--;
        return b;
    }
    return malloc(BUF_HEADROOM + MQO_FRAME_LARGE);
}

static void big_put(struct afp_port *p, uint8_t *b)
{
    if (p->nbig_free >= BIG_POOL) {
        free(b);
        return;
    }
    memcpy(b, &p->big_free, sizeof(void *));
    p->big_free = b;
    p->nbig_free++;
}

static void slot_release(struct afp_port *p, int32_t slot)
{
    p->rx_held[slot] = 0;
    p->rx_nheld--;
    status_store(rx_slot(p, (uint32_t)slot), TP_STATUS_KERNEL);
}

/* Gives a descriptor (and its ring slot) back to its port. */
static void desc_put(struct afp_frame *d)
{
    struct afp_port *p = d->port;
    if (d->f.flags & MQO_FRAME_EXT) {
        d->f.flags &= (uint16_t)~MQO_FRAME_EXT;
        d->f.ext_len = 0;
        if (d->ext.put)
            d->ext.put(d->ext.arg);
    }
    if (d->slot >= 0) {
        slot_release(p, d->slot);
        d->slot = -1;
    }
    if (d->big) {
        big_put(p, d->big);
        d->big = NULL;
    }
    if (d->sbuf) {
        d->next = p->free_sbuf;
        p->free_sbuf = d;
    } else if (d->buf) {
        d->next = p->free_buf;
        p->free_buf = d;
    } else {
        d->next = p->free_nobuf;
        p->free_nobuf = d;
    }
}

/* A descriptor for a zero-copy frame: one without a buffer first. */
static struct afp_frame *desc_get_rx(struct afp_port *p)
{
    struct afp_frame *d = p->free_nobuf;
    if (d) {
        p->free_nobuf = d->next;
        return d;
    }
    d = p->free_buf;
    if (d) {
        p->free_buf = d->next;
        return d;
    }
    return desc_new(p);
}

/* A fresh, empty frame of cap bytes in buffer b (after its headroom). */
static struct mqo_rawframe *frame_init(const struct afp_port *p, struct afp_frame *d, uint8_t *b,
                                       uint32_t cap)
{
    d->f.data = b + BUF_HEADROOM;
    d->f.len = 0;
    d->f.cap = cap;
    d->f.ts_ns = 0;
    d->f.port = p->index;
    d->f.flags = 0;
    return &d->f;
}

/* A descriptor with a buffer of its class (small: SMALL_CAP, else MQO_FRAME_MAX): one of the
 * class's pool, or a descriptor without a buffer given one. NULL: none, or no memory. */
static struct afp_frame *desc_with_buf(struct afp_port *p, int small)
{
    struct afp_frame **pool = small ? &p->free_sbuf : &p->free_buf;
    struct afp_frame *d = *pool;
    if (d) {
        *pool = d->next;
        return d;
    }
    d = p->free_nobuf;
    if (d)
        p->free_nobuf = d->next;
    else if (!(d = desc_new(p)))
        return NULL;
    int r = small ? ((d->sbuf = malloc(BUF_HEADROOM + SMALL_CAP)) ? 0 : -ENOMEM) : desc_ensure_buf(d);
    if (r) {
        d->next = p->free_nobuf;
        p->free_nobuf = d;
        return NULL;
    }
    return d;
}

static struct mqo_rawframe *afp_alloc(struct mqo_port *port)
{
    struct afp_port *p = (struct afp_port *)port;
    struct afp_frame *d = desc_with_buf(p, 0);
    return d ? frame_init(p, d, d->buf, MQO_FRAME_MAX) : NULL;
}

static struct mqo_rawframe *afp_alloc_len(struct mqo_port *port, uint32_t len)
{
    struct afp_port *p = (struct afp_port *)port;
    if (len > SMALL_CAP)
        return afp_alloc(port);
    struct afp_frame *d = desc_with_buf(p, 1);
    return d ? frame_init(p, d, d->sbuf, SMALL_CAP) : NULL;
}

static void afp_free(struct mqo_rawframe *f) { desc_put(f->priv); }

static int afp_attach(struct mqo_rawframe *f, const struct mqo_frame_ext *ext)
{
    struct afp_frame *d = f->priv;
    uint32_t max = d->port->vnet && (f->flags & MQO_FRAME_TSO) ? MQO_FRAME_LARGE : MQO_FRAME_MAX;
    if ((uint64_t)f->len + ext->len > max)
        return -EMSGSIZE;
    d->ext = *ext;
    f->ext_len = ext->len;
    f->flags |= MQO_FRAME_EXT;
    return 0;
}

/* A TSO frame past its buffer: it moves to a large one (MQO_PORT_CAP_LARGE). */
static int afp_append(struct mqo_rawframe *f, const uint8_t *src, uint32_t len)
{
    struct afp_frame *d = f->priv;
    struct afp_port *p = d->port;
    if (!p->vnet || (uint64_t)f->len + len > MQO_FRAME_LARGE)
        return -EMSGSIZE;
    if (!d->big) {
        uint8_t *b = big_get(p);
        if (!b)
            return -ENOMEM;
        memcpy(b + BUF_HEADROOM, f->data, f->len);
        if (d->slot >= 0) {
            slot_release(p, d->slot);
            d->slot = -1;
        }
        d->big = b;
        f->data = b + BUF_HEADROOM;
        f->cap = MQO_FRAME_LARGE;
    }
    memcpy(f->data + f->len, src, len);
    f->len += len;
    return 0;
}

static int afp_detach(struct mqo_rawframe *f)
{
    struct afp_frame *d = f->priv;
    if (d->slot < 0)
        return 0;
    if (f->len > MQO_FRAME_MAX) { /* a super-segment in a slot (jumbo MTU): a large buffer */
        uint8_t *b = big_get(d->port);
        if (!b)
            return -ENOMEM;
        memcpy(b + BUF_HEADROOM, f->data, f->len);
        f->data = b + BUF_HEADROOM;
        f->cap = MQO_FRAME_LARGE;
        d->big = b;
        slot_release(d->port, d->slot);
        d->slot = -1;
        d->port->st.detached++;
        return 0;
    }
    if (desc_ensure_buf(d))
        return -ENOMEM;
    uint32_t len = f->len <= MQO_FRAME_MAX ? f->len : MQO_FRAME_MAX;
    memcpy(d->buf + BUF_HEADROOM, f->data, len);
    f->data = d->buf + BUF_HEADROOM;
    f->len = len;
    f->cap = MQO_FRAME_MAX;
    slot_release(d->port, d->slot);
    d->slot = -1;
    d->port->st.detached++;
    return 0;
}

/* ---- open / close ------------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, int e, const char *ifname, const char *what)
{
    snprintf(err, errlen, "%s: %s: %s", ifname, what, strerror(e));
    return -e;
}

static const struct mqo_pktio_ops afp_ops;
static void afp_close(struct mqo_port *port);
static int rxq_open(struct afp_port *p, char *err, size_t errlen);

int mqo_afp_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err, size_t errlen)
{
    const char *ifname = cfg->ifname ? cfg->ifname : "";
    unsigned ifindex;
    int r = mqo_pktio_ifindex(ifname, &ifindex, err, errlen);
    if (r)
        return r;
    struct afp_port *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", ifname);
        return -ENOMEM;
    }
    p->base.ops = &afp_ops;
    p->base.info.backend = "afpacket";
    snprintf(p->base.info.name, sizeof p->base.info.name, "%s", ifname);
    p->base.info.caps = MQO_PORT_CAP_EXT;
    p->base.info.frame_cap = MQO_FRAME_MAX;
    p->fd = -1;
    p->index = cfg->index;
    p->flags = cfg->flags;
    strcpy(p->ifname, ifname);

    /* Protocol 0: the socket receives nothing until bind() names the interface, so the ring
     * never holds frames of other interfaces. */
    p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (p->fd < 0) {
        r = fail(err, errlen, errno, ifname, "socket(AF_PACKET)");
        goto out;
    }
    int v = TPACKET_V2;
    if (setsockopt(p->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v)) {
        r = fail(err, errlen, errno, ifname, "PACKET_VERSION");
        goto out;
    }
    /* the virtio-net header must be asked for before the ring exists; a kernel without it
     * (or a socket that refuses it) runs without offloads */
    v = 1;
    p->vnet = !(cfg->flags & MQO_PORT_NO_VNET) &&
              setsockopt(p->fd, SOL_PACKET, PACKET_VNET_HDR, &v, sizeof v) == 0;
    v = RX_RESERVE;
    if (setsockopt(p->fd, SOL_PACKET, PACKET_RESERVE, &v, sizeof v)) {
        r = fail(err, errlen, errno, ifname, "PACKET_RESERVE");
        goto out;
    }

    /* Slot size from the MTU: header, sockaddr_ll, reserve, Ethernet header and a VLAN tag. */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, ifname);
    unsigned mtu = 1500;
    if (ioctl(p->fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
        mtu = (unsigned)ifr.ifr_mtu;
    if (mtu > MQO_FRAME_MAX - 18)
        mtu = MQO_FRAME_MAX - 18;
    unsigned need = (unsigned)TPACKET_ALIGN(V2_HDRLEN + 16) + RX_RESERVE +
                    (p->vnet ? MQO_VNET_HDR_LEN : 0) + mtu + 18;
    p->frame_size = 2048;
    while (p->frame_size < need)
        p->frame_size <<= 1;
    uint32_t want = cfg->ring_frames ? cfg->ring_frames : DEFAULT_RING;
    if (want < 64)
        want = 64;
    if (want > (1u << 20))
        want = 1u << 20;
    p->rxq = !(cfg->flags & MQO_PORT_RX_RING);
    if (p->rxq) {
        r = rxq_open(p, err, errlen);
        if (r)
            goto out;
        goto ring_done;
    }
    unsigned per_block = BLOCK_SIZE / p->frame_size;
    unsigned blocks = (want + per_block - 1) / per_block;
    p->rx_n = blocks * per_block;
    struct tpacket_req req = {
        .tp_block_size = BLOCK_SIZE,
        .tp_block_nr = blocks,
        .tp_frame_size = p->frame_size,
        .tp_frame_nr = p->rx_n,
    };
    if (setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req)) {
        r = fail(err, errlen, errno, ifname, "PACKET_RX_RING");
        goto out;
    }
    p->map_len = (size_t)blocks * BLOCK_SIZE;
    p->map = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, p->fd, 0);
    if (p->map == MAP_FAILED) {
        p->map = NULL;
        r = fail(err, errlen, errno, ifname, "mmap of the packet ring");
        goto out;
    }
    p->rx = p->map;
    p->rx_held = calloc(p->rx_n, 1);
    if (!p->rx_held) {
        r = fail(err, errlen, ENOMEM, ifname, "allocating the port");
        goto out;
    }
    p->max_desc = p->rx_n + (cfg->max_frames ? cfg->max_frames : DEFAULT_EXTRA);
ring_done:
    if (p->rxq)
        p->max_desc = want + (cfg->max_frames ? cfg->max_frames : DEFAULT_EXTRA);
    p->mm = calloc(BURST_MAX, sizeof *p->mm);
    p->iov = calloc(3 * BURST_MAX, sizeof *p->iov);
    p->vh = calloc(BURST_MAX, sizeof *p->vh);
    if (!p->mm || !p->iov || !p->vh) {
        r = fail(err, errlen, ENOMEM, ifname, "allocating the port");
        goto out;
    }

    /* Our own transmissions would come back as PACKET_OUTGOING: not wanted (older kernels
     * without the option: rx_burst skips them by sll_pkttype). */
    v = 1;
    p->ignore_outgoing = setsockopt(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &v, sizeof v) == 0;
    if (p->flags & MQO_PORT_QDISC_BYPASS) {
        v = 1;
        if (setsockopt(p->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof v)) {
            r = fail(err, errlen, errno, ifname, "PACKET_QDISC_BYPASS");
            goto out;
        }
    }
    /* A larger send buffer keeps a burst from hitting EAGAIN while the device drains; as
     * root SO_SNDBUFFORCE passes the wmem_max cap, else the capped value is fine. */
    v = SNDBUF;
    if (setsockopt(p->fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v))
        (void)setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    if (p->rxq) {
        /* every frame waits in the socket's queue: room for the ring's count of them */
        size_t want_buf = (size_t)want * RXQ_FRAME_ROOM;
        v = want_buf > (size_t)RXQ_RCVBUF_MAX ? RXQ_RCVBUF_MAX : (int)want_buf;
        if (v < RCVBUF)
            v = RCVBUF;
        if (setsockopt(p->fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v))
            (void)setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (p->vnet) {
        /* frames longer than a slot: also queued on the socket, read whole by rx_burst */
        v = 1;
        if (!p->rxq && setsockopt(p->fd, SOL_PACKET, PACKET_COPY_THRESH, &v, sizeof v) == 0) {
            v = RCVBUF;
            if (setsockopt(p->fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v))
                (void)setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
        }
        p->base.info.caps |= MQO_PORT_CAP_TX_CSUM | MQO_PORT_CAP_TSO | MQO_PORT_CAP_LARGE;
        p->base.info.tso_max = 64000;
    }

    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = (int)ifindex,
    };
    if (bind(p->fd, (struct sockaddr *)&sll, sizeof sll)) {
        r = fail(err, errlen, errno, ifname, "bind");
        goto out;
    }
    if (cfg->promisc) {
        /* A membership is per socket and dropped by the kernel when the socket closes. */
        struct packet_mreq mr = {.mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_PROMISC};
        if (setsockopt(p->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr)) {
            r = fail(err, errlen, errno, ifname, "promiscuous mode");
            goto out;
        }
    }
    if (p->rxq)
        snprintf(p->base.info.detail, sizeof p->base.info.detail,
                 "socket queue (recvmmsg) for %u frames, %s", want,
                 p->vnet ? "GSO and checksum offload (virtio-net header)" : "no offloads");
    else
        snprintf(p->base.info.detail, sizeof p->base.info.detail,
                 "TPACKET_V2 ring of %u slots, %s", p->rx_n,
                 p->vnet ? "GSO and checksum offload (virtio-net header)" : "no offloads");
    *out = &p->base;
    return 0;
out:
    afp_close(&p->base);
    return r;
}

static void afp_close(struct mqo_port *port)
{
    struct afp_port *p = (struct afp_port *)port;
    struct afp_frame *d = p->all;
    while (d) {
        struct afp_frame *n = d->all;
        free(d->buf);
        free(d->sbuf);
        free(d->big);
        free(d);
        d = n;
    }
    if (p->map)
        munmap(p->map, p->map_len);
    if (p->fd >= 0)
        close(p->fd);
    free(p->rx_held);
    if (p->rspill)
        for (unsigned i = 0; i < RXQ_BATCH; i++)
            free(p->rspill[i]);
    free(p->rmm);
    free(p->riov);
    free(p->rvh);
    free(p->rsll);
    free(p->rcmsg);
    free(p->rxd);
    free(p->rspill);
    free(p->mm);
    free(p->iov);
    free(p->vh);
    while (p->big_free) {
        void *b = p->big_free;
        memcpy(&p->big_free, b, sizeof(void *));
        free(b);
    }
    free(p);
}

static int afp_fd(const struct mqo_port *p) { return ((const struct afp_port *)p)->fd; }

static void read_kernel_drops(struct afp_port *p)
{
    struct tpacket_stats ks;
    socklen_t l = sizeof ks;
    /* reading resets the kernel's counters: accumulate */
    if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &ks, &l) == 0)
        p->st.rx_dropped += ks.tp_drops;
}

static void afp_stats(const struct mqo_port *port, struct mqo_port_stats *st)
{
    /* The port is never const underneath: the kernel's counters must be folded into it. */
    struct afp_port *p = (struct afp_port *)port;
    read_kernel_drops(p);
    *st = p->st;
}

/* ---- RX ---------------------------------------------------------------------------------- */

static uint64_t ts_of(const struct timespec *t)
{
    return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

/* The virtio-net header the kernel wrote before a frame: its flags (l2/gso.h). 0, or -1 when
 * the header contradicts the frame (dropped). */
static int vnet_flags(struct afp_frame *d, const uint8_t *vhp)
{
    struct mqo_vnet_hdr vh;
    uint16_t fl, seg;
    mqo_vnet_load(&vh, vhp);
    if (mqo_vnet_rx(&vh, d->f.data, d->f.len, &fl, &seg))
        return -1;
    d->f.flags = (uint16_t)((d->f.flags & ~(MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_CSUM_VALID)) | fl);
    d->f.seg_size = seg;
    return 0;
}

/* A frame longer than its slot, which the kernel also queued whole on the socket
 * (TP_STATUS_COPY): read into a large buffer of d. The queue holds these frames in the ring's
 * order, one per such slot. Returns 0, or -1 when the frame is lost (counted). */
static int rx_copy(struct afp_port *p, struct afp_frame *d, const struct tpacket2_hdr *h,
                   uint32_t status)
{
    uint8_t vh[MQO_VNET_HDR_LEN], scratch[1];
    uint8_t *b = big_get(p);
    struct iovec iov[2] = {{vh, sizeof vh},
                           {b ? b + BUF_HEADROOM : scratch, b ? MQO_FRAME_LARGE - 4 : 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t r;
    do
        r = recvmsg(p->fd, &mh, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (!b || r < (ssize_t)sizeof vh + 14 || (mh.msg_flags & MSG_TRUNC)) {
        if (b)
            big_put(p, b);
        p->st.rx_truncated++;
        p->st.rx_dropped++;
        return -1;
    }
    d->big = b;
    uint8_t *data = b + BUF_HEADROOM;
    uint32_t len = (uint32_t)(r - (ssize_t)sizeof vh);
    d->f.flags = 0;
    if (status & TP_STATUS_VLAN_VALID) {
        uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) && h->tp_vlan_tpid ? h->tp_vlan_tpid
                                                                               : ETH_P_8021Q;
        memmove(data - 4, data, 12);
        data -= 4;
        uint8_t tag[4] = {(uint8_t)(tpid >> 8), (uint8_t)tpid, (uint8_t)(h->tp_vlan_tci >> 8),
                          (uint8_t)h->tp_vlan_tci};
        memcpy(data + 12, tag, 4);
        len += 4;
        d->f.flags |= MQO_FRAME_VLAN_RESTORED;
    }
    d->f.data = data;
    d->f.len = len;
    d->f.cap = MQO_FRAME_LARGE;
    if (vnet_flags(d, vh)) {
        big_put(p, b);
        d->big = NULL;
        p->st.rx_dropped++;
        return -1;
    }
    return 0;
}

/* ---- RX from the socket's queue (without MQO_PORT_RX_RING) ------------------------------ */

static int rxq_open(struct afp_port *p, char *err, size_t errlen)
{
    p->rmm = calloc(RXQ_BATCH, sizeof *p->rmm);
    p->riov = calloc(3 * RXQ_BATCH, sizeof *p->riov);
    p->rvh = calloc(RXQ_BATCH, sizeof *p->rvh);
    p->rsll = calloc(RXQ_BATCH, sizeof *p->rsll);
    p->rcmsg = calloc(RXQ_BATCH, sizeof *p->rcmsg);
    p->rxd = calloc(RXQ_BATCH, sizeof *p->rxd);
    p->rspill = calloc(RXQ_BATCH, sizeof *p->rspill);
    if (!p->rmm || !p->riov || !p->rvh || !p->rsll || !p->rcmsg || !p->rxd || !p->rspill)
        return fail(err, errlen, ENOMEM, p->ifname, "allocating the port");
    /* the VLAN tag and the checksum state, which the ring's slot header carried */
    int v = 1;
    if (setsockopt(p->fd, SOL_PACKET, PACKET_AUXDATA, &v, sizeof v))
        return fail(err, errlen, errno, p->ifname, "PACKET_AUXDATA");
    return 0;
}

/* Prepares message i of a recvmmsg call: its descriptor (with a buffer) and, with the
 * virtio-net header, a large buffer the kernel continues in when the frame is longer than the
 * descriptor's. 0, or -1 when no descriptor is left. */
static int rxq_prep(struct afp_port *p, unsigned i)
{
    if (!p->rxd[i] && !(p->rxd[i] = desc_with_buf(p, 0)))
        return -1;
    if (p->vnet && !p->rspill[i])
        p->rspill[i] = big_get(p); /* NULL: such a frame is lost as truncated */
    struct iovec *iov = &p->riov[3 * i];
    size_t k = 0;
    if (p->vnet) {
        iov[k].iov_base = p->rvh[i];
        iov[k++].iov_len = MQO_VNET_HDR_LEN;
    }
    iov[k].iov_base = p->rxd[i]->buf + BUF_HEADROOM;
    iov[k++].iov_len = MQO_FRAME_MAX;
    if (p->vnet && p->rspill[i]) {
        iov[k].iov_base = p->rspill[i] + BUF_HEADROOM + MQO_FRAME_MAX;
        iov[k++].iov_len = MQO_FRAME_LARGE - MQO_FRAME_MAX;
    }
    struct msghdr *mh = &p->rmm[i].msg_hdr;
    mh->msg_name = &p->rsll[i];
    mh->msg_namelen = sizeof p->rsll[i];
    mh->msg_iov = iov;
    mh->msg_iovlen = k;
    mh->msg_control = p->rcmsg[i];
    mh->msg_controllen = RXQ_CMSG;
    mh->msg_flags = 0;
    return 0;
}

/* Message i of the last recvmmsg, received as `got` bytes: the frame in p->rxd[i] (taken out
 * of the batch), or NULL when the message is dropped (the descriptor stays for the next). */
static struct afp_frame *rxq_take(struct afp_port *p, unsigned i, uint32_t got)
{
    const struct msghdr *mh = &p->rmm[i].msg_hdr;
    uint32_t vhl = p->vnet ? MQO_VNET_HDR_LEN : 0;
    if (!p->ignore_outgoing && p->rsll[i].sll_pkttype == PACKET_OUTGOING)
        return NULL;
    if ((mh->msg_flags & MSG_TRUNC) || got < vhl + 14) {
        p->st.rx_truncated += (mh->msg_flags & MSG_TRUNC) != 0;
        p->st.rx_dropped++;
        return NULL;
    }
    struct tpacket_auxdata aux = {0};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c))
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
            c->cmsg_len >= CMSG_LEN(sizeof aux))
            memcpy(&aux, CMSG_DATA(c), sizeof aux);
    struct afp_frame *d = p->rxd[i];
    p->rxd[i] = NULL;
    uint32_t len = got - vhl, max = MQO_FRAME_MAX;
    uint8_t *data = d->buf + BUF_HEADROOM;
    if (len > MQO_FRAME_MAX) {
        /* it went on into the large buffer: the first part joins it there */
        uint8_t *b = p->rspill[i];
        p->rspill[i] = NULL;
        memcpy(b + BUF_HEADROOM, data, MQO_FRAME_MAX);
        d->big = b;
        data = b + BUF_HEADROOM;
        max = MQO_FRAME_LARGE;
    }
    uint16_t flags = 0;
    if (aux.tp_status & TP_STATUS_CSUMNOTREADY)
        flags |= MQO_FRAME_CSUM_PARTIAL;
    if (aux.tp_status & TP_STATUS_CSUM_VALID)
        flags |= MQO_FRAME_CSUM_VALID;
    if (aux.tp_status & TP_STATUS_VLAN_VALID) {
        if (len + 4 > max) {
            /* forwarding it untagged would move it to another VLAN: drop */
            p->st.rx_dropped++;
            desc_put(d);
            return NULL;
        }
        uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) && aux.tp_vlan_tpid
                            ? aux.tp_vlan_tpid
                            : ETH_P_8021Q;
        uint8_t tag[4] = {(uint8_t)(tpid >> 8), (uint8_t)tpid, (uint8_t)(aux.tp_vlan_tci >> 8),
                          (uint8_t)aux.tp_vlan_tci};
        memmove(data - 4, data, 12); /* into the headroom */
        data -= 4;
        memcpy(data + 12, tag, 4);
        len += 4;
        flags |= MQO_FRAME_VLAN_RESTORED;
    }
    d->f.data = data;
    d->f.len = len;
    d->f.cap = max;
    d->f.flags = flags;
    d->f.seg_size = 0;
    if (p->vnet && vnet_flags(d, p->rvh[i])) {
        p->st.rx_dropped++;
        desc_put(d);
        return NULL;
    }
    return d;
}

/* rx_burst without a ring: one recvmmsg, the kernel copying each frame into a buffer of its
 * descriptor. */
static int rxq_burst(struct afp_port *p, struct mqo_rawframe **v, int n)
{
    unsigned m = (unsigned)(n < RXQ_BATCH ? n : RXQ_BATCH), ready = 0;
    while (ready < m && rxq_prep(p, ready) == 0)
        ready++;
    if (!ready)
        return 0; /* every descriptor is out: the frames wait in the queue */
    int r;
    do
        r = recvmmsg(p->fd, p->rmm, ready, MSG_DONTWAIT, NULL);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return 0;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int k = 0;
    for (unsigned i = 0; i < (unsigned)r; i++) {
        struct afp_frame *d = rxq_take(p, i, p->rmm[i].msg_len);
        if (!d)
            continue;
        d->f.port = p->index;
        d->f.ts_ns = ts_of(&t);
        p->st.rx_frames++;
        p->st.rx_bytes += d->f.len;
        v[k++] = &d->f;
    }
    return k;
}

/* ---- RX from the ring (MQO_PORT_RX_RING) -------------------------------------------------- */

static int afp_rx_burst(struct mqo_port *port, struct mqo_rawframe **v, int n)
{
    struct afp_port *p = (struct afp_port *)port;
    if (p->rxq)
        return rxq_burst(p, v, n);
    int k = 0;
    uint64_t mono = 0, offset = 0;
    int have_clock = 0;
    while (k < n) {
        uint32_t i = p->rx_head;
        if (p->rx_held[i]) {
            /* the caller still holds the slot the kernel fills next */
            p->st.rx_stalls++;
            break;
        }
        struct tpacket2_hdr *h = rx_slot(p, i);
        uint32_t status = status_load(h);
        if (!(status & TP_STATUS_USER))
            break;
        if (status & TP_STATUS_LOSING)
            read_kernel_drops(p);
        const struct sockaddr_ll *sll = (const void *)((uint8_t *)h + V2_HDR);
        if (!p->ignore_outgoing && sll->sll_pkttype == PACKET_OUTGOING) {
            p->rx_head = (i + 1 == p->rx_n) ? 0 : i + 1;
            status_store(h, TP_STATUS_KERNEL);
            continue;
        }
        int copied = 0;
        struct afp_frame *d = NULL;
        if (h->tp_snaplen < h->tp_len || h->tp_mac + h->tp_snaplen > p->frame_size) {
            if ((status & TP_STATUS_COPY) && p->vnet) {
                d = desc_get_rx(p);
                if (!d)
                    break; /* every descriptor is out: the frame waits in the ring */
                copied = rx_copy(p, d, h, status) == 0;
            } else {
                p->st.rx_truncated++;
                p->st.rx_dropped++;
            }
            if (!copied) {
                if (d)
                    desc_put(d);
                p->rx_head = (i + 1 == p->rx_n) ? 0 : i + 1;
                status_store(h, TP_STATUS_KERNEL);
                continue;
            }
        }
        if (!d)
            d = desc_get_rx(p);
        if (!d)
            break; /* every descriptor is out: the frame waits in the ring */
        p->rx_head = (i + 1 == p->rx_n) ? 0 : i + 1;
        if (copied)
            goto stamp; /* the slot holds only the head: it goes back once its time is read */
        uint8_t *data = (uint8_t *)h + h->tp_mac;
        uint32_t len = h->tp_snaplen;
        uint16_t flags = 0;
        uint8_t vh[MQO_VNET_HDR_LEN];
        if (p->vnet) /* before the frame: read before a VLAN tag is put back over it */
            memcpy(vh, data - MQO_VNET_HDR_LEN, sizeof vh);
        if (status & TP_STATUS_CSUMNOTREADY)
            flags |= MQO_FRAME_CSUM_PARTIAL;
        if (status & TP_STATUS_CSUM_VALID)
            flags |= MQO_FRAME_CSUM_VALID;
        d->slot = (int32_t)i;
        p->rx_held[i] = 1;
        p->rx_nheld++;
        if (status & TP_STATUS_VLAN_VALID) {
            uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) && h->tp_vlan_tpid
                                ? h->tp_vlan_tpid
                                : ETH_P_8021Q;
            uint8_t tag[4] = {(uint8_t)(tpid >> 8), (uint8_t)tpid, (uint8_t)(h->tp_vlan_tci >> 8),
                              (uint8_t)h->tp_vlan_tci};
            int ok = 0;
            if (len < 12) {
                /* nothing to put a tag into */
            } else if (h->tp_mac >= V2_HDRLEN + 4) {
                /* in place: PACKET_RESERVE left the room, past the sockaddr_ll */
                memmove(data - 4, data, 12);
                data -= 4;
                memcpy(data + 12, tag, 4);
                ok = 1;
            } else if (len + 4 <= MQO_FRAME_MAX && desc_ensure_buf(d) == 0) {
                uint8_t *b = d->buf + BUF_HEADROOM;
                memcpy(b, data, 12);
                memcpy(b + 12, tag, 4);
                memcpy(b + 16, data + 12, len - 12);
                data = b;
                slot_release(p, d->slot);
                d->slot = -1;
                ok = 1;
            }
            if (!ok) {
                /* forwarding it untagged would move it to another VLAN: drop */
                p->st.rx_dropped++;
                desc_put(d);
                continue;
            }
            len += 4;
            flags |= MQO_FRAME_VLAN_RESTORED;
        }
        struct mqo_rawframe *f = &d->f;
        f->data = data;
        f->len = len;
        f->cap = d->slot >= 0 ? (uint32_t)(p->frame_size - (uint32_t)(data - (uint8_t *)h))
                              : MQO_FRAME_MAX;
        f->flags = flags;
        f->seg_size = 0;
        if (p->vnet && vnet_flags(d, vh)) {
            p->st.rx_dropped++;
            desc_put(d);
            continue;
        }
    stamp:
        f = &d->f;
        f->port = p->index;
        if (!have_clock) {
            struct timespec m, r;
            clock_gettime(CLOCK_MONOTONIC, &m);
            clock_gettime(CLOCK_REALTIME, &r);
            mono = ts_of(&m);
            offset = mono - ts_of(&r); /* mod 2^64: works whichever clock is larger */
            have_clock = 1;
        }
        uint64_t real = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
        uint64_t ts = h->tp_sec ? real + offset : mono;
        f->ts_ns = (int64_t)(ts - mono) > 0 ? mono : ts;
        if (copied)
            status_store(h, TP_STATUS_KERNEL);
        p->st.rx_frames++;
        p->st.rx_bytes += f->len;
        v[k++] = f;
    }
    return k;
}

/* ---- TX ---------------------------------------------------------------------------------- */

static int sendmmsg_burst(struct afp_port *p, struct mqo_rawframe **v, int n)
{
    int done = 0;
    while (done < n) {
        int m = n - done < BURST_MAX ? n - done : BURST_MAX;
        for (int i = 0; i < m; i++) {
            struct mqo_rawframe *f = v[done + i];
            struct iovec *iov = &p->iov[3 * i];
            size_t k = 0;
            memset(&p->mm[i], 0, sizeof p->mm[i]);
            if (p->vnet) {
                /* what the kernel is left to do (built again, the same, if the frame waits) */
                struct mqo_vnet_hdr vh;
                if (mqo_vnet_tx(&vh, f->data, f->len, f->len + f->ext_len, f->flags,
                                f->seg_size) < 0)
                    memset(&vh, 0, sizeof vh); /* longer than the MTU: refused, dropped */
                mqo_vnet_store(&vh, p->vh[i]);
                iov[k].iov_base = p->vh[i];
                iov[k++].iov_len = MQO_VNET_HDR_LEN;
            }
            iov[k].iov_base = f->data;
            iov[k++].iov_len = f->len;
            if (f->flags & MQO_FRAME_EXT) {
                const struct afp_frame *d = f->priv;
                iov[k].iov_base = (void *)d->ext.p;
                iov[k++].iov_len = d->ext.len;
            }
            p->mm[i].msg_hdr.msg_iov = iov;
            p->mm[i].msg_hdr.msg_iovlen = k;
        }
        int r = sendmmsg(p->fd, p->mm, (unsigned)m, MSG_DONTWAIT);
        if (r > 0) {
            for (int i = 0; i < r; i++) {
                struct mqo_rawframe *f = v[done + i];
                p->st.tx_frames++;
                p->st.tx_bytes += f->len + f->ext_len;
                p->st.ext_frames += (f->flags & MQO_FRAME_EXT) != 0;
                if (p->vnet) {
                    p->st.csum_offloaded += p->vh[i][0] != 0;
                    p->st.tso_frames += p->vh[i][1] != 0;
                }
                mqo_frame_free(f);
            }
            done += r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            p->st.tx_full++;
            break; /* socket buffer full: the caller keeps the rest */
        }
        if (r < 0 && errno == ENOBUFS) {
            /* The device's queue (a qdisc, or a veth peer's backlog) had no room for the first
             * frame and dropped the kernel's copy. The frame is still ours: the caller keeps
             * it and the rest, and sends them again once the device drained (the socket
             * buffer may have room all along, so POLLOUT does not say when: retry soon). */
            p->st.tx_nobufs++;
            break;
        }
        /* The first frame failed for itself (EMSGSIZE, ENETDOWN, ENXIO...): it is taken and
         * dropped, so a frame that can never be sent cannot block the port. */
        p->st.tx_errors++;
        mqo_frame_free(v[done]);
        done++;
    }
    return done;
}

static int afp_tx_burst(struct mqo_port *port, struct mqo_rawframe **v, int n)
{
    return sendmmsg_burst((struct afp_port *)port, v, n);
}

static const struct mqo_pktio_ops afp_ops = {
    .name = "afpacket",
    .close = afp_close,
    .rx_burst = afp_rx_burst,
    .tx_burst = afp_tx_burst,
    .alloc = afp_alloc,
    .alloc_len = afp_alloc_len,
    .free = afp_free,
    .detach = afp_detach,
    .fd = afp_fd,
    .stats = afp_stats,
    .attach = afp_attach,
    .append = afp_append,
};
