/* libmqoff-intercept.so: an LD_PRELOAD shim that lets mqoff (intercept mode) serve one listener
 * of an unmodified broker.
 *
 *   MQOFF_CHANNEL=PATH LD_PRELOAD=libmqoff-intercept.so mosquitto -c mosquitto.conf
 *
 * At the process's first bind() of a TCP socket, the shim starts a thread that connects to
 * mqoff's channel at PATH (retrying until mqoff is there: either may start first) and learns
 * the address mqoff listens on (WELCOME). bind() waits for that, then:
 *   - to any other address, and for any other socket, it binds for real: other listeners,
 *     bridges, DNS and the shim's own channel are untouched;
 *   - to mqoff's address, it binds nothing. The socket's descriptor is replaced (dup2) by one
 *     end of an AF_UNIX SOCK_SEQPACKET pair, the accept link, which keeps the socket's
 *     O_NONBLOCK; the other end goes to mqoff (ATTACH). listen() on it succeeds. mqoff sends one
 *     CONN message per client connection on the accept link, with the broker's end of a stream
 *     socketpair carrying that client's bytes, so the listener is readable (epoll) exactly when
 *     a connection waits, and accept() returns that descriptor. getpeername()/getsockname()
 *     return the client's and the listener's real addresses; TCP and IP level setsockopt()
 *     calls succeed (TCP_NODELAY and friends mean nothing on a local stream); read, write,
 *     epoll and close work natively.
 * The shim keeps its own copy of mqoff's end of the accept link, so the listener never sees an
 * end of stream: when mqoff goes away (restart), the broker's listener just stays quiet, the
 * thread reconnects and sends the same link again. Connections already handed over are plain
 * socketpairs and end when mqoff's side of them does.
 *
 * Descriptors the shim made are recognized by (descriptor, device, inode), so a descriptor the
 * broker closed and got again for something else is never mistaken for one of them, and close()
 * need not be intercepted.
 *
 * Environment: MQOFF_CHANNEL (unset: the shim does nothing), MQOFF_CHANNEL_WAIT=S (bind() gives
 * up after S seconds without mqoff, with EADDRNOTAVAIL and a log line; default: waits).
 * Log lines go to stderr, prefixed "mqoff-intercept:". */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chan/chan.h"

#define API __attribute__((visibility("default")))

/* ---- the real functions ---- */

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*listen_fn)(int, int);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);
typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*name_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);
typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);

static struct {
    bind_fn bind;
    listen_fn listen;
    accept_fn accept;
    accept4_fn accept4;
    name_fn getpeername, getsockname;
    setsockopt_fn setsockopt;
    getsockopt_fn getsockopt;
} real;

static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void resolve_real(void)
{
    real.bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    real.listen = (listen_fn)dlsym(RTLD_NEXT, "listen");
    real.accept = (accept_fn)dlsym(RTLD_NEXT, "accept");
    real.accept4 = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    real.getpeername = (name_fn)dlsym(RTLD_NEXT, "getpeername");
    real.getsockname = (name_fn)dlsym(RTLD_NEXT, "getsockname");
    real.setsockopt = (setsockopt_fn)dlsym(RTLD_NEXT, "setsockopt");
    real.getsockopt = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
}

static void need_real(void) { pthread_once(&real_once, resolve_real); }

/* ---- logging ---- */

__attribute__((format(printf, 1, 2))) static void shim_log(const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%ld: mqoff-intercept[%d]: ", (long)time(NULL),
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    (void)!write(2, line, (size_t)n);
}

/* ---- descriptors the shim made ---- */

enum { ENT_NONE = 0, ENT_LISTENER, ENT_CONN };

struct ent {
    uint8_t kind;
    uint8_t nodelay;
    dev_t dev;
    ino_t ino;
    struct mqo_chan_addr peer, local;
};

/* ---- shared state (mu) ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int env_read;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    long wait_s;          /* MQOFF_CHANNEL_WAIT, 0: wait for ever */
    int thread_started;
    int wake;             /* eventfd: wakes the thread (a listener was attached) */
    int have_listen;      /* the address mqoff listens on is known */
    struct mqo_chan_addr listen;
    /* the intercepted listener: its descriptor (-1: none) and mqoff's end of its accept link,
     * kept here so the listener never sees an end of stream; gen counts new links */
    int lfd;
    int link;
    unsigned link_gen;
    struct mqo_chan_addr laddr;
    uint64_t accepted;
    struct ent *tab;
    int tab_n;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .wake = -1, .lfd = -1,
       .link = -1};

