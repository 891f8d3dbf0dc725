#!/usr/bin/env bash
# Large payloads through monitor mode with segmentation offload (AF_PACKET's virtio-net header,
# --gso on, the default): 16 KiB and 64 KiB payloads, QoS 0 and 1, several subscribers, arrive
# exactly once, in order and intact.
#   1. clean path: deliveries leave as super-segments (port a's TSO frames, its checksums left
#      to the kernel); the endpoints send with segmentation offload too (their veths' tx
#      offloads on for this run), so the publishers' and the broker's super-segments reach
#      mqoff whole, with partial checksums;
#   2. the impairment stage toward the clients loses and reorders wire segments: the bump cuts
#      the splice's super-segments in software before it, and the splice retransmits the byte
#      ranges lost out of a super-segment; toward the broker it loses frames too.
# Monitor mode only (the target that does segmentation itself); backend afpacket. With
# --gso off (MQOFF set to a wrapper adding it) 9 checks fail: the endpoints' super-segments are
# dropped as longer than a ring slot and messages are lost.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

LAB_TARGETS=monitor
[ "$MONITOR_IO" = afpacket ] || { echo "# test_gso: afpacket only (MONITOR_IO=$MONITOR_IO)"; LAB_TARGETS=; }

# counter_of REGEX: the first number after REGEX in mqoff's closing summary.
counter_of() { grep -oE "$1 [0-9]+" "$PROXY_LOG" | head -1 | grep -oE '[0-9]+$'; }

# above NAME VALUE MIN: ok when VALUE >= MIN.
above() {
  if [ "${2:-0}" -ge "$3" ]; then ok "$1 ($2)"; else not_ok "$1" "${2:-absent} < $3"; fi
}

# endpoint_offloads on|off: the clients' and the broker's veths segment and sum on send (the
# lab keeps them off otherwise).
endpoint_offloads() {
  ip netns exec "$NS_CLI" ethtool -K "${MQO_LAB}c" tx "$1" tso "$1" gso "$1" >/dev/null 2>&1
  ip netns exec "$NS_BRK" ethtool -K "${MQO_LAB}b" tx "$1" tso "$1" gso "$1" >/dev/null 2>&1
}

large_runs() {
  local t=$1
  fanout_py "$t" --subs 5 --msgs 40 --qos 0 --payload 16384 --timeout 40
  fanout_py "$t" --subs 5 --msgs 40 --qos 1 --payload 16384 --timeout 40
  fanout_py "$t" --subs 4 --msgs 20 --qos 0 --payload 65536 --timeout 40
  fanout_py "$t" --subs 4 --msgs 20 --qos 1 --payload 65536 --timeout 40
}

run() {
  local t=$1 v
  # 1. clean path, endpoints with offloads
  endpoint_offloads on
  target_up "$t" --acl open --exclusive || { endpoint_offloads off; return; }
  large_runs "$t"
  target_down "$t"
  endpoint_offloads off
  v=$(grep -E '^port a .*: rx ' "$PROXY_LOG" | grep -oE 'TSO frames [0-9]+' | grep -oE '[0-9]+$')
  above "monitor: deliveries left as super-segments (port a TSO frames)" "$v" 100
  v=$(grep -E '^port a .*: rx ' "$PROXY_LOG" | grep -oE 'checksums offloaded [0-9]+' | grep -oE '[0-9]+$')
  above "monitor: their checksums left to the kernel (port a)" "$v" 100
  v=$(proxy_counter tso_frames)
  above "monitor: the splice emitted TSO frames" "$v" 100
  v=$(grep -E '^port a .*: rx ' "$PROXY_LOG" | grep -oE 'rx [0-9]+ frames [0-9]+ bytes' | head -1)
  local fr by
  fr=$(echo "$v" | awk '{print $2}') by=$(echo "$v" | awk '{print $4}')
  # 40*16 KiB*2 + 20*64 KiB*2 published: above 4 MB in; more than 1500 bytes a frame on
  # average only when super-segments arrived whole
  if [ "${fr:-0}" -gt 0 ] && [ $((by / fr)) -gt 1600 ]; then
    ok "monitor: the publishers' super-segments arrived whole on port a ($fr frames, $by bytes)"
  else
    not_ok "monitor: the publishers' super-segments arrived whole on port a" "$fr frames, $by bytes"
  fi
  v=$(counter_of 'rx_dropped')
  if [ "${v:-1}" -eq 0 ]; then ok "monitor: no frame dropped on receive (port a rx_dropped 0)"
  else not_ok "monitor: no frame dropped on receive" "port a rx_dropped ${v:-absent}"
  fi
  # 2. impairment: loss and reordering both ways, super-segments cut before the stage
  target_up "$t" --acl open --exclusive \
    --impair-b2a loss=2,reorder=5,seed=7 --impair-a2b loss=1,seed=9 || return
  large_runs "$t"
  target_down "$t"
  v=$(counter_of 'super-segments cut')
  above "monitor: super-segments cut in software before the impairment stage" "$v" 100
  v=$(proxy_counter retransmits)
  above "monitor: lost parts of super-segments were retransmitted" "$v" 20
  v=$(proxy_counter resets)
  if [ "${v:-1}" -eq 0 ]; then ok "monitor: no connection reset under loss"
  else not_ok "monitor: no connection reset under loss" "resets=${v:-absent}"
  fi
}

lab_init
for_targets run
lab_finish
