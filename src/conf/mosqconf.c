/* conf/: mosquitto.conf read as Mosquitto 2.0.11 reads it (Debian 12's broker: bridges, TLS,
 * TLS-PSK, websockets and unix sockets built in), reimplemented from its behaviour.
 *
 * Reading (config__read_file_core() and fgets_extending() in the broker):
 *  1. Lines are read with a 1000-byte buffer that grows by 1000 while a line does not end in
 *     '\n'; the reader here reproduces that buffer byte for byte (struct rd), because the
 *     broker's quirks depend on it:
 *     - a last line without '\n' whose length is 999 + k * 1000 (for the buffer size then) is
 *       never processed;
 *     - a NUL byte makes the broker think the line never ends: it swallows the rest of the
 *       file into that line, which is processed (up to the NUL) only when the file does not
 *       end in '\n';
 *     - auth_opt_* / plugin_opt_* / "log_dest file" read their value from the bytes after
 *       the option name's terminator, which for a line that ends there are stale buffer
 *       bytes (usually the NUL that replaced the '\n').
 *  2. A line whose first byte is '#', '\n' or '\r' is skipped; otherwise trailing '\n' and
 *     '\r' are removed and the line is split on spaces only (a tab is part of a word, so
 *     "port\t1883" is the unknown option "port\t1883"; "  # x" is the unknown option "#").
 *  3. The first word is the option. An unknown option is an error and the broker refuses to
 *     start. A value is, per option, the next word (integers with atoi(): "12abc" is 12,
 *     "abc" is 0, further words ignored), a boolean ("true"/"1"/"false"/"0" exactly), or a
 *     string: the rest of the line, blanks trimmed, non-empty, valid UTF-8 without control
 *     characters, at most 65535 bytes, set once ("Duplicate ... value" otherwise). A
 *     comment after a string value is part of it.
 *  4. include_dir DIR (main file only; in an included file it is ignored): every entry whose
 *     name is longer than 5 bytes and ends in ".conf" is read, sorted case-insensitively
 *     first and upper case before lower case on a tie (the man page's "A.conf a.conf B.conf
 *     b.conf"). DIR is the rest of the line as written (not trimmed). Each included file
 *     starts with no current listener (options go to the default listener), no current
 *     bridge and no current plugin: those are per file in the broker.
 *  5. Listeners: options before any `listener` line (and in an included file before its
 *     first `listener` line) belong to the default listener, which the broker opens (after
 *     the `listener` ones, on port 1883 unless `port` says otherwise) only when one of these
 *     was set: port, bind_address, bind_interface, max_connections, max_qos, mount_point,
 *     protocol, socket_domain, use_username_as_clientid, a TLS option other than tls_version,
 *     and with per_listener_settings password_file, psk_file, a plugin or
 *     allow_zero_length_clientid false. With no listener at all, it listens on 127.0.0.1 and
 *     ::1 port 1883 with anonymous access ("local only").
 *  6. Security options (acl_file, password_file, psk_file, allow_anonymous,
 *     allow_zero_length_clientid, auto_id_prefix, plugin and its options) go to the current
 *     listener when per_listener_settings is true at that point, else to the global set;
 *     per_listener_settings true after any of them (or check_retain_source) is an error.
 *  7. allow_anonymous defaults: local only (no listener/port/bind_address line) -> true, even
 *     when the file says false; otherwise false when not set, except on the default listener
 *     with per_listener_settings, which keeps "unset" and the broker then lets anonymous
 *     clients in (it tests != false).
 *  8. After reading: each bridge needs an address and a topic, bridge_psk and bridge_identity
 *     come together, local client ids are unique (default "local.<hostname>.<name>"), and
 *     auto_id_prefix defaults to "auto-" (not on the local-only listeners).
 * Option by option, the checks are those of conf.c; the handlers below say what is checked.
 */
#include "conf/mosqconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/mosqconf_int.h"

#define MAX_FILE (16u << 20) /* larger files are refused (the broker has no limit) */
#define SEC_GLOBAL (-2)
#define SEC_DEFAULT (-1)
#define STALE_LISTENER 1u
#define STALE_BRIDGE 2u
#define STALE_PLUGIN 4u

/* ---- the broker's line buffer ---- */

/* fgets_extending() over a file in memory. buf[-1] exists and is 0: the broker reads it when
 * a line starts with a NUL byte (strlen() - 1); on glibc that byte is the top byte of the
 * chunk size, 0. Bytes the broker would leave uninitialized (after a realloc) are 0 here. */
struct rd {
    const char *d;
    size_t n, pos;
    char *mem;     /* mem[0] guard, buf = mem + 1 */
    size_t cap;    /* bytes usable at buf (a NUL follows them) */
    size_t buflen; /* the broker's buffer size */
};

static char *rd_buf(struct rd *r)
{
    return r->mem + 1;
}

static int rd_reserve(struct rd *r, size_t need)
{
    if (need + 2 <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < need + 2)
        cap *= 2;
    char *m = realloc(r->mem, cap + 2);
    if (!m)
        return -ENOMEM;
    if (!r->mem)
        m[0] = 0; /* the guard */
    memset(m + 1 + r->cap, 0, cap + 1 - r->cap);
    r->mem = m;
    r->cap = cap;
    return 0;
}

/* fgets(buf + off, buflen - off): returns the bytes read (0: NULL returned); *eof when it
 * ran out of data before '\n' or a full buffer. */
static size_t rd_fgets(struct rd *r, size_t off, int *eof)
{
    size_t room = r->buflen - off - 1, k = 0;
    char *b = rd_buf(r) + off;
    *eof = 0;
    while (k < room) {
        if (r->pos == r->n) {
            *eof = 1;
            break;
        }
        char ch = r->d[r->pos++];
        b[k++] = ch;
        if (ch == '\n')
            break;
    }
    if (k)
        b[k] = 0;
    return k;
}

/* Next line into the buffer. Returns 1, 0 at the end, -ENOMEM. */
static int rd_next(struct rd *r)
{
    size_t off = 0, nul = SIZE_MAX; /* first NUL byte of the line's data */
    for (;;) {
        if (rd_reserve(r, r->buflen))
            return -ENOMEM;
        int eof;
        size_t k = rd_fgets(r, off, &eof);
        if (nul == SIZE_MAX && k) {
            const char *z = memchr(rd_buf(r) + off, 0, k);
            if (z)
                nul = (size_t)(z - rd_buf(r));
        }
        if (eof)
            return k > 0;
        size_t sl = nul != SIZE_MAX ? nul : off + k;
        char end = rd_buf(r)[(ptrdiff_t)sl - 1]; /* buf[-1] when sl is 0: the guard */
        if (end == '\n')
            return 1;
        off = r->buflen - 1;
        r->buflen += 1000;
    }
}

/* ---- parse state ---- */

struct pf { /* per file, as the broker's locals of config__read_file_core() */
    const char *file;
    unsigned line;
    int level;
    long cur_listener; /* -1: the default listener */
    long cur_bridge;   /* -1: none */
    long plug_sec;     /* the current plugin's security set (SEC_*, a listener); LONG_MIN: none */
    size_t plug_idx;
    int kpass_seen;    /* the broker's tls_engine_kpass_sha1 temporary is never reset */
    unsigned stale;    /* STALE_*: an include_dir added to the array the broker points into */
    unsigned noted;    /* STALE_* already said */
    char *save;        /* strtok_r state of the line */
    char *buf;
};

struct ps {
    struct mqo_mosqconf *c;
    struct mqo_mosqconf_fs fs;
    const char *hostname;
    struct mqo_mosqconf_listener deflt; /* the default listener while reading */
    int deflt_touched;
    int sec_seen;   /* the broker's cur_security_options != NULL */
    int log_file_set;
    char *err;
    size_t errlen;
    int failed;
};

static struct mqo_mosqconf_loc here(const struct pf *f)
{
    struct mqo_mosqconf_loc l = {f->file, f->line};
    return l;
}

static int failv(struct ps *ps, struct mqo_mosqconf_loc at, const char *fmt, va_list ap)
{
    if (!ps->failed && ps->errlen) {
        int n = at.line ? snprintf(ps->err, ps->errlen, "%s:%u: ", at.file, at.line)
                        : snprintf(ps->err, ps->errlen, "%s: ", at.file ? at.file : "");
        if (n >= 0 && (size_t)n < ps->errlen)
            vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    }
    ps->failed = 1;
    return -EINVAL;
}

