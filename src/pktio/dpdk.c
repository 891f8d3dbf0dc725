/* pktio/dpdk: the DPDK backend of pktio.h (ethdev rx/tx bursts), built when pkg-config finds
 * libdpdk (Debian's dpdk-dev).
 *
 * EAL. The first port opened starts the EAL with the arguments of mqo_port_cfg.eal; every
 * port of the process shares it, and the last one closed stops it (rte_eal_cleanup) and
 * removes the runtime directory the EAL made for its file prefix (config, fbarrays,
 * sockets), unless another process still holds it. rte_eal_init prints a lot and, for bad
 * arguments, its usage: its output (both descriptors) is caught while it runs and only the
 * line that says what went wrong is kept for the one error line of a failed open (arguments
 * refused, no hugepages: --no-huge exists, no permission, a device that did not probe). The
 * EAL would pin the process to its first core: mqoff runs one thread and keeps the affinity
 * it had unless the arguments name cores (-l, -c, --lcores). SIGINT, SIGTERM and SIGHUP are
 * blocked while the EAL starts its threads, so they reach the thread that runs the loop.
 *
 * Ports: an id ("0") or a device name ("net_af_packet0"). One RX and one TX queue each,
 * with a mempool of their own (mbufs sized for the port's MTU). Promiscuous mode: for a device
 * backed by a kernel interface (net_af_packet, net_af_xdp, net_tap) through a packet socket
 * membership, which the kernel drops when the process ends however it ends (DPDK's own call
 * sets IFF_PROMISC and leaves it set); for other devices through DPDK, switched off again at
 * close when it was off.
 *
 * Frames: struct mqo_rawframe lives in the mbuf's private area (no allocation per frame), so
 * the layers above never see an mbuf. A received frame is its mbuf; rx_burst, tx_burst, alloc
 * and free are the mbuf's own operations, and detach has nothing to do (an mbuf held by the
 * caller never stops the device: the PMD refills its ring from the pool).
 *
 * Fan-out: mqo_frame_attach chains an external-buffer mbuf onto the frame's own (which holds
 * only the headers and the subscriber's patch), pointing at the shared block: every
 * subscriber's frame references one payload, and the block's put runs when the last device
 * is done with it (the shared-info callback). A hardware NIC would DMA from the block, which
 * then must be registered with the device (rte_extmem_register, or the engine's messages
 * allocated from DPDK memory): not done, so there the block is copied into the frame's mbuf.
 * The software devices (above) read it with the CPU, so it works there, but they copy every
 * segment of a chained mbuf into their ring anyway: measured with a 1-10-1 fan-out of 16 KiB
 * payloads through net_af_packet, mqoff used about 9 % more CPU with the chain than with the
 * copy (1.31 s against 1.20 s, medians of 4 runs). So it is offered (MQO_PORT_CAP_EXT) on a
 * software device only with MQO_PORT_SHARE_SW (--shared-payload-min given explicitly).
 *
 * Offloads: the PMD's capabilities decide. TCP/UDP checksum on TX (MQO_PORT_CAP_TX_CSUM: a
 * frame flagged MQO_FRAME_CSUM_PARTIAL leaves with the device's flags instead of a software
 * sum), checksum verification on RX (good sums arrive flagged MQO_FRAME_CSUM_VALID, so the
 * splice does not sum them again), TSO (MQO_PORT_CAP_TSO: a frame flagged MQO_FRAME_TSO, built
 * past one mbuf with mqo_frame_append, leaves with RTE_MBUF_F_TX_TCP_SEG). rte_eth_tx_prepare
 * runs over a burst that asks for an offload, so each driver fixes the headers its way.
 *
 * Steering (mqo_port_steer): rte_flow rules in the device's switch (transfer domain):
 * IPv4 to or from the broker's address goes to this port's queue, everything else straight
 * to the peer port, so the loop only sees what the splice needs. A PMD without flow support
 * (every software device here) refuses, and every frame goes through the loop.
 *
 * Not thread-safe: the ports of a process and their frames are used from one thread.
 */
#include "pktio/pktio_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_version.h>

#define DEFAULT_RING 1024   /* RX descriptors */
#define TX_RING 1024
#define POOL_EXTRA 6144     /* mbufs beyond the rings: frames the loop holds (its queues) */
#define XPOOL_N 8191        /* external-buffer mbufs (a fan-out's frames in flight) */
#define POOL_CACHE 256
#define MAX_PORTS 8
#define MAX_ARGS 128
#define TSO_MAX 64000       /* TCP payload of a TSO frame: its IPv4 length stays in 16 bits */

/* The frame a received or allocated mbuf stands for, in its private area. */
struct dpdk_frame {
    struct mqo_rawframe f;
    struct rte_mbuf *m;
    uint8_t shared; /* a shared block is chained (mqo_frame_attach) */
};

/* The private area of an external-buffer mbuf: its shared info and the block's owner. */
struct ext_priv {
    struct rte_mbuf_ext_shared_info shinfo;
    struct mqo_frame_ext ext;
};

