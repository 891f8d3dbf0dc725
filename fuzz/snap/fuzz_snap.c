/* libFuzzer target for the takeover state (engine/snap.c, modes/proxy.c, tcp/splice.c): the
 * first byte picks
 *  0 mod 4: the rest as an engine snapshot (mqo_engine_load into a new engine);
 *  2 mod 4: the rest as a splice snapshot (mqo_splice_load into a new splice; then ticks);
 *  odd:  the rest as the proxy's state handed over with (first byte >> 1) descriptors
 *        (mqo_proxy_snap_parse), then its engine snapshot as above.
 *
 * Checked: nothing crashes or leaks, whatever the bytes; a snapshot that loads, saved again,
 * loads again into another engine (what a takeover writes, the next one reads) and both
 * engines tick and free cleanly; every record the proxy parser accepts points into the input
 * and names descriptors in range, each once. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "engine/engine.h"
#include "modes/proxy.h"
#include "tcp/splice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void op_fwd(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n) {}
static void op_cons(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}
static void op_ins(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o) {}
static void op_close(void *ud, struct mqo_conn *c, int reason) {}

static struct mqo_engine *engine(void)
{
    struct mqo_engine_cfg cfg = {.acl_mode = MQO_ACL_OPEN, .exclusive = 1};
    cfg.ops = (struct mqo_engine_ops){.forward = op_fwd, .consume = op_cons, .insert = op_ins,
                                      .close = op_close};
    return mqo_engine_new(&cfg);
}

static void engine_case(const uint8_t *p, size_t n)
{
    struct mqo_engine *e = engine();
    if (!e)
        return;
    if (mqo_engine_load(e, p, n) == 0) {
        struct mqo_buf b = {0};
        int rc = mqo_engine_save(e, &b);
        if (rc == 0) {
            struct mqo_engine *e2 = engine();
            if (e2 && mqo_engine_load(e2, b.data, b.len) != 0)
                abort(); /* what was saved must load */
            if (e2 && mqo_engine_conn_count(e2) != mqo_engine_conn_count(e))
                abort();
            if (e2)
                mqo_engine_tick(e2, 5000000000ull);
            mqo_engine_free(e2);
        } else if (rc != -ENOTSUP && rc != -ENOMEM) {
            abort();
        }
        mqo_buf_free(&b);
        mqo_engine_tick(e, 5000000000ull);
    }
    mqo_engine_free(e);
}

static int emit(void *ud, int to, const uint8_t *f, size_t len, unsigned flags) { return 0; }

static void splice_case(const uint8_t *p, size_t n)
{
    struct mqo_splice_cfg sc = {.broker_ip = 0x020012c6u, .broker_port = 1883, .emit = emit,
                                .max_conns = 64, .startup_hold_ms = -1,
                                .engine = {.acl_mode = MQO_ACL_OPEN, .exclusive = 1}};
    struct mqo_splice *sp = mqo_splice_new(&sc);
    if (!sp)
        return;
    if (mqo_splice_load(sp, p, n) == 0) {
        struct mqo_buf b = {0};
        if (mqo_splice_save(sp, &b) == 0) {
            struct mqo_splice *s2 = mqo_splice_new(&sc);
            if (s2 && mqo_splice_load(s2, b.data, b.len) != 0)
                abort(); /* what was saved must load */
            if (s2)
                mqo_splice_tick(s2, 3000000000ull);
            mqo_splice_free(s2);
        }
        mqo_buf_free(&b);
        mqo_splice_tick(sp, 3000000000ull);
    }
    mqo_splice_free(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mqo_log_set_level(MQO_LOG_ERROR);
        quiet = 1;
    }
    if (size < 1)
        return 0;
    if ((data[0] & 3) == 0) {
        engine_case(data + 1, size - 1);
        return 0;
    }
    if ((data[0] & 3) == 2) {
        splice_case(data + 1, size - 1);
        return 0;
    }
    size_t nfds = data[0] >> 1;
    struct mqo_proxy_snap sn;
    if (mqo_proxy_snap_parse(data + 1, size - 1, nfds, &sn) != 0)
        return 0;
    const uint8_t *lo = data + 1, *hi = data + size;
    for (size_t i = 0; i < sn.n; i++) {
        const struct mqo_proxy_rec *x = &sn.v[i];
        for (int k = 0; k < 2; k++) {
            if (x->s[k].fd != UINT32_MAX && x->s[k].fd >= nfds)
                abort();
            if (x->s[k].qlen && (x->s[k].q < lo || x->s[k].q + x->s[k].qlen > hi))
                abort();
        }
        if (x->sniff_len && (x->sniff < lo || x->sniff + x->sniff_len > hi))
            abort();
    }
    if (sn.engine_len && (sn.engine < lo || sn.engine + sn.engine_len > hi))
        abort();
    engine_case(sn.engine, sn.engine_len);
    free(sn.v);
    return 0;
}
