/* engine/: the MQTT stream editor shared by every mode.
 *
 * Every client connection has two byte streams: C2S (client -> broker) and S2C (broker ->
 * client). A mode feeds both to the engine as they arrive, with the time; the engine answers,
 * through the ops callbacks and in stream order, with edits:
 *
 *   forward(stream, p, n)  the next n input bytes of that stream go on to the other side
 *                          (p holds them, possibly rewritten in place, same length);
 *   consume(stream, n)     the next n input bytes of that stream are taken by the offload;
 *   insert(stream, out)    bytes the offload originates, placed in that stream's output at
 *                          the current position (between whole MQTT packets).
 *
 * Every input byte is accounted exactly once, by forward or consume, in order; the engine
 * keeps the bytes of an incomplete packet until the packet is whole, so edits always fall on
 * packet boundaries. Fan-out inserts PUBLISH packets into other connections' S2C streams while
 * one connection's input is processed.
 *
 * No I/O, no clock: time is passed in (nanoseconds, any monotonic origin). Not thread-safe.
 *
 * The rule: a PUBLISH is consumed only when the engine can deliver it exactly as the broker
 * would; otherwise it is forwarded unchanged ("passthrough") and the broker does the work.
 * See docs/ARCHITECTURE.md for the full list of conditions.
 */
#ifndef MQO_ENGINE_H
#define MQO_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "core/msg.h"
#include "mqtt/mqtt.h"

struct mqo_engine;
struct mqo_conn;
struct mqo_acl;

/* Bytes the engine originates: a shared serialized packet plus this connection's patch.
 * The bytes are msg->data with byte 0 replaced by b0 and, when pid_off != 0, the two bytes at
 * pid_off replaced by pid (big-endian). msg stays valid during the insert callback; take a
 * reference (mqo_msg_ref) to keep it longer. */
struct mqo_out {
    struct mqo_msg *msg;
    uint32_t pid_off;
    uint16_t pid;
    uint8_t b0;
};

/* Length of the bytes o stands for. */
static inline size_t mqo_out_len(const struct mqo_out *o) { return o->msg->len; }
/* Copies the bytes o stands for to dst (mqo_out_len(o) bytes). */
void mqo_out_copy(const struct mqo_out *o, uint8_t *dst);
/* Describes the bytes as up to 4 iovecs (the patched bytes live in scratch[3]); returns the
 * count. The iovecs point into o->msg and scratch. */
int mqo_out_iov(const struct mqo_out *o, uint8_t scratch[3], struct iovec iov[4]);

/* A client's address, for log lines: kept by the mode, which knows it (mqo_engine_ops.peer). */
struct mqo_peer {
    uint8_t ip[16]; /* IPv4: the first 4 bytes */
    uint16_t port;
    uint8_t fam; /* 4 or 6; 0: unknown */
};
/* p from "a.b.c.d:port" or "[v6]:port" (a link-local address's zone is dropped); another form
 * leaves it unknown. */
void mqo_peer_parse(struct mqo_peer *p, const char *s);
/* p as "a.b.c.d:port" or "[v6]:port" into buf ("" when unknown). Returns buf. */
const char *mqo_peer_format(const struct mqo_peer *p, char *buf, size_t len);

