"""The .deb and .rpm: built with packaging/build-*.sh, then inspected without installing them.

File lists, modes and owners, conffiles, dependencies, maintainer scripts and
scriptlets (`sh -n`), launchers (run from the unpacked tree, the original
agent's paths among them), man pages, lintian (no errors, no warnings),
`systemd-analyze verify` on the unit, the init script's LSB actions
and exit codes (on a copy driving a fake daemon), and the lines the Agent
guide tells users to look for. pdagent/layout.py, which root's package
scripts run to set the directories, runs for real against a directory tree
where the daemon's user planted links (as root, with real users).

A tool that is missing skips its tests, except under CI=true, where it fails:
`make test` installs lintian and rpm.
"""

import collections
import gzip
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from helpers import (
    OTHER_USER,
    as_user,
    ensure_daemon_user,
    ensure_user,
    lay_out,
    make_system_root,
    wait_for,
)

from pdagent import layout

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
VERSION = re.search(r'^__version__ = "([^"]+)"', (ROOT / "pdagent" / "__init__.py").read_text(),
                    re.MULTILINE).group(1)
IN_CI = os.environ.get("CI") == "true"

COMMANDS = {
    "pd-send": "pdagent.cli.pd_send",
    "pd-queue": "pdagent.cli.pd_queue",
    "pdagentd": "pdagent.cli.pdagentd",
    "pd-listen": "pdagent.cli.pd_listen",
    "pd-nagios": "pdagent.integrations.nagios",
    "pd-zabbix": "pdagent.integrations.zabbix",
    "pd-sensu": "pdagent.integrations.sensu",
}
# Every launcher: the commands in /usr/bin, and the original agent's paths (scripts call
# pd-send.py and pd-queue.py; the unit and the init script run the daemon as pdagentd.py).
LAUNCHERS = {**{f"usr/bin/{name}": module for name, module in COMMANDS.items()},
             "usr/bin/pd-send.py": COMMANDS["pd-send"], "usr/bin/pd-queue.py": COMMANDS["pd-queue"],
             "usr/share/pdagent/bin/pdagentd": COMMANDS["pdagentd"],
             "usr/share/pdagent/bin/pdagentd.py": COMMANDS["pdagentd"]}
DAEMON = "/usr/share/pdagent/bin/pdagentd.py"
MAN_DIR = "usr/share/man/man1"
# The monitoring tools' example configs: installed path -> source.
EXAMPLES = {f"usr/share/doc/pdagent/examples/{name}": f"conf/{name}" for name in (
    "nagios/pagerduty_nagios.cfg", "icinga2/pagerduty_icinga2.conf", "sensu/pagerduty_handler.json",
    "zabbix/README.md")}
# A launcher of another name in /usr/bin has a link to its command's page (lintian wants one).
MAN_LINKS = {f"{MAN_DIR}/pd-send.py.1.gz": "pd-send.1.gz", f"{MAN_DIR}/pd-queue.py.1.gz": "pd-queue.1.gz"}
LINTIAN_OVERRIDES = "usr/share/lintian/overrides/pdagent"
DEB_PYTHON_DIR = "usr/lib/python3/dist-packages"
# build-rpm.sh's targets: RHEL 9 runs python3 (3.9); RHEL 8 python3.6, since its /usr/bin/python3
# is an alternative another python3X may take (packaging/README.md).
RpmTarget = collections.namedtuple("RpmTarget", "python python_dir python_requires abi")
RPM_TARGETS = {
    "el9": RpmTarget("/usr/bin/python3", "usr/lib/python3.9/site-packages", "python3 >= 3.8", "3.9"),
    "el8": RpmTarget("/usr/bin/python3.6", "usr/lib/python3.6/site-packages", "/usr/bin/python3.6", "3.6"),
}
DEPENDENCIES = ["python3 (>= 3.8)", "python3-requests", "python3-daemon", "python3-lockfile"]

# The Agent guide's lines (users search for them to add their proxy settings).
GUIDE_UNIT_LINE = "ExecStartPre=/bin/chown -R pdagent:pdagent /var/run/pdagent"
GUIDE_UNIT_PROXY = ['#Environment="http_proxy=http://proxy:3128/"',
                    '#Environment="https_proxy=http://proxy:3128/"']
GUIDE_INIT_LINE = "PID_FILE=$PID_DIR/pdagentd.pid"
GUIDE_INIT_PROXY = ["#export http_proxy=http://proxy:3128/", "#export https_proxy=http://proxy:3128/"]

COPIES_DIRECTORIES = {copy.path.rsplit("/", 1)[0] for copy in layout.COPIES}
# The rpm's %dir entries: not /var/run/pdagent (made at start-up, on a tmpfs), nor the
# copies' directory, made by pdagent.layout only (rpm would create it by path).
PACKAGED_DIRECTORIES = {directory.path for directory in layout.DIRECTORIES} - {"/var/run/pdagent"} \
    - COPIES_DIRECTORIES


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


def launcher_text(module, python="/usr/bin/python3"):
    return f"#!{python} -s\nimport sys\n\nfrom {module} import main\n\nsys.exit(main())\n"


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
    entries, links = {}, {}
    for line in listing.splitlines():
        perms, owner, _size, _date, _time, name = line.split(None, 5)
        name, _, target = name.partition(" -> ")
        entries[name[2:].rstrip("/")] = (perms, owner)  # "./usr/bin/" -> "usr/bin"
        if target:
            links[name[2:]] = target
    entries.pop("", None)
    return {"path": path, "tree": tree, "control": control, "entries": entries, "links": links}


@pytest.fixture(scope="module", params=sorted(RPM_TARGETS))
def rpm(request, tmp_path_factory):
    """The .rpm for each of build-rpm.sh's targets (el8, el9)."""
    require("rpmbuild")
    base = tmp_path_factory.mktemp(f"rpm-{request.param}")
    path = build("build-rpm.sh", base / "dist", PDAGENT_RPM_TARGET=request.param)
    fmt = "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]"
    listing = run(["rpm", "-qp", "--queryformat", fmt, str(path)], check=True).stdout
    entries = {}
    for line in listing.splitlines():
        perms, user, group, name = line.split(None, 3)
        entries[name.lstrip("/")] = (perms, f"{user}/{group}")
    return {"path": path, "entries": entries, "target": request.param, **RPM_TARGETS[request.param]._asdict()}


