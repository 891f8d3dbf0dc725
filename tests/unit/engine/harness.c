/* In-memory harness: scripted clients, the engine and a small reference broker. */
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "core/log.h"
#include "mqtt/mqtt.h"
#include "topic/topic.h"

#define MS 1000000ull

static int idx_of(const struct harness *h, const struct mqo_conn *c)
{
    return (int)(intptr_t)mqo_conn_ud(c) - 1;
}

/* ---- engine ops ---- */

static void op_peer(void *ud, const struct mqo_conn *c, struct mqo_peer *p)
{
    const struct harness *h = ud;
    *p = h->cl[idx_of(h, c)].peer;
}

void h_set_peer(struct harness *h, int i, const char *peer) { mqo_peer_parse(&h->cl[i].peer, peer); }

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


static void trk_input(void *arg, struct ts_ep *ep);

static uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    uint8_t v[4] = {a, b, c, d};
    uint32_t r;
    memcpy(&r, v, 4);
    return r;
}

size_t h_share_min;
uint32_t h_client_window;
int h_defer_acks;
size_t h_client_window_mem;
uint32_t h_tso_max;
int h_csum_offload;

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
        c = (struct mqo_engine_cfg){.acl_mode = MQO_ACL_OPEN, .exclusive = 1};
    if (mode == H_SPLICE) {
        struct mqo_splice_cfg sc = {.broker_ip = ip4(198, 18, 0, 2),
                                    .broker_port = 1883,
                                    .engine = c,
                                    .emit = ts_emit,
                                    .emit_shared = h_share_min ? ts_emit_shared : NULL,
                                    .share_min = h_share_min,
                                    .client_window = h_client_window,
                                    .client_window_mem = h_client_window_mem,
                                    .ud = &h->net,
                                    .startup_hold_ms = -1}; /* the broker model starts empty */
        h->splice = mqo_splice_new(&sc);
        h->scfg = sc;
        if (h->splice && (h_tso_max || h_csum_offload)) {
            struct mqo_splice_offload o = {.tso_max = h_tso_max, .csum = h_csum_offload};
            mqo_splice_set_offload(h->splice, MQO_SIDE_CLIENT, &o);
            mqo_splice_set_offload(h->splice, MQO_SIDE_BROKER, &o);
        }
        ts_net_init(&h->net, h->splice, 42);
        h->net.now = h->now;
        if (h->splice && h_defer_acks) {
            mqo_splice_defer_acks(h->splice, 1);
            h->net.defer_acks = 1;
        }
        h->net.on_input = trk_input;
        h->net.on_input_arg = h;
        return;
    }
    c.ops = (struct mqo_engine_ops){.forward = op_forward,
                                    .consume = op_consume,
                                    .insert = op_insert,
                                    .room = op_room,
                                    .close = op_close,
                                    .peer = op_peer};
    c.ud = h;
    h->cfg = c;
    h->eng = mqo_engine_new(&c);
}

static int splice_takeover(struct harness *h, struct mqo_buf *snap)
{
    struct mqo_buf b = {0};
    int rc = mqo_splice_save(h->splice, &b);
    struct mqo_splice *ns = rc ? NULL : mqo_splice_new(&h->scfg);
    if (!rc && !ns)
        rc = -ENOMEM;
    if (!rc)
        rc = mqo_splice_load(ns, b.data, b.len);
    if (!rc && h_defer_acks)
        mqo_splice_defer_acks(ns, 1);
    if (!rc && (h_tso_max || h_csum_offload)) {
        struct mqo_splice_offload o = {.tso_max = h_tso_max, .csum = h_csum_offload};
        mqo_splice_set_offload(ns, MQO_SIDE_CLIENT, &o);
        mqo_splice_set_offload(ns, MQO_SIDE_BROKER, &o);
    }
    if (rc) {
        mqo_splice_free(ns);
        mqo_buf_free(&b);
        return rc;
    }
    if (snap)
        mqo_buf_append(snap, b.data, b.len);
    mqo_buf_free(&b);
    struct mqo_splice *old = h->splice;
    h->splice = ns;
    h->net.splice = ns;
    enum mqo_log_level lvl = mqo_log_get_level();
    mqo_log_set_level(MQO_LOG_ERROR);
    mqo_splice_free(old);
    mqo_log_set_level(lvl);
    return 0;
}

