/* tcp/splice under load and against peers that are slow or gone: an output path that refuses
 * frames (a busy port) must delay the splice's output, never lose or reorder it; a receiver
 * is given up only as Linux gives up (tcp_retries2), never while it answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mqtt/mqtt.h"

#define MS 1000000ull
#define NS 1000000000ull

static struct harness *mk(void)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, NULL, H_SPLICE);
    assert_non_null(h->splice);
    return h;
}

static void done(struct harness *h)
{
    for (int i = 0; i < H_MAX_CLIENTS; i++) {
        struct h_client *cl = &h->cl[i];
        if (!cl->used || !cl->cep)
            continue;
        if (cl->cep->violations || cl->bep->violations)
            fail_msg("client %d: violations %llu/%llu", i,
                     (unsigned long long)cl->cep->violations,
                     (unsigned long long)cl->bep->violations);
    }
    h_free(h);
    free(h);
}

/* Publisher 0 and n subscribers on filter f at QoS q, with receive windows of wnd bytes (0:
 * the model's default); no MQTT keep-alive (the tests run long stretches of simulated time). */
static void setup_wnd(struct harness *h, int n, const char *f, uint8_t q, uint32_t wnd)
{
    assert_int_equal(h_open(h), 0);
    assert_true(h_connect(h, 0, MQO_MQTT_V311, "pub", 1, 0));
    for (int i = 1; i <= n; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "sub%d", i);
        assert_int_equal(h_open(h), i);
        if (wnd) /* from the start: a window that shrinks is no TCP's */
            h->cl[i].cep->rcv_wnd = wnd;
        assert_true(h_connect(h, i, MQO_MQTT_V311, cid, 1, 0));
        assert_int_equal(h_subscribe(h, i, f, q, 0), q);
    }
}

static void setup(struct harness *h, int n, const char *f, uint8_t q) { setup_wnd(h, n, f, q, 0); }

#define PAD 120 /* payload bytes: "m<k>" then padding */

/* Subscriber i got exactly msgs PUBLISHes on topic t, payloads "m<k>..." in order. */
static void check_in_order(const struct harness *h, int i, const char *t, int msgs)
{
    assert_int_equal(h_count_pub(h, i, t), msgs);
    for (int k = 0; k < msgs; k++) {
        char want[16];
        int n = snprintf(want, sizeof want, "m%d.", k);
        const struct h_rx *rx = h_pub(h, i, (size_t)k);
        assert_non_null(rx);
        assert_int_equal(rx->plen, PAD);
        assert_memory_equal(rx->payload, want, (size_t)n);
    }
}

/* Lets simulated time pass, seconds at a time, with only the TCP endpoints, the wire and the
 * splice at work (h_advance's MQTT-level rounds may move the clock further than asked). */
static void idle(struct harness *h, unsigned seconds)
{
    for (unsigned k = 0; k < seconds; k++)
        ts_net_advance(&h->net, NS);
    h->now = h->net.now;
    if (getenv("LOAD_DEBUG")) {
        const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
        fprintf(stderr, "t=%llu s: rto %llu probes %llu give-ups %llu/%llu resets %llu\n",
                (unsigned long long)(h->now / NS), (unsigned long long)st->rto_expired,
                (unsigned long long)st->zero_window_probes, (unsigned long long)st->rto_give_ups,
                (unsigned long long)st->probe_give_ups, (unsigned long long)st->resets);
    }
}

static void publish_msgs(struct harness *h, const char *t, int msgs, uint8_t q)
{
    for (int k = 0; k < msgs; k++) {
        char p[PAD + 1];
        int n = snprintf(p, sizeof p, "m%d.", k);
        memset(p + n, 'x', (size_t)(PAD - n));
        p[PAD] = 0;
        h_publish(h, 0, t, p, q, 0);
    }
}

/* A fan-out far larger than what the output takes at once (4 frames per millisecond, the
 * rest refused): everything arrives, once, in order, nothing is reset, and the refusals were
 * many. Also over a lossy wire, QoS 0 and QoS 1. */
