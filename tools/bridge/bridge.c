/* mqoff-bridge: forwards every Ethernet frame between two interfaces (pktio + l2 + impair).
 *
 *   mqoff-bridge --port-a PORT --port-b PORT [--io afpacket|dpdk|afxdp] [--eal "ARGS"]
 *                [--l2 hub|learn|static] [--static-file F]
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

#include "core/file.h"
#include "l2/impair.h"
#include "l2/l2.h"
#include "modes/bump.h"

static volatile int stop;

static void on_signal(int sig) { stop = sig; }

static void usage(FILE *o)
{
    fprintf(o,
            "usage: mqoff-bridge --port-a PORT --port-b PORT [options]\n"
            "  --io BACKEND         afpacket (default), afxdp (ports are interfaces) or dpdk\n"
            "                       (ports are DPDK port ids or device names, with --eal)\n"
            "  --eal \"ARGS\"         dpdk: the EAL arguments (without hugepages: --no-huge)\n"
            "  --l2 MODE            hub | learn (default) | static\n"
            "  --static-file F      static table: 'MAC PORT' lines, PORT a|b or 0|1\n"
            "  --flood-unknown      static: flood unknown unicast instead of dropping it\n"
            "  --aging S            learn: MAC aging in seconds (default 300)\n"
            "  --impair SPEC        impairment in both directions (independent draws)\n"
            "  --impair-a2b SPEC    impairment from port a to port b\n"
            "  --impair-b2a SPEC    impairment from port b to port a\n"
            "                       SPEC: loss=P,dup=P,reorder=P,gap=N,hold=MS,delay=MS,\n"
            "                             jitter=MS,seed=N,limit=N,frag=SIZE (P in percent;\n"
            "                             frag: IPv4 datagrams with more than SIZE bytes of IP\n"
            "                             payload leave as fragments of at most SIZE bytes,\n"
            "                             rounded down to a multiple of 8; DF is ignored)\n"
            "  --ring N             frames received and not yet read that a port holds\n"
            "                       (default 32768; afpacket: the receive queue's room, or\n"
            "                       the ring's slots)\n"
            "  --rx queue|ring      afpacket: read from the socket's receive queue (recvmmsg,\n"
            "                       default) or from a TPACKET_V2 ring\n"
            "  --busy-poll US       after a frame, poll without sleeping for US microseconds\n"
            "                       (default 0)\n"
            "  --qdisc-bypass       PACKET_QDISC_BYPASS (faster; tcpdump no longer sees TX)\n"
            "  --no-fix-csum        forward partial checksums as they are (afpacket: with\n"
            "                       the virtio-net header the kernel completes them anyway)\n"
            "  --no-gso             afpacket: no virtio-net header (no segmentation or checksum\n"
            "                       offload; super-segments the kernel delivers are dropped)\n"
            "  --no-promisc         leave the interfaces' promiscuous mode alone\n"
            "  --quiet              no start line\n");
}


/* The start line, printed once the ports are open (mqo_bump_cfg.ready). */
static char g_ready_line[2048];
static void print_ready(void *arg)
{
    (void)arg;
    fputs(g_ready_line, stderr);
}

