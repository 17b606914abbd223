"""Tests of pdagent.config: the INI reader, defaults, every error as one line, the file choice."""

import os
import re
import shutil
import subprocess

import pytest
from helpers import ROUTING_KEY, assert_usage_error, command

from pdagent import config, main_config
from pdagent.config import (
    ConfigError,
    load_agent_config,
    load_locations,
    read_ini_section,
)
from pdagent.main_config import load_main_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKOUT_CONFIG = os.path.join(ROOT, "conf", "pdagent.conf")

ORIGINAL_DEFAULTS = {
    "send_interval_secs": 10,
    "cleanup_interval_secs": 10800,
    "cleanup_threshold_secs": 604800,
    "backoff_interval_secs": 60,
    "retry_limit_for_possible_errors": 60,
    "source_address": "0.0.0.0",
}
NEW_DEFAULTS = {
    "events_api_url": "https://events.pagerduty.com",
    "http_timeout_secs": 10.0,
    "proxy_url": "",
    "ca_bundle": "",
}


@pytest.fixture
def write_config(tmp_path):
    def write(text, name="pdagent.conf"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def dirs(tmp_path):
    return (f"data_dir = {tmp_path}/data\nlog_dir = {tmp_path}/log\npid_dir = {tmp_path}/run\n")


def test_defaults_are_the_original_agents(write_config, dirs):
    main = load_main_config(write_config("[Main]\n" + dirs))
    for key, value in {**ORIGINAL_DEFAULTS, **NEW_DEFAULTS}.items():
        assert getattr(main, key) == value, key
    assert isinstance(main.send_interval_secs, int)
    assert isinstance(main.http_timeout_secs, float)


def test_values_and_derived_paths(write_config, tmp_path):
    path = write_config(
        "# a comment\n; another\n[Main]\n"
        "send_interval_secs = 3\n"
        "HTTP_Timeout_Secs: 2.5\n"
        "events_api_url = https://events.eu.pagerduty.com/\n"
        "proxy_url = http://user@proxy.example.com:3128/\n"
        "source_address = 192.0.2.7\n"
        "log_level = warn\n"
        f"data_dir = {tmp_path}/d\nlog_dir = {tmp_path}/l\npid_dir = {tmp_path}/p\n"
        "\n[Other]\nanything = goes\n")
    main = load_main_config(path)
    assert main.path == path
    assert main.send_interval_secs == 3
    assert main.http_timeout_secs == 2.5
    assert main.events_api_url == "https://events.eu.pagerduty.com"  # trailing / dropped
    assert main.proxy_url == "http://user@proxy.example.com:3128/"
    assert main.source_address == "192.0.2.7"
    assert main.log_level == "WARNING"
    assert main.outqueue_dir == f"{tmp_path}/d/outqueue"
    assert main.db_dir == f"{tmp_path}/d/db"
    assert main.agent_id_file == f"{tmp_path}/d/agent_id.txt"
    assert main.pid_file == f"{tmp_path}/p/pdagentd.pid"
    assert main.log_file == f"{tmp_path}/l/pdagentd.log"
    assert "path" not in main.as_dict() and main.as_dict()["send_interval_secs"] == 3


def test_original_agents_obsolete_keys_still_load(write_config, dirs):
    main = load_main_config(write_config(
        "[Main]\n" + dirs + "event_api_url = https://old\ncheck_freq_sec = 60\n"
        "cleanup_freq_sec = 1\nsend_event_timeout_sec = 1\nmax_event_bytes = 1\nbackoff_secs = 1\n"))
    assert main.events_api_url == "https://events.pagerduty.com"
    assert not hasattr(main, "check_freq_sec")


def test_empty_values_mean_the_default(write_config, dirs):
    main = load_main_config(write_config("[Main]\n" + dirs + "send_interval_secs =\nproxy_url =\n"))
    assert main.send_interval_secs == 10 and main.proxy_url == ""


@pytest.mark.parametrize("url", ["https://events.pagerduty.com", "http://127.0.0.1:8080",
                                 "http://[::1]:9000/base", "https://host"])
def test_good_events_api_urls(write_config, dirs, url):
    assert load_main_config(write_config(f"[Main]\n{dirs}events_api_url = {url}\n")).events_api_url \
        == url.rstrip("/")


@pytest.mark.parametrize("address", ["0.0.0.0", "10.1.2.3", "::", "::1", "fe80::1", "2001:db8::7"])
def test_good_source_addresses(write_config, dirs, address):
    assert load_main_config(write_config(f"[Main]\n{dirs}source_address = {address}\n")).source_address \
        == address


# (config text after [Main], key the line must name, a phrase of the message)
BAD_VALUES = [
    ("http_timeout_secs = soon", "http_timeout_secs", "must be a number, not 'soon'"),
    ("send_interval_secs = 1.5", "send_interval_secs", "must be a number"),
    ("send_interval_secs = ten", "send_interval_secs", "must be a number"),
    ("cleanup_threshold_secs = -1", "cleanup_threshold_secs", "must not be negative"),
    ("send_interval_secs = 0", "send_interval_secs", "greater than 0"),
    ("http_timeout_secs = 0", "http_timeout_secs", "greater than 0"),
    ("events_api_url = ftp://x", "events_api_url", "must be a https:// or http:// URL, not 'ftp://x'"),
    ("events_api_url = events.pagerduty.com", "events_api_url", "URL"),
    ("events_api_url = https://", "events_api_url", "URL"),
    ("events_api_url = https://host:port", "events_api_url", "URL"),
    ("proxy_url = proxy:3128", "proxy_url", "URL"),
    ("backoff_interval_secs = 60\nbackoff_max_secs = 10", "backoff_max_secs", "at least"),
    ("ca_bundle = /nonexistent/ca.pem", "ca_bundle", "names no file"),
    ("log_level = loud", "log_level", "must be one of"),
    ("source_address = localhost", "source_address", "must be an IP address"),
    ("source_address = 300.1.1.1", "source_address", "must be an IP address"),
    ("data_dir = relative/path", "data_dir", "must be an absolute path"),
    ("no_such_key = 1", "no_such_key", "unknown key"),
]


@pytest.mark.parametrize("text, key, phrase", BAD_VALUES, ids=[case[0] for case in BAD_VALUES])
def test_bad_value_is_one_line_naming_file_and_key(write_config, text, key, phrase):
    path = write_config("[Main]\n" + text + "\n")
    with pytest.raises(ConfigError) as raised:
        load_main_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert key in message and phrase in message
    assert "\n" not in message


@pytest.mark.parametrize("text, phrase", [
    ("", "missing section [Main]"),
    ("[main]\nsend_interval_secs = 1\n", "missing section [Main]"),
    ("[Other]\nx = 1\n", "missing section [Main]"),
    ("send_interval_secs = 1\n[Main]\n", "line 1: expected 'key = value' inside a [section]"),
    ("[Main]\njust words\n", "line 2: expected 'key = value'"),
    ("[Main]\n= value\n", "line 2: expected 'key = value'"),
    ("[Main\nx = 1\n", "line 1: bad section header"),
    ("[]\n", "line 1: bad section header"),
])
def test_malformed_file(write_config, text, phrase):
    path = write_config(text)
    with pytest.raises(ConfigError) as raised:
        load_main_config(path)
    assert str(raised.value).startswith(f"{path}: {phrase}")
    assert "\n" not in str(raised.value)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError) as raised:
        load_main_config(path)
    assert str(raised.value) == f"{path}: cannot read config file: No such file or directory"