static int fail_at(struct ps *ps, struct mqo_mosqconf_loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(struct ps *ps, struct mqo_mosqconf_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(ps, at, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail(struct ps *ps, struct pf *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ps *ps, struct pf *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(ps, here(f), fmt, ap);
    va_end(ap);
    return rc;
}

int mqo_mosqconf_note_add(struct mqo_mosqconf_finding **v, size_t *n, int all,
                          struct mqo_mosqconf_loc at, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    struct mqo_mosqconf_finding *nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    nv[*n].all = all;
    nv[*n].at = at;
    nv[*n].why = strdup(tmp);
    if (!nv[*n].why)
        return -ENOMEM;
    (*n)++;
    return 0;
}

#define NOTE(ps, at, ...) \
    mqo_mosqconf_note_add(&(ps)->c->notes, &(ps)->c->n_notes, 0, at, __VA_ARGS__)

/* ---- value syntax, as conf__parse_*() ---- */

static int is_blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

/* atoi() is strtol() cast to int on glibc (a value beyond int wraps). */
static int c_atoi(const char *s)
{
    return (int)strtol(s, NULL, 10);
}

static char *tok(struct pf *f)
{
    return strtok_r(NULL, " ", &f->save);
}

static char *rest(struct pf *f)
{
    return strtok_r(NULL, "", &f->save);
}

int mqo_mosqconf_utf8_ok(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        unsigned cl, cp;
        if (u[i] == 0)
            return 0;
        if (u[i] <= 0x7f) {
            cl = 1;
            cp = u[i];
        } else if ((u[i] & 0xE0) == 0xC0) {
            if (u[i] == 0xC0 || u[i] == 0xC1)
                return 0;
            cl = 2;
            cp = u[i] & 0x1F;
        } else if ((u[i] & 0xF0) == 0xE0) {
            cl = 3;
            cp = u[i] & 0x0F;
        } else if ((u[i] & 0xF8) == 0xF0) {
            if (u[i] > 0xF4)
                return 0;
            cl = 4;
            cp = u[i] & 0x07;
        } else {
            return 0;
        }
        if (i + cl > len)
            return 0;
        for (unsigned j = 1; j < cl; j++) {
            if ((u[++i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (u[i] & 0x3F);
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return 0;
        if ((cl == 3 && cp < 0x800) || (cl == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        if (cp >= 0xFDD0 && cp <= 0xFDEF)
            return 0;
        if ((cp & 0xFFFF) == 0xFFFE || (cp & 0xFFFF) == 0xFFFF)
            return 0;
        if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F))
            return 0;
    }
    return 1;
}

static int p_bool(struct ps *ps, struct pf *f, const char *name, int *v)
{
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty %s value in configuration.", name);
    if (!strcmp(t, "false") || !strcmp(t, "0"))
        *v = 0;
    else if (!strcmp(t, "true") || !strcmp(t, "1"))
        *v = 1;
    else
        return fail(ps, f, "Invalid %s value (%s).", name, t);
    return 0;
}

static int p_int(struct ps *ps, struct pf *f, const char *name, int *v)
{
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty %s value in configuration.", name);
    *v = c_atoi(t);
    return 0;
}

/* A string value: returns 0 and *v (malloc'd) unless *v was set already. */
static int p_str(struct ps *ps, struct pf *f, const char *name, char **v)
{
    char *t = rest(f);
    if (!t)
        return fail(ps, f, "Empty %s value in configuration.", name);
    if (*v)
        return fail(ps, f, "Duplicate %s value in configuration.", name);
    while (is_blank((unsigned char)*t))
        t++;
    size_t n = strlen(t);
    while (n > 1 && is_blank((unsigned char)t[n - 1]))
        n--;
    if (n == 1 && is_blank((unsigned char)t[0]))
        n = 0;
    if (n == 0)
        return fail(ps, f, "Empty %s value in configuration.", name);
    if (n > 65535)
        return fail(ps, f, "%s value longer than 65535 bytes.", name);
    if (!mqo_mosqconf_utf8_ok(t, n))
        return fail(ps, f, "Malformed UTF-8 in configuration.");
    *v = strndup(t, n);
    return *v ? 0 : -ENOMEM;
}

/* mosquitto_pub_topic_check() as built into the broker: no '+' or '#', at most 65535
 * bytes, at most 200 '/'. */
int mqo_mosqconf_pub_topic_ok(const char *s)
{
    size_t len = 0, slashes = 0;
    for (; s[len]; len++) {
        if (s[len] == '+' || s[len] == '#')
            return 0;
        if (s[len] == '/')
            slashes++;
    }
    return len <= 65535 && slashes <= 200;
}

/* mosquitto_sub_topic_check(): '+' alone in its level, '#' alone in the last level. */
int mqo_mosqconf_sub_topic_ok(const char *s)
{
    size_t len = 0, slashes = 0;
    char prev = 0;
    for (; s[len]; len++) {
        char ch = s[len], nx = s[len + 1];
        if (ch == '+') {
            if ((prev && prev != '/') || (nx && nx != '/'))
                return 0;
        } else if (ch == '#') {
            if ((prev && prev != '/') || nx)
                return 0;
        } else if (ch == '/') {
            slashes++;
        }
        prev = ch;
    }
    return len <= 65535 && slashes <= 200;
}

/* mosquitto__hex2bin_sha1(): OpenSSL's BN_hex2bn() of the longest hex prefix (an optional
 * '-' first) must give 20 bytes, counting each leading "00" pair as one byte. */
static int kpass_ok(const char *s)
{
    size_t lead = 0, n = strlen(s);
    for (size_t i = 0; i + 1 < n + 1 && !strncmp(s + i, "00", 2); i += 2)
        lead++;
    const char *p = s;
    if (*p == '-')
        p++;
    size_t digits = 0;
    while ((p[digits] >= '0' && p[digits] <= '9') || (p[digits] >= 'a' && p[digits] <= 'f') ||
           (p[digits] >= 'A' && p[digits] <= 'F'))
        digits++;
    if (digits == 0 || digits > (size_t)INT_MAX / 4)
        return 0;
    size_t z = 0;
    while (z < digits && p[z] == '0')
        z++;
    size_t sig = digits - z, bytes = (sig + 1) / 2;
    return bytes + lead == 20;
}

/* ---- structures ---- */

static void listener_defaults(struct mqo_mosqconf_listener *l)
{
    memset(l, 0, sizeof *l);
    l->sec.allow_anonymous = -1;
    l->sec.allow_zero_length_clientid = 1;
    l->protocol = MQO_MOSQCONF_MQTT;
    l->max_connections = -1;
    l->max_qos = 2;
    l->max_topic_alias = 10;
}

static void sec_free(struct mqo_mosqconf_security *s)
{
    free(s->acl_file);
    free(s->password_file);
    free(s->psk_file);
    free(s->auto_id_prefix);
    for (size_t i = 0; i < s->n_plugins; i++) {
        struct mqo_mosqconf_plugin *p = &s->plugins[i];
        free(p->path);
        for (size_t j = 0; j < p->n_opts; j++) {
            free(p->opts[j].key);
            free(p->opts[j].value);
        }
        free(p->opts);
    }
    free(s->plugins);
    memset(s, 0, sizeof *s);
}

static void listener_free(struct mqo_mosqconf_listener *l)
{
    char **strs[] = {&l->host, &l->unix_path, &l->bind_interface, &l->mount_point, &l->cafile,
                     &l->capath, &l->certfile, &l->keyfile, &l->ciphers, &l->ciphers_tls13,
                     &l->crlfile, &l->dhparamfile, &l->psk_hint, &l->tls_version, &l->tls_engine,
                     &l->http_dir};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    sec_free(&l->sec);
}

static void bridge_free(struct mqo_mosqconf_bridge *b)
{
    free(b->name);
    for (size_t i = 0; i < b->n_addresses; i++)
        free(b->addresses[i].host);
    free(b->addresses);
    for (size_t i = 0; i < b->n_topics; i++) {
        struct mqo_mosqconf_btopic *t = &b->topics[i];
        free(t->pattern);
        free(t->local_prefix);
        free(t->remote_prefix);
        free(t->local_topic);
        free(t->remote_topic);
    }
    free(b->topics);
    char *strs[] = {b->remote_clientid, b->local_clientid, b->remote_username,
                    b->remote_password, b->local_username, b->local_password,
                    b->notification_topic, b->tls_cafile, b->tls_capath, b->tls_certfile,
                    b->tls_keyfile, b->tls_alpn, b->tls_version, b->tls_psk_identity,
                    b->tls_psk, b->bind_address};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(strs[i]);
}

int mqo_mosqconf_is_mqoff_plugin(const struct mqo_mosqconf_plugin *pl)
{
    const char *b = strrchr(pl->path, '/');
    return strcmp(b ? b + 1 : pl->path, "mqoff_mosquitto.so") == 0;
}

const char *mqo_mosqconf_plugin_opt(const struct mqo_mosqconf_plugin *pl, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < pl->n_opts; i++) /* the broker hands the plugin all of them; the
                                              * plugin takes the last */
        if (!strcmp(pl->opts[i].key, key))
            v = pl->opts[i].value;
    return v;
}

void mqo_mosqconf_free(struct mqo_mosqconf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_listeners; i++)
        listener_free(&c->listeners[i]);
    free(c->listeners);
    sec_free(&c->sec);
    for (size_t i = 0; i < c->n_bridges; i++)
        bridge_free(&c->bridges[i]);
    free(c->bridges);
    char *strs[] = {c->clientid_prefixes, c->persistence_file, c->persistence_location,
                    c->pid_file, c->user, c->log_file, c->log_timestamp_format};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(strs[i]);
    for (size_t i = 0; i < c->n_files; i++)
        free(c->files[i]);
    free(c->files);
    for (size_t i = 0; i < c->n_notes; i++)
        free(c->notes[i].why);
    free(c->notes);
    free(c);
}

/* The current listener of f: the default listener or one in the list. */
static struct mqo_mosqconf_listener *cur_l(struct ps *ps, struct pf *f)
{
    if (f->cur_listener < 0) {
        if (!ps->deflt_touched) {
            ps->deflt.at = here(f);
            ps->deflt_touched = 1;
        }
        return &ps->deflt;
    }
    return &ps->c->listeners[f->cur_listener];
}

/* The broker keeps its current listener / bridge / plugin as pointers into arrays that an
 * included file may have reallocated; this reader keeps indices. Say so where it matters.
 * Returns 0 or -ENOMEM. */
static int stale_note(struct ps *ps, struct pf *f, unsigned kind)
{
    static const char *const what[] = {"", "listener", "bridge", "", "plugin"};
    if (!(f->stale & kind) || (f->noted & kind))
        return 0;
    f->noted |= kind;
    return NOTE(ps, here(f),
                "this %s option after include_dir applies to the %s before it here; Mosquitto "
                "2.0.11 keeps a pointer that the included files may have moved, so the broker may "
                "apply it elsewhere or not at all",
                what[kind], what[kind]);
}

/* The current listener for a listener option (NULL: out of memory). */
static struct mqo_mosqconf_listener *lst(struct ps *ps, struct pf *f)
{
    if (f->cur_listener >= 0 && stale_note(ps, f, STALE_LISTENER))
        return NULL;
    return cur_l(ps, f);
}

static struct mqo_mosqconf_security *sec_of(struct ps *ps, long which)
{
    if (which == SEC_GLOBAL)
        return &ps->c->sec;
    if (which == SEC_DEFAULT)
        return &ps->deflt.sec;
    return &ps->c->listeners[which].sec;
}

/* conf__set_cur_security_options(): the set security options go to now, in *which.
 * Returns 0 or -ENOMEM. */
static int cur_sec(struct ps *ps, struct pf *f, long *which)
{
    ps->sec_seen = 1;
    if (!ps->c->per_listener_settings) {
        *which = SEC_GLOBAL;
    } else if (f->cur_listener < 0) {
        (void)cur_l(ps, f);
        *which = SEC_DEFAULT;
    } else {
        if (stale_note(ps, f, STALE_LISTENER))
            return -ENOMEM;
        *which = f->cur_listener;
    }
    return 0;
}

/* The current bridge for a bridge option: 0, or -EINVAL when there is none. */
static int need_bridge(struct ps *ps, struct pf *f, struct mqo_mosqconf_bridge **b)
{
    if (f->cur_bridge < 0)
        return fail(ps, f, "Invalid bridge configuration.");
    if (stale_note(ps, f, STALE_BRIDGE))
        return -ENOMEM;
    *b = &ps->c->bridges[f->cur_bridge];
    return 0;
}

/* ---- option handlers: return 0 or -EINVAL (message set) / -ENOMEM ---- */

typedef int (*handler)(struct ps *ps, struct pf *f, char *name, size_t arg);

/* Offsets let one handler serve options of one shape. */
#define OFF(type, field) offsetof(type, field)
#define G(f) OFF(struct mqo_mosqconf, f)
#define L(f) OFF(struct mqo_mosqconf_listener, f)
#define BR(f) OFF(struct mqo_mosqconf_bridge, f)
#define S(f) OFF(struct mqo_mosqconf_security, f)
#define FIELD(base, off, type) ((type *)((char *)(base) + (off)))

static int h_g_bool(struct ps *ps, struct pf *f, char *name, size_t off)
{
    return p_bool(ps, f, name, FIELD(ps->c, off, int));
}

static int h_g_str(struct ps *ps, struct pf *f, char *name, size_t off)
{
    return p_str(ps, f, name, FIELD(ps->c, off, char *));
}

static int h_l_str(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_listener *l = lst(ps, f);
    return l ? p_str(ps, f, name, FIELD(l, off, char *)) : -ENOMEM;
}

static int h_l_bool(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_listener *l = lst(ps, f);
    return l ? p_bool(ps, f, name, FIELD(l, off, int)) : -ENOMEM;
}

/* cafile, certfile: not with psk_hint on the same listener. */
static int h_l_cert(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_listener *l = lst(ps, f);
    if (!l)
        return -ENOMEM;
    if (l->psk_hint)
        return fail(ps, f, "Cannot use both certificate and psk encryption in a single listener.");
    return p_str(ps, f, name, FIELD(l, off, char *));
}

static int h_b_str(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_bridge *b;
    int rc = need_bridge(ps, f, &b);
    return rc ? rc : p_str(ps, f, name, FIELD(b, off, char *));
}

static int h_b_bool(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_bridge *b;
    int rc = need_bridge(ps, f, &b);
    return rc ? rc : p_bool(ps, f, name, FIELD(b, off, int));
}

/* bridge_cafile/capath/certfile/keyfile: not with bridge_identity/bridge_psk. */
static int h_b_cert(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_bridge *b;
    int brc = need_bridge(ps, f, &b);
    if (brc)
        return brc;
    if (b->tls_psk_identity || b->tls_psk)
        return fail(ps, f, "Cannot use both certificate and psk encryption in a single bridge.");
    return p_str(ps, f, name, FIELD(b, off, char *));
}

/* bridge_identity, bridge_psk: not with certificates. */
static int h_b_psk(struct ps *ps, struct pf *f, char *name, size_t off)
{
    struct mqo_mosqconf_bridge *b;
    int brc = need_bridge(ps, f, &b);
    if (brc)
        return brc;
    if (b->tls_cafile || b->tls_capath || b->tls_certfile || b->tls_keyfile)
        return fail(ps, f, "Cannot use both certificate and %s encryption in a single bridge.",
                    !strcmp(name, "bridge_psk") ? "psk" : "identity");
    return p_str(ps, f, name, FIELD(b, off, char *));
}

/* Integer options: atoi() of the next word, then the broker's range rule: below lo it either
 * refuses the file or raises the value to lo (lo_clamps); above hi it refuses it. */
enum { W_NONE, W_GLOBAL, W_LISTENER, W_BRIDGE };
enum { T_INT, T_U8, T_U16, T_U32, T_SIZE };
struct ispec {
    unsigned char where, type, lo_clamps;
    size_t off;
    long lo, hi;
};
enum {
    I_MAX_QOS, I_MAX_TOPIC_ALIAS, I_MAX_KEEPALIVE, I_MAX_PACKET_SIZE, I_MESSAGE_SIZE_LIMIT,
    I_SYS_INTERVAL, I_WS_HEADERS, I_WS_LOG_LEVEL, I_LOG_FACILITY, I_MAX_INFLIGHT_BYTES,
    I_MAX_QUEUED_MESSAGES, I_MAX_QUEUED_BYTES, I_AUTOSAVE, I_B_MAX_PACKET, I_B_KEEPALIVE,
    I_B_IDLE, I_B_THRESHOLD,
};
static const struct ispec ispecs[] = {
    [I_MAX_QOS] = {W_LISTENER, T_U8, 0, L(max_qos), 0, 2},
    [I_MAX_TOPIC_ALIAS] = {W_LISTENER, T_U16, 0,
                           L(max_topic_alias), 0, 65535},
    [I_MAX_KEEPALIVE] = {W_GLOBAL, T_U16, 0, G(max_keepalive), 10, 65535},
    [I_MAX_PACKET_SIZE] = {W_GLOBAL, T_U32, 0, G(max_packet_size), 20,
                           INT_MAX},
    [I_MESSAGE_SIZE_LIMIT] = {W_GLOBAL, T_U32, 0, G(message_size_limit),
                              0, 268435455},
    [I_SYS_INTERVAL] = {W_GLOBAL, T_INT, 0, G(sys_interval), 0, 65535},
    [I_WS_HEADERS] = {W_NONE, T_INT, 0, 0, 0, 65535},
    [I_WS_LOG_LEVEL] = {W_NONE, T_INT, 0, 0, INT_MIN, INT_MAX},
    [I_LOG_FACILITY] = {W_NONE, T_INT, 0, 0, 0, 7},
    [I_MAX_INFLIGHT_BYTES] = {W_GLOBAL, T_SIZE, 1, G(max_inflight_bytes),
                              0, INT_MAX},
    [I_MAX_QUEUED_MESSAGES] = {W_GLOBAL, T_INT, 1,
                               G(max_queued_messages), 0, INT_MAX},
    [I_MAX_QUEUED_BYTES] = {W_GLOBAL, T_SIZE, 1, G(max_queued_bytes), 0,
                            INT_MAX},
    [I_AUTOSAVE] = {W_GLOBAL, T_INT, 1, G(autosave_interval), 0, INT_MAX},
    [I_B_MAX_PACKET] = {W_BRIDGE, T_U32, 1, BR(maximum_packet_size),
                        0, INT_MAX},
    [I_B_KEEPALIVE] = {W_BRIDGE, T_INT, 1, BR(keepalive), 5, 65535},
    [I_B_IDLE] = {W_BRIDGE, T_INT, 1, BR(idle_timeout), 1, INT_MAX},
    [I_B_THRESHOLD] = {W_BRIDGE, T_INT, 1, BR(threshold), 1, INT_MAX},
};

static int h_int(struct ps *ps, struct pf *f, char *name, size_t which)
{
    const struct ispec *sp = &ispecs[which];
    void *base = ps->c;
    int v = 0, rc;
    if (sp->where == W_BRIDGE) { /* the broker wants a bridge before it reads the value */
        struct mqo_mosqconf_bridge *b;
        if ((rc = need_bridge(ps, f, &b)))
            return rc;
        base = b;
    }
    if ((rc = p_int(ps, f, name, &v)))
        return rc;
    long x = v;
    if (x < sp->lo && !sp->lo_clamps)
        return fail(ps, f, "Invalid %s value (%d).", name, v);
    if (x < sp->lo)
        x = sp->lo;
    if (x > sp->hi)
        return fail(ps, f, "Invalid %s value (%d).", name, v);
    if (sp->where == W_LISTENER && !(base = lst(ps, f)))
        return -ENOMEM;
    void *dst = (char *)base + sp->off;
    switch (sp->where == W_NONE ? -1 : sp->type) {
    case T_INT: *(int *)dst = (int)x; break;
    case T_U8: *(uint8_t *)dst = (uint8_t)x; break;
    case T_U16: *(uint16_t *)dst = (uint16_t)x; break;
    case T_U32: *(uint32_t *)dst = (uint32_t)x; break;
    case T_SIZE: *(size_t *)dst = (size_t)x; break;
    default: break;
    }
    return 0;
}

/* Keyword options: the next word (or, `whole`, the rest of the line exactly) must be one of
 * the words; an empty value is refused, or only logged by the broker (`empty_ok`). */
struct kword {
    const char *w;
    int v;
};
struct kspec {
    unsigned char where, whole, empty_ok;
    size_t off; /* an int (or int-sized enum) field of the listener or bridge */
    const struct kword *kw;
};
static const struct kword kw_protocol[] = {
    {"mqtt", MQO_MOSQCONF_MQTT}, {"websockets", MQO_MOSQCONF_WEBSOCKETS}, {NULL, 0}};
static const struct kword kw_domain[] = {{"ipv4", 4}, {"ipv6", 6}, {NULL, 0}};
static const struct kword kw_start[] = {{"automatic", 0}, {"lazy", 1}, {"once", 2}, {NULL, 0}};
static const struct kword kw_version[] = {
    {"mqttv31", 3}, {"mqttv311", 4}, {"mqttv50", 5}, {NULL, 0}};
static const struct kword kw_log_type[] = {
    {"none", 0},      {"information", 0}, {"notice", 0},   {"warning", 0},
    {"error", 0},     {"debug", 0},       {"subscribe", 0}, {"unsubscribe", 0},
    {"internal", 0},  {"websockets", 0},  {"all", 0},      {NULL, 0}};
enum { K_PROTOCOL, K_DOMAIN, K_START, K_VERSION, K_LOG_TYPE };
static const struct kspec kspecs[] = {
    [K_PROTOCOL] = {W_LISTENER, 0, 1, L(protocol), kw_protocol},
    [K_DOMAIN] = {W_LISTENER, 0, 0, L(socket_domain), kw_domain},
    [K_START] = {W_BRIDGE, 0, 0, BR(start_type), kw_start},
    [K_VERSION] = {W_BRIDGE, 1, 0, BR(protocol_version), kw_version},
    [K_LOG_TYPE] = {W_NONE, 0, 1, 0, kw_log_type},
};

static int h_kw(struct ps *ps, struct pf *f, char *name, size_t which)
{
    const struct kspec *k = &kspecs[which];
    void *base = NULL;
    int rc;
    if (k->where == W_BRIDGE) {
        struct mqo_mosqconf_bridge *b;
        if ((rc = need_bridge(ps, f, &b)))
            return rc;
        base = b;
    }
    char *t = k->whole ? rest(f) : tok(f);
    if (!t && k->empty_ok)
        return NOTE(ps, here(f), "empty %s value: the broker logs an error and ignores it", name);
    if (!t)
        return fail(ps, f, "Empty %s value in configuration.", name);
    for (const struct kword *w = k->kw; w->w; w++) {
        if (strcmp(t, w->w))
            continue;
        if (k->where == W_LISTENER && !(base = lst(ps, f)))
            return -ENOMEM;
        if (base)
            *(int *)((char *)base + k->off) = w->v;
        return 0;
    }
    return fail(ps, f, "Invalid %s value (%s).", name, t);
}

/* Security strings: acl_file, password_file, psk_file, auto_id_prefix. */
static int h_s_str(struct ps *ps, struct pf *f, char *name, size_t off)
{
    long which;
    int rc = cur_sec(ps, f, &which);
    if (rc)
        return rc;
    struct mqo_mosqconf_security *s = sec_of(ps, which);
    rc = p_str(ps, f, name, FIELD(s, off, char *));
    if (rc == 0 && off == OFF(struct mqo_mosqconf_security, acl_file))
        s->acl_at = here(f);
    return rc;
}

static int h_s_bool(struct ps *ps, struct pf *f, char *name, size_t off)
{
    long which;
    int rc = cur_sec(ps, f, &which);
    return rc ? rc : p_bool(ps, f, name, FIELD(sec_of(ps, which), off, int));
}

static int h_check_retain_source(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    long which;
    int rc = cur_sec(ps, f, &which);
    return rc ? rc : p_bool(ps, f, name, &ps->c->check_retain_source);
}

static int h_plugin(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    long which;
    int rc = cur_sec(ps, f, &which);
    if (rc)
        return rc;
    struct mqo_mosqconf_security *s = sec_of(ps, which);
    struct mqo_mosqconf_plugin *np = realloc(s->plugins, (s->n_plugins + 1) * sizeof *np);
    if (!np)
        return -ENOMEM;
    s->plugins = np;
    struct mqo_mosqconf_plugin *p = &np[s->n_plugins++];
    memset(p, 0, sizeof *p);
    p->deny_special_chars = 1;
    p->at = here(f);
    f->plug_sec = which;
    f->plug_idx = s->n_plugins - 1;
    f->stale &= ~STALE_PLUGIN; /* a fresh pointer in the broker too */
    f->noted &= ~STALE_PLUGIN;
    return p_str(ps, f, "auth_plugin", &p->path);
}

static struct mqo_mosqconf_plugin *cur_plugin(struct ps *ps, struct pf *f)
{
    if (f->plug_sec == LONG_MIN)
        return NULL;
    return &sec_of(ps, f->plug_sec)->plugins[f->plug_idx];
}

/* auth_opt_KEY / plugin_opt_KEY VALUE: KEY at least 3 bytes; VALUE is what follows the key's
 * terminator, spaces and tabs skipped, untrimmed at the end. */
static int h_plugin_opt(struct ps *ps, struct pf *f, char *name, size_t prefix)
{
    struct mqo_mosqconf_plugin *p = cur_plugin(ps, f);
    if (!p)
        return fail(ps, f, "An auth_opt_ option exists in the config file without an auth_plugin.");
    if (stale_note(ps, f, STALE_PLUGIN))
        return -ENOMEM;
    size_t n = strlen(name);
    if (n < prefix + 3)
        return fail(ps, f, "Invalid auth_opt_ config option.");
    const char *v = name + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return fail(ps, f, "Empty %s value in configuration.", name + prefix);
    struct mqo_mosqconf_kv *no = realloc(p->opts, (p->n_opts + 1) * sizeof *no);
    if (!no)
        return -ENOMEM;
    p->opts = no;
    struct mqo_mosqconf_kv *kv = &no[p->n_opts];
    kv->key = strdup(name + prefix);
    kv->value = strdup(v);
    kv->at = here(f);
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        return -ENOMEM;
    }
    p->n_opts++;
    return 0;
}

static int h_deny_special(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    struct mqo_mosqconf_plugin *p = cur_plugin(ps, f);
    if (!p)
        return fail(ps, f, "An auth_plugin_deny_special_chars option exists in the config file "
                           "without an auth_plugin.");
    return p_bool(ps, f, name, &p->deny_special_chars);
}

static int h_port(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    ps->c->local_only = 0;
    int v = 0;
    int rc = p_int(ps, f, name, &v);
    if (rc)
        return rc;
    if (v < 1 || v > 65535)
        return fail(ps, f, "Invalid port value (%d).", v);
    if (!ps->deflt_touched) {
        ps->deflt.at = here(f);
        ps->deflt_touched = 1;
    }
    ps->deflt.port = (uint16_t)v;
    return 0;
}

static int h_bind_address(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    ps->c->local_only = 0;
    int rc = p_str(ps, f, "default listener bind_address", &ps->deflt.host);
    if (rc)
        return rc;
    if (!ps->deflt_touched) {
        ps->deflt.at = here(f);
        ps->deflt_touched = 1;
    }
    if (!mqo_mosqconf_numeric_host(ps->deflt.host, NULL, NULL) &&
        strcmp(ps->deflt.host, "localhost"))
        return NOTE(ps, here(f),
                    "bind_address %s is a name mqoff does not resolve; the broker refuses to "
                    "start when it cannot resolve it",
                    ps->deflt.host);
    return 0;
}

static int h_listener(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    struct mqo_mosqconf *c = ps->c;
    c->local_only = 0;
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty listener value in configuration.");
    int port = c_atoi(t);
    if (port < 0 || port > 65535)
        return fail(ps, f, "Invalid port value (%d).", port);
    char *h = tok(f);
    if (h && h[0] == '#')
        h = NULL;
    if (port == 0 && !h)
        return fail(ps, f, "A listener with port 0 must provide a Unix socket path.");
    struct mqo_mosqconf_listener *nl = realloc(c->listeners, (c->n_listeners + 1) * sizeof *nl);
    if (!nl)
        return -ENOMEM;
    c->listeners = nl;
    struct mqo_mosqconf_listener *l = &nl[c->n_listeners++];
    listener_defaults(l);
    l->origin = MQO_MOSQCONF_LISTENER;
    l->at = here(f);
    l->port = (uint16_t)port;
    if (h) {
        char **dst = port == 0 ? &l->unix_path : &l->host;
        if (!(*dst = strdup(h)))
            return -ENOMEM;
    }
    f->cur_listener = (long)c->n_listeners - 1;
    f->stale &= ~STALE_LISTENER;
    f->noted &= ~STALE_LISTENER;
    return 0;
}

static int h_mount_point(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    if (ps->c->n_listeners == 0)
        return fail(ps, f, "You must use create a listener before using the mount_point option "
                           "in the configuration file.");
    struct mqo_mosqconf_listener *l = lst(ps, f);
    if (!l)
        return -ENOMEM;
    int rc = p_str(ps, f, "mount_point", &l->mount_point);
    if (rc)
        return rc;
    if (!mqo_mosqconf_pub_topic_ok(l->mount_point))
        return fail(ps, f, "Invalid mount_point '%s'. Does it contain a wildcard character?",
                    l->mount_point);
    return 0;
}

static int h_max_connections(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    char *t = tok(f);
    if (!t)
        return NOTE(ps, here(f),
                    "empty max_connections value: the broker logs an error and ignores it");
    struct mqo_mosqconf_listener *l = lst(ps, f);
    if (!l)
        return -ENOMEM;
    int v = c_atoi(t);
    l->max_connections = v < 0 ? -1 : v;
    return 0;
}

static int h_kpass(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    char *v = f->kpass_seen ? (char *)"" : NULL; /* the broker's stale temporary */
    int rc = p_str(ps, f, name, &v);
    if (rc)
        return rc;
    int ok = kpass_ok(v);
    free(v);
    if (!ok)
        return fail(ps, f, "Invalid tls_engine_kpass_sha1 value (not a SHA-1 in hex).");
    f->kpass_seen = 1;
    struct mqo_mosqconf_listener *l = lst(ps, f);
    if (!l)
        return -ENOMEM;
    l->tls_engine_kpass_sha1 = 1;
    return 0;
}

static int h_keyform(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    char *v = NULL;
    int rc = p_str(ps, f, name, &v);
    if (rc)
        return rc;
    struct mqo_mosqconf_listener *l = lst(ps, f);
    if (l)
        l->tls_keyform_engine = !strcmp(v, "engine");
    free(v);
    return l ? 0 : -ENOMEM;
}

static int h_log_dest(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty log_dest value in configuration.");
    static const char *const plain[] = {"none", "syslog", "stdout", "stderr", "topic", "dlt"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!strcmp(t, plain[i]))
            return 0;
    if (strcmp(t, "file"))
        return fail(ps, f, "Invalid log_dest value (%s).", t);
    if (ps->log_file_set)
        return fail(ps, f, "Duplicate \"log_dest file\" value.");
    const char *v = t + strlen(t) + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return fail(ps, f, "Empty \"log_dest file\" value in configuration.");
    ps->log_file_set = 1;
    return (ps->c->log_file = strdup(v)) ? 0 : -ENOMEM;
}

static int h_ignore_value(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    return NOTE(ps, here(f), "%s: no longer available in Mosquitto 2.0, the broker ignores it",
                name);
}

static int h_max_inflight_messages(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    int v = 0;
    int rc = p_int(ps, f, name, &v);
    if (rc)
        return rc;
    if (v < 0 || v == 65535)
        v = 0;
    else if (v > 65535)
        return fail(ps, f, "max_inflight_messages must be <= 65535.");
    ps->c->max_inflight_messages = (uint16_t)v;
    return 0;
}

static int h_memory_limit(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty memory_limit value in configuration.");
    long v = strtol(t, NULL, 10);
    if (v < 0)
        return fail(ps, f, "Invalid memory_limit value (%ld).", v);
    ps->c->memory_limit = v;
    return 0;
}

static int h_per_listener(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    int rc = p_bool(ps, f, name, &ps->c->per_listener_settings);
    if (rc == 0 && ps->sec_seen && ps->c->per_listener_settings)
        return fail(ps, f, "per_listener_settings must be set before any other security settings.");
    return rc;
}

static int h_pce(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    char *t = tok(f);
    if (!t)
        return NOTE(ps, here(f),
                    "empty persistent_client_expiration value: the broker logs an error and "
                    "ignores it");
    int64_t mult;
    size_t n = strlen(t);
    switch (t[n - 1]) {
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 86400 * 7; break;
    case 'm': mult = 86400 * 30; break;
    case 'y': mult = 86400 * 365; break;
    default: return fail(ps, f, "Invalid persistent_client_expiration duration in configuration.");
    }
    t[n - 1] = 0;
    int64_t v = (int64_t)c_atoi(t) * mult;
    if (v <= 0)
        return fail(ps, f, "Invalid persistent_client_expiration duration in configuration.");
    ps->c->persistent_client_expiration = v;
    return 0;
}

static int parse_file(struct ps *ps, const char *path, int level, struct mqo_mosqconf_loc from);

/* scmp_p() of the broker: case-insensitive first, then upper before lower, bytes as signed
 * chars (x86). */
static int inc_cmp(const void *a, const void *b)
{
    const signed char *s1 = *(const signed char *const *)a, *s2 = *(const signed char *const *)b;
    while (s1[0] && s2[0]) {
        int u1 = s1[0] >= 'a' && s1[0] <= 'z' ? s1[0] - 32 : s1[0];
        int u2 = s2[0] >= 'a' && s2[0] <= 'z' ? s2[0] - 32 : s2[0];
        if (u1 != u2)
            return u1 - u2;
        if (s1[0] != s2[0])
            return s1[0] - s2[0];
        s1++;
        s2++;
    }
    return s1[0] - s2[0];
}

static int h_include_dir(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    if (f->level > 0)
        return NOTE(ps, here(f), "include_dir in an included file: the broker ignores it");
    char *dir = rest(f);
    if (!dir)
        return fail(ps, f, "Empty include_dir value in configuration.");
    char **names = NULL;
    size_t n = 0;
    int rc = ps->fs.list(ps->fs.ctx, dir, &names, &n);
    if (rc == -ENOMEM)
        return rc;
    if (rc)
        return fail(ps, f, "Unable to open include_dir '%s'.", dir);
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l > 5 && !strcmp(names[i] + l - 5, ".conf")) {
            size_t pl = strlen(dir) + 1 + l + 1;
            char *p = malloc(pl);
            if (p)
                snprintf(p, pl, "%s/%s", dir, names[i]);
            free(names[i]);
            names[keep++] = p;
            if (!p)
                rc = -ENOMEM;
        } else {
            free(names[i]);
        }
    }
    if (rc == 0 && keep)
        qsort(names, keep, sizeof *names, inc_cmp);
    size_t nl = ps->c->n_listeners, nb = ps->c->n_bridges, np = 0;
    if (f->plug_sec != LONG_MIN)
        np = sec_of(ps, f->plug_sec)->n_plugins;
    for (size_t i = 0; rc == 0 && i < keep; i++)
        rc = parse_file(ps, names[i], f->level + 1, here(f));
    for (size_t i = 0; i < keep; i++)
        free(names[i]);
    free(names);
    if (ps->c->n_listeners != nl && f->cur_listener >= 0)
        f->stale |= STALE_LISTENER;
    if (ps->c->n_bridges != nb && f->cur_bridge >= 0)
        f->stale |= STALE_BRIDGE;
    if (f->plug_sec != LONG_MIN && sec_of(ps, f->plug_sec)->n_plugins != np)
        f->stale |= STALE_PLUGIN;
    return rc;
}

/* bridges */

static int h_connection(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    struct mqo_mosqconf *c = ps->c;
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty connection value in configuration.");
    for (size_t i = 0; i < c->n_bridges; i++)
        if (!strcmp(c->bridges[i].name, t))
            return fail(ps, f, "Duplicate bridge name \"%s\".", t);
    struct mqo_mosqconf_bridge *nb = realloc(c->bridges, (c->n_bridges + 1) * sizeof *nb);
    if (!nb)
        return -ENOMEM;
    c->bridges = nb;
    struct mqo_mosqconf_bridge *b = &nb[c->n_bridges];
    memset(b, 0, sizeof *b);
    if (!(b->name = strdup(t)))
        return -ENOMEM;
    c->n_bridges++;
    b->at = here(f);
    b->keepalive = 60;
    b->notifications = 1;
    b->start_type = 0;
    b->idle_timeout = 60;
    b->backoff_base = 5;
    b->backoff_cap = 30;
    b->threshold = 10;
    b->try_private = 1;
    b->attempt_unsubscribe = 1;
    b->protocol_version = 4;
    b->outgoing_retain = 1;
    b->clean_start_local = -1;
    f->cur_bridge = (long)c->n_bridges - 1;
    f->stale &= ~STALE_BRIDGE;
    f->noted &= ~STALE_BRIDGE;
    return 0;
}

static int h_address(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    struct mqo_mosqconf_bridge *b = f->cur_bridge < 0 ? NULL : &ps->c->bridges[f->cur_bridge];
    if (!b || b->addresses)
        return fail(ps, f, "Invalid bridge configuration.");
    if (stale_note(ps, f, STALE_BRIDGE))
        return -ENOMEM;
    char *t;
    while ((t = tok(f)) != NULL && t[0] != '#') {
        struct mqo_mosqconf_addr *na = realloc(b->addresses, (b->n_addresses + 1) * sizeof *na);
        if (!na)
            return -ENOMEM;
        b->addresses = na;
        struct mqo_mosqconf_addr *a = &na[b->n_addresses];
        a->port = 1883;
        char *colon = strrchr(t, ':');
        if (colon) {
            *colon = 0;
            int port = c_atoi(colon + 1);
            if (port < 1 || port > 65535)
                return fail(ps, f, "Invalid port value (%d).", port);
            a->port = (uint16_t)port;
        }
        if (!(a->host = strdup(t)))
            return -ENOMEM;
        b->n_addresses++;
    }
    if (b->n_addresses == 0)
        return fail(ps, f, "Empty address value in configuration.");
    return 0;
}

static int h_restart_timeout(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    struct mqo_mosqconf_bridge *b;
    int brc = need_bridge(ps, f, &b);
    if (brc)
        return brc;
    char *t = tok(f);
    if (!t)
        return fail(ps, f, "Empty restart_timeout value in configuration.");
    b->restart_timeout = c_atoi(t);
    if (b->restart_timeout < 1)
        b->restart_timeout = 1;
    if ((t = tok(f)) != NULL) {
        b->backoff_base = b->restart_timeout;
        b->backoff_cap = c_atoi(t);
        if (b->backoff_cap < b->backoff_base)
            return fail(ps, f, "backoff cap is lower than the base in restart_timeout.");
    }
    return 0;
}

static char *cat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        if (lb)
            memcpy(s + la, b, lb);
        s[la + lb] = 0;
    }
    return s;
}

