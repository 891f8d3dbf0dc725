"""Steady QoS 0 and QoS 1 load while mqoff restarts (test_restart.sh).

Two publishers (QoS 0 on rs/q0, QoS 1 on rs/q1) send numbered messages at a steady rate for
--secs seconds; two subscribers of rs/# (one at QoS 0, one at QoS 1) record what arrives. The
shell restarts mqoff meanwhile (a takeover, or kill -9 and a new start). Checked: every message
exactly once and in order per lane, no client disconnected (--reconnect: the ones that did
came back within --max-reconnect seconds, and clean sessions may lose what was sent while they
were away, but nothing else). Printed: the longest silence of each subscriber (the outage as
clients see it), and the losses.
"""

import sys
import time

from mqlab import (Client, Loop, base_args, connect_all, lane_diff, parse_seq, seq_payload,
                   subscribe_all, Reporter)


def main():
    ap = base_args("steady load across restarts")
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--rate", type=int, default=200, help="messages per second per publisher")
    ap.add_argument("--tag", default="restart")
    ap.add_argument("--reconnect", action="store_true",
                    help="disconnects are expected: clients reconnect (a crash)")
    ap.add_argument("--max-reconnect", type=float, default=2.0)
    a = ap.parse_args()
    rep = Reporter(a.target)
    loop = Loop()
    pubs = [Client(loop, a.host, "rs-pub%d" % q, port=a.port, keepalive=60) for q in (0, 1)]
    subs = [Client(loop, a.host, "rs-sub%d" % q, port=a.port, keepalive=60) for q in (0, 1)]
    bad = connect_all(loop, pubs + subs)
    if not rep.ok("%s: clients connect" % a.tag, not bad, "no CONNACK: %s" % [c.cid for c in bad]):
        rep.done()
    for q, s in enumerate(subs):
        subscribe_all(loop, [s], "rs/#", qos=q)
    sent = {0: [], 1: []}
    t0 = time.monotonic()
    period = 1.0 / a.rate
    n = 0
    down = {}  # client -> (since, back)
    while time.monotonic() - t0 < a.secs:
        due = int((time.monotonic() - t0) / period)
        while n < due:
            for q, p in enumerate(pubs):
                if not p.connected() or p.c.socket() is None:
                    continue
                pl = seq_payload(p.cid, n)
                p.publish("rs/q%d" % q, pl, qos=q)
                sent[q].append((time.monotonic(), pl))
            n += 1
        loop.step(0.002)
        if a.reconnect:
            for c in pubs + subs:
                if c.c.socket() is None and c not in down:
                    down[c] = [time.monotonic(), None]
                    c.connack = None
                    try:
                        c.c.reconnect()
                    except Exception:
                        pass
                elif c in down and down[c][1] is None and c.connected():
                    down[c][1] = time.monotonic()
                    if c in subs:
                        c.subscribe("rs/#", qos=subs.index(c))
                elif c in down and down[c][1] is None and c.c.socket() is None and \
                        time.monotonic() - down[c][0] > 0.2:
                    try:
                        c.c.reconnect()
                    except Exception:
                        pass
    # the QoS 1 publisher's messages all acknowledged, the subscribers drained
    loop.until(lambda: len(pubs[1].acked) >= len(sent[1]), 10)
    want_n = {s: 0 for s in subs}
    loop.run(1.0)
    for s in subs:
        gaps = [b.t - a_.t for a_, b in zip(s.msgs, s.msgs[1:])]
        worst = max(gaps) / 1e6 if gaps else -1
        rep.note("%s %s: %d messages, longest silence %.1f ms" % (a.tag, s.cid, len(s.msgs), worst))
        want_n[s] = worst
    if not a.reconnect:
        for c in pubs + subs:
            rep.ok("%s: %s never disconnected" % (a.tag, c.cid), not c.disconnects,
                   "disconnects: %s" % c.disconnects[:3])
        want = [("rs/q%d" % q, pl, min(q, 1)) for q in (0, 1) for _, pl in sent[q]]
        for qs, s in enumerate(subs):
            w = [(t, pl, min(q, qs)) for t, pl, q in want]
            d = lane_diff([(m.topic, m.payload, m.qos) for m in s.msgs], w)
            rep.ok("%s: %s got every message exactly once, in order (%d)" % (a.tag, s.cid, len(w)),
                   d is None, d)
        rep.ok("%s: every QoS 1 message acknowledged" % a.tag,
               len(pubs[1].acked) >= len(sent[1]), "%d of %d" % (len(pubs[1].acked), len(sent[1])))
    else:
        for c in pubs + subs:
            if c in down:
                since, back = down[c]
                dt = (back - since) if back else None
                rep.note("%s %s: down at +%.2f s, back after %s" % (
                    a.tag, c.cid, since - t0, "%.2f s" % dt if dt is not None else "never"))
                rep.ok("%s: %s back within %.0f s" % (a.tag, c.cid, a.max_reconnect),
                       dt is not None and dt <= a.max_reconnect, "back after %s" % dt)
        # per lane: in order, no duplicates; what is missing is only what was sent while a
        # subscriber or the QoS 0 publisher was away (clean sessions)
        for qs, s in enumerate(subs):
            for q in (0, 1):
                got = [parse_seq(m.payload)[1] for m in s.msgs if m.topic == "rs/q%d" % q]
                ordered = all(x < y for x, y in zip(got, got[1:]))
                rep.ok("%s: %s lane q%d in order, no duplicates" % (a.tag, s.cid, q), ordered,
                       "first problem near %s" % next(((x, y) for x, y in zip(got, got[1:])
                                                      if x >= y), None))
                lost = len(sent[q]) - len(set(got))
                rep.note("%s %s lane q%d: %d of %d received, %d lost" % (
                    a.tag, s.cid, q, len(set(got)), len(sent[q]), lost))
    loop.close_all()
    rep.done()


if __name__ == "__main__":
    main()
