/* pktio/xdp_prog: the XDP program of an AF_XDP port (afxdp.c), built as BPF instructions here
 * (no BPF compiler at build time) and loaded with libbpf. Built with the AF_XDP backend.
 *
 * Without a filter every frame goes to the port's socket. With one, only what the splice needs
 * does: IPv4 TCP to (match_dst) or from the broker's address and port, a fragment of IPv4 TCP
 * to or from the address (fragments after the first carry no port), and, to be safe, such a
 * datagram the program cannot read to the port (IP options, truncated headers). The Ethernet
 * header may carry up to two 802.1Q/802.1ad tags, as monitor mode parses them (l2/parse.h).
 * Every other frame goes to the peer interface in the devmap (kernel forwarding, port to
 * port), or to the kernel's stack (XDP_PASS) when there is no devmap: an interface that is not
 * a bump port. A socket not (yet) in the XSKMAP passes its frames to the kernel.
 */
#ifndef MQO_XDP_PROG_H
#define MQO_XDP_PROG_H

#include <stddef.h>
#include <stdint.h>

struct mqo_xdp_filter {
    uint32_t ip;   /* network order; 0: no filter, every frame to the socket */
    uint16_t port; /* network order */
    int match_dst; /* 1: the address and port are the destination's, 0: the source's */
};

/* Loads the program for f, redirecting to the sockets of XSKMAP xsk_map (key: the receive
 * queue) and, when dev_map >= 0, the rest to DEVMAP dev_map (key 0). Returns the program's
 * descriptor, or -errno with the verifier's words in log (loglen bytes, may be 0). */
int mqo_xdp_prog_load(const struct mqo_xdp_filter *f, int xsk_map, int dev_map, char *log,
                      size_t loglen);

#endif
