/* Takeover: a new mqoff process takes the running one's sockets and state over a Unix socket
 * (`--takeover PATH`), so a restart or an upgrade closes no client connection.
 *
 * Every process started with --takeover PATH first connects to PATH. Nobody listening: it
 * starts fresh. A process listening: the takeover runs (below), and the new process goes on
 * with the old one's listener, connections and engine state. Either way it then listens on
 * PATH itself, for the next one.
 *
 *   new                                   old (serving; PATH readable)
 *   HELLO proto, snapshot version,  --->  versions or mode differ: REFUSE why, keeps serving
 *         mode, build                     else: stops reading (quiesces), flushes its queues
 *                                   <---  ACCEPT, FDS (SCM_RIGHTS, up to 200 a message)...,
 *                                         STATE chunks..., END total bytes, descriptors
 *   loads the state; on failure     --->  FAIL why: the old one serves on, nothing changed
 *   LOADED                          --->  BYE; unlinks PATH; exits without closing a
 *                                         connection (it only drops its descriptors)
 *   waits for the old one's socket to close (its exit), then serves
 *
 * Messages are SOCK_SEQPACKET records: u8 type, then the payload. The new process touches no
 * socket before the old one said BYE, and the old one reads none after it accepted: between
 * the two, the kernel buffers what clients send, and nothing is read twice or lost. */
#ifndef MQO_NET_TAKEOVER_H
#define MQO_NET_TAKEOVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Version of this exchange; a process of another one is refused. */
#ifndef MQO_TKO_PROTO
#define MQO_TKO_PROTO 1
/* SIGUSR2: the running process starts its successor itself, the same executable path (an
 * upgraded binary there is the new version) with the same arguments, which takes over through
 * the takeover socket the arguments name. set_exec records them (argv NULL-terminated, kept);
 * spawn returns 0 once started (what follows is logged by both), -errno. */
void mqo_tko_set_exec(char *const *argv);
int mqo_tko_spawn(void);

#endif

/* The build's version string, carried in HELLO for the log lines (default "unknown"). */
void mqo_tko_set_build(const char *v);

/* The old side: listens on path (removing a stale socket nobody serves). Returns a
 * non-blocking listening descriptor, or -errno (EADDRINUSE: a process serves there). */
int mqo_tko_listen(const char *path);

/* The old side, when the listener is readable: accepts the new process and checks its HELLO
 * against mode (and, with refuse != NULL, refuses with that reason whatever it says). Returns
 * a connected descriptor, or -1 after refusing it (logged: why, and that serving goes on). */
int mqo_tko_accept(int lfd, const char *mode, const char *refuse);

/* The old side: sends fds[0..nfds) and state; then waits for the new process. Returns 1 when
 * it loaded (BYE sent: the caller exits without touching a socket; fd is left open for the
 * exit to close, which the new process waits for), 0 when it failed or went away (logged;
 * the caller serves on; fd closed). */
int mqo_tko_handover(int fd, const int *fds, size_t nfds, const uint8_t *state, size_t n);

/* The new side: connects to path. Returns 0 when nobody serves there (start fresh), 1 with
 * *fd connected when the old process accepted, -EPROTO when it refused (logged), -errno. */
int mqo_tko_connect(const char *path, const char *mode, int *fd);

/* The new side: receives the descriptors (malloc'd array in *fds, *nfds) and the state.
 * Returns 0 or -errno (logged). */
int mqo_tko_receive(int fd, int **fds, size_t *nfds, struct mqo_buf *state);

/* The new side: loaded (why == NULL) or not. Loaded: sends LOADED, waits for BYE and for the
 * old process to exit (its socket closes), returns 0. Not: sends FAIL why, returns -1. Closes
 * fd. */
int mqo_tko_finish(int fd, const char *why);

/* SIGUSR2: the running process starts its successor itself, the same executable path (an
 * upgraded binary there is the new version) with the same arguments, which takes over through
 * the takeover socket the arguments name. set_exec records them (argv NULL-terminated, kept);
 * spawn returns 0 once started (what follows is logged by both), -errno. */
void mqo_tko_set_exec(char *const *argv);
int mqo_tko_spawn(void);

#endif
