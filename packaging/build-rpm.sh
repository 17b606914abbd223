#!/bin/sh
# Builds dist/pdagent-<version>-<release>.<target>.noarch.rpm from this checkout with
# rpmbuild (Debian's `rpm` package works), offline, for one target:
#
#   packaging/build-rpm.sh                            # RHEL/Rocky/Alma 9 (el9)
#   PDAGENT_RPM_TARGET=el8 packaging/build-rpm.sh     # RHEL/Rocky/Alma 8
#
# Environment (all optional):
#   PDAGENT_RPM_TARGET          el9 (default) or el8: the rpm's dist tag (%{dist}, .el9) and %{rhel},
#                               which choose its python: el9 python3 3.9, el8 python3.6
#                               (packaging/README.md says why)
#   PDAGENT_RPM_VERSION         package version (default: __version__ in pdagent/__init__.py)
#   PDAGENT_RPM_RELEASE         release, before the dist tag (default: 1)
#   PDAGENT_RPM_PYTHON_SITELIB  where the python package goes on the target (default: the
#                               target's, /usr/lib/python3.9/site-packages or
#                               /usr/lib/python3.6/site-packages; the rpm then requires
#                               python(abi) = 3.9 or 3.6)
#   PDAGENT_DIST_DIR            where the .rpm goes (default: dist/ in the checkout)
#   SOURCE_DATE_EPOCH           build time recorded in the rpm (default: the last commit's)
# Prints the path of the .rpm it wrote.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${PDAGENT_RPM_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/pdagent/__init__.py")}
if [ -z "$VERSION" ]; then
    echo "build-rpm.sh: no __version__ in pdagent/__init__.py" >&2
    exit 1
fi
case "$VERSION" in
    *-*) echo "build-rpm.sh: an rpm version cannot contain '-': $VERSION" >&2; exit 1 ;;
esac
TARGET=${PDAGENT_RPM_TARGET:-el9}
case "$TARGET" in
    el9) DEFAULT_SITELIB=/usr/lib/python3.9/site-packages ;;
    el8) DEFAULT_SITELIB=/usr/lib/python3.6/site-packages ;;
    *) echo "build-rpm.sh: PDAGENT_RPM_TARGET must be el8 or el9, not '$TARGET'" >&2; exit 1 ;;
esac
RELEASE=${PDAGENT_RPM_RELEASE:-1}
SITELIB=${PDAGENT_RPM_PYTHON_SITELIB:-$DEFAULT_SITELIB}
PYTHON_ABI=$(echo "$SITELIB" | sed -n 's#^.*/python\([0-9][0-9]*\.[0-9][0-9]*\)/site-packages/*$#\1#p')
OUT=${PDAGENT_DIST_DIR:-$ROOT/dist}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

command -v rpmbuild >/dev/null || { echo "build-rpm.sh: rpmbuild is missing (apt-get install rpm)" >&2; exit 1; }

umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdagent-rpm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$WORK/SOURCES" "$WORK/BUILD" "$WORK/RPMS" "$WORK/SRPMS" "$WORK/SPECS" "$WORK/tree"

# The source tarball: what stage.sh needs, nothing else.
SRC=$WORK/tree/pdagent-$VERSION
mkdir -p "$SRC/packaging"
(cd "$ROOT" && find pdagent -name __pycache__ -prune -o -type f -name '*.py' -print) |
while IFS= read -r file; do
    install -D -m 0644 "$ROOT/$file" "$SRC/$file"
done
cp -R "$ROOT/conf" "$SRC/"
cp -R "$ROOT/man" "$SRC/"
cp "$ROOT/packaging/stage.sh" "$ROOT/packaging/pdagent.service" "$ROOT/packaging/pdagent.init" \
    "$ROOT/packaging/pdagent-listen.service" "$ROOT/packaging/pdagent-listen.init" \
    "$ROOT/packaging/copyright" "$SRC/packaging/"
if [ -f "$ROOT/README.md" ]; then
    cp "$ROOT/README.md" "$SRC/"
else
    echo "pdagent $VERSION" > "$SRC/README.md"
fi
tar -C "$WORK/tree" --owner=0 --group=0 -czf "$WORK/SOURCES/pdagent-$VERSION.tar.gz" "pdagent-$VERSION"
cp "$ROOT/packaging/deb/unit-proxy.sh" "$ROOT/packaging/deb/old-copies.sh" "$WORK/SOURCES/"

# --nodeps: the build host is not an rpm system (its rpm database is empty).
# Off RHEL there is no python3-rpm-macros, nor %{rhel} and %{dist}: they come from here.
rpmbuild -bb --nodeps --quiet \
    --define "_topdir $WORK" \
    --define "pdagent_version $VERSION" \
    --define "pdagent_release $RELEASE" \
    --define "rhel ${TARGET#el}" \
    --define "dist .$TARGET" \
    --define "python3_sitelib $SITELIB" \
    ${PYTHON_ABI:+--define "python3_version $PYTHON_ABI"} \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    "$ROOT/packaging/pdagent.spec" >"$WORK/rpmbuild.log" 2>&1 || {
        cat "$WORK/rpmbuild.log" >&2
        exit 1
    }

mkdir -p "$OUT"
RPM=$OUT/pdagent-$VERSION-$RELEASE.$TARGET.noarch.rpm
cp "$WORK/RPMS/noarch/pdagent-$VERSION-$RELEASE.$TARGET.noarch.rpm" "$RPM"
echo "$RPM"
