/* topic/: name and filter validation, shared-subscription split, single matches. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "topic/topic.h"

#define U(s) ((const uint8_t *)(s))
#define S(s) U(s), strlen(s)

static int name_ok(const char *s) { return mqo_topic_name_valid(S(s)) == 0; }
static int filter_ok(const char *s) { return mqo_topic_filter_valid(S(s)) == 0; }
static int match(const char *f, const char *t) { return mqo_topic_matches(S(f), S(t)); }

static void test_name_valid(void **state)
{
    (void)state;
    const char *good[] = {"a", "a/b", "/", "//", "a//b", "/finance", "$SYS/x", "sport/tennis/player1",
                          " ", "a b/c", "$", "$share/g/a"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(name_ok(good[i]));
    const char *bad[] = {"", "+", "#", "a/+", "a/#", "a+", "sport/tennis#", "+/a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(name_ok(bad[i]));
    assert_int_equal(mqo_topic_name_valid(U("a\0b"), 3), -1);
    uint8_t *big = malloc(65536);
    assert_non_null(big);
    memset(big, 'x', 65536);
    assert_int_equal(mqo_topic_name_valid(big, 65535), 0);
    assert_int_equal(mqo_topic_name_valid(big, 65536), -1);
    free(big);
}

static void test_filter_valid(void **state)
{
    (void)state;
    const char *good[] = {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1",
                          "/+", "+/+", "/finance", "a//b", "/", "//", "+//+", "/#", "+/#", "$SYS/#",
                          "$SYS/monitor/+", "+/monitor/Clients", "a/b/c", "$share", "$sharex/a",
                          "$share/g/a", "$share/g/#", "$share/g/+/b", "$share/g//", "$share/consumer1/sport/tennis/+",
                          "$share/g/$share/h/x"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (!filter_ok(good[i]))
            fail_msg("should be valid: '%s'", good[i]);
    }
    const char *bad[] = {"", "sport+", "sport/tennis#", "sport/tennis/#/ranking", "#/a", "a/#/",
                         "+a", "a+/b", "a/b#", "a/+b", "##", "++", "a/#/+", "#/",
                         "$share/g/", "$share//a", "$share/g", "$share/", "$share/g+/a", "$share/g#/a",
                         "$share/+/a", "$share/g/a+", "$share/g/#/a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (filter_ok(bad[i]))
            fail_msg("should be invalid: '%s'", bad[i]);
    }
    /* U+0000 anywhere, including in the share group */
    assert_int_equal(mqo_topic_filter_valid(U("a\0b"), 3), -1);
    assert_int_equal(mqo_topic_filter_valid(U("$share/g\0/a"), 11), -1);
    assert_int_equal(mqo_topic_filter_valid(U("$share/g/a\0"), 11), -1);
    /* length limit */
    uint8_t *big = malloc(65536 + 16);
    assert_non_null(big);
    memset(big, 'x', 65536 + 16);
    assert_int_equal(mqo_topic_filter_valid(big, 65535), 0);
    assert_int_equal(mqo_topic_filter_valid(big, 65536), -1);
    memcpy(big, "$share/g/", 9);
    assert_int_equal(mqo_topic_filter_valid(big, 65535), 0);
    assert_int_equal(mqo_topic_filter_valid(big, 65536), -1);
    free(big);
}

static void test_share_split(void **state)
{
    (void)state;
    const uint8_t *g = NULL, *f = NULL;
    size_t gl = 0, fl = 0;
    assert_int_equal(mqo_topic_share_split(S("$share/grp/a/b"), &g, &gl, &f, &fl), 1);
    assert_int_equal(gl, 3);
    assert_memory_equal(g, "grp", 3);
    assert_int_equal(fl, 3);
    assert_memory_equal(f, "a/b", 3);

    assert_int_equal(mqo_topic_share_split(S("$share/g/#"), &g, &gl, &f, &fl), 1);
    assert_int_equal(gl, 1);
    assert_int_equal(fl, 1);
    assert_int_equal(f[0], '#');

    /* empty inner filter: split succeeds, validation rejects it */
    assert_int_equal(mqo_topic_share_split(S("$share/g/"), &g, &gl, &f, &fl), 1);
    assert_int_equal(fl, 0);

    assert_int_equal(mqo_topic_share_split(S("a/b"), &g, &gl, &f, &fl), 0);
    assert_int_equal(mqo_topic_share_split(S("$share"), &g, &gl, &f, &fl), 0);
    assert_int_equal(mqo_topic_share_split(S("$sharex/a/b"), &g, &gl, &f, &fl), 0);
    assert_int_equal(mqo_topic_share_split(S("$SHARE/g/a"), &g, &gl, &f, &fl), 0);
    assert_int_equal(mqo_topic_share_split(S("$SYS/a"), &g, &gl, &f, &fl), 0);
    assert_int_equal(mqo_topic_share_split(S("$share/"), &g, &gl, &f, &fl), -1);
    assert_int_equal(mqo_topic_share_split(S("$share/g"), &g, &gl, &f, &fl), -1);
    assert_int_equal(mqo_topic_share_split(S("$share//a"), &g, &gl, &f, &fl), -1);
    assert_int_equal(mqo_topic_share_split(S("$share/g+/a"), &g, &gl, &f, &fl), -1);
    assert_int_equal(mqo_topic_share_split(S("$share/#/a"), &g, &gl, &f, &fl), -1);
}

