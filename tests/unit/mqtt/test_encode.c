/* MQTT encoders: PUBLISH encoder and patcher, acks, pings, DISCONNECT, and the generic
 * encoder on packets built by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helper_hex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt.h"


static struct mqo_str S(const char *c)
{
    struct mqo_str s = {(const uint8_t *)c, (uint16_t)strlen(c)};
    return s;
}

static int streq(struct mqo_str s, const char *c)
{
    return s.len == strlen(c) && (s.len == 0 || memcmp(s.p, c, s.len) == 0);
}

static void expect_bytes(const uint8_t *got, size_t n, const char *h)
{
    uint8_t want[512];
    size_t wn = hex(h, want, sizeof want);
    assert_int_equal(n, wn);
    assert_memory_equal(got, want, wn);
}

static void test_publish_v5_qos1_patch(void **state)
{
    (void)state;
    struct mqo_propbuf pb;
    memset(&pb, 0, sizeof pb);
    assert_int_equal(mqo_props_add_u8(&pb, MQO_PROP_PAYLOAD_FORMAT, 1), 0);
    assert_int_equal(mqo_props_add_pair(&pb, MQO_PROP_USER_PROPERTY, "k", 1, "v", 1), 0);
    static const uint32_t ids[2] = {3, 200};
    struct mqo_pub_spec s = {
        .version = 5, .qos = 1, .retain = 1, .pid = 7,
        .topic = S("s/t"), .payload = (const uint8_t *)"data", .payload_len = 4,
        .props = pb.data, .props_len = pb.len, .sub_ids = ids, .n_sub_ids = 2,
    };
    /* props (Mosquitto's order: subscription identifiers first):
     * 0b 03 | 0b c8 01 | 01 01 | 26 00 01 6b 00 01 76 = 2 + 3 + 2 + 7 = 14 */
    const char *want = "33 1a 00 03 73 2f 74 00 07 0e 0b 03 0b c8 01 01 01 26 00 01 6b 00 01 76 64 61 74 61";
    size_t sz = mqo_mqtt_publish_size(&s);
    assert_int_equal(sz, 28);
    uint8_t b[64];
    uint32_t pid_off = 0;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, &pid_off), 28);
    expect_bytes(b, 28, want);
    assert_int_equal(pid_off, 7);
    assert_int_equal(mqo_mqtt_enc_publish(b, 27, &s, NULL), -ENOSPC);
    assert_int_equal(mqo_mqtt_enc_publish(b, 28, &s, NULL), 28);

    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_decode(b, 28, 5, MQO_S2C, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 1);
    assert_int_equal(pk.u.publish.retain, 1);
    assert_int_equal(pk.pid, 7);
    assert_int_equal(pk.u.publish.pid_off, pid_off);
    assert_int_equal(pk.props.n_sub_ids, 2);
    assert_int_equal(pk.props.sub_ids[1], 200);
    assert_int_equal(pk.props.payload_format, 1);
    assert_true(streq(pk.u.publish.topic, "s/t"));
    assert_int_equal(pk.u.publish.payload_len, 4);
    /* a client may not send them */
    assert_int_equal(mqo_mqtt_decode(b, 28, 5, MQO_C2S, &pk), -MQO_RC_PROTOCOL_ERROR);

    /* patch: pid, QoS 2, DUP */
    mqo_mqtt_publish_patch(b, pid_off, 2, 1, 0x1234);
    assert_int_equal(b[0], 0x3d);
    assert_int_equal(mqo_mqtt_decode(b, 28, 5, MQO_S2C, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 2);
    assert_int_equal(pk.u.publish.dup, 1);
    assert_int_equal(pk.u.publish.retain, 1);
    assert_int_equal(pk.pid, 0x1234);
    /* back to QoS 1 without DUP, another pid */
    mqo_mqtt_publish_patch(b, pid_off, 1, 0, 0xffff);
    assert_int_equal(mqo_mqtt_decode(b, 28, 5, MQO_S2C, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 1);
    assert_int_equal(pk.u.publish.dup, 0);
    assert_int_equal(pk.pid, 0xffff);
    /* QoS 0 cannot keep the identifier field: the patcher keeps the shape (QoS 1) */
    mqo_mqtt_publish_patch(b, pid_off, 0, 0, 9);
    assert_int_equal(mqo_mqtt_decode(b, 28, 5, MQO_S2C, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 1);
    assert_int_equal(pk.pid, 9);
    /* the rest of the packet is untouched */
    uint8_t ref[64];
    size_t rn = hex(want, ref, sizeof ref);
    assert_memory_equal(b + 1, ref + 1, 6);
    assert_memory_equal(b + 9, ref + 9, rn - 9);
}

static void test_publish_v311_qos0(void **state)
{
    (void)state;
    struct mqo_pub_spec s = {
        .version = 4, .topic = S("a/b"), .payload = (const uint8_t *)"hello", .payload_len = 5,
        /* properties are v5 only: ignored */
        .props = (const uint8_t *)"\x01\x01", .props_len = 2,
    };
    uint8_t b[64];
    uint32_t pid_off = 99;
    assert_int_equal(mqo_mqtt_publish_size(&s), 12);
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, &pid_off), 12);
    expect_bytes(b, 12, "30 0a 00 03 61 2f 62 68 65 6c 6c 6f");
    assert_int_equal(pid_off, 0);
    /* no identifier field: stays QoS 0, no DUP */
    mqo_mqtt_publish_patch(b, 0, 1, 1, 5);
    assert_int_equal(b[0], 0x30);
    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_decode(b, 12, 4, MQO_S2C, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 0);
    /* retain is kept by the patcher */
    s.retain = 1;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), 12);
    mqo_mqtt_publish_patch(b, 0, 0, 0, 0);
    assert_int_equal(b[0], 0x31);
    /* v3.1 QoS 2 */
    struct mqo_pub_spec s3 = {.version = 3, .qos = 2, .pid = 1, .topic = S("x")};
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s3, &pid_off), 7);
    expect_bytes(b, 7, "34 05 00 01 78 00 01");
    assert_int_equal(pid_off, 5);
    assert_int_equal(mqo_mqtt_decode(b, 7, 3, MQO_S2C, &pk), 0);
}

