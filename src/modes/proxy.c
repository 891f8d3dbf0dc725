/* proxy mode: epoll loop over client and broker sockets, every byte through the engine.
 *
 * Each client connection is a pair: side 0 the client socket, side 1 the socket the proxy opens
 * to the broker. Bytes read from a side go into the engine; its edits land in the output queue
 * of the other side (forward) or of either side (insert). Output queues are flushed once per
 * loop iteration, after every event of the iteration was processed, so a fan-out of one PUBLISH
 * to N subscribers costs one writev per subscriber carrying everything queued for it.
 *
 * Back-pressure: a client whose queue's memory (overhead included, mqo_outq.mem) passes
 * max_queue gets no more offload QoS 0 deliveries
 * (dropped, counted) and makes QoS 1 messages go to the broker (the engine asks `room`); if the
 * broker's own bytes push the queue past 2 x max_queue the proxy stops reading that broker
 * socket until the client drains, so the broker applies its own queueing policy to it. Nothing
 * ever blocks: a slow subscriber never stalls the publisher or the others.
 *
 * The connection layer (everything above) does not depend on sockets: with a stack of
 * modes/proxy_int.h (lwIP, modes/proxy_lwip.c) a side is a handle of that stack instead of a
 * descriptor, and the stack's receive, send and timer work runs in this loop.
 */
#include "modes/proxy.h"
#include "modes/proxy_int.h"

#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/ser.h"
#include "mqtt/mqtt.h"
#include "net/outq.h"
#include "net/takeover.h"

enum { CLIENT = MQO_PX_CLIENT, BROKER = MQO_PX_BROKER };

/* epoll tags: 0 the listener, a pconn pointer | side, these for the watched files, the control
 * socket and the upstream's descriptor (pointers are aligned: never 2, 4 or 6) */
#define TAG_RELOAD 2u
#define TAG_CTL 4u
#define TAG_UPSTREAM 6u
#define TAG_STACK 8u
#define TAG_TAKEOVER 10u

/* iovecs of one in-flight io_uring send (must live until its completion) */
struct uring_send {
    struct msghdr mh;
    struct iovec iov[64];
    uint8_t scratch[64 * 3];
};

struct side {
    void *h; /* the stack's handle (mqo_px_stack) instead of a socket; NULL: none */
    struct mqo_outq q;
    int fd;
    uint8_t ev;            /* epoll mask registered (EPOLLIN, EPOLLOUT: side_events) */
    unsigned rd_closed : 1; /* read returned 0 */
    unsigned want_shut : 1; /* shutdown(SHUT_WR) once the queue is empty */
    unsigned wr_shut : 1;
    unsigned paused : 1;    /* reads paused for back-pressure */
    unsigned resume : 1;    /* the stack's handle: unpaused, its refused input is due again */
};
_Static_assert((EPOLLIN | EPOLLOUT) <= UINT8_MAX, "a side's epoll mask fits its 8 bits");

struct pconn {
    struct proxy *px;
    struct side s[2];
    struct mqo_conn *ec;
    /* one bit each: a client connection is held by many, idle (docs/ARCHITECTURE.md, Memory
     * per connection) */
    unsigned connecting : 1;    /* broker connect in progress */
    unsigned broker_failed : 1; /* broker unreachable: answer the CONNECT, then close */
    unsigned closing : 1;       /* flush what the client is owed, then close */
    unsigned dead : 1;          /* on the close list */
    unsigned dirty : 1;
    unsigned in_border : 1;     /* on the broker-order list */
    unsigned in_resume : 1;     /* on the resume list */
    uint8_t reset;           /* 1 + the side that was reset: the other one is reset too */
    uint8_t connect_version; /* protocol level of the client's CONNECT, 0 until seen */
    struct mqo_buf *sniff;   /* client bytes until its CONNECT is whole (NULL: none kept) */
    uint64_t fail_deadline;
    struct pconn *dirty_next, *dead_next, *border_next, *resume_next;
    struct pconn *prev, *next;
    struct mqo_peer peer; /* the client's address (op_peer) */
};

struct proxy {
    const struct mqo_proxy_cfg *cfg;
    struct mqo_engine *eng;
    struct mqo_proxy_stats st;
    int ep, lfd;
    uint8_t accept_paused;
    size_t fail_waiting; /* connections waiting for a CONNECT to refuse (fail_deadline) */
    size_t max_queue;
    uint64_t drops_logged, drops_logged_at; /* dropped_qos0 when last logged, and when */
    struct pconn *conns, *dead;
    /* connections touched this iteration, in the order they were first touched */
    struct pconn *dirty, **dirty_tail;
    /* connections with bytes queued toward the broker, in the order the first of those bytes
     * arrived: their broker sockets are written in that order, so the broker reads what
     * different clients sent in the order mqoff received it */
    struct pconn *border, **border_tail;
    uint64_t now;
    int use_uring;
    struct io_uring ring;
    unsigned ring_entries;
    struct uring_send *usend; /* one per submission queue entry (a send's iovecs) */
    struct mqo_ctl *ctl; /* NULL: none */
    const struct mqo_px_stack *stk; /* NULL: kernel sockets */
    struct pconn *resumes;          /* connections with a side to resume (stack) */
    size_t nconns;
    int tko_fd;          /* takeover listener, -1: none */
    uint8_t tko_pending; /* a new process knocked: hand over after this iteration */
    uint8_t handed;      /* handed over: exit, touching no socket */
};

static int side_open(const struct side *sd) { return sd->fd >= 0 || sd->h; }

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void mark_dirty(struct pconn *pc)
{
    struct proxy *px = pc->px;
    if (pc->dirty)
        return;
    pc->dirty = 1;
    pc->dirty_next = NULL;
    *px->dirty_tail = pc;
    px->dirty_tail = &pc->dirty_next;
}

/* Bytes were queued toward the broker for pc. */
static void mark_broker(struct pconn *pc)
{
    struct proxy *px = pc->px;
    mark_dirty(pc);
    if (pc->in_border)
        return;
    pc->in_border = 1;
    pc->border_next = NULL;
    *px->border_tail = pc;
    px->border_tail = &pc->border_next;
}

static void kill_conn(struct pconn *pc)
{
    if (pc->dead)
        return;
    pc->dead = 1;
    pc->dead_next = pc->px->dead;
    pc->px->dead = pc;
}

/* ---- engine ops ---- */

static void op_forward(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n)
{
    struct pconn *pc = mqo_conn_ud(c);
    if (mqo_outq_push_bytes(&pc->s[s == MQO_C2S ? BROKER : CLIENT].q, p, n)) {
        mqo_err("out of memory queueing %zu bytes: closing the connection", n);
        kill_conn(pc);
    }
    if (s == MQO_C2S)
        mark_broker(pc);
    else
        mark_dirty(pc);
}

static void op_consume(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}

static void op_insert(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o)
{
    struct pconn *pc = mqo_conn_ud(c);
    if (mqo_outq_push_out(&pc->s[s == MQO_C2S ? BROKER : CLIENT].q, o)) {
        mqo_err("out of memory queueing a packet: closing the connection");
        kill_conn(pc);
    }
    if (s == MQO_C2S)
        mark_broker(pc);
    else
        mark_dirty(pc);
}

/* The limit counts the queue's memory, overhead included (chunk headers and slack, the entry
 * ring, shared packets whole), not only the bytes to write. */
static size_t op_room(void *ud, struct mqo_conn *c)
{
    struct pconn *pc = mqo_conn_ud(c);
    struct proxy *px = ud;
    return mqo_outq_room(&pc->s[CLIENT].q, px->max_queue);
}

