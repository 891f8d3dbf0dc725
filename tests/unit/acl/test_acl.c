/* Unit tests for acl/: Mosquitto 2.0.11 acl_file parsing and access checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"

#define R MQO_ACL_READ
#define W MQO_ACL_WRITE

static struct mqo_acl *parse_ok(const char *text)
{
    struct mqo_acl *a = NULL;
    char err[256] = "";
    int rc = mqo_acl_parse(text, strlen(text), &a, err, sizeof err);
    if (rc != 0)
        print_error("unexpected parse error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(a);
    return a;
}

/* Parses text (len bytes) expecting -EINVAL with an error starting with "line N:". */
static void parse_fails_n(const char *text, size_t len, unsigned line)
{
    struct mqo_acl *a = (struct mqo_acl *)&a; /* must be reset to NULL */
    char err[256] = "";
    int rc = mqo_acl_parse(text, len, &a, err, sizeof err);
    assert_int_equal(rc, -EINVAL);
    assert_null(a);
    char want[32];
    snprintf(want, sizeof want, "line %u: ", line);
    if (strncmp(err, want, strlen(want)) != 0)
        print_error("error \"%s\" does not start with \"%s\"\n", err, want);
    assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void parse_fails(const char *text, unsigned line)
{
    parse_fails_n(text, strlen(text), line);
}

/* user NULL = no username. */
static int chk(const struct mqo_acl *a, const char *cid, const char *user, const char *topic,
               int access)
{
    return mqo_acl_check(a, (const uint8_t *)cid, strlen(cid), (const uint8_t *)user,
                         user ? strlen(user) : 0, user != NULL, (const uint8_t *)topic,
                         strlen(topic), access);
}

/* ---- parsing ---- */

static void test_parse_comments_blank_whitespace(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("# a comment\n"
                                 "#topic read nope\n"
                                 "\n"
                                 "   \n"
                                 "\t\n"
                                 "   topic   read   a/b   \t\r\n"
                                 "topic write c\r\n"
                                 "topic d"); /* last line without newline */
    assert_int_equal(mqo_acl_rule_count(a), 3);
    assert_true(chk(a, "c", NULL, "a/b", R));
    assert_false(chk(a, "c", NULL, "a/b", W));
    assert_true(chk(a, "c", NULL, "c", W));
    assert_false(chk(a, "c", NULL, "c", R));
    assert_true(chk(a, "c", NULL, "d", R));
    assert_true(chk(a, "c", NULL, "d", W));
    assert_false(chk(a, "c", NULL, "nope", R));
    mqo_acl_free(a);
}

static void test_parse_no_access_word_is_readwrite(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic x/+\ntopic read\ntopic deny\n");
    assert_true(chk(a, "c", NULL, "x/1", R));
    assert_true(chk(a, "c", NULL, "x/1", W));
    /* a single word after "topic" is the topic, even when it is an access word */
    assert_true(chk(a, "c", NULL, "read", W));
    assert_true(chk(a, "c", NULL, "deny", R));
    mqo_acl_free(a);
}

static void test_parse_topic_with_spaces(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic read a b  c\n"
                                 "topic  write   \t lead/space\n"
                                 "topic readwrite sp x/+\n");
    assert_true(chk(a, "c", NULL, "a b  c", R));
    assert_false(chk(a, "c", NULL, "a b c", R));
    assert_true(chk(a, "c", NULL, "lead/space", W));
    assert_true(chk(a, "c", NULL, "sp x/y", R));
    mqo_acl_free(a);
    /* "topic a b": "a" is taken as the access word */
    parse_fails("topic a b\n", 1);
    /* a wildcard followed by a space is not a whole level */
    parse_fails("topic readwrite sp/+ x\n", 1);
    /* words are split on spaces only: "read\ta" is one word, hence the topic (readwrite) */
    a = parse_ok("topic read\ta\n");
    assert_true(chk(a, "c", NULL, "read\ta", W));
    mqo_acl_free(a);
}

