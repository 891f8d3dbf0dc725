#!/usr/bin/python3
"""Clients for tests/lab/test_bridged.sh: two brokers joined by a Mosquitto bridge, an mqoff in
front of each. Subscribers on both sides (through their side's mqoff) must get every message
of a publisher on either side exactly once and in order; topics the bridge does not carry are
offloaded.
"""

import json
import subprocess

from mqlab import Client, Loop, base_args, run_case


def offloaded(mqoffctl, control):
    out = subprocess.run([mqoffctl, "--control", control, "stats", "--json"], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    return json.loads(out)["stats"]["mqoff_publishes_offloaded_total"]


def payloads(c, prefix):
    return [m.payload.decode() for m in c.msgs if m.topic.startswith(prefix)]


def bridged(a, rep):
    loop = Loop()
    sa = [Client(loop, a.host, "sa%d" % i, port=a.port_a) for i in range(2)]
    sb = [Client(loop, a.host, "sb%d" % i, port=a.port_b) for i in range(2)]
    pa = Client(loop, a.host, "pa", port=a.port_a)
    pl = Client(loop, a.host, "pl", port=a.port_a)
    pb = Client(loop, a.host, "pb", port=a.port_b)
    every = sa + sb + [pa, pl, pb]
    for c in every:
        c.connect()
    if not rep.ok("%s: everybody connected" % a.tag,
                  loop.until(lambda: all(c.connack for c in every), 10) and
                  all(c.connected() for c in every), [c.connack for c in every]):
        return
    mids = [(c, c.subscribe([("br/#", 1), ("loc/#", 1)], 1)) for c in sa + sb]
    rep.ok("%s: SUBACKs" % a.tag, loop.until(lambda: all(m in c.subacks for c, m in mids), 10))
    loop.run(0.5)  # the remote side's bridge subscription is made at its connect already
    o0 = [offloaded(a.mqoffctl, x) for x in (a.control_a, a.control_b)]
    n = a.count
    for i in range(n):
        pa.publish("br/x", "a:%d" % i, i % 2)
        pb.publish("br/y", "b:%d" % i, i % 2)
        pl.publish("loc/x", "l:%d" % i, i % 2)
        if i % 10 == 9:
            loop.run(0.02)
    want_a = ["a:%d" % i for i in range(n)]
    want_b = ["b:%d" % i for i in range(n)]
    want_l = ["l:%d" % i for i in range(n)]
    loop.until(lambda: all(len(payloads(c, "br/")) >= 2 * n for c in sa + sb) and
               all(len(payloads(c, "loc/")) >= n for c in sa), 20)
    loop.run(0.5)  # anything duplicated would arrive by now
    for c in sa + sb:
        side = "A" if c in sa else "B"
        rep.eq("%s: %s (side %s) gets side A's publisher exactly once, in order" % (a.tag, c.cid, side),
               payloads(c, "br/x"), want_a)
        rep.eq("%s: %s (side %s) gets side B's publisher exactly once, in order" % (a.tag, c.cid, side),
               payloads(c, "br/y"), want_b)
    for c in sa:
        rep.eq("%s: %s gets the local topic in order" % (a.tag, c.cid), payloads(c, "loc/"), want_l)
    for c in sb:
        rep.eq("%s: %s gets nothing of the local topic (not bridged)" % (a.tag, c.cid),
               payloads(c, "loc/"), [])
    o1 = [offloaded(a.mqoffctl, x) for x in (a.control_a, a.control_b)]
    rep.eq("%s: side A offloads the local topic, not the bridged one" % a.tag, o1[0] - o0[0], n)
    rep.eq("%s: side B offloads nothing the bridge carries" % a.tag, o1[1] - o0[1], 0)
    loop.close_all()


if __name__ == "__main__":
    ap = base_args(__doc__)
    ap.add_argument("case", choices=["bridged"])
    ap.add_argument("--port-a", type=int, default=1883)
    ap.add_argument("--port-b", type=int, default=1885)
    ap.add_argument("--control-a", required=True)
    ap.add_argument("--control-b", required=True)
    ap.add_argument("--mqoffctl", required=True)
    ap.add_argument("--tag", default="bridged")
    ap.add_argument("--count", type=int, default=100)
    run_case({"bridged": bridged}, ap.parse_args())
