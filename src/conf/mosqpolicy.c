/* conf/: a parsed mosquitto.conf evaluated for the listener mqoff fronts. The decisions and
 * their reasons are in docs/ARCHITECTURE.md ("The broker's configuration"). */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "conf/mosqconf.h"
#include "conf/mosqconf_int.h"
#include "topic/topic.h"

int mqo_mosqconf_numeric_host(const char *host, int *family, uint8_t addr[16])
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return 0;
    int fam = 0;
    uint8_t a[16] = {0};
    if (res->ai_family == AF_INET) {
        fam = 4;
        memcpy(a, &((const struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
    } else if (res->ai_family == AF_INET6) {
        fam = 6;
        memcpy(a, &((const struct sockaddr_in6 *)res->ai_addr)->sin6_addr, 16);
    }
    freeaddrinfo(res);
    if (!fam)
        return 0;
    if (family)
        *family = fam;
    if (addr)
        memcpy(addr, a, 16);
    return 1;
}

static int is_zero(const uint8_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i])
            return 0;
    return 1;
}

#define FIND(p, all, at, ...) \
    mqo_mosqconf_note_add(&(p)->findings, &(p)->n_findings, all, at, __VA_ARGS__)

void mqo_mosqpolicy_free(struct mqo_mosqpolicy *p)
{
    if (!p)
        return;
    free(p->others);
    for (size_t i = 0; i < p->n_broker_only; i++) {
        free(p->broker_only[i]);
    }
    free(p->broker_only);
    free(p->broker_only_from);
    for (size_t i = 0; i < p->n_broker_filters; i++)
        free(p->broker_filters[i]);
    free(p->broker_filters);
    for (size_t i = 0; i < p->n_findings; i++)
        free(p->findings[i].why);
    free(p->findings);
    free(p);
}

/* ---- bridge filters ---- */

/* A filter that matches at least what Mosquitto's subscription tree matches for the filter
 * string f of a bridge's local subscription (malloc'd; *changed set when it is wider):
 * "$share/G/F" subscribes F; a level holding '+' or '#' among other bytes is literal in the
 * broker (no topic can contain those bytes), taken as '+'; '#' before the last level ends the
 * filter there. */
static char *normalize(const char *f, int *changed)
{
    *changed = 0;
    if (!strncmp(f, "$share/", 7)) {
        const char *g = f + 7, *slash = strchr(g, '/');
        if (!slash || slash == g || !slash[1]) {
            *changed = 1;
            return strdup("#");
        }
        f = slash + 1;
    }
    size_t n = strlen(f);
    char *out = malloc(n + 2);
    if (!out)
        return NULL;
    size_t o = 0;
    const char *lv = f;
    for (;;) {
        const char *end = strchr(lv, '/');
        size_t l = end ? (size_t)(end - lv) : strlen(lv);
        if (l == 1 && lv[0] == '#') {
            out[o++] = '#';
            if (end)
                *changed = 1;
            break;
        }
        if (!(l == 1 && lv[0] == '+') && (memchr(lv, '+', l) || memchr(lv, '#', l))) {
            out[o++] = '+';
            *changed = 1;
        } else {
            memcpy(out + o, lv, l);
            o += l;
        }
        if (!end)
            break;
        out[o++] = '/';
        lv = end + 1;
    }
    out[o] = 0;
    if (o == 0) { /* "" is no filter: take the widest */
        free(out);
        *changed = 1;
        return strdup("#");
    }
    return out;
}

/* Level i of s (split on '/'): its start and length; returns 0 past the last level. */
static int level(const char *s, size_t i, const char **lv, size_t *len)
{
    const char *p = s;
    for (size_t k = 0; k < i; k++) {
        p = strchr(p, '/');
        if (!p)
            return 0;
        p++;
    }
    const char *e = strchr(p, '/');
    *lv = p;
    *len = e ? (size_t)(e - p) : strlen(p);
    return 1;
}

