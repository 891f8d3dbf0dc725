#!/usr/bin/python3
"""Plays the differential corpus (gen.py) against one target and writes one result per case.

Usage: run.py --host ADDR [--port 1883] [--remote ADDR:PORT] [--group G] [--case NAME ...]
              [--match TEXT] [--jobs N] [--out FILE] [--waves-from DIRECT.jsonl]

Run it where the target is reachable (the lab's cli namespace). A result is one JSON line:

  {"case": NAME, "clients": {LETTER: {"rx": [PACKET, ...], "end": END}, ...}}

rx is every byte the client received, split into MQTT packets, in hex; a packet longer than
256 bytes is shown as its first 64 bytes, its length and a SHA-1 of the whole; bytes after
the last whole packet appear as "partial:HEX". Normalized (the only thing that is): the value
of a v5 CONNACK's Assigned Client Identifier, which the broker makes up at random, becomes
the same number of "x".

END says how the connection ended, counting the client's own scripted sends (automatic
acknowledgements are not counted):
  "FIN after send K" / "RST after send K"   the peer closed (or reset) once K sends were made
  "open"                                   still open after the case's final silence
  "aborted after send K"                   the case itself reset the connection
  "refused" / "no connection (ERR)"        the TCP connection never came up

Each step waits for what the case says (a packet, the connection's close, or "quiet": no
byte on any of the case's connections for --quiet seconds) before the next (after an awaited
packet also 50 ms without a byte, so that a close right behind it counts for the step); after the last
step the case waits for its final silence. So the result does not depend on timing as long as
the target answers within those bounds.
"""

import argparse
import asyncio
import errno
import hashlib
import json
import os
import socket
import struct
import sys
import time

import gen
import mqttb as M

PKT_TIMEOUT = 3.0     # longest wait for an expected packet or close
GRACE = 0.05          # quiet after an awaited packet, for a close right behind it


def show_packet(p):
    if len(p) <= 256:
        return p.hex()
    return "%s...(%d bytes, sha1 %s)" % (p[:64].hex(), len(p), hashlib.sha1(p).hexdigest()[:16])


def normalize(p):
    """Replaces a v5 CONNACK's Assigned Client Identifier by as many "x"."""
    if not p or p[0] != 0x20 or len(p) < 6:
        return p
    try:
        _, _, off = M.header(p)
        lst, end = M.read_props(p, off + 2)
    except (ValueError, IndexError, struct.error):
        return p
    if not any(k == 0x12 for k, _ in lst):
        return p
    out, j = bytearray(p), off + 2
    while out[j] & 0x80:
        j += 1
    j += 1
    while j < end:
        pid = out[j]
        kind = M.PROPS[pid][1]
        j += 1
        size = {"byte": 1, "u16": 2, "u32": 4}.get(kind)
        if size:
            j += size
        elif kind == "varint":
            while out[j] & 0x80:
                j += 1
            j += 1
        elif kind in ("str", "bin"):
            n = struct.unpack_from("!H", out, j)[0]
            if pid == 0x12:
                out[j + 2:j + 2 + n] = b"x" * n
            j += 2 + n
        elif kind == "pair":
            for _ in range(2):
                n = struct.unpack_from("!H", out, j)[0]
                j += 2 + n
    return bytes(out)


class Conn:
    def __init__(self, letter, spec):
        self.letter, self.spec = letter, spec
        self.sock = None
        self.buf = b""
        self.pkts = []
        self.end = None          # "FIN", "RST", "aborted", "refused", "ERR ..."
        self.sends = 0
        self.end_sends = None
        self.autoack = spec["autoack"]
        self.unacked = []        # packets received while not acking automatically
        self.marks = []          # (number of packets received before it, label)
        self.reader = None
        self.wlock = asyncio.Lock()


