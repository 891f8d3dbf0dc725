/* l2/gso: the virtio-net header on receive (partial checksums, super-segments and their
 * checksum field, contradictions) and on send (offsets, GSO type and size, Linux's checksum
 * convention, idempotence), and software segmentation of a super-segment into wire segments
 * (lengths, ids, sequence numbers, flags, checksums, the payload whole). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "l2/gso.h"
#include "l2/parse.h"
#include "pktio/pktio.h"

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define BIG (65536 + 64)
#define SEQ0 0xfffff000u /* wraps inside the super-segment */

/* A TCP/IPv4 frame 198.18.0.1:40000 -> 198.18.0.2:1883, timestamps option, plen payload
 * bytes (a pattern), TCP flags fl, id 0xfffe (wraps), `vlan`: one 802.1Q tag. The checksum
 * field: complete when `partial` is 0, else Linux's partial convention (pseudo-header sum with
 * the length). Returns the length. */
static size_t mk(uint8_t *f, size_t plen, uint8_t fl, int vlan, int partial)
{
    static const uint8_t dst[6] = {2, 0, 0, 0, 0, 2}, src[6] = {2, 0, 0, 0, 0, 1};
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    size_t l2 = 12;
    if (vlan) {
        wr16(f + 12, 0x8100);
        wr16(f + 14, 7);
        l2 = 16;
    }
    wr16(f + l2, 0x0800);
    l2 += 2;
    uint8_t *ip = f + l2, *tcp = ip + 20;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    wr16(ip + 2, (uint16_t)(20 + 32 + plen));
    wr16(ip + 4, 0xfffe);
    wr16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 6;
    const uint8_t sa[4] = {198, 18, 0, 1}, da[4] = {198, 18, 0, 2};
    memcpy(ip + 12, sa, 4);
    memcpy(ip + 16, da, 4);
    uint16_t ic = mqo_ipv4_cksum(ip, 20);
    memcpy(ip + 10, &ic, 2);
    memset(tcp, 0, 32);
    wr16(tcp, 40000);
    wr16(tcp + 2, 1883);
    tcp[4] = (uint8_t)(SEQ0 >> 24);
    tcp[5] = (uint8_t)(SEQ0 >> 16);
    tcp[6] = (uint8_t)(SEQ0 >> 8);
    tcp[7] = (uint8_t)SEQ0;
    tcp[12] = 8 << 4;
    tcp[13] = fl;
    wr16(tcp + 14, 5000);
    tcp[20] = 1;
    tcp[21] = 1;
    tcp[22] = 8;
    tcp[23] = 10;
    for (size_t i = 0; i < plen; i++)
        tcp[32 + i] = (uint8_t)(i * 7 + i / 251);
    uint32_t s, d;
    memcpy(&s, sa, 4);
    memcpy(&d, da, 4);
    uint16_t c;
    if (partial)
        c = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(s, d, 6, (uint16_t)(32 + plen), 0));
    else
        c = mqo_l4_cksum4(s, d, 6, tcp, 32 + plen, 16);
    memcpy(tcp + 16, &c, 2);
    return l2 + 20 + 32 + plen;
}

/* 1 when the frame's TCP checksum verifies. */
static int tcp_ok(const uint8_t *f, size_t len)
{
    struct mqo_hdrs h;
    if (mqo_parse_frame(f, len, 0, &h))
        return 0;
    return mqo_cksum_fold(mqo_cksum_partial(f + h.l4_off, h.ip.l4_len,
                                            mqo_cksum_pseudo4(h.ip.saddr, h.ip.daddr, 6,
                                                              h.ip.l4_len, 0))) == 0;
}

static uint16_t field(const uint8_t *f, size_t l4)
{
    uint16_t v;
    memcpy(&v, f + l4 + 16, 2);
    return v;
}

/* A partial checksum: flagged, and completing it gives the right sum. */
static void test_rx_partial(void **st)
{
    (void)st;
    uint8_t f[2000];
    size_t n = mk(f, 1000, MQO_TCP_ACK | MQO_TCP_PSH, 0, 1);
    assert_false(tcp_ok(f, n));
    struct mqo_vnet_hdr h = {.flags = MQO_VNET_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16};
    uint16_t fl, seg;
    assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), 0);
    assert_int_equal(fl, MQO_FRAME_CSUM_PARTIAL);
    assert_int_equal(seg, 0);
    assert_int_equal(mqo_cksum_complete4(f, n), 1);
    assert_true(tcp_ok(f, n));
    /* verified by the kernel */
    h = (struct mqo_vnet_hdr){.flags = MQO_VNET_F_DATA_VALID};
    assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), 0);
    assert_int_equal(fl, MQO_FRAME_CSUM_VALID);
    /* offsets past the frame: contradicts it */
    h = (struct mqo_vnet_hdr){.flags = MQO_VNET_F_NEEDS_CSUM, .csum_start = (uint16_t)(n - 10),
                              .csum_offset = 16};
    assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), -1);
    /* the 10 bytes round-trip */
    uint8_t raw[MQO_VNET_HDR_LEN];
    struct mqo_vnet_hdr a = {1, 1, 66, 1448, 34, 16}, b;
    mqo_vnet_store(&a, raw);
    mqo_vnet_load(&b, raw);
    assert_memory_equal(&a, &b, sizeof a);
}

