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
    size_t cap = b->cap ? b->cap : 64; /* a CONNACK or SUBACK needs a few bytes */
    while (cap - b->head - b->len < n)
        cap *= 2;
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
