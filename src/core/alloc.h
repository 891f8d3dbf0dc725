/* The allocator's settings for the offload's process (docs/ARCHITECTURE.md, "The allocator").
 *
 * glibc's malloc gives a block above its mmap threshold pages of its own and returns the heap's
 * free top to the kernel once it passes the trim threshold; both thresholds move with the
 * largest mmap'd block freed. A fan-out allocates each subscriber's output while it is in
 * transit and frees it when acknowledged, so a burst (a backlog of several large messages)
 * grows the heap by megabytes and frees them together: with glibc's defaults that top went back
 * to the kernel after every burst and was faulted in again by the next, a page at a time
 * (several microseconds a fault on a paravirtualized guest). mqo_alloc_setup fixes the mmap
 * threshold at MQO_ALLOC_MMAP_THRESHOLD and the trim threshold at MQO_ALLOC_TRIM_THRESHOLD: the
 * free top stays mapped until it reaches that size, and then goes back to the kernel whole
 * (glibc trims down to its top pad), so what is kept stays below it. */
#ifndef MQO_CORE_ALLOC_H
#define MQO_CORE_ALLOC_H

#define MQO_ALLOC_MMAP_THRESHOLD (4 << 20)
#define MQO_ALLOC_TRIM_THRESHOLD (64 << 20)

/* Applies the settings, unless the operator set the allocator up through the environment:
 * GLIBC_TUNABLES naming a glibc.malloc. setting, or one of glibc's MALLOC_*_ variables for the
 * thresholds (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_MAX_).
 * Returns 1 when applied, 0 when left to the environment, -1 when the allocator refused one
 * (not glibc's, or a sanitizer's). */
int mqo_alloc_setup(void);

#endif
