/* plugin/: the broker plugin's table and the persistence file reader, and the protocol end to
 * end: the lines the table emits, read by mqoff's side (ctl/bvproto) into an engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/bvproto.h"
#include "engine/engine.h"
#include "plugin/persist.h"
#include "plugin/table.h"

#define TOKEN "00112233aabbccdd"

/* ---- an engine to read the lines into ---- */

static void op_fwd(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n) {}
static void op_consume(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}
static void op_insert(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o) {}
static void op_close(void *ud, struct mqo_conn *c, int r) {}

struct wire {
    struct mqo_engine *e;
    struct mqo_bvproto bvp;
    char lines[64][512];
    int n;
    int rc; /* the last bvproto answer */
};

static void emit(void *arg, const char *line, size_t len)
{
    struct wire *w = arg;
    assert_true(len < sizeof w->lines[0]);
    assert_null(memchr(line, '\n', len)); /* one report, one line */
    if (w->n < 64)
        snprintf(w->lines[w->n++], sizeof w->lines[0], "%.*s", (int)len, line);
    if (w->e)
        w->rc = mqo_bvproto_line(&w->bvp, w->e, TOKEN, line, len);
}

static void wire_init(struct wire *w, int with_engine)
{
    memset(w, 0, sizeof *w);
    if (!with_engine)
        return;
    struct mqo_engine_cfg cfg = {
        .ops = {.forward = op_fwd, .consume = op_consume, .insert = op_insert, .close = op_close},
        .acl_mode = MQO_ACL_OPEN,
        .broker_view = 1,
    };
    w->e = mqo_engine_new(&cfg);
    assert_non_null(w->e);
}

static void line(struct wire *w, const char *s)
{
    w->rc = mqo_bvproto_line(&w->bvp, w->e, TOKEN, s, strlen(s));
}

static const char HELLO[] = "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"broker\":\"test\","
                            "\"instance\":\"i1\",\"acl\":\"allow\",\"coverage\":\"all\","
                            "\"persistence\":\"none\"}";

static const struct mqo_engine_stats *st(const struct wire *w) { return mqo_engine_stats(w->e); }

/* ---- table ---- */

static const struct mqo_ptable_client A = {.key = (void *)0x10, .cid = "a", .protocol = 4,
                                           .clean = 1, .addr = "198.18.0.1"};

static void test_table_reports(void **s)
{
    struct wire w;
    wire_init(&w, 0);
    struct mqo_ptable *t = mqo_ptable_new(emit, &w);
    assert_non_null(t);
    assert_int_equal(mqo_ptable_subscribe(t, &A, "x/#", 1), 0);
    assert_int_equal(w.n, 2); /* first seen: its session, then the filter */
    assert_non_null(strstr(w.lines[0], "\"op\":\"session\""));
    assert_non_null(strstr(w.lines[0], "\"reset\":true"));
    assert_non_null(strstr(w.lines[1], "\"filter\":\"x/#\""));
    assert_int_equal(mqo_ptable_subscribe(t, &A, "y\n\"z", 0), 0); /* escaped in one line */
    assert_int_equal(mqo_ptable_unsubscribe(t, &A, "x/#"), 0);
    assert_non_null(strstr(w.lines[3], "\"op\":\"unsub\""));
    /* the offload's marker, behind a mount point: a bind, not an unsubscription */
    assert_int_equal(mqo_ptable_unsubscribe(t, &A, "mp/$mqoff/bind/" TOKEN "/42/0"), 0);
    assert_non_null(strstr(w.lines[4], "\"bind\":\"" TOKEN "/42\""));
    struct mqo_ptable_stats ps;
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.filters, 1);
    /* MQTT 3.1.1 clean session: the session ends with its connection */
    assert_int_equal(mqo_ptable_disconnect(t, &A, 100, 0), 0);
    assert_non_null(strstr(w.lines[w.n - 1], "\"op\":\"end\""));
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.sessions, 0);
    mqo_ptable_free(t);
}

/* Session lifetimes: v3 persistent kept (expiry from persistent_client_expiration), v5 kept
 * unless its marker said expiry 0, v5 with a finite expiry ends 2 s after it. */
