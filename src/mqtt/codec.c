/* MQTT framing and decoding (3.1, 3.1.1, 5.0): mqo_mqtt_frame, mqo_mqtt_decode,
 * mqo_mqtt_sub_next, mqo_mqtt_utf8_check, mqo_mqtt_type_name.
 *
 * Rule of thumb: where the specification names the receiver's reaction, it is followed; where
 * it leaves room, the codec does what Mosquitto 2.0.11 (the broker the offload fronts) does,
 * checked against its sources and against the Debian 12 broker itself.
 *
 * Mosquitto 2.0.11 behaviours matched:
 *  - remaining length: up to 4 varint bytes, non-minimal encodings accepted; varints inside a
 *    packet (property length, Subscription Identifier) must be minimal (malformed otherwise);
 *  - UTF-8 (mosquitto_validate_utf8, verified against libmosquitto over every 1..3-byte string
 *    and many longer ones): besides U+0000, surrogates, overlong forms and > U+10FFFF it refuses
 *    the controls U+0001..U+001F and U+007F..U+009F and the non-characters U+FDD0..U+FDEF and
 *    U+xxFFFE/U+xxFFFF. Checked on client id, will topic, username, topic names, filters and
 *    string properties; not on the password or binary properties;
 *  - topic names and filters with more than 200 '/' are refused (TOPIC_HIERARCHY_LIMIT);
 *  - CONNECT: the protocol name is compared byte for byte ("MQIsdp" with level 3, "MQTT" with
 *    4 or 5, else unsupported protocol version); levels 3 and 4 may carry bit 7 (bridge), 5 may
 *    not; MQTT 3.1 skips the fixed-header flag, reserved connect-flag and will-flag consistency
 *    checks, and may end where the username or password its flags announce would start;
 *    password without username is a protocol error in 3.1 and 3.1.1 (allowed in 5); will QoS 3
 *    is refused even without the will flag; an empty will topic is a protocol error; surplus
 *    bytes are a protocol error; an empty client id is left to the broker;
 *  - PUBLISH: DUP with QoS 0 is accepted (2.0.11 does; later versions refuse it); an empty topic
 *    in 3.x is malformed; a zero packet identifier is a protocol error;
 *  - MQTT 3.1 packets may carry any fixed-header flags (3.1 gave every packet DUP/QoS/RETAIN
 *    bits; the broker checks none there), except PUBLISH QoS 3;
 *  - SUBSCRIBE/UNSUBSCRIBE: a zero packet identifier, an empty or invalid filter and bad options
 *    (3.x: any bit above the QoS bits; v5: bits 6-7, retain handling 3, QoS 3) are malformed;
 *    MQTT 3.1 accepts them without filters (and so an empty SUBACK), 3.1.1 refuses (malformed);
 *  - reason codes of PUBACK/PUBREC/PUBREL/PUBCOMP, CONNACK, SUBACK, UNSUBACK and DISCONNECT are
 *    not checked; DISCONNECT surplus bytes are a protocol error;
 *  - properties: unknown identifier or one not allowed in the packet type is malformed (also the
 *    specification's word), Topic Alias 0 is malformed, duplicates are protocol errors.
 * The specification (or the issue) wins over Mosquitto 2.0.11 for: Subscription Identifier 0, a
 * Subscription Identifier in a client->server PUBLISH, No Local on a shared subscription,
 * Authentication Data without Authentication Method, a v5 SUBSCRIBE/UNSUBSCRIBE without filters,
 * a v5 PUBLISH with an empty topic and no Topic Alias, Payload Format other than 0/1, an invalid
 * Response Topic (all protocol errors); reserved fixed-header flags in 3.1.1 and 5 (2.0.11 only
 * checks those of SUBSCRIBE, UNSUBSCRIBE, PUBREL and DISCONNECT), the reserved CONNECT flag and
 * will QoS 3 (malformed); surplus bytes after PUBACK & co, PINGREQ
 * and PINGRESP (malformed); PINGRESP from a client, AUTH outside v5 and other packets sent the
 * wrong way (protocol errors). AUTH: a client may send 0x18 or 0x19, a server 0x00 or 0x18, and
 * a non-empty AUTH must carry an Authentication Method (protocol errors otherwise).
 * A topic name with wildcards (PUBLISH, will) is -MQO_RC_TOPIC_NAME_INVALID.
 */
