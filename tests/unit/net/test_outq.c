/* net/outq: queued chunks and shared patched packets come out of a socket byte-exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/outq.h"

static size_t drain(int fd, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return n;
}

static void test_bytes_and_patched(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct mqo_outq q = {0};
    uint8_t pkt[] = {0x32, 0x08, 0x00, 0x01, 't', 0x00, 0x00, 'a', 'b', 'c'};
    struct mqo_msg *m = mqo_msg_dup(pkt, sizeof pkt);
    assert_int_equal(mqo_outq_push_bytes(&q, (const uint8_t *)"hello", 5), 0);
    struct mqo_out o = {.msg = m, .b0 = 0x3a, .pid_off = 5, .pid = 0x1234};
    assert_int_equal(mqo_outq_push_out(&q, &o), 0);
    assert_int_equal(m->refs, 2);
    assert_int_equal(mqo_outq_push_bytes(&q, (const uint8_t *)"world", 5), 0);
    assert_int_equal(q.bytes, 20);
    assert_int_equal(mqo_outq_flush(&q, sv[0]), 20);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(m->refs, 1); /* the queue let go of its reference */
    uint8_t got[64];
    assert_int_equal(drain(sv[1], got, sizeof got), 20);
    uint8_t want[] = {'h', 'e', 'l', 'l', 'o', 0x3a, 0x08, 0x00, 0x01, 't', 0x12, 0x34,
                      'a', 'b', 'c', 'w', 'o', 'r', 'l', 'd'};
    assert_memory_equal(got, want, sizeof want);
    mqo_msg_unref(m);
    mqo_outq_free(&q);
    close(sv[0]);
    close(sv[1]);
}

/* Partial writes at every byte boundary keep the stream exact. */
static void test_partial_advance(void **st)
{
    uint8_t pkt[] = {0x32, 0x08, 0x00, 0x01, 't', 0x00, 0x00, 'a', 'b', 'c'};
    uint8_t want[] = {'x', 'y', 0x3b, 0x08, 0x00, 0x01, 't', 0xab, 0xcd, 'a', 'b', 'c', 'z'};
    for (size_t cut = 0; cut <= sizeof want; cut++) {
        struct mqo_msg *m = mqo_msg_dup(pkt, sizeof pkt);
        struct mqo_outq q = {0};
        mqo_outq_push_bytes(&q, (const uint8_t *)"xy", 2);
        struct mqo_out o = {.msg = m, .b0 = 0x3b, .pid_off = 5, .pid = 0xabcd};
        mqo_outq_push_out(&q, &o);
        mqo_msg_unref(m);
        mqo_outq_push_bytes(&q, (const uint8_t *)"z", 1);
        uint8_t got[32];
        size_t n = 0;
        size_t step[2] = {cut, sizeof want - cut};
        for (int s = 0; s < 2; s++) {
            struct iovec iov[16];
            uint8_t scratch[48];
            int k = mqo_outq_iov(&q, iov, 16, scratch);
            size_t left = step[s];
            for (int j = 0; j < k && left; j++) {
                size_t c = iov[j].iov_len < left ? iov[j].iov_len : left;
                memcpy(got + n, iov[j].iov_base, c);
                n += c;
                left -= c;
            }
            mqo_outq_advance(&q, step[s]);
        }
        assert_int_equal(n, sizeof want);
        assert_memory_equal(got, want, sizeof want);
        assert_int_equal(q.bytes, 0);
        mqo_outq_free(&q);
    }
}

static void test_large_and_wraparound(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct mqo_outq q = {0};
    uint8_t *big = malloc(100000), *want = malloc(5000000), *got = malloc(5000000);
    for (size_t i = 0; i < 100000; i++)
        big[i] = (uint8_t)(i * 7 + i / 251);
    size_t total = 0, recv_n = 0;
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t)(round * 1777) % 100000 + 1;
        size_t from = (size_t)round * 13;
        if (from + n > 100000)
            n = 100000 - from;
        assert_int_equal(mqo_outq_push_bytes(&q, big + from, n), 0);
        memcpy(want + total, big + from, n);
        total += n;
        assert_true(mqo_outq_flush(&q, sv[0]) >= 0);
        recv_n += drain(sv[1], got + recv_n, 5000000 - recv_n);
    }
    while (q.bytes) {
        assert_true(mqo_outq_flush(&q, sv[0]) >= 0);
        recv_n += drain(sv[1], got + recv_n, 5000000 - recv_n);
    }
    recv_n += drain(sv[1], got + recv_n, 5000000 - recv_n);
    assert_int_equal(recv_n, total);
    assert_memory_equal(got, want, total);
    mqo_outq_free(&q);
    free(big);
    free(want);
    free(got);
    close(sv[0]);
    close(sv[1]);
}

static void test_flush_error(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    close(sv[1]);
    struct mqo_outq q = {0};
    mqo_outq_push_bytes(&q, (const uint8_t *)"x", 1);
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(mqo_outq_flush(&q, sv[0]), -EPIPE);
    mqo_outq_free(&q);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_and_patched),
        cmocka_unit_test(test_partial_advance),
        cmocka_unit_test(test_large_and_wraparound),
        cmocka_unit_test(test_flush_error),
    };
    return cmocka_run_group_tests_name("outq", tests, NULL, NULL);
}