def rpm_query(path, *args):
    return run(["rpm", "-qp", *args, str(path)], check=True).stdout


# -- .deb ------------------------------------------------------------------------------------

def expected_deb_files():
    """The regular files of the .deb (MAN_LINKS are its only links)."""
    files = set(LAUNCHERS) | {f"{MAN_DIR}/{name}.1.gz" for name in COMMANDS} | {LINTIAN_OVERRIDES}
    files |= {f"{DEB_PYTHON_DIR}/{name}" for name in source_python_files()}
    files |= {"etc/pdagent.conf", "etc/init.d/pdagent", "lib/systemd/system/pdagent.service",
              "etc/init.d/pdagent-listen", "lib/systemd/system/pdagent-listen.service",
              "usr/share/pdagent/scripts/pdagent.service", "usr/share/pdagent/scripts/pdagent.init",
              "usr/share/doc/pdagent/copyright", "usr/share/doc/pdagent/changelog.gz", *EXAMPLES}
    if (ROOT / "README.md").exists():
        files.add("usr/share/doc/pdagent/README.md")
    return files


EXECUTABLES = set(LAUNCHERS) | {"etc/init.d/pdagent", "usr/share/pdagent/scripts/pdagent.init",
                                "etc/init.d/pdagent-listen"}


def test_deb_file_list(deb):
    files = {name for name, (perms, _) in deb["entries"].items() if perms.startswith("-")}
    assert files == expected_deb_files()
    assert deb["links"] == MAN_LINKS
    assert not [name for name in deb["entries"] if "__pycache__" in name or name.endswith(".pyc")]
    assert deb["path"].name == f"pdagent_{VERSION}_all.deb"


def test_deb_modes_and_owners(deb):
    for name, (perms, owner) in deb["entries"].items():
        assert owner == "root/root", name
        if perms.startswith("d"):
            assert perms == "drwxr-xr-x", name
        elif name in MAN_LINKS:
            assert perms == "lrwxrwxrwx", name
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
    assert sorted(conffiles) == ["/etc/init.d/pdagent", "/etc/init.d/pdagent-listen", "/etc/pdagent.conf"]
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
    assert '"$PDAGENT_PYTHON" -I -m compileall' in text and "PDAGENT_PYTHON=/usr/bin/python3" in text
    assert "pycompile" not in text and "py3compile" not in text
    # The directories come from pdagent/layout.py's table, set by the module itself.
    assert '(cd / && "$PDAGENT_PYTHON" -I -m pdagent.layout)' in text
    configure = text[text.index("    configure)"):text.index(";;", text.index("    configure)"))]
    assert configure.index("pdagent_create_user") < configure.index("pdagent_lay_out") \
        < configure.index("pdagent_restore_proxy_lines") < configure.index("pdagent_start")
    assert "adduser --system" in text and "update-rc.d pdagent defaults" in text
    assert "[ -d /run/systemd/system ]" in text and "invoke-rc.d pdagent start" in text
    postrm = (deb["control"] / "postrm").read_text()
    for path in ["/etc/pdagent.conf", "/var/lib/pdagent", "/var/log/pdagent", "/var/run/pdagent",
                 '"$PDAGENT_SAVE_DIR"']:
        assert path in postrm
    assert "deluser" in postrm and "delgroup" in postrm


# -- what root's package scripts do inside the daemon's directories --------------------------

DAEMON_DIRS = ("/var/lib/pdagent", "/var/log/pdagent", "/var/run/pdagent")
# Commands that follow a link, or write through one, when given a path.
FOLLOWING = re.compile(r"\b(chown|chmod|chgrp|mkdir|install|touch|cp|mv|ln|tee|sed -i|truncate)\b|>")


def links_followed(script):
    """The lines of a shell script that run a link-following command on a path inside one
    of DAEMON_DIRS (written out, or through a variable set to one)."""
    inside = [re.escape(directory) + "/" for directory in DAEMON_DIRS]
    values = {}
    for line in script.splitlines():
        assigned = re.match(r"\s*(\w+)=[\"']?([$/][^\s\"']*)", line)
        if assigned:
            value = re.sub(r"\$\{?(\w+)\}?", lambda match: values.get(match.group(1), ""), assigned.group(2))
            values[assigned.group(1)] = value
            if value.startswith(tuple(directory + "/" for directory in DAEMON_DIRS)):
                inside.append(re.escape("$" + assigned.group(1)) + r"\b")
    pattern = re.compile("|".join(inside))
    return [line for line in script.splitlines()
            if not line.lstrip().startswith("#") and FOLLOWING.search(re.sub(r"\d*>(&\d|\s*/dev/null)", "", line))
            and pattern.search(line)]


CHOWN_CHMOD = re.compile(r"(?m)^[^#\n]*(?<![\w/.-])(chown|chmod) ")  # run, not /bin/chown in a pattern


def test_links_followed_finds_what_it_looks_for():
    assert links_followed('D=/var/lib/pdagent\nF=$D/x\nchmod 0644 "$F"\n') == ['chmod 0644 "$F"']
    assert links_followed("grep x /etc/u > /var/lib/pdagent/.saved\n")
    assert links_followed('echo "pdagent: no /var/lib/pdagent/x" >&2\nrm -rf /var/lib/pdagent/x 2>/dev/null\n'
                          "mkdir /var/lib/pdagent-upgrade /var/run/pdagent\n") == []


RPM_SCRIPTLETS = ("PREIN", "POSTIN", "POSTTRANS", "PREUN", "POSTUN")


def rpm_scriptlets(path):
    return {tag: rpm_query(path, "--queryformat", f"%{{{tag}}}") for tag in RPM_SCRIPTLETS}