static size_t op_queued(void *ud, struct mqo_conn *c)
{
    struct pconn *pc = mqo_conn_ud(c);
    return pc->s[CLIENT].q.bytes;
}

static void op_close(void *ud, struct mqo_conn *c, int reason)
{
    struct pconn *pc = mqo_conn_ud(c);
    pc->closing = 1;
    mark_dirty(pc);
}

/* ---- epoll ---- */

static uint64_t tag(struct pconn *pc, int side) { return (uint64_t)(uintptr_t)pc | (uint64_t)side; }

static void update_events(struct pconn *pc, int side)
{
    struct side *sd = &pc->s[side];
    if (sd->fd < 0)
        return;
    uint8_t ev = 0;
    if (!sd->rd_closed && !sd->paused)
        ev |= EPOLLIN;
    if (sd->q.bytes || (side == BROKER && pc->connecting))
        ev |= EPOLLOUT;
    if (ev == sd->ev)
        return;
    struct epoll_event e = {.events = ev, .data.u64 = tag(pc, side)};
    epoll_ctl(pc->px->ep, EPOLL_CTL_MOD, sd->fd, &e);
    sd->ev = ev;
}

static int set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- connection lifecycle ---- */

/* Drops the client bytes kept until its CONNECT was whole. */
static void sniff_free(struct pconn *pc)
{
    if (pc->sniff) {
        mqo_buf_free(pc->sniff);
        free(pc->sniff);
        pc->sniff = NULL;
    }
}

static void free_conn(struct proxy *px, struct pconn *pc)
{
    int abort_side = -1;
    if (pc->reset) {
        struct side *o = &pc->s[2 - pc->reset];
        if (o->fd >= 0) {
            (void)mqo_outq_flush(&o->q, o->fd); /* what it is owed, as far as it takes it */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(o->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        } else if (o->h) {
            (void)px->stk->send(px->stk->arg, o->h, &o->q);
            abort_side = 2 - pc->reset;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (pc->s[i].fd >= 0)
            close(pc->s[i].fd); /* also removes it from the epoll set */
        if (pc->s[i].h)
            px->stk->close(px->stk->arg, pc->s[i].h, i == abort_side);
        mqo_outq_free(&pc->s[i].q);
    }
    if (pc->ec)
        mqo_engine_conn_close(px->eng, pc->ec, px->now);
    sniff_free(pc);
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        px->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    px->st.closed++;
    px->nconns--;
    free(pc);
}

/* Answers the client's CONNECT with "server unavailable" when the broker cannot be reached. */
static void refuse_connect(struct pconn *pc)
{
    uint8_t v5[] = {0x20, 0x03, 0x00, MQO_RC_SERVER_UNAVAILABLE, 0x00};
    uint8_t v3[] = {0x20, 0x02, 0x00, 0x03};
    int v5c = pc->connect_version == MQO_MQTT_V5;
    if (pc->s[CLIENT].h)
        pc->px->stk->send_raw(pc->px->stk->arg, pc->s[CLIENT].h, v5c ? v5 : v3,
                              v5c ? sizeof v5 : sizeof v3);
    else if (v5c)
        (void)!write(pc->s[CLIENT].fd, v5, sizeof v5);
    else
        (void)!write(pc->s[CLIENT].fd, v3, sizeof v3);
    kill_conn(pc);
}

static void broker_failed(struct pconn *pc, int err)
{
    struct proxy *px = pc->px;
    px->st.broker_connect_failed++;
    if (!px->cfg->upstream) { /* an upstream logs its own reason */
        char who[200];
        mqo_warn("broker unreachable for %s: %s", mqo_conn_who(pc->ec, who, sizeof who),
                 strerror(err));
    }
    pc->broker_failed = 1;
    pc->connecting = 0;
    if (pc->s[BROKER].fd >= 0) {
        close(pc->s[BROKER].fd);
        pc->s[BROKER].fd = -1;
    }
    if (pc->s[BROKER].h) {
        px->stk->close(px->stk->arg, pc->s[BROKER].h, 1);
        pc->s[BROKER].h = NULL;
    }
    if (pc->connect_version) {
        refuse_connect(pc);
    } else {
        pc->fail_deadline = px->now + 2000000000ull; /* wait a little for the CONNECT */
        px->fail_waiting++;
    }
}

/* Keeps the client's first bytes until its CONNECT is whole, to learn its protocol level. */
static void sniff_connect(struct pconn *pc, const uint8_t *p, size_t n)
{
    if (pc->connect_version || (pc->sniff && pc->sniff->len > 65536 + 8))
        return;
    /* the CONNECT usually comes whole in the first read: nothing is kept then */
    if (pc->sniff && mqo_buf_append(pc->sniff, p, n))
        return;
    const uint8_t *d = pc->sniff ? pc->sniff->data : p;
    size_t len = pc->sniff ? pc->sniff->len : n;
    struct mqo_frame f;
    ssize_t t = mqo_mqtt_frame(d, len, 0, &f);
    if (t <= 0) {
        if (!pc->sniff && (pc->sniff = calloc(1, sizeof *pc->sniff)) != NULL &&
            mqo_buf_append(pc->sniff, p, n)) {
            free(pc->sniff);
            pc->sniff = NULL;
        }
        return;
    }
    struct mqo_pkt pk;
    if (f.type == MQO_CONNECT && mqo_mqtt_decode(d, (size_t)t, MQO_MQTT_V311, MQO_C2S, &pk) == 0)
        pc->connect_version = pk.u.connect.level;
    else
        pc->connect_version = MQO_MQTT_V311;
    sniff_free(pc);
}

/* Keeps the client's address for the engine's log lines (op_peer); another family, or none,
 * leaves it unknown. */
static void set_peer(struct pconn *pc, const struct sockaddr_storage *a, socklen_t len)
{
    memset(&pc->peer, 0, sizeof pc->peer);
    if (a && a->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        memcpy(pc->peer.ip, &v4->sin_addr, 4);
        pc->peer.port = ntohs(v4->sin_port);
        pc->peer.fam = 4;
    } else if (a && a->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
        memcpy(pc->peer.ip, &v6->sin6_addr, 16);
        pc->peer.port = ntohs(v6->sin6_port);
        pc->peer.fam = 6;
    }
}

static void op_peer(void *ud, const struct mqo_conn *c, struct mqo_peer *p)
{
    (void)ud;
    const struct pconn *pc = mqo_conn_ud(c);
    if (pc) /* NULL: loaded, not bound to its pair yet */
        *p = pc->peer;
}

/* The broker side of a new client: the upstream's socket, a socket connecting to the broker,
 * or the stack's connection. Sets pc->s[BROKER] and pc->connecting; returns 0, or -errno when
 * the broker cannot be reached (the client is then refused). */
static int broker_open(struct proxy *px, struct pconn *pc, const struct sockaddr *peer,
                       socklen_t pl, const struct sockaddr *local, socklen_t ll)
{
    const struct mqo_proxy_cfg *cfg = px->cfg;
    if (cfg->upstream) { /* an upstream's socket is connected already */
        int bfd = cfg->upstream->open(cfg->upstream->arg, peer, pl, local, ll);
        if (bfd < 0)
            return bfd;
        pc->s[BROKER].fd = bfd;
    } else if (px->stk) {
        int err = 0;
        pc->s[BROKER].h = px->stk->connect(px->stk->arg, pc, &err);
        if (!pc->s[BROKER].h)
            return -(err ? err : ENOMEM);
        pc->connecting = 1;
        return 0;
    } else {
        int bfd = socket(cfg->broker_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0);
        if (bfd < 0)
            return -errno;
        set_nodelay(bfd);
        pc->s[BROKER].fd = bfd;
        if (connect(bfd, (const struct sockaddr *)&cfg->broker_addr, cfg->broker_len) < 0) {
            if (errno != EINPROGRESS)
                return -errno; /* bfd closed by broker_failed */
            pc->connecting = 1;
        }
    }
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.u64 = tag(pc, BROKER)};
    epoll_ctl(px->ep, EPOLL_CTL_ADD, pc->s[BROKER].fd, &e);
    pc->s[BROKER].ev = EPOLLIN | EPOLLOUT;
    return 0;
}

/* A new client connection on socket cfd or the stack's handle ch: the engine's connection and
 * the broker side. Returns it, or NULL (no memory: logged, cfd closed, ch left to the caller). */
static struct pconn *conn_new(struct proxy *px, int cfd, void *ch, const struct sockaddr *peer,
                              socklen_t pl, const struct sockaddr *local, socklen_t ll)
{
    struct pconn *pc = calloc(1, sizeof *pc);
    if (pc) {
        pc->px = px;
        pc->s[CLIENT].fd = cfd;
        pc->s[CLIENT].h = ch;
        pc->s[BROKER].fd = -1;
        pc->ec = mqo_engine_conn_open(px->eng, pc, px->now);
    }
    if (!pc || !pc->ec) {
        mqo_err("cannot set up a client connection: out of memory");
        free(pc);
        if (cfd >= 0)
            close(cfd);
        return NULL;
    }
    set_peer(pc, (const struct sockaddr_storage *)peer, pl);
    pc->next = px->conns;
    if (px->conns)
        px->conns->prev = pc;
    px->conns = pc;
    px->nconns++;
    px->st.accepted++;
    if (cfd >= 0) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = tag(pc, CLIENT)};
        epoll_ctl(px->ep, EPOLL_CTL_ADD, cfd, &e);
        pc->s[CLIENT].ev = EPOLLIN;
    }
    int rc = broker_open(px, pc, peer, pl, local, ll);
    if (rc < 0)
        broker_failed(pc, -rc);
    return pc;
}

