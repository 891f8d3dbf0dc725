#!/usr/bin/python3
"""Scripted clients for tests/lab/test_plugin.sh: the broker plugin reports subscribers mqoff
does not carry, and mqoff must then pass matching messages to the broker.

Cases (each prints ok/not ok lines):
  second_listener  a subscriber on the broker's second listener (port 1884) gets every matching
                   message, in order, while mqoff offloads the others; once it unsubscribes,
                   it gets nothing more and those messages are offloaded too; `mqoffctl subs`
                   shows its filter as the broker's, `--json` parses
  prepare          before mqoff starts: a persistent session (clean session 0) subscribes and
                   goes offline, straight at the broker on --port
  late             after mqoff started: mqoff offloads at once (no startup hold), the foreign
                   subscriber connected before mqoff gets its messages, the persistent session
                   gets what was published while it was offline when it comes back
  round            one round of checks against a foreign persistent subscriber (port 1884) and
                   a carried one: used after every restart and the queue overflow
  offline_publish  publishes to the foreign persistent session while it is offline (broker
                   restarted): the broker must queue them (they must pass through)
  flood            a foreign client subscribes to many filters at once (the plugin's queue
                   overflows while mqoff is stopped)
  acl_reload       the broker has an acl_file (mqoff --acl-file, no --exclusive): the plugin
                   defers to it (a topic it denies is not delivered); the file changes and only
                   the broker gets SIGHUP: the plugin's reload report makes mqoff drop the old
                   version; a file that does not parse, reloaded: the broker checks no ACL and
                   the plugin must then allow (deferring would deny everything)
"""

import json
import os
import signal
import subprocess
import sys
import time

from mqlab import BROKER, Client, Loop, base_args, run_case


