/* Log-linear histogram with a fixed relative error (HdrHistogram-style), for latencies.
 *
 * Values are unsigned integers (callers use nanoseconds). Values below MQO_HIST_SUB are kept
 * exactly; above, each power-of-two range [2^k, 2^(k+1)) is cut into MQO_HIST_SUB linear
 * sub-buckets of width 2^(k - MQO_HIST_SUB_BITS). A bucket's width is
 * therefore at most 1/MQO_HIST_SUB (0.78%) of the values it holds, and a percentile, reported as
 * the middle of its bucket, is within half of that (0.4%) of the exact order statistic.
 *
 * Range: 0 .. MQO_HIST_MAX (2^37 - 1, 137 s in ns). Larger values are clamped to MQO_HIST_MAX
 * for the buckets and counted in `clamped`; min, max and the mean use the value as recorded.
 *
 * An all-zero struct is a valid empty histogram. It is ~32 KiB: embed or allocate, do not put
 * many on a small stack.
 */
#ifndef MQO_CORE_HIST_H
#define MQO_CORE_HIST_H

#include <stdint.h>

#define MQO_HIST_SUB_BITS 7
#define MQO_HIST_SUB (1u << MQO_HIST_SUB_BITS) /* 128 sub-buckets per power of two */
#define MQO_HIST_TOP_BIT 37                    /* highest value bit + 1 */
#define MQO_HIST_MAX ((UINT64_C(1) << MQO_HIST_TOP_BIT) - 1)
/* Exact buckets 0..SUB-1, then one group of SUB per power of two from 2^SUB_BITS upwards. */
#define MQO_HIST_BUCKETS (MQO_HIST_SUB * (MQO_HIST_TOP_BIT - MQO_HIST_SUB_BITS + 1))

struct mqo_hist {
    uint64_t count;   /* values recorded */
    uint64_t clamped; /* values above MQO_HIST_MAX (counted in the top bucket) */
    uint64_t min;     /* valid when count > 0 */
    uint64_t max;
    double sum;       /* for the mean */
    uint64_t b[MQO_HIST_BUCKETS];
};

/* Bucket index of v (v clamped to MQO_HIST_MAX). */
unsigned mqo_hist_index(uint64_t v);
/* Lowest value of bucket i, and the bucket's width (1 for the exact buckets). */
uint64_t mqo_hist_bucket_lo(unsigned i);
uint64_t mqo_hist_bucket_width(unsigned i);

/* Records v once / n times. */
void mqo_hist_record(struct mqo_hist *h, uint64_t v);
void mqo_hist_record_n(struct mqo_hist *h, uint64_t v, uint64_t n);
/* Adds every value of src to dst. */
void mqo_hist_merge(struct mqo_hist *dst, const struct mqo_hist *src);
/* Empties h. */
void mqo_hist_reset(struct mqo_hist *h);

/* Value at percentile p (0..100): the smallest recorded value v such that at least p% of the
 * values are <= v, within the relative error above. Reported as the middle of its bucket,
 * clamped to [min, max], so percentile 100 is max and percentile 0 is min.
 * Returns 0 for an empty histogram. */
uint64_t mqo_hist_percentile(const struct mqo_hist *h, double p);
/* Mean of the recorded values, 0 when empty. */
double mqo_hist_mean(const struct mqo_hist *h);

#endif
