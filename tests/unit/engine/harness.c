/* In-memory harness: scripted clients, the engine and a small reference broker. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "mqtt/mqtt.h"
#include "topic/topic.h"

#define MS 1000000ull

static int idx_of(const struct harness *h, const struct mqo_conn *c)
{
    return (int)(intptr_t)mqo_conn_ud(c) - 1;
}

/* ---- engine ops ---- */

static void op_forward(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n)
{
    struct harness *h = ud;
    struct h_client *cl = &h->cl[idx_of(h, c)];
    mqo_buf_append(s == MQO_C2S ? &cl->c2b : &cl->b2c, p, n);
}

static void op_consume(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}

static void op_insert(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o)
{
    struct harness *h = ud;
    struct h_client *cl = &h->cl[idx_of(h, c)];
    struct mqo_buf *b = s == MQO_C2S ? &cl->c2b : &cl->b2c;
    size_t len = mqo_out_len(o);
    if (mqo_buf_reserve(b, len) == 0) {
        mqo_out_copy(o, b->data + b->len);
        b->len += len;
    }
}

static size_t op_room(void *ud, struct mqo_conn *c)
{
    struct harness *h = ud;
    return h->cl[idx_of(h, c)].room;
}

static void op_close(void *ud, struct mqo_conn *c, int reason)
{
    struct harness *h = ud;
    struct h_client *cl = &h->cl[idx_of(h, c)];
    cl->closed = 1;
    cl->close_reason = reason;
}


static uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    uint8_t v[4] = {a, b, c, d};
    uint32_t r;
    memcpy(&r, v, 4);
    return r;
}

void h_init(struct harness *h, const struct mqo_engine_cfg *cfg, int mode)
{
    memset(h, 0, sizeof *h);
    h->direct = mode;
    h->now = 1000 * MS;
    h->next_port = 40000;
    if (mode == H_DIRECT)
        return;
    struct mqo_engine_cfg c = {0};
    if (cfg)
        c = *cfg;
    else
        c.acl_mode = MQO_ACL_OPEN;
    if (mode == H_SPLICE) {
        struct mqo_splice_cfg sc = {.broker_ip = ip4(198, 18, 0, 2),
                                    .broker_port = 1883,
                                    .engine = c,
                                    .emit = ts_emit,
                                    .ud = &h->net,
                                    .startup_hold_ms = -1}; /* the broker model starts empty */
        h->splice = mqo_splice_new(&sc);
        ts_net_init(&h->net, h->splice, 42);
        h->net.now = h->now;
        return;
    }
    c.ops = (struct mqo_engine_ops){.forward = op_forward,
                                    .consume = op_consume,
                                    .insert = op_insert,
                                    .room = op_room,
                                    .close = op_close};
    c.ud = h;
    h->eng = mqo_engine_new(&c);
}

static void client_free(struct h_client *cl)
{
    if (cl->cep) {
        ts_ep_free(cl->cep);
        ts_ep_free(cl->bep);
        free(cl->cep);
        free(cl->bep);
    }
    mqo_buf_free(&cl->c2b);
    mqo_buf_free(&cl->b2c);
    mqo_buf_free(&cl->crx);
    mqo_buf_free(&cl->brx);
    mqo_buf_free(&cl->bout);
    free(cl->rx);
}

const struct mqo_engine_stats *h_stats(const struct harness *h)
{
    return h->splice ? mqo_splice_engine_stats(h->splice) : mqo_engine_stats(h->eng);
}

void h_free(struct harness *h)
{
    for (int i = 0; i < H_MAX_CLIENTS; i++)
        if (h->cl[i].used)
            client_free(&h->cl[i]);
    if (h->splice) {
        mqo_splice_free(h->splice);
        ts_net_free(&h->net);
    }
    for (int i = 0; i < H_MAX_CLIENTS; i++)
        mqo_buf_free(&h->sess[i].queued);
    mqo_engine_free(h->eng);
}

int h_open(struct harness *h)
{
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (cl->used)
            continue;
        memset(cl, 0, sizeof *cl);
        cl->used = 1;
        cl->auto_ack = 1;
        cl->room = SIZE_MAX;
        cl->b_sess = -1;
        cl->b_next_pid = 1;
        cl->rx = calloc(H_MAX_RX, sizeof *cl->rx);
        if (h->direct == H_ENGINE)
            cl->conn = mqo_engine_conn_open(h->eng, (void *)(intptr_t)(i + 1), h->now);
        if (h->direct == H_SPLICE) {
            uint16_t port = h->next_port++;
            cl->cep = calloc(1, sizeof *cl->cep);
            cl->bep = calloc(1, sizeof *cl->bep);
            ts_ep_init(cl->cep, MQO_SIDE_CLIENT, ip4(198, 18, 0, 1), port, ip4(198, 18, 0, 2),
                       1883, 0x10000000u * (uint32_t)(i % 15) + 0xfffff000u, 1460, 65535, 1, 7);
            ts_ep_init(cl->bep, MQO_SIDE_BROKER, ip4(198, 18, 0, 2), 1883, ip4(198, 18, 0, 1),
                       port, 0x7fffff00u + (uint32_t)i * 7919u, 1460, 65535, 1, 7);
            ts_net_add(&h->net, cl->cep);
            ts_net_add(&h->net, cl->bep);
            ts_connect(&h->net, cl->cep);
            h_run(h);
        }
        return i;
    }
    return -1;
}

/* ---- builders ---- */

static size_t put_varint(uint8_t *o, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        if (v)
            b |= 0x80;
        o[n++] = b;
    } while (v);
    return n;
}

