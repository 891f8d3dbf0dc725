/* chan/: the intercept channel's codec (every message type survives a round trip, every
 * malformed input is refused with its errno, partial input waits) and its socket I/O (one
 * descriptor per message; several, none, or no room for it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan/chan.h"

static struct mqo_chan_addr v4(const char *ip, uint16_t port)
{
    struct mqo_chan_addr a = {.family = 4, .port = port};
    inet_pton(AF_INET, ip, a.a);
    return a;
}

static struct mqo_chan_addr v6(const char *ip, uint16_t port, uint32_t scope)
{
    struct mqo_chan_addr a = {.family = 6, .port = port, .scope = scope};
    inet_pton(AF_INET6, ip, a.a);
    return a;
}

/* Encodes m, checks every proper prefix needs more, decodes it back equal. Returns the length. */
static size_t roundtrip(const struct mqo_chan_msg *m, uint8_t *buf)
{
    size_t n = mqo_chan_encode(m, buf, MQO_CHAN_MAX);
    assert_true(n >= MQO_CHAN_HDR);
    for (size_t k = 0; k < n; k++) {
        struct mqo_chan_msg d;
        assert_int_equal(mqo_chan_decode(buf, k, &d), 0);
    }
    struct mqo_chan_msg d;
    assert_int_equal(mqo_chan_decode(buf, n, &d), (ssize_t)n);
    assert_int_equal(d.type, m->type);
    assert_memory_equal(&d.u, &m->u, sizeof d.u);
    return n;
}

static void test_roundtrip(void **st)
{
    uint8_t b[MQO_CHAN_MAX];
    struct mqo_chan_msg m;
    memset(&m, 0, sizeof m);
    m.type = MQO_CHAN_HELLO;
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 3;
    m.u.hello.pid = 4242;
    assert_int_equal(roundtrip(&m, b), 8 + 32);
    m.u.hello.listener = v6("fe80::1", 1883, 7);
    roundtrip(&m, b);

    memset(&m, 0, sizeof m);
    m.type = MQO_CHAN_WELCOME;
    m.u.welcome.pid = 1;
    m.u.welcome.heartbeat_ms = 1000;
    m.u.welcome.listen = v4("198.18.0.2", 1883);
    roundtrip(&m, b);
    /* the wire layout of an address: family, 0, port, scope, 16 bytes */
    static const uint8_t want[24] = {4, 0, 0x07, 0x5b, 0, 0, 0, 0, 198, 18, 0, 2};
    assert_memory_equal(b + 16, want, sizeof want);

    memset(&m, 0, sizeof m);
    m.type = MQO_CHAN_REFUSE;
    m.u.refuse.code = MQO_CHAN_R_BUSY;
    strcpy(m.u.refuse.reason, "broker pid 7 is attached");
    assert_int_equal(roundtrip(&m, b), 8 + 2 + strlen("broker pid 7 is attached"));

    memset(&m, 0, sizeof m);
    m.type = MQO_CHAN_ATTACH;
    m.u.attach.listener = v4("127.0.0.1", 1);
    roundtrip(&m, b);

    memset(&m, 0, sizeof m);
    m.type = MQO_CHAN_HEARTBEAT;
    m.u.heartbeat.accepted = 0x0102030405060708ull;
    roundtrip(&m, b);

    memset(&m, 0, sizeof m);
    m.type = MQO_CHAN_CONN;
    m.u.conn.id = 99;
    m.u.conn.peer = v4("198.18.0.1", 50000);
    m.u.conn.local = v4("198.18.0.2", 1883);
    assert_int_equal(roundtrip(&m, b), 8 + 56);

    /* unknown types are not encoded; a small buffer is refused */
    m.type = 77;
    assert_int_equal(mqo_chan_encode(&m, b, sizeof b), 0);
    m.type = MQO_CHAN_CONN;
    assert_int_equal(mqo_chan_encode(&m, b, 20), 0);
}

