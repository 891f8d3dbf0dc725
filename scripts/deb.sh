#!/usr/bin/env bash
# make deb: builds the Debian package with debhelper from a copy of the tree in build/deb/src
# (dpkg-buildpackage writes next to the source directory, so the packages land in build/deb/).
# Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in dpkg-buildpackage dh; do
  command -v "$t" >/dev/null || { echo "deb: $t missing (apt-get install debhelper dpkg-dev)" >&2; exit 1; }
done
out=build/deb
rm -rf "$out"
mkdir -p "$out/src"
tar --exclude=./build --exclude='./build-*' --exclude=./.git -cf - . | tar -C "$out/src" -xf -
(cd "$out/src" && dpkg-buildpackage -us -uc -b -j2 >../build.log 2>&1) || {
  tail -30 "$out/build.log" >&2
  exit 1
}
ls "$PWD/$out"/mqoff_*.deb
