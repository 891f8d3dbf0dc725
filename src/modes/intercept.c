/* intercept mode: proxy mode's loop with the broker side of each connection handed to the
 * broker over the channel (modes/intercept.h, chan/chan.h).
 *
 * The channel: mqoff listens on a Unix SOCK_SEQPACKET socket at --channel. The shim in the
 * broker connects (the control link) and says HELLO; mqoff answers WELCOME with the address it
 * listens on, and the shim intercepts the broker's listener for that address and sends ATTACH
 * carrying one end of the accept link. From then on each client connection mqoff accepts gets a
 * stream socketpair: mqoff keeps one end as the connection's broker side (proxy.c's engine
 * and queues run as for a TCP broker connection), the other goes to the broker in a CONN
 * message on the accept link and is closed here. One broker at a time; it stays attached while
 * its heartbeats come.
 *
 * No broker attached (none yet, or it went away): a new client's CONNECT is answered "server
 * unavailable" and the connection closed (proxy.c's path for an unreachable broker). A broker
 * that goes away takes its connections with it: their broker ends close, proxy.c sees the end
 * of the stream and closes the clients after what they are owed. A lost control link with a
 * live broker (heartbeats stopped) detaches it the same way for new clients; the connections
 * it already has are plain socketpairs and go on.
 *
 * Own descriptors sit in an epoll set of their own, whose descriptor the proxy loop waits on
 * (mqo_proxy_upstream.fd), so the loop knows nothing of the channel. */
#include "modes/intercept.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chan/chan.h"
#include "core/log.h"
#include "core/ser.h"

#define MAX_PEERS 8          /* control links at once: one broker, the rest are told why not */
#define MAX_PENDING 4096     /* connections waiting for room on the accept link */
#define MISSED_HEARTBEATS 5 /* and as many heartbeat intervals for a new peer's HELLO */
#define REFUSE_LOG_NS 10000000000ull /* refused clients are summed up at most this often */

enum { TAG_CHAN = 1, TAG_LINK = 2, TAG_PEER = 16 };
enum { P_FREE = 0, P_HELLO, P_WELCOMED };

struct peer {
    int fd;
    int state;
    uint32_t pid; /* SO_PEERCRED's, else the HELLO's */
    uint64_t deadline;
};

struct handoff {
    int fd; /* the broker's end, sent with m */
    struct mqo_chan_msg m;
};

struct icpt {
    const struct mqo_intercept_cfg *cfg;
    struct mqo_chan_addr listen;
    uint32_t hb_ms;
    int ep, chan;
    dev_t chan_dev;
    ino_t chan_ino;
    struct peer peers[MAX_PEERS];
    struct peer *att; /* the welcomed broker, NULL: none */
    int link;         /* its accept link, -1: not attached yet */
    uint32_t link_ev;
    struct handoff *q;
    size_t qhead, qn, qcap;
    uint64_t next_id;
    uint64_t refused_unlogged, refuse_logged_at;
    const char *refuse_why;
    struct mqo_intercept_stats st;
    uint64_t now;
    /* the caller's on_listen, called after learning the port */
    void (*user_on_listen)(void *arg, uint16_t port);
    void *user_on_listen_arg;
    uint8_t handed; /* a takeover took the channel: this process only drops its descriptors */
};

static void ep_set(struct icpt *ic, int op, int fd, uint32_t ev, uint64_t tag)
{
    struct epoll_event e = {.events = ev, .data.u64 = tag};
    epoll_ctl(ic->ep, op, fd, &e);
}

/* ---- handoff queue ---- */

static struct handoff *q_at(struct icpt *ic, size_t i) { return &ic->q[(ic->qhead + i) % ic->qcap]; }

static int q_push(struct icpt *ic, int fd, const struct mqo_chan_msg *m)
{
    if (ic->qn == ic->qcap) {
        size_t nc = ic->qcap ? ic->qcap * 2 : 64;
        struct handoff *nq = malloc(nc * sizeof *nq);
        if (!nq)
            return -ENOMEM;
        for (size_t i = 0; i < ic->qn; i++)
            nq[i] = *q_at(ic, i);
        free(ic->q);
        ic->q = nq;
        ic->qcap = nc;
        ic->qhead = 0;
    }
    struct handoff *h = q_at(ic, ic->qn++);
    h->fd = fd;
    h->m = *m;
    return 0;
}

