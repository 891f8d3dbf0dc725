/* The MQTT stream editor: connection lifecycle, framing of both streams, the subscription
 * table, packet identifiers, keep-alive. The PUBLISH decision and fan-out are in publish.c. */
#include "engine/engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
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
    [MQO_PT_RELAY] = "relayed_connection",
    [MQO_PT_UNKNOWN_CONN] = "unknown_connection",
    [MQO_PT_STREAMED] = "streamed",
    [MQO_PT_STREAMING] = "streaming_to_client",
    [MQO_PT_BROKER_LIMIT] = "broker_limit",
    [MQO_PT_BROKER_CONF] = "broker_config",
    [MQO_PT_NOT_EXCLUSIVE] = "not_exclusive",
    [MQO_PT_ACL_CHANGED] = "acl_changed",
    [MQO_PT_ACL_BROKEN] = "acl_broken",
    [MQO_PT_FOREIGN] = "broker_subscriber",
};

const char *mqo_pt_reason_name(enum mqo_pt_reason r)
{
    return (unsigned)r < MQO_PT__COUNT && pt_names[r] ? pt_names[r] : "?";
}

void *mqo_conn_ud(const struct mqo_conn *c) { return c->ud; }

void mqo_peer_parse(struct mqo_peer *p, const char *peer)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon = strrchr(peer, ':'), *h = peer, *he = colon;
    memset(p, 0, sizeof *p);
    if (!colon)
        return;
    if (*h == '[') {
        h++;
        if (he == h || he[-1] != ']')
            return;
        he--;
    }
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if ((size_t)(he - h) >= sizeof host || !colon[1] || *end || port > 65535)
        return;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = 0;
    char *scope = strchr(host, '%'); /* a link-local address's zone is not kept */
    if (scope)
        *scope = 0;
    if (inet_pton(AF_INET, host, p->ip) == 1)
        p->fam = 4;
    else if (inet_pton(AF_INET6, host, p->ip) == 1)
        p->fam = 6;
    p->port = (uint16_t)port;
}

const char *mqo_peer_format(const struct mqo_peer *p, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if ((p->fam != 4 && p->fam != 6) ||
        !inet_ntop(p->fam == 4 ? AF_INET : AF_INET6, p->ip, host, sizeof host)) {
        if (len)
            buf[0] = 0;
        return buf;
    }
    snprintf(buf, len, p->fam == 6 ? "[%s]:%u" : "%s:%u", host, p->port);
    return buf;
}

const char *eng_conn_peer(const struct mqo_conn *c, char *buf, size_t len)
{
    struct mqo_peer p = {0};
    const struct mqo_engine *e = c->eng;
    if (e->cfg.ops.peer)
        e->cfg.ops.peer(e->cfg.ud, c, &p);
    return mqo_peer_format(&p, buf, len);
}

const char *mqo_conn_who(const struct mqo_conn *c, char *buf, size_t len)
{
    char peer[INET6_ADDRSTRLEN + 8];
    const char *from = eng_conn_peer(c, peer, sizeof peer);
    if (!*from)
        from = "an unknown address";
    if (c->cid) {
        /* the codec and the broker refuse control characters in an id; should one get
         * through, it still cannot split or forge a log line */
        char id[129];
        size_t n = c->cid_len < sizeof id - 1 ? c->cid_len : sizeof id - 1;
        for (size_t i = 0; i < n; i++)
            id[i] = c->cid[i] < 0x20 || c->cid[i] == 0x7f ? '?' : (char)c->cid[i];
        id[n] = 0;
        snprintf(buf, len, "client '%s' from %s", id, from);
    } else
        snprintf(buf, len, "a client from %s (connection %llu)", from,
                 (unsigned long long)c->id);
    return buf;
}
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

void mqo_engine_set_conf_hold(struct mqo_engine *e, int on) { e->st.conf_hold = on ? 1 : 0; }

static uint8_t *memdup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* c's client id becomes a copy of its own again (before c and its session part); without
 * memory it is forgotten (log lines then name the address only). */
static void conn_cid_unshare(struct mqo_conn *c)
{
    if (!c->cid_shared)
        return;
    c->cid_shared = 0;
    c->cid = memdup(c->cid, c->cid_len);
    if (!c->cid)
        c->cid_len = 0;
}

/* c was bound to s: c keeps s's copy of their client id instead of its own. */
static void conn_cid_share(struct mqo_conn *c, struct session *s)
{
    if (c->cid_shared || !c->cid || !c->cid_len || s->cid_len != c->cid_len ||
        memcmp(s->cid, c->cid, c->cid_len) != 0)
        return;
    free(c->cid);
    c->cid = s->cid;
    c->cid_shared = 1;
}