/* topic PATTERN [out|in|both [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]] (bridge__add_topic()). */
static int h_topic(struct ps *ps, struct pf *f, char *name, size_t arg)
{
    struct mqo_mosqconf_bridge *b;
    int brc = need_bridge(ps, f, &b);
    if (brc)
        return brc;
    char *pattern = tok(f), *lp = NULL, *rp = NULL, *t;
    enum mqo_mosqconf_dir dir = MQO_MOSQCONF_OUT;
    int qos = 0;
    if (!pattern)
        return fail(ps, f, "Empty topic value in configuration.");
    if ((t = tok(f)) != NULL) {
        if (!strcasecmp(t, "out"))
            dir = MQO_MOSQCONF_OUT;
        else if (!strcasecmp(t, "in"))
            dir = MQO_MOSQCONF_IN;
        else if (!strcasecmp(t, "both"))
            dir = MQO_MOSQCONF_BOTH;
        else
            return fail(ps, f, "Invalid bridge topic direction '%s'.", t);
        if ((t = tok(f)) != NULL) {
            if (t[0] == '#')
                (void)rest(f);
            qos = (uint8_t)c_atoi(t);
            if (qos > 2)
                return fail(ps, f, "Invalid bridge QoS level '%s'.", t);
            if ((t = tok(f)) != NULL) {
                if (!strcmp(t, "\"\"") || t[0] == '#') {
                    if (t[0] == '#')
                        (void)rest(f);
                } else {
                    lp = t;
                }
                if ((t = tok(f)) != NULL && strcmp(t, "\"\"") && t[0] != '#')
                    rp = t;
            }
        }
    }
    if (lp && !mqo_mosqconf_pub_topic_ok(lp))
        return fail(ps, f, "Invalid bridge topic local prefix '%s'.", lp);
    if (rp && !mqo_mosqconf_pub_topic_ok(rp))
        return fail(ps, f, "Invalid bridge topic remote prefix '%s'.", rp);
    int empty = !strcmp(pattern, "\"\"");
    if (empty && (!lp || !rp))
        return fail(ps, f, "Invalid bridge remapping.");
    struct mqo_mosqconf_btopic *nt = realloc(b->topics, (b->n_topics + 1) * sizeof *nt);
    if (!nt)
        return -ENOMEM;
    b->topics = nt;
    struct mqo_mosqconf_btopic *bt = &nt[b->n_topics++];
    memset(bt, 0, sizeof *bt);
    bt->dir = dir;
    bt->qos = (uint8_t)qos;
    bt->at = here(f);
    if (!empty && !(bt->pattern = strdup(pattern)))
        return -ENOMEM;
    const char *prefixes[2] = {lp, rp};
    char **stored[2] = {&bt->local_prefix, &bt->remote_prefix};
    char **remap[2] = {&bt->local_topic, &bt->remote_topic};
    for (int i = 0; i < 2; i++) {
        if (!prefixes[i])
            continue;
        char *full = cat(prefixes[i], bt->pattern);
        if (!full)
            return -ENOMEM;
        int ok = mqo_mosqconf_sub_topic_ok(full);
        if (!ok) {
            fail(ps, f, "Invalid bridge topic local prefix and pattern combination '%s'.", full);
            free(full);
            return -EINVAL;
        }
        free(full);
        if (!(*stored[i] = strdup(prefixes[i])))
            return -ENOMEM;
    }
    for (int i = 0; i < 2; i++) {
        *remap[i] = *stored[i] ? cat(*stored[i], bt->pattern) : strdup(bt->pattern);
        if (!*remap[i])
            return -ENOMEM;
    }
    return 0;
}