static size_t n_levels(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == '/';
    return n;
}

static int lv_is(const char *lv, size_t len, char ch)
{
    return len == 1 && lv[0] == ch;
}

/* The filter, in the client's view of the listener with mount point m, matching exactly the
 * client topics T for which the broker-side filter f (valid, not shared) matches m + T
 * (topics starting with '$' aside: the engine never offloads those). *out NULL: no client
 * topic can match. Returns 0 or -ENOMEM. */
static int unmount(const char *f, const char *m, char **out)
{
    *out = NULL;
    if (!m) {
        *out = strdup(f);
        return *out ? 0 : -ENOMEM;
    }
    size_t k = n_levels(m), n = n_levels(f);
    const char *flv, *mlv;
    size_t fl, ml;
    if (m[0] == '$' && level(f, 0, &flv, &fl) && (lv_is(flv, fl, '+') || lv_is(flv, fl, '#')))
        return 0; /* a leading wildcard never matches a '$' topic */
    for (size_t i = 0; i + 1 < k; i++) {
        if (i >= n)
            return 0;
        level(f, i, &flv, &fl);
        level(m, i, &mlv, &ml);
        if (lv_is(flv, fl, '#')) {
            *out = strdup("#");
            return *out ? 0 : -ENOMEM;
        }
        if (lv_is(flv, fl, '+'))
            continue;
        if (fl != ml || memcmp(flv, mlv, fl))
            return 0;
    }
    /* level k-1 of m is glued to the client's first level */
    if (k - 1 >= n)
        return 0;
    level(f, k - 1, &flv, &fl);
    level(m, k - 1, &mlv, &ml);
    const char *tail = flv + fl; /* "" or "/..." */
    if (lv_is(flv, fl, '#')) {
        *out = strdup("#");
        return *out ? 0 : -ENOMEM;
    }
    const char *first;
    size_t firstl;
    if (lv_is(flv, fl, '+')) {
        first = "+";
        firstl = 1;
    } else {
        if (fl < ml || memcmp(flv, mlv, ml))
            return 0;
        first = flv + ml;
        firstl = fl - ml;
    }
    if (firstl == 0 && !*tail)
        return 0; /* only the empty topic, which no client can publish */
    size_t tl = strlen(tail);
    char *s = malloc(firstl + tl + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, first, firstl);
    memcpy(s + firstl, tail, tl + 1);
    *out = s;
    return 0;
}

static int add_broker_only(struct mqo_mosqpolicy *p, const struct mqo_mosqconf_btopic *t,
                           const char *bridge, const char *mount)
{
    int changed;
    char *bf = normalize(t->local_topic, &changed);
    if (!bf)
        return -ENOMEM;
    if (changed && FIND(p, 0, t->at,
                        "bridge %s subscribes to '%s'; mqoff leaves '%s' to the broker, which "
                        "covers it",
                        bridge, t->local_topic, bf)) {
        free(bf);
        return -ENOMEM;
    }
    char **nbf = realloc(p->broker_filters, (p->n_broker_filters + 1) * sizeof *nbf);
    if (!nbf) {
        free(bf);
        return -ENOMEM;
    }
    p->broker_filters = nbf;
    nbf[p->n_broker_filters++] = bf;
    char *cf;
    if (unmount(bf, mount, &cf))
        return -ENOMEM;
    if (!cf)
        return 0;
    if (cf[0] == '$') {
        /* It matches only topics starting with '$', which the engine always passes through;
         * as a filter string "$share/..." would even read as a shared subscription. */
        int rc = FIND(p, 0, t->at,
                      "bridge %s: '%s' only concerns topics starting with '$', which mqoff always "
                      "leaves to the broker",
                      bridge, t->local_topic);
        free(cf);
        return rc;
    }
    for (size_t i = 0; i < p->n_broker_only; i++) {
        if (!strcmp(p->broker_only[i], cf)) {
            free(cf);
            return 0;
        }
    }
    char **nv = realloc(p->broker_only, (p->n_broker_only + 1) * sizeof *nv);
    if (nv)
        p->broker_only = nv;
    const struct mqo_mosqconf_btopic **nf =
        nv ? realloc(p->broker_only_from, (p->n_broker_only + 1) * sizeof *nf) : NULL;
    if (!nf) {
        free(cf);
        return -ENOMEM;
    }
    p->broker_only_from = nf;
    nv[p->n_broker_only] = cf;
    nf[p->n_broker_only++] = t;
    return 0;
}

