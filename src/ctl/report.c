/* mqoffctl's requests: status, subs, conns, stats, config (docs/CONTROL.md). Every reply is
 * one JSON object on one line, built with cJSON. */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *str_n(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    cJSON *j = cJSON_CreateString(s);
    free(s);
    return j;
}

size_t mqo_ctl_counters_put(struct mqo_ctl_counter *out, size_t cap,
                            const struct mqo_ctl_counter *v, size_t n)
{
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = v[i];
    return n;
}

size_t ctl_mode_counters(struct mqo_ctl *c)
{
    if (!c->hooks.counters)
        return 0;
    for (;;) {
        size_t n = c->hooks.counters(c->hooks.arg, c->ctrs, c->cap_ctrs);
        if (n <= c->cap_ctrs)
            return n;
        struct mqo_ctl_counter *v = realloc(c->ctrs, n * sizeof *v);
        if (!v)
            return 0;
        c->ctrs = v;
        c->cap_ctrs = n;
    }
}

/* "name{labels}" as a key. */
static void counter_key(const struct mqo_ctl_counter *k, char *buf, size_t cap)
{
    if (k->labels)
        snprintf(buf, cap, "%s{%s}", k->name, k->labels);
    else
        snprintf(buf, cap, "%s", k->name);
}

cJSON *ctl_stats_json(struct mqo_ctl *c)
{
    cJSON *o = cJSON_CreateObject();
    struct mqo_ctl_counter ec[128];
    size_t ne = ctl_engine_counters(c, ec, 128);
    size_t nm = ctl_mode_counters(c);
    char key[160];
    for (size_t i = 0; o && i < ne + nm; i++) {
        const struct mqo_ctl_counter *k = i < ne ? &ec[i] : &c->ctrs[i - ne];
        counter_key(k, key, sizeof key);
        cJSON_AddNumberToObject(o, key, (double)k->value);
    }
    return o;
}

static void add_plugin(struct mqo_ctl *c, cJSON *o)
{
    const struct mqo_engine_stats *st = mqo_engine_stats(c->e);
    cJSON *p = cJSON_AddObjectToObject(o, "plugin");
    if (!p)
        return;
    const struct ctl_peer *pl = c->plugin;
    cJSON_AddBoolToObject(p, "connected", pl != NULL);
    cJSON_AddStringToObject(p, "state", pl ? mqo_bvproto_state_name(pl->bvp.state) : "absent");
    cJSON_AddBoolToObject(p, "synced", st->bv_state == 2);
    if (pl) {
        cJSON_AddStringToObject(p, "broker", pl->bvp.broker);
        cJSON_AddStringToObject(p, "instance", pl->bvp.instance);
        cJSON_AddStringToObject(p, "acl", pl->bvp.acl);
        cJSON_AddNumberToObject(p, "pid", pl->pid);
        if (pl->bvp.why[0])
            cJSON_AddStringToObject(p, "why", pl->bvp.why);
    }
    cJSON_AddNumberToObject(p, "sessions", (double)st->bv_sessions);
    cJSON_AddNumberToObject(p, "subscriptions", (double)st->bv_subscriptions);
    cJSON_AddNumberToObject(p, "bound_connections", (double)st->bv_bound);
    cJSON_AddNumberToObject(p, "syncs", (double)st->bv_syncs);
    cJSON_AddNumberToObject(p, "disconnects", (double)c->plugin_losses);
    cJSON_AddNumberToObject(p, "reloads", (double)c->broker_reloads);
}

static cJSON *status(struct mqo_ctl *c)
{
    const struct mqo_engine_stats *st = mqo_engine_stats(c->e);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "mode", c->cfg.mode ? c->cfg.mode : "?");
    cJSON_AddStringToObject(o, "version", c->cfg.version ? c->cfg.version : "?");
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddNumberToObject(o, "uptime_s", (double)(c->now - c->started_ns) / 1e9);
    cJSON_AddNumberToObject(o, "connections", (double)st->conns_open);
    cJSON_AddNumberToObject(o, "subscriptions", (double)st->subscriptions);
    cJSON_AddNumberToObject(o, "publishes", (double)st->publish_in);
    cJSON_AddNumberToObject(o, "offloaded", (double)st->consumed);
    cJSON_AddNumberToObject(o, "passed_through", (double)st->passthrough);
    cJSON_AddNumberToObject(o, "deliveries", (double)st->deliveries);
    /* what stops all offload now, if anything */
    cJSON *h = cJSON_AddArrayToObject(o, "holds");
    enum mqo_pt_reason hr[MQO_PT__COUNT];
    size_t nh = mqo_engine_holds(c->e, hr, MQO_PT__COUNT);
    for (size_t i = 0; h && i < nh; i++)
        cJSON_AddItemToArray(h, cJSON_CreateString(mqo_pt_reason_name(hr[i])));
    add_plugin(c, o);
    if (c->cfg.path)
        cJSON_AddStringToObject(o, "control", c->cfg.path);
    if (c->cfg.metrics)
        cJSON_AddStringToObject(o, "metrics", c->cfg.metrics);
    return o;
}

