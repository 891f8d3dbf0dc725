/* monitor mode: the bump loop with the TCP splice as its frame hook. */
#include "modes/monitor.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

struct monitor {
    struct mqo_splice *sp;
    struct mqo_bump *b; /* valid while the loop runs */
};

/* The splice emits toward a side; side == port (clients on a, the broker host on b). */
static void emit(void *ud, int to_side, const uint8_t *frame, size_t len)
{
    struct monitor *m = ud;
    if (m->b)
        mqo_bump_send(m->b, to_side, frame, len);
}

static int on_frame(void *arg, struct mqo_bump *b, int in, const struct mqo_rawframe *f,
                    uint64_t now)
{
    struct monitor *m = arg;
    m->b = b;
    int csum_ok = (f->flags & (MQO_FRAME_CSUM_PARTIAL | MQO_FRAME_CSUM_VALID)) != 0;
    return mqo_splice_input(m->sp, in, f->data, f->len, csum_ok, now);
}

static void on_tick(void *arg, struct mqo_bump *b, uint64_t now)
{
    struct monitor *m = arg;
    m->b = b;
    mqo_splice_tick(m->sp, now);
}

static uint64_t on_next(void *arg, uint64_t now)
{
    struct monitor *m = arg;
    uint64_t t = mqo_splice_next_timer(m->sp, now);
    /* the engine's keep-alive and ordering timers run from tick: at least every 100 ms */
    return t < 100000000ull ? t : 100000000ull;
}

int mqo_monitor_run(const struct mqo_monitor_cfg *cfg, struct mqo_monitor_stats *st)
{
    struct monitor m = {0};
    struct mqo_splice_cfg sc = cfg->splice;
    sc.emit = emit;
    sc.ud = &m;
    m.sp = mqo_splice_new(&sc);
    if (!m.sp) {
        int err = errno;
        mqo_err("cannot start the splice: %s", strerror(err));
        return -err;
    }
    struct mqo_bump_cfg bc = cfg->bump;
    bc.hook = (struct mqo_bump_hook){.frame = on_frame, .tick = on_tick, .next = on_next,
                                     .arg = &m};
    int rc = mqo_bump_run(&bc, &st->bump);
    m.b = NULL;
    st->splice = *mqo_splice_stats(m.sp);
    st->engine = *mqo_splice_engine_stats(m.sp);
    mqo_splice_free(m.sp);
    return rc;
}
