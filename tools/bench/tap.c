/* mqoff-bench wire tap: distribution time measured on the client-side link.
 *
 * An AF_PACKET socket (SOCK_DGRAM: frames start at the IPv4 header) with a TPACKET_V3 receive
 * ring captures, through a small classic BPF filter, the TCP segments sent to the publishers'
 * port and those sent from the subscribers' port. Each TCP flow's byte stream is reassembled
 * (next expected sequence number per flow; a copy of bytes already seen, such as a
 * retransmission or loopback's second copy of every frame, is skipped) and cut into MQTT
 * packets. A PUBLISH toward the publishers' port whose payload carries a stamp of this run
 * is a start; a stamped PUBLISH from the subscribers' port is an arrival. Both are timed by
 * the kernel's timestamp of the frame that carries the PUBLISH's last byte (a PUBLISH can
 * neither be forwarded nor used before it is whole). Per message, the figure is the last
 * arrival minus the start.
 *
 * Limits: IPv4 only; a flow is followed from its SYN (the tap opens before the bench
 * connects); a hole in a flow (a frame the ring dropped) stops that flow's parsing and is
 * counted in tap gaps.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mqtt/mqtt.h"

#define TAP_BLOCK (1u << 20)
#define TAP_NBLOCKS 32u
#define TAP_FRAME (1u << 11)

struct flow {
    uint32_t saddr, daddr;
    uint16_t sport, dport;
    uint8_t used, synced;
    uint32_t next; /* next expected TCP sequence number */
    struct mqo_buf buf;
};

struct mqb_tap {
    int kind; /* MQB_EV_TAP */
    int idx;  /* MQB_TAP_CLIENT or MQB_TAP_SENDER */
    int fd;
    uint8_t *ring;
    size_t ring_len;
    unsigned cur;
    struct flow *flows;
    size_t cap, n;
};

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static size_t flow_hash(uint32_t sa, uint32_t da, uint16_t sp, uint16_t dp)
{
    uint64_t h = ((uint64_t)sa << 32 | da) * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)sp << 16 | dp) * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

/* Finds (or, with create, adds) a flow. NULL when absent or out of memory. */
static struct flow *flow_get(struct mqb_tap *t, uint32_t sa, uint32_t da, uint16_t sp, uint16_t dp, int create)
{
    if (create && (t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        struct flow *nf = calloc(ncap, sizeof *nf);
        if (!nf)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->flows[i].used)
                continue;
            size_t j = flow_hash(t->flows[i].saddr, t->flows[i].daddr, t->flows[i].sport, t->flows[i].dport) & (ncap - 1);
            while (nf[j].used)
                j = (j + 1) & (ncap - 1);
            nf[j] = t->flows[i];
        }
        free(t->flows);
        t->flows = nf;
        t->cap = ncap;
    }
    if (!t->cap)
        return NULL;
    size_t j = flow_hash(sa, da, sp, dp) & (t->cap - 1);
    while (t->flows[j].used) {
        struct flow *f = &t->flows[j];
        if (f->saddr == sa && f->daddr == da && f->sport == sp && f->dport == dp)
            return f;
        j = (j + 1) & (t->cap - 1);
    }
    if (!create)
        return NULL;
    struct flow *f = &t->flows[j];
    memset(f, 0, sizeof *f);
    f->used = 1;
    f->saddr = sa;
    f->daddr = da;
    f->sport = sp;
    f->dport = dp;
    t->n++;
    return f;
}

static void flow_reset(struct flow *f)
{
    f->synced = 0;
    mqo_buf_free(&f->buf);
}

/* Cuts the flow's bytes into MQTT packets; reports stamped PUBLISH payloads. */
static void flow_parse(struct mqb *b, struct mqb_tap *t, struct flow *f, uint64_t ts, int start)
{
    size_t off = 0;
    while (off < f->buf.len) {
        struct mqo_frame fr;
        ssize_t r = mqo_mqtt_frame(f->buf.data + off, f->buf.len - off, MQB_MAX_PACKET, &fr);
        if (r == 0)
            break;
        if (r < 0) { /* not MQTT we can follow */
            b->wire[t->idx].gaps++;
            flow_reset(f);
            return;
        }
        if (fr.type == MQO_PUBLISH) {
            const uint8_t *body = f->buf.data + off + fr.hdr_len;
            uint32_t rem = fr.remaining, pos = 2;
            unsigned qos = (fr.flags >> 1) & 3;
            if (rem >= 2) {
                pos += be16(body);
                if (qos)
                    pos += 2;
                if (b->cfg.mqtt == MQO_MQTT_V5 && pos < rem) {
                    uint32_t plen = 0, shift = 0, k = 0;
                    while (pos + k < rem && k < 4) {
                        uint8_t c = body[pos + k++];
                        plen |= (uint32_t)(c & 0x7f) << shift;
                        shift += 7;
                        if (!(c & 0x80))
                            break;
                    }
                    pos += k + plen;
                }
                if (pos <= rem)
                    mqb_track_tap(b, t->idx, body + pos, rem - pos, ts, start);
            }
        }
        off += (size_t)r;
    }
    mqo_buf_consume(&f->buf, off);
}

