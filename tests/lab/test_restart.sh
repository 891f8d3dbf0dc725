#!/usr/bin/env bash
# Restarts without losing clients (README "Restarts"): under steady QoS 0 and QoS 1 load from
# real paho clients through mqoff in front of the real Mosquitto,
#  - proxy, monitor and intercept mode: a planned takeover (--takeover PATH), then a second one at once:
#    every message exactly once and in order, no client disconnected, offload goes on in the
#    new process;
#  - a takeover attempted by a process of another version: refused with a clear message, the
#    running process serves on.
#  - monitor mode, kill -9 and a new start with the same --conn-table: the connections the
#    dead process spliced that were quiescent at the kill are resumed (relayed): those clients
#    never disconnect, and a lane whose publisher and subscriber were both resumed loses
#    nothing; the others (bytes in transit at the kill) are reset at both ends and connected
#    again within 2 s of the kill; from then on every message arrives once, in order.
# Printed per case: the outage (the longest silence a subscriber saw), the loss, the order.
# RESTART_SECS (default 8): seconds of load per run.
. "$(dirname "$0")/lib.sh"

SECS=${RESTART_SECS:-8}
OTHER=$LAB_ROOT/build/mqoff-otherversion
TKO_PIDS=

# every mqoff this script started besides lib.sh's PROXY_PID is stopped, also on failure
tko_cleanup() {
  local p
  for p in $TKO_PIDS; do kill -KILL "$p" 2>/dev/null || true; done
  TKO_PIDS=
}
LAB_CLEANUP_EXTRA=tko_cleanup

# takeover_start T N ARGS...: starts mqoff T (proxy, monitor, intercept) #N with ARGS (--takeover) in the
# background; its PID goes to $LAB_TMP/tko.N.pid, its log to $LAB_TMP/tko.N.log.
takeover_start() {
  local t=$1 n=$2
  shift 2
  if [ "$t" = proxy ]; then
    ip netns exec "$NS_NIC" "$MQOFF" proxy --listen "$PROXY_ADDR:$MQTT_PORT" \
      --broker "$BROKER_ADDR:$MQTT_PORT" "$@" >"$LAB_TMP/tko.$n.log" 2>&1 </dev/null &
  elif [ "$t" = intercept ]; then
    ip netns exec "$NS_BRK" "$MQOFF" intercept --listen "$BROKER_ADDR:$MQTT_PORT" \
      --channel "$CHANNEL" "$@" >"$LAB_TMP/tko.$n.log" 2>&1 </dev/null &
  else
    ip netns exec "$NS_NIC" "$MQOFF" monitor "${IO_ARGS[@]}" --broker "$BROKER_ADDR:$MQTT_PORT" \
      --startup-hold 0 "$@" >"$LAB_TMP/tko.$n.log" 2>&1 </dev/null &
  fi
  echo $! >"$LAB_TMP/tko.$n.pid"
}

# wait_log FILE REGEX SECS: 0 once FILE has a line matching REGEX.
wait_log() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

now_ms() { date +%s%3N; }

# The restarts, in the background while restart.py runs: #1 at 3 s, #2 as soon as #1 serves.
# Writes the time each took (new process started -> serving) to $LAB_TMP/tko.N.ms. Proxy mode's
# second one is SIGUSR2 to the first new process (it starts its successor itself; that one
# logs to the same file, its PID in its "serving" line).
restarts() {
  local t=$1 n t0 re='takeover: (serving|[0-9]+ spliced connections handed over)' pid
  shift
  local args=("$@")
  sleep 3
  for n in 1 2; do
    t0=$(now_ms)
    if [ "$t" = proxy ] && [ "$n" = 2 ]; then
      kill -USR2 "$(cat "$LAB_TMP/tko.1.pid")"
      if wait_log_n "$LAB_TMP/tko.1.log" "$re" 2 15; then
        pid=$(grep -E "$re" "$LAB_TMP/tko.1.log" | tail -1 | grep -oE 'pid [0-9]+' | grep -oE '[0-9]+')
        echo "$pid" >"$LAB_TMP/tko.2.pid"
        cp "$LAB_TMP/tko.1.log" "$LAB_TMP/tko.2.log"
        echo "$LAB_TMP/tko.1.log" >"$LAB_TMP/tko.2.logpath"
        echo $(($(now_ms) - t0)) >"$LAB_TMP/tko.2.ms"
      else
        echo fail >"$LAB_TMP/tko.2.ms"
      fi
      return
    fi
    takeover_start "$t" "$n" "${args[@]}"
    if wait_log "$LAB_TMP/tko.$n.log" "$re" 15; then
      echo $(($(now_ms) - t0)) >"$LAB_TMP/tko.$n.ms"
    else
      echo fail >"$LAB_TMP/tko.$n.ms"
      return
    fi
  done
}