int eng_mounted(const struct mqo_engine *e, struct mqo_str t, struct mqo_str *out, uint8_t *buf,
                size_t cap, uint8_t **heap)
{
    *heap = NULL;
    if (!e->mount_len) {
        *out = t;
        return 0;
    }
    size_t n = e->mount_len + t.len;
    if (n > 65535)
        return -E2BIG;
    uint8_t *d = buf;
    if (n > cap && !(d = *heap = malloc(n)))
        return -ENOMEM;
    memcpy(d, e->cfg.mount_point, e->mount_len);
    if (t.len)
        memcpy(d + e->mount_len, t.p, t.len);
    *out = (struct mqo_str){d, (uint16_t)n};
    return 0;
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

/* Asks the mode to close c for a limit of the engine's own (memory, identifiers). */
static void fail_conn(struct mqo_conn *c, int rc)
{
    struct mqo_engine *e = c->eng;
    if (c->dead)
        return;
    c->dead = 1;
    c->live = 0;
    char who[200];
    mqo_warn("%s: %s: closing the connection", mqo_conn_who(c, who, sizeof who),
             rc == -ENOMEM ? "out of memory" : "no packet identifier left");
    e->cfg.ops.close(e->cfg.ud, c, rc);
}

void eng_relay(struct mqo_conn *c, int unknown, const char *why)
{
    struct mqo_engine *e = c->eng;
    char who[200];
    if (!c->relay) {
        c->relay = 1;
        e->st.relay_conns++;
        mqo_info("%s: %s: passed to the broker, which judges it; the connection is relayed "
                 "unedited from now on", mqo_conn_who(c, who, sizeof who), why);
    }
    if (unknown && !c->unknown) {
        c->unknown = 1;
        e->st.unknown_conns++;
        mqo_warn("%s: the broker may now hold subscriptions or a session the offload does not "
                 "know: every PUBLISH goes to the broker while it lives%s",
                 mqo_conn_who(c, who, sizeof who),
                 eng_bv_synced(e) ? " (or, while the broker's view is synced, those that "
                                    "match its subscriptions)" : "");
        bv_conn_changed(c);
    }
}

int mqo_conn_quiescent(const struct mqo_conn *c)
{
    for (int d = 0; d < 2; d++) {
        const struct stream *st = &c->in[d];
        if ((st->partial && st->partial->len) || st->held || st->pass_left)
            return 0;
    }
    uint64_t engine_pings = c->ping_n < 64 ? c->ping_fifo & ((1ull << c->ping_n) - 1) : 1;
    return !c->dead && !c->eng_inflight && !cpids(c)->cpid.n && !cpids(c)->bpid.n &&
           (!c->alias || (!c->alias[0].n && !c->alias[1].n)) && !engine_pings &&
           !c->order_pending && !cbv_pid(c);
}

void mqo_conn_relay_unknown(struct mqo_conn *c, const char *why)
{
    c->in[MQO_C2S].raw = 1;
    c->in[MQO_S2C].raw = 1;
    c->connect_seen = 1;
    eng_relay(c, 1, why);
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

/* The client-id table is chained, at most two sessions a bucket on average: a bucket pointer
 * costs 8 bytes a session at most, and a lookup (at a CONNECT) walks two entries. */
static int session_register(struct mqo_engine *e, struct session *s)
{
    if (e->n_sessions + 1 > 2 * e->n_sbuckets) {
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

struct session *eng_session_new(const uint8_t *cid, size_t n)
{
    struct session *s = calloc(1, sizeof *s + (n ? n : 1));
    if (!s)
        return NULL;
    if (n)
        memcpy(s->cid, cid, n);
    s->cid_len = (uint16_t)n;
    s->known = 1;
    s->expire_ns = UINT64_MAX;
    return s;
}

static ssize_t session_sub_index(const struct session *s, const uint8_t *f, size_t len)
{
    for (size_t i = 0; i < s->n_subs; i++)
        if (s->subs[i].len == len && memcmp(sfn_bytes(&s->subs[i]), f, len) == 0)
            return (ssize_t)i;
    return -1;
}

static void sfn_free(struct sfname *n)
{
    if (n->len > SFN_INLINE)
        free((void *)sfn_bytes(n));
}

int eng_session_sub_add(struct session *s, const uint8_t *f, size_t len)
{
    if (session_sub_index(s, f, len) >= 0)
        return 0;
    if (s->n_subs == sess_room(s)) {
        if (!s->subs_log) {
            s->subs = &s->sub1;
            s->subs_log = 1;
        } else {
            if (s->subs_log >= 31)
                return -ENOMEM;
            uint32_t cap = sess_room(s) * 2;
            struct sfname *v = s->subs == &s->sub1 ? malloc(cap * sizeof *v)
                                                    : realloc(s->subs, cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            if (s->subs == &s->sub1)
                v[0] = s->sub1;
            s->subs = v;
            s->subs_log++;
        }
    }
    struct sfname *sn = &s->subs[s->n_subs];
    if (len <= SFN_INLINE) {
        memcpy(sn->b, f, len);
    } else {
        uint8_t *d = memdup(f, len);
        if (!d)
            return -ENOMEM;
        memcpy(sn->b, &d, sizeof d);
    }
    sn->len = (uint16_t)len;
    s->n_subs++;
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
    sfn_free(&s->subs[i]);
    s->subs[i] = s->subs[--s->n_subs];
}

/* Removes every subscription of the session from the trie. */
static void session_clear_subs(struct mqo_engine *e, struct session *s)
{
    for (size_t i = 0; i < s->n_subs; i++) {
        if (mqo_trie_del(e->trie, sfn_bytes(&s->subs[i]), s->subs[i].len, s) == 0)
            e->st.subscriptions--;
        sfn_free(&s->subs[i]);
    }
    s->n_subs = 0;
}

/* Marks every subscription of the session as held by the broker. */
static void session_hold(struct mqo_engine *e, struct session *s)
{
    s->held = 1;
    for (size_t i = 0; i < s->n_subs; i++) {
        struct mqo_sub_opts o;
        const uint8_t *f = sfn_bytes(&s->subs[i]);
        if (mqo_trie_get(e->trie, f, s->subs[i].len, s, &o)) {
            o.flags = (o.flags & ~SUBF_PENDING) | MQO_SUB_HELD;
            mqo_trie_add(e->trie, f, s->subs[i].len, s, &o);
        }
    }
}

static void session_set_known(struct mqo_engine *e, struct session *s, int known)
{
    if (s->known == known)
        return;
    s->known = known != 0;
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
    if (s->subs != &s->sub1)
        free(s->subs);
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
    if (eng_conn_enter(e, c) != 0) {
        free(c);
        return NULL;
    }
    e->st.conns_open++;
    return c;
}

static size_t ct_home(uint64_t id, uint32_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

struct mqo_conn *eng_conn_by_id(struct mqo_engine *e, uint64_t id)
{
    const struct conn_tab *t = &e->conns;
    if (!t->n)
        return NULL;
    for (size_t i = ct_home(id, t->cap); t->slots[i]; i = (i + 1) & (t->cap - 1))
        if (t->slots[i]->id == id)
            return t->slots[i];
    return NULL;
}

static void ct_place(struct conn_tab *t, struct mqo_conn *c)
{
    size_t i = ct_home(c->id, t->cap);
    while (t->slots[i])
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = c;
    t->n++;
}

int eng_conn_enter(struct mqo_engine *e, struct mqo_conn *c)
{
    struct conn_tab *t = &e->conns;
    if ((t->n + 1) * 4 > (size_t)t->cap * 3) { /* at most three quarters full */
        if (t->cap > UINT32_MAX / 2)
            return -ENOMEM;
        struct conn_tab nt = {.cap = t->cap ? t->cap * 2 : 64};
        if (!(nt.slots = calloc(nt.cap, sizeof *nt.slots)))
            return -ENOMEM;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i])
                ct_place(&nt, t->slots[i]);
        free(t->slots);
        *t = nt;
    }
    ct_place(t, c);
    return 0;
}

static void ct_del(struct conn_tab *t, const struct mqo_conn *c)
{
    if (!t->n)
        return;
    size_t mask = t->cap - 1, i = ct_home(c->id, t->cap);
    while (t->slots[i] && t->slots[i] != c)
        i = (i + 1) & mask;
    if (!t->slots[i])
        return;
    /* backward-shift deletion: later members of the probe run move into the hole */
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!t->slots[j])
            break;
        size_t home = ct_home(t->slots[j]->id, t->cap);
        /* slot j may move to i when its home is not in (i, j] cyclically */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = NULL;
    t->n--;
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
    if (cbv_pconn(c)) {
        c->dead = 1; /* no longer the engine's: the broker's view of it enters the table */
        bv_conn_changed(c);
    }
    order_conn_closed(e, c);
    if (c->relay)
        e->st.relay_conns--;
    if (c->unknown)
        e->st.unknown_conns--;

    uint64_t lost = 0;
    mqo_map_each(&cpids(c)->cpid, count_engine_pid, &lost);
    if (lost) {
        e->st.inflight_lost += lost;
        char who[200];
        mqo_info("%s: closed with %llu offload QoS 1 deliveries unacknowledged; its session "
                 "ends with the connection, so the broker would drop them too",
                 mqo_conn_who(c, who, sizeof who), (unsigned long long)lost);
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
                eng_session_sub_add(s, p->e[i].filt.f, p->e[i].filt.len);
            }
        }
        pending_free(p);
    }
    c->pend = NULL;

    if (c->cid_shared) {
        /* the session may go now; nothing below needs the id of a bound connection */
        c->cid = NULL;
        c->cid_len = 0;
        c->cid_shared = 0;
    }
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
            if (!hs && (hs = eng_session_new(c->cid, c->cid_len)) && session_register(e, hs)) {
                free(hs);
                hs = NULL;
            }
            for (size_t i = 0; hs && !hs->conn && i < c->pre->n_subs; i++) {
                struct mqo_sub_opts o = {.qos = 1, .flags = MQO_SUB_HELD};
                const struct sfname *f = &c->pre->subs[i];
                const uint8_t *fb = sfn_bytes(f);
                int existed = mqo_trie_get(e->trie, fb, f->len, hs, NULL);
                if (mqo_trie_add(e->trie, fb, f->len, hs, &o) == 0) {
                    e->st.subscriptions += !existed;
                    eng_session_sub_add(hs, fb, f->len);
                }
                hs->held = 1;
            }
        }
        session_free(e, c->pre);
    }

    for (int d = 0; c->alias && d < 2; d++) {
        mqo_map_each(&c->alias[d], free_alias_entry, NULL);
        mqo_map_free(&c->alias[d]);
    }
    free(c->alias);
    if (c->pids) {
        mqo_map_free(&c->pids->cpid);
        mqo_map_free(&c->pids->bpid);
        mqo_map_free(&c->pids->pt_acks);
        free(c->pids);
    }
    for (int d = 0; d < 2; d++) {
        if (c->in[d].partial)
            mqo_buf_free(c->in[d].partial);
        free(c->in[d].partial);
        if (c->in[d].hs)
            free(c->in[d].hs->topic.f);
        free(c->in[d].hs);
    }
    free(c->exp);
    free(c->cid);
    if (c->bv)
        free(c->bv->cid);
    free(c->bv);
    free(c->user);
    ct_del(&e->conns, c);
    e->st.conns_open--;
    free(c);
}

