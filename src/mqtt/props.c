/* MQTT 5 properties: walking (mqo_props_next), validation (mqo_props_parse), the property
 * builder (mqo_props_add_*) and mqo_props_filter. */
#include "mqtt/mqtt.h"

#include <errno.h>
#include <string.h>

#include "topic/topic.h"

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };

/* Packet types a property may appear in: bit (1 << enum mqo_ptype); bit 0 is a will. */
#define W (1u << 0)
#define CONN (1u << MQO_CONNECT)
#define CACK (1u << MQO_CONNACK)
#define PUB (1u << MQO_PUBLISH)
#define PACK (1u << MQO_PUBACK)
#define PREC (1u << MQO_PUBREC)
#define PREL (1u << MQO_PUBREL)
#define PCOMP (1u << MQO_PUBCOMP)
#define SUB (1u << MQO_SUBSCRIBE)
#define SACK (1u << MQO_SUBACK)
#define UNSUB (1u << MQO_UNSUBSCRIBE)
#define UACK (1u << MQO_UNSUBACK)
#define DISC (1u << MQO_DISCONNECT)
#define AUTH (1u << MQO_AUTH)

#define N_PROPS 0x2b

/* Spec table 2.2.2.2. */
static const struct {
    uint8_t type;
    uint16_t where;
} prop_info[N_PROPS] = {
    [MQO_PROP_PAYLOAD_FORMAT] = {PT_BYTE, PUB | W},
    [MQO_PROP_MESSAGE_EXPIRY] = {PT_U32, PUB | W},
    [MQO_PROP_CONTENT_TYPE] = {PT_STR, PUB | W},
    [MQO_PROP_RESPONSE_TOPIC] = {PT_STR, PUB | W},
    [MQO_PROP_CORRELATION_DATA] = {PT_BIN, PUB | W},
    [MQO_PROP_SUBSCRIPTION_ID] = {PT_VARINT, PUB | SUB},
    [MQO_PROP_SESSION_EXPIRY] = {PT_U32, CONN | CACK | DISC},
    [MQO_PROP_ASSIGNED_CLIENT_ID] = {PT_STR, CACK},
    [MQO_PROP_SERVER_KEEP_ALIVE] = {PT_U16, CACK},
    [MQO_PROP_AUTH_METHOD] = {PT_STR, CONN | CACK | AUTH},
    [MQO_PROP_AUTH_DATA] = {PT_BIN, CONN | CACK | AUTH},
    [MQO_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, CONN},
    [MQO_PROP_WILL_DELAY] = {PT_U32, W},
    [MQO_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, CONN},
    [MQO_PROP_RESPONSE_INFO] = {PT_STR, CACK},
    [MQO_PROP_SERVER_REFERENCE] = {PT_STR, CACK | DISC},
    [MQO_PROP_REASON_STRING] = {PT_STR, CACK | PACK | PREC | PREL | PCOMP | SACK | UACK | DISC | AUTH},
    [MQO_PROP_RECEIVE_MAXIMUM] = {PT_U16, CONN | CACK},
    [MQO_PROP_TOPIC_ALIAS_MAXIMUM] = {PT_U16, CONN | CACK},
    [MQO_PROP_TOPIC_ALIAS] = {PT_U16, PUB},
    [MQO_PROP_MAXIMUM_QOS] = {PT_BYTE, CACK},
    [MQO_PROP_RETAIN_AVAILABLE] = {PT_BYTE, CACK},
    [MQO_PROP_USER_PROPERTY] = {PT_PAIR, CONN | CACK | PUB | W | PACK | PREC | PREL | PCOMP | SUB |
                                             SACK | UNSUB | UACK | DISC | AUTH},
    [MQO_PROP_MAXIMUM_PACKET_SIZE] = {PT_U32, CONN | CACK},
    [MQO_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, CACK},
    [MQO_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, CACK},
    [MQO_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, CACK},
};

static unsigned prop_type(uint8_t id) { return id < N_PROPS ? prop_info[id].type : PT_NONE; }

