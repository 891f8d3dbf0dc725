/* mqoff's Mosquitto plugin (build/mqoff_mosquitto.so, plugin API v5 of Mosquitto 2.0):
 * reports the broker's sessions and subscriptions to mqoff's control socket.
 *
 *   plugin /usr/lib/mqoff/mqoff_mosquitto.so
 *   plugin_opt_control /run/mqoff/control.sock     (mqoff --control PATH)
 *   plugin_opt_conf /etc/mosquitto/mosquitto.conf  (default: the broker's -c argument)
 *   plugin_opt_queue_max 16777216                  (bytes of reports waiting for mqoff)
 *   plugin_opt_retry_ms 500                        (between connection attempts)
 *
 * What it observes (Mosquitto 2.0.11 has no subscribe event for plugins):
 *  - MOSQ_EVT_ACL_CHECK with MOSQ_ACL_SUBSCRIBE / MOSQ_ACL_UNSUBSCRIBE, once per filter, after
 *    the broker added the listener's mount point and capped the QoS at max_qos;
 *  - MOSQ_EVT_DISCONNECT; MOSQ_EVT_RELOAD; MOSQ_EVT_TICK (connecting, sending, expiry);
 *  - the broker's configuration (the same file, read with mqoff's reader of it): bridges'
 *    local subscriptions (which the broker makes without an ACL check), persistence;
 *  - the persistence file, read at start: the broker restores its subscriptions before
 *    plugins are loaded and never reports them.
 *
 * Answering the ACL check. Mosquitto 2.0.11 (src/security.c, mosquitto_acl_check) calls the
 * ACL callbacks in registration order and takes the first answer other than
 * MOSQ_ERR_PLUGIN_DEFER; when every callback defers, the result is a denial. This plugin is
 * registered before the acl_file's check (the broker registers that after loading plugins,
 * and again at each reload, at the end), so it sees every check; its answer must leave the
 * broker's decision as it would be without it:
 *  - the broker has another source (an acl_file, another plugin, an auth_plugin): defer, and
 *    that source decides. The acl_file's check allows every subscribe and unsubscribe
 *    (security_default.c), so what is reported is what the broker granted; another plugin
 *    may refuse one, so then the plugin says "acl": "plugins" and mqoff does not use the view;
 *  - no other source: answer "allowed", exactly what the broker decides without plugins
 *    (deferring would deny everything).
 *  At a reload the broker re-reads the acl_file; one that does not parse leaves it with no
 *  ACL check at all (everything allowed), so the plugin parses it too and answers "allowed"
 *  then. The RELOAD callback itself must return MOSQ_ERR_PLUGIN_DEFER: any other value ends
 *  the broker's reload of the remaining plugins.
 *
 * Never slowing or crashing the broker: the socket is non-blocking; reports wait in a queue
 * of at most queue_max bytes beyond the table's dump; when it would overflow, the queue is
 * dropped and the connection closed: mqoff passes everything to the broker from then on,
 * until the plugin connects again (after retry_ms) and sends its whole table (a resync).
 * Subscribe checks of MQTT 3.1/5 clients cost a report each; read and write checks (every
 * message) return at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "acl/acl.h"
#include "conf/mosqconf.h"
#include "core/buf.h"
#include "core/file.h"
#include "plugin/persist.h"
#include "plugin/table.h"

#define EXPORT __attribute__((visibility("default")))

struct plugin {
    int refs;
    mosquitto_plugin_id_t *id;
    struct mqo_ptable *t;
    char *path, *conf;
    size_t queue_max;
    int retry_ms;
    /* the connection to mqoff */
    int fd;
    struct mqo_buf out, in;
    size_t limit;
    int64_t next_try_ms, last_expire_s;
    uint64_t overflows, connects;
    /* how the ACL check is answered */
    int answer;
    const char *acl_mode;
    size_t other_plugins;
    /* what the hello says */
    const char *coverage, *persistence;
    char why[240];
    int lost; /* a report was lost (no memory): the table no longer matches the broker */
    char instance[17];
    int64_t pce;
};

static struct plugin g = {.fd = -1};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the connection to mqoff ---- */

static void conn_down(const char *why, int quiet)
{
    if (g.fd >= 0) {
        close(g.fd);
        g.fd = -1;
        if (!quiet)
            mosquitto_log_printf(MOSQ_LOG_WARNING, "mqoff plugin: connection to %s closed: %s",
                                 g.path, why);
    }
    mqo_buf_free(&g.out);
    mqo_buf_free(&g.in);
    g.next_try_ms = mono_ms() + g.retry_ms;
}