struct dpdk_port {
    struct mqo_port base; /* first */
    uint16_t pid;
    uint16_t index;
    struct rte_mempool *pool, *xpool;
    int started;
    int promisc_fd;       /* packet socket holding promiscuous mode, -1 none */
    int promisc_dpdk;     /* promiscuous mode switched on through DPDK: off again at close */
    int tx_csum;          /* TX checksum offloads enabled */
    int tso;              /* TSO enabled */
    int tso_l2_in_mtu;    /* net_tap: a TSO segment's Ethernet header counts in the MTU */
    uint16_t mtu;
    uint64_t tx_offloads;
    struct rte_flow *flow[2];
    struct mqo_port_stats st;
};

/* ---- the EAL ----------------------------------------------------------------------------- */

static struct {
    int state;            /* 0 not started, 1 running, -1 failed */
    unsigned ports;       /* ports open */
    char *args;           /* the arguments it started with */
    char log[2048];       /* what it said while starting, the lines worth repeating */
    char dev_log[2048];   /* what a device's start said, the same way */
    char rundir[512];     /* its runtime directory */
    struct rte_mempool *pools[2 * MAX_PORTS];
    unsigned npools;
} eal;

/* Splits s as a shell would split words (quotes and backslashes, no expansion) into av after
 * av[0]. Returns the count, or -1 when unbalanced or too many. buf holds the words. */
static int split_args(const char *s, char *buf, char **av, int max)
{
    int ac = 1;
    av[0] = "mqoff";
    char *o = buf;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (ac >= max - 1)
            return -1;
        av[ac++] = o;
        char q = 0;
        for (; *p; p++) {
            if (q) {
                if (*p == q)
                    q = 0;
                else if (*p == '\\' && q == '"' && p[1])
                    *o++ = *++p;
                else
                    *o++ = *p;
            } else if (*p == '\'' || *p == '"') {
                q = *p;
            } else if (*p == '\\' && p[1]) {
                *o++ = *++p;
            } else if (*p == ' ' || *p == '\t' || *p == '\n') {
                break;
            } else {
                *o++ = *p;
            }
        }
        if (q)
            return -1;
        *o++ = 0;
    }
    av[ac] = NULL;
    return ac;
}

static int has_arg(char **av, int ac, const char *const *names)
{
    for (int i = 1; i < ac; i++)
        for (const char *const *n = names; *n; n++) {
            size_t l = strlen(*n);
            if (!strncmp(av[i], *n, l) && (av[i][l] == 0 || av[i][l] == '=' ||
                                           (av[i][1] != '-' && av[i][l] >= '0' && av[i][l] <= '9')))
                return 1;
        }
    return 0;
}

/* Keeps the lines of DPDK's output that say something went wrong in log (2048 bytes), once
 * each ("EAL: FATAL: x" repeats "EAL: x"); its usage text (indented lines) and the
 * telemetry's notes are left out. */
static void keep_log(const char *out, char *log)
{
    static const char *const bad[] = {"ailed", "annot", "rror", "nvalid", "nrecognized",
                                      "No such", "ermission", "denied", "nable to", "missing",
                                      "requires", "ould not", "compatible", NULL};
    log[0] = 0;
    for (const char *l = out; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        const char *next = l + n + (e ? 1 : 0);
        char line[300];
        snprintf(line, sizeof line, "%.*s", (int)n, l);
        l = next;
        char *fatal = strstr(line, "FATAL: ");
        if (fatal)
            memmove(fatal, fatal + 7, strlen(fatal + 7) + 1);
        if (!line[0] || line[0] == ' ' || line[0] == '\t' || !strncmp(line, "TELEMETRY", 9) ||
            strstr(log, line))
            continue;
        for (const char *const *b = bad; *b; b++)
            if (strstr(line, *b)) {
                size_t have = strlen(log);
                snprintf(log + have, 2048 - have, "%s%s", have ? "; " : "", line);
                break;
            }
    }
}

/* 1 when the EAL's kept lines say it found no hugepages. */
static int no_hugepages(void)
{
    return strstr(eal.log, "hugepage") != NULL;
}

/* What DPDK and the libraries under it print while a device starts (the EAL's usage text on
 * stdout, log lines, libbpf's notes on stderr) goes to a memory file instead: only what says
 * why a start failed is worth a line (keep_log). */
struct capture {
    int fd, o1, o2;
};

static void capture_begin(struct capture *c)
{
    fflush(stdout);
    fflush(stderr);
    c->fd = memfd_create("mqoff-dpdk", MFD_CLOEXEC);
    c->o1 = c->fd >= 0 ? dup(1) : -1;
    c->o2 = c->fd >= 0 ? dup(2) : -1;
    if (c->fd >= 0 && c->o1 >= 0 && c->o2 >= 0) {
        dup2(c->fd, 1);
        dup2(c->fd, 2);
    }
}

/* Puts stdout and stderr back and keeps what was said in log (keep_log). */
static void capture_end(struct capture *c, char *log)
{
    fflush(stdout);
    fflush(stderr);
    if (c->o1 >= 0 && c->o2 >= 0) {
        dup2(c->o1, 1);
        dup2(c->o2, 2);
    }
    if (c->o1 >= 0)
        close(c->o1);
    if (c->o2 >= 0)
        close(c->o2);
    char out[16384] = "";
    if (c->fd >= 0) {
        ssize_t n = pread(c->fd, out, sizeof out - 1, 0);
        out[n > 0 ? n : 0] = 0;
        close(c->fd);
    }
    keep_log(out, log);
}