static size_t put_str(uint8_t *o, const void *s, size_t n)
{
    o[0] = (uint8_t)(n >> 8);
    o[1] = (uint8_t)n;
    memcpy(o + 2, s, n);
    return n + 2;
}

/* Wraps body[0..n) with a fixed header into out. */
static size_t wrap(uint8_t *out, uint8_t b0, const uint8_t *body, size_t n)
{
    out[0] = b0;
    size_t h = 1 + put_varint(out + 1, (uint32_t)n);
    memmove(out + h, body, n);
    return h + n;
}

size_t hb_connect(uint8_t *out, uint8_t version, const char *cid, int clean, uint16_t keepalive,
                  const char *user, uint32_t session_expiry, int recv_max)
{
    uint8_t b[512];
    size_t n = put_str(b, "MQTT", 4);
    b[n++] = version;
    b[n++] = (uint8_t)((clean ? 0x02 : 0) | (user ? 0x80 : 0));
    b[n++] = (uint8_t)(keepalive >> 8);
    b[n++] = (uint8_t)keepalive;
    if (version == MQO_MQTT_V5) {
        uint8_t pr[32];
        size_t pl = 0;
        if (session_expiry) {
            pr[pl++] = 0x11;
            pr[pl++] = (uint8_t)(session_expiry >> 24);
            pr[pl++] = (uint8_t)(session_expiry >> 16);
            pr[pl++] = (uint8_t)(session_expiry >> 8);
            pr[pl++] = (uint8_t)session_expiry;
        }
        if (recv_max > 0) {
            pr[pl++] = 0x21;
            pr[pl++] = (uint8_t)(recv_max >> 8);
            pr[pl++] = (uint8_t)recv_max;
        }
        n += put_varint(b + n, (uint32_t)pl);
        memcpy(b + n, pr, pl);
        n += pl;
    }
    n += put_str(b + n, cid, strlen(cid));
    if (user)
        n += put_str(b + n, user, strlen(user));
    return wrap(out, 0x10, b, n);
}

size_t hb_subscribe(uint8_t *out, uint8_t version, uint16_t pid, const char *filter,
                    uint8_t opts, uint32_t sub_id)
{
    uint8_t b[512];
    size_t n = 0;
    b[n++] = (uint8_t)(pid >> 8);
    b[n++] = (uint8_t)pid;
    if (version == MQO_MQTT_V5) {
        uint8_t pr[8];
        size_t pl = 0;
        if (sub_id) {
            pr[pl++] = 0x0B;
            pl += put_varint(pr + pl, sub_id);
        }
        n += put_varint(b + n, (uint32_t)pl);
        memcpy(b + n, pr, pl);
        n += pl;
    }
    n += put_str(b + n, filter, strlen(filter));
    b[n++] = opts;
    return wrap(out, 0x82, b, n);
}

size_t hb_unsubscribe(uint8_t *out, uint8_t version, uint16_t pid, const char *filter)
{
    uint8_t b[512];
    size_t n = 0;
    b[n++] = (uint8_t)(pid >> 8);
    b[n++] = (uint8_t)pid;
    if (version == MQO_MQTT_V5)
        b[n++] = 0;
    n += put_str(b + n, filter, strlen(filter));
    return wrap(out, 0xA2, b, n);
}

/* PUBLISH with optional properties block (v5). out must hold plen + topic + 64. */
static size_t hb_publish_full(uint8_t *out, uint8_t version, const char *topic, size_t tlen,
                              const void *payload, size_t plen, uint8_t qos, int retain,
                              int dup, uint16_t pid, const uint8_t *props, size_t props_len)
{
    size_t rem = 2 + tlen + (qos ? 2 : 0) + plen;
    if (version == MQO_MQTT_V5) {
        uint8_t tmp[4];
        rem += put_varint(tmp, (uint32_t)props_len) + props_len;
    }
    out[0] = (uint8_t)(0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0));
    size_t n = 1 + put_varint(out + 1, (uint32_t)rem);
    n += put_str(out + n, topic, tlen);
    if (qos) {
        out[n++] = (uint8_t)(pid >> 8);
        out[n++] = (uint8_t)pid;
    }
    if (version == MQO_MQTT_V5) {
        n += put_varint(out + n, (uint32_t)props_len);
        memcpy(out + n, props, props_len);
        n += props_len;
    }
    memcpy(out + n, payload, plen);
    return n + plen;
}

size_t hb_publish(uint8_t *out, uint8_t version, const char *topic, const void *payload,
                  size_t plen, uint8_t qos, int retain, uint16_t pid, int alias)
{
    uint8_t pr[4] = {0};
    size_t pl = 0;
    if (alias > 0) {
        pr[pl++] = 0x23;
        pr[pl++] = (uint8_t)(alias >> 8);
        pr[pl++] = (uint8_t)alias;
    }
    return hb_publish_full(out, version, topic, strlen(topic), payload, plen, qos, retain, 0,
                           pid, pr, pl);
}

size_t hb_ack(uint8_t *out, uint8_t type, uint16_t pid)
{
    out[0] = (uint8_t)((type << 4) | (type == MQO_PUBREL ? 2 : 0));
    out[1] = 2;
    out[2] = (uint8_t)(pid >> 8);
    out[3] = (uint8_t)pid;
    return 4;
}

size_t hb_simple(uint8_t *out, uint8_t type)
{
    out[0] = (uint8_t)(type << 4);
    out[1] = 0;
    return 2;
}

/* ---- reference broker ---- */

static void b_send(struct harness *h, int i, const uint8_t *p, size_t n)
{
    mqo_buf_append(&h->cl[i].bout, p, n);
}

static int b_session(struct harness *h, const char *cid)
{
    for (int s = 0; s < H_MAX_CLIENTS; s++)
        if (h->sess[s].used && strcmp(h->sess[s].cid, cid) == 0)
            return s;
    return -1;
}

