#!/usr/bin/env bash
# Byte-level input: many PUBLISHes in one TCP write, a PUBLISH a byte at a time, malformed
# bytes from one client (that client is dropped, everyone else goes on, mqoff keeps running).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

run() {
  local t=$1
  target_up "$t" --acl open --exclusive || return
  case_py "$t" packed
  case_py "$t" bytewise
  case_py "$t" malformed
  check "malformed: broker still running [$t]" broker_alive
  if is_offload "$t"; then
    check "malformed: mqoff still running [$t]" proxy_alive
    # ... and still serving: a new fan-out through it works.
    fanout_py "$t" --subs 5 --msgs 20 --qos 1 --name "malformed: fan-out afterwards"
  fi
}

lab_init
for_targets run
lab_finish
