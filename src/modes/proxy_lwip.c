/* proxy mode on lwIP: the stack ops of proxy mode's loop (modes/proxy_int.h) over lwIP's raw
 * TCP API (stack/lwip.h). A side's handle is its tcp_pcb; the pcb's argument is the connection
 * with the side in its low bit.
 *
 * Writes copy (TCP_WRITE_FLAG_COPY): the bytes of the output queue, a fan-out's shared
 * serialization included, are copied into lwIP's segments, which frees the queue at once.
 * Referencing the shared serialization (no flag) would save that copy per subscriber but
 * requires keeping every message alive until lwIP reports it acknowledged (tcp_sent counts
 * bytes, not messages); the copy of a small PUBLISH costs less than the per-segment work
 * around it (docs/BENCHMARKS.md). Back-pressure: what lwIP's send buffer (64 KiB) does not
 * take stays in the output queue, which the loop bounds as for kernel sockets; a side whose
 * input must pause refuses it (ERR_MEM: lwIP keeps it and stops acknowledging), offered
 * again on resume. */
#include "modes/proxy_lwip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "core/log.h"
#include "modes/proxy_int.h"
#include "stack/lwip.h"

/* Memory exhaustion. Debian's lwIP allocates with malloc (MEMP_MEM_MALLOC), also for its own
 * timers, and aborts when such an allocation fails (an assertion in sys_timeout): it must not
 * run out. So a new connection is accepted only while PROBE_BLOCKS allocations of PROBE bytes
 * succeed (headroom), and RESERVE_BLOCKS such blocks taken at start are given back the first time an
 * allocation failed anyway, for the existing connections (taken again once memory is back; new
 * connections wait for that). */
#define PROBE (4u << 10) /* small: freed memory between live allocations counts */
#define PROBE_BLOCKS 64     /* the probe: this many blocks of PROBE bytes */
#define RESERVE_BLOCKS 256 /* of PROBE bytes: the reserve, in the heap as lwIP's allocations */

struct lw {
    const struct mqo_proxy_cfg *cfg;
    const struct mqo_proxy_lwip_cfg *lc;
    struct mqo_lwip *s;
    struct proxy *px;
    struct tcp_pcb *lpcb;
    uint32_t addr; /* network order */
    uint64_t refused_limit, refused_nomem, broker_nomem;
    uint64_t logged_limit, logged_nomem; /* counts when last logged */
    time_t logged_at_limit, logged_at_nomem;
    void *reserve[RESERVE_BLOCKS]; /* given back when an allocation failed; [0]: held */
    uint64_t probed_at;            /* CLOCK_MONOTONIC ns of the last probe */
    int probe_ok;
};

