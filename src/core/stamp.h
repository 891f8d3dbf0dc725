/* Benchmark payload stamp: who sent a message, which one, and when it was due.
 *
 * mqoff-bench puts a stamp at the start of every PUBLISH payload it sends; its subscribers and
 * its wire tap find messages by it. Layout (MQO_STAMP_LEN bytes, big-endian):
 *
 *    0  4  magic "MQB" + version byte (MQO_STAMP_VERSION)
 *    4  4  run id (random per run: stray messages of another run are told apart)
 *    8  4  publisher index
 *   12  8  sequence number (per publisher, from 0)
 *   20  8  scheduled send time, CLOCK_MONOTONIC ns
 *   28  4  check: FNV-1a 32 of bytes 0..27
 *
 * The rest of the payload is padding that the parser ignores.
 */
#ifndef MQO_CORE_STAMP_H
#define MQO_CORE_STAMP_H

#include <stddef.h>
#include <stdint.h>

#define MQO_STAMP_LEN 32
#define MQO_STAMP_VERSION 1

struct mqo_stamp {
    uint32_t run;
    uint32_t pub;
    uint64_t seq;
    uint64_t sched_ns;
};

/* Writes the stamp into out[0..MQO_STAMP_LEN). */
void mqo_stamp_put(uint8_t *out, const struct mqo_stamp *s);
/* Parses a stamp from the start of a payload p[0..n). Returns 0 and fills s, -EINVAL when n is
 * shorter than a stamp, the magic or the check is wrong, -EPROTONOSUPPORT for a stamp of
 * another version. s is unchanged on error. */
int mqo_stamp_get(const uint8_t *p, size_t n, struct mqo_stamp *s);

#endif
