/* engine/: in-memory end-to-end tests (clients <-> engine <-> reference broker). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "core/log.h"
#include "harness.h"
#include "mqtt/mqtt.h"

static struct harness *mk(const struct mqo_engine_cfg *cfg)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, cfg, 0);
    assert_non_null(h->eng);
    return h;
}

static void done(struct harness *h)
{
    h_free(h);
    free(h);
}

static const struct mqo_engine_stats *st(struct harness *h) { return mqo_engine_stats(h->eng); }

/* publisher 0 + n subscribers on filter, all v */
#define setup_fanout(h, n, v, filter, sqos)                                                       \
    do {                                                                                          \
        char why_[128];                                                                           \
        if (!h_setup_fanout(h, n, v, filter, sqos, why_, sizeof why_))                           \
            fail_msg("setup_fanout: %s", why_);                                                   \
    } while (0)

static void test_qos0_fanout_offloaded(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 50, MQO_MQTT_V311, "a/+", 0);
    for (int k = 0; k < 10; k++) {
        char pl[32];
        snprintf(pl, sizeof pl, "m%d", k);
        h_publish(h, 0, "a/b", pl, 0, 0);
    }
    h_run(h);
    for (int i = 1; i <= 50; i++) {
        assert_int_equal(h_count_pub(h, i, "a/b"), 10);
        for (int k = 0; k < 10; k++) {
            char pl[32];
            snprintf(pl, sizeof pl, "m%d", k);
            const struct h_rx *r = h_pub(h, i, (size_t)k);
            assert_int_equal(r->plen, strlen(pl));
            assert_memory_equal(r->payload, pl, r->plen);
            assert_int_equal(r->qos, 0);
        }
    }
    assert_int_equal(h->broker_publish_in, 0); /* the broker never saw them */
    assert_int_equal(st(h)->consumed, 10);
    assert_int_equal(st(h)->deliveries, 500);
    done(h);
}

static void test_qos1_fanout_puback_and_acks_absorbed(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 20, MQO_MQTT_V311, "t", 1);
    h_publish(h, 0, "t", "x", 1, 0);
    h_run(h);
    /* publisher got exactly one PUBACK, from the engine */
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 1);
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(h_count_pub(h, i, "t"), 1);
        assert_int_equal(h_pub(h, i, 0)->qos, 1);
        assert_int_not_equal(h_pub(h, i, 0)->pid, 0);
    }
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(st(h)->pubacks_absorbed, 20); /* subscriber PUBACKs never reach the broker */
    for (int i = 1; i <= 20; i++)
        assert_int_equal(h->cl[i].b_inflight, 0);
    done(h);
}

static void test_qos_downgrade_min_granted(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "t", 0);
    h_publish(h, 0, "t", "x", 1, 0);
    h_run(h);
    assert_int_equal(h_pub(h, 1, 0)->qos, 0);
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 1);
    assert_int_equal(st(h)->consumed, 1);
    done(h);
}

static void test_no_acl_source_passes_everything(void **s)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_NONE};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 3, MQO_MQTT_V311, "t", 1);
    h_publish(h, 0, "t", "x", 1, 0);
    h_run(h);
    assert_int_equal(h->broker_publish_in, 1);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(h_count_pub(h, i, "t"), 1);
    assert_int_equal(st(h)->consumed, 0);
    assert_int_equal(st(h)->pt_reason[MQO_PT_NO_ACL], 1);
    done(h);
}

static void test_publisher_without_connack_not_served(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "t", 0);
    int p = h_open(h);
    uint8_t b[256];
    /* CONNECT and PUBLISH in one write: the CONNACK has not passed yet */
    size_t n = hb_connect(b, MQO_MQTT_V311, "early", 1, 60, NULL, 0, -1);
    n += hb_publish(b + n, MQO_MQTT_V311, "t", "e", 1, 0, 0, 0, 0);
    h->cl[p].version = MQO_MQTT_V311;
    h_send(h, p, b, n);
    h_run(h);
    assert_int_equal(h->broker_publish_in, 1);
    assert_int_equal(h_count_pub(h, 1, "t"), 1);
    assert_int_equal(st(h)->pt_reason[MQO_PT_NOT_LIVE], 1);
    done(h);
}

static void test_suback_denied_never_served(void **s)
{
    struct harness *h = mk(NULL);
    snprintf(h->deny_sub_prefix, sizeof h->deny_sub_prefix, "secret");
    setup_fanout(h, 1, MQO_MQTT_V311, "t", 0);
    assert_int_equal(h_subscribe(h, 1, "secret/#", 0, 0), 0x80);
    h_publish(h, 0, "secret/x", "s", 0, 0);
    h_publish(h, 0, "t", "ok", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "secret/x"), 0);
    assert_int_equal(h_count_pub(h, 1, "t"), 1);
    done(h);
}

static void test_retained_passthrough(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "r/#", 0);
    h_publish(h, 0, "r/1", "keep", 0, 1);
    h_run(h);
    assert_int_equal(h->broker_publish_in, 1);
    assert_int_equal(st(h)->pt_reason[MQO_PT_RETAIN], 1);
    for (int i = 1; i <= 2; i++)
        assert_int_equal(h_count_pub(h, i, "r/1"), 1);
    /* a later subscriber gets it from the broker's store */
    int l = h_open(h);
    assert_true(h_connect(h, l, MQO_MQTT_V311, "late", 1, 60));
    h_subscribe(h, l, "r/#", 0, 0);
    assert_int_equal(h_count_pub(h, l, "r/1"), 1);
    assert_int_equal(h_pub(h, l, 0)->retain, 1);
    done(h);
}

static void test_unsubscribe_stops_delivery(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "u", 0);
    h_publish(h, 0, "u", "1", 0, 0);
    h_run(h);
    assert_int_equal(h_unsubscribe(h, 1, "u"), 0);
    h_publish(h, 0, "u", "2", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "u"), 1);
    assert_int_equal(h_count_pub(h, 2, "u"), 2);
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(st(h)->subscriptions, 1);
    done(h);
}

/* Between UNSUBSCRIBE and UNSUBACK the broker may already have stopped delivering: matching
 * messages go to it, so the subscriber gets exactly what the broker decides. */
static void test_publish_during_unsubscribe(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "pu", 0);
    uint8_t b[128];
    h_send(h, 1, b, hb_unsubscribe(b, MQO_MQTT_V311, 77, "pu")); /* not yet at the broker */
    h_publish(h, 0, "pu", "racing", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_PENDING_SUB], 1); /* the broker decides */
    assert_int_equal(h->broker_publish_in, 1);
    size_t got = h_count_pub(h, 1, "pu"); /* 0 or 1: whichever the broker read first */
    h_publish(h, 0, "pu", "after", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "pu"), got);
    assert_int_equal(st(h)->subscriptions, 0);
    done(h);
}

