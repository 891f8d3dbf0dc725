#include "helper_memfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mfile {
    char path[128];
    char *data;
    size_t len;
    int dir;
};
static struct mfile mfs[MEMFS_MAX];
static size_t n_mfs;

void memfs_reset(void)
{
    for (size_t i = 0; i < n_mfs; i++)
        free(mfs[i].data);
    n_mfs = 0;
}

void memfs_add(const char *path, const void *data, size_t len)
{
    if (n_mfs == MEMFS_MAX)
        abort();
    struct mfile *f = &mfs[n_mfs];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->data = malloc(len + 1);
    if (!f->data)
        abort();
    if (len)
        memcpy(f->data, data, len);
    f->len = len;
    f->dir = 0;
    n_mfs++;
}

void memfs_dir(const char *path)
{
    memfs_add(path, "", 0);
    mfs[n_mfs - 1].dir = 1;
}

static int m_read(void *ctx, const char *path, char **data, size_t *len)
{
    (void)ctx;
    for (size_t i = 0; i < n_mfs; i++) {
        if (strcmp(mfs[i].path, path))
            continue;
        if (mfs[i].dir)
            return -EISDIR;
        /* exactly sized, so a read past the end is caught under ASan */
        *data = malloc(mfs[i].len ? mfs[i].len : 1);
        if (!*data)
            return -ENOMEM;
        memcpy(*data, mfs[i].data, mfs[i].len);
        *len = mfs[i].len;
        return 0;
    }
    return -ENOENT;
}

static int m_list(void *ctx, const char *dir, char ***names, size_t *n)
{
    (void)ctx;
    size_t dl = strlen(dir), k = 0;
    int found = 0;
    char **v = calloc(n_mfs + 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n_mfs; i++) {
        if (!strcmp(mfs[i].path, dir) && mfs[i].dir)
            found = 1;
        if (!strncmp(mfs[i].path, dir, dl) && mfs[i].path[dl] == '/' &&
            !strchr(mfs[i].path + dl + 1, '/') && !(v[k++] = strdup(mfs[i].path + dl + 1)))
            abort();
    }
    if (!found) {
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return -ENOENT;
    }
    *names = v;
    *n = k;
    return 0;
}

const struct mqo_mosqconf_fs memfs = {m_read, m_list, NULL};
