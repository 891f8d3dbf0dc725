/* pktio/dpdk through pktio.h, on DPDK's in-memory ring devices (net_ring: what a port sends
 * comes back on its own receive queue), no hugepages: frame ownership across
 * tx_burst, a full device, shared blocks and their release, the EAL's errors. Skipped when the
 * DPDK backend is not in the build.
 *
 * The EAL starts once per process and stops with the last port, and a closed device is gone
 * (DPDK releases it): each test has devices of its own, and one port stays open throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pktio/pktio.h"

/* a file prefix of this process's own (the backend removes its directory with the last port) */
static char EAL[300];

static struct mqo_port *open_port(const char *name, uint16_t index, unsigned flags)
{
    struct mqo_port_cfg c = {.ifname = name, .backend = MQO_PKTIO_DPDK, .eal = EAL,
                             .index = index, .flags = flags};
    struct mqo_port *p = NULL;
    char err[600];
    int r = mqo_port_open(&c, &p, err, sizeof err);
    if (r)
        fail_msg("%s: %s", name, err);
    return p;
}

static int puts_seen;
static void put(void *arg) { puts_seen += *(int *)arg; }

static void frame_of(struct mqo_rawframe *f, uint8_t tag, uint32_t len)
{
    memset(f->data, 0, 12);       /* broadcast-free, any MAC: the ring takes anything */
    f->data[12] = 0x88;           /* an experimental EtherType */
    f->data[13] = 0xb5;
    memset(f->data + 14, tag, len - 14);
    f->len = len;
}

/* A frame sent comes back whole, owned by the port it was received on; the port says what it
 * is (no descriptor: polled). */
static void test_round_trip(void **s)
{
    struct mqo_port *p = open_port("net_ring0", 7, 0);
    const struct mqo_port_info *in = mqo_port_info(p);
    assert_string_equal(in->backend, "dpdk");
    assert_true(in->caps & MQO_PORT_CAP_POLL);
    assert_false(in->caps & MQO_PORT_CAP_EXT); /* software device, not asked */
    assert_int_equal(mqo_port_fd(p), -1);
    assert_true(in->frame_cap >= 1514);
    struct mqo_rawframe *f = mqo_frame_alloc(p);
    assert_non_null(f);
    assert_true(f->cap >= in->frame_cap);
    frame_of(f, 0x5a, 300);
    assert_int_equal(mqo_port_tx_burst(p, &f, 1), 1);
    struct mqo_rawframe *v[4];
    assert_int_equal(mqo_port_rx_burst(p, v, 4), 1);
    assert_int_equal(v[0]->len, 300);
    assert_int_equal(v[0]->port, 7);
    assert_true(v[0]->ts_ns > 0);
    assert_int_equal(v[0]->data[299], 0x5a);
    assert_int_equal(mqo_frame_detach(v[0]), 0); /* nothing to do: an mbuf is its own */
    mqo_frame_free(v[0]);
    assert_int_equal(mqo_port_rx_burst(p, v, 4), 0);
    struct mqo_port_stats st;
    mqo_port_stats(p, &st);
    assert_int_equal(st.tx_frames, 1);
    assert_int_equal(st.rx_frames, 1);
    mqo_port_close(p);
}

/* A full device takes fewer than offered; the rest stay the caller's, intact, and go out
 * later in order. */
