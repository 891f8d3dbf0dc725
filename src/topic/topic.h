/* topic/: topic name and filter validation, single matches, and the subscription trie.
 *
 * Strings are (pointer, length), not NUL-terminated, as they arrive in packets. UTF-8 validity
 * is the codec's job (mqtt/); these functions check MQTT topic structure only.
 *
 * Matching rules (MQTT 3.1.1 4.7 / 5.0 4.7):
 *  - levels are separated by '/'; empty levels are levels ("a//b" has 3 levels, "/a" has 2);
 *  - '+' matches exactly one level (possibly empty); '#' matches the parent level and any
 *    number of child levels ("sport/#" matches "sport", "sport/", "sport/x/y");
 *  - a topic whose first character is '$' is not matched by a filter whose first level is a
 *    wildcard ('#', '+', '+/...'); "$SYS/#" matches "$SYS/x".
 *  - "$share/{group}/{filter}" is a shared subscription of {filter} (v5 4.8; Mosquitto also
 *    accepts it from v3.1.1 clients).
 */
#ifndef MQO_TOPIC_H
#define MQO_TOPIC_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 when t[0..len) is a valid topic name for PUBLISH: non-empty, at most 65535 bytes,
 * no '+' or '#', no U+0000. Otherwise -1. */
int mqo_topic_name_valid(const uint8_t *t, size_t len);

/* Returns 0 when f[0..len) is a valid topic filter: non-empty, '+' occupies a whole level,
 * '#' a whole level and only the last one, no U+0000; a "$share/group/filter" has a non-empty
 * group without '+', '#' or '/' and a valid non-empty filter. Otherwise -1. */
int mqo_topic_filter_valid(const uint8_t *f, size_t len);

/* Splits a shared subscription. Returns 1 and sets group/filter (pointing into f) when f is
 * "$share/{group}/{filter}", 0 when f is not shared ("$share" with no '/' after the group is
 * not shared syntax either: returns -1), -1 when it starts with "$share/" but is malformed. */
int mqo_topic_share_split(const uint8_t *f, size_t len, const uint8_t **group, size_t *glen,
                          const uint8_t **filter, size_t *flen);

/* Returns 1 when topic name t matches filter f (both assumed valid; f not shared), else 0. */
int mqo_topic_matches(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen);

/* ---- subscription trie ---- */

/* Flags of a subscription. The trie sets MQO_SUB_SHARED itself; the others belong to the
 * caller, which the trie only carries and ORs into match results. */
#define MQO_SUB_SHARED 0x01u /* a $share/group/filter subscription */
#define MQO_SUB_HELD 0x02u   /* caller: held by the broker for an offline session */
#define MQO_SUB_USER 0x100u  /* first bit free for other caller flags */

/* 8 bytes: the trie keeps one per subscription (a fan-out's subscribers are read in a row). */
struct mqo_sub_opts {
    unsigned sub_id : 28;  /* v5 subscription identifier (at most MQO_SUB_ID_MAX), 0: none */
    unsigned qos : 2;      /* granted QoS 0..2 */
    unsigned rh : 2;       /* v5 retain handling */
    unsigned no_local : 1; /* v5 no-local */
    unsigned rap : 1;      /* v5 retain-as-published */
    unsigned flags : 14;   /* MQO_SUB_* (below MQO_SUB_FLAGS_LIMIT) */
};
#define MQO_SUB_ID_MAX 268435455u /* the largest a four-byte variable integer holds */
#define MQO_SUB_FLAGS_LIMIT 0x4000u

/* Aggregated match for one owner (subscriber): every matching subscription of that owner
 * folded into one delivery. */
#define MQO_MATCH_SUBS_MAX 32767u
struct mqo_match {
    void *owner;
    uint32_t qos : 2;     /* highest granted QoS among the matching subscriptions */
    uint32_t rap : 1;     /* 1 when any matching subscription has retain-as-published */
    uint32_t flags : 14;  /* OR of the matching subscriptions' flags (MQO_SUB_FLAGS_LIMIT) */
    uint32_t n_subs : 15; /* matching subscriptions of this owner (saturates: MQO_MATCH_SUBS_MAX) */
    /* the subscription identifiers (non-zero) of the matching subscriptions: the set's ids[]
     * from here to the next match's ids_at (mqo_match_ids) */
    uint32_t ids_at;
};
_Static_assert(MQO_SUB_FLAGS_LIMIT == 1u << 14, "a match's flags hold every subscription flag");
_Static_assert(sizeof(struct mqo_match) == 16, "a match is 16 bytes: a fan-out holds one a subscriber");

/* Result of mqo_trie_match(). All-zero is valid and empty; reuse it between calls (its arrays
 * grow and are kept); release with mqo_match_set_free(). */
struct mqo_match_set {
    struct mqo_match *v;
    size_t n, cap;
    uint32_t *ids;
    size_t n_ids, ids_cap;
    size_t n_self; /* matching subscriptions skipped as no-local of `self` */
    void *scratch; /* matcher's private dedup state */
    size_t scratch_cap;
};
void mqo_match_set_free(struct mqo_match_set *ms);

/* The subscription identifiers of match k (*n of them; NULL when none). */
static inline const uint32_t *mqo_match_ids(const struct mqo_match_set *ms, size_t k, uint32_t *n)
{
    uint32_t end = k + 1 < ms->n ? ms->v[k + 1].ids_at : (uint32_t)ms->n_ids;
    *n = end - ms->v[k].ids_at;
    return *n ? ms->ids + ms->v[k].ids_at : NULL;
}

struct mqo_trie;

/* Returns an empty trie, NULL on ENOMEM. */
struct mqo_trie *mqo_trie_new(void);
void mqo_trie_free(struct mqo_trie *t);

/* Adds the subscription (filter, owner), or replaces its options when that pair exists.
 * filter may be "$share/group/f": it is indexed under f with MQO_SUB_SHARED set, and
 * (filter, owner) is its identity, so the same f in two groups is two subscriptions.
 * Returns 0, -EINVAL for an invalid filter, -ENOMEM (trie unchanged). */
int mqo_trie_add(struct mqo_trie *t, const uint8_t *filter, size_t len, void *owner,
                 const struct mqo_sub_opts *o);

/* Removes the subscription (filter, owner). Returns 0, or -ENOENT when absent. */
int mqo_trie_del(struct mqo_trie *t, const uint8_t *filter, size_t len, void *owner);

/* Looks up (filter, owner). Returns 1 and copies its options to *o (if o), else 0. */
int mqo_trie_get(const struct mqo_trie *t, const uint8_t *filter, size_t len, void *owner,
                 struct mqo_sub_opts *o);

/* Number of subscriptions held. */
size_t mqo_trie_count(const struct mqo_trie *t);

/* Fills ms (clearing it first) with one entry per owner having subscriptions that match topic
 * name t. Subscriptions with no_local whose owner is `self` are skipped (pass NULL for none)
 * and counted in ms->n_self.
 * Returns the number of owners, or -ENOMEM. */
int mqo_trie_match(const struct mqo_trie *t, const uint8_t *topic, size_t len, const void *self,
                   struct mqo_match_set *ms);

/* Calls fn for every subscription (filter as given to add). Stops early and returns fn's value
 * when fn returns non-zero; returns 0 after all. The trie must not change during the walk. */
int mqo_trie_walk(const struct mqo_trie *t,
                  int (*fn)(void *arg, const uint8_t *filter, size_t len, void *owner,
                            const struct mqo_sub_opts *o),
                  void *arg);

#endif