static void flush(void)
{
    while (g.fd >= 0 && g.out.len) {
        ssize_t w = send(g.fd, g.out.data, g.out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_down(strerror(errno), 0);
            return;
        }
        mqo_buf_consume(&g.out, (size_t)w);
    }
}

/* A report: queued and sent as far as the socket takes it; dropped while not connected (the
 * next connection starts with the whole table). */
static void emit(void *arg, const char *line, size_t len)
{
    if (g.fd < 0)
        return;
    if (g.out.len + len + 1 > g.limit) {
        g.overflows++;
        char why[96];
        snprintf(why, sizeof why, "over %zu bytes of reports waiting: mqoff resyncs when the "
                 "plugin reconnects", g.queue_max);
        conn_down(why, 0);
        return;
    }
    if (mqo_buf_append(&g.out, line, len) || mqo_buf_append(&g.out, "\n", 1)) {
        conn_down("out of memory", 0);
        return;
    }
    if (g.out.len == len + 1)
        flush(); /* nothing was waiting: it goes at once */
}

static void send_hello(void)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    char broker[48];
    snprintf(broker, sizeof broker, "mosquitto %d.%d.%d", LIBMOSQUITTO_MAJOR, LIBMOSQUITTO_MINOR,
             LIBMOSQUITTO_REVISION);
    cJSON_AddStringToObject(o, "op", "hello");
    cJSON_AddNumberToObject(o, "proto", 1);
    cJSON_AddStringToObject(o, "role", "plugin");
    cJSON_AddStringToObject(o, "broker", broker);
    cJSON_AddStringToObject(o, "instance", g.instance);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "acl", g.acl_mode);
    cJSON_AddStringToObject(o, "coverage", g.lost ? "partial" : g.coverage);
    cJSON_AddStringToObject(o, "persistence", g.persistence);
    if (g.why[0])
        cJSON_AddStringToObject(o, "why", g.why);
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        emit(NULL, s, strlen(s));
    cJSON_free(s);
    cJSON_Delete(o);
}

static void try_connect(int64_t now)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g.path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        g.next_try_ms = now + g.retry_ms;
        return;
    }
    g.fd = fd;
    g.connects++;
    g.limit = SIZE_MAX; /* the hello and the table go whole */
    send_hello();
    mqo_ptable_dump(g.t);
    if (g.fd < 0)
        return;
    g.limit = g.out.len + g.queue_max;
    struct mqo_ptable_stats st;
    mqo_ptable_stats(g.t, &st);
    mosquitto_log_printf(MOSQ_LOG_INFO, "mqoff plugin: connected to %s, sent %llu sessions with "
                         "%llu subscriptions", g.path, (unsigned long long)st.sessions,
                         (unsigned long long)st.filters);
}

/* What mqoff sends (welcome, refused) is read and dropped; a closed socket is noticed. */
static void drain_input(void)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(g.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            if (memmem(buf, (size_t)r, "\"refused\"", 9))
                conn_down("mqoff refused the connection (another plugin is connected)", 0);
            if (g.fd < 0)
                return;
            continue;
        }
        if (r == 0)
            conn_down("mqoff closed it", 0);
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_down(strerror(errno), 0);
        return;
    }
}

/* ---- the broker's configuration ---- */

/* The broker's -c argument, from its command line. */
static char *conf_from_cmdline(void)
{
    char *buf = NULL;
    size_t len = 0;
    if (mqo_read_file("/proc/self/cmdline", &buf, &len))
        return NULL;
    char *res = NULL;
    for (size_t i = 0; i < len;) {
        const char *a = buf + i;
        size_t al = strnlen(a, len - i);
        if ((!strcmp(a, "-c") || !strcmp(a, "--config-file")) && i + al + 1 < len) {
            res = strdup(buf + i + al + 1);
            break;
        }
        i += al + 1;
    }
    free(buf);
    return res;
}

/* The security options the plugin's checks belong to: their other ACL sources. */
static void acl_sources(const struct mqo_mosqconf_security *s, int *acl_file, size_t *plugins)
{
    *acl_file = s->acl_file != NULL;
    *plugins = 0;
    for (size_t i = 0; i < s->n_plugins; i++)
        if (!mqo_mosqconf_is_mqoff_plugin(&s->plugins[i]))
            (*plugins)++;
}