/* ---- engine ---- */

/* Adds the broker-only filters to t. Returns 0, or -EINVAL (logged), -ENOMEM. */
static int broker_only_fill(struct mqo_engine *e, struct mqo_trie *t, const char *const *f,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct mqo_sub_opts o = {0};
        int rc = mqo_trie_add(t, (const uint8_t *)f[i], strlen(f[i]), e, &o);
        if (rc) {
            if (rc == -EINVAL)
                mqo_err("broker-only filter '%s' is not a valid topic filter", f[i]);
            return rc;
        }
    }
    return 0;
}

int mqo_engine_set_broker_only(struct mqo_engine *e, const char *const *filters, size_t n)
{
    /* A filter added makes its topics go to the broker from the next PUBLISH on, after what
     * the offload already delivered; one removed lets them be offloaded again, and what the
     * broker still carries of them holds the publisher (passthrough_holds), as for any
     * message that went to the broker. */
    struct mqo_trie *t = mqo_trie_new();
    if (!t)
        return -ENOMEM;
    int rc = broker_only_fill(e, t, filters, n);
    if (rc) {
        mqo_trie_free(t);
        return rc;
    }
    mqo_trie_free(e->broker_only);
    e->broker_only = t;
    return 0;
}

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
    if (!e->cfg.max_buffer)
        e->cfg.max_buffer = 1u << 20;
    if (e->cfg.max_buffer < 64)
        e->cfg.max_buffer = 64; /* room for any packet's head */
    e->order_hold_ns = (uint64_t)e->cfg.order_hold_ms * 1000000ull;
    e->mount_len = cfg->mount_point ? strlen(cfg->mount_point) : 0;
    e->st.conf_hold = cfg->conf_hold ? 1 : 0;
    e->cfg.broker_only = NULL; /* copied into a trie below, not kept */
    e->cfg.n_broker_only = 0;
    e->trie = mqo_trie_new();
    e->broker_only = mqo_trie_new();
    if (!e->trie || !e->broker_only)
        goto nomem;
    int rc = broker_only_fill(e, e->broker_only, cfg->broker_only, cfg->n_broker_only);
    if (rc) {
        mqo_engine_free(e);
        errno = -rc;
        return NULL;
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
    /* a close moves later connections back into the slot it emptied: that slot again */
    struct mqo_conn *c;
    for (size_t it = 0; (c = eng_conn_next(e, &it));) {
        mqo_engine_conn_close(e, c, e->now);
        it--;
    }
    for (size_t i = 0; i < e->n_sbuckets; i++)
        while (e->sbuckets[i])
            session_free(e, e->sbuckets[i]);
    free(e->sbuckets);
    bv_free(e);
    mqo_trie_free(e->trie);
    mqo_trie_free(e->broker_only);
    mqo_match_set_free(&e->ms);
    free(e->conns.slots);
    free(e->plan);
    eng_acl_free(e);
    free(e);
}

/* ---- packet identifiers on the S2C stream ---- */

/* Client-side identifier for the broker's identifier b (reusing b when free). 0 when the
 * space is exhausted. */
