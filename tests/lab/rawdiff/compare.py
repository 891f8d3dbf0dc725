#!/usr/bin/python3
"""Compares one target's results with direct's, case by case, against known_diffs.txt.

Usage:
  compare.py DIRECT.jsonl TARGET.jsonl --target NAME [--known FILE]   TAP lines + a summary
  compare.py DIRECT.jsonl TARGET.jsonl --target NAME --draft          known_diffs.txt entries
  compare.py DIRECT.jsonl TARGET.jsonl --show CASE                    one case, both sides

Per case: "ok - rawdiff NAME: CASE" when the target's result equals direct's; a difference
listed in known_diffs.txt is "ok - ... # SKIP known difference: REASON"; an unlisted one is
"not ok"; a listed case that now matches is "not ok - ...: matches now, remove it from
known_diffs.txt". Then one line "# rawdiff NAME GROUP: N cases, S same, K known-different,
U new-different, F fixed" per call.

known_diffs.txt: "TARGET CASE REASON..." per line; '#' lines are comments (the file groups
entries by cause under such comments). --draft prints every difference found, grouped by a
cause guessed from its shape (CAUSES below), in that format.
"""

import argparse
import difflib
import json
import os
import re
import sys

import mqttb as M

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out[r["case"]] = r
    return out


def load_known(path):
    """{(target, case): reason}; raises SystemExit on a malformed line."""
    known = {}
    if not os.path.exists(path):
        return known
    with open(path) as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.split(None, 2)
            if len(parts) < 3:
                raise SystemExit("%s:%d: want 'TARGET CASE REASON'" % (path, n))
            known[(parts[0], parts[1])] = parts[2]
    return known


# ---------------------------------------------------------------------------------------------
# describing a difference

def pkt_bytes(h):
    return bytes.fromhex(h.split("...")[0])


def label(h, full=False):
    """A received entry as text: the packet's summary (full: with its hex)."""
    if h.startswith("---"):
        return h
    if h.startswith("partial:"):
        return "partial packet %s" % h[8:40]
    d = M.describe(pkt_bytes(h))
    return "%s [%s]" % (d, h if len(h) <= 80 else h[:76] + "..") if full else d


def shape(h):
    """What a packet is, without the parts every case has its own of (topics, identifiers)."""
    if h.startswith("---") or h.startswith("partial:"):
        return h.split(":")[0]
    d = M.describe(pkt_bytes(h))
    d = re.sub(r"^(PUBLISH q\d( r)?( d)?) .*", r"\1", d)
    return re.sub(r" id=\d+", "", d)


def without_id(h):
    """A PUBLISH (QoS > 0) with its packet identifier zeroed; other entries unchanged."""
    if h.startswith("---") or h.startswith("partial:") or "..." in h:
        return h
    p = bytearray(pkt_bytes(h))
    try:
        t, fl, off = M.header(p)
        if t == M.PUBLISH and (fl >> 1) & 3:
            tl = int.from_bytes(p[off:off + 2], "big")
            p[off + 2 + tl:off + 4 + tl] = b"\0\0"
    except IndexError:
        pass
    return bytes(p).hex()


def unmarked(rx):
    return [h for h in rx if not h.startswith("---")]


def marks(rx):
    """[(marker, number of packets before it)] of a received list."""
    out, n = [], 0
    for h in rx:
        if h.startswith("---"):
            out.append((h[4:], n))
        else:
            n += 1
    return out


