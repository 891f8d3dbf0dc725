/* preload/shim: libmqoff-intercept.so linked into this program (its bind(), accept(), ...
 * replace libc's here as LD_PRELOAD makes them in the broker). The test plays the broker (a
 * thread that binds and accepts as Mosquitto does) and mqoff (the channel, scripted with
 * chan/chan.h): the listener on mqoff's address is not bound for real while mqoff holds it,
 * every other socket is; accept() returns the streams mqoff sends, with the real addresses;
 * bad messages, no descriptor left, mqoff going away, refusing and coming back.
 *
 * The shim's state is the process's: the tests run in order and build on each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "chan/chan.h"

static struct {
    char dir[64], path[108];
    int chan;      /* fake mqoff's channel listener */
    int ctl;       /* the current control link */
    int link;      /* mqoff's end of the accept link */
    int held;      /* the real TCP listener "mqoff" holds on addr */
    struct sockaddr_in addr;
    struct mqo_chan_addr caddr;
    int lsock;     /* the broker's intercepted listener */
    int ep;
    uint64_t next_id;
} T = {.chan = -1, .ctl = -1, .link = -1, .held = -1, .lsock = -1, .ep = -1};

/* Waits up to ms for fd to be readable. */
static int readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static int accept_ctl(int ms)
{
    if (!readable(T.chan, ms))
        return -1;
    return accept4(T.chan, NULL, NULL, SOCK_CLOEXEC);
}

static void recv_msg(int fd, struct mqo_chan_msg *m, int *pfd)
{
    assert_true(readable(fd, 3000));
    int r = mqo_chan_recv(fd, m, pfd, 0);
    assert_int_equal(r, 1);
}

/* Skips heartbeats until another message comes. */
static void recv_not_hb(int fd, struct mqo_chan_msg *m, int *pfd)
{
    for (;;) {
        recv_msg(fd, m, pfd);
        if (m->type != MQO_CHAN_HEARTBEAT)
            return;
        assert_int_equal(*pfd, -1);
    }
}

static void send_welcome(int fd, const struct mqo_chan_addr *listen)
{
    struct mqo_chan_msg w = {.type = MQO_CHAN_WELCOME};
    w.u.welcome.pid = 1;
    w.u.welcome.heartbeat_ms = 50;
    w.u.welcome.listen = *listen;
    assert_int_equal(mqo_chan_send(fd, &w, -1), 0);
}

/* Sends a CONN from peer 198.18.0.1:port with a new stream; returns mqoff's end of it. */
static int send_conn(uint16_t port)
{
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct mqo_chan_msg m = {.type = MQO_CHAN_CONN};
    m.u.conn.id = ++T.next_id;
    m.u.conn.peer.family = 4;
    m.u.conn.peer.port = port;
    inet_pton(AF_INET, "198.18.0.1", m.u.conn.peer.a);
    m.u.conn.local = T.caddr;
    assert_int_equal(mqo_chan_send(T.link, &m, sp[1]), 0);
    close(sp[1]);
    return sp[0];
}

/* The broker's listener is readable within ms and accept() gives the client from port. */
static void accept_from(int ms, uint16_t port)
{
    struct epoll_event out;
    assert_int_equal(epoll_wait(T.ep, &out, 1, ms), 1);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int fd = accept(T.lsock, (struct sockaddr *)&a, &al);
    assert_true(fd >= 0);
    assert_int_equal(ntohs(a.sin_port), port);
    close(fd);
}