class CaseRun:
    def __init__(self, case, args):
        self.case, self.a = case, args
        self.conns = {k: Conn(k, v) for k, v in case.clients.items()}
        self.changed = asyncio.Event()
        self.last = time.monotonic()
        self.slow = []           # steps whose wait ran out (a generator mistake when direct)
        self.loop = asyncio.get_running_loop()

    def touch(self):
        self.last = time.monotonic()
        self.changed.set()

    async def until(self, cond, deadline_fn):
        """Waits until cond() is true (True) or the deadline deadline_fn() passed (False)."""
        while True:
            if cond():
                return True
            left = deadline_fn() - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            if cond():
                return True
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    # connection I/O -----------------------------------------------------------------------
    async def open(self, c):
        cfg = self.a
        host, port = (cfg.host, cfg.port) if c.spec["port"] == "main" else cfg.remote
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(self.loop.sock_connect(s, (host, port)), PKT_TIMEOUT)
        except ConnectionRefusedError:
            s.close()
            c.end, c.end_sends = "refused", 0
            return
        except (OSError, asyncio.TimeoutError) as e:
            s.close()
            c.end, c.end_sends = "no connection (%s)" % type(e).__name__, 0
            return
        c.sock = s
        c.reader = asyncio.ensure_future(self.read(c))

    async def read(self, c):
        while True:
            try:
                data = await self.loop.sock_recv(c.sock, 1 << 16)
            except ConnectionResetError:
                self.closed(c, "RST")
                return
            except OSError as e:
                self.closed(c, "ERR %s" % errno.errorcode.get(e.errno, e.errno))
                return
            if not data:
                self.closed(c, "FIN")
                return
            c.buf += data
            pkts, c.buf = M.split_packets(c.buf)
            for p in pkts:
                c.pkts.append(p)
                await self.on_packet(c, p)
            self.touch()

    def closed(self, c, how):
        if c.end is None:
            c.end, c.end_sends = how, c.sends
        self.touch()

    async def write(self, c, data):
        if c.sock is None or c.end is not None or not data:
            return
        async with c.wlock:
            try:
                await self.loop.sock_sendall(c.sock, data)
            except OSError:
                pass         # the reader sees the close or reset
        self.touch()

    def answer(self, p):
        """The acknowledgement a client owes for p (PUBLISH QoS 1/2, PUBREL), or None."""
        t, fl, _ = M.header(p)
        pid = M.packet_id(p)
        if pid is None:
            return None
        if t == M.PUBLISH:
            return M.ack(M.PUBACK if (fl >> 1) & 3 == 1 else M.PUBREC, pid)
        if t == M.PUBREL:
            return M.ack(M.PUBCOMP, pid)
        return None

    async def on_packet(self, c, p):
        try:
            ans = self.answer(p)
        except (IndexError, struct.error):
            ans = None
        if ans is None:
            return
        if c.autoack:
            await self.write(c, ans)
        else:
            c.unacked.append(ans)

    # steps --------------------------------------------------------------------------------
    async def step(self, i, st):
        op, d, w = st["op"], st["data"], st["wait"]
        if op == "sleep":
            await asyncio.sleep(d)
            return
        if op == "settle":
            await self.until(lambda: False, lambda: self.last + self.a.quiet)
            return
        c = self.conns[st["c"]]
        before = {k: len(x.pkts) for k, x in self.conns.items()}
        if op == "open":
            await self.open(c)
        elif op == "send":
            if c.end is None:
                c.sends += 1
                await self.write(c, d)
        elif op == "reply":
            if c.end is None:
                c.sends += 1
                b0, tail, of = d
                want = M.PUBLISH if of == "publish" else M.PUBREL
                pid = next((M.packet_id(p) for p in reversed(c.pkts)
                            if M.header(p)[0] == want and M.packet_id(p) is not None), None)
                if pid is not None:
                    await self.write(c, bytes([b0]) + M.varint(2 + len(tail))
                                     + struct.pack("!H", pid) + tail)
        elif op == "mark":
            c.marks.append((len(c.pkts), "mark %d" % (len(c.marks) + 1)))
        elif op == "ackall":
            pending, c.unacked, c.autoack = c.unacked, [], True
            for ans in pending:
                await self.write(c, ans)
        elif op == "close":
            if c.sock is not None and c.end is None:
                try:
                    c.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        elif op == "abort":
            if c.sock is not None and c.end is None:
                c.end, c.end_sends = "aborted", c.sends
                c.reader.cancel()
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.sock.close()
                c.sock = None
                self.touch()
        if w is None:
            return
        now = time.monotonic()
        if w == "quiet":
            ok = await self.until(lambda: c.end is not None,
                                  lambda: self.last + self.a.quiet)
            return
        if w == "close":
            ok = await self.until(lambda: c.end is not None, lambda: now + PKT_TIMEOUT)
        else:
            n, who = 1, c
            if isinstance(w, (tuple, list)):
                n = w[1]
                who = self.conns[w[2]] if len(w) > 2 else c
            ok = await self.until(lambda: len(who.pkts) >= before[who.letter] + n or who.end is not None,
                                  lambda: now + PKT_TIMEOUT)
            # A close that follows the awaited packet at once (a CONNACK refusal, a
            # DISCONNECT) belongs to this step, also when a target passes it on a moment
            # later: a short quiet before the next step.
            await self.until(lambda: who.end is not None, lambda: self.last + GRACE)
        if not ok:
            self.slow.append(i)

    async def run(self):
        t0 = time.monotonic()
        try:
            for i, st in enumerate(self.case.steps, 1):
                await self.step(i, st)
            self.last = time.monotonic()
            cap = time.monotonic() + self.case.final + 10
            await self.until(lambda: all(c.end is not None or c.sock is None
                                         for c in self.conns.values()),
                             lambda: min(cap, self.last + self.case.final))
        finally:
            for c in self.conns.values():
                if c.reader is not None:
                    c.reader.cancel()
                if c.sock is not None:
                    c.sock.close()
                    c.sock = None
        return self.result(time.monotonic() - t0)

    def result(self, secs):
        clients = {}
        for k, c in self.conns.items():
            rx = [show_packet(normalize(p)) for p in c.pkts]
            for at, label in reversed(c.marks):
                rx.insert(at, "--- " + label)
            if c.buf:
                rx.append("partial:" + show_packet(c.buf))
            if c.end is None:
                end = "open" if c.reader is not None else "never opened"
            elif c.end in ("FIN", "RST", "aborted"):
                end = "%s after send %d" % (c.end, c.end_sends)
            else:
                end = c.end
            clients[k] = {"rx": rx, "end": end}
        return {"case": self.case.name, "clients": clients}, secs, self.slow


