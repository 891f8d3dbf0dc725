/* libFuzzer target for ctl/bvproto: a broker plugin's lines driving an engine's broker view.
 *
 * Input: byte 0 = flags (bit 0: a valid hello is sent first, bit 1: "synced" after the
 * input), then lines separated by '\n', each handed to mqo_bvproto_line as the control socket
 * would. A line the protocol refuses ends the connection, as the socket does; the engine's
 * listing is walked at the end. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ctl/bvproto.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void op_fwd(void *ud, struct mqo_conn *c, enum mqo_dir s, const uint8_t *p, size_t n) {}
static void op_consume(void *ud, struct mqo_conn *c, enum mqo_dir s, size_t n) {}
static void op_insert(void *ud, struct mqo_conn *c, enum mqo_dir s, const struct mqo_out *o) {}
static void op_close(void *ud, struct mqo_conn *c, int r) {}

static int count_sub(void *arg, const struct mqo_sub_info *s)
{
    (*(size_t *)arg) += s->len + s->cid_len;
    return 0;
}

static const char HELLO[] = "{\"op\":\"hello\",\"proto\":1,\"role\":\"plugin\",\"acl\":\"allow\","
                            "\"coverage\":\"all\",\"persistence\":\"none\"}";
#define TOKEN "0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct mqo_engine_cfg cfg = {
        .ops = {.forward = op_fwd, .consume = op_consume, .insert = op_insert, .close = op_close},
        .acl_mode = MQO_ACL_OPEN,
        .broker_view = 1,
    };
    struct mqo_engine *e = mqo_engine_new(&cfg);
    if (!e)
        return 0;
    struct mqo_bvproto p = {0};
    uint8_t flags = data[0];
    int rc = 0;
    if (flags & 1)
        rc = mqo_bvproto_line(&p, e, TOKEN, HELLO, sizeof HELLO - 1);
    const uint8_t *q = data + 1, *end = data + size;
    while (q < end && rc >= 0) {
        const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
        size_t n = nl ? (size_t)(nl - q) : (size_t)(end - q);
        rc = mqo_bvproto_line(&p, e, TOKEN, (const char *)q, n);
        q += n + (nl ? 1 : 0);
    }
    if (rc >= 0 && (flags & 2))
        mqo_bvproto_line(&p, e, TOKEN, "{\"op\":\"synced\"}", 15);
    size_t total = 0;
    mqo_engine_each_sub(e, count_sub, &total);
    const struct mqo_engine_stats *st = mqo_engine_stats(e);
    if (st->bv_table > st->bv_subscriptions)
        __builtin_trap(); /* the table holds only what the view reports */
    mqo_bvproto_close(&p, e);
    if (mqo_engine_stats(e)->bv_table != 0)
        __builtin_trap(); /* a closed connection leaves nothing of the view behind */
    mqo_engine_free(e);
    return 0;
}
