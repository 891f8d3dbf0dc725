#!/usr/bin/env bash
# io_suite.sh BACKEND: monitor mode's lab scripts and the bridge's, on a packet I/O backend
# other than AF_PACKET (the scripts run on AF_PACKET themselves):
#   test_monitor.sh  end to end under loss, duplication and reordering; connections older
#                    than mqoff
#   test_frag.sh     IPv4 fragments (DPDK: through net_af_xdp, see test_frag.sh)
#   test_bridge.sh   the null forwarder: transfers, VLAN tags, L2 modes, impairment, the
#                    backend's bad setups
#   test_fanout.sh, test_raw.sh   the shared end-to-end cases, monitor target only
# test_offload.sh, test_protocol.sh and test_retain_unsub.sh pass on both backends too
# (LAB_TARGETS=monitor MONITOR_IO=dpdk bash tests/lab/test_offload.sh); they are left out here
# to keep `make test` within its time (80 s more per backend).
# Each check's name gets "[io BACKEND]" in front. Every script cleans up after itself (its own
# trap); this one only runs them, bounded in time. Called by test_io_dpdk.sh and
# test_io_afxdp.sh, so that `make test` runs both.
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
for t in test_monitor.sh test_frag.sh test_bridge.sh test_fanout.sh test_raw.sh; do
  echo "# --- $t on --io $IO"
  LAB_TARGETS=monitor MONITOR_IO=$IO timeout -k 10 "${IO_SCRIPT_TIMEOUT:-300}" bash "$DIR/$t" 2>&1 |
    sed -E "s/^(not )?ok - /&[io $IO] /"
  s=${PIPESTATUS[0]}
  if [ "$s" -ne 0 ]; then
    rc=1
    [ "$s" -ne 124 ] || echo "not ok - [io $IO] $t: timed out"
  fi
done
exit $rc
