"""Shared helpers for the lab's scripted MQTT clients.

Runs with Debian's /usr/bin/python3 and python3-paho-mqtt 1.6.1. Every script prints TAP-like
lines, one per check: "ok - NAME [target]" or "not ok - NAME [target]: why", which
tests/lab/lib.sh counts.

Many paho clients are driven from one thread by Loop (poll over their sockets, paho's
"external loop" API), so a scenario with 200 subscribers is one process and its order of
events is easy to reason about. Raw sockets (RawConn) build packets by hand for the cases
paho cannot produce: several packets in one write, a packet a byte at a time, malformed bytes,
acknowledgements held back on purpose.
"""

import argparse
import select
import socket
import struct
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PORT = 1883
BROKER = "198.18.0.2"   # Mosquitto in the brk namespace (the $SYS watcher always talks to it)
PROXY = "198.18.0.3"    # mqoff proxy in the nic namespace
PROTO = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}


# ---------------------------------------------------------------------------------------------
# reporting

class Reporter:
    """Prints one line per check and remembers failures; done() exits 1 when any failed."""

    def __init__(self, target):
        self.target = target
        self.failed = 0
        self.passed = 0

    def ok(self, name, cond, why=""):
        label = "%s [%s]" % (name, self.target)
        if cond:
            print("ok - %s" % label, flush=True)
            self.passed += 1
        else:
            why = str(why).replace("\n", " ")
            print("not ok - %s: %s" % (label, why[:600]), flush=True)
            self.failed += 1
        return bool(cond)

    def eq(self, name, got, want):
        return self.ok(name, got == want, "got %r, want %r" % (got, want))

    def skip(self, name, why):
        print("ok - %s [%s] # SKIP %s" % (name, self.target, why), flush=True)

    def note(self, text):
        print("# %s" % text, flush=True)

    def done(self):
        sys.exit(1 if self.failed else 0)


def run_case(cases, a):
    """Runs cases[a.case](a, rep) with a Reporter for a.target and exits with its verdict; a
    crash is one failed check, with its cause."""
    rep = Reporter(a.target)
    try:
        cases[a.case](a, rep)
    except Exception as e:
        import traceback
        traceback.print_exc()
        rep.ok("%s: ran to the end" % a.case, False, "%s: %s" % (type(e).__name__, e))
    rep.done()


def base_args(desc):
    ap = argparse.ArgumentParser(description=desc)
    ap.add_argument("--host", required=True, help="address clients connect to")
    ap.add_argument("--port", type=int, default=PORT)
    ap.add_argument("--target", default="direct", help="label printed with every check")
    ap.add_argument("--broker", default=BROKER, help="the broker itself, for $SYS")
    return ap


# ---------------------------------------------------------------------------------------------
# paho clients driven from one thread

class Msg:
    __slots__ = ("topic", "payload", "qos", "retain", "props", "t")

    def __init__(self, m):
        self.topic = m.topic
        self.payload = bytes(m.payload)
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.props = getattr(m, "properties", None)
        self.t = time.monotonic_ns()

    def __repr__(self):
        return "Msg(%s,%r,q%d%s)" % (self.topic, self.payload[:40], self.qos, ",r" if self.retain else "")


def _rc(v):
    """paho gives ints (v3) or ReasonCodes (v5); make them ints."""
    if isinstance(v, int):
        return v
    return getattr(v, "value", v)


