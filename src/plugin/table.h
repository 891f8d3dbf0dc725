/* The broker's sessions and subscriptions as the broker plugin sees them, and the lines of the
 * control protocol that report them (docs/CONTROL.md). No I/O and no broker API: plugin.c
 * turns Mosquitto's events into these calls and sends the lines this emits.
 *
 * A session is a client id the broker holds, with the filters it subscribed (as the broker
 * holds them: mount point included) and its current connection. A connection is a broker
 * client object (any unique key, the struct mosquitto pointer), numbered in the order they
 * are first seen; the number binds it to the offload's connection (bind markers, see
 * mqo_ptable_unsubscribe).
 *
 * Mosquitto 2.0.11 tells a plugin nothing at CONNECT, so a connection is first seen at its
 * first subscribe or unsubscribe check, or at its disconnect. A clean start then drops the
 * session's filters (the broker dropped them at the CONNECT), and a session whose connection
 * ends is kept (offline) or ended according to what is known of its expiry: MQTT 3.x clean
 * session ends it; MQTT 5 needs the Session Expiry Interval, which 2.0.11 does not give a
 * plugin: the offload's bind marker carries it; a v5 session without one is kept (offline)
 * until its client id connects again, so its filters keep matching (the broker may hold it).
 */
#ifndef MQO_PLUGIN_TABLE_H
#define MQO_PLUGIN_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct mqo_ptable;

/* A line to send (without '\n'), valid during the call. */
typedef void (*mqo_ptable_emit)(void *arg, const char *line, size_t len);

/* A broker client as the broker describes it at an event. */
struct mqo_ptable_client {
    const void *key; /* unique while the broker's client object lives */
    const char *cid;
    const char *addr; /* may be NULL */
    int protocol;     /* 3, 4 or 5 */
    int clean;        /* clean session / clean start */
};

/* Returns a new empty table, NULL on ENOMEM. */
struct mqo_ptable *mqo_ptable_new(mqo_ptable_emit emit, void *arg);
void mqo_ptable_free(struct mqo_ptable *t);

/* The client subscribes to filter at qos (after the broker's max_qos). Returns 0, -ENOMEM. */
int mqo_ptable_subscribe(struct mqo_ptable *t, const struct mqo_ptable_client *cl,
                         const char *filter, int qos);
/* The client unsubscribes from filter. A filter containing "$mqoff/bind/TOKEN/ID/EXPIRY" is
 * the offload's bind marker (the broker holds no such subscription): the connection is
 * reported bound to TOKEN/ID and its session expiry interval is EXPIRY. Returns 0, -ENOMEM. */
int mqo_ptable_unsubscribe(struct mqo_ptable *t, const struct mqo_ptable_client *cl,
                           const char *filter);
/* The client's connection ended at now_s (seconds, monotonic). pce: the broker's
 * persistent_client_expiration in seconds (0: none), for MQTT 3.x persistent sessions. */
int mqo_ptable_disconnect(struct mqo_ptable *t, const struct mqo_ptable_client *cl,
                          int64_t now_s, int64_t pce);
/* A session the broker restored from its persistence file (offline), and its filters; a
 * session that is always there with fixed filters (a bridge's local subscriptions). */
int mqo_ptable_restore(struct mqo_ptable *t, const char *cid, size_t cid_len, const char *filter,
                       size_t len, int qos);
int mqo_ptable_fixed(struct mqo_ptable *t, const char *cid, const char *filter, int qos);
/* Ends offline sessions whose expiry passed by now_s (a margin of 2 s after the broker's). */
void mqo_ptable_expire(struct mqo_ptable *t, int64_t now_s);
/* Emits the whole table: a session line and its filters for every session, then "synced". */
void mqo_ptable_dump(struct mqo_ptable *t);

struct mqo_ptable_stats {
    uint64_t sessions, filters, conns;
};
void mqo_ptable_stats(const struct mqo_ptable *t, struct mqo_ptable_stats *st);

#endif
