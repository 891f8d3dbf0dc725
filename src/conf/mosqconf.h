/* conf/: the broker's own configuration file (mosquitto.conf), read exactly as Mosquitto 2.0.11
 * reads it, and evaluated into what the offload must respect for the listener it fronts.
 *
 * Two steps:
 *  1. mqo_mosqconf_load() reads the main file and its include_dir files and refuses, with
 *     file:line, every file the broker refuses (an unknown option, a value the broker rejects,
 *     a bridge without topics...). What it keeps mirrors the broker's own structures after
 *     its defaults are applied: the listeners it opens, in order, the global and per-listener
 *     security options, limits, bridges.
 *  2. mqo_mosqconf_evaluate() takes the address and port mqoff forwards to (--broker) and
 *     returns a policy: the listener that is, what the offload may do on it, the authorization
 *     its clients get, the broker's limits, the other ways into the broker, the topics that
 *     must always reach the broker (bridges) and every finding it cannot evaluate.
 * docs/ARCHITECTURE.md ("The broker's configuration") records the decisions; mosqconf.c lists
 * the broker's parsing rules one by one.
 *
 * Reading files is all the I/O this module does (no name resolution, no sockets). Strings are
 * NUL-terminated and owned by the structure they are in; NULL means "not set".
 */
#ifndef MQO_CONF_MOSQCONF_H
#define MQO_CONF_MOSQCONF_H

#include <stddef.h>
#include <stdint.h>

/* Where something was written: file path (as read) and 1-based line; line 0 = the file. */
struct mqo_mosqconf_loc {
    const char *file;
    unsigned line;
};

struct mqo_mosqconf_kv {
    char *key, *value;
    struct mqo_mosqconf_loc at;
};

/* A `plugin` / `auth_plugin` line with its plugin_opt_* / auth_opt_* lines. */
struct mqo_mosqconf_plugin {
    char *path;
    struct mqo_mosqconf_loc at;
    struct mqo_mosqconf_kv *opts;
    size_t n_opts;
    int deny_special_chars; /* auth_plugin_deny_special_chars, default 1 */
};

/* The options per_listener_settings moves into each listener. Values are the broker's after
 * its defaults (allow_anonymous is 0/1 as the broker applies it at CONNECT). */
struct mqo_mosqconf_security {
    char *acl_file;
    struct mqo_mosqconf_loc acl_at;
    char *password_file;
    char *psk_file;
    int allow_anonymous;
    int allow_zero_length_clientid; /* default 1 */
    char *auto_id_prefix;           /* NULL: the broker generates ids without a prefix */
    struct mqo_mosqconf_plugin *plugins;
    size_t n_plugins;
};

enum mqo_mosqconf_proto { MQO_MOSQCONF_MQTT = 0, MQO_MOSQCONF_WEBSOCKETS = 1 };

enum mqo_mosqconf_origin {
    MQO_MOSQCONF_LISTENER = 0, /* a `listener` line */
    MQO_MOSQCONF_DEFAULT,      /* the default listener: port / bind_address / listener options
                                  written before any `listener` line */
    MQO_MOSQCONF_LOCAL_ONLY,   /* none configured: the broker's 127.0.0.1 / ::1 port 1883 */
};

struct mqo_mosqconf_listener {
    enum mqo_mosqconf_origin origin;
    struct mqo_mosqconf_loc at; /* its `listener` line; the default listener: its first option */
    uint16_t port;              /* 0: a unix socket (unix_path) */
    char *host;                 /* bind address or host name as written; NULL: all addresses */
    char *unix_path;
    char *bind_interface;
    int socket_domain; /* 0: both, 4: ipv4, 6: ipv6 */
    enum mqo_mosqconf_proto protocol;
    char *mount_point;
    uint8_t max_qos;          /* default 2 */
    uint16_t max_topic_alias; /* default 10 */
    int max_connections;      /* -1: unlimited */
    int use_username_as_clientid;
    /* TLS. The broker speaks TLS on it when certfile and keyfile are both set, or psk_hint. */
    char *cafile, *capath, *certfile, *keyfile, *ciphers, *ciphers_tls13, *crlfile;
    char *dhparamfile, *psk_hint, *tls_version, *tls_engine;
    int tls_keyform_engine, tls_engine_kpass_sha1, require_certificate;
    int use_identity_as_username, use_subject_as_username;
    char *http_dir;
    struct mqo_mosqconf_security sec; /* used when per_listener_settings is true */
};

enum mqo_mosqconf_dir { MQO_MOSQCONF_OUT = 0, MQO_MOSQCONF_IN, MQO_MOSQCONF_BOTH };

