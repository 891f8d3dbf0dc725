/* l2/impair: spec parser, determinism, loss/dup rates, delay, jitter, reordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2/impair.h"

#define MS 1000000ull

/* Items are small integers disguised as pointers. */
#define IT(i) ((void *)(uintptr_t)((i) + 1))
#define ID(p) ((int)((uintptr_t)(p)-1))

static struct mqo_impair *mk(const char *spec, uint64_t stream)
{
    struct mqo_impair_cfg c;
    char err[200];
    if (mqo_impair_parse(spec, &c, err, sizeof err)) {
        print_error("spec '%s': %s\n", spec, err);
        fail();
    }
    struct mqo_impair *im = mqo_impair_new(&c, stream);
    assert_non_null(im);
    return im;
}

static void test_parse_ok(void **st)
{
    struct mqo_impair_cfg c;
    char err[200];
    assert_int_equal(mqo_impair_parse("loss=1.5,dup=1,reorder=2,delay=5,seed=7", &c, err,
                                      sizeof err),
                     0);
    assert_true(c.loss == 1.5 && c.dup == 1 && c.reorder == 2);
    assert_int_equal(c.delay_ns, 5 * MS);
    assert_int_equal(c.seed, 7);
    assert_int_equal(c.gap, 1);
    assert_int_equal(c.hold_ns, 10 * MS);
    assert_int_equal(c.limit, 10000);
    assert_true(mqo_impair_active(&c));
    assert_int_equal(mqo_impair_parse(" jitter=0.25 , gap=3,hold=2,limit=5,seed=0x10 ", &c, err,
                                      sizeof err),
                     0);
    assert_int_equal(c.jitter_ns, 250000);
    assert_int_equal(c.gap, 3);
    assert_int_equal(c.hold_ns, 2 * MS);
    assert_int_equal(c.limit, 5);
    assert_int_equal(c.seed, 16);
    assert_int_equal(mqo_impair_parse("", &c, err, sizeof err), 0);
    assert_false(mqo_impair_active(&c));
    assert_int_equal(mqo_impair_parse("none", &c, err, sizeof err), 0);
    assert_false(mqo_impair_active(&c));
    assert_int_equal(mqo_impair_parse("loss=0,dup=0", &c, err, sizeof err), 0);
    assert_false(mqo_impair_active(&c));
    assert_int_equal(mqo_impair_parse("loss=100", &c, err, sizeof err), 0);
    /* fragmentation alone is an impairment */
    assert_int_equal(mqo_impair_parse("frag=576", &c, err, sizeof err), 0);
    assert_int_equal(c.frag, 576);
    assert_true(mqo_impair_active(&c));
    assert_int_equal(mqo_impair_parse("frag=8,loss=1", &c, err, sizeof err), 0);
    assert_int_equal(c.frag, 8);
    assert_int_equal(mqo_impair_parse("frag=0", &c, err, sizeof err), 0);
    assert_false(mqo_impair_active(&c));
    assert_int_equal(mqo_impair_parse("frag=65535", &c, err, sizeof err), 0);
    assert_int_equal(c.frag, 65535);
}

