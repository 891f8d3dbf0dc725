/* libFuzzer target for acl/: parses an acl text and, when it parses, runs access checks.
 *
 * Input: byte 0 = flags (bit 0: check WRITE first, bit 1: has a username, bit 2: treat the
 * username as empty), then the acl text up to the first NUL, then the client id up to the
 * next NUL, the username up to the next NUL, and the topic (the rest, NULs included).
 * Missing parts are empty. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *next_part(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *s = *p;
    const uint8_t *z = s < end ? memchr(s, 0, (size_t)(end - s)) : NULL;
    if (!z) {
        *len = (size_t)(end - s);
        *p = end;
    } else {
        *len = (size_t)(z - s);
        *p = z + 1;
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    size_t tl, cl, ul;
    const uint8_t *text = next_part(&p, end, &tl);
    const uint8_t *cid = next_part(&p, end, &cl);
    const uint8_t *user = next_part(&p, end, &ul);
    const uint8_t *topic = p;
    size_t topl = (size_t)(end - p);
    if (flags & 4)
        ul = 0;

    /* Parse from a copy sized exactly, so reads past the text are caught. */
    char *copy = malloc(tl ? tl : 1);
    if (!copy)
        return 0;
    if (tl)
        memcpy(copy, text, tl);
    struct mqo_acl *a = NULL;
    char err[128];
    int rc = mqo_acl_parse(copy, tl, &a, err, sizeof err);
    free(copy);
    if (rc != 0) {
        if (a || strncmp(err, "line ", 5) != 0)
            abort(); /* failure must leave *out NULL and say which line */
        return 0;
    }
    if (!a)
        abort();
    (void)mqo_acl_rule_count(a);

    int has_user = (flags & 2) != 0;
    int first = (flags & 1) ? MQO_ACL_WRITE : MQO_ACL_READ;
    int second = first == MQO_ACL_READ ? MQO_ACL_WRITE : MQO_ACL_READ;
    int r1 = mqo_acl_check(a, cid, cl, user, ul, has_user, topic, topl, first);
    int r2 = mqo_acl_check(a, cid, cl, user, ul, has_user, topic, topl, second);
    int r3 = mqo_acl_check(a, cid, cl, user, ul, !has_user, topic, topl, first);
    /* the topic also as client id and username: exercises substitution with odd bytes */
    int r4 = mqo_acl_check(a, topic, topl, topic, topl, 1, cid, cl, first);
    int r5 = mqo_acl_check(a, cid, cl, user, ul, has_user, topic, topl, 3);
    if ((r1 | r2 | r3 | r4) & ~1 || r5 != 0)
        abort();
    /* a username of length 0 is anonymous */
    if (mqo_acl_check(a, cid, cl, user, 0, 1, topic, topl, first) !=
        mqo_acl_check(a, cid, cl, NULL, 0, 0, topic, topl, first))
        abort();
    mqo_acl_free(a);
    return 0;
}
