#!/usr/bin/env bash
# make bench: the offload against Mosquitto direct, in the lab, and docs/BENCHMARKS.md.
#
#   bench/run.sh [--quick] [--reps N] [--keep DIR] [--no-doc] [--section backends|memory|rps]
#                [SCENARIO...]
#
# Brings up a lab of its own (tools/mqoff-lab, prefix bn<pid>): clients in the cli namespace,
# Mosquitto at 198.18.0.2:1883 in brk, and in nic, per target:
#   direct   the kernel bridge br0 (nothing MQTT-aware between clients and broker)
#   proxy    `mqoff proxy --listen 198.18.0.3:1883 --broker 198.18.0.2:1883 --acl open
#            --exclusive`
#   monitor  br0 lets go of its two ports; `mqoff monitor --port-a Pnc --port-b Pnb
#            --broker 198.18.0.2:1883 --acl open --exclusive --startup-hold 0` forwards
#            between them (clients still use 198.18.0.2); the ports go back to br0 afterwards
#   lwip     `mqoff proxy --stack lwip --iface Plb --listen 198.18.0.4:1883 --broker
#            198.18.0.2:1883 --acl open --exclusive`: proxy mode on lwIP over AF_PACKET, on a
#            veth of its own (Pla on br0, Plb without a kernel address), not the kernel's TCP
#   intercept  the broker runs with build/libmqoff-intercept.so (MQOFF_CHANNEL=RES/chan) and one
#            more listener line, `listener 1883 198.18.0.3`; `mqoff intercept --listen
#            198.18.0.3:1883 --channel RES/chan --acl open --exclusive` in nic serves it: the
#            clients' path is proxy's, the broker side a socketpair over the channel (a Unix
#            socket, as a DPU's PCIe channel) instead of proxy's second TCP connection
#   bridge   as monitor, with build/mqoff-bridge (the null forwarder): the floor of a
#            userspace bump
#   monitor-dpdk, monitor-afxdp, bridge-dpdk, bridge-afxdp
#            the same on the other packet I/O backends (--io dpdk with net_af_packet devices on
#            the two veths, --no-huge; --io afxdp), as tests/lab/io.sh starts them
# Each scenario runs build/mqoff-bench in the cli namespace against every target, 3 times,
# targets alternating (their order rotates each repetition), a fresh broker (and mqoff) per
# run. Per run it keeps mqoff-bench's JSON, and the CPU time of the broker, of mqoff and of
# the bench (utime+stime before/after, /proc/PID/stat) and of the whole machine (/proc/stat).
# bench/summarize.py takes medians over the repetitions and writes docs/BENCHMARKS.md;
# gnuplot (bench/plot.gp; gnuplot-nox is installed with apt-get when missing) draws
# docs/bench-latency.png.
#
# fanout-1-1000-1 and saturation also run monitor-dpdk and monitor-afxdp, fanout-1-1000-1-q0
# bridge-dpdk and bridge-afxdp. --section backends runs floor-pps, floor-bulk, fanout-1-1000-1
# and saturation (unless scenarios are named) and writes only the page's section "Packet I/O
# backends" into docs/BENCHMARKS.md, leaving the rest of the page (and the PNG) as it was.
# --section memory runs mem-max and writes the section "Memory per connection"; --section rps
# runs the group rps (below) and writes "Receivers off the distributing core".
# Every run records the broker's and mqoff's resident memory: VmRSS once the target is up (no
# client yet) and VmHWM (the peak) at the end.
# Scenarios (default: all; --quick: fanout-1-10-1-q0 fanout-1-1000-1-q0 p2p-1000 floor, shorter):
#   fanout-1-N-1-qQ   N in 1 10 100 1000, Q in 0 1 (fanout-1-N-1 = both QoS; fanout = all 8)
#   fanout-1-max-1    QoS 0 to the largest subscriber count RLIMIT_NOFILE's hard limit (HARD)
#                     allows each target: HARD - 100 for direct, monitor and bridge (Mosquitto
#                     and mqoff-bench hold a descriptor per client), (HARD - 100) / 2 - 1 for
#                     proxy and intercept (two per client); each run in a lab of its own
#                     (what is left of 20 000 connections in the kernels would meet the next
#                     run's); mqoff's drop and retransmission counters and the kernels' TCP
#                     retransmissions beside the latencies
#   mem-max           memory per connection: QoS 0 at 1 msg/s (5 s) to the largest subscriber
#                     count (as fanout-1-max-1), direct, proxy and monitor; the broker's and
#                     mqoff's peak RSS (VmHWM) per client, in total and above their RSS before
#                     the clients came
#   rps-fanout-1-1000-1-qQ  fanout-1-1000-1-qQ for direct, proxy and monitor with the clients'
#                     receive processing off the first core (`tools/mqoff-lab rps on`: RPS on
#                     the cli veth) and the broker and mqoff pinned to the first core (taskset
#                     -a -p -c 0), mqoff-bench to the last: on this 2-core machine veth otherwise
#                     runs the 1000 subscribers' TCP receive work inline in the sender's send
#                     call. The tap's frames are stamped where they reach the clients' veth,
#                     before RPS queues them to the clients' core (tools/bench/tap.c)
#   rps-floor         the floor of those: bench/emit_floor sends 1000 delivery-sized frames
#                     out of the nic toward the clients, alone, 20 bursts a second (target
#                     "emit"). Group rps = the rps- scenarios and the plain
#                     fanout-1-1000-1-qQ for comparison
#   fanout-5-1000-5   5 publishers, 1000 subscribers (STR/+), 5 topics, two rate steps
#   saturation        1 -> 1000, rate stepped up by mqoff-bench --saturation
#   p2p-1000          1000 publisher/subscriber pairs on 1000 topics (exact filters)
#   p2p-1000-pt       the same with mqoff offloading nothing (no --exclusive): every message
#                     through the broker, the path where intercept saves proxy's TCP hop
#   payload-B         fan-out 1-10-1 with B-byte payloads, B in 32 1024 1460 1461 16384 65536
#                     (payload = all six)
#   floor             1-1-1 through the kernel bridge vs mqoff-bridge
#   floor-pps         the null forwarder's cost per frame, per backend: 64-byte UDP frames
#                     blasted from cli to brk for 5 s; frames per CPU-second of mqoff-bridge
#   floor-bulk        the same with a TCP transfer (full-size frames one way, ACKs the other)
#   wildcard-10k      10 000 filters, a publish matches 5: 100 subscribers x (1 exact filter +
#                     99 decoys, mqoff-bench --decoys: exact, + and # filters that match nothing),
#                     20 publishers on 20 topics (not in --quick)
#
# BENCH_TARGETS="proxy intercept" runs only those of each scenario's targets (a comparison of
# two with more repetitions: --reps N).
# BENCH_MONITOR_ARGS="--gso off" adds options to monitor mode's command line (comparisons).
# --keep DIR keeps every run's files in DIR/runs (the bench's JSON, the target's log, CPU and
# memory figures) and also has mqoff-bench write a per-message trace (--trace: when each
# message was queued, left the publisher, reached the last subscriber on the wire and was read)
# in DIR/runs/SCENARIO.TARGET.REP.trace.csv: where a slow message lost its time.
#
# Traffic stays inside the lab's namespaces (198.18.0.0/15 only). Every run is bounded by
# timeout; whatever happens (failure, ^C), the EXIT trap stops what it started, gives the
# bridge its ports back and removes the lab. Needs root.
set -uo pipefail
# The broker is started by tools/mqoff-lab, which exits: the orphaned broker's parent becomes
# init, which here reaps only every couple of seconds, and each stop of the broker would wait
# for that. Run as a child subreaper (prctl PR_SET_CHILD_SUBREAPER, kept across exec) so
# orphans become this shell's children and are reaped at once.
if [ -z "${MQB_SUBREAPER:-}" ]; then
  export MQB_SUBREAPER=1
  exec /usr/bin/python3 -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
