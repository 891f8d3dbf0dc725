/* topic/: the subscription trie, checked against a naive scan with mqo_topic_matches. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "topic/topic.h"

#define U(s) ((const uint8_t *)(s))
#define S(s) U(s), strlen(s)

/* ---- allocation failure injection (glibc without ASan: forwards to glibc's allocator) ---- */

#include "../asan.h"

#if defined(__GLIBC__) && !defined(MQO_TEST_ASAN)
#define HAVE_FAILMALLOC 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long fail_after = -1; /* allocations to let through before failing; -1: never fail */
static long n_allocs;        /* allocations seen */

static int alloc_fails(void)
{
    n_allocs++;
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}
void *malloc(size_t n) { return alloc_fails() ? NULL : __libc_malloc(n); }
void *calloc(size_t n, size_t m) { return alloc_fails() ? NULL : __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { return alloc_fails() ? NULL : __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
#endif

/* Match m's subscription identifiers (mqo_match_ids): how many, and where. */
static uint32_t nids(const struct mqo_match_set *ms, const struct mqo_match *m)
{
    uint32_t n;
    (void)mqo_match_ids(ms, (size_t)(m - ms->v), &n);
    return n;
}
static const uint32_t *ids_of(const struct mqo_match_set *ms, const struct mqo_match *m)
{
    uint32_t n;
    return mqo_match_ids(ms, (size_t)(m - ms->v), &n);
}

/* ---- owners and a reference model ---- */

static char owners[256];
#define OW(k) ((void *)&owners[(k)])

struct rsub {
    char f[96];
    size_t len;
    void *owner;
    struct mqo_sub_opts o;
};

struct ref {
    struct rsub *v;
    size_t n, cap;
};

static struct mqo_sub_opts opts(uint8_t qos, uint32_t sub_id, uint8_t no_local, uint8_t rap, uint32_t flags)
{
    struct mqo_sub_opts o = {.qos = qos, .no_local = no_local, .rap = rap, .rh = 0, .sub_id = sub_id, .flags = flags};
    return o;
}

static const char *inner(const char *f, size_t len, size_t *ilen, int *shared)
{
    const uint8_t *g, *in;
    size_t gl;
    if (mqo_topic_share_split(U(f), len, &g, &gl, &in, ilen) == 1) {
        *shared = 1;
        return (const char *)in;
    }
    *shared = 0;
    *ilen = len;
    return f;
}

static struct rsub *ref_find(struct ref *r, const char *f, size_t len, void *owner)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].owner == owner && r->v[i].len == len && memcmp(r->v[i].f, f, len) == 0)
            return &r->v[i];
    return NULL;
}

static void ref_add(struct ref *r, const char *f, void *owner, struct mqo_sub_opts o)
{
    size_t len = strlen(f), il;
    int sh;
    inner(f, len, &il, &sh);
    o.flags = (o.flags & ~MQO_SUB_SHARED) | (sh ? MQO_SUB_SHARED : 0u);
    struct rsub *s = ref_find(r, f, len, owner);
    if (!s) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->v = realloc(r->v, r->cap * sizeof *r->v);
            assert_non_null(r->v);
        }
        s = &r->v[r->n++];
        assert_true(len < sizeof s->f);
        memcpy(s->f, f, len);
        s->len = len;
        s->owner = owner;
    }
    s->o = o;
}

static int ref_del(struct ref *r, const char *f, void *owner)
{
    struct rsub *s = ref_find(r, f, strlen(f), owner);
    if (!s)
        return -ENOENT;
    *s = r->v[--r->n];
    return 0;
}

/* Adds to both. */
static void both_add(struct mqo_trie *t, struct ref *r, const char *f, void *owner, struct mqo_sub_opts o)
{
    assert_int_equal(mqo_trie_add(t, S(f), owner, &o), 0);
    ref_add(r, f, owner, o);
    assert_int_equal(mqo_trie_count(t), r->n);
}

static void both_del(struct mqo_trie *t, struct ref *r, const char *f, void *owner)
{
    int want = ref_del(r, f, owner);
    assert_int_equal(mqo_trie_del(t, S(f), owner), want);
    assert_int_equal(mqo_trie_count(t), r->n);
}

struct exp {
    void *owner;
    uint8_t qos, rap;
    uint32_t n_subs, flags;
    uint32_t ids[256];
    uint32_t n_ids;
    int seen;
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Naive scan: every subscription, mqo_topic_matches on its inner filter. */
static size_t ref_match(const struct ref *r, const char *topic, size_t tlen, const void *self, struct exp *e,
                        size_t emax)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct rsub *s = &r->v[i];
        size_t il;
        int sh;
        const char *in = inner(s->f, s->len, &il, &sh);
        if (!mqo_topic_matches(U(in), il, U(topic), tlen))
            continue;
        if (s->o.no_local && s->owner == self)
            continue;
        size_t k = 0;
        while (k < n && e[k].owner != s->owner)
            k++;
        if (k == n) {
            assert_true(n < emax);
            memset(&e[n], 0, sizeof e[n]);
            e[n].owner = s->owner;
            n++;
        }
        if (s->o.qos > e[k].qos)
            e[k].qos = s->o.qos;
        e[k].rap |= s->o.rap ? 1 : 0;
        e[k].n_subs++;
        e[k].flags |= s->o.flags;
        if (s->o.sub_id) {
            assert_true(e[k].n_ids < 256);
            e[k].ids[e[k].n_ids++] = s->o.sub_id;
        }
    }
    return n;
}

/* Matches topic in the trie and compares with the naive scan. Returns the number of owners. */
static size_t check_topic_len(const struct mqo_trie *t, const struct ref *r, const char *topic, size_t tlen,
                              const void *self, struct mqo_match_set *ms)
{
    static struct exp e[256];
    size_t ne = ref_match(r, topic, tlen, self, e, 256);
    int got = mqo_trie_match(t, U(topic), tlen, self, ms);
    if (got < 0 || (size_t)got != ne)
        fail_msg("topic '%.*s': trie %d owners, naive %zu", (int)tlen, topic, got, ne);
    assert_int_equal(ms->n, ne);
    size_t total_ids = 0;
    for (size_t i = 0; i < ms->n; i++) {
        const struct mqo_match *m = &ms->v[i];
        size_t k = 0;
        while (k < ne && e[k].owner != m->owner)
            k++;
        if (k == ne || e[k].seen)
            fail_msg("topic '%.*s': unexpected or duplicate owner", (int)tlen, topic);
        e[k].seen = 1;
        assert_int_equal(m->qos, e[k].qos);
        assert_int_equal(m->rap, e[k].rap);
        assert_int_equal(m->n_subs, e[k].n_subs);
        assert_int_equal(m->flags, e[k].flags);
        assert_int_equal(nids(ms, m), e[k].n_ids);
        assert_true((size_t)m->ids_at + nids(ms, m) <= ms->n_ids);
        uint32_t got_ids[256];
        if (nids(ms, m))
            memcpy(got_ids, ids_of(ms, m), nids(ms, m) * sizeof *got_ids);
        qsort(got_ids, nids(ms, m), sizeof *got_ids, cmp_u32);
        qsort(e[k].ids, e[k].n_ids, sizeof *e[k].ids, cmp_u32);
        assert_memory_equal(got_ids, e[k].ids, nids(ms, m) * sizeof *got_ids);
        total_ids += nids(ms, m);
    }
    assert_int_equal(total_ids, ms->n_ids);
    return ne;
}

