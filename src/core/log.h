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
