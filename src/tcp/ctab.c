/* The spliced connections' table in shared memory, and the reset of a dead splice's
 * connections (ctab.h). */
#include "tcp/ctab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/map.h"

struct hdr {
    char magic[8];
    uint32_t version;
    uint32_t nslots;
    uint32_t bip;
    uint16_t bport;
    uint16_t pad;
    uint32_t entry_size;
    uint8_t reserved[44]; /* 72 bytes: the entries after it are 8-byte aligned */
};
_Static_assert(sizeof(struct hdr) % 8 == 0, "entries must stay aligned");
_Static_assert(sizeof(struct mqo_ctab_ent) == 168, "the table's format (MQO_CTAB_VERSION)");

struct mqo_ctab {
    int fd;
    struct hdr *h;
    struct mqo_ctab_ent *e;
    size_t map_len;
    size_t n;
    uint32_t old_version; /* the format found at open when it was another one */
    /* In this process only: key -> slot + 1, and the free slots (a stack). A slot stays where
     * it is while its connection lives: the splice writes its resume point there. */
    struct mqo_map idx;
    uint32_t *free_v;
    size_t nfree;
};

static const char MAGIC[8] = "MQOCTAB";

static uint64_t key_of(uint32_t ip, uint16_t port) { return (uint64_t)ip << 16 | port; }

/* The free stack: every slot not live, the lowest on top. */
static void rebuild_free(struct mqo_ctab *t)
{
    t->nfree = 0;
    for (size_t i = t->h->nslots; i-- > 0;)
        if (t->e[i].live != MQO_CTAB_LIVE)
            t->free_v[t->nfree++] = (uint32_t)i;
}

struct mqo_ctab *mqo_ctab_open(const char *path, uint32_t nslots, uint32_t bip, uint16_t bport,
                               size_t *stale)
{
    *stale = 0;
    if (!nslots)
        nslots = 65536;
    nslots = nslots + nslots / 2; /* as the table of version 1 (a hash table with room) */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno == EWOULDBLOCK ? EBUSY : errno;
        close(fd);
        errno = err;
        return NULL;
    }
    size_t len = sizeof(struct hdr) + (size_t)nslots * sizeof(struct mqo_ctab_ent);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return NULL;
    }
    /* a table of another shape (or none): its entries cannot be read; start empty */
    int keep = 0;
    uint32_t old_version = 0;
    if ((size_t)st.st_size >= sizeof(struct hdr)) {
        struct hdr old;
        if (pread(fd, &old, sizeof old, 0) == (ssize_t)sizeof old &&
            memcmp(old.magic, MAGIC, sizeof MAGIC) == 0) {
            if (old.version != MQO_CTAB_VERSION)
                old_version = old.version;
            else if (old.entry_size == sizeof(struct mqo_ctab_ent) && old.bip == bip &&
                     old.bport == bport && old.nslots &&
                     (size_t)st.st_size ==
                         sizeof(struct hdr) + (size_t)old.nslots * sizeof(struct mqo_ctab_ent)) {
                keep = 1;
                nslots = old.nslots;
                len = (size_t)st.st_size;
            }
        }
    }
    if (!keep && (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0)) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct mqo_ctab *t = calloc(1, sizeof *t);
    uint32_t *fv = malloc((size_t)nslots * sizeof *fv);
    if (m == MAP_FAILED || !t || !fv) {
        int err = m == MAP_FAILED ? errno : ENOMEM;
        if (m != MAP_FAILED)
            munmap(m, len);
        free(t);
        free(fv);
        close(fd);
        errno = err;
        return NULL;
    }
    t->fd = fd;
    t->h = m;
    t->e = (struct mqo_ctab_ent *)(t->h + 1);
    t->map_len = len;
    t->free_v = fv;
    t->old_version = old_version;
    if (!keep) {
        memcpy(t->h->magic, MAGIC, sizeof MAGIC);
        t->h->version = MQO_CTAB_VERSION;
        t->h->nslots = nslots;
        t->h->bip = bip;
        t->h->bport = bport;
        t->h->entry_size = sizeof(struct mqo_ctab_ent);
    }
    for (size_t i = 0; i < t->h->nslots; i++)
        t->n += t->e[i].live == MQO_CTAB_LIVE;
    *stale = t->n;
    rebuild_free(t);
    return t;
}

uint32_t mqo_ctab_old_version(const struct mqo_ctab *t) { return t->old_version; }

void mqo_ctab_close(struct mqo_ctab *t)
{
    if (!t)
        return;
    munmap(t->h, t->map_len);
    close(t->fd); /* the lock goes with it */
    mqo_map_free(&t->idx);
    free(t->free_v);
    free(t);
}

int mqo_ctab_take_stale(struct mqo_ctab *t, struct mqo_ctab_ent **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!t->n)
        return 0;
    struct mqo_ctab_ent *v = malloc(t->n * sizeof *v);
    if (!v)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < t->h->nslots && k < t->n; i++)
        if (t->e[i].live == MQO_CTAB_LIVE)
            v[k++] = t->e[i];
    memset(t->e, 0, (size_t)t->h->nslots * sizeof *t->e);
    t->n = 0;
    mqo_map_free(&t->idx);
    rebuild_free(t);
    *out = v;
    *n = k;
    return 0;
}

