/* stack/filter: which received frames the lwIP stack (stack/lwip.h) gets to see, without lwIP:
 * a parser of Ethernet, ARP, IPv4 and TCP headers, fuzzed (fuzz/stack) and unit-tested. */
#ifndef MQO_STACK_FILTER_H
#define MQO_STACK_FILTER_H

#include <stddef.h>
#include <stdint.h>

enum mqo_lwip_verdict {
    MQO_LWIP_PASS = 0,    /* the stack's: ARP about its address, IPv4 to it */
    MQO_LWIP_SYN,         /* the stack's, and a SYN (no ACK) to the listening port */
    MQO_LWIP_OTHER_MAC,   /* to another MAC (not broadcast) */
    MQO_LWIP_OTHER_ADDR,  /* ARP about another address, IPv4 to another address */
    MQO_LWIP_OTHER_PROTO, /* neither ARP nor IPv4, or too short for its header */
};

/* The verdict on frame d[0..len): the stack has MAC mac and IPv4 address addr (network order)
 * and listens on TCP port listen_port (host order; 0: none). Reads only d[0..len). */
enum mqo_lwip_verdict mqo_lwip_classify(const uint8_t *d, size_t len, const uint8_t mac[6],
                                        uint32_t addr, uint16_t listen_port);

/* "aa:bb:cc:dd:ee:ff" to mac: 0, or -EINVAL (not six hex bytes, multicast, all zero). */
int mqo_lwip_parse_mac(const char *s, uint8_t mac[6]);

#endif
