"""The .deb and .rpm: built with packaging/build-*.sh, then inspected without installing them.

File lists, modes and owners, conffiles, dependencies, maintainer scripts and
scriptlets (`sh -n`), launchers (run from the unpacked tree), lintian (no
errors), `systemd-analyze verify` on the unit, the init script's LSB actions
and exit codes (on a copy driving a fake daemon), and the lines the Agent
guide tells users to look for.

A tool that is missing skips its tests, except under CI=true, where it fails:
`make test` installs lintian and rpm.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
VERSION = re.search(r'^__version__ = "([^"]+)"', (ROOT / "pdagent" / "__init__.py").read_text(),
                    re.MULTILINE).group(1)
IN_CI = os.environ.get("CI") == "true"

COMMANDS = {
    "pd-send": "pdagent.cli.pd_send",
    "pd-queue": "pdagent.cli.pd_queue",
    "pdagentd": "pdagent.cli.pdagentd",
    "pd-nagios": "pdagent.integrations.nagios",
    "pd-zabbix": "pdagent.integrations.zabbix",
    "pd-sensu": "pdagent.integrations.sensu",
}
DEB_PYTHON_DIR = "usr/lib/python3/dist-packages"
RPM_PYTHON_DIR = "usr/lib/python3.9/site-packages"  # build-rpm.sh's default
DEPENDENCIES = ["python3 (>= 3.8)", "python3-requests", "python3-daemon", "python3-lockfile"]

# The Agent guide's lines (users search for them to add their proxy settings).
GUIDE_UNIT_LINE = "ExecStartPre=/bin/chown -R pdagent:pdagent /var/run/pdagent"
GUIDE_UNIT_PROXY = ['#Environment="http_proxy=http://proxy:3128/"',
                    '#Environment="https_proxy=http://proxy:3128/"']
GUIDE_INIT_LINE = "PID_FILE=$PID_DIR/pdagentd.pid"
GUIDE_INIT_PROXY = ["#export http_proxy=http://proxy:3128/", "#export https_proxy=http://proxy:3128/"]


def require(tool):
    if shutil.which(tool) is None:
        message = f"{tool} is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def run(argv, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(argv, check=kwargs.pop("check", False), **kwargs)


def source_python_files():
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / "pdagent").rglob("*.py")
                  if "__pycache__" not in path.parts)


def launcher_text(module):
    return f"#!/usr/bin/python3 -s\nimport sys\n\nfrom {module} import main\n\nsys.exit(main())\n"


# -- building ------------------------------------------------------------------------------

def build(script, out_dir, **env):
    result = run(["sh", str(PACKAGING / script)],
                 env={**os.environ, "PDAGENT_DIST_DIR": str(out_dir), **env})
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}{result.stderr}"
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == out_dir
    return path


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    require("dpkg-deb")
    base = tmp_path_factory.mktemp("deb")
    path = build("build-deb.sh", base / "dist")
    tree, control = base / "tree", base / "control"
    assert run(["dpkg-deb", "-x", str(path), str(tree)]).returncode == 0
    assert run(["dpkg-deb", "-e", str(path), str(control)]).returncode == 0
    listing = run(["dpkg-deb", "-c", str(path)], check=True).stdout
    entries = {}
    for line in listing.splitlines():
        perms, owner, _size, _date, _time, name = line.split(None, 5)
        entries[name[2:].rstrip("/")] = (perms, owner)  # "./usr/bin/" -> "usr/bin"
    entries.pop("", None)
    return {"path": path, "tree": tree, "control": control, "entries": entries}


@pytest.fixture(scope="module")
def rpm(tmp_path_factory):
    require("rpmbuild")
    base = tmp_path_factory.mktemp("rpm")
    path = build("build-rpm.sh", base / "dist")
    fmt = "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]"
    listing = run(["rpm", "-qp", "--queryformat", fmt, str(path)], check=True).stdout
    entries = {}
    for line in listing.splitlines():
        perms, user, group, name = line.split(None, 3)
        entries[name.lstrip("/")] = (perms, f"{user}/{group}")
    return {"path": path, "entries": entries}


def rpm_query(path, *args):
    return run(["rpm", "-qp", *args, str(path)], check=True).stdout


# -- .deb ------------------------------------------------------------------------------------

def expected_deb_files():
    files = {f"usr/bin/{name}" for name in COMMANDS}
    files |= {f"{DEB_PYTHON_DIR}/{name}" for name in source_python_files()}
    files |= {"etc/pdagent.conf", "etc/init.d/pdagent", "lib/systemd/system/pdagent.service",
              "var/lib/pdagent/scripts/pdagent.service", "var/lib/pdagent/scripts/pdagent.init",
              "usr/share/doc/pdagent/copyright", "usr/share/doc/pdagent/changelog.gz"}
    if (ROOT / "README.md").exists():
        files.add("usr/share/doc/pdagent/README.md")
    return files


EXECUTABLES = {f"usr/bin/{name}" for name in COMMANDS} | {
    "etc/init.d/pdagent", "var/lib/pdagent/scripts/pdagent.init"}


def test_deb_file_list(deb):
    files = {name for name, (perms, _) in deb["entries"].items() if not perms.startswith("d")}
    assert files == expected_deb_files()
    assert not [name for name in deb["entries"] if "__pycache__" in name or name.endswith(".pyc")]
    assert deb["path"].name == f"pdagent_{VERSION}_all.deb"


def test_deb_modes_and_owners(deb):
    for name, (perms, owner) in deb["entries"].items():
        assert owner == "root/root", name
        if perms.startswith("d"):
            assert perms == "drwxr-xr-x", name
        elif name in EXECUTABLES:
            assert perms == "-rwxr-xr-x", name
        else:
            assert perms == "-rw-r--r--", name
    # The spool, logs and pid directories are made by the postinst, with their modes.
    assert not [name for name in deb["entries"] if name.startswith(("var/log", "var/run", "run/"))]
    assert not [name for name in deb["entries"] if name.startswith("var/lib/pdagent/outqueue")]


def test_deb_control_fields(deb):
    fields = {}
    for line in (deb["control"] / "control").read_text().splitlines():
        if line and not line.startswith(" "):
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    assert fields["Package"] == "pdagent"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "all"
    depends = [item.strip() for item in fields["Depends"].split(",")]
    for dependency in DEPENDENCIES:
        assert dependency in depends
    # Nothing vendored, nothing from PyPI: only the distribution's packages (+ adduser for the user).
    assert set(depends) == set(DEPENDENCIES) | {"adduser"}
    # Over the original agent: its integrations package is replaced by this one.
    assert "pdagent-integrations (<< 2)" in fields["Replaces"]
    assert "pdagent-integrations (<< 2)" in fields["Breaks"]


def test_deb_conffiles_and_trigger(deb):
    conffiles = (deb["control"] / "conffiles").read_text().split()
    assert sorted(conffiles) == ["/etc/init.d/pdagent", "/etc/pdagent.conf"]
    # A new default python3 re-runs the postinst's byte-compiling.
    assert (deb["control"] / "triggers").read_text() == "interest-noawait /usr/bin/python3\n"
    assert "triggered)" in (deb["control"] / "postinst").read_text()
    assert (deb["tree"] / "etc/pdagent.conf").read_bytes() == (ROOT / "conf/pdagent.conf").read_bytes()


def test_deb_md5sums_cover_every_non_conffile(deb):
    listed = {line.split(None, 1)[1] for line in (deb["control"] / "md5sums").read_text().splitlines()}
    assert listed == {name for name in expected_deb_files() if not name.startswith("etc/")}


@pytest.mark.parametrize("script", ["preinst", "postinst", "prerm", "postrm"])
def test_deb_maintainer_scripts_are_clean_sh(deb, script):
    path = deb["control"] / script
    text = path.read_text()
    assert os.access(path, os.X_OK)
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -e\n" in text
    assert "#PDAGENT_FUNCTIONS#" not in text and "pdagent_stop()" in text
    result = run(["sh", "-n", str(path)])
    assert result.returncode == 0, result.stderr
    if shutil.which("dash"):
        assert run(["dash", "-n", str(path)]).returncode == 0


def test_deb_postinst_does_what_the_contract_says(deb):
    text = (deb["control"] / "postinst").read_text()
    assert '"$PDAGENT_PYTHON" -m compileall' in text and "PDAGENT_PYTHON=/usr/bin/python3" in text
    assert "pycompile" not in text and "py3compile" not in text
    for mode, path in [("02753", "/var/lib/pdagent/outqueue/tmp"),
                       ("02753", "/var/lib/pdagent/outqueue/pdq"),
                       ("02750", "/var/lib/pdagent/outqueue/suc"),
                       ("02750", "/var/lib/pdagent/outqueue/err"),
                       ("00750", "/var/lib/pdagent/db"), ("00750", "/var/log/pdagent"),
                       ("00750", "/var/run/pdagent"), ("00755", "/var/lib/pdagent")]:
        assert re.search(rf"pdagent_dir {mode} pdagent:pdagent {re.escape(path)}$", text, re.MULTILINE), path
    assert "adduser --system" in text and "update-rc.d pdagent defaults" in text
    assert "[ -d /run/systemd/system ]" in text and "invoke-rc.d pdagent start" in text
    postrm = (deb["control"] / "postrm").read_text()
    for path in ["/etc/pdagent.conf", "/var/lib/pdagent", "/var/log/pdagent", "/var/run/pdagent"]:
        assert path in postrm
    assert "deluser" in postrm and "delgroup" in postrm


def test_deb_maintainer_scripts_pass_shellcheck(deb):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (optional)")
    scripts = [str(deb["control"] / name) for name in ("preinst", "postinst", "prerm", "postrm")]
    result = run(["shellcheck", "-s", "sh", "-S", "warning", "-e", "SC2034", *scripts,
                  str(PACKAGING / "pdagent.init"), str(PACKAGING / "stage.sh"),
                  str(PACKAGING / "build-deb.sh"), str(PACKAGING / "build-rpm.sh")])
    assert result.returncode == 0, result.stdout


def test_deb_lintian_shows_no_errors(deb):
    require("lintian")
    result = run(["lintian", "--tag-display-limit", "0", str(deb["path"])])
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("E:")]
    assert not errors, "\n".join(lines)
    print("\n".join(line for line in lines if line.startswith("W:")))


def test_deb_launchers(deb):
    """Each is the tiny template, and runs its module's main() from the unpacked tree."""
    site = deb["tree"] / DEB_PYTHON_DIR
    for name, module in COMMANDS.items():
        launcher = deb["tree"] / "usr/bin" / name
        assert launcher.read_text() == launcher_text(module)
        # Run with this interpreter (the system one may lack requests/daemon before install).
        result = run([sys.executable, "-s", str(launcher), "--help"],
                     env={**os.environ, "PYTHONPATH": str(site)}, cwd="/")
        assert result.returncode == 0, f"{name} --help: {result.stderr}"
        assert result.stdout.startswith("usage: "), name


