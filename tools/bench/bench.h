/* mqoff-bench: MQTT load generator and latency meter. One process, one thread, one epoll loop.
 *
 *   main.c    options, the run (connect, warm up, measure, drain) and the saturation sweep
 *   client.c  MQTT client connections: connect, subscribe, publish on schedule, acks, pings
 *   track.c   per-message accounting: deliveries, first/last subscriber, loss, dups, reorder
 *   report.c  the human table and the JSON record
 *   tap.c     wire-level distribution time from an AF_PACKET capture (TPACKET_V3)
 *
 * Time is CLOCK_MONOTONIC nanoseconds everywhere except the tap, whose frame timestamps are
 * the kernel's (realtime); only differences between two tap timestamps are used.
 */
#ifndef MQB_BENCH_H
#define MQB_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/hist.h"
#include "core/stamp.h"

#define MQB_VERSION "0.1.0"
#define MQB_MAX_PACKET (16u << 20) /* largest packet accepted from a server */
#define MQB_MAX_SIZE (1u << 20)     /* largest --size */
#define MQB_WB_HIGH (4u << 20)      /* a publisher stops queueing above this many unsent bytes */
#define MQB_MAX_WINDOWS 255
#define MQB_MAX_DECOYS 100000u      /* largest --decoys */
#define MQB_SUB_BATCH 128u          /* filters per SUBSCRIBE packet */
#define MQB_FILTER_MAX 96u          /* longest filter the bench builds, NUL included */

enum mqb_filter { MQB_EXACT, MQB_PLUS, MQB_HASH };

/* What an epoll event's data.ptr points at: a struct whose first member is this tag. */
enum { MQB_EV_CONN = 0, MQB_EV_TIMER = 1, MQB_EV_TAP = 2 };

/* Wire taps: on the clients' link (--tap) and where the deliveries leave the distributing host
 * (--sender-tap). Each is "[NETNS:]IF". */
enum { MQB_TAP_CLIENT = 0, MQB_TAP_SENDER = 1, MQB_TAPS = 2 };

struct mqb_cfg {
    const char *host, *sub_host, *bind, *label, *json, *prefix, *trace;
    const char *tap_if[MQB_TAPS]; /* "[NETNS:]IF" or NULL */
    uint16_t port, sub_port;
    struct sockaddr_storage pub_addr, sub_addr, bind_addr;
    socklen_t pub_addr_len, sub_addr_len, bind_addr_len;
    unsigned pubs, subs, topics;
    double rate;       /* messages/s per publisher */
    unsigned size;     /* payload bytes */
    unsigned qos;      /* 0 or 1 */
    double duration, warmup, grace, connect_timeout; /* seconds */
    enum mqb_filter filter;
    unsigned decoys;   /* filters per subscriber that never match a published topic */
    unsigned mqtt;     /* protocol level: 4 (3.1.1) or 5 */
    unsigned keepalive;
    uint64_t seed;
    unsigned max_connecting;
    int quiet;
    /* saturation sweep */
    int saturation;
    double step, step_warmup, step_factor, p99_bound_ms;
    unsigned max_steps;
};

/* One stretch of scheduled send times [start, end). Messages are attributed to the window their
 * scheduled time falls in; only measured windows feed the latency histograms. */
struct mqb_win {
    uint64_t start, end;
    int measured;
    int step;          /* saturation step, 0 for a plain run */
    double rate;       /* per publisher */
    uint64_t sent;     /* messages sent */
    uint64_t unsent;   /* due before the end but never sent (back-pressure) */
    uint64_t expected; /* deliveries expected for the messages sent */
    uint64_t delivered;
    uint64_t complete; /* messages that reached every expected subscriber */
    uint64_t dup, reorder;
    int verdict;       /* saturation: 1 met the bound, 0 did not, -1 not judged */
    struct mqo_hist first, last, delivery, send_lag, tap_last[MQB_TAPS];
};

/* Per (publisher, subscriber) order state: highest sequence seen + 1 and the 64 below it. */
struct mqb_pair {
    uint64_t hi;
    uint64_t seen;
};

