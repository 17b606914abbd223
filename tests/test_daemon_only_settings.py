"""Queueing reads only where the spool is; the daemon's settings, and their secrets, are the daemon's.

Through real processes: pd-send and a library script run as a second
unprivileged user (`other_user`), pdagentd as its own user, against configs
holding what only the daemon may care about: the event is queued, and the
daemon refuses the same config in one line. Then the units: load_locations,
the library's lazy get_main_config, proxy_url_file.
"""

import os
import subprocess
import sys

import pytest
from helpers import ROOT, Tinyproxy, as_user, assert_usage_error, routing_key, wait_for

from pdagent.config import (
    ConfigError,
    load_agent_config,
    load_locations,
)
from pdagent.main_config import load_main_config

KEY = routing_key(1)
PROXY_PASSWORD = "Pr0xyS3cret"


def file_of(agent, name, content, mode, group=None):
    """A file in the agent's home owned by root (and `group`), with `mode`."""
    path = os.path.join(agent.base, name)
    with open(path, "w") as handle:
        handle.write(content)
    os.chown(path, 0, 0 if group is None else group)
    os.chmod(path, mode)
    return path


def daemon_only_settings(agent, case):
    """Settings only pdagentd reads, each of them wrong for it or unreadable by other users."""
    secret_url = f"http://pdagent:{PROXY_PASSWORD}@127.0.0.1:3128"
    settings = {
        "unknown key": {"no_such_setting": "1"},
        "ca_bundle nobody else can read": {"ca_bundle": file_of(agent, "ca.pem", "not a cert\n", 0o600)},
        "bad events_api_url": {"events_api_url": "ftp://events.example.com"},
        "proxy_url_file nobody else can read":
            {"proxy_url_file": file_of(agent, "proxy-url", secret_url + "\n", 0o600)},
    }
    if case == "all at once":
        return {key: value for one in settings.values() for key, value in one.items()}
    return settings[case]


# (case, what the daemon's one line names)
CASES = [
    ("unknown key", "unknown key 'no_such_setting'"),
    ("ca_bundle nobody else can read", "key 'ca_bundle' names no file this user can read"),
    ("bad events_api_url", "key 'events_api_url' must be a https:// or http:// URL"),
    ("proxy_url_file nobody else can read", "key 'proxy_url_file': cannot read"),
    ("all at once", "key '"),
]


@pytest.mark.parametrize("case", [case for case, _ in CASES])
def test_pd_send_as_another_user_queues_whatever_the_daemon_settings_hold(offline_agent, other_user, case):
    agent = offline_agent
    agent.configure(**daemon_only_settings(agent, case))
    result = agent.send("-k", KEY, "-t", "trigger", "-d", "queued anyway", "-i", "dedup-1", user=other_user)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "Event processed. Incident Key: dedup-1\n"
    (name,) = agent.names("pdq")
    assert agent.read("pdq", name)["event"]["payload"]["summary"] == "queued anyway"
    assert agent.names("tmp") == []


@pytest.mark.parametrize("case, phrase", CASES, ids=[case for case, _ in CASES])
def test_the_daemon_refuses_the_same_config_in_one_line(offline_agent, case, phrase):
    agent = offline_agent
    agent.configure(**daemon_only_settings(agent, case))
    result = agent.run("pdagentd", "-f", user=(agent.uid, agent.gid))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pdagentd: {agent.config_path}: ") and phrase in lines[0]
    assert PROXY_PASSWORD not in result.stderr
    assert agent.pid() is None


@pytest.mark.parametrize("problem", ["config only root can read", "data_dir that is not there"])
def test_what_pd_send_reads_still_stops_it_in_one_line(offline_agent, other_user, problem):
    agent = offline_agent
    if problem == "config only root can read":
        os.chmod(agent.config_path, 0o600)
        phrase = f"{agent.config_path}: cannot read config file: Permission denied"
    else:
        agent.configure(data_dir=os.path.join(agent.base, "absent"))
        phrase = os.path.join(agent.base, "absent")
    result = agent.send("-k", KEY, "-t", "trigger", "-d", "x", user=other_user)
    assert_usage_error(result, "pd-send", phrase)
    assert agent.names("pdq") == [] and agent.names("tmp") == []


