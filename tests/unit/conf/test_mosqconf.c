/* Unit tests for conf/: mosquitto.conf read as Mosquitto 2.0.11 reads it, and evaluated.
 * Most cases read from an in-memory file system (main file "m.conf"); the include_dir cases
 * also run against real files. tests/lab/test_mosqconf.sh checks the verdicts against the
 * real broker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/mosqconf.h"
#include "helper_memfs.h"

/* the in-memory file system (helper_memfs.c) under the names used here */
#define fs_reset memfs_reset
#define fs_add_bin memfs_add
#define fs_dir memfs_dir
static void fs_add(const char *path, const char *text)
{
    memfs_add(path, text, strlen(text));
}

static const struct mqo_mosqconf_opts mopts = {&memfs, "host"};

static char err[1024];

/* Loads m.conf (already in the fs) expecting success. */
static struct mqo_mosqconf *load_fs_ok(void)
{
    struct mqo_mosqconf *c = NULL;
    int rc = mqo_mosqconf_load("m.conf", &mopts, &c, err, sizeof err);
    if (rc)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    return c;
}

static struct mqo_mosqconf *load_ok(const char *text)
{
    fs_reset();
    fs_add("m.conf", text);
    return load_fs_ok();
}

/* Loads m.conf expecting -EINVAL with err starting with want ("m.conf:3: "). */
static void load_fs_fails(const char *want)
{
    struct mqo_mosqconf *c = (struct mqo_mosqconf *)&c;
    int rc = mqo_mosqconf_load("m.conf", &mopts, &c, err, sizeof err);
    if (rc != -EINVAL || strncmp(err, want, strlen(want)))
        print_error("rc %d, error \"%s\", wanted -EINVAL and \"%s...\"\n", rc, err, want);
    assert_int_equal(rc, -EINVAL);
    assert_null(c);
    assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void load_fails(const char *text, const char *want)
{
    fs_reset();
    fs_add("m.conf", text);
    load_fs_fails(want);
}

static void load_fails_line(const char *text, unsigned line)
{
    char want[64];
    snprintf(want, sizeof want, "m.conf:%u: ", line);
    load_fails(text, want);
}

static void accepted(const char *text)
{
    mqo_mosqconf_free(load_ok(text));
}

static int has_note(const struct mqo_mosqconf_finding *v, size_t n, const char *part)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(v[i].why, part))
            return 1;
    return 0;
}

