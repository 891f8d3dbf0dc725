#!/usr/bin/env bash
# The broker plugin (build/mqoff_mosquitto.so) tells mqoff about every client of the broker.
#
# The broker loads the plugin (plugin_opt_control: mqoff's --control socket) and has a second
# listener on port 1884 that mqoff does not carry. mqoff runs WITHOUT --exclusive (and monitor
# mode with its default 90 s startup hold): only the plugin's view lets it offload.
#   second listener   a subscriber on port 1884 gets every matching message in order (they
#                     pass through) while the rest is offloaded; after it unsubscribes, it gets
#                     nothing more and those messages are offloaded; mqoffctl subs shows the
#                     broker's filter, --json parses (proxy and monitor)
#   late start        mqoff started after the broker, with a foreign subscriber connected and a
#                     persistent session offline: it offloads at once, the foreign subscriber
#                     and the persistent session (back through mqoff) get theirs (proxy,
#                     monitor; intercept: the broker's bind() waits for mqoff, so the late
#                     mqoff is a restarted one, the two clients on the broker's port 1884)
#   restarts          proxy and intercept: a round of checks (a foreign persistent subscriber on 1884, a
#                     carried one) after mqoff restarts, after the broker restarts (its
#                     persistence file holds the foreign session: mqoff passes what is published
#                     while it is offline, and the session gets it back), and after the plugin's
#                     queue overflowed while mqoff was stopped (it resyncs)
#   acl_file          proxy and intercept: the broker also has an acl_file (mqoff --acl-file): the plugin
#                     defers to it, and its reload reports replace mqoff's SIGHUP (a changed
#                     file, then one that does not parse, reloaded by the broker alone)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

MQOFFCTL=$LAB_ROOT/build/mqoffctl
PLUGIN=$LAB_ROOT/build/mqoff_mosquitto.so
CTL= CONF_BASIC= CONF_PERSIST=

write_confs() {
  CTL=$LAB_TMP/ctl.sock
  CONF_BASIC=$LAB_TMP/plugin.conf CONF_PERSIST=$LAB_TMP/plugin-persist.conf
  cat >"$CONF_BASIC" <<CONF
plugin $PLUGIN
plugin_opt_control $CTL
plugin_opt_retry_ms 200
listener 1884 $BROKER_ADDR
CONF
  mkdir -p "$LAB_TMP/db"
  { cat "$CONF_BASIC"
    echo "plugin_opt_queue_max 4096"
    echo "persistence true"
    echo "persistence_location $LAB_TMP/db/"
    echo "autosave_interval 0"; } >"$CONF_PERSIST"
  chmod 644 "$CONF_BASIC" "$CONF_PERSIST"
}

# plugin_field EXPR: a field of `mqoffctl status --json` (python expression on d).
plugin_field() {
  "$MQOFFCTL" --control "$CTL" status --json 2>/dev/null |
    "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null
}

# wait_synced NAME MIN_SYNCS: ok once mqoff's view of the broker is synced (at least MIN_SYNCS
# times since it started), within 10 s.
wait_synced() {
  local i s
  for ((i = 0; i < 100; i++)); do
    s=$(plugin_field 'd["plugin"]["synced"] and d["plugin"]["syncs"]')
    if [ -n "$s" ] && [ "$s" != False ] && [ "$s" -ge "$2" ]; then
      ok "$1: mqoff synced with the broker plugin [$T]"
      return 0
    fi
    sleep 0.1
  done
  not_ok "$1: mqoff synced with the broker plugin [$T]" "status: $(plugin_field 'd["plugin"]')"
  return 1
}

plugin_py() {
  local name=$1
  shift
  run_py "$name [$T]" 60 plugin.py "$@" --host "$(target_addr "$T")" --target "$T" \
    --control "$CTL" --mqoffctl "$MQOFFCTL"
}

T=
second_listener() {
  T=$1
  is_offload "$T" || return 0
  MONITOR_STARTUP_HOLD=90 BROKER_EXTRA=$CONF_BASIC target_up "$T" --acl open --control "$CTL" ||
    return 0
  wait_synced "second listener" 1 && plugin_py "second listener" second_listener
}

# mqoff_again: mqoff T (proxy or intercept) stopped and started again on the running broker.
mqoff_again() {
  proxy_stop
  if [ "$T" = proxy ]; then
    proxy_start --acl open --control "$CTL"
  else
    intercept_mqoff --acl open --control "$CTL"
    intercept_attached 1 10 || { not_ok "mqoff intercept again: the broker attaches [$T]" "$(tail -2 "$PROXY_LOG" | tr '\n' ' ')"; return 1; }
  fi
}

# broker_again CONF: a new broker (for intercept: with the shim, attached to the running mqoff).
broker_again() {
  if [ "$T" = proxy ]; then
    broker_start "$1"
  else
    intercept_broker "$1" || return 1
    intercept_attached 2 10 || { not_ok "new broker: attaches [$T]" "$(tail -2 "$PROXY_LOG" | tr '\n' ' ')"; return 1; }
  fi
}

