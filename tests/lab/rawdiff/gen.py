#!/usr/bin/python3
"""The differential corpus: byte-sequence cases for one broker, generated deterministically.

A case is a script of steps over one or more raw TCP clients (each step: open a connection,
send bytes, answer the last delivery, close, ...), each step followed by a wait. The runner
(run.py) plays it against one target and records, per client, the packets received and how
the connection ended; compare.py compares those records between targets.

Every case has its own id (a hash of its name): its client ids and topics contain it, so
cases run concurrently without seeing each other. Names are stable: known_diffs.txt refers
to them.

Groups: "core" needs a broker with the lab's default config, and so does "persist31" (the
cases of the same families with an MQTT 3.1 persistent CONNECT, played on an mqoff of their
own: see Case.blinds); every other group needs the broker config that test_rawdiff.sh gives
it (message_size_limit, max_packet_size, a mount_point, a bridge, a password file, an
acl_file, the dynamic-security plugin).

Usage: gen.py [--group G] [--list | --count | --show NAME]
"""

import argparse
import hashlib
import re
import struct
import sys

import mqttb as M
from mqttb import PINGREQ_PKT, b, packet, prop, props, varint

PROTOS = (3, 4, 5)
GROUPS = ("core", "persist31", "msgsize", "maxpacket", "mount", "bridge", "auth", "acl", "dynsec")

# Waits after a step (see run.py): "pkt" (a packet on this client, or its close), ("pkt", n)
# or ("pkt", n, client), "quiet" (nothing on any connection of the case for a while, or this
# client closed), "close" (this client's connection closed), None (go on at once).


class Case:
    """One case: clients and a script of steps. Built with the helpers below."""

    def __init__(self, name, group="core", root="rd", final=1.0):
        self.name, self.group, self.root, self.final = name, group, root, final
        self.id = hashlib.sha1(name.encode()).hexdigest()[:8]
        self.clients = {}   # letter -> {"proto", "port", "autoack"}
        self.steps = []     # dicts: c, op, data, wait
        # An MQTT 3.1 persistent CONNECT: its CONNACK cannot say whether the broker holds a
        # session, so mqoff must assume one it cannot see and stops offloading for as long as
        # that client id stays unresumed. Such cases play on an mqoff of their own (group
        # persist31), so that the others exercise the offload.
        self.blinds = False
        # A CONNECT or SUBSCRIBE out of the ordinary (odd flags, properties, filters, raw
        # bytes): an offload may not follow it and then offloads nothing while the connection
        # lives. run.py plays such cases after the others (see waves() there).
        self.odd = False

    # names --------------------------------------------------------------------------------
    def cid(self, c):
        """The client id of client c (10 characters: fits MQTT 3.1's 23)."""
        return "r%s%s" % (self.id, c)

    def topic(self, sub="t"):
        return "%s/%s/%s" % (self.root, self.id, sub) if sub else "%s/%s" % (self.root, self.id)

    # clients and steps -------------------------------------------------------------------
    def client(self, c, proto=4, port="main", autoack=True):
        self.clients[c] = {"proto": proto, "port": port, "autoack": autoack}
        return c

    def step(self, c, op, data=None, wait=None):
        self.steps.append({"c": c, "op": op, "data": data, "wait": wait})

    def open(self, c):
        self.step(c, "open")

    def send(self, c, data, wait="quiet", plain=False):
        """Client c writes data. A CONNECT or SUBSCRIBE written here rather than by the
        connect()/subscribe() helpers makes the case odd."""
        data = bytes(data)
        if not plain and data and data[0] >> 4 in (M.CONNECT, M.SUBSCRIBE):
            self.odd = True
        self.step(c, "send", data, wait)

    def sendparts(self, c, parts, wait="quiet"):
        """Several writes, back to back (the last one followed by wait)."""
        for i, p in enumerate(parts):
            self.send(c, p, wait if i == len(parts) - 1 else None)

    def connect(self, c, wait="pkt", **kw):
        """Opens client c and sends its CONNECT (protocol of the client unless given)."""
        kw.setdefault("proto", self.clients[c]["proto"])
        flags = kw.get("flags")
        clean = kw.get("clean", True) if flags is None else bool(flags & 0x02)
        if not clean and (kw.get("name") or ("MQIsdp" if kw["proto"] == 3 else "MQTT")) == "MQIsdp":
            self.blinds = True
        cid = kw.pop("cid", self.cid(c))
        will = kw.get("will")
        if (any(k in kw for k in ("name", "level", "flags", "extra", "b0"))
                or not re.fullmatch(r"r[0-9a-f]{8}[a-z]", cid if isinstance(cid, str) else "")
                or not props_ok(kw.get("v5props", b""), "connect")
                or will is not None and (not filter_ok(will[0], topic=True) or will[2] > 2
                                         or not props_ok(will[4] if len(will) > 4 else b"", "will"))):
            self.odd = True
        self.open(c)
        self.send(c, M.connect(cid, **kw), wait, plain=True)

    def subscribe(self, c, filters, pid=1, wait="pkt", **kw):
        kw.setdefault("proto", self.clients[c]["proto"])
        v5 = kw["proto"] == 5
        if ("b0" in kw or not pid or not filters or not props_ok(kw.get("v5props", b""), "subscribe")
                or not all(filter_ok(f) and options_ok(o, v5, f) for f, o in filters)):
            self.odd = True
        self.send(c, M.subscribe(pid, filters, **kw), wait, plain=True)

    def publish(self, c, topic, payload, qos=0, wait=None, **kw):
        kw.setdefault("proto", self.clients[c]["proto"])
        if wait is None:
            wait = "pkt" if qos else "quiet"
        self.send(c, M.publish(topic, payload, qos, **kw), wait)

    def ping(self, c):
        """PINGREQ: shows whether the connection is still open and in step with the broker."""
        self.send(c, PINGREQ_PKT, "pkt")

    def reply(self, c, b0, tail=b"", of="publish", wait="quiet"):
        """Sends b0 + length + the packet identifier of the last PUBLISH (of="publish") or
        PUBREL (of="pubrel") client c received + tail: an answer to whatever identifier the
        target chose."""
        self.step(c, "reply", (b0, bytes(tail), of), wait)

    def ackall(self, c, wait="quiet"):
        """Client c acknowledges everything it received so far, and from now on at once."""
        self.step(c, "ackall", None, wait)

    def close(self, c, wait="close"):
        """Client c closes its side (FIN) and keeps reading until the peer closes."""
        self.step(c, "close", None, wait)

    def abort(self, c, wait="quiet"):
        """Client c resets its connection (RST)."""
        self.step(c, "abort", None, wait)

    def mark(self, c):
        """Puts a marker in client c's received list: what came before it arrived before this
        step (use after a quiet wait)."""
        self.step(c, "mark")

    def settle(self):
        """Waits until nothing moved on any connection of the case for the quiet time."""
        self.step(None, "settle", None, "quiet")

    def sleep(self, secs):
        self.step(None, "sleep", secs)

    def observer(self, proto, c="o", qos=2, sub="#", autoack=True):
        """A client connected first and subscribed to the case's topics, recording deliveries."""
        self.client(c, proto, autoack=autoack)
        self.connect(c)
        self.subscribe(c, [(self.topic(sub), qos)])
        return c

    def spec(self):
        """The case as plain data (what run.py plays)."""
        return {"name": self.name, "group": self.group, "id": self.id, "final": self.final,
                "clients": self.clients, "steps": self.steps}


def filter_ok(f, topic=False):
    """f is a plain topic filter (topic: a topic name): UTF-8 text without NUL, wildcards
    only as whole levels ('#' last), a $share with a group and a filter, not very long."""
    if not isinstance(f, str) or not f or "\0" in f or len(f) > 1000 or f.count("/") > 200:
        return False
    if topic:
        return "+" not in f and "#" not in f and not f.startswith("$")
    if f.startswith("$share/"):
        parts = f.split("/", 2)
        return (len(parts) == 3 and parts[1] != "" and "+" not in parts[1]
                and "#" not in parts[1] and filter_ok(parts[2]))
    levels = f.split("/")
    return all(("#" not in v or (v == "#" and i == len(levels) - 1)) and ("+" not in v or v == "+")
               for i, v in enumerate(levels))


def options_ok(o, v5, f):
    """Subscription options o are valid (v5: no reserved bits, retain handling < 3, no
    no-local on a shared subscription)."""
    if not v5:
        return o in (0, 1, 2)
    return (o & 3) != 3 and not o & 0xC0 and (o >> 4) & 3 != 3 and not (
        o & 0x04 and f.startswith("$share/"))


def props_ok(raw, kind):
    """raw (property bytes) holds only properties valid in a packet of that kind, none
    repeated but user properties, no value out of range."""
    if isinstance(raw, tuple):
        return False
    try:
        lst, _ = M.read_props(props(raw), 0)
    except (ValueError, IndexError, struct.error):
        return False
    ids = [k for k, _ in lst]
    if 0x16 in ids and 0x15 not in ids:     # authentication data without a method
        return False
    bad_values = {0x21: (0,), 0x27: (0,), 0x17: range(2, 256), 0x19: range(2, 256), 0x0B: (0,)}
    return (all(k in VALID_IN[kind] for k in ids)
            and all(ids.count(k) == 1 for k in ids if k != 0x26)
            and not any(v in bad_values.get(k, ()) for k, v in lst))


def vname(p):
    return "v%d" % p


def case_for(out, name, group="core", **kw):
    c = Case(name, group, **kw)
    out.append(c)
    return c


# =============================================================================================
# CONNECT

PROTO_NAMES = [("MQTT", "MQTT"), ("MQIsdp", "MQIsdp"), ("mqtt", "mqtt"), ("MQTT5", "MQTT5"),
               ("empty", ""), ("MQTs", "MQTs"), ("MQIsdP", "MQIsdP"), ("MQ0T", b"MQ\x00T")]
