/* Engine internals shared by the engine sources (not part of the API). */
#ifndef MQO_ENGINE_INT_H
#define MQO_ENGINE_INT_H

#include "core/buf.h"
#include "core/map.h"
#include "engine/engine.h"
#include "topic/topic.h"

#include <stdlib.h>
#include <string.h>

/* Trie flag of a subscription whose SUBSCRIBE awaits its SUBACK. */
#define SUBF_PENDING MQO_SUB_USER

/* A filter a session holds in the trie (a copy; the trie is keyed by its bytes). */
struct sfilter {
    uint8_t *f;
    uint16_t len;
};

/* A session's copy of one of its filters, 16 bytes: up to SFN_INLINE bytes in b, a longer one
 * in a block of its own whose pointer b holds. */
#define SFN_INLINE 14u
struct sfname {
    uint8_t b[SFN_INLINE];
    uint16_t len;
};

static inline const uint8_t *sfn_bytes(const struct sfname *n)
{
    if (n->len <= SFN_INLINE)
        return n->b;
    const uint8_t *p;
    memcpy(&p, n->b, sizeof p);
    return p;
}

/* Broker-side session of one client id, the owner of its subscriptions in the trie. */
struct session {
    struct session *hnext; /* client-id hash chain */
    uint16_t cid_len;
    /* flags, one bit each (assign 0 or 1: a wider value keeps only its lowest bit) */
    uint8_t registered : 1; /* in the client-id hash (private sessions of empty ids are not) */
    uint8_t known : 1;      /* 0: the broker holds it and its subscriptions are unknown (blind) */
    uint8_t persistent : 1; /* clean-session 0 / session expiry > 0 */
    uint8_t held : 1;       /* went offline: its subscriptions are the broker's until clean */
    uint8_t foreign : 1;    /* owner of what the broker reports for a client the offload does
                             * not carry (bview.c): a matching PUBLISH goes to the broker */
    uint8_t subs_log;       /* room of subs: 0 none, else 1 << (subs_log - 1) (sess_room) */
    uint32_t n_subs;
    uint64_t expire_ns; /* held session forgotten after this (UINT64_MAX: never) */
    struct mqo_conn *conn;
    /* its filters: sub1 until a second one comes (most hold one; a session is kept per
     * client, so it is small: docs/ARCHITECTURE.md, Memory per connection) */
    struct sfname *subs;
    struct sfname sub1;
    uint8_t cid[]; /* cid_len bytes (eng_session_new) */
};
/* 56 bytes and the client id: docs/ARCHITECTURE.md, Memory per connection */
_Static_assert(sizeof(struct session) == 56, "a session is 56 bytes and its client id");
static inline uint32_t sess_room(const struct session *s)
{
    return s->subs_log ? 1u << (s->subs_log - 1) : 0;
}

/* A session of client id cid[0..n) (NULL, 0: none), known, never expiring; NULL: no memory.
 * Freed with free() (after its filters: eng_session_free). */
struct session *eng_session_new(const uint8_t *cid, size_t n);

/* A passed-through PUBLISH a subscriber must see from the broker before the same publisher's
 * later messages may be delivered by the offload. */
struct expect {
    uint64_t pub_id;
    uint64_t hash;
    uint64_t deadline;
};

/* A SUBSCRIBE or UNSUBSCRIBE awaiting its acknowledgement. */
struct pend_entry {
    struct sfilter filt;
    struct mqo_sub_opts opts; /* requested (SUBSCRIBE) */
    struct session *owner;    /* session the provisional (pending) entry was added under */
    uint8_t had_old;          /* the owner already had this filter */
    struct mqo_sub_opts old;
};
struct pending {
    struct pending *next;
    uint16_t pid;
    uint8_t unsub;
    uint32_t n;
    struct pend_entry e[];
};

/* Values of conn->pids->cpid: who owns a client-side packet identifier on the S2C stream. */
#define PID_BROKER (1ull << 32) /* low 16 bits: the broker's identifier */
#define PID_ENGINE (2ull << 32)

/* The ordering hash of a streamed PUBLISH, while its payload passes. */
struct stream_hash {
    uint64_t hstate;
    struct sfilter topic;
};