static void test_parse_user_names(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("user   bob smith  \n"
                                 "topic read bs/#\n"
                                 "user \tcarol\r\n"
                                 "topic read cs/#\n");
    assert_true(chk(a, "c", "bob smith", "bs/1", R));
    assert_false(chk(a, "c", "bob", "bs/1", R));
    assert_false(chk(a, "c", "bob smith ", "bs/1", R));
    assert_true(chk(a, "c", "carol", "cs/1", R));
    mqo_acl_free(a);
}

static void test_parse_errors_with_line_numbers(void **state)
{
    (void)state;
    parse_fails("topic a\n # indented comment\n", 2);     /* only column-1 '#' is a comment */
    parse_fails("\n\n\ttopic a\n", 3);                    /* tab before keyword */
    parse_fails("topic a\nfoo bar\n", 2);                 /* unknown keyword */
    parse_fails("TOPIC a\n", 1);                          /* case-sensitive */
    parse_fails("topic a\ntopic\n", 2);                   /* empty topic */
    parse_fails("pattern   \n", 1);
    parse_fails("topic bogus a\n", 1);                    /* invalid access */
    parse_fails("topic Read a\n", 1);
    parse_fails("topic read a/#/b\n", 1);                 /* invalid filters */
    parse_fails("topic read a+\n", 1);
    parse_fails("topic read +a/b\n", 1);
    parse_fails("topic read a/b#\n", 1);
    parse_fails("pattern read %c#\n", 1);                 /* checked before substitution */
    parse_fails("pattern read x/%u+\n", 1);
    parse_fails("user\n", 1);                             /* missing username */
    parse_fails("topic a\nuser   \t \n", 2);
    parse_fails_n("topic a\ntopic b\0c\n", 16, 2);        /* NUL byte */
}

static void test_parse_filter_limits(void **state)
{
    (void)state;
    /* 200 '/' is Mosquitto's hierarchy limit for an ACL topic; 201 is refused */
    char line[512];
    strcpy(line, "topic read ");
    size_t n = strlen(line);
    for (int i = 0; i < 200; i++)
        line[n++] = '/';
    line[n] = '\0';
    struct mqo_acl *a = parse_ok(line);
    mqo_acl_free(a);
    line[n++] = '/';
    line[n] = '\0';
    parse_fails(line, 1);

    /* 65535 bytes is the longest topic; longer is refused. The line is longer than any
     * fixed reader buffer, which Mosquitto extends. */
    size_t big = 11 + 65536 + 2;
    char *t = malloc(big);
    assert_non_null(t);
    memcpy(t, "topic read ", 11);
    memset(t + 11, 'x', 65535);
    t[11 + 65535] = '\n';
    t[11 + 65536] = '\0';
    a = parse_ok(t);
    mqo_acl_free(a);
    t[11 + 65535] = 'x';
    t[11 + 65536] = '\n';
    t[11 + 65537] = '\0';
    parse_fails(t, 1);
    free(t);
}

static void test_parse_empty_and_rule_count(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("");
    assert_int_equal(mqo_acl_rule_count(a), 0);
    /* an acl_file with no rules denies everything */
    assert_false(chk(a, "c", NULL, "a", R));
    assert_false(chk(a, "c", "u", "a", W));
    assert_false(chk(a, "c", NULL, "$SYS/broker/uptime", R));
    mqo_acl_free(a);

    a = parse_ok("topic a\nuser u\ntopic b\nuser v\npattern c/%c\ntopic d\ntopic deny e\n");
    assert_int_equal(mqo_acl_rule_count(a), 5);
    mqo_acl_free(a);
    assert_int_equal(mqo_acl_rule_count(NULL), 0);
    mqo_acl_free(NULL);

    /* NULL text with length 0 is an empty file */
    a = NULL;
    assert_int_equal(mqo_acl_parse(NULL, 0, &a, NULL, 0), 0);
    assert_non_null(a);
    mqo_acl_free(a);
}

/* ---- which list applies ---- */

