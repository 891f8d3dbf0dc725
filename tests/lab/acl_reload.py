#!/usr/bin/python3
"""The broker's acl_file changes while clients are connected, and subscribers mqoff cannot see.

Usage: acl_reload.py CASE --host ADDR --target direct|proxy|monitor --acl PATH
       --broker-pid PID --broker-log PATH [--mqoff-pid PID --mqoff-log PATH]

The broker (tests/lab/test_acl_reload.sh) has password_file + acl_file and a second listener
on port 1884; mqoff (when --mqoff-pid is given) reads the same acl_file. This script edits the
file, sends SIGHUP to the broker ("it reloads") and to mqoff ("the broker reloaded"), and counts
what every subscriber receives in each phase. The expected counts are the broker's own
behaviour (the direct target measures them); every count is printed as
"# measured CASE PHASE: ..." lines.

Users (the same password for all): alice, frank publish; bob, dave, eve read; mark publishes
the markers that end each phase (it may write r/# in every version, dave may always read).
"""

import os
import re
import signal

from mqlab import (Client, Loop, base_args, check_no_disconnect, connect_all, lane_diff, run_case,
                   subscribe_all)

PW = "pw"
TOPIC = "r/x"

# acl_file versions. v1: alice writes, bob and dave read; eve and frank have no rights.
V1 = """# mqoff lab: acl_file shared by Mosquitto and mqoff (--acl-file)
user alice
topic write r/#
user mark
topic write r/#
user bob
topic read r/#
user dave
topic read r/#
"""
NO_ALICE_WRITE = V1.replace("user alice\ntopic write r/#\n", "")
NO_BOB_READ = V1.replace("user bob\ntopic read r/#\n", "")
# rename case: alice loses write, frank gains it
ALICE_OUT_FRANK_IN = NO_ALICE_WRITE + "user frank\ntopic write r/#\n"
BROKEN = V1 + "user bob\nbogus line\n"   # line 11 is not acl_file syntax
BROKEN_LINE = 11


class Ops:
    """File edits and signals, each waiting until the process took it (its log says so)."""

    def __init__(self, a, loop):
        self.a, self.loop = a, loop

    @staticmethod
    def _count(path, pattern):
        try:
            with open(path, errors="replace") as f:
                return len(re.findall(pattern, f.read(), re.M))
        except OSError:
            return 0

    def _wait_log(self, path, pattern, before, timeout=5):
        return self.loop.until(lambda: self._count(path, pattern) > before, timeout)

    def offload(self):
        return self.a.mqoff_pid > 0

    def edit(self, text, how, rep, case, mqoff_says=r"acl_file \S+ changed"):
        """Writes the acl_file: 'inplace' (truncate + write, as cp or a shell redirection do)
        or 'rename' (an editor's save: a new file renamed over it). Waits until mqoff logged
        what it made of it."""
        before = self._count(self.a.mqoff_log, mqoff_says) if self.offload() else 0
        if how == "rename":
            tmp = os.path.join(os.path.dirname(self.a.acl), ".acl.new")
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, self.a.acl)
        else:
            with open(self.a.acl, "w") as f:
                f.write(text)
        if self.offload():
            rep.ok("%s: mqoff noticed the file change (%s)" % (case, how),
                   self._wait_log(self.a.mqoff_log, mqoff_says, before),
                   "no line matching %r in its log" % mqoff_says)
        else:
            self.loop.run(0.3)

    def broker_hup(self, rep, case):
        before = self._count(self.a.broker_log, r"Reloading config\.")
        os.kill(self.a.broker_pid, signal.SIGHUP)
        rep.ok("%s: the broker reloaded" % case,
               self._wait_log(self.a.broker_log, r"Reloading config\.", before),
               "no 'Reloading config.' in its log")
        self.loop.run(0.3)   # it logs before it reads the files

    def mqoff_hup(self, rep, case, says=r"SIGHUP: the broker reloaded"):
        if not self.offload():
            return
        before = self._count(self.a.mqoff_log, says)
        os.kill(self.a.mqoff_pid, signal.SIGHUP)
        rep.ok("%s: mqoff took the SIGHUP" % case, self._wait_log(self.a.mqoff_log, says, before),
               "no line matching %r in its log" % says)


