/* Watched files and the broker's reloads; see reload.h. */
#include "modes/reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "core/log.h"
#include "core/watch.h"

struct mqo_reload {
    struct mqo_watch *w; /* NULL: nothing watched */
    const char *acl_file;
    int acl_idx;         /* its index in w */
    char last_err[320];  /* the acl_file's last error, logged once */
};

int mqo_reload_new(const struct mqo_reload_cfg *cfg, struct mqo_reload **out)
{
    struct mqo_reload *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->acl_idx = -1;
    if (cfg->acl_file) {
        int rc = mqo_watch_new(&r->w);
        if (rc == 0) {
            rc = mqo_watch_add(r->w, cfg->acl_file);
            r->acl_idx = rc;
        }
        if (rc < 0) {
            mqo_err("cannot watch %s for changes (%s): a change the broker reloads could go "
                    "unnoticed", cfg->acl_file, strerror(-rc));
            mqo_reload_free(r);
            return rc;
        }
        r->acl_file = cfg->acl_file;
    }
    *out = r;
    return 0;
}

void mqo_reload_free(struct mqo_reload *r)
{
    if (!r)
        return;
    mqo_watch_free(r->w);
    free(r);
}

int mqo_reload_fd(const struct mqo_reload *r) { return r->w ? mqo_watch_fd(r->w) : -1; }

/* Reads and parses the acl_file: the new rules, or NULL with the error logged (once per
 * distinct error). */
static struct mqo_acl *load_acl(struct mqo_reload *r, const char *why)
{
    struct mqo_acl *a = NULL;
    char err[sizeof r->last_err - 16];
    if (mqo_acl_load(r->acl_file, &a, err, sizeof err) == 0) {
        r->last_err[0] = 0;
        return a;
    }
    if (strcmp(err, r->last_err) != 0) {
        /* err names the file and, for a parse error, the line */
        mqo_err("acl_file %s: %s: every PUBLISH passes through to the broker until the file "
                "parses and mqoff gets SIGHUP after the broker reloaded it", why, err);
        snprintf(r->last_err, sizeof r->last_err, "%s", err);
    }
    return NULL;
}

void mqo_reload_changed(struct mqo_reload *r, struct mqo_engine *e)
{
    uint64_t m = 0;
    int rc = mqo_watch_drain(r->w, &m);
    if (rc)
        mqo_err("reading file change events: %s", strerror(-rc));
    if (r->acl_idx < 0 || !(m & (1ull << r->acl_idx)))
        return;
    uint64_t before = mqo_engine_stats(e)->acl_versions;
    struct mqo_acl *a = load_acl(r, "changed");
    size_t rules = mqo_acl_rule_count(a);
    int parsed = a != NULL;
    rc = mqo_engine_acl_changed(e, a); /* takes a */
    uint64_t after = mqo_engine_stats(e)->acl_versions;
    if (rc == -ENOSPC)
        mqo_warn("acl_file %s changed again: too many versions since the broker's last reload; "
                 "every PUBLISH passes through to the broker until mqoff gets SIGHUP after the "
                 "broker reloaded it", r->acl_file);
    else if (parsed && before == 0 && after == 0)
        mqo_warn("acl_file %s parses again (%zu rules); the broker may have reloaded it while "
                 "it did not (Mosquitto then checks no ACL at all), so offload resumes when "
                 "mqoff gets SIGHUP after the broker reloaded it", r->acl_file, rules);
    else if (parsed && after > before)
        mqo_info("acl_file %s changed (%zu rules): the broker may be using any of %llu versions "
                 "until it reloads; only what they all allow is offloaded (SIGHUP mqoff after "
                 "the broker)", r->acl_file, rules, (unsigned long long)after);
    else if (parsed)
        mqo_dbg("acl_file %s changed to rules already known", r->acl_file);
}

void mqo_reload_hup(struct mqo_reload *r, struct mqo_engine *e)
{
    if (!r->acl_file) {
        mqo_info("SIGHUP: no file to read again (authorization is not from an acl_file)");
        return;
    }
    r->last_err[0] = 0; /* a reload is worth its own message */
    struct mqo_acl *a = load_acl(r, "at SIGHUP");
    size_t rules = mqo_acl_rule_count(a);
    int parsed = a != NULL;
    mqo_engine_acl_reloaded(e, a); /* takes a */
    if (parsed)
        mqo_info("SIGHUP: the broker reloaded %s (%zu rules): the only version from now on",
                 r->acl_file, rules);
}