/* Closes every connection still waiting: its client sees the end of its broker stream. */
static void q_drop(struct icpt *ic)
{
    for (size_t i = 0; i < ic->qn; i++)
        close(q_at(ic, i)->fd);
    ic->st.handoff_lost += ic->qn;
    ic->qn = 0;
    ic->qhead = 0;
}

static void link_events(struct icpt *ic)
{
    uint32_t ev = ic->qn ? EPOLLOUT : 0; /* EPOLLHUP and EPOLLERR come anyway */
    if (ic->link >= 0 && ev != ic->link_ev) {
        ep_set(ic, EPOLL_CTL_MOD, ic->link, ev, TAG_LINK);
        ic->link_ev = ev;
    }
}

/* ---- peers ---- */

/* How long a peer may say nothing: MISSED_HEARTBEATS intervals (5 s by default). */
static uint64_t silence_ns(const struct icpt *ic)
{
    return (uint64_t)ic->hb_ms * MISSED_HEARTBEATS * 1000000ull;
}

static void detach(struct icpt *ic, const char *why)
{
    if (!ic->att)
        return;
    if (ic->link >= 0) {
        mqo_warn("intercept: broker pid %u detached (%s): new clients are refused until a broker "
                 "attaches; %zu handed-off connections it had not taken yet are closed",
                 ic->att->pid, why, ic->qn);
        close(ic->link); /* also leaves the epoll set */
        ic->link = -1;
        ic->st.detaches++;
    } else {
        mqo_warn("intercept: broker pid %u left before attaching a listener (%s)", ic->att->pid,
                 why);
    }
    q_drop(ic);
    ic->att = NULL;
}

static void drop_peer(struct icpt *ic, struct peer *p, const char *why)
{
    if (p == ic->att)
        detach(ic, why);
    close(p->fd);
    p->fd = -1;
    p->state = P_FREE;
}

/* Refuses a peer (REFUSE, then close). */
static void refuse_peer(struct icpt *ic, struct peer *p, uint16_t code, const char *reason)
{
    struct mqo_chan_msg m = {.type = MQO_CHAN_REFUSE};
    m.u.refuse.code = code;
    strncpy(m.u.refuse.reason, reason, MQO_CHAN_REASON_MAX);
    (void)mqo_chan_send(p->fd, &m, -1);
    mqo_warn("intercept: channel peer pid %u refused: %s (%s)", p->pid, reason,
             mqo_chan_refusal_name(code));
    ic->st.bad_peers++;
    drop_peer(ic, p, reason);
}

static void on_hello(struct icpt *ic, struct peer *p, const struct mqo_chan_msg *m)
{
    char a[64], b[64];
    if (!p->pid)
        p->pid = m->u.hello.pid;
    if (m->u.hello.min_version > MQO_CHAN_VERSION || m->u.hello.max_version < MQO_CHAN_VERSION) {
        char r[96];
        snprintf(r, sizeof r, "the shim speaks versions %u..%u, mqoff %u",
                 m->u.hello.min_version, m->u.hello.max_version, MQO_CHAN_VERSION);
        refuse_peer(ic, p, MQO_CHAN_R_VERSION, r);
        return;
    }
    if (m->u.hello.listener.family && !mqo_chan_addr_eq(&m->u.hello.listener, &ic->listen)) {
        char r[160];
        snprintf(r, sizeof r, "the broker intercepts %s, mqoff listens on %s",
                 mqo_chan_addr_str(&m->u.hello.listener, a, sizeof a),
                 mqo_chan_addr_str(&ic->listen, b, sizeof b));
        refuse_peer(ic, p, MQO_CHAN_R_LISTENER, r);
        return;
    }
    if (ic->att) {
        char r[96];
        snprintf(r, sizeof r, "broker pid %u is attached", ic->att->pid);
        refuse_peer(ic, p, MQO_CHAN_R_BUSY, r);
        return;
    }
    struct mqo_chan_msg w = {.type = MQO_CHAN_WELCOME};
    w.u.welcome.pid = (uint32_t)getpid();
    w.u.welcome.heartbeat_ms = ic->hb_ms;
    w.u.welcome.listen = ic->listen;
    int r = mqo_chan_send(p->fd, &w, -1);
    if (r) {
        mqo_warn("intercept: cannot answer broker pid %u: %s", p->pid, strerror(-r));
        drop_peer(ic, p, "WELCOME not sent");
        return;
    }
    p->state = P_WELCOMED;
    ic->att = p;
    mqo_info("intercept: broker pid %u on the channel; waiting for it to attach its listener %s",
             p->pid, mqo_chan_addr_str(&ic->listen, a, sizeof a));
}