def test_directory_and_binary_file(tmp_path, write_config):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_main_config(str(tmp_path))
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"[Main]\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not a text file in UTF-8"):
        load_main_config(str(binary))


def test_ini_reader_syntax(write_config):
    path = write_config(
        "# comment\n"
        "[Main]\n"
        "  ; indented comment\n"
        "Key_One = a = b : c\n"
        "two: x=y\n"
        "three =\n"
        "multi = first\n"
        "   second\n"
        "\n"
        "[Second]\n"
        "four = 4\n")
    assert read_ini_section(path) == {"key_one": "a = b : c", "two": "x=y", "three": "",
                                      "multi": "first\nsecond"}
    assert read_ini_section(path, "Second") == {"four": "4"}


@pytest.mark.parametrize("text", [
    "[Main]\nsend_interval_secs = 5\nproxy_url: http://p:1\n",
    "[Main]\n# c\n; c\nA = 1\nb=2\nc =3 # kept\n",
    "[Main]\nurl = http://x.example.com/a=b\n",
])
def test_ini_reader_agrees_with_configparser(write_config, text):
    import configparser
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert read_ini_section(write_config(text)) == dict(parser["Main"])


# -- which file, which directories ------------------------------------------------------------

def test_pdagent_config_selects_the_file(monkeypatch, write_config, dirs):
    path = write_config("[Main]\n" + dirs + "send_interval_secs = 7\n", name="elsewhere.conf")
    monkeypatch.setenv("PDAGENT_CONFIG", path)
    assert config.config_file_path() == path
    assert load_main_config().send_interval_secs == 7