/* ---- the option table ---- */

struct opt {
    const char *name;
    handler fn;
    size_t arg;
};


static const struct opt opts[] = {
    /* security: global, or the current listener's with per_listener_settings */
    {"acl_file", h_s_str, S(acl_file)},
    {"password_file", h_s_str, S(password_file)},
    {"psk_file", h_s_str, S(psk_file)},
    {"auto_id_prefix", h_s_str, S(auto_id_prefix)},
    {"allow_anonymous", h_s_bool, S(allow_anonymous)},
    {"allow_zero_length_clientid", h_s_bool, S(allow_zero_length_clientid)},
    {"auth_plugin", h_plugin, 0},
    {"plugin", h_plugin, 0},
    {"auth_plugin_deny_special_chars", h_deny_special, 0},
    {"check_retain_source", h_check_retain_source, 0},
    {"per_listener_settings", h_per_listener, 0},
    /* listeners */
    {"listener", h_listener, 0},
    {"port", h_port, 0},
    {"bind_address", h_bind_address, 0},
    {"bind_interface", h_l_str, L(bind_interface)},
    {"mount_point", h_mount_point, 0},
    {"protocol", h_kw, K_PROTOCOL},
    {"max_connections", h_max_connections, 0},
    {"max_qos", h_int, I_MAX_QOS},
    {"maximum_qos", h_int, I_MAX_QOS},
    {"max_topic_alias", h_int, I_MAX_TOPIC_ALIAS},
    {"socket_domain", h_kw, K_DOMAIN},
    {"use_username_as_clientid", h_l_bool, L(use_username_as_clientid)},
    {"http_dir", h_l_str, L(http_dir)},
    {"cafile", h_l_cert, L(cafile)},
    {"certfile", h_l_cert, L(certfile)},
    {"capath", h_l_str, L(capath)},
    {"keyfile", h_l_str, L(keyfile)},
    {"ciphers", h_l_str, L(ciphers)},
    {"ciphers_tls1.3", h_l_str, L(ciphers_tls13)},
    {"crlfile", h_l_str, L(crlfile)},
    {"dhparamfile", h_l_str, L(dhparamfile)},
    {"psk_hint", h_l_str, L(psk_hint)},
    {"tls_version", h_l_str, L(tls_version)},
    {"tls_engine", h_l_str, L(tls_engine)},
    {"tls_engine_kpass_sha1", h_kpass, 0},
    {"tls_keyform", h_keyform, 0},
    {"require_certificate", h_l_bool, L(require_certificate)},
    {"use_identity_as_username", h_l_bool, L(use_identity_as_username)},
    {"use_subject_as_username", h_l_bool, L(use_subject_as_username)},
    /* broker-wide */
    {"include_dir", h_include_dir, 0},
    {"message_size_limit", h_int, I_MESSAGE_SIZE_LIMIT},
    {"max_packet_size", h_int, I_MAX_PACKET_SIZE},
    {"max_inflight_messages", h_max_inflight_messages, 0},
    {"max_inflight_bytes", h_int, I_MAX_INFLIGHT_BYTES},
    {"max_queued_messages", h_int, I_MAX_QUEUED_MESSAGES},
    {"max_queued_bytes", h_int, I_MAX_QUEUED_BYTES},
    {"max_keepalive", h_int, I_MAX_KEEPALIVE},
    {"memory_limit", h_memory_limit, 0},
    {"queue_qos0_messages", h_g_bool, G(queue_qos0_messages)},
    {"upgrade_outgoing_qos", h_g_bool, G(upgrade_outgoing_qos)},
    {"retain_available", h_g_bool, G(retain_available)},
    {"allow_duplicate_messages", h_g_bool, G(allow_duplicate_messages)},
    {"persistence", h_g_bool, G(persistence)},
    {"retained_persistence", h_g_bool, G(persistence)},
    {"persistence_file", h_g_str, G(persistence_file)},
    {"persistence_location", h_g_str, G(persistence_location)},
    {"persistent_client_expiration", h_pce, 0},
    {"autosave_interval", h_int, I_AUTOSAVE},
    {"autosave_on_changes", h_g_bool, G(autosave_on_changes)},
    {"clientid_prefixes", h_g_str, G(clientid_prefixes)},
    {"connection_messages", h_g_bool, G(connection_messages)},
    {"set_tcp_nodelay", h_g_bool, G(set_tcp_nodelay)},
    {"sys_interval", h_int, I_SYS_INTERVAL},
    {"pid_file", h_g_str, G(pid_file)},
    /* the broker frees an old `user` value but keeps the pointer: a second one is a "Duplicate" */
    {"user", h_g_str, G(user)},
    {"log_dest", h_log_dest, 0},
    {"log_facility", h_int, I_LOG_FACILITY},
    {"log_timestamp", h_g_bool, G(log_timestamp)},
    {"log_timestamp_format", h_g_str, G(log_timestamp_format)},
    {"log_type", h_kw, K_LOG_TYPE},
    {"retry_interval", h_ignore_value, 0},
    {"websockets_log_level", h_int, I_WS_LOG_LEVEL},
    {"websockets_headers_size", h_int, I_WS_HEADERS},
    /* bridges */
    {"connection", h_connection, 0},
    {"address", h_address, 0},
    {"addresses", h_address, 0},
    {"topic", h_topic, 0},
    {"bridge_attempt_unsubscribe", h_b_bool, BR(attempt_unsubscribe)},
    {"bridge_cafile", h_b_cert, BR(tls_cafile)},
    {"bridge_capath", h_b_cert, BR(tls_capath)},
    {"bridge_certfile", h_b_cert, BR(tls_certfile)},
    {"bridge_keyfile", h_b_cert, BR(tls_keyfile)},
    {"bridge_alpn", h_b_str, BR(tls_alpn)},
    {"bridge_bind_address", h_b_str, BR(bind_address)},
    {"bridge_tls_version", h_b_str, BR(tls_version)},
    {"bridge_identity", h_b_psk, BR(tls_psk_identity)},
    {"bridge_psk", h_b_psk, BR(tls_psk)},
    {"bridge_insecure", h_b_bool, BR(tls_insecure)},
    {"bridge_require_ocsp", h_b_bool, BR(tls_ocsp_required)},
    {"bridge_outgoing_retain", h_b_bool, BR(outgoing_retain)},
    {"bridge_max_packet_size", h_int, I_B_MAX_PACKET},
    {"bridge_protocol_version", h_kw, K_VERSION},
    {"clientid", h_b_str, BR(remote_clientid)},
    {"remote_clientid", h_b_str, BR(remote_clientid)},
    {"local_clientid", h_b_str, BR(local_clientid)},
    {"username", h_b_str, BR(remote_username)},
    {"remote_username", h_b_str, BR(remote_username)},
    {"password", h_b_str, BR(remote_password)},
    {"remote_password", h_b_str, BR(remote_password)},
    {"local_username", h_b_str, BR(local_username)},
    {"local_password", h_b_str, BR(local_password)},
    {"notification_topic", h_b_str, BR(notification_topic)},
    {"cleansession", h_b_bool, BR(clean_start)},
    {"local_cleansession", h_b_bool, BR(clean_start_local)},
    {"notifications", h_b_bool, BR(notifications)},
    {"notifications_local_only", h_b_bool, BR(notifications_local_only)},
    {"round_robin", h_b_bool, BR(round_robin)},
    {"try_private", h_b_bool, BR(try_private)},
    {"idle_timeout", h_int, I_B_IDLE},
    {"threshold", h_int, I_B_THRESHOLD},
    {"keepalive_interval", h_int, I_B_KEEPALIVE},
    {"restart_timeout", h_restart_timeout, 0},
    {"start_type", h_kw, K_START},
};

