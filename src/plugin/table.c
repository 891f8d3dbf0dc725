/* The broker plugin's table of sessions (table.h). */
#include "plugin/table.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"

#define NEVER INT64_MAX
#define EXPIRY_MARGIN_S 2 /* after the broker's own expiry: never before it */

struct pfilter {
    char *f;
    uint8_t qos;
};

struct pconn;

struct psess {
    struct psess *hnext;
    char *cid;
    struct pfilter *f;
    size_t n, cap;
    struct pconn *conn; /* online: its current connection */
    uint64_t last;      /* the number of its last connection */
    int64_t expire_at;  /* offline: when the broker forgets it (NEVER) */
    uint8_t fixed;      /* always there (a bridge) */
    uint8_t protocol;
    char addr[64];
};

struct pconn {
    uint64_t id;
    const void *key;
    struct psess *s;
    char bind[64];   /* "TOKEN/ID" of its bind marker, "" before */
    uint32_t expiry; /* its session expiry interval, from the marker */
    uint8_t expiry_known;
};

struct mqo_ptable {
    mqo_ptable_emit emit;
    void *arg;
    struct psess **b;
    size_t nb, n_sess, n_filters;
    struct mqo_map conns; /* key -> struct pconn * */
    uint64_t next_id;
};

static uint64_t str_hash(const char *s) { return mqo_hash64(s, strlen(s), 0x5e55); }

struct mqo_ptable *mqo_ptable_new(mqo_ptable_emit emit, void *arg)
{
    struct mqo_ptable *t = calloc(1, sizeof *t);
    if (t) {
        t->emit = emit;
        t->arg = arg;
    }
    return t;
}

/* ---- lines ---- */

static void send_obj(struct mqo_ptable *t, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s)
        t->emit(t->arg, s, strlen(s));
    cJSON_free(s);
    cJSON_Delete(o);
}

static cJSON *obj(const char *op, const char *cid)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "op", op);
        if (cid)
            cJSON_AddStringToObject(o, "cid", cid);
    }
    return o;
}

static void emit_session(struct mqo_ptable *t, const struct psess *s, int reset)
{
    cJSON *o = obj("session", s->cid);
    if (!o)
        return;
    cJSON_AddNumberToObject(o, "conn", (double)(s->conn ? s->conn->id : s->last));
    cJSON_AddBoolToObject(o, "online", s->conn != NULL || s->fixed);
    if (reset)
        cJSON_AddBoolToObject(o, "reset", 1);
    if (s->protocol)
        cJSON_AddNumberToObject(o, "protocol", s->protocol);
    if (s->addr[0])
        cJSON_AddStringToObject(o, "addr", s->addr);
    if (s->fixed)
        cJSON_AddBoolToObject(o, "fixed", 1);
    if (s->conn && s->conn->bind[0])
        cJSON_AddStringToObject(o, "bind", s->conn->bind);
    send_obj(t, o);
}

static void emit_filter(struct mqo_ptable *t, const struct psess *s, const char *op,
                        const char *f, int qos)
{
    cJSON *o = obj(op, s->cid);
    if (!o)
        return;
    cJSON_AddStringToObject(o, "filter", f);
    if (qos >= 0)
        cJSON_AddNumberToObject(o, "qos", qos);
    send_obj(t, o);
}

/* ---- sessions ---- */

static struct psess *sess_find(const struct mqo_ptable *t, const char *cid)
{
    if (!t->nb)
        return NULL;
    for (struct psess *s = t->b[str_hash(cid) & (t->nb - 1)]; s; s = s->hnext)
        if (!strcmp(s->cid, cid))
            return s;
    return NULL;
}

static struct psess *sess_get(struct mqo_ptable *t, const char *cid)
{
    struct psess *s = sess_find(t, cid);
    if (s)
        return s;
    if (t->n_sess + 1 > t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 64;
        struct psess **b = calloc(nb, sizeof *b);
        if (!b)
            return NULL;
        for (size_t i = 0; i < t->nb; i++)
            for (struct psess *x = t->b[i], *nx; x; x = nx) {
                nx = x->hnext;
                size_t h = str_hash(x->cid) & (nb - 1);
                x->hnext = b[h];
                b[h] = x;
            }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->cid = strdup(cid))) {
        free(s);
        return NULL;
    }
    s->expire_at = NEVER;
    size_t h = str_hash(cid) & (t->nb - 1);
    s->hnext = t->b[h];
    t->b[h] = s;
    t->n_sess++;
    return s;
}

