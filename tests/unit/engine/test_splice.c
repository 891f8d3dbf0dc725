/* tcp/splice (monitor mode) end to end in memory: TCP endpoints <-> wire model <-> splice
 * (with the engine inside) <-> wire <-> TCP endpoints <-> reference broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "harness.h"
#include "mqtt/mqtt.h"

static struct harness *mk(const struct mqo_engine_cfg *cfg)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, cfg, H_SPLICE);
    assert_non_null(h->splice);
    return h;
}

static void no_violations(const struct harness *h)
{
    char why[160];
    if (!h_tcp_clean(h, why, sizeof why))
        fail_msg("%s", why);
}

static void done(struct harness *h)
{
    no_violations(h);
    h_free(h);
    free(h);
}

/* publisher 0 + n subscribers on filter, all v */
#define setup_fanout(h, n, v, filter, sqos)                                                       \
    do {                                                                                          \
        char why_[128];                                                                           \
        if (!h_setup_fanout(h, n, v, filter, sqos, why_, sizeof why_))                           \
            fail_msg("setup_fanout: %s", why_);                                                   \
    } while (0)

static void test_handshake_and_connect(void **s)
{
    struct harness *h = mk(NULL);
    int c = h_open(h);
    assert_int_equal(h->cl[c].cep->state, 3);
    assert_int_equal(h->cl[c].bep->state, 3);
    assert_true(h_connect(h, c, MQO_MQTT_V311, "x", 1, 60));
    assert_int_equal(mqo_splice_stats(h->splice)->conns_tracked, 1);
    done(h);
}

static void test_fanout_qos0_qos1(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 10, MQO_MQTT_V311, "f/#", 1);
    for (int k = 0; k < 20; k++) {
        char pl[32];
        snprintf(pl, sizeof pl, "m%d", k);
        h_publish(h, 0, "f/x", pl, (uint8_t)(k & 1), 0);
    }
    h_run(h);
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(h_count_pub(h, i, "f/x"), 20);
        for (int k = 0; k < 20; k++) {
            char pl[32];
            snprintf(pl, sizeof pl, "m%d", k);
            assert_memory_equal(h_pub(h, i, (size_t)k)->payload, pl, strlen(pl));
        }
    }
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(h_stats(h)->consumed, 20);
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 10);
    done(h);
}

static void random_script(struct harness *h, const void *seed)
{
    h_random_script(h, *(const unsigned *)seed, 6, 200, 1);
}

/* The same random script (subscribes and unsubscribes among the publishes) through the splice
 * over an impaired wire and straight to the broker, whose broker takes the clients' packets in
 * the order the spliced run's broker took them (packets of different clients sent together
 * may arrive in either order): every subscriber gets the same messages in the same order per
 * publisher. */
static void differential(uint32_t loss, uint32_t dup, uint32_t reorder, unsigned seeds)
{
    for (unsigned seed = 1; seed <= seeds; seed++) {
        struct harness *o = mk(NULL);
        for (int k = 0; k < 2; k++) {
            o->net.wire.loss_pct[k] = loss;
            o->net.wire.dup_pct[k] = dup;
            o->net.wire.reorder_pct[k] = reorder;
        }
        o->net.wire.rng = seed * 7919;
        random_script(o, &seed);
        char why[512];
        if (!h_same_as_broker(o, random_script, &seed, 3, 9, 3, why, sizeof why, NULL))
            fail_msg("seed %u: %s", seed, why);
        assert_true(h_stats(o)->consumed > 0);
        for (int i = 0; i < 9; i++)
            assert_false(o->cl[i].closed);
        done(o);
    }
}

static void test_differential_clean(void **s) { differential(0, 0, 0, 5); }
static void test_differential_impaired(void **s) { differential(3, 2, 3, 5); }
static void test_differential_heavy(void **s)
{
    const char *e = getenv("SPLICE_HEAVY_SEEDS");
    differential(10, 5, 10, e ? (unsigned)atoi(e) : 3);
}


/* ---- targeted behaviours ---- */

/* Multi-segment QoS 1 deliveries over a lossy wire: after a timeout sends the splice back, the
 * receiver's ACK for everything it got before must still be accepted (else the stream stalls
 * and the connection is reset — found in the lab). */
static void test_lossy_large_fanout(void **s)
{
    for (unsigned seed = 1; seed <= 6; seed++) {
        struct harness *h = mk(NULL);
        for (int k = 0; k < 2; k++) {
            h->net.wire.loss_pct[k] = 2;
            h->net.wire.dup_pct[k] = 1;
            h->net.wire.reorder_pct[k] = 2;
        }
        h->net.wire.rng = seed * 31;
        setup_fanout(h, 10, MQO_MQTT_V311, "f/#", 1);
        static char pl[3001];
        for (int k = 0; k < 60; k++) {
            memset(pl, 'a' + k % 26, 3000);
            pl[3000] = 0;
            h_publish(h, 0, "f/t", pl, 1, 0);
            if (k % 10 == 0)
                h_run(h);
        }
        h_run(h);
        for (int i = 1; i <= 10; i++)
            assert_int_equal(h_count_pub(h, i, "f/t"), 60);
        assert_int_equal(mqo_splice_stats(h->splice)->resets, 0);
        done(h);
    }
}

/* A PUBLISH much larger than a segment, both ways: segments respect the receiver's MSS (less
 * the timestamp option) and the bytes arrive intact. */
static void test_large_publish_segmented(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 3, MQO_MQTT_V311, "big", 1);
    size_t n = 20000;
    char *pl = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        pl[i] = (char)('a' + i % 26);
    pl[n] = 0;
    uint8_t *b = malloc(n + 64);
    size_t len = hb_publish(b, MQO_MQTT_V311, "big", pl, n, 1, 0, 9, 0);
    h_send(h, 0, b, len);
    h_run(h);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(h_count_pub(h, i, "big"), 1);
        const struct h_rx *r = h_pub(h, i, 0);
        assert_int_equal(r->plen, n);
        assert_memory_equal(r->payload, pl, sizeof r->payload); /* the part the harness keeps */
    }
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 1);
    free(pl);
    free(b);
    done(h); /* checks no segment exceeded an MSS */
}