os.execv("/bin/bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

LAB=$ROOT/tools/mqoff-lab
MQOFF=${MQOFF:-$ROOT/build/mqoff}
BENCH=${MQOFF_BENCH:-$ROOT/build/mqoff-bench}
BRIDGE=${MQOFF_BRIDGE:-$ROOT/build/mqoff-bridge}
SHIM=${MQOFF_SHIM:-$ROOT/build/libmqoff-intercept.so}
PY=/usr/bin/python3
export MQO_LAB=bn$$
P=$MQO_LAB
NS_CLI=$P-cli NS_NIC=$P-nic
BROKER_ADDR=198.18.0.2 PROXY_ADDR=198.18.0.3 LWIP_ADDR=198.18.0.4 PORT=1883
CLI_ADDR=198.18.0.1   # the clients' address (tools/mqoff-lab)
DOC=$ROOT/docs/BENCHMARKS.md
PNG=$ROOT/docs/bench-latency.png
DEADLINE_S=${BENCH_DEADLINE_S:-3600}   # past this, remaining runs are skipped (reported)
QUIET_PCT=${BENCH_QUIET_PCT:-15} QUIET_MAX_S=${BENCH_QUIET_MAX_S:-20} QUIET_TOTAL_S=${BENCH_QUIET_TOTAL_S:-240}  # see wait_quiet

ORIG_ARGS="$*"
REPS=3 QUICK=0 KEEP="" WRITE_DOC=1 SECTION=""
SCEN_ARGS=()
usage() { sed -n '2,/^set -uo pipefail/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    --no-doc) WRITE_DOC=0 ;;
    --section)
      case "${2:-}" in
        backends) SECTION="Packet I/O backends" ;;
        memory) SECTION="Memory per connection" ;;
        rps) SECTION="Receivers off the distributing core" ;;
        *) echo "bench/run.sh: --section takes backends, memory or rps" >&2; exit 2 ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "bench/run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) SCEN_ARGS+=("$1") ;;
  esac
  shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --reps wants a positive number" >&2; exit 2; }

ALL_SCENARIOS=(
  fanout-1-1-1-q0 fanout-1-1-1-q1 fanout-1-10-1-q0 fanout-1-10-1-q1
  fanout-1-100-1-q0 fanout-1-100-1-q1 fanout-1-1000-1-q0 fanout-1-1000-1-q1
  fanout-1-max-1 fanout-5-1000-5 saturation p2p-1000 p2p-1000-pt wildcard-10k
  payload-32 payload-1024 payload-1460 payload-1461 payload-16384 payload-65536
  floor floor-pps floor-bulk mem-max rps-fanout-1-1000-1-q0 rps-fanout-1-1000-1-q1 rps-floor
)
QUICK_SCENARIOS=(fanout-1-10-1-q0 fanout-1-1000-1-q0 p2p-1000 floor floor-pps)

# expand NAME: the scenario ids NAME stands for (itself, a QoS pair, or a group).
expand() {
  local n=$1 s hit=0
  case "$n" in
    fanout|fanout-1-N-1) n='fanout-1-[0-9]*-1-q*' ;;
    payload) n='payload-*' ;;
    floors) n='floor*' ;;
    rps) expand fanout-1-1000-1; n='rps-*' ;;
    all) n='*' ;;
  esac
  for s in "${ALL_SCENARIOS[@]}"; do
    # shellcheck disable=SC2053
    if [[ $s == $n || $s == "$n"-q0 || $s == "$n"-q1 ]]; then echo "$s"; hit=1; fi
  done
  [ $hit -eq 1 ] || { echo "bench/run.sh: unknown scenario '$1'" >&2; return 1; }
}

SCENARIOS=()
if [ -n "$SECTION" ] && [ ${#SCEN_ARGS[@]} -eq 0 ]; then
  case "$SECTION" in
    Memory*) SCEN_ARGS=(mem-max) ;;
    Receivers*) SCEN_ARGS=(rps) ;;
    *) SCEN_ARGS=(floor-pps floor-bulk fanout-1-1000-1 saturation) ;;
  esac