/* Client-side identifiers follow Mosquitto's: one sequence (last + 1) over every QoS > 0
 * PUBLISH the client gets, the broker's and the offload's, so the client sees the identifiers
 * it would see without the offload. Until the offload delivers its first QoS 1 message to the
 * client the broker's identifiers go through unchanged and set where the sequence is (a
 * resumed session continues the broker's); from then on each new broker PUBLISH takes the next
 * one. 0 when the space is exhausted. */
static uint16_t pid_for_broker(struct mqo_conn *c, uint16_t b)
{
    uint64_t v;
    if (mqo_map_get(&cpids(c)->bpid, b, &v))
        return (uint16_t)v;
    uint16_t cp = b;
    if (c->eng_pids || mqo_map_get(&cpids(c)->cpid, cp, NULL)) {
        cp = eng_pid_alloc(c);
        if (!cp)
            return 0;
    } else {
        c->pid_cursor = (uint16_t)(b + 1) ? (uint16_t)(b + 1) : 1;
    }
    struct conn_pids *m = cpids_get(c);
    if (!m)
        return 0;
    if (mqo_map_put(&m->cpid, cp, PID_BROKER | b) || mqo_map_put(&m->bpid, b, cp)) {
        mqo_map_del(&m->cpid, cp);
        cpids_trim(c);
        return 0;
    }
    c->broker_inflight++;
    return cp;
}

const struct conn_pids eng_no_pids;

void cpids_trim(struct mqo_conn *c)
{
    struct conn_pids *m = c->pids;
    if (!m || m->cpid.n || m->bpid.n || m->pt_acks.n)
        return;
    mqo_map_free(&m->cpid);
    mqo_map_free(&m->bpid);
    mqo_map_free(&m->pt_acks);
    free(m);
    c->pids = NULL;
}