/* The subscriber receives broker-originated QoS 1 (retained) and offload QoS 1 on one
 * connection: identifiers must never collide, each message arrives once and is acked once. */
static void test_pid_collision_with_broker_qos1(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "q/#", 1);
    h->cl[1].auto_ack = 0; /* keep everything in flight */
    for (int k = 0; k < 5; k++) {
        char pl[32];
        snprintf(pl, sizeof pl, "o%d", k);
        h_publish(h, 0, "q/o", pl, 1, 0); /* offloaded */
        snprintf(pl, sizeof pl, "b%d", k);
        h_publish(h, 0, "q/b", pl, 1, 1); /* retained: broker, with the broker's own ids 1.. */
        h_run(h);
    }
    assert_int_equal(h_count_pub(h, 1, NULL), 10);
    /* all identifiers distinct */
    for (size_t a = 0; a < 10; a++)
        for (size_t b = a + 1; b < 10; b++)
            assert_int_not_equal(h_pub(h, 1, a)->pid, h_pub(h, 1, b)->pid);
    /* now ack them all */
    for (size_t a = 0; a < 10; a++) {
        uint8_t ack[4];
        h_send(h, 1, ack, hb_ack(ack, MQO_PUBACK, h_pub(h, 1, a)->pid));
    }
    h_run(h);
    assert_int_equal(h->cl[1].b_inflight, 0);     /* the broker got its 5 acks, mapped back */
    assert_int_equal(st(h)->pubacks_absorbed, 5); /* ours stayed here */
    done(h);
}

static void test_keepalive_synthesis(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 5));
    int sb = h_open(h);
    assert_true(h_connect(h, sb, MQO_MQTT_V311, "sub", 1, 0));
    h_subscribe(h, sb, "k", 0, 0);
    /* 40 s of publishing every 500 ms, all consumed: the broker sees only engine pings */
    for (int k = 0; k < 80; k++) {
        h_publish(h, p, "k", "x", 0, 0);
        h_advance(h, 500);
    }
    assert_false(h->cl[p].closed);
    assert_true(h->cl[p].b_connected);
    assert_int_equal(h_count_pub(h, sb, "k"), 80);
    assert_true(st(h)->pings_synth >= 10);
    assert_int_equal(st(h)->pingresp_dropped, st(h)->pings_synth);
    assert_int_equal(h_count_type(h, p, MQO_PINGRESP), 0); /* the client never saw ours */
    /* the client's own ping still gets its answer */
    uint8_t b[2];
    h_send(h, p, b, hb_simple(b, MQO_PINGREQ));
    h_run(h);
    assert_int_equal(h_count_type(h, p, MQO_PINGRESP), 1);
    done(h);
}

static void test_keepalive_broker_closes_without_offload(void **s)
{
    /* control: direct, a publish-only client with no traffic at all is closed at 1.5 x */
    struct harness h0;
    h_init(&h0, NULL, 1);
    int p = h_open(&h0);
    h0.cl[p].no_ping = 1;
    h_connect(&h0, p, MQO_MQTT_V311, "idle", 1, 2);
    h_advance(&h0, 4000);
    assert_false(h0.cl[p].b_connected);
    h_free(&h0);
}

/* A client that goes silent still times out at the broker: the engine pings only for
 * traffic it consumed. */
static void test_silent_client_not_kept_alive(void **s)
{
    struct harness *h = mk(NULL);
    int sb = h_open(h);
    h->cl[sb].no_ping = 1;
    assert_true(h_connect(h, sb, MQO_MQTT_V311, "quiet", 1, 2));
    h_subscribe(h, sb, "q", 0, 0);
    h_advance(h, 4000);
    assert_false(h->cl[sb].b_connected);
    assert_int_equal(st(h)->pings_synth, 0);
    done(h);
}

static void test_v5_alias_and_no_local(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V5, "pub5", 1, 60));
    int sb = h_open(h);
    assert_true(h_connect(h, sb, MQO_MQTT_V5, "sub5", 1, 60));
    assert_int_equal(h_subscribe(h, sb, "al/#", 1, 0), 1);
    /* the publisher subscribes with no-local: never gets its own messages */
    assert_int_equal(h_subscribe(h, p, "al/#", MQO_SUBOPT_NO_LOCAL | 1, 0), 1);
    uint8_t b[256];
    /* alias set: goes to the broker so it learns the mapping */
    h_send(h, p, b, hb_publish(b, MQO_MQTT_V5, "al/x", "1", 1, 1, 0, 11, 3));
    h_run(h);
    assert_int_equal(h->broker_publish_in, 1);
    /* alias use only: offloaded, delivered with the full topic */
    h_send(h, p, b, hb_publish(b, MQO_MQTT_V5, "", "2", 1, 1, 0, 12, 3));
    h_run(h);
    assert_int_equal(h->broker_publish_in, 1);
    assert_int_equal(h_count_pub(h, sb, "al/x"), 2);
    assert_memory_equal(h_pub(h, sb, 1)->payload, "2", 1);
    assert_int_equal(h_count_pub(h, p, NULL), 0);
    assert_int_equal(h_count_type(h, p, MQO_PUBACK), 2);
    done(h);
}

static void test_v5_subscription_ids(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V5, "p", 1, 60));
    int a = h_open(h), b = h_open(h);
    assert_true(h_connect(h, a, MQO_MQTT_V5, "a", 1, 60));
    assert_true(h_connect(h, b, MQO_MQTT_V5, "b", 1, 60));
    h_subscribe(h, a, "s/+", 0, 77);
    h_subscribe(h, b, "s/#", 0, 0);
    h_publish(h, p, "s/1", "x", 0, 0);
    h_run(h);
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(h_pub(h, a, 0)->n_sub_ids, 1);
    assert_int_equal(h_pub(h, a, 0)->sub_ids[0], 77);
    assert_int_equal(h_pub(h, b, 0)->n_sub_ids, 0);
    done(h);
}

static void test_v3_v5_mixed(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V5, "p", 1, 60));
    int a = h_open(h), b = h_open(h);
    assert_true(h_connect(h, a, MQO_MQTT_V311, "a", 1, 60));
    assert_true(h_connect(h, b, MQO_MQTT_V5, "b", 1, 60));
    h_subscribe(h, a, "m", 1, 0);
    h_subscribe(h, b, "m", 1, 0);
    h_publish(h, p, "m", "hello", 1, 0);
    h_run(h);
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(h_count_pub(h, a, "m"), 1);
    assert_int_equal(h_count_pub(h, b, "m"), 1);
    done(h);
}

