#!/usr/bin/env bash
# mqoff as a service: its configuration file, SIGHUP, logs, man pages, make install, the
# systemd unit and the Debian package.
#
#   man pages       every page of docs/man passes `man --warnings`; mqoff(8) names every long
#                   option of src/main.c (an option added without its documentation fails)
#   config errors   an unknown key, a bad value, a mode mismatch: one line with file:line, exit 2
#   install         make install DESTDIR=... PREFIX=/usr puts each file where it belongs;
#                   installed under a scratch PREFIX, the unit passes `systemd-analyze verify`
#                   with no word (a broken copy of it does not: the check can fail)
#   package         make deb (debhelper), lintian without error or warning, installed into a
#                   scratch root with dpkg and removed again
#   lab             mqoff proxy with -c FILE: the command line replaces the file's listen; a
#                   SIGHUP with broker-only added applies it (the next messages go to the
#                   broker, the subscriber gets all, in order) and says max-queue was ignored; a
#                   file with an error changes nothing and says its line; `mqoff -c FILE` takes
#                   the mode from the file; an event names the client by id and address; a flood
#                   of events is limited and says how many it dropped; --log syslog writes to
#                   /dev/log (a listener of the test's own in a private mount namespace)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

cd "$LAB_ROOT" || exit 1
lab_init
SVC=$LAB_TMP/svc
mkdir -p "$SVC"

