/* Engine fuzz target. The first byte picks the mode (value % 4):
 *  0, 2: a script of client operations (connect, subscribe, unsubscribe, publish with random
 *        QoS/retain/version, clock advance, close/reconnect) run twice, once straight to the
 *        reference broker and once through the engine; every subscriber must receive the same
 *        messages in the same order per publisher (abort otherwise);
 *  1:    raw bytes interleaved on both streams of a few connections; the engine must account
 *        for every input byte exactly once (forwarded or consumed), never more, and not crash;
 *  5 (1 with bit 2 set): forged segments: two clients connected through the splice, then frames built from the
 *        input (side, sequence and ACK offsets relative to the connection, flags, window,
 *        payload) injected from either end, interleaved with clock jumps; the splice must not
 *        crash or touch memory it does not own, and the publisher's messages sent afterwards
 *        must not make it misbehave (sanitizers check);
 *  3:    the script of mode 0 through the monitor-mode splice over a TCP wire model that
 *        loses, duplicates and reorders frames (rates from the second byte): the same
 *        per-publisher order and content as straight to the broker, and no segment a correct
 *        TCP peer would refuse. Over that wire, packets of different clients sent at the same
 *        time (a PUBLISH, then another client's SUBSCRIBE) can reach the broker in either
 *        order, so the straight run's broker takes the clients' packets in the order the
 *        spliced run's broker took them (or the offload consumed them); what reached the broker
 *        must be what the clients sent, each packet once, in order (h_same_as_broker).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "harness.h"
#include "mqtt/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rd {
    const uint8_t *p;
    size_t n, i;
};
static unsigned next(struct rd *r) { return r->i < r->n ? r->p[r->i++] : 0; }

#define NPUB 2
#define NSUB 4

static void script(struct harness *h, const uint8_t *p, size_t n)
{
    static const char *topics[] = {"a", "a/b", "b/c", "a/b/c", "x"};
    static const char *filters[] = {"a", "a/+", "#", "a/#", "+/c", "x", "$share/g/a"};
    struct rd r = {p, n, 0};
    for (int i = 0; i < NPUB + NSUB; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "c%d", i);
        h_open(h);
        h_connect(h, i, (uint8_t)((next(&r) & 1) ? MQO_MQTT_V5 : MQO_MQTT_V311), cid, 1, 10);
    }
    int seq = 0;
    int trace = getenv("FUZZ_ENGINE_DUMP") != NULL;
    while (r.i < r.n && seq < 400) {
        unsigned op = next(&r), a = next(&r), b = next(&r);
        int sb = NPUB + (int)(a % NSUB);
        if (trace)
            fprintf(stderr, "op %u a %u b %u (sub %d)\n", op % 8, a, b, sb);
        switch (op % 8) {
        case 0:
            h_subscribe(h, sb, filters[b % 7], (uint8_t)((b >> 4) % 3), 0);
            break;
        case 1:
            h_unsubscribe(h, sb, filters[b % 7]);
            break;
        case 2:
            h_advance(h, (b % 8) * 250);
            break;
        case 3:
            h_run(h);
            break;
        default: {
            char pl[24];
            int pub = (int)(a % NPUB);
            snprintf(pl, sizeof pl, "p%d:%d", pub, seq++);
            h_publish(h, pub, topics[b % 5], pl, (uint8_t)((b >> 3) % 3), ((b >> 5) & 3) == 0);
            if (trace && h->splice)
                fprintf(stderr, "  publish %s %s q%d r%d: consumed %llu\n", pl, topics[b % 5],
                        (b >> 3) % 3, ((b >> 5) & 3) == 0,
                        (unsigned long long)h_stats(h)->consumed);
            if (trace && h->cl[pub].conn)
                fprintf(stderr, "  publish %s %s q%d r%d: %s\n", pl, topics[b % 5], (b >> 3) % 3,
                        ((b >> 5) & 3) == 0, mqo_pt_reason_name(mqo_conn_last_reason(h->cl[pub].conn)));
            break;
        }
        }
    }
    h_run(h);
}

struct script_args {
    const uint8_t *p;
    size_t n;
};

static void script_cb(struct harness *h, const void *arg)
{
    const struct script_args *a = arg;
    script(h, a->p, a->n);
}

static void dump(const char *what, struct harness *h, int i)
{
    fprintf(stderr, "%s sub %d:", what, i);
    for (size_t k = 0; h_pub(h, i, k); k++) {
        const struct h_rx *r = h_pub(h, i, k);
        fprintf(stderr, " %s=%.*s/q%d%s", r->topic, (int)r->plen, (const char *)r->payload, r->qos,
                r->retain ? "R" : "");
    }
    fprintf(stderr, "\n");
}

static void compare(struct harness *d, struct harness *o)
{
    if (getenv("FUZZ_ENGINE_DUMP"))
        for (int i = NPUB; i < NPUB + NSUB; i++) {
            dump("direct ", d, i);
            dump("offload", o, i);
        }
    for (int i = NPUB; i < NPUB + NSUB; i++) {
        char why[256];
        if (!h_same_per_publisher(d, o, i, NPUB, why, sizeof why)) {
            fprintf(stderr, "direct vs offloaded: %s (client %d connected %d/%d, closed %d/%d)\n", why, i,
                    d->cl[i].b_connected, o->cl[i].b_connected, d->cl[i].closed, o->cl[i].closed);
            abort();
        }
    }
}

/* ---- raw mode ---- */

