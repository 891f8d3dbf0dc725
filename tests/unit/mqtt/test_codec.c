/* MQTT codec: framing, decoding of every packet type (3.1, 3.1.1, 5.0), round trips,
 * streaming, UTF-8 and a table of malformed packets. */
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


static int streq(struct mqo_str s, const char *c)
{
    return s.len == strlen(c) && (s.len == 0 || memcmp(s.p, c, s.len) == 0);
}

#define C2S MQO_C2S
#define S2C MQO_S2C

/* Valid packets of every type. */
struct vec {
    const char *name;
    const char *hex;
    uint8_t version;
    enum mqo_dir dir;
    uint8_t type;
};

static const struct vec valid[] = {
    /* CONNECT */
    {"connect v311 full", "10 1f 00 04 4d 51 54 54 04 ee 00 3c 00 02 63 31 00 03 77 2f 74 00 03 62 79 65 00 01 75 00 02 70 77", 4, C2S, MQO_CONNECT},
    {"connect v31", "10 11 00 06 4d 51 49 73 64 70 03 02 00 0a 00 03 61 62 63", 3, C2S, MQO_CONNECT},
    {"connect v31 user flag, no user", "10 11 00 06 4d 51 49 73 64 70 03 c2 00 0a 00 03 61 62 63", 3, C2S, MQO_CONNECT},
    {"connect v31 odd header flags", "1f 11 00 06 4d 51 49 73 64 70 03 03 00 0a 00 03 61 62 63", 3, C2S, MQO_CONNECT},
    {"connect v311 bridge", "10 0d 00 04 4d 51 54 54 84 02 00 3c 00 01 61", 4, C2S, MQO_CONNECT},
    {"connect v311 empty client id", "10 0c 00 04 4d 51 54 54 04 02 00 00 00 00", 4, C2S, MQO_CONNECT},
    {"connect v5 full", "10 36 00 04 4d 51 54 54 05 86 00 1e 0f 11 00 00 00 78 21 00 0a 26 00 01 6b 00 01 76 00 00 0e 18 00 00 00 05 01 01 03 00 04 74 65 78 74 00 02 6c 77 00 01 78 00 02 6d 65", 5, C2S, MQO_CONNECT},
    {"connect v5 password only", "10 12 00 04 4d 51 54 54 05 42 00 00 00 00 01 61 00 02 70 77", 5, C2S, MQO_CONNECT},
    {"connect v5 auth", "10 16 00 04 4d 51 54 54 05 02 00 00 09 15 00 02 6d 31 16 00 01 07 00 00", 5, C2S, MQO_CONNECT},
    /* CONNACK */
    {"connack v311", "20 02 01 00", 4, S2C, MQO_CONNACK},
    {"connack v31 refused", "20 02 00 05", 3, S2C, MQO_CONNACK},
    {"connack v5 props", "20 1a 00 00 17 22 00 0a 12 00 03 78 79 7a 24 01 25 00 27 00 00 10 00 1f 00 02 6f 6b", 5, S2C, MQO_CONNACK},
    {"connack v5 refused", "20 03 00 87 00", 5, S2C, MQO_CONNACK},
    /* PUBLISH */
    {"publish v311 qos0", "30 0a 00 03 61 2f 62 68 65 6c 6c 6f", 4, C2S, MQO_PUBLISH},
    {"publish v311 qos1 dup retain", "3b 0c 00 03 61 2f 62 00 0a 68 65 6c 6c 6f", 4, S2C, MQO_PUBLISH},
    {"publish v311 qos2 empty", "34 07 00 03 61 2f 62 00 07", 4, C2S, MQO_PUBLISH},
    {"publish v311 dup qos0", "38 03 00 01 61", 4, C2S, MQO_PUBLISH},
    {"publish v31 qos1", "32 06 00 01 61 00 02 7a", 3, C2S, MQO_PUBLISH},
    {"publish v311 non-minimal length", "30 83 00 00 01 61", 4, C2S, MQO_PUBLISH},
    {"publish v5 props", "32 24 00 01 74 00 01 1d 01 01 02 00 00 00 3c 08 00 03 72 2f 78 09 00 02 ab cd 26 00 01 61 00 01 62 03 00 01 6a 70", 5, C2S, MQO_PUBLISH},
    {"publish v5 alias empty topic", "30 07 00 00 03 23 00 05 7a", 5, C2S, MQO_PUBLISH},
    {"publish v5 sub ids s2c", "30 0a 00 01 74 05 0b 01 0b 80 01 7a", 5, S2C, MQO_PUBLISH},
    {"publish v5 no props", "30 04 00 01 74 00", 5, S2C, MQO_PUBLISH},
    /* acks */
    {"puback v311", "40 02 00 01", 4, C2S, MQO_PUBACK},
    {"puback v5 reason+props", "40 08 00 01 10 04 1f 00 01 78", 5, S2C, MQO_PUBACK},
    {"puback v5 reason only", "40 03 00 05 80", 5, C2S, MQO_PUBACK},
    {"puback v5 explicit 0", "40 03 00 05 00", 5, C2S, MQO_PUBACK},
    {"puback v5 empty props", "40 04 00 05 00 00", 5, C2S, MQO_PUBACK},
    {"puback v5 short", "40 02 00 05", 5, C2S, MQO_PUBACK},
    {"pubrec v311", "50 02 00 02", 4, S2C, MQO_PUBREC},
    {"pubrec v5", "50 03 00 02 10", 5, C2S, MQO_PUBREC},
    {"pubrel v311", "62 02 00 03", 4, C2S, MQO_PUBREL},
    {"pubrel v31 flags 0", "60 02 00 03", 3, C2S, MQO_PUBREL},
    {"pubrel v5", "62 03 00 03 92", 5, S2C, MQO_PUBREL},
    {"pubcomp v311", "70 02 00 04", 4, S2C, MQO_PUBCOMP},
    {"pubcomp v5", "70 04 00 04 00 00", 5, C2S, MQO_PUBCOMP},
    /* SUBSCRIBE / SUBACK */
    {"subscribe v311", "82 0c 00 02 00 03 61 2f 2b 01 00 01 23 02", 4, C2S, MQO_SUBSCRIBE},
    {"subscribe v311 shared", "82 0f 00 02 00 0a 24 73 68 61 72 65 2f 67 2f 78 00", 4, C2S, MQO_SUBSCRIBE},
    {"subscribe v5", "82 18 00 03 02 0b 05 00 0a 24 73 68 61 72 65 2f 67 2f 78 01 00 03 79 2f 23 2e", 5, C2S, MQO_SUBSCRIBE},
    {"subscribe v31 empty", "82 02 00 01", 3, C2S, MQO_SUBSCRIBE},
    {"subscribe v31 flags 0", "80 06 00 01 00 01 61 00", 3, C2S, MQO_SUBSCRIBE},
    {"subscribe v31 flags dup", "8a 06 00 01 00 01 61 00", 3, C2S, MQO_SUBSCRIBE},
    {"unsubscribe v31 flags 0", "a0 05 00 01 00 01 61", 3, C2S, MQO_UNSUBSCRIBE},
    {"puback v31 flags", "41 02 00 01", 3, S2C, MQO_PUBACK},
    {"pingreq v31 flags", "c3 00", 3, C2S, MQO_PINGREQ},
    {"suback v311", "90 04 00 02 01 80", 4, S2C, MQO_SUBACK},
    {"suback v5", "90 06 00 03 00 00 02 8f", 5, S2C, MQO_SUBACK},
    {"suback v31 empty", "90 02 00 01", 3, S2C, MQO_SUBACK},
    /* UNSUBSCRIBE / UNSUBACK */
    {"unsubscribe v311", "a2 07 00 04 00 03 61 2f 62", 4, C2S, MQO_UNSUBSCRIBE},
    {"unsubscribe v5", "a2 0d 00 05 00 00 03 61 2f 62 00 03 24 2f 23", 5, C2S, MQO_UNSUBSCRIBE},
    {"unsubscribe v31 empty", "a2 02 00 01", 3, C2S, MQO_UNSUBSCRIBE},
    {"unsuback v311", "b0 02 00 04", 4, S2C, MQO_UNSUBACK},
    {"unsuback v5", "b0 05 00 05 00 00 11", 5, S2C, MQO_UNSUBACK},
    /* pings */
    {"pingreq", "c0 00", 4, C2S, MQO_PINGREQ},
    {"pingreq non-minimal", "c0 80 80 00", 5, C2S, MQO_PINGREQ},
    {"pingresp", "d0 00", 5, S2C, MQO_PINGRESP},
    /* DISCONNECT */
    {"disconnect v311", "e0 00", 4, C2S, MQO_DISCONNECT},
    {"disconnect v5 short", "e0 00", 5, S2C, MQO_DISCONNECT},
    {"disconnect v5 reason", "e0 01 04", 5, C2S, MQO_DISCONNECT},
    {"disconnect v5 session expiry", "e0 07 00 05 11 00 00 00 00", 5, C2S, MQO_DISCONNECT},
    {"disconnect v5 server reference", "e0 09 9c 07 1c 00 04 68 6f 73 74", 5, S2C, MQO_DISCONNECT},
    {"disconnect v5 explicit 0, empty props", "e0 02 00 00", 5, S2C, MQO_DISCONNECT},
    /* AUTH */
    {"auth v5 empty", "f0 00", 5, S2C, MQO_AUTH},
    {"auth v5 c2s", "f0 0a 19 08 15 00 05 53 43 52 41 4d", 5, C2S, MQO_AUTH},
    {"auth v5 s2c", "f0 0e 18 0c 15 00 05 53 43 52 41 4d 16 00 01 ff", 5, S2C, MQO_AUTH},
};
#define N_VALID (sizeof valid / sizeof valid[0])

