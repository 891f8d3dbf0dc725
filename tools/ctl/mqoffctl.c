/* mqoffctl: asks a running mqoff over its control socket (docs/CONTROL.md).
 *
 *   mqoffctl [--control PATH] status|subs|conns|stats|config [--json]
 *
 * PATH defaults to $MQOFF_CONTROL, else /run/mqoff/control.sock. Human-readable output by
 * default; --json prints mqoff's reply as it is (one JSON object, indented).
 */
#include <cJSON.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_PATH "/run/mqoff/control.sock"

static void usage(FILE *f)
{
    fprintf(f, "usage: mqoffctl [--control PATH] status|subs|conns|stats|config [--json]\n"
               "\n"
               "  status   mode, connections, offload counts, the broker plugin's state\n"
               "  subs     the subscription table (origin: stream, or broker for clients mqoff\n"
               "           does not carry)\n"
               "  conns    client connections\n"
               "  stats    every counter and gauge (the names of the metrics endpoint)\n"
               "  config   the configuration mqoff runs with\n"
               "\n"
               "  --control PATH  mqoff's control socket (default $MQOFF_CONTROL, else "
               DEFAULT_PATH ")\n"
               "  --json          the reply as JSON\n");
}

/* Sends the request and returns the reply line (malloc'd), NULL with a message. */
static char *ask(const char *path, const char *op)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "mqoffctl: %s: path too long\n", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "mqoffctl: %s: %s (is mqoff running with --control %s?)\n", path,
                strerror(errno), path);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char req[64];
    int n = snprintf(req, sizeof req, "{\"op\":\"%s\",\"proto\":1}\n", op);
    if (write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "mqoffctl: %s: %s\n", path, strerror(errno));
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "mqoffctl: out of memory\n");
            close(fd);
            return NULL;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) {
            fprintf(stderr, "mqoffctl: %s: no answer within 10 s\n", path);
            break;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) {
            fprintf(stderr, "mqoffctl: %s: connection closed before the answer\n", path);
            break;
        }
        len += (size_t)r;
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            *nl = 0;
            close(fd);
            return buf;
        }
        if (len + 1 == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    free(buf);
    close(fd);
    return NULL;
}

static const char *s_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double n_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int b_of(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Prints every member of o as "key: value" (nested objects indented). */
static void print_members(const cJSON *o, int indent)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, o)
    {
        if (!strcmp(m->string, "ok") || !strcmp(m->string, "op") || !strcmp(m->string, "proto"))
            continue;
        printf("%*s%-18s ", indent, "", m->string);
        if (cJSON_IsObject(m)) {
            printf("\n");
            print_members(m, indent + 2);
        } else if (cJSON_IsArray(m)) {
            const cJSON *e;
            int first = 1;
            cJSON_ArrayForEach(e, m)
            {
                printf("%s%s", first ? "" : ", ", cJSON_IsString(e) ? e->valuestring : "?");
                first = 0;
            }
            printf("%s\n", first ? "-" : "");
        } else if (cJSON_IsString(m)) {
            printf("%s\n", m->valuestring);
        } else if (cJSON_IsBool(m)) {
            printf("%s\n", cJSON_IsTrue(m) ? "yes" : "no");
        } else if (cJSON_IsNumber(m)) {
            double v = m->valuedouble;
            if (v == (double)(long long)v)
                printf("%lld\n", (long long)v);
            else
                printf("%.3f\n", v);
        } else {
            printf("null\n");
        }
    }
}

static void print_subs(const cJSON *r)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, "subscriptions"), *e;
    printf("%-24s %-32s %3s %-7s %s\n", "CLIENT", "FILTER", "QOS", "ORIGIN", "FLAGS");
    size_t n = 0;
    cJSON_ArrayForEach(e, a)
    {
        char flags[32] = "";
        if (b_of(e, "held"))
            strcat(flags, "held ");
        if (b_of(e, "pending"))
            strcat(flags, "pending ");
        if (b_of(e, "shared"))
            strcat(flags, "shared ");
        printf("%-24s %-32s %3d %-7s %s\n", s_of(e, "client"), s_of(e, "filter"),
               (int)n_of(e, "qos"), s_of(e, "origin"), flags[0] ? flags : "-");
        n++;
    }
    printf("# %zu subscriptions; the broker's view is %s\n", n,
           b_of(r, "broker_view_synced") ? "synced" : "not synced");
}

static void print_conns(const cJSON *r)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, "connections"), *e;
    printf("%-8s %-24s %-6s %-5s %-12s %-8s %-20s %s\n", "ID", "CLIENT", "PROTO", "LIVE",
           "BROKER_CONN", "INFLIGHT", "LAST_PASSTHROUGH", "FLAGS");
    size_t n = 0;
    cJSON_ArrayForEach(e, a)
    {
        char flags[64] = "";
        if (b_of(e, "persistent"))
            strcat(flags, "persistent ");
        if (b_of(e, "bridge"))
            strcat(flags, "bridge ");
        if (b_of(e, "relayed"))
            strcat(flags, "relayed ");
        if (b_of(e, "unknown"))
            strcat(flags, "unknown ");
        printf("%-8.0f %-24s %-6s %-5s %-12.0f %-8.0f %-20s %s\n", n_of(e, "id"),
               s_of(e, "client"), s_of(e, "protocol"), b_of(e, "live") ? "yes" : "no",
               n_of(e, "broker_conn"), n_of(e, "inflight"), s_of(e, "last_passthrough"),
               flags[0] ? flags : "-");
        n++;
    }
    printf("# %zu connections\n", n);
}

static void print_stats(const cJSON *r)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "stats"), *m;
    cJSON_ArrayForEach(m, s) printf("%-72s %.0f\n", m->string, m->valuedouble);
}

int main(int argc, char **argv)
{
    const char *path = getenv("MQOFF_CONTROL"), *cmd = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--control") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!cmd && argv[i][0] != '-')
            cmd = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    static const char *const cmds[] = {"status", "subs", "conns", "stats", "config"};
    int known = 0;
    for (size_t i = 0; cmd && i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(cmd, cmds[i]);
    if (!known) {
        usage(stderr);
        return 2;
    }
    char *line = ask(path ? path : DEFAULT_PATH, cmd);
    if (!line)
        return 1;
    cJSON *r = cJSON_Parse(line);
    free(line);
    if (!r) {
        fprintf(stderr, "mqoffctl: the answer is not JSON\n");
        return 1;
    }
    if (!b_of(r, "ok")) {
        fprintf(stderr, "mqoffctl: mqoff says: %s\n", s_of(r, "error"));
        cJSON_Delete(r);
        return 1;
    }
    if (json) {
        char *s = cJSON_Print(r);
        if (s)
            printf("%s\n", s);
        cJSON_free(s);
    } else if (!strcmp(cmd, "subs")) {
        print_subs(r);
    } else if (!strcmp(cmd, "conns")) {
        print_conns(r);
    } else if (!strcmp(cmd, "stats")) {
        print_stats(r);
    } else if (!strcmp(cmd, "config")) {
        print_members(cJSON_GetObjectItemCaseSensitive(r, "config"), 0);
    } else {
        print_members(r, 0);
    }
    cJSON_Delete(r);
    return 0;
}
