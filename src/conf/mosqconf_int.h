/* conf/: helpers shared by the reader (mosqconf.c) and the evaluation (mosqpolicy.c). */
#ifndef MQO_CONF_MOSQCONF_INT_H
#define MQO_CONF_MOSQCONF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "conf/mosqconf.h"

/* Appends a finding (the text printf-formatted, cut at 511 bytes). Returns 0 or -ENOMEM. */
int mqo_mosqconf_note_add(struct mqo_mosqconf_finding **v, size_t *n, int all,
                          struct mqo_mosqconf_loc at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Returns 1 when host is a numeric IPv4 or IPv6 address as getaddrinfo() reads one (no name
 * resolution), with its family (4 or 6) and address bytes (4 or 16) when the pointers are not
 * NULL; 0 otherwise. */
int mqo_mosqconf_numeric_host(const char *host, int *family, uint8_t addr[16]);

/* The broker's mosquitto_pub_topic_check() / mosquitto_sub_topic_check(): 1 when valid. */
int mqo_mosqconf_pub_topic_ok(const char *s);
int mqo_mosqconf_sub_topic_ok(const char *s);

/* The broker's mosquitto_validate_utf8(): 1 when s[0..len) is valid UTF-8 without U+0000,
 * control characters, surrogates or non-characters. */
int mqo_mosqconf_utf8_ok(const char *s, size_t len);

#endif
