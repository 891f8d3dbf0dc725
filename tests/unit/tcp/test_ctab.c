/* tcp/ctab.c: the spliced connections' table in shared memory and the reset of a dead
 * splice's connections. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcp/ctab.h"

#define BIP 0x020012c6u /* 198.18.0.2, network order on little-endian */

static char path[64];

static int setup(void **s)
{
    snprintf(path, sizeof path, "/tmp/mqoff-ctab-test.%d", (int)getpid());
    unlink(path);
    return 0;
}
static int teardown(void **s)
{
    unlink(path);
    return 0;
}

static struct mqo_ctab_ent ent(uint16_t port)
{
    struct mqo_ctab_ent e = {.cip = 0x010012c6u, .cport = port, .isn = {1000u + port, 5000u}};
    for (int side = 0; side < 2; side++) {
        memset(e.eth[side], side ? 0xbb : 0xaa, 12);
        e.ttl[side] = 64;
    }
    return e;
}

/* Entries survive the process (the file), stale ones are handed out once, deletions with
 * collisions keep every other entry findable, and one process at a time holds the table. */
static void test_table(void **s)
{
    size_t stale = 9;
    struct mqo_ctab *t = mqo_ctab_open(path, 8, BIP, 1883, &stale);
    assert_non_null(t);
    assert_int_equal(stale, 0);
    size_t again;
    assert_null(mqo_ctab_open(path, 8, BIP, 1883, &again));
    assert_int_equal(errno, EBUSY);
    for (uint16_t p = 40000; p < 40012; p++) {
        struct mqo_ctab_ent e = ent(p);
        assert_int_equal(mqo_ctab_put(t, &e), 0);
    }
    struct mqo_ctab_ent x = ent(40099);
    assert_int_equal(mqo_ctab_put(t, &x), -ENOSPC); /* 8 + 8/2 slots */
    for (uint16_t p = 40000; p < 40012; p += 2)
        mqo_ctab_del(t, 0x010012c6u, p);
    assert_int_equal(mqo_ctab_count(t), 6);
    mqo_ctab_close(t); /* as a crash would leave it */

    t = mqo_ctab_open(path, 8, BIP, 1883, &stale);
    assert_non_null(t);
    assert_int_equal(stale, 6);
    struct mqo_ctab_ent *v;
    size_t n;
    assert_int_equal(mqo_ctab_take_stale(t, &v, &n), 0);
    assert_int_equal(n, 6);
    int seen[12] = {0};
    for (size_t i = 0; i < n; i++) {
        assert_true(v[i].cport >= 40000 && v[i].cport < 40012 && v[i].cport % 2 == 1);
        assert_int_equal(v[i].isn[0], 1000u + v[i].cport);
        seen[v[i].cport - 40000]++;
    }
    for (int i = 1; i < 12; i += 2)
        assert_int_equal(seen[i], 1);
    free(v);
    assert_int_equal(mqo_ctab_count(t), 0);
    mqo_ctab_close(t);
    /* another broker: the table's entries are not its own, it starts empty */
    t = mqo_ctab_open(path, 8, BIP + 1, 1883, &stale);
    assert_non_null(t);
    assert_int_equal(stale, 0);
    mqo_ctab_close(t);
}

/* Slots stay where they are while their connection lives (the splice writes its resume point
 * through the pointer), a resume point survives the process, a quiescent entry with sane fields
 * is resumable and one not quiescent or insane is not, and a table of another format version
 * is started afresh and says so. */
static void test_resume_point(void **s)
{
    size_t stale;
    struct mqo_ctab *t = mqo_ctab_open(path, 8, BIP, 1883, &stale);
    assert_non_null(t);
    struct mqo_ctab_ent e = ent(40001);
    e.mss[0] = e.mss[1] = 1448;
    e.wscale[0] = e.wscale[1] = 7;
    assert_int_equal(mqo_ctab_put(t, &e), 0);
    struct mqo_ctab_ent *x = mqo_ctab_get(t, e.cip, 40001);
    assert_non_null(x);
    for (uint16_t p = 40002; p < 40008; p++) { /* others come and go around it */
        struct mqo_ctab_ent o = ent(p);
        assert_int_equal(mqo_ctab_put(t, &o), 0);
        if (p & 1)
            mqo_ctab_del(t, o.cip, p);
    }
    assert_ptr_equal(mqo_ctab_get(t, e.cip, 40001), x);
    assert_null(mqo_ctab_get(t, e.cip, 40003));
    x->in_off[0] = 10;
    x->out_off[0] = 12;
    x->in_off[1] = 300;
    x->out_off[1] = 290;
    x->quiescent = MQO_CTAB_QUIET;
    mqo_ctab_close(t);
    t = mqo_ctab_open(path, 8, BIP, 1883, &stale);
    assert_non_null(t);
    assert_int_equal(mqo_ctab_old_version(t), 0);
    struct mqo_ctab_ent *v;
    size_t n;
    assert_int_equal(mqo_ctab_take_stale(t, &v, &n), 0);
    assert_int_equal(n, 4); /* 40001, 40002, 40004, 40006 */
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].cport != 40001) {
            assert_false(mqo_ctab_resumable(&v[i])); /* never quiescent */
            continue;
        }
        seen = 1;
        assert_true(mqo_ctab_resumable(&v[i]));
        assert_int_equal(v[i].out_off[1], 290);
        struct mqo_ctab_ent b = v[i];
        b.wscale[1] = 15;
        assert_false(mqo_ctab_resumable(&b));
        b = v[i];
        b.mss[0] = 0;
        assert_false(mqo_ctab_resumable(&b));
        b = v[i];
        b.held_len[1] = MQO_CTAB_HELD_MAX + 1;
        assert_false(mqo_ctab_resumable(&b));
        b = v[i];
        b.quiescent = 1;
        assert_false(mqo_ctab_resumable(&b));
    }
    assert_true(seen);
    free(v);
    mqo_ctab_close(t);
    /* a table of format version 1: started afresh, said */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    uint32_t one = 1;
    assert_int_equal(fseek(f, 8, SEEK_SET), 0);
    assert_int_equal(fwrite(&one, 4, 1, f), 1);
    fclose(f);
    t = mqo_ctab_open(path, 8, BIP, 1883, &stale);
    assert_non_null(t);
    assert_int_equal(mqo_ctab_old_version(t), 1);
    assert_int_equal(stale, 0);
    mqo_ctab_close(t);
    t = mqo_ctab_open(path, 8, BIP, 1883, &stale);
    assert_int_equal(mqo_ctab_old_version(t), 0);
    mqo_ctab_close(t);
}

