/* pktio/afxdp: the AF_XDP backend of pktio.h, built when pkg-config finds libxdp and libbpf
 * (Debian's libxdp-dev, libbpf-dev).
 *
 * One UMEM per port (an anonymous mapping cut into chunks of 2 KiB, 4 KiB for an MTU above
 * 1774), its fill and completion rings, and one XDP socket on receive queue 0. Every frame
 * is a chunk of its port's UMEM: a received one where the kernel wrote it, an allocated one
 * (mqo_frame_alloc) a free chunk the caller writes into, so a frame the bump builds for a
 * port is sent from where it was built. A frame received on the other port is copied into a
 * chunk of this one when sent (one UMEM per port: the kernel copies anyway in copy mode, and
 * a port's chunks go back to it only through its own rings). Chunks held by the caller are
 * taken from the pool the fill ring is refilled from, not from a FIFO, so holding a frame
 * never stops reception and detach has nothing to do; the pool has room for the frames the
 * loop's queues hold beyond the rings.
 *
 * The XDP program (xdp_prog.c, assembled here: no BPF compiler at build time) first sends
 * every frame of the queue to the socket through an XSKMAP (bpf_redirect_map), or to the
 * kernel (XDP_PASS) when no socket is bound there. mqo_port_steer then replaces it (a link
 * update) with one that sends only what the splice needs to the socket and every other frame
 * to the peer port through a DEVMAP: the kernel forwards those, port to port, and they never
 * reach the loop. The program is attached with a BPF link, which the kernel removes when the
 * descriptor closes, also when the process dies: no program is left on an interface. Driver
 * mode first, generic (skb) mode when the driver has no XDP; the socket binds zero-copy when
 * the driver supports it, copy mode otherwise (veth: copy).
 *
 * Steering and the XDP mode: in driver mode a redirected frame goes to the target's driver
 * (ndo_xdp_xmit). A veth hands it to its peer only when that peer runs NAPI (an XDP program
 * or GRO on it), which mqoff cannot see (the peer is another host's interface, in the lab
 * another namespace): the frame would be dropped. Generic mode sends it through the target's
 * transmit path, which every device takes. So a port whose peer is a veth, or a driver
 * without XDP, is switched to generic mode for steering (measured here: docs/BENCHMARKS.md);
 * a zero-copy socket cannot take generic mode's frames, and such a port is not steered.
 *
 * Receive queues: the socket reads queue 0; an interface with more receive queues is refused
 * (frames on the others would not reach mqoff): ethtool -L IF combined 1.
 *
 * TX: descriptors on the TX ring, then sendto() to make the kernel send them (copy mode sends
 * at most 32 per call: repeated while it says there are more); completed chunks go back to
 * the pool. A full TX ring, or no free chunk for a copy, ends the burst early: the caller
 * keeps the rest. The socket's descriptor polls readable when frames arrived.
 *
 * Promiscuous mode: a packet socket membership, dropped by the kernel when the process ends.
 * No receive timestamps (the time of rx_burst), no checksum or VLAN metadata: frames are the
 * bytes the XDP program saw.
 *
 * Not thread-safe: the ports of a process and their frames are used from one thread.
 */
#include "pktio/pktio_int.h"

#include "pktio/xdp_prog.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#define DEFAULT_RING 4096
#define TX_RING 2048
#define HELD_EXTRA 8192   /* chunks beyond the rings: frames the loop holds (its queues) */
#define TX_HEADROOM 64    /* in front of an allocated frame */
#define KICK_MAX 64       /* sendto calls per kick at most (32 frames each) */

struct xsk_frame {
    struct mqo_rawframe f;
    int in_tx; /* on the TX ring until its completion */
};

