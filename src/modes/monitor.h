/* monitor mode: the transparent bump-in-the-wire. Clients on port a, the broker host on port b;
 * every frame is forwarded, TCP connections to the broker's address and port are spliced (the
 * MQTT engine edits both streams, tcp/splice.h keeps both ends' sequence numbers right).
 *
 * IPv4 fragments of TCP to or from the broker's address are reassembled when their connection
 * is spliced, and forwarded untouched otherwise (monitor.c says how the two are told apart). */
#ifndef MQO_MODES_MONITOR_H
#define MQO_MODES_MONITOR_H

#include "ctl/ctl.h"
#include "engine/engine.h"
#include "l2/frag.h"
#include "modes/bump.h"
#include "modes/reload.h"
#include "tcp/splice.h"

struct mqo_monitor_cfg {
    struct mqo_bump_cfg bump;     /* ports, l2, impairment; the hook is the monitor's */
    struct mqo_splice_cfg splice; /* broker address, engine config; emit is the monitor's */
    /* the reassembler's limits (0: its defaults; keep is the monitor's) */
    struct mqo_frag_cfg frag;
    int no_reassembly; /* every fragment is forwarded untouched (a spliced one is lost) */
    /* A segment ending with at least this many bytes of a fan-out's shared payload sends
     * them from the shared message (tcp/splice.h emit_shared); 0: the splice's default,
     * SIZE_MAX: never (every frame a copy). Set to anything else, DPDK's software devices
     * reference the payload too (MQO_PORT_SHARE_SW). */
    size_t share_min;
    /* Optional: files that change at run time (the acl_file); *hup, set by a SIGHUP handler,
     * says the broker reloaded them (modes/reload.h). The loop clears *hup. */
    struct mqo_reload *reload;
    volatile int *hup;
    /* Optional: the control socket and metrics endpoint (ctl/ctl.h); NULL: none. */
    const struct mqo_ctl_cfg *ctl;
    /* Optional: takeover socket (net/takeover.h): a monitor listening there hands this one its
     * spliced connections' and the engine's state; this one then listens there. */
    const char *takeover;
    /* Optional: the spliced connections' table in shared memory (tcp/ctab.h): after a crash,
     * the next monitor started on it resets both ends of every connection it lists. */
    const char *conn_table;
    /* Optional: set by a SIGUSR2 handler: start the successor (mqo_tko_spawn). Cleared. */
    volatile int *upgrade;
};

struct mqo_monitor_stats {
    struct mqo_bump_stats bump;
    struct mqo_splice_stats splice;
    struct mqo_engine_stats engine;
    struct mqo_frag_stats frag;
    uint64_t frag_to_splice; /* reassembled segments the splice took */
    uint64_t frag_declined;  /* reassembled segments it did not take: forwarded whole */
};

/* Runs until *cfg->bump.stop. Returns 0 or -errno (message printed). */
int mqo_monitor_run(const struct mqo_monitor_cfg *cfg, struct mqo_monitor_stats *st);

#endif