static void test_table_lifetimes(void **s)
{
    struct wire w;
    wire_init(&w, 0);
    struct mqo_ptable *t = mqo_ptable_new(emit, &w);
    struct mqo_ptable_client p3 = {.key = (void *)1, .cid = "p3", .protocol = 4};
    struct mqo_ptable_client v5a = {.key = (void *)2, .cid = "v5a", .protocol = 5, .clean = 1};
    struct mqo_ptable_client v5b = {.key = (void *)3, .cid = "v5b", .protocol = 5, .clean = 1};
    struct mqo_ptable_client v5c = {.key = (void *)4, .cid = "v5c", .protocol = 5};
    mqo_ptable_subscribe(t, &p3, "a", 0);
    mqo_ptable_subscribe(t, &v5a, "a", 0);
    mqo_ptable_subscribe(t, &v5b, "a", 0);
    mqo_ptable_unsubscribe(t, &v5b, "$mqoff/bind/" TOKEN "/9/0");
    mqo_ptable_subscribe(t, &v5c, "a", 0);
    mqo_ptable_unsubscribe(t, &v5c, "$mqoff/bind/" TOKEN "/10/30");
    mqo_ptable_disconnect(t, &p3, 1000, 60);
    mqo_ptable_disconnect(t, &v5a, 1000, 0);
    mqo_ptable_disconnect(t, &v5b, 1000, 0);
    mqo_ptable_disconnect(t, &v5c, 1000, 0);
    struct mqo_ptable_stats ps;
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.sessions, 3); /* v5b ended: expiry 0 */
    assert_int_equal(ps.conns, 0);
    mqo_ptable_expire(t, 1031);
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.sessions, 3);
    mqo_ptable_expire(t, 1032); /* v5c: 30 s + 2 */
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.sessions, 2);
    mqo_ptable_expire(t, 1062); /* p3: 60 s + 2 */
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.sessions, 1); /* v5a: its expiry unknown, kept */
    /* it comes back with a clean start: the broker dropped its filters */
    mqo_ptable_unsubscribe(t, &v5a, "nothing");
    mqo_ptable_stats(t, &ps);
    assert_int_equal(ps.filters, 0);
    mqo_ptable_free(t);
}

/* The table's lines, read by mqoff's side into an engine: the dump, then changes. */
static void test_protocol_end_to_end(void **s)
{
    struct wire w;
    wire_init(&w, 1);
    struct mqo_ptable *t = mqo_ptable_new(emit, &w);
    struct mqo_ptable_client f = {.key = (void *)5, .cid = "f", .protocol = 4, .clean = 1};
    mqo_ptable_subscribe(t, &f, "f/#", 1);
    mqo_ptable_fixed(t, "local.bridge", "out/#", 0);
    mqo_ptable_restore(t, "restored", 8, "r/#", 3, 1);
    assert_int_equal(st(&w)->bv_state, 0); /* nothing reaches the engine before the hello */
    line(&w, HELLO);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.bvp.state, MQO_BVP_DUMP);
    mqo_ptable_dump(t);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.bvp.state, MQO_BVP_SYNCED);
    assert_int_equal(st(&w)->bv_sessions, 3);
    assert_int_equal(st(&w)->bv_table, 3);
    mqo_ptable_unsubscribe(t, &f, "f/#");
    assert_int_equal(st(&w)->bv_table, 2);
    mqo_ptable_disconnect(t, &f, 5, 0);
    assert_int_equal(st(&w)->bv_sessions, 2);
    line(&w, "{\"op\":\"reload\"}");
    assert_int_equal(w.rc, 1);
    line(&w, "{\"op\":\"later-revision\",\"x\":1}");
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.bvp.ignored, 1);
    line(&w, "not json");
    assert_int_equal(w.rc, -EPROTO);
    mqo_bvproto_close(&w.bvp, w.e);
    assert_int_equal(st(&w)->bv_state, 0);
    assert_int_equal(st(&w)->bv_table, 0);
    mqo_ptable_free(t);
    mqo_engine_free(w.e);
}

/* A plugin that cannot see everything is connected but not used. */
static void test_protocol_limited(void **s)
{
    struct wire w;
    wire_init(&w, 1);
    line(&w, "{\"op\":\"sub\",\"cid\":\"x\",\"filter\":\"a\",\"qos\":0}");
    assert_int_equal(w.rc, -EPROTO); /* hello first */
    memset(&w.bvp, 0, sizeof w.bvp);
    line(&w, "{\"op\":\"hello\",\"proto\":2,\"role\":\"plugin\"}");
    assert_int_equal(w.rc, -EPROTO);
    memset(&w.bvp, 0, sizeof w.bvp);
    line(&w, "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"acl\":\"allow\","
             "\"coverage\":\"partial\",\"why\":\"per_listener_settings\"}");
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.bvp.state, MQO_BVP_LIMITED);
    line(&w, "{\"op\":\"sub\",\"cid\":\"x\",\"filter\":\"a\",\"qos\":0}");
    line(&w, "{\"op\":\"synced\"}");
    assert_int_equal(st(&w)->bv_state, 0);
    assert_int_equal(st(&w)->bv_subscriptions, 0);
    memset(&w.bvp, 0, sizeof w.bvp);
    line(&w, "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"acl\":\"plugins\","
             "\"coverage\":\"all\"}");
    assert_int_equal(w.bvp.state, MQO_BVP_LIMITED);
    memset(&w.bvp, 0, sizeof w.bvp);
    line(&w, "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"acl\":\"defer\","
             "\"coverage\":\"all\",\"persistence\":\"unreadable\"}");
    assert_int_equal(w.bvp.state, MQO_BVP_LIMITED);
    mqo_engine_free(w.e);
}