int main(int argc, char **argv)
{
    const char *ifa = NULL, *ifb = NULL, *static_file = NULL;
    const char *spec_both = NULL, *spec_dir[2] = {NULL, NULL}, *eal = NULL;
    enum mqo_pktio_backend io = MQO_PKTIO_AFPACKET;
    enum mqo_l2_mode mode = MQO_L2_LEARN;
    unsigned l2flags = 0, port_flags = 0;
    uint32_t ring = 0, busy_us = 0;
    double aging = 0;
    int fix_csum = 1, promisc = 1, quiet = 0;
    enum {
        O_A = 256, O_B, O_L2, O_STATIC, O_FLOOD, O_AGING, O_IMP, O_A2B, O_B2A, O_RING,
        O_BUSY, O_BYPASS, O_NOGSO, O_NOFIX, O_NOPROMISC, O_QUIET, O_IO, O_EAL, O_HELP, O_RX
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
        {"busy-poll", required_argument, 0, O_BUSY},
        {"qdisc-bypass", no_argument, 0, O_BYPASS},
        {"no-gso", no_argument, 0, O_NOGSO},
        {"no-fix-csum", no_argument, 0, O_NOFIX},
        {"no-promisc", no_argument, 0, O_NOPROMISC},
        {"quiet", no_argument, 0, O_QUIET},
        {"io", required_argument, 0, O_IO},
        {"eal", required_argument, 0, O_EAL},
        {"help", no_argument, 0, O_HELP},
        {"rx", required_argument, 0, O_RX},
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
        case O_BUSY: {
            char *e;
            unsigned long v = strtoul(optarg, &e, 10);
            if (*e || e == optarg || v > 1000000ul) {
                fprintf(stderr, "mqoff-bridge: --busy-poll '%s': want 0..1000000 (us)\n", optarg);
                return 2;
            }
            busy_us = (uint32_t)v;
            break;
        }
        case O_BYPASS: port_flags |= MQO_PORT_QDISC_BYPASS; break;
        case O_NOGSO: port_flags |= MQO_PORT_NO_VNET; break;
        case O_RX:
            if (!strcmp(optarg, "ring"))
                port_flags |= MQO_PORT_RX_RING;
            else if (!strcmp(optarg, "queue"))
                port_flags &= ~(unsigned)MQO_PORT_RX_RING;
            else {
                fprintf(stderr, "mqoff-bridge: --rx takes 'queue' or 'ring'\n");
                return 2;
            }
            break;
        case O_NOFIX: fix_csum = 0; break;
        case O_NOPROMISC: promisc = 0; break;
        case O_QUIET: quiet = 1; break;
        case O_IO:
            if (mqo_pktio_backend_parse(optarg, &io)) {
                fprintf(stderr, "mqoff-bridge: --io '%s': want afpacket, dpdk or afxdp\n", optarg);
                return 2;
            }
            break;
        case O_EAL: eal = optarg; break;
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
    if ((io == MQO_PKTIO_DPDK) != (eal != NULL)) {
        fprintf(stderr, "mqoff-bridge: --eal \"ARGS\" goes with --io dpdk, and only with it\n");
        return 2;
    }
    if (!mqo_pktio_backend_built(io)) {
        fprintf(stderr,
                "mqoff-bridge: --io %s is not in this build (its Debian packages were missing "
                "when it was built: scripts/deps.sh installs them, then make)\n",
                mqo_pktio_backend_name(io));
        return 2;
    }
    if ((mode == MQO_L2_STATIC) != (static_file != NULL)) {
        fprintf(stderr, "mqoff-bridge: --static-file goes with --l2 static, and only with it\n");
        return 2;
    }

    /* impairment by output port: a2b leaves on port b (1), b2a on port a (0) */
    struct mqo_impair_cfg ic[2];
    const struct mqo_impair_cfg *icp[2] = {NULL, NULL};
    char desc[2][300] = {"none", "none"};
    for (int d = 0; d < 2; d++) {
        /* d = 0: a2b, d = 1: b2a */
        const char *spec = spec_dir[d] ? spec_dir[d] : spec_both;
        if (!spec)
            continue;
        char err[200];
        int out = 1 - d;
        if (mqo_impair_parse(spec, &ic[out], err, sizeof err)) {
            fprintf(stderr, "mqoff-bridge: --impair%s: %s\n",
                    spec_dir[d] ? (d ? "-b2a" : "-a2b") : "", err);
            return 2;
        }
        if (!mqo_impair_active(&ic[out]))
            continue;
        icp[out] = &ic[out];
        mqo_impair_format(&ic[out], desc[d], sizeof desc[d]);
    }
    char *text = NULL;
    size_t len = 0;
    if (static_file) {
        int r = mqo_read_file(static_file, &text, &len);
        if (r) {
            fprintf(stderr, "mqoff-bridge: %s: %s\n", static_file, strerror(-r));
            return 1;
        }
    }
    struct mqo_bump_cfg bc = {.ifname = {ifa, ifb},
                              .io = io,
                              .eal = eal,
                              .l2_mode = mode,
                              .l2_flags = l2flags,
                              .aging_ns = (uint64_t)(aging * 1e9),
                              .static_text = text,
                              .static_len = len,
                              .impair_out = {icp[0], icp[1]},
                              .ring = ring,
                              .busy_poll_us = busy_us,
                              .port_flags = port_flags,
                              .fix_csum = fix_csum,
                              .promisc = promisc,
                              .stop = &stop,
                              .name = "mqoff-bridge"};

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static const char *mn[] = {"hub", "learn", "static"};
    snprintf(g_ready_line, sizeof g_ready_line,
             "mqoff-bridge: forwarding %s <-> %s (%s), l2 %s, impair a2b %s, b2a %s\n", ifa, ifb,
             mqo_pktio_backend_name(io), mn[mode], desc[0], desc[1]);
    if (!quiet)
        bc.ready = print_ready;
    struct mqo_bump_stats st;
    int rc = mqo_bump_run(&bc, &st);
    free(text);
    if (rc)
        return 1;
    mqo_bump_print_stats(&bc, &st, stdout);
    return 0;
}