/* The hex of a valid vector by name. */
static const char *V(const char *name)
{
    for (size_t i = 0; i < N_VALID; i++)
        if (strcmp(valid[i].name, name) == 0)
            return valid[i].hex;
    fail_msg("no vector %s", name);
    return NULL;
}

static int decode_hex(const char *h, uint8_t version, enum mqo_dir dir, uint8_t *buf, size_t cap,
                      size_t *n, struct mqo_pkt *pk)
{
    *n = hex(h, buf, cap);
    return mqo_mqtt_decode(buf, *n, version, dir, pk);
}

/* ---- framing ---- */

static void put_len(uint8_t *b, uint32_t v, size_t *n)
{
    b[0] = 0x30;
    *n = 1 + mqo_mqtt_varint_put(b + 1, v);
}

static void test_varint_edges(void **state)
{
    (void)state;
    static const struct {
        uint32_t v;
        unsigned bytes;
        const char *enc;
    } cases[] = {
        {0, 1, "00"},
        {127, 1, "7f"},
        {128, 2, "80 01"},
        {16383, 2, "ff 7f"},
        {16384, 3, "80 80 01"},
        {2097151, 3, "ff ff 7f"},
        {2097152, 4, "80 80 80 01"},
        {268435455, 4, "ff ff ff 7f"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[8], want[8];
        size_t n, wn = hex(cases[i].enc, want, sizeof want);
        assert_int_equal(mqo_mqtt_varint_len(cases[i].v), cases[i].bytes);
        assert_int_equal(mqo_mqtt_varint_put(b, cases[i].v), cases[i].bytes);
        assert_memory_equal(b, want, wn);
        put_len(b, cases[i].v, &n);
        struct mqo_frame f;
        memset(&f, 0xee, sizeof f);
        ssize_t r = mqo_mqtt_frame(b, n, 0, &f);
        if (cases[i].v == 0)
            assert_int_equal(r, 2);
        else
            assert_int_equal(r, 0); /* header complete, body missing */
        assert_int_equal(f.type, MQO_PUBLISH);
        assert_int_equal(f.remaining, cases[i].v);
        assert_int_equal(f.hdr_len, 1 + cases[i].bytes);
        assert_int_equal(f.total, 1 + cases[i].bytes + cases[i].v);
        /* header bytes one short: not complete */
        assert_int_equal(mqo_mqtt_frame(b, n - 1, 0, &f), 0);
    }
    uint8_t b[8];
    assert_int_equal(mqo_mqtt_varint_put(b, 268435456u), 0);
}

static void test_frame_complete_sizes(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {0, 1, 127, 128, 16383, 16384, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n;
        uint8_t *b = calloc(1, sizes[i] + 8);
        assert_non_null(b);
        put_len(b, sizes[i], &n);
        size_t total = n + sizes[i];
        struct mqo_frame f;
        assert_int_equal(mqo_mqtt_frame(b, total, 0, &f), (ssize_t)total);
        assert_int_equal(mqo_mqtt_frame(b, total - 1, 0, &f), 0);
        assert_int_equal(mqo_mqtt_frame(b, total + 5, 0, &f), (ssize_t)total);
        /* max_packet: equal passes, one less is too large */
        assert_int_equal(mqo_mqtt_frame(b, total, (uint32_t)total, &f), (ssize_t)total);
        assert_int_equal(mqo_mqtt_frame(b, total, (uint32_t)total - 1, &f), -MQO_RC_PACKET_TOO_LARGE);
        /* reported as soon as the header is there */
        assert_int_equal(mqo_mqtt_frame(b, n, (uint32_t)total - 1, &f), -MQO_RC_PACKET_TOO_LARGE);
        assert_int_equal(f.total, total);
        free(b);
    }
}

static void test_frame_errors(void **state)
{
    (void)state;
    uint8_t b[16];
    struct mqo_frame f;
    size_t n;
    n = hex("30 ff ff ff ff 01", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), -MQO_RC_MALFORMED);
    /* 4th length byte with its continuation bit: malformed before the 5th arrives */
    n = hex("30 80 80 80 80", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), -MQO_RC_MALFORMED);
    n = hex("30 ff ff ff", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), 0);
    n = hex("00 00", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_mqtt_frame(b, 1, 0, &f), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_mqtt_frame(b, 0, 0, &f), 0);
    n = hex("c0", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), 0);
    /* non-minimal remaining length accepted */
    n = hex("c0 80 80 80 00", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), 5);
    assert_int_equal(f.hdr_len, 5);
    assert_int_equal(f.remaining, 0);
    /* max_packet counts the header too */
    n = hex("c0 00", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 1, &f), -MQO_RC_PACKET_TOO_LARGE);
    assert_int_equal(mqo_mqtt_frame(b, n, 2, &f), 2);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, NULL), 2);
    /* maximum remaining length, with a limit */
    n = hex("30 ff ff ff 7f", b, sizeof b);
    assert_int_equal(mqo_mqtt_frame(b, n, 0, &f), 0);
    assert_int_equal(f.total, 268435455u + 5);
    assert_int_equal(mqo_mqtt_frame(b, n, 268435459u, &f), -MQO_RC_PACKET_TOO_LARGE);
}

/* Emulates a receive buffer: bytes arrive `step` at a time (0: pseudo-random sizes). */
static size_t stream_feed(const uint8_t *s, size_t n, size_t step, uint8_t version,
                          enum mqo_dir dir, size_t *lens, size_t max)
{
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t have = 0, pos = 0, count = 0;
    uint32_t x = 12345;
    while (pos < n) {
        size_t k = step;
        if (!k) {
            x = x * 1103515245u + 12345u;
            k = 1 + (x >> 16) % 23;
        }
        if (k > n - pos)
            k = n - pos;
        memcpy(buf + have, s + pos, k);
        have += k;
        pos += k;
        for (;;) {
            struct mqo_frame f;
            ssize_t r = mqo_mqtt_frame(buf, have, 0, &f);
            assert_true(r >= 0);
            if (r == 0)
                break;
            struct mqo_pkt pk;
            assert_int_equal(mqo_mqtt_decode(buf, (size_t)r, version, dir, &pk), 0);
            assert_true(count < max);
            lens[count++] = (size_t)r;
            memmove(buf, buf + r, have - (size_t)r);
            have -= (size_t)r;
        }
    }
    assert_int_equal(have, 0);
    free(buf);
    return count;
}