#include "mqtt/mqtt.h"

#include <string.h>

#include "topic/topic.h"

#define TOPIC_HIERARCHY_LIMIT 200

/* ---- framing ---- */

ssize_t mqo_mqtt_frame(const uint8_t *p, size_t n, uint32_t max_packet, struct mqo_frame *f)
{
    if (n == 0)
        return 0;
    uint8_t type = p[0] >> 4;
    if (type == 0)
        return -MQO_RC_MALFORMED;
    uint32_t v = 0;
    unsigned i;
    for (i = 0; i < 4; i++) {
        if (1 + i >= n)
            return 0;
        uint8_t b = p[1 + i];
        v |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    if (i == 4)
        return -MQO_RC_MALFORMED; /* the 4th length byte has its continuation bit set */
    uint8_t hdr = (uint8_t)(2 + i);
    uint32_t total = hdr + v;
    if (f) {
        f->type = type;
        f->flags = p[0] & 0x0f;
        f->hdr_len = hdr;
        f->remaining = v;
        f->total = total;
    }
    if (max_packet && total > max_packet)
        return -MQO_RC_PACKET_TOO_LARGE;
    if (n < total)
        return 0;
    return (ssize_t)total;
}

/* ---- UTF-8 ---- */

int mqo_mqtt_utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        uint32_t cp;
        unsigned n;
        if (b == 0)
            return -MQO_RC_MALFORMED;
        if (b < 0x80) {
            if (b <= 0x1f || b == 0x7f)
                return -MQO_RC_MALFORMED;
            i++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
            n = 2;
            cp = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
            n = 3;
            cp = b & 0x0f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            n = 4;
            cp = b & 0x07;
        } else {
            return -MQO_RC_MALFORMED; /* continuation byte, C0/C1, F5..FF */
        }
        if (len - i < n)
            return -MQO_RC_MALFORMED;
        for (unsigned k = 1; k < n; k++) {
            uint8_t c = s[i + k];
            if ((c & 0xc0) != 0x80)
                return -MQO_RC_MALFORMED;
            cp = (cp << 6) | (c & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return -MQO_RC_MALFORMED; /* overlong or out of range */
        if (cp >= 0xd800 && cp <= 0xdfff)
            return -MQO_RC_MALFORMED; /* surrogate */
        if (cp >= 0xfdd0 && cp <= 0xfdef)
            return -MQO_RC_MALFORMED; /* non-character */
        if ((cp & 0xfffe) == 0xfffe)
            return -MQO_RC_MALFORMED; /* U+xxFFFE, U+xxFFFF */
        if (cp >= 0x80 && cp <= 0x9f)
            return -MQO_RC_MALFORMED; /* C1 control */
        i += n;
    }
    return 0;
}

/* ---- reader ---- */

struct rd {
    const uint8_t *p;
    uint32_t len, off;
};

static uint32_t rd_left(const struct rd *r) { return r->len - r->off; }

static int rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1)
        return -MQO_RC_MALFORMED;
    *v = r->p[r->off++];
    return 0;
}

static int rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return -MQO_RC_MALFORMED;
    *v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
    r->off += 2;
    return 0;
}

/* Length-prefixed field; s->p always points into the packet (non-NULL) when it returns 0. */
static int rd_bin(struct rd *r, struct mqo_str *s)
{
    uint16_t n;
    if (rd_u16(r, &n) != 0 || rd_left(r) < n)
        return -MQO_RC_MALFORMED;
    s->p = r->p + r->off;
    s->len = n;
    r->off += n;
    return 0;
}

