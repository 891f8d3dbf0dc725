/* The intercept channel: the messages between mqoff in intercept mode (modes/intercept.c) and
 * the shim inside the broker process (preload/shim.c). Version 1; the protocol is described in
 * docs/ARCHITECTURE.md ("intercept mode: the channel").
 *
 * Every message is an 8-byte header and a body:
 *
 *   0  'M' 'Q'      magic
 *   2  version      of this message's layout (1)
 *   3  type         enum mqo_chan_type
 *   4  length       of the body, big-endian u16, at most MQO_CHAN_MAX - 8
 *   6  0 0          reserved
 *
 * All integers are big-endian. A body longer than its type needs is accepted and the rest
 * ignored (room for compatible additions within a version); a shorter one is malformed. A HELLO
 * is read whatever its header's version says (its layout never changes), so two sides of any
 * versions can always agree on one or say why not (REFUSE, whose layout never changes either).
 *
 * chan.c is the codec (no I/O, fuzzed: fuzz/chan); chan_io.c moves messages over AF_UNIX
 * SOCK_SEQPACKET sockets, one message per datagram, with at most one descriptor each. */
#ifndef MQO_CHAN_CHAN_H
#define MQO_CHAN_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MQO_CHAN_VERSION 1
#define MQO_CHAN_HDR 8
#define MQO_CHAN_MAX 512        /* largest message, header included */
#define MQO_CHAN_REASON_MAX 200 /* longest REFUSE reason */

enum mqo_chan_type {
    MQO_CHAN_HELLO = 1,     /* shim -> mqoff, first on the control link */
    MQO_CHAN_WELCOME = 2,   /* mqoff -> shim: version taken, the address mqoff listens on */
    MQO_CHAN_REFUSE = 3,    /* mqoff -> shim: why not; mqoff closes the link */
    MQO_CHAN_ATTACH = 4,    /* shim -> mqoff, carries the accept link's descriptor */
    MQO_CHAN_HEARTBEAT = 5, /* shim -> mqoff, every heartbeat_ms */
    MQO_CHAN_CONN = 6,      /* mqoff -> shim on the accept link, carries one client stream */
};

enum mqo_chan_refusal {
    MQO_CHAN_R_VERSION = 1,  /* no common version */
    MQO_CHAN_R_LISTENER = 2, /* the shim intercepts another address than mqoff listens on */
    MQO_CHAN_R_BUSY = 3,     /* another broker is attached */
    MQO_CHAN_R_PROTOCOL = 4, /* a malformed or unexpected message */
};

/* An endpoint: family 0 (none), 4 (IPv4: the first 4 bytes of a) or 6 (IPv6). 24 bytes on the
 * wire: family, 0, port, scope id, 16 address bytes. */
struct mqo_chan_addr {
    uint8_t family;
    uint16_t port; /* host order */
    uint32_t scope;
    uint8_t a[16];
};

struct mqo_chan_msg {
    uint8_t type; /* enum mqo_chan_type; another value: a type this version does not know */
    union {
        struct {
            uint8_t min_version, max_version; /* the shim speaks these and those between */
            uint32_t pid;
            struct mqo_chan_addr listener; /* already intercepted (a restarted mqoff), or none */
        } hello;
        struct {
            uint32_t pid;
            uint32_t heartbeat_ms; /* the shim's heartbeat interval; mqoff gives up after 5 */
            struct mqo_chan_addr listen;
        } welcome;
        struct {
            uint16_t code; /* enum mqo_chan_refusal */
            char reason[MQO_CHAN_REASON_MAX + 1]; /* NUL-terminated, printable ASCII */
        } refuse;
        struct {
            struct mqo_chan_addr listener;
        } attach;
        struct {
            uint64_t accepted; /* client streams the broker has taken so far */
        } heartbeat;
        struct {
            uint64_t id;
            struct mqo_chan_addr peer, local; /* the client's and the listener's address */
        } conn;
    } u;
};

/* Serializes m into out. Returns the message length, or 0 when cap is too small or the type
 * unknown. The reason of a REFUSE is cut at MQO_CHAN_REASON_MAX bytes. */
size_t mqo_chan_encode(const struct mqo_chan_msg *m, uint8_t *out, size_t cap);

/* Parses one message from p[0..n). Returns its length (> 0) with *m set, 0 when n holds less
 * than a whole message, or a negative errno: -EPROTO (no magic), -EMSGSIZE (longer than
 * MQO_CHAN_MAX), -EPROTONOSUPPORT (a version other than 1; HELLO and REFUSE are read at any), -EBADMSG (a body too
 * short for its type, a bad address family, nonzero reserved bytes). A type this version does
 * not know is returned (> 0) with only m->type set: the caller skips it. */
ssize_t mqo_chan_decode(const uint8_t *p, size_t n, struct mqo_chan_msg *m);

/* Converts a socket address (AF_INET, AF_INET6). Returns 0, or -EAFNOSUPPORT (*out untouched). */
int mqo_chan_addr_from(const struct sockaddr *sa, socklen_t len, struct mqo_chan_addr *out);
/* Converts back. Returns the address length, 0 for family 0. */
socklen_t mqo_chan_addr_to(const struct mqo_chan_addr *a, struct sockaddr_storage *out);
/* 1 when a and b are the same endpoint (family, address, port, scope), else 0. */
int mqo_chan_addr_eq(const struct mqo_chan_addr *a, const struct mqo_chan_addr *b);
/* "198.18.0.2:1883", "[::1]:1883" or "none" into buf (always NUL-terminated). Returns buf. */
char *mqo_chan_addr_str(const struct mqo_chan_addr *a, char *buf, size_t n);
/* "HELLO", "CONN", ... or "unknown". */
const char *mqo_chan_type_name(uint8_t type);
/* "no common version", ... */
const char *mqo_chan_refusal_name(uint16_t code);

/* Sends one message on an AF_UNIX SOCK_SEQPACKET socket, with the descriptor pass_fd
 * (SCM_RIGHTS) when >= 0; the caller keeps its own pass_fd. Never raises SIGPIPE. Returns 0 or
 * -errno (-EAGAIN: a non-blocking socket is full; nothing was sent). */
int mqo_chan_send(int sock, const struct mqo_chan_msg *m, int pass_fd);

/* Receives one message. flags: MSG_DONTWAIT and/or MSG_CMSG_CLOEXEC. Returns 1 with *m set and
 * *fd the descriptor that came with it (-1: none; the caller owns it), 0 at the end of the
 * stream, or -errno: -EAGAIN (nothing there), -EMFILE (a descriptor came but the process had
 * no room for it: the kernel dropped it; *m is set), -EBADMSG (malformed, or more than one
 * descriptor: whatever came with it is closed), another errno of recvmsg. */
int mqo_chan_recv(int sock, struct mqo_chan_msg *m, int *fd, int flags);

#endif
