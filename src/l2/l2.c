/* l2: forwarding decision. See l2.h.
 *
 * The MAC table is open addressing with linear probing, at most half full. Aging is lazy: an
 * entry older than aging_ns is treated as absent by lookups, and its slot is reused by the next
 * insert that probes over it (safe: the insert first probes the whole chain for its own key).
 * When the table holds max_macs entries and the chain has no aged slot, a sweep rebuilds the
 * table without aged entries (at most once per aging/16); if that frees nothing the new source
 * is not learned (its frames still flood: slower, never wrong) and table_full counts it.
 */
#include "l2/l2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2/parse.h"

struct mac_ent {
    uint64_t key;  /* MAC in the low 48 bits */
    uint64_t seen; /* last time the source was seen */
    uint16_t port;
    uint8_t used;
    uint8_t is_static;
};

struct mqo_l2 {
    enum mqo_l2_mode mode;
    unsigned nports;
    unsigned flags;
    uint32_t all_ports; /* mask of every port */
    uint64_t aging_ns;
    uint32_t max_macs;
    uint32_t cap;       /* power of two >= 2 * max_macs */
    uint32_t count;
    uint64_t last_sweep;
    struct mac_ent *tab;
    struct mqo_l2_stats st;
};

static inline uint64_t mac_key(const uint8_t *m)
{
    return (uint64_t)m[0] << 40 | (uint64_t)m[1] << 32 | (uint64_t)m[2] << 24 |
           (uint64_t)m[3] << 16 | (uint64_t)m[4] << 8 | m[5];
}

static inline uint32_t slot_of(const struct mqo_l2 *l2, uint64_t key)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (l2->cap - 1);
}

static inline int ent_live(const struct mqo_l2 *l2, const struct mac_ent *e, uint64_t now)
{
    return e->is_static || now - e->seen < l2->aging_ns || now < e->seen;
}

struct mqo_l2 *mqo_l2_new(const struct mqo_l2_cfg *cfg)
{
    if (!cfg || cfg->nports < 1 || cfg->nports > MQO_L2_MAX_PORTS)
        return NULL;
    if (cfg->mode != MQO_L2_HUB && cfg->mode != MQO_L2_LEARN && cfg->mode != MQO_L2_STATIC)
        return NULL;
    uint32_t max = cfg->max_macs ? cfg->max_macs : 4096;
    if (max > (1u << 24))
        return NULL;
    struct mqo_l2 *l2 = calloc(1, sizeof *l2);
    if (!l2)
        return NULL;
    l2->mode = cfg->mode;
    l2->nports = cfg->nports;
    l2->flags = cfg->flags;
    l2->all_ports = cfg->nports == 32 ? 0xffffffffu : (1u << cfg->nports) - 1;
    l2->aging_ns = cfg->aging_ns ? cfg->aging_ns : 300ull * 1000000000ull;
    l2->max_macs = max;
    l2->cap = 16;
    while (l2->cap < 2 * max)
        l2->cap <<= 1;
    l2->tab = calloc(l2->cap, sizeof *l2->tab);
    if (!l2->tab) {
        free(l2);
        return NULL;
    }
    return l2;
}

void mqo_l2_free(struct mqo_l2 *l2)
{
    if (!l2)
        return;
    free(l2->tab);
    free(l2);
}

int mqo_l2_parse_mode(const char *s, enum mqo_l2_mode *out)
{
    if (!strcmp(s, "hub"))
        *out = MQO_L2_HUB;
    else if (!strcmp(s, "learn"))
        *out = MQO_L2_LEARN;
    else if (!strcmp(s, "static"))
        *out = MQO_L2_STATIC;
    else
        return -1;
    return 0;
}

static struct mac_ent *find(const struct mqo_l2 *l2, uint64_t key)
{
    for (uint32_t i = slot_of(l2, key);; i = (i + 1) & (l2->cap - 1)) {
        struct mac_ent *e = &l2->tab[i];
        if (!e->used)
            return NULL;
        if (e->key == key)
            return e;
    }
}

