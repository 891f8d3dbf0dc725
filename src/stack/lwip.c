/* stack/lwip.c: lwIP's netif over a pktio port (see lwip.h). */
#include "stack/lwip.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#include "core/log.h"
#include "l2/parse.h"
#include "stack/filter.h"

#define RX_BURST 64
#define RX_PER_POLL 1024 /* frames per poll at most: the loop's other work goes on */
#define TXQ_MAX 8192     /* frames waiting for room in the port at most */
#define TX_RESERVE 512   /* frame buffers allocated at start */
#define NBKT 4096        /* buckets of active PCBs (a power of two) */
#define LPORT_FIRST 0xc000u /* local ports of outgoing connections: 49152-65535, as lwIP's */

struct mqo_lwip {
    struct mqo_lwip_cfg cfg;
    struct netif nif;
    struct mqo_lwip_stats st;
    struct mqo_rawframe **txq; /* ring of frames not yet taken by the port */
    size_t txh, txn;
    uint16_t listen_port; /* host order, 0: none */
    /* Active PCBs by bucket (see "PCB buckets" below): split, lwIP's tcp_active_pcbs holds
     * only the bucket `cur` (-1: none) while lwIP runs, and bkt[] the others. */
    struct tcp_pcb **bkt;
    int split, cur;
    int check;          /* MQOFF_LWIP_CHECK: verify the buckets after every change (tests) */
    uint32_t next_port; /* the next local port to try for an outgoing connection */
    /* the TCP timers' pass over the buckets (see "TCP timers by bucket") */
    uint64_t pass_t0;   /* ms, when the current pass began */
    uint32_t pass_pos;  /* its next bucket */
    int slow_pass;      /* it runs tcp_slowtmr too */
    int ctr_known;
    uint8_t ctr;        /* lwIP's timer counter as last seen */
};

static int g_inited;
static struct mqo_lwip *g_s; /* the process's one stack */

static void split(struct mqo_lwip *s);
static void merge(struct mqo_lwip *s);

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* lwIP hands a frame to send (one pbuf, or a chain for frames ARP queued). */
static err_t linkoutput(struct netif *nif, struct pbuf *p)
{
    struct mqo_lwip *s = nif->state;
    if (s->txn >= TXQ_MAX) {
        s->st.tx_dropped++;
        return ERR_OK; /* lost on the wire, as far as TCP knows: it sends again */
    }
    /* the port's buffers come back as it sends: send what waits before taking more */
    if (s->txn >= TX_RESERVE / 2)
        mqo_lwip_flush(s);
    struct mqo_rawframe *f = mqo_frame_alloc(s->cfg.port);
    if (!f && s->txn) {
        mqo_lwip_flush(s);
        f = mqo_frame_alloc(s->cfg.port);
    }
    if (!f || p->tot_len > f->cap) {
        if (f)
            mqo_frame_free(f);
        s->st.tx_dropped++;
        return ERR_OK;
    }
    f->len = pbuf_copy_partial(p, f->data, p->tot_len, 0);
    s->txq[(s->txh + s->txn) % TXQ_MAX] = f;
    s->txn++;
    return ERR_OK;
}

static err_t netif_setup(struct netif *nif)
{
    struct mqo_lwip *s = nif->state;
    nif->name[0] = 'm';
    nif->name[1] = 'q';
    nif->mtu = s->cfg.mtu;
    nif->hwaddr_len = 6;
    memcpy(nif->hwaddr, s->cfg.mac, 6);
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
                 NETIF_FLAG_LINK_UP;
    nif->output = etharp_output;
    nif->linkoutput = linkoutput;
    return ERR_OK;
}

