#!/usr/bin/python3
"""bench/summarize.py RESULTS_DIR OUT.md [--section NAME]: docs/BENCHMARKS.md from a bench/run.sh
results dir. With --section, only the page's section "## NAME" is written, into the page OUT
already holds (replaced, or added before "## Scenarios"): a run of a few scenarios updates its
section without dropping the others' figures.

RESULTS_DIR holds machine.txt and runs/SCENARIO.TARGET.REP.{meta,json,mqoff.log,out,err}.
Figures are medians over the repetitions of each (scenario, target); a ratio compares the
medians of a mode and of direct in the same run. Also writes the gnuplot data files
(plot_latency.dat, plot_sat_TARGET.dat) into RESULTS_DIR for bench/plot.gp.
"""
import glob
import json
import os
import re
import statistics
import sys

RES, OUT = sys.argv[1], sys.argv[2]
SECTION = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--section" else None
TARGET_ORDER = ["direct", "proxy", "lwip", "monitor", "monitor-dpdk", "monitor-afxdp", "intercept",
                "bridge", "bridge-dpdk", "bridge-afxdp"]
IO_NAMES = {"": "AF_PACKET", "-dpdk": "DPDK", "-afxdp": "AF_XDP"}
FLOORS = ("floor-pps", "floor-bulk")
MODES = ["proxy", "monitor", "intercept"]
MQOFF_TARGETS = ("proxy", "lwip", "monitor", "monitor-dpdk", "monitor-afxdp", "intercept", "bridge", "bridge-dpdk",
                 "bridge-afxdp")
PASSTHROUGH_SCENARIOS = ("p2p-1000-pt",)  # mqoff offloads nothing there on purpose


def kv(path):
    d = {}
    try:
        for line in open(path, errors="replace"):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    except OSError:
        pass
    return d


MACHINE = kv(os.path.join(RES, "machine.txt"))
REPS = int(MACHINE.get("reps", "3"))
QUICK = MACHINE.get("quick") == "1"


def mqoff_counters(path):
    """Counters of mqoff's closing summary (proxy, monitor, intercept) or of mqoff-bridge's."""
    c = {"summary": False, "log_errors": []}
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return c
    c["summary"] = "summary" in text or "port a" in text
    for k in ("published_in", "consumed", "passthrough", "dropped_qos0", "order_expired", "inflight_lost",
              "protocol_errors", "pings_synth"):
        m = re.search(r"^\s*%s\s+(\d+)" % k, text, re.M)
        if m:
            c[k] = int(m.group(1))
    m = re.search(r"^\s*deliveries\s+(\d+) \(QoS 1: (\d+)\)", text, re.M)
    if m:
        c["deliveries"], c["deliveries_q1"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"retransmits\s+(\d+) \(fast (\d+), timeouts (\d+)\)", text)
    if m:
        c["retransmits"], c["rto"] = int(m.group(1)), int(m.group(3))
    c["rx_dropped"] = sum(int(x) for x in re.findall(r"rx_dropped (\d+)", text))
    for k, pat in (("queue_drops", r"queue drops (\d+)"), ("resets", r"resets (\d+)"),
                   ("give_ups", r"give-ups (\d+)"), ("deferred", r"own frames deferred (\d+)"),
                   ("tx_nobufs", r"tx_nobufs (\d+)")):
        v = re.findall(pat, text)
        if v:
            c[k] = sum(int(x) for x in v)
    c["tx_full"] = sum(int(x) for x in re.findall(r"tx_full (\d+)", text))
    c["tx_errors"] = sum(int(x) for x in re.findall(r"tx_errors (\d+)", text))
    for line in text.splitlines():
        if re.search(r"\b(error|warn|fatal|abort|assert|Sanitizer)\b", line, re.I) and "protocol_errors" not in line \
                and "tx_errors" not in line:
            c["log_errors"].append(line.strip())
    return c


# ---- load every run --------------------------------------------------------------------------
RUNS = []
for meta_path in sorted(glob.glob(os.path.join(RES, "runs", "*.meta"))):
    base = meta_path[:-5]
    m = kv(meta_path)
    if "scenario" not in m:
        continue
    run = {"scenario": m["scenario"], "target": m["target"], "rep": int(m["rep"]), "meta": m, "json": None}
    try:
        run["json"] = json.load(open(base + ".json"))
    except (OSError, ValueError):
        pass
    run["mq"] = mqoff_counters(base + ".mqoff.log")
    try:
        run["err"] = open(base + ".err", errors="replace").read().strip()
    except OSError:
        run["err"] = ""
    tck = float(m.get("clk_tck", "100") or 100)
    for k in ("broker", "mqoff", "machine_busy", "machine_total"):
        v = m.get(k + "_ticks")
        run[k + "_s"] = float(v) / tck if v not in (None, "") else None
    bc = m.get("bench_cpu", "").split()
    run["bench_s"] = float(bc[0]) + float(bc[1]) if len(bc) == 2 else None
    RUNS.append(run)

SCEN_ORDER = MACHINE.get("scenarios", "").split()
for r in RUNS:
    if r["scenario"] not in SCEN_ORDER:
        SCEN_ORDER.append(r["scenario"])


def runs_of(s, t=None):
    return [r for r in RUNS if r["scenario"] == s and (t is None or r["target"] == t)]


def targets_of(s):
    ts = {r["target"] for r in runs_of(s)}
    return [t for t in TARGET_ORDER if t in ts]


def hist(run, name, win=0):
    j = run["json"]
    if not j or len(j.get("windows", [])) <= win:
        return None
    h = j["windows"][win]["latency_ns"].get(name)
    return h if h and h.get("count") else None


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def lat(s, t, name, pct, win=0):
    return med([(hist(r, name, win) or {}).get(pct) for r in runs_of(s, t)])


def win_val(s, t, key, win=0):
    out = []
    for r in runs_of(s, t):
        j = r["json"]
        if j and len(j.get("windows", [])) > win:
            out.append(j["windows"][win].get(key))
    return med(out)


def samples(s, t, name="last_subscriber", win=0):
    return med([(hist(r, name, win) or {}).get("count") for r in runs_of(s, t)])


def n_ok(s, t):
    return sum(1 for r in runs_of(s, t) if r["json"])


def cpu(s, t, k):
    return med([r[k + "_s"] for r in runs_of(s, t) if r["json"]])


def cpu_per_delivery(s, t):
    out = []
    for r in runs_of(s, t):
        j = r["json"]
        if not j or not j["totals"]["delivered"]:
            continue
        c = (r["broker_s"] or 0) + (r["mqoff_s"] or 0)
        out.append(c / j["totals"]["delivered"] * 1e6)
    return med(out)


def ms(ns):
    if ns is None:
        return "n/a"
    v = ns / 1e6
    if v < 1:
        return "%.3f" % v
    if v < 10:
        return "%.2f" % v
    if v < 1000:
        return "%.1f" % v
    return "%.0f" % v


def num(v, fmt="%.0f"):
    return "n/a" if v is None else fmt % v


def ratio(a, b):
    """a / b formatted as a factor."""
    if a is None or b is None or b == 0:
        return "n/a"
    return "%.2f×" % (a / b)


def speedup(direct, mode):
    """Latency: how many times lower the mode is (direct / mode)."""
    return ratio(direct, mode)


# ---- wire tap sanity: frames captured but no distribution time at all ------------------------
wire_counts = [(hist(r, "wire_last_subscriber") or {}).get("count", 0) for r in RUNS if r["json"]]
tap_frames = [r["json"]["totals"].get("tap_frames", 0) for r in RUNS if r["json"]]
TAP_BROKEN = bool(wire_counts) and sum(wire_counts) == 0 and sum(tap_frames) > 0

# ---- the document ----------------------------------------------------------------------------
L = []
w = L.append
w("# mqoff benchmarks")
w("")
w("Generated by `make bench` (`%s`) on %s; every run of it rewrites this file and "
  "`docs/bench-latency.png`. Commit %s%s." % (re.sub(r"\s*--keep \S+", "", MACHINE.get("argv", "bench/run.sh")).strip(),
                                              MACHINE.get("date", "?"),
                                              MACHINE.get("commit", "?"),
                                              " (with uncommitted changes)" if MACHINE.get("dirty", "0") not in ("0", "") else ""))
if QUICK:
    w("")
    w("**This is a `--quick` run**: a few scenarios, shorter; the default `make bench` runs them all.")