static int sub_cb(void *arg, const struct mqo_sub_info *s)
{
    cJSON *a = arg, *o = cJSON_CreateObject();
    if (!o)
        return -ENOMEM;
    cJSON_AddItemToObject(o, "client", str_n(s->cid, s->cid_len));
    cJSON_AddItemToObject(o, "filter", str_n(s->filter, s->len));
    cJSON_AddNumberToObject(o, "qos", s->qos);
    cJSON_AddStringToObject(o, "origin", s->broker ? "broker" : "stream");
    cJSON_AddBoolToObject(o, "held", s->held);
    cJSON_AddBoolToObject(o, "pending", s->pending);
    cJSON_AddBoolToObject(o, "shared", s->shared);
    cJSON_AddItemToArray(a, o);
    return 0;
}

static cJSON *subs(struct mqo_ctl *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "subscriptions");
    if (!a || mqo_engine_each_sub(c->e, sub_cb, a)) {
        cJSON_Delete(o);
        return NULL;
    }
    const struct mqo_engine_stats *st = mqo_engine_stats(c->e);
    cJSON_AddBoolToObject(o, "broker_view_synced", st->bv_state == 2);
    return o;
}

static const char *version_name(uint8_t v)
{
    return v == MQO_MQTT_V5 ? "5" : v == MQO_MQTT_V311 ? "3.1.1" : v == MQO_MQTT_V31 ? "3.1" : "";
}

static int conn_cb(void *arg, const struct mqo_conn_info *ci)
{
    cJSON *a = arg, *o = cJSON_CreateObject();
    if (!o)
        return -ENOMEM;
    cJSON_AddNumberToObject(o, "id", (double)ci->id);
    cJSON_AddItemToObject(o, "client", str_n(ci->cid, ci->cid_len));
    cJSON_AddStringToObject(o, "protocol", version_name(ci->version));
    cJSON_AddBoolToObject(o, "live", ci->live);
    cJSON_AddBoolToObject(o, "persistent", ci->persistent);
    cJSON_AddBoolToObject(o, "bridge", ci->bridge);
    cJSON_AddBoolToObject(o, "relayed", ci->relay);
    cJSON_AddBoolToObject(o, "unknown", ci->unknown);
    cJSON_AddNumberToObject(o, "broker_conn", (double)ci->bound);
    cJSON_AddNumberToObject(o, "inflight", ci->inflight);
    cJSON_AddNumberToObject(o, "broker_inflight", ci->broker_inflight);
    cJSON_AddStringToObject(o, "last_passthrough", mqo_pt_reason_name(ci->last_reason));
    cJSON_AddItemToArray(a, o);
    return 0;
}

static cJSON *conns(struct mqo_ctl *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "connections");
    if (!a || mqo_engine_each_conn(c->e, conn_cb, a)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *config(struct mqo_ctl *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *k = cJSON_AddObjectToObject(o, "config");
    for (size_t i = 0; k && i + 1 < 2 * c->cfg.n_config; i += 2)
        cJSON_AddStringToObject(k, c->cfg.config[i], c->cfg.config[i + 1] ? c->cfg.config[i + 1]
                                                                          : "");
    return o;
}

char *ctl_reply(struct mqo_ctl *c, const char *line, size_t len)
{
    cJSON *req = cJSON_ParseWithLength(line, len);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
    const char *name = cJSON_IsString(op) ? op->valuestring : NULL;
    cJSON *r = NULL;
    const char *err = NULL;
    if (!name)
        err = "expected a JSON object with \"op\"";
    else if (!strcmp(name, "status"))
        r = status(c);
    else if (!strcmp(name, "subs"))
        r = subs(c);
    else if (!strcmp(name, "conns"))
        r = conns(c);
    else if (!strcmp(name, "stats")) {
        cJSON *s = ctl_stats_json(c);
        if (s && (r = cJSON_CreateObject()))
            cJSON_AddItemToObject(r, "stats", s);
        else
            cJSON_Delete(s);
    } else if (!strcmp(name, "config"))
        r = config(c);
    else
        err = "unknown op (status, subs, conns, stats, config)";
    if (err) {
        r = cJSON_CreateObject();
        cJSON_AddBoolToObject(r, "ok", 0);
        cJSON_AddStringToObject(r, "error", err);
    } else if (r) {
        cJSON_AddBoolToObject(r, "ok", 1);
        cJSON_AddStringToObject(r, "op", name);
        cJSON_AddNumberToObject(r, "proto", MQO_CTL_PROTO);
    }
    cJSON_Delete(req);
    char *s = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    return s;
}