static int memory_ok(struct lw *l)
{
    if (!l->reserve[0])
        return 0;
    /* the probe's blocks grow the heap and free trims it again (page faults): at most one
     * probe per 10 ms, its verdict holds meanwhile (an accept storm probes 100 times a s) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (l->probed_at && now - l->probed_at < 10000000ull)
        return l->probe_ok;
    l->probed_at = now;
    void *p[PROBE_BLOCKS];
    int n = 0;
    while (n < PROBE_BLOCKS && (p[n] = malloc(PROBE)))
        n++;
    for (int i = 0; i < n; i++)
        free(p[i]);
    l->probe_ok = n == PROBE_BLOCKS;
    return l->probe_ok;
}

static void memory_failed(struct lw *l)
{
    l->probe_ok = 0;
    for (int i = 0; i < RESERVE_BLOCKS; i++) {
        free(l->reserve[i]);
        l->reserve[i] = NULL;
    }
}

static void reserve_take(struct lw *l)
{
    for (int i = 0; i < RESERVE_BLOCKS; i++)
        if (!(l->reserve[i] = malloc(PROBE))) {
            memory_failed(l);
            return;
        }
    if (!memory_ok(l))
        memory_failed(l);
}

static void *tagp(struct pconn *pc, int side) { return (void *)((uintptr_t)pc | (uintptr_t)side); }
static struct pconn *tag_pc(void *arg) { return (struct pconn *)((uintptr_t)arg & ~(uintptr_t)1); }
static int tag_side(void *arg) { return (int)((uintptr_t)arg & 1); }

/* At most one line per 10 s for each kind of refusal, with the count since the last. */
static void log_refusal(uint64_t n, uint64_t *logged, time_t *at, const char *what)
{
    time_t now = time(NULL);
    if (n == *logged || (*at && now - *at < 10))
        return;
    mqo_warn("%s: refused %llu new connection(s); existing connections go on", what,
             (unsigned long long)(n - *logged));
    *logged = n;
    *at = now;
}

static int lw_errno(err_t e)
{
    switch (e) {
    case ERR_RST: return ECONNREFUSED; /* a reset while connecting: nothing listens */
    case ERR_ABRT: return ETIMEDOUT;   /* lwIP gave up (retransmissions) */
    case ERR_MEM: return ENOMEM;
    case ERR_RTE: return EHOSTUNREACH;
    default: return ECONNRESET;
    }
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    if (!arg) { /* not ours any more */
        if (p) {
            tcp_recved(pcb, p->tot_len);
            pbuf_free(p);
        }
        return ERR_OK;
    }
    struct pconn *pc = tag_pc(arg);
    int side = tag_side(arg);
    if (!p) {
        mqo_px_eof(pc, side);
        return ERR_OK;
    }
    if (!mqo_px_reading(pc, side))
        return ERR_MEM; /* lwIP keeps it: offered again on resume */
    for (struct pbuf *q = p; q; q = q->next)
        mqo_px_input(pc, side, q->payload, q->len);
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    if (arg)
        mqo_px_writable(tag_pc(arg), tag_side(arg));
    return ERR_OK;
}

/* Every second or so: what a write refused for want of memory (nothing in flight, so no
 * on_sent comes) is tried again. */
static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
    if (arg)
        mqo_px_writable(tag_pc(arg), tag_side(arg));
    return ERR_OK;
}

/* The pcb is gone (lwIP freed it): a reset, or lwIP gave up. */
static void on_err(void *arg, err_t err)
{
    if (arg)
        mqo_px_gone(tag_pc(arg), tag_side(arg), lw_errno(err));
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    if (arg)
        mqo_px_connected(tag_pc(arg));
    return ERR_OK;
}

static void own(struct tcp_pcb *pcb, struct pconn *pc, int side)
{
    tcp_arg(pcb, tagp(pc, side));
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_poll(pcb, on_poll, 2);
    tcp_nagle_disable(pcb);
}

static void to_sockaddr(const ip_addr_t *a, u16_t port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    sa->sin_addr.s_addr = ip4_addr_get_u32(ip_2_ip4(a));
}

static err_t on_accept(void *arg, struct tcp_pcb *npcb, err_t err)
{
    struct lw *l = arg;
    if (err != ERR_OK || !npcb || !memory_ok(l)) { /* no memory for another connection */
        if (err != ERR_OK || !npcb)
            memory_failed(l);
        l->refused_nomem++;
        log_refusal(l->refused_nomem, &l->logged_nomem, &l->logged_at_nomem,
                    "lwIP out of memory");
        if (npcb) {
            mqo_lwip_tcp_abort(npcb);
            return ERR_ABRT;
        }
        return ERR_VAL;
    }
    uint32_t max = l->lc->max_conns ? l->lc->max_conns : 100000;
    if (mqo_px_conns(l->px) >= max) {
        l->refused_limit++;
        log_refusal(l->refused_limit, &l->logged_limit, &l->logged_at_limit,
                    "connection limit (--max-conns) reached");
        mqo_lwip_tcp_abort(npcb); /* a reset: the client may try again later */
        return ERR_ABRT;
    }
    struct sockaddr_in peer, local;
    to_sockaddr(&npcb->remote_ip, npcb->remote_port, &peer);
    to_sockaddr(&npcb->local_ip, npcb->local_port, &local);
    struct pconn *pc = mqo_px_accepted(l->px, npcb, (struct sockaddr *)&peer, sizeof peer,
                                       (struct sockaddr *)&local, sizeof local);
    if (!pc) {
        memory_failed(l);
        l->refused_nomem++;
        mqo_lwip_tcp_abort(npcb);
        return ERR_ABRT;
    }
    own(npcb, pc, MQO_PX_CLIENT);
    return ERR_OK;
}