static int process_line(struct ps *ps, struct pf *f)
{
    char *b = f->buf;
    if (b[0] == '#' || b[0] == '\n' || b[0] == '\r')
        return 0;
    for (;;) { /* trailing '\n' / '\r'; at length 0 the broker reads buf[-1], the guard */
        size_t n = strlen(b);
        char last = b[(ptrdiff_t)n - 1];
        if (last != '\n' && last != '\r')
            break;
        b[n - 1] = 0;
    }
    char *name = strtok_r(b, " ", &f->save);
    if (!name)
        return 0;
    if (!strncmp(name, "auth_opt_", 9))
        return h_plugin_opt(ps, f, name, 9);
    if (!strncmp(name, "plugin_opt_", 11))
        return h_plugin_opt(ps, f, name, 11);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(name, opts[i].name))
            return opts[i].fn(ps, f, name, opts[i].arg);
    return fail(ps, f, "Unknown configuration variable \"%s\".", name);
}

static int add_file(struct mqo_mosqconf *c, const char *path, const char **stored)
{
    char **nf = realloc(c->files, (c->n_files + 1) * sizeof *nf);
    if (!nf)
        return -ENOMEM;
    c->files = nf;
    if (!(nf[c->n_files] = strdup(path)))
        return -ENOMEM;
    *stored = nf[c->n_files++];
    return 0;
}