static int b_session_new(struct harness *h, const char *cid_in)
{
    char cid[64];
    snprintf(cid, sizeof cid, "%s", cid_in); /* cid_in may live inside h */
    for (int s = 0; s < H_MAX_CLIENTS; s++)
        if (!h->sess[s].used) {
            mqo_buf_free(&h->sess[s].queued);
            memset(&h->sess[s], 0, sizeof h->sess[s]);
            h->sess[s].used = 1;
            snprintf(h->sess[s].cid, sizeof h->sess[s].cid, "%s", cid);
            return s;
        }
    return -1;
}

static int b_client_of(struct harness *h, int s)
{
    for (int i = 0; i < H_MAX_CLIENTS; i++)
        if (h->cl[i].used && !h->cl[i].closed && h->cl[i].b_connected && h->cl[i].b_sess == s)
            return i;
    return -1;
}

static int b_acl(struct harness *h, int i, const char *topic, int access)
{
    if (!h->acl)
        return 1;
    struct h_client *cl = &h->cl[i];
    return mqo_acl_check(h->acl, (const uint8_t *)cl->b_cid, strlen(cl->b_cid),
                         (const uint8_t *)cl->b_user, strlen(cl->b_user), cl->b_has_user,
                         (const uint8_t *)topic, strlen(topic), access);
}

/* Sends one PUBLISH from the broker to client i. */
static void b_deliver(struct harness *h, int i, const char *topic, const uint8_t *payload,
                      size_t plen, uint8_t qos, int retain, const uint32_t *ids, int n_ids)
{
    struct h_client *cl = &h->cl[i];
    uint8_t pr[64];
    size_t pl = 0;
    for (int k = 0; k < n_ids && pl < 50; k++) {
        pr[pl++] = 0x0B;
        pl += put_varint(pr + pl, ids[k]);
    }
    uint16_t pid = 0;
    if (qos) {
        pid = cl->b_next_pid++;
        if (cl->b_next_pid == 0)
            cl->b_next_pid = 1;
        cl->b_inflight++;
    }
    uint8_t *buf = malloc(plen + strlen(topic) + 128);
    size_t n = hb_publish_full(buf, (uint8_t)cl->b_version, topic, strlen(topic), payload, plen,
                               qos, retain, 0, pid, pr, cl->b_version == 5 ? pl : 0);
    b_send(h, i, buf, n);
    free(buf);
    h->broker_deliveries++;
}

/* Queues a QoS>0 message for an offline persistent session. */
static void b_queue(struct h_bsess *s, const char *topic, const uint8_t *payload, size_t plen,
                    uint8_t qos)
{
    uint16_t tl = (uint16_t)strlen(topic);
    uint32_t pl32 = (uint32_t)plen;
    mqo_buf_append(&s->queued, &qos, 1);
    mqo_buf_append(&s->queued, &tl, 2);
    mqo_buf_append(&s->queued, topic, tl);
    mqo_buf_append(&s->queued, &pl32, 4);
    mqo_buf_append(&s->queued, payload, plen);
}

static void b_distribute(struct harness *h, int from, const char *topic, const uint8_t *payload,
                         size_t plen, uint8_t qos)
{
    for (int s = 0; s < H_MAX_CLIENTS; s++) {
        struct h_bsess *bs = &h->sess[s];
        if (!bs->used)
            continue;
        int i = b_client_of(h, s);
        if (i < 0 && !bs->persistent)
            continue;
        int self = from >= 0 && h->cl[from].b_sess == s;
        uint8_t best = 0;
        int nm = 0;
        uint32_t ids[8];
        int n_ids = 0;
        for (int k = 0; k < bs->n_subs; k++) {
            struct h_bsub *sb = &bs->subs[k];
            const uint8_t *g, *f;
            size_t gl, fl;
            if (mqo_topic_share_split((const uint8_t *)sb->filter, strlen(sb->filter), &g, &gl,
                                      &f, &fl) != 0)
                continue; /* shared subscriptions are not modelled */
            if (!mqo_topic_matches((const uint8_t *)sb->filter, strlen(sb->filter),
                                   (const uint8_t *)topic, strlen(topic)))
                continue;
            if (self && (sb->opts & MQO_SUBOPT_NO_LOCAL))
                continue;
            uint8_t q = qos < MQO_SUBOPT_QOS(sb->opts) ? qos : MQO_SUBOPT_QOS(sb->opts);
            if (i >= 0 && h->cl[i].b_version == 5) {
                /* v5: one copy per subscription */
                if (!b_acl(h, i, topic, MQO_ACL_READ))
                    continue;
                uint32_t id = sb->sub_id;
                b_deliver(h, i, topic, payload, plen, q, 0, &id, id ? 1 : 0);
                continue;
            }
            nm++;
            if (q > best)
                best = q;
            if (sb->sub_id && n_ids < 8)
                ids[n_ids++] = sb->sub_id;
        }
        if (!nm)
            continue;
        if (i < 0) {
            if (best > 0)
                b_queue(bs, topic, payload, plen, best);
            continue;
        }
        if (!b_acl(h, i, topic, MQO_ACL_READ))
            continue;
        b_deliver(h, i, topic, payload, plen, best, 0, ids, 0);
    }
}

