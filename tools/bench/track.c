/* mqoff-bench accounting.
 *
 * Routing (documented in --help): publisher j publishes on topic bench/tK with K = j % T.
 * Subscriber i subscribes to bench/t(i % T) (exact), bench/+ (plus) or bench/# (hash). So a
 * message on topic K is expected at every subscriber i with i % T == K (exact), or at all M
 * subscribers (plus, hash). With --decoys D each subscriber also holds D filters that match
 * no published topic (mqb_sub_filter): they change no expectation. A server that matched one
 * anyway would deliver a message to a subscriber that should not get it (misrouted, with
 * exact filters) or a second copy to one that should (dup).
 *
 * Per message (publisher, seq) the bench counts distinct deliveries; the first one gives the
 * first-subscriber latency, the one that brings the count to the expected number gives the
 * last-subscriber latency. Messages that never reach that number are lost (the shortfall is
 * counted in deliveries). Per (publisher, subscriber) pair a 64-wide window behind the highest
 * sequence seen tells duplicates from late (reordered) arrivals; a delivery older than the
 * window is a reorder unless its message is already complete, then a duplicate.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t mqb_expect(const struct mqb_cfg *c, unsigned topic)
{
    if (c->filter != MQB_EXACT)
        return c->subs;
    return c->subs / c->topics + (topic < c->subs % c->topics ? 1 : 0);
}

/* Decoy kinds, by (j - 1) % 8; n = i * D + j - 1 is unique per decoy of the run, J = i % T the
 * subscriber's own topic. Published topics are exactly STR/tK (two levels, K < T in decimal),
 * and none of these matches one:
 *   0 STR/t<T+n>      exact, a sibling of the real topics: an index >= T nobody publishes on
 *   1 STR/tJ/d<n>     exact, one level below the subscriber's own topic (three levels)
 *   2 STR/+/d<n>      '+' at level 2, three levels
 *   3 +/d<n>          '+' at level 1; level 2 is d<n>, never tK
 *   4 STR/tJ/d<n>/#   '#' below the own topic: matches STR/tJ/d<n> and deeper, never STR/tJ
 *                     (STR/tJ/# would: '#' also matches its parent level)
 *   5 STR/d<n>/#      '#' under a level no topic has
 *   6 STR/d<n>/+/e    '+' in the middle, four levels
 *   7 +/+/d<n>/#      two '+' levels then '#': three levels or more
 * No decoy starts with '$' and no topic does (the prefix is [A-Za-z0-9_-]), so the $-rule plays
 * no part: a broker's $SYS topics match none of them either (wildcard-first filters never match
 * a $ topic, the others start with STR). */
int mqb_sub_filter(const struct mqb_cfg *c, unsigned i, unsigned j, char *out, size_t cap)
{
    const char *x = c->prefix;
    if (j == 0) {
        switch (c->filter) {
        case MQB_PLUS: return snprintf(out, cap, "%s/+", x);
        case MQB_HASH: return snprintf(out, cap, "%s/#", x);
        default: return snprintf(out, cap, "%s/t%u", x, i % c->topics);
        }
    }
    unsigned long long n = (unsigned long long)i * c->decoys + (j - 1);
    unsigned own = i % c->topics;
    switch ((j - 1) % 8) {
    case 0: return snprintf(out, cap, "%s/t%llu", x, n + c->topics);
    case 1: return snprintf(out, cap, "%s/t%u/d%llu", x, own, n);
    case 2: return snprintf(out, cap, "%s/+/d%llu", x, n);
    case 3: return snprintf(out, cap, "+/d%llu", n);
    case 4: return snprintf(out, cap, "%s/t%u/d%llu/#", x, own, n);
    case 5: return snprintf(out, cap, "%s/d%llu/#", x, n);
    case 6: return snprintf(out, cap, "%s/d%llu/+/e", x, n);
    default: return snprintf(out, cap, "+/+/d%llu/#", n);
    }
}

int mqb_track_init(struct mqb *b)
{
    const struct mqb_cfg *c = &b->cfg;
    for (unsigned i = 0; i < c->subs; i++) {
        struct mqb_sub *s = &b->subs[i];
        unsigned k = i % c->topics;
        s->npairs = c->filter == MQB_EXACT ? c->pubs / c->topics + (k < c->pubs % c->topics ? 1 : 0) : c->pubs;
        if (s->npairs && !(s->pairs = calloc(s->npairs, sizeof *s->pairs)))
            return -ENOMEM;
    }
    return 0;
}

