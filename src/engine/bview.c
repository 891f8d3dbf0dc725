/* The broker's view: the sessions and subscriptions the broker plugin reports (engine.h,
 * "The broker's view").
 *
 * The view mirrors the broker's sessions by client id (struct bv_sess), each with its
 * filters. A session is *covered* when the engine itself knows it: its current broker
 * connection is bound to a live engine connection whose session is known (not blind) and
 * whose subscriptions the engine has not lost track of (not unknown). A covered session's
 * filters stay out of the table: the engine learned them from the stream, with their options,
 * and delivers to them. Every other session's filters are in the table under a foreign owner
 * (struct session with foreign = 1, never a live connection), so publish.c passes a matching
 * PUBLISH to the broker, which delivers it (MQO_PT_FOREIGN, or MQO_PT_HELD while the session
 * is offline). Coverage is recomputed whenever its inputs change (bv_update).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "engine/engine_int.h"

struct bv_filter {
    uint8_t *f;
    uint16_t len;
    uint8_t qos;
};

struct bv_sess {
    struct bv_sess *hnext;
    uint8_t *cid;
    uint16_t cid_len;
    uint8_t online;
    uint64_t pconn;
    struct bv_filter *f;
    size_t n, cap;
    struct session *own; /* foreign owner while its filters are in the table */
};

static uint64_t bv_hash(const uint8_t *cid, size_t n) { return mqo_hash64(cid, n, 0xb71e); }

static struct bv_sess *bv_find(const struct mqo_engine *e, const uint8_t *cid, size_t n)
{
    if (!e->bv.nb)
        return NULL;
    for (struct bv_sess *x = e->bv.b[bv_hash(cid, n) & (e->bv.nb - 1)]; x; x = x->hnext)
        if (x->cid_len == n && (n == 0 || memcmp(x->cid, cid, n) == 0))
            return x;
    return NULL;
}

/* The session cid, created when absent (NULL on ENOMEM or an id longer than MQTT allows). */
static struct bv_sess *bv_get(struct mqo_engine *e, const uint8_t *cid, size_t n)
{
    struct bv_sess *x = bv_find(e, cid, n);
    if (x || n > 65535)
        return x;
    if (e->bv.n + 1 > e->bv.nb) {
        size_t nb = e->bv.nb ? e->bv.nb * 2 : 64;
        struct bv_sess **b = calloc(nb, sizeof *b);
        if (!b)
            return NULL;
        for (size_t i = 0; i < e->bv.nb; i++)
            for (struct bv_sess *y = e->bv.b[i], *ny; y; y = ny) {
                ny = y->hnext;
                size_t h = bv_hash(y->cid, y->cid_len) & (nb - 1);
                y->hnext = b[h];
                b[h] = y;
            }
        free(e->bv.b);
        e->bv.b = b;
        e->bv.nb = nb;
    }
    x = calloc(1, sizeof *x);
    if (!x || !(x->cid = malloc(n ? n : 1))) {
        free(x);
        return NULL;
    }
    if (n)
        memcpy(x->cid, cid, n);
    x->cid_len = (uint16_t)n;
    size_t h = bv_hash(cid, n) & (e->bv.nb - 1);
    x->hnext = e->bv.b[h];
    e->bv.b[h] = x;
    e->bv.n++;
    e->st.bv_sessions++;
    return x;
}

static ssize_t bv_index(const struct bv_sess *x, const uint8_t *f, size_t len)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->f[i].len == len && memcmp(x->f[i].f, f, len) == 0)
            return (ssize_t)i;
    return -1;
}

/* Options of x's filters in the table: held while the session is offline (the broker queues
 * for it), else a live client the offload does not carry. */
static struct mqo_sub_opts bv_opts(const struct bv_sess *x, uint8_t qos)
{
    return (struct mqo_sub_opts){.qos = qos, .flags = x->online ? 0 : MQO_SUB_HELD};
}

static int bv_table_add(struct mqo_engine *e, struct bv_sess *x, const struct bv_filter *f)
{
    struct mqo_sub_opts o = bv_opts(x, f->qos);
    int existed = mqo_trie_get(e->trie, f->f, f->len, x->own, NULL);
    int rc = mqo_trie_add(e->trie, f->f, f->len, x->own, &o);
    if (rc == 0 && !existed)
        e->st.bv_table++;
    /* -EINVAL: a string the broker holds that is not a valid filter here; the broker matches
     * nothing with it either (its own check refused it at SUBSCRIBE) */
    return rc == -EINVAL ? 0 : rc;
}

