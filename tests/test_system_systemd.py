"""The .deb under a real systemd, on Debian 11 (bullseye), 12 (bookworm) and 13 (trixie).

Each release's cached root tree is booted once, systemd as PID 1 of its own
namespaces (scripts/systemd_tree.py: never on this machine's root), and the
.deb built from this checkout is installed in it with apt, its dependencies
coming from the Debian mirror this host's apt uses. The tree shares the host's
network, so the daemon in it delivers to a stand-in (and through a tinyproxy)
on the host's 127.0.0.1. Each test purges what it installed, and the boot's
changes are thrown away with it.

- test_install_deliver_service_verbs_purge: install, delivery, `service pdagent
  start|status|stop|restart` and systemctl, purge: the distribution matrix.
- test_systemd_story: started and enabled by the package, the unit's hardening
  as the running process has it, `kill -9` then Restart=, `systemctl stop` with
  an event in flight, the README's proxy recipe, an upgrade keeping the proxy
  lines and pending events, purge.
- test_listen_unit: pdagent-listen installed but not enabled; once configured
  and enabled, an event POSTed to it from inside the tree reaches the
  stand-in; its `systemd-analyze security` exposure no worse than pdagent's;
  `service pdagent-listen start|status|stop` as for pdagent.

Run by `make test-system` (PDAGENT_SYSTEMD_TESTS=1), as root; a fresh tree
takes a minute or two per release to build (cached for systemd_tree.MAX_AGE_DAYS
days in systemd_tree.CACHE_DIR). If the Debian mirror cannot be reached, the
tests say so on one line and are skipped.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import systemd_tree  # scripts/, on the path through helpers.py
from helpers import ROOT, Tinyproxy, port_open, wait_for

from pdagent import __version__

RELEASES = ["bullseye", "bookworm", "trixie"]
VERSION = __version__
UPGRADE_VERSION = VERSION + "+systest1"
DEB_DIR_IN_TREE = "/srv"  # readable by apt's _apt user
UNIT = "/lib/systemd/system/pdagent.service"
LISTEN_UNIT = "/lib/systemd/system/pdagent-listen.service"
LISTEN_LOG = "/var/log/pdagent-listen/pd-listen.log"
USER = "pdagent-systest"  # an unprivileged monitoring user in the tree
KEY = "SystemdTestKey000000000000000001"
KEY_AFTER_KILL = "SystemdTestKey000000000000000002"
KEY_IN_FLIGHT = "SystemdTestKey000000000000000003"
KEY_PROXY = "SystemdTestKey000000000000000004"
KEY_UPGRADE = "SystemdTestKey000000000000000005"
KEY_LISTEN = "SystemdTestKey000000000000000006"
PDAGENT_PATHS = ["/etc/pdagent.conf", "/etc/init.d/pdagent", UNIT, "/etc/init.d/pdagent-listen", LISTEN_UNIT,
                 "/usr/lib/python3/dist-packages/pdagent",
                 "/usr/share/doc/pdagent", "/usr/share/pdagent", "/var/lib/pdagent", "/var/log/pdagent",
                 "/run/pdagent", "/usr/bin/pd-send", "/usr/bin/pd-queue", "/usr/bin/pdagentd",
                 "/usr/bin/pd-nagios", "/usr/bin/pd-zabbix", "/usr/bin/pd-sensu",
                 "/usr/bin/pd-send.py", "/usr/bin/pd-queue.py", "/usr/bin/pd-listen",
                 "/var/log/pdagent-listen", "/run/pdagent-listen",
                 "/etc/systemd/system/pdagent.service",
                 "/etc/systemd/system/multi-user.target.wants/pdagent.service",
                 "/etc/systemd/system/multi-user.target.wants/pdagent-listen.service"]
# A monitoring tool's POST, with the tree's own Python: argv[1] the URL, argv[2] the JSON body.
POST_FROM_THE_TREE = """
import sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""
# The support table's library columns, read from dpkg in each tree.
REPORTED_PACKAGES = ["systemd", "python3", "python3-requests", "python3-daemon", "python3-lockfile"]

