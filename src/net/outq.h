/* Output queue of one socket: bytes waiting to be written, as a FIFO of entries that are either
 * private byte chunks (forwarded bytes, copied in) or shared serialized packets with a
 * per-connection patch (fan-out: one serialization, a reference per subscriber).
 * An all-zero struct is a valid empty queue.
 *
 * Memory: an empty queue holds none. A chunk is freed as soon as it was written, and the entry
 * ring with the last entry, so an idle connection costs the struct alone. Chunks start small
 * (MQO_OUTQ_CHUNK_MIN) and double while the queue stays busy, up to MQO_OUTQ_CHUNK (a larger
 * append gets a chunk of its own size). `mem` counts every byte the queue keeps allocated:
 * the ring, each chunk with its header, and each shared packet it holds a reference to, whole
 * (the reference keeps it alive): a limit on `mem` is a limit on memory, overhead included. */
#ifndef MQO_NET_OUTQ_H
#define MQO_NET_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "engine/engine.h"

struct mqo_outq_ent {
    struct mqo_msg *msg; /* shared packet (with patch) or private chunk (msg->refs == 1) */
    uint32_t len;        /* bytes of msg in use (a chunk may be partly filled) */
    uint32_t off;        /* bytes already written */
    uint32_t pid_off;    /* patch, as in struct mqo_out; 0: none */
    uint16_t pid;
    uint8_t b0;
    uint8_t shared;      /* 1: msg is a shared packet, b0/pid patch apply */
};

struct mqo_outq {
    struct mqo_outq_ent *v;
    size_t bytes;        /* queued, not yet written */
    size_t mem;          /* bytes allocated for it or kept alive by it (see above) */
    uint32_t head, n, cap; /* ring */
    uint32_t chunk;      /* size of the last chunk allocated since the queue was empty */
};

#define MQO_OUTQ_CHUNK_MIN 256u
#define MQO_OUTQ_CHUNK 16384u

/* Appends a copy of p[0..n). Returns 0 or -ENOMEM. */
int mqo_outq_push_bytes(struct mqo_outq *q, const uint8_t *p, size_t n);
/* Appends a shared packet with its patch (takes a reference). Returns 0 or -ENOMEM. */
int mqo_outq_push_out(struct mqo_outq *q, const struct mqo_out *o);
/* Bytes of packet that can still be queued (mqo_outq_push_out) with mem staying within limit:
 * limit less mem, less what the next entry costs besides its bytes (its message header, and
 * the ring's growth when the ring is full). 0 when nothing fits. */
size_t mqo_outq_room(const struct mqo_outq *q, size_t limit);
/* Describes up to max_iov iovecs of queued bytes, from the front; scratch must hold 3 bytes per
 * iovec slot (patched bytes live there). Returns the iovec count. */
int mqo_outq_iov(const struct mqo_outq *q, struct iovec *iov, int max_iov, uint8_t *scratch);
/* Drops n written bytes from the front. */
void mqo_outq_advance(struct mqo_outq *q, size_t n);
/* Writes as much as the socket takes (writev, up to 64 iovecs per call, repeated).
 * Returns bytes written (>= 0) with q advanced, or -errno (EAGAIN is not an error: returns what
 * was written). */
ssize_t mqo_outq_flush(struct mqo_outq *q, int fd);
void mqo_outq_free(struct mqo_outq *q);
/* Appends every queued byte, as it would be written, to out (a takeover hands them on).
 * Returns 0 or -ENOMEM. */
int mqo_outq_copy(const struct mqo_outq *q, struct mqo_buf *out);

#endif