def test_deb_scripts_never_follow_the_daemons_links(deb):
    """Only pdagent/layout.py sets modes and owners in the daemon's directories; rm -rf is fine."""
    for script in ("preinst", "postinst", "prerm", "postrm"):
        text = (deb["control"] / script).read_text()
        assert links_followed(text) == [], script
        assert not CHOWN_CHMOD.search(text), script  # not even through a function
    assert links_followed((PACKAGING / "pdagent.init").read_text()) == []
    # The init script's pid directory is in /var/run (root's); not through a link, still.
    assert 'chown -h "$DAEMON_USER:$DAEMON_GROUP" "$PID_DIR"' in (PACKAGING / "pdagent.init").read_text()


def test_rpm_scriptlets_never_follow_the_daemons_links(rpm):
    for tag, body in rpm_scriptlets(rpm["path"]).items():
        assert links_followed(body) == [], tag
        assert not CHOWN_CHMOD.search(body) and "install -d" not in body, tag
    for tag in ("POSTIN", "POSTTRANS"):
        assert f"(cd / && {rpm['python']} -I -m pdagent.layout)" in rpm_scriptlets(rpm["path"])[tag]


def test_proxy_lines_are_kept_in_roots_own_place(deb, rpm):
    """One pattern, one save directory (not /var/lib/pdagent), for the .deb and the .rpm alike."""
    shared = (PACKAGING / "deb" / "unit-proxy.sh").read_text()
    assert "PDAGENT_SAVE_DIR=/var/lib/pdagent-upgrade\n" in shared
    assert shared.count("PDAGENT_PROXY_LINE=") == 1 and "%" not in shared  # the spec expands macros
    scripts = {name: (deb["control"] / name).read_text() for name in ("preinst", "postinst", "postrm")}
    scripts.update({f"rpm {tag}": body for tag, body in rpm_scriptlets(rpm["path"]).items()
                    if tag in ("PREIN", "POSTIN", "POSTUN")})
    for name, text in scripts.items():
        assert shared in text, name
        assert text.count("_proxy=") == 1, name  # nobody else spells the pattern
        assert ".unit-proxy-environment" not in text, name
    assert 'pdagent_save_proxy_lines "$PDAGENT_UNIT"' in scripts["preinst"]
    assert 'pdagent_restore_proxy_lines "$PDAGENT_UNIT"' in scripts["postinst"]
    assert "pdagent_save_proxy_lines /usr/lib/systemd/system/pdagent.service" in scripts["rpm PREIN"]
    assert "pdagent_restore_proxy_lines /usr/lib/systemd/system/pdagent.service" in scripts["rpm POSTIN"]
    assert '"$PDAGENT_SAVE_DIR"' in scripts["rpm POSTUN"]


def test_a_link_at_scripts_goes_before_an_upgrade_removes_the_old_copies(deb, rpm):
    """Versions that shipped the copies in /var/lib/pdagent/scripts have dpkg and rpm remove
    them by path in the upgrade: the pre-install scripts remove a link there first, with one
    helper for both packages (the system test runs it); the rpm removes the old package's
    files after %post, so %posttrans makes the copies again; an erase removes them."""
    shared = (PACKAGING / "deb" / "old-copies.sh").read_text()
    assert "%" not in shared  # the spec expands macros
    preinst = (deb["control"] / "preinst").read_text()
    scriptlets = rpm_scriptlets(rpm["path"])
    for text, before in ((preinst, "    install|upgrade)"), (scriptlets["PREIN"], 'if [ "$1" -gt 1 ]')):
        assert shared in text
        call = re.search(r"(?m)^\s+pdagent_drop_scripts_link$", text)
        assert call and text.index(before) < call.start()
    assert "rm -rf /var/run/pdagent /var/lib/pdagent/scripts " in scriptlets["POSTUN"]


def test_deb_maintainer_scripts_pass_shellcheck(deb):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (optional)")
    scripts = [str(deb["control"] / name) for name in ("preinst", "postinst", "prerm", "postrm")]
    result = run(["shellcheck", "-s", "sh", "-S", "warning", "-e", "SC2034", *scripts,
                  str(PACKAGING / "pdagent.init"), str(PACKAGING / "stage.sh"),
                  str(PACKAGING / "build-deb.sh"), str(PACKAGING / "build-rpm.sh")])
    assert result.returncode == 0, result.stdout


def test_deb_lintian_shows_no_errors_and_no_warnings(deb):
    """Not even no-manual-page; the .py launchers' script-with-language-extension is
    overridden, with the reason, in the package's lintian overrides."""
    require("lintian")
    result = run(["lintian", "--tag-display-limit", "0", str(deb["path"])])
    lines = (result.stdout + result.stderr).splitlines()
    problems = [line for line in lines if line.startswith(("E:", "W:"))]
    assert not problems, "\n".join(lines)
    overrides = (deb["tree"] / LINTIAN_OVERRIDES).read_text()
    assert [line for line in overrides.splitlines() if not line.startswith("#")] == [
        "pdagent: script-with-language-extension [usr/bin/pd-queue.py]",
        "pdagent: script-with-language-extension [usr/bin/pd-send.py]"]


def test_deb_launchers(deb):
    """Each is the tiny template, and runs its module's main() from the unpacked tree."""
    site = deb["tree"] / DEB_PYTHON_DIR
    for name, module in LAUNCHERS.items():
        launcher = deb["tree"] / name
        assert launcher.read_text() == launcher_text(module)
        # Run with this interpreter (the system one may lack requests/daemon before install).
        result = run([sys.executable, "-s", str(launcher), "--help"],
                     env={**os.environ, "PYTHONPATH": str(site)}, cwd="/")
        assert result.returncode == 0, f"{name} --help: {result.stderr}"
        assert result.stdout.startswith(f"usage: {module_prog(module)} "), name


def module_prog(module):
    return next(name for name, command_module in COMMANDS.items() if command_module == module)


def test_deb_man_pages(deb):
    """man/NAME.1 of each command, gzip -9n (no name, no time: the same bytes every build)."""
    for name in COMMANDS:
        page = deb["tree"] / MAN_DIR / f"{name}.1.gz"
        data = page.read_bytes()
        assert gzip.decompress(data) == (ROOT / "man" / f"{name}.1").read_bytes(), name
        assert data[3] & 0x08 == 0 and data[4:8] == b"\0\0\0\0", name  # no FNAME flag, MTIME 0
    for link, target in MAN_LINKS.items():
        assert os.readlink(deb["tree"] / link) == target


