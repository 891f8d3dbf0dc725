/* MQTT encoders: varints, PUBLISH (plus the in-place patcher), acks, pings, DISCONNECT and the
 * generic mqo_mqtt_encode(). */
#include "mqtt/mqtt.h"

#include <errno.h>
#include <string.h>

unsigned mqo_mqtt_varint_len(uint32_t v)
{
    if (v < 128u)
        return 1;
    if (v < 16384u)
        return 2;
    if (v < 2097152u)
        return 3;
    return 4;
}

unsigned mqo_mqtt_varint_put(uint8_t *out, uint32_t v)
{
    if (v > MQO_MQTT_MAX_REMAINING)
        return 0;
    unsigned n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        if (v)
            b |= 0x80;
        out[n++] = b;
    } while (v);
    return n;
}

/* Writes v in exactly k varint bytes (k >= minimal length), as a non-minimal encoding does. */
static void varint_put_width(uint8_t *out, uint32_t v, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        uint8_t b = v & 0x7f;
        v >>= 7;
        out[i] = (uint8_t)(i + 1 < k ? (b | 0x80) : b);
    }
}

/* ---- writer: counts when p is NULL, else writes (the size was checked beforehand) ---- */

struct wr {
    uint8_t *p;
    uint64_t off;
};

static void w_bytes(struct wr *w, const void *s, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->off, s, n);
    w->off += n;
}

static void w_u8(struct wr *w, uint8_t v) { w_bytes(w, &v, 1); }

static void w_u16(struct wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(w, b, 2);
}

static void w_str(struct wr *w, struct mqo_str s)
{
    w_u16(w, s.len);
    w_bytes(w, s.p, s.len);
}

static void w_varint(struct wr *w, uint32_t v)
{
    uint8_t b[4];
    unsigned n = mqo_mqtt_varint_put(b, v);
    w_bytes(w, b, n);
}

static void w_props(struct wr *w, const struct mqo_props *pr)
{
    w_varint(w, pr->raw_len);
    w_bytes(w, pr->raw, pr->raw_len);
}

/* ---- PUBLISH ---- */

static uint64_t pub_props_len(const struct mqo_pub_spec *s)
{
    uint64_t n = s->props_len;
    for (unsigned i = 0; i < s->n_sub_ids; i++) {
        if (s->sub_ids[i] == 0 || s->sub_ids[i] > MQO_MQTT_MAX_REMAINING)
            return UINT64_MAX;
        n += 1 + mqo_mqtt_varint_len(s->sub_ids[i]);
    }
    return n;
}

static uint64_t pub_remaining(const struct mqo_pub_spec *s)
{
    if (s->version != MQO_MQTT_V31 && s->version != MQO_MQTT_V311 && s->version != MQO_MQTT_V5)
        return UINT64_MAX;
    if (s->qos > 2 || (s->dup && s->qos == 0))
        return UINT64_MAX;
    if ((!s->topic.p && s->topic.len) || (!s->payload && s->payload_len))
        return UINT64_MAX;
    uint64_t rem = 2u + (uint64_t)s->topic.len + (s->qos ? 2u : 0u) + s->payload_len;
    if (s->version == MQO_MQTT_V5) {
        if ((!s->props && s->props_len) || (!s->sub_ids && s->n_sub_ids))
            return UINT64_MAX;
        uint64_t pl = pub_props_len(s);
        if (pl > MQO_MQTT_MAX_REMAINING)
            return UINT64_MAX;
        rem += mqo_mqtt_varint_len((uint32_t)pl) + pl;
    }
    return rem;
}

size_t mqo_mqtt_publish_size(const struct mqo_pub_spec *s)
{
    uint64_t rem = pub_remaining(s);
    if (rem > MQO_MQTT_MAX_REMAINING)
        return 0;
    return (size_t)(1 + mqo_mqtt_varint_len((uint32_t)rem) + rem);
}