int h_takeover(struct harness *h, struct mqo_buf *snap)
{
    if (h->splice)
        return splice_takeover(h, snap);
    struct mqo_buf b = {0};
    int rc = mqo_engine_save(h->eng, &b);
    struct mqo_engine *ne = rc ? NULL : mqo_engine_new(&h->cfg);
    if (!rc && !ne)
        rc = -ENOMEM;
    if (!rc)
        rc = mqo_engine_load(ne, b.data, b.len);
    for (int i = 0; !rc && i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (!cl->used || !cl->conn)
            continue;
        struct mqo_conn *c = mqo_engine_conn_find(ne, mqo_conn_id(cl->conn));
        if (!c || mqo_conn_ud(c)) {
            rc = -ENOENT;
            break;
        }
        mqo_conn_set_ud(c, (void *)(intptr_t)(i + 1));
    }
    if (rc) {
        mqo_engine_free(ne);
        mqo_buf_free(&b);
        return rc;
    }
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (cl->used && cl->conn)
            cl->conn = mqo_engine_conn_find(ne, mqo_conn_id(cl->conn));
    }
    if (snap)
        mqo_buf_append(snap, b.data, b.len);
    mqo_buf_free(&b);
    /* the old engine goes without telling the mode anything (the process exits) */
    struct mqo_engine *old = h->eng;
    h->eng = ne;
    enum mqo_log_level lvl = mqo_log_get_level();
    mqo_log_set_level(MQO_LOG_ERROR);
    mqo_engine_free(old);
    mqo_log_set_level(lvl);
    return 0;
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
    mqo_buf_free(&cl->b_waiting);
    free(cl->rx);
    for (size_t k = 0; k < cl->n_tx; k++)
        free(cl->tx[k].data);
    free(cl->tx);
    mqo_buf_free(&cl->txp);
    free(cl->f_in);
}

const struct mqo_engine_stats *h_stats(const struct harness *h)
{
    return h->splice ? mqo_splice_engine_stats(h->splice) : mqo_engine_stats(h->eng);
}

void h_free(struct harness *h)
{
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        if (h->cl[i].used)
            client_free(&h->cl[i]);
        else
            free(h->cl[i].f_in); /* h_follow named a client the script never opened */
    }
    if (h->splice) {
        mqo_splice_free(h->splice);
        ts_net_free(&h->net);
    }
    for (int i = 0; i < H_MAX_CLIENTS; i++)
        mqo_buf_free(&h->sess[i].queued);
    mqo_engine_free(h->eng);
    free(h->follow);
}

int h_open(struct harness *h)
{
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (cl->used)
            continue;
        uint8_t *f_in = cl->f_in; /* set by h_follow before the script opened the client */
        size_t n_f_in = cl->n_f_in;
        memset(cl, 0, sizeof *cl);
        cl->f_in = f_in;
        cl->n_f_in = n_f_in;
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
            /* clients on four hosts, with two TTLs and three TOS values between them: the
             * splice's frames must take each connection's (h_tcp_clean checks them) */
            h_client_l2(h, i, (uint8_t)(i % 4), (uint8_t)(64 - i % 2), (uint8_t)(i % 3 * 4));
            ts_net_add(&h->net, cl->cep);
            ts_net_add(&h->net, cl->bep);
            ts_connect(&h->net, cl->cep);
            h_run(h);
        }
        return i;
    }
    return -1;
}