def test_dev_layout_from_the_checkout(monkeypatch):
    monkeypatch.delenv("PDAGENT_CONFIG", raising=False)
    assert config.source_root() == ROOT
    assert config.config_file_path() == CHECKOUT_CONFIG
    main = load_main_config()
    assert main.path == CHECKOUT_CONFIG
    dev_dir = os.path.join(ROOT, "tmp")
    assert (main.data_dir, main.log_dir, main.pid_dir) == (dev_dir, dev_dir, dev_dir)
    assert load_agent_config().is_dev_layout()


def test_unset_directories_in_an_explicit_file_follow_the_layout(write_config, monkeypatch):
    monkeypatch.setenv("PDAGENT_CONFIG", write_config("[Main]\n"))
    main = load_main_config()
    assert main.data_dir == os.path.join(ROOT, "tmp")  # running from the checkout
    assert not load_agent_config().is_dev_layout()


def test_installed_layout_defaults(monkeypatch):
    monkeypatch.delenv("PDAGENT_CONFIG", raising=False)
    monkeypatch.setattr(config, "source_root", lambda: None)
    assert config.config_file_path() == "/etc/pdagent.conf"
    assert config._default_dirs() == {"data_dir": "/var/lib/pdagent", "log_dir": "/var/log/pdagent",
                                      "pid_dir": "/var/run/pdagent"}


EVERY_KEY = {**main_config._INT_KEYS, **main_config._FLOAT_KEYS, **main_config._STRING_KEYS,
             **dict.fromkeys(config.SYSTEM_DIRS, "")}  # a location's default is the layout's
# Commented out: `sed 's/^proxy_url.*/.../'` (or lineinfile '^proxy_url') would hit it too.
COMMENTED_OUT = ("proxy_url_file",)


def shipped_settings(commented=False):
    """{key: value} of the (commented-out) `key = value` lines of conf/pdagent.conf (/etc/pdagent.conf)."""
    with open(CHECKOUT_CONFIG) as handle:
        return dict(re.findall(r"^%s(\w+) = ?(.*)$" % ("#" if commented else ""), handle.read(), re.MULTILINE))


def test_shipped_config_sets_every_key_to_its_default():
    assert {key: shipped_settings(commented=True).get(key) for key in COMMENTED_OUT} \
        == dict.fromkeys(COMMENTED_OUT, "")
    settings = {**shipped_settings(), **dict.fromkeys(COMMENTED_OUT, "")}
    assert sorted(settings) == sorted(EVERY_KEY)
    for key, default in EVERY_KEY.items():
        value = settings[key]
        assert (float(value) if isinstance(default, (int, float)) else value) == default, key
    # ...and the loader reads each as its default, the locations as the layout's.
    main = load_main_config(CHECKOUT_CONFIG)
    for key, default in {**EVERY_KEY, **config._default_dirs()}.items():
        assert getattr(main, key) == default, key
    assert load_locations(CHECKOUT_CONFIG).data_dir == config._default_dirs()["data_dir"]