static struct mqo_mosqpolicy *eval_ok(const struct mqo_mosqconf *c, const char *addr,
                                      uint16_t port)
{
    struct mqo_mosqpolicy *p = NULL;
    int rc = mqo_mosqconf_evaluate(c, addr, port, &p, err, sizeof err);
    if (rc)
        print_error("evaluate: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(p);
    return p;
}

static int bo(const struct mqo_mosqpolicy *p, const char *topic)
{
    return mqo_mosqpolicy_broker_only(p, (const uint8_t *)topic, strlen(topic));
}

/* ---- reading ---- */

static void test_empty_is_local_only(void **state)
{
    struct mqo_mosqconf *c = load_ok("");
    assert_int_equal(c->n_listeners, 2);
    assert_int_equal(c->listeners[0].origin, MQO_MOSQCONF_LOCAL_ONLY);
    assert_string_equal(c->listeners[0].host, "127.0.0.1");
    assert_string_equal(c->listeners[1].host, "::1");
    assert_int_equal(c->listeners[0].port, 1883);
    assert_int_equal(c->local_only, 1);
    assert_int_equal(c->sec.allow_anonymous, 1);
    assert_string_equal(c->sec.auto_id_prefix, "auto-");
    assert_int_equal(c->max_inflight_messages, 20);
    assert_int_equal(c->max_queued_messages, 1000);
    assert_int_equal(c->max_keepalive, 65535);
    assert_int_equal(c->retain_available, 1);
    assert_int_equal(c->message_size_limit, 0);
    assert_int_equal(c->n_files, 1);
    mqo_mosqconf_free(c);
    /* comments and blank lines only */
    accepted("# a comment\n\n\r\n#x\n   \n");
}

static void test_words_and_comments(void **state)
{
    load_fails_line("# fine\n  # indented comment is the option \"#\"\n", 2);
    load_fails_line("port\t1883\n", 1);     /* tabs do not separate words */
    load_fails_line("\tport 1883\n", 1);
    accepted("\rbogus line skipped because it starts with CR\n");
    accepted("port 1884 trailing words ignored\r\n");
    accepted("port    1884\n"); /* several spaces */
    load_fails_line("Port 1884\n", 1); /* option names are case-sensitive */
    load_fails("listener 1883\nbogus_option 1\n", "m.conf:2: Unknown configuration variable \"bogus_option\"");
    /* integers are atoi(): "1884abc" is 1884, "abc" is 0 */
    struct mqo_mosqconf *c = load_ok("port 1884abc\n");
    assert_int_equal(c->listeners[0].port, 1884);
    mqo_mosqconf_free(c);
    load_fails_line("port abc\n", 1);
    load_fails_line("port\n", 1);
    /* booleans: true/false/1/0 exactly */
    accepted("retain_available 0\nqueue_qos0_messages true\n");
    load_fails_line("retain_available yes\n", 1);
    load_fails_line("retain_available TRUE\n", 1);
}

static void test_string_values(void **state)
{
    struct mqo_mosqconf *c = load_ok("acl_file   /etc/acl with space # and comment   \n");
    assert_string_equal(c->sec.acl_file, "/etc/acl with space # and comment");
    assert_string_equal(c->sec.acl_at.file, "m.conf");
    assert_int_equal(c->sec.acl_at.line, 1);
    mqo_mosqconf_free(c);
    load_fails_line("acl_file /a\nacl_file /b\n", 2); /* Duplicate */
    load_fails_line("acl_file\n", 1);
    load_fails_line("acl_file    \n", 1);
    load_fails_line("acl_file /a\tb\n", 1);   /* a control character: "Malformed UTF-8" */
    load_fails_line("acl_file /a\xc3\n", 1);  /* truncated sequence */
    load_fails_line("acl_file /a\xed\xa0\x80\n", 1); /* a surrogate */
    accepted("acl_file /caf\xc3\xa9\n");
    /* `user`: the broker frees the first value but keeps its pointer, so a second one is a
     * "Duplicate" too */
    c = load_ok("user a\n");
    assert_string_equal(c->user, "a");
    mqo_mosqconf_free(c);
    load_fails_line("user a\nuser b\n", 2);
}

static void test_line_buffer_quirks(void **state)
{
    /* A last line without '\n' of exactly 999 bytes (the buffer full) is never processed. */
    char big[2100];
    memset(big, 'x', sizeof big);
    memcpy(big, "max_qos 1\n", 10);
    fs_reset();
    fs_add_bin("m.conf", big, 10 + 999);
    mqo_mosqconf_free(load_fs_ok());
    fs_reset();
    fs_add_bin("m.conf", big, 10 + 998);
    load_fs_fails("m.conf:2: ");
    fs_reset();
    fs_add_bin("m.conf", big, 10 + 1999); /* the buffer grew once: 1999 is full again */
    mqo_mosqconf_free(load_fs_ok());
    /* A long valid line spanning several buffer sizes. */
    char longl[5000];
    int n = snprintf(longl, sizeof longl, "acl_file /");
    memset(longl + n, 'a', 3000);
    memcpy(longl + n + 3000, "\nport 1884\n", 12);
    struct mqo_mosqconf *c = load_ok(longl);
    assert_int_equal(strlen(c->sec.acl_file), 3001);
    assert_int_equal(c->listeners[0].port, 1884);
    mqo_mosqconf_free(c);
    /* A NUL byte: the broker swallows the rest of the file into that line, which it then
     * processes only if the file does not end in '\n'. */
    static const char nul1[] = "bogus\0 1\nport 1\n";
    fs_reset();
    fs_add_bin("m.conf", nul1, sizeof nul1 - 1);
    c = load_fs_ok();
    assert_int_equal(c->n_listeners, 2); /* "port 1" swallowed too: local only */
    mqo_mosqconf_free(c);
    static const char nul2[] = "bogus\0 1\nport 1";
    fs_reset();
    fs_add_bin("m.conf", nul2, sizeof nul2 - 1);
    load_fs_fails("m.conf:1: Unknown configuration variable \"bogus\"");
    static const char nul3[] = "port 1884\n\0bogus\nmore";
    fs_reset();
    fs_add_bin("m.conf", nul3, sizeof nul3 - 1);
    c = load_fs_ok(); /* a line starting with NUL is empty */
    assert_int_equal(c->listeners[0].port, 1884);
    mqo_mosqconf_free(c);
    /* a plugin option at the very end reads the bytes after its name: a NUL */
    load_fails_line("plugin /p.so\nplugin_opt_abc\n", 2);
}

static void test_default_listener(void **state)
{
    struct mqo_mosqconf *c = load_ok("port 1884\n");
    assert_int_equal(c->n_listeners, 1);
    assert_int_equal(c->listeners[0].origin, MQO_MOSQCONF_DEFAULT);
    assert_int_equal(c->listeners[0].port, 1884);
    assert_null(c->listeners[0].host);
    assert_int_equal(c->local_only, 0);
    assert_int_equal(c->sec.allow_anonymous, 0);
    mqo_mosqconf_free(c);

    c = load_ok("bind_address 127.0.0.1\n");
    assert_int_equal(c->n_listeners, 1);
    assert_int_equal(c->listeners[0].port, 1883);
    assert_string_equal(c->listeners[0].host, "127.0.0.1");
    mqo_mosqconf_free(c);

    /* max_qos alone: the default listener on every address, still "local only" for
     * allow_anonymous, which is then true even when the file says false */
    c = load_ok("max_qos 1\nallow_anonymous false\n");
    assert_int_equal(c->n_listeners, 1);
    assert_int_equal(c->listeners[0].origin, MQO_MOSQCONF_DEFAULT);
    assert_null(c->listeners[0].host);
    assert_int_equal(c->listeners[0].max_qos, 1);
    assert_int_equal(c->sec.allow_anonymous, 1);
    mqo_mosqconf_free(c);

    /* explicit listeners first, then the default one */
    c = load_ok("max_connections 5\nlistener 1885\nport 1884\n");
    assert_int_equal(c->n_listeners, 2);
    assert_int_equal(c->listeners[0].port, 1885);
    assert_int_equal(c->listeners[1].port, 1884);
    assert_int_equal(c->listeners[1].max_connections, 5);
    assert_int_equal(c->listeners[1].at.line, 1);
    mqo_mosqconf_free(c);

    /* options that do not make a default listener: tls_version, http_dir, max_topic_alias,
     * acl_file */
    c = load_ok("tls_version tlsv1.2\nhttp_dir /x\nmax_topic_alias 5\nacl_file /a\n");
    assert_int_equal(c->n_listeners, 2);
    assert_int_equal(c->listeners[0].origin, MQO_MOSQCONF_LOCAL_ONLY);
    mqo_mosqconf_free(c);
    c = load_ok("listener 1885\n");
    assert_int_equal(c->n_listeners, 1);
    assert_int_equal(c->sec.allow_anonymous, 0);
    mqo_mosqconf_free(c);
    c = load_ok("listener 1885\nallow_anonymous true\n");
    assert_int_equal(c->sec.allow_anonymous, 1);
    mqo_mosqconf_free(c);
    /* port twice: the last wins */
    c = load_ok("port 1884\nport 1886\n");
    assert_int_equal(c->listeners[0].port, 1886);
    mqo_mosqconf_free(c);
    load_fails_line("port 0\n", 1);
    load_fails_line("port 65536\n", 1);
    load_fails_line("bind_address 127.0.0.1\nbind_address ::1\n", 2);
}

static void test_listener_options(void **state)
{
    struct mqo_mosqconf *c = load_ok("listener 1883 127.0.0.1\nlistener 0 /run/m.sock\n"
                                     "listener 1884 # all addresses\nmount_point pre/\n"
                                     "protocol websockets\nsocket_domain ipv4\n"
                                     "use_username_as_clientid true\nmax_topic_alias 0\n");
    assert_int_equal(c->n_listeners, 3);
    assert_string_equal(c->listeners[0].host, "127.0.0.1");
    assert_int_equal(c->listeners[1].port, 0);
    assert_string_equal(c->listeners[1].unix_path, "/run/m.sock");
    assert_null(c->listeners[2].host);
    assert_string_equal(c->listeners[2].mount_point, "pre/");
    assert_int_equal(c->listeners[2].protocol, MQO_MOSQCONF_WEBSOCKETS);
    assert_int_equal(c->listeners[2].socket_domain, 4);
    assert_int_equal(c->listeners[2].use_username_as_clientid, 1);
    assert_int_equal(c->listeners[2].max_topic_alias, 0);
    assert_int_equal(c->listeners[0].max_topic_alias, 10);
    mqo_mosqconf_free(c);
    load_fails_line("listener 0\n", 1);
    load_fails_line("listener 70000\n", 1);
    load_fails_line("listener -1\n", 1);
    load_fails_line("listener\n", 1);
    load_fails_line("mount_point a/\n", 1); /* before any listener */
    load_fails_line("listener 1883\nmount_point a/+\n", 2);
    load_fails_line("listener 1883\nmount_point a/#\n", 2);
    load_fails_line("listener 1883\nmount_point a/\nmount_point b/\n", 3);
    load_fails_line("listener 1883\nprotocol mqttsn\n", 2);
    c = load_ok("listener 1883\nprotocol\n"); /* empty: the broker logs and goes on */
    assert_true(has_note(c->notes, c->n_notes, "empty protocol"));
    mqo_mosqconf_free(c);
    load_fails_line("listener 1883\nsocket_domain ipv5\n", 2);
    load_fails_line("listener 1883\nsocket_domain\n", 2);
    load_fails_line("listener 1883\nmax_qos 3\n", 2);
    load_fails_line("listener 1883\nmaximum_qos -1\n", 2);
    load_fails_line("listener 1883\nmax_topic_alias 65536\n", 2);
    load_fails_line("listener 1883\nmax_topic_alias\n", 2);
    c = load_ok("listener 1883\nmax_connections -7\nlistener 1884\nmax_connections\n");
    assert_int_equal(c->listeners[0].max_connections, -1);
    mqo_mosqconf_free(c);
    /* TLS */
    c = load_ok("listener 8883\ncafile /ca\ncapath /cap\ncertfile /c\nkeyfile /k\n"
                "require_certificate true\nuse_identity_as_username true\nciphers X\n"
                "ciphers_tls1.3 Y\ncrlfile /crl\ndhparamfile /dh\ntls_version tlsv1.3\n"
                "tls_engine e\ntls_keyform engine\n"
                "tls_engine_kpass_sha1 0123456789abcdef0123456789abcdef01234567\n"
                "listener 8884\npsk_hint hint\n");
    assert_string_equal(c->listeners[0].certfile, "/c");
    assert_int_equal(c->listeners[0].require_certificate, 1);
    assert_int_equal(c->listeners[0].tls_keyform_engine, 1);
    assert_int_equal(c->listeners[0].tls_engine_kpass_sha1, 1);
    assert_string_equal(c->listeners[1].psk_hint, "hint");
    mqo_mosqconf_free(c);
    load_fails_line("listener 8883\npsk_hint h\ncafile /ca\n", 3);
    load_fails_line("listener 8883\npsk_hint h\ncertfile /c\n", 3);
    accepted("listener 8883\ncafile /ca\npsk_hint h\n"); /* the broker checks one order only */
    load_fails_line("listener 8883\ntls_engine_kpass_sha1 0123\n", 2);
    load_fails_line("listener 8883\ntls_engine_kpass_sha1 xyz\n", 2);
    accepted("listener 8883\ntls_engine_kpass_sha1 00000000000000000000000000000000000000ff\n");
    /* the broker's temporary for it is never reset within a file: a second one is refused */
    load_fails_line("listener 8883\ntls_engine_kpass_sha1 0123456789abcdef0123456789abcdef01234567\n"
                    "listener 8884\ntls_engine_kpass_sha1 0123456789abcdef0123456789abcdef01234567\n",
                    4);
}

static void test_security_options(void **state)
{
    struct mqo_mosqconf *c = load_ok("listener 1883\nacl_file /acl\npassword_file /pw\n"
                                     "psk_file /psk\nallow_anonymous true\n"
                                     "allow_zero_length_clientid false\nauto_id_prefix id-\n"
                                     "listener 1884\n");
    /* without per_listener_settings everything is global, whatever listener came before */
    assert_string_equal(c->sec.acl_file, "/acl");
    assert_string_equal(c->sec.password_file, "/pw");
    assert_string_equal(c->sec.psk_file, "/psk");
    assert_int_equal(c->sec.allow_anonymous, 1);
    assert_int_equal(c->sec.allow_zero_length_clientid, 0);
    assert_string_equal(c->sec.auto_id_prefix, "id-");
    assert_null(c->listeners[0].sec.acl_file);
    mqo_mosqconf_free(c);

    c = load_ok("per_listener_settings true\nlistener 1883\nacl_file /a1\nallow_anonymous true\n"
                "listener 1884\nacl_file /a2\npassword_file /pw2\n");
    assert_int_equal(c->per_listener_settings, 1);
    assert_null(c->sec.acl_file);
    assert_string_equal(c->listeners[0].sec.acl_file, "/a1");
    assert_string_equal(c->listeners[1].sec.acl_file, "/a2");
    assert_int_equal(c->listeners[0].sec.allow_anonymous, 1);
    assert_int_equal(c->listeners[1].sec.allow_anonymous, 0);
    assert_string_equal(c->listeners[1].sec.auto_id_prefix, "auto-");
    mqo_mosqconf_free(c);

    load_fails_line("acl_file /a\nper_listener_settings true\n", 2);
    load_fails_line("check_retain_source true\nper_listener_settings true\n", 2);
    accepted("acl_file /a\nper_listener_settings false\n");
    /* with per_listener_settings, security options before any listener go to the default
     * listener; acl_file alone does not open it, so it applies nowhere */
    c = load_ok("per_listener_settings true\nacl_file /lost\nlistener 1883\n");
    assert_int_equal(c->n_listeners, 1);
    assert_null(c->listeners[0].sec.acl_file);
    mqo_mosqconf_free(c);
    /* password_file does open it, with that acl_file, and its allow_anonymous stays unset,
     * which the broker treats as true */
    c = load_ok("per_listener_settings true\nacl_file /d\npassword_file /p\nlistener 1884\n");
    assert_int_equal(c->n_listeners, 2);
    assert_int_equal(c->listeners[1].origin, MQO_MOSQCONF_DEFAULT);
    assert_int_equal(c->listeners[1].port, 1883);
    assert_string_equal(c->listeners[1].sec.acl_file, "/d");
    assert_int_equal(c->listeners[1].sec.allow_anonymous, 1);
    assert_int_equal(c->listeners[0].sec.allow_anonymous, 0);
    mqo_mosqconf_free(c);
    c = load_ok("per_listener_settings true\nport 1884\n");
    assert_int_equal(c->listeners[0].sec.allow_anonymous, 1);
    mqo_mosqconf_free(c);
    c = load_ok("per_listener_settings true\nport 1884\nallow_anonymous false\n");
    assert_int_equal(c->listeners[0].sec.allow_anonymous, 0);
    mqo_mosqconf_free(c);
    /* local only with per_listener_settings: the broker's own listeners allow anonymous and
     * have no prefix for generated client ids */
    c = load_ok("per_listener_settings true\n");
    assert_int_equal(c->n_listeners, 2);
    assert_int_equal(c->listeners[0].sec.allow_anonymous, 1);
    assert_null(c->listeners[0].sec.auto_id_prefix);
    mqo_mosqconf_free(c);
}

static void test_plugins(void **state)
{
    struct mqo_mosqconf *c =
        load_ok("plugin /usr/lib/mosquitto_dynamic_security.so\n"
                "plugin_opt_config_file /var/lib/dynsec.json\n"
                "auth_plugin /p2.so\nauth_opt_key   value with  spaces  \n"
                "auth_plugin_deny_special_chars false\n");
    assert_int_equal(c->sec.n_plugins, 2);
    assert_string_equal(c->sec.plugins[0].path, "/usr/lib/mosquitto_dynamic_security.so");
    assert_int_equal(c->sec.plugins[0].n_opts, 1);
    assert_string_equal(c->sec.plugins[0].opts[0].key, "config_file");
    assert_string_equal(c->sec.plugins[0].opts[0].value, "/var/lib/dynsec.json");
    assert_int_equal(c->sec.plugins[0].deny_special_chars, 1);
    assert_string_equal(c->sec.plugins[1].opts[0].value, "value with  spaces  ");
    assert_int_equal(c->sec.plugins[1].deny_special_chars, 0);
    mqo_mosqconf_free(c);
    load_fails("plugin_opt_abc x\n", "m.conf:1: An auth_opt_ option exists");
    load_fails_line("plugin /p\nauth_opt_ab x\n", 2); /* keys of fewer than 3 bytes */
    load_fails_line("plugin /p\nplugin_opt_abc   \n", 2);
    load_fails_line("auth_plugin_deny_special_chars true\n", 1);
    load_fails_line("plugin\n", 1);
}

static void test_limits_and_global_options(void **state)
{
    struct mqo_mosqconf *c =
        load_ok("message_size_limit 1000\nmax_packet_size 20\nmax_inflight_messages 65535\n"
                "max_inflight_bytes -3\nmax_queued_messages -1\nmax_queued_bytes 4096\n"
                "max_keepalive 10\nupgrade_outgoing_qos true\nretain_available false\n"
                "allow_duplicate_messages true\nqueue_qos0_messages 1\nmemory_limit 1000000\n"
                "persistent_client_expiration 2d\nsys_interval 0\nclientid_prefixes cl-\n"
                "persistence true\npersistence_file m.db\npersistence_location /var/lib/m/\n"
                "autosave_interval -5\nlog_dest file /var/log/m.log\nlog_dest stderr\n"
                "log_type all\nlog_facility 7\nretry_interval 20\nwebsockets_headers_size 1024\n");
    assert_int_equal(c->message_size_limit, 1000);
    assert_int_equal(c->max_packet_size, 20);
    assert_int_equal(c->max_inflight_messages, 0);
    assert_int_equal(c->max_inflight_bytes, 0);
    assert_int_equal(c->max_queued_messages, 0);
    assert_int_equal(c->max_queued_bytes, 4096);
    assert_int_equal(c->max_keepalive, 10);
    assert_int_equal(c->upgrade_outgoing_qos, 1);
    assert_int_equal(c->retain_available, 0);
    assert_int_equal(c->allow_duplicate_messages, 1);
    assert_int_equal(c->memory_limit, 1000000);
    assert_int_equal(c->persistent_client_expiration, 2 * 86400);
    assert_int_equal(c->autosave_interval, 0);
    assert_string_equal(c->log_file, "/var/log/m.log");
    assert_true(has_note(c->notes, c->n_notes, "retry_interval"));
    mqo_mosqconf_free(c);
    c = load_ok("max_inflight_messages -4\n");
    assert_int_equal(c->max_inflight_messages, 0);
    mqo_mosqconf_free(c);
    load_fails_line("message_size_limit 268435456\n", 1);
    load_fails_line("message_size_limit -1\n", 1);
    accepted("message_size_limit 268435455\n");
    load_fails_line("max_packet_size 19\n", 1);
    load_fails_line("max_packet_size x\n", 1);
    load_fails_line("max_inflight_messages 65536\n", 1);
    load_fails_line("max_keepalive 9\n", 1);
    load_fails_line("max_keepalive 65536\n", 1);
    load_fails_line("memory_limit -1\n", 1);
    load_fails_line("sys_interval 65536\n", 1);
    load_fails_line("persistent_client_expiration 5\n", 1);
    load_fails_line("persistent_client_expiration 0h\n", 1);
    load_fails_line("persistent_client_expiration -1d\n", 1);
    accepted("persistent_client_expiration\n"); /* logged, ignored */
    load_fails_line("log_dest file /a\nlog_dest file /b\n", 2);
    load_fails_line("log_dest file\n", 1);
    load_fails_line("log_dest nowhere\n", 1);
    load_fails_line("log_dest\n", 1);
    load_fails_line("log_type everything\n", 1);
    accepted("log_type\nlog_type websockets\n");
    load_fails_line("log_facility 8\n", 1);
    load_fails_line("websockets_headers_size 65536\n", 1);
    load_fails_line("persistence_file a\npersistence_file b\n", 2);
    load_fails_line("pid_file\n", 1);
}

/* include_dir: which files, in what order, with what state */
static void test_include_dir_memfs(void **state)
{
    fs_reset();
    fs_add("m.conf", "listener 1000\ninclude_dir d\nlistener 2000\n");
    fs_dir("d");
    fs_add("d/b.conf", "listener 6\n");
    fs_add("d/A.conf", "listener 3\n");
    fs_add("d/01.conf", "listener 2\n");
    fs_add("d/a.conf", "listener 4\n");
    fs_add("d/B.conf", "listener 5\n");
    fs_add("d/00.conf", "listener 1\n");
    fs_add("d/.conf", "bogus\n");         /* 5 bytes: not taken */
    fs_add("d/x.conf.bak", "bogus\n");
    fs_add("d/notes.txt", "bogus\n");
    struct mqo_mosqconf *c = load_fs_ok();
    assert_int_equal(c->n_listeners, 8);
    static const uint16_t want[] = {1000, 1, 2, 3, 4, 5, 6, 2000};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(c->listeners[i].port, want[i]);
    assert_int_equal(c->n_files, 7);
    assert_string_equal(c->files[1], "d/00.conf");
    assert_string_equal(c->listeners[3].at.file, "d/A.conf");
    mqo_mosqconf_free(c);

    /* an error in an included file: its file and line, and the include_dir line */
    fs_reset();
    fs_add("m.conf", "# main\ninclude_dir d\n");
    fs_dir("d");
    fs_add("d/a.conf", "listener 1\n\nmax_qos 7\n");
    load_fs_fails("d/a.conf:3: Invalid max_qos value (7). (included from m.conf:2)");
    /* a directory named *.conf */
    fs_reset();
    fs_add("m.conf", "include_dir d\n");
    fs_dir("d");
    fs_dir("d/sub.conf");
    load_fs_fails("m.conf:1: Config file d/sub.conf is a directory.");
    /* missing directory; the value is not trimmed */
    fs_reset();
    fs_add("m.conf", "include_dir nowhere\n");
    load_fs_fails("m.conf:1: Unable to open include_dir 'nowhere'.");
    fs_reset();
    fs_add("m.conf", "include_dir d \n");
    fs_dir("d");
    load_fs_fails("m.conf:1: Unable to open include_dir 'd '.");
    load_fails_line("include_dir\n", 1);
    /* include_dir in an included file is ignored */
    fs_reset();
    fs_add("m.conf", "include_dir d\n");
    fs_dir("d");
    fs_add("d/a.conf", "include_dir nowhere\nlistener 1\n");
    c = load_fs_ok();
    assert_true(has_note(c->notes, c->n_notes, "ignores it"));
    mqo_mosqconf_free(c);
    /* each file starts at the default listener, with no bridge and no plugin */
    fs_reset();
    fs_add("m.conf", "listener 1884\ninclude_dir d\n");
    fs_dir("d");
    fs_add("d/a.conf", "mount_point x/\n");
    c = load_fs_ok();
    assert_int_equal(c->n_listeners, 2); /* the mount point opened the default listener */
    assert_null(c->listeners[0].mount_point);
    assert_string_equal(c->listeners[1].mount_point, "x/");
    assert_int_equal(c->listeners[1].port, 1883);
    mqo_mosqconf_free(c);
    fs_reset();
    fs_add("m.conf", "connection b\naddress 127.0.0.1\ntopic a\ninclude_dir d\n");
    fs_dir("d");
    fs_add("d/a.conf", "topic b\n");
    load_fs_fails("d/a.conf:1: Invalid bridge configuration.");
    fs_reset();
    fs_add("m.conf", "plugin /p\ninclude_dir d\n");
    fs_dir("d");
    fs_add("d/a.conf", "plugin_opt_key v\n");
    load_fs_fails("d/a.conf:1: An auth_opt_ option exists");
    /* the main file keeps its current listener after include_dir (noted: the broker's pointer
     * may have moved) */
    fs_reset();
    fs_add("m.conf", "listener 1884\ninclude_dir d\nmax_qos 1\n");
    fs_dir("d");
    fs_add("d/a.conf", "listener 1885\n");
    c = load_fs_ok();
    assert_int_equal(c->listeners[0].max_qos, 1);
    assert_int_equal(c->listeners[1].max_qos, 2);
    assert_true(has_note(c->notes, c->n_notes, "pointer"));
    mqo_mosqconf_free(c);
}

static void test_include_dir_files(void **state)
{
    char dir[] = "/tmp/mqo-conf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[256], main_path[256];
    snprintf(p, sizeof p, "%s/inc", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    static const char *const names[] = {"b.conf", "B.conf", "a.conf", "A.conf", "skip.txt"};
    static const char *const texts[] = {"listener 4\n", "listener 3\n", "listener 2\n",
                                        "listener 1\n", "bogus\n"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/inc/%s", dir, names[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(texts[i], f);
        fclose(f);
    }
    snprintf(main_path, sizeof main_path, "%s/m.conf", dir);
    FILE *f = fopen(main_path, "w");
    assert_non_null(f);
    fprintf(f, "per_listener_settings true\ninclude_dir %s/inc\n", dir);
    fclose(f);
    struct mqo_mosqconf *c = NULL;
    int rc = mqo_mosqconf_load(main_path, NULL, &c, err, sizeof err);
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(c->n_listeners, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(c->listeners[i].port, i + 1);
    mqo_mosqconf_free(c);
    /* an error in one of them */
    snprintf(p, sizeof p, "%s/inc/B.conf", dir);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs("\nmax_keepalive 5\n", f);
    fclose(f);
    rc = mqo_mosqconf_load(main_path, NULL, &c, err, sizeof err);
    assert_int_equal(rc, -EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "/inc/B.conf:2: Invalid max_keepalive value (5)."));
    assert_non_null(strstr(err, "m.conf:2)"));
    /* the main file missing, or a directory */
    snprintf(p, sizeof p, "%s/none.conf", dir);
    assert_int_equal(mqo_mosqconf_load(p, NULL, &c, err, sizeof err), -ENOENT);
    assert_null(c);
    snprintf(p, sizeof p, "%s/inc", dir);
    assert_int_equal(mqo_mosqconf_load(p, NULL, &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "is a directory"));
    for (size_t i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/inc/%s", dir, names[i]);
        unlink(p);
    }
    unlink(main_path);
    snprintf(p, sizeof p, "%s/inc", dir);
    rmdir(p);
    rmdir(dir);
}

static void test_bridges(void **state)
{
    struct mqo_mosqconf *c =
        load_ok("connection up\naddress 127.0.0.1:1884 [::1]:1885 broker.example\n"
                "topic sensors/# out 1 local/ remote/\ntopic cmd/+ IN 2\n"
                "topic \"\" Both 0 loc/x rem/y\ntopic all/# both 1 \"\" r/\n"
                "topic q out 256\ntopic z out #comment: QoS 0\n"
                "remote_clientid rc\nbridge_protocol_version mqttv50\nstart_type lazy\n"
                "restart_timeout 10 60\nkeepalive_interval 2\nidle_timeout 0\n"
                "connection second\naddress 127.0.0.2\ntopic # out\nlocal_clientid lc\n");
    assert_int_equal(c->n_bridges, 2);
    struct mqo_mosqconf_bridge *b = &c->bridges[0];
    assert_string_equal(b->name, "up");
    assert_int_equal(b->n_addresses, 3);
    assert_string_equal(b->addresses[0].host, "127.0.0.1");
    assert_int_equal(b->addresses[0].port, 1884);
    assert_string_equal(b->addresses[1].host, "[::1]");
    assert_int_equal(b->addresses[2].port, 1883);
    assert_int_equal(b->n_topics, 6);
    assert_int_equal(b->topics[5].qos, 0);
    assert_int_equal(b->topics[0].dir, MQO_MOSQCONF_OUT);
    assert_int_equal(b->topics[0].qos, 1);
    assert_string_equal(b->topics[0].local_topic, "local/sensors/#");
    assert_string_equal(b->topics[0].remote_topic, "remote/sensors/#");
    assert_int_equal(b->topics[1].dir, MQO_MOSQCONF_IN);
    assert_string_equal(b->topics[1].local_topic, "cmd/+");
    assert_null(b->topics[2].pattern);
    assert_int_equal(b->topics[2].dir, MQO_MOSQCONF_BOTH);
    assert_string_equal(b->topics[2].local_topic, "loc/x");
    assert_string_equal(b->topics[2].remote_topic, "rem/y");
    assert_null(b->topics[3].local_prefix);
    assert_string_equal(b->topics[3].local_topic, "all/#");
    assert_string_equal(b->topics[3].remote_topic, "r/all/#");
    assert_int_equal(b->topics[4].qos, 0); /* 256 wraps to 0 in a byte */
    assert_int_equal(b->protocol_version, 5);
    assert_int_equal(b->start_type, 1);
    assert_int_equal(b->backoff_cap, 60);
    assert_int_equal(b->keepalive, 5);
    assert_int_equal(b->idle_timeout, 1);
    assert_string_equal(b->local_clientid, "local.rc");
    assert_string_equal(c->bridges[1].remote_clientid, "host.second");
    assert_string_equal(c->bridges[1].local_clientid, "lc");
    mqo_mosqconf_free(c);

    load_fails("connection b\naddress 127.0.0.1\n", "m.conf:1: Invalid bridge configuration: no topics");
    load_fails("listener 1\nconnection b\ntopic a\n", "m.conf:2: Invalid bridge configuration: no remote");
    load_fails_line("address 127.0.0.1\n", 1);
    load_fails_line("topic a\n", 1);
    load_fails_line("remote_clientid x\n", 1);
    load_fails_line("connection\n", 1);
    load_fails_line("connection b\naddress h:0\n", 2);
    load_fails_line("connection b\naddress h\naddress h2\n", 3);
    load_fails_line("connection b\naddress # none\n", 2);
    load_fails_line("connection b\naddress h\ntopic a\nconnection b\n", 4);
    load_fails_line("connection b\naddress h\ntopic\n", 3);
    load_fails_line("connection b\naddress h\ntopic a sideways\n", 3);
    load_fails_line("connection b\naddress h\ntopic a out 3\n", 3);
    load_fails_line("connection b\naddress h\ntopic a out -1\n", 3);
    load_fails_line("connection b\naddress h\ntopic \"\" out 0\n", 3);
    load_fails_line("connection b\naddress h\ntopic \"\" out 0 a/ \"\"\n", 3);
    load_fails_line("connection b\naddress h\ntopic a out 0 a/+ \"\"\n", 3);
    load_fails_line("connection b\naddress h\ntopic a# out 0 pre/ r/\n", 3);
    load_fails_line("connection b\naddress h\ntopic a out 0 x/ r/#\n", 3);
    accepted("connection b\naddress h\ntopic a# out 0\n"); /* no prefix: the pattern is not checked */
    load_fails_line("connection b\naddress h\ntopic a\nstart_type manual\n", 4);
    load_fails_line("connection b\naddress h\ntopic a\nstart_type\n", 4);
    load_fails_line("connection b\naddress h\ntopic a\nrestart_timeout 10 5\n", 4);
    load_fails_line("connection b\naddress h\ntopic a\nkeepalive_interval 65536\n", 4);
    load_fails_line("connection b\naddress h\ntopic a\nbridge_protocol_version mqttv311 \n", 4);
    load_fails_line("connection b\naddress h\ntopic a\nbridge_protocol_version\n", 4);
    load_fails_line("connection b\naddress h\ntopic a\nbridge_cafile /ca\nbridge_psk 00\n", 5);
    load_fails_line("connection b\naddress h\ntopic a\nbridge_identity id\nbridge_certfile /c\n", 5);
    load_fails("connection b\naddress h\ntopic a\nbridge_psk 0102\n",
               "m.conf:1: Invalid bridge configuration: missing bridge_identity");
    load_fails("connection b\naddress h\ntopic a\nbridge_identity i\n",
               "m.conf:1: Invalid bridge configuration: missing bridge_psk");
    accepted("connection b\naddress h\ntopic a\nbridge_identity i\nbridge_psk 0102\n");
    load_fails("connection b\naddress h\ntopic a\nconnection c\naddress h\ntopic a\n"
               "local_clientid local.host.b\n",
               "m.conf:4: Bridge local_clientid 'local.host.b' is not unique");
    load_fails_line("connection b\naddress h\ntopic a\nremote_clientid x\nclientid y\n", 5);
}

/* ---- evaluation ---- */

static void test_evaluate_choice(void **state)
{
    struct mqo_mosqconf *c = load_ok("listener 1883 127.0.0.1\nlistener 1883 ::1\n"
                                     "listener 1884\nsocket_domain ipv4\nlistener 1885 0.0.0.0\n"
                                     "listener 1886 localhost\nlistener 1887 broker.example\n"
                                     "listener 0 /run/s\nlistener 1888\nlistener 1888 127.0.0.2\n");
    struct mqo_mosqpolicy *p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->index, 0);
    assert_int_equal(p->all_addresses, 0);
    assert_int_equal(p->n_others, c->n_listeners - 1);
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "::1", 1883);
    assert_int_equal(p->index, 1);
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "198.18.0.2", 1884);
    assert_int_equal(p->index, 2);
    assert_int_equal(p->all_addresses, 1);
    mqo_mosqpolicy_free(p);
    struct mqo_mosqpolicy *none = NULL;
    assert_int_equal(mqo_mosqconf_evaluate(c, "::1", 1884, &none, err, sizeof err), -ENOENT);
    assert_null(none);
    assert_non_null(strstr(err, "1884 (all addresses)"));
    assert_int_equal(mqo_mosqconf_evaluate(c, "127.0.0.2", 1883, &none, err, sizeof err), -ENOENT);
    p = eval_ok(c, "198.18.0.9", 1885);
    assert_int_equal(p->index, 3);
    mqo_mosqpolicy_free(p);
    assert_int_equal(mqo_mosqconf_evaluate(c, "::1", 1885, &none, err, sizeof err), -ENOENT);
    p = eval_ok(c, "127.0.0.1", 1886);
    assert_int_equal(p->index, 4);
    mqo_mosqpolicy_free(p);
    assert_int_equal(mqo_mosqconf_evaluate(c, "127.0.0.2", 1886, &none, err, sizeof err), -ENOENT);
    p = eval_ok(c, "198.18.0.2", 1887); /* the only one on that port, bound to a name */
    assert_int_equal(p->index, 5);
    assert_true(has_note(p->findings, p->n_findings, "does not resolve"));
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.2", 1888); /* the exact address wins over every address */
    assert_int_equal(p->index, 8);
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.3", 1888);
    assert_int_equal(p->index, 7);
    mqo_mosqpolicy_free(p);
    assert_int_equal(mqo_mosqconf_evaluate(c, "broker.example", 1887, &none, err, sizeof err),
                     -EINVAL);
    mqo_mosqconf_free(c);

    c = load_ok("");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->listener->origin, MQO_MOSQCONF_LOCAL_ONLY);
    assert_int_equal(p->allow_anonymous, 1);
    assert_int_equal(p->n_others, 1);
    assert_string_equal(p->others[0]->host, "::1");
    assert_int_equal(p->offload, 1);
    mqo_mosqpolicy_free(p);
    assert_int_equal(mqo_mosqconf_evaluate(c, "198.18.0.2", 1883, &none, err, sizeof err), -ENOENT);
    mqo_mosqconf_free(c);
}

