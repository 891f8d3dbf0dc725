/* l2/parse: Ethernet (802.1Q/802.1ad tags skipped), IPv4 and TCP header parsing, and the
 * Internet checksum (RFC 1071) with incremental update (RFC 1624).
 *
 * No I/O, no allocation. Parsers never read outside [p, p + len) and return 0 or a negative
 * enum mqo_perr; mqo_perr_str() names the reason (for counters and logs).
 *
 * Checksum convention (as Linux's __wsum/__sum16): every sum and checksum is in *memory order*.
 * A 16-bit field is read and written with memcpy, never with ntohs/htons, and the same code is
 * right on either byte order. mqo_cksum_partial() returns a 32-bit accumulator (not folded);
 * mqo_cksum_fold() folds it and complements, giving the value the checksum field holds.
 *
 *   checksum of a TCP/IPv4 segment (field zeroed first):
 *     sum = mqo_cksum_pseudo4(saddr, daddr, IPPROTO_TCP, tcp_len, 0);
 *     sum = mqo_cksum_partial(tcp, tcp_len, sum);
 *     field = mqo_cksum_fold(sum);
 *   verification: mqo_cksum_fold(same over the segment as received) == 0.
 *
 * mqo_cksum_partial() sums 8 bytes a step (~9 GB/s here, 8x the byte-pair loop); the unit test
 * checks it against the naive RFC 1071 sum on random data, lengths and alignments. (The
 * `mqo_csum_*` helpers of tcp/csum.h are a separate, byte-pair, host-order set.)
 */
#ifndef MQO_L2_PARSE_H
#define MQO_L2_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum mqo_perr {
    MQO_P_OK = 0,
    MQO_P_TRUNC,       /* fewer bytes than the header says */
    MQO_P_VLAN_DEPTH,  /* more than MQO_ETH_MAX_TAGS tags */
    MQO_P_IP_VERSION,  /* version != 4 */
    MQO_P_IP_IHL,      /* IHL < 5 */
    MQO_P_IP_LEN,      /* total length < IHL*4 or > bytes present */
    MQO_P_IP_CSUM,     /* header checksum wrong */
    MQO_P_TCP_DOFF,    /* data offset < 5 or beyond the segment */
    MQO_P_TCP_OPT,     /* malformed option list (length < 2 or past the header) */
    MQO_P_NOT_IPV4,    /* mqo_parse_frame: the frame does not carry IPv4 */
    MQO_P_NOT_TCP,     /* mqo_parse_frame: the datagram does not carry TCP */
    MQO_P_FRAGMENT,    /* mqo_parse_frame: a fragment (TCP header only in the first) */
    MQO_P__COUNT
};

/* Name of a parse result ("ok", "trunc", ...); accepts e or -e. */
const char *mqo_perr_str(int e);

/* ---- Ethernet ---------------------------------------------------------------------------- */

#define MQO_ETH_HLEN 14
#define MQO_ETH_MAX_TAGS 2
#define MQO_ETHERTYPE_IPV4 0x0800
#define MQO_ETHERTYPE_ARP 0x0806
#define MQO_ETHERTYPE_VLAN 0x8100
#define MQO_ETHERTYPE_QINQ 0x88a8
#define MQO_ETHERTYPE_QINQ_OLD 0x9100
#define MQO_ETHERTYPE_IPV6 0x86dd

struct mqo_eth {
    const uint8_t *dst, *src; /* 6 bytes each, inside the frame */
    uint16_t type;            /* ethertype after the tags (host order) */
    uint16_t l3_off;          /* offset of the payload after the tags */
    uint8_t ntags;            /* VLAN tags skipped */
    uint16_t tci[MQO_ETH_MAX_TAGS]; /* their TCIs, outer first (host order) */
};

/* Parses the Ethernet header and skips up to MQO_ETH_MAX_TAGS 802.1Q/802.1ad tags.
 * Returns 0, -MQO_P_TRUNC, or -MQO_P_VLAN_DEPTH. */
int mqo_parse_eth(const uint8_t *p, size_t len, struct mqo_eth *e);

static inline int mqo_mac_is_multicast(const uint8_t *mac) { return mac[0] & 1; }
static inline int mqo_mac_is_broadcast(const uint8_t *mac)
{
    return (mac[0] & mac[1] & mac[2] & mac[3] & mac[4] & mac[5]) == 0xff;
}

/* ---- IPv4 -------------------------------------------------------------------------------- */

#define MQO_IPV4_MF 0x2000
#define MQO_IPV4_DF 0x4000
#define MQO_IPV4_OFFMASK 0x1fff

