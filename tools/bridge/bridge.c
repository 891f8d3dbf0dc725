/* mqoff-bridge: forwards every Ethernet frame between two interfaces (pktio + l2 + impair).
 *
 *   mqoff-bridge --port-a IF --port-b IF [--l2 hub|learn|static] [--static-file F]
 *                [--impair SPEC] [--impair-a2b SPEC] [--impair-b2a SPEC] [options]
 *
 * The null forwarder: the benchmark's floor (what a bump-in-the-wire costs before any TCP or
 * MQTT work) and the skeleton monitor mode grows from. One thread, ppoll()-driven; SIGINT or
 * SIGTERM stops it and prints the counters.
 *
 * Per frame: the l2 decision (drop or the other port); a partial checksum left by the sender's
 * offload is completed (the next hop is a wire, not the sender's device); the direction's
 * impairment stage, if any; then the frame joins the output port's send queue. A queue that
 * cannot be sent at once (socket buffer full) waits for POLLOUT, in order; beyond its size the
 * newest frames are dropped and counted, as a switch does.
 *
 * Frames that an impairment stage may hold (delay, jitter, reorder) are detached from the
 * receive ring first, so holding them never stalls reception (pktio.h, mqo_frame_detach).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "l2/impair.h"
#include "l2/l2.h"
#include "l2/parse.h"
#include "pktio/pktio.h"

#define BURST 64
#define QCAP 4096 /* frames waiting for one output port */

struct txq {
    struct mqo_rawframe *f[QCAP];
    unsigned head, n;
};

struct dir {
    struct mqo_impair *im;
    int hold; /* the stage may keep frames: detach them */
    uint64_t impair_nomem;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = sig; }

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void usage(FILE *o)
{
    fprintf(o,
            "usage: mqoff-bridge --port-a IF --port-b IF [options]\n"
            "  --l2 MODE            hub | learn (default) | static\n"
            "  --static-file F      static table: 'MAC PORT' lines, PORT a|b or 0|1\n"
            "  --flood-unknown      static: flood unknown unicast instead of dropping it\n"
            "  --aging S            learn: MAC aging in seconds (default 300)\n"
            "  --impair SPEC        impairment in both directions (independent draws)\n"
            "  --impair-a2b SPEC    impairment from port a to port b\n"
            "  --impair-b2a SPEC    impairment from port b to port a\n"
            "                       SPEC: loss=P,dup=P,reorder=P,gap=N,hold=MS,delay=MS,\n"
            "                             jitter=MS,seed=N,limit=N (P in percent)\n"
            "  --ring N             RX ring slots per port (default 4096)\n"
            "  --qdisc-bypass       PACKET_QDISC_BYPASS (faster; tcpdump no longer sees TX)\n"
            "  --no-fix-csum        forward partial checksums as they are\n"
            "  --no-promisc         leave the interfaces' promiscuous mode alone\n"
            "  --quiet              no start line\n");
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    int e = 0;
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(b, cap *= 2);
        if (!nb)
            free(b);
        b = nb;
    }
    if (!b)
        e = -ENOMEM;
    else if (ferror(f))
        e = -EIO;
    fclose(f);
    if (e) {
        free(b);
        return e;
    }
    *out = b;
    *len = n;
    return 0;
}

/* Sends what the queue holds, in order, as far as the port takes it. */
static void txq_flush(struct mqo_port *p, struct txq *q)
{
    while (q->n) {
        unsigned run = QCAP - q->head < q->n ? QCAP - q->head : q->n;
        int r = mqo_port_tx_burst(p, &q->f[q->head], (int)run);
        if (r <= 0)
            break;
        q->head = (q->head + (unsigned)r) % QCAP;
        q->n -= (unsigned)r;
        if ((unsigned)r < run)
            break;
    }
}

static int txq_put(struct txq *q, struct mqo_rawframe *f)
{
    if (q->n == QCAP)
        return -1;
    q->f[(q->head + q->n++) % QCAP] = f;
    return 0;
}