/* Removes the EAL's runtime directory unless a process still holds its configuration (the
 * primary process's lock): it is ours alone to clean up then. */
static void remove_rundir(const char *dir)
{
    if (!dir[0])
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/config", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int busy = fcntl(fd, F_GETLK, &l) == 0 && l.l_type != F_UNLCK && l.l_pid != getpid();
        close(fd);
        if (busy)
            return;
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

/* Starts the EAL with args. Returns 0, or -errno with the one line that says why in err. */
static int eal_start(const char *args, char *err, size_t errlen)
{
    if (eal.state == 1) {
        if (strcmp(eal.args, args)) {
            snprintf(err, errlen, "DPDK: the EAL is running with other arguments (\"%s\"): the "
                                  "ports of a process share one --eal", eal.args);
            return -EINVAL;
        }
        return 0;
    }
    if (eal.state < 0) {
        snprintf(err, errlen, "DPDK: the EAL failed to start earlier in this process");
        return -EINVAL;
    }
    size_t al = strlen(args);
    char *buf = malloc(al + 1);
    char *av[MAX_ARGS];
    eal.args = strdup(args);
    if (!buf || !eal.args) {
        free(buf);
        snprintf(err, errlen, "DPDK: out of memory");
        return -ENOMEM;
    }
    int ac = split_args(args, buf, av, MAX_ARGS);
    if (ac < 0) {
        free(buf);
        snprintf(err, errlen, "DPDK: --eal \"%s\": unbalanced quotes or too many arguments", args);
        eal.state = -1;
        return -EINVAL;
    }
    static const char *const lcore_opts[] = {"-l", "-c", "--lcores", "--main-lcore", NULL};
    int keep_affinity = !has_arg(av, ac, lcore_opts);
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus))
        keep_affinity = 0;

    struct capture cap;
    capture_begin(&cap);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int r = rte_eal_init(ac, av);
    int e = rte_errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    capture_end(&cap, eal.log);
    free(buf);
    snprintf(eal.rundir, sizeof eal.rundir, "%s", rte_eal_get_runtime_dir());
    if (r < 0) {
        eal.state = -1;
        const char *why = eal.log[0] ? eal.log : rte_strerror(e);
        if (no_hugepages())
            snprintf(err, errlen,
                     "DPDK: no hugepages (%s): reserve some (/proc/sys/vm/nr_hugepages, a "
                     "hugetlbfs mount) or add --no-huge to --eal", why);
        else if (e == EACCES || e == EPERM || geteuid() != 0)
            snprintf(err, errlen, "DPDK: permission denied starting the EAL (%s): run as root",
                     why);
        else
            snprintf(err, errlen, "DPDK: the EAL refused --eal \"%s\": %s", args, why);
        remove_rundir(eal.rundir);
        return e > 0 ? -e : -EINVAL;
    }
    eal.state = 1;
    if (keep_affinity)
        sched_setaffinity(0, sizeof cpus, &cpus);
    return 0;
}

static void eal_put(void)
{
    if (--eal.ports)
        return;
    for (unsigned i = 0; i < eal.npools; i++)
        rte_mempool_free(eal.pools[i]);
    eal.npools = 0;
    rte_eal_cleanup();
    remove_rundir(eal.rundir);
    /* rte_eal_init cannot run twice in a process: a later open says so */
    eal.state = -1;
}

/* ---- frames ------------------------------------------------------------------------------ */

static const struct mqo_pktio_ops dpdk_ops;

static inline struct dpdk_frame *frame_of(struct rte_mbuf *m)
{
    return rte_mbuf_to_priv(m);
}

static inline struct mqo_rawframe *wrap(struct dpdk_port *p, struct rte_mbuf *m, uint64_t ts)
{
    struct dpdk_frame *d = frame_of(m);
    d->m = m;
    d->f.data = rte_pktmbuf_mtod(m, uint8_t *);
    d->f.len = m->data_len;
    d->f.cap = (uint32_t)(m->buf_len - m->data_off);
    d->f.ts_ns = ts;
    d->f.port = p->index;
    d->f.flags = 0;
    d->f.ext_len = 0;
    d->f.seg_size = 0;
    d->shared = 0;
    d->f.priv = m;
    d->f.owner = &p->base;
    return &d->f;
}

static struct mqo_rawframe *dpdk_alloc(struct mqo_port *port)
{
    struct dpdk_port *p = (struct dpdk_port *)port;
    struct rte_mbuf *m = rte_pktmbuf_alloc(p->pool);
    return m ? wrap(p, m, 0) : NULL;
}

static void dpdk_free(struct mqo_rawframe *f) { rte_pktmbuf_free(f->priv); }

static int dpdk_detach(struct mqo_rawframe *f) { return 0; }

static void ext_done(void *addr, void *opaque)
{
    struct ext_priv *x = opaque;
    if (x->ext.put)
        x->ext.put(x->ext.arg);
}

/* Bytes beyond the frame's own mbuf: into the last mbuf's room, then mbufs of the port's pool
 * chained after it (DPDK memory, so a hardware device reads them by DMA). Every segment but
 * the last keeps an even length: net_tap (22.11) sums a chain's segments as if each began on
 * an even byte, and a TSO frame's segments that straddle an odd boundary left it with wrong
 * TCP checksums (measured in the lab: 6 of about 200 segments). */
