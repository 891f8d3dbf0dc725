#!/usr/bin/env bash
# mqoff-bridge between two namespaces: frames cross only through the bridge.
#
#   [tbPIDa] 198.18.1.1/24 --veth-- [tbPIDm: mqoff-bridge between 2 veth ends, no kernel
#                                    bridge, IPv6 off] --veth-- [tbPIDb] 198.18.1.2/24
#
# Checks: no path without the bridge; ping and a 20 MB TCP transfer intact both ways (learn
# mode), 802.1Q/802.1ad tags kept, static and hub modes, SIGTERM stops it with counters; with --impair
# loss=2,dup=1,reorder=2 a TCP transfer still completes intact (TCP recovers); and with the
# endpoints' checksum offload left on, the bridge completes the partial checksums itself.
# MONITOR_IO=afxdp or dpdk runs the same on that packet I/O backend (tests/lab/io.sh; checks a
# backend cannot pass say why they are skipped), with the backend's bad setups refused in one
# line, and the bridge's interfaces as they were after it stops.
# Prints "ok - NAME" / "not ok - NAME: why", then "N passed, N failed"; exit 1 on failure.
# Everything it creates is removed on exit (trap), whatever happens.
set -u
cd "$(dirname "$0")/../.."
BR=${MQOFF_BRIDGE:-build/mqoff-bridge}
PY=/usr/bin/python3
P=tb$$
NSA=${P}a NSB=${P}b NSM=${P}m
IFA=${P}a0 IFMA=${P}ma IFMB=${P}mb IFB=${P}b0
ADDR_A=198.18.1.1 ADDR_B=198.18.1.2
SIZE=${BRIDGE_TEST_BYTES:-20971520}
T=$(mktemp -d /tmp/test_bridge.XXXXXX)
passed=0 failed=0 skipped=0 BRPID=
IO_PREFIX=${P}io
# shellcheck source=io.sh
. tests/lab/io.sh
IO=$MONITOR_IO

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1: $2"; failed=$((failed + 1)); }
skip() { echo "ok - $1 # SKIP $2"; skipped=$((skipped + 1)); }

stop_ns_pids() {
  local ns=$1 p
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && return
    sleep 0.1
  done
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
}

