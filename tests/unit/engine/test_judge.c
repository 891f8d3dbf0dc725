/* The broker judges, through the monitor-mode splice: a packet the engine will not judge goes
 * to the broker, which closes the connection its own way (no reset from mqoff); packets larger
 * than max_buffer stream through a lossy wire; a client's Receive Maximum holds for the
 * broker's deliveries and the offload's together. */
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

static struct harness *mk(const struct mqo_engine_cfg *cfg, uint32_t loss, unsigned seed)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, cfg, H_SPLICE);
    assert_non_null(h->splice);
    for (int k = 0; k < 2; k++)
        h->net.wire.loss_pct[k] = loss;
    h->net.wire.rng = seed * 7919 + 1;
    return h;
}

static void done(struct harness *h)
{
    char why[160];
    if (!h_tcp_clean(h, why, sizeof why))
        fail_msg("%s", why);
    h_free(h);
    free(h);
}

/* publisher 0 + n subscribers on filter, all v */
#define setup_fanout(h, n, v, filter, sqos)                                                       \
    do {                                                                                          \
        char why_[128];                                                                           \
        if (!h_setup_fanout(h, n, v, filter, sqos, why_, sizeof why_))                           \
            fail_msg("setup_fanout: %s", why_);                                                   \
    } while (0)

/* A malformed PUBLISH: the broker closes that client with a FIN (v5: after DISCONNECT 0x81),
 * mqoff resets nothing, and the others go on being served. */
static void test_malformed_closed_by_broker_not_reset(void **s)
{
    for (int v5 = 0; v5 < 2; v5++) {
        uint8_t v = v5 ? MQO_MQTT_V5 : MQO_MQTT_V311;
        struct harness *h = mk(NULL, 0, 1);
        setup_fanout(h, 2, MQO_MQTT_V311, "m", 0);
        int bad = h_open(h);
        h->cl[bad].version = v;
        assert_true(h_connect(h, bad, v, "bad", 1, 60));
        const uint8_t junk[] = {0x30, 0x05, 0x00, 0x09, 'a', 'b', 'c'};
        h_send(h, bad, junk, sizeof junk);
        h_run(h);
        assert_int_equal(h->cl[bad].b_refused, 1);
        assert_true(h->cl[bad].cep->fin_rcvd);
        assert_false(h->cl[bad].cep->rst_rcvd);
        assert_int_equal(mqo_splice_stats(h->splice)->resets, 0);
        assert_int_equal(h_count_type(h, bad, MQO_DISCONNECT), v5 ? 1 : 0);
        h_publish(h, 0, "m", "still", 0, 0);
        h_run(h);
        assert_int_equal(h_count_pub(h, 1, "m"), 1);
        assert_int_equal(h_count_pub(h, 2, "m"), 1);
        assert_int_equal(h_stats(h)->consumed, 1);
        done(h);
    }
}

/* Large packets over a lossy wire with a small max_buffer: streamed through, intact, in
 * order with the small ones around them, which are still offloaded when nothing streams. */
static void test_streaming_through_splice(void **s)
{
    for (unsigned seed = 1; seed <= 4; seed++) {
        struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN, .max_buffer = 300};
        struct harness *h = mk(&cfg, 3, seed);
        setup_fanout(h, 3, seed & 1 ? MQO_MQTT_V5 : MQO_MQTT_V311, "big/#", 1);
        static uint8_t payload[20000];
        for (size_t i = 0; i < sizeof payload; i++)
            payload[i] = (uint8_t)(i * 13 + seed);
        static uint8_t pkt[21000];
        uint8_t v = seed & 1 ? MQO_MQTT_V5 : MQO_MQTT_V311;
        for (int k = 0; k < 6; k++) {
            size_t plen = k % 2 ? 40 : sizeof payload - (size_t)k * 1000;
            size_t n = hb_publish(pkt, v, "big/a", payload, plen, (uint8_t)(k % 3 ? 1 : 0), 0,
                                  (uint16_t)(k + 1), 0);
            h_send(h, 0, pkt, n);
        }
        h_run(h);
        for (int i = 1; i <= 3; i++) {
            assert_int_equal(h_count_pub(h, i, "big/a"), 6);
            for (int k = 0; k < 6; k++) {
                size_t plen = k % 2 ? 40 : sizeof payload - (size_t)k * 1000;
                const struct h_rx *r = h_pub(h, i, (size_t)k);
                assert_int_equal(r->plen, plen);
                assert_memory_equal(r->payload, payload, plen < 512 ? plen : 512);
            }
        }
        assert_true(h_stats(h)->streamed >= 3);
        assert_int_equal(mqo_splice_stats(h->splice)->resets, 0);
        done(h);
    }
}

/* Receive Maximum 3 through the splice: the client never has more than 3 unacknowledged,
 * whoever sent them, and gets every message in order. */
static void test_receive_maximum_through_splice(void **s)
{
    struct harness *h = mk(NULL, 0, 5);
    int p = h_open(h);
    h->cl[p].version = MQO_MQTT_V5;
    assert_true(h_connect(h, p, MQO_MQTT_V5, "p", 1, 60));
    int sb = h_open(h);
    uint8_t b[256];
    h->cl[sb].version = MQO_MQTT_V5;
    h->cl[sb].c_recv_max = 3;
    h_send(h, sb, b, hb_connect(b, MQO_MQTT_V5, "rm", 1, 60, NULL, 0, 3));
    h_run(h);
    assert_int_equal(h->cl[sb].b_recv_max, 3);
    h->cl[sb].auto_ack = 0;
    assert_int_equal(h_subscribe(h, sb, "r", 1, 0), 1);
    for (int k = 0; k < 10; k++) {
        char pl[16];
        snprintf(pl, sizeof pl, "m%d", k);
        h_publish(h, p, "r", pl, 1, 0);
    }
    h_run(h);
    size_t acked = 0;
    for (int round = 0; round < 20 && acked < 10; round++) {
        size_t got = h_count_pub(h, sb, "r");
        assert_true(got - acked <= 3);
        if (got == acked)
            break;
        h_ack(h, sb, acked++);
        h_run(h);
    }
    assert_int_equal(acked, 10);
    for (int k = 0; k < 10; k++) {
        char pl[16];
        snprintf(pl, sizeof pl, "m%d", k);
        assert_memory_equal(h_pub(h, sb, (size_t)k)->payload, pl, strlen(pl));
    }
    assert_int_equal(h->cl[sb].c_recv_violations, 0);
    assert_true(h_stats(h)->consumed >= 1);
    done(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_closed_by_broker_not_reset),
        cmocka_unit_test(test_streaming_through_splice),
        cmocka_unit_test(test_receive_maximum_through_splice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