static void test_parse_errors(void **st)
{
    const struct {
        const char *spec, *msg;
    } cases[] = {
        {"los=1", "unknown key 'los' (keys: loss, dup"},
        {"loss", "'loss': expected key=value"},
        {"loss=", "loss: '' is not a percentage 0..100"},
        {"loss=abc", "loss: 'abc' is not a percentage"},
        {"loss=101", "loss: '101' is not a percentage"},
        {"loss=-1", "loss: '-1' is not a percentage"},
        {"loss=nan", "loss: 'nan' is not a percentage"},
        {"loss=1%", "loss: '1%' is not a percentage"},
        {"dup=inf", "dup: 'inf' is not a percentage"},
        {"delay=-5", "delay: '-5' is not a time in ms"},
        {"delay=5ms", "delay: '5ms' is not a time in ms"},
        {"jitter=99999", "jitter: '99999' is not a time in ms"},
        {"gap=0", "gap: '0' is not a frame count 1..1000"},
        {"seed=-1", "seed: '-1' is not an unsigned integer"},
        {"seed=99999999999999999999", "seed: '99999999999999999999' is not an unsigned"},
        {"limit=0", "limit: '0' is not a frame count"},
        {"loss=1,loss=2", "loss: given twice"},
        {"frag=7", "frag: '7' is not a payload size 8..65535 (0: none)"},
        {"frag=65536", "frag: '65536' is not a payload size"},
        {"frag=-8", "frag: '-8' is not a payload size"},
        {"frag=1k", "frag: '1k' is not a payload size"},
        {"frag=8,frag=16", "frag: given twice"},
        {"fragment=8", "unknown key 'fragment' (keys: loss, dup, reorder, gap, hold, delay, "
                       "jitter, seed, limit, frag)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct mqo_impair_cfg c;
        mqo_impair_cfg_init(&c);
        c.loss = 42;
        char err[200] = "";
        assert_int_equal(mqo_impair_parse(cases[i].spec, &c, err, sizeof err), -EINVAL);
        if (strncmp(err, cases[i].msg, strlen(cases[i].msg))) {
            print_error("'%s': got '%s', want '%s...'\n", cases[i].spec, err, cases[i].msg);
            fail();
        }
        assert_true(c.loss == 42); /* unchanged */
    }
    char longspec[600];
    memset(longspec, 'a', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = 0;
    struct mqo_impair_cfg c;
    char err[200];
    assert_int_equal(mqo_impair_parse(longspec, &c, err, sizeof err), -EINVAL);
}

static void test_format_roundtrip(void **st)
{
    const char *specs[] = {"loss=1.5,dup=1,reorder=2,delay=5,seed=7",
                           "jitter=0.333333,hold=1.25,gap=7,limit=99,seed=18446744073709551615",
                           "loss=0.1,delay=0.000001", "frag=1000,dup=5", ""};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        struct mqo_impair_cfg a, b;
        char err[200], buf[300];
        assert_int_equal(mqo_impair_parse(specs[i], &a, err, sizeof err), 0);
        mqo_impair_format(&a, buf, sizeof buf);
        assert_int_equal(mqo_impair_parse(buf, &b, err, sizeof err), 0);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

static void test_passthrough(void **st)
{
    struct mqo_impair *im = mk("", 0);
    void *out[16];
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(mqo_impair_fate(im), 1);
        assert_int_equal(mqo_impair_enqueue(im, IT(i), 100 + (uint64_t)i), 0);
        assert_int_equal(mqo_impair_next(im), 100 + (uint64_t)i);
        assert_int_equal(mqo_impair_dequeue(im, 100 + (uint64_t)i, out, 16), 1);
        assert_int_equal(ID(out[0]), i);
    }
    assert_int_equal(mqo_impair_next(im), UINT64_MAX);
    assert_int_equal(mqo_impair_held(im), 0);
    struct mqo_impair_stats s;
    mqo_impair_get_stats(im, &s);
    assert_int_equal(s.in, 1000);
    assert_int_equal(s.out, 1000);
    assert_int_equal(s.lost + s.duped + s.reordered + s.delayed, 0);
    mqo_impair_free(im);
}

static void test_rates(void **st)
{
    const int N = 200000;
    struct mqo_impair *im = mk("loss=30,dup=10,seed=3", 0);
    int lost = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        int f = mqo_impair_fate(im);
        lost += f == 0;
        dup += f == 2;
    }
    /* binomial: 3 sigma is ~0.3% of N for 30% */
    assert_true(lost > N * 0.297 && lost < N * 0.303);
    /* dup is drawn for lost frames too, then not applied: 10% of the 70% kept */
    assert_true(dup > N * 0.068 && dup < N * 0.072);
    mqo_impair_free(im);
    im = mk("loss=100", 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mqo_impair_fate(im), 0);
    mqo_impair_free(im);
    im = mk("dup=100", 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mqo_impair_fate(im), 2);
    mqo_impair_free(im);
}

/* Runs a whole scenario and records what comes out, and when. */
static int run(const char *spec, uint64_t stream, int n, int *ids, uint64_t *times)
{
    struct mqo_impair *im = mk(spec, stream);
    int k = 0;
    void *out[64];
    for (int i = 0; i < n; i++) {
        uint64_t now = (uint64_t)i * 100000; /* a frame every 0.1 ms */
        int m = mqo_impair_dequeue(im, now, out, 64);
        for (int j = 0; j < m; j++, k++) {
            ids[k] = ID(out[j]);
            times[k] = now;
        }
        int f = mqo_impair_fate(im);
        for (int c = 0; c < f; c++)
            assert_int_equal(mqo_impair_enqueue(im, IT(i), now), 0);
    }
    for (uint64_t now = (uint64_t)n * 100000;; now += 100000) {
        int m = mqo_impair_dequeue(im, now, out, 64);
        for (int j = 0; j < m; j++, k++) {
            ids[k] = ID(out[j]);
            times[k] = now;
        }
        if (!mqo_impair_held(im))
            break;
    }
    mqo_impair_free(im);
    return k;
}

static void test_deterministic(void **st)
{
    enum { N = 5000 };
    static int a[2 * N], b[2 * N];
    static uint64_t ta[2 * N], tb[2 * N];
    const char *spec = "loss=5,dup=5,reorder=5,delay=1,jitter=0.5,seed=99";
    int na = run(spec, 0, N, a, ta), nb = run(spec, 0, N, b, tb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof(int) * (size_t)na);
    assert_memory_equal(ta, tb, sizeof(uint64_t) * (size_t)na);
    /* another seed or stream gives another run */
    nb = run("loss=5,dup=5,reorder=5,delay=1,jitter=0.5,seed=100", 0, N, b, tb);
    assert_true(na != nb || memcmp(a, b, sizeof(int) * (size_t)na));
    nb = run(spec, 1, N, b, tb);
    assert_true(na != nb || memcmp(a, b, sizeof(int) * (size_t)na));
}

static void test_independent_streams(void **st)
{
    /* the frames duplicated are the same whatever the loss rate (for the frames not lost) */
    struct mqo_impair *x = mk("dup=20,seed=5", 0), *y = mk("dup=20,loss=50,seed=5", 0);
    for (int i = 0; i < 10000; i++) {
        int fx = mqo_impair_fate(x), fy = mqo_impair_fate(y);
        if (fy != 0)
            assert_int_equal(fx, fy);
    }
    mqo_impair_free(x);
    mqo_impair_free(y);
}

static void test_delay_jitter(void **st)
{
    struct mqo_impair *im = mk("delay=5", 0);
    void *out[8];
    assert_int_equal(mqo_impair_enqueue(im, IT(1), 1000), 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(2), 2000), 0);
    assert_int_equal(mqo_impair_next(im), 1000 + 5 * MS);
    assert_int_equal(mqo_impair_dequeue(im, 1000 + 5 * MS - 1, out, 8), 0);
    assert_int_equal(mqo_impair_dequeue(im, 1000 + 5 * MS, out, 8), 1);
    assert_int_equal(ID(out[0]), 1);
    assert_int_equal(mqo_impair_next(im), 2000 + 5 * MS);
    assert_int_equal(mqo_impair_dequeue(im, UINT64_MAX, out, 8), 1);
    assert_int_equal(ID(out[0]), 2);
    mqo_impair_free(im);

    /* jitter: every frame within [delay - j, delay + j]; both ends reached roughly */
    im = mk("delay=2,jitter=1,seed=11", 0);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t now = (uint64_t)i * 10 * MS; /* far apart: one held at a time */
        assert_int_equal(mqo_impair_enqueue(im, IT(i), now), 0);
        uint64_t d = mqo_impair_next(im) - now;
        assert_true(d >= 1 * MS && d <= 3 * MS);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        assert_int_equal(mqo_impair_dequeue(im, now + d, out, 8), 1);
    }
    assert_true(lo < 1 * MS + 5000 && hi > 3 * MS - 5000);
    mqo_impair_free(im);

    /* jitter larger than the delay is clamped at 0 */
    im = mk("delay=0.1,jitter=1,seed=2", 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(mqo_impair_enqueue(im, IT(i), 50 * MS), 0);
        assert_true(mqo_impair_next(im) >= 50 * MS);
        mqo_impair_drain(im, out, 8);
    }
    mqo_impair_free(im);
}