static void on_frame(struct mqb *b, struct mqb_tap *t, const uint8_t *p, uint32_t len, uint32_t wire_len,
                     uint64_t ts)
{
    struct mqb_wire *w = &b->wire[t->idx];
    w->frames++;
    if (len < 20 || (p[0] >> 4) != 4)
        return;
    uint32_t ihl = (p[0] & 15u) * 4;
    uint32_t tot = be16(p + 2);
    if (tot == 0) /* large offloaded segment */
        tot = wire_len;
    if (p[9] != 6 || (be16(p + 6) & 0x3fff) || ihl < 20 || tot < ihl + 20 || len < ihl + 20)
        return;
    const uint8_t *tcp = p + ihl;
    uint32_t doff = (uint32_t)(tcp[12] >> 4) * 4;
    if (doff < 20 || tot < ihl + doff)
        return;
    uint16_t sp = be16(tcp), dp = be16(tcp + 2);
    int start;
    if (dp == b->cfg.port)
        start = 1;
    else if (sp == b->cfg.sub_port)
        start = 0;
    else
        return;
    uint32_t sa = be32(p + 12), da = be32(p + 16), seq = be32(tcp + 4);
    uint8_t flags = tcp[13];
    struct flow *f = flow_get(t, sa, da, sp, dp, (flags & 0x02) != 0);
    if (!f)
        return;
    if (flags & 0x02) { /* SYN */
        flow_reset(f);
        f->synced = 1;
        f->next = seq + 1;
        return;
    }
    if (!f->synced)
        return;
    uint32_t plen = tot - ihl - doff;
    if (plen) {
        const uint8_t *pay = tcp + doff;
        int32_t rel = (int32_t)(seq - f->next);
        if (rel > 0 || ihl + doff + plen > len) { /* a hole, or a frame cut short */
            w->gaps++;
            flow_reset(f);
            return;
        }
        uint32_t skip = (uint32_t)(-rel);
        if (skip < plen) {
            if (mqo_buf_append(&f->buf, pay + skip, plen - skip)) {
                w->gaps++;
                flow_reset(f);
                return;
            }
            f->next += plen - skip;
            flow_parse(b, t, f, ts, start);
        }
    }
    if (flags & 0x05) /* FIN, RST */
        flow_reset(f);
}

static void tap_poll(struct mqb *b, struct mqb_tap *t)
{
    for (unsigned guard = 0; guard < TAP_NBLOCKS; guard++) {
        struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(t->ring + (size_t)t->cur * TAP_BLOCK);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            return;
        uint32_t n = bd->hdr.bh1.num_pkts;
        uint32_t off = bd->hdr.bh1.offset_to_first_pkt;
        for (uint32_t i = 0; i < n && off && off < TAP_BLOCK; i++) {
            const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)((const uint8_t *)bd + off);
            if (off + sizeof *h > TAP_BLOCK || (size_t)off + h->tp_net + h->tp_snaplen > TAP_BLOCK)
                break;
            uint64_t ts = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
            on_frame(b, t, (const uint8_t *)h + h->tp_net, h->tp_snaplen, h->tp_len, ts);
            if (!h->tp_next_offset)
                break;
            off += h->tp_next_offset;
        }
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        t->cur = (t->cur + 1) % TAP_NBLOCKS;
    }
}

void mqb_tap_poll(struct mqb *b)
{
    for (int k = 0; k < MQB_TAPS; k++)
        if (b->wire[k].tap)
            tap_poll(b, b->wire[k].tap);
}

/* Enters network namespace `ns` (/run/netns/NS, as ip-netns names it); *back gets a descriptor
 * of the one we were in. Returns 0 or -1 with a message. */
static int netns_enter(const char *opt, const char *ns, int *back)
{
    char path[128];
    if (!*ns || strchr(ns, '/') || snprintf(path, sizeof path, "/run/netns/%s", ns) >= (int)sizeof path) {
        fprintf(stderr, "mqoff-bench: %s: bad network namespace name \"%s\"\n", opt, ns);
        return -1;
    }
    *back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*back < 0 || fd < 0 || setns(fd, CLONE_NEWNET)) {
        fprintf(stderr, "mqoff-bench: %s: network namespace %s: %s\n", opt, ns, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (*back >= 0)
            close(*back);
        return -1;
    }
    close(fd);
    return 0;
}

static void netns_leave(int back)
{
    if (setns(back, CLONE_NEWNET)) { /* cannot happen with a descriptor of our own namespace */
        fprintf(stderr, "mqoff-bench: cannot return to the network namespace: %s\n", strerror(errno));
        abort();
    }
    close(back);
}

static int tap_socket(struct mqb *b, int idx, const char *opt, const char *spec, const char *ifname);