def client_diff(dc, tc):
    """Short text of how one client's record differs, or None."""
    if dc == tc:
        return None
    parts = []
    da, ta = [shape(h) for h in dc["rx"]], [shape(h) for h in tc["rx"]]
    dm, tm = marks(dc["rx"]), marks(tc["rx"])
    drx, trx = dc["rx"], tc["rx"]
    if dm != tm and unmarked(da) == unmarked(ta):
        # the same packets, but not as many arrived before a step of the case
        for (name, at), (_, at2) in zip(dm, tm):
            if at != at2:
                parts.append("%d packets before %s instead of %d" % (at2, name, at))
        da, ta, drx, trx = unmarked(da), unmarked(ta), unmarked(drx), unmarked(trx)
    if da != ta:
        sm = difflib.SequenceMatcher(a=da, b=ta, autojunk=False)
        for op, i1, i2, j1, j2 in sm.get_opcodes():
            if op == "equal":
                continue
            gone, new = da[i1:i2], ta[j1:j2]
            if gone and new:
                parts.append("%s instead of %s" % (", ".join(new), ", ".join(gone)))
            elif gone:
                parts.append("no %s" % ", ".join(gone))
            else:
                parts.append("extra %s" % ", ".join(new))
    elif drx != trx:
        for a, b in zip(drx, trx):
            if a != b:
                if without_id(a) == without_id(b):
                    parts.append("%s with packet id %d instead of %d" % (
                        shape(a), M.packet_id(pkt_bytes(b)), M.packet_id(pkt_bytes(a))))
                else:
                    parts.append("%s bytes %s instead of %s" % (shape(a), b[:70], a[:70]))
                break
    if dc["end"] != tc["end"]:
        parts.append("end '%s' instead of '%s'" % (tc["end"], dc["end"]))
    return "; ".join(parts)


def case_diff(d, t):
    """One line: per client that differs, how (client letters as in gen.py)."""
    if t is None:
        return "no result from the target"
    out = []
    for k in sorted(d["clients"]):
        x = client_diff(d["clients"][k], t["clients"].get(k, {"rx": [], "end": "missing"}))
        if x:
            out.append("%s: %s" % (k, x))
    return " | ".join(out)


def end_kind(e):
    return e.split(" after")[0]


def signature(d, t):
    """The shape of a difference, without case-specific details: cases with one signature
    usually share a cause."""
    out = []
    for k in sorted(d["clients"]):
        dc, tc = d["clients"][k], t["clients"].get(k, {"rx": [], "end": "missing"})
        if dc == tc:
            continue
        da, ta = [shape(h) for h in dc["rx"]], [shape(h) for h in tc["rx"]]
        bits = []
        if da != ta:
            sm = difflib.SequenceMatcher(a=da, b=ta, autojunk=False)
            for op, i1, i2, j1, j2 in sm.get_opcodes():
                if op != "equal":
                    bits.append("-[%s] +[%s]" % (",".join(da[i1:i2]), ",".join(ta[j1:j2])))
        elif dc["rx"] != tc["rx"]:
            a, b = next((a, b) for a, b in zip(dc["rx"], tc["rx"]) if a != b)
            what = "packet id" if without_id(a) == without_id(b) else "bytes"
            bits.append("%s of %s" % (what, shape(a)))
        if dc["end"] != tc["end"]:
            de, te = end_kind(dc["end"]), end_kind(tc["end"])
            bits.append("end %s>%s" % (de, te) if de != te else "end %s later/earlier" % de)
        out.append("%s{%s}" % (k, " ".join(bits)))
    return " ".join(out)