fi
if [ ${#SCEN_ARGS[@]} -eq 0 ]; then
  if [ $QUICK -eq 1 ]; then SCENARIOS=("${QUICK_SCENARIOS[@]}"); else SCENARIOS=("${ALL_SCENARIOS[@]}"); fi
else
  for a in "${SCEN_ARGS[@]}"; do
    out=$(expand "$a") || exit 2
    for s in $out; do SCENARIOS+=("$s"); done
  done
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/run.sh: the lab needs root (network namespaces, raw sockets)" >&2
  exit 1
fi
for f in "$MQOFF" "$BENCH" "$BRIDGE" "$SHIM"; do
  [ -x "$f" ] || { echo "bench/run.sh: $f is not built (make all)" >&2; exit 1; }
done

# ---- state and cleanup ------------------------------------------------------------------------
RES="" OWN_RES=0 MQ_PID="" LAB_UP=0 BROKER_PID=""

mq_stop() {   # SIGTERM, up to 10 s, then SIGKILL; sets MQ_RC
  MQ_RC=
  [ -n "$MQ_PID" ] || return 0
  local i
  kill -TERM "$MQ_PID" 2>/dev/null || true
  for ((i = 0; i < 500; i++)); do kill -0 "$MQ_PID" 2>/dev/null || break; sleep 0.02; done
  kill -0 "$MQ_PID" 2>/dev/null && kill -KILL "$MQ_PID" 2>/dev/null
  wait "$MQ_PID" 2>/dev/null
  MQ_RC=$?
  MQ_PID=
}

IO_PREFIX=${P}io
# shellcheck source=../tests/lab/io.sh
. "$ROOT/tests/lab/io.sh"
# io_of T / kind_of T: a target's packet I/O backend and what it runs (monitor-dpdk: dpdk, monitor)
io_of() { case "$1" in *-dpdk) echo dpdk ;; *-afxdp) echo afxdp ;; *) echo afpacket ;; esac; }
kind_of() { echo "${1%%-*}"; }

ports_to_bridge() {
  ip -n "$NS_NIC" link set "${P}nc" master br0 2>/dev/null || true
  ip -n "$NS_NIC" link set "${P}nb" master br0 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  mq_stop >/dev/null 2>&1
  if [ $LAB_UP -eq 1 ]; then
    ports_to_bridge
    "$LAB" down >/dev/null 2>&1 || true
  fi
  io_cleanup
  if [ $OWN_RES -eq 1 ] && [ -n "$RES" ]; then rm -rf "$RES"; fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "bench/run.sh: interrupted" >&2; exit 130' INT TERM HUP

if [ -n "$KEEP" ]; then
  RES=$KEEP
  mkdir -p "$RES/runs" || exit 1
else
  RES=$(mktemp -d /tmp/mqoff-bench.XXXXXX) || exit 1
  OWN_RES=1
  mkdir -p "$RES/runs"
fi

T_START=$(date +%s)
log() { printf '[%4ds] %s\n' $(($(date +%s) - T_START)) "$*"; }

# ---- gnuplot (for the PNG) ----------------------------------------------------------------------
if [ $WRITE_DOC -eq 1 ] && [ -z "$SECTION" ] && ! command -v gnuplot >/dev/null 2>&1; then
  log "installing gnuplot-nox (for docs/bench-latency.png)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null 2>&1 || true
  timeout 600 apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
    log "gnuplot-nox could not be installed: no PNG this time"
fi

# ---- the machine --------------------------------------------------------------------------------
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc=$(nproc)"
  echo "kernel=$(uname -r)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: *//')"
  echo "mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024}' /proc/meminfo)"
  echo "mosquitto=$(/usr/sbin/mosquitto -h 2>&1 | head -1)"
  echo "gcc=$(gcc --version 2>/dev/null | head -1)"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "reps=$REPS"
  echo "quick=$QUICK"
  echo "quiet_pct=$QUIET_PCT"
  echo "quiet_max_s=$QUIET_MAX_S"
  echo "argv=bench/run.sh $ORIG_ARGS"
  echo "scenarios=${SCENARIOS[*]}"
} >"$RES/machine.txt"

# ---- lab ----------------------------------------------------------------------------------------
log "lab $P up"
if ! out=$(timeout 60 "$LAB" up 2>&1); then
  echo "bench/run.sh: lab up failed: $out" >&2
  LAB_UP=1
  exit 1
fi
LAB_UP=1
# Many short-lived client connections per run: a wide port range and TIME_WAIT reuse in the
# client namespace (namespaced settings, nothing outside the lab changes).
lab_sysctls() {
  local ns
  for ns in "$NS_CLI" "$NS_NIC"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1 >/dev/null
  done
}
lab_sysctls
# fanout-1-max-1: Mosquitto, started from here, inherits the soft limit: the hard one.
HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] && HARD=20000
ulimit -n "$HARD"
MAX_ONE=$((HARD - 100)) MAX_PROXY=$(((HARD - 100) / 2 - 1))
echo "nofile_hard=$HARD" >>"$RES/machine.txt"

# fresh_lab: new namespaces (a run with tens of thousands of connections leaves them behind in
# the kernels, FIN_WAIT, LAST_ACK, TIME_WAIT, on the ports the next run would use).
fresh_lab() {
  "$LAB" down >/dev/null 2>&1 || true
  timeout 60 "$LAB" up >/dev/null 2>&1 && lab_sysctls
}

# TCP retransmissions (segments, timeouts) and listen drops of the kernel in namespace NS.
tcp_counters() {
  ip netns exec "$1" nstat -az TcpRetransSegs TcpExtTCPTimeouts TcpExtListenDrops 2>/dev/null |
    awk '/^Tcp/ {v[$1] = $2} END {printf "%d %d %d", v["TcpRetransSegs"], v["TcpExtTCPTimeouts"], v["TcpExtListenDrops"]}'
}