struct dropper {
    int side;        /* drop frames from the splice toward endpoints of this side */
    uint16_t port;   /* ... of this client port (0: any) */
    int want;        /* how many payload-carrying frames to drop */
    int dropped;
};

static int drop_payload(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *f,
                        size_t len)
{
    struct dropper *d = arg;
    if (to_splice || ep->side != d->side || d->dropped >= d->want)
        return 0;
    uint16_t cport = ep->side == MQO_SIDE_CLIENT ? ep->port : ep->peer_port;
    if (d->port && cport != d->port)
        return 0;
    size_t hl = (size_t)(f[14 + 20 + 12] >> 4) * 4;
    if (len <= 14 + 20 + hl)
        return 0;
    d->dropped++;
    return 1;
}

/* Publisher 0 sends a QoS 2 PUBLISH (always the broker's), subscriber 1 subscribes to its
 * topic right after, then publisher 0 sends another. Through the splice, `arg` (a dropper)
 * loses segments toward the broker on the publisher's connection. */
static void overtaken_script(struct harness *h, const void *arg)
{
    int p = h_open(h), q = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
    assert_true(h_connect(h, q, MQO_MQTT_V5, "sub", 1, 60));
    if (h->splice && arg) {
        struct dropper *d = (struct dropper *)arg;
        d->port = h->cl[p].cep->port;
        h->net.wire.drop = drop_payload;
        h->net.wire.drop_arg = d;
    }
    h_publish(h, p, "a", "p0:1", 2, 0);
    assert_int_equal(h_subscribe(h, q, "a", 0, 0), 0);
    h_publish(h, p, "a", "p0:2", 2, 0);
    h_run(h);
}

/* The PUBLISH lost toward the broker is retransmitted after the SUBSCRIBE sent after it has
 * reached the broker: the broker delivers it to the new subscription, as a broker that
 * received them in this order does. Straight to the broker in the script's order the PUBLISH
 * comes first and the subscriber does not get it; the reference that follows the order the
 * broker took things in through the splice agrees with the splice. */
static void test_publish_overtaken_by_subscribe(void **s)
{
    /* three times: the retransmission that gets through (about 1.4 s later) reaches the
     * broker model after the SUBSCRIBE (the harness hands the broker what arrived once per
     * simulated second, client by client) */
    struct dropper d = {.side = MQO_SIDE_BROKER, .want = 3};
    struct harness *o = mk(NULL);
    overtaken_script(o, &d);
    assert_int_equal(d.dropped, 3);
    assert_int_equal(h_count_pub(o, 1, "a"), 2);
    struct h_order *ord;
    int inv;
    char why[512];
    long n = h_broker_order(o, 0, &ord, &inv, why, sizeof why);
    assert_int_equal(n, 5); /* 2 CONNECT, SUBSCRIBE, 2 PUBLISH */
    assert_int_equal(inv, 0);
    assert_true(ord[2].client == 1 && ord[2].k == 1); /* the SUBSCRIBE */
    assert_true(ord[3].client == 0 && ord[3].k == 1); /* then the first PUBLISH */
    free(ord);
    struct harness *d0 = malloc(sizeof *d0);
    h_init(d0, NULL, H_DIRECT);
    overtaken_script(d0, NULL);
    assert_int_equal(h_count_pub(d0, 1, "a"), 1);
    h_free(d0);
    free(d0);
    if (!h_same_as_broker(o, overtaken_script, NULL, 1, 2, 1, why, sizeof why, NULL))
        fail_msg("%s", why);
    done(o);
}

/* The record of what reached the broker is checked: a PUBLISH the broker receives twice (as a
 * splice that sent a packet again would make it) is reported, not followed. */
static void test_broker_order_reports_duplicate(void **s)
{
    struct harness *o = mk(NULL);
    overtaken_script(o, NULL);
    struct h_order *ord;
    int inv;
    char why[512];
    long n = h_broker_order(o, 0, &ord, &inv, why, sizeof why);
    assert_int_equal(n, 5);
    free(ord);
    assert_int_equal(h_count_pub(o, 1, "a"), 1); /* without loss the subscription came after p0:1 */
    /* the broker gets the client's last PUBLISH once more */
    const struct h_txpkt *x = &o->cl[0].tx[2];
    assert_int_equal(x->data[0] >> 4, MQO_PUBLISH);
    mqo_buf_append(&o->cl[0].bep->app_in, x->data, x->len);
    h_run(o);
    assert_int_equal(h_count_pub(o, 1, "a"), 2);
    assert_int_equal(h_broker_order(o, 0, &ord, &inv, why, sizeof why), -1);
    assert_non_null(strstr(why, "PUBLISH from client 0"));
    free(ord);
    assert_false(h_same_as_broker(o, overtaken_script, NULL, 1, 2, 1, why, sizeof why, NULL));
    done(o);
}

/* Drops the first empty ACK on one client port: from the client toward the splice, or from
 * the splice toward the broker. */
struct ack_dropper {
    uint16_t port;
    int from_client;
    int dropped;
};

static int drop_first_ack(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *f,
                          size_t len)
{
    struct ack_dropper *d = arg;
    int mine = d->from_client ? to_splice && ep->side == MQO_SIDE_CLIENT && ep->port == d->port
                              : !to_splice && ep->side == MQO_SIDE_BROKER && ep->peer_port == d->port;
    if (!mine || d->dropped)
        return 0;
    size_t hl = (size_t)(f[14 + 20 + 12] >> 4) * 4;
    if (f[14 + 20 + 13] != 0x10 || len != 14 + 20 + hl)
        return 0;
    d->dropped = 1;
    return 1;
}

/* The ACK that completes the broker's handshake is lost, before the splice (the client's) or
 * after it (the one the splice sends the broker when the client's comes): the broker sends its
 * SYN-ACK again, and it is answered (the splice passes it to the client, or answers it itself
 * when it had seen the client's ACK), so the broker's side is established without waiting for
 * the client's first bytes. */
