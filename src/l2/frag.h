/* l2/frag: IPv4 fragment reassembly, and the splitting of a datagram into fragments.
 *
 * Reassembly (struct mqo_frag) works on whole Ethernet frames: each fragment comes in as the
 * frame it arrived in, and a completed datagram goes out as a frame (the L2 header of the
 * fragment at offset 0, then the IPv4 header of that fragment with MF and the offset cleared,
 * the total length and the header checksum recomputed, then the payload), so the caller hands
 * it to the same code as any unfragmented frame. It may be longer than any link's MTU (up to
 * 65535 bytes of IP).
 *
 * No I/O, no clock: time comes in as nanoseconds. Memory is bounded: at most max_dgrams
 * datagrams in progress and max_bytes held (payload buffers, range lists, kept fragment copies
 * and a fixed cost per datagram); to make room the oldest datagram in progress is dropped
 * (`evicted`). A datagram is dropped when timeout_ns passed since its first fragment (Linux's
 * ipfrag_time, 30 s), as a host drops it.
 *
 * Datagrams are keyed by (source, destination, identification, protocol) (RFC 791). Fragments
 * may come in any order, duplicated, overlapping:
 *   - bytes that overlap bytes already held must be identical, else the whole datagram is
 *     dropped (`conflicts`; RFC 5722 applied to IPv4: two versions of the same bytes leave the
 *     receiver free to pick either, so a middlebox that picks one can be evaded). A fragment
 *     entirely covered by identical bytes is a duplicate (`dups`, dropped); one that overlaps
 *     identically and adds bytes is kept (`overlaps`);
 *   - a last fragment (MF clear) that disagrees with the known length, or a fragment beyond it,
 *     drops the datagram (`conflicts`), as Linux does;
 *   - a datagram longer than 65535 bytes drops (`too_big`);
 *   - a non-last fragment whose payload is not a multiple of 8 is trimmed to one (as Linux);
 *     an empty fragment, a bad header checksum or a frame that is not an IPv4 fragment is
 *     dropped (`malformed`).
 *
 * Pass-through decisions. A middlebox that edits some connections and not others cannot know
 * which one a datagram belongs to before the fragment holding the L4 header arrives. With
 * cfg.keep, every datagram starts MQO_FRAG_UNDECIDED: the reassembler keeps a copy of each
 * fragment it accepts, in arrival order, and shows the caller the first bytes of the L4 header
 * as soon as they are held (info.head). The caller then calls mqo_frag_decide():
 *   - MQO_FRAG_REASSEMBLE: the copies are dropped; the whole datagram comes out when complete;
 *   - MQO_FRAG_PASS: the copies are handed back in arrival order to be forwarded untouched,
 *     and every later fragment of the datagram gets MQO_FRAG_PASSED from mqo_frag_add (the
 *     caller forwards it at once) until all of the datagram went by or it times out.
 * An undecided datagram that times out loses its copies (`timeout_frags`), as a host would
 * drop the fragments of a datagram it cannot complete. Without cfg.keep every datagram is
 * MQO_FRAG_REASSEMBLE from the start.
 */
#ifndef MQO_L2_FRAG_H
#define MQO_L2_FRAG_H

#include <stddef.h>
#include <stdint.h>

#define MQO_FRAG_L2_MAX 22   /* Ethernet header with two VLAN tags (l2/parse.h) */
#define MQO_FRAG_HEAD 60     /* L4 bytes shown in mqo_frag_info.head at most (a TCP header) */
#define MQO_FRAG_OUT_MAX (MQO_FRAG_L2_MAX + 65535) /* largest frame mqo_frag_add returns */

struct mqo_frag_cfg {
    uint32_t max_dgrams; /* datagrams in progress (pass markers included); 0: 1024 */
    size_t max_bytes;    /* bytes held; 0: 4 MiB (Linux's ipfrag_high_thresh) */
    uint64_t timeout_ns; /* from a datagram's first fragment; 0: 30 s */
    int keep;            /* keep fragment copies until mqo_frag_decide (see above) */
    uint64_t seed;       /* hash seed */
};

struct mqo_frag_stats {
    uint64_t frags_in;      /* fragments offered to mqo_frag_add */
    uint64_t reassembled;   /* datagrams completed (returned with MQO_FRAG_DONE) */
    uint64_t passed;        /* fragments handed back for forwarding untouched */
    uint64_t waited;        /* fragments kept undecided before their L4 header had arrived */
    uint64_t dups;          /* fragments that added no byte (dropped) */
    uint64_t overlaps;      /* fragments that overlapped held bytes identically (kept) */
    uint64_t conflicts;     /* datagrams dropped: overlapping bytes differ, lengths disagree */
    uint64_t too_big;       /* datagrams dropped: longer than 65535 bytes */
    uint64_t malformed;     /* fragments dropped: not an IPv4 fragment, bad header, empty */
    uint64_t timeouts;      /* datagrams dropped incomplete or undecided after the timeout */
    uint64_t timeout_frags; /* kept fragment copies dropped with undecided datagrams */
    uint64_t evicted;       /* datagrams dropped to make room within the limits */
    uint64_t nomem;         /* datagrams dropped: no memory, or one alone over max_bytes */
    uint64_t in_progress;   /* datagrams held now */
    uint64_t bytes_held;    /* bytes held now */
};

enum mqo_frag_verdict {
    MQO_FRAG_UNDECIDED = 0,
    MQO_FRAG_REASSEMBLE = 1,
    MQO_FRAG_PASS = 2,
};

