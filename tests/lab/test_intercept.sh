#!/usr/bin/env bash
# intercept mode's own cases (the shared ones run with LAB_TARGETS' intercept target): mqoff and
# the broker (with libmqoff-intercept.so) side by side in the brk namespace, the broker's
# listener 198.18.0.2:1883 served by mqoff, its second listener 198.18.0.2:1884 its own.
#
#   order            mqoff first: clients refused (CONNACK server unavailable) until the broker
#                    attaches, then served (the other order is every target_up's)
#   addresses        the broker's log shows the real client address and port; its
#                    setsockopt(TCP_NODELAY) (set_tcp_nodelay true) succeeds on what it accepts
#   second listener  the broker's own listener works, also while mqoff is down
#   bad peer         garbage on the channel is refused, mqoff serves on
#   mqoff restart    its clients are closed, the broker's own stay; the broker attaches again
#   broker restart   its clients are closed, new ones refused, the next broker attaches
#   channel loss     a stopped broker is detached after 5 heartbeats (new clients refused), its
#                    connections live on, it attaches again when it resumes
#   descriptors      the broker, then mqoff, out of descriptors: some clients refused, none
#                    hanging, both processes back to the descriptors they had
#   flood            a client flooding a subscriber that never reads costs the others nothing;
#                    mqoff says it drops QoS 0 deliveries to the full queue
#   valgrind         the broker with the shim under valgrind (memcheck): no error, no leak
#   unprivileged     the broker dropping to the mosquitto user before it binds (Mosquitto's
#                    default when started as root) reaches a channel made in a setgid
#                    directory of its group, as README says
#   bridge           the broker's bridge (an outgoing connection to a name, localhost: a lookup
#                    and a connect of the broker process) works beside the shim; mqoff, given
#                    the broker's configuration, leaves the bridged topics to the broker and
#                    offloads the others
#   nic side         mqoff in the nic namespace on 198.18.0.3 (as a DPU would be, and as make
#                    bench runs it), the broker's listener for that address (which its namespace
#                    does not have) served over the channel across the namespaces
# Every process and file it makes is gone at the end (lib.sh's trap).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BPORT2=1884

icpt_py() { # NAME CASE [ARGS...]: intercept.py CASE in the cli namespace
  local name=$1 c=$2
  shift 2
  run_py "$name" 60 intercept.py "$c" --host "$BROKER_ADDR" --target intercept --label "$name" "$@"
}

broker_pid() { cat "/run/mqoff-lab/$MQO_LAB/broker.pid"; }
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# log_has NAME FILE REGEX [SECS]: ok when FILE has a line matching REGEX (within SECS, 5).
log_has() {
  local name=$1 f=$2 re=$3 secs=${4:-5} i
  for ((i = 0; i < secs * 10; i++)); do
    grep -qE "$re" "$f" 2>/dev/null && { ok "$name"; return 0; }
    sleep 0.1
  done
  not_ok "$name" "no line matching '$re' in $(basename "$f"): $(tail -2 "$f" | tr '\n' ' ')"
}

# fds_back NAME PID BEFORE: the process holds BEFORE descriptors again (within 5 s).
fds_back() {
  local name=$1 pid=$2 before=$3 n i
  for ((i = 0; i < 50; i++)); do
    n=$(nfds "$pid")
    [ "$n" -le "$before" ] && { ok "$name ($n)"; return 0; }
    sleep 0.1
  done
  not_ok "$name" "$n descriptors, $before before"
}

# wait_file F SECS
wait_file() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do [ -e "$1" ] && return 0; sleep 0.05; done
  return 1
}

mqoff_args=(--acl open --exclusive)

order_and_basics() {
  local extra=$LAB_TMP/extra.conf
  echo "listener $BPORT2 $BROKER_ADDR" >"$extra"
  BROKER_EXTRA=$extra
  # mqoff first
  intercept_mqoff "${mqoff_args[@]}"
  if ! wait_file "$CHANNEL" 10; then not_ok "order: mqoff creates its channel" "$(tail -2 "$PROXY_LOG")"; return 1; fi
  icpt_py "order: no broker yet" refused
  log_has "order: mqoff said why it refused" "$PROXY_LOG" "refused.*no broker attached"
  intercept_broker "$extra" || return 1
  if intercept_attached 1 10; then ok "order: the broker started second attaches"
  else not_ok "order: the broker started second attaches" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"; return 1
  fi
  icpt_py "order: then served" roundtrip
  log_has "order: the shim said which listener mqoff serves" "$BROKER_LOG" \
    "mqoff-intercept.*listener $BROKER_ADDR:$MQTT_PORT is served by mqoff"

  # the broker sees the client's own address and port
  icpt_py "addresses" fromport --bind-port 41883
  log_has "addresses: the broker logs the client's real address and port" "$BROKER_LOG" \
    "New connection from 198\.18\.0\.1:41883 on port $MQTT_PORT\."
  broker_log_lacks "addresses: no connection from mqoff's side of a socket" \
    "New connection from (198\.18\.0\.2|unix|127\.)"
  broker_log_lacks "TCP options: the broker's setsockopt(TCP_NODELAY) succeeds on its clients" \
    "Unable to set TCP_NODELAY"

  # the broker's second listener is its own
  icpt_py "second listener" roundtrip --port "$BPORT2"
  log_has "second listener: a real TCP client of the broker" "$BROKER_LOG" \
    "New connection from 198\.18\.0\.1:[0-9]+ on port $BPORT2\."

  # a channel peer that is no shim
  ip netns exec "$NS_BRK" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1]); s.send(b"GET / HTTP/1.0\r\n\r\n"); s.settimeout(5)