/* The device and inode of fd. Returns 0 or -1. */
static int ident(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

/* Copies the entry of fd into *out when it is one of ours of that kind and still the same
 * socket. Returns 1 when it is, else 0. */
static int lookup(int fd, int kind, struct ent *out)
{
    if (fd < 0)
        return 0;
    int found = 0;
    pthread_mutex_lock(&g.mu);
    if (fd < g.tab_n && g.tab[fd].kind == kind) {
        *out = g.tab[fd];
        found = 1;
    }
    pthread_mutex_unlock(&g.mu);
    dev_t dev;
    ino_t ino;
    if (!found || ident(fd, &dev, &ino) || dev != out->dev || ino != out->ino)
        return 0;
    return 1;
}

/* Records fd as e (mu held). Returns 0 or -ENOMEM. */
static int record_locked(int fd, const struct ent *e)
{
    if (fd >= g.tab_n) {
        int n = g.tab_n ? g.tab_n : 256;
        while (n <= fd)
            n *= 2;
        struct ent *t = realloc(g.tab, (size_t)n * sizeof *t);
        if (!t)
            return -ENOMEM;
        memset(t + g.tab_n, 0, (size_t)(n - g.tab_n) * sizeof *t);
        g.tab = t;
        g.tab_n = n;
    }
    g.tab[fd] = *e;
    return 0;
}

static int set_nodelay_flag(int fd, uint8_t v)
{
    pthread_mutex_lock(&g.mu);
    if (fd < g.tab_n)
        g.tab[fd].nodelay = v;
    pthread_mutex_unlock(&g.mu);
    return 0;
}

/* ---- the channel thread ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int chan_connect(void)
{
    int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c < 0)
        return -errno;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, g.path, sizeof sa.sun_path);
    if (connect(c, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(c);
        return -e;
    }
    return c;
}

/* Waits up to ms for a message on c. Returns 1 with *m, 0 on timeout, -errno (0 length: the
 * end of the stream, -EPIPE). */
static int chan_wait(int c, struct mqo_chan_msg *m, int ms)
{
    struct pollfd p = {.fd = c, .events = POLLIN};
    int r = poll(&p, 1, ms);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -errno : 0;
    int fd;
    r = mqo_chan_recv(c, m, &fd, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (fd >= 0)
        close(fd); /* mqoff sends no descriptor on the control link */
    if (r == 0)
        return -EPIPE;
    return r == -EAGAIN ? 0 : r;
}

/* One control link, from HELLO until it is lost. Returns when it is; *refusal says whether
 * mqoff refused (to wait longer before trying again). */
static void serve_link(int c, int *refused, int *announced)
{
    char a[64], b[64];
    struct mqo_chan_msg m = {.type = MQO_CHAN_HELLO};
    m.u.hello.min_version = MQO_CHAN_VERSION;
    m.u.hello.max_version = MQO_CHAN_VERSION;
    m.u.hello.pid = (uint32_t)getpid();
    pthread_mutex_lock(&g.mu);
    if (g.lfd >= 0)
        m.u.hello.listener = g.laddr;
    pthread_mutex_unlock(&g.mu);
    int r = mqo_chan_send(c, &m, -1);
    if (!r)
        r = chan_wait(c, &m, 5000);
    if (r <= 0) {
        shim_log("mqoff at %s does not answer (%s): trying again", g.path,
                 r ? strerror(-r) : "no WELCOME within 5 s");
        return;
    }
    if (m.type == MQO_CHAN_REFUSE) {
        if (!*refused)
            shim_log("mqoff at %s refused this broker: %s (%s); trying again every 2 s", g.path,
                     m.u.refuse.reason, mqo_chan_refusal_name(m.u.refuse.code));
        *refused = 1;
        return;
    }
    if (m.type != MQO_CHAN_WELCOME || m.u.welcome.listen.family == 0) {
        shim_log("mqoff at %s answered %s, not WELCOME: trying again", g.path,
                 mqo_chan_type_name(m.type));
        return;
    }
    uint32_t hb = m.u.welcome.heartbeat_ms;
    if (hb < 10 || hb > 60000)
        hb = 1000;
    pthread_mutex_lock(&g.mu);
    if (!g.have_listen) {
        g.listen = m.u.welcome.listen;
        g.have_listen = 1;
        pthread_cond_broadcast(&g.cv);
    } else if (!mqo_chan_addr_eq(&g.listen, &m.u.welcome.listen)) {
        /* the listener was decided at bind(); a mqoff for another address cannot take it */
        pthread_mutex_unlock(&g.mu);
        if (!*refused)
            shim_log("mqoff at %s now listens on %s; this broker chose at start to serve %s "
                     "through mqoff (restart it to change): not attaching",
                     g.path, mqo_chan_addr_str(&m.u.welcome.listen, a, sizeof a),
                     mqo_chan_addr_str(&g.listen, b, sizeof b));
        *refused = 1;
        return;
    }
    pthread_mutex_unlock(&g.mu);
    *refused = 0;
    shim_log("connected to mqoff (pid %u) at %s: it serves %s%s", m.u.welcome.pid, g.path,
             mqo_chan_addr_str(&m.u.welcome.listen, a, sizeof a),
             *announced ? " again" : "");
    *announced = 1;

    unsigned sent_gen = 0;
    uint64_t next_hb = 0;
    for (;;) {
        pthread_mutex_lock(&g.mu);
        int link = g.link, lfd = g.lfd;
        unsigned gen = g.link_gen;
        struct mqo_chan_addr la = g.laddr;
        uint64_t acc = g.accepted;
        pthread_mutex_unlock(&g.mu);
        if (lfd >= 0 && link >= 0 && gen != sent_gen) {
            struct mqo_chan_msg at = {.type = MQO_CHAN_ATTACH};
            at.u.attach.listener = la;
            if ((r = mqo_chan_send(c, &at, link))) {
                shim_log("lost mqoff at %s (sending ATTACH: %s): reconnecting", g.path,
                         strerror(-r));
                return;
            }
            sent_gen = gen;
            shim_log("listener %s attached to mqoff", mqo_chan_addr_str(&la, a, sizeof a));
        }
        uint64_t t = now_ms();
        if (t >= next_hb) {
            struct mqo_chan_msg h = {.type = MQO_CHAN_HEARTBEAT};
            h.u.heartbeat.accepted = acc;
            if ((r = mqo_chan_send(c, &h, -1))) {
                shim_log("lost mqoff at %s (%s): reconnecting; the listener takes no new "
                         "connection meanwhile, the broker's others work as before",
                         g.path, strerror(-r));
                return;
            }
            next_hb = t + hb;
            t = now_ms();
        }
        struct pollfd p[2] = {{.fd = c, .events = POLLIN}, {.fd = g.wake, .events = POLLIN}};
        int wait = next_hb > t ? (int)(next_hb - t) : 0;
        if (poll(p, 2, wait) < 0 && errno != EINTR) {
            shim_log("poll: %s", strerror(errno));
            sleep_ms(100);
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            (void)!read(g.wake, &v, sizeof v);
        }
        if (p[0].revents) {
            int fd;
            r = mqo_chan_recv(c, &m, &fd, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            if (fd >= 0)
                close(fd);
            if (r == -EAGAIN)
                continue;
            if (r <= 0) {
                shim_log("lost mqoff at %s (%s): reconnecting; the listener takes no new "
                         "connection meanwhile, the broker's others work as before",
                         g.path, r ? strerror(-r) : "it closed the channel");
                return;
            }
            if (m.type == MQO_CHAN_REFUSE) {
                shim_log("mqoff at %s dropped this broker: %s (%s); reconnecting", g.path,
                         m.u.refuse.reason, mqo_chan_refusal_name(m.u.refuse.code));
                return;
            }
            /* anything else: a later version's message, ignored */
        }
    }
}

static void *channel_thread(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the broker's (main thread) */
    int waiting = 0, refused = 0, announced = 0;
    for (;;) {
        int c = chan_connect();
        if (c < 0) {
            if (!waiting)
                shim_log("waiting for mqoff at %s (%s)", g.path, strerror(-c));
            waiting = 1;
            sleep_ms(200);
            continue;
        }
        waiting = 0;
        serve_link(c, &refused, &announced);
        close(c);
        sleep_ms(refused ? 2000 : 200);
    }
    return NULL;
}

/* Reads the environment once. Returns 1 when MQOFF_CHANNEL is set (mu held). */
static int configured_locked(void)
{
    if (!g.env_read) {
        g.env_read = 1;
        const char *p = getenv("MQOFF_CHANNEL");
        if (!p || !*p) {
            g.path[0] = 0;
        } else if (strlen(p) >= sizeof g.path) {
            shim_log("MQOFF_CHANNEL '%s' is longer than a Unix socket path may be: intercepting "
                     "nothing",
                     p);
            g.path[0] = 0;
        } else {
            memcpy(g.path, p, strlen(p) + 1);
        }
        const char *w = getenv("MQOFF_CHANNEL_WAIT");
        g.wait_s = w ? strtol(w, NULL, 10) : 0;
        if (g.wait_s < 0)
            g.wait_s = 0;
    }
    return g.path[0] != 0;
}

/* Starts the thread (mu held). Returns 0 or -errno. */
static int start_locked(void)
{
    if (g.thread_started)
        return 0;
    g.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g.wake < 0)
        return -errno;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &at, channel_thread, NULL);
    pthread_attr_destroy(&at);
    if (r) {
        close(g.wake);
        g.wake = -1;
        return -r;
    }
    g.thread_started = 1;
    return 0;
}

/* Waits until mqoff said which address it serves (mu held). Returns 0, or -ETIMEDOUT after
 * MQOFF_CHANNEL_WAIT seconds. */
static int wait_listen_locked(void)
{
    if (g.have_listen)
        return 0;
    shim_log("bind() waits for mqoff at %s to learn which listener it serves", g.path);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += g.wait_s;
    while (!g.have_listen) {
        if (!g.wait_s) {
            pthread_cond_wait(&g.cv, &g.mu);
        } else if (pthread_cond_timedwait(&g.cv, &g.mu, &dl) == ETIMEDOUT && !g.have_listen) {
            shim_log("no mqoff at %s after %ld s (MQOFF_CHANNEL_WAIT): bind() fails", g.path,
                     g.wait_s);
            return -ETIMEDOUT;
        }
    }
    return 0;
}

/* Replaces fd by one end of a new accept link and keeps the other for mqoff (mu held).
 * Returns 0 or -errno with fd unchanged. */
static int intercept_locked(int fd, const struct mqo_chan_addr *a)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl >= 0)
        fcntl(sv[0], F_SETFL, fl & O_NONBLOCK);
    if (dup2(sv[0], fd) < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    close(sv[0]);
    if (fdfl >= 0)
        fcntl(fd, F_SETFD, fdfl);
    struct ent e = {.kind = ENT_LISTENER, .local = *a};
    if (ident(fd, &e.dev, &e.ino) || record_locked(fd, &e)) {
        close(sv[1]);
        return -ENOMEM; /* fd stays a quiet local socket; the broker cannot bind here */
    }
    if (g.link >= 0)
        close(g.link);
    g.link = sv[1];
    g.link_gen++;
    g.lfd = fd;
    g.laddr = *a;
    uint64_t one = 1;
    (void)!write(g.wake, &one, sizeof one);
    return 0;
}