static void test_anonymous_section(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic read pub/#\n"
                                 "user bob\n"
                                 "topic readwrite bob/#\n");
    assert_true(chk(a, "c", NULL, "pub/x", R));
    assert_false(chk(a, "c", NULL, "pub/x", W));
    assert_false(chk(a, "c", NULL, "bob/x", R));
    /* a user with a section does not get the anonymous rules */
    assert_false(chk(a, "c", "bob", "pub/x", R));
    assert_true(chk(a, "c", "bob", "bob/x", W));
    /* a user without a section gets nothing (no patterns here) */
    assert_false(chk(a, "c", "alice", "pub/x", R));
    assert_false(chk(a, "c", "alice", "bob/x", R));
    /* a zero-length username is no username (Mosquitto drops it at CONNECT) */
    assert_int_equal(mqo_acl_check(a, (const uint8_t *)"c", 1, (const uint8_t *)"", 0, 1,
                                   (const uint8_t *)"pub/x", 5, R),
                     1);
    mqo_acl_free(a);
}

static void test_no_anonymous_section(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("user bob\ntopic #\n");
    assert_false(chk(a, "c", NULL, "a", R));
    assert_true(chk(a, "c", "bob", "a", R));
    mqo_acl_free(a);
}

static void test_user_sections_merge_and_empty(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("user bob\n"
                                 "topic read a\n"
                                 "user empty\n"
                                 "user carol\n"
                                 "topic read c\n"
                                 "user bob\n"
                                 "topic write b\n"
                                 "user bob\n"
                                 "topic deny a\n"
                                 "pattern read p/%u\n");
    /* bob's two sections are one: the later deny overrides the earlier grant */
    assert_false(chk(a, "c", "bob", "a", R));
    assert_true(chk(a, "c", "bob", "b", W));
    assert_true(chk(a, "c", "carol", "c", R));
    assert_false(chk(a, "c", "carol", "b", W));
    /* "user empty" has no rule: patterns only */
    assert_true(chk(a, "c", "empty", "p/empty", R));
    assert_false(chk(a, "c", "empty", "c", R));
    /* sections are per name, exact bytes */
    assert_false(chk(a, "c", "Carol", "c", R));
    mqo_acl_free(a);
}

static void test_many_users(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (int i = 999; i >= 0; i--)
        n += (size_t)snprintf(t + n, cap - n, "user u%d\ntopic read t/%d\n", i, i);
    struct mqo_acl *a = parse_ok(t);
    free(t);
    assert_int_equal(mqo_acl_rule_count(a), 1000);
    char u[16], topic[16];
    for (int i = 0; i < 1000; i += 37) {
        snprintf(u, sizeof u, "u%d", i);
        snprintf(topic, sizeof topic, "t/%d", i);
        assert_true(chk(a, "c", u, topic, R));
        snprintf(topic, sizeof topic, "t/%d", i + 1);
        assert_false(chk(a, "c", u, topic, R));
    }
    assert_false(chk(a, "c", "u1000", "t/1000", R));
    mqo_acl_free(a);
}

/* ---- access bits and deny ---- */

static void test_read_write_readwrite(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic read r\ntopic write w\ntopic readwrite rw\n");
    assert_true(chk(a, "c", NULL, "r", R));
    assert_false(chk(a, "c", NULL, "r", W));
    assert_false(chk(a, "c", NULL, "w", R));
    assert_true(chk(a, "c", NULL, "w", W));
    assert_true(chk(a, "c", NULL, "rw", R));
    assert_true(chk(a, "c", NULL, "rw", W));
    /* only READ or WRITE are valid requests */
    assert_false(mqo_acl_check(a, (const uint8_t *)"c", 1, NULL, 0, 0, (const uint8_t *)"rw",
                               2, R | W));
    assert_false(mqo_acl_check(a, (const uint8_t *)"c", 1, NULL, 0, 0, (const uint8_t *)"rw",
                               2, 0));
    mqo_acl_free(a);
}