print("answer", s.recv(512)[:8]); print("closed", s.recv(512) == b"")' "$CHANNEL" \
    >"$LAB_TMP/badpeer.out" 2>&1
  if grep -q "closed True" "$LAB_TMP/badpeer.out"; then ok "bad peer: refused and closed"
  else not_ok "bad peer: refused and closed" "$(tr '\n' ' ' <"$LAB_TMP/badpeer.out")"
  fi
  log_has "bad peer: mqoff said so" "$PROXY_LOG" "channel peer pid [0-9]+ refused: malformed"
  icpt_py "bad peer: mqoff serves on" roundtrip
}

mqoff_restart() {
  local r=$LAB_TMP/restart hp sp
  rm -f "$r".*
  icpt_py "mqoff restart: its clients" hold --clients 5 --ready "$r.hold" --secs 15 &
  hp=$!
  run_py "mqoff restart: the broker's own clients" 60 intercept.py survive --host "$BROKER_ADDR" \
    --port "$BPORT2" --target intercept --label "mqoff restart: the broker's own clients" \
    --clients 5 --ready "$r.surv" --go "$r.go" --secs 40 &
  sp=$!
  wait_file "$r.hold" 15 && wait_file "$r.surv" 15
  proxy_stop
  if [ "$PROXY_RC" = 0 ] && grep -q published_in "$PROXY_LOG"; then ok "mqoff restart: mqoff stops on SIGTERM"
  else not_ok "mqoff restart: mqoff stops on SIGTERM" "exit status $PROXY_RC"
  fi
  wait "$hp"
  check "mqoff restart: the broker runs on" broker_alive
  log_has "mqoff restart: the shim says it lost mqoff" "$BROKER_LOG" "mqoff-intercept.*lost mqoff"
  icpt_py "mqoff restart: the second listener works meanwhile" roundtrip --port "$BPORT2"
  intercept_mqoff "${mqoff_args[@]}"
  if intercept_attached 1 10; then ok "mqoff restart: the broker attaches to the new mqoff"
  else not_ok "mqoff restart: the broker attaches to the new mqoff" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
  log_has "mqoff restart: the shim says it connected again" "$BROKER_LOG" \
    "mqoff-intercept.*connected to mqoff .* again"
  icpt_py "mqoff restart: clients served again" roundtrip
  touch "$r.go"
  wait "$sp"
}

broker_restart() {
  local r=$LAB_TMP/brestart hp before
  rm -f "$r".*
  before=$(nfds "$PROXY_PID")
  icpt_py "broker restart: its clients" hold --clients 5 --ready "$r.hold" --secs 15 &
  hp=$!
  wait_file "$r.hold" 15
  "$LAB_TOOL" broker-stop >/dev/null 2>&1
  wait "$hp"
  log_has "broker restart: mqoff says the broker detached" "$PROXY_LOG" "broker pid [0-9]+ detached"
  icpt_py "broker restart: no broker" refused
  check "broker restart: mqoff runs on" proxy_alive
  fds_back "broker restart: mqoff holds no descriptor of the dead broker's" "$PROXY_PID" "$before"
  intercept_broker "$BROKER_EXTRA" || return 1
  if intercept_attached 2 10; then ok "broker restart: the new broker attaches"
  else not_ok "broker restart: the new broker attaches" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
  icpt_py "broker restart: clients served again" roundtrip
}

channel_loss() {
  local r=$LAB_TMP/loss sp bp
  rm -f "$r".*
  run_py "channel loss: clients of the stopped broker" 60 intercept.py survive --host "$BROKER_ADDR" \
    --target intercept --label "channel loss: clients of the stopped broker" --clients 3 \
    --ready "$r.surv" --go "$r.go" --secs 40 &
  sp=$!
  wait_file "$r.surv" 15
  bp=$(broker_pid)
  kill -STOP "$bp"
  log_has "channel loss: mqoff detaches the silent broker" "$PROXY_LOG" "detached \(no heartbeat" 10
  icpt_py "channel loss: new clients refused meanwhile" refused
  kill -CONT "$bp"
  if intercept_attached 3 10; then ok "channel loss: the broker attaches again when it resumes"
  else not_ok "channel loss: the broker attaches again when it resumes" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
  fi
  touch "$r.go"
  wait "$sp"
  icpt_py "channel loss: new clients served" roundtrip
}