def test_pd_send_never_opens_ca_bundle_or_proxy_url_file(offline_agent, other_user):
    """Both name FIFOs anyone may open: opening one to read would block until the timeout."""
    agent = offline_agent
    fifos = {key: os.path.join(agent.base, key) for key in ("ca_bundle", "proxy_url_file")}
    for path in fifos.values():
        os.mkfifo(path)
        os.chmod(path, 0o666)
    agent.configure(**fifos)
    result = agent.send("-k", KEY, "-t", "trigger", "-d", "no waiting", "-q", user=other_user, timeout=20)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(agent.names("pdq")) == 1


LIBRARY_SCRIPT = r'''
import json
import sys

from pdagent.config import ConfigError, load_agent_config

agent_config = load_agent_config()
name, problems = agent_config.get_enqueuer().enqueue(sys.argv[1], json.dumps(
    {"endpoint": "alert", "agent": {"agent_id": agent_config.get_agent_id(), "queued_by": "script",
                                    "queued_at": "2026-11-23T16:40:00Z"},
     "event": {"routing_key": sys.argv[1], "event_action": "resolve", "dedup_key": "d"}}))
try:
    agent_config.get_main_config()
    print(name, problems, "get_main_config: loaded")
except ConfigError as error:
    print(name, problems, "get_main_config:", error)
'''


def test_library_queues_as_another_user_and_only_get_main_config_checks(offline_agent, other_user):
    agent = offline_agent
    agent.configure(**daemon_only_settings(agent, "all at once"))
    script = file_of(agent, "script.py", LIBRARY_SCRIPT, 0o644)
    result = subprocess.run(as_user(*other_user, [sys.executable, script, KEY]), cwd=agent.base,
                            env={"PDAGENT_CONFIG": agent.config_path, "PYTHONPATH": ROOT},
                            capture_output=True, text=True, timeout=30, check=False)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    name, problems, checked = result.stdout.split(" ", 2)
    assert agent.names("pdq") == [name] and problems == "[]"
    assert checked.startswith(f"get_main_config: {agent.config_path}: ")


def test_daemon_reads_proxy_credentials_other_users_cannot(agent, standin, other_user):
    """proxy_url_file as the README sets it up: 0640 root:<daemon's group>, the password in it only."""
    proxy = Tinyproxy(agent.base, auth=("pdagent", PROXY_PASSWORD))
    try:
        url_file = file_of(agent, "proxy-url", f"http://pdagent:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}\n",
                           0o640, group=agent.gid)
        agent.configure(proxy_url_file=url_file)
        with open(agent.config_path) as config_file:
            assert PROXY_PASSWORD not in config_file.read()
        cat = subprocess.run(as_user(*other_user, ["cat", url_file]), capture_output=True, timeout=30,
                             check=False)
        assert cat.returncode != 0 and PROXY_PASSWORD.encode() not in cat.stdout
        agent.start_daemon()
        sent = agent.send("-k", KEY, "-t", "trigger", "-d", "through the proxy", "-q", user=other_user)
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: [body["payload"]["summary"] for body in standin.bodies()] == ["through the proxy"],
                 message="delivery through the proxy")
        assert "/v2/enqueue" in proxy.log_text()  # it went through the proxy, which wants the password
        agent.stop_daemon()
    finally:
        proxy.stop()
    with open(agent.daemon_output, errors="replace") as output:
        assert PROXY_PASSWORD not in agent.log_text() + output.read()


# -- units ------------------------------------------------------------------------------------------

@pytest.fixture
def write(tmp_path):
    def write_file(name, text):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write_file


