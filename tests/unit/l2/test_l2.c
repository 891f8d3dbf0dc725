/* l2: hub, learning switch (aging, moves, a full table) and static table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "l2/l2.h"

#define SEC 1000000000ull

static const uint8_t H1[6] = {0x02, 0, 0, 0, 0, 1};
static const uint8_t H2[6] = {0x02, 0, 0, 0, 0, 2};
static const uint8_t H3[6] = {0x02, 0, 0, 0, 0, 3};
static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t MC[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};

/* A minimal frame: dst, src, ethertype, some payload. */
static const uint8_t *fr(const uint8_t *dst, const uint8_t *src)
{
    static uint8_t f[60];
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    return f;
}

static struct mqo_l2 *mk(enum mqo_l2_mode m, unsigned nports, uint64_t aging, uint32_t max)
{
    struct mqo_l2_cfg c = {.mode = m, .nports = nports, .aging_ns = aging, .max_macs = max};
    struct mqo_l2 *l2 = mqo_l2_new(&c);
    assert_non_null(l2);
    return l2;
}

static void test_cfg_checks(void **st)
{
    struct mqo_l2_cfg c = {.mode = MQO_L2_HUB, .nports = 0};
    assert_null(mqo_l2_new(&c));
    c.nports = 33;
    assert_null(mqo_l2_new(&c));
    c.nports = 32;
    struct mqo_l2 *l2 = mqo_l2_new(&c);
    assert_non_null(l2);
    assert_int_equal(mqo_l2_decide(l2, 31, fr(H1, H2), 60, 0), 0x7fffffffu);
    mqo_l2_free(l2);
    c.mode = (enum mqo_l2_mode)7;
    assert_null(mqo_l2_new(&c));
    enum mqo_l2_mode m;
    assert_int_equal(mqo_l2_parse_mode("learn", &m), 0);
    assert_int_equal(m, MQO_L2_LEARN);
    assert_int_equal(mqo_l2_parse_mode("static", &m), 0);
    assert_int_equal(m, MQO_L2_STATIC);
    assert_int_equal(mqo_l2_parse_mode("hub", &m), 0);
    assert_int_equal(m, MQO_L2_HUB);
    assert_int_equal(mqo_l2_parse_mode("switch", &m), -1);
    mqo_l2_free(NULL);
}

static void test_hub(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_HUB, 2, 0, 0);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H2, H1), 60, 0), 2);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, H2), 60, 0), 1);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H1, H2), 60, 0), 2); /* no learning */
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H1, H2), 13, 0), 0); /* runt */
    assert_int_equal(mqo_l2_decide(l2, 2, fr(H1, H2), 60, 0), 0); /* no such port */
    struct mqo_l2_stats s;
    mqo_l2_get_stats(l2, &s);
    assert_int_equal(s.frames, 5);
    assert_int_equal(s.flooded, 3);
    assert_int_equal(s.dropped_runt, 2);
    mqo_l2_free(l2);
    l2 = mk(MQO_L2_HUB, 3, 0, 0);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(BC, H1), 60, 0), 5);
    mqo_l2_free(l2);
}

static void test_learn_basic(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_LEARN, 3, 10 * SEC, 0);
    uint64_t t = 1000;
    /* unknown: flood, and H1 is learned on port 0 */
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H2, H1), 60, t), 6);
    assert_int_equal(mqo_l2_lookup(l2, H1, t), 0);
    assert_int_equal(mqo_l2_lookup(l2, H2, t), -1);
    /* reply: unicast to port 0; H2 learned on port 1 */
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, H2), 60, t), 1);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H2, H1), 60, t), 2);
    /* destination on the input port: filtered */
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H1, H3), 60, t), 0);
    assert_int_equal(mqo_l2_lookup(l2, H3, t), 0);
    /* broadcast and multicast flood even when the source is known */
    assert_int_equal(mqo_l2_decide(l2, 1, fr(BC, H2), 60, t), 5);
    assert_int_equal(mqo_l2_decide(l2, 2, fr(MC, H2), 60, t), 3); /* H2 moved to 2 */
    assert_int_equal(mqo_l2_lookup(l2, H2, t), 2);
    /* a multicast source is never learned */
    assert_int_equal(mqo_l2_decide(l2, 2, fr(H1, MC), 60, t), 1);
    assert_int_equal(mqo_l2_lookup(l2, MC, t), -1);
    struct mqo_l2_stats s;
    mqo_l2_get_stats(l2, &s);
    assert_int_equal(s.learned, 3);
    assert_int_equal(s.moved, 1);
    assert_int_equal(s.filtered, 1);
    assert_int_equal(s.flooded, 3);
    assert_int_equal(s.unicast, 3);
    assert_int_equal(mqo_l2_count(l2), 3);
    mqo_l2_free(l2);
}