def ctl(a, cmd):
    """mqoffctl CMD --json, parsed."""
    out = subprocess.run([a.mqoffctl, "--control", a.control, cmd, "--json"], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    return json.loads(out)


def stat(a, name):
    return ctl(a, "stats")["stats"].get(name, 0)


def offloaded(a):
    return stat(a, "mqoff_publishes_offloaded_total")


def foreign_pt(a):
    """PUBLISHes passed to the broker, whatever the first reason found (a publisher whose
    message went to the broker sends the next ones there too until it arrived: ordering)."""
    return stat(a, "mqoff_publishes_received_total") - offloaded(a)


def broker_subs(a, cid):
    return sorted(s["filter"] for s in ctl(a, "subs")["subscriptions"]
                  if s["client"] == cid and s["origin"] == "broker")


def connect(loop, rep, cls, what):
    for c in cls:
        c.connect()
    ok = loop.until(lambda: all(c.connack is not None for c in cls), 10)
    return rep.ok("%s: connected" % what, ok and all(c.connected() for c in cls),
                  [c.connack for c in cls])


def sub(loop, rep, c, filters, qos, what):
    mid = c.subscribe(filters, qos)
    return rep.ok("%s: SUBACK" % what, loop.until(lambda: mid in c.subacks, 10), c.cid)


def pub(loop, p, items):
    """Publishes (topic, payload, qos) in order and waits until they are sent and acked.
    p: one publisher, or a dict topic prefix -> publisher. A publisher whose message went
    through the broker waits for it before the offload delivers its next one (ordering), so
    the tests give the topics the broker handles a publisher of their own."""
    pubs = p if isinstance(p, dict) else {"": p}
    mids = []
    for t, m, q in items:
        c = next(c for pre, c in sorted(pubs.items(), key=lambda x: -len(x[0]))
                 if t.startswith(pre))
        mids.append((c, c.publish(t, m, q), q))
    loop.until(lambda: all(q == 0 or mid in c.acked for c, mid, q in mids) and
               not any(c.c.want_write() for c in pubs.values()), 20)


def got(c, prefix):
    return [m.payload.decode() for m in c.msgs if m.topic.startswith(prefix)]


def mqoffctl_all(a, rep):
    """Every mqoffctl command, human and --json: the carried client is bound to its broker
    connection, and with the view synced nothing stops all offload (no --exclusive given)."""
    for cmd in ("status", "subs", "conns", "stats", "config"):
        h = subprocess.run([a.mqoffctl, "--control", a.control, cmd], capture_output=True,
                           text=True, timeout=10)
        rep.ok("mqoffctl %s: human output" % cmd, h.returncode == 0 and h.stdout.strip(),
               (h.returncode, h.stderr[-200:]))
        d = ctl(a, cmd)
        rep.ok("mqoffctl %s --json: ok" % cmd, d.get("ok") is True and d.get("op") == cmd, d)
    st = ctl(a, "status")
    rep.eq("mqoffctl status: no hold while the view is synced", st["holds"], [])
    rep.eq("mqoffctl config: mode", ctl(a, "config")["config"].get("mode"), a.target)
    conns = {c["client"]: c for c in ctl(a, "conns")["connections"]}
    rep.ok("mqoffctl conns: the carried subscriber is bound to its broker connection",
           conns.get("sl-carried", {}).get("broker_conn", 0) > 0, conns.get("sl-carried"))


def second_listener(a, rep):
    loop = Loop()
    f = Client(loop, BROKER, "sl-foreign", port=1884)
    c = Client(loop, a.host, "sl-carried")
    p = {"sl/": Client(loop, a.host, "sl-pub"), "only/": Client(loop, a.host, "only-pub")}
    if not connect(loop, rep, [f, c] + list(p.values()), "second listener"):
        return
    sub(loop, rep, f, "sl/#", 1, "foreign subscriber on port 1884")
    sub(loop, rep, c, [("sl/#", 1), ("only/#", 1)], 1, "carried subscriber")
    loop.run(0.3)  # the plugin's report is written before the SUBACK: this is margin only
    rep.eq("mqoffctl subs: the foreign filter is the broker's", broker_subs(a, "sl-foreign"),
           ["sl/#"])
    human = subprocess.run([a.mqoffctl, "--control", a.control, "subs"], capture_output=True,
                           text=True, timeout=10).stdout
    rep.ok("mqoffctl subs (human): lists it", "sl-foreign" in human and "broker" in human, human)
    mqoffctl_all(a, rep)
    o0, f0 = offloaded(a), foreign_pt(a)
    items = []
    for i in range(40):
        items.append(("sl/a" if i % 2 == 0 else "only/a", "m%d" % i, i % 4 // 2))
    pub(loop, p, items)
    want_sl = ["m%d" % i for i in range(0, 40, 2)]
    want_only = ["m%d" % i for i in range(1, 40, 2)]
    loop.until(lambda: len(got(f, "sl/")) >= 20 and len(c.msgs) >= 40, 10)
    rep.eq("foreign subscriber: every matching message, in order", got(f, "sl/"), want_sl)
    rep.eq("carried subscriber: sl/a in order", got(c, "sl/"), want_sl)
    rep.eq("carried subscriber: only/a in order", got(c, "only/"), want_only)
    o1, f1 = offloaded(a), foreign_pt(a)
    rep.eq("only/a offloaded, sl/a not", o1 - o0, 20)
    rep.eq("sl/a passed to the broker for the foreign subscriber", f1 - f0, 20)
    rep.ok("the first reason: a subscriber the broker reports",
           stat(a, 'mqoff_publishes_passed_through_total{reason="broker_subscriber"}') >= 1)
    mid = f.unsubscribe("sl/#")
    rep.ok("foreign subscriber: UNSUBACK", loop.until(lambda: mid in f.unsubacks, 10))
    loop.run(0.3)
    rep.eq("mqoffctl subs: the foreign filter is gone", broker_subs(a, "sl-foreign"), [])
    pub(loop, p, [("sl/a", "n%d" % i, i % 2) for i in range(20)])
    loop.until(lambda: len(got(c, "sl/")) >= 40, 10)
    loop.run(0.5)
    rep.eq("after it unsubscribed: the foreign subscriber gets nothing more", got(f, "sl/"),
           want_sl)
    rep.eq("after it unsubscribed: the carried subscriber gets them in order",
           got(c, "sl/")[20:], ["n%d" % i for i in range(20)])
    o2 = offloaded(a)
    rep.ok("after it unsubscribed: sl/a offloaded (%d)" % (o2 - o1), o2 - o1 >= 20, (o1, o2))
    loop.close_all()


def prepare(a, rep):
    loop = Loop()
    ps = Client(loop, BROKER, "late-ps", clean=False, port=a.port)
    if not connect(loop, rep, [ps], "prepare"):
        return
    sub(loop, rep, ps, "late/p/#", 1, "persistent session")
    ps.disconnect()
    loop.run(0.2)
    loop.close_all()


def late(a, rep):
    loop = Loop()
    o = Client(loop, a.host, "late-carried")
    p = {"late/o/": Client(loop, a.host, "late-pub"), "late/": Client(loop, a.host, "late-pub2")}
    if not connect(loop, rep, [o] + list(p.values()), "late start"):
        return
    sub(loop, rep, o, "late/o/#", 1, "carried subscriber")
    o0 = offloaded(a)
    items = []
    for i in range(10):
        items += [("late/o/x", "o%d" % i, i % 2), ("late/f/x", "f%d" % i, 1),
                  ("late/p/x", "p%d" % i, 1)]
    pub(loop, p, items)
    loop.until(lambda: len(o.msgs) >= 10, 10)
    rep.eq("carried subscriber: every message in order", got(o, "late/o/"),
           ["o%d" % i for i in range(10)])
    o1 = offloaded(a)
    rep.ok("offloaded at once, no startup hold (%d)" % (o1 - o0), o1 - o0 >= 10, (o0, o1))
    ps = Client(loop, a.host, "late-ps", clean=False)
    if connect(loop, rep, [ps], "persistent session back through mqoff"):
        rep.eq("persistent session: present", ps.connack[1], 1)
        loop.until(lambda: len(ps.msgs) >= 10, 10)
        loop.run(0.3)
        rep.eq("persistent session: what was published while it was offline, in order",
               got(ps, "late/p/"), ["p%d" % i for i in range(10)])
    loop.close_all()


def round_(a, rep):
    """A foreign persistent subscriber (1884) and a carried one; a.tag names the round."""
    loop = Loop()
    f = Client(loop, BROKER, "rs-foreign", port=1884, clean=False)
    c = Client(loop, a.host, "rs-carried")
    p = {"rs/f/": Client(loop, a.host, "rs-pub"), "rs/o/": Client(loop, a.host, "rs-pub-o")}
    t = a.tag
    if not connect(loop, rep, [f, c] + list(p.values()), "%s" % t):
        return
    queued = []
    if a.expect_queued:
        # published while it was offline (offline_publish): the broker kept them for it
        loop.until(lambda: len(got(f, "rs/f/")) >= a.expect_queued, 10)
        queued = got(f, "rs/f/")
        rep.eq("%s: the foreign persistent session got what was queued for it, in order" % t,
               queued, ["q%d" % i for i in range(a.expect_queued)])
    sub(loop, rep, f, "rs/f/#", 1, "%s: foreign subscriber" % t)
    sub(loop, rep, c, "rs/o/#", 1, "%s: carried subscriber" % t)
    loop.run(0.3)
    o0, f0 = offloaded(a), foreign_pt(a)
    items = []
    for i in range(20):
        items += [("rs/f/x", "%s-f%d" % (t, i), i % 2), ("rs/o/x", "%s-o%d" % (t, i), i % 2)]
    pub(loop, p, items)
    loop.until(lambda: len(got(f, "rs/f/")) >= 20 + len(queued) and len(c.msgs) >= 20, 10)
    loop.run(0.2)
    rep.eq("%s: foreign subscriber gets its messages, in order" % t, got(f, "rs/f/")[len(queued):],
           ["%s-f%d" % (t, i) for i in range(20)])
    rep.eq("%s: carried subscriber gets its messages, in order" % t, got(c, "rs/o/"),
           ["%s-o%d" % (t, i) for i in range(20)])
    o1, f1 = offloaded(a), foreign_pt(a)
    rep.eq("%s: offloaded for the carried one" % t, o1 - o0, 20)
    rep.eq("%s: passed to the broker for the foreign one" % t, f1 - f0, 20)
    f.disconnect()  # stays subscribed (persistent), offline
    loop.run(0.2)
    loop.close_all()


def offline_publish(a, rep):
    loop = Loop()
    p = Client(loop, a.host, "rs-pub2")
    if not connect(loop, rep, [p], "offline publish"):
        return
    f0 = foreign_pt(a)
    pub(loop, p, [("rs/f/x", "q%d" % i, 1) for i in range(a.count)])
    loop.run(0.2)
    f1 = foreign_pt(a)
    rep.eq("publishes to an offline session the broker restored pass through", f1 - f0, a.count)
    rep.ok("the first reason: a session the broker holds offline",
           stat(a, 'mqoff_publishes_passed_through_total{reason="held_session"}') >= 1)
    loop.close_all()


def flood(a, rep):
    loop = Loop()
    f = Client(loop, BROKER, "flood", port=1884)
    if not connect(loop, rep, [f], "flood"):
        return
    mids = []
    for k in range(0, a.count, 500):
        mids.append(f.subscribe([("fl/%d" % i, 0) for i in range(k, min(k + 500, a.count))], 0))
    rep.ok("flood: %d filters subscribed" % a.count,
           loop.until(lambda: all(m in f.subacks for m in mids), 20))
    # stays connected: the test checks, after the resync, that its filters are known
    print("# flood subscriber connected", flush=True)
    loop.until(lambda: False, a.hold)
    loop.close_all()


def flood_check(a, rep):
    loop = Loop()
    p = Client(loop, a.host, "fl-pub")
    if not connect(loop, rep, [p], "after the resync"):
        return
    n = len(broker_subs(a, "flood"))
    rep.eq("after the resync: mqoff knows the flood client's filters", n, a.count)
    f0 = foreign_pt(a)
    pub(loop, p, [("fl/%d" % (a.count - 1), "x", 0)])
    loop.run(0.2)
    rep.ok("after the resync: a message for the last filter passes through",
           foreign_pt(a) - f0 >= 1)
    loop.close_all()


def reason(a, r):
    return stat(a, 'mqoff_publishes_passed_through_total{reason="%s"}' % r)


def acl_reload(a, rep):
    loop = Loop()
    s = Client(loop, a.host, "ac-sub")
    p = {"ac/%s/" % k: Client(loop, a.host, "ac-pub-" + k) for k in "abc"}
    if not connect(loop, rep, [s] + list(p.values()), "acl_file"):
        return
    plug = ctl(a, "status")["plugin"]
    rep.eq("acl_file: the plugin defers to it", plug.get("acl"), "defer")
    sub(loop, rep, s, "ac/#", 1, "acl_file: subscriber")
    loop.run(0.3)

    def until_stats(what, cond):
        """Waits (up to 10 s) for cond(stats): mqoff saw the file change or the reload."""
        t = time.monotonic() + 10
        while True:
            st = ctl(a, "stats")["stats"]
            if cond(st) or time.monotonic() > t:
                return rep.ok("%s" % what, cond(st), {k: v for k, v in st.items()
                                                       if "acl" in k or "reload" in k})
            loop.run(0.1)

    def write(text):
        """Renamed over the file, as editors do: no moment with an empty file (an empty
        acl_file is a version of its own, one that denies everything)."""
        with open(a.acl + ".new", "w") as f:
            f.write(text)
        os.chmod(a.acl + ".new", 0o644)
        os.rename(a.acl + ".new", a.acl)

    def reloaded(n):
        return lambda st: st.get("mqoff_broker_reloads_total") == n

    def phase(tag, topics, want):
        """Publishes 10 messages on each of topics; s must get them when want[topic], else none.
        Returns (offloaded, passed through, {reason: how many had it as first reason}): after a
        publisher's first message passed through, the next ones wait for it (ordering)."""
        r0 = {r: reason(a, r) for r in ("acl_changed", "write_denied", "acl_broken")}
        o0, f0 = offloaded(a), foreign_pt(a)
        s.msgs.clear()
        items = []
        for i in range(10):
            items += [("ac/%s/x" % k, "%s-%s%d" % (tag, k, i), i % 2) for k in topics]
        pub(loop, p, items)
        n = sum(10 for k in topics if want[k])
        loop.until(lambda: len(s.msgs) >= n, 10)
        loop.run(0.3)  # anything not meant for it would arrive by now
        for k in topics:
            rep.eq("%s: ac/%s/x %s" % (tag, k, "delivered in order" if want[k] else
                                         "not delivered"), got(s, "ac/%s/" % k),
                   ["%s-%s%d" % (tag, k, i) for i in range(10)] if want[k] else [])
        return (offloaded(a) - o0, foreign_pt(a) - f0,
                {r: reason(a, r) - v for r, v in r0.items()})

    # acl v1 allows ac/a and ac/b: ac/c is refused by the broker's acl_file (the plugin defers)
    off, pt, d = phase("v1", "abc", {"a": 1, "b": 1, "c": 0})
    rep.eq("v1: ac/a and ac/b offloaded", off, 20)
    rep.ok("v1: ac/c passed to the broker, which refuses it", pt == 10 and d["write_denied"],
           (pt, d))
    # v2 drops ac/b: until the broker reloads, it may use either (acl_changed)
    write("topic readwrite ac/a/#\n")
    until_stats("v2 written: mqoff holds both versions",
                lambda st: st.get("mqoff_acl_versions") == 2)
    off, pt, d = phase("v2 not reloaded", "ab", {"a": 1, "b": 1})
    rep.eq("v2 not reloaded: ac/a offloaded", off, 10)
    rep.ok("v2 not reloaded: ac/b to the broker (versions disagree)",
           pt == 10 and d["acl_changed"], (pt, d))
    # only the broker gets SIGHUP: its plugin tells mqoff
    os.kill(a.broker_pid, signal.SIGHUP)
    until_stats("broker reloaded: the plugin's report makes v2 the only version",
                lambda st: reloaded(1)(st) and st.get("mqoff_acl_versions") == 1)
    off, pt, d = phase("v2 reloaded", "ab", {"a": 1, "b": 0})
    rep.eq("v2 reloaded: ac/a offloaded", off, 10)
    rep.ok("v2 reloaded: ac/b refused by both (write_denied, not acl_changed)",
           pt == 10 and d["write_denied"] and not d["acl_changed"], (pt, d))
    # a file that does not parse, reloaded: Mosquitto 2.0.11 checks no ACL at all; a plugin
    # that deferred would make it deny everything
    write("topic readwrite ac/a/#\nbogus line\n")
    os.kill(a.broker_pid, signal.SIGHUP)
    until_stats("broken file reloaded: mqoff knows no version",
                lambda st: reloaded(2)(st) and st.get("mqoff_acl_versions") == 0)
    off, pt, d = phase("broken reloaded", "abc", {"a": 1, "b": 1, "c": 1})
    rep.ok("broken reloaded: nothing offloaded, every PUBLISH to the broker (acl_broken)",
           off == 0 and pt == 30 and d["acl_broken"], (off, pt, d))
    loop.close_all()


CASES = {"second_listener": second_listener, "prepare": prepare, "late": late, "round": round_,
         "offline_publish": offline_publish, "flood": flood, "flood_check": flood_check,
         "acl_reload": acl_reload}

if __name__ == "__main__":
    ap = base_args(__doc__)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--control", required=True)
    ap.add_argument("--mqoffctl", required=True)
    ap.add_argument("--tag", default="round")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--expect-queued", type=int, default=0)
    ap.add_argument("--hold", type=float, default=30)
    ap.add_argument("--acl", help="the broker's acl_file (acl_reload)")
    ap.add_argument("--broker-pid", type=int, help="the broker's PID (acl_reload)")
    run_case(CASES, ap.parse_args())