static void b_retain(struct harness *h, const char *topic, const uint8_t *payload, size_t plen)
{
    int k;
    for (k = 0; k < h->n_ret; k++)
        if (strcmp(h->ret_topic[k], topic) == 0)
            break;
    if (plen == 0) {
        if (k < h->n_ret) {
            h->n_ret--;
            memmove(h->ret_topic[k], h->ret_topic[h->n_ret], sizeof h->ret_topic[0]);
            memcpy(h->ret_payload[k], h->ret_payload[h->n_ret], sizeof h->ret_payload[0]);
            h->ret_plen[k] = h->ret_plen[h->n_ret];
        }
        return;
    }
    if (k == h->n_ret) {
        if (h->n_ret == 64)
            return;
        h->n_ret++;
    }
    snprintf(h->ret_topic[k], sizeof h->ret_topic[k], "%.127s", topic);
    memcpy(h->ret_payload[k], payload, plen < 256 ? plen : 256);
    h->ret_plen[k] = (uint32_t)(plen < 256 ? plen : 256);
}

static void b_close_conn(struct harness *h, int i);

static void b_handle(struct harness *h, int i, const struct mqo_pkt *pk)
{
    struct h_client *cl = &h->cl[i];
    uint8_t out[1024];
    size_t n;
    cl->b_last_in = h->now;
    switch (pk->type) {
    case MQO_CONNECT: {
        cl->b_version = pk->u.connect.level;
        snprintf(cl->b_cid, sizeof cl->b_cid, "%.*s", pk->u.connect.client_id.len,
                 (const char *)pk->u.connect.client_id.p);
        cl->b_has_user = (pk->u.connect.cflags & MQO_CONNECT_USERNAME) != 0;
        snprintf(cl->b_user, sizeof cl->b_user, "%.*s", pk->u.connect.username.len,
                 (const char *)pk->u.connect.username.p);
        cl->b_clean = (pk->u.connect.cflags & MQO_CONNECT_CLEAN) != 0;
        cl->b_keepalive = pk->u.connect.keepalive;
        uint32_t expiry = MQO_PROP_HAS(&pk->props, MQO_PROP_SESSION_EXPIRY)
                              ? pk->props.session_expiry
                              : 0;
        int persistent = cl->b_version == 5 ? expiry > 0 : !cl->b_clean;
        int s = b_session(h, cl->b_cid);
        int present = 0;
        if (s >= 0) {
            int old = b_client_of(h, s);
            if (old >= 0 && old != i)
                b_close_conn(h, old); /* takeover */
        }
        if (s >= 0 && !cl->b_clean) {
            present = 1;
        } else {
            if (s >= 0)
                h->sess[s].used = 0;
            s = b_session_new(h, cl->b_cid);
        }
        h->sess[s].persistent = persistent;
        h->sess[s].expiry = expiry;
        h->sess[s].online = 1;
        cl->b_sess = s;
        cl->b_connected = 1;
        n = 0;
        out[n++] = 0x20;
        out[n++] = cl->b_version == 5 ? 3 : 2;
        out[n++] = (uint8_t)present;
        out[n++] = 0;
        if (cl->b_version == 5)
            out[n++] = 0;
        b_send(h, i, out, n);
        /* offline queue */
        struct mqo_buf *q = &h->sess[s].queued;
        size_t off = 0;
        while (off < q->len) {
            uint8_t qos = q->data[off];
            uint16_t tl;
            uint32_t pl;
            memcpy(&tl, q->data + off + 1, 2);
            char topic[256];
            snprintf(topic, sizeof topic, "%.*s", tl, (const char *)q->data + off + 3);
            memcpy(&pl, q->data + off + 3 + tl, 4);
            b_deliver(h, i, topic, q->data + off + 7 + tl, pl, qos, 0, NULL, 0);
            off += 7u + tl + pl;
        }
        q->len = 0;
        break;
    }
    case MQO_SUBSCRIBE: {
        struct h_bsess *bs = &h->sess[cl->b_sess];
        uint8_t codes[64];
        uint32_t nc = 0, off = 0;
        struct mqo_sub_entry se;
        uint32_t sub_id = MQO_PROP_HAS(&pk->props, MQO_PROP_SUBSCRIPTION_ID)
                              ? pk->props.sub_ids[0]
                              : 0;
        char filters[8][128];
        while (mqo_mqtt_sub_next(pk, &off, &se) && nc < 8) {
            char f[128];
            snprintf(f, sizeof f, "%.*s", se.filter.len, (const char *)se.filter.p);
            snprintf(filters[nc], sizeof filters[nc], "%s", f);
            if (h->deny_sub_prefix[0] &&
                strncmp(f, h->deny_sub_prefix, strlen(h->deny_sub_prefix)) == 0) {
                codes[nc++] = cl->b_version == 5 ? 0x87 : 0x80;
                filters[nc - 1][0] = 0;
                continue;
            }
            int k;
            for (k = 0; k < bs->n_subs; k++)
                if (strcmp(bs->subs[k].filter, f) == 0)
                    break;
            if (k == bs->n_subs && bs->n_subs < H_MAX_SUBS)
                bs->n_subs++;
            snprintf(bs->subs[k].filter, sizeof bs->subs[k].filter, "%s", f);
            bs->subs[k].opts = se.opts;
            bs->subs[k].sub_id = sub_id;
            codes[nc++] = MQO_SUBOPT_QOS(se.opts);
        }
        uint8_t body[80];
        size_t bl = 0;
        body[bl++] = (uint8_t)(pk->pid >> 8);
        body[bl++] = (uint8_t)pk->pid;
        if (cl->b_version == 5)
            body[bl++] = 0;
        memcpy(body + bl, codes, nc);
        bl += nc;
        n = wrap(out, 0x90, body, bl);
        b_send(h, i, out, n);
        /* retained messages for the new subscriptions */
        for (uint32_t k = 0; k < nc; k++) {
            if (!filters[k][0])
                continue;
            for (int r = 0; r < h->n_ret; r++)
                if (mqo_topic_matches((const uint8_t *)filters[k], strlen(filters[k]),
                                      (const uint8_t *)h->ret_topic[r], strlen(h->ret_topic[r])) &&
                    b_acl(h, i, h->ret_topic[r], MQO_ACL_READ))
                    b_deliver(h, i, h->ret_topic[r], h->ret_payload[r], h->ret_plen[r],
                              codes[k] < 1 ? codes[k] : 1, 1, NULL, 0);
        }
        break;
    }
    case MQO_UNSUBSCRIBE: {
        struct h_bsess *bs = &h->sess[cl->b_sess];
        uint8_t codes[64];
        uint32_t nc = 0, off = 0;
        struct mqo_sub_entry se;
        while (mqo_mqtt_sub_next(pk, &off, &se) && nc < 64) {
            int found = 0;
            for (int k = 0; k < bs->n_subs; k++)
                if (strlen(bs->subs[k].filter) == se.filter.len &&
                    memcmp(bs->subs[k].filter, se.filter.p, se.filter.len) == 0) {
                    bs->subs[k] = bs->subs[--bs->n_subs];
                    found = 1;
                    break;
                }
            codes[nc++] = found ? 0x00 : 0x11;
        }
        uint8_t body[80];
        size_t bl = 0;
        body[bl++] = (uint8_t)(pk->pid >> 8);
        body[bl++] = (uint8_t)pk->pid;
        if (cl->b_version == 5) {
            body[bl++] = 0;
            memcpy(body + bl, codes, nc);
            bl += nc;
        }
        n = wrap(out, 0xB0, body, bl);
        b_send(h, i, out, n);
        break;
    }
    case MQO_PUBLISH: {
        cl->b_publish_in++;
        h->broker_publish_in++;
        char topic[256];
        snprintf(topic, sizeof topic, "%.*s", pk->u.publish.topic.len,
                 (const char *)pk->u.publish.topic.p);
        if (cl->b_version == 5 && MQO_PROP_HAS(&pk->props, MQO_PROP_TOPIC_ALIAS)) {
            uint16_t a = pk->props.topic_alias;
            if (a < 16) {
                if (topic[0])
                    snprintf(cl->b_alias[a], sizeof cl->b_alias[a], "%.127s", topic);
                else
                    snprintf(topic, sizeof topic, "%s", cl->b_alias[a]);
            }
        }
        int allowed = b_acl(h, i, topic, MQO_ACL_WRITE);
        if (allowed) {
            if (pk->u.publish.retain)
                b_retain(h, topic, pk->u.publish.payload, pk->u.publish.payload_len);
            b_distribute(h, i, topic, pk->u.publish.payload, pk->u.publish.payload_len,
                         pk->u.publish.qos);
        }
        if (pk->u.publish.qos == 1) {
            n = hb_ack(out, MQO_PUBACK, pk->pid);
            b_send(h, i, out, n);
        } else if (pk->u.publish.qos == 2) {
            n = hb_ack(out, MQO_PUBREC, pk->pid);
            b_send(h, i, out, n);
        }
        break;
    }
    case MQO_PUBREL:
        n = hb_ack(out, MQO_PUBCOMP, pk->pid);
        b_send(h, i, out, n);
        break;
    case MQO_PUBREC:
        n = hb_ack(out, MQO_PUBREL, pk->pid);
        b_send(h, i, out, n);
        break;
    case MQO_PUBACK:
    case MQO_PUBCOMP:
        if (cl->b_inflight)
            cl->b_inflight--;
        break;
    case MQO_PINGREQ:
        n = hb_simple(out, MQO_PINGRESP);
        b_send(h, i, out, n);
        break;
    case MQO_DISCONNECT:
        if (cl->b_version == 5 && MQO_PROP_HAS(&pk->props, MQO_PROP_SESSION_EXPIRY) &&
            cl->b_sess >= 0) {
            h->sess[cl->b_sess].expiry = pk->props.session_expiry;
            h->sess[cl->b_sess].persistent = pk->props.session_expiry > 0;
        }
        break;
    default:
        break;
    }
}