def assert_ships_the_copies_sources(entries, tree):
    """The sources of layout.COPIES, with their modes, in root's tree; below /var/lib/pdagent,
    which the pdagent account can change, nothing but the rpm's directories of the table."""
    for copy in layout.COPIES:
        source = copy.source.lstrip("/")
        assert entries[source] == (stat.filemode(stat.S_IFREG | copy.mode), "root/root"), source
        assert (tree / source).read_bytes() == (PACKAGING / source.rsplit("/", 1)[1]).read_bytes()
    assert [name for name, (perms, _) in entries.items() if name.startswith("var/lib/pdagent/")
            and not (perms.startswith("d") and f"/{name}" in PACKAGED_DIRECTORIES)] == []


def test_deb_ships_the_unit_and_init_script_and_their_copies_sources(deb):
    tree = deb["tree"]
    assert (tree / "lib/systemd/system/pdagent.service").read_bytes() == (PACKAGING / "pdagent.service").read_bytes()
    assert (tree / "etc/init.d/pdagent").read_bytes() == (PACKAGING / "pdagent.init").read_bytes()
    assert_ships_the_copies_sources(deb["entries"], tree)


def test_deb_ships_the_examples_where_the_man_pages_and_readme_point(deb):
    for installed, source in EXAMPLES.items():
        assert (deb["tree"] / installed).read_bytes() == (ROOT / source).read_bytes(), installed
    texts = {path.name: path.read_text() for path in [*(ROOT / "man").glob("*.1"), ROOT / "README.md"]}
    named = {name: set(re.findall(r"/usr/share/doc/pdagent/examples/[\w./-]*\w", text)) for name, text in texts.items()}
    assert {path.lstrip("/") for paths in named.values() for path in paths} == set(EXAMPLES)
    for name, text in texts.items():  # pointed to where they are installed, not by their source path
        assert not re.search(r"(?<![/\w])conf/(nagios|icinga2|sensu|zabbix)/", text), name


def test_build_deb_takes_a_version(tmp_path):
    require("dpkg-deb")
    path = build("build-deb.sh", tmp_path, PDAGENT_DEB_VERSION="2.0.0+test1")
    assert path.name == "pdagent_2.0.0+test1_all.deb"
    assert run(["dpkg-deb", "-f", str(path), "Version"]).stdout.strip() == "2.0.0+test1"


# -- the systemd unit -------------------------------------------------------------------

def unit_settings(unit="pdagent.service"):
    settings = {}
    for line in (PACKAGING / unit).read_text().splitlines():
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
    assert text.count(f"ExecStart={DAEMON} -f\n") == 1
    copy = tmp_path / "pdagent.service"
    copy.write_text(text.replace(f"ExecStart={DAEMON} -f", f"ExecStart={daemon} -f"))
    result = run(["systemd-analyze", "verify", "--man=no", str(copy)])
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_settings():
    settings = unit_settings()
    assert settings["ExecStart"] == [f"{DAEMON} -f"]  # as the original agent's unit
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


@pytest.mark.parametrize("unit", ["pdagent.service", "pdagent-listen.service"])
def test_units_start_where_user_namespaces_are_off(unit):
    """Hardened hosts turn user namespaces off (Debian's hardening-runtime sets
    user.max_user_namespaces = 0); systemd then fails a unit with PrivateUsers= (217/USER,
    systemd/systemd#34983) rather than run it without. Nothing else in the units needs them.
    (This machine may not change that sysctl, so no tree here runs without them.)"""
    settings = unit_settings(unit)
    assert "PrivateUsers" not in settings
    assert "DynamicUser" not in settings and "PrivatePIDs" not in settings


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
    assert "PID_DIR=/var/run/pdagent" in lines and f"DAEMON={DAEMON}" in lines
    at = lines.index(GUIDE_INIT_LINE)
    assert lines[at + 1:at + 4] == [""] + GUIDE_INIT_PROXY


FAKE_DAEMON = """\
#!{python}
import os, signal, sys, time
pid_dir, mode = {pid_dir!r}, {mode!r}
if os.environ.get("FAKE_PDAGENTD_FOREGROUND"):  # a look-alike, not started by the init script
    time.sleep(60)
    sys.exit(0)
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
    pid_file.write(f"{{os.getpid()}}\\n")
while True:
    time.sleep(1)
"""


