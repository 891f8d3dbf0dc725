# shellcheck shell=bash
# Shared helpers for the lab tests (tests/lab/test_*.sh). Source it, then:
#
#   lab_init                      lab up under a prefix of its own (t<pid>), cleanup trap
#   for_targets FUNC              FUNC for each target of $LAB_TARGETS (direct proxy monitor
#                                 intercept lwip; mqoff's targets skipped while build/ lacks them)
#   target_up T [mqoff args...]   fresh broker; for proxy also `mqoff proxy ARGS` in the nic namespace,
#                                 for intercept `mqoff intercept ARGS` beside the broker, which runs
#                                 with the shim (an argument @BROKER_CONF@ is the broker's config);
#                                 for lwip `mqoff proxy --stack lwip ARGS` on an interface of its
#                                 own in the nic namespace, owning 198.18.0.4 (LWIP_IMPAIR=SPEC:
#                                 mqoff-bridge impairs the clients' link, between them and mqoff)
#   target_down T                 stops the proxy (checks it stops on SIGTERM, prints its counters)
#   run_py NAME SECS SCRIPT ARGS  a python helper in the cli namespace; its ok/not ok lines count
#   case_py T CASE [ARGS]         run_py of cases.py CASE against target T
#   ok NAME | not_ok NAME WHY | skip NAME WHY | check NAME CMD...
#   io_args IF_A IF_B             IO_ARGS: mqoff's (or mqoff-bridge's) port arguments for the
#                                 packet I/O backend $MONITOR_IO (afpacket, the default; afxdp;
#                                 dpdk: net_af_packet vdevs on the two interfaces)
#   ports_state NS IF_A IF_B      promiscuous mode and XDP program of two interfaces, to compare
#   lab_finish                    tears down, prints "N passed, N failed", exit 1 if any failed
#
# Every check prints "ok - NAME", "not ok - NAME: why" or "ok - NAME # SKIP why". Whatever
# happens (failure, timeout, ^C) the EXIT trap stops the proxy and the broker and removes the
# namespaces and temp files.

set -u

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_ROOT=$(cd "$LAB_DIR/../.." && pwd)
LAB_TOOL=$LAB_ROOT/tools/mqoff-lab
MQOFF=${MQOFF:-$LAB_ROOT/build/mqoff}
SHIM=${SHIM:-$LAB_ROOT/build/libmqoff-intercept.so}
PY=/usr/bin/python3            # Debian's interpreter: the one with python3-paho-mqtt
export MQO_LAB=${MQO_TEST_LAB:-t$$}     # never a lab someone else set up by hand
NS_CLI=$MQO_LAB-cli NS_NIC=$MQO_LAB-nic
export NS_BRK=$MQO_LAB-brk      # for tests that run something beside the broker
BROKER_ADDR=198.18.0.2 PROXY_ADDR=198.18.0.3 LWIP_ADDR=198.18.0.4 MQTT_PORT=1883
BRIDGE=${BRIDGE:-$LAB_ROOT/build/mqoff-bridge}
LWIP_IO=${LWIP_IO:-afpacket}     # --stack lwip's packet I/O: afpacket, afxdp, dpdk
LWIP_BR_PID=''                   # the impairing mqoff-bridge of the lwip target
LAB_TARGETS=${LAB_TARGETS:-direct proxy monitor intercept}
PORTS_BEFORE=''                # ports_state of monitor mode's ports before it started
# shellcheck source-path=SCRIPTDIR source=io.sh
. "$LAB_DIR/io.sh"               # MONITOR_IO: monitor mode's packet I/O (afpacket, afxdp, dpdk)
LAB_NAME=$(basename "$0" .sh)

T_PASS=0 T_FAIL=0 T_SKIP=0
_LAB_FINISHED=0
LAB_TMP=
PROXY_PID='' PROXY_LOG='' PROXY_N=0 PROXY_RC=''
BROKER_EXTRA=                  # config snippet appended by target_up (set by a test)
BROKER_LOG=

ok() { echo "ok - $1"; T_PASS=$((T_PASS + 1)); }
not_ok() { echo "not ok - $1: ${2:-failed}"; T_FAIL=$((T_FAIL + 1)); }
skip() { echo "ok - $1 # SKIP $2"; T_SKIP=$((T_SKIP + 1)); }

