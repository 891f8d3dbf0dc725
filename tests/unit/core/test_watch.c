/* core/watch: every way an operator or an editor changes a file is reported, for that file
 * only. inotify queues events when the system call returns, so each check drains at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/watch.h"

struct tw {
    char dir[64], other[64]; /* two temporary directories */
    struct mqo_watch *w;
};

static int setup(void **st)
{
    struct tw *t = calloc(1, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/mqo-watch.XXXXXX");
    snprintf(t->other, sizeof t->other, "/tmp/mqo-watch.XXXXXX");
    if (!mkdtemp(t->dir) || !mkdtemp(t->other))
        return -1;
    if (mqo_watch_new(&t->w))
        return -1;
    *st = t;
    return 0;
}

static void rm_tree(const char *d)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d);
}

static int teardown(void **st)
{
    struct tw *t = *st;
    mqo_watch_free(t->w);
    rm_tree(t->dir);
    rm_tree(t->other);
    free(t);
    return 0;
}

/* dir/name, in one of a few rotating buffers: for paths used within a statement or two */
static const char *in(const char *dir, const char *name)
{
    static char b[4][128];
    static int k;
    char *p = b[k++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

/* A path kept for a whole test. */
#define PATH(var, dir, name)                                                                      \
    char var[128];                                                                                \
    snprintf(var, sizeof var, "%s/%s", dir, name)

/* Writes text to path in place: open (create or truncate), write, close. */
static void write_in_place(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* An editor's save: a new file beside it, renamed over it. */
static void write_and_rename(const char *path, const char *tmp, const char *text)
{
    write_in_place(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

static uint64_t drain(struct tw *t)
{
    uint64_t m = 0xdead;
    assert_int_equal(mqo_watch_drain(t->w, &m), 0);
    /* nothing left to wake a loop for (moving a watch queues an event of its own) */
    struct pollfd p = {.fd = mqo_watch_fd(t->w), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    return m;
}

static void test_created_written_replaced_removed(void **st)
{
    struct tw *t = *st;
    PATH(acl, t->dir, "acl");
    assert_int_equal(mqo_watch_add(t->w, acl), 0); /* does not exist yet */
    assert_true(mqo_watch_fd(t->w) >= 0);
    assert_int_equal(drain(t), 0);

    write_in_place(acl, "topic a\n"); /* created */
    assert_int_equal(drain(t), 1);
    assert_int_equal(drain(t), 0); /* reported once */

    write_in_place(acl, "topic b\n"); /* truncate + write (cp, shell redirection) */
    assert_int_equal(drain(t), 1);

    write_and_rename(acl, in(t->dir, ".acl.swp"), "topic c\n");
    assert_int_equal(drain(t), 1);
    write_in_place(acl, "topic d\n"); /* the new file is followed */
    assert_int_equal(drain(t), 1);

    assert_int_equal(chmod(acl, 0600), 0); /* the broker may no longer read it */
    assert_int_equal(drain(t), 1);

    assert_int_equal(unlink(acl), 0);
    assert_int_equal(drain(t), 1);
    write_in_place(acl, "topic e\n"); /* delete, then create */
    assert_int_equal(drain(t), 1);

    /* mv from another directory over it */
    write_in_place(in(t->other, "new"), "topic f\n");
    assert_int_equal(drain(t), 0); /* nothing of ours yet */
    assert_int_equal(rename(in(t->other, "new"), acl), 0);
    assert_int_equal(drain(t), 1);

    /* the old file renamed away (a backup) and changed: not ours any more */
    assert_int_equal(rename(acl, in(t->dir, "acl~")), 0);
    assert_int_equal(drain(t), 1); /* the name is gone */
    write_in_place(in(t->dir, "acl~"), "topic g\n");
    assert_int_equal(drain(t), 0);
}

static void test_other_files_not_reported(void **st)
{
    struct tw *t = *st;
    PATH(a, t->dir, "acl");
    PATH(b, t->dir, "mosquitto.conf");
    write_in_place(a, "x\n");
    write_in_place(b, "y\n");
    assert_int_equal(mqo_watch_add(t->w, a), 0);
    assert_int_equal(mqo_watch_add(t->w, b), 1); /* same directory: shared descriptor */
    assert_int_equal(drain(t), 0);
    write_in_place(in(t->dir, "unrelated"), "z\n");
    write_and_rename(in(t->dir, "unrelated"), in(t->dir, "tmp"), "z2\n");
    assert_int_equal(drain(t), 0);
    write_in_place(b, "y2\n");
    assert_int_equal(drain(t), 2);
    write_and_rename(a, in(t->dir, "tmp"), "x2\n");
    assert_int_equal(drain(t), 1);
    write_in_place(a, "x3\n");
    write_in_place(b, "y3\n");
    assert_int_equal(drain(t), 3); /* both, in one drain */
    /* the replaced file's old descriptor went, the shared directory's stayed */
    write_and_rename(b, in(t->dir, "tmp"), "y4\n");
    assert_int_equal(drain(t), 2);
    write_in_place(b, "y5\n");
    assert_int_equal(drain(t), 2);
}

/* /etc/mosquitto/acl -> /srv/acl: changes to the target, however made, and a symlink swapped
 * to another target (ln -sfn, or a configuration manager renaming a new link over it). */
static void test_symlink(void **st)
{
    struct tw *t = *st;
    PATH(link, t->dir, "acl");
    PATH(target, t->other, "acl.real");
    write_in_place(target, "a\n");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(mqo_watch_add(t->w, link), 0);
    assert_int_equal(drain(t), 0);

    write_in_place(target, "b\n"); /* written in place, in the other directory */
    assert_int_equal(drain(t), 1);
    write_and_rename(target, in(t->other, "tmp"), "c\n"); /* replaced there */
    assert_int_equal(drain(t), 1);
    write_in_place(target, "d\n"); /* the new target file is followed */
    assert_int_equal(drain(t), 1);
    write_in_place(in(t->other, "unrelated"), "u\n");
    assert_int_equal(drain(t), 0);

    /* the link swapped for one to another file, by a rename of a new link over it */
    PATH(target2, t->other, "acl.v2");
    write_in_place(target2, "e\n");
    assert_int_equal(drain(t), 0);
    assert_int_equal(symlink(target2, in(t->dir, ".tmp-link")), 0);
    assert_int_equal(rename(in(t->dir, ".tmp-link"), link), 0);
    assert_int_equal(drain(t), 1);
    write_in_place(target2, "f\n");
    assert_int_equal(drain(t), 1);
    write_in_place(target, "g\n"); /* the old target is no longer read */
    assert_int_equal(drain(t), 0);
}

static void test_errors(void **st)
{
    struct tw *t = *st;
    assert_true(mqo_watch_add(t->w, in(t->dir, "no-such-dir/acl")) < 0);
    for (int i = 0; i < MQO_WATCH_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(mqo_watch_add(t->w, in(t->dir, name)), i);
    }
    assert_int_equal(mqo_watch_add(t->w, in(t->dir, "one-more")), -ENOSPC);
    write_in_place(in(t->dir, "f63"), "x\n");
    uint64_t m = 0;
    assert_int_equal(mqo_watch_drain(t->w, &m), 0);
    assert_true(m == 1ull << 63);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_created_written_replaced_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_files_not_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
