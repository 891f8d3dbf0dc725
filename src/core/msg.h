/* Refcounted immutable byte block: one serialized packet shared by every connection that sends
 * it (fan-out). Not thread-safe: a message belongs to the thread of the engine that made it. */
#ifndef MQO_CORE_MSG_H
#define MQO_CORE_MSG_H

#include <stddef.h>
#include <stdint.h>

struct mqo_msg {
    uint32_t refs;
    uint32_t len;
    /* A cache for the layers above (tcp/: the Internet checksum accumulator of data[0..len),
     * so a fan-out checksums its payload once). Valid when sum_ok; data must not change after
     * it is set. mqo_msg_new() clears sum_ok. */
    uint32_t sum;
    uint8_t sum_ok;
    uint8_t data[];
};

/* Returns a message of len bytes (contents uninitialised) holding one reference, NULL on ENOMEM. */
struct mqo_msg *mqo_msg_new(size_t len);
/* Returns a message holding a copy of p[0..len). */
struct mqo_msg *mqo_msg_dup(const void *p, size_t len);

static inline struct mqo_msg *mqo_msg_ref(struct mqo_msg *m)
{
    m->refs++;
    return m;
}
/* Drops one reference; frees the message with the last one. NULL is ignored. */
void mqo_msg_unref(struct mqo_msg *m);

#endif
