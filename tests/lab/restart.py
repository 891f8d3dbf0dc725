"""Steady QoS 0 and QoS 1 load while mqoff restarts (test_restart.sh).

Two publishers (QoS 0 on rs/q0, QoS 1 on rs/q1) send numbered messages at a steady rate for
--secs seconds; two subscribers of rs/# (one at QoS 0, one at QoS 1) record what arrives. The
shell restarts mqoff meanwhile (a takeover, or kill -9 and a new start). Checked: every message
exactly once and in order per lane, no client disconnected (--reconnect: the ones that did
came back within --max-reconnect seconds, and clean sessions may lose what was sent while they
were away, but nothing else; --resumed-from LOG: the connections the new monitor's LOG says it
resumed never disconnected, and a resumed subscriber whose publisher was resumed too lost
nothing). Printed: the longest silence of each subscriber (the outage as
clients see it), and the losses.
"""

import re
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
    ap.add_argument("--event-at", type=float, default=None,
                    help="seconds after the load started when the shell kills mqoff: "
                         "reconnection times count from there")
    ap.add_argument("--resumed-from", default=None,
                    help="the new monitor's log: the connections it resumed after the kill")
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
    port = {}  # client -> its local port (how the monitor's log names it)
    for c in pubs + subs:
        try:
            port[c] = c.c.socket().getsockname()[1]
        except Exception:
            port[c] = None
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
    loop.run(1.0)
    for s in subs:
        gaps = [b.t - a_.t for a_, b in zip(s.msgs, s.msgs[1:])]
        worst = max(gaps) / 1e6 if gaps else -1
        rep.note("%s %s: %d messages, longest silence %.1f ms" % (a.tag, s.cid, len(s.msgs), worst))
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
        event = t0 + a.event_at if a.event_at is not None else None
        recovered = t0
        resumed = set()
        pat = re.compile(r"resumed after a crash of the previous mqoff \([0-9.]+:([0-9]+)\)")
        if a.resumed_from:
            with open(a.resumed_from, errors="replace") as f:
                for line in f:
                    m = pat.search(line)
                    if m:
                        resumed.add(int(m.group(1)))
        res = [c for c in pubs + subs if port[c] in resumed]
        rep.note("%s: resumed by the new mqoff: %s; reset (bytes in transit at the kill): %s" % (
            a.tag, [c.cid for c in res] or "none",
            [c.cid for c in pubs + subs if c not in res] or "none"))
        for c in res:
            rep.ok("%s: %s resumed: never disconnected" % (a.tag, c.cid), c not in down,
                   "disconnected %.2f s after the kill" % (
                       down[c][0] - (event or t0)) if c in down else "")
        for qs, s in enumerate(subs):
            for q in (0, 1):
                if s not in res or pubs[q] not in res:
                    continue
                got = [m.payload for m in s.msgs if m.topic == "rs/q%d" % q]
                want = [pl for _, pl in sent[q]]
                rep.ok("%s: %s lane q%d resumed end to end: every message once, in order (%d)" % (
                    a.tag, s.cid, q, len(want)), got == want,
                    "got %d, want %d" % (len(got), len(want)))
        for c in pubs + subs:
            if c in res:
                continue
            rep.ok("%s: %s was disconnected (reset) and reconnected" % (a.tag, c.cid),
                   c in down and down[c][1] is not None,
                   "never disconnected" if c not in down else "never came back")
            if c in down:
                since, back = down[c]
                ref = event if event is not None else since
                dt = (back - ref) if back else None
                rep.note("%s %s: disconnected %.2f s after the kill, connected again %s after it" % (
                    a.tag, c.cid, since - ref, "%.2f s" % dt if dt is not None else "never"))
                rep.ok("%s: %s connected again within %.0f s of the kill" % (
                    a.tag, c.cid, a.max_reconnect),
                    dt is not None and dt <= a.max_reconnect, "after %s s" % dt)
                if back:
                    recovered = max(recovered, back)
        # clean sessions: what was sent while a client was away may be lost (QoS 1 may come
        # twice: the publisher sends its unacknowledged messages again); from the time every
        # client is back, every message arrives exactly once, in order
        for qs, s in enumerate(subs):
            for q in (0, 1):
                got = [parse_seq(m.payload)[1] for m in s.msgs if m.topic == "rs/q%d" % q]
                after = [parse_seq(pl)[1] for t, pl in sent[q] if t > recovered + 0.5]
                tail = [g for g in got if after and g >= after[0]]
                rep.ok("%s: %s lane q%d after recovery: every message once, in order (%d)" % (
                    a.tag, s.cid, q, len(after)), tail == after and len(after) > 0,
                    "got %d, want %d; first got %s want %s" % (
                        len(tail), len(after), tail[:1], after[:1]))
                lost = len(sent[q]) - len(set(got))
                dups = len(got) - len(set(got))
                rep.note("%s %s lane q%d: %d of %d received, %d lost, %d twice, %s" % (
                    a.tag, s.cid, q, len(set(got)), len(sent[q]), lost, dups,
                    "in order" if all(x < y for x, y in zip(got, got[1:])) else "reordered"))
    loop.close_all()
    rep.done()


if __name__ == "__main__":
    main()
