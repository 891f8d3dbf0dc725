/* tcp/splice with input segments larger than the receiver's MSS and the link MTU: what monitor
 * mode hands it after reassembling IPv4 fragments. The splice reassembles its input stream and
 * segments its output to the receiver's MSS itself; the broker's TCP endpoint counts every
 * segment longer than its MSS as a violation, so done() checks none reached it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mqtt/mqtt.h"

#define MS 1000000ull

static const char *const broker_only[] = {"bo/#"};

/* Largest frame the client sent toward the splice, and the splice sent toward the broker. */
struct sizes {
    size_t from_client, to_broker;
};

static int watch(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *frame,
                 size_t len)
{
    struct sizes *s = arg;
    if (to_splice && ep->side == MQO_SIDE_CLIENT && len > s->from_client)
        s->from_client = len;
    if (!to_splice && ep->side == MQO_SIDE_BROKER && len > s->to_broker)
        s->to_broker = len;
    return 0;
}

/* Publisher 0, subscribers 1 and 2 on big/# (offloaded) and bo/# (broker-only: the broker's
 * path, so the publisher's bytes are forwarded to the broker). */
static struct harness *setup(struct sizes *sz)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN,
                                 .broker_only = broker_only, .n_broker_only = 1};
    struct harness *h = malloc(sizeof *h);
    h_init(h, &cfg, H_SPLICE);
    assert_non_null(h->splice);
    h->net.wire.drop = watch;
    h->net.wire.drop_arg = sz;
    assert_int_equal(h_open(h), 0);
    assert_true(h_connect(h, 0, MQO_MQTT_V311, "pub", 1, 60));
    for (int i = 1; i <= 2; i++) {
        char cid[16];
        snprintf(cid, sizeof cid, "sub%d", i);
        assert_int_equal(h_open(h), i);
        assert_true(h_connect(h, i, MQO_MQTT_V311, cid, 1, 60));
        assert_int_equal(h_subscribe(h, i, "big/#", 1, 0), 1);
        assert_int_equal(h_subscribe(h, i, "bo/#", 1, 0), 1);
    }
    return h;
}

static void done(struct harness *h)
{
    for (int i = 0; i <= 2; i++) {
        assert_int_equal(h->cl[i].cep->violations, 0);
        assert_int_equal(h->cl[i].bep->violations, 0);
        assert_false(h->cl[i].closed);
    }
    h_free(h);
    free(h);
}

static const struct h_rx *find_pub(const struct harness *h, int i, const char *topic)
{
    for (size_t j = 0; j < h->cl[i].n_rx; j++)
        if (h->cl[i].rx[j].type == MQO_PUBLISH && !strcmp(h->cl[i].rx[j].topic, topic))
            return &h->cl[i].rx[j];
    return NULL;
}

static void check_payload(const struct h_rx *rx, const char *payload)
{
    assert_non_null(rx);
    assert_int_equal(rx->plen, strlen(payload));
    size_t n = rx->plen < sizeof rx->payload ? rx->plen : sizeof rx->payload;
    assert_memory_equal(rx->payload, payload, n);
}

/* The client sends segments of up to 9000 bytes (told a larger MSS than the broker's 1460, as
 * if its datagrams were fragmented on the way and reassembled before the splice). */
static void test_segments_above_mss(void **st)
{
    struct sizes sz = {0};
    struct harness *h = setup(&sz);
    h->cl[0].cep->peer_mss = 9000;
    char *pl = malloc(8001);
    /* offloaded ones first: a broker-path message holds the publisher's later ones on the
     * broker's path until its subscribers have it (ordering) */
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < 8000; i++)
            pl[i] = (char)('a' + (i * 7 + k % 10) % 26);
        pl[8000] = 0;
        h_publish(h, 0, k < 10 ? "big/x" : "bo/x", pl, 1, 0);
    }
    h_run(h);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(h_count_pub(h, i, "big/x"), 10);
        assert_int_equal(h_count_pub(h, i, "bo/x"), 10);
    }
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < 8000; i++)
            pl[i] = (char)('a' + (i * 7 + k) % 26);
        for (int i = 1; i <= 2; i++) {
            size_t seen = 0;
            for (size_t j = 0; j < h->cl[i].n_rx; j++) {
                const struct h_rx *rx = &h->cl[i].rx[j];
                if (rx->type == MQO_PUBLISH && !strcmp(rx->topic, "big/x") && seen++ == (size_t)k)
                    check_payload(rx, pl);
            }
        }
    }
    assert_int_equal(h->broker_publish_in, 10); /* the broker-only ones */
    assert_int_equal(h_stats(h)->consumed, 10);
    assert_true(sz.from_client > 8000);
    assert_true(sz.to_broker <= 14 + 20 + 32 + 1448);
    free(pl);
    done(h);
}

/* One hand-made 38 kB segment (a reassembled datagram near the IPv4 limit): an offloaded
 * PUBLISH and a broker-only one, back to back. */
static void test_one_huge_segment(void **st)
{
    struct sizes sz = {0};
    struct harness *h = setup(&sz);
    struct ts_ep *e = h->cl[0].cep;
    size_t plen = 19000;
    char *pl = malloc(plen + 1);
    for (size_t i = 0; i < plen; i++)
        pl[i] = (char)('A' + i % 23);
    pl[plen] = 0;
    uint8_t *b = malloc(2 * plen + 200);
    size_t n = hb_publish(b, MQO_MQTT_V311, "big/y", pl, plen, 0, 0, 0, 0);
    n += hb_publish(b + n, MQO_MQTT_V311, "bo/y", pl, plen, 0, 0, 0, 0);
    /* what ts_write would do, as one segment */
    uint8_t *f = malloc(n + 100);
    mqo_buf_append(&e->app_out, b, n);
    e->app_out_end += n;
    uint32_t seq = e->isn + 1 + (uint32_t)e->snd_nxt;
    uint32_t ack = e->peer_isn + 1 + (uint32_t)e->rcv_nxt;
    uint32_t tsval = (uint32_t)(h->net.now / MS) + 1000u; /* the client's clock (tcpsim) */
    size_t flen = ts_build(e, f, seq, ack, 0x18, b, n, e->ts_ok, tsval);
    assert_true(flen > 38000);
    e->snd_nxt += n;
    e->snd_max = e->snd_nxt;
    e->rtx_at = h->net.now + 200 * MS;
    ts_inject(&h->net, e, f, flen);
    h_run(h);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(h_count_pub(h, i, "bo/y"), 1);
        assert_int_equal(h_count_pub(h, i, "big/y"), 1);
        check_payload(find_pub(h, i, "bo/y"), pl);
        check_payload(find_pub(h, i, "big/y"), pl);
    }
    assert_int_equal(h->broker_publish_in, 1);
    assert_int_equal(h_stats(h)->consumed, 1);
    assert_true(sz.from_client >= flen);
    assert_true(sz.to_broker <= 14 + 20 + 32 + 1448);
    free(f);
    free(b);
    free(pl);
    done(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments_above_mss),
        cmocka_unit_test(test_one_huge_segment),
    };
    return cmocka_run_group_tests_name("tcp/splice large segments", tests, NULL, NULL);
}
