#!/usr/bin/env bash
# make demo: a burst against Mosquitto direct and through each built mqoff mode, side by side.
#
# Brings up a lab (tools/mqoff-lab, prefix "demo"), starts Mosquitto in it, runs
# tools/demo_burst.py (1 publisher -> 100 subscribers, 200 QoS 0 messages at 50 msg/s, every
# client in the cli namespace so they share one monotonic clock) straight at the broker, then
# through `mqoff proxy`, `mqoff monitor` and `mqoff intercept` (the broker run with
# libmqoff-intercept.so) when built, and prints delivery counts and publish -> last subscriber
# latency. The lab is torn down whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

export MQO_LAB=demo
LAB=tools/mqoff-lab
PY=/usr/bin/python3
MQOFF=${MQOFF:-build/mqoff}
SHIM=${SHIM:-build/libmqoff-intercept.so}
BURST=(--subs "${DEMO_SUBS:-100}" --msgs "${DEMO_MSGS:-200}" --rate "${DEMO_RATE:-50}" --qos 0)
TMP=
PROXY_PID=

cleanup() {
  if [ -n "$PROXY_PID" ]; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROXY_PID" 2>/dev/null || true
  fi
  "$LAB" down >/dev/null 2>&1 || true
  [ -z "$TMP" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# wait_up CMD...: 0 once CMD succeeds (up to 10 s), 1 if mqoff exits first or time runs out.
wait_up() {
  for _ in $(seq 100); do
    "$@" && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
port_open() { "$LAB" exec cli timeout 1 bash -c "exec 3<>/dev/tcp/$1/1883" 2>/dev/null; }

# stop_mqoff MODE: stops the running mqoff and prints its closing summary (its log: TMP/MODE.log).
stop_mqoff() {
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=
  echo "$1: mqoff's closing summary:"
  sed -n '/summary/,$p' "$TMP/$1.log" | grep -vE '^(port|l2|loop)' | sed 's/^/  /'
  echo
}

echo "mqoff demo"
echo "  engine, codec, topic trie and ACL: built (run 'make test' for their tests)"
if [ "$(id -u)" -ne 0 ]; then
  echo "  the lab needs root (network namespaces): run 'make demo' as root" >&2
  exit 1
fi
TMP=$(mktemp -d /tmp/mqoff-demo.XXXXXX)

"$LAB" down >/dev/null 2>&1 || true      # a lab left over by an interrupted demo
"$LAB" up
"$LAB" broker-start >/dev/null
echo "  lab up: clients in demo-cli, Mosquitto 2.0 at 198.18.0.2:1883 (demo-brk), bridge in demo-nic"

results=()
echo
"$LAB" exec cli timeout 120 "$PY" tools/demo_burst.py run --host 198.18.0.2 --label direct \
  --out "$TMP/direct.json" "${BURST[@]}"
results+=("$TMP/direct.json")

if [ -x "$MQOFF" ]; then
  "$LAB" broker-start >/dev/null          # a fresh broker for the second run
  ip netns exec demo-nic "$MQOFF" proxy --listen 198.18.0.3:1883 --broker 198.18.0.2:1883 \
    --acl open --exclusive >"$TMP/proxy.log" 2>&1 </dev/null &
  PROXY_PID=$!
  if wait_up port_open 198.18.0.3; then
    if "$LAB" exec cli timeout 120 "$PY" tools/demo_burst.py run --host 198.18.0.3 --label proxy \
        --out "$TMP/proxy.json" "${BURST[@]}"; then
      results+=("$TMP/proxy.json")
    fi
  else
    echo "proxy: mqoff proxy did not start; its log:"
    sed 's/^/  /' "$TMP/proxy.log" | tail -20
  fi
  stop_mqoff proxy
else
  echo "proxy: not built yet"
fi

if [ -x "$MQOFF" ]; then
  # monitor: the kernel bridge lets go of its ports, mqoff forwards frames between them and
  # splices the MQTT connections; clients keep using the broker's own address
  "$LAB" broker-start >/dev/null
  ip -n demo-nic link set demonc nomaster
  ip -n demo-nic link set demonb nomaster
  ip netns exec demo-nic "$MQOFF" monitor --port-a demonc --port-b demonb \
    --broker 198.18.0.2:1883 --acl open --exclusive --startup-hold 0 >"$TMP/monitor.log" 2>&1 </dev/null &
  PROXY_PID=$!
  if wait_up port_open 198.18.0.2 && "$LAB" exec cli timeout 120 "$PY" tools/demo_burst.py run --host 198.18.0.2 \
      --label monitor --out "$TMP/monitor.json" "${BURST[@]}"; then
    results+=("$TMP/monitor.json")
  fi
  stop_mqoff monitor
  ip -n demo-nic link set demonc master br0 || true
  ip -n demo-nic link set demonb master br0 || true
else
  echo "monitor: not built yet"
fi

if [ -x "$MQOFF" ] && [ -f "$SHIM" ]; then
  # intercept: the broker keeps its listener line and runs with the shim, whose bind() waits for
  # mqoff; mqoff listens on the broker's own address beside it and hands each client over
  MOSQUITTO_PRELOAD=$(realpath "$SHIM") MQOFF_CHANNEL=$TMP/chan "$LAB" broker-start >/dev/null
  ip netns exec demo-brk "$MQOFF" intercept --listen 198.18.0.2:1883 --channel "$TMP/chan" \
    --acl open --exclusive >"$TMP/intercept.log" 2>&1 </dev/null &
  PROXY_PID=$!
  up=0
  wait_up grep -q 'attached: clients on' "$TMP/intercept.log" && up=1
  if [ "$up" -eq 1 ] && "$LAB" exec cli timeout 120 "$PY" tools/demo_burst.py run --host 198.18.0.2 \
      --label intercept --out "$TMP/intercept.json" "${BURST[@]}"; then
    results+=("$TMP/intercept.json")
  elif [ "$up" -ne 1 ]; then
    echo "intercept: the broker did not attach; mqoff's log:"
    sed 's/^/  /' "$TMP/intercept.log" | tail -20
  fi
  stop_mqoff intercept
else
  echo "intercept: not built yet"
fi

"$PY" tools/demo_burst.py report "${results[@]}"
echo
echo "(client-side figures: all clients and the broker share this machine's cores; 'make bench'"
echo " measures longer runs, wire-level times and ratios: docs/BENCHMARKS.md)"
