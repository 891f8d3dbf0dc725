/* The engine's state as bytes, for a takeover (engine.h, mqo_engine_save / mqo_engine_load).
 *
 * Layout (little-endian; "blob" is a u32 length and the bytes):
 *
 *   "MQOENG\0\0"  u32 MQO_SNAP_VERSION
 *   u64 next_id   u32 n, u64 stats[n]
 *   u32 sessions: blob cid, u8 registered known persistent held, u64 expire_ns,
 *                 u32 n, blob filter[n]
 *   u32 trie entries: u32 session, blob filter, opts
 *   u32 connections: everything of struct mqo_conn (conn_save below), sessions by index
 *
 * What is not carried: the broker's view (the plugin reconnects and resyncs it; its sessions'
 * filters are the plugin's to report again), the broker-only filters and the ACL versions
 * (the new process reads its own configuration), timers' scan positions. Times are
 * CLOCK_MONOTONIC nanoseconds, the same clock in every process of the machine.
 *
 * The loader trusts nothing: every count is bounded by the bytes left, every index is checked,
 * every session is referenced by at most one connection (the engine's own invariant: a
 * session's connection is the one whose sess or pre it is), so a corrupt snapshot fails with
 * -EINVAL and the engine it was loading into can be freed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ser.h"
#include "engine/engine_int.h"

static const uint8_t MAGIC[8] = {'M', 'Q', 'O', 'E', 'N', 'G', 0, 0};

/* ---- save ---- */

struct save_ctx {
    struct mqo_wr *w;
    struct mqo_map idx; /* session pointer -> index + 1 */
    struct session **v;
    size_t n, cap;
    uint32_t n_trie;
    int err;
};