static size_t check_topic(const struct mqo_trie *t, const struct ref *r, const char *topic, const void *self,
                          struct mqo_match_set *ms)
{
    return check_topic_len(t, r, topic, strlen(topic), self, ms);
}

/* Match result of one owner, NULL when absent. */
static const struct mqo_match *find_owner(const struct mqo_match_set *ms, const void *owner)
{
    for (size_t i = 0; i < ms->n; i++)
        if (ms->v[i].owner == owner)
            return &ms->v[i];
    return NULL;
}

static int n_match(const struct mqo_trie *t, const char *topic, struct mqo_match_set *ms)
{
    return mqo_trie_match(t, S(topic), NULL, ms);
}

/* ---- tests ---- */

static void test_empty(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    assert_non_null(t);
    struct mqo_match_set ms = {0};
    assert_int_equal(mqo_trie_count(t), 0);
    assert_int_equal(n_match(t, "a", &ms), 0);
    assert_int_equal(n_match(t, "$SYS/x", &ms), 0);
    assert_int_equal(ms.n, 0);
    assert_int_equal(mqo_trie_del(t, S("a"), OW(0)), -ENOENT);
    assert_int_equal(mqo_trie_get(t, S("a"), OW(0), NULL), 0);
    mqo_match_set_free(&ms);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
    mqo_trie_free(NULL);
    struct mqo_match_set z = {0};
    mqo_match_set_free(&z);
}

/* MQTT 3.1.1 / 5.0 section 4.7 examples, every filter held by its own owner at once. */
static void test_spec_examples(void **state)
{
    (void)state;
    static const char *filters[] = {"sport/tennis/player1/#", "sport/#", "#", "sport/tennis/+", "sport/+", "+",
                                    "/+", "+/+", "+/tennis/#", "sport/+/player1", "$SYS/#", "+/monitor/Clients",
                                    "$SYS/monitor/+", "sport/tennis/player1", "/finance", "sport"};
    static const char *topics[] = {"sport/tennis/player1", "sport/tennis/player1/ranking",
                                   "sport/tennis/player1/score/wimbledon", "sport/tennis/player2", "sport",
                                   "sport/", "/finance", "finance", "sport/tennis", "$SYS/monitor/Clients",
                                   "$SYS", "$SYS/monitor", "a/monitor/Clients", "/", "sports"};
    const size_t nf = sizeof filters / sizeof *filters;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    for (size_t i = 0; i < nf; i++)
        both_add(t, &r, filters[i], OW(i), opts(1, 0, 0, 0, 0));
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        check_topic(t, &r, topics[i], NULL, &ms);

    /* spot checks of the spec's statements */
#define HAS(topic, fi) (n_match(t, topic, &ms) >= 0 && find_owner(&ms, OW(fi)) != NULL)
    assert_true(HAS("sport", 1));                       /* "sport/#" matches "sport" */
    assert_true(HAS("sport/tennis/player1", 0));        /* "sport/tennis/player1/#" matches its parent */
    assert_true(HAS("sport/tennis/player1/score/wimbledon", 0));
    assert_false(HAS("/finance", 5));                   /* "+" not "/finance" */
    assert_true(HAS("/finance", 6));                    /* "/+" */
    assert_true(HAS("/finance", 7));                    /* "+/+" */
    assert_true(HAS("sport/tennis/player1", 8));        /* "+/tennis/#" */
    assert_false(HAS("sport", 4));                      /* "sport/+" not "sport" */
    assert_true(HAS("sport/", 4));                      /* ... but "sport/" */
    assert_false(HAS("$SYS/monitor/Clients", 2));       /* "#" not $ topics */
    assert_false(HAS("$SYS/monitor/Clients", 11));      /* "+/monitor/Clients" neither */
    assert_true(HAS("$SYS/monitor/Clients", 10));       /* "$SYS/#" */
    assert_true(HAS("$SYS/monitor/Clients", 12));       /* "$SYS/monitor/+" */
    assert_true(HAS("a/monitor/Clients", 11));
    assert_true(HAS("a/monitor/Clients", 2));
#undef HAS
    /* "sport+" is not a filter */
    struct mqo_sub_opts o = opts(0, 0, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, S("sport+"), OW(99), &o), -EINVAL);
    assert_int_equal(mqo_trie_add(t, S("sport/tennis#"), OW(99), &o), -EINVAL);
    assert_int_equal(mqo_trie_add(t, S("sport/tennis/#/ranking"), OW(99), &o), -EINVAL);
    assert_int_equal(mqo_trie_add(t, S(""), OW(99), &o), -EINVAL);
    assert_int_equal(mqo_trie_add(t, S("$share/g/"), OW(99), &o), -EINVAL);
    assert_int_equal(mqo_trie_add(t, S("$share/g"), OW(99), &o), -EINVAL);
    assert_int_equal(mqo_trie_count(t), nf);

    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

