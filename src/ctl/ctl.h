/* ctl/: the control plane of a running mqoff.
 *
 *  - the control socket (--control PATH, a Unix stream socket): the broker plugin reports the
 *    broker's sessions and subscriptions on it (bvproto.h), and mqoffctl asks for status,
 *    subscriptions, connections, counters and configuration; docs/CONTROL.md is the protocol;
 *  - the metrics endpoint (--metrics ADDR:PORT): Prometheus text format over HTTP
 *    (libmicrohttpd, driven from the mode's loop, no thread).
 *
 * Everything runs in the mode's thread: the mode polls mqo_ctl_fd() for readability and calls
 * mqo_ctl_run() then, and at least every 100 ms (timeouts). Nothing here blocks.
 */
#ifndef MQO_CTL_CTL_H
#define MQO_CTL_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct mqo_ctl;

/* A counter or gauge of the mode's own (proxy sockets, monitor frames and TCP splice). */
struct mqo_ctl_counter {
    const char *name;   /* Prometheus name, mqoff_..._total for counters, base units */
    const char *labels; /* label pairs without braces (`side="client"`), NULL: none */
    const char *help;
    uint64_t value;
    uint8_t gauge;
};

/* For a counters hook: copies v[0..n) to out as far as cap allows and returns n. */
size_t mqo_ctl_counters_put(struct mqo_ctl_counter *out, size_t cap,
                            const struct mqo_ctl_counter *v, size_t n);

struct mqo_ctl_cfg {
    const char *path;    /* the control socket; NULL: none */
    const char *group;   /* give the socket to this group (mode 0660); NULL: owner only */
    const char *metrics; /* ADDR:PORT of the metrics endpoint; NULL: none */
    const char *mode;    /* "proxy", "monitor" */
    const char *version;
    /* what `mqoffctl config` shows, as key/value pairs (2 * n_config strings) */
    const char *const *config;
    size_t n_config;
};

struct mqo_ctl_hooks {
    /* Fills out[0..cap) with the mode's counters; returns how many it has (it may have more
     * than cap: the caller asks again with room). NULL: none. */
    size_t (*counters)(void *arg, struct mqo_ctl_counter *out, size_t cap);
    /* The broker reports that it reloaded its configuration (as a SIGHUP to mqoff says). */
    void (*broker_reloaded)(void *arg);
    void *arg;
};

/* Opens the socket and the endpoint of cfg for engine e. Returns 0 and *out, or -errno with
 * the reason logged (the path is taken by something other than a socket, the address cannot
 * be bound). */
int mqo_ctl_new(const struct mqo_ctl_cfg *cfg, struct mqo_engine *e,
                const struct mqo_ctl_hooks *hooks, struct mqo_ctl **out);
/* Closes everything (the socket file is removed); the engine drops the broker's view. */
void mqo_ctl_free(struct mqo_ctl *c);

/* The descriptor to poll for readability. */
int mqo_ctl_fd(const struct mqo_ctl *c);
/* Serves what is ready: new connections, the plugin's reports, mqoffctl's requests, scrapes.
 * Call when mqo_ctl_fd() is readable, and at least every 100 ms. */
void mqo_ctl_run(struct mqo_ctl *c, uint64_t now_ns);

/* The page served at /metrics (NUL-terminated, malloc'd; NULL on ENOMEM). For tests. */
char *mqo_ctl_metrics_page(struct mqo_ctl *c);

#endif
