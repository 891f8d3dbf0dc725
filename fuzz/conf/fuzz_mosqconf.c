/* libFuzzer target for conf/: reads a mosquitto.conf (and include_dir files) from memory and,
 * when the broker would accept it, evaluates it for several broker addresses and checks the
 * policy.
 *
 * Input: byte 0 = flags (bit 0: the main file has an include directory "d"), then files
 * separated by the byte 0x1e: the main file "m.conf", then "d/a.conf", "d/B.conf",
 * "d/b.conf", "d/x.txt", "d/A.conf", "d/c.conf" (extra parts are ignored). The last part also
 * serves as a topic to test against the broker-only filters.
 *
 * Checked: a refused file leaves *out NULL and names a file; an accepted one evaluates to 0 or
 * -ENOENT; offload is 0 exactly when a finding says "all"; every broker-only filter is a valid
 * filter; mqo_mosqpolicy_broker_only() (mount point + topic against the broker's filters)
 * agrees with matching the topic against the client-side filters, for every topic not
 * starting with '$' (the mount point removal is exact). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/mosqconf.h"
#include "helper_memfs.h"
#include "topic/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"m.conf",   "d/a.conf", "d/B.conf", "d/b.conf",
                                    "d/x.txt",  "d/A.conf", "d/c.conf"};

/* 1 when topic t (valid name, not '$') matches one of the client-side filters. */
static int client_side(const struct mqo_mosqpolicy *p, const uint8_t *t, size_t len)
{
    for (size_t i = 0; i < p->n_broker_only; i++)
        if (mqo_topic_matches((const uint8_t *)p->broker_only[i], strlen(p->broker_only[i]), t, len))
            return 1;
    return 0;
}

static void check_topic(const struct mqo_mosqpolicy *p, const uint8_t *t, size_t len)
{
    if (len == 0 || len > 65535 || t[0] == '$' || mqo_topic_name_valid(t, len) != 0)
        return;
    if (mqo_mosqpolicy_broker_only(p, t, len) != client_side(p, t, len))
        abort();
}

/* A topic made from filter f: '+' -> "x", '#' -> "y/z" (or its parent when short). */
static void check_from_filter(const struct mqo_mosqpolicy *p, const char *f, int parent)
{
    char t[600];
    size_t n = 0;
    for (const char *s = f; *s && n + 4 < sizeof t; s++) {
        if (*s == '+') {
            t[n++] = 'x';
        } else if (*s == '#') {
            if (parent) {
                if (n)
                    n--; /* "a/#" -> "a" */
            } else {
                memcpy(t + n, "y/z", 3);
                n += 3;
            }
        } else {
            t[n++] = *s;
        }
    }
    check_topic(p, (const uint8_t *)t, n);
}

static void check_policy(const struct mqo_mosqconf *c, const struct mqo_mosqpolicy *p,
                         const uint8_t *topic, size_t tlen)
{
    int any_all = 0;
    for (size_t i = 0; i < p->n_findings; i++) {
        any_all |= p->findings[i].all;
        if (!p->findings[i].why)
            abort();
    }
    if (p->offload == any_all)
        abort();
    if (p->n_others + 1 != c->n_listeners || p->listener != &c->listeners[p->index])
        abort();
    for (size_t i = 0; i < p->n_broker_only; i++)
        if (mqo_topic_filter_valid((const uint8_t *)p->broker_only[i], strlen(p->broker_only[i])))
            abort();
    for (size_t i = 0; i < p->n_broker_filters; i++) {
        /* a "$share" level after a share prefix is literal in the broker: check the shape */
        char shape[70000];
        snprintf(shape, sizeof shape, "%s", p->broker_filters[i]);
        if (!strncmp(shape, "$share/", 7))
            shape[0] = 'x';
        if (mqo_topic_filter_valid((const uint8_t *)shape, strlen(shape)))
            abort();
    }
    for (size_t i = 0; i < p->n_broker_only; i++)
        if (p->broker_only[i][0] == '$')
            abort();
    for (size_t i = 0; i < p->n_broker_only; i++) {
        check_from_filter(p, p->broker_only[i], 0);
        check_from_filter(p, p->broker_only[i], 1);
    }
    /* broker-side filters with the mount point taken off, when it is a prefix */
    size_t ml = p->mount_point ? strlen(p->mount_point) : 0;
    for (size_t i = 0; i < p->n_broker_filters; i++)
        if (!strncmp(p->broker_filters[i], p->mount_point ? p->mount_point : "", ml))
            check_from_filter(p, p->broker_filters[i] + ml, 0);
    static const char *const fixed[] = {"a", "a/b", "/", "x/y/z", "sensors/t", "mp/a"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_topic(p, (const uint8_t *)fixed[i], strlen(fixed[i]));
    check_topic(p, topic, tlen);
    char buf[256];
    size_t n = mqo_mosqpolicy_describe(p, buf, sizeof buf);
    if (n < sizeof buf && strlen(buf) != n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1, *end = data + size, *last = p;
    size_t last_len = 0;
    memfs_reset();
    if (flags & 1)
        memfs_dir("d");
    for (size_t i = 0; i < sizeof names / sizeof names[0] && p <= end; i++) {
        const uint8_t *z = p < end ? memchr(p, 0x1e, (size_t)(end - p)) : NULL;
        size_t len = z ? (size_t)(z - p) : (size_t)(end - p);
        memfs_add(names[i], p, len);
        last = p;
        last_len = len;
        if (!z)
            break;
        p = z + 1;
    }
    static const struct mqo_mosqconf_opts opts = {&memfs, "fuzzhost"};
    struct mqo_mosqconf *c = NULL;
    char err[512];
    int rc = mqo_mosqconf_load("m.conf", &opts, &c, err, sizeof err);
    if (rc) {
        if (c || (rc != -EINVAL && rc != -ENOMEM) || !strchr(err, ':'))
            abort();
        memfs_reset();
        return 0;
    }
    if (!c || c->n_listeners == 0 || c->n_files == 0)
        abort();
    static const char *const addrs[] = {"127.0.0.1", "::1", "198.18.0.2"};
    for (size_t a = 0; a < 3; a++) {
        uint16_t ports[3] = {1883, 0, 0};
        if (c->n_listeners)
            ports[1] = c->listeners[0].port;
        ports[2] = c->listeners[c->n_listeners - 1].port;
        for (size_t k = 0; k < 3; k++) {
            struct mqo_mosqpolicy *pol = NULL;
            rc = mqo_mosqconf_evaluate(c, addrs[a], ports[k], &pol, err, sizeof err);
            if (rc == -ENOENT && !pol)
                continue;
            if (rc || !pol)
                abort();
            check_policy(c, pol, last, last_len);
            mqo_mosqpolicy_free(pol);
        }
    }
    mqo_mosqconf_free(c);
    memfs_reset();
    return 0;
}