ssize_t mqo_mqtt_enc_publish(uint8_t *out, size_t cap, const struct mqo_pub_spec *s,
                             uint32_t *pid_off)
{
    uint64_t rem = pub_remaining(s);
    if (rem > MQO_MQTT_MAX_REMAINING)
        return -EINVAL;
    size_t total = 1 + mqo_mqtt_varint_len((uint32_t)rem) + (size_t)rem;
    if (total > cap)
        return -ENOSPC;
    struct wr w = {out, 0};
    w_u8(&w, (uint8_t)(MQO_PUBLISH << 4 | (s->dup ? 0x08 : 0) | s->qos << 1 | (s->retain ? 1 : 0)));
    w_varint(&w, (uint32_t)rem);
    w_str(&w, s->topic);
    if (pid_off)
        *pid_off = s->qos ? (uint32_t)w.off : 0;
    if (s->qos)
        w_u16(&w, s->pid);
    if (s->version == MQO_MQTT_V5) {
        w_varint(&w, (uint32_t)pub_props_len(s));
        for (unsigned i = 0; i < s->n_sub_ids; i++) {
            w_u8(&w, MQO_PROP_SUBSCRIPTION_ID);
            w_varint(&w, s->sub_ids[i]);
        }
        w_bytes(&w, s->props, s->props_len);
    }
    w_bytes(&w, s->payload, s->payload_len);
    return (ssize_t)w.off;
}

void mqo_mqtt_publish_patch(uint8_t *pkt, uint32_t pid_off, uint8_t qos, uint8_t dup,
                            uint16_t pid)
{
    if (pid_off == 0) {
        qos = 0;
        dup = 0;
    } else {
        if (qos == 0 || qos > 2)
            qos = qos ? 2 : 1;
        pkt[pid_off] = (uint8_t)(pid >> 8);
        pkt[pid_off + 1] = (uint8_t)pid;
    }
    pkt[0] = (uint8_t)((pkt[0] & 0xf1) | (dup ? 0x08 : 0) | qos << 1);
}

/* ---- small packets ---- */

size_t mqo_mqtt_enc_ack(uint8_t out[5], uint8_t type, uint16_t pid, uint8_t version,
                        uint8_t reason)
{
    if (type < MQO_PUBACK || type > MQO_PUBCOMP)
        return 0;
    int with_rc = version == MQO_MQTT_V5 && reason != 0;
    out[0] = (uint8_t)(type << 4 | (type == MQO_PUBREL ? 2 : 0));
    out[1] = with_rc ? 3 : 2;
    out[2] = (uint8_t)(pid >> 8);
    out[3] = (uint8_t)pid;
    if (with_rc)
        out[4] = reason;
    return with_rc ? 5 : 4;
}

size_t mqo_mqtt_enc_ping(uint8_t out[2], uint8_t type)
{
    out[0] = (uint8_t)(type << 4);
    out[1] = 0;
    return 2;
}

size_t mqo_mqtt_enc_disconnect(uint8_t out[3], uint8_t version, uint8_t reason)
{
    out[0] = MQO_DISCONNECT << 4;
    if (version == MQO_MQTT_V5 && reason != 0) {
        out[1] = 1;
        out[2] = reason;
        return 3;
    }
    out[1] = 0;
    return 2;
}

/* ---- generic encoder ---- */

/* What follows the packet identifier of a v5 ack / the header of DISCONNECT. */
static uint8_t tail_form(const struct mqo_pkt *pk)
{
    uint8_t need = pk->props.raw_len ? MQO_FORM_PROPS : pk->reason ? MQO_FORM_REASON : MQO_FORM_SHORT;
    return pk->form > need ? (pk->form > MQO_FORM_PROPS ? MQO_FORM_PROPS : pk->form) : need;
}