/* ---- the stack's ops ---- */

static int op_start(void *arg, struct proxy *px)
{
    struct lw *l = arg;
    l->px = px;
    const struct sockaddr_in *la = (const struct sockaddr_in *)&l->cfg->listen_addr;
    struct tcp_pcb *p = tcp_new();
    if (!p) {
        mqo_err("lwIP: cannot create the listening connection (out of memory)");
        return -ENOMEM;
    }
    ip_addr_t a = IPADDR4_INIT(la->sin_addr.s_addr);
    if (tcp_bind(p, &a, ntohs(la->sin_port)) != ERR_OK) {
        tcp_close(p);
        mqo_err("lwIP: cannot listen on port %u", ntohs(la->sin_port));
        return -EADDRINUSE;
    }
    struct tcp_pcb *lp = tcp_listen_with_backlog(p, 255);
    if (!lp) {
        tcp_close(p);
        mqo_err("lwIP: cannot listen (out of memory)");
        return -ENOMEM;
    }
    l->lpcb = lp;
    tcp_arg(lp, l);
    tcp_accept(lp, on_accept);
    mqo_lwip_set_listen_port(l->s, lp->local_port);
    if (l->cfg->on_listen)
        l->cfg->on_listen(l->cfg->on_listen_arg, lp->local_port);
    return 0;
}

static void op_poll(void *arg)
{
    struct lw *l = arg;
    mqo_lwip_poll(l->s);
}

static void op_flush(void *arg)
{
    struct lw *l = arg;
    mqo_lwip_flush(l->s);
}

static void op_tick(void *arg, uint64_t now_ns)
{
    struct lw *l = arg;
    mqo_lwip_tick(l->s);
    if (!l->reserve[0]) /* taken again once there is room for it and a probe */
        reserve_take(l);
    log_refusal(l->refused_limit, &l->logged_limit, &l->logged_at_limit,
                "connection limit (--max-conns) reached");
    log_refusal(l->refused_nomem, &l->logged_nomem, &l->logged_at_nomem, "lwIP out of memory");
}

static void *op_connect(void *arg, struct pconn *pc, int *err)
{
    struct lw *l = arg;
    const struct sockaddr_in *ba = (const struct sockaddr_in *)&l->cfg->broker_addr;
    struct tcp_pcb *p = tcp_new();
    if (!p) {
        l->broker_nomem++;
        *err = ENOMEM;
        return NULL;
    }
    own(p, pc, MQO_PX_BROKER);
    err_t e = (err_t)mqo_lwip_tcp_connect(p, l->addr, ba->sin_addr.s_addr, ntohs(ba->sin_port),
                                          on_connected);
    if (e != ERR_OK) {
        tcp_arg(p, NULL);
        mqo_lwip_tcp_abort(p);
        *err = lw_errno(e);
        return NULL;
    }
    return p;
}

static ssize_t op_send(void *arg, void *h, struct mqo_outq *q)
{
    struct tcp_pcb *p = h;
    size_t total = 0;
    while (q->bytes) {
        struct iovec iov[16];
        uint8_t scratch[16 * 3];
        int k = mqo_outq_iov(q, iov, 16, scratch);
        size_t took = 0;
        int full = 0;
        for (int i = 0; i < k; i++) {
            if (!iov[i].iov_len) /* an emptied chunk kept for reuse */
                continue;
            size_t room = tcp_sndbuf(p);
            size_t n = iov[i].iov_len < room ? iov[i].iov_len : room;
            if (n > 0xffff)
                n = 0xffff;
            if (!n) {
                full = 1;
                break;
            }
            u8_t fl = TCP_WRITE_FLAG_COPY | (i + 1 < k || n < q->bytes - took ? TCP_WRITE_FLAG_MORE : 0);
            err_t e = tcp_write(p, iov[i].iov_base, (u16_t)n, fl);
            if (e == ERR_MEM) { /* lwIP's segment queue is full: on_sent calls again */
                full = 1;
                break;
            }
            if (e != ERR_OK)
                return -EIO;
            took += n;
            if (n < iov[i].iov_len) {
                full = 1;
                break;
            }
        }
        mqo_outq_advance(q, took);
        total += took;
        if (full || !took)
            break;
    }
    tcp_output(p);
    return (ssize_t)total;
}

