/* libFuzzer target for the MQTT codec.
 *
 * Input: byte 0 selects the connection (bit 0: direction, bits 1-2: protocol level 3/4/5/5,
 * bit 3: a maximum packet size of 48 + 16 * (byte0 >> 4) bytes); the rest is a byte stream.
 * The stream is split with mqo_mqtt_frame(), every packet is decoded (a valid CONNECT switches
 * the level, as on a real connection), and for every valid packet:
 *  - mqo_mqtt_encode() reproduces the exact bytes (and reports -ENOSPC one byte short);
 *  - the decoded offsets, property walk and filter list walk agree with the bytes;
 *  - a PUBLISH re-encoded with mqo_mqtt_enc_publish() gives the same bytes (minimal header),
 *    survives mqo_mqtt_publish_patch() and mqo_props_filter(), and decodes with Subscription
 *    Identifiers appended (server -> client);
 * then the stream is fed again one byte at a time and in pseudo-random chunks, as a receive
 * buffer would see it, and the framing results must be the same.
 * Any disagreement calls abort().
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RESULTS 4096

struct results {
    ssize_t r[MAX_RESULTS];
    size_t n;
};

static void push(struct results *rs, ssize_t r)
{
    if (rs->n < MAX_RESULTS)
        rs->r[rs->n++] = r;
}

#define CHECK(c)                                                                                  \
    do {                                                                                          \
        if (!(c))                                                                                 \
            abort();                                                                              \
    } while (0)

static int known_error(int rc)
{
    return rc == -MQO_RC_MALFORMED || rc == -MQO_RC_PROTOCOL_ERROR ||
           rc == -MQO_RC_TOPIC_NAME_INVALID || rc == -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION;
}

static void check_props(const struct mqo_props *pr)
{
    struct mqo_prop p;
    uint32_t off = 0, sum = 0, users = 0, subs = 0;
    int rc;
    if (pr->raw_len == 0) {
        CHECK(pr->raw == NULL && pr->present == 0);
        return;
    }
    while ((rc = mqo_props_next(pr->raw, pr->raw_len, &off, &p)) == 1) {
        CHECK(p.off == sum && p.len >= 2);
        sum += p.len;
        CHECK(MQO_PROP_HAS(pr, p.id));
        users += p.id == MQO_PROP_USER_PROPERTY;
        subs += p.id == MQO_PROP_SUBSCRIPTION_ID;
    }
    CHECK(rc == 0 && sum == pr->raw_len && users == pr->n_user_props && subs == pr->n_sub_ids);
}

static void check_publish(const uint8_t *p, size_t n, const struct mqo_pkt *pk, enum mqo_dir dir)
{
    const uint8_t v = pk->version;
    CHECK(pk->u.publish.payload_off + pk->u.publish.payload_len == n);
    CHECK(pk->u.publish.payload == p + pk->u.publish.payload_off);
    if (pk->u.publish.qos) {
        CHECK(pk->u.publish.pid_off >= 4);
        CHECK((uint16_t)(p[pk->u.publish.pid_off] << 8 | p[pk->u.publish.pid_off + 1]) == pk->pid);
    } else {
        CHECK(pk->u.publish.pid_off == 0);
    }

    struct mqo_pub_spec s = {
        .version = v,
        .qos = pk->u.publish.qos,
        .retain = pk->u.publish.retain,
        .dup = pk->u.publish.dup,
        .pid = pk->pid,
        .topic = pk->u.publish.topic,
        .payload = pk->u.publish.payload,
        .payload_len = pk->u.publish.payload_len,
        .props = pk->props.raw,
        .props_len = pk->props.raw_len,
    };
    size_t sz = mqo_mqtt_publish_size(&s);
    uint8_t *b = malloc(n + 64);
    CHECK(b);
    if (s.dup && s.qos == 0) {
        CHECK(sz == 0 && mqo_mqtt_enc_publish(b, n + 64, &s, NULL) == -EINVAL);
        free(b);
        return;
    }
    uint32_t pid_off = 1;
    ssize_t w = mqo_mqtt_enc_publish(b, n + 64, &s, &pid_off);
    uint32_t min_hdr = 1 + mqo_mqtt_varint_len((uint32_t)(n - pk->hdr_len));
    CHECK(w > 0 && (size_t)w == sz && sz == n - pk->hdr_len + min_hdr);
    CHECK(pid_off == (s.qos ? pk->u.publish.pid_off - pk->hdr_len + min_hdr : 0));
    if (pk->hdr_len == min_hdr)
        CHECK((size_t)w == n && memcmp(b, p, n) == 0);
    CHECK(mqo_mqtt_enc_publish(b, sz - 1, &s, NULL) == -ENOSPC);

    /* patch and decode again */
    struct mqo_pkt q;
    uint8_t nq = pid_off ? (uint8_t)(1 + (p[0] & 1)) : 0;
    mqo_mqtt_publish_patch(b, pid_off, nq, pid_off ? 1 : 0, 0xbeef);
    CHECK(mqo_mqtt_decode(b, (size_t)w, v, dir, &q) == 0);
    CHECK(q.u.publish.qos == nq && q.u.publish.dup == (pid_off ? 1 : 0));
    CHECK(q.pid == (pid_off ? 0xbeef : 0));
    CHECK(q.u.publish.payload_len == pk->u.publish.payload_len);
    CHECK(q.u.publish.topic.len == pk->u.publish.topic.len);

    if (v == MQO_MQTT_V5) {
        /* drop Topic Alias: still valid unless the topic is empty */
        uint8_t *f = malloc(pk->props.raw_len + 1);
        CHECK(f);
        uint32_t fl = mqo_props_filter(pk->props.raw, pk->props.raw_len, MQO_PROP_TOPIC_ALIAS, f);
        CHECK(fl <= pk->props.raw_len);
        CHECK(fl == pk->props.raw_len - (MQO_PROP_HAS(&pk->props, MQO_PROP_TOPIC_ALIAS) ? 3 : 0));
        struct mqo_props fp;
        CHECK(mqo_props_parse(fl ? f : NULL, fl, MQO_PUBLISH, dir, &fp) == 0);
        CHECK(!MQO_PROP_HAS(&fp, MQO_PROP_TOPIC_ALIAS));
        CHECK(fp.n_user_props == pk->props.n_user_props);

        /* append Subscription Identifiers, as the offload does towards a subscriber */
        static const uint32_t ids[3] = {1, 300, 268435455};
        s.props = fl ? f : NULL;
        s.props_len = fl;
        s.sub_ids = ids;
        s.n_sub_ids = 3;
        if (pk->u.publish.topic.len == 0) {
            s.topic.p = (const uint8_t *)"t";
            s.topic.len = 1;
        }
        size_t sz2 = mqo_mqtt_publish_size(&s);
        uint8_t *b2 = malloc(sz2 ? sz2 : 1);
        CHECK(b2);
        w = mqo_mqtt_enc_publish(b2, sz2, &s, NULL);
        if (sz2) {
            CHECK(w == (ssize_t)sz2);
            CHECK(mqo_mqtt_decode(b2, sz2, v, MQO_S2C, &q) == 0);
            CHECK(q.props.n_sub_ids == pk->props.n_sub_ids + 3);
            CHECK(!MQO_PROP_HAS(&q.props, MQO_PROP_TOPIC_ALIAS));
            /* a client must not send them */
            CHECK(mqo_mqtt_decode(b2, sz2, v, MQO_C2S, &q) == -MQO_RC_PROTOCOL_ERROR);
        } else {
            CHECK(w == -EINVAL);
        }
        free(b2);
        free(f);
    }
    free(b);
}

