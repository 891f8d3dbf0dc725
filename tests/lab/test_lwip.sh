#!/usr/bin/env bash
# mqoff proxy --stack lwip: mqoff is the TCP endpoint itself (lwIP over AF_PACKET frames of an
# interface with no kernel address), owning 198.18.0.4 in the nic namespace.
#  - the proxy-mode cases (cases.py, fanout.py) through it, with the lab's impairment stage
#    (mqoff-bridge: loss, duplication, reordering) between the clients and mqoff;
#  - faults: ARP for another address and frames for another address reach nobody; a SYN flood
#    stays within --syn-backlog and an established connection keeps working; --max-conns
#    refuses the excess with a log line; RST and FIN in every state leave mqoff serving; with
#    its memory exhausted mqoff refuses new connections with a log line and the existing ones
#    keep working.
#  - one fan-out over each of the other packet I/O backends (afxdp, dpdk), and intercept mode
#    with --stack lwip (the clients' side on lwIP, the broker's over the channel).
# LWIP_IO=afxdp|dpdk runs all of it over those backends; LWIP_TEST_IMPAIR sets the impairment;
# LWIP_PARTS="faults memory" runs only those parts.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

IMPAIR=${LWIP_TEST_IMPAIR:-loss=2,dup=1,reorder=2,seed=11}
# mqoff checks its buckets of lwIP PCBs after every change (aborts with a message if broken)
export MQOFF_LWIP_CHECK=${MQOFF_LWIP_CHECK:-1}

counter_min() { # NAME MIN CHECK
  local v
  v=$(grep -oE "$1 [0-9]+" "$PROXY_LOG" | tail -1 | grep -oE '[0-9]+$')
  if [ -n "$v" ] && [ "$v" -ge "$2" ]; then ok "$3 ($1 $v)"; else not_ok "$3" "$1=${v:-absent}, want >= $2"; fi
}

cases() {
  local t=lwip
  LWIP_IMPAIR=$IMPAIR target_up "$t" --acl open --exclusive || return
  CASE_SECS=120 case_py "$t" offload --subs 5 --msgs 100 --expect-offload
  fanout_py "$t" --subs 20 --pubs 2 --msgs 50 --qos 1 --protos 3,4,5 \
    --name "impaired ($IMPAIR): fan-out QoS 1, v3.1, v3.1.1, v5"
  fanout_py "$t" --subs 5 --msgs 50 --qos 1 --payload 3000 --name "impaired: 3 kB payloads"
  case_py "$t" topic_alias
  case_py "$t" qos1_mixed --msgs 100
  case_py "$t" packed
  case_py "$t" bytewise
  case_py "$t" malformed --lossy # the impairment can lose the reset that drops a client
  target_down "$t"
}

faults() {
  local t=lwip mac cli_if=${MQO_LAB}c
  target_up "$t" --acl open --exclusive --max-conns 8 --syn-backlog 40 || return
  mac=$(ip -n "$NS_NIC" -br link show "${MQO_LAB}lb" | awk '{print $3}')
  # ARP for another address: the cli kernel asks for 198.18.0.5; mqoff must not answer
  if ip netns exec "$NS_CLI" timeout 4 bash -c "exec 3<>/dev/tcp/198.18.0.5/$MQTT_PORT" 2>/dev/null; then
    not_ok "ARP for another address is not answered" "198.18.0.5 answered"
  else ok "ARP for another address is not answered"
  fi
  # IPv4 to another address, sent to mqoff's MAC: nobody answers, mqoff drops it
  ip -n "$NS_CLI" neigh replace 198.18.0.6 lladdr "$mac" dev "$cli_if"
  if ip netns exec "$NS_CLI" timeout 3 bash -c "exec 3<>/dev/tcp/198.18.0.6/$MQTT_PORT" 2>/dev/null; then
    not_ok "TCP to another address at mqoff's MAC reaches nobody" "198.18.0.6 connected"
  else ok "TCP to another address at mqoff's MAC reaches nobody"
  fi
  ip -n "$NS_CLI" neigh del 198.18.0.6 dev "$cli_if" 2>/dev/null
  run_py "lwip faults: fragments" 30 lwip_faults.py fragments --host "$LWIP_ADDR" \
    --iface "$cli_if" --mac "$mac"
  run_py "lwip faults: states" 60 lwip_faults.py states --host "$LWIP_ADDR"
  run_py "lwip faults: maxconns" 60 lwip_faults.py maxconns --host "$LWIP_ADDR" --limit 8
  run_py "lwip faults: synflood" 60 lwip_faults.py synflood --host "$LWIP_ADDR" \
    --iface "$cli_if" --mac "$mac" --count 400
  check "SYN flood: mqoff still running" proxy_alive
  target_down "$t"
  counter_min ignored_addr 2 "ARP and IPv4 for other addresses were dropped and counted"
  counter_min syn_dropped 300 "SYN flood: SYNs beyond --syn-backlog 40 were dropped"
  counter_min refused_limit 3 "--max-conns: the excess connections were refused"
  if grep -q "connection limit (--max-conns) reached: refused" "$PROXY_LOG"; then
    ok "--max-conns: a log line says connections were refused"
  else not_ok "--max-conns: a log line says connections were refused" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
}