static void b_input(struct harness *h, int i, const uint8_t *p, size_t n)
{
    struct h_client *cl = &h->cl[i];
    mqo_buf_append(&cl->brx, p, n);
    size_t off = 0;
    for (;;) {
        struct mqo_frame f;
        ssize_t t = mqo_mqtt_frame(cl->brx.data + off, cl->brx.len - off, 0, &f);
        if (t <= 0)
            break;
        struct mqo_pkt pk;
        if (mqo_mqtt_decode(cl->brx.data + off, (size_t)t,
                            cl->b_version ? (uint8_t)cl->b_version : 4, MQO_C2S, &pk) == 0)
            b_handle(h, i, &pk);
        else
            fprintf(stderr, "harness broker: client %d sent a packet it cannot decode\n", i);
        off += (size_t)t;
    }
    mqo_buf_consume(&cl->brx, off);
}

/* The broker's side of client i's connection ends. */
static void b_close_conn(struct harness *h, int i)
{
    struct h_client *cl = &h->cl[i];
    if (!cl->b_connected)
        return;
    cl->b_connected = 0;
    if (cl->b_sess >= 0) {
        struct h_bsess *bs = &h->sess[cl->b_sess];
        bs->online = 0;
        if (!bs->persistent)
            bs->used = 0;
    }
    cl->b_sess = -1;
    cl->closed = 1;
    if (h->direct == H_ENGINE && cl->conn) {
        mqo_engine_conn_close(h->eng, cl->conn, h->now);
        cl->conn = NULL;
    }
    if (h->direct == H_SPLICE)
        ts_close(&h->net, cl->bep);
}