uint16_t eng_pid_alloc(struct mqo_conn *c)
{
    if (cpids(c)->cpid.n >= 65535)
        return 0;
    for (;;) {
        uint16_t p = c->pid_cursor++;
        if (c->pid_cursor == 0)
            c->pid_cursor = 1;
        if (p && !mqo_map_get(&cpids(c)->cpid, p, NULL))
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
        if (!mqo_map_get(&cpids(c)->bpid, pk->pid, &v)) {
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

static void release_held(struct mqo_conn *c);
static int s2c_must_hold(struct mqo_conn *c, uint16_t pid);

/* handle_packet: the packet waits (S2C, for a Receive Maximum slot); nothing was done */
#define HOLD 1

/* C2S PUBACK/PUBREC/PUBCOMP/PUBREL with identifier pid: the client answering a PUBLISH on its
 * S2C stream (or, for PUBREL, continuing its own QoS 2 publish, which is not remapped).
 * p[0..n) is the packet, or its first bytes when it is streamed (n >= hdr_len + 2); the
 * identifier is at hdr_len. Returns 1 when the offload took the bytes (the rest of a streamed
 * packet too), 0 when they went on. */
static int ack_route(struct mqo_conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                     size_t hdr_len, const uint8_t *p, size_t n)
{
    struct mqo_engine *e = c->eng;
    uint64_t v;
    if (type == MQO_PUBREL || !mqo_map_get(&cpids(c)->cpid, pid, &v)) {
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    if (v == PID_ENGINE) {
        if (type != MQO_PUBACK) {
            /* PUBREC or PUBCOMP answering a QoS 1 delivery: the broker closes such a client
             * (a protocol error, without DISCONNECT). It never sent this message, so it is
             * given the identifier 0 instead, which it refuses the same way. */
            static const uint8_t zero[2];
            eng_relay(c, 0, "PUBREC/PUBCOMP answering a QoS 1 delivery");
            eng_forward_patched(c, MQO_C2S, p, n, hdr_len, zero, 2);
            return 0;
        }
        /* our own delivery: the broker never sent it, so it never sees its ack */
        eng_consume(c, MQO_C2S, n);
        mqo_map_del(&c->pids->cpid, pid); /* found above: the maps exist */
        if (c->eng_inflight)
            c->eng_inflight--;
        e->st.pubacks_absorbed++;
        release_held(c);
        return 1;
    }
    uint16_t b = (uint16_t)v;
    int done = type == MQO_PUBACK || type == MQO_PUBCOMP || (type == MQO_PUBREC && reason >= 0x80);
    if (done) {
        mqo_map_del(&c->pids->cpid, pid);
        mqo_map_del(&c->pids->bpid, b);
        if (c->broker_inflight)
            c->broker_inflight--;
    }
    if (b == pid) {
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    uint8_t patch[2];
    put16(patch, b);
    eng_forward_patched(c, MQO_C2S, p, n, hdr_len, patch, 2);
    return 0;
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
        if (!c->alias || !mqo_map_get(&c->alias[s], a, &v))
            return 0;
        struct sfilter *f = (struct sfilter *)(uintptr_t)v;
        t->p = f->f;
        t->len = f->len;
        return 1;
    }
    struct sfilter *f = NULL;
    if (!c->alias && !(c->alias = calloc(2, sizeof *c->alias)))
        return 1;
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
        struct mqo_str mf;
        uint8_t *heap;
        /* in the broker's terms: with a mount point, a filter it makes invalid (a wildcard
         * glued to the prefix) matches nothing there, and is refused by the trie here */
        int mrc = eng_mounted(e, se.filter, &mf, NULL, 0, &heap);
        if (mrc == -E2BIG) {
            /* longer than any topic the broker could match it against: matches nothing */
            eng_relay(c, 1, "a filter too long under the mount point");
            continue;
        }
        if (mrc != 0) {
            pending_free(pd);
            return -ENOMEM;
        }
        pe->filt.f = heap ? heap : memdup(mf.p, mf.len);
        if (!pe->filt.f) {
            pending_free(pd);
            return -ENOMEM;
        }
        pe->filt.len = mf.len;
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
            .no_local = c->bridge || (c->version == MQO_MQTT_V5 && (se.opts & MQO_SUBOPT_NO_LOCAL)),
            .rap = c->bridge || (c->version == MQO_MQTT_V5 && (se.opts & MQO_SUBOPT_RAP)),
            .rh = c->version == MQO_MQTT_V5 ? MQO_SUBOPT_RH(se.opts) : 0,
            .sub_id = sub_id,
        };
        /* Until the SUBACK the broker may already deliver: matching messages go to it.
         * A SUBSCRIBE sent before the CONNACK was seen is kept under a private session. */
        struct session *s = c->sess;
        if (!s) {
            if (!c->pre && !(c->pre = eng_session_new(NULL, 0))) {
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
        eng_session_sub_add(s, pe->filt.f, pe->filt.len);
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
            o.qos = code > 2 ? 2 : code; /* a code the broker should not send: never offloaded */
            o.flags = s->held ? MQO_SUB_HELD : 0;
            int existed = mqo_trie_get(e->trie, pe->filt.f, pe->filt.len, s, NULL);
            if (mqo_trie_add(e->trie, pe->filt.f, pe->filt.len, s, &o) == 0 && !existed)
                e->st.subscriptions++;
            eng_session_sub_add(s, pe->filt.f, pe->filt.len);
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

static int c2s_connect(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n)
{
    if (c->connect_seen) {
        /* a second CONNECT is a protocol error the broker handles: pass it on */
        c->live = 0;
        eng_forward(c, MQO_C2S, p, n);
        eng_relay(c, 0, "a second CONNECT");
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
        if (c->eng->cfg.username_as_clientid && c->user) {
            /* the broker's client id (sessions, ACL %c) is the username */
            free(c->cid);
            c->cid = memdup(c->user, c->user_len);
            c->cid_len = c->user_len;
        }
    }
    if (!c->cid || (c->has_user && !c->user))
        return -ENOMEM;
    /* Mosquitto treats a bridge (protocol level with bit 7) as if every subscription it
     * makes had no-local and retain-as-published */
    c->bridge = pk->u.connect.bridge != 0;
    /* as the broker counts its own deliveries in flight: the client's Receive Maximum when it
     * gives one (below), else the broker's max_inflight_messages */
    c->recv_max = c->eng->cfg.max_inflight_messages;
    if (c->version != MQO_MQTT_V5) {
        eng_forward(c, MQO_C2S, p, n);
        return 0;
    }
    const struct mqo_props *pr = &pk->props;
    if (MQO_PROP_HAS(pr, MQO_PROP_SESSION_EXPIRY))
        c->session_expiry = pr->session_expiry;
    if (MQO_PROP_HAS(pr, MQO_PROP_MAXIMUM_PACKET_SIZE))
        c->client_max_packet = pr->maximum_packet_size;
    /* the client's Receive Maximum is not changed: it bounds the broker's deliveries and the
     * offload's together (s2c_must_hold, decide) */
    if (MQO_PROP_HAS(pr, MQO_PROP_RECEIVE_MAXIMUM))
        c->recv_max = pr->receive_maximum;
    eng_forward(c, MQO_C2S, p, n);
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
            conn_cid_unshare(c);
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
    /* An MQTT 3.1 CONNACK has no session-present flag: a connect without clean session
     * resumes whatever session the broker holds for the client id, so it counts as present */
    int present = c->version == MQO_MQTT_V31 ? !c->clean : pk->u.connack.session_present;
    struct session *s;
    if (c->cid_len == 0) {
        /* id generated by the broker and not told to us: a private, clean session; ACL
         * patterns with %c cannot be evaluated for it */
        s = eng_session_new(NULL, 0);
        if (!s)
            return -ENOMEM;
        c->acl_unknown = 1;
    } else {
        s = session_find(e, c->cid, c->cid_len);
        if (s && s->conn && s->conn != c) {
            /* session taken over: the broker disconnects the old connection */
            struct mqo_conn *old = s->conn;
            conn_cid_unshare(old);
            old->live = 0;
            old->sess = NULL;
            s->conn = NULL;
            bv_conn_changed(old);
        }
        if (!s) {
            s = eng_session_new(c->cid, c->cid_len);
            if (!s || session_register(e, s)) {
                free(s);
                return -ENOMEM;
            }
            if (present) {
                session_set_known(e, s, 0);
                char who[200];
                mqo_warn("%s resumed a broker session the offload has not seen; its "
                         "subscriptions are unknown, so every PUBLISH goes to the broker until "
                         "that session ends", mqo_conn_who(c, who, sizeof who));
            }
        } else if (!present) {
            /* the broker has no old session: whatever we held for it is gone */
            session_clear_subs(e, s);
            session_set_known(e, s, 1);
            s->held = 0;
        }
        s->expire_ns = UINT64_MAX;
    }
    s->persistent = persistent != 0;
    s->conn = c;
    c->sess = s;
    conn_cid_share(c, s);
    c->live = 1;
    bv_mark(c); /* after this CONNACK, in the client's stream toward the broker */
    return 0;
}

/* ---- input ---- */

static void client_ping(struct mqo_conn *c)
{
    if (c->ping_n < 64) {
        c->ping_fifo &= ~(1ull << c->ping_n); /* 0: the client's own */
        c->ping_n++;
    }
}

static int handle_c2s(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n,
                      uint64_t now)
{
    int rc = 0;
    switch (pk->type) {
    case MQO_CONNECT:
        return c2s_connect(c, pk, p, n);
    case MQO_PUBLISH:
        return eng_publish(c, pk, p, n, now);
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE:
        rc = c2s_subscribe(c, pk);
        break;
    case MQO_DISCONNECT:
        if (c->version == MQO_MQTT_V5 && MQO_PROP_HAS(&pk->props, MQO_PROP_SESSION_EXPIRY)) {
            int changed = c->session_expiry != pk->props.session_expiry;
            c->session_expiry = pk->props.session_expiry;
            if (c->sess)
                c->sess->persistent = c->session_expiry > 0;
            if (changed)
                bv_expiry_changed(c); /* before the DISCONNECT: the broker reads it first */
        }
        c->live = 0;
        break;
    default:
        break;
    }
    eng_forward(c, MQO_C2S, p, n);
    return rc;
}

/* Would Mosquitto 2.0.11 accept this PUBACK/PUBREC/PUBCOMP (handle__pubackcomp,
 * handle__pubrec)? It reads the identifier, for v5 a reason code (any) and, when more bytes
 * follow, a property block; flags and trailing bytes are not checked. p[0..n) is the whole
 * packet. */
static int ack_acceptable(const struct mqo_conn *c, const struct mqo_frame *f, const uint8_t *p,
                          size_t n)
{
    if (f->remaining < 2)
        return 0;
    if (c->version != MQO_MQTT_V5 || f->remaining <= 3)
        return 1;
    const uint8_t *q = p + f->hdr_len + 3, *end = p + n;
    uint32_t len = 0;
    for (unsigned i = 0;; i++) {
        if (q >= end || i == 4)
            return 0;
        len |= (uint32_t)(*q & 0x7f) << (7 * i);
        if (!(*q++ & 0x80))
            break;
    }
    if ((size_t)(end - q) < len)
        return 0;
    struct mqo_props pr;
    return mqo_props_parse(q, len, f->type == MQO_PUBREC ? MQO_PUBREC : MQO_PUBACK, MQO_C2S,
                           &pr) == 0;
}

/* A client's PUBACK/PUBREC/PUBREL/PUBCOMP: parsed only as far as the engine needs (the
 * identifier, a v5 reason code), since the broker judges the rest; p[0..n) is the packet, or
 * its first n bytes when it is streamed (whole = 0). Returns 1 when the offload took it. */
static int c2s_ack_packet(struct mqo_conn *c, const struct mqo_frame *f, const uint8_t *p,
                          size_t n, int whole)
{
    uint16_t pid = f->remaining >= 2 && n >= f->hdr_len + 2u
                       ? (uint16_t)(p[f->hdr_len] << 8 | p[f->hdr_len + 1])
                       : 0;
    uint8_t reason = c->version == MQO_MQTT_V5 && f->remaining > 2 && n > f->hdr_len + 2u
                         ? p[f->hdr_len + 2]
                         : 0;
    uint64_t v;
    if (pid && mqo_map_get(&cpids(c)->cpid, pid, &v) && v == PID_ENGINE && f->type != MQO_PUBREL &&
        (!whole || !ack_acceptable(c, f, p, n))) {
        /* an acknowledgement of ours the broker would refuse as it stands (or that is too
         * large to check): the broker judges it; if it accepts it, the client is done with
         * the delivery */
        eng_relay(c, 0, "an acknowledgement it may refuse");
        eng_forward(c, MQO_C2S, p, n);
        mqo_map_del(&c->pids->cpid, pid); /* found above: the maps exist */
        if (c->eng_inflight)
            c->eng_inflight--;
        release_held(c);
        return 0;
    }
    if (!pid) {
        eng_forward(c, MQO_C2S, p, n); /* the broker refuses it */
        return 0;
    }
    return ack_route(c, f->type, pid, reason, f->hdr_len, p, n);
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
        if (pk->u.publish.qos && s2c_must_hold(c, pk->pid))
            return HOLD;
        order_seen(c, pk);
        if (pk->u.publish.qos == 0)
            break;
        return s2c_remap(c, pk, p, n, pk->u.publish.pid_off);
    case MQO_PUBREL:
        return s2c_remap(c, pk, p, n, pk->hdr_len);
    case MQO_PUBACK:
    case MQO_PUBREC:
    case MQO_PUBCOMP:
        order_ack_seen(c, pk);
        break;
    case MQO_UNSUBACK:
        if (bv_unsuback(c, pk->pid)) {
            eng_consume(c, MQO_S2C, n); /* the answer to the bind marker */
            return 0;
        }
        s2c_suback(c, pk);
        break;
    case MQO_SUBACK:
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

/* A packet the engine does not decode (or will not judge): it goes on unchanged, the broker
 * judges it, and the connection is relayed from now on. p[0..n) is the packet, or the part of
 * it that is here (forward = 0: the caller passes it on). */
static void undecodable(struct mqo_conn *c, enum mqo_dir in, const struct mqo_frame *f,
                        const uint8_t *p, size_t n, int forward, const char *why)
{
    struct mqo_engine *e = c->eng;
    uint8_t t = f->type;
    e->st.protocol_errors++;
    char what[96];
    snprintf(what, sizeof what, "%s %s %s", in == MQO_C2S ? "client" : "broker",
             mqo_mqtt_type_name(t), why);
    if (in == MQO_C2S && t == MQO_CONNECT && !c->connect_seen) {
        /* what the broker makes of it is unknown to us: its protocol level at least, when
         * the bytes show one, so that the later packets are read as they are meant */
        c->connect_seen = 1;
        size_t h = f->hdr_len;
        if (n >= h + 2) {
            size_t nl = (size_t)(p[h] << 8 | p[h + 1]);
            uint8_t lvl = n > h + 2 + nl ? p[h + 2 + nl] & 0x7f : 0;
            if (lvl >= MQO_MQTT_V31 && lvl <= MQO_MQTT_V5)
                c->version = lvl;
        }
    }
    if (forward)
        eng_forward(c, in, p, n);
    int unknown = in == MQO_C2S ? t == MQO_CONNECT || t == MQO_SUBSCRIBE
                                : t == MQO_CONNACK || t == MQO_SUBACK || t == MQO_UNSUBACK;
    eng_relay(c, unknown, what);
}

/* Handles one whole packet p[0..n) with fixed header f. Returns 0, HOLD (S2C: nothing done,
 * the packet waits), or -errno for a limit of the engine's own. */
static int handle_packet(struct mqo_conn *c, enum mqo_dir in, const struct mqo_frame *f,
                         const uint8_t *p, size_t n, uint64_t now)
{
    struct mqo_pkt pk;
    int rc;
    if (in == MQO_C2S) {
        switch (f->type) {
        case MQO_PUBACK:
        case MQO_PUBREC:
        case MQO_PUBREL:
        case MQO_PUBCOMP:
            c2s_ack_packet(c, f, p, n, 1);
            return 0;
        case MQO_PINGREQ:
            client_ping(c); /* whatever the broker makes of it, it answers it, or closes */
            eng_forward(c, in, p, n);
            return 0;
        default:
            break;
        }
    }
    rc = mqo_mqtt_decode(p, n, c->version ? c->version : MQO_MQTT_V311, in, &pk);
    if (rc < 0) {
        char why[48];
        snprintf(why, sizeof why, "not decoded (reason 0x%02x)", -rc & 0xff);
        undecodable(c, in, f, p, n, 1, why);
        return 0;
    }
    rc = in == MQO_C2S ? handle_c2s(c, &pk, p, n, now) : handle_s2c(c, &pk, p, n, now);
    if (rc == -MQO_RC_RECEIVE_MAX_EXCEEDED)
        rc = -ENOSPC;
    return rc;
}

/* ---- streaming: packets larger than max_buffer ---- */

static void pass_bytes(struct mqo_conn *c, enum mqo_dir in, const uint8_t *p, size_t n)
{
    struct stream *st = &c->in[in];
    if (st->hs)
        st->hs->hstate = order_hash_update(st->hs->hstate, p, n);
    if (st->pass_consume)
        eng_consume(c, in, n);
    else
        eng_forward(c, in, p, n);
}

/* The last byte of a streamed packet went on. */
static void stream_end(struct mqo_conn *c, enum mqo_dir in)
{
    struct stream *st = &c->in[in];
    if (st->hs) {
        uint64_t h = order_hash_end(st->hs->hstate);
        struct mqo_str t = {st->hs->topic.f, st->hs->topic.len};
        if (in == MQO_C2S)
            passthrough_holds(c->eng, c, t, st->qos, st->pid, h, 0, c->eng->now);
        else
            order_seen_hash(c, h);
        free(st->hs->topic.f);
        free(st->hs);
        st->hs = NULL;
    }
    st->pass_consume = 0;
}

/* The framing of stream `in` is lost (a remaining length that is not a varint): everything
 * from here on goes on unchanged; the broker closes such a connection. */
static void lose_framing(struct mqo_conn *c, enum mqo_dir in)
{
    c->in[in].raw = 1;
    c->eng->st.protocol_errors++;
    eng_relay(c, 1, in == MQO_C2S ? "client bytes that are not MQTT framing"
                                  : "broker bytes that are not MQTT framing");
}

/* Starts passing a packet of f->total > max_buffer bytes, of which p[0..n) are here: its head
 * is handled as a whole packet would be (identifier rewrites, ordering), the rest streams on
 * (st->pass_left). Returns the bytes taken; 0 with st->pass_left still 0 when more bytes are
 * needed for the head, or (*hold) when the packet must wait for a Receive Maximum slot. */
static size_t stream_begin(struct mqo_conn *c, enum mqo_dir in, const struct mqo_frame *f,
                           const uint8_t *p, size_t n, int *hold)
{
    struct mqo_engine *e = c->eng;
    struct stream *st = &c->in[in];
    size_t head = 0;
    *hold = 0;
    uint8_t version = c->version ? c->version : MQO_MQTT_V311;
    if (in == MQO_C2S && f->type >= MQO_PUBACK && f->type <= MQO_PUBCOMP) {
        head = f->hdr_len + 3u; /* identifier, reason code */
        if (n < head)
            return 0;
        st->pass_consume = (uint8_t)c2s_ack_packet(c, f, p, head, 0);
    } else if (f->type == MQO_PUBLISH) {
        struct mqo_pkt pk;
        ssize_t h = mqo_mqtt_decode_publish_head(p, n, f, version, in, &pk);
        if (h == 0 && n < e->cfg.max_buffer)
            return 0;
        if (h <= 0) {
            undecodable(c, in, f, p, n, 0, h == 0 ? "head too large" : "not decoded");
        } else {
            if (in == MQO_S2C && pk.u.publish.qos && s2c_must_hold(c, pk.pid)) {
                *hold = 1;
                return 0;
            }
            head = (size_t)h;
            struct mqo_str t = pk.u.publish.topic;
            if (version == MQO_MQTT_V5 && !eng_alias_topic(c, in, &pk, &t))
                t = (struct mqo_str){0};
            if (in == MQO_C2S) {
                e->st.publish_in++;
                e->st.passthrough++;
                e->st.pt_reason[MQO_PT_STREAMED]++;
                c->last_reason = MQO_PT_STREAMED;
            }
            /* the ordering rules need the message's hash: the payload is hashed as it passes
             * (a client's topic in the broker's terms, as the broker delivers it) */
            struct mqo_str mt = t;
            uint8_t *heap = NULL;
            if (in == MQO_C2S && t.len && eng_mounted(e, t, &mt, NULL, 0, &heap) != 0)
                mt.len = 0;
            struct stream_hash *hs = NULL;
            if (mt.len && (in == MQO_C2S || c->n_exp) && (hs = malloc(sizeof *hs)) != NULL &&
                !(hs->topic.f = heap ? heap : memdup(mt.p, mt.len))) {
                free(hs);
                hs = NULL;
            }
            if (hs) {
                heap = NULL;
                hs->topic.len = mt.len;
                hs->hstate = order_hash_begin(mt);
                st->hs = hs;
                st->qos = pk.u.publish.qos;
                st->pid = pk.pid;
            }
            free(heap);
            if (in == MQO_S2C && pk.u.publish.qos) {
                if (s2c_remap(c, &pk, p, head, pk.u.publish.pid_off) != 0) {
                    fail_conn(c, -ENOSPC);
                    return 0;
                }
            } else {
                eng_forward(c, in, p, head);
            }
        }
    } else {
        /* the engine needs the heads above only; anything else this large goes on as it is */
        undecodable(c, in, f, p, n, 0, "too large to hold");
    }
    e->st.streamed++;
    st->pass_left = f->total - (uint32_t)head;
    return head;
}

/* Processes b[0..len) of stream `in`. Returns the bytes taken; the rest waits (an incomplete
 * packet, or a held one). */
static size_t feed(struct mqo_conn *c, enum mqo_dir in, const uint8_t *b, size_t len,
                   uint64_t now)
{
    struct mqo_engine *e = c->eng;
    struct stream *st = &c->in[in];
    size_t done = 0;
    while (done < len && !c->dead) {
        const uint8_t *q = b + done;
        size_t left = len - done;
        if (st->raw) {
            eng_forward(c, in, q, left);
            return len;
        }
        if (st->pass_left) {
            size_t k = left < st->pass_left ? left : st->pass_left;
            pass_bytes(c, in, q, k);
            st->pass_left -= (uint32_t)k;
            done += k;
            if (!st->pass_left)
                stream_end(c, in);
            continue;
        }
        if (st->held)
            break;
        if (in == MQO_C2S && !c->connect_seen && (q[0] >> 4) != MQO_CONNECT) {
            /* the broker refuses a first packet that is not a CONNECT at its first byte,
             * without waiting for a "packet" that may never come (an HTTP request, say) */
            st->raw = 1;
            e->st.protocol_errors++;
            eng_relay(c, 0, "a first packet that is not a CONNECT");
            continue;
        }
        struct mqo_frame f = {0};
        ssize_t t = mqo_mqtt_frame(q, left, 0, &f);
        if (t < 0) {
            lose_framing(c, in);
            continue;
        }
        if (f.total > e->cfg.max_buffer) {
            /* never held whole, however it arrives: it streams on */
            int hold;
            size_t k = stream_begin(c, in, &f, q, left, &hold);
            done += k;
            if (hold || (!k && !st->pass_left))
                break; /* held, or more bytes needed for its head */
            if (k && !st->pass_left)
                stream_end(c, in); /* the head was all of it */
            continue;
        }
        if (t == 0)
            break; /* the rest of the packet is still to come */
        int rc = handle_packet(c, in, &f, q, (size_t)t, now);
        if (rc == HOLD)
            break;
        if (rc < 0) {
            fail_conn(c, rc);
            break;
        }
        done += (size_t)t;
    }
    return done;
}

/* Appends to the bytes stream st keeps (its buffer allocated now if it had none). 0 or -ENOMEM. */
static int keep_partial(struct stream *st, const uint8_t *p, size_t n)
{
    if (!st->partial && !(st->partial = calloc(1, sizeof *st->partial)))
        return -ENOMEM;
    return mqo_buf_append(st->partial, p, n);
}

/* Frees the (empty) buffer of stream st. */
static void drop_partial(struct stream *st)
{
    if (st->partial)
        mqo_buf_free(st->partial);
    free(st->partial);
    st->partial = NULL;
}

/* The bytes of stream `in` the engine keeps (an incomplete or held packet) and those still
 * to come are taken from p[0..n). */
static void stream_input(struct mqo_conn *c, enum mqo_dir in, const uint8_t *p, size_t n,
                         uint64_t now)
{
    struct mqo_buf *part = c->in[in].partial;
    size_t done;
    if (part && part->len) {
        if (n && mqo_buf_append(part, p, n)) {
            eng_consume(c, in, n);
            fail_conn(c, -ENOMEM);
            return;
        }
        done = feed(c, in, part->data, part->len, now);
        if (c->dead) {
            if (part->len > done)
                eng_consume(c, in, part->len - done);
            done = part->len;
        }
        mqo_buf_consume(part, done);
        if (!part->len) /* nothing kept: an idle connection holds no buffer */
            drop_partial(&c->in[in]);
        return;
    }
    done = feed(c, in, p, n, now);
    if (c->dead) {
        if (n > done)
            eng_consume(c, in, n - done);
        return;
    }
    if (done < n && keep_partial(&c->in[in], p + done, n - done)) {
        eng_consume(c, in, n - done);
        fail_conn(c, -ENOMEM);
    }
}

int mqo_engine_input(struct mqo_engine *e, struct mqo_conn *c, enum mqo_dir in,
                     const uint8_t *p, size_t n, uint64_t now_ns)
{
    if (now_ns > e->now)
        e->now = now_ns;
    if (c->dead) {
        if (n)
            eng_consume(c, in, n);
        return -ENOMEM;
    }
    if (in == MQO_S2C && c->in[in].held) {
        /* a broker PUBLISH waits for a Receive Maximum slot: what follows waits behind it */
        if (n && keep_partial(&c->in[in], p, n)) {
            eng_consume(c, in, n);
            fail_conn(c, -ENOMEM);
        }
        return c->dead ? -ENOMEM : 0;
    }
    stream_input(c, in, p, n, now_ns);
    return c->dead ? -ENOMEM : 0;
}

size_t mqo_engine_input_room(const struct mqo_conn *c, enum mqo_dir in)
{
    const struct stream *st = &c->in[in];
    if (st->raw || st->pass_left)
        return SIZE_MAX;
    size_t max = c->eng->cfg.max_buffer;
    size_t held = st->partial ? st->partial->len : 0;
    return held >= max ? 0 : max - held;
}

/* ---- Receive Maximum ---- */

/* A broker PUBLISH with QoS > 0 and identifier pid is about to go to client c: would it make
 * the client's unacknowledged QoS > 0 messages, the broker's and the offload's together,
 * exceed its Receive Maximum? Then it waits (the S2C stream is held) until one of the
 * offload's is acknowledged. (With none of ours in flight the broker keeps its own count.) */
static int s2c_must_hold(struct mqo_conn *c, uint16_t pid)
{
    if (!c->recv_max || !c->eng_inflight || mqo_map_get(&cpids(c)->bpid, pid, NULL))
        return 0;
    if ((uint32_t)c->broker_inflight + c->eng_inflight < c->recv_max)
        return 0;
    if (!c->in[MQO_S2C].held)
        c->eng->st.s2c_holds++;
    c->in[MQO_S2C].held = 1;
    return 1;
}

/* One of the offload's deliveries to c was acknowledged: a held broker PUBLISH may go on. */
static void release_held(struct mqo_conn *c)
{
    struct stream *st = &c->in[MQO_S2C];
    if (!st->held || c->releasing)
        return;
    st->held = 0;
    c->releasing = 1;
    stream_input(c, MQO_S2C, NULL, 0, c->eng->now);
    c->releasing = 0;
}

/* ---- timers ---- */

static void tick_conn(struct mqo_engine *e, struct mqo_conn *c, uint64_t now)
{
    /* MQTT keep-alive: the broker must see something within 1.5 x keep-alive; when the
     * client's traffic was consumed, ping on its behalf at half the interval. Only then: a
     * client that went silent must time out at the broker as it would without us (a ping
     * goes at most half an interval after its last consumed packet). */
    if (c->live && c->keepalive && c->unseen_activity && c->ping_n < 64 &&
        eng_at_boundary(c, MQO_C2S) &&
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
    bv_mark(c); /* one that could not be sent at its CONNACK, or the view synced since */
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
    /* a connection the walk closes lets a later one move back past the cursor: it is
     * visited in the next pass */
    for (size_t k = mqo_slice_share(&e->conn_credit, nc, dt, SCAN_NS); k; k--) {
        struct mqo_conn *c = eng_conn_next(e, &e->scan_slot);
        if (!c) {
            e->scan_slot = 0;
            if (!(c = eng_conn_next(e, &e->scan_slot)))
                break;
        }
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

/* ---- takeover (snap.c) ---- */

int eng_session_register(struct mqo_engine *e, struct session *s) { return session_register(e, s); }
void eng_session_free(struct mqo_engine *e, struct session *s) { session_free(e, s); }

struct mqo_conn *mqo_engine_conn_find(struct mqo_engine *e, uint64_t id)
{
    return eng_conn_by_id(e, id);
}
void mqo_conn_set_ud(struct mqo_conn *c, void *ud) { c->ud = ud; }
size_t mqo_engine_conn_count(const struct mqo_engine *e)
{
    return e->conns.n;
}
