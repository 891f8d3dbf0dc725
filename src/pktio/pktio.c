/* pktio/: the calls of pktio.h, dispatched to the port's backend (pktio_int.h), and what the
 * backends share. */
#include "pktio/pktio_int.h"

#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const backend_names[] = {"afpacket", "dpdk", "afxdp"};

int mqo_pktio_backend_parse(const char *s, enum mqo_pktio_backend *out)
{
    for (size_t i = 0; i < sizeof backend_names / sizeof backend_names[0]; i++)
        if (!strcmp(s, backend_names[i])) {
            *out = (enum mqo_pktio_backend)i;
            return 0;
        }
    return -EINVAL;
}

const char *mqo_pktio_backend_name(enum mqo_pktio_backend b)
{
    return (unsigned)b < sizeof backend_names / sizeof backend_names[0] ? backend_names[b] : "?";
}

int mqo_pktio_backend_built(enum mqo_pktio_backend b)
{
    switch (b) {
    case MQO_PKTIO_AFPACKET: return 1;
#ifdef MQO_HAVE_DPDK
    case MQO_PKTIO_DPDK: return 1;
#endif
#ifdef MQO_HAVE_AFXDP
    case MQO_PKTIO_AFXDP: return 1;
#endif
    default: return 0;
    }
}

int mqo_port_open(const struct mqo_port_cfg *cfg, struct mqo_port **out, char *err,
                  size_t errlen)
{
    const char *name = cfg->ifname ? cfg->ifname : "";
    switch (cfg->backend) {
    case MQO_PKTIO_AFPACKET: return mqo_afp_open(cfg, out, err, errlen);
#ifdef MQO_HAVE_DPDK
    case MQO_PKTIO_DPDK: return mqo_dpdk_open(cfg, out, err, errlen);
#endif
#ifdef MQO_HAVE_AFXDP
    case MQO_PKTIO_AFXDP: return mqo_afxdp_open(cfg, out, err, errlen);
#endif
    default:
        snprintf(err, errlen,
                 "%s: the %s backend is not in this build (its Debian packages were missing "
                 "when mqoff was built: scripts/deps.sh installs them)",
                 name, mqo_pktio_backend_name(cfg->backend));
        return -ENOTSUP;
    }
}

void mqo_port_close(struct mqo_port *p)
{
    if (p)
        p->ops->close(p);
}

int mqo_port_rx_burst(struct mqo_port *p, struct mqo_rawframe **v, int n)
{
    return p->ops->rx_burst(p, v, n);
}

int mqo_port_tx_burst(struct mqo_port *p, struct mqo_rawframe **v, int n)
{
    return n > 0 ? p->ops->tx_burst(p, v, n) : 0;
}

struct mqo_rawframe *mqo_frame_alloc(struct mqo_port *p) { return p->ops->alloc(p); }

struct mqo_rawframe *mqo_frame_alloc_len(struct mqo_port *p, uint32_t len)
{
    return p->ops->alloc_len ? p->ops->alloc_len(p, len) : p->ops->alloc(p);
}

void mqo_frame_free(struct mqo_rawframe *f)
{
    if (f)
        f->owner->ops->free(f);
}

int mqo_frame_detach(struct mqo_rawframe *f) { return f->owner->ops->detach(f); }

int mqo_port_fd(const struct mqo_port *p) { return p->ops->fd(p); }

void mqo_port_stats(const struct mqo_port *p, struct mqo_port_stats *st) { p->ops->stats(p, st); }

const struct mqo_port_info *mqo_port_info(const struct mqo_port *p) { return &p->info; }

int mqo_frame_attach(struct mqo_rawframe *f, const struct mqo_frame_ext *ext)
{
    if (f->flags & MQO_FRAME_EXT)
        return -EINVAL;
    if (f->owner->ops->attach)
        return f->owner->ops->attach(f, ext);
    return mqo_pktio_attach_copy(f, ext);
}

int mqo_frame_append(struct mqo_rawframe *f, const uint8_t *p, uint32_t len)
{
    if (f->flags & MQO_FRAME_EXT)
        return -EINVAL;
    if (!(f->flags & MQO_FRAME_CHAIN) && (uint64_t)f->len + len <= f->cap) {
        memcpy(f->data + f->len, p, len);
        f->len += len;
        return 0;
    }
    /* beyond one buffer only a TSO frame makes sense: the device cuts it to the link's size */
    if (!(f->flags & MQO_FRAME_TSO) || !(f->owner->info.caps & MQO_PORT_CAP_TSO) ||
        !f->owner->ops->append)
        return -EMSGSIZE;
    return f->owner->ops->append(f, p, len);
}

int mqo_pktio_attach_copy(struct mqo_rawframe *f, const struct mqo_frame_ext *ext)
{
    if ((uint64_t)f->len + ext->len > f->cap)
        return -EMSGSIZE;
    memcpy(f->data + f->len, ext->p, ext->len);
    f->len += ext->len;
    if (ext->put)
        ext->put(ext->arg);
    return 0;
}

int mqo_port_steer(struct mqo_port *p, const struct mqo_port_steer *s, char *msg, size_t msglen)
{
    if (!p->ops->steer) {
        snprintf(msg, msglen, "%s: the %s backend steers nothing in the device", p->info.name,
                 p->info.backend);
        return -ENOTSUP;
    }
    return p->ops->steer(p, s, msg, msglen);
}

int mqo_pktio_ifindex(const char *ifname, unsigned *ifindex, char *err, size_t errlen)
{
    if (!*ifname || strlen(ifname) >= IF_NAMESIZE) {
        snprintf(err, errlen, "'%s': not an interface name", ifname);
        return -EINVAL;
    }
    *ifindex = if_nametoindex(ifname);
    if (!*ifindex) {
        snprintf(err, errlen, "%s: no such interface", ifname);
        return -ENODEV;
    }
    return 0;
}

unsigned mqo_pktio_if_mtu(const char *ifname)
{
    struct ifreq ifr;
    if (strlen(ifname) >= IF_NAMESIZE)
        return 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, ifname);
    unsigned mtu = ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0 ? (unsigned)ifr.ifr_mtu : 0;
    close(fd);
    return mtu;
}

int mqo_pktio_promisc_hold(unsigned ifindex)
{
    /* protocol 0: the socket receives nothing, it only holds the membership */
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct packet_mreq mr = {.mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_PROMISC};
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}