class Client:
    """A paho client with everything it saw recorded. proto: 3 (3.1), 4 (3.1.1) or 5."""

    def __init__(self, loop, host, cid, proto=4, keepalive=60, port=PORT, username=None,
                 password=None, clean=True, klass=None):
        self.loop, self.host, self.port, self.cid = loop, host, port, cid
        self.proto, self.keepalive = proto, keepalive
        self.clean = clean
        kw = {"client_id": cid, "protocol": PROTO[proto]}
        if proto != 5:
            kw["clean_session"] = clean
        self.c = (klass or mqtt.Client)(**kw)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.max_inflight_messages_set(0)     # no client-side cap: tests pace themselves
        self.c.max_queued_messages_set(0)
        self.msgs = []
        self.connack = None          # (rc, session_present)
        self.subacks = {}            # mid -> [granted qos or reason code]
        self.unsubacks = {}          # mid -> [reason codes] (v3: [])
        self.acked = set()           # mids whose PUBACK/PUBCOMP arrived (QoS 0: sent)
        self.disconnects = []        # (monotonic s, rc)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        loop.add(self)

    # callbacks, both paho signatures
    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = (_rc(rc), flags.get("session present", 0))

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.subacks[mid] = [_rc(g) for g in granted]

    def _on_unsubscribe(self, c, u, mid, *rest):
        codes = []
        if len(rest) == 2 and rest[1] is not None:
            r = rest[1]
            codes = [_rc(x) for x in r] if isinstance(r, list) else [_rc(r)]
        self.unsubacks[mid] = codes

    def _on_message(self, c, u, m):
        self.msgs.append(Msg(m))

    def _on_publish(self, c, u, mid):
        self.acked.add(mid)

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnects.append((time.monotonic(), _rc(rc)))

    # actions
    def connect(self):
        if self.proto == 5:
            self.c.connect(self.host, self.port, self.keepalive, clean_start=self.clean)
        else:
            self.c.connect(self.host, self.port, self.keepalive)
        return self

    def connected(self):
        return self.connack is not None and self.connack[0] == 0

    def subscribe(self, filters, qos=0, props=None):
        """filters: a topic or a list of topics (all at qos) or of (topic, qos)."""
        if isinstance(filters, str):
            filters = [(filters, qos)]
        else:
            filters = [f if isinstance(f, tuple) else (f, qos) for f in filters]
        if self.proto == 5:
            from paho.mqtt.subscribeoptions import SubscribeOptions
            filters = [(t, SubscribeOptions(qos=q)) for t, q in filters]
        rc, mid = self.c.subscribe(filters, properties=props) if props else self.c.subscribe(filters)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("subscribe failed rc=%d" % rc)
        return mid

    def unsubscribe(self, topics):
        rc, mid = self.c.unsubscribe(topics)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("unsubscribe failed rc=%d" % rc)
        return mid

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("publish failed rc=%d" % info.rc)
        return info.mid

    def disconnect(self):
        self.c.disconnect()

    def payloads(self, topic=None):
        return [m.payload for m in self.msgs if topic is None or m.topic == topic]