/* A PUBLISH's head decoded from every prefix of it agrees with the whole decode: 0 (more
 * needed) or the whole result (the payload's offset, or an error where the decode fails). */
static void check_publish_head(const uint8_t *p, size_t n, uint8_t v, enum mqo_dir dir, int rc,
                               const struct mqo_pkt *pk)
{
    struct mqo_frame f;
    if (mqo_mqtt_frame(p, n, 0, &f) != (ssize_t)n || f.type != MQO_PUBLISH ||
        (v != MQO_MQTT_V31 && v != MQO_MQTT_V311 && v != MQO_MQTT_V5))
        return;
    for (size_t avail = f.hdr_len; avail <= n; avail++) {
        struct mqo_pkt h;
        ssize_t r = mqo_mqtt_decode_publish_head(p, avail, &f, v, dir, &h);
        if (avail == n)
            CHECK(r != 0);
        if (r == 0)
            continue;
        if (rc != 0) {
            CHECK(r < 0);
            return;
        }
        CHECK(r == (ssize_t)pk->u.publish.payload_off && h.pid == pk->pid &&
              h.u.publish.payload_len == pk->u.publish.payload_len &&
              h.u.publish.topic.len == pk->u.publish.topic.len &&
              h.props.present == pk->props.present);
        return;
    }
}