/* config__read_file(): one file, level 0 for the main one. from: the include_dir line. */
static int parse_file(struct ps *ps, const char *path, int level, struct mqo_mosqconf_loc from)
{
    struct pf f = {.level = level, .cur_listener = -1, .cur_bridge = -1, .plug_sec = LONG_MIN};
    int rc = add_file(ps->c, path, &f.file);
    if (rc)
        return rc;
    struct mqo_mosqconf_loc whole = {f.file, 0};
    char *data = NULL;
    size_t len = 0;
    rc = ps->fs.read(ps->fs.ctx, path, &data, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        /* an included file the broker cannot read is reported at its include_dir line */
        struct mqo_mosqconf_loc at = level ? from : whole;
        int e = rc;
        if (e == -EISDIR)
            fail_at(ps, at, "Config file %s is a directory.", path);
        else if (e == -EFBIG)
            fail_at(ps, at, "Config file %s is larger than %u bytes: mqoff refuses it", path,
                    MAX_FILE);
        else
            fail_at(ps, at, "Unable to open config file %s (%s).", path, strerror(-e));
        free(data);
        return level == 0 && e != -EISDIR && e != -EFBIG ? e : -EINVAL; /* main file: errno */
    }
    struct rd r = {.d = data, .n = len, .buflen = 1000};
    while (rc == 0) {
        rc = rd_next(&r);
        if (rc <= 0)
            break;
        f.line++;
        f.buf = rd_buf(&r);
        f.save = NULL;
        rc = process_line(ps, &f);
    }
    free(r.mem);
    free(data);
    if (rc == -EINVAL && level > 0 && ps->errlen) {
        size_t n = strlen(ps->err);
        snprintf(ps->err + n, ps->errlen - n, " (included from %s:%u)", from.file, from.line);
    }
    return rc;
}