/* ---- the intercepted calls ---- */

API int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    need_real();
    struct mqo_chan_addr a;
    int type = 0;
    socklen_t tl = sizeof type;
    if (!addr || mqo_chan_addr_from(addr, len, &a) ||
        real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_STREAM)
        return real.bind(fd, addr, len);
    pthread_mutex_lock(&g.mu);
    if (!configured_locked()) {
        pthread_mutex_unlock(&g.mu);
        return real.bind(fd, addr, len);
    }
    int r = start_locked();
    if (r) {
        pthread_mutex_unlock(&g.mu);
        shim_log("cannot start the channel thread: %s; bind() fails", strerror(-r));
        errno = -r;
        return -1;
    }
    if ((r = wait_listen_locked())) {
        pthread_mutex_unlock(&g.mu);
        errno = EADDRNOTAVAIL;
        return -1;
    }
    if (!mqo_chan_addr_eq(&a, &g.listen)) {
        pthread_mutex_unlock(&g.mu);
        return real.bind(fd, addr, len);
    }
    struct ent old;
    int lfd = g.lfd;
    pthread_mutex_unlock(&g.mu);
    if (lfd >= 0 && lookup(lfd, ENT_LISTENER, &old)) {
        errno = EADDRINUSE; /* as a second real bind to the address would fail */
        return -1;
    }
    pthread_mutex_lock(&g.mu);
    r = intercept_locked(fd, &a);
    pthread_mutex_unlock(&g.mu);
    char s[64];
    if (r) {
        shim_log("cannot intercept %s: %s", mqo_chan_addr_str(&a, s, sizeof s), strerror(-r));
        errno = -r;
        return -1;
    }
    shim_log("listener %s is served by mqoff (channel %s); not bound here",
             mqo_chan_addr_str(&a, s, sizeof s), g.path);
    return 0;
}

