"""Hostile local users against a running daemon and a real spool.

Every attack is made by a second unprivileged user (`pdagent-test-other`,
through setpriv) on a spool laid out as installed, while pdagentd runs as its
own user; in every case delivery of the other keys goes on:

- names in pdq/ that are not the agent's (Unicode digits, absurd stamps,
  control characters, undecodable bytes) never stop the daemon (at start, at a
  rescan, through inotify), pd-queue or the library;
- a file whose body names another routing key than its file name goes to err/
  unsent and never holds up the key in its name;
- the sticky spool: nobody removes, renames or replaces another user's event;
- control characters in keys, dedup keys and summaries never reach the log or
  pd-queue's output raw;
- on every layout the README supports, and on one an older daemon made, what
  pd-send accepts from root, another user or the daemon's user is delivered;
  what the daemon could not read is refused in one line, nothing left behind.
"""

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import helpers
import pytest
from helpers import routing_key, wait_for
from hypothesis import given
from hypothesis import strategies as st

from pdagent.config import load_agent_config
from pdagent.pdagentutil import get_stats

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other local users")

VICTIM = routing_key(4100)
THROTTLED = routing_key(4101)
LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def deliver_one(agent, standin, key, dedup_key, user=None):
    """pd-send an event of `key` and wait until the stand-in has it: delivery goes on."""
    helpers.send(agent, key, dedup_key, user=user)
    wait_for(lambda: dedup_key in helpers.dedup_keys_received(standin), timeout=15,
             message=f"{dedup_key} to be delivered")


def assert_log_has_no_raw_controls(agent):
    with open(os.path.join(agent.log_dir, "pdagentd.log"), "rb") as log_file:
        data = log_file.read()
    for line in data.split(b"\n")[:-1]:
        assert LOG_LINE.match(line), f"a line that does not start a log record: {line!r}"
        assert not re.search(rb"[\x00-\x1f\x7f]", line), line
        assert b"\xc2\x85" not in line and b"\xe2\x80\xae" not in line, line  # NEL, RLO as UTF-8


def assert_printable_output(result):
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    for line in result.stdout.decode("utf-8").splitlines():
        assert line.isprintable(), repr(line)


def not_events(tag):
    """Names any user can create in pdq/ that are not events (bytes where they are not UTF-8)."""
    return [
        f"²_{tag}.txt",                                   # a digit int() refuses
        f"1²_{tag}.txt",
        "1" * 30 + f"_{VICTIM}{tag}.txt",                 # a stamp no clock gives (gmtime overflows)
        f"0001700000000000_{VICTIM}{tag}.txt",            # a leading zero: never the agent's name
        f"1700000000000000_\x1b[31m{tag}.txt",            # an escape sequence in the key
        f"1700000000000000_new\n{tag}.txt",               # a newline in the key
        f"1700000000000000_tab\t{tag}.txt",
        f"1700000000000000_rlo\u202e{tag}.txt",           # a bidi override
        f"1700000000000000_nel\x85{tag}.txt",
        f"1700000000000000_ {tag}.txt",
        f"1700000000000000_{tag}/.txt"[:-6] + ".txt",     # an empty key
        f"٣٣٣٣_{tag}.txt",                                # Arabic-Indic digits
        f"1700000000000000_{tag}.txt.tmp",
        f"-1_{tag}.txt",
        f"+1_{tag}.txt",
        f" 1_{tag}.txt",
        f"1_{tag}",
        b"1700000000000000_bad\xffutf8" + tag.encode() + b".txt",  # a surrogate once decoded
        b"\xff\xfe_" + tag.encode() + b".txt",
    ]