/* With gap=1 and no delay, a held frame comes out right behind the first frame that passed
 * after it. So the output is a series of groups: a passing frame p, then exactly the frames
 * between the previous passing frame and p, in ascending order (all held). */
static void test_reorder_structure(void **st)
{
    enum { N = 20000 };
    static int ids[N];
    static uint64_t t[N];
    int n = run("reorder=25,seed=4", 0, N, ids, t);
    assert_int_equal(n, N);
    int i = 0, prev = -1, held = 0;
    while (i < n) {
        int p = ids[i++];
        assert_true(p > prev);
        for (int x = prev + 1; x < p; x++, i++) {
            assert_true(i < n);
            assert_int_equal(ids[i], x);
            held++;
        }
        prev = p;
    }
    assert_int_equal(prev, N - 1);
    assert_true(held > N * 0.23 && held < N * 0.27);
}

static void test_reorder_gap_and_hold(void **st)
{
    void *out[16];
    /* reorder=100: every frame is held; with nothing passing, each leaves at its hold time */
    struct mqo_impair *im = mk("reorder=100,hold=2", 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(1), 1 * MS), 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(2), 2 * MS), 0);
    assert_int_equal(mqo_impair_next(im), 3 * MS);
    assert_int_equal(mqo_impair_dequeue(im, 3 * MS - 1, out, 16), 0);
    assert_int_equal(mqo_impair_dequeue(im, 3 * MS, out, 16), 1);
    assert_int_equal(ID(out[0]), 1);
    assert_int_equal(mqo_impair_dequeue(im, 10 * MS, out, 16), 1);
    assert_int_equal(ID(out[0]), 2);
    struct mqo_impair_stats s;
    mqo_impair_get_stats(im, &s);
    assert_int_equal(s.reordered, 2);
    mqo_impair_free(im);

    /* gap=3: find a held frame, check it leaves after exactly 3 passing ones */
    enum { N = 2000 };
    static int ids[N];
    static uint64_t t[N];
    int n = run("reorder=10,gap=3,seed=8", 0, N, ids, t);
    assert_int_equal(n, N);
    int checked = 0;
    for (int i = 0; i + 4 < n; i++) {
        /* pattern: x, then 3 larger ids passing, then x (no other holds around) */
        if (ids[i + 1] > ids[i] && ids[i + 2] > ids[i + 1] && ids[i + 3] > ids[i + 2] &&
            ids[i + 4] < ids[i + 1] && ids[i + 4] > ids[i] && ids[i + 4] + 1 == ids[i + 1] &&
            ids[i + 2] == ids[i + 1] + 1 && ids[i + 3] == ids[i + 2] + 1)
            checked++;
    }
    assert_true(checked > 50);
    /* never more than 3 frames in front of a held one */
    int pos[N];
    for (int i = 0; i < n; i++)
        pos[ids[i]] = i;
    for (int i = 0; i < N; i++) {
        int ahead = 0;
        for (int j = i + 1; j < N && j < i + 40; j++)
            ahead += pos[j] < pos[i];
        assert_true(ahead <= 3);
    }
}