# check NAME CMD...: ok when CMD succeeds, else not ok with the last line it printed.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$(printf '%s' "$out" | tail -1)"; fi
}

lab_summary() {
  [ "$T_SKIP" -eq 0 ] || echo "# $T_SKIP skipped"
  echo "$T_PASS passed, $T_FAIL failed"
}

LAB_CLEANUP_EXTRA=             # a test's own cleanup function, run first (processes it started)
_lab_cleanup() {
  [ -z "$LAB_CLEANUP_EXTRA" ] || "$LAB_CLEANUP_EXTRA" >/dev/null 2>&1 || true
  proxy_stop >/dev/null 2>&1 || true
  lwip_restore >/dev/null 2>&1 || true
  "$LAB_TOOL" down >/dev/null 2>&1 || true
  io_cleanup
  [ -z "$LAB_TMP" ] || rm -rf "$LAB_TMP"
  LAB_TMP=
}

_lab_exit() {
  local rc=$?
  trap - EXIT INT TERM HUP
  _lab_cleanup
  if [ "$_LAB_FINISHED" -eq 0 ]; then
    not_ok "$LAB_NAME" "aborted (exit status $rc)"
    lab_summary
    exit 1
  fi
}

lab_init() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$LAB_NAME: the lab needs root (network namespaces)" >&2
    exit 1
  fi
  trap _lab_exit EXIT
  trap 'exit 130' INT TERM HUP
  LAB_TMP=$(mktemp -d /tmp/mqoff-labtest."$MQO_LAB".XXXXXX)
  chmod 755 "$LAB_TMP"
  local out
  if ! out=$("$LAB_TOOL" up 2>&1); then
    not_ok "$LAB_NAME: lab up" "$out"
    exit 1
  fi
  echo "# $LAB_NAME: lab $MQO_LAB up; targets: $LAB_TARGETS"
}

lab_finish() {
  _lab_cleanup
  _LAB_FINISHED=1
  lab_summary
  [ "$T_FAIL" -eq 0 ]
  exit $?
}

