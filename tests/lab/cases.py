#!/usr/bin/python3
"""Lab scenarios against a real Mosquitto, direct or through mqoff proxy.

Usage: cases.py CASE --host ADDR --target direct|proxy [options]. Every check prints one line
(see mqlab.Reporter). Checks that only mean something through the offload (the broker never
saw an offloaded PUBLISH) run when --expect-offload is given; --expect-passthrough asserts the
opposite (mqoff started without an authorization source must pass everything to the broker).
"""

import struct
import time

import paho.mqtt.client as mqtt

from mqlab import (Client, Loop, RawConn, SysWatch, base_args, check_no_disconnect,
                   connect_all, connect_pkt, got_items, lane_diff, mstr, packet, parse_seq,
                   pingreq_pkt, puback_pkt, publish_fields, publish_pkt, run_case,
                   seq_payload, stream_diff, subscribe_all, subscribe_pkt, v5_publish_props)

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def counted(rep, a, name, got, offloaded, broker):
    """The broker's counter moved by `got`. `broker` of it is owed to packets that must reach
    the broker whatever the path; `offloaded` to packets an offload takes away."""
    if a.expect_offload:
        rep.eq("%s %d (offloaded ones not)" % (name, broker), got, broker)
    elif a.expect_passthrough or a.target == "direct":
        rep.eq("%s %d" % (name, broker + offloaded), got, broker + offloaded)
    else:
        rep.note("%s: %d (not asserted for this target)" % (name, got))


# ---------------------------------------------------------------------------------------------
@case
def wildcards(a, rep):
    """One subscriber per filter (+ and # in every position), one publisher, topics chosen so
    each filter matches some and misses some; plus clients with two overlapping filters."""
    filters = ["wc/+/temp", "wc/#", "#", "+/+/temp", "wc/room1/temp", "wc/+", "+",
               "wc/room1/#", "+/room1/+", "wc/+/+/deep", "/#", "+/wc"]
    topics = ["wc/room1/temp", "wc/room2/temp", "wc/room1/hum", "wc/room1", "wc",
              "other/x/temp", "wc/room1/temp/deep", "top", "wc//temp", "/wc"]
    loop = Loop()
    subs = [Client(loop, a.host, "wsub%02d" % i, 5 if i % 3 == 2 else 4) for i in range(len(filters))]
    ov3 = Client(loop, a.host, "wov3", 4)
    ov5 = Client(loop, a.host, "wov5", 5)
    pub = Client(loop, a.host, "wpub", 4)
    bad = connect_all(loop, subs + [ov3, ov5, pub])
    if not rep.ok("wildcards: clients connected", not bad, "%d failed" % len(bad)):
        return
    codes = {}
    for s, f in zip(subs, filters):
        codes.update(subscribe_all(loop, [s], f, 1))
    overlap = [("wc/#", 1), ("wc/+/temp", 1)]
    codes.update(subscribe_all(loop, [ov3, ov5], overlap))
    rep.ok("wildcards: every filter granted", all(c in ([1], [1, 1]) for c in codes.values()),
           {s.cid: c for s, c in codes.items() if c not in ([1], [1, 1])})
    sent = []
    for rnd in range(5):
        for i, t in enumerate(topics):
            p = seq_payload("wpub", rnd * len(topics) + i)
            pub.publish(t, p, rnd % 2)
            sent.append((t, p, rnd % 2))
    total_expected = sum(1 for s, f in zip(subs, filters) for t, _, _ in sent if mqtt.topic_matches_sub(f, t))
    loop.until(lambda: sum(len(s.msgs) for s in subs) >= total_expected, 15)
    loop.run(0.5)
    bad = []
    for s, f in zip(subs, filters):
        want = [(t, p, q) for t, p, q in sent if mqtt.topic_matches_sub(f, t)]
        d = lane_diff(got_items(s), want)
        if d:
            bad.append("%s: %s" % (f, d))
    rep.ok("wildcards: each filter got exactly its matching messages, in order", not bad, "; ".join(bad[:3]))
    # Overlapping subscriptions of one client: Mosquitto 2.0 sends a v3.1.1 client one copy
    # and a v5 client one copy per matching subscription.
    want3, want5 = [], []
    for t, p, q in sent:
        n = sum(1 for f, _ in overlap if mqtt.topic_matches_sub(f, t))
        if n:
            want3.append((t, p, q))
            want5.extend([(t, p, q)] * n)
    d3 = lane_diff(got_items(ov3), want3)
    d5 = lane_diff(got_items(ov5), want5)
    rep.ok("wildcards: overlapping filters, v3.1.1 gets one copy", d3 is None, d3)
    rep.ok("wildcards: overlapping filters, v5 gets one copy per subscription", d5 is None, d5)
    check_no_disconnect(rep, "wildcards: nobody disconnected", subs + [ov3, ov5, pub])
    loop.close_all()