static void test_handshake_ack_lost(void **s)
{
    for (int from_client = 0; from_client < 2; from_client++) {
        struct harness *h = mk(NULL);
        struct ack_dropper d = {.port = h->next_port, .from_client = from_client};
        h->net.wire.drop = drop_first_ack;
        h->net.wire.drop_arg = &d;
        uint64_t t0 = h->net.now;
        int c = h_open(h);
        assert_int_equal(d.dropped, 1);
        assert_int_equal(h->cl[c].bep->state, 3); /* established */
        assert_true(h->net.now - t0 < 5000 * 1000000ull);
        assert_true(h_connect(h, c, MQO_MQTT_V311, "late", 1, 60));
        done(h);
    }
}

/* A client writes its packets a byte per segment, with a congestion window counted in segments
 * (as Linux does): the bytes of an incomplete packet must be acknowledged, or it stalls. */
static void test_bytewise_sender_not_starved(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "bw", 1);
    int c = h_open(h);
    h->cl[c].cep->cwnd_segs = 4;
    h->cl[c].version = MQO_MQTT_V311;
    uint8_t b[600];
    size_t n = hb_connect(b, MQO_MQTT_V311, "bytewise", 1, 60, NULL, 0, -1);
    h_send_bytewise(h, c, b, n);
    h_run(h);
    assert_int_equal(h_count_type(h, c, MQO_CONNACK), 1);
    char pl[301];
    memset(pl, 'p', 300);
    pl[300] = 0;
    n = hb_publish(b, MQO_MQTT_V311, "bw", pl, 300, 1, 0, 42, 0);
    h_send_bytewise(h, c, b, n);
    h_run(h);
    assert_int_equal(h_count_type(h, c, MQO_PUBACK), 1);
    assert_int_equal(h_count_pub(h, 1, "bw"), 1);
    done(h);
}

/* An offload delivery lost on the way to the subscriber: the splice retransmits it. */
static void test_inserted_lost_retransmitted(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "r", 1);
    struct dropper d = {.side = MQO_SIDE_CLIENT, .port = h->cl[1].cep->port, .want = 2};
    h->net.wire.drop = drop_payload;
    h->net.wire.drop_arg = &d;
    h_publish(h, 0, "r", "again", 1, 0);
    h_run(h);
    assert_int_equal(d.dropped, 2);
    assert_int_equal(h_count_pub(h, 1, "r"), 1);
    assert_memory_equal(h_pub(h, 1, 0)->payload, "again", 5);
    assert_true(mqo_splice_stats(h->splice)->retransmits >= 2);
    assert_int_equal(h->broker_publish_in, 0);
    done(h);
}

/* The subscriber acknowledges broker bytes and offload bytes with one delayed ACK: the broker
 * gets exactly its part acknowledged, nothing stays in flight. */
static void test_ack_covers_both_origins(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "m", 0);
    h->cl[1].cep->delayed_ack = 1;
    uint8_t b[256];
    size_t n = hb_publish(b, MQO_MQTT_V311, "m", "broker", 6, 0, 1, 0, 0); /* retained */
    h_send(h, 0, b, n);
    h_run(h);
    h_publish(h, 0, "m", "offload", 0, 0);
    h_publish(h, 0, "m", "offload2", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "m"), 3);
    struct ts_ep *bep = h->cl[1].bep;
    assert_int_equal(bep->snd_una, bep->app_out_end); /* all broker bytes acknowledged */
    assert_int_equal(mqo_splice_next_timer(h->splice, h->net.now), UINT64_MAX);
    done(h);
}

/* A consumed PUBLISH split over segments, followed in the same segment by a forwarded
 * PINGREQ: the broker gets exactly the PINGREQ, the publisher gets all its bytes acked. */
static void test_segment_straddles_consumed_publish(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "st", 0);
    uint8_t b[512];
    size_t n = hb_publish(b, MQO_MQTT_V311, "st", "0123456789abcdef", 16, 0, 0, 0, 0);
    n += hb_simple(b + n, MQO_PINGREQ);
    struct ts_ep *cep = h->cl[0].cep;
    uint64_t broker_before = h->cl[0].bep->rcv_nxt;
    ts_write(&h->net, cep, b, 7);         /* first part of the PUBLISH */
    ts_write(&h->net, cep, b + 7, n - 7); /* the rest, with the PINGREQ */
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "st"), 1);
    assert_int_equal(h_count_pub(h, 2, "st"), 1);
    assert_int_equal(h->cl[0].bep->rcv_nxt - broker_before, 2); /* only the PINGREQ */
    assert_int_equal(h_count_type(h, 0, MQO_PINGRESP), 1);
    assert_int_equal(cep->snd_una, cep->app_out_end);
    done(h);
}

/* A subscriber stops reading: its window closes with broker and offload bytes in it; nothing
 * is lost, the splice probes, and everything arrives once it reads again. */
static void test_zero_window_both_origins(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "z/#", 0);
    h->cl[1].cep->rcv_wnd = 2000;
    h->cl[1].hold_app = 1;
    char pl[200];
    memset(pl, 'x', sizeof pl - 1);
    pl[sizeof pl - 1] = 0;
    for (int k = 0; k < 40; k++) {
        pl[0] = (char)('A' + k % 26);
        uint8_t b[400];
        /* every fifth through the broker (retained), the rest offloaded */
        size_t n = hb_publish(b, MQO_MQTT_V311, "z/t", pl, strlen(pl), 0, k % 5 == 0, 0, 0);
        h_send(h, 0, b, n);
        h_run(h);
    }
    assert_true(h->cl[1].cep->app_in.len <= 2000);
    assert_true(mqo_splice_stats(h->splice)->zero_window_probes > 0);
    h->cl[1].hold_app = 0;
    h_advance(h, 3000);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "z/t"), 40);
    for (int k = 0; k < 40; k++)
        assert_int_equal(h_pub(h, 1, (size_t)k)->payload[0], 'A' + k % 26);
    done(h);
}

/* RST from the client mid-stream reaches the broker inside its window; the connection and its
 * MQTT session are gone. */
static void test_rst_mid_stream(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "x", 0);
    struct ts_ep *cep = h->cl[1].cep;
    uint8_t f[128];
    size_t n = ts_build(cep, f, cep->isn + 1 + (uint32_t)cep->snd_nxt, 0, 0x04, NULL, 0, 0, 0);
    ts_inject(&h->net, cep, f, n);
    h_run(h);
    assert_true(h->cl[1].bep->rst_rcvd);
    assert_int_equal(mqo_splice_stats(h->splice)->conns_tracked, 1);
    assert_int_equal(h_stats(h)->subscriptions, 0);
    h_publish(h, 0, "x", "after", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "x"), 0);
    done(h);
}