int mqo_lwip_open(const struct mqo_lwip_cfg *cfg, struct mqo_lwip **out, char *err,
                  size_t errlen)
{
    if (g_inited) {
        snprintf(err, errlen, "one lwIP stack per process");
        return -EBUSY;
    }
    struct mqo_lwip *s = calloc(1, sizeof *s);
    if (s)
        s->txq = calloc(TXQ_MAX, sizeof *s->txq);
    if (!s || !s->txq) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->cfg = *cfg;
    s->bkt = calloc(NBKT, sizeof *s->bkt);
    if (!s->bkt) {
        free(s->txq);
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const char *chk = getenv("MQOFF_LWIP_CHECK");
    s->check = chk && *chk && strcmp(chk, "0") != 0;
    if (!s->cfg.mtu)
        s->cfg.mtu = 1500;
    if (!s->cfg.syn_backlog)
        s->cfg.syn_backlog = 256;
    uint32_t cap = mqo_port_info(cfg->port)->frame_cap;
    if (cap && cap < (uint32_t)s->cfg.mtu + 18u)
        s->cfg.mtu = (uint16_t)(cap - 18u);
    /* Frame buffers for sending, taken now: a port recycles its buffers, so the stack sends
     * (ACKs, FINs, resets, data) without allocating once warm, even when memory runs out. */
    struct mqo_rawframe *warm[TX_RESERVE];
    int nw = 0;
    while (nw < TX_RESERVE && (warm[nw] = mqo_frame_alloc(cfg->port)))
        nw++;
    while (nw)
        mqo_frame_free(warm[--nw]);
    srand((unsigned)ms_now() ^ (unsigned)getpid()); /* lwIP's ISNs and local ports: rand() */
    lwip_init();
    g_inited = 1;
    ip4_addr_t a, m, g;
    ip4_addr_set_u32(&a, cfg->addr);
    ip4_addr_set_u32(&m, cfg->netmask);
    ip4_addr_set_u32(&g, cfg->gateway);
    if (!netif_add(&s->nif, &a, &m, &g, s, netif_setup, ethernet_input)) {
        snprintf(err, errlen, "lwIP refused the interface");
        free(s->bkt);
        free(s->txq);
        free(s);
        return -EINVAL;
    }
    netif_set_default(&s->nif);
    netif_set_up(&s->nif);
    netif_set_link_up(&s->nif);
    s->next_port = (uint32_t)rand();
    g_s = s;
    split(s);
    *out = s;
    return 0;
}

void mqo_lwip_close(struct mqo_lwip *s)
{
    if (!s)
        return;
    mqo_lwip_flush(s);
    if (s->split)
        merge(s); /* lwIP's list whole again, as lwIP knows it */
    g_s = NULL;
    netif_set_down(&s->nif);
    netif_remove(&s->nif);
    while (s->txn) {
        mqo_frame_free(s->txq[s->txh]);
        s->txh = (s->txh + 1) % TXQ_MAX;
        s->txn--;
    }
    free(s->txq);
    free(s->bkt);
    free(s);
}

/* ---- PCB buckets ----
 * lwIP finds a received segment's PCB by walking tcp_active_pcbs, the list of every active
 * connection: with thousands of clients that walk is most of the stack's work. Debian's lwIP
 * has no hashed lookup, so the stack keeps the active PCBs in NBKT lists by a hash of their
 * remote address, remote port and local port (the local address is the stack's one), and
 * hands lwIP only the segment's list: tcp_active_pcbs is a bucket while lwIP runs.
 *  - a segment: its bucket (a SYN's new PCB is registered there too, as it should);
 *  - a fragment of TCP: its reassembly may complete any connection's segment, so the whole
 *    list (merged, then split again);
 *  - the timers (they walk every PCB, 4 times a second): the whole list;
 *  - a call on a PCB from the caller (abort, close, shutdown, connect, refused data), also
 *    from inside a callback of another PCB: that PCB's bucket, the current one saved and
 *    restored (mqo_lwip_tcp_*). lwIP registers, removes and moves PCBs only in the list it
 *    is handed, which is then the PCB's own bucket.
 * Closing a listening PCB walks every list (it forgets the listener in its PCBs): merged. */
static uint32_t bkt_hash(uint32_t rip, uint16_t rport, uint16_t lport)
{
    uint32_t h = rip * 0x9e3779b1u ^ ((uint32_t)rport << 16 | lport) * 0x85ebca6bu;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h & (NBKT - 1);
}

static uint32_t pcb_bkt(const struct tcp_pcb *p)
{
    return bkt_hash(ip4_addr_get_u32(ip_2_ip4(&p->remote_ip)), p->remote_port, p->local_port);
}

static void check_buckets(const struct mqo_lwip *s, const char *where)
{
    size_t n = 0;
    for (uint32_t b = 0; b < NBKT; b++) {
        const struct tcp_pcb *h = (int)b == s->cur ? tcp_active_pcbs : s->bkt[b];
        for (const struct tcp_pcb *p = h; p; p = p->next) {
            if (pcb_bkt(p) != b || p->state == CLOSED || p->state == LISTEN ||
                p->state == TIME_WAIT || ++n > 10000000) {
                mqo_err("lwIP PCB buckets broken after %s: PCB in state %d in bucket %u of %u",
                        where, (int)p->state, b, pcb_bkt(p));
                abort();
            }
        }
    }
    if (s->cur < 0 && tcp_active_pcbs) {
        mqo_err("lwIP PCB buckets broken after %s: a list outside the buckets", where);
        abort();
    }
}

static void split(struct mqo_lwip *s)
{
    struct tcp_pcb *p = tcp_active_pcbs, *next;
    for (; p; p = next) {
        next = p->next;
        uint32_t b = pcb_bkt(p);
        p->next = s->bkt[b];
        s->bkt[b] = p;
    }
    tcp_active_pcbs = NULL;
    s->split = 1;
    s->cur = -1;
    if (s->check)
        check_buckets(s, "split");
}

static void merge(struct mqo_lwip *s)
{
    struct tcp_pcb *head = tcp_active_pcbs, **tail = &head;
    while (*tail)
        tail = &(*tail)->next;
    for (uint32_t b = 0; b < NBKT; b++) {
        if (!s->bkt[b])
            continue;
        *tail = s->bkt[b];
        s->bkt[b] = NULL;
        while (*tail)
            tail = &(*tail)->next;
    }
    tcp_active_pcbs = head;
    s->split = 0;
    s->cur = -1;
}

/* Makes bucket b lwIP's list; returns what to give leave(). */
static int enter(struct mqo_lwip *s, uint32_t b)
{
    int prev = s->cur;
    if (prev >= 0)
        s->bkt[prev] = tcp_active_pcbs;
    s->cur = (int)b;
    tcp_active_pcbs = s->bkt[b];
    return prev;
}

static void leave(struct mqo_lwip *s, int prev, const char *where)
{
    s->bkt[s->cur] = tcp_active_pcbs;
    s->cur = prev;
    tcp_active_pcbs = prev >= 0 ? s->bkt[prev] : NULL;
    if (s->check)
        check_buckets(s, where);
}

/* The bucket of a received frame (the stack's filter passed it): 0..NBKT-1 for a TCP segment,
 * -1 for a fragment of TCP (its reassembly may complete any connection's segment), -2 for
 * anything else (no PCB looked up; a malformed TCP header is lwIP's to drop). */
static int frame_bkt(const uint8_t *d, size_t len)
{
    if (len < 14 + 20 || d[12] != 0x08 || d[13] != 0x00)
        return -2;
    const uint8_t *ip = d + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    if (ip[9] != 6)
        return -2;
    if (((ip[6] << 8 | ip[7]) & 0x3fff) != 0) /* MF or an offset */
        return -1;
    if (ihl < 20 || len < 14 + ihl + 4)
        return -2;
    uint32_t src;
    memcpy(&src, ip + 12, 4);
    const uint8_t *t = ip + ihl;
    return (int)bkt_hash(src, (uint16_t)(t[0] << 8 | t[1]), (uint16_t)(t[2] << 8 | t[3]));
}

static void input(struct mqo_lwip *s, struct pbuf *p, int b)
{
    int prev = 0;
    if (b == -1 && s->split)
        merge(s);
    else if (b >= 0 && s->split)
        prev = enter(s, (uint32_t)b);
    if (s->nif.input(p, &s->nif) != ERR_OK)
        pbuf_free(p);
    if (b == -1 && !s->split)
        split(s);
    else if (b >= 0 && s->split)
        leave(s, prev, "a segment");
}

void mqo_lwip_tcp_abort(struct tcp_pcb *p)
{
    struct mqo_lwip *s = g_s;
    if (!s || !s->split) {
        tcp_abort(p);
        return;
    }
    int prev = enter(s, pcb_bkt(p));
    tcp_abort(p);
    leave(s, prev, "an abort");
}

int mqo_lwip_tcp_close(struct tcp_pcb *p)
{
    struct mqo_lwip *s = g_s;
    if (!s || !s->split)
        return tcp_close(p);
    if (p->state == LISTEN) { /* lwIP forgets the listener in every PCB */
        int was = s->cur;
        if (was >= 0)
            s->bkt[was] = tcp_active_pcbs, tcp_active_pcbs = NULL, s->cur = -1;
        merge(s);
        err_t e = tcp_close(p);
        split(s);
        if (was >= 0)
            s->cur = was, tcp_active_pcbs = s->bkt[was], s->bkt[was] = NULL;
        return e;
    }
    int prev = enter(s, pcb_bkt(p));
    err_t e = tcp_close(p);
    leave(s, prev, "a close");
    return e;
}

int mqo_lwip_tcp_shutdown_tx(struct tcp_pcb *p)
{
    struct mqo_lwip *s = g_s;
    if (!s || !s->split)
        return tcp_shutdown(p, 0, 1);
    int prev = enter(s, pcb_bkt(p));
    err_t e = tcp_shutdown(p, 0, 1);
    leave(s, prev, "a shutdown");
    return e;
}

int mqo_lwip_tcp_refused(struct tcp_pcb *p)
{
    struct mqo_lwip *s = g_s;
    if (!s || !s->split)
        return tcp_process_refused_data(p);
    int prev = enter(s, pcb_bkt(p));
    err_t e = tcp_process_refused_data(p);
    leave(s, prev, "refused data");
    return e;
}

int mqo_lwip_tcp_connect(struct tcp_pcb *p, uint32_t local, uint32_t remote, uint16_t port,
                         tcp_connected_fn fn)
{
    struct mqo_lwip *s = g_s;
    ip_addr_t la = IPADDR4_INIT(local), ra = IPADDR4_INIT(remote);
    if (!s || !s->split) {
        err_t e = tcp_bind(p, &la, 0);
        return e == ERR_OK ? tcp_connect(p, &ra, port, fn) : e;
    }
    /* the local port chosen here, so that the bucket lwIP checks for a port in use is the one
     * the connection goes to: every active PCB with this local port has the same peer */
    for (int tries = 0; tries < 4096; tries++) {
        uint16_t lport = (uint16_t)(LPORT_FIRST + s->next_port++ % (0x10000u - LPORT_FIRST));
        int prev = enter(s, bkt_hash(remote, port, lport));
        err_t e = tcp_bind(p, &la, lport);
        if (e == ERR_OK)
            e = tcp_connect(p, &ra, port, fn);
        leave(s, prev, "a connect");
        if (e != ERR_USE || p->local_port)
            return e;
    }
    return ERR_USE;
}

/* Half-open connections now (SYN_RCVD PCBs). */
static uint32_t half_open(const struct mqo_lwip *s)
{
    uint32_t n = 0;
    for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
        n += p->state == SYN_RCVD;
    if (s->split)
        for (uint32_t b = 0; b < NBKT; b++)
            if ((int)b != s->cur)
                for (struct tcp_pcb *p = s->bkt[b]; p; p = p->next)
                    n += p->state == SYN_RCVD;
    return n;
}

/* 1 when the frame is the stack's to see (counted otherwise). */
static int wanted(struct mqo_lwip *s, const uint8_t *d, size_t len, uint32_t *syn_budget,
                  int *have_budget)
{
    switch (mqo_lwip_classify(d, len, s->cfg.mac, s->cfg.addr, s->listen_port)) {
    case MQO_LWIP_PASS: return 1;
    case MQO_LWIP_OTHER_MAC: s->st.rx_other_mac++; return 0;
    case MQO_LWIP_OTHER_ADDR: s->st.rx_other_addr++; return 0;
    case MQO_LWIP_OTHER_PROTO: s->st.rx_other_proto++; return 0;
    case MQO_LWIP_SYN: break;
    }
    /* a SYN to the listening port: bounded by the SYN backlog */
    if (!*have_budget) {
        uint32_t h = half_open(s);
        *syn_budget = h < s->cfg.syn_backlog ? s->cfg.syn_backlog - h : 0;
        *have_budget = 1;
    }
    if (!*syn_budget) {
        s->st.syn_dropped++;
        return 0;
    }
    (*syn_budget)--;
    return 1;
}

int mqo_lwip_poll(struct mqo_lwip *s)
{
    struct mqo_rawframe *v[RX_BURST];
    int total = 0;
    uint32_t syn_budget = 0;
    int have_budget = 0;
    while (total < RX_PER_POLL) {
        int n = mqo_port_rx_burst(s->cfg.port, v, RX_BURST);
        if (n <= 0)
            break;
        total += n;
        for (int i = 0; i < n; i++) {
            struct mqo_rawframe *f = v[i];
            s->st.rx_frames++;
            if (!wanted(s, f->data, f->len, &syn_budget, &have_budget)) {
                mqo_frame_free(f);
                continue;
            }
            if (f->len > UINT16_MAX) { /* a super-segment: more than a pbuf holds */
                s->st.rx_oversize++;
                mqo_frame_free(f);
                continue;
            }
            if (f->flags & MQO_FRAME_CSUM_PARTIAL)
                mqo_cksum_complete4(f->data, f->len); /* lwIP checks every sum */
            struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)f->len, PBUF_RAM);
            if (!p) {
                s->st.rx_nomem++;
                mqo_frame_free(f);
                continue;
            }
            memcpy(p->payload, f->data, f->len);
            mqo_frame_free(f);
            input(s, p, frame_bkt(p->payload, p->len));
        }
        if (n < RX_BURST)
            break;
    }
    return total;
}