/* Sets how the ACL check is answered; reload: the acl_file is parsed as the broker just did
 * (one that fails leaves the broker without ACL checks). Returns 0, or -1 with why. */
static int decide_answer(const struct mqo_mosqconf *c, int reload, char *why, size_t wl)
{
    int acl = 0;
    size_t plugins = 0;
    const char *acl_path = NULL;
    if (!c->per_listener_settings) {
        acl_sources(&c->sec, &acl, &plugins);
        acl_path = c->sec.acl_file;
    } else {
        /* one instance serves every listener it is loaded for: they must agree */
        int seen = 0;
        for (size_t i = 0; i < c->n_listeners; i++) {
            const struct mqo_mosqconf_security *s = &c->listeners[i].sec;
            int mine = 0, a;
            size_t p;
            for (size_t k = 0; k < s->n_plugins; k++)
                mine |= mqo_mosqconf_is_mqoff_plugin(&s->plugins[k]);
            if (!mine)
                continue;
            acl_sources(s, &a, &p);
            if (seen && ((a || p) != (acl || plugins))) {
                snprintf(why, wl, "per_listener_settings with listeners that differ in having an "
                         "acl_file or another plugin: one answer cannot suit both");
                return -1;
            }
            seen = 1;
            acl |= a;
            plugins += p;
            acl_path = s->acl_file ? s->acl_file : acl_path;
        }
    }
    if (!reload)
        g.other_plugins = plugins;
    else
        plugins = g.other_plugins; /* plugins are loaded at start only */
    if (acl && reload && !plugins) {
        struct mqo_acl *a = NULL;
        char err[200];
        if (mqo_acl_load(acl_path, &a, err, sizeof err) != 0) {
            mosquitto_log_printf(MOSQ_LOG_WARNING, "mqoff plugin: %s: the broker checks no ACL "
                                 "now (every topic allowed): answering as it does", err);
            acl = 0;
        }
        mqo_acl_free(a);
    }
    g.answer = acl || plugins ? MOSQ_ERR_PLUGIN_DEFER : MOSQ_ERR_SUCCESS;
    g.acl_mode = plugins ? "plugins" : acl ? "defer" : "allow";
    return 0;
}

static int restored_client(void *arg, const char *cid, size_t len, uint32_t expiry)
{
    return mqo_ptable_restore(g.t, cid, len, NULL, 0, 0);
}

static int restored_sub(void *arg, const char *cid, size_t clen, const char *f, size_t len,
                        uint8_t qos, uint8_t options, uint32_t ident)
{
    return mqo_ptable_restore(g.t, cid, clen, f, len, qos > 2 ? 2 : qos);
}

/* The sessions the broker restored at start. */
static void read_persistence(const struct mqo_mosqconf *c)
{
    g.persistence = "none";
    if (!c->persistence)
        return;
    const char *file = c->persistence_file ? c->persistence_file : "mosquitto.db";
    char path[4096];
    if (c->persistence_location && c->persistence_location[0])
        snprintf(path, sizeof path, "%s/%s", c->persistence_location, file);
    else
        snprintf(path, sizeof path, "%s", file);
    char *data = NULL;
    size_t len = 0;
    int rc = mqo_read_file(path, &data, &len);
    if (rc == -ENOENT)
        return; /* nothing to restore: the broker starts empty */
    char err[200] = "";
    struct mqo_persist_cb cb = {.client = restored_client, .sub = restored_sub};
    if (rc == 0)
        rc = mqo_persist_parse((const uint8_t *)data, len, &cb, err, sizeof err);
    else
        snprintf(err, sizeof err, "%s", strerror(-rc));
    free(data);
    if (rc) {
        g.persistence = "unreadable";
        snprintf(g.why, sizeof g.why, "persistence file %.100s: %.110s", path, err);
        mosquitto_log_printf(MOSQ_LOG_WARNING, "mqoff plugin: %s: the sessions the broker "
                             "restored are unknown, mqoff will not use this plugin's reports",
                             g.why);
        return;
    }
    g.persistence = "read";
}