NOT_EVENTS = not_events("a")


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemonised"])
def test_no_name_stops_delivery(agent, standin, daemon_user, foreground):
    user = helpers.ensure_user(helpers.SECOND_USER)
    for name in NOT_EVENTS:  # present at start-up ...
        helpers.plant(agent, name, b"{}")
    agent.start_daemon(foreground=foreground)
    deliver_one(agent, standin, VICTIM, "after-start", user=user)
    for name in not_events("b"):  # ... and arriving while it runs (inotify)
        helpers.plant(agent, name, b"{}")
    deliver_one(agent, standin, VICTIM, "after-inotify", user=user)
    time.sleep(float(agent.settings["send_interval_secs"]) + 0.5)  # a full rescan has run
    deliver_one(agent, standin, routing_key(4102), "after-rescan", user=daemon_user)
    assert agent.daemon_running()

    # Restarted with all of it in pdq/: it starts and delivers.
    agent.stop_daemon()
    agent.start_daemon(foreground=foreground)
    deliver_one(agent, standin, VICTIM, "after-restart", user=user)

    # Each name was skipped with one masked line per daemon run: the key never whole, nothing raw.
    log_text = agent.log_text()
    for run in log_text.split(" started (pid ")[1:]:
        skipped = [line.split(" pdagent.delivery: ")[1] for line in run.splitlines()
                   if "not an event file name" in line]
        assert len(skipped) >= len(NOT_EVENTS), run
    assert VICTIM not in log_text
    assert_log_has_no_raw_controls(agent)

    # pd-queue and the library see the events and nothing else, whatever pdq/ holds.
    for argv in (["status"], ["status", "--json"], ["status", "-k", VICTIM], ["list"],
                 ["list", "--state", "success"], ["list", "--state", "error"], ["retry", "-a"],
                 ["retry", "-k", VICTIM]):
        result = agent.queue(*argv)
        assert_printable_output(subprocess.CompletedProcess(
            argv, result.returncode, result.stdout.encode(), result.stderr.encode()))
    report = json.loads(agent.queue("status", "--json").stdout)
    assert set(report["keys"]) == {VICTIM, routing_key(4102)}
    assert report["keys"][VICTIM]["success"] == 3
    stats = get_stats(load_agent_config(agent.config_path).get_queue())
    assert stats["totals"]["succeeded_events"]["count"] == 4
    assert set(stats["snapshot"]) - {"throttled_service_keys_count"} == {VICTIM, routing_key(4102)}
    for name in NOT_EVENTS:  # skipped, not taken: they stay where their owner put them
        assert os.path.lexists(os.path.join(os.fsencode(agent.path("pdq")), os.fsencode(name)))


@pytest.mark.parametrize("entry_format", ["v2", "v1"])
def test_name_and_body_must_agree(agent, standin, entry_format):
    """An early file named for the victim's key, whose body is for a key throttled forever."""
    standin.set_faults([{"match": {"routing_key": THROTTLED}, "status": 429, "times": -1}])
    agent.start_daemon()
    if entry_format == "v2":
        content = helpers.forged_entry(THROTTLED, "forged")
    else:  # an original-agent entry: its service_key is its routing key
        content = json.dumps({"service_key": THROTTLED, "event_type": "trigger", "incident_key": "forged",
                              "description": "forged", "details": {}, "agent": {"queued_by": "x"}})
    name = f"1000000000000000_{VICTIM}.txt"  # before anything the victim will queue
    helpers.plant(agent, name, content.encode())
    deliver_one(agent, standin, VICTIM, "victim-1")
    deliver_one(agent, standin, VICTIM, "victim-2", user=helpers.ensure_user(helpers.SECOND_USER))

    wait_for(lambda: helpers.where(agent, name) == "err"
             and os.path.exists(os.path.join(agent.data_dir, "db", "errors", name + ".json")),
             message="the forged file to go to err/, its reason recorded")
    with open(os.path.join(agent.data_dir, "db", "errors", name + ".json")) as reason_file:
        reason = json.load(reason_file)
    assert "differs from the one in its file name" in reason["reason"]
    assert not [request for request in standin.requests()
                if isinstance(request.get("body"), dict) and request["body"].get("dedup_key") == "forged"]
    listed = agent.queue("list", "--state", "error").stdout
    assert "differs from the one in its file name" in listed