# wait_port NS ADDR PORT SECS: 0 once a TCP connect from NS succeeds.
wait_port() {
  local ns=$1 addr=$2 port=$3 secs=$4 i
  for ((i = 0; i < secs * 20; i++)); do
    ip netns exec "$ns" timeout 1 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# ICPT_SIDE=nic: intercept's mqoff runs in the nic namespace on 198.18.0.3 (a DPU's place, as
# make bench runs it), serving the broker's extra listener for that address across namespaces.
target_addr() {
  if [ "$1" = lwip ]; then
    echo "$LWIP_ADDR"
  elif [ "$1" = proxy ] || { [ "$1" = intercept ] && [ "${ICPT_SIDE:-}" = nic ]; }; then
    echo "$PROXY_ADDR"
  else
    echo "$BROKER_ADDR"
  fi
}

# is_offload T: true for the targets where mqoff runs (proxy, monitor, intercept).
is_offload() { [ "$1" = proxy ] || [ "$1" = monitor ] || [ "$1" = intercept ] || [ "$1" = lwip ]; }

proxy_built() { [ -x "$MQOFF" ]; }
# target_built T: mqoff (and for intercept the shim) is there.
target_built() { proxy_built && { [ "$1" != intercept ] || [ -f "$SHIM" ]; }; }

# broker_start [EXTRA]: a fresh broker (persistence off: no state from before).
broker_start() {
  local out
  if ! out=$("$LAB_TOOL" broker-start "${1:-}" 2>&1); then
    not_ok "$LAB_NAME: broker start" "$(printf '%s' "$out" | tr '\n' ' ' | tail -c 400)"
    return 1
  fi
  BROKER_LOG=$(cat "/run/mqoff-lab/$MQO_LAB/broker.log")
}

broker_alive() { kill -0 "$(cat "/run/mqoff-lab/$MQO_LAB/broker.pid" 2>/dev/null)" 2>/dev/null; }

# proxy_start ARGS...: mqoff proxy in the nic namespace, listening on 198.18.0.3:1883.
proxy_start() {
  PROXY_N=$((PROXY_N + 1))
  PROXY_LOG=$LAB_TMP/proxy.$PROXY_N.log
  echo "# mqoff proxy --listen $PROXY_ADDR:$MQTT_PORT --broker $BROKER_ADDR:$MQTT_PORT $*"
  # ip netns exec execs mqoff in place: $! is mqoff's own PID.
  ip netns exec "$NS_NIC" "$MQOFF" proxy --listen "$PROXY_ADDR:$MQTT_PORT" \
    --broker "$BROKER_ADDR:$MQTT_PORT" "$@" >"$PROXY_LOG" 2>&1 </dev/null &
  PROXY_PID=$!
  if ! wait_port "$NS_CLI" "$PROXY_ADDR" "$MQTT_PORT" 10 || ! kill -0 "$PROXY_PID" 2>/dev/null; then
    not_ok "$LAB_NAME: mqoff proxy starts" "not listening on $PROXY_ADDR:$MQTT_PORT; log: $(tail -5 "$PROXY_LOG" | tr '\n' ' ')"
    proxy_stop >/dev/null
    return 1
  fi
}

# lwip_start ARGS...: mqoff proxy --stack lwip on ${MQO_LAB}lb, a veth whose peer is a port of
# the nic namespace's bridge (no address on it: mqoff owns 198.18.0.4 there). With
# LWIP_IMPAIR=SPEC the clients' veth leaves the bridge and mqoff-bridge --impair SPEC forwards
# between it and another veth of the bridge: loss, duplication, reordering between the clients
# and mqoff (and the broker, for direct traffic).
# lwip_links: the veth pair of the lwip target (Pla on br0, Plb for mqoff); sets LWIP_IF_ARGS,
# mqoff's --iface (and --io, --eal, --mac) for $LWIP_IO.
lwip_links() {
  local la=${MQO_LAB}la lb=${MQO_LAB}lb
  ip -n "$NS_NIC" link add "$la" type veth peer name "$lb" || return 1
  ip -n "$NS_NIC" link set "$la" master br0
  ip -n "$NS_NIC" link set "$la" up
  ip -n "$NS_NIC" link set "$lb" up
  case "$LWIP_IO" in
    afpacket) LWIP_IF_ARGS=(--iface "$lb") ;;
    afxdp) LWIP_IF_ARGS=(--io afxdp --iface "$lb") ;;
    dpdk) IO_N=$((IO_N + 1))   # DPDK's device has no kernel name to read the MAC from
          LWIP_IF_ARGS=(--io dpdk --iface net_af_packet0 --mac "$(ip -n "$NS_NIC" -br link show "$lb" | awk '{print $3}')"
                        --eal "--no-huge --no-pci --file-prefix $IO_PREFIX$IO_N --vdev=net_af_packet0,iface=$lb,framecnt=8192") ;;
    *) echo "lib.sh: LWIP_IO=$LWIP_IO: want afpacket, afxdp or dpdk" >&2; return 1 ;;
  esac
}

lwip_start() {
  local lc=${MQO_LAB}lc ld=${MQO_LAB}ld
  PROXY_N=$((PROXY_N + 1))
  PROXY_LOG=$LAB_TMP/lwip.$PROXY_N.log
  lwip_links || return 1
  if [ -n "${LWIP_IMPAIR:-}" ]; then
    ip -n "$NS_NIC" link add "$lc" type veth peer name "$ld" || return 1
    ip -n "$NS_NIC" link set "$lc" master br0
    ip -n "$NS_NIC" link set "$lc" up
    ip -n "$NS_NIC" link set "$ld" up
    ip -n "$NS_NIC" link set "${MQO_LAB}nc" nomaster
    echo "# clients: ${MQO_LAB}nc [mqoff-bridge --impair $LWIP_IMPAIR] $ld == $lc (br0)"
    ip netns exec "$NS_NIC" "$BRIDGE" --port-a "${MQO_LAB}nc" --port-b "$ld" --impair "$LWIP_IMPAIR" \
      >"$LAB_TMP/lwip-bridge.$PROXY_N.log" 2>&1 </dev/null &
    LWIP_BR_PID=$!
  fi
  echo "# mqoff proxy --stack lwip ${LWIP_IF_ARGS[*]} --listen $LWIP_ADDR:$MQTT_PORT --broker $BROKER_ADDR:$MQTT_PORT $*"
  ip netns exec "$NS_NIC" "$MQOFF" proxy --stack lwip "${LWIP_IF_ARGS[@]}" \
    --listen "$LWIP_ADDR:$MQTT_PORT" --broker "$BROKER_ADDR:$MQTT_PORT" "$@" \
    >"$PROXY_LOG" 2>&1 </dev/null &
  PROXY_PID=$!
  if ! wait_port "$NS_CLI" "$LWIP_ADDR" "$MQTT_PORT" 10 || ! kill -0 "$PROXY_PID" 2>/dev/null; then
    not_ok "$LAB_NAME: mqoff proxy --stack lwip starts" "not listening on $LWIP_ADDR:$MQTT_PORT; log: $(tail -5 "$PROXY_LOG" | tr '\n' ' ')"
    proxy_stop >/dev/null
    lwip_restore
    return 1
  fi
}

