/* engine/: the broker's view (mqo_engine_bv_*), as the broker plugin reports it, against the
 * reference broker of the harness. The tests play the plugin: they report what the harness's
 * broker holds, the way src/plugin does for Mosquitto. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mqtt/mqtt.h"

#define TOKEN "0123456789abcdef"

static const struct mqo_engine_stats *st(struct harness *h) { return mqo_engine_stats(h->eng); }

/* Without exclusive: only the view lets the engine offload. */
static struct harness *mk(void)
{
    struct mqo_engine_cfg cfg = {.acl_mode = MQO_ACL_OPEN, .broker_view = 1};
    struct harness *h = malloc(sizeof *h);
    h_init(h, &cfg, H_ENGINE);
    assert_non_null(h->eng);
    return h;
}

static void done(struct harness *h)
{
    h_free(h);
    free(h);
}

static int client(struct harness *h, const char *cid, int clean)
{
    int i = h_open(h);
    assert_true(h_connect(h, i, MQO_MQTT_V311, cid, clean, 60));
    return i;
}

static int bv(struct harness *h, const char *op, const char *cid, const char *f, int x)
{
    const uint8_t *c = (const uint8_t *)cid;
    size_t cl = strlen(cid);
    if (!strcmp(op, "session"))
        return mqo_engine_bv_session(h->eng, c, cl, (uint64_t)x, x != 0, 0);
    if (!strcmp(op, "offline"))
        return mqo_engine_bv_session(h->eng, c, cl, (uint64_t)x, 0, 0);
    if (!strcmp(op, "sub"))
        return mqo_engine_bv_sub(h->eng, c, cl, (const uint8_t *)f, strlen(f), (uint8_t)x);
    if (!strcmp(op, "unsub"))
        return mqo_engine_bv_unsub(h->eng, c, cl, (const uint8_t *)f, strlen(f));
    fail_msg("op %s", op);
    return -1;
}

static uint64_t reason(struct harness *h, enum mqo_pt_reason r) { return st(h)->pt_reason[r]; }

/* A subscriber the engine does not carry (the plugin reports it) makes a matching PUBLISH go
 * to the broker; other topics are offloaded; without the view nothing is (no exclusive). */
static void test_foreign_subscriber(void **s)
{
    struct harness *h = mk();
    int p = client(h, "pub", 1), sub = client(h, "sub", 1);
    h_subscribe(h, sub, "t/#", 0, 0);
    h_subscribe(h, sub, "u/#", 0, 0);
    h_publish(h, p, "u/x", "p0:0", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 0);
    assert_int_equal(reason(h, MQO_PT_NOT_EXCLUSIVE), 1);

    assert_int_equal(mqo_engine_bv_begin(h->eng, TOKEN), 0);
    assert_int_equal(bv(h, "session", "other", NULL, 100), 0);
    assert_int_equal(bv(h, "sub", "other", "t/+", 1), 0);
    h_publish(h, p, "u/x", "p0:1", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 0); /* syncing: as without the view */
    mqo_engine_bv_synced(h->eng);
    assert_int_equal(st(h)->bv_table, 1);
    h_run(h);
    /* the markers went to the broker and their UNSUBACKs never reached the clients */
    assert_int_equal(st(h)->bv_markers, 2);
    assert_int_equal(h_count_type(h, sub, MQO_UNSUBACK), 0);
    assert_int_equal(h_count_type(h, p, MQO_UNSUBACK), 0);

    h_publish(h, p, "t/x", "p0:2", 0, 0); /* "other" subscribes: the broker delivers */
    h_run(h);
    h_publish(h, p, "u/x", "p0:3", 0, 0);
    h_run(h);
    h_advance(h, 10); /* the ordering barrier after a message the engine did not see delivered */
    h_publish(h, p, "u/x", "p0:4", 0, 0);
    h_run(h);
    assert_int_equal(reason(h, MQO_PT_FOREIGN), 1);
    assert_true(st(h)->consumed >= 1);
    assert_int_equal(h_count_pub(h, sub, "t/x"), 1);
    assert_int_equal(h_count_pub(h, sub, "u/x"), 4);

    /* it unsubscribes: t/x is offloaded too */
    assert_int_equal(bv(h, "unsub", "other", "t/+", 0), 0);
    assert_int_equal(st(h)->bv_table, 0);
    uint64_t c0 = st(h)->consumed;
    h_publish(h, p, "t/x", "p0:5", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, c0 + 1);

    /* the plugin is gone: everything as without it */
    assert_int_equal(bv(h, "sub", "other", "t/+", 1), 0);
    mqo_engine_bv_lost(h->eng);
    assert_int_equal(st(h)->bv_state, 0);
    assert_int_equal(st(h)->bv_table, 0);
    h_publish(h, p, "t/x", "p0:6", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, c0 + 1);
    assert_int_equal(reason(h, MQO_PT_NOT_EXCLUSIVE), 3);
    assert_int_equal(h_count_pub(h, sub, "t/x"), 3);
    done(h);
}

/* An offline session the broker reports holds its filters: matching messages go to the
 * broker, which queues them (held). */
static void test_offline_session(void **s)
{
    struct harness *h = mk();
    int p = client(h, "pub", 1);
    mqo_engine_bv_begin(h->eng, TOKEN);
    bv(h, "offline", "gone", NULL, 3);
    bv(h, "sub", "gone", "q/#", 1);
    mqo_engine_bv_synced(h->eng);
    h_publish(h, p, "q/1", "p0:0", 1, 0);
    h_run(h);
    assert_int_equal(reason(h, MQO_PT_HELD), 1);
    assert_int_equal(st(h)->consumed, 0);
    done(h);
}

