#!/usr/bin/env bash
# IPv4 fragments through monitor mode. Real fragments come from mqoff-bridge's frag=SIZE
# impairment on both sides of mqoff monitor, chained inside the nic namespace over two veth
# pairs the test creates:
#
#   cli --- Pnc [mqoff-bridge, fragments a->b] F1 ==veth== F2 [mqoff monitor] F3 ==veth== F4
#           [mqoff-bridge, fragments b->a] Pnb --- brk
#
# Every frame with more than FRAG_SIZE bytes of IP payload reaches mqoff monitor as fragments,
# from the clients and from the broker, a few reordered (a later fragment may come before the
# one holding the TCP header). Checks, with the lab's paho clients and mosquitto_pub/_sub:
#  - offloaded messages (3-20 kB payloads, QoS 0 and 1, MQTT 3.1.1 and 5) reach every
#    subscriber complete, exactly once, in order: mqoff reassembled the fragmented segments of
#    the connections it splices;
#  - a broker-only topic: the broker's large deliveries reach spliced connections as fragments
#    (broker -> client), reassembled too;
#  - connections mqoff does not splice (the broker's second listener, port 1884) work: their
#    fragments pass untouched, the end hosts reassemble them;
#  - mqoff's counters: datagrams reassembled and handed to the splice, fragments passed
#    untouched, no conflict, timeout or TCP checksum refused; PUBLISHes consumed; both bridges
#    fragmented.
# Every process is stopped by its PID and the lab (namespaces, veths) removed on any exit.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BRIDGE=${MQOFF_BRIDGE:-$(dirname "$MQOFF")/mqoff-bridge}
FRAG_SIZE=${FRAG_SIZE:-600}
IMPAIR="frag=$FRAG_SIZE,reorder=3,seed=5"
PORT2=1884
BR_PIDS=()
# DPDK's net_af_packet reads with PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles IPv4
# before mqoff sees it (and a datagram over the device's frame size arrives truncated), so
# fragments reach a DPDK monitor only through net_af_xdp.
[ "$MONITOR_IO" != dpdk ] || DPDK_PMD=net_af_xdp

counter_min() { # NAME MIN CHECK
  local v
  v=$(proxy_counter "$1")
  if [ -n "$v" ] && [ "$v" -ge "$2" ]; then ok "$3 ($1=$v)"; else not_ok "$3" "$1=${v:-absent}, want >= $2"; fi
}
counter_is() { # NAME VALUE CHECK
  local v
  v=$(proxy_counter "$1")
  if [ "$v" = "$2" ]; then ok "$3 ($1=$v)"; else not_ok "$3" "$1=${v:-absent}, want $2"; fi
}

bridges_stop() {
  local p i
  for p in "${BR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${BR_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  BR_PIDS=()
}

# Stops what this test started (by PID), then the lab's own cleanup, keeping the exit status.
# shellcheck disable=SC2317 # the EXIT trap calls it
_frag_exit() {
  local rc=$?
  bridges_stop >/dev/null 2>&1
  (exit "$rc")
  _lab_exit
}

# The chain: the kernel bridge lets go of Pnc and Pnb, two mqoff-bridges and mqoff monitor
# forward between them over two new veth pairs.
chain_up() {
  local pnc=${MQO_LAB}nc pnb=${MQO_LAB}nb f1=${MQO_LAB}f1 f2=${MQO_LAB}f2 f3=${MQO_LAB}f3 \
    f4=${MQO_LAB}f4 i
  ip -n "$NS_NIC" link set "$pnc" nomaster || return 1
  ip -n "$NS_NIC" link set "$pnb" nomaster || return 1
  ip -n "$NS_NIC" link add "$f1" type veth peer name "$f2" || return 1
  ip -n "$NS_NIC" link add "$f3" type veth peer name "$f4" || return 1
  for i in "$f1" "$f2" "$f3" "$f4"; do ip -n "$NS_NIC" link set "$i" up || return 1; done
  echo "# $pnc [mqoff-bridge --impair-a2b $IMPAIR] $f1 == $f2 [mqoff monitor] $f3 == $f4" \
    "[mqoff-bridge --impair-b2a $IMPAIR] $pnb"
  # ip netns exec execs the program in place: $! is its own PID.
  ip netns exec "$NS_NIC" "$BRIDGE" --port-a "$pnc" --port-b "$f1" --impair-a2b "$IMPAIR" \
    >"$LAB_TMP/bridge-cli.log" 2>&1 </dev/null &
  BR_PIDS+=($!)
  ip netns exec "$NS_NIC" "$BRIDGE" --port-a "$f4" --port-b "$pnb" --impair-b2a "$IMPAIR" \
    >"$LAB_TMP/bridge-brk.log" 2>&1 </dev/null &
  BR_PIDS+=($!)
  PROXY_N=$((PROXY_N + 1))
  PROXY_LOG=$LAB_TMP/monitor.log
  PORTS_BEFORE=$(ports_state "$NS_NIC" "$f2" "$f3")
  io_args "$f2" "$f3" || return 1
  echo "# mqoff monitor ${IO_ARGS[*]}"
  ip netns exec "$NS_NIC" "$MQOFF" monitor "${IO_ARGS[@]}" \
    --broker "$BROKER_ADDR:$MQTT_PORT" --acl open --exclusive --startup-hold 0 --broker-only 'bo/#' \
    >"$PROXY_LOG" 2>&1 </dev/null &
  PROXY_PID=$!
  if ! wait_port "$NS_CLI" "$BROKER_ADDR" "$MQTT_PORT" 10 ||
    ! wait_port "$NS_CLI" "$BROKER_ADDR" "$PORT2" 5 || ! proxy_alive; then
    not_ok "frag: the chain forwards" "broker not reachable; monitor log: $(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
    return 1
  fi
  ok "frag: the broker is reachable through bridge, monitor, bridge (ports $MQTT_PORT and $PORT2)"
}