static void on_attach(struct icpt *ic, struct peer *p, const struct mqo_chan_msg *m, int fd)
{
    char a[64];
    if (fd < 0 || !mqo_chan_addr_eq(&m->u.attach.listener, &ic->listen)) {
        if (fd >= 0)
            close(fd);
        refuse_peer(ic, p, MQO_CHAN_R_PROTOCOL,
                    fd < 0 ? "ATTACH without its descriptor" : "ATTACH of another listener");
        return;
    }
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_SEQPACKET) {
        close(fd);
        refuse_peer(ic, p, MQO_CHAN_R_PROTOCOL, "ATTACH with a descriptor that is no SEQPACKET socket");
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (ic->link >= 0) { /* the broker made its listener again: the old one takes nothing */
        close(ic->link);
        q_drop(ic);
    } else {
        ic->st.attaches++;
    }
    ic->link = fd;
    ic->link_ev = 0;
    ep_set(ic, EPOLL_CTL_ADD, fd, 0, TAG_LINK);
    mqo_info("intercept: broker pid %u attached: clients on %s go to it", p->pid,
             mqo_chan_addr_str(&ic->listen, a, sizeof a));
}

/* Reads what a peer sent. */
static void peer_read(struct icpt *ic, struct peer *p)
{
    for (int k = 0; k < 16 && p->state != P_FREE; k++) {
        struct mqo_chan_msg m;
        int fd = -1;
        int r = mqo_chan_recv(p->fd, &m, &fd, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r == -EAGAIN)
            return;
        if (r == 0) {
            drop_peer(ic, p, "the broker closed the channel (it exited?)");
            return;
        }
        if (r == -EMFILE) {
            mqo_err("intercept: no descriptor left to receive broker pid %u's accept link", p->pid);
            drop_peer(ic, p, "out of descriptors");
            return;
        }
        if (r < 0) {
            char why[80];
            snprintf(why, sizeof why, "malformed message on the channel (%s)", strerror(-r));
            if (r == -EBADMSG || r == -EPROTO || r == -EPROTONOSUPPORT || r == -EMSGSIZE)
                refuse_peer(ic, p, MQO_CHAN_R_PROTOCOL, why);
            else
                drop_peer(ic, p, strerror(-r));
            return;
        }
        p->deadline = ic->now + silence_ns(ic);
        if (p->state == P_HELLO) {
            if (fd >= 0)
                close(fd);
            if (m.type != MQO_CHAN_HELLO)
                refuse_peer(ic, p, MQO_CHAN_R_PROTOCOL, "the first message is not HELLO");
            else
                on_hello(ic, p, &m);
            continue;
        }
        switch (m.type) {
        case MQO_CHAN_ATTACH:
            on_attach(ic, p, &m, fd);
            break;
        case MQO_CHAN_HEARTBEAT:
            if (fd >= 0)
                close(fd);
            break;
        case MQO_CHAN_HELLO:
        case MQO_CHAN_WELCOME:
        case MQO_CHAN_REFUSE:
        case MQO_CHAN_CONN:
            if (fd >= 0)
                close(fd);
            refuse_peer(ic, p, MQO_CHAN_R_PROTOCOL, "unexpected message on the control link");
            break;
        default: /* a later version's message */
            if (fd >= 0)
                close(fd);
            break;
        }
    }
}