static int sess_add(struct save_ctx *x, struct session *s)
{
    if (!s || mqo_map_get(&x->idx, (uint64_t)(uintptr_t)s, NULL))
        return 0;
    if (s->foreign)
        return -ENOTSUP; /* the broker view's: not carried */
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        struct session **v = realloc(x->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = s;
    return mqo_map_put(&x->idx, (uint64_t)(uintptr_t)s, x->n);
}

static uint32_t sess_ref(struct save_ctx *x, const struct session *s)
{
    uint64_t v = 0;
    if (!s)
        return UINT32_MAX;
    if (!mqo_map_get(&x->idx, (uint64_t)(uintptr_t)s, &v))
        x->err = -ENOTSUP;
    return (uint32_t)(v - 1);
}

static void wr_opts(struct mqo_wr *w, const struct mqo_sub_opts *o)
{
    mqo_wr_u8(w, o->qos);
    mqo_wr_u8(w, o->no_local);
    mqo_wr_u8(w, o->rap);
    mqo_wr_u8(w, o->rh);
    mqo_wr_u32(w, o->sub_id);
    mqo_wr_u32(w, o->flags);
}

static int trie_entry(void *arg, const uint8_t *f, size_t len, void *owner,
                      const struct mqo_sub_opts *o)
{
    struct save_ctx *x = arg;
    uint64_t v;
    if (!mqo_map_get(&x->idx, (uint64_t)(uintptr_t)owner, &v))
        return 0; /* a broker-view owner */
    if (x->w) {
        mqo_wr_u32(x->w, (uint32_t)(v - 1));
        mqo_wr_blob(x->w, f, len);
        wr_opts(x->w, o);
    }
    x->n_trie++;
    return 0;
}

struct map_w {
    struct mqo_wr *w;
    int alias;
};
static void map_entry(void *arg, uint64_t k, uint64_t v)
{
    struct map_w *m = arg;
    mqo_wr_u64(m->w, k);
    if (m->alias) {
        const struct sfilter *f = (const struct sfilter *)(uintptr_t)v;
        mqo_wr_blob(m->w, f->f, f->len);
    } else {
        mqo_wr_u64(m->w, v);
    }
}
static void wr_map(struct mqo_wr *w, const struct mqo_map *m, int alias)
{
    struct map_w mw = {w, alias};
    mqo_wr_u32(w, (uint32_t)m->n);
    mqo_map_each(m, map_entry, &mw);
}

/* A possibly absent byte string: u8 present, blob. */
static void wr_opt_blob(struct mqo_wr *w, const uint8_t *p, size_t n)
{
    mqo_wr_u8(w, p != NULL);
    mqo_wr_blob(w, p, p ? n : 0);
}

static void conn_save(struct save_ctx *x, const struct mqo_conn *c)
{
    struct mqo_wr *w = x->w;
    mqo_wr_u64(w, c->id);
    for (int d = 0; d < 2; d++) {
        const struct stream *st = &c->in[d];
        mqo_wr_blob(w, st->partial ? st->partial->data : NULL, st->partial ? st->partial->len : 0);
        mqo_wr_u32(w, st->pass_left);
        mqo_wr_u8(w, st->pass_consume);
        mqo_wr_u8(w, st->raw);
        mqo_wr_u8(w, st->held);
        mqo_wr_u8(w, st->hs != NULL); /* a streamed PUBLISH being hashed */
        mqo_wr_u8(w, st->qos);
        mqo_wr_u16(w, st->pid);
        mqo_wr_u64(w, st->hs ? st->hs->hstate : 0);
        wr_opt_blob(w, st->hs ? st->hs->topic.f : NULL, st->hs ? st->hs->topic.len : 0);
    }
    const uint8_t flags[] = {c->version,  c->connect_seen, c->live,    c->dead,
                             c->relay,    c->unknown,      c->bridge,  c->clean,
                             c->has_user, c->acl_unknown,  c->broker_max_qos, c->eng_pids,
                             c->unseen_activity, c->ping_n, c->barrier_due};
    mqo_wr_blob(w, flags, sizeof flags);
    mqo_wr_u16(w, c->keepalive);
    mqo_wr_u32(w, c->session_expiry);
    mqo_wr_u32(w, c->client_max_packet);
    mqo_wr_u32(w, c->broker_max_packet);
    mqo_wr_u16(w, c->recv_max);
    mqo_wr_u16(w, c->eng_inflight);
    mqo_wr_u16(w, c->broker_inflight);
    mqo_wr_u16(w, c->pid_cursor);
    mqo_wr_u32(w, (uint32_t)c->last_reason);
    wr_opt_blob(w, c->cid, c->cid_len);
    char peer[64];
    eng_conn_peer(c, peer, sizeof peer);
    mqo_wr_blob(w, peer, strlen(peer));
    wr_opt_blob(w, c->user, c->user_len);
    mqo_wr_u32(w, sess_ref(x, c->sess));
    mqo_wr_u32(w, sess_ref(x, c->pre));
    wr_map(w, &cpids(c)->cpid, 0);
    wr_map(w, &cpids(c)->bpid, 0);
    wr_map(w, &cpids(c)->pt_acks, 0);
    static const struct mqo_map no_alias; /* the maps are allocated at the first alias */
    wr_map(w, c->alias ? &c->alias[0] : &no_alias, 1);
    wr_map(w, c->alias ? &c->alias[1] : &no_alias, 1);
    uint32_t np = 0;
    for (const struct pending *p = c->pend; p; p = p->next)
        np++;
    mqo_wr_u32(w, np);
    for (const struct pending *p = c->pend; p; p = p->next) {
        mqo_wr_u16(w, p->pid);
        mqo_wr_u8(w, p->unsub);
        mqo_wr_u32(w, p->n);
        for (uint32_t i = 0; i < p->n; i++) {
            const struct pend_entry *pe = &p->e[i];
            mqo_wr_blob(w, pe->filt.f, pe->filt.len);
            wr_opts(w, &pe->opts);
            mqo_wr_u32(w, sess_ref(x, pe->owner));
            mqo_wr_u8(w, pe->had_old);
            wr_opts(w, &pe->old);
        }
    }
    mqo_wr_u64(w, c->last_to_broker);
    mqo_wr_u64(w, c->ping_fifo);
    mqo_wr_u64(w, c->ping_barrier);
    mqo_wr_u32(w, (uint32_t)c->n_exp);
    for (size_t i = 0; i < c->n_exp; i++) {
        mqo_wr_u64(w, c->exp[i].pub_id);
        mqo_wr_u64(w, c->exp[i].hash);
        mqo_wr_u64(w, c->exp[i].deadline);
    }
    mqo_wr_u32(w, c->order_pending);
    mqo_wr_u16(w, cbv_pid(c));
    wr_opt_blob(w, c->bv ? c->bv->cid : NULL, c->bv ? c->bv->cid_len : 0);
}

int mqo_engine_save(const struct mqo_engine *e, struct mqo_buf *out)
{
    struct mqo_wr w = {.b = out};
    struct save_ctx x = {.w = &w};
    int rc = 0;
    /* every session: the registered ones, then the connections' private ones */
    for (size_t i = 0; !rc && i < e->n_sbuckets; i++)
        for (struct session *s = e->sbuckets[i]; !rc && s; s = s->hnext)
            if (!s->foreign)
                rc = sess_add(&x, s);
    struct mqo_conn *c;
    for (size_t it = 0; !rc && (c = eng_conn_next(e, &it));) {
        rc = sess_add(&x, c->sess);
        if (!rc)
            rc = sess_add(&x, c->pre);
    }
    if (rc)
        goto out;
    mqo_wr_bytes_raw(&w, MAGIC, sizeof MAGIC);
    mqo_wr_u32(&w, MQO_SNAP_VERSION);
    mqo_wr_u64(&w, e->next_id);
    size_t nst = sizeof e->st / sizeof(uint64_t);
    mqo_wr_u32(&w, (uint32_t)nst);
    const uint64_t *st = (const uint64_t *)&e->st;
    for (size_t i = 0; i < nst; i++)
        mqo_wr_u64(&w, st[i]);
    mqo_wr_u32(&w, (uint32_t)x.n);
    for (size_t i = 0; i < x.n; i++) {
        const struct session *s = x.v[i];
        mqo_wr_blob(&w, s->cid, s->cid_len);
        mqo_wr_u8(&w, s->registered);
        mqo_wr_u8(&w, s->known);
        mqo_wr_u8(&w, s->persistent);
        mqo_wr_u8(&w, s->held);
        mqo_wr_u64(&w, s->expire_ns);
        mqo_wr_u32(&w, (uint32_t)s->n_subs);
        for (size_t k = 0; k < s->n_subs; k++)
            mqo_wr_blob(&w, sfn_bytes(&s->subs[k]), s->subs[k].len);
    }
    /* trie entries: counted first, then written */
    struct mqo_wr *keep = x.w;
    x.w = NULL;
    mqo_trie_walk(e->trie, trie_entry, &x);
    mqo_wr_u32(&w, x.n_trie);
    x.w = keep;
    mqo_trie_walk(e->trie, trie_entry, &x);
    mqo_wr_u32(&w, (uint32_t)e->conns.n);
    for (size_t it = 0; (c = eng_conn_next(e, &it));)
        conn_save(&x, c);
    rc = x.err ? x.err : w.err;
out:
    mqo_map_free(&x.idx);
    free(x.v);
    return rc;
}

/* ---- load ---- */

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static void rd_opts(struct mqo_rd *r, struct mqo_sub_opts *o)
{
    uint8_t qos = mqo_rd_u8(r), no_local = mqo_rd_u8(r), rap = mqo_rd_u8(r), rh = mqo_rd_u8(r);
    uint32_t sub_id = mqo_rd_u32(r), flags = mqo_rd_u32(r);
    if (qos > 2 || no_local > 1 || rap > 1 || rh > 2 || sub_id > MQO_SUB_ID_MAX ||
        flags >= MQO_SUB_FLAGS_LIMIT) {
        r->err = 1;
        *o = (struct mqo_sub_opts){0};
        return;
    }
    *o = (struct mqo_sub_opts){.qos = qos, .no_local = no_local, .rap = rap, .rh = rh,
                               .sub_id = sub_id, .flags = flags};
}

/* An optional blob: returns 0 (absent or present) with *out malloc'd or NULL, -1 on error. */
static int rd_opt_blob(struct mqo_rd *r, size_t max, uint8_t **out, uint16_t *len)
{
    uint8_t present = mqo_rd_u8(r);
    size_t n;
    const uint8_t *p = mqo_rd_blob(r, max, &n);
    *out = NULL;
    *len = 0;
    if (r->err || present > 1 || (!present && n))
        return -1;
    if (!present)
        return 0;
    if (!(*out = dup_bytes(p, n)))
        return -1;
    *len = (uint16_t)n;
    return 0;
}

struct load_ctx {
    struct mqo_engine *e;
    struct mqo_rd r;
    struct session **sv;
    uint8_t *taken; /* sessions referenced by a connection */
    uint32_t ns;
};

static struct session *sess_at(struct load_ctx *x, uint32_t i, int take, struct mqo_conn *c)
{
    if (i == UINT32_MAX)
        return NULL;
    if (i >= x->ns || (take && x->taken[i])) {
        x->r.err = 1;
        return NULL;
    }
    if (take) {
        x->taken[i] = 1;
        x->sv[i]->conn = c;
    }
    return x->sv[i];
}

static int load_map(struct mqo_rd *r, struct mqo_map *m, int alias)
{
    uint32_t n = mqo_rd_count(r, alias ? 12 : 16);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        uint64_t k = mqo_rd_u64(r), v;
        if (alias) {
            size_t len;
            const uint8_t *t = mqo_rd_blob(r, 65535, &len);
            struct sfilter *f = calloc(1, sizeof *f);
            if (r->err || !f || !(f->f = dup_bytes(t, len))) {
                free(f);
                return -1;
            }
            f->len = (uint16_t)len;
            v = (uint64_t)(uintptr_t)f;
            if (mqo_map_get(m, k, NULL) || mqo_map_put(m, k, v)) {
                free(f->f);
                free(f);
                return -1;
            }
        } else {
            v = mqo_rd_u64(r);
            if (r->err || mqo_map_put(m, k, v))
                return -1;
        }
    }
    return r->err ? -1 : 0;
}

