#!/usr/bin/env bash
# Fan-out through the broker (direct) and through mqoff proxy: QoS 0 and 1 to 1, 10 and 200
# subscribers, several publishers, wildcard filters, $SYS not matched by '#'. Monitor mode sends
# the large payloads' segments from the fan-out's one shared copy (--shared-payload-min), and
# where its port segments TCP and sums checksums (DPDK_PMD=net_tap), leaves that to the port.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# port_a_did CAPABILITY COUNTER NAME: when mqoff's port a says it has CAPABILITY, its COUNTER
# (closing summary) is above 0.
port_a_did() {
  local v
  grep -E '^port a ' "$PROXY_LOG" | grep -v ': rx ' | grep -qE "$1(,|\$)" || return 0
  v=$(grep -E '^port a .*: rx ' "$PROXY_LOG" | grep -oE "$2 [0-9]+" | grep -oE '[0-9]+$')
  if [ "${v:-0}" -gt 0 ]; then ok "monitor ($MONITOR_IO $DPDK_PMD): $3 ($2 $v)"
  else not_ok "monitor ($MONITOR_IO $DPDK_PMD): $3" "$2 ${v:-absent}"
  fi
}

run() {
  local t=$1
  local share=()
  # monitor mode: large payloads from the shared copy, on every backend (DPDK's software
  # devices only when asked)
  [ "$t" = monitor ] && share=(--shared-payload-min 1024)
  target_up "$t" --acl open --exclusive "${share[@]}" || return
  fanout_py "$t" --subs 1 --msgs 200 --qos 0
  fanout_py "$t" --subs 1 --msgs 200 --qos 1
  fanout_py "$t" --subs 10 --msgs 200 --qos 0
  fanout_py "$t" --subs 10 --msgs 200 --qos 1
  fanout_py "$t" --subs 200 --msgs 50 --qos 0
  fanout_py "$t" --subs 200 --msgs 50 --qos 1
  # QoS 1 published, QoS 0 granted: delivered at QoS 0.
  fanout_py "$t" --subs 10 --msgs 100 --qos 1 --sub-qos 0
  # Larger payloads (several TCP segments per message).
  fanout_py "$t" --subs 10 --msgs 50 --qos 1 --payload 20000
  case_py "$t" wildcards
  case_py "$t" sys_hash
  if [ "$t" = monitor ]; then
    target_down "$t"
    local v
    v=$(proxy_counter shared_segments)
    if [ "${v:-0}" -ge 100 ]; then ok "monitor: 20 kB payloads sent from the shared copy (shared_segments=$v)"
    else not_ok "monitor: 20 kB payloads sent from the shared copy" "shared_segments=${v:-absent}"
    fi
    # where the device segments TCP and completes checksums (DPDK's net_tap), it did that work
    port_a_did ', TSO' 'TSO frames' "the device cut the large deliveries into segments (TSO)"
    port_a_did ', TX checksum offload' 'checksums offloaded' "the device completed the deliveries' TCP checksums"
  fi
}

lab_init
for_targets run
lab_finish
