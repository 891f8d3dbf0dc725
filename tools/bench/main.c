/* mqoff-bench: command line, the measured run and the saturation sweep. */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mqtt/mqtt.h"

#define NS 1000000000ull

static volatile int g_stop;

static void on_signal(int sig) { g_stop = 1; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mqoff-bench [options]\n"
            "\n"
            "MQTT load generator and latency meter. Connects M subscribers (and waits for every\n"
            "SUBACK), then N publishers, then publishes on a fixed open-loop schedule: each\n"
            "PUBLISH carries (publisher, sequence, scheduled send time), and latency is receive\n"
            "time minus *scheduled* time, so a stall anywhere (the bench included) is measured,\n"
            "not hidden. Per message it reports the first- and the last-subscriber latency\n"
            "(the headline: publish -> last subscriber), per delivery latency, and checks every\n"
            "delivery: lost, duplicated, reordered (per publisher/subscriber pair), misrouted.\n"
            "\n"
            "target:\n"
            "  --host ADDR          broker/offload address for publishers (default 127.0.0.1)\n"
            "  --port P             its port (default 1883)\n"
            "  --sub-host ADDR      address for subscribers (default: --host)\n"
            "  --sub-port P         its port (default: --port)\n"
            "  --bind ADDR          source address of every connection\n"
            "  --label NAME         target name in the output (default 'target')\n"
            "\n"
            "load:\n"
            "  --pubs N             publishers (default 1)\n"
            "  --subs M             subscribers (default 1)\n"
            "  --topics T           topics (default 1)\n"
            "  --rate R             messages/s per publisher (default 100)\n"
            "  --size B             payload bytes, >= %d (default 64)\n"
            "  --qos Q              0 or 1 (default 0): publish and subscribe QoS\n"
            "  --mqtt V             3 (MQTT 3.1.1) or 5 (default 3)\n"
            "  --filter F           exact | plus | hash (default exact), see routing\n"
            "  --decoys D           each subscriber also subscribes to D filters that match no\n"
            "                       published topic, a mix of exact, + and # filters (default 0),\n"
            "                       see routing: the server's matching works on 1 + D filters\n"
            "                       per subscriber\n"
            "  --duration S         measured seconds (default 10)\n"
            "  --warmup S           seconds published before measuring (default 1)\n"
            "  --grace S            after the last message, seconds to wait for deliveries\n"
            "                       before counting them lost (default 2)\n"
            "  --seed N             the payload padding bytes are derived from it (default 1)\n"
            "  --prefix STR         client ids STR-pub-J / STR-sub-I, topics STR/tK (default bench)\n"
            "  --keepalive S        MQTT keep-alive (default 60); PINGREQ after S/2 idle\n"
            "  --connect-timeout S  limit for connecting everybody (default 30)\n"
            "  --max-connecting N   connections being set up at once (default 256)\n"
            "\n"
            "routing (deterministic): publisher J publishes on STR/tK, K = J %% T. Subscriber I\n"
            "subscribes to STR/t(I %% T) with --filter exact, STR/+ with plus, STR/# with hash.\n"
            "So a message reaches the subscribers I with I %% T == K (M/T of them when T divides\n"
            "M) with exact, and all M subscribers with plus or hash. Publishers are spread\n"
            "evenly over one send interval.\n"
            "With --decoys D, subscriber I's decoy d (d = 0..D-1, n = I*D + d unique in the run,\n"
            "J = I %% T its own topic) is, by d %% 8: STR/t(T+n), STR/tJ/dn, STR/+/dn, +/dn,\n"
            "STR/tJ/dn/#, STR/dn/#, STR/dn/+/e, +/+/dn/#. None matches a topic STR/tK (K < T)\n"
            "or a $ topic, so the expectations do not change; a server that matched one would\n"
            "show it as misrouted (exact) or dup deliveries. The real filter and the decoys go\n"
            "out in SUBSCRIBEs of up to %u filters, each sent after the previous one's SUBACK;\n"
            "a refused filter is a fatal error.\n"
            "\n"
            "figures: a message belongs to the window (warm-up, measured, sweep step) its\n"
            "scheduled time falls in; deliveries/s is the deliveries of the measured window's\n"
            "messages divided by its length. Latencies come from a log-linear histogram\n"
            "(< 0.4%% error); last-subscriber latency counts messages that reached every\n"
            "expected subscriber; the others are lost (the shortfall in deliveries is 'lost').\n"
            "\n"
            "saturation sweep:\n"
            "  --saturation         step the rate up from --rate; report the highest deliveries/s\n"
            "                       whose p99 last-subscriber latency stays under the bound with\n"
            "                       nothing lost or left unsent\n"
            "  --step S             measured seconds per step (default 3)\n"
            "  --step-warmup S      unmeasured seconds at the start of each step (default 1)\n"
            "  --step-factor F      rate multiplier per step (default 1.5)\n"
            "  --max-steps N        at most N steps (default 12)\n"
            "  --p99-bound-ms MS    the bound (default: 10x the first step's p99)\n"
            "\n"
            "output:\n"
            "  --json FILE          also write a JSON record (config, versions, all figures)\n"
            "  --tap [NETNS:]IF     also measure on the wire: capture on interface IF (AF_PACKET,\n"
            "                       inside network namespace NETNS when given) and report, per\n"
            "                       message, the time from the publisher's PUBLISH frame to the\n"
            "                       last delivery frame; the kernel stamps a frame where it\n"
            "                       reaches IF (before RPS moves it to another core) or leaves it\n"
            "  --sender-tap [NETNS:]IF\n"
            "                       the same on a second interface, reported beside it (\"wire:\n"
            "                       last sent\"): the distributing host's link toward the clients,\n"
            "                       say; a capture there costs the sending core a copy of each\n"
            "                       frame\n"
            "  --trace FILE         also write one CSV line per measured message: its scheduled\n"
            "                       time and, in microseconds after it, when it was queued, when\n"
            "                       the taps saw it leave the publisher and reach the last\n"
            "                       subscriber, and when the first and the last subscriber read\n"
            "                       it (where a stall happens)\n"
            "  --quiet              no progress lines on stderr\n"
            "  --version, -h/--help\n"
            "\n"
            "exit status: 0 run complete and clean, 3 run complete but a check failed (lost,\n"
            "duplicate, reordered, misrouted, unexpected or stray deliveries, disconnects, unsent\n"
            "messages; in a sweep only the steps up to the best count for loss), 1 the run\n"
            "could not be done (connect, CONNACK, SUBACK, memory), 2 bad options.\n",
            MQO_STAMP_LEN, MQB_SUB_BATCH);
}