static void test_deny_precedence(void **state)
{
    (void)state;
    /* deny wins whatever its position in the file */
    struct mqo_acl *a = parse_ok("topic readwrite a/#\n"
                                 "topic deny a/secret/#\n"
                                 "topic read b/#\n");
    assert_true(chk(a, "c", NULL, "a/x", W));
    assert_false(chk(a, "c", NULL, "a/secret", R));
    assert_false(chk(a, "c", NULL, "a/secret/y", W));
    assert_true(chk(a, "c", NULL, "b/secret", R));
    mqo_acl_free(a);

    a = parse_ok("topic deny a/secret\ntopic readwrite a/#\n");
    assert_false(chk(a, "c", NULL, "a/secret", R));
    assert_true(chk(a, "c", NULL, "a/public", R));
    mqo_acl_free(a);
}

static void test_list_then_patterns(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("user bob\n"
                                 "topic read shared/#\n"
                                 "topic deny d/#\n"
                                 "topic readwrite own/x\n"
                                 "pattern readwrite d/%u\n"
                                 "pattern deny own/%u\n"
                                 "pattern write shared/%u\n");
    /* a list deny is final: the pattern grant for d/bob is never reached */
    assert_false(chk(a, "c", "bob", "d/bob", R));
    /* a list grant is final: the deny pattern own/bob is never reached... */
    assert_true(chk(a, "c", "bob", "own/x", W));
    /* ...but it applies when the list does not decide */
    assert_false(chk(a, "c", "bob", "own/bob", R));
    /* a matching list rule without the requested bit falls through to patterns */
    assert_true(chk(a, "c", "bob", "shared/bob", W));
    assert_false(chk(a, "c", "bob", "shared/x", W));
    mqo_acl_free(a);
}

/* ---- patterns ---- */

static void test_pattern_substitution(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("pattern readwrite dev/%c/#\n"
                                 "pattern read user/%u/+/in\n"
                                 "pattern write both/%u/%c\n"
                                 "pattern read lit/%%c/%x/%\n");
    assert_true(chk(a, "d1", NULL, "dev/d1/x", W));
    assert_true(chk(a, "d1", NULL, "dev/d1", R));
    assert_false(chk(a, "d1", NULL, "dev/d2/x", R));
    assert_true(chk(a, "d1", "bob", "user/bob/a/in", R));
    assert_false(chk(a, "d1", "bob", "user/bob/a/in", W));
    /* %u patterns are skipped for anonymous clients */
    assert_false(chk(a, "d1", NULL, "user/%u/a/in", R));
    assert_false(chk(a, "d1", NULL, "user//a/in", R));
    assert_true(chk(a, "d1", "bob", "both/bob/d1", W));
    assert_false(chk(a, "d1", NULL, "both/%u/d1", W));
    /* "%%c" is '%' then %c; other '%' sequences stay as they are */
    assert_true(chk(a, "id", NULL, "lit/%id/%x/%", R));
    mqo_acl_free(a);
}

static void test_pattern_dangerous_ids(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic read open/#\n"
                                 "user bob+\n"
                                 "topic read bobplus/#\n"
                                 "pattern read %c/#\n"
                                 "pattern read u/%u/#\n"
                                 "pattern read any/#\n");
    /* '+' or '#' in the client id or the username: every pattern is refused... */
    assert_false(chk(a, "a+", NULL, "a+/x", R));
    assert_false(chk(a, "a+", NULL, "any/x", R));
    assert_false(chk(a, "a#", NULL, "any/x", R));
    assert_false(chk(a, "c", "b#", "u/b#/x", R));
    assert_false(chk(a, "c", "b#", "any/x", R));
    /* ...but the list is checked before that test */
    assert_true(chk(a, "a#", NULL, "open/x", R));
    assert_true(chk(a, "c", "bob+", "bobplus/x", R));
    assert_false(chk(a, "c", "bob+", "any/x", R));
    /* '/' is allowed in 2.0 and substitutes as level separators */
    assert_true(chk(a, "a/b", NULL, "a/b/x", R));
    assert_true(chk(a, "c", "x/y", "u/x/y/z", R));
    assert_true(chk(a, "c", NULL, "any/x", R));
    mqo_acl_free(a);

    /* without patterns, dangerous ids are not refused by themselves */
    a = parse_ok("topic read #\n");
    assert_true(chk(a, "a+#", NULL, "x", R));
    mqo_acl_free(a);
}