late_start() {
  T=$1
  is_offload "$T" || return 0
  local port=1883
  if [ "$T" = intercept ]; then
    BROKER_EXTRA=$CONF_BASIC target_up intercept --acl open --control "$CTL" || return 0
    proxy_stop
    port=1884
  else
    broker_start "$CONF_BASIC" || return 0
  fi
  plugin_py "late start: before mqoff" prepare --port "$port"
  # a subscriber connected before mqoff: unseen by it (monitor: its SYN passed before)
  ip netns exec "$NS_CLI" timeout 30 mosquitto_sub -h "$BROKER_ADDR" -p "$port" -t 'late/f/#' \
    -q 1 -C 10 -i late-foreign >"$LAB_TMP/late_f.out" 2>&1 </dev/null &
  local fpid=$! i
  for ((i = 0; i < 50; i++)); do
    grep -q 'late-foreign' "$BROKER_LOG" && break
    sleep 0.1
  done
  if [ "$T" = monitor ]; then
    MONITOR_STARTUP_HOLD=90 monitor_start --acl open --control "$CTL" || return 0
  else
    mqoff_again || return 0
  fi
  wait_synced "late start" 1 && plugin_py "late start" late
  wait "$fpid" 2>/dev/null
  local want got
  want=$(printf 'f%d\n' 0 1 2 3 4 5 6 7 8 9)
  got=$(cat "$LAB_TMP/late_f.out")
  if [ "$got" = "$want" ]; then ok "late start: the subscriber connected before mqoff got its 10, in order [$T]"
  else not_ok "late start: the subscriber connected before mqoff got its 10, in order [$T]" "got: $(echo "$got" | tr '\n' ' ')"
  fi
}

restarts() {
  T=$1
  BROKER_EXTRA=$CONF_PERSIST target_up "$T" --acl open --control "$CTL" || return 0
  wait_synced "restarts" 1 || return 0
  plugin_py "restarts: first round" round --tag first

  mqoff_again || return 0
  wait_synced "mqoff restarted" 1 && plugin_py "mqoff restarted" round --tag mqoff-restart

  broker_again "$CONF_PERSIST" || return 0
  if grep -q 'mqoff plugin: reporting.*persistence read: [1-9]' "$BROKER_LOG"; then
    ok "broker restarted: the plugin read the sessions of its persistence file [$T]"
  else
    not_ok "broker restarted: the plugin read the sessions of its persistence file [$T]" \
      "$(grep 'mqoff plugin' "$BROKER_LOG" | head -2 | tr '\n' ' ')"
  fi
  wait_synced "broker restarted" 2 &&
    plugin_py "broker restarted: offline session" offline_publish --count 10 &&
    plugin_py "broker restarted" round --tag broker-restart --expect-queued 10

  # the plugin's queue (4096 bytes) overflows while mqoff is stopped
  local syncs fpid i
  syncs=$(plugin_field 'd["plugin"]["syncs"]')
  kill -STOP "$PROXY_PID"
  ip netns exec "$NS_CLI" "$PY" "$LAB_DIR/plugin.py" flood --host "$BROKER_ADDR" --target "$T" \
    --control "$CTL" --mqoffctl "$MQOFFCTL" --count 3000 --hold 25 >"$LAB_TMP/flood.out" 2>&1 &
  fpid=$!
  for ((i = 0; i < 200; i++)); do
    grep -q 'flood subscriber connected' "$LAB_TMP/flood.out" && break
    sleep 0.1
  done
  kill -CONT "$PROXY_PID"
  if grep -q 'ok - flood: 3000 filters' "$LAB_TMP/flood.out" &&
     grep -q 'mqoff plugin: connection to .* closed: over 4096 bytes' "$BROKER_LOG"; then
    ok "overflow: the plugin dropped its queue and closed the connection [$T]"
  else
    not_ok "overflow: the plugin dropped its queue and closed the connection [$T]" \
      "$(tail -2 "$LAB_TMP/flood.out" | tr '\n' ' ') $(grep 'mqoff plugin' "$BROKER_LOG" | tail -1)"
  fi
  wait_synced "overflow: resynced" $((syncs + 1)) &&
    plugin_py "overflow: resynced" flood_check --count 3000 &&
    plugin_py "overflow: resynced" round --tag after-overflow
  kill -TERM "$fpid" 2>/dev/null
  wait "$fpid" 2>/dev/null
}

acl_file() {
  T=$1
  local acl=$LAB_TMP/etc/acl conf=$LAB_TMP/plugin-acl.conf
  # in a directory of its own, as /etc/mosquitto: mqoff watches it
  mkdir -p "$LAB_TMP/etc" && chmod 755 "$LAB_TMP/etc"
  printf 'topic readwrite ac/a/#\ntopic readwrite ac/b/#\n' >"$acl"
  { cat "$CONF_BASIC"; echo "acl_file $acl"; } >"$conf"
  chmod 644 "$acl" "$conf"
  BROKER_EXTRA=$conf target_up "$T" --acl-file "$acl" --control "$CTL" || return 0
  wait_synced "acl_file" 1 &&
    plugin_py "acl_file" acl_reload --acl "$acl" \
      --broker-pid "$(cat "/run/mqoff-lab/$MQO_LAB/broker.pid")"
}

lab_init
if [ ! -f "$PLUGIN" ] || [ ! -x "$MQOFFCTL" ]; then
  not_ok "$LAB_NAME" "build/mqoff_mosquitto.so or build/mqoffctl not built"
  lab_finish
fi
write_confs
# PLUGIN_CASES="acl_file" runs only those (second_listener late_start restarts acl_file)
want() { case " ${PLUGIN_CASES:-second_listener late_start restarts acl_file} " in *" $1 "*) return 0 ;; esac; return 1; }
want second_listener && for_targets second_listener
want late_start && LAB_NAME="$LAB_NAME (late start)" for_targets late_start
# restarts and acl_file: the targets with their own listener (monitor has its own tests of both)
# shellcheck disable=SC2034
LAB_TARGETS=$(for t in $LAB_TARGETS; do [ "$t" = proxy ] || [ "$t" = intercept ] && echo "$t"; done)
want restarts && LAB_NAME="$LAB_NAME (restarts)" for_targets restarts
want acl_file && LAB_NAME="$LAB_NAME (acl_file)" for_targets acl_file
lab_finish