int mqo_ctab_put(struct mqo_ctab *t, const struct mqo_ctab_ent *e)
{
    uint64_t key = key_of(e->cip, e->cport), i;
    struct mqo_ctab_ent *x;
    if (mqo_map_get(&t->idx, key, &i)) {
        x = &t->e[i - 1];
    } else {
        if (!t->nfree)
            return -ENOSPC;
        uint32_t s = t->free_v[t->nfree - 1];
        if (mqo_map_put(&t->idx, key, (uint64_t)s + 1))
            return -ENOMEM;
        t->nfree--;
        t->n++;
        x = &t->e[s];
    }
    /* written whole, then marked live: a crash in between leaves a free slot; the resume
     * point is not set (the splice writes it) */
    struct mqo_ctab_ent v = *e;
    v.live = 0;
    v.quiescent = 0;
    __atomic_store_n(&x->live, 0, __ATOMIC_RELEASE);
    memcpy(x, &v, sizeof v);
    __atomic_store_n(&x->live, MQO_CTAB_LIVE, __ATOMIC_RELEASE);
    return 0;
}

struct mqo_ctab_ent *mqo_ctab_get(struct mqo_ctab *t, uint32_t cip, uint16_t cport)
{
    uint64_t i;
    return mqo_map_get(&t->idx, key_of(cip, cport), &i) ? &t->e[i - 1] : NULL;
}

void mqo_ctab_del(struct mqo_ctab *t, uint32_t cip, uint16_t cport)
{
    uint64_t key = key_of(cip, cport), i;
    if (!mqo_map_get(&t->idx, key, &i))
        return;
    mqo_map_del(&t->idx, key);
    struct mqo_ctab_ent *x = &t->e[i - 1];
    __atomic_store_n(&x->quiescent, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&x->live, 0, __ATOMIC_RELEASE);
    t->free_v[t->nfree++] = (uint32_t)(i - 1);
    t->n--;
}

int mqo_ctab_resumable(const struct mqo_ctab_ent *e)
{
    return e->live == MQO_CTAB_LIVE && e->quiescent == MQO_CTAB_QUIET && e->cport &&
           e->held_len[0] <= MQO_CTAB_HELD_MAX && e->held_len[1] <= MQO_CTAB_HELD_MAX &&
           e->wscale[0] <= 14 && e->wscale[1] <= 14 && e->mss[0] >= 64 && e->mss[1] >= 64 &&
           e->ts_ok <= 1 && e->in_off[0] < (1ull << 62) && e->in_off[1] < (1ull << 62) &&
           e->out_off[0] < (1ull << 62) && e->out_off[1] < (1ull << 62);
}

size_t mqo_ctab_count(const struct mqo_ctab *t) { return t->n; }

/* ---- frames ---- */

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)(p[n - 1] << 8);
    return s;
}
static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}
static void w16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void w32(uint8_t *p, uint32_t v)
{
    w16(p, (uint16_t)(v >> 16));
    w16(p + 2, (uint16_t)v);
}
static uint16_t r16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t r32(const uint8_t *p) { return (uint32_t)r16(p) << 16 | r16(p + 2); }

size_t mqo_ctab_frame(uint8_t *out, const uint8_t eth[14], uint8_t ttl, uint8_t tos,
                      uint32_t sip, uint32_t dip, uint16_t sport, uint16_t dport, uint32_t seq,
                      uint32_t ack, uint8_t flags, uint16_t win)
{
    memcpy(out, eth, 12);
    out[12] = 0x08;
    out[13] = 0x00;
    uint8_t *ip = out + 14, *tcp = ip + 20;
    memset(ip, 0, 40);
    ip[0] = 0x45;
    ip[1] = tos;
    w16(ip + 2, 40);
    w16(ip + 6, 0x4000); /* DF */
    ip[8] = ttl ? ttl : 64;
    ip[9] = 6;
    memcpy(ip + 12, &sip, 4);
    memcpy(ip + 16, &dip, 4);
    w16(ip + 10, fold(sum16(ip, 20, 0)));
    w16(tcp, sport);
    w16(tcp + 2, dport);
    w32(tcp + 4, seq);
    w32(tcp + 8, ack);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    w16(tcp + 14, win);
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0;
    pseudo[9] = 6;
    w16(pseudo + 10, 20);
    w16(tcp + 16, fold(sum16(tcp, 20, sum16(pseudo, 12, 0))));
    return 54;
}

/* ---- reset ---- */

#define F_RST 0x04
#define F_ACK 0x10
#define PROBE_NS 250000000ull
#define GIVE_UP_NS 5000000000ull

struct rent {
    struct mqo_ctab_ent e;
    uint8_t reset[2]; /* by side: that end was reset (or is gone) */
    uint64_t next_probe, deadline;
};

struct mqo_ctab_reset {
    struct rent *v;
    size_t n, left, done, gave_up;
    struct mqo_map idx; /* key -> index + 1 */
    uint32_t bip;
    uint16_t bport;
};