static void test_pattern_deny(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("pattern readwrite %c/#\n"
                                 "pattern deny %c/private/#\n"
                                 "pattern deny %u/nope\n");
    assert_true(chk(a, "c1", NULL, "c1/x", W));
    assert_false(chk(a, "c1", NULL, "c1/private", R));
    assert_false(chk(a, "c1", NULL, "c1/private/y", W));
    assert_false(chk(a, "c1", "c1", "c1/nope", R));
    /* %u deny patterns are skipped for anonymous clients too */
    assert_true(chk(a, "c1", NULL, "c1/nope", R));
    mqo_acl_free(a);
}

static void test_pattern_long_substitution(void **state)
{
    (void)state;
    /* substitution longer than the stack buffer */
    char cid[700], topic[900];
    memset(cid, 'k', sizeof cid - 1);
    cid[sizeof cid - 1] = '\0';
    snprintf(topic, sizeof topic, "p/%s/%s", cid, cid + 600);
    struct mqo_acl *a = parse_ok("pattern read p/%c/%c\npattern read q/%c/#\n");
    assert_false(chk(a, cid, NULL, topic, R));
    snprintf(topic, sizeof topic, "q/%s/z", cid);
    assert_true(chk(a, cid, NULL, topic, R));
    char *t2 = malloc(1500);
    assert_non_null(t2);
    snprintf(t2, 1500, "p/%s/%s", cid, cid);
    assert_true(chk(a, cid, NULL, t2, R));
    t2[strlen(t2) - 1] = 'j';
    assert_false(chk(a, cid, NULL, t2, R));
    free(t2);
    mqo_acl_free(a);
}

static void test_unknown_client_id(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic read t\npattern read u/%u\npattern read c/%c\n");
    /* empty client id = unknown: patterns with %c cannot be decided: denied */
    assert_true(chk(a, "", NULL, "t", R));
    assert_true(chk(a, "", "bob", "u/bob", R));
    assert_false(chk(a, "", "bob", "c/", R));
    assert_false(chk(a, "", "bob", "x", R));
    mqo_acl_free(a);
}

/* ---- wildcards and topics ---- */

static void test_wildcards(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic read a/#\n"
                                 "topic read +/b\n"
                                 "topic read x/+/#\n"
                                 "topic read e/+\n"
                                 "topic read /lead\n");
    assert_true(chk(a, "c", NULL, "a", R)); /* '#' also matches the parent */
    assert_true(chk(a, "c", NULL, "a/", R));
    assert_true(chk(a, "c", NULL, "a/b/c", R));
    assert_false(chk(a, "c", NULL, "ab", R));
    assert_true(chk(a, "c", NULL, "q/b", R));
    assert_true(chk(a, "c", NULL, "/b", R)); /* '+' matches an empty level */
    assert_false(chk(a, "c", NULL, "q/r/b", R));
    assert_true(chk(a, "c", NULL, "x/y", R));
    assert_true(chk(a, "c", NULL, "x/y/z", R));
    assert_false(chk(a, "c", NULL, "x", R));
    assert_true(chk(a, "c", NULL, "e/", R));
    assert_false(chk(a, "c", NULL, "e", R));
    assert_false(chk(a, "c", NULL, "e/f/g", R));
    assert_true(chk(a, "c", NULL, "/lead", R));
    assert_false(chk(a, "c", NULL, "lead", R));
    mqo_acl_free(a);

    a = parse_ok("topic #\n");
    assert_true(chk(a, "c", NULL, "/", R));
    assert_true(chk(a, "c", NULL, "anything/at/all", W));
    /* invalid topic names never match */
    assert_false(chk(a, "c", NULL, "", R));
    assert_false(chk(a, "c", NULL, "a/+", W));
    assert_false(chk(a, "c", NULL, "a/#", W));
    assert_false(mqo_acl_check(a, (const uint8_t *)"c", 1, NULL, 0, 0,
                               (const uint8_t *)"a\0b", 3, R));
    /* strings the broker cannot hold are refused */
    assert_false(mqo_acl_check(a, (const uint8_t *)"c\0d", 3, NULL, 0, 0,
                               (const uint8_t *)"a", 1, R));
    assert_false(mqo_acl_check(a, (const uint8_t *)"c", 1, (const uint8_t *)"u\0", 2, 1,
                               (const uint8_t *)"a", 1, R));
    mqo_acl_free(a);
}

