/* The MQTT stream editor: connection lifecycle, framing of both streams, the subscription
 * table, packet identifiers, keep-alive. The PUBLISH decision and fan-out are in publish.c. */
#include "engine/engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/slice.h"

/* ---- small helpers ---- */

void mqo_out_copy(const struct mqo_out *o, uint8_t *dst)
{
    memcpy(dst, o->msg->data, o->msg->len);
    dst[0] = o->b0;
    if (o->pid_off) {
        dst[o->pid_off] = (uint8_t)(o->pid >> 8);
        dst[o->pid_off + 1] = (uint8_t)o->pid;
    }
}

int mqo_out_iov(const struct mqo_out *o, uint8_t scratch[3], struct iovec iov[4])
{
    const uint8_t *d = o->msg->data;
    size_t len = o->msg->len;
    int n = 0;
    scratch[0] = o->b0;
    iov[n++] = (struct iovec){.iov_base = scratch, .iov_len = 1};
    if (!o->pid_off) {
        if (len > 1)
            iov[n++] = (struct iovec){.iov_base = (void *)(d + 1), .iov_len = len - 1};
        return n;
    }
    scratch[1] = (uint8_t)(o->pid >> 8);
    scratch[2] = (uint8_t)o->pid;
    if (o->pid_off > 1)
        iov[n++] = (struct iovec){.iov_base = (void *)(d + 1), .iov_len = o->pid_off - 1};
    iov[n++] = (struct iovec){.iov_base = scratch + 1, .iov_len = 2};
    if (len > o->pid_off + 2u)
        iov[n++] = (struct iovec){.iov_base = (void *)(d + o->pid_off + 2),
                                  .iov_len = len - o->pid_off - 2};
    return n;
}

static const char *const pt_names[MQO_PT__COUNT] = {
    [MQO_PT_NONE] = "none",
    [MQO_PT_NOT_LIVE] = "not_live",
    [MQO_PT_NO_ACL] = "no_acl",
    [MQO_PT_BLIND] = "unknown_session",
    [MQO_PT_QOS2] = "qos2",
    [MQO_PT_RETAIN] = "retain",
    [MQO_PT_DUP] = "dup",
    [MQO_PT_DOLLAR] = "dollar_topic",
    [MQO_PT_ALIAS] = "topic_alias",
    [MQO_PT_PAYLOAD_FORMAT] = "payload_format",
    [MQO_PT_BROKER_ONLY] = "broker_only",
    [MQO_PT_WRITE_DENIED] = "write_denied",
    [MQO_PT_ACL_UNKNOWN] = "acl_unknown",
    [MQO_PT_ORDER] = "ordering",
    [MQO_PT_SHARED] = "shared_sub",
    [MQO_PT_HELD] = "held_session",
    [MQO_PT_PENDING_SUB] = "pending_subscribe",
    [MQO_PT_OVERLAP] = "overlap",
    [MQO_PT_SUB_NOT_LIVE] = "subscriber_not_live",
    [MQO_PT_PERSISTENT] = "persistent_qos1",
    [MQO_PT_INFLIGHT] = "inflight",
    [MQO_PT_SIZE] = "packet_size",
    [MQO_PT_ROOM] = "queue_full",
    [MQO_PT_NOMEM] = "nomem",
    [MQO_PT_UNSEEN] = "unseen_clients",
    [MQO_PT_NOT_EXCLUSIVE] = "not_exclusive",
    [MQO_PT_ACL_CHANGED] = "acl_changed",
    [MQO_PT_ACL_BROKEN] = "acl_broken",
};

const char *mqo_pt_reason_name(enum mqo_pt_reason r)
{
    return (unsigned)r < MQO_PT__COUNT && pt_names[r] ? pt_names[r] : "?";
}

void *mqo_conn_ud(const struct mqo_conn *c) { return c->ud; }
uint64_t mqo_conn_id(const struct mqo_conn *c) { return c->id; }
enum mqo_pt_reason mqo_conn_last_reason(const struct mqo_conn *c) { return c->last_reason; }
const struct mqo_engine_stats *mqo_engine_stats(const struct mqo_engine *e) { return &e->st; }

void mqo_engine_set_unseen_clients(struct mqo_engine *e, uint64_t n)
{
    if (n && !e->st.unseen_clients)
        mqo_warn("%llu client connection(s) to the broker opened before mqoff saw them: their "
                 "subscriptions are unknown, so every PUBLISH goes to the broker until they "
                 "close", (unsigned long long)n);
    else if (!n && e->st.unseen_clients)
        mqo_info("no unseen client connections left: offload resumes");
    e->st.unseen_clients = n;
}

static uint8_t *memdup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* ---- edits ---- */

void eng_forward(struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n)
{
    struct mqo_engine *e = c->eng;
    if (s == MQO_C2S) {
        c->last_to_broker = e->now;
        c->unseen_activity = 0;
    }
    e->cfg.ops.forward(e->cfg.ud, c, s, p, n);
}

/* Forwards a packet with `plen` bytes at `off` replaced by `patch` (same length). */
void eng_forward_patched(struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n,
                         size_t off, const uint8_t *patch, size_t plen)
{
    if (off > 0)
        eng_forward(c, s, p, off);
    eng_forward(c, s, patch, plen);
    if (off + plen < n)
        eng_forward(c, s, p + off + plen, n - off - plen);
}

void eng_consume(struct mqo_conn *c, enum mqo_dir s, size_t n)
{
    struct mqo_engine *e = c->eng;
    if (s == MQO_C2S)
        c->unseen_activity = 1;
    e->cfg.ops.consume(e->cfg.ud, c, s, n);
}

void eng_insert(struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o)
{
    struct mqo_engine *e = c->eng;
    if (s == MQO_C2S)
        c->last_to_broker = e->now;
    e->cfg.ops.insert(e->cfg.ud, c, s, o);
}