CLK_TCK=$(getconf CLK_TCK)
kb_of() { [ -n "${2:-}" ] && awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status" 2>/dev/null || true; }
ticks() { [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}' || echo 0; }
machine_ticks() { awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6; print b, t}' /proc/stat; }

wait_port() {  # NS ADDR PORT SECS
  local i
  for ((i = 0; i < $4 * 20; i++)); do
    ip netns exec "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# wait_quiet: other work on the machine (builds, tests) distorts a run on 2 cores. Before each
# run, wait (up to QUIET_MAX_S) until the machine is nearly idle: under QUIET_PCT % of all
# cores busy over 0.3 s. Sets QUIET_WAIT (s waited) and QUIET (1 when it got quiet). Once the
# waits add up to QUIET_TOTAL_S, it waits 2 s at most (the whole run stays bounded).
QUIET_SUM=0
wait_quiet() {
  local t0 b0 tt0 b1 tt1 pct max=$QUIET_MAX_S
  [ "${QUIET_SUM%.*}" -lt "$QUIET_TOTAL_S" ] || max=2
  t0=$(date +%s.%N)
  QUIET=0
  while :; do
    read -r b0 tt0 < <(machine_ticks)
    sleep 0.3
    read -r b1 tt1 < <(machine_ticks)
    pct=$(( (b1 - b0) * 100 / (tt1 - tt0 > 0 ? tt1 - tt0 : 1) ))
    if [ "$pct" -le "$QUIET_PCT" ]; then QUIET=1; break; fi
    awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$max" 'BEGIN {exit !(b - a > m)}' && break
  done
  QUIET_WAIT=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  QUIET_SUM=$(awk -v a="$QUIET_SUM" -v b="$QUIET_WAIT" 'BEGIN {printf "%.1f", a + b}')
}

target_host() {
  if [ "$1" = lwip ]; then echo "$LWIP_ADDR"; return; fi
  if [ "$1" = proxy ] || [ "$1" = intercept ]; then echo "$PROXY_ADDR"; else echo "$BROKER_ADDR"; fi
}

# The exact commands, for the report.
target_cmd() {
  case "$1" in
    *-dpdk|*-afxdp)
      MONITOR_IO=$(io_of "$1") io_args "${P}nc" "${P}nb"
      local io=${IO_ARGS[*]}
      io=${io/--eal --no-huge/--eal \"--no-huge}; io=${io/ --port-a/\" --port-a}
      if [ "$(kind_of "$1")" = monitor ]; then
        echo "ip -n ${P}-nic link set ${P}nc nomaster; ip -n ${P}-nic link set ${P}nb nomaster; ip netns exec ${P}-nic build/mqoff monitor $io --broker $BROKER_ADDR:$PORT ${MQ_ARGS[*]} --startup-hold 0"
      else
        echo "ip -n ${P}-nic link set ${P}nc nomaster; ip -n ${P}-nic link set ${P}nb nomaster; ip netns exec ${P}-nic build/mqoff-bridge $io --quiet"
      fi ;;
    direct) echo "(kernel bridge br0 in ${P}-nic; no mqoff)" ;;
    proxy) echo "ip netns exec ${P}-nic build/mqoff proxy --listen $PROXY_ADDR:$PORT --broker $BROKER_ADDR:$PORT ${MQ_ARGS[*]}" ;;
    lwip) echo "ip -n ${P}-nic link add ${P}la type veth peer name ${P}lb; ip -n ${P}-nic link set ${P}la master br0; (both up); ip netns exec ${P}-nic build/mqoff proxy --stack lwip --iface ${P}lb --listen $LWIP_ADDR:$PORT --broker $BROKER_ADDR:$PORT ${MQ_ARGS[*]}" ;;
    monitor) echo "ip -n ${P}-nic link set ${P}nc nomaster; ip -n ${P}-nic link set ${P}nb nomaster; ip netns exec ${P}-nic build/mqoff monitor --port-a ${P}nc --port-b ${P}nb --broker $BROKER_ADDR:$PORT ${MQ_ARGS[*]} --startup-hold 0" ;;
    intercept) echo "MOSQUITTO_PRELOAD=build/libmqoff-intercept.so MQOFF_CHANNEL=RES/chan tools/mqoff-lab broker-start RES/intercept.conf (listener 1883 $PROXY_ADDR); ip netns exec ${P}-nic build/mqoff intercept --listen $PROXY_ADDR:$PORT --channel RES/chan ${MQ_ARGS[*]}" ;;
    bridge) echo "ip -n ${P}-nic link set ${P}nc nomaster; ip -n ${P}-nic link set ${P}nb nomaster; ip netns exec ${P}-nic build/mqoff-bridge --port-a ${P}nc --port-b ${P}nb --quiet" ;;
  esac
}