/* m1 goes through the broker (retained), m2 right after must not overtake it. */
static void test_passthrough_then_offload_order(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 3, MQO_MQTT_V311, "o", 0);
    /* send m1 (retained) and m2..m4 in one write, before anything moves */
    uint8_t b[256];
    size_t n = hb_publish(b, MQO_MQTT_V311, "o", "m1", 2, 0, 1, 0, 0);
    n += hb_publish(b + n, MQO_MQTT_V311, "o", "m2", 2, 0, 0, 0, 0);
    n += hb_publish(b + n, MQO_MQTT_V311, "o", "m3", 2, 0, 0, 0, 0);
    h_send(h, 0, b, n);
    h_run(h);
    h_publish(h, 0, "o", "m4", 0, 0);
    h_run(h);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(h_count_pub(h, i, "o"), 4);
        for (int k = 0; k < 4; k++) {
            char pl[32];
            snprintf(pl, sizeof pl, "m%d", k + 1);
            assert_memory_equal(h_pub(h, i, (size_t)k)->payload, pl, 2);
        }
    }
    /* m2 and m3 waited for m1 (went through the broker too); m4 was offloaded */
    assert_int_equal(st(h)->pt_reason[MQO_PT_ORDER], 2);
    assert_int_equal(st(h)->consumed, 1);
    done(h);
}

/* Many holds on one subscriber at once (its table of holds grows past 8, 16 and 32 entries,
 * shrinks as the broker delivers, and grows again): every message arrives once, in order. */
static void test_order_many_holds(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "o", 0);
    int sent = 0;
    const int burst[] = {40, 9, 70};
    for (size_t r = 0; r < sizeof burst / sizeof burst[0]; r++) {
        static uint8_t b[8192];
        size_t n = 0;
        for (int k = 0; k <= burst[r]; k++) {
            char pl[16];
            snprintf(pl, sizeof pl, "m%04d", sent++);
            /* the first is retained (through the broker): the rest wait for it */
            n += hb_publish(b + n, MQO_MQTT_V311, "o", pl, 5, 0, k == 0, 0, 0);
        }
        h_send(h, 0, b, n);
        h_run(h);
    }
    h_publish(h, 0, "o", "last!", 0, 0);
    h_run(h);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(h_count_pub(h, i, "o"), sent + 1);
        for (int k = 0; k < sent; k++) {
            char pl[16];
            snprintf(pl, sizeof pl, "m%04d", k);
            assert_memory_equal(h_pub(h, i, (size_t)k)->payload, pl, 5);
        }
    }
    assert_true(st(h)->pt_reason[MQO_PT_ORDER] >= 40);
    assert_int_equal(st(h)->consumed, 1); /* the last one, once nothing was held */
    done(h);
}

/* The broker never delivers a passed-through message (it dropped it): the hold is given up
 * after order_hold_ms and offload resumes. */
static void test_order_hold_expires(void **s)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN, .order_hold_ms = 500};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 1, MQO_MQTT_V311, "x", 0);
    h->cl[1].drop_bout = 1;
    h_publish(h, 0, "x", "lost", 0, 1);
    h_run(h);
    h->cl[1].drop_bout = 0;
    h_publish(h, 0, "x", "held", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_ORDER], 1);
    h_advance(h, 600);
    assert_int_equal(st(h)->order_expired, 1);
    h_publish(h, 0, "x", "free", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, 1, "x"), 2);
    done(h);
}

static void test_disconnect_mid_flight(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "d", 1);
    h->cl[1].auto_ack = 0;
    h_publish(h, 0, "d", "1", 1, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "d"), 1);
    h_close(h, 1); /* subscriber gone with our QoS 1 unacked */
    assert_int_equal(st(h)->inflight_lost, 1);
    h_publish(h, 0, "d", "2", 1, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 2, "d"), 2);
    assert_int_equal(h->broker_publish_in, 0);
    assert_int_equal(st(h)->subscriptions, 1); /* clean session: its filter went with it */
    done(h);
}

static void test_persistent_session_held(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
    int sb = h_open(h);
    assert_true(h_connect(h, sb, MQO_MQTT_V311, "persist", 0, 60));
    h_subscribe(h, sb, "h", 1, 0);
    /* QoS 1 to a persistent session: the broker keeps it across reconnects, so it does it */
    h_publish(h, p, "h", "1", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_PERSISTENT], 1);
    /* QoS 0 while live: offloaded */
    h_publish(h, p, "h", "2", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    h_close(h, sb);
    /* offline: held by the broker, which queues QoS 1 */
    h_publish(h, p, "h", "3", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_HELD], 1);
    int sb2 = h_open(h);
    assert_true(h_connect(h, sb2, MQO_MQTT_V311, "persist", 0, 60));
    h_run(h);
    assert_int_equal(h_count_pub(h, sb2, "h"), 1); /* the queued one, from the broker */
    /* still held after resuming */
    h_publish(h, p, "h", "4", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_HELD], 2);
    assert_int_equal(h_count_pub(h, sb2, "h"), 2);
    h_close(h, sb2);
    /* back with a clean session: the broker dropped the old one; nothing held any more */
    int sb3 = h_open(h);
    assert_true(h_connect(h, sb3, MQO_MQTT_V311, "persist", 1, 60));
    h_subscribe(h, sb3, "h", 0, 0);
    h_publish(h, p, "h", "5", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 2);
    assert_int_equal(h_count_pub(h, sb3, "h"), 1);
    done(h);
}

static void test_unknown_session_resume(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
    /* the broker already holds a session for "ghost" with a subscription we never saw */
    int sidx = 200;
    h->sess[sidx].used = 1;
    snprintf(h->sess[sidx].cid, sizeof h->sess[sidx].cid, "ghost");
    h->sess[sidx].persistent = 1;
    snprintf(h->sess[sidx].subs[0].filter, sizeof h->sess[sidx].subs[0].filter, "g");
    h->sess[sidx].subs[0].opts = 1;
    h->sess[sidx].n_subs = 1;
    int g = h_open(h);
    assert_true(h_connect(h, g, MQO_MQTT_V311, "ghost", 0, 60));
    assert_int_equal(st(h)->blind_sessions, 1);
    h_publish(h, p, "g", "1", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, g, "g"), 1); /* delivered by the broker */
    assert_int_equal(st(h)->pt_reason[MQO_PT_BLIND], 1);
    /* the client comes back clean: the broker's old session is gone, so is the blindness */
    h_close(h, g);
    int g2 = h_open(h);
    assert_true(h_connect(h, g2, MQO_MQTT_V311, "ghost", 1, 60));
    assert_int_equal(st(h)->blind_sessions, 0);
    /* "1" went to the broker with nothing to wait for: the next one goes there too, followed
     * by an ordering barrier (a ping), and offload resumes when its answer is back */
    h_publish(h, p, "g", "2", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 0);
    assert_int_equal(st(h)->pt_reason[MQO_PT_ORDER], 1);
    h_publish(h, p, "g", "3", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_type(h, p, MQO_PINGRESP), 0); /* the barrier's answer was ours */
    done(h);
}

