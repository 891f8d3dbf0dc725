#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum mqo_log_level g_level = MQO_LOG_INFO;
static mqo_log_sink g_sink;
static void *g_sink_arg;

static const char *const names[] = {"error", "warn", "info", "debug"};

void mqo_log_set_level(enum mqo_log_level lvl) { g_level = lvl; }
enum mqo_log_level mqo_log_get_level(void) { return g_level; }

void mqo_log_set_sink(mqo_log_sink sink, void *arg)
{
    g_sink = sink;
    g_sink_arg = arg;
}

int mqo_log_parse_level(const char *s, enum mqo_log_level *out)
{
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum mqo_log_level)i;
            return 0;
        }
    return -1;
}

void mqo_log(enum mqo_log_level lvl, const char *fmt, ...)
{
    if (lvl > g_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_sink) {
        g_sink(lvl, msg, g_sink_arg);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld mqoff %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, names[lvl], msg);
}
