#!/usr/bin/env bash
# Which PUBLISHes reach the broker. The broker's own $SYS counters (read straight from the
# broker) must show: direct, every PUBLISH; through mqoff with an authorization source, none
# of the offloaded QoS 0/1 ones but every retained and QoS 2 one (passthrough); through mqoff
# without an authorization source, every PUBLISH (and everything still works).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# counter_at_least NAME MIN: mqoff's closing summary has NAME >= MIN (no check when absent).
counter_at_least() {
  local v
  v=$(proxy_counter "$1")
  if [ -z "$v" ]; then echo "# counter $1 not in mqoff's summary"; return; fi
  if [ "$v" -ge "$2" ]; then ok "$3 [$t]"; else not_ok "$3 [$t]" "$1=$v, want >= $2"; fi
}

run() {
  local t=$1 expect=()
  is_offload "$t" && expect=(--expect-offload)
  target_up "$t" --acl open --exclusive || return
  CASE_SECS=150 case_py "$t" offload --subs 5 --msgs 100 "${expect[@]}"
  if is_offload "$t"; then
    target_down "$t"
    counter_at_least consumed 100 "offload: mqoff counted the 100 QoS 0/1 PUBLISHes as consumed"
    counter_at_least deliveries 500 "offload: mqoff counted 5 x 100 deliveries of its own"
  fi
}

# mqoff without --acl/--acl-file must pass every PUBLISH to the broker, and still deliver.
run_no_acl() {
  local t=$1 v
  is_offload "$t" || return 0
  target_up "$t" --exclusive || return
  CASE_SECS=150 case_py "$t" offload --subs 5 --msgs 100 --expect-passthrough
  fanout_py "$t" --subs 10 --msgs 100 --qos 1 --name "no authorization source: fan-out"
  target_down "$t"
  v=$(proxy_counter consumed)
  if [ -z "$v" ]; then echo "# counter consumed not in mqoff's summary"
  elif [ "$v" -eq 0 ]; then ok "no authorization source: mqoff consumed nothing [$t]"
  else not_ok "no authorization source: mqoff consumed nothing [$t]" "consumed=$v"
  fi
}

lab_init
for_targets run
LAB_NAME="$LAB_NAME (no --acl)" for_targets run_no_acl
lab_finish