struct mcase {
    const char *f, *t;
    int want;
};

/* MQTT 3.1.1 4.7 and 5.0 4.7 (same examples), then edge cases. */
static const struct mcase spec_cases[] = {
    /* 4.7.1.2 multi-level wildcard */
    {"sport/tennis/player1/#", "sport/tennis/player1", 1},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", 1},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1},
    {"sport/tennis/player1/#", "sport/tennis/player2", 0},
    {"sport/tennis/player1/#", "sport/tennis", 0},
    {"sport/#", "sport", 1},
    {"sport/#", "sport/", 1},
    {"sport/#", "sport/tennis/player1", 1},
    {"sport/#", "sports", 0},
    {"#", "sport", 1},
    {"#", "sport/tennis/player1", 1},
    {"#", "/", 1},
    {"#", "/finance", 1},
    /* 4.7.1.3 single-level wildcard */
    {"sport/tennis/+", "sport/tennis/player1", 1},
    {"sport/tennis/+", "sport/tennis/player2", 1},
    {"sport/tennis/+", "sport/tennis/player1/ranking", 0},
    {"sport/+", "sport", 0},
    {"sport/+", "sport/", 1},
    {"+", "sport", 1},
    {"+", "/finance", 0},
    {"/+", "/finance", 1},
    {"+/+", "/finance", 1},
    {"+/tennis/#", "sport/tennis/player1", 1},
    {"+/tennis/#", "sport/tennis", 1},
    {"+/tennis/#", "sport/golf", 0},
    {"sport/+/player1", "sport/tennis/player1", 1},
    {"sport/+/player1", "sport/tennis/player2", 0},
    /* 4.7.2 topics beginning with $ */
    {"#", "$SYS/monitor/Clients", 0},
    {"#", "$SYS", 0},
    {"+/monitor/Clients", "$SYS/monitor/Clients", 0},
    {"$SYS/#", "$SYS/monitor/Clients", 1},
    {"$SYS/#", "$SYS", 1},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", 1},
    {"$SYS/monitor/+", "$SYS/monitor", 0},
    {"+", "$SYS", 0},
    {"+/#", "$x/y", 0},
    {"+/+", "$x/y", 0},
    {"a/+", "a/$x", 1},
    {"a/#", "a/$x", 1},
    {"$", "$", 1},
    /* 4.7.3 case sensitive, spaces allowed */
    {"ACCOUNTS", "Accounts", 0},
    {"Accounts payable", "Accounts payable", 1},
    /* empty levels */
    {"a//b", "a//b", 1},
    {"a//b", "a/b", 0},
    {"a/+/b", "a//b", 1},
    {"a/+/b", "a/b", 0},
    {"/", "/", 1},
    {"/", "//", 0},
    {"//", "//", 1},
    {"//", "/", 0},
    {"+/+", "/", 1},
    {"+/+", "//", 0},
    {"+/+/+", "//", 1},
    {"+", "/", 0},
    {"/#", "/", 1},
    {"/#", "//", 1},
    {"/#", "a", 0},
    {"/+", "/", 1},
    {"+/", "/", 1},
    {"+/", "a/", 1},
    {"+/", "a", 0},
    {"a/", "a", 0},
    {"a", "a/", 0},
    {"a/#", "a", 1},
    {"a/#", "a/", 1},
    {"a/#", "a//", 1},
    {"a/#", "b", 0},
    {"a/#", "ab", 0},
    {"a/b/#", "a", 0},
    {"a/+/#", "a", 0},
    {"a/+/#", "a/", 1},
    {"#", "/", 1},
    {"#", "//", 1},
    /* prefixes */
    {"a/b", "a/bc", 0},
    {"a/bc", "a/b", 0},
    {"abc", "ab", 0},
    {"a/b/c", "a/b", 0},
    {"a/b", "a/b/c", 0},
    {"+/b", "a/b/c", 0},
    {"$share", "$share", 1},
};