/* Rebuilds the table without aged entries. */
static void sweep(struct mqo_l2 *l2, uint64_t now)
{
    struct mac_ent *old = l2->tab;
    struct mac_ent *nt = calloc(l2->cap, sizeof *nt);
    l2->last_sweep = now;
    if (!nt)
        return; /* keep the old table: nothing lost, nothing learned */
    uint32_t n = 0;
    for (uint32_t i = 0; i < l2->cap; i++) {
        if (!old[i].used || !ent_live(l2, &old[i], now))
            continue;
        uint32_t j = slot_of(l2, old[i].key);
        while (nt[j].used)
            j = (j + 1) & (l2->cap - 1);
        nt[j] = old[i];
        n++;
    }
    free(old);
    l2->tab = nt;
    l2->count = n;
}

/* Finds key or makes an entry for it. Returns NULL when the table is full. *fresh tells
 * whether the entry is new (or reused from an aged one). */
static struct mac_ent *upsert(struct mqo_l2 *l2, uint64_t key, uint64_t now, int *fresh)
{
    for (int pass = 0; pass < 2; pass++) {
        struct mac_ent *reuse = NULL;
        uint32_t i = slot_of(l2, key);
        for (;; i = (i + 1) & (l2->cap - 1)) {
            struct mac_ent *e = &l2->tab[i];
            if (!e->used)
                break;
            if (e->key == key) {
                *fresh = !ent_live(l2, e, now);
                return e;
            }
            if (!reuse && !ent_live(l2, e, now))
                reuse = e;
        }
        *fresh = 1;
        if (reuse) {
            reuse->key = key;
            return reuse;
        }
        if (l2->count < l2->max_macs) {
            struct mac_ent *e = &l2->tab[i];
            e->used = 1;
            e->key = key;
            e->is_static = 0;
            l2->count++;
            return e;
        }
        if (pass == 0 && (l2->last_sweep == 0 || now - l2->last_sweep >= l2->aging_ns / 16))
            sweep(l2, now);
        else
            break;
    }
    return NULL;
}

