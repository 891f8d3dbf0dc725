/* Takeover exchange over a Unix SOCK_SEQPACKET socket (takeover.h). */
#include "net/takeover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/ser.h"
#include "engine/engine.h"

enum { T_HELLO = 1, T_ACCEPT, T_REFUSE, T_FDS, T_STATE, T_END, T_LOADED, T_FAIL, T_BYE };

#define CHUNK 65536
#define FDS_PER_MSG 200
#define TIMEOUT_S 10

static const char HELLO_MAGIC[8] = "MQOFFTKO";

static void notify_mainpid(void);

static const char *g_build = "unknown";
void mqo_tko_set_build(const char *v) { g_build = v; }

static int addr_of(const char *path, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path)
        return -ENAMETOOLONG;
    strcpy(a->sun_path, path);
    return 0;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* One record: type and payload (with descriptors when nfds). Returns 0 or -errno. */
static int send_rec(int fd, uint8_t type, const void *p, size_t n, const int *fds, size_t nfds)
{
    struct iovec iov[2] = {{&type, 1}, {(void *)p, n}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n ? 2 : 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MSG)];
        struct cmsghdr align;
    } cm;
    if (nfds) {
        mh.msg_control = cm.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (r >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* Receives one record into buf (cap bytes): returns its length (type at buf[0]), 0 at EOF,
 * -errno. Descriptors it carries are appended to *fds (when fds) or closed. */
static ssize_t recv_rec(int fd, uint8_t *buf, size_t cap, int **fds, size_t *nfds)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * FDS_PER_MSG)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {buf, cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                        .msg_controllen = sizeof cm.b};
    ssize_t r;
    do
        r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    int bad = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *v = (int *)CMSG_DATA(h);
        int *nv = fds ? realloc(*fds, (*nfds + k) * sizeof *nv) : NULL;
        for (size_t i = 0; i < k; i++) {
            int d;
            memcpy(&d, &v[i], sizeof d);
            if (nv)
                nv[(*nfds)++] = d;
            else
                close(d);
        }
        if (nv)
            *fds = nv;
        else if (fds)
            bad = 1;
    }
    if (bad)
        return -EMSGSIZE;
    return r;
}

int mqo_tko_listen(const char *path)
{
    struct sockaddr_un a;
    int rc = addr_of(path, &a);
    if (rc)
        return rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        rc = -errno;
        if (rc != -EADDRINUSE) {
            close(fd);
            return rc;
        }
        /* a socket file: stale (a process that died), or served (a process that refused
         * mqo_tko_connect, or started meanwhile) */
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        int served = probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof a) == 0;
        if (probe >= 0)
            close(probe);
        if (served) {
            close(fd);
            return -EADDRINUSE;
        }
        unlink(path);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
    }
    chmod(path, 0600);
    if (listen(fd, 4) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* HELLO: magic, u32 proto, u32 snapshot version, blob mode, blob build. */
static size_t hello_make(uint8_t *out, size_t cap, const char *mode)
{
    struct mqo_buf b = {0};
    struct mqo_wr w = {.b = &b};
    mqo_wr_bytes_raw(&w, HELLO_MAGIC, sizeof HELLO_MAGIC);
    mqo_wr_u32(&w, MQO_TKO_PROTO);
    mqo_wr_u32(&w, MQO_SNAP_VERSION);
    mqo_wr_blob(&w, mode, strlen(mode));
    mqo_wr_blob(&w, g_build, strlen(g_build));
    size_t n = w.err || b.len > cap ? 0 : b.len;
    if (n)
        memcpy(out, b.data, n);
    mqo_buf_free(&b);
    return n;
}

int mqo_tko_accept(int lfd, const char *mode, const char *refuse)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    set_timeouts(fd);
    uint8_t buf[1024];
    ssize_t n = recv_rec(fd, buf, sizeof buf, NULL, NULL);
    char why[400] = "";
    struct mqo_rd r = {.p = buf + 1, .n = n > 0 ? (size_t)n - 1 : 0};
    const uint8_t *m = mqo_rd_raw(&r, sizeof HELLO_MAGIC);
    uint32_t proto = mqo_rd_u32(&r), snap = mqo_rd_u32(&r);
    size_t ml = 0, bl = 0;
    const uint8_t *pm = mqo_rd_blob(&r, 64, &ml);
    const uint8_t *pb = mqo_rd_blob(&r, 64, &bl);
    char peer_mode[65] = "", peer_build[65] = "";
    if (pm)
        memcpy(peer_mode, pm, ml);
    if (pb)
        memcpy(peer_build, pb, bl);
    if (n <= 0 || buf[0] != T_HELLO || !m || memcmp(m, HELLO_MAGIC, sizeof HELLO_MAGIC) || r.err)
        snprintf(why, sizeof why, "not a takeover request");
    else if (proto != MQO_TKO_PROTO || snap != MQO_SNAP_VERSION)
        snprintf(why, sizeof why,
                 "another version: the new process (mqoff %s) speaks takeover protocol %u with "
                 "state format %u, this one (mqoff %s) protocol %u with state format %u; stop "
                 "this one and start the new one instead (clients reconnect)",
                 peer_build, proto, snap, g_build, MQO_TKO_PROTO, MQO_SNAP_VERSION);
    else if (strcmp(peer_mode, mode) != 0)
        snprintf(why, sizeof why, "the new process runs %s mode, this one %s mode", peer_mode,
                 mode);
    else if (refuse)
        snprintf(why, sizeof why, "%s", refuse);
    if (why[0]) {
        (void)send_rec(fd, T_REFUSE, why, strlen(why), NULL, 0);
        close(fd);
        mqo_warn("takeover refused: %s; serving on", why);
        return -1;
    }
    mqo_info("takeover: mqoff %s takes over (%s mode); handing over", peer_build, mode);
    return fd;
}

