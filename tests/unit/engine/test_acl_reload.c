/* engine/: authorization at run time (mqo_engine_acl_changed / mqo_engine_acl_reloaded) and
 * cfg.exclusive, against the reference broker of the harness, whose ACL the tests swap as
 * Mosquitto swaps its own at a reload (a NULL ACL is Mosquitto 2.0.11 after reloading a file it
 * cannot parse: no ACL check at all). */
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

/* ACLs the broker model uses live until the end of a test: it keeps a borrowed pointer. */
struct keep {
    struct mqo_acl *v[256];
    int n;
};

static struct mqo_acl *parse(const char *text)
{
    struct mqo_acl *a = NULL;
    char err[128];
    if (mqo_acl_parse(text, strlen(text), &a, err, sizeof err) != 0)
        fail_msg("acl text does not parse: %s", err);
    return a;
}

static const struct mqo_acl *kept(struct keep *k, const char *text)
{
    assert_true(k->n < 256);
    return k->v[k->n++] = parse(text);
}

static void keep_free(struct keep *k)
{
    for (int i = 0; i < k->n; i++)
        mqo_acl_free(k->v[i]);
    k->n = 0;
}

/* A client with a username connected (client id: the username, or cid); returns its index. */
static int connect_cid(struct harness *h, uint8_t v, const char *user, const char *cid)
{
    int i = h_open(h);
    uint8_t b[256];
    h->cl[i].version = v;
    h_send(h, i, b, hb_connect(b, v, cid, 1, 60, user, 0, -1));
    h_run(h);
    assert_true(h->cl[i].b_connected);
    return i;
}

static int connect_user(struct harness *h, uint8_t v, const char *user)
{
    return connect_cid(h, v, user, user);
}

static const struct mqo_engine_stats *st(struct harness *h) { return mqo_engine_stats(h->eng); }

static struct harness *mk(const struct mqo_acl *acl, int exclusive)
{
    struct mqo_engine_cfg cfg = {.acl_mode = MQO_ACL_FILE, .acl = acl, .exclusive = exclusive};
    struct harness *h = malloc(sizeof *h);
    h_init(h, &cfg, H_ENGINE);
    assert_non_null(h->eng);
    h->acl = acl; /* the broker starts with the same file */
    return h;
}

static void done(struct harness *h)
{
    h_free(h);
    free(h);
}

static const char V1[] = "user alice\ntopic write s/#\n"
                         "user bob\ntopic read s/#\n"
                         "user dave\ntopic read s/#\n";
/* alice may no longer write */
static const char NO_ALICE[] = "user bob\ntopic read s/#\n"
                               "user dave\ntopic read s/#\n";
/* bob may no longer read */
static const char NO_BOB[] = "user alice\ntopic write s/#\n"
                             "user dave\ntopic read s/#\n";

static void pub_n(struct harness *h, int p, int n, int *seq)
{
    for (int k = 0; k < n; k++) {
        char pl[32];
        snprintf(pl, sizeof pl, "p0:%d", (*seq)++);
        h_publish(h, p, "s/t", pl, (uint8_t)(k & 1), 0);
    }
    h_run(h);
}

/* alice loses WRITE. Until the broker reloads it still delivers her messages (the engine,
 * unsure, lets it); after the broker's reload nothing of hers is delivered, before and after
 * the engine is told of the reload. */