# target_up T LOG: fresh broker, then mqoff (or the bridge) for T. Sets MQ_PID, BROKER_PID.
target_up() {
  local t=$1 log=$2 out i pre=() extra=()
  # intercept: the broker runs with the shim and a listener on mqoff's address; its bind()
  # waits for mqoff, started below
  if [ "$t" = intercept ]; then
    pre=(env MOSQUITTO_PRELOAD="$SHIM" MQOFF_CHANNEL="$RES/chan")
    echo "listener $PORT $PROXY_ADDR" >"$RES/intercept.conf"
    extra=("$RES/intercept.conf")
  fi
  if ! out=$(timeout 30 "${pre[@]}" "$LAB" broker-start "${extra[@]}" 2>&1); then
    echo "broker start failed: $out" >"$log"
    return 1
  fi
  BROKER_PID=$("$LAB" broker-pid)
  case "$t" in
    direct) : >"$log"; return 0 ;;
    proxy)
      ip netns exec "$NS_NIC" "$MQOFF" proxy --listen "$PROXY_ADDR:$PORT" --broker "$BROKER_ADDR:$PORT" \
        "${MQ_ARGS[@]}" >"$log" 2>&1 </dev/null &
      MQ_PID=$! ;;
    lwip)
      # an interface of its own on the bridge, without a kernel address: mqoff owns 198.18.0.4
      ip -n "$NS_NIC" link add "${P}la" type veth peer name "${P}lb"
      ip -n "$NS_NIC" link set "${P}la" master br0
      ip -n "$NS_NIC" link set "${P}la" up
      ip -n "$NS_NIC" link set "${P}lb" up
      ip netns exec "$NS_NIC" "$MQOFF" proxy --stack lwip --iface "${P}lb" --listen "$LWIP_ADDR:$PORT" \
        --broker "$BROKER_ADDR:$PORT" "${MQ_ARGS[@]}" >"$log" 2>&1 </dev/null &
      MQ_PID=$! ;;
    intercept)
      ip netns exec "$NS_NIC" "$MQOFF" intercept --listen "$PROXY_ADDR:$PORT" --channel "$RES/chan" \
        "${MQ_ARGS[@]}" >"$log" 2>&1 </dev/null &
      MQ_PID=$!
      for ((i = 0; i < 200; i++)); do
        grep -qs 'attached: clients on' "$log" && break
        kill -0 "$MQ_PID" 2>/dev/null || break
        sleep 0.05
      done ;;
    monitor*|bridge*)
      ip -n "$NS_NIC" link set "${P}nc" nomaster
      ip -n "$NS_NIC" link set "${P}nb" nomaster
      MONITOR_IO=$(io_of "$t") io_args "${P}nc" "${P}nb"
      if [ "$(kind_of "$t")" = monitor ]; then
        # --startup-hold 0: the broker is fresh and no client reaches it before mqoff is in place,
        # so there is no connection mqoff could have missed (the default holds offload for 90 s).
        # BENCH_MONITOR_ARGS: more options for monitor mode (a comparison: "--gso off")
        # shellcheck disable=SC2086
        ip netns exec "$NS_NIC" "$MQOFF" monitor "${IO_ARGS[@]}" \
          --broker "$BROKER_ADDR:$PORT" "${MQ_ARGS[@]}" --startup-hold 0 ${BENCH_MONITOR_ARGS:-} >"$log" 2>&1 </dev/null &
      else
        ip netns exec "$NS_NIC" "$BRIDGE" "${IO_ARGS[@]}" --quiet >"$log" 2>&1 </dev/null &
      fi
      MQ_PID=$! ;;
  esac
  if ! wait_port "$NS_CLI" "$(target_host "$t")" "$PORT" 10 || ! kill -0 "$MQ_PID" 2>/dev/null; then
    echo "bench/run.sh: $t did not come up" >>"$log"
    return 1
  fi
}

# gone PID: the process exited. The broker is not our child (mqoff-lab started it): once it
# exits it stays a zombie until init reaps it, which can take a second; kill -0 cannot tell.
gone() { [ ! -r "/proc/$1/stat" ] || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]; }

# target_down T: stops mqoff/the bridge (its summary stays in its log), the broker, ports back.
target_down() {
  local i
  mq_stop
  if [ -n "${BROKER_PID:-}" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    for ((i = 0; i < 250; i++)); do gone "$BROKER_PID" && break; sleep 0.02; done
    gone "$BROKER_PID" || kill -KILL "$BROKER_PID" 2>/dev/null
    BROKER_PID=
  fi
  case "$1" in monitor*|bridge*) ports_to_bridge ;; lwip) ip -n "$NS_NIC" link del "${P}la" 2>/dev/null ;; esac
  return 0
}

# ---- scenarios ----------------------------------------------------------------------------------
# scen NAME: sets TARGETS, ARGS (mqoff-bench options besides host/label/json/tap), LIMIT (s),
# MQ_ARGS (mqoff's options).
scen() {
  local n=$1 subs q rate dur warm grace
  TARGETS="direct proxy monitor intercept"
  MQ_ARGS=(--acl open --exclusive)
  case "$n" in
    rps-floor)
      # not mqoff-bench: bench/emit_floor, the frames of a 1000-subscriber fan-out emitted
      # alone (run_emit_floor)
      TARGETS="emit"
      ARGS=()
      LIMIT=60
      return 0 ;;
    rps-*)
      scen "${n#rps-}" || return 1
      TARGETS="direct proxy monitor"
      return 0 ;;
    mem-max)
      TARGETS="direct proxy monitor"
      ARGS=(--pubs 1 --subs MAX --topics 1 --qos 0 --rate 1 --duration 5 --warmup 1 --grace 10
            --connect-timeout 150)
      LIMIT=300 ;;
    fanout-1-max-1)
      # --subs MAX: each target's own largest count (run_one)
      ARGS=(--pubs 1 --subs MAX --topics 1 --qos 0 --rate 1 --duration 8 --warmup 2 --grace 20
            --connect-timeout 120)
      LIMIT=240 ;;
    fanout-1-*-1-q*)
      subs=${n#fanout-1-}; subs=${subs%%-*}; q=${n##*-q}
      grace=1 warm=1
      case "$subs" in
        1|10) rate=500 dur=2 ;;
        100) rate=200 dur=5 ;;
        1000) rate=20 warm=2 grace=2
              if [ "$q" = 0 ]; then dur=20; else dur=12; fi
              [ $QUICK -eq 1 ] && dur=10
              TARGETS="direct proxy monitor intercept lwip monitor-dpdk monitor-afxdp"
              [ "$q" = 0 ] && TARGETS="$TARGETS bridge bridge-dpdk bridge-afxdp" ;;
      esac
      ARGS=(--pubs 1 --subs "$subs" --topics 1 --qos "$q" --rate "$rate" --duration "$dur" --warmup "$warm" --grace "$grace")
      LIMIT=$((dur + warm + grace + 60)) ;;
    fanout-5-1000-5)
      ARGS=(--pubs 5 --subs 1000 --topics 5 --filter plus --saturation --rate 2 --step-factor 2.5 --max-steps 2
            --step 4 --step-warmup 1 --p99-bound-ms 5000 --grace 2)
      LIMIT=90 ;;
    saturation)
      TARGETS="direct proxy monitor intercept lwip monitor-dpdk monitor-afxdp"
      ARGS=(--pubs 1 --subs 1000 --topics 1 --saturation --rate 15 --step-factor 1.5 --max-steps 15
            --step 2 --step-warmup 1 --p99-bound-ms 250 --grace 1)
      LIMIT=120 ;;
    p2p-1000|p2p-1000-pt)
      # -pt: without --exclusive mqoff offloads nothing, every message goes through the broker
      [ "$n" = p2p-1000 ] || MQ_ARGS=(--acl open)
      TARGETS="$TARGETS lwip"
      dur=5; [ $QUICK -eq 1 ] && dur=3
      ARGS=(--pubs 1000 --subs 1000 --topics 1000 --rate 5 --duration "$dur" --warmup 2 --grace 1)
      LIMIT=90 ;;
    wildcard-10k)
      # 100 x (1 + 99) = 10 000 filters; each of the 20 topics has 5 exact subscribers, so a
      # publish matches 5 filters of 10 000. 20 x 50 msg/s = 1000 msg/s, 5000 deliveries/s: the
      # load of p2p-1000, well below what Mosquitto direct sustains here; 5 s = 5000 samples.
      ARGS=(--pubs 20 --subs 100 --topics 20 --decoys 99 --rate 50 --duration 5 --warmup 2 --grace 1)
      LIMIT=90 ;;
    payload-*)
      ARGS=(--pubs 1 --subs 10 --topics 1 --size "${n#payload-}" --rate 500 --duration 2 --warmup 1 --grace 1)
      LIMIT=60 ;;
    floor)
      TARGETS="direct bridge"
      ARGS=(--pubs 1 --subs 1 --topics 1 --rate 500 --duration 2 --warmup 1 --grace 1)
      LIMIT=60 ;;
    floor-pps|floor-bulk)
      TARGETS="bridge bridge-dpdk bridge-afxdp"
      ARGS=()
      LIMIT=30 ;;
    *) echo "bench/run.sh: no definition for $n" >&2; return 1 ;;
  esac
}