static void chan_accept(struct icpt *ic)
{
    for (;;) {
        int fd = accept4(ic->chan, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                mqo_err("intercept: no descriptor left for a channel peer (%s)", strerror(errno));
            return;
        }
        struct peer *p = NULL;
        for (int i = 0; i < MAX_PEERS && !p; i++)
            if (ic->peers[i].state == P_FREE)
                p = &ic->peers[i];
        if (!p) {
            mqo_warn("intercept: %d channel peers already: one more closed", MAX_PEERS);
            ic->st.bad_peers++;
            close(fd);
            continue;
        }
        struct ucred cr;
        socklen_t cl = sizeof cr;
        *p = (struct peer){.fd = fd, .state = P_HELLO, .deadline = ic->now + silence_ns(ic)};
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            p->pid = (uint32_t)cr.pid;
        ep_set(ic, EPOLL_CTL_ADD, fd, EPOLLIN, TAG_PEER + (uint64_t)(p - ic->peers));
    }
}

/* Sends what waits for the accept link, as far as it takes it. */
static void link_flush(struct icpt *ic)
{
    while (ic->qn && ic->link >= 0) {
        struct handoff *h = q_at(ic, 0);
        int r = mqo_chan_send(ic->link, &h->m, h->fd);
        if (r == -EAGAIN)
            break;
        if (r) {
            detach(ic, strerror(-r));
            break;
        }
        close(h->fd);
        ic->st.handed++;
        ic->qhead = (ic->qhead + 1) % ic->qcap;
        ic->qn--;
    }
    link_events(ic);
}

/* ---- the proxy loop's upstream ---- */

static void refused(struct icpt *ic, const char *why)
{
    ic->st.refused++;
    if (!ic->refuse_logged_at || ic->now - ic->refuse_logged_at >= REFUSE_LOG_NS) {
        mqo_warn("intercept: a client refused (CONNACK server unavailable): %s", why);
        ic->refuse_logged_at = ic->now;
        ic->refuse_why = why;
    } else {
        ic->refused_unlogged++;
    }
}

static int up_open(void *arg, const struct sockaddr *peer, socklen_t pl,
                   const struct sockaddr *local, socklen_t ll)
{
    struct icpt *ic = arg;
    if (!ic->att || ic->link < 0) {
        refused(ic, "no broker attached");
        return -ENOTCONN;
    }
    if (ic->qn >= MAX_PENDING) {
        refused(ic, "the broker is not taking connections");
        return -EAGAIN;
    }
    struct mqo_chan_msg m = {.type = MQO_CHAN_CONN};
    m.u.conn.id = ++ic->next_id;
    if (mqo_chan_addr_from(peer, pl, &m.u.conn.peer) ||
        mqo_chan_addr_from(local, ll, &m.u.conn.local)) {
        refused(ic, "not an IP client");
        return -EAFNOSUPPORT;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        refused(ic, e == EMFILE || e == ENFILE ? "mqoff has no descriptor left"
                                                : "socketpair failed");
        return -e;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK); /* the broker's end stays blocking,
                                                                 as accept() would return it */
    if (ic->qn == 0) {
        int r = mqo_chan_send(ic->link, &m, sv[1]);
        if (r == 0) {
            close(sv[1]);
            ic->st.handed++;
            return sv[0];
        }
        if (r != -EAGAIN) {
            close(sv[0]);
            close(sv[1]);
            detach(ic, strerror(-r));
            refused(ic, "no broker attached");
            return -ENOTCONN;
        }
    }
    if (q_push(ic, sv[1], &m)) {
        close(sv[0]);
        close(sv[1]);
        refused(ic, "out of memory");
        return -ENOMEM;
    }
    link_events(ic);
    return sv[0];
}

