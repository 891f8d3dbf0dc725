/* tcp/: the spliced connections' table in shared memory (monitor mode, --conn-table PATH).
 *
 * A spliced connection cannot outlive its splice: the two ends' sequence numbers differ, and
 * only the splice knew the translation. When mqoff monitor dies (kill -9, a crash), its clients
 * would hang until their keep-alive gives up (1.5 x keep-alive, often 90 s). So every
 * established spliced connection has an entry here, in a file mapped shared (under /dev/shm:
 * memory, not disk), written when the connection is established and cleared when the splice
 * forgets it: what is needed to reset both ends, and what is needed to resume it.
 *
 * Resuming. A connection is quiescent when nothing is in transit through the splice in either
 * direction: every output byte acknowledged by its receiver but at most MQO_CTAB_HELD_MAX
 * (recorded here: a PUBACK of the offload's awaits the publisher's ACK most of the time), every
 * input byte acknowledged and handed on whole (no packet held by the engine, nothing out of
 * order), and the engine owes nothing on it (no delivery of its own in flight, no packet
 * identifier renumbered, no topic alias, no ping of its own). Then the streams differ only by a
 * fixed translation: input offset in_off[d] of direction d is output offset out_off[d] +
 * held_len[d], and every later byte follows one to one. The splice writes both offsets and then sets `quiescent` (a release store) when
 * a connection becomes quiescent, and clears the word before it emits the first frame (an ACK,
 * a segment) that leaves that state; a crash at any instruction leaves either the word clear
 * or offsets that both ends agree with. A monitor started on the table resumes the quiescent
 * entries as relayed connections (mqo_splice_resume) and resets the others.
 *
 * Resetting (mqo_ctab_reset_*): it sends each end an ACK with a sequence number outside its
 * window (its initial one), which the end answers with an ACK naming exactly the next byte it
 * expects (RFC 793, RFC 5961 "challenge ACK"); a RST with that sequence number is then
 * accepted. Any segment an end sends meanwhile names it as well. Clients see the reset at once
 * and reconnect, instead of after their keep-alive.
 *
 * One process at a time: the file is locked (flock) while in use. A takeover hands the
 * connections over and the new process rewrites the table from the splice it received. A table
 * of another format version is started afresh (its connections are lost to a hang: logged). */
#ifndef MQO_TCP_CTAB_H
#define MQO_TCP_CTAB_H

#include <stddef.h>
#include <stdint.h>

#define MQO_CTAB_VERSION 2
/* Output bytes a quiescent connection may hold unacknowledged per direction (recorded). */
#define MQO_CTAB_HELD_MAX 32

/* One connection: sides as in tcp/splice.h (0 the clients' port, 1 the broker's); directions
 * d as the splice's halves (0: client to broker, 1: broker to client). */
struct mqo_ctab_ent {
    uint32_t live;       /* MQO_CTAB_LIVE, 0: free */
    uint32_t cip;        /* client address, network order */
    uint16_t cport;      /* host order */
    uint8_t ttl[2];      /* by side the frame goes toward */
    uint32_t isn[2];     /* [0] the client's initial sequence number, [1] the broker's */
    uint8_t eth[2][14];  /* Ethernet header of frames toward side */
    uint8_t tos[2];
    uint8_t ts_ok;       /* both ends use TCP timestamps */
    uint8_t wscale[2];   /* by direction: the shift its sender applies to its windows */
    uint8_t pad;
    uint16_t mss[2];     /* by direction: the largest payload toward its receiver */
    uint8_t pad2[2];
    /* written by the splice while the connection lives (see above) */
    uint32_t quiescent;  /* MQO_CTAB_QUIET: in_off/out_off hold; 0: not quiescent */
    uint64_t in_off[2];  /* by direction: input bytes after the SYN, all acknowledged */
    uint64_t out_off[2]; /* ... the output offset acknowledged by the receiver */
    /* ... and the output bytes after it, not acknowledged yet (a PUBACK of the offload's, a
     * small delivery): in_off[d] maps to out_off[d] + held_len[d]; a new process sends them */
    uint16_t held_len[2];
    uint8_t held[2][MQO_CTAB_HELD_MAX];
    uint8_t pad3[4];
};
#define MQO_CTAB_LIVE 0x4c495645u
#define MQO_CTAB_QUIET 0x51554945u

