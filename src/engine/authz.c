/* Authorization that changes at run time: the versions of the broker's acl_file the broker may
 * be using (engine.h, mqo_engine_acl_changed).
 *
 * The broker reads its acl_file when it starts and when it reloads (SIGHUP). Between a change
 * of the file and the reload the engine is told of, the broker may use the version it had, the
 * new one, or any version written in between (it may have reloaded at any moment). Every such
 * version is kept, and a check answers for all of them at once:
 *
 *     every version allows -> ENG_ACL_ALLOW    (the broker allows, whichever it uses)
 *     every version denies -> ENG_ACL_DENY     (the broker denies, whichever it uses)
 *     otherwise            -> ENG_ACL_SPLIT    (only the broker knows: pass it the message)
 *
 * A file that cannot be parsed leaves no usable version: Mosquitto 2.0.11 reloading such a
 * file logs an error and registers no ACL check at all, so it allows everything (measured in
 * the lab, docs/ARCHITECTURE.md), while a start refuses it. Nothing the engine can evaluate
 * describes that, so everything passes through until a reload with a file that parses.
 */
#include <errno.h>
#include <stdlib.h>

#include "acl/acl.h"
#include "engine/engine_int.h"

/* Versions kept at most between two reloads. Each check evaluates them all; past this many,
 * everything passes through until the next reload (a file rewritten this often without a
 * reload is an edit in progress). */
#define ACL_VERSIONS_MAX 16

enum eng_acl eng_acl_check(const struct mqo_engine *e, const struct mqo_conn *c,
                           struct mqo_str t, int access)
{
    if (e->cfg.acl_mode == MQO_ACL_OPEN)
        return ENG_ACL_ALLOW;
    if (e->cfg.acl_mode != MQO_ACL_FILE || c->acl_unknown || e->acl_broken || e->n_acl == 0)
        return ENG_ACL_UNKNOWN;
    int allow = 0, deny = 0;
    for (size_t i = 0; i < e->n_acl; i++) {
        if (mqo_acl_check(e->acl_v[i].acl, c->cid, c->cid_len, c->user, c->user_len,
                          c->has_user, t.p, t.len, access))
            allow = 1;
        else
            deny = 1;
        if (allow && deny)
            return ENG_ACL_SPLIT;
    }
    return allow ? ENG_ACL_ALLOW : ENG_ACL_DENY;
}

/* Drops every version (frees those the engine owns). */
static void drop_all(struct mqo_engine *e)
{
    for (size_t i = 0; i < e->n_acl; i++)
        if (e->acl_v[i].owned)
            mqo_acl_free((struct mqo_acl *)e->acl_v[i].acl);
    e->n_acl = 0;
}

static void publish_count(struct mqo_engine *e)
{
    e->st.acl_versions = e->acl_broken ? 0 : e->n_acl;
}

int eng_acl_init(struct mqo_engine *e)
{
    if (e->cfg.acl_mode != MQO_ACL_FILE)
        return 0;
    e->acl_v = calloc(ACL_VERSIONS_MAX, sizeof *e->acl_v);
    if (!e->acl_v)
        return -ENOMEM;
    e->acl_v[0] = (struct acl_ver){.acl = e->cfg.acl, .owned = 0};
    e->n_acl = 1;
    publish_count(e);
    return 0;
}

void eng_acl_free(struct mqo_engine *e)
{
    drop_all(e);
    free(e->acl_v);
    e->acl_v = NULL;
}

int mqo_engine_acl_changed(struct mqo_engine *e, struct mqo_acl *acl)
{
    if (e->cfg.acl_mode != MQO_ACL_FILE) {
        mqo_acl_free(acl);
        return -EINVAL;
    }
    int rc = 0;
    if (!acl) {
        drop_all(e);
        e->acl_broken = 1;
    } else if (e->acl_broken) {
        mqo_acl_free(acl); /* the broker may hold no rules at all: only a reload tells */
    } else {
        size_t i = 0;
        while (i < e->n_acl && !mqo_acl_same(e->acl_v[i].acl, acl))
            i++;
        if (i < e->n_acl) {
            mqo_acl_free(acl);
        } else if (e->n_acl == ACL_VERSIONS_MAX) {
            mqo_acl_free(acl);
            drop_all(e);
            e->acl_broken = 1;
            rc = -ENOSPC;
        } else {
            e->acl_v[e->n_acl++] = (struct acl_ver){.acl = acl, .owned = 1};
        }
    }
    publish_count(e);
    return rc;
}

int mqo_engine_acl_reloaded(struct mqo_engine *e, struct mqo_acl *acl)
{
    if (e->cfg.acl_mode != MQO_ACL_FILE) {
        mqo_acl_free(acl);
        return -EINVAL;
    }
    drop_all(e);
    if (acl) {
        e->acl_v[0] = (struct acl_ver){.acl = acl, .owned = 1};
        e->n_acl = 1;
        e->acl_broken = 0;
    } else {
        e->acl_broken = 1;
    }
    publish_count(e);
    return 0;
}

int mqo_engine_set_acl_mode(struct mqo_engine *e, enum mqo_acl_mode mode)
{
    if ((mode != MQO_ACL_OPEN && mode != MQO_ACL_FILE) || e->cfg.acl_mode == MQO_ACL_NONE)
        return -EINVAL;
    if (mode == e->cfg.acl_mode)
        return 0;
    if (mode == MQO_ACL_FILE && !e->acl_v && !(e->acl_v = calloc(ACL_VERSIONS_MAX, sizeof *e->acl_v)))
        return -ENOMEM;
    drop_all(e);
    e->cfg.acl_mode = mode;
    e->acl_broken = mode == MQO_ACL_FILE; /* until a reload gives the rules */
    publish_count(e);
    return 0;
}