static int rd_str(struct rd *r, struct mqo_str *s)
{
    int rc = rd_bin(r, s);
    if (rc == 0)
        rc = mqo_mqtt_utf8_check(s->p, s->len);
    return rc;
}

/* In-packet varint: at most 4 bytes, minimal encoding. */
static int rd_varint(struct rd *r, uint32_t *v)
{
    uint32_t x = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint8_t b;
        if (rd_u8(r, &b) != 0)
            return -MQO_RC_MALFORMED;
        x |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0)
                return -MQO_RC_MALFORMED; /* non-minimal */
            *v = x;
            return 0;
        }
    }
    return -MQO_RC_MALFORMED;
}

/* Reads a property length and validates the block for packet type ptype. */
static int rd_props(struct rd *r, uint8_t ptype, enum mqo_dir dir, struct mqo_props *pr)
{
    uint32_t n;
    int rc = rd_varint(r, &n);
    if (rc != 0)
        return rc;
    if (rd_left(r) < n)
        return -MQO_RC_MALFORMED;
    rc = mqo_props_parse(r->p + r->off, n, ptype, dir, pr);
    r->off += n;
    return rc;
}

static int hier_ok(const uint8_t *t, size_t len)
{
    unsigned n = 0;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '/' && ++n > TOPIC_HIERARCHY_LIMIT)
            return 0;
    return 1;
}

static int topic_name_ok(const uint8_t *t, size_t len)
{
    return mqo_topic_name_valid(t, len) == 0 && hier_ok(t, len);
}

static int topic_filter_ok(const uint8_t *f, size_t len)
{
    return mqo_topic_filter_valid(f, len) == 0 && hier_ok(f, len);
}

/* ---- per packet type ---- */

static int dec_connect(struct rd *r, struct mqo_pkt *pk)
{
    struct mqo_str name;
    uint8_t lvl_byte, cf;
    int rc;
    if ((rc = rd_bin(r, &name)) != 0 || (rc = rd_u8(r, &lvl_byte)) != 0)
        return rc;
    uint8_t lvl = lvl_byte & 0x7f;
    if (name.len == 4 && memcmp(name.p, "MQTT", 4) == 0) {
        if (lvl != MQO_MQTT_V311 && lvl_byte != MQO_MQTT_V5)
            return -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION;
    } else if (name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0) {
        if (lvl != MQO_MQTT_V31)
            return -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION;
    } else {
        return -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION;
    }
    pk->version = lvl;
    pk->u.connect.proto_name = name;
    pk->u.connect.level = lvl;
    pk->u.connect.bridge = (lvl_byte & 0x80) ? 1 : 0;
    if (lvl != MQO_MQTT_V31 && pk->flags != 0)
        return -MQO_RC_MALFORMED;
    if ((rc = rd_u8(r, &cf)) != 0)
        return rc;
    pk->u.connect.cflags = cf;
    if (lvl != MQO_MQTT_V31 && (cf & 0x01))
        return -MQO_RC_MALFORMED;
    if (MQO_CONNECT_WILL_QOS(cf) == 3)
        return -MQO_RC_MALFORMED;
    if (lvl != MQO_MQTT_V31 && !(cf & MQO_CONNECT_WILL) &&
        (MQO_CONNECT_WILL_QOS(cf) != 0 || (cf & MQO_CONNECT_WILL_RETAIN)))
        return -MQO_RC_PROTOCOL_ERROR;
    if (lvl != MQO_MQTT_V5 && (cf & MQO_CONNECT_PASSWORD) && !(cf & MQO_CONNECT_USERNAME))
        return -MQO_RC_PROTOCOL_ERROR;
    if ((rc = rd_u16(r, &pk->u.connect.keepalive)) != 0)
        return rc;
    if (lvl == MQO_MQTT_V5) {
        if ((rc = rd_props(r, MQO_CONNECT, MQO_C2S, &pk->props)) != 0)
            return rc;
        if (MQO_PROP_HAS(&pk->props, MQO_PROP_AUTH_DATA) &&
            !MQO_PROP_HAS(&pk->props, MQO_PROP_AUTH_METHOD))
            return -MQO_RC_PROTOCOL_ERROR;
    }
    if ((rc = rd_str(r, &pk->u.connect.client_id)) != 0)
        return rc;
    if (cf & MQO_CONNECT_WILL) {
        if (lvl == MQO_MQTT_V5 && (rc = rd_props(r, 0, MQO_C2S, &pk->u.connect.will_props)) != 0)
            return rc;
        struct mqo_str *wt = &pk->u.connect.will_topic;
        if ((rc = rd_str(r, wt)) != 0)
            return rc;
        if (wt->len == 0)
            return -MQO_RC_PROTOCOL_ERROR;
        if (!topic_name_ok(wt->p, wt->len))
            return -MQO_RC_TOPIC_NAME_INVALID;
        if ((rc = rd_bin(r, &pk->u.connect.will_payload)) != 0)
            return rc;
    }
    if (cf & MQO_CONNECT_USERNAME) {
        if (!(lvl == MQO_MQTT_V31 && rd_left(r) == 0) &&
            (rc = rd_str(r, &pk->u.connect.username)) != 0)
            return rc;
    }
    if (cf & MQO_CONNECT_PASSWORD) {
        if (!(lvl == MQO_MQTT_V31 && rd_left(r) == 0) &&
            (rc = rd_bin(r, &pk->u.connect.password)) != 0)
            return rc;
    }
    if (rd_left(r) != 0)
        return -MQO_RC_PROTOCOL_ERROR;
    return 0;
}

