/* Watched files and the broker's reloads; see reload.h. */
#include "modes/reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "conf/mosqconf.h"
#include "core/log.h"
#include "core/watch.h"

struct mqo_reload {
    struct mqo_watch *w; /* NULL: nothing watched */
    const char *acl_file;
    char *acl_own;       /* acl_file when set at run time (mqo_reload_set_acl) */
    int acl_idx;         /* its index in w */
    char last_err[320];  /* the acl_file's last error, logged once */
    /* the broker's configuration: its files' bits in w, what was started with */
    struct mqo_reload_cfg cfg; /* its strings copied (conf_files not kept) */
    char *addr, *summary;
    uint64_t conf_mask;
    int conf_held;
    char conf_err[320];
};

static int watch_one(struct mqo_reload *r, const char *path)
{
    int rc = 0;
    if (!r->w)
        rc = mqo_watch_new(&r->w);
    if (rc == 0)
        rc = mqo_watch_add(r->w, path);
    if (rc < 0)
        mqo_err("cannot watch %s for changes (%s): a change the broker reloads could go "
                "unnoticed", path, strerror(-rc));
    return rc;
}

int mqo_reload_new(const struct mqo_reload_cfg *cfg, struct mqo_reload **out)
{
    struct mqo_reload *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->acl_idx = -1;
    r->cfg = *cfg;
    r->cfg.conf_files = NULL;
    if (cfg->conf_file) {
        r->addr = strdup(cfg->broker_addr ? cfg->broker_addr : "");
        r->summary = strdup(cfg->conf_summary ? cfg->conf_summary : "");
        if (!r->addr || !r->summary) {
            mqo_reload_free(r);
            return -ENOMEM;
        }
        r->cfg.broker_addr = r->addr;
        r->cfg.conf_summary = r->summary;
    }
    /* a configuration file read again at SIGHUP may name an acl_file to watch: the loops
     * poll the descriptor only if it exists from the start */
    if (cfg->hup_hook && mqo_watch_new(&r->w) < 0)
        r->w = NULL;
    if (cfg->acl_file) {
        int rc = watch_one(r, cfg->acl_file);
        if (rc < 0) {
            mqo_reload_free(r);
            return rc;
        }
        r->acl_idx = rc;
        r->acl_file = cfg->acl_file;
    }
    for (size_t i = 0; cfg->conf_file && i < cfg->n_conf_files; i++) {
        int rc = watch_one(r, cfg->conf_files[i]);
        if (rc < 0) {
            mqo_reload_free(r);
            return rc;
        }
        r->conf_mask |= 1ull << rc;
    }
    *out = r;
    return 0;
}

/* Reads and evaluates the broker's configuration again; all offload stops while it differs
 * from the one mqoff started with, or would be refused by the broker. */
static void conf_check(struct mqo_reload *r, struct mqo_engine *e, const char *why)
{
    const struct mqo_reload_cfg *cfg = &r->cfg;
    struct mqo_mosqconf *c = NULL;
    struct mqo_mosqpolicy *p = NULL;
    char err[300] = "", sum[4096];
    int ok = mqo_mosqconf_load(cfg->conf_file, NULL, &c, err, sizeof err) == 0 &&
             mqo_mosqconf_evaluate(c, cfg->broker_addr, cfg->broker_port, &p, err,
                                   sizeof err) == 0;
    int same = 0;
    if (ok) {
        mqo_mosqpolicy_describe(p, sum, sizeof sum);
        same = strcmp(sum, cfg->conf_summary) == 0;
    }
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
    if (ok && same) {
        if (r->conf_held)
            mqo_info("the broker's configuration %s is as mqoff started with it again: offload "
                     "resumes", cfg->conf_file);
        r->conf_held = 0;
        r->conf_err[0] = 0;
        mqo_engine_set_conf_hold(e, 0);
        return;
    }
    if (!ok && strcmp(err, r->conf_err) != 0)
        mqo_err("the broker's configuration %s: %s: every PUBLISH passes through to the broker "
                "until it is fixed", why, err);
    else if (ok && !r->conf_held)
        mqo_warn("the broker's configuration %s %s: mqoff does not apply a new configuration "
                 "while it runs, so every PUBLISH passes through to the broker until mqoff is "
                 "restarted (or the files are as they were)", cfg->conf_file, why);
    snprintf(r->conf_err, sizeof r->conf_err, "%s", ok ? "" : err);
    r->conf_held = 1;
    mqo_engine_set_conf_hold(e, 1);
}

void mqo_reload_free(struct mqo_reload *r)
{
    if (!r)
        return;
    mqo_watch_free(r->w);
    free(r->acl_own);
    free(r->addr);
    free(r->summary);
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
    if (m & r->conf_mask)
        conf_check(r, e, "changed");
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

int mqo_reload_set_acl(struct mqo_reload *r, struct mqo_engine *e, const char *path)
{
    char *own = NULL;
    int idx = -1, rc;
    if (path) {
        if (!(own = strdup(path)))
            return -ENOMEM;
        if ((rc = watch_one(r, own)) < 0) {
            free(own);
            return rc;
        }
        idx = rc;
    }
    rc = mqo_engine_set_acl_mode(e, path ? MQO_ACL_FILE : MQO_ACL_OPEN);
    if (rc) {
        mqo_err("cannot change the authorization source: %s", strerror(-rc));
        free(own);
        return rc;
    }
    free(r->acl_own);
    r->acl_own = own;
    r->acl_file = own;
    r->acl_idx = idx;
    r->last_err[0] = 0;
    return 0;
}

void mqo_reload_hup(struct mqo_reload *r, struct mqo_engine *e)
{
    if (r->cfg.hup_hook)
        r->cfg.hup_hook(r->cfg.hup_arg, r, e);
    if (r->cfg.conf_file)
        conf_check(r, e, "at SIGHUP");
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
