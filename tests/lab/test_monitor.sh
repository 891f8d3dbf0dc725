#!/usr/bin/env bash
# Monitor mode beyond the shared cases:
#  - under loss, duplication and reordering in both directions (mqoff's own impairment stage,
#    as tc netem is not in this kernel): every subscriber gets every QoS 1 message exactly
#    once, in order, every connection survives, the broker sees none of the offloaded
#    PUBLISHes, and mqoff retransmitted;
#  - connections open before mqoff started are left untouched, and since their subscriptions
#    are unknown, nothing is offloaded while they live (their messages are not lost);
#  - traffic that is not the broker's crosses intact, without reaching the loop where the
#    device steers it (AF_XDP: the XDP program forwards it port to port).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

IMPAIR=${MONITOR_IMPAIR:-loss=2,dup=1,reorder=2,seed=11}

counter_min() { # NAME MIN CHECK
  local v
  v=$(proxy_counter "$1")
  if [ -n "$v" ] && [ "$v" -ge "$2" ]; then ok "$3 ($1=$v)"; else not_ok "$3" "$1=${v:-absent}, want >= $2"; fi
}

lossy() {
  local t=monitor
  target_up "$t" --acl open --exclusive --impair "$IMPAIR" || return
  fanout_py "$t" --subs 10 --msgs 200 --qos 1 --name "impaired ($IMPAIR): fan-out QoS 1 to 10"
  fanout_py "$t" --subs 10 --msgs 100 --qos 1 --protos 4,5 --payload 3000 \
    --name "impaired ($IMPAIR): QoS 1 3 kB payloads, v3.1.1 and v5"
  CASE_SECS=150 case_py "$t" offload --subs 5 --msgs 100 --expect-offload
  target_down "$t"
  grep -E "^(impair|  retransmits)" "$PROXY_LOG" | sed 's/^/# /'
  counter_min retransmits 1 "impaired: mqoff retransmitted what the wire lost"
  counter_min lost 1 "impaired: the impairment stage did lose frames"
}

preexisting() {
  local out=$LAB_TMP/pre.out sub_pid n
  broker_start "$BROKER_EXTRA" || return
  # through the kernel bridge, before mqoff exists
  ip netns exec "$NS_CLI" timeout 60 mosquitto_sub -h "$BROKER_ADDR" -t 'pre/#' -q 1 -C 3 \
    -i preexisting >"$out" 2>&1 &
  sub_pid=$!
  wait_port "$NS_CLI" "$BROKER_ADDR" "$MQTT_PORT" 5
  sleep 1
  MONITOR_STARTUP_HOLD=10 monitor_start --acl open --exclusive || { kill "$sub_pid" 2>/dev/null; return; }
  for n in 1 2 3; do
    ip netns exec "$NS_CLI" timeout 10 mosquitto_pub -h "$BROKER_ADDR" -t pre/x -m "pre$n" -q 1
  done
  if wait "$sub_pid"; then ok "an open connection kept working through mqoff"
  else not_ok "an open connection kept working through mqoff" "mosquitto_sub exited $?"
  fi
  if [ "$(cat "$out")" = "$(printf 'pre1\npre2\npre3')" ]; then
    ok "its subscriber got all 3 messages, in order"
  else
    not_ok "its subscriber got all 3 messages, in order" "got: $(tr '\n' ' ' <"$out")"
  fi
  bypass_start
  target_down monitor
  counter_min unseen_clients 3 "nothing offloaded while a connection mqoff did not see lived"
  bypass_check
}

# bypass_start: a TCP transfer (1 s) to another port of the broker's host, through mqoff.
# bypass_check (after mqoff stopped): it arrived whole; a port steered in the device (AF_XDP's
# program, DPDK's rte_flow) never showed its frames to the loop, an unsteered one did.
BYPASS_SENT=
bypass_start() {
  local sink=$LAB_TMP/sink.out sink_pid
  ip netns exec "$NS_BRK" timeout 20 "$PY" "$LAB_ROOT/bench/floor.py" tcp-sink "$BROKER_ADDR" 5001 15 \
    >"$sink" 2>&1 &
  sink_pid=$!
  sleep 0.3
  BYPASS_SENT=$(ip netns exec "$NS_CLI" timeout 15 "$PY" "$LAB_ROOT/bench/floor.py" tcp-send "$BROKER_ADDR" 5001 1)
  wait "$sink_pid"
}
bypass_check() {
  local got rx frames name="a transfer to another port of the broker's host crossed mqoff intact"
  got=$(cat "$LAB_TMP/sink.out")
  if [ -n "$BYPASS_SENT" ] && [ "$got" = "$BYPASS_SENT" ]; then ok "$name ($got bytes)"
  else not_ok "$name" "sent ${BYPASS_SENT:-nothing}, received $got"; return
  fi
  frames=$((got / 1448))
  rx=$(grep -oE '^port a [^:]*: rx [0-9]+ frames' "$PROXY_LOG" | grep -oE '[0-9]+ frames' | grep -oE '[0-9]+')
  if grep -qE '^port a .*steered in the device' "$PROXY_LOG"; then
    name="steered ($MONITOR_IO): the loop did not see the transfer (port a rx $rx frames, the transfer $frames)"
    if [ -n "$rx" ] && [ "$rx" -lt $((frames / 4)) ]; then ok "$name"; else not_ok "$name" "it did"; fi
  else
    name="not steered ($MONITOR_IO): the loop forwarded the transfer (port a rx $rx frames, the transfer $frames)"
    if [ -n "$rx" ] && [ "$rx" -ge "$frames" ]; then ok "$name"; else not_ok "$name" "it did not"; fi
  fi
}

lab_init
if ! proxy_built; then
  skip "monitor: impaired and pre-existing connections" "build/mqoff not built yet"
else
  LAB_NAME="$LAB_NAME (impaired)" lossy
  LAB_NAME="$LAB_NAME (pre-existing)" preexisting
fi
lab_finish