static void up_ready(void *arg, uint64_t now)
{
    struct icpt *ic = arg;
    ic->now = now;
    struct epoll_event evs[32];
    int n = epoll_wait(ic->ep, evs, 32, 0);
    for (int i = 0; i < n; i++) {
        uint64_t t = evs[i].data.u64;
        if (t == TAG_CHAN) {
            chan_accept(ic);
        } else if (t == TAG_LINK) {
            if (ic->link < 0)
                continue;
            if (evs[i].events & (EPOLLHUP | EPOLLERR))
                detach(ic, "its listener is gone");
            else
                link_flush(ic);
        } else if (t >= TAG_PEER && t < TAG_PEER + MAX_PEERS) {
            struct peer *p = &ic->peers[t - TAG_PEER];
            if (p->state != P_FREE)
                peer_read(ic, p);
        }
    }
}

static void up_tick(void *arg, uint64_t now)
{
    struct icpt *ic = arg;
    ic->now = now;
    for (int i = 0; i < MAX_PEERS; i++) {
        struct peer *p = &ic->peers[i];
        if (p->state == P_FREE || now < p->deadline)
            continue;
        if (p->state == P_HELLO) {
            mqo_warn("intercept: channel peer pid %u said no HELLO within %u ms: closed", p->pid,
                     ic->hb_ms * MISSED_HEARTBEATS);
            ic->st.bad_peers++;
            drop_peer(ic, p, "no HELLO");
        } else {
            char why[96];
            snprintf(why, sizeof why, "no heartbeat for %u ms", ic->hb_ms * MISSED_HEARTBEATS);
            drop_peer(ic, p, why);
        }
    }
    if (ic->refused_unlogged && now - ic->refuse_logged_at >= REFUSE_LOG_NS) {
        mqo_warn("intercept: %llu more clients refused (CONNACK server unavailable) in %llu s: %s",
                 (unsigned long long)ic->refused_unlogged,
                 (unsigned long long)((now - ic->refuse_logged_at) / 1000000000ull),
                 ic->refuse_why);
        ic->refused_unlogged = 0;
        ic->refuse_logged_at = now;
    }
}

static void on_listen(void *arg, uint16_t port)
{
    struct icpt *ic = arg;
    ic->listen.port = port;
    if (ic->user_on_listen)
        ic->user_on_listen(ic->user_on_listen_arg, port);
}

/* ---- the channel's socket ---- */

/* Creates the listening socket at path. A socket file nobody answers on is a leftover and is
 * replaced; one that answers belongs to a running mqoff; anything else is left alone. Returns
 * the descriptor or -errno, logged. */
static int chan_listen(struct icpt *ic, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        mqo_err("intercept: --channel %s: longer than a Unix socket path may be (%zu)", path,
                sizeof sa.sun_path - 1);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            mqo_err("intercept: --channel %s exists and is not a socket: not touching it", path);
            return -EEXIST;
        }
        int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(c);
            mqo_err("intercept: --channel %s is in use (another mqoff?)", path);
            return -EADDRINUSE;
        }
        if (c >= 0)
            close(c);
        unlink(path); /* a leftover of a mqoff that did not stop cleanly */
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t um = umask(0117); /* rw for the owner and group: the broker may run as another user */
    int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(um);
    if (r < 0 || listen(fd, MAX_PEERS) < 0 || fstat(fd, &st) < 0 || lstat(path, &st) < 0) {
        int e = errno;
        mqo_err("intercept: --channel %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    ic->chan_dev = st.st_dev;
    ic->chan_ino = st.st_ino;
    return fd;
}

/* Removes the socket file if it is still the one this mqoff made. */
static void chan_unlink(struct icpt *ic, const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && st.st_dev == ic->chan_dev && st.st_ino == ic->chan_ino)
        unlink(path);
}

/* ---- takeover (the proxy loop's upstream hooks) ----
 *
 * Handed over: the channel's listening socket, the attached broker's control link and accept
 * link, and the connections waiting for the accept link (their broker ends with their CONN
 * messages). The shim notices nothing: its links stay open (the same sockets), and what it sends
 * meanwhile waits in them. Peers that have not said HELLO yet are not handed over (they see the
 * old process close them and come again). */