def test_deb_ships_the_unit_and_init_script_and_their_copies(deb):
    tree = deb["tree"]
    unit = (PACKAGING / "pdagent.service").read_bytes()
    init = (PACKAGING / "pdagent.init").read_bytes()
    assert (tree / "lib/systemd/system/pdagent.service").read_bytes() == unit
    assert (tree / "var/lib/pdagent/scripts/pdagent.service").read_bytes() == unit
    assert (tree / "etc/init.d/pdagent").read_bytes() == init
    assert (tree / "var/lib/pdagent/scripts/pdagent.init").read_bytes() == init


def test_build_deb_takes_a_version(tmp_path):
    require("dpkg-deb")
    path = build("build-deb.sh", tmp_path, PDAGENT_DEB_VERSION="2.0.0+test1")
    assert path.name == "pdagent_2.0.0+test1_all.deb"
    assert run(["dpkg-deb", "-f", str(path), "Version"]).stdout.strip() == "2.0.0+test1"


# -- the systemd unit -------------------------------------------------------------------

def unit_settings():
    settings = {}
    for line in (PACKAGING / "pdagent.service").read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """On a copy whose ExecStart binary exists here; every other line is the shipped one."""
    require("systemd-analyze")
    daemon = tmp_path / "pdagentd"
    daemon.write_text("#!/bin/sh\nexit 0\n")
    daemon.chmod(0o755)
    text = (PACKAGING / "pdagent.service").read_text()
    assert text.count("ExecStart=/usr/bin/pdagentd -f\n") == 1
    copy = tmp_path / "pdagent.service"
    copy.write_text(text.replace("ExecStart=/usr/bin/pdagentd -f", f"ExecStart={daemon} -f"))
    result = run(["systemd-analyze", "verify", "--man=no", str(copy)])
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_settings():
    settings = unit_settings()
    assert settings["ExecStart"] == ["/usr/bin/pdagentd -f"]
    assert settings["Type"] == ["simple"]
    assert settings["User"] == ["pdagent"] and settings["Group"] == ["pdagent"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["TimeoutStopSec"] == ["15"]
    assert "PermissionsStartOnly" not in settings
    assert settings["RuntimeDirectory"] == ["pdagent"]
    assert settings["ProtectSystem"] == ["strict"]
    assert sorted(" ".join(settings["ReadWritePaths"]).split()) == [
        "/var/lib/pdagent", "/var/log/pdagent", "/var/run/pdagent"]
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "PrivateDevices"):
        assert settings[key] == ["yes"], key
    assert settings["WantedBy"] == ["multi-user.target"]


