#!/usr/bin/env bash
# io_suite.sh BACKEND: monitor mode's lab scripts and the bridge's, on a packet I/O backend
# other than AF_PACKET (the scripts run on AF_PACKET themselves):
#   test_monitor.sh  end to end under loss, duplication and reordering; connections older
#                    than mqoff
#   test_frag.sh     IPv4 fragments (DPDK: through net_af_xdp, see test_frag.sh)
#   test_bridge.sh   the null forwarder: transfers, VLAN tags, L2 modes, impairment, the
#                    backend's bad setups
#   test_fanout.sh, test_raw.sh, test_protocol.sh, test_retain_unsub.sh
#                    the shared end-to-end cases, monitor target only (the keep-alive case
#                    publishes for 10 s instead of 20: still past the broker's 7.5 s timeout)
# test_offload.sh is left out: its offload case runs here under loss (test_monitor.sh), and
# what it adds (nothing offloaded without an authorization source) is decided above the
# backend; it passes on both (LAB_TARGETS=monitor MONITOR_IO=dpdk bash tests/lab/test_offload.sh).
# Each check's name gets "[io BACKEND]" in front. Every script cleans up after itself (its own
# trap); this one only runs them, bounded in time, and passes SIGTERM on to the one running.
# tests/lab/test_io.sh runs it for both backends in `make test`.
set -u
IO=${1:?usage: io_suite.sh afxdp|dpdk}
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
MQOFF=${MQOFF:-$ROOT/build/mqoff}
rc=0

if [ ! -x "$MQOFF" ]; then
  echo "ok - io $IO: monitor and bridge scripts # SKIP $MQOFF not built yet"
  exit 0
fi
if "$MQOFF" monitor --io "$IO" --eal x --port-a a --port-b b --broker 198.18.0.2:1883 2>&1 |
  grep -q "not in this build"; then
  # make test installs the packages first (scripts/deps.sh): a build without them is a
  # build from before, or by hand
  echo "not ok - io $IO: the backend is in build/mqoff: not in this build (scripts/deps.sh, then make)"
  exit 1
fi
CHILD='' TMP=$(mktemp /tmp/io_suite.XXXXXX)
trap '[ -z "$CHILD" ] || kill -TERM "$CHILD" 2>/dev/null; wait; rm -f "$TMP"; exit 130' INT TERM
trap 'rm -f "$TMP"' EXIT

# run_script SCRIPT TAG [VAR=VALUE...]: SCRIPT on the monitor target with the backend (and the
# settings given), bounded in time; its checks' names get "[TAG]" in front.
run_script() {
  local t=$1 tag=$2 s
  shift 2
  env "$@" LAB_TARGETS=monitor MONITOR_IO="$IO" KEEPALIVE_SECS=10 \
    timeout -k 10 "${IO_SCRIPT_TIMEOUT:-300}" bash "$DIR/$t" >"$TMP" 2>&1 </dev/null &
  CHILD=$!
  wait "$CHILD"
  s=$?
  CHILD=''
  sed -E "s/^(not )?ok - /&[$tag] /" "$TMP"
  if [ "$s" -ne 0 ]; then
    rc=1
    [ "$s" -ne 124 ] || echo "not ok - [$tag] $t: timed out"
  fi
}

for t in test_monitor.sh test_frag.sh test_bridge.sh test_fanout.sh test_raw.sh test_protocol.sh \
  test_retain_unsub.sh; do
  echo "# --- $t on --io $IO"
  run_script "$t" "io $IO"
done
if [ "$IO" = dpdk ]; then
  # the offloads a NIC does (TSO, TX checksums): DPDK's net_tap does them in software
  echo "# --- test_fanout.sh on --io dpdk, net_tap devices"
  run_script test_fanout.sh "io dpdk net_tap" DPDK_PMD=net_tap
fi
exit $rc