static int dpdk_append(struct mqo_rawframe *f, const uint8_t *src, uint32_t len)
{
    struct dpdk_port *p = (struct dpdk_port *)f->owner;
    struct rte_mbuf *head = f->priv, *last = rte_pktmbuf_lastseg(head);
    int chained = (f->flags & MQO_FRAME_CHAIN) != 0;
    uint32_t have = chained ? last->data_len : f->len;
    uint32_t room = chained ? rte_pktmbuf_tailroom(last) : f->cap - f->len;
    uint32_t first = len < room ? len : room, rest = len - first;
    if (rest && ((have + first) & 1)) {
        first--;
        rest++;
    }
    /* the chain's new mbufs (even-sized), all got before anything changes */
    uint32_t seg = p->base.info.frame_cap & ~1u;
    unsigned n = (rest + seg - 1) / seg;
    struct rte_mbuf *c[64];
    if (n > 64 || head->nb_segs + n > UINT16_MAX)
        return -EMSGSIZE;
    if (n && rte_pktmbuf_alloc_bulk(p->pool, c, n))
        return -ENOMEM;
    if (chained) {
        memcpy(rte_pktmbuf_mtod_offset(last, uint8_t *, last->data_len), src, first);
        last->data_len = (uint16_t)(last->data_len + first);
        f->ext_len += first;
    } else {
        memcpy(f->data + f->len, src, first);
        f->len += first;
    }
    for (unsigned i = 0; i < n; i++) {
        uint16_t k = (uint16_t)(rest < seg ? rest : seg);
        memcpy(rte_pktmbuf_mtod(c[i], uint8_t *), src + first, k);
        c[i]->data_len = k;
        first += k;
        rest -= k;
        last->next = c[i];
        last = c[i];
        head->nb_segs++;
        f->ext_len += k;
    }
    if (n)
        f->flags |= MQO_FRAME_CHAIN;
    return 0;
}

static int dpdk_attach(struct mqo_rawframe *f, const struct mqo_frame_ext *ext)
{
    struct dpdk_port *p = (struct dpdk_port *)f->owner;
    if (!p->xpool || ext->len > UINT16_MAX) {
        /* no shared blocks on this device: a copy (a TSO frame's into chained mbufs) */
        if (!(f->flags & MQO_FRAME_TSO) || !p->tso)
            return mqo_pktio_attach_copy(f, ext);
        int r = dpdk_append(f, ext->p, ext->len);
        if (!r && ext->put)
            ext->put(ext->arg);
        return r;
    }
    /* the segment before the block keeps an even length (dpdk_append): its first byte is
     * copied there when it is odd */
    struct rte_mbuf *m = f->priv;
    uint32_t before = (f->flags & MQO_FRAME_CHAIN) ? rte_pktmbuf_lastseg(m)->data_len : f->len;
    uint32_t odd = (before & 1) && ext->len > 1 && rte_pktmbuf_tailroom(rte_pktmbuf_lastseg(m));
    struct rte_mbuf *e = rte_pktmbuf_alloc(p->xpool);
    if (!e)
        return -ENOMEM;
    if (odd && dpdk_append(f, ext->p, 1)) {
        rte_pktmbuf_free(e);
        return -ENOMEM;
    }
    struct ext_priv *x = rte_mbuf_to_priv(e);
    x->ext = *ext;
    x->shinfo.free_cb = ext_done;
    x->shinfo.fcb_opaque = x;
    rte_mbuf_ext_refcnt_set(&x->shinfo, 1);
    void *va = (void *)(uintptr_t)(ext->p + odd);
    uint16_t el = (uint16_t)(ext->len - odd);
    rte_pktmbuf_attach_extbuf(e, va, rte_mem_virt2iova(va), el, &x->shinfo);
    e->data_len = el;
    e->pkt_len = el;
    rte_pktmbuf_lastseg(m)->next = e;
    m->nb_segs++;
    f->ext_len += el;
    f->flags |= MQO_FRAME_EXT;
    frame_of(m)->shared = 1;
    return 0;
}

/* ---- RX ---------------------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int dpdk_rx_burst(struct mqo_port *port, struct mqo_rawframe **v, int n)
{
    struct dpdk_port *p = (struct dpdk_port *)port;
    struct rte_mbuf *m[64];
    int k = 0;
    uint64_t now = 0;
    while (k < n) {
        uint16_t want = (uint16_t)(n - k < 64 ? n - k : 64);
        uint16_t got = rte_eth_rx_burst(p->pid, 0, m, want);
        if (!got)
            break;
        if (!now)
            now = mono_ns();
        for (uint16_t i = 0; i < got; i++) {
            struct rte_mbuf *b = m[i];
            if (b->nb_segs > 1) {
                /* larger than an mbuf: the device was told not to scatter */
                p->st.rx_truncated++;
                p->st.rx_dropped++;
                rte_pktmbuf_free(b);
                continue;
            }
            uint16_t flags = 0;
            if (b->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) {
                /* the device took the tag out of the bytes: put it back, as on the wire */
                b->ol_flags &= ~RTE_MBUF_F_RX_VLAN_STRIPPED;
                if (rte_vlan_insert(&b)) {
                    p->st.rx_dropped++;
                    rte_pktmbuf_free(b);
                    continue;
                }
                flags |= MQO_FRAME_VLAN_RESTORED;
            }
            if ((b->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
                flags |= MQO_FRAME_CSUM_VALID;
            struct mqo_rawframe *f = wrap(p, b, now);
            f->flags = flags;
            p->st.rx_frames++;
            p->st.rx_bytes += f->len;
            v[k++] = f;
        }
        if (got < want)
            break;
    }
    return k;
}

