#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mqo_buf_reserve(struct mqo_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
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
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void mqo_buf_free(struct mqo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