void h_client_l2(struct harness *h, int i, uint8_t host, uint8_t ttl, uint8_t tos)
{
    struct h_client *cl = &h->cl[i];
    uint8_t mac[6] = {0x02, 0, 0, 0, 1, host};
    memcpy(cl->cep->mac, mac, 6);
    memcpy(cl->bep->peer_mac, mac, 6);
    cl->cep->ttl = cl->bep->peer_ttl = ttl;
    cl->cep->tos = cl->bep->peer_tos = tos;
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
    size_t n = version == MQO_MQTT_V31 ? put_str(b, "MQIsdp", 6) : put_str(b, "MQTT", 4);
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

/* ---- when the clients' packets take effect (see harness.h) ---- */

static int significant(uint8_t type)
{
    return type == MQO_CONNECT || type == MQO_PUBLISH || type == MQO_SUBSCRIBE ||
           type == MQO_UNSUBSCRIBE || type == MQO_DISCONNECT;
}

static const char *type_name(uint8_t type)
{
    static const char *n[16] = {"?", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
                                "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE",
                                "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};
    return n[type & 15];
}

static void order_error(struct harness *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void order_error(struct harness *h, const char *fmt, ...)
{
    if (!h->order_errors++) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(h->order_err, sizeof h->order_err, fmt, ap);
        va_end(ap);
    }
}

/* H_SPLICE: client i writes p[0..n) to its connection. */
static void trk_sent(struct harness *h, int i, const uint8_t *p, size_t n)
{
    struct h_client *cl = &h->cl[i];
    mqo_buf_append(&cl->txp, p, n);
    size_t off = 0;
    for (;;) {
        struct mqo_frame f;
        ssize_t t = mqo_mqtt_frame(cl->txp.data + off, cl->txp.len - off, 0, &f);
        if (t < 0) {
            order_error(h, "client %d sent bytes that are not MQTT", i);
            off = cl->txp.len;
            break;
        }
        if (t == 0)
            break;
        cl->tx_off += (uint64_t)t;
        if (significant(f.type)) {
            if (cl->n_tx == cl->cap_tx) {
                cl->cap_tx = cl->cap_tx ? 2 * cl->cap_tx : 64;
                cl->tx = realloc(cl->tx, cl->cap_tx * sizeof *cl->tx);
            }
            struct h_txpkt *x = &cl->tx[cl->n_tx++];
            memset(x, 0, sizeof *x);
            x->data = malloc((size_t)t);
            memcpy(x->data, cl->txp.data + off, (size_t)t);
            x->len = (size_t)t;
            x->end = cl->tx_off;
            x->sent = ++h->cseq;
            x->consumed = -1;
        }
        off += (size_t)t;
    }
    mqo_buf_consume(&cl->txp, off);
}

/* H_SPLICE: the splice took a frame. What its engine got of a client's stream is decided
 * (the engine keeps only an incomplete packet); the engine's counter says whether the
 * PUBLISHes among it were consumed. */
static void trk_input(void *arg, struct ts_ep *ep)
{
    struct harness *h = arg;
    uint64_t fed = mqo_splice_stats(h->splice)->bytes_in[0];
    uint64_t consumed = h_stats(h)->consumed;
    uint64_t dfed = fed - h->seen_fed, dcons = consumed - h->seen_consumed;
    h->seen_fed = fed;
    h->seen_consumed = consumed;
    if (!dfed && !dcons)
        return;
    int i;
    for (i = 0; i < H_MAX_CLIENTS; i++)
        if (h->cl[i].used && (h->cl[i].cep == ep || h->cl[i].bep == ep))
            break;
    if (i == H_MAX_CLIENTS) {
        order_error(h, "the splice took client bytes from an unknown connection");
        return;
    }
    struct h_client *cl = &h->cl[i];
    cl->fed += dfed;
    size_t first = cl->dec_pos;
    uint64_t npub = 0;
    for (; cl->dec_pos < cl->n_tx && cl->tx[cl->dec_pos].end <= cl->fed; cl->dec_pos++) {
        cl->tx[cl->dec_pos].decided = ++h->cseq;
        if (cl->tx[cl->dec_pos].data[0] >> 4 == MQO_PUBLISH)
            npub++;
    }
    if (dcons > npub)
        order_error(h, "client %d: %llu PUBLISH consumed, %llu reached the engine", i,
                    (unsigned long long)dcons, (unsigned long long)npub);
    for (size_t k = first; k < cl->dec_pos; k++)
        if (cl->tx[k].data[0] >> 4 == MQO_PUBLISH)
            cl->tx[k].consumed = dcons == 0 ? 0 : dcons == npub ? 1 : -1;
}

/* H_SPLICE: the broker model processes p[0..n) from client i: it must be the next packet the
 * client sent, after those the offload consumed. */
static void trk_broker(struct harness *h, int i, const uint8_t *p, size_t n)
{
    struct h_client *cl = &h->cl[i];
    uint8_t type = p[0] >> 4;
    if (!significant(type))
        return;
    while (cl->brk_pos < cl->n_tx) {
        struct h_txpkt *x = &cl->tx[cl->brk_pos];
        int is_pub = x->data[0] >> 4 == MQO_PUBLISH;
        if (is_pub && x->decided && x->consumed == 1) {
            cl->brk_pos++; /* consumed: it never comes */
            continue;
        }
        int same = x->data[0] >> 4 == type &&
                   (type == MQO_CONNECT || /* the engine may rewrite Receive Maximum */
                    (x->len == n && memcmp(x->data, p, n) == 0));
        if (same && x->decided) {
            x->brok = ++h->cseq;
            if (is_pub)
                x->consumed = 0;
            cl->brk_pos++;
            return;
        }
        if (is_pub && x->decided && x->consumed == -1) {
            x->consumed = 1;
            cl->brk_pos++;
            continue;
        }
        break;
    }
    if (cl->brk_pos < cl->n_tx)
        order_error(h, "the broker received a %s from client %d whose next packet is its %s "
                       "(packet %zu): lost, sent twice, altered or reordered on the way",
                    type_name(type), i, type_name(cl->tx[cl->brk_pos].data[0] >> 4), cl->brk_pos);
    else
        order_error(h, "the broker received a %s from client %d after all it sent (packet %zu "
                       "again?)",
                    type_name(type), i, cl->n_tx);
}

struct step {
    uint64_t at;
    int client;
    uint32_t k;
};

static int step_cmp(const void *a, const void *b)
{
    const struct step *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    if (x->client != y->client)
        return x->client < y->client ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

long h_broker_order(const struct harness *o, int variant, struct h_order **out,
                    int *inversions, char *why, size_t whylen)
{
    *out = NULL;
    *inversions = 0;
    if (o->order_errors) {
        snprintf(why, whylen, "%s", o->order_err);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < H_MAX_CLIENTS; i++)
        total += o->cl[i].used ? o->cl[i].n_tx : 0;
    struct step *st = malloc((total ? total : 1) * sizeof *st);
    size_t n = 0;
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        const struct h_client *cl = &o->cl[i];
        if (!cl->used)
            continue;
        size_t first = n;
        uint64_t hi = 0;
        for (size_t k = 0; k < cl->n_tx; k++) {
            const struct h_txpkt *x = &cl->tx[k];
            uint64_t at = x->brok;
            if (!at && x->decided && x->data[0] >> 4 == MQO_PUBLISH && x->consumed != 0)
                at = x->decided; /* consumed: delivered when the engine had it */
            if (!at) {
                if (cl->b_connected && !cl->closed) {
                    snprintf(why, whylen,
                             "client %d's %s (packet %zu) never reached the broker nor the "
                             "offload, and the client is connected",
                             i, type_name(x->data[0] >> 4), k);
                    free(st);
                    return -1;
                }
                continue; /* the connection went away with it */
            }
            if (at < hi)
                ++*inversions;
            hi = at > hi ? at : hi;
            st[n++] = (struct step){at, i, (uint32_t)k};
        }
        /* keep the client's order: variant 0 delays what overtook, variant 1 advances what
         * was overtaken */
        if (variant == 0) {
            for (size_t k = first + 1; k < n; k++)
                if (st[k].at < st[k - 1].at)
                    st[k].at = st[k - 1].at;
        } else {
            for (size_t k = n; k-- > first + 1;)
                if (st[k - 1].at > st[k].at)
                    st[k - 1].at = st[k].at;
        }
    }
    qsort(st, n, sizeof *st, step_cmp);
    *out = malloc((n ? n : 1) * sizeof **out);
    for (size_t k = 0; k < n; k++)
        (*out)[k] = (struct h_order){st[k].client, st[k].k};
    free(st);
    return (long)n;
}

void h_follow(struct harness *d, const struct h_order *ord, size_t n)
{
    free(d->follow);
    d->follow = malloc((n ? n : 1) * sizeof *ord);
    memcpy(d->follow, ord, n * sizeof *ord);
    d->n_follow = n;
    d->follow_pos = 0;
    for (size_t k = 0; k < n; k++) {
        struct h_client *cl = &d->cl[ord[k].client];
        if (ord[k].k >= cl->n_f_in) {
            size_t m = 2 * (size_t)ord[k].k + 16;
            cl->f_in = realloc(cl->f_in, m);
            memset(cl->f_in + cl->n_f_in, 0, m - cl->n_f_in);
            cl->n_f_in = m;
        }
        cl->f_in[ord[k].k] = 1;
    }
}

void h_dump_broker_order(const struct harness *o, FILE *f)
{
    struct h_order *ord;
    int inv;
    char why[256];
    long n = h_broker_order(o, 0, &ord, &inv, why, sizeof why);
    if (n < 0) {
        fprintf(f, "broker order: %s\n", why);
        return;
    }
    fprintf(f, "broker order (%ld packets, %d consumed PUBLISH ahead of their client's earlier "
               "packets):\n",
            n, inv);
    for (long k = 0; k < n; k++) {
        const struct h_client *cl = &o->cl[ord[k].client];
        const struct h_txpkt *x = &cl->tx[ord[k].k];
        struct mqo_pkt pk;
        char d[200] = "";
        uint8_t v = x->data[0] >> 4 == MQO_CONNECT ? 4 : (uint8_t)(cl->version ? cl->version : 4);
        if (mqo_mqtt_decode(x->data, x->len, v, MQO_C2S, &pk) == 0) {
            if (pk.type == MQO_PUBLISH)
                snprintf(d, sizeof d, "%.*s '%.*s' q%d%s", pk.u.publish.topic.len,
                         (const char *)pk.u.publish.topic.p, (int)pk.u.publish.payload_len,
                         (const char *)pk.u.publish.payload, pk.u.publish.qos,
                         pk.u.publish.retain ? " retained" : "");
            if (pk.type == MQO_SUBSCRIBE || pk.type == MQO_UNSUBSCRIBE) {
                uint32_t off = 0;
                struct mqo_sub_entry se;
                if (mqo_mqtt_sub_next(&pk, &off, &se))
                    snprintf(d, sizeof d, "%.*s", se.filter.len, (const char *)se.filter.p);
            }
        }
        /* sent after something of another client that takes effect later */
        int crosses = 0;
        for (long j = k + 1; j < n && !crosses; j++)
            crosses = ord[j].client != ord[k].client &&
                      o->cl[ord[j].client].tx[ord[j].k].sent < x->sent;
        fprintf(f, "  %4ld client %d %-11s %-32s sent %5llu %s %5llu%s\n", k, ord[k].client,
                type_name(x->data[0] >> 4), d, (unsigned long long)x->sent,
                x->brok ? "broker" : "engine",
                (unsigned long long)(x->brok ? x->brok : x->decided),
                crosses ? "  <- ahead of an earlier packet of another client" : "");
    }
    free(ord);
}

int h_same_as_broker(const struct harness *o, void (*script)(struct harness *, const void *),
                     const void *arg, int from, int to, int npub, char *why, size_t whylen,
                     struct harness **ref)
{
    struct harness *d = NULL;
    int ok = 0, inv = 0;
    for (int v = 0; v < 2 && !ok; v++) {
        struct h_order *ord;
        long n = h_broker_order(o, v, &ord, &inv, why, whylen);
        if (n < 0 || (v == 1 && !inv)) {
            free(ord);
            break;
        }
        if (d) {
            h_free(d);
            free(d);
        }
        d = malloc(sizeof *d);
        h_init(d, NULL, H_DIRECT);
        d->acl = o->acl;
        memcpy(d->deny_sub_prefix, o->deny_sub_prefix, sizeof d->deny_sub_prefix);
        h_follow(d, ord, (size_t)n);
        free(ord);
        script(d, arg);
        ok = 1;
        for (int i = from; i < to && ok; i++)
            ok = h_same_per_publisher(d, o, i, npub, why, whylen);
    }
    if (!ok && inv) {
        size_t l = strlen(why);
        snprintf(why + l, whylen - l,
                 " (in either order of the %d consumed PUBLISH that took effect before an "
                 "earlier packet of their publisher)",
                 inv);
    }
    if (ref)
        *ref = d;
    else if (d) {
        h_free(d);
        free(d);
    }
    return ok;
}

static void b_input(struct harness *h, int i, const uint8_t *p, size_t n);

/* H_DIRECT following an order: client i's packets go to the broker as far as their turn has
 * come. Returns 1 when something went. */
static int follow_feed(struct harness *h, int i)
{
    struct h_client *cl = &h->cl[i];
    size_t off = 0;
    for (;;) {
        struct mqo_frame f;
        ssize_t t = mqo_mqtt_frame(cl->c2b.data + off, cl->c2b.len - off, 0, &f);
        if (t < 0)
            t = (ssize_t)(cl->c2b.len - off); /* not MQTT: the broker sees it as it is */
        if (t == 0)
            break;
        const uint8_t *p = cl->c2b.data + off;
        if (significant(p[0] >> 4)) {
            uint32_t k = cl->f_ord;
            int held = k < cl->n_f_in && cl->f_in[k];
            if (held && (h->follow_pos >= h->n_follow || h->follow[h->follow_pos].client != i ||
                         h->follow[h->follow_pos].k != k))
                break; /* its turn has not come */
            cl->f_ord++;
            if (!held) {
                off += (size_t)t; /* it never took effect in the recorded run */
                continue;
            }
            h->follow_pos++;
        }
        if (cl->b_connected || !cl->closed)
            b_input(h, i, p, (size_t)t);
        off += (size_t)t;
    }
    mqo_buf_consume(&cl->c2b, off);
    return off > 0;
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
    if (qos && (cl->b_waiting.len || (cl->b_recv_max && cl->b_inflight > cl->b_recv_max))) {
        /* over the client's Receive Maximum: queued, as Mosquitto does, until an ack */
        uint32_t l32 = (uint32_t)n;
        mqo_buf_append(&cl->b_waiting, &l32, 4);
        mqo_buf_append(&cl->b_waiting, buf, n);
    } else {
        b_send(h, i, buf, n);
    }
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
        cl->b_recv_max = cl->b_version == 5 && MQO_PROP_HAS(&pk->props, MQO_PROP_RECEIVE_MAXIMUM)
                             ? pk->props.receive_maximum
                             : 0;
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
        out[n++] = cl->b_version == 3 ? 0 : (uint8_t)present; /* MQTT 3.1: no such flag */
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
            snprintf(f, sizeof f, "%s%.*s", h->mount, se.filter.len, (const char *)se.filter.p);
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
            char f[128];
            snprintf(f, sizeof f, "%s%.*s", h->mount, se.filter.len, (const char *)se.filter.p);
            for (int k = 0; k < bs->n_subs; k++)
                if (strcmp(bs->subs[k].filter, f) == 0) {
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
        if (h->mount[0]) { /* the listener's mount point prefixes the topic */
            size_t ml = strlen(h->mount), tl = strlen(topic);
            if (ml + tl < sizeof topic) {
                memmove(topic + ml, topic, tl + 1);
                memcpy(topic, h->mount, ml);
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
        else
            cl->b_stray_acks++;
        if (cl->b_waiting.len) {
            uint32_t l32;
            memcpy(&l32, cl->b_waiting.data, 4);
            uint8_t *pkt = malloc(l32);
            memcpy(pkt, cl->b_waiting.data + 4, l32);
            mqo_buf_consume(&cl->b_waiting, 4 + (size_t)l32);
            b_send(h, i, pkt, l32);
            free(pkt);
        }
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
    if (!cl->b_version && cl->brx.len && (cl->brx.data[0] >> 4) != MQO_CONNECT) {
        /* as Mosquitto: a first packet that is not a CONNECT is refused at its first byte */
        cl->b_refused++;
        mqo_buf_consume(&cl->brx, cl->brx.len);
        b_close_conn(h, i);
        return;
    }
    for (;;) {
        struct mqo_frame f;
        ssize_t t = mqo_mqtt_frame(cl->brx.data + off, cl->brx.len - off, 0, &f);
        if (t <= 0)
            break;
        struct mqo_pkt pk;
        if (h->direct == H_SPLICE)
            trk_broker(h, i, cl->brx.data + off, (size_t)t);
        int rc = mqo_mqtt_decode(cl->brx.data + off, (size_t)t,
                                 cl->b_version ? (uint8_t)cl->b_version : 4, MQO_C2S, &pk);
        off += (size_t)t;
        if (rc == 0 && (cl->b_version || pk.type == MQO_CONNECT)) {
            b_handle(h, i, &pk);
            continue;
        }
        /* the broker judges: it closes the connection (a v5 client gets DISCONNECT first);
         * a lenient broker ignores what it cannot decode */
        cl->b_refused++;
        if (cl->b_lenient && cl->b_version)
            continue;
        if (cl->b_version == 5) {
            uint8_t d[3] = {0xE0, 1, (uint8_t)-rc};
            b_send(h, i, d, 3);
        }
        mqo_buf_consume(&cl->brx, cl->brx.len);
        b_close_conn(h, i);
        return;
    }
    mqo_buf_consume(&cl->brx, off);
}

static void c_input(struct harness *h, int i, const uint8_t *p, size_t n);

/* What the broker sent client i goes on its way (toward the engine, the splice, or the
 * client). */
static void b_flush_out(struct harness *h, int i)
{
    struct h_client *cl = &h->cl[i];
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
}

/* The broker's side of client i's connection ends (what it sent before goes first). */
static void b_close_conn(struct harness *h, int i)
{
    struct h_client *cl = &h->cl[i];
    if (cl->bout.len) {
        b_flush_out(h, i);
        if (h->direct == H_ENGINE && cl->b2c.len) {
            struct mqo_buf b = cl->b2c;
            cl->b2c = (struct mqo_buf){0};
            c_input(h, i, b.data, b.len);
            mqo_buf_free(&b);
        }
    }
    if (!cl->b_connected) {
        if (cl->b_refused && !cl->closed) { /* refused before its CONNECT: closed as well */
            cl->closed = 1;
            if (h->direct == H_ENGINE && cl->conn) {
                mqo_engine_conn_close(h->eng, cl->conn, h->now);
                cl->conn = NULL;
            }
            if (h->direct == H_SPLICE)
                ts_close(&h->net, cl->bep);
        }
        return;
    }
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
            if (pk.type == MQO_PUBLISH && pk.u.publish.qos) {
                cl->c_inflight++;
                if (cl->c_inflight > cl->c_inflight_max)
                    cl->c_inflight_max = cl->c_inflight;
                if (cl->c_recv_max && cl->c_inflight > cl->c_recv_max)
                    cl->c_recv_violations++;
                if (cl->auto_ack && pk.u.publish.qos == 1)
                    cl->c_inflight--;
            }
            if (cl->auto_ack && pk.type == MQO_PUBREL && cl->c_inflight)
                cl->c_inflight--;
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
        trk_sent(h, i, p, n);
        ts_write(&h->net, cl->cep, p, n);
        return;
    }
    mqo_engine_input(h->eng, cl->conn, MQO_C2S, p, n, h->now);
}

int h_setup_fanout(struct harness *h, int n, uint8_t v, const char *filter, uint8_t sqos,
                   char *why, size_t whylen)
{
    int p = h_open(h);
    if (p != 0 || !h_connect(h, p, v, "pub", 1, 60)) {
        snprintf(why, whylen, "publisher: client %d, no CONNACK success", p);
        return 0;
    }
    for (int i = 1; i <= n; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "sub%d", i);
        int c = h_open(h), code;
        if (c != i || !h_connect(h, i, v, cid, 1, 60) ||
            (code = h_subscribe(h, i, filter, sqos, 0)) != sqos) {
            snprintf(why, whylen, "subscriber %d (client %d) not set up", i, c);
            return 0;
        }
    }
    return 1;
}

int h_tcp_clean(const struct harness *h, char *why, size_t whylen)
{
    int reorders = h->net.wire.reorder_pct[0] || h->net.wire.reorder_pct[1] ||
                   h->net.wire.dup_pct[0] || h->net.wire.dup_pct[1];
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        const struct h_client *cl = &h->cl[i];
        if (!cl->used || !cl->cep)
            continue;
        if (cl->cep->misaddressed || cl->bep->misaddressed) {
            snprintf(why, whylen,
                     "client %d: frames with the wrong addresses, TTL or TOS: %llu toward the "
                     "client, %llu toward the broker",
                     i, (unsigned long long)cl->cep->misaddressed,
                     (unsigned long long)cl->bep->misaddressed);
            return 0;
        }
        if (cl->cep->violations || cl->bep->violations ||
            (!reorders && (cl->cep->paws_drops || cl->bep->paws_drops))) {
            snprintf(why, whylen, "client %d: violations %llu/%llu, PAWS drops %llu/%llu", i,
                     (unsigned long long)cl->cep->violations,
                     (unsigned long long)cl->bep->violations,
                     (unsigned long long)cl->cep->paws_drops,
                     (unsigned long long)cl->bep->paws_drops);
            return 0;
        }
    }
    return 1;
}

void h_ack(struct harness *h, int i, size_t k)
{
    const struct h_rx *r = h_pub(h, i, k);
    if (!r || !r->qos)
        return;
    uint8_t a[4];
    h_send(h, i, a, hb_ack(a, r->qos == 1 ? MQO_PUBACK : MQO_PUBREC, r->pid));
    if (r->qos == 1 && h->cl[i].c_inflight)
        h->cl[i].c_inflight--;
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
            if (cl->c2b.len && h->follow) {
                moved |= follow_feed(h, i);
            } else if (cl->c2b.len) {
                struct mqo_buf b = cl->c2b;
                cl->c2b = (struct mqo_buf){0};
                if (cl->b_connected || !cl->closed)
                    b_input(h, i, b.data, b.len);
                mqo_buf_free(&b);
                moved = 1;
            }
            if (cl->bout.len && !cl->hold_bout) {
                b_flush_out(h, i);
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
            /* the retain flag too: set on what a subscription gets when it is made, so it
             * tells whether the message took effect before or after the subscription */
            if (ra->plen != rb->plen || memcmp(ra->payload, rb->payload, ra->plen) ||
                strcmp(ra->topic, rb->topic) || ra->qos != rb->qos || ra->retain != rb->retain) {
                snprintf(why, whylen,
                         "client %d: '%.*s' %s q%d%s in one run, '%.*s' %s q%d%s in the other", i,
                         (int)ra->plen, (const char *)ra->payload, ra->topic, ra->qos,
                         ra->retain ? " retained" : "", (int)rb->plen,
                         (const char *)rb->payload, rb->topic, rb->qos,
                         rb->retain ? " retained" : "");
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

static void flight_peak_input(void *arg, struct ts_ep *ep)
{
    struct h_flight_peak *p = arg;
    p->prev(p->prev_arg, ep);
    uint64_t f = mqo_splice_stats(p->sp)->flight_states;
    if (f > p->max)
        p->max = f;
}

void h_flight_peak_start(struct harness *h, struct h_flight_peak *p)
{
    *p = (struct h_flight_peak){h->net.on_input, h->net.on_input_arg, h->splice, 0};
    h->net.on_input = flight_peak_input;
    h->net.on_input_arg = p;
}

void h_flight_peak_stop(struct harness *h, struct h_flight_peak *p)
{
    h->net.on_input = p->prev;
    h->net.on_input_arg = p->prev_arg;
}