/* Inserts a small packet the engine originates. Returns 0 or -ENOMEM. */
int eng_insert_bytes(struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n)
{
    struct mqo_msg *m = mqo_msg_dup(p, n);
    if (!m)
        return -ENOMEM;
    struct mqo_out o = {.msg = m, .b0 = p[0]};
    eng_insert(c, s, &o);
    mqo_msg_unref(m);
    return 0;
}

void eng_order_barrier(struct mqo_conn *c)
{
    if (c->ping_n >= 64)
        return; /* still due: the next PUBLISH tries again */
    uint8_t b[2];
    mqo_mqtt_enc_ping(b, MQO_PINGREQ);
    if (eng_insert_bytes(c, MQO_C2S, b, 2) != 0)
        return;
    c->ping_fifo |= 1ull << c->ping_n;
    c->ping_barrier |= 1ull << c->ping_n;
    c->ping_n++;
    c->order_pending++;
    c->barrier_due = 0;
    c->eng->st.pings_synth++;
}

/* Asks the mode to close c (protocol error on either stream). */
static void fail_conn(struct mqo_conn *c, enum mqo_dir s, int rc)
{
    struct mqo_engine *e = c->eng;
    if (c->dead)
        return;
    c->dead = 1;
    c->live = 0;
    e->st.protocol_errors++;
    mqo_warn("conn %llu: %s stream error (reason 0x%02x): closing the connection",
             (unsigned long long)c->id, s == MQO_C2S ? "client" : "broker", -rc & 0xff);
    if (s == MQO_C2S && c->version == MQO_MQTT_V5 && c->connect_seen) {
        uint8_t d[3];
        size_t n = mqo_mqtt_enc_disconnect(d, MQO_MQTT_V5, (uint8_t)(-rc));
        eng_insert_bytes(c, MQO_S2C, d, n);
    }
    e->cfg.ops.close(e->cfg.ud, c, rc);
}

/* ---- sessions ---- */

static uint64_t cid_hash(const uint8_t *cid, size_t n) { return mqo_hash64(cid, n, 0x5e55); }

static struct session *session_find(struct mqo_engine *e, const uint8_t *cid, size_t n)
{
    if (!e->n_sbuckets)
        return NULL;
    struct session *s = e->sbuckets[cid_hash(cid, n) & (e->n_sbuckets - 1)];
    for (; s; s = s->hnext)
        if (s->cid_len == n && memcmp(s->cid, cid, n) == 0)
            return s;
    return NULL;
}

static int session_register(struct mqo_engine *e, struct session *s)
{
    if (e->n_sessions + 1 > e->n_sbuckets) {
        size_t nb = e->n_sbuckets ? e->n_sbuckets * 2 : 64;
        struct session **b = calloc(nb, sizeof *b);
        if (!b)
            return -ENOMEM;
        for (size_t i = 0; i < e->n_sbuckets; i++)
            for (struct session *x = e->sbuckets[i], *nx; x; x = nx) {
                nx = x->hnext;
                size_t h = cid_hash(x->cid, x->cid_len) & (nb - 1);
                x->hnext = b[h];
                b[h] = x;
            }
        free(e->sbuckets);
        e->sbuckets = b;
        e->n_sbuckets = nb;
    }
    size_t h = cid_hash(s->cid, s->cid_len) & (e->n_sbuckets - 1);
    s->hnext = e->sbuckets[h];
    e->sbuckets[h] = s;
    s->registered = 1;
    e->n_sessions++;
    return 0;
}

