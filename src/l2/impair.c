/* l2/impair: see impair.h.
 *
 * Due items live in a binary min-heap ordered by (due time, sequence number): the sequence
 * number is taken at enqueue, so equal times leave in arrival order and the order is fully
 * deterministic. Frames held for reordering wait in a FIFO beside the heap, counting down the
 * frames that pass after them; when the count reaches 0 they enter the heap with the due time of
 * the frame that released them and the next sequence number, i.e. right behind it.
 */
#include "l2/impair.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG -------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void mqo_rng_seed(struct mqo_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mqo_rng_next(struct mqo_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double mqo_rng_unit(struct mqo_rng *r) { return (double)(mqo_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- config ------------------------------------------------------------------------------ */

#define MS 1000000ull

void mqo_impair_cfg_init(struct mqo_impair_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->gap = 1;
    cfg->hold_ns = 10 * MS;
    cfg->limit = 10000;
    cfg->seed = 1;
}

int mqo_impair_active(const struct mqo_impair_cfg *cfg)
{
    return cfg->loss > 0 || cfg->dup > 0 || cfg->reorder > 0 || cfg->delay_ns || cfg->jitter_ns ||
           cfg->frag;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || d != d || d > 1e300 || d < -1e300)
        return -1;
    *out = d;
    return 0;
}

static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (end == v || *end || errno)
        return -1;
    *out = x;
    return 0;
}

#define KEYS "loss, dup, reorder, gap, hold, delay, jitter, seed, limit, frag"

int mqo_impair_parse(const char *spec, struct mqo_impair_cfg *cfg, char *err, size_t errlen)
{
    struct mqo_impair_cfg c;
    mqo_impair_cfg_init(&c);
    char buf[512];
    if (strlen(spec) >= sizeof buf) {
        snprintf(err, errlen, "impairment spec longer than %zu characters", sizeof buf - 1);
        return -EINVAL;
    }
    strcpy(buf, spec);
    unsigned seen = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        char *e = item + strlen(item);
        while (e > item && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        if (!*item)
            continue;
        if (!strcmp(item, "none"))
            continue;
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(err, errlen, "'%.40s': expected key=value (keys: " KEYS ")", item);
            return -EINVAL;
        }
        *eq = 0;
        const char *k = item, *v = eq + 1;
        static const char *const names[] = {"loss",  "dup",    "reorder", "gap",  "hold",
                                            "delay", "jitter", "seed",    "limit", "frag"};
        unsigned ki = 0;
        while (ki < sizeof names / sizeof *names && strcmp(names[ki], k))
            ki++;
        if (ki == sizeof names / sizeof *names) {
            snprintf(err, errlen, "unknown key '%.40s' (keys: " KEYS ")", k);
            return -EINVAL;
        }
        if (seen & (1u << ki)) {
            snprintf(err, errlen, "%s: given twice", k);
            return -EINVAL;
        }
        seen |= 1u << ki;
        double d;
        uint64_t u;
        switch (ki) {
        case 0:
        case 1:
        case 2:
            if (parse_double(v, &d) || d < 0 || d > 100) {
                snprintf(err, errlen, "%s: '%.40s' is not a percentage 0..100", k, v);
                return -EINVAL;
            }
            *(ki == 0 ? &c.loss : ki == 1 ? &c.dup : &c.reorder) = d;
            break;
        case 3:
            if (parse_u64(v, &u) || u < 1 || u > 1000) {
                snprintf(err, errlen, "%s: '%.40s' is not a frame count 1..1000", k, v);
                return -EINVAL;
            }
            c.gap = (uint32_t)u;
            break;
        case 4:
        case 5:
        case 6:
            if (parse_double(v, &d) || d < 0 || d > 60000) {
                snprintf(err, errlen, "%s: '%.40s' is not a time in ms 0..60000", k, v);
                return -EINVAL;
            }
            *(ki == 4 ? &c.hold_ns : ki == 5 ? &c.delay_ns : &c.jitter_ns) =
                (uint64_t)(d * 1e6 + 0.5);
            break;
        case 7:
            if (parse_u64(v, &u)) {
                snprintf(err, errlen, "%s: '%.40s' is not an unsigned integer", k, v);
                return -EINVAL;
            }
            c.seed = u;
            break;
        case 8:
            if (parse_u64(v, &u) || u < 1 || u > 1000000) {
                snprintf(err, errlen, "%s: '%.40s' is not a frame count 1..1000000", k, v);
                return -EINVAL;
            }
            c.limit = (uint32_t)u;
            break;
        case 9:
            if (parse_u64(v, &u) || (u && u < 8) || u > 65535) {
                snprintf(err, errlen, "%s: '%.40s' is not a payload size 8..65535 (0: none)", k,
                         v);
                return -EINVAL;
            }
            c.frag = (uint32_t)u;
            break;
        }
    }
    *cfg = c;
    return 0;
}

