/* proxy mode: mqoff as a terminating TCP endpoint. Clients connect to it instead of the broker;
 * each client connection gets its own connection to the broker, and every byte of both goes
 * through the engine. Kernel sockets, one epoll loop, one thread, no thread per connection. */
#ifndef MQO_MODES_PROXY_H
#define MQO_MODES_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "ctl/ctl.h"
#include "engine/engine.h"
#include "modes/reload.h"

/* Where the broker side of each client connection comes from when it is not a TCP connection
 * to broker_addr (intercept mode hands each client to the broker over a local channel). */
struct mqo_proxy_upstream {
    /* Opens the broker side for a client that connected from peer to local (its address on the
     * listener). Returns a connected non-blocking stream socket the proxy owns, or -errno when
     * no broker can take the client now (open says why in the log): the client's CONNECT is
     * then answered "server unavailable" and the connection closed. */
    int (*open)(void *arg, const struct sockaddr *peer, socklen_t peer_len,
                const struct sockaddr *local, socklen_t local_len);
    /* A descriptor the loop waits on (readable) with the function it calls then; -1: none. */
    int fd;
    void (*ready)(void *arg, uint64_t now_ns);
    /* Called every 50 ms (may be NULL). */
    void (*tick)(void *arg, uint64_t now_ns);
    /* Takeover (may be NULL: then a takeover is refused). start: no takeover happened, set up
     * afresh (0 or -errno); save: appends the upstream's state to out and its descriptors to
     * *fds, *nfds (malloc'd), 0 or -errno; load: the new process gets them back (the
     * descriptors are its own then, also on failure), 0 or -errno; handed: the old process
     * handed everything over (it exits, keeping what the new one uses). */
    int (*start)(void *arg);
    int (*save)(void *arg, struct mqo_buf *out, int **fds, size_t *nfds);
    int (*load)(void *arg, const uint8_t *p, size_t n, const int *fds, size_t nfds);
    void (*handed)(void *arg);
    void *arg;
};

struct mqo_proxy_stats;

struct mqo_proxy_cfg {
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    struct sockaddr_storage broker_addr;
    socklen_t broker_len;
    struct mqo_engine_cfg engine; /* ops/ud are the proxy's own */
    /* Bytes queued toward one client above which QoS 0 deliveries are dropped (counted) and
     * QoS 1 messages go to the broker; the broker's own bytes pause the broker socket at twice
     * this. 0: 4 MiB. */
    size_t max_queue;
    int backlog; /* listen backlog, 0: 4096 */
    /* How queued bytes are written: one writev per socket per loop iteration, or one io_uring
     * submission carrying a send for every socket with something queued. */
    enum { MQO_PROXY_IO_WRITEV = 0, MQO_PROXY_IO_URING } io;
    /* After an event, keep polling without sleeping for this long (microseconds; 0: sleep at
     * once). Trades CPU for the wake-up latency of the next event. */
    uint32_t busy_poll_us;
    /* Set by a signal handler to stop the loop. */
    volatile int *stop;
    /* Optional: files that change at run time (the acl_file); *hup, set by a SIGHUP handler,
     * says the broker reloaded them (modes/reload.h). The loop clears *hup. */
    struct mqo_reload *reload;
    volatile int *hup;
    /* Optional: the broker side comes from here instead of a connection to broker_addr. */
    const struct mqo_proxy_upstream *upstream;
    /* Optional: the control socket and metrics endpoint (ctl/ctl.h); NULL: none. */
    const struct mqo_ctl_cfg *ctl;
    /* Optional: another TCP/IP stack than the kernel's sockets runs the loop (proxy_lwip.h:
     * mqo_proxy_lwip_run, its configuration in stack_cfg); mqo_proxy_run calls it. */
    int (*stack_run)(const struct mqo_proxy_cfg *cfg, struct mqo_engine_stats *est,
                     struct mqo_proxy_stats *pst);
    const void *stack_cfg;
    /* Optional: takeover socket (net/takeover.h): a process listening there hands this one its
     * listener, connections and engine state; this one then listens there for the next. */
    const char *takeover;
    /* Optional: a takeover request is refused with this reason (a mode that cannot hand over
     * yet). */
    const char *takeover_refuse;
    /* Optional: set by a SIGUSR2 handler: start the successor (mqo_tko_spawn). Cleared. */
    volatile int *upgrade;
    /* Optional: called with the listening port once listening (tests bind port 0). */
    void (*on_listen)(void *arg, uint16_t port);
    void *on_listen_arg;
};

struct mqo_proxy_stats {
    uint64_t accepted;
    uint64_t closed;
    uint64_t broker_connect_failed; /* upstream: clients refused, no broker to take them */
    uint64_t bytes_from_clients;
    uint64_t bytes_to_clients;
    uint64_t bytes_from_broker;
    uint64_t bytes_to_broker;
    uint64_t writev_calls; /* socket writes (writev calls or io_uring sends) */
    uint64_t paused_broker_reads; /* times a broker socket was paused for a slow client */
};

/* Runs the proxy until *cfg->stop becomes non-zero. Returns 0, or -errno when it cannot start
 * (listen failure, ...), with the reason logged. On return the engine's and the proxy's
 * counters are written to *est and *pst when not NULL. */
int mqo_proxy_run(const struct mqo_proxy_cfg *cfg, struct mqo_engine_stats *est,
                  struct mqo_proxy_stats *pst);

/* ---- takeover state (for the fuzz target) ----
 * The proxy's part of a takeover's state: one record per connection, with its engine
 * connection's id, its sockets as indexes into the descriptors handed over (0 is the
 * listener), its queues and flags; then the engine's snapshot (mqo_engine_load). */
struct mqo_proxy_rec_side {
    uint32_t fd; /* index, UINT32_MAX: none */
    uint8_t rd_closed, want_shut, wr_shut, paused;
    const uint8_t *q; /* queued bytes (into the state) */
    size_t qlen;
};
struct mqo_proxy_rec {
    uint64_t id;
    struct mqo_proxy_rec_side s[2];
    uint8_t connecting, broker_failed, closing, reset, connect_version;
    const uint8_t *sniff;
    size_t sniff_len;
    uint64_t fail_deadline;
};
struct mqo_proxy_snap {
    uint32_t nfds;
    uint32_t up_fds; /* the upstream's descriptors: the last up_fds of them */
    const uint8_t *up; /* the upstream's state */
    size_t up_len;
    struct mqo_proxy_stats st;
    struct mqo_proxy_rec *v; /* malloc'd */
    size_t n;
    const uint8_t *engine; /* the engine's snapshot */
    size_t engine_len;
};
/* Parses a proxy takeover state of n bytes handed with nfds descriptors. Returns 0 (free
 * out->v) or -EINVAL (nothing to free), -EPROTO for another format version, -ENOMEM. Every
 * descriptor index is checked (< nfds, each used once, 0 the listener's). */
int mqo_proxy_snap_parse(const uint8_t *p, size_t n, size_t nfds, struct mqo_proxy_snap *out);

#endif