int mqo_l2_static_add(struct mqo_l2 *l2, const uint8_t mac[6], unsigned port)
{
    if (port >= l2->nports)
        return -EINVAL;
    int fresh;
    struct mac_ent *e = upsert(l2, mac_key(mac), 0, &fresh);
    if (!e)
        return -ENOSPC;
    e->port = (uint16_t)port;
    e->is_static = 1;
    e->seen = 0;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mqo_l2_parse_mac(const char *s, size_t len, uint8_t mac[6])
{
    if (len != 17)
        return -1;
    char sep = s[2];
    if (sep != ':' && sep != '-')
        return -1;
    for (int i = 0; i < 6; i++) {
        const char *q = s + 3 * i;
        int h = hexval(q[0]), l = hexval(q[1]);
        if (h < 0 || l < 0 || (i < 5 && q[2] != sep))
            return -1;
        mac[i] = (uint8_t)(h << 4 | l);
    }
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

int mqo_l2_static_parse(struct mqo_l2 *l2, const char *text, size_t len, char *err, size_t errlen)
{
    /* Two passes: check everything first, so a bad line leaves the table unchanged. */
    for (int apply = 0; apply < 2; apply++) {
        size_t pos = 0;
        unsigned lineno = 0;
        uint32_t adds = 0;
        while (pos < len) {
            size_t end = pos;
            while (end < len && text[end] != '\n')
                end++;
            lineno++;
            size_t a = pos, b = end;
            pos = end + 1;
            for (size_t k = a; k < b; k++)
                if (text[k] == '#') {
                    b = k;
                    break;
                }
            while (a < b && is_blank(text[a]))
                a++;
            while (b > a && is_blank(text[b - 1]))
                b--;
            if (a == b)
                continue;
            size_t m = a;
            while (m < b && !is_blank(text[m]))
                m++;
            uint8_t mac[6];
            if (mqo_l2_parse_mac(text + a, m - a, mac)) {
                snprintf(err, errlen, "line %u: bad MAC '%.*s' (want aa:bb:cc:dd:ee:ff)", lineno,
                         (int)(m - a > 40 ? 40 : m - a), text + a);
                return -EINVAL;
            }
            while (m < b && is_blank(text[m]))
                m++;
            if (m == b) {
                snprintf(err, errlen, "line %u: missing port after the MAC", lineno);
                return -EINVAL;
            }
            size_t pe = m;
            while (pe < b && !is_blank(text[pe]))
                pe++;
            if (pe != b) {
                snprintf(err, errlen, "line %u: unexpected text after the port", lineno);
                return -EINVAL;
            }
            unsigned port = 0;
            int ok = 1;
            if (pe - m == 1 && text[m] >= 'a' && text[m] <= 'z')
                port = (unsigned)(text[m] - 'a');
            else if (pe - m == 1 && text[m] >= 'A' && text[m] <= 'Z')
                port = (unsigned)(text[m] - 'A');
            else
                for (size_t k = m; k < pe && ok; k++) {
                    if (text[k] < '0' || text[k] > '9' || port > 1000)
                        ok = 0;
                    else
                        port = port * 10 + (unsigned)(text[k] - '0');
                }
            if (!ok || port >= l2->nports) {
                snprintf(err, errlen, "line %u: bad port '%.*s' (0..%u or a..%c)", lineno,
                         (int)(pe - m > 20 ? 20 : pe - m), text + m, l2->nports - 1,
                         (char)('a' + l2->nports - 1));
                return -EINVAL;
            }
            if (apply) {
                int r = mqo_l2_static_add(l2, mac, port);
                if (r) {
                    snprintf(err, errlen, "line %u: table full", lineno);
                    return r; /* only reachable if the check pass miscounted */
                }
            } else if (!find(l2, mac_key(mac)) && ++adds + l2->count > l2->max_macs) {
                /* may overcount a MAC listed twice: errs on the safe side */
                snprintf(err, errlen, "line %u: more than %u MACs", lineno, l2->max_macs);
                return -ENOSPC;
            }
        }
    }
    return 0;
}

int mqo_l2_lookup(const struct mqo_l2 *l2, const uint8_t mac[6], uint64_t now_ns)
{
    const struct mac_ent *e = find(l2, mac_key(mac));
    if (!e || !ent_live(l2, e, now_ns))
        return -1;
    return e->port;
}

unsigned mqo_l2_count(const struct mqo_l2 *l2) { return l2->count; }

void mqo_l2_get_stats(const struct mqo_l2 *l2, struct mqo_l2_stats *st) { *st = l2->st; }

static void learn(struct mqo_l2 *l2, const uint8_t *src, unsigned in_port, uint64_t now)
{
    if (mqo_mac_is_multicast(src))
        return; /* not a station address */
    int fresh;
    struct mac_ent *e = upsert(l2, mac_key(src), now, &fresh);
    if (!e) {
        l2->st.table_full++;
        return;
    }
    if (e->is_static)
        return;
    if (fresh)
        l2->st.learned++;
    else if (e->port != in_port)
        l2->st.moved++;
    e->port = (uint16_t)in_port;
    e->seen = now;
}

uint32_t mqo_l2_decide(struct mqo_l2 *l2, unsigned in_port, const uint8_t *frame, size_t len,
                       uint64_t now_ns)
{
    l2->st.frames++;
    if (len < MQO_ETH_HLEN || in_port >= l2->nports) {
        l2->st.dropped_runt++;
        return 0;
    }
    uint32_t others = l2->all_ports & ~(1u << in_port);
    if (l2->mode == MQO_L2_HUB) {
        l2->st.flooded++;
        return others;
    }
    if (l2->mode == MQO_L2_LEARN)
        learn(l2, frame + 6, in_port, now_ns);
    const struct mac_ent *e = find(l2, mac_key(frame));
    if (e && ent_live(l2, e, now_ns)) {
        if (e->port == in_port) {
            l2->st.filtered++;
            return 0;
        }
        l2->st.unicast++;
        return 1u << e->port;
    }
    if (mqo_mac_is_multicast(frame) || l2->mode == MQO_L2_LEARN ||
        (l2->flags & MQO_L2_STATIC_FLOOD_UNKNOWN)) {
        l2->st.flooded++;
        return others;
    }
    l2->st.dropped_unknown++;
    return 0;
}