#define ICPT_SNAP_VERSION 1

static int up_start(void *arg)
{
    struct icpt *ic = arg;
    int rc = chan_listen(ic, ic->cfg->channel);
    if (rc < 0)
        return rc;
    ic->chan = rc;
    ep_set(ic, EPOLL_CTL_ADD, ic->chan, EPOLLIN, TAG_CHAN);
    return 0;
}

static int up_save(void *arg, struct mqo_buf *out, int **fdsp, size_t *nfdsp)
{
    struct icpt *ic = arg;
    size_t n = 0;
    int *fds = malloc((3 + ic->qn) * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    struct mqo_wr w = {.b = out};
    mqo_wr_u32(&w, ICPT_SNAP_VERSION);
    fds[n++] = ic->chan;
    mqo_wr_u64(&w, (uint64_t)ic->chan_dev);
    mqo_wr_u64(&w, (uint64_t)ic->chan_ino);
    mqo_wr_u8(&w, ic->att != NULL);
    if (ic->att) {
        fds[n++] = ic->att->fd;
        mqo_wr_u32(&w, ic->att->pid);
        mqo_wr_u64(&w, ic->att->deadline);
        mqo_wr_u8(&w, (uint8_t)ic->att->state);
    }
    mqo_wr_u8(&w, ic->link >= 0);
    if (ic->link >= 0)
        fds[n++] = ic->link;
    mqo_wr_u32(&w, (uint32_t)ic->qn);
    for (size_t i = 0; i < ic->qn; i++) {
        struct handoff *h = q_at(ic, i);
        uint8_t m[MQO_CHAN_MAX];
        size_t ml = mqo_chan_encode(&h->m, m, sizeof m);
        mqo_wr_blob(&w, m, ml);
        fds[n++] = h->fd;
    }
    mqo_wr_u64(&w, ic->next_id);
    size_t nst = sizeof ic->st / sizeof(uint64_t);
    mqo_wr_u32(&w, (uint32_t)nst);
    for (size_t i = 0; i < nst; i++)
        mqo_wr_u64(&w, ((const uint64_t *)&ic->st)[i]);
    if (w.err) {
        free(fds);
        return w.err;
    }
    *fdsp = fds;
    *nfdsp = n;
    return 0;
}

static int up_load(void *arg, const uint8_t *p, size_t len, const int *fds, size_t nfds)
{
    struct icpt *ic = arg;
    struct mqo_rd r = {.p = p, .n = len};
    size_t k = 0;
    int rc = -EINVAL;
    if (mqo_rd_u32(&r) != ICPT_SNAP_VERSION || nfds < 1)
        goto fail;
    ic->chan = fds[k++];
    ic->chan_dev = (dev_t)mqo_rd_u64(&r);
    ic->chan_ino = (ino_t)mqo_rd_u64(&r);
    ep_set(ic, EPOLL_CTL_ADD, ic->chan, EPOLLIN, TAG_CHAN);
    if (mqo_rd_u8(&r)) {
        if (k >= nfds)
            goto fail;
        struct peer *pe = &ic->peers[0];
        pe->fd = fds[k++];
        pe->pid = mqo_rd_u32(&r);
        pe->deadline = mqo_rd_u64(&r);
        pe->state = mqo_rd_u8(&r) == P_WELCOMED ? P_WELCOMED : P_HELLO;
        ic->att = pe->state == P_WELCOMED ? pe : NULL;
        ep_set(ic, EPOLL_CTL_ADD, pe->fd, EPOLLIN, TAG_PEER);
    }
    if (mqo_rd_u8(&r)) {
        if (k >= nfds || !ic->att)
            goto fail;
        ic->link = fds[k++];
        ic->link_ev = 0;
        ep_set(ic, EPOLL_CTL_ADD, ic->link, 0, TAG_LINK);
    }
    uint32_t nq = mqo_rd_count(&r, 4);
    for (uint32_t i = 0; i < nq && !r.err; i++) {
        size_t ml;
        const uint8_t *m = mqo_rd_blob(&r, MQO_CHAN_MAX, &ml);
        struct mqo_chan_msg msg;
        if (r.err || k >= nfds || mqo_chan_decode(m, ml, &msg) != (ssize_t)ml ||
            q_push(ic, fds[k], &msg))
            goto fail;
        k++;
    }
    ic->next_id = mqo_rd_u64(&r);
    uint32_t nst = mqo_rd_count(&r, 8);
    for (uint32_t i = 0; i < nst; i++) {
        uint64_t v = mqo_rd_u64(&r);
        if (i < sizeof ic->st / sizeof(uint64_t))
            ((uint64_t *)&ic->st)[i] = v;
    }
    if (r.err || r.off != r.n || k != nfds)
        goto fail;
    link_events(ic);
    return 0;
fail:
    /* what was not taken yet is closed here; what was is closed with the rest at the end */
    for (size_t i = k; i < nfds; i++)
        close(fds[i]);
    return rc;
}

static void up_handed(void *arg)
{
    struct icpt *ic = arg;
    ic->handed = 1;
}


int mqo_intercept_run(const struct mqo_intercept_cfg *cfg, struct mqo_engine_stats *est,
                      struct mqo_proxy_stats *pst, struct mqo_intercept_stats *ist)
{
    struct icpt ic = {.cfg = cfg, .ep = -1, .chan = -1, .link = -1};
    ic.hb_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
    for (int i = 0; i < MAX_PEERS; i++)
        ic.peers[i].fd = -1;
    if (mqo_chan_addr_from((const struct sockaddr *)&cfg->proxy.listen_addr,
                           cfg->proxy.listen_len, &ic.listen)) {
        mqo_err("intercept: --listen must be an IPv4 or IPv6 address");
        return -EAFNOSUPPORT;
    }
    ic.ep = epoll_create1(EPOLL_CLOEXEC);
    if (ic.ep < 0)
        return -errno;
    int rc;
    /* the channel's socket: made by up_start, or handed over by a takeover (up_load) */
    struct mqo_proxy_upstream up = {.open = up_open, .fd = ic.ep, .ready = up_ready,
                                    .tick = up_tick, .start = up_start, .save = up_save,
                                    .load = up_load, .handed = up_handed, .arg = &ic};
    struct mqo_proxy_cfg pc = cfg->proxy;
    pc.upstream = &up;
    ic.user_on_listen = pc.on_listen;
    ic.user_on_listen_arg = pc.on_listen_arg;
    pc.on_listen = on_listen;
    pc.on_listen_arg = &ic;
    rc = mqo_proxy_run(&pc, est, pst);
    if (ic.handed) {
        /* the new process has the channel, the links and the waiting connections: only the
         * descriptors go (the socket file stays, it is the new process's) */
        for (int i = 0; i < MAX_PEERS; i++)
            if (ic.peers[i].fd >= 0)
                close(ic.peers[i].fd);
        if (ic.link >= 0)
            close(ic.link);
        for (size_t i = 0; i < ic.qn; i++)
            close(q_at(&ic, i)->fd);
        free(ic.q);
        if (ic.chan >= 0)
            close(ic.chan);
        close(ic.ep);
        if (ist)
            *ist = ic.st;
        return rc;
    }
    /* stopping: the broker's shim sees the channel close and waits for the next mqoff */
    if (ic.att && ic.link >= 0) {
        close(ic.link);
        ic.link = -1;
        ic.st.detaches++;
    }
    ic.att = NULL;
    for (int i = 0; i < MAX_PEERS; i++)
        if (ic.peers[i].state != P_FREE)
            drop_peer(&ic, &ic.peers[i], "mqoff stops");
    q_drop(&ic);
    free(ic.q);
    if (ic.chan >= 0) {
        close(ic.chan);
        chan_unlink(&ic, cfg->channel);
    }
    close(ic.ep);
    if (ist)
        *ist = ic.st;
    return rc;
}
