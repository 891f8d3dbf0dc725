/* modes/reload: the acl_file as the operator edits it and the broker reloads it, as the engine
 * sees it (its acl_versions counter) and as the log tells it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "core/log.h"
#include "engine/engine.h"
#include "modes/reload.h"

static char logbuf[8192];

static void sink(enum mqo_log_level lvl, const char *msg, void *arg)
{
    size_t l = strlen(logbuf);
    snprintf(logbuf + l, sizeof logbuf - l, "%s\n", msg);
}

static void nop_fwd(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n) {}
static void nop_con(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}
static void nop_ins(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o) {}
static void nop_close(void *ud, struct mqo_conn *c, int reason) {}

struct tr {
    char dir[64], acl[96];
    struct mqo_acl *start; /* the engine's start version (borrowed by it) */
    struct mqo_engine *e;
    struct mqo_reload *r;
};

static void put(const char *path, const char *text)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0); /* as an editor saves */
}

static const char V1[] = "user alice\ntopic write a/#\n";
static const char V2[] = "user alice\ntopic write b/#\n";
static const char BAD[] = "user alice\ntopic write a/#\nfoo bar\n";

static int setup(void **st)
{
    struct tr *t = calloc(1, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/mqo-reload.XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    snprintf(t->acl, sizeof t->acl, "%s/acl", t->dir);
    put(t->acl, V1);
    char err[128];
    if (mqo_acl_load(t->acl, &t->start, err, sizeof err))
        return -1;
    struct mqo_engine_cfg cfg = {
        .ops = {.forward = nop_fwd, .consume = nop_con, .insert = nop_ins, .close = nop_close},
        .acl_mode = MQO_ACL_FILE,
        .acl = t->start,
        .exclusive = 1};
    t->e = mqo_engine_new(&cfg);
    struct mqo_reload_cfg rc = {.acl_file = t->acl};
    if (!t->e || mqo_reload_new(&rc, &t->r))
        return -1;
    logbuf[0] = 0;
    mqo_log_set_sink(sink, NULL);
    *st = t;
    return 0;
}

static int teardown(void **st)
{
    struct tr *t = *st;
    mqo_log_set_sink(NULL, NULL);
    mqo_reload_free(t->r);
    mqo_engine_free(t->e);
    mqo_acl_free(t->start);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", t->dir);
    free(t);
    return 0;
}

static uint64_t versions(struct tr *t) { return mqo_engine_stats(t->e)->acl_versions; }

/* The loop's part: the descriptor is readable after a change, then the change is read. */
static void changed(struct tr *t)
{
    struct pollfd p = {.fd = mqo_reload_fd(t->r), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 1000), 1);
    mqo_reload_changed(t->r, t->e);
    assert_int_equal(poll(&p, 1, 0), 0); /* drained */
}

static void test_versions_follow_the_file(void **st)
{
    struct tr *t = *st;
    assert_true(mqo_reload_fd(t->r) >= 0);
    assert_int_equal(versions(t), 1);
    put(t->acl, V2);
    changed(t);
    assert_int_equal(versions(t), 2);
    assert_non_null(strstr(logbuf, "changed"));
    put(t->acl, V1); /* back to a version held */
    changed(t);
    assert_int_equal(versions(t), 2);
    mqo_reload_hup(t->r, t->e); /* the broker reloaded V1 */
    assert_int_equal(versions(t), 1);
    assert_non_null(strstr(logbuf, "SIGHUP: the broker reloaded"));
}

static void test_broken_until_hup(void **st)
{
    struct tr *t = *st;
    put(t->acl, BAD);
    changed(t);
    assert_int_equal(versions(t), 0);
    /* the file and the line in the error */
    assert_non_null(strstr(logbuf, t->acl));
    assert_non_null(strstr(logbuf, "line 3: "));
    char *first = strstr(logbuf, "line 3: ");
    put(t->acl, BAD); /* the same error again: not logged twice */
    changed(t);
    assert_null(strstr(first + 1, "line 3: "));
    put(t->acl, V2);
    changed(t);
    assert_int_equal(versions(t), 0); /* fixed, but the broker may hold no rules */
    assert_non_null(strstr(logbuf, "parses again"));
    mqo_reload_hup(t->r, t->e);
    assert_int_equal(versions(t), 1);

    /* gone: broken too (Mosquitto reloading a missing file checks no ACL either) */
    char gone[128];
    snprintf(gone, sizeof gone, "%s.old", t->acl);
    assert_int_equal(rename(t->acl, gone), 0);
    changed(t);
    assert_int_equal(versions(t), 0);
    mqo_reload_hup(t->r, t->e); /* reloaded while missing */
    assert_int_equal(versions(t), 0);
    assert_int_equal(rename(gone, t->acl), 0);
    changed(t);
    assert_int_equal(versions(t), 0);
    mqo_reload_hup(t->r, t->e);
    assert_int_equal(versions(t), 1);
}

static void test_nothing_to_watch(void **st)
{
    struct mqo_reload *r = NULL;
    struct mqo_reload_cfg none = {0};
    assert_int_equal(mqo_reload_new(&none, &r), 0);
    assert_int_equal(mqo_reload_fd(r), -1);
    struct tr *t = *st;
    mqo_reload_hup(r, t->e); /* says so, changes nothing */
    assert_int_equal(versions(t), 1);
    assert_non_null(strstr(logbuf, "no file"));
    mqo_reload_free(r);
    struct mqo_reload_cfg missing = {.acl_file = "/nonexistent-dir/acl"};
    assert_true(mqo_reload_new(&missing, &r) < 0); /* a file it cannot watch */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions_follow_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_until_hup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_watch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