struct stream {
    struct mqo_buf *partial; /* bytes of an incomplete packet, or held (S2C); NULL: none
                              * (allocated while there are some) */
    /* a packet larger than max_buffer streams on as it arrives: bytes of it still to come */
    uint32_t pass_left;
    uint8_t pass_consume; /* they are taken by the offload (an acknowledgement of its own) */
    unsigned raw : 1;     /* framing lost: everything from here on is forwarded as it comes */
    unsigned held : 1;    /* S2C: a broker PUBLISH waits for a Receive Maximum slot */
    /* a streamed PUBLISH whose payload is hashed for the ordering rules (hs, NULL: none;
     * allocated only while one passes), with its QoS and packet identifier */
    unsigned qos : 2;
    uint16_t pid;
    struct stream_hash *hs;
};

struct mqo_conn {
    struct mqo_engine *eng;
    void *ud;
    uint64_t id; /* its key in eng->conns */
    struct stream in[2];

    uint8_t version;      /* 0 until CONNECT */
    uint8_t broker_max_qos;
    uint16_t keepalive;   /* seconds, effective (server keep alive wins) */
    uint8_t ping_n;       /* pings in flight (ping_fifo) */
    /* flags, one bit each (assign 0 or 1: a wider value keeps only its lowest bit) */
    uint8_t connect_seen : 1;
    uint8_t live : 1;         /* CONNACK success seen, not disconnected */
    uint8_t dead : 1;         /* close requested: input ignored */
    uint8_t relay : 1;        /* relayed unedited since a packet the engine does not judge */
    uint8_t unknown : 1;      /* its subscriptions or session may be unknown (counted) */
    uint8_t bridge : 1;       /* Mosquitto bridge (protocol level with bit 7): implied no-local */
    uint8_t releasing : 1;    /* a held S2C packet is being released (no recursion) */
    uint8_t clean : 1;        /* v3 clean session / v5 clean start */
    uint8_t has_user : 1;
    uint8_t acl_unknown : 1;  /* client id assigned by the broker */
    uint8_t eng_pids : 1;     /* the offload has numbered deliveries to this client */
    uint8_t unseen_activity : 1; /* client bytes consumed since the broker last got any */
    /* a QoS 0 PUBLISH went to the broker leaving nothing to wait for (no delivery expected):
     * before the next one is offloaded, a barrier ping must come back */
    uint8_t barrier_due : 1;
    /* cid is its session's (sess->cid, the same bytes) while bound to it, not a copy of its
     * own: conn_cid_unshare before the two part */
    uint8_t cid_shared : 1;
    uint16_t cid_len;
    uint16_t user_len;
    uint8_t last_reason; /* enum mqo_pt_reason */
    uint32_t session_expiry;
    uint32_t client_max_packet; /* v5 Maximum Packet Size of the client (0: none) */
    uint32_t broker_max_packet; /* from CONNACK (0: none) */
    uint16_t recv_max;          /* in flight at most: Receive Maximum, or the broker's limit */
    uint16_t eng_inflight;      /* offload QoS 1 deliveries unacknowledged */
    uint16_t broker_inflight;   /* broker QoS 1/2 PUBLISHes not completed by the client */
    uint16_t pid_cursor;  /* next client-side packet identifier (Mosquitto's last_mid + 1) */
    /* (the client's address for log lines is the mode's: mqo_engine_ops.peer) */
    uint8_t *cid;
    uint8_t *user;
    struct session *sess;
    struct session *pre; /* owner of SUBSCRIBEs sent before the CONNACK was seen */

    /* packet-identifier maps, allocated at the first QoS > 0 exchange and kept from then on
     * (NULL: all empty; a QoS 0 subscriber holds none): see struct conn_pids */
    struct conn_pids *pids;
    /* v5 topic aliases per direction: alias -> (struct sfilter *); allocated at the first
     * alias (NULL: none) */
    struct mqo_map *alias;

    struct pending *pend;