struct xsk_port {
    struct mqo_port base; /* first */
    uint16_t index;
    unsigned ifindex;
    char ifname[IF_NAMESIZE];
    uint8_t *area;
    size_t area_len;
    uint32_t chunk;   /* chunk size, a power of two */
    uint32_t nchunks;
    struct xsk_umem *umem;
    struct xsk_ring_prod fq, tx;
    struct xsk_ring_cons cq, rx;
    struct xsk_socket *xsk;
    uint32_t ring;    /* RX and fill ring size */
    struct xsk_frame *frames; /* one per chunk */
    uint32_t *pool;   /* free chunk indexes (a stack) */
    uint32_t npool;
    uint32_t tx_pending; /* descriptors submitted and not completed */
    int map_fd, prog_fd, link_fd, promisc_fd;
    int dev_map_fd;    /* the peer, for a steering program; -1 none */
    int native;        /* the program runs in driver mode (else generic) */
    int zerocopy;      /* the socket is bound zero-copy */
    char driver[32];   /* the interface's driver (ethtool), "" when unknown */
    struct mqo_port_stats st;
};

static const struct mqo_pktio_ops xsk_ops;

/* ---- chunks ------------------------------------------------------------------------------ */

static inline uint32_t chunk_of(const struct xsk_port *p, uint64_t addr)
{
    return (uint32_t)(addr / p->chunk);
}

static inline void chunk_put(struct xsk_port *p, uint32_t c) { p->pool[p->npool++] = c; }

/* Chunks the kernel has finished sending go back to the pool. */
static void reclaim(struct xsk_port *p)
{
    uint32_t idx, n = xsk_ring_cons__peek(&p->cq, p->ring, &idx);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = chunk_of(p, *xsk_ring_cons__comp_addr(&p->cq, idx + i));
        p->frames[c].in_tx = 0;
        chunk_put(p, c);
    }
    if (n) {
        xsk_ring_cons__release(&p->cq, n);
        p->tx_pending -= n;
    }
}

/* Keeps the fill ring stocked from the pool. */
static void refill(struct xsk_port *p)
{
    uint32_t room = xsk_prod_nb_free(&p->fq, p->ring);
    if (room > p->npool)
        room = p->npool;
    if (!room)
        return;
    uint32_t idx;
    if (xsk_ring_prod__reserve(&p->fq, room, &idx) != room)
        return;
    for (uint32_t i = 0; i < room; i++)
        *xsk_ring_prod__fill_addr(&p->fq, idx + i) = (uint64_t)p->pool[--p->npool] * p->chunk;
    xsk_ring_prod__submit(&p->fq, room);
}

/* Makes the kernel send what the TX ring holds (copy mode sends 32 per call and says EAGAIN
 * while more wait). */