struct mqo_engine_ops {
    void (*forward)(void *ud, struct mqo_conn *c, enum mqo_dir stream, const uint8_t *p,
                    size_t n);
    void (*consume)(void *ud, struct mqo_conn *c, enum mqo_dir stream, size_t n);
    void (*insert)(void *ud, struct mqo_conn *c, enum mqo_dir stream, const struct mqo_out *o);
    /* Bytes the mode can still queue toward the client of c (SIZE_MAX: no limit). NULL: no
     * limit. Used for back-pressure: a QoS 0 delivery that does not fit is dropped (counted),
     * a QoS 1 message that does not fit for every subscriber goes to the broker. */
    size_t (*room)(void *ud, struct mqo_conn *c);
    /* Bytes queued toward the client of c that it has not taken yet (0: drained). NULL:
     * always 0. An ordering hold is given up only after order_hold_ms during which the
     * subscriber's queue was drained: a message stuck behind a slow reader is not lost. */
    size_t (*queued)(void *ud, struct mqo_conn *c);
    /* The engine wants the connection closed for a limit of its own (no memory, no packet
     * identifier left): never for a protocol matter, which the broker judges. The mode closes
     * both sides and then calls mqo_engine_conn_close(). */
    void (*close)(void *ud, struct mqo_conn *c, int reason);
    /* The address of c's client, for the log lines about c (p comes zeroed: unknown). NULL:
     * always unknown. The engine keeps no copy: the mode has it. */
    void (*peer)(void *ud, const struct mqo_conn *c, struct mqo_peer *p);
};

/* Where authorization comes from. With none the engine consumes nothing. */
enum mqo_acl_mode {
    MQO_ACL_NONE = 0, /* no source: everything passes through (said at start) */
    MQO_ACL_OPEN,     /* the operator states the broker restricts no topics */
    MQO_ACL_FILE,     /* the broker's Mosquitto acl_file */
};

/* What to do when one subscriber has several subscriptions matching one topic. Mosquitto 2.0
 * sends v5 clients one copy per subscription and v3 clients one copy, so the default passes
 * such messages to the broker. */
enum mqo_overlap {
    MQO_OVERLAP_PASSTHROUGH = 0,
    MQO_OVERLAP_ONCE, /* one delivery at the highest granted QoS with every subscription id */
};

struct mqo_engine_cfg {
    struct mqo_engine_ops ops;
    void *ud;
    enum mqo_acl_mode acl_mode;
    const struct mqo_acl *acl; /* MQO_ACL_FILE: borrowed, must outlive the engine */
    /* The operator states that every client of the broker reaches it through this engine's
     * mode (mqoff --exclusive). Without it a subscriber the engine cannot see (on another
     * listener, or connected to the broker directly) would miss every offloaded message, so
     * nothing is offloaded (MQO_PT_NOT_EXCLUSIVE). */
    int exclusive;
    /* A broker plugin may report the broker's view (mqo_engine_bv_*): ordering holds are
     * kept even without exclusive, since offload may begin when the view syncs. */
    int broker_view;
    enum mqo_overlap overlap;
    /* Topic filters whose messages always go to the broker (bridges, clusters, plugins). */
    const char *const *broker_only;
    size_t n_broker_only;
    /* Largest packet held whole (0: 1 MiB). A packet above it is streamed on as it arrives,
     * never offloaded, so memory per connection stays bounded whatever the packet size. */
    uint32_t max_buffer;
    /* How long an ordering hold waits for a passed-through message to show up in a
     * subscriber's stream before it is given up (ms, 0: 2000). */
    uint32_t order_hold_ms;
    /* The broker's limits for the listener mqoff fronts (from its configuration, see
     * conf/mosqconf.h; all 0 when unknown or unlimited). */
    const char *mount_point;        /* the broker prefixes the clients' topics and filters */
    uint8_t username_as_clientid;   /* use_username_as_clientid: the username is the id */
    uint8_t conf_hold;              /* start with mqo_engine_set_conf_hold(e, 1) */
    uint32_t message_size_limit;    /* larger payloads: the broker refuses the PUBLISH */
    uint32_t broker_max_packet;     /* larger packets: the broker drops the client */
    uint8_t max_qos;                /* 1: QoS 2 refused (0 means 2, the default) */
    uint8_t upgrade_outgoing_qos;   /* deliveries at the subscription's QoS */
    /* The broker's max_inflight_messages: at most this many QoS 1/2 messages in flight to a
     * client without a Receive Maximum (v3, and v5 without the property), the offload's and
     * the broker's together, as the broker counts its own (0: no limit; Mosquitto's default
     * is 20). */
    uint16_t max_inflight_messages;
    /* Most offload QoS 1 deliveries unacknowledged per client (0: 64). A v5 client's Receive
     * Maximum bounds the broker's and the offload's together: the offload takes a slot only
     * when one is free, and holds a broker PUBLISH that would exceed it until one of its own
     * is acknowledged. */
    uint16_t inflight_default;
};

