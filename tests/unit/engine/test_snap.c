/* Takeover of the engine's state (engine/snap.c): a random script run through the engine with
 * one or more takeovers in the middle gives every subscriber what the broker alone would, in
 * the same order per publisher: nothing the engine held (subscriptions, packet-identifier
 * maps, in-flight deliveries, pending SUBSCRIBEs, ordering holds, partial packets) was lost.
 * And the loader refuses what is not a snapshot of this version.
 *
 * MQO_SNAP_CORPUS=DIR writes the snapshots taken to DIR (fuzz/snap/corpus was made so). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void corpus_write(const struct mqo_buf *b, const char *name, int sel)
{
    const char *dir = getenv("MQO_SNAP_CORPUS");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputc(sel, f); /* the fuzz target's selector: 0 engine, 2 splice snapshot */
        fwrite(b->data, 1, b->len, f);
        fclose(f);
    }
}

/* The script of h_random_script, with a takeover every `every` steps. */
static void script(struct harness *h, unsigned seed, int nsub, int n, int every, int *takeovers)
{
    srand(seed);
    const char *topics[] = {"a", "a/b", "a/c", "b", "b/x/y"};
    const char *filters[] = {"a", "a/+", "#", "b/#", "a/b", "+/x/+"};
    int npub = 3;
    for (int i = 0; i < npub + nsub; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "c%d", i);
        h_open(h);
        h_connect(h, i, (uint8_t)(i % 2 ? MQO_MQTT_V5 : MQO_MQTT_V311), cid, i % 3 != 0, 30);
    }
    for (int i = npub; i < npub + nsub; i++)
        h_subscribe(h, i, filters[rand() % 6], (uint8_t)(rand() % 2), 0);
    for (int k = 0; k < n; k++) {
        if (every && k % every == every - 1 && h->direct != H_DIRECT) {
            struct mqo_buf b = {0};
            int rc = h_takeover(h, &b);
            if (rc)
                fail_msg("seed %u: takeover at step %d: %s", seed, k, strerror(-rc));
            char name[64];
            snprintf(name, sizeof name, "seed%u-step%d", seed, k);
            if (seed <= 3 && k < 2 * every)
                corpus_write(&b, name, h->splice ? 2 : 0);
            mqo_buf_free(&b);
            (*takeovers)++;
        }
        int p = rand() % npub;
        int what = rand() % 20;
        if (what == 0) {
            h_subscribe(h, npub + rand() % nsub, filters[rand() % 6], (uint8_t)(rand() % 2), 0);
            continue;
        }
        if (what == 1) {
            h_unsubscribe(h, npub + rand() % nsub, filters[rand() % 6]);
            continue;
        }
        char pl[32];
        snprintf(pl, sizeof pl, "p%d:%d", p, k);
        h_publish(h, p, topics[rand() % 5], pl, (uint8_t)(rand() % 3), rand() % 10 == 0);
        if (rand() % 3 == 0)
            h_run(h);
        if (rand() % 50 == 0)
            h_advance(h, 200);
    }
    h_run(h);
}

static void test_takeover_differential(void **s)
{
    int every[] = {7, 40, 150};
    for (unsigned seed = 1; seed <= 12; seed++) {
        struct harness *d = malloc(sizeof *d), *o = malloc(sizeof *o);
        int n = 0, nd = 0;
        h_init(d, NULL, H_DIRECT);
        h_init(o, NULL, H_ENGINE);
        script(d, seed, 6, 300, every[seed % 3], &nd);
        script(o, seed, 6, 300, every[seed % 3], &n);
        assert_true(n >= 2);
        for (int i = 3; i < 9; i++) {
            char why[256];
            if (!h_same_per_publisher(d, o, i, 3, why, sizeof why))
                fail_msg("seed %u (a takeover every %d steps): %s", seed, every[seed % 3], why);
        }
        assert_true(mqo_engine_stats(o->eng)->consumed > 0);
        h_free(d);
        h_free(o);
        free(d);
        free(o);
    }
}

/* In the middle of in-flight offload QoS 1 deliveries the subscriber has not acknowledged: the
 * new engine takes their acknowledgements (the broker never sees an identifier it did not
 * send), and the packet identifiers go on where they were. */
