/* tcp/splice (monitor mode): a direction's state for traffic in transit cannot be allocated.
 * The connection whose allocation failed is reset at both ends (its client sees it at once and
 * reconnects), never left with a delivery or an acknowledgement silently missing; the other
 * connections go on. glibc's allocator is replaced for the test (not under ASan, whose
 * allocator it would bypass). */
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

#include "../asan.h"

#if defined(__GLIBC__) && !defined(MQO_TEST_ASAN)
#define HAVE_FAILCALLOC 1
extern void *__libc_calloc(size_t n, size_t m);

/* calloc(1, fail_size) fails fail_budget times; sizes of calloc(1, n) are counted while
 * counting is on (to find the transit state's size: the one allocated once per direction) */
static size_t fail_size;
static int fail_budget, failed;
static int counting;
static size_t seen_size[64];
static unsigned seen_n[64];

void *calloc(size_t n, size_t m)
{
    if (n == 1 && counting) {
        size_t i = 0;
        while (i < 64 && seen_n[i] && seen_size[i] != m)
            i++;
        if (i < 64) {
            seen_size[i] = m;
            seen_n[i]++;
        }
    }
    if (n == 1 && m == fail_size && fail_budget > 0) {
        fail_budget--;
        failed++;
        return NULL;
    }
    return __libc_calloc(n, m);
}
#endif

#define NSUB 6

static void test_transit_state_enomem(void **s)
{
#ifndef HAVE_FAILCALLOC
    skip();
#else
    struct harness *h = malloc(sizeof *h);
    h_init(h, NULL, H_SPLICE);
    assert_non_null(h->splice);
    char why[128];
    if (!h_setup_fanout(h, NSUB, MQO_MQTT_V311, "n/#", 0, why, sizeof why))
        fail_msg("setup_fanout: %s", why);
    h_run(h);
    h_advance(h, 2000);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->flight_states, 0);
    /* a delivery to idle subscribers: the size allocated once for each of them */
    memset(seen_n, 0, sizeof seen_n);
    counting = 1;
    h_publish(h, 0, "n/x", "one", 0, 0);
    h_run(h);
    counting = 0;
    for (int i = 1; i <= NSUB; i++)
        assert_int_equal(h_count_pub(h, i, "n/x"), 1);
    for (int i = 0; i < 64 && seen_n[i]; i++)
        if (seen_n[i] >= NSUB && seen_n[i] <= NSUB + 2)
            fail_size = seen_size[i];
    assert_true(fail_size > 0);
    h_advance(h, 2000);
    assert_int_equal(st->flight_states, 0);
    uint64_t resets0 = st->resets;
    /* the next delivery: two of those allocations fail */
    fail_budget = 2;
    h_publish(h, 0, "n/x", "two", 0, 0);
    h_run(h);
    fail_budget = 0;
    assert_int_equal(failed, 2);
    h_advance(h, 2000);
    assert_int_equal(st->resets - resets0, 2);
    int reset = 0;
    for (int i = 0; i <= NSUB; i++) {
        struct h_client *cl = &h->cl[i];
        if (cl->cep->rst_rcvd || cl->bep->rst_rcvd) {
            /* both ends were told */
            assert_true(cl->cep->rst_rcvd && cl->bep->rst_rcvd);
            reset++;
        } else if (i > 0) {
            assert_int_equal(h_count_pub(h, i, "n/x"), 2); /* the others got it */
        }
    }
    assert_int_equal(reset, 2); /* which two: the order of the allocations decides */
    assert_int_equal(st->conns_tracked, NSUB + 1 - 2); /* the others live on */
    assert_int_equal(st->flight_states, 0);
    h_free(h);
    free(h);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transit_state_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