struct sent {
    int to;
    uint8_t f[64];
    size_t len;
};
static struct sent out[64];
static size_t n_out;
static int rec_send(void *arg, int to, const uint8_t *f, size_t len)
{
    assert_true(n_out < 64 && len <= 64);
    out[n_out].to = to;
    memcpy(out[n_out].f, f, len);
    out[n_out].len = len;
    n_out++;
    return 0;
}
static uint32_t r32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

/* The Internet checksum over the IPv4 header, and over the TCP pseudo header and segment, of a
 * built frame are right (they sum to 0xffff). */
static void check_sums(const uint8_t *f)
{
    uint32_t s = 0;
    for (int i = 0; i < 20; i += 2)
        s += (uint32_t)(f[14 + i] << 8 | f[15 + i]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    assert_int_equal(s, 0xffff);
    s = 0;
    for (int i = 0; i < 8; i += 2)
        s += (uint32_t)(f[26 + i] << 8 | f[27 + i]);
    s += 6 + 20;
    for (int i = 0; i < 20; i += 2)
        s += (uint32_t)(f[34 + i] << 8 | f[35 + i]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    assert_int_equal(s, 0xffff);
}

/* Probes go to both ends at their own initial sequence number; an end's answer (an ACK naming
 * its next byte) gets a RST at exactly that number; unrelated frames are not taken; an end
 * that never answers is given up after 5 s. */
static void test_reset(void **s)
{
    struct mqo_ctab_ent v[2] = {ent(40001), ent(40002)};
    struct mqo_ctab_reset *r = mqo_ctab_reset_new(v, 2, BIP, 1883);
    assert_non_null(r);
    n_out = 0;
    assert_int_equal(mqo_ctab_reset_tick(r, 1000000000ull, rec_send, NULL), 2);
    assert_int_equal(n_out, 4); /* two ends of two connections */
    for (size_t i = 0; i < n_out; i++) {
        check_sums(out[i].f);
        const uint8_t *tcp = out[i].f + 34;
        assert_int_equal(tcp[13], 0x10); /* ACK */
        uint16_t cport = out[i].to == 0 ? (uint16_t)(tcp[2] << 8 | tcp[3])
                                          : (uint16_t)(tcp[0] << 8 | tcp[1]);
        /* toward the client: the broker's ISN; toward the broker: the client's */
        assert_int_equal(r32(tcp + 4), out[i].to == 0 ? 5000u : 1000u + cport);
    }
    /* the client of 40001 answers: ack 777777 is its next expected byte */
    uint8_t f[64];
    uint8_t eth[14] = {0};
    mqo_ctab_frame(f, eth, 64, 0, 0x010012c6u, BIP, 40001, 1883, 123, 777777, 0x10, 100);
    n_out = 0;
    assert_int_equal(mqo_ctab_reset_frame(r, 0, f, 54, rec_send, NULL), 1);
    assert_int_equal(n_out, 1);
    assert_int_equal(out[0].to, 0);
    assert_int_equal(out[0].f[34 + 13] & 0x04, 0x04); /* RST */
    assert_int_equal(r32(out[0].f + 34 + 4), 777777u);
    check_sums(out[0].f);
    /* its broker side answers too: both ends reset */
    mqo_ctab_frame(f, eth, 64, 0, BIP, 0x010012c6u, 1883, 40001, 9, 4242, 0x18, 100);
    n_out = 0;
    assert_int_equal(mqo_ctab_reset_frame(r, 1, f, 54, rec_send, NULL), 1);
    assert_int_equal(n_out, 1);
    assert_int_equal(out[0].to, 1);
    assert_int_equal(r32(out[0].f + 34 + 4), 4242u);
    /* another connection's frame, and a SYN on the same ports: not taken */
    mqo_ctab_frame(f, eth, 64, 0, 0x010012c6u, BIP, 40007, 1883, 1, 1, 0x10, 100);
    assert_int_equal(mqo_ctab_reset_frame(r, 0, f, 54, rec_send, NULL), 0);
    mqo_ctab_frame(f, eth, 64, 0, 0x010012c6u, BIP, 40002, 1883, 1, 0, 0x02, 100);
    assert_int_equal(mqo_ctab_reset_frame(r, 0, f, 54, rec_send, NULL), 0);
    /* 40002 never answers: probed again, then given up */
    n_out = 0;
    assert_int_equal(mqo_ctab_reset_tick(r, 1300000000ull, rec_send, NULL), 1);
    assert_int_equal(n_out, 2);
    assert_int_equal(mqo_ctab_reset_tick(r, 6100000000ull, rec_send, NULL), 0);
    size_t done, gave_up;
    mqo_ctab_reset_counts(r, &done, &gave_up);
    assert_int_equal(done, 1);
    assert_int_equal(gave_up, 1);
    mqo_ctab_reset_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test(test_reset),
        cmocka_unit_test_setup_teardown(test_resume_point, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