/* A TCP keep-alive probe from the client (one byte below the next) is answered. */
static void test_tcp_keepalive_probe(void **s)
{
    struct harness *h = mk(NULL);
    int c = h_open(h);
    assert_true(h_connect(h, c, MQO_MQTT_V311, "ka", 1, 60));
    struct ts_ep *cep = h->cl[c].cep;
    uint64_t acks_before = mqo_splice_stats(h->splice)->segs_out;
    uint64_t broker_rcv = h->cl[c].bep->rcv_nxt;
    uint8_t f[128];
    size_t n = ts_build(cep, f, cep->isn + (uint32_t)cep->snd_nxt,
                        cep->peer_isn + 1 + (uint32_t)cep->rcv_nxt, 0x10, NULL, 0, 1,
                        (uint32_t)(h->net.now / 1000000) + 1000);
    ts_inject(&h->net, cep, f, n);
    h_run(h);
    assert_true(mqo_splice_stats(h->splice)->segs_out > acks_before);
    assert_int_equal(h->cl[c].bep->rcv_nxt, broker_rcv); /* nothing reached the broker */
    assert_false(h->cl[c].closed);
    done(h);
}

/* An idle connection keeps nothing for traffic in transit (output buffer, records, timers):
 * the state comes with a delivery and goes once the receiver acknowledged it and the
 * publisher's input is resolved (within the second the idle walk takes), each time, also over a
 * wire that loses, duplicates and reorders frames (retransmissions, recovery). */
static void idle_holds_no_flight_state(uint32_t loss, uint32_t dup, uint32_t reorder)
{
    struct harness *h = mk(NULL);
    for (int k = 0; k < 2; k++) {
        h->net.wire.loss_pct[k] = loss;
        h->net.wire.dup_pct[k] = dup;
        h->net.wire.reorder_pct[k] = reorder;
    }
    setup_fanout(h, 5, MQO_MQTT_V311, "i/#", 1);
    h_run(h);
    h_advance(h, 2000);
    const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
    assert_int_equal(st->conns_tracked, 6);
    assert_int_equal(st->flight_states, 0);
    struct h_flight_peak p;
    h_flight_peak_start(h, &p);
    for (int round = 1; round <= 3; round++) {
        char pl[64];
        memset(pl, 'a' + round, sizeof pl - 1);
        pl[sizeof pl - 1] = 0;
        p.max = 0;
        h_publish(h, 0, "i/x", pl, (uint8_t)(round & 1), 0);
        h_run(h);
        for (int i = 1; i <= 5; i++)
            assert_int_equal(h_count_pub(h, i, "i/x"), round);
        assert_true(p.max >= 5); /* each subscriber's delivery while it was in transit */
        h_advance(h, 2000);
        assert_int_equal(st->flight_states, 0);
    }
    assert_true(h_stats(h)->consumed >= 3);
    if (loss) /* the wire did lose frames, and the splice sent again */
        assert_true(h->net.wire.lost[1] > 0 && st->retransmits > 0);
    h_flight_peak_stop(h, &p);
    done(h);
}

static void test_idle_holds_no_flight_state(void **s) { idle_holds_no_flight_state(0, 0, 0); }
static void test_idle_holds_no_flight_state_lossy(void **s)
{
    idle_holds_no_flight_state(10, 3, 5);
}

/* Orderly close in both directions; the connection lingers, then is forgotten. */
static void test_fin_both_ways(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "f", 0);
    uint8_t b[2];
    h_send(h, 1, b, hb_simple(b, MQO_DISCONNECT));
    h_close(h, 1);
    h_run(h);
    assert_true(h->cl[1].bep->fin_rcvd);
    assert_true(h->cl[1].cep->fin_rcvd);
    assert_int_equal(h->cl[1].cep->snd_una, h->cl[1].cep->app_out_end);
    h_advance(h, 12000);
    assert_int_equal(mqo_splice_stats(h->splice)->conns_tracked, 1);
    done(h);
}

/* The frames the splice sends take their Ethernet header, TTL and TOS from the frames of the
 * side they go to (h_tcp_clean checks every one). Each distinct template is kept once, follows
 * a client that moves, and goes with the last connection that used it. */
static void test_frame_templates(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 11, MQO_MQTT_V311, "f", 1);
    /* toward the broker, the clients' own (host i % 4, TTL 64 - i % 2, TOS i % 3 * 4): 12
     * distinct; toward the clients, the broker's frames to the four hosts */
    assert_int_equal(mqo_splice_templates(h->splice), 12 + 4);
    h_publish(h, 0, "f", "a", 1, 0);
    h_run(h);
    /* client 5 moves to host 9 with another TTL: it and the broker say so with an ACK each
     * before anything else goes its way */
    h_client_l2(h, 5, 9, 60, 8);
    ts_ack_now(&h->net, h->cl[5].cep);
    ts_ack_now(&h->net, h->cl[5].bep);
    h_run(h);
    /* its old template toward the broker was its own, host 1 still has clients 1 and 9 */
    assert_int_equal(mqo_splice_templates(h->splice), 12 + 5);
    h_publish(h, 0, "f", "b", 1, 0);
    h_publish(h, 5, "f", "c", 0, 0);
    h_run(h);
    for (int i = 1; i <= 11; i++) {
        assert_int_equal(h_count_pub(h, i, "f"), 3);
        assert_memory_equal(h_pub(h, i, 2)->payload, "c", 1);
    }
    assert_int_equal(h->broker_publish_in, 0);
    /* hosts 1 and 9 leave: their templates go once their connections are forgotten */
    int gone[] = {1, 5, 9};
    for (int k = 0; k < 3; k++) {
        uint8_t b[2];
        h_send(h, gone[k], b, hb_simple(b, MQO_DISCONNECT));
        h_close(h, gone[k]);
    }
    h_run(h);
    h_advance(h, 12000);
    assert_int_equal(mqo_splice_stats(h->splice)->conns_tracked, 9);
    assert_int_equal(mqo_splice_templates(h->splice), 9 + 3);
    done(h);
}