static int conn_load(struct load_ctx *x)
{
    struct mqo_rd *r = &x->r;
    struct mqo_engine *e = x->e;
    struct mqo_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->eng = e;
    c->id = mqo_rd_u64(r);
    if (r->err || !c->id || c->id > e->next_id || eng_conn_by_id(e, c->id) ||
        eng_conn_enter(e, c)) {
        free(c);
        return -EINVAL;
    }
    /* in e->conns now: from here on mqo_engine_conn_close frees whatever was loaded */
    for (int d = 0; d < 2; d++) {
        struct stream *st = &c->in[d];
        size_t n;
        const uint8_t *p = mqo_rd_blob(r, (size_t)e->cfg.max_buffer + 65536, &n);
        if (r->err)
            return -EINVAL;
        if (n && (!(st->partial = calloc(1, sizeof *st->partial)) ||
                  mqo_buf_append(st->partial, p, n)))
            return -EINVAL; /* a partial allocated here is freed with the connection */
        st->pass_left = mqo_rd_u32(r);
        st->pass_consume = mqo_rd_u8(r);
        uint8_t raw = mqo_rd_u8(r), held = mqo_rd_u8(r), hashing = mqo_rd_u8(r);
        uint8_t qos = mqo_rd_u8(r);
        if (raw > 1 || held > 1 || qos > 2)
            return -EINVAL;
        st->raw = raw;
        st->held = held;
        st->qos = qos;
        st->pid = mqo_rd_u16(r);
        uint64_t hstate = mqo_rd_u64(r);
        struct sfilter topic;
        if (rd_opt_blob(r, 65535, &topic.f, &topic.len) || hashing > 1)
            return -EINVAL;
        if (hashing) {
            if (!(st->hs = malloc(sizeof *st->hs))) {
                free(topic.f);
                return -ENOMEM;
            }
            st->hs->hstate = hstate;
            st->hs->topic = topic;
        } else {
            free(topic.f);
        }
    }
    size_t nf;
    const uint8_t *f = mqo_rd_blob(r, 255, &nf);
    if (r->err || nf < 15)
        return -EINVAL;
    c->version = f[0];
    c->connect_seen = f[1] != 0;
    c->live = f[2] != 0;
    c->dead = f[3] != 0;
    c->relay = f[4] != 0;
    c->unknown = f[5] != 0;
    c->bridge = f[6] != 0;
    c->clean = f[7] != 0;
    c->has_user = f[8] != 0;
    c->acl_unknown = f[9] != 0;
    c->broker_max_qos = f[10];
    c->eng_pids = f[11] != 0;
    c->unseen_activity = f[12] != 0;
    c->ping_n = f[13];
    c->barrier_due = f[14] != 0;
    c->keepalive = mqo_rd_u16(r);
    c->session_expiry = mqo_rd_u32(r);
    c->client_max_packet = mqo_rd_u32(r);
    c->broker_max_packet = mqo_rd_u32(r);
    c->recv_max = mqo_rd_u16(r);
    c->eng_inflight = mqo_rd_u16(r);
    c->broker_inflight = mqo_rd_u16(r);
    c->pid_cursor = mqo_rd_u16(r);
    uint32_t reason = mqo_rd_u32(r);
    if (reason >= MQO_PT__COUNT)
        return -EINVAL;
    c->last_reason = (enum mqo_pt_reason)reason;
    if (rd_opt_blob(r, 65535, &c->cid, &c->cid_len))
        return -EINVAL;
    /* the client's address: the mode that loads the connection knows it (ops.peer) */
    size_t pl;
    (void)mqo_rd_blob(r, 63, &pl);
    if (r->err)
        return -EINVAL;
    if (rd_opt_blob(r, 65535, &c->user, &c->user_len))
        return -EINVAL;
    c->sess = sess_at(x, mqo_rd_u32(r), 1, c);
    c->pre = sess_at(x, mqo_rd_u32(r), 1, c);
    if (r->err || (c->pre && c->pre->registered))
        return -EINVAL;
    struct conn_pids *m = cpids_get(c); /* freed with the connection */
    if (!m)
        return -ENOMEM;
    if (load_map(r, &m->cpid, 0) || load_map(r, &m->bpid, 0) || load_map(r, &m->pt_acks, 0))
        return -EINVAL;
    cpids_trim(c);
    if (!(c->alias = calloc(2, sizeof *c->alias)))
        return -ENOMEM; /* freed with the connection */
    if (load_map(r, &c->alias[0], 1) || load_map(r, &c->alias[1], 1))
        return -EINVAL;
    if (!c->alias[0].n && !c->alias[1].n) { /* none: as a connection that never had one */
        mqo_map_free(&c->alias[0]);
        mqo_map_free(&c->alias[1]);
        free(c->alias);
        c->alias = NULL;
    }
    uint32_t np = mqo_rd_count(r, 7);
    struct pending **tail = &c->pend;
    for (uint32_t i = 0; i < np && !r->err; i++) {
        uint16_t pid = mqo_rd_u16(r);
        uint8_t unsub = mqo_rd_u8(r);
        uint32_t n = mqo_rd_count(r, 4 + 12 + 4 + 1 + 12);
        if (r->err)
            return -EINVAL;
        struct pending *p = calloc(1, sizeof *p + n * sizeof p->e[0]);
        if (!p)
            return -ENOMEM;
        p->pid = pid;
        p->unsub = unsub;
        *tail = p; /* freed with the connection from here on */
        tail = &p->next;
        for (uint32_t k = 0; k < n; k++) {
            struct pend_entry *pe = &p->e[k];
            size_t fl;
            const uint8_t *fp = mqo_rd_blob(r, 65535, &fl);
            if (r->err || !(pe->filt.f = dup_bytes(fp, fl)))
                return -EINVAL;
            p->n = k + 1;
            pe->filt.len = (uint16_t)fl;
            rd_opts(r, &pe->opts);
            pe->owner = sess_at(x, mqo_rd_u32(r), 0, c);
            pe->had_old = mqo_rd_u8(r);
            rd_opts(r, &pe->old);
            if (r->err || !pe->owner)
                return -EINVAL;
        }
    }
    c->last_to_broker = mqo_rd_u64(r);
    c->ping_fifo = mqo_rd_u64(r);
    c->ping_barrier = mqo_rd_u64(r);
    uint32_t ne = mqo_rd_count(r, 24);
    if (r->err)
        return -EINVAL;
    if (ne && !(c->exp = calloc(exp_room(ne), sizeof *c->exp)))
        return -ENOMEM;
    c->n_exp = ne;
    for (uint32_t i = 0; i < ne; i++) {
        c->exp[i].pub_id = mqo_rd_u64(r);
        c->exp[i].hash = mqo_rd_u64(r);
        c->exp[i].deadline = mqo_rd_u64(r);
    }
    c->order_pending = mqo_rd_u32(r);
    uint16_t bv_pid = mqo_rd_u16(r);
    uint8_t *bv_cid;
    uint16_t bv_cid_len;
    if (rd_opt_blob(r, 65535, &bv_cid, &bv_cid_len))
        return -EINVAL;
    if (bv_pid || bv_cid) {
        if (!cbv_get(c)) {
            free(bv_cid);
            return -EINVAL;
        }
        c->bv->pid = bv_pid;
        c->bv->cid = bv_cid;
        c->bv->cid_len = bv_cid_len;
    }
    return r->err ? -EINVAL : 0;
}

