#!/usr/bin/env bash
# Fan-out through the broker (direct) and through mqoff proxy: QoS 0 and 1 to 1, 10 and 200
# subscribers, several publishers, wildcard filters, $SYS not matched by '#'. Monitor mode sends
# the large payloads' segments from the fan-out's one shared copy (--shared-payload-min).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

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
  fi
}

lab_init
for_targets run
lab_finish
