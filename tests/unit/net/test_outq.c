/* net/outq: queued chunks and shared patched packets come out of a socket byte-exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
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

/* Bytes malloc has handed out and not had back (glibc's count: main() turns the per-thread
 * cache off, whose blocks it counts as in use). Under a sanitizer's allocator, which does not
 * keep this count, heap_known is 0 and only the queue's own figures are checked. */
static size_t heap_used(void) { return mallinfo2().uordblks; }
static int heap_known;

/* A drained queue holds no memory: chunks are freed once written, the ring with the last
 * entry, and shared packets' references are dropped. */
static void test_drained_frees(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    uint8_t pkt[] = {0x30, 0x05, 0x00, 0x01, 't', 'h', 'i'};
    struct mqo_msg *m = mqo_msg_dup(pkt, sizeof pkt);
    uint8_t big[40000];
    memset(big, 0x5a, sizeof big);
    size_t before = heap_used();
    for (int round = 0; round < 3; round++) {
        struct mqo_outq q = {0};
        assert_int_equal(mqo_outq_push_bytes(&q, (const uint8_t *)"\x20\x02\x00\x00", 4), 0);
        struct mqo_out o = {.msg = m, .b0 = 0x30};
        assert_int_equal(mqo_outq_push_out(&q, &o), 0);
        assert_int_equal(mqo_outq_push_bytes(&q, big, (size_t)round * 20000), 0);
        assert_true(q.mem > 0);
        assert_true(!heap_known || heap_used() > before);
        uint8_t got[65536];
        size_t want = 4 + sizeof pkt + (size_t)round * 20000, n = 0;
        while (q.bytes) {
            assert_true(mqo_outq_flush(&q, sv[0]) >= 0);
            n += drain(sv[1], got, sizeof got);
        }
        n += drain(sv[1], got, sizeof got);
        assert_int_equal(n, want);
        /* nothing stays allocated, without mqo_outq_free */
        assert_null(q.v);
        assert_int_equal(q.n, 0);
        assert_int_equal(q.mem, 0);
        assert_int_equal(m->refs, 1);
        if (heap_known)
            assert_int_equal(heap_used(), before);
    }
    mqo_msg_unref(m);
    close(sv[0]);
    close(sv[1]);
}

/* A slow reader: packets are queued while mqo_outq_room says they fit (as the proxy's room
 * callback does), the socket takes a little now and then. The queue's memory, what malloc
 * really handed out included, never passes the limit plus malloc's own per-block overhead;
 * tiny packets make the overhead (headers, ring) the larger part. */
static void test_slow_reader_bound(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const size_t limit = 256 * 1024;
    struct mqo_outq q = {0};
    size_t before = heap_used(), queued_pk = 0, refused = 0, peak = 0;
    uint32_t rnd = 12345;
    uint8_t buf[4096];
    for (int step = 0; step < 200000; step++) {
        rnd = rnd * 1103515245u + 12345u;
        size_t len = 2 + (rnd >> 16) % (step < 100000 ? 24 : 1500);
        if (mqo_outq_room(&q, limit) >= len) {
            struct mqo_msg *m = mqo_msg_new(len);
            assert_non_null(m);
            memset(m->data, (int)len, len);
            struct mqo_out o = {.msg = m, .b0 = m->data[0]};
            assert_int_equal(mqo_outq_push_out(&q, &o), 0);
            mqo_msg_unref(m); /* the queue holds the only reference: its memory is the queue's */
            queued_pk++;
        } else {
            refused++;
        }
        assert_true(q.mem <= limit);
        size_t used = heap_known ? heap_used() - before : q.mem;
        /* what mem counts is what was asked of malloc; malloc adds at most 24 bytes a block
         * (blocks: one per entry, one ring) */
        assert_true(used >= q.mem);
        assert_true(used <= q.mem + 24 * (q.n + 1));
        if (used > peak)
            peak = used;
        if ((rnd >> 8) % 64 == 0) { /* the reader wakes up now and then */
            assert_true(mqo_outq_flush(&q, sv[0]) >= 0);
            drain(sv[1], buf, (rnd >> 4) % sizeof buf);
        }
    }
    assert_true(refused > 0); /* the limit was reached */
    assert_true(queued_pk > 1000);
    assert_true(peak <= limit + 24 * (limit / (24 + 16 + 2)));
    print_message("slow reader: %zu queued, %zu refused, peak %zu bytes (limit %zu)\n", queued_pk,
                  refused, peak, limit);
    mqo_outq_free(&q);
    if (heap_known)
        assert_int_equal(heap_used(), before);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    if (!getenv("MQO_TEST_NO_TCACHE")) { /* once: again without the per-thread cache */
        setenv("MQO_TEST_NO_TCACHE", "1", 1);
        setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
        execv("/proc/self/exe", argv);
    }
    size_t h0 = heap_used();
    void *volatile probe = malloc(1000); /* volatile: the pair is not optimized away */
    heap_known = heap_used() >= h0 + 1000;
    free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_and_patched),
        cmocka_unit_test(test_partial_advance),
        cmocka_unit_test(test_large_and_wraparound),
        cmocka_unit_test(test_flush_error),
        cmocka_unit_test(test_drained_frees),
        cmocka_unit_test(test_slow_reader_bound),
    };
    return cmocka_run_group_tests_name("outq", tests, NULL, NULL);
}