static void test_evaluate_cannot_offload(void **state)
{
    struct mqo_mosqconf *c =
        load_ok("listener 1883\nlistener 8080\nprotocol websockets\nlistener 8883\n"
                "certfile /c\nkeyfile /k\nlistener 8884\npsk_hint h\nlistener 8885\n"
                "certfile /c\ncafile /ca\n");
    struct mqo_mosqpolicy *p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->offload, 1);
    assert_int_equal(p->n_others, 4);
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.1", 8080);
    assert_int_equal(p->offload, 0);
    assert_true(has_note(p->findings, p->n_findings, "websockets"));
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.1", 8883);
    assert_int_equal(p->offload, 0);
    assert_int_equal(p->tls, 1);
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.1", 8884);
    assert_int_equal(p->offload, 0);
    assert_true(has_note(p->findings, p->n_findings, "psk_hint"));
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.1", 8885); /* certfile without keyfile: plain MQTT */
    assert_int_equal(p->offload, 1);
    assert_int_equal(p->tls, 0);
    assert_true(has_note(p->findings, p->n_findings, "plain MQTT"));
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);

    /* a plugin: globally, everything; per listener, the clients of that listener */
    c = load_ok("listener 1883\nplugin /dynsec.so\n");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->offload, 0);
    assert_int_equal(p->n_plugins, 1);
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
    c = load_ok("per_listener_settings true\nlistener 1883\nlistener 1884\nplugin /dynsec.so\n");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->offload, 1);
    assert_true(has_note(p->findings, p->n_findings, "clients of listener 1884"));
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.1", 1884);
    assert_int_equal(p->offload, 0);
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
}

