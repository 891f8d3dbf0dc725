/* modes/intercept: mqoff's side of the channel, run in a thread on 127.0.0.1; the test plays
 * the shim (scripted with chan/chan.h) and the clients. No broker attached: clients get
 * CONNACK "server unavailable"; bad peers are refused and counted; an attached broker gets
 * every client's stream with its real addresses, also when its accept link is full; a silent
 * broker is detached (its connections go on), a dead one takes its connections with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chan/chan.h"
#include "core/log.h"
#include "modes/intercept.h"

static const uint8_t CONNECT311[] = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T',
                                     0x04, 0x02, 0x00, 0x3c, 0x00, 0x00};
static const uint8_t CONNACK_OK[] = {0x20, 0x02, 0x00, 0x00};
static const uint8_t CONNACK_UNAVAILABLE[] = {0x20, 0x02, 0x00, 0x03};

static struct {
    char dir[64], path[108];
    volatile int stop;
    volatile uint16_t port;
    pthread_t th;
    int rc;
    struct mqo_engine_stats es;
    struct mqo_proxy_stats ps;
    struct mqo_intercept_stats is;
    struct mqo_chan_addr listen;
} T;

static void on_listen(void *arg, uint16_t port) { T.port = port; }

static void *run(void *arg)
{
    struct mqo_intercept_cfg cfg = {.channel = T.path, .heartbeat_ms = 200};
    struct sockaddr_in *sin = (struct sockaddr_in *)&cfg.proxy.listen_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    cfg.proxy.listen_len = sizeof *sin;
    cfg.proxy.stop = &T.stop;
    cfg.proxy.on_listen = on_listen;
    T.rc = mqo_intercept_run(&cfg, &T.es, &T.ps, &T.is);
    return NULL;
}

static int readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Reads exactly n bytes within 2 s. */
static void read_n(int fd, uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        assert_true(readable(fd, 2000));
        ssize_t r = read(fd, b + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

static void expect_eof(int fd)
{
    assert_true(readable(fd, 2000));
    uint8_t b[8];
    assert_int_equal(read(fd, b, sizeof b), 0);
}

/* The client c's CONNECT reaches the broker's end b, whose CONNACK reaches c. */
static void connect_through(int c, int b)
{
    assert_int_equal(write(c, CONNECT311, sizeof CONNECT311), (ssize_t)sizeof CONNECT311);
    uint8_t buf[sizeof CONNECT311];
    read_n(b, buf, sizeof buf);
    assert_memory_equal(buf, CONNECT311, sizeof buf);
    assert_int_equal(write(b, CONNACK_OK, 4), 4);
    read_n(c, buf, 4);
    assert_memory_equal(buf, CONNACK_OK, 4);
}

/* The client c is answered "server unavailable" and closed. */
static void refused_client(int c)
{
    assert_int_equal(write(c, CONNECT311, sizeof CONNECT311), (ssize_t)sizeof CONNECT311);
    uint8_t b[4];
    read_n(c, b, 4);
    assert_memory_equal(b, CONNACK_UNAVAILABLE, 4);
    expect_eof(c);
    close(c);
}

static int client(void)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(T.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static int peer(void)
{
    int c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    strcpy(su.sun_path, T.path);
    assert_int_equal(connect(c, (struct sockaddr *)&su, sizeof su), 0);
    return c;
}

static void hello(int c, uint8_t lo, uint8_t hi, const struct mqo_chan_addr *listener)
{
    struct mqo_chan_msg m = {.type = MQO_CHAN_HELLO};
    m.u.hello.min_version = lo;
    m.u.hello.max_version = hi;
    m.u.hello.pid = 77;
    if (listener)
        m.u.hello.listener = *listener;
    assert_int_equal(mqo_chan_send(c, &m, -1), 0);
}

static void expect(int c, uint8_t type, struct mqo_chan_msg *m)
{
    assert_true(readable(c, 2000));
    int fd;
    assert_int_equal(mqo_chan_recv(c, m, &fd, 0), 1);
    assert_int_equal(m->type, type);
    assert_int_equal(fd, -1);
}

/* A refused peer: REFUSE with code, then the end of the link. */
static void expect_refused(int c, uint16_t code)
{
    struct mqo_chan_msg m;
    expect(c, MQO_CHAN_REFUSE, &m);
    assert_int_equal(m.u.refuse.code, code);
    int fd;
    assert_true(readable(c, 2000));
    assert_int_equal(mqo_chan_recv(c, &m, &fd, 0), 0);
    close(c);
}

/* A broker: control link welcomed, accept link attached. *a is the broker's listener end. */
static int attach(int *a, int sndbuf)
{
    int c = peer();
    hello(c, 1, 1, NULL);
    struct mqo_chan_msg m;
    expect(c, MQO_CHAN_WELCOME, &m);
    assert_int_equal(m.u.welcome.heartbeat_ms, 200);
    assert_int_equal(m.u.welcome.listen.family, 4);
    assert_int_equal(m.u.welcome.listen.port, T.port);
    T.listen = m.u.welcome.listen;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    if (sndbuf)
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct mqo_chan_msg at = {.type = MQO_CHAN_ATTACH};
    at.u.attach.listener = T.listen;
    assert_int_equal(mqo_chan_send(c, &at, sv[1]), 0);
    close(sv[1]);
    *a = sv[0];
    return c;
}

static void heartbeat(int c)
{
    struct mqo_chan_msg h = {.type = MQO_CHAN_HEARTBEAT};
    assert_int_equal(mqo_chan_send(c, &h, -1), 0);
}

/* Takes the next connection off the accept link: the broker's end, with its addresses. */
static int take(int a, struct mqo_chan_msg *m)
{
    assert_true(readable(a, 2000));
    int fd;
    assert_int_equal(mqo_chan_recv(a, m, &fd, 0), 1);
    assert_int_equal(m->type, MQO_CHAN_CONN);
    assert_true(fd >= 0);
    return fd;
}

static int setup(void **st)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(T.dir, sizeof T.dir, "/tmp/mqo-icpt.XXXXXX");
    if (!mkdtemp(T.dir))
        return -1;
    snprintf(T.path, sizeof T.path, "%s/chan", T.dir);
    /* a leftover socket file of a mqoff that did not stop cleanly is replaced */
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    strcpy(su.sun_path, T.path);
    if (bind(s, (struct sockaddr *)&su, sizeof su))
        return -1;
    close(s);
    if (pthread_create(&T.th, NULL, run, NULL))
        return -1;
    for (int i = 0; i < 200 && !T.port; i++)
        usleep(10000);
    return T.port ? 0 : -1;
}

static void test_no_broker_refuses_clients(void **st)
{
    refused_client(client());
}

static void test_bad_peers(void **st)
{
    /* a second mqoff on the same channel path is refused at start */
    struct mqo_intercept_cfg cfg = {.channel = T.path};
    volatile int stop = 1;
    cfg.proxy.stop = &stop;
    struct sockaddr_in *sin = (struct sockaddr_in *)&cfg.proxy.listen_addr;
    sin->sin_family = AF_INET;
    cfg.proxy.listen_len = sizeof *sin;
    assert_int_equal(mqo_intercept_run(&cfg, NULL, NULL, NULL), -EADDRINUSE);

    int c = peer();
    assert_int_equal(send(c, "hello?", 6, 0), 6);
    expect_refused(c, MQO_CHAN_R_PROTOCOL);

    c = peer();
    hello(c, 2, 5, NULL);
    expect_refused(c, MQO_CHAN_R_VERSION);

    c = peer();
    struct mqo_chan_addr other = {.family = 4, .port = 1, .a = {127, 0, 0, 1}};
    hello(c, 1, 1, &other);
    expect_refused(c, MQO_CHAN_R_LISTENER);

    c = peer();
    struct mqo_chan_msg hb = {.type = MQO_CHAN_HEARTBEAT};
    assert_int_equal(mqo_chan_send(c, &hb, -1), 0); /* not a HELLO first */
    expect_refused(c, MQO_CHAN_R_PROTOCOL);

    /* silent: closed after 5 heartbeat intervals (1 s here) */
    c = peer();
    assert_false(readable(c, 700));
    assert_true(readable(c, 2000));
    struct mqo_chan_msg m;
    int fd;
    assert_int_equal(mqo_chan_recv(c, &m, &fd, 0), 0);
    close(c);
}

static void test_attached_broker_gets_clients(void **st)
{
    int a;
    int ctl = attach(&a, 0);
    /* a second broker while this one is attached */
    int c2 = peer();
    hello(c2, 1, 1, NULL);
    expect_refused(c2, MQO_CHAN_R_BUSY);

    heartbeat(ctl);
    int c = client();
    struct mqo_chan_msg m;
    int b = take(a, &m);
    heartbeat(ctl);
    struct sockaddr_in cl;
    socklen_t cll = sizeof cl;
    getsockname(c, (struct sockaddr *)&cl, &cll);
    assert_int_equal(m.u.conn.peer.family, 4);
    assert_int_equal(m.u.conn.peer.port, ntohs(cl.sin_port)); /* the client's real address */
    assert_memory_equal(m.u.conn.peer.a, &cl.sin_addr, 4);
    assert_true(mqo_chan_addr_eq(&m.u.conn.local, &T.listen));
    connect_through(c, b);
    /* the broker closes it: the client sees the end */
    close(b);
    expect_eof(c);
    close(c);

    /* a full accept link: connections wait in order and go as the broker takes them */
    close(ctl);
    close(a);
    usleep(100 * 1000);
    ctl = attach(&a, 4608);
    int cs[40], bs[40];
    for (int i = 0; i < 40; i++) {
        cs[i] = client();
        heartbeat(ctl);
        usleep(5000);
    }
    for (int i = 0; i < 40; i++) {
        bs[i] = take(a, &m);
        struct sockaddr_in x;
        socklen_t xl = sizeof x;
        getsockname(cs[i], (struct sockaddr *)&x, &xl);
        assert_int_equal(m.u.conn.peer.port, ntohs(x.sin_port));
        heartbeat(ctl);
    }
    for (int i = 0; i < 40; i++) {
        connect_through(cs[i], bs[i]);
        close(cs[i]);
        close(bs[i]);
    }

    /* the broker goes silent (channel lost): detached after 5 heartbeat intervals; its connections go
     * on, new clients are refused */
    c = client();
    b = take(a, &m);
    usleep(1300 * 1000);
    refused_client(client());
    assert_true(readable(ctl, 100)); /* mqoff closed the control link */
    connect_through(c, b);
    close(ctl);
    close(a);

    /* a broker that exits (both links close) takes its connections with it */
    usleep(100 * 1000);
    ctl = attach(&a, 0);
    int c3 = client();
    int b3 = take(a, &m);
    int c4 = client(); /* handed over, not taken yet when the broker dies */
    assert_true(readable(a, 2000));
    close(b3);
    close(a);
    close(ctl);
    expect_eof(c3);
    expect_eof(c4);
    close(c3);
    close(c4);
    close(c);
    close(b);
}

static void test_stop(void **st)
{
    T.stop = 1;
    pthread_join(T.th, NULL);
    assert_int_equal(T.rc, 0);
    struct stat sb;
    assert_int_equal(stat(T.path, &sb), -1); /* the channel's socket file is removed */
    assert_int_equal(T.is.attaches, 3);
    assert_int_equal(T.is.detaches, 3);
    assert_int_equal(T.is.handed, 44);
    assert_int_equal(T.is.bad_peers, 6);
    assert_int_equal(T.ps.broker_connect_failed, 2);
    rmdir(T.dir);
}

int main(void)
{
    mqo_log_set_level(MQO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_broker_refuses_clients),
        cmocka_unit_test(test_bad_peers),
        cmocka_unit_test(test_attached_broker_gets_clients),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests_name("intercept", tests, setup, NULL);
}
