/* libFuzzer target for stack/filter: the input is a received frame (and, in its first bytes, a
 * MAC address string for mqo_lwip_parse_mac). Checks: the classifier reads only the frame
 * (ASan), its verdict is one of the enum, and a frame it passes starts with the stack's MAC or
 * broadcast; a parsed MAC is unicast and not zero. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stack/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    uint8_t *f = malloc(size ? size : 1); /* exactly size bytes: reading past them is caught */
    if (!f)
        return 0;
    memcpy(f, data, size);
    uint32_t addr = 0x040012c6; /* 198.18.0.4 as stored */
    enum mqo_lwip_verdict v = mqo_lwip_classify(f, size, mac, addr, 1883);
    if (v > MQO_LWIP_OTHER_PROTO)
        abort();
    if ((v == MQO_LWIP_PASS || v == MQO_LWIP_SYN) && memcmp(f, mac, 6) != 0 &&
        memcmp(f, "\xff\xff\xff\xff\xff\xff", 6) != 0)
        abort();
    free(f);
    char s[32];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = 0;
    uint8_t m[6];
    if (mqo_lwip_parse_mac(s, m) == 0 && ((m[0] & 1) || !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5])))
        abort();
    return 0;
}
