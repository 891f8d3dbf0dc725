#include "net/outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* what an entry keeps allocated besides its ring slot: its message, header included */
static size_t ent_mem(const struct mqo_outq_ent *e) { return sizeof *e->msg + e->msg->len; }

static struct mqo_outq_ent *at(const struct mqo_outq *q, size_t i)
{
    return &q->v[(q->head + i) & (q->cap - 1)];
}

static int grow(struct mqo_outq *q)
{
    if (q->n < q->cap)
        return 0;
    if (q->cap > UINT32_MAX / 2)
        return -ENOMEM;
    uint32_t cap = q->cap ? q->cap * 2 : 1; /* a fan-out queues one packet to each */
    struct mqo_outq_ent *v = malloc(cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->n; i++)
        v[i] = *at(q, i);
    free(q->v);
    q->mem += (cap - q->cap) * sizeof *v;
    q->v = v;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int mqo_outq_push_bytes(struct mqo_outq *q, const uint8_t *p, size_t n)
{
    while (n) {
        /* fill the private chunk at the tail first */
        if (q->n) {
            struct mqo_outq_ent *t = at(q, q->n - 1);
            if (!t->shared && t->len < t->msg->len) {
                size_t k = t->msg->len - t->len;
                if (k > n)
                    k = n;
                memcpy(t->msg->data + t->len, p, k);
                t->len += (uint32_t)k;
                q->bytes += k;
                p += k;
                n -= k;
                continue;
            }
        }
        if (grow(q))
            return -ENOMEM;
        /* small while the queue is small: an idle connection's CONNACK or SUBACK does not
         * pin 16 KiB; doubling while it stays busy keeps the allocations per byte few */
        size_t sz = q->chunk ? 2 * (size_t)q->chunk : MQO_OUTQ_CHUNK_MIN;
        if (sz > MQO_OUTQ_CHUNK)
            sz = MQO_OUTQ_CHUNK;
        if (sz < n)
            sz = n;
        struct mqo_msg *m = mqo_msg_new(sz);
        if (!m)
            return -ENOMEM;
        q->chunk = sz > MQO_OUTQ_CHUNK ? MQO_OUTQ_CHUNK : (uint32_t)sz;
        *at(q, q->n) = (struct mqo_outq_ent){.msg = m};
        q->n++;
        q->mem += ent_mem(at(q, q->n - 1));
    }
    return 0;
}

int mqo_outq_push_out(struct mqo_outq *q, const struct mqo_out *o)
{
    if (grow(q))
        return -ENOMEM;
    *at(q, q->n) = (struct mqo_outq_ent){.msg = mqo_msg_ref(o->msg),
                                         .len = o->msg->len,
                                         .pid_off = o->pid_off,
                                         .pid = o->pid,
                                         .b0 = o->b0,
                                         .shared = 1};
    q->n++;
    q->bytes += o->msg->len;
    q->mem += ent_mem(at(q, q->n - 1));
    return 0;
}

size_t mqo_outq_room(const struct mqo_outq *q, size_t limit)
{
    size_t next = sizeof(struct mqo_msg) + (q->n < q->cap ? 0 : (q->cap ? q->cap : 1) * sizeof *q->v);
    return q->mem + next >= limit ? 0 : limit - q->mem - next;
}

int mqo_outq_iov(const struct mqo_outq *q, struct iovec *iov, int max_iov, uint8_t *scratch)
{
    int n = 0;
    for (size_t i = 0; i < q->n && n < max_iov; i++) {
        const struct mqo_outq_ent *e = at(q, i);
        if (!e->shared) {
            iov[n++] = (struct iovec){.iov_base = e->msg->data + e->off, .iov_len = e->len - e->off};
            continue;
        }
        if (max_iov - n < 4)
            break;
        struct mqo_out o = {.msg = e->msg, .pid_off = e->pid_off, .pid = e->pid, .b0 = e->b0};
        struct iovec tmp[4];
        uint8_t *sc = scratch + 3 * (size_t)n;
        int k = mqo_out_iov(&o, sc, tmp);
        /* skip what was already written */
        size_t skip = e->off;
        for (int j = 0; j < k; j++) {
            if (skip >= tmp[j].iov_len) {
                skip -= tmp[j].iov_len;
                continue;
            }
            iov[n++] = (struct iovec){.iov_base = (uint8_t *)tmp[j].iov_base + skip,
                                      .iov_len = tmp[j].iov_len - skip};
            skip = 0;
        }
    }
    return n;
}

void mqo_outq_advance(struct mqo_outq *q, size_t n)
{
    q->bytes -= n < q->bytes ? n : q->bytes;
    while (n && q->n) {
        struct mqo_outq_ent *e = at(q, 0);
        size_t left = e->len - e->off;
        if (n < left) {
            e->off += (uint32_t)n;
            return;
        }
        n -= left;
        q->mem -= ent_mem(e);
        mqo_msg_unref(e->msg); /* written: freed (or the shared packet's reference dropped) */
        q->head = (q->head + 1) & (q->cap - 1);
        q->n--;
    }
    if (!q->n) /* drained: nothing stays allocated */
        mqo_outq_free(q);
}

ssize_t mqo_outq_flush(struct mqo_outq *q, int fd)
{
    struct iovec iov[64];
    uint8_t scratch[64 * 3];
    size_t total = 0;
    while (q->bytes) {
        int n = mqo_outq_iov(q, iov, 64, scratch);
        if (n == 0)
            break;
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        mqo_outq_advance(q, (size_t)w);
        total += (size_t)w;
    }
    return (ssize_t)total;
}

void mqo_outq_free(struct mqo_outq *q)
{
    for (size_t i = 0; i < q->n; i++)
        mqo_msg_unref(at(q, i)->msg);
    free(q->v);
    memset(q, 0, sizeof *q);
}

int mqo_outq_copy(const struct mqo_outq *q, struct mqo_buf *out)
{
    for (size_t i = 0; i < q->n; i++) {
        const struct mqo_outq_ent *e = at(q, i);
        struct mqo_outq one = {.v = (struct mqo_outq_ent *)e, .head = 0, .n = 1, .cap = 1};
        struct iovec iov[4];
        uint8_t scratch[12];
        int k = mqo_outq_iov(&one, iov, 4, scratch);
        for (int j = 0; j < k; j++)
            if (mqo_buf_append(out, iov[j].iov_base, iov[j].iov_len))
                return -ENOMEM;
    }
    return 0;
}