static void accept_clients(struct proxy *px)
{
    for (;;) {
        struct sockaddr_storage peer, local;
        socklen_t pl = sizeof peer, ll = sizeof local;
        int cfd = accept4(px->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                mqo_warn("cannot accept more clients (%s): pausing accepts briefly",
                         strerror(errno));
                struct epoll_event e = {.events = 0, .data.u64 = 0};
                epoll_ctl(px->ep, EPOLL_CTL_MOD, px->lfd, &e);
                px->accept_paused = 1;
            }
            return;
        }
        set_nodelay(cfd);
        if (getsockname(cfd, (struct sockaddr *)&local, &ll) < 0)
            ll = 0;
        conn_new(px, cfd, NULL, (struct sockaddr *)&peer, pl, (struct sockaddr *)&local, ll);
    }
}

struct pconn *mqo_px_accepted(struct proxy *px, void *h, const struct sockaddr *peer,
                              socklen_t peer_len, const struct sockaddr *local,
                              socklen_t local_len)
{
    return conn_new(px, -1, h, peer, peer_len, local, local_len);
}

/* The side's peer sent its FIN: passed on once everything before it is written. */
static void side_eof(struct pconn *pc, int side)
{
    struct side *sd = &pc->s[side];
    sd->rd_closed = 1;
    pc->s[side ^ 1].want_shut = 1;
    mark_dirty(pc);
    if (side == CLIENT && pc->broker_failed)
        kill_conn(pc);
}

/* A side was reset: the other side is reset too (after what it is owed), as it would have been
 * without mqoff in between. */
static void side_reset(struct pconn *pc, int side)
{
    if (!pc->reset)
        pc->reset = (uint8_t)(1 + side);
    kill_conn(pc);
}

/* n bytes arrived on a side. */
static void side_input(struct proxy *px, struct pconn *pc, int side, const uint8_t *p, size_t n)
{
    if (side == CLIENT) {
        px->st.bytes_from_clients += n;
        sniff_connect(pc, p, n);
        if (pc->broker_failed) {
            if (pc->connect_version)
                refuse_connect(pc);
            return;
        }
    } else {
        px->st.bytes_from_broker += n;
    }
    mqo_engine_input(px->eng, pc->ec, side == CLIENT ? MQO_C2S : MQO_S2C, p, n, px->now);
}

/* Reads what the socket has (bounded per event, epoll is level-triggered). */
static void read_side(struct proxy *px, struct pconn *pc, int side)
{
    static uint8_t buf[65536];
    struct side *sd = &pc->s[side];
    for (int k = 0; k < 4 && !pc->dead; k++) {
        ssize_t r = read(sd->fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            side_reset(pc, side);
            return;
        }
        if (r == 0) {
            side_eof(pc, side);
            return;
        }
        side_input(px, pc, side, buf, (size_t)r);
        if ((size_t)r < sizeof buf)
            return;
    }
}

void mqo_px_input(struct pconn *pc, int side, const uint8_t *p, size_t n)
{
    if (!pc->dead)
        side_input(pc->px, pc, side, p, n);
}

int mqo_px_reading(const struct pconn *pc, int side)
{
    return !pc->dead && !pc->s[side].paused;
}

void mqo_px_eof(struct pconn *pc, int side)
{
    if (!pc->dead)
        side_eof(pc, side);
}

void mqo_px_gone(struct pconn *pc, int side, int err)
{
    pc->s[side].h = NULL;
    if (side == BROKER && pc->connecting) {
        mqo_px_broker_failed(pc, err);
        return;
    }
    side_reset(pc, side);
}

void mqo_px_connected(struct pconn *pc)
{
    pc->connecting = 0;
    mark_dirty(pc);
}

void mqo_px_broker_failed(struct pconn *pc, int err)
{
    pc->s[BROKER].h = NULL;
    if (!pc->dead && !pc->broker_failed)
        broker_failed(pc, err);
}

void mqo_px_writable(struct pconn *pc, int side)
{
    if (!pc->dead && (pc->s[side].q.bytes || (pc->s[side].want_shut && !pc->s[side].wr_shut)))
        mark_dirty(pc);
}

size_t mqo_px_conns(const struct proxy *px) { return px->nconns; }
const struct mqo_proxy_cfg *mqo_px_cfg(const struct proxy *px) { return px->cfg; }

/* Accounts for n bytes written to a side (by writev or io_uring). */
static void wrote(struct proxy *px, struct pconn *pc, int side, size_t n)
{
    px->st.writev_calls++;
    if (side == CLIENT)
        px->st.bytes_to_clients += n;
    else
        px->st.bytes_to_broker += n;
}

static void flush_side(struct proxy *px, struct pconn *pc, int side)
{
    struct side *sd = &pc->s[side];
    ssize_t w = sd->h ? px->stk->send(px->stk->arg, sd->h, &sd->q) : mqo_outq_flush(&sd->q, sd->fd);
    if (w < 0) {
        kill_conn(pc);
        return;
    }
    wrote(px, pc, side, (size_t)w);
}

/* Pauses or resumes reading a side, for back-pressure: the queue it feeds is over twice
 * max_queue (resumed at max_queue), or the engine holds as much of its stream as it may (a
 * broker PUBLISH waiting for the client's Receive Maximum keeps what follows it). */