void h_close(struct harness *h, int i)
{
    struct h_client *cl = &h->cl[i];
    /* what was in flight toward the broker arrives before the close */
    h_run(h);
    if (h->direct == H_SPLICE) {
        /* the client's FIN travels; the broker closes when it sees it */
        ts_close(&h->net, cl->cep);
        h_run(h);
        cl->closed = 1;
        return;
    }
    b_close_conn(h, i);
    if (h->direct == H_ENGINE && cl->conn) {
        mqo_engine_conn_close(h->eng, cl->conn, h->now);
        cl->conn = NULL;
    }
    cl->closed = 1;
}

/* ---- client side ---- */

static void c_record(struct harness *h, int i, const struct mqo_pkt *pk)
{
    struct h_client *cl = &h->cl[i];
    if (cl->n_rx >= H_MAX_RX)
        return;
    struct h_rx *r = &cl->rx[cl->n_rx++];
    memset(r, 0, sizeof *r);
    r->type = pk->type;
    r->pid = pk->pid;
    r->reason = pk->reason;
    if (pk->type == MQO_CONNACK)
        r->session_present = pk->u.connack.session_present;
    if (pk->type == MQO_SUBACK || pk->type == MQO_UNSUBACK) {
        r->n_codes = pk->u.suback.count < 8 ? pk->u.suback.count : 8;
        if (r->n_codes)
            memcpy(r->codes, pk->u.suback.codes, r->n_codes);
    }
    if (pk->type != MQO_PUBLISH)
        return;
    r->qos = pk->u.publish.qos;
    r->dup = pk->u.publish.dup;
    r->retain = pk->u.publish.retain;
    snprintf(r->topic, sizeof r->topic, "%.*s", pk->u.publish.topic.len,
             (const char *)pk->u.publish.topic.p);
    r->plen = pk->u.publish.payload_len;
    if (r->plen)
        memcpy(r->payload, pk->u.publish.payload, r->plen < 512 ? r->plen : 512);
    r->n_sub_ids = pk->props.n_sub_ids < 4 ? pk->props.n_sub_ids : 4;
    memcpy(r->sub_ids, pk->props.sub_ids, r->n_sub_ids * sizeof r->sub_ids[0]);
}

static void c_input(struct harness *h, int i, const uint8_t *p, size_t n)
{
    struct h_client *cl = &h->cl[i];
    mqo_buf_append(&cl->crx, p, n);
    size_t off = 0;
    for (;;) {
        struct mqo_frame f;
        ssize_t t = mqo_mqtt_frame(cl->crx.data + off, cl->crx.len - off, 0, &f);
        if (t <= 0)
            break;
        struct mqo_pkt pk;
        int rc = mqo_mqtt_decode(cl->crx.data + off, (size_t)t, cl->version ? cl->version : 4,
                                 MQO_S2C, &pk);
        if (rc == 0) {
            c_record(h, i, &pk);
            uint8_t a[4];
            if (cl->auto_ack && pk.type == MQO_PUBLISH && pk.u.publish.qos == 1)
                h_send(h, i, a, hb_ack(a, MQO_PUBACK, pk.pid));
            else if (cl->auto_ack && pk.type == MQO_PUBLISH && pk.u.publish.qos == 2)
                h_send(h, i, a, hb_ack(a, MQO_PUBREC, pk.pid));
            else if (cl->auto_ack && pk.type == MQO_PUBREL)
                h_send(h, i, a, hb_ack(a, MQO_PUBCOMP, pk.pid));
            else if (pk.type == MQO_PUBREC) /* our QoS 2 publish goes on */
                h_send(h, i, a, hb_ack(a, MQO_PUBREL, pk.pid));
        } else {
            fprintf(stderr, "harness client %d: cannot decode a packet from the server (%d)\n",
                    i, rc);
            cl->n_rx = cl->n_rx < H_MAX_RX ? cl->n_rx : H_MAX_RX;
        }
        off += (size_t)t;
    }
    mqo_buf_consume(&cl->crx, off);
}

void h_send(struct harness *h, int i, const void *p, size_t n)
{
    struct h_client *cl = &h->cl[i];
    if (cl->closed)
        return;
    cl->c_last_tx = h->direct == H_SPLICE ? h->net.now : h->now;
    if (h->direct == H_DIRECT) {
        mqo_buf_append(&cl->c2b, p, n);
        return;
    }
    if (h->direct == H_SPLICE) {
        ts_write(&h->net, cl->cep, p, n);
        return;
    }
    mqo_engine_input(h->eng, cl->conn, MQO_C2S, p, n, h->now);
}

void h_send_bytewise(struct harness *h, int i, const void *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        h_send(h, i, (const uint8_t *)p + k, 1);
}

/* Clients ping when they have sent nothing for their keep-alive, as real clients do. */
static void client_pings(struct harness *h)
{
    uint64_t now = h->direct == H_SPLICE ? h->net.now : h->now;
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (!cl->used || cl->closed || cl->no_ping || !cl->c_keepalive)
            continue;
        if (now - cl->c_last_tx >= (uint64_t)cl->c_keepalive * 1000 * MS) {
            uint8_t b[2];
            h_send(h, i, b, hb_simple(b, MQO_PINGREQ));
        }
    }
}

