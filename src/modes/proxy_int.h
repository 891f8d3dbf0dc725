/* Proxy mode's loop with a network stack other than the kernel's sockets (modes/proxy_lwip.c,
 * lwIP over raw frames): the connection layer (the engine's edits, output queues, back-pressure,
 * half-close, resets, broker failures, ordering of broker writes) is proxy.c's for both; a
 * stack only moves bytes. Each side of a connection is either a kernel socket (fd) or a
 * handle of the stack (h): intercept mode on lwIP has a stack client side and a socket broker
 * side.
 *
 * Calls go both ways. The loop calls the stack's ops (struct mqo_px_stack); the stack calls
 * mqo_px_* from its callbacks, which run only inside the loop's calls to poll, tick, resume
 * and send (one thread; the stack never runs on its own). */
#ifndef MQO_MODES_PROXY_INT_H
#define MQO_MODES_PROXY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "modes/proxy.h"
#include "net/outq.h"

struct proxy;
struct pconn;

enum { MQO_PX_CLIENT = 0, MQO_PX_BROKER = 1 };

struct mqo_px_stack {
    void *arg;
    /* Descriptor that becomes readable when the stack has input (epoll), -1: none, the loop
     * then polls without sleeping. */
    int fd;
    /* Starts listening on cfg->listen_addr; accepted connections come through
     * mqo_px_accepted. Returns 0 or -errno (logged). */
    int (*start)(void *arg, struct proxy *px);
    /* Every iteration, before the loop's events: input (callbacks run here). */
    void (*poll)(void *arg);
    /* Every iteration, last: sends what the iteration produced. */
    void (*flush)(void *arg);
    /* Every iteration: the stack's timers (retransmission, delayed ACKs). */
    void (*tick)(void *arg, uint64_t now_ns);
    /* Opens the broker side of pc toward cfg->broker_addr: returns a handle (the connection
     * completes with mqo_px_connected or fails with mqo_px_broker_failed), NULL with *err. */
    void *(*connect)(void *arg, struct pconn *pc, int *err);
    /* Writes from the front of q as much as the stack takes now (q advanced). Returns the
     * bytes taken, or -errno (the connection is gone). */
    ssize_t (*send)(void *arg, void *h, struct mqo_outq *q);
    /* Writes p[0..n) at once if it fits (a CONNACK refusing the client). */
    void (*send_raw)(void *arg, void *h, const uint8_t *p, size_t n);
    /* No more bytes to send on h: FIN after what is queued. */
    void (*shut)(void *arg, void *h);
    /* Reading was paused on h and may go on (input refused meanwhile is offered again). */
    void (*resume)(void *arg, void *h);
    /* Done with h (no more callbacks for it): a FIN after what is queued, or a reset (abort). */
    void (*close)(void *arg, void *h, int abort);
    /* The stack's counters for the control socket (may be NULL). */
    size_t (*counters)(void *arg, struct mqo_ctl_counter *out, size_t cap);
};

/* Runs proxy mode (or intercept mode's loop: cfg->upstream) with the stack. */
int mqo_px_run(const struct mqo_proxy_cfg *cfg, const struct mqo_px_stack *st,
               struct mqo_engine_stats *est, struct mqo_proxy_stats *pst);

/* A client connected (handle h of the stack); peer/local are its addresses. Opens the broker
 * side. Returns the connection, or NULL (no memory, logged): the stack then aborts h. */
struct pconn *mqo_px_accepted(struct proxy *px, void *h, const struct sockaddr *peer,
                              socklen_t peer_len, const struct sockaddr *local,
                              socklen_t local_len);
/* Bytes arrived on a side. */
void mqo_px_input(struct pconn *pc, int side, const uint8_t *p, size_t n);
/* 1 while the side's input is taken (0: paused for back-pressure, or the connection is
 * closing): the stack keeps refused input and offers it again after resume. */
int mqo_px_reading(const struct pconn *pc, int side);
/* The side's peer finished sending (FIN). */
void mqo_px_eof(struct pconn *pc, int side);
/* The side's handle is gone (reset, or a failure of the stack; err an errno): the other side
 * is reset too, or for a broker side still connecting the client is refused. The stack must
 * not touch h again. */
void mqo_px_gone(struct pconn *pc, int side, int err);
/* The broker side connected, or could not (err: an errno). For the latter the handle is gone. */
void mqo_px_connected(struct pconn *pc);
void mqo_px_broker_failed(struct pconn *pc, int err);
/* The side can take more bytes (acknowledged data freed send buffer). */
void mqo_px_writable(struct pconn *pc, int side);
/* Connections open now. */
size_t mqo_px_conns(const struct proxy *px);
const struct mqo_proxy_cfg *mqo_px_cfg(const struct proxy *px);

#endif