def test_unit_has_the_guides_lines():
    lines = (PACKAGING / "pdagent.service").read_text().splitlines()
    assert lines.count(GUIDE_UNIT_LINE) == 1
    at = lines.index(GUIDE_UNIT_LINE)
    assert at < 12  # "approximately line #8"
    assert lines[at + 1:at + 3] == GUIDE_UNIT_PROXY


# -- the SysV init script --------------------------------------------------------------------

def test_init_script_is_clean_sh_with_an_lsb_header():
    path = PACKAGING / "pdagent.init"
    assert run(["sh", "-n", str(path)]).returncode == 0
    text = path.read_text()
    header = text[text.index("### BEGIN INIT INFO"):text.index("### END INIT INFO")]
    for field in ("Provides:          pdagent", "Required-Start:", "Required-Stop:",
                  "Default-Start:     2 3 4 5", "Default-Stop:      0 1 6", "Short-Description:"):
        assert field in header
    assert "# chkconfig: 2345" in text  # RHEL's chkconfig reads this one


def test_init_script_has_the_guides_lines():
    lines = (PACKAGING / "pdagent.init").read_text().splitlines()
    assert "PID_DIR=/var/run/pdagent" in lines and "DAEMON=/usr/bin/pdagentd" in lines
    at = lines.index(GUIDE_INIT_LINE)
    assert lines[at + 1:at + 4] == [""] + GUIDE_INIT_PROXY


