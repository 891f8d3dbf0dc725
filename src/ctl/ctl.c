/* The control socket: the broker plugin's reports and mqoffctl's requests (ctl.h).
 *
 * One epoll descriptor holds the listening socket, every peer and the metrics endpoint; the
 * mode polls it. A peer's first line says what it is: a plugin's hello, or an mqoffctl
 * request. Lines are at most CTL_LINE_MAX bytes: a longer one closes the connection (for the
 * plugin that drops the broker's view until it resyncs).
 */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define CTL_LINE_MAX (1u << 20)
#define CTL_OUT_MAX (64u << 20) /* a reader this far behind is closed */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mqo_ctl_fd(const struct mqo_ctl *c) { return c->ep; }

static void peer_events(struct mqo_ctl *c, struct ctl_peer *p)
{
    uint32_t ev = EPOLLIN | (p->out.len ? EPOLLOUT : 0);
    if (ev == p->ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = p};
    epoll_ctl(c->ep, EPOLL_CTL_MOD, p->fd, &e);
    p->ev = ev;
}

static void peer_close(struct mqo_ctl *c, struct ctl_peer *p, const char *why)
{
    for (struct ctl_peer **pp = &c->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p == c->plugin) {
        int used = p->bvp.state == MQO_BVP_DUMP || p->bvp.state == MQO_BVP_SYNCED;
        mqo_bvproto_close(&p->bvp, c->e);
        c->plugin = NULL;
        c->plugin_losses++;
        if (used)
            mqo_warn("control: the broker plugin disconnected (%s): mqoff behaves as without it "
                     "until it is back and synced", why);
        else
            mqo_info("control: the broker plugin disconnected (%s)", why);
    }
    epoll_ctl(c->ep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    mqo_buf_free(&p->in);
    mqo_buf_free(&p->out);
    free(p);
}

static int peer_write(struct mqo_ctl *c, struct ctl_peer *p)
{
    while (p->out.len) {
        ssize_t w = send(p->fd, p->out.data, p->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            return -errno;
        }
        mqo_buf_consume(&p->out, (size_t)w);
    }
    if (!p->out.len && p->closing)
        return -ECONNRESET;
    peer_events(c, p);
    return 0;
}

static int peer_send(struct mqo_ctl *c, struct ctl_peer *p, const char *s)
{
    size_t n = strlen(s);
    if (p->out.len + n + 1 > CTL_OUT_MAX || mqo_buf_append(&p->out, s, n) ||
        mqo_buf_append(&p->out, "\n", 1))
        return -ENOBUFS;
    return 0;
}

/* One line of the plugin. Returns 0 or -errno (close it). */
static int plugin_line(struct mqo_ctl *c, struct ctl_peer *p, const char *line, size_t n)
{
    int first = p->bvp.state == MQO_BVP_HELLO;
    int rc = mqo_bvproto_line(&p->bvp, c->e, c->token, line, n);
    if (rc == 1) {
        mqo_info("control: the broker reports it reloaded its configuration");
        c->broker_reloads++;
        if (c->hooks.broker_reloaded)
            c->hooks.broker_reloaded(c->hooks.arg);
        rc = 0;
    }
    if (rc == 0 && first) {
        c->plugin_hellos++;
        char w[96];
        snprintf(w, sizeof w, "{\"op\":\"welcome\",\"proto\":%d,\"state\":\"%s\"}", MQO_CTL_PROTO,
                 mqo_bvproto_state_name(p->bvp.state));
        rc = peer_send(c, p, w);
    }
    return rc;
}

/* A peer's first line: a plugin's hello, or an mqoffctl request. */
static int classify(struct mqo_ctl *c, struct ctl_peer *p, const char *line, size_t n)
{
    cJSON *o = cJSON_ParseWithLength(line, n);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
    int hello = cJSON_IsString(op) && !strcmp(op->valuestring, "hello");
    cJSON_Delete(o);
    if (!hello) {
        p->role = PEER_CLIENT;
        return 0;
    }
    if (c->plugin) {
        c->plugin_refused++;
        mqo_warn("control: a second broker plugin (pid %d) while one is connected: refused",
                 (int)p->pid);
        peer_send(c, p, "{\"op\":\"refused\",\"why\":\"another plugin is connected\"}");
        p->closing = 1;
        return 0;
    }
    p->role = PEER_PLUGIN;
    c->plugin = p;
    mqo_info("control: broker plugin connection from pid %d (uid %d)", (int)p->pid, (int)p->uid);
    return 0;
}

static int peer_line(struct mqo_ctl *c, struct ctl_peer *p, const char *line, size_t n)
{
    if (p->role == PEER_NEW) {
        int rc = classify(c, p, line, n);
        if (rc || p->closing)
            return rc;
    }
    if (p->role == PEER_PLUGIN)
        return plugin_line(c, p, line, n);
    c->requests++;
    char *r = ctl_reply(c, line, n);
    if (!r)
        return -ENOMEM;
    int rc = peer_send(c, p, r);
    cJSON_free(r);
    return rc;
}

static int peer_read(struct mqo_ctl *c, struct ctl_peer *p)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        if (mqo_buf_reserve(&p->in, 65536))
            return -ENOMEM;
        ssize_t r = recv(p->fd, p->in.data + p->in.len, mqo_buf_room(&p->in), MSG_DONTWAIT);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -errno;
        }
        size_t scan = p->in.len;
        p->in.len += (size_t)r;
        size_t start = 0;
        for (size_t i = scan; i < p->in.len; i++) {
            if (p->in.data[i] != '\n')
                continue;
            int rc = p->closing ? 0 : peer_line(c, p, (const char *)p->in.data + start, i - start);
            if (rc)
                return rc;
            start = i + 1;
        }
        mqo_buf_consume(&p->in, start);
        if (p->in.len > CTL_LINE_MAX)
            return -EMSGSIZE;
    }
    return 0;
}

