#include "tcp/csum.h"

uint32_t mqo_csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    uint64_t s = sum;
    size_t i = 0;
    for (; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (i < n)
        s += (uint32_t)(p[i] << 8);
    while (s >> 32)
        s = (s & 0xffffffffu) + (s >> 32);
    return (uint32_t)s;
}

uint16_t mqo_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

uint16_t mqo_csum_tcp4(const uint8_t src[4], const uint8_t dst[4], const uint8_t *seg,
                       size_t len)
{
    uint8_t ph[12] = {src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3],
                      0,      6,      (uint8_t)(len >> 8), (uint8_t)len};
    uint32_t s = mqo_csum_add(0, ph, sizeof ph);
    s = mqo_csum_add(s, seg, len);
    return mqo_csum_fold(s);
}
