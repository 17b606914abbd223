#!/bin/sh
# Lays out pdagent's installed files under DESTDIR; build-deb.sh and the rpm
# spec's %install both call it, so the two packages ship the same files.
#
#   packaging/stage.sh DESTDIR PYTHON_DIR UNIT_DIR INIT_DIR
#
# PYTHON_DIR: where the pdagent package goes (Debian: /usr/lib/python3/dist-packages,
# RPM: the python3 sitelib). UNIT_DIR: the systemd system unit directory.
# INIT_DIR: the SysV init script directory. Only the *.py files of pdagent/
# are copied: no __pycache__ (the package's postinst byte-compiles).
set -eu

if [ "$#" -ne 4 ]; then
    echo "usage: $0 DESTDIR PYTHON_DIR UNIT_DIR INIT_DIR" >&2
    exit 2
fi
DESTDIR=$1
PYTHON_DIR=$2
UNIT_DIR=$3
INIT_DIR=$4
SRC=$(cd "$(dirname "$0")/.." && pwd)

# The commands: name and the module whose main() it runs.
COMMANDS="pd-send:pdagent.cli.pd_send
pd-queue:pdagent.cli.pd_queue
pdagentd:pdagent.cli.pdagentd
pd-nagios:pdagent.integrations.nagios
pd-zabbix:pdagent.integrations.zabbix
pd-sensu:pdagent.integrations.sensu"

# /var/lib/pdagent is the package's, empty: the package scripts make what is in it.
install -d -m 0755 "$DESTDIR/usr/bin" "$DESTDIR/etc" "$DESTDIR$PYTHON_DIR" \
    "$DESTDIR$UNIT_DIR" "$DESTDIR$INIT_DIR" "$DESTDIR/usr/share/pdagent/scripts" "$DESTDIR/var/lib/pdagent"

# The python package, sorted so the archive is the same on every build.
(cd "$SRC" && find pdagent -name __pycache__ -prune -o -type f -name '*.py' -print | LC_ALL=C sort) |
while IFS= read -r file; do
    install -D -m 0644 "$SRC/$file" "$DESTDIR$PYTHON_DIR/$file"
done
find "$DESTDIR$PYTHON_DIR/pdagent" -type d -exec chmod 0755 {} +

# Launchers. -s: a user's ~/.local site-packages must not shadow the system's.
# Nothing but the command's own module is imported: pd-send's start-up is timed.
echo "$COMMANDS" | while IFS=: read -r name module; do
    cat > "$DESTDIR/usr/bin/$name" <<EOF
#!/usr/bin/python3 -s
import sys

from $module import main

sys.exit(main())
EOF
    chmod 0755 "$DESTDIR/usr/bin/$name"
done

install -m 0644 "$SRC/conf/pdagent.conf" "$DESTDIR/etc/pdagent.conf"
install -m 0755 "$SRC/packaging/pdagent.init" "$DESTDIR$INIT_DIR/pdagent"
install -m 0644 "$SRC/packaging/pdagent.service" "$DESTDIR$UNIT_DIR/pdagent.service"
# The sources of the copies in /var/lib/pdagent/scripts, where the Agent guide
# tells users to take the unit from: the package scripts make those copies
# (pdagent/layout.py's COPIES, same modes). Shipped there, dpkg and rpm would
# write them through a link the pdagent account put at scripts/.
install -m 0644 "$SRC/packaging/pdagent.service" "$DESTDIR/usr/share/pdagent/scripts/pdagent.service"
install -m 0755 "$SRC/packaging/pdagent.init" "$DESTDIR/usr/share/pdagent/scripts/pdagent.init"