# Causes, guessed from a difference's signature and the case's name (first match wins): they
# group the --draft output. known_diffs.txt records them as comment lines above each group.
CAUSES = [
    ("no-result", "the target gave no result for the case (mqoff crashed or hung)",
     r"missing", r""),
    ("order-across-connections", "bytes of two clients reach the broker in another order "
     "than mqoff received them (a SUBSCRIBE or UNSUBSCRIBE just before another client's "
     "PUBLISH takes effect after it)", r"", r"^order/"),
    ("flow-control", "flow control: the offload's QoS 1 deliveries must follow the broker's: "
     "v5 Receive Maximum, and Mosquitto's max_inflight_messages (default 20) for v3 clients, "
     "past which it queues until acknowledgements come", r"", r"^flow/"),
    ("bridge-no-local", "bridge protocol levels 0x83/0x84: the broker never sends a bridge its "
     "own messages back (implied no-local), the offload does", r"", r"^bridgelevel/"),
    ("ack-kind", "a subscriber answering an offload QoS 1 delivery with PUBREC or PUBCOMP is "
     "taken as if it had sent PUBACK; the broker closes its connection (and the publisher's "
     "v5 PUBACK says 0x10 where the broker says 0x00)", r"", r"^subacks/q1-pub(rec|comp)"),
    ("v31-session", "MQTT 3.1 persistent sessions: a 3.1 CONNACK has no session-present flag, "
     "mqoff takes a resumed session for a new one and offloads a message the broker would "
     "have delivered to the resumed session (lost)", r"", r"^(takeover|session)/.*/v3$"),
    ("mount-point", "mount_point: mqoff is not told the listener's mount point: it offloads "
     "under the bare topic, where the broker prefixes it (Mosquitto 2.0.11 also delivers it "
     "with the prefix) and reaches subscribers on other listeners", r"", r"^mount/"),
    ("message-size-limit", "message_size_limit: mqoff is not told the limit: it offloads "
     "payloads the broker refuses (and answers a v5 PUBACK 0x00 where the broker says 0x95)",
     r"", r"^msgsize/"),
    ("max-packet-size", "max_packet_size: mqoff is not told the limit: a v3 client's PUBLISH "
     "over it is offloaded, where the broker drops the client (RST: it closes with bytes "
     "unread); v5 clients learn the limit from the CONNACK", r"", r"^maxpacket/"),
    ("connack-refusal", "a CONNECT the broker refuses with a CONNACK return code (0x01 for a "
     "protocol level it does not speak, [MQTT-3.1.2-2]) is closed by mqoff without an answer",
     r"-\[CONNACK sp=0 rc=0x0[1-5]\] \+\[\]", r""),
    ("connect-refused", "a CONNECT the broker accepts is refused by mqoff (closed)",
     r"-\[CONNACK sp=0 rc=0x00", r""),
    ("refuses-accepted", "mqoff closes the connection on a packet the broker accepts or ignores "
     "(server-only types, odd flags, v5 properties, $share filters, payload format values); "
     "the message, if any, is lost", r"end open>(FIN|RST)", r""),
    ("monitor-reset", "monitor mode resets both TCP ends (RST, no DISCONNECT) on a packet its "
     "engine refuses, where the broker answers, closes with FIN or goes on",
     r"end (FIN|open|aborted)>RST", r""),
    ("disconnect-code", "mqoff's DISCONNECT reason code differs from the broker's (0x90 for a "
     "topic name the broker calls malformed 0x82, 0x81 for 0x82, 0x82 for 0x81)",
     r"-\[DISCONNECT rc=0x..\] \+\[DISCONNECT", r""),
    ("disconnect-where-broker-closes", "mqoff answers a v5 protocol error with its own "
     "DISCONNECT where the broker closes without one", r"-\[\] \+\[DISCONNECT", r""),
    ("rst-to-fin", "the broker resets a connection it drops with bytes unread (RST); through "
     "mqoff the client sees a FIN", r"end RST>FIN", r""),
    ("no-local-puback", "a v5 QoS 1 PUBLISH whose only matching subscription is the "
     "publisher's own no-local one: the broker's PUBACK says 0x00, mqoff's 0x10",
     r"PUBACK rc=0x10", r""),
    ("packet-ids", "the offload numbers its deliveries' packet identifiers otherwise than the "
     "broker would", r"packet id of PUBLISH", r""),
    ("delivery-bytes", "an offload delivery is not byte-identical to the broker's (the broker "
     "drops a Message Expiry Interval of 0)", r"bytes of PUBLISH", r""),
]


def cause_of(name, sig):
    for cid, text, sig_re, name_re in CAUSES:
        if (not sig_re or re.search(sig_re, sig)) and (not name_re or re.search(name_re, name)):
            return cid, text
    return "other", "not classified yet"


# ---------------------------------------------------------------------------------------------

def stale(known, target_name):
    """Entries of known_diffs.txt for this target that name no case of the corpus."""
    import gen
    names = {c.name for c in gen.all_cases()}
    return sorted(c for t, c in known if t == target_name and c not in names)


def tap(direct, target, a, known):
    name = a.target
    same = kdiff = new = fixed = 0
    if a.group == "core":
        for case in stale(known, name):
            print("not ok - rawdiff %s: known_diffs.txt lists %s, which is no case: remove it"
                  % (name, case))
    for case in sorted(direct):
        d, t = direct[case], target.get(case)
        label_ = "rawdiff %s: %s" % (name, case)
        reason = known.get((name, case))
        if t == d:
            if reason is not None and reason.startswith("[sometimes]"):
                print("ok - %s # matched this time (a difference that comes and goes)" % label_)
                same += 1
            elif reason is not None:
                print("not ok - %s: matches now, remove it from known_diffs.txt" % label_)
                fixed += 1
            else:
                if not a.quiet_same:
                    print("ok - %s" % label_)
                same += 1
            continue
        if reason is not None:
            print("ok - %s # SKIP known difference: %s" % (label_, reason))
            kdiff += 1
        else:
            print("not ok - %s: %s" % (label_, case_diff(d, t)[:600]))
            new += 1
    extra = sorted(set(target) - set(direct))
    for case in extra:
        print("not ok - rawdiff %s: %s: in the target's results only" % (name, case))
    if a.quiet_same and same:
        print("ok - rawdiff %s %s: %d of %d cases identical" % (name, a.group, same, len(direct)))
    print("# rawdiff %s %s: %d cases, %d same, %d known-different, %d new-different, %d fixed"
          % (name, a.group, len(direct), same, kdiff, new, fixed))