struct mqo_ctab;

/* Opens (creates) the table at path for nslots connections of the broker bip:bport (network
 * order, host order), locked for this process. *stale: entries a dead predecessor left (they
 * stay until mqo_ctab_take_stale). Returns the table, NULL with errno (EBUSY: another process
 * has it). */
struct mqo_ctab *mqo_ctab_open(const char *path, uint32_t nslots, uint32_t bip, uint16_t bport,
                               size_t *stale);
/* After mqo_ctab_open: the format version of the table found at path when it was not this
 * one's (its entries were dropped), else 0. */
uint32_t mqo_ctab_old_version(const struct mqo_ctab *t);
void mqo_ctab_close(struct mqo_ctab *t);
/* Copies the stale entries out (malloc'd array, *n) and clears the table. Returns 0, -ENOMEM. */
int mqo_ctab_take_stale(struct mqo_ctab *t, struct mqo_ctab_ent **out, size_t *n);
/* Enters or replaces the connection's entry. Returns 0, -ENOSPC, -ENOMEM. */
int mqo_ctab_put(struct mqo_ctab *t, const struct mqo_ctab_ent *e);
/* The connection's slot in the shared table: it stays in place until mqo_ctab_del (for the
 * splice's writes of the resume point). NULL: none. */
struct mqo_ctab_ent *mqo_ctab_get(struct mqo_ctab *t, uint32_t cip, uint16_t cport);
void mqo_ctab_del(struct mqo_ctab *t, uint32_t cip, uint16_t cport);
/* Whether a stale entry can be resumed: quiescent, and its fields sane (a table is a file
 * anyone with the rights may have written). */
int mqo_ctab_resumable(const struct mqo_ctab_ent *e);
size_t mqo_ctab_count(const struct mqo_ctab *t);

/* ---- resetting a dead splice's connections ---- */
struct mqo_ctab_reset;
/* Sends a frame toward side; returns 0 when sent. */
typedef int (*mqo_ctab_send_fn)(void *arg, int to_side, const uint8_t *frame, size_t len);
struct mqo_ctab_reset *mqo_ctab_reset_new(const struct mqo_ctab_ent *v, size_t n, uint32_t bip,
                                          uint16_t bport);
void mqo_ctab_reset_free(struct mqo_ctab_reset *r);
/* A frame arrived from side from: 1 when it belongs to a connection being reset (taken: it is
 * not to be forwarded; the end it came from is reset when it names its next byte), else 0. */
int mqo_ctab_reset_frame(struct mqo_ctab_reset *r, int from, const uint8_t *frame, size_t len,
                         mqo_ctab_send_fn send, void *arg);
/* Probes ends not reset yet (every 250 ms, for 5 s). Returns how many connections are still
 * being reset (0: done, free it). */
size_t mqo_ctab_reset_tick(struct mqo_ctab_reset *r, uint64_t now, mqo_ctab_send_fn send,
                           void *arg);
/* Connections whose both ends were reset, and those given up. */
void mqo_ctab_reset_counts(const struct mqo_ctab_reset *r, size_t *done, size_t *gave_up);

/* Builds a TCP/IPv4 frame without payload: eth header, addresses (network order), ports (host
 * order), seq, ack, flags, window. Returns its length (54). For tests. */
size_t mqo_ctab_frame(uint8_t *out, const uint8_t eth[14], uint8_t ttl, uint8_t tos,
                      uint32_t sip, uint32_t dip, uint16_t sport, uint16_t dport, uint32_t seq,
                      uint32_t ack, uint8_t flags, uint16_t win);

#endif