static void test_write_revoked(void **s)
{
    struct keep k = {0};
    const struct mqo_acl *v1 = kept(&k, V1);
    struct harness *h = mk(v1, 1);
    int alice = connect_user(h, MQO_MQTT_V311, "alice");
    int bob = connect_user(h, MQO_MQTT_V5, "bob");
    h_subscribe(h, bob, "s/#", 1, 0);
    int seq = 0;
    pub_n(h, alice, 4, &seq);
    assert_int_equal(st(h)->consumed, 4);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 4);

    assert_int_equal(mqo_engine_acl_changed(h->eng, parse(NO_ALICE)), 0);
    assert_int_equal(st(h)->acl_versions, 2);
    pub_n(h, alice, 4, &seq); /* the broker still uses V1 */
    assert_int_equal(st(h)->consumed, 4);
    assert_true(st(h)->pt_reason[MQO_PT_ACL_CHANGED] >= 1);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 8);

    h->acl = kept(&k, NO_ALICE); /* the broker reloads */
    pub_n(h, alice, 4, &seq);
    assert_int_equal(st(h)->consumed, 4);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 8);
    int alice2 = connect_cid(h, MQO_MQTT_V5, "alice", "alice2"); /* a new connection */
    pub_n(h, alice2, 4, &seq);
    assert_int_equal(st(h)->consumed, 4);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 8);

    assert_int_equal(mqo_engine_acl_reloaded(h->eng, parse(NO_ALICE)), 0);
    assert_int_equal(st(h)->acl_versions, 1);
    h_advance(h, 3000); /* holds on copies the broker never sent expire */
    uint64_t denied = st(h)->pt_reason[MQO_PT_WRITE_DENIED];
    uint64_t split = st(h)->pt_reason[MQO_PT_ACL_CHANGED];
    pub_n(h, alice, 4, &seq);
    assert_true(st(h)->pt_reason[MQO_PT_WRITE_DENIED] > denied); /* one version: it denies */
    assert_int_equal(st(h)->pt_reason[MQO_PT_ACL_CHANGED], split);
    assert_int_equal(st(h)->consumed, 4);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 8);
    done(h);
    keep_free(&k);
}

/* bob loses READ: while versions disagree the whole PUBLISH goes to the broker; once every
 * version denies, the offload skips bob (as the broker does) and delivers to dave. */
static void test_read_revoked(void **s)
{
    struct keep k = {0};
    struct harness *h = mk(kept(&k, V1), 1);
    int alice = connect_user(h, MQO_MQTT_V311, "alice");
    int bob = connect_user(h, MQO_MQTT_V311, "bob");
    int dave = connect_user(h, MQO_MQTT_V5, "dave");
    h_subscribe(h, bob, "s/#", 1, 0);
    h_subscribe(h, dave, "s/#", 0, 0);
    int seq = 0;
    pub_n(h, alice, 2, &seq);
    assert_int_equal(st(h)->consumed, 2);

    mqo_engine_acl_changed(h->eng, parse(NO_BOB));
    h_publish(h, alice, "s/t", "p0:100", 0, 0);
    h_run(h);
    assert_int_equal(mqo_conn_last_reason(h->cl[alice].conn), MQO_PT_ACL_CHANGED);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 3); /* the broker still uses V1 */
    h->acl = kept(&k, NO_BOB);
    pub_n(h, alice, 2, &seq);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 3);
    assert_int_equal(h_count_pub(h, dave, "s/t"), 5);

    mqo_engine_acl_reloaded(h->eng, parse(NO_BOB));
    h_advance(h, 3000);
    uint64_t c0 = st(h)->consumed;
    pub_n(h, alice, 4, &seq);
    assert_int_equal(st(h)->consumed, c0 + 4); /* offloaded again, without bob */
    assert_int_equal(h_count_pub(h, bob, "s/t"), 3);
    assert_int_equal(h_count_pub(h, dave, "s/t"), 9);
    done(h);
    keep_free(&k);
}

/* A message the versions disagree on goes to the broker, which may deliver it: the
 * publisher's next messages must not overtake that copy, even when the broker's bytes toward
 * the subscriber are still on their way (the mode has not read them yet). */
