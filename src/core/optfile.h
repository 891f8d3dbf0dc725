/* core/optfile: a configuration file made of command-line options (mqoff MODE -c FILE).
 *
 * One option per line, named as the long option without its dashes, its value the rest of the
 * line after the blanks that follow the name:
 *
 *     # the broker's own configuration
 *     mode proxy
 *     listen 198.18.0.3:1883
 *     broker-only sensors/#
 *     exclusive
 *
 * Blank lines and lines whose first non-blank character is '#' are comments; a '#' further on
 * is part of the value (topic filters hold it). "mode NAME" names the mode the file is for.
 * The names, and whether an option takes a value, come from the getopt_long table the command
 * line is parsed with, so each option of a mode is a key of that mode's file without code of
 * its own. Values are checked where the command line's are: the file's options become
 * arguments ("--name=value") that the same getopt loop reads, before the command line's, and
 * an option the command line gives replaces the file's (every value of it: a repeatable
 * option's list too). mqo_optargs.line maps each argument back to its line, so an error in a
 * value can name the file and line.
 */
#ifndef MQO_CORE_OPTFILE_H
#define MQO_CORE_OPTFILE_H

#include <getopt.h>
#include <stddef.h>

struct mqo_optfile_entry {
    int opt;           /* index in the table */
    const char *value; /* NULL: the option takes none */
    unsigned line;
};

/* An all-zero struct is an empty file. */
struct mqo_optfile {
    char *path;
    char *text;       /* the file, cut into values in place */
    const char *mode; /* the "mode" line's value, NULL when there is none */
    unsigned mode_line;
    struct mqo_optfile_entry *v;
    size_t n;
};

/* Arguments for getopt_long: argc, argv (argv[argc] == NULL) and, for each, the file line it
 * comes from (0: the command line). An all-zero struct is empty. */
struct mqo_optargs {
    int argc;
    char **argv;
    unsigned *line;
    char *store; /* the "--name=value" strings */
};

/* Parses the text of the file `path` (len bytes, cut in place: *out points into text, which
 * must outlive it, and takes ownership of neither). table ends with an all-zero entry; NULL
 * reads only the "mode" line (the other lines are not checked). Returns
 * 0, or -EINVAL with "PATH:LINE: why" in err (an unknown name, a value given to an option that
 * takes none or missing for one that needs it, a NUL byte, a second "mode" line), -ENOMEM. */
int mqo_optfile_parse(const char *path, char *text, size_t len, const struct option *table,
                      struct mqo_optfile *out, char *err, size_t errlen);

/* Reads and parses the file at path (mqo_optfile_parse; *out owns its copy of the text).
 * Returns 0, or -errno with "PATH: why" or "PATH:LINE: why" in err. */
int mqo_optfile_load(const char *path, const struct option *table, struct mqo_optfile *out,
                     char *err, size_t errlen);
void mqo_optfile_dispose(struct mqo_optfile *f);

/* Finds the configuration file on a command line: -c FILE, -cFILE, --config FILE or
 * --config=FILE (the value of an option of table that takes one is skipped, not read as -c).
 * Returns 0 with *path (NULL when absent) and *at, *n the index and number of the arguments
 * that name it; -EINVAL when -c is last, without a value. */
int mqo_optfile_find(int argc, char *const *argv, const struct option *table, const char **path,
                     int *at, int *n);

/* The arguments getopt_long reads for argv (argv[0] its program name) and the file f (NULL:
 * none): argv[0], the options of f the command line does not give, the command line without
 * its -c FILE, then "--" (a getopt loop that stops before it stopped at an error: optind - 1
 * is the argument in question). The strings of f and argv must outlive *out. Returns 0 or
 * -ENOMEM. */
int mqo_optfile_merge(const struct mqo_optfile *f, const struct option *table, int argc,
                      char *const *argv, struct mqo_optargs *out);
void mqo_optargs_dispose(struct mqo_optargs *a);

/* The values of each option of table (n_table entries before the all-zero one) in a: out[i]
 * is NULL when option i is not given, else its values in order, each followed by '\n' (an
 * option without a value counts as ""). Reads a with getopt_long (optstring: the short
 * options of the command line), so abbreviations and "--name value" count as the command
 * line's loop reads them; a non-option argument or an error ends the reading. Returns 0 or
 * -ENOMEM; free with mqo_optvals_free. */
int mqo_optargs_values(const struct option *table, const char *optstring,
                       const struct mqo_optargs *a, char ***out);
void mqo_optvals_free(char **v, const struct option *table);

/* Entries of table before its all-zero one. */
size_t mqo_optfile_table_len(const struct option *table);

#endif
