/* acl/: Mosquitto 2.0.11 acl_file semantics (Debian 12's broker), reimplemented.
 *
 * Behaviour reproduced, with the Mosquitto function it comes from:
 *
 * aclfile__parse() (src/security_default.c) + fgets_extending(), misc__trimblanks()
 * (lib/misc_mosq.c) — the file is read line by line ('\n' ends a line):
 *  1. trailing whitespace (C-locale isspace: ' ' \t \n \v \f \r) is removed;
 *  2. an empty line is skipped; a line whose FIRST byte is '#' is a comment. " # x" (comment
 *     after leading blanks) is NOT a comment: it is an invalid line (error);
 *  3. the first word is taken after skipping leading SPACES only (a leading tab makes the
 *     word "\ttopic": invalid line). Words are separated by spaces only;
 *  4. "topic"/"pattern" (case-sensitive): the next space-separated word is the access
 *     ("read", "write", "readwrite", "deny"); if there is nothing after it, that word is the
 *     topic and the access is readwrite ("topic read" is a readwrite rule on topic "read").
 *     Otherwise everything after the single space that follows the access word, with
 *     leading/trailing whitespace trimmed, is the topic: "topic read a b" has topic "a b".
 *     Any other access word is an error; "topic" alone is an error ("Empty topic");
 *  5. the topic must pass mosquitto_sub_topic_check() (lib/util_topic.c): '+' alone in its
 *     level, '#' alone in the last level, at most 65535 bytes, at most 200 '/'
 *     (TOPIC_HIERARCHY_LIMIT). Otherwise the file is refused. Pattern rules are checked
 *     before substitution ("%c#" is invalid);
 *  6. "user <name>": the name is the rest of the line, whitespace-trimmed, and may contain
 *     spaces; "user" alone is an error. Following "topic" lines belong to that user. A name
 *     given twice merges both sections (add__acl finds the existing one). "topic" lines before
 *     the first "user" line form the anonymous section. "pattern" lines are global wherever
 *     they appear;
 *  7. any other first word is an error ("Invalid line"). The first error stops the parse and
 *     the broker refuses to start.
 *  add__acl() / add__acl_pattern(): "deny" rules are put at the front of their list, so
 *  every deny rule of a list is tried before any grant of that list. A section (user or
 *  anonymous) exists only once it has a rule: "user x" with no topic lines creates nothing.
 *
 * mosquitto_acl_check() (src/security.c), then acl__check_dollar():
 *  a. topic starting with "$SYS" (4-byte prefix): WRITE is denied unless the topic matches
 *     "$SYS/broker/connection/+/state"; otherwise (READ, or that topic) go on to (c);
 *  b. topic starting with "$share" (6-byte prefix): READ and WRITE denied;
 *  (other '$' topics, e.g. $CONTROL/..., get no special ACL treatment here.)
 * mosquitto_acl_check_default() (src/security_default.c), the callback for acl_file:
 *  c. the client's list is the section whose name equals the username (strcmp), or the
 *     anonymous section when the client has no username; a username with no section, or an
 *     anonymous client when there is no anonymous section, has no list;
 *  d. no list and no pattern at all: denied;
 *  e. list: if any deny rule matches: DENIED (patterns are not consulted); else if any
 *     rule granting the requested access (READ or WRITE bit) matches: GRANTED;
 *     a matching rule without the requested bit has no effect;
 *  f. if any pattern exists: a username or client id containing '+' or '#' is DENIED
 *     (2.0 checks only "+#"; '/' is allowed and substitutes as a level separator);
 *  g. patterns, deny ones first: a pattern containing "%u" is skipped for a client without
 *     username; "%c" and "%u" (scanned left to right) are replaced by client id/username;
 *     the result is matched like a list rule: deny -> DENIED, granting bit -> GRANTED;
 *  h. otherwise DENIED (also for an acl_file with no rule at all).
 *  MOSQ_ACL_SUBSCRIBE / UNSUBSCRIBE always pass the acl_file check in 2.0 (not in this API:
 *  the broker checks READ per delivery and WRITE per PUBLISH, as mqo_acl_check does).
 *
 * mosquitto_topic_matches_sub() (lib/util_topic.c), for a valid filter f and topic t:
 *  false if either is empty or t contains '+' or '#'; false if exactly one of f, t starts
 *  with '$'; otherwise MQTT matching: '+' = exactly one level (possibly empty), '#' = the
 *  rest, including none ("a/#" matches "a", "+/#" matches "x").
 *
 * handle_connect.c: a zero-length username is read as no username (packet__read_binary gives
 * NULL), so has_username with user_len 0 is treated as anonymous.
 *
 * Deliberate differences (all fail closed):
 *  - a NUL byte in the acl text is a parse error (Mosquitto's fgets_extending() then silently
 *    drops the rest of the file, or reads out of bounds when the line starts with NUL);
 *  - mqo_acl_load() refuses a path it cannot read() (a directory is read by Mosquitto as an
 *    empty, deny-everything file);
 *  - the check denies strings the broker can never hold: NUL in client id, username or
 *    topic, strings over 65535 bytes, an access other than READ or WRITE;
 *  - an empty client id stands for "unknown" (Mosquitto always has a non-empty id, it assigns
 *    one to clients that send none): a check that reaches a "%c" pattern is denied.
 */