/* Passthrough reasons, counted per reason. */
enum mqo_pt_reason {
    MQO_PT_NONE = 0,
    MQO_PT_NOT_LIVE,       /* publisher's CONNACK not seen (or failed) */
    MQO_PT_NO_ACL,         /* no authorization source configured */
    MQO_PT_BLIND,          /* the broker holds sessions whose subscriptions are unknown */
    MQO_PT_QOS2,
    MQO_PT_RETAIN,
    MQO_PT_DUP,
    MQO_PT_DOLLAR,         /* topic starts with '$' */
    MQO_PT_ALIAS,          /* v5 topic alias being set, or unknown */
    MQO_PT_PAYLOAD_FORMAT, /* v5 payload format indicator 1: the broker validates */
    MQO_PT_BROKER_ONLY,
    MQO_PT_WRITE_DENIED,   /* publisher may not write (the broker refuses it) */
    MQO_PT_ACL_UNKNOWN,    /* client id assigned by the broker, ACL patterns need it */
    MQO_PT_ORDER,          /* earlier messages of this publisher are still in the broker */
    MQO_PT_SHARED,         /* a $share subscription matches */
    MQO_PT_HELD,           /* a subscription of an offline persistent session matches */
    MQO_PT_PENDING_SUB,    /* a SUBSCRIBE awaiting its SUBACK matches */
    MQO_PT_OVERLAP,
    MQO_PT_SUB_NOT_LIVE,   /* a matching subscriber is not a live connection */
    MQO_PT_PERSISTENT,     /* QoS 1 delivery to a persistent session */
    MQO_PT_INFLIGHT,       /* subscriber's receive maximum (engine share) reached */
    MQO_PT_SIZE,           /* larger than a maximum packet size */
    MQO_PT_ROOM,           /* QoS 1 and a subscriber's output queue is full */
    MQO_PT_NOMEM,
    MQO_PT_UNSEEN,         /* clients the engine cannot see are connected to the broker */
    MQO_PT_RELAY,          /* publisher or a subscriber is relayed unedited (see below) */
    MQO_PT_UNKNOWN_CONN,   /* a connection's subscriptions or session may be unknown */
    MQO_PT_STREAMED,       /* larger than max_buffer: streamed to the broker */
    MQO_PT_STREAMING,      /* a large packet is streaming to a subscriber (or publisher) */
    MQO_PT_BROKER_LIMIT,   /* over a limit of the broker's configuration: it judges */
    MQO_PT_BROKER_CONF,    /* the broker's configuration forbids offload, or changed */
    MQO_PT_NOT_EXCLUSIVE,  /* cfg.exclusive not set: clients may reach the broker elsewhere */
    MQO_PT_ACL_CHANGED,    /* the acl_file changed, the broker may use either version, and
                            * they disagree on this message (mqo_engine_acl_changed) */
    MQO_PT_ACL_BROKEN,     /* the acl_file does not parse: the broker's rules are unknown */
    MQO_PT_FOREIGN,        /* a subscriber the broker reports that the offload does not carry
                            * (another listener, a bridge, ...): the broker delivers */
    MQO_PT__COUNT
};
const char *mqo_pt_reason_name(enum mqo_pt_reason r);