    /* keep-alive: last time bytes went to the broker; ping origins in flight (bit per ping,
     * oldest in bit 0: 1 = engine, 0 = client); engine pings that are ordering barriers */
    uint64_t last_to_broker;
    uint64_t ping_fifo, ping_barrier;

    /* ordering: holds this connection (as subscriber) owes, and holds it (as publisher) has */
    struct expect *exp; /* room for exp_room(n_exp) (eng_expect_reserve) */
    uint32_t n_exp;
    uint32_t order_pending;

    /* the broker's view (bview.c): allocated at the first marker or binding, NULL: none */
    struct conn_bv *bv;
};

/* A connection's packet-identifier maps. */
struct conn_pids {
    /* client-side packet ids on S2C: cpid[c] = PID_BROKER|b or PID_ENGINE; bpid[b] = c */
    struct mqo_map cpid, bpid;
    /* this client's passed-through QoS>0 PUBLISH awaiting the broker's ack: pid -> type */
    struct mqo_map pt_acks;
};

/* c's maps, to read: empty ones while none were allocated. */
extern const struct conn_pids eng_no_pids;
static inline const struct conn_pids *cpids(const struct mqo_conn *c)
{
    return c->pids ? c->pids : &eng_no_pids;
}
/* c's maps, to change: allocated when missing; NULL: no memory. */
static inline struct conn_pids *cpids_get(struct mqo_conn *c)
{
    if (!c->pids)
        c->pids = calloc(1, sizeof *c->pids);
    return c->pids;
}
/* Frees c's maps if all three are empty: after a first use that failed, or a load. Otherwise a
 * connection that used them keeps them, as the maps keep their slots (freeing them at each
 * acknowledgement would cost allocations per QoS 1 delivery). */
void cpids_trim(struct mqo_conn *c);

/* A connection's part in the broker's view: the broker connection it is bound to (0: none),
 * the view's generation its bind marker was sent in, the marker's UNSUBSCRIBE identifier
 * awaiting its UNSUBACK (0: none), and the client id the broker reported at binding (the
 * broker's own for a client that sent none), malloc'd. */
struct conn_bv {
    uint64_t pconn;
    uint32_t gen;
    uint16_t pid;
    uint16_t cid_len;
    uint8_t *cid;
};

static inline uint64_t cbv_pconn(const struct mqo_conn *c) { return c->bv ? c->bv->pconn : 0; }
static inline uint32_t cbv_gen(const struct mqo_conn *c) { return c->bv ? c->bv->gen : 0; }
static inline uint16_t cbv_pid(const struct mqo_conn *c) { return c->bv ? c->bv->pid : 0; }
/* c->bv, allocated when missing; NULL: no memory. */
static inline struct conn_bv *cbv_get(struct mqo_conn *c)
{
    if (!c->bv)
        c->bv = calloc(1, sizeof *c->bv);
    return c->bv;
}

/* The broker's view, as the broker plugin reports it (bview.c). */
enum { BV_OFF = 0, BV_SYNCING, BV_SYNCED };
struct bv_sess;
struct bview {
    int state;
    uint32_t gen;        /* +1 at every mqo_engine_bv_begin */
    char token[33];      /* this offload's bind token (markers of another instance differ) */
    struct bv_sess **b;  /* sessions by client id */
    size_t nb, n;
    struct mqo_map bind; /* broker connection -> engine connection id */
    void (*observe)(void *ud, uint64_t input_ns, int consumed);
    void *observe_ud;
};

/* The connections by id: open addressing on the id (linear probing, backward-shift
 * deletion), a slot holding the connection (8 bytes; the key is the connection's own id, read
 * through it: lookups by id are rare, walks and the id kept once are not). */
struct conn_tab {
    struct mqo_conn **slots;
    uint32_t cap; /* power of two, or 0 */
    uint32_t n;
};