static void op_send_raw(void *arg, void *h, const uint8_t *b, size_t n)
{
    struct tcp_pcb *p = h;
    if (n <= tcp_sndbuf(p) && tcp_write(p, b, (u16_t)n, TCP_WRITE_FLAG_COPY) == ERR_OK)
        tcp_output(p);
}

static void op_shut(void *arg, void *h)
{
    struct tcp_pcb *p = h;
    mqo_lwip_tcp_shutdown_tx(p);
}

static void op_resume(void *arg, void *h)
{
    struct tcp_pcb *p = h;
    if (p->refused_data)
        mqo_lwip_tcp_refused(p);
}

static void op_close(void *arg, void *h, int abort)
{
    struct tcp_pcb *p = h;
    tcp_arg(p, NULL);
    tcp_recv(p, NULL);
    tcp_sent(p, NULL);
    tcp_err(p, NULL);
    tcp_poll(p, NULL, 0);
    if (abort) {
        tcp_output(p); /* what it is owed goes before the reset */
        mqo_lwip_tcp_abort(p);
    } else if (mqo_lwip_tcp_close(p) != ERR_OK) {
        mqo_lwip_tcp_abort(p);
    }
}

static size_t op_counters(void *arg, struct mqo_ctl_counter *out, size_t cap)
{
    struct lw *l = arg;
    const struct mqo_lwip_stats *s = mqo_lwip_stats(l->s);
    const struct mqo_ctl_counter v[] = {
        {"mqoff_lwip_frames_total", "dir=\"rx\"", "frames received on the stack's interface",
         s->rx_frames, 0},
        {"mqoff_lwip_frames_total", "dir=\"tx\"", "frames sent by the stack", s->tx_frames, 0},
        {"mqoff_lwip_ignored_frames_total", "why=\"mac\"", "frames not for the stack",
         s->rx_other_mac, 0},
        {"mqoff_lwip_ignored_frames_total", "why=\"addr\"", "frames not for the stack",
         s->rx_other_addr, 0},
        {"mqoff_lwip_ignored_frames_total", "why=\"proto\"", "frames not for the stack",
         s->rx_other_proto, 0},
        {"mqoff_lwip_syn_dropped_total", NULL, "SYNs dropped for a full SYN backlog",
         s->syn_dropped, 0},
        {"mqoff_lwip_refused_total", "why=\"limit\"", "connections refused", l->refused_limit,
         0},
        {"mqoff_lwip_refused_total", "why=\"nomem\"", "connections refused", l->refused_nomem,
         0},
    };
    return mqo_ctl_counters_put(out, cap, v, sizeof v / sizeof v[0]);
}

static uint32_t mask_bits(uint32_t m)
{
    return (uint32_t)__builtin_popcount(m);
}

