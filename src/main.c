/* mqoff: command line. `mqoff MODE [options]`, one mode per process. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "core/log.h"
#include "engine/engine.h"
#include "modes/proxy.h"

#define MQOFF_VERSION "0.1.0"

static volatile int g_stop;

static void on_signal(int sig) { g_stop = 1; }

static void usage_main(FILE *f)
{
    fprintf(f,
            "usage: mqoff MODE [options]\n"
            "\n"
            "MQTT PUBLISH distribution offload in front of an unmodified broker.\n"
            "\n"
            "modes:\n"
            "  proxy      TCP endpoint: clients connect to mqoff, mqoff connects to the broker\n"
            "  monitor    transparent bump-in-the-wire between two interfaces (not built yet)\n"
            "  intercept  LD_PRELOAD shim inside the broker (not built yet)\n"
            "\n"
            "  mqoff MODE --help   options of a mode\n"
            "  mqoff --version\n");
}

static void usage_proxy(FILE *f)
{
    fprintf(f,
            "usage: mqoff proxy --listen ADDR:PORT --broker ADDR:PORT [options]\n"
            "\n"
            "Clients connect to ADDR:PORT of --listen; for each one mqoff opens a connection to\n"
            "the broker and runs both byte streams through its MQTT engine. PUBLISH packets it\n"
            "can deliver exactly as the broker would go straight to the subscribers; everything\n"
            "else goes to the broker.\n"
            "\n"
            "authorization (the broker's rules bind the offload too; without one of these\n"
            "every PUBLISH passes through to the broker):\n"
            "  --acl-file PATH        the broker's Mosquitto acl_file (Mosquitto 2.0 semantics)\n"
            "  --acl open             the broker restricts no topics (no acl_file, no plugin)\n"
            "\n"
            "options:\n"
            "  --broker-only FILTER   messages on topics matching FILTER always go to the broker\n"
            "                         (bridges, plugins); repeatable\n"
            "  --max-queue BYTES      per-client output limit (default 4194304): over it, QoS 0\n"
            "                         deliveries are dropped and counted, QoS 1 messages go to\n"
            "                         the broker; broker bytes pause the broker socket at 2x\n"
            "  --overlap MODE         a subscriber with several matching subscriptions:\n"
            "                         'passthrough' (default, as Mosquitto 2.0 sends v5 clients\n"
            "                         one copy per subscription) or 'once'\n"
            "  --order-hold-ms MS     how long a publisher waits for its passed-through message\n"
            "                         to reach subscribers before offload resumes (default 2000)\n"
            "  --io writev|uring      how queued bytes are written: a writev per socket per loop\n"
            "                         iteration (default), or one io_uring submission for all\n"
            "  --log-level LEVEL      error, warn, info (default), debug\n"
            "  -h, --help             this text\n"
            "\n"
            "SIGINT/SIGTERM stop mqoff gracefully and print its counters.\n");
}

/* Parses "HOST:PORT" or "[V6]:PORT". Returns 0 or -1 with a message. */
static int parse_addr(const char *what, const char *s, struct sockaddr_storage *out,
                      socklen_t *len, int passive)
{
    char host[256];
    const char *port;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof host)
            goto bad;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = 0;
        port = e + 2;
    } else {
        const char *c = strrchr(s, ':');
        if (!c || (size_t)(c - s) >= sizeof host)
            goto bad;
        memcpy(host, s, (size_t)(c - s));
        host[c - s] = 0;
        port = c + 1;
    }
    if (!*port)
        goto bad;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "mqoff: %s '%s': %s\n", what, s, gai_strerror(rc));
        return -1;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
bad:
    fprintf(stderr, "mqoff: %s '%s': expected ADDR:PORT (e.g. 127.0.0.1:1883)\n", what, s);
    return -1;
}

static void print_stats(const struct mqo_engine_stats *e, const struct mqo_proxy_stats *p)
{
    fprintf(stderr,
            "mqoff summary:\n"
            "  connections       accepted %llu, closed %llu, broker unreachable %llu\n"
            "  published_in      %llu\n"
            "  consumed          %llu\n"
            "  passthrough       %llu\n"
            "  deliveries        %llu (QoS 1: %llu)\n"
            "  dropped_qos0      %llu\n"
            "  pubacks_sent      %llu, subscriber acks absorbed %llu\n"
            "  pings_synth       %llu\n"
            "  order_expired     %llu\n"
            "  inflight_lost     %llu\n"
            "  protocol_errors   %llu\n",
            (unsigned long long)p->accepted, (unsigned long long)p->closed,
            (unsigned long long)p->broker_connect_failed, (unsigned long long)e->publish_in,
            (unsigned long long)e->consumed, (unsigned long long)e->passthrough,
            (unsigned long long)e->deliveries, (unsigned long long)e->deliveries_qos1,
            (unsigned long long)e->dropped_qos0, (unsigned long long)e->pubacks_sent,
            (unsigned long long)e->pubacks_absorbed, (unsigned long long)e->pings_synth,
            (unsigned long long)e->order_expired, (unsigned long long)e->inflight_lost,
            (unsigned long long)e->protocol_errors);
    for (int r = 1; r < MQO_PT__COUNT; r++)
        if (e->pt_reason[r])
            fprintf(stderr, "    passthrough %-20s %llu\n", mqo_pt_reason_name((enum mqo_pt_reason)r),
                    (unsigned long long)e->pt_reason[r]);
}