static void test_evaluate_authorization_and_limits(void **state)
{
    struct mqo_mosqconf *c =
        load_ok("per_listener_settings true\nlistener 1883\nacl_file /a1\npassword_file /p1\n"
                "allow_anonymous true\nauto_id_prefix x-\nuse_username_as_clientid true\n"
                "max_qos 1\nmax_topic_alias 3\nlistener 1884\nacl_file rel/acl\n"
                "allow_zero_length_clientid false\nmessage_size_limit 100\nmax_packet_size 200\n"
                "retain_available false\nmax_inflight_messages 5\nupgrade_outgoing_qos true\n"
                "max_queued_messages 9\nmax_keepalive 30\n");
    struct mqo_mosqpolicy *p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->per_listener_settings, 1);
    assert_string_equal(p->acl_file, "/a1");
    assert_int_equal(p->acl_at.line, 3);
    assert_string_equal(p->password_file, "/p1");
    assert_int_equal(p->allow_anonymous, 1);
    assert_string_equal(p->auto_id_prefix, "x-");
    assert_int_equal(p->use_username_as_clientid, 1);
    assert_int_equal(p->max_qos, 1);
    assert_int_equal(p->max_topic_alias, 3);
    assert_int_equal(p->message_size_limit, 100);
    assert_int_equal(p->max_packet_size, 200);
    assert_int_equal(p->retain_available, 0);
    assert_int_equal(p->max_inflight_messages, 5);
    assert_int_equal(p->upgrade_outgoing_qos, 1);
    assert_int_equal(p->max_queued_messages, 9);
    assert_int_equal(p->max_keepalive, 30);
    assert_true(has_note(p->findings, p->n_findings, "upgrade_outgoing_qos"));
    mqo_mosqpolicy_free(p);
    p = eval_ok(c, "127.0.0.1", 1884);
    assert_string_equal(p->acl_file, "rel/acl");
    assert_null(p->password_file);
    assert_int_equal(p->allow_anonymous, 0);
    assert_int_equal(p->allow_zero_length_clientid, 0);
    assert_string_equal(p->auto_id_prefix, "auto-");
    assert_true(has_note(p->findings, p->n_findings, "relative"));
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
    /* global settings ignore the listener order */
    c = load_ok("listener 1883\nlistener 1884\nacl_file /g\n");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_string_equal(p->acl_file, "/g");
    assert_int_equal(p->allow_anonymous, 0);
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
}

