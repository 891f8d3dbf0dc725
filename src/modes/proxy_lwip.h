/* proxy mode on lwIP (mqoff proxy --stack lwip): the clients' and the broker's TCP connections
 * are lwIP's (stack/lwip.h) over a pktio port, not the kernel's; the connection layer, the
 * engine and the loop are proxy mode's (modes/proxy_int.h). */
#ifndef MQO_MODES_PROXY_LWIP_H
#define MQO_MODES_PROXY_LWIP_H

#include <stdint.h>

#include "modes/proxy.h"
#include "pktio/pktio.h"

struct mqo_proxy_lwip_cfg {
    struct mqo_port_cfg port; /* the interface (no kernel address for listen_addr on it) */
    const char *mac;          /* the stack's MAC ("aa:bb:.."), NULL: the interface's */
    uint32_t netmask;         /* network order; 0: 255.255.255.0 */
    uint32_t gateway;         /* network order; 0: none, the broker is on the link */
    uint32_t max_conns;       /* client connections at most (0: 100000); more are reset */
    uint32_t syn_backlog;     /* half-open connections at most (0: 256) */
};

/* Runs proxy mode (cfg: listen_addr is the stack's address; IPv4 only; cfg->stack_cfg a struct
 * mqo_proxy_lwip_cfg) until *cfg->stop, or intercept mode's loop when cfg->upstream is set
 * (the clients' side on lwIP). Returns 0 or -errno (logged). As cfg->stack_run, mqo_proxy_run
 * (and so intercept mode) calls it. */
int mqo_proxy_lwip_run(const struct mqo_proxy_cfg *cfg, struct mqo_engine_stats *est,
                       struct mqo_proxy_stats *pst);

#endif
