/* ctl/: the control socket (a real Unix socket in a temporary directory) with an engine behind
 * it: mqoffctl's requests, a plugin's connection, the metrics page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "engine/engine.h"

static void op_fwd(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n) {}
static void op_consume(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}
static void op_insert(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o) {}
static void op_close(void *ud, struct mqo_conn *c, int r) {}

struct fix {
    char dir[64], path[96];
    struct mqo_engine *e;
    struct mqo_ctl *ctl;
    int reloads;
};

static size_t counters(void *arg, struct mqo_ctl_counter *out, size_t cap)
{
    const struct mqo_ctl_counter v[] = {
        {"mqoff_test_things_total", "kind=\"a\"", "things", 7, 0},
        {"mqoff_test_things_total", "kind=\"b\"", "things", 8, 0},
        {"mqoff_test_depth_bytes", NULL, "depth", 9, 1},
    };
    return mqo_ctl_counters_put(out, cap, v, 3);
}

static void reloaded(void *arg) { ((struct fix *)arg)->reloads++; }

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mqoff-test-ctl.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/ctl.sock", f->dir);
    struct mqo_engine_cfg cfg = {
        .ops = {.forward = op_fwd, .consume = op_consume, .insert = op_insert, .close = op_close},
        .acl_mode = MQO_ACL_OPEN,
        .broker_view = 1,
    };
    f->e = mqo_engine_new(&cfg);
    static const char *const conf[] = {"mode", "proxy", "broker", "198.18.0.2:1883"};
    struct mqo_ctl_cfg cc = {.path = f->path, .mode = "proxy", .version = "test",
                             .config = conf, .n_config = 2};
    struct mqo_ctl_hooks hooks = {.counters = counters, .broker_reloaded = reloaded, .arg = f};
    assert_int_equal(mqo_ctl_new(&cc, f->e, &hooks, &f->ctl), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    mqo_ctl_free(f->ctl);
    assert_int_equal(access(f->path, F_OK), -1); /* the socket file is removed */
    mqo_engine_free(f->e);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int dial(struct fix *f)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void say(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(write(fd, s, n), (ssize_t)n);
}

/* Runs the control socket until a line arrives on fd (or 2 s pass); returns it parsed. */
static cJSON *hear(struct fix *f, int fd)
{
    static char buf[1 << 20];
    size_t len = 0;
    for (int i = 0; i < 200; i++) {
        mqo_ctl_run(f->ctl, 0);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0)
            continue;
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            return NULL;
        len += (size_t)r;
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            *nl = 0;
            return cJSON_Parse(buf);
        }
    }
    return NULL;
}

static void settle(struct fix *f)
{
    for (int i = 0; i < 20; i++) {
        mqo_ctl_run(f->ctl, 0);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static cJSON *ask(struct fix *f, const char *op)
{
    int fd = dial(f);
    char req[64];
    snprintf(req, sizeof req, "{\"op\":\"%s\"}\n", op);
    say(fd, req);
    cJSON *r = hear(f, fd);
    close(fd);
    assert_non_null(r);
    return r;
}

static void test_requests(void **state)
{
    struct fix *f = *state;
    cJSON *r = ask(f, "status");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    assert_string_equal(cJSON_GetObjectItem(r, "mode")->valuestring, "proxy");
    cJSON *pl = cJSON_GetObjectItem(r, "plugin");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(pl, "connected")));
    /* no --exclusive and no broker view: that is what stops all offload */
    cJSON *h = cJSON_GetObjectItem(r, "holds");
    assert_int_equal(cJSON_GetArraySize(h), 1);
    assert_string_equal(cJSON_GetArrayItem(h, 0)->valuestring, "not_exclusive");
    cJSON_Delete(r);
    r = ask(f, "stats");
    cJSON *stv = cJSON_GetObjectItem(r, "stats");
    assert_int_equal(cJSON_GetObjectItem(stv, "mqoff_test_things_total{kind=\"b\"}")->valueint, 8);
    assert_non_null(cJSON_GetObjectItem(stv, "mqoff_publishes_offloaded_total"));
    cJSON_Delete(r);
    r = ask(f, "config");
    cJSON *conf = cJSON_GetObjectItem(r, "config");
    assert_string_equal(cJSON_GetObjectItem(conf, "broker")->valuestring, "198.18.0.2:1883");
    cJSON_Delete(r);
    r = ask(f, "conns");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "connections")), 0);
    cJSON_Delete(r);
    r = ask(f, "nonsense");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
    cJSON_Delete(r);
}

