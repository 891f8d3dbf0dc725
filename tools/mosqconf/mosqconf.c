/* mqoff-mosqconf: reads a Mosquitto 2.0.11 configuration as the broker does (conf/) and says
 * whether the broker would start on it; with ADDR:PORT, also what mqoff may do in front of
 * the listener there.
 *
 *   mqoff-mosqconf FILE               exit 0: accepted, 1: refused (the reason on stderr)
 *   mqoff-mosqconf FILE ADDR:PORT     plus the policy for that listener (exit 3: none matches)
 *   mqoff-mosqconf FILE ADDR:PORT TOPIC...
 *                                     plus "broker-only TOPIC: yes|no" for a PUBLISH to each
 *                                     TOPIC by a client of that listener (bridges)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/mosqconf.h"

static int split_addr(char *s, char **addr, unsigned *port)
{
    char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    *colon = 0;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end || p == 0 || p > 65535)
        return -1;
    if (s[0] == '[' && colon[-1] == ']') {
        colon[-1] = 0;
        s++;
    }
    *addr = s;
    *port = (unsigned)p;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: mqoff-mosqconf FILE [ADDR:PORT [TOPIC...]]\n");
        return 2;
    }
    char err[1024];
    struct mqo_mosqconf *c;
    int rc = mqo_mosqconf_load(argv[1], NULL, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "refused: %s\n", err);
        return 1;
    }
    printf("accepted: %s (%zu files, %zu listeners, %zu bridges)\n", argv[1], c->n_files,
           c->n_listeners, c->n_bridges);
    int ret = 0;
    if (argc >= 3) {
        char *addr;
        unsigned port;
        if (split_addr(argv[2], &addr, &port)) {
            fprintf(stderr, "bad ADDR:PORT '%s'\n", argv[2]);
            mqo_mosqconf_free(c);
            return 2;
        }
        struct mqo_mosqpolicy *p;
        rc = mqo_mosqconf_evaluate(c, addr, (uint16_t)port, &p, err, sizeof err);
        if (rc) {
            fprintf(stderr, "%s\n", err);
            ret = 3;
        } else {
            size_t n = mqo_mosqpolicy_describe(p, NULL, 0);
            char *b = malloc(n + 1);
            if (b) {
                mqo_mosqpolicy_describe(p, b, n + 1);
                fputs(b, stdout);
                free(b);
            }
            for (int i = 3; i < argc; i++)
                printf("broker-only %s: %s\n", argv[i],
                       mqo_mosqpolicy_broker_only(p, (const uint8_t *)argv[i], strlen(argv[i]))
                           ? "yes"
                           : "no");
            mqo_mosqpolicy_free(p);
        }
    }
    mqo_mosqconf_free(c);
    return ret;
}
