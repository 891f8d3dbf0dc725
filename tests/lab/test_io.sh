#!/usr/bin/env bash
# Monitor mode and mqoff-bridge on --io dpdk and --io afxdp (tests/lab/io_suite.sh), the two
# backends at once: each suite has labs of its own (namespaces, DPDK file prefixes), and most
# of a suite's time is spent waiting (keep-alives, timeouts, quiet periods), not computing, so
# running them side by side on two cores halves the time `make test` spends here. Their
# outputs are printed one after the other; the exit status is 1 when either failed.
set -u
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(mktemp -d /tmp/test_io.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done # each suite's own traps clean up
  wait
  rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for io in dpdk afxdp; do
  bash "$DIR/io_suite.sh" "$io" >"$OUT/$io" 2>&1 &
  PIDS+=($!)
done
rc=0
for i in 0 1; do
  wait "${PIDS[$i]}" || rc=1
done
PIDS=()
cat "$OUT/dpdk" "$OUT/afxdp"
exit $rc