w("")
w("## Machine")
w("")
w("| | |")
w("|---|---|")
w("| CPU | %s, `nproc` = %s |" % (MACHINE.get("cpu", "?"), MACHINE.get("nproc", "?")))
w("| kernel | `uname -r` = %s |" % MACHINE.get("kernel", "?"))
w("| memory | %s MB |" % MACHINE.get("mem_mb", "?"))
w("| broker | %s (`set_tcp_nodelay true`, persistence off, one listener) |" % MACHINE.get("mosquitto", "?"))
w("| compiler | %s, `-O2` |" % MACHINE.get("gcc", "?"))
w("| load average | %s at the start, %s at the end |" % (MACHINE.get("loadavg_start", "?"), MACHINE.get("loadavg_end", "?")))
w("| wall time | %s s for the whole run, of which %s s waiting for the machine to be quiet |" %
  (MACHINE.get("elapsed_s", "?"), MACHINE.get("quiet_wait_total_s", "?")))
w("")
w("**Everything shares %s cores**: the load generator (`mqoff-bench`, one thread, plus its wire "
  "tap), Mosquitto (one thread), mqoff (one thread) and the kernel's veth and bridge forwarding. "
  "Client-side latencies therefore include the time the load generator itself needs to read "
  "N sockets, and a target that takes CPU from the others slows them. The CPU columns say who used "
  "what (the kernel's forwarding work is charged to whichever process it ran in). The machine is "
  "also shared with other work (builds, tests): see the quiet gate under Method." % MACHINE.get("nproc", "?"))
w("")
w("## Method")
w("")
w("```")
w("  [cli] 198.18.0.1 --veth-- [nic: br0 | mqoff proxy 198.18.0.3 | mqoff monitor | mqoff intercept 198.18.0.3 | mqoff-bridge] --veth-- [brk] 198.18.0.2 mosquitto")
w("                                                                      '-- intercept's channel (Unix socket) --'")
w("```")
w("")
w("Three network namespaces (`tools/mqoff-lab`, addresses from 198.18.0.0/15 only). Targets:")
w("")
w("| target | what is between the clients and Mosquitto | clients connect to |")
w("|---|---|---|")
w("| direct | the kernel bridge `br0` in the nic namespace | 198.18.0.2:1883 |")
w("| proxy | `mqoff proxy --listen 198.18.0.3:1883 --broker 198.18.0.2:1883 --acl open --exclusive` in the nic namespace | 198.18.0.3:1883 |")
w("| monitor | `br0` lets go of its ports (`ip -n NIC link set PORT nomaster`); `mqoff monitor --port-a Pnc --port-b Pnb --broker 198.18.0.2:1883 --acl open --exclusive --startup-hold 0` (the broker is fresh: no client connected before mqoff) | 198.18.0.2:1883 |")
w("| intercept | Mosquitto runs with `LD_PRELOAD=build/libmqoff-intercept.so MQOFF_CHANNEL=RES/chan` and one more line, `listener 1883 198.18.0.3`; `mqoff intercept --listen 198.18.0.3:1883 --channel RES/chan --acl open --exclusive` in the nic namespace serves that listener: the clients' path is proxy's, the broker side of each connection a socketpair handed over the channel (a Unix socket across the namespaces, as a DPU's PCIe channel would be) instead of a second TCP connection | 198.18.0.3:1883 |")
w("| bridge | as monitor, with `build/mqoff-bridge --port-a Pnc --port-b Pnb` (the null forwarder): the floor of a userspace bump | 198.18.0.2:1883 |")
w("| monitor-dpdk, bridge-dpdk | the same with `--io dpdk --eal \"--no-huge --no-pci --file-prefix F --vdev=net_af_packet0,iface=Pnc,framecnt=8192 --vdev=net_af_packet1,iface=Pnb,framecnt=8192\" --port-a net_af_packet0 --port-b net_af_packet1` | 198.18.0.2:1883 |")
w("| monitor-afxdp, bridge-afxdp | the same with `--io afxdp --port-a Pnc --port-b Pnb`, copy mode (bridge: native XDP, every frame to the socket; monitor: generic XDP steering the broker's TCP to the socket and the rest to the other port) | 198.18.0.2:1883 |")
w("")
w("- Every run: a fresh Mosquitto (and a fresh mqoff), then `mqoff-bench` in the cli namespace; "
  "%d repetitions per scenario, targets alternating, their order rotated each repetition. "
  "Every figure is the **median of the repetitions**; a ratio compares the medians of the same run." % REPS)
w("- Client-side latency (mqoff-bench): receive time minus the message's *scheduled* send time "
  "(open loop: a stall anywhere, the bench included, is counted). *first*/*last*: the first and the "
  "last subscriber to receive a message; *last* is the headline (publish → last subscriber).")
w("- Wire-level distribution time (`mqoff-bench --tap Pc` on the cli-side veth, in the cli "
  "namespace): kernel timestamp of the publisher's PUBLISH frame to that of the last delivery frame. "
  "A received frame is stamped where it reaches the veth (`SO_TIMESTAMPNS`), before any RPS "
  "queueing (see Receivers off the distributing core).")
w("- Ratios: for latencies **direct ÷ mode** (2× = the mode's latency is half of direct's); for "
  "throughput **mode ÷ direct**. Above 1 the mode is better.")
w("- CPU: utime+stime (`/proc/PID/stat`) of Mosquitto, of mqoff and of mqoff-bench over the whole "
  "bench run (connecting, warm-up, measurement, drain); CPU/delivery = (broker + mqoff) CPU ÷ "
  "every delivery of the run.")
w("- Before each run the harness waits (up to %s s) until the machine is nearly idle (≤ %s %% of all cores busy "
  "over 0.3 s), since other work on the machine (builds, other tests) would distort a 2-core run; "
  "runs that started without it are listed under Checks, and the wait of each run is in the last table."
  % (MACHINE.get("quiet_max_s", "20"), MACHINE.get("quiet_pct", "15")))
w("- Scenarios follow EMQ's names; durations are cut to fit the machine (the sample count is in each table).")
w("")
w("The exact bench command of each scenario is under its table (`--host 198.18.0.3` for proxy and "
  "intercept, 198.18.0.2 otherwise; `--label` the target; `--json` the run's record).")
if TAP_BROKEN:
    w("")
    w("**Wire-level figures are missing (n/a) in this run.** The tap captured frames (%d in all) "
      "but timed no message: `mqoff-bench --tap` binds its AF_PACKET socket to `ETH_P_IP`, and such a "
      "socket only receives frames *arriving* on the interface; the publisher's outgoing PUBLISH frames "
      "on the cli-side veth are never seen, so no message has a start time. Binding to `ETH_P_ALL` "
      "(tools/bench/tap.c) fixes it (checked with a patched copy outside the tree). Until then the "
      "wire-level targets cannot be judged." % sum(tap_frames))

# ---- headline ---------------------------------------------------------------------------------
w("")
w("## Headline: the project's targets")
w("")
w("| figure | direct | " + " | ".join("%s | %s vs direct" % (m, m) for m in MODES) + " | target | verdict |")
w("|---|---|" + "---|---|" * len(MODES) + "---|---|")


def verdict(val, need):
    if val is None:
        return "not measured"
    return "**met**" if val >= need else "**not met**"


def headline_lat(s, name, label, needs, unit="ms"):
    if not runs_of(s):
        return
    d = lat(s, "direct", name, "p99")
    cells = [label, ms(d) + " ms"]
    verdicts = []
    for mode in MODES:
        v = lat(s, mode, name, "p99")
        cells += [ms(v) + " ms", speedup(d, v)]
        need = needs.get(mode)
        if need is not None:
            val = d / v if d is not None and v else None
            verdicts.append("%s %s" % (mode, verdict(val, need)))
    tgt = ", ".join("%s ≥%g× lower" % (m, n) for m, n in needs.items()) if needs else "(information)"
    cells += [tgt, "; ".join(verdicts) if verdicts else ""]
    w("| " + " | ".join(cells) + " |")


s1k = "fanout-1-1000-1-q0"
headline_lat(s1k, "wire_last_subscriber", "fanout-1-1000-1 QoS 0: wire p99 distribution time",
             {"proxy": 3, "monitor": 10})
headline_lat(s1k, "last_subscriber", "fanout-1-1000-1 QoS 0: client p99 last subscriber", {"monitor": 2})
headline_lat("fanout-1-1000-1-q1", "wire_last_subscriber", "fanout-1-1000-1 QoS 1: wire p99 distribution time", {})
headline_lat("fanout-1-1000-1-q1", "last_subscriber", "fanout-1-1000-1 QoS 1: client p99 last subscriber", {})
headline_lat("rps-fanout-1-1000-1-q0", "wire_last_subscriber",
             "rps-fanout-1-1000-1 QoS 0 (clients' receive work on the other core): wire p99", {"monitor": 10})
headline_lat("payload-16384", "last_subscriber", "payload-16384: client p99 last subscriber", {"monitor": 1.5})
headline_lat("payload-65536", "last_subscriber",
             "payload-65536 (64 KiB × 10 subscribers × 500 msg/s): client p99 last subscriber", {"monitor": 1.5})


