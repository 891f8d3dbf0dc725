/* core/watch: tells when files read at start may have changed (inotify), so they can be read
 * again. One descriptor for every watched file, for the caller's poll/epoll loop.
 *
 * Each file is watched through its directory (by name: an editor that renames a new file over
 * it, mv, cp, delete then create) and itself (writes in place, also through another name: a
 * symlink's target, a hard link). When the name is a symlink, the directory of its target is
 * watched too, and every event in the name's own directory counts (a symlink swapped by a
 * rename of some other entry, as configuration managers do); the watches follow the name to
 * whatever file it leads to after each change.
 *
 * It reports "may have changed": the caller reads the file again and compares. A report can be
 * spurious (an event queue overflow reports every file); a change is never missed while the
 * directory exists. A file that does not exist yet can be watched: its creation is reported.
 */
#ifndef MQO_CORE_WATCH_H
#define MQO_CORE_WATCH_H

#include <stdint.h>

#define MQO_WATCH_MAX 64 /* files per watch: one bit each in mqo_watch_drain's mask */

struct mqo_watch;

/* Returns 0 and *out, or -errno (inotify unavailable, -ENOMEM). */
int mqo_watch_new(struct mqo_watch **out);
void mqo_watch_free(struct mqo_watch *w);

/* Watches the file at path (its directory must exist; the file need not). Returns the file's
 * index (0, 1, ... in the order added; its bit in mqo_watch_drain's mask), or -errno: the
 * directory cannot be watched, -ENOSPC when MQO_WATCH_MAX files are watched, -ENOMEM. */
int mqo_watch_add(struct mqo_watch *w, const char *path);

/* The descriptor that becomes readable (POLLIN) when events are pending. */
int mqo_watch_fd(const struct mqo_watch *w);

/* Reads every pending event without blocking. Sets *changed to a mask with bit i set for each
 * watched file i that may have changed (content, the file its name leads to, gone, back,
 * permissions), 0 when none. Returns 0, or -errno of the read (*changed then holds what was
 * read before). */
int mqo_watch_drain(struct mqo_watch *w, uint64_t *changed);

#endif