/* CONNECT (persistent) + SUBSCRIBE, and the client goes before the CONNACK passed: the broker
 * may hold that subscription now, so matching messages must go to the broker. */
static void test_subscribe_before_connack_then_gone(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
    int x = h_open(h);
    uint8_t b[512];
    size_t n = hb_connect(b, MQO_MQTT_V311, "quick", 0, 60, NULL, 0, -1);
    n += hb_subscribe(b + n, MQO_MQTT_V311, 7, "qk", 1, 0);
    h->cl[x].version = MQO_MQTT_V311;
    h->cl[x].drop_bout = 1; /* the CONNACK and SUBACK never come back before the close */
    h_send(h, x, b, n);
    h_run(h);
    h_close(h, x);
    h_publish(h, p, "qk", "kept", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_HELD], 1);
    assert_int_equal(h->broker_publish_in, 1);
    int y = h_open(h);
    assert_true(h_connect(h, y, MQO_MQTT_V311, "quick", 0, 60));
    h_run(h);
    assert_int_equal(h_count_pub(h, y, "qk"), 1); /* queued by the broker, not lost */
    done(h);
}

static void test_shared_and_overlap_passthrough(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "o/1", 0);
    h_subscribe(h, 1, "o/#", 0, 0); /* overlapping */
    h_publish(h, 0, "o/1", "x", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_OVERLAP], 1);
    assert_int_equal(h_count_pub(h, 1, "o/1"), 1); /* v3: one copy from the broker */
    int sh = h_open(h);
    assert_true(h_connect(h, sh, MQO_MQTT_V5, "sh", 1, 60));
    h_subscribe(h, sh, "$share/g/s", 0, 0);
    h_publish(h, 0, "s", "y", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_SHARED], 1);
    done(h);
}

static void test_overlap_once_mode(void **s)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN,
                                 .overlap = MQO_OVERLAP_ONCE};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 1, MQO_MQTT_V311, "o/1", 0);
    h_subscribe(h, 1, "o/#", 1, 0);
    h_publish(h, 0, "o/1", "x", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, 1, "o/1"), 1);
    assert_int_equal(h_pub(h, 1, 0)->qos, 1); /* the highest granted */
    done(h);
}

static void test_acl_file_write_and_read(void **s)
{
    const char *txt = "user alice\n"
                      "topic write sensors/#\n"
                      "user bob\n"
                      "topic read sensors/#\n"
                      "user carol\n"
                      "topic read other/#\n";
    struct mqo_acl *acl = NULL;
    char err[128];
    assert_int_equal(mqo_acl_parse(txt, strlen(txt), &acl, err, sizeof err), 0);
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_FILE, .acl = acl};
    struct harness *h = mk(&cfg);
    h->acl = acl;
    uint8_t b[256];
    int names[3];
    const char *users[3] = {"alice", "bob", "carol"};
    for (int i = 0; i < 3; i++) {
        names[i] = h_open(h);
        h->cl[names[i]].version = MQO_MQTT_V311;
        h_send(h, names[i], b, hb_connect(b, MQO_MQTT_V311, users[i], 1, 60, users[i], 0, -1));
        h_run(h);
    }
    h_subscribe(h, names[1], "sensors/#", 0, 0);
    h_subscribe(h, names[2], "sensors/#", 0, 0); /* granted: acl_file never checks SUBSCRIBE */
    h_publish(h, names[0], "sensors/t", "20", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, names[1], "sensors/t"), 1);
    assert_int_equal(h_count_pub(h, names[2], "sensors/t"), 0); /* READ denied */
    /* bob may not write: the broker would drop it, so it goes to the broker */
    h_publish(h, names[1], "sensors/t", "evil", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_WRITE_DENIED], 1);
    assert_int_equal(h_count_pub(h, names[1], "sensors/t"), 1);
    done(h);
    mqo_acl_free(acl);
}

static void test_bytewise_and_packed(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 3, MQO_MQTT_V311, "b", 1);
    uint8_t b[4096];
    size_t n = 0;
    for (int k = 0; k < 50; k++) {
        char pl[32];
        snprintf(pl, sizeof pl, "%d", k);
        n += hb_publish(b + n, MQO_MQTT_V311, "b", pl, strlen(pl), (uint8_t)(k & 1), 0,
                        (uint16_t)(k + 1), 0);
    }
    h_send(h, 0, b, n); /* 50 packets, one write */
    h_run(h);
    h_send_bytewise(h, 0, b, n); /* and a byte at a time */
    h_run(h);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(h_count_pub(h, i, "b"), 100);
        for (int k = 0; k < 100; k++) {
            char pl[32];
            snprintf(pl, sizeof pl, "%d", k % 50);
            const struct h_rx *r = h_pub(h, i, (size_t)k);
            assert_int_equal(r->plen, strlen(pl));
            assert_memory_equal(r->payload, pl, r->plen);
        }
    }
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 50);
    assert_int_equal(h->broker_publish_in, 0);
    done(h);
}

/* A packet the engine would refuse goes to the broker unchanged; the broker judges it (here
 * it closes the connection) and everyone else goes on. */
static void test_malformed_judged_by_broker(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "m", 0);
    int bad = h_open(h);
    assert_true(h_connect(h, bad, MQO_MQTT_V311, "bad", 1, 60));
    const uint8_t junk[] = {0x30, 0x05, 0x00, 0x09, 'a', 'b', 'c'}; /* topic length overruns */
    h_send(h, bad, junk, sizeof junk);
    h_run(h);
    assert_int_equal(h->cl[bad].b_refused, 1); /* the broker got it and refused it */
    assert_true(h->cl[bad].closed);
    assert_int_equal(h_count_type(h, bad, MQO_DISCONNECT), 0); /* the engine answers nothing */
    assert_int_equal(st(h)->protocol_errors, 1);
    h_publish(h, 0, "m", "still", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "m"), 1);
    assert_int_equal(h_count_pub(h, 2, "m"), 1);
    assert_int_equal(st(h)->consumed, 1);
    done(h);
}

/* A packet the engine does not decode but the broker accepts (here a lenient broker that
 * ignores it): the connection is relayed from then on. Its later PUBLISHes and the deliveries
 * to it go through the broker; everyone else is still served by the offload. */