cleanup() {
  local ns
  for ns in $NSM $NSA $NSB; do
    if [ -e "/run/netns/$ns" ]; then
      stop_ns_pids "$ns"
      ip netns del "$ns" 2>/dev/null
    fi
  done
  io_cleanup
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
  [ "$skipped" -eq 0 ] || echo "# $skipped skipped"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

if [ "$(id -u)" -ne 0 ]; then
  not_ok setup "needs root (namespaces, raw sockets)"
  finish
fi
if [ ! -x "$BR" ]; then
  not_ok setup "$BR missing (make)"
  finish
fi

# ---- helpers in python: ICMP echo and a checked TCP transfer --------------------------------
cat > "$T/net.py" <<'EOF'
import hashlib, os, random, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def ping(dst, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident, got = os.getpid() & 0xffff, 0
    for seq in range(1, count + 1):
        body = struct.pack("!HH", ident, seq) + b"mqoff-bridge" * 4
        pkt = struct.pack("!BBH", 8, 0, 0) + body
        pkt = struct.pack("!BBH", 8, 0, csum(pkt)) + body
        s.sendto(pkt, (dst, 0))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, addr = s.recvfrom(2048)
            except socket.timeout:
                break
            icmp = data[(data[0] & 15) * 4:]
            if addr[0] == dst and icmp[0] == 0 and icmp[4:] == body:
                got += 1
                break
    print("%d/%d" % (got, count))
    sys.exit(0 if got == count else 1)

def recv(host, port, readyfile):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1)
    ls.settimeout(60)
    open(readyfile, "w").close()
    c, _ = ls.accept()
    c.settimeout(60)
    h, n, t0 = hashlib.sha256(), 0, time.monotonic()
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    dt = time.monotonic() - t0
    c.close()
    print(n, h.hexdigest(), "%.3f" % dt)

def send(host, port, n, seed):
    rng = random.Random(seed)
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(60)
    h, left = hashlib.sha256(), n
    while left:
        chunk = rng.randbytes(min(left, 1 << 20))
        s.sendall(chunk)
        h.update(chunk)
        left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    print(n, h.hexdigest())

SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 1 << 4
MARK = b"mqoff-bridge vlan test "

def vlan_send(ifname, tpid, tci, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    src = s.getsockname()[4]
    for i in range(count):
        f = b"\xff" * 6 + src + struct.pack("!HHH", tpid, tci, 0x88b5) + MARK + b"%04d" % i
        s.send(f + b"\0" * max(0, 60 - len(f)))
        time.sleep(0.01)

def vlan_recv(ifname, tpid, tci, count, readyfile):
    # The kernel takes the outer tag out of the bytes on receive; PACKET_AUXDATA gives it back.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 3))  # python applies htons to the protocol itself
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.settimeout(0.2)
    open(readyfile, "w").close()
    seen, good, end = set(), 0, time.monotonic() + 5
    while time.monotonic() < end and len(seen) < count:
        try:
            data, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(20))
        except socket.timeout:
            continue
        k = data.find(MARK)
        if k < 0:
            continue
        n = data[k + len(MARK):k + len(MARK) + 4]
        for lvl, typ, c in anc:
            if lvl == SOL_PACKET and typ == PACKET_AUXDATA and len(c) >= 20:
                st, _, _, _, _, vtci, vtpid = struct.unpack("=IIIHHHH", c[:20])
                if st & TP_STATUS_VLAN_VALID and vtci == tci and vtpid == tpid and n not in seen:
                    good += 1
        seen.add(n)
    print("%d/%d tagged frames arrived with tpid %#06x tci %d (%d seen)" % (good, count, tpid, tci, len(seen)))
    sys.exit(0 if good == count else 1)

if sys.argv[1] == "ping":
    ping(sys.argv[2], int(sys.argv[3]))
elif sys.argv[1] == "vlan_send":
    vlan_send(sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4]), int(sys.argv[5]))