static void bv_table_del(struct mqo_engine *e, struct bv_sess *x, const struct bv_filter *f)
{
    if (mqo_trie_del(e->trie, f->f, f->len, x->own) == 0)
        e->st.bv_table--;
}

/* Takes x's filters out of the table. */
static void bv_out(struct mqo_engine *e, struct bv_sess *x)
{
    if (!x->own)
        return;
    for (size_t i = 0; i < x->n; i++)
        bv_table_del(e, x, &x->f[i]);
    free(x->own);
    x->own = NULL;
}

/* The engine connection bound to x's current broker connection, NULL when none. */
static struct mqo_conn *bv_bound_conn(struct mqo_engine *e, const struct bv_sess *x)
{
    uint64_t id;
    if (!x->online || !x->pconn || !mqo_map_get(&e->bv.bind, x->pconn, &id))
        return NULL;
    return eng_conn_by_id(e, id);
}

static int bv_covered(struct mqo_engine *e, const struct bv_sess *x)
{
    struct mqo_conn *c = bv_bound_conn(e, x);
    return c && !c->dead && !c->unknown && c->sess && c->sess->known && !c->sess->foreign;
}

/* Puts x's filters into the table or takes them out, as its coverage says. */
static int bv_update(struct mqo_engine *e, struct bv_sess *x)
{
    int want = eng_bv_synced(e) && !bv_covered(e, x);
    if (!want) {
        bv_out(e, x);
        return 0;
    }
    if (x->own)
        return 0;
    if (!(x->own = eng_session_new(x->cid, x->cid_len)))
        return -ENOMEM;
    x->own->foreign = 1;
    for (size_t i = 0; i < x->n; i++) {
        int rc = bv_table_add(e, x, &x->f[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void bv_sess_free(struct mqo_engine *e, struct bv_sess *x)
{
    bv_out(e, x);
    e->st.bv_subscriptions -= x->n;
    for (size_t i = 0; i < x->n; i++)
        free(x->f[i].f);
    free(x->f);
    free(x->cid);
    free(x);
    e->bv.n--;
    e->st.bv_sessions--;
}

static void bv_unlink(struct mqo_engine *e, struct bv_sess *x)
{
    struct bv_sess **pp = &e->bv.b[bv_hash(x->cid, x->cid_len) & (e->bv.nb - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == x) {
            *pp = x->hnext;
            break;
        }
}

static void bv_clear(struct mqo_engine *e)
{
    for (size_t i = 0; i < e->bv.nb; i++)
        while (e->bv.b[i]) {
            struct bv_sess *x = e->bv.b[i];
            e->bv.b[i] = x->hnext;
            bv_sess_free(e, x);
        }
    mqo_map_free(&e->bv.bind);
    e->bv.bind = (struct mqo_map){0};
    struct mqo_conn *c;
    for (size_t it = 0; (c = eng_conn_next(e, &it));)
        if (c->bv)
            c->bv->pconn = 0;
    e->st.bv_bound = 0;
}

void bv_free(struct mqo_engine *e)
{
    bv_clear(e);
    free(e->bv.b);
}

/* Drops the filters of x. */
static void bv_reset_filters(struct mqo_engine *e, struct bv_sess *x)
{
    if (x->own)
        for (size_t i = 0; i < x->n; i++)
            bv_table_del(e, x, &x->f[i]);
    for (size_t i = 0; i < x->n; i++)
        free(x->f[i].f);
    e->st.bv_subscriptions -= x->n;
    x->n = 0;
}

/* ---- the plugin's reports ---- */

int mqo_engine_bv_begin(struct mqo_engine *e, const char *token)
{
    size_t tl = strlen(token);
    if (tl == 0 || tl >= sizeof e->bv.token ||
        strspn(token, "0123456789abcdefghijklmnopqrstuvwxyz") != tl)
        return -EINVAL;
    bv_clear(e);
    e->bv.state = BV_SYNCING;
    e->bv.gen++;
    memcpy(e->bv.token, token, tl + 1);
    e->st.bv_state = BV_SYNCING;
    return 0;
}

void mqo_engine_bv_synced(struct mqo_engine *e)
{
    if (e->bv.state != BV_SYNCING)
        return;
    e->bv.state = BV_SYNCED;
    e->st.bv_state = BV_SYNCED;
    e->st.bv_syncs++;
    for (size_t i = 0; i < e->bv.nb; i++)
        for (struct bv_sess *x = e->bv.b[i]; x; x = x->hnext)
            if (bv_update(e, x))
                mqo_warn("broker view: out of memory entering session '%.*s'", (int)x->cid_len,
                         x->cid);
    struct mqo_conn *c;
    for (size_t it = 0; (c = eng_conn_next(e, &it));) {
        /* messages passed through before may still be inside the broker: the first one
         * offloaded from now on follows an ordering barrier */
        c->barrier_due = 1;
        bv_mark(c);
    }
    mqo_info("broker view synced: %llu sessions, %llu subscriptions (%llu of clients the "
             "offload does not carry)", (unsigned long long)e->st.bv_sessions,
             (unsigned long long)e->st.bv_subscriptions, (unsigned long long)e->st.bv_table);
}

void mqo_engine_bv_lost(struct mqo_engine *e)
{
    if (e->bv.state == BV_OFF)
        return;
    bv_clear(e);
    e->bv.state = BV_OFF;
    e->st.bv_state = BV_OFF;
}

int mqo_engine_bv_session(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                          uint64_t pconn, int online, int reset)
{
    if (e->bv.state == BV_OFF)
        return 0;
    struct bv_sess *x = bv_get(e, cid, cid_len);
    if (!x)
        return -ENOMEM;
    if (reset)
        bv_reset_filters(e, x);
    int flags_change = x->online != (online != 0);
    x->online = online != 0;
    x->pconn = pconn;
    if (flags_change && x->own)
        for (size_t i = 0; i < x->n; i++)
            bv_table_add(e, x, &x->f[i]); /* held <-> live */
    return bv_update(e, x);
}

int mqo_engine_bv_sub(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                      const uint8_t *filter, size_t len, uint8_t qos)
{
    if (e->bv.state == BV_OFF)
        return 0;
    if (len == 0 || len > 65535 || qos > 2)
        return -EINVAL;
    struct bv_sess *x = bv_get(e, cid, cid_len);
    if (!x)
        return -ENOMEM;
    ssize_t i = bv_index(x, filter, len);
    if (i < 0) {
        if (x->n == x->cap) {
            size_t cap = x->cap ? x->cap * 2 : 4;
            struct bv_filter *v = realloc(x->f, cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            x->f = v;
            x->cap = cap;
        }
        uint8_t *d = malloc(len);
        if (!d)
            return -ENOMEM;
        memcpy(d, filter, len);
        i = (ssize_t)x->n++;
        x->f[i] = (struct bv_filter){.f = d, .len = (uint16_t)len};
        e->st.bv_subscriptions++;
    }
    x->f[i].qos = qos;
    return x->own ? bv_table_add(e, x, &x->f[i]) : 0;
}

int mqo_engine_bv_unsub(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                        const uint8_t *filter, size_t len)
{
    struct bv_sess *x = bv_find(e, cid, cid_len);
    ssize_t i = x ? bv_index(x, filter, len) : -1;
    if (i < 0)
        return 0;
    if (x->own)
        bv_table_del(e, x, &x->f[i]);
    free(x->f[i].f);
    x->f[i] = x->f[--x->n];
    e->st.bv_subscriptions--;
    return 0;
}

void mqo_engine_bv_end(struct mqo_engine *e, const uint8_t *cid, size_t cid_len)
{
    struct bv_sess *x = bv_find(e, cid, cid_len);
    if (!x)
        return;
    bv_unlink(e, x);
    bv_sess_free(e, x);
}

/* A resumed session of an MQTT 3.x client the engine has not seen (blind): the broker's view
 * holds its subscriptions, which for 3.x carry nothing but a QoS, so the engine can take them
 * over exactly and the session becomes known. */
static void bv_import(struct mqo_engine *e, struct mqo_conn *c, struct bv_sess *x)
{
    struct session *s = c->sess;
    if (!s || s->known || c->version == MQO_MQTT_V5 || c->bridge || c->relay)
        return;
    for (size_t i = 0; i < x->n; i++) {
        struct bv_filter *f = &x->f[i];
        if (mqo_trie_get(e->trie, f->f, f->len, s, NULL))
            continue; /* the stream told the engine already */
        struct mqo_sub_opts o = {.qos = f->qos, .flags = s->held ? MQO_SUB_HELD : 0};
        if (mqo_trie_add(e->trie, f->f, f->len, s, &o) != 0)
            return; /* stays blind */
        e->st.subscriptions++;
        e->st.bv_imported++;
        if (eng_session_sub_add(s, f->f, f->len) != 0)
            return;
    }
    s->known = 1;
    e->st.blind_sessions--;
    mqo_info("client '%.*s': its resumed session's %zu subscriptions are known from the broker",
             (int)x->cid_len, x->cid, x->n);
}

int mqo_engine_bv_bind(struct mqo_engine *e, const uint8_t *cid, size_t cid_len,
                       uint64_t pconn, const char *token, uint64_t conn_id)
{
    if (e->bv.state == BV_OFF || strcmp(token, e->bv.token) != 0 || !pconn)
        return -ESRCH;
    struct mqo_conn *c = eng_conn_by_id(e, conn_id);
    if (!c || c->dead)
        return -ESRCH;
    if (c->cid_len && (c->cid_len != cid_len || memcmp(c->cid, cid, cid_len) != 0))
        return -ESRCH;
    struct conn_bv *b = cbv_get(c);
    if (!b)
        return -ENOMEM;
    if (b->pconn && b->pconn != pconn) {
        mqo_map_del(&e->bv.bind, b->pconn);
        e->st.bv_bound--;
    }
    if (b->pconn != pconn) {
        if (mqo_map_put(&e->bv.bind, pconn, conn_id))
            return -ENOMEM;
        e->st.bv_bound++;
    }
    b->pconn = pconn;
    if (b->cid_len != cid_len || (cid_len && memcmp(b->cid, cid, cid_len) != 0)) {
        uint8_t *d = malloc(cid_len ? cid_len : 1);
        if (!d)
            return -ENOMEM;
        memcpy(d, cid, cid_len);
        free(b->cid);
        b->cid = d;
        b->cid_len = (uint16_t)cid_len;
    }
    struct bv_sess *x = bv_get(e, cid, cid_len);
    if (!x)
        return -ENOMEM;
    if (!x->pconn) {
        x->pconn = pconn; /* a bind before its session (a plugin that skipped it) */
        x->online = 1;
    }
    bv_import(e, c, x);
    return bv_update(e, x);
}

/* ---- from the engine ---- */

void bv_conn_changed(struct mqo_conn *c)
{
    struct mqo_engine *e = c->eng;
    if (e->bv.state == BV_OFF || !cbv_pconn(c))
        return;
    struct conn_bv *b = c->bv;
    if (c->dead) {
        mqo_map_del(&e->bv.bind, b->pconn);
        e->st.bv_bound--;
        b->pconn = 0;
    }
    struct bv_sess *x = b->cid ? bv_find(e, b->cid, b->cid_len) : NULL;
    if (x && bv_update(e, x))
        mqo_warn("broker view: out of memory entering session '%.*s'", (int)x->cid_len, x->cid);
}

/* Largest marker filter: "$mqoff/bind/" + token + "/" + id + "/" + expiry. */
#define MARK_MAX (12 + 32 + 1 + 20 + 1 + 10)

/* Sends c's bind marker (UNSUBSCRIBE) toward the broker. */
static void bv_send_mark(struct mqo_conn *c)
{
    struct mqo_engine *e = c->eng;
    /* an identifier none of the client's SUBSCRIBE/UNSUBSCRIBE awaiting an answer uses: the
     * broker answers in order, so a later one of the client's with the same identifier is
     * answered after the marker */
    uint16_t pid = 0xffff;
    for (struct pending *p = c->pend; p;) {
        if (p->pid != pid) {
            p = p->next;
            continue;
        }
        if (--pid == 0)
            return;
        p = c->pend;
    }
    uint32_t expiry = c->version == MQO_MQTT_V5 ? c->session_expiry : (c->clean ? 0 : 0xffffffffu);
    char f[MARK_MAX + 1];
    int fl = snprintf(f, sizeof f, "$mqoff/bind/%s/%llu/%lu", e->bv.token,
                      (unsigned long long)c->id, (unsigned long)expiry);
    if (fl <= 0 || (size_t)fl > MARK_MAX || !cbv_get(c))
        return;
    uint8_t pkt[5 + 2 + 1 + 2 + MARK_MAX];
    uint32_t rem = 2 + (c->version == MQO_MQTT_V5 ? 1 : 0) + 2 + (uint32_t)fl;
    size_t n = 0;
    pkt[n++] = 0xa2;
    n += mqo_mqtt_varint_put(pkt + n, rem);
    pkt[n++] = (uint8_t)(pid >> 8);
    pkt[n++] = (uint8_t)pid;
    if (c->version == MQO_MQTT_V5)
        pkt[n++] = 0; /* no properties */
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)fl;
    memcpy(pkt + n, f, (size_t)fl);
    n += (size_t)fl;
    if (eng_insert_bytes(c, MQO_C2S, pkt, n) != 0)
        return;
    c->bv->pid = pid;
    c->bv->gen = e->bv.gen;
    e->st.bv_markers++;
}

void bv_mark(struct mqo_conn *c)
{
    struct mqo_engine *e = c->eng;
    if (!eng_bv_synced(e) || cbv_gen(c) == e->bv.gen || cbv_pconn(c) || !c->live || c->dead ||
        c->relay || cbv_pid(c) || !eng_at_boundary(c, MQO_C2S))
        return;
    bv_send_mark(c);
}

void bv_expiry_changed(struct mqo_conn *c)
{
    struct mqo_engine *e = c->eng;
    if (!eng_bv_synced(e) || cbv_gen(c) != e->bv.gen || c->dead || c->relay ||
        !eng_at_boundary(c, MQO_C2S))
        return;
    bv_send_mark(c);
}

int bv_unsuback(struct mqo_conn *c, uint16_t pid)
{
    if (!cbv_pid(c) || pid != c->bv->pid)
        return 0;
    c->bv->pid = 0;
    return 1;
}

void mqo_engine_set_observer(struct mqo_engine *e, void (*fn)(void *ud, uint64_t input_ns,
                                                              int consumed), void *ud)
{
    e->bv.observe = fn;
    e->bv.observe_ud = ud;
}

/* ---- listing ---- */

struct each_sub {
    int (*fn)(void *arg, const struct mqo_sub_info *s);
    void *arg;
};

static int each_sub_cb(void *arg, const uint8_t *filter, size_t len, void *owner,
                       const struct mqo_sub_opts *o)
{
    const struct each_sub *w = arg;
    const struct session *s = owner;
    struct mqo_sub_info si = {
        .cid = s->cid,
        .cid_len = s->cid_len,
        .filter = filter,
        .len = len,
        .qos = o->qos,
        .broker = s->foreign,
        .held = (o->flags & MQO_SUB_HELD) != 0,
        .pending = (o->flags & SUBF_PENDING) != 0,
        .shared = (o->flags & MQO_SUB_SHARED) != 0,
    };
    return w->fn(w->arg, &si);
}

int mqo_engine_each_sub(const struct mqo_engine *e,
                        int (*fn)(void *arg, const struct mqo_sub_info *s), void *arg)
{
    struct each_sub w = {fn, arg};
    return mqo_trie_walk(e->trie, each_sub_cb, &w);
}

int mqo_engine_each_conn(const struct mqo_engine *e,
                         int (*fn)(void *arg, const struct mqo_conn_info *c), void *arg)
{
    const struct mqo_conn *c;
    for (size_t it = 0; (c = eng_conn_next(e, &it));) {
        struct mqo_conn_info ci = {
            .id = c->id,
            .cid = c->cid ? c->cid : (const uint8_t *)"",
            .cid_len = c->cid ? c->cid_len : 0,
            .version = c->version,
            .live = c->live,
            .relay = c->relay,
            .unknown = c->unknown,
            .persistent = c->sess && c->sess->persistent,
            .bridge = c->bridge,
            .bound = cbv_pconn(c),
            .inflight = c->eng_inflight,
            .broker_inflight = c->broker_inflight,
            .recv_max = c->recv_max,
            .last_reason = c->last_reason,
        };
        int rc = fn(arg, &ci);
        if (rc)
            return rc;
    }
    return 0;
}