static void filters_clear(struct mqo_ptable *t, struct psess *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->f[i].f);
    t->n_filters -= s->n;
    s->n = 0;
}

static void conn_free(struct mqo_ptable *t, struct pconn *c)
{
    mqo_map_del(&t->conns, (uint64_t)(uintptr_t)c->key);
    if (c->s && c->s->conn == c)
        c->s->conn = NULL;
    free(c);
}

static void sess_free(struct mqo_ptable *t, struct psess *s)
{
    struct psess **pp = &t->b[str_hash(s->cid) & (t->nb - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    if (s->conn)
        conn_free(t, s->conn);
    filters_clear(t, s);
    free(s->f);
    free(s->cid);
    free(s);
    t->n_sess--;
}

static ssize_t filter_index(const struct psess *s, const char *f)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->f[i].f, f))
            return (ssize_t)i;
    return -1;
}

static int filter_set(struct mqo_ptable *t, struct psess *s, const char *f, size_t len, int qos)
{
    char *d = strndup(f, len);
    if (!d)
        return -ENOMEM;
    ssize_t i = filter_index(s, d);
    if (i >= 0) {
        free(d);
        s->f[i].qos = (uint8_t)qos;
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        struct pfilter *v = realloc(s->f, cap * sizeof *v);
        if (!v) {
            free(d);
            return -ENOMEM;
        }
        s->f = v;
        s->cap = cap;
    }
    s->f[s->n++] = (struct pfilter){.f = d, .qos = (uint8_t)qos};
    t->n_filters++;
    return 0;
}

/* The connection of cl, seen for the first time or again. NULL on ENOMEM. */
static struct pconn *conn_for(struct mqo_ptable *t, const struct mqo_ptable_client *cl)
{
    uint64_t v;
    struct pconn *c = NULL;
    if (mqo_map_get(&t->conns, (uint64_t)(uintptr_t)cl->key, &v)) {
        c = (struct pconn *)(uintptr_t)v;
        if (c->s && !strcmp(c->s->cid, cl->cid))
            return c;
        conn_free(t, c); /* the object was reused for another client without its end seen */
    }
    struct psess *s = sess_get(t, cl->cid);
    if (!s || !(c = calloc(1, sizeof *c)))
        return NULL;
    if (mqo_map_put(&t->conns, (uint64_t)(uintptr_t)cl->key, (uint64_t)(uintptr_t)c)) {
        free(c);
        return NULL;
    }
    if (s->conn) /* taken over: the broker ended the old connection without our seeing it */
        conn_free(t, s->conn);
    c->id = ++t->next_id;
    c->key = cl->key;
    c->s = s;
    s->conn = c;
    s->last = c->id;
    s->expire_at = NEVER;
    s->protocol = (uint8_t)cl->protocol;
    snprintf(s->addr, sizeof s->addr, "%s", cl->addr ? cl->addr : "");
    /* a clean start: the broker dropped the session's subscriptions at the CONNECT */
    if (cl->clean)
        filters_clear(t, s);
    emit_session(t, s, cl->clean);
    return c;
}

int mqo_ptable_subscribe(struct mqo_ptable *t, const struct mqo_ptable_client *cl,
                         const char *filter, int qos)
{
    struct pconn *c = conn_for(t, cl);
    if (!c || filter_set(t, c->s, filter, strlen(filter), qos))
        return -ENOMEM;
    emit_filter(t, c->s, "sub", filter, qos);
    return 0;
}

#define MARK "$mqoff/bind/"

