#!/usr/bin/env bash
# Protocol versions and sessions: MQTT 3.1, 3.1.1 and 5 clients mixed; a v5 publisher using
# topic aliases; QoS 1 subscribers that get offloaded and broker-originated QoS 1 messages on
# one connection; a publish-only client far past its keep-alive (KEEPALIVE_SECS of publishing,
# default 20; anything above the broker's 7.5 s timeout of a 5 s keep-alive means something).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

run() {
  local t=$1 expect=()
  is_offload "$t" && expect=(--expect-offload)
  target_up "$t" --acl open --exclusive || return
  fanout_py "$t" --subs 30 --pubs 3 --msgs 50 --qos 0 --protos 3,4,5
  fanout_py "$t" --subs 30 --pubs 3 --msgs 50 --qos 1 --protos 3,4,5
  fanout_py "$t" --subs 10 --pubs 2 --msgs 50 --qos 1 --protos 5,4
  case_py "$t" topic_alias
  case_py "$t" qos1_mixed --msgs 200
  CASE_SECS=90 case_py "$t" keepalive --seconds "${KEEPALIVE_SECS:-20}" "${expect[@]}"
  broker_log_lacks "keepalive: the broker timed out no client [$t]" "exceeded timeout"
  check "keepalive: broker still running [$t]" broker_alive
  if is_offload "$t"; then
    target_down "$t"
    # The publishers' PUBLISHes were all consumed: only mqoff's own PINGREQs kept them alive.
    local n
    n=$(proxy_counter pings_synth)
    if [ -n "$n" ] && [ "$n" -gt 0 ]; then ok "keepalive: mqoff sent PINGREQs for the publish-only clients [$t]"
    else not_ok "keepalive: mqoff sent PINGREQs for the publish-only clients [$t]" "pings_synth=${n:-absent}"
    fi
  fi
}

lab_init
for_targets run
lab_finish