static void test_malformed(void **st)
{
    uint8_t b[MQO_CHAN_MAX + 8];
    struct mqo_chan_msg m = {.type = MQO_CHAN_CONN}, d;
    m.u.conn.peer = v4("198.18.0.1", 1);
    m.u.conn.local = v4("198.18.0.2", 2);
    size_t n = mqo_chan_encode(&m, b, sizeof b);

    uint8_t x[sizeof b];
    memcpy(x, b, n);
    x[0] = 'X';
    assert_int_equal(mqo_chan_decode(x, 1, &d), -EPROTO); /* refused at the first byte */
    memcpy(x, b, n);
    x[1] = 'X';
    assert_int_equal(mqo_chan_decode(x, 2, &d), -EPROTO);
    memcpy(x, b, n);
    x[2] = 2; /* a later version's CONN */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EPROTONOSUPPORT);
    memcpy(x, b, n);
    x[6] = 1; /* reserved */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
    memcpy(x, b, n);
    x[8 + 8] = 5; /* peer family */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
    memcpy(x, b, n);
    x[8 + 8 + 1] = 1; /* reserved byte of an address */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
    memcpy(x, b, n);
    x[8 + 8 + 12] = 1; /* a byte an IPv4 address leaves unused */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
    memcpy(x, b, n);
    x[8 + 8 + 5] = 1; /* an IPv4 address has no scope */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
    memcpy(x, b, n);
    x[5] = 10; /* a body too short for a CONN */
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
    memcpy(x, b, n);
    x[4] = 0x02; /* 8 + 0x200 bytes: over MQO_CHAN_MAX, refused before the body is there */
    x[5] = 0x00;
    assert_int_equal(mqo_chan_decode(x, 8, &d), -EMSGSIZE);

    /* a family-0 address must be all zero */
    struct mqo_chan_msg h = {.type = MQO_CHAN_HELLO};
    n = mqo_chan_encode(&h, x, sizeof x);
    x[8 + 8 + 3] = 1;
    assert_int_equal(mqo_chan_decode(x, n, &d), -EBADMSG);
}

static void test_versions_and_extensions(void **st)
{
    uint8_t b[MQO_CHAN_MAX];
    struct mqo_chan_msg m = {.type = MQO_CHAN_HELLO}, d;
    m.u.hello.min_version = 2;
    m.u.hello.max_version = 9;
    size_t n = mqo_chan_encode(&m, b, sizeof b);
    b[2] = 9; /* a HELLO is read at any version: the answer can say why not */
    assert_int_equal(mqo_chan_decode(b, n, &d), (ssize_t)n);
    assert_int_equal(d.u.hello.max_version, 9);

    /* a longer body than the type needs: the rest is ignored */
    struct mqo_chan_msg hb = {.type = MQO_CHAN_HEARTBEAT};
    hb.u.heartbeat.accepted = 5;
    n = mqo_chan_encode(&hb, b, sizeof b);
    memset(b + n, 0xee, 10);
    b[5] = (uint8_t)(b[5] + 10);
    assert_int_equal(mqo_chan_decode(b, n + 10, &d), (ssize_t)(n + 10));
    assert_int_equal(d.u.heartbeat.accepted, 5);

    /* a type this version does not know is returned for the caller to skip */
    b[3] = 200;
    assert_int_equal(mqo_chan_decode(b, n + 10, &d), (ssize_t)(n + 10));
    assert_int_equal(d.type, 200);
    assert_string_equal(mqo_chan_type_name(200), "unknown");

    /* a reason is cut to its limit and made printable */
    struct mqo_chan_msg r = {.type = MQO_CHAN_REFUSE};
    memset(r.u.refuse.reason, 'a', MQO_CHAN_REASON_MAX);
    n = mqo_chan_encode(&r, b, sizeof b);
    assert_int_equal(n, 8 + 2 + MQO_CHAN_REASON_MAX);
    b[10] = '\n';
    b[11] = 0x80;
    assert_int_equal(mqo_chan_decode(b, n, &d), (ssize_t)n);
    assert_int_equal(strlen(d.u.refuse.reason), MQO_CHAN_REASON_MAX);
    assert_int_equal(d.u.refuse.reason[0], '?');
    assert_int_equal(d.u.refuse.reason[1], '?');
}