# ---------------------------------------------------------------------------------------------
@case
def sys_hash(a, rep):
    """$SYS topics are not matched by # or by + in the first level; $SYS/# is."""
    loop = Loop()
    names = ["#", "+/broker/uptime", "+/#", "$SYS/#", "$SYS/broker/uptime"]
    subs = [Client(loop, a.host, "sys%d" % i, 4 if i % 2 == 0 else 5) for i in range(len(names))]
    pub = Client(loop, a.host, "syspub", 4)
    if not rep.ok("$SYS: clients connected", not connect_all(loop, subs + [pub])):
        return
    for s, f in zip(subs, names):
        subscribe_all(loop, [s], f, 0)
    pub.publish("plain/x", b"hello", 0)
    loop.run(2.6)   # sys_interval 1: at least two $SYS updates
    pub.publish("plain/x", b"bye", 0)
    loop.until(lambda: len(subs[0].msgs) >= 2, 5)
    loop.run(0.2)
    hsh, plus1, plushash, sysall, sysup = subs
    rep.eq("$SYS: '#' gets only the normal topic", [(m.topic, m.payload) for m in hsh.msgs],
           [("plain/x", b"hello"), ("plain/x", b"bye")])
    rep.eq("$SYS: '+/broker/uptime' gets nothing", [m.topic for m in plus1.msgs], [])
    rep.eq("$SYS: '+/#' gets only the normal topic", [m.topic for m in plushash.msgs], ["plain/x", "plain/x"])
    rep.ok("$SYS: '$SYS/#' gets $SYS updates", any(m.topic.startswith("$SYS/") for m in sysall.msgs)
           and all(m.topic.startswith("$SYS/") for m in sysall.msgs),
           "%d messages, topics %s" % (len(sysall.msgs), sorted({m.topic for m in sysall.msgs})[:3]))
    rep.ok("$SYS: '$SYS/broker/uptime' gets uptime", len(sysup.msgs) >= 1 and
           all(m.topic == "$SYS/broker/uptime" for m in sysup.msgs), [m.topic for m in sysup.msgs][:3])
    loop.close_all()