static int dec_connack(struct rd *r, struct mqo_pkt *pk, uint8_t version)
{
    uint8_t af;
    int rc;
    if ((rc = rd_u8(r, &af)) != 0 || (rc = rd_u8(r, &pk->reason)) != 0)
        return rc;
    if (af & 0xfe)
        return -MQO_RC_MALFORMED;
    pk->u.connack.session_present = af;
    if (version == MQO_MQTT_V5 && (rc = rd_props(r, MQO_CONNACK, MQO_S2C, &pk->props)) != 0)
        return rc;
    return rd_left(r) ? -MQO_RC_MALFORMED : 0;
}

static int dec_publish(struct rd *r, struct mqo_pkt *pk, uint8_t version, enum mqo_dir dir,
                       uint32_t hdr)
{
    uint8_t qos = (pk->flags >> 1) & 3;
    uint8_t dup = (pk->flags >> 3) & 1;
    int rc;
    if (qos == 3)
        return -MQO_RC_MALFORMED;
    pk->u.publish.qos = qos;
    pk->u.publish.dup = dup;
    pk->u.publish.retain = pk->flags & 1;
    struct mqo_str *t = &pk->u.publish.topic;
    if ((rc = rd_str(r, t)) != 0)
        return rc;
    if (t->len == 0 && version != MQO_MQTT_V5)
        return -MQO_RC_MALFORMED;
    if (qos) {
        pk->u.publish.pid_off = hdr + r->off;
        if ((rc = rd_u16(r, &pk->pid)) != 0)
            return rc;
        if (pk->pid == 0)
            return -MQO_RC_PROTOCOL_ERROR;
    }
    if (version == MQO_MQTT_V5) {
        pk->u.publish.props_off = hdr + r->off;
        if ((rc = rd_props(r, MQO_PUBLISH, dir, &pk->props)) != 0)
            return rc;
        if (t->len == 0 && !MQO_PROP_HAS(&pk->props, MQO_PROP_TOPIC_ALIAS))
            return -MQO_RC_PROTOCOL_ERROR;
    }
    if (t->len != 0 && !topic_name_ok(t->p, t->len))
        return -MQO_RC_TOPIC_NAME_INVALID;
    pk->u.publish.payload_off = hdr + r->off;
    pk->u.publish.payload = r->p + r->off;
    pk->u.publish.payload_len = rd_left(r);
    r->off = r->len;
    return 0;
}