static void test_full_device_keeps_the_rest(void **s)
{
    struct mqo_port *p = open_port("net_ring1", 1, 0);
    enum { N = 64 };
    struct mqo_rawframe *v[N];
    uint64_t taken = 0;
    int short_burst = 0;
    for (int round = 0; round < 200 && !short_burst; round++) {
        for (int i = 0; i < N; i++) {
            v[i] = mqo_frame_alloc(p);
            assert_non_null(v[i]);
            frame_of(v[i], (uint8_t)i, 64);
        }
        int r = mqo_port_tx_burst(p, v, N);
        assert_true(r >= 0 && r <= N);
        taken += (uint64_t)r;
        if (r < N) {
            short_burst = 1;
            for (int i = r; i < N; i++) { /* ours still, unchanged */
                assert_int_equal(v[i]->len, 64);
                assert_int_equal(v[i]->data[20], (uint8_t)i);
                mqo_frame_free(v[i]);
            }
        }
    }
    assert_true(short_burst);
    uint64_t got = 0;
    struct mqo_rawframe *w[N];
    int n;
    while ((n = mqo_port_rx_burst(p, w, N)) > 0) {
        for (int i = 0; i < n; i++)
            mqo_frame_free(w[i]);
        got += (uint64_t)n;
    }
    assert_int_equal(got, taken);
    struct mqo_port_stats st;
    mqo_port_stats(p, &st);
    assert_true(st.tx_full >= 1);
    mqo_port_close(p);
}

/* Shared blocks: referenced where the port is asked to (a chained mbuf; the ring passes it on,
 * and the receive side refuses a frame in two pieces), copied elsewhere; the block's put runs
 * once, when the last holder is done, never before. */
static void test_shared_block(void **s)
{
    static uint8_t block[3000];
    memset(block, 0xab, sizeof block);
    int one = 1;
    struct mqo_frame_ext ext = {.p = block, .len = 1000, .put = put, .arg = &one};

    struct mqo_port *c = open_port("net_ring2", 0, 0); /* not asked: copied */
    struct mqo_rawframe *f = mqo_frame_alloc(c);
    frame_of(f, 1, 40);
    puts_seen = 0;
    assert_int_equal(mqo_frame_attach(f, &ext), 0);
    assert_int_equal(puts_seen, 1);
    assert_int_equal(f->len, 1040);
    assert_false(f->flags & MQO_FRAME_EXT);
    assert_int_equal(f->data[1039], 0xab);
    struct mqo_frame_ext big = ext;
    big.len = sizeof block;
    struct mqo_rawframe *g = mqo_frame_alloc(c);
    frame_of(g, 2, 40);
    assert_int_equal(mqo_frame_attach(g, &big), -EMSGSIZE); /* beyond the buffer */
    assert_int_equal(puts_seen, 1);
    mqo_frame_free(f);
    mqo_frame_free(g);
    mqo_port_close(c);

    struct mqo_port *r = open_port("net_ring3", 1, MQO_PORT_SHARE_SW);
    assert_true(mqo_port_info(r)->caps & MQO_PORT_CAP_EXT);
    puts_seen = 0;
    f = mqo_frame_alloc(r);
    frame_of(f, 3, 40);
    assert_int_equal(mqo_frame_attach(f, &ext), 0);
    assert_true(f->flags & MQO_FRAME_EXT);
    assert_int_equal(f->ext_len, 1000);
    assert_int_equal(f->len, 40);
    assert_int_equal(mqo_frame_attach(f, &ext), -EINVAL); /* one block a frame */
    mqo_frame_free(f); /* dropped unsent: released */
    assert_int_equal(puts_seen, 1);
    f = mqo_frame_alloc(r);
    frame_of(f, 4, 40);
    assert_int_equal(mqo_frame_attach(f, &ext), 0);
    assert_int_equal(mqo_port_tx_burst(r, &f, 1), 1);
    assert_int_equal(puts_seen, 1); /* in the device's ring: still held */
    struct mqo_rawframe *v[2];
    assert_int_equal(mqo_port_rx_burst(r, v, 2), 0); /* two pieces: refused */
    assert_int_equal(puts_seen, 2);
    struct mqo_port_stats st;
    mqo_port_stats(r, &st);
    assert_int_equal(st.ext_frames, 1);
    assert_int_equal(st.tx_bytes, 1040);
    assert_int_equal(st.rx_truncated, 1);
    mqo_port_close(r);
}

/* Appending: into the frame's own buffer while it has room; beyond it only a TSO frame on a
 * port that segments TCP (a ring device does not): refused, the frame unchanged. */