def test_sticky_spool_keeps_each_users_events(agent, standin):
    """Another user can neither remove, rename nor replace a pending event; the agent still moves it."""
    for directory in ("pdq", "tmp"):
        assert stat.S_IMODE(os.stat(agent.path(directory)).st_mode) == 0o3753, directory
    victim = helpers.ensure_user(helpers.VICTIM_USER)
    standin.set_faults([{"match": {"routing_key": VICTIM}, "status": 503, "times": -1}])
    agent.start_daemon()
    name = helpers.send(agent, VICTIM, "victim-pending", "the victim's event", user=victim)
    wait_for(lambda: helpers.attempts(standin, "victim-pending"), message="a first try (503)")
    pending = agent.path("pdq", name)
    original = Path(pending).read_bytes()

    forged = helpers.plant(agent, f"1000000000000001_{VICTIM}.txt", helpers.forged_entry(VICTIM, "forged").encode())
    attacks = {
        "rm": ["rm", "-f", pending],
        "mv away": ["mv", "-f", pending, agent.path("pdq", "1000000000000002_x.txt")],
        "mv over": ["mv", "-f", forged, pending],
        "ln over": ["ln", "-f", forged, pending],
        "truncate": ["truncate", "-s", "0", pending],
    }
    for attack, argv in attacks.items():
        result = helpers.as_other(agent, *argv)
        assert result.returncode != 0, attack
        assert Path(pending).read_bytes() == original, attack
    # tmp/ too: another user's unfinished entry cannot be removed there.
    victim_tmp = os.path.join(agent.path("tmp"), "victim.tmp")
    subprocess.run(helpers.as_user(*victim, ["touch", victim_tmp]), check=True)
    assert helpers.as_other(agent, "rm", "-f", victim_tmp).returncode != 0
    assert os.path.exists(victim_tmp)

    # The agent works as before: the daemon moves the victim's (and the forger's) files,
    # pd-queue retry brings an err/ event back, pd-send queues.
    standin.set_faults([])
    wait_for(lambda: helpers.where(agent, name) == "suc", timeout=15, message="the victim's event delivered")
    [body] = [event["body"] for event in standin.received() if event["body"]["dedup_key"] == "victim-pending"]
    assert body["payload"]["summary"] == "the victim's event"
    standin.set_faults([{"match": {"dedup_key": "rejected-once"}, "status": 400, "times": 1}])
    rejected = helpers.send(agent, VICTIM, "rejected-once", user=victim)
    wait_for(lambda: helpers.where(agent, rejected) == "err", message="a 400 to reach err/")
    assert agent.queue("retry", "-k", VICTIM).stdout == "1 event(s) set up for retry.\n"
    wait_for(lambda: helpers.where(agent, rejected) == "suc", message="the retried event delivered")


def test_control_characters_never_reach_the_log_or_terminal_raw(agent, standin):
    user = helpers.ensure_user(helpers.SECOND_USER)
    agent.start_daemon()
    evil = "evil\n2026-01-01 00:00:00,000 INFO forged line \x1b[2J\x1b]0;title\x07\u202e\x85"
    helpers.send(agent, VICTIM, evil, f"summary {evil}", "-f", f"note={evil}", user=user)
    wait_for(lambda: evil in helpers.dedup_keys_received(standin), message="the event delivered as sent")
    standin.set_faults([{"match": {"dedup_key": f"{evil}-rejected"}, "status": 400, "times": -1}])
    helpers.send(agent, VICTIM, f"{evil}-rejected", f"summary {evil}", user=user)
    wait_for(lambda: agent.queue("status", "--json").stdout.count('"error": 1') == 1,
             message="the rejected event in err/")
    assert_log_has_no_raw_controls(agent)
    assert "\\x1b[2J" in agent.log_text()  # shown, escaped
    for state in ("success", "error"):
        result = subprocess.run(helpers.command("pd-queue") + ["list", "--state", state], env=agent.env(),
                                capture_output=True, timeout=30, check=False)
        assert_printable_output(result)
        assert b"\\x1b[2J" in result.stdout

    # A routing key is part of a file name: pd-send refuses control characters in it.
    for bad_key in ("key\x1b[31m", "key\x85", "key\u202e"):
        result = agent.send("-k", bad_key, "-t", "trigger", "-d", "x", user=user)
        assert result.returncode == 2 and "routing key" in result.stderr.splitlines()[0], result.stderr
    assert not [name for name in agent.names("pdq") if "key" in name]


