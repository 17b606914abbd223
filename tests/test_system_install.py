"""The .deb for real, on this machine: upgrade over the original agent, send, restart, upgrade, purge.

Runs only when CI=true or PDAGENT_SYSTEM_TESTS=1, as root on a Debian-like
system; it changes the machine (packages, users, /etc, /var) and undoes all of
it in a `finally`, whatever happens: `dpkg --purge pdagent`, the test users,
the directories, policy-rc.d.

The story:
1. The original PagerDuty agent (a stand-in package "pdagent 1.7.4": its
   conffile /etc/pdagent.conf, its user pdagent, its spool, and the copies of
   its unit and init script in /var/lib/pdagent/scripts as package files) is
   installed, the admin pointed its config at the local Events API stand-in,
   and a v1 event is still queued in its spool.
2. `apt-get install ./pdagent_<version>_all.deb` upgrades it (python3-requests
   and friends come from the registry); the postinst starts the daemon through
   the init script (no systemd here): it runs as pdagent and delivers the v1 event.
   The original agent's account had replaced outqueue/suc by a link to a
   root-only directory: the install moves the link aside, chowns nothing.
   dpkg removes the original's copies; the postinst makes ours, root's, and
   the guide's `cp /var/lib/pdagent/scripts/pdagent.service ...` gets our unit.
3. Users, directories and modes are as the contract says (pdq/ and tmp/
   sticky, outqueue/ root's); `pd-send` run by an unprivileged user is
   delivered, and so is one sent through the original agent's
   /usr/bin/pd-send.py; `pd-queue status` (and pd-queue.py) shows them in
   Success; the daemon runs as /usr/share/pdagent/bin/pdagentd.py, which
   `pgrep -f pdagentd.py` finds; `man pd-send` shows the page;
   `pd-queue check` is OK for root, UNKNOWN (with the advice) for the
   monitoring user until it joins the group pdagent, CRITICAL once the
   daemon stops; `service pdagent status/stop/start/restart` give the LSB
   codes.
4. With the daemon stopped, events are queued and the unit has proxy lines;
   the pdagent account (a compromised daemon) plants links to root-only
   files and directories, replaces scripts/ by a link to a root-only
   directory, puts a link at the old save file of the unit's proxy
   lines and a pid file naming a root process. An upgrade to a newer
   version keeps the events and the admin's proxy lines, follows none of the
   links, kills nothing but the daemon, and delivers the events. Then, with
   no proxy lines in the unit, the account writes unit lines into that old
   save file (an ExecStartPre=+ would run as root): a reinstall splices none.
5. `apt-get remove` stops it and keeps config and spool; `apt-get purge` then
   leaves no user, no group, no files, no process.

A second story: over the original agent whose account replaced scripts/ by a
link to a root directory holding files of the copies' names (an admin's), the
install removes the link before dpkg removes the original's copies by path,
so none of the admin's files goes.

Containers forbid starting services from packages with a policy-rc.d that
exits 101 (and have no runlevel); invoke-rc.d then starts only if
policy-rc.d allows it. This test stands for a host where services may start:
it puts in a policy-rc.d that allows everything, and puts the original back.
"""

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import StandIn, wait_for

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
VERSION = re.search(r'^__version__ = "([^"]+)"', (ROOT / "pdagent" / "__init__.py").read_text(),
                    re.MULTILINE).group(1)
UPGRADE_VERSION = VERSION + "+systest1"
ORIGINAL_VERSION = "1.7.4"
ORIGINAL_COPIES = ("pdagent.service", "pdagent.init")
ORIGINAL_COPY_TEXT = "# the original agent's copy\n"
STANDIN = ROOT / "scripts" / "events_api_standin.py"

USER = "pdagent-systest"  # an unprivileged monitoring user
KEY_V1 = "0riginalAgentV1Key00000000000001"
KEY = "SystemTestKey0000000000000000001"
KEY_UPGRADE = "SystemTestKey0000000000000000002"
COMMANDS = ["pd-send", "pd-queue", "pdagentd", "pd-nagios", "pd-zabbix", "pd-sensu"]
ORIGINAL_PATHS = ["/usr/bin/pd-send.py", "/usr/bin/pd-queue.py", "/usr/share/pdagent/bin/pdagentd",
                  "/usr/share/pdagent/bin/pdagentd.py"]