FAKE_DAEMON = """\
import os, signal, sys, time
pid_dir, mode = sys.argv[1], sys.argv[2]
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
if mode == "deaf":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(os.path.join(pid_dir, "pdagentd.pid"), "w") as pid_file:
    pid_file.write(f"{os.getpid()}\\n")
while True:
    time.sleep(1)
"""


class InitCopy:
    """The init script with DAEMON, its user and PID_DIR pointed at a sandbox; logic untouched."""

    def __init__(self, base, mode="normal"):
        self.pid_dir = base / "run"
        fake = base / "pdagentd"
        fake.write_text(f"#!/bin/sh\nexec {sys.executable} {base / 'fake_pdagentd.py'} {self.pid_dir} {mode}\n")
        fake.chmod(0o755)
        (base / "fake_pdagentd.py").write_text(FAKE_DAEMON)
        replacements = {"DAEMON=/usr/bin/pdagentd": f"DAEMON={fake}",
                        "DAEMON_USER=pdagent": "DAEMON_USER=root",
                        "DAEMON_GROUP=pdagent": "DAEMON_GROUP=root",
                        "PID_DIR=/var/run/pdagent": f"PID_DIR={self.pid_dir}",
                        "STOP_TIMEOUT=15": "STOP_TIMEOUT=2"}
        text = (PACKAGING / "pdagent.init").read_text()
        for old, new in replacements.items():
            assert text.count(old + "\n") == 1, old
            text = text.replace(old + "\n", new + "\n")
        self.script = base / "pdagent"
        self.script.write_text(text)
        self.script.chmod(0o755)

    def __call__(self, action):
        result = run([str(self.script), action], timeout=40)
        return result.returncode

    def pid(self):
        try:
            return int((self.pid_dir / "pdagentd.pid").read_text())
        except FileNotFoundError:
            return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and ("Z" in line or "X" in line)
                           for line in status)
    except FileNotFoundError:
        return False