/* ---- after reading: the broker's checks and defaults ---- */

static int dup_str(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

/* config__parse_args(): the default listener exists when one of these was set. */
static int default_listener_used(const struct mqo_mosqconf_listener *d, int per_listener)
{
    (void)per_listener; /* its security set is only filled with per_listener_settings */
    return d->bind_interface || d->cafile || d->capath || d->certfile || d->keyfile ||
           d->tls_engine || d->tls_keyform_engine || d->tls_engine_kpass_sha1 || d->ciphers ||
           d->ciphers_tls13 || d->dhparamfile || d->psk_hint || d->require_certificate ||
           d->crlfile || d->use_identity_as_username || d->use_subject_as_username ||
           d->use_username_as_clientid || d->host || d->port || d->max_connections != -1 ||
           d->max_qos != 2 || d->mount_point || d->protocol != MQO_MOSQCONF_MQTT ||
           d->socket_domain || d->sec.password_file || d->sec.psk_file || d->sec.n_plugins ||
           d->sec.allow_zero_length_clientid != 1;
}

/* The default listener as the broker copies it into the list: everything but http_dir and
 * auto_id_prefix. */
static int add_default_listener(struct ps *ps)
{
    struct mqo_mosqconf *c = ps->c;
    struct mqo_mosqconf_listener *d = &ps->deflt;
    struct mqo_mosqconf_listener *nl = realloc(c->listeners, (c->n_listeners + 1) * sizeof *nl);
    if (!nl)
        return -ENOMEM;
    c->listeners = nl;
    struct mqo_mosqconf_listener *l = &nl[c->n_listeners++];
    listener_defaults(l);
    l->origin = MQO_MOSQCONF_DEFAULT;
    l->at = d->at;
    l->port = d->port ? d->port : 1883;
    l->socket_domain = d->socket_domain;
    l->protocol = d->protocol;
    l->max_qos = d->max_qos;
    l->max_topic_alias = d->max_topic_alias;
    l->max_connections = d->max_connections;
    l->use_username_as_clientid = d->use_username_as_clientid;
    l->tls_keyform_engine = d->tls_keyform_engine;
    l->tls_engine_kpass_sha1 = d->tls_engine_kpass_sha1;
    l->require_certificate = d->require_certificate;
    l->use_identity_as_username = d->use_identity_as_username;
    l->use_subject_as_username = d->use_subject_as_username;
    l->sec.allow_anonymous = d->sec.allow_anonymous;
    l->sec.allow_zero_length_clientid = d->sec.allow_zero_length_clientid;
    l->sec.acl_at = d->sec.acl_at;
    /* move the strings and plugins over */
    char **from[] = {&d->host, &d->mount_point, &d->bind_interface, &d->tls_version,
                     &d->tls_engine, &d->cafile, &d->capath, &d->certfile, &d->keyfile,
                     &d->ciphers, &d->ciphers_tls13, &d->dhparamfile, &d->psk_hint,
                     &d->crlfile, &d->sec.acl_file, &d->sec.password_file, &d->sec.psk_file};
    char **to[] = {&l->host, &l->mount_point, &l->bind_interface, &l->tls_version,
                   &l->tls_engine, &l->cafile, &l->capath, &l->certfile, &l->keyfile,
                   &l->ciphers, &l->ciphers_tls13, &l->dhparamfile, &l->psk_hint,
                   &l->crlfile, &l->sec.acl_file, &l->sec.password_file, &l->sec.psk_file};
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        *to[i] = *from[i];
        *from[i] = NULL;
    }
    l->sec.plugins = d->sec.plugins;
    l->sec.n_plugins = d->sec.n_plugins;
    d->sec.plugins = NULL;
    d->sec.n_plugins = 0;
    return 0;
}