/* "TOKEN/ID/EXPIRY" after the marker prefix: c is bound to TOKEN/ID. */
static void bind_marker(struct mqo_ptable *t, struct pconn *c, const char *m)
{
    const char *e = strrchr(m, '/');
    if (!e || e == m || (size_t)(e - m) >= sizeof c->bind || !strchr(m, '/'))
        return;
    char *end;
    unsigned long long x = strtoull(e + 1, &end, 10);
    if (*end || end == e + 1 || x > 0xffffffffull)
        return;
    memcpy(c->bind, m, (size_t)(e - m));
    c->bind[e - m] = 0;
    c->expiry = (uint32_t)x;
    c->expiry_known = 1;
    cJSON *o = obj("bind", c->s->cid);
    if (!o)
        return;
    cJSON_AddNumberToObject(o, "conn", (double)c->id);
    cJSON_AddStringToObject(o, "bind", c->bind);
    cJSON_AddNumberToObject(o, "expiry", (double)c->expiry);
    send_obj(t, o);
}

int mqo_ptable_unsubscribe(struct mqo_ptable *t, const struct mqo_ptable_client *cl,
                           const char *filter)
{
    struct pconn *c = conn_for(t, cl);
    if (!c)
        return -ENOMEM;
    const char *m = strstr(filter, MARK);
    if (m) {
        bind_marker(t, c, m + strlen(MARK));
        return 0;
    }
    ssize_t i = filter_index(c->s, filter);
    if (i < 0)
        return 0;
    free(c->s->f[i].f);
    c->s->f[i] = c->s->f[--c->s->n];
    t->n_filters--;
    emit_filter(t, c->s, "unsub", filter, -1);
    return 0;
}

static void end_session(struct mqo_ptable *t, struct psess *s)
{
    send_obj(t, obj("end", s->cid));
    sess_free(t, s);
}

int mqo_ptable_disconnect(struct mqo_ptable *t, const struct mqo_ptable_client *cl,
                          int64_t now_s, int64_t pce)
{
    struct pconn *c = conn_for(t, cl);
    if (!c)
        return -ENOMEM;
    struct psess *s = c->s;
    int64_t keep; /* seconds the broker keeps the session, NEVER, or -1: it ends now */
    if (cl->protocol == 5)
        keep = !c->expiry_known ? NEVER : c->expiry == 0 ? -1
             : c->expiry == 0xffffffffu ? (pce ? pce : NEVER) : (int64_t)c->expiry;
    else
        keep = cl->clean ? -1 : pce ? pce : NEVER;
    conn_free(t, c);
    if (keep < 0) {
        end_session(t, s);
        return 0;
    }
    s->expire_at = keep == NEVER ? NEVER : now_s + keep + EXPIRY_MARGIN_S;
    emit_session(t, s, 0);
    return 0;
}

int mqo_ptable_restore(struct mqo_ptable *t, const char *cid, size_t cid_len, const char *filter,
                       size_t len, int qos)
{
    char *id = strndup(cid, cid_len);
    struct psess *s = id ? sess_get(t, id) : NULL;
    free(id);
    if (!s)
        return -ENOMEM;
    return filter && len ? filter_set(t, s, filter, len, qos) : 0;
}

int mqo_ptable_fixed(struct mqo_ptable *t, const char *cid, const char *filter, int qos)
{
    struct psess *s = sess_get(t, cid);
    if (!s)
        return -ENOMEM;
    s->fixed = 1;
    return filter_set(t, s, filter, strlen(filter), qos);
}

void mqo_ptable_expire(struct mqo_ptable *t, int64_t now_s)
{
    for (size_t i = 0; i < t->nb; i++)
        for (struct psess *s = t->b[i], *nx; s; s = nx) {
            nx = s->hnext;
            if (!s->conn && !s->fixed && s->expire_at != NEVER && s->expire_at <= now_s)
                end_session(t, s);
        }
}

void mqo_ptable_dump(struct mqo_ptable *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (struct psess *s = t->b[i]; s; s = s->hnext) {
            emit_session(t, s, 0);
            for (size_t k = 0; k < s->n; k++)
                emit_filter(t, s, "sub", s->f[k].f, s->f[k].qos);
        }
    send_obj(t, obj("synced", NULL));
}

void mqo_ptable_stats(const struct mqo_ptable *t, struct mqo_ptable_stats *st)
{
    st->sessions = t->n_sess;
    st->filters = t->n_filters;
    st->conns = t->conns.n;
}

void mqo_ptable_free(struct mqo_ptable *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nb; i++)
        while (t->b[i])
            sess_free(t, t->b[i]);
    free(t->b);
    mqo_map_free(&t->conns);
    free(t);
}
