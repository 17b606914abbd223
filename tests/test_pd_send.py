"""pd-send as a real subprocess writing a real spool laid out like the installed one."""

import calendar
import json
import os
import re
import subprocess
import sys
import time

import pytest
from helpers import as_user, assert_usage_error, command, routing_key

from pdagent.event import entry_to_request, validate
from pdagent.spool.names import parse_file_name

KEY = routing_key(1)


@pytest.fixture
def home(offline_agent):
    return offline_agent


def only_entry(home):
    """(file name, parsed entry) of the one event in pdq/; tmp/ must be empty."""
    names = home.names("pdq")
    assert len(names) == 1, names
    assert home.names("tmp") == []
    return names[0], home.read("pdq", names[0])


def assert_succeeded(result, dedup_key=None):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if dedup_key is None:
        assert result.stdout == "Event processed.\n"
    else:
        assert result.stdout == f"Event processed. Incident Key: {dedup_key}\n"


def assert_well_formed(entry, endpoint):
    assert set(entry) == {"endpoint", "event", "agent"}
    assert entry["endpoint"] == endpoint
    assert set(entry["agent"]) == {"agent_id", "queued_by", "queued_at"}
    assert entry["agent"]["queued_by"] == "pd-send"
    assert validate(endpoint, entry["event"]) == []
    assert entry_to_request(entry, "unused") == (endpoint, entry["event"])


