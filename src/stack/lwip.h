/* stack/: lwIP (Debian's liblwip 2.1.3) as a TCP/IP endpoint over a pktio port.
 *
 * The stack owns one IPv4 address on the port's interface (the kernel has none there): it
 * answers ARP for it, resolves its peers' (or the gateway's) MAC, and terminates TCP with
 * lwIP's raw API. Everything runs in the caller's thread, inside mqo_lwip_poll, _tick and the
 * caller's own raw-API calls: no tcpip thread is started (lwip_init, not tcpip_init), so
 * Debian's core-locking checks (NO_SYS=0, LWIP_TCPIP_CORE_LOCKING) stay off and nothing else
 * ever runs lwIP code. One stack per process (lwIP's state is global).
 *
 * Before lwIP sees a frame the stack drops (counted) what is not its own: frames to another
 * MAC, ARP about other addresses, IPv4 to other addresses, anything else than ARP and IPv4;
 * and a SYN to a listening port while syn_backlog half-open connections exist.
 *
 * Received frames are copied into PBUF_RAM pbufs (Debian's PBUF_POOL pbufs are smaller than a
 * full-size frame); sent frames are copied from lwIP's pbufs into the port's frames and sent
 * in bursts by mqo_lwip_flush. */
#ifndef MQO_STACK_LWIP_H
#define MQO_STACK_LWIP_H

#include <stddef.h>
#include <stdint.h>

#include "pktio/pktio.h"
#include "stack/filter.h"

struct mqo_lwip;

struct mqo_lwip_cfg {
    struct mqo_port *port; /* borrowed, outlives the stack */
    uint32_t addr, netmask, gateway; /* network order; gateway 0: none (peers on the link) */
    uint8_t mac[6];
    uint16_t mtu;         /* 0: 1500 */
    uint32_t syn_backlog; /* half-open (SYN received) connections at most; 0: 256 */
};

struct mqo_lwip_stats {
    uint64_t rx_frames, tx_frames;
    uint64_t rx_other_mac;   /* to another MAC address */
    uint64_t rx_other_addr;  /* IPv4 to another address, ARP about another address */
    uint64_t rx_other_proto; /* not IPv4 or ARP */
    uint64_t rx_nomem;       /* no pbuf for a frame: dropped (TCP sends it again) */
    uint64_t rx_oversize;    /* frames longer than a pbuf holds (64 KiB): dropped */
    uint64_t syn_dropped;    /* SYNs dropped for a full SYN backlog */
    uint64_t tx_dropped;     /* frames lost for want of a frame buffer or room */
};

/* Starts lwIP on the port. Returns 0, or -errno with a message in err. */
int mqo_lwip_open(const struct mqo_lwip_cfg *cfg, struct mqo_lwip **out, char *err,
                  size_t errlen);
/* Stops it. The caller has closed or aborted its PCBs. */
void mqo_lwip_close(struct mqo_lwip *s);

/* Receives up to a bounded number of frames and gives them to lwIP (its callbacks run here).
 * Returns how many frames were taken. */
int mqo_lwip_poll(struct mqo_lwip *s);
/* lwIP's timers (TCP retransmission, delayed ACKs, ARP); cheap when nothing is due. */
void mqo_lwip_tick(struct mqo_lwip *s);
/* Sends the frames lwIP produced since the last call, in bursts (what the port does not take
 * now stays queued, in order, up to a bound). */
void mqo_lwip_flush(struct mqo_lwip *s);
/* A descriptor readable when frames arrive (poll/epoll), -1: none (poll every iteration). */
int mqo_lwip_fd(const struct mqo_lwip *s);
/* Listening ports the SYN backlog applies to (host order); the stack counts half-open
 * connections of its PCBs itself. */
void mqo_lwip_set_listen_port(struct mqo_lwip *s, uint16_t port);
const struct mqo_lwip_stats *mqo_lwip_stats(const struct mqo_lwip *s);

/* Calls on a PCB from the stack's user, in place of lwIP's: the stack keeps its active PCBs
 * in buckets (lwIP's own lookup walks every connection), and these give lwIP the PCB's
 * bucket, from anywhere, also inside a callback of another PCB. They return lwIP's err_t.
 * _connect binds to the local address (network order) and a free local port first. */
struct tcp_pcb;
void mqo_lwip_tcp_abort(struct tcp_pcb *p);
int mqo_lwip_tcp_close(struct tcp_pcb *p);
int mqo_lwip_tcp_shutdown_tx(struct tcp_pcb *p);
int mqo_lwip_tcp_refused(struct tcp_pcb *p);
int mqo_lwip_tcp_connect(struct tcp_pcb *p, uint32_t local, uint32_t remote, uint16_t port,
                         signed char (*fn)(void *arg, struct tcp_pcb *p, signed char err));

/* The MAC address and MTU of a kernel interface: 0 or -errno. */
int mqo_lwip_if_info(const char *ifname, uint8_t mac[6], uint16_t *mtu);

#endif
