# shellcheck shell=bash
# The packet I/O backend of the lab's userspace forwarders (mqoff monitor, mqoff-bridge), for
# lib.sh and test_bridge.sh. Set MONITOR_IO to afpacket (the default), afxdp or dpdk; a
# script calls io_args for the command line of each process it starts, io_attach once it
# started and io_detach once it stopped. DPDK processes get EAL file prefixes under
# IO_PREFIX, so a cleanup finds what a killed one left in /var/run/dpdk.
#
# DPDK_PMD picks the DPDK devices: net_af_packet (the default) or net_af_xdp on the two
# interfaces themselves, or net_tap: DPDK makes a tap interface per port, and io_attach joins
# each to its interface with a kernel bridge of its own (IF + IFt in IFk). net_tap is the
# lab's one driver with TX checksum offload and TSO (done in software by the driver, as a NIC
# would in hardware), so it is how those paths run here.
MONITOR_IO=${MONITOR_IO:-afpacket}
DPDK_PMD=${DPDK_PMD:-net_af_packet}   # dpdk: the devices on the interfaces
IO_PREFIX=${IO_PREFIX:-${MQO_LAB:-io$$}io}
IO_N=0

# io_args IF_A IF_B: sets IO_ARGS to the port arguments of mqoff monitor (and mqoff-bridge)
# for $MONITOR_IO. DPDK gets a file prefix of its own per process (so a cleanup finds what a
# killed process left) and $DPDK_PMD devices on the two interfaces; net_af_packet's rings
# hold 512 frames unless told otherwise, fewer than a fan-out's acknowledgements arriving at
# once (the kernel drops the rest, unseen by DPDK's counters): 8192 here.
io_args() {
  local a=$1 b=$2
  IO_N=$((IO_N + 1))
  case "$MONITOR_IO" in
    afpacket) IO_ARGS=(--port-a "$a" --port-b "$b") ;;
    afxdp) IO_ARGS=(--io afxdp --port-a "$a" --port-b "$b") ;;
    dpdk)
      local opt="" ta=$a tb=$b
      [ "$DPDK_PMD" != net_af_packet ] || opt=,framecnt=8192
      [ "$DPDK_PMD" != net_tap ] || ta=${a}t tb=${b}t
      IO_ARGS=(--io dpdk --eal "--no-huge --no-pci --file-prefix $IO_PREFIX$IO_N --vdev=${DPDK_PMD}0,iface=$ta$opt --vdev=${DPDK_PMD}1,iface=$tb$opt"
                   --port-a "${DPDK_PMD}0" --port-b "${DPDK_PMD}1") ;;
    *) echo "lib.sh: MONITOR_IO=$MONITOR_IO: want afpacket, afxdp or dpdk" >&2; return 1 ;;
  esac
}

# io_attach NS IF_A IF_B: after the forwarder started on IF_A and IF_B in namespace NS. For
# net_tap, waits (5 s at most) for its tap interfaces and bridges each to its interface;
# returns 1 when they did not come. Nothing to do otherwise.
io_attach() {
  local ns=$1 i
  [ "$MONITOR_IO" = dpdk ] && [ "$DPDK_PMD" = net_tap ] || return 0
  shift
  for _ in $(seq 50); do
    ip -n "$ns" link show "${1}t" >/dev/null 2>&1 && ip -n "$ns" link show "${2}t" >/dev/null 2>&1 && break
    sleep 0.1
  done
  for i in "$@"; do
    ip -n "$ns" link add "${i}k" type bridge 2>/dev/null || return 1
    ip -n "$ns" link set "$i" master "${i}k" && ip -n "$ns" link set "${i}t" master "${i}k" &&
      ip -n "$ns" link set "${i}k" up || return 1
  done
}

# io_detach NS IF_A IF_B: after the forwarder stopped: the interfaces out of io_attach's
# bridges, which go (the taps went with the process).
io_detach() {
  local ns=$1 i
  [ "$MONITOR_IO" = dpdk ] && [ "$DPDK_PMD" = net_tap ] || return 0
  shift
  for i in "$@"; do
    ip -n "$ns" link set "$i" nomaster 2>/dev/null
    ip -n "$ns" link del "${i}k" 2>/dev/null
  done
  return 0
}

# ports_state NS IF...: what mqoff may change on its ports and must give back: promiscuous
# mode and an XDP program ("IF:flags" per interface).
ports_state() {
  local ns=$1 i
  shift
  for i in "$@"; do
    printf '%s:%s ' "$i" "$(ip -n "$ns" link show "$i" 2>/dev/null | head -1 | grep -oE 'PROMISC|xdp[a-z]*' | tr '\n' ,)"
  done
}

# ports_restored NAME BEFORE NS IF...: ok when the ports are as BEFORE (ports_state) and no
# DPDK runtime directory of the lab is left.
ports_restored() {
  local name=$1 before=$2 ns=$3 now left
  shift 3
  now=$(ports_state "$ns" "$@")
  left=$(io_leftovers)
  if [ "$now" = "$before" ] && [ -z "$left" ]; then ok "$name"
  else not_ok "$name" "ports before: $before, after: $now; left behind: ${left:-nothing}"
  fi
}

# io_leftovers: the EAL runtime directories of this script's DPDK processes still there (root's
# under /var/run/dpdk, another user's under /tmp/dpdk).
io_leftovers() {
  ls -d /var/run/dpdk/"$IO_PREFIX"* /tmp/dpdk/"$IO_PREFIX"* 2>/dev/null | tr '\n' ' '
}

# io_cleanup: what a DPDK process killed before its own cleanup would leave, its EAL runtime
# directories (for a script's exit trap).
io_cleanup() {
  rm -rf /var/run/dpdk/"$IO_PREFIX"* /tmp/dpdk/"$IO_PREFIX"* 2>/dev/null
  return 0
}