class InitCopy:
    """The init script with DAEMON, its user and PID_DIR pointed at a sandbox; logic untouched.

    The fake daemon is a python script, as the real launcher is: its command line is
    the interpreter and DAEMON's path, which is what the init script checks.
    """

    def __init__(self, base, mode="normal"):
        self.pid_dir = base / "run"
        self.daemon = base / "pdagentd"
        self.daemon.write_text(FAKE_DAEMON.format(python=sys.executable, pid_dir=str(self.pid_dir), mode=mode))
        self.daemon.chmod(0o755)
        replacements = {f"DAEMON={DAEMON}": f"DAEMON={self.daemon}",
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


@pytest.fixture
def users_dir(agent_home):
    """A fresh directory other users can traverse (pytest's are root-only), as root with setpriv."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (real users) and setpriv")
    return Path(agent_home)


def test_init_script_signals_only_its_daemon_whatever_the_pid_file_says(users_dir):
    """The daemon's account writes the pid file: a pid of another user's process with the
    daemon's very command line, or of root's process that is not the daemon, is not stopped."""
    base = users_dir
    look_alikes = []
    try:
        init = InitCopy(base)
        init.pid_dir.mkdir(mode=0o755)
        env = {**os.environ, "FAKE_PDAGENTD_FOREGROUND": "1"}
        look_alikes.append(subprocess.Popen(as_user(*ensure_daemon_user(), [str(init.daemon)]), env=env))
        look_alikes.append(subprocess.Popen(["sleep", "60"]))
        for process in look_alikes:
            wait_for_cmdline(process.pid)
            (init.pid_dir / "pdagentd.pid").write_text(f"{process.pid}\n")
            assert init("status") == 1  # a pid file, no daemon
            assert init("stop") == 0
            assert process.poll() is None, process.args
        # Nor through a link, even to a file naming the real daemon.
        assert init("start") == 0
        daemon = init.pid()
        (init.pid_dir / "pdagentd.pid").rename(base / "decoy")
        os.symlink(base / "decoy", init.pid_dir / "pdagentd.pid")
        assert init("status") == 1
        assert init("stop") == 0 and alive(daemon)
    finally:
        for process in look_alikes:
            process.kill()
            process.wait()
        if (base / "decoy").exists():
            os.kill(int((base / "decoy").read_text()), signal.SIGKILL)


def wait_for_cmdline(pid):
    """Until `pid` runs its own program (setpriv execs the daemon after a moment); fails if it
    never does, since the pid file would then name setpriv, not a look-alike."""
    def past_setpriv():
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"setpriv" not in cmdline.read()
    wait_for(past_setpriv, timeout=5, message=f"process {pid} to leave setpriv for its program")


def test_init_script_status_as_a_user_who_cannot_read_the_pid_dir(users_dir):
    init = InitCopy(users_dir)
    init.pid_dir.mkdir(mode=0o700)
    result = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                  str(init.script), "status"])
    assert result.returncode == 4, result.stdout + result.stderr
    assert "run as root" in result.stderr


# -- pdagent/layout.py for real: links planted by the daemon's user -------------------------------

def as_daemon_user(daemon, script):
    result = run(as_user(*daemon, ["sh", "-c", script]), cwd="/")
    assert result.returncode == 0, result.stderr


def lstat_of(path):
    info = os.lstat(path)
    return stat.filemode(info.st_mode), info.st_uid, info.st_gid, info.st_nlink


def assert_laid_out(root, daemon):
    for directory in layout.DIRECTORIES:
        info = os.lstat(root / directory.path.lstrip("/"))
        assert stat.S_ISDIR(info.st_mode), directory.path
        assert stat.S_IMODE(info.st_mode) == directory.mode, directory.path
        owner = daemon if directory.owner == layout.DAEMON_USER else (0, 0)
        assert (info.st_uid, info.st_gid) == owner, directory.path
    for copy in layout.COPIES:  # root's single-link files with their sources' bytes
        path = root / copy.path.lstrip("/")
        assert lstat_of(path) == (stat.filemode(stat.S_IFREG | copy.mode), 0, 0, 1), copy.path
        assert path.read_bytes() == (root / copy.source.lstrip("/")).read_bytes(), copy.path
    for directory in COPIES_DIRECTORIES:  # no temporary file left
        assert not [entry.name for entry in os.scandir(root / directory.lstrip("/")) if entry.name.startswith(".")]


@pytest.fixture
def system_root(users_dir):
    """base/root/{var/lib,var/log,var/run} as root has them, the copies' sources in
    base/root/usr/share, and root's secrets beside it in base."""
    base = users_dir
    make_system_root(base / "root")
    (base / "secret-dir").mkdir(mode=0o700)
    (base / "secret").write_text("root only\n")
    (base / "secret").chmod(0o600)
    (base / "shared").write_text("root's, writable by all\n")  # a user may hard-link it
    (base / "shared").chmod(0o666)
    daemon = ensure_daemon_user()
    return base, daemon, pwd.getpwuid(daemon[0]).pw_name


def test_layout_follows_no_link_in_an_original_agents_tree(system_root):
    """suc/ a link to a root-only directory, agent_id.txt a link to a root-only file, fqdn.txt
    a hard link to a root file, in scripts/ (the daemon's user's, as the original agent left
    it) the unit's copy a link to a root-only file and the init script's a directory:
    root's layout changes none of them, and puts the tree right."""
    base, daemon, user = system_root
    root = base / "root"
    data = root / "var/lib/pdagent"
    for sub in ("outqueue/tmp", "outqueue/pdq", "outqueue/suc", "outqueue/err", "db", "scripts"):
        (data / sub).mkdir(parents=True)
    for copy in layout.COPIES:
        (root / copy.path.lstrip("/")).write_text("the original agent's copy\n")
    for path in [data, *data.rglob("*")]:
        os.chown(path, *daemon)
    for sub in ("tmp", "pdq"):
        (data / "outqueue" / sub).chmod(0o2775)  # the original agent's modes
    pending = data / "outqueue/pdq/1577836800000000_R0utingKey0000000000000000000001.txt"
    pending.write_text("{}")
    as_daemon_user(daemon, f"cd {data} && rmdir outqueue/suc && ln -s {base}/secret-dir outqueue/suc"
                           f" && ln -s {base}/secret agent_id.txt && ln {base}/shared fqdn.txt"
                           f" && ln -sf {base}/secret scripts/pdagent.service"
                           " && rm scripts/pdagent.init && mkdir scripts/pdagent.init && touch scripts/pdagent.init/x")
    outside = {name: lstat_of(base / name) for name in ("secret-dir", "secret", "shared")}

    result = lay_out(root, user)
    assert result.returncode == 0, result.stderr
    assert {name: lstat_of(base / name) for name in outside} == outside
    assert_laid_out(root, daemon)
    [moved] = (data / "outqueue").glob("suc.pdagent-moved-*")
    assert os.readlink(moved) == f"{base}/secret-dir"
    assert os.readlink(data / "agent_id.txt") == f"{base}/secret"  # left as it is
    assert os.path.samefile(data / "fqdn.txt", base / "shared")
    assert pending.read_text() == "{}"  # the queued event stays
    [moved] = (data / "scripts").glob("pdagent.init.pdagent-moved-*")
    assert os.listdir(moved) == ["x"]
    refused = run(as_user(*daemon, ["touch", str(data / "scripts/planted")]), cwd="/")
    assert refused.returncode != 0  # scripts/ is root's now
    lines = result.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("pdagent: ") for line in lines), lines
    assert "/var/lib/pdagent/outqueue/suc was not a directory" in lines[0]
    assert "/var/lib/pdagent/scripts/pdagent.init was a directory: moved it to pdagent.init.pdagent-moved-" \
        in lines[1]
    assert "agent_id.txt is a symbolic link: left as it is" in lines[2]
    assert "fqdn.txt is not a file of the daemon's user with a single link" in lines[3]

    again = lay_out(root, user)  # nothing left to say the second time but the two files
    assert again.returncode == 0 and len(again.stderr.splitlines()) == 2, again.stderr
    assert_laid_out(root, daemon)