static size_t fed[4][2], acct[4][2];

static int cidx(struct mqo_conn *c) { return (int)(intptr_t)mqo_conn_ud(c); }
static void r_fwd(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n)
{
    acct[cidx(c)][s] += n;
}
static void r_con(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) { acct[cidx(c)][s] += n; }
static void r_ins(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o)
{
    uint8_t *tmp = malloc(mqo_out_len(o));
    mqo_out_copy(o, tmp); /* touches every byte: ASan checks the shapes */
    free(tmp);
}
static void r_close(void *ud, struct mqo_conn *c, int reason) {}

static void raw(const uint8_t *p, size_t n)
{
    struct mqo_engine_cfg cfg = {.exclusive = 1, .acl_mode = MQO_ACL_OPEN,
                                 .ops = {.forward = r_fwd, .consume = r_con, .insert = r_ins,
                                         .close = r_close}};
    struct mqo_engine *e = mqo_engine_new(&cfg);
    struct mqo_conn *c[4];
    memset(fed, 0, sizeof fed);
    memset(acct, 0, sizeof acct);
    for (int i = 0; i < 4; i++)
        c[i] = mqo_engine_conn_open(e, (void *)(intptr_t)i, 0);
    uint64_t now = 1;
    size_t i = 0;
    while (i + 2 < n) {
        int ci = p[i] & 3;
        enum mqo_dir s = (p[i] >> 2) & 1 ? MQO_S2C : MQO_C2S;
        size_t len = p[i + 1] % 64;
        i += 2;
        if (len > n - i)
            len = n - i;
        mqo_engine_input(e, c[ci], s, p + i, len, now);
        fed[ci][s] += len;
        i += len;
        now += 50000000ull;
        mqo_engine_tick(e, now);
        for (int k = 0; k < 4; k++)
            for (int d = 0; d < 2; d++)
                if (acct[k][d] > fed[k][d])
                    abort(); /* accounted for bytes never fed */
    }
    mqo_engine_free(e);
}