def sat_best(s, t):
    out = []
    for r in runs_of(s, t):
        j = r["json"]
        if j and j.get("saturation"):
            out.append(j["saturation"]["best_deliveries_per_s"])
    return med(out)


def sat_capped(s, t):
    """True when every sweep of t ran out of steps: its figure is a lower bound."""
    st = [(r["json"]["saturation"].get("stopped") or "") for r in runs_of(s, t) if r["json"] and r["json"].get("saturation")]
    return bool(st) and all("max-steps" in x for x in st)


def ge(s, t, text):
    return ("≥" + text) if text != "n/a" and sat_capped(s, t) else text


if runs_of("saturation"):
    d = sat_best("saturation", "direct")
    cells = ["saturation (1 → 1000): deliveries/s, p99 ≤ 250 ms, nothing lost", num(d)]
    vs = []
    for mode in MODES:
        v = sat_best("saturation", mode)
        cells += [ge("saturation", mode, num(v)), ge("saturation", mode, ratio(v, d))]
        vs.append("%s %s" % (mode, verdict(v / d if v is not None and d else None, 3)))
    cells += ["≥3× higher", "; ".join(vs)]
    w("| " + " | ".join(cells) + " |")
if runs_of("p2p-1000"):
    d = lat("p2p-1000", "direct", "last_subscriber", "p99")
    cells = ["p2p-1000: client p99 latency", ms(d) + " ms"]
    vs = []
    for mode in MODES:
        v = lat("p2p-1000", mode, "last_subscriber", "p99")
        cells += [ms(v) + " ms", speedup(d, v)]
        ok = None if d is None or v is None else (1.0 if v <= 1.1 * d else 0.0)
        vs.append("%s %s" % (mode, verdict(ok, 1)))
    cells += ["≤10% worse (ratio ≥0.91×)", "; ".join(vs)]
    w("| " + " | ".join(cells) + " |")
    headline_lat("p2p-1000", "wire_last_subscriber", "p2p-1000: wire p99 latency", {})
w("")
if not runs_of(s1k) and not runs_of("saturation") and not runs_of("p2p-1000"):
    w("(none of the headline scenarios was run this time)")
    w("")

# ---- intercept against proxy ------------------------------------------------------------------
NOISE = 1.10  # "as fast": within 10 %, the spread of repeated runs on a quiet 2-core machine


def lat_reps(s, t, name, pct):
    """The figure of every repetition of s on t (None left out), sorted."""
    return sorted(v for v in ((hist(r, name) or {}).get(pct) for r in runs_of(s, t)) if v is not None)


def spread(v):
    """'min–max' of the repetitions, in ms."""
    return "%s–%s" % (ms(v[0]), ms(v[-1])) if v else "n/a"


def intercept_section():
    both = [s for s in SCEN_ORDER if runs_of(s, "proxy") and runs_of(s, "intercept")]
    if not both:
        return
    w("## intercept mode against proxy mode")
    w("")
    w("Intercept mode runs proxy mode's loop, engine and output queues; only the broker side of a "
      "connection differs. Proxy mode opens a second TCP connection per client to the broker (here "
      "nic → brk over a veth); intercept mode hands the broker one end of a Unix socketpair over the "
      "channel, which the broker's `accept()` returns: no second TCP connection, no segments and "
      "acknowledgements, no veth hop on the broker side, and the broker reads and writes a local stream. "
      "The channel itself carries one message per client connection, never data. The clients' path "
      "(cli → 198.18.0.3 in nic) is the same for both. So:")
    w("")
    w("- where mqoff distributes (the fan-outs, p2p-1000, wildcard-10k, the payload sweep, saturation: "
      "every PUBLISH consumed, the broker only sees CONNECT, SUBSCRIBE and pings) the broker side carries "
      "almost nothing and both modes do the same work per message: the figures can differ only by the "
      "machine's noise;")
    w("- where the broker distributes (p2p-1000-pt: mqoff offloads nothing), every message crosses the "
      "broker side twice (publisher → broker, broker → subscriber), and intercept saves two TCP "
      "transfers per message: there it is faster, in latency and in CPU per delivery.")
    w("")
    w("Each latency row gives the median and the range of the repetitions. A p99 of a few thousand "
      "samples on a shared 2-core machine moves with whatever else runs (the machine's load is in the "
      "last table): where the ranges overlap, the two modes are not told apart by this run.")
    w("")
    w("| scenario | figure | proxy | (reps) | intercept | (reps) | proxy ÷ intercept | direct |")
    w("|---|---|---|---|---|---|---|---|")
    fast, noise, slow, total = 0, [], [], 0
    for s in both:
        if s in ("saturation",):
            p, i, d = sat_best(s, "proxy"), sat_best(s, "intercept"), sat_best(s, "direct")
            w("| %s | best deliveries/s | %s | | %s | | %s | %s |" % (
                s, ge(s, "proxy", num(p)), ge(s, "intercept", num(i)), ratio(i, p) if i and p else "n/a", num(d)))
            total += 1
            if p and i and i * NOISE < p and not sat_capped(s, "intercept"):
                slow.append("%s deliveries/s" % s)
            else:
                fast += 1
            continue
        if s == "fanout-5-1000-5":
            continue  # stepped: its table is below
        pcts = ("p50", "p99") if s.startswith("p2p") else ("p99",)
        for name, label in (("last_subscriber", "client last"), ("wire_last_subscriber", "wire last")):
            for pct in pcts:
                pv, iv = lat_reps(s, "proxy", name, pct), lat_reps(s, "intercept", name, pct)
                p, i, d = med(pv), med(iv), lat(s, "direct", name, pct)
                if p is None or i is None:
                    continue
                total += 1
                fig = "%s %s %s" % (s, label, pct)
                if i <= p * NOISE:
                    fast += 1
                elif iv[0] <= pv[-1]:
                    noise.append(fig)
                else:
                    slow.append(fig)
                w("| %s | %s %s ms | %s | %s | %s | %s | %s | %s |" % (
                    s, label, pct, ms(p), spread(pv), ms(i), spread(iv), ratio(p, i), ms(d)))
        pc, ic = cpu_per_delivery(s, "proxy"), cpu_per_delivery(s, "intercept")
        if pc is not None and ic is not None:
            w("| %s | broker + mqoff CPU µs/delivery | %s | | %s | | %s | %s |" % (
                s, num(pc, "%.1f"), num(ic, "%.1f"), ratio(pc, ic), num(cpu_per_delivery(s, "direct"), "%.1f")))
    w("")
    w("Ratios above 1: intercept is better. Medians of the repetitions, as everywhere on this page.")
    w("")
    w("**Against proxy**, %d figures: intercept's median at most %d %% above proxy's (as fast or faster) "
      "on %d; above that but within proxy's own range of repetitions (not told apart) on %d%s; slower "
      "than proxy in every repetition on %d%s." % (
          total, round((NOISE - 1) * 100), fast, len(noise), (" (" + ", ".join(noise) + ")") if noise else "",
          len(slow), (" (" + ", ".join(slow) + ")") if slow else ""))
    for s in ("p2p-1000", "p2p-1000-pt"):
        p, i = lat(s, "proxy", "last_subscriber", "p50"), lat(s, "intercept", "last_subscriber", "p50")
        p9, i9 = lat(s, "proxy", "last_subscriber", "p99"), lat(s, "intercept", "last_subscriber", "p99")
        pw, iw = lat(s, "proxy", "wire_last_subscriber", "p99"), lat(s, "intercept", "wire_last_subscriber", "p99")
        if p is None or i is None:
            continue
        w("")
        w("**%s**: client p50 %s ms through intercept against %s ms through proxy (%s), p99 %s against %s ms "
          "(%s), wire p99 %s against %s ms (%s)." % (s, ms(i), ms(p), ratio(p, i), ms(i9), ms(p9), ratio(p9, i9),
                                                    ms(iw), ms(pw), ratio(pw, iw)))
    w("")


intercept_section()


# ---- memory per connection ----------------------------------------------------------------------
def kb(r, k):
    v = r["meta"].get(k, "")
    return int(v) if v.isdigit() else None