# ---- man pages --------------------------------------------------------------------------
for page in docs/man/*.[1-8]; do
  out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
  if [ -z "$out" ]; then ok "man --warnings $(basename "$page")"
  else not_ok "man --warnings $(basename "$page")" "$(printf '%s' "$out" | head -2 | tr '\n' ' ')"
  fi
done
missing=
for o in $(grep -hoE '\{"[a-z0-9-]+", (no|required|optional)_argument' src/main.c | cut -d'"' -f2 | sort -u); do
  [ "$o" = help ] && continue
  sed 's/\\-/-/g; s/\\f[BIRP]//g' docs/man/mqoff.8 | grep -qE -- "--$o([^a-z0-9-]|$)" || missing="$missing $o"
done
if [ -z "$missing" ]; then ok "mqoff(8) documents every long option of src/main.c"
else not_ok "mqoff(8) documents every long option of src/main.c" "missing:$missing"
fi

# ---- configuration errors ---------------------------------------------------------------
cfg_err() { # NAME WANT FILE-TEXT ARGS...: stderr is exactly WANT (@F@: the file), exit 2
  local name=$1 want=$2 text=$3 f=$SVC/e.conf out rc
  shift 3
  printf '%b' "$text" >"$f"
  out=$("$MQOFF" "$@" -c "$f" 2>&1 >/dev/null); rc=$?
  want=${want//@F@/$f}
  if [ "$rc" = 2 ] && [ "$out" = "$want" ]; then ok "config: $name"
  else not_ok "config: $name" "exit $rc, said '$out', want '$want'"
  fi
}
cfg_err "unknown key" "mqoff: @F@:3: unknown option 'bogus'" \
  '# c\nlisten 127.0.0.1:1\nbogus 1\n' proxy
cfg_err "bad value" "mqoff: @F@:2: --max-queue takes 4096..17179869184, not '12'" \
  'listen 127.0.0.1:1\nmax-queue 12\nbroker 127.0.0.1:2\n' proxy
cfg_err "value to a flag" "mqoff: @F@:1: 'exclusive' takes no value (got 'yes')" \
  'exclusive yes\n' proxy
cfg_err "monitor option in a proxy file" "mqoff: @F@:2: --port-a is not an option of proxy mode (see mqoff proxy --help)" \
  'listen 127.0.0.1:1\nport-a eth0\n' proxy
cfg_err "mode mismatch" "mqoff: @F@:1: the file is for monitor mode, not proxy" \
  'mode monitor\n' proxy
cfg_err "no mode anywhere" "mqoff: @F@: no 'mode' line: give the mode (mqoff MODE -c FILE)" \
  'listen 127.0.0.1:1\n'
cfg_err "command line error still plain" "mqoff: --max-queue takes 4096..17179869184, not '5'" \
  'listen 127.0.0.1:1\n' proxy --max-queue 5

# ---- make install -----------------------------------------------------------------------
if out=$(make -s install DESTDIR="$SVC/dest" PREFIX=/usr UNITDIR=/lib/systemd/system 2>&1); then
  bad=
  for f in usr/sbin/mqoff usr/sbin/mqoffctl usr/bin/mqoff-mosqconf usr/lib/mqoff/mqoff_mosquitto.so usr/lib/mqoff/libmqoff-intercept.so \
           usr/share/man/man8/mqoff.8.gz usr/share/man/man8/mqoffctl.8.gz \
           usr/share/man/man1/mqoff-mosqconf.1.gz lib/systemd/system/mqoff@.service \
           etc/mqoff/mqoff.conf usr/share/doc/mqoff/examples/monitor-before-mosquitto.conf; do
    [ -s "$SVC/dest/$f" ] || bad="$bad $f"
  done
  # every program installed has its man page
  for f in "$SVC"/dest/usr/bin/* "$SVC"/dest/usr/sbin/*; do
    ls "$SVC"/dest/usr/share/man/man[18]/"$(basename "$f")".[18].gz >/dev/null 2>&1 || bad="$bad man:$(basename "$f")"
  done
  grep -qx 'ExecStart=/usr/sbin/mqoff -c /etc/mqoff/%i.conf' "$SVC/dest/lib/systemd/system/mqoff@.service" ||
    bad="$bad ExecStart"
  if [ -z "$bad" ]; then ok "make install DESTDIR PREFIX=/usr: every file in place"
  else not_ok "make install DESTDIR PREFIX=/usr: every file in place" "missing:$bad"
  fi
  # the installed example configuration is one mqoff reads (its mode, no unknown key)
  out=$("$SVC/dest/usr/sbin/mqoff" -c "$SVC/dest/etc/mqoff/mqoff.conf" 2>&1)
  case "$out" in
    *"--broker ADDR:PORT is required"*) ok "the example configuration parses (only its addresses are left to fill in)" ;;
    *) not_ok "the example configuration parses (only its addresses are left to fill in)" "$out" ;;
  esac
else
  not_ok "make install DESTDIR PREFIX=/usr: every file in place" "$(printf '%s' "$out" | tail -1)"
fi
unit=$SVC/root/usr/lib/systemd/system/mqoff@.service
if make -s install PREFIX="$SVC/root/usr" >/dev/null 2>&1 && [ -f "$unit" ]; then
  out=$(MANPATH=$SVC/root/usr/share/man systemd-analyze verify "$unit" 2>&1); rc=$?
  if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify mqoff@.service: clean"
  else not_ok "systemd-analyze verify mqoff@.service: clean" "exit $rc: $(printf '%s' "$out" | head -3 | tr '\n' ' ')"
  fi
  mkdir -p "$SVC/broken"
  sed 's/^ProtectSystem=strict/ProtectSystem=strictt/' "$unit" >"$SVC/broken/mqoff@.service"
  out=$(MANPATH=$SVC/root/usr/share/man systemd-analyze verify "$SVC/broken/mqoff@.service" 2>&1)
  case "$out" in
    *ProtectSystem*|*"protect system"*) ok "systemd-analyze verify reports a broken copy of the unit" ;;
    *) not_ok "systemd-analyze verify reports a broken copy of the unit" "said '$out'" ;;
  esac
  for k in CapabilityBoundingSet=CAP_NET_RAW ProtectSystem=strict NoNewPrivileges=yes \
           ReloadPropagatedFrom=mosquitto.service DynamicUser=yes; do
    grep -q "^$k" "$unit" || not_ok "unit hardening" "no $k"
  done
  grep -qx 'Before=mosquitto.service' dist/monitor-before-mosquitto.conf &&
    ok "unit: hardening settings and reload with mosquitto.service; monitor drop-in orders before it"
else
  not_ok "systemd-analyze verify mqoff@.service: clean" "make install PREFIX=$SVC/root/usr failed"
fi

# ---- the Debian package -----------------------------------------------------------------
deb=
if out=$(make -s deb 2>&1) && deb=$(printf '%s\n' "$out" | grep '\.deb$' | tail -1) && [ -f "$deb" ]; then
  ok "make deb: $(basename "$deb")"
  if ! command -v lintian >/dev/null; then
    not_ok "lintian: no error or warning" "lintian missing (scripts/deps.sh installs it)"
  elif out=$(lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges'); [ -z "$out" ]; then
    ok "lintian: no error or warning"
  else
    not_ok "lintian: no error or warning" "$(printf '%s' "$out" | head -3 | tr '\n' ' ')"
  fi
  R=$SVC/scratch
  mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
  : >"$R/var/lib/dpkg/status"
  if out=$(dpkg --root="$R" --force-depends -i "$deb" 2>&1) &&
     dpkg --root="$R" -s mqoff 2>/dev/null | grep -q 'Status: install ok installed' &&
     [ "$("$R/usr/sbin/mqoff" --version)" = "mqoff 0.1.0" ] &&
     "$R/usr/sbin/mqoffctl" --help >/dev/null 2>&1 && [ -f "$R/usr/lib/mqoff/mqoff_mosquitto.so" ] &&
     [ -f "$R/lib/systemd/system/mqoff@.service" ] && [ -f "$R/etc/mqoff/mqoff.conf" ]; then
    ok "the package installs into a scratch root (dpkg --root), mqoff runs from it"
  else
    not_ok "the package installs into a scratch root (dpkg --root), mqoff runs from it" "$(printf '%s' "$out" | tail -2 | tr '\n' ' ')"
  fi
  if dpkg --root="$R" --purge mqoff >/dev/null 2>&1 && [ ! -e "$R/usr/sbin/mqoff" ] && [ ! -e "$R/etc/mqoff/mqoff.conf" ]; then
    ok "the package is purged again from the scratch root"
  else
    not_ok "the package is purged again from the scratch root" "files left"
  fi
else
  not_ok "make deb" "$(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
fi

# ---- in the lab -------------------------------------------------------------------------

sub_start() { # FILE ARGS...: mosquitto_sub in the cli namespace through mqoff proxy
  local f=$1
  shift
  ip netns exec "$NS_CLI" timeout 30 mosquitto_sub -h "$PROXY_ADDR" -p "$MQTT_PORT" "$@" >"$f" 2>&1 &
  SUB_PID=$!
  sleep 0.5
}
pub() { ip netns exec "$NS_CLI" timeout 10 mosquitto_pub -h "$PROXY_ADDR" -p "$MQTT_PORT" "$@"; }
wait_log() { # REGEX SECS: 0 once the proxy's log has a line matching REGEX
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    grep -qE "$1" "$PROXY_LOG" && return 0
    sleep 0.1
  done
  return 1
}
log_has() { # NAME REGEX
  if wait_log "$2" 5; then ok "$1"; else not_ok "$1" "no line like /$2/ in mqoff's log: $(tail -3 "$PROXY_LOG" | tr '\n' ' ')"; fi
}

CONF=$LAB_TMP/mqoff-proxy.conf
cat >"$CONF" <<EOF
# the command line gives --listen 198.18.0.3:1883 and --broker: they replace these
mode proxy
listen $PROXY_ADDR:1999
acl open
exclusive
max-queue 1048576
log-level info
EOF
if target_up proxy -c "$CONF"; then
  ok "config: the command line's --listen replaces the file's (mqoff listens on :$MQTT_PORT)"
  sub_start "$LAB_TMP/sub.out" -t 'svc/#' -q 1 -C 10 -F '%t %p'
  for i in 1 2 3 4 5; do pub -t svc/a -q 1 -m "m$i"; done
  sed -i 's/^max-queue .*/max-queue 2097152/' "$CONF"
  echo 'broker-only svc/#' >>"$CONF"
  kill -HUP "$PROXY_PID"
  log_has "SIGHUP: broker-only applied" "SIGHUP: .*read again: applied broker-only"
  log_has "SIGHUP: a change it cannot apply is named as ignored" "changed but ignored until mqoff restarts: max-queue"
  for i in 6 7 8 9 10; do pub -t svc/a -q 1 -m "m$i"; done
  wait "$SUB_PID"
  want=$(for i in $(seq 1 10); do echo "svc/a m$i"; done)
  if [ "$(cat "$LAB_TMP/sub.out")" = "$want" ]; then ok "subscriber got all 10 messages in order across the SIGHUP"
  else not_ok "subscriber got all 10 messages in order across the SIGHUP" "$(tr '\n' ' ' <"$LAB_TMP/sub.out")"
  fi
  printf 'bogus 1\n' >>"$CONF"
  kill -HUP "$PROXY_PID"
  log_has "SIGHUP: a file with an error changes nothing and names its line" \
    "SIGHUP: .*mqoff-proxy.conf:9: unknown option 'bogus': nothing changed"
  # the authorization source changes with the file: acl open -> the broker's acl_file
  printf 'topic readwrite #\n' >"$LAB_TMP/svc.acl"
  sed -i -e '/^bogus/d' -e "s|^acl open|acl-file $LAB_TMP/svc.acl|" "$CONF"
  kill -HUP "$PROXY_PID"
  log_has "SIGHUP: acl open -> acl-file applied" "SIGHUP: .*read again: applied acl-file, acl"
  log_has "SIGHUP: the new acl_file read as the broker's only version" \
    "SIGHUP: the broker reloaded $LAB_TMP/svc.acl \(1 rules\)"
  # an event about a client: the broker holds a session mqoff never saw
  ip netns exec "$NS_CLI" timeout 10 mosquitto_sub -h "$BROKER_ADDR" -p "$MQTT_PORT" -i svc-persist \
    -c -q 1 -t svc/p -W 1 >/dev/null 2>&1
  ip netns exec "$NS_CLI" timeout 10 mosquitto_sub -h "$PROXY_ADDR" -p "$MQTT_PORT" -i svc-persist \
    -c -q 1 -t svc/p -W 1 >/dev/null 2>&1
  log_has "log: an event names the client by id and address" \
    "client 'svc-persist' from 198\.18\.0\.1:[0-9]+ resumed a broker session"
  target_down proxy
  c=$(proxy_counter broker_only)
  if [ "${c:-0}" = 5 ] && [ "$(proxy_counter consumed)" = 5 ]; then
    ok "offload before the SIGHUP, broker-only after it (consumed 5, broker_only 5)"
  else
    not_ok "offload before the SIGHUP, broker-only after it" "consumed $(proxy_counter consumed), broker_only ${c:-0}"
  fi