class Case:
    def __init__(self, a, rep, name):
        self.a, self.rep, self.name = a, rep, name
        self.loop = Loop()
        self.ops = Ops(a, self.loop)
        self.clients = []
        self.mark = self.user("mark")

    def user(self, name, cid=None, port=None):
        """A client of user `name`; with a port, straight to the broker on that port."""
        c = Client(self.loop, self.a.broker if port else self.a.host, cid or name, 4,
                   username=name, password=PW, port=port or self.a.port)
        self.clients.append(c)
        return c

    def connect(self, *cls):
        bad = connect_all(self.loop, list(cls))
        return self.rep.ok("%s: %s connected" % (self.name, ", ".join(c.cid for c in cls)), not bad,
                           "refused or no CONNACK: %s" % [c.cid for c in bad])

    def subscribe(self, *subs):
        codes = subscribe_all(self.loop, list(subs), "r/#", 1)
        return self.rep.ok("%s: subscriptions granted" % self.name,
                           all(c == [1] for c in codes.values()), codes)

    def phase(self, label, pubs, want, n=20, sync=None, settle=False):
        """Each publisher in pubs sends n messages (QoS 0 and 1 alternating, the last QoS 1);
        want maps (publisher, subscriber) to the count it must get (0 or n). Waits for the
        publishers' acknowledgements and a marker at `sync` (a reader that may always read),
        then compares: every expected message, in order per QoS lane, and nothing else.
        settle: first wait out mqoff's ordering holds (order_hold_ms, 2 s) on messages the
        broker did not deliver, so the counters show the offload resume."""
        if settle:
            self.loop.run(2.5)
        subs = sorted({s for _, s in want}, key=lambda c: c.cid)
        base = {s: len(s.msgs) for s in subs + ([sync] if sync else [])}
        mids = []
        for i in range(n):
            for p in pubs:
                mids.append((p, p.publish(TOPIC, "%s:%s:%d" % (p.cid, label, i), i % 2)))
        self.loop.until(lambda: all(m in p.acked for p, m in mids), 10)
        marker = ("mark:%s" % label).encode()
        self.mark.publish(TOPIC, marker, 1)
        if sync:
            self.loop.until(lambda: any(m.payload == marker for m in sync.msgs[base[sync]:]), 10)
        self.loop.run(0.5)
        counts = []
        for (p, s), w in sorted(want.items(), key=lambda kv: (kv[0][0].cid, kv[0][1].cid)):
            prefix = ("%s:%s:" % (p.cid, label)).encode()
            got = [(m.topic, m.payload, m.qos) for m in s.msgs[base[s]:] if m.payload.startswith(prefix)]
            expect = [(TOPIC, ("%s:%s:%d" % (p.cid, label, i)).encode(), i % 2)
                      for i in range(n)] if w else []
            d = lane_diff(got, expect)
            self.rep.ok("%s: %s: %s -> %s: %d of %d delivered%s" % (
                self.name, label, p.cid, s.cid, w, n, ", in order" if w else ""), d is None,
                d or "")
            counts.append("%s->%s=%d" % (p.cid, s.cid, len(got)))
        self.rep.note("measured %s %s [%s]: %s" % (self.name, label, self.a.target, " ".join(counts)))

    def done(self):
        check_no_disconnect(self.rep, "%s: no client was disconnected" % self.name, self.clients)
        self.loop.close_all()


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def init(a, rep):
    """Writes the first version of the acl_file (before the broker starts)."""
    with open(a.acl, "w") as f:
        f.write(V1)
    os.chmod(a.acl, 0o644)
    rep.ok("acl_file written", True)


@case
def write_revoked(a, rep):
    """alice's write permission is removed (the file rewritten in place) and the broker
    reloads: nothing more of hers is delivered, on her open connection or a new one, before
    and after mqoff's own SIGHUP."""
    c = Case(a, rep, "write revoked")
    alice, bob, dave = c.user("alice"), c.user("bob"), c.user("dave")
    if not c.connect(c.mark, alice, bob, dave) or not c.subscribe(bob, dave):
        return
    c.phase("before", [alice], {(alice, bob): 20, (alice, dave): 20}, sync=dave)
    c.ops.edit(NO_ALICE_WRITE, "inplace", rep, c.name)
    c.ops.broker_hup(rep, c.name)
    c.phase("broker reloaded", [alice], {(alice, bob): 0, (alice, dave): 0}, sync=dave)
    alice2 = c.user("alice", "alice-new")
    if c.connect(alice2):
        c.phase("broker reloaded, new connection", [alice2], {(alice2, bob): 0, (alice2, dave): 0},
                sync=dave)
    c.ops.mqoff_hup(rep, c.name)
    c.phase("both reloaded", [alice], {(alice, bob): 0, (alice, dave): 0}, sync=dave)
    alice3 = c.user("alice", "alice-newer")
    if c.connect(alice3):
        c.phase("both reloaded, new connection", [alice3], {(alice3, bob): 0, (alice3, dave): 0},
                sync=dave)
    c.done()


@case
def read_revoked(a, rep):
    """bob's read permission is removed and the broker reloads: bob gets nothing more, on his
    open connection or a new one; dave, who may still read, gets everything."""
    c = Case(a, rep, "read revoked")
    alice, bob, dave = c.user("alice"), c.user("bob"), c.user("dave")
    if not c.connect(c.mark, alice, bob, dave) or not c.subscribe(bob, dave):
        return
    c.phase("before", [alice], {(alice, bob): 20, (alice, dave): 20}, sync=dave)
    c.ops.edit(NO_BOB_READ, "inplace", rep, c.name)
    c.ops.broker_hup(rep, c.name)
    c.phase("broker reloaded", [alice], {(alice, bob): 0, (alice, dave): 20}, sync=dave)
    bob2 = c.user("bob", "bob-new")
    if c.connect(bob2) and c.subscribe(bob2):
        c.phase("broker reloaded, new reader connection", [alice],
                {(alice, bob): 0, (alice, bob2): 0, (alice, dave): 20}, sync=dave)
    c.ops.mqoff_hup(rep, c.name)
    c.phase("both reloaded", [alice], {(alice, bob): 0, (alice, bob2): 0, (alice, dave): 20},
            sync=dave, settle=True)
    c.done()