API int listen(int fd, int backlog)
{
    need_real();
    struct ent e;
    if (lookup(fd, ENT_LISTENER, &e))
        return 0; /* mqoff listens */
    return real.listen(fd, backlog);
}

/* Copies a into the caller's (addr, len) as getpeername() does: truncated to *len, *len set to
 * the full length. */
static void give_addr(const struct mqo_chan_addr *a, struct sockaddr *addr, socklen_t *len)
{
    if (!addr || !len)
        return;
    struct sockaddr_storage ss;
    socklen_t l = mqo_chan_addr_to(a, &ss);
    memcpy(addr, &ss, *len < l ? *len : l);
    *len = l;
}

/* Takes one connection off the accept link of listener fd. */
static int take_conn(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    /* A real listener leaves the connection queued when the process has no descriptor left;
     * so does this one: check there is room before taking the message (the kernel would drop
     * a descriptor it cannot install, and the connection with it). */
    int probe = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (probe < 0)
        return -1; /* EMFILE: the broker frees a spare descriptor and calls again */
    close(probe);
    struct mqo_chan_msg m;
    int cfd = -1;
    int r = mqo_chan_recv(fd, &m, &cfd, (flags & SOCK_CLOEXEC) ? MSG_CMSG_CLOEXEC : 0);
    if (r == 0 || r == -EAGAIN) {
        errno = EAGAIN; /* the shim holds mqoff's end: no end of stream, nothing waiting */
        return -1;
    }
    if (r == -EMFILE) {
        shim_log("a connection from mqoff was lost: no descriptor left in the broker");
        errno = EMFILE;
        return -1;
    }
    if (r < 0 || m.type != MQO_CHAN_CONN || cfd < 0 || m.u.conn.peer.family == 0) {
        shim_log("bad message on the accept link (%s, %s): dropped",
                 r < 0 ? strerror(-r) : mqo_chan_type_name(m.type),
                 cfd < 0 ? "no descriptor" : "descriptor closed");
        if (cfd >= 0)
            close(cfd);
        errno = ECONNABORTED;
        return -1;
    }
    if (flags & SOCK_NONBLOCK)
        fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
    struct ent e = {.kind = ENT_CONN, .peer = m.u.conn.peer, .local = m.u.conn.local};
    if (ident(cfd, &e.dev, &e.ino)) {
        close(cfd);
        errno = ECONNABORTED;
        return -1;
    }
    pthread_mutex_lock(&g.mu);
    r = record_locked(cfd, &e);
    if (!r)
        g.accepted++;
    pthread_mutex_unlock(&g.mu);
    if (r) {
        shim_log("out of memory recording a connection: dropped");
        close(cfd);
        errno = ENOMEM;
        return -1;
    }
    give_addr(&e.peer, addr, len);
    return cfd;
}

