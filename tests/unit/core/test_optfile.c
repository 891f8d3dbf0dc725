/* core/optfile: configuration files of command-line options; core/log: floods and syslog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/optfile.h"

static const struct option table[] = {
    {"listen", required_argument, 0, 256},  {"broker-only", required_argument, 0, 257},
    {"exclusive", no_argument, 0, 258},     {"max-queue", required_argument, 0, 259},
    {"max-buffer", required_argument, 0, 260}, {"help", no_argument, 0, 261},
    {0, 0, 0, 0}};

static int parse(const char *text, struct mqo_optfile *f, char *err, size_t errlen)
{
    static char buf[4096];
    size_t n = strlen(text);
    memcpy(buf, text, n + 1);
    return mqo_optfile_parse("t.conf", buf, n, table, f, err, errlen);
}

static void test_parse_lines(void **st)
{
    struct mqo_optfile f;
    char err[256];
    assert_int_equal(parse("# a comment\n"
                           "\n"
                           "  mode   proxy  \n"
                           "listen 198.18.0.3:1883\r\n"
                           "\t# indented comment\n"
                           "broker-only sensors/#  \n"
                           "broker-only a b # c\n"
                           "exclusive\n"
                           "max-queue\t65536",
                           &f, err, sizeof err),
                     0);
    assert_string_equal(f.mode, "proxy");
    assert_int_equal(f.mode_line, 3);
    assert_int_equal(f.n, 5);
    assert_int_equal(f.v[0].opt, 0);
    assert_string_equal(f.v[0].value, "198.18.0.3:1883");
    assert_int_equal(f.v[0].line, 4);
    assert_string_equal(f.v[1].value, "sensors/#"); /* '#' inside a value is the value's */
    assert_string_equal(f.v[2].value, "a b # c");
    assert_int_equal(f.v[3].opt, 2);
    assert_null(f.v[3].value);
    assert_string_equal(f.v[4].value, "65536");
    assert_int_equal(f.v[4].line, 9);
    free(f.v);
}

/* Each error names the file and the line, and nothing is returned. */
static void test_parse_errors(void **st)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"listen x\nbogus 1\n", "t.conf:2: unknown option 'bogus'"},
        {"exclusive yes\n", "t.conf:1: 'exclusive' takes no value (got 'yes')"},
        {"\n\nlisten\n", "t.conf:3: 'listen' needs a value"},
        {"--listen x\n", "t.conf:1: '--listen': write the option without its '--'"},
        {"mode proxy\nmode monitor\n", "t.conf:2: a second 'mode' line (the first is line 1)"},
        {"mode\n", "t.conf:1: 'mode' needs the mode's name"},
        {"help\n", "t.conf:1: unknown option 'help'"},
        {"config x\n", "t.conf:1: unknown option 'config'"},
        {"max-q 1\n", "t.conf:1: unknown option 'max-q'"}, /* no abbreviations in a file */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mqo_optfile f = {0};
        char err[256] = "";
        assert_int_equal(parse(cases[i].text, &f, err, sizeof err), -EINVAL);
        assert_string_equal(err, cases[i].err);
        assert_null(f.v);
    }
    char nul[] = "listen a\nlisten b\0c\n";
    struct mqo_optfile f = {0};
    char err[256];
    assert_int_equal(mqo_optfile_parse("t.conf", nul, sizeof nul - 1, table, &f, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "t.conf:2: a NUL byte: not a text file");
    /* table NULL: only the mode */
    char any[] = "whatever 1\nmode monitor\n";
    assert_int_equal(mqo_optfile_parse("t.conf", any, strlen(any), NULL, &f, err, sizeof err), 0);
    assert_string_equal(f.mode, "monitor");
    assert_int_equal(f.n, 0);
    free(f.v);
}