def test_load_locations_takes_the_three_directories_and_nothing_else(write, tmp_path):
    path = write("pdagent.conf", f"[Main]\ndata_dir = {tmp_path}/d\nlog_dir = {tmp_path}/l\n"
                                 f"pid_dir = {tmp_path}/p\nmystery = 1\nhttp_timeout_secs = soon\n"
                                 "ca_bundle = /nonexistent\nproxy_url_file = relative\n")
    locations = load_locations(path)
    assert locations.path == path
    assert locations.as_dict() == {"data_dir": f"{tmp_path}/d", "log_dir": f"{tmp_path}/l",
                                   "pid_dir": f"{tmp_path}/p"}
    assert (locations.outqueue_dir, locations.db_dir, locations.agent_id_file) == (
        f"{tmp_path}/d/outqueue", f"{tmp_path}/d/db", f"{tmp_path}/d/agent_id.txt")
    assert (locations.pid_file, locations.log_file) == (f"{tmp_path}/p/pdagentd.pid", f"{tmp_path}/l/pdagentd.log")
    with pytest.raises(ConfigError, match="key 'http_timeout_secs' must be a number"):
        load_main_config(path)


@pytest.mark.parametrize("text, phrase", [
    (None, "cannot read config file: No such file or directory"),
    ("[Other]\n", "missing section [Main]"),
    ("[Main]\nlog_dir = log\n", "key 'log_dir' must be an absolute path, not 'log'"),
])
def test_load_locations_refuses_what_it_reads_in_one_line(write, tmp_path, text, phrase):
    path = str(tmp_path / "absent.conf") if text is None else write("pdagent.conf", text)
    with pytest.raises(ConfigError) as raised:
        load_locations(path)
    assert str(raised.value) == f"{path}: {phrase}"


def test_agent_config_checks_the_whole_file_only_in_get_main_config(write, tmp_path):
    path = write("pdagent.conf", f"[Main]\ndata_dir = {tmp_path}/d\nmystery = 1\n")
    agent_config = load_agent_config(path)
    assert agent_config.get_conf_dirs()["outqueue_dir"] == f"{tmp_path}/d/outqueue"
    assert agent_config.get_queue().outqueue_dir == f"{tmp_path}/d/outqueue"
    with pytest.raises(ConfigError, match="unknown key 'mystery'"):
        agent_config.get_main_config()


def test_proxy_url_file_is_read_by_the_daemons_loader(write):
    url = f"http://pdagent:{PROXY_PASSWORD}@proxy.example.com:3128/"
    url_file = write("proxy-url", f"\n  {url}\n\n")
    main = load_main_config(write("pdagent.conf", f"[Main]\nproxy_url_file = {url_file}\n"))
    assert (main.proxy_url, main.proxy_url_file) == (url, url_file)


@pytest.mark.parametrize("content, phrase", [
    ("", "is empty"),
    (" \n\t\n", "is empty"),
    (f"proxy.example.com:{PROXY_PASSWORD}", "must hold one http:// or https:// or socks5:// or socks5h:// URL"),
    (f"http://a:{PROXY_PASSWORD}@p:1\nhttp://second:2", "must hold one"),
    ("http://p:1/" + "x" * 5000, "must hold one"),
    (b"http://p:1/\xff", "must hold one"),
    (None, "cannot read"),
])
def test_bad_proxy_url_file_is_one_line_without_its_content(write, tmp_path, content, phrase):
    url_file = str(tmp_path / "proxy-url")
    if isinstance(content, bytes):
        (tmp_path / "proxy-url").write_bytes(content)
    elif content is not None:
        write("proxy-url", content)
    path = write("pdagent.conf", f"[Main]\nproxy_url_file = {url_file}\n")
    with pytest.raises(ConfigError) as raised:
        load_main_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: key 'proxy_url_file': {url_file}" if content is not None
                              else f"{path}: key 'proxy_url_file': cannot read {url_file}")
    assert phrase in message and "\n" not in message and PROXY_PASSWORD not in message


@pytest.mark.parametrize("text, phrase", [
    ("proxy_url_file = proxy-url\n", "key 'proxy_url_file': must be an absolute path, not 'proxy-url'"),
    ("proxy_url = http://p:1\nproxy_url_file = /etc/pdagent/proxy-url\n",
     "keys 'proxy_url' and 'proxy_url_file' exclude each other"),
])
def test_proxy_url_file_needs_an_absolute_path_and_no_proxy_url(write, text, phrase):
    path = write("pdagent.conf", "[Main]\n" + text)
    with pytest.raises(ConfigError) as raised:
        load_main_config(path)
    assert str(raised.value).startswith(f"{path}: {phrase}")