@pytest.fixture
def init_copy(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the init script's start/stop need root")
    script = InitCopy(tmp_path)
    yield script
    pid = script.pid()
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_init_script_actions_and_lsb_exit_codes(init_copy):
    init = init_copy
    assert init("status") == 3
    assert init("stop") == 0  # stopping a stopped service succeeds
    assert init("start") == 0
    first = init.pid()
    assert first and alive(first)
    assert stat.S_IMODE(init.pid_dir.stat().st_mode) == 0o750
    assert init("status") == 0
    assert init("start") == 0 and init.pid() == first  # already running: left alone
    assert init("restart") == 0
    second = init.pid()
    assert second != first and alive(second) and not alive(first)
    assert init("force-reload") == 0 and alive(init.pid())
    assert init("try-restart") == 0 and alive(init.pid())
    assert init("reload") == 3
    assert init("bogus") == 2

    os.kill(init.pid(), signal.SIGKILL)  # a killed daemon leaves its pid file
    time.sleep(0.2)
    assert init("status") == 1
    assert init("start") == 0  # the stale pid file does not block the start
    assert alive(init.pid())
    last = init.pid()
    assert init("stop") == 0
    assert not alive(last) and init.pid() is None
    assert init("status") == 3
    assert init("try-restart") == 0 and init.pid() is None  # not running: stays stopped


def test_init_script_kills_a_daemon_that_ignores_sigterm(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the init script's start/stop need root")
    init = InitCopy(tmp_path, mode="deaf")
    try:
        assert init("start") == 0
        pid = init.pid()
        started = time.monotonic()
        assert init("stop") == 0
        assert 0.9 < time.monotonic() - started < 10  # waited STOP_TIMEOUT (2 s, whole seconds), then SIGKILL
        assert not alive(pid)
    finally:
        pid = init.pid()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_init_script_status_as_a_user_who_cannot_read_the_pid_dir():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    base = Path(tempfile.mkdtemp(prefix="pdagent-init-"))  # pytest's tmp dirs are root-only
    try:
        base.chmod(0o755)
        init = InitCopy(base)
        init.pid_dir.mkdir(mode=0o700)
        result = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                      str(init.script), "status"])
        assert result.returncode == 4, result.stdout + result.stderr
        assert "run as root" in result.stderr
    finally:
        shutil.rmtree(base)


# -- .rpm ---------------------------------------------------------------------------------------