def test_layout_moves_a_linked_outqueue_aside_and_creates_nothing_through_it(system_root):
    base, daemon, user = system_root
    root = base / "root"
    data = root / "var/lib/pdagent"
    data.mkdir()
    os.chown(data, *daemon)
    as_daemon_user(daemon, f"cd {data} && ln -s {base}/secret-dir outqueue && mkfifo fqdn.txt"
                           " && echo agent > agent_id.txt && chmod 0600 agent_id.txt")

    result = lay_out(root, user)  # the fifo must not block it
    assert result.returncode == 0, result.stderr
    assert_laid_out(root, daemon)
    assert list((base / "secret-dir").iterdir()) == []
    assert lstat_of(base / "secret-dir")[:3] == ("drwx------", 0, 0)
    [moved] = data.glob("outqueue.pdagent-moved-*")
    assert os.readlink(moved) == f"{base}/secret-dir"
    assert lstat_of(data / "agent_id.txt")[0] == "-rw-r--r--"  # the daemon's own file: readable
    assert stat.S_ISFIFO(os.lstat(data / "fqdn.txt").st_mode)
    assert len(result.stderr.splitlines()) == 2, result.stderr  # outqueue moved, fqdn.txt left


def test_layout_writes_the_copies_nowhere_but_in_roots_own_scripts_directory(system_root):
    """The daemon's user replaced scripts/ with a link to a root-only directory: the link is
    moved aside, nothing is written through it, and the guide's `cp` gets the unit."""
    base, daemon, user = system_root
    root = base / "root"
    data = root / "var/lib/pdagent"
    data.mkdir()
    os.chown(data, *daemon)
    as_daemon_user(daemon, f"ln -s {base}/secret-dir {data}/scripts")

    result = lay_out(root, user)
    assert result.returncode == 0, result.stderr
    assert list((base / "secret-dir").iterdir()) == []
    assert lstat_of(base / "secret-dir")[:3] == ("drwx------", 0, 0)
    [moved] = data.glob("scripts.pdagent-moved-*")
    assert os.readlink(moved) == f"{base}/secret-dir"
    assert_laid_out(root, daemon)
    [line] = result.stderr.splitlines()
    assert "/var/lib/pdagent/scripts was not a directory" in line
    # The Agent guide's step, word for word but for the tree's root.
    run(["cp", f"{data}/scripts/pdagent.service", f"{base}/unit"], check=True)
    assert (base / "unit").read_bytes() == (PACKAGING / "pdagent.service").read_bytes()


def test_layout_without_a_copys_source_lays_out_nothing(system_root):
    base, _daemon, user = system_root
    root = base / "root"
    (root / layout.COPIES[-1].source.lstrip("/")).unlink()
    result = lay_out(root, user)
    assert result.returncode == 1
    assert result.stderr == (f"pdagent: cannot lay out the directories: {root}{layout.COPIES[-1].source}: "
                             "No such file or directory\n")
    assert not (root / "var/lib/pdagent").exists()


def test_layout_refuses_a_system_directory_that_is_not_roots(system_root):
    base, daemon, user = system_root
    root = base / "root"
    os.chown(root / "var/log", *daemon)
    result = lay_out(root, user)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("pdagent: cannot lay out the directories: ") and "var/log is not root's own" in line
    assert not (root / "var/log/pdagent").exists()


def test_layout_without_the_daemons_user_says_so():
    result = lay_out("/nonexistent", "pdagent-no-such-user")
    assert result.returncode == 1
    assert result.stderr == ("pdagent: cannot lay out the directories: "
                             "there is no user and group pdagent-no-such-user\n")


def test_sticky_spool_keeps_pending_events_from_other_users(system_root):
    """pdq/ as laid out: another user may drop an event in, but neither delete nor replace
    someone else's; the daemon's user still moves it on."""
    base, daemon, user = system_root
    root = base / "root"
    assert lay_out(root, user).returncode == 0
    outqueue = root / "var/lib/pdagent/outqueue"
    pending = outqueue / "pdq" / "1700000000000000_R0utingKey0000000000000000000001.txt"
    pending.write_text("{}")  # queued by root's pd-send
    other = ensure_user(OTHER_USER)
    attempt = run(as_user(*other, [sys.executable, "-c", f"""
import os, sys
os.chdir({str(outqueue / "pdq")!r})
with open("1700000000000001_forged.txt", "w") as forged:
    forged.write("forged")
for act in (lambda: os.unlink({pending.name!r}),
            lambda: os.rename("1700000000000001_forged.txt", {pending.name!r})):
    try:
        act()
    except PermissionError:
        continue
    sys.exit("allowed")
"""]), cwd="/")
    assert attempt.returncode == 0, attempt.stdout + attempt.stderr
    assert pending.read_text() == "{}"
    moved = run(as_user(*daemon, ["mv", str(pending), str(outqueue / "suc")]), cwd="/")
    assert moved.returncode == 0, moved.stderr
    assert (outqueue / "suc" / pending.name).read_text() == "{}"


# -- .rpm ---------------------------------------------------------------------------------------


def expected_rpm_entries(python_dir):
    """path -> (perms, owner) of what the rpm holds, the same files as the .deb."""
    entries = {}
    for name in expected_deb_files():
        mode = "-rwxr-xr-x" if name in EXECUTABLES else "-rw-r--r--"
        name = (name.replace(DEB_PYTHON_DIR, python_dir)
                .replace("lib/systemd/system/", "usr/lib/systemd/system/")
                .replace("etc/init.d/", "etc/rc.d/init.d/"))
        if name.startswith("usr/share/doc/pdagent/") and name != "usr/share/doc/pdagent/README.md" \
                and name not in EXAMPLES or name == LINTIAN_OVERRIDES:
            continue  # Debian-only: copyright goes to the rpm's %license, no changelog.gz
        entries[name] = (mode, "root/root")
    entries.update(dict.fromkeys(MAN_LINKS, ("lrwxrwxrwx", "root/root")))
    entries["usr/share/licenses/pdagent/copyright"] = ("-rw-r--r--", "root/root")
    entries.setdefault("usr/share/doc/pdagent/README.md", ("-rw-r--r--", "root/root"))
    for directory in layout.DIRECTORIES:
        if directory.path in PACKAGED_DIRECTORIES:
            entries[directory.path.lstrip("/")] = (stat.filemode(stat.S_IFDIR | directory.mode),
                                                   f"{directory.owner}/{directory.owner}")
    return entries