int mqo_proxy_lwip_run(const struct mqo_proxy_cfg *cfg, struct mqo_engine_stats *est,
                       struct mqo_proxy_stats *pst)
{
    const struct mqo_proxy_lwip_cfg *lc = cfg->stack_cfg;
    if (cfg->listen_addr.ss_family != AF_INET ||
        (!cfg->upstream && cfg->broker_addr.ss_family != AF_INET)) {
        mqo_err("--stack lwip: IPv4 addresses only");
        return -EAFNOSUPPORT;
    }
    const struct sockaddr_in *la = (const struct sockaddr_in *)&cfg->listen_addr;
    struct lw l = {.cfg = cfg, .lc = lc, .addr = la->sin_addr.s_addr};
    if (!l.addr) {
        mqo_err("--stack lwip: --listen needs the stack's own address, not 0.0.0.0");
        return -EINVAL;
    }
    char err[256] = "";
    struct mqo_lwip_cfg sc = {.addr = l.addr,
                              .netmask = lc->netmask ? lc->netmask : htonl(0xffffff00u),
                              .gateway = lc->gateway,
                              .syn_backlog = lc->syn_backlog};
    uint16_t mtu = 0;
    if (lc->mac) {
        if (mqo_lwip_parse_mac(lc->mac, sc.mac)) {
            mqo_err("--mac: '%s' is not an interface's MAC address (aa:bb:cc:dd:ee:ff)", lc->mac);
            return -EINVAL;
        }
        (void)mqo_lwip_if_info(lc->port.ifname, (uint8_t[6]){0}, &mtu);
    } else if (mqo_lwip_if_info(lc->port.ifname, sc.mac, &mtu)) {
        mqo_err("--iface %s: cannot read its MAC address: give --mac", lc->port.ifname);
        return -EINVAL;
    }
    sc.mtu = mtu;
    struct mqo_port_cfg pcfg = lc->port;
    pcfg.promisc = lc->mac != NULL; /* frames to a MAC the interface does not have */
    int rc = mqo_port_open(&pcfg, &sc.port, err, sizeof err);
    if (rc) {
        mqo_err("--iface: %s", err);
        return rc;
    }
    rc = mqo_lwip_open(&sc, &l.s, err, sizeof err);
    if (rc) {
        mqo_err("lwIP: %s", err);
        mqo_port_close(sc.port);
        return rc;
    }
    const struct mqo_port_info *pi = mqo_port_info(sc.port);
    char ip[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN] = "none";
    inet_ntop(AF_INET, &l.addr, ip, sizeof ip);
    if (sc.gateway)
        inet_ntop(AF_INET, &sc.gateway, gw, sizeof gw);
    mqo_info("lwIP on %s (%s%s%s): %s/%u, MAC %02x:%02x:%02x:%02x:%02x:%02x, MTU %u, gateway %s",
             pi->name, pi->backend, pi->detail[0] ? ", " : "", pi->detail, ip,
             mask_bits(sc.netmask), sc.mac[0], sc.mac[1], sc.mac[2], sc.mac[3], sc.mac[4],
             sc.mac[5], sc.mtu ? sc.mtu : 1500, gw);
    struct mqo_px_stack st = {.arg = &l,
                              .fd = mqo_lwip_fd(l.s),
                              .start = op_start,
                              .poll = op_poll,
                              .flush = op_flush,
                              .tick = op_tick,
                              .connect = op_connect,
                              .send = op_send,
                              .send_raw = op_send_raw,
                              .shut = op_shut,
                              .resume = op_resume,
                              .close = op_close,
                              .counters = op_counters};
    reserve_take(&l);
    rc = mqo_px_run(cfg, &st, est, pst);
    if (l.lpcb)
        mqo_lwip_tcp_close(l.lpcb);
    const struct mqo_lwip_stats *s = mqo_lwip_stats(l.s);
    fprintf(stderr,
            "lwip: rx_frames %llu, tx_frames %llu, ignored_mac %llu, ignored_addr %llu, "
            "ignored_proto %llu, rx_nomem %llu, rx_oversize %llu, syn_dropped %llu, "
            "tx_dropped %llu, refused_limit %llu, refused_nomem %llu\n",
            (unsigned long long)s->rx_frames, (unsigned long long)s->tx_frames,
            (unsigned long long)s->rx_other_mac, (unsigned long long)s->rx_other_addr,
            (unsigned long long)s->rx_other_proto, (unsigned long long)s->rx_nomem,
            (unsigned long long)s->rx_oversize,
            (unsigned long long)s->syn_dropped, (unsigned long long)s->tx_dropped,
            (unsigned long long)l.refused_limit, (unsigned long long)l.refused_nomem);
    mqo_lwip_close(l.s);
    mqo_port_close(sc.port);
    memory_failed(&l);
    return rc;
}