# up_or_record SCEN TARGET REP BASE: target_up, or (1) the run recorded as failed to set up.
up_or_record() {
  target_up "$2" "$4.mqoff.log" && return 0
  log "  $1 [$2] rep $3: target did not come up: $(tail -2 "$4.mqoff.log" | tr '\n' ' ')"
  target_down "$2"
  printf 'scenario=%s\ntarget=%s\nrep=%s\nsetup_failed=1\n' "$1" "$2" "$3" >"$4.meta"
  return 1
}

# run_floor SCEN TARGET REP: floor-pps / floor-bulk. The load (bench/floor.py) runs FLOOR_S
# seconds from cli to brk through mqoff-bridge; its CPU time over the run and the frames it
# received (its closing counters) give frames per CPU-second.
FLOOR_S=5
run_floor() {
  local s=$1 t=$2 r=$3 base k0 k1 wall0 wall1 rc sink_pid fport=$((5000 + RANDOM % 1000))
  base=$RES/runs/$s.$t.$r
  up_or_record "$s" "$t" "$r" "$base" || return 0
  wait_quiet
  local kind=udp
  [ "$s" = floor-bulk ] && kind=tcp
  ip netns exec "$P-brk" timeout $((FLOOR_S + 10)) "$PY" "$ROOT/bench/floor.py" "$kind-sink" \
    "$BROKER_ADDR" "$fport" $((FLOOR_S + 5)) >"$base.sink" 2>&1 &
  sink_pid=$!
  sleep 0.5
  k0=$(ticks "$MQ_PID"); wall0=$(date +%s.%N)
  if [ "$kind" = udp ]; then
    ip netns exec "$NS_CLI" timeout $((FLOOR_S + 10)) "$PY" "$ROOT/bench/floor.py" udp-blast \
      "$BROKER_ADDR" "$fport" "$FLOOR_S" 18 >"$base.out" 2>"$base.err"
  else
    ip netns exec "$NS_CLI" timeout $((FLOOR_S + 10)) "$PY" "$ROOT/bench/floor.py" tcp-send \
      "$BROKER_ADDR" "$fport" "$FLOOR_S" >"$base.out" 2>"$base.err"
  fi
  rc=$?
  sleep 0.2 # what is in flight reaches the bridge
  k1=$(ticks "$MQ_PID"); wall1=$(date +%s.%N)
  kill -TERM "$sink_pid" 2>/dev/null
  wait "$sink_pid" 2>/dev/null
  target_down "$t"
  {
    echo "scenario=$s"
    echo "target=$t"
    echo "rep=$r"
    echo "rc=$rc"
    echo "clk_tck=$CLK_TCK"
    echo "mqoff_ticks=$((k1 - k0))"
    echo "wall_s=$(awk -v a="$wall0" -v b="$wall1" 'BEGIN {printf "%.2f", b - a}')"
    echo "load_sent=$(tail -1 "$base.out")"
    echo "quiet=$QUIET"
    echo "quiet_wait_s=$QUIET_WAIT"
    echo "cmd=ip netns exec ${P}-cli bench/floor.py $([ "$kind" = udp ] && echo "udp-blast $BROKER_ADDR PORT $FLOOR_S 18" || echo "tcp-send $BROKER_ADDR PORT $FLOOR_S")"
    echo "target_cmd=$(target_cmd "$t")"
  } >"$base.meta"
  local fr
  fr=$(grep -oE '^port [ab] [^:]*: rx [0-9]+ frames' "$base.mqoff.log" | awk '{s += $(NF-1)} END {print s+0}')
  log "  $s [$t] rep $r: $fr frames in $(awk -v k=$((k1 - k0)) -v c="$CLK_TCK" 'BEGIN {printf "%.2f", k / c}') CPU s"
}