static void check_stream(uint8_t version, enum mqo_dir dir)
{
    uint8_t *s = malloc(65536);
    assert_non_null(s);
    size_t n = 0, want[128], nw = 0;
    for (size_t i = 0; i < N_VALID; i++) {
        const struct vec *v = &valid[i];
        if (v->version != version || v->dir != dir || v->type == MQO_CONNECT)
            continue;
        size_t k = hex(v->hex, s + n, 65536 - n);
        want[nw++] = k;
        n += k;
    }
    assert_true(nw >= 4);
    /* all in one chunk */
    size_t off = 0, cnt = 0;
    for (;;) {
        ssize_t r = mqo_mqtt_frame(s + off, n - off, 0, NULL);
        if (r == 0)
            break;
        assert_true(r > 0);
        assert_int_equal((size_t)r, want[cnt]);
        struct mqo_pkt pk;
        assert_int_equal(mqo_mqtt_decode(s + off, (size_t)r, version, dir, &pk), 0);
        off += (size_t)r;
        cnt++;
    }
    assert_int_equal(cnt, nw);
    assert_int_equal(off, n);
    /* one byte at a time, 7 at a time, random chunks */
    size_t got[128];
    static const size_t steps[] = {1, 7, 0, 1000};
    for (size_t k = 0; k < 4; k++) {
        size_t c = stream_feed(s, n, steps[k], version, dir, got, 128);
        assert_int_equal(c, nw);
        assert_memory_equal(got, want, nw * sizeof want[0]);
    }
    free(s);
}

static void test_stream_v311_c2s(void **state) { (void)state; check_stream(4, C2S); }
static void test_stream_v311_s2c(void **state) { (void)state; check_stream(4, S2C); }
static void test_stream_v5_c2s(void **state) { (void)state; check_stream(5, C2S); }
static void test_stream_v5_s2c(void **state) { (void)state; check_stream(5, S2C); }
static void test_stream_v31_c2s(void **state) { (void)state; check_stream(3, C2S); }

static void test_stream_error_midway(void **state)
{
    (void)state;
    /* two good packets then a broken length: the error shows once its bytes are in */
    uint8_t s[32];
    size_t n = hex("c0 00 40 02 00 01 30 ff ff ff ff", s, sizeof s);
    size_t off = 0;
    assert_int_equal(mqo_mqtt_frame(s + off, n - off, 0, NULL), 2);
    off += 2;
    assert_int_equal(mqo_mqtt_frame(s + off, n - off, 0, NULL), 4);
    off += 4;
    assert_int_equal(mqo_mqtt_frame(s + off, 4, 0, NULL), 0);
    assert_int_equal(mqo_mqtt_frame(s + off, 5, 0, NULL), -MQO_RC_MALFORMED);
}

/* ---- round trips ---- */

static void test_round_trip_all(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        const struct vec *v = &valid[i];
        uint8_t b[512], out[520];
        size_t n;
        struct mqo_pkt pk;
        int rc = decode_hex(v->hex, v->version, v->dir, b, sizeof b, &n, &pk);
        if (rc != 0)
            fail_msg("%s: decode %d", v->name, rc);
        assert_int_equal(pk.type, v->type);
        assert_int_equal(pk.len, n);
        ssize_t w = mqo_mqtt_encode(&pk, out, sizeof out);
        if (w != (ssize_t)n || memcmp(out, b, n) != 0)
            fail_msg("%s: round trip differs (%zd vs %zu)", v->name, w, n);
        assert_int_equal(mqo_mqtt_encode(&pk, out, n - 1), -ENOSPC);
        assert_int_equal(mqo_mqtt_encode(&pk, out, n), (ssize_t)n);
        /* decode(encode(pk)) == pk */
        struct mqo_pkt again;
        assert_int_equal(mqo_mqtt_decode(out, n, v->version, v->dir, &again), 0);
        assert_int_equal(again.type, pk.type);
        assert_int_equal(again.flags, pk.flags);
        assert_int_equal(again.pid, pk.pid);
        assert_int_equal(again.reason, pk.reason);
        assert_int_equal(again.form, pk.form);
        assert_int_equal(again.props.present, pk.props.present);
        assert_int_equal(again.props.raw_len, pk.props.raw_len);
        /* the same packet in the wrong direction or truncated is refused (not a crash) */
        for (size_t cut = 1; cut < n; cut++) {
            struct mqo_pkt t;
            assert_true(mqo_mqtt_decode(b, cut, v->version, v->dir, &t) < 0);
        }
    }
}

/* Every valid packet with one byte flipped (each bit) decodes or fails cleanly, and whatever
 * decodes round-trips. */
static void test_bit_flips(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        const struct vec *v = &valid[i];
        uint8_t b[512], out[520];
        size_t n = hex(v->hex, b, sizeof b);
        for (size_t k = 0; k < n; k++) {
            for (int bit = 0; bit < 8; bit++) {
                b[k] ^= (uint8_t)(1 << bit);
                ssize_t r = mqo_mqtt_frame(b, n, 0, NULL);
                if (r > 0) {
                    struct mqo_pkt pk;
                    for (int d = 0; d < 2; d++) {
                        int rc = mqo_mqtt_decode(b, (size_t)r, v->version, (enum mqo_dir)d, &pk);
                        if (rc == 0) {
                            assert_int_equal(mqo_mqtt_encode(&pk, out, sizeof out), r);
                            assert_memory_equal(out, b, (size_t)r);
                        } else {
                            assert_true(rc == -MQO_RC_MALFORMED || rc == -MQO_RC_PROTOCOL_ERROR ||
                                        rc == -MQO_RC_TOPIC_NAME_INVALID ||
                                        rc == -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION);
                        }
                    }
                }
                b[k] ^= (uint8_t)(1 << bit);
            }
        }
    }
}

/* ---- field checks ---- */

static void test_connect_v311(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex(V("connect v311 full"), 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_CONNECT);
    assert_int_equal(pk.version, 4);
    assert_int_equal(pk.u.connect.level, 4);
    assert_int_equal(pk.u.connect.bridge, 0);
    assert_true(streq(pk.u.connect.proto_name, "MQTT"));
    assert_int_equal(pk.u.connect.cflags, 0xee);
    assert_int_equal(MQO_CONNECT_WILL_QOS(pk.u.connect.cflags), 1);
    assert_int_equal(pk.u.connect.keepalive, 60);
    assert_true(streq(pk.u.connect.client_id, "c1"));
    assert_true(streq(pk.u.connect.will_topic, "w/t"));
    assert_true(streq(pk.u.connect.will_payload, "bye"));
    assert_true(streq(pk.u.connect.username, "u"));
    assert_true(streq(pk.u.connect.password, "pw"));
    assert_int_equal(pk.props.present, 0);
    assert_int_equal(pk.u.connect.will_props.present, 0);
    /* a CONNECT is decoded whatever level the connection had */
    assert_int_equal(mqo_mqtt_decode(b, n, 5, C2S, &pk), 0);
    assert_int_equal(pk.version, 4);
    assert_int_equal(mqo_mqtt_decode(b, n, 0, C2S, &pk), 0);
}