pytestmark = pytest.mark.skipif(
    os.environ.get("PDAGENT_SYSTEMD_TESTS") != "1",
    reason="boots systemd in Debian 11/12/13 trees (network, minutes): run `make test-system`")


def one_line(message):
    print(message, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def debs():
    """(this version's .deb, the same code as version +systest1), built from the working tree."""
    directory = tempfile.mkdtemp(prefix="pdagent-systemd-debs-")
    try:
        built = []
        for version in (VERSION, UPGRADE_VERSION):
            env = {**os.environ, "PDAGENT_DIST_DIR": directory, "PDAGENT_DEB_VERSION": version}
            result = subprocess.run(["sh", os.path.join(ROOT, "packaging", "build-deb.sh")], env=env,
                                    capture_output=True, text=True, check=True)
            built.append(result.stdout.split()[-1])
        yield built
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def mirror():
    """(mirror, security mirror) of this host's apt, once they answer for every release."""
    try:
        mirror, security = systemd_tree.debian_mirror()
        for release in RELEASES:
            systemd_tree.check_reachable(mirror, security, release)
    except systemd_tree.MirrorUnreachable as error:
        one_line(f"Debian mirror unreachable, skipping the systemd system tests: {error}")
        pytest.skip(f"Debian mirror unreachable: {error}")
    return mirror, security


@pytest.fixture(scope="module", params=RELEASES)
def debian(request, mirror, debs):
    """A booted `release` tree with the two .debs in /srv and fresh package lists."""
    with booted_debian(request.param, mirror) as system:
        for deb in debs:
            system.booted.put(deb, f"{DEB_DIR_IN_TREE}/{os.path.basename(deb)}")
        yield system


@contextlib.contextmanager
def booted_debian(release, mirror):
    """A Debian of `release` booted on its cached tree, with fresh package lists and the user USER."""
    if os.geteuid() != 0:
        pytest.fail("booting systemd in a tree needs root")
    started = time.time()
    cached = systemd_tree.tree_is_fresh(os.path.join(systemd_tree.CACHE_DIR, release))
    with tempfile.TemporaryFile() as build_log:
        try:
            tree = systemd_tree.cached_tree(release, *mirror, log=build_log)
        except subprocess.CalledProcessError:
            build_log.seek(0)
            raise AssertionError(f"building the {release} tree failed:\n"
                                 f"{build_log.read().decode(errors='replace')[-4000:]}") from None
    tree_secs = time.time() - started
    with systemd_tree.booted(tree) as booted:
        system = Debian(booted, release)
        system.run("apt-get", "update", "-q")
        system.run("useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER)
        one_line(f"{release}: tree {'cached' if cached else 'built'} in {tree_secs:.0f} s, "
                 f"booted in {time.time() - started - tree_secs:.1f} s (apt-get update included)")
        yield system


class Debian:
    """Commands in a booted tree, and what the tests ask of it."""

    def __init__(self, booted, release):
        self.booted = booted
        self.release = release

    def run(self, *argv, check=True, **kwargs):
        return self.booted.run(list(argv), check=check, **kwargs)

    def read(self, path):
        with open(self.booted.path(path)) as in_tree:
            return in_tree.read()

    def exists(self, path):
        return os.path.lexists(self.booted.path(path))

    def apt_get(self, *args):
        return self.run("apt-get", "-y", "-q", *args, timeout=600)

    def install(self, deb):
        return self.apt_get("install", f"{DEB_DIR_IN_TREE}/{os.path.basename(deb)}")

    def dpkg_versions(self, packages):
        result = self.run("dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\\n",
                          *packages, check=False)
        return {fields[0]: fields[1] for fields in map(str.split, result.stdout.splitlines())
                if len(fields) == 3 and fields[2] == "ii"}

    def show(self, *properties, unit="pdagent.service"):
        """`systemctl show pdagent` (or `unit`) -> {property: value}."""
        output = self.run("systemctl", "show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def exposure(self, unit):
        """The overall exposure level `systemd-analyze security` gives `unit` (0 best, 10 worst)."""
        security = self.run("systemd-analyze", "security", "--no-pager", unit).stdout
        found = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", security)
        assert found, security
        return float(found.group(1))

    def main_pid(self):
        return int(self.show("MainPID")["MainPID"])

    def processes(self, *programs):
        """[(pid, user)] of every process in the tree whose command line names one of `programs`."""
        output = self.run("ps", "-eo", "pid=,user:32=,args=").stdout
        return [(int(pid), user) for pid, user, args in
                (line.split(None, 2) for line in output.splitlines() if len(line.split(None, 2)) == 3)
                if any(program in args for program in programs)]

    def pdagentd_processes(self):
        """[(pid, user)] of every pdagentd in the tree."""
        return self.processes("/usr/share/pdagent/bin/pdagentd.py", "/usr/bin/pdagentd")

    def proc_status(self, pid):
        """/proc/PID/status of a process in the tree, as a dict."""
        text = self.run("cat", f"/proc/{pid}/status").stdout
        return {name: value.strip() for name, _, value in (line.partition(":") for line in text.splitlines())}

    def journal(self):
        return self.run("journalctl", "-u", "pdagent.service", "--no-pager", "-o", "cat").stdout

    def start_line(self, pid):
        """pdagentd's `started` line in the journal, once process `pid` has logged it."""
        def logged():
            return [line for line in self.journal().splitlines() if f" started (pid {pid}): " in line]
        return wait_for(logged, 20, interval=0.2, message=f"pdagentd {pid}'s start in the journal")[0]

    def listen_url(self, pid):
        """pd-listen's http:// address, once process `pid` has logged its start."""
        def logged():
            text = self.read(LISTEN_LOG) if self.exists(LISTEN_LOG) else ""
            return re.findall(rf" started \(pid {pid}\): listening on (http://[0-9.:]+)", text)
        return wait_for(logged, 20, interval=0.2, message=f"pd-listen {pid}'s start in {LISTEN_LOG}")[0]

    def post_as_user(self, url, body):
        """(status, answer) of a JSON POST to `url` by USER, from inside the tree."""
        result = self.run("runuser", "-u", USER, "--", "python3", "-I", "-c", POST_FROM_THE_TREE, url,
                          json.dumps(body))
        status, answer = result.stdout.split(" ", 1)
        return int(status), json.loads(answer)

    def service(self, action, name="pdagent"):
        return self.run("service", name, action, check=False)

    def send(self, key, summary):
        result = self.run("runuser", "-u", USER, "--", "/usr/bin/pd-send", "-k", key, "-t", "trigger",
                          "-d", summary)
        assert "Event processed" in result.stdout, result.stdout
        return result

    def queue_status(self):
        """{routing key: (pending, success, error)} from `pd-queue status`."""
        rows = {}
        for line in self.run("/usr/bin/pd-queue", "status").stdout.splitlines():
            fields = line.split()
            if len(fields) == 4 and all(field.isdigit() for field in fields[1:]):
                rows[fields[0]] = tuple(int(field) for field in fields[1:])
        return rows

    def point_at(self, standin, **settings):
        """/etc/pdagent.conf as an admin edits it: the stand-in's URL, plus `settings`."""
        lines = [f"events_api_url = {standin.url}"] + [f"{key} = {value}" for key, value in settings.items()]
        config = self.read("/etc/pdagent.conf")
        with open(self.booted.path("/etc/pdagent.conf"), "w") as config_file:
            config_file.write(config.split("\n# -- system test --\n")[0] + "\n# -- system test --\n"
                              + "\n".join(lines) + "\n")

    def wait_active(self, previous_pid=None, timeout=30, unit="pdagent.service"):
        """The MainPID of the active unit (a new one when previous_pid is given)."""
        def started():
            state = self.show("ActiveState", "MainPID", unit=unit)
            pid = int(state["MainPID"])
            return pid if state["ActiveState"] == "active" and pid and pid != previous_pid else None
        return wait_for(started, timeout, interval=0.2, message=f"{unit} active ({self.release})")

    def purge_and_check_nothing_left(self):
        self.apt_get("purge", "pdagent")
        assert "pdagent" not in self.dpkg_versions(["pdagent"])
        assert self.pdagentd_processes() == []
        for name in ("passwd", "group"):
            for account in ("pdagent", "pdagent-listen"):
                assert self.run("getent", name, account, check=False).returncode == 2
        assert [path for path in PDAGENT_PATHS if self.exists(path)] == []
        for unit in ("pdagent.service", "pdagent-listen.service"):
            assert self.show("LoadState", unit=unit)["LoadState"] == "not-found"


def summaries(standin, key):
    return sorted(body["payload"]["summary"] for body in standin.bodies(key))


def wait_summaries(standin, key, expected, timeout=30):
    wait_for(lambda: summaries(standin, key) == sorted(expected), timeout, interval=0.1,
             message=f"{expected} at the stand-in")


# -- the distribution matrix ---------------------------------------------------------------------

def test_install_deliver_service_verbs_purge(debian, debs, standin):
    installed = debian.install(debs[0])
    assert debian.dpkg_versions(["pdagent"]) == {"pdagent": VERSION}, installed.stdout
    versions = debian.dpkg_versions(REPORTED_PACKAGES)
    python = debian.run("python3", "--version").stdout.split()[-1]
    one_line(f"{debian.release}: Python {python}, "
             + ", ".join(f"{name} {versions.get(name)}" for name in REPORTED_PACKAGES))
    assert set(versions) == set(REPORTED_PACKAGES)
    debian.wait_active()

    debian.point_at(standin)
    assert debian.service("restart").returncode == 0
    debian.wait_active()
    debian.send(KEY, "installed on " + debian.release)
    wait_summaries(standin, KEY, ["installed on " + debian.release])

    status = debian.service("status")
    assert status.returncode == 0 and "active (running)" in status.stdout, status.stdout
    assert debian.service("stop").returncode == 0
    assert debian.show("ActiveState")["ActiveState"] == "inactive"
    assert debian.pdagentd_processes() == []
    assert debian.service("status").returncode == 3
    debian.send(KEY, "queued while stopped")
    assert debian.queue_status()[KEY] == (1, 1, 0)
    assert debian.service("start").returncode == 0
    pid = debian.wait_active()
    wait_summaries(standin, KEY, ["installed on " + debian.release, "queued while stopped"])
    debian.run("systemctl", "restart", "pdagent")
    assert debian.wait_active() != pid
    assert debian.run("systemctl", "is-enabled", "pdagent").stdout.strip() == "enabled"

    debian.purge_and_check_nothing_left()


# -- the unit under systemd ----------------------------------------------------------------------

def test_systemd_story(debian, debs, standin, tmp_path):
    # Enabled and started by the package, as pdagent, hardened.
    debian.install(debs[0])
    assert debian.run("systemctl", "is-enabled", "pdagent").stdout.strip() == "enabled"
    pid = debian.wait_active()
    assert "https://events.pagerduty.com, proxy none" in debian.start_line(pid)
    unit = debian.show("User", "Group", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                       "CapabilityBoundingSet", "Restart", "TimeoutStopUSec", "NeedDaemonReload")
    assert unit == {"User": "pdagent", "Group": "pdagent", "NoNewPrivileges": "yes",
                    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                    "CapabilityBoundingSet": "", "Restart": "on-failure", "TimeoutStopUSec": "15s",
                    "NeedDaemonReload": "no"}
    status = debian.proc_status(pid)
    uid = debian.run("id", "-u", "pdagent").stdout.strip()
    assert status["Uid"].split() == [uid] * 4
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert int(status["CapBnd"], 16) == 0 and int(status["CapEff"], 16) == 0
    mounts = {fields[4]: fields[5] for fields in
              (line.split() for line in debian.run("cat", f"/proc/{pid}/mountinfo").stdout.splitlines())}
    assert mounts["/"].startswith("ro") and mounts["/var/lib/pdagent"].startswith("rw"), mounts
    exposure = debian.exposure("pdagent.service")
    one_line(f"{debian.release}: systemd-analyze security exposure {exposure}")
    assert exposure <= 2.5

    debian.point_at(standin)
    debian.run("systemctl", "restart", "pdagent")
    pid = debian.wait_active(previous_pid=pid)
    debian.send(KEY, "under systemd")
    wait_summaries(standin, KEY, ["under systemd"])

    # kill -9: systemd restarts it (Restart=on-failure, RestartSec=5s); what was queued meanwhile goes.
    debian.run("kill", "-9", str(pid))
    debian.send(KEY_AFTER_KILL, "queued while dead")
    assert debian.queue_status()[KEY_AFTER_KILL] == (1, 0, 0)
    pid = debian.wait_active(previous_pid=pid)
    assert debian.show("NRestarts")["NRestarts"] == "1"
    assert "status=9/KILL" in debian.journal()
    wait_summaries(standin, KEY_AFTER_KILL, ["queued while dead"])

    # systemctl stop with an event in flight: within TimeoutStopSec, and the event stays queued.
    debian.point_at(standin, http_timeout_secs=120)  # only the stop may end the send
    debian.run("systemctl", "restart", "pdagent")
    pid = debian.wait_active(previous_pid=pid)
    standin.set_faults([{"match": {"routing_key": KEY_IN_FLIGHT}, "delay": 60, "status": 500}])
    debian.send(KEY_IN_FLIGHT, "in flight at stop")
    wait_for(lambda: [request for request in standin.requests()
                      if (request["body"] or {}).get("routing_key") == KEY_IN_FLIGHT],
             20, message="the event in flight at the stand-in")
    started = time.time()
    debian.run("systemctl", "stop", "pdagent", timeout=60)
    stop_secs = time.time() - started
    one_line(f"{debian.release}: systemctl stop with an event in flight took {stop_secs:.1f} s")
    assert stop_secs < 15
    assert debian.show("ActiveState", "Result") == {"ActiveState": "inactive", "Result": "success"}, \
        debian.journal()[-3000:]
    assert debian.queue_status()[KEY_IN_FLIGHT] == (1, 0, 0)
    assert standin.bodies(KEY_IN_FLIGHT) == []

    # The README's proxy recipe: uncomment the unit's Environment= lines, daemon-reload, restart.
    proxy = Tinyproxy(str(tmp_path))
    try:
        debian.point_at(standin)
        text = debian.read(UNIT)
        assert text.count('#Environment="http') == 2
        with open(debian.booted.path(UNIT), "w") as unit_file:
            unit_file.write(re.sub(r'#Environment="(https?_proxy)=[^"]*"', rf'Environment="\1={proxy.url}/"', text))
        debian.run("systemctl", "daemon-reload")
        debian.run("systemctl", "restart", "pdagent")
        pid = debian.wait_active()
        environment = debian.show("Environment")["Environment"]
        assert f"http_proxy={proxy.url}/" in environment and f"https_proxy={proxy.url}/" in environment
        assert f"proxy {proxy.url}/" in debian.start_line(pid)
        wait_summaries(standin, KEY_IN_FLIGHT, ["in flight at stop"])  # kept, delivered now
        debian.send(KEY_PROXY, "through the proxy")
        wait_summaries(standin, KEY_PROXY, ["through the proxy"])
        proxied = re.findall(rf"127\.0\.0\.1:{standin.port}/v2/enqueue", proxy.log_text())
        assert len(proxied) == 2, proxy.log_text()

        # Upgrade with events pending: the proxy lines and the events survive it.
        debian.run("systemctl", "stop", "pdagent")
        for number in range(2):
            debian.send(KEY_UPGRADE, f"pending {number}")
        assert debian.queue_status()[KEY_UPGRADE] == (2, 0, 0)
        debian.install(debs[1])
        assert debian.dpkg_versions(["pdagent"]) == {"pdagent": UPGRADE_VERSION}
        unit_lines = debian.read(UNIT).splitlines()
        at = unit_lines.index("ExecStartPre=/bin/chown -R pdagent:pdagent /var/run/pdagent")
        assert unit_lines[at + 1:at + 3] == [f'Environment="http_proxy={proxy.url}/"',
                                             f'Environment="https_proxy={proxy.url}/"']
        assert debian.run("systemctl", "is-enabled", "pdagent").stdout.strip() == "enabled"
        assert debian.show("NeedDaemonReload")["NeedDaemonReload"] == "no"
        debian.wait_active(previous_pid=pid)
        wait_summaries(standin, KEY_UPGRADE, ["pending 0", "pending 1"])
        assert len(re.findall(rf"127\.0\.0\.1:{standin.port}/v2/enqueue", proxy.log_text())) == 4
    finally:
        proxy.stop()

    # Purge: no process, no user, no unit, no file.
    debian.purge_and_check_nothing_left()


# -- pd-listen's unit ----------------------------------------------------------------------------

def test_listen_unit(debian, debs, standin):
    """pdagent-listen is installed but neither enabled nor started. Configured and enabled, it runs
    as its own unprivileged account, takes an event a local user POSTs, and pdagentd delivers it;
    systemd-analyze rates its unit no more exposed than pdagent's; `service pdagent-listen`
    reports, stops and starts it as `service pdagent` does pdagent."""
    listen = "pdagent-listen.service"
    debian.install(debs[0])
    assert debian.run("systemctl", "is-enabled", listen, check=False).stdout.strip() == "disabled"
    assert debian.show("ActiveState", unit=listen)["ActiveState"] == "inactive"
    assert debian.processes("/usr/bin/pd-listen") == []

    # As the README says: a listen line in /etc/pdagent.conf, then systemctl enable --now.
    debian.point_at(standin, listen_address="127.0.0.1:0")
    debian.run("systemctl", "restart", "pdagent")
    debian.wait_active()
    debian.run("systemctl", "enable", "--now", listen)
    assert debian.run("systemctl", "is-enabled", listen).stdout.strip() == "enabled"
    pid = debian.wait_active(unit=listen)
    url = debian.listen_url(pid)
    process = debian.proc_status(pid)
    uid = debian.run("id", "-u", "pdagent-listen").stdout.strip()
    assert process["Uid"].split() == [uid] * 4
    assert process["NoNewPrivs"] == "1" and process["Seccomp"] == "2" and int(process["CapEff"], 16) == 0

    event = {"routing_key": KEY_LISTEN, "event_action": "trigger",
             "payload": {"summary": "through pd-listen on " + debian.release, "source": "systest",
                         "severity": "critical"}}
    code, answer = debian.post_as_user(url + "/v2/enqueue", event)
    assert (code, answer["status"], answer["message"]) == (202, "success", "Event processed"), answer
    wait_summaries(standin, KEY_LISTEN, ["through pd-listen on " + debian.release])
    queued_by = json.loads(debian.run("/usr/bin/pd-queue", "status", "--json").stdout)["queued_by"]
    assert queued_by["delivered"].get("pd-listen") == 1, queued_by

    listen_exposure, pdagent_exposure = debian.exposure(listen), debian.exposure("pdagent.service")
    one_line(f"{debian.release}: systemd-analyze security exposure pdagent-listen {listen_exposure}, "
             f"pdagent {pdagent_exposure}")
    assert listen_exposure <= pdagent_exposure

    # service pdagent-listen status|stop|start, as test_install_deliver_service_verbs_purge has them for pdagent.
    status = debian.service("status", "pdagent-listen")
    assert status.returncode == 0 and "active (running)" in status.stdout, status.stdout
    assert debian.service("stop", "pdagent-listen").returncode == 0
    assert debian.show("ActiveState", unit=listen)["ActiveState"] == "inactive"
    assert debian.processes("/usr/bin/pd-listen") == []
    assert not port_open(int(url.rsplit(":", 1)[1]))
    assert debian.service("status", "pdagent-listen").returncode == 3
    assert debian.service("start", "pdagent-listen").returncode == 0
    pid = debian.wait_active(previous_pid=pid, unit=listen)
    event["payload"]["summary"] = "after service pdagent-listen start"
    code, _answer = debian.post_as_user(debian.listen_url(pid) + "/v2/enqueue", event)
    assert code == 202
    wait_summaries(standin, KEY_LISTEN, ["through pd-listen on " + debian.release,
                                         "after service pdagent-listen start"])

    debian.purge_and_check_nothing_left()