struct mqo_engine {
    struct mqo_engine_cfg cfg;
    size_t mount_len; /* strlen(cfg.mount_point), 0: none */
    struct mqo_engine_stats st;
    struct mqo_trie *trie;
    struct mqo_trie *broker_only;
    struct mqo_match_set ms;
    /* every connection, by id (eng_conn_next walks them; they carry no list links) */
    struct conn_tab conns;
    uint64_t next_id;
    struct session **sbuckets;
    size_t n_sbuckets, n_sessions;
    uint64_t now;       /* latest time passed in */
    /* timers: connections and session buckets are visited a slice per tick (scan_tick) */
    uint64_t last_tick;
    uint64_t conn_credit, bucket_credit;
    size_t scan_slot;           /* next conns slot to visit */
    size_t scan_bucket;         /* next session bucket to visit */
    uint64_t order_hold_ns;
    struct plan_ent *plan; /* fan-out plan of the PUBLISH being decided, by match */
    size_t cap_plan;
    /* MQO_ACL_FILE: the acl_file versions the broker may be using (authz.c); none while the
     * file does not parse (acl_broken) */
    struct acl_ver *acl_v;
    size_t n_acl;
    uint8_t acl_broken;
    struct bview bv;
};

/* The connection in e->conns at slot *it or after it, with *it moved past it; NULL: none
 * left. Every connection: for (size_t it = 0; (c = eng_conn_next(e, &it));). Closing one
 * moves later ones back (backward-shift deletion): a walk that closes goes on from the
 * slot it closed, not past it. */
static inline struct mqo_conn *eng_conn_next(const struct mqo_engine *e, size_t *it)
{
    for (; *it < e->conns.cap; ++*it)
        if (e->conns.slots[*it])
            return e->conns.slots[(*it)++];
    return NULL;
}

/* One version of the broker's acl_file. */
struct acl_ver {
    const struct mqo_acl *acl;
    uint8_t owned; /* given at run time (freed with the version); cfg.acl is borrowed */
};

/* The plan of match e->ms.v[i] (its session's connection): size 0, no delivery (the broker
 * would not deliver it either); with ids its subscription identifiers are that match's (a v5
 * subscriber). 4 bytes: a fan-out plans one per subscriber, and the array keeps the room of
 * the largest. */
#define PLAN_SIZE_MAX ((1u << 29) - 1) /* more than an MQTT packet can be (256 MiB + 5) */
struct plan_ent {
    uint32_t size : 29;
    uint32_t qos : 1;  /* 0 or 1 (QoS 2 is never offloaded) */
    uint32_t drop : 1; /* QoS 0 that does not fit the subscriber's queue: dropped, counted */
    uint32_t ids : 1;
};
_Static_assert(sizeof(struct plan_ent) == 4, "a plan entry is 4 bytes");

/* The room c->exp has for n entries (n > 0): EXP_MIN, or the power of two above n. Growth
 * happens where n is a power of two (eng_expect_reserve); fewer entries keep their room. */
#define EXP_MIN 8u
static inline size_t exp_room(size_t n)
{
    size_t r = EXP_MIN;
    while (r <= n)
        r *= 2;
    return r;
}

/* engine.c */
void eng_forward(struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n);
void eng_forward_patched(struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n,
                         size_t off, const uint8_t *patch, size_t plen);
void eng_consume(struct mqo_conn *c, enum mqo_dir s, size_t n);
void eng_insert(struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o);
int eng_insert_bytes(struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n);
/* Sends the broker a ping after what c sent so far; c's PUBLISHes pass through until its
 * answer comes (the broker has then taken them all). */
void eng_order_barrier(struct mqo_conn *c);
uint16_t eng_pid_alloc(struct mqo_conn *c);
struct mqo_conn *eng_conn_by_id(struct mqo_engine *e, uint64_t id);
/* Enters c (its id not in the table) into e->conns. 0, or -ENOMEM. */
int eng_conn_enter(struct mqo_engine *e, struct mqo_conn *c);
/* c's address as "a.b.c.d:port" or "[v6]:port" in buf, "" when unknown. */
const char *eng_conn_peer(const struct mqo_conn *c, char *buf, size_t len);
/* Bytes inserted into stream d now land between whole packets (not inside one that streams
 * on, nor in a stream whose framing is lost). */
static inline int eng_at_boundary(const struct mqo_conn *c, enum mqo_dir d)
{
    return !c->in[d].pass_left && !c->in[d].raw;
}
int eng_alias_topic(struct mqo_conn *c, enum mqo_dir s, const struct mqo_pkt *pk,
                    struct mqo_str *t);