static void pressure(struct proxy *px, struct pconn *pc)
{
    for (int side = 0; side < 2; side++) {
        struct side *rd = &pc->s[side];
        size_t q = pc->s[side ^ 1].q.mem;
        int full = rd->paused ? q > px->max_queue : q > 2 * px->max_queue;
        int engine_full =
            pc->ec && mqo_engine_input_room(pc->ec, side == CLIENT ? MQO_C2S : MQO_S2C) == 0;
        int pause = full || engine_full;
        if (pause && !rd->paused && side == BROKER)
            px->st.paused_broker_reads++;
        if (!pause && rd->paused && rd->h) {
            rd->resume = 1; /* after this flush (its input edits other connections) */
            if (!pc->in_resume) {
                pc->in_resume = 1;
                pc->resume_next = px->resumes;
                px->resumes = pc;
            }
        }
        rd->paused = pause != 0;
    }
}

static int can_flush(const struct pconn *pc, int side)
{
    const struct side *sd = &pc->s[side];
    return !pc->dead && side_open(sd) && sd->q.bytes && !(side == BROKER && pc->connecting);
}

/* After the flush: half-close, close, back-pressure, epoll mask. */
static void settle(struct proxy *px, struct pconn *pc)
{
    if (pc->dead)
        return;
    for (int side = 0; side < 2; side++) {
        struct side *sd = &pc->s[side];
        if (side_open(sd) && !sd->q.bytes && sd->want_shut && !sd->wr_shut &&
            !(side == BROKER && pc->connecting)) {
            if (sd->h)
                px->stk->shut(px->stk->arg, sd->h);
            else
                shutdown(sd->fd, SHUT_WR);
            sd->wr_shut = 1;
        }
    }
    if (pc->closing) {
        kill_conn(pc); /* a limit of the engine's own (memory): both sides go */
        return;
    }
    /* both directions finished */
    if (pc->s[CLIENT].rd_closed && pc->s[BROKER].rd_closed && !pc->s[CLIENT].q.bytes &&
        !pc->s[BROKER].q.bytes) {
        kill_conn(pc);
        return;
    }
    pressure(px, pc);
    update_events(pc, CLIENT);
    update_events(pc, BROKER);
}

/* Submits the queued sends, waits for their completions and accounts for them. */
static void uring_reap(struct proxy *px, unsigned queued)
{
    io_uring_submit_and_wait(&px->ring, queued);
    struct io_uring_cqe *cqe;
    unsigned head, k = 0;
    io_uring_for_each_cqe(&px->ring, head, cqe)
    {
        struct pconn *cp = (struct pconn *)(uintptr_t)(cqe->user_data & ~1ull);
        int cs = (int)(cqe->user_data & 1);
        if (cqe->res > 0) {
            mqo_outq_advance(&cp->s[cs].q, (size_t)cqe->res);
            wrote(px, cp, cs, (size_t)cqe->res);
        } else if (cqe->res != -EAGAIN) {
            kill_conn(cp);
        }
        k++;
    }
    io_uring_cq_advance(&px->ring, k);
}

/* One socket write of an iteration. */
struct wr {
    struct pconn *pc;
    int side;
};

/* Flushes the writes with one io_uring submission: a send per socket, all in one system call
 * (plus one per ring-full), in order. A send that would block completes with -EAGAIN and the
 * socket waits for EPOLLOUT. */
static void flush_uring(struct proxy *px, const struct wr *w, size_t n)
{
    unsigned queued = 0;
    for (size_t i = 0; i < n; i++) {
        struct pconn *pc = w[i].pc;
        int side = w[i].side;
        if (!can_flush(pc, side))
            continue;
        struct side *sd = &pc->s[side];
        if (sd->h) { /* the stack's side: its own send path */
            flush_side(px, pc, side);
            continue;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&px->ring);
        if (!sqe || queued == px->ring_entries) {
            uring_reap(px, queued);
            queued = 0;
            sqe = io_uring_get_sqe(&px->ring);
        }
        /* the send's iovecs live in the slot of its entry until uring_reap, which waits for
         * every completion: no connection keeps one while idle */
        struct uring_send *us = &px->usend[queued];
        int k = mqo_outq_iov(&sd->q, us->iov, 64, us->scratch);
        us->mh = (struct msghdr){.msg_iov = us->iov, .msg_iovlen = (size_t)k};
        io_uring_prep_sendmsg(sqe, sd->fd, &us->mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, tag(pc, side));
        queued++;
    }
    if (queued)
        uring_reap(px, queued);
}

/* Flushes and settles every connection this iteration touched. The broker sockets go first, in
 * the order their bytes arrived (a SUBSCRIBE read before another client's PUBLISH is written
 * to the broker before it), then the client sockets. */
static void flush_dirty(struct proxy *px)
{
    static struct wr *w;
    static size_t cap;
    size_t n = 0, need = 0;
    for (struct pconn *pc = px->border; pc; pc = pc->border_next)
        need++;
    for (struct pconn *pc = px->dirty; pc; pc = pc->dirty_next)
        need++;
    if (need > cap) {
        size_t nc = cap ? cap : 1024;
        while (nc < need)
            nc *= 2;
        struct wr *nw = realloc(w, nc * sizeof *nw);
        if (nw) {
            w = nw;
            cap = nc;
        }
    }
    for (struct pconn *pc = px->border; pc && n < cap; pc = pc->border_next)
        if (can_flush(pc, BROKER))
            w[n++] = (struct wr){pc, BROKER};
    for (struct pconn *pc = px->dirty; pc && n < cap; pc = pc->dirty_next)
        if (can_flush(pc, CLIENT))
            w[n++] = (struct wr){pc, CLIENT};
    if (px->use_uring) {
        flush_uring(px, w, n);
    } else {
        for (size_t i = 0; i < n; i++)
            if (can_flush(w[i].pc, w[i].side))
                flush_side(px, w[i].pc, w[i].side);
    }
    for (struct pconn *pc = px->dirty, *nx; pc; pc = nx) {
        nx = pc->dirty_next;
        pc->dirty = 0;
        settle(px, pc);
    }
    px->dirty = NULL;
    px->dirty_tail = &px->dirty;
    /* what the broker sockets did not take keeps its place (closed connections leave) */
    struct pconn *bl = px->border;
    px->border = NULL;
    px->border_tail = &px->border;
    for (struct pconn *pc = bl, *nx; pc; pc = nx) {
        nx = pc->border_next;
        pc->in_border = 0;
        if (!pc->dead && pc->s[BROKER].q.bytes) {
            pc->in_border = 1;
            pc->border_next = NULL;
            *px->border_tail = pc;
            px->border_tail = &pc->border_next;
        }
    }
    /* unpaused stack sides: their refused input comes now (the next flush writes its edits) */
    while (px->resumes) {
        struct pconn *pc = px->resumes;
        px->resumes = pc->resume_next;
        pc->in_resume = 0;
        for (int side = 0; side < 2; side++)
            if (pc->s[side].resume) {
                pc->s[side].resume = 0;
                if (!pc->dead && pc->s[side].h && !pc->s[side].paused)
                    px->stk->resume(px->stk->arg, pc->s[side].h);
            }
    }
}