/* ---- TCP timers by bucket ----
 * lwIP's TCP timers walk every active PCB at once, every 250 ms (delayed ACKs, refused data)
 * and every 500 ms (retransmission, keep-alive, the states' timeouts): with thousands of
 * connections each walk held the loop for milliseconds, and every delayed ACK left in one
 * burst. Here lwIP's own TCP timer runs over an empty active list (it still counts tcp_ticks,
 * the TCP clock, and serves the TIME_WAIT PCBs), and the stack runs tcp_fasttmr over the
 * buckets spread evenly across each 250 ms, tcp_slowtmr too every other pass: every PCB still
 * gets each timer once per period, at the same tcp_ticks.
 * lwIP marks the PCBs a timer call visited (last_timer, its counter's value, a counter the
 * stack cannot read) so that a walk restarted after a callback skips them; the stack learns
 * that value after each call and marks a bucket's PCBs with it before the next, so that no
 * PCB is taken as visited by a call that did not visit it. */
static void timer_bucket(struct mqo_lwip *s, uint32_t b, int slow)
{
    int prev = enter(s, b);
    struct tcp_pcb *tw = tcp_tw_pcbs; /* lwIP's own timer serves TIME_WAIT */
    tcp_tw_pcbs = NULL;
    for (int pass = 0; pass < 1 + slow && tcp_active_pcbs; pass++) {
        if (s->ctr_known)
            for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
                p->last_timer = s->ctr;
        if (pass == 0) {
            tcp_fasttmr();
        } else {
            tcp_ticks--; /* tcp_slowtmr counts it up again: the clock is lwIP's own timer's */
            tcp_slowtmr();
        }
        if (tcp_active_pcbs) { /* visited, or created during the call: the counter's value */
            s->ctr = tcp_active_pcbs->last_timer;
            s->ctr_known = 1;
        }
    }
    if (tcp_tw_pcbs) { /* none expected: kept if a callback closed one all the same */
        struct tcp_pcb *t = tcp_tw_pcbs;
        while (t->next)
            t = t->next;
        t->next = tw;
    } else {
        tcp_tw_pcbs = tw;
    }
    leave(s, prev, "the timers");
}

