"""Bad input: pd-send's arguments, hostile files in the spool, bad configuration values.

- pd-send, whatever its arguments: never a traceback; either exit 0 with one
  valid event queued (one the strict stand-in would accept, bar the routing
  key's length, which only PagerDuty knows) or exit 2 with a reason.
- Files in pdq/ that pd-send did not write (garbage, links, directories,
  FIFOs, files nobody may read, wrong names): moved to err/ with a reason or
  skipped with a log line; never followed, never read through a link, never
  crashing the daemon, never holding up the other events of their key or others.
- Every bad configuration value: pdagentd and pd-send exit non-zero with one line.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import events_api_standin  # the stand-in's strict validator (scripts/: on the path once conftest.py loads helpers)
import helpers
import pytest
from helpers import Agent, command, routing_key, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdagent.cli import pd_send
from pdagent.event import make_entry
from pdagent.jsonwrite import dumps
from pdagent.spool.names import event_file_name
from pdagent.spool.queue import Spool

KEY_A = routing_key(800)
KEY_B = routing_key(801)


# -- pd-send's arguments, in-process (fast) -------------------------------------------------------

@pytest.fixture(scope="module")
def send_home(daemon_user):
    """A spool and config for in-process pd-send runs (no daemon), plus files to point it at."""
    base = tempfile.mkdtemp(prefix="pdagent-input-")
    os.chmod(base, 0o755)
    home = Agent(base, daemon_user, "http://127.0.0.1:9")
    files = {}
    for name, data in [
        ("valid.json", json.dumps(helpers.alert_body(KEY_A, 1, tag="file")).encode()),
        ("change.json", json.dumps({"routing_key": KEY_A, "payload": {"summary": "deployed"}}).encode()),
        ("invalid.json", b"{not json"),
        ("binary.json", bytes(range(256))),
        ("latin1.json", '{"routing_key": "caf\xe9"}'.encode("latin-1")),
        ("list.json", b"[1, 2]"),
        ("big.json", json.dumps({**helpers.alert_body(KEY_A, 2, tag="big"),
                                 "links": [{"href": "https://x.example/" + "y" * 600_000}]}).encode()),
        ("empty.json", b""),
    ]:
        path = os.path.join(base, name)
        with open(path, "wb") as sample:
            sample.write(data)
        files[name] = path
    files["directory"] = base
    files["missing"] = os.path.join(base, "missing.json")
    yield home, files
    shutil.rmtree(base, ignore_errors=True)


def _pd_send_in_process(home, argv, stdin_text):
    """pd-send's main() with our config; (exit code, stdout, stderr). Anything but SystemExit propagates."""
    out, err = io.StringIO(), io.StringIO()
    saved_stdin, saved_env = sys.stdin, os.environ.get("PDAGENT_CONFIG")
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin_text), encoding="utf-8")
    os.environ["PDAGENT_CONFIG"] = home.config_path
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = pd_send.main(argv)
            except SystemExit as leaving:
                code = leaving.code
    finally:
        sys.stdin = saved_stdin
        if saved_env is None:
            os.environ.pop("PDAGENT_CONFIG", None)
        else:
            os.environ["PDAGENT_CONFIG"] = saved_env
    return code, out.getvalue(), err.getvalue()


# Known and reported (test_pd_send_blank_summary_on_acknowledge): drop it from here once fixed.
def _strict_api_problems(endpoint, body):
    """What the strict stand-in would refuse, bar the routing key's length (PagerDuty's business)."""
    check = (events_api_standin.validate_change_event if endpoint == "change"
             else events_api_standin.validate_alert_event)
    return [problem for problem in check(body)
            if "'routing_key' must be 32" not in problem]