/* The engine's own client, reported by the plugin: until the bind marker comes back its
 * session is the broker's (passthrough); once bound, the engine delivers. */
static void test_binding(void **s)
{
    struct harness *h = mk();
    mqo_engine_bv_begin(h->eng, TOKEN);
    mqo_engine_bv_synced(h->eng);
    int p = client(h, "pub", 1), sub = client(h, "sub", 1);
    h_subscribe(h, sub, "b/#", 1, 0);
    assert_int_equal(st(h)->bv_markers, 2);
    bv(h, "session", "sub", NULL, 7);
    bv(h, "sub", "sub", "b/#", 1);
    h_publish(h, p, "b/x", "p0:0", 1, 0);
    h_run(h);
    assert_int_equal(reason(h, MQO_PT_FOREIGN), 1);

    uint64_t id = mqo_conn_id(h->cl[sub].conn);
    const uint8_t *cid = (const uint8_t *)"sub";
    assert_int_equal(mqo_engine_bv_bind(h->eng, cid, 3, 7, "fedcba9876543210", id), -ESRCH);
    assert_int_equal(mqo_engine_bv_bind(h->eng, (const uint8_t *)"bus", 3, 7, TOKEN, id), -ESRCH);
    assert_int_equal(mqo_engine_bv_bind(h->eng, cid, 3, 7, TOKEN, id), 0);
    assert_int_equal(st(h)->bv_bound, 1);
    assert_int_equal(st(h)->bv_table, 0);
    h_advance(h, 10);
    h_publish(h, p, "b/x", "p0:1", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, sub, "b/x"), 2);

    /* the connection closes: its session's report enters the table until the plugin says
     * the session ended */
    h_close(h, sub);
    h_run(h);
    assert_int_equal(st(h)->bv_bound, 0);
    assert_int_equal(st(h)->bv_table, 1);
    mqo_engine_bv_end(h->eng, cid, 3);
    assert_int_equal(st(h)->bv_table, 0);
    assert_int_equal(st(h)->bv_sessions, 0);
    done(h);
}

/* A resumed MQTT 3.1.1 session the engine never saw (blind): the view holds its filters and
 * the engine takes them over at binding, then delivers to it itself. */
static void test_blind_import(void **s)
{
    struct harness *h = mk();
    /* the broker holds "ps" with b/# from before the offload */
    struct h_bsess *bs = &h->sess[H_MAX_CLIENTS - 1];
    bs->used = 1;
    snprintf(bs->cid, sizeof bs->cid, "ps");
    bs->persistent = 1;
    bs->n_subs = 1;
    snprintf(bs->subs[0].filter, sizeof bs->subs[0].filter, "b/#");
    bs->subs[0].opts = 1;
    mqo_engine_bv_begin(h->eng, TOKEN);
    bv(h, "offline", "ps", NULL, 1);
    bv(h, "sub", "ps", "b/#", 1);
    mqo_engine_bv_synced(h->eng);

    int p = client(h, "pub", 1), ps = client(h, "ps", 0);
    assert_int_equal(st(h)->blind_sessions, 1);
    bv(h, "session", "ps", NULL, 9);
    h_publish(h, p, "b/x", "p0:0", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 0); /* its filters are still the broker's */
    assert_int_equal(h_count_pub(h, ps, "b/x"), 1);

    uint64_t id = mqo_conn_id(h->cl[ps].conn);
    assert_int_equal(mqo_engine_bv_bind(h->eng, (const uint8_t *)"ps", 2, 9, TOKEN, id), 0);
    assert_int_equal(st(h)->blind_sessions, 0);
    assert_int_equal(st(h)->bv_imported, 1);
    /* the first goes to the broker with an ordering barrier (the one before went to a
     * subscriber the engine did not carry then); then the engine delivers */
    h_publish(h, p, "b/x", "p0:1", 0, 0);
    h_run(h);
    assert_int_equal(reason(h, MQO_PT_ORDER), 1);
    h_publish(h, p, "b/x", "p0:2", 0, 0);
    h_run(h);
    if (st(h)->consumed != 1)
        fail_msg("passed through: %s", mqo_pt_reason_name(mqo_conn_last_reason(h->cl[p].conn)));
    assert_int_equal(h_count_pub(h, ps, "b/x"), 3);
    done(h);
}

/* Invalid reports and reports before begin change nothing. */
static void test_reports_checked(void **s)
{
    struct harness *h = mk();
    assert_int_equal(mqo_engine_bv_begin(h->eng, "Not-A-Token"), -EINVAL);
    assert_int_equal(bv(h, "sub", "x", "a/#", 0), 0); /* no view: ignored */
    assert_int_equal(st(h)->bv_subscriptions, 0);
    mqo_engine_bv_begin(h->eng, TOKEN);
    assert_int_equal(bv(h, "sub", "x", "a/#", 3), -EINVAL);
    assert_int_equal(mqo_engine_bv_sub(h->eng, (const uint8_t *)"x", 1, (const uint8_t *)"", 0, 0),
                     -EINVAL);
    assert_int_equal(bv(h, "sub", "x", "a/#/b", 0), 0); /* kept, never matches */
    mqo_engine_bv_synced(h->eng);
    assert_int_equal(st(h)->bv_subscriptions, 1);
    assert_int_equal(st(h)->bv_table, 0);
    done(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_subscriber), cmocka_unit_test(test_offline_session),
        cmocka_unit_test(test_binding),            cmocka_unit_test(test_blind_import),
        cmocka_unit_test(test_reports_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
