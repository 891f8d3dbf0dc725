/* libFuzzer target: the input is a script of add / del / match operations on small filters and
 * topics; the trie is checked after every step against a naive model (a list of subscriptions
 * matched one by one with mqo_topic_matches). Any difference aborts.
 *
 * Script: a sequence of operations, each an op byte followed by its operands:
 *   op % 4 == 0  add     filter, owner byte, options byte, sub-id byte
 *   op % 4 == 1  del     filter, owner byte               (often absent)
 *   op % 4 == 2  match   topic, self byte
 *   op % 4 == 3  del the model's subscription number (byte % n)
 * A filter is a shape byte (levels 1..4, optional $share/g1/ or $share/g2/ prefix) followed by
 * one byte per level choosing from a small vocabulary (empty, '$' levels, '+', '#', levels
 * longer than the trie's inline key, and enough names to make child tables). A topic is the
 * same without wildcards and without the share prefix.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXSUBS 128
#define NOWNERS 6

static const char *const vocab[] = {
    "",   "a",  "b",  "$a", "$",  "+",  "#",  "ab", "+",  "#", "level-longer-than-inline", "level-longer-than-inlinX",
    "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11",
};
#define NVOCAB (sizeof vocab / sizeof *vocab)

struct msub {
    char f[160];
    size_t len;
    int owner;
    struct mqo_sub_opts o;
};

struct rd {
    const uint8_t *p;
    size_t n;
};

static int next(struct rd *r, uint8_t *b)
{
    if (r->n == 0)
        return 0;
    *b = *r->p++;
    r->n--;
    return 1;
}

static int read_levels(struct rd *r, char *out, size_t cap, int topic)
{
    uint8_t shape, b;
    if (!next(r, &shape))
        return 0;
    out[0] = 0;
    if (!topic && (shape >> 2 & 3) >= 2)
        strcat(out, (shape >> 2 & 3) == 2 ? "$share/g1/" : "$share/g2/");
    int nl = 1 + (shape & 3);
    for (int k = 0; k < nl; k++) {
        if (!next(r, &b))
            return 0;
        const char *l = vocab[b % NVOCAB];
        if (topic && (l[0] == '+' || l[0] == '#'))
            l = "c5";
        if (k)
            strcat(out, "/");
        if (strlen(out) + strlen(l) + 1 >= cap)
            return 0;
        strcat(out, l);
    }
    return 1;
}

static char owners[NOWNERS];

static void fail(const char *what, const char *s)
{
    fprintf(stderr, "fuzz_topic: %s ('%s')\n", what, s);
    abort();
}

struct agg {
    int present;
    uint8_t qos, rap;
    uint32_t n_subs, flags, n_ids;
    uint64_t id_sum;
};

static void check_match(const struct mqo_trie *t, const struct msub *m, size_t nm, const char *topic, int self,
                        struct mqo_match_set *ms)
{
    struct agg want[NOWNERS];
    memset(want, 0, sizeof want);
    size_t tl = strlen(topic);
    int nwant = 0;
    for (size_t i = 0; i < nm; i++) {
        const uint8_t *g, *in;
        size_t gl, il;
        if (mqo_topic_share_split((const uint8_t *)m[i].f, m[i].len, &g, &gl, &in, &il) != 1) {
            in = (const uint8_t *)m[i].f;
            il = m[i].len;
        }
        if (!mqo_topic_matches(in, il, (const uint8_t *)topic, tl))
            continue;
        if (m[i].o.no_local && m[i].owner == self)
            continue;
        struct agg *a = &want[m[i].owner];
        if (!a->present)
            nwant++;
        a->present = 1;
        if (m[i].o.qos > a->qos)
            a->qos = m[i].o.qos;
        a->rap |= m[i].o.rap ? 1 : 0;
        a->n_subs++;
        a->flags |= m[i].o.flags;
        if (m[i].o.sub_id) {
            a->n_ids++;
            a->id_sum += m[i].o.sub_id;
        }
    }
    int r = mqo_trie_match(t, (const uint8_t *)topic, tl, self >= 0 ? &owners[self] : NULL, ms);
    if (r != nwant || ms->n != (size_t)nwant)
        fail("owner count differs", topic);
    size_t ids = 0;
    for (size_t k = 0; k < ms->n; k++) {
        const struct mqo_match *x = &ms->v[k];
        uint32_t nid;
        const uint32_t *xid = mqo_match_ids(ms, k, &nid);
        ptrdiff_t o = (const char *)x->owner - owners;
        if (o < 0 || o >= NOWNERS || !want[o].present)
            fail("unexpected owner", topic);
        struct agg *a = &want[o];
        a->present = 0; /* a second entry for the same owner fails above */
        if (x->qos != a->qos || x->rap != a->rap || x->n_subs != a->n_subs || x->flags != a->flags ||
            nid != a->n_ids)
            fail("aggregate differs", topic);
        if ((size_t)x->ids_at + nid > ms->n_ids)
            fail("sub ids out of range", topic);
        uint64_t sum = 0;
        for (uint32_t j = 0; j < nid; j++)
            sum += xid[j];
        if (sum != a->id_sum)
            fail("sub ids differ", topic);
        ids += nid;
    }
    if (ids != ms->n_ids)
        fail("id count differs", topic);
}

