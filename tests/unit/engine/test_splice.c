/* tcp/splice (monitor mode) end to end in memory: TCP endpoints <-> wire model <-> splice
 * (with the engine inside) <-> wire <-> TCP endpoints <-> reference broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "harness.h"
#include "mqtt/mqtt.h"

static struct harness *mk(const struct mqo_engine_cfg *cfg)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, cfg, H_SPLICE);
    assert_non_null(h->splice);
    return h;
}

/* Segments a correct peer never sends; PAWS drops only count on a wire that does not reorder
 * (a reordered older segment is dropped by PAWS in any TCP). */
static void no_violations(struct harness *h)
{
    int reorders = h->net.wire.reorder_pct[0] || h->net.wire.reorder_pct[1] ||
                   h->net.wire.dup_pct[0] || h->net.wire.dup_pct[1];
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (!cl->used || !cl->cep)
            continue;
        if (cl->cep->violations || cl->bep->violations ||
            (!reorders && (cl->cep->paws_drops || cl->bep->paws_drops)))
            fail_msg("client %d: violations %llu/%llu, PAWS drops %llu/%llu", i,
                     (unsigned long long)cl->cep->violations,
                     (unsigned long long)cl->bep->violations,
                     (unsigned long long)cl->cep->paws_drops,
                     (unsigned long long)cl->bep->paws_drops);
    }
}

static void done(struct harness *h)
{
    no_violations(h);
    h_free(h);
    free(h);
}

static void setup_fanout(struct harness *h, int n, uint8_t v, const char *filter, uint8_t sqos)
{
    int p = h_open(h);
    assert_true(h_connect(h, p, v, "pub", 1, 60));
    for (int i = 1; i <= n; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "sub%d", i);
        assert_int_equal(h_open(h), i);
        assert_true(h_connect(h, i, v, cid, 1, 60));
        assert_int_equal(h_subscribe(h, i, filter, sqos, 0), sqos);
    }
}

static void test_handshake_and_connect(void **s)
{
    struct harness *h = mk(NULL);
    int c = h_open(h);
    assert_int_equal(h->cl[c].cep->state, 3);
    assert_int_equal(h->cl[c].bep->state, 3);
    assert_true(h_connect(h, c, MQO_MQTT_V311, "x", 1, 60));
    assert_int_equal(mqo_splice_stats(h->splice)->conns_tracked, 1);
    done(h);
}

static void test_fanout_qos0_qos1(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 10, MQO_MQTT_V311, "f/#", 1);
    for (int k = 0; k < 20; k++) {
        char pl[16];
        snprintf(pl, sizeof pl, "m%d", k);
        h_publish(h, 0, "f/x", pl, (uint8_t)(k & 1), 0);
    }
    h_run(h);
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(h_count_pub(h, i, "f/x"), 20);
        for (int k = 0; k < 20; k++) {
            char pl[16];
            snprintf(pl, sizeof pl, "m%d", k);
            assert_memory_equal(h_pub(h, i, (size_t)k)->payload, pl, strlen(pl));
        }
    }
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(h_stats(h)->consumed, 20);
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 10);
    done(h);
}

/* Same random script straight to the broker and through the splice over an impaired wire. */
static void run_script(struct harness *h, unsigned seed, int nsub)
{
    srand(seed);
    const char *topics[] = {"a", "a/b", "a/c", "b", "b/x/y"};
    const char *filters[] = {"a", "a/+", "#", "b/#", "a/b", "+/x/+"};
    int npub = 3;
    for (int i = 0; i < npub + nsub; i++) {
        char cid[16];
        snprintf(cid, sizeof cid, "c%d", i);
        h_open(h);
        h_connect(h, i, (uint8_t)(i % 2 ? MQO_MQTT_V5 : MQO_MQTT_V311), cid, 1, 30);
    }
    for (int i = npub; i < npub + nsub; i++)
        h_subscribe(h, i, filters[rand() % 6], (uint8_t)(rand() % 2), 0);
    for (int k = 0; k < 200; k++) {
        int p = rand() % npub;
        char pl[32];
        snprintf(pl, sizeof pl, "p%d:%d", p, k);
        h_publish(h, p, topics[rand() % 5], pl, (uint8_t)(rand() % 3), rand() % 10 == 0);
        if (rand() % 3 == 0)
            h_run(h);
    }
    h_run(h);
}

static void compare(struct harness *d, struct harness *o, int from, int to)
{
    for (int i = from; i < to; i++) {
        assert_int_equal(h_count_pub(d, i, NULL), h_count_pub(o, i, NULL));
        for (int p = 0; p < 3; p++) {
            char pre[8];
            snprintf(pre, sizeof pre, "p%d:", p);
            size_t kd = 0, ko = 0;
            for (;;) {
                const struct h_rx *rd, *ro;
                while ((rd = h_pub(d, i, kd)) && memcmp(rd->payload, pre, strlen(pre)))
                    kd++;
                while ((ro = h_pub(o, i, ko)) && memcmp(ro->payload, pre, strlen(pre)))
                    ko++;
                if (!rd || !ro) {
                    assert_true(!rd && !ro);
                    break;
                }
                assert_int_equal(rd->plen, ro->plen);
                assert_memory_equal(rd->payload, ro->payload, rd->plen);
                kd++;
                ko++;
            }
        }
    }
}

static void differential(uint32_t loss, uint32_t dup, uint32_t reorder, unsigned seeds)
{
    for (unsigned seed = 1; seed <= seeds; seed++) {
        struct harness *d = malloc(sizeof *d), *o = mk(NULL);
        h_init(d, NULL, H_DIRECT);
        for (int k = 0; k < 2; k++) {
            o->net.wire.loss_pct[k] = loss;
            o->net.wire.dup_pct[k] = dup;
            o->net.wire.reorder_pct[k] = reorder;
        }
        o->net.wire.rng = seed * 7919;
        run_script(d, seed, 6);
        run_script(o, seed, 6);
        compare(d, o, 3, 9);
        assert_true(h_stats(o)->consumed > 0);
        for (int i = 0; i < 9; i++)
            assert_false(o->cl[i].closed);
        h_free(d);
        free(d);
        done(o);
    }
}

static void test_differential_clean(void **s) { differential(0, 0, 0, 5); }
static void test_differential_impaired(void **s) { differential(3, 2, 3, 5); }

int main(void)
{
    mqo_log_set_level(MQO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_connect),
        cmocka_unit_test(test_fanout_qos0_qos1),
        cmocka_unit_test(test_differential_clean),
        cmocka_unit_test(test_differential_impaired),
    };
    return cmocka_run_group_tests_name("splice", tests, NULL, NULL);
}