static void test_split_holds_order(void **s)
{
    struct keep k = {0};
    const char *v1 = "user alice\ntopic write #\nuser bob\ntopic read s/#\n";
    const char *v2 = "user alice\ntopic write #\nuser bob\ntopic read s/b\n";
    struct harness *h = mk(kept(&k, v1), 1);
    int alice = connect_user(h, MQO_MQTT_V311, "alice");
    int bob = connect_user(h, MQO_MQTT_V311, "bob");
    h_subscribe(h, bob, "s/#", 0, 0);
    mqo_engine_acl_changed(h->eng, parse(v2)); /* the broker still uses v1 */
    h->cl[bob].hold_bout = 1;
    h_publish(h, alice, "s/a", "p0:1", 0, 0); /* bob may read it in v1 only */
    h_run(h);
    assert_int_equal(mqo_conn_last_reason(h->cl[alice].conn), MQO_PT_ACL_CHANGED);
    h_publish(h, alice, "t", "p0:x", 0, 0); /* nobody subscribes to it */
    h_run(h);
    h_publish(h, alice, "s/b", "p0:2", 0, 0); /* bob may read this in both */
    h_run(h);
    h->cl[bob].hold_bout = 0;
    h_run(h);
    assert_int_equal(h_count_pub(h, bob, NULL), 2);
    const struct h_rx *r = h_pub(h, bob, 0);
    assert_memory_equal(r->payload, "p0:1", 4);
    r = h_pub(h, bob, 1);
    assert_memory_equal(r->payload, "p0:2", 4);
    done(h);
    keep_free(&k);
}

/* A version equal to one held is not added; past the limit everything passes through until a
 * reload; a file that does not parse drops every version until a reload, however fixed. */
static void test_versions_broken_and_limit(void **s)
{
    struct keep k = {0};
    struct harness *h = mk(kept(&k, V1), 1);
    int alice = connect_user(h, MQO_MQTT_V311, "alice");
    int bob = connect_user(h, MQO_MQTT_V311, "bob");
    h_subscribe(h, bob, "s/#", 0, 0);

    assert_int_equal(mqo_engine_acl_changed(h->eng, parse(V1)), 0);
    assert_int_equal(st(h)->acl_versions, 1);
    assert_int_equal(mqo_engine_acl_changed(h->eng, parse(NO_BOB)), 0);
    assert_int_equal(mqo_engine_acl_changed(h->eng, parse(NO_BOB)), 0);
    assert_int_equal(st(h)->acl_versions, 2);
    int rc = 0, n = 2;
    while (rc == 0 && n < 100) {
        char txt[64];
        snprintf(txt, sizeof txt, "user alice\ntopic write s/#\nuser x%d\ntopic read s\n", n);
        rc = mqo_engine_acl_changed(h->eng, parse(txt));
        n++;
    }
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(n, 17); /* the 17th version did not fit */
    assert_int_equal(st(h)->acl_versions, 0);
    h_publish(h, alice, "s/t", "p0:0", 0, 0);
    h_run(h);
    assert_int_equal(mqo_conn_last_reason(h->cl[alice].conn), MQO_PT_ACL_BROKEN);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 1);

    mqo_engine_acl_reloaded(h->eng, parse(V1));
    h_advance(h, 3000);
    h_publish(h, alice, "s/t", "p0:1", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 1);

    /* broken: the older versions go; a fix alone does not bring the offload back */
    assert_int_equal(mqo_engine_acl_changed(h->eng, NULL), 0);
    assert_int_equal(st(h)->acl_versions, 0);
    h_publish(h, alice, "s/t", "p0:2", 0, 0);
    h_run(h);
    assert_int_equal(mqo_conn_last_reason(h->cl[alice].conn), MQO_PT_ACL_BROKEN);
    assert_int_equal(mqo_engine_acl_changed(h->eng, parse(V1)), 0);
    assert_int_equal(st(h)->acl_versions, 0);
    h_publish(h, alice, "s/t", "p0:3", 0, 0);
    h_run(h);
    assert_int_equal(mqo_conn_last_reason(h->cl[alice].conn), MQO_PT_ACL_BROKEN);
    /* the broker reloaded the broken file: no ACL at all; the engine is told so */
    h->acl = NULL;
    mqo_engine_acl_reloaded(h->eng, NULL);
    h_publish(h, alice, "s/t", "p0:4", 0, 0);
    h_run(h);
    assert_int_equal(mqo_conn_last_reason(h->cl[alice].conn), MQO_PT_ACL_BROKEN);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 5);
    assert_int_equal(st(h)->consumed, 1);
    h->acl = k.v[0];
    mqo_engine_acl_reloaded(h->eng, parse(V1));
    assert_int_equal(st(h)->acl_versions, 1);
    h_advance(h, 3000);
    h_publish(h, alice, "s/t", "p0:5", 0, 0);
    h_run(h);
    assert_int_equal(st(h)->consumed, 2);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 6);
    done(h);
    keep_free(&k);
}