/* H_SPLICE: moves what the TCP endpoints received to the broker model and the clients. */
static int splice_pump(struct harness *h)
{
    int moved = 0;
    /* events of the next second; when there are none, the next one whenever it is (a
     * backed-off retransmission) */
    if (ts_net_run(&h->net, 1000 * MS) == 0 && ts_net_busy(&h->net))
        ts_net_run(&h->net, 60000 * MS);
    h->now = h->net.now;
    client_pings(h);
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (!cl->used || !cl->cep)
            continue;
        if (cl->bep->app_in.len) {
            struct mqo_buf b = cl->bep->app_in;
            cl->bep->app_in = (struct mqo_buf){0};
            if (cl->b_connected || !cl->closed)
                b_input(h, i, b.data, b.len);
            mqo_buf_free(&b);
            moved = 1;
        }
        if (cl->cep->app_in.len && !cl->hold_app) {
            struct mqo_buf b = cl->cep->app_in;
            cl->cep->app_in = (struct mqo_buf){0};
            c_input(h, i, b.data, b.len);
            mqo_buf_free(&b);
            moved = 1;
        }
        if (cl->bep->fin_rcvd && cl->b_connected) {
            b_close_conn(h, i); /* the client went away */
            moved = 1;
        }
        if ((cl->cep->rst_rcvd || cl->cep->fin_rcvd) && !cl->closed) {
            cl->closed = 1;
            if (cl->cep->fin_rcvd)
                ts_close(&h->net, cl->cep);
            moved = 1;
        }
        if (cl->bep->rst_rcvd && cl->b_connected) {
            b_close_conn(h, i);
            moved = 1;
        }
    }
    /* keep going while data moves or TCP timers are armed, for at most 120 s (simulated) after
     * the last application data moved: a window held shut by a reader that stopped would
     * otherwise keep the probes going forever */
    if (moved) {
        h->splice_progress_at = h->net.now;
        return 1;
    }
    int busy = ts_net_busy(&h->net) && h->net.now - h->splice_progress_at < 120000 * MS;
    if (!busy && getenv("HARNESS_DEBUG"))
        fprintf(stderr, "harness: quiet at %llu ms (frames %zu, splice timer %llu)\n",
                (unsigned long long)(h->net.now / MS), h->net.n,
                (unsigned long long)mqo_splice_next_timer(h->splice, h->net.now));
    return busy;
}

void h_run(struct harness *h)
{
    uint64_t t0 = h->net.now;
    for (int round = 0; round < 1000000; round++) {
        int moved = 0;
        if (h->direct == H_SPLICE) {
            /* keep-alive pings never stop on their own: a run is at most 10 simulated minutes */
            if (h->net.now - t0 > 600000 * MS) {
                if (getenv("HARNESS_DEBUG"))
                    fprintf(stderr, "harness: run stopped after 600 s simulated\n");
                return;
            }
            moved = splice_pump(h);
        }
        for (int i = 0; i < H_MAX_CLIENTS; i++) {
            struct h_client *cl = &h->cl[i];
            if (!cl->used)
                continue;
            if (cl->c2b.len) {
                struct mqo_buf b = cl->c2b;
                cl->c2b = (struct mqo_buf){0};
                if (cl->b_connected || !cl->closed)
                    b_input(h, i, b.data, b.len);
                mqo_buf_free(&b);
                moved = 1;
            }
            if (cl->bout.len) {
                struct mqo_buf b = cl->bout;
                cl->bout = (struct mqo_buf){0};
                if (cl->drop_bout)
                    ;
                else if (h->direct == H_SPLICE)
                    ts_write(&h->net, cl->bep, b.data, b.len);
                else if (h->direct == H_DIRECT)
                    c_input(h, i, b.data, b.len);
                else if (cl->conn)
                    mqo_engine_input(h->eng, cl->conn, MQO_S2C, b.data, b.len, h->now);
                mqo_buf_free(&b);
                moved = 1;
            }
            if (cl->b2c.len) {
                struct mqo_buf b = cl->b2c;
                cl->b2c = (struct mqo_buf){0};
                c_input(h, i, b.data, b.len);
                mqo_buf_free(&b);
                moved = 1;
            }
            if (cl->closed && cl->conn) {
                /* the engine asked for a close: the mode closes both sides */
                b_close_conn(h, i);
                if (cl->conn) {
                    mqo_engine_conn_close(h->eng, cl->conn, h->now);
                    cl->conn = NULL;
                }
                moved = 1;
            }
        }
        if (!moved)
            return;
    }
}

void h_advance(struct harness *h, uint64_t ms)
{
    uint64_t end = h->now + ms * MS;
    while (h->now < end) {
        uint64_t step = end - h->now < 100 * MS ? end - h->now : 100 * MS;
        h->now += step;
        if (h->eng)
            mqo_engine_tick(h->eng, h->now);
        if (h->splice) {
            ts_net_advance(&h->net, h->now > h->net.now ? h->now - h->net.now : 0);
            h->now = h->net.now;
        }
        client_pings(h);
        h_run(h);
        /* broker keep-alive: 1.5 x the interval without a packet closes the client */
        for (int i = 0; i < H_MAX_CLIENTS; i++) {
            struct h_client *cl = &h->cl[i];
            if (cl->used && cl->b_connected && cl->b_keepalive &&
                h->now - cl->b_last_in > (uint64_t)cl->b_keepalive * 1500 * MS) {
                cl->close_reason = -0x8D;
                b_close_conn(h, i);
            }
        }
    }
}

/* ---- convenience ---- */

int h_connect(struct harness *h, int i, uint8_t version, const char *cid, int clean,
              uint16_t keepalive)
{
    uint8_t b[512];
    h->cl[i].version = version;
    h->cl[i].c_keepalive = keepalive;
    h_send(h, i, b, hb_connect(b, version, cid, clean, keepalive, NULL, 0, -1));
    h_run(h);
    for (size_t k = h->cl[i].n_rx; k-- > 0;)
        if (h->cl[i].rx[k].type == MQO_CONNACK)
            return h->cl[i].rx[k].reason == 0;
    return 0;
}