/* A connection opened before the splice existed is never edited, and still works. */
static void test_untracked_connection_untouched(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "u", 0);
    /* mqoff restarts: a new splice that never saw these SYNs */
    struct mqo_splice *old = h->splice;
    struct mqo_splice_cfg sc = {.broker_ip = 0, .broker_port = 1883, .emit = ts_emit,
                                .ud = &h->net, .startup_hold_ms = -1};
    memcpy(&sc.broker_ip, (uint8_t[]){198, 18, 0, 2}, 4);
    sc.engine.acl_mode = MQO_ACL_OPEN;
    sc.engine.exclusive = 1;
    h->splice = mqo_splice_new(&sc);
    h->net.splice = h->splice;
    mqo_splice_free(old);
    h_publish(h, 0, "u", "raw", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "u"), 1);
    assert_int_equal(h->broker_publish_in, 1); /* the broker did it */
    assert_true(mqo_splice_stats(h->splice)->conns_untracked > 0);
    assert_int_equal(mqo_splice_stats(h->splice)->conns_tracked, 0);
    /* a new publisher, seen from its SYN: its message must still reach the unseen subscriber,
     * whose subscription the engine cannot know, so it goes to the broker */
    int np = h_open(h);
    assert_true(h_connect(h, np, MQO_MQTT_V311, "newpub", 1, 60));
    h_publish(h, np, "u", "new", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "u"), 2);
    assert_int_equal(h_stats(h)->pt_reason[MQO_PT_UNSEEN], 1);
    /* the unseen connections close: offload resumes for the ones it can see */
    h_close(h, 1);
    h_close(h, 0);
    assert_int_equal(h_stats(h)->unseen_clients, 0);
    int ns = h_open(h);
    assert_true(h_connect(h, ns, MQO_MQTT_V311, "newsub", 1, 60));
    h_subscribe(h, ns, "u", 0, 0);
    /* "new" went to the broker with nothing to wait for: one more goes there, followed by an
     * ordering barrier, then offload resumes */
    h_publish(h, np, "u", "barrier", 0, 0);
    h_run(h);
    h_publish(h, np, "u", "offloaded", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, ns, "u"), 2);
    assert_int_equal(h_stats(h)->consumed, 1);
    done(h);
}

/* Fan-out checksums come from the shared serialization's sum, patched per subscriber (packet
 * identifier, byte 0): payloads of many sizes (several packets per segment, packets straddling
 * segments), QoS 0 and 1 subscribers, retransmissions over a lossy wire. The endpoints verify
 * every checksum (a wrong one is a violation), and the saving must have been taken. */
static void test_fanout_checksum_reused(void **s)
{
    static const size_t sizes[] = {250, 300, 301, 700, 1399, 1400, 1461, 2900, 5000, 257};
    for (unsigned seed = 1; seed <= 3; seed++) {
        struct harness *h = mk(NULL);
        h->net.wire.loss_pct[1] = seed == 1 ? 0 : 3;
        h->net.wire.rng = seed * 17;
        int p = h_open(h);
        assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
        for (int i = 1; i <= 6; i++) {
            char cid[32];
            snprintf(cid, sizeof cid, "sub%d", i);
            assert_int_equal(h_open(h), i);
            assert_true(h_connect(h, i, i % 3 ? MQO_MQTT_V311 : MQO_MQTT_V5, cid, 1, 60));
            assert_int_equal(h_subscribe(h, i, "c/#", (uint8_t)(i & 1), 0), i & 1);
        }
        static char pl[5001];
        size_t nmsg = 40;
        for (size_t k = 0; k < nmsg; k++) {
            size_t n = sizes[k % (sizeof sizes / sizeof sizes[0])];
            for (size_t j = 0; j < n; j++)
                pl[j] = (char)('A' + (j * 7 + k) % 53);
            pl[n] = 0;
            h_publish(h, p, "c/t", pl, (uint8_t)(k % 2), 0);
            if (k % 7 == 0)
                h_run(h);
        }
        h_run(h);
        for (int i = 1; i <= 6; i++) {
            assert_int_equal(h_count_pub(h, i, "c/t"), nmsg);
            for (size_t k = 0; k < nmsg; k++) {
                const struct h_rx *r = h_pub(h, i, k);
                assert_int_equal(r->plen, sizes[k % (sizeof sizes / sizeof sizes[0])]);
                assert_int_equal(r->payload[1], 'A' + (7 + k) % 53);
            }
        }
        assert_int_equal(h->broker_publish_in, 0);
        assert_true(mqo_splice_stats(h->splice)->csum_reused > 6 * 250 * nmsg / 2);
        done(h);
    }
}

/* Publisher 0 and subscribers 1..nsub on "pay/#" (subscriber v5 an MQTT 5 one, odd ones at QoS
 * 1), then nmsg payloads of sizes[k % ns] bytes, a pattern of their own, at QoS k % 2 (the
 * wire runs after every `every` publishes). Every subscriber gets every payload whole and in
 * order: the harness keeps 512 bytes of a payload; past them the TCP checksum, summed by the
 * splice from its own copy of the stream (or by the wire model where the output sums) and
 * checked by the endpoint, says the bytes sent were the stream's. The broker gets none. */
static void fanout_payloads(struct harness *h, int nsub, int v5, const size_t *sizes, size_t ns,
                            size_t nmsg, size_t every)
{
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
    for (int i = 1; i <= nsub; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "sub%d", i);
        assert_int_equal(h_open(h), i);
        assert_true(h_connect(h, i, i == v5 ? MQO_MQTT_V5 : MQO_MQTT_V311, cid, 1, 60));
        assert_int_equal(h_subscribe(h, i, "pay/#", (uint8_t)(i & 1), 0), i & 1);
    }
    static char pl[65536];
    for (size_t k = 0; k < nmsg; k++) {
        size_t n = sizes[k % ns];
        assert_true(n < sizeof pl);
        for (size_t j = 0; j < n; j++)
            pl[j] = (char)('a' + (j * 13 + k) % 26);
        pl[n] = 0;
        h_publish(h, p, "pay/t", pl, (uint8_t)(k % 2), 0);
        if (k % every == 0)
            h_run(h);
    }
    h_run(h);
    for (int i = 1; i <= nsub; i++) {
        assert_int_equal(h_count_pub(h, i, "pay/t"), nmsg);
        for (size_t k = 0; k < nmsg; k++) {
            const struct h_rx *r = h_pub(h, i, k);
            assert_int_equal(r->plen, sizes[k % ns]);
            for (size_t j = 0; j < r->plen && j < sizeof r->payload; j++)
                if (r->payload[j] != (char)('a' + (j * 13 + k) % 26))
                    fail_msg("subscriber %d message %zu byte %zu", i, k, j);
        }
    }
    assert_int_equal(h->broker_publish_in, 0);
}

