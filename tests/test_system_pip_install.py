"""The README's install without a package, its commands run as written, under a real systemd.

The commands are taken from README.md's "Install without a package" section,
its ```sh blocks by name (install, systemd-start, sysv-start, check,
systemd-uninstall, sysv-uninstall, uninstall), so the README and this test
cannot drift apart. Each runs with `sh -e` as root in a Debian 11/12/13 tree
booted with systemd (scripts/systemd_tree.py, the trees of
test_system_systemd.py) on which no .deb of pdagent is installed: pip brings
pdagent from a copy of this checkout and its libraries from PyPI into
/opt/pdagent. The daemon delivers to a stand-in on the host's loopback.

- test_pip_install_under_systemd_then_sysv_init: install, the unit from where
  pip put it, an event from root and one from an ordinary user both
  delivered, `pd-queue check` OK, the spool's modes; uninstall, nothing left;
  then the same with the SysV init script (run by systemd's SysV
  compatibility, as on a Debian host booted with systemd) and its uninstall.

Run by `make test-system` (PDAGENT_SYSTEMD_TESTS=1), as root, with network
(the Debian mirror and PyPI).
"""

import os
import re
import stat
import subprocess

import pytest
from helpers import ROOT, wait_for
from test_system_systemd import (  # noqa: F401  (mirror: a fixture)
    RELEASES,
    USER,
    booted_debian,
    mirror,
    one_line,
    wait_summaries,
)
from test_system_systemd import pytestmark as needs_systemd_tests

KEY = "PipInstallKey0000000000000000001"
SOURCE_IN_TREE = "/srv/pdagent-source"
# The CAs this host's pip trusts, for pip in the tree: the way to PyPI may be through a
# TLS-inspecting gateway whose CA only this host's bundle has.
HOST_CA_BUNDLE = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
CA_BUNDLE_IN_TREE = "/srv/host-ca-certificates.crt"
# Everything the install without a package makes; the uninstall must leave none of it.
INSTALLED_PATHS = ["/opt/pdagent", "/usr/share/pdagent", "/etc/pdagent.conf", "/var/lib/pdagent",
                   "/var/log/pdagent", "/run/pdagent", "/etc/systemd/system/pdagent.service",
                   "/etc/systemd/system/multi-user.target.wants/pdagent.service", "/etc/init.d/pdagent",
                   *(f"/usr/local/bin/{name}" for name in ("pd-send", "pd-queue", "pdagentd", "pd-nagios",
                                                            "pd-zabbix", "pd-sensu"))]
SECTION = "## Install without a package"


def readme_blocks():
    """{name: the commands of the ```sh NAME block} of the README's section."""
    with open(os.path.join(ROOT, "README.md")) as readme:
        text = readme.read()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    return dict(re.findall(r"^```sh ([\w-]+)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL))


def test_the_readme_has_every_block():
    assert set(readme_blocks()) == {"install", "systemd-start", "sysv-start", "check", "systemd-uninstall",
                                    "sysv-uninstall", "uninstall"}


def copy_checkout(system):
    """The checkout's files, as git knows them, into the tree (what a clone would hold)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if not name:
            continue
        source, target = os.path.join(ROOT, name), system.booted.path(f"{SOURCE_IN_TREE}/{name}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            with open(source, "rb") as original, open(target, "wb") as copy:
                copy.write(original.read())
            os.chmod(target, os.stat(source).st_mode & 0o755)


def run_block(system, name, user=None, lines=None):
    """The README block `name` (or only its `lines`) run with `sh -e` in the checkout's copy;
    as `user` if given. Returns the completed process."""
    commands = lines or readme_blocks()[name]
    argv = ["env", f"PD_SERVICE_KEY={KEY}", f"PIP_CERT={CA_BUNDLE_IN_TREE}", "sh", "-e", "-x", "-c",
            f"cd {SOURCE_IN_TREE}\n{commands}"]
    if user:
        argv = ["runuser", "-u", user, "--"] + argv
    result = system.run(*argv, check=False, timeout=600)
    assert result.returncode == 0, f"README block {name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def mode_and_owner(system, path):
    info = os.stat(system.booted.path(path))
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def install_start_check(system, standin, start_block, expected):
    """install, then `start_block`, then an event from root and one from USER delivered and the check OK."""
    run_block(system, "install")
    system.point_at(standin)
    run_block(system, start_block)
    # systemctl returns once the process runs; it is up when it has written its pid file.
    try:
        wait_for(lambda: system.exists("/run/pdagent/pdagentd.pid"), 30, interval=0.2, message="pdagentd's pid file")
    except AssertionError as error:
        raise AssertionError(f"{error}; journal:\n{system.journal()[-3000:]}") from None
    uid, gid = (int(system.run("id", flag, "pdagent").stdout) for flag in ("-u", "-g"))
    for directory in ("pdq", "tmp"):
        assert mode_and_owner(system, f"/var/lib/pdagent/outqueue/{directory}") == (0o3753, uid, gid)
    assert mode_and_owner(system, "/var/lib/pdagent/outqueue") == (0o755, 0, 0)
    (send_line,) = [line for line in readme_blocks()["check"].splitlines() if line.startswith("pd-send ")]
    run_block(system, "check", user=USER, lines=send_line)
    checked = run_block(system, "check")
    assert "PDAGENT OK - pdagentd running" in checked.stdout, checked.stdout
    summary = f"pdagent test from {system.run('uname', '-n').stdout.strip()}"
    wait_summaries(standin, KEY, [summary] * len(expected))
    assert sorted(body["dedup_key"] for body in standin.bodies(KEY)) == sorted(expected)
    assert [user for _pid, user in system.pdagentd_processes()] == ["pdagent"]
    assert system.run("pd-queue", "check").returncode == 0


def assert_nothing_left(system):
    assert system.pdagentd_processes() == []
    assert [path for path in INSTALLED_PATHS if system.exists(path)] == []
    for database in ("passwd", "group"):
        assert system.run("getent", database, "pdagent", check=False).returncode == 2, database
    assert system.show("LoadState")["LoadState"] == "not-found"


@needs_systemd_tests
@pytest.mark.parametrize("release", RELEASES)
def test_pip_install_under_systemd_then_sysv_init(release, mirror, standin):  # noqa: F811 (the fixture)
    with booted_debian(release, mirror) as system:
        system.run("apt-get", "install", "-y", "-q", "python3-venv", timeout=600)  # the README's first step
        assert not system.exists("/var/lib/dpkg/info/pdagent.list")  # no package of pdagent
        copy_checkout(system)
        system.booted.put(HOST_CA_BUNDLE, CA_BUNDLE_IN_TREE)

        install_start_check(system, standin, "systemd-start", ["pdagent-test-root", f"pdagent-test-{USER}"])
        assert system.run("systemctl", "is-enabled", "pdagent").stdout.strip() == "enabled"
        assert system.show("User", "ActiveState") == {"User": "pdagent", "ActiveState": "active"}
        run_block(system, "systemd-uninstall")
        run_block(system, "uninstall")
        assert_nothing_left(system)

        standin.reset()
        install_start_check(system, standin, "sysv-start", ["pdagent-test-root", f"pdagent-test-{USER}"])
        assert system.run("service", "pdagent", "status", check=False).returncode == 0
        run_block(system, "sysv-uninstall")
        system.run("systemctl", "daemon-reload")  # systemd ran the script: the README says so
        run_block(system, "uninstall")
        assert_nothing_left(system)
        one_line(f"{release}: the README's install without a package, under systemd and SysV init: OK")
