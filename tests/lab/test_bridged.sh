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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

MQOFFCTL=$LAB_ROOT/build/mqoffctl
PLUGIN=$LAB_ROOT/build/mqoff_mosquitto.so
PORT_B=1885
B_PID= MB_PID=

# broker_b_start PLUGIN(0|1): broker B on 198.18.0.2:1885 in the brk namespace.
broker_b_start() {
  local c=$LAB_TMP/broker-b.conf
  { echo "per_listener_settings false"
    echo "listener $PORT_B $BROKER_ADDR"
    echo "user root"
    echo "allow_anonymous true"
    echo "persistence false"
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
  ip netns exec "$NS_BRK" mosquitto -c "$c" >"$LAB_TMP/broker-b.log" 2>&1 </dev/null &
  B_PID=$!
  wait_port "$NS_BRK" "$BROKER_ADDR" "$PORT_B" 10
}

stop_pid() { [ -z "$1" ] || { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }; }

# broker A's extra configuration: the bridge to B, and the plugin or not.
conf_a() {
  local c=$LAB_TMP/broker-a.$1.conf
  { if [ "$1" = 1 ]; then
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

phase() {
  local tag=$1 plugin=$2 margs=()
  shift 2
  margs=("$@")
  broker_b_start "$plugin" || { not_ok "$tag: broker B starts" "$(tail -3 "$LAB_TMP/broker-b.log")"; return; }
  broker_start "$(conf_a "$plugin")" || return
  wait_bridge "$tag" || return
  proxy_start --acl open --control "$LAB_TMP/ctl-a.sock" "${margs[@]}" || return
  echo "# mqoff B: --listen $PROXY_ADDR:$PORT_B --broker $BROKER_ADDR:$PORT_B ${margs[*]}"
  ip netns exec "$NS_NIC" "$MQOFF" proxy --listen "$PROXY_ADDR:$PORT_B" --broker "$BROKER_ADDR:$PORT_B" \
    --acl open --control "$LAB_TMP/ctl-b.sock" "${margs[@]}" >"$LAB_TMP/mqoff-b.$tag.log" 2>&1 </dev/null &
  MB_PID=$!
  wait_port "$NS_CLI" "$PROXY_ADDR" "$PORT_B" 10 || { not_ok "$tag: mqoff B starts" "$(tail -3 "$LAB_TMP/mqoff-b.$tag.log")"; return; }
  if [ "$plugin" = 1 ]; then
    if wait_synced "$LAB_TMP/ctl-a.sock" && wait_synced "$LAB_TMP/ctl-b.sock"; then
      ok "$tag: both mqoffs synced with their broker's plugin"
    else
      not_ok "$tag: both mqoffs synced with their broker's plugin" "not synced"
    fi
  fi
  run_py "$tag" 60 bridged.py bridged --host "$PROXY_ADDR" --target proxy --tag "$tag" \
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
phase plugin 1
phase "no plugin" 0 --exclusive --broker-only 'br/#'
lab_finish
