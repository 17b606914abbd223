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

# The commands, one a line: the name (its man page is man/NAME.1), the module
# whose main() it runs, and the paths of its launchers. The .py names and the
# daemon's two in /usr/share/pdagent/bin are the original agent's: scripts call
# them, and the unit and the init script run the daemon as
# /usr/share/pdagent/bin/pdagentd.py, so that process checks matching
# "pdagentd.py" find it.
COMMANDS="pd-send pdagent.cli.pd_send /usr/bin/pd-send /usr/bin/pd-send.py
pd-queue pdagent.cli.pd_queue /usr/bin/pd-queue /usr/bin/pd-queue.py
pdagentd pdagent.cli.pdagentd /usr/bin/pdagentd /usr/share/pdagent/bin/pdagentd /usr/share/pdagent/bin/pdagentd.py
pd-listen pdagent.cli.pd_listen /usr/bin/pd-listen
pd-nagios pdagent.integrations.nagios /usr/bin/pd-nagios
pd-zabbix pdagent.integrations.zabbix /usr/bin/pd-zabbix
pd-sensu pdagent.integrations.sensu /usr/bin/pd-sensu"
MAN_DIR=/usr/share/man/man1
# The monitoring tools' example configs, where the man pages and the README point.
EXAMPLES_DIR=/usr/share/doc/pdagent/examples
EXAMPLES="nagios/pagerduty_nagios.cfg icinga2/pagerduty_icinga2.conf sensu/pagerduty_handler.json zabbix/README.md"

# /var/lib/pdagent is the package's, empty: the package scripts make what is in it.
install -d -m 0755 "$DESTDIR/usr/bin" "$DESTDIR/etc" "$DESTDIR$PYTHON_DIR" \
    "$DESTDIR$UNIT_DIR" "$DESTDIR$INIT_DIR" "$DESTDIR/usr/share/pdagent/scripts" "$DESTDIR/var/lib/pdagent" \
    "$DESTDIR/usr/share/pdagent/bin" "$DESTDIR$MAN_DIR"

# The python package, sorted so the archive is the same on every build.
(cd "$SRC" && find pdagent -name __pycache__ -prune -o -type f -name '*.py' -print | LC_ALL=C sort) |
while IFS= read -r file; do
    install -D -m 0644 "$SRC/$file" "$DESTDIR$PYTHON_DIR/$file"
done
find "$DESTDIR$PYTHON_DIR/pdagent" -type d -exec chmod 0755 {} +

# Launchers. -s: a user's ~/.local site-packages must not shadow the system's.
# Nothing but the command's own module is imported: pd-send's start-up is timed.
# Man pages compressed as Debian wants them (-n: no name or time inside, so
# every build is the same); a launcher of another name in /usr/bin gets a link
# to its command's page.
echo "$COMMANDS" | while read -r name module paths; do
    for path in $paths; do
        cat > "$DESTDIR$path" <<EOF
#!/usr/bin/python3 -s
import sys

from $module import main

sys.exit(main())
EOF
        chmod 0755 "$DESTDIR$path"
        case "$path" in
            /usr/bin/"$name") ;;
            /usr/bin/*) ln -s "$name.1.gz" "$DESTDIR$MAN_DIR/${path##*/}.1.gz" ;;
        esac
    done
    gzip -9n < "$SRC/man/$name.1" > "$DESTDIR$MAN_DIR/$name.1.gz"
    chmod 0644 "$DESTDIR$MAN_DIR/$name.1.gz"
done

install -m 0644 "$SRC/conf/pdagent.conf" "$DESTDIR/etc/pdagent.conf"
install -m 0755 "$SRC/packaging/pdagent.init" "$DESTDIR$INIT_DIR/pdagent"
install -m 0644 "$SRC/packaging/pdagent.service" "$DESTDIR$UNIT_DIR/pdagent.service"
# pd-listen's service: installed, never enabled by the packages (it opens a port).
install -m 0755 "$SRC/packaging/pdagent-listen.init" "$DESTDIR$INIT_DIR/pdagent-listen"
install -m 0644 "$SRC/packaging/pdagent-listen.service" "$DESTDIR$UNIT_DIR/pdagent-listen.service"
# The sources of the copies in /var/lib/pdagent/scripts, where the Agent guide
# tells users to take the unit from: the package scripts make those copies
# (pdagent/layout.py's COPIES, same modes). Shipped there, dpkg and rpm would
# write them through a link the pdagent account put at scripts/.
install -m 0644 "$SRC/packaging/pdagent.service" "$DESTDIR/usr/share/pdagent/scripts/pdagent.service"
install -m 0755 "$SRC/packaging/pdagent.init" "$DESTDIR/usr/share/pdagent/scripts/pdagent.init"

for example in $EXAMPLES; do
    install -D -m 0644 "$SRC/conf/$example" "$DESTDIR$EXAMPLES_DIR/$example"
done
find "$DESTDIR$EXAMPLES_DIR" -type d -exec chmod 0755 {} +
