/* Test helper: bytes from hex text. */
#ifndef MQO_TEST_HELPER_HEX_H
#define MQO_TEST_HELPER_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Parses hex pairs, ignoring spaces, into out[0..cap). Returns the byte count, or SIZE_MAX for
 * text that is not hex pairs or does not fit. */
size_t hex_parse(const char *s, uint8_t *out, size_t cap);

#ifdef cmocka_unit_test
/* In cmocka tests (cmocka.h included first): text that does not parse fails the test. */
static inline size_t hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = hex_parse(s, out, cap);
    assert_true(n != SIZE_MAX);
    return n;
}
#endif

#endif