int mqo_tko_handover(int fd, const int *fds, size_t nfds, const uint8_t *state, size_t n)
{
    int rc = send_rec(fd, T_ACCEPT, NULL, 0, NULL, 0);
    for (size_t i = 0; !rc && i < nfds; i += FDS_PER_MSG) {
        size_t k = nfds - i < FDS_PER_MSG ? nfds - i : FDS_PER_MSG;
        rc = send_rec(fd, T_FDS, NULL, 0, fds + i, k);
    }
    for (size_t off = 0; !rc && off < n; off += CHUNK)
        rc = send_rec(fd, T_STATE, state + off, n - off < CHUNK ? n - off : CHUNK, NULL, 0);
    if (!rc) {
        uint8_t end[12];
        for (int i = 0; i < 8; i++)
            end[i] = (uint8_t)((uint64_t)n >> (8 * i));
        for (int i = 0; i < 4; i++)
            end[8 + i] = (uint8_t)((uint32_t)nfds >> (8 * i));
        rc = send_rec(fd, T_END, end, sizeof end, NULL, 0);
    }
    if (rc) {
        mqo_warn("takeover failed sending the state: %s; serving on", strerror(-rc));
        close(fd);
        return 0;
    }
    uint8_t buf[1024];
    ssize_t r = recv_rec(fd, buf, sizeof buf - 1, NULL, NULL);
    if (r > 0 && buf[0] == T_LOADED) {
        (void)send_rec(fd, T_BYE, NULL, 0, NULL, 0);
        /* fd stays open until this process exits: its closing tells the new one that this
         * one is gone (its takeover socket, control socket, ... are free) */
        mqo_info("takeover: the new process has the connections; exiting");
        return 1;
    }
    if (r > 0 && buf[0] == T_FAIL) {
        buf[r] = 0;
        mqo_warn("takeover failed in the new process: %s; serving on", (char *)buf + 1);
    } else {
        mqo_warn("takeover failed: the new process went away (%s); serving on",
                 r < 0 ? strerror((int)-r) : "closed");
    }
    close(fd);
    return 0;
}

