/* Growable byte buffer. An all-zero struct is a valid empty buffer. */
#ifndef MQO_CORE_BUF_H
#define MQO_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mqo_buf {
    uint8_t *data;
    size_t len; /* bytes held, starting at data */
    size_t cap; /* bytes allocated */
};

/* Makes room for n more bytes. Returns 0, or -ENOMEM with the buffer unchanged. */
int mqo_buf_reserve(struct mqo_buf *b, size_t n);
/* Appends n bytes. Returns 0, or -ENOMEM with the buffer unchanged. */
int mqo_buf_append(struct mqo_buf *b, const void *p, size_t n);
/* Drops the first n bytes (n <= len). */
void mqo_buf_consume(struct mqo_buf *b, size_t n);
/* Releases the memory; the buffer is empty and valid afterwards. */
void mqo_buf_free(struct mqo_buf *b);

static inline size_t mqo_buf_room(const struct mqo_buf *b) { return b->cap - b->len; }

#endif