static void test_publish_v5_plain(void **state)
{
    (void)state;
    /* no properties: a zero property length */
    struct mqo_pub_spec s = {.version = 5, .topic = S("t")};
    uint8_t b[16];
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), 6);
    expect_bytes(b, 6, "30 04 00 01 74 00");
    /* empty topic is encodable (topic alias in props) */
    s.topic.len = 0;
    s.props = (const uint8_t *)"\x23\x00\x01";
    s.props_len = 3;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), 8);
    expect_bytes(b, 8, "30 06 00 00 03 23 00 01");
    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_decode(b, 8, 5, MQO_C2S, &pk), 0);
    assert_int_equal(pk.props.topic_alias, 1);
}

static void test_publish_errors(void **state)
{
    (void)state;
    uint8_t b[64];
    struct mqo_pub_spec s = {.version = 5, .qos = 3, .topic = S("t")};
    assert_int_equal(mqo_mqtt_publish_size(&s), 0);
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.qos = 0;
    s.dup = 1;
    assert_int_equal(mqo_mqtt_publish_size(&s), 0);
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.dup = 0;
    static const uint32_t zero[1] = {0}, big[1] = {268435456u}, max[1] = {268435455u};
    s.sub_ids = zero;
    s.n_sub_ids = 1;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.sub_ids = big;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.sub_ids = max;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), 11);
    expect_bytes(b, 11, "30 09 00 01 74 05 0b ff ff ff 7f");
    s.sub_ids = NULL;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.n_sub_ids = 0;
    s.version = 6;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.version = 4;
    s.topic.p = NULL;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    s.topic = S("t");
    s.payload_len = 3;
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -EINVAL);
    /* too large for the remaining length */
    s.payload = b;
    s.payload_len = MQO_MQTT_MAX_REMAINING;
    assert_int_equal(mqo_mqtt_publish_size(&s), 0);
    s.payload_len = MQO_MQTT_MAX_REMAINING - 3;
    assert_int_equal(mqo_mqtt_publish_size(&s), MQO_MQTT_MAX_REMAINING + 5u);
    assert_int_equal(mqo_mqtt_enc_publish(b, sizeof b, &s, NULL), -ENOSPC);
}