/* ---- TX ---------------------------------------------------------------------------------- */

/* What the device does for a frame (offload_flags). */
enum { OFF_NONE, OFF_CSUM, OFF_TSO };

/* The device's flags for a frame that leaves work to it: a partial TCP/UDP checksum (the field
 * holds the pseudo-header sum), or TSO. Returns OFF_NONE when the frame goes as it is (not
 * IPv4 TCP/UDP, or the device does not do it). */
static int offload_flags(const struct dpdk_port *p, struct rte_mbuf *m, struct mqo_rawframe *f)
{
    uint8_t *d = f->data;
    uint32_t len = f->len, l2 = 14;
    int tso = (f->flags & MQO_FRAME_TSO) && p->tso;
    if (!tso && !((f->flags & MQO_FRAME_CSUM_PARTIAL) && p->tx_csum))
        return OFF_NONE;
    uint16_t type = (uint16_t)(d[12] << 8 | d[13]);
    while ((type == 0x8100 || type == 0x88a8 || type == 0x9100) && len >= l2 + 4) {
        type = (uint16_t)(d[l2 + 2] << 8 | d[l2 + 3]);
        l2 += 4;
    }
    if (type != 0x0800 || len < l2 + 20 || d[l2] >> 4 != 4)
        return OFF_NONE;
    uint32_t l3 = (d[l2] & 15u) * 4u;
    m->l2_len = l2;
    m->l3_len = l3;
    if (tso) {
        uint32_t l4 = len >= l2 + l3 + 20 ? (d[l2 + l3 + 12] >> 4) * 4u : 0;
        if (d[l2 + 9] != 6 || !l4 || len < l2 + l3 + l4 || !f->seg_size)
            return OFF_NONE;
        uint32_t seg = f->seg_size, hdrs = l2 + l3 + l4;
        if (p->tso_l2_in_mtu && seg + hdrs > p->mtu)
            seg = p->mtu - hdrs;
        m->l4_len = l4;
        m->tso_segsz = (uint16_t)seg;
        d[l2 + 10] = d[l2 + 11] = 0; /* the device sums every segment's IP header */
        m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG;
        return OFF_TSO;
    }
    /* l4_len too, which DPDK asks only for TSO: net_tap sums from l2 + l3 + l4 on */
    if (d[l2 + 9] == 6 && len >= l2 + l3 + 20) {
        m->l4_len = (d[l2 + l3 + 12] >> 4) * 4u;
        m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
    } else if (d[l2 + 9] == 17) {
        m->l4_len = 8;
        m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
    } else {
        return OFF_NONE;
    }
    return OFF_CSUM;
}

static int dpdk_tx_burst(struct mqo_port *port, struct mqo_rawframe **v, int n)
{
    struct dpdk_port *p = (struct dpdk_port *)port;
    struct rte_mbuf *m[64];
    uint32_t bytes[64];
    uint8_t shared[64], off[64];
    int done = 0;
    while (done < n) {
        int k = n - done < 64 ? n - done : 64, any_off = 0;
        for (int i = 0; i < k; i++) {
            struct mqo_rawframe *f = v[done + i];
            if (f->owner->ops != &dpdk_ops) {
                /* a frame of another backend: into an mbuf of ours */
                struct mqo_rawframe *c = dpdk_alloc(port);
                if (!c || f->len + f->ext_len > c->cap || (f->flags & MQO_FRAME_EXT)) {
                    if (c)
                        dpdk_free(c);
                    k = i;
                    break;
                }
                memcpy(c->data, f->data, f->len);
                c->len = f->len;
                c->flags = f->flags;
                c->seg_size = f->seg_size;
                mqo_frame_free(f);
                v[done + i] = f = c;
            }
            struct rte_mbuf *b = f->priv;
            b->data_off = (uint16_t)(f->data - (uint8_t *)b->buf_addr);
            b->data_len = (uint16_t)f->len;
            b->pkt_len = f->len + f->ext_len;
            b->ol_flags &= ~(RTE_MBUF_F_TX_OFFLOAD_MASK);
            off[i] = (uint8_t)offload_flags(p, b, f);
            any_off |= off[i];
            m[i] = b;
            /* counted from here: the device may free an mbuf inside tx_burst */
            bytes[i] = b->pkt_len;
            shared[i] = frame_of(b)->shared;
        }
        if (!k)
            break;
        /* what the driver needs in the headers for its offloads (some want the pseudo-header
         * sum computed their way); a frame it refuses could never be sent */
        uint16_t ready = any_off ? rte_eth_tx_prepare(p->pid, 0, m, (uint16_t)k) : (uint16_t)k;
        uint16_t sent = rte_eth_tx_burst(p->pid, 0, m, ready);
        for (uint16_t i = 0; i < sent; i++) {
            p->st.tx_frames++;
            p->st.tx_bytes += bytes[i];
            p->st.ext_frames += shared[i];
            p->st.csum_offloaded += off[i] == OFF_CSUM;
            p->st.tso_frames += off[i] == OFF_TSO;
        }
        done += sent;
        if (sent < ready) {
            p->st.tx_full++; /* the descriptors are full: the caller keeps the rest */
            break;
        }
        if (ready < k) {
            p->st.tx_errors++; /* taken and dropped; the frames after it go on */
            rte_pktmbuf_free(m[ready]);
            done++;
        }
    }
    return done;
}

