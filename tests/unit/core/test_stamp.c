/* core/stamp: benchmark payload stamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "core/stamp.h"

static void test_round_trip(void **st)
{
    const struct mqo_stamp cases[] = {
        {0, 0, 0, 0},
        {1, 2, 3, 4},
        {0xdeadbeef, 4095, 123456789012ull, 987654321098765ull},
        {UINT32_MAX, UINT32_MAX, UINT64_MAX, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[MQO_STAMP_LEN + 16];
        memset(buf, 0xA5, sizeof buf);
        mqo_stamp_put(buf, &cases[i]);
        assert_int_equal(buf[MQO_STAMP_LEN], 0xA5); /* nothing written past the stamp */
        struct mqo_stamp s;
        assert_int_equal(mqo_stamp_get(buf, sizeof buf, &s), 0);
        assert_int_equal(s.run, cases[i].run);
        assert_int_equal(s.pub, cases[i].pub);
        assert_int_equal(s.seq, cases[i].seq);
        assert_int_equal(s.sched_ns, cases[i].sched_ns);
        assert_int_equal(mqo_stamp_get(buf, MQO_STAMP_LEN, &s), 0); /* exactly a stamp */
    }
}

static void test_layout(void **st)
{
    /* the byte layout is fixed: other tools (the wire tap, scripts) read it */
    struct mqo_stamp s = {0x01020304, 0x0a0b0c0d, 0x1112131415161718ull, 0x2122232425262728ull};
    uint8_t b[MQO_STAMP_LEN];
    mqo_stamp_put(b, &s);
    static const uint8_t head[28] = {'M',  'Q',  'B',  MQO_STAMP_VERSION,
                                     0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d,
                                     0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
                                     0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28};
    assert_memory_equal(b, head, sizeof head);
    /* FNV-1a 32 of the first 28 bytes, big-endian */
    uint32_t h = 2166136261u;
    for (int i = 0; i < 28; i++)
        h = (h ^ b[i]) * 16777619u;
    assert_int_equal(b[28], h >> 24);
    assert_int_equal(b[29], (h >> 16) & 0xff);
    assert_int_equal(b[30], (h >> 8) & 0xff);
    assert_int_equal(b[31], h & 0xff);
}

static void test_malformed(void **st)
{
    struct mqo_stamp s0 = {7, 8, 9, 10}, s = {99, 99, 99, 99};
    uint8_t good[MQO_STAMP_LEN], b[MQO_STAMP_LEN];
    mqo_stamp_put(good, &s0);
    /* too short, every length */
    for (size_t n = 0; n < MQO_STAMP_LEN; n++)
        assert_int_equal(mqo_stamp_get(good, n, &s), -EINVAL);
    assert_int_equal(mqo_stamp_get(NULL, 100, &s), -EINVAL);
    /* wrong magic */
    memcpy(b, good, sizeof b);
    b[0] = 'X';
    assert_int_equal(mqo_stamp_get(b, sizeof b, &s), -EINVAL);
    /* other version */
    memcpy(b, good, sizeof b);
    b[3] = MQO_STAMP_VERSION + 1;
    assert_int_equal(mqo_stamp_get(b, sizeof b, &s), -EPROTONOSUPPORT);
    /* any single bit flipped in the fields or the check is caught */
    for (int i = 4 * 8; i < MQO_STAMP_LEN * 8; i++) {
        memcpy(b, good, sizeof b);
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(mqo_stamp_get(b, sizeof b, &s), -EINVAL);
    }
    /* all zeros, all ones */
    memset(b, 0, sizeof b);
    assert_int_equal(mqo_stamp_get(b, sizeof b, &s), -EINVAL);
    memset(b, 0xff, sizeof b);
    assert_int_equal(mqo_stamp_get(b, sizeof b, &s), -EINVAL);
    /* s untouched by the failures */
    assert_int_equal(s.run, 99);
    assert_int_equal(s.seq, 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("stamp", tests, NULL, NULL);
}
