/* MQTT 5 properties: walking, validation rules (types, packet types, duplicates, ranges),
 * the builder and mqo_props_filter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helper_hex.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mqtt/mqtt.h"


static int parse_hex(const char *h, uint8_t ptype, enum mqo_dir dir, struct mqo_props *pr)
{
    static uint8_t b[1024];
    size_t n = hex(h, b, sizeof b);
    return mqo_props_parse(b, (uint32_t)n, ptype, dir, pr);
}

static int streq(struct mqo_str s, const char *c)
{
    return s.len == strlen(c) && (s.len == 0 || memcmp(s.p, c, s.len) == 0);
}

#define WILL 0

/* The specification's table 2.2.2.2, written out independently of the codec's. */
enum kind { K_BYTE, K_U16, K_U32, K_VARINT, K_STR, K_BIN, K_PAIR };
static const struct {
    uint8_t id;
    enum kind kind;
    uint8_t types[16]; /* packet types, WILL (0) for the will; terminated by 0xff */
} spec[] = {
    {0x01, K_BYTE, {MQO_PUBLISH, WILL, 0xff}},
    {0x02, K_U32, {MQO_PUBLISH, WILL, 0xff}},
    {0x03, K_STR, {MQO_PUBLISH, WILL, 0xff}},
    {0x08, K_STR, {MQO_PUBLISH, WILL, 0xff}},
    {0x09, K_BIN, {MQO_PUBLISH, WILL, 0xff}},
    {0x0b, K_VARINT, {MQO_PUBLISH, MQO_SUBSCRIBE, 0xff}},
    {0x11, K_U32, {MQO_CONNECT, MQO_CONNACK, MQO_DISCONNECT, 0xff}},
    {0x12, K_STR, {MQO_CONNACK, 0xff}},
    {0x13, K_U16, {MQO_CONNACK, 0xff}},
    {0x15, K_STR, {MQO_CONNECT, MQO_CONNACK, MQO_AUTH, 0xff}},
    {0x16, K_BIN, {MQO_CONNECT, MQO_CONNACK, MQO_AUTH, 0xff}},
    {0x17, K_BYTE, {MQO_CONNECT, 0xff}},
    {0x18, K_U32, {WILL, 0xff}},
    {0x19, K_BYTE, {MQO_CONNECT, 0xff}},
    {0x1a, K_STR, {MQO_CONNACK, 0xff}},
    {0x1c, K_STR, {MQO_CONNACK, MQO_DISCONNECT, 0xff}},
    {0x1f, K_STR, {MQO_CONNACK, MQO_PUBACK, MQO_PUBREC, MQO_PUBREL, MQO_PUBCOMP, MQO_SUBACK,
                   MQO_UNSUBACK, MQO_DISCONNECT, MQO_AUTH, 0xff}},
    {0x21, K_U16, {MQO_CONNECT, MQO_CONNACK, 0xff}},
    {0x22, K_U16, {MQO_CONNECT, MQO_CONNACK, 0xff}},
    {0x23, K_U16, {MQO_PUBLISH, 0xff}},
    {0x24, K_BYTE, {MQO_CONNACK, 0xff}},
    {0x25, K_BYTE, {MQO_CONNACK, 0xff}},
    {0x26, K_PAIR, {MQO_CONNECT, MQO_CONNACK, MQO_PUBLISH, WILL, MQO_PUBACK, MQO_PUBREC,
                    MQO_PUBREL, MQO_PUBCOMP, MQO_SUBSCRIBE, MQO_SUBACK, MQO_UNSUBSCRIBE,
                    MQO_UNSUBACK, MQO_DISCONNECT, MQO_AUTH, 0xff}},
    {0x27, K_U32, {MQO_CONNECT, MQO_CONNACK, 0xff}},
    {0x28, K_BYTE, {MQO_CONNACK, 0xff}},
    {0x29, K_BYTE, {MQO_CONNACK, 0xff}},
    {0x2a, K_BYTE, {MQO_CONNACK, 0xff}},
};
#define N_SPEC (sizeof spec / sizeof spec[0])

