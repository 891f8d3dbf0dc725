/* The intercept channel's codec (chan.h): bytes <-> struct mqo_chan_msg, no I/O. */
#include "chan/chan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define ADDR_LEN 24

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static void put_addr(uint8_t *p, const struct mqo_chan_addr *a)
{
    memset(p, 0, ADDR_LEN);
    if (a->family != 4 && a->family != 6)
        return; /* none */
    p[0] = a->family;
    put16(p + 2, a->port);
    if (a->family == 6) {
        put32(p + 4, a->scope);
        memcpy(p + 8, a->a, 16);
    } else {
        memcpy(p + 8, a->a, 4);
    }
}

static int zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Returns 0, or -EBADMSG for an unknown family or bytes the family leaves unused set. */
static int get_addr(const uint8_t *p, struct mqo_chan_addr *a)
{
    memset(a, 0, sizeof *a);
    if (p[1])
        return -EBADMSG;
    switch (p[0]) {
    case 0:
        return zero(p, ADDR_LEN) ? 0 : -EBADMSG;
    case 4:
        if (!zero(p + 4, 4) || !zero(p + 12, 12))
            return -EBADMSG;
        a->family = 4;
        a->port = get16(p + 2);
        memcpy(a->a, p + 8, 4);
        return 0;
    case 6:
        a->family = 6;
        a->port = get16(p + 2);
        a->scope = get32(p + 4);
        memcpy(a->a, p + 8, 16);
        return 0;
    default:
        return -EBADMSG;
    }
}

/* Body length of each type (REFUSE: without its reason). */
static size_t body_len(uint8_t type)
{
    switch (type) {
    case MQO_CHAN_HELLO: return 8 + ADDR_LEN;
    case MQO_CHAN_WELCOME: return 8 + ADDR_LEN;
    case MQO_CHAN_REFUSE: return 2;
    case MQO_CHAN_ATTACH: return ADDR_LEN;
    case MQO_CHAN_HEARTBEAT: return 8;
    case MQO_CHAN_CONN: return 8 + 2 * ADDR_LEN;
    default: return 0;
    }
}

size_t mqo_chan_encode(const struct mqo_chan_msg *m, uint8_t *out, size_t cap)
{
    size_t bl = body_len(m->type), rl = 0;
    if (!bl)
        return 0;
    if (m->type == MQO_CHAN_REFUSE) {
        rl = strnlen(m->u.refuse.reason, sizeof m->u.refuse.reason);
        if (rl > MQO_CHAN_REASON_MAX)
            rl = MQO_CHAN_REASON_MAX;
        bl += rl;
    }
    if (cap < MQO_CHAN_HDR + bl)
        return 0;
    uint8_t *b = out + MQO_CHAN_HDR;
    out[0] = 'M';
    out[1] = 'Q';
    out[2] = MQO_CHAN_VERSION;
    out[3] = m->type;
    put16(out + 4, (uint16_t)bl);
    put16(out + 6, 0);
    switch (m->type) {
    case MQO_CHAN_HELLO:
        b[0] = m->u.hello.min_version;
        b[1] = m->u.hello.max_version;
        put16(b + 2, 0);
        put32(b + 4, m->u.hello.pid);
        put_addr(b + 8, &m->u.hello.listener);
        break;
    case MQO_CHAN_WELCOME:
        put32(b, m->u.welcome.pid);
        put32(b + 4, m->u.welcome.heartbeat_ms);
        put_addr(b + 8, &m->u.welcome.listen);
        break;
    case MQO_CHAN_REFUSE:
        put16(b, m->u.refuse.code);
        memcpy(b + 2, m->u.refuse.reason, rl);
        break;
    case MQO_CHAN_ATTACH:
        put_addr(b, &m->u.attach.listener);
        break;
    case MQO_CHAN_HEARTBEAT:
        put64(b, m->u.heartbeat.accepted);
        break;
    case MQO_CHAN_CONN:
        put64(b, m->u.conn.id);
        put_addr(b + 8, &m->u.conn.peer);
        put_addr(b + 8 + ADDR_LEN, &m->u.conn.local);
        break;
    }
    return MQO_CHAN_HDR + bl;
}

