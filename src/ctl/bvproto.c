/* The plugin's lines, turned into the engine's broker-view calls (bvproto.h). */
#include "ctl/bvproto.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

const char *mqo_bvproto_state_name(enum mqo_bvp_state s)
{
    switch (s) {
    case MQO_BVP_HELLO:
        return "connecting";
    case MQO_BVP_DUMP:
        return "syncing";
    case MQO_BVP_SYNCED:
        return "synced";
    case MQO_BVP_LIMITED:
        return "limited";
    }
    return "?";
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A non-negative integer field (JSON numbers are doubles: exact up to 2^53). 0 and -1 when
 * absent or not such a number. */
static int u64_of(const cJSON *o, const char *k, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0 ||
        (double)(uint64_t)v->valuedouble != v->valuedouble)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static int bool_of(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void copy(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

/* The hello: the plugin's protocol version and what it can report. */
static int hello(struct mqo_bvproto *p, struct mqo_engine *e, const char *token, const cJSON *o)
{
    uint64_t proto = 0;
    const char *role = str_of(o, "role");
    if (u64_of(o, "proto", &proto) || proto != MQO_CTL_PROTO || !role || strcmp(role, "plugin")) {
        mqo_warn("control: a plugin with protocol %llu (role %s): this mqoff speaks version %d",
                 (unsigned long long)proto, role ? role : "?", MQO_CTL_PROTO);
        return -EPROTO;
    }
    copy(p->instance, sizeof p->instance, str_of(o, "instance"));
    copy(p->broker, sizeof p->broker, str_of(o, "broker"));
    copy(p->acl, sizeof p->acl, str_of(o, "acl"));
    const char *cov = str_of(o, "coverage"), *pers = str_of(o, "persistence");
    const char *why = str_of(o, "why");
    p->why[0] = 0;
    if (!cov || strcmp(cov, "all") != 0)
        snprintf(p->why, sizeof p->why, "it does not see every client of the broker (%s)",
                 why ? why : "coverage not complete");
    else if (!strcmp(p->acl, "plugins"))
        snprintf(p->why, sizeof p->why, "another plugin of the broker decides authorization, so "
                 "a subscription it reports may be refused and an unsubscription too");
    else if (pers && strcmp(pers, "read") != 0 && strcmp(pers, "none") != 0)
        snprintf(p->why, sizeof p->why, "the sessions the broker restored are unknown (%s)",
                 why ? why : pers);
    if (p->why[0]) {
        p->state = MQO_BVP_LIMITED;
        mqo_warn("control: the broker plugin (%s, instance %s) is connected but %s: mqoff "
                 "behaves as without it", p->broker, p->instance, p->why);
        return 0;
    }
    int rc = mqo_engine_bv_begin(e, token);
    if (rc)
        return rc;
    p->state = MQO_BVP_DUMP;
    mqo_info("control: broker plugin connected (%s, instance %s, acl %s): syncing", p->broker,
             p->instance, p->acl);
    return 0;
}

/* "TOKEN/ID" of a bind marker the plugin saw. */
static int split_bind(const char *s, char *token, size_t cap, uint64_t *id)
{
    const char *sl = strchr(s, '/');
    if (!sl || (size_t)(sl - s) >= cap || !sl[1])
        return -1;
    memcpy(token, s, (size_t)(sl - s));
    token[sl - s] = 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(sl + 1, &end, 10);
    if (errno || *end || sl[1] < '0' || sl[1] > '9')
        return -1;
    *id = v;
    return 0;
}

static int bind_to(struct mqo_engine *e, const char *cid, uint64_t pconn, const char *spec)
{
    char tok[40];
    uint64_t id;
    if (split_bind(spec, tok, sizeof tok, &id))
        return 0;
    int rc = mqo_engine_bv_bind(e, (const uint8_t *)cid, strlen(cid), pconn, tok, id);
    return rc == -ESRCH ? 0 : rc;
}

static int apply(struct mqo_bvproto *p, struct mqo_engine *e, const char *op, const cJSON *o)
{
    const char *cid = str_of(o, "cid");
    if (!strcmp(op, "synced")) {
        if (p->state == MQO_BVP_DUMP) {
            mqo_engine_bv_synced(e);
            p->state = MQO_BVP_SYNCED;
        }
        return 0;
    }
    if (!strcmp(op, "reload")) {
        p->reloads++;
        return 1;
    }
    if (!cid) {
        p->ignored++;
        return 0;
    }
    size_t cl = strlen(cid);
    const uint8_t *c = (const uint8_t *)cid;
    uint64_t pconn = 0;
    if (!strcmp(op, "session")) {
        u64_of(o, "conn", &pconn);
        int rc = mqo_engine_bv_session(e, c, cl, pconn, bool_of(o, "online"), bool_of(o, "reset"));
        const char *b = str_of(o, "bind");
        if (rc == 0 && b && pconn)
            rc = bind_to(e, cid, pconn, b);
        return rc;
    }
    if (!strcmp(op, "sub") || !strcmp(op, "unsub")) {
        const char *f = str_of(o, "filter");
        uint64_t qos = 0;
        if (!f || (op[0] == 's' && (u64_of(o, "qos", &qos) || qos > 2))) {
            p->ignored++;
            return 0;
        }
        int rc = op[0] == 's' ? mqo_engine_bv_sub(e, c, cl, (const uint8_t *)f, strlen(f),
                                                   (uint8_t)qos)
                              : mqo_engine_bv_unsub(e, c, cl, (const uint8_t *)f, strlen(f));
        if (rc == -EINVAL) {
            p->ignored++;
            return 0;
        }
        return rc;
    }
    if (!strcmp(op, "end")) {
        mqo_engine_bv_end(e, c, cl);
        return 0;
    }
    if (!strcmp(op, "bind")) {
        const char *b = str_of(o, "bind");
        if (u64_of(o, "conn", &pconn) || !pconn || !b) {
            p->ignored++;
            return 0;
        }
        return bind_to(e, cid, pconn, b);
    }
    p->ignored++; /* an op of a later protocol revision */
    return 0;
}

int mqo_bvproto_line(struct mqo_bvproto *p, struct mqo_engine *e, const char *token,
                     const char *line, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return -EPROTO;
    }
    p->lines++;
    const char *op = str_of(o, "op");
    int rc;
    if (!op)
        rc = -EPROTO;
    else if (p->state == MQO_BVP_HELLO)
        rc = strcmp(op, "hello") ? -EPROTO : hello(p, e, token, o);
    else if (!strcmp(op, "hello"))
        rc = -EPROTO; /* a second hello: the plugin restarted its stream without reconnecting */
    else if (p->state == MQO_BVP_LIMITED)
        rc = !strcmp(op, "reload") ? (p->reloads++, 1) : 0;
    else
        rc = apply(p, e, op, o);
    cJSON_Delete(o);
    if (rc < 0 && rc != -EPROTO)
        mqo_engine_bv_lost(e);
    return rc;
}

void mqo_bvproto_close(struct mqo_bvproto *p, struct mqo_engine *e)
{
    if (p->state == MQO_BVP_DUMP || p->state == MQO_BVP_SYNCED)
        mqo_engine_bv_lost(e);
    p->state = MQO_BVP_HELLO;
}