def _check_outcome(home, argv, code, out, err, before):
    new = sorted(set(home.names("pdq")) - before)
    assert "Traceback" not in err
    if code == 0 and out.startswith("usage:"):
        assert new == []  # -h: help, nothing queued
        return "help"
    if code == 0:
        assert len(new) == 1, (argv, new)
        endpoint, body = helpers.check_entry_file(home.path("pdq", new[0]))
        assert new[0].endswith(f"_{body['routing_key']}.txt")
        assert _strict_api_problems(endpoint, body) == [], (argv, body)
        assert "-q" in argv or "--quiet" in argv or out.startswith("Event processed.")
        os.unlink(home.path("pdq", new[0]))
        return "queued"
    assert code == 2, (argv, code, err)
    assert new == []
    reasons = [line for line in err.splitlines() if line.startswith("pd-send: error: ")]
    assert len(reasons) == 1 and len(reasons[0]) > len("pd-send: error: "), err
    return "refused"


VALUE_FLAGS = ["-k", "--service-key", "--routing-key", "-t", "--event-type", "-d", "--description",
               "-i", "--incident-key", "--dedup-key", "-c", "--client", "-u", "--client-url",
               "-f", "--field", "--severity", "--source", "--component", "--group", "--class",
               "--timestamp", "--link", "--image", "--event-file"]
BARE_ARGS = ["-q", "--quiet", "--", "-", "--unknown", "-x", "--sev", "--event", "-kk", "-t=trigger"]
SPECIAL_VALUES = [
    "", " ", "-", "--", "=", "|", "||", "a=b", "=b", "a=", "a==b", "trigger", "acknowledge",
    "resolve", "change", "critical", "error", "warning", "info", KEY_A, KEY_B, "x" * 300,
    "y" * 2000, "é" * 40, "\u2028", "\ufeff", "a\nb", "\t", "{}", "null", "NaN",
    "https://example.com/runbook|Runbook", "https://img.example/i.png|alt|https://example.com",
    "http://", "https://", "javascript:alert(1)", "2026-11-23T16:40:00Z", "2026-11-23 16:40",
    "2026-02-30T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T16:40:60Z", "2026-11-23T16:40:00.5+05",
    "2026-11-23T16:40:00+0530", "1700000000", "\udcff", "caf\udce9", "../../etc/passwd",
]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30)
KEYS = st.one_of(st.sampled_from([KEY_A, KEY_B, "k", "a/b", "a b", "x" * 201, "é" * 32, "-", ""]),
                 st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                         min_size=1, max_size=40))


@st.composite
def pd_send_argvs(draw, files):
    values = st.one_of(TEXT, st.sampled_from(SPECIAL_VALUES))
    argv = []
    if draw(st.integers(0, 9)) < 7:  # a mostly sensible start, so that many examples get queued
        argv += ["-k", draw(KEYS), "-t", draw(st.sampled_from(["trigger", "acknowledge", "resolve",
                                                                "change"])),
                 "-d", draw(st.one_of(TEXT.filter(lambda text: not text.startswith("-")), values))]
        if argv[3] in ("acknowledge", "resolve") and draw(st.booleans()):
            argv += ["-i", draw(TEXT.filter(lambda text: text and not text.startswith("-")))]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3, 6]))):
        shape = draw(st.integers(0, 4))
        flag = draw(st.sampled_from(VALUE_FLAGS))
        if flag == "--event-file":
            value = draw(st.sampled_from(sorted(files.values()) + ["-"]))
        elif flag in ("-k", "--service-key", "--routing-key"):
            value = draw(KEYS)
        else:
            value = draw(values)
        if shape == 0:
            argv += [flag, value]
        elif shape == 1 and flag.startswith("--"):
            argv.append(f"{flag}={value}")
        elif shape == 2:
            argv.append(draw(st.sampled_from(BARE_ARGS)))
        elif shape == 3:
            argv.append(value)  # a stray word
        else:
            argv += [flag, value, flag, draw(values)]  # given twice
    return argv


STDIN = st.one_of(st.just(json.dumps(helpers.alert_body(KEY_B, 3, tag="stdin")).encode()),
                  st.binary(max_size=64), TEXT.map(lambda text: text.encode("utf-8")))


def _property(examples):
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def check(send_home, data):
        home, files = send_home
        argv = data.draw(pd_send_argvs(files), label="argv")
        stdin_text = data.draw(STDIN, label="stdin")
        before = set(home.names("pdq"))
        code, out, err = _pd_send_in_process(home, argv, stdin_text)
        outcome = _check_outcome(home, argv, code, out, err, before)
        _TALLY[outcome] = _TALLY.get(outcome, 0) + 1
    return check