static void test_addr(void **st)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1883)};
    inet_pton(AF_INET, "198.18.0.2", &sin.sin_addr);
    struct mqo_chan_addr a;
    assert_int_equal(mqo_chan_addr_from((struct sockaddr *)&sin, sizeof sin, &a), 0);
    struct mqo_chan_addr w = v4("198.18.0.2", 1883);
    assert_true(mqo_chan_addr_eq(&a, &w));
    w.port = 1884;
    assert_false(mqo_chan_addr_eq(&a, &w));
    char s[64];
    assert_string_equal(mqo_chan_addr_str(&a, s, sizeof s), "198.18.0.2:1883");
    struct sockaddr_storage ss;
    assert_int_equal(mqo_chan_addr_to(&a, &ss), sizeof sin);
    assert_memory_equal(&ss, &sin, sizeof sin);

    struct mqo_chan_addr b6 = v6("::1", 8883, 0);
    assert_string_equal(mqo_chan_addr_str(&b6, s, sizeof s), "[::1]:8883");
    assert_int_equal(mqo_chan_addr_to(&b6, &ss), sizeof(struct sockaddr_in6));
    struct mqo_chan_addr back;
    assert_int_equal(mqo_chan_addr_from((struct sockaddr *)&ss, sizeof(struct sockaddr_in6), &back),
                     0);
    assert_true(mqo_chan_addr_eq(&back, &b6));
    struct mqo_chan_addr other_scope = v6("::1", 8883, 3);
    assert_false(mqo_chan_addr_eq(&other_scope, &b6));

    struct sockaddr sun = {.sa_family = AF_UNIX};
    assert_int_equal(mqo_chan_addr_from(&sun, sizeof sun, &a), -EAFNOSUPPORT);
    struct mqo_chan_addr none = {0};
    assert_string_equal(mqo_chan_addr_str(&none, s, sizeof s), "none");
    assert_int_equal(mqo_chan_addr_to(&none, &ss), 0);
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void test_io(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int base = open_fds();
    struct mqo_chan_msg m = {.type = MQO_CHAN_CONN}, d;
    m.u.conn.id = 1;
    m.u.conn.peer = v4("198.18.0.1", 1);
    m.u.conn.local = v4("198.18.0.2", 2);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(mqo_chan_send(sv[0], &m, p[0]), 0);
    close(p[0]);
    int fd = -2;
    assert_int_equal(mqo_chan_recv(sv[1], &d, &fd, MSG_CMSG_CLOEXEC), 1);
    assert_true(fd >= 0);
    assert_int_equal(d.u.conn.id, 1);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    /* it is the pipe's read end */
    assert_int_equal(write(p[1], "z", 1), 1);
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'z');
    close(fd);
    close(p[1]);

    /* nothing there; a message without a descriptor */
    assert_int_equal(mqo_chan_recv(sv[1], &d, &fd, MSG_DONTWAIT), -EAGAIN);
    assert_int_equal(mqo_chan_send(sv[0], &m, -1), 0);
    assert_int_equal(mqo_chan_recv(sv[1], &d, &fd, 0), 1);
    assert_int_equal(fd, -1);

    /* two descriptors: refused, both closed */
    uint8_t raw[MQO_CHAN_MAX];
    size_t n = mqo_chan_encode(&m, raw, sizeof raw);
    int two[2] = {dup(0), dup(0)};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = raw, .iov_len = n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                        .msg_controllen = sizeof ctl.b};
    struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
    ch->cmsg_level = SOL_SOCKET;
    ch->cmsg_type = SCM_RIGHTS;
    ch->cmsg_len = CMSG_LEN(sizeof two);
    memcpy(CMSG_DATA(ch), two, sizeof two);
    assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)n);
    close(two[0]);
    close(two[1]);
    assert_int_equal(mqo_chan_recv(sv[1], &d, &fd, 0), -EBADMSG);
    assert_int_equal(fd, -1);

    /* garbage with a descriptor: refused, the descriptor closed */
    raw[0] = 'X';
    ch->cmsg_len = CMSG_LEN(sizeof(int));
    mh.msg_controllen = CMSG_SPACE(sizeof(int));
    int one = dup(0);
    memcpy(CMSG_DATA(ch), &one, sizeof one);
    assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)n);
    close(one);
    assert_int_equal(mqo_chan_recv(sv[1], &d, &fd, 0), -EBADMSG);
    assert_int_equal(open_fds(), base);

    /* no room for the descriptor: the message is read, the descriptor dropped by the kernel */
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(mqo_chan_send(sv[0], &m, p[0]), 0);
    close(p[0]);
    low = old;
    low.rlim_cur = (rlim_t)(sv[1] > p[1] ? sv[1] : p[1]) + 1;
    int spare[64], ns = 0;
    while (ns < 64 && (spare[ns] = dup(0)) >= 0 && (rlim_t)spare[ns] < low.rlim_cur)
        ns++;
    if (ns < 64 && spare[ns] >= 0)
        close(spare[ns]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int r = mqo_chan_recv(sv[1], &d, &fd, 0);
    setrlimit(RLIMIT_NOFILE, &old);
    for (int i = 0; i < ns; i++)
        close(spare[i]);
    assert_int_equal(r, -EMFILE);
    assert_int_equal(d.type, MQO_CHAN_CONN);
    /* the pipe's read end is gone: its write end sees no reader */
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(write(p[1], "z", 1), -1);
    assert_int_equal(errno, EPIPE);
    close(p[1]);

    /* the end of the stream */
    close(sv[0]);
    assert_int_equal(mqo_chan_recv(sv[1], &d, &fd, 0), 0);
    assert_int_equal(mqo_chan_send(sv[1], &m, -1), -EPIPE);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_versions_and_extensions),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_io),
    };
    return cmocka_run_group_tests_name("chan", tests, NULL, NULL);
}