/* ---- walking ---- */

static int get_str(const uint8_t *raw, uint32_t len, uint32_t *o, struct mqo_str *s)
{
    if (len - *o < 2)
        return -MQO_RC_MALFORMED;
    uint16_t n = (uint16_t)(raw[*o] << 8 | raw[*o + 1]);
    *o += 2;
    if (len - *o < n)
        return -MQO_RC_MALFORMED;
    s->p = raw + *o;
    s->len = n;
    *o += n;
    return 0;
}

int mqo_props_next(const uint8_t *raw, uint32_t len, uint32_t *off, struct mqo_prop *pr)
{
    uint32_t o = *off;
    if (o >= len)
        return 0;
    memset(pr, 0, sizeof *pr);
    pr->off = o;
    pr->id = raw[o++];
    uint32_t left = len - o;
    int rc;
    switch (prop_type(pr->id)) {
    case PT_BYTE:
        if (left < 1)
            return -MQO_RC_MALFORMED;
        pr->u = raw[o];
        o += 1;
        break;
    case PT_U16:
        if (left < 2)
            return -MQO_RC_MALFORMED;
        pr->u = (uint32_t)raw[o] << 8 | raw[o + 1];
        o += 2;
        break;
    case PT_U32:
        if (left < 4)
            return -MQO_RC_MALFORMED;
        pr->u = (uint32_t)raw[o] << 24 | (uint32_t)raw[o + 1] << 16 | (uint32_t)raw[o + 2] << 8 |
                raw[o + 3];
        o += 4;
        break;
    case PT_VARINT: {
        uint32_t v = 0;
        unsigned i;
        for (i = 0; i < 4; i++) {
            if (o >= len)
                return -MQO_RC_MALFORMED;
            uint8_t b = raw[o++];
            v |= (uint32_t)(b & 0x7f) << (7 * i);
            if (!(b & 0x80)) {
                if (i > 0 && b == 0)
                    return -MQO_RC_MALFORMED; /* non-minimal */
                break;
            }
        }
        if (i == 4)
            return -MQO_RC_MALFORMED;
        pr->u = v;
        break;
    }
    case PT_STR:
    case PT_BIN:
        if ((rc = get_str(raw, len, &o, &pr->s)) != 0)
            return rc;
        break;
    case PT_PAIR:
        if ((rc = get_str(raw, len, &o, &pr->s)) != 0 || (rc = get_str(raw, len, &o, &pr->s2)) != 0)
            return rc;
        break;
    default:
        return -MQO_RC_MALFORMED; /* unknown identifier: the rest cannot be parsed */
    }
    pr->len = o - pr->off;
    *off = o;
    return 1;
}

/* ---- validation ---- */

int mqo_props_parse(const uint8_t *raw, uint32_t len, uint8_t ptype, enum mqo_dir dir,
                    struct mqo_props *out)
{
    struct mqo_prop pr;
    uint32_t off = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if (len == 0)
        return 0;
    out->raw = raw;
    out->raw_len = len;

    /* Pass 1: encoding and UTF-8 (malformed), as the reference broker reads the whole block
     * before checking it. */
    while ((rc = mqo_props_next(raw, len, &off, &pr)) == 1) {
        unsigned t = prop_type(pr.id);
        if ((t == PT_STR || t == PT_PAIR) && mqo_mqtt_utf8_check(pr.s.p, pr.s.len) != 0)
            return -MQO_RC_MALFORMED;
        if (t == PT_PAIR && mqo_mqtt_utf8_check(pr.s2.p, pr.s2.len) != 0)
            return -MQO_RC_MALFORMED;
    }
    if (rc < 0)
        return rc;