static void test_takeover_inflight(void **s)
{
    struct harness *h = malloc(sizeof *h), *d = malloc(sizeof *d);
    int dummy = 0;
    (void)dummy;
    h_init(h, NULL, H_ENGINE);
    h_init(d, NULL, H_DIRECT);
    struct harness *hs[2] = {h, d};
    for (int k = 0; k < 2; k++) {
        struct harness *x = hs[k];
        h_open(x);
        h_open(x);
        assert_true(h_connect(x, 0, MQO_MQTT_V311, "pub", 1, 30));
        assert_true(h_connect(x, 1, MQO_MQTT_V311, "sub", 1, 30));
        assert_int_equal(h_subscribe(x, 1, "t/#", 1, 0), 1);
        x->cl[1].auto_ack = 0;
        for (int i = 0; i < 5; i++) {
            char pl[16];
            snprintf(pl, sizeof pl, "p0:%d", i);
            h_publish(x, 0, "t/a", pl, 1, 0);
        }
        h_run(x);
        if (x == h) {
            assert_true(mqo_engine_stats(h->eng)->consumed >= 5);
            assert_int_equal(h_takeover(h, NULL), 0);
        }
        for (size_t i = 0; i < 5; i++)
            h_ack(x, 1, i);
        x->cl[1].auto_ack = 1;
        for (int i = 5; i < 10; i++) {
            char pl[16];
            snprintf(pl, sizeof pl, "p0:%d", i);
            h_publish(x, 0, "t/a", pl, 1, 0);
        }
        h_run(x);
        assert_int_equal(h_count_pub(x, 1, "t/a"), 10);
    }
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(h_pub(h, 1, i)->pid, h_pub(d, 1, i)->pid);
    assert_int_equal(h->cl[1].b_refused, 0);
    assert_int_equal(mqo_engine_stats(h->eng)->pubacks_absorbed, 10);
    h_free(h);
    h_free(d);
    free(h);
    free(d);
}

/* Not a snapshot, another version, one cut short: refused, and the engine can be freed. */
static void test_load_refuses(void **s)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, NULL, H_ENGINE);
    h_open(h);
    assert_true(h_connect(h, 0, MQO_MQTT_V5, "c0", 1, 30));
    assert_int_equal(h_subscribe(h, 0, "a/#", 1, 0), 1);
    struct mqo_buf b = {0};
    assert_int_equal(mqo_engine_save(h->eng, &b), 0);
    struct mqo_engine_cfg cfg = h->cfg;
    struct mqo_engine *e = mqo_engine_new(&cfg);
    assert_int_equal(mqo_engine_load(e, (const uint8_t *)"nope", 4), -EINVAL);
    mqo_engine_free(e);
    b.data[8]++; /* the version */
    e = mqo_engine_new(&cfg);
    assert_int_equal(mqo_engine_load(e, b.data, b.len), -EPROTO);
    mqo_engine_free(e);
    b.data[8]--;
    for (size_t cut = 9; cut < b.len; cut += 7) {
        e = mqo_engine_new(&cfg);
        assert_int_equal(mqo_engine_load(e, b.data, cut), -EINVAL);
        mqo_engine_free(e);
    }
    e = mqo_engine_new(&cfg);
    assert_int_equal(mqo_engine_load(e, b.data, b.len), 0);
    assert_int_equal(mqo_engine_conn_count(e), 1);
    assert_int_equal(mqo_engine_stats(e)->subscriptions, 1);
    assert_int_equal(mqo_engine_load(e, b.data, b.len), -EBUSY);
    mqo_engine_free(e);
    mqo_buf_free(&b);
    h_free(h);
    free(h);
}

/* Monitor mode: the same through the splice over the TCP wire model, with takeovers of the
 * splice's state (sequence spaces, held output, timers) in the middle. */
static void test_splice_takeover_differential(void **s)
{
    for (unsigned seed = 1; seed <= 4; seed++) {
        struct harness *d = malloc(sizeof *d), *o = malloc(sizeof *o);
        int n = 0, nd = 0;
        h_init(d, NULL, H_DIRECT);
        h_init(o, NULL, H_SPLICE);
        script(o, seed, 4, 120, 30, &n);
        script(d, seed, 4, 120, 30, &nd);
        assert_true(n >= 2);
        for (int i = 3; i < 7; i++) {
            char why[256];
            if (!h_same_per_publisher(d, o, i, 3, why, sizeof why))
                fail_msg("seed %u: %s", seed, why);
        }
        char why[256];
        if (!h_tcp_clean(o, why, sizeof why))
            fail_msg("seed %u: %s", seed, why);
        h_free(d);
        h_free(o);
        free(d);
        free(o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takeover_differential),
        cmocka_unit_test(test_takeover_inflight),
        cmocka_unit_test(test_load_refuses),
        cmocka_unit_test(test_splice_takeover_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