int main(int argc, char **argv)
{
    const char *ifa = NULL, *ifb = NULL, *static_file = NULL;
    const char *spec_both = NULL, *spec_dir[2] = {NULL, NULL};
    enum mqo_l2_mode mode = MQO_L2_LEARN;
    unsigned l2flags = 0, port_flags = 0;
    uint32_t ring = 0;
    double aging = 0;
    int fix_csum = 1, promisc = 1, quiet = 0;
    enum {
        O_A = 256, O_B, O_L2, O_STATIC, O_FLOOD, O_AGING, O_IMP, O_A2B, O_B2A, O_RING,
        O_BYPASS, O_NOFIX, O_NOPROMISC, O_QUIET, O_HELP
    };
    static const struct option opts[] = {
        {"port-a", required_argument, 0, O_A},
        {"port-b", required_argument, 0, O_B},
        {"l2", required_argument, 0, O_L2},
        {"static-file", required_argument, 0, O_STATIC},
        {"flood-unknown", no_argument, 0, O_FLOOD},
        {"aging", required_argument, 0, O_AGING},
        {"impair", required_argument, 0, O_IMP},
        {"impair-a2b", required_argument, 0, O_A2B},
        {"impair-b2a", required_argument, 0, O_B2A},
        {"ring", required_argument, 0, O_RING},
        {"qdisc-bypass", no_argument, 0, O_BYPASS},
        {"no-fix-csum", no_argument, 0, O_NOFIX},
        {"no-promisc", no_argument, 0, O_NOPROMISC},
        {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_A: ifa = optarg; break;
        case O_B: ifb = optarg; break;
        case O_L2:
            if (mqo_l2_parse_mode(optarg, &mode)) {
                fprintf(stderr, "mqoff-bridge: --l2 '%s': want hub, learn or static\n", optarg);
                return 2;
            }
            break;
        case O_STATIC: static_file = optarg; break;
        case O_FLOOD: l2flags |= MQO_L2_STATIC_FLOOD_UNKNOWN; break;
        case O_AGING: {
            char *e;
            aging = strtod(optarg, &e);
            if (*e || e == optarg || !(aging > 0) || aging > 1e6) {
                fprintf(stderr, "mqoff-bridge: --aging '%s': want seconds > 0\n", optarg);
                return 2;
            }
            break;
        }
        case O_IMP: spec_both = optarg; break;
        case O_A2B: spec_dir[0] = optarg; break;
        case O_B2A: spec_dir[1] = optarg; break;
        case O_RING: {
            char *e;
            unsigned long v = strtoul(optarg, &e, 10);
            if (*e || e == optarg || v < 64 || v > (1ul << 20)) {
                fprintf(stderr, "mqoff-bridge: --ring '%s': want 64..1048576\n", optarg);
                return 2;
            }
            ring = (uint32_t)v;
            break;
        }
        case O_BYPASS: port_flags |= MQO_PORT_QDISC_BYPASS; break;
        case O_NOFIX: fix_csum = 0; break;
        case O_NOPROMISC: promisc = 0; break;
        case O_QUIET: quiet = 1; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !ifa || !ifb) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(ifa, ifb)) {
        fprintf(stderr, "mqoff-bridge: port a and port b are the same interface\n");
        return 2;
    }
    if ((mode == MQO_L2_STATIC) != (static_file != NULL)) {
        fprintf(stderr, "mqoff-bridge: --static-file goes with --l2 static, and only with it\n");
        return 2;
    }

    /* impairment stages: a2b is direction 0 (frames received on port a) */
    struct dir dirs[2] = {{0}, {0}};
    char desc[2][300] = {"none", "none"};
    for (int d = 0; d < 2; d++) {
        const char *spec = spec_dir[d] ? spec_dir[d] : spec_both;
        if (!spec)
            continue;
        struct mqo_impair_cfg ic;
        char err[200];
        if (mqo_impair_parse(spec, &ic, err, sizeof err)) {
            fprintf(stderr, "mqoff-bridge: --impair%s: %s\n",
                    spec_dir[d] ? (d ? "-b2a" : "-a2b") : "", err);
            return 2;
        }
        if (!mqo_impair_active(&ic))
            continue;
        dirs[d].im = mqo_impair_new(&ic, (uint64_t)d);
        if (!dirs[d].im) {
            fprintf(stderr, "mqoff-bridge: out of memory\n");
            return 1;
        }
        dirs[d].hold = ic.delay_ns || ic.jitter_ns || ic.reorder > 0;
        mqo_impair_format(&ic, desc[d], sizeof desc[d]);
    }

    struct mqo_l2_cfg lc = {.mode = mode, .nports = 2, .flags = l2flags,
                            .aging_ns = (uint64_t)(aging * 1e9)};
    struct mqo_l2 *l2 = mqo_l2_new(&lc);
    if (!l2) {
        fprintf(stderr, "mqoff-bridge: out of memory\n");
        return 1;
    }
    if (static_file) {
        char *text = NULL, err[200];
        size_t len = 0;
        int r = read_file(static_file, &text, &len);
        if (r) {
            fprintf(stderr, "mqoff-bridge: %s: %s\n", static_file, strerror(-r));
            return 1;
        }
        r = mqo_l2_static_parse(l2, text, len, err, sizeof err);
        free(text);
        if (r) {
            fprintf(stderr, "mqoff-bridge: %s: %s\n", static_file, err);
            return 1;
        }
    }

    struct mqo_port *port[2] = {NULL, NULL};
    const char *ifn[2] = {ifa, ifb};
    for (int i = 0; i < 2; i++) {
        struct mqo_port_cfg pc = {.ifname = ifn[i], .backend = MQO_PKTIO_AFPACKET,
                                  .index = (uint16_t)i, .ring_frames = ring, .promisc = promisc,
                                  .flags = port_flags};
        char err[200];
        int r = mqo_port_open(&pc, &port[i], err, sizeof err);
        if (r) {
            fprintf(stderr, "mqoff-bridge: %s\n", err);
            if (r == -EPERM)
                fprintf(stderr, "mqoff-bridge: raw sockets need root (or CAP_NET_RAW)\n");
            mqo_port_close(port[0]);
            return 1;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* The stop signals are blocked except inside ppoll, so one arriving between the check of
     * `stop` and the wait cannot be missed. */
    sigset_t stopsigs, waitmask;
    sigemptyset(&stopsigs);
    sigaddset(&stopsigs, SIGINT);
    sigaddset(&stopsigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &stopsigs, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    static struct txq q[2];
    uint64_t csum_fixed = 0, csum_bad = 0, q_drops = 0, alloc_fail = 0;
    if (!quiet) {
        static const char *mn[] = {"hub", "learn", "static"};
        fprintf(stderr, "mqoff-bridge: forwarding %s <-> %s, l2 %s, impair a2b %s, b2a %s\n", ifa,
                ifb, mn[mode], desc[0], desc[1]);
    }

    struct mqo_rawframe *v[BURST];
    void *due[BURST];
    while (!stop) {
        uint64_t now = now_ns();
        uint64_t wait = 200000000ull; /* ns: wake up now and then even when idle */
        for (int d = 0; d < 2; d++) {
            if (!dirs[d].im)
                continue;
            uint64_t t = mqo_impair_next(dirs[d].im);
            if (t != UINT64_MAX && (t <= now ? 0 : t - now) < wait)
                wait = t <= now ? 0 : t - now;
        }
        struct pollfd pfd[2];
        for (int i = 0; i < 2; i++) {
            pfd[i].fd = mqo_port_fd(port[i]);
            pfd[i].events = POLLIN | (q[i].n ? POLLOUT : 0);
            pfd[i].revents = 0;
        }
        /* ppoll: nanosecond timeout, so an impairment delay is kept to the timer's precision */
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull),
                              .tv_nsec = (long)(wait % 1000000000ull)};
        int pr = ppoll(pfd, 2, &ts, &waitmask);
        if (pr < 0 && errno != EINTR) {
            perror("mqoff-bridge: ppoll");
            break;
        }
        now = now_ns();
        for (int i = 0; i < 2; i++) {
            int out = 1 - i;
            /* a few bursts per port per round, so one busy side cannot starve the other */
            for (int round = 0; round < 4; round++) {
                int n = mqo_port_rx_burst(port[i], v, BURST);
                if (n <= 0)
                    break;
                for (int k = 0; k < n; k++) {
                    struct mqo_rawframe *f = v[k];
                    uint32_t mask = mqo_l2_decide(l2, (unsigned)i, f->data, f->len, now);
                    if (!(mask & (1u << out))) {
                        mqo_frame_free(f);
                        continue;
                    }
                    if (fix_csum && (f->flags & MQO_FRAME_CSUM_PARTIAL)) {
                        int r = mqo_cksum_complete4(f->data, f->len);
                        if (r > 0) {
                            csum_fixed++;
                            f->flags &= (uint16_t)~MQO_FRAME_CSUM_PARTIAL;
                        } else if (r < 0) {
                            csum_bad++;
                        }
                    }
                    struct dir *dr = &dirs[i];
                    if (!dr->im) {
                        if (txq_put(&q[out], f)) {
                            q_drops++;
                            mqo_frame_free(f);
                        }
                        continue;
                    }
                    int fate = mqo_impair_fate(dr->im);
                    if (fate == 0) {
                        mqo_frame_free(f);
                        continue;
                    }
                    struct mqo_rawframe *copy[2] = {f, NULL};
                    if (fate == 2) {
                        copy[1] = mqo_frame_alloc(port[i]);
                        if (copy[1]) {
                            memcpy(copy[1]->data, f->data, f->len);
                            copy[1]->len = f->len;
                            copy[1]->flags = f->flags;
                            copy[1]->ts_ns = f->ts_ns;
                            copy[1]->port = f->port;
                        } else {
                            alloc_fail++;
                        }
                    }
                    for (int j = 0; j < 2 && copy[j]; j++) {
                        if ((dr->hold && mqo_frame_detach(copy[j])) ||
                            mqo_impair_enqueue(dr->im, copy[j], now)) {
                            dr->impair_nomem++;
                            mqo_frame_free(copy[j]);
                        }
                    }
                }
                if (n < BURST)
                    break;
            }
        }
        for (int d = 0; d < 2; d++) {
            if (!dirs[d].im)
                continue;
            int n;
            while ((n = mqo_impair_dequeue(dirs[d].im, now, due, BURST)) > 0)
                for (int k = 0; k < n; k++)
                    if (txq_put(&q[1 - d], due[k])) {
                        q_drops++;
                        mqo_frame_free(due[k]);
                    }
        }
        for (int i = 0; i < 2; i++)
            txq_flush(port[i], &q[i]);
    }

    /* Shutdown: what is queued is dropped, every frame goes back before the ports close. */
    for (int d = 0; d < 2; d++) {
        if (!dirs[d].im)
            continue;
        int n;
        while ((n = mqo_impair_drain(dirs[d].im, due, BURST)) > 0)
            for (int k = 0; k < n; k++)
                mqo_frame_free(due[k]);
    }
    for (int i = 0; i < 2; i++)
        while (q[i].n) {
            mqo_frame_free(q[i].f[q[i].head]);
            q[i].head = (q[i].head + 1) % QCAP;
            q[i].n--;
        }

    /* counters */
    const char *nm[2] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        struct mqo_port_stats s;
        mqo_port_stats(port[i], &s);
        printf("port %s %s: rx %llu frames %llu bytes, tx %llu frames %llu bytes, rx_dropped %llu,"
               " tx_errors %llu, tx_full %llu, rx_stalls %llu, detached %llu\n",
               nm[i], ifn[i], (unsigned long long)s.rx_frames, (unsigned long long)s.rx_bytes,
               (unsigned long long)s.tx_frames, (unsigned long long)s.tx_bytes,
               (unsigned long long)s.rx_dropped, (unsigned long long)s.tx_errors,
               (unsigned long long)s.tx_full, (unsigned long long)s.rx_stalls,
               (unsigned long long)s.detached);
    }
    struct mqo_l2_stats ls;
    mqo_l2_get_stats(l2, &ls);
    printf("l2: frames %llu, unicast %llu, flooded %llu, filtered %llu, dropped unknown %llu,"
           " runt %llu, learned %llu, moved %llu, table_full %llu\n",
           (unsigned long long)ls.frames, (unsigned long long)ls.unicast,
           (unsigned long long)ls.flooded, (unsigned long long)ls.filtered,
           (unsigned long long)ls.dropped_unknown, (unsigned long long)ls.dropped_runt,
           (unsigned long long)ls.learned, (unsigned long long)ls.moved,
           (unsigned long long)ls.table_full);
    for (int d = 0; d < 2; d++) {
        if (!dirs[d].im)
            continue;
        struct mqo_impair_stats is;
        mqo_impair_get_stats(dirs[d].im, &is);
        printf("impair %s: in %llu, lost %llu, duplicated %llu, reordered %llu, delayed %llu,"
               " out %llu, overflow %llu, no memory %llu\n",
               d ? "b2a" : "a2b", (unsigned long long)is.in, (unsigned long long)is.lost,
               (unsigned long long)is.duped, (unsigned long long)is.reordered,
               (unsigned long long)is.delayed, (unsigned long long)is.out,
               (unsigned long long)is.overflow, (unsigned long long)dirs[d].impair_nomem);
        mqo_impair_free(dirs[d].im);
    }
    printf("bridge: checksums completed %llu, malformed %llu, queue drops %llu, alloc failures"
           " %llu\n",
           (unsigned long long)csum_fixed, (unsigned long long)csum_bad,
           (unsigned long long)q_drops, (unsigned long long)alloc_fail);
    fflush(stdout);
    for (int i = 0; i < 2; i++)
        mqo_port_close(port[i]);
    mqo_l2_free(l2);
    return 0;
}