/* A super-segment (GRO, a local sender's GSO): TSO with its segment size, the field in TSO's
 * convention; what is not a TCP/IPv4 super-segment is refused. */
static void test_rx_gso(void **st)
{
    (void)st;
    uint8_t *f = malloc(BIG);
    assert_non_null(f);
    for (int vlan = 0; vlan < 2; vlan++) {
        size_t n = mk(f, 40000, MQO_TCP_ACK, vlan, 1);
        size_t l4 = 14 + (vlan ? 4 : 0) + 20;
        struct mqo_vnet_hdr h = {.flags = MQO_VNET_F_NEEDS_CSUM, .gso_type = MQO_VNET_GSO_TCPV4,
                                 .gso_size = 1448, .hdr_len = (uint16_t)(l4 + 32),
                                 .csum_start = (uint16_t)l4, .csum_offset = 16};
        uint16_t fl, seg;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), 0);
        assert_int_equal(fl, MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_TSO);
        assert_int_equal(seg, 1448);
        uint32_t s, d;
        memcpy(&s, f + l4 - 8, 4);
        memcpy(&d, f + l4 - 4, 4);
        assert_int_equal(field(f, l4), (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(s, d, 6, 0, 0)));
        /* GRO: no NEEDS_CSUM, the field is the first segment's: rewritten all the same */
        memset(f + l4 + 16, 0xab, 2);
        h.flags = MQO_VNET_F_DATA_VALID;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), 0);
        assert_int_equal(fl, MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_TSO);
        assert_int_equal(field(f, l4), (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(s, d, 6, 0, 0)));
        /* not one segment more than gso_size: an ordinary frame */
        h.gso_size = 40000;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), 0);
        assert_int_equal(fl, MQO_FRAME_CSUM_VALID);
        assert_int_equal(seg, 0);
        /* refused: size 0, UDP or TCPv6 type, cut headers, an IPv4 length past the frame */
        h.gso_size = 0;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), -1);
        h.gso_size = 1448;
        h.gso_type = MQO_VNET_GSO_UDP;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), -1);
        h.gso_type = MQO_VNET_GSO_TCPV6;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), -1);
        h.gso_type = MQO_VNET_GSO_TCPV4 | MQO_VNET_GSO_ECN;
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)n, &fl, &seg), 0);
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)(l4 + 10), &fl, &seg), -1);
        assert_int_equal(mqo_vnet_rx(&h, f, (uint32_t)(n - 1), &fl, &seg), -1);
    }
    free(f);
}

/* On send: the header for a TSO frame, a partial frame, a finished frame. */
static void test_tx(void **st)
{
    (void)st;
    uint8_t *f = malloc(BIG);
    assert_non_null(f);
    size_t n = mk(f, 30000, MQO_TCP_ACK | MQO_TCP_PSH, 0, 0);
    uint32_t s, d;
    memcpy(&s, f + 26, 4);
    memcpy(&d, f + 30, 4);
    /* TSO's convention in the field, as the splice writes it */
    uint16_t c = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(s, d, 6, 0, 0));
    memcpy(f + 34 + 16, &c, 2);
    struct mqo_vnet_hdr h;
    /* the head holds the headers and some payload, the rest follows elsewhere */
    assert_int_equal(mqo_vnet_tx(&h, f, 100, (uint32_t)n, MQO_FRAME_TSO, 1448), 1);
    assert_int_equal(h.flags, MQO_VNET_F_NEEDS_CSUM);
    assert_int_equal(h.gso_type, MQO_VNET_GSO_TCPV4);
    assert_int_equal(h.gso_size, 1448);
    assert_int_equal(h.csum_start, 34);
    assert_int_equal(h.csum_offset, 16);
    assert_int_equal(h.hdr_len, 34 + 32);
    uint16_t want = (uint16_t)~mqo_cksum_fold(mqo_cksum_pseudo4(s, d, 6, 32 + 30000, 0));
    assert_int_equal(field(f, 34), want);
    /* again (the frame waited for the port): the same */
    struct mqo_vnet_hdr h2;
    assert_int_equal(mqo_vnet_tx(&h2, f, 100, (uint32_t)n, MQO_FRAME_TSO, 1448), 1);
    assert_memory_equal(&h, &h2, sizeof h);
    assert_int_equal(field(f, 34), want);
    /* the frame still cuts into wire segments */
    struct mqo_tso_split sp;
    assert_int_equal(mqo_tso_split_init(&sp, f, (uint32_t)n, 1448), (30000 + 1447) / 1448);
    /* the whole frame in the head, flagged TSO, but one segment only: no GSO type */
    assert_int_equal(mqo_vnet_tx(&h, f, (uint32_t)n, (uint32_t)n, MQO_FRAME_TSO, 40000), 1);
    assert_int_equal(h.gso_type, MQO_VNET_GSO_NONE);
    assert_int_equal(h.flags, MQO_VNET_F_NEEDS_CSUM);
    /* the total shorter than the IPv4 length says: not sendable */
    assert_int_equal(mqo_vnet_tx(&h, f, 100, 1000, MQO_FRAME_TSO, 1448), -1);
    /* a partial checksum without TSO: left to the kernel */
    size_t m = mk(f, 500, MQO_TCP_ACK, 1, 1);
    assert_int_equal(mqo_vnet_tx(&h, f, (uint32_t)m, (uint32_t)m, MQO_FRAME_CSUM_PARTIAL, 0), 1);
    assert_int_equal(h.csum_start, 38);
    assert_int_equal(h.gso_type, 0);
    /* nothing to do */
    assert_int_equal(mqo_vnet_tx(&h, f, (uint32_t)m, (uint32_t)m, 0, 0), 0);
    static const struct mqo_vnet_hdr zero;
    assert_memory_equal(&h, &zero, sizeof h);
    /* not IPv4: a partial frame is sent as it is, a TSO frame is refused */
    wr16(f + 16, 0x86dd);
    assert_int_equal(mqo_vnet_tx(&h, f, (uint32_t)m, (uint32_t)m, MQO_FRAME_CSUM_PARTIAL, 0), 0);
    assert_int_equal(mqo_vnet_tx(&h, f, (uint32_t)m, (uint32_t)m, MQO_FRAME_TSO, 100), -1);
    free(f);
}