struct mqo_engine_stats {
    uint64_t publish_in;     /* PUBLISH packets from clients */
    uint64_t consumed;       /* taken by the offload */
    uint64_t passthrough;    /* forwarded to the broker */
    uint64_t pt_reason[MQO_PT__COUNT];
    uint64_t deliveries;     /* PUBLISH inserted toward subscribers */
    uint64_t deliveries_qos1;
    uint64_t dropped_qos0;   /* QoS 0 deliveries dropped for a full subscriber queue */
    uint64_t pubacks_sent;   /* PUBACK to publishers on the broker's behalf */
    uint64_t pubacks_absorbed; /* subscriber PUBACKs for offload messages */
    uint64_t pids_remapped;  /* broker packet ids rewritten toward a client */
    uint64_t pings_synth;    /* PINGREQ sent to the broker for a client */
    uint64_t pingresp_dropped;
    uint64_t order_expired;  /* ordering holds given up after order_hold_ms */
    uint64_t inflight_lost;  /* offload QoS 1 deliveries unacknowledged at close */
    uint64_t protocol_errors;  /* packets passed to the broker unjudged (not decodable here) */
    uint64_t streamed;         /* packets larger than max_buffer streamed through */
    uint64_t s2c_holds;        /* broker PUBLISHes held for a Receive Maximum slot */
    uint64_t relay_conns;      /* now: connections relayed unedited */
    uint64_t unknown_conns;    /* now: of those, connections whose subscriptions may be unknown */
    uint64_t conf_hold;        /* now: 1 while the broker's configuration stops all offload */
    uint64_t conns_open;
    uint64_t subscriptions;  /* in the table now */
    uint64_t blind_sessions; /* now */
    uint64_t unseen_clients; /* now: connections the mode says the engine cannot see */
    uint64_t acl_versions;   /* now: acl_file versions the broker may be using (MQO_ACL_FILE;
                              * 0: its rules are unknown, everything passes through) */
    /* the broker's view (mqo_engine_bv_*) */
    uint64_t bv_state;         /* now: 0 none, 1 syncing, 2 synced */
    uint64_t bv_sessions;      /* now: sessions the broker reports */
    uint64_t bv_subscriptions; /* now: their filters */
    uint64_t bv_table;         /* now: of those, in the table as clients the offload does not
                                * carry (a matching PUBLISH goes to the broker) */
    uint64_t bv_bound;         /* now: connections bound to the broker's */
    uint64_t bv_markers;       /* bind markers sent */
    uint64_t bv_syncs;         /* times the view became synced */
    uint64_t bv_imported;      /* filters of resumed sessions learned from the broker's view */
};

/* Returns a new engine, NULL with errno set (EINVAL for a bad broker_only filter). */
struct mqo_engine *mqo_engine_new(const struct mqo_engine_cfg *cfg);
void mqo_engine_free(struct mqo_engine *e);

/* A new client connection (the mode has, or is opening, its broker side). ud is the mode's.
 * Returns NULL on ENOMEM. */
struct mqo_conn *mqo_engine_conn_open(struct mqo_engine *e, void *ud, uint64_t now_ns);
/* The connection is gone (either side closed, or the mode closed it). Frees it. */
void mqo_engine_conn_close(struct mqo_engine *e, struct mqo_conn *c, uint64_t now_ns);
void *mqo_conn_ud(const struct mqo_conn *c);
/* "client 'ID' from ADDR" (or "a client from ADDR" before its CONNECT) into buf. Returns buf. */
const char *mqo_conn_who(const struct mqo_conn *c, char *buf, size_t len);
uint64_t mqo_conn_id(const struct mqo_conn *c);

/* Whether c's streams can be relayed on unedited by a process that knows nothing of it (a
 * monitor resuming after a crash, tcp/ctab.h): no bytes held (an incomplete or held packet, a
 * large packet streaming on), no delivery of the offload's in flight, no packet identifier
 * renumbered, no v5 topic alias known, no ping or bind marker of the engine's awaiting its
 * answer. */