/* ---- persistence file ---- */

struct pbuf {
    uint8_t b[4096];
    size_t n;
};

static void put(struct pbuf *p, const void *d, size_t n)
{
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void be32(struct pbuf *p, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(p, b, 4);
}

static void be16(struct pbuf *p, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(p, b, 2);
}

static void header(struct pbuf *p, uint32_t version)
{
    static const uint8_t magic[15] = {0x00, 0xb5, 0x00, 'm', 'o', 's', 'q', 'u',
                                      'i',  't',  't',  'o', ' ', 'd', 'b'};
    p->n = 0;
    put(p, magic, 15);
    be32(p, 0); /* checksum */
    be32(p, version);
}

static void client_v6(struct pbuf *p, const char *cid, uint32_t expiry)
{
    uint16_t l = (uint16_t)strlen(cid);
    be32(p, 6);
    be32(p, 24u + l);
    uint8_t t[8] = {0};
    put(p, t, 8);
    be32(p, expiry);
    be16(p, 0); /* last mid */
    be16(p, l);
    be16(p, 1883);
    be16(p, 0); /* no username */
    put(p, t, 4);
    put(p, cid, l);
}

static void sub_chunk(struct pbuf *p, const char *cid, const char *f, uint8_t qos)
{
    uint16_t cl = (uint16_t)strlen(cid), fl = (uint16_t)strlen(f);
    be32(p, 5);
    be32(p, 12u + cl + fl);
    be32(p, 0);
    be16(p, cl);
    be16(p, fl);
    uint8_t q[4] = {qos, 0, 0, 0};
    put(p, q, 4);
    put(p, cid, cl);
    put(p, f, fl);
}

struct got {
    int clients, subs;
    char last[64];
};

static int on_client(void *arg, const char *cid, size_t n, uint32_t e)
{
    ((struct got *)arg)->clients++;
    return 0;
}

static int on_sub(void *arg, const char *cid, size_t cl, const char *f, size_t fl, uint8_t qos,
                  uint8_t o, uint32_t id)
{
    struct got *g = arg;
    g->subs++;
    snprintf(g->last, sizeof g->last, "%.*s %.*s %u", (int)cl, cid, (int)fl, f, qos);
    return 0;
}

static void test_persist(void **s)
{
    struct pbuf p;
    struct got g = {0};
    struct mqo_persist_cb cb = {.client = on_client, .sub = on_sub, .arg = &g};
    char err[128];
    header(&p, 6);
    client_v6(&p, "ps1", 0xffffffffu);
    be32(&p, 2); /* a message store chunk: skipped by its length */
    be32(&p, 3);
    put(&p, "abc", 3);
    sub_chunk(&p, "ps1", "a/#", 1);
    sub_chunk(&p, "ps1", "mp/b/+", 2);
    be16(&p, 7); /* a header cut short ends the file */
    assert_int_equal(mqo_persist_parse(p.b, p.n, &cb, err, sizeof err), 0);
    assert_int_equal(g.clients, 1);
    assert_int_equal(g.subs, 2);
    assert_string_equal(g.last, "ps1 mp/b/+ 2");
    /* a chunk cut short: the broker refuses the file */
    assert_int_equal(mqo_persist_parse(p.b, p.n - 6, &cb, err, sizeof err), -EINVAL);
    assert_int_equal(mqo_persist_parse(p.b, 0, &cb, err, sizeof err), 0); /* empty */
    assert_int_equal(mqo_persist_parse((const uint8_t *)"hello world, not a db", 21, &cb, err,
                                       sizeof err), -EINVAL);
    header(&p, 4);
    assert_int_equal(mqo_persist_parse(p.b, p.n, &cb, err, sizeof err), -ENOTSUP);
    header(&p, 6);
    sub_chunk(&p, "x", "y", 0);
    p.b[23 + 8 + 5] = 0xff; /* id_len beyond the chunk */
    assert_int_equal(mqo_persist_parse(p.b, p.n, &cb, err, sizeof err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_reports),       cmocka_unit_test(test_table_lifetimes),
        cmocka_unit_test(test_protocol_end_to_end), cmocka_unit_test(test_protocol_limited),
        cmocka_unit_test(test_persist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
