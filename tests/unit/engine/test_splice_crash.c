/* tcp/splice and tcp/ctab: a monitor that dies (kill -9) at any instruction, and its successor
 * resuming from the shared table. The splice runs over the TCP wire model, with a publisher
 * and subscribers, on a lossy wire; at a random point it is dropped without a word (what it
 * had not emitted is lost), the table is read back as the next process reads it, and a fresh
 * splice resumes the quiescent connections (mqo_splice_resume). The others are taken as reset
 * (their frames are dropped from then on). A resumed connection must go on exactly: no byte
 * lost, duplicated or reordered either way (the TCP endpoints check every segment), nothing
 * the endpoints would drop (PAWS), no reset, and its subscriber gets every message once and in
 * order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "harness.h"
#include "mqtt/mqtt.h"
#include "tcp/ctab.h"

#define MS 1000000ull
#define NS 1000000000ull
#define NSUB 5

static struct mqo_ctab *g_tab;
static char g_path[64];
/* endpoints whose connection was not resumed: their frames are dropped */
static const struct ts_ep *g_gone[2 * (NSUB + 1)];
static int g_ngone;
static int g_held; /* connections resumed with output bytes to send again */

static struct mqo_ctab_ent *trk(void *ud, const struct mqo_ctab_ent *e, int up)
{
    if (!g_tab)
        return NULL;
    if (!up) {
        mqo_ctab_del(g_tab, e->cip, e->cport);
        return NULL;
    }
    if (mqo_ctab_put(g_tab, e))
        return NULL;
    return mqo_ctab_get(g_tab, e->cip, e->cport);
}

static int drop_gone(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *frame,
                     size_t len)
{
    for (int i = 0; i < g_ngone; i++)
        if (g_gone[i] == ep)
            return 1;
    return 0;
}

/* The process dies at its g_crash_at-th emitted frame: the table is copied as it is then
 * (what the next process finds), and nothing the splice emits from then on leaves. */
static uint64_t g_emits, g_crash_at;
static int g_dead;
static uint8_t *g_snap;
static size_t g_snap_len;

