/* l2/gso: segmentation offload on frames.
 *
 * The virtio-net header. An AF_PACKET socket with PACKET_VNET_HDR reads and writes every frame
 * after a 10-byte header (struct virtio_net_hdr of <linux/virtio_net.h>, legacy layout, in the
 * host's byte order on little-endian hosts, which is all Linux's packet socket supports for it)
 * that says what the kernel left undone:
 *   - NEEDS_CSUM: the L4 checksum is partial; its field, csum_offset bytes past csum_start,
 *     holds the pseudo-header sum (Linux's convention: with the L4 length, not complemented)
 *     and the sum of the bytes from csum_start is still to be added;
 *   - DATA_VALID: the checksums were verified;
 *   - gso_type TCPV4 (TCPV6, UDP...): the frame is a super-segment, cut into segments of
 *     gso_size payload bytes when it reaches a wire (GSO on send; GRO made it on receive);
 *     hdr_len is the length of its headers.
 * mqo_vnet_rx reads the header of a received frame into pktio's flags (a TCP/IPv4 super-segment
 * becomes MQO_FRAME_TSO with its segment size, its checksum field rewritten to TSO's
 * convention, the pseudo-header sum without the length, whatever the kernel left there: after
 * GRO it is the first segment's); mqo_vnet_tx builds the header for a frame to send from its
 * flags. Only TCP and UDP over IPv4 get offloads on send; other partial frames are completed
 * in software (or left as they are when they are not IPv4: nothing else was ever completed).
 *
 * Software segmentation (mqo_tso_split_*): a TCP/IPv4 super-segment cut into wire segments of
 * seg_size payload bytes, each with its own IPv4 length, id (consecutive), header checksum,
 * sequence number and full TCP checksum; FIN and PSH only on the last, CWR only on the first.
 * For outputs that cannot take a super-segment: an impairment stage (it loses and reorders wire
 * frames), a port without segmentation offload.
 */
#ifndef MQO_L2_GSO_H
#define MQO_L2_GSO_H

#include <stddef.h>
#include <stdint.h>

#define MQO_VNET_HDR_LEN 10

/* virtio_net_hdr.flags */
#define MQO_VNET_F_NEEDS_CSUM 1
#define MQO_VNET_F_DATA_VALID 2
/* virtio_net_hdr.gso_type */
#define MQO_VNET_GSO_NONE 0
#define MQO_VNET_GSO_TCPV4 1
#define MQO_VNET_GSO_UDP 3
#define MQO_VNET_GSO_TCPV6 4
#define MQO_VNET_GSO_ECN 0x80

struct mqo_vnet_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};

/* The header's 10 bytes to and from the struct (host byte order, as the packet socket has it). */
void mqo_vnet_load(struct mqo_vnet_hdr *h, const uint8_t *p);
void mqo_vnet_store(const struct mqo_vnet_hdr *h, uint8_t *p);

/* A received frame's header: sets *flags (MQO_FRAME_CSUM_PARTIAL, MQO_FRAME_CSUM_VALID,
 * MQO_FRAME_TSO of pktio.h) and *seg (the segment size of a super-segment). A TCP/IPv4
 * super-segment gets its checksum field rewritten (see above), so frame must be writable.
 * Returns 0, or -1 for a header the frame contradicts (checksum offsets outside it, a
 * super-segment that is not TCP/IPv4 or whose headers do not parse, a segment size of 0): the
 * caller drops the frame (the kernel would not have sent it as it is). A super-segment not
 * longer than one segment is an ordinary frame. */
int mqo_vnet_rx(const struct mqo_vnet_hdr *h, uint8_t *frame, uint32_t len, uint16_t *flags,
                uint16_t *seg);

/* The header for a frame to send: len bytes (the head), total bytes in all (head and what
 * follows it in other buffers), flags and seg as in struct mqo_rawframe. A TSO frame's checksum
 * field (TSO's convention) is rewritten to Linux's (the pseudo-header sum with its L4 length),
 * so the head must be writable; doing it again gives the same bytes. Returns 1 with *h set for
 * an offload, 0 with *h all zero when the frame needs none (no flag, or a partial frame that is
 * not TCP/UDP over IPv4: the caller completes or sends it as it is), -1 for a TSO frame whose
 * headers do not parse (not sendable). */
int mqo_vnet_tx(struct mqo_vnet_hdr *h, uint8_t *head, uint32_t len, uint32_t total,
                uint16_t flags, uint16_t seg);

/* Software segmentation of a TCP/IPv4 super-segment (frame[0..len), all in one buffer). */
struct mqo_tso_split {
    const uint8_t *frame;
    uint32_t len;
    uint16_t l3_off, l4_off, hdr_len; /* hdr_len: Ethernet, IPv4 and TCP headers */
    uint16_t seg;
    uint32_t off; /* payload bytes done */
    uint32_t payload;
    uint32_t seq;
    uint16_t id;
    uint8_t tcp_flags;
    uint32_t saddr, daddr;
    unsigned k;
};

/* Returns the number of segments (>= 1), or -1 when the frame is not TCP/IPv4 with whole
 * headers, or seg is 0. */
int mqo_tso_split_init(struct mqo_tso_split *s, const uint8_t *frame, uint32_t len, uint16_t seg);
/* Writes the next segment into out (cap bytes). Returns its length, 0 when done or when it
 * does not fit cap. */
uint32_t mqo_tso_split_next(struct mqo_tso_split *s, uint8_t *out, uint32_t cap);

#endif