LEVELS = [0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x83, 0x84, 0x85, 0xFF]


def fam_connect_proto(out):
    """Every protocol name against every level byte, incl. MQIsdp 3, level 0 and the bridge
    levels 0x83/0x84 (accepted and marked as bridges)."""
    for nlabel, name in PROTO_NAMES:
        for lvl in LEVELS:
            shape = 5 if lvl & 0x7F == 5 else 4
            c = case_for(out, "connect/proto/%s-%02x" % (nlabel, lvl))
            c.client("a", shape)
            c.connect("a", name=name, level=lvl, wait="quiet")
            c.ping("a")


def fam_connect_flags(out):
    """Connect flags: clean x will (none, QoS 0-3, retain, flag-less QoS/retain) x username/
    password combinations, and the reserved bit. An observer watches the will topic; the
    client resets its connection at the end (a will, if any, is published)."""
    wills = [("nowill", None, 0), ("will-q0", (0, False), 0), ("will-q1", (1, False), 0),
             ("will-q2", (2, False), 0), ("will-q3", (3, False), 0), ("will-q0r", (0, True), 0),
             ("nowill-qos1", None, 0x08), ("nowill-retain", None, 0x20)]
    auths = [("anon", None, None), ("user", "u", None), ("userpass", "u", "p"), ("pass", None, "p")]
    for p in PROTOS:
        variants = [(cl, w, a) for cl in (1, 0) for w in wills for a in auths]
        variants += [(1, ("reserved", None, 0x01), auths[0]), (0, ("reserved", None, 0x01), auths[0])]
        for clean, (wl, w, extra), (al, user, pw) in variants:
            c = case_for(out, "connect/flags/c%d-%s-%s/%s" % (clean, wl, al, vname(p)))
            c.observer(p)
            c.client("a", p)
            flags = (0x02 if clean else 0) | extra
            will = None
            if w is not None:
                flags |= 0x04 | (w[0] << 3) | (0x20 if w[1] else 0)
                will = (c.topic("will"), b"gone", min(w[0], 2), w[1])
            if user is not None:
                flags |= 0x80
            if pw is not None:
                flags |= 0x40
            c.connect("a", clean=bool(clean), will=will, user=user, password=pw, flags=flags,
                      wait="quiet")
            c.ping("a")
            c.abort("a")


def fam_connect_clientid(out):
    for p in PROTOS:
        def add(label, cid_fn, clean=True):
            c = case_for(out, "connect/clientid/%s/%s" % (label, vname(p)))
            c.client("a", p)
            c.connect("a", cid=cid_fn(c), clean=clean, wait="quiet")
            c.ping("a")
        add("empty-clean", lambda c: "")
        add("empty-persistent", lambda c: "", clean=False)
        add("len23", lambda c: c.cid("a").ljust(23, "x"))
        add("len24", lambda c: c.cid("a").ljust(24, "x"))
        add("len200", lambda c: c.cid("a").ljust(200, "x"))
        add("len65535", lambda c: c.cid("a").ljust(65535, "x"))
        add("utf8-ff", lambda c: b(c.cid("a")) + b"\xff")
        add("utf8-overlong-nul", lambda c: b(c.cid("a")) + b"\xc0\x80")
        add("utf8-surrogate", lambda c: b(c.cid("a")) + b"\xed\xa0\x80")
        add("nul", lambda c: b(c.cid("a")) + b"\x00")
        add("control-01", lambda c: b(c.cid("a")) + b"\x01")
        add("del-7f", lambda c: b(c.cid("a")) + b"\x7f")
        add("noncharacter-ffff", lambda c: b(c.cid("a")) + b"\xef\xbf\xbf")
        add("slash-plus-hash", lambda c: c.cid("a") + "/+#")
        add("unicode", lambda c: c.cid("a") + "\u00e9\u4e2d")


def fam_connect_keepalive(out):
    for p in PROTOS:
        for ka in (0, 65535):
            c = case_for(out, "connect/keepalive/%d/%s" % (ka, vname(p)))
            c.client("a", p)
            c.connect("a", keepalive=ka)
            c.ping("a")
        # The broker closes a silent client after 1.5 keep-alive periods, but Mosquitto 2.0
        # looks for such clients only every 6 s (keepalive.c: last_keepalive_check + 5 <
        # now, in whole seconds): the close comes 2 to 9 s after the ping, at a moment that
        # depends on when the broker started. A shorter final silence made the result depend
        # on that phase (direct and a target could differ by luck).
        c = case_for(out, "connect/keepalive/1-silent/%s" % vname(p), final=10.0)
        c.client("a", p)
        c.connect("a", keepalive=1)
        c.ping("a")


def full_connect(c, p):
    """A CONNECT with a will and a username (v5: with properties too)."""
    v5 = prop(0x11, 0) + prop(0x21, 20) if p == 5 else b""
    return M.connect(c.cid("a"), proto=p, will=(c.topic("w"), b"wp", 1, False), user="un",
                     v5props=v5)