static void *broker_bind(void *arg)
{
    int *rc = arg;
    T.lsock = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(T.lsock, F_SETFL, O_NONBLOCK); /* before bind, as Mosquitto does */
    int one = 1;
    setsockopt(T.lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc[0] = bind(T.lsock, (struct sockaddr *)&T.addr, sizeof T.addr);
    rc[1] = rc[0] ? errno : 0;
    rc[2] = listen(T.lsock, 100);
    return NULL;
}

static void test_bind_waits_then_intercepts(void **st)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(T.dir, sizeof T.dir, "/tmp/mqo-shim.XXXXXX");
    assert_non_null(mkdtemp(T.dir));
    snprintf(T.path, sizeof T.path, "%s/chan", T.dir);
    setenv("MQOFF_CHANNEL", T.path, 1);

    /* mqoff's own TCP listener holds the address the broker is about to bind */
    T.held = socket(AF_INET, SOCK_STREAM, 0);
    T.addr = (struct sockaddr_in){.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &T.addr.sin_addr);
    /* the kernel's bind: the shim would wait for mqoff, played by this very process */
    assert_int_equal(syscall(SYS_bind, T.held, (struct sockaddr *)&T.addr, sizeof T.addr), 0);
    socklen_t al = sizeof T.addr;
    assert_int_equal(getsockname(T.held, (struct sockaddr *)&T.addr, &al), 0);
    assert_int_equal(listen(T.held, 16), 0);
    assert_int_equal(mqo_chan_addr_from((struct sockaddr *)&T.addr, sizeof T.addr, &T.caddr), 0);

    /* the broker starts first: its bind() waits for mqoff */
    int rc[3] = {-9, -9, -9};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, broker_bind, rc), 0);
    usleep(300 * 1000);
    assert_int_equal(rc[0], -9);

    /* mqoff starts (an AF_UNIX bind passes through the shim) */
    T.chan = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    strcpy(su.sun_path, T.path);
    assert_int_equal(bind(T.chan, (struct sockaddr *)&su, sizeof su), 0);
    assert_int_equal(listen(T.chan, 8), 0);
    T.ctl = accept_ctl(3000);
    assert_true(T.ctl >= 0);
    struct mqo_chan_msg m;
    int fd;
    recv_msg(T.ctl, &m, &fd);
    assert_int_equal(m.type, MQO_CHAN_HELLO);
    assert_int_equal(m.u.hello.pid, getpid());
    assert_int_equal(m.u.hello.min_version, 1);
    assert_int_equal(m.u.hello.listener.family, 0); /* nothing intercepted yet */
    send_welcome(T.ctl, &T.caddr);
    recv_not_hb(T.ctl, &m, &fd);
    assert_int_equal(m.type, MQO_CHAN_ATTACH);
    assert_true(mqo_chan_addr_eq(&m.u.attach.listener, &T.caddr));
    assert_true(fd >= 0);
    T.link = fd;
    pthread_join(th, NULL);
    assert_int_equal(rc[0], 0); /* bound although mqoff holds the address: not for real */
    assert_int_equal(rc[2], 0);
    assert_true(fcntl(T.lsock, F_GETFL) & O_NONBLOCK); /* kept across the swap */

    /* another socket on the same address: taken, as a real second bind would find it */
    int again = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(again, (struct sockaddr *)&T.addr, sizeof T.addr), -1);
    assert_int_equal(errno, EADDRINUSE);
    close(again);

    /* any other address binds for real and works as ever */
    int other = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in oa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &oa.sin_addr);
    assert_int_equal(bind(other, (struct sockaddr *)&oa, sizeof oa), 0);
    al = sizeof oa;
    assert_int_equal(getsockname(other, (struct sockaddr *)&oa, &al), 0);
    assert_int_not_equal(oa.sin_port, 0);
    assert_int_equal(listen(other, 4), 0);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cl, (struct sockaddr *)&oa, sizeof oa), 0);
    struct sockaddr_in pa;
    al = sizeof pa;
    int acc = accept(other, (struct sockaddr *)&pa, &al);
    assert_true(acc >= 0);
    struct sockaddr_in cn;
    socklen_t cnl = sizeof cn;
    getsockname(cl, (struct sockaddr *)&cn, &cnl);
    assert_int_equal(pa.sin_port, cn.sin_port); /* the real peer */
    int one = 1;
    assert_int_equal(setsockopt(acc, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    close(acc);
    close(cl);
    close(other);
}

static void test_accept_gives_real_addresses(void **st)
{
    T.ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = T.lsock}, out;
    assert_int_equal(epoll_ctl(T.ep, EPOLL_CTL_ADD, T.lsock, &e), 0);
    assert_int_equal(epoll_wait(T.ep, &out, 1, 0), 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    assert_int_equal(accept(T.lsock, (struct sockaddr *)&a, &al), -1);
    assert_int_equal(errno, EAGAIN);

    int mq = send_conn(50001);
    assert_int_equal(epoll_wait(T.ep, &out, 1, 1000), 1); /* the listener is readable */
    al = sizeof a;
    int fd = accept(T.lsock, (struct sockaddr *)&a, &al);
    assert_true(fd >= 0);
    assert_int_equal(al, sizeof a);
    assert_int_equal(a.sin_family, AF_INET);
    assert_int_equal(ntohs(a.sin_port), 50001);
    char ip[32];
    assert_string_equal(inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip), "198.18.0.1");
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK); /* as accept() returns it */

    struct sockaddr_storage ss;
    al = sizeof ss;
    assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &al), 0);
    assert_memory_equal(&ss, &a, sizeof a);
    al = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &al), 0);
    assert_memory_equal(&ss, &T.addr, sizeof T.addr);
    /* a short buffer is filled as far as it goes, the length says the whole */
    al = 4;
    memset(&ss, 0, sizeof ss);
    assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &al), 0);
    assert_int_equal(al, sizeof a);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, a.sin_port);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, 0);

    int one = 1, v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_int_equal(v, 1);
    assert_int_equal(setsockopt(fd, IPPROTO_IP, IP_TOS, &one, sizeof one), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);

    /* the stream is the client's, both ways */
    assert_int_equal(write(fd, "hi", 2), 2);
    char b[4];
    assert_int_equal(read(mq, b, sizeof b), 2);
    assert_memory_equal(b, "hi", 2);
    assert_int_equal(write(mq, "yo", 2), 2);
    assert_int_equal(read(fd, b, sizeof b), 2);
    assert_memory_equal(b, "yo", 2);

    /* the listener: the address mqoff serves, no peer */
    al = sizeof ss;
    assert_int_equal(getsockname(T.lsock, (struct sockaddr *)&ss, &al), 0);
    assert_memory_equal(&ss, &T.addr, sizeof T.addr);
    al = sizeof ss;
    assert_int_equal(getpeername(T.lsock, (struct sockaddr *)&ss, &al), -1);
    assert_int_equal(errno, ENOTCONN);

    /* closed, and the number reused by another socket: that one is answered for real */
    close(fd);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(u, fd);
    al = sizeof ss;
    assert_int_equal(getsockname(u, (struct sockaddr *)&ss, &al), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, 0);
    assert_int_equal(getpeername(u, (struct sockaddr *)&ss, &al), -1);
    assert_int_equal(errno, ENOTCONN);
    close(u);
    /* mqoff sees the end of the stream */
    assert_int_equal(read(mq, b, sizeof b), 0);
    close(mq);

    /* accept4 with flags */
    mq = send_conn(50002);
    assert_int_equal(epoll_wait(T.ep, &out, 1, 1000), 1);
    fd = accept4(T.lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    al = sizeof a;
    assert_int_equal(getpeername(fd, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(ntohs(a.sin_port), 50002);
    close(fd);
    close(mq);
}

static void test_bad_messages_on_accept_link(void **st)
{
    /* a CONN without its descriptor */
    struct mqo_chan_msg m = {.type = MQO_CHAN_CONN};
    m.u.conn.peer = T.caddr;
    m.u.conn.local = T.caddr;
    assert_int_equal(mqo_chan_send(T.link, &m, -1), 0);
    /* garbage */
    assert_int_equal(send(T.link, "garbage!", 8, 0), 8);
    /* another type, with a descriptor: closed by the shim */
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct mqo_chan_msg h = {.type = MQO_CHAN_HEARTBEAT};
    assert_int_equal(mqo_chan_send(T.link, &h, sp[1]), 0);
    close(sp[1]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(accept(T.lsock, NULL, NULL), -1);
        assert_int_equal(errno, ECONNABORTED);
    }
    char b;
    assert_int_equal(read(sp[0], &b, 1), 0);
    close(sp[0]);
    /* and the next good one is served */
    int mq = send_conn(50003);
    int fd = accept(T.lsock, NULL, NULL);
    assert_true(fd >= 0);
    close(fd);
    close(mq);
}

static void test_no_descriptor_left(void **st)
{
    int mq = send_conn(50004);
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    /* fill every free descriptor below the highest open one, then allow none above it */
    int top = 0;
    for (int i = 0; i < 4096; i++)
        if (fcntl(i, F_GETFD) >= 0)
            top = i;
    int spare[4096], ns = 0;
    while (ns < 4096) {
        int d = dup(0);
        if (d < 0)
            break;
        if (d > top) {
            close(d);
            break;
        }
        spare[ns++] = d;
    }
    low = old;
    low.rlim_cur = (rlim_t)top + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int r = accept(T.lsock, NULL, NULL);
    int e = errno;
    setrlimit(RLIMIT_NOFILE, &old);
    for (int i = 0; i < ns; i++)
        close(spare[i]);
    assert_int_equal(r, -1);
    assert_int_equal(e, EMFILE);
    /* the connection waited, as in a real listen queue */
    accept_from(0, 50004);
    close(mq);
}

static void test_heartbeats_mqoff_restart_and_refusals(void **st)
{
    struct mqo_chan_msg m;
    int fd;
    /* heartbeats every 50 ms, counting the connections taken (the latest: 4) */
    usleep(120 * 1000);
    int hbs = 0;
    while (readable(T.ctl, 0)) {
        recv_msg(T.ctl, &m, &fd);
        assert_int_equal(m.type, MQO_CHAN_HEARTBEAT);
        hbs++;
    }
    assert_true(hbs >= 2);
    assert_int_equal(m.u.heartbeat.accepted, 4);

    /* mqoff goes away: the listener stays quiet (no end of stream), the shim comes back */
    close(T.ctl);
    close(T.link);
    struct epoll_event out;
    assert_int_equal(epoll_wait(T.ep, &out, 1, 300), 0);
    assert_int_equal(accept(T.lsock, NULL, NULL), -1);
    assert_int_equal(errno, EAGAIN);
    T.ctl = accept_ctl(3000);
    assert_true(T.ctl >= 0);
    recv_msg(T.ctl, &m, &fd);
    assert_int_equal(m.type, MQO_CHAN_HELLO);
    assert_true(mqo_chan_addr_eq(&m.u.hello.listener, &T.caddr)); /* what it intercepts */

    /* refused: it tries again later, without a second log line per try */
    struct mqo_chan_msg rf = {.type = MQO_CHAN_REFUSE};
    rf.u.refuse.code = MQO_CHAN_R_BUSY;
    strcpy(rf.u.refuse.reason, "broker pid 1 is attached");
    assert_int_equal(mqo_chan_send(T.ctl, &rf, -1), 0);
    assert_true(readable(T.ctl, 2000));
    close(T.ctl);
    T.ctl = accept_ctl(4000);
    assert_true(T.ctl >= 0);
    recv_msg(T.ctl, &m, &fd);
    assert_int_equal(m.type, MQO_CHAN_HELLO);
    /* a mqoff for another address: not attached */
    struct mqo_chan_addr wrong = T.caddr;
    wrong.port++;
    send_welcome(T.ctl, &wrong);
    assert_true(readable(T.ctl, 2000));
    assert_int_equal(mqo_chan_recv(T.ctl, &m, &fd, 0), 0); /* closed, nothing attached */
    close(T.ctl);
    /* the right one: the same accept link comes again */
    T.ctl = accept_ctl(4000);
    assert_true(T.ctl >= 0);
    recv_msg(T.ctl, &m, &fd);
    assert_int_equal(m.type, MQO_CHAN_HELLO);
    send_welcome(T.ctl, &T.caddr);
    recv_not_hb(T.ctl, &m, &fd);
    assert_int_equal(m.type, MQO_CHAN_ATTACH);
    T.link = fd;
    int mq = send_conn(50005);
    accept_from(1000, 50005);
    close(mq);

    /* a stream in flight when mqoff goes away ends for the broker (mqoff's end is gone) */
    mq = send_conn(50006);
    close(mq);
    close(T.ctl);
    close(T.link);
    int c = accept(T.lsock, NULL, NULL);
    assert_true(c >= 0);
    char b;
    assert_int_equal(read(c, &b, 1), 0);
    close(c);
}

static int teardown(void **st)
{
    if (T.ep >= 0)
        close(T.ep);
    if (T.chan >= 0)
        close(T.chan);
    if (T.held >= 0)
        close(T.held);
    unlink(T.path);
    rmdir(T.dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_waits_then_intercepts),
        cmocka_unit_test(test_accept_gives_real_addresses),
        cmocka_unit_test(test_bad_messages_on_accept_link),
        cmocka_unit_test(test_no_descriptor_left),
        cmocka_unit_test(test_heartbeats_mqoff_restart_and_refusals),
    };
    return cmocka_run_group_tests_name("shim", tests, NULL, teardown);
}