def troubled(r):
    """True when a direct result shows the broker refusing or closing something in the case
    (or a client left without its CONNACK, or holding part of a packet)."""
    for c in r["clients"].values():
        if c["end"].startswith(("FIN", "RST", "refused", "no connection")):
            return True
        rx = [h for h in c["rx"] if not h.startswith("---")]
        if not rx or not rx[0].startswith("20") or any(h.startswith("partial:") for h in rx):
            return True
        for h in rx:
            p = bytes.fromhex(h.split("...")[0])
            t, _, off = M.header(p)
            if ((t == M.CONNACK and p[off + 1:off + 2] != b"\0") or t == M.DISCONNECT
                    or (t == M.SUBACK and any(x >= 0x80 for x in p[off + 2:]))):
                return True
    return False


def waves(cases, path):
    """The cases in two waves: first those where direct's results show the broker refusing
    or closing nothing and whose CONNECTs and SUBSCRIBEs are ordinary (gen.Case.odd), then
    the others. An offload may stop offloading for everyone while a connection it could not
    follow is open (an undecodable CONNECT or SUBSCRIBE): played apart, such cases do not
    take the offload away from the rest."""
    if not path:
        return [cases]
    with open(path) as f:
        direct = {r["case"]: r for r in map(json.loads, f)}
    bad = {n for n, r in direct.items() if troubled(r)} | {c.name for c in cases if c.odd}
    return [[c for c in cases if c.name not in bad], [c for c in cases if c.name in bad]]


async def run_all(cases, args):
    sem = asyncio.Semaphore(args.jobs)
    results, slow, times = {}, {}, {}

    async def one(c):
        async with sem:
            r, secs, sl = await CaseRun(c, args).run()
            results[c.name] = r
            times[c.name] = secs
            if sl:
                slow[c.name] = sl
    for wave in waves(cases, args.waves_from):
        await asyncio.gather(*(one(c) for c in wave))
    return results, slow, times


def select(args):
    if args.group:
        pool = gen.cases(args.group)
    else:
        pool = gen.all_cases() if args.case else gen.cases("core")
    if args.case:
        want = set(args.case)
        pool = [c for c in pool if c.name in want]
        missing = want - {c.name for c in pool}
        if missing:
            raise SystemExit("run.py: no such case: %s" % ", ".join(sorted(missing)))
    if args.match:
        pool = [c for c in pool if args.match in c.name]
    return pool


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True, help="address the case's main clients connect to")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--remote", default="198.18.0.2:1884",
                    help="ADDR:PORT for the cases' remote clients (bridge and mount groups)")
    ap.add_argument("--group", help="one group (default: core; with --case: any)")
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    ap.add_argument("--match", help="only cases whose name contains this")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("RAWDIFF_JOBS", "120")),
                    help="cases run at once")
    ap.add_argument("--quiet", type=float, default=float(os.environ.get("RAWDIFF_QUIET", "0.4")),
                    help="seconds without a byte that end a 'quiet' wait")
    ap.add_argument("--out", help="write the results here (default: stdout)")
    ap.add_argument("--waves-from", metavar="DIRECT.jsonl",
                    help="play the cases where direct saw no refusal first, the others after")
    a = ap.parse_args()
    h, p = a.remote.rsplit(":", 1)
    a.remote = (h, int(p))
    cases = select(a)
    t0 = time.monotonic()
    results, slow, times = asyncio.run(run_all(cases, a))
    dt = time.monotonic() - t0
    f = open(a.out, "w") if a.out else sys.stdout
    for name in sorted(results):
        f.write(json.dumps(results[name], sort_keys=True) + "\n")
    if a.out:
        f.close()
    longest = max(times.items(), key=lambda kv: kv[1]) if times else ("-", 0)
    print("# rawdiff: %d cases (group %s) against %s:%d in %.1f s, %d at once; longest %s %.1f s"
          % (len(cases), a.group or "core", a.host, a.port, dt, a.jobs, longest[0], longest[1]), file=sys.stderr)
    for name in sorted(slow)[:20]:
        print("# rawdiff: %s: the wait after step(s) %s ran out" % (name, slow[name]), file=sys.stderr)
    if len(slow) > 20:
        print("# rawdiff: ... and %d more cases with waits that ran out" % (len(slow) - 20), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