def fam_connect_length(out):
    """A CONNECT whose remaining length says k, for every k below its real length (fields run
    past the end of the packet), one and five bytes more (surplus data), and a CONNECT cut
    short on the wire (the rest never comes)."""
    for p in PROTOS:
        proto_c = Case("x", "core")
        whole = full_connect(proto_c, p)
        _, _, off = M.header(whole)
        n = len(whole) - off
        for k in range(n):
            c = case_for(out, "connect/length/short-%02d/%s" % (k, vname(p)))
            c.client("a", p)
            body = full_connect(c, p)[off:]
            c.open("a")
            c.send("a", packet(0x10, body[:k]))
            c.ping("a")
        for extra in (1, 5):
            c = case_for(out, "connect/length/surplus-%d/%s" % (extra, vname(p)))
            c.client("a", p)
            body = full_connect(c, p)[off:]
            c.open("a")
            c.send("a", packet(0x10, body + b"\x00" * extra))
            c.ping("a")
        for cut in (1, 2, n // 2):
            c = case_for(out, "connect/length/truncated-%d/%s" % (cut, vname(p)))
            c.client("a", p)
            c.open("a")
            c.send("a", full_connect(c, p)[:off + cut])


# v5 properties that are valid in a packet type (client to server).
VALID_IN = {
    "connect": {0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27},
    "will": {0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26},
    "publish": {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26},
    "ack": {0x1F, 0x26},
    "subscribe": {0x0B, 0x26},
    "unsubscribe": {0x26},
    "disconnect": {0x11, 0x1C, 0x1F, 0x26},
    "auth": {0x15, 0x16, 0x1F, 0x26},
}


def fam_connect_props(out):
    """v5 CONNECT properties: each property, each valid one twice, values at and past the
    edges, unknown identifiers, broken property lengths, extended authentication."""
    def add(label, v5props, final=1.0):
        c = case_for(out, "connect/props/%s/v5" % label, final=final)
        c.client("a", 5)
        c.connect("a", v5props=v5props, wait="quiet")
        c.ping("a")
    for pid in sorted(M.PROPS):
        add("%02x-%s" % (pid, M.PROPS[pid][0]), M.sample_prop(pid))
    for pid in sorted(VALID_IN["connect"]):
        add("dup-%02x-%s" % (pid, M.PROPS[pid][0]), M.sample_prop(pid) + M.sample_prop(pid))
    edges = [("session-expiry-0", 0x11, 0), ("session-expiry-max", 0x11, 0xFFFFFFFF),
             ("receive-maximum-0", 0x21, 0), ("receive-maximum-1", 0x21, 1),
             ("receive-maximum-65535", 0x21, 65535), ("max-packet-size-0", 0x27, 0),
             ("max-packet-size-1", 0x27, 1), ("max-packet-size-4", 0x27, 4),
             ("max-packet-size-max", 0x27, 0xFFFFFFFF), ("topic-alias-max-0", 0x22, 0),
             ("topic-alias-max-65535", 0x22, 65535), ("problem-info-0", 0x17, 0),
             ("problem-info-2", 0x17, 2), ("response-info-1", 0x19, 1),
             ("response-info-2", 0x19, 2)]
    for label, pid, v in edges:
        add(label, prop(pid, v))
    add("auth-method-unknown", prop(0x15, "SCRAM-SHA-1"))
    add("auth-data-only", prop(0x16, b"xx"))
    add("user-property-empty", prop(0x26, ("", "")))
    add("user-property-bad-utf8", prop(0x26, (b"k\xff", "v")))
    add("user-property-many", b"".join(prop(0x26, ("k%d" % i, "v")) for i in range(50)))
    for raw in (b"\x00\x00", b"\x04\x00", b"\x7f\x00", b"\xff\x01\x00", b"\x91\x00\x00\x00\x00\x0a"):
        add("unknown-id-%s" % raw.hex(), raw)
    add("proplen-past-end", ("block", varint(50) + prop(0x11, 10)))
    add("proplen-short", ("block", varint(3) + prop(0x11, 10)))
    add("proplen-5byte-varint", ("block", b"\x80\x80\x80\x80\x00"))
    add("proplen-nonminimal", ("block", b"\x85\x00" + prop(0x11, 10)))


def fam_will(out):
    """Will messages: odd will topics and payloads, QoS and retain, how the connection ends
    (reset, close without DISCONNECT, DISCONNECT, v5 DISCONNECT 0x04, a protocol error), and
    v5 will properties."""
    for p in PROTOS:
        def add(label, will_fn, end="abort", final=1.0, extra_sub=False):
            c = case_for(out, "will/%s/%s" % (label, vname(p)), final=final)
            c.observer(p)
            c.client("a", p)
            c.connect("a", will=will_fn(c), wait="quiet")
            c.ping("a")
            if end == "abort":
                c.abort("a")
            elif end == "close":
                c.close("a")
            elif end == "disconnect":
                c.send("a", M.disconnect())
            elif end == "disconnect-04":
                c.send("a", M.disconnect(0x04))
            elif end == "protocol-error":
                c.send("a", b"\x00\x00")
            if extra_sub:
                c.client("l", p)
                c.connect("l")
                c.subscribe("l", [(c.topic("#"), 1)])
        add("q0-abort", lambda c: (c.topic("w"), b"gone", 0, False))
        add("q1-abort", lambda c: (c.topic("w"), b"gone", 1, False))
        add("q2-abort", lambda c: (c.topic("w"), b"gone", 2, False))
        add("q1-close", lambda c: (c.topic("w"), b"gone", 1, False), end="close")
        add("q1-disconnect", lambda c: (c.topic("w"), b"gone", 1, False), end="disconnect")
        add("q1-protocol-error", lambda c: (c.topic("w"), b"gone", 1, False), end="protocol-error")
        add("retain-then-subscribe", lambda c: (c.topic("w"), b"kept", 1, True), extra_sub=True)
        add("empty-payload", lambda c: (c.topic("w"), b"", 0, False))
        add("payload-1000", lambda c: (c.topic("w"), b"w" * 1000, 0, False))
        add("topic-empty", lambda c: ("", b"gone", 0, False))
        add("topic-plus", lambda c: (c.topic("+"), b"gone", 0, False))
        add("topic-hash", lambda c: (c.topic("#"), b"gone", 0, False))
        add("topic-bad-utf8", lambda c: (b(c.topic("w")) + b"\xff", b"gone", 0, False))
        add("topic-sys", lambda c: ("$SYS/" + c.topic("w"), b"gone", 0, False))
        if p == 5:
            add("disconnect-04", lambda c: (c.topic("w"), b"gone", 1, False), end="disconnect-04")
            for pid in sorted(M.PROPS):
                add("props/%02x-%s" % (pid, M.PROPS[pid][0]),
                    lambda c, pid=pid: (c.topic("w"), b"gone", 0, False, M.sample_prop(pid)))
            add("props/payload-format-1-bad-utf8",
                lambda c: (c.topic("w"), b"\xff\xfe", 0, False, prop(0x01, 1)))
            add("props/payload-format-2", lambda c: (c.topic("w"), b"x", 0, False, prop(0x01, 2)))
            add("props/response-topic-wildcard",
                lambda c: (c.topic("w"), b"x", 0, False, prop(0x08, c.topic("+"))))
            add("props/will-delay-1", lambda c: (c.topic("w"), b"late", 0, False, prop(0x18, 1)),
                final=3.0)
            add("props/dup-will-delay", lambda c: (c.topic("w"), b"x", 0, False,
                                                   prop(0x18, 0) + prop(0x18, 0)))


# =============================================================================================
# every packet type, every flag bit

def typical_body(t, c, p):
    """A plausible body for packet type t from an connected client of protocol p."""
    pid = b"\x00\x07"
    v5 = p == 5
    if t == M.CONNECT:
        return M.connect(c.cid("a"), proto=p)[2:]
    if t == M.CONNACK:
        return b"\x00\x00" + (b"\x00" if v5 else b"")
    if t in (M.PUBACK, M.PUBREC, M.PUBREL, M.PUBCOMP, M.UNSUBACK):
        return pid
    if t == M.SUBSCRIBE:
        return M.subscribe(7, [(c.topic("s"), 1)], proto=p)[2:]
    if t == M.SUBACK:
        return pid + (b"\x00" if v5 else b"") + b"\x01"
    if t == M.UNSUBSCRIBE:
        return M.unsubscribe(7, [c.topic("s")], proto=p)[2:]
    if t == M.AUTH:
        return b"\x00\x00" if v5 else b""
    return b""


def fam_types(out):
    """Every packet type except PUBLISH after a successful CONNECT, with its flags nibble as
    required and with each flag bit flipped, server-only types included (CONNACK, SUBACK,
    UNSUBACK, PINGRESP), and every type as the first packet instead of CONNECT."""
    for p in PROTOS:
        for t in range(16):
            if t == M.PUBLISH:
                continue
            good = M.VALID_FLAGS.get(t, 0)
            for flip in (0, 1, 2, 4, 8):
                fl = good ^ flip
                c = case_for(out, "types/%s-%x/%s" % (M.TYPE_NAMES[t].lower(), fl, vname(p)))
                c.client("a", p)
                c.connect("a")
                c.send("a", packet((t << 4) | fl, typical_body(t, c, p)))
                c.ping("a")
    for p in (4, 5):
        for t in range(16):
            c = case_for(out, "types/first-%s/%s" % (M.TYPE_NAMES[t].lower(), vname(p)))
            c.client("a", p)
            c.open("a")
            if t == M.PUBLISH:
                c.send("a", M.publish(c.topic(), b"x", proto=p))
            else:
                c.send("a", packet((t << 4) | M.VALID_FLAGS.get(t, 0), typical_body(t, c, p)))
            c.ping("a")


# =============================================================================================
# PUBLISH

def pub_case(out, name, p, final=1.0, obs_qos=2):
    c = case_for(out, name, final=final)
    c.observer(p, qos=obs_qos)
    c.client("a", p)
    c.connect("a")
    return c


def fam_publish_header(out):
    """QoS 0-3 x retain x DUP, each completed (QoS 2: PUBREL) and observed."""
    for p in PROTOS:
        for q in range(4):
            for r in (0, 1):
                for d in (0, 1):
                    c = pub_case(out, "publish/header/q%d%s%s/%s" % (q, "-retain" if r else "",
                                                                     "-dup" if d else "", vname(p)), p)
                    c.send("a", M.publish(c.topic(), b"hello", q & 3, pid=1, retain=bool(r),
                                          dup=bool(d), proto=p, b0=0x30 | q << 1 | r | d << 3),
                           "pkt" if q in (1, 2) else "quiet")
                    if q == 2:
                        c.send("a", M.ack(M.PUBREL, 1), "pkt")
                    c.ping("a")


def fam_publish_topic(out):
    """Topic names: empty, wildcards, NUL, invalid UTF-8, $-topics, empty levels, long and
    deep, at QoS 0 and 1."""
    topics = [
        ("empty", lambda c: ""),
        ("plus", lambda c: c.topic("+")),
        ("hash", lambda c: c.topic("#")),
        ("plus-in-level", lambda c: c.topic("a+b")),
        ("hash-in-level", lambda c: c.topic("a#")),
        ("bare-plus", lambda c: "+"),
        ("bare-hash", lambda c: "#"),
        ("nul", lambda c: b(c.topic("a")) + b"\x00b"),
        ("utf8-ff", lambda c: b(c.topic("a")) + b"\xff"),
        ("utf8-overlong", lambda c: b(c.topic("a")) + b"\xc0\xaf"),
        ("utf8-surrogate", lambda c: b(c.topic("a")) + b"\xed\xb0\x80"),
        ("utf8-truncated", lambda c: b(c.topic("a")) + b"\xe4\xb8"),
        ("control-01", lambda c: b(c.topic("a")) + b"\x01"),
        ("noncharacter-fffe", lambda c: b(c.topic("a")) + b"\xef\xbf\xbe"),
        ("unicode", lambda c: c.topic("\u00e9/\u4e2d/\U0001f600")),
        ("trailing-slash", lambda c: c.topic("")  + "/"),
        ("empty-level", lambda c: c.topic("a//b")),
        ("leading-slash", lambda c: "/" + c.topic("a")),
        ("dollar-sys", lambda c: "$SYS/" + c.topic("a")),
        ("dollar-other", lambda c: "$" + c.topic("a")),
        ("long-65535", lambda c: c.topic("").ljust(65535, "x")),
        ("long-65000", lambda c: c.topic("").ljust(65000, "x")),
        ("deep-200", lambda c: c.topic("/".join(["l"] * 200))),
        ("deep-32000", lambda c: c.topic("/" * 32000)),
        ("deep-65000", lambda c: c.topic("").ljust(65000, "/")),
        ("levels-65535", lambda c: "/" * 65534),
    ]
    for p in PROTOS:
        for label, fn in topics:
            for q in (0, 1):
                c = pub_case(out, "publish/topic/%s-q%d/%s" % (label, q, vname(p)), p)
                c.publish("a", fn(c), b"payload", q, pid=1, wait="quiet")
                c.ping("a")


def long_rl(pkt, n):
    """pkt (with a one-byte remaining length) with its length written on n bytes."""
    return pkt[:1] + bytes([pkt[1] | 0x80] + [0x80] * (n - 2) + [0]) + pkt[2:]


def fam_publish_misc(out):
    """Packet identifier 0, payload sizes around the length-encoding boundaries, non-minimal
    and over-long remaining lengths, a topic length past the end."""
    for p in PROTOS:
        def add(label, fn, final=1.0):
            c = pub_case(out, "publish/misc/%s/%s" % (label, vname(p)), p, final=final)
            fn(c)
            c.ping("a")
        for q in (1, 2):
            add("pid0-q%d" % q, lambda c, q=q: c.publish("a", c.topic(), b"x", q, pid=0, wait="quiet"))
        for n in (0, 1, 100, 110, 16370, 16400, 100000, 1000000):
            for q in (0, 1):
                add("payload-%d-q%d" % (n, q),
                    lambda c, n=n, q=q: c.publish("a", c.topic(), b"p" * n, q, wait="quiet"))
        add("rl-nonminimal-2", lambda c: c.send("a", long_rl(M.publish(c.topic(), b"x", proto=p), 2)))
        add("rl-nonminimal-4", lambda c: c.send("a", long_rl(M.publish(c.topic(), b"x", proto=p), 4)))
        add("rl-5-bytes", lambda c: c.send("a", long_rl(M.publish(c.topic(), b"x", proto=p), 5)))
        add("topic-len-past-end", lambda c: c.send("a", b"\x30\x05\x00\x20abc"))
        add("topic-len-ffff", lambda c: c.send("a", b"\x30\x04\xff\xffab"))
        add("q1-no-pid", lambda c: c.send("a", packet(0x32, M.bstr(c.topic()))))
        add("q1-half-pid", lambda c: c.send("a", packet(0x32, M.bstr(c.topic()) + b"\x00")))
        if p == 5:
            add("no-props", lambda c: c.send("a", packet(0x30, M.bstr(c.topic()))))
        add("pipelined-3", lambda c: c.send("a", b"".join(
            M.publish(c.topic(), b"m%d" % i, i % 2, pid=i + 1, proto=p) for i in range(3)), "quiet"))
        add("pipelined-30-q1", lambda c: c.send("a", b"".join(
            M.publish(c.topic(), b"m%d" % i, 1, pid=i + 1, proto=p) for i in range(30)), ("pkt", 30)))
        add("same-pid-twice-q1", lambda c: (
            c.publish("a", c.topic(), b"one", 1, pid=5),
            c.publish("a", c.topic(), b"two", 1, pid=5, dup=True)))
        add("then-malformed", lambda c: c.send(
            "a", M.publish(c.topic(), b"ok", proto=p) + b"\x30\x02\xff\xff"))


def fam_publish_props(out):
    """v5 PUBLISH properties: each property at QoS 1 (and QoS 0), each valid one twice,
    values at the edges: payload format indicator, message expiry, topic aliases up to and
    past the broker's maximum (10), response topic, correlation data, broken blocks."""
    def add(label, fn, q=1, final=1.0):
        c = pub_case(out, "publish/props/%s-q%d/v5" % (label, q), 5, final=final)
        fn(c, q)
        c.ping("a")

    def pp(v5props, payload=b"hello", topic=None):
        return lambda c, q: c.publish("a", c.topic() if topic is None else topic(c), payload, q,
                                      v5props=v5props, wait="quiet")
    for q in (0, 1):
        for pid in sorted(M.PROPS):
            add("%02x-%s" % (pid, M.PROPS[pid][0]), pp(M.sample_prop(pid)), q)
        for pid in sorted(VALID_IN["publish"]):
            add("dup-%02x-%s" % (pid, M.PROPS[pid][0]), pp(M.sample_prop(pid) * 2), q)
        for v in (0, 1, 2, 0xED, 0xFF):
            add("payload-format-%02x-utf8" % v, pp(prop(0x01, v), "h\u00e9llo".encode()), q)
            add("payload-format-%02x-binary" % v, pp(prop(0x01, v), b"\xff\xfe\x00"), q)
        for v in (0, 1, 0xFFFFFFFF):
            add("message-expiry-%d" % v, pp(prop(0x02, v)), q)
        for v in (0, 1, 10, 11, 65535):
            add("topic-alias-%d" % v, pp(prop(0x23, v)), q)
        add("topic-alias-unknown-empty-topic", pp(prop(0x23, 1), topic=lambda c: ""), q)
        add("topic-alias-set-then-use", lambda c, q: (
            c.publish("a", c.topic(), b"one", q, v5props=prop(0x23, 1), wait="quiet"),
            c.publish("a", "", b"two", q, pid=2, v5props=prop(0x23, 1), wait="quiet")), q)
        add("topic-alias-remap", lambda c, q: (
            c.publish("a", c.topic("x"), b"one", q, v5props=prop(0x23, 2), wait="quiet"),
            c.publish("a", c.topic("y"), b"two", q, pid=2, v5props=prop(0x23, 2), wait="quiet"),
            c.publish("a", "", b"three", q, pid=3, v5props=prop(0x23, 2), wait="quiet")), q)
        add("sub-id-0", pp(prop(0x0B, 0)), q)
        add("response-topic-wildcard", lambda c, q: c.publish(
            "a", c.topic(), b"x", q, v5props=prop(0x08, c.topic("+")), wait="quiet"), q)
        add("response-topic-empty", pp(prop(0x08, "")), q)
        add("response-topic-bad-utf8", pp(prop(0x08, b"a\xff")), q)
        add("correlation-empty", pp(prop(0x09, b"")), q)
        add("correlation-1000", pp(prop(0x09, b"c" * 1000)), q)
        add("content-type-bad-utf8", pp(prop(0x03, b"t\xff")), q)
        add("user-property-bad-utf8", pp(prop(0x26, ("k", b"v\xff"))), q)
        add("user-property-many", pp(b"".join(prop(0x26, ("k%d" % i, "v%d" % i)) for i in range(40))), q)
        add("all-valid", pp(prop(0x01, 1) + prop(0x02, 60) + prop(0x03, "ct") + prop(0x08, "rd/r")
                            + prop(0x09, b"cd") + prop(0x26, ("a", "b")) + prop(0x26, ("a", "c")),
                            "utf8 \u00e9".encode()), q)
        for raw in (b"\x00\x00", b"\x7f\x00", b"\x81\x01\x00"):
            add("unknown-id-%s" % raw.hex(), pp(raw), q)
        add("proplen-past-end", pp(("block", varint(40) + prop(0x01, 0))), q)
        add("proplen-short", pp(("block", varint(2) + prop(0x02, 10))), q)


def fam_qos_flows(out):
    """The publisher side of QoS 1 and 2: retransmissions, PUBREL for unknown identifiers or
    with bad flags, acknowledgements for nothing, more QoS 2 messages in flight than the
    broker's Receive Maximum (20)."""
    for p in PROTOS:
        def add(label, fn, final=1.0):
            c = pub_case(out, "qos/%s/%s" % (label, vname(p)), p, final=final)
            fn(c)
            c.ping("a")
        add("q2-full", lambda c: (c.publish("a", c.topic(), b"x", 2), c.send("a", M.ack(6, 1), "pkt")))
        add("q2-retransmit-before-pubrel", lambda c: (
            c.publish("a", c.topic(), b"x", 2), c.publish("a", c.topic(), b"x", 2, dup=True),
            c.send("a", M.ack(6, 1), "pkt")))
        add("q2-pubrel-twice", lambda c: (
            c.publish("a", c.topic(), b"x", 2), c.send("a", M.ack(6, 1), "pkt"),
            c.send("a", M.ack(6, 1), "pkt")))
        add("pubrel-unknown", lambda c: c.send("a", M.ack(6, 9), "pkt"))
        add("pubrel-flags-0", lambda c: (c.publish("a", c.topic(), b"x", 2),
                                         c.send("a", M.ack(6, 1, b0=0x60))))
        add("pubrel-flags-3", lambda c: (c.publish("a", c.topic(), b"x", 2),
                                         c.send("a", M.ack(6, 1, b0=0x63))))
        add("puback-unknown", lambda c: c.send("a", M.ack(4, 9)))
        add("pubrec-unknown", lambda c: c.send("a", M.ack(5, 9)))
        add("pubcomp-unknown", lambda c: c.send("a", M.ack(7, 9)))
        add("ack-rl-3", lambda c: c.send("a", b"\x40\x03\x00\x09\x00"))
        add("ack-rl-1", lambda c: c.send("a", b"\x40\x01\x00"))
        add("q2-21-in-flight", lambda c: c.send("a", b"".join(
            M.publish(c.topic(), b"m%d" % i, 2, pid=i + 1, proto=p) for i in range(21)), ("pkt", 21)))
        add("q1-q2-same-pid", lambda c: (c.publish("a", c.topic(), b"a", 2, pid=3),
                                         c.publish("a", c.topic(), b"b", 1, pid=3)))
        if p == 5:
            add("pubrel-rc-92", lambda c: (c.publish("a", c.topic(), b"x", 2),
                                           c.send("a", M.ack(6, 1, rc=0x92), "pkt")))
            add("pubrel-props", lambda c: (
                c.publish("a", c.topic(), b"x", 2),
                c.send("a", M.ack(6, 1, rc=0, v5props=prop(0x1F, "r")), "pkt")))
            add("pubrel-rc-bad", lambda c: (c.publish("a", c.topic(), b"x", 2),
                                            c.send("a", M.ack(6, 1, rc=0x55))))


def publish_to_sub(c, q, payload=b"m1"):
    """Client a publishes at QoS q (completing QoS 2 with PUBREL: the broker delivers a QoS 2
    message when it is released) and the step waits for the delivery to client s."""
    if q == 2:
        c.publish("a", c.topic(), payload, 2)
        c.send("a", M.ack(M.PUBREL, 1), ("pkt", 1, "s"))
    else:
        c.publish("a", c.topic(), payload, q, wait=("pkt", 1, "s"))


def ack_case(out, name, p, q, sub_qos=2):
    """Client s (acknowledging nothing by itself) subscribed at sub_qos; client a has just
    published at QoS q and s holds the delivery."""
    c = case_for(out, name)
    c.client("s", p, autoack=False)
    c.connect("s")
    c.subscribe("s", [(c.topic("#"), sub_qos)])
    c.client("a", p)
    c.connect("a")
    publish_to_sub(c, q)
    return c


def fam_sub_acks(out):
    """The subscriber side: how a subscriber answers a QoS 1 or QoS 2 delivery (the right
    acknowledgement, the wrong kind, twice, a wrong identifier, nothing, v5 reason codes)."""
    answers = [("puback", [(0x40, b"")]), ("pubrec", [(0x50, b"")]), ("pubcomp", [(0x70, b"")]),
               ("pubrel", [(0x62, b"")]), ("puback-twice", [(0x40, b""), (0x40, b"")]),
               ("pubrec-pubcomp", [(0x50, b""), (0x70, b"")]), ("none", [])]
    for p in PROTOS:
        for q in (1, 2):
            for label, seq in answers:
                c = ack_case(out, "subacks/q%d-%s/%s" % (q, label, vname(p)), p, q)
                for b0, tail in seq:
                    c.reply("s", b0, tail)
                c.publish("a", c.topic(), b"m2", q, pid=2, wait="quiet")
                if q == 2:
                    c.send("a", M.ack(M.PUBREL, 2))
                c.ping("s")
            c = ack_case(out, "subacks/q%d-wrong-id/%s" % (q, vname(p)), p, q)
            c.send("s", M.ack(4 if q == 1 else 5, 999))
            c.ping("s")
        if p == 5:
            tails = [("rc-%02x" % rc, bytes([rc])) for rc in (0x10, 0x80, 0x83, 0x87, 0x55)]
            tails += [("reason-string", b"\x00" + props(prop(0x1F, "r"))),
                      ("user-property", b"\x00" + props(prop(0x26, ("a", "b")))),
                      ("bad-prop", b"\x00" + props(prop(0x01, 1))),
                      ("proplen-past-end", b"\x00\x09")]
            for label, tail in tails:
                c = ack_case(out, "subacks/q1-puback-%s/v5" % label, 5, 1, sub_qos=1)
                c.reply("s", 0x40, tail)
                c.ping("s")


# =============================================================================================
# SUBSCRIBE / UNSUBSCRIBE

def sub_case(out, name, p, final=1.0):
    """Client s subscribes (the case's bytes), then client a publishes QoS 0 and 1."""
    c = case_for(out, name, final=final)
    c.client("s", p)
    c.connect("s")
    return c


def sub_then_publish(c, p, topics=("t",)):
    c.ping("s")
    c.client("a", p)
    c.connect("a")
    for i, t in enumerate(topics):
        c.publish("a", c.topic(t), b"q0-%d" % i, 0)
        c.publish("a", c.topic(t), b"q1-%d" % i, 1, pid=i + 1)


def fam_subscribe(out):
    """SUBSCRIBE: reserved flags, identifier 0, no filters, QoS 3, option bits, filter syntax
    ($share, wildcards in the wrong places, invalid UTF-8, long and deep), several filters with
    one bad, the same filter twice; a publisher then shows what each subscription delivers."""
    for p in PROTOS:
        def add(label, fn, topics=("t",)):
            c = sub_case(out, "subscribe/%s/%s" % (label, vname(p)), p)
            fn(c)
            sub_then_publish(c, p, topics)
        for b0 in (0x80, 0x81, 0x83, 0x8A):
            add("flags-%x" % (b0 & 15), lambda c, b0=b0: c.send(
                "s", M.subscribe(1, [(c.topic("#"), 1)], proto=p, b0=b0)))
        add("pid0", lambda c: c.subscribe("s", [(c.topic("#"), 1)], pid=0, wait="quiet"))
        add("no-filters", lambda c: c.subscribe("s", [], wait="quiet"))
        for o in range(4):
            add("qos%d" % o, lambda c, o=o: c.subscribe("s", [(c.topic("#"), o)], wait="quiet"))
        for o in (0x04, 0x08, 0x10, 0x20, 0x30, 0x40, 0x80, 0x0C):
            add("options-%02x" % o,
                lambda c, o=o: c.subscribe("s", [(c.topic("#"), o | 1)], wait="quiet"))
        filters = [
            ("exact", lambda c: c.topic("t")), ("plus", lambda c: c.topic("+")),
            ("plus-mid", lambda c: c.topic("+/x")), ("hash-mid", lambda c: c.topic("#/x")),
            ("hash-in-level", lambda c: c.topic("a#")), ("plus-in-level", lambda c: c.topic("a+")),
            ("empty", lambda c: ""), ("utf8-ff", lambda c: b(c.topic("a")) + b"\xff"),
            ("nul", lambda c: b(c.topic("a")) + b"\x00"),
            ("share", lambda c: "$share/g/" + c.topic("#")),
            ("share-no-topic", lambda c: "$share/g"), ("share-empty-topic", lambda c: "$share/g/"),
            ("share-empty-group", lambda c: "$share//" + c.topic("#")),
            ("share-wild-group", lambda c: "$share/g+/" + c.topic("#")),
            ("dollar-sys", lambda c: "$SYS/" + c.topic("#")),
            ("long-65000", lambda c: c.topic("").ljust(65000, "x")),
            ("deep-2000", lambda c: c.topic("/".join(["+"] * 2000))),
            ("deep-32000", lambda c: c.topic("").ljust(32000, "/")),
        ]
        for label, fn in filters:
            add("filter-%s" % label, lambda c, fn=fn: c.subscribe("s", [(fn(c), 1)], wait="quiet"),
                topics=("t", "x/y"))
        add("three-one-bad", lambda c: c.subscribe("s", [(c.topic("t"), 0), (c.topic("#/x"), 1),
                                                         (c.topic("x/#"), 2)], wait="quiet"),
            topics=("t", "x/y"))
        add("same-filter-twice", lambda c: c.subscribe("s", [(c.topic("t"), 0), (c.topic("t"), 1)],
                                                       wait="quiet"))
        add("resubscribe-lower", lambda c: (c.subscribe("s", [(c.topic("t"), 2)]),
                                            c.subscribe("s", [(c.topic("t"), 0)], pid=2)))
        add("overlap", lambda c: c.subscribe("s", [(c.topic("#"), 1), (c.topic("t"), 0)]))
        add("twenty-filters", lambda c: c.subscribe(
            "s", [(c.topic("f%d" % i), i % 3) for i in range(20)]), topics=("f1", "f2"))
        head = b"\x00\x01" + (b"\x00" if p == 5 else b"")    # packet id 1 (and no properties)
        add("truncated-filter", lambda c: c.send("s", packet(0x82, head + b"\x00\x10abc")))
        add("missing-options", lambda c: c.send("s", packet(0x82, head + M.bstr(c.topic("#")))))
        if p == 5:
            for pid in sorted(M.PROPS):
                add("props/%02x-%s" % (pid, M.PROPS[pid][0]),
                    lambda c, pid=pid: c.subscribe("s", [(c.topic("#"), 1)], v5props=M.sample_prop(pid),
                                                   wait="quiet"))
            for v in (0, 1, 268435455):
                add("props/sub-id-%d" % v, lambda c, v=v: c.subscribe(
                    "s", [(c.topic("#"), 1)], v5props=prop(0x0B, v), wait="quiet"))
            add("props/sub-id-5-byte", lambda c: c.subscribe(
                "s", [(c.topic("#"), 1)], v5props=b"\x0b\x80\x80\x80\x80\x01", wait="quiet"))
            add("props/sub-id-twice", lambda c: c.subscribe(
                "s", [(c.topic("#"), 1)], v5props=prop(0x0B, 1) + prop(0x0B, 2), wait="quiet"))
            add("props/sub-id-two-subs", lambda c: (
                c.subscribe("s", [(c.topic("#"), 1)], v5props=prop(0x0B, 1)),
                c.subscribe("s", [(c.topic("t"), 1)], pid=2, v5props=prop(0x0B, 2))))
            add("props/user-property-twice", lambda c: c.subscribe(
                "s", [(c.topic("#"), 1)], v5props=prop(0x26, ("a", "1")) + prop(0x26, ("a", "2"))))
            add("props/unknown-id", lambda c: c.subscribe("s", [(c.topic("#"), 1)],
                                                          v5props=b"\x7f\x00", wait="quiet"))
            add("props/proplen-past-end", lambda c: c.subscribe(
                "s", [(c.topic("#"), 1)], v5props=("block", b"\x20"), wait="quiet"))
            add("nolocal-share", lambda c: c.subscribe("s", [("$share/g/" + c.topic("#"), 0x05)],
                                                       wait="quiet"))


def fam_sub_options(out):
    """v5 subscription options that change deliveries: retain handling 0-2 on a first and a
    repeated subscription, retain-as-published, no-local (also the QoS 1 PUBACK when the
    publisher's own no-local subscription is the only match), overlapping subscriptions with
    identifiers; and v3 retained and overlap behaviour."""
    for p in PROTOS:
        for rh in ((0, 1, 2) if p == 5 else (0,)):
            for rap in ((0, 1) if p == 5 else (0,)):
                c = case_for(out, "suboptions/retained-rh%d-rap%d/%s" % (rh, rap, vname(p)))
                c.client("a", p)
                c.connect("a")
                c.publish("a", c.topic(), b"kept", 1, retain=True)
                c.client("s", p)
                c.connect("s")
                opts = 1 | rh << 4 | rap << 3
                c.subscribe("s", [(c.topic("#"), opts)], wait="quiet")
                c.subscribe("s", [(c.topic("#"), opts)], pid=2, wait="quiet")
                c.publish("a", c.topic(), b"live", 1, retain=True, pid=2)
                c.publish("a", c.topic(), b"", 0, retain=True)
        c = case_for(out, "suboptions/retained-q2/%s" % vname(p))
        c.client("a", p)
        c.connect("a")
        c.publish("a", c.topic(), b"kept2", 2, retain=True)
        c.send("a", M.ack(6, 1), "pkt")
        c.client("s", p)
        c.connect("s")
        c.subscribe("s", [(c.topic("#"), 2)], wait=("pkt", 2))
        c = case_for(out, "suboptions/overlap/%s" % vname(p))
        c.client("s", p)
        c.connect("s")
        c.subscribe("s", [(c.topic("#"), 1), (c.topic("t"), 2), (c.topic("+"), 0)])
        c.client("a", p)
        c.connect("a")
        c.publish("a", c.topic(), b"o0", 0)
        c.publish("a", c.topic(), b"o1", 1)
        c.publish("a", c.topic(), b"o2", 2)
        c.send("a", M.ack(6, 1), "pkt")
    for q in (0, 1, 2):
        c = case_for(out, "suboptions/nolocal-only-match-q%d/v5" % q)
        c.observer(5, sub="other")
        c.client("a", 5)
        c.connect("a")
        c.subscribe("a", [(c.topic("#"), 0x04 | 2)])
        c.publish("a", c.topic(), b"self", q)
        if q == 2:
            c.send("a", M.ack(6, 1), "pkt")
        c.ping("a")
    for q in (0, 1):
        c = case_for(out, "suboptions/nolocal-with-other-q%d/v5" % q)
        c.observer(5)
        c.client("a", 5)
        c.connect("a")
        c.subscribe("a", [(c.topic("#"), 0x04 | 1)])
        c.publish("a", c.topic(), b"self", q)
        c.ping("a")
        c = case_for(out, "suboptions/no-nolocal-self-q%d/v5" % q)
        c.client("a", 5)
        c.connect("a")
        c.subscribe("a", [(c.topic("#"), 1)])
        c.publish("a", c.topic(), b"self", q, wait="quiet")
    for ids in ((1,), (1, 2), (5, 268435455)):
        c = case_for(out, "suboptions/sub-ids-%s/v5" % "-".join(map(str, ids)))
        c.client("s", 5)
        c.connect("s")
        filters = [c.topic("#"), c.topic("t")]
        for i, sid in enumerate(ids):
            c.subscribe("s", [(filters[i], 1)], pid=i + 1, v5props=prop(0x0B, sid))
        c.client("a", 5)
        c.connect("a")
        c.publish("a", c.topic(), b"x0", 0)
        c.publish("a", c.topic(), b"x1", 1)


def fam_unsubscribe(out):
    for p in PROTOS:
        def add(label, fn):
            c = sub_case(out, "unsubscribe/%s/%s" % (label, vname(p)), p)
            c.subscribe("s", [(c.topic("#"), 1)])
            fn(c)
            sub_then_publish(c, p)
        for b0 in (0xA0, 0xA1, 0xA3, 0xAA):
            add("flags-%x" % (b0 & 15), lambda c, b0=b0: c.send(
                "s", M.unsubscribe(2, [c.topic("#")], proto=p, b0=b0)))
        add("subscribed", lambda c: c.send("s", M.unsubscribe(2, [c.topic("#")], proto=p), "pkt"))
        add("not-subscribed", lambda c: c.send("s", M.unsubscribe(2, [c.topic("x")], proto=p), "pkt"))
        add("pid0", lambda c: c.send("s", M.unsubscribe(0, [c.topic("#")], proto=p)))
        add("no-filters", lambda c: c.send("s", M.unsubscribe(2, [], proto=p)))
        add("empty-filter", lambda c: c.send("s", M.unsubscribe(2, [""], proto=p)))
        add("bad-filter", lambda c: c.send("s", M.unsubscribe(2, [c.topic("#/x")], proto=p)))
        add("utf8-ff", lambda c: c.send("s", M.unsubscribe(2, [b(c.topic("#")) + b"\xff"], proto=p)))
        add("two-one-unknown", lambda c: c.send("s", M.unsubscribe(2, [c.topic("x"), c.topic("#")],
                                                                  proto=p), "pkt"))
        add("truncated", lambda c: c.send("s", packet(0xA2, b"\x00\x02" + (b"\x00" if p == 5 else b"")
                                                       + b"\x00\x09ab")))
        if p == 5:
            for pid in sorted(M.PROPS):
                add("props/%02x-%s" % (pid, M.PROPS[pid][0]), lambda c, pid=pid: c.send(
                    "s", M.unsubscribe(2, [c.topic("#")], proto=5, v5props=M.sample_prop(pid))))


# =============================================================================================
# PINGREQ, DISCONNECT, AUTH, a second CONNECT, sessions

def fam_control(out):
    for p in PROTOS:
        def add(label, fn, final=1.0, ping=True):
            c = case_for(out, "control/%s/%s" % (label, vname(p)), final=final)
            c.observer(p)
            c.client("a", p)
            c.connect("a", will=(c.topic("will"), b"w", 0, False))
            fn(c)
            if ping:
                c.ping("a")
        add("pingreq-rl1", lambda c: c.send("a", b"\xc0\x01\x00"))
        add("pingreq-rl-nonminimal", lambda c: c.send("a", b"\xc0\x80\x00"))
        add("pingreq-pipelined-5", lambda c: c.send("a", PINGREQ_PKT * 5, ("pkt", 5)))
        add("disconnect", lambda c: c.send("a", M.disconnect()))
        add("disconnect-rl1", lambda c: c.send("a", b"\xe0\x01\x00"))
        add("disconnect-rl2", lambda c: c.send("a", b"\xe0\x02\x00\x00"))
        add("disconnect-flags", lambda c: c.send("a", b"\xe1\x00"))
        add("second-connect-same", lambda c: c.send("a", M.connect(c.cid("a"), proto=p)))
        add("second-connect-other-id", lambda c: c.send("a", M.connect(c.cid("b"), proto=p)))
        add("second-connect-other-version",
            lambda c: c.send("a", M.connect(c.cid("a"), proto=4 if p == 5 else 5)))
        add("auth", lambda c: c.send("a", M.auth(0x18 if p == 5 else None, b"" if p == 5 else None)))
        add("reserved-type-0", lambda c: c.send("a", b"\x00\x00"))
        add("reserved-type-0-body", lambda c: c.send("a", b"\x00\x02ab"))
        add("rl-5-bytes-pingreq", lambda c: c.send("a", b"\xc0\x80\x80\x80\x80\x00"))
        add("rl-huge-then-silence", lambda c: c.send("a", b"\x30\xff\xff\xff\x7f\x00"), ping=False)
        if p == 5:
            for rc in (0x00, 0x04, 0x80, 0x81, 0x8E, 0x95, 0x9C, 0x55, 0xFF):
                add("disconnect-rc-%02x" % rc, lambda c, rc=rc: c.send("a", M.disconnect(rc)))
            for pid in sorted(M.PROPS):
                add("disconnect-props/%02x-%s" % (pid, M.PROPS[pid][0]), lambda c, pid=pid: c.send(
                    "a", M.disconnect(0, M.sample_prop(pid))))
            add("disconnect-proplen-past-end", lambda c: c.send("a", b"\xe0\x02\x00\x05"))
            for rc in (0x00, 0x18, 0x19, 0x01):
                add("auth-rc-%02x" % rc, lambda c, rc=rc: c.send("a", M.auth(rc, prop(0x15, "PLAIN"))))
            add("auth-empty", lambda c: c.send("a", b"\xf0\x00"))
            add("auth-flags", lambda c: c.send("a", b"\xf1\x00"))
    # session expiry: 0 in CONNECT and > 0 in DISCONNECT is a protocol error, the other way
    # round is fine
    for ce, de in ((0, 30), (30, 0), (30, 60)):
        c = case_for(out, "control/session-expiry-%d-to-%d/v5" % (ce, de))
        c.client("a", 5)
        c.connect("a", v5props=prop(0x11, ce))
        c.send("a", M.disconnect(0, prop(0x11, de)))
        c.client("b", 5)
        c.connect("b", cid=c.cid("a"), clean=False)


def fam_takeover(out):
    """Two connections with one client id: the first is thrown out (v5: DISCONNECT 0x8E); a
    persistent session passes to the second with its subscription and queued messages."""
    for p in PROTOS:
        for clean in (True, False):
            c = case_for(out, "takeover/%s/%s" % ("clean" if clean else "persistent", vname(p)))
            c.client("a", p)
            c.connect("a", clean=clean, v5props=prop(0x11, 0 if clean else 60) if p == 5 else b"")
            c.subscribe("a", [(c.topic("#"), 1)])
            c.client("b", p)
            c.connect("b", cid=c.cid("a"), clean=clean, wait="quiet",
                      v5props=prop(0x11, 0 if clean else 60) if p == 5 else b"")
            c.client("p", p)
            c.connect("p")
            c.publish("p", c.topic(), b"after", 1)
            c.ping("b")
        c = case_for(out, "takeover/other-version/%s" % vname(p))
        c.client("a", p)
        c.connect("a")
        q = 5 if p != 5 else 4
        c.client("b", q)
        c.connect("b", cid=c.cid("a"), wait="quiet")
        c.ping("b")


def fam_sessions(out):
    """A persistent subscriber goes away, messages are published meanwhile, it comes back."""
    for p in PROTOS:
        for q in (0, 1, 2):
            c = case_for(out, "session/queued-q%d/%s" % (q, vname(p)))
            c.client("s", p)
            v5 = prop(0x11, 60) if p == 5 else b""
            c.connect("s", clean=False, v5props=v5)
            c.subscribe("s", [(c.topic("#"), 2)])
            c.send("s", M.disconnect(), "close")
            c.client("a", p)
            c.connect("a")
            c.publish("a", c.topic(), b"while-away", q)
            if q == 2:
                c.send("a", M.ack(6, 1), "pkt")
            c.client("r", p)
            c.connect("r", cid=c.cid("s"), clean=False, v5props=v5, wait="quiet")
            c.publish("a", c.topic(), b"back", q, pid=2)
            c.ping("r")
        c = case_for(out, "session/clean-resume/%s" % vname(p))
        c.client("s", p)
        c.connect("s", clean=False, v5props=prop(0x11, 60) if p == 5 else b"")
        c.subscribe("s", [(c.topic("#"), 1)])
        c.send("s", M.disconnect(), "close")
        c.client("r", p)
        c.connect("r", cid=c.cid("s"), clean=True)
        c.client("a", p)
        c.connect("a")
        c.publish("a", c.topic(), b"x", 1)
        c.ping("r")


# =============================================================================================
# v5 flow control, topic aliases, packet size; bridges; framing

def fam_flow(out):
    """Receive Maximum: a subscriber that allows r messages in flight and acknowledges
    nothing until told, six QoS 1 or QoS 2 messages; then it acknowledges everything."""
    for rm in (1, 2, 3, 5):
        for q in (1, 2):
            c = case_for(out, "flow/receive-max-%d-q%d/v5" % (rm, q))
            c.client("s", 5, autoack=False)
            c.connect("s", v5props=prop(0x21, rm))
            c.subscribe("s", [(c.topic("#"), 2)])
            c.client("a", 5)
            c.connect("a")
            for i in range(6):
                c.publish("a", c.topic(), b"m%d" % i, q, pid=i + 1)
                if q == 2:
                    c.send("a", M.ack(6, i + 1), "pkt")
            c.settle()
            c.mark("s")
            c.ackall("s")
            c.ping("s")
    for p in (3, 4):
        for q in (1, 2):
            c = case_for(out, "flow/inflight-25-q%d/%s" % (q, vname(p)))
            c.client("s", p, autoack=False)
            c.connect("s")
            c.subscribe("s", [(c.topic("#"), 2)])
            c.client("a", p)
            c.connect("a")
            c.send("a", b"".join(M.publish(c.topic(), b"m%d" % i, q, pid=i + 1, proto=p)
                                 for i in range(25)), ("pkt", 25))
            c.settle()
            c.mark("s")
            c.ackall("s")
            c.ping("s")
    for mps in (20, 40, 100):
        c = case_for(out, "flow/max-packet-size-%d/v5" % mps)
        c.client("s", 5)
        c.connect("s", v5props=prop(0x27, mps))
        c.subscribe("s", [(c.topic("#"), 1)])
        c.client("a", 5)
        c.connect("a")
        for n in (1, 30, 80):
            c.publish("a", c.topic(), b"p" * n, 0)
            c.publish("a", c.topic(), b"p" * n, 1)
        c.ping("s")
    c = case_for(out, "flow/topic-alias-max-client/v5")
    c.client("s", 5)
    c.connect("s", v5props=prop(0x22, 5))
    c.subscribe("s", [(c.topic("#"), 1)])
    c.client("a", 5)
    c.connect("a")
    for i in range(3):
        c.publish("a", c.topic(), b"a%d" % i, i % 2)


def fam_bridge_level(out):
    """Clients with the bridge protocol levels 0x83 (MQIsdp) and 0x84 (MQTT): the broker does
    not send them their own messages back."""
    for lvl, shape, name in ((0x83, 3, "MQIsdp"), (0x84, 4, "MQTT")):
        for q in (0, 1):
            c = case_for(out, "bridgelevel/%02x-q%d" % (lvl, q))
            c.observer(4)
            c.client("a", shape)
            c.connect("a", name=name, level=lvl)
            c.subscribe("a", [(c.topic("#"), 1)])
            c.publish("a", c.topic(), b"from-bridge", q)
            c.ping("a")


def fam_framing(out):
    """The same packets cut differently on the wire: a byte at a time, split in two, several
    in one write (CONNECT, SUBSCRIBE and PUBLISH together), a valid packet followed by a
    broken one in the same write."""
    for p in PROTOS:
        def add(label, fn):
            c = case_for(out, "framing/%s/%s" % (label, vname(p)))
            c.observer(p)
            c.client("a", p)
            fn(c)
            c.ping("a")
        add("connect-bytewise", lambda c: (c.open("a"), c.sendparts(
            "a", [bytes([x]) for x in M.connect(c.cid("a"), proto=p)], "pkt")))
        add("publish-bytewise", lambda c: (c.connect("a"), c.sendparts(
            "a", [bytes([x]) for x in M.publish(c.topic(), b"bytes", 1, proto=p)], "pkt")))
        for cut in (1, 2, 5):
            add("publish-split-%d" % cut, lambda c, cut=cut: (c.connect("a"), c.sendparts(
                "a", [M.publish(c.topic(), b"split", 1, proto=p)[:cut],
                      M.publish(c.topic(), b"split", 1, proto=p)[cut:]], "pkt")))
        add("connect-subscribe-publish", lambda c: (c.open("a"), c.send(
            "a", M.connect(c.cid("a"), proto=p) + M.subscribe(1, [(c.topic("#"), 1)], proto=p)
            + M.publish(c.topic(), b"all-in-one", 1, proto=p), ("pkt", 4))))
        add("connect-publish-malformed", lambda c: (c.open("a"), c.send(
            "a", M.connect(c.cid("a"), proto=p) + M.publish(c.topic(), b"ok", proto=p)
            + b"\x32\x01\x00")))
        add("publish-then-connect", lambda c: (c.connect("a"), c.send(
            "a", M.publish(c.topic(), b"1", 1, proto=p) + M.connect(c.cid("a"), proto=p))))
        add("connect-rl-nonminimal", lambda c: (c.open("a"), c.send(
            "a", long_rl(M.connect(c.cid("a"), proto=p), 2), "quiet")))
        add("subscribe-bytewise", lambda c: (c.connect("a"), c.sendparts(
            "a", [bytes([x]) for x in M.subscribe(1, [(c.topic("x"), 1)], proto=p)], "pkt")))


def fam_cross_order(out):
    """Packets from two connections written back to back (no wait between them): the broker
    takes them in the order they arrive, so a subscription made just before another client's
    PUBLISH gets it, an unsubscription just before does not."""
    for p in (4, 5):
        for q in (0, 1):
            c = case_for(out, "order/subscribe-then-publish-q%d/%s" % (q, vname(p)))
            c.client("s", p)
            c.connect("s")
            c.client("a", p)
            c.connect("a")
            c.subscribe("s", [(c.topic("#"), 1)], wait=None)
            c.publish("a", c.topic(), b"just-after", q, wait="quiet")
            c = case_for(out, "order/unsubscribe-then-publish-q%d/%s" % (q, vname(p)))
            c.client("s", p)
            c.connect("s")
            c.subscribe("s", [(c.topic("#"), 1)])
            c.client("a", p)
            c.connect("a")
            c.send("s", M.unsubscribe(2, [c.topic("#")], proto=p), None)
            c.publish("a", c.topic(), b"just-after", q, wait="quiet")
            c = case_for(out, "order/publish-then-subscribe-q%d/%s" % (q, vname(p)))
            c.client("s", p)
            c.connect("s")
            c.client("a", p)
            c.connect("a")
            c.publish("a", c.topic(), b"just-before", q, wait=None)
            c.subscribe("s", [(c.topic("#"), 1)], wait="quiet")
            c = case_for(out, "order/two-publishers-q%d/%s" % (q, vname(p)))
            c.observer(p)
            c.client("a", p)
            c.connect("a")
            c.client("b", p)
            c.connect("b")
            for i in range(5):
                c.publish("a", c.topic(), b"a%d" % i, q, pid=i + 1, wait=None)
                c.publish("b", c.topic(), b"b%d" % i, q, pid=i + 1, wait=None)
            c.settle()


FAMILIES = [fam_connect_proto, fam_connect_flags, fam_connect_clientid, fam_connect_keepalive,
            fam_connect_length, fam_connect_props, fam_will, fam_types, fam_publish_header,
            fam_publish_topic, fam_publish_misc, fam_publish_props, fam_qos_flows, fam_sub_acks,
            fam_subscribe, fam_sub_options, fam_unsubscribe, fam_control, fam_takeover,
            fam_sessions, fam_flow, fam_bridge_level, fam_framing, fam_cross_order]


# =============================================================================================
# broker-config groups (see test_rawdiff.sh for the config each one runs with)

def group_msgsize(out):
    """message_size_limit 100: payloads up to 100 bytes pass, larger ones are refused."""
    for p in (4, 5):
        for n in (99, 100, 101, 1000):
            for q in (0, 1, 2):
                c = case_for(out, "msgsize/publish-%d-q%d/%s" % (n, q, vname(p)), "msgsize")
                c.observer(p)
                c.client("a", p)
                c.connect("a")
                c.publish("a", c.topic(), b"m" * n, q)
                if q == 2:
                    c.send("a", M.ack(6, 1), "pkt")
                c.ping("a")
        for n in (100, 101):
            c = case_for(out, "msgsize/will-%d/%s" % (n, vname(p)), "msgsize")
            c.observer(p)
            c.client("a", p)
            c.connect("a", will=(c.topic("w"), b"w" * n, 1, False), wait="quiet")
            c.abort("a")


def group_maxpacket(out):
    """max_packet_size 200: larger packets from a client end its connection (v5: DISCONNECT
    0x95); v5 CONNACKs announce the limit."""
    for p in (4, 5):
        for total in (199, 200, 201, 202, 203, 204, 1000):
            for q in (0, 1):
                c = case_for(out, "maxpacket/publish-%d-q%d/%s" % (total, q, vname(p)), "maxpacket")
                c.observer(p)
                c.client("a", p)
                c.connect("a")
                head = len(M.publish(c.topic(), b"", q, proto=p))
                n = total - head
                n -= len(M.publish(c.topic(), b"x" * n, q, proto=p)) - total
                c.publish("a", c.topic(), b"x" * n, q)
                c.ping("a")
        c = case_for(out, "maxpacket/subscribe-big/%s" % vname(p), "maxpacket")
        c.client("a", p)
        c.connect("a")
        c.subscribe("a", [(c.topic("f%03d" % i), 0) for i in range(20)], wait="quiet")
        c.ping("a")
        c = case_for(out, "maxpacket/connect-big/%s" % vname(p), "maxpacket")
        c.client("a", p)
        c.connect("a", user="u" * 300, wait="quiet")
        c.ping("a")


def group_mount(out):
    """The listener mqoff fronts has mount_point mp/ (and it is the broker's only listener:
    mqoff runs with --exclusive). The broker puts the prefix before every topic and filter of
    its clients and, in Mosquitto 2.0.11, does not take it off on delivery: subscribers see
    mp/rd/...; the offload must deliver exactly that."""
    for p in (4, 5):
        for q in (0, 1):
            c = case_for(out, "mount/pubsub-q%d/%s" % (q, vname(p)), "mount")
            c.observer(p)
            c.client("s", p)
            c.connect("s")
            c.subscribe("s", [(c.topic("t"), 1), (c.topic("+/x"), 0)])
            c.client("a", p)
            c.connect("a")
            c.publish("a", c.topic(), b"mounted", q)
            c.publish("a", c.topic("y/x"), b"mounted-deeper", q, pid=2)
            c.ping("a")
            c = case_for(out, "mount/prefix-in-topic-q%d/%s" % (q, vname(p)), "mount")
            c.observer(p)
            c.client("a", p)
            c.connect("a")
            c.publish("a", "mp/" + c.topic(), b"doubled", q)
            c.ping("a")
        c = case_for(out, "mount/retained/%s" % vname(p), "mount")
        c.client("a", p)
        c.connect("a")
        c.publish("a", c.topic(), b"kept", 1, retain=True)
        c.client("s", p)
        c.connect("s")
        c.subscribe("s", [(c.topic("#"), 1)], wait=("pkt", 2))
        c = case_for(out, "mount/will/%s" % vname(p), "mount")
        c.observer(p)
        c.client("a", p)
        c.connect("a", will=(c.topic("w"), b"gone", 1, False))
        c.abort("a")


def group_bridge(out):
    """A bridge from the broker to a second one (remote port): `topic rd/# both 1`. Messages
    on bridged topics reach the remote broker's subscribers and come back from its
    publishers; topics outside rd/ stay local."""
    for p in (4, 5):
        for q in (0, 1, 2):
            c = case_for(out, "bridge/out-q%d/%s" % (q, vname(p)), "bridge")
            c.observer(p)
            c.client("r", p, port="remote")
            c.connect("r")
            c.subscribe("r", [(c.topic("#"), 2)])
            c.client("a", p)
            c.connect("a")
            c.publish("a", c.topic(), b"to-remote", q)
            if q == 2:
                c.send("a", M.ack(6, 1), "pkt")
            c.ping("a")
            c = case_for(out, "bridge/in-q%d/%s" % (q, vname(p)), "bridge")
            c.observer(p)
            c.client("r", p, port="remote")
            c.connect("r")
            c.publish("r", c.topic(), b"from-remote", q)
            if q == 2:
                c.send("r", M.ack(6, 1), "pkt")
            c.ping("r")
        for q in (0, 1):
            c = case_for(out, "bridge/local-only-q%d/%s" % (q, vname(p)), "bridge", root="nb")
            c.observer(p)
            c.client("r", p, port="remote")
            c.connect("r")
            c.subscribe("r", [(c.topic("#"), 1)])
            c.client("a", p)
            c.connect("a")
            c.publish("a", c.topic(), b"stays-here", q)
            c.ping("a")
        c = case_for(out, "bridge/retained-out/%s" % vname(p), "bridge")
        c.client("a", p)
        c.connect("a")
        c.publish("a", c.topic(), b"kept", 1, retain=True)
        c.client("r", p, port="remote")
        c.connect("r")
        c.subscribe("r", [(c.topic("#"), 1)], wait=("pkt", 2))


def group_auth(out):
    """allow_anonymous false and a password file (user alice / secret, user bob / other)."""
    for p in PROTOS:
        def add(label, user, pw, fn=None):
            c = case_for(out, "auth/%s/%s" % (label, vname(p)), "auth")
            c.client("a", p)
            c.connect("a", user=user, password=pw, wait="quiet")
            if fn:
                fn(c)
            c.ping("a")
        add("anonymous", None, None)
        add("good", "alice", "secret")
        add("bad-password", "alice", "wrong")
        add("unknown-user", "mallory", "secret")
        add("user-no-password", "alice", None)
        add("empty-password", "alice", "")
        add("bad-utf8-user", b"alic\xff", "secret")
        c = case_for(out, "auth/pubsub/%s" % vname(p), "auth")
        c.client("s", p)
        c.connect("s", user="bob", password="other")
        c.subscribe("s", [(c.topic("#"), 1)])
        c.client("a", p)
        c.connect("a", user="alice", password="secret")
        c.publish("a", c.topic(), b"authed", 0)
        c.publish("a", c.topic(), b"authed", 1)
        c.ping("a")
    c = case_for(out, "auth/v5-auth-method", "auth")
    c.client("a", 5)
    c.connect("a", user="alice", password="secret", v5props=prop(0x15, "PLAIN"), wait="quiet")


def group_acl(out):
    """An acl_file: anonymous clients read rd/<id>/pub/#; alice reads and writes rd/#; a
    pattern lets every client write rd/<id>/own/<its client id>/#."""
    for p in PROTOS:
        for q in (0, 1, 2):
            def add(label, user, topic_fn, sub_user="alice", sub="#"):
                c = case_for(out, "acl/%s-q%d/%s" % (label, q, vname(p)), "acl")
                c.client("o", p)
                c.connect("o", user=sub_user)
                c.subscribe("o", [(c.topic(sub), 2)])
                c.client("a", p)
                c.connect("a", user=user)
                c.publish("a", topic_fn(c), b"acl", q)
                if q == 2:
                    c.send("a", M.ack(6, 1), "pkt")
                c.ping("a")
            add("anon-write-denied", None, lambda c: c.topic("pub/x"))
            add("alice-write", "alice", lambda c: c.topic("pub/x"))
            add("pattern-own", None, lambda c: c.topic("own/" + c.cid("a") + "/x"))
            add("pattern-other", None, lambda c: c.topic("own/someone/x"))
            add("read-denied", "alice", lambda c: c.topic("x"), sub_user=None)
            add("read-allowed", "alice", lambda c: c.topic("pub/x"), sub_user=None, sub="pub/#")
        for label, user, filt in (("sub-denied", None, "#"), ("sub-allowed", None, "pub/#"),
                                  ("sub-alice", "alice", "#")):
            c = case_for(out, "acl/%s/%s" % (label, vname(p)), "acl")
            c.client("s", p)
            c.connect("s", user=user)
            c.subscribe("s", [(c.topic(filt), 1)])
            c.ping("s")


def group_dynsec(out):
    """The dynamic-security plugin: alice (role rw: rd/#) and anonymous clients (group anon,
    role ro: subscribe rd/#, no publish); the admin's control topic."""
    for p in (4, 5):
        for q in (0, 1):
            def add(label, user, pw, sub_user="alice", sub_pw="secret"):
                c = case_for(out, "dynsec/%s-q%d/%s" % (label, q, vname(p)), "dynsec")
                c.client("o", p)
                c.connect("o", user=sub_user, password=sub_pw)
                c.subscribe("o", [(c.topic("#"), 2)])
                c.client("a", p)
                c.connect("a", user=user, password=pw, wait="quiet")
                c.publish("a", c.topic(), b"dyn", q)
                c.ping("a")
            add("alice-to-alice", "alice", "secret")
            add("anon-to-alice", None, None)
            add("alice-to-anon", "alice", "secret", None, None)
            add("bad-password", "alice", "nope")
    # The plugin answers on one fixed topic: a single case may use it.
    c = case_for(out, "dynsec/control-get-client", "dynsec")
    c.client("a", 5)
    c.connect("a", user="admin", password="adminpw")
    c.subscribe("a", [("$CONTROL/dynamic-security/v1/response", 1)])
    c.publish("a", "$CONTROL/dynamic-security/v1",
              b'{"commands":[{"command":"getClient","username":"alice"}]}', 1, wait="quiet")


GROUP_FNS = {"msgsize": [group_msgsize], "maxpacket": [group_maxpacket], "mount": [group_mount],
             "bridge": [group_bridge], "auth": [group_auth], "acl": [group_acl],
             "dynsec": [group_dynsec], "core": FAMILIES, "persist31": FAMILIES}


def cases(group="core"):
    """Every case of a group, in a stable order; names and ids are checked unique."""
    out = []
    for fn in GROUP_FNS[group]:
        fn(out)
    if group in ("core", "persist31"):
        out = [c for c in out if c.blinds == (group == "persist31")]
    names, ids = set(), set()
    for c in out:
        if c.name in names or c.id in ids:
            raise SystemExit("gen.py: duplicate case name or id: %s" % c.name)
        names.add(c.name)
        ids.add(c.id)
    return out


def all_cases():
    return [c for g in GROUPS for c in cases(g)]


def show(c):
    print("case %s  group %s  id %s  final silence %.1fs" % (c.name, c.group, c.id, c.final))
    for k, v in c.clients.items():
        print("  client %s: v%d, %s port%s, client id %s" % (
            k, v["proto"], v["port"], "" if v["autoack"] else ", no auto-ack", c.cid(k)))
    for i, s in enumerate(c.steps, 1):
        d = s["data"]
        if isinstance(d, bytes):
            d = d.hex(" ") if len(d) <= 64 else "%s ... (%d bytes)" % (d[:48].hex(" "), len(d))
        elif isinstance(d, tuple):
            d = "%02x + id of last %s + %s" % (d[0], d[2], d[1].hex(" "))
        print("  %3d %s %-6s %s%s" % (i, s["c"] or "-", s["op"], d if d is not None else "",
                                     "  -> wait %s" % (s["wait"],) if s["wait"] else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", default=None, help="one of %s (default: all)" % ", ".join(GROUPS))
    ap.add_argument("--list", action="store_true", help="print the case names")
    ap.add_argument("--count", action="store_true", help="print the number of cases per group")
    ap.add_argument("--show", metavar="NAME", help="print one case's steps")
    a = ap.parse_args()
    groups = [a.group] if a.group else list(GROUPS)
    if a.show:
        for c in all_cases():
            if c.name == a.show:
                show(c)
                return 0
        print("no case %s" % a.show, file=sys.stderr)
        return 1
    for g in groups:
        cs = cases(g)
        if a.count:
            print("%-10s %5d" % (g, len(cs)))
        else:
            for c in cs:
                print(c.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
