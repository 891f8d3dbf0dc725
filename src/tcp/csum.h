/* Internet checksum (RFC 1071) helpers for the TCP splice. */
#ifndef MQO_TCP_CSUM_H
#define MQO_TCP_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* Ones' complement sum of p[0..n) added to sum (32-bit accumulator, not folded). Bytes are
 * taken as big-endian 16-bit words; an odd last byte is padded with zero. */
uint32_t mqo_csum_add(uint32_t sum, const uint8_t *p, size_t n);
/* Folds and complements: the value to put in a checksum field (host order). */
uint16_t mqo_csum_fold(uint32_t sum);
/* TCP checksum over an IPv4 pseudo-header (addresses in network order as bytes) and the TCP
 * segment seg[0..len). Returns the field value (host order). */
uint16_t mqo_csum_tcp4(const uint8_t src[4], const uint8_t dst[4], const uint8_t *seg,
                       size_t len);

#endif
