/* An in-memory file system for conf/ (struct mqo_mosqconf_fs): files and directories by
 * path, for the unit tests and the fuzzer. Not thread-safe (one global table). */
#ifndef MQO_TEST_MEMFS_H
#define MQO_TEST_MEMFS_H

#include <stddef.h>

#include "conf/mosqconf.h"

#define MEMFS_MAX 64

/* Forgets every file. */
void memfs_reset(void);
/* Adds a file (its bytes copied); aborts past MEMFS_MAX entries. */
void memfs_add(const char *path, const void *data, size_t len);
/* Adds a directory: list() finds it, read() says -EISDIR. */
void memfs_dir(const char *path);

extern const struct mqo_mosqconf_fs memfs;

#endif