static void test_evaluate_bridges(void **state)
{
    static const char conf[] =
        "listener 1883\nlistener 1884\nmount_point mp/\nlistener 1885\nmount_point mp\n"
        "connection b\naddress 127.0.0.1:2000\n"
        "topic sensors/# out 1 mp/ r/\n"  /* local mp/sensors/# */
        "topic cmd/# in 1\n"              /* in: not broker-only */
        "topic +/status both\n"           /* local +/status */
        "topic a+b/c out\n"               /* a literal level: widened to +/c */
        "topic x/#/y out\n"               /* '#' not last: widened to x/# */
        "topic $share/g/shared/# out\n"  /* a shared subscription of shared/# */
        "topic \"\" out 0 mpx/only rem/\n";
    struct mqo_mosqconf *c = load_ok(conf);
    /* no mount point */
    struct mqo_mosqpolicy *p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->n_broker_only, 6);
    assert_string_equal(p->broker_only[0], "mp/sensors/#");
    assert_string_equal(p->broker_only[1], "+/status");
    assert_string_equal(p->broker_only[2], "+/c");
    assert_string_equal(p->broker_only[3], "x/#");
    assert_string_equal(p->broker_only[4], "shared/#");
    assert_string_equal(p->broker_only[5], "mpx/only");
    assert_int_equal(p->broker_only_from[0]->at.line, 8);
    assert_true(bo(p, "mp/sensors/t"));
    assert_true(bo(p, "dev/status"));
    assert_false(bo(p, "cmd/x"));
    assert_true(bo(p, "x/q/r"));
    assert_true(bo(p, "shared/1"));
    assert_false(bo(p, "sensors/t"));
    assert_true(has_note(p->findings, p->n_findings, "a+b/c"));
    mqo_mosqpolicy_free(p);
    /* mount point "mp/": clients write "sensors/t" for mp/sensors/t */
    p = eval_ok(c, "127.0.0.1", 1884);
    assert_int_equal(p->n_broker_only, 3);
    assert_string_equal(p->broker_only[0], "sensors/#");
    assert_string_equal(p->broker_only[1], "status"); /* +/status with + = "mp" */
    assert_string_equal(p->broker_only[2], "c");
    assert_true(bo(p, "sensors/t"));
    assert_true(bo(p, "status"));
    assert_false(bo(p, "x/status"));
    assert_false(bo(p, "shared/1"));
    assert_int_equal(p->mount_glued, 0);
    mqo_mosqpolicy_free(p);
    /* mount point "mp" glued to the first level: "mp" + "x/only" is mpx/only */
    p = eval_ok(c, "127.0.0.1", 1885);
    assert_int_equal(p->mount_glued, 1);
    assert_int_equal(p->n_broker_only, 4);
    assert_string_equal(p->broker_only[0], "/sensors/#");
    assert_string_equal(p->broker_only[1], "+/status"); /* "mp" + anything as the first level */
    assert_string_equal(p->broker_only[2], "+/c");
    assert_string_equal(p->broker_only[3], "x/only");
    assert_true(bo(p, "/sensors/a"));
    assert_true(bo(p, "x/only"));
    assert_true(bo(p, "q/status"));
    assert_false(bo(p, "x/status/z"));
    assert_true(has_note(p->findings, p->n_findings, "does not end in '/'"));
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);

    /* filters a whole mount point level covers */
    c = load_ok("listener 1883\nmount_point a/b/\nconnection b\naddress h\ntopic # out\n"
                "topic a/+/c out\ntopic +/b/# out\ntopic a/c/# out\ntopic a/b out\n");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->n_broker_only, 2);
    assert_string_equal(p->broker_only[0], "#");
    assert_string_equal(p->broker_only[1], "c");
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
    /* what is left under the mount point starts with '$': only '$' topics, left out */
    c = load_ok("listener 1883\nmount_point a/b/\nconnection b\naddress h\n"
                "topic +/b/$share/x out\ntopic a/b/$SYS/# out\ntopic a/b/c out\n");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->n_broker_only, 1);
    assert_string_equal(p->broker_only[0], "c");
    assert_int_equal(p->n_broker_filters, 3);
    assert_true(has_note(p->findings, p->n_findings, "only concerns topics starting with '$'"));
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
    /* a '$' mount point: a leading wildcard never matches it */
    c = load_ok("listener 1883\nmount_point $m/\nconnection b\naddress h\ntopic # out\n"
                "topic $m/x out\n");
    p = eval_ok(c, "127.0.0.1", 1883);
    assert_int_equal(p->n_broker_only, 1);
    assert_string_equal(p->broker_only[0], "x");
    assert_false(bo(p, "y"));
    assert_true(bo(p, "x"));
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
}

