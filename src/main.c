/* mqoff: command line. `mqoff MODE [options]`, one mode per process. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "conf/mosqconf.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/optfile.h"
#include "ctl/ctl.h"
#include "engine/engine.h"
#include "core/file.h"
#include "l2/impair.h"
#include "l2/l2.h"
#include "modes/intercept.h"
#include "modes/monitor.h"
#include "modes/proxy.h"
#include "modes/proxy_lwip.h"
#include "modes/reload.h"
#include "net/takeover.h"

#define MQOFF_VERSION "0.1.0"

static volatile int g_stop, g_hup, g_upgrade;

static void on_signal(int sig) { g_stop = 1; }
/* SIGHUP: the operator says the broker reloaded its configuration (after sending it SIGHUP). */
static void on_hup(int sig) { g_hup = 1; }
/* SIGUSR2: start the successor, which takes over (--takeover). */
static void on_usr2(int sig) { g_upgrade = 1; }

static void usage_main(FILE *f)
{
    fprintf(f,
            "usage: mqoff MODE [options]\n"
            "\n"
            "MQTT PUBLISH distribution offload in front of an unmodified broker.\n"
            "\n"
            "modes:\n"
            "  proxy      TCP endpoint: clients connect to mqoff, mqoff connects to the broker\n"
            "  monitor    transparent bump-in-the-wire between two interfaces (raw frames)\n"
            "  intercept  mqoff owns the broker's listener; the broker, run with the\n"
            "             LD_PRELOAD shim libmqoff-intercept.so, gets each client from it\n"
            "\n"
            "  mqoff MODE --help   options of a mode\n"
            "  mqoff MODE -c FILE [options]\n"
            "                      options from FILE, one a line ('acl-file PATH', '#'\n"
            "                      comments); the command line's replace the file's\n"
            "  mqoff -c FILE [options]   the same, the mode from FILE's 'mode' line\n"
            "  mqoff                     mqoff -c /etc/mqoff/mqoff.conf, when it exists\n"
            "  mqoff --version\n");
}

#define CONTROL_HELP                                                                          \
    "\n"                                                                                      \
    "control plane:\n"                                                                        \
    "  --control PATH         Unix socket for the broker plugin (build/mqoff_mosquitto.so,\n" \
    "                         plugin_opt_control PATH in mosquitto.conf) and mqoffctl; while\n" \
    "                         the plugin is connected and synced, mqoff knows every client of\n"\
    "                         the broker: --exclusive and --startup-hold are not needed\n"    \
    "  --control-group GROUP  the socket's group (mode 0660), e.g. the broker's user's\n"     \
    "  --metrics ADDR:PORT    Prometheus text format at http://ADDR:PORT/metrics\n"

#define SERVICE_HELP                                                                          \
    "\n"                                                                                      \
    "as a service:\n"                                                                         \
    "  -c, --config FILE      options from FILE, one a line without its '--' ('acl-file\n"   \
    "                         PATH', 'exclusive'; '#' comment lines); the command line's\n"   \
    "                         replace the file's; SIGHUP reads it again (man 8 mqoff)\n"     \
    "  --log stderr|syslog    where log lines go (default stderr)\n"

#define TAKEOVER_HELP                                                                         \
    "\n"                                                                                      \
    "restarts:\n"                                                                             \
    "  --takeover PATH        Unix socket of planned restarts: a process started with it\n"  \
    "                         takes every connection (proxy, intercept: the sockets and\n"  \
    "                         the channel; monitor: the splice's state) and the engine's\n"  \
    "                         state from the one serving\n"                                 \
    "                         there (same format version), which then exits; no client\n"   \
    "                         notices. Nobody there: a fresh start. Either way it listens\n" \
    "                         there for the next. SIGUSR2: start the successor (man 8 mqoff)\n"

#define CONNTABLE_HELP                                                                        \
    "  --conn-table PATH      the spliced connections' table, in shared memory (e.g.\n"      \
    "                         /dev/shm/mqoff-NAME.conns): after a crash, the next monitor\n" \
    "                         started on it resumes the connections that were quiescent\n"  \
    "                         (relayed to the broker until they close) and resets both ends\n" \
    "                         of the others, so clients reconnect at once instead of after\n" \
    "                         their keep-alive\n"

static void usage_proxy(FILE *f)
{
    fprintf(f,
            "usage: mqoff proxy --listen ADDR:PORT --broker ADDR:PORT [options]\n"
            "       mqoff proxy --stack lwip --iface IF --listen ADDR:PORT --broker ADDR:PORT\n"
            "                   [--io afpacket|afxdp|dpdk] [--gateway ADDR] [--mac MAC] [options]\n"
            "\n"
            "Clients connect to ADDR:PORT of --listen; for each one mqoff opens a connection to\n"
            "the broker and runs both byte streams through its MQTT engine. PUBLISH packets it\n"
            "can deliver exactly as the broker would go straight to the subscribers; everything\n"
            "else goes to the broker.\n"
            "\n"
            "the broker's configuration (recommended):\n"
            "  --mosquitto-conf FILE  the broker's own mosquitto.conf (and its include_dir):\n"
            "                         its acl_file (or none), limits (message_size_limit,\n"
            "                         max_packet_size, max_qos, max_inflight_messages, ...),\n"
            "                         the --broker listener's mount_point, bridge topics; what\n"
            "                         mqoff cannot evaluate (TLS, websockets, plugins) passes\n"
            "                         through, said at start; a change stops offload until\n"
            "                         mqoff is restarted\n"
            "\n"
            "authorization without --mosquitto-conf (the broker's rules bind the offload too;\n"
            "without one of these every PUBLISH passes through to the broker):\n"
            "  --acl-file PATH        the broker's Mosquitto acl_file (Mosquitto 2.0 semantics);\n"
            "                         watched: from a change until SIGHUP, only what both the\n"
            "                         old and the new rules allow is offloaded\n"
            "  --acl open             the broker restricts no topics (no acl_file, no plugin)\n"
            "\n"
            "reach (without it every PUBLISH passes through to the broker):\n"
            "  --exclusive            every client of the broker connects through this mqoff:\n"
            "                         no other listener, no direct connection (mqoff cannot see\n"
            "                         such a subscriber, which would miss offloaded messages)\n"
            "\n"
            "options:\n"
            "  --broker-only FILTER   messages on topics matching FILTER always go to the broker\n"
            "                         (bridges, plugins); repeatable\n"
            "  --max-queue BYTES      per-client output limit, memory with its overhead (default\n"
            "                         4194304): over it, QoS 0 deliveries are dropped and counted,\n"
            "                         QoS 1 messages go to the broker; broker bytes pause the\n"
            "                         broker socket at 2x\n"
            "  --max-buffer BYTES     largest packet held whole (default 1048576): a larger one\n"
            "                         streams on to the broker (or the client) as it arrives and\n"
            "                         is never offloaded, so memory per connection stays bounded\n"
            "  --overlap MODE         a subscriber with several matching subscriptions:\n"
            "                         'passthrough' (default, as Mosquitto 2.0 sends v5 clients\n"
            "                         one copy per subscription) or 'once'\n"
            "  --order-hold-ms MS     how long a publisher waits for its passed-through message\n"
            "                         to reach subscribers before offload resumes (default 2000)\n"
            "  --io writev|uring      how queued bytes are written: a writev per socket per loop\n"
            "                         iteration (default), or one io_uring submission for all\n"
            "  --busy-poll US         after an event, poll without sleeping for US microseconds\n"
            "                         (default 0: sleep at once); lower latency, more CPU\n"
            "  --log-level LEVEL      error, warn, info (default), debug\n"
            "  -h, --help             this text\n"
            "\n"
            "TCP/IP stack (default: the kernel's sockets):\n"
            "  --stack kernel|lwip    lwip: mqoff is the TCP endpoint itself, on lwIP over raw\n"
            "                         frames of --iface: it owns --listen's address there (the\n"
            "                         interface must not have it), answers ARP for it, and opens\n"
            "                         each client's broker connection from that address too\n"
            "  --iface IF             lwip: the interface (dpdk: a DPDK port id or device name)\n"
            "  --io BACKEND           lwip: afpacket (default), afxdp or dpdk (with --eal, as for\n"
            "                         monitor mode)\n"
            "  --rx queue|ring        lwip with afpacket: as for monitor mode\n"
            "  --eal \"ARGS\"           lwip with --io dpdk: the EAL arguments\n"
            "  --netmask MASK         lwip: the address's network (default 255.255.255.0)\n"
            "  --gateway ADDR         lwip: the router toward a broker off that network\n"
            "  --mac MAC              lwip: the stack's MAC address (default: the interface's;\n"
            "                         another one puts the interface in promiscuous mode)\n"
            "  --max-conns N          lwip: client connections at most (default 100000); more\n"
            "                         are reset, with a log line\n"
            "  --syn-backlog N        lwip: half-open connections at most (default 256); SYNs\n"
            "                         beyond it are dropped (a SYN flood stays bounded)\n"
            CONTROL_HELP
            SERVICE_HELP
            TAKEOVER_HELP
            "\n"
            "SIGINT/SIGTERM stop mqoff gracefully and print its counters. SIGHUP says the\n"
            "broker has reloaded its configuration: send it after the broker's own SIGHUP;\n"
            "mqoff reads --acl-file again and keeps only that version.\n");
}

