/* pktio/xdp_prog: the AF_XDP port's XDP program (xdp_prog.h), assembled here.
 *
 * The filter, for each of the three places the EtherType can be (no tag, one, two):
 *
 *   ctx -> r6, data -> r2, data_end -> r3
 *   L: EtherType at L-2 .. L          (beyond data_end: socket; a tag: the next place)
 *      not IPv4                        -> peer
 *      IPv4 header beyond data_end     -> socket
 *      address not the broker's        -> peer
 *      not TCP                         -> peer
 *      a fragment                      -> socket (the splice reassembles the broker's)
 *      IP options                      -> socket (the loop reads them)
 *      port beyond data_end            -> socket
 *      port not the broker's           -> peer
 *                                      -> socket
 *
 * Bytes are compared as they lie in the frame (network order on both sides); addresses with
 * 32-bit jumps (BPF_JMP32), whose immediate is not sign-extended to 64 bits.
 */
#include "pktio/xdp_prog.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#define MAX_INSNS 160
#define MAX_FIX 64

enum { L_XSK, L_FWD, L_TAG1, L_TAG2, L_N };

struct prog {
    struct bpf_insn in[MAX_INSNS];
    int n;
    int label[L_N];            /* instruction index, -1 until placed */
    struct {
        int at, label;
    } fix[MAX_FIX];            /* jumps whose offset is a label's */
    int nfix;
    int overflow;
};

static void ins(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    if (p->n >= MAX_INSNS) {
        p->overflow = 1;
        return;
    }
    struct bpf_insn *i = &p->in[p->n++];
    memset(i, 0, sizeof *i);
    i->code = code;
    i->dst_reg = dst & 0xf;
    i->src_reg = src & 0xf;
    i->off = off;
    i->imm = imm;
}

/* A jump to a label: code is BPF_JMP or BPF_JMP32 with the operation and source bits. */
static void jmp(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int32_t imm, int label)
{
    if (p->nfix >= MAX_FIX) {
        p->overflow = 1;
        return;
    }
    p->fix[p->nfix].at = p->n;
    p->fix[p->nfix].label = label;
    p->nfix++;
    ins(p, code, dst, src, 0, imm);
}

static void place(struct prog *p, int label) { p->label[label] = p->n; }

/* r4 = r2 + len; if r4 > r3 goto label: fewer than len bytes in the frame */
static void need(struct prog *p, int32_t len, int label)
{
    ins(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_4, BPF_REG_2, 0, 0);
    ins(p, BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_4, 0, 0, len);
    jmp(p, BPF_JMP | BPF_JGT | BPF_X, BPF_REG_4, BPF_REG_3, 0, label);
}

/* r5 = the frame's bytes at off (size BPF_B, BPF_H, BPF_W) */
static void load(struct prog *p, uint8_t size, int16_t off)
{
    ins(p, BPF_LDX | BPF_MEM | size, BPF_REG_5, BPF_REG_2, off, 0);
}

/* r1 = the map (a 64-bit immediate: two instructions) */
static void map(struct prog *p, int fd)
{
    ins(p, BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, fd);
    ins(p, 0, 0, 0, 0, 0);
}

/* The tests of the IPv4 header at l3 (the frame holds its EtherType's two bytes before). */
static void ipv4_at(struct prog *p, const struct mqo_xdp_filter *f, int16_t l3)
{
    need(p, l3 + 20, L_XSK);
    load(p, BPF_W, (int16_t)(l3 + (f->match_dst ? 16 : 12)));
    jmp(p, BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_5, 0, (int32_t)f->ip, L_FWD);
    load(p, BPF_B, (int16_t)(l3 + 9));
    jmp(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 6, L_FWD);
    load(p, BPF_H, (int16_t)(l3 + 6));
    ins(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_5, 0, 0, htons(0x3fff)); /* MF, offset */
    jmp(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, L_XSK);
    load(p, BPF_B, l3);
    jmp(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0x45, L_XSK);
    need(p, l3 + 24, L_XSK);
    load(p, BPF_H, (int16_t)(l3 + 20 + (f->match_dst ? 2 : 0)));
    jmp(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, f->port, L_FWD);
    jmp(p, BPF_JMP | BPF_JA, 0, 0, 0, L_XSK);
}

static void assemble(struct prog *p, const struct mqo_xdp_filter *f, int xsk_map, int dev_map)
{
    static const uint16_t tpid[] = {0x8100, 0x88a8, 0x9100};
    for (int i = 0; i < L_N; i++)
        p->label[i] = -1;
    ins(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0);
    if (f->ip) {
        ins(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_6, 0, 0);
        ins(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_6, 0, 0);
        p->in[p->n - 2].off = (int16_t)offsetof(struct xdp_md, data);
        p->in[p->n - 1].off = (int16_t)offsetof(struct xdp_md, data_end);
        for (int tags = 0; tags <= 2; tags++) {
            int16_t l3 = (int16_t)(14 + 4 * tags);
            if (tags)
                place(p, tags == 1 ? L_TAG1 : L_TAG2);
            need(p, l3, L_XSK);
            load(p, BPF_H, (int16_t)(l3 - 2));
            for (unsigned t = 0; tags < 2 && t < sizeof tpid / sizeof tpid[0]; t++)
                jmp(p, BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_5, 0, htons(tpid[t]),
                    tags == 0 ? L_TAG1 : L_TAG2);
            /* a third tag is more than monitor mode parses: not the splice's, like non-IPv4 */
            jmp(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, htons(0x0800), L_FWD);
            ipv4_at(p, f, l3);
        }
    }
    place(p, L_XSK);
    ins(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_6, (int16_t)offsetof(struct xdp_md, rx_queue_index), 0);
    map(p, xsk_map);
    ins(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS);
    ins(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map);
    ins(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    if (!f->ip)
        goto fix; /* nothing jumps to the peer: the verifier refuses unreachable code */
    place(p, L_FWD);
    if (dev_map >= 0) {
        map(p, dev_map);
        ins(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 0);
        ins(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS);
        ins(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map);
    } else {
        ins(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS);
    }
    ins(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
fix:
    for (int i = 0; i < p->nfix; i++) {
        int to = p->label[p->fix[i].label];
        if (to < 0) {
            p->overflow = 1;
            continue;
        }
        p->in[p->fix[i].at].off = (int16_t)(to - p->fix[i].at - 1);
    }
}

int mqo_xdp_prog_load(const struct mqo_xdp_filter *f, int xsk_map, int dev_map, char *log,
                      size_t loglen)
{
    struct prog p;
    memset(&p, 0, sizeof p);
    assemble(&p, f, xsk_map, dev_map);
    if (loglen)
        log[0] = 0;
    if (p.overflow) {
        snprintf(log, loglen, "the program does not fit its buffer");
        return -E2BIG;
    }
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "mqoff_xsk", "Dual BSD/GPL", p.in, (size_t)p.n, NULL);
    if (fd >= 0 || !loglen)
        return fd < 0 ? -errno : fd;
    /* again, for the verifier's words (a log too short for them fails the load itself) */
    int e = errno;
    LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = (unsigned)loglen, .log_level = 1);
    fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "mqoff_xsk", "Dual BSD/GPL", p.in, (size_t)p.n, &o);
    if (fd >= 0) /* it passed this time: keep it */
        return fd;
    return -e;
}