static void test_describe(void **state)
{
    struct mqo_mosqconf *c = load_ok("listener 1883\nplugin /p.so\nconnection b\naddress h\n"
                                     "topic t/# out\n");
    struct mqo_mosqpolicy *p = eval_ok(c, "127.0.0.1", 1883);
    size_t n = mqo_mosqpolicy_describe(p, NULL, 0);
    assert_true(n > 100);
    char *b = malloc(n + 1);
    assert_non_null(b);
    assert_int_equal(mqo_mosqpolicy_describe(p, b, n + 1), n);
    assert_int_equal(strlen(b), n);
    assert_non_null(strstr(b, "offload: NO"));
    assert_non_null(strstr(b, "  t/#  (m.conf:5)"));
    assert_non_null(strstr(b, "ALL  m.conf:2: plugin /p.so"));
    char small[16];
    assert_int_equal(mqo_mosqpolicy_describe(p, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    free(b);
    mqo_mosqpolicy_free(p);
    mqo_mosqconf_free(c);
}

static int teardown(void **state)
{
    fs_reset();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_local_only),
        cmocka_unit_test(test_words_and_comments),
        cmocka_unit_test(test_string_values),
        cmocka_unit_test(test_line_buffer_quirks),
        cmocka_unit_test(test_default_listener),
        cmocka_unit_test(test_listener_options),
        cmocka_unit_test(test_security_options),
        cmocka_unit_test(test_plugins),
        cmocka_unit_test(test_limits_and_global_options),
        cmocka_unit_test(test_include_dir_memfs),
        cmocka_unit_test(test_include_dir_files),
        cmocka_unit_test(test_bridges),
        cmocka_unit_test(test_evaluate_choice),
        cmocka_unit_test(test_evaluate_cannot_offload),
        cmocka_unit_test(test_evaluate_authorization_and_limits),
        cmocka_unit_test(test_evaluate_bridges),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
