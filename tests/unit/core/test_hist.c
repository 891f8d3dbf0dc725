/* core/hist: log-linear latency histogram. Percentiles are checked against the exact order
 * statistics of the recorded values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/hist.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_rand(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact value at percentile p, with the rank rule the histogram documents. */
static uint64_t exact_pct(const uint64_t *sorted, size_t n, double p)
{
    if (p <= 0)
        return sorted[0];
    if (p >= 100)
        return sorted[n - 1];
    double want = p * (double)n / 100.0;
    size_t rank = (size_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void check_pcts(const struct mqo_hist *h, uint64_t *v, size_t n)
{
    static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    qsort(v, n, sizeof *v, cmp_u64);
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t e = exact_pct(v, n, ps[i]);
        uint64_t g = mqo_hist_percentile(h, ps[i]);
        uint64_t d = g > e ? g - e : e - g;
        /* documented bound: half a bucket, a bucket being <= 1/128 of its values */
        if ((double)d > (double)e / 256.0 + 0.5) {
            print_error("p%.2f: got %llu exact %llu\n", ps[i], (unsigned long long)g,
                        (unsigned long long)e);
            fail();
        }
    }
}

static void test_index_layout(void **st)
{
    /* buckets are contiguous, cover 0..MAX, widths within 1/128 of their values */
    uint64_t expect_lo = 0;
    for (unsigned i = 0; i < MQO_HIST_BUCKETS; i++) {
        uint64_t lo = mqo_hist_bucket_lo(i), w = mqo_hist_bucket_width(i);
        assert_int_equal(lo, expect_lo);
        assert_int_equal(mqo_hist_index(lo), i);
        assert_int_equal(mqo_hist_index(lo + w - 1), i);
        if (lo)
            assert_true(w * MQO_HIST_SUB <= lo || lo < MQO_HIST_SUB);
        expect_lo = lo + w;
    }
    assert_int_equal(expect_lo - 1, MQO_HIST_MAX);
    assert_int_equal(mqo_hist_index(MQO_HIST_MAX), MQO_HIST_BUCKETS - 1);
    assert_int_equal(mqo_hist_index(UINT64_MAX), MQO_HIST_BUCKETS - 1);
}

static void test_empty(void **st)
{
    struct mqo_hist *h = calloc(1, sizeof *h);
    assert_int_equal(mqo_hist_percentile(h, 50), 0);
    assert_int_equal(mqo_hist_percentile(h, 100), 0);
    assert_true(mqo_hist_mean(h) == 0);
    struct mqo_hist *e = calloc(1, sizeof *e);
    mqo_hist_merge(h, e);
    assert_int_equal(h->count, 0);
    free(e);
    free(h);
}

static void test_edge_values(void **st)
{
    struct mqo_hist *h = calloc(1, sizeof *h);
    mqo_hist_record(h, 0);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->min, 0);
    assert_int_equal(mqo_hist_percentile(h, 50), 0);
    assert_int_equal(mqo_hist_percentile(h, 100), 0);
    mqo_hist_record(h, 1);
    mqo_hist_record(h, 127);
    mqo_hist_record(h, 128);
    assert_int_equal(mqo_hist_percentile(h, 25), 0);
    assert_int_equal(mqo_hist_percentile(h, 50), 1);
    assert_int_equal(mqo_hist_percentile(h, 75), 127);
    assert_int_equal(mqo_hist_percentile(h, 100), 128);
    assert_int_equal(h->max, 128);
    /* one value: every percentile is that value exactly, thanks to the min/max clamp */
    mqo_hist_reset(h);
    mqo_hist_record(h, 1234567);
    assert_int_equal(mqo_hist_percentile(h, 0), 1234567);
    assert_int_equal(mqo_hist_percentile(h, 50), 1234567);
    assert_int_equal(mqo_hist_percentile(h, 99.9), 1234567);
    assert_true(mqo_hist_mean(h) == 1234567.0);
    /* record_n */
    mqo_hist_reset(h);
    mqo_hist_record_n(h, 1000, 99);
    mqo_hist_record_n(h, 5000000, 1);
    mqo_hist_record_n(h, 7, 0);
    assert_int_equal(h->count, 100);
    assert_int_equal(h->min, 1000);
    uint64_t p99 = mqo_hist_percentile(h, 99);
    assert_true(p99 >= 996 && p99 <= 1004);
    uint64_t top = mqo_hist_percentile(h, 99.5); /* the middle of 5000000's bucket */
    assert_true(top >= 5000000 - 5000000 / 256 && top <= 5000000);
    assert_int_equal(mqo_hist_percentile(h, 100), 5000000);
    free(h);
}