/* Decodes and checks one packet; returns the level to use for the next ones. */
static uint8_t one_packet(const uint8_t *p, size_t n, uint8_t v, enum mqo_dir dir)
{
    struct mqo_pkt pk;
    int rc = mqo_mqtt_decode(p, n, v, dir, &pk);
    check_publish_head(p, n, v, dir, rc, &pk);
    if (rc != 0) {
        CHECK(known_error(rc));
        return v;
    }
    CHECK(pk.len == n && pk.type == (p[0] >> 4) && pk.flags == (p[0] & 15));
    CHECK(pk.hdr_len >= 2 && pk.hdr_len <= 5);

    uint8_t *b = malloc(n + 8);
    CHECK(b);
    ssize_t w = mqo_mqtt_encode(&pk, b, n + 8);
    CHECK(w == (ssize_t)n && memcmp(b, p, n) == 0);
    CHECK(mqo_mqtt_encode(&pk, b, n - 1) == -ENOSPC);
    struct mqo_pkt again;
    CHECK(mqo_mqtt_decode(b, n, v, dir, &again) == 0);
    CHECK(again.type == pk.type && again.pid == pk.pid && again.reason == pk.reason &&
          again.props.present == pk.props.present);
    free(b);

    check_props(&pk.props);
    switch (pk.type) {
    case MQO_CONNECT:
        check_props(&pk.u.connect.will_props);
        CHECK(mqo_mqtt_utf8_check(pk.u.connect.client_id.p, pk.u.connect.client_id.len) == 0);
        return pk.version;
    case MQO_PUBLISH:
        check_publish(p, n, &pk, dir);
        break;
    case MQO_SUBSCRIBE:
    case MQO_UNSUBSCRIBE: {
        uint32_t off = 0, cnt = 0;
        struct mqo_sub_entry e;
        while (mqo_mqtt_sub_next(&pk, &off, &e)) {
            CHECK(e.filter.len > 0);
            CHECK(mqo_mqtt_utf8_check(e.filter.p, e.filter.len) == 0);
            cnt++;
        }
        CHECK(cnt == pk.u.sub.count && off == pk.u.sub.list_len);
        break;
    }
    default:
        break;
    }
    return v;
}

/* Feeds s[0..n) to the framer in chunks (chunk == 0: one byte at a time; else sizes from a
 * small generator seeded with `chunk`), recording what a receiver would see. */
static void feed(const uint8_t *s, size_t n, uint32_t maxp, uint32_t chunk, struct results *rs)
{
    size_t start = 0, avail = 0;
    uint32_t x = chunk | 1;
    while (avail < n) {
        size_t step = 1;
        if (chunk) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            step = 1 + x % 97;
        }
        avail = avail + step > n ? n : avail + step;
        for (;;) {
            struct mqo_frame f;
            ssize_t r = mqo_mqtt_frame(s + start, avail - start, maxp, &f);
            if (r > 0) {
                CHECK(f.total == (uint32_t)r);
                push(rs, r);
                start += (size_t)r;
                continue;
            }
            if (r < 0) {
                push(rs, r);
                return;
            }
            break;
        }
    }
    push(rs, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct results one, inc;
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    enum mqo_dir dir = (sel & 1) ? MQO_S2C : MQO_C2S;
    static const uint8_t levels[4] = {MQO_MQTT_V31, MQO_MQTT_V311, MQO_MQTT_V5, MQO_MQTT_V5};
    uint8_t v = levels[(sel >> 1) & 3];
    uint32_t maxp = (sel & 8) ? 48u + 16u * (sel >> 4) : 0;
    const uint8_t *s = data + 1;
    size_t n = size - 1;

    (void)mqo_mqtt_utf8_check(s, n);

    /* whole stream at once */
    one.n = 0;
    size_t off = 0;
    for (;;) {
        struct mqo_frame f;
        ssize_t r = mqo_mqtt_frame(s + off, n - off, maxp, &f);
        push(&one, r);
        if (r <= 0)
            break;
        CHECK(f.total == (uint32_t)r && f.hdr_len >= 2 && f.hdr_len <= 5);
        CHECK(f.hdr_len + f.remaining == f.total && f.type == s[off] >> 4);
        CHECK(maxp == 0 || f.total <= maxp);
        v = one_packet(s + off, (size_t)r, v, dir);
        off += (size_t)r;
    }

    /* one byte at a time, then random chunks: the same framing */
    inc.n = 0;
    feed(s, n, maxp, 0, &inc);
    CHECK(inc.n == one.n && memcmp(inc.r, one.r, one.n * sizeof one.r[0]) == 0);
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < n && i < 64; i++)
        seed = (seed ^ s[i]) * 16777619u;
    inc.n = 0;
    feed(s, n, maxp, seed, &inc);
    CHECK(inc.n == one.n && memcmp(inc.r, one.r, one.n * sizeof one.r[0]) == 0);
    return 0;
}
