/* The intercept channel's socket I/O (chan.h): one message per SOCK_SEQPACKET datagram, with at
 * most one descriptor (SCM_RIGHTS). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan/chan.h"

int mqo_chan_send(int sock, const struct mqo_chan_msg *m, int pass_fd)
{
    uint8_t buf[MQO_CHAN_MAX];
    size_t n = mqo_chan_encode(m, buf, sizeof buf);
    if (!n)
        return -EINVAL;
    struct iovec iov = {.iov_base = buf, .iov_len = n};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof ctl.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    for (;;) {
        ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (r >= 0)
            return (size_t)r == n ? 0 : -EMSGSIZE;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* Closes every descriptor a control message brought. */
static void close_fds(struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            close(fd);
        }
    }
}

int mqo_chan_recv(int sock, struct mqo_chan_msg *m, int *fd, int flags)
{
    uint8_t buf[MQO_CHAN_MAX];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    /* room for more than one descriptor, so a peer sending several is seen and refused */
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                        .msg_controllen = sizeof ctl.b};
    *fd = -1;
    ssize_t r;
    do
        r = recvmsg(sock, &mh, flags & (MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (r == 0 && !(mh.msg_flags & MSG_CTRUNC))
        return 0;
    int nfd = 0, got = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            nfd += (int)k;
            if (k)
                memcpy(&got, CMSG_DATA(c), sizeof got);
        }
    ssize_t d = mqo_chan_decode(buf, (size_t)r, m);
    if (nfd > 1 || (mh.msg_flags & MSG_TRUNC) || d != r) {
        close_fds(&mh);
        return -EBADMSG;
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        /* no room for the descriptor in this process (RLIMIT_NOFILE): the kernel dropped it */
        close_fds(&mh);
        return -EMFILE;
    }
    *fd = got;
    return 1;
}
