/* Mosquitto's persistence file: sessions and subscriptions (persist.h). */
#include "plugin/persist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CHUNK_SUB 5
#define CHUNK_CLIENT 6

static const uint8_t magic[15] = {0x00, 0xb5, 0x00, 'm', 'o', 's', 'q', 'u',
                                  'i',  't',  't',  'o', ' ', 'd', 'b'};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static int client_chunk(const uint8_t *c, uint32_t len, uint32_t version,
                        const struct mqo_persist_cb *cb)
{
    uint32_t fixed = version == 6 ? 24 : 16;
    if (len < fixed)
        return -EINVAL;
    uint32_t expiry = be32(c + 8);
    uint16_t id_len = be16(c + 14);
    uint16_t user_len = version == 6 ? be16(c + 18) : 0;
    if ((uint64_t)fixed + id_len + user_len > len)
        return -EINVAL;
    if (!id_len) /* the broker skips an empty entry with a warning */
        return 0;
    return cb->client ? cb->client(cb->arg, (const char *)c + fixed, id_len, expiry) : 0;
}

static int sub_chunk(const uint8_t *c, uint32_t len, const struct mqo_persist_cb *cb)
{
    if (len < 12)
        return -EINVAL;
    uint32_t ident = be32(c);
    uint16_t id_len = be16(c + 4), topic_len = be16(c + 6);
    if (12ull + id_len + topic_len > len)
        return -EINVAL;
    if (!id_len || !topic_len)
        return 0; /* no session or no filter: the broker cannot restore it either */
    return cb->sub ? cb->sub(cb->arg, (const char *)c + 12, id_len, (const char *)c + 12 + id_len,
                             topic_len, c[8], c[9], ident)
                   : 0;
}

int mqo_persist_parse(const uint8_t *p, size_t n, const struct mqo_persist_cb *cb, char *err,
                      size_t errlen)
{
    if (n == 0)
        return 0;
    if (n < 15 + 8 || memcmp(p, magic, sizeof magic) != 0) {
        snprintf(err, errlen, "not a Mosquitto persistence file");
        return -EINVAL;
    }
    uint32_t version = be32(p + 19);
    if (version < 5) {
        snprintf(err, errlen, "database version %u (Mosquitto 1.5 or older) is not read",
                 version);
        return -ENOTSUP;
    }
    if (version > 6) {
        snprintf(err, errlen, "database version %u is newer than Mosquitto 2.0's (6)", version);
        return -EINVAL;
    }
    size_t off = 23;
    while (n - off >= 8) {
        uint32_t type = be32(p + off), len = be32(p + off + 4);
        off += 8;
        if (len > n - off) {
            snprintf(err, errlen, "chunk %u at byte %zu: %u bytes, only %zu left", type, off - 8,
                     len, n - off);
            return -EINVAL;
        }
        int rc = 0;
        if (type == CHUNK_CLIENT)
            rc = client_chunk(p + off, len, version, cb);
        else if (type == CHUNK_SUB)
            rc = sub_chunk(p + off, len, cb);
        if (rc == -EINVAL) {
            snprintf(err, errlen, "%s chunk at byte %zu is malformed",
                     type == CHUNK_SUB ? "subscription" : "client", off - 8);
            return rc;
        }
        if (rc)
            return rc;
        off += len;
    }
    return 0;
}
