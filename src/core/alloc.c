/* The allocator's settings (core/alloc.h). */
#include "core/alloc.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

int mqo_alloc_setup(void)
{
    static const char *const legacy[] = {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                         "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"};
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "glibc.malloc."))
        return 0;
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++)
        if (getenv(legacy[i]))
            return 0;
    /* mallopt returns 1 on success; setting either threshold also ends their moving */
    int ok = mallopt(M_MMAP_THRESHOLD, MQO_ALLOC_MMAP_THRESHOLD) == 1;
    ok &= mallopt(M_TRIM_THRESHOLD, MQO_ALLOC_TRIM_THRESHOLD) == 1;
    return ok ? 1 : -1;
}
