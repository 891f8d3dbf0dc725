/* Topic name / filter validation and single matches. */
#include "topic/topic.h"

#include <string.h>

int mqo_topic_name_valid(const uint8_t *t, size_t len)
{
    if (len == 0 || len > 65535)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '+' || t[i] == '#' || t[i] == 0)
            return -1;
    return 0;
}

/* Validates a plain (not shared) filter. */
static int filter_plain_valid(const uint8_t *f, size_t len)
{
    if (len == 0 || len > 65535)
        return -1;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = f[i];
        if (c == 0)
            return -1;
        if (c != '+' && c != '#')
            continue;
        /* a wildcard must be the whole level */
        if (i > 0 && f[i - 1] != '/')
            return -1;
        if (i + 1 < len && f[i + 1] != '/')
            return -1;
        if (c == '#' && i + 1 != len)
            return -1;
    }
    return 0;
}

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN 7

int mqo_topic_share_split(const uint8_t *f, size_t len, const uint8_t **group, size_t *glen,
                          const uint8_t **filter, size_t *flen)
{
    if (len < SHARE_PREFIX_LEN || memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        return 0;
    const uint8_t *g = f + SHARE_PREFIX_LEN;
    size_t rest = len - SHARE_PREFIX_LEN;
    const uint8_t *slash = memchr(g, '/', rest);
    if (!slash || slash == g)
        return -1;
    size_t gl = (size_t)(slash - g);
    for (size_t i = 0; i < gl; i++)
        if (g[i] == '+' || g[i] == '#' || g[i] == 0)
            return -1;
    *group = g;
    *glen = gl;
    *filter = slash + 1;
    *flen = rest - gl - 1;
    return 1;
}

int mqo_topic_filter_valid(const uint8_t *f, size_t len)
{
    const uint8_t *g, *inner;
    size_t gl, il;
    if (len > 65535)
        return -1;
    int sh = mqo_topic_share_split(f, len, &g, &gl, &inner, &il);
    if (sh < 0)
        return -1;
    if (sh == 1)
        return filter_plain_valid(inner, il);
    return filter_plain_valid(f, len);
}

int mqo_topic_matches(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
    size_t fi = 0, ti = 0;
    if (tlen > 0 && t[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
        return 0;
    for (;;) {
        /* at the start of a level in both */
        if (fi < flen && f[fi] == '#')
            return 1;
        size_t fe = fi, te = ti;
        while (fe < flen && f[fe] != '/')
            fe++;
        while (te < tlen && t[te] != '/')
            te++;
        int plus = (fe - fi == 1 && f[fi] == '+');
        if (!plus && (fe - fi != te - ti || memcmp(f + fi, t + ti, fe - fi) != 0))
            return 0;
        int fend = (fe == flen), tend = (te == tlen);
        if (fend && tend)
            return 1;
        if (tend) {
            /* topic exhausted: only "/#" may remain ("sport/#" matches "sport") */
            return flen - fe == 2 && f[fe + 1] == '#';
        }
        if (fend)
            return 0;
        fi = fe + 1;
        ti = te + 1;
    }
}