static void test_dollar_topics(void **state)
{
    (void)state;
    struct mqo_acl *a = parse_ok("topic readwrite #\n"
                                 "topic readwrite +/#\n");
    /* wildcard-first rules do not match '$' topics */
    assert_false(chk(a, "c", NULL, "$SYS/broker/uptime", R));
    assert_false(chk(a, "c", NULL, "$CONTROL/x/v1", W));
    assert_false(chk(a, "c", NULL, "$foo", R));
    assert_true(chk(a, "c", NULL, "foo$", R));
    mqo_acl_free(a);

    a = parse_ok("topic readwrite $SYS/#\n"
                 "topic readwrite $SYSX/#\n"
                 "topic readwrite $share/#\n"
                 "topic readwrite $CONTROL/#\n"
                 "pattern write $SYS/broker/connection/%c/state\n");
    assert_true(chk(a, "c", NULL, "$SYS/broker/uptime", R));
    assert_true(chk(a, "c", NULL, "$SYS", R));
    /* $SYS (4-byte prefix) is never writable, except bridge state topics */
    assert_false(chk(a, "c", NULL, "$SYS/broker/uptime", W));
    assert_false(chk(a, "c", NULL, "$SYSX/y", W));
    assert_true(chk(a, "c", NULL, "$SYSX/y", R));
    assert_true(chk(a, "c", NULL, "$SYS/broker/connection/br1/state", W));
    assert_true(chk(a, "br1", NULL, "$SYS/broker/connection/br1/state", W));
    /* $share topics: never read or written */
    assert_false(chk(a, "c", NULL, "$share/g/a", R));
    assert_false(chk(a, "c", NULL, "$share/g/a", W));
    assert_false(chk(a, "c", NULL, "$shared", R));
    /* other '$' topics follow the rules */
    assert_true(chk(a, "c", NULL, "$CONTROL/dynamic-security/v1", W));
    mqo_acl_free(a);

    a = parse_ok("pattern write $SYS/broker/connection/%c/state\n");
    assert_true(chk(a, "br1", NULL, "$SYS/broker/connection/br1/state", W));
    assert_false(chk(a, "br2", NULL, "$SYS/broker/connection/br1/state", W));
    assert_false(chk(a, "br1", NULL, "$SYS/broker/connection/br1/state", R));
    mqo_acl_free(a);
}

/* ---- comparing versions ---- */

/* Same rules in the same order: the same. Comments, blank lines, repeated user lines, the
 * order of sections and where deny rules stand in a list do not matter; any rule, access,
 * user or the order of the grants of a list does. */