int mqo_engine_load(struct mqo_engine *e, const uint8_t *p, size_t n)
{
    if (e->conns.n || e->n_sessions)
        return -EBUSY;
    struct load_ctx x = {.e = e, .r = {.p = p, .n = n}};
    struct mqo_rd *r = &x.r;
    int rc = -EINVAL;
    const uint8_t *m = mqo_rd_raw(r, sizeof MAGIC);
    if (!m || memcmp(m, MAGIC, sizeof MAGIC) != 0)
        return -EINVAL;
    uint32_t ver = mqo_rd_u32(r);
    if (r->err)
        return -EINVAL;
    if (ver != MQO_SNAP_VERSION)
        return -EPROTO;
    uint64_t next_id = mqo_rd_u64(r);
    uint32_t nst = mqo_rd_count(r, 8);
    struct mqo_engine_stats st = {0};
    uint64_t *sv = (uint64_t *)&st;
    for (uint32_t i = 0; i < nst; i++) {
        uint64_t v = mqo_rd_u64(r);
        if (i < sizeof st / sizeof(uint64_t))
            sv[i] = v;
    }
    x.ns = mqo_rd_count(r, 4 + 4 + 8 + 4);
    if (r->err)
        return -EINVAL;
    e->next_id = next_id;
    x.sv = calloc(x.ns ? x.ns : 1, sizeof *x.sv);
    x.taken = calloc(x.ns ? x.ns : 1, 1);
    if (!x.sv || !x.taken) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < x.ns; i++) {
        size_t cl;
        const uint8_t *cid = mqo_rd_blob(r, 65535, &cl);
        struct session *s = r->err ? NULL : eng_session_new(cid, cl);
        if (!s)
            goto out;
        x.sv[i] = s;
        uint8_t reg = mqo_rd_u8(r);
        s->known = mqo_rd_u8(r) != 0;
        s->persistent = mqo_rd_u8(r) != 0;
        s->held = mqo_rd_u8(r) != 0;
        s->expire_ns = mqo_rd_u64(r);
        /* a private session (not registered) ends with its connection: the engine never
         * holds one (it would have no owner left) */
        if (reg > 1 || (!reg && (s->persistent || !s->known)))
            goto out;
        if (reg && eng_session_register(e, s))
            goto out;
        uint32_t nsub = mqo_rd_count(r, 4);
        for (uint32_t k = 0; k < nsub && !r->err; k++) {
            size_t fl;
            const uint8_t *f = mqo_rd_blob(r, 65535, &fl);
            if (!r->err && (!fl || eng_session_sub_add(s, f, fl)))
                goto out;
        }
        if (r->err)
            goto out;
    }
    uint32_t nt = mqo_rd_count(r, 4 + 4 + 12);
    for (uint32_t i = 0; i < nt && !r->err; i++) {
        uint32_t si = mqo_rd_u32(r);
        size_t fl;
        const uint8_t *f = mqo_rd_blob(r, 65535, &fl);
        struct mqo_sub_opts o;
        rd_opts(r, &o);
        if (r->err || si >= x.ns || !fl || mqo_trie_add(e->trie, f, fl, x.sv[si], &o))
            goto out;
    }
    uint32_t nc = mqo_rd_count(r, 64);
    for (uint32_t i = 0; i < nc && !r->err; i++)
        if ((rc = conn_load(&x)) != 0)
            goto out;
    rc = -EINVAL;
    if (r->err || r->off != r->n)
        goto out;
    for (uint32_t i = 0; i < x.ns; i++)
        if (!x.sv[i]->registered && !x.taken[i])
            goto out; /* a private session no connection owns */
    /* the counters as they were, but what describes this engine's own tables recounted */
    st.subscriptions = mqo_trie_count(e->trie);
    st.conns_open = nc;
    st.blind_sessions = 0;
    for (uint32_t i = 0; i < x.ns; i++)
        st.blind_sessions += !x.sv[i]->known;
    st.relay_conns = st.unknown_conns = 0;
    struct mqo_conn *c;
    for (size_t it = 0; (c = eng_conn_next(e, &it));) {
        st.relay_conns += c->relay;
        st.unknown_conns += c->unknown;
    }
    st.bv_state = st.bv_sessions = st.bv_subscriptions = st.bv_table = st.bv_bound = 0;
    st.acl_versions = e->st.acl_versions;
    st.conf_hold = e->st.conf_hold;
    e->st = st;
    rc = 0;
out:
    if (rc) {
        /* what no connection owns and no table holds is freed here; the rest with e */
        for (uint32_t i = 0; x.sv && i < x.ns; i++)
            if (x.sv[i] && !x.taken[i] && !x.sv[i]->registered)
                eng_session_free(e, x.sv[i]);
        e->st.conns_open = e->conns.n;
    }
    free(x.sv);
    free(x.taken);
    return rc;
}
