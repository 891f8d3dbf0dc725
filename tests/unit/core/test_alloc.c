/* core/alloc: the allocator keeps a burst's freed output mapped, so the next burst does not
 * fault it in again page by page.
 *
 * Each case runs in a child process of its own (the settings are process-wide and cannot be
 * undone): 30 bursts like a fan-out's backlog, 10 outputs growing by appends of 16 KiB to
 * 112 KiB (mqo_buf, as the splice's output does), written, then all freed; the minor page
 * faults of the 29 bursts after the first are counted. With glibc's defaults the freed top of
 * the heap goes back to the kernel after every burst and each burst faults it in again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../asan.h"
#include "core/alloc.h"
#include "core/buf.h"

#define OUTPUTS 10
#define CHUNK 16384
#define CHUNKS 7
#define BURSTS 30

/* mqo_alloc_setup's own check reads these; the allocator read them when this process started,
 * and an operator's setting of it is a case of its own */
static void clear_alloc_env(void)
{
    static const char *const names[] = {"GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_",
                                        "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                                        "MALLOC_MMAP_MAX_"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

#ifndef MQO_TEST_ASAN /* the sanitizer's allocator takes malloc's calls and ignores mallopt */
static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static void burst(void)
{
    static uint8_t chunk[CHUNK];
    struct mqo_buf out[OUTPUTS] = {{0}};
    memset(chunk, 0x5a, sizeof chunk);
    for (int c = 0; c < CHUNKS; c++)
        for (int i = 0; i < OUTPUTS; i++)
            if (mqo_buf_append(&out[i], chunk, sizeof chunk))
                abort();
    for (int i = 0; i < OUTPUTS; i++)
        mqo_buf_free(&out[i]);
}

/* The faults of bursts 2..BURSTS in a child that first applies the settings (setup 1) or not
 * (setup 0, glibc's defaults); -1 when the child failed. */
static long faults_in_child(int setup, int *applied)
{
    int fd[2];
    if (pipe(fd))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        /* a crash here must end the child, not jump back into the parent's test runner */
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        close(fd[0]);
        long r[2] = {setup ? mqo_alloc_setup() : 0, 0};
        burst(); /* the first burst maps what the later ones reuse */
        long before = minflt();
        for (int b = 1; b < BURSTS; b++)
            burst();
        r[1] = minflt() - before;
        _exit(write(fd[1], r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    long r[2] = {0, -1};
    ssize_t got = pid > 0 ? read(fd[0], r, sizeof r) : -1;
    close(fd[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status))
        return -1;
    *applied = (int)r[0];
    return r[1];
}
#endif

static void test_bursts_reuse_memory(void **st)
{
#ifdef MQO_TEST_ASAN
    skip();
#else
    clear_alloc_env();
    int applied = -2, dflt_applied = -2;
    long with = faults_in_child(1, &applied);
    long without = faults_in_child(0, &dflt_applied);
    print_message("page faults over %d bursts of %d x %d KiB: %ld with the settings, %ld with "
                  "glibc's defaults\n", BURSTS - 1, OUTPUTS, CHUNK * CHUNKS / 1024, with, without);
    assert_true(with >= 0 && without >= 0); /* -1: a child failed */
    assert_int_equal(applied, 1);
    /* the settings: a handful at most (the stack, a stray page), not one per page per burst */
    assert_true(with < 50);
    /* glibc's defaults: the freed top (about 1.1 MiB) goes back and faults in again each time,
     * some hundred faults a burst with 4 KiB pages (fewer with larger pages or folios: the test
     * asks for ten times the settings' count, not a number of pages) */
    if (without < 100) {
        print_message("glibc's defaults did not fault here (the environment's allocator "
                      "settings?): the comparison is skipped\n");
        skip();
    }
    assert_true(without >= 10 * (with + 10));
#endif
}

/* GLIBC_TUNABLES naming a malloc setting, or a MALLOC_*_ threshold variable, leaves the
 * allocator to it. */
static void test_operator_tunables_win(void **st)
{
    clear_alloc_env();
    setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072", 1);
    assert_int_equal(mqo_alloc_setup(), 0);
    unsetenv("GLIBC_TUNABLES");
    setenv("MALLOC_TRIM_THRESHOLD_", "131072", 1); /* glibc's older way to say the same */
    assert_int_equal(mqo_alloc_setup(), 0);
    unsetenv("MALLOC_TRIM_THRESHOLD_");
    setenv("GLIBC_TUNABLES", "glibc.rtld.nns=2", 1); /* not the allocator's: applied */
#ifndef MQO_TEST_ASAN
    int applied = -2;
    long with = faults_in_child(1, &applied);
    assert_int_equal(applied, 1);
    assert_true(with >= 0 && with < 50);
#endif
    clear_alloc_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bursts_reuse_memory),
        cmocka_unit_test(test_operator_tunables_win),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
