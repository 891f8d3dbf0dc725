#include "core/hist.h"

#include <string.h>

unsigned mqo_hist_index(uint64_t v)
{
    if (v > MQO_HIST_MAX)
        v = MQO_HIST_MAX;
    if (v < MQO_HIST_SUB)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* 2^k <= v < 2^(k+1), k >= SUB_BITS */
    unsigned shift = k - MQO_HIST_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) - MQO_HIST_SUB;
    return MQO_HIST_SUB * (shift + 1) + sub;
}

uint64_t mqo_hist_bucket_lo(unsigned i)
{
    if (i < MQO_HIST_SUB)
        return i;
    unsigned g = i / MQO_HIST_SUB; /* 1.. : shift + 1 */
    uint64_t sub = i % MQO_HIST_SUB;
    return (MQO_HIST_SUB + sub) << (g - 1);
}

uint64_t mqo_hist_bucket_width(unsigned i)
{
    if (i < MQO_HIST_SUB)
        return 1;
    return UINT64_C(1) << (i / MQO_HIST_SUB - 1);
}

void mqo_hist_record_n(struct mqo_hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (h->count == 0 || v > h->max)
        h->max = v;
    if (v > MQO_HIST_MAX)
        h->clamped += n;
    h->count += n;
    h->sum += (double)v * (double)n;
    h->b[mqo_hist_index(v)] += n;
}

void mqo_hist_record(struct mqo_hist *h, uint64_t v) { mqo_hist_record_n(h, v, 1); }

void mqo_hist_merge(struct mqo_hist *dst, const struct mqo_hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->clamped += src->clamped;
    dst->sum += src->sum;
    for (unsigned i = 0; i < MQO_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

void mqo_hist_reset(struct mqo_hist *h) { memset(h, 0, sizeof *h); }

uint64_t mqo_hist_percentile(const struct mqo_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0)) /* also NaN */
        return h->min;
    if (p >= 100)
        return h->max;
    /* rank: the smallest r with r >= p% of count, at least 1 */
    double want = p * (double)h->count / 100.0;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < MQO_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = mqo_hist_bucket_lo(i) + (mqo_hist_bucket_width(i) - 1) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

double mqo_hist_mean(const struct mqo_hist *h) { return h->count ? h->sum / (double)h->count : 0; }
