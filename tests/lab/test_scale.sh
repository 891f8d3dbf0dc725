#!/usr/bin/env bash
# Fan-out at the largest subscriber count this machine allows, through the broker (direct, the
# reference), mqoff monitor (also with the impairment stage losing frames toward the clients)
# and mqoff proxy and intercept: one publisher, SCALE_MSGS QoS 0 messages, every subscriber on the topic.
#
# The limit is RLIMIT_NOFILE's hard limit (HARD): Mosquitto and mqoff-bench hold one descriptor
# per client, mqoff proxy and intercept two (client and broker side). So N = HARD - 100
# subscribers for direct and monitor, (HARD - 100) / 2 - 1 for proxy and intercept (the
# publisher is a client too); the 100 are the
# processes' other descriptors, with room to spare. One mqoff-bench holds them all (N + a few
# descriptors fit under HARD), so no second process is needed.
#
# Checks, per target: the bench's own (every message delivered to every subscriber exactly
# once and in order, nothing misrouted, no connection lost: its exit status 0), and mqoff's
# counters: no frame dropped by its queues or receive rings, no transmit error, no connection
# reset or given up, no QoS 0 delivery dropped. And mqoff's memory per client (proxy and
# monitor): its peak RSS (VmHWM) less its RSS before the clients came, divided by the clients,
# stays within SCALE_MEM_PER_CLIENT bytes (default 2048 proxy, 3072 monitor; about 1.2 and 1.8 KiB
# measured, 10.4 KiB proxy before output chunks were freed once written).
# Bounded: each run is limited by timeout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BENCH=$LAB_ROOT/build/mqoff-bench
MSGS=${SCALE_MSGS:-8}
RATE=${SCALE_RATE:-1}
LOSS=${SCALE_LOSS:-loss=1,seed=7}
HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] && HARD=20000
# Mosquitto (started from this shell) inherits the soft limit: raise it to the hard one.
ulimit -n "$HARD"
N_ONE=$((HARD - 100))
N_PROXY=$(((HARD - 100) / 2 - 1))
[ -z "${SCALE_SUBS:-}" ] || { N_ONE=$SCALE_SUBS; N_PROXY=$SCALE_SUBS; }

# counter_sum NAME: the sum of every "NAME N" in mqoff's summary (both ports), empty if none.
counter_sum() {
  grep -oE "(^|[^a-z_])$1[=: ]+[0-9]+" "$PROXY_LOG" 2>/dev/null | grep -oE '[0-9]+$' |
    awk '{s += $1; n++} END {if (n) print s}'
}

# zero NAME LABEL [T]: ok when mqoff's summary has NAME and it is 0 everywhere.
zero() {
  local v
  v=$(counter_sum "$1")
  if [ "$v" = 0 ]; then ok "$2: $1 0 [$3]"; else not_ok "$2: $1 0 [$3]" "${1}=${v:-absent}"; fi
}