void mqo_impair_format(const struct mqo_impair_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "loss=%.17g,dup=%.17g,reorder=%.17g,gap=%u,hold=%.15g,delay=%.15g,jitter=%.15g,"
             "seed=%llu,limit=%u,frag=%u",
             c->loss, c->dup, c->reorder, c->gap, (double)c->hold_ns / 1e6,
             (double)c->delay_ns / 1e6, (double)c->jitter_ns / 1e6, (unsigned long long)c->seed,
             c->limit, c->frag);
}

/* ---- the stage --------------------------------------------------------------------------- */

struct ent {
    uint64_t due, seq;
    void *item;
};

struct held {
    void *item;
    uint64_t deadline;
    uint32_t left; /* frames still to pass before it */
};

enum { RNG_LOSS, RNG_DUP, RNG_REORDER, RNG_JITTER, RNG__N };

struct mqo_impair {
    struct mqo_impair_cfg cfg;
    struct mqo_rng rng[RNG__N];
    struct ent *heap;
    uint32_t nheap;
    struct held *hq; /* FIFO ring of reorder-held frames, cfg.limit slots */
    uint32_t hq_head, nheld;
    uint64_t seq;
    struct mqo_impair_stats st;
};

struct mqo_impair *mqo_impair_new(const struct mqo_impair_cfg *cfg, uint64_t stream)
{
    struct mqo_impair *im = calloc(1, sizeof *im);
    if (!im)
        return NULL;
    im->cfg = *cfg;
    if (im->cfg.limit == 0)
        im->cfg.limit = 1;
    if (im->cfg.gap == 0)
        im->cfg.gap = 1;
    uint64_t x = cfg->seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < RNG__N; i++)
        mqo_rng_seed(&im->rng[i], splitmix64(&x));
    im->heap = calloc(im->cfg.limit, sizeof *im->heap);
    im->hq = calloc(im->cfg.limit, sizeof *im->hq);
    if (!im->heap || !im->hq) {
        mqo_impair_free(im);
        return NULL;
    }
    return im;
}

void mqo_impair_free(struct mqo_impair *im)
{
    if (!im)
        return;
    free(im->heap);
    free(im->hq);
    free(im);
}

static inline int chance(struct mqo_rng *r, double pct)
{
    double u = mqo_rng_unit(r); /* drawn always: streams stay aligned with the frames */
    return pct > 0 && u * 100.0 < pct;
}

int mqo_impair_fate(struct mqo_impair *im)
{
    im->st.in++;
    int lost = chance(&im->rng[RNG_LOSS], im->cfg.loss);
    int dup = chance(&im->rng[RNG_DUP], im->cfg.dup);
    if (lost) {
        im->st.lost++;
        return 0;
    }
    if (dup) {
        im->st.duped++;
        return 2;
    }
    return 1;
}

