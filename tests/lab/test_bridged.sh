#!/usr/bin/env bash
# Bridged brokers: users who outgrow one broker join two with a Mosquitto bridge, and put an
# mqoff in front of each.
#
#   cli: clients --> 198.18.0.3:1883 mqoff A --> 198.18.0.2:1883 broker A --bridge (br/# both)
#        clients --> 198.18.0.3:1885 mqoff B --> 198.18.0.2:1885 broker B <-------'
#
# Broker A's bridge subscribes to br/# on both brokers (its own local subscription, and on
# broker B as a client that does not go through mqoff B). A publisher on either side must
# reach the subscribers on both sides exactly once and in order; loc/# (not bridged) is
# offloaded on side A. Two ways:
#   plugin      each broker loads mqoff's plugin, each mqoff has --control and no
#               --exclusive: the plugins report the bridge's subscriptions (A: from its
#               configuration, B: the bridge client's SUBSCRIBE), so br/# passes through;
#   no plugin   each mqoff gets --exclusive --broker-only 'br/#' (the documented way without
#               the plugin: the bridged topics always go to the broker).
# Both brokers have max_inflight_messages 0: with a window (20 by default) Mosquitto sends QoS 0
# messages at once while QoS 1 ones wait for PUBACKs, so a subscriber slow to acknowledge gets
# the publisher's alternating QoS 0/1 messages out of order from the broker itself (seen through
# intercept mode, where the broker writes a local stream faster than the acknowledgements come
# back); the order compared here is the broker's own.
# Both through mqoff proxy and through mqoff intercept (LAB_TARGETS): each broker then runs with
# the shim and one more listener, on 198.18.0.3 (the port its clients use), which its mqoff in
# nic serves over a channel of its own; the bridge still joins the brokers' own listeners.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

MQOFFCTL=$LAB_ROOT/build/mqoffctl
PLUGIN=$LAB_ROOT/build/mqoff_mosquitto.so
PORT_B=1885
B_PID= MB_PID=

# broker_b_start PLUGIN(0|1): broker B on 198.18.0.2:1885 in the brk namespace (intercept: with
# the shim, and 198.18.0.3:1885 served by mqoff B).
broker_b_start() {
  local c=$LAB_TMP/broker-b.conf pre=()
  [ "$MODE" != intercept ] ||
    pre=(env LD_PRELOAD="$SHIM" MQOFF_CHANNEL="$LAB_TMP/chan-b")
  { echo "per_listener_settings false"
    echo "listener $PORT_B $BROKER_ADDR"
    [ "$MODE" != intercept ] || echo "listener $PORT_B $PROXY_ADDR"
    echo "user root"
    echo "allow_anonymous true"
    echo "persistence false"
    echo "max_inflight_messages 0"
    echo "set_tcp_nodelay true"
    echo "log_dest stderr"
    echo "log_type error"
    echo "log_type warning"
    echo "log_type notice"
    echo "log_type information"
    echo "connection_messages true"
    if [ "$1" = 1 ]; then
      echo "plugin $PLUGIN"
      echo "plugin_opt_control $LAB_TMP/ctl-b.sock"
      echo "plugin_opt_retry_ms 200"
    fi; } >"$c"
  chmod 644 "$c"
  ip netns exec "$NS_BRK" "${pre[@]}" mosquitto -c "$c" >"$LAB_TMP/broker-b.log" 2>&1 </dev/null &
  B_PID=$!
  wait_port "$NS_BRK" "$BROKER_ADDR" "$PORT_B" 10
}

stop_pid() { [ -z "$1" ] || { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }; }

# broker A's extra configuration: the bridge to B, and the plugin or not.
conf_a() {
  local c=$LAB_TMP/broker-a.$1.conf
  { echo "max_inflight_messages 0"
    if [ "$1" = 1 ]; then
      echo "plugin $PLUGIN"
      echo "plugin_opt_control $LAB_TMP/ctl-a.sock"
      echo "plugin_opt_retry_ms 200"
    fi
    echo "connection to-b"
    echo "address $BROKER_ADDR:$PORT_B"
    echo "topic br/# both 1"
    echo "restart_timeout 1"; } >"$c"
  chmod 644 "$c"
  echo "$c"
}