static int dec_ack(struct rd *r, struct mqo_pkt *pk, uint8_t version, enum mqo_dir dir)
{
    int rc;
    if ((rc = rd_u16(r, &pk->pid)) != 0)
        return rc;
    if (pk->pid == 0)
        return -MQO_RC_PROTOCOL_ERROR;
    if (version == MQO_MQTT_V5 && rd_left(r) > 0) {
        rd_u8(r, &pk->reason);
        pk->form = MQO_FORM_REASON;
        if (rd_left(r) > 0) {
            pk->form = MQO_FORM_PROPS;
            if ((rc = rd_props(r, pk->type, dir, &pk->props)) != 0)
                return rc;
        }
    }
    return rd_left(r) ? -MQO_RC_MALFORMED : 0;
}

/* SUBSCRIBE / UNSUBSCRIBE: validates the filter list and counts it. */
static int dec_sub(struct rd *r, struct mqo_pkt *pk, uint8_t version)
{
    int rc;
    if ((rc = rd_u16(r, &pk->pid)) != 0)
        return rc;
    if (pk->pid == 0)
        return -MQO_RC_MALFORMED;
    if (version == MQO_MQTT_V5 && (rc = rd_props(r, pk->type, MQO_C2S, &pk->props)) != 0)
        return rc;
    pk->u.sub.list = r->p + r->off;
    pk->u.sub.list_len = rd_left(r);
    if (rd_left(r) == 0) {
        pk->u.sub.list = NULL;
        if (version == MQO_MQTT_V31)
            return 0;
        return version == MQO_MQTT_V5 ? -MQO_RC_PROTOCOL_ERROR : -MQO_RC_MALFORMED;
    }
    uint32_t count = 0;
    while (rd_left(r) > 0) {
        struct mqo_str f;
        if ((rc = rd_str(r, &f)) != 0)
            return rc;
        if (!topic_filter_ok(f.p, f.len))
            return -MQO_RC_MALFORMED;
        if (pk->type == MQO_SUBSCRIBE) {
            uint8_t o;
            if ((rc = rd_u8(r, &o)) != 0)
                return rc;
            if (version != MQO_MQTT_V5) {
                if (o > 2)
                    return -MQO_RC_MALFORMED;
            } else {
                if ((o & 0xc0) || MQO_SUBOPT_RH(o) == 3 || MQO_SUBOPT_QOS(o) == 3)
                    return -MQO_RC_MALFORMED;
                const uint8_t *g, *in;
                size_t gl, il;
                if ((o & MQO_SUBOPT_NO_LOCAL) &&
                    mqo_topic_share_split(f.p, f.len, &g, &gl, &in, &il) == 1)
                    return -MQO_RC_PROTOCOL_ERROR;
            }
        }
        count++;
    }
    pk->u.sub.count = count;
    return 0;
}

static int dec_suback(struct rd *r, struct mqo_pkt *pk, uint8_t version)
{
    int rc;
    if ((rc = rd_u16(r, &pk->pid)) != 0)
        return rc;
    if (pk->pid == 0)
        return -MQO_RC_PROTOCOL_ERROR;
    if (pk->type == MQO_UNSUBACK && version != MQO_MQTT_V5)
        return rd_left(r) ? -MQO_RC_MALFORMED : 0;
    if (version == MQO_MQTT_V5 && (rc = rd_props(r, pk->type, MQO_S2C, &pk->props)) != 0)
        return rc;
    pk->u.suback.codes = rd_left(r) ? r->p + r->off : NULL;
    pk->u.suback.count = rd_left(r);
    r->off = r->len;
    if (pk->u.suback.count == 0 && version != MQO_MQTT_V31)
        return version == MQO_MQTT_V5 ? -MQO_RC_PROTOCOL_ERROR : -MQO_RC_MALFORMED;
    return 0;
}