/* Software segmentation: every segment a valid wire frame, the payload whole and in order. */
static void test_split(void **st)
{
    (void)st;
    uint8_t *f = malloc(BIG), *orig = malloc(BIG);
    assert_non_null(f);
    assert_non_null(orig);
    static const size_t plens[] = {1, 1448, 1449, 40000, 65000};
    for (int vlan = 0; vlan < 2; vlan++)
        for (size_t t = 0; t < sizeof plens / sizeof plens[0]; t++) {
            size_t plen = plens[t];
            uint8_t fl = MQO_TCP_ACK | MQO_TCP_PSH | MQO_TCP_FIN | MQO_TCP_CWR;
            size_t n = mk(f, plen, fl, vlan, 1);
            memcpy(orig, f, n);
            size_t l4 = 14 + (vlan ? 4 : 0) + 20, hdr = l4 + 32;
            struct mqo_tso_split sp;
            int k = mqo_tso_split_init(&sp, f, (uint32_t)n, 1448);
            assert_int_equal(k, (int)((plen + 1447) / 1448));
            size_t got = 0;
            uint8_t seg[2000];
            for (int i = 0; i < k; i++) {
                uint32_t sl = mqo_tso_split_next(&sp, seg, sizeof seg);
                assert_true(sl > hdr);
                size_t pl = sl - hdr;
                assert_true(pl <= 1448);
                struct mqo_hdrs h;
                assert_int_equal(mqo_parse_frame(seg, sl, 0, &h), 0); /* IPv4 checksum too */
                assert_true(tcp_ok(seg, sl));
                assert_int_equal(h.ip.tot_len, 20 + 32 + pl);
                assert_int_equal(h.ip.id, (uint16_t)(0xfffe + i));
                assert_int_equal(rd32(seg + l4 + 4), (uint32_t)(SEQ0 + got));
                uint8_t want = MQO_TCP_ACK;
                if (i == 0)
                    want |= MQO_TCP_CWR;
                if (i == k - 1)
                    want |= MQO_TCP_PSH | MQO_TCP_FIN;
                assert_int_equal(seg[l4 + 13], want);
                assert_memory_equal(seg + hdr, orig + hdr + got, pl);
                assert_int_equal(rd16(seg + l4 + 14), 5000);
                got += pl;
            }
            assert_int_equal(got, plen);
            assert_int_equal(mqo_tso_split_next(&sp, seg, sizeof seg), 0);
            assert_memory_equal(f, orig, n); /* the source is not changed */
        }
    /* too small an output, a segment size of 0, not TCP */
    size_t n = mk(f, 5000, MQO_TCP_ACK, 0, 1);
    struct mqo_tso_split sp;
    assert_int_equal(mqo_tso_split_init(&sp, f, (uint32_t)n, 0), -1);
    assert_true(mqo_tso_split_init(&sp, f, (uint32_t)n, 1000) == 5);
    uint8_t small[500];
    assert_int_equal(mqo_tso_split_next(&sp, small, sizeof small), 0);
    f[23] = 17;
    assert_int_equal(mqo_tso_split_init(&sp, f, (uint32_t)n, 1000), -1);
    free(f);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rx_partial),
        cmocka_unit_test(test_rx_gso),
        cmocka_unit_test(test_tx),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