def parse_utc(text):
    """Epoch seconds of 2026-11-23T16:40:00.123Z."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z", text)
    assert match, text
    return calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")) + int(match.group(2)) / 1000


# -- success -------------------------------------------------------------------------------------

def test_trigger_prints_the_key_and_queues_a_v2_entry(home):
    with open(os.path.join(home.data_dir, "agent_id.txt"), "w") as id_file:
        id_file.write("3a5f9e1c-agent\n")
    before_us = int(time.time() * 1_000_000)
    result = home.send("-k", KEY, "-t", "trigger", "-d", "Disk full on web01", "-i", "disk-web01")
    after_us = int(time.time() * 1_000_000)
    assert_succeeded(result, "disk-web01")
    name, entry = only_entry(home)
    stamp, key = parse_file_name(name)
    assert key == KEY and name == f"{stamp}_{KEY}.txt"
    assert before_us <= stamp <= after_us
    assert_well_formed(entry, "alert")
    assert entry["agent"]["agent_id"] == "3a5f9e1c-agent"
    payload = entry["event"]["payload"]
    assert entry["event"] == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "disk-web01",
        "payload": {"summary": "Disk full on web01", "source": os.uname().nodename,
                    "severity": "error", "timestamp": payload["timestamp"]}}
    assert before_us / 1e6 - 0.001 <= parse_utc(entry["agent"]["queued_at"]) <= after_us / 1e6


def test_quiet_prints_nothing(home):
    result = home.send("-k", KEY, "-t", "trigger", "-d", "x", "-q")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    only_entry(home)


def test_trigger_without_incident_key_gets_a_generated_one(home):
    keys = []
    for _ in range(2):
        result = home.send("-k", KEY, "-t", "trigger", "-d", "x")
        match = re.fullmatch(r"Event processed\. Incident Key: ([0-9a-f]{32})\n", result.stdout)
        assert match, result.stdout
        keys.append(match.group(1))
    assert keys[0] != keys[1]
    stored = [home.read("pdq", name)["event"]["dedup_key"] for name in home.names("pdq")]
    assert sorted(stored) == sorted(keys)


def test_fields_become_custom_details(home):
    result = home.send("-k", KEY, "-t", "trigger", "-d", "x", "-f", "host=web01",
                       "-f", "query=a=1&b=2", "-f", "empty=", "--field", "spaced = yes ")
    assert_succeeded(result, only_entry(home)[1]["event"]["dedup_key"])
    assert only_entry(home)[1]["event"]["payload"]["custom_details"] == {
        "host": "web01", "query": "a=1&b=2", "empty": "", "spaced ": " yes "}


def test_every_v2_option_is_mapped(home):
    result = home.send(
        "-k", KEY, "-t", "trigger", "-d", "CPU high", "-i", "cpu-1",
        "--severity", "warning", "--source", "db01.example.com", "--component", "postgres",
        "--group", "prod-db", "--class", "cpu", "--timestamp", "2026-11-23T16:40:00+01:00",
        "--link", "https://wiki.example.com/runbook|Runbook", "--link", "http://plain.example.com",
        "--image", "https://img.example.com/cpu.png|CPU graph|https://grafana.example.com",
        "--image", "https://img.example.com/bare.png",
        "-c", "Nagios", "-u", "https://nagios.example.com", "-f", "load=9")
    assert_succeeded(result, "cpu-1")
    _, entry = only_entry(home)
    assert_well_formed(entry, "alert")
    assert entry["event"] == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "cpu-1",
        "payload": {"summary": "CPU high", "source": "db01.example.com", "severity": "warning",
                    "timestamp": "2026-11-23T16:40:00+01:00", "component": "postgres",
                    "group": "prod-db", "class": "cpu", "custom_details": {"load": "9"}},
        "links": [{"href": "https://wiki.example.com/runbook", "text": "Runbook"},
                  {"href": "http://plain.example.com"}],
        "images": [{"src": "https://img.example.com/cpu.png", "alt": "CPU graph",
                    "href": "https://grafana.example.com"},
                   {"src": "https://img.example.com/bare.png"}],
        "client": "Nagios", "client_url": "https://nagios.example.com"}


@pytest.mark.parametrize("severity", ["critical", "error", "warning", "info"])
def test_each_severity(home, severity):
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "x", "-i", "k",
                               "--severity", severity), "k")
    assert only_entry(home)[1]["event"]["payload"]["severity"] == severity


@pytest.mark.parametrize("argv", [["--severity", "CRITICAL"], ["--severity=Critical"], ["--severity", "cRiTiCaL"]])
def test_severity_in_any_case_is_sent_lower_case(home, argv):
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "x", "-i", "k", *argv), "k")
    assert only_entry(home)[1]["event"]["payload"]["severity"] == "critical"


def test_long_options_and_aliases(home):
    result = home.send("--routing-key", KEY, "--event-type", "trigger", "--description", "d",
                       "--dedup-key", "alias-1", "--client", "c", "--client-url", "https://c",
                       "--field", "a=b", "--quiet")
    assert (result.returncode, result.stdout) == (0, "")
    _, entry = only_entry(home)
    assert entry["event"]["routing_key"] == KEY and entry["event"]["dedup_key"] == "alias-1"
    os.unlink(home.path("pdq", home.names("pdq")[0]))
    result = home.send(f"--service-key={KEY}", "--event-type=resolve", "--incident-key=alias-2")
    assert_succeeded(result, "alias-2")
    assert only_entry(home)[1]["event"] == {"routing_key": KEY, "event_action": "resolve",
                                            "dedup_key": "alias-2"}


def test_argparse_and_fast_parser_queue_the_same_event(home):
    common = ["--timestamp", "2026-11-23T16:40:00Z", "--source", "s", "-c", "c",
              "--link", "https://l|L", "--class", "k"]
    plain = home.send("-k", KEY, "-t", "trigger", "-d", "same", "-i", "same", "-f", "a=b=c", *common)
    assert_succeeded(plain, "same")
    first = home.read("pdq", home.names("pdq")[0])["event"]
    os.unlink(home.path("pdq", home.names("pdq")[0]))
    # Attached short options and an abbreviation are left to argparse.
    attached = home.send(f"-k{KEY}", "-ttrigger", "-dsame", "-isame", "-fa=b=c", "--sev", "error",
                         *common)
    assert_succeeded(attached, "same")
    assert only_entry(home)[1]["event"] == first


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve(home, action):
    assert_succeeded(home.send("-k", KEY, "-t", action, "-i", "inc-7"), "inc-7")
    _, entry = only_entry(home)
    assert_well_formed(entry, "alert")
    assert entry["event"] == {"routing_key": KEY, "event_action": action, "dedup_key": "inc-7"}


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_fields_without_a_description_are_not_sent_and_said_so(home, action):
    result = home.send("-k", KEY, "-t", action, "-i", "inc-7", "-f", "note=on it", "-f", "by=alice")
    assert result.returncode == 0 and result.stdout == "Event processed. Incident Key: inc-7\n"
    assert result.stderr == ("pd-send: warning: -f fields are not sent: Events API v2 carries custom "
                             f"details only with a summary, and this {action} has no -d\n")
    assert only_entry(home)[1]["event"] == {"routing_key": KEY, "event_action": action, "dedup_key": "inc-7"}


def test_fields_with_a_description_go_in_the_payload_silently(home):
    assert_succeeded(home.send("-k", KEY, "-t", "resolve", "-i", "inc-7", "-d", "fixed", "-f", "by=alice"),
                     "inc-7")
    assert only_entry(home)[1]["event"]["payload"]["custom_details"] == {"by": "alice"}


def test_acknowledge_with_a_description_carries_a_payload(home):
    assert_succeeded(home.send("-k", KEY, "-t", "acknowledge", "-i", "inc-7", "-d", "on it",
                               "--source", "me"), "inc-7")
    payload = only_entry(home)[1]["event"]["payload"]
    assert (payload["summary"], payload["source"], payload["severity"]) == ("on it", "me", "error")


def test_change_event(home):
    result = home.send("-k", KEY, "-t", "change", "-d", "Deployed v1.2.3", "-f", "build=42",
                       "--link", "https://ci.example.com/42|Build", "--source", "ci",
                       "--timestamp", "2026-11-23T16:40:00Z")
    assert_succeeded(result)
    _, entry = only_entry(home)
    assert_well_formed(entry, "change")
    assert entry["event"] == {
        "routing_key": KEY,
        "payload": {"summary": "Deployed v1.2.3", "source": "ci", "timestamp": "2026-11-23T16:40:00Z",
                    "custom_details": {"build": "42"}},
        "links": [{"href": "https://ci.example.com/42", "text": "Build"}]}


def test_default_source_is_the_cached_fqdn_else_the_host_name(home):
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "x", "-i", "a"), "a")
    assert only_entry(home)[1]["event"]["payload"]["source"] == os.uname().nodename
    os.unlink(home.path("pdq", home.names("pdq")[0]))
    with open(os.path.join(home.data_dir, "fqdn.txt"), "w") as fqdn_file:
        fqdn_file.write("web01.dc1.example.com\n")
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "x", "-i", "b"), "b")
    assert only_entry(home)[1]["event"]["payload"]["source"] == "web01.dc1.example.com"


@pytest.mark.parametrize("cached", ["localhost", "localhost.localdomain", "127.0.0.1", "::1", " "])
def test_a_cached_name_that_names_no_host_is_passed_over(home, cached):
    with open(os.path.join(home.data_dir, "fqdn.txt"), "w") as fqdn_file:
        fqdn_file.write(cached + "\n")
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "x", "-i", "a"), "a")
    assert only_entry(home)[1]["event"]["payload"]["source"] == os.uname().nodename


AUDITED_PD_SEND = """
import json, sys
events = []
sys.addaudithook(lambda event, args: event.startswith("socket.") and events.append(event))
from pdagent.cli.pd_send import main
try:
    main(sys.argv[2:])