static void test_undecoded_packet_relays_connection(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "rl/#", 0);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "relayed", 1, 60));
    assert_int_equal(h_subscribe(h, p, "rl/back", 0, 0), 0);
    h_publish(h, p, "rl/a", "before", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    h->cl[p].b_lenient = 1;
    const uint8_t junk[] = {0x30, 0x05, 0x00, 0x09, 'a', 'b', 'c'};
    h_send(h, p, junk, sizeof junk);
    h_run(h);
    assert_false(h->cl[p].closed);
    assert_int_equal(st(h)->relay_conns, 1);
    assert_int_equal(st(h)->unknown_conns, 0); /* a PUBLISH changes no subscription */
    h_publish(h, p, "rl/a", "after", 0, 0); /* from the relayed connection */
    h_publish(h, 0, "rl/back", "to-relayed", 0, 0); /* to it */
    h_run(h); /* (the next one waits until the broker delivered that one: ordering) */
    h_publish(h, 0, "rl/a", "others", 0, 0); /* between the others: offloaded */
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_RELAY], 2);
    assert_int_equal(h_count_pub(h, 1, "rl/a"), 3);
    assert_int_equal(h_count_pub(h, p, "rl/back"), 1);
    assert_int_equal(st(h)->consumed, 2);
    /* an undecoded SUBSCRIBE: the broker may hold a subscription nobody knows of, so nothing
     * is offloaded while that connection lives */
    const uint8_t badsub[] = {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x07};
    h_send(h, p, badsub, sizeof badsub);
    h_run(h);
    assert_int_equal(st(h)->unknown_conns, 1);
    h_publish(h, 0, "rl/a", "unknown", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_UNKNOWN_CONN], 1);
    h_close(h, p);
    assert_int_equal(st(h)->unknown_conns, 0);
    assert_int_equal(st(h)->relay_conns, 0);
    done(h);
}

/* Not MQTT at all: the broker judges it (and closes), not the engine. */
static void test_first_byte_not_connect(void **s)
{
    struct harness *h = mk(NULL);
    int c = h_open(h);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    h_send(h, c, http, strlen(http));
    h_run(h);
    assert_true(h->cl[c].b_refused >= 1);
    assert_true(h->cl[c].closed);
    done(h);
}

/* The offload's own QoS 1 delivery answered with PUBREC: the broker would close the client
 * (QoS mismatch); it gets an identifier it refuses the same way. */
static void test_pubrec_for_offload_delivery(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "pr", 1);
    h->cl[1].auto_ack = 0;
    h_publish(h, 0, "pr", "x", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    const struct h_rx *r = h_pub(h, 1, 0);
    assert_non_null(r);
    uint8_t a[4];
    h_send(h, 1, a, hb_ack(a, MQO_PUBREC, r->pid));
    h_run(h);
    assert_int_equal(h->cl[1].b_refused, 1);
    assert_true(h->cl[1].closed);
    done(h);
}

/* Mosquitto's PUBACK says "no matching subscribers" only when no subscription matched at all:
 * the publisher's own no-local subscription is a match. */
static void test_puback_reason_own_no_local(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    h->cl[p].version = MQO_MQTT_V5;
    assert_true(h_connect(h, p, MQO_MQTT_V5, "nl", 1, 60));
    assert_int_equal(h_subscribe(h, p, "self", 1 | MQO_SUBOPT_NO_LOCAL, 0), 1);
    h_publish(h, p, "self", "x", 1, 0);
    h_publish(h, p, "nobody", "y", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 2);
    size_t k = 0;
    uint8_t reasons[2];
    for (size_t j = 0; j < h->cl[p].n_rx && k < 2; j++)
        if (h->cl[p].rx[j].type == MQO_PUBACK)
            reasons[k++] = h->cl[p].rx[j].reason;
    assert_int_equal(k, 2);
    assert_int_equal(reasons[0], 0x00);
    assert_int_equal(reasons[1], MQO_RC_NO_MATCHING_SUBSCRIBERS);
    done(h);
}

/* A Mosquitto bridge (protocol level 0x84) has implied no-local: it does not get its own
 * publishes back. */
static void test_bridge_implied_no_local(void **s)
{
    struct harness *h = mk(NULL);
    int br = h_open(h);
    uint8_t b[256];
    size_t n = hb_connect(b, MQO_MQTT_V311, "bridge1", 1, 60, NULL, 0, 0);
    for (size_t i = 0; i + 4 < n; i++)
        if (b[i] == 'M' && b[i + 1] == 'Q' && b[i + 2] == 'T' && b[i + 3] == 'T') {
            b[i + 4] |= 0x80;
            break;
        }
    h_send(h, br, b, n);
    h_run(h);
    assert_int_equal(h_count_type(h, br, MQO_CONNACK), 1);
    assert_int_equal(h_subscribe(h, br, "bt/#", 0, 0), 0);
    int sub = h_open(h);
    assert_true(h_connect(h, sub, MQO_MQTT_V311, "plain", 1, 60));
    assert_int_equal(h_subscribe(h, sub, "bt/#", 0, 0), 0);
    h_publish(h, br, "bt/x", "from-bridge", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, sub, "bt/x"), 1);
    assert_int_equal(h_count_pub(h, br, "bt/x"), 0);
    done(h);
}

/* MQTT 3.1 has no session-present flag: a resumed persistent session keeps the
 * subscriptions the engine knew (held: the broker delivers), it is not taken for a new one. */
static void test_v31_resumed_session(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    assert_true(h_connect(h, p, MQO_MQTT_V311, "p31", 1, 60));
    int c = h_open(h);
    assert_true(h_connect(h, c, MQO_MQTT_V31, "v31", 0, 60));
    /* it may have resumed a session from before the engine saw it: unknown */
    assert_int_equal(st(h)->blind_sessions, 1);
    assert_int_equal(h_subscribe(h, c, "t31", 0, 0), 0);
    h_close(h, c);
    int c2 = h_open(h);
    assert_true(h_connect(h, c2, MQO_MQTT_V31, "v31", 0, 60));
    h_publish(h, p, "t31", "after-resume", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, c2, "t31"), 1);
    /* a 3.1 client id the engine never saw, resuming: its subscriptions are unknown */
    int c3 = h_open(h);
    assert_true(h_connect(h, c3, MQO_MQTT_V31, "never-seen", 0, 60));
    assert_int_equal(st(h)->blind_sessions, 2);
    /* a clean 3.1 connect ends what the broker held */
    h_close(h, c3);
    int c4 = h_open(h);
    assert_true(h_connect(h, c4, MQO_MQTT_V31, "never-seen", 1, 60));
    assert_int_equal(st(h)->blind_sessions, 1);
    done(h);
}

/* The client sees the packet identifiers Mosquitto would give: one sequence over the
 * broker's deliveries and the offload's. */
static void test_packet_ids_one_sequence(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "seq", 2);
    h_publish(h, 0, "seq", "a", 1, 0); /* offloaded */
    h_run(h);
    h_publish(h, 0, "seq", "b", 2, 0); /* QoS 2: the broker's */
    h_run(h);
    h_publish(h, 0, "seq", "c", 1, 0); /* offloaded */
    h_run(h);
    h_publish(h, 0, "seq", "d", 2, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "seq"), 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(h_pub(h, 1, (size_t)k)->pid, k + 1);
    assert_int_equal(st(h)->consumed, 2);
    done(h);
}

