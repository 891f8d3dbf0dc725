/* Files mqoff reads at start that change while it runs, and the broker's reloads.
 *
 * The broker's acl_file (--acl-file, or the acl_file of --mosquitto-conf), and the broker's
 * mosquitto.conf itself (cfg.conf_file). The broker reads it at start and when it
 * reloads (SIGHUP); mqoff cannot see the broker reload, so:
 *   - a change of the file (core/watch: inotify) is a version the broker MAY be using from now
 *     on: mqo_engine_acl_changed, the engine offloads only what every version allows;
 *   - a SIGHUP to mqoff says the broker has reloaded: the file is read again and is the only
 *     version from then on (mqo_engine_acl_reloaded);
 *   - a file that cannot be read or parsed is logged (file and line) and everything passes
 *     through to the broker until a SIGHUP finds it parseable (engine.h says why a fix alone is
 *     not enough).
 * Another file read at start (the broker's mosquitto.conf) gets a watch of its own in the same
 * object, and the modes' loops need not change.
 *
 * The modes' loops poll mqo_reload_fd and call mqo_reload_changed when it is readable, and
 * call mqo_reload_hup after a SIGHUP; both act on the engine between two packets.
 */
#ifndef MQO_MODES_RELOAD_H
#define MQO_MODES_RELOAD_H

#include "engine/engine.h"

struct mqo_reload;

struct mqo_reload_cfg {
    const char *acl_file; /* the broker's acl_file, as the engine was started with; NULL: none */
    /* The broker's mosquitto.conf (--mosquitto-conf; NULL: none), the files it read (the main
     * one first, its include_dir files), the listener it was evaluated for and the summary
     * of that evaluation (mqo_mosqpolicy_describe) the engine runs with. When the files
     * change, or at SIGHUP, they are read and evaluated again: a different summary, or a file
     * the broker would refuse, stops all offload (mqo_engine_set_conf_hold) until they are
     * back as mqoff started with them; applying a new configuration takes a restart. */
    const char *conf_file;
    const char *const *conf_files;
    size_t n_conf_files;
    const char *broker_addr;
    uint16_t broker_port;
    const char *conf_summary;
    /* Called first at each SIGHUP, before the files are read again: mqoff's own configuration
     * file (mqoff MODE -c FILE) is read again there, and what can change while mqoff runs is
     * applied (mqo_reload_set_acl, mqo_engine_set_broker_only, the log). NULL: none. */
    void (*hup_hook)(void *arg, struct mqo_reload *r, struct mqo_engine *e);
    void *hup_arg;
};

/* Starts watching the files of cfg. Returns 0 and *out, or -errno with the reason logged (no
 * inotify, the file's directory cannot be watched): a file mqoff cannot watch is a change it
 * could miss. With no file, *out is valid and watches nothing (fd -1). */
int mqo_reload_new(const struct mqo_reload_cfg *cfg, struct mqo_reload **out);
void mqo_reload_free(struct mqo_reload *r);

/* The descriptor to poll for readability; -1 when nothing is watched. */
int mqo_reload_fd(const struct mqo_reload *r);

/* The descriptor is readable: reads the files that changed again and tells the engine. */
void mqo_reload_changed(struct mqo_reload *r, struct mqo_engine *e);

/* mqoff got SIGHUP, the operator's statement that the broker has reloaded its configuration:
 * reads every file again and tells the engine. */
void mqo_reload_hup(struct mqo_reload *r, struct mqo_engine *e);

/* From a hup_hook: authorization comes from now on from the acl_file at path (copied; watched
 * from now on and read at this SIGHUP as the broker's only version), or is open (path NULL).
 * Only between these two sources: the engine must have been started with one of them.
 * Returns 0, or -errno with the reason logged (the engine is then as before). */
int mqo_reload_set_acl(struct mqo_reload *r, struct mqo_engine *e, const char *path);

#endif
