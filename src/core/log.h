/* Logging: one process-wide sink and level. Layers below the modes log only through this, so a
 * test or an embedding program can capture or silence them. */
#ifndef MQO_CORE_LOG_H
#define MQO_CORE_LOG_H

enum mqo_log_level { MQO_LOG_ERROR, MQO_LOG_WARN, MQO_LOG_INFO, MQO_LOG_DEBUG };

typedef void (*mqo_log_sink)(enum mqo_log_level lvl, const char *msg, void *arg);

/* Messages above lvl are dropped. Default: MQO_LOG_INFO to stderr. */
void mqo_log_set_level(enum mqo_log_level lvl);
enum mqo_log_level mqo_log_get_level(void);
/* NULL restores the default stderr sink. */
void mqo_log_set_sink(mqo_log_sink sink, void *arg);
/* Parses "error|warn|info|debug". Returns 0, or -1 when unknown. */
int mqo_log_parse_level(const char *s, enum mqo_log_level *out);

/* Messages go to syslog (facility daemon, ident "mqoff", with the pid) instead of stderr:
 * on 1, off (stderr) on 0. A sink set with mqo_log_set_sink takes precedence. */
void mqo_log_use_syslog(int on);
/* Parses "stderr|syslog" into *syslog_on. Returns 0, or -1 when unknown. */
int mqo_log_parse_dest(const char *s, int *syslog_on);

/* Floods: each call site (its format string) may log burst messages at once and then rate per
 * second (a token bucket); the ones beyond are dropped and counted, and the next message of that
 * site that passes says how many were dropped. Debug messages are not limited. Defaults 20 and
 * 2; burst 0 turns the limit off. now_ns, when not NULL, replaces CLOCK_MONOTONIC (tests). */
void mqo_log_set_rate(unsigned burst, unsigned rate, unsigned long long (*now_ns)(void));

void mqo_log(enum mqo_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mqo_err(...) mqo_log(MQO_LOG_ERROR, __VA_ARGS__)
#define mqo_warn(...) mqo_log(MQO_LOG_WARN, __VA_ARGS__)
#define mqo_info(...) mqo_log(MQO_LOG_INFO, __VA_ARGS__)
#define mqo_dbg(...)                                                                              \
    do {                                                                                          \
        if (mqo_log_get_level() >= MQO_LOG_DEBUG)                                                 \
            mqo_log(MQO_LOG_DEBUG, __VA_ARGS__);                                                  \
    } while (0)

#endif
