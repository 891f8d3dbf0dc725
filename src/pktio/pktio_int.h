/* pktio/: what every backend implements (pktio.c dispatches to it). Not for the layers above.
 *
 * A backend's port struct starts with struct mqo_port; every frame it hands out has
 * frame->owner set to the port whose buffer it is, so a frame alone finds its backend
 * (mqo_frame_free, mqo_frame_detach). */
#ifndef MQO_PKTIO_INT_H
#define MQO_PKTIO_INT_H

#include "pktio/pktio.h"

struct mqo_pktio_ops {
    const char *name;
    void (*close)(struct mqo_port *p);
    int (*rx_burst)(struct mqo_port *p, struct mqo_rawframe **v, int n);
    int (*tx_burst)(struct mqo_port *p, struct mqo_rawframe **v, int n);
    struct mqo_rawframe *(*alloc)(struct mqo_port *p);
    void (*free)(struct mqo_rawframe *f);
    int (*detach)(struct mqo_rawframe *f);
    int (*fd)(const struct mqo_port *p);
    void (*stats)(const struct mqo_port *p, struct mqo_port_stats *st);
    /* Optional (NULL: -ENOTSUP). */
    int (*attach)(struct mqo_rawframe *f, const struct mqo_frame_ext *ext);
    int (*append)(struct mqo_rawframe *f, const uint8_t *p, uint32_t len); /* beyond cap */
    int (*steer)(struct mqo_port *p, const struct mqo_port_steer *s, char *msg, size_t msglen);
    /* a frame of cap >= len, possibly smaller than alloc's (NULL: alloc) */
    struct mqo_rawframe *(*alloc_len)(struct mqo_port *p, uint32_t len);
};

struct mqo_port {
    const struct mqo_pktio_ops *ops;
    struct mqo_port_info info; /* filled by the backend's open */
};

/* The backends' open functions (cfg->backend says which). Each fills *out and returns 0, or
 * returns -errno with a message in err. */
int mqo_afp_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err, size_t errlen);
int mqo_dpdk_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err, size_t errlen);
int mqo_afxdp_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err,
                   size_t errlen);

/* Shared by the backends. The index of interface ifname: 0, or -EINVAL / -ENODEV with the
 * message in err. */
int mqo_pktio_ifindex(const char *ifname, unsigned *ifindex, char *err, size_t errlen);
/* The interface's MTU, 0 when unknown. */
unsigned mqo_pktio_if_mtu(const char *ifname);
/* mqo_frame_attach where the port cannot reference the block: it is copied after the head
 * and put at once. 0, or -EMSGSIZE (the frame's buffer is too small) with nothing done. */
int mqo_pktio_attach_copy(struct mqo_rawframe *f, const struct mqo_frame_ext *ext);

/* Promiscuous mode held by a packet socket membership: the kernel counts it and drops it when
 * the socket closes, also when the process dies, so the interface always gets back the mode
 * it had. Returns the socket (close it to let go), or -errno. */
int mqo_pktio_promisc_hold(unsigned ifindex);

#endif