static void test_publish_large(void **state)
{
    (void)state;
    size_t pl = 2097152;
    uint8_t *payload = malloc(pl);
    assert_non_null(payload);
    for (size_t i = 0; i < pl; i++)
        payload[i] = (uint8_t)i;
    struct mqo_pub_spec s = {.version = 5, .qos = 2, .pid = 3, .topic = S("big"),
                             .payload = payload, .payload_len = (uint32_t)pl};
    size_t sz = mqo_mqtt_publish_size(&s);
    uint32_t rem = 2 + 3 + 2 + 1 + (uint32_t)pl;
    assert_int_equal(sz, 1 + 4 + rem);
    uint8_t *b = malloc(sz);
    assert_non_null(b);
    uint32_t pid_off;
    assert_int_equal(mqo_mqtt_enc_publish(b, sz, &s, &pid_off), (ssize_t)sz);
    assert_int_equal(pid_off, 10);
    struct mqo_frame f;
    assert_int_equal(mqo_mqtt_frame(b, sz, 0, &f), (ssize_t)sz);
    assert_int_equal(f.hdr_len, 5);
    assert_int_equal(mqo_mqtt_frame(b, sz, 1 << 20, &f), -MQO_RC_PACKET_TOO_LARGE);
    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_decode(b, sz, 5, MQO_C2S, &pk), 0);
    assert_int_equal(pk.u.publish.payload_len, pl);
    assert_memory_equal(pk.u.publish.payload, payload, pl);
    /* generic encode round trip of a big packet */
    uint8_t *c = malloc(sz);
    assert_non_null(c);
    assert_int_equal(mqo_mqtt_encode(&pk, c, sz), (ssize_t)sz);
    assert_memory_equal(c, b, sz);
    free(c);
    free(b);
    free(payload);
}

static void test_acks_pings_disconnect(void **state)
{
    (void)state;
    uint8_t b[8];
    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBACK, 7, 4, 0x80), 4);
    expect_bytes(b, 4, "40 02 00 07");
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBACK, 7, 5, 0), 4);
    expect_bytes(b, 4, "40 02 00 07");
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBACK, 7, 5, 0x10), 5);
    expect_bytes(b, 5, "40 03 00 07 10");
    assert_int_equal(mqo_mqtt_decode(b, 5, 5, MQO_S2C, &pk), 0);
    assert_int_equal(pk.reason, 0x10);
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBREC, 0x0102, 5, 0x80), 5);
    expect_bytes(b, 5, "50 03 01 02 80");
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBREL, 0xfffe, 4, 0), 4);
    expect_bytes(b, 4, "62 02 ff fe");
    assert_int_equal(mqo_mqtt_decode(b, 4, 4, MQO_C2S, &pk), 0);
    assert_int_equal(pk.pid, 0xfffe);
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBREL, 1, 5, MQO_RC_PACKET_ID_NOT_FOUND), 5);
    expect_bytes(b, 5, "62 03 00 01 92");
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBCOMP, 1, 3, 0), 4);
    expect_bytes(b, 4, "70 02 00 01");
    assert_int_equal(mqo_mqtt_decode(b, 4, 3, MQO_S2C, &pk), 0);
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_PUBLISH, 1, 5, 0), 0);
    assert_int_equal(mqo_mqtt_enc_ack(b, MQO_SUBACK, 1, 5, 0), 0);

    assert_int_equal(mqo_mqtt_enc_ping(b, MQO_PINGREQ), 2);
    expect_bytes(b, 2, "c0 00");
    assert_int_equal(mqo_mqtt_enc_ping(b, MQO_PINGRESP), 2);
    expect_bytes(b, 2, "d0 00");
    assert_int_equal(mqo_mqtt_decode(b, 2, 5, MQO_S2C, &pk), 0);

    assert_int_equal(mqo_mqtt_enc_disconnect(b, 4, 0x8e), 2);
    expect_bytes(b, 2, "e0 00");
    assert_int_equal(mqo_mqtt_enc_disconnect(b, 5, 0), 2);
    expect_bytes(b, 2, "e0 00");
    assert_int_equal(mqo_mqtt_enc_disconnect(b, 5, 0x8e), 3);
    expect_bytes(b, 3, "e0 01 8e");
    assert_int_equal(mqo_mqtt_decode(b, 3, 5, MQO_S2C, &pk), 0);
    assert_int_equal(pk.reason, 0x8e);
}

