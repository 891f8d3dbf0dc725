/* libFuzzer target for the spliced connections' table (tcp/ctab.c) as a restarted monitor reads
 * it: the input is the table file a dead predecessor left (anyone with the rights may have
 * written it). It is opened, its stale entries taken; those mqo_ctab_resumable accepts are
 * resumed into a splice (mqo_splice_resume), the others go to the reset (mqo_ctab_reset_*);
 * then each connection gets an ACK from both ends and the timers run.
 *
 * Checked: nothing crashes or leaks, whatever the bytes; a resumable entry resumes unless its
 * connection is there already (the same client address and port twice) or the splice is full;
 * the splice tracks exactly the entries it resumed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "tcp/ctab.h"
#include "tcp/splice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BIP 0x020012c6u /* 198.18.0.2 */
#define BPORT 1883

static int emit(void *ud, int to_side, const uint8_t *frame, size_t len, unsigned flags)
{
    return 0;
}

static int rsend(void *arg, int to_side, const uint8_t *frame, size_t len) { return 0; }

static struct mqo_ctab_ent *trk(void *ud, const struct mqo_ctab_ent *e, int up)
{
    struct mqo_ctab *t = ud;
    if (!up) {
        mqo_ctab_del(t, e->cip, e->cport);
        return NULL;
    }
    return mqo_ctab_put(t, e) ? NULL : mqo_ctab_get(t, e->cip, e->cport);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/mqoff-fuzz-ctab.%d", (int)getpid());
        mqo_log_set_level(MQO_LOG_ERROR);
    }
    if (size > (1u << 20))
        return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    close(fd);
    size_t stale = 0;
    struct mqo_ctab *t = mqo_ctab_open(path, 16, BIP, BPORT, &stale);
    if (!t) {
        unlink(path);
        return 0;
    }
    struct mqo_ctab_ent *v = NULL;
    size_t n = 0;
    if (mqo_ctab_take_stale(t, &v, &n) != 0 || n != stale)
        abort();
    struct mqo_splice_cfg cfg = {.broker_ip = BIP, .broker_port = BPORT,
                                 .engine = {.acl_mode = MQO_ACL_OPEN, .exclusive = 1},
                                 .emit = emit, .track = trk, .ud = t, .max_conns = 64,
                                 .startup_hold_ms = -1};
    struct mqo_splice *sp = mqo_splice_new(&cfg);
    if (!sp)
        abort();
    size_t resumed = 0, k = 0;
    uint64_t now = 1000000000ull;
    for (size_t i = 0; i < n; i++) {
        if (mqo_ctab_resumable(&v[i])) {
            int rc = mqo_splice_resume(sp, &v[i], now);
            if (rc == 0)
                resumed++;
            else if (rc != -EEXIST && rc != -ENOSPC && rc != -ENOMEM)
                abort();
            else
                v[k++] = v[i];
        } else {
            v[k++] = v[i];
        }
    }
    if (mqo_splice_stats(sp)->conns_tracked != resumed)
        abort();
    struct mqo_ctab_reset *r = mqo_ctab_reset_new(v, k, BIP, BPORT);
    /* an ACK from each end of every entry, at its recorded point */
    for (size_t i = 0; i < n && i < 64; i++) {
        const struct mqo_ctab_ent *e = i < k ? &v[i] : NULL;
        if (!e)
            break;
        uint8_t f[64];
        for (int side = 0; side < 2; side++) {
            uint32_t sip = side ? BIP : e->cip, dip = side ? e->cip : BIP;
            uint16_t sp_ = side ? BPORT : e->cport, dp = side ? e->cport : BPORT;
            size_t fl = mqo_ctab_frame(f, e->eth[side], 64, 0, sip, dip, sp_, dp,
                                       e->isn[side] + 1 + (uint32_t)e->in_off[side],
                                       e->isn[side ^ 1] + 1 + (uint32_t)e->out_off[side ^ 1],
                                       0x10, 1000);
            if (!mqo_ctab_reset_frame(r, side, f, fl, rsend, NULL))
                mqo_splice_input(sp, side, f, fl, 0, now);
        }
    }
    for (int tick = 0; tick < 4; tick++) {
        now += 300000000ull;
        mqo_splice_tick(sp, now);
        mqo_ctab_reset_tick(r, now, rsend, NULL);
    }
    mqo_ctab_reset_free(r);
    mqo_splice_free(sp);
    free(v);
    mqo_ctab_close(t);
    unlink(path);
    return 0;
}