/* Without cfg.exclusive nothing is offloaded, and the broker still delivers everything. */
static void test_not_exclusive(void **s)
{
    struct keep k = {0};
    struct harness *h = mk(kept(&k, V1), 0);
    int alice = connect_user(h, MQO_MQTT_V311, "alice");
    int bob = connect_user(h, MQO_MQTT_V5, "bob");
    h_subscribe(h, bob, "s/#", 1, 0);
    int seq = 0;
    pub_n(h, alice, 6, &seq);
    assert_int_equal(st(h)->consumed, 0);
    assert_int_equal(st(h)->pt_reason[MQO_PT_NOT_EXCLUSIVE], 6);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 6);
    done(h);
    keep_free(&k);
}

/* The run-time API belongs to acl_file mode: elsewhere it refuses and frees what it got (the
 * sanitizer build would report a leak). */
static void test_api_other_modes(void **s)
{
    struct harness *h = malloc(sizeof *h);
    h_init(h, NULL, H_ENGINE); /* --acl open */
    assert_int_equal(mqo_engine_acl_changed(h->eng, parse(V1)), -EINVAL);
    assert_int_equal(mqo_engine_acl_reloaded(h->eng, parse(V1)), -EINVAL);
    assert_int_equal(mqo_engine_acl_changed(h->eng, NULL), -EINVAL);
    assert_int_equal(st(h)->acl_versions, 0);
    done(h);
}

/* ---- random scripts: the same clients, messages, file edits and reloads straight to the
 * broker and through the engine; every subscriber gets the same messages in the same order
 * per publisher. ---- */

#define NPUB 3
#define NSUB 5

struct file {
    char text[1024];
    int broken;
};

/* A random acl_file over users u0..u7 and the script's topics. */
static void random_acl(unsigned *r, struct file *f)
{
    static const char *rules[] = {"topic readwrite #", "topic read #",   "topic write #",
                                  "topic readwrite #", "topic read #",   "topic write #",
                                  "topic readwrite a/#", "topic deny a/b", "topic read b/#",
                                  "topic write a/+",   "topic read a",   "topic write b",
                                  "topic deny #"};
    size_t o = 0;
    f->broken = 0;
    for (int u = 0; u < NPUB + NSUB; u++) {
        if (rand_r(r) % 8 == 0)
            continue; /* no section: denied everything (unless a pattern grants it) */
        o += (size_t)snprintf(f->text + o, sizeof f->text - o, "user u%d\n", u);
        for (int k = 1 + rand_r(r) % 2; k > 0; k--)
            o += (size_t)snprintf(f->text + o, sizeof f->text - o, "%s\n",
                                  rules[rand_r(r) % (sizeof rules / sizeof rules[0])]);
    }
    if (rand_r(r) % 3 == 0)
        o += (size_t)snprintf(f->text + o, sizeof f->text - o, "pattern read %s\n",
                              rand_r(r) % 2 ? "a/#" : "+/%u");
}