/* Builds, encodes, decodes and compares; returns the encoded length. */
static size_t built(const struct mqo_pkt *in, enum mqo_dir dir, uint8_t *b, size_t cap,
                    struct mqo_pkt *out)
{
    ssize_t w = mqo_mqtt_encode(in, b, cap);
    assert_true(w > 0);
    uint8_t v = in->type == MQO_CONNECT ? in->u.connect.level : in->version;
    assert_int_equal(mqo_mqtt_decode(b, (size_t)w, v, dir, out), 0);
    assert_int_equal(out->type, in->type);
    assert_int_equal(out->pid, in->pid);
    assert_int_equal(out->reason, in->reason);
    assert_int_equal(out->props.present, in->props.present);
    assert_int_equal(out->props.raw_len, in->props.raw_len);
    if (in->props.raw_len)
        assert_memory_equal(out->props.raw, in->props.raw, in->props.raw_len);
    return (size_t)w;
}

static void test_encode_built_connect(void **state)
{
    (void)state;
    struct mqo_propbuf pb, wb;
    memset(&pb, 0, sizeof pb);
    memset(&wb, 0, sizeof wb);
    assert_int_equal(mqo_props_add_u32(&pb, MQO_PROP_SESSION_EXPIRY, 3600), 0);
    assert_int_equal(mqo_props_add_u16(&pb, MQO_PROP_RECEIVE_MAXIMUM, 50), 0);
    assert_int_equal(mqo_props_add_u32(&wb, MQO_PROP_WILL_DELAY, 9), 0);
    struct mqo_pkt pk;
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_CONNECT;
    pk.u.connect.level = 5;
    pk.u.connect.cflags = MQO_CONNECT_CLEAN | MQO_CONNECT_WILL | (2 << 3) | MQO_CONNECT_USERNAME |
                          MQO_CONNECT_PASSWORD;
    pk.u.connect.keepalive = 45;
    pk.u.connect.client_id = S("dev-1");
    pk.u.connect.will_topic = S("dead/dev-1");
    pk.u.connect.will_payload = S("gone");
    pk.u.connect.username = S("user");
    pk.u.connect.password = S("secret");
    assert_int_equal(mqo_props_parse(pb.data, pb.len, MQO_CONNECT, MQO_C2S, &pk.props), 0);
    assert_int_equal(mqo_props_parse(wb.data, wb.len, 0, MQO_C2S, &pk.u.connect.will_props), 0);
    uint8_t b[256];
    struct mqo_pkt out;
    size_t n = built(&pk, MQO_C2S, b, sizeof b, &out);
    assert_int_equal(b[0], 0x10);
    assert_true(streq(out.u.connect.proto_name, "MQTT"));
    assert_int_equal(out.u.connect.level, 5);
    assert_int_equal(out.u.connect.cflags, pk.u.connect.cflags);
    assert_int_equal(out.u.connect.keepalive, 45);
    assert_true(streq(out.u.connect.client_id, "dev-1"));
    assert_int_equal(out.u.connect.will_props.will_delay, 9);
    assert_true(streq(out.u.connect.will_topic, "dead/dev-1"));
    assert_true(streq(out.u.connect.will_payload, "gone"));
    assert_true(streq(out.u.connect.username, "user"));
    assert_true(streq(out.u.connect.password, "secret"));
    assert_int_equal(out.props.session_expiry, 3600);
    assert_int_equal(mqo_mqtt_encode(&pk, b, n - 1), -ENOSPC);

    /* 3.1 gets its protocol name; bridge bit */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_CONNECT;
    pk.u.connect.level = 3;
    pk.u.connect.bridge = 1;
    pk.u.connect.cflags = MQO_CONNECT_CLEAN;
    pk.u.connect.client_id = S("c");
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    assert_true(streq(out.u.connect.proto_name, "MQIsdp"));
    assert_int_equal(out.u.connect.bridge, 1);
    assert_int_equal(b[10], 0x83);
    assert_int_equal(n, 17);
}

