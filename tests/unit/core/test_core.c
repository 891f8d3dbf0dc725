/* core/: buffers, refcounted messages, the u64 map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/map.h"
#include "core/msg.h"

static void test_buf_append_consume(void **st)
{
    struct mqo_buf b = {0};
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 1000; i++) {
        uint8_t v = (uint8_t)i;
        assert_int_equal(mqo_buf_append(&b, &v, 1), 0);
    }
    assert_int_equal(b.len, 1000);
    mqo_buf_consume(&b, 10);
    assert_int_equal(b.len, 990);
    assert_int_equal(b.data[0], 10);
    assert_int_equal(b.data[989], (uint8_t)999);
    mqo_buf_consume(&b, 5000);
    assert_int_equal(b.len, 0);
    assert_int_equal(mqo_buf_append(&b, NULL, 0), 0);
    mqo_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
}

/* A queue: appended at the back, consumed at the front in random steps, contents checked
 * against a model; consuming moves no bytes until room is needed. */
static void test_buf_queue(void **st)
{
    struct mqo_buf b = {0};
    static uint8_t model[1 << 16];
    size_t m_len = 0;
    uint32_t x = 12345, next = 0;
    for (int round = 0; round < 20000; round++) {
        x = x * 1103515245u + 12345u;
        if ((x >> 16) % 3 && m_len + 300 < sizeof model) {
            uint8_t chunk[300];
            size_t n = (x >> 8) % sizeof chunk + 1;
            for (size_t i = 0; i < n; i++)
                chunk[i] = (uint8_t)(next++ * 7);
            assert_int_equal(mqo_buf_append(&b, chunk, n), 0);
            memcpy(model + m_len, chunk, n);
            m_len += n;
        } else if (m_len) {
            size_t n = (x >> 4) % (m_len + 1);
            uint8_t *before = b.data;
            mqo_buf_consume(&b, n);
            memmove(model, model + n, m_len - n);
            m_len -= n;
            if (m_len)
                assert_ptr_equal(b.data, before + n); /* no bytes moved */
        }
        assert_int_equal(b.len, m_len);
        if (m_len)
            assert_memory_equal(b.data, model, m_len);
    }
    mqo_buf_free(&b);
    assert_null(b.data);
}

static void test_buf_reserve_huge(void **st)
{
    struct mqo_buf b = {0};
    assert_int_equal(mqo_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    assert_null(b.data);
    assert_int_equal(mqo_buf_reserve(&b, 100), 0);
    assert_true(mqo_buf_room(&b) >= 100);
    mqo_buf_free(&b);
}

/* The first allocation of an empty buffer fits its first bytes (one delivery in transit holds
 * no slack); growth goes by powers of two, which never pass a limit of 256 * 2^k bytes. */
static void test_buf_capacity(void **st)
{
    (void)st;
    struct mqo_buf b = {0};
    uint8_t p[300] = {0};
    assert_int_equal(mqo_buf_append(&b, p, 5), 0);
    assert_int_equal(b.cap, 64); /* small: the usual 64 */
    mqo_buf_free(&b);
    assert_int_equal(mqo_buf_append(&b, p, 78), 0);
    assert_int_equal(b.cap, 88); /* a 96-byte chunk, not 128 bytes */
    assert_int_equal(mqo_buf_append(&b, p, 11), 0);
    assert_int_equal(b.cap, 128); /* back to the powers of two */
    assert_int_equal(memcmp(b.data, p, 89), 0);
    mqo_buf_free(&b);
    assert_int_equal(mqo_buf_append(&b, p, 127), 0);
    assert_int_equal(b.cap, 128); /* the chunk's 136 would pass the power of two */
    mqo_buf_free(&b);
    /* appended in random steps, the allocation stays within the limit the room allows */
    const size_t limit = 256u << 6;
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        while (b.cap < limit) {
            x = x * 1103515245u + 12345u;
            size_t room = limit - b.cap, n = 1 + (x >> 8) % 300;
            if (n > room)
                n = room;
            assert_int_equal(mqo_buf_append(&b, p, n), 0);
            assert_true(b.cap <= limit);
        }
        mqo_buf_free(&b);
    }
}

static void test_msg_refs(void **st)
{
    struct mqo_msg *m = mqo_msg_dup("hello", 5);
    assert_non_null(m);
    assert_int_equal(m->refs, 1);
    assert_memory_equal(m->data, "hello", 5);
    mqo_msg_ref(m);
    assert_int_equal(m->refs, 2);
    mqo_msg_unref(m);
    assert_int_equal(m->refs, 1);
    mqo_msg_unref(m); /* freed: ASan checks */
    mqo_msg_unref(NULL);
}