# exhaust WHO PID LIMIT MIN_OK LOG REGEX: WHO (the broker or mqoff) gets LIMIT descriptors
# while 80 clients connect at once; at least MIN_OK are served, none hangs, WHO's LOG says why
# the others were not, and once they are gone both processes hold what they held before.
exhaust() {
  local who=$1 pid=$2 limit=$3 min=$4 log=$5 re=$6 lim
  lim=$(prlimit --pid "$pid" --nofile --raw --noheadings --output SOFT,HARD | tr -s ' ' ':' | sed 's/^://')
  prlimit --pid "$pid" --nofile="$limit:$limit"
  icpt_py "descriptors: $who out of them" many --clients 80 --min-ok "$min" --secs 10
  log_has "descriptors: $who says so" "$log" "$re"
  fds_back "descriptors, $who out: the broker is back to its descriptors" "$BP" "$B0"
  fds_back "descriptors, $who out: so is mqoff" "$PROXY_PID" "$M0"
  prlimit --pid "$pid" --nofile="$lim"
  icpt_py "descriptors: $who serves again" roundtrip
}

descriptors() {
  BP=$(broker_pid)
  B0=$(nfds "$BP")
  M0=$(nfds "$PROXY_PID")
  echo "# descriptors: broker $B0, mqoff $M0"
  # Debian's Mosquitto checks tcpd (libwrap) after accept(): without a descriptor for
  # /etc/hosts.allow it denies the client; with none for accept() itself it says so
  exhaust broker "$BP" $((B0 + 30)) 20 "$BROKER_LOG" \
    "(system socket count has been exceeded|denied access by tcpd)"
  exhaust mqoff "$PROXY_PID" $((M0 + 40)) 10 "$PROXY_LOG" \
    "(cannot accept more clients|mqoff has no descriptor left)"
}

flood() {
  icpt_py "flood" flood --secs 5
  check "flood: mqoff runs on" proxy_alive
  log_has "flood: mqoff says it drops QoS 0 deliveries to the full queue" "$PROXY_LOG" \
    "QoS 0 deliveries dropped: subscriber queues full"
  local rss
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PROXY_PID/status")
  if [ "${rss:-999999}" -lt 65536 ]; then ok "flood: mqoff's memory stays bounded (${rss} kB)"
  else not_ok "flood: mqoff's memory stays bounded" "VmRSS ${rss} kB"
  fi
}

under_valgrind() {
  local vg=$LAB_TMP/valgrind.log
  if ! command -v valgrind >/dev/null; then
    skip "valgrind: the broker with the shim" "valgrind not installed"
    return
  fi
  BROKER_EXTRA=$LAB_TMP/extra.conf MOSQUITTO_VALGRIND=$vg intercept_start "${mqoff_args[@]}" ||
    return
  if readlink "/proc/$(broker_pid)/exe" | grep -q memcheck; then ok "valgrind: the broker runs under memcheck"
  else not_ok "valgrind: the broker runs under memcheck" "its executable: $(readlink "/proc/$(broker_pid)/exe")"
  fi
  icpt_py "valgrind: served" roundtrip --msgs 50
  fanout_py intercept --subs 10 --msgs 50 --qos 1 --name "valgrind: fan-out"
  icpt_py "valgrind: clients at once" many --clients 20 --min-ok 20 --secs 10
  proxy_stop
  intercept_mqoff "${mqoff_args[@]}"
  intercept_attached 1 20 || not_ok "valgrind: attached again" "$(tail -2 "$PROXY_LOG")"
  icpt_py "valgrind: served after mqoff's restart" roundtrip
  "$LAB_TOOL" broker-stop >/dev/null 2>&1
  # the summary is written when the broker exits (definite leaks count as errors)
  if grep -q "ERROR SUMMARY: 0 errors" "$vg" 2>/dev/null; then
    ok "valgrind: no error, no leak in the broker with the shim"
  else
    not_ok "valgrind: no error, no leak in the broker with the shim" \
      "$(grep -E '^==[0-9]+== (Invalid|Conditional|Syscall|[0-9,]+ bytes|ERROR SUMMARY)' "$vg" 2>/dev/null | head -5 | tr '\n' ' ')"
  fi
  target_down intercept
}