def draft(dirs, known_path, out=sys.stdout):
    """known_diffs.txt from kept results (test_rawdiff.sh RAWDIFF_KEEP=DIR: DIR/GROUP/T.jsonl),
    one directory per run: a case that differs in every run is listed, one that differs in
    some is listed as [sometimes]. Grouped by cause (CAUSES), in CAUSES order, under the
    comment lines that open the current file."""
    if os.path.exists(known_path):
        with open(known_path) as f:
            for line in f:
                if line.startswith(("# == ", "# No known")):
                    break
                out.write(line)
    groups = {}
    runs = len(dirs)
    for g in sorted(os.listdir(dirs[0])):
        direct = load(os.path.join(dirs[0], g, "direct.jsonl"))
        for t in ("proxy", "monitor", "intercept"):
            found = {}
            for d in dirs:
                p = os.path.join(d, g, t + ".jsonl")
                if not os.path.exists(p):
                    continue
                res = load(p)
                for case in direct:
                    r = res.get(case)
                    if r != direct[case]:
                        found.setdefault(case, []).append(r)
            for case, rs in found.items():
                r = next((x for x in rs if x is not None), None)
                sig = signature(direct[case], r) if r else "missing"
                why = case_diff(direct[case], r)
                if len(rs) < runs:
                    why = "[sometimes] " + why
                groups.setdefault(cause_of(case, sig), []).append((t, case, why))
    order = [(c[0], c[1]) for c in CAUSES] + [("other", "not classified yet")]
    for key in order:
        items = groups.get(key)
        if not items:
            continue
        out.write("# == %s (%d): %s\n" % (key[0], len(items), key[1]))
        for t, case, why in sorted(items):
            out.write("%-7s %s %s\n" % (t, case, why[:240]))
        out.write("\n")


def show(direct, target, case):
    d, t = direct.get(case), target.get(case)
    if d is None:
        raise SystemExit("no case %s in the direct results" % case)
    print("case %s: %s" % (case, "same" if d == t else case_diff(d, t)))
    for k in sorted(d["clients"]):
        for side, r in (("direct", d), ("target", t)):
            c = r["clients"].get(k) if r else None
            if c is None:
                print("  %s %s: (none)" % (k, side))
                continue
            print("  %s %s: %s" % (k, side, c["end"]))
            for h in c["rx"]:
                print("      %s" % label(h, True))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("direct", nargs="?")
    ap.add_argument("target_results", nargs="?")
    ap.add_argument("--target", default="target", help="the target's name (proxy, monitor, ...)")
    ap.add_argument("--group", default="core")
    ap.add_argument("--known", default=os.path.join(HERE, "known_diffs.txt"))
    ap.add_argument("--draft", nargs="+", metavar="KEEPDIR",
                    help="print known_diffs.txt entries for the results kept in these dirs")
    ap.add_argument("--show", metavar="CASE")
    ap.add_argument("--quiet-same", action="store_true",
                    help="one ok line for all matching cases instead of one each")
    a = ap.parse_args()
    if a.draft:
        draft(a.draft, a.known)
        return 0
    if not a.direct or not a.target_results:
        ap.error("DIRECT and TARGET_RESULTS are needed")
    if not os.path.exists(a.target_results):
        print("not ok - rawdiff %s %s: no results from the target (%s)"
              % (a.target, a.group, a.target_results))
        return 0
    direct, target = load(a.direct), load(a.target_results)
    if a.show:
        show(direct, target, a.show)
    else:
        tap(direct, target, a, load_known(a.known))
    return 0


if __name__ == "__main__":
    sys.exit(main())