# wait_log_n FILE REGEX N SECS: 0 once FILE has N lines matching REGEX.
wait_log_n() {
  local i
  for ((i = 0; i < $4 * 20; i++)); do
    [ "$(grep -cE "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
    sleep 0.05
  done
  return 1
}

counter() { grep -oE "(^|[^a-z_])$2[=: ]+[0-9]+" "$1" 2>/dev/null | tail -1 | grep -oE '[0-9]+$'; }

case_takeover() {
  local t=$1 tko=$LAB_TMP/tko.sock args n
  rm -f "$LAB_TMP"/tko.*
  args=(--acl open --exclusive --takeover "$tko")
  target_up "$t" "${args[@]}" || return
  local first=$PROXY_PID first_log=$PROXY_LOG
  restarts "$t" "${args[@]}" &
  local bg=$!
  run_py "restart: two takeovers in a row under load [$t]" $((SECS + 30)) restart.py \
    --host "$(target_addr "$t")" --target "$t" --secs "$SECS" --tag "two takeovers"
  wait "$bg"
  for n in 1 2; do
    [ -f "$LAB_TMP/tko.$n.pid" ] && TKO_PIDS="$TKO_PIDS $(cat "$LAB_TMP/tko.$n.pid")"
  done
  if [ "$(cat "$LAB_TMP/tko.1.ms" 2>/dev/null)" != fail ] && [ -f "$LAB_TMP/tko.2.ms" ] &&
     [ "$(cat "$LAB_TMP/tko.2.ms")" != fail ]; then
    ok "restart: both takeovers done [$t]"
    echo "# takeover 1: $(cat "$LAB_TMP/tko.1.ms") ms from start to serving; takeover 2: $(cat "$LAB_TMP/tko.2.ms") ms"
  else
    not_ok "restart: both takeovers done [$t]" "$({ cat "$LAB_TMP"/tko.*.ms; tail -n 3 "$LAB_TMP/tko.1.log" "$LAB_TMP/tko.2.log" "$first_log"; } 2>&1 | tr '\n' ' ')"
    return
  fi
  # the old processes exited on their own, after handing over (status 0, their summary)
  if ! kill -0 "$first" 2>/dev/null && grep -q 'takeover: the new process has the connections' "$first_log" &&
     ! kill -0 "$(cat "$LAB_TMP/tko.1.pid")" 2>/dev/null; then
    ok "restart: each old process exited after the new one confirmed [$t]"
  else
    not_ok "restart: each old process exited after the new one confirmed [$t]" "$(tail -2 "$first_log" | tr '\n' ' ')"
  fi
  wait "$first" 2>/dev/null
  # the new processes carried the subscriptions: offload went on after the takeovers (the
  # first process's count, then the last one's at its stop, which carries the counts on)
  local c0
  c0=$(counter "$first_log" consumed)
  PROXY_PID=$(cat "$LAB_TMP/tko.2.pid")
  PROXY_LOG=$LAB_TMP/tko.2.log
  [ ! -f "$LAB_TMP/tko.2.logpath" ] || PROXY_LOG=$(cat "$LAB_TMP/tko.2.logpath")
  TKO_PIDS=$(echo "$TKO_PIDS" | tr ' ' '\n' | grep -vx "$PROXY_PID" | tr '\n' ' ')

  # another version: refused, and the running process serves on
  if [ "$t" != proxy ]; then
    : # the version check is the same code in every mode: proxy mode's run checks it
  elif [ -x "$OTHER" ]; then
    local out rc
    out=$(ip netns exec "$NS_NIC" timeout 20 "$OTHER" proxy --listen "$PROXY_ADDR:$MQTT_PORT" \
      --broker "$BROKER_ADDR:$MQTT_PORT" "${args[@]}" 2>&1); rc=$?
    if [ "$rc" -ne 0 ] && printf '%s' "$out" | grep -q 'takeover refused.*another version'; then
      ok "restart: a takeover by another version is refused with a clear message [$t]"
      echo "# $(printf '%s' "$out" | grep 'takeover refused' | head -1)"
    else
      not_ok "restart: a takeover by another version is refused with a clear message [$t]" \
        "status $rc: $(printf '%s' "$out" | tail -2 | tr '\n' ' ')"
    fi
    check "restart: the running process says it refused and serves on [$t]" \
      wait_log "$PROXY_LOG" 'takeover refused: another version.*serving on' 5
  else
    skip "restart: a takeover by another version is refused [$t]" "build/mqoff-otherversion not built"
  fi
  # new clients connect and are served by the last process (its listener, its accept link)
  run_py "restart: new clients after the takeovers [$t]" 20 restart.py \
    --host "$(target_addr "$t")" --target "$t" --secs 2 --tag "new clients after the takeovers"
  target_down "$t"
  local c2
  c2=$(counter "$PROXY_LOG" consumed)
  if [ -n "$c0" ] && [ -n "$c2" ] && [ "$c0" -gt 0 ] && [ "$c2" -gt "$c0" ]; then
    ok "restart: offload went on after the takeovers (consumed $c0, then $c2 in all) [$t]"
  else
    not_ok "restart: offload went on after the takeovers [$t]" "consumed before '$c0', at the end '$c2'"
  fi
}

# kill -9 of monitor mode under load, and a new mqoff on the same --conn-table at once: the
# previous one's quiescent connections are resumed, the others reset at both ends (those
# clients reconnect within 2 s).
crash() {
  sleep "$1"
  kill -KILL "$PROXY_PID" 2>/dev/null
  echo $(($(now_ms))) >"$LAB_TMP/crash.ms"
  sleep 0.3
  shift
  takeover_start monitor 9 "$@"
}

case_crash() {
  local t=monitor args
  rm -f "$LAB_TMP"/tko.*
  args=(--acl open --exclusive --conn-table "$LAB_TMP/conns")
  target_up "$t" "${args[@]}" || return
  local first=$PROXY_PID first_log=$PROXY_LOG
  crash 3 "${args[@]}" &
  local bg=$!
  run_py "restart: kill -9 and a new start under load [$t]" $((SECS + 30)) restart.py \
    --host "$(target_addr "$t")" --target "$t" --secs "$SECS" --tag "kill -9" --reconnect \
    --max-reconnect 2 --event-at 3 --resumed-from "$LAB_TMP/tko.9.log"
  wait "$bg"
  wait "$first" 2>/dev/null
  [ -f "$LAB_TMP/tko.9.pid" ] && TKO_PIDS="$TKO_PIDS $(cat "$LAB_TMP/tko.9.pid")"
  PROXY_PID=$(cat "$LAB_TMP/tko.9.pid" 2>/dev/null)
  PROXY_LOG=$LAB_TMP/tko.9.log
  TKO_PIDS=$(echo "$TKO_PIDS" | tr ' ' '\n' | grep -vx "$PROXY_PID" | tr '\n' ' ')
  check "restart: the new mqoff resumed or reset the previous one's connections [$t]" \
    grep -E 'connections of the previous mqoff: [1-9][0-9]* reset at both ends|were quiescent: resumed' "$PROXY_LOG"
  grep -E 'previous mqoff' "$PROXY_LOG" | sed 's/^/# /'
  target_down "$t"
}

lab_init
LAB_TARGETS=${RESTART_TARGETS:-proxy monitor intercept}
for t in $LAB_TARGETS; do
  if ! target_built "$t"; then
    skip "restart [$t]" "build/mqoff not built"
  elif [ "$t" = monitor ] && [ "$MONITOR_IO" != afpacket ]; then
    skip "restart [$t]" "the takeover test runs with afpacket"
  else
    echo "# --- $LAB_NAME: target $t"
    case_takeover "$t"
    [ "$t" != monitor ] || case_crash
  fi
done
lab_finish