static void session_unregister(struct mqo_engine *e, struct session *s)
{
    if (!s->registered)
        return;
    struct session **pp = &e->sbuckets[cid_hash(s->cid, s->cid_len) & (e->n_sbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    s->registered = 0;
    e->n_sessions--;
}

static struct session *session_new(const uint8_t *cid, size_t n)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cid = memdup(cid, n);
    if (!s->cid) {
        free(s);
        return NULL;
    }
    s->cid_len = (uint16_t)n;
    s->known = 1;
    s->expire_ns = UINT64_MAX;
    return s;
}

static ssize_t session_sub_index(const struct session *s, const uint8_t *f, size_t len)
{
    for (size_t i = 0; i < s->n_subs; i++)
        if (s->subs[i].len == len && memcmp(s->subs[i].f, f, len) == 0)
            return (ssize_t)i;
    return -1;
}

/* Records that the session holds filter f in the trie. Returns 0 or -ENOMEM. */
static int session_sub_add(struct session *s, const uint8_t *f, size_t len)
{
    if (session_sub_index(s, f, len) >= 0)
        return 0;
    if (s->n_subs == s->cap_subs) {
        size_t cap = s->cap_subs ? s->cap_subs * 2 : 4;
        struct sfilter *v = realloc(s->subs, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->subs = v;
        s->cap_subs = cap;
    }
    uint8_t *d = memdup(f, len);
    if (!d)
        return -ENOMEM;
    s->subs[s->n_subs++] = (struct sfilter){.f = d, .len = (uint16_t)len};
    return 0;
}

static void session_sub_del(struct mqo_engine *e, struct session *s, const uint8_t *f,
                            size_t len)
{
    ssize_t i = session_sub_index(s, f, len);
    if (mqo_trie_del(e->trie, f, len, s) == 0)
        e->st.subscriptions--;
    if (i < 0)
        return;
    free(s->subs[i].f);
    s->subs[i] = s->subs[--s->n_subs];
}

/* Removes every subscription of the session from the trie. */
static void session_clear_subs(struct mqo_engine *e, struct session *s)
{
    for (size_t i = 0; i < s->n_subs; i++) {
        if (mqo_trie_del(e->trie, s->subs[i].f, s->subs[i].len, s) == 0)
            e->st.subscriptions--;
        free(s->subs[i].f);
    }
    s->n_subs = 0;
}

/* Marks every subscription of the session as held by the broker. */
static void session_hold(struct mqo_engine *e, struct session *s)
{
    s->held = 1;
    for (size_t i = 0; i < s->n_subs; i++) {
        struct mqo_sub_opts o;
        if (mqo_trie_get(e->trie, s->subs[i].f, s->subs[i].len, s, &o)) {
            o.flags = (o.flags & ~SUBF_PENDING) | MQO_SUB_HELD;
            mqo_trie_add(e->trie, s->subs[i].f, s->subs[i].len, s, &o);
        }
    }
}

static void session_set_known(struct mqo_engine *e, struct session *s, int known)
{
    if (s->known == known)
        return;
    s->known = (uint8_t)known;
    if (known)
        e->st.blind_sessions--;
    else
        e->st.blind_sessions++;
}

static void session_free(struct mqo_engine *e, struct session *s)
{
    session_clear_subs(e, s);
    session_set_known(e, s, 1);
    session_unregister(e, s);
    free(s->subs);
    free(s->cid);
    free(s);
}

/* ---- connections ---- */

struct mqo_conn *mqo_engine_conn_open(struct mqo_engine *e, void *ud, uint64_t now_ns)
{
    struct mqo_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->eng = e;
    c->ud = ud;
    c->id = ++e->next_id;
    c->broker_max_qos = 2;
    c->pid_cursor = 1;
    c->last_to_broker = now_ns;
    if (mqo_map_put(&e->conn_ids, c->id, (uint64_t)(uintptr_t)c) != 0) {
        free(c);
        return NULL;
    }
    c->next = e->conns;
    if (e->conns)
        e->conns->prev = c;
    e->conns = c;
    e->st.conns_open++;
    return c;
}

struct mqo_conn *eng_conn_by_id(struct mqo_engine *e, uint64_t id)
{
    uint64_t v;
    return mqo_map_get(&e->conn_ids, id, &v) ? (struct mqo_conn *)(uintptr_t)v : NULL;
}

static void free_alias_entry(void *arg, uint64_t k, uint64_t v)
{
    struct sfilter *f = (struct sfilter *)(uintptr_t)v;
    free(f->f);
    free(f);
}

static void count_engine_pid(void *arg, uint64_t k, uint64_t v)
{
    if (v == PID_ENGINE)
        (*(uint64_t *)arg)++;
}

static void pending_free(struct pending *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        free(p->e[i].filt.f);
    free(p);
}

void mqo_engine_conn_close(struct mqo_engine *e, struct mqo_conn *c, uint64_t now_ns)
{
    if (!c)
        return;
    order_conn_closed(e, c);

    uint64_t lost = 0;
    mqo_map_each(&c->cpid, count_engine_pid, &lost);
    if (lost) {
        e->st.inflight_lost += lost;
        mqo_info("conn %llu closed with %llu offload QoS 1 deliveries unacknowledged; its "
                 "session ends with the connection, so the broker would drop them too",
                 (unsigned long long)c->id, (unsigned long long)lost);
    }

    struct session *s = c->sess;
    /* SUBSCRIBE/UNSUBSCRIBE the broker may have applied without our seeing the ack */
    for (struct pending *p = c->pend, *np; p; p = np) {
        np = p->next;
        if (s && s->conn == c && s->persistent && !p->unsub) {
            for (uint32_t i = 0; i < p->n; i++) {
                struct mqo_sub_opts o = p->e[i].opts;
                o.flags |= MQO_SUB_HELD;
                if (mqo_trie_add(e->trie, p->e[i].filt.f, p->e[i].filt.len, s, &o) == 0 &&
                    !p->e[i].had_old)
                    e->st.subscriptions++;
                session_sub_add(s, p->e[i].filt.f, p->e[i].filt.len);
            }
        }
        pending_free(p);
    }
    c->pend = NULL;

    if (s && s->conn == c) {
        s->conn = NULL;
        if (s->persistent || !s->known) {
            session_hold(e, s);
            if (c->version == MQO_MQTT_V5 && c->session_expiry != 0xFFFFFFFFu)
                s->expire_ns = now_ns + ((uint64_t)c->session_expiry + 10) * 1000000000ull;
            else
                s->expire_ns = UINT64_MAX;
        } else {
            session_free(e, s);
        }
    }
    c->sess = NULL;
    if (c->pre) {
        /* SUBSCRIBEs sent before a CONNACK we never saw: a persistent session may hold them in
         * the broker now, so they become held filters of that client id */
        int persistent = c->version == MQO_MQTT_V5 ? c->session_expiry > 0 : !c->clean;
        if (!s && persistent && c->cid_len && c->pre->n_subs) {
            struct session *hs = session_find(e, c->cid, c->cid_len);
            if (!hs && (hs = session_new(c->cid, c->cid_len)) && session_register(e, hs)) {
                free(hs->cid);
                free(hs);
                hs = NULL;
            }
            for (size_t i = 0; hs && !hs->conn && i < c->pre->n_subs; i++) {
                struct mqo_sub_opts o = {.qos = 1, .flags = MQO_SUB_HELD};
                const struct sfilter *f = &c->pre->subs[i];
                int existed = mqo_trie_get(e->trie, f->f, f->len, hs, NULL);
                if (mqo_trie_add(e->trie, f->f, f->len, hs, &o) == 0) {
                    e->st.subscriptions += !existed;
                    session_sub_add(hs, f->f, f->len);
                }
                hs->held = 1;
            }
        }
        session_free(e, c->pre);
    }

    mqo_map_each(&c->alias[0], free_alias_entry, NULL);
    mqo_map_each(&c->alias[1], free_alias_entry, NULL);
    mqo_map_free(&c->alias[0]);
    mqo_map_free(&c->alias[1]);
    mqo_map_free(&c->cpid);
    mqo_map_free(&c->bpid);
    mqo_map_free(&c->pt_acks);
    mqo_buf_free(&c->in[0].partial);
    mqo_buf_free(&c->in[1].partial);
    free(c->exp);
    free(c->cid);
    free(c->user);
    mqo_map_del(&e->conn_ids, c->id);
    if (e->scan_conn == c)
        e->scan_conn = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        e->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->st.conns_open--;
    free(c);
}

/* ---- engine ---- */

struct mqo_engine *mqo_engine_new(const struct mqo_engine_cfg *cfg)
{
    struct mqo_engine *e = calloc(1, sizeof *e);
    if (!e) {
        errno = ENOMEM;
        return NULL;
    }
    e->cfg = *cfg;
    if (!e->cfg.order_hold_ms)
        e->cfg.order_hold_ms = 2000;
    if (!e->cfg.inflight_default)
        e->cfg.inflight_default = 64;
    e->order_hold_ns = (uint64_t)e->cfg.order_hold_ms * 1000000ull;
    e->cfg.broker_only = NULL; /* copied into a trie below, not kept */
    e->cfg.n_broker_only = 0;
    e->trie = mqo_trie_new();
    e->broker_only = mqo_trie_new();
    if (!e->trie || !e->broker_only)
        goto nomem;
    for (size_t i = 0; i < cfg->n_broker_only; i++) {
        const char *f = cfg->broker_only[i];
        struct mqo_sub_opts o = {0};
        int rc = mqo_trie_add(e->broker_only, (const uint8_t *)f, strlen(f), e, &o);
        if (rc) {
            mqo_err("broker-only filter '%s' is not a valid topic filter", f);
            mqo_engine_free(e);
            errno = -rc;
            return NULL;
        }
    }
    if (e->cfg.acl_mode == MQO_ACL_FILE && !e->cfg.acl)
        e->cfg.acl_mode = MQO_ACL_NONE;
    if (eng_acl_init(e))
        goto nomem;
    return e;
nomem:
    mqo_engine_free(e);
    errno = ENOMEM;
    return NULL;
}

void mqo_engine_free(struct mqo_engine *e)
{
    if (!e)
        return;
    while (e->conns)
        mqo_engine_conn_close(e, e->conns, e->now);
    for (size_t i = 0; i < e->n_sbuckets; i++)
        while (e->sbuckets[i])
            session_free(e, e->sbuckets[i]);
    free(e->sbuckets);
    mqo_trie_free(e->trie);
    mqo_trie_free(e->broker_only);
    mqo_match_set_free(&e->ms);
    mqo_map_free(&e->conn_ids);
    free(e->plan);
    eng_acl_free(e);
    free(e);
}

/* ---- packet identifiers on the S2C stream ---- */

/* Client-side identifier for the broker's identifier b (reusing b when free). 0 when the
 * space is exhausted. */
static uint16_t pid_for_broker(struct mqo_conn *c, uint16_t b)
{
    uint64_t v;
    if (mqo_map_get(&c->bpid, b, &v))
        return (uint16_t)v;
    uint16_t cp = b;
    if (mqo_map_get(&c->cpid, cp, NULL)) {
        cp = eng_pid_alloc(c);
        if (!cp)
            return 0;
    }
    if (mqo_map_put(&c->cpid, cp, PID_BROKER | b) || mqo_map_put(&c->bpid, b, cp)) {
        mqo_map_del(&c->cpid, cp);
        return 0;
    }
    return cp;
}

uint16_t eng_pid_alloc(struct mqo_conn *c)
{
    if (c->cpid.n >= 65535)
        return 0;
    for (;;) {
        uint16_t p = c->pid_cursor++;
        if (c->pid_cursor == 0)
            c->pid_cursor = 1;
        if (p && !mqo_map_get(&c->cpid, p, NULL))
            return p;
    }
}

static void put16(uint8_t *d, uint16_t v)
{
    d[0] = (uint8_t)(v >> 8);
    d[1] = (uint8_t)v;
}

/* S2C PUBLISH with QoS > 0 or PUBREL: rewrite the broker's identifier to the client's. */
static int s2c_remap(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p,
                     size_t n, size_t pid_off)
{
    struct mqo_engine *e = c->eng;
    uint16_t cp;
    if (pk->type == MQO_PUBREL) {
        uint64_t v;
        if (!mqo_map_get(&c->bpid, pk->pid, &v)) {
            eng_forward(c, MQO_S2C, p, n); /* unknown: the client answers as it sees fit */
            return 0;
        }
        cp = (uint16_t)v;
    } else {
        cp = pid_for_broker(c, pk->pid);
        if (!cp)
            return -MQO_RC_RECEIVE_MAX_EXCEEDED;
    }
    if (cp == pk->pid) {
        eng_forward(c, MQO_S2C, p, n);
        return 0;
    }
    uint8_t patch[2];
    put16(patch, cp);
    e->st.pids_remapped++;
    eng_forward_patched(c, MQO_S2C, p, n, pid_off, patch, 2);
    return 0;
}

/* C2S PUBACK/PUBREC/PUBCOMP/PUBREL: the client answering a PUBLISH on its S2C stream (or, for
 * PUBREL, continuing its own QoS 2 publish, which is not remapped). */
static void c2s_ack(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n)
{
    struct mqo_engine *e = c->eng;
    uint64_t v;
    if (pk->type == MQO_PUBREL || !mqo_map_get(&c->cpid, pk->pid, &v)) {
        eng_forward(c, MQO_C2S, p, n);
        return;
    }
    if (v == PID_ENGINE) {
        /* our own delivery: the broker never sent it, so it never sees its ack */
        eng_consume(c, MQO_C2S, n);
        mqo_map_del(&c->cpid, pk->pid);
        if (c->eng_inflight)
            c->eng_inflight--;
        e->st.pubacks_absorbed++;
        return;
    }
    uint16_t b = (uint16_t)v;
    int done = pk->type == MQO_PUBACK || pk->type == MQO_PUBCOMP ||
               (pk->type == MQO_PUBREC && pk->reason >= 0x80);
    if (done) {
        mqo_map_del(&c->cpid, pk->pid);
        mqo_map_del(&c->bpid, b);
    }
    if (b == pk->pid) {
        eng_forward(c, MQO_C2S, p, n);
        return;
    }
    uint8_t patch[2];
    put16(patch, b);
    eng_forward_patched(c, MQO_C2S, p, n, 2, patch, 2);
}

/* ---- v5 topic aliases ---- */

/* Records or resolves the topic of a v5 PUBLISH on stream s. Returns 1 with *t set to the
 * topic, 0 when it cannot be resolved (unknown alias, no memory). */
int eng_alias_topic(struct mqo_conn *c, enum mqo_dir s, const struct mqo_pkt *pk,
                    struct mqo_str *t)
{
    *t = pk->u.publish.topic;
    if (!MQO_PROP_HAS(&pk->props, MQO_PROP_TOPIC_ALIAS))
        return t->len > 0;
    uint16_t a = pk->props.topic_alias;
    uint64_t v;
    if (t->len == 0) {
        if (!mqo_map_get(&c->alias[s], a, &v))
            return 0;
        struct sfilter *f = (struct sfilter *)(uintptr_t)v;
        t->p = f->f;
        t->len = f->len;
        return 1;
    }
    struct sfilter *f = NULL;
    if (mqo_map_get(&c->alias[s], a, &v)) {
        f = (struct sfilter *)(uintptr_t)v;
        free(f->f);
    } else {
        f = calloc(1, sizeof *f);
        if (!f)
            return 1;
        if (mqo_map_put(&c->alias[s], a, (uint64_t)(uintptr_t)f)) {
            free(f);
            return 1;
        }
    }
    f->f = memdup(t->p, t->len);
    f->len = f->f ? t->len : 0;
    return 1;
}

/* ---- subscriptions ---- */

static int c2s_subscribe(struct mqo_conn *c, const struct mqo_pkt *pk)
{
    struct mqo_engine *e = c->eng;
    struct pending *pd = calloc(1, sizeof *pd + pk->u.sub.count * sizeof pd->e[0]);
    if (!pd)
        return -ENOMEM;
    pd->pid = pk->pid;
    pd->unsub = pk->type == MQO_UNSUBSCRIBE;
    uint32_t off = 0;
    struct mqo_sub_entry se;
    uint32_t sub_id = MQO_PROP_HAS(&pk->props, MQO_PROP_SUBSCRIPTION_ID) ? pk->props.sub_ids[0] : 0;
    while (mqo_mqtt_sub_next(pk, &off, &se)) {
        struct pend_entry *pe = &pd->e[pd->n];
        pe->filt.f = memdup(se.filter.p, se.filter.len);
        if (!pe->filt.f) {
            pending_free(pd);
            return -ENOMEM;
        }
        pe->filt.len = se.filter.len;
        pd->n++;
        if (pd->unsub) {
            /* The broker stops delivering on this filter when it reads the UNSUBSCRIBE, which
             * we cannot see: until the UNSUBACK, matching messages go to the broker. */
            struct session *us = c->sess;
            struct mqo_sub_opts o;
            if (us && mqo_trie_get(e->trie, pe->filt.f, pe->filt.len, us, &o)) {
                pe->owner = us;
                pe->had_old = 1;
                pe->old = o;
                o.flags |= SUBF_PENDING;
                mqo_trie_add(e->trie, pe->filt.f, pe->filt.len, us, &o);
            }
            continue;
        }
        pe->opts = (struct mqo_sub_opts){
            .qos = MQO_SUBOPT_QOS(se.opts),
            .no_local = c->version == MQO_MQTT_V5 && (se.opts & MQO_SUBOPT_NO_LOCAL),
            .rap = c->version == MQO_MQTT_V5 && (se.opts & MQO_SUBOPT_RAP),
            .rh = c->version == MQO_MQTT_V5 ? MQO_SUBOPT_RH(se.opts) : 0,
            .sub_id = sub_id,
        };
        /* Until the SUBACK the broker may already deliver: matching messages go to it.
         * A SUBSCRIBE sent before the CONNACK was seen is kept under a private session. */
        struct session *s = c->sess;
        if (!s) {
            if (!c->pre && !(c->pre = session_new(NULL, 0))) {
                pending_free(pd);
                return -ENOMEM;
            }
            c->pre->conn = c;
            s = c->pre;
        }
        pe->owner = s;
        pe->had_old = (uint8_t)mqo_trie_get(e->trie, pe->filt.f, pe->filt.len, s, &pe->old);
        struct mqo_sub_opts o = pe->had_old ? pe->old : pe->opts;
        o.flags |= SUBF_PENDING;
        if (mqo_trie_add(e->trie, pe->filt.f, pe->filt.len, s, &o) == 0 && !pe->had_old)
            e->st.subscriptions++;
        session_sub_add(s, pe->filt.f, pe->filt.len);
    }
    pd->next = c->pend;
    c->pend = pd;
    return 0;
}

static void s2c_suback(struct mqo_conn *c, const struct mqo_pkt *pk)
{
    struct mqo_engine *e = c->eng;
    struct pending **pp = &c->pend;
    int unsub = pk->type == MQO_UNSUBACK;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->pid == pk->pid && (*pp)->unsub == unsub)
            break;
    struct pending *pd = *pp;
    if (!pd)
        return;
    *pp = pd->next;
    struct session *s = c->sess;
    for (uint32_t i = 0; s && i < pd->n; i++) {
        struct pend_entry *pe = &pd->e[i];
        if (pe->owner && pe->owner != s) {
            /* provisional entry under the pre-CONNACK session: the real one takes over */
            session_sub_del(e, pe->owner, pe->filt.f, pe->filt.len);
            pe->had_old = (uint8_t)mqo_trie_get(e->trie, pe->filt.f, pe->filt.len, s, &pe->old);
            pe->owner = s;
        }
        /* v3 UNSUBACK has no codes: success for all */
        uint8_t code = i < pk->u.suback.count ? pk->u.suback.codes[i] : 0;
        if (unsub) {
            if (code == MQO_RC_SUCCESS || code == MQO_RC_NO_SUBSCRIPTION_EXISTED)
                session_sub_del(e, s, pe->filt.f, pe->filt.len);
            else if (pe->had_old && pe->owner == s) /* refused: the subscription stays */
                mqo_trie_add(e->trie, pe->filt.f, pe->filt.len, s, &pe->old);
            continue;
        }
        if (code < 0x80) {
            struct mqo_sub_opts o = pe->opts;
            o.qos = code;
            o.flags = s->held ? MQO_SUB_HELD : 0;
            int existed = mqo_trie_get(e->trie, pe->filt.f, pe->filt.len, s, NULL);
            if (mqo_trie_add(e->trie, pe->filt.f, pe->filt.len, s, &o) == 0 && !existed)
                e->st.subscriptions++;
            session_sub_add(s, pe->filt.f, pe->filt.len);
        } else if (pe->had_old && pe->owner == s) {
            struct mqo_sub_opts o = pe->old;
            o.flags &= ~SUBF_PENDING;
            mqo_trie_add(e->trie, pe->filt.f, pe->filt.len, s, &o);
        } else {
            session_sub_del(e, s, pe->filt.f, pe->filt.len);
        }
    }
    pending_free(pd);
}

/* ---- CONNECT / CONNACK ---- */

/* Finds property `id` in a validated property block; returns its value's offset in raw or -1. */
static long prop_find(const uint8_t *raw, uint32_t len, uint8_t id)
{
    uint32_t i = 0;
    while (i < len) {
        uint8_t pid = raw[i++];
        if (pid == id)
            return (long)i;
        switch (pid) {
        case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
            i += 1;
            break;
        case 0x13: case 0x21: case 0x22: case 0x23:
            i += 2;
            break;
        case 0x02: case 0x11: case 0x18: case 0x27:
            i += 4;
            break;
        case 0x0B:
            while (i < len && (raw[i] & 0x80))
                i++;
            i++;
            break;
        case 0x26:
            if (i + 2 > len)
                return -1;
            i += 2u + (uint32_t)((raw[i] << 8) | raw[i + 1]);
            /* then the value string */
            if (i + 2 > len)
                return -1;
            i += 2u + (uint32_t)((raw[i] << 8) | raw[i + 1]);
            break;
        default: /* string / binary */
            if (i + 2 > len)
                return -1;
            i += 2u + (uint32_t)((raw[i] << 8) | raw[i + 1]);
            break;
        }
    }
    return -1;
}

static int c2s_connect(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n)
{
    struct mqo_engine *e = c->eng;
    if (c->connect_seen) {
        /* a second CONNECT is a protocol error the broker handles: pass it on */
        c->live = 0;
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    c->connect_seen = 1;
    c->version = pk->u.connect.level;
    c->clean = (pk->u.connect.cflags & MQO_CONNECT_CLEAN) != 0;
    c->keepalive = pk->u.connect.keepalive;
    c->has_user = (pk->u.connect.cflags & MQO_CONNECT_USERNAME) != 0;
    c->cid = memdup(pk->u.connect.client_id.p, pk->u.connect.client_id.len);
    c->cid_len = pk->u.connect.client_id.len;
    if (c->has_user) {
        c->user = memdup(pk->u.connect.username.p, pk->u.connect.username.len);
        c->user_len = pk->u.connect.username.len;
    }
    if (!c->cid || (c->has_user && !c->user))
        return -ENOMEM;
    c->eng_inflight_max = e->cfg.inflight_default;
    if (c->version != MQO_MQTT_V5) {
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    const struct mqo_props *pr = &pk->props;
    if (MQO_PROP_HAS(pr, MQO_PROP_SESSION_EXPIRY))
        c->session_expiry = pr->session_expiry;
    if (MQO_PROP_HAS(pr, MQO_PROP_MAXIMUM_PACKET_SIZE))
        c->client_max_packet = pr->maximum_packet_size;
    if (!MQO_PROP_HAS(pr, MQO_PROP_RECEIVE_MAXIMUM)) {
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    /* Split the client's receive maximum: the broker is told of its part (rewritten in place),
     * the offload keeps the rest, so together they never exceed what the client allows. */
    uint16_t r = pr->receive_maximum;
    c->eng_inflight_max = r / 2;
    long at = prop_find(pr->raw, pr->raw_len, MQO_PROP_RECEIVE_MAXIMUM);
    if (c->eng_inflight_max == 0 || at < 0) {
        c->eng_inflight_max = 0;
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    uint8_t patch[2];
    put16(patch, (uint16_t)(r - c->eng_inflight_max));
    eng_forward_patched(c, MQO_C2S, p, n, (size_t)(pr->raw - p) + (size_t)at, patch, 2);
    return 0;
}

static int s2c_connack(struct mqo_conn *c, const struct mqo_pkt *pk)
{
    struct mqo_engine *e = c->eng;
    if (!c->connect_seen || c->sess)
        return 0;
    if (pk->reason >= (c->version == MQO_MQTT_V5 ? 0x80 : 0x01))
        return 0; /* refused: the broker closes the connection */
    const struct mqo_props *pr = &pk->props;
    if (c->version == MQO_MQTT_V5) {
        if (MQO_PROP_HAS(pr, MQO_PROP_SERVER_KEEP_ALIVE))
            c->keepalive = pr->server_keep_alive;
        if (MQO_PROP_HAS(pr, MQO_PROP_MAXIMUM_PACKET_SIZE))
            c->broker_max_packet = pr->maximum_packet_size;
        if (MQO_PROP_HAS(pr, MQO_PROP_MAXIMUM_QOS))
            c->broker_max_qos = pr->maximum_qos;
        if (MQO_PROP_HAS(pr, MQO_PROP_ASSIGNED_CLIENT_ID) && c->cid_len == 0) {
            free(c->cid);
            c->cid = memdup(pr->assigned_client_id.p, pr->assigned_client_id.len);
            if (!c->cid)
                return -ENOMEM;
            c->cid_len = pr->assigned_client_id.len;
        }
        c->session_expiry = MQO_PROP_HAS(&pk->props, MQO_PROP_SESSION_EXPIRY)
                                ? pk->props.session_expiry
                                : c->session_expiry;
    }
    uint8_t persistent = c->version == MQO_MQTT_V5 ? c->session_expiry > 0 : !c->clean;
    struct session *s;
    if (c->cid_len == 0) {
        /* id generated by the broker and not told to us: a private, clean session; ACL
         * patterns with %c cannot be evaluated for it */
        s = session_new(NULL, 0);
        if (!s)
            return -ENOMEM;
        c->acl_unknown = 1;
    } else {
        s = session_find(e, c->cid, c->cid_len);
        if (s && s->conn && s->conn != c) {
            /* session taken over: the broker disconnects the old connection */
            s->conn->live = 0;
            s->conn->sess = NULL;
            s->conn = NULL;
        }
        if (!s) {
            s = session_new(c->cid, c->cid_len);
            if (!s || session_register(e, s)) {
                free(s ? s->cid : NULL);
                free(s);
                return -ENOMEM;
            }
            if (pk->u.connack.session_present) {
                session_set_known(e, s, 0);
                mqo_warn("client '%.*s' resumed a broker session the offload has not seen; "
                         "its subscriptions are unknown, so every PUBLISH goes to the broker "
                         "until that session ends", (int)c->cid_len, c->cid);
            }
        } else if (!pk->u.connack.session_present) {
            /* the broker has no old session: whatever we held for it is gone */
            session_clear_subs(e, s);
            session_set_known(e, s, 1);
            s->held = 0;
        }
        s->expire_ns = UINT64_MAX;
    }
    s->persistent = persistent;
    s->conn = c;
    c->sess = s;
    c->live = 1;
    return 0;
}

/* ---- input ---- */

static int handle_c2s(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n,
                      uint64_t now)
{
    int rc = 0;
    switch (pk->type) {
    case MQO_CONNECT:
        return c2s_connect(c, pk, p, n);
    case MQO_PUBLISH:
        return eng_publish(c, pk, p, n, now);
    case MQO_PUBACK:
    case MQO_PUBREC:
    case MQO_PUBREL:
    case MQO_PUBCOMP:
        c2s_ack(c, pk, p, n);
        return 0;
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE:
        rc = c2s_subscribe(c, pk);
        break;
    case MQO_PINGREQ:
        if (c->ping_n < 64) {
            c->ping_fifo &= ~(1ull << c->ping_n); /* 0: the client's own */
            c->ping_n++;
        }
        break;
    case MQO_DISCONNECT:
        if (c->version == MQO_MQTT_V5 && MQO_PROP_HAS(&pk->props, MQO_PROP_SESSION_EXPIRY)) {
            c->session_expiry = pk->props.session_expiry;
            if (c->sess)
                c->sess->persistent = c->session_expiry > 0;
        }
        c->live = 0;
        break;
    default:
        break;
    }
    eng_forward(c, MQO_C2S, p, n);
    return rc;
}

static int handle_s2c(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n,
                      uint64_t now)
{
    int rc = 0;
    switch (pk->type) {
    case MQO_CONNACK:
        rc = s2c_connack(c, pk);
        break;
    case MQO_PUBLISH:
        order_seen(c, pk);
        if (pk->u.publish.qos == 0)
            break;
        return s2c_remap(c, pk, p, n, pk->u.publish.pid_off);
    case MQO_PUBREL:
        return s2c_remap(c, pk, p, n, 2);
    case MQO_PUBACK:
    case MQO_PUBREC:
    case MQO_PUBCOMP:
        order_ack_seen(c, pk);
        break;
    case MQO_SUBACK:
    case MQO_UNSUBACK:
        s2c_suback(c, pk);
        break;
    case MQO_PINGRESP:
        if (c->ping_n) {
            int ours = c->ping_fifo & 1, barrier = c->ping_barrier & 1;
            c->ping_fifo >>= 1;
            c->ping_barrier >>= 1;
            c->ping_n--;
            if (barrier && c->order_pending)
                c->order_pending--;
            if (ours) {
                c->eng->st.pingresp_dropped++;
                eng_consume(c, MQO_S2C, n);
                return 0;
            }
        }
        break;
    case MQO_DISCONNECT:
        c->live = 0;
        break;
    default:
        break;
    }
    eng_forward(c, MQO_S2C, p, n);
    return rc;
}

static int handle_packet(struct mqo_conn *c, enum mqo_dir in, const uint8_t *p, size_t n,
                         uint64_t now)
{
    struct mqo_pkt pk;
    int rc;
    if (in == MQO_C2S && !c->connect_seen && (p[0] >> 4) != MQO_CONNECT)
        return -MQO_RC_PROTOCOL_ERROR;
    rc = mqo_mqtt_decode(p, n, c->version ? c->version : MQO_MQTT_V311, in, &pk);
    if (rc < 0)
        return rc;
    rc = in == MQO_C2S ? handle_c2s(c, &pk, p, n, now) : handle_s2c(c, &pk, p, n, now);
    if (rc == -ENOMEM)
        return -MQO_RC_SERVER_UNAVAILABLE;
    return rc;
}

int mqo_engine_input(struct mqo_engine *e, struct mqo_conn *c, enum mqo_dir in,
                     const uint8_t *p, size_t n, uint64_t now_ns)
{
    struct mqo_buf *part = &c->in[in].partial;
    uint32_t maxp = e->cfg.max_packet;
    if (now_ns > e->now)
        e->now = now_ns;
    if (c->dead) {
        if (n)
            eng_consume(c, in, n);
        return -MQO_RC_PROTOCOL_ERROR;
    }
    if (in == MQO_C2S && !c->connect_seen && !part->len && n && (p[0] >> 4) != MQO_CONNECT) {
        /* like the broker, refuse a first packet that is not a CONNECT from its first byte,
         * without waiting for a "packet" that may never come (an HTTP request, say) */
        eng_consume(c, in, n);
        fail_conn(c, in, -MQO_RC_PROTOCOL_ERROR);
        return -MQO_RC_PROTOCOL_ERROR;
    }
    const uint8_t *cur = p;
    size_t left = n;
    if (part->len) {
        if (mqo_buf_append(part, p, n)) {
            fail_conn(c, in, -MQO_RC_SERVER_UNAVAILABLE);
            eng_consume(c, in, n);
            return -MQO_RC_SERVER_UNAVAILABLE;
        }
        cur = part->data;
        left = part->len;
    }
    size_t done = 0;
    int rc = 0;
    while (left - done > 0) {
        struct mqo_frame f;
        ssize_t t = mqo_mqtt_frame(cur + done, left - done, maxp, &f);
        if (t == 0)
            break;
        if (t < 0) {
            rc = (int)t;
            break;
        }
        rc = handle_packet(c, in, cur + done, (size_t)t, now_ns);
        if (rc < 0) {
            eng_consume(c, in, (size_t)t);
            done += (size_t)t;
            break;
        }
        done += (size_t)t;
        if (c->dead)
            break;
    }
    if (rc < 0) {
        /* the rest of this stream is unusable: account for it and close */
        if (left - done)
            eng_consume(c, in, left - done);
        done = left;
        fail_conn(c, in, rc);
    }
    if (cur == part->data) {
        mqo_buf_consume(part, done);
    } else if (done < left) {
        if (mqo_buf_append(part, cur + done, left - done)) {
            eng_consume(c, in, left - done);
            fail_conn(c, in, -MQO_RC_SERVER_UNAVAILABLE);
            return -MQO_RC_SERVER_UNAVAILABLE;
        }
    }
    return rc < 0 ? rc : 0;
}

/* ---- timers ---- */

static void tick_conn(struct mqo_engine *e, struct mqo_conn *c, uint64_t now)
{
    /* MQTT keep-alive: the broker must see something within 1.5 x keep-alive; when the
     * client's traffic was consumed, ping on its behalf at half the interval. Only then: a
     * client that went silent must time out at the broker as it would without us (a ping
     * goes at most half an interval after its last consumed packet). */
    if (c->live && c->keepalive && c->unseen_activity && c->ping_n < 64 &&
        !(c->ping_fifo & ((1ull << c->ping_n) - 1))) {
        uint64_t ka = (uint64_t)c->keepalive * 1000000000ull;
        if (now - c->last_to_broker >= ka / 2) {
            uint8_t b[2];
            mqo_mqtt_enc_ping(b, MQO_PINGREQ);
            c->ping_fifo |= 1ull << c->ping_n;
            c->ping_n++;
            e->st.pings_synth++;
            if (eng_insert_bytes(c, MQO_C2S, b, 2) == 0) {
                c->last_to_broker = now;
                c->unseen_activity = 0;
            }
        }
    }
    order_tick(e, c, now);
}

/* Every connection (keep-alive, ordering holds) and every held session (expiry) is visited
 * about every SCAN_NS, a slice per call in proportion to the time since the previous call:
 * walking thousands of connections at once stalls every message that arrives meanwhile (with
 * 2000 connections a whole walk took 0.3-0.8 ms, every 100 ms: the p99 of a p2p load). */
#define SCAN_NS 100000000ull

void mqo_engine_tick(struct mqo_engine *e, uint64_t now_ns)
{
    if (now_ns > e->now)
        e->now = now_ns;
    uint64_t dt = e->last_tick && now_ns > e->last_tick ? now_ns - e->last_tick : 0;
    if (!e->last_tick || dt > SCAN_NS)
        dt = SCAN_NS;
    if (now_ns > e->last_tick)
        e->last_tick = now_ns;
    size_t nc = (size_t)e->st.conns_open;
    for (size_t k = mqo_slice_share(&e->conn_credit, nc, dt, SCAN_NS); k; k--) {
        struct mqo_conn *c = e->scan_conn ? e->scan_conn : e->conns;
        if (!c)
            break;
        e->scan_conn = c->next; /* kept valid if a connection is freed meanwhile */
        tick_conn(e, c, now_ns);
    }
    /* held sessions whose expiry passed (v5): the broker has forgotten them too */
    for (size_t k = mqo_slice_share(&e->bucket_credit, e->n_sbuckets, dt, SCAN_NS); k; k--) {
        if (e->scan_bucket >= e->n_sbuckets)
            e->scan_bucket = 0;
        struct session **pp = &e->sbuckets[e->scan_bucket++];
        while (*pp) {
            struct session *s = *pp;
            if (!s->conn && s->expire_ns <= now_ns) {
                session_free(e, s); /* unlinks *pp */
                continue;
            }
            pp = &s->hnext;
        }
    }
}
