/* intercept mode: mqoff owns the broker's listening address and hands each client connection to
 * an unmodified broker as a local stream, through the shim the broker runs with
 * (libmqoff-intercept.so, src/preload/shim.c) and the channel between them (src/chan/chan.h).
 * The loop, the engine and the output queues are proxy mode's (modes/proxy.h): only the broker
 * side of a connection differs, a socketpair whose other end goes to the broker, where the
 * broker's accept() returns it, instead of a TCP connection. */
#ifndef MQO_MODES_INTERCEPT_H
#define MQO_MODES_INTERCEPT_H

#include <stdint.h>

#include "modes/proxy.h"

struct mqo_intercept_cfg {
    /* listen_addr, engine, queues, I/O, signals as for proxy mode; broker_addr and upstream
     * are not used */
    struct mqo_proxy_cfg proxy;
    const char *channel;   /* path of the channel's Unix socket, created (and removed) here */
    uint32_t heartbeat_ms; /* the shim's heartbeat interval, 0: 1000; 5 missed: detached */
};

struct mqo_intercept_stats {
    uint64_t attaches;     /* a broker attached its listener */
    uint64_t detaches;     /* ... and went away (exit, channel lost, silent) */
    uint64_t handed;       /* client connections handed to a broker */
    uint64_t refused;      /* clients refused (CONNACK server unavailable): no broker, no room */
    uint64_t handoff_lost; /* handed-off connections closed before the broker took them */
    uint64_t bad_peers;    /* channel peers refused or dropped (version, busy, malformed) */
};

/* Runs intercept mode until *cfg->proxy.stop. Returns 0, or -errno when it cannot start (the
 * channel path is in use, listen failure, ...), logged. Counters are written to the stats
 * pointers that are not NULL. */
int mqo_intercept_run(const struct mqo_intercept_cfg *cfg, struct mqo_engine_stats *est,
                      struct mqo_proxy_stats *pst, struct mqo_intercept_stats *ist);

#endif