DAEMON = "/usr/share/pdagent/bin/pdagentd.py"  # what the init script runs, as the original's did
PDAGENT_PATHS = ["/etc/pdagent.conf", "/etc/pdagent.conf.dpkg-dist", "/etc/pdagent.conf.dpkg-old",
                 "/etc/init.d/pdagent", "/lib/systemd/system/pdagent.service",
                 "/usr/lib/python3/dist-packages/pdagent", "/usr/share/doc/pdagent",
                 "/usr/share/pdagent", "/var/lib/pdagent", "/var/log/pdagent", "/var/run/pdagent",
                 *[f"/usr/bin/{name}" for name in COMMANDS], *ORIGINAL_PATHS,
                 *[f"/usr/share/man/man1/{name}.1.gz" for name in COMMANDS + ["pd-send.py", "pd-queue.py"]],
                 "/usr/share/lintian/overrides/pdagent",
                 "/etc/systemd/system/pdagent.service",
                 "/etc/systemd/system/multi-user.target.wants/pdagent.service",
                 "/var/lib/pdagent-upgrade"]
POLICY = Path("/usr/sbin/policy-rc.d")
POLICY_SAVED = Path("/usr/sbin/policy-rc.d.pdagent-systest-saved")
MARKER = "/var/lib/pdagent/.pdagent-systest"  # says a leftover tree is this test's own
# Root's own, which the pdagent account points its links at.
SECRET_FILE = Path("/root/pdagent-systest-secret")
SECRET_DIR = Path("/root/pdagent-systest-secret-dir")
SECRET_SCRIPTS_DIR = Path("/root/pdagent-systest-secret-scripts")  # root-only, files of the copies' names
PWNED = Path("/root/pdagent-systest-pwned")  # what a planted ExecStartPre=+ line would create
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

pytestmark = pytest.mark.skipif(
    os.environ.get("CI") != "true" and os.environ.get("PDAGENT_SYSTEM_TESTS") != "1",
    reason="changes this machine (apt-get install/purge, users): set PDAGENT_SYSTEM_TESTS=1 (CI sets CI=true)")