static void test_limit_and_drain(void **st)
{
    struct mqo_impair *im = mk("delay=1,limit=3", 0);
    void *out[8];
    for (int i = 0; i < 3; i++)
        assert_int_equal(mqo_impair_enqueue(im, IT(i), 0), 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(3), 0), -ENOBUFS);
    struct mqo_impair_stats s;
    mqo_impair_get_stats(im, &s);
    assert_int_equal(s.overflow, 1);
    assert_int_equal(mqo_impair_held(im), 3);
    assert_int_equal(mqo_impair_drain(im, out, 2), 2);
    assert_int_equal(ID(out[0]), 0);
    assert_int_equal(ID(out[1]), 1);
    assert_int_equal(mqo_impair_drain(im, out, 8), 1);
    assert_int_equal(ID(out[0]), 2);
    assert_int_equal(mqo_impair_held(im), 0);
    mqo_impair_free(im);
    /* held-for-reorder frames count against the limit and drain too */
    im = mk("reorder=100,limit=2", 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(0), 0), 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(1), 0), 0);
    assert_int_equal(mqo_impair_enqueue(im, IT(2), 0), -ENOBUFS);
    assert_int_equal(mqo_impair_drain(im, out, 8), 2);
    assert_int_equal(ID(out[0]), 0);
    assert_int_equal(ID(out[1]), 1);
    mqo_impair_free(im);
}

static void test_rng(void **st)
{
    /* xoshiro256** reference: seeded state {1, 2, 3, 4} gives 11520, 0, 1509978240, ... */
    struct mqo_rng r = {{1, 2, 3, 4}};
    assert_true(mqo_rng_next(&r) == 11520);
    assert_true(mqo_rng_next(&r) == 0);
    assert_true(mqo_rng_next(&r) == 1509978240);
    assert_true(mqo_rng_next(&r) == 1215971899390074240ull);
    mqo_rng_seed(&r, 7);
    for (int i = 0; i < 100000; i++) {
        double u = mqo_rng_unit(&r);
        assert_true(u >= 0 && u < 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_independent_streams),
        cmocka_unit_test(test_delay_jitter),
        cmocka_unit_test(test_reorder_structure),
        cmocka_unit_test(test_reorder_gap_and_hold),
        cmocka_unit_test(test_limit_and_drain),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests_name("l2/impair", tests, NULL, NULL);
}