/* struct mqo_ipv4.flags */
#define MQO_IPV4_F_FRAG 0x01    /* a fragment: MF set or offset != 0 */
#define MQO_IPV4_F_FIRST 0x02   /* offset 0 (holds the L4 header; with FRAG: the first fragment) */
#define MQO_IPV4_F_DF 0x04      /* don't fragment */
#define MQO_IPV4_F_OPTIONS 0x08 /* IHL > 5 */

struct mqo_ipv4 {
    uint8_t hlen;       /* header bytes (IHL * 4) */
    uint8_t tos, ttl, proto;
    uint16_t tot_len;   /* total length (host order) */
    uint16_t id;        /* identification (host order) */
    uint16_t frag_off;  /* fragment offset in bytes */
    uint8_t flags;      /* MQO_IPV4_F_* */
    uint32_t saddr, daddr; /* memory order (as on the wire), for mqo_cksum_pseudo4 */
    uint16_t l4_len;    /* tot_len - hlen: payload bytes, excluding Ethernet padding */
};

/* Parser option: skip the header checksum check (it is still parsed). */
#define MQO_PARSE_NO_CSUM 0x1

/* Parses an IPv4 header at p (len bytes available, Ethernet padding allowed past tot_len).
 * Checks version, IHL, total length and (unless MQO_PARSE_NO_CSUM) the header checksum.
 * Returns 0, or -MQO_P_TRUNC, -MQO_P_IP_VERSION, -MQO_P_IP_IHL, -MQO_P_IP_LEN, -MQO_P_IP_CSUM. */
int mqo_parse_ipv4(const uint8_t *p, size_t len, unsigned opts, struct mqo_ipv4 *ip);

/* ---- TCP --------------------------------------------------------------------------------- */

#define MQO_TCP_FIN 0x01
#define MQO_TCP_SYN 0x02
#define MQO_TCP_RST 0x04
#define MQO_TCP_PSH 0x08
#define MQO_TCP_ACK 0x10
#define MQO_TCP_URG 0x20
#define MQO_TCP_ECE 0x40
#define MQO_TCP_CWR 0x80

#define MQO_TCPOPT_EOL 0
#define MQO_TCPOPT_NOP 1
#define MQO_TCPOPT_MSS 2
#define MQO_TCPOPT_WSCALE 3
#define MQO_TCPOPT_SACK_PERM 4
#define MQO_TCPOPT_SACK 5
#define MQO_TCPOPT_TS 8

/* struct mqo_tcp_opts.present */
#define MQO_TCPO_MSS 0x01
#define MQO_TCPO_WSCALE 0x02
#define MQO_TCPO_SACK_PERM 0x04
#define MQO_TCPO_SACK 0x08
#define MQO_TCPO_TS 0x10
#define MQO_TCPO_UNKNOWN 0x20 /* some option of another kind was skipped */
#define MQO_TCPO_BADLEN 0x40  /* a known kind with a wrong length was skipped (Linux ignores it) */

#define MQO_TCP_MAX_SACK 4

struct mqo_tcp_opts {
    uint8_t present; /* MQO_TCPO_* */
    uint8_t wscale;
    uint16_t mss;
    uint32_t ts_val, ts_ecr;
    uint8_t nsack;                      /* SACK blocks (1..4) */
    uint32_t sack[MQO_TCP_MAX_SACK][2]; /* [left, right) edges, host order */
    /* Offsets from the start of the TCP header of each option's kind byte (0: absent), so the
     * splice layer can rewrite them in place. */
    uint8_t mss_off, wscale_off, sack_perm_off, sack_off, ts_off;
};

struct mqo_tcp {
    uint16_t sport, dport; /* host order */
    uint32_t seq, ack;     /* host order */
    uint8_t hlen;          /* data offset in bytes */
    uint8_t flags;         /* MQO_TCP_* */
    uint16_t win;          /* unscaled window, host order */
    uint16_t csum;         /* memory order */
    uint16_t urg;
    uint16_t payload_len;  /* segment bytes after the header */
    struct mqo_tcp_opts opt;
};

/* Walks the TCP option bytes (the header after its 20 fixed bytes, olen bytes). base_off is
 * the offset of opt[0] in the TCP header (20), used for the *_off fields. EOL ends the walk.
 * A known kind with a wrong length is skipped and flagged MQO_TCPO_BADLEN, as Linux ignores it.
 * Returns 0, or -MQO_P_TCP_OPT (an option length < 2 or past the end; o holds what came before). */
int mqo_tcp_parse_opts(const uint8_t *opt, size_t olen, unsigned base_off, struct mqo_tcp_opts *o);