static int dec_disconnect(struct rd *r, struct mqo_pkt *pk, uint8_t version, enum mqo_dir dir)
{
    int rc;
    if (version == MQO_MQTT_V5 && rd_left(r) > 0) {
        rd_u8(r, &pk->reason);
        pk->form = MQO_FORM_REASON;
        if (rd_left(r) > 0) {
            pk->form = MQO_FORM_PROPS;
            if ((rc = rd_props(r, MQO_DISCONNECT, dir, &pk->props)) != 0)
                return rc;
        }
    }
    return rd_left(r) ? -MQO_RC_PROTOCOL_ERROR : 0;
}

static int dec_auth(struct rd *r, struct mqo_pkt *pk, enum mqo_dir dir)
{
    int rc;
    if (rd_left(r) == 0)
        return 0;
    rd_u8(r, &pk->reason);
    pk->form = MQO_FORM_PROPS;
    if (dir == MQO_C2S ? (pk->reason != MQO_RC_CONTINUE_AUTH && pk->reason != MQO_RC_REAUTHENTICATE)
                       : (pk->reason != MQO_RC_SUCCESS && pk->reason != MQO_RC_CONTINUE_AUTH))
        return -MQO_RC_PROTOCOL_ERROR;
    if ((rc = rd_props(r, MQO_AUTH, dir, &pk->props)) != 0)
        return rc;
    if (!MQO_PROP_HAS(&pk->props, MQO_PROP_AUTH_METHOD))
        return -MQO_RC_PROTOCOL_ERROR;
    return rd_left(r) ? -MQO_RC_MALFORMED : 0;
}

/* Fixed-header flags the packet type requires; -1 for PUBLISH (checked by dec_publish). */
static int required_flags(uint8_t type)
{
    switch (type) {
    case MQO_PUBLISH:
        return -1;
    case MQO_PUBREL:
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE:
        return 2;
    default:
        return 0;
    }
}

/* Packets valid in one direction only (and version-dependent ones). */
static int direction_ok(uint8_t type, uint8_t version, enum mqo_dir dir)
{
    switch (type) {
    case MQO_CONNECT:
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE:
    case MQO_PINGREQ:
        return dir == MQO_C2S;
    case MQO_CONNACK:
    case MQO_SUBACK:
    case MQO_UNSUBACK:
    case MQO_PINGRESP:
        return dir == MQO_S2C;
    case MQO_DISCONNECT:
        return dir == MQO_C2S || version == MQO_MQTT_V5;
    case MQO_AUTH:
        return version == MQO_MQTT_V5;
    default:
        return 1;
    }
}

int mqo_mqtt_decode(const uint8_t *p, size_t len, uint8_t version, enum mqo_dir dir,
                    struct mqo_pkt *out)
{
    struct mqo_frame f;
    memset(out, 0, sizeof *out);
    if (!p || len < 2)
        return -MQO_RC_MALFORMED;
    ssize_t t = mqo_mqtt_frame(p, len, 0, &f);
    if (t < 0)
        return (int)t;
    if ((size_t)t != len)
        return -MQO_RC_MALFORMED;
    if (dir != MQO_C2S && dir != MQO_S2C)
        return -MQO_RC_PROTOCOL_ERROR;
    out->type = f.type;
    out->flags = f.flags;
    out->hdr_len = f.hdr_len;
    out->len = f.total;
    if (f.type != MQO_CONNECT) {
        if (version != MQO_MQTT_V31 && version != MQO_MQTT_V311 && version != MQO_MQTT_V5)
            return -MQO_RC_PROTOCOL_ERROR;
        out->version = version;
    }
    if (!direction_ok(f.type, version, dir))
        return -MQO_RC_PROTOCOL_ERROR;
    /* MQTT 3.1 gave every packet DUP/QoS/RETAIN bits: no reserved flags to check there */
    int req = required_flags(f.type);
    if (req >= 0 && f.flags != req && f.type != MQO_CONNECT && version != MQO_MQTT_V31)
        return -MQO_RC_MALFORMED;