int mqb_tap_open(struct mqb *b, int idx)
{
    const char *opt = idx == MQB_TAP_CLIENT ? "--tap" : "--sender-tap";
    const char *spec = b->cfg.tap_if[idx], *colon = strchr(spec, ':');
    if (b->cfg.pub_addr.ss_family != AF_INET || b->cfg.sub_addr.ss_family != AF_INET) {
        fprintf(stderr, "mqoff-bench: %s follows IPv4 connections only\n", opt);
        return -1;
    }
    if (!colon)
        return tap_socket(b, idx, opt, spec, spec);
    char ns[64];
    size_t n = (size_t)(colon - spec);
    if (n >= sizeof ns) {
        fprintf(stderr, "mqoff-bench: %s %s: network namespace name too long\n", opt, spec);
        return -1;
    }
    memcpy(ns, spec, n);
    ns[n] = 0;
    int back;
    if (netns_enter(opt, ns, &back))
        return -1;
    /* the interface is looked up and the socket made and bound inside the namespace; it keeps
     * capturing there after we leave */
    int r = tap_socket(b, idx, opt, spec, colon + 1);
    netns_leave(back);
    return r;
}

static int tap_socket(struct mqb *b, int idx, const char *opt, const char *spec, const char *ifname)
{
    unsigned ifindex = if_nametoindex(ifname);
    if (!ifindex) {
        fprintf(stderr, "mqoff-bench: %s %s: no such interface\n", opt, spec);
        return -1;
    }
    struct mqb_tap *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->kind = MQB_EV_TAP;
    t->idx = idx;
    t->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); /* captures nothing until bound */
    if (t->fd < 0) {
        fprintf(stderr, "mqoff-bench: %s: AF_PACKET socket: %s%s\n", opt, strerror(errno),
                errno == EPERM ? " (needs CAP_NET_RAW)" : "");
        free(t);
        return -1;
    }
    int v = TPACKET_V3;
    struct tpacket_req3 req = {
        .tp_block_size = TAP_BLOCK,
        .tp_block_nr = TAP_NBLOCKS,
        .tp_frame_size = TAP_FRAME,
        .tp_frame_nr = TAP_BLOCK / TAP_FRAME * TAP_NBLOCKS,
        .tp_retire_blk_tov = 2, /* ms: a partly filled block reaches us this late at most */
    };
    /* TCP, not a fragment, from the subscribers' port or to the publishers' port */
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 8),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 6, 0),
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, b->cfg.sub_port, 2, 0),
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, b->cfg.port, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 262144),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    const char *what = "PACKET_VERSION";
    if (setsockopt(t->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v))
        goto fail;
    what = "PACKET_RX_RING";
    if (setsockopt(t->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req))
        goto fail;
    what = "mmap";
    t->ring_len = (size_t)TAP_BLOCK * TAP_NBLOCKS;
    t->ring = mmap(NULL, t->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    if (t->ring == MAP_FAILED) {
        t->ring = NULL;
        goto fail;
    }
    what = "SO_ATTACH_FILTER";
    if (setsockopt(t->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog))
        goto fail;
    /* Receive timestamps taken where a frame reaches the interface: asking for them turns on
     * the kernel's receive timestamping, which (net.core.netdev_tstamp_prequeue = 1, the
     * default) stamps a frame in netif_rx, before RPS queues it to another core. Without it
     * the ring stamps a frame when its receive processing reaches the tap, after any wait in
     * that queue: with the clients' receive work on another core (bench/run.sh rps-), that
     * would time how fast the clients' core gets through a burst, not its arrival. */
    what = "SO_TIMESTAMPNS";
    int on = 1;
    if (setsockopt(t->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on))
        goto fail;
    what = "bind";
    /* ETH_P_ALL: a socket bound to ETH_P_IP sees only frames arriving on the interface, and
     * the publishers' outgoing PUBLISH frames (the start of every measurement) would be missed;
     * non-IPv4 frames are dropped by the parser */
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)ifindex};
    if (bind(t->fd, (struct sockaddr *)&sll, sizeof sll))
        goto fail;
    what = "epoll_ctl";
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = t};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, t->fd, &ev))
        goto fail;
    b->wire[idx].tap = t;
    return 0;
fail:
    fprintf(stderr, "mqoff-bench: %s %s: %s: %s\n", opt, spec, what, strerror(errno));
    if (t->ring)
        munmap(t->ring, t->ring_len);
    close(t->fd);
    free(t);
    return -1;
}

void mqb_tap_close(struct mqb *b)
{
    for (int k = 0; k < MQB_TAPS; k++) {
        struct mqb_tap *t = b->wire[k].tap;
        if (!t)
            continue;
        struct tpacket_stats_v3 st;
        socklen_t l = sizeof st;
        if (getsockopt(t->fd, SOL_PACKET, PACKET_STATISTICS, &st, &l) == 0)
            b->wire[k].drops += st.tp_drops;
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, t->fd, NULL);
        munmap(t->ring, t->ring_len);
        close(t->fd);
        for (size_t i = 0; i < t->cap; i++)
            mqo_buf_free(&t->flows[i].buf);
        free(t->flows);
        free(t);
        b->wire[k].tap = NULL;
    }
}