_TALLY = {}


def _check_arguments(send_home, examples, label):
    """The property over `examples` argument lists; some must be queued and some refused,
    else the generator has stopped reaching one side and the property proves little."""
    _TALLY.clear()
    _property(examples)(send_home)
    helpers.report(label, **_TALLY)
    assert _TALLY.get("queued") and _TALLY.get("refused"), _TALLY


def test_pd_send_arguments_property(send_home):
    _check_arguments(send_home, 300, "pd-send arguments (hypothesis)")


@pytest.mark.slow
def test_pd_send_arguments_property_long(send_home):
    _check_arguments(send_home, 2000, "pd-send arguments (hypothesis, long)")


# -- pd-send's arguments, as real processes -----------------------------------------------------

REAL_ARGVS = [
    pytest.param([], 2, id="no-arguments"),
    pytest.param(["-k", KEY_A, "-t", "trigger"], 2, id="trigger-without-description"),
    pytest.param(["-k", KEY_A, "-t", "resolve"], 2, id="resolve-without-incident-key"),
    pytest.param(["-k", KEY_A, "-t", "explode", "-d", "x"], 2, id="unknown-event-type"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "x", "-f", "no-equals"], 2, id="field-without-equals"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "x", "--timestamp", "yesterday"], 2, id="bad-timestamp"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "x", "--image", "http://insecure/i.png"], 2,
                 id="image-not-https"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", b"caf\xe9 not UTF-8"], 0, id="description-not-utf8"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "x" * 100_000], 0, id="description-100KB"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "x"]
                 + [arg for n in range(5) for arg in ("-f", f"k{n}=" + "v" * 110_000)], 2,
                 id="event-over-512KB"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "x", "--event-file", "/dev/null"], 2,
                 id="event-file-with-flags"),
    pytest.param(["--event-file", "/etc/shadow"], 2, id="event-file-unreadable"),
    pytest.param(["--event-file", "/"], 2, id="event-file-directory"),
    pytest.param(["-k", KEY_A, "-t", "trigger", "-d", "ok", "-q"], 0, id="quiet"),
    pytest.param(["-k", KEY_A, "-t", "change", "-d", "deployed", "--link", "https://x.example|x"], 0,
                 id="change-event"),
]


@pytest.mark.parametrize(("argv", "expected"), REAL_ARGVS)
def test_pd_send_real_process(agent, argv, expected):
    user = helpers.ensure_user(helpers.SECOND_USER)  # not root: /etc/shadow must be unreadable
    before = set(agent.names("pdq"))
    result = subprocess.run(helpers.as_user(*user, command("pd-send")) + list(argv), env=agent.env(),
                            capture_output=True, timeout=30, check=False)
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr
    assert result.returncode == expected, stderr
    new = sorted(set(agent.names("pdq")) - before)
    if expected == 0:
        assert len(new) == 1
        helpers.check_entry_file(agent.path("pdq", new[0]))
    else:
        assert new == []
        assert [line for line in stderr.splitlines() if line.startswith("pd-send: error: ")]


@pytest.mark.parametrize("source", ["argv", "event-file"])
def test_pd_send_routing_key_not_utf8(agent, source):
    if source == "argv":
        argv = [b"-k", b"R0utingKey\xff" + b"0" * 21, b"-t", b"trigger", b"-d", b"x"]
    else:
        path = os.path.join(agent.base, "surrogate.json")
        with open(path, "w") as event_file:
            event_file.write('{"routing_key": "R0utingKey\\udcff000000000000000000000",'
                             ' "event_action": "trigger", "payload": {"summary": "x",'
                             ' "source": "h", "severity": "info"}}')
        argv = ["--event-file", path]
    result = subprocess.run(command("pd-send") + argv, env=agent.env(), capture_output=True,
                            timeout=30, check=False)
    assert "Traceback" not in result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2