elif sys.argv[1] == "vlan_recv":
    vlan_recv(sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
elif sys.argv[1] == "recv":
    recv(sys.argv[2], int(sys.argv[3]), sys.argv[4])
else:
    send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
EOF

# ---- the namespaces --------------------------------------------------------------------------
setup() {
  local ns
  for ns in $NSA $NSB $NSM; do
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up || return 1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1 || return 1
  done
  ip link add "$IFA" netns "$NSA" type veth peer name "$IFMA" netns "$NSM" || return 1
  ip link add "$IFB" netns "$NSB" type veth peer name "$IFMB" netns "$NSM" || return 1
  ip -n "$NSA" addr add $ADDR_A/24 dev "$IFA" || return 1
  ip -n "$NSB" addr add $ADDR_B/24 dev "$IFB" || return 1
  # a partial checksum would reach the wire as is (see the last check for the other case)
  ip netns exec "$NSA" ethtool -K "$IFA" tx off >/dev/null || return 1
  ip netns exec "$NSB" ethtool -K "$IFB" tx off >/dev/null || return 1
  for ns_if in "$NSA $IFA" "$NSB $IFB" "$NSM $IFMA" "$NSM $IFMB"; do
    set -- $ns_if
    ip -n "$1" link set "$2" up || return 1
  done
  # the middle namespace has no address and no bridge: only mqoff-bridge joins the two
  [ -z "$(ip -n "$NSM" -o addr show scope global)" ] || return 1
}

# bridge_start NAME ARGS...: starts the bridge in the middle, waits for its start line.
bridge_start() {
  local name=$1
  shift
  io_args "$IFMA" "$IFMB" || return 1
  timeout 300 ip netns exec "$NSM" "$BR" "${IO_ARGS[@]}" "$@" \
    >"$T/$name.out" 2>"$T/$name.err" &
  BRPID=$!
  for _ in $(seq 50); do
    grep -q "forwarding" "$T/$name.err" 2>/dev/null && return 0
    kill -0 "$BRPID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$T/$name.err" >&2
  return 1
}

# bridge_stop NAME: SIGTERM, wait (bounded), the counters must be printed.
bridge_stop() {
  local name=$1 p
  [ -n "$BRPID" ] || return 1
  # timeout's child is the bridge: signal it by PID, from the middle namespace's list
  for p in $(ip netns pids "$NSM"); do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    kill -0 "$BRPID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$BRPID" 2>/dev/null; then
    stop_ns_pids "$NSM"
    BRPID=
    return 1
  fi
  wait "$BRPID"
  local rc=$?
  BRPID=
  [ "$rc" -eq 0 ] && grep -q "^loop: " "$T/$name.out"
}

ping_ok() { # NS DST
  timeout 10 ip netns exec "$1" $PY "$T/net.py" ping "$2" 3 >"$T/ping.out" 2>&1
}

# transfer NAME FROM_NS TO_NS TO_ADDR SECS: SIZE bytes, checks length and SHA-256.
XFER_MBPS=
transfer() {
  local name=$1 from=$2 to=$3 addr=$4 secs=$5 port=$((20000 + RANDOM % 10000))
  rm -f "$T/ready"
  timeout "$secs" ip netns exec "$to" $PY "$T/net.py" recv "$addr" $port "$T/ready" \
    >"$T/$name.recv" 2>&1 &
  local rpid=$!
  for _ in $(seq 50); do
    [ -e "$T/ready" ] && break
    sleep 0.1
  done
  timeout "$secs" ip netns exec "$from" $PY "$T/net.py" send "$addr" $port "$SIZE" $RANDOM \
    >"$T/$name.send" 2>&1
  local src=$?
  wait $rpid
  local rrc=$?
  if [ $src -ne 0 ] || [ $rrc -ne 0 ]; then
    XFER_WHY="sender rc $src, receiver rc $rrc: $(tail -1 "$T/$name.send") / $(tail -1 "$T/$name.recv")"
    return 1
  fi
  local sn sh rn rh rt
  read -r sn sh <"$T/$name.send"
  read -r rn rh rt <"$T/$name.recv"
  if [ "$sn" != "$SIZE" ] || [ "$rn" != "$SIZE" ] || [ "$sh" != "$rh" ]; then
    XFER_WHY="sent $sn bytes sha $sh, received $rn bytes sha $rh"
    return 1
  fi
  XFER_MBPS=$(awk -v n="$rn" -v t="$rt" 'BEGIN { printf "%.1f", n / t / 1e6 }')
  echo "# $name: $rn bytes in $rt s = $XFER_MBPS MB/s"
}

# check_vlan TPID TCI NAME: tagged frames from a cross with their tag (AF_PACKET hands the
# bridge these frames with the tag taken out of the bytes; it must put it back).
check_vlan() {
  local tpid=$1 tci=$2 name="$3: tagged frames keep their tag"
  rm -f "$T/ready"
  timeout 20 ip netns exec "$NSB" $PY "$T/net.py" vlan_recv "$IFB" "$tpid" "$tci" 20 "$T/ready" \
    >"$T/vlan.out" 2>&1 &
  local rpid=$!
  for _ in $(seq 50); do
    [ -e "$T/ready" ] && break
    sleep 0.1
  done
  timeout 20 ip netns exec "$NSA" $PY "$T/net.py" vlan_send "$IFA" "$tpid" "$tci" 20 >/dev/null 2>&1
  if wait $rpid; then ok "$name ($(cat "$T/vlan.out"))"; else not_ok "$name" "$(cat "$T/vlan.out")"; fi
}

check_xfer() { # NAME FROM TO ADDR SECS
  if transfer "$@"; then ok "$1 ($XFER_MBPS MB/s)"; else not_ok "$1" "$XFER_WHY"; fi
}

if ! setup; then
  not_ok setup "creating namespaces and veths failed"
  finish
fi
ok "setup: namespaces $NSA $NSM $NSB, no kernel bridge in $NSM"
PORTS0=$(ports_state "$NSM" "$IFMA" "$IFMB")
echo "# packet I/O: $IO"

if ping_ok "$NSA" $ADDR_B; then
  not_ok "no path without the bridge" "ping went through"
else
  ok "no path without the bridge"
fi

# ---- learn mode (the default) ----------------------------------------------------------------
if bridge_start learn; then
  ok "bridge starts (learn)"
  if ping_ok "$NSA" $ADDR_B; then ok "ping a -> b"; else not_ok "ping a -> b" "$(cat "$T/ping.out")"; fi
  if ping_ok "$NSB" $ADDR_A; then ok "ping b -> a"; else not_ok "ping b -> a" "$(cat "$T/ping.out")"; fi
  check_xfer "tcp a -> b intact" "$NSA" "$NSB" $ADDR_B 60
  check_xfer "tcp b -> a intact" "$NSB" "$NSA" $ADDR_A 60
  check_vlan 0x8100 100 "802.1Q"
  if [ "$IO" = dpdk ]; then
    skip "802.1ad: tagged frames keep their tag" "DPDK's net_af_packet puts every tag back as 802.1Q"
  else
    check_vlan 0x88a8 200 "802.1ad"
  fi
  if bridge_stop learn; then ok "SIGTERM stops it, counters printed"; else
    not_ok "SIGTERM stops it, counters printed" "$(tail -3 "$T/learn.err" "$T/learn.out")"; fi
  ports_restored "$IO: the bridge left its interfaces as they were (promiscuous mode, XDP, DPDK files)" \
    "$PORTS0" "$NSM" "$IFMA" "$IFMB"
  sed 's/^/# /' "$T/learn.out"
  if grep -q "learned [1-9]" "$T/learn.out"; then ok "learned the endpoints' MACs"; else
    not_ok "learned the endpoints' MACs" "$(grep '^l2' "$T/learn.out")"; fi
else
  not_ok "bridge starts (learn)" "$(tail -3 "$T/learn.err")"
fi

# ---- static and hub modes --------------------------------------------------------------------
MAC_A=$(ip -n "$NSA" -o link show "$IFA" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')
MAC_B=$(ip -n "$NSB" -o link show "$IFB" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')
printf '# endpoint MACs\n%s a\n%s b\n' "$MAC_A" "$MAC_B" >"$T/static.tab"
if bridge_start static --l2 static --static-file "$T/static.tab"; then
  if ping_ok "$NSA" $ADDR_B; then ok "static: ping a -> b"; else not_ok "static: ping a -> b" "$(cat "$T/ping.out")"; fi
  bridge_stop static || not_ok "static: stop" "$(tail -3 "$T/static.err")"
else
  not_ok "static: bridge starts" "$(tail -3 "$T/static.err")"
fi
if bridge_start hub --l2 hub; then
  if ping_ok "$NSB" $ADDR_A; then ok "hub: ping b -> a"; else not_ok "hub: ping b -> a" "$(cat "$T/ping.out")"; fi
  bridge_stop hub || not_ok "hub: stop" "$(tail -3 "$T/hub.err")"
else
  not_ok "hub: bridge starts" "$(tail -3 "$T/hub.err")"
fi
# refused NAME PATTERN CMD...: CMD (the bridge, in the middle namespace) exits non-zero with
# one line matching PATTERN, and leaves no DPDK runtime directory.
refused() {
  local name=$1 pat=$2 left
  shift 2
  if timeout 20 ip netns exec "$NSM" "$@" >/dev/null 2>"$T/bad.err"; then
    not_ok "$name" "exit 0"
    return
  fi
  left=$(io_leftovers)
  if [ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -qE "$pat" "$T/bad.err" && [ -z "$left" ]; then
    ok "$name: $(cat "$T/bad.err")"
  else
    not_ok "$name" "$(head -c 600 "$T/bad.err" | tr '\n' '|')${left:+; left behind: $left}"
  fi
}
EAL0="--no-pci --file-prefix ${IO_PREFIX}bad --vdev=net_af_packet0,iface=$IFMA"
case "$IO" in
  dpdk)
    refused "dpdk: a port that does not exist is refused" "DPDK port 'nosuch0' does not exist" \
      "$BR" --io dpdk --eal "--no-huge $EAL0" --port-a net_af_packet0 --port-b nosuch0
    refused "dpdk: a device on a missing interface is refused" "DPDK port 'net_af_packet1' does not exist.*No such device" \
      "$BR" --io dpdk --eal "--no-huge $EAL0 --vdev=net_af_packet1,iface=nosuch0" --port-a net_af_packet0 --port-b net_af_packet1
    refused "dpdk: EAL arguments DPDK refuses are refused" "EAL refused.*--bogus" \
      "$BR" --io dpdk --eal "--bogus $EAL0" --port-a 0 --port-b 1
    if [ "$(awk '/HugePages_Total/ {print $2}' /proc/meminfo)" = 0 ]; then
      refused "dpdk: no hugepages: refused, and --no-huge named" "no hugepages.*--no-huge" \
        "$BR" --io dpdk --eal "$EAL0" --port-a 0 --port-b 1
    else
      skip "dpdk: no hugepages: refused" "this machine has hugepages"
    fi
    refused "dpdk: no permission (not root): refused" "DPDK.*(root|ermission)" \
      setpriv --reuid=65534 --regid=65534 --clear-groups \
      "$BR" --io dpdk --eal "--no-huge $EAL0" --port-a 0 --port-b 1 ;;
  *)
    refused "$IO: unknown interface refused" "nosuch0: no such interface" \
      "$BR" --io "$IO" --port-a "$IFMA" --port-b nosuch0
    if [ "$IO" = afxdp ]; then
      refused "afxdp: no permission (not root): refused" "$IFMA: .*(root|ermission|not permitted)" \
        setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$BR" --io afxdp --port-a "$IFMA" --port-b "$IFMB"
    fi ;;
esac

# ---- impaired: TCP recovers ------------------------------------------------------------------
if bridge_start impair --impair loss=2,dup=1,reorder=2,seed=7; then
  check_xfer "impaired loss=2,dup=1,reorder=2: tcp a -> b intact" "$NSA" "$NSB" $ADDR_B 240
  check_xfer "impaired loss=2,dup=1,reorder=2: tcp b -> a intact" "$NSB" "$NSA" $ADDR_A 240
  bridge_stop impair || not_ok "impaired: stop" "$(tail -3 "$T/impair.err")"
  sed 's/^/# /' "$T/impair.out"
  if grep -q "^impair a2b: in [1-9].*lost [1-9].*duplicated [1-9].*reordered [1-9]" "$T/impair.out"; then
    ok "impairment applied (lost, duplicated, reordered counted)"
  else
    not_ok "impairment applied" "$(grep '^impair' "$T/impair.out")"
  fi
else
  not_ok "impaired: bridge starts" "$(tail -3 "$T/impair.err")"
fi

# ---- checksum offload left on at the endpoints: the bridge completes partial checksums -------
ip netns exec "$NSA" ethtool -K "$IFA" tx on tso off gso off >/dev/null 2>&1
ip netns exec "$NSB" ethtool -K "$IFB" tx on tso off gso off >/dev/null 2>&1
if [ "$IO" != afpacket ]; then
  # only AF_PACKET is told a checksum is partial (TP_STATUS_CSUMNOTREADY)
  skip "tx offload on: partial checksums completed by the bridge" \
    "$IO does not say which checksums are partial: endpoints must not offload (ethtool -K IF tx off)"
elif bridge_start csum; then
  check_xfer "tx offload on: tcp a -> b intact" "$NSA" "$NSB" $ADDR_B 60
  bridge_stop csum || not_ok "csum: stop" "$(tail -3 "$T/csum.err")"
  # with the virtio-net header (the default) the kernel completes them (NEEDS_CSUM, the port's
  # "checksums offloaded"); with --gso off, or without the header, the bridge sums them itself
  if grep -qE "checksums completed [1-9]|checksums offloaded [1-9]" "$T/csum.out"; then
    ok "partial checksums completed (by the bridge, or left to the kernel: $(grep -oE 'checksums (completed|offloaded) [0-9]+' "$T/csum.out" | tr '\n' ' '))"
  else
    not_ok "partial checksums completed by the bridge" "$(grep -E '^(bridge|port|loop)' "$T/csum.out")"
  fi
else
  not_ok "csum: bridge starts" "$(tail -3 "$T/csum.err")"
fi

finish