static int bad(const char *opt, const char *arg, const char *want)
{
    fprintf(stderr, "mqoff-bench: --%s '%s': %s (see --help)\n", opt, arg, want);
    return -1;
}

static int parse_uint(const char *opt, const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "expected an integer in %llu..%llu", lo, hi);
        return bad(opt, s, want);
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "expected a number in %g..%g", lo, hi);
        return bad(opt, s, want);
    }
    *out = v;
    return 0;
}

static int resolve(const char *what, const char *host, uint16_t port, int passive,
                   struct sockaddr_storage *out, socklen_t *len)
{
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc) {
        fprintf(stderr, "mqoff-bench: %s '%s': %s\n", what, host, gai_strerror(rc));
        return -1;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int valid_prefix(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

/* Returns 0, 1 when the caller should exit 0 (help, version), -1 on a bad option. */
static int parse_args(int argc, char **argv, struct mqb_cfg *c)
{
    static const struct option opts[] = {
        {"host", required_argument, 0, 'H'},        {"port", required_argument, 0, 'p'},
        {"sub-host", required_argument, 0, 'S'},    {"sub-port", required_argument, 0, 'P'},
        {"bind", required_argument, 0, 'B'},        {"label", required_argument, 0, 'l'},
        {"pubs", required_argument, 0, 'n'},        {"subs", required_argument, 0, 'm'},
        {"topics", required_argument, 0, 't'},      {"rate", required_argument, 0, 'r'},
        {"size", required_argument, 0, 's'},        {"qos", required_argument, 0, 'q'},
        {"mqtt", required_argument, 0, 'V'},        {"filter", required_argument, 0, 'f'},
        {"decoys", required_argument, 0, 'D'},
        {"duration", required_argument, 0, 'd'},    {"warmup", required_argument, 0, 'w'},
        {"grace", required_argument, 0, 'g'},       {"seed", required_argument, 0, 'e'},
        {"prefix", required_argument, 0, 'x'},      {"keepalive", required_argument, 0, 'k'},
        {"connect-timeout", required_argument, 0, 'c'}, {"max-connecting", required_argument, 0, 'C'},
        {"saturation", no_argument, 0, 'Z'},        {"step", required_argument, 0, 'T'},
        {"step-warmup", required_argument, 0, 'W'}, {"step-factor", required_argument, 0, 'F'},
        {"max-steps", required_argument, 0, 'M'},   {"p99-bound-ms", required_argument, 0, 'b'},
        {"json", required_argument, 0, 'j'},        {"tap", required_argument, 0, 'a'},
        {"sender-tap", required_argument, 0, 'A'},  {"trace", required_argument, 0, 'R'},
        {"quiet", no_argument, 0, 'Q'},             {"version", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    unsigned long long u;
    int o, idx = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        const char *name = NULL;
        for (const struct option *op = opts; op->name; op++)
            if (op->val == o)
                name = op->name;
        switch (o) {
        case 'H': c->host = optarg; break;
        case 'S': c->sub_host = optarg; break;
        case 'B': c->bind = optarg; break;
        case 'l': c->label = optarg; break;
        case 'j': c->json = optarg; break;
        case 'a': c->tap_if[MQB_TAP_CLIENT] = optarg; break;
        case 'A': c->tap_if[MQB_TAP_SENDER] = optarg; break;
        case 'R': c->trace = optarg; break;
        case 'x':
            if (!valid_prefix(optarg))
                return bad(name, optarg, "1..32 characters of A-Z a-z 0-9 - _");
            c->prefix = optarg;
            break;
        case 'p':
        case 'P':
            if (parse_uint(name, optarg, 1, 65535, &u))
                return -1;
            *(o == 'p' ? &c->port : &c->sub_port) = (uint16_t)u;
            break;
        case 'n':
            if (parse_uint(name, optarg, 1, 100000, &u))
                return -1;
            c->pubs = (unsigned)u;
            break;
        case 'm':
            if (parse_uint(name, optarg, 1, 1000000, &u))
                return -1;
            c->subs = (unsigned)u;
            break;
        case 't':
            if (parse_uint(name, optarg, 1, 1000000, &u))
                return -1;
            c->topics = (unsigned)u;
            break;
        case 'r':
            if (parse_double(name, optarg, 0.001, 1e7, &c->rate))
                return -1;
            break;
        case 's':
            if (parse_uint(name, optarg, MQO_STAMP_LEN, MQB_MAX_SIZE, &u))
                return -1;
            c->size = (unsigned)u;
            break;
        case 'q':
            if (parse_uint(name, optarg, 0, 1, &u))
                return -1;
            c->qos = (unsigned)u;
            break;
        case 'V':
            if (!strcmp(optarg, "3") || !strcmp(optarg, "3.1.1") || !strcmp(optarg, "4"))
                c->mqtt = MQO_MQTT_V311;
            else if (!strcmp(optarg, "5"))
                c->mqtt = MQO_MQTT_V5;
            else
                return bad(name, optarg, "expected 3 (3.1.1) or 5");
            break;
        case 'f':
            if (!strcmp(optarg, "exact"))
                c->filter = MQB_EXACT;
            else if (!strcmp(optarg, "plus"))
                c->filter = MQB_PLUS;
            else if (!strcmp(optarg, "hash"))
                c->filter = MQB_HASH;
            else
                return bad(name, optarg, "expected exact, plus or hash");
            break;
        case 'D':
            if (parse_uint(name, optarg, 0, MQB_MAX_DECOYS, &u))
                return -1;
            c->decoys = (unsigned)u;
            break;
        case 'd':
            if (parse_double(name, optarg, 0.01, 86400, &c->duration))
                return -1;
            break;
        case 'w':
            if (parse_double(name, optarg, 0, 3600, &c->warmup))
                return -1;
            break;
        case 'g':
            if (parse_double(name, optarg, 0, 3600, &c->grace))
                return -1;
            break;
        case 'e':
            if (parse_uint(name, optarg, 0, UINT64_MAX, &u))
                return -1;
            c->seed = u;
            break;
        case 'k':
            if (parse_uint(name, optarg, 0, 65535, &u))
                return -1;
            c->keepalive = (unsigned)u;
            break;
        case 'c':
            if (parse_double(name, optarg, 0.1, 3600, &c->connect_timeout))
                return -1;
            break;
        case 'C':
            if (parse_uint(name, optarg, 1, 100000, &u))
                return -1;
            c->max_connecting = (unsigned)u;
            break;
        case 'Z': c->saturation = 1; break;
        case 'T':
            if (parse_double(name, optarg, 0.1, 3600, &c->step))
                return -1;
            break;
        case 'W':
            if (parse_double(name, optarg, 0, 3600, &c->step_warmup))
                return -1;
            break;
        case 'F':
            if (parse_double(name, optarg, 1.01, 100, &c->step_factor))
                return -1;
            break;
        case 'M':
            if (parse_uint(name, optarg, 1, 100, &u))
                return -1;
            c->max_steps = (unsigned)u;
            break;
        case 'b':
            if (parse_double(name, optarg, 0.001, 1e6, &c->p99_bound_ms))
                return -1;
            break;
        case 'Q': c->quiet = 1; break;
        case 'v': printf("mqoff-bench %s\n", MQB_VERSION); return 1;
        case 'h': usage(stdout); return 1;
        default:
            if (optopt)
                fprintf(stderr, "mqoff-bench: option needs an argument or is unknown: %s (see --help)\n",
                        argv[optind - 1]);
            else
                fprintf(stderr, "mqoff-bench: unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mqoff-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!c->sub_host)
        c->sub_host = c->host;
    if (!c->sub_port)
        c->sub_port = c->port;
    if (resolve("--host", c->host, c->port, 0, &c->pub_addr, &c->pub_addr_len) ||
        resolve("--sub-host", c->sub_host, c->sub_port, 0, &c->sub_addr, &c->sub_addr_len))
        return -1;
    if (c->bind && resolve("--bind", c->bind, 0, 1, &c->bind_addr, &c->bind_addr_len))
        return -1;
    if (c->bind && (c->bind_addr.ss_family != c->pub_addr.ss_family || c->bind_addr.ss_family != c->sub_addr.ss_family)) {
        fprintf(stderr, "mqoff-bench: --bind %s: not the address family of the target\n", c->bind);
        return -1;
    }
    if (c->rate * c->pubs > 1e7) {
        fprintf(stderr, "mqoff-bench: --rate x --pubs over 10M messages/s is not something one process can offer\n");
        return -1;
    }
    return 0;
}

/* Raises RLIMIT_NOFILE to what the connections need. */
static int raise_nofile(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return 0;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max < need) {
        struct rlimit want = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            return 0;
        fprintf(stderr, "mqoff-bench: %u file descriptors needed, the hard limit is %llu (raise ulimit -Hn)\n",
                need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl)) {
        fprintf(stderr, "mqoff-bench: setrlimit(RLIMIT_NOFILE, %u): %s\n", need, strerror(errno));
        return -1;
    }
    return 0;
}

static uint32_t run_id(uint64_t seed)
{
    /* differs per run even with the same seed, so stray messages of another run are recognised */
    uint64_t x = seed ^ mqb_now() ^ ((uint64_t)getpid() << 32);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x ? (uint32_t)x : 1;
}

static struct mqb_win *add_window(struct mqb *b, uint64_t start, uint64_t end, int measured, int step, double rate)
{
    struct mqb_win *w = &b->win[b->nwin++];
    w->start = start;
    w->end = end;
    w->measured = measured;
    w->step = step;
    w->rate = rate;
    w->verdict = -1;
    return w;
}

static void progress(const struct mqb *b, const char *fmt, double a, double c)
{
    if (b->cfg.quiet)
        return;
    fprintf(stderr, "mqoff-bench: ");
    fprintf(stderr, fmt, a, c);
    fputc('\n', stderr);
}

/* One schedule: warm-up window, measured window, then the drain. Returns the measured window
 * index, or -1 when stopped. */
static int run_stretch(struct mqb *b, double warmup, double measure, double rate, int step)
{
    uint64_t t0 = mqb_now() + NS / 50;
    uint64_t wu = (uint64_t)(warmup * 1e9), ms = (uint64_t)(measure * 1e9);
    if (wu)
        add_window(b, t0, t0 + wu, 0, step, rate);
    int mw = (int)b->nwin;
    add_window(b, t0 + wu, t0 + wu + ms, 1, step, rate);
    uint64_t end = t0 + wu + ms;
    mqb_schedule(b, t0, end, rate);
    int rc = mqb_run_until(b, end, 0);
    uint64_t cut = 0;
    if (rc) { /* interrupted: the windows end now */
        cut = mqb_now();
        for (unsigned i = 0; i < b->nwin; i++) {
            struct mqb_win *w = &b->win[i];
            if (w->end > cut)
                w->end = w->start > cut ? w->start : cut;
        }
    } else {
        rc = mqb_run_until(b, end + (uint64_t)(b->cfg.grace * 1e9), 1);
    }
    mqb_count_unsent(b, cut);
    return rc ? -1 : mw;
}

static int step_passes(const struct mqb_win *w, double bound_ns)
{
    return w->expected == w->delivered && w->unsent == 0 && w->dup == 0 && w->last.count > 0 &&
           (double)mqo_hist_percentile(&w->last, 99) <= bound_ns;
}

int main(int argc, char **argv)
{
    struct mqb b = {0};
    struct mqb_cfg *c = &b.cfg;
    c->host = "127.0.0.1";
    c->port = 1883;
    c->label = "target";
    c->prefix = "bench";
    c->pubs = c->subs = c->topics = 1;
    c->rate = 100;
    c->size = 64;
    c->mqtt = MQO_MQTT_V311;
    c->duration = 10;
    c->warmup = 1;
    c->grace = 2;
    c->seed = 1;
    c->keepalive = 60;
    c->connect_timeout = 30;
    c->max_connecting = 256;
    c->step = 3;
    c->step_warmup = 1;
    c->step_factor = 1.5;
    c->max_steps = 12;
    int pr = parse_args(argc, argv, c);
    if (pr)
        return pr > 0 ? 0 : 2;

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    b.stop = &g_stop;
    b.epfd = b.tfd = -1;

    if (raise_nofile(c->pubs + c->subs + 64))
        return 1;
    b.run = run_id(c->seed);
    unsigned maxwin = c->saturation ? 2 * c->max_steps : 2;
    b.pubs = calloc(c->pubs, sizeof *b.pubs);
    b.subs = calloc(c->subs, sizeof *b.subs);
    b.win = calloc(maxwin, sizeof *b.win);
    if (!b.pubs || !b.subs || !b.win || mqb_track_init(&b)) {
        fprintf(stderr, "mqoff-bench: out of memory for %u publishers x %u subscribers\n", c->pubs, c->subs);
        return 1;
    }
    if (c->trace && !(b.trace_f = fopen(c->trace, "w"))) {
        fprintf(stderr, "mqoff-bench: --trace %s: %s\n", c->trace, strerror(errno));
        return 1;
    }
    if (mqb_loop_init(&b))
        return 1;
    for (int k = 0; k < MQB_TAPS; k++)
        if (c->tap_if[k] && mqb_tap_open(&b, k))
            return 1;

    progress(&b, "connecting %.0f subscribers, then %.0f publishers", c->subs, c->pubs);
    if (c->decoys)
        progress(&b, "each subscriber holds 1 + %.0f decoy filters: %.0f filters in all", c->decoys,
                 (double)c->subs * (1.0 + c->decoys));
    uint64_t t_conn = mqb_now();
    if (mqb_connect_all(&b)) {
        fprintf(stderr, "mqoff-bench: %s\n", b.fatal_msg);
        mqb_disconnect_all(&b);
        return 1;
    }
    progress(&b, "all connected and subscribed in %.3f s", (double)(mqb_now() - t_conn) / 1e9, 0);

    int best = -1, stopped = 0;
    double bound_ns = c->p99_bound_ms * 1e6;
    if (!c->saturation) {
        progress(&b, "publishing: %g s warm-up, %g s measured", c->warmup, c->duration);
        stopped = run_stretch(&b, c->warmup, c->duration, c->rate, 0) < 0;
    } else {
        double rate = c->rate;
        for (unsigned s = 0; s < c->max_steps; s++) {
            progress(&b, "step %g: %g msg/s per publisher", s, rate);
            int w = run_stretch(&b, c->step_warmup, c->step, rate, (int)s);
            if (w < 0) {
                stopped = 1;
                break;
            }
            const struct mqb_win *W = &b.win[w];
            if (s == 0 && bound_ns <= 0)
                bound_ns = 10.0 * (double)mqo_hist_percentile(&W->last, 99);
            b.win[w].verdict = step_passes(W, bound_ns);
            if (!b.win[w].verdict) {
                b.sweep_end = W->expected != W->delivered ? "the last step lost messages"
                              : W->unsent                 ? "the last step could not send its whole schedule"
                              : W->dup                    ? "the last step saw duplicates"
                                                          : "the last step's p99 went over the bound";
                break;
            }
            best = w;
            rate *= c->step_factor;
        }
        if (!b.sweep_end)
            b.sweep_end = stopped ? "interrupted" : "--max-steps reached (the rate may go higher)";
    }
    mqb_tap_poll(&b);
    mqb_disconnect_all(&b);
    mqb_tap_close(&b);
    if (stopped)
        fprintf(stderr, "mqoff-bench: %s; partial results follow\n", b.fatal ? b.fatal_msg : "interrupted");

    if (c->saturation)
        mqb_report_steps(&b, stdout, best, bound_ns);
    else
        mqb_report_run(&b, stdout);
    fflush(stdout);
    int rc = 0;
    if (c->json && mqb_report_json(&b, c->json, best, bound_ns))
        rc = 1;
    if (b.trace_f && mqb_report_trace(&b, b.trace_f))
        rc = 1;

    /* checks: in a sweep, loss and unsent messages only count up to the best step */
    uint64_t lost = 0, dup = 0, reorder = 0, unsent = 0;
    for (unsigned i = 0; i < b.nwin; i++) {
        const struct mqb_win *w = &b.win[i];
        dup += w->dup;
        reorder += w->reorder;
        if (!c->saturation || (best >= 0 && (int)i <= best)) {
            lost += w->expected - w->delivered;
            unsent += w->unsent;
        }
    }
    if (!rc && (lost || dup || reorder || unsent || b.misrouted || b.unexpected || b.stray || b.bad_payload ||
                b.disconnects || b.proto_errors || b.bad_pubacks))
        rc = 3;
    if (stopped)
        rc = 1;
    mqb_track_free(&b);
    free(b.pubs);
    free(b.subs);
    free(b.win);
    free(b.heap);
    close(b.epfd);
    close(b.tfd);
    return rc;
}