/* Parses a TCP header at p, len bytes of segment (the IPv4 l4_len). Does not check the
 * checksum (see mqo_cksum_*). Returns 0, or -MQO_P_TRUNC, -MQO_P_TCP_DOFF, -MQO_P_TCP_OPT. */
int mqo_parse_tcp(const uint8_t *p, size_t len, struct mqo_tcp *t);

/* A whole TCP/IPv4 frame: offsets into the frame and the parsed headers. */
struct mqo_hdrs {
    struct mqo_eth eth;
    struct mqo_ipv4 ip;
    struct mqo_tcp tcp;
    uint16_t l3_off, l4_off, payload_off;
};

/* Parses Ethernet, IPv4 and TCP. Returns 0, or the first failing step's -MQO_P_* (including
 * -MQO_P_NOT_IPV4, -MQO_P_NOT_TCP, and -MQO_P_FRAGMENT for any fragment; the IPv4 header of a
 * fragment is parsed and valid in pkt->ip). opts: MQO_PARSE_NO_CSUM as for mqo_parse_ipv4. */
int mqo_parse_frame(const uint8_t *p, size_t len, unsigned opts, struct mqo_hdrs *pkt);

/* ---- Internet checksum ------------------------------------------------------------------- */

/* Adds the ones' complement sum of len bytes at p (any alignment, any length) to sum.
 * Returns the new 32-bit accumulator, not folded. */
uint32_t mqo_cksum_partial(const void *p, size_t len, uint32_t sum);

/* Folds an accumulator to 16 bits and complements it: the value a checksum field holds. */
static inline uint16_t mqo_cksum_fold(uint32_t sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Ones' complement addition of two accumulators. */
static inline uint32_t mqo_cksum_add(uint32_t a, uint32_t b)
{
    a += b;
    return a + (a < b);
}

/* Ones' complement subtraction: mqo_cksum_add(a, ~b). */
static inline uint32_t mqo_cksum_sub(uint32_t a, uint32_t b) { return mqo_cksum_add(a, ~b); }

/* Adds the sum of a block that starts at byte offset `off` of the checksummed data: a block at
 * an odd offset has its bytes in the other lanes, so its sum is byte-rotated (Linux
 * csum_block_add). Lets a sum be built from pieces computed separately (fan-out payloads). */
static inline uint32_t mqo_cksum_block_add(uint32_t sum, uint32_t block, size_t off)
{
    if (off & 1)
        block = ((block & 0x00ff00ffu) << 8) | ((block >> 8) & 0x00ff00ffu);
    return mqo_cksum_add(sum, block);
}

/* IPv4 pseudo-header (saddr, daddr in memory order as in struct mqo_ipv4; proto; l4_len host
 * order) added to sum. Returns the new accumulator. */
uint32_t mqo_cksum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto, uint16_t l4_len,
                          uint32_t sum);

/* RFC 1624 eqn. 3 incremental update: HC' = ~(~HC + ~m + m').
 * check: the checksum field's current value; old/new: 16- or 32-bit values in memory order
 * (read with memcpy) that changed in the covered data at an even offset. Returns the new field. */
uint16_t mqo_cksum_update16(uint16_t check, uint16_t old_v, uint16_t new_v);
uint16_t mqo_cksum_update32(uint16_t check, uint32_t old_v, uint32_t new_v);
/* The same for a region: old_sum/new_sum are mqo_cksum_partial() sums of the old and the new
 * bytes (same length and offset parity, or pre-rotated with mqo_cksum_block_add). */
uint16_t mqo_cksum_replace(uint16_t check, uint32_t old_sum, uint32_t new_sum);

/* IPv4 header checksum: the value for the header's checksum field (computed as if it were 0). */
uint16_t mqo_ipv4_cksum(const uint8_t *iph, size_t hlen);

/* The value for an L4 checksum field at l4 + field_off (TCP 16, UDP 6), computed over the
 * pseudo-header and the l4_len bytes at l4 as if the field held 0. */
uint16_t mqo_l4_cksum4(uint32_t saddr, uint32_t daddr, uint8_t proto, const uint8_t *l4,
                      size_t l4_len, size_t field_off);

/* Completes the TCP or UDP checksum of an IPv4 frame in place (for frames received with a
 * partial checksum, MQO_FRAME_CSUM_PARTIAL: the sender left the work to the device). Returns 1
 * if it wrote a checksum, 0 if the frame is not a non-fragmented TCP/UDP over IPv4 (left alone),
 * or a negative -MQO_P_* when the headers are malformed. */
int mqo_cksum_complete4(uint8_t *frame, size_t len);

#endif
