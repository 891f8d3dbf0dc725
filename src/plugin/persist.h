/* The sessions and subscriptions in Mosquitto's persistence file (mosquitto.db).
 *
 * A Mosquitto 2.0 plugin is never told of the subscriptions the broker restores from its
 * persistence file at start, so the broker plugin reads the file itself, as the broker just
 * did, at its own start (the broker reads it before it loads plugins).
 *
 * Format (database versions 5 and 6, what Mosquitto 1.6 and 2.0 write): a 15-byte magic, a
 * 4-byte checksum nobody checks, the version (big-endian u32), then chunks: a header of chunk
 * type and payload length (big-endian u32 each) and the payload. The chunks read here:
 *   CLIENT (6): session_expiry_time (i64, host order), session_expiry_interval (u32 BE),
 *               last_mid (u16 BE), id_len (u16 BE), [v6: listener_port (u16 BE), username_len
 *               (u16 BE)], padding to 8 bytes (16 bytes v5, 24 bytes v6), client id, [v6:
 *               username];
 *   SUB (5):    identifier (u32 BE), id_len (u16 BE), topic_len (u16 BE), qos (u8), options
 *               (u8), 2 bytes padding, client id, topic filter (as the broker holds it).
 * Every other chunk is skipped by its length. A header cut short ends the file (the broker
 * stops there too); a payload cut short is an error (the broker refuses to start on it).
 */
#ifndef MQO_PLUGIN_PERSIST_H
#define MQO_PLUGIN_PERSIST_H

#include <stddef.h>
#include <stdint.h>

struct mqo_persist_cb {
    /* a session (client chunk); expiry_interval as stored (0xffffffff: never) */
    int (*client)(void *arg, const char *cid, size_t cid_len, uint32_t expiry_interval);
    /* a subscription of session cid */
    int (*sub)(void *arg, const char *cid, size_t cid_len, const char *filter, size_t len,
               uint8_t qos, uint8_t options, uint32_t identifier);
    void *arg;
};

/* Reads the file's bytes p[0..n). An empty file holds nothing (the broker warns and starts).
 * Returns 0; -EINVAL with the reason in err (not a persistence file, a chunk cut short);
 * -ENOTSUP for database versions older than 5 (2-4, Mosquitto 1.5 and before), which this
 * reader does not read; or the first non-zero value a callback returned. */
int mqo_persist_parse(const uint8_t *p, size_t n, const struct mqo_persist_cb *cb, char *err,
                      size_t errlen);

#endif