/* A mount point: the broker prefixes topics and filters and delivers the prefixed topic; the
 * offload does the same. Glued to the filter ("mp" + "+/x"), a wildcard becomes a literal that
 * matches nothing, in the broker as here. */
static void test_mount_point(void **s)
{
    for (int glued = 0; glued < 2; glued++) {
        struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN,
                                     .mount_point = glued ? "mp" : "mp/"};
        struct harness *h = mk(&cfg);
        snprintf(h->mount, sizeof h->mount, "%s", cfg.mount_point);
        setup_fanout(h, 2, MQO_MQTT_V311, "a/b", 0);
        int w = h_open(h);
        assert_true(h_connect(h, w, MQO_MQTT_V311, "wild", 1, 60));
        assert_int_equal(h_subscribe(h, w, "+/b", 0, 0), 0);
        h_publish(h, 0, "a/b", "m", 0, 0);
        h_run(h);
        char want[32];
        snprintf(want, sizeof want, "%sa/b", cfg.mount_point);
        assert_int_equal(h_count_pub(h, 1, want), 1);
        assert_int_equal(h_count_pub(h, 2, want), 1);
        assert_int_equal(h_count_pub(h, w, want), glued ? 0 : 1);
        assert_int_equal(st(h)->consumed, 1);
        assert_int_equal(h->broker_publish_in, 0);
        done(h);
    }
}

/* Limits of the broker's configuration: what it would refuse goes to it. */
static void test_broker_limits(void **s)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN,
                                 .message_size_limit = 10, .broker_max_packet = 200,
                                 .max_qos = 1};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 1, MQO_MQTT_V311, "lim", 1);
    h_publish(h, 0, "lim", "0123456789", 0, 0); /* at the limit: offloaded */
    h_publish(h, 0, "lim", "0123456789X", 0, 0); /* over: the broker's */
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(st(h)->pt_reason[MQO_PT_BROKER_LIMIT], 1);
    done(h);
    struct mqo_engine_cfg up = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN,
                                .upgrade_outgoing_qos = 1};
    h = mk(&up);
    setup_fanout(h, 1, MQO_MQTT_V311, "up", 1);
    h_publish(h, 0, "up", "x", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_pub(h, 1, 0)->qos, 1); /* upgraded to the subscription's QoS */
    done(h);
}

static void test_backpressure_room(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 2, MQO_MQTT_V311, "bp", 1);
    h->cl[2].room = 0;
    h_publish(h, 0, "bp", "q0", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->dropped_qos0, 1); /* QoS 0 over the limit: dropped, counted */
    assert_int_equal(h_count_pub(h, 1, "bp"), 1);
    h_publish(h, 0, "bp", "q1", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_ROOM], 1); /* QoS 1: never dropped */
    assert_int_equal(h_count_pub(h, 2, "bp"), 1);
    done(h);
}

/* The client's Receive Maximum goes to the broker unchanged and bounds the broker's and the
 * offload's QoS 1 deliveries together: a broker PUBLISH that would exceed it waits until one
 * of the offload's is acknowledged. */
static void test_receive_maximum_shared(void **s)
{
    struct harness *h = mk(NULL);
    int p = h_open(h);
    h->cl[p].version = MQO_MQTT_V5;
    assert_true(h_connect(h, p, MQO_MQTT_V5, "p", 1, 60));
    int sb = h_open(h);
    uint8_t b[256];
    h->cl[sb].version = MQO_MQTT_V5;
    h->cl[sb].c_recv_max = 2;
    h_send(h, sb, b, hb_connect(b, MQO_MQTT_V5, "rm", 1, 60, NULL, 0, 2));
    h_run(h);
    assert_int_equal(h->cl[sb].b_recv_max, 2); /* unchanged on the wire */
    h->cl[sb].auto_ack = 0;
    assert_int_equal(h_subscribe(h, sb, "r", 1, 0), 1);
    for (int k = 0; k < 4; k++) {
        char pl[16];
        snprintf(pl, sizeof pl, "m%d", k);
        h_publish(h, p, "r", pl, 1, 0);
    }
    h_run(h);
    /* two offloaded, two through the broker, which sent the third: held */
    assert_int_equal(st(h)->consumed, 2);
    assert_int_equal(h_count_pub(h, sb, "r"), 2);
    assert_true(st(h)->s2c_holds >= 1);
    h_ack(h, sb, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, sb, "r"), 3);
    h_ack(h, sb, 1);
    h_run(h);
    assert_int_equal(h_count_pub(h, sb, "r"), 4);
    h_ack(h, sb, 2);
    h_ack(h, sb, 3);
    h_run(h);
    for (int k = 0; k < 4; k++) {
        char pl[16];
        snprintf(pl, sizeof pl, "m%d", k);
        const struct h_rx *r = h_pub(h, sb, (size_t)k);
        assert_int_equal(r->plen, strlen(pl));
        assert_memory_equal(r->payload, pl, r->plen);
    }
    assert_int_equal(h->cl[sb].c_recv_violations, 0);
    assert_int_equal(h->cl[sb].c_inflight_max, 2);
    /* everything acknowledged: the offload takes slots again */
    h_publish(h, p, "r", "m4", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 3);
    done(h);
}

/* Packets larger than max_buffer stream on without being held whole: a large PUBLISH passes
 * through (to every subscriber, through the broker), large deliveries from the broker reach
 * subscribers with their identifiers remapped, and the order rules still hold. */
static void test_streaming_large_packets(void **s)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN, .max_buffer = 256};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 3, MQO_MQTT_V311, "big/#", 1);
    static uint8_t payload[5000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7);
    static uint8_t pkt[6000];
    size_t n = hb_publish(pkt, MQO_MQTT_V311, "big/a", payload, 500, 1, 0, 7, 0);
    h_send(h, 0, pkt, n);
    h_publish(h, 0, "big/a", "small1", 1, 0);
    h_run(h);
    n = hb_publish(pkt, MQO_MQTT_V311, "big/a", payload, sizeof payload, 0, 0, 0, 0);
    h_send_bytewise(h, 0, pkt, 100);
    h_send(h, 0, pkt + 100, n - 100);
    h_publish(h, 0, "big/a", "small2", 1, 0);
    h_run(h);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(h_count_pub(h, i, "big/a"), 4);
        assert_int_equal(h_pub(h, i, 0)->plen, 500);
        assert_memory_equal(h_pub(h, i, 0)->payload, payload, 500);
        assert_memory_equal(h_pub(h, i, 1)->payload, "small1", 6);
        assert_int_equal(h_pub(h, i, 2)->plen, sizeof payload);
        assert_memory_equal(h_pub(h, i, 3)->payload, "small2", 6);
    }
    assert_int_equal(st(h)->pt_reason[MQO_PT_STREAMED], 2);
    assert_true(st(h)->streamed >= 2 + 2 * 3);
    assert_int_equal(h_count_type(h, 0, MQO_PUBACK), 3);
    /* nothing is left held, memory stays bounded */
    assert_true(mqo_engine_input_room(h->cl[0].conn, MQO_C2S) == 256);
    /* afterwards small messages are offloaded again */
    h_publish(h, 0, "big/a", "small3", 0, 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, 1, "big/a"), 5);
    assert_true(st(h)->consumed >= 1);
    done(h);
}