# lwip_restore: the impairing bridge stopped, the clients' veth back on the bridge, the lwip
# target's veths removed (for the next target).
lwip_restore() {
  if [ -n "$LWIP_BR_PID" ]; then
    kill -TERM "$LWIP_BR_PID" 2>/dev/null || true
    wait "$LWIP_BR_PID" 2>/dev/null || true
    grep -h "^impair" "$LAB_TMP"/lwip-bridge.*.log 2>/dev/null | tail -2 | sed 's/^/# bridge: /'
    LWIP_BR_PID=
  fi
  ip -n "$NS_NIC" link set "${MQO_LAB}nc" master br0 2>/dev/null || true
  ip -n "$NS_NIC" link del "${MQO_LAB}la" 2>/dev/null || true
  ip -n "$NS_NIC" link del "${MQO_LAB}lc" 2>/dev/null || true
}

# monitor_start ARGS...: the kernel bridge in the nic namespace lets go of its two ports and
# mqoff monitor forwards between them instead (transparent: clients still use 198.18.0.2).
monitor_start() {
  PROXY_N=$((PROXY_N + 1))
  PROXY_LOG=$LAB_TMP/monitor.$PROXY_N.log
  local a=${MQO_LAB}nc b=${MQO_LAB}nb
  ip -n "$NS_NIC" link set "$a" nomaster
  ip -n "$NS_NIC" link set "$b" nomaster
  PORTS_BEFORE=$(ports_state "$NS_NIC" "$a" "$b")
  io_args "$a" "$b" || return 1
  echo "# mqoff monitor ${IO_ARGS[*]} --broker $BROKER_ADDR:$MQTT_PORT $*"
  # the broker was started fresh for this target: no client predates mqoff
  ip netns exec "$NS_NIC" "$MQOFF" monitor "${IO_ARGS[@]}" \
    --broker "$BROKER_ADDR:$MQTT_PORT" --startup-hold "${MONITOR_STARTUP_HOLD:-0}" "$@" \
    >"$PROXY_LOG" 2>&1 </dev/null &
  PROXY_PID=$!
  io_attach "$NS_NIC" "$a" "$b"
  if ! wait_port "$NS_CLI" "$BROKER_ADDR" "$MQTT_PORT" 10 || ! kill -0 "$PROXY_PID" 2>/dev/null; then
    not_ok "$LAB_NAME: mqoff monitor starts" "broker not reachable through it; log: $(tail -5 "$PROXY_LOG" | tr '\n' ' ')"
    proxy_stop >/dev/null
    return 1
  fi
}

# intercept_attached N SECS: 0 once mqoff's log says a broker attached N times.
intercept_attached() {
  local n=$1 secs=$2 i
  for ((i = 0; i < secs * 20; i++)); do
    [ "$(grep -c 'attached: clients on' "$PROXY_LOG" 2>/dev/null)" -ge "$n" ] && return 0
    sleep 0.05
  done
  return 1
}

# intercept_mqoff ARGS...: mqoff intercept in the brk namespace on the broker's own listener
# (198.18.0.2:1883), its channel at $CHANNEL; ICPT_NS, ICPT_ADDR and ICPT_CHANNEL place them
# elsewhere.
CHANNEL=
intercept_mqoff() {
  local ns=${ICPT_NS:-$NS_BRK} addr=${ICPT_ADDR:-$BROKER_ADDR}
  PROXY_N=$((PROXY_N + 1))
  PROXY_LOG=$LAB_TMP/intercept.$PROXY_N.log
  CHANNEL=${ICPT_CHANNEL:-$LAB_TMP/chan}
  echo "# ($ns) mqoff intercept --listen $addr:$MQTT_PORT --channel $CHANNEL $*"
  ip netns exec "$ns" "$MQOFF" intercept --listen "$addr:$MQTT_PORT" \
    --channel "$CHANNEL" "$@" >"$PROXY_LOG" 2>&1 </dev/null &
  PROXY_PID=$!
}

