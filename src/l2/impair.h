/* l2/impair: a seeded, reproducible impairment stage for frames passing one way between two
 * ports (the kernel here has no tc netem). One struct mqo_impair per direction.
 *
 * No I/O, no clock, no frame memory: items are opaque pointers and time is passed in, so a
 * test drives it deterministically. Per frame the caller asks for its fate, then queues it
 * (twice for a duplicate, the second a copy the caller made), and later takes out what is due:
 *
 *     int n = mqo_impair_fate(im);          0 lose it, 1 send it, 2 send it and a copy
 *     for each of the n: mqo_impair_enqueue(im, item_or_copy, now);
 *     ... k = mqo_impair_dequeue(im, now, out, max);   out[0..k) are due, in send order
 *     poll timeout: mqo_impair_next(im) - now
 *
 * Effects, each drawn independently per frame from its own PRNG stream (xoshiro256** seeded
 * through splitmix64), so changing one probability does not change the others' choices:
 *   loss=P     the frame is lost (P in percent, 0..100)
 *   dup=P      the frame is sent twice (the copy follows the original)
 *   reorder=P  the frame is held back and released right after the next `gap` frames have been
 *              queued (gap=N, default 1), or after hold=MS (default 10 ms) if they do not come
 *   delay=MS   every frame waits MS milliseconds (fractions allowed) ...
 *   jitter=MS  ... plus a uniform offset in [-MS, +MS] (clamped at 0 total). As with netem,
 *              jitter alone reorders frames whose times cross.
 *   seed=N     PRNG seed (default 1); the same seed and inputs give the same outputs.
 *   limit=N    frames the stage may hold (default 10000); enqueue fails beyond it.
 *   frag=SIZE  an IPv4 datagram with more than SIZE bytes of IP payload (total length less
 *              the header) leaves as fragments of at most SIZE payload bytes each, rounded
 *              down to a multiple of 8 (8..65535; 0, the default: none). DF is ignored (a
 *              test device). The stage itself does not split: its caller does, before asking
 *              each fragment's fate (l2/frag.h mqo_frag_split_*), so fragments are lost,
 *              duplicated and reordered one by one.
 * Without delay, jitter and reorder, a frame is due at once (dequeue right after enqueue).
 */
#ifndef MQO_L2_IMPAIR_H
#define MQO_L2_IMPAIR_H

#include <stddef.h>
#include <stdint.h>

struct mqo_impair_cfg {
    double loss, dup, reorder; /* percent, 0..100 */
    uint64_t delay_ns, jitter_ns, hold_ns;
    uint32_t gap;   /* reorder: frames to let pass first, >= 1 */
    uint32_t limit; /* frames held at most */
    uint64_t seed;
    uint32_t frag;  /* IP payload bytes per fragment at most; 0: no fragmentation */
};

struct mqo_impair_stats {
    uint64_t in, lost, duped, reordered, delayed, out, overflow;
};

struct mqo_impair;

/* Fills cfg with the defaults (no impairment, seed 1, gap 1, hold 10 ms, limit 10000). */
void mqo_impair_cfg_init(struct mqo_impair_cfg *cfg);

/* Parses "key=value,key=value" (keys above; whitespace around items allowed; "" and "none"
 * mean no impairment) on top of the defaults. Returns 0, or -EINVAL with a message naming the
 * key and the problem in err. */
int mqo_impair_parse(const char *spec, struct mqo_impair_cfg *cfg, char *err, size_t errlen);

/* Writes the cfg in spec syntax (round-trips through mqo_impair_parse). */
void mqo_impair_format(const struct mqo_impair_cfg *cfg, char *buf, size_t len);

/* 1 if the cfg changes anything. */
int mqo_impair_active(const struct mqo_impair_cfg *cfg);

/* stream selects an independent PRNG sequence for the same seed (e.g. 0 for a->b, 1 for b->a).
 * Returns NULL when out of memory. */
struct mqo_impair *mqo_impair_new(const struct mqo_impair_cfg *cfg, uint64_t stream);
/* Frees the stage; items still held are the caller's (take them with mqo_impair_drain first). */
void mqo_impair_free(struct mqo_impair *im);

/* The fate of the next frame: 0 lost, 1 pass, 2 duplicated. */
int mqo_impair_fate(struct mqo_impair *im);

/* Queues item at now_ns (times must not go backwards). Returns 0, or -ENOBUFS when limit
 * items are held (the caller keeps the item). */
int mqo_impair_enqueue(struct mqo_impair *im, void *item, uint64_t now_ns);

/* Stores up to n items due at now_ns into v, in send order. Returns how many; their ownership
 * goes back to the caller. */
int mqo_impair_dequeue(struct mqo_impair *im, uint64_t now_ns, void **v, int n);

/* The earliest time an item becomes due, UINT64_MAX when none is held. */
uint64_t mqo_impair_next(const struct mqo_impair *im);

/* Items held. */
unsigned mqo_impair_held(const struct mqo_impair *im);

/* Takes out up to n held items regardless of time, in send order. Returns how many. */
int mqo_impair_drain(struct mqo_impair *im, void **v, int n);

void mqo_impair_get_stats(const struct mqo_impair *im, struct mqo_impair_stats *st);

/* The PRNG, exposed for tests and tools: xoshiro256** seeded with splitmix64. */
struct mqo_rng {
    uint64_t s[4];
};
void mqo_rng_seed(struct mqo_rng *r, uint64_t seed);
uint64_t mqo_rng_next(struct mqo_rng *r);
/* Uniform in [0, 1). */
double mqo_rng_unit(struct mqo_rng *r);

#endif
