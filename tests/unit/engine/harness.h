/* In-memory end-to-end harness: scripted MQTT clients, the engine, and a small reference
 * broker, moving bytes through memory with a deterministic clock (quicly's transmit style).
 *
 *   client --bytes--> engine (C2S) --forwarded/inserted--> broker
 *   client <--bytes-- engine (S2C) <--broker output------- broker
 *
 * With `direct` set the engine is left out (client <-> broker), which gives the reference
 * behaviour that offloaded runs are compared against.
 *
 * The reference broker ("minibroker") implements what the tests exercise, the way Mosquitto 2.0
 * does it: CONNECT/CONNACK with sessions (clean or persistent, session present, offline QoS 1
 * queue), SUBSCRIBE/SUBACK (a deny list gives 0x80/0x87), UNSUBSCRIBE, PUBLISH distribution
 * (QoS 0/1/2 in, min(QoS) out, retained messages, no-local, subscription identifiers, one copy
 * per subscription for v5 clients and one per client at the highest QoS for v3 clients),
 * PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ, DISCONNECT, keep-alive expiry (1.5 x), topic aliases
 * from clients, and read/write ACLs through mqo_acl_check.
 */
#ifndef MQO_TEST_HARNESS_H
#define MQO_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "engine/engine.h"
#include "helper_tcpsim.h"
#include "tcp/splice.h"

/* Where the bytes go between clients and the reference broker. */
enum h_mode {
    H_ENGINE = 0, /* through the engine, in memory */
    H_DIRECT = 1, /* straight to the broker (the reference behaviour) */
    H_SPLICE = 2, /* through TCP endpoints, the wire model and the monitor-mode splice */
};

#define H_MAX_CLIENTS 256
#define H_MAX_RX 4096
#define H_MAX_SUBS 64

/* One packet a client received. */
struct h_rx {
    uint8_t type;
    uint8_t qos, dup, retain;
    uint16_t pid;
    uint8_t reason;
    uint8_t session_present;
    char topic[128];
    uint8_t payload[512];
    uint32_t plen;
    uint32_t n_sub_ids;
    uint32_t sub_ids[4];
    uint8_t codes[8]; /* SUBACK codes */
    uint32_t n_codes;
};

struct h_bsub {
    char filter[128];
    uint8_t opts;
    uint32_t sub_id;
};

/* Broker-side session (persists across connections when not clean). */
struct h_bsess {
    char cid[64];
    int used;
    int online;
    int persistent;
    uint32_t expiry;
    struct h_bsub subs[H_MAX_SUBS];
    int n_subs;
    struct mqo_buf queued; /* offline QoS 1 messages: serialized topic/payload records */
};

/* H_SPLICE: a packet a client sent that changes what the broker delivers (CONNECT, PUBLISH,
 * SUBSCRIBE, UNSUBSCRIBE, DISCONNECT), and when it took effect. Sequence numbers count these
 * events across the run (0: not yet). */
struct h_txpkt {
    uint8_t *data;
    size_t len;
    uint64_t end;     /* offset after it in the client's stream */
    uint64_t sent;    /* the client wrote it */
    uint64_t decided; /* the engine had it whole (it decided: forward, or consume a PUBLISH) */
    uint64_t brok;    /* the broker model processed it */
    int consumed;     /* PUBLISH: 1 consumed, 0 forwarded, -1 not known from the counters */
};

/* One step of a broker order: client `client`'s k-th packet of the kinds above. */
struct h_order {
    int client;
    uint32_t k;
};