static void timer_buckets(struct mqo_lwip *s, uint32_t from, uint32_t to)
{
    for (uint32_t b = from; b < to; b++)
        if (s->bkt[b])
            timer_bucket(s, b, s->slow_pass);
}

void mqo_lwip_tick(struct mqo_lwip *s)
{
    if (!s->split) {
        sys_check_timeouts();
        return;
    }
    if (sys_timeouts_sleeptime() == 0) {
        sys_check_timeouts(); /* ARP, reassembly, and lwIP's TCP timer over no active PCB */
        /* lwIP stops its TCP timer when it sees no PCB: it keeps the clock, so rearm it */
        for (uint32_t b = 0; b < NBKT; b++)
            if (s->bkt[b]) {
                tcp_active_pcbs = s->bkt[b];
                tcp_timer_needed();
                tcp_active_pcbs = NULL;
                break;
            }
    }
    uint64_t now = ms_now();
    if (!s->pass_t0)
        s->pass_t0 = now;
    uint64_t el = now - s->pass_t0;
    if (el >= TCP_TMR_INTERVAL) { /* the pass is over: what is left of it now, then the next */
        timer_buckets(s, s->pass_pos, NBKT);
        s->pass_t0 = el >= 2 * TCP_TMR_INTERVAL ? now : s->pass_t0 + TCP_TMR_INTERVAL;
        s->pass_pos = 0;
        s->slow_pass = !s->slow_pass;
        el = now - s->pass_t0;
    }
    uint32_t due = (uint32_t)(el * NBKT / TCP_TMR_INTERVAL);
    if (due > NBKT)
        due = NBKT;
    if (due > s->pass_pos) {
        timer_buckets(s, s->pass_pos, due);
        s->pass_pos = due;
    }
}