static void test_overflow_clamp(void **st)
{
    struct mqo_hist *h = calloc(1, sizeof *h);
    mqo_hist_record(h, 10);
    mqo_hist_record(h, MQO_HIST_MAX + 1);
    mqo_hist_record(h, UINT64_MAX);
    assert_int_equal(h->count, 3);
    assert_int_equal(h->clamped, 2);
    assert_int_equal(h->b[MQO_HIST_BUCKETS - 1], 2);
    assert_int_equal(h->max, UINT64_MAX); /* max is the value as recorded */
    assert_int_equal(mqo_hist_percentile(h, 100), UINT64_MAX);
    uint64_t p50 = mqo_hist_percentile(h, 50); /* in the top bucket */
    assert_true(p50 >= mqo_hist_bucket_lo(MQO_HIST_BUCKETS - 1));
    assert_true(p50 <= MQO_HIST_MAX);
    assert_int_equal(mqo_hist_percentile(h, 33), 10);
    free(h);
}

static void test_random_vs_exact(void **st)
{
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    struct mqo_hist *h = calloc(1, sizeof *h);
    assert_non_null(v);
    assert_non_null(h);
    for (int round = 0; round < 4; round++) {
        mqo_hist_reset(h);
        double sum = 0;
        for (size_t i = 0; i < N; i++) {
            uint64_t x;
            switch (round) {
            case 0: /* uniform 1 us .. 10 ms */
                x = 1000 + next_rand() % 10000000;
                break;
            case 1: { /* about log-uniform, 1 us .. 137 s: a random power of two, then within it */
                unsigned k = 10 + (unsigned)(next_rand() % 27);
                x = (UINT64_C(1) << k) + next_rand() % (UINT64_C(1) << k);
                break;
            }
            case 2: /* small values, exact buckets and the first groups */
                x = next_rand() % 2000;
                break;
            default: /* a tight cluster plus rare huge outliers */
                x = next_rand() % 1000 == 0 ? 1000000000 + next_rand() % 1000000 : 50000 + next_rand() % 100;
                break;
            }
            v[i] = x;
            sum += (double)x;
            mqo_hist_record(h, x);
        }
        assert_int_equal(h->count, N);
        double mean = mqo_hist_mean(h), exact_mean = sum / N;
        assert_true(mean > exact_mean * 0.999999 && mean < exact_mean * 1.000001);
        check_pcts(h, v, N);
        assert_int_equal(h->min, v[0]);
        assert_int_equal(h->max, v[N - 1]);
    }
    free(v);
    free(h);
}

static void test_merge(void **st)
{
    enum { N = 50000 };
    uint64_t *v = malloc(2 * N * sizeof *v);
    struct mqo_hist *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *all = calloc(1, sizeof *all);
    for (size_t i = 0; i < 2 * N; i++) {
        /* the halves differ in range, so min comes from one and max from the other */
        v[i] = i < N ? 5000 + next_rand() % 100000 : 80000 + next_rand() % 9000000;
        mqo_hist_record(i < N ? a : b, v[i]);
        mqo_hist_record(all, v[i]);
    }
    mqo_hist_merge(a, b);
    assert_int_equal(a->count, 2 * N);
    assert_memory_equal(a->b, all->b, sizeof a->b);
    assert_int_equal(a->min, all->min);
    assert_int_equal(a->max, all->max);
    assert_true(a->sum == all->sum || (a->sum - all->sum) / all->sum < 1e-12);
    check_pcts(a, v, 2 * N);
    /* merging into an empty histogram copies */
    struct mqo_hist *e = calloc(1, sizeof *e);
    mqo_hist_merge(e, b);
    assert_int_equal(e->min, b->min);
    assert_int_equal(e->max, b->max);
    assert_int_equal(mqo_hist_percentile(e, 50), mqo_hist_percentile(b, 50));
    free(e);
    free(v);
    free(a);
    free(b);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_layout),    cmocka_unit_test(test_empty),
        cmocka_unit_test(test_edge_values),     cmocka_unit_test(test_overflow_clamp),
        cmocka_unit_test(test_random_vs_exact), cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
