/* Micro-benchmark: subscription trie vs a naive linear matcher.
 *
 * 100k subscriptions from 10k owners over "site/N/device/M/sensor/K" (100 sites x 100 devices x
 * 10 sensors): 70% exact, 20% with one '+' level, 10% ending in '#'. A stream of PUBLISH topics
 * from the same space is matched by mqo_trie_match and by mqo_topic_matches over every filter.
 * Prints matches (PUBLISH topics resolved) per second for both and their ratio, and checks that
 * both find the same number of matching subscriptions on the topics both ran.
 *
 * Usage: topic_match [subscriptions [trie_topics]]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topic/topic.h"

#define SITES 100
#define DEVICES 100
#define SENSORS 10
#define OWNERS 10000
#define NAIVE_MAX_TOPICS 2000
#define NAIVE_MAX_SECONDS 5.0
#define TRIE_MAX_SECONDS 5.0

struct filt {
    char s[48];
    size_t len;
    void *owner;
};

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)((rs >> 32) % n);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void make_filter(char *s, size_t cap)
{
    unsigned n = rnd(SITES), m = rnd(DEVICES), k = rnd(SENSORS), p = rnd(100);
    if (p < 70) {
        snprintf(s, cap, "site/%u/device/%u/sensor/%u", n, m, k);
    } else if (p < 90) {
        switch (rnd(4)) {
        case 0: snprintf(s, cap, "site/+/device/%u/sensor/%u", m, k); break;
        case 1: snprintf(s, cap, "site/%u/device/+/sensor/%u", n, k); break;
        case 2: snprintf(s, cap, "site/%u/+/%u/sensor/%u", n, m, k); break;
        default: snprintf(s, cap, "site/%u/device/%u/sensor/+", n, m); break;
        }
    } else {
        switch (rnd(3)) {
        case 0: snprintf(s, cap, "site/%u/#", n); break;
        case 1: snprintf(s, cap, "site/%u/device/%u/#", n, m); break;
        default: snprintf(s, cap, "site/%u/device/%u/sensor/%u/#", n, m, k); break;
        }
    }
}

int main(int argc, char **argv)
{
    size_t nsubs = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t ntrie = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;
    enum { NTOPICS = 1 << 16 };

    char *owners = malloc(OWNERS);
    struct filt *fs = malloc(nsubs * sizeof *fs);
    char(*topics)[48] = malloc((size_t)NTOPICS * sizeof *topics);
    size_t *tlen = malloc(NTOPICS * sizeof *tlen);
    struct mqo_trie *t = mqo_trie_new();
    if (!owners || !fs || !topics || !tlen || !t) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    /* subscriptions; a repeated (filter, owner) pair replaces, so keep only the new ones */
    size_t nf = 0, n_exact = 0, n_plus = 0, n_hash = 0;
    double t0 = now();
    for (size_t i = 0; i < nsubs; i++) {
        struct filt *f = &fs[nf];
        make_filter(f->s, sizeof f->s);
        f->len = strlen(f->s);
        f->owner = owners + rnd(OWNERS);
        struct mqo_sub_opts o = {.qos = (uint8_t)rnd(3)};
        size_t before = mqo_trie_count(t);
        if (mqo_trie_add(t, (const uint8_t *)f->s, f->len, f->owner, &o) != 0) {
            fprintf(stderr, "add failed: %s\n", f->s);
            return 1;
        }
        if (mqo_trie_count(t) != before) {
            nf++;
            if (memchr(f->s, '#', f->len))
                n_hash++;
            else if (memchr(f->s, '+', f->len))
                n_plus++;
            else
                n_exact++;
        }
    }
    double t_add = now() - t0;

    for (size_t i = 0; i < NTOPICS; i++) {
        snprintf(topics[i], sizeof topics[i], "site/%u/device/%u/sensor/%u", rnd(SITES), rnd(DEVICES),
                 rnd(SENSORS));
        tlen[i] = strlen(topics[i]);
    }
    printf("subscriptions: %zu (%zu exact, %zu '+', %zu '#'), owners %d, built in %.3f s\n", nf, n_exact,
           n_plus, n_hash, OWNERS, t_add);

    struct mqo_match_set ms = {0};
    /* naive: every filter through mqo_topic_matches */
    size_t nnaive = 0;
    uint64_t naive_hits = 0;
    t0 = now();
    double t_naive = 0;
    while (nnaive < NAIVE_MAX_TOPICS && nnaive < NTOPICS) {
        const uint8_t *tp = (const uint8_t *)topics[nnaive];
        for (size_t k = 0; k < nf; k++)
            naive_hits += (uint64_t)mqo_topic_matches((const uint8_t *)fs[k].s, fs[k].len, tp, tlen[nnaive]);
        nnaive++;
        t_naive = now() - t0;
        if (t_naive > NAIVE_MAX_SECONDS)
            break;
    }

    /* trie on the same topics: the same number of matching subscriptions */
    uint64_t trie_hits = 0;
    for (size_t i = 0; i < nnaive; i++) {
        int r = mqo_trie_match(t, (const uint8_t *)topics[i], tlen[i], NULL, &ms);
        if (r < 0) {
            fprintf(stderr, "match failed\n");
            return 1;
        }
        for (size_t k = 0; k < ms.n; k++)
            trie_hits += ms.v[k].n_subs;
    }

    /* trie: the timed run (stops early after TRIE_MAX_SECONDS on a slow machine) */
    uint64_t owners_hit = 0, subs_hit = 0;
    size_t done = 0;
    t0 = now();
    double t_trie = 0;
    while (done < ntrie) {
        size_t stop = done + 4096 < ntrie ? done + 4096 : ntrie;
        for (; done < stop; done++) {
            size_t j = done & (NTOPICS - 1);
            int r = mqo_trie_match(t, (const uint8_t *)topics[j], tlen[j], NULL, &ms);
            owners_hit += (uint64_t)r;
            for (size_t k = 0; k < ms.n; k++)
                subs_hit += ms.v[k].n_subs;
        }
        t_trie = now() - t0;
        if (t_trie > TRIE_MAX_SECONDS)
            break;
    }
    ntrie = done;

    double trie_rate = (double)ntrie / t_trie, naive_rate = (double)nnaive / t_naive;
    printf("trie : %zu matches in %.3f s = %.0f matches/s (%.2f owners, %.2f subscriptions per match)\n",
           ntrie, t_trie, trie_rate, (double)owners_hit / (double)ntrie, (double)subs_hit / (double)ntrie);
    printf("naive: %zu matches in %.3f s = %.0f matches/s\n", nnaive, t_naive, naive_rate);
    printf("ratio: trie is %.0fx faster\n", trie_rate / naive_rate);
    printf("check: %llu matching subscriptions (naive) vs %llu (trie) over the same %zu topics: %s\n",
           (unsigned long long)naive_hits, (unsigned long long)trie_hits, nnaive,
           naive_hits == trie_hits ? "equal" : "DIFFERENT");

    mqo_match_set_free(&ms);
    mqo_trie_free(t);
    free(tlen);
    free(topics);
    free(fs);
    free(owners);
    return naive_hits == trie_hits ? 0 : 1;
}
