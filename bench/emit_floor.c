/* The floor of a fan-out: what emitting its frames alone costs, through the packet I/O that
 * monitor mode uses (src/pktio, AF_PACKET by default), with nothing else done per frame.
 *
 * Every 1/RATE seconds, FRAMES frames of SIZE bytes (Ethernet, IPv4, UDP to port 9 of DST_IP,
 * the discard port: the receiver's kernel drops them) are allocated as the bump allocates a
 * frame it builds (mqo_frame_alloc_len), filled from a template and
 * handed to the port in bursts as the bump hands a fan-out (up to 256 at once); the time from
 * the first allocation to the port taking the last frame is one sample. BURSTS samples, then
 * their median, 99th percentile and maximum, and the time per frame at the median, are printed.
 * monitor mode does the same per delivery plus its own work (the engine's match and plan, the
 * splice's sequence numbers and headers, the acknowledgements that come back): its distribution
 * time against this one is how far it is from the floor. With --tap, a second packet socket
 * captures on IF into a ring of its own (as mqoff-bench --sender-tap would on that link): the
 * kernel then copies every frame sent into it on the sending core, and the difference is what
 * such a capture costs the sender.
 *
 * Usage: emit_floor [--tap] IF DST_MAC DST_IP FRAMES BURSTS RATE [SIZE]
 * Run inside the namespace that holds IF (ip netns exec); only lab addresses (198.18.0.0/15).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/hist.h"
#include "pktio/pktio.h"

#define BURST 256u
#define TAP_BLOCK (1u << 20)
#define TAP_NBLOCKS 8u

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int usage(void)
{
    fprintf(stderr, "usage: emit_floor [--tap] IF DST_MAC DST_IP FRAMES BURSTS RATE [SIZE]\n"
                    "  FRAMES frames per burst (a fan-out), BURSTS bursts, RATE bursts per second,\n"
                    "  SIZE bytes per frame, Ethernet header included (default 140, 60..1514)\n");
    return 2;
}

static int parse_mac(const char *s, uint8_t m[6])
{
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (v[i] > 255)
            return -1;
        m[i] = (uint8_t)v[i];
    }
    return 0;
}

static uint16_t ip_csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* A capture ring on ifname that nobody parses: blocks are handed back as they fill. */
struct tap {
    int fd;
    uint8_t *ring;
    unsigned cur;
};

static int tap_open(struct tap *t, unsigned ifindex)
{
    int v = TPACKET_V3;
    struct tpacket_req3 req = {.tp_block_size = TAP_BLOCK, .tp_block_nr = TAP_NBLOCKS,
                               .tp_frame_size = 2048, .tp_frame_nr = TAP_BLOCK / 2048 * TAP_NBLOCKS,
                               .tp_retire_blk_tov = 2};
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)ifindex};
    t->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (t->fd < 0 || setsockopt(t->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) ||
        setsockopt(t->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req))
        return -1;
    t->ring = mmap(NULL, (size_t)TAP_BLOCK * TAP_NBLOCKS, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    if (t->ring == MAP_FAILED)
        return -1;
    return bind(t->fd, (struct sockaddr *)&sll, sizeof sll);
}

static void tap_drain(struct tap *t)
{
    for (unsigned guard = 0; guard < TAP_NBLOCKS; guard++) {
        struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(t->ring + (size_t)t->cur * TAP_BLOCK);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            return;
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        t->cur = (t->cur + 1) % TAP_NBLOCKS;
    }
}

