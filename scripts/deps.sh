#!/usr/bin/env bash
# Installs every Debian package mqoff needs for building, testing and the demo.
# Idempotent: does nothing when everything is present. Needs root (or sudo) only to install.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev   # compiler, libFuzzer, sanitizers
  libcmocka-dev                                          # unit-test framework
  liburing-dev                                           # batched I/O (proxy mode)
  mosquitto mosquitto-clients mosquitto-dev libmosquitto-dev   # reference broker, clients, plugin API
  libcjson-dev libmicrohttpd-dev                         # control protocol, metrics endpoint
  python3-paho-mqtt                                      # scripted clients in lab tests
  prometheus                                             # scrapes the metrics endpoint (lab)
  iproute2 nftables ethtool procps                       # the lab: namespaces, veths, loss
  dpdk-dev libxdp-dev libbpf-dev                         # monitor mode's DPDK and AF_XDP I/O
  liblwip-dev                                            # proxy mode's --stack lwip
  debhelper dpkg-dev lintian man-db systemd              # make deb, its checks, man pages, units
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts the packaged broker as a service; the project runs its own instances only.
# So does its Prometheus server.
for svc in mosquitto prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
