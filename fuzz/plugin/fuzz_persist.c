/* libFuzzer target for plugin/persist: Mosquitto's persistence file read into the plugin's
 * table, which is then dumped (every line must be one JSON object on one line). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/persist.h"
#include "plugin/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_client(void *arg, const char *cid, size_t n, uint32_t expiry)
{
    return mqo_ptable_restore(arg, cid, n, NULL, 0, 0) ? 1 : 0;
}

static int on_sub(void *arg, const char *cid, size_t cl, const char *f, size_t fl, uint8_t qos,
                  uint8_t o, uint32_t id)
{
    return mqo_ptable_restore(arg, cid, cl, f, fl, qos > 2 ? 2 : qos) ? 1 : 0;
}

static void emit(void *arg, const char *line, size_t len)
{
    if (memchr(line, '\n', len) || len == 0 || line[0] != '{' || line[len - 1] != '}')
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mqo_ptable *t = mqo_ptable_new(emit, NULL);
    if (!t)
        return 0;
    struct mqo_persist_cb cb = {.client = on_client, .sub = on_sub, .arg = t};
    char err[160];
    mqo_persist_parse(data, size, &cb, err, sizeof err);
    mqo_ptable_dump(t);
    mqo_ptable_free(t);
    return 0;
}