def test_rpm_files_modes_and_owners(rpm):
    assert rpm["path"].name == f"pdagent-{VERSION}-1.{rpm['target']}.noarch.rpm"
    files = {name: value for name, value in rpm["entries"].items() if not value[0].startswith("d")}
    expected = expected_rpm_entries(rpm["python_dir"])
    assert files == {name: value for name, value in expected.items() if not value[0].startswith("d")}
    for name, value in expected.items():
        if value[0].startswith("d"):
            assert rpm["entries"].get(name) == value, name
    assert not [name for name in rpm["entries"] if "__pycache__" in name or name.endswith(".pyc")]


def test_layout_table_is_the_contract():
    """The one table of the installed directories (the spec's %files and the tests use it)."""
    table = {directory.path: (oct(directory.mode), directory.owner) for directory in layout.DIRECTORIES}
    assert table == {
        "/var/lib/pdagent": ("0o755", "pdagent"),  # the daemon writes agent_id.txt, fqdn.txt
        "/var/lib/pdagent/outqueue": ("0o755", "root"),  # the daemon writes only inside
        "/var/lib/pdagent/outqueue/tmp": ("0o3753", "pdagent"),  # sticky, set-group-ID
        "/var/lib/pdagent/outqueue/pdq": ("0o3753", "pdagent"),
        "/var/lib/pdagent/outqueue/suc": ("0o2750", "pdagent"),
        "/var/lib/pdagent/outqueue/err": ("0o2750", "pdagent"),
        "/var/lib/pdagent/db": ("0o750", "pdagent"),
        "/var/lib/pdagent/scripts": ("0o755", "root"),  # the copies, root's
        "/var/log/pdagent": ("0o750", "pdagent"),
        "/var/run/pdagent": ("0o750", "pdagent")}
    paths = [directory.path for directory in layout.DIRECTORIES]
    assert all(paths.index(path.rsplit("/", 1)[0]) < paths.index(path)
               for path in paths if path.rsplit("/", 1)[0] in paths)  # parents first
    # The guide's `cp /var/lib/pdagent/scripts/pdagent.service ...`; sources in root's tree.
    assert {copy.path: (oct(copy.mode), copy.source) for copy in layout.COPIES} == {
        "/var/lib/pdagent/scripts/pdagent.service": ("0o644", "/usr/share/pdagent/scripts/pdagent.service"),
        "/var/lib/pdagent/scripts/pdagent.init": ("0o755", "/usr/share/pdagent/scripts/pdagent.init")}
    assert COPIES_DIRECTORIES <= set(paths)  # laid out, and written through, in the same pass


def test_spec_attr_lines_agree_with_the_layout_table():
    """%files has the modes of pdagent/layout.py's table, which the rpm's %post applies."""
    spec = (PACKAGING / "pdagent.spec").read_text()
    attrs = {path: (mode, owner) for mode, owner, path in
             re.findall(r"^%dir %attr\((\d+),(\w+),\w+\) (/var/(?:lib|log)/pdagent\S*)$", spec, re.MULTILINE)}
    assert attrs == {directory.path: (f"{directory.mode:04o}", directory.owner)
                     for directory in layout.DIRECTORIES if directory.path in attrs}
    assert set(attrs) == PACKAGED_DIRECTORIES
    assert "install -d -m" not in spec  # no second place for the modes


def test_rpm_requires_and_config_files(rpm):
    requires = {line.strip() for line in rpm_query(rpm["path"], "--requires").splitlines()}
    for item in (rpm["python_requires"], "python3-requests", "python3-daemon", "python3-lockfile",
                 f"python(abi) = {rpm['abi']}", "shadow-utils"):
        assert item in requires, item
    assert {item for item in requires if item.startswith(("python(abi)", "/usr/bin/python"))} \
        == {f"python(abi) = {rpm['abi']}", rpm["python"]}  # one python, the launchers' own
    assert sorted(rpm_query(rpm["path"], "-c").split()) == ["/etc/pdagent.conf", "/etc/rc.d/init.d/pdagent",
                                                           "/etc/rc.d/init.d/pdagent-listen"]
    assert "pdagent-integrations < 2" in rpm_query(rpm["path"], "--obsoletes")


@pytest.mark.parametrize("tag", RPM_SCRIPTLETS)
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
        assert f"{rpm['python']} -I -m compileall" in body and "systemctl" in body


def test_rpm_launchers_and_unit(rpm, tmp_path):
    require("rpm2archive")
    tree = tmp_path / "tree"
    with open(rpm["path"], "rb") as package, open(tmp_path / "payload.tar", "wb") as payload:
        subprocess.run(["rpm2archive", "-n", "-"], stdin=package, stdout=payload, check=True)
    with tarfile.open(tmp_path / "payload.tar") as archive:
        archive.extractall(tree)
    for name, module in LAUNCHERS.items():
        assert (tree / name).read_text() == launcher_text(module, rpm["python"])
    for name in COMMANDS:  # brp-compress may compress them again, the same text
        page = tree / MAN_DIR / f"{name}.1.gz"
        assert gzip.decompress(page.read_bytes()) == (ROOT / "man" / f"{name}.1").read_bytes()
    for link, target in MAN_LINKS.items():
        assert os.readlink(tree / link) == target
    assert (tree / "usr/lib/systemd/system/pdagent.service").read_bytes() == \
        (PACKAGING / "pdagent.service").read_bytes()
    assert_ships_the_copies_sources(rpm["entries"], tree)


def test_build_rpm_takes_a_version(tmp_path):
    require("rpmbuild")
    path = build("build-rpm.sh", tmp_path, PDAGENT_RPM_VERSION="2.0.0+test1", PDAGENT_RPM_RELEASE="2")
    assert path.name == "pdagent-2.0.0+test1-2.el9.noarch.rpm"