ssize_t mqo_chan_decode(const uint8_t *p, size_t n, struct mqo_chan_msg *m)
{
    if (n >= 1 && p[0] != 'M')
        return -EPROTO;
    if (n >= 2 && p[1] != 'Q')
        return -EPROTO;
    if (n < MQO_CHAN_HDR)
        return 0;
    size_t bl = get16(p + 4);
    if (MQO_CHAN_HDR + bl > MQO_CHAN_MAX)
        return -EMSGSIZE;
    if (n < MQO_CHAN_HDR + bl)
        return 0;
    uint8_t type = p[3];
    if (p[2] != MQO_CHAN_VERSION && type != MQO_CHAN_HELLO && type != MQO_CHAN_REFUSE)
        return -EPROTONOSUPPORT;
    if (p[6] || p[7])
        return -EBADMSG;
    memset(m, 0, sizeof *m);
    m->type = type;
    size_t need = body_len(type);
    ssize_t len = (ssize_t)(MQO_CHAN_HDR + bl);
    if (!need)
        return len; /* a type this version does not know: skipped by the caller */
    if (bl < need)
        return -EBADMSG;
    const uint8_t *b = p + MQO_CHAN_HDR;
    int rc = 0;
    switch (type) {
    case MQO_CHAN_HELLO:
        if (b[2] || b[3])
            return -EBADMSG;
        m->u.hello.min_version = b[0];
        m->u.hello.max_version = b[1];
        m->u.hello.pid = get32(b + 4);
        rc = get_addr(b + 8, &m->u.hello.listener);
        break;
    case MQO_CHAN_WELCOME:
        m->u.welcome.pid = get32(b);
        m->u.welcome.heartbeat_ms = get32(b + 4);
        rc = get_addr(b + 8, &m->u.welcome.listen);
        break;
    case MQO_CHAN_REFUSE: {
        m->u.refuse.code = get16(b);
        size_t rl = bl - 2;
        if (rl > MQO_CHAN_REASON_MAX)
            rl = MQO_CHAN_REASON_MAX;
        /* the reason is logged by the receiver: printable ASCII only */
        for (size_t i = 0; i < rl; i++) {
            uint8_t c = b[2 + i];
            m->u.refuse.reason[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
        }
        m->u.refuse.reason[rl] = 0;
        break;
    }
    case MQO_CHAN_ATTACH:
        rc = get_addr(b, &m->u.attach.listener);
        break;
    case MQO_CHAN_HEARTBEAT:
        m->u.heartbeat.accepted = get64(b);
        break;
    case MQO_CHAN_CONN:
        m->u.conn.id = get64(b);
        rc = get_addr(b + 8, &m->u.conn.peer);
        if (!rc)
            rc = get_addr(b + 8 + ADDR_LEN, &m->u.conn.local);
        break;
    }
    return rc ? rc : len;
}

int mqo_chan_addr_from(const struct sockaddr *sa, socklen_t len, struct mqo_chan_addr *out)
{
    struct mqo_chan_addr a = {0};
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        a.family = 4;
        a.port = ntohs(s->sin_port);
        memcpy(a.a, &s->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        a.family = 6;
        a.port = ntohs(s->sin6_port);
        a.scope = s->sin6_scope_id;
        memcpy(a.a, &s->sin6_addr, 16);
    } else {
        return -EAFNOSUPPORT;
    }
    *out = a;
    return 0;
}

socklen_t mqo_chan_addr_to(const struct mqo_chan_addr *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (a->family == 4) {
        struct sockaddr_in *s = (struct sockaddr_in *)out;
        s->sin_family = AF_INET;
        s->sin_port = htons(a->port);
        memcpy(&s->sin_addr, a->a, 4);
        return sizeof *s;
    }
    if (a->family == 6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(a->port);
        s->sin6_scope_id = a->scope;
        memcpy(&s->sin6_addr, a->a, 16);
        return sizeof *s;
    }
    return 0;
}

int mqo_chan_addr_eq(const struct mqo_chan_addr *a, const struct mqo_chan_addr *b)
{
    if (a->family != b->family || a->port != b->port)
        return 0;
    if (a->family == 4)
        return !memcmp(a->a, b->a, 4);
    if (a->family == 6)
        return a->scope == b->scope && !memcmp(a->a, b->a, 16);
    return 1;
}

char *mqo_chan_addr_str(const struct mqo_chan_addr *a, char *buf, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (!n)
        return buf;
    if (a->family == 4) {
        inet_ntop(AF_INET, a->a, ip, sizeof ip);
        snprintf(buf, n, "%s:%u", ip, a->port);
    } else if (a->family == 6) {
        inet_ntop(AF_INET6, a->a, ip, sizeof ip);
        snprintf(buf, n, "[%s]:%u", ip, a->port);
    } else {
        snprintf(buf, n, "none");
    }
    return buf;
}

const char *mqo_chan_type_name(uint8_t type)
{
    switch (type) {
    case MQO_CHAN_HELLO: return "HELLO";
    case MQO_CHAN_WELCOME: return "WELCOME";
    case MQO_CHAN_REFUSE: return "REFUSE";
    case MQO_CHAN_ATTACH: return "ATTACH";
    case MQO_CHAN_HEARTBEAT: return "HEARTBEAT";
    case MQO_CHAN_CONN: return "CONN";
    default: return "unknown";
    }
}

const char *mqo_chan_refusal_name(uint16_t code)
{
    switch (code) {
    case MQO_CHAN_R_VERSION: return "no common protocol version";
    case MQO_CHAN_R_LISTENER: return "listener mismatch";
    case MQO_CHAN_R_BUSY: return "another broker is attached";
    case MQO_CHAN_R_PROTOCOL: return "protocol error";
    default: return "unknown refusal";
    }
}