static void test_connect_v31(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex(V("connect v31"), 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.version, 3);
    assert_true(streq(pk.u.connect.proto_name, "MQIsdp"));
    assert_int_equal(pk.u.connect.keepalive, 10);
    assert_true(streq(pk.u.connect.client_id, "abc"));
    /* username and password flags without the fields (3.1 only) */
    assert_int_equal(decode_hex(V("connect v31 user flag, no user"), 3, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.connect.cflags, 0xc2);
    assert_null(pk.u.connect.username.p);
    assert_null(pk.u.connect.password.p);
    /* the same in 3.1.1 is malformed */
    n = hex("10 0d 00 04 4d 51 54 54 04 c2 00 0a 00 01 61", b, sizeof b);
    assert_int_equal(mqo_mqtt_decode(b, n, 4, C2S, &pk), -MQO_RC_MALFORMED);
    /* 3.1 with a username but no password */
    n = hex("10 14 00 06 4d 51 49 73 64 70 03 c2 00 0a 00 01 61 00 03 62 6f 62", b, sizeof b);
    assert_int_equal(mqo_mqtt_decode(b, n, 3, C2S, &pk), 0);
    assert_true(streq(pk.u.connect.username, "bob"));
    assert_null(pk.u.connect.password.p);
    uint8_t out[64];
    assert_int_equal(mqo_mqtt_encode(&pk, out, sizeof out), (ssize_t)n);
    assert_memory_equal(out, b, n);
    /* bridge bit on 3 */
    n = hex("10 0f 00 06 4d 51 49 73 64 70 83 02 00 0a 00 01 61", b, sizeof b);
    assert_int_equal(mqo_mqtt_decode(b, n, 3, C2S, &pk), 0);
    assert_int_equal(pk.u.connect.bridge, 1);
    assert_int_equal(pk.u.connect.level, 3);
}

static void test_connect_v5(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex(V("connect v5 full"), 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.version, 5);
    assert_int_equal(pk.u.connect.cflags, 0x86);
    assert_int_equal(pk.u.connect.keepalive, 30);
    assert_true(MQO_PROP_HAS(&pk.props, MQO_PROP_SESSION_EXPIRY));
    assert_int_equal(pk.props.session_expiry, 120);
    assert_int_equal(pk.props.receive_maximum, 10);
    assert_int_equal(pk.props.n_user_props, 1);
    assert_int_equal(pk.props.raw_len, 15);
    assert_ptr_equal(pk.props.raw, b + 13);
    assert_int_equal(pk.u.connect.client_id.len, 0);
    assert_non_null(pk.u.connect.client_id.p);
    const struct mqo_props *w = &pk.u.connect.will_props;
    assert_int_equal(w->will_delay, 5);
    assert_int_equal(w->payload_format, 1);
    assert_true(streq(w->content_type, "text"));
    assert_true(MQO_PROP_HAS(w, MQO_PROP_WILL_DELAY));
    assert_false(MQO_PROP_HAS(w, MQO_PROP_SESSION_EXPIRY));
    assert_true(streq(pk.u.connect.will_topic, "lw"));
    assert_true(streq(pk.u.connect.will_payload, "x"));
    assert_true(streq(pk.u.connect.username, "me"));
    assert_int_equal(pk.u.connect.password.len, 0);
    /* password without username is fine in v5 */
    assert_int_equal(decode_hex(V("connect v5 password only"), 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_true(streq(pk.u.connect.password, "pw"));
    assert_int_equal(decode_hex(V("connect v5 auth"), 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_true(streq(pk.props.auth_method, "m1"));
    assert_int_equal(pk.props.auth_data.len, 1);
    assert_int_equal(pk.props.auth_data.p[0], 7);
}

static void test_connack(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex("20 02 01 00", 4, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.connack.session_present, 1);
    assert_int_equal(pk.reason, 0);
    assert_int_equal(decode_hex("20 02 00 05", 3, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, 5);
    assert_int_equal(decode_hex(V("connack v5 props"), 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.connack.session_present, 0);
    assert_int_equal(pk.props.topic_alias_maximum, 10);
    assert_true(streq(pk.props.assigned_client_id, "xyz"));
    assert_int_equal(pk.props.maximum_qos, 1);
    assert_true(MQO_PROP_HAS(&pk.props, MQO_PROP_RETAIN_AVAILABLE));
    assert_int_equal(pk.props.retain_available, 0);
    assert_int_equal(pk.props.maximum_packet_size, 4096);
    assert_true(streq(pk.props.reason_string, "ok"));
    assert_int_equal(decode_hex("20 03 00 87 00", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, MQO_RC_NOT_AUTHORIZED);
}

static void test_publish_v311(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex("30 0a 00 03 61 2f 62 68 65 6c 6c 6f", 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 0);
    assert_int_equal(pk.u.publish.retain, 0);
    assert_int_equal(pk.u.publish.dup, 0);
    assert_int_equal(pk.pid, 0);
    assert_true(streq(pk.u.publish.topic, "a/b"));
    assert_int_equal(pk.u.publish.pid_off, 0);
    assert_int_equal(pk.u.publish.props_off, 0);
    assert_int_equal(pk.u.publish.payload_off, 7);
    assert_int_equal(pk.u.publish.payload_len, 5);
    assert_memory_equal(pk.u.publish.payload, "hello", 5);
    assert_int_equal(decode_hex("3b 0c 00 03 61 2f 62 00 0a 68 65 6c 6c 6f", 4, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 1);
    assert_int_equal(pk.u.publish.retain, 1);
    assert_int_equal(pk.u.publish.dup, 1);
    assert_int_equal(pk.pid, 10);
    assert_int_equal(pk.u.publish.pid_off, 7);
    assert_int_equal(pk.u.publish.payload_off, 9);
    assert_int_equal(decode_hex("34 07 00 03 61 2f 62 00 07", 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 2);
    assert_int_equal(pk.u.publish.payload_len, 0);
    /* DUP with QoS 0 is accepted, as Mosquitto 2.0.11 does */
    assert_int_equal(decode_hex("38 03 00 01 61", 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.publish.dup, 1);
    /* non-minimal remaining length: offsets follow the real header */
    assert_int_equal(decode_hex("30 83 00 00 01 61", 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.hdr_len, 3);
    assert_int_equal(pk.u.publish.payload_off, 6);
    assert_int_equal(pk.u.publish.payload_len, 0);
}

static void test_publish_v5(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex(V("publish v5 props"), 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.publish.qos, 1);
    assert_int_equal(pk.pid, 1);
    assert_true(streq(pk.u.publish.topic, "t"));
    assert_int_equal(pk.u.publish.pid_off, 5);
    assert_int_equal(pk.u.publish.props_off, 7);
    assert_int_equal(pk.u.publish.payload_off, 37);
    assert_int_equal(pk.u.publish.payload_len, 1);
    assert_int_equal(pk.u.publish.payload[0], 'p');
    const struct mqo_props *p = &pk.props;
    assert_int_equal(p->raw_len, 29);
    assert_ptr_equal(p->raw, b + 8);
    assert_int_equal(p->payload_format, 1);
    assert_int_equal(p->message_expiry, 60);
    assert_true(streq(p->response_topic, "r/x"));
    assert_int_equal(p->correlation_data.len, 2);
    assert_int_equal(p->correlation_data.p[0], 0xab);
    assert_int_equal(p->n_user_props, 1);
    assert_true(streq(p->content_type, "j"));
    assert_false(MQO_PROP_HAS(p, MQO_PROP_TOPIC_ALIAS));
    /* topic alias with an empty topic */
    assert_int_equal(decode_hex(V("publish v5 alias empty topic"), 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.publish.topic.len, 0);
    assert_int_equal(pk.props.topic_alias, 5);
    /* subscription identifiers from the server */
    assert_int_equal(decode_hex(V("publish v5 sub ids s2c"), 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.props.n_sub_ids, 2);
    assert_int_equal(pk.props.sub_ids[0], 1);
    assert_int_equal(pk.props.sub_ids[1], 128);
    /* ... but not from a client */
    assert_int_equal(mqo_mqtt_decode(b, n, 5, C2S, &pk), -MQO_RC_PROTOCOL_ERROR);
    /* no properties: raw NULL */
    assert_int_equal(decode_hex("30 04 00 01 74 00", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_null(pk.props.raw);
    assert_int_equal(pk.props.raw_len, 0);
    assert_int_equal(pk.u.publish.props_off, 5);
    assert_int_equal(pk.u.publish.payload_off, 6);
}

static void test_publish_many_sub_ids(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = 0;
    b[n++] = 0x30;
    b[n++] = 0; /* remaining, below */
    b[n++] = 0;
    b[n++] = 1;
    b[n++] = 't';
    b[n++] = 40; /* 20 sub ids of 2 bytes */
    for (unsigned i = 1; i <= 20; i++) {
        b[n++] = 0x0b;
        b[n++] = (uint8_t)i;
    }
    b[1] = (uint8_t)(n - 2);
    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_decode(b, n, 5, S2C, &pk), 0);
    assert_int_equal(pk.props.n_sub_ids, 20);
    for (unsigned i = 0; i < MQO_MAX_SUB_IDS; i++)
        assert_int_equal(pk.props.sub_ids[i], i + 1);
}

static void test_acks(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex("40 02 00 01", 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_PUBACK);
    assert_int_equal(pk.pid, 1);
    assert_int_equal(pk.reason, 0);
    assert_int_equal(decode_hex("40 08 00 01 10 04 1f 00 01 78", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, MQO_RC_NO_MATCHING_SUBSCRIBERS);
    assert_int_equal(pk.form, MQO_FORM_PROPS);
    assert_true(streq(pk.props.reason_string, "x"));
    assert_int_equal(decode_hex("40 03 00 05 80", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, 0x80);
    assert_int_equal(pk.form, MQO_FORM_REASON);
    assert_int_equal(decode_hex("40 02 00 05", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, 0);
    assert_int_equal(pk.form, MQO_FORM_SHORT);
    assert_int_equal(decode_hex("50 03 00 02 10", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_PUBREC);
    assert_int_equal(pk.pid, 2);
    assert_int_equal(decode_hex("62 03 00 03 92", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_PUBREL);
    assert_int_equal(pk.reason, MQO_RC_PACKET_ID_NOT_FOUND);
    assert_int_equal(pk.flags, 2);
    assert_int_equal(decode_hex("70 04 00 04 00 00", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_PUBCOMP);
    assert_int_equal(pk.form, MQO_FORM_PROPS);
    assert_null(pk.props.raw);
    /* any reason code is accepted, as Mosquitto 2.0.11 does */
    assert_int_equal(decode_hex("50 03 00 02 05", 5, C2S, b, sizeof b, &n, &pk), 0);
}

static void test_subscribe(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    struct mqo_sub_entry e;
    uint32_t off = 0;
    assert_int_equal(decode_hex(V("subscribe v311"), 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_SUBSCRIBE);
    assert_int_equal(pk.pid, 2);
    assert_int_equal(pk.u.sub.count, 2);
    assert_int_equal(pk.u.sub.list_len, 10);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 1);
    assert_true(streq(e.filter, "a/+"));
    assert_int_equal(e.opts, 1);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 1);
    assert_true(streq(e.filter, "#"));
    assert_int_equal(e.opts, 2);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 0);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 0);

    assert_int_equal(decode_hex(V("subscribe v5"), 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.pid, 3);
    assert_int_equal(pk.props.n_sub_ids, 1);
    assert_int_equal(pk.props.sub_ids[0], 5);
    off = 0;
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 1);
    assert_true(streq(e.filter, "$share/g/x"));
    assert_int_equal(MQO_SUBOPT_QOS(e.opts), 1);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 1);
    assert_true(streq(e.filter, "y/#"));
    assert_int_equal(MQO_SUBOPT_QOS(e.opts), 2);
    assert_true(e.opts & MQO_SUBOPT_NO_LOCAL);
    assert_true(e.opts & MQO_SUBOPT_RAP);
    assert_int_equal(MQO_SUBOPT_RH(e.opts), 2);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 0);

    assert_int_equal(decode_hex(V("subscribe v31 empty"), 3, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.sub.count, 0);
    off = 0;
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 0);
}

static void test_suback_unsub(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex("90 04 00 02 01 80", 4, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.pid, 2);
    assert_int_equal(pk.u.suback.count, 2);
    assert_int_equal(pk.u.suback.codes[0], 1);
    assert_int_equal(pk.u.suback.codes[1], 0x80);
    assert_int_equal(decode_hex("90 06 00 03 00 00 02 8f", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.suback.count, 3);
    assert_int_equal(pk.u.suback.codes[2], MQO_RC_TOPIC_FILTER_INVALID);
    assert_int_equal(decode_hex("a2 0d 00 05 00 00 03 61 2f 62 00 03 24 2f 23", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_UNSUBSCRIBE);
    assert_int_equal(pk.u.sub.count, 2);
    uint32_t off = 0;
    struct mqo_sub_entry e;
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 1);
    assert_true(streq(e.filter, "a/b"));
    assert_int_equal(e.opts, 0);
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 1);
    assert_true(streq(e.filter, "$/#"));
    assert_int_equal(mqo_mqtt_sub_next(&pk, &off, &e), 0);
    assert_int_equal(decode_hex("b0 02 00 04", 4, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.pid, 4);
    assert_int_equal(pk.u.suback.count, 0);
    assert_int_equal(decode_hex("b0 05 00 05 00 00 11", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.u.suback.count, 2);
    assert_int_equal(pk.u.suback.codes[1], MQO_RC_NO_SUBSCRIPTION_EXISTED);
}

static void test_ping_disconnect_auth(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n;
    struct mqo_pkt pk;
    assert_int_equal(decode_hex("c0 00", 3, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_PINGREQ);
    assert_int_equal(decode_hex("d0 00", 4, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_PINGRESP);
    assert_int_equal(decode_hex("e0 00", 4, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_DISCONNECT);
    assert_int_equal(decode_hex("e0 01 04", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, 4);
    assert_int_equal(pk.form, MQO_FORM_REASON);
    assert_int_equal(decode_hex("e0 07 00 05 11 00 00 00 00", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_true(MQO_PROP_HAS(&pk.props, MQO_PROP_SESSION_EXPIRY));
    assert_int_equal(pk.props.session_expiry, 0);
    assert_int_equal(decode_hex("e0 09 9c 07 1c 00 04 68 6f 73 74", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, 0x9c);
    assert_true(streq(pk.props.server_reference, "host"));
    assert_int_equal(decode_hex("f0 00", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.type, MQO_AUTH);
    assert_int_equal(pk.reason, 0);
    assert_int_equal(decode_hex("f0 0a 19 08 15 00 05 53 43 52 41 4d", 5, C2S, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, MQO_RC_REAUTHENTICATE);
    assert_true(streq(pk.props.auth_method, "SCRAM"));
    assert_int_equal(decode_hex("f0 0e 18 0c 15 00 05 53 43 52 41 4d 16 00 01 ff", 5, S2C, b, sizeof b, &n, &pk), 0);
    assert_int_equal(pk.reason, MQO_RC_CONTINUE_AUTH);
    assert_int_equal(pk.props.auth_data.len, 1);
}

static void test_type_name(void **state)
{
    (void)state;
    assert_string_equal(mqo_mqtt_type_name(MQO_PUBLISH), "PUBLISH");
    assert_string_equal(mqo_mqtt_type_name(MQO_AUTH), "AUTH");
    assert_string_equal(mqo_mqtt_type_name(MQO_UNSUBSCRIBE), "UNSUBSCRIBE");
    assert_string_equal(mqo_mqtt_type_name(0), "?");
    assert_string_equal(mqo_mqtt_type_name(16), "?");
}

/* ---- malformed table ---- */

#define MAL -MQO_RC_MALFORMED
#define PROTO -MQO_RC_PROTOCOL_ERROR
#define TNI -MQO_RC_TOPIC_NAME_INVALID
#define UNSUP -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION

static const struct bad {
    const char *name;
    const char *hex;
    uint8_t version;
    enum mqo_dir dir;
    int rc;
} bad[] = {
    /* fixed header */
    {"type 0", "00 00", 4, C2S, MAL},
    {"5-byte length", "30 ff ff ff ff 01", 4, C2S, MAL},
    {"length beyond the bytes", "30 05 00 01 61", 4, C2S, MAL},
    {"unknown level on a connection", "c0 00", 6, C2S, PROTO},
    /* PUBLISH */
    {"publish qos 3", "36 05 00 01 61 00 01", 4, C2S, MAL},
    {"publish topic #", "30 05 00 03 61 2f 23", 4, C2S, TNI},
    {"publish topic +", "30 05 00 03 2b 2f 61", 4, C2S, TNI},
    {"publish v5 topic wildcard", "30 04 00 01 23 00", 5, S2C, TNI},
    {"publish empty topic v311", "30 02 00 00", 4, C2S, MAL},
    {"publish empty topic v5 no alias", "30 03 00 00 00", 5, C2S, PROTO},
    {"publish qos1 pid 0", "32 05 00 01 61 00 00", 4, C2S, PROTO},
    {"publish topic past end", "30 03 00 05 61", 4, C2S, MAL},
    {"publish topic U+0000", "30 04 00 02 61 00", 4, C2S, MAL},
    {"publish topic bad utf-8", "30 04 00 02 61 ff", 4, C2S, MAL},
    {"publish topic control char", "30 04 00 02 61 0a", 4, C2S, MAL},
    {"publish topic surrogate", "30 05 00 03 ed a0 80", 4, C2S, MAL},
    {"publish truncated pid", "32 04 00 01 61 00", 4, C2S, MAL},
    {"publish v5 no property length", "30 03 00 01 61", 5, C2S, MAL},
    {"publish v5 props past end", "30 05 00 01 61 05 01", 5, C2S, MAL},
    {"publish v5 sub id from client", "30 06 00 01 61 02 0b 01", 5, C2S, PROTO},
    {"publish v5 topic alias 0", "30 07 00 01 61 03 23 00 00", 5, C2S, MAL},
    {"publish v5 duplicate payload format", "30 08 00 01 61 04 01 00 01 01", 5, C2S, PROTO},
    {"publish v5 payload format 2", "30 06 00 01 61 02 01 02", 5, C2S, PROTO},
    {"publish v5 session expiry not allowed", "30 09 00 01 61 05 11 00 00 00 01", 5, C2S, MAL},
    {"publish v5 unknown property", "30 06 00 01 61 02 04 00", 5, C2S, MAL},
    {"publish v5 response topic wildcard", "30 09 00 01 61 05 08 00 02 61 23", 5, C2S, PROTO},
    {"publish v5 non-minimal property length", "30 05 00 01 61 80 00", 5, C2S, MAL},
    {"publish v5 content type control char", "30 08 00 01 61 04 03 00 01 01", 5, C2S, MAL},
    {"publish v5 sub id 0 from server", "30 06 00 01 61 02 0b 00", 5, S2C, PROTO},
    /* acks */
    {"puback flags 1", "41 02 00 01", 4, C2S, MAL},
    {"puback pid 0", "40 02 00 00", 4, C2S, PROTO},
    {"puback v311 surplus", "40 03 00 01 00", 4, C2S, MAL},
    {"puback short", "40 01 00", 4, C2S, MAL},
    {"pubrel flags 0", "60 02 00 01", 4, C2S, MAL},
    {"pubrel v5 flags 0", "60 02 00 01", 5, S2C, MAL},
    {"pubcomp flags 2", "72 02 00 01", 4, S2C, MAL},
    {"pubrec v5 reason string bad utf-8", "50 08 00 01 00 04 1f 00 01 c0", 5, C2S, MAL},
    {"puback v5 topic alias not allowed", "40 07 00 01 00 03 23 00 01", 5, C2S, MAL},
    {"puback v5 props past end", "40 05 00 01 00 03 1f", 5, C2S, MAL},
    {"pubcomp v5 duplicate reason string", "70 0c 00 01 00 08 1f 00 01 61 1f 00 01 62", 5, C2S, PROTO},
    /* SUBSCRIBE */
    {"subscribe flags 0", "80 06 00 01 00 01 61 00", 4, C2S, MAL},
    {"subscribe flags dup", "8a 06 00 01 00 01 61 00", 4, C2S, MAL},
    {"subscribe v31 option bit 2", "82 06 00 01 00 01 61 04", 3, C2S, MAL},
    {"publish v31 qos 3", "36 05 00 01 61 00 01", 3, C2S, MAL},
    {"subscribe no filters v311", "82 02 00 01", 4, C2S, MAL},
    {"subscribe no filters v5", "82 03 00 01 00", 5, C2S, PROTO},
    {"subscribe v311 option bit 2", "82 06 00 01 00 01 61 04", 4, C2S, MAL},
    {"subscribe v311 qos 3", "82 06 00 01 00 01 61 03", 4, C2S, MAL},
    {"subscribe v5 option bit 6", "82 07 00 01 00 00 01 61 40", 5, C2S, MAL},
    {"subscribe v5 option bit 7", "82 07 00 01 00 00 01 61 80", 5, C2S, MAL},
    {"subscribe v5 retain handling 3", "82 07 00 01 00 00 01 61 30", 5, C2S, MAL},
    {"subscribe v5 qos 3", "82 07 00 01 00 00 01 61 03", 5, C2S, MAL},
    {"subscribe v5 no-local shared", "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 78 04", 5, C2S, PROTO},
    {"subscribe v5 sub id 0", "82 09 00 01 02 0b 00 00 01 61 00", 5, C2S, PROTO},
    {"subscribe v5 two sub ids", "82 0b 00 01 04 0b 01 0b 02 00 01 61 00", 5, C2S, PROTO},
    {"subscribe v5 topic alias not allowed", "82 0a 00 01 03 23 00 01 00 01 61 00", 5, C2S, MAL},
    {"subscribe filter a#", "82 07 00 01 00 02 61 23 00", 4, C2S, MAL},
    {"subscribe filter #/a", "82 08 00 01 00 03 23 2f 61 00", 4, C2S, MAL},
    {"subscribe bad share", "82 0c 00 01 00 07 24 73 68 61 72 65 2f 00", 4, C2S, MAL},
    {"subscribe empty filter", "82 05 00 01 00 00 00", 4, C2S, MAL},
    {"subscribe filter bad utf-8", "82 06 00 01 00 01 ff 00", 4, C2S, MAL},
    {"subscribe missing options", "82 05 00 01 00 01 61", 4, C2S, MAL},
    {"subscribe pid 0", "82 06 00 00 00 01 61 00", 4, C2S, MAL},
    {"subscribe from server", "82 06 00 01 00 01 61 00", 4, S2C, PROTO},
    /* UNSUBSCRIBE */
    {"unsubscribe no filters v311", "a2 02 00 01", 4, C2S, MAL},
    {"unsubscribe no filters v5", "a2 03 00 01 00", 5, C2S, PROTO},
    {"unsubscribe flags 0", "a0 05 00 01 00 01 61", 4, C2S, MAL},
    {"unsubscribe invalid filter", "a2 06 00 01 00 02 2b 61", 4, C2S, MAL},
    {"unsubscribe truncated filter", "a2 05 00 01 00 05 61", 4, C2S, MAL},
    {"unsubscribe pid 0", "a2 05 00 00 00 01 61", 4, C2S, MAL},
    {"unsubscribe v5 sub id not allowed", "a2 08 00 01 02 0b 01 00 01 61", 5, C2S, MAL},
    /* CONNECT */
    {"connect reserved flag", "10 0d 00 04 4d 51 54 54 04 03 00 3c 00 01 61", 4, C2S, MAL},
    {"connect level 6", "10 0d 00 04 4d 51 54 54 06 02 00 3c 00 01 61", 4, C2S, UNSUP},
    {"connect name MQTX", "10 0d 00 04 4d 51 54 58 04 02 00 3c 00 01 61", 4, C2S, UNSUP},
    {"connect MQTT level 3", "10 0d 00 04 4d 51 54 54 03 02 00 3c 00 01 61", 4, C2S, UNSUP},
    {"connect MQIsdp level 4", "10 0f 00 06 4d 51 49 73 64 70 04 02 00 3c 00 01 61", 4, C2S, UNSUP},
    {"connect v5 bridge bit", "10 0e 00 04 4d 51 54 54 85 02 00 3c 00 00 01 61", 5, C2S, UNSUP},
    {"connect will qos without will", "10 0d 00 04 4d 51 54 54 04 0a 00 3c 00 01 61", 4, C2S, PROTO},
    {"connect will retain without will", "10 0d 00 04 4d 51 54 54 04 22 00 3c 00 01 61", 4, C2S, PROTO},
    {"connect will qos 3", "10 12 00 04 4d 51 54 54 04 1e 00 3c 00 01 61 00 01 62 00 00", 4, C2S, MAL},
    {"connect will qos 2 ok but topic +", "10 12 00 04 4d 51 54 54 04 16 00 3c 00 01 61 00 01 2b 00 00", 4, C2S, TNI},
    {"connect v31 will qos 3", "10 0f 00 06 4d 51 49 73 64 70 03 18 00 3c 00 01 61", 3, C2S, MAL},
    {"connect password without username", "10 0d 00 04 4d 51 54 54 04 42 00 3c 00 01 61", 4, C2S, PROTO},
    {"connect v31 password without username", "10 0f 00 06 4d 51 49 73 64 70 03 42 00 3c 00 01 61", 3, C2S, PROTO},
    {"connect header flags", "11 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61", 4, C2S, MAL},
    {"connect surplus byte", "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 01 61 00", 4, C2S, PROTO},
    {"connect client id surrogate", "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 ed a0 80", 4, C2S, MAL},
    {"connect will topic wildcard", "10 12 00 04 4d 51 54 54 04 06 00 3c 00 01 61 00 01 23 00 00", 4, C2S, TNI},
    {"connect empty will topic", "10 11 00 04 4d 51 54 54 04 06 00 3c 00 01 61 00 00 00 00", 4, C2S, PROTO},
    {"connect will payload past end", "10 12 00 04 4d 51 54 54 04 06 00 3c 00 01 61 00 01 62 00 05", 4, C2S, MAL},
    {"connect username missing", "10 0d 00 04 4d 51 54 54 04 82 00 3c 00 01 61", 4, C2S, MAL},
    {"connect username bad utf-8", "10 10 00 04 4d 51 54 54 04 82 00 3c 00 01 61 00 01 c1", 4, C2S, MAL},
    {"connect truncated keepalive", "10 09 00 04 4d 51 54 54 04 02 00", 4, C2S, MAL},
    {"connect from server", "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61", 4, S2C, PROTO},
    {"connect v5 auth data without method", "10 11 00 04 4d 51 54 54 05 02 00 3c 04 16 00 01 00 00 00", 5, C2S, PROTO},
    {"connect v5 receive maximum 0", "10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", 5, C2S, PROTO},
    {"connect v5 maximum packet size 0", "10 12 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 00", 5, C2S, PROTO},
    {"connect v5 request problem info 2", "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 17 02 00 00", 5, C2S, PROTO},
    {"connect v5 will delay in connect props", "10 12 00 04 4d 51 54 54 05 02 00 3c 05 18 00 00 00 01 00 00", 5, C2S, MAL},
    {"connect v5 session expiry in will props", "10 18 00 04 4d 51 54 54 05 06 00 3c 00 00 00 05 11 00 00 00 01 00 01 61 00 00", 5, C2S, MAL},
    {"connect v5 no property length", "10 0a 00 04 4d 51 54 54 05 02 00 3c", 5, C2S, MAL},
    /* CONNACK */
    {"connack from client", "20 02 00 00", 4, C2S, PROTO},
    {"connack reserved bits", "20 02 02 00", 4, S2C, MAL},
    {"connack v311 surplus", "20 03 00 00 00", 4, S2C, MAL},
    {"connack short", "20 01 00", 4, S2C, MAL},
    {"connack v5 maximum qos 2", "20 05 00 00 02 24 02", 5, S2C, PROTO},
    {"connack v5 retain available 3", "20 05 00 00 02 25 03", 5, S2C, PROTO},
    {"connack v5 no properties", "20 02 00 00", 5, S2C, MAL},
    {"connack v5 topic alias not allowed", "20 06 00 00 03 23 00 01", 5, S2C, MAL},
    {"connack flags 8", "28 02 00 00", 4, S2C, MAL},
    /* pings */
    {"pingreq surplus", "c0 01 00", 4, C2S, MAL},
    {"pingreq flags", "c1 00", 4, C2S, MAL},
    {"pingreq from server", "c0 00", 4, S2C, PROTO},
    {"pingresp from client", "d0 00", 4, C2S, PROTO},
    {"pingresp surplus", "d0 01 00", 5, S2C, MAL},
    /* SUBACK / UNSUBACK */
    {"suback from client", "90 03 00 01 00", 4, C2S, PROTO},
    {"suback no codes v311", "90 02 00 01", 4, S2C, MAL},
    {"suback no codes v5", "90 03 00 01 00", 5, S2C, PROTO},
    {"suback pid 0", "90 03 00 00 00", 4, S2C, PROTO},
    {"unsuback v311 surplus", "b0 03 00 01 00", 4, S2C, MAL},
    {"unsuback v5 no codes", "b0 03 00 01 00", 5, S2C, PROTO},
    {"unsuback from client", "b0 02 00 01", 4, C2S, PROTO},
    /* DISCONNECT */
    {"disconnect from server v311", "e0 00", 4, S2C, PROTO},
    {"disconnect v311 surplus", "e0 01 00", 4, C2S, PROTO},
    {"disconnect flags", "e1 00", 5, C2S, MAL},
    {"disconnect v5 props past end", "e0 02 00 05", 5, C2S, MAL},
    {"disconnect v5 topic alias not allowed", "e0 05 00 03 23 00 01", 5, C2S, MAL},
    /* AUTH */
    {"auth v311", "f0 00", 4, C2S, PROTO},
    {"auth v5 client reason 0", "f0 0a 00 08 15 00 05 53 43 52 41 4d", 5, C2S, PROTO},
    {"auth v5 server reason 0x19", "f0 0a 19 08 15 00 05 53 43 52 41 4d", 5, S2C, PROTO},
    {"auth v5 without method", "f0 02 18 00", 5, C2S, PROTO},
    {"auth v5 reason only", "f0 01 18", 5, C2S, MAL},
    {"auth v5 flags", "f1 00", 5, C2S, MAL},
};
#define N_BAD (sizeof bad / sizeof bad[0])

static void test_malformed_table(void **state)
{
    (void)state;
    assert_true(N_BAD >= 40);
    unsigned failures = 0;
    for (size_t i = 0; i < N_BAD; i++) {
        uint8_t b[512];
        size_t n = hex(bad[i].hex, b, sizeof b);
        struct mqo_pkt pk;
        int rc = mqo_mqtt_decode(b, n, bad[i].version, bad[i].dir, &pk);
        if (rc != bad[i].rc) {
            print_error("%s: got %d, want %d\n", bad[i].name, rc, bad[i].rc);
            failures++;
        }
        /* framing agrees on the length (the bytes are complete packets) */
        if (bad[i].rc != -MQO_RC_MALFORMED || mqo_mqtt_frame(b, n, 0, NULL) == (ssize_t)n)
            assert_int_equal(mqo_mqtt_frame(b, n, 0, NULL), (ssize_t)n);
    }
    assert_int_equal(failures, 0);
}

static void test_decode_len_mismatch(void **state)
{
    (void)state;
    uint8_t b[32];
    size_t n = hex("40 02 00 01 c0 00", b, sizeof b);
    struct mqo_pkt pk;
    assert_int_equal(mqo_mqtt_decode(b, n, 4, C2S, &pk), -MQO_RC_MALFORMED); /* two packets */
    assert_int_equal(mqo_mqtt_decode(b, 3, 4, C2S, &pk), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_mqtt_decode(b, 1, 4, C2S, &pk), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_mqtt_decode(b, 0, 4, C2S, &pk), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_mqtt_decode(NULL, 4, 4, C2S, &pk), -MQO_RC_MALFORMED);
    assert_int_equal(mqo_mqtt_decode(b, 4, 4, C2S, &pk), 0);
}

static void test_topic_hierarchy_limit(void **state)
{
    (void)state;
    uint8_t b[512];
    for (unsigned slashes = 199; slashes <= 202; slashes++) {
        size_t n = 0;
        b[n++] = 0x30;
        b[n++] = 0x80 | (uint8_t)((2 + slashes) & 0x7f);
        b[n++] = (uint8_t)((2 + slashes) >> 7);
        b[n++] = 0;
        b[n++] = (uint8_t)slashes;
        memset(b + n, '/', slashes);
        n += slashes;
        struct mqo_pkt pk;
        int rc = mqo_mqtt_decode(b, n, 4, C2S, &pk);
        assert_int_equal(rc, slashes <= 200 ? 0 : -MQO_RC_TOPIC_NAME_INVALID);
        /* the same as a filter */
        n = 0;
        b[n++] = 0x82;
        b[n++] = 0x80 | (uint8_t)((5 + slashes) & 0x7f);
        b[n++] = (uint8_t)((5 + slashes) >> 7);
        b[n++] = 0;
        b[n++] = 1;
        b[n++] = 0;
        b[n++] = (uint8_t)slashes;
        memset(b + n, '/', slashes);
        n += slashes;
        b[n++] = 0;
        rc = mqo_mqtt_decode(b, n, 4, C2S, &pk);
        assert_int_equal(rc, slashes <= 200 ? 0 : -MQO_RC_MALFORMED);
    }
}

/* ---- UTF-8 ---- */

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        int ok;
    } cases[] = {
        {"", 1},
        {"61 62 63", 1},
        {"20 7e", 1},
        {"00", 0},             /* U+0000 */
        {"61 00 62", 0},
        {"01", 0},             /* controls, refused by Mosquitto */
        {"09", 0},
        {"1f", 0},
        {"7f", 0},
        {"c2 80", 0},          /* U+0080 */
        {"c2 9f", 0},          /* U+009F */
        {"c2 a0", 1},          /* U+00A0 */
        {"c3 a9", 1},          /* é */
        {"c0 80", 0},          /* overlong U+0000 */
        {"c1 bf", 0},          /* overlong U+007F */
        {"e0 80 80", 0},       /* overlong */
        {"e0 9f bf", 0},       /* overlong U+07FF */
        {"e0 a0 80", 1},       /* U+0800 */
        {"e2 82 ac", 1},       /* € */
        {"ed 9f bf", 1},       /* U+D7FF */
        {"ed a0 80", 0},       /* U+D800 surrogate */
        {"ed bf bf", 0},       /* U+DFFF surrogate */
        {"ee 80 80", 1},       /* U+E000 */
        {"ef b7 8f", 1},       /* U+FDCF */
        {"ef b7 90", 0},       /* U+FDD0 non-character */
        {"ef b7 af", 0},       /* U+FDEF */
        {"ef b7 b0", 1},       /* U+FDF0 */
        {"ef bf bd", 1},       /* U+FFFD */
        {"ef bf be", 0},       /* U+FFFE */
        {"ef bf bf", 0},       /* U+FFFF */
        {"f0 80 80 80", 0},    /* overlong */
        {"f0 8f bf bf", 0},    /* overlong U+FFFF */
        {"f0 90 80 80", 1},    /* U+10000 */
        {"f0 9f 98 80", 1},    /* emoji */
        {"f0 9f bf be", 0},    /* U+1FFFE */
        {"f4 8f bf bd", 1},    /* U+10FFFD, the last allowed */
        {"f4 8f bf bf", 0},    /* U+10FFFF is a non-character */
        {"f4 90 80 80", 0},    /* U+110000 */
        {"f5 80 80 80", 0},
        {"f8 88 80 80 80", 0}, /* 5-byte form */
        {"fe", 0},
        {"ff", 0},
        {"80", 0},             /* lone continuation */
        {"61 bf", 0},
        {"c3", 0},             /* truncated */
        {"e2 82", 0},
        {"f0 9f 98", 0},
        {"c3 28", 0},          /* bad continuation */
        {"e2 28 a1", 0},
        {"f0 9f 28 80", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[16];
        size_t n = hex(cases[i].hex, b, sizeof b);
        int rc = mqo_mqtt_utf8_check(n ? b : (const uint8_t *)"", n);
        if ((rc == 0) != cases[i].ok)
            fail_msg("utf8 '%s': got %d", cases[i].hex, rc);
        if (!cases[i].ok)
            assert_int_equal(rc, -MQO_RC_MALFORMED);
    }
}

/* Decodes the UTF-8 rules through a packet: every 2- and 3-byte sequence as a topic. */
static void test_utf8_in_topics(void **state)
{
    (void)state;
    uint8_t b[16];
    for (uint32_t x = 0; x < 65536; x++) {
        b[0] = 0x30;
        b[1] = 4;
        b[2] = 0;
        b[3] = 2;
        b[4] = (uint8_t)(x >> 8);
        b[5] = (uint8_t)x;
        struct mqo_pkt pk;
        int rc = mqo_mqtt_decode(b, 6, 4, C2S, &pk);
        int u = mqo_mqtt_utf8_check(b + 4, 2);
        if (u != 0)
            assert_int_equal(rc, -MQO_RC_MALFORMED);
        else
            assert_true(rc == 0 || rc == -MQO_RC_TOPIC_NAME_INVALID);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_edges),
        cmocka_unit_test(test_frame_complete_sizes),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_stream_v311_c2s),
        cmocka_unit_test(test_stream_v311_s2c),
        cmocka_unit_test(test_stream_v5_c2s),
        cmocka_unit_test(test_stream_v5_s2c),
        cmocka_unit_test(test_stream_v31_c2s),
        cmocka_unit_test(test_stream_error_midway),
        cmocka_unit_test(test_round_trip_all),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_connect_v311),
        cmocka_unit_test(test_connect_v31),
        cmocka_unit_test(test_connect_v5),
        cmocka_unit_test(test_connack),
        cmocka_unit_test(test_publish_v311),
        cmocka_unit_test(test_publish_v5),
        cmocka_unit_test(test_publish_many_sub_ids),
        cmocka_unit_test(test_acks),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_suback_unsub),
        cmocka_unit_test(test_ping_disconnect_auth),
        cmocka_unit_test(test_type_name),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_decode_len_mismatch),
        cmocka_unit_test(test_topic_hierarchy_limit),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_in_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
