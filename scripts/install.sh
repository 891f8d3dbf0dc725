#!/usr/bin/env bash
# Installs what `make` built (make install): mqoff and its tools, the intercept shim and the
# broker plugin when they were built, the man pages, the systemd unit and the example
# configuration. Variables (make passes them): B (build dir), DESTDIR, PREFIX, BINDIR,
# SBINDIR, LIBDIR, MANDIR, SYSCONFDIR, UNITDIR, DOCDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${B:=build}" "${DESTDIR:=}" "${PREFIX:=/usr/local}"
: "${BINDIR:=$PREFIX/bin}" "${SBINDIR:=$PREFIX/sbin}" "${LIBDIR:=$PREFIX/lib/mqoff}"
: "${MANDIR:=$PREFIX/share/man}" "${UNITDIR:=$PREFIX/lib/systemd/system}"
: "${DOCDIR:=$PREFIX/share/doc/mqoff}"
if [ -z "${SYSCONFDIR:-}" ]; then
  case "$PREFIX" in /usr) SYSCONFDIR=/etc ;; *) SYSCONFDIR=$PREFIX/etc ;; esac
fi
D=$DESTDIR

# a program and its man page: sbin/section 8 for what runs as a service or needs privileges
put() { # put FILE DIR MODE
  [ -f "$1" ] || return 0
  install -d "$D$2"
  install -m "$3" "$1" "$D$2/"
}
put "$B/mqoff" "$SBINDIR" 755
put "$B/mqoffctl" "$SBINDIR" 755
put "$B/mqoff-mosqconf" "$BINDIR" 755
# loaded by the broker (mosquitto.conf "plugin", LD_PRELOAD), not linked against
put "$B/libmqoff-intercept.so" "$LIBDIR" 644
put "$B/mqoff_mosquitto.so" "$LIBDIR" 644
for m in docs/man/*.[1-8]; do
  prog=$(basename "${m%.*}")
  # a page for a program this build did not make is not installed
  [ -f "$B/$prog" ] || continue
  sec=${m##*.}
  install -d "$D$MANDIR/man$sec"
  gzip -9n -c "$m" > "$D$MANDIR/man$sec/$(basename "$m").gz"
  chmod 644 "$D$MANDIR/man$sec/$(basename "$m").gz"
done
install -d "$D$UNITDIR"
sed -e "s|@SBINDIR@|$SBINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" "dist/mqoff@.service.in" \
  > "$D$UNITDIR/mqoff@.service"
chmod 644 "$D$UNITDIR/mqoff@.service"
install -d "$D$SYSCONFDIR/mqoff"
# an edited configuration is kept (the package manager handles its own copy as a conffile)
if [ -n "$D" ] || [ ! -e "$SYSCONFDIR/mqoff/mqoff.conf" ]; then
  install -m 644 dist/mqoff.conf "$D$SYSCONFDIR/mqoff/mqoff.conf"
fi
install -d "$D$DOCDIR/examples"
install -m 644 dist/monitor-before-mosquitto.conf dist/mqoff.conf "$D$DOCDIR/examples/"
echo "installed under ${D:-/}: $SBINDIR/mqoff, $UNITDIR/mqoff@.service, $SYSCONFDIR/mqoff/mqoff.conf"