/* The bridges' local subscriptions (made without an ACL check). */
static int add_bridges(const struct mqo_mosqconf *c)
{
    for (size_t i = 0; i < c->n_bridges; i++) {
        const struct mqo_mosqconf_bridge *b = &c->bridges[i];
        for (size_t k = 0; k < b->n_topics; k++) {
            const struct mqo_mosqconf_btopic *tp = &b->topics[k];
            if (tp->dir == MQO_MOSQCONF_IN || !tp->local_topic || !b->local_clientid)
                continue;
            if (mqo_ptable_fixed(g.t, b->local_clientid, tp->local_topic, tp->qos))
                return -ENOMEM;
        }
    }
    return 0;
}

/* ---- broker events ---- */

/* The table missed a change (no memory): it no longer matches the broker, now or in any later
 * dump, so mqoff is told to stop using it (the hello says coverage partial from now on). */
static void table_lost(void)
{
    if (!g.lost)
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqoff plugin: out of memory: a subscription change "
                             "was lost, mqoff will not use this plugin's reports until the "
                             "broker restarts");
    g.lost = 1;
    snprintf(g.why, sizeof g.why, "out of memory: the plugin lost a change");
    conn_down("out of memory", 0);
}

static void client_of(struct mosquitto *cl, struct mqo_ptable_client *pc)
{
    const char *id = mosquitto_client_id(cl);
    *pc = (struct mqo_ptable_client){
        .key = cl,
        .cid = id ? id : "",
        .addr = mosquitto_client_address(cl),
        .protocol = mosquitto_client_protocol_version(cl),
        .clean = mosquitto_client_clean_session(cl),
    };
}

static int on_acl(int event, void *data, void *ud)
{
    struct mosquitto_evt_acl_check *ev = data;
    if (ev->access != MOSQ_ACL_SUBSCRIBE && ev->access != MOSQ_ACL_UNSUBSCRIBE)
        return g.answer; /* every message's checks: nothing to report */
    struct mqo_ptable_client pc;
    client_of(ev->client, &pc);
    int rc = ev->access == MOSQ_ACL_SUBSCRIBE
                 ? mqo_ptable_subscribe(g.t, &pc, ev->topic, ev->qos)
                 : mqo_ptable_unsubscribe(g.t, &pc, ev->topic);
    if (rc)
        table_lost();
    return g.answer;
}

static int on_disconnect(int event, void *data, void *ud)
{
    struct mosquitto_evt_disconnect *ev = data;
    struct mqo_ptable_client pc;
    client_of(ev->client, &pc);
    if (mqo_ptable_disconnect(g.t, &pc, mono_ms() / 1000, g.pce))
        table_lost();
    return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *data, void *ud)
{
    int64_t now = mono_ms();
    if (g.fd < 0 && now >= g.next_try_ms)
        try_connect(now);
    if (g.fd >= 0)
        drain_input();
    flush();
    if (now / 1000 != g.last_expire_s) {
        g.last_expire_s = now / 1000;
        mqo_ptable_expire(g.t, g.last_expire_s);
    }
    return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *data, void *ud)
{
    struct mqo_mosqconf *c = NULL;
    char err[300];
    if (mqo_mosqconf_load(g.conf, NULL, &c, err, sizeof err) == 0) {
        char why[200];
        if (decide_answer(c, 1, why, sizeof why))
            mosquitto_log_printf(MOSQ_LOG_WARNING, "mqoff plugin: after reload: %s; the ACL "
                                 "answer stays as it was", why);
        g.pce = c->persistent_client_expiration;
        mqo_mosqconf_free(c);
    } else {
        mosquitto_log_printf(MOSQ_LOG_WARNING, "mqoff plugin: reading %s again: %s", g.conf, err);
    }
    emit(NULL, "{\"op\":\"reload\"}", 15);
    return MOSQ_ERR_PLUGIN_DEFER; /* anything else stops the broker's reload of other plugins */
}

/* ---- plugin entry points ---- */

EXPORT int mosquitto_plugin_version(int n, const int *versions)
{
    for (int i = 0; i < n; i++)
        if (versions[i] == 5)
            return 5;
    return -1;
}