int mqo_tko_connect(const char *path, const char *mode, int *out)
{
    struct sockaddr_un a;
    int rc = addr_of(path, &a);
    if (rc)
        return rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        rc = errno;
        close(fd);
        if (rc == ENOENT || rc == ECONNREFUSED)
            return 0; /* nobody serves there: a fresh start */
        return -rc;
    }
    set_timeouts(fd);
    uint8_t h[256];
    size_t hn = hello_make(h, sizeof h, mode);
    uint8_t buf[1024];
    if (!hn || (rc = send_rec(fd, T_HELLO, h, hn, NULL, 0)) != 0) {
        close(fd);
        return rc ? rc : -EINVAL;
    }
    ssize_t r = recv_rec(fd, buf, sizeof buf - 1, NULL, NULL);
    if (r > 0 && buf[0] == T_ACCEPT) {
        *out = fd;
        return 1;
    }
    close(fd);
    if (r > 0 && buf[0] == T_REFUSE) {
        buf[r] = 0;
        mqo_err("takeover refused by the running process: %s", (char *)buf + 1);
        return -EPROTO;
    }
    mqo_err("takeover: the running process at %s did not answer (%s)", path,
            r < 0 ? strerror((int)-r) : "closed");
    return r < 0 ? (int)r : -ECONNRESET;
}

int mqo_tko_receive(int fd, int **fds, size_t *nfds, struct mqo_buf *state)
{
    static uint8_t buf[CHUNK + 1];
    *fds = NULL;
    *nfds = 0;
    for (;;) {
        ssize_t r = recv_rec(fd, buf, sizeof buf, fds, nfds);
        if (r <= 0) {
            mqo_err("takeover: receiving the state: %s", r < 0 ? strerror((int)-r) : "closed");
            return r < 0 ? (int)r : -ECONNRESET;
        }
        switch (buf[0]) {
        case T_FDS: break;
        case T_STATE:
            if (mqo_buf_append(state, buf + 1, (size_t)r - 1))
                return -ENOMEM;
            break;
        case T_END: {
            struct mqo_rd rd = {.p = buf + 1, .n = (size_t)r - 1};
            uint64_t total = mqo_rd_u64(&rd);
            uint32_t nf = mqo_rd_u32(&rd);
            if (rd.err || total != state->len || nf != *nfds) {
                mqo_err("takeover: incomplete state (%zu of %llu bytes, %zu of %u descriptors)",
                        state->len, (unsigned long long)total, *nfds, nf);
                return -EPROTO;
            }
            return 0;
        }
        default: mqo_err("takeover: unexpected record %u", buf[0]); return -EPROTO;
        }
    }
}

int mqo_tko_finish(int fd, const char *why)
{
    if (why) {
        (void)send_rec(fd, T_FAIL, why, strlen(why), NULL, 0);
        close(fd);
        mqo_err("takeover failed: %s; the running process serves on", why);
        return -1;
    }
    notify_mainpid(); /* before the old process exits: systemd keeps the service */
    int rc = send_rec(fd, T_LOADED, NULL, 0, NULL, 0);
    if (rc) {
        close(fd);
        mqo_err("takeover: cannot confirm to the running process: %s", strerror(-rc));
        return -1;
    }
    /* BYE, then EOF once the old process has exited (all its descriptors closed) */
    uint8_t buf[64];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (int i = 0; i < 2 * TIMEOUT_S * 10; i++) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv_rec(fd, buf, sizeof buf, NULL, NULL);
        if (r <= 0)
            break;
    }
    close(fd);
    return 0;
}

/* ---- starting the successor (SIGUSR2) and telling systemd ---- */

static char g_exe[4096];
static char *const *g_argv;

void mqo_tko_set_exec(char *const *argv)
{
    g_argv = argv;
    ssize_t n = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
    g_exe[n > 0 ? n : 0] = 0;
}

int mqo_tko_spawn(void)
{
    if (!g_argv || !g_exe[0])
        return -ENOEXEC;
    /* twice forked: the new process is nobody's child here (this one exits once it took
     * over, and a refused one leaves no zombie behind) */
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0) {
        pid_t q = fork();
        if (q == 0) {
            execv(g_exe, g_argv);
            _exit(127);
        }
        _exit(q < 0 ? 1 : 0);
    }
    int st = 0;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -ECHILD;
    mqo_info("takeover: SIGUSR2: started %s to take over from this process", g_exe);
    return 0;
}

/* NOTIFY_SOCKET (systemd): the new process is the service's main process from now on. */
static void notify_mainpid(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!path || !path[0] || strlen(path) >= sizeof a.sun_path)
        return;
    strcpy(a.sun_path, path);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (a.sun_path[0] == '@')
        a.sun_path[0] = 0; /* abstract */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "MAINPID=%d", (int)getpid());
    (void)sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&a, len);
    close(fd);
}