int main(int argc, char **argv)
{
    int with_tap = argc > 1 && !strcmp(argv[1], "--tap");
    argv += with_tap;
    argc -= with_tap;
    if (argc < 7 || argc > 8)
        return usage();
    const char *ifname = argv[1];
    uint8_t dmac[6];
    struct in_addr dst;
    char *e1, *e2, *e3, *e4 = NULL;
    unsigned long frames = strtoul(argv[4], &e1, 10), bursts = strtoul(argv[5], &e2, 10);
    double rate = strtod(argv[6], &e3);
    unsigned long size = argc == 8 ? strtoul(argv[7], &e4, 10) : 140;
    if (parse_mac(argv[2], dmac) || inet_pton(AF_INET, argv[3], &dst) != 1 || *e1 || *e2 || *e3 ||
        (e4 && *e4) || !frames || frames > 100000 || !bursts || bursts > 100000 || !(rate > 0) ||
        rate > 10000 || size < 60 || size > 1514)
        return usage();
    /* the lab's addresses only */
    if ((ntohl(dst.s_addr) & 0xfffe0000u) != 0xc6120000u) {
        fprintf(stderr, "emit_floor: %s is not a lab address (198.18.0.0/15)\n", argv[3]);
        return 2;
    }
    unsigned ifindex = if_nametoindex(ifname);
    int sfd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (!ifindex || sfd < 0 || ioctl(sfd, SIOCGIFHWADDR, &ifr)) {
        fprintf(stderr, "emit_floor: %s: %s\n", ifname, ifindex ? strerror(errno) : "no such interface");
        return 1;
    }
    close(sfd);

    /* the template: Ethernet, IPv4 (source the address after the destination's), UDP */
    uint8_t tmpl[1514] = {0};
    memcpy(tmpl, dmac, 6);
    memcpy(tmpl + 6, ifr.ifr_hwaddr.sa_data, 6);
    tmpl[12] = 0x08;
    uint8_t *ip = tmpl + 14, *udp = ip + 20;
    size_t iplen = size - 14;
    uint32_t src = htonl(ntohl(dst.s_addr) ^ 1u);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(iplen >> 8);
    ip[3] = (uint8_t)iplen;
    ip[6] = 0x40; /* DF */
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, &src, 4);
    memcpy(ip + 16, &dst.s_addr, 4);
    uint16_t c = ip_csum(ip, 20);
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    udp[0] = 0x9c; udp[1] = 0x40;  /* source port 40000 */
    udp[3] = 9;                    /* discard */
    udp[4] = (uint8_t)((iplen - 20) >> 8);
    udp[5] = (uint8_t)(iplen - 20); /* checksum 0: none */

    char err[256];
    struct mqo_port *port;
    struct mqo_port_cfg cfg = {.ifname = ifname, .backend = MQO_PKTIO_AFPACKET};
    if (mqo_port_open(&cfg, &port, err, sizeof err)) {
        fprintf(stderr, "emit_floor: %s\n", err);
        return 1;
    }
    struct tap tap = {.fd = -1};
    if (with_tap && tap_open(&tap, ifindex)) {
        fprintf(stderr, "emit_floor: --tap on %s: %s\n", ifname, strerror(errno));
        mqo_port_close(port);
        return 1;
    }
    static struct mqo_hist h; /* zeroed: empty */
    struct mqo_rawframe *v[BURST];
    uint64_t period = (uint64_t)(1e9 / rate), next = now_ns(), refused = 0;
    int rc = 0;
    for (unsigned long b = 0; b < bursts && !rc; b++) {
        for (uint64_t t; (t = now_ns()) < next;) {
            struct timespec ts = {.tv_sec = (time_t)((next - t) / 1000000000ull),
                                  .tv_nsec = (long)((next - t) % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
        next += period;
        if (with_tap)
            tap_drain(&tap);
        uint64_t t0 = now_ns();
        for (unsigned long done = 0; done < frames && !rc;) {
            unsigned n = 0;
            while (n < BURST && done + n < frames) {
                struct mqo_rawframe *f = mqo_frame_alloc_len(port, (uint32_t)size); /* as the bump asks */
                if (!f) {
                    fprintf(stderr, "emit_floor: no frame buffer\n");
                    rc = 1;
                    break;
                }
                memcpy(f->data, tmpl, size);
                f->len = (uint32_t)size;
                v[n++] = f;
            }
            for (unsigned k = 0; k < n;) { /* the port takes what it can: offer the rest again */
                int r = mqo_port_tx_burst(port, v + k, (int)(n - k));
                if (r < 0) {
                    fprintf(stderr, "emit_floor: send: %s\n", strerror(-r));
                    for (; k < n; k++)
                        mqo_frame_free(v[k]);
                    rc = 1;
                    break;
                }
                if ((unsigned)r < n - k)
                    refused++;
                k += (unsigned)r;
            }
            done += n;
        }
        mqo_hist_record(&h, now_ns() - t0);
    }
    if (with_tap)
        close(tap.fd);
    mqo_port_close(port);
    double p50 = (double)mqo_hist_percentile(&h, 50) / 1e3;
    printf("emit_floor %s: %lu bursts of %lu frames of %lu bytes%s: p50 %.1f us, p99 %.1f us, max %.1f us; "
           "%.3f us per frame at p50; %llu times the port took part of a burst\n",
           ifname, bursts, frames, size, with_tap ? ", tap on" : "", p50,
           (double)mqo_hist_percentile(&h, 99) / 1e3, (double)h.max / 1e3, p50 / (double)frames,
           (unsigned long long)refused);
    return rc;
}
