#!/usr/bin/env bash
# The differential corpus (tests/lab/rawdiff/README.md): about two thousand byte sequences
# (every packet type, malformed variants, v5 properties; MQTT 3.1, 3.1.1 and 5) played against
# Mosquitto direct and through mqoff proxy, monitor and intercept. Every client's received bytes
# and the way its connection ended are compared with direct's, case by case. A difference listed in
# rawdiff/known_diffs.txt is skipped (and must still be a difference); any other fails.
# Broker-config groups (message_size_limit, max_packet_size, mount_point, a bridge, a password
# file, an acl_file, the dynamic-security plugin) run with their own broker config and the
# mqoff options that describe it (rawdiff/brokerconf.py); persist31 holds the core cases with
# an MQTT 3.1 persistent CONNECT, after which mqoff offloads nothing. Every group runs direct
# twice: the corpus is deterministic, so the two must be identical. mqoff must have offloaded
# something in the groups where it can (else only the broker's path was compared).
#
# Environment: RAWDIFF_GROUPS (default: every group), LAB_TARGETS (default: direct proxy
# monitor intercept), RAWDIFF_MATCH (only cases whose name contains it), RAWDIFF_MQOFF_ARGS (options
# for every mqoff target), RAWDIFF_REPEAT=0 (skip the second direct run), RAWDIFF_KEEP=DIR
# (keep the result files there).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RD=rawdiff
# Options every mqoff target gets after its group's own ones (rawdiff/brokerconf.py: the
# broker's config, --mosquitto-conf): extend this list. Every client of the lab broker goes
# through mqoff: --exclusive.
# shellcheck disable=SC2206
MQOFF_ARGS=(--exclusive ${RAWDIFF_MQOFF_ARGS:-})
RD_GROUPS=${RAWDIFF_GROUPS:-core persist31 msgsize maxpacket mount bridge auth acl dynsec}
OFFLOAD_GROUPS="core msgsize maxpacket mount bridge auth acl"
REMOTE_PID=
MATCH=()
[ -z "${RAWDIFF_MATCH:-}" ] || MATCH=(--match "$RAWDIFF_MATCH")

# remote_start DIR: the bridge group's second broker, 198.18.0.2:1884 in the brk namespace.
remote_start() {
  local dir=$1
  # the previous group's broker may still hold port 1884 (the mount group listens there)
  "$LAB_TOOL" broker-stop >/dev/null 2>&1
  ip netns exec "$NS_BRK" /usr/sbin/mosquitto -c "$dir/remote.conf" >"$dir/remote.log" 2>&1 </dev/null &
  REMOTE_PID=$!
  if ! wait_port "$NS_BRK" "$BROKER_ADDR" 1884 10 || ! kill -0 "$REMOTE_PID" 2>/dev/null; then
    not_ok "rawdiff: remote broker starts" "$(tail -3 "$dir/remote.log" | tr '\n' ' ')"
    return 1
  fi
}

remote_stop() {
  [ -n "$REMOTE_PID" ] || return 0
  kill -TERM "$REMOTE_PID" 2>/dev/null
  wait "$REMOTE_PID" 2>/dev/null
  REMOTE_PID=
}

# bridge_flows FROM_PORT TO_PORT: a message published on one broker reaches a subscriber of
# the other within 10 s (the bridge is connected and subscribed that way).
bridge_flows() {
  local from=$1 to=$2 sp i
  ip netns exec "$NS_BRK" timeout 12 mosquitto_sub -h "$BROKER_ADDR" -p "$to" -t rd/bridge-ready \
    -C 1 -W 10 >/dev/null 2>&1 &
  sp=$!
  for ((i = 0; i < 50; i++)); do
    kill -0 "$sp" 2>/dev/null || break
    ip netns exec "$NS_BRK" mosquitto_pub -h "$BROKER_ADDR" -p "$from" -t rd/bridge-ready -m up 2>/dev/null
    sleep 0.2
  done
  wait "$sp"
}