def mem_section():
    s = "mem-max"
    if not runs_of(s):
        return
    w("## Memory per connection")
    w("")
    w("`mem-max`: idle clients, as many as RLIMIT_NOFILE's hard limit allows each target (as "
      "fanout-1-max-1: mqoff proxy holds two descriptors per client, so it serves half as many): "
      "one publisher at 1 msg/s for 5 s, QoS 0, one topic. Per run, the resident memory of the "
      "broker and of mqoff before the clients came (VmRSS) and its peak (VmHWM) at the end; *per "
      "client* is the peak divided by the clients, *above start* the peak less the memory before "
      "the clients, divided by the clients (the cost of one more connection). In proxy and "
      "monitor mode the broker holds a connection per client too (from mqoff in proxy mode): "
      "its figures are beside mqoff's. Kernel memory (socket buffers) is not resident memory "
      "of either process and is not counted.")
    w("")
    w("| target | clients | runs | broker peak MB | broker per client | broker above start | "
      "mqoff peak MB | mqoff per client | mqoff above start | mqoff above start vs Mosquitto direct |")
    w("|---|---|---|---|---|---|---|---|---|---|")

    def per(rs, who):
        tot, inc = [], []
        for r in rs:
            n = int(r["meta"].get("subs_max") or 0)
            h, z = kb(r, who + "_hwm_kb"), kb(r, who + "_rss0_kb")
            if not n or h is None:
                continue
            tot.append(h * 1024 / n)
            if z is not None:
                inc.append((h - z) * 1024 / n)
        return med(tot), med(inc), med([kb(r, who + "_hwm_kb") / 1024 for r in rs if kb(r, who + "_hwm_kb")])

    _, d_inc, _ = per([r for r in runs_of(s, "direct") if r["json"]], "broker")
    for t in targets_of(s):
        rs = [r for r in runs_of(s, t) if r["json"]]
        n = med([int(r["meta"]["subs_max"]) for r in rs if r["meta"].get("subs_max")])
        bt, bi, bp = per(rs, "broker")
        mt, mi, mp = per(rs, "mqoff")
        b = lambda v: "n/a" if v is None else "%.0f B" % v
        w("| %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s |" % (
            t, num(n), n_ok(s, t), len(runs_of(s, t)), num(bp, "%.1f"), b(bt), b(bi),
            "" if t == "direct" else num(mp, "%.1f"), "" if t == "direct" else b(mt),
            "" if t == "direct" else b(mi),
            "" if t == "direct" or mi is None or not d_inc else "%.2f×" % (mi / d_inc)))
    w("")
    w("Medians over the runs. Target: mqoff's memory per idle client below Mosquitto's (the last "
      "column below 1×). Before output chunks were freed once written (docs/ARCHITECTURE.md, Memory "
      "per connection), proxy mode took 10.4 KiB per client above start (6000 clients, Mosquitto "
      "0.9 KiB in the same run); where the rest goes, per structure, is listed there. In "
      "monitor mode the peak is a fan-out to all the clients (an allocation trace shows it): "
      "their connections' state, and transit state only for the deliveries whose frames are "
      "out and not acknowledged yet (the others wait unwritten).")
    c = bench_cmd(s)
    if c:
        w("")
        w("```")
        w(c)
        w("```")
    w("")



# ---- receivers off the distributing core --------------------------------------------------------
def own_cpu_per_delivery(s, t):
    """The distributing process's own CPU per delivery, µs: the broker direct, mqoff otherwise."""
    out = []
    for r in runs_of(s, t):
        j = r["json"]
        if not j or not j["totals"]["delivered"]:
            continue
        c = r["broker_s"] if t == "direct" else r["mqoff_s"]
        if c is not None:
            out.append(c / j["totals"]["delivered"] * 1e6)
    return med(out)


def rps_section():
    rs_names = [x for x in SCEN_ORDER if x.startswith("rps-") and x != "rps-floor" and runs_of(x)]
    if not rs_names:
        return
    w("## Receivers off the distributing core")
    w("")
    w("On this 2-core machine veth runs the receiving side's softirq inline in the sender's send "
      "call, so with 1000 subscribers the distributing process's wire times include their TCP "
      "receive work, which in a deployment runs on the clients' hosts. The `rps-` variants move "
      "the client namespace's receive processing to the second core (`tools/mqoff-lab rps on`: "
      "RPS, `rx-0/rps_cpus` of the cli veth) and pin the broker and mqoff to the first core, "
      "mqoff-bench to the second (it shares that core with the receivers, as it would share the "
      "clients' hosts). *own CPU µs/delivery* is the distributing process's CPU time over the run "
      "per delivery: the broker's direct, mqoff's through proxy and monitor (the broker does "
      "next to nothing there); *broker* and *mqoff* are each process's. The plain scenario's "
      "figures from the same run are beside (*as today*: receivers inline).")
    w("")
    w("*wire* is mqoff-bench's tap on the clients' veth, as in every scenario: from the "
      "publisher's PUBLISH frame to the last subscriber's delivery frame. Its frames carry the "
      "kernel's receive timestamps (the tap asks for them, `SO_TIMESTAMPNS`, and with "
      "`net.core.netdev_tstamp_prequeue` = 1, the default, a frame is stamped in `netif_rx`, "
      "where it reaches the interface, before RPS queues it to the clients' core): the time a "
      "delivery arrived, not the time the clients' core got to it, which with 1000 subscribers "
      "and the bench on one core comes up to a millisecond later in a burst. The capture itself "
      "runs on the clients' core. (A capture where the deliveries leave, `--sender-tap` on the "
      "nic's veth, agrees with it to within the histograms' resolution, but costs the "
      "distributing core its copy of every frame: it is not used here.)")
    fl = runs_of("rps-floor", "emit")

    def emit(pc):
        return med([float(r["meta"]["emit_%s_us" % pc]) * 1e3 for r in fl if r["meta"].get("emit_%s_us" % pc)])
    f50, f99 = emit("p50"), emit("p99")
    if fl:
        w("")
        w("**The floor.** `rps-floor` (bench/emit_floor, target *emit*): 1000 frames of a QoS 0 "
          "delivery's size (140 bytes, in the buffers the bump takes for them) built from a template and sent out of the nic's veth toward "
          "the clients through the same packet I/O as monitor mode (AF_PACKET, bursts of up to 256 "
          "to `sendmmsg`), from the first core, 20 bursts a second, with the clients' receive "
          "processing on the other core as in the rps scenarios: nothing else is done per frame, "
          "so this is what emitting a 1000-subscriber fan-out costs here before any MQTT or TCP "
          "work. From the first frame built to the last one taken, medians over %d runs of %s "
          "bursts: **p50 %s ms, p99 %s ms** (%s µs a frame at the median). *wire p50 vs the floor* "
          "below is each mode's wire p50 divided by the floor's p50." % (
              len(fl), fl[0]["meta"].get("emit_bursts", "?"),
              ms(f50), ms(f99), num(f50 / 1e3 / 1000 if f50 else None, "%.2f")))
    for s in rs_names:
        base = s[len("rps-"):]
        w("")
        w("### %s" % s)
        w("")
        w("| target | runs | wire p50 | wire p50 vs direct | wire p99 | wire p99 vs direct | "
          "client last p99 | wire p50 vs the floor |")
        w("|---|---|---|---|---|---|---|---|")
        RW = "wire_last_subscriber"
        dw50, dw = lat(s, "direct", RW, "p50"), lat(s, "direct", RW, "p99")
        for t in targets_of(s):
            w50, w99 = lat(s, t, RW, "p50"), lat(s, t, RW, "p99")
            cells = [t, "%d/%d" % (n_ok(s, t), len(runs_of(s, t))),
                     ms(w50), "" if t == "direct" else speedup(dw50, w50),
                     ms(w99), "" if t == "direct" else speedup(dw, w99),
                     ms(lat(s, t, "last_subscriber", "p99")),
                     "%.2f×" % (w50 / f50) if w50 and f50 else "n/a"]
            w("| " + " | ".join(cells) + " |")
        w("")
        w("| target | own CPU µs/delivery | broker CPU s | mqoff CPU s | as today: wire p50 | "
          "as today: wire p99 | as today: p99 vs direct | as today: own CPU µs/delivery |")
        w("|---|---|---|---|---|---|---|---|")
        bdw = lat(base, "direct", RW, "p99") if runs_of(base) else None
        for t in targets_of(s):
            b99 = lat(base, t, RW, "p99") if runs_of(base, t) else None
            cells = [t, num(own_cpu_per_delivery(s, t), "%.1f"), fmt_s(cpu(s, t, "broker")),
                     "" if t == "direct" else fmt_s(cpu(s, t, "mqoff")),
                     ms(lat(base, t, RW, "p50")) if runs_of(base, t) else "not run",
                     ms(b99) if runs_of(base, t) else "not run",
                     "" if t == "direct" or not runs_of(base, t) else speedup(bdw, b99),
                     num(own_cpu_per_delivery(base, t), "%.1f") if runs_of(base, t) else ""]
            w("| " + " | ".join(cells) + " |")
        w("")
        w("Latencies in ms, medians over the runs; *as today* is the plain scenario (receivers "
          "inline). Target (monitor, rps-fanout-1-1000-1): wire p99 at least 10× lower than "
          "direct. Per run (wire p99, ms): %s." % "; ".join(
              "%s %s" % (t, ", ".join(ms((hist(r, RW) or {}).get("p99"))
                                       for r in sorted(runs_of(s, t), key=lambda r: r["rep"]) if r["json"]))
              for t in targets_of(s)))
        busy = [r for r in runs_of(s) + runs_of(base) if r["meta"].get("quiet") == "0"]
        if busy:
            w("")
            w("%d of the %d runs here (this variant and the plain one) started while the machine was "
              "busy with other work (bench/run.sh waits up to %s s for it to calm down, then runs): "
              "p99 figures are the first to show it." % (len(busy), len(runs_of(s) + runs_of(base)),
                                                         MACHINE.get("quiet_max_s", "?")))
        c = bench_cmd(s)
        if c:
            w("")
            w("```")
            w("tools/mqoff-lab rps on; taskset -a -p -c 0 BROKER_PID; taskset -a -p -c 0 MQOFF_PID")
            w(c)
            w("```")
    w("")