static void usage_monitor(FILE *f)
{
    fprintf(f,
            "usage: mqoff monitor --port-a PORT --port-b PORT --broker ADDR:PORT [options]\n"
            "\n"
            "A transparent bump-in-the-wire between two interfaces: clients on port a, the\n"
            "broker host on port b. Every frame is forwarded; TCP connections to the broker's\n"
            "address and port whose SYN mqoff saw are spliced: PUBLISH packets it can deliver\n"
            "exactly as the broker would go straight to the subscribers, and mqoff keeps both\n"
            "ends' sequence numbers, ACKs, windows and retransmissions right. It is not a TCP\n"
            "endpoint and has no address of its own.\n"
            "\n"
            "IPv4 fragments of TCP to or from the broker's address are held until the one with\n"
            "the TCP header shows their connection: a spliced connection's datagram is\n"
            "reassembled and spliced whole; any other's fragments go on untouched, in their\n"
            "order. A datagram neither complete nor decided --frag-timeout after its first\n"
            "fragment arrived is dropped, as the receiving host would drop it. Other\n"
            "fragments are forwarded untouched.\n"
            "\n"
            "the broker's configuration: --mosquitto-conf FILE (recommended; as for proxy\n"
            "mode), or authorization: --acl-file PATH | --acl open\n"
            "\n"
            "reach (without it every PUBLISH passes through to the broker):\n"
            "  --exclusive            every client of the broker reaches it through port a and\n"
            "                         the broker address and port: no other listener, no other\n"
            "                         path (mqoff cannot see such a subscriber)\n"
            "\n"
            "packet I/O:\n"
            "  --io BACKEND           afpacket (default): AF_PACKET rings, a port is an\n"
            "                         interface; afxdp: AF_XDP sockets (an XDP program on each\n"
            "                         interface sends the broker's TCP to mqoff and the rest\n"
            "                         to the other port), a port is an interface; dpdk: DPDK\n"
            "                         ethdev ports, with --eal\n"
            "  --eal \"ARGS\"           dpdk: the EAL arguments; a port is a DPDK port id or\n"
            "                         device name, e.g. --eal \"--no-huge --no-pci --file-prefix\n"
            "                         mq1 --vdev=net_af_packet0,iface=eth1 --vdev=\n"
            "                         net_af_packet1,iface=eth2\" --port-a net_af_packet0\n"
            "                         --port-b net_af_packet1 (without hugepages: --no-huge)\n"
            "\n"
            "options:\n"
            "  --broker-only FILTER   topics always left to the broker; repeatable\n"
            "  --max-queue BYTES      bytes held for one receiver before offload stops for it\n"
            "  --client-window BYTES  the least TCP window offered to a client for its bytes\n"
            "                         toward the broker (default 262144): the broker's own\n"
            "                         stays small when all a client sends is consumed here;\n"
            "                         what is forwarded past the broker's window waits in\n"
            "                         mqoff. 0: the broker's window alone\n"
            "  --client-window-mem BYTES  once this much waits toward the broker over all\n"
            "                         clients, windows offered are the broker's (default\n"
            "                         67108864)\n"
            "  --max-buffer BYTES     largest packet held whole (default 1048576); larger ones\n"
            "                         stream on as they arrive and are never offloaded\n"
            "  --overlap MODE         passthrough (default) | once\n"
            "  --order-hold-ms MS     default 2000\n"
            "  --l2 MODE              hub | learn (default) | static\n"
            "  --static-file F        static L2 table: 'MAC PORT' lines, PORT a|b\n"
            "  --frag-max N           fragmented datagrams held at most (default 1024; the\n"
            "                         oldest is dropped to make room); 0: no reassembly, every\n"
            "                         fragment forwarded untouched (a spliced one is lost)\n"
            "  --frag-mem BYTES       memory for held fragments (default 4194304)\n"
            "  --frag-timeout S       a datagram not complete, or whose connection is not known,\n"
            "                         S seconds after its first fragment is dropped (default 30)\n"
            "  --impair SPEC          test facility: loss/dup/reorder/delay/fragmentation in\n"
            "                         both directions\n"
            "  --impair-a2b SPEC      ... toward the broker only\n"
            "  --impair-b2a SPEC      ... toward the clients only\n"
            "                         SPEC: loss=P,dup=P,reorder=P,delay=MS,jitter=MS,seed=N,\n"
            "                         frag=SIZE (IPv4 datagrams with more than SIZE bytes of\n"
            "                         IP payload leave as fragments; DF is ignored)\n"
            "  --startup-hold S       nothing is offloaded for S seconds after start (default\n"
            "                         90): clients connected before mqoff started are unseen\n"
            "                         until they send their next keep-alive; 0 when the broker\n"
            "                         started with mqoff in place (no such clients)\n"
            "  --ring N               frames received and not yet read that a port holds\n"
            "                         (default 32768; afpacket: the receive queue's room, or\n"
            "                         the ring's slots; dpdk: descriptors, at most what the\n"
            "                         device has; afxdp: rounded up to a power of two, default\n"
            "                         4096)\n"
            "  --rx queue|ring        afpacket: read frames from the socket's receive queue\n"
            "                         (recvmmsg, default) or from a TPACKET_V2 ring mapped into\n"
            "                         mqoff (no system call, but each frame touches ring memory\n"
            "                         that goes cold; see ARCHITECTURE, pktio)\n"
            "  --busy-poll US         after a frame, poll without sleeping for US microseconds\n"
            "                         (default 0: sleep at once); lower latency, more CPU\n"
            "  --no-promisc           leave the interfaces' promiscuous mode alone\n"
            "  --shared-payload-min BYTES  a segment ending with at least BYTES of a fan-out's\n"
            "                         payload sends them from the one shared copy (an iovec,\n"
            "                         a chained mbuf) instead of a copy per subscriber (default\n"
            "                         1024; 0: never); given, also on DPDK's software devices\n"
            "                         (net_af_packet...), which copy chained mbufs anyway\n"
            "  --gso on|off           afpacket: segmentation and checksum offload through the\n"
            "                         virtio-net header (default on): a delivery leaves as one\n"
            "                         super-segment the kernel cuts (or a veth peer takes\n"
            "                         whole), super-segments (GRO, local GSO) are received\n"
            "                         whole; off: a frame per MSS, summed here\n"
            "  --log-level LEVEL      error, warn, info (default), debug\n"
            "  -h, --help             this text\n"
            CONTROL_HELP
            SERVICE_HELP
            TAKEOVER_HELP
            CONNTABLE_HELP
            "\n"
            "SIGINT/SIGTERM stop mqoff and print its counters. SIGHUP: the broker reloaded\n"
            "(as for proxy mode).\n");
}