    struct rd r = {p + f.hdr_len, f.remaining, 0};
    switch (f.type) {
    case MQO_CONNECT:
        return dec_connect(&r, out);
    case MQO_CONNACK:
        return dec_connack(&r, out, version);
    case MQO_PUBLISH:
        return dec_publish(&r, out, version, dir, f.hdr_len);
    case MQO_PUBACK:
    case MQO_PUBREC:
    case MQO_PUBREL:
    case MQO_PUBCOMP:
        return dec_ack(&r, out, version, dir);
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE:
        return dec_sub(&r, out, version);
    case MQO_SUBACK:
    case MQO_UNSUBACK:
        return dec_suback(&r, out, version);
    case MQO_PINGREQ:
    case MQO_PINGRESP:
        return f.remaining ? -MQO_RC_MALFORMED : 0;
    case MQO_DISCONNECT:
        return dec_disconnect(&r, out, version, dir);
    case MQO_AUTH:
        return dec_auth(&r, out, dir);
    default:
        return -MQO_RC_MALFORMED;
    }
}

ssize_t mqo_mqtt_decode_publish_head(const uint8_t *p, size_t avail, const struct mqo_frame *f,
                                     uint8_t version, enum mqo_dir dir, struct mqo_pkt *out)
{
    memset(out, 0, sizeof *out);
    if (f->type != MQO_PUBLISH)
        return -MQO_RC_MALFORMED;
    if (avail > f->total)
        avail = f->total;
    /* where the head ends: topic, packet identifier, property block */
    uint64_t h = f->hdr_len;
    if (avail < h + 2)
        return avail < f->total ? 0 : -MQO_RC_MALFORMED;
    h += 2u + (uint32_t)(p[h] << 8 | p[h + 1]);
    if (((p[0] >> 1) & 3) != 0)
        h += 2;
    if (version == MQO_MQTT_V5) {
        uint32_t v = 0;
        unsigned i;
        for (i = 0; i < 4; i++) {
            if (h + i >= avail)
                return h + i >= f->total ? -MQO_RC_MALFORMED : 0;
            v |= (uint32_t)(p[h + i] & 0x7f) << (7 * i);
            if (!(p[h + i] & 0x80))
                break;
        }
        h += i + 1u + v; /* a 5-byte varint is refused by the full decode below */
    }
    if (h > f->total)
        return -MQO_RC_MALFORMED; /* a field runs past the packet */
    if (h > avail)
        return 0;
    if (version != MQO_MQTT_V31 && version != MQO_MQTT_V311 && version != MQO_MQTT_V5)
        return -MQO_RC_PROTOCOL_ERROR;
    out->type = f->type;
    out->flags = f->flags;
    out->hdr_len = f->hdr_len;
    out->len = f->total;
    out->version = version;
    struct rd r = {p + f->hdr_len, (uint32_t)(avail - f->hdr_len), 0};
    int rc = dec_publish(&r, out, version, dir, f->hdr_len);
    if (rc < 0)
        return rc;
    out->u.publish.payload_len = f->total - out->u.publish.payload_off;
    return (ssize_t)out->u.publish.payload_off;
}

int mqo_mqtt_sub_next(const struct mqo_pkt *pk, uint32_t *off, struct mqo_sub_entry *e)
{
    if (pk->type != MQO_SUBSCRIBE && pk->type != MQO_UNSUBSCRIBE)
        return 0;
    struct rd r = {pk->u.sub.list, pk->u.sub.list_len, *off};
    if (!r.p || r.off >= r.len)
        return 0;
    if (rd_bin(&r, &e->filter) != 0)
        return 0;
    e->opts = 0;
    if (pk->type == MQO_SUBSCRIBE && rd_u8(&r, &e->opts) != 0)
        return 0;
    *off = r.off;
    return 1;
}

const char *mqo_mqtt_type_name(uint8_t type)
{
    static const char *const names[16] = {
        NULL,      "CONNECT",     "CONNACK",  "PUBLISH",     "PUBACK",   "PUBREC",
        "PUBREL",  "PUBCOMP",     "SUBSCRIBE", "SUBACK",     "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP",    "DISCONNECT", "AUTH",
    };
    if (type >= 16 || !names[type])
        return "?";
    return names[type];
}