int mqo_conn_quiescent(const struct mqo_conn *c);
/* A connection taken over mid-stream with nothing known of it (its session, subscriptions,
 * protocol level): both streams go on unedited as they come, and it counts as unknown (every
 * PUBLISH goes to the broker while it lives, or while the broker's view is not synced). why
 * is logged. */
void mqo_conn_relay_unknown(struct mqo_conn *c, const char *why);

/* Feeds bytes that arrived on stream `in` of connection c. Edits come through the ops, during
 * this call (and possibly edits of the other stream of c: a broker PUBLISH held for a Receive
 * Maximum slot goes on when the client's acknowledgement frees one). Returns 0, or -ENOMEM
 * after asking the mode to close c (ops.close).
 *
 * The broker judges: a packet the engine cannot decode, or would refuse, goes to the broker
 * unchanged and the connection is relayed from then on: nothing more is offloaded from or to
 * it, and while it may hold subscriptions or a session the engine does not know (an undecoded
 * CONNECT or SUBSCRIBE, lost framing), nothing is offloaded at all. */
int mqo_engine_input(struct mqo_engine *e, struct mqo_conn *c, enum mqo_dir in,
                     const uint8_t *p, size_t n, uint64_t now_ns);

/* Bytes stream `in` of c can take before the engine's memory bound for it (max_buffer) is
 * reached: 0 means the mode should stop reading that side until it grows (a broker PUBLISH
 * held for a Receive Maximum slot keeps the bytes behind it). SIZE_MAX when not bounded. */
size_t mqo_engine_input_room(const struct mqo_conn *c, enum mqo_dir in);

/* Timers: keep-alive pings toward the broker, ordering holds, session expiry. Call at least
 * every 100 ms; cheap when nothing is due. */
void mqo_engine_tick(struct mqo_engine *e, uint64_t now_ns);

const struct mqo_engine_stats *mqo_engine_stats(const struct mqo_engine *e);

/* What stops all offload now: the gates of every PUBLISH's decision that do not depend on the
 * publisher or the topic (no authorization source, not exclusive without a synced broker view,
 * the broker's configuration, an acl_file that does not parse, blind sessions, unseen clients,
 * unknown connections), in the order the decision checks them. Fills out[0..cap) and returns
 * how many hold (0: none; may exceed cap). */
size_t mqo_engine_holds(const struct mqo_engine *e, enum mqo_pt_reason *out, size_t cap);

/* The mode knows of n client connections to the broker the engine cannot see (monitor mode:
 * connections open before mqoff started). Their subscriptions are unknown, so while n > 0
 * every PUBLISH goes to the broker (counted as MQO_PT_UNSEEN). */
void mqo_engine_set_unseen_clients(struct mqo_engine *e, uint64_t n);

/* on: everything passes through (MQO_PT_BROKER_CONF): the broker's configuration leaves the
 * offload nothing it may do (a TLS or websockets listener, a plugin deciding), or it changed
 * in a way the running mqoff does not apply, or no longer parses. */
void mqo_engine_set_conf_hold(struct mqo_engine *e, int on);

/* Authorization at run time (MQO_ACL_FILE; in the other modes these return -EINVAL).
 *
 * The broker reads its acl_file at start and when it is told to reload (SIGHUP); when the file
 * changes, the engine cannot know whether the broker has reloaded it yet. So it keeps every
 * version seen since the last reload it was told of (the start counts as one) and acts only on
 * what they all agree on: a PUBLISH is consumed only when every version lets the publisher
 * write; a subscriber gets the delivery when every version lets it read, and none when no
 * version does (the broker skips it whichever it uses); when versions disagree the PUBLISH
 * goes to the broker (MQO_PT_ACL_CHANGED), which decides.
 *
 * Both functions take ownership of acl (freed when the engine drops that version, or at once
 * when it is not needed); NULL stands for a file that cannot be read or parsed. */