static void test_empty_levels(void **state)
{
    (void)state;
    static const char *filters[] = {"a//b", "/", "//", "+/+", "+//+", "/#", "+", "a/+/b", "+/", "/+", "a/",
                                    "a/#", "+/+/+", "//#", "#"};
    static const char *topics[] = {"a//b", "a/b", "/", "//", "///", "a/", "a", "/a", "a//", "//b", "", "$/", "$//"};
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        both_add(t, &r, filters[i], OW(i), opts(0, (uint32_t)i + 1, 0, 0, 0));
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        check_topic(t, &r, topics[i], NULL, &ms);
    /* explicit answers */
    assert_int_equal(n_match(t, "/", &ms), 7); /* "/", "+/+", "/#", "+/", "/+", "//#", "#" */
    assert_non_null(find_owner(&ms, OW(1)));  /* "/" */
    assert_null(find_owner(&ms, OW(2)));      /* "//" needs 3 levels */
    assert_null(find_owner(&ms, OW(6)));      /* "+" is one level */
    assert_non_null(find_owner(&ms, OW(13))); /* "//#" matches "/" ("x/#" matches "x") */
    assert_int_equal(n_match(t, "a//b", &ms), 6); /* "a//b", "+//+", "a/+/b", "a/#", "+/+/+", "#" */
    assert_non_null(find_owner(&ms, OW(0)));
    assert_non_null(find_owner(&ms, OW(4)));
    assert_non_null(find_owner(&ms, OW(14)));
    assert_non_null(find_owner(&ms, OW(7)));
    assert_non_null(find_owner(&ms, OW(11)));
    assert_non_null(find_owner(&ms, OW(12)));
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

static void test_hash_alone(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    struct mqo_sub_opts o = opts(2, 7, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, S("#"), OW(1), &o), 0);
    static const char *yes[] = {"a", "/", "a/b/c", "//", "sport/tennis", " "};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        assert_int_equal(n_match(t, yes[i], &ms), 1);
        assert_ptr_equal(ms.v[0].owner, OW(1));
        assert_int_equal(ms.v[0].qos, 2);
        assert_int_equal(ms.v[0].n_subs, 1);
        assert_int_equal(nids(&ms, &ms.v[0]), 1);
        assert_int_equal(ids_of(&ms, &ms.v[0])[0], 7);
    }
    assert_int_equal(n_match(t, "$SYS", &ms), 0);
    assert_int_equal(n_match(t, "$SYS/a", &ms), 0);
    assert_int_equal(n_match(t, "$", &ms), 0);
    assert_int_equal(n_match(t, "a/$SYS", &ms), 1);
    assert_int_equal(mqo_trie_del(t, S("#"), OW(1)), 0);
    assert_int_equal(n_match(t, "a", &ms), 0);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
}

/* One owner, several overlapping filters: one entry, highest QoS, every sub id, OR of flags. */
static void test_overlap_one_owner(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    both_add(t, &r, "a/b", OW(1), opts(0, 1, 0, 0, 0));
    both_add(t, &r, "a/+", OW(1), opts(2, 2, 0, 0, MQO_SUB_USER));
    both_add(t, &r, "#", OW(1), opts(1, 0, 0, 0, 0));
    both_add(t, &r, "a/#", OW(1), opts(1, 3, 0, 1, MQO_SUB_HELD));
    both_add(t, &r, "+/b", OW(1), opts(0, 0, 0, 0, 0));
    both_add(t, &r, "b", OW(1), opts(2, 9, 0, 0, 0)); /* does not match a/b */
    both_add(t, &r, "a/b", OW(2), opts(1, 7, 0, 0, 0));
    both_add(t, &r, "+/+", OW(2), opts(0, 8, 0, 0, 0));
    both_add(t, &r, "a/+", OW(3), opts(0, 0, 0, 0, 0));

    assert_int_equal(n_match(t, "a/b", &ms), 3);
    const struct mqo_match *m = find_owner(&ms, OW(1));
    assert_non_null(m);
    assert_int_equal(m->qos, 2);
    assert_int_equal(m->n_subs, 5);
    assert_int_equal(m->rap, 1);
    assert_int_equal(m->flags, MQO_SUB_USER | MQO_SUB_HELD);
    assert_int_equal(nids(&ms, m), 3);
    uint32_t ids[3];
    memcpy(ids, ids_of(&ms, m), sizeof ids);
    qsort(ids, 3, sizeof *ids, cmp_u32);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 3);
    m = find_owner(&ms, OW(2));
    assert_non_null(m);
    assert_int_equal(m->qos, 1);
    assert_int_equal(m->n_subs, 2);
    assert_int_equal(nids(&ms, m), 2);
    m = find_owner(&ms, OW(3));
    assert_non_null(m);
    assert_int_equal(nids(&ms, m), 0);
    assert_int_equal(ms.n_ids, 5);
    check_topic(t, &r, "a/b", NULL, &ms);
    check_topic(t, &r, "a", NULL, &ms);
    check_topic(t, &r, "b", NULL, &ms);
    check_topic(t, &r, "x/b", NULL, &ms);

    /* the set is reused: a smaller result replaces the previous one */
    assert_int_equal(n_match(t, "zz/zz/zz", &ms), 1);
    assert_int_equal(ms.n_ids, 0);
    assert_int_equal(ms.v[0].n_subs, 1);
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

