#!/usr/bin/env bash
# Retained messages published through the target are stored by the broker; subscribe ->
# receive, unsubscribe -> nothing more, subscribe again -> receive again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

run() {
  local t=$1
  target_up "$t" --acl open --exclusive || return
  case_py "$t" retained
  case_py "$t" unsubscribe
}

lab_init
for_targets run
lab_finish
