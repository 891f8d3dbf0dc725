/* pktio/afpacket: frames the caller builds (mqo_frame_alloc, mqo_frame_alloc_len) on a port
 * over the loopback interface of a network namespace of the test's own (unshare): what is
 * sent comes back, byte for byte, and a short frame gets a small buffer. Needs root (or
 * CAP_SYS_ADMIN and CAP_NET_RAW): skipped without it. Under ASan a frame written past a small
 * buffer is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pktio/pktio.h"

static int netns_ok = -1;

/* A network namespace of our own with lo up; 0, or -1 when this process may not. */
static int own_netns(void)
{
    if (netns_ok >= 0)
        return netns_ok ? 0 : -1;
    netns_ok = 0;
    if (unshare(CLONE_NEWNET))
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
        return -1;
    ifr.ifr_flags |= IFF_UP;
    int r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    close(fd);
    if (r)
        return -1;
    netns_ok = 1;
    return 0;
}

static struct mqo_port *open_lo(void)
{
    struct mqo_port_cfg cfg = {.ifname = "lo", .backend = MQO_PKTIO_AFPACKET, .ring_frames = 256};
    struct mqo_port *p = NULL;
    char err[256];
    int r = mqo_port_open(&cfg, &p, err, sizeof err);
    if (r)
        fprintf(stderr, "open lo: %s\n", err);
    assert_int_equal(r, 0);
    return p;
}

/* Ethernet to and from 00:00:00:00:00:00 (lo takes anything), an experimental EtherType, then
 * len - 14 bytes of tag + i. */
static void frame_of(struct mqo_rawframe *f, uint8_t tag, uint32_t len)
{
    memset(f->data, 0, 12);
    f->data[12] = 0x88;
    f->data[13] = 0xb5;
    for (uint32_t i = 14; i < len; i++)
        f->data[i] = (uint8_t)(tag + i);
    f->len = len;
}

/* Receives what lo loops back: n frames, each checked against frame_of(tags[k], lens[k]). */
static void expect_back(struct mqo_port *p, const uint8_t *tags, const uint32_t *lens, int n)
{
    struct mqo_rawframe *v[64];
    int got = 0;
    for (int tries = 0; got < n && tries < 1000; tries++) {
        int r = mqo_port_rx_burst(p, v, 64);
        assert_true(r >= 0);
        for (int i = 0; i < r; i++, got++) {
            assert_true(got < n);
            assert_int_equal(v[i]->len, lens[got]);
            for (uint32_t b = 14; b < lens[got]; b++)
                if (v[i]->data[b] != (uint8_t)(tags[got] + b))
                    fail_msg("frame %d byte %u: %u, want %u", got, b, v[i]->data[b],
                             (uint8_t)(tags[got] + b));
            mqo_frame_free(v[i]);
        }
        if (got < n)
            usleep(1000);
    }
    assert_int_equal(got, n);
}

/* A short frame gets a small buffer, a longer one the port's full one; both travel whole. */
static void test_alloc_len(void **s)
{
    (void)s;
    if (own_netns()) {
        skip();
        return;
    }
    struct mqo_port *p = open_lo();
    uint32_t cap = mqo_port_info(p)->frame_cap;
    assert_int_equal(cap, MQO_FRAME_MAX);
    const uint32_t lens[] = {60, 140, 448, 449, 1514, MQO_FRAME_MAX};
    const uint8_t tags[] = {1, 2, 3, 4, 5, 6};
    struct mqo_rawframe *v[6];
    for (int k = 0; k < 6; k++) {
        v[k] = mqo_frame_alloc_len(p, lens[k]);
        assert_non_null(v[k]);
        assert_true(v[k]->cap >= lens[k]);
        if (lens[k] <= 448)
            assert_int_equal(v[k]->cap, 448); /* not a jumbo frame's buffer */
        else
            assert_int_equal(v[k]->cap, cap);
        frame_of(v[k], tags[k], lens[k]);
    }
    /* larger than any frame: the full buffer, as mqo_frame_alloc gives */
    struct mqo_rawframe *big = mqo_frame_alloc_len(p, UINT32_MAX);
    assert_non_null(big);
    assert_int_equal(big->cap, cap);
    mqo_frame_free(big);
    assert_int_equal(mqo_port_tx_burst(p, v, 6), 6);
    expect_back(p, tags, lens, 6);
    mqo_port_close(p);
}

/* Many short frames in flight at once, freed and taken again, mixed with full-size ones: every
 * frame keeps its own bytes (a buffer is never given to two frames). */
static void test_reuse(void **s)
{
    (void)s;
    if (own_netns()) {
        skip();
        return;
    }
    struct mqo_port *p = open_lo();
    enum { N = 48 };
    for (int round = 0; round < 4; round++) {
        struct mqo_rawframe *v[N];
        uint8_t tags[N];
        uint32_t lens[N];
        for (int k = 0; k < N; k++) {
            lens[k] = (k % 3 == 2) ? 1000 + (uint32_t)k : 64 + (uint32_t)k * 8;
            tags[k] = (uint8_t)(round * N + k);
            v[k] = (k % 5 == 4) ? mqo_frame_alloc(p) : mqo_frame_alloc_len(p, lens[k]);
            assert_non_null(v[k]);
            assert_true(v[k]->cap >= lens[k]);
        }
        /* every buffer distinct while all are held */
        for (int a = 0; a < N; a++)
            for (int b = a + 1; b < N; b++)
                assert_ptr_not_equal(v[a]->data, v[b]->data);
        for (int k = 0; k < N; k++)
            frame_of(v[k], tags[k], lens[k]);
        if (round % 2) { /* freed unsent: back to their pools */
            for (int k = 0; k < N; k++)
                mqo_frame_free(v[k]);
            continue;
        }
        assert_int_equal(mqo_port_tx_burst(p, v, N), N);
        expect_back(p, tags, lens, N);
    }
    mqo_port_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_len),
        cmocka_unit_test(test_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
