#!/usr/bin/python3
"""Client-side checks of intercept mode's own lab cases (tests/lab/test_intercept.sh drives
the broker and mqoff between them).

Usage: intercept.py CASE --host ADDR [--port P] --target NAME [options]
  roundtrip   a subscriber gets --msgs QoS 1 messages of a publisher, in order
  fromport    a client from a fixed source port (--bind-port) is accepted (the broker logs it)
  refused     a v3.1.1 and a v5 client get CONNACK "server unavailable" and are closed
  hold        --clients subscribers connect, touch --ready FILE, then every one must see its
              connection closed within --secs (the broker behind them goes away)
  survive     --clients subscribers connect, touch --ready, wait for --go FILE, then each must
              still be connected and get a message published then
  many        --clients raw connections at once: at least --min-ok get CONNACK 0 within --secs;
              once those leave, every other one is answered or closed within --secs (none
              hangs)
  bridged     --msgs QoS 1 messages published to local/b/ID reach a subscriber of remote/b/#
              as remote/b/ID, in order (the broker's bridge, topic b/# out, carried them)
  flood       a client floods QoS 0 PUBLISHes at a subscriber that never reads for --secs
              while another pair exchanges messages: each of theirs arrives within 1 s
"""

import os
import socket
import time

from mqlab import (Client, Loop, RawConn, base_args, connect_pkt, connect_all, publish_pkt,
                   run_case, subscribe_all, subscribe_pkt)


def roundtrip(a, rep, loop=None, tag="roundtrip"):
    loop = loop or Loop()
    sub = Client(loop, a.host, "%s-sub-%d" % (tag, os.getpid()), 4, port=a.port)
    pub = Client(loop, a.host, "%s-pub-%d" % (tag, os.getpid()), 4, port=a.port)
    bad = connect_all(loop, [sub, pub], 10)
    if not rep.ok("%s: clients connected" % a.label, not bad, "no CONNACK 0 for %d" % len(bad)):
        loop.close_all()
        return
    topic = "icpt/%s/%d" % (tag, os.getpid())
    subscribe_all(loop, [sub], topic, 1)
    want = [b"m%d" % i for i in range(a.msgs)]
    for p in want:
        pub.publish(topic, p, 1)
    loop.until(lambda: len(sub.msgs) >= len(want), 10)
    rep.eq("%s: %d messages arrived in order" % (a.label, a.msgs), sub.payloads(topic), want)
    loop.close_all()


def case_roundtrip(a, rep):
    roundtrip(a, rep)


def case_bridged(a, rep):
    loop = Loop()
    sub = Client(loop, a.host, "bridged-sub-%d" % os.getpid(), 4, port=a.port)
    pub = Client(loop, a.host, "bridged-pub-%d" % os.getpid(), 4, port=a.port)
    bad = connect_all(loop, [sub, pub], 10)
    if not rep.ok("%s: clients connected" % a.label, not bad, "no CONNACK 0 for %d" % len(bad)):
        loop.close_all()
        return
    subscribe_all(loop, [sub], "remote/b/#", 1)
    want = [b"b%d" % i for i in range(a.msgs)]
    for p in want:
        pub.publish("local/b/%d" % os.getpid(), p, 1)
    loop.until(lambda: len(sub.msgs) >= len(want), 10)
    rep.eq("%s: %d messages came back over the bridge, in order" % (a.label, a.msgs),
           sub.payloads("remote/b/%d" % os.getpid()), want)
    loop.close_all()


def case_fromport(a, rep):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", a.bind_port))
    s.settimeout(10)
    s.connect((a.host, a.port))
    rc = RawConn.__new__(RawConn)
    rc.s, rc.buf, rc.closed = s, b"", False
    code = rc.connect("fromport-%d" % a.bind_port)
    rep.eq("%s: client from port %d accepted" % (a.label, a.bind_port), code, 0)
    rc.send(b"\xe0\x00")
    rc.close()


