#!/bin/sh
# Builds dist/pdagent_<version>_all.deb from this checkout: offline, without
# debhelper, by staging the installed tree and running dpkg-deb on it.
#
#   packaging/build-deb.sh
#
# Environment (all optional):
#   PDAGENT_DEB_VERSION  package version (default: __version__ in pdagent/__init__.py)
#   PDAGENT_DIST_DIR     where the .deb goes (default: dist/ in the checkout)
#   PDAGENT_MAINTAINER   the Maintainer field
#   SOURCE_DATE_EPOCH    timestamp of the changelog and of the archive members
#                        (default: the last commit's, else now)
# Prints the path of the .deb it wrote.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACKAGING=$ROOT/packaging
VERSION=${PDAGENT_DEB_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/pdagent/__init__.py")}
if [ -z "$VERSION" ]; then
    echo "build-deb.sh: no __version__ in pdagent/__init__.py" >&2
    exit 1
fi
OUT=${PDAGENT_DIST_DIR:-$ROOT/dist}
MAINTAINER=${PDAGENT_MAINTAINER:-pdagent maintainers <maintainers@pdagent.example.org>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

for tool in dpkg-deb gzip md5sum; do
    command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is missing" >&2; exit 1; }
done

umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdagent-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
STAGE=$WORK/pdagent
mkdir -m 0755 "$STAGE"

sh "$PACKAGING/stage.sh" "$STAGE" /usr/lib/python3/dist-packages /lib/systemd/system /etc/init.d

# Documentation, as Debian policy wants it.
DOC=$STAGE/usr/share/doc/pdagent
install -d -m 0755 "$DOC"
install -m 0644 "$PACKAGING/copyright" "$DOC/copyright"
if [ -f "$ROOT/README.md" ]; then
    install -m 0644 "$ROOT/README.md" "$DOC/README.md"
fi
CHANGELOG_DATE=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
cat > "$WORK/changelog" <<EOF
pdagent ($VERSION) unstable; urgency=medium

  * pdagent $VERSION, built from the pdagent source tree; its git history
    has the changes.

 -- $MAINTAINER  $CHANGELOG_DATE
EOF
gzip -9n < "$WORK/changelog" > "$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"
install -D -m 0644 "$PACKAGING/deb/lintian-overrides" "$STAGE/usr/share/lintian/overrides/pdagent"

# Control area.
CONTROL=$STAGE/DEBIAN
install -d -m 0755 "$CONTROL"
# The shared shell functions, each from its one home: the init script's
# process checks, the proxy-line and old-copies helpers (shared with the
# rpm), the rest.
sed -n '/^# --- shared with the Debian maintainer scripts/,/^# --- end of the part shared/p' \
    "$PACKAGING/pdagent.init" > "$WORK/functions.sh"
grep -q '^pdagent_daemon_pid()' "$WORK/functions.sh" || {
    echo "build-deb.sh: no shared part in packaging/pdagent.init" >&2; exit 1; }
cat "$PACKAGING/deb/unit-proxy.sh" "$PACKAGING/deb/old-copies.sh" "$PACKAGING/deb/functions.sh" \
    >> "$WORK/functions.sh"
for script in preinst postinst prerm postrm; do
    # Paste the shared functions in at the marker line.
    sed -e "/^#PDAGENT_FUNCTIONS#\$/{
r $WORK/functions.sh
d
}" "$PACKAGING/deb/$script" > "$CONTROL/$script"
    chmod 0755 "$CONTROL/$script"
done
printf '%s\n' /etc/init.d/pdagent /etc/init.d/pdagent-listen /etc/pdagent.conf > "$CONTROL/conffiles"
# A new default python3: the postinst byte-compiles for it.
echo "interest-noawait /usr/bin/python3" > "$CONTROL/triggers"
chmod 0644 "$CONTROL/conffiles" "$CONTROL/triggers"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print |
    sed 's#^\./##' | LC_ALL=C sort | xargs md5sum) > "$CONTROL/md5sums"
chmod 0644 "$CONTROL/md5sums"
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$CONTROL/control" <<EOF
Package: pdagent
Version: $VERSION
Architecture: all
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_SIZE
Depends: python3 (>= 3.8), python3-requests, python3-daemon, python3-lockfile, adduser
Provides: pdagent-integrations (= $VERSION)
Breaks: pdagent-integrations (<< 2)
Replaces: pdagent-integrations (<< 2)
Section: admin
Priority: optional
Description: PagerDuty Agent: queue monitoring events, deliver them to PagerDuty
 pd-send, and the Nagios, Zabbix and Sensu integrations (pd-nagios,
 pd-zabbix, pd-sensu), write each event to a local disk spool in
 milliseconds; the pdagentd daemon delivers the spool to the PagerDuty
 Events API v2, in order per integration key, with retries, back-off and
 throttling, through a proxy if needed. pd-queue shows and repairs the
 spool. pd-listen (the pdagent-listen service, installed but not enabled)
 is a local Events API: tools that POST to PagerDuty get the spool too.
 .
 This package replaces the original PagerDuty agent (pdagent 1.x and
 pdagent-integrations) and delivers the events left in its spool.
EOF
chmod 0644 "$CONTROL/control"

mkdir -p "$OUT"
DEB=$OUT/pdagent_${VERSION}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