def expected_rpm_entries():
    """path -> (perms, owner) of what the rpm holds, the same files as the .deb."""
    entries = {}
    for name in expected_deb_files():
        mode = "-rwxr-xr-x" if name in EXECUTABLES else "-rw-r--r--"
        name = (name.replace(DEB_PYTHON_DIR, RPM_PYTHON_DIR)
                .replace("lib/systemd/system/", "usr/lib/systemd/system/")
                .replace("etc/init.d/", "etc/rc.d/init.d/"))
        if name.startswith("usr/share/doc/pdagent/") and name != "usr/share/doc/pdagent/README.md":
            continue  # Debian-only: copyright goes to the rpm's %license, no changelog.gz
        entries[name] = (mode, "root/root")
    entries["usr/share/licenses/pdagent/copyright"] = ("-rw-r--r--", "root/root")
    entries.setdefault("usr/share/doc/pdagent/README.md", ("-rw-r--r--", "root/root"))
    for name, mode in [("var/lib/pdagent", "drwxr-xr-x"), ("var/lib/pdagent/outqueue", "drwxr-xr-x"),
                       ("var/lib/pdagent/outqueue/tmp", "drwxr-s-wx"),
                       ("var/lib/pdagent/outqueue/pdq", "drwxr-s-wx"),
                       ("var/lib/pdagent/outqueue/suc", "drwxr-s---"),
                       ("var/lib/pdagent/outqueue/err", "drwxr-s---"),
                       ("var/lib/pdagent/db", "drwxr-x---"), ("var/log/pdagent", "drwxr-x---")]:
        entries[name] = (mode, "pdagent/pdagent")
    return entries


def test_rpm_files_modes_and_owners(rpm):
    assert rpm["path"].name == f"pdagent-{VERSION}-1.noarch.rpm"
    files = {name: value for name, value in rpm["entries"].items() if not value[0].startswith("d")}
    expected = expected_rpm_entries()
    assert files == {name: value for name, value in expected.items() if not value[0].startswith("d")}
    for name, value in expected.items():
        if value[0].startswith("d"):
            assert rpm["entries"].get(name) == value, name
    assert not [name for name in rpm["entries"] if "__pycache__" in name or name.endswith(".pyc")]


def test_rpm_requires_and_config_files(rpm):
    requires = {line.strip() for line in rpm_query(rpm["path"], "--requires").splitlines()}
    for item in ("python3 >= 3.8", "python3-requests", "python3-daemon", "python3-lockfile",
                 "python(abi) = 3.9", "shadow-utils"):
        assert item in requires, item
    assert sorted(rpm_query(rpm["path"], "-c").split()) == ["/etc/pdagent.conf", "/etc/rc.d/init.d/pdagent"]
    assert "pdagent-integrations < 2" in rpm_query(rpm["path"], "--obsoletes")


@pytest.mark.parametrize("tag", ["PREIN", "POSTIN", "PREUN", "POSTUN"])
def test_rpm_scriptlets_are_clean_sh(rpm, tag, tmp_path):
    body = rpm_query(rpm["path"], "--queryformat", f"%{{{tag}}}")
    prog = rpm_query(rpm["path"], "--queryformat", f"%{{{tag}PROG}}")
    assert body.strip() and body != "(none)", tag
    assert prog.strip() == "/bin/sh"
    script = tmp_path / tag
    script.write_text(body)
    result = run(["sh", "-n", str(script)])
    assert result.returncode == 0, result.stderr
    if tag == "POSTIN":
        assert "/usr/bin/python3 -m compileall" in body and "systemctl" in body


def test_rpm_launchers_and_unit(rpm, tmp_path):
    require("rpm2archive")
    tree = tmp_path / "tree"
    with open(rpm["path"], "rb") as package, open(tmp_path / "payload.tar", "wb") as payload:
        subprocess.run(["rpm2archive", "-n", "-"], stdin=package, stdout=payload, check=True)
    with tarfile.open(tmp_path / "payload.tar") as archive:
        archive.extractall(tree)
    for name, module in COMMANDS.items():
        assert (tree / "usr/bin" / name).read_text() == launcher_text(module)
    unit = (PACKAGING / "pdagent.service").read_bytes()
    assert (tree / "usr/lib/systemd/system/pdagent.service").read_bytes() == unit
    assert (tree / "var/lib/pdagent/scripts/pdagent.service").read_bytes() == unit


def test_build_rpm_takes_a_version(tmp_path):
    require("rpmbuild")
    path = build("build-rpm.sh", tmp_path, PDAGENT_RPM_VERSION="2.0.0+test1", PDAGENT_RPM_RELEASE="2")
    assert path.name == "pdagent-2.0.0+test1-2.noarch.rpm"
