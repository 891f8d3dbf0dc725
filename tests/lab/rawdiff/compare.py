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


def client_diff(dc, tc):
    """Short text of how one client's record differs, or None."""
    if dc == tc:
        return None
    parts = []
    da, ta = [shape(h) for h in dc["rx"]], [shape(h) for h in tc["rx"]]
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
    elif dc["rx"] != tc["rx"]:
        for a, b in zip(dc["rx"], tc["rx"]):
            if a != b:
                parts.append("%s bytes differ (%s vs %s)" % (shape(a), a[:60], b[:60]))
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
            bits.append("bytes of %s" % next(shape(a) for a, b in zip(dc["rx"], tc["rx"]) if a != b))
        if dc["end"] != tc["end"]:
            de, te = end_kind(dc["end"]), end_kind(tc["end"])
            bits.append("end %s>%s" % (de, te) if de != te else "end %s later/earlier" % de)
        out.append("%s{%s}" % (k, " ".join(bits)))
    return " ".join(out)


# Causes, guessed from a difference's signature and the case's name (first match wins). They
# only group the --draft output; the comments in known_diffs.txt are the record.
CAUSES = [
    ("nothing", "the offload target gave no result (crashed or hung)", r"missing", r""),
    ("monitor-rst", "monitor mode resets the TCP connection where the broker closes it "
     "(or answers)", r"end (FIN|open)>RST", r""),
    ("connack-refusal", "a CONNECT the broker answers with a CONNACK refusal (bad protocol "
     "level) is closed by mqoff without an answer", r"-\[CONNACK rc=0x01\] \+\[\]", r""),
    ("connect-refused-by-mqoff", "a CONNECT the broker accepts is refused (closed) by mqoff",
     r"-\[CONNACK rc=0x00", r"^connect/|^framing/"),
    ("answers-for-broker", "mqoff answers a packet itself (DISCONNECT) where the broker closes "
     "silently or reacts otherwise", r"\+\[DISCONNECT", r""),
    ("refuses-what-broker-passes", "mqoff refuses (closes) a packet the broker accepts",
     r"end open>FIN", r""),
    ("bridge-level-no-local", "bridge protocol levels 0x83/0x84: the broker never sends a "
     "bridge its own messages back (implied no-local); the offload does", r"", r"^bridgelevel/"),
    ("receive-maximum", "flow control: the offload's deliveries do not follow the broker's "
     "in-flight window (v5 Receive Maximum, v3 max_inflight_messages)", r"", r"^flow/"),
    ("packet-ids", "the offload's deliveries number packet identifiers differently from the "
     "broker", r"bytes of PUBLISH q[12]", r""),
    ("publish-bytes", "the offload's deliveries are not byte-identical to the broker's",
     r"bytes of PUBLISH", r""),
    ("acks", "a subscriber's acknowledgement of an offload delivery is judged differently "
     "from the broker", r"", r"^subacks/"),
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
            if reason is not None:
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


def draft(direct, target, a):
    groups = {}
    for case in sorted(direct):
        d, t = direct[case], target.get(case)
        if t == d:
            continue
        sig = signature(d, t) if t else "missing"
        cid, text = cause_of(case, sig)
        groups.setdefault((cid, text), []).append((case, case_diff(d, t)))
    for (cid, text), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print("# == %s (%d): %s" % (cid, len(items), text))
        for case, why in items:
            print("%s %s %s" % (a.target, case, why[:300]))
        print()


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("direct")
    ap.add_argument("target_results")
    ap.add_argument("--target", default="target", help="the target's name (proxy, monitor, ...)")
    ap.add_argument("--group", default="core")
    ap.add_argument("--known", default=os.path.join(HERE, "known_diffs.txt"))
    ap.add_argument("--draft", action="store_true")
    ap.add_argument("--show", metavar="CASE")
    ap.add_argument("--quiet-same", action="store_true",
                    help="one ok line for all matching cases instead of one each")
    a = ap.parse_args()
    if not os.path.exists(a.target_results):
        print("not ok - rawdiff %s %s: no results from the target (%s)" % (a.target, a.group, a.target_results))
        return 0
    direct, target = load(a.direct), load(a.target_results)
    if a.show:
        show(direct, target, a.show)
    elif a.draft:
        draft(direct, target, a)
    else:
        tap(direct, target, a, load_known(a.known))
    return 0


if __name__ == "__main__":
    sys.exit(main())