/* Encodes one property of the kind with a valid value. */
static size_t one_prop(uint8_t id, enum kind k, uint8_t *b)
{
    size_t n = 0;
    b[n++] = id;
    switch (k) {
    case K_BYTE:
        b[n++] = 1;
        break;
    case K_U16:
        b[n++] = 0;
        b[n++] = 7;
        break;
    case K_U32:
        memcpy(b + n, "\0\0\0\x09", 4);
        n += 4;
        break;
    case K_VARINT:
        b[n++] = 0x81;
        b[n++] = 0x01;
        break;
    case K_STR:
        memcpy(b + n, "\0\x03" "a/b", 5);
        n += 5;
        break;
    case K_BIN:
        memcpy(b + n, "\0\x02\x00\xff", 4);
        n += 4;
        break;
    case K_PAIR:
        memcpy(b + n, "\0\x01k\0\x01v", 6);
        n += 6;
        break;
    }
    return n;
}

static int allowed_in(size_t i, uint8_t t)
{
    for (size_t k = 0; spec[i].types[k] != 0xff; k++)
        if (spec[i].types[k] == t)
            return 1;
    return 0;
}

static void test_allowed_matrix(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPEC; i++) {
        uint8_t b[32];
        size_t n = one_prop(spec[i].id, spec[i].kind, b);
        for (uint8_t t = 0; t < 16; t++) {
            struct mqo_props pr;
            enum mqo_dir dir = t == MQO_PUBLISH ? MQO_S2C : MQO_C2S;
            int rc = mqo_props_parse(b, (uint32_t)n, t, dir, &pr);
            if (allowed_in(i, t)) {
                if (rc != 0)
                    fail_msg("property 0x%02x in type %u: %d", spec[i].id, t, rc);
                assert_true(MQO_PROP_HAS(&pr, spec[i].id));
                assert_ptr_equal(pr.raw, b);
                assert_int_equal(pr.raw_len, n);
            } else if (rc != -MQO_RC_MALFORMED) {
                fail_msg("property 0x%02x in type %u: %d, want malformed", spec[i].id, t, rc);
            }
        }
    }
    /* every identifier outside the table is unknown */
    for (unsigned id = 0; id < 256; id++) {
        int known = 0;
        for (size_t i = 0; i < N_SPEC; i++)
            known |= spec[i].id == id;
        if (known)
            continue;
        uint8_t b[4] = {(uint8_t)id, 0, 0, 0};
        struct mqo_props pr;
        uint32_t off = 0;
        struct mqo_prop p;
        assert_int_equal(mqo_props_next(b, 4, &off, &p), -MQO_RC_MALFORMED);
        for (uint8_t t = 0; t < 16; t++)
            assert_int_equal(mqo_props_parse(b, 4, t, MQO_C2S, &pr), -MQO_RC_MALFORMED);
    }
}

