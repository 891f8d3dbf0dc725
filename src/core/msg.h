/* Refcounted immutable byte block: one serialized packet shared by every connection that sends
 * it (fan-out). Not thread-safe: a message belongs to the thread of the engine that made it. */
#ifndef MQO_CORE_MSG_H
#define MQO_CORE_MSG_H

#include <stddef.h>
#include <stdint.h>

struct mqo_msg {
    uint32_t refs;
    uint32_t len;
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