fi

# The unit's capabilities are enough: monitor mode as an unprivileged user (as DynamicUser)
# with only the unit's ambient capabilities splices and offloads.
caps=$(sed -n 's/^AmbientCapabilities=//p' dist/mqoff@.service.in | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,+/g; s/^/+/')
cat >"$LAB_TMP/mqoff-caps" <<EOF
#!/bin/sh
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,$caps \
  --ambient-caps=-all,$caps --bounding-set=-all,$caps "$MQOFF" "\$@"
EOF
chmod 755 "$LAB_TMP/mqoff-caps"
MQOFF_REAL=$MQOFF MQOFF=$LAB_TMP/mqoff-caps
if target_up monitor --acl open --exclusive; then
  ip netns exec "$NS_CLI" timeout 20 mosquitto_sub -h "$BROKER_ADDR" -t 'cap/#' -C 3 >"$LAB_TMP/cap.out" 2>&1 &
  SUB_PID=$!
  sleep 0.5
  for i in 1 2 3; do ip netns exec "$NS_CLI" timeout 10 mosquitto_pub -h "$BROKER_ADDR" -t cap/a -m "c$i"; done
  wait "$SUB_PID"
  target_down monitor
  if [ "$(tr '\n' ' ' <"$LAB_TMP/cap.out")" = "c1 c2 c3 " ] && [ "$(proxy_counter consumed)" = 3 ]; then
    ok "monitor mode runs as an unprivileged user with the unit's capabilities ($caps) and offloads"
  else
    not_ok "monitor mode runs as an unprivileged user with the unit's capabilities" "got '$(tr '\n' ' ' <"$LAB_TMP/cap.out")', consumed $(proxy_counter consumed)"
  fi
else
  monitor_restore
fi
MQOFF=$MQOFF_REAL

# mqoff -c FILE: the mode from the file; a flood of events (the broker unreachable: nothing
# listens on its port) is limited, and says how many it dropped
FILE2=$LAB_TMP/flood.conf
printf 'mode proxy\nlisten %s:1885\nbroker %s:1999\nacl open\n' "$PROXY_ADDR" "$BROKER_ADDR" >"$FILE2"
PROXY_LOG=$LAB_TMP/flood.log
ip netns exec "$NS_NIC" "$MQOFF" -c "$FILE2" >"$PROXY_LOG" 2>&1 </dev/null &
PROXY_PID=$!
if wait_port "$NS_CLI" "$PROXY_ADDR" 1885 10; then
  ok "mqoff -c FILE: the mode from the file's mode line"
  flood() {
    ip netns exec "$NS_CLI" "$PY" - "$PROXY_ADDR" "$1" <<'PY'
import socket, sys, time
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection((sys.argv[1], 1885), timeout=5)
    conns.append(s)
time.sleep(0.5)
PY
  }
  flood 60
  sleep 0.3
  n=$(grep -c 'broker unreachable for' "$PROXY_LOG")
  if [ "$n" -ge 20 ] && [ "$n" -le 22 ]; then ok "log: a flood of 60 events gives $n lines"
  else not_ok "log: a flood of 60 events is limited to about 20 lines" "$n lines"
  fi
  sleep 1
  flood 1
  if wait_log "broker unreachable for a client from 198\.18\.0\.1:[0-9]+.*\(([3-4][0-9]) more like this dropped" 3; then
    ok "log: the next line after a flood says how many were dropped"
  else
    not_ok "log: the next line after a flood says how many were dropped" "$(grep 'broker unreachable' "$PROXY_LOG" | tail -1)"
  fi
else
  not_ok "mqoff -c FILE: the mode from the file's mode line" "$(tail -3 "$PROXY_LOG" | tr '\n' ' ')"
fi
proxy_stop

# --log syslog: a private mount namespace gets a /dev of its own whose /dev/log is a listener
# of this test; mqoff logs there with its pid, facility daemon
SYSLOG_OUT=$LAB_TMP/syslog.out
cat >"$LAB_TMP/listen.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(3)
with open(sys.argv[1], "w") as out:
    try:
        while True:
            out.write(s.recv(4096).decode(errors="replace") + "\n")
            out.flush()
    except socket.timeout:
        pass
PY
cat >"$LAB_TMP/syslog_run.sh" <<'SH'
# in a mount namespace of its own: OUT PY MQOFF LISTEN BROKER
mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 || exit 1
"$2" "$(dirname "$1")/listen.py" "$1" &
l=$!
for i in $(seq 50); do [ -S /dev/log ] && break; sleep 0.05; done
"$3" proxy --listen "$4:1886" --broker "$5:1883" --acl open --log syslog &
m=$!
sleep 0.5
kill -HUP $m; sleep 0.3; kill -TERM $m; wait $m
echo "$m" >"$1.pid"
wait $l
SH
ip netns exec "$NS_NIC" unshare -m --propagation private bash "$LAB_TMP/syslog_run.sh" \
  "$SYSLOG_OUT" "$PY" "$MQOFF" "$PROXY_ADDR" "$BROKER_ADDR" >/dev/null 2>&1
mpid=$(cat "$SYSLOG_OUT.pid" 2>/dev/null)
if [ -n "$mpid" ] && grep -q "^<30>.*mqoff\[$mpid\]: authorization: open" "$SYSLOG_OUT" &&
   grep -q "mqoff\[$mpid\]: SIGHUP: no file to read again" "$SYSLOG_OUT"; then
  ok "--log syslog: lines reach /dev/log with mqoff's pid, facility daemon"
else
  not_ok "--log syslog: lines reach /dev/log with mqoff's pid, facility daemon" "got: $(head -3 "$SYSLOG_OUT" 2>/dev/null | tr '\n' ' ')"
fi

lab_finish