static int walk_count(void *arg, const uint8_t *filter, size_t len, void *owner, const struct mqo_sub_opts *o)
{
    (void)filter;
    (void)len;
    (void)owner;
    (void)o;
    (*(size_t *)arg)++;
    return 0;
}

static long find(const struct msub *m, size_t nm, const char *f, size_t len, int owner)
{
    for (size_t i = 0; i < nm; i++)
        if (m[i].owner == owner && m[i].len == len && memcmp(m[i].f, f, len) == 0)
            return (long)i;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct msub m[MAXSUBS];
    size_t nm = 0;
    struct rd r = {data, size};
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    if (!t)
        return 0;
    uint8_t op, b1, b2, b3;
    char s[160];
    while (next(&r, &op)) {
        switch (op % 4) {
        case 0: {
            if (!read_levels(&r, s, sizeof s, 0) || !next(&r, &b1) || !next(&r, &b2) || !next(&r, &b3))
                goto done;
            size_t len = strlen(s);
            int owner = b1 % NOWNERS;
            struct mqo_sub_opts o = {.qos = (uint8_t)(b2 % 3), .no_local = (uint8_t)(b2 >> 2 & 1),
                                     .rap = (uint8_t)(b2 >> 3 & 1), .rh = (uint8_t)(b2 >> 4 & 3),
                                     .sub_id = b3 % 5, .flags = (uint32_t)(b2 >> 6) * MQO_SUB_HELD};
            int valid = mqo_topic_filter_valid((const uint8_t *)s, len) == 0;
            long at = find(m, nm, s, len, owner);
            if (valid && at < 0 && nm == MAXSUBS)
                break;
            int rc = mqo_trie_add(t, (const uint8_t *)s, len, &owners[owner], &o);
            if (!valid) {
                if (rc != -EINVAL)
                    fail("invalid filter accepted", s);
                break;
            }
            if (rc != 0)
                fail("add failed", s);
            const uint8_t *g, *in;
            size_t gl, il;
            int sh = mqo_topic_share_split((const uint8_t *)s, len, &g, &gl, &in, &il) == 1;
            o.flags = (o.flags & ~MQO_SUB_SHARED) | (sh ? MQO_SUB_SHARED : 0u);
            if (at < 0) {
                at = (long)nm++;
                memcpy(m[at].f, s, len);
                m[at].len = len;
                m[at].owner = owner;
            }
            m[at].o = o;
            struct mqo_sub_opts got;
            if (mqo_trie_get(t, (const uint8_t *)s, len, &owners[owner], &got) != 1 ||
                memcmp(&got, &o, sizeof got) != 0)
                fail("get differs after add", s);
            break;
        }
        case 1: {
            if (!read_levels(&r, s, sizeof s, 0) || !next(&r, &b1))
                goto done;
            size_t len = strlen(s);
            int owner = b1 % NOWNERS;
            long at = find(m, nm, s, len, owner);
            int rc = mqo_trie_del(t, (const uint8_t *)s, len, &owners[owner]);
            if (rc != (at < 0 ? -ENOENT : 0))
                fail("del result differs", s);
            if (at >= 0)
                m[at] = m[--nm];
            break;
        }
        case 2: {
            if (!read_levels(&r, s, sizeof s, 1) || !next(&r, &b1))
                goto done;
            int self = b1 % (NOWNERS + 1) - 1;
            check_match(t, m, nm, s, self, &ms);
            break;
        }
        default: {
            if (!next(&r, &b1))
                goto done;
            if (!nm)
                break;
            size_t k = b1 % nm;
            if (mqo_trie_del(t, (const uint8_t *)m[k].f, m[k].len, &owners[m[k].owner]) != 0)
                fail("del of a present subscription failed", m[k].f);
            if (mqo_trie_get(t, (const uint8_t *)m[k].f, m[k].len, &owners[m[k].owner], NULL) != 0)
                fail("get finds a deleted subscription", m[k].f);
            m[k] = m[--nm];
            break;
        }
        }
        if (mqo_trie_count(t) != nm)
            fail("count differs", "");
    }
done:;
    size_t walked = 0;
    mqo_trie_walk(t, walk_count, &walked);
    if (walked != nm)
        fail("walk count differs", "");
    /* a final sweep of fixed topics */
    static const char *const topics[] = {"a", "/", "a/b", "$a", "$/a", "c5/c5", "a//", "ab/c0/c1/c2",
                                         "level-longer-than-inline", "level-longer-than-inlinX/a"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        check_match(t, m, nm, topics[i], -1, &ms);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
    return 0;
}
