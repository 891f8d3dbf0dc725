/* stack/filter: which frames the lwIP stack sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "stack/filter.h"

static const uint8_t MAC[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
#define ADDR "198.18.0.4"

static uint32_t ip(const char *s)
{
    struct in_addr a;
    inet_pton(AF_INET, s, &a);
    return a.s_addr;
}

/* An Ethernet + IPv4 + TCP frame to dmac/dst:dport with TCP flags fl; returns its length. */
static size_t tcp_frame(uint8_t *f, const uint8_t *dmac, const char *dst, uint16_t dport,
                        uint8_t fl)
{
    memset(f, 0, 54);
    memcpy(f, dmac, 6);
    f[6] = 0x02;
    f[12] = 0x08;
    uint8_t *l3 = f + 14;
    l3[0] = 0x45;
    l3[3] = 40;
    l3[8] = 64;
    l3[9] = 6;
    uint32_t s = ip("198.18.0.1"), d = ip(dst);
    memcpy(l3 + 12, &s, 4);
    memcpy(l3 + 16, &d, 4);
    uint8_t *t = l3 + 20;
    t[0] = 0x9c;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    t[12] = 0x50;
    t[13] = fl;
    return 54;
}

static size_t arp_frame(uint8_t *f, const char *target)
{
    memset(f, 0, 42);
    memset(f, 0xff, 6);
    f[12] = 0x08;
    f[13] = 0x06;
    uint32_t t = ip(target);
    memcpy(f + 14 + 24, &t, 4);
    return 42;
}

static void test_tcp(void **st)
{
    uint8_t f[64];
    const uint8_t other[6] = {0x02, 0, 0, 0, 0, 9};
    uint32_t a = ip(ADDR);
    size_t n = tcp_frame(f, MAC, ADDR, 1883, 0x02);
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_SYN);
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 0), MQO_LWIP_PASS);
    n = tcp_frame(f, MAC, ADDR, 1883, 0x12); /* SYN+ACK: a connection of ours */
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_PASS);
    n = tcp_frame(f, MAC, ADDR, 1884, 0x02); /* another port: lwIP resets it */
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_PASS);
    n = tcp_frame(f, MAC, "198.18.0.6", 1883, 0x02);
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_OTHER_ADDR);
    n = tcp_frame(f, other, ADDR, 1883, 0x02);
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_OTHER_MAC);
    n = tcp_frame(f, MAC, ADDR, 1883, 0x02);
    f[14 + 6] = 0x00, f[14 + 7] = 0x10; /* a later fragment: no TCP header */
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_PASS);
    for (size_t k = 0; k < n; k++) /* truncated: never a SYN, never read past k */
        assert_int_not_equal(mqo_lwip_classify(f, k, MAC, a, 1883), MQO_LWIP_SYN);
    f[12] = 0x86, f[13] = 0xdd;
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_OTHER_PROTO);
}

static void test_arp(void **st)
{
    uint8_t f[64];
    uint32_t a = ip(ADDR);
    size_t n = arp_frame(f, ADDR);
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_PASS);
    n = arp_frame(f, "198.18.0.5");
    assert_int_equal(mqo_lwip_classify(f, n, MAC, a, 1883), MQO_LWIP_OTHER_ADDR);
    assert_int_equal(mqo_lwip_classify(f, 41, MAC, a, 1883), MQO_LWIP_OTHER_PROTO);
}

static void test_mac(void **st)
{
    uint8_t m[6];
    assert_int_equal(mqo_lwip_parse_mac("02:11:22:33:44:55", m), 0);
    assert_memory_equal(m, MAC, 6);
    assert_int_equal(mqo_lwip_parse_mac("02:11:22:33:44", m), -EINVAL);
    assert_int_equal(mqo_lwip_parse_mac("02:11:22:33:44:55:66", m), -EINVAL);
    assert_int_equal(mqo_lwip_parse_mac("02-11-22-33-44-55", m), -EINVAL);
    assert_int_equal(mqo_lwip_parse_mac("01:00:5e:00:00:01", m), -EINVAL); /* multicast */
    assert_int_equal(mqo_lwip_parse_mac("00:00:00:00:00:00", m), -EINVAL);
    assert_int_equal(mqo_lwip_parse_mac("2:11:22:33:44:555", m), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_arp),
        cmocka_unit_test(test_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
