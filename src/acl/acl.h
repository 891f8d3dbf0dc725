/* acl/: the broker's Mosquitto acl_file, read and evaluated with Mosquitto 2.0's semantics so
 * the offload never lets a client publish or read what the broker would refuse.
 *
 * File syntax (mosquitto.conf(5), "acl_file"):
 *   # comment
 *   topic [read|write|readwrite|deny] <topic filter>     rules for the current section
 *   user <username>                                      starts that user's section
 *   pattern [read|write|readwrite|deny] <topic filter>   applies to every client, with
 *                                                        %c = client id, %u = username
 * `topic` lines before the first `user` line apply to anonymous clients (no username).
 *
 * Strings are (pointer, length) as they come from packets; a NULL username means the client
 * connected without one.
 */
#ifndef MQO_ACL_H
#define MQO_ACL_H

#include <stddef.h>
#include <stdint.h>

#define MQO_ACL_READ 0x01
#define MQO_ACL_WRITE 0x02

struct mqo_acl;

/* Parses acl_file text. Returns 0 and *out, -EINVAL with a message "line N: ..." in err for a
 * line Mosquitto would refuse, -ENOMEM. */
int mqo_acl_parse(const char *text, size_t len, struct mqo_acl **out, char *err, size_t errlen);

/* Reads and parses the file at path. Same returns as mqo_acl_parse, plus -errno of open/read
 * (with the message in err). */
int mqo_acl_load(const char *path, struct mqo_acl **out, char *err, size_t errlen);

void mqo_acl_free(struct mqo_acl *a);

/* Access check exactly as Mosquitto 2.0's default security does it for an acl_file:
 * returns 1 when the client (client id, username) may `access` (MQO_ACL_READ or
 * MQO_ACL_WRITE) topic name `topic`, 0 when the broker would deny it.
 * Details (see acl.c for the full rule list):
 *  - has_username with user_len 0 is an anonymous client, as in Mosquitto (it reads a
 *    zero-length username as none);
 *  - client_id must be the id the broker uses (the assigned one for clients that sent an
 *    empty id); cid_len 0 means "unknown": a check whose outcome depends on it (one that
 *    reaches a "%c" pattern) returns 0;
 *  - strings the broker never holds (a NUL byte, more than 65535 bytes), an empty topic or
 *    one with '+'/'#', and any other `access` value return 0.
 * No allocation unless a substituted pattern exceeds a 512-byte stack buffer. Thread-safe
 * for concurrent checks on one parsed acl. */
int mqo_acl_check(const struct mqo_acl *a, const uint8_t *client_id, size_t cid_len,
                  const uint8_t *username, size_t user_len, int has_username,
                  const uint8_t *topic, size_t topic_len, int access);

/* Number of rules loaded (all sections and patterns), for the start-up log. */
size_t mqo_acl_rule_count(const struct mqo_acl *a);

/* Returns 1 when a and b hold the same rules in the same order (so every check gives the same
 * answer on both), 0 otherwise; rules that differ only in order within a list count as
 * different. Two NULLs are the same. For telling a rewritten but unchanged file from a new
 * version. */
int mqo_acl_same(const struct mqo_acl *a, const struct mqo_acl *b);

#endif