static int cmd_proxy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},     {"broker", required_argument, 0, 'b'},
        {"acl-file", required_argument, 0, 'A'},   {"acl", required_argument, 0, 'a'},
        {"broker-only", required_argument, 0, 'o'}, {"max-queue", required_argument, 0, 'q'},
        {"overlap", required_argument, 0, 'O'},    {"order-hold-ms", required_argument, 0, 'H'},
        {"log-level", required_argument, 0, 'L'},  {"help", no_argument, 0, 'h'},
        {"io", required_argument, 0, 'I'},
        {0, 0, 0, 0}};
    struct mqo_proxy_cfg cfg = {.stop = &g_stop};
    const char *listen_s = NULL, *broker_s = NULL, *acl_file = NULL;
    const char **bo = NULL;
    size_t n_bo = 0;
    int acl_open = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen_s = optarg;
            break;
        case 'b':
            broker_s = optarg;
            break;
        case 'A':
            acl_file = optarg;
            break;
        case 'a':
            if (strcmp(optarg, "open") != 0) {
                fprintf(stderr, "mqoff: --acl takes 'open' (or use --acl-file PATH)\n");
                return 2;
            }
            acl_open = 1;
            break;
        case 'o': {
            const char **v = realloc(bo, (n_bo + 1) * sizeof *v);
            if (!v)
                return 1;
            bo = v;
            bo[n_bo++] = optarg;
            break;
        }
        case 'q': {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end || v < 4096) {
                fprintf(stderr, "mqoff: --max-queue takes a byte count >= 4096\n");
                return 2;
            }
            cfg.max_queue = (size_t)v;
            break;
        }
        case 'O':
            if (!strcmp(optarg, "once"))
                cfg.engine.overlap = MQO_OVERLAP_ONCE;
            else if (!strcmp(optarg, "passthrough"))
                cfg.engine.overlap = MQO_OVERLAP_PASSTHROUGH;
            else {
                fprintf(stderr, "mqoff: --overlap takes 'passthrough' or 'once'\n");
                return 2;
            }
            break;
        case 'H': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v == 0 || v > 600000) {
                fprintf(stderr, "mqoff: --order-hold-ms takes 1..600000\n");
                return 2;
            }
            cfg.engine.order_hold_ms = (uint32_t)v;
            break;
        }
        case 'L': {
            enum mqo_log_level l;
            if (mqo_log_parse_level(optarg, &l)) {
                fprintf(stderr, "mqoff: --log-level takes error, warn, info or debug\n");
                return 2;
            }
            mqo_log_set_level(l);
            break;
        }
        case 'I':
            if (!strcmp(optarg, "writev"))
                cfg.io = MQO_PROXY_IO_WRITEV;
            else if (!strcmp(optarg, "uring"))
                cfg.io = MQO_PROXY_IO_URING;
            else {
                fprintf(stderr, "mqoff: --io takes 'writev' or 'uring'\n");
                return 2;
            }
            break;
        case 'h':
            usage_proxy(stdout);
            return 0;
        default:
            usage_proxy(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mqoff: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!listen_s || !broker_s) {
        fprintf(stderr, "mqoff proxy: --listen and --broker are required (see mqoff proxy --help)\n");
        return 2;
    }
    if (acl_file && acl_open) {
        fprintf(stderr, "mqoff: --acl-file and --acl open exclude each other\n");
        return 2;
    }
    if (parse_addr("--listen", listen_s, &cfg.listen_addr, &cfg.listen_len, 1) ||
        parse_addr("--broker", broker_s, &cfg.broker_addr, &cfg.broker_len, 0))
        return 2;
    struct mqo_acl *acl = NULL;
    if (acl_file) {
        char err[256];
        int rc = mqo_acl_load(acl_file, &acl, err, sizeof err);
        if (rc) {
            fprintf(stderr, "mqoff: --acl-file %s: %s\n", acl_file, err);
            return 2;
        }
        cfg.engine.acl_mode = MQO_ACL_FILE;
        cfg.engine.acl = acl;
        mqo_info("authorization: %s (%zu rules, Mosquitto 2.0 semantics)", acl_file,
                 mqo_acl_rule_count(acl));
    } else if (acl_open) {
        cfg.engine.acl_mode = MQO_ACL_OPEN;
        mqo_info("authorization: open (the broker restricts no topics)");
    } else {
        cfg.engine.acl_mode = MQO_ACL_NONE;
        mqo_warn("no authorization source (--acl-file PATH or --acl open): every PUBLISH passes "
                 "through to the broker, nothing is offloaded");
    }
    cfg.engine.broker_only = bo;
    cfg.engine.n_broker_only = n_bo;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mqo_info("proxy listening on %s, broker %s", listen_s, broker_s);
    struct mqo_engine_stats es = {0};
    struct mqo_proxy_stats ps = {0};
    int rc = mqo_proxy_run(&cfg, &es, &ps);
    print_stats(&es, &ps);
    mqo_acl_free(acl);
    free(bo);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
        usage_main(stdout);
        return 0;
    }
    if (!strcmp(mode, "--version")) {
        printf("mqoff %s\n", MQOFF_VERSION);
        return 0;
    }
    if (!strcmp(mode, "proxy"))
        return cmd_proxy(argc - 1, argv + 1);
    if (!strcmp(mode, "monitor") || !strcmp(mode, "intercept")) {
        fprintf(stderr, "mqoff: mode '%s' is not built yet\n", mode);
        return 2;
    }
    fprintf(stderr, "mqoff: unknown mode '%s'\n\n", mode);
    usage_main(stderr);
    return 2;
}