/* A topic or filter in the broker's terms: the listener's mount point + t (Mosquitto prefixes
 * both, and does not take the prefix off on delivery). *out points at t itself without a
 * mount point, else into buf (cap bytes) or *heap (malloc'd, the caller frees). Returns 0,
 * -E2BIG when the result cannot be an MQTT string (over 65535 bytes), or -ENOMEM. */
int eng_mounted(const struct mqo_engine *e, struct mqo_str t, struct mqo_str *out, uint8_t *buf,
                size_t cap, uint8_t **heap);

/* Records that the session holds filter f in the trie. Returns 0 or -ENOMEM. */
int eng_session_sub_add(struct session *s, const uint8_t *f, size_t len);

/* snap.c's access to the session table. */
int eng_session_register(struct mqo_engine *e, struct session *s);
void eng_session_free(struct mqo_engine *e, struct session *s);

/* The connection is relayed from now on; unknown: it may also hold subscriptions or a session
 * the engine does not know. */
void eng_relay(struct mqo_conn *c, int unknown, const char *why);

/* bview.c */
/* 1 when the broker's view is synced: its subscriptions replace the gates for clients the
 * engine cannot see (not exclusive, unseen, blind sessions, unknown connections). */
static inline int eng_bv_synced(const struct mqo_engine *e) { return e->bv.state == BV_SYNCED; }
/* c's knowledge changed (closed, relayed, its session taken over): the broker's view of its
 * client id is entered into or taken out of the table accordingly. Call before c is freed. */
void bv_conn_changed(struct mqo_conn *c);
/* c's CONNACK was seen (or the view just synced): sends the bind marker when due. */
void bv_mark(struct mqo_conn *c);
/* c's v5 DISCONNECT changes its session expiry: tells the broker's view (a marker). */
void bv_expiry_changed(struct mqo_conn *c);
/* An UNSUBACK with identifier pid on c's S2C stream answers the bind marker: 1 (taken). */
int bv_unsuback(struct mqo_conn *c, uint16_t pid);
void bv_free(struct mqo_engine *e);

/* authz.c */
/* What the ACL versions say about c's access to topic t. */
enum eng_acl {
    ENG_ACL_UNKNOWN = -1, /* cannot be evaluated (client id unknown, the file does not parse) */
    ENG_ACL_DENY = 0,     /* every version denies */
    ENG_ACL_ALLOW = 1,    /* every version allows */
    ENG_ACL_SPLIT = 2,    /* the versions disagree */
};
enum eng_acl eng_acl_check(const struct mqo_engine *e, const struct mqo_conn *c,
                           struct mqo_str t, int access);
/* Sets up the versions from cfg (at mqo_engine_new); frees them (mqo_engine_free). */
int eng_acl_init(struct mqo_engine *e);
void eng_acl_free(struct mqo_engine *e);

/* publish.c */
int eng_publish(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n,
                uint64_t now);
/* Hash of a message for the ordering rules: topic, then the payload in any number of pieces
 * (begin, update..., end). */
uint64_t order_hash_begin(struct mqo_str topic);
uint64_t order_hash_update(uint64_t st, const uint8_t *p, size_t n);
uint64_t order_hash_end(uint64_t st);
/* Records what a passed-through PUBLISH (topic, QoS, identifier, hash of the message) obliges
 * the publisher's later ones to wait for. matched: e->ms holds its match set already. */
void passthrough_holds(struct mqo_engine *e, struct mqo_conn *c, struct mqo_str topic,
                       uint8_t qos, uint16_t pid, uint64_t hash, int matched, uint64_t now);
void order_seen_hash(struct mqo_conn *c, uint64_t hash);
void order_seen(struct mqo_conn *c, const struct mqo_pkt *pk);
void order_ack_seen(struct mqo_conn *c, const struct mqo_pkt *pk);
void order_conn_closed(struct mqo_engine *e, struct mqo_conn *c);
void order_tick(struct mqo_engine *e, struct mqo_conn *c, uint64_t now);

#endif