# ---- packet I/O backends ----------------------------------------------------------------------
def fmt_s(v):
    return "n/a" if v is None else "%.2f" % v




def floor_rate(s, t):
    """(frames, CPU s, frames per CPU-second, frames/s wall, frames per loop iteration): medians
    over the runs."""
    fr, cs, per, wall, it = [], [], [], [], []
    for r in runs_of(s, t):
        if r["meta"].get("setup_failed") or not r["meta"].get("mqoff_ticks"):
            continue
        try:
            text = open(os.path.join(RES, "runs", "%s.%s.%d.mqoff.log" % (s, t, r["rep"])), errors="replace").read()
        except OSError:
            continue
        n = sum(int(x) for x in re.findall(r"^port [ab] [^:]*: rx (\d+) frames", text, re.M))
        c = r["mqoff_s"]
        ws = float(r["meta"].get("wall_s") or 0)
        if not n or not c:
            continue
        fr.append(n)
        cs.append(c)
        per.append(n / c)
        if ws:
            wall.append(n / ws)
        m = re.search(r"iterations (\d+)", text)
        if m and int(m.group(1)):
            it.append(n / int(m.group(1)))
    return med(fr), med(cs), med(per), med(wall), med(it)


BACKEND_TARGETS = [("monitor" + k, v) for k, v in IO_NAMES.items()]
if any(runs_of(s) for s in FLOORS) or any(runs_of(x, t) for x in ("saturation", s1k) for t, _ in BACKEND_TARGETS[1:]):
    w("## Packet I/O backends")
    w("")
    w("Monitor mode and mqoff-bridge read and write frames through one of three backends (`--io`, "
      "src/pktio): AF_PACKET rings (the default), AF_XDP sockets (an XDP program on each port "
      "redirects frames to a UMEM of mqoff's) and DPDK ethdev ports. In this lab every port is "
      "a veth: DPDK reaches it through its `net_af_packet` driver (an AF_PACKET ring of its own, "
      "8192 frames, `--no-huge`), AF_XDP in copy mode: mqoff-bridge with native veth XDP sending "
      "every frame to the socket, monitor mode with generic XDP sending the broker's TCP to the "
      "socket and forwarding the rest port to port in the kernel (docs/ARCHITECTURE.md: a veth "
      "drops frames redirected to it in native mode unless its far end runs NAPI). Same loop, same "
      "splice and engine above. In these scenarios nearly every frame is the broker's, so the "
      "steering changes little here beyond the XDP mode.")
    if any(runs_of(s) for s in FLOORS):
        w("")
        w("### The floor: what forwarding a frame costs")
        w("")
        w("`mqoff-bridge` between the two veths while `bench/floor.py` sends from cli to brk for 5 s: "
          "**floor-pps** 64-byte frames (18-byte UDP datagrams into a socket that never reads), "
          "**floor-bulk** a TCP transfer (1514-byte frames one way, ACKs the other). Frames: both "
          "ports' receive counters from the bridge's closing summary; CPU: mqoff-bridge's utime+stime "
          "over the load (the kernel work of a veth transmission, the peer's receive path included, is "
          "charged to the sending process, so these figures include it). Medians of %d runs." % REPS)
        w("")
        w("| scenario | backend | frames | mqoff-bridge CPU s | frames per CPU-second | vs AF_PACKET | frames/s (wall) | "
          "frames per loop iteration |")
        w("|---|---|---|---|---|---|---|---|")
        for s in FLOORS:
            base = floor_rate(s, "bridge")[2]
            for suf, nm in IO_NAMES.items():
                t = "bridge" + suf
                if not runs_of(s, t):
                    continue
                n, c, per, wall, it = floor_rate(s, t)
                w("| %s | %s | %s | %s | **%s** | %s | %s | %s |" % (s, nm, num(n), fmt_s(c), num(per),
                                                                "" if not suf else ratio(per, base), num(wall),
                                                                num(it, "%.1f")))
        w("")
    rows = []
    for t, nm in BACKEND_TARGETS:
        if not any(runs_of(x, t) for x in (s1k, "fanout-1-1000-1-q1", "saturation")):
            continue
        rows.append((t, nm))
    if rows:
        w("### Monitor mode on each backend")
        w("")
        w("| backend | fanout-1-1000-1 QoS 0: last p50 / p99 ms | mqoff CPU s | QoS 1: last p50 / p99 ms | mqoff CPU s | "
          "saturation: best deliveries/s | vs AF_PACKET |")
        w("|---|---|---|---|---|---|---|")
        base = sat_best("saturation", "monitor")
        for t, nm in rows:
            q1 = "fanout-1-1000-1-q1"
            w("| %s | %s / %s | %s | %s / %s | %s | %s | %s |" % (
                nm, ms(lat(s1k, t, "last_subscriber", "p50")), ms(lat(s1k, t, "last_subscriber", "p99")),
                fmt_s(cpu(s1k, t, "mqoff")), ms(lat(q1, t, "last_subscriber", "p50")),
                ms(lat(q1, t, "last_subscriber", "p99")), fmt_s(cpu(q1, t, "mqoff")),
                ge("saturation", t, num(sat_best("saturation", t))),
                "" if t == "monitor" else ratio(sat_best("saturation", t), base)))
        w("")
        if not SECTION:
            w("The scenarios' own sections below have every figure (first subscriber, wire times, broker CPU).")
            w("")
    # which is fastest: per frame (the floors' frames per CPU-second, the cleanest per-frame
    # figures), and monitor mode's own cost (mqoff CPU over fanout-1-1000-1, saturation)
    def ranked(vals, hi_best=True, fmt="%.0f"):
        vals = {k: v for k, v in vals.items() if v}
        if not vals:
            return None, ""
        order = sorted(vals, key=vals.get, reverse=hi_best)
        return order[0], "; ".join("%s %s" % (k, num(vals[k], fmt)) for k in order)
    w("### Which is fastest here, and why")
    w("")
    for sc, what in (("floor-pps", "small frames (floor-pps, frames per CPU-second)"),
                     ("floor-bulk", "full-size frames (floor-bulk, frames per CPU-second)")):
        best, txt = ranked({nm: floor_rate(sc, "bridge" + suf)[2] for suf, nm in IO_NAMES.items()})
        if best:
            w("- **Forwarding %s: %s** (%s)." % (what, best, txt))
    for sc, q in ((s1k, "0"), ("fanout-1-1000-1-q1", "1")):
        best, txt = ranked({nm: cpu(sc, t, "mqoff") for t, nm in BACKEND_TARGETS}, False, "%.2f")
        if best:
            w("- **Monitor mode, fanout-1-1000-1 QoS %s, mqoff's CPU (less is better): %s** (%s s)." % (q, best, txt))
    sat = {nm: sat_best("saturation", t) for t, nm in BACKEND_TARGETS}
    best, txt = ranked(sat)
    if best:
        capped = [nm for t, nm in BACKEND_TARGETS if sat.get(nm) and sat_capped("saturation", t)]
        top = sorted(v for v in sat.values() if v)
        if len(capped) == len([v for v in sat.values() if v]):
            w("- **Monitor mode's saturation: no winner** (%s deliveries/s): every backend passed every "
              "step of the sweep, whose highest rate does not separate them." % txt)
        elif len(top) > 1 and top[-1] == top[-2]:
            w("- **Monitor mode's saturation: no winner** (%s deliveries/s): the best of them reached "
              "the same step of the ×1.5 sweep (medians of the runs)." % txt)
        else:
            w("- **Monitor mode's saturation: %s** (%s deliveries/s%s)." % (
                best, txt, "; ≥: passed every step" if capped else ""))
    w("")
    w("Why, from what each backend does per frame:")
    w("")
    w("- Every backend ends in the same kernel path here: a frame sent on a veth becomes an skb and "
      "runs the peer's receive path inside the sender's system call (AF_PACKET's `sendmmsg`, the "
      "`net_af_packet` driver's TX-ring kick, AF_XDP's `sendto` in copy mode). That work, charged to "
      "the forwarder, is most of a frame's cost, and it is the same for the three; they differ in "
      "what they add around it.")
    w("- AF_PACKET (event-driven): the loop sleeps in `ppoll` and is woken for the next frame; with "
      "small frames arriving one by one a wake-up brings one or two (frames per loop iteration "
      "above), so each pays for a wake-up, a `ppoll` and a `sendmmsg` of its own. The ring is read "
      "in place and `sendmmsg` copies once.")
    w("- DPDK (polled): no descriptor to wait on, so the loop looks again after 16 µs, doubling to "
      "256 µs while idle (src/modes/bump.c): under load each look finds a larger burst (frames per "
      "loop iteration above), and the driver's TX kick and the loop's bookkeeping are shared by more "
      "frames: that is what wins for small frames. But `net_af_packet` copies every frame twice more "
      "than mqoff's own AF_PACKET backend (its kernel ring into an mbuf on receive, the mbuf into its "
      "TX ring on transmit), and allocates and frees an mbuf per frame: with full-size frames, and in "
      "monitor mode, where the splice builds most frames itself, that costs more than the batching "
      "saves (the copies and mbufs are what it does more; not profiled further). A frame that arrives while the loop sleeps waits up to 256 µs (`--busy-poll US` spins "
      "instead).")
    w("- AF_XDP in copy mode: the kernel copies each frame into the UMEM on receive and out of it on "
      "transmit, and mqoff copies a forwarded frame from one port's UMEM into the other's (one UMEM per "
      "port), a `sendto` per 32 frames (the kernel's copy-mode batch); like AF_PACKET it is woken per "
      "readable event, but its transmit goes straight to the device (no queueing discipline) and its "
      "receive skips the kernel's packet-socket delivery: the likely source of its gain on full-size "
      "frames (not profiled further).")
    w("")
    w("### What a real NIC would change")
    w("")
    w("- **DPDK with a hardware driver** (mlx5 on a BlueField-2, ice, i40e) takes the kernel out of the "
      "path: frames are DMA'd into mbufs and out of them, so the per-frame cost above (mostly the veth's "
      "skb work) disappears and the loop's own work is what is left; polling then wins clearly. The "
      "backend already turns on what the driver reports: TCP/UDP checksum on transmit (a frame flagged "
      "partial leaves without a software sum) and checksum verification on receive (the splice then "
      "skips its own) — the splice then sums no payload at all — and TSO: the splice hands the "
      "device frames of up to 64 000 bytes, whole multiples of the receiver's MSS, built as mbuf "
      "chains, instead of building and sending every segment itself. Neither runs in these figures "
      "(`net_af_packet` reports neither); the lab exercises both through `net_tap`, which does them "
      "in software (`test_fanout.sh` on DPDK). A fan-out's frames "
      "reference the shared payload (external-buffer mbufs) where the device reads the CPU's memory "
      "(the software drivers here); on a NIC the payload must be registered for DMA "
      "(`rte_extmem_register`), which the engine's allocator does not do yet, so there it is copied. "
      "`rte_flow` rules in the NIC's switch send the broker's traffic to mqoff and forward everything "
      "else port to port in hardware; the drivers here have no flow support and say so at start.")
    w("- **AF_XDP zero-copy** (ice, mlx5, i40e) drops the kernel's two copies; the copy between the "
      "two ports' UMEMs stays unless both sockets share one UMEM. Steering stays in native XDP there "
      "(the target is no veth): what is not the broker's is forwarded by the driver, never copied.")
    w("- **RSS**: mqoff runs one thread on one queue per port. A multi-queue NIC would spread "
      "connections over queues by a symmetric hash (both directions of a connection on one queue), "
      "one loop and splice per queue, with the subscription table shared: not built.")
    w("")