static void test_encode_built_others(void **state)
{
    (void)state;
    uint8_t b[256];
    struct mqo_pkt pk, out;

    /* SUBSCRIBE built with flags 0 gets 0x2 */
    const uint8_t list[] = {0, 3, 'a', '/', '#', 0x01};
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_SUBSCRIBE;
    pk.version = 5;
    pk.pid = 10;
    pk.u.sub.list = list;
    pk.u.sub.list_len = sizeof list;
    size_t n = built(&pk, MQO_C2S, b, sizeof b, &out);
    assert_int_equal(b[0], 0x82);
    assert_int_equal(n, 11);
    assert_int_equal(out.u.sub.count, 1);

    /* PUBLISH: byte 0 from the publish fields */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_PUBLISH;
    pk.version = 4;
    pk.pid = 1;
    pk.u.publish.qos = 2;
    pk.u.publish.retain = 1;
    pk.u.publish.topic = S("x/y");
    pk.u.publish.payload = (const uint8_t *)"pp";
    pk.u.publish.payload_len = 2;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "35 09 00 03 78 2f 79 00 01 70 70");
    pk.u.publish.qos = 3;
    assert_int_equal(mqo_mqtt_encode(&pk, b, sizeof b), -EINVAL);

    /* v5 PUBACK: the reason code and properties force the long forms */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_PUBACK;
    pk.version = 5;
    pk.pid = 4;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "40 02 00 04");
    pk.reason = 0x80;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "40 03 00 04 80");
    assert_int_equal(out.form, MQO_FORM_REASON);
    struct mqo_propbuf pb;
    memset(&pb, 0, sizeof pb);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_REASON_STRING, "no", 2), 0);
    assert_int_equal(mqo_props_parse(pb.data, pb.len, MQO_PUBACK, MQO_C2S, &pk.props), 0);
    pk.reason = 0;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "40 09 00 04 00 05 1f 00 02 6e 6f");
    assert_int_equal(out.form, MQO_FORM_PROPS);
    memset(&pk.props, 0, sizeof pk.props);
    pk.form = MQO_FORM_PROPS;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "40 04 00 04 00 00");
    /* the same in v3: pid only */
    pk.version = 4;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "40 02 00 04");

    /* PUBREL built with flags 0 */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_PUBREL;
    pk.version = 4;
    pk.pid = 2;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "62 02 00 02");

    /* CONNACK v5 */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_CONNACK;
    pk.version = 5;
    pk.u.connack.session_present = 1;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "20 03 01 00 00");
    assert_int_equal(out.u.connack.session_present, 1);

    /* SUBACK / UNSUBACK */
    const uint8_t codes[] = {0, 1, 0x80};
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_SUBACK;
    pk.version = 4;
    pk.pid = 9;
    pk.u.suback.codes = codes;
    pk.u.suback.count = 3;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "90 05 00 09 00 01 80");
    pk.type = MQO_UNSUBACK;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "b0 02 00 09"); /* v3: no codes */
    pk.version = 5;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "b0 06 00 09 00 00 01 80");

    /* DISCONNECT and AUTH */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_DISCONNECT;
    pk.version = 5;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "e0 00");
    pk.reason = 0x8b;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "e0 01 8b");
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_AUTH;
    pk.version = 5;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "f0 00");
    memset(&pb, 0, sizeof pb);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_AUTH_METHOD, "m", 1), 0);
    assert_int_equal(mqo_props_parse(pb.data, pb.len, MQO_AUTH, MQO_S2C, &pk.props), 0);
    pk.reason = MQO_RC_CONTINUE_AUTH;
    n = built(&pk, MQO_S2C, b, sizeof b, &out);
    expect_bytes(b, n, "f0 06 18 04 15 00 01 6d");

    /* pings */
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_PINGREQ;
    pk.version = 3;
    n = built(&pk, MQO_C2S, b, sizeof b, &out);
    expect_bytes(b, n, "c0 00");
}