/* The acl_file changed to acl. NULL: it no longer parses; the older versions are dropped and
 * everything passes through (MQO_PT_ACL_BROKEN) until mqo_engine_acl_reloaded gives a version:
 * Mosquitto 2.0.11, told to reload a file it cannot parse, drops every ACL check (everything is
 * allowed), a state no version describes, so a file fixed later is not enough. A version the
 * engine already holds (mqo_acl_same) is not added again. Returns 0, or -ENOSPC when too many
 * versions accumulated since the last reload (everything then passes through until the next
 * one), -EINVAL. */
int mqo_engine_acl_changed(struct mqo_engine *e, struct mqo_acl *acl);
/* The broker reloaded its acl_file, which now holds acl: the only version from now on (NULL:
 * the file did not parse at the reload; everything passes through until the next one). */
int mqo_engine_acl_reloaded(struct mqo_engine *e, struct mqo_acl *acl);

/* Authorization from now on (the operator changed its source at a reload): MQO_ACL_OPEN, or
 * MQO_ACL_FILE with no version until mqo_engine_acl_reloaded gives one (everything passes
 * through meanwhile). Only between those two: an engine started without a source kept no
 * ordering state for what it never offloaded. Returns 0, -EINVAL, -ENOMEM (unchanged). */
int mqo_engine_set_acl_mode(struct mqo_engine *e, enum mqo_acl_mode mode);

/* The broker-only filters from now on (copied). Returns 0, or -EINVAL for a filter that is not
 * a valid topic filter (logged), -ENOMEM; the filters are then unchanged. */
int mqo_engine_set_broker_only(struct mqo_engine *e, const char *const *filters, size_t n);
/* ---- The broker's view ----
 *
 * A broker plugin (src/plugin, the Mosquitto plugin) reports every session the broker holds,
 * with its subscriptions, as they change; src/ctl drives these calls. While the view is
 * synced it replaces what the engine cannot see by itself: a subscription of a client the
 * engine does not carry (another listener, a bridge, a connection open before the offload
 * started, a session the broker restored) is entered into the table as another client's, so a
 * matching PUBLISH goes to the broker; and cfg.exclusive, unseen clients, blind sessions and
 * unknown connections no longer stop all offload. While it is not synced (no plugin, or
 * resyncing) the engine behaves exactly as without it.
 *
 * Binding: the broker's client and the engine's connection are the same one when the broker
 * reports the bind marker the engine sent on that connection: an UNSUBSCRIBE of
 * "$mqoff/bind/TOKEN/ID/EXPIRY" (TOKEN the view's, ID the connection's, EXPIRY its session
 * expiry interval), sent after the CONNACK; its UNSUBACK is taken out of the stream. The
 * broker unsubscribes nothing for it (no client subscribes to that filter). A session whose
 * connection is bound, and whose subscriptions the engine knows from the stream, is the
 * engine's: the broker's report of it is kept aside. A resumed session the engine has not
 * seen (blind) of an MQTT 3.x client is completed from the broker's view at binding.
 *
 * Client ids and filters are the broker's (mount point included). Functions return 0,
 * -ENOMEM, or -EINVAL for arguments the broker cannot have sent (an invalid filter). */

/* The plugin connected: the view starts empty and syncing (everything as without it);
 * token is this offload's bind token (at most 32 characters of [0-9a-z]). */
int mqo_engine_bv_begin(struct mqo_engine *e, const char *token);
/* The plugin sent its whole table: the view is synced. */
void mqo_engine_bv_synced(struct mqo_engine *e);
/* The plugin is gone (or must resync): the view is dropped, everything as without it. */
void mqo_engine_bv_lost(struct mqo_engine *e);
/* Session cid is held by the broker; pconn is its current broker connection (online) or last
 * one (offline), 0 when none; reset: the broker dropped its old subscriptions (clean start). */
int mqo_engine_bv_session(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                          uint64_t pconn, int online, int reset);
/* Session cid subscribes to filter at QoS qos (granted, or requested when another plugin of
 * the broker may still refuse it), or unsubscribes. */