static void test_append(void **s)
{
    struct mqo_port *p = open_port("net_ring6", 0, 0);
    assert_false(mqo_port_info(p)->caps & MQO_PORT_CAP_TSO);
    struct mqo_rawframe *f = mqo_frame_alloc(p);
    frame_of(f, 9, 60);
    static uint8_t more[12000];
    memset(more, 0x77, sizeof more);
    assert_int_equal(mqo_frame_append(f, more, 100), 0);
    assert_int_equal(f->len, 160);
    assert_int_equal(f->data[159], 0x77);
    assert_int_equal(mqo_frame_append(f, more, f->cap), -EMSGSIZE);
    f->flags |= MQO_FRAME_TSO;
    f->seg_size = 1000;
    assert_int_equal(mqo_frame_append(f, more, sizeof more), -EMSGSIZE);
    assert_int_equal(f->len, 160);
    assert_int_equal(f->ext_len, 0);
    assert_false(f->flags & MQO_FRAME_CHAIN);
    mqo_frame_free(f);
    mqo_port_close(p);
}

/* Ports by id, unknown ones named with the list; the ports of a process share one EAL. */
static void test_errors(void **s)
{
    char err[600];
    struct mqo_port *p = NULL;
    struct mqo_port_cfg c = {.ifname = "net_nosuch", .backend = MQO_PKTIO_DPDK, .eal = EAL};
    assert_int_equal(mqo_port_open(&c, &p, err, sizeof err), -ENODEV);
    assert_non_null(strstr(err, "DPDK port 'net_nosuch' does not exist"));
    assert_non_null(strstr(err, "4 net_ring4"));
    p = open_port("4", 0, 0); /* by id */
    assert_string_equal(mqo_port_info(p)->name, "4");
    assert_non_null(strstr(mqo_port_info(p)->detail, "net_ring"));
    c.ifname = "net_ring1";
    c.eal = "--no-huge";
    struct mqo_port *q = NULL;
    assert_true(mqo_port_open(&c, &q, err, sizeof err) < 0);
    assert_non_null(strstr(err, "share one --eal"));
    mqo_port_close(p);
}

/* EAL arguments DPDK refuses: one line saying so (run in a child before this process starts
 * its EAL, which it does once). */
static int refused_ok = -1;
static char refused_err[600];

static void test_eal_refused(void **s)
{
    if (refused_ok != 1)
        fail_msg("the child said: %s", refused_err);
}

static void check_refused(void)
{
    int fd[2];
    if (pipe(fd))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        struct mqo_port_cfg b = {.ifname = "0", .backend = MQO_PKTIO_DPDK,
                                 .eal = "--bogus-option --no-huge"};
        struct mqo_port *p = NULL;
        char err[600] = "";
        int r = mqo_port_open(&b, &p, err, sizeof err);
        if (r >= 0)
            snprintf(err, sizeof err, "opened");
        (void)!write(fd[1], err, strlen(err));
        _exit(r < 0 && strstr(err, "refused") && strstr(err, "bogus-option") &&
                      !strchr(err, '\n')
                  ? 0
                  : 1);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], refused_err, sizeof refused_err - 1);
    refused_err[n > 0 ? n : 0] = 0;
    close(fd[0]);
    int st;
    refused_ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st);
}

static struct mqo_port *keeper;
static int setup(void **s)
{
    keeper = open_port("net_ring5", 5, 0);
    return 0;
}
static int teardown(void **s)
{
    mqo_port_close(keeper);
    return 0;
}

int main(void)
{
    if (!mqo_pktio_backend_built(MQO_PKTIO_DPDK)) {
        printf("[  SKIPPED ] the DPDK backend is not in this build\n");
        return 0;
    }
    snprintf(EAL, sizeof EAL,
             "--no-huge --no-pci --no-telemetry -m 128 --file-prefix mqoutest%d --vdev=net_ring0 "
             "--vdev=net_ring1 --vdev=net_ring2 --vdev=net_ring3 --vdev=net_ring4 "
             "--vdev=net_ring5 --vdev=net_ring6", (int)getpid());
    check_refused();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eal_refused),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_full_device_keeps_the_rest),
        cmocka_unit_test(test_shared_block),
        cmocka_unit_test(test_append),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