/* A fan-out's payload sent from the one shared serialization (emit_shared) instead of a copy
 * per subscriber's segment: payloads of many sizes (whole packets in a segment, packets split
 * over segments, several in one), QoS 0 and 1 and v5 subscribers, over a lossy wire (so
 * retransmissions send shared tails again, after the ACKs of other subscribers released
 * theirs): fanout_payloads. ts_emit_shared keeps a reference per frame beyond the splice's
 * (ASan: no message freed early, none leaked). */
static void test_fanout_shared_payload(void **s)
{
    static const size_t sizes[] = {2000, 300, 1500, 5000, 1024, 7000, 3001, 250, 1460};
    static const size_t mins[] = {1, 1024};
    for (unsigned seed = 1; seed <= 4; seed++) {
        h_share_min = mins[seed % 2];
        struct harness *h = mk(NULL);
        h->net.wire.loss_pct[1] = seed == 1 ? 0 : 3;
        h->net.wire.reorder_pct[1] = seed == 4 ? 3 : 0;
        h->net.wire.rng = seed * 101;
        size_t nmsg = 36;
        fanout_payloads(h, 5, 3, sizes, sizeof sizes / sizeof sizes[0], nmsg, 5);
        const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
        assert_true(st->shared_segs > 5 * nmsg / 2);
        assert_int_equal(h->net.shared_frames, st->shared_segs);
        if (h_share_min > 1) /* no shared tail below the threshold */
            assert_true(st->shared_bytes >= st->shared_segs * h_share_min);
        done(h);
        h_share_min = 0;
    }
}

/* The random scripts of the differential test with every shared tail sent through
 * emit_shared (threshold 1 byte), over an impaired wire. */
static void test_differential_shared(void **s)
{
    h_share_min = 1;
    differential(3, 2, 3, 3);
    h_share_min = 0;
}

/* TSO (mqo_splice_set_offload): large fan-out payloads leave in frames of several segments,
 * which the wire model cuts as a device does (every segment's checksum checked by the
 * endpoint, each lost or reordered on its own), with and without shared tails, with and
 * without the other segments' checksums left to the output; a lost segment of a TSO frame is
 * sent again. Every subscriber gets every payload whole and in order. */
static void test_fanout_tso(void **s)
{
    static const size_t sizes[] = {20000, 300, 45000, 1500, 9000, 3001};
    for (unsigned seed = 1; seed <= 4; seed++) {
        h_tso_max = seed == 4 ? 5000 : 64000;
        h_share_min = seed % 2 ? 1024 : 0;
        h_csum_offload = seed >= 3;
        struct harness *h = mk(NULL);
        h->net.wire.loss_pct[1] = seed == 1 ? 0 : 2;
        h->net.wire.reorder_pct[1] = seed == 3 ? 3 : 0;
        h->net.wire.rng = seed * 313;
        fanout_payloads(h, 4, 2, sizes, sizeof sizes / sizeof sizes[0], 18, 3);
        const struct mqo_splice_stats *st = mqo_splice_stats(h->splice);
        assert_true(st->tso_frames > 0);
        assert_int_equal(h->net.tso_frames, st->tso_frames);
        assert_true(h->net.tso_segs > 2 * h->net.tso_frames);
        if (h->net.wire.loss_pct[1])
            assert_true(st->retransmits > 0);
        if (h_share_min)
            assert_true(st->shared_segs > 0);
        assert_int_equal(h->net.csum_completed, st->csum_left);
        if (h_csum_offload) /* ACKs, the publisher's PUBACKs, segments of small payloads */
            assert_true(st->csum_left > 0);
        done(h);
        h_tso_max = 0;
        h_share_min = 0;
        h_csum_offload = 0;
    }
}

/* When the last data frame toward a subscriber left the splice. */
struct last_data {
    const struct harness *h;
    uint16_t port;
    uint64_t at;
};

static int note_data(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *f,
                     size_t len)
{
    struct last_data *l = arg;
    if (to_splice || ep->side != MQO_SIDE_CLIENT || ep->port != l->port)
        return 0;
    size_t hl = (size_t)(f[14 + 20 + 12] >> 4) * 4;
    if (len > 14 + 20 + hl)
        l->at = l->h->net.now;
    return 0;
}

/* Client 0 publishes n payloads of size bytes (at most 30000) on topic at QoS 0, and the
 * harness runs; returns the milliseconds until the last frame with data toward client 1. */
static uint64_t publish_timed(struct harness *h, const char *topic, size_t size, int n)
{
    static char pl[30001];
    assert_true(size < sizeof pl);
    memset(pl, 'x', size);
    pl[size] = 0;
    struct last_data l = {.h = h, .port = h->cl[1].cep->port};
    h->net.wire.drop = note_data;
    h->net.wire.drop_arg = &l;
    uint64_t t0 = h->net.now;
    for (int k = 0; k < n; k++)
        h_publish(h, 0, topic, pl, 0, 0);
    h_run(h);
    h->net.wire.drop = NULL;
    return (l.at - t0) / 1000000;
}

/* A subscriber that acknowledges 40 segments at once (or after 40 ms), as a stack does that
 * receives super-segments (GSO on a veth, GRO): the congestion window grows by the bytes each
 * ACK covers, so 12 payloads of 30 kB reach it within a few delayed-ACK rounds. Growing one
 * MSS per ACK instead, each round waits for the receiver's 40 ms timer with a window one MSS
 * larger than the last. */