def case_refused(a, rep):
    for proto, want in ((4, 3), (5, 0x88)):
        c = RawConn(a.host, a.port)
        c.send(connect_pkt("refused-%d" % proto, proto))
        p = c.read_packet(5)
        got = None if p is None else (p[0] >> 4, p[1][1] if len(p[1]) > 1 else None)
        rep.eq("%s: v%d client gets CONNACK server unavailable" % (a.label, proto), got, (2, want))
        rep.ok("%s: v%d client closed after it" % (a.label, proto), c.wait_closed(5))
        c.close()


def subscribers(a, rep, loop, kind, qos):
    """--clients subscribers of icpt/KIND, connected and subscribed, --ready touched. Returns
    them, or None (reported) when not all connected."""
    subs = [Client(loop, a.host, "%s-%d-%d" % (kind, os.getpid(), i), 4, port=a.port)
            for i in range(a.clients)]
    bad = connect_all(loop, subs, 20)
    subscribe_all(loop, subs, "icpt/" + kind, qos)
    if not rep.ok("%s: %d clients connected" % (a.label, a.clients), not bad, "%d not" % len(bad)):
        return None
    open(a.ready, "w").close()
    return subs


def case_hold(a, rep):
    loop = Loop()
    subs = subscribers(a, rep, loop, "hold", 0)
    if subs is None:
        return
    t0 = time.monotonic()
    loop.until(lambda: all(c.disconnects for c in subs), a.secs)
    closed = sum(1 for c in subs if c.disconnects)
    rep.eq("%s: every client saw its connection closed" % a.label, closed, a.clients)
    if closed:
        rep.note("%s: last close %.1f s after they were ready"
                 % (a.label, max(c.disconnects[0][0] for c in subs if c.disconnects) - t0))


def case_survive(a, rep):
    loop = Loop()
    subs = subscribers(a, rep, loop, "survive", 1)
    if subs is None:
        return
    end = time.monotonic() + a.secs
    while time.monotonic() < end and not os.path.exists(a.go):
        loop.step(0.05)
    rep.ok("%s: told to go on" % a.label, os.path.exists(a.go), "no %s" % a.go)
    dropped = [c.cid for c in subs if c.disconnects]
    rep.eq("%s: no client lost its connection" % a.label, dropped, [])
    subs[0].publish("icpt/survive", b"after", 1)
    loop.until(lambda: all(c.msgs for c in subs), 10)
    rep.eq("%s: every client got the message published afterwards" % a.label,
           sum(1 for c in subs if c.payloads() == [b"after"]), a.clients)
    loop.close_all()


def case_many(a, rep):
    """Clients beyond the descriptors left are refused or wait; once the accepted ones leave,
    every waiting one is served (accepted or closed): none hangs."""
    conns = []
    for i in range(a.clients):
        try:
            c = RawConn(a.host, a.port, timeout=10)
            c.s.setblocking(False)
            c.s.send(connect_pkt("many-%d-%d" % (os.getpid(), i), 4))
            conns.append(c)
        except OSError as e:
            rep.note("%s: connection %d: %s" % (a.label, i, e))

    def settle(cs, secs):
        """{conn: 'ok' | 'closed' | 'waiting'} after up to secs."""
        state = {c: "waiting" for c in cs}
        end = time.monotonic() + secs
        while time.monotonic() < end and "waiting" in state.values():
            for c in cs:
                if state[c] != "waiting":
                    continue
                c.s.setblocking(True)
                p = c.read_packet(0.01)
                if p is not None and p[0] >> 4 == 2:
                    state[c] = "ok" if p[1][1] == 0 else "closed"
                elif c.closed:
                    state[c] = "closed"
        return state

    st = settle(conns, a.secs)
    n = {k: sum(1 for v in st.values() if v == k) for k in ("ok", "closed", "waiting")}
    rep.note("%s: %d clients: %d accepted, %d closed or refused, %d waiting"
             % (a.label, len(conns), n["ok"], n["closed"], n["waiting"]))
    rep.ok("%s: at least %d accepted" % (a.label, a.min_ok), n["ok"] >= a.min_ok,
           "%d accepted" % n["ok"])
    for c in conns:
        if st[c] == "ok":
            try:
                c.s.send(b"\xe0\x00")
            except OSError:
                pass
            c.close()
    waiting = [c for c in conns if st[c] == "waiting"]
    st2 = settle(waiting, a.secs)
    left = sum(1 for v in st2.values() if v == "waiting")
    rep.note("%s: once they left, the %d waiting: %d accepted, %d closed or refused"
             % (a.label, len(waiting), sum(1 for v in st2.values() if v == "ok"),
                sum(1 for v in st2.values() if v == "closed")))
    rep.eq("%s: no client left hanging" % a.label, left, 0)
    for c in conns:
        c.close()