/* One script, run on h (straight or through the engine). */
static void acl_script(struct harness *h, unsigned seed, struct keep *k)
{
    static const char *topics[] = {"a", "a/b", "a/c", "b", "b/x"};
    static const char *filters[] = {"a", "a/+", "#", "b/#", "a/b", "+/x"};
    unsigned r = seed;
    struct file file;
    random_acl(&r, &file);
    const struct mqo_acl *broker_acl = kept(k, file.text);
    h->acl = broker_acl;
    if (h->eng)
        mqo_engine_acl_reloaded(h->eng, parse(file.text)); /* the engine's start version */
    for (int i = 0; i < NPUB + NSUB; i++) {
        char u[16];
        snprintf(u, sizeof u, "u%d", i);
        connect_user(h, (uint8_t)(i % 2 ? MQO_MQTT_V5 : MQO_MQTT_V311), u);
    }
    for (int i = NPUB; i < NPUB + NSUB; i++)
        h_subscribe(h, i, filters[rand_r(&r) % 6], (uint8_t)(rand_r(&r) % 2), 0);
    int hup_due = 0; /* the broker reloaded, mqoff not told yet: the file stays as it is */
    int trace = getenv("ACL_RELOAD_TRACE") != NULL;
    if (trace)
        fprintf(stderr, "%s: start file:\n%s", h->eng ? "offload" : "direct", file.text);
    for (int step = 0; step < 160; step++) {
        int what = rand_r(&r) % 100;
        if (trace)
            fprintf(stderr, "step %d op %d\n", step, what);
        if (what < 5 && !hup_due) { /* the operator edits the file */
            if (trace)
                fprintf(stderr, "  file edit\n");
            if (rand_r(&r) % 10 == 0) {
                file.broken = 1;
                if (h->eng)
                    mqo_engine_acl_changed(h->eng, NULL);
            } else {
                random_acl(&r, &file);
                if (h->eng)
                    mqo_engine_acl_changed(h->eng, parse(file.text));
            }
        } else if (what < 8) { /* the broker reloads what the file holds now */
            /* First it takes what the clients sent so far: a message the engine consumed
             * was delivered then, under rules it held; the straight run's broker must judge
             * it at the same moment, not under rules loaded later (a real broker may do
             * either, depending on when it reads its socket). */
            h_run(h);
            h->acl = file.broken ? NULL : kept(k, file.text);
            hup_due = 1;
            if (trace)
                fprintf(stderr, "  broker reload: %s\n%s", file.broken ? "broken" : "",
                        file.broken ? "" : file.text);
        } else if (what < 20 && hup_due) { /* mqoff is told */
            if (h->eng)
                mqo_engine_acl_reloaded(h->eng, file.broken ? NULL : parse(file.text));
            hup_due = 0;
            if (trace)
                fprintf(stderr, "  mqoff told\n");
        } else if (what < 23) {
            int sb = NPUB + rand_r(&r) % NSUB;
            const char *f = filters[rand_r(&r) % 6];
            h_subscribe(h, sb, f, (uint8_t)(rand_r(&r) % 2), 0);
            if (trace)
                fprintf(stderr, "  subscribe %d %s\n", sb, f);
        } else if (what < 30) {
            h_advance(h, 250 * (1 + rand_r(&r) % 10));
        } else {
            int p = rand_r(&r) % NPUB;
            char pl[32];
            snprintf(pl, sizeof pl, "p%d:%d", p, step);
            const char *t = topics[rand_r(&r) % 5];
            uint8_t q = (uint8_t)(rand_r(&r) % 8 == 0 ? 2 : rand_r(&r) % 2);
            int ret = rand_r(&r) % 20 == 0;
            h_publish(h, p, t, pl, q, ret);
            if (trace)
                fprintf(stderr, "  publish %s %s q%d%s: %s\n", pl, t, q, ret ? " retain" : "",
                        h->eng ? mqo_pt_reason_name(mqo_conn_last_reason(h->cl[p].conn)) : "");
            if (rand_r(&r) % 2 == 0)
                h_run(h);
        }
    }
    h_run(h);
}

static void dump(const char *what, struct harness *h, int i)
{
    fprintf(stderr, "%s sub %d:", what, i);
    for (size_t k = 0; h_pub(h, i, k); k++) {
        const struct h_rx *r = h_pub(h, i, k);
        fprintf(stderr, " %s=%.*s/q%d%s", r->topic, (int)r->plen, (const char *)r->payload,
                r->qos, r->retain ? "R" : "");
    }
    fprintf(stderr, "\n");
}