# intercept_broker [EXTRA]: a fresh broker with the shim (it waits for mqoff at $CHANNEL).
intercept_broker() {
  CHANNEL=${CHANNEL:-$LAB_TMP/chan}
  MOSQUITTO_PRELOAD=$SHIM MQOFF_CHANNEL=$CHANNEL broker_start "${1:-}"
}

# intercept_start [ARGS...]: the broker with the shim (its bind() waits for mqoff), then mqoff
# intercept with ARGS; ready once the broker attached.
intercept_start() {
  local a args=() extra=$BROKER_EXTRA ns=$NS_BRK addr=$BROKER_ADDR
  CHANNEL=$LAB_TMP/chan
  if [ "${ICPT_SIDE:-}" = nic ]; then
    extra=$LAB_TMP/nic-side.conf
    { [ -z "$BROKER_EXTRA" ] || cat "$BROKER_EXTRA"; echo "listener $MQTT_PORT $PROXY_ADDR"; } >"$extra"
    ns=$NS_NIC addr=$PROXY_ADDR
  fi
  intercept_broker "$extra" || return 1
  for a in "$@"; do
    [ "$a" != @BROKER_CONF@ ] || a=$(cat "/run/mqoff-lab/$MQO_LAB/broker.conf")
    args+=("$a")
  done
  ICPT_NS=$ns ICPT_ADDR=$addr intercept_mqoff "${args[@]}"
  if ! intercept_attached 1 10 || ! kill -0 "$PROXY_PID" 2>/dev/null; then
    not_ok "$LAB_NAME: mqoff intercept starts and the broker attaches" \
      "mqoff: $(tail -3 "$PROXY_LOG" | tr '\n' ' '); broker: $(tail -3 "$BROKER_LOG" | tr '\n' ' ')"
    proxy_stop >/dev/null
    return 1
  fi
}

# monitor_restore: the kernel bridge takes its ports back (for the next target).
monitor_restore() {
  ip -n "$NS_NIC" link set "${MQO_LAB}nc" master br0 2>/dev/null || true
  ip -n "$NS_NIC" link set "${MQO_LAB}nb" master br0 2>/dev/null || true
}