def test_build_rpm_refuses_an_unknown_target(tmp_path):
    result = run(["sh", str(PACKAGING / "build-rpm.sh")],
                 env={**os.environ, "PDAGENT_DIST_DIR": str(tmp_path), "PDAGENT_RPM_TARGET": "el7"})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "build-rpm.sh: PDAGENT_RPM_TARGET must be el8 or el9, not 'el7'\n"
    assert not list(tmp_path.iterdir())


# -- pd-listen's service: pdagent-listen --------------------------------------------------------

LISTEN_UNIT = "pdagent-listen.service"


def test_listen_unit_runs_as_its_own_account_writing_only_new_spool_entries_and_its_log():
    settings = unit_settings(LISTEN_UNIT)
    assert settings["ExecStart"] == ["/usr/bin/pd-listen --log-dir /var/log/pdagent-listen"]
    assert settings["User"] == ["pdagent-listen"] and settings["Group"] == ["pdagent-listen"]
    assert "SupplementaryGroups" not in settings  # not pdagent's group: no suc/, err/, db/
    # One mount for tmp/ and pdq/, or linking an entry from one into the other fails (EXDEV).
    assert settings["ReadWritePaths"] == ["/var/lib/pdagent/outqueue"]
    assert settings["LogsDirectory"] == ["pdagent-listen"] and settings["RuntimeDirectory"] == ["pdagent-listen"]
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "PrivateDevices"):
        assert settings[key] == ["yes"], key
    assert settings["CapabilityBoundingSet"] == [""]


def test_listen_unit_is_no_more_exposed_than_pdagents(tmp_path):
    """systemd-analyze security (offline) of the shipped units: pdagent-listen's score is at most pdagentd's."""
    require("systemd-analyze")
    scores = {}
    for unit in ("pdagent.service", LISTEN_UNIT):
        result = run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(PACKAGING / unit)])
        if result.returncode != 0 and "offline" in result.stderr:
            pytest.skip("this systemd-analyze has no --offline")
        found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
        assert found, result.stdout + result.stderr
        scores[unit] = float(found.group(1))
    assert scores[LISTEN_UNIT] <= scores["pdagent.service"], scores
    assert scores[LISTEN_UNIT] <= 1.9


def test_listen_service_is_installed_but_never_enabled_by_the_packages(deb, rpm):
    postinst = (deb["control"] / "postinst").read_text()
    assert "update-rc.d pdagent-listen defaults-disabled" in postinst
    assert not re.search(r"enable\S* pdagent-listen", postinst)
    assert "adduser --system --quiet --ingroup pdagent-listen" in postinst
    scriptlets = rpm_scriptlets(rpm["path"])
    assert "useradd -r -g pdagent-listen " in scriptlets["PREIN"]
    assert "pdagent-listen" not in scriptlets["POSTIN"].replace("chkconfig --add pdagent-listen", "")
    init = (PACKAGING / "pdagent-listen.init").read_text()
    assert "# chkconfig: - " in init  # chkconfig --add: no runlevel
    assert init.index("# description:") < init.index("### BEGIN INIT INFO")  # read before Default-Start
    # update-rc.d enable (and systemctl enable, through systemd-sysv-install) needs runlevels here.
    assert "# Default-Start:     2 3 4 5\n" in init


def test_listen_init_script_starts_reports_and_stops_a_real_pd_listen(agent_home):
    """`service pdagent-listen start|status|stop` with the LSB exit codes, on a copy of the script
    whose paths point into a test tree, running the checkout's pd-listen as its own user."""
    if os.geteuid() != 0:
        pytest.skip("the init script's start/stop need root")
    user = ensure_user("pdagent-test-listen")
    tmp_path = Path(agent_home)  # every user may traverse it
    data = tmp_path / "data"
    for sub in ("outqueue/tmp", "outqueue/pdq"):
        (data / sub).mkdir(parents=True)
        (data / sub).chmod(0o1777)
    launcher = tmp_path / "pd-listen"
    launcher.write_text(f"#!/usr/bin/python3 -s\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                        "from pdagent.cli.pd_listen import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    port = closed_port_here()
    config = tmp_path / "pdagent.conf"
    config.write_text(f"[Main]\ndata_dir = {data}\nlog_dir = {tmp_path}\npid_dir = {tmp_path}\n"
                      f"listen_address = 127.0.0.1:{port}\n")
    config.chmod(0o644)
    replacements = {"DAEMON=/usr/bin/pd-listen": f"DAEMON={launcher}",
                    "DAEMON_USER=pdagent-listen": "DAEMON_USER=pdagent-test-listen",
                    "DAEMON_GROUP=pdagent-listen": "DAEMON_GROUP=pdagent-test-listen",
                    "RUN_DIR=/var/run/pdagent-listen": f"RUN_DIR={tmp_path / 'run'}",
                    "LOG_DIR=/var/log/pdagent-listen": f"LOG_DIR={tmp_path / 'log'}"}
    text = (PACKAGING / "pdagent-listen.init").read_text()
    for old, new in replacements.items():
        assert text.count(old + "\n") == 1, old
        text = text.replace(old + "\n", new + "\n")
    script = tmp_path / "pdagent-listen"
    script.write_text(text)
    script.chmod(0o755)
    env = dict(os.environ, PDAGENT_CONFIG=str(config))

    def service(action):
        return run([str(script), action], env=env, timeout=40)

    assert service("status").returncode == 3
    assert service("start").returncode == 0
    pid = int((tmp_path / "run" / "pd-listen.pid").read_text())
    assert pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_uid == user[0]
    assert service("status").returncode == 0
    assert service("start").returncode == 0 and int((tmp_path / "run" / "pd-listen.pid").read_text()) == pid
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        assert response.status == 200
    assert "started" in (tmp_path / "log" / "pd-listen.log").read_text()
    assert service("stop").returncode == 0
    assert not alive(pid)
    assert service("status").returncode == 3
    assert run(["sh", "-n", str(PACKAGING / "pdagent-listen.init")]).returncode == 0


def closed_port_here():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
