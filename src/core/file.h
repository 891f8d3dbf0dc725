/* Whole-file reading for configuration files (ACL, static L2 tables). */
#ifndef MQO_CORE_FILE_H
#define MQO_CORE_FILE_H

#include <stddef.h>

/* Reads the file at path into a malloc'd buffer (*out, *len; NUL-terminated, not counted).
 * Returns 0, or -errno (the file unreadable, -ENOMEM, -EIO). */
int mqo_read_file(const char *path, char **out, size_t *len);

#endif
