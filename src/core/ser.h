/* Little-endian writer and bounds-checked reader for state snapshots (engine/snap.c, the
 * modes' takeover). The writer appends to a mqo_buf and remembers the first failure; the reader
 * never reads past its bytes: once a read fails, every later read returns zeros and `err`
 * stays set, so a parser checks once at the end of a record. An all-zero writer or reader (with
 * its pointer set) is valid. */
#ifndef MQO_CORE_SER_H
#define MQO_CORE_SER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"

struct mqo_wr {
    struct mqo_buf *b;
    int err; /* -ENOMEM after a failed append */
};

static inline void mqo_wr_bytes_raw(struct mqo_wr *w, const void *p, size_t n)
{
    if (!w->err && n && mqo_buf_append(w->b, p, n))
        w->err = -12; /* -ENOMEM */
}
static inline void mqo_wr_u8(struct mqo_wr *w, uint8_t v) { mqo_wr_bytes_raw(w, &v, 1); }
static inline void mqo_wr_u16(struct mqo_wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    mqo_wr_bytes_raw(w, b, 2);
}
static inline void mqo_wr_u32(struct mqo_wr *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    mqo_wr_bytes_raw(w, b, 4);
}
static inline void mqo_wr_u64(struct mqo_wr *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    mqo_wr_bytes_raw(w, b, 8);
}
/* A length (u32) then the bytes. */
static inline void mqo_wr_blob(struct mqo_wr *w, const void *p, size_t n)
{
    mqo_wr_u32(w, (uint32_t)n);
    mqo_wr_bytes_raw(w, p, n);
}

struct mqo_rd {
    const uint8_t *p;
    size_t n, off;
    int err; /* 1 after a read past the end or a value out of range */
};

static inline const uint8_t *mqo_rd_raw(struct mqo_rd *r, size_t n)
{
    if (r->err || n > r->n - r->off) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}
static inline uint8_t mqo_rd_u8(struct mqo_rd *r)
{
    const uint8_t *p = mqo_rd_raw(r, 1);
    return p ? p[0] : 0;
}
static inline uint16_t mqo_rd_u16(struct mqo_rd *r)
{
    const uint8_t *p = mqo_rd_raw(r, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}
static inline uint32_t mqo_rd_u32(struct mqo_rd *r)
{
    const uint8_t *p = mqo_rd_raw(r, 4);
    uint32_t v = 0;
    for (int i = 3; p && i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static inline uint64_t mqo_rd_u64(struct mqo_rd *r)
{
    const uint8_t *p = mqo_rd_raw(r, 8);
    uint64_t v = 0;
    for (int i = 7; p && i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
/* A blob of at most max bytes: returns its bytes (NULL when empty or on error), *len. */
static inline const uint8_t *mqo_rd_blob(struct mqo_rd *r, size_t max, size_t *len)
{
    uint32_t n = mqo_rd_u32(r);
    *len = 0;
    if (r->err)
        return NULL;
    if (n > max) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = mqo_rd_raw(r, n);
    if (p)
        *len = n;
    return n ? p : NULL;
}
/* A count of records of at least min_rec bytes each: fails when the rest cannot hold them (a
 * corrupt count never makes the parser allocate more than the input justifies). */
static inline uint32_t mqo_rd_count(struct mqo_rd *r, size_t min_rec)
{
    uint32_t n = mqo_rd_u32(r);
    if (!r->err && min_rec && n > (r->n - r->off) / min_rec)
        r->err = 1;
    return r->err ? 0 : n;
}

#endif