API int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    need_real();
    struct ent e;
    if (lookup(fd, ENT_LISTENER, &e))
        return take_conn(fd, addr, len, flags);
    return real.accept4(fd, addr, len, flags);
}

API int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    need_real();
    struct ent e;
    if (lookup(fd, ENT_LISTENER, &e))
        return take_conn(fd, addr, len, 0);
    return real.accept(fd, addr, len);
}

API int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    need_real();
    struct ent e;
    if (lookup(fd, ENT_CONN, &e)) {
        give_addr(&e.peer, addr, len);
        return 0;
    }
    if (lookup(fd, ENT_LISTENER, &e)) {
        errno = ENOTCONN;
        return -1;
    }
    return real.getpeername(fd, addr, len);
}

API int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    need_real();
    struct ent e;
    if (lookup(fd, ENT_CONN, &e) || lookup(fd, ENT_LISTENER, &e)) {
        give_addr(&e.local, addr, len);
        return 0;
    }
    return real.getsockname(fd, addr, len);
}

static int ip_level(int level) { return level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6; }

API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    need_real();
    struct ent e;
    if (ip_level(level) && (lookup(fd, ENT_CONN, &e) || lookup(fd, ENT_LISTENER, &e))) {
        /* a local stream has no TCP or IP options: taken and remembered (TCP_NODELAY) */
        if (level == IPPROTO_TCP && name == TCP_NODELAY && val && len >= (socklen_t)sizeof(int))
            set_nodelay_flag(fd, *(const int *)val != 0);
        return 0;
    }
    return real.setsockopt(fd, level, name, val, len);
}

API int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    need_real();
    struct ent e;
    if (ip_level(level) && val && len && *len >= (socklen_t)sizeof(int) &&
        (lookup(fd, ENT_CONN, &e) || lookup(fd, ENT_LISTENER, &e))) {
        int v = level == IPPROTO_TCP && name == TCP_NODELAY ? e.nodelay : 0;
        memcpy(val, &v, sizeof v);
        *len = sizeof v;
        return 0;
    }
    return real.getsockopt(fd, level, name, val, len);
}