def case_flood(a, rep):
    """The flooder's subscriber never reads: its socket and then mqoff's queue toward it fill,
    and the flood must cost the others nothing."""
    slow = RawConn(a.host, a.port)
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rep.eq("%s: slow subscriber connected" % a.label, slow.connect("flood-slow-%d" % os.getpid()), 0)
    slow.send(subscribe_pkt(1, [("icpt/flood", 0)]))
    p = slow.read_packet(5)
    rep.ok("%s: slow subscriber subscribed" % a.label, p is not None and p[0] >> 4 == 9)
    fl = RawConn(a.host, a.port)
    rep.eq("%s: flooder connected" % a.label, fl.connect("flood-pub-%d" % os.getpid()), 0)
    fl.s.setblocking(False)
    chunk = publish_pkt("icpt/flood", b"x" * 1000, 0) * 64

    loop = Loop()
    sub = Client(loop, a.host, "flood-q-sub-%d" % os.getpid(), 4, port=a.port)
    pub = Client(loop, a.host, "flood-q-pub-%d" % os.getpid(), 4, port=a.port)
    connect_all(loop, [sub, pub], 10)
    subscribe_all(loop, [sub], "icpt/quiet", 1)
    sent, lat, n, out = 0, [], 0, b""
    end = time.monotonic() + a.secs
    next_q = time.monotonic()
    pending = {}
    orig = sub.c.on_message

    def on_msg(c, u, m):
        orig(c, u, m)
        t = pending.pop(bytes(m.payload), None)
        if t is not None:
            lat.append(time.monotonic() - t)
    sub.c.on_message = on_msg
    while time.monotonic() < end:
        try:
            out = out or chunk
            k = fl.s.send(out)  # may take part of it: the rest goes first next time
            out = out[k:]
            sent += k
        except BlockingIOError:
            pass
        except OSError as e:
            rep.note("%s: flooder: %s" % (a.label, e))
            break
        if time.monotonic() >= next_q:
            payload = b"q%d" % n
            pending[payload] = time.monotonic()
            pub.publish("icpt/quiet", payload, 1)
            n += 1
            next_q += 0.1
        loop.step(0.001)
    loop.until(lambda: not pending, 5)
    rep.note("%s: flooder wrote %.1f MB in %d s; quiet pair: %d messages, slowest %.3f s"
             % (a.label, sent / 1e6, a.secs, n, max(lat) if lat else -1))
    rep.ok("%s: the flooder did flood (> 5 MB)" % a.label, sent > 5e6, "%d bytes" % sent)
    rep.eq("%s: the quiet pair got every message" % a.label, len(lat), n)
    rep.ok("%s: each within 1 s" % a.label, lat and max(lat) < 1.0,
           "slowest %.3f s" % (max(lat) if lat else -1))
    fl.close()
    slow.close()
    loop.close_all()


CASES = {"roundtrip": case_roundtrip, "fromport": case_fromport, "refused": case_refused,
         "bridged": case_bridged,
         "hold": case_hold, "survive": case_survive, "many": case_many, "flood": case_flood}


def main():
    ap = base_args(__doc__)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--label", default=None, help="name printed with every check")
    ap.add_argument("--msgs", type=int, default=20)
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--min-ok", type=int, default=1)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--bind-port", type=int, default=41883)
    ap.add_argument("--ready", default=None)
    ap.add_argument("--go", default=None)
    a = ap.parse_args()
    a.label = a.label or a.case
    run_case(CASES, a)


if __name__ == "__main__":
    main()