nic_side() {
  ICPT_SIDE=nic intercept_start "${mqoff_args[@]}" || return
  ok "nic side: the broker attaches across the namespaces"
  icpt_py "nic side: served" roundtrip --host "$PROXY_ADDR"
  icpt_py "nic side: addresses" fromport --host "$PROXY_ADDR" --bind-port 41884
  log_has "nic side: the broker logs the client's address" "$BROKER_LOG" \
    "New connection from 198\.18\.0\.1:41884 on port $MQTT_PORT\."
  icpt_py "nic side: the broker's own listener" roundtrip --host "$BROKER_ADDR"
  target_down intercept
}

unprivileged() {
  local d=$LAB_TMP/run extra=$LAB_TMP/user.conf who
  if ! getent group mosquitto >/dev/null || ! getent passwd mosquitto >/dev/null; then
    skip "unprivileged broker" "no mosquitto user and group"
    return
  fi
  install -d -o root -g mosquitto -m 2770 "$d"
  echo "user mosquitto" >"$extra"
  "$LAB_TOOL" broker-stop >/dev/null 2>&1 # the last one holds 198.18.0.2:1883 for real
  ICPT_CHANNEL=$d/chan intercept_mqoff "${mqoff_args[@]}"
  wait_file "$CHANNEL" 10
  if [ "$(stat -c '%G %a' "$CHANNEL" 2>/dev/null)" = "mosquitto 660" ]; then
    ok "unprivileged: the channel belongs to the broker's group, mode 660"
  else not_ok "unprivileged: the channel belongs to the broker's group, mode 660" "$(stat -c '%U:%G %a' "$CHANNEL" 2>&1)"
  fi
  intercept_broker "$extra" || return
  if intercept_attached 1 10; then ok "unprivileged: the broker attaches"
  else not_ok "unprivileged: the broker attaches" "$(tail -2 "$BROKER_LOG" | tr '\n' ' ')"
  fi
  who=$(ps -o user= -p "$(broker_pid)")
  if [ "$who" = mosquitto ]; then ok "unprivileged: the broker runs as mosquitto"
  else not_ok "unprivileged: the broker runs as mosquitto" "it runs as '$who'"
  fi
  icpt_py "unprivileged: served" roundtrip
  target_down intercept
}

# bridge: the broker bridges to its own third listener, 127.0.0.1:1885, by the name localhost
bridge() {
  local extra=$LAB_TMP/bridge.conf
  printf '%s\n' "listener $BPORT2 $BROKER_ADDR" "listener 1885 127.0.0.1" "connection selfbridge" \
    "address localhost:1885" "topic b/# out 1 local/ remote/" >"$extra"
  BROKER_EXTRA=$extra intercept_start --mosquitto-conf @BROKER_CONF@ --exclusive || return
  log_has "bridge: the broker's bridge connects (its own lookup and connect)" "$BROKER_LOG" \
    "New connection from 127\.0\.0\.1:[0-9]+ on port 1885\." 10
  icpt_py "bridge: bridged topics" bridged
  icpt_py "bridge: other topics" roundtrip
  target_down intercept
  local bo pt n
  # the first bridged PUBLISH is broker_only, the rest of them may count as ordering (their
  # predecessor is still in the broker): every one passed through, some as broker_only
  bo=$(sed -nE 's/.*passthrough broker_only +([0-9]+).*/\1/p' "$PROXY_LOG" | tail -1)
  pt=$(proxy_counter passthrough)
  if [ "${pt:-0}" -eq 20 ] && [ "${bo:-0}" -ge 1 ]; then
    ok "bridge: mqoff left the bridged topics to the broker (passthrough $pt, broker_only $bo)"
  else not_ok "bridge: mqoff left the bridged topics to the broker" "passthrough ${pt:-absent}, broker_only ${bo:-absent}"
  fi
  n=$(proxy_counter consumed)
  if [ "${n:-0}" -ge 20 ]; then ok "bridge: mqoff offloaded the others (consumed $n)"
  else not_ok "bridge: mqoff offloaded the others" "consumed=${n:-absent}"
  fi
}

lab_init
if ! target_built intercept; then
  skip "intercept: own cases" "build/mqoff or build/libmqoff-intercept.so not built yet"
  lab_finish
fi
echo "# --- $LAB_NAME: order, addresses, second listener, bad peer"
if order_and_basics; then
  echo "# --- $LAB_NAME: mqoff restart"
  mqoff_restart
  echo "# --- $LAB_NAME: broker restart"
  broker_restart
  echo "# --- $LAB_NAME: channel loss"
  channel_loss
  echo "# --- $LAB_NAME: descriptors"
  descriptors
  echo "# --- $LAB_NAME: flood"
  flood
fi
target_down intercept
echo "# --- $LAB_NAME: valgrind"
under_valgrind
echo "# --- $LAB_NAME: nic side"
nic_side
echo "# --- $LAB_NAME: unprivileged broker"
unprivileged
echo "# --- $LAB_NAME: bridge"
bridge
lab_finish