static void test_no_local(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    both_add(t, &r, "a", OW(1), opts(2, 1, 1, 0, 0));   /* no-local */
    both_add(t, &r, "a/#", OW(1), opts(0, 2, 0, 0, 0)); /* not */
    both_add(t, &r, "a", OW(2), opts(1, 3, 1, 0, 0));
    both_add(t, &r, "+", OW(3), opts(1, 0, 1, 0, 0));

    assert_int_equal(mqo_trie_match(t, S("a"), OW(1), &ms), 3);
    const struct mqo_match *m = find_owner(&ms, OW(1));
    assert_non_null(m);
    assert_int_equal(m->n_subs, 1);
    assert_int_equal(m->qos, 0);
    assert_int_equal(nids(&ms, m), 1);
    assert_int_equal(ids_of(&ms, m)[0], 2);

    assert_int_equal(mqo_trie_match(t, S("a"), OW(2), &ms), 2);
    assert_null(find_owner(&ms, OW(2)));
    assert_int_equal(mqo_trie_match(t, S("a"), OW(3), &ms), 2);
    assert_null(find_owner(&ms, OW(3)));
    assert_int_equal(mqo_trie_match(t, S("a"), NULL, &ms), 3);
    m = find_owner(&ms, OW(1));
    assert_int_equal(m->n_subs, 2);
    assert_int_equal(m->qos, 2);
    for (int self = 0; self < 5; self++) {
        check_topic(t, &r, "a", OW(self), &ms);
        check_topic(t, &r, "a/b", OW(self), &ms);
    }
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

static void test_shared(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    struct mqo_sub_opts o;
    both_add(t, &r, "$share/g1/a/+", OW(1), opts(1, 11, 0, 0, 0));
    both_add(t, &r, "$share/g2/a/+", OW(1), opts(2, 12, 0, 0, 0));
    assert_int_equal(mqo_trie_count(t), 2); /* two groups: two subscriptions */
    assert_int_equal(n_match(t, "a/x", &ms), 1);
    assert_int_equal(ms.v[0].n_subs, 2);
    assert_int_equal(ms.v[0].flags, MQO_SUB_SHARED);
    assert_int_equal(ms.v[0].qos, 2);
    assert_int_equal(nids(&ms, &ms.v[0]), 2);

    /* the same inner filter unshared is a third subscription, without the flag */
    both_add(t, &r, "a/+", OW(1), opts(0, 0, 0, 0, MQO_SUB_SHARED)); /* caller's SHARED bit ignored */
    assert_int_equal(mqo_trie_get(t, S("a/+"), OW(1), &o), 1);
    assert_int_equal(o.flags, 0);
    assert_int_equal(mqo_trie_get(t, S("$share/g1/a/+"), OW(1), &o), 1);
    assert_int_equal(o.flags, MQO_SUB_SHARED);
    assert_int_equal(o.qos, 1);
    assert_int_equal(o.sub_id, 11);
    assert_int_equal(mqo_trie_get(t, S("$share/g3/a/+"), OW(1), &o), 0);
    assert_int_equal(n_match(t, "a/x", &ms), 1);
    assert_int_equal(ms.v[0].n_subs, 3);

    both_add(t, &r, "a/+", OW(2), opts(0, 0, 0, 0, 0));
    both_add(t, &r, "$share/g1/#", OW(3), opts(0, 0, 0, 0, MQO_SUB_HELD));
    assert_int_equal(n_match(t, "a/x", &ms), 3);
    assert_int_equal(find_owner(&ms, OW(2))->flags, 0);
    assert_int_equal(find_owner(&ms, OW(3))->flags, MQO_SUB_SHARED | MQO_SUB_HELD);
    assert_int_equal(n_match(t, "$SYS/x", &ms), 0); /* "$share/g1/#" is "#" inside */
    check_topic(t, &r, "a/x", NULL, &ms);
    check_topic(t, &r, "a", NULL, &ms);

    /* deleting one group keeps the other */
    both_del(t, &r, "$share/g1/a/+", OW(1));
    assert_int_equal(mqo_trie_get(t, S("$share/g1/a/+"), OW(1), NULL), 0);
    assert_int_equal(mqo_trie_get(t, S("$share/g2/a/+"), OW(1), NULL), 1);
    assert_int_equal(n_match(t, "a/x", &ms), 3);
    const struct mqo_match *m = find_owner(&ms, OW(1));
    assert_int_equal(m->n_subs, 2);
    assert_int_equal(nids(&ms, m), 1);
    assert_int_equal(ids_of(&ms, m)[0], 12);
    assert_int_equal(mqo_trie_del(t, S("$share/g1/a/+"), OW(1)), -ENOENT);
    both_del(t, &r, "a/+", OW(1));
    m = (n_match(t, "a/x", &ms), find_owner(&ms, OW(1)));
    assert_non_null(m);
    assert_int_equal(m->flags, MQO_SUB_SHARED);
    assert_int_equal(mqo_trie_del(t, S("a/+"), OW(3)), -ENOENT);
    check_topic(t, &r, "a/x", NULL, &ms);
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

static void test_replace(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    struct mqo_sub_opts o;
    both_add(t, &r, "a/b", OW(1), opts(0, 1, 0, 0, 0));
    both_add(t, &r, "a/b", OW(2), opts(1, 2, 0, 0, 0));
    both_add(t, &r, "a/b", OW(1), opts(2, 5, 1, 1, MQO_SUB_HELD));
    assert_int_equal(mqo_trie_count(t), 2);
    assert_int_equal(mqo_trie_get(t, S("a/b"), OW(1), &o), 1);
    assert_int_equal(o.qos, 2);
    assert_int_equal(o.sub_id, 5);
    assert_int_equal(o.no_local, 1);
    assert_int_equal(o.rap, 1);
    assert_int_equal(o.flags, MQO_SUB_HELD);
    assert_int_equal(n_match(t, "a/b", &ms), 2);
    const struct mqo_match *m = find_owner(&ms, OW(1));
    assert_int_equal(m->qos, 2);
    assert_int_equal(m->n_subs, 1);
    assert_int_equal(nids(&ms, m), 1);
    assert_int_equal(ids_of(&ms, m)[0], 5);
    assert_int_equal(mqo_trie_match(t, S("a/b"), OW(1), &ms), 1); /* now no-local */
    /* replace with NULL options: all zero */
    assert_int_equal(mqo_trie_add(t, S("a/b"), OW(1), NULL), 0);
    assert_int_equal(mqo_trie_get(t, S("a/b"), OW(1), &o), 1);
    assert_int_equal(o.qos, 0);
    assert_int_equal(o.sub_id, 0);
    assert_int_equal(o.flags, 0);
    assert_int_equal(mqo_trie_count(t), 2);
    /* get after a replace of a shared one keeps the flag */
    assert_int_equal(mqo_trie_add(t, S("$share/g/a/b"), OW(1), NULL), 0);
    o = opts(1, 0, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, S("$share/g/a/b"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_get(t, S("$share/g/a/b"), OW(1), &o), 1);
    assert_int_equal(o.flags, MQO_SUB_SHARED);
    assert_int_equal(o.qos, 1);
    assert_int_equal(mqo_trie_count(t), 3);
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

static void test_del_get_count(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    struct mqo_sub_opts o = opts(1, 0, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, S("a/b/c"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_add(t, S("a/b"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_add(t, S("a/+/c"), OW(2), &o), 0);
    assert_int_equal(mqo_trie_count(t), 3);
    assert_int_equal(n_match(t, "a/b/c", &ms), 2);
    assert_int_equal(mqo_trie_del(t, S("a/b/c"), OW(2)), -ENOENT); /* other owner */
    assert_int_equal(mqo_trie_del(t, S("a/b/c/"), OW(1)), -ENOENT);
    assert_int_equal(mqo_trie_del(t, S("a/b/"), OW(1)), -ENOENT);
    assert_int_equal(mqo_trie_del(t, S("a"), OW(1)), -ENOENT);
    assert_int_equal(mqo_trie_del(t, S("$share/x/a/b"), OW(1)), -ENOENT);
    assert_int_equal(mqo_trie_del(t, S("a/+"), OW(1)), -ENOENT);
    assert_int_equal(mqo_trie_get(t, S("a/b/"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_count(t), 3);

    assert_int_equal(mqo_trie_del(t, S("a/b/c"), OW(1)), 0);
    assert_int_equal(mqo_trie_get(t, S("a/b/c"), OW(1), &o), 0);
    assert_int_equal(n_match(t, "a/b/c", &ms), 1);
    assert_ptr_equal(ms.v[0].owner, OW(2));
    assert_int_equal(n_match(t, "a/b", &ms), 1); /* the parent's own subscription survives */
    assert_ptr_equal(ms.v[0].owner, OW(1));
    assert_int_equal(mqo_trie_del(t, S("a/+/c"), OW(2)), 0);
    assert_int_equal(n_match(t, "a/b/c", &ms), 0);
    assert_int_equal(mqo_trie_del(t, S("a/b"), OW(1)), 0);
    assert_int_equal(n_match(t, "a/b", &ms), 0);
    assert_int_equal(mqo_trie_count(t), 0);
    assert_int_equal(mqo_trie_del(t, S("a/b"), OW(1)), -ENOENT);
    /* re-adding after everything was pruned */
    assert_int_equal(mqo_trie_add(t, S("a/b/c"), OW(1), &o), 0);
    assert_int_equal(n_match(t, "a/b/c", &ms), 1);
    /* an invalid filter is never found */
    assert_int_equal(mqo_trie_get(t, S("a/#/c"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_del(t, S("a/#/c"), OW(1)), -ENOENT);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
}

struct walk_seen {
    struct ref *r;
    int *seen;
    size_t calls, stop_at;
};

static int walk_fn(void *arg, const uint8_t *filter, size_t len, void *owner, const struct mqo_sub_opts *o)
{
    struct walk_seen *w = arg;
    w->calls++;
    struct rsub *s = ref_find(w->r, (const char *)filter, len, owner);
    assert_non_null(s);
    size_t k = (size_t)(s - w->r->v);
    assert_int_equal(w->seen[k], 0);
    w->seen[k] = 1;
    assert_memory_equal(o, &s->o, sizeof *o);
    if (w->stop_at && w->calls == w->stop_at)
        return 42;
    return 0;
}

static void test_walk(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    assert_int_equal(mqo_trie_walk(t, walk_fn, NULL), 0);
    static const char *filters[] = {"a", "a/b", "#", "+/+", "$share/g/a/b", "$share/h/a/b", "/", "a//", "$SYS/#"};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        for (int k = 0; k < 3; k++)
            both_add(t, &r, filters[i], OW(k), opts((uint8_t)k, (uint32_t)(i * 3 + (size_t)k), (uint8_t)(k == 1),
                                                    (uint8_t)(k == 2), k ? MQO_SUB_USER << k : 0));
    for (int i = 0; i < 300; i++) {
        char f[32];
        snprintf(f, sizeof f, "x/%d/+", i);
        both_add(t, &r, f, OW(i % 7), opts(0, 0, 0, 0, 0));
    }
    both_del(t, &r, "a/b", OW(1));
    both_del(t, &r, "x/17/+", OW(17 % 7));
    int *seen = calloc(r.n, sizeof *seen);
    struct walk_seen w = {&r, seen, 0, 0};
    assert_int_equal(mqo_trie_walk(t, walk_fn, &w), 0);
    assert_int_equal(w.calls, r.n);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(seen[i], 1);
    /* early stop returns the callback's value */
    memset(seen, 0, r.n * sizeof *seen);
    w = (struct walk_seen){&r, seen, 0, 5};
    assert_int_equal(mqo_trie_walk(t, walk_fn, &w), 42);
    assert_int_equal(w.calls, 5);
    free(seen);
    free(r.v);
    mqo_trie_free(t);
}

/* Many literal children under one level (hash-table children), added and removed. */
static void test_many_children(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    char f[64];
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        struct mqo_sub_opts o = opts(1, (uint32_t)i + 1, 0, 0, 0);
        snprintf(f, sizeof f, "dev/%d/t", i);
        assert_int_equal(mqo_trie_add(t, S(f), OW(i % 200), &o), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "dev/%d/t", i);
        assert_int_equal(n_match(t, f, &ms), 1);
        assert_ptr_equal(ms.v[0].owner, OW(i % 200));
        assert_int_equal(ids_of(&ms, &ms.v[0])[0], (uint32_t)i + 1);
    }
    assert_int_equal(n_match(t, "dev/5000/t", &ms), 0);
    assert_int_equal(n_match(t, "dev/1", &ms), 0);
    /* delete in a scrambled order, checking the survivors as tables shrink */
    static char gone[N];
    memset(gone, 0, sizeof gone);
    for (int k = 0; k < N; k++) {
        int i = (int)(((unsigned)k * 7919u) % N);
        snprintf(f, sizeof f, "dev/%d/t", i);
        assert_int_equal(mqo_trie_del(t, S(f), OW(i % 200)), 0);
        gone[i] = 1;
        assert_int_equal(n_match(t, f, &ms), 0);
        if (k % 97 == 0 || N - k < 20) {
            for (int j = k % 7; j < N; j += 7) {
                snprintf(f, sizeof f, "dev/%d/t", j);
                assert_int_equal(n_match(t, f, &ms), gone[j] ? 0 : 1);
            }
        }
    }
    assert_int_equal(mqo_trie_count(t), 0);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
}

/* Thousands of owners on one filter: one entry each, dedup table growth. */
static void test_many_owners(void **state)
{
    (void)state;
    enum { N = 20000 };
    char *own = malloc(N);
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0}, ms2 = {0};
    for (int i = 0; i < N; i++) {
        struct mqo_sub_opts o = opts((uint8_t)(i % 3), (uint32_t)(i % 5), 0, 0, 0);
        assert_int_equal(mqo_trie_add(t, S("x/+"), own + i, &o), 0);
        if (i % 2 == 0)
            assert_int_equal(mqo_trie_add(t, S("x/#"), own + i, &o), 0);
    }
    for (int round = 0; round < 3; round++) {
        assert_int_equal(n_match(t, "x/y", &ms), N);
        size_t ids = 0;
        for (size_t k = 0; k < ms.n; k++) {
            size_t i = (size_t)((char *)ms.v[k].owner - own);
            assert_true(i < N);
            assert_int_equal(ms.v[k].n_subs, i % 2 == 0 ? 2 : 1);
            assert_int_equal(ms.v[k].qos, i % 3);
            assert_int_equal(nids(&ms, &ms.v[k]), i % 5 ? ms.v[k].n_subs : 0);
            for (uint32_t j = 0; j < nids(&ms, &ms.v[k]); j++)
                assert_int_equal(ids_of(&ms, &ms.v[k])[j], i % 5);
            ids += nids(&ms, &ms.v[k]);
        }
        assert_int_equal(ids, ms.n_ids);
        assert_int_equal(n_match(t, "x", &ms2), N / 2);
        assert_int_equal(mqo_trie_match(t, S("x/y"), own + 4, &ms2), N);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(mqo_trie_del(t, S("x/+"), own + i), 0);
        if (i % 2 == 0)
            assert_int_equal(mqo_trie_del(t, S("x/#"), own + i), 0);
    }
    assert_int_equal(mqo_trie_count(t), 0);
    assert_int_equal(n_match(t, "x/y", &ms), 0);
    mqo_match_set_free(&ms);
    mqo_match_set_free(&ms2);
    mqo_trie_free(t);
    free(own);
}

/* n_subs saturates; every sub id is still reported. */
static void test_many_subs_one_owner(void **state)
{
    (void)state;
    enum { N = 70000 };
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    char f[64];
    for (int i = 0; i < N; i++) {
        struct mqo_sub_opts o = opts(0, (uint32_t)i + 1, 0, 0, 0);
        snprintf(f, sizeof f, "$share/g%d/a", i);
        assert_int_equal(mqo_trie_add(t, S(f), OW(0), &o), 0);
    }
    assert_int_equal(n_match(t, "a", &ms), 1);
    assert_int_equal(ms.v[0].n_subs, MQO_MATCH_SUBS_MAX);
    assert_int_equal(nids(&ms, &ms.v[0]), N);
    assert_int_equal(ms.n_ids, N);
    uint64_t sum = 0;
    for (uint32_t j = 0; j < N; j++)
        sum += ids_of(&ms, &ms.v[0])[j];
    assert_true(sum == (uint64_t)N * (N + 1) / 2);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
}

/* Very deep filters and topics: no recursion limits. */
static void test_deep(void **state)
{
    (void)state;
    enum { L = 32767 }; /* levels of a 65533-byte filter "+/+/.../+" */
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    char *f = malloc(2 * L), *tp = malloc(2 * L);
    for (int i = 0; i < L; i++) {
        f[2 * i] = '+';
        f[2 * i + 1] = '/';
        tp[2 * i] = 'a';
        tp[2 * i + 1] = '/';
    }
    size_t flen = 2 * L - 1;
    struct mqo_sub_opts o = opts(1, 0, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, U(f), flen, OW(1), &o), 0);
    f[flen - 1] = '#';
    assert_int_equal(mqo_trie_add(t, U(f), flen, OW(2), &o), 0);
    assert_int_equal(mqo_trie_add(t, U(tp), flen, OW(3), &o), 0); /* "a/a/.../a" */
    memset(tp + 2 * L - 2, 'b', 1);
    assert_int_equal(mqo_trie_match(t, U(tp), flen, NULL, &ms), 2); /* a/.../b: "+/..." and "+/.../#" */
    tp[flen - 1] = 'a';
    assert_int_equal(mqo_trie_match(t, U(tp), flen, NULL, &ms), 3);
    assert_int_equal(mqo_trie_match(t, U(tp), flen - 2, NULL, &ms), 1); /* one level short: "#" */
    assert_int_equal(mqo_trie_match(t, U(tp), flen - 4, NULL, &ms), 0);
    /* empty levels all the way: L levels, then twice as many */
    memset(tp, '/', flen);
    assert_int_equal(mqo_trie_match(t, U(tp), L - 1, NULL, &ms), 2);
    assert_int_equal(mqo_trie_match(t, U(tp), flen, NULL, &ms), 1);
    /* freeing a deep trie does not recurse either */
    f[flen - 1] = '+';
    assert_int_equal(mqo_trie_del(t, U(f), flen, OW(1)), 0);
    mqo_trie_free(t);
    free(f);
    free(tp);
    mqo_match_set_free(&ms);
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* 100k random unique filters added then removed: count goes back to 0, nothing matches, and the
 * memory in use returns to where it was (emptied nodes are freed). */
static void test_churn(void **state)
{
    (void)state;
    enum { N = 100000 };
    static const char *vocab[] = {"a", "b", "c", "", "dev", "x1", "sensor", "+"};
    char (*fs)[64] = malloc((size_t)N * 64);
    assert_non_null(fs);
#if defined(__GLIBC__) && defined(__GLIBC_MINOR__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    size_t before = mallinfo2().uordblks;
#endif
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    for (int i = 0; i < N; i++) {
        int nl = 1 + (int)(rnd() % 5), at = (int)(rnd() % (unsigned)nl);
        char *p = fs[i];
        p[0] = 0;
        for (int k = 0; k < nl; k++) {
            if (k)
                strcat(p, "/");
            if (k == at)
                sprintf(p + strlen(p), "u%d", i);
            else
                strcat(p, vocab[rnd() % 8]);
        }
        if (rnd() % 10 == 0)
            strcat(p, "/#");
        struct mqo_sub_opts o = opts((uint8_t)(rnd() % 3), rnd() % 4, 0, 0, 0);
        assert_int_equal(mqo_trie_add(t, S(p), OW(rnd() % 64), &o), 0);
    }
    assert_int_equal(mqo_trie_count(t), N);
    assert_true(n_match(t, "a/u5/b", &ms) >= 0);
    for (int i = N - 1; i > 0; i--) { /* shuffle */
        int j = (int)(rnd() % (unsigned)(i + 1));
        char tmp[64];
        memcpy(tmp, fs[i], 64);
        memcpy(fs[i], fs[j], 64);
        memcpy(fs[j], tmp, 64);
    }
    size_t left = N;
    for (int i = 0; i < N; i++) {
        int k;
        for (k = 0; k < 64; k++)
            if (mqo_trie_del(t, S(fs[i]), OW(k)) == 0)
                break;
        assert_true(k < 64);
        assert_int_equal(mqo_trie_count(t), --left);
    }
    assert_int_equal(mqo_trie_count(t), 0);
    assert_int_equal(n_match(t, "a", &ms), 0);
    assert_int_equal(n_match(t, "u5", &ms), 0);
    assert_int_equal(mqo_trie_walk(t, walk_fn, NULL), 0);
#if defined(__GLIBC__) && defined(__GLIBC_MINOR__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    size_t after = mallinfo2().uordblks;
    if (after > before + 16384)
        fail_msg("empty trie holds %zu bytes more than a new one", after - before);
#endif
    /* and again: the emptied trie is fully usable */
    for (int i = 0; i < 1000; i++) {
        struct mqo_sub_opts o = opts(0, 0, 0, 0, 0);
        assert_int_equal(mqo_trie_add(t, S(fs[i]), OW(1), &o), 0);
    }
    assert_int_equal(mqo_trie_count(t), 1000);
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
    free(fs);
}

/* Random filters and topics from a small alphabet (empty levels, '$' first levels, shared
 * subscriptions, overlapping owners), interleaved with adds, replaces and deletes: the trie's
 * aggregated result equals a naive scan with mqo_topic_matches. */
static void random_filter(char *f)
{
    static const char *lv[] = {"", "a", "b", "$a", "$", "+", "+", "#", "ab"};
    f[0] = 0;
    if (rnd() % 5 == 0)
        strcpy(f, rnd() % 2 ? "$share/g1/" : "$share/g2/");
    int n = 1 + (int)(rnd() % 4);
    for (int k = 0; k < n; k++) {
        const char *l = lv[rnd() % 9];
        if (l[0] == '#' && k != n - 1)
            l = "a";
        if (k)
            strcat(f, "/");
        strcat(f, l);
    }
}

static void random_topic(char *t)
{
    static const char *lv[] = {"", "a", "b", "$a", "$", "ab", "c"};
    t[0] = 0;
    int n = 1 + (int)(rnd() % 5);
    for (int k = 0; k < n; k++) {
        if (k)
            strcat(t, "/");
        strcat(t, lv[rnd() % 7]);
    }
    if (!t[0])
        strcpy(t, "/");
}

static void test_differential(void **state)
{
    (void)state;
    struct mqo_match_set ms = {0};
    size_t matched = 0, cases = 0;
    for (int round = 0; round < 40; round++) {
        struct mqo_trie *t = mqo_trie_new();
        struct ref r = {0};
        int nops = 50 + (int)(rnd() % 250);
        for (int op = 0; op < nops; op++) {
            char f[96], tp[96];
            random_filter(f);
            void *owner = OW(rnd() % 12);
            unsigned what = rnd() % 10;
            if (what < 6) {
                if (mqo_topic_filter_valid(S(f)) != 0) {
                    struct mqo_sub_opts o = opts(0, 0, 0, 0, 0);
                    assert_int_equal(mqo_trie_add(t, S(f), owner, &o), -EINVAL);
                    continue;
                }
                uint32_t fl[] = {0, MQO_SUB_HELD, MQO_SUB_USER, MQO_SUB_SHARED, MQO_SUB_USER << 3};
                both_add(t, &r, f, owner,
                         opts((uint8_t)(rnd() % 3), rnd() % 4, rnd() % 4 == 0, rnd() % 3 == 0, fl[rnd() % 5]));
            } else if (what < 8 && r.n) {
                /* delete an existing one, or try a random (often absent) one */
                if (rnd() % 2) {
                    struct rsub s = r.v[rnd() % r.n];
                    char tmp[96];
                    memcpy(tmp, s.f, s.len);
                    tmp[s.len] = 0;
                    both_del(t, &r, tmp, s.owner);
                } else {
                    both_del(t, &r, f, owner);
                }
            } else {
                for (int k = 0; k < 8; k++) {
                    random_topic(tp);
                    const void *self = rnd() % 2 ? OW(rnd() % 12) : NULL;
                    matched += check_topic(t, &r, tp, self, &ms);
                    cases++;
                }
            }
            /* get agrees with the model */
            if (r.n) {
                struct rsub *s = &r.v[rnd() % r.n];
                struct mqo_sub_opts o;
                assert_int_equal(mqo_trie_get(t, U(s->f), s->len, s->owner, &o), 1);
                assert_memory_equal(&o, &s->o, sizeof o);
            }
        }
        /* an exhaustive sweep of short topics on the final state */
        static const char *lv[] = {"", "a", "b", "$a", "$", "ab"};
        for (int a = 0; a < 6; a++) {
            char tp[96];
            strcpy(tp, lv[a]);
            if (tp[0])
                matched += check_topic(t, &r, tp, NULL, &ms), cases++;
            for (int b = 0; b < 6; b++) {
                for (int c = 0; c < 7; c++) {
                    snprintf(tp, sizeof tp, "%s/%s%s%s", lv[a], lv[b], c < 6 ? "/" : "", c < 6 ? lv[c] : "");
                    matched += check_topic(t, &r, tp, NULL, &ms);
                    cases++;
                }
            }
        }
        int *seen = calloc(r.n + 1, sizeof *seen);
        struct walk_seen w = {&r, seen, 0, 0};
        assert_int_equal(mqo_trie_walk(t, walk_fn, &w), 0);
        assert_int_equal(w.calls, r.n);
        free(seen);
        /* drain */
        while (r.n) {
            struct rsub s = r.v[rnd() % r.n];
            char tmp[96];
            memcpy(tmp, s.f, s.len);
            tmp[s.len] = 0;
            both_del(t, &r, tmp, s.owner);
            if (rnd() % 4 == 0) {
                char tp[96];
                random_topic(tp);
                matched += check_topic(t, &r, tp, NULL, &ms);
                cases++;
            }
        }
        assert_int_equal(mqo_trie_count(t), 0);
        free(r.v);
        mqo_trie_free(t);
    }
    /* the comparison was not vacuous */
    assert_true(cases > 5000);
    assert_true(matched > cases);
    mqo_match_set_free(&ms);
}

/* Levels around the length the trie compares inline (12 bytes), differing only at the end. */
static void test_long_levels(void **state)
{
    (void)state;
    static const char *filters[] = {"abcdefghijk", "abcdefghijkl", "abcdefghijkm", "abcdefghijklm", "abcdefghijkln",
                                    "abcdefghijklmnopqrstuvwxyz0", "abcdefghijklmnopqrstuvwxyz1", "abcdefghijklm/+",
                                    "+/abcdefghijklmnopqrstuvwxyz0/#", "abcdefghijkl\x01", "abcdefghijkl\x01\x01"};
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        both_add(t, &r, filters[i], OW(i), opts(0, 0, 0, 0, 0));
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        if (filters[i][0] != '+' && !strchr(filters[i], '/'))
            assert_int_equal(check_topic(t, &r, filters[i], NULL, &ms), 1);
    }
    static const char *topics[] = {"abcdefghij", "abcdefghijklmn", "abcdefghijklmnopqrstuvwxyz", "abcdefghijklm/x",
                                   "x/abcdefghijklmnopqrstuvwxyz0", "x/abcdefghijklmnopqrstuvwxyz1",
                                   "abcdefghijkl\x02", "abcdefghijkl\x01\x02"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        check_topic(t, &r, topics[i], NULL, &ms);
    assert_int_equal(check_topic(t, &r, "x/abcdefghijklmnopqrstuvwxyz0", NULL, &ms), 1);
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}

/* Topic bytes beyond len are not read: a match on a prefix of a buffer. */
static void test_topic_len(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct mqo_match_set ms = {0};
    struct mqo_sub_opts o = opts(0, 0, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, S("a/b"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_add(t, S("a"), OW(2), &o), 0);
    assert_int_equal(mqo_trie_match(t, U("a/bcd"), 3, NULL, &ms), 1);
    assert_ptr_equal(ms.v[0].owner, OW(1));
    assert_int_equal(mqo_trie_match(t, U("a/b"), 1, NULL, &ms), 1);
    assert_ptr_equal(ms.v[0].owner, OW(2));
    mqo_match_set_free(&ms);
    mqo_trie_free(t);
}

#ifdef HAVE_FAILMALLOC
struct snap {
    char buf[8192];
    size_t len;
};

static int snap_fn(void *arg, const uint8_t *filter, size_t len, void *owner, const struct mqo_sub_opts *o)
{
    struct snap *s = arg;
    /* order-independent digest: sum of a per-subscription hash */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ filter[i]) * 1099511628211ull;
    h ^= (uint64_t)(uintptr_t)owner * 31 + o->qos * 7 + o->sub_id * 131 + o->flags;
    uint64_t acc;
    memcpy(&acc, s->buf, sizeof acc);
    acc += h;
    memcpy(s->buf, &acc, sizeof acc);
    s->len++;
    return 0;
}

static void snapshot(const struct mqo_trie *t, struct snap *s)
{
    memset(s->buf, 0, 8);
    s->len = 0;
    mqo_trie_walk(t, snap_fn, s);
}

/* Every allocation of an add failing in turn: -ENOMEM and the trie is unchanged. Deletes
 * under allocation failure still succeed. Matches fail cleanly and work afterwards, and a
 * reused set does not allocate in steady state. */
static void test_enomem(void **state)
{
    (void)state;
    struct mqo_trie *t = mqo_trie_new();
    struct ref r = {0};
    struct mqo_match_set ms = {0};
    static const char *topics[] = {"a/b", "a", "dev/3/x", "n/1/2/3/4", "s/x", "a/b/c/d/e/f", "k/8", "k/3",
                                   "k/9/z", "dev/77/x", "q/3", "r/1", "r/2", "r/1/x"};
    char f[64];
    /* preload: a table-mode level and some shared structure */
    for (int i = 0; i < 40; i++) {
        snprintf(f, sizeof f, "dev/%d/x", i);
        both_add(t, &r, f, OW(i % 5), opts(1, 0, 0, 0, 0));
    }
    for (int i = 0; i < 8; i++) {
        snprintf(f, sizeof f, "k/%d", i);
        both_add(t, &r, f, OW(1), opts(0, 0, 0, 0, 0));
    }
    both_add(t, &r, "q/1", OW(1), opts(0, 0, 0, 0, 0)); /* a full small array of children */
    both_add(t, &r, "q/2", OW(1), opts(0, 0, 0, 0, 0));
    both_add(t, &r, "r/1", OW(1), opts(0, 0, 0, 0, 0)); /* one inline child, one inline subscription */
    both_add(t, &r, "a/b", OW(1), opts(1, 1, 0, 0, 0));
    both_add(t, &r, "a/b", OW(2), opts(1, 2, 0, 0, 0));
    const char *adds[] = {"q/3", "r/2", "r/1", "r/1/x", "n/1/2/3/4", "a/b", "a/b/c/d/e/#", "dev/77/x", "$share/g/s/+", "a/+", "dev/+/x",
                          "x/y", "a/b/c/d/e/f", "a/b", "k/8", "k/9/z", "a/b/+"};
    for (size_t a = 0; a < sizeof adds / sizeof *adds; a++) {
        void *owner = OW(3 + (int)(a % 2));
        struct mqo_sub_opts o = opts(2, 9, 0, 0, 0);
        int rc;
        long k = 0;
        do {
            struct snap before, after;
            snapshot(t, &before);
            size_t cnt = mqo_trie_count(t);
            fail_after = k++;
            rc = mqo_trie_add(t, S(adds[a]), owner, &o);
            fail_after = -1;
            if (rc == -ENOMEM) {
                snapshot(t, &after);
                assert_int_equal(mqo_trie_count(t), cnt);
                assert_int_equal(before.len, after.len);
                assert_memory_equal(before.buf, after.buf, 8);
                for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
                    check_topic(t, &r, topics[i], NULL, &ms);
            }
        } while (rc == -ENOMEM);
        assert_int_equal(rc, 0);
        ref_add(&r, adds[a], owner, o);
        for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
            check_topic(t, &r, topics[i], NULL, &ms);
    }
    /* deletes never fail, even when every allocation does */
    for (int i = 0; i < 40; i += 2) {
        snprintf(f, sizeof f, "dev/%d/x", i);
        fail_after = 0;
        int rc = mqo_trie_del(t, S(f), OW(i % 5));
        fail_after = -1;
        assert_int_equal(rc, 0);
        ref_del(&r, f, OW(i % 5));
        for (size_t k = 0; k < sizeof topics / sizeof *topics; k++)
            check_topic(t, &r, topics[k], NULL, &ms);
    }
    /* match on a fresh set with failing allocations */
    for (long k = 0;; k++) {
        struct mqo_match_set m2 = {0};
        fail_after = k;
        int rc = mqo_trie_match(t, S("a/b"), NULL, &m2);
        fail_after = -1;
        if (rc == -ENOMEM) {
            assert_int_equal(m2.n, 0);
            mqo_match_set_free(&m2);
            continue;
        }
        assert_true(rc > 0);
        mqo_match_set_free(&m2);
        break;
    }
    /* steady state: a warmed-up set does not allocate */
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        mqo_trie_match(t, S(topics[i]), NULL, &ms);
    long n0 = n_allocs;
    for (int rep = 0; rep < 100; rep++)
        for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
            assert_true(mqo_trie_match(t, S(topics[i]), NULL, &ms) >= 0);
    assert_int_equal(n_allocs, n0);
    /* nor does get, walk or a replace */
    struct mqo_sub_opts o = opts(0, 1, 0, 0, 0);
    assert_int_equal(mqo_trie_add(t, S("a/b"), OW(1), &o), 0);
    assert_int_equal(mqo_trie_get(t, S("a/b"), OW(1), &o), 1);
    assert_int_equal(n_allocs, n0);
    mqo_match_set_free(&ms);
    free(r.v);
    mqo_trie_free(t);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_empty_levels),
        cmocka_unit_test(test_hash_alone),
        cmocka_unit_test(test_overlap_one_owner),
        cmocka_unit_test(test_no_local),
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_del_get_count),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_many_children),
        cmocka_unit_test(test_many_owners),
        cmocka_unit_test(test_many_subs_one_owner),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_topic_len),
        cmocka_unit_test(test_long_levels),
#ifdef HAVE_FAILMALLOC
        cmocka_unit_test(test_enomem),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
