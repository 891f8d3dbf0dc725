/* libFuzzer target for chan/: decodes arbitrary bytes as a stream of channel messages.
 *
 * Checked: decode never claims more bytes than it has; a message it accepts, encoded again and
 * decoded, gives the same message (a known type) and every proper prefix of that encoding needs
 * more bytes; an address it accepts converts to a socket address and back unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chan/chan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const struct mqo_chan_addr *a)
{
    struct sockaddr_storage ss;
    socklen_t l = mqo_chan_addr_to(a, &ss);
    if (!a->family) {
        if (l)
            abort();
        return;
    }
    struct mqo_chan_addr b;
    if (mqo_chan_addr_from((struct sockaddr *)&ss, l, &b) || !mqo_chan_addr_eq(a, &b))
        abort();
    char s[64];
    mqo_chan_addr_str(a, s, sizeof s);
    if (!memchr(s, 0, sizeof s))
        abort();
}

static void check_msg(const struct mqo_chan_msg *m)
{
    uint8_t out[MQO_CHAN_MAX];
    size_t n = mqo_chan_encode(m, out, sizeof out);
    if (!n) {
        if (strcmp(mqo_chan_type_name(m->type), "unknown") != 0)
            abort(); /* a known type always encodes */
        return;
    }
    struct mqo_chan_msg d;
    for (size_t k = 0; k < n; k++)
        if (mqo_chan_decode(out, k, &d) != 0)
            abort();
    if (mqo_chan_decode(out, n, &d) != (ssize_t)n || d.type != m->type ||
        memcmp(&d.u, &m->u, sizeof d.u) != 0)
        abort();
    switch (m->type) {
    case MQO_CHAN_HELLO: check_addr(&m->u.hello.listener); break;
    case MQO_CHAN_WELCOME: check_addr(&m->u.welcome.listen); break;
    case MQO_CHAN_ATTACH: check_addr(&m->u.attach.listener); break;
    case MQO_CHAN_CONN:
        check_addr(&m->u.conn.peer);
        check_addr(&m->u.conn.local);
        break;
    case MQO_CHAN_REFUSE: (void)mqo_chan_refusal_name(m->u.refuse.code); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        /* decode from an exact-size copy, so a read past the end is caught */
        size_t n = size - off;
        uint8_t *copy = malloc(n);
        if (!copy)
            return 0;
        memcpy(copy, data + off, n);
        struct mqo_chan_msg m;
        ssize_t r = mqo_chan_decode(copy, n, &m);
        free(copy);
        if (r > (ssize_t)n)
            abort();
        if (r <= 0)
            break;
        check_msg(&m);
        off += (size_t)r;
    }
    return 0;
}