# play G T TT DIR ARGS...: the group's cases against target TT (direct, proxy, monitor,
# intercept), results in DIR/T.jsonl. Once direct's results are there, the cases the broker
# refused nothing in play first (run.py --waves-from).
play() {
  local g=$1 t=$2 tt=$3 dir=$4 waves=()
  shift 4
  [ ! -s "$dir/direct.jsonl" ] || waves=(--waves-from "$dir/direct.jsonl")
  [ "$g" != bridge ] || remote_start "$dir" || return 1
  if target_up "$tt" "$@"; then
    if [ "$g" = bridge ] && ! { bridge_flows "$MQTT_PORT" 1884 && bridge_flows 1884 "$MQTT_PORT"; }; then
      not_ok "rawdiff $g: the bridge carries messages both ways [$t]" "nothing arrived in 10 s"
    else
      run_py "rawdiff $g: corpus played [$t]" 300 "$RD/run.py" --host "$(target_addr "$tt")" \
        --group "$g" --out "$dir/$t.jsonl" "${MATCH[@]}" "${waves[@]}"
    fi
  fi
  target_down "$tt"
  remote_stop
  # The comparison only says something about the offload if mqoff offloaded: in these
  # groups some PUBLISH must have been taken by it (persist31: mqoff must assume sessions it
  # cannot see; dynsec: no authorization source).
  if is_offload "$tt" && [[ " $OFFLOAD_GROUPS " == *" $g "* ]]; then
    local n
    n=$(proxy_counter consumed)
    if [ -n "$n" ] && [ "$n" -gt 0 ]; then ok "rawdiff $g: mqoff offloaded (consumed $n) [$t]"
    else not_ok "rawdiff $g: mqoff offloaded [$t]" "consumed=${n:-absent}: nothing was compared but the broker's own path"
    fi
  fi
}

run_group() {
  local g=$1 dir=$LAB_TMP/$1 t args
  mkdir -p "$dir"
  if ! "$PY" "$LAB_DIR/$RD/brokerconf.py" "$g" "$dir"; then
    not_ok "rawdiff $g: broker config" "brokerconf.py failed"
    return
  fi
  mapfile -t args <"$dir/mqoff.args"
  BROKER_EXTRA=$dir/broker.conf
  echo "# --- rawdiff $g: broker config: $(tr '\n' ';' <"$dir/broker.conf"); mqoff ${args[*]} ${MQOFF_ARGS[*]}"
  play "$g" direct direct "$dir"
  if [ ! -s "$dir/direct.jsonl" ]; then
    not_ok "rawdiff $g: direct results" "none; nothing to compare with"
    return
  fi
  if [ "${RAWDIFF_REPEAT:-1}" = 1 ] && [ -z "${RAWDIFF_MATCH:-}" ]; then
    play "$g" direct-again direct "$dir"
    run_py "rawdiff $g: direct twice" 120 "$RD/compare.py" "$dir/direct.jsonl" \
      "$dir/direct-again.jsonl" --target direct-again --group "$g" --known /dev/null --quiet-same
  fi
  for t in $LAB_TARGETS; do
    is_offload "$t" || continue
    if ! target_built "$t"; then
      skip "rawdiff $g [$t]" "build/mqoff not built yet"
      continue
    fi
    play "$g" "$t" "$t" "$dir" "${args[@]}" "${MQOFF_ARGS[@]}"
    run_py "rawdiff $g: compare [$t]" 120 "$RD/compare.py" "$dir/direct.jsonl" "$dir/$t.jsonl" \
      --target "$t" --group "$g"
  done
  if [ -n "${RAWDIFF_KEEP:-}" ]; then
    mkdir -p "$RAWDIFF_KEEP/$g" && cp "$dir"/*.jsonl "$RAWDIFF_KEEP/$g/"
  fi
}

lab_init
for g in $RD_GROUPS; do
  run_group "$g"
done
BROKER_EXTRA=
lab_finish