static void accept_peers(struct mqo_ctl *c)
{
    for (;;) {
        int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct ctl_peer *p = calloc(1, sizeof *p);
        if (!p) {
            close(fd);
            return;
        }
        p->fd = fd;
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
            p->pid = cr.pid;
            p->uid = cr.uid;
        }
        p->ev = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = p};
        if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &e)) {
            close(fd);
            free(p);
            continue;
        }
        p->next = c->peers;
        c->peers = p;
    }
}

static const char *why_str(int rc)
{
    switch (rc) {
    case -ECONNRESET:
        return "connection closed";
    case -EMSGSIZE:
        return "a line over 1 MiB";
    case -EPROTO:
        return "protocol error";
    case -ENOBUFS:
        return "reader too far behind";
    default:
        return strerror(-rc);
    }
}

void mqo_ctl_run(struct mqo_ctl *c, uint64_t now_ns)
{
    c->now = now_ns;
    struct epoll_event ev[64];
    int n = epoll_wait(c->ep, ev, 64, 0);
    for (int i = 0; i < n; i++) {
        void *ptr = ev[i].data.ptr;
        if (ptr == &c->lfd) {
            accept_peers(c);
            continue;
        }
        if (ptr == &c->mhd_fd)
            continue; /* below */
        struct ctl_peer *p = ptr;
        /* p may have been closed by an earlier event of this round only if listed twice,
         * which epoll never does */
        int rc = 0;
        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            rc = peer_read(c, p);
        if (rc == 0)
            rc = peer_write(c, p);
        if (rc)
            peer_close(c, p, why_str(rc));
    }
    ctl_metrics_run(c);
}

/* Binds the Unix socket at path: a stale socket file is replaced, anything else refused. */
static int open_socket(struct mqo_ctl *c)
{
    const char *path = c->cfg.path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        mqo_err("--control %s: path too long (at most %zu bytes)", path, sizeof sa.sun_path - 1);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            mqo_err("--control %s: exists and is not a socket", path);
            return -EEXIST;
        }
        unlink(path); /* left by an earlier mqoff */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || listen(fd, 64) < 0) {
        rc = -errno;
        mqo_err("--control %s: %s", path, strerror(-rc));
        close(fd);
        return rc;
    }
    if (c->cfg.group) {
        struct group *g = getgrnam(c->cfg.group);
        if (!g || chown(path, (uid_t)-1, g->gr_gid) || chmod(path, 0660)) {
            rc = g ? -errno : -ENOENT;
            mqo_err("--control-group %s: %s", c->cfg.group, g ? strerror(errno) : "no such group");
            close(fd);
            unlink(path);
            return rc;
        }
    }
    c->lfd = fd;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->lfd};
    epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &e);
    return 0;
}

int mqo_ctl_new(const struct mqo_ctl_cfg *cfg, struct mqo_engine *e,
                const struct mqo_ctl_hooks *hooks, struct mqo_ctl **out)
{
    struct mqo_ctl *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    c->e = e;
    if (hooks)
        c->hooks = *hooks;
    c->lfd = c->mhd_fd = -1;
    c->started_ns = c->now = mono_ns();
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t t = c->started_ns ^ (uint64_t)getpid() << 32;
        memcpy(rnd, &t, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(c->token + 2 * i, 3, "%02x", rnd[i]);
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = c->ep < 0 ? -errno : 0;
    if (rc == 0 && cfg->path)
        rc = open_socket(c);
    if (rc == 0 && cfg->metrics)
        rc = ctl_metrics_open(c);
    if (rc) {
        mqo_ctl_free(c);
        return rc;
    }
    mqo_engine_set_observer(e, ctl_observe, c);
    if (cfg->path)
        mqo_info("control socket %s (broker plugin, mqoffctl)", cfg->path);
    *out = c;
    return 0;
}

void mqo_ctl_free(struct mqo_ctl *c)
{
    if (!c)
        return;
    while (c->peers)
        peer_close(c, c->peers, "mqoff stops");
    if (c->e)
        mqo_engine_set_observer(c->e, NULL, NULL);
    ctl_metrics_close(c);
    if (c->lfd >= 0) {
        close(c->lfd);
        unlink(c->cfg.path);
    }
    if (c->ep >= 0)
        close(c->ep);
    free(c->ctrs);
    free(c);
}