static int add_local_only(struct mqo_mosqconf *c)
{
    static const char *const hosts[2] = {"127.0.0.1", "::1"};
    struct mqo_mosqconf_listener *nl = calloc(2, sizeof *nl);
    if (!nl)
        return -ENOMEM;
    free(c->listeners);
    c->listeners = nl;
    for (int i = 0; i < 2; i++) {
        struct mqo_mosqconf_listener *l = &nl[i];
        listener_defaults(l);
        l->origin = MQO_MOSQCONF_LOCAL_ONLY;
        l->port = 1883;
        l->sec.allow_anonymous = 1;
        l->at.file = c->files[0];
        c->n_listeners++;
        if (dup_str(&l->host, hosts[i]))
            return -ENOMEM;
    }
    return 0;
}

static int finish(struct ps *ps)
{
    struct mqo_mosqconf *c = ps->c;
    int rc;
    /* config__read(): allow_anonymous defaults, bridge completeness */
    if (c->local_only) {
        c->sec.allow_anonymous = 1;
    } else if (c->per_listener_settings) {
        for (size_t i = 0; i < c->n_listeners; i++)
            if (c->listeners[i].sec.allow_anonymous == -1)
                c->listeners[i].sec.allow_anonymous = 0;
    } else if (c->sec.allow_anonymous == -1) {
        c->sec.allow_anonymous = 0;
    }
    for (size_t i = 0; i < c->n_bridges; i++) {
        struct mqo_mosqconf_bridge *b = &c->bridges[i];
        if (!b->n_addresses)
            return fail_at(ps, b->at, "Invalid bridge configuration: no remote addresses defined.");
        if (!b->n_topics)
            return fail_at(ps, b->at, "Invalid bridge configuration: no topics defined.");
        if (b->tls_psk && !b->tls_psk_identity)
            return fail_at(ps, b->at, "Invalid bridge configuration: missing bridge_identity.");
        if (b->tls_psk_identity && !b->tls_psk)
            return fail_at(ps, b->at, "Invalid bridge configuration: missing bridge_psk.");
    }
    /* config__parse_args(): the default listener */
    if (default_listener_used(&ps->deflt, c->per_listener_settings) &&
        (rc = add_default_listener(ps)))
        return rc;
    /* config__check(): bridge client ids, auto_id_prefix */
    char host[256];
    const char *hn = ps->hostname;
    if (!hn && c->n_bridges) {
        if (gethostname(host, sizeof host))
            return fail_at(ps, c->bridges[0].at, "gethostname failed");
        host[sizeof host - 1] = 0;
        hn = host;
    }
    for (size_t i = 0; i < c->n_bridges; i++) {
        struct mqo_mosqconf_bridge *b = &c->bridges[i];
        if (!b->remote_clientid) {
            char *h = cat(hn, ".");
            b->remote_clientid = h ? cat(h, b->name) : NULL;
            free(h);
            if (!b->remote_clientid)
                return -ENOMEM;
        }
        if (!b->local_clientid && !(b->local_clientid = cat("local.", b->remote_clientid)))
            return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_bridges; i++)
        for (size_t j = i + 1; j < c->n_bridges; j++)
            if (!strcmp(c->bridges[i].local_clientid, c->bridges[j].local_clientid))
                return fail_at(ps, c->bridges[j].at,
                               "Bridge local_clientid '%s' is not unique. Try changing or setting "
                               "the local_clientid value for one of the bridges.",
                               c->bridges[i].local_clientid);
    if (c->per_listener_settings) {
        for (size_t i = 0; i < c->n_listeners; i++)
            if (!c->listeners[i].sec.auto_id_prefix &&
                dup_str(&c->listeners[i].sec.auto_id_prefix, "auto-"))
                return -ENOMEM;
    } else if (!c->sec.auto_id_prefix && dup_str(&c->sec.auto_id_prefix, "auto-")) {
        return -ENOMEM;
    }
    /* listeners__start(): none at all means local only */
    if (c->n_listeners == 0 && (rc = add_local_only(c)))
        return rc;
    /* at CONNECT the broker tests allow_anonymous != false: "unset" (-1) admits */
    for (size_t i = 0; i < c->n_listeners; i++)
        c->listeners[i].sec.allow_anonymous = c->listeners[i].sec.allow_anonymous != 0;
    c->sec.allow_anonymous = c->sec.allow_anonymous != 0;
    return 0;
}

/* ---- files ---- */

static int fs_read(void *ctx, const char *path, char **data, size_t *len)
{
    (void)ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    char *b = NULL;
    size_t n = 0, cap = 0;
    while (rc == 0) {
        if (n == cap) {
            if (cap >= MAX_FILE) {
                rc = -EFBIG;
                break;
            }
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(b, cap);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            b = nb;
        }
        ssize_t got = read(fd, b + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = -errno;
        else if (got == 0)
            break;
        else
            n += (size_t)got;
    }
    close(fd);
    if (rc) {
        free(b);
        return rc;
    }
    *data = b;
    *len = n;
    return 0;
}

static int fs_list(void *ctx, const char *dir, char ***names, size_t *n)
{
    (void)ctx;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **v = NULL;
    size_t k = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char **nv = realloc(v, (k + 1) * sizeof *nv);
        if (!nv || !(nv[k] = strdup(e->d_name))) {
            if (nv)
                v = nv;
            rc = -ENOMEM;
            break;
        }
        v = nv;
        k++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    *names = v;
    *n = k;
    return 0;
}

int mqo_mosqconf_load(const char *path, const struct mqo_mosqconf_opts *o,
                      struct mqo_mosqconf **out, char *err, size_t errlen)
{
    static const struct mqo_mosqconf_fs real = {fs_read, fs_list, NULL};
    *out = NULL;
    if (errlen)
        err[0] = 0;
    struct ps ps = {.err = err, .errlen = errlen};
    ps.fs = o && o->fs ? *o->fs : real;
    ps.hostname = o ? o->hostname : NULL;
    listener_defaults(&ps.deflt);
    struct mqo_mosqconf *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    ps.c = c;
    c->local_only = 1;
    c->sec.allow_anonymous = -1;
    c->sec.allow_zero_length_clientid = 1;
    c->max_inflight_messages = 20;
    c->max_queued_messages = 1000;
    c->retain_available = 1;
    c->max_keepalive = 65535;
    c->sys_interval = 10;
    c->autosave_interval = 1800;
    c->connection_messages = 1;
    c->log_timestamp = 1;
    struct mqo_mosqconf_loc none = {NULL, 0};
    int rc = parse_file(&ps, path, 0, none);
    if (rc == 0)
        rc = finish(&ps);
    listener_free(&ps.deflt);
    if (rc) {
        if (rc == -ENOMEM && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        mqo_mosqconf_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