/* topic PATTERN [DIRECTION [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]] of a bridge. */
struct mqo_mosqconf_btopic {
    char *pattern; /* NULL for "" (the prefixes are then the whole topic) */
    char *local_prefix, *remote_prefix;
    char *local_topic;  /* what the bridge subscribes to locally (out/both): prefix + pattern */
    char *remote_topic; /* what it subscribes to remotely (in/both) */
    enum mqo_mosqconf_dir dir;
    uint8_t qos;
    struct mqo_mosqconf_loc at;
};

struct mqo_mosqconf_addr {
    char *host;
    uint16_t port;
};

struct mqo_mosqconf_bridge {
    char *name;
    struct mqo_mosqconf_loc at;
    struct mqo_mosqconf_addr *addresses;
    size_t n_addresses;
    struct mqo_mosqconf_btopic *topics;
    size_t n_topics;
    char *remote_clientid, *local_clientid; /* after the broker's defaults */
    char *remote_username, *remote_password, *local_username, *local_password;
    char *notification_topic;
    char *tls_cafile, *tls_capath, *tls_certfile, *tls_keyfile, *tls_alpn, *tls_version;
    char *tls_psk_identity, *tls_psk, *bind_address;
    int protocol_version; /* 3: mqttv31, 4: mqttv311 (default), 5: mqttv50 */
    int start_type;       /* 0: automatic, 1: lazy, 2: once */
    int clean_start, clean_start_local, notifications, notifications_local_only;
    int try_private, attempt_unsubscribe, round_robin, outgoing_retain, tls_insecure;
    int tls_ocsp_required;
    int keepalive, idle_timeout, restart_timeout, backoff_base, backoff_cap, threshold;
    uint32_t maximum_packet_size;
};

/* A thing mqoff cannot evaluate, or worth saying when it starts. */
struct mqo_mosqconf_finding {
    int all; /* 1: nothing may be offloaded on the fronted listener; 0: a note */
    struct mqo_mosqconf_loc at;
    char *why;
};

struct mqo_mosqconf {
    /* The listeners the broker opens, in its order: `listener` lines, then the default
     * listener, or (none of either) the two local-only ones. */
    struct mqo_mosqconf_listener *listeners;
    size_t n_listeners;
    int per_listener_settings;
    int local_only;                /* no listener, port or bind_address anywhere */
    struct mqo_mosqconf_security sec; /* used when per_listener_settings is false */
    struct mqo_mosqconf_bridge *bridges;
    size_t n_bridges;

    uint32_t message_size_limit; /* 0: none */
    uint32_t max_packet_size;    /* 0: none */
    uint16_t max_inflight_messages; /* default 20; 0: unlimited */
    size_t max_inflight_bytes;
    int max_queued_messages; /* default 1000 */
    size_t max_queued_bytes;
    int queue_qos0_messages, upgrade_outgoing_qos, retain_available, allow_duplicate_messages;
    int check_retain_source, persistence, set_tcp_nodelay, connection_messages;
    uint16_t max_keepalive; /* default 65535 */
    int64_t persistent_client_expiration; /* seconds, 0: never */
    int64_t memory_limit;                 /* bytes, 0: none */
    char *clientid_prefixes;
    int sys_interval, autosave_interval, autosave_on_changes, log_timestamp;
    char *persistence_file, *persistence_location, *pid_file, *user, *log_file;
    char *log_timestamp_format;

    char **files; /* every file read, the main file first (what loc.file points to) */
    size_t n_files;
    /* Things the parser met that the broker accepts but mqoff cannot check or that behave
     * surprisingly (a name mqoff does not resolve, an option the broker ignores). */
    struct mqo_mosqconf_finding *notes;
    size_t n_notes;
};

/* File access, replaceable for tests and the fuzzer. */
struct mqo_mosqconf_fs {
    /* Reads a whole file: 0 and a malloc'd buffer (*data, *len), -EISDIR for a directory,
     * -errno. */
    int (*read)(void *ctx, const char *path, char **data, size_t *len);
    /* Lists the entry names of a directory (any type, without "." and ".."): 0 and a
     * malloc'd array of malloc'd names, -errno. */
    int (*list)(void *ctx, const char *dir, char ***names, size_t *n);
    void *ctx;
};

struct mqo_mosqconf_opts {
    const struct mqo_mosqconf_fs *fs; /* NULL: the file system */
    const char *hostname;             /* NULL: gethostname(), as the broker names bridges */
};

/* Reads the configuration at path as `mosquitto -c path` does. Returns 0 and *out; -EINVAL
 * with "FILE:LINE: why" in err when the broker would refuse to start on it; -errno when the
 * main file cannot be read (message in err); -ENOMEM. On failure *out is NULL. opts may be
 * NULL. */
int mqo_mosqconf_load(const char *path, const struct mqo_mosqconf_opts *opts,
                      struct mqo_mosqconf **out, char *err, size_t errlen);

void mqo_mosqconf_free(struct mqo_mosqconf *c);

/* 1 when pl is mqoff's broker plugin (a file named mqoff_mosquitto.so), which only reports
 * sessions and subscriptions: it decides nothing the offload must evaluate. */