# ---------------------------------------------------------------------------------------------
@case
def offload(a, rep):
    """Phase 1: QoS 0/1 non-retained PUBLISHes (offloadable). Phase 2: retained and QoS 2
    ones (always passthrough). Subscribers get everything; the broker's own counters show which
    packets it received (see mqlab.SysWatch)."""
    loop = Loop()
    watch = SysWatch(loop, a.broker).start()
    S = a.subs
    subs = [Client(loop, a.host, "osub%d" % i, 4 if i % 2 else 5) for i in range(S)]
    p1 = Client(loop, a.host, "op1", 4)
    p2 = Client(loop, a.host, "op2", 5)
    if not rep.ok("offload: clients connected", not connect_all(loop, subs + [p1, p2])):
        return
    subscribe_all(loop, subs, "off/#", 1)
    before = watch.settle()

    n = a.msgs
    want = []
    for i in range(n):
        p = seq_payload("op1", i)
        p1.publish("off/a", p, i % 2)
        want.append(("off/a", p, i % 2))
    loop.until(lambda: all(len(s.msgs) >= n for s in subs), 20)
    mid = watch.settle()
    bad = [(s.cid, lane_diff(got_items(s), want)) for s in subs if lane_diff(got_items(s), want)]
    rep.ok("offload: QoS 0/1 phase, every subscriber got all %d once, in order" % n, not bad, bad[:2])
    nq1 = n // 2
    # P: one per PUBLISH. M: every PUBLISH and every subscriber's PUBACK of a QoS 1 delivery.
    counted(rep, a, "offload: QoS 0/1 phase, broker's publish/messages/received moved by",
            mid[0] - before[0], n, 0)
    counted(rep, a, "offload: QoS 0/1 phase, broker's messages/received moved by",
            mid[1] - before[1], n + nq1 * S, 0)

    k = max(1, n // 5)
    for i in range(k):
        p = seq_payload("op2", 2 * i)
        p2.publish("off/r", p, 0, retain=True)
        want.append(("off/r", p, 0))
        p = seq_payload("op2", 2 * i + 1)
        p2.publish("off/q2", p, 2)
        want.append(("off/q2", p, 1))    # QoS 2 to a QoS 1 subscription arrives at QoS 1
    loop.until(lambda: all(len(s.msgs) >= n + 2 * k for s in subs), 20)
    after = watch.settle()
    bad = [(s.cid, lane_diff(got_items(s), want)) for s in subs if lane_diff(got_items(s), want)]
    rep.ok("offload: retained + QoS 2 phase, every subscriber got everything once, in order", not bad, bad[:2])
    rep.ok("offload: retained messages arrive live with retain 0",
           not any(m.retain for s in subs for m in s.msgs))
    # Mosquitto 2.0.11 does not count retained or QoS 2 PUBLISHes in publish/messages/received.
    rep.eq("offload: retained + QoS 2 phase, publish/messages/received unchanged (Mosquitto 2.0.11)",
           after[0] - mid[0], 0)
    # M: retained QoS 0 PUBLISH (1) + QoS 2 PUBLISH and PUBREL (2) + each subscriber's PUBACK.
    counted(rep, a, "offload: retained + QoS 2 phase, broker's messages/received moved by",
            after[1] - mid[1], 0, k + 2 * k + k * S)
    # The retained one is in the broker: a late subscriber straight at the broker gets it.
    late = Client(loop, a.broker, "olate", 4)
    late.connect()
    loop.until(late.connected, 5)
    subscribe_all(loop, [late], "off/r", 0)
    loop.until(lambda: late.msgs, 5)
    rep.eq("offload: the broker holds the last retained message",
           [(m.payload, m.retain) for m in late.msgs], [(seq_payload("op2", 2 * (k - 1)), True)])
    check_no_disconnect(rep, "offload: nobody disconnected", subs + [p1, p2])
    loop.close_all()


# ---------------------------------------------------------------------------------------------
@case
def retained(a, rep):
    """A retained message published through the target is stored by the broker."""
    loop = Loop()
    pub = Client(loop, a.host, "rpub", 4)
    pub5 = Client(loop, a.host, "rpub5", 5)
    if not rep.ok("retained: publishers connected", not connect_all(loop, [pub, pub5])):
        return
    m1 = pub.publish("ret/a", b"r-a-1", 1, retain=True)
    m2 = pub5.publish("ret/b", b"r-b-1", 0, retain=True)
    pub.publish("ret/c", b"r-c-1", 1, retain=True)
    m3 = pub.publish("ret/c", b"r-c-2", 1, retain=True)      # replaces r-c-1
    loop.until(lambda: {m1, m3} <= pub.acked, 5)
    loop.run(0.3)
    for host, label in ((a.host, "through the target"), (a.broker, "straight at the broker")):
        for proto in (4, 5):
            late = Client(loop, host, "rlate%d%s" % (proto, label[0]), proto)
            late.connect()
            loop.until(late.connected, 5)
            subscribe_all(loop, [late], "ret/#", 1)
            loop.until(lambda: len(late.msgs) >= 3, 5)
            loop.run(0.3)
            got = sorted((m.topic, m.payload, m.retain) for m in late.msgs)
            rep.eq("retained: a later v%s subscriber %s gets the stored messages" % ("3.1.1" if proto == 4 else "5", label),
                   got, [("ret/a", b"r-a-1", True), ("ret/b", b"r-b-1", True), ("ret/c", b"r-c-2", True)])
            late.disconnect()
    # An empty retained message clears it.
    m4 = pub.publish("ret/a", b"", 1, retain=True)
    loop.until(lambda: m4 in pub.acked, 5)
    late = Client(loop, a.host, "rlate-clear", 4)
    late.connect()
    loop.until(late.connected, 5)
    subscribe_all(loop, [late], "ret/#", 1)
    loop.until(lambda: len(late.msgs) >= 2, 5)
    loop.run(0.5)
    rep.eq("retained: an empty retained message clears the topic",
           sorted(m.topic for m in late.msgs), ["ret/b", "ret/c"])
    _ = m2
    loop.close_all()


# ---------------------------------------------------------------------------------------------
@case
def unsubscribe(a, rep):
    """subscribe -> receive; unsubscribe -> nothing more; subscribe again -> receive again."""
    loop = Loop()
    s1 = Client(loop, a.host, "us1", 4)
    s5 = Client(loop, a.host, "us5", 5)
    keep = Client(loop, a.host, "ukeep", 4)        # stays subscribed: tells when a round is over
    pub = Client(loop, a.host, "upub", 4)
    if not rep.ok("unsubscribe: clients connected", not connect_all(loop, [s1, s5, keep, pub])):
        return
    subscribe_all(loop, [s1, s5, keep], "us/t", 1)

    def round_(r, n=10):
        # QoS 1 only: Mosquitto may reorder one publisher's QoS 0 and QoS 1 (mqlab.lanes).
        ps = [seq_payload("upub", r * 100 + i) for i in range(n)]
        for p in ps:
            pub.publish("us/t", p, 1)
        target = len(keep.msgs) + n
        loop.until(lambda: len(keep.msgs) >= target, 10)
        loop.run(0.3)
        return ps

    r1 = round_(1)
    rep.eq("unsubscribe: subscribed v3.1.1 client receives", s1.payloads(), r1)
    rep.eq("unsubscribe: subscribed v5 client receives", s5.payloads(), r1)
    mids = {s: s.unsubscribe("us/t") for s in (s1, s5)}
    loop.until(lambda: all(m in s.unsubacks for s, m in mids.items()), 5)
    rep.ok("unsubscribe: UNSUBACKs arrived", all(m in s.unsubacks for s, m in mids.items()))
    rep.eq("unsubscribe: v5 UNSUBACK reason success", s5.unsubacks.get(mids[s5]), [0])
    r2 = round_(2)
    rep.eq("unsubscribe: v3.1.1 client receives nothing after UNSUBACK", s1.payloads(), r1)
    rep.eq("unsubscribe: v5 client receives nothing after UNSUBACK", s5.payloads(), r1)
    subscribe_all(loop, [s1, s5], "us/t", 0)
    r3 = round_(3)
    rep.eq("unsubscribe: subscribed again (QoS 0), v3.1.1 receives again", s1.payloads(), r1 + r3)
    rep.eq("unsubscribe: subscribed again (QoS 0), v5 receives again", s5.payloads(), r1 + r3)
    rep.ok("unsubscribe: resubscribed at QoS 0 gets QoS 0", all(m.qos == 0 for m in s1.msgs[len(r1):] + s5.msgs[len(r1):]))
    rep.eq("unsubscribe: the subscriber that stayed got all rounds", keep.payloads(), r1 + r2 + r3)
    # Unsubscribing one filter of two keeps the other.
    mid = s1.subscribe("us/#", 1)
    loop.until(lambda: mid in s1.subacks, 5)
    mid = s1.unsubscribe("us/t")
    loop.until(lambda: mid in s1.unsubacks, 5)
    r4 = round_(4)
    rep.eq("unsubscribe: the other filter still delivers", s1.payloads(), r1 + r3 + r4)
    check_no_disconnect(rep, "unsubscribe: nobody disconnected", [s1, s5, keep, pub])
    loop.close_all()


# ---------------------------------------------------------------------------------------------
USERS = {"pub": "pub-pw", "rd": "rd-pw", "nord": "nord-pw", "nowr": "nowr-pw"}


@case
def acl(a, rep):
    """Broker with password_file + acl_file (see test_acl.sh):
    pub may write acl/#; rd may read acl/#; nord may only write (its SUBSCRIBE is granted, the
    acl_file cannot refuse one, but it may not READ); nowr may only read."""
    loop = Loop()

    def user(cid, name, proto=4, pw=None):
        return Client(loop, a.host, cid, proto, username=name, password=USERS.get(name) if pw is None else pw)
    rd, rd5 = user("rd1", "rd"), user("rd5", "rd", 5)
    nord, nord5 = user("nord1", "nord"), user("nord5", "nord", 5)
    pub, nowr, nowr5 = user("pub1", "pub"), user("nowr1", "nowr"), user("nowr5", "nowr", 5)
    everyone = [rd, rd5, nord, nord5, pub, nowr, nowr5]
    if not rep.ok("acl: users with passwords connected", not connect_all(loop, everyone)):
        return
    # Refused CONNECTs: wrong password, anonymous.
    wrong = user("wrong1", "rd", 4, "bad")
    anon = Client(loop, a.host, "anon1", 4)
    wrong.connect()
    anon.connect()
    loop.until(lambda: wrong.connack and anon.connack, 5)
    rep.eq("acl: wrong password refused (CONNACK 5)", wrong.connack and wrong.connack[0], 5)
    rep.eq("acl: anonymous refused (CONNACK 5)", anon.connack and anon.connack[0], 5)
    loop.remove(wrong)
    loop.remove(anon)

    codes = subscribe_all(loop, [rd, rd5, nord, nord5], "acl/#", 1)
    rep.ok("acl: SUBACKs granted, also to the user who may not read",
           all(c == [1] for c in codes.values()), {s.cid: c for s, c in codes.items()})
    # nowr publishes (denied), then pub (allowed), interleaved.
    want = []
    mids = []
    for i in range(20):
        mids.append((nowr, nowr.publish("acl/x", seq_payload("nowr1", i), i % 2)))
        mids.append((nowr5, nowr5.publish("acl/x", seq_payload("nowr5", i), i % 2)))
        p = seq_payload("pub1", i)
        mids.append((pub, pub.publish("acl/x", p, i % 2)))
        want.append(("acl/x", p, i % 2))
    loop.until(lambda: len(rd.msgs) >= len(want) and len(rd5.msgs) >= len(want), 10)
    loop.run(0.5)
    d = lane_diff(got_items(rd), want)
    rep.ok("acl: reader got exactly the allowed publisher's messages (v3.1.1)", d is None, d)
    d = lane_diff(got_items(rd5), want)
    rep.ok("acl: reader got exactly the allowed publisher's messages (v5)", d is None, d)
    rep.eq("acl: subscriber without READ got nothing (v3.1.1)", nord.payloads(), [])
    rep.eq("acl: subscriber without READ got nothing (v5)", nord5.payloads(), [])
    loop.until(lambda: all(m in c.acked for c, m in mids), 5)
    rep.ok("acl: every QoS 1 PUBLISH acknowledged, denied ones too",
           all(m in c.acked for c, m in mids), "%d missing" % sum(1 for c, m in mids if m not in c.acked))
    # v5: the broker answers a denied QoS 1 PUBLISH with PUBACK 0x87 (Not authorized).
    raw = RawConn(a.host)
    rc = raw.connect("nowr-raw", 5, username="nowr", password=USERS["nowr"])
    rep.eq("acl: raw v5 client connected", rc, 0)
    raw.send(publish_pkt("acl/x", b"denied", 1, pid=7, proto=5))
    p = raw.read_packet(5)
    rep.eq("acl: v5 denied QoS 1 PUBLISH gets PUBACK 0x87",
           p and (p[0], p[1][:3]), (0x40, b"\x00\x07\x87"))
    raw.close()
    loop.run(0.3)
    rep.eq("acl: the raw denied PUBLISH was not delivered", len(rd.msgs), len(want))
    # pattern read pat/%u/# and cid/%c/#: each reader gets its own topics only.
    readers = [rd, nord, nowr5]
    subscribe_all(loop, readers, [("pat/#", 1), ("cid/#", 1)])
    base = {c: len(c.msgs) for c in readers}
    topics = ["pat/rd/x", "pat/nord/x", "pat/nowr/x", "pat/pub/x", "cid/rd1/x", "cid/nord1/x",
              "cid/nowr5/x", "cid/rd5/x"]
    for i, t in enumerate(topics * 3):
        pub.publish(t, seq_payload("pub1", 100 + i), 1)
    wants = {rd: ["pat/rd/x", "cid/rd1/x"], nord: ["pat/nord/x", "cid/nord1/x"],
             nowr5: ["pat/nowr/x", "cid/nowr5/x"]}
    loop.until(lambda: all(len(c.msgs) - base[c] >= 6 for c in readers), 5)
    loop.run(0.5)
    for c in readers:
        got = [m.topic for m in c.msgs[base[c]:]]
        rep.eq("acl: pattern %%u/%%c: %s reads only its own topics" % c.cid, got,
               [t for t in topics * 3 if t in wants[c]])
    check_no_disconnect(rep, "acl: nobody disconnected", everyone)
    loop.close_all()


@case
def suback_refused(a, rep):
    """Broker with the dynamic-security plugin denying SUBSCRIBE to deny/# (test_acl.sh):
    the refused filter never delivers, while a granted '#' on another client does."""
    loop = Loop()
    s4 = Client(loop, a.host, "ref4", 4)
    s5 = Client(loop, a.host, "ref5", 5)
    ctl = Client(loop, a.host, "refall", 4)
    pub = Client(loop, a.host, "refpub", 4)
    if not rep.ok("suback: clients connected", not connect_all(loop, [s4, s5, ctl, pub])):
        return
    c4 = subscribe_all(loop, [s4], [("deny/x", 1), ("ok/x", 1)])[s4]
    c5 = subscribe_all(loop, [s5], [("deny/x", 1), ("ok/x", 1)])[s5]
    cc = subscribe_all(loop, [ctl], "#", 1)[ctl]
    rep.eq("suback: v3.1.1 SUBACK refuses deny/x (0x80), grants ok/x", c4, [0x80, 1])
    rep.eq("suback: v5 SUBACK refuses deny/x (0x87), grants ok/x", c5, [0x87, 1])
    rep.eq("suback: '#' granted", cc, [1])
    want_ok, want_all = [], []
    for i in range(20):
        for t in ("deny/x", "ok/x"):
            p = seq_payload("refpub", len(want_all))
            pub.publish(t, p, i % 2)
            want_all.append((t, p, i % 2))
            if t == "ok/x":
                want_ok.append((t, p, i % 2))
    loop.until(lambda: len(ctl.msgs) >= len(want_all), 10)
    loop.run(0.5)
    d = lane_diff(got_items(ctl), want_all)
    rep.ok("suback: '#' got every message", d is None, d)
    d = lane_diff(got_items(s4), want_ok)
    rep.ok("suback: refused filter never delivered (v3.1.1)", d is None, d)
    d = lane_diff(got_items(s5), want_ok)
    rep.ok("suback: refused filter never delivered (v5)", d is None, d)
    # A retry of the refused filter alone is refused again and still delivers nothing.
    c4b = subscribe_all(loop, [s4], [("deny/#", 0)])[s4]
    rep.eq("suback: deny/# refused too", c4b, [0x80])
    n4 = len(s4.msgs)
    pub.publish("deny/y", b"late", 1)
    pub.publish("ok/x", b"end", 1)
    loop.until(lambda: s4.payloads()[-1:] == [b"end"], 5)
    loop.run(0.3)
    rep.eq("suback: still nothing from the refused filters", s4.payloads()[n4:], [b"end"])
    check_no_disconnect(rep, "suback: nobody disconnected", [s4, s5, ctl, pub])
    loop.close_all()


# ---------------------------------------------------------------------------------------------
@case
def topic_alias(a, rep):
    """A v5 publisher using topic aliases; v3.1.1 and v5 subscribers get full topics, in order."""
    loop = Loop()
    subs = [Client(loop, a.host, "tas4", 4), Client(loop, a.host, "tas5", 5)]
    pub = Client(loop, a.host, "tapub", 5)
    if not rep.ok("topic alias: clients connected", not connect_all(loop, subs + [pub])):
        return
    subscribe_all(loop, subs, "ta/#", 1)
    sent = []
    seq = [0]

    def pubm(topic, alias, real, qos):
        p = seq_payload("tapub", seq[0])
        seq[0] += 1
        pub.publish(topic, p, qos, props=v5_publish_props(alias))
        sent.append((real, p, qos))
    pubm("ta/x", 1, "ta/x", 1)                 # sets alias 1
    for i in range(20):
        pubm("", 1, "ta/x", i % 2)             # alias only
    pubm("ta/y", 2, "ta/y", 0)                 # sets alias 2
    for i in range(10):
        pubm("", 2 - i % 2, "ta/y" if i % 2 == 0 else "ta/x", 1)
    pubm("ta/z", 1, "ta/z", 1)                 # remaps alias 1
    for i in range(10):
        pubm("", 1, "ta/z", i % 2)
    pubm("ta/x", None, "ta/x", 0)              # plain topic again
    loop.until(lambda: all(len(s.msgs) >= len(sent) for s in subs), 10)
    loop.run(0.3)
    for s in subs:
        d = lane_diff(got_items(s), sent)
        rep.ok("topic alias: v%s subscriber got every message with its full topic, in order"
               % ("3.1.1" if s.proto == 4 else "5"), d is None, d)
    check_no_disconnect(rep, "topic alias: nobody disconnected", subs + [pub])
    loop.close_all()


# ---------------------------------------------------------------------------------------------
class SpecClient(mqtt.Client):
    """Pings only after sending nothing for keep-alive seconds, as the MQTT rule asks. paho
    1.6.1 pings every keep-alive period whatever it sent (its _packet_write returns before
    updating _last_msg_out) and also when it *received* nothing for that long; either would
    hide a broker that sees no traffic from a publisher whose PUBLISHes the offload consumes."""

    pings = 0

    def _packet_queue(self, command, packet, mid, qos, info=None):
        self._spec_out = time.monotonic()
        return super()._packet_queue(command, packet, mid, qos, info)

    def _check_keepalive(self):
        if self._keepalive == 0 or self._sock is None:
            return
        now = time.monotonic()
        last_out = getattr(self, "_spec_out", now)
        if self._ping_t == 0 and now - last_out >= self._keepalive:
            if self._state == mqtt.mqtt_cs_connected:
                SpecClient.pings += 1
                self._send_pingreq()
        elif self._ping_t != 0 and now - self._ping_t >= self._keepalive:
            self._sock_close()
            self._do_on_disconnect(mqtt.MQTT_ERR_KEEPALIVE)


@case
def keepalive(a, rep):
    """A publish-only client with keep-alive 5 s publishing QoS 0 every 200 ms for 20 s stays
    connected (the broker disconnects after 1.5 x keep-alive without input)."""
    loop = Loop()
    watch = SysWatch(loop, a.broker).start()
    sub = Client(loop, a.host, "kasub", 4)
    pub = Client(loop, a.host, "kapub", 4, keepalive=5, klass=SpecClient)
    pub5 = Client(loop, a.host, "kapub5", 5, keepalive=5, klass=SpecClient)
    if not rep.ok("keepalive: clients connected", not connect_all(loop, [sub, pub, pub5])):
        return
    subscribe_all(loop, [sub], "ka/#", 0)
    before = watch.settle()
    n = int(a.seconds / 0.2)
    want = []
    pings0 = SpecClient.pings     # idle before (settling the counters), they may have pinged
    t0 = time.monotonic()
    for i in range(n):
        for c in (pub, pub5):
            p = seq_payload(c.cid, i)
            c.publish("ka/" + c.cid, p, 0)
            want.append(p)
        loop.until(lambda: time.monotonic() >= t0 + (i + 1) * 0.2, 1)
        if pub.disconnects and pub5.disconnects:
            break
    pings = SpecClient.pings - pings0
    loop.until(lambda: len(sub.msgs) >= len(want), 5)
    after = watch.settle()
    rep.ok("keepalive: publishers sent no PINGREQ of their own while publishing", pings == 0,
           "%d PINGREQ" % pings)
    for c in (pub, pub5):
        rep.ok("keepalive: v%s publish-only client not disconnected in %.0f s" % ("5" if c.proto == 5 else "3.1.1", a.seconds),
               not c.disconnects, "disconnected after %.1f s, rc %s" %
               ((c.disconnects[0][0] - t0, c.disconnects[0][1]) if c.disconnects else (0, 0)))
    rep.eq("keepalive: subscriber got every message once, in order", sub.payloads(), want)
    # Still connected end to end: a QoS 1 publish is acknowledged and delivered.
    m = pub.publish("ka/end", b"end", 1)
    loop.until(lambda: m in pub.acked and sub.payloads()[-1:] == [b"end"], 5)
    rep.ok("keepalive: QoS 1 PUBLISH at the end acknowledged and delivered",
           m in pub.acked and sub.payloads()[-1:] == [b"end"])
    counted(rep, a, "keepalive: broker's publish/messages/received moved by", after[0] - before[0], len(want), 0)
    rep.note("keepalive: broker's messages/received moved by %d while %d PUBLISH were sent"
             % (after[1] - before[1], len(want)))
    loop.close_all()


# ---------------------------------------------------------------------------------------------
class RawSub:
    """A v3.1.1 subscriber on a raw socket that holds its PUBACKs back for `hold` seconds and
    checks that no PUBLISH ever reuses a packet identifier it has not acknowledged yet."""

    def __init__(self, host, cid, hold=0.05):
        self.r = RawConn(host)
        self.s = self.r.s
        self.cid = cid
        self.hold = hold
        self.inflight = {}        # pid -> time received
        self.msgs = []            # (topic, payload, qos, retain)
        self.errors = []
        self.closed = False

    def start(self, filt, qos):
        rc = self.r.connect(self.cid, 4)
        if rc != 0:
            raise RuntimeError("CONNACK %d" % rc)
        self.r.send(subscribe_pkt(1, [(filt, qos)]))
        p = self.r.read_packet(5)
        if p is None or p[0] != 0x90:
            raise RuntimeError("no SUBACK: %r" % (p,))
        return p[1][2:]

    def on_readable(self):
        try:
            d = self.s.recv(65536)
        except (ConnectionResetError, OSError):
            d = b""
        if not d:
            self.closed = True
            self.s = None
            return
        self.r.buf += d
        while True:
            p = self.r._parse()
            if p is None:
                break
            b0, body = p
            if b0 >> 4 == 3:
                topic, qos, pid, retain, payload = publish_fields(b0, body)
                if qos == 1:
                    if pid in self.inflight:
                        self.errors.append("pid %d reused while unacknowledged" % pid)
                    self.inflight[pid] = time.monotonic()
                elif qos == 2:
                    self.errors.append("QoS 2 delivery to a QoS 1 subscription")
                self.msgs.append((topic, payload, qos, retain))
            elif b0 >> 4 != 13:
                self.errors.append("unexpected packet 0x%02x" % b0)

    def tick(self):
        if self.s is None:
            return
        now = time.monotonic()
        due = [pid for pid, t in self.inflight.items() if now - t >= self.hold]
        if due:
            self.s.sendall(b"".join(puback_pkt(pid) for pid in due))
            for pid in due:
                del self.inflight[pid]


@case
def qos1_mixed(a, rep):
    """QoS 1 subscribers receiving, on one connection, offloadable QoS 1 messages and
    broker-originated QoS 1 ones (retained, QoS 2 downgraded): every message exactly once,
    packet identifiers never reused while in flight."""
    loop = Loop()
    raws = [RawSub(a.host, "mxraw%d" % i, hold=0.02 * (i + 1)) for i in range(2)]
    for r in raws:
        rep.eq("qos1 mixed: raw subscriber %s granted QoS 1" % r.cid, r.start("mx/#", 1), b"\x01")
        loop.add_raw(r)
    v5 = Client(loop, a.host, "mxv5", 5)
    v4 = Client(loop, a.host, "mxv4", 4)
    pa = Client(loop, a.host, "mxA", 4)
    pb = Client(loop, a.host, "mxB", 5)
    # mxB's QoS 2 messages hold the broker's receive quota until their PUBREL arrives: beyond
    # its Receive Maximum (20) the broker refuses a PUBLISH (PUBACK 0x97, quota exceeded),
    # with or without mqoff. A conforming client keeps within it.
    pb.c.max_inflight_messages_set(20)
    if not rep.ok("qos1 mixed: clients connected", not connect_all(loop, [v5, v4, pa, pb])):
        return
    subscribe_all(loop, [v5, v4], "mx/#", 1)
    want = {}     # (publisher, topic) -> payloads in order
    na, nb = a.msgs, a.msgs // 2
    for i in range(na):
        p = seq_payload("mxA", i)
        pa.publish("mx/a", p, 1)
        want.setdefault(("mxA", "mx/a"), []).append(p)
        if i % 2 == 0 and i // 2 < nb:
            j = i // 2
            if j % 2 == 0:
                t, q, r = "mx/c", 1, True
            else:
                t, q, r = "mx/b", 2, False
            p = seq_payload("mxB", j)
            pb.publish(t, p, q, retain=r)
            want.setdefault(("mxB", t), []).append(p)
        if i % 10 == 9:
            loop.run(0.01)
    total = sum(len(v) for v in want.values())

    def count():
        return [len(r.msgs) for r in raws] + [len(v5.msgs), len(v4.msgs)]
    loop.until(lambda: all(c >= total for c in count()), 20)
    loop.run(0.5)

    def by_key(msgs):
        got = {}
        for topic, payload in msgs:
            got.setdefault((parse_seq(payload)[0], topic), []).append(payload)
        return got
    for r in raws:
        got = by_key([(t, p) for t, p, q, rt in r.msgs])
        bad = [("%s %s: %s" % (k[0], k[1], stream_diff(got.get(k, []), w))) for k, w in want.items()
               if got.get(k, []) != w]
        rep.ok("qos1 mixed: %s got every message once, in order per publisher and topic (%d)" % (r.cid, total),
               not bad and len(r.msgs) == total, "; ".join(bad[:3]) or "got %d" % len(r.msgs))
        rep.ok("qos1 mixed: %s all at QoS 1, retain 0" % r.cid,
               all(q == 1 and not rt for t, p, q, rt in r.msgs))
        rep.ok("qos1 mixed: %s no packet identifier reused in flight, no protocol error" % r.cid,
               not r.errors, "; ".join(r.errors[:3]))
        rep.ok("qos1 mixed: %s still connected" % r.cid, not r.closed)
    for c in (v5, v4):
        got = by_key([(m.topic, m.payload) for m in c.msgs])
        bad = [k for k, w in want.items() if got.get(k, []) != w]
        rep.ok("qos1 mixed: %s got every message once, in order per publisher and topic" % c.cid,
               not bad and len(c.msgs) == total, "wrong for %s, got %d of %d" % (bad[:2], len(c.msgs), total))
    check_no_disconnect(rep, "qos1 mixed: nobody disconnected", [v5, v4, pa, pb])
    pb.publish("mx/c", b"", 1, retain=True)    # no retained message left for a later run
    loop.run(0.2)
    loop.close_all()
    for r in raws:
        r.r.close()


# ---------------------------------------------------------------------------------------------
@case
def packed(a, rep):
    """Many PUBLISHes in one TCP write: CONNECT + 100 PUBLISH in one sendall, then (after the
    CONNACK) 100 PUBLISH QoS 0/1 + PINGREQ in one sendall."""
    loop = Loop()
    sub = Client(loop, a.host, "pksub", 4)
    sub5 = Client(loop, a.host, "pksub5", 5)
    if not rep.ok("packed: subscribers connected", not connect_all(loop, [sub, sub5])):
        return
    subscribe_all(loop, [sub, sub5], "pk/#", 1)

    r1 = RawConn(a.host)
    blob = connect_pkt("pkraw1", 4) + b"".join(
        publish_pkt("pk/a", seq_payload("pkraw1", i)) for i in range(100))
    r1.send(blob)
    p = r1.read_packet(5)
    rep.eq("packed: CONNECT + 100 PUBLISH in one write, CONNACK 0", p, (0x20, b"\x00\x00"))
    want = [("pk/a", seq_payload("pkraw1", i), 0) for i in range(100)]
    loop.until(lambda: len(sub.msgs) >= 100 and len(sub5.msgs) >= 100, 10)

    r2 = RawConn(a.host)
    rep.eq("packed: second raw client connected", r2.connect("pkraw2", 4), 0)
    blob = b""
    acks_want = []
    for i in range(100):
        q = i % 2
        blob += publish_pkt("pk/b", seq_payload("pkraw2", i), q, pid=i + 1 if q else None)
        if q:
            acks_want.append(i + 1)
        want.append(("pk/b", seq_payload("pkraw2", i), q))
    r2.send(blob + pingreq_pkt())
    acks, other = [], []
    while True:
        p = r2.read_packet(5)
        if p is None:
            break
        if p[0] == 0x40:
            acks.append(struct.unpack("!H", p[1])[0])
        else:
            other.append(p)
            if p[0] == 0xD0:
                break
    rep.eq("packed: 50 PUBACKs in publish order, then the PINGRESP", (acks, other), (acks_want, [(0xD0, b"")]))
    loop.until(lambda: len(sub.msgs) >= 200 and len(sub5.msgs) >= 200, 10)
    loop.run(0.3)
    for c in (sub, sub5):
        d = lane_diff(got_items(c), want)
        rep.ok("packed: v%s subscriber got all 200 once, in order, at the published QoS"
               % ("5" if c.proto == 5 else "3.1.1"), d is None, d)
    r1.close()
    r2.close()
    loop.close_all()


@case
def bytewise(a, rep):
    """PUBLISH packets written one byte per TCP segment (and a CONNECT the same way)."""
    loop = Loop()
    sub = Client(loop, a.host, "bwsub", 4)
    if not rep.ok("bytewise: subscriber connected", not connect_all(loop, [sub])):
        return
    subscribe_all(loop, [sub], "bw/#", 1)
    r = RawConn(a.host)
    r.send_bytewise(connect_pkt("bwraw", 4, keepalive=30))
    p = r.read_packet(5)
    rep.eq("bytewise: CONNECT a byte at a time, CONNACK 0", p, (0x20, b"\x00\x00"))
    big = seq_payload("bwraw", 0, pad=300)         # remaining length takes two bytes
    r.send_bytewise(publish_pkt("bw/t", big, 1, pid=42), gap=0.002)
    p = r.read_packet(5)
    rep.eq("bytewise: QoS 1 PUBLISH a byte at a time, PUBACK", p, (0x40, b"\x00\x2a"))
    small = seq_payload("bwraw", 1)
    r.send_bytewise(publish_pkt("bw/t", small, 0))
    # A third one split in two writes in the middle of the remaining length: header byte + one
    # varint byte, then the rest.
    third = publish_pkt("bw/t", seq_payload("bwraw", 2, pad=200), 0)
    r.send(third[:2])
    time.sleep(0.05)
    r.send(third[2:])
    loop.until(lambda: len(sub.msgs) >= 3, 5)
    loop.run(0.3)
    rep.eq("bytewise: subscriber got each once, intact, in order",
           [(m.payload, m.qos) for m in sub.msgs], [(big, 1), (small, 0), (seq_payload("bwraw", 2, pad=200), 0)])
    r.close()
    loop.close_all()


# Malformed input, each dropped by Mosquitto 2.0.11 (checked on target direct).
MALFORMED = [
    ("reserved packet type 0", b"\x00\x00", True),
    ("remaining length of 5 bytes", b"\x30\xff\xff\xff\xff\x01", True),
    ("PUBLISH with QoS 3", b"\x36" + bytes([7]) + mstr("mal/x") + b"\x00\x01" + b"", True),
    ("PUBLISH topic with a wildcard", publish_pkt("mal/+", b"x"), True),
    ("PUBLISH topic longer than the packet", b"\x30\x04\x00\x10ab", True),
    ("PUBLISH topic not UTF-8", packet(0x30, mstr(b"mal/\xc3\x28") + b"x"), True),
    ("SUBSCRIBE with reserved flags 0", packet(0x80, b"\x00\x01" + mstr("mal/#") + b"\x00"), True),
    ("second CONNECT", connect_pkt("again", 4), True),
    ("PUBLISH before CONNECT", publish_pkt("mal/x", b"early"), False),
    ("CONNECT with protocol name MQTX", packet(0x10, mstr("MQTX") + b"\x04\x02\x00\x3c" + mstr("malx")), False),
    # Mosquitto drops it at the first byte (0x47: not CONNECT), not when 69 bytes have come.
    ("HTTP request instead of CONNECT", b"GET / HTTP/1.1\r\nHost: mqtt\r\n\r\n", False),
]


@case
def malformed(a, rep):
    """Malformed bytes from one client: that client is dropped, everyone else goes on."""
    loop = Loop()
    sub = Client(loop, a.host, "malsub", 4)
    sub5 = Client(loop, a.host, "malsub5", 5)
    pub = Client(loop, a.host, "malpub", 4)
    if not rep.ok("malformed: clients connected", not connect_all(loop, [sub, sub5, pub])):
        return
    subscribe_all(loop, [sub, sub5], "mal/#", 1)
    want = []
    for i, (name, data, after_connect) in enumerate(MALFORMED):
        r = RawConn(a.host)
        if after_connect:
            r.connect("malraw%d" % i, 4)
        r.send(data)
        closed = r.wait_closed(5)
        detail = "still open after 5 s"
        if not closed and a.lossy:
            # the path loses frames, and the reset that dropped it may have been one of them
            closed = r.probe_closed(5)
            detail += ", and 5 s after TCP keep-alive probes (a dropped one answers with a reset)"
        r.close()
        rep.ok("malformed: %s: that client is dropped" % name, closed, detail)
        p = seq_payload("malpub", i)
        pub.publish("mal/ok", p, 1)
        want.append(p)
        loop.until(lambda: sub.payloads() == want and sub5.payloads() == want, 5)
        rep.ok("malformed: %s: the others still exchange messages" % name,
               sub.payloads() == want and sub5.payloads() == want,
               stream_diff(sub.payloads(), want) or stream_diff(sub5.payloads(), want))
    check_no_disconnect(rep, "malformed: no other client disconnected", [sub, sub5, pub])
    loop.close_all()


def main():
    ap = base_args(__doc__)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--subs", type=int, default=5)
    ap.add_argument("--msgs", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--expect-offload", action="store_true")
    ap.add_argument("--expect-passthrough", action="store_true")
    ap.add_argument("--lossy", action="store_true",
                    help="the path to the target loses frames (an impairment stage): a client "
                         "that waited in vain for the close of a dropped connection sends TCP "
                         "keep-alive probes (a lost reset is never sent again)")
    run_case(CASES, ap.parse_args())


if __name__ == "__main__":
    main()