struct h_client {
    int used;
    struct mqo_conn *conn;
    struct mqo_peer peer; /* its address, as a mode keeps it (H_ENGINE: h_set_peer) */
    struct mqo_buf c2b; /* engine output toward the broker (pending delivery) */
    struct mqo_buf b2c; /* engine output toward the client (pending delivery) */
    struct mqo_buf crx; /* client's unparsed received bytes */
    struct mqo_buf brx; /* broker's unparsed received bytes */
    struct mqo_buf bout; /* broker's output not yet given to the engine */
    struct h_rx *rx;    /* received packets */
    size_t n_rx;
    int auto_ack;       /* client answers QoS 1/2 PUBLISH */
    uint8_t version;
    size_t room;        /* engine back-pressure view of this client */
    int drop_bout;      /* discard what the broker sends this client (a lossy broker) */
    int hold_bout;      /* what the broker sends this client waits (a mode that has not read
                         * that socket yet) */
    int hold_app;       /* H_SPLICE: the client application stops reading (zero window) */
    int no_ping;        /* the client never sends PINGREQ on its own (real clients do) */
    uint16_t c_keepalive; /* as sent in its CONNECT */
    uint64_t c_last_tx; /* when the client last sent anything */
    int closed;         /* the engine asked to close, or a side closed */
    int close_reason;
    /* broker side of the connection */
    int b_connected;
    int b_version;
    char b_cid[64];
    char b_user[64];
    int b_has_user;
    int b_clean;
    uint16_t b_keepalive;
    uint64_t b_last_in;
    uint16_t b_next_pid;
    int b_sess;          /* index into sessions */
    char b_alias[16][128];
    uint32_t b_inflight; /* QoS>0 PUBLISH sent, not acked */
    uint32_t b_recv_max; /* the client's Receive Maximum as the broker read it (0: none) */
    uint32_t b_refused;  /* packets the broker refused (it then closed the connection) */
    uint32_t b_stray_acks; /* PUBACK/PUBCOMP with no delivery of the broker's in flight */
    int b_lenient;       /* the broker ignores packets it cannot decode instead of closing */
    struct mqo_buf b_waiting; /* deliveries queued behind it: (len u32, packet) records */
    /* the client's view: QoS>0 PUBLISH received and not yet acknowledged, the most at once,
     * and how often that exceeded c_recv_max (set by the test; 0: not checked) */
    uint32_t c_recv_max, c_inflight, c_inflight_max, c_recv_violations;
    uint64_t b_publish_in; /* PUBLISH packets the broker received from this client */
    struct ts_ep *cep, *bep; /* H_SPLICE: the client's and the broker's TCP endpoints */
    /* H_SPLICE: the packets it sent (struct h_txpkt), how far its stream reached the engine,
     * and the first packet the broker has not received yet */
    struct h_txpkt *tx;
    size_t n_tx, cap_tx;
    struct mqo_buf txp; /* sent bytes of an incomplete packet */
    uint64_t tx_off, fed;
    size_t dec_pos, brk_pos;
    /* H_DIRECT following an order (h_follow): packets of the kinds above taken so far, and
     * which of this client's packets the order holds */
    uint32_t f_ord;
    uint8_t *f_in;
    size_t n_f_in;
};

struct harness {
    struct mqo_engine *eng;
    int direct; /* enum h_mode */
    struct mqo_splice *splice;
    struct ts_net net;
    uint16_t next_port;
    uint64_t splice_progress, splice_progress_at;
    uint64_t now;
    struct h_client cl[H_MAX_CLIENTS];
    struct h_bsess sess[H_MAX_CLIENTS];
    /* retained: topic -> payload */
    char ret_topic[64][128];
    uint8_t ret_payload[64][256];
    uint32_t ret_plen[64];
    int n_ret;
    /* the listener's mount point: topics and filters are prefixed, deliveries keep it */
    char mount[32];
    /* broker denies SUBSCRIBE of filters starting with this prefix ("" = none) */
    char deny_sub_prefix[64];
    const struct mqo_acl *acl; /* broker ACL (NULL: allow all) */
    uint64_t broker_publish_in; /* every PUBLISH the broker received */
    uint64_t broker_deliveries;
    /* H_SPLICE: when the clients' packets took effect (h_broker_order) */
    uint64_t cseq;
    uint64_t seen_fed, seen_consumed; /* splice and engine counters after the last frame */
    uint64_t order_errors;
    char order_err[256]; /* the first one */
    /* H_DIRECT: the order the broker takes the clients' packets in (h_follow) */
    struct h_order *follow;
    size_t n_follow, follow_pos;
    struct mqo_engine_cfg cfg; /* the engine's (H_ENGINE), for h_takeover */
    struct mqo_splice_cfg scfg; /* the splice's (H_SPLICE), for h_takeover */
};

/* H_SPLICE: the same with the splice's state (mqo_splice_save/load): the TCP endpoints and
 * the wire go on with the new splice.
 * H_ENGINE: a takeover. The engine's state is saved (mqo_engine_save), loaded into a new
 * engine of the same configuration and the old one freed; the clients' connections continue on
 * the new one, with what was queued toward either side still queued. Returns 0, or the failing
 * call's -errno. With snap != NULL the snapshot is appended there. */
int h_takeover(struct harness *h, struct mqo_buf *snap);

/* Creates the harness; cfg may be NULL for defaults (ACL open). The ops are the harness's (or
 * the splice's). mode: enum h_mode. */