static void test_plugin_connection(void **state)
{
    struct fix *f = *state;
    int p = dial(f);
    say(p, "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"broker\":\"t\",\"instance\":\"x\","
           "\"acl\":\"allow\",\"coverage\":\"all\",\"persistence\":\"none\"}\n");
    cJSON *w = hear(f, p);
    assert_non_null(w);
    assert_string_equal(cJSON_GetObjectItem(w, "op")->valuestring, "welcome");
    cJSON_Delete(w);
    /* a line split across writes, two in one */
    say(p, "{\"op\":\"session\",\"cid\":\"c1\",\"conn\":3,\"online\":true}\n{\"op\":\"sub\",\"ci");
    settle(f);
    say(p, "d\":\"c1\",\"filter\":\"a/#\",\"qos\":1}\n{\"op\":\"synced\"}\n{\"op\":\"reload\"}\n");
    settle(f);
    assert_int_equal(mqo_engine_stats(f->e)->bv_state, 2);
    assert_int_equal(mqo_engine_stats(f->e)->bv_table, 1);
    assert_int_equal(f->reloads, 1);
    cJSON *r = ask(f, "subs");
    cJSON *a = cJSON_GetObjectItem(r, "subscriptions");
    assert_int_equal(cJSON_GetArraySize(a), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 0), "origin")->valuestring,
                        "broker");
    cJSON_Delete(r);
    /* synced: nothing stops all offload; the reload is counted */
    r = ask(f, "status");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "holds")), 0);
    cJSON *pl = cJSON_GetObjectItem(r, "plugin");
    assert_int_equal(cJSON_GetObjectItem(pl, "reloads")->valueint, 1);
    cJSON_Delete(r);
    char *page = mqo_ctl_metrics_page(f->ctl);
    assert_non_null(page);
    assert_non_null(strstr(page, "\nmqoff_broker_reloads_total 1\n"));
    free(page);
    /* a second plugin is refused */
    int p2 = dial(f);
    say(p2, "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\"}\n");
    w = hear(f, p2);
    assert_non_null(w);
    assert_string_equal(cJSON_GetObjectItem(w, "op")->valuestring, "refused");
    cJSON_Delete(w);
    close(p2);
    /* the plugin goes: the view is dropped */
    close(p);
    settle(f);
    assert_int_equal(mqo_engine_stats(f->e)->bv_state, 0);
    assert_int_equal(mqo_engine_stats(f->e)->bv_table, 0);
}

static void test_line_limit(void **state)
{
    struct fix *f = *state;
    int p = dial(f);
    say(p, "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"acl\":\"allow\",\"coverage\":"
           "\"all\"}\n");
    cJSON_Delete(hear(f, p));
    static char big[(1 << 20) + 4096];
    memset(big, 'x', sizeof big);
    size_t off = 0;
    int closed = 0;
    for (int i = 0; i < 2000 && !closed; i++) {
        if (off < sizeof big) {
            ssize_t w = send(p, big + off, sizeof big - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                closed = 1;
        }
        mqo_ctl_run(f->ctl, 0);
        char c;
        struct pollfd pf = {.fd = p, .events = POLLIN};
        if (poll(&pf, 1, 1) > 0 && read(p, &c, 1) == 0)
            closed = 1;
    }
    assert_true(closed);
    close(p);
}

static void test_metrics_page(void **state)
{
    struct fix *f = *state;
    char *page = mqo_ctl_metrics_page(f->ctl);
    assert_non_null(page);
    assert_non_null(strstr(page, "# TYPE mqoff_publishes_offloaded_total counter\n"));
    assert_non_null(strstr(page, "mqoff_test_things_total{kind=\"a\"} 7\n"));
    assert_non_null(strstr(page, "# TYPE mqoff_test_depth_bytes gauge\n"));
    assert_non_null(strstr(page, "mqoff_publish_processing_seconds_bucket{result=\"offloaded\","
                                 "le=\"+Inf\"} 0\n"));
    /* one HELP and one TYPE per family */
    const char *first = strstr(page, "# TYPE mqoff_test_things_total");
    assert_null(strstr(first + 1, "# TYPE mqoff_test_things_total"));
    free(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