static void test_matches_spec(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof spec_cases / sizeof *spec_cases; i++) {
        const struct mcase *c = &spec_cases[i];
        assert_true(filter_ok(c->f));
        assert_true(name_ok(c->t));
        if (match(c->f, c->t) != c->want)
            fail_msg("'%s' vs '%s': got %d, want %d", c->f, c->t, !c->want, c->want);
    }
}

/* matches() does not read past the given lengths */
static void test_matches_bounds(void **state)
{
    (void)state;
    /* "a/b" followed by garbage that would change the answer if read */
    assert_int_equal(mqo_topic_matches(U("a/#xx"), 3, U("a/bc"), 3), 1);
    assert_int_equal(mqo_topic_matches(U("a/bcd"), 3, U("a/bxyz"), 3), 1);
    assert_int_equal(mqo_topic_matches(U("a/b/c"), 3, U("a/b/c"), 5), 0);
    assert_int_equal(mqo_topic_matches(U("+/x"), 1, U("a/x"), 1), 1);
    uint8_t *f = malloc(2), *t = malloc(1);
    assert_non_null(f);
    assert_non_null(t);
    memcpy(f, "a/", 2);
    t[0] = 'a';
    assert_int_equal(mqo_topic_matches(f, 2, t, 1), 0);
    memcpy(f, "/#", 2);
    assert_int_equal(mqo_topic_matches(f, 1, t, 1), 0);
    free(f);
    free(t);
}

/* Reference matcher on split levels, independent of the byte-wise one. */
static int ref_match(const char *f, const char *t)
{
    char fb[64], tb[64];
    const char *fl[32], *tl[32];
    size_t nf = 0, nt = 0;
    strcpy(fb, f);
    strcpy(tb, t);
    fl[nf++] = fb;
    for (char *p = fb; *p; p++)
        if (*p == '/') {
            *p = 0;
            fl[nf++] = p + 1;
        }
    tl[nt++] = tb;
    for (char *p = tb; *p; p++)
        if (*p == '/') {
            *p = 0;
            tl[nt++] = p + 1;
        }
    if (t[0] == '$' && (fl[0][0] == '+' || fl[0][0] == '#'))
        return 0;
    size_t i = 0;
    for (; i < nf; i++) {
        if (strcmp(fl[i], "#") == 0)
            return 1;
        if (i == nt)
            return 0;
        if (strcmp(fl[i], "+") != 0 && strcmp(fl[i], tl[i]) != 0)
            return 0;
    }
    return i == nt;
}

static void test_matches_random(void **state)
{
    (void)state;
    static const char *flv[] = {"", "a", "b", "$a", "+", "#"};
    static const char *tlv[] = {"", "a", "b", "$a", "ab"};
    srand(12345);
    unsigned n = 0;
    for (int it = 0; it < 200000; it++) {
        char f[64] = "", t[64] = "";
        int nf = 1 + rand() % 4, nt = 1 + rand() % 4;
        for (int k = 0; k < nf; k++) {
            const char *l = flv[rand() % 6];
            if (l[0] == '#' && k != nf - 1)
                l = "+";
            if (k)
                strcat(f, "/");
            strcat(f, l);
        }
        for (int k = 0; k < nt; k++) {
            if (k)
                strcat(t, "/");
            strcat(t, tlv[rand() % 5]);
        }
        if (!filter_ok(f) || !*t)
            continue;
        int want = ref_match(f, t);
        n += (unsigned)want;
        if (match(f, t) != want)
            fail_msg("'%s' vs '%s': want %d", f, t, want);
    }
    assert_true(n > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),    cmocka_unit_test(test_filter_valid),
        cmocka_unit_test(test_share_split),   cmocka_unit_test(test_matches_spec),
        cmocka_unit_test(test_matches_bounds), cmocka_unit_test(test_matches_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