int mqo_mosqpolicy_broker_only(const struct mqo_mosqpolicy *p, const uint8_t *t, size_t len)
{
    if (!p->n_broker_filters)
        return 0;
    size_t ml = p->mount_point ? strlen(p->mount_point) : 0;
    uint8_t stack[512];
    uint8_t *full = ml + len <= sizeof stack ? stack : malloc(ml + len);
    if (!full)
        return 1; /* cannot tell: the broker decides */
    if (ml)
        memcpy(full, p->mount_point, ml);
    if (len)
        memcpy(full + ml, t, len);
    int hit = 0;
    for (size_t i = 0; !hit && i < p->n_broker_filters; i++) {
        const char *f = p->broker_filters[i];
        hit = mqo_topic_matches((const uint8_t *)f, strlen(f), full, ml + len);
    }
    if (full != stack)
        free(full);
    return hit;
}

/* ---- choosing the listener ---- */

static const char *origin_name(const struct mqo_mosqconf_listener *l)
{
    return l->origin == MQO_MOSQCONF_DEFAULT      ? " (default listener)"
           : l->origin == MQO_MOSQCONF_LOCAL_ONLY ? " (local only: no listener configured)"
                                                  : "";
}

/* "PORT ADDR" of a listener for messages. */
static void lname(const struct mqo_mosqconf_listener *l, char *b, size_t n)
{
    if (l->port == 0)
        snprintf(b, n, "unix socket %s", l->unix_path ? l->unix_path : "?");
    else
        snprintf(b, n, "%u %s%s", l->port, l->host ? l->host : "(all addresses)",
                 l->protocol == MQO_MOSQCONF_WEBSOCKETS ? " websockets" : "");
}

enum { M_NONE = 0, M_NAME, M_ANY, M_EXACT };

static int match(const struct mqo_mosqconf_listener *l, int fam, const uint8_t *a, uint16_t port)
{
    if (l->port == 0 || l->port != port)
        return M_NONE;
    if (!l->host)
        return l->socket_domain == 0 || l->socket_domain == fam ? M_ANY : M_NONE;
    int lf;
    uint8_t la[16];
    size_t al = fam == 4 ? 4 : 16;
    if (mqo_mosqconf_numeric_host(l->host, &lf, la)) {
        if (lf != fam)
            return M_NONE;
        if (is_zero(la, al))
            return M_ANY;
        return memcmp(la, a, al) ? M_NONE : M_EXACT;
    }
    if (!strcmp(l->host, "localhost")) {
        static const uint8_t v4[4] = {127, 0, 0, 1};
        static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        return !memcmp(a, fam == 4 ? v4 : v6, al) ? M_EXACT : M_NONE;
    }
    return M_NAME;
}

static int relative_note(struct mqo_mosqpolicy *p, const char *what, const char *path,
                         struct mqo_mosqconf_loc at)
{
    if (!path || path[0] == '/')
        return 0;
    return FIND(p, 0, at,
                "%s '%s' is relative: mqoff resolves it against its own working directory, the "
                "broker against its own",
                what, path);
}

