#include "core/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int mqo_read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(b, cap *= 2);
        if (!nb)
            free(b);
        b = nb;
    }
    int err = !b ? -ENOMEM : ferror(f) ? -EIO : 0;
    fclose(f);
    if (err) {
        free(b);
        return err;
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return 0;
}