int mqo_engine_bv_sub(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                      const uint8_t *filter, size_t len, uint8_t qos);
int mqo_engine_bv_unsub(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                        const uint8_t *filter, size_t len);
/* Session cid ended: the broker forgot it with its subscriptions. */
void mqo_engine_bv_end(struct mqo_engine *e, const uint8_t *cid, size_t cid_len);
/* The broker's connection pconn of session cid sent the bind marker token/conn_id. Returns 0
 * (bound), -ESRCH when it names no live connection of this engine (another offload's token,
 * a connection gone, another client id). */
int mqo_engine_bv_bind(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                       uint64_t pconn, const char *token, uint64_t conn_id);

/* After every PUBLISH decision fn(ud, input_ns, consumed) is called, input_ns being the time
 * given with the input that completed it (the mode measures its own processing time). */
void mqo_engine_set_observer(struct mqo_engine *e, void (*fn)(void *ud, uint64_t input_ns,
                                                              int consumed), void *ud);

/* ---- Takeover: the engine's state handed to a new process (snap.c) ----
 *
 * mqo_engine_save appends everything the engine holds about its connections and sessions
 * (subscriptions, packet-identifier maps, pending SUBSCRIBEs, partial packets, ordering holds,
 * aliases, counters) to out, in a versioned format. mqo_engine_load fills a new engine (created
 * with the new process's configuration, no connection yet) from it: the connections come back
 * with their ids and a NULL ud, which the mode sets (mqo_engine_conn_find, mqo_conn_set_ud).
 * Not carried: the broker's view (its plugin reconnects and resyncs), the broker-only filters
 * and ACL versions (the new process's configuration gives them). */
#define MQO_SNAP_VERSION 1
/* Returns 0, -ENOMEM, or -ENOTSUP when a connection refers to a session the format cannot
 * carry (one of the broker's view). out may hold a partial record on failure. */
int mqo_engine_save(const struct mqo_engine *e, struct mqo_buf *out);
/* Returns 0, -EPROTO (another MQO_SNAP_VERSION), -EINVAL (not a valid snapshot), -EBUSY (the
 * engine is not new), -ENOMEM. On failure the engine holds part of the state: free it. */
int mqo_engine_load(struct mqo_engine *e, const uint8_t *p, size_t n);
struct mqo_conn *mqo_engine_conn_find(struct mqo_engine *e, uint64_t id);
void mqo_conn_set_ud(struct mqo_conn *c, void *ud);
size_t mqo_engine_conn_count(const struct mqo_engine *e);

/* ---- Listing (mqoffctl) ---- */
struct mqo_sub_info {
    const uint8_t *cid, *filter; /* the owner's client id ("" before its CONNACK), the filter */
    size_t cid_len, len;
    uint8_t qos;
    uint8_t broker; /* reported by the broker for a client the offload does not carry */
    uint8_t held, pending, shared;
};
/* Calls fn for every subscription in the table; stops at fn's first non-zero and returns it. */
int mqo_engine_each_sub(const struct mqo_engine *e,
                        int (*fn)(void *arg, const struct mqo_sub_info *s), void *arg);

struct mqo_conn_info {
    uint64_t id;
    const uint8_t *cid;
    size_t cid_len;
    uint8_t version, live, relay, unknown, persistent, bridge;
    uint64_t bound; /* the broker's connection it is bound to, 0: none */
    uint16_t inflight, broker_inflight, recv_max;
    enum mqo_pt_reason last_reason;
};
int mqo_engine_each_conn(const struct mqo_engine *e,
                         int (*fn)(void *arg, const struct mqo_conn_info *c), void *arg);

/* Reason of the last passthrough decision on c (MQO_PT_NONE after a consume); for tests and
 * debugging. */
enum mqo_pt_reason mqo_conn_last_reason(const struct mqo_conn *c);

#endif
