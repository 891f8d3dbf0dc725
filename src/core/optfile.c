/* A configuration file made of command-line options; see optfile.h. */
#include "core/optfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"

size_t mqo_optfile_table_len(const struct option *table)
{
    size_t n = 0;
    while (table[n].name)
        n++;
    return n;
}

static int fail(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (errlen)
        snprintf(err, errlen, "%s:%u: %s", path, line, why);
    return -EINVAL;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The index of the option named exactly [name, name + len) in table, -1 when none. */
static int find_opt(const struct option *table, const char *name, size_t len)
{
    for (int i = 0; table[i].name; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return i;
    return -1;
}

int mqo_optfile_parse(const char *path, char *text, size_t len, const struct option *table,
                      struct mqo_optfile *out, char *err, size_t errlen)
{
    struct mqo_optfile f = {0};
    size_t cap = 0;
    unsigned line = 0;
    int rc = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        if (memchr(p, 0, (size_t)(eol - p))) {
            rc = fail(err, errlen, path, line, "a NUL byte: not a text file");
            goto out;
        }
        char *next = eol < end ? eol + 1 : end;
        while (eol > p && is_blank(eol[-1]))
            eol--;
        *eol = 0; /* the line ends here (its '\n', or a trailing blank) */
        while (p < eol && is_blank(*p))
            p++;
        if (p == eol || *p == '#') {
            p = next;
            continue;
        }
        char *name = p;
        while (p < eol && !is_blank(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        while (p < eol && is_blank(*p))
            *p++ = 0;
        char *value = p < eol ? p : NULL;
        if (nlen > 2 && name[0] == '-' && name[1] == '-') {
            rc = fail(err, errlen, path, line, "'%.*s': write the option without its '--'",
                      (int)nlen, name);
            goto out;
        }
        if (nlen == 4 && memcmp(name, "mode", 4) == 0) {
            if (f.mode) {
                rc = fail(err, errlen, path, line, "a second 'mode' line (the first is line %u)",
                          f.mode_line);
                goto out;
            }
            if (!value) {
                rc = fail(err, errlen, path, line, "'mode' needs the mode's name");
                goto out;
            }
            f.mode = value;
            f.mode_line = line;
            p = next;
            continue;
        }
        if (!table) { /* only the mode is asked for */
            p = next;
            continue;
        }
        int o = find_opt(table, name, nlen);
        if (o < 0 || (nlen == 6 && memcmp(name, "config", 6) == 0) ||
            (nlen == 4 && memcmp(name, "help", 4) == 0)) {
            rc = fail(err, errlen, path, line, "unknown option '%.*s'", (int)nlen, name);
            goto out;
        }
        if (table[o].has_arg == no_argument && value) {
            rc = fail(err, errlen, path, line, "'%s' takes no value (got '%s')", table[o].name,
                      value);
            goto out;
        }
        if (table[o].has_arg == required_argument && !value) {
            rc = fail(err, errlen, path, line, "'%s' needs a value", table[o].name);
            goto out;
        }
        if (f.n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct mqo_optfile_entry *nv = realloc(f.v, nc * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                if (errlen)
                    snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            f.v = nv;
            cap = nc;
        }
        f.v[f.n++] = (struct mqo_optfile_entry){.opt = o, .value = value, .line = line};
        p = next;
    }
out:
    if (rc) {
        free(f.v);
        return rc;
    }
    *out = f;
    return 0;
}

int mqo_optfile_load(const char *path, const struct option *table, struct mqo_optfile *out,
                     char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = mqo_read_file(path, &text, &len);
    if (rc) {
        if (errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    struct mqo_optfile f;
    rc = mqo_optfile_parse(path, text, len, table, &f, err, errlen);
    if (rc == 0 && !(f.path = strdup(path)))
        rc = -ENOMEM;
    if (rc) {
        if (rc == -ENOMEM) {
            free(f.v);
            if (errlen)
                snprintf(err, errlen, "%s: out of memory", path);
        }
        free(text);
        return rc;
    }
    f.text = text;
    *out = f;
    return 0;
}

void mqo_optfile_dispose(struct mqo_optfile *f)
{
    free(f->v);
    free(f->text);
    free(f->path);
    *f = (struct mqo_optfile){0};
}

/* Whether argv[i] is a long option of table that takes its value from argv[i + 1]; *opt its
 * index (-1 for none or an ambiguous abbreviation, as getopt_long would refuse it). */
static int long_opt(const char *arg, const struct option *table, int *opt)
{
    *opt = -1;
    if (strncmp(arg, "--", 2) != 0 || !arg[2])
        return 0;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    int exact = find_opt(table, name, len), hits = 0;
    if (exact >= 0) {
        *opt = exact;
    } else {
        for (int i = 0; table[i].name; i++)
            if (strncmp(table[i].name, name, len) == 0) {
                *opt = i;
                hits++;
            }
        if (hits != 1)
            *opt = -1;
    }
    return *opt >= 0 && !eq && table[*opt].has_arg == required_argument;
}

int mqo_optfile_find(int argc, char *const *argv, const struct option *table, const char **path,
                     int *at, int *n)
{
    *path = NULL;
    *at = 0;
    *n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return -EINVAL;
            *path = argv[i + 1];
            *at = i;
            *n = 2;
            return 0;
        }
        if (strncmp(a, "--config=", 9) == 0 || (strncmp(a, "-c", 2) == 0 && a[2] != '-')) {
            *path = a[1] == '-' ? a + 9 : a + 2;
            *at = i;
            *n = 1;
            return 0;
        }
        int o;
        if (long_opt(a, table, &o))
            i++; /* its value, whatever it looks like */
    }
    return 0;
}

/* The table index of the long option argv[i] names (-1: not a long option of the table). */
static int opt_of(const char *arg, const struct option *table)
{
    int o;
    long_opt(arg, table, &o);
    return o;
}

int mqo_optfile_merge(const struct mqo_optfile *f, const struct option *table, int argc,
                      char *const *argv, struct mqo_optargs *out)
{
    const char *cpath;
    int cat, cn;
    if (mqo_optfile_find(argc, argv, table, &cpath, &cat, &cn))
        cat = cn = 0; /* left for the getopt loop to refuse */
    size_t nt = mqo_optfile_table_len(table), nf = f ? f->n : 0;
    unsigned char *given = calloc(nt + 1, 1);
    if (!given)
        return -ENOMEM;
    /* the options the command line gives: the file's of the same name are dropped */
    for (int i = 1; i < argc; i++) {
        if (i == cat) {
            i += cn - 1;
            continue;
        }
        if (strcmp(argv[i], "--") == 0)
            break;
        int o = opt_of(argv[i], table);
        if (o >= 0)
            given[o] = 1;
        if (o >= 0 && strchr(argv[i], '=') == NULL && table[o].has_arg == required_argument)
            i++;
    }
    size_t store = 0;
    for (size_t i = 0; i < nf; i++)
        if (!given[f->v[i].opt])
            store += strlen(table[f->v[i].opt].name) + 4 +
                     (f->v[i].value ? strlen(f->v[i].value) : 0);
    size_t cap = (size_t)argc + nf + 2;
    struct mqo_optargs a = {.argv = calloc(cap, sizeof *a.argv),
                            .line = calloc(cap, sizeof *a.line),
                            .store = malloc(store + 1)};
    if (!a.argv || !a.line || !a.store) {
        free(given);
        mqo_optargs_dispose(&a);
        return -ENOMEM;
    }
    char *s = a.store;
    a.argv[a.argc++] = argv[0];
    for (size_t i = 0; i < nf; i++) {
        const struct mqo_optfile_entry *e = &f->v[i];
        if (given[e->opt])
            continue;
        int w = e->value ? sprintf(s, "--%s=%s", table[e->opt].name, e->value)
                         : sprintf(s, "--%s", table[e->opt].name);
        a.line[a.argc] = e->line;
        a.argv[a.argc++] = s;
        s += w + 1;
    }
    for (int i = 1; i < argc; i++) {
        if (i == cat) {
            i += cn - 1;
            continue;
        }
        a.argv[a.argc++] = argv[i];
    }
    a.argv[a.argc++] = "--";
    a.argv[a.argc] = NULL;
    free(given);
    *out = a;
    return 0;
}

void mqo_optargs_dispose(struct mqo_optargs *a)
{
    free(a->argv);
    free(a->line);
    free(a->store);
    *a = (struct mqo_optargs){0};
}

/* Appends v and '\n' to *s (NULL: empty). Returns 0 or -ENOMEM. */
static int append(char **s, const char *v)
{
    size_t ol = *s ? strlen(*s) : 0, vl = strlen(v);
    char *n = realloc(*s, ol + vl + 2);
    if (!n)
        return -ENOMEM;
    memcpy(n + ol, v, vl);
    n[ol + vl] = '\n';
    n[ol + vl + 1] = 0;
    *s = n;
    return 0;
}

int mqo_optargs_values(const struct option *table, const char *optstring,
                       const struct mqo_optargs *a, char ***out)
{
    size_t nt = mqo_optfile_table_len(table);
    char **v = calloc(nt + 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    /* getopt_long permutes argv: read a copy */
    char **av = calloc((size_t)a->argc + 1, sizeof *av);
    if (!av) {
        free(v);
        return -ENOMEM;
    }
    memcpy(av, a->argv, (size_t)a->argc * sizeof *av);
    int saved_opterr = opterr, rc = 0, c, idx;
    opterr = 0;
    optind = 0; /* full reinitialisation (glibc) */
    while ((idx = -1, c = getopt_long(a->argc, av, optstring, table, &idx)) != -1) {
        if (c == '?' || c == ':')
            break;
        if (idx < 0)
            continue; /* a short option */
        if ((rc = append(&v[idx], optarg ? optarg : "")) != 0)
            break;
    }
    opterr = saved_opterr;
    optind = 1;
    free(av);
    if (rc) {
        mqo_optvals_free(v, table);
        return rc;
    }
    *out = v;
    return 0;
}

void mqo_optvals_free(char **v, const struct option *table)
{
    if (!v)
        return;
    size_t nt = mqo_optfile_table_len(table);
    for (size_t i = 0; i < nt; i++)
        free(v[i]);
    free(v);
}
