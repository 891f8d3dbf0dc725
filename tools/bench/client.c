/* mqoff-bench client connections and the event loop.
 *
 * Every connection is non-blocking and registered in one epoll set. Publishers sit in a min-heap
 * keyed by the scheduled time of their next message; a timerfd (absolute CLOCK_MONOTONIC, timer
 * slack 1 ns) wakes the loop for the earliest one. A publisher sends every message whose time
 * has come, each stamped with its *scheduled* time, so a late wake-up, a slow socket or a stall
 * of the bench itself shows up as latency instead of silently stretching the schedule (open
 * loop, no coordinated omission). It stops queueing only when MQB_WB_HIGH bytes wait for the
 * socket or, at QoS 1, when no packet identifier / Receive Maximum slot is free; the messages it
 * owes then go out, still with their scheduled times, as soon as it can.
 */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "mqtt/mqtt.h"

static int g_timer_tag = MQB_EV_TIMER;

#define NS 1000000000ull

uint64_t mqb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void fatal(struct mqb *b, const char *fmt, const char *a, const char *c)
{
    if (b->fatal)
        return;
    b->fatal = 1;
    snprintf(b->fatal_msg, sizeof b->fatal_msg, fmt, a, c);
}

/* ---- publisher heap (by next_sched) ---- */

static void heap_swap(struct mqb *b, unsigned i, unsigned j)
{
    struct mqb_pub *t = b->heap[i];
    b->heap[i] = b->heap[j];
    b->heap[j] = t;
    b->heap[i]->heap_pos = (int)i;
    b->heap[j]->heap_pos = (int)j;
}

static void heap_up(struct mqb *b, unsigned i)
{
    while (i > 0) {
        unsigned parent = (i - 1) / 2;
        if (b->heap[parent]->next_sched <= b->heap[i]->next_sched)
            break;
        heap_swap(b, i, parent);
        i = parent;
    }
}

static void heap_down(struct mqb *b, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < b->heap_n && b->heap[l]->next_sched < b->heap[m]->next_sched)
            m = l;
        if (r < b->heap_n && b->heap[r]->next_sched < b->heap[m]->next_sched)
            m = r;
        if (m == i)
            break;
        heap_swap(b, i, m);
        i = m;
    }
}

static void heap_push(struct mqb *b, struct mqb_pub *p)
{
    if (p->heap_pos >= 0)
        return;
    b->heap[b->heap_n] = p;
    p->heap_pos = (int)b->heap_n++;
    heap_up(b, b->heap_n - 1);
}

static void heap_remove(struct mqb *b, struct mqb_pub *p)
{
    if (p->heap_pos < 0)
        return;
    unsigned i = (unsigned)p->heap_pos;
    p->heap_pos = -1;
    b->heap_n--;
    if (i == b->heap_n)
        return;
    b->heap[i] = b->heap[b->heap_n];
    b->heap[i]->heap_pos = (int)i;
    heap_up(b, i);
    heap_down(b, (unsigned)b->heap[i]->heap_pos);
}

/* ---- connection I/O ---- */