static void forged(const uint8_t *p, size_t n)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, NULL, H_SPLICE);
    int a = h_open(h), b = h_open(h);
    h_connect(h, a, MQO_MQTT_V311, "fa", 1, 30);
    h_connect(h, b, MQO_MQTT_V5, "fb", 1, 30);
    h_subscribe(h, b, "f/#", 1, 0);
    struct rd r = {p, n, 0};
    uint8_t frame[2048];
    while (r.i < r.n) {
        unsigned op = next(&r);
        struct h_client *cl = &h->cl[(op & 1) ? b : a];
        struct ts_ep *e = (op & 2) ? cl->bep : cl->cep;
        int32_t dseq = (int8_t)next(&r) * (int32_t)(1 + next(&r));
        int32_t dack = (int8_t)next(&r) * (int32_t)(1 + next(&r));
        uint8_t flags = (uint8_t)next(&r);
        size_t len = next(&r) % 200;
        if (len > r.n - r.i)
            len = r.n - r.i;
        size_t fl = ts_build(e, frame, e->isn + 1 + (uint32_t)e->snd_nxt + (uint32_t)dseq,
                             e->peer_isn + 1 + (uint32_t)e->rcv_nxt + (uint32_t)dack, flags,
                             p + r.i, len, (op & 4) != 0, (uint32_t)(h->net.now / 1000000));
        r.i += len;
        ts_inject(&h->net, e, frame, fl);
        if (op & 8)
            h_advance(h, (op >> 4) * 50);
        else
            h_run(h);
    }
    h_publish(h, a, "f/x", "after", 1, 0);
    h_run(h);
    h_free(h);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mqo_log_set_level(MQO_LOG_ERROR);
        quiet = 1;
    }
    if (size < 1)
        return 0;
#ifdef FUZZ_ENGINE_MODE
    /* a campaign on one mode (-DFUZZ_ENGINE_MODE=3): other inputs are skipped, so what it
     * finds replays the same in the ordinary build */
    if ((data[0] & 3) != (FUZZ_ENGINE_MODE & 3))
        return 0;
#endif
    if ((data[0] & 3) == 1) {
        if (data[0] & 4)
            forged(data + 1, size - 1);
        else
            raw(data + 1, size - 1);
        return 0;
    }
    int splice = (data[0] & 3) == 3;
    if (splice && size < 2)
        return 0;
    struct harness *o = malloc(sizeof *o);
    h_init(o, NULL, splice ? H_SPLICE : H_ENGINE);
    if (splice) {
        uint8_t imp = data[1];
        for (int k = 0; k < 2; k++) {
            o->net.wire.loss_pct[k] = imp & 7;          /* 0..7 % */
            o->net.wire.dup_pct[k] = (imp >> 3) & 3;    /* 0..3 % */
            o->net.wire.reorder_pct[k] = (imp >> 5) & 7; /* 0..7 % */
        }
        o->net.wire.rng = imp;
        data++;
        size--;
    }
    script(o, data + 1, size - 1);
    struct harness *d;
    /* FUZZ_ENGINE_SCRIPT_ORDER: mode 3 against a straight run in script order instead, the
     * old reference, which also fails on legitimate crossings (to tell them apart) */
    if (splice && !getenv("FUZZ_ENGINE_SCRIPT_ORDER")) {
        struct script_args a = {data + 1, size - 1};
        char why[512];
        int same = h_same_as_broker(o, script_cb, &a, NPUB, NPUB + NSUB, NPUB, why, sizeof why, &d);
        if (getenv("FUZZ_ENGINE_DUMP")) {
            h_dump_broker_order(o, stderr);
            for (int i = NPUB; i < NPUB + NSUB && d; i++) {
                dump("direct ", d, i);
                dump("offload", o, i);
            }
        }
        if (!same) {
            fprintf(stderr, "straight to the broker, in the order it took things through the "
                            "splice, vs through the splice: %s\n", why);
            abort();
        }
    } else {
        d = malloc(sizeof *d);
        h_init(d, NULL, H_DIRECT);
        script(d, data + 1, size - 1);
        if (splice && getenv("FUZZ_ENGINE_DUMP"))
            h_dump_broker_order(o, stderr);
        compare(d, o);
    }
    if (splice)
        for (int i = 0; i < NPUB + NSUB; i++)
            if (o->cl[i].cep && (o->cl[i].cep->violations || o->cl[i].bep->violations)) {
                fprintf(stderr, "client %d: a segment a TCP peer would refuse\n", i);
                abort();
            }
    if (d) {
        h_free(d);
        free(d);
    }
    h_free(o);
    free(o);
    return 0;
}