static void test_duplicates(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPEC; i++) {
        uint8_t b[64];
        size_t n = one_prop(spec[i].id, spec[i].kind, b);
        n += one_prop(spec[i].id, spec[i].kind, b + n);
        uint8_t t = spec[i].types[0];
        struct mqo_props pr;
        int rc = mqo_props_parse(b, (uint32_t)n, t, MQO_S2C, &pr);
        if (spec[i].id == MQO_PROP_USER_PROPERTY || (spec[i].id == MQO_PROP_SUBSCRIPTION_ID && t == MQO_PUBLISH))
            assert_int_equal(rc, 0);
        else if (rc != -MQO_RC_PROTOCOL_ERROR)
            fail_msg("duplicate 0x%02x in type %u: %d", spec[i].id, t, rc);
    }
    struct mqo_props pr;
    /* User Property repeats anywhere */
    assert_int_equal(parse_hex("26 00 01 61 00 01 62 26 00 01 61 00 01 62 26 00 00 00 00", MQO_PUBACK, MQO_C2S, &pr), 0);
    assert_int_equal(pr.n_user_props, 3);
    assert_int_equal(parse_hex("26 00 01 61 00 01 62 26 00 01 61 00 01 62", WILL, MQO_C2S, &pr), 0);
    assert_int_equal(pr.n_user_props, 2);
    /* Subscription Identifier repeats only in a PUBLISH from the server */
    assert_int_equal(parse_hex("0b 01 0b 02 0b 03", MQO_PUBLISH, MQO_S2C, &pr), 0);
    assert_int_equal(pr.n_sub_ids, 3);
    assert_int_equal(pr.sub_ids[2], 3);
    assert_int_equal(parse_hex("0b 01 0b 02", MQO_SUBSCRIBE, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("0b 01", MQO_PUBLISH, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("0b 01", MQO_SUBSCRIBE, MQO_C2S, &pr), 0);
    /* a duplicate separated by others */
    assert_int_equal(parse_hex("01 00 26 00 00 00 00 02 00 00 00 01 01 01", MQO_PUBLISH, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
}

static void test_type_failures(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        uint8_t ptype;
    } cases[] = {
        {"01", MQO_PUBLISH},                      /* byte missing */
        {"24", MQO_CONNACK},
        {"23 00", MQO_PUBLISH},                   /* two-byte integer truncated */
        {"13", MQO_CONNACK},
        {"02 00 00 00", MQO_PUBLISH},             /* four-byte integer truncated */
        {"27 00", MQO_CONNECT},
        {"0b", MQO_SUBSCRIBE},                    /* varint missing */
        {"0b 80", MQO_SUBSCRIBE},                 /* varint truncated */
        {"0b 80 00", MQO_SUBSCRIBE},              /* varint non-minimal */
        {"0b 81 80 00", MQO_SUBSCRIBE},
        {"0b ff ff ff ff 01", MQO_SUBSCRIBE},     /* 5-byte varint */
        {"03", MQO_PUBLISH},                      /* string length missing */
        {"03 00", MQO_PUBLISH},                   /* string length truncated */
        {"03 00 05 61", MQO_PUBLISH},             /* string past the end */
        {"09 00 03 00 00", MQO_PUBLISH},          /* binary past the end */
        {"26 00 01 61", MQO_PUBLISH},             /* pair without value */
        {"26 00 01 61 00 02 62", MQO_PUBLISH},    /* pair value past the end */
        {"03 00 01 ff", MQO_PUBLISH},             /* bad UTF-8 */
        {"1f 00 02 c3 28", MQO_PUBACK},
        {"12 00 03 ed a0 80", MQO_CONNACK},       /* surrogate */
        {"15 00 01 00", MQO_CONNECT},             /* U+0000 */
        {"26 00 01 ff 00 00", MQO_PUBLISH},       /* bad name */
        {"26 00 00 00 01 7f", MQO_PUBLISH},       /* control in value */
        {"08 00 02 c2 80", MQO_PUBLISH},          /* U+0080 */
        {"00", MQO_PUBLISH},                      /* unknown identifiers */
        {"04 00", MQO_PUBLISH},
        {"2b 00", MQO_CONNACK},
        {"80 01", MQO_PUBLISH},
        {"ff ff ff ff", MQO_PUBLISH},
        /* the encoding is checked before the rules: duplicate, then truncation */
        {"01 01 01 01 02 00", MQO_PUBLISH},
        /* bad UTF-8 behind a not-allowed property */
        {"11 00 00 00 01 03 00 01 ff", MQO_PUBLISH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mqo_props pr;
        int rc = parse_hex(cases[i].hex, cases[i].ptype, MQO_S2C, &pr);
        if (rc != -MQO_RC_MALFORMED)
            fail_msg("'%s': %d", cases[i].hex, rc);
    }
}

static void test_value_ranges(void **state)
{
    (void)state;
    struct mqo_props pr;
    static const struct {
        uint8_t id, ptype;
    } bytes[] = {
        {MQO_PROP_PAYLOAD_FORMAT, MQO_PUBLISH},
        {MQO_PROP_PAYLOAD_FORMAT, WILL},
        {MQO_PROP_REQUEST_PROBLEM_INFO, MQO_CONNECT},
        {MQO_PROP_REQUEST_RESPONSE_INFO, MQO_CONNECT},
        {MQO_PROP_MAXIMUM_QOS, MQO_CONNACK},
        {MQO_PROP_RETAIN_AVAILABLE, MQO_CONNACK},
        {MQO_PROP_WILDCARD_SUB_AVAILABLE, MQO_CONNACK},
        {MQO_PROP_SUB_ID_AVAILABLE, MQO_CONNACK},
        {MQO_PROP_SHARED_SUB_AVAILABLE, MQO_CONNACK},
    };
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        for (unsigned v = 0; v < 256; v++) {
            uint8_t b[2] = {bytes[i].id, (uint8_t)v};
            int rc = mqo_props_parse(b, 2, bytes[i].ptype, MQO_S2C, &pr);
            assert_int_equal(rc, v <= 1 ? 0 : -MQO_RC_PROTOCOL_ERROR);
        }
    }
    assert_int_equal(parse_hex("21 00 00", MQO_CONNECT, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("21 00 01", MQO_CONNECT, MQO_C2S, &pr), 0);
    assert_int_equal(pr.receive_maximum, 1);
    assert_int_equal(parse_hex("21 ff ff", MQO_CONNACK, MQO_S2C, &pr), 0);
    assert_int_equal(pr.receive_maximum, 65535);
    assert_int_equal(parse_hex("27 00 00 00 00", MQO_CONNACK, MQO_S2C, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("27 ff ff ff ff", MQO_CONNACK, MQO_S2C, &pr), 0);
    assert_int_equal(pr.maximum_packet_size, 0xffffffffu);
    assert_int_equal(parse_hex("23 00 00", MQO_PUBLISH, MQO_C2S, &pr), -MQO_RC_MALFORMED);
    assert_int_equal(parse_hex("23 ff ff", MQO_PUBLISH, MQO_C2S, &pr), 0);
    assert_int_equal(pr.topic_alias, 65535);
    assert_int_equal(parse_hex("22 00 00", MQO_CONNECT, MQO_C2S, &pr), 0); /* Topic Alias Maximum 0 is fine */
    assert_int_equal(parse_hex("13 00 00", MQO_CONNACK, MQO_S2C, &pr), 0);
    /* Subscription Identifier 1..268435455 */
    assert_int_equal(parse_hex("0b 00", MQO_SUBSCRIBE, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("0b 00", MQO_PUBLISH, MQO_S2C, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("0b 01", MQO_SUBSCRIBE, MQO_C2S, &pr), 0);
    assert_int_equal(pr.sub_ids[0], 1);
    assert_int_equal(parse_hex("0b ff ff ff 7f", MQO_SUBSCRIBE, MQO_C2S, &pr), 0);
    assert_int_equal(pr.sub_ids[0], 268435455u);
    assert_int_equal(parse_hex("0b 80 01", MQO_SUBSCRIBE, MQO_C2S, &pr), 0);
    assert_int_equal(pr.sub_ids[0], 128);
    /* Response Topic: a topic name */
    assert_int_equal(parse_hex("08 00 03 61 2f 62", MQO_PUBLISH, MQO_C2S, &pr), 0);
    assert_int_equal(parse_hex("08 00 03 61 2f 23", MQO_PUBLISH, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("08 00 03 2b 2f 62", WILL, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    assert_int_equal(parse_hex("08 00 00", MQO_PUBLISH, MQO_C2S, &pr), -MQO_RC_PROTOCOL_ERROR);
    /* empty strings are fine elsewhere */
    assert_int_equal(parse_hex("03 00 00 26 00 00 00 00", MQO_PUBLISH, MQO_C2S, &pr), 0);
    assert_int_equal(pr.content_type.len, 0);
}

static void test_parse_values(void **state)
{
    (void)state;
    struct mqo_props pr;
    assert_int_equal(parse_hex("11 00 00 01 00 21 00 14 24 00 25 01 27 00 01 00 00 12 00 02 69 64 "
                               "22 00 05 1f 00 01 72 26 00 01 6b 00 01 76 28 00 29 01 2a 00 "
                               "13 00 3c 1a 00 02 72 69 1c 00 02 73 72 15 00 01 6d 16 00 02 01 02",
                               MQO_CONNACK, MQO_S2C, &pr),
                     0);
    assert_int_equal(pr.session_expiry, 256);
    assert_int_equal(pr.receive_maximum, 20);
    assert_int_equal(pr.maximum_qos, 0);
    assert_true(MQO_PROP_HAS(&pr, MQO_PROP_MAXIMUM_QOS));
    assert_int_equal(pr.retain_available, 1);
    assert_int_equal(pr.maximum_packet_size, 65536);
    assert_true(streq(pr.assigned_client_id, "id"));
    assert_int_equal(pr.topic_alias_maximum, 5);
    assert_true(streq(pr.reason_string, "r"));
    assert_int_equal(pr.n_user_props, 1);
    assert_int_equal(pr.wildcard_sub_available, 0);
    assert_int_equal(pr.sub_id_available, 1);
    assert_int_equal(pr.shared_sub_available, 0);
    assert_int_equal(pr.server_keep_alive, 60);
    assert_true(streq(pr.response_info, "ri"));
    assert_true(streq(pr.server_reference, "sr"));
    assert_true(streq(pr.auth_method, "m"));
    assert_int_equal(pr.auth_data.len, 2);
    assert_false(MQO_PROP_HAS(&pr, MQO_PROP_TOPIC_ALIAS));
    assert_false(MQO_PROP_HAS(&pr, MQO_PROP_PAYLOAD_FORMAT));

    assert_int_equal(parse_hex("17 01 19 00", MQO_CONNECT, MQO_C2S, &pr), 0);
    assert_int_equal(pr.request_problem_info, 1);
    assert_int_equal(pr.request_response_info, 0);
    assert_int_equal(parse_hex("18 00 00 00 0a 02 00 00 01 00", WILL, MQO_C2S, &pr), 0);
    assert_int_equal(pr.will_delay, 10);
    assert_int_equal(pr.message_expiry, 256);

    /* empty block */
    assert_int_equal(mqo_props_parse((const uint8_t *)"", 0, MQO_PUBLISH, MQO_C2S, &pr), 0);
    assert_int_equal(pr.present, 0);
    assert_null(pr.raw);
    assert_int_equal(mqo_props_parse(NULL, 0, MQO_PUBLISH, MQO_C2S, &pr), 0);
}

static void test_next_walk(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = hex("01 01 23 01 02 02 00 01 00 00 0b 80 01 03 00 01 78 09 00 00 26 00 01 6b 00 02 76 76", b, sizeof b);
    struct mqo_prop p;
    uint32_t off = 0;
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 1);
    assert_int_equal(p.off, 0);
    assert_int_equal(p.len, 2);
    assert_int_equal(p.u, 1);
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 0x23);
    assert_int_equal(p.u, 0x0102);
    assert_int_equal(p.len, 3);
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 2);
    assert_int_equal(p.u, 0x00010000);
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 0x0b);
    assert_int_equal(p.u, 128);
    assert_int_equal(p.len, 3);
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 3);
    assert_true(streq(p.s, "x"));
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 9);
    assert_int_equal(p.s.len, 0);
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 1);
    assert_int_equal(p.id, 0x26);
    assert_true(streq(p.s, "k"));
    assert_true(streq(p.s2, "vv"));
    assert_int_equal(p.off + p.len, n);
    assert_int_equal(mqo_props_next(b, (uint32_t)n, &off, &p), 0);
    assert_int_equal(off, n);
}

static void test_filter(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        uint8_t drop;
    } cases[] = {
        {"23 00 05", "", MQO_PROP_TOPIC_ALIAS},
        {"23 00 05 01 01", "01 01", MQO_PROP_TOPIC_ALIAS},
        {"01 01 23 00 05", "01 01", MQO_PROP_TOPIC_ALIAS},
        {"01 01 23 00 05 26 00 01 6b 00 00", "01 01 26 00 01 6b 00 00", MQO_PROP_TOPIC_ALIAS},
        {"01 01 26 00 01 6b 00 00", "01 01 26 00 01 6b 00 00", MQO_PROP_TOPIC_ALIAS},
        {"26 00 00 00 00 01 00 26 00 01 61 00 00", "01 00", MQO_PROP_USER_PROPERTY},
        {"0b 01 03 00 01 61 0b ff ff ff 7f", "03 00 01 61", MQO_PROP_SUBSCRIPTION_ID},
        {"", "", MQO_PROP_TOPIC_ALIAS},
        /* stops at what does not parse */
        {"01 01 23 00 05 04 00 02 00 00 00 01", "01 01", MQO_PROP_TOPIC_ALIAS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t in[64], want[64], out[64];
        size_t n = hex(cases[i].in, in, sizeof in);
        size_t wn = hex(cases[i].out, want, sizeof want);
        uint32_t w = mqo_props_filter(in, (uint32_t)n, cases[i].drop, out);
        assert_int_equal(w, wn);
        assert_memory_equal(out, want, wn);
        /* in place */
        w = mqo_props_filter(in, (uint32_t)n, cases[i].drop, in);
        assert_int_equal(w, wn);
        assert_memory_equal(in, want, wn);
    }
    /* a filtered PUBLISH block parses and lost only the alias */
    uint8_t b[64], o[64];
    size_t n = hex("02 00 00 00 0a 23 00 09 26 00 01 61 00 01 62 08 00 01 72", b, sizeof b);
    uint32_t w = mqo_props_filter(b, (uint32_t)n, MQO_PROP_TOPIC_ALIAS, o);
    struct mqo_props pr;
    assert_int_equal(mqo_props_parse(o, w, MQO_PUBLISH, MQO_S2C, &pr), 0);
    assert_false(MQO_PROP_HAS(&pr, MQO_PROP_TOPIC_ALIAS));
    assert_int_equal(pr.message_expiry, 10);
    assert_int_equal(pr.n_user_props, 1);
    assert_true(streq(pr.response_topic, "r"));
}

static void test_builder(void **state)
{
    (void)state;
    struct mqo_propbuf pb;
    memset(&pb, 0, sizeof pb);
    assert_int_equal(mqo_props_add_u8(&pb, MQO_PROP_PAYLOAD_FORMAT, 1), 0);
    assert_int_equal(mqo_props_add_u16(&pb, MQO_PROP_TOPIC_ALIAS, 0x0102), 0);
    assert_int_equal(mqo_props_add_u32(&pb, MQO_PROP_MESSAGE_EXPIRY, 0x01020304), 0);
    assert_int_equal(mqo_props_add_varint(&pb, MQO_PROP_SUBSCRIPTION_ID, 16384), 0);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_CONTENT_TYPE, "ct", 2), 0);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_CORRELATION_DATA, NULL, 0), 0);
    assert_int_equal(mqo_props_add_pair(&pb, MQO_PROP_USER_PROPERTY, "k", 1, "vv", 2), 0);
    uint8_t want[64];
    size_t wn = hex("01 01 23 01 02 02 01 02 03 04 0b 80 80 01 03 00 02 63 74 09 00 00 26 00 01 6b 00 02 76 76",
                    want, sizeof want);
    assert_int_equal(pb.len, wn);
    assert_memory_equal(pb.data, want, wn);
    struct mqo_props pr;
    assert_int_equal(mqo_props_parse(pb.data, pb.len, MQO_PUBLISH, MQO_S2C, &pr), 0);
    assert_int_equal(pr.sub_ids[0], 16384);
    assert_int_equal(pr.message_expiry, 0x01020304);

    assert_int_equal(mqo_props_add_varint(&pb, MQO_PROP_SUBSCRIPTION_ID, 268435456u), -EINVAL);
    assert_int_equal(pb.len, wn);
    assert_int_equal(mqo_props_add_varint(&pb, MQO_PROP_SUBSCRIPTION_ID, 268435455u), 0);
    assert_int_equal(pb.len, wn + 5);

    /* fill up: -ENOSPC leaves the builder unchanged */
    memset(&pb, 0, sizeof pb);
    char big[1000];
    memset(big, 'x', sizeof big);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_REASON_STRING, big, 990), 0);
    assert_int_equal(pb.len, 993);
    assert_int_equal(mqo_props_add_pair(&pb, MQO_PROP_USER_PROPERTY, big, 10, big, 10), 0);
    assert_int_equal(pb.len, 1018);
    assert_int_equal(mqo_props_add_pair(&pb, MQO_PROP_USER_PROPERTY, big, 1, big, 1), -ENOSPC);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_REASON_STRING, big, 4), -ENOSPC);
    assert_int_equal(pb.len, 1018);
    assert_int_equal(mqo_props_add_u32(&pb, MQO_PROP_MESSAGE_EXPIRY, 1), 0);
    assert_int_equal(pb.len, 1023);
    uint8_t before[1024];
    memcpy(before, pb.data, sizeof before);
    assert_int_equal(mqo_props_add_u8(&pb, MQO_PROP_PAYLOAD_FORMAT, 1), -ENOSPC);
    assert_int_equal(mqo_props_add_u16(&pb, MQO_PROP_TOPIC_ALIAS, 1), -ENOSPC);
    assert_int_equal(mqo_props_add_u32(&pb, MQO_PROP_MESSAGE_EXPIRY, 1), -ENOSPC);
    assert_int_equal(mqo_props_add_varint(&pb, MQO_PROP_SUBSCRIPTION_ID, 1), -ENOSPC);
    assert_int_equal(mqo_props_add_str(&pb, MQO_PROP_CONTENT_TYPE, "", 0), -ENOSPC);
    assert_int_equal(mqo_props_add_pair(&pb, MQO_PROP_USER_PROPERTY, "", 0, "", 0), -ENOSPC);
    assert_int_equal(pb.len, 1023);
    assert_memory_equal(pb.data, before, 1024);
    struct mqo_props pr2;
    assert_int_equal(mqo_props_parse(pb.data, pb.len, MQO_PUBACK, MQO_C2S, &pr2), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_props_parse(pb.data, 1018, MQO_PUBACK, MQO_C2S, &pr2), 0);
    assert_int_equal(pr2.reason_string.len, 990);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_matrix),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_type_failures),
        cmocka_unit_test(test_value_ranges),
        cmocka_unit_test(test_parse_values),
        cmocka_unit_test(test_next_walk),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_builder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
