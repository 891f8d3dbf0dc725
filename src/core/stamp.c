#include "core/stamp.h"

#include <errno.h>

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void mqo_stamp_put(uint8_t *out, const struct mqo_stamp *s)
{
    out[0] = 'M';
    out[1] = 'Q';
    out[2] = 'B';
    out[3] = MQO_STAMP_VERSION;
    put32(out + 4, s->run);
    put32(out + 8, s->pub);
    put64(out + 12, s->seq);
    put64(out + 20, s->sched_ns);
    put32(out + 28, fnv1a(out, 28));
}

int mqo_stamp_get(const uint8_t *p, size_t n, struct mqo_stamp *s)
{
    if (!p || n < MQO_STAMP_LEN || p[0] != 'M' || p[1] != 'Q' || p[2] != 'B')
        return -EINVAL;
    if (p[3] != MQO_STAMP_VERSION)
        return -EPROTONOSUPPORT;
    if (get32(p + 28) != fnv1a(p, 28))
        return -EINVAL;
    s->run = get32(p + 4);
    s->pub = get32(p + 8);
    s->seq = get64(p + 12);
    s->sched_ns = get64(p + 20);
    return 0;
}