static void test_stretch_acks(void **s)
{
    h_tso_max = 64000;
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "big", 0);
    h->cl[1].cep->delayed_ack = 1;
    h->cl[1].cep->ack_every = 40;
    h->cl[1].cep->rcv_wnd = 4 << 20;
    uint64_t took_ms = publish_timed(h, "big", 30000, 12);
    assert_int_equal(h_count_pub(h, 1, "big"), 12);
    if (getenv("STRETCH_DEBUG"))
        fprintf(stderr, "stretch: %llu ms\n", (unsigned long long)took_ms);
    if (took_ms > 250)
        fail_msg("12 x 30 kB to a stretch-ACK receiver: last data after %llu ms",
                 (unsigned long long)took_ms);
    no_violations(h);
    done(h);
    h_tso_max = 0;
}

/* The client window (docs/ARCHITECTURE.md, "The client's window"). A broker's window stays
 * at its first size when everything a publisher sends is consumed (here 8 KiB): offered alone,
 * it would let a publisher send one window per round trip through the splice. */
struct held_peak {
    struct harness *h;
    uint64_t peak;
};

static void note_held(void *arg, struct ts_ep *ep)
{
    (void)ep;
    struct held_peak *p = arg;
    uint64_t v = mqo_splice_stats(p->h->splice)->c2s_held;
    if (v > p->peak)
        p->peak = v;
}

/* The window the splice offers the publisher in each frame, while it holds client_window_mem
 * toward the broker or more: its right edge at most the broker's 8 KiB past what the publisher
 * sent (the stream offsets stay below 4 GiB here). */
struct wnd_check {
    struct harness *h;
    uint64_t mem;
    uint64_t over; /* right edges past that bound */
    uint64_t seen; /* frames checked while over the cap */
};

static int check_wnd(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *f,
                     size_t len)
{
    struct wnd_check *w = arg;
    if (to_splice || ep != w->h->cl[0].cep || len < 14 + 20 + 20)
        return 0;
    uint64_t held = mqo_splice_stats(w->h->splice)->c2s_held;
    if (held < w->mem)
        return 0;
    const uint8_t *tcp = f + 14 + 20;
    uint32_t ack =
        (uint32_t)tcp[8] << 24 | (uint32_t)tcp[9] << 16 | (uint32_t)tcp[10] << 8 | tcp[11];
    uint64_t wnd = (uint64_t)(tcp[14] << 8 | tcp[15]) << ep->ws_peer;
    /* the right edge, as an offset of the publisher's stream: past what it sent, the room
     * left in the broker's window at most (the splice has received no more than it sent) */
    uint64_t edge = (uint64_t)(uint32_t)(ack - (ep->isn + 1)) + wnd;
    w->seen++;
    if (edge > ep->snd_max + 8192 + (1u << ep->ws_peer))
        w->over++;
    return 0;
}

/* Publishes 12 x 20 kB on "big" (consumed, one subscriber) with the broker's window at 8 KiB
 * and 1 ms of wire each way; returns the milliseconds until the subscriber had them all, and the
 * largest window offered to the publisher in *wnd. */
/* A publisher (client 0) and a subscriber on filter behind a broker whose window on the
 * publisher's connection is 8 KiB, 1 ms of wire each way; "keep/#" is left to the broker. */
static struct harness *small_broker_window(const char *filter)
{
    static const char *const bo[] = {"keep/#"};
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN, .broker_only = bo,
                                 .n_broker_only = 1};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 1, MQO_MQTT_V311, filter, 0);
    h->net.delay_ns = 1000000;
    h->cl[0].bep->rcv_wnd = 8192;
    h->cl[1].cep->rcv_wnd = 4u << 20;
    /* forwarded: the broker's ACK of it carries its 8 KiB (what is consumed it never sees) */
    h_publish(h, 0, "keep/first", "first", 0, 0);
    h_run(h);
    return h;
}

static uint64_t client_window_run(uint32_t window, uint64_t *wnd)
{
    h_client_window = window;
    struct harness *h = small_broker_window("big");
    /* a first delivery: the subscriber's ACK of it tells its 4 MiB window */
    h_publish(h, 0, "big", "first", 0, 0);
    h_run(h);
    uint64_t ms = publish_timed(h, "big", 20000, 12);
    assert_int_equal(h_count_pub(h, 1, "big"), 13);
    *wnd = h->cl[0].cep->peer_wnd;
    assert_int_equal(mqo_splice_stats(h->splice)->c2s_held, 0);
    done(h);
    h_client_window = 0;
    return ms;
}

static void test_client_window(void **s)
{
    uint64_t wnd_on, wnd_off;
    uint64_t on = client_window_run(0, &wnd_on);
    uint64_t off = client_window_run(MQO_SPLICE_WINDOW_NONE, &wnd_off);
    if (getenv("WINDOW_DEBUG"))
        fprintf(stderr, "client window: %llu ms (window %llu), broker's alone: %llu ms (%llu)\n",
                (unsigned long long)on, (unsigned long long)wnd_on, (unsigned long long)off,
                (unsigned long long)wnd_off);
    assert_true(wnd_on >= 256u << 10);
    assert_true(wnd_off < 256u << 10);
    if (on * 3 > off)
        fail_msg("240 kB consumed behind an 8 KiB broker window: %llu ms with the client window, "
                 "%llu ms without", (unsigned long long)on, (unsigned long long)off);
}

/* What is forwarded beyond the broker's window waits in the splice, counted in c2s_held, at
 * most a client window's worth, and reaches the broker whole. Once client_window_mem is held,
 * windows offered are the broker's again (what was offered before stays offered). */
