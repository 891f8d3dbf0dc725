#include "helper_hex.h"

#include <stdio.h>

size_t hex_parse(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1 || n >= cap)
            return SIZE_MAX;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}