enum mqb_role { MQB_SUB, MQB_PUB };
enum mqb_state { MQB_TCP, MQB_CONNACK, MQB_SUBACK, MQB_READY, MQB_CLOSED };

struct mqb_conn {
    int kind; /* event source tag: always 0 for a connection */
    int fd;
    enum mqb_role role;
    enum mqb_state state;
    unsigned idx;
    struct mqo_buf rb, wb;
    size_t woff;      /* bytes of wb already written */
    int out_armed;    /* EPOLLOUT requested */
    uint64_t last_tx; /* for keep-alive */
};

struct mqb_pub {
    struct mqb_conn c;
    unsigned topic;   /* index K of bench/tK */
    uint32_t expect;  /* deliveries per message */
    char topic_s[96];
    uint16_t topic_len;
    /* schedule */
    uint64_t seq;       /* next sequence number */
    uint64_t step_base; /* scheduled time of step message 0 */
    uint64_t step_k;    /* messages scheduled so far in this step */
    double interval;    /* ns */
    uint64_t next_sched, send_end;
    unsigned win;       /* window hint */
    int heap_pos;       /* -1: not in the heap */
    int blocked;        /* waiting for a PUBACK or for the socket */
    /* PUBLISH template: payload stamp at stamp_off, packet identifier at pid_off */
    uint8_t *tmpl;
    size_t tmpl_len;
    uint32_t stamp_off, pid_off;
    /* QoS 1 */
    uint8_t *pid_used; /* 65536 bits */
    uint16_t next_pid;
    uint32_t inflight, recv_max;
    /* per message, indexed by seq */
    uint32_t *cnt;
    uint8_t *mwin;
    struct {
        uint32_t *cnt;
        uint64_t *t0, *tmax;
    } tapd[MQB_TAPS]; /* per tap: deliveries seen, the start's and the last one's time */
    uint64_t *tr_sched, *tr_sent, *tr_first, *tr_last; /* --trace: scheduled, queued, first and
                                                        * last delivery */
    size_t cap;
};

struct mqb_sub {
    struct mqb_conn c;
    struct mqb_pair *pairs;
    unsigned npairs;
    /* setup: its 1 + decoys filters go out in SUBSCRIBEs of up to MQB_SUB_BATCH, one at a
     * time, each after the previous one's SUBACK */
    unsigned sub_sent;    /* filters sent so far */
    unsigned sub_batch;   /* filters in the SUBSCRIBE awaiting its SUBACK */
    uint16_t sub_pid;     /* its packet identifier */
};

struct mqb_tap;

struct mqb {
    struct mqb_cfg cfg;
    int epfd, tfd;
    uint32_t run;
    struct mqb_pub *pubs;
    struct mqb_sub *subs;
    struct mqb_pub **heap;
    unsigned heap_n;
    struct mqb_win *win;
    unsigned nwin;
    int sending;     /* publishers are on their schedules */
    int running;     /* setup is over: a lost connection is counted, not fatal */
    uint64_t timer_armed;
    /* setup */
    unsigned next_connect, connecting, ready_subs, ready_pubs;
    int fatal;       /* a setup error: stop */
    char fatal_msg[256];
    /* totals */
    uint64_t outstanding;   /* deliveries still expected */
    uint64_t qos1_sent, pubacks, bad_pubacks;
    uint64_t bad_payload, stray, unexpected, misrouted, disconnects, proto_errors;
    uint64_t last_housekeeping;
    struct mqb_wire {
        struct mqb_tap *tap;
        uint64_t outstanding; /* deliveries this tap has still to see */
        uint64_t frames, gaps, drops, unmatched;
    } wire[MQB_TAPS];
    FILE *trace_f;   /* --trace, opened before the run */
    int64_t rt_off;  /* CLOCK_REALTIME - CLOCK_MONOTONIC at start: the taps' stamps to ours */
    volatile int *stop;
    const char *sweep_end; /* why the saturation sweep stopped */
};