static int evaluate(const struct mqo_mosqconf *c, struct mqo_mosqpolicy *p, size_t idx)
{
    const struct mqo_mosqconf_listener *l = &c->listeners[idx];
    const struct mqo_mosqconf_security *s = c->per_listener_settings ? &l->sec : &c->sec;
    char nm[300];
    int rc = 0;
    p->listener = l;
    p->index = idx;
    p->offload = 1;
    p->tls = (l->certfile && l->keyfile) || l->psk_hint;
    int fam;
    uint8_t a[16];
    p->all_addresses = !l->host || (mqo_mosqconf_numeric_host(l->host, &fam, a) &&
                                    is_zero(a, fam == 4 ? 4 : 16));
    p->mount_point = l->mount_point;
    p->mount_glued = l->mount_point && l->mount_point[strlen(l->mount_point) - 1] != '/';
    p->per_listener_settings = c->per_listener_settings;
    p->acl_file = s->acl_file;
    p->acl_at = s->acl_at;
    p->password_file = s->password_file;
    p->allow_anonymous = s->allow_anonymous;
    p->allow_zero_length_clientid = s->allow_zero_length_clientid;
    p->auto_id_prefix = s->auto_id_prefix ? s->auto_id_prefix : "";
    p->use_username_as_clientid = l->use_username_as_clientid;
    for (size_t i = 0; i < s->n_plugins; i++) {
        if (!mqo_mosqconf_is_mqoff_plugin(&s->plugins[i]))
            p->n_plugins++;
        else if (!p->mqoff_plugin_control)
            p->mqoff_plugin_control = mqo_mosqconf_plugin_opt(&s->plugins[i], "control");
    }
    p->message_size_limit = c->message_size_limit;
    p->max_packet_size = c->max_packet_size;
    p->max_qos = l->max_qos;
    p->retain_available = c->retain_available;
    p->upgrade_outgoing_qos = c->upgrade_outgoing_qos;
    p->allow_duplicate_messages = c->allow_duplicate_messages;
    p->queue_qos0_messages = c->queue_qos0_messages;
    p->max_inflight_messages = c->max_inflight_messages;
    p->max_keepalive = c->max_keepalive;
    p->max_topic_alias = l->max_topic_alias;
    p->max_inflight_bytes = c->max_inflight_bytes;
    p->max_queued_bytes = c->max_queued_bytes;
    p->max_queued_messages = c->max_queued_messages;

    for (size_t i = 0; !rc && i < c->n_notes; i++)
        rc = mqo_mosqconf_note_add(&p->findings, &p->n_findings, c->notes[i].all, c->notes[i].at,
                                   "%s", c->notes[i].why);
    /* what makes the whole listener pass through */
    if (!rc && l->protocol == MQO_MOSQCONF_WEBSOCKETS)
        rc = FIND(p, 1, l->at, "the listener speaks MQTT over websockets: mqoff sees HTTP and "
                               "websocket frames, not MQTT packets");
    if (!rc && p->tls)
        rc = FIND(p, 1, l->at, "the listener uses TLS (%s): mqoff sees ciphertext",
                  l->psk_hint && !(l->certfile && l->keyfile) ? "psk_hint" : "certfile, keyfile");
    for (size_t i = 0; !rc && i < s->n_plugins; i++)
        if (mqo_mosqconf_is_mqoff_plugin(&s->plugins[i]))
            rc = FIND(p, 0, s->plugins[i].at,
                      "plugin %s is mqoff's broker plugin: it reports the broker's sessions "
                      "and subscriptions on %s and decides nothing", s->plugins[i].path,
                      p->mqoff_plugin_control ? p->mqoff_plugin_control : "(no control socket)");
        else
            rc = FIND(p, 1, s->plugins[i].at,
                      "plugin %s decides authentication and authorization for these clients "
                      "(and may act on every message): mqoff cannot evaluate it",
                      s->plugins[i].path);
    /* notes */
    if (!rc && !p->tls && (l->cafile || l->capath || l->certfile || l->keyfile))
        rc = FIND(p, 0, l->at, "TLS options without both certfile and keyfile: the broker "
                               "speaks plain MQTT on this listener");
    if (!rc && p->mount_glued)
        rc = FIND(p, 0, l->at,
                  "mount_point '%s' does not end in '/': the broker glues it to the client's first "
                  "topic level, so a filter starting with a wildcard matches nothing there",
                  l->mount_point);
    if (!rc && p->all_addresses)
        rc = FIND(p, 0, l->at, "the listener accepts on every address: clients can reach it "
                               "without going through mqoff");
    if (!rc && p->upgrade_outgoing_qos)
        rc = FIND(p, 0, (struct mqo_mosqconf_loc){c->files[0], 0},
                  "upgrade_outgoing_qos: the broker delivers at the subscription's QoS, not "
                  "min(published, granted)");
    if (!rc && c->memory_limit)
        rc = FIND(p, 0, (struct mqo_mosqconf_loc){c->files[0], 0},
                  "memory_limit %lld: the broker refuses work above it; messages mqoff delivers "
                  "do not count toward it",
                  (long long)c->memory_limit);
    if (!rc)
        rc = relative_note(p, "acl_file", s->acl_file, s->acl_at);
    if (!rc)
        rc = relative_note(p, "password_file", s->password_file, l->at);

    /* other listeners, and plugins that only their clients meet */
    for (size_t i = 0; !rc && i < c->n_listeners; i++) {
        if (i == idx)
            continue;
        const struct mqo_mosqconf_listener *o = &c->listeners[i];
        const struct mqo_mosqconf_listener **no =
            realloc(p->others, (p->n_others + 1) * sizeof *no);
        if (!no)
            return -ENOMEM;
        p->others = no;
        no[p->n_others++] = o;
        lname(o, nm, sizeof nm);
        rc = FIND(p, 0, o->at, "listener %s%s is another way into the broker", nm, origin_name(o));
        for (size_t j = 0; !rc && c->per_listener_settings && j < o->sec.n_plugins; j++)
            rc = FIND(p, 0, o->sec.plugins[j].at,
                      "plugin %s applies to the clients of listener %s only",
                      o->sec.plugins[j].path, nm);
    }
    /* bridges */
    for (size_t i = 0; !rc && i < c->n_bridges; i++) {
        const struct mqo_mosqconf_bridge *b = &c->bridges[i];
        for (size_t j = 0; !rc && j < b->n_topics; j++)
            if (b->topics[j].dir != MQO_MOSQCONF_IN)
                rc = add_broker_only(p, &b->topics[j], b->name, l->mount_point);
    }
    if (rc)
        return rc;
    for (size_t i = 0; i < p->n_findings; i++)
        if (p->findings[i].all)
            p->offload = 0;
    return 0;
}