# Memory exhaustion, for real: mqoff's address space is capped (prlimit) a little above what
# it uses, then connections come until allocations fail.
memory() {
  local t=lwip vm
  target_up "$t" --acl open --exclusive || return
  vm=$(awk '/VmSize/ {print $2}' "/proc/$PROXY_PID/status")
  prlimit --pid "$PROXY_PID" --as=$(((vm + 4096) * 1024)) || { not_ok "memory: prlimit" "failed"; return; }
  run_py "lwip faults: memflood" 90 lwip_faults.py memflood --host "$LWIP_ADDR" --count 6000
  target_down "$t"
  if grep -q "lwIP out of memory: refused" "$PROXY_LOG"; then
    ok "memory exhaustion: a log line says new connections were refused"
  else not_ok "memory exhaustion: a log line says new connections were refused" "$(grep -E 'warn|err' "$PROXY_LOG" | tail -3 | tr '\n' ' ')"
  fi
}

# The other packet I/O backends, one fan-out each (the cases above run on AF_PACKET).
backends() {
  local io
  for io in afxdp dpdk; do
    [ "$io" != "$LWIP_IO" ] || continue
    if ! "$MQOFF" monitor --help 2>&1 | grep -q "$io"; then skip "--io $io" "not in this build"; continue; fi
    LWIP_IO=$io target_up lwip --acl open --exclusive || continue
    fanout_py lwip --subs 10 --msgs 50 --qos 1 --name "--io $io: fan-out QoS 1 to 10"
    target_down lwip
  done
}

# intercept mode with --stack lwip: the clients' side on lwIP (198.18.0.4 in the nic namespace),
# the broker side handed to the broker (with the shim, in brk) over the channel.
intercept_lwip() {
  local conf=$LAB_TMP/icpt-lwip.conf
  echo "listener $MQTT_PORT $LWIP_ADDR" >"$conf"
  intercept_broker "$conf" || return
  lwip_links || return
  ICPT_NS=$NS_NIC ICPT_ADDR=$LWIP_ADDR intercept_mqoff --stack lwip "${LWIP_IF_ARGS[@]}" --acl open --exclusive
  if ! intercept_attached 1 10 || ! wait_port "$NS_CLI" "$LWIP_ADDR" "$MQTT_PORT" 10; then
    not_ok "intercept --stack lwip: the broker attaches, clients reach it" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
    proxy_stop
    lwip_restore
    return
  fi
  fanout_py lwip --subs 10 --msgs 50 --qos 1 --name "intercept --stack lwip: fan-out QoS 1 to 10"
  case_py lwip offload --subs 3 --msgs 50 --expect-offload
  target_down lwip
}

lab_init
if ! target_built lwip; then
  skip "$LAB_NAME" "build/mqoff not built yet"
  lab_finish
fi
for part in ${LWIP_PARTS:-cases faults memory backends intercept_lwip}; do
  echo "# --- $LAB_NAME: $part (io $LWIP_IO)"
  "$part"
done
lab_finish
