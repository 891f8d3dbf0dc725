/* stack/filter.c: see filter.h. */
#include "stack/filter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32n(const uint8_t *p) /* as stored: network order */
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

enum mqo_lwip_verdict mqo_lwip_classify(const uint8_t *d, size_t len, const uint8_t mac[6],
                                        uint32_t addr, uint16_t listen_port)
{
    if (len < 14)
        return MQO_LWIP_OTHER_PROTO;
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (memcmp(d, mac, 6) != 0 && memcmp(d, bcast, 6) != 0)
        return MQO_LWIP_OTHER_MAC;
    uint16_t et = rd16(d + 12);
    const uint8_t *l3 = d + 14;
    size_t l3len = len - 14;
    if (et == 0x0806) { /* ARP: only about our address (requests for it, answers to us) */
        if (l3len < 28)
            return MQO_LWIP_OTHER_PROTO;
        return rd32n(l3 + 24) == addr ? MQO_LWIP_PASS : MQO_LWIP_OTHER_ADDR;
    }
    if (et != 0x0800 || l3len < 20 || (l3[0] >> 4) != 4)
        return MQO_LWIP_OTHER_PROTO;
    if (rd32n(l3 + 16) != addr)
        return MQO_LWIP_OTHER_ADDR;
    size_t ihl = (size_t)(l3[0] & 15) * 4;
    /* a first (or only) fragment of TCP whose header is there: a SYN without ACK? */
    if (l3[9] == 6 && listen_port && ihl >= 20 && l3len >= ihl + 20 && !(rd16(l3 + 6) & 0x1fff)) {
        const uint8_t *t = l3 + ihl;
        if ((t[13] & 0x12) == 0x02 && rd16(t + 2) == listen_port)
            return MQO_LWIP_SYN;
    }
    return MQO_LWIP_PASS;
}

int mqo_lwip_parse_mac(const char *str, uint8_t mac[6])
{
    unsigned v[6];
    char tail;
    if (strlen(str) != 17 ||
        sscanf(str, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &tail) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        if (str[3 * i + 2] != (i < 5 ? ':' : '\0'))
            return -EINVAL;
        mac[i] = (uint8_t)v[i];
    }
    if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
        return -EINVAL; /* multicast or zero: not an interface's address */
    return 0;
}