static void conn_epoll(struct mqb *b, struct mqb_conn *c, int want_out)
{
    if (c->state == MQB_CLOSED || c->out_armed == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = want_out;
}

static const char *role_name(const struct mqb_conn *c) { return c->role == MQB_PUB ? "publisher" : "subscriber"; }

static void conn_close(struct mqb *b, struct mqb_conn *c, const char *why)
{
    if (c->state == MQB_CLOSED)
        return;
    char who[64];
    snprintf(who, sizeof who, "%s %u", role_name(c), c->idx);
    if (!b->running) {
        fatal(b, "%s: %s", who, why);
    } else {
        b->disconnects++;
        if (b->disconnects <= 5 && !b->cfg.quiet)
            fprintf(stderr, "mqoff-bench: %s: %s\n", who, why);
    }
    if (c->state < MQB_READY && b->connecting)
        b->connecting--;
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = MQB_CLOSED;
    mqo_buf_free(&c->rb);
    mqo_buf_free(&c->wb);
    c->woff = 0;
    if (c->role == MQB_PUB) {
        struct mqb_pub *p = (struct mqb_pub *)c;
        heap_remove(b, p);
        p->blocked = 1;
    }
}

static size_t conn_pending(const struct mqb_conn *c) { return c->wb.len - c->woff; }

static void pub_unblock(struct mqb *b, struct mqb_pub *p);

/* Writes what the socket takes. */
static void conn_flush(struct mqb *b, struct mqb_conn *c)
{
    if (c->state == MQB_CLOSED || c->state == MQB_TCP)
        return;
    while (c->woff < c->wb.len) {
        ssize_t n = send(c->fd, c->wb.data + c->woff, c->wb.len - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(b, c, n < 0 ? strerror(errno) : "send returned 0");
        return;
    }
    if (c->woff == c->wb.len) {
        c->wb.len = c->woff = 0;
        conn_epoll(b, c, 0);
    } else {
        if (c->woff > (1u << 20) && c->woff > c->wb.len / 2) {
            mqo_buf_consume(&c->wb, c->woff);
            c->woff = 0;
        }
        conn_epoll(b, c, 1);
    }
    if (c->role == MQB_PUB && conn_pending(c) < MQB_WB_HIGH / 2)
        pub_unblock(b, (struct mqb_pub *)c);
}

/* Appends bytes to the output. Returns 0, or -1 (out of memory: the connection is closed). */
static int conn_queue(struct mqb *b, struct mqb_conn *c, const void *p, size_t n)
{
    if (mqo_buf_append(&c->wb, p, n)) {
        conn_close(b, c, "out of memory");
        return -1;
    }
    c->last_tx = mqb_now();
    return 0;
}

/* ---- packets the bench sends ---- */

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static int send_connect(struct mqb *b, struct mqb_conn *c)
{
    char id[96];
    int idl = snprintf(id, sizeof id, "%s-%s-%u", b->cfg.prefix, c->role == MQB_PUB ? "pub" : "sub", c->idx);
    uint8_t pk[160];
    size_t n = 2;
    static const uint8_t name[6] = {0, 4, 'M', 'Q', 'T', 'T'};
    memcpy(pk + n, name, 6);
    n += 6;
    pk[n++] = (uint8_t)b->cfg.mqtt;
    pk[n++] = MQO_CONNECT_CLEAN;
    put16(pk + n, b->cfg.keepalive);
    n += 2;
    if (b->cfg.mqtt == MQO_MQTT_V5)
        pk[n++] = 0; /* no properties: session expiry 0 */
    put16(pk + n, (unsigned)idl);
    n += 2;
    memcpy(pk + n, id, (size_t)idl);
    n += (size_t)idl;
    pk[0] = MQO_CONNECT << 4;
    pk[1] = (uint8_t)(n - 2); /* < 128 */
    return conn_queue(b, c, pk, n);
}

/* Sends s's next SUBSCRIBE: up to MQB_SUB_BATCH of its 1 + decoys filters (the real one first),
 * remaining length as a varint. Returns 0, or -1 (the connection is closed). */
static int send_subscribe(struct mqb *b, struct mqb_sub *s)
{
    static uint8_t body[MQB_SUB_BATCH * (2 + MQB_FILTER_MAX + 1) + 8];
    unsigned total = 1 + b->cfg.decoys;
    unsigned n = total - s->sub_sent < MQB_SUB_BATCH ? total - s->sub_sent : MQB_SUB_BATCH;
    size_t len = 2;
    s->sub_pid = (uint16_t)(s->sub_pid % 65535 + 1);
    put16(body, s->sub_pid);
    if (b->cfg.mqtt == MQO_MQTT_V5)
        body[len++] = 0; /* no properties */
    for (unsigned k = 0; k < n; k++) {
        char f[MQB_FILTER_MAX];
        int fl = mqb_sub_filter(&b->cfg, s->c.idx, s->sub_sent + k, f, sizeof f);
        put16(body + len, (unsigned)fl);
        memcpy(body + len + 2, f, (size_t)fl);
        len += 2 + (size_t)fl;
        body[len++] = (uint8_t)b->cfg.qos; /* options: the QoS, nothing else */
    }
    uint8_t hdr[5];
    hdr[0] = MQO_SUBSCRIBE << 4 | 2;
    unsigned hl = 1 + mqo_mqtt_varint_put(hdr + 1, (uint32_t)len);
    s->sub_batch = n;
    s->sub_sent += n;
    if (conn_queue(b, &s->c, hdr, hl))
        return -1;
    return conn_queue(b, &s->c, body, len);
}

/* Serializes p's PUBLISH once; each message copies it and patches stamp and identifier. */
static int pub_template(struct mqb *b, struct mqb_pub *p)
{
    uint8_t *payload = calloc(1, b->cfg.size);
    if (!payload)
        return -1;
    /* padding: deterministic bytes from the seed, the same in every run with that seed */
    uint64_t x = b->cfg.seed * 0x9E3779B97F4A7C15ull + p->c.idx + 1;
    for (unsigned i = MQO_STAMP_LEN; i < b->cfg.size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        payload[i] = (uint8_t)x;
    }
    struct mqo_pub_spec s = {
        .version = (uint8_t)b->cfg.mqtt,
        .qos = (uint8_t)b->cfg.qos,
        .pid = 1,
        .topic = {(const uint8_t *)p->topic_s, p->topic_len},
        .payload = payload,
        .payload_len = b->cfg.size,
    };
    size_t sz = mqo_mqtt_publish_size(&s);
    p->tmpl = sz ? malloc(sz) : NULL;
    uint32_t pid_off = 0;
    ssize_t n = p->tmpl ? mqo_mqtt_enc_publish(p->tmpl, sz, &s, &pid_off) : -1;
    free(payload);
    if (n <= 0)
        return -1;
    p->tmpl_len = (size_t)n;
    p->pid_off = pid_off;
    p->stamp_off = (uint32_t)(p->tmpl_len - b->cfg.size);
    return 0;
}

/* ---- publishing ---- */

static int pid_take(struct mqb_pub *p, uint16_t *out)
{
    if (p->inflight >= p->recv_max)
        return -1;
    for (unsigned tries = 0; tries < 65535; tries++) {
        uint16_t id = p->next_pid;
        p->next_pid = (uint16_t)(p->next_pid == 65535 ? 1 : p->next_pid + 1);
        if (!(p->pid_used[id >> 3] & (1u << (id & 7)))) {
            p->pid_used[id >> 3] |= (uint8_t)(1u << (id & 7));
            p->inflight++;
            *out = id;
            return 0;
        }
    }
    return -1;
}

/* Queues every message of p due at `now`. */
static void pub_send_due(struct mqb *b, struct mqb_pub *p, uint64_t now)
{
    int queued = 0;
    while (p->next_sched <= now && p->next_sched < p->send_end && p->c.state == MQB_READY) {
        if (conn_pending(&p->c) >= MQB_WB_HIGH) {
            p->blocked = 1;
            break;
        }
        uint16_t pid = 0;
        if (b->cfg.qos && pid_take(p, &pid)) {
            p->blocked = 1;
            break;
        }
        if (mqb_track_reserve(b, p, p->seq)) {
            fatal(b, "%s%s", "out of memory for message tracking", "");
            return;
        }
        if (mqo_buf_reserve(&p->c.wb, p->tmpl_len)) {
            conn_close(b, &p->c, "out of memory");
            return;
        }
        uint8_t *m = p->c.wb.data + p->c.wb.len;
        memcpy(m, p->tmpl, p->tmpl_len);
        struct mqo_stamp st = {b->run, p->c.idx, p->seq, p->next_sched};
        mqo_stamp_put(m + p->stamp_off, &st);
        if (b->cfg.qos)
            put16(m + p->pid_off, pid);
        p->c.wb.len += p->tmpl_len;
        mqb_track_sent(b, p, p->seq, p->next_sched, now);
        p->seq++;
        p->step_k++;
        p->next_sched = p->step_base + (uint64_t)((double)p->step_k * p->interval);
        queued = 1;
    }
    if (queued) {
        p->c.last_tx = now;
        conn_flush(b, &p->c);
    }
}

static void pub_unblock(struct mqb *b, struct mqb_pub *p)
{
    if (!p->blocked || p->c.state != MQB_READY)
        return;
    if (conn_pending(&p->c) >= MQB_WB_HIGH || (b->cfg.qos && p->inflight >= p->recv_max))
        return;
    p->blocked = 0;
    if (b->sending && p->next_sched < p->send_end)
        heap_push(b, p);
}

static void pubs_due(struct mqb *b, uint64_t now)
{
    while (b->heap_n && b->heap[0]->next_sched <= now && !b->fatal) {
        struct mqb_pub *p = b->heap[0];
        heap_remove(b, p);
        pub_send_due(b, p, now);
        if (!p->blocked && p->c.state == MQB_READY && p->next_sched < p->send_end)
            heap_push(b, p);
    }
}

/* ---- incoming packets ---- */

static void on_packet(struct mqb *b, struct mqb_conn *c, const struct mqo_pkt *pk, uint64_t now)
{
    switch (pk->type) {
    case MQO_CONNACK:
        if (c->state != MQB_CONNACK) {
            b->proto_errors++;
            return;
        }
        if (pk->reason != 0) {
            char rc[16];
            snprintf(rc, sizeof rc, "0x%02x", pk->reason);
            fatal(b, "CONNACK refused the connection (return code %s)%s", rc, "");
            return;
        }
        if (c->role == MQB_SUB) {
            c->state = MQB_SUBACK;
            if (send_subscribe(b, (struct mqb_sub *)c) == 0)
                conn_flush(b, c);
        } else {
            struct mqb_pub *p = (struct mqb_pub *)c;
            p->recv_max = 65535;
            if (b->cfg.mqtt == MQO_MQTT_V5 && MQO_PROP_HAS(&pk->props, MQO_PROP_RECEIVE_MAXIMUM))
                p->recv_max = pk->props.receive_maximum;
            c->state = MQB_READY;
            b->ready_pubs++;
            b->connecting--;
        }
        return;
    case MQO_SUBACK: {
        struct mqb_sub *s = (struct mqb_sub *)c;
        if (c->state != MQB_SUBACK || pk->pid != s->sub_pid || pk->u.suback.count != s->sub_batch) {
            b->proto_errors++;
            return;
        }
        for (unsigned k = 0; k < s->sub_batch; k++) {
            if (pk->u.suback.codes[k] < 0x80)
                continue;
            char f[MQB_FILTER_MAX], why[160];
            mqb_sub_filter(&b->cfg, c->idx, s->sub_sent - s->sub_batch + k, f, sizeof f);
            snprintf(why, sizeof why, "subscriber %u: SUBACK refused the subscription to %s", c->idx, f);
            char rc[16];
            snprintf(rc, sizeof rc, "0x%02x", pk->u.suback.codes[k]);
            fatal(b, "%s (reason %s)", why, rc);
            return;
        }
        s->sub_batch = 0;
        if (s->sub_sent < 1 + b->cfg.decoys) { /* more filters: the next SUBSCRIBE */
            if (send_subscribe(b, s) == 0)
                conn_flush(b, c);
            return;
        }
        c->state = MQB_READY;
        b->ready_subs++;
        b->connecting--;
        return;
    }
    case MQO_PUBLISH:
        if (c->role != MQB_SUB) {
            b->unexpected++;
            return;
        }
        if (pk->u.publish.qos == 2) {
            b->proto_errors++; /* subscribed at QoS <= 1 */
            return;
        }
        mqb_track_delivery(b, (struct mqb_sub *)c, pk->u.publish.topic.p, pk->u.publish.topic.len,
                           pk->u.publish.payload, pk->u.publish.payload_len, now);
        if (pk->u.publish.qos == 1) { /* last: a failure closes c and frees the bytes pk points into */
            uint8_t ack[5];
            size_t n = mqo_mqtt_enc_ack(ack, MQO_PUBACK, pk->pid, (uint8_t)b->cfg.mqtt, 0);
            conn_queue(b, c, ack, n);
        }
        return;
    case MQO_PUBACK: {
        if (c->role != MQB_PUB || !b->cfg.qos) {
            b->bad_pubacks++;
            return;
        }
        struct mqb_pub *p = (struct mqb_pub *)c;
        uint16_t id = pk->pid;
        if (!(p->pid_used[id >> 3] & (1u << (id & 7)))) {
            b->bad_pubacks++;
            return;
        }
        p->pid_used[id >> 3] &= (uint8_t)~(1u << (id & 7));
        p->inflight--;
        if (pk->reason >= 0x80)
            b->bad_pubacks++;
        else
            b->pubacks++;
        pub_unblock(b, p);
        return;
    }
    case MQO_PINGRESP:
        return;
    case MQO_DISCONNECT: {
        char rc[16];
        snprintf(rc, sizeof rc, "0x%02x", pk->reason);
        char why[64];
        snprintf(why, sizeof why, "DISCONNECT from the server (reason %s)", rc);
        conn_close(b, c, why);
        return;
    }
    default:
        b->proto_errors++;
        return;
    }
}

/* Parses every complete packet in c->rb. */
static void conn_process(struct mqb *b, struct mqb_conn *c, uint64_t now)
{
    size_t off = 0;
    while (off < c->rb.len && c->state != MQB_CLOSED && !b->fatal) {
        struct mqo_frame f;
        ssize_t r = mqo_mqtt_frame(c->rb.data + off, c->rb.len - off, MQB_MAX_PACKET, &f);
        if (r == 0)
            break;
        struct mqo_pkt pk;
        if (r < 0 || mqo_mqtt_decode(c->rb.data + off, (size_t)r, (uint8_t)b->cfg.mqtt, MQO_S2C, &pk) < 0) {
            b->proto_errors++;
            conn_close(b, c, "malformed packet from the server");
            return;
        }
        on_packet(b, c, &pk, now);
        off += (size_t)r;
    }
    if (c->state == MQB_CLOSED)
        return;
    mqo_buf_consume(&c->rb, off);
    if (conn_pending(c))
        conn_flush(b, c);
}

static void conn_read(struct mqb *b, struct mqb_conn *c)
{
    for (int i = 0; i < 8 && c->state != MQB_CLOSED; i++) {
        if (mqo_buf_reserve(&c->rb, 65536)) {
            conn_close(b, c, "out of memory");
            return;
        }
        size_t room = mqo_buf_room(&c->rb);
        ssize_t n = read(c->fd, c->rb.data + c->rb.len, room);
        if (n > 0) {
            uint64_t now = mqb_now(); /* receive time of these bytes */
            c->rb.len += (size_t)n;
            conn_process(b, c, now);
            if ((size_t)n < room)
                return;
        } else if (n == 0) {
            conn_close(b, c, "connection closed by the server");
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            conn_close(b, c, strerror(errno));
            return;
        }
    }
}

static void conn_event(struct mqb *b, struct mqb_conn *c, uint32_t ev)
{
    if (c->state == MQB_TCP) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) || err) {
            char a[128];
            snprintf(a, sizeof a, "%s %u: connect", role_name(c), c->idx);
            fatal(b, "%s: %s", a, strerror(err ? err : errno));
            return;
        }
        c->state = MQB_CONNACK;
        conn_flush(b, c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(b, c);
    if ((ev & EPOLLOUT) && c->state != MQB_CLOSED)
        conn_flush(b, c);
}

static int conn_open(struct mqb *b, struct mqb_conn *c)
{
    const struct mqb_cfg *cfg = &b->cfg;
    const struct sockaddr_storage *a = c->role == MQB_SUB ? &cfg->sub_addr : &cfg->pub_addr;
    socklen_t alen = c->role == MQB_SUB ? cfg->sub_addr_len : cfg->pub_addr_len;
    int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fatal(b, "socket: %s%s", strerror(errno), errno == EMFILE ? " (raise ulimit -n)" : "");
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg->bind) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        /* the port is picked at connect time, per destination: more than 28k sockets fit */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        if (bind(fd, (const struct sockaddr *)&cfg->bind_addr, cfg->bind_addr_len)) {
            fatal(b, "bind %s: %s", cfg->bind, strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (const struct sockaddr *)a, alen) && errno != EINPROGRESS) {
        fatal(b, "connect: %s%s", strerror(errno),
              errno == EADDRNOTAVAIL ? " (out of local ports: use fewer connections or --bind)" : "");
        close(fd);
        return -1;
    }
    c->kind = MQB_EV_CONN;
    c->fd = fd;
    c->state = MQB_TCP;
    c->out_armed = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        fatal(b, "epoll_ctl: %s%s", strerror(errno), "");
        close(fd);
        c->state = MQB_CLOSED;
        return -1;
    }
    b->connecting++;
    return send_connect(b, c);
}