def run(argv, check=True, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run(argv, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def as_user(*argv):
    return run(["runuser", "-u", USER, "--", *argv], cwd="/")


def as_pdagent(script, check=True):
    """A shell command as the daemon's account, as a compromised daemon would run it."""
    return run(["runuser", "-u", "pdagent", "--", "sh", "-c", script], cwd="/", check=check)


def dpkg_status():
    result = run(["dpkg-query", "-W", "-f=${Status} ${Version}", "pdagent"], check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def daemon_pids():
    """Pids of installed pdagentd processes (not a developer's from a checkout, nor one in a
    container or booted tree of another test: another pid namespace), not zombies."""
    pids = []
    our_namespace = os.readlink("/proc/self/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
            started_as = {DAEMON.encode(), b"/usr/bin/pdagentd"}  # the init script's, an earlier one's
            if started_as & set(args) and os.readlink(f"/proc/{entry}/ns/pid") == our_namespace:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def zombie(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0] == "Z"


def process_user(pid):
    with open(f"/proc/{pid}/status") as status:
        uid = next(int(line.split()[1]) for line in status if line.startswith("Uid:"))
    return pwd.getpwuid(uid).pw_name


def pid_from_file():
    try:
        return int(Path("/var/run/pdagent/pdagentd.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def service(action):
    return run(["service", "pdagent", action], check=False).returncode


def queue_status():
    """{routing key: (pending, success, error)} from `pd-queue status`."""
    output = run(["/usr/bin/pd-queue", "status"]).stdout
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 4 and all(field.isdigit() for field in fields[1:]):
            rows[fields[0]] = tuple(int(field) for field in fields[1:])
    return rows


def mode_owner(path):
    info = os.stat(path)
    return (oct(info.st_mode & 0o7777), pwd.getpwuid(info.st_uid).pw_name,
            grp.getgrgid(info.st_gid).gr_name)


def wait_for_events(standin, routing_key, count, timeout=20):
    def arrived():
        bodies = standin.bodies(routing_key)
        return bodies if len(bodies) >= count else None
    return wait_for(arrived, timeout, message=f"{count} event(s) of ...{routing_key[-4:]} at the stand-in")


# -- the machine: prepare, and undo whatever happens ------------------------------------------

def build_original_agent_deb(directory):
    """A stand-in for the original agent's package: version 1.x, its conffile, user and spool,
    and the copies of its unit and init script as package files in /var/lib/pdagent/scripts."""
    tree = directory / "original"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "usr/share/pdagent").mkdir(parents=True)
    (tree / "var/lib/pdagent/scripts").mkdir(parents=True)
    (tree / "etc/pdagent.conf").write_text("[Main]\n#check_freq_sec = 10\n#send_event_timeout_sec = 30\n")
    (tree / "usr/share/pdagent/original-agent.txt").write_text("a file only the original agent had\n")
    for name in ORIGINAL_COPIES:
        (tree / "var/lib/pdagent/scripts" / name).write_text(ORIGINAL_COPY_TEXT)
    (tree / "DEBIAN/control").write_text(
        f"Package: pdagent\nVersion: {ORIGINAL_VERSION}\nArchitecture: all\n"
        "Maintainer: test <test@pdagent.example.org>\nDescription: the original agent, as a test stand-in\n")
    (tree / "DEBIAN/conffiles").write_text("/etc/pdagent.conf\n")
    (tree / "DEBIAN/postinst").write_text(
        "#!/bin/sh\nset -e\n"
        "getent passwd pdagent >/dev/null || useradd --system --user-group --home-dir /var/lib/pdagent"
        " --no-create-home --shell /bin/false pdagent\n"
        "for d in tmp pdq suc err; do mkdir -p /var/lib/pdagent/outqueue/$d; done\n"
        "mkdir -p /var/lib/pdagent/db /var/log/pdagent\n"
        "chown -R pdagent:pdagent /var/lib/pdagent /var/log/pdagent\n"
        "chmod 2775 /var/lib/pdagent/outqueue/pdq /var/lib/pdagent/outqueue/tmp\n")
    (tree / "DEBIAN/postinst").chmod(0o755)
    path = directory / f"pdagent_{ORIGINAL_VERSION}_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(path)])
    return path


def apt_get_install(*args):
    """apt-get install; once more after `apt-get update` if the package lists were stale."""
    argv = ["apt-get", "install", "-y", "-q", *args]
    result = run(argv, check=False, env=APT_ENV)
    if result.returncode != 0:
        run(["apt-get", "update", "-qq"], env=APT_ENV)
        result = run(argv, env=APT_ENV)
    return result


def ensure_package_lists():
    if run(["apt-cache", "show", "python3-daemon"], check=False).returncode != 0:
        run(["apt-get", "update", "-qq"], env=APT_ENV)


def allow_service_starts():
    if POLICY_SAVED.exists():  # an earlier run died: its saved original is the real one
        return
    if POLICY.exists():
        shutil.copy2(POLICY, POLICY_SAVED)
    else:
        POLICY_SAVED.write_text("")  # empty: there was none
    POLICY.write_text("#!/bin/sh\n# pdagent system test: services may start\nexit 0\n")
    POLICY.chmod(0o755)


def restore_policy():
    if not POLICY_SAVED.exists():
        return
    if POLICY_SAVED.stat().st_size == 0:
        POLICY.unlink(missing_ok=True)
        POLICY_SAVED.unlink()
    else:
        os.replace(POLICY_SAVED, POLICY)


def cleanup():
    """Everything this test may have left; safe to run at any point."""
    if dpkg_status():
        run(["dpkg", "--purge", "--force-all", "pdagent"], check=False, env=APT_ENV)
    for pid in daemon_pids():
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for name in (USER, "pdagent"):
        if run(["getent", "passwd", name], check=False).returncode == 0:
            run(["userdel", name], check=False)
        if run(["getent", "group", name], check=False).returncode == 0:
            run(["groupdel", name], check=False)
    for path in PDAGENT_PATHS + [str(SECRET_FILE), str(SECRET_DIR), str(SECRET_SCRIPTS_DIR), str(PWNED)]:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    for link in Path("/etc").glob("rc?.d/[SK][0-9][0-9]pdagent"):
        link.unlink()
    restore_policy()


@pytest.fixture
def machine(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the system install test needs root")
    for tool in ("apt-get", "dpkg-deb", "runuser", "service"):
        if shutil.which(tool) is None:
            pytest.fail(f"the system install test needs {tool} (a Debian-like system)")
    if not os.path.exists(MARKER):
        # Purging deletes the user, the spool and the config: never someone else's.
        foreign = [what for what, present in [
            (f"the package pdagent ({dpkg_status()})", dpkg_status()),
            ("the user pdagent", run(["getent", "passwd", "pdagent"], check=False).returncode == 0),
            ("/var/lib/pdagent", os.path.exists("/var/lib/pdagent")),
            ("/etc/pdagent.conf", os.path.exists("/etc/pdagent.conf"))] if present]
        if foreign:
            pytest.skip(f"{', '.join(foreign)} is here and this test did not make it: not touching it")
    cleanup()  # what a killed earlier run left (the marker says it is ours)
    work = Path(tempfile.mkdtemp(prefix="pdagent-systest-"))
    work.chmod(0o755)  # apt's _apt user reads the .debs from here
    standin = None
    try:
        env = {**os.environ, "PDAGENT_DIST_DIR": str(work)}
        deb = Path(run(["sh", str(PACKAGING / "build-deb.sh")], env=env).stdout.split()[-1])
        upgrade_deb = Path(run(["sh", str(PACKAGING / "build-deb.sh")],
                               env={**env, "PDAGENT_DEB_VERSION": UPGRADE_VERSION}).stdout.split()[-1])
        original_deb = build_original_agent_deb(work)
        standin = StandIn(str(tmp_path))
        ensure_package_lists()
        allow_service_starts()
        run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER])
        yield {"deb": deb, "upgrade_deb": upgrade_deb, "original_deb": original_deb,
               "standin": standin}
    finally:
        if standin:
            standin.stop()
        cleanup()
        shutil.rmtree(work, ignore_errors=True)


# -- the test ------------------------------------------------------------------------------------

def make_admins_scripts_dir():
    """A root-only directory holding root's files of the copies' names (as an admin's
    /etc/systemd/system holds pdagent.service); what admins_scripts_dir() says of it."""
    SECRET_SCRIPTS_DIR.mkdir(mode=0o700)
    for name in ORIGINAL_COPIES:
        (SECRET_SCRIPTS_DIR / name).write_text(f"the admin's {name}\n")
        (SECRET_SCRIPTS_DIR / name).chmod(0o600)
    return admins_scripts_dir()


def admins_scripts_dir():
    return mode_owner(SECRET_SCRIPTS_DIR), {
        entry.name: (mode_owner(entry.path), Path(entry.path).read_text()) for entry in os.scandir(SECRET_SCRIPTS_DIR)}


def install_original_agent(machine):
    """Step 1 of both stories: the original agent, its config pointed at the stand-in."""
    os.makedirs(os.path.dirname(MARKER))
    Path(MARKER).write_text("")  # first: from here on, cleanup() knows all this is ours
    run(["dpkg", "-i", str(machine["original_deb"])], env=APT_ENV)
    with open("/etc/pdagent.conf", "a") as config:
        config.write(f"events_api_url = {machine['standin'].url}\n")


def assert_copies(directory):
    """The copies the guide's users take the unit from: root's, our bytes; and the
    guide's `cp /var/lib/pdagent/scripts/pdagent.service ...`, word for word."""
    assert not os.path.islink("/var/lib/pdagent/scripts")
    assert mode_owner("/var/lib/pdagent/scripts") == ("0o755", "root", "root")
    for name, mode in (("pdagent.service", "0o644"), ("pdagent.init", "0o755")):
        path = f"/var/lib/pdagent/scripts/{name}"
        assert not os.path.islink(path) and mode_owner(path) == (mode, "root", "root"), path
        assert Path(path).read_bytes() == (PACKAGING / name).read_bytes(), path
    assert sorted(os.listdir("/var/lib/pdagent/scripts")) == ["pdagent.init", "pdagent.service"]
    run(["cp", "/var/lib/pdagent/scripts/pdagent.service", str(directory / "pdagent.service")])
    assert (directory / "pdagent.service").read_bytes() == (PACKAGING / "pdagent.service").read_bytes()


def assert_spool_layout():
    """Real directories (not links), with the modes and owners of the contract."""
    for path, expected in [("/var/lib/pdagent", ("0o755", "pdagent", "pdagent")),
                           ("/var/lib/pdagent/outqueue", ("0o755", "root", "root")),
                           ("/var/lib/pdagent/outqueue/tmp", ("0o3753", "pdagent", "pdagent")),
                           ("/var/lib/pdagent/outqueue/pdq", ("0o3753", "pdagent", "pdagent")),
                           ("/var/lib/pdagent/outqueue/suc", ("0o2750", "pdagent", "pdagent")),
                           ("/var/lib/pdagent/outqueue/err", ("0o2750", "pdagent", "pdagent")),
                           ("/var/lib/pdagent/db", ("0o750", "pdagent", "pdagent")),
                           ("/var/log/pdagent", ("0o750", "pdagent", "pdagent")),
                           ("/var/run/pdagent", ("0o750", "pdagent", "pdagent"))]:
        assert not os.path.islink(path) and mode_owner(path) == expected, path


def test_install_send_upgrade_purge(machine, tmp_path):
    standin = machine["standin"]

    # 1. The original agent, configured by its admin, with an event still in its spool.
    install_original_agent(machine)
    assert Path("/var/lib/pdagent/scripts/pdagent.service").read_text() == ORIGINAL_COPY_TEXT
    v1_event = {"service_key": KEY_V1, "event_type": "trigger", "incident_key": "legacy.disk",
                "description": "Disk full (queued by the original agent)", "details": {"free": "0%"},
                "client": "Nagios", "client_url": "https://nagios.example.com",
                "agent": {"agent_id": "legacy", "queued_by": "pd-nagios", "queued_at": "2020-01-01T00:00:00Z"}}
    v1_file = Path(f"/var/lib/pdagent/outqueue/pdq/1577836800000000_{KEY_V1}.txt")
    v1_file.write_text(json.dumps(v1_event))
    os.chown(v1_file, pwd.getpwnam(USER).pw_uid, grp.getgrnam("pdagent").gr_gid)
    v1_file.chmod(0o644)
    SECRET_DIR.mkdir(mode=0o700)
    SECRET_FILE.write_text("root's only\n")
    SECRET_FILE.chmod(0o600)
    secrets = {path: mode_owner(path) for path in (SECRET_FILE, SECRET_DIR)}
    assert secrets == {SECRET_FILE: ("0o600", "root", "root"), SECRET_DIR: ("0o700", "root", "root")}
    admins_files = make_admins_scripts_dir()
    # The original agent's account owned outqueue/: it puts a link where suc/ was.
    as_pdagent(f"cd /var/lib/pdagent/outqueue && rmdir suc && ln -s {SECRET_DIR} suc")

    # 2. Install ours over it. --force-confold: keep the admin's config, as apt would ask.
    result = apt_get_install("-o", "Dpkg::Options::=--force-confold", str(machine["deb"]))
    assert dpkg_status() == f"install ok installed {VERSION}", result.stdout
    assert not os.path.exists("/usr/share/pdagent/original-agent.txt")  # the old package's files went
    assert_copies(tmp_path)  # the original's copies went too, ours are root's
    assert os.path.exists("/etc/pdagent.conf.dpkg-dist")  # ours, beside the admin's
    assert {path: mode_owner(path) for path in secrets} == secrets
    assert "/var/lib/pdagent/outqueue/suc was not a directory" in result.stderr + result.stdout
    [moved] = Path("/var/lib/pdagent/outqueue").glob("suc.pdagent-moved-*")
    assert os.readlink(moved) == str(SECRET_DIR)

    # Started by the package, through the init script, as pdagent.
    pid = wait_for(pid_from_file, 10, message="the daemon's pid file")
    assert pid in daemon_pids() and process_user(pid) == "pdagent"
    assert not [p for p in daemon_pids() if process_user(p) == "root"]
    [v1_body] = wait_for_events(standin, KEY_V1, 1)
    assert v1_body["event_action"] == "trigger" and v1_body["dedup_key"] == "legacy.disk"
    assert v1_body["payload"]["summary"] == "Disk full (queued by the original agent)"

    # 3. User, directories, modes.
    user = pwd.getpwnam("pdagent")
    assert user.pw_gid == grp.getgrnam("pdagent").gr_gid and user.pw_uid < 1000
    assert_spool_layout()
    assert mode_owner("/etc/pdagent.conf") == ("0o644", "root", "root")
    assert mode_owner("/var/lib/pdagent/agent_id.txt")[0] == "0o644"
    assert list(Path("/usr/lib/python3/dist-packages/pdagent").glob("__pycache__/*.pyc"))
    assert list(Path("/etc/rc2.d").glob("S[0-9][0-9]pdagent"))  # update-rc.d defaults
    assert "started" in Path("/var/log/pdagent/pdagentd.log").read_text()
    if shutil.which("systemd-analyze"):  # the installed unit, its ExecStart now real
        verify = run(["systemd-analyze", "verify", "--man=no", "/lib/systemd/system/pdagent.service"],
                     check=False)
        assert verify.returncode == 0, verify.stderr

    # The admin's config is used: "point /etc/pdagent.conf at the stand-in", then restart.
    assert service("restart") == 0
    new_pid = wait_for(pid_from_file, 10, message="the restarted daemon's pid file")
    assert new_pid != pid and process_user(new_pid) == "pdagent"

    # pd-send by an unprivileged user, delivered; through the original agent's path too.
    sent = as_user("/usr/bin/pd-send", "-k", KEY, "-t", "trigger", "-d", "Server is on fire",
                   "-i", "server.fire")
    assert "Event processed" in sent.stdout
    [body] = wait_for_events(standin, KEY, 1)
    assert body["dedup_key"] == "server.fire" and body["payload"]["summary"] == "Server is on fire"
    sent = as_user("/usr/bin/pd-send.py", "-k", KEY, "-t", "resolve", "-i", "server.fire")
    assert sent.stdout == "Event processed. Incident Key: server.fire\n"
    assert [body["event_action"] for body in wait_for_events(standin, KEY, 2)] == ["trigger", "resolve"]
    listing = run(["runuser", "-u", USER, "--", "ls", "/var/lib/pdagent/outqueue/pdq"], check=False)
    assert listing.returncode != 0  # nobody else can list the spool
    wait_for(lambda: queue_status().get(KEY) == (0, 2, 0) and queue_status().get(KEY_V1) == (0, 1, 0),
             10, message="pd-queue status to show the events delivered")
    assert run(["/usr/bin/pd-queue.py", "status"]).stdout == run(["/usr/bin/pd-queue", "status"]).stdout
    assert_original_paths_and_man_pages(new_pid)
    assert_monitoring_user_gets_access(new_pid)

    # service actions and LSB codes.
    assert service("status") == 0
    assert service("stop") == 0
    assert not daemon_pids()
    assert service("status") == 3
    check = run(["/usr/bin/pd-queue", "check"], check=False)
    assert (check.returncode, check.stdout.split(" | ")[0]) == (
        2, "PDAGENT CRITICAL - pdagentd is not running: no /var/run/pdagent/pdagentd.pid; 0 pending; 0 in error")
    assert service("stop") == 0
    assert service("start") == 0
    assert service("status") == 0
    killed = pid_from_file()
    os.kill(killed, 9)  # kill -9 leaves the pid file
    wait_for(lambda: killed not in daemon_pids(), 5, message="the killed daemon to go")
    assert service("status") == 1
    assert service("start") == 0  # the stale pid file does not block
    assert service("restart") == 0
    assert service("status") == 0

    # 4. Upgrade with events pending and proxy lines in the unit.
    assert service("stop") == 0
    for number in range(2):
        as_user("/usr/bin/pd-send", "-k", KEY_UPGRADE, "-t", "trigger", "-d", f"pending {number}")
    assert queue_status()[KEY_UPGRADE] == (2, 0, 0)
    unit = Path("/lib/systemd/system/pdagent.service")
    unit.write_text(unit.read_text().replace('#Environment="http', 'Environment="http'))
    # The pdagent account plants what root's scripts once followed or trusted.
    as_pdagent(f"cd /var/lib/pdagent && ln -sf {SECRET_FILE} agent_id.txt && ln -sf {SECRET_FILE} fqdn.txt"
               f" && mv db db.planted && ln -s {SECRET_DIR} db && ln -s {SECRET_FILE} .unit-proxy-environment"
               f" && mv scripts scripts.planted && ln -s {SECRET_SCRIPTS_DIR} scripts")
    refused = as_pdagent("mv /var/lib/pdagent/outqueue/suc /var/lib/pdagent/outqueue/suc.planted", check=False)
    assert refused.returncode != 0  # outqueue/ is root's now: its entries stay
    root_look_alike = subprocess.Popen(["bash", "-c", "exec -a pdagentd sleep 300"])
    try:
        wait_for(lambda: b"pdagentd" in Path(f"/proc/{root_look_alike.pid}/cmdline").read_bytes(), 5,
                 message="the look-alike's command line")
        as_pdagent(f"echo {root_look_alike.pid} > /var/run/pdagent/pdagentd.pid")
        upgrade = apt_get_install(str(machine["upgrade_deb"]))
        assert root_look_alike.poll() is None  # root's process named in the pid file lives
    finally:
        root_look_alike.kill()
        root_look_alike.wait()
    assert dpkg_status() == f"install ok installed {UPGRADE_VERSION}"
    assert {path: mode_owner(path) for path in secrets} == secrets
    assert list(SECRET_DIR.iterdir()) == [] and SECRET_FILE.read_text() == "root's only\n"
    assert admins_scripts_dir() == admins_files  # nothing written through the link
    assert_copies(tmp_path)
    assert not PWNED.exists()
    text = unit.read_text()
    assert "planted" not in text and "ExecStartPre=+" not in text
    lines = text.splitlines()
    at = lines.index("ExecStartPre=/bin/chown -R pdagent:pdagent /var/run/pdagent")
    assert lines[at + 1:at + 3] == ['Environment="http_proxy=http://proxy:3128/"',
                                    'Environment="https_proxy=http://proxy:3128/"']
    assert [line for line in lines if "_proxy=" in line and not line.startswith("#")] == lines[at + 1:at + 3]
    assert os.readlink("/var/lib/pdagent/.unit-proxy-environment") == str(SECRET_FILE)  # not used
    assert mode_owner("/var/lib/pdagent-upgrade") == ("0o700", "root", "root")
    assert os.listdir("/var/lib/pdagent-upgrade") == []  # the saved lines went back, then went
    assert_spool_layout()  # db/ a directory again, the link moved aside
    assert os.readlink(next(Path("/var/lib/pdagent").glob("db.pdagent-moved-*"))) == str(SECRET_DIR)
    said = upgrade.stdout + upgrade.stderr
    assert "/var/lib/pdagent/agent_id.txt is a symbolic link: left as it is" in said
    assert "/var/lib/pdagent/scripts was a symbolic link: removed it" in said
    bodies = wait_for_events(standin, KEY_UPGRADE, 2)
    assert sorted(body["payload"]["summary"] for body in bodies) == ["pending 0", "pending 1"]
    assert process_user(pid_from_file()) == "pdagent"

    # The admin drops the proxy lines; the pdagent account writes unit lines where older
    # versions kept the saved ones. A reinstall splices none of them into the unit.
    unit.write_text(unit.read_text().replace('\nEnvironment="http', '\n#Environment="http'))
    as_pdagent(f"cd /var/lib/pdagent && rm .unit-proxy-environment"
               f" && printf '%s\\n' 'ExecStartPre=+/bin/touch {PWNED}'"
               " 'Environment=\"http_proxy=http://planted.invalid:3128/\"' > .unit-proxy-environment")
    apt_get_install("--reinstall", str(machine["upgrade_deb"]))
    text = unit.read_text()
    assert "planted" not in text and "ExecStartPre=+" not in text and not PWNED.exists()
    assert not [line for line in text.splitlines() if "_proxy=" in line and not line.startswith("#")]
    assert wait_for(pid_from_file, 10, message="the daemon's pid file after the reinstall")

    # 5. Remove (not purge): the daemon stops, the code goes, config and spool stay.
    run(["apt-get", "remove", "-y", "-q", "pdagent"], env=APT_ENV)
    assert not daemon_pids()
    assert not os.path.exists("/usr/bin/pdagentd")
    assert os.path.exists("/etc/init.d/pdagent") and os.path.exists("/etc/pdagent.conf")
    assert os.path.isdir("/var/lib/pdagent/outqueue/suc")
    assert service("start") == 0 and not daemon_pids()  # the leftover init script does nothing
    assert os.path.islink("/etc/systemd/system/pdagent.service")  # masked until purge

    # 6. Purge: nothing left.
    run(["apt-get", "purge", "-y", "-q", "pdagent"], env=APT_ENV)
    assert dpkg_status() == ""
    assert run(["getent", "passwd", "pdagent"], check=False).returncode != 0
    assert run(["getent", "group", "pdagent"], check=False).returncode != 0
    assert [path for path in PDAGENT_PATHS if os.path.lexists(path)] == []
    assert not list(Path("/etc").glob("rc?.d/*pdagent"))
    assert not daemon_pids()


def assert_original_paths_and_man_pages(pid):
    """The original agent's paths exist and run; the daemon runs as its pdagentd.py, which a
    process check matching the name finds; `man pd-send` shows the page."""
    for path in ORIGINAL_PATHS:
        assert mode_owner(path) == ("0o755", "root", "root"), path
        result = run([path, "--help"])
        assert result.stdout.startswith("usage: "), path
    found = run(["pgrep", "-u", "pdagent", "-f", "pdagentd.py"]).stdout.split()
    # (Less the zombies of the daemon's double fork that this container's init never reaps.)
    assert [found_pid for found_pid in found if not zombie(int(found_pid))] == [str(pid)]
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        assert cmdline.read().split(b"\0")[:3] == [b"/usr/bin/python3", b"-s", DAEMON.encode()]
    pages = {**{name: name for name in COMMANDS}, "pd-send.py": "pd-send", "pd-queue.py": "pd-queue"}
    for name, page in pages.items():  # man follows pd-send.py.1.gz, a link, to pd-send's page
        assert run(["man", "-w", name]).stdout.strip() == f"/usr/share/man/man1/{page}.1.gz", name
    page = run(["man", "pd-send"], env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "80", "LC_ALL": "C.UTF-8"})
    assert "pd-send - queue an event for the PagerDuty Events API v2" in page.stdout
    assert "--event-file FILE" in page.stdout
    installed = subprocess.run(["zcat", "/usr/share/man/man1/pd-queue.1.gz"], capture_output=True, check=True)
    assert installed.stdout == (ROOT / "man" / "pd-queue.1").read_bytes()


def assert_monitoring_user_gets_access(pid):
    """`pd-queue check` as root is OK; as the monitoring user UNKNOWN, with the advice, which,
    taken, makes it OK: the spool and /var/run/pdagent are readable by the group pdagent."""
    ok = f"PDAGENT OK - pdagentd running (pid {pid}); 0 pending; 0 in error"
    root_check = run(["/usr/bin/pd-queue", "check"], check=False)
    assert (root_check.returncode, root_check.stdout.split(" | ")[0]) == (0, ok)
    outside = run(["runuser", "-u", USER, "--", "/usr/bin/pd-queue", "check"], check=False, cwd="/")
    assert (outside.returncode, outside.stdout) == (3, (
        "PDAGENT UNKNOWN - cannot list /var/lib/pdagent/outqueue/pdq: Permission denied (add "
        f"{USER} to the group pdagent that may read the spool: adduser {USER} pdagent)\n"))
    run(["adduser", "--quiet", USER, "pdagent"])
    try:
        inside = run(["runuser", "-u", USER, "--", "/usr/bin/pd-queue", "check"], check=False, cwd="/")
        assert (inside.returncode, inside.stdout.split(" | ")[0]) == (0, ok), inside.stdout + inside.stderr
        metrics = run(["runuser", "-u", USER, "--", "/usr/bin/pd-queue", "metrics"], cwd="/")
        assert "\npdagent_daemon_up 1\n" in metrics.stdout
    finally:
        run(["gpasswd", "--delete", USER, "pdagent"])


def test_upgrade_from_copies_shipped_in_var_lib_with_scripts_a_link(machine, tmp_path):
    """The original agent shipped its copies in /var/lib/pdagent/scripts, which its account
    then replaced by a link to a root directory holding files of the same names: dpkg would
    remove them by path through it. The install removes the link first: none of them goes."""
    install_original_agent(machine)
    admins_files = make_admins_scripts_dir()
    as_pdagent(f"cd /var/lib/pdagent && mv scripts scripts.planted && ln -s {SECRET_SCRIPTS_DIR} scripts")

    result = apt_get_install("-o", "Dpkg::Options::=--force-confold", str(machine["deb"]))
    assert dpkg_status() == f"install ok installed {VERSION}", result.stdout
    assert admins_scripts_dir() == admins_files
    assert "/var/lib/pdagent/scripts was a symbolic link: removed it" in result.stdout + result.stderr
    assert_copies(tmp_path)