# run_emit_floor SCEN TARGET REP: rps-floor. With the lab's rps variant on (the clients'
# receive processing on the last core), bench/emit_floor on the first core sends EMIT_BURSTS
# bursts of 1000 frames of a QoS 0 delivery's size (140 bytes) out of the nic's veth toward
# the clients, 20 a second: the floor of the rps scenarios' wire figures.
EMIT_BURSTS=200
run_emit_floor() {
  local s=$1 t=$2 r=$3 base rc mac
  base=$RES/runs/$s.$t.$r
  mac=$(ip -n "$NS_CLI" -o link show "${P}c" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  "$LAB" rps on >/dev/null || { log "  $s [$t] rep $r: rps on failed"; return 0; }
  wait_quiet
  local cmd=(taskset -c 0 "$ROOT/build/bench/emit_floor" "${P}nc" "$mac" "$CLI_ADDR" 1000 "$EMIT_BURSTS" 20)
  ip netns exec "$NS_NIC" timeout -k 5 "$LIMIT" "${cmd[@]}" >"$base.out" 2>"$base.err" </dev/null
  rc=$?
  "$LAB" rps off >/dev/null
  local line p50 p99
  line=$(grep '^emit_floor' "$base.out" | tail -1)
  p50=$(sed -nE 's/.*: p50 ([0-9.]+) us.*/\1/p' <<<"$line")
  p99=$(sed -nE 's/.*, p99 ([0-9.]+) us.*/\1/p' <<<"$line")
  {
    echo "scenario=$s"
    echo "target=$t"
    echo "rep=$r"
    echo "rc=$rc"
    echo "emit_p50_us=$p50"
    echo "emit_p99_us=$p99"
    echo "emit_bursts=$EMIT_BURSTS"
    echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "quiet=$QUIET"
    echo "quiet_wait_s=$QUIET_WAIT"
    echo "rps=1"
    echo "cmd=tools/mqoff-lab rps on; ip netns exec ${P}-nic taskset -c 0 build/bench/emit_floor ${P}nc CLI_MAC $CLI_ADDR 1000 $EMIT_BURSTS 20"
  } >"$base.meta"
  log "  $s [$t] rep $r: ${line:-emit_floor exit $rc: $(tail -1 "$base.err")}"
}

# run_one SCEN TARGET REP
run_one() {
  local s=$1 t=$2 r=$3 base host b0 b1 m0 m1 k0 k1 rc alive mqrc wall0 wall1
  base=$RES/runs/$s.$t.$r
  host=$(target_host "$t")
  : >"$base.meta"
  local args=("${ARGS[@]}") i subs_max=""
  for i in "${!args[@]}"; do
    if [ "${args[$i]}" = MAX ]; then
      subs_max=$MAX_ONE
      { [ "$t" = proxy ] || [ "$t" = intercept ] || [ "$t" = lwip ]; } && subs_max=$MAX_PROXY
      args[$i]=$subs_max
      fresh_lab || { log "  $s [$t] rep $r: lab up failed"; return 0; }
    fi
  done
  local rps=0 pin=()
  case "$s" in rps-*) rps=1 ;; esac
  [ $rps -eq 0 ] || "$LAB" rps on >/dev/null || { log "  $s [$t] rep $r: rps on failed"; return 0; }
  if ! up_or_record "$s" "$t" "$r" "$base"; then
    [ $rps -eq 0 ] || "$LAB" rps off >/dev/null
    return 0
  fi
  if [ $rps -eq 1 ]; then
    # the distributing process (the broker; mqoff) on the first core, the bench on the last
    taskset -a -p -c 0 "$BROKER_PID" >/dev/null
    [ -z "$MQ_PID" ] || taskset -a -p -c 0 "$MQ_PID" >/dev/null
    pin=(taskset -c $(($(nproc) - 1)))
  fi
  wait_quiet
  local rss_b0 rss_m0 hwm_b hwm_m
  rss_b0=$(kb_of VmRSS "$BROKER_PID"); rss_m0=$(kb_of VmRSS "$MQ_PID")
  local cmd=("${pin[@]}" "$BENCH" --host "$host" --label "$t" --prefix mqb --tap "${P}c" --quiet "${args[@]}" --json "$base.json")
  # with --keep, also the per-message trace (where a slow message lost its time)
  [ -n "$KEEP" ] && cmd+=(--trace "$base.trace.csv")
  local tc0 tb0 tn0 tc1 tb1 tn1
  tc0=$(tcp_counters "$NS_CLI"); tb0=$(tcp_counters "$P-brk"); tn0=$(tcp_counters "$NS_NIC")
  b0=$(ticks "$BROKER_PID"); k0=$(ticks "$MQ_PID"); m0=$(machine_ticks); wall0=$(date +%s.%N)
  ip netns exec "$NS_CLI" /usr/bin/time -f '%U %S' -o "$base.time" \
    timeout -k 5 "$LIMIT" "${cmd[@]}" >"$base.out" 2>"$base.err" </dev/null
  rc=$?
  wall1=$(date +%s.%N); b1=$(ticks "$BROKER_PID"); k1=$(ticks "$MQ_PID"); m1=$(machine_ticks)
  tc1=$(tcp_counters "$NS_CLI"); tb1=$(tcp_counters "$P-brk"); tn1=$(tcp_counters "$NS_NIC")
  alive=1
  if [ -n "$MQ_PID" ] && ! kill -0 "$MQ_PID" 2>/dev/null; then alive=0; fi
  hwm_b=$(kb_of VmHWM "$BROKER_PID"); hwm_m=$(kb_of VmHWM "$MQ_PID")
  target_down "$t"
  [ $rps -eq 0 ] || "$LAB" rps off >/dev/null
  mqrc=${MQ_RC:-}
  {
    echo "scenario=$s"
    echo "target=$t"
    echo "rep=$r"
    echo "rc=$rc"
    echo "clk_tck=$CLK_TCK"
    echo "broker_ticks=$((b1 - b0))"
    echo "mqoff_ticks=$((k1 - k0))"
    echo "machine_busy_ticks=$(( ${m1% *} - ${m0% *} ))"
    echo "machine_total_ticks=$(( ${m1#* } - ${m0#* } ))"
    echo "bench_cpu=$(grep -E '^[0-9.]+ [0-9.]+$' "$base.time" 2>/dev/null | tail -1)"
    echo "wall_s=$(awk -v a="$wall0" -v b="$wall1" 'BEGIN {printf "%.2f", b - a}')"
    echo "mqoff_alive_at_end=$alive"
    echo "mqoff_rc=$mqrc"
    echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "quiet=$QUIET"
    echo "quiet_wait_s=$QUIET_WAIT"
    echo "subs_max=$subs_max"
    echo "rps=$rps"
    [ $rps -eq 0 ] || echo "rps_cmd=tools/mqoff-lab rps on; taskset -a -p -c 0 BROKER_PID; taskset -a -p -c 0 MQOFF_PID"
    # resident memory in kB: before the clients came (VmRSS), and the peak (VmHWM)
    echo "broker_rss0_kb=$rss_b0"
    echo "broker_hwm_kb=$hwm_b"
    echo "mqoff_rss0_kb=$rss_m0"
    echo "mqoff_hwm_kb=$hwm_m"
    # kernel TCP of the client, broker and nic namespaces over the bench run: retransmitted
    # segments, timeouts, listen drops
    echo "tcp_cli=$(awk -v a="$tc0" -v b="$tc1" 'BEGIN {split(a, x); split(b, y); print y[1]-x[1], y[2]-x[2], y[3]-x[3]}')"
    echo "tcp_brk=$(awk -v a="$tb0" -v b="$tb1" 'BEGIN {split(a, x); split(b, y); print y[1]-x[1], y[2]-x[2], y[3]-x[3]}')"
    echo "tcp_nic=$(awk -v a="$tn0" -v b="$tn1" 'BEGIN {split(a, x); split(b, y); print y[1]-x[1], y[2]-x[2], y[3]-x[3]}')"
    echo "cmd=ip netns exec ${P}-cli ${pin[*]}${pin[*]:+ }build/mqoff-bench --host $host --label $t --prefix mqb --tap ${P}c --quiet ${ARGS[*]} --json FILE"
    echo "target_cmd=$(target_cmd "$t")"
  } >"$base.meta"
  local note=""
  [ "$rc" -eq 0 ] || note=" exit $rc"
  [ $alive -eq 1 ] || note="$note; mqoff DIED during the run"
  [ "$QUIET" -eq 1 ] || note="$note; the machine was busy with other work (waited ${QUIET_WAIT}s)"
  log "  $s [$t] rep $r: $(summary_line "$base.json")$note"
}