static void kick(struct xsk_port *p)
{
    for (int i = 0; i < KICK_MAX; i++) {
        if (xsk_prod_nb_free(&p->tx, p->tx.size) >= p->tx.size)
            return; /* the kernel took everything */
        if (sendto(xsk_socket__fd(p->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
            continue;
        if (errno != EAGAIN && errno != EBUSY && errno != EINTR)
            return; /* ENOBUFS, ENETDOWN: the next kick tries again */
    }
}

static struct mqo_rawframe *frame_init(struct xsk_port *p, uint32_t c, uint32_t off, uint32_t len,
                                       uint64_t ts)
{
    struct xsk_frame *d = &p->frames[c];
    d->f.data = p->area + (size_t)c * p->chunk + off;
    d->f.len = len;
    d->f.cap = p->chunk - off;
    d->f.ts_ns = ts;
    d->f.port = p->index;
    d->f.flags = 0;
    d->f.ext_len = 0;
    d->in_tx = 0;
    return &d->f;
}

static struct mqo_rawframe *xsk_alloc(struct mqo_port *port)
{
    struct xsk_port *p = (struct xsk_port *)port;
    if (!p->npool)
        reclaim(p);
    if (!p->npool)
        return NULL;
    return frame_init(p, p->pool[--p->npool], TX_HEADROOM, 0, 0);
}

static void xsk_free(struct mqo_rawframe *f)
{
    struct xsk_port *p = (struct xsk_port *)f->owner;
    chunk_put(p, chunk_of(p, (uint64_t)(f->data - p->area)));
}

static int xsk_detach(struct mqo_rawframe *f) { return 0; }

/* ---- RX / TX ----------------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int xsk_rx_burst(struct mqo_port *port, struct mqo_rawframe **v, int n)
{
    struct xsk_port *p = (struct xsk_port *)port;
    reclaim(p);
    refill(p);
    if (p->tx_pending)
        kick(p);
    uint32_t idx, got = xsk_ring_cons__peek(&p->rx, (uint32_t)n, &idx);
    if (!got)
        return 0;
    uint64_t now = mono_ns();
    for (uint32_t i = 0; i < got; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&p->rx, idx + i);
        uint32_t c = chunk_of(p, d->addr);
        v[i] = frame_init(p, c, (uint32_t)(d->addr - (uint64_t)c * p->chunk), d->len, now);
        p->st.rx_frames++;
        p->st.rx_bytes += d->len;
    }
    xsk_ring_cons__release(&p->rx, got);
    refill(p);
    return (int)got;
}

static int xsk_tx_burst(struct mqo_port *port, struct mqo_rawframe **v, int n)
{
    struct xsk_port *p = (struct xsk_port *)port;
    reclaim(p);
    uint32_t room = xsk_prod_nb_free(&p->tx, (uint32_t)n);
    uint32_t k = (uint32_t)n < room ? (uint32_t)n : room;
    uint32_t idx;
    if (!k || xsk_ring_prod__reserve(&p->tx, k, &idx) != k) {
        p->st.tx_full++;
        kick(p);
        return 0;
    }
    uint32_t i = 0, done = 0; /* frames taken, descriptors filled */
    while (i < (uint32_t)n && done < k) {
        struct mqo_rawframe *f = v[i];
        uint32_t len = f->len;
        if (f->owner != port) {
            /* a frame of the other port: into a chunk of ours */
            if (len > p->chunk - TX_HEADROOM) {
                p->st.tx_errors++; /* longer than this port's frames: never sendable */
                mqo_frame_free(f);
                i++;
                continue;
            }
            if (!p->npool)
                break;
            uint32_t c = p->pool[--p->npool];
            struct mqo_rawframe *g = frame_init(p, c, TX_HEADROOM, len, 0);
            memcpy(g->data, f->data, len);
            mqo_frame_free(f);
            f = g;
        }
        struct xdp_desc *d = xsk_ring_prod__tx_desc(&p->tx, idx + done);
        d->addr = (uint64_t)(f->data - p->area);
        d->len = len;
        d->options = 0;
        ((struct xsk_frame *)f->priv)->in_tx = 1;
        p->st.tx_frames++;
        p->st.tx_bytes += len;
        done++;
        i++;
    }
    if (done < k) {
        /* give back the reserved slots not filled */
        p->tx.cached_prod -= k - done;
        if (i < (uint32_t)n)
            p->st.tx_full++;
    }
    if (done) {
        xsk_ring_prod__submit(&p->tx, done);
        p->tx_pending += done;
        kick(p);
    }
    return (int)i;
}

static int xsk_fd(const struct mqo_port *p) { return xsk_socket__fd(((const struct xsk_port *)p)->xsk); }

static void xsk_stats(const struct mqo_port *port, struct mqo_port_stats *st)
{
    const struct xsk_port *p = (const struct xsk_port *)port;
    *st = p->st;
    struct xdp_statistics xs;
    socklen_t l = sizeof xs;
    if (getsockopt(xsk_socket__fd(p->xsk), SOL_XDP, XDP_STATISTICS, &xs, &l) == 0) {
        st->rx_dropped += xs.rx_dropped + xs.rx_ring_full;
        st->rx_nobufs = xs.rx_fill_ring_empty_descs;
        st->tx_errors += xs.tx_invalid_descs;
    }
}

/* ---- open / close ------------------------------------------------------------------------ */

static void xsk_close(struct mqo_port *port)
{
    struct xsk_port *p = (struct xsk_port *)port;
    if (p->link_fd >= 0)
        close(p->link_fd); /* the kernel detaches the program with its last link */
    if (p->xsk)
        xsk_socket__delete(p->xsk);
    if (p->umem)
        xsk_umem__delete(p->umem);
    if (p->prog_fd >= 0)
        close(p->prog_fd);
    if (p->dev_map_fd >= 0)
        close(p->dev_map_fd);
    if (p->map_fd >= 0)
        close(p->map_fd);
    if (p->promisc_fd >= 0)
        close(p->promisc_fd);
    if (p->area)
        munmap(p->area, p->area_len);
    free(p->frames);
    free(p->pool);
    free(p);
}

/* The interface's driver name (ethtool's), "" when it does not say. */
static void driver_of(const char *ifname, char *out, size_t len)
{
    struct ethtool_drvinfo di = {.cmd = ETHTOOL_GDRVINFO};
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    ifr.ifr_data = (void *)&di;
    out[0] = 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (len && ioctl(fd, SIOCETHTOOL, &ifr) == 0) {
        size_t n = strnlen((const char *)di.driver, sizeof di.driver);
        n = n < len ? n : len - 1;
        memcpy(out, di.driver, n);
        out[n] = 0;
    }
    close(fd);
}

/* The port's line at start and in the summary (mqo_port_info.detail). */
static void describe(struct xsk_port *p)
{
    snprintf(p->base.info.detail, sizeof p->base.info.detail,
             "%s%s%s XDP, %s, UMEM of %u chunks of %u bytes, rings %u", p->driver,
             p->driver[0] ? ", " : "", p->native ? "native" : "generic",
             p->zerocopy ? "zero-copy" : "copy mode", p->nchunks, p->chunk, p->ring);
}

static unsigned rx_queues(const char *ifname)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/class/net/%s/queues", ifname);
    DIR *d = opendir(path);
    if (!d)
        return 1;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += !strncmp(e->d_name, "rx-", 3);
    closedir(d);
    return n ? n : 1;
}

static uint32_t pow2_at_least(uint32_t v)
{
    uint32_t r = 64;
    while (r < v && r < (1u << 16))
        r <<= 1;
    return r;
}

int mqo_afxdp_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err,
                   size_t errlen)
{
    const char *ifname = cfg->ifname ? cfg->ifname : "";
    unsigned ifindex;
    int r = mqo_pktio_ifindex(ifname, &ifindex, err, errlen);
    if (r)
        return r;
    unsigned nq = rx_queues(ifname);
    if (nq > 1) {
        snprintf(err, errlen,
                 "%s: %u receive queues; the AF_XDP port reads queue 0 only, frames on the "
                 "others would not reach mqoff (ethtool -L %s combined 1)", ifname, nq, ifname);
        return -EINVAL;
    }
    struct xsk_port *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", ifname);
        return -ENOMEM;
    }
    p->map_fd = p->prog_fd = p->link_fd = p->promisc_fd = p->dev_map_fd = -1;
    p->index = cfg->index;
    p->ifindex = ifindex;
    strcpy(p->ifname, ifname);
    driver_of(ifname, p->driver, sizeof p->driver);
    p->base.ops = &xsk_ops;
    p->base.info.backend = "afxdp";
    snprintf(p->base.info.name, sizeof p->base.info.name, "%s", ifname);

    unsigned mtu = mqo_pktio_if_mtu(ifname);
    if (!mtu)
        mtu = 1500;
    /* a received frame starts XDP_PACKET_HEADROOM into its chunk */
    uint32_t need = XDP_PACKET_HEADROOM + mtu + 14 + 8;
    p->chunk = need <= 2048 ? 2048 : 4096;
    if (need > 4096) {
        snprintf(err, errlen, "%s: MTU %u: AF_XDP frames here hold at most %u bytes of MTU",
                 ifname, mtu, 4096 - XDP_PACKET_HEADROOM - 22);
        r = -EMSGSIZE;
        goto fail;
    }
    p->base.info.frame_cap = p->chunk - TX_HEADROOM;
    p->ring = pow2_at_least(cfg->ring_frames ? cfg->ring_frames : DEFAULT_RING);
    p->nchunks = 2 * p->ring + 2 * TX_RING + HELD_EXTRA + cfg->max_frames;
    p->area_len = (size_t)p->nchunks * p->chunk;
    p->area = mmap(NULL, p->area_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p->area == MAP_FAILED) {
        p->area = NULL;
        r = -errno;
        snprintf(err, errlen, "%s: UMEM of %zu bytes: %s", ifname, p->area_len, strerror(-r));
        goto fail;
    }
    p->frames = calloc(p->nchunks, sizeof *p->frames);
    p->pool = calloc(p->nchunks, sizeof *p->pool);
    if (!p->frames || !p->pool) {
        r = -ENOMEM;
        snprintf(err, errlen, "%s: out of memory", ifname);
        goto fail;
    }
    for (uint32_t c = 0; c < p->nchunks; c++) {
        p->frames[c].f.priv = &p->frames[c];
        p->frames[c].f.owner = &p->base;
        p->pool[c] = p->nchunks - 1 - c;
    }
    p->npool = p->nchunks;

    struct xsk_umem_config uc = {.fill_size = p->ring, .comp_size = TX_RING,
                                 .frame_size = p->chunk, .frame_headroom = 0};
    if ((r = xsk_umem__create(&p->umem, p->area, p->area_len, &p->fq, &p->cq, &uc))) {
        snprintf(err, errlen, "%s: AF_XDP UMEM: %s%s", ifname, strerror(-r),
                 r == -EPERM ? " (AF_XDP needs root, or CAP_NET_RAW and CAP_BPF)" : "");
        goto fail;
    }
    refill(p);
    struct xsk_socket_config sc = {.rx_size = p->ring, .tx_size = TX_RING,
                                   .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
                                   .bind_flags = XDP_ZEROCOPY};
    r = xsk_socket__create(&p->xsk, ifname, 0, p->umem, &p->rx, &p->tx, &sc);
    p->zerocopy = r == 0;
    if (r) {
        sc.bind_flags = XDP_COPY;
        r = xsk_socket__create(&p->xsk, ifname, 0, p->umem, &p->rx, &p->tx, &sc);
    }
    if (r) {
        p->xsk = NULL;
        snprintf(err, errlen, "%s: AF_XDP socket: %s%s", ifname, strerror(-r),
                 r == -EPERM ? " (AF_XDP needs root, or CAP_NET_RAW and CAP_BPF)" : "");
        goto fail;
    }
    p->map_fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "mqoff_xsks", 4, 4, 1, NULL);
    if (p->map_fd < 0) {
        r = -errno;
        snprintf(err, errlen, "%s: XSKMAP: %s%s", ifname, strerror(-r),
                 r == -EPERM ? " (BPF needs root, or CAP_BPF)" : "");
        goto fail;
    }
    int key = 0, sfd = xsk_socket__fd(p->xsk);
    if (bpf_map_update_elem(p->map_fd, &key, &sfd, 0)) {
        r = -errno;
        snprintf(err, errlen, "%s: XSKMAP update: %s", ifname, strerror(-r));
        goto fail;
    }
    char log[2048];
    const struct mqo_xdp_filter all = {0};
    p->prog_fd = mqo_xdp_prog_load(&all, p->map_fd, -1, log, sizeof log);
    if (p->prog_fd < 0) {
        r = p->prog_fd;
        snprintf(err, errlen, "%s: loading the XDP program: %s%s%.300s", ifname, strerror(-r),
                 log[0] ? ": " : "", log);
        goto fail;
    }
    LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
    p->link_fd = bpf_link_create(p->prog_fd, (int)ifindex, BPF_XDP, &lo);
    p->native = p->link_fd >= 0;
    if (p->link_fd < 0 && errno != EBUSY && errno != EEXIST) {
        lo.flags = XDP_FLAGS_SKB_MODE;
        p->link_fd = bpf_link_create(p->prog_fd, (int)ifindex, BPF_XDP, &lo);
    }
    if (p->link_fd < 0) {
        r = -errno;
        snprintf(err, errlen, "%s: attaching the XDP program: %s%s", ifname, strerror(-r),
                 r == -EBUSY || r == -EEXIST
                     ? " (the interface has an XDP program already: ip link set dev IF xdp off)"
                     : "");
        goto fail;
    }
    if (cfg->promisc) {
        p->promisc_fd = mqo_pktio_promisc_hold(ifindex);
        if (p->promisc_fd < 0) {
            r = p->promisc_fd;
            snprintf(err, errlen, "%s: promiscuous mode: %s", ifname, strerror(-r));
            goto fail;
        }
    }
    describe(p);
    *out = &p->base;
    return 0;
