/* Walking a large table a slice at a time: a whole pass per `period` nanoseconds, the share of
 * each call in proportion to the time since the previous one, so no call walks everything at
 * once (a walk over thousands of connections stalls every packet that arrives meanwhile). */
#ifndef MQO_CORE_SLICE_H
#define MQO_CORE_SLICE_H

#include <stddef.h>
#include <stdint.h>

/* How many of n items a call dt nanoseconds after the previous one visits; *credit keeps the
 * remainder between calls (start it at 0). */
static inline size_t mqo_slice_share(uint64_t *credit, size_t n, uint64_t dt, uint64_t period)
{
    *credit += (uint64_t)n * dt;
    uint64_t k = *credit / period;
    *credit %= period;
    if (k >= n) {
        *credit = 0;
        return n;
    }
    return (size_t)k;
}

#endif