static void handle_event(struct proxy *px, struct epoll_event *ev)
{
    if (ev->data.u64 == 0) {
        accept_clients(px);
        return;
    }
    if (ev->data.u64 == TAG_RELOAD) {
        mqo_reload_changed(px->cfg->reload, px->eng);
        return;
    }
    if (ev->data.u64 == TAG_UPSTREAM) {
        px->cfg->upstream->ready(px->cfg->upstream->arg, px->now);
        return;
    }
    if (ev->data.u64 == TAG_CTL || ev->data.u64 == TAG_STACK)
        return; /* served first, in mqo_px_run */
    if (ev->data.u64 == TAG_TAKEOVER) {
        px->tko_pending = 1; /* once this iteration's work is flushed */
        return;
    }
    struct pconn *pc = (struct pconn *)(uintptr_t)(ev->data.u64 & ~(uint64_t)1);
    int side = (int)(ev->data.u64 & 1);
    if (pc->dead)
        return;
    if (side == BROKER && pc->connecting) {
        if (!(ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(pc->s[BROKER].fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            broker_failed(pc, err);
            return;
        }
        pc->connecting = 0;
        mark_dirty(pc);
    }
    if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        read_side(px, pc, side);
    if (!pc->dead && (ev->events & EPOLLOUT))
        mark_dirty(pc);
}

/* Logs, at most every 10 s, the QoS 0 deliveries dropped for full subscriber queues since the
 * last line: a subscriber that reads slower than its publishers send (a flood) loses its own
 * QoS 0 messages, and nothing else waits for it; the operator should know it happens. */
static void log_drops(struct proxy *px)
{
    uint64_t d = mqo_engine_stats(px->eng)->dropped_qos0;
    if (d == px->drops_logged ||
        (px->drops_logged_at && px->now - px->drops_logged_at < 10000000000ull))
        return;
    mqo_warn("%llu QoS 0 deliveries dropped: subscriber queues full (a subscriber reads slower "
             "than its publishers send; --max-queue %zu bytes)",
             (unsigned long long)(d - px->drops_logged), px->max_queue);
    px->drops_logged = d;
    px->drops_logged_at = px->now;
}

/* Every iteration: the engine's timers (a slice of its connections each time). Every 50 ms
 * (slow): the proxy's own, walking the connections only while some wait for a CONNECT. */
static void timers(struct proxy *px, int slow)
{
    mqo_engine_tick(px->eng, px->now);
    if (!slow)
        return;
    if (px->cfg->upstream && px->cfg->upstream->tick)
        px->cfg->upstream->tick(px->cfg->upstream->arg, px->now);
    log_drops(px);
    if (px->ctl)
        mqo_ctl_run(px->ctl, px->now);
    if (px->fail_waiting) {
        size_t left = 0;
        for (struct pconn *pc = px->conns; pc; pc = pc->next) {
            if (!pc->broker_failed || pc->dead || !pc->fail_deadline)
                continue;
            if (px->now > pc->fail_deadline)
                kill_conn(pc);
            else
                left++;
        }
        px->fail_waiting = left;
    }
    if (px->accept_paused && px->lfd >= 0) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
        epoll_ctl(px->ep, EPOLL_CTL_MOD, px->lfd, &e);
        px->accept_paused = 0;
    }
}

static int open_listener(struct proxy *px)
{
    const struct mqo_proxy_cfg *cfg = px->cfg;
    int fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_len) < 0 ||
        listen(fd, cfg->backlog ? cfg->backlog : 4096) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    px->lfd = fd;
    if (cfg->on_listen) {
        struct sockaddr_storage a;
        socklen_t l = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &l);
        uint16_t port = a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                                : ((struct sockaddr_in *)&a)->sin_port;
        cfg->on_listen(cfg->on_listen_arg, ntohs(port));
    }
    return 0;
}

/* The proxy's counters for the control socket and the metrics endpoint. */
static size_t ctl_counters(void *arg, struct mqo_ctl_counter *out, size_t cap)
{
    const struct proxy *px = arg;
    const struct mqo_proxy_stats *st = &px->st;
    uint64_t queued[2] = {0, 0};
    for (const struct pconn *pc = px->conns; pc; pc = pc->next)
        for (int s = 0; s < 2; s++)
            queued[s] += pc->s[s].q.bytes;
    const struct mqo_ctl_counter v[] = {
        {"mqoff_proxy_connections_accepted_total", NULL, "client connections accepted",
         st->accepted, 0},
        {"mqoff_proxy_connections_closed_total", NULL, "client connections closed", st->closed, 0},
        {"mqoff_proxy_broker_connect_failures_total", NULL, "broker connections that failed",
         st->broker_connect_failed, 0},
        {"mqoff_proxy_received_bytes_total", "side=\"client\"", "bytes read from sockets",
         st->bytes_from_clients, 0},
        {"mqoff_proxy_received_bytes_total", "side=\"broker\"", "bytes read from sockets",
         st->bytes_from_broker, 0},
        {"mqoff_proxy_sent_bytes_total", "side=\"client\"", "bytes written to sockets",
         st->bytes_to_clients, 0},
        {"mqoff_proxy_sent_bytes_total", "side=\"broker\"", "bytes written to sockets",
         st->bytes_to_broker, 0},
        {"mqoff_proxy_socket_writes_total", NULL, "socket writes (writev or io_uring sends)",
         st->writev_calls, 0},
        {"mqoff_proxy_broker_reads_paused_total", NULL,
         "times a broker socket was paused for a slow client", st->paused_broker_reads, 0},
        {"mqoff_queued_bytes", "side=\"client\"", "bytes queued toward sockets", queued[0], 1},
        {"mqoff_queued_bytes", "side=\"broker\"", "bytes queued toward sockets", queued[1], 1},
    };
    size_t n = mqo_ctl_counters_put(out, cap, v, sizeof v / sizeof v[0]);
    if (px->stk && px->stk->counters)
        n += px->stk->counters(px->stk->arg, n < cap ? out + n : out, n < cap ? cap - n : 0);
    return n;
}

/* The broker plugin says the broker reloaded: as a SIGHUP to mqoff. */
static void ctl_reloaded(void *arg)
{
    struct proxy *px = arg;
    if (px->cfg->reload)
        mqo_reload_hup(px->cfg->reload, px->eng);
}

/* More descriptors for thousands of clients: two per client. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- takeover (net/takeover.h) ----
 *
 * The old process, once a new one knocked and the iteration's work is flushed, stops: it
 * writes what its queues can still write, then hands over the listener and every connection's
 * two sockets, with its records (mqo_proxy_snap) and the engine's snapshot. The new process
 * rebuilds the same connections around the same sockets; bytes clients sent meanwhile wait in
 * the kernel, so none is lost, duplicated or reordered, and no connection closes. */

#define PROXY_SNAP_VERSION 1
static const uint8_t PX_MAGIC[8] = {'M', 'Q', 'O', 'P', 'R', 'X', 'Y', 0};

static void save_side(struct mqo_wr *w, const struct side *sd, int *fds, size_t *nf,
                      struct mqo_buf *tmp)
{
    if (sd->fd >= 0) {
        mqo_wr_u32(w, (uint32_t)*nf);
        fds[(*nf)++] = sd->fd;
    } else {
        mqo_wr_u32(w, UINT32_MAX);
    }
    mqo_wr_u8(w, sd->rd_closed);
    mqo_wr_u8(w, sd->want_shut);
    mqo_wr_u8(w, sd->wr_shut);
    mqo_wr_u8(w, sd->paused);
    tmp->len = 0;
    if (mqo_outq_copy(&sd->q, tmp))
        w->err = -ENOMEM;
    mqo_wr_blob(w, tmp->data, tmp->len);
}

static void save_conn(struct mqo_wr *w, const struct pconn *pc, int *fds, size_t *nf,
                      struct mqo_buf *tmp)
{
    mqo_wr_u64(w, mqo_conn_id(pc->ec));
    for (int i = 0; i < 2; i++)
        save_side(w, &pc->s[i], fds, nf, tmp);
    mqo_wr_u8(w, pc->connecting);
    mqo_wr_u8(w, pc->broker_failed);
    mqo_wr_u8(w, pc->closing);
    mqo_wr_u8(w, pc->reset);
    mqo_wr_u8(w, pc->connect_version);
    mqo_wr_blob(w, pc->sniff ? pc->sniff->data : NULL, pc->sniff ? pc->sniff->len : 0);
    mqo_wr_u64(w, pc->fail_deadline);
}