class Loop:
    """Drives every registered paho client from this thread (poll + loop_read/write/misc)."""

    def __init__(self):
        self.clients = []
        self.raws = []      # objects with .s (socket), .on_readable(), .tick()

    def add_raw(self, r):
        self.raws.append(r)

    def add(self, cl):
        self.clients.append(cl)

    def remove(self, cl):
        if cl in self.clients:
            self.clients.remove(cl)

    @staticmethod
    def _drain(c):
        # paho's loop_read() handles one packet per call; read until the socket is empty.
        for _ in range(10000):
            if c._sock is None:
                return
            rc = c._packet_read()
            if rc == mqtt.MQTT_ERR_AGAIN:
                return
            if rc > 0:
                c._loop_rc_handle(rc)
                return

    def step(self, timeout=0.01):
        p = select.poll()
        fds = {}
        for cl in self.clients:
            s = cl.c.socket()
            if s is None:
                continue
            fd = s.fileno()
            fds[fd] = cl.c
            p.register(fd, select.POLLIN | (select.POLLOUT if cl.c.want_write() else 0))
        raws = {}
        for r in self.raws:
            if r.s is not None and r.s.fileno() >= 0:
                raws[r.s.fileno()] = r
                p.register(r.s.fileno(), select.POLLIN)
        if not fds and not raws:
            time.sleep(timeout)
            return
        for fd, ev in p.poll(int(timeout * 1000)):
            if fd in raws:
                raws[fd].on_readable()
                continue
            c = fds[fd]
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._drain(c)
            if ev & select.POLLOUT and c.socket() is not None:
                c.loop_write()
        for cl in self.clients:
            if cl.c.socket() is not None:
                cl.c.loop_misc()
        for r in self.raws:
            r.tick()

    def run(self, seconds):
        """Runs for this long."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step(min(0.01, max(0.0, end - time.monotonic())))

    def until(self, pred, timeout):
        """Runs until pred() is true (returns True) or timeout seconds passed (returns False)."""
        end = time.monotonic() + timeout
        while True:
            if pred():
                return True
            if time.monotonic() >= end:
                return False
            self.step(0.01)

    def flush(self, cls, timeout=5):
        """Runs until the clients have nothing left to write."""
        return self.until(lambda: not any(c.c.want_write() for c in cls), timeout)

    def close_all(self):
        for cl in list(self.clients):
            try:
                cl.c.disconnect()
            except Exception:
                pass
        self.run(0.1)
        for cl in list(self.clients):
            s = cl.c.socket()
            if s is not None:
                try:
                    s.close()
                except Exception:
                    pass
        self.clients = []


def connect_all(loop, clients, timeout=20, batch=50):
    """Connects clients (in batches, so the listen backlog never overflows) and waits for
    every CONNACK. Returns the clients that did not get a successful one."""
    for i in range(0, len(clients), batch):
        for cl in clients[i:i + batch]:
            cl.connect()
        loop.until(lambda: all(c.connack is not None for c in clients[i:i + batch]), timeout)
    loop.until(lambda: all(c.connack is not None for c in clients), timeout)
    return [c for c in clients if not c.connected()]


def subscribe_all(loop, clients, filters, qos=0, timeout=20):
    """Subscribes every client and waits for every SUBACK. Returns {client: codes}."""
    mids = {c: c.subscribe(filters, qos) for c in clients}
    loop.until(lambda: all(m in c.subacks for c, m in mids.items()), timeout)
    return {c: c.subacks.get(m) for c, m in mids.items()}


# ---------------------------------------------------------------------------------------------
# checking streams

def seq_payload(pub, seq, pad=0):
    p = ("%s:%d" % (pub, seq)).encode()
    if pad > len(p):
        p += b"." * (pad - len(p))
    return p


def parse_seq(payload):
    """'pub:seq...' -> (pub, seq) or (None, None)."""
    try:
        head = payload.split(b".", 1)[0].decode()
        pub, seq = head.rsplit(":", 1)
        return pub, int(seq)
    except Exception:
        return None, None


def stream_diff(got, want):
    """None when got == want, else a short description (missing, duplicates, order)."""
    if got == want:
        return None
    gs, ws = list(got), list(want)
    parts = []
    counts = {}
    for g in gs:
        counts[g] = counts.get(g, 0) + 1
    wset = set(ws)
    missing = [w for w in ws if w not in counts]
    dups = [g for g, n in counts.items() if n > 1]
    extra = [g for g in counts if g not in wset]
    if missing:
        parts.append("%d missing (first %r)" % (len(missing), missing[0]))
    if dups:
        parts.append("%d duplicated (first %r)" % (len(dups), dups[0]))
    if extra:
        parts.append("%d unexpected (first %r)" % (len(extra), extra[0]))
    if not parts:
        for i, (g, w) in enumerate(zip(gs, ws)):
            if g != w:
                parts.append("out of order at %d: got %r want %r" % (i, g, w))
                break
    return "; ".join(parts) + " (got %d, want %d)" % (len(gs), len(ws))


def lanes(items):
    """Groups (topic, payload, qos) items into ordered lanes keyed by (publisher, topic, qos).

    Mosquitto keeps order per publisher only within a lane: a QoS 0 message goes out at once
    while QoS 1 ones wait for the in-flight window (max_inflight_messages 20), and a QoS 2
    message is released at its PUBREL, so across QoS levels it reorders one publisher's
    messages; the MQTT spec promises order per topic and QoS only."""
    out = {}
    for topic, payload, qos in items:
        out.setdefault((parse_seq(payload)[0], topic, qos), []).append(payload)
    return out


def lane_diff(got, want):
    """None when every lane of got equals that of want (both lists of (topic, payload, qos))."""
    g, w = lanes(got), lanes(want)
    if g == w:
        return None
    parts = []
    for k in sorted(set(g) | set(w), key=str):
        d = stream_diff(g.get(k, []), w.get(k, []))
        if d:
            parts.append("%s %s q%s: %s" % (k[0], k[1], k[2], d))
    return "; ".join(parts[:3])


def got_items(cl):
    return [(m.topic, m.payload, m.qos) for m in cl.msgs]


def check_subscribers(rep, name, subs, want_of):
    """Every subscriber's payload list equals want_of(sub). One check line for all of them."""
    bad = []
    for s in subs:
        d = stream_diff(s.payloads(), want_of(s))
        if d:
            bad.append("%s: %s" % (s.cid, d))
    rep.ok(name, not bad, "%d/%d subscribers wrong; %s" % (len(bad), len(subs), "; ".join(bad[:3])))
    return not bad