void h_init(struct harness *h, const struct mqo_engine_cfg *cfg, int mode);
/* H_SPLICE: when not 0, the splice sends a fan-out's shared payload through emit_shared
 * (ts_emit_shared) from segments ending with at least this many of its bytes. */
extern size_t h_share_min;
/* H_SPLICE, set before h_init: the splice's client_window and client_window_mem (0: its
 * defaults). */
extern uint32_t h_client_window;
/* H_SPLICE, set before h_init: lone ACKs wait for the end of each burst of input, as monitor
 * mode runs the splice (mqo_splice_defer_acks, ts_net.defer_acks). */
extern int h_defer_acks;
extern size_t h_client_window_mem;
/* Set before h_init (splice): the output cuts TSO frames of up to this many payload bytes
 * toward both sides, and completes TCP checksums (mqo_splice_set_offload; the wire model
 * does both as a device does). 0: neither. */
extern uint32_t h_tso_max;
extern int h_csum_offload;
/* The engine's counters (engine or splice mode). */
const struct mqo_engine_stats *h_stats(const struct harness *h);
void h_free(struct harness *h);

/* Opens a client connection; returns its index. */
int h_open(struct harness *h);
/* Closes client i (TCP close from the client side). */
void h_close(struct harness *h, int i);

/* Client i sends raw bytes. */
void h_send(struct harness *h, int i, const void *p, size_t n);
/* Client i sends bytes one at a time (each byte is one engine input call). */
void h_send_bytewise(struct harness *h, int i, const void *p, size_t n);

/* Moves bytes until nothing moves any more (client auto-acks included). */
void h_run(struct harness *h);
/* Advances the clock by ms, ticking the engine and the broker, then h_run. */
void h_advance(struct harness *h, uint64_t ms);

/* ---- packet builders (independent of the codec) ---- */
size_t hb_connect(uint8_t *out, uint8_t version, const char *cid, int clean, uint16_t keepalive,
                  const char *user, uint32_t session_expiry, int recv_max);
size_t hb_subscribe(uint8_t *out, uint8_t version, uint16_t pid, const char *filter,
                    uint8_t opts, uint32_t sub_id);
size_t hb_unsubscribe(uint8_t *out, uint8_t version, uint16_t pid, const char *filter);
size_t hb_publish(uint8_t *out, uint8_t version, const char *topic, const void *payload,
                  size_t plen, uint8_t qos, int retain, uint16_t pid, int alias);
size_t hb_ack(uint8_t *out, uint8_t type, uint16_t pid);
size_t hb_simple(uint8_t *out, uint8_t type); /* PINGREQ, DISCONNECT (v3) */

/* ---- convenience ---- */
/* CONNECT + run; returns 1 when CONNACK success was received. */
int h_connect(struct harness *h, int i, uint8_t version, const char *cid, int clean,
              uint16_t keepalive);
/* SUBSCRIBE one filter + run; returns the SUBACK code (or -1). */
int h_subscribe(struct harness *h, int i, const char *filter, uint8_t opts, uint32_t sub_id);
int h_unsubscribe(struct harness *h, int i, const char *filter);
void h_publish(struct harness *h, int i, const char *topic, const char *payload, uint8_t qos,
               int retain);

/* Number of PUBLISH client i received (optionally only with topic). */
size_t h_count_pub(const struct harness *h, int i, const char *topic);
/* The k-th PUBLISH client i received, NULL if none. */
const struct h_rx *h_pub(const struct harness *h, int i, size_t k);
/* A reproducible random scenario: 3 publishers (clients 0-2) and nsub subscribers (3..) mixing
 * MQTT 3.1.1 and 5, random filters, n publishes with random topic/QoS 0-2/retain, runs of the
 * network at random points; with churn, subscribes/unsubscribes and clock jumps too.
 * Payloads are "pN:k" (N the publisher). */
void h_random_script(struct harness *h, unsigned seed, int nsub, int n, int churn);

/* Compares what client i received in two runs of the same script (payloads "pN:..." name the
 * publisher N < npub): the same number of PUBLISH, and for each publisher the same payloads,
 * topics, QoS and retain flags in the same order. Returns 1 when equal, else 0 with the first
 * difference described in why. */
int h_same_per_publisher(const struct harness *a, const struct harness *b, int i, int npub,
                         char *why, size_t whylen);

