/* l2: the forwarding decision of an N-port bump-in-the-wire (monitor mode, mqoff-bridge).
 *
 * No I/O and no clock: mqo_l2_decide() takes a frame's bytes, the port it came in on and the
 * time, and returns the set of output ports as a bit mask (bit i = port i; never the input
 * port; 0 = drop). The caller owns the frame and does the sending (copies when several bits).
 *
 * Modes:
 *   hub     every frame goes to every other port.
 *   learn   a learning switch: the source MAC of each frame is learned on its input port
 *           (aging: an entry not refreshed for aging_ns is forgotten); broadcast, multicast and
 *           unknown unicast destinations flood; a destination learned on the input port is
 *           filtered (dropped: it is already on that segment). A station that moves is
 *           relearned on its new port at once.
 *   static  a fixed table (MAC PORT lines, mqo_l2_static_parse): a listed destination goes to
 *           its port (dropped if that is the input port); broadcast and multicast flood;
 *           unknown unicast is dropped unless MQO_L2_STATIC_FLOOD_UNKNOWN is set.
 * Frames shorter than an Ethernet header are dropped in every mode. Learning is shared across
 * VLANs (one table keyed by MAC alone), which for a bump between two segments is the same.
 */
#ifndef MQO_L2_L2_H
#define MQO_L2_L2_H

#include <stddef.h>
#include <stdint.h>

#define MQO_L2_MAX_PORTS 32

enum mqo_l2_mode { MQO_L2_HUB, MQO_L2_LEARN, MQO_L2_STATIC };

/* struct mqo_l2_cfg.flags */
#define MQO_L2_STATIC_FLOOD_UNKNOWN 0x1

struct mqo_l2_cfg {
    enum mqo_l2_mode mode;
    unsigned nports;     /* 1..MQO_L2_MAX_PORTS */
    uint64_t aging_ns;   /* learn: 0 = default 300 s */
    uint32_t max_macs;   /* learn and static: table size, 0 = default 4096 */
    unsigned flags;
};

struct mqo_l2_stats {
    uint64_t frames, flooded, unicast, filtered, dropped_runt, dropped_unknown;
    uint64_t learned, moved, table_full; /* learn */
};

struct mqo_l2;

/* Returns a new forwarding state, or NULL (bad cfg or no memory). */
struct mqo_l2 *mqo_l2_new(const struct mqo_l2_cfg *cfg);
void mqo_l2_free(struct mqo_l2 *l2);

/* Parses "hub", "learn" or "static". Returns 0, or -1 when unknown. */
int mqo_l2_parse_mode(const char *s, enum mqo_l2_mode *out);

/* Adds the static table in text (len bytes, not NUL-terminated): one "MAC PORT" per line, MAC
 * as aa:bb:cc:dd:ee:ff (or with '-'), PORT a number < nports or a letter (a = 0, b = 1, ...);
 * '#' starts a comment, blank lines are ignored. A MAC listed twice takes the later port.
 * Returns 0, or -EINVAL with "line N: ..." in err and the table unchanged. */
int mqo_l2_static_parse(struct mqo_l2 *l2, const char *text, size_t len, char *err, size_t errlen);

/* Adds one entry to the static table (any mode: in learn mode it never ages and is never
 * relearned elsewhere). Returns 0, -EINVAL (port out of range), or -ENOSPC (table full). */
int mqo_l2_static_add(struct mqo_l2 *l2, const uint8_t mac[6], unsigned port);

/* Parses a MAC address "aa:bb:cc:dd:ee:ff" (':' or '-'). Returns 0, or -1. */
int mqo_l2_parse_mac(const char *s, size_t len, uint8_t mac[6]);

/* The forwarding decision for a frame of len bytes received on in_port at time now_ns (any
 * monotonic clock). Learns the source in learn mode. Returns the output port mask. */
uint32_t mqo_l2_decide(struct mqo_l2 *l2, unsigned in_port, const uint8_t *frame, size_t len,
                       uint64_t now_ns);

/* Port of mac in the table (learned and not aged at now_ns, or static), or -1. */
int mqo_l2_lookup(const struct mqo_l2 *l2, const uint8_t mac[6], uint64_t now_ns);

/* Entries currently held (aged ones included until they are reused or swept). */
unsigned mqo_l2_count(const struct mqo_l2 *l2);

void mqo_l2_get_stats(const struct mqo_l2 *l2, struct mqo_l2_stats *st);

#endif