finally:
    loaded = [m for m in ("socket", "requests", "daemon", "uuid", "http", "urllib3") if m in sys.modules]
    with open(sys.argv[1], "w") as report:
        json.dump({"socket_events": events, "modules": loaded}, report)
"""


@pytest.mark.skipif(sys.version_info < (3, 8), reason="audit hooks (sys.addaudithook) are Python 3.8+")
def test_no_network_and_no_dns(home):
    report = os.path.join(home.base, "audit.json")
    result = subprocess.run(
        [sys.executable, "-c", AUDITED_PD_SEND, report, "-k", KEY, "-t", "trigger", "-d", "x", "-i", "n"],
        capture_output=True, text=True, env=home.env(), cwd=home.base, timeout=30, check=False)
    assert_succeeded(result, "n")
    with open(report) as report_file:
        assert json.load(report_file) == {"socket_events": [], "modules": []}
    assert only_entry(home)[1]["event"]["payload"]["source"] == os.uname().nodename


def test_default_timestamp_is_when_pd_send_ran(home):
    before = time.time()
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "x", "-i", "t"), "t")
    after = time.time()
    _, entry = only_entry(home)
    stamp = parse_utc(entry["event"]["payload"]["timestamp"])
    assert before - 0.001 <= stamp <= after
    assert abs(parse_utc(entry["agent"]["queued_at"]) - stamp) < 1


def test_change_default_timestamp(home):
    before = time.time()
    assert_succeeded(home.send("-k", KEY, "-t", "change", "-d", "deployed"))
    assert before - 0.001 <= parse_utc(only_entry(home)[1]["event"]["payload"]["timestamp"]) <= time.time()


def test_long_summary_is_truncated_with_a_warning(home):
    summary = "0123456789" * 150
    result = home.send("-k", KEY, "-t", "trigger", "-d", summary, "-i", "long")
    assert result.returncode == 0
    assert result.stdout == "Event processed. Incident Key: long\n"
    assert result.stderr == "pd-send: warning: summary is longer than 1024 characters; truncated\n"
    assert only_entry(home)[1]["event"]["payload"]["summary"] == summary[:1024]


@pytest.mark.parametrize("key", ["abc", KEY + "x", "ü" * 31])
def test_a_routing_key_pagerduty_refuses_is_queued_with_one_warning(home, key):
    result = home.send("-k", key, "-t", "trigger", "-d", "x", "-i", "short")
    assert (result.returncode, result.stdout) == (0, "Event processed. Incident Key: short\n")
    assert result.stderr == (f"pd-send: warning: the routing key is {len(key)} characters long; PagerDuty's "
                             "integration keys are 32, and it refuses others (queued anyway)\n")
    assert only_entry(home)[1]["event"]["routing_key"] == key


def test_a_32_character_key_of_any_characters_is_queued_silently(home):
    assert_succeeded(home.send("-k", "ü" * 32, "-t", "trigger", "-d", "x", "-i", "k"), "k")


def test_summary_of_exactly_1024_characters_is_kept_silently(home):
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "s" * 1024, "-i", "ok"), "ok")
    assert only_entry(home)[1]["event"]["payload"]["summary"] == "s" * 1024


def test_unicode_survives(home):
    assert_succeeded(home.send("-k", KEY, "-t", "trigger", "-d", "Überlast ⚠ 火", "-i", "ü",
                               "-f", "ключ=значение"), "ü")
    with open(home.path("pdq", home.names("pdq")[0]), "rb") as raw:
        assert all(byte < 128 for byte in raw.read())  # escaped, so any reader decodes it (bytes.isascii: 3.7+)
    event = only_entry(home)[1]["event"]
    assert event["payload"]["summary"] == "Überlast ⚠ 火"
    assert event["payload"]["custom_details"] == {"ключ": "значение"}


REPLACED_WARNING = "pd-send: warning: text that is not valid UTF-8 is sent with U+FFFD in place of the bad bytes\n"


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_bytes_that_are_not_utf8_are_sent_as_replacement_characters(home, locale):
    """A Latin-1 plugin output must not cost the page: the bad bytes become U+FFFD, with one warning."""
    argv = [b"-k", KEY.encode(), b"-t", b"trigger", b"-d", b"Temp 45\xb0C on r\xc3\xa9seau", b"-i", b"temp-\xff",
            b"-f", b"output=caf\xe9", b"-f", b"r\xe9gion=\xe2\x82", b"--link", b"https://x.example/|r\xe9sum\xe9"]
    result = subprocess.run(command("pd-send") + argv, env=home.env(LC_ALL=locale), capture_output=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8") == "Event processed. Incident Key: temp-\ufffd\n"
    assert result.stderr.decode("utf-8") == REPLACED_WARNING
    event = only_entry(home)[1]["event"]
    assert event["dedup_key"] == "temp-\ufffd"
    assert event["payload"]["summary"] == "Temp 45\ufffdC on réseau"  # valid UTF-8 beside it is kept
    assert event["payload"]["custom_details"] == {"output": "caf\ufffd", "r\ufffdgion": "\ufffd"}
    assert event["links"] == [{"href": "https://x.example/", "text": "r\ufffdsum\ufffd"}]


def test_a_routing_key_that_is_not_utf8_is_refused(home):
    result = subprocess.run(command("pd-send") + [b"-k", b"R0utingKey\xff" + b"0" * 21, b"-t", b"trigger",
                                                  b"-d", b"x"],
                            env=home.env(), capture_output=True, text=True, timeout=30, check=False)
    assert_usage_error(result, "pd-send", "routing key must be valid UTF-8")
    assert home.names("pdq") == []


# -- --event-file ------------------------------------------------------------------------------

EVENT_FILE_TRIGGER = {
    "routing_key": KEY, "event_action": "trigger", "dedup_key": "from-file",
    "payload": {"summary": "Built by a tool", "source": "tool.example.com", "severity": "info",
                "timestamp": "2026-11-23T16:40:00Z", "custom_details": {"nested": {"a": [1, 2]}}},
    "links": [{"href": "https://example.com"}],
}


def write_json(home, name, value):
    path = os.path.join(home.base, name)
    with open(path, "w") as handle:
        handle.write(value if isinstance(value, str) else json.dumps(value))
    return path


def test_event_file(home):
    path = write_json(home, "event.json", EVENT_FILE_TRIGGER)
    assert_succeeded(home.send("--event-file", path), "from-file")
    _, entry = only_entry(home)
    assert_well_formed(entry, "alert")
    assert entry["event"] == EVENT_FILE_TRIGGER


def test_event_file_from_stdin(home):
    assert_succeeded(home.send("--event-file", "-", input=json.dumps(EVENT_FILE_TRIGGER)), "from-file")
    assert only_entry(home)[1]["event"] == EVENT_FILE_TRIGGER


def test_event_file_change_event_and_key_from_the_command_line(home):
    change = {"payload": {"summary": "Deployed", "source": "ci"}}
    path = write_json(home, "change.json", change)
    result = home.send("--event-file", path, "-k", KEY)
    assert_succeeded(result)
    _, entry = only_entry(home)
    assert_well_formed(entry, "change")
    assert entry["event"] == {"routing_key": KEY, "payload": {"summary": "Deployed", "source": "ci"}}


@pytest.mark.parametrize("from_stdin", [False, True])
def test_event_file_not_utf8_is_sent_as_replacement_characters(home, from_stdin):
    text = json.dumps(EVENT_FILE_TRIGGER).replace("Built by a tool", "Temp 45\udcb0C")
    data = text.encode("utf-8", "surrogateescape")  # the raw byte 0xb0, as a Latin-1 tool writes it
    path = os.path.join(home.base, "latin1.json")
    with open(path, "wb") as event_file:
        event_file.write(data)
    result = subprocess.run(command("pd-send") + ["--event-file", "-" if from_stdin else path],
                            input=data if from_stdin else None, env=home.env(), capture_output=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == REPLACED_WARNING
    assert only_entry(home)[1]["event"]["payload"]["summary"] == "Temp 45\ufffdC"


def test_event_file_trigger_without_dedup_key_gets_one(home):
    body = {key: value for key, value in EVENT_FILE_TRIGGER.items() if key != "dedup_key"}
    result = home.send("--event-file", write_json(home, "e.json", body))
    dedup_key = only_entry(home)[1]["event"]["dedup_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", dedup_key)
    assert_succeeded(result, dedup_key)


def test_event_file_long_summary_is_truncated_with_a_warning(home):
    body = json.loads(json.dumps(EVENT_FILE_TRIGGER))
    body["payload"]["summary"] = "y" * 2000
    result = home.send("--event-file", "-", input=json.dumps(body))
    assert result.returncode == 0 and "truncated" in result.stderr
    assert only_entry(home)[1]["event"]["payload"]["summary"] == "y" * 1024


# -- modes and ownership (installed-like layout of the `agent` fixture) --------------------------

@pytest.mark.parametrize("umask", ["000", "077", "027"])
def test_file_mode_is_0640_whatever_the_umask(agent, umask):
    quoted = " ".join(f"'{part}'" for part in command("pd-send"))
    result = subprocess.run(
        ["sh", "-c", f"umask {umask}; exec {quoted} -k {KEY} -t trigger -d x -i m"],
        capture_output=True, text=True, env=agent.env(), timeout=30, check=False)
    assert_succeeded(result, "m")
    name, _ = only_entry(agent)
    info = os.stat(agent.path("pdq", name))
    assert info.st_mode & 0o7777 == 0o640
    assert info.st_gid == agent.gid


def test_file_mode_with_umask_set_by_preexec(agent):
    result = subprocess.run(command("pd-send") + ["-k", KEY, "-t", "trigger", "-d", "x", "-i", "p"],
                            capture_output=True, text=True, env=agent.env(), timeout=30,
                            preexec_fn=lambda: os.umask(0), check=False)
    assert_succeeded(result, "p")
    assert os.stat(agent.path("pdq", only_entry(agent)[0])).st_mode & 0o7777 == 0o640


def test_installed_layout_is_what_the_fixture_promises(agent):
    for state, mode in [("tmp", 0o3753), ("pdq", 0o3753), ("suc", 0o2750), ("err", 0o2750)]:
        info = os.stat(agent.path(state))
        assert info.st_mode & 0o7777 == mode
        assert (info.st_uid, info.st_gid) == (agent.uid, agent.gid)


def test_root_queues_into_the_daemons_group(agent):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    assert_succeeded(agent.send("-k", KEY, "-t", "trigger", "-d", "as root", "-i", "r"), "r")
    name, entry = only_entry(agent)
    info = os.stat(agent.path("pdq", name))
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (0, agent.gid, 0o640)
    assert entry["event"]["payload"]["summary"] == "as root"


def test_any_local_user_can_queue_and_only_the_daemon_group_can_read(agent, other_user):
    result = agent.send("-k", KEY, "-t", "trigger", "-d", "as a user", "-i", "u", user=other_user)
    assert_succeeded(result, "u")
    name, entry = only_entry(agent)
    path = agent.path("pdq", name)
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (other_user[0], agent.gid, 0o640)
    assert entry["event"]["payload"]["summary"] == "as a user"
    assert_well_formed(entry, "alert")

    def run_as(user, argv):
        return subprocess.run(as_user(*user, argv), capture_output=True, timeout=30, check=False)
    with open(path, "rb") as entry_file:
        content = entry_file.read()
    assert run_as((agent.uid, agent.gid), ["cat", path]).stdout == content  # the daemon reads it
    assert run_as(other_user, ["ls", agent.path("pdq")]).returncode != 0  # nobody else lists pdq/
    # ...and the user who queued it cannot read others' events either:
    assert_succeeded(agent.send("-k", KEY, "-t", "trigger", "-d", "root's", "-i", "r2"), "r2")
    roots = next(n for n in agent.names("pdq") if n != name)
    assert run_as(other_user, ["cat", agent.path("pdq", roots)]).returncode != 0


# -- the table of bad inputs -----------------------------------------------------------------------

LONG_VALUE = "v" * 120_000  # under the kernel's 128 KiB limit on one argument

# (id, argv with {home} for the agent's directory, phrase of the error line, {file: content})
BAD_INPUTS = [
    ("missing -k", ["-t", "trigger", "-d", "x"], "-k/--service-key", None),
    ("missing -t", ["-k", KEY, "-d", "x"], "-t/--event-type", None),
    ("bad -t", ["-k", KEY, "-t", "explode", "-d", "x"], "invalid choice: 'explode'", None),
    ("bad --severity", ["-k", KEY, "-t", "trigger", "-d", "x", "--severity", "FATAL"],
     "invalid choice: 'fatal'", None),
    ("stray argument with control characters", ["-k", KEY, "-t", "trigger", "-d", "x", "\x1b[31mred\n"],
     "unrecognized arguments: \\x1b[31mred\\n", None),
    ("trigger without -d", ["-k", KEY, "-t", "trigger"], "trigger needs a non-blank description", None),
    ("blank -d", ["-k", KEY, "-t", "trigger", "-d", " \t "], "non-blank description", None),
    ("empty -d", ["-k", KEY, "-t", "trigger", "-d", ""], "non-blank description", None),
    ("change without -d", ["-k", KEY, "-t", "change"], "change needs a non-blank description", None),
    ("acknowledge without -i", ["-k", KEY, "-t", "acknowledge"], "acknowledge needs an incident key", None),
    ("resolve without -i", ["-k", KEY, "-t", "resolve", "-d", "x"], "resolve needs an incident key", None),
    ("dedup key over 255", ["-k", KEY, "-t", "trigger", "-d", "x", "-i", "d" * 256],
     "dedup_key is longer than 255 characters", None),
    ("field without =", ["-k", KEY, "-t", "trigger", "-d", "x", "-f", "novalue"],
     "invalid KEY=VALUE value: 'novalue'", None),
    ("field without key", ["-k", KEY, "-t", "trigger", "-d", "x", "-f", "=v"], "KEY=VALUE", None),
    ("bad severity", ["-k", KEY, "-t", "trigger", "-d", "x", "--severity", "fatal"],
     "invalid choice: 'fatal'", None),
    ("timestamp word", ["-k", KEY, "-t", "trigger", "-d", "x", "--timestamp", "yesterday"],
     "timestamp must be ISO 8601", None),
    ("timestamp date only", ["-k", KEY, "-t", "trigger", "-d", "x", "--timestamp", "2026-11-23"],
     "timestamp must be ISO 8601", None),
    ("timestamp month 13", ["-k", KEY, "-t", "trigger", "-d", "x", "--timestamp", "2026-13-01T00:00:00Z"],
     "timestamp must be ISO 8601", None),
    ("timestamp feb 30", ["-k", KEY, "-t", "change", "-d", "x", "--timestamp", "2026-02-30T10:00:00Z"],
     "timestamp must be ISO 8601", None),
    ("timestamp epoch", ["-k", KEY, "-t", "trigger", "-d", "x", "--timestamp", "1795452000"],
     "timestamp must be ISO 8601", None),
    ("timestamp bad zone", ["-k", KEY, "-t", "trigger", "-d", "x", "--timestamp", "2026-11-23T16:40:00+5"],
     "timestamp must be ISO 8601", None),
    ("timestamp hour 24", ["-k", KEY, "-t", "acknowledge", "-i", "k", "--timestamp", "2026-11-23T24:00:00Z"],
     "timestamp must be ISO 8601", None),
    ("key with slash", ["-k", "abc/def", "-t", "trigger", "-d", "x"], "must not contain '/'", None),
    ("key dot-dot slash", ["-k", "../../etc", "-t", "trigger", "-d", "x"], "must not contain '/'", None),
    ("key with space", ["-k", "abc def", "-t", "trigger", "-d", "x"], "white space", None),
    ("key with tab", ["-k", "abc\tdef", "-t", "trigger", "-d", "x"], "white space", None),
    ("key with newline", ["-k", "abc\ndef", "-t", "trigger", "-d", "x"], "white space", None),
    ("empty key", ["-k", "", "-t", "trigger", "-d", "x"], "the routing key (-k/--service-key) is empty", None),
    ("key over 200 bytes", ["-k", "k" * 201, "-t", "trigger", "-d", "x"], "too long", None),
    ("key over 200 bytes in UTF-8", ["-k", "é" * 101, "-t", "trigger", "-d", "x"], "too long", None),
    ("change with -i", ["-k", KEY, "-t", "change", "-d", "x", "-i", "k"], "a change event takes no -i",
     None),
    ("image not https", ["-k", KEY, "-t", "trigger", "-d", "x", "--image", "http://i.example.com/x.png"],
     "https URL", None),
    ("link not a URL", ["-k", KEY, "-t", "trigger", "-d", "x", "--link", "runbook"], "http(s) URL", None),
    ("unknown option", ["-k", KEY, "-t", "trigger", "-d", "x", "--bogus"], "unrecognized arguments", None),
    ("stray argument", ["-k", KEY, "-t", "trigger", "-d", "x", "extra"], "unrecognized arguments", None),
    ("event too big", ["-k", KEY, "-t", "trigger", "-d", "x"] + [f"-f=k{n}={LONG_VALUE}" for n in range(5)],
     "the Events API takes at most 524288", None),
    ("event-file not found", ["--event-file", "{home}/none.json"], "cannot read {home}/none.json", None),
    ("event-file invalid JSON", ["--event-file", "{home}/e.json"], "is not valid JSON",
     {"e.json": '{"routing_key": '}),
    ("event-file JSON array", ["--event-file", "{home}/e.json"], "must hold one JSON object",
     {"e.json": [EVENT_FILE_TRIGGER]}),
    ("event-file unknown field", ["--event-file", "{home}/e.json"],
     "field 'severity' is not defined by the Events API v2",
     {"e.json": dict(EVENT_FILE_TRIGGER, severity="critical")}),
    ("event-file unknown payload field", ["--event-file", "{home}/e.json"], "payload field 'host'",
     {"e.json": dict(EVENT_FILE_TRIGGER, payload=dict(EVENT_FILE_TRIGGER["payload"], host="h"))}),
    ("event-file trigger without payload", ["--event-file", "{home}/e.json"], "payload must be an object",
     {"e.json": {"routing_key": KEY, "event_action": "trigger"}}),
    ("event-file without routing key", ["--event-file", "{home}/e.json"], "routing key",
     {"e.json": {k: v for k, v in EVENT_FILE_TRIGGER.items() if k != "routing_key"}}),
    ("event-file with -d", ["--event-file", "{home}/e.json", "-d", "x"], "--event-file takes the whole event",
     {"e.json": EVENT_FILE_TRIGGER}),
    ("event-file with -f", ["--event-file", "{home}/e.json", "-f", "a=b"], "--event-file takes the whole",
     {"e.json": EVENT_FILE_TRIGGER}),
    ("event-file -k differs", ["--event-file", "{home}/e.json", "-k", routing_key(2)], "-k differs",
     {"e.json": EVENT_FILE_TRIGGER}),
    ("event-file -t differs", ["--event-file", "{home}/e.json", "-t", "resolve"], "-t differs",
     {"e.json": EVENT_FILE_TRIGGER}),
    ("event-file change with alert fields", ["--event-file", "{home}/e.json", "-t", "change"],
     "field 'dedup_key' is not defined", {"e.json": EVENT_FILE_TRIGGER}),
]


@pytest.mark.parametrize("argv, phrase, files", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input(home, argv, phrase, files):
    for name, content in (files or {}).items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(home.base, name), mode) as handle:
            handle.write(content if isinstance(content, (str, bytes)) else json.dumps(content))
    argv = [arg.replace("{home}", home.base) for arg in argv]
    assert_usage_error(home.send(*argv), "pd-send", phrase.replace("{home}", home.base))
    assert home.names("pdq") == [] and home.names("tmp") == []


IGNORED_OPTIONS = [
    ("event-file with --severity", ["--event-file", "{home}/e.json", "--severity", "critical"]),
    ("change with --component", ["-k", KEY, "-t", "change", "-d", "x", "--component", "db"]),
    ("change with --group", ["-k", KEY, "-t", "change", "-d", "x", "--group", "prod"]),
    ("change with --class", ["-k", KEY, "-t", "change", "-d", "x", "--class", "deploy"]),
    ("change with --severity", ["-k", KEY, "-t", "change", "-d", "x", "--severity", "critical"]),
]


@pytest.mark.parametrize("argv", [case[1] for case in IGNORED_OPTIONS], ids=[c[0] for c in IGNORED_OPTIONS])
def test_options_the_event_cannot_carry_are_refused(home, argv):
    with open(os.path.join(home.base, "e.json"), "w") as handle:
        json.dump(EVENT_FILE_TRIGGER, handle)
    result = home.send(*[arg.replace("{home}", home.base) for arg in argv])
    assert home.names("pdq") == [] and home.names("tmp") == []
    assert_usage_error(result, "pd-send", "")


DEEP = "[" * 100_000 + "]" * 100_000
CRASHING_INPUTS = [
    ("routing key not UTF-8", ["-k", "abc\udcff", "-t", "trigger", "-d", "x"], None),
    ("event-file key with a lone surrogate", ["--event-file", "{home}/e.json"],
     ('{"routing_key": "ab\\ud800", "event_action": "trigger",'
      ' "payload": {"summary": "s", "source": "h", "severity": "info"}}')),
    ("event-file NaN", ["--event-file", "{home}/e.json"],
     json.dumps(EVENT_FILE_TRIGGER).replace('{"nested"', '{"load": NaN, "nested"')),
    ("event-file Infinity", ["--event-file", "{home}/e.json"],
     json.dumps(EVENT_FILE_TRIGGER).replace('{"nested"', '{"load": 1e999, "nested"')),
    ("event-file nested too deeply", ["--event-file", "{home}/e.json"],
     json.dumps(EVENT_FILE_TRIGGER).replace('{"nested": {"a": [1, 2]}}', DEEP)),
]


@pytest.mark.parametrize("argv, content", [case[1:] for case in CRASHING_INPUTS],
                         ids=[case[0] for case in CRASHING_INPUTS])
def test_bad_input_without_a_traceback(home, argv, content):
    if content is not None:
        with open(os.path.join(home.base, "e.json"), "w") as handle:
            handle.write(content)
    result = home.send(*[arg.replace("{home}", home.base) for arg in argv])
    assert home.names("pdq") == [] and home.names("tmp") == []
    assert_usage_error(result, "pd-send", "")


# (id, config text or None for a missing file, key the error must name). Only what pd-send
# reads can stop it: daemon-only keys are tests/test_daemon_only_settings.py's.
BAD_CONFIGS = [
    ("missing file", None, None),
    ("no [Main]", "[Agent]\ndata_dir = {data}\n", "[Main]"),
    ("relative data_dir", "[Main]\ndata_dir = data\n", "data_dir"),
    ("not INI", "data_dir = {data}\n", "line 1"),
]


@pytest.mark.parametrize("text, key", [case[1:] for case in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config(home, text, key):
    path = os.path.join(home.base, "broken.conf")
    if text is not None:
        with open(path, "w") as config_file:
            config_file.write(text.replace("{data}", home.data_dir))
    result = home.send("-k", KEY, "-t", "trigger", "-d", "x", env=home.env(PDAGENT_CONFIG=path))
    line = assert_usage_error(result, "pd-send", path)
    if key:
        assert key in line
    else:
        assert "No such file or directory" in line
    assert home.names("pdq") == [] and home.names("tmp") == []


def test_help_documents_links_and_images_once(home):
    result = home.send("--help")
    assert result.returncode == 0
    options = result.stdout.split("\noptions:\n")[-1].split("\noptional arguments:\n")[-1]
    for option in ("--link URL[|TEXT]", "--image SRC[|ALT[|HREF]]"):
        assert options.count(option) == 1, result.stdout  # in the options, not again in an epilog
    assert "--link 'https://wiki.example.com/runbook|Runbook'" in options
    assert home.names("pdq") == []


# -- many writers at once ----------------------------------------------------------------------------

def test_20_parallel_writers_times_25_events_lose_nothing(agent):
    writers, per_writer = 20, 25
    quoted = " ".join(f"'{part}'" for part in command("pd-send"))
    script = (f'i=0; while [ $i -lt {per_writer} ]; do i=$((i+1)); '
              f'{quoted} -q -k "$1" -t trigger -d "writer $2 event $i" -i "w$2-e$i" -f "writer=$2" '
              f'|| echo "FAILED $2 $i" >&2; done')
    processes = [subprocess.Popen(["sh", "-c", script, "sh", routing_key(writer % 4), str(writer)],
                                  env=agent.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
                 for writer in range(writers)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * writers
    assert outputs == [("", "")] * writers

    names = agent.names("pdq")
    assert len(names) == writers * per_writer == len(set(names))
    assert agent.names("tmp") == []
    seen = set()
    sent_order = {}
    for name in names:  # in queue order
        entry = agent.read("pdq", name)
        assert_well_formed(entry, "alert")
        event = entry["event"]
        writer = int(event["payload"]["custom_details"]["writer"])
        number = int(event["dedup_key"].split("-e")[1])
        assert event["dedup_key"] == f"w{writer}-e{number}"
        assert event["payload"]["summary"] == f"writer {writer} event {number}"
        assert event["routing_key"] == routing_key(writer % 4) == parse_file_name(name)[1]
        seen.add((writer, number))
        sent_order.setdefault(writer, []).append(number)
    assert seen == {(w, n) for w in range(writers) for n in range(1, per_writer + 1)}
    # Per writer, queue order is the order it sent in.
    assert sent_order == {w: list(range(1, per_writer + 1)) for w in range(writers)}