@given(st.text())
def test_escaped_text_is_printable_and_printable_text_is_kept(text):
    from pdagent.escape import escape_controls
    escaped = escape_controls(text)
    assert escaped.isprintable()
    if text.isprintable():
        assert escaped == text
    # Nothing is lost: the escapes read back as the original (backslashes aside).
    if "\\" not in text:
        assert escaped.encode("ascii", "backslashreplace").decode("unicode_escape") == text


# -- every event pd-send accepts can be read by the daemon, whatever the layout -----------------

def spool_layout(kind, base, daemon_user):
    """(data, log, pid) directories as each supported way of installing leaves them, or None for
    the harness's (the package's, and `make try`'s: scripts/demo.py runs the same harness)."""
    if kind == "package":
        return None
    if kind == "pip + pdagent.layout":
        root = os.path.join(base, "root")
        helpers.make_system_root(root)
        import pwd
        result = helpers.lay_out(root, pwd.getpwuid(daemon_user[0]).pw_name)
        assert result.returncode == 0, result.stderr
        return [os.path.join(root, path) for path in ("var/lib/pdagent", "var/log/pdagent", "var/run/pdagent")]
    home = os.path.join(base, "home")  # the daemon's account's, where it makes what is missing
    os.mkdir(home)
    os.chown(home, *daemon_user)
    dirs = [os.path.join(home, name) for name in ("data", "log", "run")]
    if kind == "made by an older daemon":  # its umask's modes, no set-group-ID group
        script = "umask 022 && mkdir -p " + " ".join(
            [os.path.join(dirs[0], "outqueue", sub) for sub in helpers.STATES] + dirs[1:])
        subprocess.run(helpers.as_user(*daemon_user, ["sh", "-c", script]), check=True)
    return dirs


@pytest.mark.parametrize("kind", ["package", "pip + pdagent.layout", "made by the daemon",
                                  "made by an older daemon"])
def test_every_event_pd_send_accepts_is_delivered(agent_home, daemon_user, standin, kind):
    """pd-send as root and as another user: the daemon delivers what it accepted, or it refuses
    in one line saying how to fix the spool, and leaves nothing in pdq/ or tmp/."""
    from helpers import Agent
    agent = Agent(agent_home, daemon_user, standin.url, dirs=spool_layout(kind, agent_home, daemon_user))
    refusals = []
    try:
        helpers.start_daemon(agent)
        for number, user in enumerate([None, helpers.ensure_user(helpers.SECOND_USER), daemon_user]):
            dedup_key = f"{kind}-{number}"
            result = agent.send("-k", VICTIM, "-t", "trigger", "-i", dedup_key, "-d", "disk full", user=user)
            if result.returncode == 0:
                wait_for(lambda key=dedup_key: key in helpers.dedup_keys_received(standin), timeout=15,
                         message=f"{dedup_key}, accepted by pd-send, to be delivered")
            else:
                refusals.append(number)
                assert result.returncode == 2 and result.stdout == "", result.stdout
                line = result.stderr.splitlines()[0]
                assert line.startswith("pd-send: error: ") and "python3 -I -m pdagent.layout" in line, line
                assert os.listdir(agent.path("pdq")) == [] and os.listdir(agent.path("tmp")) == []
        assert os.listdir(agent.path("err")) == []
    finally:
        helpers.stop_daemon(agent)
    # The daemon's account can always queue; where the spool lets other users queue, their
    # events are the daemon's group's, so it reads them all.
    assert refusals == ([0, 1] if kind == "made by an older daemon" else [])
    if kind == "made by the daemon":
        for sub, mode in (("tmp", 0o3753), ("pdq", 0o3753), ("suc", 0o2750), ("err", 0o2750)):
            info = os.stat(agent.path(sub))
            assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, *daemon_user), sub
