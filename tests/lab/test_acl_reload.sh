#!/usr/bin/env bash
# The broker's acl_file changes while mqoff runs, and subscribers mqoff cannot see.
#
# Broker: password_file + acl_file (mqoff reads the same file: --acl-file) and a second listener
# on port 1884 that mqoff does not carry. Each case runs direct (the broker's own behaviour,
# the reference), through mqoff proxy, monitor and intercept, on a fresh broker and mqoff;
# tests/lab/acl_reload.py edits the file, sends SIGHUP to the broker and to mqoff, and counts
# what every subscriber gets in each phase ("# measured ..." lines):
#   write revoked      alice may no longer write (file rewritten in place), the broker reloads:
#                      nothing more of hers arrives, open connection or new one;
#   read revoked       bob may no longer read: he gets nothing more, open or new connection;
#   editor rename      a new file renamed over the old one: until the broker reloads the old
#                      rules hold, after it the new ones;
#   broken then fixed  a file that does not parse, reloaded by the broker (Mosquitto 2.0.11 then
#                      checks no ACL at all), fixed, reloaded again;
#   second listener    without --exclusive a subscriber on port 1884 gets every message, in
#                      order (mqoff offloads nothing: consumed 0);
#   exclusive          with --exclusive mqoff offloads as before (consumed > 0).
# After each case mqoff's closing counters (SIGTERM) must show the reasons it used.
# ACL_RELOAD_CASES="second_listener exclusive" runs only those cases.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ACL=  # set after lab_init: $LAB_TMP/etc/acl
write_files() {
  local d=$LAB_TMP u
  : >"$d/passwd"
  for u in alice frank bob dave eve mark; do
    mosquitto_passwd -b "$d/passwd" "$u" pw >/dev/null 2>&1 || return 1
  done
  # the acl_file lives in a directory of its own, as /etc/mosquitto does: mqoff watches it
  mkdir -p "$d/etc" && chmod 755 "$d/etc"
  cat >"$d/broker.conf" <<CONF
allow_anonymous false
password_file $d/passwd
acl_file $ACL
listener 1884 $BROKER_ADDR
CONF
  chmod 644 "$d/passwd" "$d/broker.conf"
}

# counter_cmp NAME OP VALUE CHECK: mqoff's closing counter NAME compared with VALUE (OP -ge or
# -eq); a reason never used is absent from the summary and counts as 0.
counter_cmp() {
  local v good=0
  v=$(proxy_counter "$1")
  case "$2" in
    -ge) [ "${v:-0}" -ge "$3" ] && good=1 ;;
    -eq) [ "${v:-0}" -eq "$3" ] && good=1 ;;
  esac
  if [ -n "$v" ] || grep -q published_in "$PROXY_LOG"; then :; else good=0; fi
  if [ "$good" = 1 ]; then ok "$4 ($1=${v:-0}) [$T]"
  else not_ok "$4 [$T]" "$1=${v:-absent}, want $2 $3"
  fi
}

# run_case T CASE [mqoff args...]: a fresh acl_file, broker and mqoff; the case; mqoff's summary.
T=
run_case() {
  local t=$1 c=$2 bpid
  shift 2
  T=$t
  "$PY" "$LAB_DIR/acl_reload.py" init --host "$BROKER_ADDR" --acl "$ACL" >/dev/null ||
    { not_ok "$c: acl_file written [$t]"; return 1; }
  BROKER_EXTRA=$LAB_TMP/broker.conf target_up "$t" --acl-file "$ACL" "$@" || return 1
  bpid=$(cat "/run/mqoff-lab/$MQO_LAB/broker.pid")
  local mq=()
  is_offload "$t" && mq=(--mqoff-pid "$PROXY_PID" --mqoff-log "$PROXY_LOG")
  run_py "$c [$t]" 150 acl_reload.py "$c" --host "$(target_addr "$t")" --target "$t" \
    --acl "$ACL" --broker-pid "$bpid" --broker-log "$BROKER_LOG" "${mq[@]}"
  target_down "$t"
  is_offload "$t"
}

write_revoked() {
  run_case "$1" write_revoked --exclusive || return 0
  counter_cmp consumed -ge 20 "write revoked: offloaded before the change"
  counter_cmp acl_changed -ge 1 "write revoked: passed to the broker while the versions disagreed"
}

read_revoked() {
  run_case "$1" read_revoked --exclusive || return 0
  counter_cmp consumed -ge 40 "read revoked: offloaded before the change and after both reloads"
  counter_cmp acl_changed -ge 1 "read revoked: passed to the broker while the versions disagreed"
}

editor_rename() {
  run_case "$1" editor_rename --exclusive || return 0
  counter_cmp consumed -ge 40 "editor rename: offloaded before the change and after both reloads"
  counter_cmp acl_changed -ge 1 "editor rename: passed to the broker while the versions disagreed"
}

broken_then_fixed() {
  run_case "$1" broken_then_fixed --exclusive || return 0
  counter_cmp consumed -ge 40 "broken then fixed: offloaded before, and again after both reloads"
  counter_cmp acl_broken -ge 1 \
    "broken then fixed: passed to the broker while the rules were unknown"
  counter_cmp acl_versions -eq 1 "broken then fixed: one version after the reloads"
}

second_listener() {
  run_case "$1" second_listener || return 0
  counter_cmp consumed -eq 0 "second listener, no --exclusive: mqoff offloaded nothing"
  counter_cmp not_exclusive -ge 100 "second listener, no --exclusive: counted why"
  local n
  n=$(grep -c "not --exclusive" "$PROXY_LOG")
  if [ "$n" -eq 1 ]; then ok "second listener, no --exclusive: said so once at start [$T]"
  else not_ok "second listener, no --exclusive: said so once at start [$T]" "$n lines"
  fi
}

exclusive() {
  run_case "$1" exclusive --exclusive || return 0
  counter_cmp consumed -ge 100 "exclusive: mqoff offloaded as before"
}

lab_init
ACL=$LAB_TMP/etc/acl
check "acl reload: password file and broker config written" write_files
# ACL_RELOAD_CASES: a subset, for a rerun of one case
ALL="write_revoked read_revoked editor_rename broken_then_fixed second_listener exclusive"
for c in ${ACL_RELOAD_CASES:-$ALL}; do
  for_targets "$c"
done
lab_finish