def test_pd_send_event_file_deeply_nested(agent):
    path = os.path.join(agent.base, "nested.json")
    with open(path, "w") as event_file:
        event_file.write('{"a":' * 100_000)
    result = agent.send("--event-file", path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_pd_send_blank_summary_on_acknowledge(send_home, action):
    home, _ = send_home
    before = set(home.names("pdq"))
    code, _, _ = _pd_send_in_process(home, ["-k", KEY_A, "-t", action, "-i", "x", "-d", ""], b"")
    new = sorted(set(home.names("pdq")) - before)
    for name in new:
        _, body = helpers.check_entry_file(home.path("pdq", name))
        os.unlink(home.path("pdq", name))
        assert events_api_standin.validate_alert_event(body) == [], body
    assert code == 2 or new


ODD_BODIES = [
    pytest.param({"event_action": "trigger", "payload": {"summary": ["a"], "source": "h",
                                                         "severity": "info"}}, id="summary-a-list"),
    pytest.param({"event_action": "trigger", "payload": {"summary": "x", "source": "h",
                                                         "severity": "info", "timestamp": 5}},
                 id="timestamp-a-number"),
    pytest.param({"event_action": "trigger", "dedup_key": 7,
                  "payload": {"summary": "x", "source": "h", "severity": "info"}}, id="dedup-key-a-number"),
    pytest.param({"event_action": "trigger", "links": [{"href": "https://x.example", "text": 5}],
                  "payload": {"summary": "x", "source": "h", "severity": "info"}}, id="link-text-a-number"),
    pytest.param({"event_action": "acknowledge", "dedup_key": "x", "payload": {"summary": 5}},
                 id="acknowledge-summary-a-number"),
    pytest.param({"event_action": "resolve", "dedup_key": "x", "payload": {"summary": ""}},
                 id="resolve-summary-empty"),
    pytest.param({"event_action": "acknowledge", "dedup_key": "x", "payload": {"severity": "bogus"}},
                 id="acknowledge-severity-bogus"),
    pytest.param({"payload": {"summary": "deployed", "source": ""}}, id="change-source-empty"),
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_pd_send_event_file_odd_bodies(agent, body):
    """What pd-send queues from an event file, the strict API accepts; else exit 2, no traceback."""
    path = os.path.join(agent.base, "odd.json")
    with open(path, "w") as event_file:
        json.dump(dict(body, routing_key=KEY_A), event_file)
    before = set(agent.names("pdq"))
    result = agent.send("--event-file", path)
    assert "Traceback" not in result.stderr
    new = sorted(set(agent.names("pdq")) - before)
    if result.returncode == 0:
        endpoint, queued = helpers.check_entry_file(agent.path("pdq", new[0]))
        assert _strict_api_problems(endpoint, queued) == [], queued
    else:
        assert result.returncode == 2 and new == []


# -- hostile files in pdq/ -------------------------------------------------------------------

def _enqueue_at(agent, body, when_us):
    """A valid entry, written as pd-send writes it, at a chosen place in the queue order."""
    entry = make_entry("alert", body, None, "pd-send")
    spool = Spool(agent.outqueue, os.path.join(agent.data_dir, "db"))
    return spool.enqueue(body["routing_key"], dumps(entry).encode("ascii"), now=when_us / 1e6)


def _plant(agent, name, kind, other_dir):
    """A file of `kind` at pdq/<name>, made as root aside, then renamed in whole."""
    staging = os.path.join(agent.base, "staging")
    os.makedirs(staging, exist_ok=True)
    path = os.path.join(staging, name)
    valid = make_entry("alert", helpers.alert_body(KEY_A, 0, tag="hostile", dedup_key=f"hostile-{kind}"),
                       None, "pd-send")
    contents = {
        "invalid-json": b"{not json at all",
        "binary": b"\xff\xfe" + bytes(range(256)) * 2,
        "empty": b"",
        "over-512KB": dumps({**valid, "padding": "p" * (520 * 1024)}).encode(),
        "json-list": b"[1, 2, 3]",
        "not-an-entry": b'{"hello": "world"}',
        "invalid-event": dumps(make_entry("alert", {"routing_key": KEY_A, "event_action": "trigger"},
                                          None, "x")).encode(),
        "undefined-field": dumps(make_entry("alert", {**helpers.alert_body(KEY_A, 0), "extra": 1},
                                            None, "x")).encode(),
        "nan-detail": dumps(valid).replace('"tag":"hostile"', '"tag":NaN').encode(),
        "unreadable": dumps(valid).encode(),
    }
    if kind in contents:
        with open(path, "wb") as planted:
            planted.write(contents[kind])
        if kind == "unreadable":
            os.chmod(path, 0o600)  # root's: the daemon may not read it
    elif kind == "symlink-to-shadow":
        os.symlink("/etc/shadow", path)
    elif kind == "symlink-to-entry":
        # A valid event the daemon could read, elsewhere: following the link would send it.
        target = os.path.join(other_dir, f"{kind}.json")
        with open(target, "wb") as entry_file:
            entry_file.write(dumps(make_entry("alert", helpers.alert_body(
                KEY_A, 0, tag="hostile", dedup_key="followed-a-symlink"), None, "x")).encode())
        os.chmod(target, 0o644)
        os.symlink(target, path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        raise ValueError(kind)
    os.rename(path, agent.path("pdq", name))


HOSTILE = ["invalid-json", "binary", "empty", "over-512KB", "json-list", "not-an-entry",
           "invalid-event", "undefined-field", "nan-detail", "unreadable", "symlink-to-shadow",
           "symlink-to-entry", "fifo"]
NOT_REGULAR = ("symlink-to-shadow", "symlink-to-entry", "fifo")  # never read nor moved: passed over


def _wrong_names(when_us):
    return ["notes.txt", "12345.txt", f"abc_{KEY_A}.txt", f".{when_us}_{KEY_A}.txt",
            f"{when_us}_{KEY_A}.txt.tmp", f"{when_us}_.txt", f"{when_us}_{KEY_A}.TXT", f"0{when_us}_{KEY_A}.txt"]


def test_hostile_spool_entries(agent, standin):
    other_dir = tempfile.mkdtemp(prefix="pdagent-other-")
    os.chmod(other_dir, 0o755)
    try:
        base = int(time.time() * 1e6)
        valid, hostile = [], []
        # Two rounds: planted before the daemon starts (found by its scan) and while it runs (inotify).
        for round_number in range(2):
            start = base + round_number * 10_000
            for number, kind in enumerate(HOSTILE):
                slot = start + 100 * number
                valid.append(_enqueue_at(agent, helpers.alert_body(KEY_A, round_number * 100 + number,
                                                              tag="valid"), slot))
                name = event_file_name(slot + 50, KEY_A)
                _plant(agent, name, kind, other_dir)
                hostile.append((name, kind))
            valid.append(_enqueue_at(agent, helpers.alert_body(KEY_B, round_number, tag="other"), start + 7))
            for wrong in _wrong_names(start + 3):
                with open(agent.path("pdq", wrong + ("" if round_number == 0 else ".2")), "w") as junk:
                    junk.write("{}")
            if round_number == 0:
                pid = helpers.start_daemon(agent)
                wait_for(lambda: len(agent.names("suc")) >= len(valid), timeout=15,
                         message="the first round's valid events delivered")

        wait_for(lambda: sorted(agent.names("suc")) == sorted(valid), timeout=15,
                 message="every valid event delivered")
        wait_for(lambda: all(helpers.where(agent, name) == "err" for name, kind in hostile if kind not in NOT_REGULAR),
                 timeout=10, message="every hostile regular file with an event's name in err/")
        assert all(helpers.where(agent, name) == "pdq" for name, kind in hostile if kind in NOT_REGULAR)
        assert helpers.daemon_alive(agent) and agent.daemon.pid == pid

        received = standin.bodies()
        assert "followed-a-symlink" not in [body.get("dedup_key") for body in received]
        seqs = [body["payload"]["custom_details"]["seq"] for body in received
                if body["routing_key"] == KEY_A and body["dedup_key"].startswith("valid-")]
        assert seqs == sorted(seqs) and len(seqs) == 2 * len(HOSTILE), "key A in queue order"

        log = agent.log_text()
        remaining = set(agent.names("pdq"))
        for wrong in _wrong_names(base + 3) + [name + ".2" for name in _wrong_names(base + 10_003)]:
            assert wrong in remaining, f"{wrong!r} was moved or deleted"
        assert log.count("not an event file name") == 2 * len(_wrong_names(0)), "one log line each"
        assert log.count("not a regular file") == 2 * len(NOT_REGULAR), "one log line each"
        assert "root:" not in log
        errors = agent.queue("list", "--state", "error")
        assert errors.returncode == 0 and "Traceback" not in errors.stderr
        assert errors.stdout.count("[error:") == len(hostile) - 2 * len(NOT_REGULAR)
        assert "root:" not in errors.stdout
        helpers.report("hostile spool entries", kinds=len(HOSTILE) + len(_wrong_names(0)),
                  planted=len(hostile) + 2 * len(_wrong_names(0)), valid_delivered=len(valid),
                  daemon_crashes=0)
    finally:
        shutil.rmtree(other_dir, ignore_errors=True)


def test_directory_in_pdq_does_not_block_its_key(agent, standin):
    user = helpers.ensure_user(helpers.SECOND_USER)
    directory = event_file_name(1, KEY_A)  # older than anything: at the head of key A
    subprocess.run(helpers.as_user(*user, ["mkdir", agent.path("pdq", directory)]), check=True)
    after = helpers.enqueue(agent, [helpers.alert_body(KEY_A, 1, tag="after-directory")])[0]
    helpers.start_daemon(agent)
    wait_for(lambda: helpers.where(agent, after) == "suc", timeout=6,
             message="the event behind the directory delivered")
    # Passed over, never read or moved: it stays where it is, and the log says why.
    assert helpers.where(agent, directory) == "pdq" and os.path.isdir(agent.path("pdq", directory))
    assert "not a regular file" in agent.log_text()


def test_entry_with_odd_types_does_not_block_its_key(agent, standin):
    odd = event_file_name(int(time.time() * 1e6), KEY_A)
    with open(agent.path("pdq", odd), "w") as planted:
        planted.write(dumps(make_entry("alert", {"routing_key": KEY_A, "event_action": "acknowledge",
                                                 "dedup_key": "x", "payload": {"summary": 5}}, None, "x")))
    after = helpers.enqueue(agent, [helpers.alert_body(KEY_A, 1, tag="after-odd")])[0]
    helpers.start_daemon(agent)
    wait_for(lambda: helpers.where(agent, odd) == "err" and helpers.where(agent, after) == "suc",
             timeout=6, message="the odd entry in err/ and the next event delivered")


def test_deeply_nested_entry_does_not_block_its_key(agent, standin):
    nested = event_file_name(int(time.time() * 1e6), KEY_A)
    with open(agent.path("pdq", nested), "w") as planted:
        planted.write("[" * 100_000)
    after = helpers.enqueue(agent, [helpers.alert_body(KEY_A, 1, tag="after-nested")])[0]
    helpers.start_daemon(agent)
    wait_for(lambda: helpers.where(agent, nested) == "err" and helpers.where(agent, after) == "suc",
             timeout=6, message="the nested file in err/ and the next event delivered")


# -- bad configuration values ------------------------------------------------------------------

BAD_VALUES = [
    ("send_interval_secs", "soon"), ("send_interval_secs", "-5"), ("send_interval_secs", "0"),
    ("send_interval_secs", "1.5"), ("cleanup_interval_secs", "0"), ("cleanup_threshold_secs", "a week"),
    ("backoff_interval_secs", "x"), ("backoff_interval_secs", "0"), ("backoff_max_secs", "0"),
    ("retry_limit_for_possible_errors", "-1"), ("max_events_per_minute_per_key", "lots"),
    ("http_timeout_secs", "0"), ("http_timeout_secs", "ten"), ("http_timeout_secs", "-3"),
    ("events_api_url", "events.pagerduty.com"), ("events_api_url", "ftp://events.pagerduty.com"),
    ("events_api_url", "https://"), ("events_api_url", "https://host:port"),
    ("events_api_url", "https://events pagerduty.com"), ("proxy_url", "proxy:3128"),
    ("proxy_url", "gopher://proxy:70"), ("ca_bundle", "/nonexistent/ca.pem"), ("ca_bundle", "/etc"),
    ("log_level", "LOUD"), ("source_address", "999.1.1.1"), ("source_address", "localhost"),
    ("data_dir", "relative/dir"), ("log_dir", "~/logs"), ("pid_dir", "run"),
    ("verify_tls", "false"), ("insecure", "yes"),
]
NON_FINITE_VALUES = [("http_timeout_secs", "nan"), ("http_timeout_secs", "inf")]


def _run_with_config(agent, text, name):
    """pdagentd -f (as the daemon user) and pd-send with this config file: their results."""
    path = os.path.join(agent.base, "bad.conf")
    with open(path, "wb") as config_file:
        config_file.write(text if isinstance(text, bytes) else text.encode())
    os.chmod(path, 0o644)
    env = agent.env(PDAGENT_CONFIG=path)
    results = []
    for argv in (helpers.as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"]),
                 command("pd-send") + ["-k", KEY_A, "-t", "trigger", "-d", "config test"]):
        try:
            results.append(subprocess.run(argv, env=env, capture_output=True, text=True, timeout=4,
                                          check=False))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{argv[-2:]} started with the bad config ({name})") from None
    return results


def _assert_one_clear_line(results, mentions, sender_reads_it=True):
    """The daemon refuses in one line; pd-send too if the problem is in what it reads (the
    file itself, data_dir, log_dir, pid_dir), else it queues: a daemon-only setting never stops a page."""
    daemon, sender = results
    assert daemon.returncode != 0
    lines = daemon.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pdagentd: ") and mentions in lines[0], daemon.stderr
    if sender_reads_it:
        reasons = [line for line in sender.stderr.splitlines() if line.startswith("pd-send: error: ")]
        assert sender.returncode != 0 and len(reasons) == 1 and mentions in reasons[0], sender.stderr
    else:
        assert sender.returncode == 0 and "Event processed" in sender.stdout, sender.stderr
    assert "Traceback" not in daemon.stderr + sender.stderr


def _config_text(agent, key, value):
    values = dict(agent.settings, **{key: value})
    return "[Main]\n" + "".join(f"{name} = {text}\n" for name, text in values.items())


@pytest.mark.parametrize(("key", "value"), BAD_VALUES + NON_FINITE_VALUES)
def test_bad_config_value(agent, key, value):
    _assert_one_clear_line(_run_with_config(agent, _config_text(agent, key, value), key), key,
                           sender_reads_it=key in ("data_dir", "log_dir", "pid_dir"))


BAD_FILES = [
    pytest.param(b"[Main]\nsend_interval_secs 5\n", "line 2", id="line-without-equals"),
    pytest.param(b"send_interval_secs = 5\n", "line 1", id="key-outside-a-section"),
    pytest.param(b"[Other]\nsend_interval_secs = 5\n", "[Main]", id="no-main-section"),
    pytest.param(b"[Main]\nlog_level = \xff\xfe\n", "UTF-8", id="not-utf8"),
    pytest.param(b"\0\0\0\0", "line 1", id="binary"),
    pytest.param(b"", "[Main]", id="empty"),
]


@pytest.mark.parametrize(("text", "mentions"), BAD_FILES)
def test_bad_config_file(agent, text, mentions):
    _assert_one_clear_line(_run_with_config(agent, text, "file"), mentions)


def test_config_file_missing_or_unreadable(agent):
    for path, mentions in [(os.path.join(agent.base, "none.conf"), "No such file"),
                           (agent.config_path, "Permission denied")]:
        os.chmod(agent.config_path, 0o600 if path == agent.config_path else 0o644)
        env = agent.env(PDAGENT_CONFIG=path)
        daemon = subprocess.run(helpers.as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"]),
                                env=env, capture_output=True, text=True, timeout=10, check=False)
        lines = daemon.stderr.strip().splitlines()
        assert daemon.returncode != 0 and len(lines) == 1 and mentions in lines[0], daemon.stderr
    os.chmod(agent.config_path, 0o644)