/* ---- client.c ---- */
uint64_t mqb_now(void);
/* Creates epoll and the timer. Returns 0 or -1 with a message. */
int mqb_loop_init(struct mqb *b);
/* Connects all subscribers (and waits for every SUBACK), then all publishers.
 * Returns 0 or -1 with b->fatal_msg set. */
int mqb_connect_all(struct mqb *b);
/* Puts every publisher on a schedule: rate per publisher, first message at start + phase,
 * nothing scheduled at or after end. */
void mqb_schedule(struct mqb *b, uint64_t start, uint64_t end, double rate);
/* Runs the loop until `until`, or earlier when drain is set and nothing is outstanding.
 * Returns 0, or -1 when stopped (signal or fatal error). */
int mqb_run_until(struct mqb *b, uint64_t until, int drain);
/* Messages the publishers still owed at the end of the schedule (or, when cut is not 0, of its
 * part before cut: an interrupted run); adds them to their window and ends the schedule. */
void mqb_count_unsent(struct mqb *b, uint64_t cut);
/* Sends DISCONNECT to everyone and closes the sockets. */
void mqb_disconnect_all(struct mqb *b);

/* ---- track.c ---- */
/* Sets up the per-subscriber order state. Returns 0 or -ENOMEM. */
int mqb_track_init(struct mqb *b);
/* Makes room for message seq of p. Returns 0 or -ENOMEM. */
int mqb_track_reserve(struct mqb *b, struct mqb_pub *p, uint64_t seq);
/* Window index of scheduled time t for p (advances p->win). */
unsigned mqb_track_window(struct mqb *b, struct mqb_pub *p, uint64_t t);
/* A message of p was queued for sending at `now`. */
void mqb_track_sent(struct mqb *b, struct mqb_pub *p, uint64_t seq, uint64_t sched, uint64_t now);
/* Subscriber s received a PUBLISH (topic, payload) at `now`. */
void mqb_track_delivery(struct mqb *b, struct mqb_sub *s, const uint8_t *topic, size_t topic_len,
                        const uint8_t *payload, size_t len, uint64_t now);
/* The tap saw a complete PUBLISH carrying payload: from a publisher (start) or to a subscriber. */
void mqb_track_tap(struct mqb *b, int idx, const uint8_t *payload, size_t len, uint64_t ts, int start);
void mqb_track_free(struct mqb *b);
/* Expected deliveries of a message on topic K. */
uint32_t mqb_expect(const struct mqb_cfg *c, unsigned topic);
/* Filter j of subscriber i into out[0..cap): j = 0 its real filter (--filter), j = 1..decoys
 * its decoys, which match no topic the bench publishes on. Returns the length (< cap). */
int mqb_sub_filter(const struct mqb_cfg *c, unsigned i, unsigned j, char *out, size_t cap);

/* ---- report.c ---- */
void mqb_report_run(const struct mqb *b, FILE *f);
/* One line per saturation step, `best` the highest passing window (-1: none). */
void mqb_report_steps(const struct mqb *b, FILE *f, int best, double bound_ns);
/* Writes the JSON record. Returns 0 or -1 with a message. */
int mqb_report_json(const struct mqb *b, const char *path, int best, double bound_ns);
/* Writes the per-message trace (--trace) to f and closes it. Returns 0 or -1 with a message. */
int mqb_report_trace(const struct mqb *b, FILE *f);
/* Deliveries per second of a window. */
double mqb_win_rate(const struct mqb_win *w);

/* ---- tap.c ---- */
/* Opens tap idx on cfg.tap_if[idx], "[NETNS:]IF" (the socket is made inside network namespace
 * NETNS, /run/netns/NETNS, when given): TCP to the publishers' port, from the subscribers'.
 * Returns 0 or -1 with a message. */
int mqb_tap_open(struct mqb *b, int idx);
/* Processes every captured frame ready in every tap's ring. */
void mqb_tap_poll(struct mqb *b);
/* Reads the kernels' drop counters into b->wire[].drops and closes the taps. */
void mqb_tap_close(struct mqb *b);

#endif