# bench_run T N NAME: the fan-out against target T with N subscribers.
bench_run() {
  local t=$1 n=$2 name=$3 json=$LAB_TMP/scale.$1.$RANDOM.json out rc
  out=$(ip netns exec "$NS_CLI" timeout -k 5 240 "$BENCH" --host "$(target_addr "$t")" \
    --label "$t" --prefix scale --subs "$n" --pubs 1 --topics 1 --qos 0 --size 32 \
    --rate "$RATE" --duration "$(awk -v m="$MSGS" -v r="$RATE" 'BEGIN {print m / r}')" \
    --warmup 0 --grace 20 --connect-timeout 120 --quiet --json "$json" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -E '^(measured|checks|  last subscriber)' | sed "s/^/# $t: /"
  if [ "$rc" -eq 0 ]; then
    ok "$name: $MSGS messages x $n subscribers, each exactly once and in order, no disconnect [$t]"
  else
    not_ok "$name: $MSGS messages x $n subscribers, each exactly once and in order, no disconnect [$t]" \
      "mqoff-bench exit $rc: $(printf '%s\n' "$out" | grep -E '^(checks|mqoff-bench:)' | tail -2 | tr '\n' ' ')"
  fi
}

# counters T NAME: mqoff's summary shows no drop and no reset.
counters() {
  local t=$1 name=$2 c
  grep -E '^(port|loop|  tcp|  retransmits|impair)' "$PROXY_LOG" | sed "s/^/# $t: /"
  if [ "$t" = monitor ]; then
    for c in rx_dropped tx_errors "queue drops" "alloc failures" "impair no memory" resets \
      "give-ups"; do
      zero "$c" "$name" "$t"
    done
  fi
  zero dropped_qos0 "$name" "$t"
  zero protocol_errors "$name" "$t"
}

# fresh_lab: new namespaces for the next run. The connections of a run end while mqoff and the
# broker stop: what is left of them in the kernels (FIN_WAIT, LAST_ACK, TIME_WAIT; after a
# monitor run, with sequence numbers only the stopped splice could translate) would meet the
# next run's connections on the same ports.
fresh_lab() {
  local out
  "$LAB_TOOL" down >/dev/null 2>&1
  if ! out=$("$LAB_TOOL" up 2>&1); then
    not_ok "$LAB_NAME: lab up" "$out"
    return 1
  fi
  # tens of thousands of client connections: a wide port range (namespaced settings)
  for ns in "$NS_CLI" "$NS_NIC"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1
  done
}

# kb NAME PID: a figure of /proc/PID/status in kB (VmRSS, VmHWM).
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status" 2>/dev/null; }

# mem_check T N RSS0: mqoff's peak RSS above RSS0 (kB, before the clients) per client.
mem_check() {
  local t=$1 n=$2 rss0=$3 hwm per max
  case "$t" in proxy) max=${SCALE_MEM_PER_CLIENT:-2048} ;; monitor) max=${SCALE_MEM_PER_CLIENT:-3072} ;; *) return 0 ;; esac
  hwm=$(kb VmHWM "$PROXY_PID")
  if [ -z "$hwm" ] || [ -z "$rss0" ]; then
    not_ok "scale: mqoff's memory per client [$t]" "no VmHWM/VmRSS of pid $PROXY_PID"
    return
  fi
  per=$(((hwm - rss0) * 1024 / n))
  echo "# $t: mqoff RSS ${rss0} kB before the clients, peak ${hwm} kB: ${per} B per client"
  if [ "$per" -le "$max" ]; then ok "scale: mqoff's peak memory per client ${per} B <= ${max} B [$t]"
  else not_ok "scale: mqoff's peak memory per client <= ${max} B [$t]" "${per} B (peak ${hwm} kB, before ${rss0} kB, $n clients)"
  fi
}

scale() {
  local t=$1 n=$N_ONE rss0=""
  [ "$t" = proxy ] || [ "$t" = intercept ] && n=$N_PROXY
  fresh_lab || return
  target_up "$t" --acl open --exclusive || return
  is_offload "$t" && rss0=$(kb VmRSS "$PROXY_PID")
  bench_run "$t" "$n" "scale"
  is_offload "$t" && mem_check "$t" "$n" "$rss0"
  target_down "$t"
  is_offload "$t" && counters "$t" "scale"
}

lossy() {
  local t=monitor
  echo "# --- $LAB_NAME: monitor, impairment toward the clients: $LOSS"
  fresh_lab || return
  target_up "$t" --acl open --exclusive --impair-b2a "$LOSS" || return
  bench_run "$t" "$N_ONE" "scale, $LOSS toward the clients"
  target_down "$t"
  counters "$t" "scale, $LOSS toward the clients"
  local lost
  lost=$(grep -E '^impair' "$PROXY_LOG" | grep -oE 'lost [0-9]+' | grep -oE '[0-9]+')
  if [ "${lost:-0}" -gt 0 ]; then ok "scale, $LOSS: the impairment stage lost frames ($lost) [$t]"
  else not_ok "scale, $LOSS: the impairment stage lost frames [$t]" "lost=${lost:-absent}"
  fi
}

lab_init
echo "# RLIMIT_NOFILE hard limit $HARD: $N_ONE subscribers direct and monitor, $N_PROXY proxy and intercept"
for_targets scale
if proxy_built && [[ " $LAB_TARGETS " == *" monitor "* ]]; then
  lossy
  target_down monitor
fi
lab_finish