static void test_random_reloads_match_broker(void **s)
{
    uint64_t consumed = 0, changed = 0, broken = 0;
    unsigned first = 1, last = 100;
    if (getenv("ACL_RELOAD_SEED")) /* one script, with what every subscriber got */
        first = last = (unsigned)atoi(getenv("ACL_RELOAD_SEED"));
    for (unsigned seed = first; seed <= last; seed++) {
        struct keep kd = {0}, ko = {0};
        struct harness *d = malloc(sizeof *d), *o;
        h_init(d, NULL, H_DIRECT);
        acl_script(d, seed, &kd);
        /* the engine starts with a placeholder version, replaced by the script's first */
        const struct mqo_acl *start = kept(&ko, "");
        o = mk(start, 1);
        acl_script(o, seed, &ko);
        for (int i = NPUB; i < NPUB + NSUB; i++) {
            char why[256];
            if (first == last) {
                dump("direct ", d, i);
                dump("offload", o, i);
            }
            if (!h_same_per_publisher(d, o, i, NPUB, why, sizeof why))
                fail_msg("seed %u: straight vs through the engine: %s", seed, why);
        }
        consumed += st(o)->consumed;
        changed += st(o)->pt_reason[MQO_PT_ACL_CHANGED];
        broken += st(o)->pt_reason[MQO_PT_ACL_BROKEN];
        done(d);
        done(o);
        keep_free(&kd);
        keep_free(&ko);
    }
    if (first == last)
        return;
    /* the scripts exercise every path (about 600, 600 and 2300 of 12000 PUBLISH) */
    assert_true(consumed > 400);
    assert_true(changed > 300);
    assert_true(broken > 300);
}

/* The authorization source changed at a reload (mqoff -c FILE, SIGHUP): open -> acl_file ->
 * open. Between the switch and the reload that gives the rules nothing is offloaded; after it
 * the file's rules bind the offload (bob may no longer read: he gets nothing the broker would
 * not send him). An engine started without a source cannot switch. */
static void test_acl_source_switch(void **s)
{
    struct keep k = {0};
    struct mqo_engine_cfg cfg = {.acl_mode = MQO_ACL_OPEN, .exclusive = 1};
    struct harness *h = malloc(sizeof *h);
    h_init(h, &cfg, H_ENGINE);
    int alice = connect_user(h, MQO_MQTT_V311, "alice");
    int bob = connect_user(h, MQO_MQTT_V311, "bob");
    int dave = connect_user(h, MQO_MQTT_V311, "dave");
    h_subscribe(h, bob, "s/#", 1, 0);
    h_subscribe(h, dave, "s/#", 1, 0);
    int seq = 0;
    pub_n(h, alice, 4, &seq);
    assert_int_equal(st(h)->consumed, 4);

    assert_int_equal(mqo_engine_set_acl_mode(h->eng, MQO_ACL_FILE), 0);
    pub_n(h, alice, 2, &seq);
    assert_int_equal(st(h)->consumed, 4);
    assert_int_equal(st(h)->pt_reason[MQO_PT_ACL_BROKEN], 2);
    h->acl = kept(&k, NO_BOB); /* the broker reloads with its new acl_file */
    assert_int_equal(mqo_engine_acl_reloaded(h->eng, parse(NO_BOB)), 0);
    h_advance(h, 3000);
    pub_n(h, alice, 4, &seq);
    assert_int_equal(st(h)->consumed, 8);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 6);
    assert_int_equal(h_count_pub(h, dave, "s/t"), 10);

    h->acl = NULL;
    assert_int_equal(mqo_engine_set_acl_mode(h->eng, MQO_ACL_OPEN), 0);
    assert_int_equal(st(h)->acl_versions, 0);
    pub_n(h, alice, 4, &seq);
    assert_int_equal(st(h)->consumed, 12);
    assert_int_equal(h_count_pub(h, bob, "s/t"), 10);
    assert_int_equal(mqo_engine_set_acl_mode(h->eng, MQO_ACL_NONE), -EINVAL);
    done(h);

    struct mqo_engine_cfg none = {.exclusive = 1};
    h = malloc(sizeof *h);
    h_init(h, &none, H_ENGINE);
    assert_int_equal(mqo_engine_set_acl_mode(h->eng, MQO_ACL_OPEN), -EINVAL);
    done(h);
    keep_free(&k);
}

int main(void)
{
    mqo_log_set_level(MQO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_revoked),
        cmocka_unit_test(test_acl_source_switch),
        cmocka_unit_test(test_read_revoked),
        cmocka_unit_test(test_split_holds_order),
        cmocka_unit_test(test_versions_broken_and_limit),
        cmocka_unit_test(test_not_exclusive),
        cmocka_unit_test(test_api_other_modes),
        cmocka_unit_test(test_random_reloads_match_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