static int enc_body(const struct mqo_pkt *pk, uint8_t v, struct wr *w)
{
    int v5 = v == MQO_MQTT_V5;
    switch (pk->type) {
    case MQO_CONNECT: {
        struct mqo_str name = pk->u.connect.proto_name;
        if (name.len == 0) {
            name.p = (const uint8_t *)(v == MQO_MQTT_V31 ? "MQIsdp" : "MQTT");
            name.len = v == MQO_MQTT_V31 ? 6 : 4;
        }
        w_str(w, name);
        w_u8(w, (uint8_t)(v | (pk->u.connect.bridge ? 0x80 : 0)));
        w_u8(w, pk->u.connect.cflags);
        w_u16(w, pk->u.connect.keepalive);
        if (v5)
            w_props(w, &pk->props);
        w_str(w, pk->u.connect.client_id);
        if (pk->u.connect.cflags & MQO_CONNECT_WILL) {
            if (v5)
                w_props(w, &pk->u.connect.will_props);
            w_str(w, pk->u.connect.will_topic);
            w_str(w, pk->u.connect.will_payload);
        }
        if ((pk->u.connect.cflags & MQO_CONNECT_USERNAME) && !(v == MQO_MQTT_V31 && !pk->u.connect.username.p))
            w_str(w, pk->u.connect.username);
        if ((pk->u.connect.cflags & MQO_CONNECT_PASSWORD) && !(v == MQO_MQTT_V31 && !pk->u.connect.password.p))
            w_str(w, pk->u.connect.password);
        break;
    }
    case MQO_CONNACK:
        w_u8(w, pk->u.connack.session_present);
        w_u8(w, pk->reason);
        if (v5)
            w_props(w, &pk->props);
        break;
    case MQO_PUBLISH:
        w_str(w, pk->u.publish.topic);
        if (pk->u.publish.qos)
            w_u16(w, pk->pid);
        if (v5)
            w_props(w, &pk->props);
        w_bytes(w, pk->u.publish.payload, pk->u.publish.payload_len);
        break;
    case MQO_PUBACK:
    case MQO_PUBREC:
    case MQO_PUBREL:
    case MQO_PUBCOMP:
    case MQO_DISCONNECT:
        if (pk->type != MQO_DISCONNECT)
            w_u16(w, pk->pid);
        if (v5) {
            uint8_t f = tail_form(pk);
            if (f >= MQO_FORM_REASON)
                w_u8(w, pk->reason);
            if (f == MQO_FORM_PROPS)
                w_props(w, &pk->props);
        }
        break;
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE:
        w_u16(w, pk->pid);
        if (v5)
            w_props(w, &pk->props);
        w_bytes(w, pk->u.sub.list, pk->u.sub.list_len);
        break;
    case MQO_SUBACK:
    case MQO_UNSUBACK:
        w_u16(w, pk->pid);
        if (v5)
            w_props(w, &pk->props);
        if (v5 || pk->type == MQO_SUBACK)
            w_bytes(w, pk->u.suback.codes, pk->u.suback.count);
        break;
    case MQO_PINGREQ:
    case MQO_PINGRESP:
        break;
    case MQO_AUTH:
        if (pk->reason || pk->props.raw_len || pk->form) {
            w_u8(w, pk->reason);
            w_props(w, &pk->props);
        }
        break;
    default:
        return -EINVAL;
    }
    return 0;
}

static int props_ok(const struct mqo_props *pr)
{
    return pr->raw_len <= MQO_MQTT_MAX_REMAINING && (pr->raw || !pr->raw_len);
}

ssize_t mqo_mqtt_encode(const struct mqo_pkt *pk, uint8_t *out, size_t cap)
{
    uint8_t v = pk->type == MQO_CONNECT ? pk->u.connect.level : pk->version;
    if (v != MQO_MQTT_V31 && v != MQO_MQTT_V311 && v != MQO_MQTT_V5)
        return -EINVAL;
    if (!props_ok(&pk->props) || !props_ok(&pk->u.connect.will_props))
        return -EINVAL;
    uint8_t flags = pk->flags & 0x0f;
    if (pk->type == MQO_PUBLISH) {
        uint8_t qos = pk->u.publish.qos;
        if (qos > 2 || (!pk->u.publish.payload && pk->u.publish.payload_len) ||
            (!pk->u.publish.topic.p && pk->u.publish.topic.len))
            return -EINVAL;
        flags = (uint8_t)((pk->u.publish.dup ? 0x08 : 0) | qos << 1 | (pk->u.publish.retain ? 1 : 0));
    } else if (flags == 0 && pk->hdr_len == 0 &&
               (pk->type == MQO_PUBREL || pk->type == MQO_SUBSCRIBE || pk->type == MQO_UNSUBSCRIBE)) {
        flags = 2;
    }
    struct wr w = {NULL, 0};
    int rc = enc_body(pk, v, &w);
    if (rc)
        return rc;
    if (w.off > MQO_MQTT_MAX_REMAINING)
        return -EINVAL;
    uint32_t rem = (uint32_t)w.off;
    unsigned vl = mqo_mqtt_varint_len(rem);
    if (pk->hdr_len >= 2 && pk->hdr_len <= 5 && (unsigned)(pk->hdr_len - 1) > vl)
        vl = pk->hdr_len - 1u;
    size_t total = 1 + vl + (size_t)rem;
    if (total > cap)
        return -ENOSPC;
    out[0] = (uint8_t)(pk->type << 4 | flags);
    varint_put_width(out + 1, rem, vl);
    w.p = out + 1 + vl;
    w.off = 0;
    enc_body(pk, v, &w);
    return (ssize_t)total;
}