fail:
    xsk_close(&p->base);
    return r < 0 ? r : -EIO;
}

/* ---- steering ---------------------------------------------------------------------------- */

/* Replaces the program that sends every frame to the socket with one that sends only the
 * splice's (xdp_prog.h) and the rest to the peer port, in the mode that can deliver to it
 * (the header comment). On failure the port keeps the program it had: every frame still
 * reaches the socket. */
static int xsk_steer(struct mqo_port *port, const struct mqo_port_steer *s, char *msg,
                     size_t msglen)
{
    struct xsk_port *p = (struct xsk_port *)port;
    if (!s->peer || s->peer->ops != &xsk_ops) {
        snprintf(msg, msglen, "%s: XDP steering needs an AF_XDP peer port", p->ifname);
        return -ENOTSUP;
    }
    const struct xsk_port *peer = (const struct xsk_port *)s->peer;
    int generic = !p->native || !peer->native || !strcmp(peer->driver, "veth");
    if (generic && p->zerocopy) {
        snprintf(msg, msglen, "%s: zero-copy, and %s takes no redirected frame in driver mode",
                 p->ifname, peer->ifname);
        return -ENOTSUP;
    }
    int r = 0, prog = -1, link = -1;
    int dm = bpf_map_create(BPF_MAP_TYPE_DEVMAP, "mqoff_peer", 4, 4, 1, NULL);
    unsigned key = 0, to = peer->ifindex;
    if (dm < 0 || bpf_map_update_elem(dm, &key, &to, 0)) {
        r = -errno;
        snprintf(msg, msglen, "%s: DEVMAP for %s: %s", p->ifname, peer->ifname, strerror(-r));
        goto fail;
    }
    char log[2048];
    const struct mqo_xdp_filter flt = {.ip = s->ip, .port = htons(s->port),
                                       .match_dst = s->match_dst};
    if ((prog = mqo_xdp_prog_load(&flt, p->map_fd, dm, log, sizeof log)) < 0) {
        r = prog;
        snprintf(msg, msglen, "%s: loading the steering program: %s%s%.300s", p->ifname,
                 strerror(-r), log[0] ? ": " : "", log);
        goto fail;
    }
    if (generic == !p->native) {
        if (bpf_link_update(p->link_fd, prog, NULL)) {
            r = -errno;
            snprintf(msg, msglen, "%s: replacing the XDP program: %s", p->ifname, strerror(-r));
            goto fail;
        }
    } else {
        /* driver mode to generic: one program per interface, so the old link goes first (the
         * frames of that moment reach the kernel, as before mqoff started) */
        close(p->link_fd);
        LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_SKB_MODE);
        link = bpf_link_create(prog, (int)p->ifindex, BPF_XDP, &lo);
        if (link < 0) {
            r = -errno;
            LIBBPF_OPTS(bpf_link_create_opts, back, .flags = XDP_FLAGS_DRV_MODE);
            p->link_fd = bpf_link_create(p->prog_fd, (int)p->ifindex, BPF_XDP, &back);
            snprintf(msg, msglen, "%s: generic XDP: %s%s", p->ifname, strerror(-r),
                     p->link_fd < 0 ? "; the port lost its program" : "");
            goto fail;
        }
        p->link_fd = link;
        p->native = 0;
    }
    close(p->prog_fd);
    p->prog_fd = prog;
    p->dev_map_fd = dm;
    describe(p);
    return 0;
fail:
    if (prog >= 0)
        close(prog);
    if (dm >= 0)
        close(dm);
    return r ? r : -ENOTSUP;
}

static const struct mqo_pktio_ops xsk_ops = {
    .name = "afxdp",
    .close = xsk_close,
    .rx_burst = xsk_rx_burst,
    .tx_burst = xsk_tx_burst,
    .alloc = xsk_alloc,
    .free = xsk_free,
    .detach = xsk_detach,
    .fd = xsk_fd,
    .stats = xsk_stats,
    .steer = xsk_steer,
};
