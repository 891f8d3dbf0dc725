#!/usr/bin/env bash
# mqoff's metrics endpoint (--metrics) scraped by Debian's Prometheus server.
#
# A Prometheus server runs in the nic namespace beside mqoff and scrapes 127.0.0.1:9464 every
# second (intercept: mqoff on the nic side, ICPT_SIDE=nic in lib.sh). For each mqoff target: mqoff-bench sends its load through mqoff; then Prometheus'
# query API must show up == 1, the offloaded-publish counter equal to what the bench sent,
# the delivery counter equal to what it received and the processing-time histogram counting
# every offloaded message; `promtool check metrics` must pass on the page, and mqoffctl stats
# must agree with it.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ICPT_SIDE=nic

BENCH=$LAB_ROOT/build/mqoff-bench
MQOFFCTL=$LAB_ROOT/build/mqoffctl
MADDR=127.0.0.1:9464 PROM=127.0.0.1:9090

prom_start() {
  mkdir -p "$LAB_TMP/prom"
  cat >"$LAB_TMP/prom/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mqoff
    static_configs:
      - targets: ['$MADDR']
CONF
  # exec'd in place: $! is the server's own PID (and the lab stops what runs in nic anyway)
  ip netns exec "$NS_NIC" prometheus --config.file="$LAB_TMP/prom/prometheus.yml" \
    --storage.tsdb.path="$LAB_TMP/prom/data" --web.listen-address="$PROM" \
    >"$LAB_TMP/prom/log" 2>&1 </dev/null &
  PROM_PID=$!
}

prom_stop() { [ -z "${PROM_PID:-}" ] || { kill -TERM "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null; }; }

# prom_query EXPR: the value of an instant query (empty when none), from the nic namespace.
prom_query() {
  ip netns exec "$NS_NIC" "$PY" - "$PROM" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
try:
    u = "http://%s/api/v1/query?query=%s" % (sys.argv[1], urllib.parse.quote(sys.argv[2]))
    r = json.load(urllib.request.urlopen(u, timeout=2))["data"]["result"]
    print(r[0]["value"][1] if r else "")
except Exception:
    print("")
PY
}

# prom_wait NAME EXPR WANT: ok once EXPR's value is WANT (scrapes every second), within 20 s.
prom_wait() {
  local i v
  for ((i = 0; i < 40; i++)); do
    v=$(prom_query "$2")
    [ "$v" = "$3" ] && { ok "$1 [$T]"; return 0; }
    sleep 0.5
  done
  not_ok "$1 [$T]" "$2 = '${v}', want $3"
}

T=
run() {
  T=$1
  is_offload "$T" || return 0
  target_up "$T" --acl open --exclusive --metrics "$MADDR" --control "$LAB_TMP/ctl.sock" ||
    return 0
  local out rc sent delivered
  # both wire taps: on the clients' veth, and (another namespace) on the nic's veth toward them
  out=$(ip netns exec "$NS_CLI" "$BENCH" --host "$(target_addr "$T")" --pubs 2 --subs 10 \
    --rate 100 --duration 2 --warmup 1 --quiet --tap "${MQO_LAB}c" --sender-tap "$NS_NIC:${MQO_LAB}nc" \
    --json "$LAB_TMP/bench.$T.json" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then ok "bench through mqoff: complete and clean [$T]"
  else not_ok "bench through mqoff: complete and clean [$T]" "exit $rc: $(echo "$out" | tail -2 | tr '\n' ' ')"
  fi
  # every measured message timed by both taps; a delivery leaves the nic before the client
  # receives it, and the PUBLISH reaches the nic after the client sent it: sent <= received
  check "bench wire taps: both time every message, sent <= received [$T]" "$PY" -c "
import json, sys
j = json.load(open('$LAB_TMP/bench.$T.json'))
w = j['windows'][0]; l = w['latency_ns']; t = j['totals']
s, r = l.get('wire_sent_last_subscriber'), l.get('wire_last_subscriber')
if not s or not r: sys.exit('a tap histogram is missing: %s' % sorted(l))
n = w['complete']
if not (s['count'] == r['count'] == n > 0): sys.exit('counts sent %d received %d messages %d' % (s['count'], r['count'], n))
bad = [p for p in ('p50', 'p99') if s[p] > r[p]]
if bad: sys.exit('sent > received at %s: %s' % (bad, [(s[p], r[p]) for p in bad]))
if t['tap_gaps'] or t['sender_tap_gaps']: sys.exit('stream gaps %d, %d' % (t['tap_gaps'], t['sender_tap_gaps']))
"
  read -r sent delivered < <("$PY" -c "import json; t=json.load(open('$LAB_TMP/bench.$T.json'))['totals']; print(t['sent'], t['delivered'])")
  echo "# bench: sent $sent, delivered $delivered"
  prom_wait "Prometheus scrapes mqoff: up = 1" 'up{job="mqoff"}' 1
  prom_wait "offloaded publishes = what the bench sent ($sent)" \
    'mqoff_publishes_offloaded_total{job="mqoff"}' "$sent"
  prom_wait "deliveries = what the bench received ($delivered)" \
    'sum(mqoff_deliveries_total{job="mqoff"})' "$delivered"
  prom_wait "processing-time histogram: one observation per offloaded publish" \
    'mqoff_publish_processing_seconds_count{job="mqoff",result="offloaded"}' "$sent"
  if [ "$T" = monitor ]; then
    # the bench's clients are gone: no connection holds state for data in transit
    prom_wait "splice: no flight state once the clients left" 'mqoff_tcp_flight_states{job="mqoff"}' 0
  fi
  ip netns exec "$NS_NIC" "$PY" -c "import urllib.request; print(urllib.request.urlopen('http://$MADDR/metrics').read().decode(), end='')" \
    >"$LAB_TMP/page.$T.txt" 2>&1
  out=$(promtool check metrics <"$LAB_TMP/page.$T.txt" 2>&1)
  if [ $? -eq 0 ] && [ -s "$LAB_TMP/page.$T.txt" ]; then ok "promtool check metrics passes on the page [$T]"
  else not_ok "promtool check metrics passes on the page [$T]" "$(echo "$out" | head -3 | tr '\n' ' ')"
  fi
  local v
  v=$("$MQOFFCTL" --control "$LAB_TMP/ctl.sock" stats | awk '$1 == "mqoff_publishes_offloaded_total" {print $2}')
  if [ "$v" = "$sent" ]; then ok "mqoffctl stats agrees ($v) [$T]"
  else not_ok "mqoffctl stats agrees [$T]" "mqoffctl: '$v', bench: $sent"
  fi
}

lab_init
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  not_ok "$LAB_NAME" "Debian's prometheus (with promtool) is not installed (make deps)"
  lab_finish
fi
prom_start
for_targets run
prom_stop
lab_finish