static void busy_output(unsigned loss, uint8_t q)
{
    struct harness *h = mk();
    int n = 150, msgs = 12;
    setup(h, n, "load/#", q);
    h->net.tx_cap = 4;
    h->net.tx_period_ns = 1 * MS;
    for (int k = 0; k < 2; k++)
        h->net.wire.loss_pct[k] = loss;
    publish_msgs(h, "load/x", msgs, q);
    h_run(h);
    h_advance(h, 30000);
    h_run(h);
    for (int i = 1; i <= n; i++)
        check_in_order(h, i, "load/x", msgs);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->resets, 0);
    assert_true(st->emit_refused > (uint64_t)n);
    assert_true(h->net.tx_refused == st->emit_refused);
    assert_int_equal(h_stats(h)->dropped_qos0, 0);
    done(h);
}

/* A fan-out far larger than what the output takes at once holds transit state (struct hcold,
 * the output's copy) only for the subscribers whose frames are out and not acknowledged yet,
 * not for all of them from the publish on (docs/ARCHITECTURE.md, "Memory per connection"),
 * and gives it back at their ACKs, without waiting for the idle walk. QoS 0 and QoS 1, three
 * fan-outs one after the other. (A second delivery that comes while a subscriber's first one
 * still waits is written at once, as before: only one waits unwritten.) */
static void fanout_transit_bounded(uint8_t q)
{
    struct harness *h = mk();
    int n = 150, msgs = 3;
    setup(h, n, "b/#", q);
    idle(h, 2);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->flight_states, 0);
    h->net.tx_cap = 4;
    h->net.tx_period_ns = 1 * MS;
    struct h_flight_peak p;
    h_flight_peak_start(h, &p);
    for (int k = 0; k < msgs; k++) {
        char pl[PAD + 1];
        int len = snprintf(pl, sizeof pl, "m%d.", k);
        memset(pl + len, 'x', (size_t)(PAD - len));
        pl[PAD] = 0;
        p.max = 0;
        h_publish(h, 0, "b/x", pl, q, 0);
        h_run(h);
        /* 4 frames a millisecond, acknowledged after a 200 us round trip: a handful of
         * subscribers at a time */
        assert_true(p.max >= 1);
        assert_true(p.max <= 8);
        assert_int_equal(st->flight_states, 0); /* the idle walk has not run */
    }
    for (int i = 1; i <= n; i++)
        check_in_order(h, i, "b/x", msgs);
    assert_int_equal(st->resets, 0);
    h_flight_peak_stop(h, &p);
    done(h);
}

static void test_fanout_transit_bounded_qos0(void **s) { fanout_transit_bounded(0); }
static void test_fanout_transit_bounded_qos1(void **s) { fanout_transit_bounded(1); }

static void test_busy_output_qos0(void **s) { busy_output(0, 0); }
static void test_busy_output_qos1(void **s) { busy_output(0, 1); }
static void test_busy_output_lossy(void **s) { busy_output(2, 1); }

/* Frames refused by a busy output are not in flight: however long they wait, no
 * retransmission timer runs for them. */
static void test_waiting_is_not_a_timeout(void **s)
{
    struct harness *h = mk();
    setup(h, 40, "w/#", 0);
    /* one frame every 20 ms: the last subscriber's delivery waits 800 ms, four RTO_MINs */
    h->net.tx_cap = 1;
    h->net.tx_period_ns = 20 * MS;
    publish_msgs(h, "w/x", 1, 0);
    h_run(h);
    for (int i = 1; i <= 40; i++)
        check_in_order(h, i, "w/x", 1);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->rto_expired, 0);
    assert_int_equal(st->retransmits, 0);
    done(h);
}

/* Drops every frame to and from the endpoints of client `gone` (a host that vanished). */
static int drop_gone(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *frame,
                     size_t len)
{
    const struct ts_ep *gone = arg;
    return ep == gone;
}

/* A subscriber that vanished is given up as Linux gives up (tcp_retries2 = 15: 924.6 s of
 * backed-off retransmissions), not earlier; the others keep their messages. */
static void test_gone_receiver_given_up_like_linux(void **s)
{
    assert_int_equal(mqo_splice_give_up_ns(15), 924600 * MS);
    assert_int_equal(mqo_splice_give_up_ns(3), 3000 * MS);
    struct harness *h = mk();
    setup(h, 3, "g/#", 0);
    h->net.wire.drop = drop_gone;
    h->net.wire.drop_arg = h->cl[2].cep;
    publish_msgs(h, "g/x", 3, 0);
    idle(h, 900);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->rto_give_ups, 0);
    assert_int_equal(st->resets, 0);
    assert_true(st->rto_expired >= 10);
    idle(h, 30);
    assert_int_equal(st->rto_give_ups, 1);
    assert_true(st->resets >= 1); /* a RST each way */
    h_run(h);
    check_in_order(h, 1, "g/x", 3);
    check_in_order(h, 3, "g/x", 3);
    /* the others are untouched, and still served */
    publish_msgs(h, "g/y", 2, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "g/y"), 2);
    assert_int_equal(h_count_pub(h, 3, "g/y"), 2);
    assert_false(h->cl[1].closed);
    done(h);
}