def check_no_disconnect(rep, name, clients):
    bad = ["%s rc=%s" % (c.cid, c.disconnects[0][1]) for c in clients if c.disconnects]
    rep.ok(name, not bad, "unexpected disconnects: %s" % ", ".join(bad[:5]))


# ---------------------------------------------------------------------------------------------
# the broker's own counters ($SYS), read straight from the broker

class SysWatch:
    """Follows two of the broker's counters, read straight from the broker:

    P = $SYS/broker/publish/messages/received. Mosquitto 2.0.11 counts a packet here when
        (command & 0xF5) == PUBLISH, i.e. only QoS 0/1 PUBLISHes without RETAIN: retained and
        QoS 2 PUBLISHes are not counted (the mask keeps the QoS-2 and RETAIN bits).
    M = $SYS/broker/messages/received: every packet of any type (PUBLISH, PUBACK, PUBREL,
        PINGREQ, ...), so exact only while the test knows every packet sent to the broker
        (the lab's clients use keep-alive 60 s and this watcher 0: no PINGREQ in a test).

    Mosquitto publishes them retained (60 s expiry), only when changed, every sys_interval
    seconds (the lab uses 1; the broker then updates every 2 s). .../publish/messages/sent is useless here: it
    counts the $SYS messages sent to this watcher too and never settles."""

    P = "$SYS/broker/publish/messages/received"
    M = "$SYS/broker/messages/received"

    def __init__(self, loop, broker=BROKER, port=PORT):
        self.cl = Client(loop, broker, "sys-watch-%d" % id(self), 4, port=port, keepalive=0)
        self.values = {}
        self.changed = time.monotonic()
        orig = self.cl._on_message

        def on_msg(c, u, m):
            orig(c, u, m)
            try:
                self.values[m.topic] = int(m.payload)
                self.changed = time.monotonic()
            except ValueError:
                pass
        self.cl.c.on_message = on_msg
        self.loop = loop

    def start(self, timeout=10):
        self.cl.connect()
        if not self.loop.until(self.cl.connected, timeout):
            raise RuntimeError("$SYS watcher: no CONNACK from the broker")
        if not subscribe_all(self.loop, [self.cl], [self.P, self.M], 0, timeout)[self.cl]:
            raise RuntimeError("$SYS watcher: no SUBACK from the broker")
        # Mosquitto 2.0 publishes $SYS values retained but with a 60 s message expiry, and only
        # when they change: a counter that did not move for a minute (or is still 0) has no
        # retained value. One PUBLISH of our own moves both; the next update brings them.
        self.cl.publish("mqoff-lab/sys-watch", b"nudge", 0)
        if not self.loop.until(lambda: self.P in self.values and self.M in self.values, timeout):
            raise RuntimeError("$SYS watcher: no value for the counters")
        return self

    def settle(self, quiet=3.1, timeout=30):
        """Waits until no counter changed for `quiet` seconds (longer than the broker's update
        period), returns (P, M)."""
        end = time.monotonic() + timeout
        self.changed = time.monotonic()
        while time.monotonic() < end:
            self.loop.step(0.02)
            if time.monotonic() - self.changed >= quiet:
                break
        return self.values[self.P], self.values[self.M]


# ---------------------------------------------------------------------------------------------
# raw MQTT: packets built by hand

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def packet(b0, body):
    return bytes([b0]) + varint(len(body)) + body


def props(raw=b""):
    return varint(len(raw)) + raw