static void test_map_basic(void **st)
{
    struct mqo_map m = {0};
    uint64_t v;
    assert_int_equal(mqo_map_get(&m, 1, &v), 0);
    assert_int_equal(mqo_map_del(&m, 1), 0);
    for (uint64_t k = 0; k < 5000; k++)
        assert_int_equal(mqo_map_put(&m, k * 7919, k), 0);
    assert_int_equal(m.n, 5000);
    for (uint64_t k = 0; k < 5000; k++) {
        assert_int_equal(mqo_map_get(&m, k * 7919, &v), 1);
        assert_int_equal(v, k);
    }
    assert_int_equal(mqo_map_put(&m, 7919, 42), 0); /* replace */
    assert_int_equal(m.n, 5000);
    assert_int_equal(mqo_map_get(&m, 7919, &v), 1);
    assert_int_equal(v, 42);
    /* a slot keeps key + 1: the largest key is refused, the one below it and 0 work */
    assert_int_equal(mqo_map_put(&m, UINT64_MAX, 1), -EINVAL);
    assert_int_equal(mqo_map_get(&m, UINT64_MAX, &v), 0);
    assert_int_equal(mqo_map_del(&m, UINT64_MAX), 0);
    assert_int_equal(mqo_map_put(&m, UINT64_MAX - 1, 7), 0);
    assert_int_equal(mqo_map_get(&m, UINT64_MAX - 1, &v), 1);
    assert_int_equal(v, 7);
    assert_int_equal(mqo_map_get(&m, 0, &v), 1);
    assert_int_equal(v, 0);
    assert_int_equal(mqo_map_del(&m, 0), 1);
    assert_int_equal(mqo_map_get(&m, 0, &v), 0);
    assert_int_equal(m.n, 5000);
    assert_int_equal(sizeof(struct mqo_map_slot), 16);
    mqo_map_free(&m);
}

/* Random put/del against a shadow array: backward-shift deletion must keep every probe run. */
static void test_map_random_vs_shadow(void **st)
{
    struct mqo_map m = {0};
    static uint8_t present[4096];
    static uint64_t val[4096];
    memset(present, 0, sizeof present);
    srand(7);
    for (int it = 0; it < 200000; it++) {
        uint64_t k = (uint64_t)(rand() % 4096);
        if (rand() % 3 == 0) {
            assert_int_equal(mqo_map_del(&m, k), present[k]);
            present[k] = 0;
        } else {
            uint64_t v = (uint64_t)rand();
            assert_int_equal(mqo_map_put(&m, k, v), 0);
            present[k] = 1;
            val[k] = v;
        }
        if (it % 997 == 0) {
            size_t n = 0;
            for (uint64_t j = 0; j < 4096; j++) {
                uint64_t v;
                int got = mqo_map_get(&m, j, &v);
                assert_int_equal(got, present[j]);
                if (got)
                    assert_true(v == val[j]);
                n += present[j];
            }
            assert_int_equal(m.n, n);
        }
    }
    mqo_map_free(&m);
}

static void count_each(void *arg, uint64_t k, uint64_t v) { (*(size_t *)arg) += (size_t)(k == v); }

static void test_map_each(void **st)
{
    struct mqo_map m = {0};
    for (uint64_t k = 1; k <= 100; k++)
        mqo_map_put(&m, k, k);
    size_t n = 0;
    mqo_map_each(&m, count_each, &n);
    assert_int_equal(n, 100);
    mqo_map_free(&m);
}

static void test_hash_differs(void **st)
{
    assert_true(mqo_hash64("a", 1, 0) != mqo_hash64("b", 1, 0));
    assert_true(mqo_hash64("a", 1, 0) != mqo_hash64("a", 1, 1));
    assert_true(mqo_hash64("abc", 3, 0) == mqo_hash64("abc", 3, 0));
    /* in pieces: the same value however the bytes are split */
    const char *txt = "the quick brown fox jumps over the lazy dog";
    size_t tl = strlen(txt);
    for (size_t cut = 0; cut <= tl; cut++) {
        uint64_t hs = mqo_hash64_begin(7);
        hs = mqo_hash64_update(hs, txt, cut);
        hs = mqo_hash64_update(hs, txt + cut, tl - cut);
        assert_true(mqo_hash64_end(hs) == mqo_hash64(txt, tl, 7));
    }
}

static char last_log[256];
static void sink(enum mqo_log_level l, const char *msg, void *arg)
{
    snprintf(last_log, sizeof last_log, "%d:%s", (int)l, msg);
}

static void test_log_levels(void **st)
{
    enum mqo_log_level l;
    assert_int_equal(mqo_log_parse_level("debug", &l), 0);
    assert_int_equal(l, MQO_LOG_DEBUG);
    assert_int_equal(mqo_log_parse_level("loud", &l), -1);
    mqo_log_set_sink(sink, NULL);
    mqo_log_set_level(MQO_LOG_WARN);
    last_log[0] = 0;
    mqo_info("hidden %d", 1);
    assert_string_equal(last_log, "");
    mqo_warn("shown %d", 2);
    assert_string_equal(last_log, "1:shown 2");
    mqo_log_set_sink(NULL, NULL);
    mqo_log_set_level(MQO_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_consume), cmocka_unit_test(test_buf_queue),
        cmocka_unit_test(test_buf_reserve_huge),  cmocka_unit_test(test_buf_capacity),
        cmocka_unit_test(test_msg_refs),           cmocka_unit_test(test_map_basic),
        cmocka_unit_test(test_map_random_vs_shadow), cmocka_unit_test(test_map_each),
        cmocka_unit_test(test_hash_differs),       cmocka_unit_test(test_log_levels),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
