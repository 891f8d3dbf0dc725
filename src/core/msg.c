#include "core/msg.h"

#include <stdlib.h>
#include <string.h>

struct mqo_msg *mqo_msg_new(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    struct mqo_msg *m = malloc(sizeof *m + len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->sum = 0;
    m->sum_ok = 0;
    return m;
}

struct mqo_msg *mqo_msg_dup(const void *p, size_t len)
{
    struct mqo_msg *m = mqo_msg_new(len);
    if (m && len)
        memcpy(m->data, p, len);
    return m;
}

void mqo_msg_unref(struct mqo_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}