static int parse_opts(const struct mosquitto_opt *o, int n)
{
    g.queue_max = 16u << 20;
    g.retry_ms = 500;
    for (int i = 0; i < n; i++) {
        const char *k = o[i].key, *v = o[i].value;
        if (!strcmp(k, "control")) {
            free(g.path);
            g.path = strdup(v);
        } else if (!strcmp(k, "conf")) {
            free(g.conf);
            g.conf = strdup(v);
        } else if (!strcmp(k, "queue_max"))
            g.queue_max = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(k, "retry_ms"))
            g.retry_ms = atoi(v);
    }
    if (g.queue_max < 4096)
        g.queue_max = 4096;
    if (g.retry_ms < 10)
        g.retry_ms = 10;
    if (!g.path) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqoff plugin: plugin_opt_control PATH is required "
                             "(mqoff's --control socket)");
        return -1;
    }
    if (strlen(g.path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqoff plugin: plugin_opt_control %s: path too long",
                             g.path);
        return -1;
    }
    if (!g.conf)
        g.conf = conf_from_cmdline();
    if (!g.conf) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqoff plugin: the broker's configuration file is "
                             "unknown: set plugin_opt_conf PATH");
        return -1;
    }
    return 0;
}

static int start(mosquitto_plugin_id_t *id, const struct mosquitto_opt *opts, int n)
{
    if (parse_opts(opts, n))
        return MOSQ_ERR_INVAL;
    struct mqo_mosqconf *c = NULL;
    char err[300];
    if (mqo_mosqconf_load(g.conf, NULL, &c, err, sizeof err)) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqoff plugin: reading the broker's configuration "
                             "%s: %s", g.conf, err);
        return MOSQ_ERR_INVAL;
    }
    char why[200];
    if (decide_answer(c, 0, why, sizeof why)) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqoff plugin: %s", why);
        mqo_mosqconf_free(c);
        return MOSQ_ERR_INVAL;
    }
    g.pce = c->persistent_client_expiration;
    g.coverage = "all";
    if (c->per_listener_settings) {
        g.coverage = "partial";
        snprintf(g.why, sizeof g.why, "per_listener_settings true: the broker gives plugins no "
                 "tick there, and each listener needs its own plugin");
    }
    g.t = mqo_ptable_new(emit, NULL);
    int rc = g.t ? 0 : -ENOMEM;
    if (rc == 0) {
        read_persistence(c);
        rc = add_bridges(c);
    }
    mqo_mosqconf_free(c);
    if (rc)
        return MOSQ_ERR_NOMEM;
    uint8_t rnd[8] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        int64_t t = mono_ms() ^ (int64_t)getpid() << 32;
        memcpy(rnd, &t, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(g.instance + 2 * i, 3, "%02x", rnd[i]);
    g.id = id;
    if (mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, on_acl, NULL, NULL) ||
        mosquitto_callback_register(id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, NULL) ||
        mosquitto_callback_register(id, MOSQ_EVT_TICK, on_tick, NULL, NULL) ||
        mosquitto_callback_register(id, MOSQ_EVT_RELOAD, on_reload, NULL, NULL))
        return MOSQ_ERR_UNKNOWN;
    struct mqo_ptable_stats st;
    mqo_ptable_stats(g.t, &st);
    mosquitto_log_printf(MOSQ_LOG_INFO, "mqoff plugin: reporting to %s (acl %s, coverage %s, "
                         "persistence %s: %llu sessions restored or configured)", g.path,
                         g.acl_mode, g.coverage, g.persistence, (unsigned long long)st.sessions);
    return MOSQ_ERR_SUCCESS;
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *id, void **ud, struct mosquitto_opt *opts,
                                 int n)
{
    *ud = &g;
    if (g.refs++) /* per_listener_settings loads it once per listener: one state */
        return MOSQ_ERR_SUCCESS;
    int rc = start(id, opts, n);
    if (rc)
        g.refs--;
    return rc;
}

EXPORT int mosquitto_plugin_cleanup(void *ud, struct mosquitto_opt *opts, int n)
{
    if (--g.refs > 0)
        return MOSQ_ERR_SUCCESS;
    if (g.id) {
        mosquitto_callback_unregister(g.id, MOSQ_EVT_ACL_CHECK, on_acl, NULL);
        mosquitto_callback_unregister(g.id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
        mosquitto_callback_unregister(g.id, MOSQ_EVT_TICK, on_tick, NULL);
        mosquitto_callback_unregister(g.id, MOSQ_EVT_RELOAD, on_reload, NULL);
    }
    flush();
    conn_down("broker stops", 1);
    mqo_ptable_free(g.t);
    free(g.path);
    free(g.conf);
    g = (struct plugin){.fd = -1};
    return MOSQ_ERR_SUCCESS;
}