static void test_same(void **state)
{
    (void)state;
    const char *base = "topic read pub/#\n"
                       "user bob\ntopic write b/#\ntopic deny b/x\n"
                       "user carol\ntopic read c/#\n"
                       "pattern read p/%u\n";
    struct mqo_acl *a = parse_ok(base);
    static const struct {
        const char *text;
        int same;
    } cases[] = {
        {"# a comment\n\ntopic read pub/#\n"
         "user carol\ntopic read c/#\n"
         "user bob\ntopic deny b/x\ntopic write b/#\n"
         "pattern read p/%u\n", 1},
        {"topic read pub/#\nuser bob\ntopic write b/#\nuser carol\ntopic read c/#\n"
         "user bob\ntopic deny b/x\npattern read p/%u\n", 1},
        {"topic read pub/#\nuser bob\ntopic write b/#\ntopic deny b/x\n"
         "user carol\ntopic read c/#\n", 0},                                /* no pattern */
        {"topic readwrite pub/#\nuser bob\ntopic write b/#\ntopic deny b/x\n"
         "user carol\ntopic read c/#\npattern read p/%u\n", 0},            /* access */
        {"topic read pub/#\nuser bob\ntopic write b/#\ntopic deny b/y\n"
         "user carol\ntopic read c/#\npattern read p/%u\n", 0},            /* filter */
        {"topic read pub/#\nuser bob\ntopic write b/#\ntopic deny b/x\n"
         "user dave\ntopic read c/#\npattern read p/%u\n", 0},             /* user */
        {"user bob\ntopic write b/#\ntopic deny b/x\n"
         "user carol\ntopic read c/#\ntopic read pub/#\npattern read p/%u\n", 0}, /* section */
        {"topic read pub/#\nuser bob\ntopic write b/#\ntopic deny b/x\n"
         "user carol\ntopic read c/#\npattern read p/%c\n", 0},            /* %u vs %c */
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mqo_acl *b = parse_ok(cases[i].text);
        assert_int_equal(mqo_acl_same(a, b), cases[i].same);
        assert_int_equal(mqo_acl_same(b, a), cases[i].same);
        mqo_acl_free(b);
    }
    struct mqo_acl *g1 = parse_ok("topic read a\ntopic read b\n");
    struct mqo_acl *g2 = parse_ok("topic read b\ntopic read a\n");
    assert_false(mqo_acl_same(g1, g2)); /* grants in another order: counted as different */
    assert_true(mqo_acl_same(NULL, NULL));
    assert_false(mqo_acl_same(a, NULL));
    mqo_acl_free(g1);
    mqo_acl_free(g2);
    mqo_acl_free(a);
}

/* ---- loading ---- */

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/mqoff_acl_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "topic read pub/#\nuser bob\ntopic write bob/#\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    struct mqo_acl *a = NULL;
    char err[256] = "";
    assert_int_equal(mqo_acl_load(path, &a, err, sizeof err), 0);
    assert_non_null(a);
    assert_int_equal(mqo_acl_rule_count(a), 2);
    assert_true(chk(a, "c", NULL, "pub/1", R));
    assert_true(chk(a, "c", "bob", "bob/1", W));
    mqo_acl_free(a);

    /* a parse error names the file and the line */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("topic a\ntopic read\nuser\n", f);
    fclose(f);
    a = (struct mqo_acl *)&a;
    assert_int_equal(mqo_acl_load(path, &a, err, sizeof err), -EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 3: "));

    assert_int_equal(unlink(path), 0);
    assert_int_equal(mqo_acl_load(path, &a, err, sizeof err), -ENOENT);
    assert_null(a);
    assert_non_null(strstr(err, path));

    /* a directory is refused */
    assert_int_equal(mqo_acl_load("/tmp", &a, err, sizeof err), -EISDIR);
    assert_null(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_parse_comments_blank_whitespace),
        cmocka_unit_test(test_parse_no_access_word_is_readwrite),
        cmocka_unit_test(test_parse_topic_with_spaces),
        cmocka_unit_test(test_parse_user_names),
        cmocka_unit_test(test_parse_errors_with_line_numbers),
        cmocka_unit_test(test_parse_filter_limits),
        cmocka_unit_test(test_parse_empty_and_rule_count),
        cmocka_unit_test(test_anonymous_section),
        cmocka_unit_test(test_no_anonymous_section),
        cmocka_unit_test(test_user_sections_merge_and_empty),
        cmocka_unit_test(test_many_users),
        cmocka_unit_test(test_read_write_readwrite),
        cmocka_unit_test(test_deny_precedence),
        cmocka_unit_test(test_list_then_patterns),
        cmocka_unit_test(test_pattern_substitution),
        cmocka_unit_test(test_pattern_dangerous_ids),
        cmocka_unit_test(test_pattern_deny),
        cmocka_unit_test(test_pattern_long_substitution),
        cmocka_unit_test(test_unknown_client_id),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_dollar_topics),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
