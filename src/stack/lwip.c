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

struct mqo_lwip {
    struct mqo_lwip_cfg cfg;
    struct netif nif;
    struct mqo_lwip_stats st;
    struct mqo_rawframe **txq; /* ring of frames not yet taken by the port */
    size_t txh, txn;
    uint16_t listen_port; /* host order, 0: none */
};

static int g_inited;

static int ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
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
        free(s->txq);
        free(s);
        return -EINVAL;
    }
    netif_set_default(&s->nif);
    netif_set_up(&s->nif);
    netif_set_link_up(&s->nif);
    *out = s;
    return 0;
}

void mqo_lwip_close(struct mqo_lwip *s)
{
    if (!s)
        return;
    mqo_lwip_flush(s);
    netif_set_down(&s->nif);
    netif_remove(&s->nif);
    while (s->txn) {
        mqo_frame_free(s->txq[s->txh]);
        s->txh = (s->txh + 1) % TXQ_MAX;
        s->txn--;
    }
    free(s->txq);
    free(s);
}

/* Half-open connections now (SYN_RCVD PCBs). */
static uint32_t half_open(void)
{
    uint32_t n = 0;
    for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
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
        uint32_t h = half_open();
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
            if (s->nif.input(p, &s->nif) != ERR_OK)
                pbuf_free(p);
        }
        if (n < RX_BURST)
            break;
    }
    return total;
}

void mqo_lwip_tick(struct mqo_lwip *s) { sys_check_timeouts(); }

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
