#!/usr/bin/env bash
# Authorization, with the broker as the authority.
#
# 1. password_file + acl_file (mqoff reads the same acl_file: --acl-file): a publisher the ACL
#    forbids delivers nothing; a subscriber whose SUBACK was granted but who may not READ gets
#    nothing; wrong passwords and anonymous clients are refused; "pattern" lines with %u and
#    %c give each reader its own topics only.
# 2. A refused SUBSCRIBE. Mosquitto 2.0.11's acl_file never refuses one: its check returns
#    success for every SUBSCRIBE/UNSUBSCRIBE ("FIXME - implement ACL subscription strings" in
#    src/security_default.c), and no other plugin-free path in handle__subscribe produces a
#    SUBACK failure code (bad filters or QoS close the connection instead). Only an ACL plugin
#    can; Debian's mosquitto package ships one, the dynamic-security plugin, whose
#    "subscribePattern ... allow false" gives SUBACK 0x80 (v3.1.1) / 0x87 (v5). mqoff cannot
#    read that plugin's rules, so it runs with --acl open and learns the refusal from the SUBACK.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

DYNSEC_SO=/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so

write_acl_files() {
  local d=$LAB_TMP
  : >"$d/passwd"
  local u
  for u in pub rd nord nowr; do
    mosquitto_passwd -b "$d/passwd" "$u" "$u-pw" >/dev/null 2>&1 || return 1
  done
  cat >"$d/acl" <<'ACL'
# mqoff lab: acl_file shared by Mosquitto and mqoff (--acl-file)
user pub
topic write acl/#
topic write pat/#
topic write cid/#

user rd
topic read acl/#

# nord may subscribe (acl_file cannot refuse a SUBSCRIBE) but not read
user nord
topic write acl/nord/#

# nowr may read but not write
user nowr
topic read acl/#

# patterns apply to every client: %u is the username, %c the client id
pattern read pat/%u/#
pattern read cid/%c/#
ACL
  cat >"$d/broker-acl.conf" <<CONF
allow_anonymous false
password_file $d/passwd
acl_file $d/acl
CONF
  cat >"$d/dynsec.json" <<'JSON'
{
  "clients": [],
  "groups": [{"groupname": "anon", "roles": [{"rolename": "nodeny"}]}],
  "anonymousGroup": "anon",
  "roles": [{"rolename": "nodeny", "acls": [
    {"acltype": "subscribePattern", "topic": "deny/#", "allow": false}
  ]}],
  "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,
                       "subscribe": true, "unsubscribe": true}
}
JSON
  cat >"$d/broker-dynsec.conf" <<CONF
plugin $DYNSEC_SO
plugin_opt_config_file $d/dynsec.json
CONF
  chmod 644 "$d"/*
}

run_aclfile() {
  local t=$1
  BROKER_EXTRA=$LAB_TMP/broker-acl.conf target_up "$t" --acl-file "$LAB_TMP/acl" --exclusive || return
  case_py "$t" acl
}

run_dynsec() {
  local t=$1
  BROKER_EXTRA=$LAB_TMP/broker-dynsec.conf target_up "$t" --acl open --exclusive || return
  case_py "$t" suback_refused
}

lab_init
check "acl: password and acl files written" write_acl_files
for_targets run_aclfile
if [ -f "$DYNSEC_SO" ]; then
  for_targets run_dynsec
else
  skip "suback refused" "$DYNSEC_SO missing: no way to make Mosquitto 2.0.11 refuse a SUBSCRIBE"
fi
lab_finish
