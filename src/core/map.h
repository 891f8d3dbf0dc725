/* Open-addressing hash map from uint64_t keys to uint64_t values (linear probing, deletion by
 * backward shift, so no tombstones). An all-zero struct is a valid empty map. Used for packet
 * identifier tables and connection ids, where keys are small and lookups are hot. Keys are
 * below UINT64_MAX (a slot keeps key + 1, 0 marking it free: 16 bytes a slot). */
#ifndef MQO_CORE_MAP_H
#define MQO_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct mqo_map_slot {
    uint64_t k1; /* key + 1, 0: free (mqo_map_slot_used, mqo_map_slot_key) */
    uint64_t val;
};

static inline int mqo_map_slot_used(const struct mqo_map_slot *s) { return s->k1 != 0; }
static inline uint64_t mqo_map_slot_key(const struct mqo_map_slot *s) { return s->k1 - 1; }

struct mqo_map {
    struct mqo_map_slot *slots;
    uint32_t cap; /* power of two, or 0 (32 bits: a connection carries five maps) */
    uint32_t n;
};

/* Returns 1 and *val (if val) when key is present, else 0. */
int mqo_map_get(const struct mqo_map *m, uint64_t key, uint64_t *val);
/* Inserts or replaces. Returns 0, or -ENOMEM with the map unchanged (-EINVAL for the key
 * UINT64_MAX). */
int mqo_map_put(struct mqo_map *m, uint64_t key, uint64_t val);
/* Removes key. Returns 1 when it was present, else 0. */
int mqo_map_del(struct mqo_map *m, uint64_t key);
void mqo_map_free(struct mqo_map *m);
/* Calls fn(arg, key, val) for each entry; the map must not change meanwhile. */
void mqo_map_each(const struct mqo_map *m, void (*fn)(void *arg, uint64_t key, uint64_t val),
                  void *arg);

/* 64-bit hash of bytes (FNV-1a, then a finalizer). */
uint64_t mqo_hash64(const void *p, size_t n, uint64_t seed);
/* The same hash over bytes that arrive in pieces: state = begin(seed), update it with every
 * piece in order, end(state) equals mqo_hash64 of the whole, however the bytes were split. */
uint64_t mqo_hash64_begin(uint64_t seed);
uint64_t mqo_hash64_update(uint64_t state, const void *p, size_t n);
uint64_t mqo_hash64_end(uint64_t state);

#endif