static void test_learn_aging(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_LEARN, 2, 10 * SEC, 0);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(BC, H1), 60, 1 * SEC), 2);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, H2), 60, 5 * SEC), 1);
    assert_int_equal(mqo_l2_lookup(l2, H1, 11 * SEC - 1), 0);
    /* aged: not found, floods again */
    assert_int_equal(mqo_l2_lookup(l2, H1, 11 * SEC), -1);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, H2), 60, 11 * SEC), 1); /* 2 ports: same mask */
    /* refresh keeps an entry alive */
    assert_int_equal(mqo_l2_decide(l2, 0, fr(BC, H1), 60, 12 * SEC), 2);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(BC, H1), 60, 21 * SEC), 2);
    assert_int_equal(mqo_l2_lookup(l2, H1, 30 * SEC), 0);
    struct mqo_l2_stats s;
    mqo_l2_get_stats(l2, &s);
    assert_int_equal(s.learned, 3); /* H1, H2, H1 again after aging */
    mqo_l2_free(l2);
}

static void test_learn_table_full(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_LEARN, 2, 10 * SEC, 16);
    uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) {
        mac[5] = (uint8_t)(10 + i);
        mqo_l2_decide(l2, 0, fr(BC, mac), 60, SEC);
    }
    assert_int_equal(mqo_l2_count(l2), 16);
    /* full: a new source is not learned, its frames still go through */
    mac[5] = 200;
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, mac), 60, 2 * SEC), 1);
    assert_int_equal(mqo_l2_lookup(l2, mac, 2 * SEC), -1);
    struct mqo_l2_stats s;
    mqo_l2_get_stats(l2, &s);
    assert_true(s.table_full >= 1);
    /* known ones still refresh */
    mac[5] = 10;
    mqo_l2_decide(l2, 1, fr(BC, mac), 60, 3 * SEC);
    assert_int_equal(mqo_l2_lookup(l2, mac, 3 * SEC), 1);
    /* after aging, the sweep (or slot reuse) makes room */
    mac[5] = 201;
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, mac), 60, 12 * SEC), 1);
    assert_int_equal(mqo_l2_lookup(l2, mac, 12 * SEC), 1);
    mac[5] = 10; /* refreshed at 3 s: still there */
    assert_int_equal(mqo_l2_lookup(l2, mac, 12 * SEC), 1);
    assert_true(mqo_l2_count(l2) <= 16);
    mqo_l2_free(l2);
}

static void test_learn_many_random(void **st)
{
    /* many stations, table large enough: every one is found on its port; against a model */
    struct mqo_l2 *l2 = mk(MQO_L2_LEARN, 4, 1000 * SEC, 5000);
    static int8_t model[4000];
    uint64_t x = 42;
    for (int i = 0; i < 4000; i++)
        model[i] = -1;
    for (int i = 0; i < 50000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned st_id = (unsigned)(x >> 33) % 4000, port = (unsigned)(x >> 20) % 4;
        uint8_t mac[6] = {0x02, 0, 0, 0, (uint8_t)(st_id >> 8), (uint8_t)st_id};
        mqo_l2_decide(l2, port, fr(BC, mac), 60, (uint64_t)i);
        model[st_id] = (int8_t)port;
    }
    for (unsigned i = 0; i < 4000; i++) {
        uint8_t mac[6] = {0x02, 0, 0, 0, (uint8_t)(i >> 8), (uint8_t)i};
        assert_int_equal(mqo_l2_lookup(l2, mac, 50000), model[i]);
    }
    mqo_l2_free(l2);
}