@case
def editor_rename(a, rep):
    """An editor saves the file (a new file renamed over it): alice loses write, frank gains
    it. Until the broker reloads, alice's messages still arrive and frank's do not; after it,
    the reverse; mqoff's SIGHUP changes nothing anyone sees."""
    c = Case(a, rep, "editor rename")
    alice, frank, bob, dave = c.user("alice"), c.user("frank"), c.user("bob"), c.user("dave")
    if not c.connect(c.mark, alice, frank, bob, dave) or not c.subscribe(bob, dave):
        return
    c.phase("before", [alice, frank], {(alice, bob): 20, (frank, bob): 0, (alice, dave): 20,
                                       (frank, dave): 0}, sync=dave)
    c.ops.edit(ALICE_OUT_FRANK_IN, "rename", rep, c.name)
    c.phase("file renamed over, broker not reloaded", [alice, frank],
            {(alice, bob): 20, (frank, bob): 0, (alice, dave): 20, (frank, dave): 0}, sync=dave)
    c.ops.broker_hup(rep, c.name)
    c.phase("broker reloaded", [alice, frank],
            {(alice, bob): 0, (frank, bob): 20, (alice, dave): 0, (frank, dave): 20}, sync=dave)
    c.ops.mqoff_hup(rep, c.name)
    c.phase("both reloaded", [alice, frank],
            {(alice, bob): 0, (frank, bob): 20, (alice, dave): 0, (frank, dave): 20}, sync=dave,
            settle=True)
    c.done()


@case
def broken_then_fixed(a, rep):
    """The file stops parsing, the broker reloads it (Mosquitto 2.0.11 then checks no ACL at
    all: eve, who may not read, gets everything), the file is fixed (the broker still checks
    nothing until it reloads again), then both reload: eve gets nothing again."""
    c = Case(a, rep, "broken then fixed")
    alice, bob, eve, dave = c.user("alice"), c.user("bob"), c.user("eve"), c.user("dave")
    if not c.connect(c.mark, alice, bob, eve, dave) or not c.subscribe(bob, eve, dave):
        return
    c.phase("before", [alice], {(alice, bob): 20, (alice, eve): 0}, sync=dave)
    c.ops.edit(BROKEN, "inplace", rep, c.name,
               mqoff_says=r"acl_file changed: \S+: line %d: " % BROKEN_LINE)
    c.phase("file broken", [alice], {(alice, bob): 20, (alice, eve): 0}, sync=dave)
    c.ops.broker_hup(rep, c.name)
    c.phase("broker reloaded the broken file", [alice], {(alice, bob): 20, (alice, eve): 20},
            sync=dave)
    c.ops.edit(V1, "inplace", rep, c.name, mqoff_says=r"acl_file \S+ parses again")
    c.phase("file fixed, not reloaded", [alice], {(alice, bob): 20, (alice, eve): 20}, sync=dave)
    c.ops.broker_hup(rep, c.name)
    c.ops.mqoff_hup(rep, c.name)
    c.phase("both reloaded", [alice], {(alice, bob): 20, (alice, eve): 0}, sync=dave,
            settle=True)
    c.done()


@case
def second_listener(a, rep):
    """carol subscribes on the broker's second listener (port 1884, which mqoff does not
    carry); bob through the target. Both get every message of alice, in order."""
    c = Case(a, rep, "second listener")
    alice, bob = c.user("alice"), c.user("bob")
    carol = c.user("dave", "carol-1884", port=1884)
    if not c.connect(c.mark, alice, bob, carol) or not c.subscribe(bob, carol):
        return
    c.phase("publish", [alice], {(alice, bob): 100, (alice, carol): 100}, n=100, sync=carol)
    c.done()


@case
def exclusive(a, rep):
    """Every client through the target (--exclusive): bob gets every message of alice."""
    c = Case(a, rep, "exclusive")
    alice, bob = c.user("alice"), c.user("bob")
    if not c.connect(c.mark, alice, bob) or not c.subscribe(bob):
        return
    c.phase("publish", [alice], {(alice, bob): 100}, n=100, sync=bob)
    c.done()


def main():
    ap = base_args(__doc__)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--acl", required=True, help="the acl_file broker and mqoff read")
    ap.add_argument("--broker-pid", type=int, default=0)
    ap.add_argument("--broker-log", default="")
    ap.add_argument("--mqoff-pid", type=int, default=0)
    ap.add_argument("--mqoff-log", default="")
    run_case(CASES, ap.parse_args())


if __name__ == "__main__":
    main()