/* A subscriber that stops reading for half an hour keeps its window closed and answers every
 * probe (or retransmission beyond its window): it is never reset, and gets everything once it
 * reads again. When it vanishes with its window closed it is given up, as Linux does: after
 * RTO_MAX of silence when bytes were in flight beyond the window, else after 15 unanswered
 * backed-off probes. */
static void test_zero_window_alive_kept_gone_given_up(void **s)
{
    struct harness *h = mk();
    setup_wnd(h, 2, "z/#", 0, 1000);
    h->cl[1].hold_app = 1;
    h->cl[2].hold_app = 1;
    publish_msgs(h, "z/x", 100, 0);
    idle(h, 2);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    idle(h, 1800);
    assert_true(st->zero_window_probes + st->rto_expired >= 20);
    assert_int_equal(st->resets, 0);
    assert_int_equal(st->probe_give_ups + st->rto_give_ups, 0);
    h->cl[1].hold_app = 0;
    for (int k = 0; k < 100 && h_count_pub(h, 1, "z/x") < 100; k++) {
        h_run(h);
        idle(h, 10); /* a probe finds the window open */
    }
    check_in_order(h, 1, "z/x", 100);
    /* client 2 vanishes behind its closed window */
    h->net.wire.drop = drop_gone;
    h->net.wire.drop_arg = h->cl[2].cep;
    idle(h, 2000); /* 15 probes, 120 s apart once backed off */
    assert_int_equal(st->probe_give_ups + st->rto_give_ups, 1);
    assert_true(st->resets >= 1);
    assert_false(h->cl[1].closed);
    done(h);
}

/* After both directions closed, the connection lingers: a late empty segment is not answered,
 * and a RST (a closed socket answering a late ACK) ends the linger without an answer (two
 * ends answering each other's would never stop). */
static void test_linger_answers_no_rst(void **s)
{
    struct harness *h = mk();
    setup(h, 1, "l", 0);
    uint8_t b[64];
    h_send(h, 1, b, hb_simple(b, MQO_DISCONNECT));
    h_close(h, 1);
    h_run(h);
    assert_true(h->cl[1].bep->fin_rcvd);
    assert_true(h->cl[1].cep->fin_rcvd);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    uint64_t out = st->segs_out, tracked = st->conns_tracked;
    struct ts_ep *be = h->cl[1].bep;
    uint8_t f[128];
    /* an empty ACK from the broker's side, then its RST */
    size_t n = ts_build(be, f, be->isn + 1 + (uint32_t)be->snd_nxt, be->peer_isn + 1 +
                        (uint32_t)be->rcv_nxt, 0x10, NULL, 0, 0, 0);
    ts_inject(&h->net, be, f, n);
    h_run(h);
    assert_int_equal(st->segs_out, out);
    n = ts_build(be, f, be->isn + 1 + (uint32_t)be->snd_nxt, 0, 0x04, NULL, 0, 0, 0);
    ts_inject(&h->net, be, f, n);
    h_run(h);
    assert_int_equal(st->segs_out, out);
    assert_int_equal(st->conns_tracked, tracked - 1);
    done(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_output_qos0),
        cmocka_unit_test(test_fanout_transit_bounded_qos0),
        cmocka_unit_test(test_fanout_transit_bounded_qos1),
        cmocka_unit_test(test_busy_output_qos1),
        cmocka_unit_test(test_busy_output_lossy),
        cmocka_unit_test(test_waiting_is_not_a_timeout),
        cmocka_unit_test(test_gone_receiver_given_up_like_linux),
        cmocka_unit_test(test_zero_window_alive_kept_gone_given_up),
        cmocka_unit_test(test_linger_answers_no_rst),
    };
    return cmocka_run_group_tests_name("splice_load", tests, NULL, NULL);
}