void mqo_lwip_flush(struct mqo_lwip *s)
{
    while (s->txn) {
        struct mqo_rawframe *v[64];
        int k = 0;
        for (size_t i = 0; i < s->txn && k < 64; i++)
            v[k++] = s->txq[(s->txh + i) % TXQ_MAX];
        int sent = mqo_port_tx_burst(s->cfg.port, v, k);
        if (sent < 0)
            sent = 0;
        s->txh = (s->txh + (size_t)sent) % TXQ_MAX;
        s->txn -= (size_t)sent;
        s->st.tx_frames += (uint64_t)sent;
        if (sent < k)
            break; /* the port is full: the rest waits for the next iteration */
    }
}

int mqo_lwip_fd(const struct mqo_lwip *s) { return mqo_port_fd(s->cfg.port); }

void mqo_lwip_set_listen_port(struct mqo_lwip *s, uint16_t port) { s->listen_port = port; }

const struct mqo_lwip_stats *mqo_lwip_stats(const struct mqo_lwip *s) { return &s->st; }

int mqo_lwip_if_info(const char *ifname, uint8_t mac[6], uint16_t *mtu)
{
    struct ifreq ifr;
    if (strlen(ifname) >= sizeof ifr.ifr_name)
        return -ENAMETOOLONG;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, ifname);
    int rc = 0;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        rc = -errno;
    else
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    if (!rc && mtu) {
        *mtu = 1500;
        if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0 && ifr.ifr_mtu < 65536)
            *mtu = (uint16_t)ifr.ifr_mtu;
    }
    close(fd);
    return rc;
}