static void test_static(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_STATIC, 2, 0, 0);
    const char *tab = "# the lab\n"
                      "02:00:00:00:00:01 a   # client side\n"
                      "\n"
                      "  02-00-00-00-00-02\t1\r\n"
                      "02:00:00:00:00:03 0";
    char err[128];
    assert_int_equal(mqo_l2_static_parse(l2, tab, strlen(tab), err, sizeof err), 0);
    assert_int_equal(mqo_l2_count(l2), 3);
    assert_int_equal(mqo_l2_lookup(l2, H1, 0), 0);
    assert_int_equal(mqo_l2_lookup(l2, H2, 0), 1);
    assert_int_equal(mqo_l2_lookup(l2, H3, 1000 * SEC), 0); /* static entries never age */
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H2, H1), 60, 0), 2);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(H1, H2), 60, 0), 1);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(H3, H1), 60, 0), 0); /* same side */
    assert_int_equal(mqo_l2_decide(l2, 0, fr(BC, H1), 60, 0), 2);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(MC, H1), 60, 0), 1);
    const uint8_t unk[6] = {0x02, 9, 9, 9, 9, 9};
    assert_int_equal(mqo_l2_decide(l2, 0, fr(unk, H1), 60, 0), 0); /* unknown: dropped */
    assert_int_equal(mqo_l2_lookup(l2, unk, 0), -1);                 /* nothing learned */
    struct mqo_l2_stats s;
    mqo_l2_get_stats(l2, &s);
    assert_int_equal(s.dropped_unknown, 1);
    assert_int_equal(s.filtered, 1);
    mqo_l2_free(l2);

    struct mqo_l2_cfg c = {.mode = MQO_L2_STATIC, .nports = 2,
                           .flags = MQO_L2_STATIC_FLOOD_UNKNOWN};
    l2 = mqo_l2_new(&c);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(unk, H1), 60, 0), 2);
    /* a multicast destination may be listed */
    assert_int_equal(mqo_l2_static_add(l2, MC, 0), 0);
    assert_int_equal(mqo_l2_decide(l2, 1, fr(MC, H1), 60, 0), 1);
    assert_int_equal(mqo_l2_decide(l2, 0, fr(MC, H1), 60, 0), 0);
    assert_int_equal(mqo_l2_static_add(l2, MC, 2), -EINVAL);
    mqo_l2_free(l2);
}

static void test_static_in_learn_mode(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_LEARN, 2, 10 * SEC, 0);
    assert_int_equal(mqo_l2_static_add(l2, H1, 1), 0);
    /* H1 shows up on port 0: the static entry wins, not relearned */
    mqo_l2_decide(l2, 0, fr(BC, H1), 60, SEC);
    assert_int_equal(mqo_l2_lookup(l2, H1, 100 * SEC), 1);
    mqo_l2_free(l2);
}

static void test_static_errors(void **st)
{
    struct mqo_l2 *l2 = mk(MQO_L2_STATIC, 2, 0, 4);
    char err[128];
    const struct {
        const char *text, *msg;
        int r;
    } cases[] = {
        {"02:00:00:00:00:01 0\nzz:00:00:00:00:01 1\n", "line 2: bad MAC 'zz:00:00:00:00:01'",
         -EINVAL},
        {"02:00:00:00:00:01\n", "line 1: missing port", -EINVAL},
        {"02:00:00:00:00:01 2\n", "line 1: bad port '2'", -EINVAL},
        {"02:00:00:00:00:01 c\n", "line 1: bad port 'c'", -EINVAL},
        {"02:00:00:00:00:01 x1\n", "line 1: bad port 'x1'", -EINVAL},
        {"02:00:00:00:00:01 1 extra\n", "line 1: unexpected text", -EINVAL},
        {"02:00:00:00:00:0\n", "line 1: bad MAC", -EINVAL},
        {"02:00:00:00:00:011 1\n", "line 1: bad MAC", -EINVAL},
        {"02:00:00-00:00:01 1\n", "line 1: bad MAC", -EINVAL},
        {"02:00:00:00:00:01 0\n02:00:00:00:00:02 0\n02:00:00:00:00:03 0\n"
         "02:00:00:00:00:04 0\n02:00:00:00:00:05 0\n",
         "line 5: more than 4 MACs", -ENOSPC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        err[0] = 0;
        int r = mqo_l2_static_parse(l2, cases[i].text, strlen(cases[i].text), err, sizeof err);
        assert_int_equal(r, cases[i].r);
        if (strncmp(err, cases[i].msg, strlen(cases[i].msg))) {
            print_error("case %zu: got '%s', want '%s...'\n", i, err, cases[i].msg);
            fail();
        }
        assert_int_equal(mqo_l2_count(l2), 0); /* unchanged on error */
    }
    /* a MAC listed twice takes the later port */
    const char *twice = "02:00:00:00:00:01 0\n02:00:00:00:00:01 1\n";
    assert_int_equal(mqo_l2_static_parse(l2, twice, strlen(twice), err, sizeof err), 0);
    assert_int_equal(mqo_l2_lookup(l2, H1, 0), 1);
    assert_int_equal(mqo_l2_count(l2), 1);
    uint8_t mac[6];
    assert_int_equal(mqo_l2_parse_mac("AA:bb:CC:dd:EE:ff", 17, mac), 0);
    assert_int_equal(mac[0], 0xaa);
    assert_int_equal(mac[5], 0xff);
    mqo_l2_free(l2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_checks),
        cmocka_unit_test(test_hub),
        cmocka_unit_test(test_learn_basic),
        cmocka_unit_test(test_learn_aging),
        cmocka_unit_test(test_learn_table_full),
        cmocka_unit_test(test_learn_many_random),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_static_in_learn_mode),
        cmocka_unit_test(test_static_errors),
    };
    return cmocka_run_group_tests_name("l2/l2", tests, NULL, NULL);
}
