#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mqo_buf_reserve(struct mqo_buf *b, size_t n)
{
    if (b->cap - b->head - b->len >= n)
        return 0;
    uint8_t *base = b->data ? b->data - b->head : NULL; /* no arithmetic on NULL */
    /* move the bytes to the front when that makes the room and they are no more than what
     * was consumed (amortized: each consumed byte pays for one moved byte) */
    if (b->head && b->cap - b->len >= n && b->len <= b->head) {
        memmove(base, b->data, b->len);
        b->data = base;
        b->head = 0;
        return 0;
    }
    if (n > SIZE_MAX / 2 - b->len - b->head)
        return -ENOMEM;
    /* Powers of two from 64 (a CONNACK or SUBACK needs a few bytes), so that a limit of 256
     * bytes times a power of two bounds the allocation (the splice's max_queue). An empty
     * buffer's first allocation of more than 64 bytes is only as long as the malloc chunk that
     * holds n: a connection with one packet in transit (a fan-out's delivery) holds no slack. */
    size_t need = b->head + b->len + n, cap = 64;
    while (cap < need)
        cap *= 2;
    if (!b->cap && n > 64) {
        size_t fit = ((n + 8 + 15) & ~(size_t)15) - 8; /* glibc: 8-byte header, 16-byte chunks */
        if (fit < cap)
            cap = fit;
    }
    uint8_t *d = realloc(b->data ? base : NULL, cap);
    if (!d)
        return -ENOMEM;
    b->data = d + b->head;
    b->cap = cap;
    return 0;
}

int mqo_buf_append(struct mqo_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = mqo_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void mqo_buf_consume(struct mqo_buf *b, size_t n)
{
    if (n >= b->len) { /* empty: back to the start */
        if (b->data)
            b->data -= b->head;
        b->head = 0;
        b->len = 0;
        return;
    }
    b->data += n;
    b->head += n;
    b->len -= n;
}

void mqo_buf_free(struct mqo_buf *b)
{
    free(b->data ? b->data - b->head : NULL);
    b->data = NULL;
    b->len = b->cap = b->head = 0;
}