static void test_dollar_and_qos2_passthrough(void **s)
{
    struct harness *h = mk(NULL);
    setup_fanout(h, 1, MQO_MQTT_V311, "#", 2);
    h_publish(h, 0, "$x/y", "d", 0, 0);
    h_publish(h, 0, "q2", "2", 2, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_DOLLAR], 1);
    assert_int_equal(st(h)->pt_reason[MQO_PT_QOS2], 1);
    assert_int_equal(h_count_pub(h, 1, "q2"), 1);
    assert_int_equal(h_count_pub(h, 1, "$x/y"), 0); /* '#' does not match '$' topics */
    done(h);
}

static void test_broker_only_filter(void **s)
{
    const char *bo[] = {"bridge/#"};
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN, .broker_only = bo,
                                 .n_broker_only = 1};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 1, MQO_MQTT_V311, "#", 0);
    h_publish(h, 0, "bridge/a", "1", 0, 0);
    h_run(h); /* without this, "local" would wait for "bridge/a" (ordering) */
    h_publish(h, 0, "local", "2", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_BROKER_ONLY], 1);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, 1, NULL), 2);
    done(h);
}

/* The engine finds every connection by its id, and walks each once, while thousands open and
 * close in any order (the table they are kept in grows, and a removal moves others). */
static void test_conn_table(void **s)
{
    struct mqo_engine_cfg cfg = {.acl_mode = MQO_ACL_OPEN};
    struct mqo_engine *e = mqo_engine_new(&cfg);
    assert_non_null(e);
    enum { N = 3000 };
    struct mqo_conn **c = calloc(N, sizeof *c);
    uint64_t *id = calloc(N, sizeof *id);
    assert_true(c && id);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            if (!c[i]) {
                assert_non_null(c[i] = mqo_engine_conn_open(e, c + i, 0));
                id[i] = mqo_conn_id(c[i]);
            }
        assert_int_equal(mqo_engine_conn_count(e), N);
        for (int i = 0; i < N; i++)
            assert_ptr_equal(mqo_engine_conn_find(e, id[i]), c[i]);
        /* a different third each round, from both ends */
        for (int k = 0; k < N; k++) {
            int i = k % 2 ? k : N - 1 - k;
            if (i % 3 == round) {
                mqo_engine_conn_close(e, c[i], 0);
                c[i] = NULL;
            }
        }
        size_t open = 0;
        for (int i = 0; i < N; i++) {
            assert_ptr_equal(mqo_engine_conn_find(e, id[i]), c[i]);
            open += c[i] != NULL;
        }
        assert_int_equal(mqo_engine_conn_count(e), open);
        assert_null(mqo_engine_conn_find(e, 0));
    }
    mqo_engine_free(e); /* closes the rest: ASan finds any left behind */
    free(c);
    free(id);
}

/* Log lines name the client by id (once its CONNECT is read) and address. */
static void test_conn_who(void **s)
{
    struct harness *h = mk(NULL);
    int i = h_open(h);
    char who[200];
    h_set_peer(h, i, "198.18.0.1:40001");
    assert_string_equal(mqo_conn_who(h->cl[i].conn, who, sizeof who),
                        "a client from 198.18.0.1:40001 (connection 1)");
    assert_true(h_connect(h, i, MQO_MQTT_V311, "pub-1", 1, 60));
    assert_string_equal(mqo_conn_who(h->cl[i].conn, who, sizeof who),
                        "client 'pub-1' from 198.18.0.1:40001");
    /* the address is kept in binary: IPv6 (a zone is dropped), and anything else is unknown */
    h_set_peer(h, i, "[::1]:1883");
    assert_string_equal(mqo_conn_who(h->cl[i].conn, who, sizeof who),
                        "client 'pub-1' from [::1]:1883");
    h_set_peer(h, i, "[fe80::1%veth0]:7");
    assert_string_equal(mqo_conn_who(h->cl[i].conn, who, sizeof who),
                        "client 'pub-1' from [fe80::1]:7");
    const char *bad[] = {"", "198.18.0.1", "198.18.0.1:", "198.18.0.1:65536", "x:1", "[::1:1",
                         "198.18.0.1:1a", "[]:1"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        h_set_peer(h, i, bad[k]);
        assert_string_equal(mqo_conn_who(h->cl[i].conn, who, sizeof who),
                            "client 'pub-1' from an unknown address");
    }
    /* a second connection takes the session over: the first (which shared the session's copy
     * of the id) gets a copy of its own, and the broker closes it */
    int j = h_open(h);
    assert_true(h_connect(h, j, MQO_MQTT_V311, "pub-1", 1, 60));
    if (h->cl[i].conn)
        assert_string_equal(mqo_conn_who(h->cl[i].conn, who, sizeof who),
                            "client 'pub-1' from an unknown address");
    h_set_peer(h, j, "198.18.0.1:40002");
    assert_string_equal(mqo_conn_who(h->cl[j].conn, who, sizeof who),
                        "client 'pub-1' from 198.18.0.1:40002");
    done(h);
}

/* Broker-only filters replaced while the engine runs (SIGHUP with a changed configuration):
 * from the next PUBLISH on, what they match goes to the broker, what they no longer match is
 * offloaded again, and the subscriber gets everything once, in order. */