void mqb_track_free(struct mqb *b)
{
    for (unsigned i = 0; b->subs && i < b->cfg.subs; i++)
        free(b->subs[i].pairs);
    for (unsigned j = 0; b->pubs && j < b->cfg.pubs; j++) {
        struct mqb_pub *p = &b->pubs[j];
        free(p->cnt);
        free(p->mwin);
        for (int k = 0; k < MQB_TAPS; k++) {
            free(p->tapd[k].cnt);
            free(p->tapd[k].t0);
            free(p->tapd[k].tmax);
        }
        free(p->tr_sched);
        free(p->tr_sent);
        free(p->tr_first);
        free(p->tr_last);
        free(p->tmpl);
        free(p->pid_used);
    }
}

static int grow(void **pp, size_t old, size_t cap, size_t elem)
{
    void *n = realloc(*pp, cap * elem);
    if (!n)
        return -ENOMEM;
    memset((char *)n + old * elem, 0, (cap - old) * elem);
    *pp = n;
    return 0;
}

int mqb_track_reserve(struct mqb *b, struct mqb_pub *p, uint64_t seq)
{
    if (seq < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 1024;
    while (cap <= seq)
        cap *= 2;
    if (grow((void **)&p->cnt, p->cap, cap, sizeof *p->cnt) ||
        grow((void **)&p->mwin, p->cap, cap, sizeof *p->mwin))
        return -ENOMEM;
    for (int k = 0; k < MQB_TAPS; k++)
        if (b->wire[k].tap && (grow((void **)&p->tapd[k].cnt, p->cap, cap, sizeof *p->tapd[k].cnt) ||
                               grow((void **)&p->tapd[k].t0, p->cap, cap, sizeof *p->tapd[k].t0) ||
                               grow((void **)&p->tapd[k].tmax, p->cap, cap, sizeof *p->tapd[k].tmax)))
            return -ENOMEM;
    if (b->cfg.trace && (grow((void **)&p->tr_sched, p->cap, cap, sizeof *p->tr_sched) ||
                         grow((void **)&p->tr_sent, p->cap, cap, sizeof *p->tr_sent) ||
                         grow((void **)&p->tr_first, p->cap, cap, sizeof *p->tr_first) ||
                         grow((void **)&p->tr_last, p->cap, cap, sizeof *p->tr_last)))
        return -ENOMEM;
    p->cap = cap;
    return 0;
}

unsigned mqb_track_window(struct mqb *b, struct mqb_pub *p, uint64_t t)
{
    while (p->win + 1 < b->nwin && t >= b->win[p->win].end)
        p->win++;
    return p->win;
}

void mqb_track_sent(struct mqb *b, struct mqb_pub *p, uint64_t seq, uint64_t sched, uint64_t now)
{
    unsigned w = mqb_track_window(b, p, sched);
    struct mqb_win *W = &b->win[w];
    p->cnt[seq] = 0;
    p->mwin[seq] = (uint8_t)w;
    W->sent++;
    W->expected += p->expect;
    b->outstanding += p->expect;
    for (int k = 0; k < MQB_TAPS; k++)
        if (b->wire[k].tap)
            b->wire[k].outstanding += p->expect;
    if (b->cfg.qos)
        b->qos1_sent++;
    if (p->tr_sent) {
        p->tr_sched[seq] = sched;
        p->tr_sent[seq] = now;
    }
    if (W->measured)
        mqo_hist_record(&W->send_lag, now > sched ? now - sched : 0);
}

/* 0: new, in order; 1: new, late (reordered); 2: duplicate; 3: too old to tell */
static int pair_note(struct mqb_pair *q, uint64_t seq)
{
    if (seq >= q->hi) {
        uint64_t shift = seq + 1 - q->hi;
        q->seen = (q->hi == 0 || shift >= 64) ? 1 : (q->seen << shift) | 1;
        q->hi = seq + 1;
        return 0;
    }
    uint64_t d = q->hi - 1 - seq;
    if (d >= 64)
        return 3;
    if ((q->seen >> d) & 1)
        return 2;
    q->seen |= UINT64_C(1) << d;
    return 1;
}

void mqb_track_delivery(struct mqb *b, struct mqb_sub *s, const uint8_t *topic, size_t topic_len,
                        const uint8_t *payload, size_t len, uint64_t now)
{
    const struct mqb_cfg *c = &b->cfg;
    struct mqo_stamp st;
    if (mqo_stamp_get(payload, len, &st)) {
        b->bad_payload++;
        return;
    }
    if (st.run != b->run) {
        b->stray++;
        return;
    }
    if (st.pub >= c->pubs || st.seq >= b->pubs[st.pub].seq) {
        b->unexpected++;
        return;
    }
    struct mqb_pub *p = &b->pubs[st.pub];
    if (len != c->size) {
        b->bad_payload++;
        return;
    }
    if (topic_len != p->topic_len || memcmp(topic, p->topic_s, topic_len) ||
        (c->filter == MQB_EXACT && s->c.idx % c->topics != p->topic)) {
        b->misrouted++;
        return;
    }
    unsigned pi = c->filter == MQB_EXACT ? st.pub / c->topics : st.pub;
    if (pi >= s->npairs) {
        b->misrouted++;
        return;
    }
    struct mqb_win *W = &b->win[p->mwin[st.seq]];
    int k = pair_note(&s->pairs[pi], st.seq);
    if (k == 2 || (k == 3 && p->cnt[st.seq] >= p->expect)) {
        W->dup++;
        return;
    }
    if (k != 0)
        W->reorder++;
    if (p->cnt[st.seq] >= p->expect) { /* cannot happen with a correct pair window */
        W->dup++;
        return;
    }
    uint32_t n = ++p->cnt[st.seq];
    W->delivered++;
    if (p->tr_first) {
        if (n == 1)
            p->tr_first[st.seq] = now;
        if (n == p->expect)
            p->tr_last[st.seq] = now;
    }
    if (b->outstanding)
        b->outstanding--;
    if (!W->measured)
        return;
    uint64_t lat = now > st.sched_ns ? now - st.sched_ns : 0;
    mqo_hist_record(&W->delivery, lat);
    if (n == 1)
        mqo_hist_record(&W->first, lat);
    if (n == p->expect) {
        mqo_hist_record(&W->last, lat);
        W->complete++;
    }
}

static void tap_done(struct mqb *b, int idx, struct mqb_pub *p, uint64_t seq)
{
    struct mqb_win *W = &b->win[p->mwin[seq]];
    if (W->measured) {
        uint64_t t0 = p->tapd[idx].t0[seq], t1 = p->tapd[idx].tmax[seq];
        mqo_hist_record(&W->tap_last[idx], t1 > t0 ? t1 - t0 : 0);
    }
}

void mqb_track_tap(struct mqb *b, int idx, const uint8_t *payload, size_t len, uint64_t ts, int start)
{
    struct mqo_stamp st;
    struct mqb_wire *w = &b->wire[idx];
    if (mqo_stamp_get(payload, len, &st) || st.run != b->run || st.pub >= b->cfg.pubs ||
        st.seq >= b->pubs[st.pub].seq || !b->pubs[st.pub].tapd[idx].cnt) {
        w->unmatched++;
        return;
    }
    struct mqb_pub *p = &b->pubs[st.pub];
    uint32_t *cnt = p->tapd[idx].cnt;
    uint64_t *t0 = p->tapd[idx].t0, *tmax = p->tapd[idx].tmax;
    uint64_t q = st.seq;
    if (ts == 0)
        ts = 1; /* 0 marks "not seen" */
    if (start) {
        if (t0[q])
            return;
        t0[q] = ts;
        if (cnt[q] >= p->expect && p->expect) /* deliveries seen first: odd, but count */
            tap_done(b, idx, p, q);
        return;
    }
    if (cnt[q] >= p->expect)
        return; /* a copy the subscriber-side accounting calls a duplicate */
    cnt[q]++;
    if (ts > tmax[q])
        tmax[q] = ts;
    if (w->outstanding)
        w->outstanding--;
    if (cnt[q] == p->expect && t0[q])
        tap_done(b, idx, p, q);
}