/* ---- the loop ---- */

int mqb_loop_init(struct mqb *b)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct timespec rt, mt;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    b->rt_off = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) * 1000000000 + (rt.tv_nsec - mt.tv_nsec);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (b->epfd < 0 || b->tfd < 0) {
        fprintf(stderr, "mqoff-bench: epoll/timerfd: %s\n", strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g_timer_tag};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->tfd, &ev)) {
        fprintf(stderr, "mqoff-bench: epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void housekeeping(struct mqb *b, uint64_t now)
{
    b->last_housekeeping = now;
    if (!b->cfg.keepalive)
        return;
    uint64_t half = (uint64_t)b->cfg.keepalive * NS / 2;
    uint8_t ping[2];
    mqo_mqtt_enc_ping(ping, MQO_PINGREQ);
    for (unsigned i = 0; i < b->cfg.subs + b->cfg.pubs; i++) {
        struct mqb_conn *c = i < b->cfg.subs ? &b->subs[i].c : &b->pubs[i - b->cfg.subs].c;
        if (c->state == MQB_READY && now - c->last_tx >= half && conn_queue(b, c, ping, 2) == 0)
            conn_flush(b, c);
    }
}

/* Waits for events until `wake` at the latest and handles them. */
static void loop_once(struct mqb *b, uint64_t wake)
{
    uint64_t now = mqb_now();
    int timeout = 0;
    if (wake > now) {
        timeout = -1;
        if (wake != b->timer_armed) {
            struct itimerspec its = {.it_value = {(time_t)(wake / NS), (long)(wake % NS)}};
            timerfd_settime(b->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            b->timer_armed = wake;
        }
    }
    struct epoll_event ev[256];
    int n = epoll_wait(b->epfd, ev, 256, timeout);
    for (int i = 0; i < n && !b->fatal; i++) {
        int kind = *(int *)ev[i].data.ptr;
        if (kind == MQB_EV_TIMER) {
            uint64_t exp;
            if (read(b->tfd, &exp, sizeof exp) == (ssize_t)sizeof exp)
                b->timer_armed = 0;
        } else if (kind == MQB_EV_TAP) {
            mqb_tap_poll(b);
        } else {
            conn_event(b, (struct mqb_conn *)ev[i].data.ptr, ev[i].events);
        }
    }
}

/* Opens connections of one role, max_connecting at a time, until all are ready. */
static int connect_role(struct mqb *b, enum mqb_role role, uint64_t deadline)
{
    unsigned total = role == MQB_SUB ? b->cfg.subs : b->cfg.pubs;
    unsigned *ready = role == MQB_SUB ? &b->ready_subs : &b->ready_pubs;
    b->next_connect = 0;
    while (*ready < total) {
        if (b->fatal)
            return -1;
        if (*b->stop) {
            fatal(b, "%s%s", "interrupted", "");
            return -1;
        }
        while (b->next_connect < total && b->connecting < b->cfg.max_connecting) {
            unsigned i = b->next_connect++;
            struct mqb_conn *c = role == MQB_SUB ? &b->subs[i].c : &b->pubs[i].c;
            if (conn_open(b, c))
                return -1;
            conn_flush(b, c);
        }
        uint64_t now = mqb_now();
        if (now >= deadline) {
            char n[64];
            snprintf(n, sizeof n, "%u of %u %ss", *ready, total, role == MQB_SUB ? "subscriber" : "publisher");
            fatal(b, "connect timeout: %s ready%s", n,
                  role == MQB_SUB ? " (CONNACK + SUBACK)" : " (CONNACK)");
            return -1;
        }
        loop_once(b, deadline < now + NS / 10 ? deadline : now + NS / 10);
    }
    return 0;
}

int mqb_connect_all(struct mqb *b)
{
    const struct mqb_cfg *cfg = &b->cfg;
    b->heap = calloc(cfg->pubs ? cfg->pubs : 1, sizeof *b->heap);
    if (!b->heap) {
        fatal(b, "%s%s", "out of memory", "");
        return -1;
    }
    for (unsigned i = 0; i < cfg->subs; i++) {
        b->subs[i].c.role = MQB_SUB;
        b->subs[i].c.idx = i;
        b->subs[i].c.fd = -1;
    }
    for (unsigned j = 0; j < cfg->pubs; j++) {
        struct mqb_pub *p = &b->pubs[j];
        p->c.role = MQB_PUB;
        p->c.idx = j;
        p->c.fd = -1;
        p->heap_pos = -1;
        p->topic = j % cfg->topics;
        p->expect = mqb_expect(cfg, p->topic);
        p->topic_len = (uint16_t)snprintf(p->topic_s, sizeof p->topic_s, "%s/t%u", cfg->prefix, p->topic);
        p->next_pid = 1;
        p->recv_max = 65535;
        if (cfg->qos && !(p->pid_used = calloc(8192, 1))) {
            fatal(b, "%s%s", "out of memory", "");
            return -1;
        }
        if (pub_template(b, p)) {
            fatal(b, "%s%s", "cannot encode the PUBLISH template", "");
            return -1;
        }
    }
    uint64_t deadline = mqb_now() + (uint64_t)(cfg->connect_timeout * 1e9);
    if (connect_role(b, MQB_SUB, deadline))
        return -1;
    if (connect_role(b, MQB_PUB, deadline))
        return -1;
    b->running = 1;
    return 0;
}

void mqb_schedule(struct mqb *b, uint64_t start, uint64_t end, double rate)
{
    double interval = 1e9 / rate;
    for (unsigned j = 0; j < b->cfg.pubs; j++) {
        struct mqb_pub *p = &b->pubs[j];
        heap_remove(b, p);
        p->interval = interval;
        /* publishers spread evenly over one interval, so the offered load is smooth */
        p->step_base = start + (uint64_t)(interval * j / b->cfg.pubs);
        p->step_k = 0;
        p->next_sched = p->step_base;
        p->send_end = end;
        if (p->c.state == MQB_READY) {
            p->blocked = 0;
            heap_push(b, p);
        }
    }
    b->sending = 1;
}

static int drained(const struct mqb *b)
{
    if (b->outstanding || b->heap_n)
        return 0;
    for (int k = 0; k < MQB_TAPS; k++)
        if (b->wire[k].tap && b->wire[k].outstanding)
            return 0;
    if (b->cfg.qos && b->pubacks + b->bad_pubacks < b->qos1_sent)
        return 0;
    for (unsigned j = 0; j < b->cfg.pubs; j++) {
        const struct mqb_pub *p = &b->pubs[j];
        if (p->c.state == MQB_READY && (p->next_sched < p->send_end || conn_pending(&p->c)))
            return 0;
    }
    return 1;
}

int mqb_run_until(struct mqb *b, uint64_t until, int drain)
{
    for (;;) {
        if (b->fatal || *b->stop)
            return -1;
        uint64_t now = mqb_now();
        if (b->sending)
            pubs_due(b, now);
        if (now >= until || (drain && drained(b)))
            return 0;
        if (now - b->last_housekeeping >= NS)
            housekeeping(b, now);
        uint64_t wake = until;
        if (b->heap_n && b->heap[0]->next_sched < wake)
            wake = b->heap[0]->next_sched;
        if (b->last_housekeeping + NS < wake)
            wake = b->last_housekeeping + NS;
        if (drain && wake > now + NS / 100)
            wake = now + NS / 100; /* re-check the drain condition now and then */
        loop_once(b, wake);
    }
}

void mqb_count_unsent(struct mqb *b, uint64_t cut)
{
    for (unsigned j = 0; j < b->cfg.pubs; j++) {
        struct mqb_pub *p = &b->pubs[j];
        heap_remove(b, p);
        if (cut && p->send_end > cut)
            p->send_end = cut;
        if (p->next_sched < p->send_end && p->interval > 0) {
            double span = (double)(p->send_end - p->step_base) / p->interval;
            uint64_t total = (uint64_t)span;
            if ((double)total < span)
                total++;
            if (total > p->step_k) {
                unsigned w = mqb_track_window(b, p, p->next_sched);
                b->win[w].unsent += total - p->step_k;
            }
        }
        p->send_end = p->next_sched; /* nothing more from this schedule */
    }
    b->sending = 0;
}

void mqb_disconnect_all(struct mqb *b)
{
    uint8_t d[3];
    size_t n = mqo_mqtt_enc_disconnect(d, (uint8_t)b->cfg.mqtt, 0);
    for (unsigned i = 0; i < b->cfg.subs + b->cfg.pubs; i++) {
        struct mqb_conn *c = i < b->cfg.subs ? &b->subs[i].c : &b->pubs[i - b->cfg.subs].c;
        if (c->state == MQB_CLOSED || c->fd < 0) {
            mqo_buf_free(&c->rb);
            mqo_buf_free(&c->wb);
            continue;
        }
        /* best effort: a DISCONNECT when nothing else waits (the broker then drops no will) */
        if (c->state == MQB_READY && conn_pending(c) == 0 &&
            send(c->fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            (void)0;
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        c->state = MQB_CLOSED;
        mqo_buf_free(&c->rb);
        mqo_buf_free(&c->wb);
    }
}
