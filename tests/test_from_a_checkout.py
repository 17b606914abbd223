"""What a newcomer meets in a fresh clone: make demo, make try (pd-send and pd-listen), pdagentd as root,
make test's apt line."""

import json
import os
import re
import shlex
import subprocess
import sys

import demo  # scripts/demo.py: helpers.py puts scripts/ on the path
import pytest
from helpers import OTHER_USER, ROOT, TEST_USER, command

DEMO = [sys.executable, os.path.join(ROOT, "scripts", "demo.py")]


def received(output):
    """The bodies `the stand-in received` lists in demo.py's output, timestamps aside."""
    bodies = [json.loads(line.split("  ", 1)[1]) for line in output.splitlines() if line.startswith("POST /v2/")]
    for body in bodies:
        body.get("payload", {}).pop("timestamp", None)
    return bodies


def test_demo_commands_pasted_into_make_try_deliver_the_same_events():
    shown = subprocess.run(DEMO, capture_output=True, text=True, timeout=120, check=True).stdout
    lines = [line[len("== $ "):] for line in shown.splitlines() if line.startswith("== $ pd-send ")]
    assert [shlex.split(line) for line in lines] \
        == [["pd-send", "-k", "$PD_SERVICE_KEY", *arguments] for arguments in demo.COMMANDS]
    curl = [line[len("== $ "):] for line in shown.splitlines() if line.startswith("== $ curl ")]
    assert len(curl) == 1 and "$PD_LISTEN_URL/v2/enqueue" in curl[0]
    # What a user does: paste them into the shell `make try` opens.
    tried = subprocess.run(DEMO + ["--shell"], input="\n".join(lines + curl) + "\n", capture_output=True,
                           text=True, timeout=120, check=True, env=dict(os.environ, SHELL="/bin/sh"))
    assert tried.stdout.count("Event processed") == len(demo.COMMANDS) + 1, tried.stdout + tried.stderr
    assert len(received(shown)) == len(demo.COMMANDS) + 1
    assert received(tried.stdout) == received(shown)


def test_make_try_runs_the_shell():
    # Under `make test` the outer make's MAKEFLAGS would make this one print "Leaving directory".
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "try"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=True, env=env)
    assert dry_run.stdout.rstrip().splitlines()[-1] == ".venv/bin/python scripts/demo.py --shell"


def test_make_try_shows_its_prompt_after_a_bashrc_that_sets_its_own(tmp_path):
    (tmp_path / ".bashrc").write_text("PS1='plain-root# '\nFROM_BASHRC=read\n")
    env = dict(os.environ, HOME=str(tmp_path), SHELL="/bin/bash")
    # script(1) gives bash a terminal, so it is interactive and reads its rc files, as when typed.
    tried = subprocess.run(["script", "-qec", shlex.join(DEMO + ["--shell"]), "/dev/null"],
                           input='echo "bashrc was $FROM_BASHRC"\nexit\n', capture_output=True, text=True,
                           timeout=120, check=True, env=env)
    assert "(pdagent try) $ " in tried.stdout and "plain-root# " not in tried.stdout, tried.stdout
    assert "bashrc was read" in tried.stdout


def test_make_clean_removes_the_test_users(fake_system, tmp_path):
    (tmp_path / "empty").mkdir()
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "bin" / "uid").write_text("0\n")  # the fake `id -u` says root
    (tmp_path / "bin" / "getent").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "userdel").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/userdel.calls\n')
    for name in ("getent", "userdel"):
        (tmp_path / "bin" / name).chmod(0o755)
    result = subprocess.run(["make", "-s", "-f", os.path.join(ROOT, "Makefile"), "clean"], cwd=tmp_path / "empty",
                            env=env, capture_output=True, text=True, timeout=60, check=True)
    assert (tmp_path / "userdel.calls").read_text().split() == [TEST_USER, OTHER_USER], result.stdout


def test_pdagentd_as_root_says_so_once(offline_agent):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    result = subprocess.run(command("pdagentd") + ["-f"], env=offline_agent.env(), capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr == "pdagentd: should not be run as root (run it as the pdagent user)\n"


@pytest.fixture
def fake_system(tmp_path):
    """A PATH where every package is missing, `id -u` says what the test wants, apt-get records its call."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    scripts = {"dpkg": "exit 1",
               "id": 'cat "$(dirname "$0")/uid"',
               "apt-get": f'echo "$@" >> {tmp_path}/apt-get.calls'}
    for name, body in scripts.items():
        (fake_bin / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake_bin / name).chmod(0o755)

    def make_system_tools(uid):
        (fake_bin / "uid").write_text(f"{uid}\n")
        env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
        result = subprocess.run(["make", "-s", "system-tools"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60, check=True)
        calls = tmp_path / "apt-get.calls"
        return result.stdout, calls.read_text().splitlines() if calls.exists() else []
    return make_system_tools


TOOL_LINE = re.compile(r"  (\S+): (.+)")


def test_make_test_says_which_system_tools_it_installs_and_why(fake_system):
    output, calls = fake_system(0)
    heading, *tools = output.splitlines()
    assert heading == "installing system tools with apt-get (and the packages they depend on):"
    reasons = dict(TOOL_LINE.fullmatch(line).groups() for line in tools)
    assert list(reasons) == ["tinyproxy", "lintian", "rpm", "shellcheck", "faketime", "icinga2-bin",
                             "prometheus-alertmanager", "curl"]
    assert all("tests/" in reason for reason in reasons.values()), reasons  # which tests need it
    assert calls == ["update -qq",
                     "install -y -qq tinyproxy lintian rpm shellcheck faketime icinga2-bin prometheus-alertmanager curl"]


def test_make_test_as_a_user_says_what_will_be_skipped(fake_system):
    output, calls = fake_system(1000)
    heading, *tools = output.splitlines()
    assert heading.startswith("not root: cannot install these system tools")
    assert [TOOL_LINE.fullmatch(line).group(1) for line in tools] == [
        "tinyproxy", "lintian", "rpm", "shellcheck", "faketime", "icinga2-bin", "prometheus-alertmanager", "curl"]
    assert calls == []