wait_bridge() {
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q 'New bridge connected' "$LAB_TMP/broker-b.log" && { ok "$1: the bridge connected"; return 0; }
    sleep 0.1
  done
  not_ok "$1: the bridge connected" "$(tail -3 "$LAB_TMP/broker-b.log" | tr '\n' ' ')"
  return 1
}

wait_synced() { # SOCKET
  local i
  for ((i = 0; i < 100; i++)); do
    "$MQOFFCTL" --control "$1" status --json 2>/dev/null |
      "$PY" -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["plugin"]["synced"] else 1)' \
      2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# mqoff_b ARGS...: mqoff B in nic on 198.18.0.3:1885 (proxy: to broker B; intercept: its channel).
mqoff_b() {
  local to=(--broker "$BROKER_ADDR:$PORT_B")
  [ "$MODE" != intercept ] || to=(--channel "$LAB_TMP/chan-b")
  echo "# mqoff B: $MODE --listen $PROXY_ADDR:$PORT_B ${to[*]} $*"
  ip netns exec "$NS_NIC" "$MQOFF" "$MODE" --listen "$PROXY_ADDR:$PORT_B" "${to[@]}" "$@" \
    >"$LAB_TMP/mqoff-b.$MODE.$tag.log" 2>&1 </dev/null &
  MB_PID=$!
}

phase() {
  local tag=$1 plugin=$2 margs=()
  shift 2
  margs=("$@")
  [ "$MODE" != intercept ] || mqoff_b --acl open --control "$LAB_TMP/ctl-b.sock" "${margs[@]}"
  broker_b_start "$plugin" || { not_ok "$tag: broker B starts [$MODE]" "$(tail -3 "$LAB_TMP/broker-b.log")"; return; }
  if [ "$MODE" = intercept ]; then
    BROKER_EXTRA=$(conf_a "$plugin") ICPT_SIDE=nic intercept_start --acl open \
      --control "$LAB_TMP/ctl-a.sock" "${margs[@]}" || return
    wait_bridge "$tag [$MODE]" || return
  else
    broker_start "$(conf_a "$plugin")" || return
    wait_bridge "$tag [$MODE]" || return
    proxy_start --acl open --control "$LAB_TMP/ctl-a.sock" "${margs[@]}" || return
    mqoff_b --acl open --control "$LAB_TMP/ctl-b.sock" "${margs[@]}"
  fi
  wait_port "$NS_CLI" "$PROXY_ADDR" "$PORT_B" 10 || { not_ok "$tag: mqoff B starts [$MODE]" "$(tail -3 "$LAB_TMP/mqoff-b.$MODE.$tag.log")"; return; }
  if [ "$plugin" = 1 ]; then
    if wait_synced "$LAB_TMP/ctl-a.sock" && wait_synced "$LAB_TMP/ctl-b.sock"; then
      ok "$tag: both mqoffs synced with their broker's plugin [$MODE]"
    else
      not_ok "$tag: both mqoffs synced with their broker's plugin [$MODE]" "not synced"
    fi
  fi
  run_py "$tag [$MODE]" 60 bridged.py bridged --host "$PROXY_ADDR" --target "$MODE" --tag "$tag" \
    --control-a "$LAB_TMP/ctl-a.sock" --control-b "$LAB_TMP/ctl-b.sock" --mqoffctl "$MQOFFCTL"
  stop_pid "$MB_PID"
  MB_PID=
  proxy_stop
  stop_pid "$B_PID"
  B_PID=
  "$LAB_TOOL" broker-stop >/dev/null 2>&1
}

lab_init
trap 'stop_pid "$MB_PID"; stop_pid "$B_PID"; _lab_exit' EXIT
if ! proxy_built || [ ! -f "$PLUGIN" ] || [ ! -x "$MQOFFCTL" ]; then
  not_ok "$LAB_NAME" "build/mqoff, build/mqoff_mosquitto.so or build/mqoffctl not built"
  lab_finish
fi
for MODE in $LAB_TARGETS; do
  [ "$MODE" = proxy ] || [ "$MODE" = intercept ] || continue
  if ! target_built "$MODE"; then skip "$LAB_NAME [$MODE]" "not built"; continue; fi
  phase plugin 1
  phase "no plugin" 0 --exclusive --broker-only 'br/#'
done
lab_finish
