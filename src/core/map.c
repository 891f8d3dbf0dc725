#include "core/map.h"

#include <errno.h>
#include <stdlib.h>

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t mqo_hash64_begin(uint64_t seed) { return 0xcbf29ce484222325ULL ^ seed; }

uint64_t mqo_hash64_update(uint64_t state, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        state ^= b[i];
        state *= 0x100000001b3ULL;
    }
    return state;
}

uint64_t mqo_hash64_end(uint64_t state) { return mix(state); }

uint64_t mqo_hash64(const void *p, size_t n, uint64_t seed)
{
    return mqo_hash64_end(mqo_hash64_update(mqo_hash64_begin(seed), p, n));
}

static size_t find(const struct mqo_map *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = mix(key) & mask;
    while (m->slots[i].k1 && m->slots[i].k1 != key + 1)
        i = (i + 1) & mask;
    return i;
}

int mqo_map_get(const struct mqo_map *m, uint64_t key, uint64_t *val)
{
    if (m->n == 0)
        return 0;
    size_t i = find(m, key);
    if (!m->slots[i].k1)
        return 0;
    if (val)
        *val = m->slots[i].val;
    return 1;
}

static int grow(struct mqo_map *m)
{
    if (m->cap > UINT32_MAX / 2)
        return -ENOMEM;
    uint32_t cap = m->cap ? m->cap * 2 : 8;
    struct mqo_map_slot *s = calloc(cap, sizeof *s);
    if (!s)
        return -ENOMEM;
    struct mqo_map old = *m;
    m->slots = s;
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].k1) {
            size_t j = find(m, old.slots[i].k1 - 1);
            m->slots[j] = old.slots[i];
            m->n++;
        }
    free(old.slots);
    return 0;
}

int mqo_map_put(struct mqo_map *m, uint64_t key, uint64_t val)
{
    if (key == UINT64_MAX)
        return -EINVAL;
    if (m->cap) {
        size_t i = find(m, key);
        if (m->slots[i].k1) {
            m->slots[i].val = val;
            return 0;
        }
    }
    if ((m->n + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t i = find(m, key);
    m->slots[i] = (struct mqo_map_slot){.k1 = key + 1, .val = val};
    m->n++;
    return 0;
}

int mqo_map_del(struct mqo_map *m, uint64_t key)
{
    if (m->n == 0)
        return 0;
    if (key == UINT64_MAX)
        return 0;
    size_t mask = m->cap - 1, i = find(m, key);
    if (!m->slots[i].k1)
        return 0;
    /* backward-shift deletion: move later members of the probe run into the hole */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].k1)
            break;
        size_t home = mix(m->slots[j].k1 - 1) & mask;
        /* slot j may move to i when its home is not in (i, j] cyclically */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].k1 = 0;
    m->n--;
    return 1;
}

void mqo_map_free(struct mqo_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

void mqo_map_each(const struct mqo_map *m, void (*fn)(void *arg, uint64_t key, uint64_t val),
                  void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].k1)
            fn(arg, m->slots[i].k1 - 1, m->slots[i].val);
}