static void snapshot(void)
{
    FILE *f = fopen(g_path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    g_snap_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    g_snap = malloc(g_snap_len);
    assert_int_equal(fread(g_snap, 1, g_snap_len, f), g_snap_len);
    fclose(f);
}

static int crash_emit(void *ud, int to_side, const uint8_t *frame, size_t len, unsigned flags)
{
    if (!g_dead && g_crash_at && ++g_emits == g_crash_at) {
        snapshot();
        g_dead = 1;
    }
    if (g_dead)
        return (flags & MQO_SPLICE_EMIT_KEPT) ? -1 : 0;
    return ts_emit(ud, to_side, frame, len, flags);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define PAD 40

static void publish(struct harness *h, int k, uint8_t q)
{
    char p[PAD + 1];
    int n = snprintf(p, sizeof p, "m%d.", k);
    memset(p + n, 'x', (size_t)(PAD - n));
    p[PAD] = 0;
    h_publish(h, 0, "c/x", p, q, 0);
}

/* The messages subscriber i got: m0, m1, ... each once, in order. Returns how many. */
static int consecutive(const struct harness *h, int i)
{
    int n = (int)h_count_pub(h, i, "c/x");
    for (int k = 0; k < n; k++) {
        char want[16];
        int w = snprintf(want, sizeof want, "m%d.", k);
        const struct h_rx *rx = h_pub(h, i, (size_t)k);
        if (!rx || rx->plen != PAD || memcmp(rx->payload, want, (size_t)w) != 0)
            fail_msg("subscriber %d: message %d is not m%d (lost, duplicated or reordered)", i,
                     k, k);
    }
    return n;
}

/* The process dies: its table stays as it was (the file), its splice is dropped without
 * emitting anything, and a new one starts on the table. Returns the connections resumed;
 * resumed[i] tells which clients'. */
static int crash_and_resume(struct harness *h, int resumed[NSUB + 1], int *reset)
{
    mqo_ctab_close(g_tab); /* the entries stay: a crash */
    g_tab = NULL;
    if (!g_dead) /* it dies now */
        snapshot();
    FILE *f = fopen(g_path, "wb"); /* the table as it was when the process died */
    assert_non_null(f);
    assert_int_equal(fwrite(g_snap, 1, g_snap_len, f), g_snap_len);
    fclose(f);
    free(g_snap);
    g_snap = NULL;
    g_dead = 0;
    g_crash_at = 0;
    h->scfg.emit = ts_emit;
    enum mqo_log_level lvl = mqo_log_get_level();
    mqo_log_set_level(MQO_LOG_ERROR);
    mqo_splice_free(h->splice);
    struct mqo_splice *ns = mqo_splice_new(&h->scfg);
    assert_non_null(ns);
    h->splice = ns;
    h->net.splice = ns;
    size_t stale = 0;
    g_tab = mqo_ctab_open(g_path, 64, h->scfg.broker_ip, h->scfg.broker_port, &stale);
    assert_non_null(g_tab);
    assert_int_equal(mqo_ctab_old_version(g_tab), 0);
    struct mqo_ctab_ent *v;
    size_t n;
    assert_int_equal(mqo_ctab_take_stale(g_tab, &v, &n), 0);
    assert_int_equal(n, stale);
    int nr = 0;
    for (size_t k = 0; k < n; k++) {
        int i;
        for (i = 0; i <= NSUB; i++)
            if (h->cl[i].cep->port == v[k].cport)
                break;
        assert_true(i <= NSUB);
        if (mqo_ctab_resumable(&v[k])) {
            assert_int_equal(mqo_splice_resume(ns, &v[k], h->net.now), 0);
            g_held += v[k].held_len[0] || v[k].held_len[1];
            resumed[i] = 1;
            nr++;
        } else {
            /* what the monitor resets: gone for this test */
            assert_int_not_equal(v[k].quiescent, MQO_CTAB_QUIET);
            g_gone[g_ngone++] = h->cl[i].cep;
            g_gone[g_ngone++] = h->cl[i].bep;
            (*reset)++;
        }
    }
    free(v);
    mqo_log_set_level(lvl);
    return nr;
}

/* One run: seed picks the QoS and the crash point. Adds to *nres and *nreset. */
static void one_run(uint64_t seed, int *nres, int *nreset, int *pub_resumed)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, NULL, H_SPLICE);
    /* the splice again, with the table */
    mqo_splice_free(h->splice);
    h->scfg.track = trk;
    h->scfg.emit = crash_emit;
    g_emits = 0;
    g_crash_at = 0;
    g_dead = 0;
    h->splice = mqo_splice_new(&h->scfg);
    h->net.splice = h->splice;
    size_t stale;
    unlink(g_path);
    g_tab = mqo_ctab_open(g_path, 64, h->scfg.broker_ip, h->scfg.broker_port, &stale);
    assert_non_null(g_tab);
    g_ngone = 0;
    h->net.wire.drop = drop_gone;
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
    uint8_t q = (uint8_t)(seed & 1);
    assert_int_equal(h_open(h), 0);
    assert_true(h_connect(h, 0, MQO_MQTT_V311, "pub", 1, 0));
    for (int i = 1; i <= NSUB; i++) {
        char cid[16];
        snprintf(cid, sizeof cid, "sub%d", i);
        assert_int_equal(h_open(h), i);
        assert_true(h_connect(h, i, i & 1 ? MQO_MQTT_V311 : MQO_MQTT_V5, cid, 1, 0));
        assert_int_equal(h_subscribe(h, i, "c/#", q, 0), q);
    }
    h_run(h);
    for (int d = 0; d < 2; d++)
        h->net.wire.loss_pct[d] = 3;
    int m1 = 20 + (int)(rnd(&r) % 20), at = (int)(rnd(&r) % (uint64_t)m1), k = 0;
    int resumed[NSUB + 1] = {0};
    /* half the runs die at a frame (inside the splice's work), the others between two events */
    if (seed & 2)
        g_crash_at = g_emits + 1 + rnd(&r) % 300;
    for (; k < m1; k++) {
        publish(h, k, q);
        if (rnd(&r) % 3 == 0)
            h_run(h); /* everything settles: quiescent */
        else
            ts_net_run(&h->net, rnd(&r) % (3 * MS)); /* in the middle of it */
        if (k == at || g_dead) {
            ts_net_run(&h->net, rnd(&r) % (2 * MS));
            *nres += crash_and_resume(h, resumed, nreset);
            k++;
            break;
        }
    }
    /* the resumed ones go on: the rest of the messages, through the broker now */
    for (; k < m1 + 10; k++)
        publish(h, k, q);
    h_run(h);
    h_advance(h, 5000);
    h_run(h);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->conns_resumed, (uint64_t)(resumed[0] + resumed[1] + resumed[2] +
                                                   resumed[3] + resumed[4] + resumed[5]));
    assert_int_equal(st->resets, 0);
    for (int i = 0; i <= NSUB; i++) {
        if (!resumed[i])
            continue;
        struct h_client *cl = &h->cl[i];
        /* a PUBACK only for a delivery of the broker's: none of the dead offload's was owed */
        assert_int_equal(cl->b_stray_acks, 0);
        if (cl->cep->violations || cl->bep->violations || cl->cep->paws_drops ||
            cl->bep->paws_drops || cl->cep->rst_rcvd || cl->bep->rst_rcvd || cl->closed)
            fail_msg("seed %llu client %d: violations %llu/%llu paws %llu/%llu rst %d/%d "
                     "closed %d", (unsigned long long)seed, i,
                     (unsigned long long)cl->cep->violations,
                     (unsigned long long)cl->bep->violations,
                     (unsigned long long)cl->cep->paws_drops,
                     (unsigned long long)cl->bep->paws_drops, cl->cep->rst_rcvd,
                     cl->bep->rst_rcvd, cl->closed);
        if (i == 0) {
            /* QoS 1: every PUBLISH acknowledged once, in order (by the offload before the
             * crash, by the broker after it) */
            int n = 0, last = -1;
            for (size_t j = 0; q && j < cl->n_rx; j++) {
                if (cl->rx[j].type != MQO_PUBACK)
                    continue;
                if ((int)cl->rx[j].pid <= last)
                    fail_msg("seed %llu: PUBACK %u after %d", (unsigned long long)seed,
                             cl->rx[j].pid, last);
                last = cl->rx[j].pid;
                n++;
            }
            if (q && n != m1 + 10)
                fail_msg("seed %llu: %d PUBACKs for %d PUBLISHes", (unsigned long long)seed, n,
                         m1 + 10);
            continue;
        }
        int got = consecutive(h, i);
        /* the publisher resumed: nothing it sent is lost, for anyone resumed */
        if (resumed[0] && got != m1 + 10)
            fail_msg("seed %llu subscriber %d: %d of %d messages", (unsigned long long)seed, i,
                     got, m1 + 10);
    }
    *pub_resumed += resumed[0];
    /* the resumed connections are the engine's unknown ones (all PUBLISH to the broker) */
    assert_true(h_stats(h)->unknown_conns <= 6);
    mqo_ctab_close(g_tab);
    g_tab = NULL;
    unlink(g_path);
    h_free(h);
    free(h);
}

static void test_crash_anywhere(void **s)
{
    snprintf(g_path, sizeof g_path, "/tmp/mqoff-crash-test.%d", (int)getpid());
    int nres = 0, nreset = 0, pubres = 0;
    unsigned runs = getenv("CRASH_RUNS") ? (unsigned)atoi(getenv("CRASH_RUNS")) : 40;
    for (unsigned seed = 1; seed <= runs; seed++)
        one_run(seed, &nres, &nreset, &pubres);
    if (getenv("CRASH_DEBUG"))
        fprintf(stderr, "resumed %d (%d with bytes to send again), reset %d, publisher resumed "
                "in %d runs\n", nres, g_held, nreset, pubres);
    /* both ways were taken, and the publisher resumed in some runs */
    assert_true(nres > 0);
    assert_true(nreset > 0);
    assert_true(pubres > 0);
    assert_true(g_held > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_anywhere),
    };
    return cmocka_run_group_tests_name("splice_crash", tests, NULL, NULL);
}
