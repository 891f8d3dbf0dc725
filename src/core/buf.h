/* Growable byte buffer. An all-zero struct is a valid empty buffer.
 *
 * Consuming from the front only moves `data` forward (head counts the bytes before it in the
 * allocation); the bytes are moved back to the start when the room is needed and at most as
 * many bytes move as were consumed since, so a queue that is appended at the back and consumed
 * at the front costs O(1) per byte (a memmove per consume was quadratic: a TCP output queue of
 * megabytes acknowledged a segment at a time). */
#ifndef MQO_CORE_BUF_H
#define MQO_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mqo_buf {
    uint8_t *data;
    size_t len; /* bytes held, starting at data */
    size_t cap; /* bytes allocated */
    size_t head; /* bytes consumed in front of data: the allocation starts at data - head */
};

/* Makes room for n more bytes. Returns 0, or -ENOMEM with the buffer unchanged. The capacity
 * is a power of two of at least 64 bytes, except an empty buffer's first allocation of more
 * than 64 bytes: it is n rounded up to what the malloc chunk holds (at most the power of two). */
int mqo_buf_reserve(struct mqo_buf *b, size_t n);
/* Appends n bytes. Returns 0, or -ENOMEM with the buffer unchanged. */
int mqo_buf_append(struct mqo_buf *b, const void *p, size_t n);
/* Drops the first n bytes (n <= len). */
void mqo_buf_consume(struct mqo_buf *b, size_t n);
/* Releases the memory; the buffer is empty and valid afterwards. */
void mqo_buf_free(struct mqo_buf *b);

/* Bytes that can be appended without reallocating or moving. */
static inline size_t mqo_buf_room(const struct mqo_buf *b) { return b->cap - b->head - b->len; }

#endif