    /* Pass 2: the rules. */
    uint16_t where = ptype < 16 ? (uint16_t)(1u << ptype) : 0;
    off = 0;
    while (mqo_props_next(raw, len, &off, &pr) == 1) {
        uint8_t id = pr.id;
        if (!(prop_info[id].where & where))
            return -MQO_RC_MALFORMED;
        if (MQO_PROP_HAS(out, id)) {
            int may_repeat = id == MQO_PROP_USER_PROPERTY ||
                             (id == MQO_PROP_SUBSCRIPTION_ID && ptype == MQO_PUBLISH);
            if (!may_repeat)
                return -MQO_RC_PROTOCOL_ERROR;
        }
        out->present |= (uint64_t)1 << id;
        if (prop_info[id].type == PT_BYTE && pr.u > 1)
            return -MQO_RC_PROTOCOL_ERROR;
        switch (id) {
        case MQO_PROP_PAYLOAD_FORMAT:
            out->payload_format = (uint8_t)pr.u;
            break;
        case MQO_PROP_MESSAGE_EXPIRY:
            out->message_expiry = pr.u;
            break;
        case MQO_PROP_CONTENT_TYPE:
            out->content_type = pr.s;
            break;
        case MQO_PROP_RESPONSE_TOPIC:
            if (mqo_topic_name_valid(pr.s.p, pr.s.len) != 0)
                return -MQO_RC_PROTOCOL_ERROR;
            out->response_topic = pr.s;
            break;
        case MQO_PROP_CORRELATION_DATA:
            out->correlation_data = pr.s;
            break;
        case MQO_PROP_SUBSCRIPTION_ID:
            if (pr.u == 0)
                return -MQO_RC_PROTOCOL_ERROR;
            if (ptype == MQO_PUBLISH && dir == MQO_C2S)
                return -MQO_RC_PROTOCOL_ERROR;
            if (out->n_sub_ids < MQO_MAX_SUB_IDS)
                out->sub_ids[out->n_sub_ids] = pr.u;
            out->n_sub_ids++;
            break;
        case MQO_PROP_SESSION_EXPIRY:
            out->session_expiry = pr.u;
            break;
        case MQO_PROP_ASSIGNED_CLIENT_ID:
            out->assigned_client_id = pr.s;
            break;
        case MQO_PROP_SERVER_KEEP_ALIVE:
            out->server_keep_alive = (uint16_t)pr.u;
            break;
        case MQO_PROP_AUTH_METHOD:
            out->auth_method = pr.s;
            break;
        case MQO_PROP_AUTH_DATA:
            out->auth_data = pr.s;
            break;
        case MQO_PROP_REQUEST_PROBLEM_INFO:
            out->request_problem_info = (uint8_t)pr.u;
            break;
        case MQO_PROP_WILL_DELAY:
            out->will_delay = pr.u;
            break;
        case MQO_PROP_REQUEST_RESPONSE_INFO:
            out->request_response_info = (uint8_t)pr.u;
            break;
        case MQO_PROP_RESPONSE_INFO:
            out->response_info = pr.s;
            break;
        case MQO_PROP_SERVER_REFERENCE:
            out->server_reference = pr.s;
            break;
        case MQO_PROP_REASON_STRING:
            out->reason_string = pr.s;
            break;
        case MQO_PROP_RECEIVE_MAXIMUM:
            if (pr.u == 0)
                return -MQO_RC_PROTOCOL_ERROR;
            out->receive_maximum = (uint16_t)pr.u;
            break;
        case MQO_PROP_TOPIC_ALIAS_MAXIMUM:
            out->topic_alias_maximum = (uint16_t)pr.u;
            break;
        case MQO_PROP_TOPIC_ALIAS:
            if (pr.u == 0)
                return -MQO_RC_MALFORMED;
            out->topic_alias = (uint16_t)pr.u;
            break;
        case MQO_PROP_MAXIMUM_QOS:
            out->maximum_qos = (uint8_t)pr.u;
            break;
        case MQO_PROP_RETAIN_AVAILABLE:
            out->retain_available = (uint8_t)pr.u;
            break;
        case MQO_PROP_USER_PROPERTY:
            out->n_user_props++;
            break;
        case MQO_PROP_MAXIMUM_PACKET_SIZE:
            if (pr.u == 0)
                return -MQO_RC_PROTOCOL_ERROR;
            out->maximum_packet_size = pr.u;
            break;
        case MQO_PROP_WILDCARD_SUB_AVAILABLE:
            out->wildcard_sub_available = (uint8_t)pr.u;
            break;
        case MQO_PROP_SUB_ID_AVAILABLE:
            out->sub_id_available = (uint8_t)pr.u;
            break;
        case MQO_PROP_SHARED_SUB_AVAILABLE:
            out->shared_sub_available = (uint8_t)pr.u;
            break;
        default:
            return -MQO_RC_PROTOCOL_ERROR;
        }
    }
    return 0;
}