int mqo_mosqconf_is_mqoff_plugin(const struct mqo_mosqconf_plugin *pl);
/* The value of option key (without its plugin_opt_ prefix) of pl, NULL when not set. */
const char *mqo_mosqconf_plugin_opt(const struct mqo_mosqconf_plugin *pl, const char *key);

/* What the offload must respect for clients reaching the broker through one listener. */
struct mqo_mosqpolicy {
    const struct mqo_mosqconf_listener *listener; /* the fronted one (points into the conf) */
    size_t index;                                 /* its index in conf->listeners */
    int offload;      /* 0: nothing may be offloaded (a finding with all = 1 says why) */
    int tls;          /* the broker speaks TLS on it */
    int all_addresses; /* it accepts on every address: clients can reach it around mqoff */
    /* The listener's mount_point (NULL: none). The broker prefixes it to every topic and
     * filter of the listener's clients; ACL checks and bridge filters see the prefixed topic.
     * mount_glued: it does not end in '/', so it merges with the client's first level
     * ("mp" + "+/x" is the literal level "mp+"; a leading wildcard then matches nothing). */
    const char *mount_point;
    int mount_glued;

    /* Authorization of the listener's clients (per_listener_settings applied). acl_file NULL
     * and no plugin: the broker lets every client read and write every topic. */
    int per_listener_settings;
    const char *acl_file;
    struct mqo_mosqconf_loc acl_at;
    const char *password_file;
    int allow_anonymous;
    int allow_zero_length_clientid;
    const char *auto_id_prefix; /* "" when the broker uses none */
    /* The client id the broker (and its ACL %c) uses is the username; a client without one
     * is refused whatever allow_anonymous says. */
    int use_username_as_clientid;
    size_t n_plugins;             /* plugins deciding for these clients (offload is then 0) */
    /* mqoff's own broker plugin (mqo_mosqconf_is_mqoff_plugin) in effect for these clients:
     * its plugin_opt_control value (NULL: not loaded for them). It decides nothing. */
    const char *mqoff_plugin_control;

    /* Limits (0 = none where the broker has none). */
    uint32_t message_size_limit, max_packet_size;
    uint8_t max_qos;
    int retain_available, upgrade_outgoing_qos, allow_duplicate_messages, queue_qos0_messages;
    uint16_t max_inflight_messages, max_keepalive, max_topic_alias;
    size_t max_inflight_bytes, max_queued_bytes;
    int max_queued_messages;

    /* Every other listener: another way into the broker that mqoff does not see. */
    const struct mqo_mosqconf_listener **others;
    size_t n_others;

    /* Topic filters, as this listener's clients write topics (mount point removed), that a
     * bridge subscribes to locally: a PUBLISH matching one must go to the broker. Ready for
     * the engine's broker_only list; broker_only_from[i] names the bridge topic line. Exact
     * for topics not starting with '$'; filters that only match '$' topics (which the engine
     * never offloads) are left out, with a note. */
    char **broker_only;
    const struct mqo_mosqconf_btopic **broker_only_from;
    size_t n_broker_only;
    /* The same subscriptions as the broker holds them (mount point included), each widened
     * to a valid filter where the broker's string is not one; mqo_mosqpolicy_broker_only()
     * matches mount point + topic against these. */
    char **broker_filters;
    size_t n_broker_filters;

    struct mqo_mosqconf_finding *findings; /* the conf's notes, then the evaluation's */
    size_t n_findings;
};

/* Evaluates c for mqoff forwarding to the broker at addr (a numeric IPv4/IPv6 address) and
 * port. The fronted listener is the first one on that port bound to addr ("localhost" counting
 * as 127.0.0.1 and ::1), else the first bound to every address of addr's family (no address,
 * per socket_domain; 0.0.0.0; ::), else the only one on that port bound to a host name (with a
 * note). Returns 0 and *out; -EINVAL for an addr that is not numeric; -ENOENT when no
 * listener matches (err lists them); -ENOMEM. */
int mqo_mosqconf_evaluate(const struct mqo_mosqconf *c, const char *addr, uint16_t port,
                          struct mqo_mosqpolicy **out, char *err, size_t errlen);

void mqo_mosqpolicy_free(struct mqo_mosqpolicy *p);

/* Returns 1 when a PUBLISH by a client of the fronted listener to topic t[0..len) must go to
 * the broker because a bridge subscribes to it, else 0 (the same test the engine makes with
 * p->broker_only; here for callers without a trie). */
int mqo_mosqpolicy_broker_only(const struct mqo_mosqpolicy *p, const uint8_t *t, size_t len);

/* Writes a human-readable summary of p (one item a line, findings last) to buf; returns the
 * length it needed (snprintf style). */
size_t mqo_mosqpolicy_describe(const struct mqo_mosqpolicy *p, char *buf, size_t len);

#endif