static void usage_intercept(FILE *f)
{
    fprintf(f,
            "usage: mqoff intercept --listen ADDR:PORT --channel PATH [options]\n"
            "       MQOFF_CHANNEL=PATH LD_PRELOAD=.../libmqoff-intercept.so mosquitto -c FILE\n"
            "\n"
            "mqoff listens on ADDR:PORT in place of the broker. The broker keeps its own\n"
            "'listener PORT ADDR' line and runs with the shim, which finds mqoff at PATH (a\n"
            "Unix socket mqoff creates, read-write for its owner and group), does not bind\n"
            "that listener and gets every client connection from mqoff instead, as a local\n"
            "stream its accept() returns, with the client's real address. Both byte streams\n"
            "run through mqoff's MQTT engine as in proxy mode; the broker's TCP stack is off\n"
            "the client path. Either may start first: the broker's bind() waits for mqoff\n"
            "(MQOFF_CHANNEL_WAIT=S gives up after S seconds), and while no broker is attached\n"
            "mqoff answers clients CONNACK \"server unavailable\" and closes them. Every other\n"
            "socket of the broker (other listeners, bridges) is untouched.\n"
            "\n"
            "the broker's configuration (recommended): --mosquitto-conf FILE, evaluated for\n"
            "its listener on --listen's address (as --broker is for proxy mode); or\n"
            "authorization: --acl-file PATH | --acl open\n"
            "\n"
            "reach (without it every PUBLISH passes through to the broker):\n"
            "  --exclusive            every client of the broker comes through this listener:\n"
            "                         the broker has no other way in (listener, bridge in)\n"
            "                         for a subscriber mqoff cannot see\n"
            "\n"
            "options: --broker-only FILTER, --max-queue BYTES, --max-buffer BYTES,\n"
            "  --overlap MODE, --order-hold-ms MS, --io writev|uring, --busy-poll US,\n"
            "  --log-level LEVEL: as for proxy mode (mqoff proxy --help)\n"
            "  --stack lwip --iface IF [--io afpacket|afxdp|dpdk] [--eal ARGS] [--netmask\n"
            "  MASK] [--gateway ADDR] [--mac MAC] [--max-conns N] [--syn-backlog N]: the\n"
            "                         clients' side on lwIP over raw frames of IF, owning\n"
            "                         --listen's address there, as for proxy mode; the broker\n"
            "                         runs its listener for that address with the shim\n"
            "  -h, --help             this text\n"
            CONTROL_HELP
            SERVICE_HELP
            TAKEOVER_HELP
            "\n"
            "SIGINT/SIGTERM stop mqoff and print its counters (the broker goes on serving its\n"
            "other listeners and takes clients again from the next mqoff). SIGHUP: the broker\n"
            "reloaded (as for proxy mode).\n");
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

/* The engine's counters; acl_file: authorization comes from --acl-file (its versions count). */
static void print_stats(const struct mqo_engine_stats *e, int acl_file)
{
    fprintf(stderr,
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
            (unsigned long long)e->publish_in, (unsigned long long)e->consumed,
            (unsigned long long)e->passthrough, (unsigned long long)e->deliveries,
            (unsigned long long)e->deliveries_qos1, (unsigned long long)e->dropped_qos0,
            (unsigned long long)e->pubacks_sent, (unsigned long long)e->pubacks_absorbed,
            (unsigned long long)e->pings_synth, (unsigned long long)e->order_expired,
            (unsigned long long)e->inflight_lost, (unsigned long long)e->protocol_errors);
    if (acl_file) /* versions the broker may be using; 0: the file does not parse */
        fprintf(stderr, "  acl_versions      %llu\n", (unsigned long long)e->acl_versions);
    for (int r = 1; r < MQO_PT__COUNT; r++)
        if (e->pt_reason[r])
            fprintf(stderr, "    passthrough %-20s %llu\n",
                    mqo_pt_reason_name((enum mqo_pt_reason)r), (unsigned long long)e->pt_reason[r]);
}

/* Everything the command line can set, for every mode. */
struct opts {
    const char *takeover;   /* --takeover PATH */
    const char *conn_table; /* --conn-table PATH */
    int monitor;
    int intercept;
    const char *channel;
    const char *listen_s, *broker_s, *acl_file;
    int acl_open;
    int exclusive;
    /* --mosquitto-conf: the broker's configuration, evaluated for --broker (kept while the
     * engine runs: it points into them), and the broker-only filters with the bridges' */
    const char *mosq_conf;
    struct mqo_mosqconf *conf;
    struct mqo_mosqpolicy *pol;
    const char **bo_all;
    const char **bo;
    size_t n_bo;
    size_t max_queue;
    uint32_t max_buffer;
    enum mqo_overlap overlap;
    uint32_t order_hold_ms;
    int io_uring;
    /* monitor */
    enum mqo_pktio_backend pktio;
    const char *eal;
    int share_set;
    size_t share_min;
    int no_gso; /* --gso off */
    const char *port_a, *port_b, *static_file;
    enum mqo_l2_mode l2;
    const char *impair, *impair_dir[2]; /* [0] a2b, [1] b2a */
    uint32_t ring;
    int rx_ring; /* --rx ring */
    int rx_set;  /* --rx given */
    uint32_t busy_poll_us;
    /* proxy --stack lwip */
    int stack_lwip, pktio_set;
    const char *iface, *mac, *netmask_s, *gateway_s;
    uint32_t max_conns, syn_backlog;
    int promisc;
    int32_t startup_hold_ms; /* 0: default, -1: none */
    int frag_max_set;
    uint32_t frag_max;
    size_t frag_mem;
    uint32_t client_window; /* 0: the splice's default; MQO_SPLICE_WINDOW_NONE: none */
    size_t client_window_mem;
    uint64_t frag_timeout_ns;
    /* -c FILE (the file, the arguments read: the file's then the command line's, the command
     * line, each option's values as they are in effect: SIGHUP compares), --log */
    struct mqo_optfile file;
    struct mqo_optargs args;
    const struct option *table;
    int cli_argc;
    char **cli_argv;
    char **vals;
    struct opts *pristine; /* as the mode set it up before any option: SIGHUP parses again */
    struct opts *hups;     /* what each SIGHUP read (its strings stay in use), newest first */
    int log_syslog;
    /* --control, --control-group, --metrics; config: what `mqoffctl config` shows */
    struct mqo_ctl_cfg ctl;
    const char *config[2 * 24];
    char config_buf[8][32];
};

/* An option that takes one of two words: *out = 0 for the first, 1 for the second; -1 (with
 * the message printed) for anything else. */
static int parse_choice(const char *opt, const char *arg, const char *first, const char *second,
                        int *out)
{
    if (!strcmp(arg, first) || !strcmp(arg, second)) {
        *out = strcmp(arg, first) != 0;
        return 0;
    }
    fprintf(stderr, "mqoff: %s takes '%s' or '%s'\n", opt, first, second);
    return -1;
}

static int parse_u64(const char *opt, const char *v, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "mqoff: %s takes %llu..%llu, not '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o);

/* Runs parse_opts over args with its messages captured into *msgs (malloc'd, NUL-terminated;
 * an error at an argument that came from the file names the file and line). Returns what
 * parse_opts returns. */
static int parse_captured(struct opts *o, char **msgs)
{
    size_t len = 0;
    *msgs = NULL;
    FILE *real = stderr, *cap = open_memstream(msgs, &len);
    if (!cap)
        return 2;
    stderr = cap;
    int rc = parse_opts(o->args.argc, o->args.argv, o);
    /* the loop stopped before the closing "--" only at an error: optind - 1 is its argument */
    int at = optind - 1;
    unsigned line = rc == 2 && optind < o->args.argc && at > 0 ? o->args.line[at] : 0;
    stderr = real;
    fclose(cap);
    if (line && *msgs) {
        const char *m = strncmp(*msgs, "mqoff: ", 7) == 0 ? *msgs + 7 : *msgs;
        char *n = NULL;
        if (asprintf(&n, "mqoff: %s:%u: %s", o->file.path, line, m) >= 0) {
            free(*msgs);
            *msgs = n;
        }
    }
    return rc;
}

/* The options of a mode: those of the configuration file (-c FILE) and the command line's,
 * which replace the file's of the same name; parse_opts reads them in that order, so every
 * option of every mode is a key of the file with no code of its own (core/optfile.h). argv[0]
 * is the mode's name. Returns what parse_opts returns. */
static int config_parse(int argc, char **argv, struct opts *o, const struct option *table)
{
    const char *path;
    int at, n;
    char err[512];
    if (!o->pristine && (o->pristine = malloc(sizeof *o)) != NULL)
        *o->pristine = *o;
    if (!o->pristine)
        return 2;
    if (mqo_optfile_find(argc, argv, table, &path, &at, &n)) {
        fprintf(stderr, "mqoff: -c needs the configuration file's path\n");
        return 2;
    }
    if (path && mqo_optfile_load(path, table, &o->file, err, sizeof err)) {
        fprintf(stderr, "mqoff: %s\n", err);
        return 2;
    }
    if (o->file.mode && strcmp(o->file.mode, argv[0]) != 0) {
        fprintf(stderr, "mqoff: %s:%u: the file is for %s mode, not %s\n", path,
                o->file.mode_line, o->file.mode, argv[0]);
        return 2;
    }
    if (mqo_optfile_merge(path ? &o->file : NULL, table, argc, argv, &o->args))
        return 2;
    o->table = table;
    o->cli_argc = argc;
    o->cli_argv = argv;
    char *msgs;
    int rc = parse_captured(o, &msgs);
    if (msgs)
        fputs(msgs, stderr);
    free(msgs);
    if (rc == 0 && mqo_optargs_values(table, "h", &o->args, &o->vals))
        rc = 2;
    if (rc == 0)
        mqo_log_use_syslog(o->log_syslog);
    return rc;
}

/* What SIGHUP applies of a changed configuration file while mqoff runs; the rest waits for a
 * restart (the listeners, ports, rings and limits are set up once). */
static int config_live(const char *name)
{
    static const char *const live[] = {"log-level", "log", "broker-only", "acl-file", "acl"};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (strcmp(name, live[i]) == 0)
            return 1;
    return 0;
}

static int same_vals(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Appends ", name" (or "name") to a list of names. */
static void name_add(char *list, size_t cap, const char *name)
{
    size_t l = strlen(list);
    snprintf(list + l, cap - l, "%s%s", l ? ", " : "", name);
}

/* SIGHUP (mqo_reload_cfg.hup_hook): reads the configuration file again with the command line
 * mqoff started with; applies the log level and destination, the broker-only filters and the
 * authorization source (acl-file PATH <-> acl open), says which other changes it ignored, and
 * changes nothing when the file has an error. */
static void config_hup(void *arg, struct mqo_reload *r, struct mqo_engine *e)
{
    struct opts *o = arg, *n = malloc(sizeof *n);
    if (!n)
        return;
    *n = *o->pristine;
    enum mqo_log_level level = mqo_log_get_level();
    char *msgs = NULL, err[512];
    int rc = mqo_optfile_load(o->file.path, o->table, &n->file, err, sizeof err);
    if (rc) {
        mqo_err("SIGHUP: %s: nothing changed", err);
        goto out;
    }
    if (n->file.mode && strcmp(n->file.mode, o->cli_argv[0]) != 0) {
        mqo_err("SIGHUP: %s:%u: the file is for %s mode, not %s: nothing changed",
                n->file.path, n->file.mode_line, n->file.mode, o->cli_argv[0]);
        goto out;
    }
    char **vals = NULL;
    if (mqo_optfile_merge(&n->file, o->table, o->cli_argc, o->cli_argv, &n->args) ||
        (rc = parse_captured(n, &msgs)) != 0 ||
        mqo_optargs_values(o->table, "h", &n->args, &vals)) {
        char *nl = msgs ? strchr(msgs, '\n') : NULL;
        if (nl)
            *nl = 0;
        const char *m = msgs && *msgs ? msgs : "out of memory";
        mqo_err("SIGHUP: %s: nothing changed", strncmp(m, "mqoff: ", 7) ? m : m + 7);
        mqo_log_set_level(level);
        goto out;
    }
    char applied[512] = "", ignored[512] = "";
    int authz = 0, bo = 0;
    for (size_t i = 0; o->table[i].name; i++) {
        const char *name = o->table[i].name;
        if (same_vals(o->vals[i], vals[i]))
            continue;
        if (!config_live(name)) {
            name_add(ignored, sizeof ignored, name);
            continue;
        }
        if (!strcmp(name, "acl-file") || !strcmp(name, "acl"))
            authz = 1;
        else if (!strcmp(name, "broker-only"))
            bo = 1;
        else if (!strcmp(name, "log-level") && !vals[i])
            mqo_log_set_level(MQO_LOG_INFO);
        else if (!strcmp(name, "log"))
            mqo_log_use_syslog(n->log_syslog);
        name_add(applied, sizeof applied, name);
    }
    int had = o->acl_open || o->acl_file, has = n->acl_open || n->acl_file;
    if (authz && (!had || !has)) {
        name_add(ignored, sizeof ignored, "authorization (to or from none)");
        authz = 0;
    }
    if (authz && mqo_reload_set_acl(r, e, n->acl_file) == 0) {
        o->acl_open = n->acl_open;
        o->acl_file = n->acl_file;
    }
    if (bo) {
        /* the bridges' topics of --mosquitto-conf stay broker-only */
        size_t nb = o->pol ? o->pol->n_broker_only : 0;
        const char **all = calloc(n->n_bo + nb + 1, sizeof *all);
        if (all) {
            for (size_t i = 0; i < n->n_bo; i++)
                all[i] = n->bo[i];
            for (size_t i = 0; i < nb; i++)
                all[n->n_bo + i] = o->pol->broker_only[i];
            if (mqo_engine_set_broker_only(e, all, n->n_bo + nb))
                mqo_err("SIGHUP: broker-only unchanged");
        }
        free(all);
    }
    for (size_t i = 0; o->table[i].name; i++)
        if (config_live(o->table[i].name) && !same_vals(o->vals[i], vals[i])) {
            free(o->vals[i]);
            o->vals[i] = vals[i];
            vals[i] = NULL;
        }
    mqo_optvals_free(vals, o->table);
    mqo_info("SIGHUP: %s read again: %s%s", o->file.path, applied[0] ? "applied " : "",
             applied[0] ? applied : "nothing to apply");
    if (ignored[0])
        mqo_warn("SIGHUP: %s: changed but ignored until mqoff restarts: %s", o->file.path,
                 ignored);
    /* the strings of n stay in use (o->acl_file): kept until mqoff ends */
    free(n->bo);
    n->bo = NULL;
    n->hups = o->hups;
    o->hups = n;
    free(msgs);
    return;
out:
    free(msgs);
    mqo_optargs_dispose(&n->args);
    mqo_optfile_dispose(&n->file);
    free(n->bo);
    free(n);
}

/* Parses the options of `mode`. Returns 0, 1 when --help was printed, or 2 on a usage error. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        O_LISTEN = 256, O_BROKER, O_ACLFILE, O_ACL, O_BO, O_MAXQ, O_OVERLAP, O_HOLD, O_LOG, O_IO,
        O_PA, O_PB, O_L2, O_STATIC, O_IMP, O_A2B, O_B2A, O_RING, O_RX, O_NOPROMISC, O_HOLDSTART,
        O_FRAGMAX, O_FRAGMEM, O_FRAGTIME, O_EAL, O_GSO, O_SHARE, O_BUSY, O_MAXBUF, O_EXCL, O_MOSQCONF,
        O_CONTROL, O_CTLGROUP, O_METRICS, O_CHANNEL, O_HELP, O_LOGDEST, O_STACK, O_IFACE,
        O_NETMASK, O_GATEWAY, O_MAC, O_MAXCONNS, O_SYNBL,
        O_TAKEOVER, O_CTAB, O_CWIN, O_CWINMEM
    };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"broker", required_argument, 0, O_BROKER},
        {"acl-file", required_argument, 0, O_ACLFILE},
        {"acl", required_argument, 0, O_ACL},
        {"broker-only", required_argument, 0, O_BO},
        {"max-queue", required_argument, 0, O_MAXQ},
        {"overlap", required_argument, 0, O_OVERLAP},
        {"order-hold-ms", required_argument, 0, O_HOLD},
        {"log-level", required_argument, 0, O_LOG},
        {"io", required_argument, 0, O_IO},
        {"port-a", required_argument, 0, O_PA},
        {"port-b", required_argument, 0, O_PB},
        {"l2", required_argument, 0, O_L2},
        {"static-file", required_argument, 0, O_STATIC},
        {"impair", required_argument, 0, O_IMP},
        {"impair-a2b", required_argument, 0, O_A2B},
        {"impair-b2a", required_argument, 0, O_B2A},
        {"ring", required_argument, 0, O_RING},
        {"rx", required_argument, 0, O_RX},
        {"no-promisc", no_argument, 0, O_NOPROMISC},
        {"startup-hold", required_argument, 0, O_HOLDSTART},
        {"frag-max", required_argument, 0, O_FRAGMAX},
        {"frag-mem", required_argument, 0, O_FRAGMEM},
        {"frag-timeout", required_argument, 0, O_FRAGTIME},
        {"eal", required_argument, 0, O_EAL},
        {"shared-payload-min", required_argument, 0, O_SHARE},
        {"gso", required_argument, 0, O_GSO},
        {"busy-poll", required_argument, 0, O_BUSY},
        {"max-buffer", required_argument, 0, O_MAXBUF},
        {"exclusive", no_argument, 0, O_EXCL},
        {"mosquitto-conf", required_argument, 0, O_MOSQCONF},
        {"control", required_argument, 0, O_CONTROL},
        {"control-group", required_argument, 0, O_CTLGROUP},
        {"metrics", required_argument, 0, O_METRICS},
        {"channel", required_argument, 0, O_CHANNEL},
        {"help", no_argument, 0, O_HELP},
        {"log", required_argument, 0, O_LOGDEST},
        {"stack", required_argument, 0, O_STACK},
        {"iface", required_argument, 0, O_IFACE},
        {"netmask", required_argument, 0, O_NETMASK},
        {"gateway", required_argument, 0, O_GATEWAY},
        {"mac", required_argument, 0, O_MAC},
        {"max-conns", required_argument, 0, O_MAXCONNS},
        {"syn-backlog", required_argument, 0, O_SYNBL},
        {"takeover", required_argument, 0, O_TAKEOVER},
        {"conn-table", required_argument, 0, O_CTAB},
        {"client-window", required_argument, 0, O_CWIN},
        {"client-window-mem", required_argument, 0, O_CWINMEM},
        {0, 0, 0, 0}};
    if (!o->args.argv) /* first: -c FILE's options, then the command line's */
        return config_parse(argc, argv, o, opts);
    o->l2 = MQO_L2_LEARN;
    o->promisc = 1;
    optind = 1;
    int c;
    unsigned long long v;
    const char *mode = o->monitor ? "monitor" : o->intercept ? "intercept" : "proxy";
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int proxy_only = c == O_LISTEN; /* proxy and intercept; --io is every mode's */
        int monitor_only = c >= O_PA && c <= O_SHARE && c != O_EAL && c != O_RX;
        proxy_only |= c >= O_STACK && c <= O_SYNBL;
        if ((proxy_only && o->monitor) || (monitor_only && !o->monitor) ||
            (c == O_CHANNEL && !o->intercept) || (c == O_BROKER && o->intercept) ||
            ((c == O_CTAB || c == O_CWIN || c == O_CWINMEM) && !o->monitor)) {
            fprintf(stderr, "mqoff: --%s is not an option of %s mode (see mqoff %s --help)\n",
                    opts[c - O_LISTEN].name, mode, mode);
            return 2;
        }
        switch (c) {
        case O_LISTEN: o->listen_s = optarg; break;
        case O_BROKER: o->broker_s = optarg; break;
        case O_ACLFILE: o->acl_file = optarg; break;
        case O_ACL:
            if (strcmp(optarg, "open") != 0) {
                fprintf(stderr, "mqoff: --acl takes 'open' (or use --acl-file PATH)\n");
                return 2;
            }
            o->acl_open = 1;
            break;
        case O_BO: {
            const char **nv = realloc(o->bo, (o->n_bo + 1) * sizeof *nv);
            if (!nv)
                return 2;
            o->bo = nv;
            o->bo[o->n_bo++] = optarg;
            break;
        }
        case O_MAXQ:
            if (parse_u64("--max-queue", optarg, 4096, 1ull << 34, &v))
                return 2;
            o->max_queue = (size_t)v;
            break;
        case O_MAXBUF:
            if (parse_u64("--max-buffer", optarg, 1024, 268435460, &v))
                return 2;
            o->max_buffer = (uint32_t)v;
            break;
        case O_OVERLAP:
            if (!strcmp(optarg, "once"))
                o->overlap = MQO_OVERLAP_ONCE;
            else if (!strcmp(optarg, "passthrough"))
                o->overlap = MQO_OVERLAP_PASSTHROUGH;
            else {
                fprintf(stderr, "mqoff: --overlap takes 'passthrough' or 'once'\n");
                return 2;
            }
            break;
        case O_HOLD:
            if (parse_u64("--order-hold-ms", optarg, 1, 600000, &v))
                return 2;
            o->order_hold_ms = (uint32_t)v;
            break;
        case O_LOG: {
            enum mqo_log_level l;
            if (mqo_log_parse_level(optarg, &l)) {
                fprintf(stderr, "mqoff: --log-level takes error, warn, info or debug\n");
                return 2;
            }
            mqo_log_set_level(l);
            break;
        }
        case O_IO:
            if (o->monitor) {
                if (mqo_pktio_backend_parse(optarg, &o->pktio)) {
                    fprintf(stderr, "mqoff: --io takes afpacket, dpdk or afxdp in monitor mode\n");
                    return 2;
                }
            } else if (!mqo_pktio_backend_parse(optarg, &o->pktio)) {
                o->pktio_set = 1; /* --stack lwip's packet I/O */
            } else if (!strcmp(optarg, "writev"))
                o->io_uring = 0;
            else if (!strcmp(optarg, "uring"))
                o->io_uring = 1;
            else {
                fprintf(stderr, "mqoff: --io takes 'writev' or 'uring' (--stack lwip: afpacket, "
                                "afxdp or dpdk)\n");
                return 2;
            }
            break;
        case O_EAL: o->eal = optarg; break;
        case O_GSO:
            if (parse_choice("--gso", optarg, "on", "off", &o->no_gso))
                return 2;
            break;
        case O_SHARE:
            if (parse_u64("--shared-payload-min", optarg, 0, 1u << 20, &v))
                return 2;
            o->share_set = 1;
            o->share_min = v ? (size_t)v : SIZE_MAX;
            break;
        case O_PA: o->port_a = optarg; break;
        case O_PB: o->port_b = optarg; break;
        case O_L2:
            if (mqo_l2_parse_mode(optarg, &o->l2)) {
                fprintf(stderr, "mqoff: --l2 takes hub, learn or static\n");
                return 2;
            }
            break;
        case O_STATIC: o->static_file = optarg; break;
        case O_IMP: o->impair = optarg; break;
        case O_A2B: o->impair_dir[0] = optarg; break;
        case O_B2A: o->impair_dir[1] = optarg; break;
        case O_RING:
            if (parse_u64("--ring", optarg, 64, 1u << 20, &v))
                return 2;
            o->ring = (uint32_t)v;
            break;
        case O_RX:
            o->rx_set = 1;
            if (parse_choice("--rx", optarg, "queue", "ring", &o->rx_ring))
                return 2;
            break;
        case O_NOPROMISC: o->promisc = 0; break;
        case O_EXCL: o->exclusive = 1; break;
        case O_MOSQCONF: o->mosq_conf = optarg; break;
        case O_LOGDEST:
            if (mqo_log_parse_dest(optarg, &o->log_syslog)) {
                fprintf(stderr, "mqoff: --log takes stderr or syslog\n");
                return 2;
            }
            break;
        case O_CONTROL: o->ctl.path = optarg; break;
        case O_CTLGROUP: o->ctl.group = optarg; break;
        case O_METRICS: o->ctl.metrics = optarg; break;
        case O_CHANNEL: o->channel = optarg; break;
        case O_TAKEOVER: o->takeover = optarg; break;
        case O_CTAB: o->conn_table = optarg; break;
        case O_CWIN:
            if (parse_u64("--client-window", optarg, 0, 1u << 30, &v))
                return 2;
            o->client_window = v ? (uint32_t)v : MQO_SPLICE_WINDOW_NONE;
            break;
        case O_CWINMEM:
            if (parse_u64("--client-window-mem", optarg, 65536, 1ull << 40, &v))
                return 2;
            o->client_window_mem = (size_t)v;
            break;
        case O_BUSY:
            if (parse_u64("--busy-poll", optarg, 0, 1000000, &v))
                return 2;
            o->busy_poll_us = (uint32_t)v;
            break;
        case O_HOLDSTART:
            if (parse_u64("--startup-hold", optarg, 0, 86400, &v))
                return 2;
            o->startup_hold_ms = v ? (int32_t)(v * 1000) : -1;
            break;
        case O_FRAGMAX:
            if (parse_u64("--frag-max", optarg, 0, 1u << 20, &v))
                return 2;
            o->frag_max_set = 1;
            o->frag_max = (uint32_t)v;
            break;
        case O_FRAGMEM:
            if (parse_u64("--frag-mem", optarg, 65536, 1ull << 32, &v))
                return 2;
            o->frag_mem = (size_t)v;
            break;
        case O_FRAGTIME:
            if (parse_u64("--frag-timeout", optarg, 1, 3600, &v))
                return 2;
            o->frag_timeout_ns = v * 1000000000ull;
            break;
        case O_STACK:
            if (strcmp(optarg, "lwip") && strcmp(optarg, "kernel")) {
                fprintf(stderr, "mqoff: --stack takes 'kernel' or 'lwip'\n");
                return 2;
            }
            o->stack_lwip = !strcmp(optarg, "lwip");
            break;
        case O_IFACE: o->iface = optarg; break;
        case O_NETMASK: o->netmask_s = optarg; break;
        case O_GATEWAY: o->gateway_s = optarg; break;
        case O_MAC: o->mac = optarg; break;
        case O_MAXCONNS:
            if (parse_u64("--max-conns", optarg, 1, 10000000, &v))
                return 2;
            o->max_conns = (uint32_t)v;
            break;
        case O_SYNBL:
            if (parse_u64("--syn-backlog", optarg, 1, 1000000, &v))
                return 2;
            o->syn_backlog = (uint32_t)v;
            break;
        case O_HELP:
        case 'h':
            if (o->monitor)
                usage_monitor(stdout);
            else if (o->intercept)
                usage_intercept(stdout);
            else
                usage_proxy(stdout);
            return 1;
        default:
            if (o->monitor)
                usage_monitor(stderr);
            else if (o->intercept)
                usage_intercept(stderr);
            else
                usage_proxy(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mqoff: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->acl_file && o->acl_open) {
        fprintf(stderr, "mqoff: --acl-file and --acl open exclude each other\n");
        return 2;
    }
    if (o->mosq_conf && (o->acl_file || o->acl_open)) {
        fprintf(stderr, "mqoff: --mosquitto-conf gives the authorization (the broker's own "
                        "acl_file, or none); --acl-file and --acl open exclude it\n");
        return 2;
    }
    if (o->intercept && (!o->listen_s || !o->channel)) {
        fprintf(stderr, "mqoff intercept: --listen ADDR:PORT and --channel PATH are required (see "
                        "mqoff intercept --help)\n");
        return 2;
    }
    if (!o->broker_s && !o->intercept) {
        fprintf(stderr, "mqoff %s: --broker ADDR:PORT is required (see mqoff %s --help)\n", mode,
                mode);
        return 2;
    }
    if (!o->monitor && o->stack_lwip && !o->iface) {
        fprintf(stderr, "mqoff %s: --stack lwip needs --iface IF\n", mode);
        return 2;
    }
    if (!o->monitor && !o->stack_lwip &&
        (o->iface || o->mac || o->netmask_s || o->gateway_s || o->max_conns || o->syn_backlog ||
         o->pktio_set || o->eal)) {
        fprintf(stderr, "mqoff %s: --iface, --io %s, --eal, --netmask, --gateway, --mac, "
                        "--max-conns and --syn-backlog are --stack lwip's\n",
                mode, o->pktio_set ? mqo_pktio_backend_name(o->pktio) : "BACKEND");
        return 2;
    }
    if (o->rx_set && ((!o->monitor && !o->stack_lwip) || o->pktio != MQO_PKTIO_AFPACKET)) {
        fprintf(stderr, "mqoff %s: --rx is the afpacket backend's (monitor mode, or --stack "
                        "lwip)\n", mode);
        return 2;
    }
    if (!o->monitor && o->stack_lwip && o->takeover) {
        /* lwIP's connections are its PCBs in this process's memory: no descriptor to hand on */
        fprintf(stderr, "mqoff %s: --takeover is the kernel stack's: --stack lwip's connections "
                        "cannot be handed to another process (restart it instead)\n", mode);
        return 2;
    }
    if (!o->monitor && o->stack_lwip && o->io_uring) {
        fprintf(stderr, "mqoff %s: --io uring is the kernel stack's (--stack lwip: --io "
                        "afpacket, afxdp or dpdk)\n", mode);
        return 2;
    }
    if (!o->monitor && !o->intercept && !o->listen_s) {
        fprintf(stderr, "mqoff proxy: --listen ADDR:PORT is required (see mqoff proxy --help)\n");
        return 2;
    }
    if (o->monitor && (!o->port_a || !o->port_b)) {
        fprintf(stderr,
                "mqoff monitor: --port-a IF (clients) and --port-b IF (broker host) are "
                "required\n");
        return 2;
    }
    if (o->monitor && !strcmp(o->port_a, o->port_b)) {
        fprintf(stderr, "mqoff monitor: port a and port b are the same interface\n");
        return 2;
    }
    if (o->monitor && (o->pktio == MQO_PKTIO_DPDK) != (o->eal != NULL)) {
        fprintf(stderr, "mqoff monitor: --eal \"ARGS\" goes with --io dpdk, and only with it\n");
        return 2;
    }
    if (o->monitor && !mqo_pktio_backend_built(o->pktio)) {
        fprintf(stderr,
                "mqoff monitor: --io %s is not in this build (its Debian packages were missing "
                "when mqoff was built: scripts/deps.sh installs them, then make)\n",
                mqo_pktio_backend_name(o->pktio));
        return 2;
    }
    if (o->monitor && (o->l2 == MQO_L2_STATIC) != (o->static_file != NULL)) {
        fprintf(stderr, "mqoff monitor: --static-file goes with --l2 static, and only with it\n");
        return 2;
    }
    return 0;
}

/* The engine's configuration from the options; loads the ACL and starts watching its file.
 * Returns 0 or 2. */
/* --mosquitto-conf: reads the broker's configuration, evaluates it for the broker address
 * mqoff forwards to and applies it to ec (authorization source in *acl_file). Returns 0 or 2. */
static int setup_conf(struct opts *o, const struct sockaddr_storage *ba, socklen_t bl,
                      struct mqo_engine_cfg *ec, const char **acl_file, char **summary)
{
    char err[512], host[NI_MAXHOST], port[NI_MAXSERV];
    if (mqo_mosqconf_load(o->mosq_conf, NULL, &o->conf, err, sizeof err)) {
        fprintf(stderr, "mqoff: --mosquitto-conf %s: %s\n", o->mosq_conf, err);
        return 2;
    }
    if (getnameinfo((const struct sockaddr *)ba, bl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) ||
        mqo_mosqconf_evaluate(o->conf, host, (uint16_t)atoi(port), &o->pol, err, sizeof err)) {
        fprintf(stderr, "mqoff: --mosquitto-conf %s: %s %s: %s\n", o->mosq_conf,
                o->intercept ? "--listen" : "--broker", o->intercept ? o->listen_s : o->broker_s,
                err);
        return 2;
    }
    const struct mqo_mosqpolicy *p = o->pol;
    size_t sl = mqo_mosqpolicy_describe(p, NULL, 0) + 1;
    if (!(*summary = malloc(sl)))
        return 2;
    mqo_mosqpolicy_describe(p, *summary, sl);
    mqo_info("the broker's configuration %s, for %s:%s:\n%s", o->mosq_conf, host, port, *summary);
    for (size_t i = 0; i < p->n_findings; i++) {
        const struct mqo_mosqconf_finding *f = &p->findings[i];
        if (f->all)
            mqo_warn("%s:%u: %s: nothing is offloaded", f->at.file, f->at.line, f->why);
        else
            mqo_info("%s:%u: %s", f->at.file, f->at.line, f->why);
    }
    if (p->mqoff_plugin_control && (!o->ctl.path || strcmp(o->ctl.path, p->mqoff_plugin_control)))
        mqo_warn("the broker loads mqoff's plugin, which reports to %s, but this mqoff's "
                 "--control is %s: its reports will not reach this mqoff",
                 p->mqoff_plugin_control, o->ctl.path ? o->ctl.path : "not set");
    ec->conf_hold = !p->offload;
    ec->mount_point = p->mount_point;
    ec->username_as_clientid = (uint8_t)p->use_username_as_clientid;
    ec->message_size_limit = p->message_size_limit;
    ec->broker_max_packet = p->max_packet_size;
    ec->max_qos = p->max_qos;
    ec->upgrade_outgoing_qos = (uint8_t)p->upgrade_outgoing_qos;
    ec->max_inflight_messages = p->max_inflight_messages;
    /* the bridges' topics go to the broker, with those the command line names */
    o->bo_all = calloc(o->n_bo + p->n_broker_only + 1, sizeof *o->bo_all);
    if (!o->bo_all)
        return 2;
    for (size_t i = 0; i < o->n_bo; i++)
        o->bo_all[i] = o->bo[i];
    for (size_t i = 0; i < p->n_broker_only; i++)
        o->bo_all[o->n_bo + i] = p->broker_only[i];
    ec->broker_only = o->bo_all;
    ec->n_broker_only = o->n_bo + p->n_broker_only;
    *acl_file = p->acl_file;
    if (!p->acl_file && !p->n_plugins)
        ec->acl_mode = MQO_ACL_OPEN;
    return 0;
}

static int setup_engine(struct opts *o, const struct sockaddr_storage *ba, socklen_t bl,
                        struct mqo_engine_cfg *ec, struct mqo_acl **acl,
                        struct mqo_reload **reload)
{
    memset(ec, 0, sizeof *ec);
    ec->exclusive = o->exclusive;
    ec->broker_view = o->ctl.path != NULL;
    ec->overlap = o->overlap;
    ec->order_hold_ms = o->order_hold_ms;
    ec->max_buffer = o->max_buffer;
    ec->broker_only = o->bo;
    ec->n_broker_only = o->n_bo;
    const char *acl_file = o->acl_file;
    char *summary = NULL;
    if (o->mosq_conf && setup_conf(o, ba, bl, ec, &acl_file, &summary)) {
        free(summary);
        return 2;
    }
    if (acl_file) {
        char err[256];
        if (mqo_acl_load(acl_file, acl, err, sizeof err)) {
            fprintf(stderr, "mqoff: acl_file %s: %s\n", acl_file, err);
            free(summary);
            return 2;
        }
        ec->acl_mode = MQO_ACL_FILE;
        ec->acl = *acl;
        mqo_info("authorization: %s (%zu rules, Mosquitto 2.0 semantics)", acl_file,
                 mqo_acl_rule_count(*acl));
    } else if (o->acl_open || ec->acl_mode == MQO_ACL_OPEN) {
        ec->acl_mode = MQO_ACL_OPEN;
        mqo_info("authorization: open (the broker restricts no topics)");
    } else if (o->mosq_conf) {
        mqo_warn("authorization: decided by the broker's plugins, which mqoff cannot evaluate: "
                 "nothing is offloaded");
    } else {
        ec->acl_mode = MQO_ACL_NONE;
        mqo_warn("no authorization source (--acl-file PATH or --acl open): every PUBLISH passes "
                 "through to the broker, nothing is offloaded");
    }
    if (o->exclusive)
        mqo_info("exclusive: every client reaches the broker through this mqoff (--exclusive)");
    else if (o->ctl.path)
        mqo_info("not --exclusive: nothing is offloaded until the broker plugin is connected and "
                 "synced on %s (it reports every client of the broker)", o->ctl.path);
    else
        mqo_warn("not --exclusive: a client may reach the broker some other way (another "
                 "listener, directly), whose subscriptions mqoff cannot see, so every PUBLISH "
                 "passes through to the broker, nothing is offloaded");
    struct mqo_reload_cfg rc = {.acl_file = acl_file};
    if (o->file.path) { /* -c FILE: read again at SIGHUP */
        rc.hup_hook = config_hup;
        rc.hup_arg = o;
    }
    if (o->mosq_conf) {
        rc.conf_file = o->mosq_conf;
        rc.conf_files = (const char *const *)o->conf->files;
        rc.n_conf_files = o->conf->n_files;
        char host[NI_MAXHOST] = "", port[NI_MAXSERV] = "0";
        getnameinfo((const struct sockaddr *)ba, bl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
        rc.broker_addr = host;
        rc.broker_port = (uint16_t)atoi(port);
        rc.conf_summary = summary;
    }
    int r = mqo_reload_new(&rc, reload);
    free(summary);
    if (r) {
        mqo_acl_free(*acl);
        *acl = NULL;
        return 2;
    }
    return 0;
}

/* What --mosquitto-conf and -c kept for the engine. */
static void free_conf(struct opts *o)
{
    while (o->hups) {
        struct opts *n = o->hups;
        o->hups = n->hups;
        mqo_optargs_dispose(&n->args);
        mqo_optfile_dispose(&n->file);
        free(n);
    }
    mqo_optvals_free(o->vals, o->table);
    mqo_optargs_dispose(&o->args);
    mqo_optfile_dispose(&o->file);
    free(o->pristine);
    mqo_mosqpolicy_free(o->pol);
    mqo_mosqconf_free(o->conf);
    free(o->bo_all);
    free(o->bo);
}

/* What the control socket and metrics endpoint need (NULL when neither is asked for); the
 * configuration `mqoffctl config` shows. */
static const struct mqo_ctl_cfg *setup_ctl(struct opts *o, const char *mode)
{
    if (!o->ctl.path && !o->ctl.metrics)
        return NULL;
    size_t n = 0, nb = 0;
#define KV(k, v) (o->config[n++] = (k), o->config[n++] = (v))
#define KN(k, x) (snprintf(o->config_buf[nb], sizeof o->config_buf[nb], "%llu",                  \
                           (unsigned long long)(x)),                                            \
                  KV(k, o->config_buf[nb++]))
    KV("mode", mode);
    if (o->broker_s)
        KV("broker", o->broker_s);
    if (o->channel)
        KV("channel", o->channel);
    if (o->listen_s)
        KV("listen", o->listen_s);
    if (o->port_a) {
        KV("port_a", o->port_a);
        KV("port_b", o->port_b);
    }
    if (o->mosq_conf)
        KV("mosquitto_conf", o->mosq_conf);
    KV("authorization", o->acl_file ? o->acl_file : o->acl_open ? "open"
                                                  : o->mosq_conf ? "from mosquitto_conf" : "none");
    KV("exclusive", o->exclusive ? "yes" : "no");
    for (size_t i = 0; i < o->n_bo && n + 2 < sizeof o->config / sizeof o->config[0] - 14; i++)
        KV("broker_only", o->bo[i]);
    KN("max_queue", o->max_queue ? o->max_queue : 4194304);
    KN("max_buffer", o->max_buffer ? o->max_buffer : 1048576);
    KV("overlap", o->overlap == MQO_OVERLAP_ONCE ? "once" : "passthrough");
    KN("order_hold_ms", o->order_hold_ms ? o->order_hold_ms : 2000);
    if (o->monitor) {
        KN("startup_hold_s", o->startup_hold_ms < 0 ? 0
                             : o->startup_hold_ms ? o->startup_hold_ms / 1000 : 90);
        KN("client_window", o->client_window == MQO_SPLICE_WINDOW_NONE ? 0
                            : o->client_window ? o->client_window : 262144);
        KN("client_window_mem", o->client_window_mem ? o->client_window_mem : 67108864);
    }
    if ((o->monitor || o->stack_lwip) && o->pktio == MQO_PKTIO_AFPACKET)
        KV("rx", o->rx_ring ? "ring" : "queue");
    if (o->ctl.path)
        KV("control", o->ctl.path);
    if (o->ctl.metrics)
        KV("metrics", o->ctl.metrics);
#undef KV
#undef KN
    o->ctl.mode = mode;
    o->ctl.version = MQOFF_VERSION;
    o->ctl.config = o->config;
    o->ctl.n_config = n / 2;
    return &o->ctl;
}

static void install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction sh = {.sa_handler = on_hup};
    sigaction(SIGHUP, &sh, NULL);
    struct sigaction su = {.sa_handler = on_usr2};
    sigaction(SIGUSR2, &su, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Printed once the ports are open and receiving (mqo_bump_cfg.ready). */
static void monitor_ready(void *arg)
{
    const struct opts *o = arg;
    mqo_info("monitor: clients on %s, broker host on %s (%s), splicing TCP to %s", o->port_a,
             o->port_b, mqo_pktio_backend_name(o->pktio), o->broker_s);
}

/* An IPv4 address (or a netmask) to network order: 0, or -1 with the message printed. */
static int parse_ip4(const char *opt, const char *v, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, v, &a) != 1) {
        fprintf(stderr, "mqoff: %s takes an IPv4 address, not '%s'\n", opt, v);
        return -1;
    }
    *out = a.s_addr;
    return 0;
}

/* --stack lwip's configuration from the options: 0, or -1 with the message printed. */
static int setup_lwip(const struct opts *o, struct mqo_proxy_lwip_cfg *lc)
{
    *lc = (struct mqo_proxy_lwip_cfg){.mac = o->mac, .max_conns = o->max_conns,
                                      .syn_backlog = o->syn_backlog};
    /* no virtio-net header: lwIP segments and sums what it sends, and takes wire-sized frames
     * (a received super-segment would not fit a pbuf's 16-bit length) */
    lc->port = (struct mqo_port_cfg){.ifname = o->iface, .backend = o->pktio, .eal = o->eal,
                                     .ring_frames = o->ring,
                                     .flags = MQO_PORT_NO_VNET |
                                              (o->rx_ring ? MQO_PORT_RX_RING : 0)};
    if (o->netmask_s) {
        if (parse_ip4("--netmask", o->netmask_s, &lc->netmask))
            return -1;
        uint32_t m = ntohl(lc->netmask);
        if (!m || (~m & (~m + 1))) {
            fprintf(stderr, "mqoff: --netmask '%s' is not a netmask\n", o->netmask_s);
            return -1;
        }
    }
    if (o->gateway_s && parse_ip4("--gateway", o->gateway_s, &lc->gateway))
        return -1;
    if (!mqo_pktio_backend_built(o->pktio)) {
        fprintf(stderr, "mqoff: --io %s: not in this build (its packages were missing)\n",
                mqo_pktio_backend_name(o->pktio));
        return -1;
    }
    if ((o->pktio == MQO_PKTIO_DPDK) != (o->eal != NULL)) {
        fprintf(stderr, "mqoff: --io dpdk and --eal go together\n");
        return -1;
    }
    return 0;
}

/* proxy mode, or intercept mode (proxy mode's loop with the broker side handed over the
 * channel: the broker's listener on --listen is the one the configuration is evaluated for). */
static int cmd_proxy(int argc, char **argv, int intercept)
{
    struct opts o = {.intercept = intercept};
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct mqo_intercept_cfg icfg = {.channel = o.channel};
    struct mqo_proxy_cfg *cfg = &icfg.proxy;
    *cfg = (struct mqo_proxy_cfg){.stop = &g_stop, .max_queue = o.max_queue,
                                  .busy_poll_us = o.busy_poll_us,
                                  .io = o.io_uring ? MQO_PROXY_IO_URING : MQO_PROXY_IO_WRITEV};
    if (parse_addr("--listen", o.listen_s, &cfg->listen_addr, &cfg->listen_len, 1) ||
        (!intercept &&
         parse_addr("--broker", o.broker_s, &cfg->broker_addr, &cfg->broker_len, 0))) {
        free(o.bo);
        return 2;
    }
    const struct sockaddr_storage *ba = intercept ? &cfg->listen_addr : &cfg->broker_addr;
    struct mqo_acl *acl = NULL;
    if (setup_engine(&o, ba, intercept ? cfg->listen_len : cfg->broker_len, &cfg->engine, &acl,
                     &cfg->reload)) {
        free_conf(&o);
        return 2;
    }
    struct mqo_proxy_lwip_cfg lc;
    if (o.stack_lwip) {
        if (setup_lwip(&o, &lc)) {
            mqo_reload_free(cfg->reload);
            mqo_acl_free(acl);
            free_conf(&o);
            return 2;
        }
        cfg->stack_run = mqo_proxy_lwip_run;
        cfg->stack_cfg = &lc;
    }
    cfg->hup = &g_hup;
    cfg->takeover = o.takeover;
    cfg->upgrade = &g_upgrade;
    mqo_tko_set_build(MQOFF_VERSION);
    cfg->ctl = setup_ctl(&o, intercept ? "intercept" : "proxy");
    install_signals();
    struct mqo_engine_stats es = {0};
    struct mqo_proxy_stats ps = {0};
    struct mqo_intercept_stats is = {0};
    if (intercept) {
        mqo_info("intercept listening on %s, channel %s", o.listen_s, o.channel);
        rc = mqo_intercept_run(&icfg, &es, &ps, &is);
    } else {
        mqo_info("proxy listening on %s, broker %s%s", o.listen_s, o.broker_s,
                 o.stack_lwip ? " (lwIP)" : "");
        rc = mqo_proxy_run(cfg, &es, &ps);
    }
    fprintf(stderr, "mqoff summary:\n  connections       accepted %llu, closed %llu, %s %llu\n",
            (unsigned long long)ps.accepted, (unsigned long long)ps.closed,
            intercept ? "refused" : "broker unreachable",
            (unsigned long long)ps.broker_connect_failed);
    if (intercept)
        fprintf(stderr,
                "  channel           attaches %llu, detaches %llu, handed %llu, handoff_lost "
                "%llu, bad_peers %llu\n",
                (unsigned long long)is.attaches, (unsigned long long)is.detaches,
                (unsigned long long)is.handed, (unsigned long long)is.handoff_lost,
                (unsigned long long)is.bad_peers);
    print_stats(&es, acl != NULL);
    mqo_reload_free(cfg->reload);
    mqo_acl_free(acl);
    free_conf(&o);
    return rc ? 1 : 0;
}


static int cmd_monitor(int argc, char **argv)
{
    struct opts o = {.monitor = 1};
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct sockaddr_storage ba;
    socklen_t bl;
    if (parse_addr("--broker", o.broker_s, &ba, &bl, 0))
        return 2;
    if (ba.ss_family != AF_INET) {
        fprintf(stderr, "mqoff monitor: --broker must be an IPv4 address (IPv6 is not spliced "
                        "yet; such traffic is forwarded untouched)\n");
        return 2;
    }
    struct mqo_monitor_cfg mc = {0};
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ba;
    memcpy(&mc.splice.broker_ip, &sin->sin_addr, 4);
    mc.splice.broker_port = ntohs(sin->sin_port);
    mc.splice.max_queue = o.max_queue;
    mc.splice.client_window = o.client_window;
    mc.splice.client_window_mem = o.client_window_mem;
    mc.splice.startup_hold_ms = o.startup_hold_ms;
    mc.no_reassembly = o.frag_max_set && o.frag_max == 0;
    mc.share_min = o.share_set ? o.share_min : 0;
    mc.frag = (struct mqo_frag_cfg){.max_dgrams = o.frag_max, .max_bytes = o.frag_mem,
                                    .timeout_ns = o.frag_timeout_ns};
    struct mqo_acl *acl = NULL;
    if (setup_engine(&o, &ba, bl, &mc.splice.engine, &acl, &mc.reload)) {
        free_conf(&o);
        return 2;
    }
    mc.hup = &g_hup;
    mc.takeover = o.takeover;
    mc.upgrade = &g_upgrade;
    mc.conn_table = o.conn_table;
    mqo_tko_set_build(MQOFF_VERSION);
    mc.ctl = setup_ctl(&o, "monitor");
    struct mqo_impair_cfg ic[2];
    for (int d = 0; d < 2; d++) {
        /* d = 0: a2b leaves on port b (1); d = 1: b2a leaves on port a (0) */
        const char *spec = o.impair_dir[d] ? o.impair_dir[d] : o.impair;
        if (!spec)
            continue;
        char err[200];
        int out = 1 - d;
        if (mqo_impair_parse(spec, &ic[out], err, sizeof err)) {
            fprintf(stderr, "mqoff: --impair: %s\n", err);
            return 2;
        }
        mc.bump.impair_out[out] = &ic[out];
        char desc[300];
        mqo_impair_format(&ic[out], desc, sizeof desc);
        mqo_warn("impairment %s: %s (a test facility: frames are lost on purpose)",
                 d ? "b2a" : "a2b", desc);
    }
    char *text = NULL;
    size_t tl = 0;
    if (o.static_file) {
        int r = mqo_read_file(o.static_file, &text, &tl);
        if (r) {
            fprintf(stderr, "mqoff: %s: %s\n", o.static_file, strerror(-r));
            return 2;
        }
    }
    mc.bump = (struct mqo_bump_cfg){.ifname = {o.port_a, o.port_b},
                                    .io = o.pktio,
                                    .eal = o.eal,
                                    .steer_ip = mc.splice.broker_ip,
                                    .steer_port = mc.splice.broker_port,
                                    .l2_mode = o.l2,
                                    .static_text = text,
                                    .static_len = tl,
                                    .impair_out = {mc.bump.impair_out[0], mc.bump.impair_out[1]},
                                    .ring = o.ring,
                                    .busy_poll_us = o.busy_poll_us,
                                    .fix_csum = 1,
                                    .promisc = o.promisc,
                                    .port_flags = (o.no_gso ? MQO_PORT_NO_VNET : 0) |
                                                  (o.rx_ring ? MQO_PORT_RX_RING : 0),
                                    .stop = &g_stop,
                                    .name = "mqoff monitor",
                                    .ready = monitor_ready,
                                    .ready_arg = &o};
    install_signals();
    struct mqo_monitor_stats st;
    memset(&st, 0, sizeof st);
    rc = mqo_monitor_run(&mc, &st);
    if (rc == 0) {
        fprintf(stderr, "mqoff summary:\n");
        mqo_bump_print_stats(&mc.bump, &st.bump, stderr);
        const struct mqo_splice_stats *s = &st.splice;
        fprintf(stderr,
                "  tcp               connections %llu (untouched %llu frames), segments in %llu "
                "out %llu\n"
                "  retransmits       %llu (fast %llu, timeouts %llu), duplicates in %llu, out of "
                "order in %llu, bad checksums %llu, zero-window probes %llu, resets %llu "
                "(give-ups %llu: unacknowledged %llu, probes unanswered %llu), an end's RST passed "
                "on %llu, frames waiting for the output %llu\n"
                "  checksums         payload bytes summed once per fan-out %llu\n"
                "  shared payload    shared_segments %llu, shared_bytes %llu (sent from the fan-out's "
                "one copy, not copied per subscriber)\n"
                "  tso               tso_frames %llu, tso_bytes %llu (segmented by the device)\n",
                (unsigned long long)s->conns_total, (unsigned long long)s->conns_untracked,
                (unsigned long long)s->segs_in, (unsigned long long)s->segs_out,
                (unsigned long long)s->retransmits, (unsigned long long)s->fast_retransmits,
                (unsigned long long)s->rto_expired, (unsigned long long)s->dup_segs_in,
                (unsigned long long)s->ooo_segs_in, (unsigned long long)s->bad_csum,
                (unsigned long long)s->zero_window_probes, (unsigned long long)s->resets,
                (unsigned long long)(s->rto_give_ups + s->probe_give_ups),
                (unsigned long long)s->rto_give_ups, (unsigned long long)s->probe_give_ups,
                (unsigned long long)s->rsts_relayed, (unsigned long long)s->emit_refused,
                (unsigned long long)s->csum_reused, (unsigned long long)s->shared_segs,
                (unsigned long long)s->shared_bytes, (unsigned long long)s->tso_frames,
                (unsigned long long)s->tso_bytes);
        const struct mqo_frag_stats *fs = &st.frag;
        if (mc.no_reassembly)
            fprintf(stderr, "  fragments         not reassembled (--frag-max 0)\n");
        else
            fprintf(stderr,
                    "  fragments         in %llu: reassembled %llu (to_splice %llu, declined "
                    "%llu, passed as fragments %llu), passed_untouched %llu, "
                    "waited_for_header %llu\n"
                    "  fragment drops    duplicates %llu, conflicts %llu, too_big %llu, malformed "
                    "%llu, frag_timeouts %llu (undecided_fragments %llu), evicted %llu, no_memory "
                    "%llu; identical overlaps kept %llu\n",
                    (unsigned long long)fs->frags_in, (unsigned long long)fs->reassembled,
                    (unsigned long long)st.frag_to_splice, (unsigned long long)st.frag_declined,
                    (unsigned long long)(fs->reassembled - st.frag_to_splice - st.frag_declined),
                    (unsigned long long)fs->passed, (unsigned long long)fs->waited,
                    (unsigned long long)fs->dups,
                    (unsigned long long)fs->conflicts, (unsigned long long)fs->too_big,
                    (unsigned long long)fs->malformed, (unsigned long long)fs->timeouts,
                    (unsigned long long)fs->timeout_frags, (unsigned long long)fs->evicted,
                    (unsigned long long)fs->nomem, (unsigned long long)fs->overlaps);
        print_stats(&st.engine, acl != NULL);
    }
    free(text);
    mqo_reload_free(mc.reload);
    mqo_acl_free(acl);
    free_conf(&o);
    return rc ? 1 : 0;
}

int main(int argc, char **argv);

/* mqoff -c FILE [options]: the mode is the file's "mode" line. Returns the mode's exit
 * status. */
static int cmd_from_file(int argc, char **argv)
{
    static const struct option none[] = {{0, 0, 0, 0}};
    const char *path;
    int at, n;
    struct mqo_optfile f = {0};
    char err[512];
    if (mqo_optfile_find(argc, argv, none, &path, &at, &n) || !path || at != 1) {
        usage_main(stderr);
        return 2;
    }
    if (mqo_optfile_load(path, NULL, &f, err, sizeof err)) {
        fprintf(stderr, "mqoff: %s\n", err);
        return 2;
    }
    char mode[32] = "";
    snprintf(mode, sizeof mode, "%s", f.mode ? f.mode : "");
    mqo_optfile_dispose(&f);
    if (!mode[0]) {
        fprintf(stderr, "mqoff: %s: no 'mode' line: give the mode (mqoff MODE -c FILE)\n", path);
        return 2;
    }
    char **av = calloc((size_t)argc + 1, sizeof *av);
    if (!av)
        return 2;
    av[0] = argv[0];
    av[1] = mode;
    memcpy(av + 2, argv + 1, (size_t)(argc - 1) * sizeof *av);
    int rc = main(argc + 1, av);
    free(av);
    return rc;
}

/* The configuration `mqoff` without arguments runs with, where the package installs it. */
#define MQOFF_DEFAULT_CONF "/etc/mqoff/mqoff.conf"

int main(int argc, char **argv)
{
    mqo_alloc_setup(); /* before the first allocation worth keeping (core/alloc.h) */
    mqo_tko_set_exec(argv); /* SIGUSR2 starts the same path with the same arguments */
    if (argc < 2 && access(MQOFF_DEFAULT_CONF, F_OK) == 0) {
        char *av[] = {argv[0], "-c", MQOFF_DEFAULT_CONF, NULL};
        return cmd_from_file(3, av);
    }
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
        usage_main(stdout);
        return 0;
    }
    if (!strncmp(mode, "-c", 2) || !strncmp(mode, "--config", 8))
        return cmd_from_file(argc, argv);
    if (!strcmp(mode, "--version")) {
        printf("mqoff %s\n", MQOFF_VERSION);
        return 0;
    }
    if (!strcmp(mode, "proxy"))
        return cmd_proxy(argc - 1, argv + 1, 0);
    if (!strcmp(mode, "monitor"))
        return cmd_monitor(argc - 1, argv + 1);
    if (!strcmp(mode, "intercept"))
        return cmd_proxy(argc - 1, argv + 1, 1);
    fprintf(stderr, "mqoff: unknown mode '%s'\n\n", mode);
    usage_main(stderr);
    return 2;
}
