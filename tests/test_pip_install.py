"""`pip install .` gives the six commands, and pd-send starts as lightly however it is installed.

The venv is made as bench/bench_pd_send.py makes it (offline; the same helper),
so what the benchmark times is what is tested here.
"""

import os
import subprocess
import sys
import tempfile

import pytest
from helpers import ROOT, ROUTING_KEY, as_user, command, wait_for

sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_pd_send import pip_install

from pdagent import __version__

COMMANDS = ["pd-send", "pd-queue", "pdagentd", "pd-nagios", "pd-zabbix", "pd-sensu"]
# Modules pd-send's usual path must not import: each costs it milliseconds (see pd_send.py, config.py).
HEAVY_MODULES = {"re", "json", "argparse", "configparser", "ipaddress", "urllib", "unicodedata", "email",
                 "datetime", "socket", "uuid", "requests", "daemon"}
USUAL_ARGS = ["-k", ROUTING_KEY, "-t", "trigger", "-d", "disk full", "-i", "disk-1", "-f", "mount=/var",
              "--link", "https://wiki.example.com/runbook|Runbook", "--timestamp", "2026-11-23T16:40:00Z",
              "--severity", "critical", "-q"]


@pytest.fixture(scope="module")
def pip_bin_dir():
    """bin/ of a venv holding `pip install .`, in a directory the daemon's user may enter."""
    directory = tempfile.mkdtemp(prefix="pdagent-pip-")
    os.chmod(directory, 0o755)
    yield pip_install(directory)
    subprocess.run(["rm", "-rf", directory], check=True)


def body_after_shebang(path):
    with open(path) as script:
        return script.read().split("\n", 1)[1]


def test_every_command_is_installed_and_answers_help(pip_bin_dir):
    for name in COMMANDS:
        # bin/'s launcher as it is, not a wrapper pip writes (some pips' wrappers `import re`)
        assert body_after_shebang(os.path.join(pip_bin_dir, name)) \
            == body_after_shebang(os.path.join(ROOT, "bin", "_launch")), name
        result = subprocess.run([os.path.join(pip_bin_dir, name), "--help"], capture_output=True, text=True,
                                timeout=30, check=False)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.startswith(f"usage: {name} "), (name, result.stdout)
        version = subprocess.run([os.path.join(pip_bin_dir, name), "--version"], capture_output=True, text=True,
                                 timeout=30, check=False)
        assert (version.returncode, version.stdout, version.stderr) == (0, f"{name} {__version__}\n", ""), name


def test_pip_puts_the_unit_init_script_and_config_where_the_readme_takes_them(pip_bin_dir, tmp_path):
    share = os.path.join(os.path.dirname(pip_bin_dir), "share", "pdagent")
    for installed, source in {"scripts/pdagent.service": "packaging/pdagent.service",
                              "scripts/pdagent.init": "packaging/pdagent.init",
                              "pdagent.conf": "conf/pdagent.conf"}.items():
        with open(os.path.join(share, installed), "rb") as copy, open(os.path.join(ROOT, source), "rb") as original:
            assert copy.read() == original.read(), installed
    # The unit and the init script run /usr/share/pdagent/bin/pdagentd.py: a link to pip's pdagentd.
    os.symlink(os.path.join(pip_bin_dir, "pdagentd"), tmp_path / "pdagentd.py")
    version = subprocess.run([str(tmp_path / "pdagentd.py"), "--version"], capture_output=True, text=True,
                             timeout=30, check=False)
    assert (version.returncode, version.stdout) == (0, f"pdagentd {__version__}\n"), version.stderr


def test_installed_commands_queue_deliver_and_report(pip_bin_dir, agent, standin):
    env = agent.env()
    sent = subprocess.run([os.path.join(pip_bin_dir, "pd-send"), *USUAL_ARGS], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "")
    status = subprocess.run([os.path.join(pip_bin_dir, "pd-queue"), "status"], env=env, capture_output=True,
                            text=True, timeout=30, check=False)
    assert status.returncode == 0 and ROUTING_KEY in status.stdout
    daemon = subprocess.Popen(as_user(agent.uid, agent.gid, [os.path.join(pip_bin_dir, "pdagentd"), "-f"]),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: [body.get("dedup_key") for body in standin.bodies()] == ["disk-1"],
                 message="the pip-installed pdagentd to deliver")
    finally:
        daemon.terminate()
        daemon.wait(20)
    nagios = subprocess.run([os.path.join(pip_bin_dir, "pd-nagios"), "-k", ROUTING_KEY, "-t", "PROBLEM",
                             "-n", "host", "-f", "HOSTNAME=web1", "-f", "HOSTSTATE=DOWN"],
                            env=env, capture_output=True, text=True, timeout=30, check=False)
    assert nagios.returncode == 0, nagios.stderr
    assert len(agent.names("pdq")) == 1


def imported_modules(argv, env):
    """Top-level names of the modules a run of `argv` imports (PYTHONPROFILEIMPORTTIME)."""
    result = subprocess.run(argv, env=dict(env, PYTHONPROFILEIMPORTTIME="1"), capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert lines, result.stderr
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}


@pytest.mark.parametrize("how", ["checkout launcher", "this venv's command", "pip install ."])
def test_pd_send_usual_path_imports_nothing_heavy(how, pip_bin_dir, offline_agent):
    launcher = {"checkout launcher": [sys.executable, os.path.join(ROOT, "bin", "pd-send")],
                "this venv's command": command("pd-send"),
                "pip install .": [os.path.join(pip_bin_dir, "pd-send")]}[how]
    if len(launcher) == 1:  # an installed script: the interpreter its #! line names
        with open(launcher[0]) as script:
            python = script.readline()[2:].split()[0]
    else:
        python = launcher[0]
    env = offline_agent.env()
    baseline = imported_modules([python, "-c", "pass"], env)
    loaded = imported_modules(launcher + USUAL_ARGS, env) - baseline
    assert "pdagent" in loaded
    assert loaded & HEAVY_MODULES == set()
    assert len(offline_agent.names("pdq")) == 1
