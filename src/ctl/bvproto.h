/* The broker plugin's side of the control protocol (docs/CONTROL.md, version 1): the lines a
 * plugin sends, turned into the engine's broker-view calls (engine.h, "The broker's view").
 *
 * No I/O: the control socket (ctl.c) splits the plugin's bytes into lines and hands them here
 * one at a time, so the protocol is tested and fuzzed in memory.
 */
#ifndef MQO_CTL_BVPROTO_H
#define MQO_CTL_BVPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define MQO_CTL_PROTO 1

enum mqo_bvp_state {
    MQO_BVP_HELLO = 0, /* nothing yet: the first line must be the plugin's hello */
    MQO_BVP_DUMP,      /* the plugin is sending its whole table */
    MQO_BVP_SYNCED,    /* the table is complete: the engine uses the view */
    MQO_BVP_LIMITED,   /* the plugin cannot report everything (see why): not used */
};

/* One plugin connection. All-zero is a connection that has sent nothing. */
struct mqo_bvproto {
    enum mqo_bvp_state state;
    uint64_t lines;   /* lines handled */
    uint64_t ignored; /* lines with an unknown op or missing fields (skipped) */
    uint64_t reloads; /* broker reloads reported */
    char instance[40]; /* the broker process's instance (a new one after a restart) */
    char broker[48];   /* "mosquitto 2.0.11" */
    char acl[16];      /* how the plugin answers the broker's ACL checks */
    char why[200];     /* MQO_BVP_LIMITED: why the view is not used */
};

/* Handles one line (without its '\n') of the plugin, driving engine e; token is the offload's
 * bind token. Returns 0; 1 when the broker reports it reloaded its configuration (the caller
 * acts as at SIGHUP); -EPROTO when the connection must be closed (no hello first, another
 * protocol version, a line that is not a JSON object); -ENOMEM (the view is then dropped: the
 * caller closes the connection and the plugin resyncs). */
int mqo_bvproto_line(struct mqo_bvproto *p, struct mqo_engine *e, const char *token,
                     const char *line, size_t len);

/* The connection closed: the engine drops the view (as without a plugin) when it used it. */
void mqo_bvproto_close(struct mqo_bvproto *p, struct mqo_engine *e);

const char *mqo_bvproto_state_name(enum mqo_bvp_state s);

#endif