#include "acl/acl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MQTT_STR_MAX 65535u
#define HIERARCHY_LIMIT 200u /* Mosquitto's TOPIC_HIERARCHY_LIMIT */
#define SUBST_STACK 512u

struct acl_rule {
    char *f;          /* topic filter / pattern text, NUL-terminated */
    uint32_t len;     /* strlen(f) */
    uint8_t access;   /* MQO_ACL_READ | MQO_ACL_WRITE bits; 0 = deny */
    uint32_t ccount;  /* patterns: number of "%c" */
    uint32_t ucount;  /* patterns: number of "%u" */
    uint32_t nwild;   /* number of '+' and '#' characters */
};

struct acl_list {
    struct acl_rule *r; /* deny rules first (after finalisation), then grants */
    size_t n, cap;
    size_t n_deny;
};

struct acl_section {
    uint8_t *name;
    size_t name_len;
    struct acl_list l;
};

struct mqo_acl {
    struct acl_list anon;      /* "topic" lines before the first "user" line */
    struct acl_section *users; /* sorted by (name_len, name) after parsing */
    size_t n_users, cap_users;
    uint32_t *uidx;            /* open-addressing hash of users: index + 1, 0 = empty */
    size_t uidx_mask;
    struct acl_list patterns;
    size_t n_rules;
};

/* ---- helpers ---- */

static int c_isspace(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int has_byte(const uint8_t *s, size_t n, uint8_t c)
{
    return n > 0 && memchr(s, c, n) != NULL;
}

#define SC_NUL 1
#define SC_WILD 2

/* One pass over a short string: SC_NUL if it holds a NUL, SC_WILD if a '+' or '#'. */
static int scan(const uint8_t *s, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == 0)
            r |= SC_NUL;
        else if (c == '+' || c == '#')
            r |= SC_WILD;
    }
    return r;
}

/* mosquitto_sub_topic_check(): wildcards occupy whole levels, '#' only last, length and
 * hierarchy limits. An empty string passes (the parser never produces one). */
static int filter_valid(const uint8_t *f, size_t n)
{
    if (n > MQTT_STR_MAX)
        return 0;
    size_t slashes = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = f[i];
        if (c == '/') {
            slashes++;
            continue;
        }
        if (c != '+' && c != '#')
            continue;
        if (i > 0 && f[i - 1] != '/')
            return 0;
        if (c == '+' && i + 1 < n && f[i + 1] != '/')
            return 0;
        if (c == '#' && i + 1 != n)
            return 0;
    }
    return slashes <= HIERARCHY_LIMIT;
}

/* Topic match with mosquitto_topic_matches_sub()'s result for a valid filter f and a topic t
 * that holds neither '+', '#' nor NUL (the caller rejects those: Mosquitto never matches
 * them). */