struct mqo_ctab_reset *mqo_ctab_reset_new(const struct mqo_ctab_ent *v, size_t n, uint32_t bip,
                                          uint16_t bport)
{
    struct mqo_ctab_reset *r = calloc(1, sizeof *r);
    if (!r || !(r->v = calloc(n ? n : 1, sizeof *r->v))) {
        free(r);
        return NULL;
    }
    r->bip = bip;
    r->bport = bport;
    for (size_t i = 0; i < n; i++) {
        if (mqo_map_put(&r->idx, key_of(v[i].cip, v[i].cport), r->n + 1)) {
            mqo_ctab_reset_free(r);
            return NULL;
        }
        r->v[r->n++].e = v[i];
    }
    r->left = r->n;
    return r;
}

void mqo_ctab_reset_free(struct mqo_ctab_reset *r)
{
    if (!r)
        return;
    mqo_map_free(&r->idx);
    free(r->v);
    free(r);
}

/* A RST (or the probe) toward side `to` of connection x with sequence number seq. */
static int send_to(struct mqo_ctab_reset *r, const struct rent *x, int to, uint32_t seq,
                   uint8_t flags, mqo_ctab_send_fn send, void *arg)
{
    uint8_t f[64];
    /* toward the client: from the broker; toward the broker: from the client */
    uint32_t sip = to == 0 ? r->bip : x->e.cip, dip = to == 0 ? x->e.cip : r->bip;
    uint16_t sp = to == 0 ? r->bport : x->e.cport, dp = to == 0 ? x->e.cport : r->bport;
    size_t n = mqo_ctab_frame(f, x->e.eth[to], x->e.ttl[to], x->e.tos[to], sip, dip, sp, dp, seq,
                              flags & F_ACK ? x->e.isn[to] + 1 : 0, flags, flags & F_RST ? 0 : 1024);
    return send(arg, to, f, n);
}

static void settle_ent(struct mqo_ctab_reset *r, struct rent *x)
{
    if (x->reset[0] && x->reset[1] && x->deadline != UINT64_MAX) {
        x->deadline = UINT64_MAX;
        r->left--;
        r->done++;
    }
}

int mqo_ctab_reset_frame(struct mqo_ctab_reset *r, int from, const uint8_t *f, size_t len,
                         mqo_ctab_send_fn send, void *arg)
{
    if (!r || !r->left || len < 54 || r16(f + 12) != 0x0800)
        return 0;
    const uint8_t *ip = f + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 6 || len < 14 + ihl + 20)
        return 0;
    const uint8_t *tcp = ip + ihl;
    uint32_t sip, dip;
    memcpy(&sip, ip + 12, 4);
    memcpy(&dip, ip + 16, 4);
    uint16_t sport = r16(tcp), dport = r16(tcp + 2);
    uint64_t key;
    if (from == 0 && dip == r->bip && dport == r->bport)
        key = key_of(sip, sport);
    else if (from == 1 && sip == r->bip && sport == r->bport)
        key = key_of(dip, dport);
    else
        return 0;
    uint64_t i;
    if (!mqo_map_get(&r->idx, key, &i))
        return 0;
    struct rent *x = &r->v[i - 1];
    uint8_t flags = tcp[13];
    if (flags & 0x02) /* a SYN: a new connection on the same ports, not ours */
        return 0;
    if (x->deadline == UINT64_MAX)
        return 1; /* both ends reset: their last frames die here */
    if (flags & F_RST) {
        x->reset[from] = 1; /* that end gave up by itself */
    } else if ((flags & F_ACK) && !x->reset[from]) {
        /* the end names the next byte it expects: a RST at exactly that is accepted */
        send_to(r, x, from, r32(tcp + 8), F_RST, send, arg);
        x->reset[from] = 1;
    }
    settle_ent(r, x);
    return 1;
}

size_t mqo_ctab_reset_tick(struct mqo_ctab_reset *r, uint64_t now, mqo_ctab_send_fn send,
                           void *arg)
{
    if (!r)
        return 0;
    for (size_t i = 0; i < r->n && r->left; i++) {
        struct rent *x = &r->v[i];
        if (x->deadline == UINT64_MAX)
            continue;
        if (!x->deadline)
            x->deadline = now + GIVE_UP_NS;
        if (now >= x->deadline) {
            x->deadline = UINT64_MAX;
            r->left--;
            r->gave_up++;
            continue;
        }
        if (now < x->next_probe)
            continue;
        x->next_probe = now + PROBE_NS;
        /* an ACK at the end's own initial sequence number: below its window, so it answers
         * with an ACK naming the next byte it expects */
        for (int side = 0; side < 2; side++)
            if (!x->reset[side])
                send_to(r, x, side, x->e.isn[side ^ 1], F_ACK, send, arg);
    }
    return r->left;
}

void mqo_ctab_reset_counts(const struct mqo_ctab_reset *r, size_t *done, size_t *gave_up)
{
    *done = r ? r->done : 0;
    *gave_up = r ? r->gave_up : 0;
}