def connect_pkt(cid, proto=4, keepalive=60, clean=True, username=None, password=None, v5props=b""):
    flags = 0x02 if clean else 0
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    if proto == 3:
        vh = mstr("MQIsdp") + bytes([3, flags]) + struct.pack("!H", keepalive)
    else:
        vh = mstr("MQTT") + bytes([proto, flags]) + struct.pack("!H", keepalive)
    if proto == 5:
        vh += props(v5props)
    pl = mstr(cid)
    if username is not None:
        pl += mstr(username)
    if password is not None:
        pl += mstr(password)
    return packet(0x10, vh + pl)


def publish_pkt(topic, payload, qos=0, pid=None, retain=False, dup=False, proto=4, v5props=b""):
    b0 = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = mstr(topic)
    if qos:
        body += struct.pack("!H", pid)
    if proto == 5:
        body += props(v5props)
    return packet(b0, body + payload)


def subscribe_pkt(pid, filters, proto=4):
    body = struct.pack("!H", pid)
    if proto == 5:
        body += props()
    for f, q in filters:
        body += mstr(f) + bytes([q])
    return packet(0x82, body)


def puback_pkt(pid):
    return packet(0x40, struct.pack("!H", pid))


def pingreq_pkt():
    return b"\xc0\x00"


class RawConn:
    """A TCP connection speaking hand-built MQTT. read_packet() returns (b0, body) or None."""

    def __init__(self, host, port=PORT, timeout=10):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.s.sendall(data)

    def send_bytewise(self, data, gap=0.003):
        """One write per byte; with TCP_NODELAY each byte leaves in its own segment."""
        for i in range(len(data)):
            self.s.sendall(data[i:i + 1])
            time.sleep(gap)

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(b):
                return None
            n += (b[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not b[i - 1] & 0x80:
                break
        if len(b) < i + n:
            return None
        pkt = (b[0], b[i:i + n])
        self.buf = b[i + n:]
        return pkt

    def read_packet(self, timeout=5):
        end = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p is not None:
                return p
            left = end - time.monotonic()
            if left <= 0 or self.closed:
                return None
            r, _, _ = select.select([self.s], [], [], left)
            if not r:
                return None
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, OSError):
                d = b""
            if not d:
                self.closed = True
                return self._parse()
            self.buf += d

    def connect(self, cid, proto=4, keepalive=60, **kw):
        """Sends CONNECT and waits for the CONNACK; returns its return/reason code."""
        self.send(connect_pkt(cid, proto, keepalive, **kw))
        p = self.read_packet(10)
        if p is None or p[0] >> 4 != 2:
            raise RuntimeError("no CONNACK (got %r)" % (p,))
        return p[1][1]

    def wait_closed(self, timeout=5):
        """True when the peer closes the connection within timeout (pending input ignored)."""
        end = time.monotonic() + timeout
        while not self.closed and time.monotonic() < end:
            r, _, _ = select.select([self.s], [], [], max(0.0, end - time.monotonic()))
            if r:
                try:
                    d = self.s.recv(65536)
                except (ConnectionResetError, OSError):
                    d = b""
                if not d:
                    self.closed = True
                else:
                    self.buf += d
        return self.closed

    def probe_closed(self, timeout=5):
        """After wait_closed gave up: has the kernel send TCP keep-alive probes (no bytes of
        the stream, so nothing the peer's application sees) and waits for the close again. An
        endpoint that dropped the connection answers a probe with a reset (its first one may
        have been lost, and no TCP sends a reset again); one that still has it acknowledges
        the probe, and the connection stays open."""
        if self.closed:
            return True
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 60)
        return self.wait_closed(timeout)

    def close(self):
        try:
            self.s.close()
        except Exception:
            pass


def publish_fields(b0, body, proto=4):
    """(topic, qos, pid, retain, payload) of a PUBLISH."""
    qos = (b0 >> 1) & 3
    tl = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tl].decode()
    i = 2 + tl
    pid = None
    if qos:
        pid = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    if proto == 5:
        n, mult = 0, 1
        while True:
            b = body[i]
            i += 1
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        i += n
    return topic, qos, pid, bool(b0 & 1), body[i:]


def v5_publish_props(alias=None):
    """paho Properties for a PUBLISH with a topic alias."""
    p = Properties(PacketTypes.PUBLISH)
    if alias is not None:
        p.TopicAlias = alias
    return p
