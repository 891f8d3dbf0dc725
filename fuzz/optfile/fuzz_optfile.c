/* libFuzzer target for core/optfile: parses a configuration file of options against a fixed
 * getopt table and, when it parses, merges it with a command line and reads the values back.
 *
 * Input: the file's text (NULs included: they must be refused). Checks: every entry names an
 * option of the table and has a value exactly when that option takes one; the merged
 * arguments are the program name, one per entry not overridden, the command line, then "--". */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/optfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct option table[] = {
    {"listen", required_argument, 0, 256}, {"broker-only", required_argument, 0, 257},
    {"exclusive", no_argument, 0, 258},    {"acl", required_argument, 0, 259},
    {"log-level", required_argument, 0, 260}, {0, 0, 0, 0}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct mqo_optfile f = {0};
    char err[128];
    if (mqo_optfile_parse("fuzz.conf", text, size, table, &f, err, sizeof err) == 0) {
        size_t overridden = 0;
        for (size_t i = 0; i < f.n; i++) {
            const struct option *o = &table[f.v[i].opt];
            if ((o->has_arg == no_argument) != (f.v[i].value == NULL))
                abort();
            if (f.v[i].value && (strchr(f.v[i].value, '\n') || !f.v[i].value[0]))
                abort();
            overridden += f.v[i].opt == 3;
        }
        char *argv[] = {"proxy", "--acl", "open", "-c", "fuzz.conf", NULL};
        struct mqo_optargs a;
        if (mqo_optfile_merge(&f, table, 5, argv, &a) == 0) {
            if ((size_t)a.argc != 1 + (f.n - overridden) + 2 + 1 || strcmp(a.argv[a.argc - 1], "--"))
                abort();
            char **v;
            if (mqo_optargs_values(table, "h", &a, &v) == 0) {
                if (!v[3] || strcmp(v[3], "open\n"))
                    abort();
                mqo_optvals_free(v, table);
            }
            mqo_optargs_dispose(&a);
        }
        free(f.v);
    }
    free(text);
    return 0;
}
