/* ctl internals shared by ctl.c (sockets), report.c (mqoffctl replies), metrics.c. */
#ifndef MQO_CTL_INT_H
#define MQO_CTL_INT_H

#include <cJSON.h>
#include <sys/types.h>

#include "core/buf.h"
#include "ctl/bvproto.h"
#include "ctl/ctl.h"

enum { PEER_NEW = 0, PEER_PLUGIN, PEER_CLIENT };

struct ctl_peer {
    struct ctl_peer *next;
    int fd;
    int role;
    uint8_t closing; /* close once out is written */
    uint32_t ev;     /* epoll events registered */
    pid_t pid;       /* SO_PEERCRED */
    uid_t uid;
    struct mqo_buf in, out;
    struct mqo_bvproto bvp;
};

/* Histogram of the per-message processing time, fixed buckets (seconds). */
#define CTL_NBUCKETS 16
extern const double mqo_ctl_buckets[CTL_NBUCKETS];
struct ctl_hist {
    uint64_t b[CTL_NBUCKETS + 1]; /* counts per bucket, the last one above every bound */
    uint64_t count;
    uint64_t sum_ns;
};

struct MHD_Daemon;

struct mqo_ctl {
    struct mqo_ctl_cfg cfg;
    struct mqo_engine *e;
    struct mqo_ctl_hooks hooks;
    int ep, lfd, mhd_fd;
    struct MHD_Daemon *mhd;
    char token[17];
    struct ctl_peer *peers;
    struct ctl_peer *plugin; /* the plugin's connection (one at a time), NULL: none */
    uint64_t started_ns, now;
    uint64_t plugin_hellos, plugin_losses, plugin_refused, requests, scrapes;
    uint64_t broker_reloads; /* reloads the plugin reported */
    struct ctl_hist hist[2]; /* [0] passed through, [1] offloaded */
    struct mqo_ctl_counter *ctrs; /* scratch for the mode's counters */
    size_t cap_ctrs;
};

/* The reply to one mqoffctl request line (report.c): a JSON object, malloc'd, NUL-terminated
 * (NULL on ENOMEM). */
char *ctl_reply(struct mqo_ctl *c, const char *line, size_t len);
/* The mode's counters into c->ctrs; returns how many (report.c). */
size_t ctl_mode_counters(struct mqo_ctl *c);
/* Every counter and gauge, the engine's then the mode's, as a JSON object (report.c). */
cJSON *ctl_stats_json(struct mqo_ctl *c);

/* metrics.c */
int ctl_metrics_open(struct mqo_ctl *c);
void ctl_metrics_close(struct mqo_ctl *c);
void ctl_metrics_run(struct mqo_ctl *c);
void ctl_observe(void *ud, uint64_t input_ns, int consumed);

/* The engine's counters as a list, shared by metrics and stats (metrics.c). Fills out[0..cap)
 * and returns how many there are. */
size_t ctl_engine_counters(const struct mqo_ctl *c, struct mqo_ctl_counter *out, size_t cap);

#endif