/* ---- the order the broker took things in (H_SPLICE vs H_DIRECT) ----
 *
 * Packets of different clients travel on different connections: through the splice over an
 * impaired wire, a PUBLISH held up by a retransmission can reach the broker after a SUBSCRIBE
 * another client sent later, which a broker legitimately serves in the order it received them.
 * A straight run of the same script is only a valid reference if its broker takes the clients'
 * packets in the same order. An H_SPLICE run records that order: a packet takes effect when
 * the broker model processes it, or, for a PUBLISH the offload consumed, when the engine had it
 * whole (it delivered then, to the subscriptions it knew). The record is also checked: what
 * the broker receives from a client is exactly what the client sent, in order, each packet
 * once, less the PUBLISHes the offload consumed; and nothing a live client sent is left
 * without effect. */

/* The order of an H_SPLICE run. A client's packets keep the order it sent them in: when a
 * consumed PUBLISH took effect before an earlier packet of its client (a PUBLISH forwarded
 * and still on its way to the broker), variant 0 moves the consumed one later, just after the
 * packet it overtook, and variant 1 moves the earlier ones back to it (*inversions counts
 * such cases; both variants are then valid orders). Returns the number of steps in *out
 * (malloc'd), or -1 with why when the record shows a packet lost, duplicated, altered or
 * reordered on its way to the broker. */
long h_broker_order(const struct harness *o, int variant, struct h_order **out,
                    int *inversions, char *why, size_t whylen);
/* H_DIRECT: the broker takes the clients' packets of the kinds above in this order (copied);
 * a packet the order does not hold never reaches it (it never took effect in the recorded
 * run). Other packets (acknowledgements, pings) go as they come. Call before the script. */
void h_follow(struct harness *d, const struct h_order *ord, size_t n);
/* Prints the order of an H_SPLICE run (variant 0), one packet a line, marking the packets
 * that took effect before a packet another client sent earlier. */
void h_dump_broker_order(const struct harness *o, FILE *f);
/* Runs script(d, arg) on fresh H_DIRECT harnesses following the broker order of the H_SPLICE
 * run o (both variants when they differ) and compares clients from..to-1 per publisher.
 * Returns 1 when one order gives the same messages, else 0 with the difference (or the
 * record's error) in why; *ref, when given, receives the last reference run (h_free and free
 * it; NULL when the record had an error). */
int h_same_as_broker(const struct harness *o, void (*script)(struct harness *, const void *),
                     const void *arg, int from, int to, int npub, char *why, size_t whylen,
                     struct harness **ref);

/* Publisher "pub" (client 0 of a fresh harness) and n subscribers "sub1".."subN" (clients
 * 1..n), all of protocol level v, each subscribed to filter at sqos. Returns 1 when every
 * step did what it should (clients at the expected indices, CONNACKs, SUBACKs granting sqos),
 * else 0 with the failed step in why. */
int h_setup_fanout(struct harness *h, int n, uint8_t v, const char *filter, uint8_t sqos,
                   char *why, size_t whylen);
/* H_SPLICE: 1 when no TCP endpoint saw a segment a correct peer never sends (PAWS drops only
 * count on a wire that neither reorders nor duplicates: any TCP drops a reordered older
 * segment), else 0 with the client and counts in why. */
int h_tcp_clean(const struct harness *h, char *why, size_t whylen);
/* Client i's host (the last byte of its MAC), TTL and TOS from now on (H_SPLICE): the frames
 * it sends carry them, and the frames toward it must (h_tcp_clean). h_open gives each client
 * host i % 4, TTL 64 - i % 2 and TOS i % 3 * 4. */
void h_client_l2(struct harness *h, int i, uint8_t host, uint8_t ttl, uint8_t tos);
/* Client i's address as the mode gives it to the engine (H_ENGINE; mqo_peer_parse's forms). */
void h_set_peer(struct harness *h, int i, const char *peer);

/* Client i acknowledges the k-th PUBLISH it received (PUBACK, or PUBREC for QoS 2). */
void h_ack(struct harness *h, int i, size_t k);

/* Number of packets of `type` client i received. */
size_t h_count_type(const struct harness *h, int i, uint8_t type);

/* The most directions holding state for traffic in transit (the splice's flight_states), seen
 * after each frame between h_flight_peak_start and h_flight_peak_stop (max, reset at will). */
struct h_flight_peak {
    void (*prev)(void *arg, struct ts_ep *ep);
    void *prev_arg;
    const struct mqo_splice *sp;
    uint64_t max;
};
void h_flight_peak_start(struct harness *h, struct h_flight_peak *p);
void h_flight_peak_stop(struct harness *h, struct h_flight_peak *p);

#endif
