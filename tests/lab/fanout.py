#!/usr/bin/python3
"""Fan-out: N subscribers in one process, P publishers, K messages each with sequence numbers.

Checks that every subscriber got every message exactly once, in publish order per publisher,
at QoS min(published, granted), and that nobody was disconnected.
"""

from mqlab import (Client, Loop, Reporter, base_args, check_no_disconnect, check_subscribers,
                   connect_all, parse_seq, seq_payload, subscribe_all)


def main():
    ap = base_args(__doc__)
    ap.add_argument("--subs", type=int, default=10)
    ap.add_argument("--pubs", type=int, default=1)
    ap.add_argument("--msgs", type=int, default=100, help="messages per publisher")
    ap.add_argument("--qos", type=int, default=0, help="publish QoS")
    ap.add_argument("--sub-qos", type=int, default=None, help="subscription QoS (default: --qos)")
    ap.add_argument("--filter", default="fan/#")
    ap.add_argument("--topic", default="fan/t")
    ap.add_argument("--protos", default="4", help="comma list cycled over clients: 3,4,5")
    ap.add_argument("--payload", type=int, default=0, help="pad payloads to this size")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    sub_qos = a.qos if a.sub_qos is None else a.sub_qos
    protos = [int(p) for p in a.protos.split(",")]
    name = a.name or "fanout %d pub -> %d sub, %d msg, QoS %d%s%s%s" % (
        a.pubs, a.subs, a.msgs, a.qos,
        " (granted %d)" % sub_qos if sub_qos != a.qos else "",
        ", %d-byte payload" % a.payload if a.payload else "",
        ", MQTT %s" % "/".join({3: "3.1", 4: "3.1.1", 5: "5"}[p] for p in protos) if protos != [4] else "")
    rep = Reporter(a.target)
    loop = Loop()

    subs = [Client(loop, a.host, "fs%03d" % i, protos[i % len(protos)], port=a.port)
            for i in range(a.subs)]
    bad = connect_all(loop, subs)
    if not rep.ok(name + ": subscribers connected", not bad, "%d without CONNACK" % len(bad)):
        rep.done()
    acks = subscribe_all(loop, subs, a.filter, sub_qos)
    wrong = [s.cid for s, codes in acks.items() if codes != [sub_qos]]
    if not rep.ok(name + ": SUBACKs grant QoS %d" % sub_qos, not wrong, "wrong/missing SUBACK: %s" % wrong[:5]):
        rep.done()

    pubs = [Client(loop, a.host, "fp%02d" % i, protos[(i + 1) % len(protos)], port=a.port)
            for i in range(a.pubs)]
    bad = connect_all(loop, pubs)
    if not rep.ok(name + ": publishers connected", not bad, "%d without CONNACK" % len(bad)):
        rep.done()

    total = a.msgs * a.pubs
    mids = []
    # Publishers interleave message by message, every publisher's sequence in order.
    for seq in range(a.msgs):
        for p in pubs:
            mids.append((p, p.publish(a.topic, seq_payload(p.cid, seq, a.payload), a.qos)))
        if seq % 50 == 49:
            loop.step(0)
    done = loop.until(lambda: all(len(s.msgs) >= total for s in subs), a.timeout)
    loop.run(0.3)  # anything extra (a duplicate) shows up now

    want = {p.cid: [seq_payload(p.cid, i, a.payload) for i in range(a.msgs)] for p in pubs}

    def per_pub(s):
        return [m.payload for m in s.msgs]

    if a.pubs == 1:
        check_subscribers(rep, name + ": every subscriber got every message once, in order",
                          subs, lambda s: want[pubs[0].cid])
    else:
        # Between publishers no order is promised: compare per publisher.
        bad = []
        for s in subs:
            got = {}
            for m in s.msgs:
                got.setdefault(parse_seq(m.payload)[0], []).append(m.payload)
            for p in pubs:
                if got.get(p.cid, []) != want[p.cid]:
                    bad.append("%s from %s: got %d" % (s.cid, p.cid, len(got.get(p.cid, []))))
            if set(got) - set(want):
                bad.append("%s: unknown publisher" % s.cid)
        rep.ok(name + ": every subscriber got every message once, in order per publisher",
               not bad, "; ".join(bad[:3]))
    qos_want = min(a.qos, sub_qos)
    badq = [s.cid for s in subs if any(m.qos != qos_want for m in s.msgs)]
    rep.ok(name + ": delivered at QoS %d" % qos_want, not badq, "wrong QoS at %s" % badq[:5])
    badr = [s.cid for s in subs if any(m.retain or m.topic != a.topic for m in s.msgs)]
    rep.ok(name + ": topic intact, retain flag 0", not badr, "at %s" % badr[:5])
    if a.qos:
        loop.until(lambda: all(m in p.acked for p, m in mids), 10)
        rep.ok(name + ": publishers got every PUBACK", all(m in p.acked for p, m in mids),
               "%d missing" % sum(1 for p, m in mids if m not in p.acked))
    check_no_disconnect(rep, name + ": nobody disconnected", subs + pubs)
    if not done:
        rep.note("timed out waiting for %d messages per subscriber" % total)
    loop.close_all()
    rep.done()


if __name__ == "__main__":
    main()