# ---- per-scenario tables ----------------------------------------------------------------------
DESC = {
    "fanout": "1 publisher, %s subscriber(s) on one topic (exact filter), QoS %s.",
    "fanout-5-1000-5": "5 publishers on 5 topics, 1000 subscribers each subscribed to `STR/+` "
                       "(every subscriber gets every message: 5000 deliveries per round), the rate "
                       "stepped (`--saturation --max-steps 2`, a lax bound so both steps run).",
    "saturation": "1 publisher, 1000 subscribers; `--saturation` steps the rate up ×1.5 from 15 msg/s "
                  "(2 s measured per step, after 1 s unmeasured) while p99 last-subscriber latency stays ≤ 250 ms with nothing "
                  "lost or unsent; the result is the best step's deliveries/s.",
    "p2p-1000": "1000 publishers and 1000 subscribers in pairs on 1000 topics (exact filters); "
                "every message has one subscriber.",
    "p2p-1000-pt": "p2p-1000 with mqoff offloading nothing (run without `--exclusive`): every message "
                   "goes client → mqoff → broker → mqoff → client, so the broker side of the "
                   "connections carries all of it (direct: client → broker → client).",
    "wildcard-10k": "10 000 filters, a publish matches 5 of them: 100 subscribers, each with one exact "
                    "filter on one of 20 topics (5 subscribers per topic) and 99 decoys "
                    "(`mqoff-bench --decoys 99`: a fixed mix of exact, `+` and `#` filters under the same "
                    "prefix and sharing levels with the real topics, e.g. `STR/tJ/dN/#`, `STR/+/dN`, "
                    "`+/dN`, that match no published topic); 20 publishers, one per topic, QoS 0: every "
                    "publish is matched against a table of 10 000 filters.",
    "payload": "fan-out 1-10-1, QoS 0, %s-byte payload.",
    "fanout-1-max-1": "1 publisher, QoS 0 at 1 msg/s (8 s measured after 2 s), to the largest subscriber count "
                      "RLIMIT_NOFILE's hard limit allows each target: Mosquitto and mqoff-bench hold one "
                      "descriptor per client, mqoff proxy and intercept two, so they run with half as many (column "
                      "*subscribers*). Each run in a fresh lab. Beside the latencies: the messages lost, "
                      "mqoff's drops (receive rings and output queues, monitor), its retransmissions "
                      "(timeouts) and resets, the frames it held back for a busy port (*deferred*, "
                      "sent later, not lost) and the kernels' TCP retransmitted segments in the client "
                      "and broker namespaces over the whole bench run: at setup 20 000 clients overflow Mosquitto's "
                      "listen queue (SYNs and first segments sent again, with or without mqoff); at the end "
                      "they all disconnect at once, and through monitor mode's single thread that burst of "
                      "about 100 000 frames takes longer than the endpoints' 200 ms minimum RTO, so most "
                      "FINs and DISCONNECTs are sent twice. Measured at 0.5 s resolution, the fan-out itself "
                      "causes none.",
    "floor": "1 publisher, 1 subscriber: the kernel bridge against `mqoff-bridge`, the null "
             "userspace forwarder (AF_PACKET rings) that monitor mode is built on: the floor of a userspace bump.",
    "floor-pps": "mqoff-bridge on each backend, 64-byte frames for 5 s (see Packet I/O backends).",
    "floor-bulk": "mqoff-bridge on each backend, a TCP transfer for 5 s (see Packet I/O backends).",
}


def describe(s):
    m = re.match(r"fanout-1-(\d+)-1-q(\d)", s)
    if m:
        return DESC["fanout"] % (m.group(1), m.group(2))
    if s.startswith("payload-"):
        return DESC["payload"] % s.split("-", 1)[1]
    return DESC.get(s, "")


def bench_cmd(s):
    for r in runs_of(s):
        c = r["meta"].get("cmd")
        if c:
            return re.sub(r"--host \S+ --label \S+", "--host ADDR --label TARGET", c)
    return None