static void test_encode_errors_and_header(void **state)
{
    (void)state;
    uint8_t b[64];
    struct mqo_pkt pk;
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_PINGREQ;
    assert_int_equal(mqo_mqtt_encode(&pk, b, sizeof b), -EINVAL); /* version 0 */
    pk.version = 4;
    pk.type = 0;
    assert_int_equal(mqo_mqtt_encode(&pk, b, sizeof b), -EINVAL);
    pk.type = 16;
    assert_int_equal(mqo_mqtt_encode(&pk, b, sizeof b), -EINVAL);
    pk.type = MQO_PUBACK;
    pk.props.raw_len = 3; /* raw NULL */
    assert_int_equal(mqo_mqtt_encode(&pk, b, sizeof b), -EINVAL);
    pk.props.raw_len = 0;
    assert_int_equal(mqo_mqtt_encode(&pk, b, 3), -ENOSPC);
    assert_int_equal(mqo_mqtt_encode(&pk, b, 4), 4);

    /* a non-minimal header is kept; a too-short hdr_len falls back to minimal */
    size_t n = hex("c0 80 80 00", b, sizeof b);
    assert_int_equal(mqo_mqtt_decode(b, n, 4, MQO_C2S, &pk), 0);
    assert_int_equal(pk.hdr_len, 4);
    uint8_t o[16];
    assert_int_equal(mqo_mqtt_encode(&pk, o, sizeof o), 4);
    expect_bytes(o, 4, "c0 80 80 00");
    pk.hdr_len = 0;
    assert_int_equal(mqo_mqtt_encode(&pk, o, sizeof o), 2);
    uint8_t big[300];
    memset(big, 'a', sizeof big);
    memset(&pk, 0, sizeof pk);
    pk.type = MQO_PUBLISH;
    pk.version = 4;
    pk.hdr_len = 2; /* cannot hold 200 */
    pk.u.publish.topic.p = big;
    pk.u.publish.topic.len = 198;
    uint8_t ob[256];
    assert_int_equal(mqo_mqtt_encode(&pk, ob, sizeof ob), 203);
    assert_int_equal(ob[1], 0xc8);
    assert_int_equal(ob[2], 0x01);
    pk.hdr_len = 5;
    assert_int_equal(mqo_mqtt_encode(&pk, ob, sizeof ob), 205);
    expect_bytes(ob, 5, "30 c8 81 80 00");
    struct mqo_pkt q;
    assert_int_equal(mqo_mqtt_decode(ob, 205, 4, MQO_C2S, &q), 0);
    assert_int_equal(q.hdr_len, 5);
    assert_int_equal(q.u.publish.topic.len, 198);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_v5_qos1_patch),
        cmocka_unit_test(test_publish_v311_qos0),
        cmocka_unit_test(test_publish_v5_plain),
        cmocka_unit_test(test_publish_errors),
        cmocka_unit_test(test_publish_large),
        cmocka_unit_test(test_acks_pings_disconnect),
        cmocka_unit_test(test_encode_built_connect),
        cmocka_unit_test(test_encode_built_others),
        cmocka_unit_test(test_encode_errors_and_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