proxy_alive() { [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; }

# proxy_stop: SIGTERM, up to 10 s, then SIGKILL. Sets PROXY_RC (137 when it had to be killed).
proxy_stop() {
  PROXY_RC=
  [ -n "$PROXY_PID" ] || return 0
  local i
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -KILL "$PROXY_PID" 2>/dev/null || true
  fi
  wait "$PROXY_PID" 2>/dev/null
  PROXY_RC=$?
  PROXY_PID=
}

# proxy_counter NAME: the value of NAME in the proxy's closing summary ("NAME=3", "NAME: 3"
# or "NAME 3"), empty when absent.
proxy_counter() {
  grep -oE "(^|[^a-z_])$1[=: ]+[0-9]+" "$PROXY_LOG" 2>/dev/null | tail -1 | grep -oE '[0-9]+$'
}

# target_up T [mqoff args...]: fresh broker with $BROKER_EXTRA; for proxy, mqoff in front.
# An argument @BROKER_CONF@ becomes the path of the broker's generated mosquitto.conf (for
# mqoff --mosquitto-conf).
target_up() {
  local t=$1 a args=()
  shift
  if [ "$t" = intercept ]; then
    intercept_start "$@"
    return
  fi
  broker_start "$BROKER_EXTRA" || return 1
  for a in "$@"; do
    [ "$a" != @BROKER_CONF@ ] || a=$(cat "/run/mqoff-lab/$MQO_LAB/broker.conf")
    args+=("$a")
  done
  if [ "$t" = proxy ]; then
    proxy_start "${args[@]}" || return 1
  elif [ "$t" = lwip ]; then
    lwip_start "${args[@]}" || return 1
  elif [ "$t" = monitor ]; then
    monitor_start "${args[@]}" || return 1
  fi
}

# target_down T: stops the proxy and checks it went on SIGTERM with its counter summary.
target_down() {
  local t=$1
  is_offload "$t" || return 0
  if [ -z "$PROXY_PID" ]; then
    [ "$t" = monitor ] && monitor_restore
    [ "$t" = lwip ] && lwip_restore
    return 0
  fi
  if proxy_alive; then ok "$LAB_NAME: mqoff $t still running at the end [$t]"
  else not_ok "$LAB_NAME: mqoff $t still running at the end [$t]" "it exited: $(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
  proxy_stop
  if [ "$PROXY_RC" != 137 ] && grep -q published_in "$PROXY_LOG"; then
    ok "$LAB_NAME: mqoff $t stops on SIGTERM with its counter summary [$t]"
  else
    not_ok "$LAB_NAME: mqoff $t stops on SIGTERM with its counter summary [$t]" \
      "exit status $PROXY_RC; last lines: $(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
  sed -n '/summary/,$p' "$PROXY_LOG" | sed "s/^/# $t: /"
  if [ "$t" = monitor ]; then
    io_detach "$NS_NIC" "${MQO_LAB}nc" "${MQO_LAB}nb"
    ports_restored "$LAB_NAME: mqoff $t ($MONITOR_IO) left its ports as they were [$t]" \
      "$PORTS_BEFORE" "$NS_NIC" "${MQO_LAB}nc" "${MQO_LAB}nb"
    monitor_restore
  fi
  [ "$t" = lwip ] && lwip_restore
  return 0
}

# for_targets FUNC: FUNC TARGET for each of $LAB_TARGETS; proxy needs build/mqoff.
for_targets() {
  local fn=$1 t
  for t in $LAB_TARGETS; do
    if is_offload "$t" && ! target_built "$t"; then
      skip "$LAB_NAME: $fn [$t]" "build/mqoff (or the shim) not built yet"
      continue
    fi
    echo "# --- $LAB_NAME: target $t"
    "$fn" "$t"
    target_down "$t"
  done
}

# run_py NAME SECS SCRIPT ARGS...: runs tests/lab/SCRIPT in the cli namespace, bounded by SECS.
# Its "ok"/"not ok" lines are counted; anything else is shown as a comment. A helper that
# fails without reporting a failed check counts as one failure.
run_py() {
  local name=$1 secs=$2 script=$3 line rc=0 fails=0
  shift 3
  while IFS= read -r line; do
    case "$line" in
      "__rc="*) rc=${line#__rc=} ;;
      "not ok - "*) echo "$line"; T_FAIL=$((T_FAIL + 1)); fails=$((fails + 1)) ;;
      "ok - "*"# SKIP"*) echo "$line"; T_SKIP=$((T_SKIP + 1)) ;;
      "ok - "*) echo "$line"; T_PASS=$((T_PASS + 1)) ;;
      "#"*) echo "$line" ;;
      *) echo "#   $line" ;;
    esac
  done < <(cd "$LAB_DIR" && ip netns exec "$NS_CLI" timeout -k 5 "$secs" "$PY" "$LAB_DIR/$script" "$@" 2>&1
           echo "__rc=$?")
  if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then
    if [ "$rc" -eq 124 ]; then not_ok "$name" "timed out after ${secs}s"
    else not_ok "$name" "helper exited with status $rc"
    fi
  fi
  return 0
}

# case_py T CASE [ARGS...]: cases.py CASE against target T.
case_py() {
  local t=$1 c=$2
  shift 2
  run_py "$c [$t]" "${CASE_SECS:-90}" cases.py "$c" --host "$(target_addr "$t")" --target "$t" "$@"
}

# fanout_py T ARGS...: fanout.py against target T.
fanout_py() {
  local t=$1
  shift
  run_py "fanout $* [$t]" "${CASE_SECS:-120}" fanout.py --host "$(target_addr "$t")" --target "$t" "$@"
}

# broker_log_lacks NAME REGEX: ok when the broker's log has no line matching REGEX.
broker_log_lacks() {
  local name=$1 re=$2 hit
  hit=$(grep -E "$re" "$BROKER_LOG" 2>/dev/null | head -2 | tr '\n' ' ')
  if [ -z "$hit" ]; then ok "$name"; else not_ok "$name" "broker log: $hit"; fi
}
