#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum mqo_log_level g_level = MQO_LOG_INFO;
static mqo_log_sink g_sink;
static void *g_sink_arg;
static int g_syslog;

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

void mqo_log_use_syslog(int on)
{
    if (on && !g_syslog)
        openlog("mqoff", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    else if (!on && g_syslog)
        closelog();
    g_syslog = on;
}

int mqo_log_parse_dest(const char *s, int *syslog_on)
{
    if (strcmp(s, "stderr") == 0 || strcmp(s, "syslog") == 0) {
        *syslog_on = s[1] == 'y';
        return 0;
    }
    return -1;
}

/* One call site's token bucket (tokens in 1/1000ths, to refill at any rate without drift). */
struct site {
    const char *fmt;
    unsigned long long t_ns;
    unsigned long long milli; /* tokens x 1000 */
    unsigned long long dropped;
};

#define SITES 64 /* call sites tracked at once; a 65th takes the slot of the oldest */
static struct site g_sites[SITES];
static unsigned g_burst = 20, g_rate = 2;
static unsigned long long (*g_now)(void);

void mqo_log_set_rate(unsigned burst, unsigned rate, unsigned long long (*now_ns)(void))
{
    g_burst = burst;
    g_rate = rate;
    g_now = now_ns;
    memset(g_sites, 0, sizeof g_sites);
}

static unsigned long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Whether a message of fmt may go out now; *dropped: how many of its site were dropped since
 * the last one that went out. */
static int rate_ok(const char *fmt, unsigned long long *dropped)
{
    *dropped = 0;
    if (!g_burst)
        return 1;
    unsigned long long now = g_now ? g_now() : mono_ns();
    struct site *s = NULL, *victim = NULL; /* a free slot, else the one idle longest */
    for (int i = 0; i < SITES && !s; i++) {
        struct site *x = &g_sites[i];
        if (x->fmt == fmt)
            s = x;
        else if (!victim || (victim->fmt && (!x->fmt || x->t_ns < victim->t_ns)))
            victim = x;
    }
    if (!s) {
        s = victim;
        *s = (struct site){.fmt = fmt, .t_ns = now, .milli = (unsigned long long)g_burst * 1000};
    }
    unsigned long long cap = (unsigned long long)g_burst * 1000;
    unsigned long long add = (now - s->t_ns) / 1000000ull * g_rate; /* ms x rate/s = milli */
    if (add) {
        s->milli = s->milli + add > cap ? cap : s->milli + add;
        s->t_ns = now;
    }
    if (s->milli < 1000) {
        s->dropped++;
        return 0;
    }
    s->milli -= 1000;
    *dropped = s->dropped;
    s->dropped = 0;
    return 1;
}

void mqo_log(enum mqo_log_level lvl, const char *fmt, ...)
{
    if (lvl > g_level)
        return;
    unsigned long long dropped = 0;
    if (lvl < MQO_LOG_DEBUG && !rate_ok(fmt, &dropped))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (dropped && n >= 0 && (size_t)n < sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n, " (%llu more like this dropped: a flood)",
                 dropped);
    if (g_sink) {
        g_sink(lvl, msg, g_sink_arg);
        return;
    }
    if (g_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[lvl], "%s", msg);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld mqoff %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, names[lvl], msg);
}