int mqo_mosqconf_evaluate(const struct mqo_mosqconf *c, const char *addr, uint16_t port,
                          struct mqo_mosqpolicy **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = 0;
    int fam;
    uint8_t a[16];
    if (!mqo_mosqconf_numeric_host(addr, &fam, a)) {
        if (errlen)
            snprintf(err, errlen, "broker address '%s' is not a numeric IPv4 or IPv6 address",
                     addr);
        return -EINVAL;
    }
    size_t best = SIZE_MAX, by_name = SIZE_MAX, n_names = 0;
    int best_m = M_NONE;
    for (size_t i = 0; i < c->n_listeners; i++) {
        int m = match(&c->listeners[i], fam, a, port);
        if (m == M_NAME && n_names++ == 0)
            by_name = i;
        if (m > M_NAME && m > best_m) {
            best = i;
            best_m = m;
        }
    }
    int name_pick = best == SIZE_MAX && n_names == 1;
    if (name_pick)
        best = by_name;
    if (best == SIZE_MAX) {
        if (errlen) {
            int n = snprintf(err, errlen, "no listener of %s accepts %s port %u; listeners:",
                             c->files[0], addr, port);
            for (size_t i = 0; i < c->n_listeners && n >= 0 && (size_t)n < errlen; i++) {
                char nm[300];
                lname(&c->listeners[i], nm, sizeof nm);
                n += snprintf(err + n, errlen - (size_t)n, " [%s%s]", nm,
                              origin_name(&c->listeners[i]));
            }
        }
        return -ENOENT;
    }
    struct mqo_mosqpolicy *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = evaluate(c, p, best);
    if (!rc && name_pick)
        rc = FIND(p, 0, c->listeners[best].at,
                  "listener bound to the name '%s', which mqoff does not resolve: taken as the one "
                  "at %s because it is the only one on port %u",
                  c->listeners[best].host, addr, port);
    if (rc) {
        mqo_mosqpolicy_free(p);
        if (errlen)
            snprintf(err, errlen, "out of memory");
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- description ---- */

struct sb {
    char *b;
    size_t len, n;
};

static void sbf(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbf(struct sb *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int room = s->n < s->len;
    int k = vsnprintf(room ? s->b + s->n : NULL, room ? s->len - s->n : 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        s->n += (size_t)k;
}

static const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

size_t mqo_mosqpolicy_describe(const struct mqo_mosqpolicy *p, char *buf, size_t len)
{
    struct sb s = {buf, len, 0};
    char nm[300];
    const struct mqo_mosqconf_listener *l = p->listener;
    if (len)
        buf[0] = 0;
    lname(l, nm, sizeof nm);
    sbf(&s, "listener: %s%s at %s:%u\n", nm, origin_name(l), str_or(l->at.file, "?"), l->at.line);
    sbf(&s, "offload: %s\n", p->offload ? "yes" : "NO (see the findings marked ALL)");
    sbf(&s, "tls: %s, mount_point: %s\n", p->tls ? "yes" : "no", str_or(p->mount_point, "none"));
    sbf(&s, "authorization: per_listener_settings %d, acl_file %s, password_file %s, "
            "allow_anonymous %d, plugins %zu\n",
        p->per_listener_settings, str_or(p->acl_file, "none (every topic allowed)"),
        str_or(p->password_file, "none"), p->allow_anonymous, p->n_plugins);
    sbf(&s, "client ids: allow_zero_length_clientid %d, auto_id_prefix '%s', "
            "use_username_as_clientid %d\n",
        p->allow_zero_length_clientid, p->auto_id_prefix, p->use_username_as_clientid);
    sbf(&s, "limits: message_size_limit %u, max_packet_size %u, max_qos %u, retain_available %d, "
            "max_inflight_messages %u, max_inflight_bytes %zu, max_queued_messages %d, "
            "max_queued_bytes %zu, queue_qos0_messages %d, upgrade_outgoing_qos %d, "
            "max_keepalive %u, max_topic_alias %u, allow_duplicate_messages %d\n",
        p->message_size_limit, p->max_packet_size, p->max_qos, p->retain_available,
        p->max_inflight_messages, p->max_inflight_bytes, p->max_queued_messages,
        p->max_queued_bytes, p->queue_qos0_messages, p->upgrade_outgoing_qos, p->max_keepalive,
        p->max_topic_alias, p->allow_duplicate_messages);
    sbf(&s, "other listeners: %zu\n", p->n_others);
    for (size_t i = 0; i < p->n_others; i++) {
        lname(p->others[i], nm, sizeof nm);
        sbf(&s, "  %s%s\n", nm, origin_name(p->others[i]));
    }
    sbf(&s, "broker-only topics (bridges): %zu\n", p->n_broker_only);
    for (size_t i = 0; i < p->n_broker_only; i++)
        sbf(&s, "  %s  (%s:%u)\n", p->broker_only[i], p->broker_only_from[i]->at.file,
            p->broker_only_from[i]->at.line);
    sbf(&s, "findings: %zu\n", p->n_findings);
    for (size_t i = 0; i < p->n_findings; i++) {
        const struct mqo_mosqconf_finding *f = &p->findings[i];
        sbf(&s, "  %s %s:%u: %s\n", f->all ? "ALL " : "note", str_or(f->at.file, "?"), f->at.line,
            f->why);
    }
    return s.n;
}