# mosquitto_sub and mosquitto_pub: 3 messages of about 20 kB (15 segments, 40-odd fragments
# each way) on PORT; the subscriber gets them whole, once, in order.
mosquitto_case() {
  local port=$1 what=$2 n out=$LAB_TMP/sub.$1.out want=$LAB_TMP/want.$1 sub_pid
  : >"$want"
  for n in 1 2 3; do
    { printf 'm%s-%s-' "$port" "$n"; head -c 15000 /dev/urandom | base64 -w0; } >"$LAB_TMP/pl.$port.$n"
    { cat "$LAB_TMP/pl.$port.$n"; echo; } >>"$want"
  done
  ip netns exec "$NS_CLI" timeout 30 mosquitto_sub -h "$BROKER_ADDR" -p "$port" -t "ms$port/#" \
    -q 1 -C 3 -W 25 -i "fragsub$port" >"$out" 2>&1 &
  sub_pid=$!
  sleep 1
  for n in 1 2 3; do
    ip netns exec "$NS_CLI" timeout 10 mosquitto_pub -h "$BROKER_ADDR" -p "$port" -t "ms$port/x" \
      -q 1 -i "fragpub$port" -f "$LAB_TMP/pl.$port.$n" ||
      not_ok "frag: mosquitto_pub $n ($what)" "exit status $?"
  done
  if wait "$sub_pid" && cmp -s "$out" "$want"; then
    ok "frag: mosquitto_sub got 3 messages of 20 kB whole, once, in order ($what)"
  else
    not_ok "frag: mosquitto_sub got 3 messages of 20 kB whole, once, in order ($what)" \
      "got $(wc -c <"$out") bytes, want $(wc -c <"$want"): $(head -c 120 "$out" | tr '\n' ' ')"
  fi
}

run() {
  local t=monitor extra=$LAB_TMP/broker-extra.conf
  echo "listener $PORT2 $BROKER_ADDR" >"$extra"
  broker_start "$extra" || return
  chain_up || return
  fanout_py "$t" --subs 5 --msgs 100 --qos 1 --payload 3000 \
    --name "fragmented: offloaded QoS 1, 3 kB payloads"
  fanout_py "$t" --subs 5 --msgs 100 --qos 0 --payload 5000 --protos 4,5 \
    --name "fragmented: offloaded QoS 0, 5 kB payloads, v3.1.1 and v5"
  fanout_py "$t" --subs 3 --msgs 50 --qos 1 --payload 4000 --topic bo/t --filter 'bo/#' \
    --name "fragmented both ways: broker-only topic, QoS 1, 4 kB payloads"
  fanout_py "$t" --port "$PORT2" --subs 3 --msgs 50 --qos 1 --payload 4000 \
    --name "fragmented, not spliced (port $PORT2): QoS 1, 4 kB payloads"
  mosquitto_case "$MQTT_PORT" "spliced"
  mosquitto_case "$PORT2" "not spliced"

  if proxy_alive; then ok "frag: mqoff monitor still running at the end"
  else not_ok "frag: mqoff monitor still running at the end" "it exited: $(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
  proxy_stop
  ports_restored "frag: mqoff monitor ($MONITOR_IO) left its ports as they were" "$PORTS_BEFORE" \
    "$NS_NIC" "${MQO_LAB}f2" "${MQO_LAB}f3"
  bridges_stop
  sed -n '/summary/,$p' "$PROXY_LOG" | grep -E "^(impair|  (tcp|fragment|consumed)| +passthrough)" |
    sed 's/^/# monitor: /'
  grep -h "^impair" "$LAB_TMP"/bridge-*.log | sed 's/^/# bridge: /'
  if [ "$PROXY_RC" != 137 ] && grep -q published_in "$PROXY_LOG"; then
    ok "frag: mqoff monitor stops on SIGTERM with its counter summary"
  else
    not_ok "frag: mqoff monitor stops on SIGTERM with its counter summary" "exit status $PROXY_RC"
  fi
  counter_min to_splice 200 "frag: fragmented segments of spliced connections reassembled for the splice"
  counter_min passed_untouched 50 "frag: fragments of connections not spliced passed untouched"
  counter_min waited_for_header 1 "frag: fragments that came before their TCP header waited for it"
  counter_min consumed 100 "frag: PUBLISHes offloaded"
  counter_is checksums 0 "frag: every reassembled segment had a valid TCP checksum"
  counter_is conflicts 0 "frag: no conflicting fragments"
  counter_is frag_timeouts 0 "frag: no datagram timed out"
  counter_is declined 0 "frag: the splice took every reassembled segment"
  local b n
  for b in cli brk; do
    n=$(grep -oE 'datagrams fragmented [0-9]+' "$LAB_TMP/bridge-$b.log" | grep -oE '[0-9]+$' | awk '{s+=$1} END {print s+0}')
    if [ "$n" -ge 100 ]; then ok "frag: the bridge on the $b side fragmented $n datagrams"
    else not_ok "frag: the bridge on the $b side fragmented datagrams" "$n"
    fi
  done
}

lab_init
trap _frag_exit EXIT
if ! proxy_built || [ ! -x "$BRIDGE" ]; then
  skip "frag: IPv4 fragments through monitor mode" "$MQOFF or $BRIDGE not built yet"
else
  run
fi
lab_finish