static uint16_t next_pid(struct harness *h, int i)
{
    static uint16_t p = 100;
    (void)h;
    (void)i;
    if (++p == 0)
        p = 1;
    return p;
}

int h_subscribe(struct harness *h, int i, const char *filter, uint8_t opts, uint32_t sub_id)
{
    uint8_t b[512];
    size_t before = h->cl[i].n_rx;
    h_send(h, i, b, hb_subscribe(b, h->cl[i].version, next_pid(h, i), filter, opts, sub_id));
    h_run(h);
    for (size_t k = before; k < h->cl[i].n_rx; k++)
        if (h->cl[i].rx[k].type == MQO_SUBACK)
            return h->cl[i].rx[k].codes[0];
    return -1;
}

int h_unsubscribe(struct harness *h, int i, const char *filter)
{
    uint8_t b[512];
    size_t before = h->cl[i].n_rx;
    h_send(h, i, b, hb_unsubscribe(b, h->cl[i].version, next_pid(h, i), filter));
    h_run(h);
    for (size_t k = before; k < h->cl[i].n_rx; k++)
        if (h->cl[i].rx[k].type == MQO_UNSUBACK)
            return 0;
    return -1;
}

void h_publish(struct harness *h, int i, const char *topic, const char *payload, uint8_t qos,
               int retain)
{
    size_t pl = strlen(payload);
    uint8_t *b = malloc(pl + strlen(topic) + 64);
    h_send(h, i, b,
           hb_publish(b, h->cl[i].version, topic, payload, pl, qos, retain,
                      qos ? next_pid(h, i) : 0, 0));
    free(b);
}

size_t h_count_pub(const struct harness *h, int i, const char *topic)
{
    size_t n = 0;
    for (size_t k = 0; k < h->cl[i].n_rx; k++)
        if (h->cl[i].rx[k].type == MQO_PUBLISH && (!topic || !strcmp(h->cl[i].rx[k].topic, topic)))
            n++;
    return n;
}

const struct h_rx *h_pub(const struct harness *h, int i, size_t k)
{
    for (size_t j = 0; j < h->cl[i].n_rx; j++)
        if (h->cl[i].rx[j].type == MQO_PUBLISH && k-- == 0)
            return &h->cl[i].rx[j];
    return NULL;
}

size_t h_count_type(const struct harness *h, int i, uint8_t type)
{
    size_t n = 0;
    for (size_t k = 0; k < h->cl[i].n_rx; k++)
        if (h->cl[i].rx[k].type == type)
            n++;
    return n;
}

int h_same_per_publisher(const struct harness *a, const struct harness *b, int i, int npub,
                         char *why, size_t whylen)
{
    size_t na = h_count_pub(a, i, NULL), nb = h_count_pub(b, i, NULL);
    if (na != nb) {
        snprintf(why, whylen, "client %d: %zu messages in one run, %zu in the other", i, na, nb);
        return 0;
    }
    for (int p = 0; p < npub; p++) {
        char pre[32];
        snprintf(pre, sizeof pre, "p%d:", p);
        size_t pl = strlen(pre), ka = 0, kb = 0;
        for (;;) {
            const struct h_rx *ra, *rb;
            while ((ra = h_pub(a, i, ka)) && (ra->plen < pl || memcmp(ra->payload, pre, pl)))
                ka++;
            while ((rb = h_pub(b, i, kb)) && (rb->plen < pl || memcmp(rb->payload, pre, pl)))
                kb++;
            if (!ra || !rb) {
                if (ra || rb) {
                    snprintf(why, whylen, "client %d: publisher %d's messages differ in number",
                             i, p);
                    return 0;
                }
                break;
            }
            if (ra->plen != rb->plen || memcmp(ra->payload, rb->payload, ra->plen) ||
                strcmp(ra->topic, rb->topic) || ra->qos != rb->qos) {
                snprintf(why, whylen, "client %d: '%.*s' %s q%d in one run, '%.*s' %s q%d in the other",
                         i, (int)ra->plen, (const char *)ra->payload, ra->topic, ra->qos,
                         (int)rb->plen, (const char *)rb->payload, rb->topic, rb->qos);
                return 0;
            }
            ka++;
            kb++;
        }
    }
    return 1;
}

void h_random_script(struct harness *h, unsigned seed, int nsub, int n, int churn)
{
    srand(seed);
    const char *topics[] = {"a", "a/b", "a/c", "b", "b/x/y"};
    const char *filters[] = {"a", "a/+", "#", "b/#", "a/b", "+/x/+"};
    int npub = 3;
    for (int i = 0; i < npub + nsub; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "c%d", i);
        h_open(h);
        h_connect(h, i, (uint8_t)(i % 2 ? MQO_MQTT_V5 : MQO_MQTT_V311), cid, 1, 30);
    }
    for (int i = npub; i < npub + nsub; i++)
        h_subscribe(h, i, filters[rand() % 6], (uint8_t)(rand() % 2), 0);
    for (int k = 0; k < n; k++) {
        int p = rand() % npub;
        if (churn) {
            int what = rand() % 20;
            if (what == 0) {
                h_subscribe(h, npub + rand() % nsub, filters[rand() % 6], (uint8_t)(rand() % 2), 0);
                continue;
            }
            if (what == 1) {
                h_unsubscribe(h, npub + rand() % nsub, filters[rand() % 6]);
                continue;
            }
        }
        char pl[32];
        snprintf(pl, sizeof pl, "p%d:%d", p, k);
        h_publish(h, p, topics[rand() % 5], pl, (uint8_t)(rand() % 3), rand() % 10 == 0);
        if (rand() % 3 == 0)
            h_run(h);
        if (churn && rand() % 50 == 0)
            h_advance(h, 200);
    }
    h_run(h);
}