static void test_client_window_forward(void **s)
{
    for (int capped = 0; capped < 2; capped++) {
        h_client_window_mem = capped ? 4096 : 0;
        struct harness *h = small_broker_window("keep/x");
        struct held_peak p = {.h = h};
        h->net.on_input = note_held;
        h->net.on_input_arg = &p;
        struct wnd_check w = {.h = h, .mem = 4096};
        if (capped) {
            h->net.wire.drop = check_wnd;
            h->net.wire.drop_arg = &w;
        }
        static char pl[60001];
        memset(pl, 'z', sizeof pl - 1);
        for (int k = 0; k < 4; k++)
            h_publish(h, 0, "keep/x", pl, 0, 0);
        h_run(h);
        h->net.on_input = NULL;
        h->net.wire.drop = NULL;
        assert_int_equal(h_count_pub(h, 1, "keep/x"), 4);
        assert_int_equal(h_stats(h)->consumed, 0);
        if (getenv("WINDOW_DEBUG"))
            fprintf(stderr, "forwarded, cap %d: peak held %llu, frames over the cap %llu, window "
                    "above the broker's %llu\n", capped, (unsigned long long)p.peak,
                    (unsigned long long)w.seen, (unsigned long long)w.over);
        assert_true(p.peak > 64u << 10); /* far beyond the broker's 8 KiB */
        assert_true(p.peak <= (256u << 10) + 8192);
        if (capped) {
            assert_true(w.seen > 0);
            assert_int_equal(w.over, 0);
        }
        assert_int_equal(mqo_splice_stats(h->splice)->c2s_held, 0);
        done(h);
    }
    h_client_window_mem = 0;
}

/* Lone ACKs deferred to the end of each burst of input, as monitor mode runs the splice
 * (mqo_splice_defer_acks): a 30 kB PUBLISH that arrives as one burst of segments is
 * acknowledged once, not once per segment, and nothing else changes (the random scripts
 * against the broker model, impaired wire). */
struct ack_count {
    const struct ts_ep *ep;
    uint64_t acks; /* frames without payload toward ep */
};

static int count_acks(void *arg, const struct ts_ep *ep, int to_splice, const uint8_t *f,
                      size_t len)
{
    struct ack_count *a = arg;
    if (to_splice || ep != a->ep)
        return 0;
    size_t hl = (size_t)(f[14 + 20 + 12] >> 4) * 4;
    if (len == 14 + 20 + hl)
        a->acks++;
    return 0;
}

static uint64_t acks_for_burst(int defer)
{
    h_defer_acks = defer;
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "big", 0);
    h->net.delay_ns = 100000;
    h->cl[1].cep->rcv_wnd = 4u << 20;
    struct ack_count a = {.ep = h->cl[0].cep};
    h->net.wire.drop = count_acks;
    h->net.wire.drop_arg = &a;
    static char pl[30001];
    memset(pl, 'a', sizeof pl - 1);
    h_publish(h, 0, "big", pl, 0, 0);
    h_run(h);
    h->net.wire.drop = NULL;
    assert_int_equal(h_count_pub(h, 1, "big"), 1);
    assert_int_equal(h_stats(h)->consumed, 1);
    done(h);
    h_defer_acks = 0;
    return a.acks;
}

static void test_defer_acks(void **s)
{
    uint64_t deferred = acks_for_burst(1), each = acks_for_burst(0);
    if (getenv("ACK_DEBUG"))
        fprintf(stderr, "ACKs to the publisher: %llu deferred, %llu at once\n",
                (unsigned long long)deferred, (unsigned long long)each);
    assert_true(each >= 15); /* 21 segments */
    assert_true(deferred >= 1 && deferred <= 2);
    h_defer_acks = 1;
    differential(3, 2, 3, 3);
    h_defer_acks = 0;
}

/* The random scripts of the differential test with TSO and checksums left to the output
 * toward both sides, impaired wire. */
static void test_differential_tso(void **s)
{
    h_tso_max = 64000;
    h_csum_offload = 1;
    differential(3, 2, 3, 3);
    h_tso_max = 0;
    h_csum_offload = 0;
}

/* MQTT keep-alive through the splice: a publisher whose PUBLISHes are all consumed stays
 * connected far past its keep-alive. */
static void test_mqtt_keepalive_through_splice(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 5));
    int sb = h_open(h);
    assert_true(h_connect(h, sb, MQO_MQTT_V311, "sub", 1, 0));
    h_subscribe(h, sb, "k", 0, 0);
    for (int k = 0; k < 40; k++) {
        h_publish(h, p, "k", "x", 0, 0);
        h_advance(h, 500);
    }
    assert_true(h->cl[p].b_connected);
    assert_int_equal(h_count_pub(h, sb, "k"), 40);
    assert_true(h_stats(h)->pings_synth >= 5);
    done(h);
}

int main(void)
{
    mqo_log_set_level(MQO_LOG_ERROR);
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_connect),
        cmocka_unit_test(test_handshake_ack_lost),
        cmocka_unit_test(test_fanout_qos0_qos1),
        cmocka_unit_test(test_differential_clean),
        cmocka_unit_test(test_differential_impaired),
        cmocka_unit_test(test_differential_heavy),
        cmocka_unit_test(test_publish_overtaken_by_subscribe),
        cmocka_unit_test(test_broker_order_reports_duplicate),
        cmocka_unit_test(test_large_publish_segmented),
        cmocka_unit_test(test_lossy_large_fanout),
        cmocka_unit_test(test_bytewise_sender_not_starved),
        cmocka_unit_test(test_inserted_lost_retransmitted),
        cmocka_unit_test(test_ack_covers_both_origins),
        cmocka_unit_test(test_segment_straddles_consumed_publish),
        cmocka_unit_test(test_zero_window_both_origins),
        cmocka_unit_test(test_rst_mid_stream),
        cmocka_unit_test(test_tcp_keepalive_probe),
        cmocka_unit_test(test_fin_both_ways),
        cmocka_unit_test(test_frame_templates),
        cmocka_unit_test(test_idle_holds_no_flight_state),
        cmocka_unit_test(test_idle_holds_no_flight_state_lossy),
        cmocka_unit_test(test_untracked_connection_untouched),
        cmocka_unit_test(test_mqtt_keepalive_through_splice),
        cmocka_unit_test(test_fanout_checksum_reused),
        cmocka_unit_test(test_fanout_shared_payload),
        cmocka_unit_test(test_differential_shared),
        cmocka_unit_test(test_fanout_tso),
        cmocka_unit_test(test_stretch_acks),
        cmocka_unit_test(test_client_window),
        cmocka_unit_test(test_client_window_forward),
        cmocka_unit_test(test_defer_acks),
        cmocka_unit_test(test_differential_tso),
    };
    return cmocka_run_group_tests_name("splice", tests, NULL, NULL);
}