static void test_load(void **st)
{
    char path[] = "/tmp/mqo_optfile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "listen 1.2.3.4:5\nmax-queue 7\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    struct mqo_optfile f = {0};
    char err[256];
    assert_int_equal(mqo_optfile_load(path, table, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.path, path);
    mqo_optfile_dispose(&f);
    unlink(path);
    assert_int_equal(mqo_optfile_load(path, table, &f, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "No such file"));
}

static void test_find(void **st)
{
    const char *p;
    int at, n;
    char *a1[] = {"proxy", "--listen", "-c", "-c", "x.conf", NULL};
    assert_int_equal(mqo_optfile_find(5, a1, table, &p, &at, &n), 0);
    assert_string_equal(p, "x.conf"); /* "-c" after --listen is its value */
    assert_int_equal(at, 3);
    assert_int_equal(n, 2);
    char *a2[] = {"proxy", "--config=y.conf", NULL};
    assert_int_equal(mqo_optfile_find(2, a2, table, &p, &at, &n), 0);
    assert_string_equal(p, "y.conf");
    assert_int_equal(n, 1);
    char *a3[] = {"proxy", "-cz.conf", NULL};
    assert_int_equal(mqo_optfile_find(2, a3, table, &p, &at, &n), 0);
    assert_string_equal(p, "z.conf");
    char *a4[] = {"proxy", "--exclusive", NULL};
    assert_int_equal(mqo_optfile_find(2, a4, table, &p, &at, &n), 0);
    assert_null(p);
    char *a5[] = {"proxy", "-c", NULL};
    assert_int_equal(mqo_optfile_find(2, a5, table, &p, &at, &n), -EINVAL);
    char *a6[] = {"proxy", "--", "-c", "x", NULL};
    assert_int_equal(mqo_optfile_find(4, a6, table, &p, &at, &n), 0);
    assert_null(p);
}

/* The file's options first, then the command line's without -c; an option the command line
 * gives drops every value the file has for it; a closing "--"; lines mapped. */
static void test_merge_and_values(void **st)
{
    struct mqo_optfile f;
    char err[256];
    assert_int_equal(parse("listen f:1\nbroker-only f/1\nbroker-only f/2\nexclusive\n"
                           "max-queue 100\n",
                           &f, err, sizeof err),
                     0);
    char *argv[] = {"proxy", "--broker-only", "c/1", "-c", "t.conf", "--max-q=200", NULL};
    struct mqo_optargs a;
    assert_int_equal(mqo_optfile_merge(&f, table, 6, argv, &a), 0);
    const char *want[] = {"proxy", "--listen=f:1", "--exclusive", "--broker-only", "c/1",
                          "--max-q=200", "--"};
    const unsigned lines[] = {0, 1, 4, 0, 0, 0, 0};
    assert_int_equal(a.argc, 7);
    for (int i = 0; i < a.argc; i++) {
        assert_string_equal(a.argv[i], want[i]);
        assert_int_equal(a.line[i], lines[i]);
    }
    assert_null(a.argv[a.argc]);
    char **v;
    assert_int_equal(mqo_optargs_values(table, "h", &a, &v), 0);
    assert_string_equal(v[0], "f:1\n");
    assert_string_equal(v[1], "c/1\n");
    assert_string_equal(v[2], "\n");
    assert_string_equal(v[3], "200\n");
    assert_null(v[4]);
    assert_int_equal(optind, 1);
    mqo_optvals_free(v, table);
    mqo_optargs_dispose(&a);

    /* no file: the command line alone, "--" closing it */
    char *argv2[] = {"proxy", "--exclusive", NULL};
    assert_int_equal(mqo_optfile_merge(NULL, table, 2, argv2, &a), 0);
    assert_int_equal(a.argc, 3);
    assert_string_equal(a.argv[2], "--");
    mqo_optargs_dispose(&a);
    free(f.v);
}

static unsigned long long g_fake_ns;
static unsigned long long fake_now(void) { return g_fake_ns; }

struct seen {
    int n;
    char last[1100];
};
static void capture(enum mqo_log_level lvl, const char *msg, void *arg)
{
    struct seen *s = arg;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s", msg);
}

/* A flood from one call site: burst lines pass, then rate per second; the next that passes says
 * how many were dropped; another site is not affected; debug lines are not limited. */
static void flood(int i) { mqo_warn("flood %d", i); }
static void other(void) { mqo_warn("other"); }

static void test_log_flood(void **st)
{
    struct seen s = {0};
    mqo_log_set_sink(capture, &s);
    mqo_log_set_rate(5, 2, fake_now);
    g_fake_ns = 1000000000ull;
    for (int i = 0; i < 100; i++)
        flood(i);
    assert_int_equal(s.n, 5);
    other();
    assert_int_equal(s.n, 6);
    g_fake_ns += 499000000ull; /* 0.998 tokens */
    flood(100);
    assert_int_equal(s.n, 6);
    g_fake_ns += 1000000ull;
    flood(101);
    assert_int_equal(s.n, 7);
    assert_string_equal(s.last, "flood 101 (96 more like this dropped: a flood)");
    g_fake_ns += 60ull * 1000000000ull; /* refilled up to the burst, not beyond */
    for (int i = 0; i < 10; i++)
        flood(i);
    assert_int_equal(s.n, 12);
    enum mqo_log_level lvl = mqo_log_get_level();
    mqo_log_set_level(MQO_LOG_DEBUG);
    for (int i = 0; i < 50; i++)
        mqo_dbg("debug %d", i);
    assert_int_equal(s.n, 62);
    mqo_log_set_level(lvl);
    mqo_log_set_rate(0, 0, NULL); /* off */
    for (int i = 0; i < 50; i++)
        flood(i);
    assert_int_equal(s.n, 112);
    mqo_log_set_rate(20, 2, NULL);
    mqo_log_set_sink(NULL, NULL);
}

static void test_log_dest(void **st)
{
    int on = -1;
    assert_int_equal(mqo_log_parse_dest("syslog", &on), 0);
    assert_int_equal(on, 1);
    assert_int_equal(mqo_log_parse_dest("stderr", &on), 0);
    assert_int_equal(on, 0);
    assert_int_equal(mqo_log_parse_dest("journal", &on), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lines),      cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_load),             cmocka_unit_test(test_find),
        cmocka_unit_test(test_merge_and_values), cmocka_unit_test(test_log_flood),
        cmocka_unit_test(test_log_dest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