def run_table(s):
    ts = targets_of(s)
    w("| target | runs | last p50 | last p99 | last p99 vs direct | first p50 | first p99 | wire p50 | wire p99 | "
      "wire p99 vs direct | deliveries/s | lost | broker CPU s | mqoff CPU s | bench CPU s | CPU µs/delivery |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    dl = lat(s, "direct", "last_subscriber", "p99")
    dw = lat(s, "direct", "wire_last_subscriber", "p99")
    for t in ts:
        l99 = lat(s, t, "last_subscriber", "p99")
        w99 = lat(s, t, "wire_last_subscriber", "p99")
        lost = med([r["json"]["totals"]["lost"] for r in runs_of(s, t) if r["json"]])
        cells = [t, "%d/%d" % (n_ok(s, t), len(runs_of(s, t))),
                 ms(lat(s, t, "last_subscriber", "p50")), ms(l99), "" if t == "direct" else speedup(dl, l99),
                 ms(lat(s, t, "first_subscriber", "p50")), ms(lat(s, t, "first_subscriber", "p99")),
                 ms(lat(s, t, "wire_last_subscriber", "p50")), ms(w99), "" if t == "direct" else speedup(dw, w99),
                 num(win_val(s, t, "deliveries_per_s")), num(lost),
                 fmt_s(cpu(s, t, "broker")), "" if t == "direct" else fmt_s(cpu(s, t, "mqoff")),
                 fmt_s(cpu(s, t, "bench")), num(cpu_per_delivery(s, t), "%.1f")]
        w("| " + " | ".join(cells) + " |")
    n = samples(s, ts[0]) if ts else None
    w("")
    w("Latencies in ms. Samples per run (messages that reached every subscriber in the measured window): %s. "
      "CPU in seconds over the whole bench run (for `bridge` the mqoff column is mqoff-bridge)." % num(n))


def max_table(s):
    w("| target | subscribers | runs | last p50 | last p99 | last max | deliveries/s | lost | dup+reorder | "
      "mqoff drops (rings, queues) | mqoff retransmits (timeouts) | resets | deferred | TCP retrans cli / brk |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in targets_of(s):
        rs = [r for r in runs_of(s, t) if r["json"]]
        subs = med([int(r["meta"]["subs_max"]) for r in rs if r["meta"].get("subs_max")])
        tot = lambda k: med([r["json"]["totals"].get(k, 0) for r in rs])
        mq = lambda k: med([r["mq"].get(k, 0) for r in rs]) if t != "direct" else None
        tcp = lambda ns: med([int(r["meta"].get("tcp_" + ns, "0").split()[0]) for r in rs if r["meta"].get("tcp_" + ns)])
        drops = None if t == "direct" else med([r["mq"].get("rx_dropped", 0) + r["mq"].get("queue_drops", 0) for r in rs])
        rtx = "" if t == "direct" or t.startswith("bridge") or mq("retransmits") is None else "%s (%s)" % (num(mq("retransmits")), num(mq("rto")))
        cells = [t, num(subs), "%d/%d" % (n_ok(s, t), len(runs_of(s, t))),
                 ms(lat(s, t, "last_subscriber", "p50")), ms(lat(s, t, "last_subscriber", "p99")),
                 ms(lat(s, t, "last_subscriber", "max")), num(win_val(s, t, "deliveries_per_s")), num(tot("lost")),
                 num(med([r["json"]["totals"].get("dup", 0) + r["json"]["totals"].get("reorder", 0) for r in rs])),
                 "" if drops is None else num(drops), rtx,
                 "" if t in ("direct", "bridge") else num(mq("resets")),
                 "" if t in ("direct", "proxy", "intercept") else num(mq("deferred")),
                 "%s / %s" % (num(tcp("cli")), num(tcp("brk")))]
        w("| " + " | ".join(cells) + " |")
    w("")
    w("Latencies in ms; medians over the runs. mqoff's counters are from its closing summary, "
      "the TCP ones from `nstat` in the namespaces over the bench run (connection setup and teardown included).")


def steps_table(s):
    ts = targets_of(s)
    w("| target | step | offered msg/s | deliveries/s (offered) | deliveries/s | vs direct | last p50 | last p99 | "
      "wire p99 | lost | met bound |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    nsteps = 0
    for r in runs_of(s):
        if r["json"]:
            nsteps = max(nsteps, len(r["json"]["windows"]))
    for k in range(nsteps):
        dd = win_val(s, "direct", "deliveries_per_s", k)
        for t in ts:
            rs = [r for r in runs_of(s, t) if r["json"] and len(r["json"]["windows"]) > k]
            if not rs:
                continue
            wins = [r["json"]["windows"][k] for r in rs]
            offered = med([x["offered_msgs_per_s"] for x in wins])
            exp = med([x["expected"] / x["duration_s"] for x in wins if x["duration_s"]])
            dv = med([x["deliveries_per_s"] for x in wins])
            met = sum(1 for x in wins if x.get("met_bound"))
            cells = [t, str(k), num(offered, "%.1f"), num(exp), num(dv), "" if t == "direct" else ratio(dv, dd),
                     ms(lat(s, t, "last_subscriber", "p50", k)), ms(lat(s, t, "last_subscriber", "p99", k)),
                     ms(lat(s, t, "wire_last_subscriber", "p99", k)),
                     num(med([x["lost"] for x in wins])), "%d of %d runs" % (met, len(wins))]
            w("| " + " | ".join(cells) + " |")
    w("")
    w("Latencies in ms; medians over the runs that reached the step.")


# Segmentation offload in monitor mode: measured once, by hand (with the binary before the
# change as a second target), so kept as written; a run of payload-16384/65536 updates the
# scenario tables below.
GSO_SECTION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gso.md")
if os.path.exists(GSO_SECTION):
    for line in open(GSO_SECTION).read().rstrip("\n").split("\n"):
        w(line)
    w("")
mem_section()
rps_section()

w("## Scenarios")
for s in SCEN_ORDER:
    if not runs_of(s) or s == "mem-max" or s.startswith("rps-"):
        continue  # their own sections above
    w("")
    w("### %s" % s)
    w("")
    d = describe(s)
    if d:
        w(d)
        w("")
    if s == "saturation":
        w("| target | best deliveries/s (median) | vs direct | per run | stopped because | broker CPU s | mqoff CPU s |")
        w("|---|---|---|---|---|---|---|")
        dbest = sat_best(s, "direct")
        for t in targets_of(s):
            per = []
            why = []
            for r in sorted(runs_of(s, t), key=lambda r: r["rep"]):
                j = r["json"]
                if j and j.get("saturation"):
                    per.append("%.0f" % j["saturation"]["best_deliveries_per_s"])
                    why.append(j["saturation"].get("stopped") or "")
                else:
                    per.append("failed")
            why_u = sorted(set(why))
            best = sat_best(s, t)
            w("| %s | %s | %s | %s | %s | %s | %s |" % (t, ge(s, t, num(best)), "" if t == "direct" else ge(s, t, ratio(best, dbest)),
                                                        ", ".join(per), "; ".join(why_u), fmt_s(cpu(s, t, "broker")),
                                                        "" if t == "direct" else fmt_s(cpu(s, t, "mqoff"))))
        w("")
        capped = [t for t in targets_of(s) if sat_capped(s, t)]
        if capped:
            w("%s: the sweep ran out of steps (`--max-steps`) with every step within the bound, so its "
              "figure is a lower bound (≥); its ceiling on this machine is higher." % ", ".join(capped))
            w("")
        steps_table(s)
    elif s == "fanout-5-1000-5":
        steps_table(s)
    elif s == "fanout-1-max-1":
        max_table(s)
    elif s in FLOORS:
        w("| backend | runs | frames | mqoff-bridge CPU s | frames per CPU-second | frames/s (wall) |")
        w("|---|---|---|---|---|---|")
        for suf, nm in IO_NAMES.items():
            t = "bridge" + suf
            if runs_of(s, t):
                n, c, per, wall, _ = floor_rate(s, t)
                w("| %s | %d | %s | %s | %s | %s |" % (nm, len(runs_of(s, t)), num(n), fmt_s(c), num(per), num(wall)))
    else:
        run_table(s)
    c = bench_cmd(s)
    if c:
        w("")
        w("```")
        w(c)
        w("```")

# ---- not run ----------------------------------------------------------------------------------
w("")
w("## Not run, and why")
w("")
if not runs_of("wildcard-10k"):
    w("- **wildcard-10k** (10 000 mixed filters, a publish matching 5) was not part of this run: "
      "`bench/run.sh wildcard-10k` runs it (a default `make bench` includes it, `--quick` does not).")
w("- **16-byte payloads**: mqoff-bench stamps each payload with (run, publisher, sequence, scheduled "
  "time) and refuses `--size` below 32; the sweep starts at 32 B.")
w("- **floor as a packet rate**: floor-pps and floor-bulk report the bridge's frames per CPU-second, "
  "not its largest rate: the Python sender on this 2-core machine runs out before the bridge does "
  "(frames/s wall is the sender's rate).")
sk = [r for r in RUNS if r["meta"].get("skipped_deadline")]
if sk:
    w("- **%d runs were skipped**: the run's time limit (BENCH_DEADLINE_S) passed: %s." %
      (len(sk), ", ".join(sorted({"%s [%s]" % (r["scenario"], r["target"]) for r in sk}))))

# ---- checks -----------------------------------------------------------------------------------
w("")
w("## Checks: losses, errors, mqoff health")
w("")
bad = []
for r in sorted(RUNS, key=lambda r: (SCEN_ORDER.index(r["scenario"]), r["target"], r["rep"])):
    m = r["meta"]
    if m.get("skipped_deadline"):
        continue
    tag = "%s [%s] rep %d" % (r["scenario"], r["target"], r["rep"])
    probs = []
    if m.get("setup_failed"):
        probs.append("the target did not come up")
    j = r["json"]
    rc = m.get("rc", "")
    if r["scenario"] in FLOORS:
        j = None
        if not m.get("setup_failed") and m.get("rc") not in ("0", None):
            probs.append("the load exited %s" % m.get("rc"))
    elif not j and not m.get("setup_failed"):
        probs.append("no result (mqoff-bench exit %s): %s" % (rc, r["err"].splitlines()[-1] if r["err"] else ""))
    if j:
        t = j["totals"]
        items = [(k, t.get(k, 0)) for k in ("lost", "dup", "reorder", "unsent", "misrouted", "unexpected", "stray",
                                             "bad_payload", "disconnects", "protocol_errors", "pubacks_failed")]
        items = [(k, v) for k, v in items if v]
        if j["config"]["saturation"]:
            # a sweep ends on a failing step by design: losses in the step past the best are expected
            items = [(k, v) for k, v in items if k not in ("lost", "unsent")]
            best = j["saturation"]["best_step"]
            pre = [x for x in j["windows"] if x["step"] <= best and (x["lost"] or x["unsent"] or x["dup"])]
            if pre:
                items.append(("lost/unsent/dup up to the best step", sum(x["lost"] + x["unsent"] + x["dup"] for x in pre)))
        if items:
            probs.append(", ".join("%s %d" % kv_ for kv_ in items))
        if rc not in ("0", "3"):
            probs.append("mqoff-bench exit %s" % rc)
    if r["target"] in MQOFF_TARGETS and not m.get("setup_failed"):
        if m.get("mqoff_alive_at_end") == "0":
            probs.append("**mqoff exited during the run** (exit status %s)" % m.get("mqoff_rc"))
        elif m.get("mqoff_rc") not in ("0", None, ""):
            probs.append("exit status %s on SIGTERM" % m.get("mqoff_rc"))
        if not r["mq"]["summary"]:
            probs.append("no closing summary in its log")
        mq = r["mq"]
        pt = r["scenario"] in PASSTHROUGH_SCENARIOS
        for k in ("passthrough", "dropped_qos0", "order_expired", "inflight_lost", "protocol_errors", "rto",
                  "rx_dropped", "tx_full", "tx_errors"):
            if mq.get(k) and not (pt and k == "passthrough"):
                probs.append("%s %d" % ({"rto": "retransmission timeouts", "rx_dropped": "ring rx_dropped"}.get(k, k),
                                        mq[k]))
        errs = [e for e in mq["log_errors"] if not (pt and "not --exclusive" in e)]
        if errs:
            probs.append("log: `%s`%s" % (errs[0][:160], " (+%d more)" % (len(errs) - 1) if len(errs) > 1 else ""))
    if m.get("quiet") == "0":
        probs.append("the machine was busy with other work when it started (waited %s s)" % m.get("quiet_wait_s"))
    if probs:
        bad.append("- %s: %s" % (tag, "; ".join(probs)))
if bad:
    w("Runs where something was not clean (mqoff-bench's own checks: lost, duplicated, reordered, "
      "misrouted...; mqoff's closing summary: messages passed through to the broker, QoS 0 drops, "
      "retransmission timeouts and ring drops in monitor mode):")
    w("")
    L.extend(bad)
else:
    w("Every run was clean: nothing lost, duplicated, reordered or misrouted; every mqoff process "
      "ran to the end and stopped on SIGTERM with its summary.")

# ---- all runs ---------------------------------------------------------------------------------
w("")
w("## Every run")
w("")
w("| scenario | target | rep | exit | last p50 | last p99 | wire p99 | deliveries/s | lost | broker CPU s | mqoff CPU s | bench CPU s | wall s | quiet wait s | load avg |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in sorted(RUNS, key=lambda r: (SCEN_ORDER.index(r["scenario"]), r["rep"], TARGET_ORDER.index(r["target"]) if r["target"] in TARGET_ORDER else 9)):
    m = r["meta"]
    if m.get("skipped_deadline"):
        continue
    j = r["json"]
    if j and j["config"]["saturation"]:
        b = j["saturation"]["best_step"]
        wi = next((k for k, x in enumerate(j["windows"]) if x["step"] == b), None)
    else:
        wi = 0
    h = lambda n, p: ms((hist(r, n, wi) or {}).get(p)) if wi is not None else "n/a"
    dps = j["windows"][wi]["deliveries_per_s"] if j and wi is not None and j["windows"] else None
    qw = m.get("quiet_wait_s", "")
    if m.get("quiet") == "0":
        qw += " (not quiet)"
    w("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["scenario"], r["target"], r["rep"], m.get("rc", "-"), h("last_subscriber", "p50"), h("last_subscriber", "p99"),
        h("wire_last_subscriber", "p99"), num(dps), num(j["totals"]["lost"] if j else None),
        fmt_s(r["broker_s"]), "" if r["target"] == "direct" else fmt_s(r["mqoff_s"]), fmt_s(r["bench_s"]),
        m.get("wall_s", ""), qw, m.get("loadavg", "")))
w("")
w("Saturation rows show the best step. Raw records (mqoff-bench JSON, mqoff logs) are kept with "
  "`bench/run.sh --keep DIR`.")

if SECTION:
    head = "## " + SECTION
    if head not in L:
        sys.exit("summarize: the results make no section %r" % SECTION)
    i = L.index(head)
    j = next((k for k in range(i + 1, len(L)) if L[k].startswith("## ")), len(L))
    block = L[i:j]
    block[1:1] = ["", "Measured apart from the rest of this page, on %s at commit %s (%s), %d repetitions, with "
                  "`%s`; the other sections are from the run the top of the page names." % (
                      MACHINE.get("date", "?"), MACHINE.get("commit", "?"),
                      "clean tree" if MACHINE.get("dirty", "0") == "0" else "uncommitted changes",
                      REPS, MACHINE.get("argv", "bench/run.sh"))]
    try:
        old = open(OUT).read().split("\n")
    except OSError:
        old = []
    if head in old:
        a = old.index(head)
        b = next((k for k in range(a + 1, len(old)) if old[k].startswith("## ")), len(old))
        old[a:b] = block
    else:
        at = old.index("## Scenarios") if "## Scenarios" in old else len(old)
        old[at:at] = block
    L = old
    while L and L[-1] == "":
        L.pop()
with open(OUT, "w") as f:
    f.write("\n".join(L) + "\n")

# ---- gnuplot data -----------------------------------------------------------------------------
with open(os.path.join(RES, "plot_latency.dat"), "w") as f:
    f.write("# N  then per target (direct proxy monitor intercept): client last p50, client last p99, "
            "wire last p99 (ms)\n")
    for n in (1, 10, 100, 1000):
        s = "fanout-1-%d-1-q0" % n
        row = [str(n)]
        for t in ("direct", "proxy", "monitor", "intercept"):
            for name, pct in (("last_subscriber", "p50"), ("last_subscriber", "p99"), ("wire_last_subscriber", "p99")):
                v = lat(s, t, name, pct)
                row.append("%.4f" % (v / 1e6) if v else "NaN")
        f.write(" ".join(row) + "\n")
for t in ("direct", "proxy", "monitor", "intercept"):
    with open(os.path.join(RES, "plot_sat_%s.dat" % t), "w") as f:
        f.write("# step offered_deliveries_per_s deliveries_per_s last_p99_ms\n")
        rs = [r for r in runs_of("saturation", t) if r["json"]]
        nsteps = max([len(r["json"]["windows"]) for r in rs] or [0])
        for k in range(nsteps):
            wins = [r["json"]["windows"][k] for r in rs if len(r["json"]["windows"]) > k]
            exp = med([x["expected"] / x["duration_s"] for x in wins if x["duration_s"]])
            dv = med([x["deliveries_per_s"] for x in wins])
            p99 = lat("saturation", t, "last_subscriber", "p99", k)
            f.write("%d %.1f %.1f %s\n" % (k, exp or 0, dv or 0, "%.3f" % (p99 / 1e6) if p99 else "NaN"))
have_sat = any(r["json"] for r in runs_of("saturation"))
with open(os.path.join(RES, "plot_flags.gp"), "w") as f:
    f.write("have_sat = %d\n" % (1 if have_sat else 0))
    f.write("quick = %d\n" % (1 if QUICK else 0))
    f.write("have_wire = %d\n" % (0 if TAP_BROKEN or not sum(wire_counts) else 1))