static int dpdk_fd(const struct mqo_port *p) { return -1; }

static void dpdk_stats(const struct mqo_port *port, struct mqo_port_stats *st)
{
    const struct dpdk_port *p = (const struct dpdk_port *)port;
    *st = p->st;
    struct rte_eth_stats es;
    if (rte_eth_stats_get(p->pid, &es) == 0) {
        st->rx_nobufs = es.rx_nombuf;
        st->rx_dropped += es.imissed + es.ierrors + es.rx_nombuf;
        st->tx_errors += es.oerrors;
    }
}

/* ---- steering ---------------------------------------------------------------------------- */

static int dpdk_steer(struct mqo_port *port, const struct mqo_port_steer *s, char *msg,
                      size_t msglen)
{
    struct dpdk_port *p = (struct dpdk_port *)port;
    if (!s->peer || s->peer->ops != &dpdk_ops) {
        snprintf(msg, msglen, "%s: rte_flow needs a DPDK peer port", p->base.info.name);
        return -ENOTSUP;
    }
    const struct dpdk_port *peer = (const struct dpdk_port *)s->peer;
    struct rte_flow_error fe = {0};
    /* 1: IPv4 to or from the address, arriving on this port: to this port's queue */
    struct rte_flow_attr a1 = {.priority = 0, .transfer = 1};
    struct rte_flow_item_ethdev self = {.port_id = p->pid};
    struct rte_flow_item_ipv4 ip = {0}, ipm = {0};
    if (s->match_dst) {
        ip.hdr.dst_addr = s->ip;
        ipm.hdr.dst_addr = UINT32_MAX;
    } else {
        ip.hdr.src_addr = s->ip;
        ipm.hdr.src_addr = UINT32_MAX;
    }
    struct rte_flow_item pat1[] = {
        {.type = RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT, .spec = &self},
        {.type = RTE_FLOW_ITEM_TYPE_ETH},
        {.type = RTE_FLOW_ITEM_TYPE_IPV4, .spec = &ip, .mask = &ipm},
        {.type = RTE_FLOW_ITEM_TYPE_END},
    };
    struct rte_flow_action_ethdev to_self = {.port_id = p->pid};
    struct rte_flow_action act1[] = {
        {.type = RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR, .conf = &to_self},
        {.type = RTE_FLOW_ACTION_TYPE_END},
    };
    /* 2: everything else arriving on this port: out of the peer's */
    struct rte_flow_attr a2 = {.priority = 1, .transfer = 1};
    struct rte_flow_item pat2[] = {
        {.type = RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT, .spec = &self},
        {.type = RTE_FLOW_ITEM_TYPE_END},
    };
    struct rte_flow_action_ethdev to_peer = {.port_id = peer->pid};
    struct rte_flow_action act2[] = {
        {.type = RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT, .conf = &to_peer},
        {.type = RTE_FLOW_ACTION_TYPE_END},
    };
    int r = rte_flow_validate(p->pid, &a1, pat1, act1, &fe);
    if (!r)
        r = rte_flow_validate(p->pid, &a2, pat2, act2, &fe);
    if (!r && !(p->flow[0] = rte_flow_create(p->pid, &a1, pat1, act1, &fe)))
        r = -rte_errno;
    if (!r && !(p->flow[1] = rte_flow_create(p->pid, &a2, pat2, act2, &fe)))
        r = -rte_errno;
    if (r) {
        for (int i = 0; i < 2; i++)
            if (p->flow[i]) {
                rte_flow_destroy(p->pid, p->flow[i], NULL);
                p->flow[i] = NULL;
            }
        snprintf(msg, msglen, "%s (%s): rte_flow refused: %s", p->base.info.name,
                 p->base.info.detail, fe.message ? fe.message : rte_strerror(-r));
        return -ENOTSUP;
    }
    return 0;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void dpdk_close(struct mqo_port *port)
{
    struct dpdk_port *p = (struct dpdk_port *)port;
    struct capture cap; /* the drivers' notes as they let go of their devices */
    capture_begin(&cap);
    for (int i = 0; i < 2; i++)
        if (p->flow[i])
            rte_flow_destroy(p->pid, p->flow[i], NULL);
    if (p->started)
        rte_eth_dev_stop(p->pid);
    if (p->promisc_dpdk)
        rte_eth_promiscuous_disable(p->pid);
    if (p->promisc_fd >= 0)
        close(p->promisc_fd);
    if (p->started)
        rte_eth_dev_close(p->pid);
    capture_end(&cap, eal.dev_log);
    free(p);
    /* the mempools go with the EAL: another port's device may still hold their mbufs */
    eal_put();
}

/* Devices whose frames pass through the CPU's memory (a kernel interface, memory rings):
 * promiscuous mode is the kernel interface's, a shared block needs no DMA mapping. */
static int software_device(const char *driver)
{
    static const char *const sw[] = {"net_af_packet", "net_af_xdp", "net_tap", "net_ring",
                                     "net_null", "net_memif", NULL};
    for (const char *const *s = sw; *s; s++)
        if (!strcmp(driver, *s))
            return 1;
    return 0;
}

/* The ports there are, for a message: "0 net_af_packet0, 1 net_af_packet1". */
static void list_ports(char *out, size_t len)
{
    uint16_t id;
    size_t o = 0;
    out[0] = 0;
    RTE_ETH_FOREACH_DEV(id)
    {
        char nm[RTE_ETH_NAME_MAX_LEN];
        if (rte_eth_dev_get_name_by_port(id, nm))
            continue;
        int w = snprintf(out + o, len - o, "%s%u %s", o ? ", " : "", id, nm);
        if (w < 0 || (size_t)w >= len - o)
            break;
        o += (size_t)w;
    }
    if (!o)
        snprintf(out, len, "none");
}

static int find_port(const char *name, uint16_t *pid)
{
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (*name && !*end)
        return v < RTE_MAX_ETHPORTS && rte_eth_dev_is_valid_port((uint16_t)v)
                   ? (*pid = (uint16_t)v, 0)
                   : -ENODEV;
    return rte_eth_dev_get_port_by_name(name, pid) ? -ENODEV : 0;
}

int mqo_dpdk_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err, size_t errlen)
{
    const char *name = cfg->ifname ? cfg->ifname : "";
    if (!cfg->eal) {
        snprintf(err, errlen, "%s: --io dpdk needs the EAL arguments (--eal \"ARGS\")", name);
        return -EINVAL;
    }
    int r = eal_start(cfg->eal, err, errlen);
    if (r)
        return r;
    eal.ports++;
    struct dpdk_port *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", name);
        eal_put();
        return -ENOMEM;
    }
    p->promisc_fd = -1;
    p->index = cfg->index;
    p->base.ops = &dpdk_ops;
    p->base.info.backend = "dpdk";
    snprintf(p->base.info.name, sizeof p->base.info.name, "%s", name);
    if (find_port(name, &p->pid)) {
        char ports[512];
        list_ports(ports, sizeof ports);
        snprintf(err, errlen, "DPDK port '%s' does not exist (ports: %s)%s%s%s", name, ports,
                 eal.log[0] ? "; the EAL said: " : "", eal.log,
                 geteuid() ? " (not root: DPDK's devices need root, or CAP_NET_RAW for "
                             "net_af_packet)"
                           : "");
        r = -ENODEV;
        goto fail;
    }
    struct rte_eth_dev_info di;
    if ((r = rte_eth_dev_info_get(p->pid, &di))) {
        snprintf(err, errlen, "%s: rte_eth_dev_info_get: %s", name, rte_strerror(-r));
        goto fail;
    }
    uint16_t mtu = 1500;
    rte_eth_dev_get_mtu(p->pid, &mtu);
    char ifname[IF_NAMESIZE] = "";
    if (di.if_index)
        if_indextoname(di.if_index, ifname);
    snprintf(p->base.info.detail, sizeof p->base.info.detail, "%s%s%s, MTU %u", di.driver_name,
             ifname[0] ? " on " : "", ifname, mtu);
    int sw = software_device(di.driver_name);

    /* mbufs: headroom, then the largest frame (MTU, Ethernet header, two VLAN tags, FCS) */
    uint32_t frame = (uint32_t)mtu + 14 + 8 + 4;
    if (frame < 2048)
        frame = 2048;
    if (frame > MQO_FRAME_MAX)
        frame = MQO_FRAME_MAX;
    uint16_t nrx = (uint16_t)(cfg->ring_frames ? (cfg->ring_frames > 32768 ? 32768 : cfg->ring_frames)
                                               : DEFAULT_RING);
    uint16_t ntx = TX_RING;
    if (rte_eth_dev_adjust_nb_rx_tx_desc(p->pid, &nrx, &ntx)) {
        nrx = DEFAULT_RING;
        ntx = TX_RING;
    }
    /* One pool per frame size and NUMA node, shared by the ports that use it (a bump's two
     * ports: frames cross from one to the other anyway), sized for two ports. */
    unsigned nmbuf = 2u * ((unsigned)nrx + ntx) + POOL_EXTRA + cfg->max_frames;
    char pn[RTE_MEMPOOL_NAMESIZE];
    int socket = rte_eth_dev_socket_id(p->pid);
    if (socket < 0)
        socket = (int)rte_socket_id();
    snprintf(pn, sizeof pn, "mqo_%u_%d", frame, socket);
    uint16_t priv = (uint16_t)RTE_ALIGN(sizeof(struct dpdk_frame), RTE_MBUF_PRIV_ALIGN);
    if (!(p->pool = rte_mempool_lookup(pn))) {
        p->pool = rte_pktmbuf_pool_create(pn, nmbuf, POOL_CACHE, priv,
                                          (uint16_t)(RTE_PKTMBUF_HEADROOM + frame), socket);
        if (!p->pool) {
            snprintf(err, errlen,
                     "%s: no memory for %u mbufs of %u bytes (%s): give the EAL more (-m MB "
                     "in --eal) or use a smaller --ring", name, nmbuf, frame,
                     rte_strerror(rte_errno));
            r = -ENOMEM;
            goto fail;
        }
        eal.pools[eal.npools++] = p->pool;
    }
    p->base.info.frame_cap = frame;

    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    uint64_t want_tx = RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
    if ((di.tx_offload_capa & want_tx) == want_tx) {
        conf.txmode.offloads |= want_tx;
        p->tx_csum = 1;
        p->base.info.caps |= MQO_PORT_CAP_TX_CSUM;
    }
    /* TSO: IPv4 frames with the IP checksum and segments of chained mbufs, too */
    uint64_t want_tso = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
                        RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    if ((di.tx_offload_capa & want_tso) == want_tso) {
        conf.txmode.offloads |= want_tso;
        p->tso = 1;
        p->base.info.caps |= MQO_PORT_CAP_TSO;
        /* as many mbufs as the device gathers for one frame, up to what an IPv4 length says */
        uint32_t segs = di.tx_desc_lim.nb_seg_max ? di.tx_desc_lim.nb_seg_max : 64;
        uint64_t max = (uint64_t)(segs > 64 ? 64 : segs) * frame - 200;
        p->base.info.tso_max = max < TSO_MAX ? (uint32_t)max : TSO_MAX;
        /* net_tap checks a TSO segment's whole frame, Ethernet header included, against the
         * MTU (rte_gso's segment size is the frame's): its segments carry that much less */
        p->tso_l2_in_mtu = !strcmp(di.driver_name, "net_tap");
    }
    p->mtu = mtu;
    if (di.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) {
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
        p->base.info.caps |= MQO_PORT_CAP_RX_CSUM;
    }
    if (sw && (cfg->flags & MQO_PORT_SHARE_SW) &&
        (di.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)) {
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
        snprintf(pn, sizeof pn, "mqo_x_%d", socket);
        if (!(p->xpool = rte_mempool_lookup(pn))) {
            p->xpool = rte_pktmbuf_pool_create(
                pn, XPOOL_N, POOL_CACHE,
                (uint16_t)RTE_ALIGN(sizeof(struct ext_priv), RTE_MBUF_PRIV_ALIGN), 0, socket);
            if (p->xpool)
                eal.pools[eal.npools++] = p->xpool;
        }
        if (p->xpool)
            p->base.info.caps |= MQO_PORT_CAP_EXT;
    }
    p->base.info.caps |= MQO_PORT_CAP_POLL;
    p->tx_offloads = conf.txmode.offloads;
    struct capture cap;
    const char *step = "rte_eth_dev_configure";
    capture_begin(&cap);
    if (!(r = rte_eth_dev_configure(p->pid, 1, 1, &conf))) {
        struct rte_eth_rxconf rxc = di.default_rxconf;
        rxc.offloads = conf.rxmode.offloads;
        struct rte_eth_txconf txc = di.default_txconf;
        txc.offloads = conf.txmode.offloads;
        step = "queue setup";
        if (!(r = rte_eth_rx_queue_setup(p->pid, 0, nrx, (unsigned)socket, &rxc, p->pool)) &&
            !(r = rte_eth_tx_queue_setup(p->pid, 0, ntx, (unsigned)socket, &txc))) {
            step = "rte_eth_dev_start";
            r = rte_eth_dev_start(p->pid);
        }
    }
    capture_end(&cap, eal.dev_log);
    if (r) {
        snprintf(err, errlen, "%s (%s): %s: %s%s%s%s", name, di.driver_name, step,
                 rte_strerror(-r), eal.dev_log[0] ? " (" : "", eal.dev_log,
                 eal.dev_log[0] ? ")" : "");
        goto fail;
    }
    p->started = 1;
    if (cfg->promisc) {
        if (sw && di.if_index) {
            p->promisc_fd = mqo_pktio_promisc_hold(di.if_index);
            if (p->promisc_fd < 0) {
                r = p->promisc_fd;
                snprintf(err, errlen, "%s: promiscuous mode on %s: %s", name, ifname, strerror(-r));
                goto fail;
            }
        } else if (rte_eth_promiscuous_get(p->pid) == 0) {
            if ((r = rte_eth_promiscuous_enable(p->pid))) {
                snprintf(err, errlen, "%s: promiscuous mode: %s", name, rte_strerror(-r));
                goto fail;
            }
            p->promisc_dpdk = 1;
        }
    }
    size_t dl = strlen(p->base.info.detail);
    snprintf(p->base.info.detail + dl, sizeof p->base.info.detail - dl,
             ", %u RX descriptors%s%s%s%s", nrx, p->tx_csum ? ", TX checksum offload" : "",
             (p->base.info.caps & MQO_PORT_CAP_RX_CSUM) ? ", RX checksum offload" : "",
             p->tso ? ", TSO" : "",
             (p->base.info.caps & MQO_PORT_CAP_EXT) ? ", shared payload mbufs" : "");
    *out = &p->base;
    return 0;
fail:
    dpdk_close(&p->base);
    return r < 0 ? r : -EIO;
}

static const struct mqo_pktio_ops dpdk_ops = {
    .name = "dpdk",
    .close = dpdk_close,
    .rx_burst = dpdk_rx_burst,
    .tx_burst = dpdk_tx_burst,
    .alloc = dpdk_alloc,
    .free = dpdk_free,
    .detach = dpdk_detach,
    .fd = dpdk_fd,
    .stats = dpdk_stats,
    .attach = dpdk_attach,
    .append = dpdk_append,
    .steer = dpdk_steer,
};