/* The proxy's state into out, the descriptors into *fds (malloc'd). Returns 0 or -errno. */
static int proxy_save(struct proxy *px, struct mqo_buf *out, int **fdsp, size_t *nfdsp)
{
    size_t npc = 0, nfd = 1;
    for (struct pconn *pc = px->conns; pc; pc = pc->next) {
        npc++;
        nfd += (pc->s[0].fd >= 0) + (pc->s[1].fd >= 0);
    }
    int *fds = malloc(nfd * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    size_t nf = 0;
    fds[nf++] = px->lfd;
    struct mqo_wr w = {.b = out};
    struct mqo_buf tmp = {0};
    mqo_wr_bytes_raw(&w, PX_MAGIC, sizeof PX_MAGIC);
    mqo_wr_u32(&w, PROXY_SNAP_VERSION);
    mqo_wr_u32(&w, (uint32_t)nfd);
    size_t nst = sizeof px->st / sizeof(uint64_t);
    mqo_wr_u32(&w, (uint32_t)nst);
    for (size_t i = 0; i < nst; i++)
        mqo_wr_u64(&w, ((const uint64_t *)&px->st)[i]);
    mqo_wr_u32(&w, (uint32_t)npc);
    /* the ones with bytes for the broker first, in the order those arrived (flush_dirty) */
    for (struct pconn *pc = px->border; pc; pc = pc->border_next)
        save_conn(&w, pc, fds, &nf, &tmp);
    for (struct pconn *pc = px->conns; pc; pc = pc->next)
        if (!pc->in_border)
            save_conn(&w, pc, fds, &nf, &tmp);
    tmp.len = 0;
    int rc = mqo_engine_save(px->eng, &tmp);
    mqo_wr_blob(&w, tmp.data, tmp.len);
    /* the upstream's (intercept mode's channel): its descriptors after the connections' */
    const struct mqo_proxy_upstream *up = px->cfg->upstream;
    int *ufds = NULL;
    size_t nu = 0;
    tmp.len = 0;
    if (!rc && up)
        rc = up->save(up->arg, &tmp, &ufds, &nu);
    mqo_wr_u32(&w, (uint32_t)nu);
    mqo_wr_blob(&w, tmp.data, tmp.len);
    mqo_buf_free(&tmp);
    if (!rc && nu) {
        int *nv = realloc(fds, (nf + nu) * sizeof *nv);
        if (!nv) {
            rc = -ENOMEM;
        } else {
            fds = nv;
            memcpy(fds + nf, ufds, nu * sizeof *ufds);
            nf += nu;
            nfd += nu;
        }
    }
    free(ufds);
    if (!rc)
        rc = w.err;
    if (!rc && nf != nfd)
        rc = -EINVAL;
    if (rc) {
        free(fds);
        return rc;
    }
    *fdsp = fds;
    *nfdsp = nf;
    return 0;
}

int mqo_proxy_snap_parse(const uint8_t *p, size_t n, size_t nfds, struct mqo_proxy_snap *out)
{
    struct mqo_rd r = {.p = p, .n = n};
    memset(out, 0, sizeof *out);
    const uint8_t *m = mqo_rd_raw(&r, sizeof PX_MAGIC);
    if (!m || memcmp(m, PX_MAGIC, sizeof PX_MAGIC) != 0)
        return -EINVAL;
    uint32_t ver = mqo_rd_u32(&r);
    if (r.err)
        return -EINVAL;
    if (ver != PROXY_SNAP_VERSION)
        return -EPROTO;
    out->nfds = mqo_rd_u32(&r); /* the listener's and the connections' (the upstream's follow) */
    if (r.err || out->nfds > nfds || out->nfds < 1)
        return -EINVAL;
    uint32_t nst = mqo_rd_count(&r, 8);
    for (uint32_t i = 0; i < nst; i++) {
        uint64_t v = mqo_rd_u64(&r);
        if (i < sizeof out->st / sizeof(uint64_t))
            ((uint64_t *)&out->st)[i] = v;
    }
    uint32_t npc = mqo_rd_count(&r, 8 + 2 * 12 + 5 + 4 + 8);
    if (r.err)
        return -EINVAL;
    uint8_t *used = calloc(nfds, 1);
    out->v = calloc(npc ? npc : 1, sizeof *out->v);
    if (!used || !out->v) {
        free(used);
        free(out->v);
        out->v = NULL;
        return -ENOMEM;
    }
    used[0] = 1; /* the listener */
    size_t nused = 1;
    for (uint32_t i = 0; i < npc && !r.err; i++) {
        struct mqo_proxy_rec *x = &out->v[i];
        x->id = mqo_rd_u64(&r);
        for (int k = 0; k < 2; k++) {
            struct mqo_proxy_rec_side *sd = &x->s[k];
            sd->fd = mqo_rd_u32(&r);
            if (sd->fd != UINT32_MAX) {
                if (sd->fd >= out->nfds || used[sd->fd])
                    r.err = 1;
                else {
                    used[sd->fd] = 1;
                    nused++;
                }
            }
            sd->rd_closed = mqo_rd_u8(&r);
            sd->want_shut = mqo_rd_u8(&r);
            sd->wr_shut = mqo_rd_u8(&r);
            sd->paused = mqo_rd_u8(&r);
            sd->q = mqo_rd_blob(&r, SIZE_MAX, &sd->qlen);
        }
        x->connecting = mqo_rd_u8(&r);
        x->broker_failed = mqo_rd_u8(&r);
        x->closing = mqo_rd_u8(&r);
        x->reset = mqo_rd_u8(&r);
        x->connect_version = mqo_rd_u8(&r);
        x->sniff = mqo_rd_blob(&r, 65536 + 8 + 65536, &x->sniff_len);
        x->fail_deadline = mqo_rd_u64(&r);
        if (x->reset > 2 || x->s[CLIENT].fd == UINT32_MAX)
            r.err = 1;
    }
    out->n = npc;
    out->engine = mqo_rd_blob(&r, SIZE_MAX, &out->engine_len);
    out->up_fds = mqo_rd_u32(&r);
    out->up = mqo_rd_blob(&r, SIZE_MAX, &out->up_len);
    free(used);
    /* every descriptor below nfds is the listener or one connection's; the upstream's follow */
    if (r.err || r.off != r.n || nused != out->nfds || (size_t)out->nfds + out->up_fds != nfds) {
        free(out->v);
        out->v = NULL;
        return -EINVAL;
    }
    return 0;
}

/* The old process: a new one knocked. Returns 1 when it took over (exit now), else 0. */
static int proxy_handover(struct proxy *px)
{
    const struct mqo_proxy_upstream *up = px->cfg->upstream;
    int fd = mqo_tko_accept(px->tko_fd, up ? "intercept" : "proxy",
                            up && !up->save ? "this upstream cannot hand over"
                                            : px->cfg->takeover_refuse);
    if (fd < 0)
        return 0;
    /* quiesce: nothing is read from here on; what the sockets take now is not handed over */
    for (struct pconn *pc = px->conns; pc; pc = pc->next)
        for (int side = 0; side < 2; side++)
            if (can_flush(pc, side))
                flush_side(px, pc, side);
    while (px->dead) {
        struct pconn *pc = px->dead;
        px->dead = pc->dead_next;
        free_conn(px, pc);
    }
    struct mqo_buf st = {0};
    int *fds = NULL;
    size_t nfds = 0;
    int rc = proxy_save(px, &st, &fds, &nfds);
    int done = 0;
    if (rc) {
        mqo_warn("takeover: cannot write the state (%s); serving on", strerror(-rc));
        close(fd);
    } else {
        done = mqo_tko_handover(fd, fds, nfds, st.data, st.len);
    }
    free(fds);
    mqo_buf_free(&st);
    if (done) {
        px->handed = 1;
        if (up && up->handed)
            up->handed(up->arg);
    }
    return done;
}

/* The new process: builds the connections from what the old one handed over. Returns 0, or
 * -errno (told to the old process, which serves on). */
static int proxy_takeover(struct proxy *px, int tfd)
{
    int *fds = NULL;
    size_t nfds = 0;
    struct mqo_buf st = {0};
    struct mqo_proxy_snap sn = {0};
    const char *why = NULL;
    int rc = mqo_tko_receive(tfd, &fds, &nfds, &st);
    if (rc)
        why = "the state did not arrive whole";
    else if ((rc = mqo_proxy_snap_parse(st.data, st.len, nfds, &sn)) != 0)
        why = rc == -EPROTO ? "the proxy state's format is another version"
                            : "the proxy state does not parse";
    else if ((rc = mqo_engine_load(px->eng, sn.engine, sn.engine_len)) != 0)
        why = rc == -EPROTO ? "the engine state's format is another version"
                            : "the engine state does not load";
    else if (mqo_engine_conn_count(px->eng) != sn.n)
        why = "the engine's connections and the proxy's differ", rc = -EINVAL;
    else if (!px->cfg->upstream && sn.up_fds)
        why = "an upstream's state came to a process without one", rc = -EINVAL;
    else if (px->cfg->upstream) {
        rc = px->cfg->upstream->load(px->cfg->upstream->arg, sn.up, sn.up_len,
                                     fds + nfds - sn.up_fds, sn.up_fds);
        nfds -= sn.up_fds; /* the upstream's from here on, whatever it said */
        if (rc)
            why = "the upstream's state does not load";
    }
    int acc = 0;
    socklen_t al = sizeof acc;
    if (!why && (getsockopt(fds[0], SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc))
        why = "the first descriptor is not a listening socket", rc = -EINVAL;
    struct pconn **tail = &px->conns, *prev = NULL;
    for (size_t i = 0; !why && i < sn.n; i++) {
        const struct mqo_proxy_rec *x = &sn.v[i];
        struct mqo_conn *ec = mqo_engine_conn_find(px->eng, x->id);
        struct pconn *pc = calloc(1, sizeof *pc);
        if (!ec || mqo_conn_ud(ec) || !pc) {
            free(pc);
            why = pc ? "a connection's engine state is missing" : "out of memory";
            rc = pc ? -EINVAL : -ENOMEM;
            break;
        }
        pc->px = px;
        pc->ec = ec;
        mqo_conn_set_ud(ec, pc);
        for (int k = 0; k < 2; k++) {
            const struct mqo_proxy_rec_side *rs = &x->s[k];
            struct side *sd = &pc->s[k];
            sd->fd = rs->fd == UINT32_MAX ? -1 : fds[rs->fd];
            sd->rd_closed = !!rs->rd_closed;
            sd->want_shut = !!rs->want_shut;
            sd->wr_shut = !!rs->wr_shut;
            sd->paused = !!rs->paused;
            if (rs->qlen && mqo_outq_push_bytes(&sd->q, rs->q, rs->qlen))
                rc = -ENOMEM, why = "out of memory";
        }
        pc->connecting = !!x->connecting;
        pc->broker_failed = !!x->broker_failed;
        pc->closing = !!x->closing;
        pc->reset = x->reset;
        pc->connect_version = x->connect_version;
        if (x->sniff_len && (!(pc->sniff = calloc(1, sizeof *pc->sniff)) ||
                             mqo_buf_append(pc->sniff, x->sniff, x->sniff_len)))
            rc = -ENOMEM, why = "out of memory";
        pc->fail_deadline = x->fail_deadline;
        if (pc->broker_failed && pc->fail_deadline)
            px->fail_waiting++;
        pc->prev = prev;
        *tail = pc;
        tail = &pc->next;
        prev = pc;
    }
    if (!why)
        px->st = sn.st;
    free(sn.v);
    mqo_buf_free(&st);
    if (mqo_tko_finish(tfd, why) != 0) {
        /* the old process keeps everything: drop the copies (closing a descriptor here closes
         * no connection, the old process holds the same ones) */
        for (struct pconn *pc = px->conns, *nx; pc; pc = nx) {
            nx = pc->next;
            for (int k = 0; k < 2; k++)
                mqo_outq_free(&pc->s[k].q);
            sniff_free(pc);
            free(pc);
        }
        px->conns = NULL;
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        free(fds);
        return rc ? rc : -EPROTO;
    }
    px->lfd = fds[0];
    free(fds);
    return 0;
}

/* The new process, once the old one is gone: the sockets into the epoll set, the queued
 * bytes due for writing. */
static void proxy_adopt(struct proxy *px)
{
    for (struct pconn *pc = px->conns; pc; pc = pc->next) {
        for (int side = 0; side < 2; side++) {
            struct side *sd = &pc->s[side];
            if (sd->fd < 0)
                continue;
            struct epoll_event e = {.events = 0, .data.u64 = tag(pc, side)};
            epoll_ctl(px->ep, EPOLL_CTL_ADD, sd->fd, &e);
            sd->ev = 0;
            update_events(pc, side);
        }
        if (pc->s[BROKER].q.bytes)
            mark_broker(pc);
        else
            mark_dirty(pc);
    }
    struct sockaddr_storage a;
    socklen_t l = sizeof a;
    if (getsockname(px->lfd, (struct sockaddr *)&a, &l) == 0 &&
        (l != px->cfg->listen_len || memcmp(&a, &px->cfg->listen_addr, l) != 0) &&
        !px->cfg->on_listen)
        mqo_warn("takeover: serving on the listener handed over, not --listen's address (a "
                 "restart without --takeover moves it)");
    if (px->cfg->on_listen) {
        uint16_t port = a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                                : ((struct sockaddr_in *)&a)->sin_port;
        px->cfg->on_listen(px->cfg->on_listen_arg, ntohs(port));
    }
    size_t n = 0;
    for (struct pconn *pc = px->conns; pc; pc = pc->next)
        n++;
    mqo_info("takeover: serving %zu connections handed over (pid %d)", n, (int)getpid());
}

int mqo_proxy_run(const struct mqo_proxy_cfg *cfg, struct mqo_engine_stats *est,
                  struct mqo_proxy_stats *pst)
{
    if (cfg->stack_run)
        return cfg->stack_run(cfg, est, pst);
    return mqo_px_run(cfg, NULL, est, pst);
}

int mqo_px_run(const struct mqo_proxy_cfg *cfg, const struct mqo_px_stack *stk,
               struct mqo_engine_stats *est, struct mqo_proxy_stats *pst)
{
    struct proxy px = {.cfg = cfg, .lfd = -1, .ep = -1, .stk = stk, .tko_fd = -1};
    px.dirty_tail = &px.dirty;
    px.border_tail = &px.border;
    px.max_queue = cfg->max_queue ? cfg->max_queue : 4u << 20;
    if (cfg->io == MQO_PROXY_IO_URING) {
        int urc = io_uring_queue_init(1024, &px.ring, 0);
        if (urc < 0) {
            mqo_err("io_uring unavailable (%s): use --io writev", strerror(-urc));
            return urc;
        }
        px.ring_entries = 1024;
        px.usend = malloc(px.ring_entries * sizeof *px.usend);
        if (!px.usend) {
            io_uring_queue_exit(&px.ring);
            return -ENOMEM;
        }
        px.use_uring = 1;
    }
    px.now = mono_ns();
    raise_nofile();
    struct mqo_engine_cfg ec = cfg->engine;
    ec.ops = (struct mqo_engine_ops){.forward = op_forward,
                                     .consume = op_consume,
                                     .insert = op_insert,
                                     .room = op_room,
                                     .queued = op_queued,
                                     .close = op_close,
                                     .peer = op_peer};
    ec.ud = &px;
    px.eng = mqo_engine_new(&ec);
    if (!px.eng)
        return -errno;
    px.ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = 0, taken = 0;
    if (cfg->takeover && !cfg->takeover_refuse) {
        int tfd = -1;
        rc = mqo_tko_connect(cfg->takeover, cfg->upstream ? "intercept" : "proxy", &tfd);
        if (rc == 1)
            rc = proxy_takeover(&px, tfd);
        if (rc < 0) {
            close(px.ep);
            mqo_engine_free(px.eng);
            return rc;
        }
        taken = px.lfd >= 0;
    }
    if (!taken && cfg->upstream && cfg->upstream->start &&
        (rc = cfg->upstream->start(cfg->upstream->arg)) != 0) {
        close(px.ep);
        mqo_engine_free(px.eng);
        return rc;
    }
    if (!taken)
        rc = stk ? stk->start(stk->arg, &px) : open_listener(&px);
    if (rc) {
        close(px.ep);
        mqo_err("cannot listen: %s", strerror(-rc));
        mqo_engine_free(px.eng);
        return rc;
    }
    struct mqo_ctl_hooks hooks = {.counters = ctl_counters, .broker_reloaded = ctl_reloaded,
                                  .arg = &px};
    if (cfg->ctl && (rc = mqo_ctl_new(cfg->ctl, px.eng, &hooks, &px.ctl)) != 0) {
        close(px.lfd);
        mqo_engine_free(px.eng);
        return rc;
    }
    if (px.lfd >= 0) {
        struct epoll_event le = {.events = EPOLLIN, .data.u64 = 0};
        epoll_ctl(px.ep, EPOLL_CTL_ADD, px.lfd, &le);
    }
    if (stk && stk->fd >= 0) {
        struct epoll_event se = {.events = EPOLLIN, .data.u64 = TAG_STACK};
        epoll_ctl(px.ep, EPOLL_CTL_ADD, stk->fd, &se);
    }
    if (cfg->reload && mqo_reload_fd(cfg->reload) >= 0) {
        struct epoll_event we = {.events = EPOLLIN, .data.u64 = TAG_RELOAD};
        epoll_ctl(px.ep, EPOLL_CTL_ADD, mqo_reload_fd(cfg->reload), &we);
    }
    if (cfg->upstream && cfg->upstream->fd >= 0) {
        struct epoll_event ue = {.events = EPOLLIN, .data.u64 = TAG_UPSTREAM};
        epoll_ctl(px.ep, EPOLL_CTL_ADD, cfg->upstream->fd, &ue);
    }
    if (px.ctl) {
        struct epoll_event ce = {.events = EPOLLIN, .data.u64 = TAG_CTL};
        epoll_ctl(px.ep, EPOLL_CTL_ADD, mqo_ctl_fd(px.ctl), &ce);
    }
    if (taken)
        proxy_adopt(&px);
    if (cfg->takeover) {
        px.tko_fd = mqo_tko_listen(cfg->takeover);
        if (px.tko_fd < 0) {
            mqo_warn("takeover socket %s: %s: no process can take over from this one",
                     cfg->takeover, strerror(-px.tko_fd));
        } else {
            struct epoll_event te = {.events = EPOLLIN, .data.u64 = TAG_TAKEOVER};
            epoll_ctl(px.ep, EPOLL_CTL_ADD, px.tko_fd, &te);
        }
    }

    struct epoll_event evs[256];
    uint64_t last_timer = 0, last_event = 0, busy_ns = (uint64_t)cfg->busy_poll_us * 1000u;
    while (!*cfg->stop) {
        int busy = (busy_ns && px.now - last_event < busy_ns) || px.dirty || px.resumes ||
                   (stk && stk->fd < 0);
        int n = epoll_wait(px.ep, evs, 256, busy ? 0 : 50);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            mqo_err("epoll_wait: %s", strerror(errno));
            break;
        }
        px.now = mono_ns();
        if (n > 0)
            last_event = px.now;
        if (cfg->hup && *cfg->hup) { /* within one wait (50 ms) of the signal, or at once */
            *cfg->hup = 0;
            if (cfg->reload)
                mqo_reload_hup(cfg->reload, px.eng);
        }
        /* the broker plugin's reports first: what it wrote before the broker answered a
         * client is applied before anything that client's answer may have caused */
        for (int i = 0; px.ctl && i < n; i++)
            if (evs[i].data.u64 == TAG_CTL || (i == 0 && n == 256))
                mqo_ctl_run(px.ctl, px.now);
        if (stk)
            stk->poll(stk->arg); /* the stack's input, its callbacks */
        for (int i = 0; i < n; i++)
            handle_event(&px, &evs[i]);
        int slow = px.now - last_timer >= 50000000ull;
        timers(&px, slow);
        if (stk)
            stk->tick(stk->arg, px.now);
        if (slow)
            last_timer = px.now;
        /* flush everything this iteration queued: one write per socket, or one io_uring
         * submission for all of them */
        flush_dirty(&px);
        while (px.dead) {
            struct pconn *pc = px.dead;
            px.dead = pc->dead_next;
            free_conn(&px, pc);
        }
        if (stk)
            stk->flush(stk->arg); /* what this iteration sent, in bursts */
        if (cfg->upgrade && *cfg->upgrade) {
            *cfg->upgrade = 0;
            int src = px.tko_fd >= 0 ? mqo_tko_spawn() : -ENOTCONN;
            if (src)
                mqo_warn("SIGUSR2: no successor started: %s",
                         src == -ENOTCONN ? "no takeover socket (--takeover)" : strerror(-src));
        }
        if (px.tko_pending) {
            px.tko_pending = 0;
            if (proxy_handover(&px))
                break;
        }
    }
    if (est)
        *est = *mqo_engine_stats(px.eng);
    if (pst)
        *pst = px.st;
    if (px.handed) {
        /* the connections live on in the new process: only the descriptors go, and the
         * engine's state is not torn down (its closing would log deliveries as lost) */
        for (struct pconn *pc = px.conns, *nx; pc; pc = nx) {
            nx = pc->next;
            for (int i = 0; i < 2; i++) {
                if (pc->s[i].fd >= 0)
                    close(pc->s[i].fd);
                mqo_outq_free(&pc->s[i].q);
            }
            sniff_free(pc);
            free(pc);
        }
        px.conns = NULL;
    }
    while (px.conns)
        free_conn(&px, px.conns);
    if (stk)
        stk->flush(stk->arg);
    mqo_ctl_free(px.ctl);
    if (px.lfd >= 0)
        close(px.lfd);
    close(px.ep);
    if (px.tko_fd >= 0) {
        close(px.tko_fd);
        if (!px.handed) /* handed: the path is the new process's to take */
            unlink(cfg->takeover);
    }
    if (!px.handed)
        mqo_engine_free(px.eng);
    if (px.use_uring)
        io_uring_queue_exit(&px.ring);
    free(px.usend);
    return rc;
}