static int filter_match(const uint8_t *f, size_t fl, const uint8_t *t, size_t tl)
{
    if (fl == 0 || tl == 0)
        return 0;
    if ((f[0] == '$') != (t[0] == '$'))
        return 0;
    size_t i = 0, j = 0;
    for (;;) {
        /* i and j are at the start of a level */
        if (i < fl && f[i] == '#')
            return 1; /* '#' is the whole last level: takes what is left, even nothing */
        if (i < fl && f[i] == '+') {
            i++;
            while (j < tl && t[j] != '/')
                j++;
        } else {
            while (i < fl && f[i] != '/') {
                if (j >= tl || t[j] != f[i])
                    return 0;
                i++;
                j++;
            }
            if (j < tl && t[j] != '/')
                return 0;
        }
        /* both levels ended: each side is at '/' or at its end */
        if (i == fl)
            return j == tl;
        if (j == tl) /* topic ended, filter goes on: only "/#" matches "no more levels" */
            return fl - i == 2 && f[i + 1] == '#';
        i++;
        j++;
    }
}

/* ---- lists ---- */

static void list_free(struct acl_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->r[i].f);
    free(l->r);
    memset(l, 0, sizeof *l);
}

static int list_push(struct acl_list *l, const struct acl_rule *r)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        struct acl_rule *nr = realloc(l->r, nc * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        l->r = nr;
        l->cap = nc;
    }
    l->r[l->n++] = *r;
    return 0;
}