/* ---- filter ---- */

uint32_t mqo_props_filter(const uint8_t *raw, uint32_t len, uint8_t drop, uint8_t *out)
{
    struct mqo_prop pr;
    uint32_t off = 0, w = 0;
    while (mqo_props_next(raw, len, &off, &pr) == 1) {
        if (pr.id == drop)
            continue;
        memmove(out + w, raw + pr.off, pr.len);
        w += pr.len;
    }
    return w;
}

/* ---- builder ---- */

static int pb_room(const struct mqo_propbuf *b, uint32_t n)
{
    return b->len <= sizeof b->data && sizeof b->data - b->len >= n;
}

int mqo_props_add_u8(struct mqo_propbuf *b, uint8_t id, uint8_t v)
{
    if (!pb_room(b, 2))
        return -ENOSPC;
    b->data[b->len] = id;
    b->data[b->len + 1] = v;
    b->len += 2;
    return 0;
}

int mqo_props_add_u16(struct mqo_propbuf *b, uint8_t id, uint16_t v)
{
    if (!pb_room(b, 3))
        return -ENOSPC;
    uint8_t *d = b->data + b->len;
    d[0] = id;
    d[1] = (uint8_t)(v >> 8);
    d[2] = (uint8_t)v;
    b->len += 3;
    return 0;
}

int mqo_props_add_u32(struct mqo_propbuf *b, uint8_t id, uint32_t v)
{
    if (!pb_room(b, 5))
        return -ENOSPC;
    uint8_t *d = b->data + b->len;
    d[0] = id;
    d[1] = (uint8_t)(v >> 24);
    d[2] = (uint8_t)(v >> 16);
    d[3] = (uint8_t)(v >> 8);
    d[4] = (uint8_t)v;
    b->len += 5;
    return 0;
}

int mqo_props_add_varint(struct mqo_propbuf *b, uint8_t id, uint32_t v)
{
    if (v > MQO_MQTT_MAX_REMAINING)
        return -EINVAL;
    unsigned n = mqo_mqtt_varint_len(v);
    if (!pb_room(b, 1 + n))
        return -ENOSPC;
    b->data[b->len] = id;
    mqo_mqtt_varint_put(b->data + b->len + 1, v);
    b->len += 1 + n;
    return 0;
}

int mqo_props_add_str(struct mqo_propbuf *b, uint8_t id, const void *s, uint16_t len)
{
    if (!pb_room(b, 3u + len))
        return -ENOSPC;
    uint8_t *d = b->data + b->len;
    d[0] = id;
    d[1] = (uint8_t)(len >> 8);
    d[2] = (uint8_t)len;
    if (len)
        memcpy(d + 3, s, len);
    b->len += 3u + len;
    return 0;
}

int mqo_props_add_pair(struct mqo_propbuf *b, uint8_t id, const void *k, uint16_t klen,
                       const void *v, uint16_t vlen)
{
    if (!pb_room(b, 5u + klen + vlen))
        return -ENOSPC;
    uint8_t *d = b->data + b->len;
    d[0] = id;
    d[1] = (uint8_t)(klen >> 8);
    d[2] = (uint8_t)klen;
    if (klen)
        memcpy(d + 3, k, klen);
    d += 3 + klen;
    d[0] = (uint8_t)(vlen >> 8);
    d[1] = (uint8_t)vlen;
    if (vlen)
        memcpy(d + 2, v, vlen);
    b->len += 5u + klen + vlen;
    return 0;
}