/* mqo_frag_add results (>= 0); a negative result is -enum mqo_frag_err (fragment dropped). */
#define MQO_FRAG_HELD 0   /* kept (or a duplicate, dropped); the datagram is not complete */
#define MQO_FRAG_DONE 1   /* the datagram is complete: info.frame */
#define MQO_FRAG_PASSED 2 /* the datagram is passed untouched: forward this fragment as it is */

enum mqo_frag_err {
    MQO_FRAG_E_MALFORMED = 1, /* not a valid IPv4 fragment (only this fragment is dropped) */
    MQO_FRAG_E_CONFLICT,      /* the datagram was dropped: conflicting overlap or lengths */
    MQO_FRAG_E_TOO_BIG,       /* the datagram was dropped: over 65535 bytes */
    MQO_FRAG_E_NOMEM,         /* the datagram was dropped: no memory within the limits */
};

struct mqo_frag_key {
    uint32_t saddr, daddr; /* memory order, as in struct mqo_ipv4 */
    uint16_t id;           /* host order */
    uint8_t proto;
};

/* What mqo_frag_add tells about the datagram of the fragment. Pointers stay valid until the
 * next call on the reassembler. */
struct mqo_frag_info {
    struct mqo_frag_key key;     /* set whenever the fragment parsed */
    enum mqo_frag_verdict verdict;
    /* the first head_len bytes of the L4 header (up to MQO_FRAG_HEAD), once held contiguously
     * from offset 0; head_len 0 before that, and for passed datagrams */
    const uint8_t *head;
    size_t head_len;
    /* MQO_FRAG_DONE: the whole frame (L2 header + reassembled datagram) */
    const uint8_t *frame;
    size_t len;
};

struct mqo_frag;

/* Returns NULL when out of memory. */
struct mqo_frag *mqo_frag_new(const struct mqo_frag_cfg *cfg);
void mqo_frag_free(struct mqo_frag *r);

/* Offers the fragment in frame[0, len) (an Ethernet frame holding an IPv4 fragment), received
 * at now_ns (times never go backwards). Returns MQO_FRAG_HELD, MQO_FRAG_DONE, MQO_FRAG_PASSED,
 * or a negative -enum mqo_frag_err; fills *info (see above). The frame stays the caller's:
 * the reassembler copies what it keeps. */
int mqo_frag_add(struct mqo_frag *r, const uint8_t *frame, size_t len, uint64_t now_ns,
                 struct mqo_frag_info *info);

/* The caller's verdict on an undecided datagram (MQO_FRAG_REASSEMBLE or MQO_FRAG_PASS, see
 * above). PASS calls out(ud, frame, len) for each kept fragment copy, in arrival order (each
 * frame is valid during the call only). A datagram already complete (MQO_FRAG_DONE returned
 * while undecided) is forgotten either way; info.frame of that call stays valid. Returns the
 * number of copies handed out, or -ENOENT (no such datagram) or -EINVAL (already decided, or
 * not a verdict). */
int mqo_frag_decide(struct mqo_frag *r, const struct mqo_frag_key *key,
                    enum mqo_frag_verdict verdict,
                    void (*out)(void *ud, const uint8_t *frame, size_t len), void *ud);

/* Drops the datagrams whose timeout passed at now_ns. Returns how many. */
unsigned mqo_frag_expire(struct mqo_frag *r, uint64_t now_ns);

/* Nanoseconds from now_ns until the oldest datagram times out (UINT64_MAX: none held). */
uint64_t mqo_frag_next_timer(const struct mqo_frag *r, uint64_t now_ns);

const struct mqo_frag_stats *mqo_frag_stats(const struct mqo_frag *r);

/* ---- splitting (a test device: the impairment stage's frag=SIZE) ------------------------ */

/* Iterator over the fragments of one IPv4 datagram. */
struct mqo_frag_split {
    const uint8_t *frame;
    uint16_t l3_off, hlen;   /* L2 header length, IPv4 header length */
    uint16_t plen;           /* payload bytes of the datagram */
    uint16_t unit;           /* payload bytes per fragment (a multiple of 8) */
    uint16_t base;           /* the datagram's own fragment offset (bytes), when a fragment */
    uint8_t last_mf;         /* the datagram's own MF flag (kept on the last piece) */
    uint8_t optlen;          /* copied options for pieces after the first (padded to 4) */
    uint8_t opts[40];
    uint16_t next;           /* payload offset of the next piece */
};

/* Prepares to split the IPv4 datagram in frame[0, len) into fragments carrying at most `size`
 * bytes of IP payload each (rounded down to a multiple of 8, at least 8). The datagram may be a
 * fragment itself (the pieces keep its offset and, on the last piece, its MF flag). DF is
 * ignored and cleared in the pieces (a test device, not a router); the identification, TTL and
 * the rest of the header are kept; pieces after the first carry only the options whose copied
 * flag is set (RFC 791). Returns the number of fragments (>= 2), 0 when the frame needs no
 * split (not IPv4, or a payload of at most `size` bytes), or a negative -MQO_P_* when its
 * headers are malformed (send it as it is). */
int mqo_frag_split_init(struct mqo_frag_split *s, const uint8_t *frame, size_t len,
                        size_t size);

/* Writes the next fragment frame into out (cap bytes; a piece is never longer than the
 * original frame). Returns its length, 0 when every piece was written (or cap is too small). */
size_t mqo_frag_split_next(struct mqo_frag_split *s, uint8_t *out, size_t cap);

#endif