def edited_values(tmp_path):
    """A value other than the default for each key, valid for the loader."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not read until TLS\n")
    proxy_file = tmp_path / "proxy-url"
    proxy_file.write_text("http://user:secret@proxy.example.com:3128/\n")
    values = {key: str(default + 1) for key, default in {**main_config._INT_KEYS, **main_config._FLOAT_KEYS}.items()}
    values.update(events_api_url="https://events.eu.pagerduty.com", source_address="127.0.0.1",
                  proxy_url="http://proxy.example.com:3128", proxy_url_file=str(proxy_file),
                  ca_bundle=str(ca_file), log_level="DEBUG", listen_address="127.0.0.1:49463",
                  listen_socket="/run/pdagent-listen/events.sock", listen_token_file="/etc/pdagent/listen-token",
                  data_dir=str(tmp_path / "data"), log_dir=str(tmp_path / "log"), pid_dir=str(tmp_path / "run"))
    return values


@pytest.mark.parametrize("key", sorted(EVERY_KEY))
def test_sed_on_the_shipped_config_changes_what_is_read(tmp_path, key):
    """What fleet tooling does to /etc/pdagent.conf: `sed -i 's/^key.*/key = value/'` (or lineinfile)."""
    path = tmp_path / "pdagent.conf"
    shutil.copy(CHECKOUT_CONFIG, path)
    value = edited_values(tmp_path)[key]
    line = f"^#{key}.*" if key in COMMENTED_OUT else f"^{key}.*"
    subprocess.run(["sed", "-i", f"s|{line}|{key} = {value}|", str(path)], check=True)
    main = load_main_config(str(path))
    read = getattr(main, key)
    if key == "proxy_url_file":
        assert main.proxy_url == "http://user:secret@proxy.example.com:3128/"
    assert str(read) == value or read == float(value), (key, read)
    before = load_main_config(CHECKOUT_CONFIG).as_dict()
    after = main.as_dict()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == ({key, "proxy_url"} if key == "proxy_url_file" else {key})
    if key in config.SYSTEM_DIRS:
        assert getattr(load_locations(str(path)), key) == value  # pd-send reads the edit too


def test_a_key_given_again_takes_the_later_value_and_is_logged(offline_agent):
    """An admin appends `proxy_url = ...` to the shipped file, whose proxy_url line is uncommented
    (fleets of the original agent did: its ConfigParser took the later value)."""
    with open(CHECKOUT_CONFIG) as shipped:
        text = shipped.read()
    for key in config.SYSTEM_DIRS:
        text = text.replace(f"\n{key} =\n", f"\n{key} = {getattr(offline_agent, key)}\n")
    text = text.replace("\nevents_api_url = https://events.pagerduty.com\n",
                        f"\nevents_api_url = {offline_agent.settings['events_api_url']}\n")
    text += "proxy_url = http://proxy.example.com:3128\n"
    with open(offline_agent.config_path, "w") as config_file:
        config_file.write(text)
    main = load_main_config(offline_agent.config_path)
    assert main.proxy_url == "http://proxy.example.com:3128"
    line = text.count("\n")
    assert main.repeated_keys == [(f"{offline_agent.config_path}: line {line}: key 'proxy_url' given again "
                                   "in [Main]; this later value is used")]
    assert "repeated_keys" not in main.as_dict()
    result = offline_agent.send("-k", ROUTING_KEY, "-t", "trigger", "-d", "still queued", "-i", "twice")
    assert result.returncode == 0, result.stderr
    assert len(offline_agent.names("pdq")) == 1

    # The daemon says so in its log, and runs.
    offline_agent.start_daemon()
    assert f"line {line}: key 'proxy_url' given again in [Main]; this later value is used" \
        in offline_agent.log_text()
    offline_agent.stop_daemon()


def test_agent_config_accessors(write_config, tmp_path, dirs):
    main_path = write_config("[Main]\n" + dirs)
    os.makedirs(tmp_path / "data")
    (tmp_path / "data" / "agent_id.txt").write_text("agent-1234\n")
    agent_config = load_agent_config(main_path)
    assert agent_config.get_agent_id() == "agent-1234"
    assert agent_config.get_agent_id_file() == f"{tmp_path}/data/agent_id.txt"
    conf_dirs = agent_config.get_conf_dirs()
    assert conf_dirs["data_dir"] == f"{tmp_path}/data"
    assert conf_dirs["outqueue_dir"] == f"{tmp_path}/data/outqueue"
    assert conf_dirs["db_dir"] == f"{tmp_path}/data/db"
    assert conf_dirs["pid_dir"] == conf_dirs["pidfile_dir"] == f"{tmp_path}/run"
    assert agent_config.get_main_config()["cleanup_threshold_secs"] == 604800
    assert agent_config.get_queue().outqueue_dir == f"{tmp_path}/data/outqueue"
    assert agent_config.get_enqueuer().spool.db_dir == f"{tmp_path}/data/db"


def test_agent_id_missing_is_none(write_config, dirs):
    assert load_agent_config(write_config("[Main]\n" + dirs)).get_agent_id() is None


# -- through the commands: one line, no traceback -------------------------------------------------
# (Daemon-only keys stop only the daemon: tests/test_daemon_only_settings.py.)

@pytest.mark.parametrize("program", ["pd-send", "pd-queue"])
@pytest.mark.parametrize("text, key", [
    (None, None),
    ("[Other]\n", "[Main]"),
    ("[Main]\ndata_dir = relative/data\n", "data_dir"),
    ("[Main\n", "line 1"),
])
def test_commands_report_config_errors_in_one_line(tmp_path, program, text, key):
    path = str(tmp_path / "pdagent.conf")
    if text is not None:
        with open(path, "w") as handle:
            handle.write(text)
    args = ["-k", "K", "-t", "trigger", "-d", "x"] if program == "pd-send" else ["status"]
    result = subprocess.run(command(program) + args, check=False, capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, PDAGENT_CONFIG=path))
    error = assert_usage_error(result, program, path)
    if key:
        assert key in error
