/* inotify watches of files and their directories; see watch.h.
 *
 * Per file: a watch on its directory (filtered by name), a watch on the file it leads to
 * (replaced after every change: a rename over the name brings another inode, and the watch on
 * the old one would report changes of a file nobody reads any more), and, when the name
 * resolves elsewhere (a symlink), a watch on the target's directory (filtered by the target's
 * name). inotify gives one watch descriptor per inode, so files in one directory share the
 * directory's: a descriptor is removed only when no file uses it any more.
 */
#include "core/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MASK                                                                                  \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE |          \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define FILE_MASK (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
/* events that concern a watched directory itself, whatever the name */
#define SELF_MASK (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)

struct entry {
    char *path;       /* as given */
    char *dir, *base; /* its directory and last component */
    int dir_wd;
    int file_wd;      /* the file the path leads to; -1: none (absent) */
    int symlinked;    /* the path is a symlink: every event in dir counts */
    char *tdir, *tbase; /* then: the directory and name of the file it leads to */
    int tdir_wd;      /* -1: none */
};

struct mqo_watch {
    int fd;
    int n;
    struct entry e[MQO_WATCH_MAX];
};

/* 1 when a watched file holds wd in any role. */
static int wd_used(const struct mqo_watch *w, int wd)
{
    for (int i = 0; i < w->n; i++) {
        const struct entry *e = &w->e[i];
        if (e->dir_wd == wd || e->file_wd == wd || e->tdir_wd == wd)
            return 1;
    }
    return 0;
}

/* Replaces *slot with wd, removing the old descriptor when nothing else uses it. */
static void wd_swap(struct mqo_watch *w, int *slot, int wd)
{
    int old = *slot;
    *slot = wd;
    if (old >= 0 && old != wd && !wd_used(w, old))
        inotify_rm_watch(w->fd, old); /* EINVAL when the kernel dropped it already: fine */
}

/* Splits path into a malloc'd directory and last component ("." for a bare name). */
static int split(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = strdup(".");
        *base = strdup(path);
    } else {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        *dir = strndup(path, dl);
        *base = strdup(slash + 1);
    }
    if (!*dir || !*base) {
        free(*dir);
        free(*base);
        *dir = *base = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Points the file watch at the file the path leads to now, and, when the path is a symlink,
 * the target watch at the directory of the file it leads to. */
static void resolve(struct mqo_watch *w, struct entry *e)
{
    int fwd = inotify_add_watch(w->fd, e->path, FILE_MASK);
    wd_swap(w, &e->file_wd, fwd >= 0 ? fwd : -1);
    struct stat st;
    e->symlinked = lstat(e->path, &st) == 0 && S_ISLNK(st.st_mode);
    char *tdir = NULL, *tbase = NULL;
    int tdw = -1;
    char real[PATH_MAX];
    if (e->symlinked && realpath(e->path, real) && split(real, &tdir, &tbase) == 0) {
        tdw = inotify_add_watch(w->fd, tdir, DIR_MASK);
        if (tdw < 0)
            tdw = -1;
    }
    free(e->tdir);
    free(e->tbase);
    e->tdir = tdir;
    e->tbase = tbase;
    wd_swap(w, &e->tdir_wd, tdw);
}

int mqo_watch_new(struct mqo_watch **out)
{
    struct mqo_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int err = errno;
        free(w);
        return -err;
    }
    *out = w;
    return 0;
}

void mqo_watch_free(struct mqo_watch *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        struct entry *e = &w->e[i];
        free(e->path);
        free(e->dir);
        free(e->base);
        free(e->tdir);
        free(e->tbase);
    }
    close(w->fd); /* removes every watch */
    free(w);
}

int mqo_watch_add(struct mqo_watch *w, const char *path)
{
    if (w->n == MQO_WATCH_MAX)
        return -ENOSPC;
    struct entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->dir_wd = e->file_wd = e->tdir_wd = -1;
    e->path = strdup(path);
    if (!e->path)
        return -ENOMEM;
    int rc = split(path, &e->dir, &e->base);
    if (rc) {
        free(e->path);
        return rc;
    }
    e->dir_wd = inotify_add_watch(w->fd, e->dir, DIR_MASK);
    if (e->dir_wd < 0) {
        rc = -errno;
        free(e->path);
        free(e->dir);
        free(e->base);
        return rc;
    }
    w->n++;
    resolve(w, e);
    return w->n - 1;
}

int mqo_watch_fd(const struct mqo_watch *w) { return w->fd; }

/* 1 when event ev (on descriptor wd, with name) concerns watched file e. */
static int concerns(const struct entry *e, int wd, uint32_t mask, const char *name)
{
    if (wd == e->file_wd)
        return 1;
    int self = (mask & SELF_MASK) || !name || !name[0];
    if (wd == e->dir_wd && (self || e->symlinked || strcmp(name, e->base) == 0))
        return 1;
    if (wd == e->tdir_wd && (self || strcmp(name, e->tbase) == 0))
        return 1;
    return 0;
}

/* Reads what is pending and adds the files it concerns to *m. Returns the number of bytes
 * read (0: nothing was pending), or -errno. */
static ssize_t read_events(struct mqo_watch *w, uint64_t *m)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t total = 0;
    for (;;) {
        ssize_t r = read(w->fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            return total;
        }
        if (r == 0)
            return total;
        total += r;
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                *m |= w->n == MQO_WATCH_MAX ? ~0ull : (1ull << w->n) - 1;
                continue;
            }
            const char *name = ev->len ? ev->name : NULL;
            for (int i = 0; i < w->n; i++) {
                struct entry *e = &w->e[i];
                if (!concerns(e, ev->wd, ev->mask, name))
                    continue;
                *m |= 1ull << i;
                /* the kernel dropped this descriptor (its inode is gone) */
                if (ev->mask & IN_IGNORED) {
                    if (e->file_wd == ev->wd)
                        e->file_wd = -1;
                    if (e->tdir_wd == ev->wd)
                        e->tdir_wd = -1;
                    if (e->dir_wd == ev->wd)
                        e->dir_wd = -1;
                }
            }
        }
    }
}

int mqo_watch_drain(struct mqo_watch *w, uint64_t *changed)
{
    uint64_t m = 0, todo;
    ssize_t r = read_events(w, &m);
    todo = m;
    /* Follow each changed name to the file it leads to now. Moving a watch off a file queues
     * an IN_IGNORED for it: read that too (it concerns no file any more), so the descriptor
     * is not left readable with nothing to report; events that arrived meanwhile count. */
    for (int round = 0; round < 4 && r > 0 && todo; round++) {
        for (int i = 0; i < w->n; i++) {
            if (!(todo & (1ull << i)))
                continue;
            struct entry *e = &w->e[i];
            if (e->dir_wd < 0) {
                int d = inotify_add_watch(w->fd, e->dir, DIR_MASK);
                e->dir_wd = d >= 0 ? d : -1;
            }
            resolve(w, e);
        }
        uint64_t more = 0;
        r = read_events(w, &more);
        todo = more & ~m;
        m |= more;
    }
    *changed = m;
    return r < 0 ? (int)r : 0;
}
