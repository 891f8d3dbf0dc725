#!/usr/bin/python3
"""A burst for `make demo`: one publisher, N subscribers, K messages at a fixed rate.

  demo_burst.py run --host ADDR --label NAME --out FILE.json [--subs 100 --msgs 200 --rate 50 --qos 0]
  demo_burst.py report FILE.json...

Every payload carries time.monotonic_ns() taken just before the PUBLISH is written; every
client runs in this one process in the lab's cli namespace, so publisher and subscribers share
the clock. For each message the latency is publish -> its arrival at the *last* subscriber.
Clients are raw sockets (MQTT 3.1.1 built by hand, tests/lab/mqlab.py) driven by epoll, and a
subscriber's arrival time is read right after recv(): the figures measure the path through
the broker or the offload, not the client library.
"""

import argparse
import json
import os
import selectors
import struct
import sys
import time

# The lab's hand-built MQTT packets and raw connections.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lab"))
from mqlab import RawConn, publish_fields, publish_pkt, subscribe_pkt  # noqa: E402

HDR = struct.Struct("!IQ")      # sequence number, monotonic ns at publish


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


class Sub:
    """A QoS 0 subscriber on a raw socket: arrival time is taken right at recv(), before any
    parsing, so the figure is the network path's, not this interpreter's."""

    def __init__(self, host, cid, qos):
        self.r = RawConn(host)
        if self.r.connect(cid, 4) != 0:
            raise RuntimeError("%s: CONNACK refused" % cid)
        self.r.send(subscribe_pkt(1, [("demo/burst", qos)]))
        p = self.r.read_packet(5)
        if p is None or p[0] != 0x90 or p[1][2:] != bytes([qos]):
            raise RuntimeError("%s: SUBACK %r" % (cid, p))
        self.r.s.setblocking(False)
        self.arrivals = []      # (seq, t_publish_ns, t_arrival_ns)

    def on_readable(self):
        try:
            d = self.r.s.recv(1 << 20)
        except BlockingIOError:
            return
        t = time.monotonic_ns()
        self.r.buf += d
        while True:
            p = self.r._parse()
            if p is None:
                break
            if p[0] >> 4 == 3:
                payload = publish_fields(p[0], p[1])[4]
                seq, t_pub = HDR.unpack_from(payload)
                self.arrivals.append((seq, t_pub, t))


def run(a):
    subs = [Sub(a.host, "demo-sub%03d" % i, a.qos) for i in range(a.subs)]
    pub = RawConn(a.host)
    if pub.connect("demo-pub", 4) != 0:
        raise RuntimeError("publisher: CONNACK refused")
    sel = selectors.DefaultSelector()
    for s in subs:
        sel.register(s.r.s, selectors.EVENT_READ, s)

    def pump(timeout):
        for key, _ in sel.select(timeout):
            key.data.on_readable()

    pad = b"x" * max(0, a.payload - HDR.size)
    period = 1.0 / a.rate
    pump(0.3)
    t0 = time.monotonic() + 0.05
    sent = 0
    while sent < a.msgs:
        now = time.monotonic()
        due = t0 + sent * period
        if now >= due:
            pub.send(publish_pkt("demo/burst", HDR.pack(sent, time.monotonic_ns()) + pad, a.qos, pid=sent + 1))
            sent += 1
            continue
        pump(min(0.005, due - now))
    want = a.msgs * a.subs
    end = time.monotonic() + a.drain
    while sum(len(s.arrivals) for s in subs) < want and time.monotonic() < end:
        pump(0.05)
    pump(0.2)

    last = {}          # seq -> latest arrival (ns) over all subscribers
    stamp = {}
    deliveries = dup = 0
    for s in subs:
        seen = set()
        for seq, t_pub, t in s.arrivals:
            deliveries += 1
            if seq in seen:
                dup += 1
            seen.add(seq)
            stamp[seq] = t_pub
            last[seq] = max(last.get(seq, 0), t)
    lat = sorted((last[q] - stamp[q]) / 1e6 for q in last)
    res = {
        "label": a.label, "host": a.host, "subs": a.subs, "msgs": a.msgs, "rate": a.rate,
        "qos": a.qos, "payload": max(a.payload, HDR.size),
        "expected": want, "deliveries": deliveries, "duplicates": dup,
        "messages_seen": len(last),
        "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": lat[-1] if lat else None,
    }
    for s in subs:
        s.r.close()
    pub.close()
    with open(a.out, "w") as f:
        json.dump(res, f)
    print("demo: %-7s %d/%d deliveries, publish->last subscriber p50 %.2f ms p99 %.2f ms max %.2f ms"
          % (a.label, deliveries, want, res["p50_ms"] or 0, res["p99_ms"] or 0, res["max_ms"] or 0))
    return 0


def report(files):
    rs = []
    for fn in files:
        with open(fn) as f:
            rs.append(json.load(f))
    if not rs:
        return 1
    r0 = rs[0]
    print()
    print("burst: 1 publisher -> %d subscribers, %d messages at %d msg/s, QoS %d, %d-byte payload"
          % (r0["subs"], r0["msgs"], r0["rate"], r0["qos"], r0["payload"]))
    print("latency: publish -> arrival at the last subscriber, per message (shared monotonic clock)")
    w = 14
    print("%-26s" % "" + "".join("%*s" % (w, r["label"]) for r in rs))

    def row(name, fmt, key):
        cells = []
        for r in rs:
            v = r.get(key)
            cells.append("%*s" % (w, "-" if v is None else fmt(v, r)))
        print("%-26s" % name + "".join(cells))
    row("deliveries", lambda v, r: "%d/%d" % (v, r["expected"]), "deliveries")
    row("duplicates", lambda v, r: "%d" % v, "duplicates")
    row("latency p50", lambda v, r: "%.2f ms" % v, "p50_ms")
    row("latency p99", lambda v, r: "%.2f ms" % v, "p99_ms")
    row("latency max", lambda v, r: "%.2f ms" % v, "max_ms")
    if len(rs) > 1 and r0.get("p50_ms"):
        for r in rs[1:]:
            if r.get("p50_ms"):
                print("%s / %s p50: %.2fx   p99: %.2fx" % (r["label"], r0["label"], r["p50_ms"] / r0["p50_ms"],
                                                          r["p99_ms"] / r0["p99_ms"] if r0["p99_ms"] else 0))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    r = sp.add_parser("run")
    r.add_argument("--host", required=True)
    r.add_argument("--label", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--subs", type=int, default=100)
    r.add_argument("--msgs", type=int, default=200)
    r.add_argument("--rate", type=float, default=50)
    r.add_argument("--qos", type=int, default=0)
    r.add_argument("--payload", type=int, default=64)
    r.add_argument("--drain", type=float, default=10, help="seconds to wait for stragglers")
    p = sp.add_parser("report")
    p.add_argument("files", nargs="+")
    a = ap.parse_args()
    sys.exit(run(a) if a.cmd == "run" else report(a.files))


if __name__ == "__main__":
    main()