static inline int ent_less(const struct ent *a, const struct ent *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_push(struct mqo_impair *im, void *item, uint64_t due)
{
    uint32_t i = im->nheap++;
    struct ent e = {due, im->seq++, item};
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!ent_less(&e, &im->heap[p]))
            break;
        im->heap[i] = im->heap[p];
        i = p;
    }
    im->heap[i] = e;
}

static void *heap_pop(struct mqo_impair *im)
{
    void *item = im->heap[0].item;
    struct ent last = im->heap[--im->nheap];
    uint32_t i = 0, n = im->nheap;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && ent_less(&im->heap[c + 1], &im->heap[c]))
            c++;
        if (!ent_less(&im->heap[c], &last))
            break;
        im->heap[i] = im->heap[c];
        i = c;
    }
    if (n)
        im->heap[i] = last;
    return item;
}

static struct held *hq_at(struct mqo_impair *im, uint32_t k)
{
    return &im->hq[(im->hq_head + k) % im->cfg.limit];
}

static void hq_release_front(struct mqo_impair *im, uint64_t due)
{
    struct held *h = hq_at(im, 0);
    heap_push(im, h->item, due);
    im->hq_head = (im->hq_head + 1) % im->cfg.limit;
    im->nheld--;
}

int mqo_impair_enqueue(struct mqo_impair *im, void *item, uint64_t now)
{
    double uj = mqo_rng_unit(&im->rng[RNG_JITTER]);
    int reorder = chance(&im->rng[RNG_REORDER], im->cfg.reorder);
    if (im->nheap + im->nheld >= im->cfg.limit) {
        im->st.overflow++;
        return -ENOBUFS;
    }
    if (reorder) {
        struct held *h = hq_at(im, im->nheld++);
        h->item = item;
        h->deadline = now + im->cfg.hold_ns;
        h->left = im->cfg.gap;
        im->st.reordered++;
        return 0;
    }
    int64_t d = (int64_t)im->cfg.delay_ns;
    if (im->cfg.jitter_ns)
        {
        double j = (uj * 2.0 - 1.0) * (double)im->cfg.jitter_ns; /* no libm: round by hand */
        d += (int64_t)(j < 0 ? j - 0.5 : j + 0.5);
    }
    if (d < 0)
        d = 0;
    if (d > 0)
        im->st.delayed++;
    uint64_t due = now + (uint64_t)d;
    heap_push(im, item, due);
    /* Held frames count this one; those whose count ends go right behind it. They were held in
     * arrival order with the same gap, so counts end front first. */
    for (uint32_t k = 0; k < im->nheld; k++)
        hq_at(im, k)->left--;
    while (im->nheld && hq_at(im, 0)->left == 0)
        hq_release_front(im, due);
    return 0;
}

int mqo_impair_dequeue(struct mqo_impair *im, uint64_t now, void **v, int n)
{
    /* deadlines are in arrival order: the front expires first */
    while (im->nheld && hq_at(im, 0)->deadline <= now)
        hq_release_front(im, hq_at(im, 0)->deadline);
    int k = 0;
    while (k < n && im->nheap && im->heap[0].due <= now)
        v[k++] = heap_pop(im);
    im->st.out += (uint64_t)k;
    return k;
}

uint64_t mqo_impair_next(const struct mqo_impair *im)
{
    uint64_t t = UINT64_MAX;
    if (im->nheap)
        t = im->heap[0].due;
    if (im->nheld) {
        uint64_t d = im->hq[im->hq_head].deadline;
        if (d < t)
            t = d;
    }
    return t;
}

unsigned mqo_impair_held(const struct mqo_impair *im) { return im->nheap + im->nheld; }

int mqo_impair_drain(struct mqo_impair *im, void **v, int n)
{
    while (im->nheld)
        hq_release_front(im, hq_at(im, 0)->deadline);
    int k = 0;
    while (k < n && im->nheap)
        v[k++] = heap_pop(im);
    im->st.out += (uint64_t)k;
    return k;
}

void mqo_impair_get_stats(const struct mqo_impair *im, struct mqo_impair_stats *st)
{
    *st = im->st;
}