static void test_broker_only_at_run_time(void **s)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN};
    struct harness *h = mk(&cfg);
    setup_fanout(h, 1, MQO_MQTT_V311, "#", 1);
    h_publish(h, 0, "b/a", "1", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    const char *bo[] = {"b/#", "x"};
    assert_int_equal(mqo_engine_set_broker_only(h->eng, bo, 2), 0);
    h_publish(h, 0, "b/a", "2", 1, 0);
    h_publish(h, 0, "c", "3", 1, 0); /* waits for "2" in the broker (ordering), then offloaded */
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_BROKER_ONLY], 1);
    const char *bad[] = {"ok/#", "a/#/b"};
    assert_int_equal(mqo_engine_set_broker_only(h->eng, bad, 2), -EINVAL);
    h_publish(h, 0, "b/a", "4", 1, 0); /* the filters are as before the refused change */
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_BROKER_ONLY], 2);
    assert_int_equal(mqo_engine_set_broker_only(h->eng, NULL, 0), 0);
    h_advance(h, 3000);
    h_publish(h, 0, "b/a", "5", 1, 0);
    h_run(h);
    assert_int_equal(st(h)->pt_reason[MQO_PT_BROKER_ONLY], 2);
    assert_int_equal(h_count_pub(h, 1, NULL), 5);
    for (int k = 0; k < 5; k++) {
        const struct h_rx *r = h_pub(h, 1, (size_t)k);
        assert_int_equal(r->plen, 1);
        assert_int_equal(r->payload[0], '1' + k);
    }
    assert_true(st(h)->consumed >= 2);
    done(h);
}

/* Differential: the same random script direct to the broker and through the engine gives every
 * subscriber the same messages in the same order per publisher. */
static void test_differential_vs_direct(void **s)
{
    for (unsigned seed = 1; seed <= 20; seed++) {
        struct harness *d = malloc(sizeof *d), *o = malloc(sizeof *o);
        h_init(d, NULL, 1);
        h_init(o, NULL, 0);
        h_random_script(d, seed, 6, 300, 1);
        h_random_script(o, seed, 6, 300, 1);
        for (int i = 3; i < 9; i++) {
            char why[256];
            if (!h_same_per_publisher(d, o, i, 3, why, sizeof why))
                fail_msg("seed %u: %s", seed, why);
        }
        const struct mqo_engine_stats *es = mqo_engine_stats(o->eng);
        if (es->consumed == 0) {
            for (int r = 0; r < MQO_PT__COUNT; r++)
                if (es->pt_reason[r])
                    fprintf(stderr, "seed %u: %s %llu\n", seed, mqo_pt_reason_name(r),
                            (unsigned long long)es->pt_reason[r]);
        }
        assert_true(es->consumed > 0);
        h_free(d);
        h_free(o);
        free(d);
        free(o);
    }
}

/* A retained message nobody subscribes to goes to the broker with nothing to wait for; a
 * subscription reaches the broker before it (another connection, here by the harness's order:
 * the subscriber's bytes go first) and gets it. The publisher's next message must reach that
 * subscriber too, as with any broker: it is not offloaded until an ordering barrier (a ping
 * sent after it) proves the broker took the first. Before, it was consumed at once with no
 * subscriber, and the subscriber got the earlier message but not the later one. */
static void test_passthrough_in_flight_then_subscribe(void **s)
{
    struct harness *h = mk(NULL);
    int q = h_open(h), p = h_open(h);
    assert_true(h_connect(h, q, MQO_MQTT_V311, "sub", 1, 60));
    assert_true(h_connect(h, p, MQO_MQTT_V311, "pub", 1, 60));
    h_publish(h, p, "a", "first", 0, 1); /* retained: the broker's */
    h_publish(h, p, "a", "second", 0, 0);
    assert_int_equal(h_subscribe(h, q, "a", 0, 0), 0);
    h_run(h);
    assert_int_equal(h_count_pub(h, q, "a"), 2);
    assert_memory_equal(h_pub(h, q, 0)->payload, "first", 5);
    assert_int_equal(h_pub(h, q, 0)->retain, 0); /* live: the subscription came first */
    assert_memory_equal(h_pub(h, q, 1)->payload, "second", 6);
    assert_int_equal(st(h)->consumed, 0);
    /* the barrier's answer came back: the next one is offloaded */
    h_publish(h, p, "a", "third", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);
    assert_int_equal(h_count_pub(h, q, "a"), 3);
    assert_int_equal(h_count_type(h, p, MQO_PINGRESP), 0);
    done(h);
}

int main(void)
{
    mqo_log_set_level(MQO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qos0_fanout_offloaded),
        cmocka_unit_test(test_qos1_fanout_puback_and_acks_absorbed),
        cmocka_unit_test(test_qos_downgrade_min_granted),
        cmocka_unit_test(test_no_acl_source_passes_everything),
        cmocka_unit_test(test_publisher_without_connack_not_served),
        cmocka_unit_test(test_suback_denied_never_served),
        cmocka_unit_test(test_retained_passthrough),
        cmocka_unit_test(test_unsubscribe_stops_delivery),
        cmocka_unit_test(test_publish_during_unsubscribe),
        cmocka_unit_test(test_pid_collision_with_broker_qos1),
        cmocka_unit_test(test_keepalive_synthesis),
        cmocka_unit_test(test_keepalive_broker_closes_without_offload),
        cmocka_unit_test(test_silent_client_not_kept_alive),
        cmocka_unit_test(test_v5_alias_and_no_local),
        cmocka_unit_test(test_v5_subscription_ids),
        cmocka_unit_test(test_v3_v5_mixed),
        cmocka_unit_test(test_passthrough_then_offload_order),
        cmocka_unit_test(test_order_many_holds),
        cmocka_unit_test(test_order_hold_expires),
        cmocka_unit_test(test_disconnect_mid_flight),
        cmocka_unit_test(test_persistent_session_held),
        cmocka_unit_test(test_unknown_session_resume),
        cmocka_unit_test(test_subscribe_before_connack_then_gone),
        cmocka_unit_test(test_shared_and_overlap_passthrough),
        cmocka_unit_test(test_overlap_once_mode),
        cmocka_unit_test(test_acl_file_write_and_read),
        cmocka_unit_test(test_bytewise_and_packed),
        cmocka_unit_test(test_malformed_judged_by_broker),
        cmocka_unit_test(test_undecoded_packet_relays_connection),
        cmocka_unit_test(test_first_byte_not_connect),
        cmocka_unit_test(test_pubrec_for_offload_delivery),
        cmocka_unit_test(test_puback_reason_own_no_local),
        cmocka_unit_test(test_bridge_implied_no_local),
        cmocka_unit_test(test_v31_resumed_session),
        cmocka_unit_test(test_packet_ids_one_sequence),
        cmocka_unit_test(test_mount_point),
        cmocka_unit_test(test_broker_limits),
        cmocka_unit_test(test_backpressure_room),
        cmocka_unit_test(test_receive_maximum_shared),
        cmocka_unit_test(test_streaming_large_packets),
        cmocka_unit_test(test_dollar_and_qos2_passthrough),
        cmocka_unit_test(test_broker_only_filter),
        cmocka_unit_test(test_broker_only_at_run_time),
        cmocka_unit_test(test_conn_who),
        cmocka_unit_test(test_conn_table),
        cmocka_unit_test(test_passthrough_in_flight_then_subscribe),
        cmocka_unit_test(test_differential_vs_direct),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