/* Moves the deny rules to the front, keeping the order within each group. */
static int list_finish(struct acl_list *l)
{
    size_t nd = 0;
    for (size_t i = 0; i < l->n; i++)
        nd += l->r[i].access == 0;
    l->n_deny = nd;
    if (nd == 0 || nd == l->n)
        return 0;
    struct acl_rule *nr = malloc(l->n * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    size_t d = 0, g = nd;
    for (size_t i = 0; i < l->n; i++)
        nr[l->r[i].access == 0 ? d++ : g++] = l->r[i];
    free(l->r);
    l->r = nr;
    l->cap = l->n;
    return 0;
}

void mqo_acl_free(struct mqo_acl *a)
{
    if (!a)
        return;
    list_free(&a->anon);
    for (size_t i = 0; i < a->n_users; i++) {
        free(a->users[i].name);
        list_free(&a->users[i].l);
    }
    free(a->users);
    free(a->uidx);
    list_free(&a->patterns);
    free(a);
}

size_t mqo_acl_rule_count(const struct mqo_acl *a)
{
    return a ? a->n_rules : 0;
}

static int list_same(const struct acl_list *x, const struct acl_list *y)
{
    if (x->n != y->n || x->n_deny != y->n_deny)
        return 0;
    for (size_t i = 0; i < x->n; i++) {
        const struct acl_rule *r = &x->r[i], *q = &y->r[i];
        if (r->len != q->len || r->access != q->access || memcmp(r->f, q->f, r->len) != 0)
            return 0;
    }
    return 1;
}

int mqo_acl_same(const struct mqo_acl *a, const struct mqo_acl *b)
{
    if (!a || !b)
        return a == b;
    if (a->n_users != b->n_users || !list_same(&a->anon, &b->anon) ||
        !list_same(&a->patterns, &b->patterns))
        return 0;
    /* users are sorted by (name length, name) and merged: same names at the same indexes */
    for (size_t i = 0; i < a->n_users; i++) {
        const struct acl_section *s = &a->users[i], *t = &b->users[i];
        if (s->name_len != t->name_len || memcmp(s->name, t->name, s->name_len) != 0 ||
            !list_same(&s->l, &t->l))
            return 0;
    }
    return 1;
}

static int section_cmp(const uint8_t *n1, size_t l1, const uint8_t *n2, size_t l2)
{
    if (l1 != l2)
        return l1 < l2 ? -1 : 1;
    return l1 ? memcmp(n1, n2, l1) : 0;
}

static int section_qcmp(const void *x, const void *y)
{
    const struct acl_section *s1 = x, *s2 = y;
    return section_cmp(s1->name, s1->name_len, s2->name, s2->name_len);
}

/* Sorts user sections by name and merges sections of the same name (a name given on
 * several "user" lines is one section in Mosquitto). On ENOMEM every section is still
 * owned by a (possibly emptied) entry, so mqo_acl_free releases everything. */
static int users_finish(struct mqo_acl *a)
{
    if (a->n_users == 0)
        return 0;
    qsort(a->users, a->n_users, sizeof *a->users, section_qcmp);
    struct acl_section *u = a->users;
    size_t i = 0;
    while (i < a->n_users) {
        size_t j = i + 1, total = u[i].l.n;
        while (j < a->n_users &&
               section_cmp(u[i].name, u[i].name_len, u[j].name, u[j].name_len) == 0)
            total += u[j++].l.n;
        if (j > i + 1) {
            struct acl_rule *nr = realloc(u[i].l.r, total * sizeof *nr);
            if (!nr)
                return -ENOMEM;
            u[i].l.r = nr;
            u[i].l.cap = total;
            for (size_t k = i + 1; k < j; k++) {
                memcpy(&nr[u[i].l.n], u[k].l.r, u[k].l.n * sizeof *nr);
                u[i].l.n += u[k].l.n;
                free(u[k].l.r);
                free(u[k].name);
                memset(&u[k], 0, sizeof u[k]);
            }
        }
        i = j;
    }
    size_t w = 0;
    for (i = 0; i < a->n_users; i++)
        if (u[i].l.n)
            u[w++] = u[i];
    a->n_users = w;
    return 0;
}

static uint64_t name_hash(const uint8_t *s, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int users_index(struct mqo_acl *a)
{
    if (a->n_users == 0)
        return 0;
    if (a->n_users > UINT32_MAX / 2)
        return -ENOMEM;
    size_t sz = 8;
    while (sz < a->n_users * 2)
        sz *= 2;
    a->uidx = calloc(sz, sizeof *a->uidx);
    if (!a->uidx)
        return -ENOMEM;
    a->uidx_mask = sz - 1;
    for (size_t i = 0; i < a->n_users; i++) {
        size_t k = (size_t)name_hash(a->users[i].name, a->users[i].name_len) & a->uidx_mask;
        while (a->uidx[k])
            k = (k + 1) & a->uidx_mask;
        a->uidx[k] = (uint32_t)(i + 1);
    }
    return 0;
}

/* ---- parser ---- */

struct parse_state {
    struct mqo_acl *a;
    const uint8_t *user; /* current "user" name (points into the text), NULL = anonymous */
    size_t user_len;
    struct acl_section *cur; /* section created for the current "user" line, if any */
};

static int add_rule(struct parse_state *ps, int pattern, const uint8_t *t, size_t tl,
                    uint8_t access)
{
    struct acl_rule r;
    memset(&r, 0, sizeof r);
    r.f = malloc(tl + 1);
    if (!r.f)
        return -ENOMEM;
    if (tl)
        memcpy(r.f, t, tl);
    r.f[tl] = '\0';
    r.len = (uint32_t)tl;
    r.access = access;
    for (size_t i = 0; i < tl; i++) {
        if (t[i] == '+' || t[i] == '#')
            r.nwild++;
        if (pattern && t[i] == '%' && i + 1 < tl && (t[i + 1] == 'c' || t[i + 1] == 'u')) {
            if (t[i + 1] == 'c')
                r.ccount++;
            else
                r.ucount++;
            i++;
        }
    }

    struct acl_list *l;
    if (pattern) {
        l = &ps->a->patterns;
    } else if (!ps->user) {
        l = &ps->a->anon;
    } else {
        if (!ps->cur) {
            struct mqo_acl *a = ps->a;
            if (a->n_users == a->cap_users) {
                size_t nc = a->cap_users ? a->cap_users * 2 : 8;
                struct acl_section *ns = realloc(a->users, nc * sizeof *ns);
                if (!ns) {
                    free(r.f);
                    return -ENOMEM;
                }
                a->users = ns;
                a->cap_users = nc;
            }
            struct acl_section *s = &a->users[a->n_users];
            memset(s, 0, sizeof *s);
            s->name = malloc(ps->user_len);
            if (!s->name) {
                free(r.f);
                return -ENOMEM;
            }
            memcpy(s->name, ps->user, ps->user_len);
            s->name_len = ps->user_len;
            a->n_users++;
            ps->cur = s;
        }
        l = &ps->cur->l;
    }
    if (list_push(l, &r) != 0) {
        free(r.f);
        return -ENOMEM;
    }
    ps->a->n_rules++;
    return 0;
}

#define SHOWN 80 /* bytes of a line quoted in an error message */

static int parse_line(struct parse_state *ps, const uint8_t *s, size_t n, unsigned line,
                      char *err, size_t errlen)
{
    if (has_byte(s, n, 0)) {
        set_err(err, errlen, "line %u: NUL byte in acl file", line);
        return -EINVAL;
    }
    while (n > 0 && c_isspace(s[n - 1]))
        n--;
    if (n == 0 || s[0] == '#')
        return 0;

    /* first word: leading spaces skipped, ends at a space (strtok_r with " ") */
    size_t p = 0;
    while (p < n && s[p] == ' ')
        p++;
    size_t ks = p;
    while (p < n && s[p] != ' ')
        p++;
    size_t kl = p - ks;
    const uint8_t *kw = s + ks;
    if (p < n)
        p++; /* the separator */

    int is_topic = kl == 5 && memcmp(kw, "topic", 5) == 0;
    int is_pattern = kl == 7 && memcmp(kw, "pattern", 7) == 0;
    if (is_topic || is_pattern) {
        while (p < n && s[p] == ' ')
            p++;
        if (p == n) {
            set_err(err, errlen, "line %u: Empty topic", line);
            return -EINVAL;
        }
        size_t as = p;
        while (p < n && s[p] != ' ')
            p++;
        size_t al = p - as;
        const uint8_t *t;
        size_t tl;
        uint8_t access;
        if (p == n) {
            /* a single word: it is the topic, access readwrite */
            t = s + as;
            tl = al;
            access = MQO_ACL_READ | MQO_ACL_WRITE;
        } else {
            p++; /* the separator; what follows ends in a non-blank (trailing ones cut) */
            while (p < n && c_isspace(s[p]))
                p++;
            t = s + p;
            tl = n - p;
            const uint8_t *ac = s + as;
            if (al == 4 && memcmp(ac, "read", 4) == 0)
                access = MQO_ACL_READ;
            else if (al == 5 && memcmp(ac, "write", 5) == 0)
                access = MQO_ACL_WRITE;
            else if (al == 9 && memcmp(ac, "readwrite", 9) == 0)
                access = MQO_ACL_READ | MQO_ACL_WRITE;
            else if (al == 4 && memcmp(ac, "deny", 4) == 0)
                access = 0;
            else {
                set_err(err, errlen, "line %u: Invalid topic access type \"%.*s\"", line,
                        (int)(al > SHOWN ? SHOWN : al), (const char *)ac);
                return -EINVAL;
            }
        }
        if (tl == 0 || !filter_valid(t, tl)) {
            set_err(err, errlen, "line %u: Invalid ACL topic \"%.*s\"", line,
                    (int)(tl > SHOWN ? SHOWN : tl), (const char *)t);
            return -EINVAL;
        }
        return add_rule(ps, is_pattern, t, tl, access);
    }
    if (kl == 4 && memcmp(kw, "user", 4) == 0) {
        if (p == n) {
            set_err(err, errlen, "line %u: Missing username", line);
            return -EINVAL;
        }
        while (p < n && c_isspace(s[p]))
            p++;
        ps->user = s + p;
        ps->user_len = n - p;
        ps->cur = NULL;
        return 0;
    }
    set_err(err, errlen, "line %u: Invalid line: %.*s", line, (int)(kl > SHOWN ? SHOWN : kl),
            (const char *)kw);
    return -EINVAL;
}

int mqo_acl_parse(const char *text, size_t len, struct mqo_acl **out, char *err, size_t errlen)
{
    if (!out || (!text && len))
        return -EINVAL;
    *out = NULL;
    set_err(err, errlen, "%s", "");
    struct mqo_acl *a = calloc(1, sizeof *a);
    if (!a) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct parse_state ps = { .a = a, .user = NULL, .user_len = 0, .cur = NULL };
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    unsigned line = 0;
    int rc = 0;
    while (pos < len) {
        line++;
        const uint8_t *ls = s + pos;
        const uint8_t *nl = memchr(ls, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - ls) : len - pos;
        pos += ll + (nl ? 1 : 0);
        rc = parse_line(&ps, ls, ll, line, err, errlen);
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = users_finish(a);
    if (rc == 0)
        rc = users_index(a);
    if (rc != 0) {
        if (rc == -ENOMEM)
            set_err(err, errlen, "line %u: out of memory", line);
        mqo_acl_free(a);
        return rc;
    }
    if (list_finish(&a->anon) != 0 || list_finish(&a->patterns) != 0) {
        rc = -ENOMEM;
    } else {
        for (size_t i = 0; i < a->n_users && rc == 0; i++)
            rc = list_finish(&a->users[i].l);
    }
    if (rc != 0) {
        set_err(err, errlen, "out of memory");
        mqo_acl_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int mqo_acl_load(const char *path, struct mqo_acl **out, char *err, size_t errlen)
{
    if (!path || !out)
        return -EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                close(fd);
                set_err(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
            }
            buf = nb;
            cap = nc;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            set_err(err, errlen, "%s: %s", path, strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    char msg[256];
    int rc = mqo_acl_parse(buf, n, out, msg, sizeof msg);
    free(buf);
    if (rc != 0)
        set_err(err, errlen, "%s: %s", path, msg);
    return rc;
}

/* ---- check ---- */

static const struct acl_list *find_user(const struct mqo_acl *a, const uint8_t *u, size_t ul)
{
    if (!a->uidx)
        return NULL;
    size_t k = (size_t)name_hash(u, ul) & a->uidx_mask;
    for (uint32_t e; (e = a->uidx[k]) != 0; k = (k + 1) & a->uidx_mask) {
        const struct acl_section *s = &a->users[e - 1];
        if (s->name_len == ul && memcmp(s->name, u, ul) == 0)
            return &s->l;
    }
    return NULL;
}

/* Returns 0 (denied), 1 (granted) or -1 (no decision) for a list of plain rules. */
static int list_eval(const struct acl_list *l, const uint8_t *t, size_t tl, int access)
{
    for (size_t i = 0; i < l->n_deny; i++)
        if (filter_match((const uint8_t *)l->r[i].f, l->r[i].len, t, tl))
            return 0;
    for (size_t i = l->n_deny; i < l->n; i++)
        if ((l->r[i].access & access) && filter_match((const uint8_t *)l->r[i].f, l->r[i].len, t, tl))
            return 1;
    return -1;
}

/* Substitutes %c / %u of pattern r and matches the result against t. Returns 1 on a match,
 * 0 on no match, -1 when memory runs out. */
static int pattern_match(const struct acl_rule *r, const uint8_t *cid, size_t cl,
                         const uint8_t *user, size_t ul, int anonymous, const uint8_t *t,
                         size_t tl)
{
    if (r->ccount == 0 && (r->ucount == 0 || anonymous))
        return filter_match((const uint8_t *)r->f, r->len, t, tl);
    uint64_t need = (uint64_t)r->len - 2u * (uint64_t)r->ccount + (uint64_t)r->ccount * cl;
    if (!anonymous)
        need = need - 2u * (uint64_t)r->ucount + (uint64_t)r->ucount * ul;
    /* Every filter byte but the wildcards (and one '/' before a final '#') consumes a topic
     * byte, so a longer result cannot match: this also bounds the buffer. */
    if (need > (uint64_t)tl + r->nwild + 1u)
        return 0;
    uint8_t stackbuf[SUBST_STACK];
    uint8_t *b = stackbuf;
    if (need > sizeof stackbuf) {
        b = malloc((size_t)need);
        if (!b)
            return -1;
    }
    size_t o = 0;
    const uint8_t *f = (const uint8_t *)r->f;
    for (size_t i = 0; i < r->len; i++) {
        if (f[i] == '%' && i + 1 < r->len) {
            if (f[i + 1] == 'c') {
                if (cl)
                    memcpy(b + o, cid, cl);
                o += cl;
                i++;
                continue;
            }
            if (f[i + 1] == 'u' && !anonymous) {
                if (ul)
                    memcpy(b + o, user, ul);
                o += ul;
                i++;
                continue;
            }
        }
        b[o++] = f[i];
    }
    /* o > 0 here: need > 0 since r has a "%c" (cid non-empty) or a "%u" with a username,
     * or a non-substituted byte; the guard also tells GCC that b[0..o) was written. */
    int m = o > 0 && filter_match(b, o, t, tl);
    if (b != stackbuf)
        free(b);
    return m;
}

static int starts_with(const uint8_t *t, size_t tl, const char *p, size_t pl)
{
    return tl >= pl && memcmp(t, p, pl) == 0;
}

int mqo_acl_check(const struct mqo_acl *a, const uint8_t *client_id, size_t cid_len,
                  const uint8_t *username, size_t user_len, int has_username,
                  const uint8_t *topic, size_t topic_len, int access)
{
    if (!a || (access != MQO_ACL_READ && access != MQO_ACL_WRITE))
        return 0;
    if ((!client_id && cid_len) || (!topic && topic_len) || (has_username && !username && user_len))
        return 0;
    /* a zero-length username is no username (Mosquitto's CONNECT reading) */
    int anonymous = !has_username || user_len == 0;
    if (anonymous)
        user_len = 0;
    if (cid_len > MQTT_STR_MAX || user_len > MQTT_STR_MAX || topic_len > MQTT_STR_MAX)
        return 0;
    /* No filter matches an empty topic or one holding a wildcard, so every path denies. */
    if (topic_len == 0 || scan(topic, topic_len) != 0)
        return 0;
    int sc_cid = scan(client_id, cid_len), sc_user = scan(username, user_len);
    if ((sc_cid | sc_user) & SC_NUL)
        return 0;

    /* acl__check_dollar() */
    if (topic[0] == '$') {
        if (starts_with(topic, topic_len, "$SYS", 4)) {
            static const char bridge_state[] = "$SYS/broker/connection/+/state";
            if (access == MQO_ACL_WRITE &&
                !filter_match((const uint8_t *)bridge_state, sizeof bridge_state - 1, topic,
                              topic_len))
                return 0;
        } else if (starts_with(topic, topic_len, "$share", 6)) {
            return 0;
        }
    }

    /* mosquitto_acl_check_default() */
    const struct acl_list *l = anonymous ? (a->anon.n ? &a->anon : NULL)
                                         : find_user(a, username, user_len);
    if (l) {
        int r = list_eval(l, topic, topic_len, access);
        if (r >= 0)
            return r;
    }
    const struct acl_list *pl = &a->patterns;
    if (pl->n == 0)
        return 0;
    if ((sc_cid | sc_user) & SC_WILD)
        return 0;
    for (size_t i = 0; i < pl->n; i++) {
        const struct acl_rule *r = &pl->r[i];
        int deny = i < pl->n_deny;
        if (!deny && !(r->access & access))
            continue; /* a match would change nothing */
        if (r->ucount && anonymous)
            continue;
        if (r->ccount && cid_len == 0)
            return 0; /* outcome depends on a client id we do not know */
        int m = pattern_match(r, client_id, cid_len, username, user_len, anonymous, topic,
                              topic_len);
        if (m < 0)
            return 0;
        if (m)
            return deny ? 0 : 1;
    }
    return 0;
}