summary_line() {
  "$PY" - "$1" <<'EOF' 2>/dev/null || echo "(no JSON)"
import json, sys
d = json.load(open(sys.argv[1]))
t = d["totals"]
if d["config"]["saturation"]:
    s = d["saturation"]
    print("best %.0f deliveries/s, steps %d, lost %d" % (s["best_deliveries_per_s"], len(d["windows"]), t["lost"]))
else:
    w = d["windows"][0]
    l = w["latency_ns"]["last_subscriber"]
    wire = w["latency_ns"].get("wire_last_subscriber", {})
    f = lambda h, k: ("%.2f" % (h[k] / 1e6)) if h.get("count") else "-"
    print("last p50 %s p99 %s ms, wire p99 %s ms, %.0f deliveries/s, lost %d" %
          (f(l, "p50"), f(l, "p99"), f(wire, "p99"), w["deliveries_per_s"], t["lost"]))
EOF
}

# ---- the runs -----------------------------------------------------------------------------------
log "scenarios: ${SCENARIOS[*]}; $REPS repetitions; results in $RES"
SKIPPED=0
for s in "${SCENARIOS[@]}"; do
  scen "$s" || exit 1
  if [ -n "${BENCH_TARGETS:-}" ]; then
    keep=""
    for t in $TARGETS; do [[ " $BENCH_TARGETS " == *" $t "* ]] && keep+=" $t"; done
    TARGETS=${keep# }
    [ -n "$TARGETS" ] || { log "$s: none of BENCH_TARGETS ($BENCH_TARGETS) runs it: skipped"; continue; }
  fi
  read -r -a tl <<<"$TARGETS"
  log "$s: targets ${TARGETS}"
  for ((r = 1; r <= REPS; r++)); do
    # rotate the order each repetition: no target always runs first (or right after another)
    for ((i = 0; i < ${#tl[@]}; i++)); do
      t=${tl[$(( (i + r - 1) % ${#tl[@]} ))]}
      if [ $(($(date +%s) - T_START)) -gt "$DEADLINE_S" ]; then
        SKIPPED=$((SKIPPED + 1))
        printf 'scenario=%s\ntarget=%s\nrep=%s\nskipped_deadline=1\n' "$s" "$t" "$r" >"$RES/runs/$s.$t.$r.meta"
        continue
      fi
      case "$s" in
        floor-*) run_floor "$s" "$t" "$r" ;;
        rps-floor) run_emit_floor "$s" "$t" "$r" ;;
        *) run_one "$s" "$t" "$r" ;;
      esac
    done
  done
done
[ $SKIPPED -eq 0 ] || log "deadline of ${DEADLINE_S}s passed: $SKIPPED runs skipped"

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"
echo "elapsed_s=$(($(date +%s) - T_START))" >>"$RES/machine.txt"
echo "quiet_wait_total_s=$QUIET_SUM" >>"$RES/machine.txt"
ports_to_bridge
timeout 60 "$LAB" down >/dev/null 2>&1 || true
LAB_UP=0

# ---- the report ---------------------------------------------------------------------------------
if [ $WRITE_DOC -eq 1 ] && [ -n "$SECTION" ]; then
  "$PY" "$ROOT/bench/summarize.py" "$RES" "$DOC" --section "$SECTION" ||
    { echo "bench/run.sh: summarize failed" >&2; exit 1; }
  log "wrote the section \"$SECTION\" of $DOC"
elif [ $WRITE_DOC -eq 1 ]; then
  "$PY" "$ROOT/bench/summarize.py" "$RES" "$DOC" || { echo "bench/run.sh: summarize failed" >&2; exit 1; }
  if command -v gnuplot >/dev/null 2>&1; then
    if timeout 60 gnuplot -e "dir='$RES'; out='$PNG'" "$ROOT/bench/plot.gp" 2>"$RES/gnuplot.err"; then
      log "wrote $DOC and $PNG"
    else
      log "gnuplot failed: $(head -3 "$RES/gnuplot.err" | tr '\n' ' ')"
    fi
  else
    log "wrote $DOC (no gnuplot: PNG not redrawn)"
  fi
else
  "$PY" "$ROOT/bench/summarize.py" "$RES" /dev/stdout >/dev/null || true
fi
log "done in $(($(date +%s) - T_START)) s"
