"""Hostile local users against the queue itself: order, ages, pacing, moves, memory, fairness.

Every attack is made by a second unprivileged user (`pdagent-test-other`) on a
spool laid out as installed, while pdagentd runs as its own user. What another
user can choose (a name's stamp, what sits under a name, how many keys they
queue for) never:
- reorders a key's events, or makes a waiting event look young to the health check;
- takes a key's pacing slots, backs it off, or makes the daemon write without bound;
- hides an event whose name it learnt, or gets anything but a regular file moved;
- delays another account's page by more than about one POST per busy account.
"""

import json
import os
import time
from pathlib import Path

import helpers
import pytest
from helpers import routing_key, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other local users")

VICTIM = routing_key(4200)


def victim_user():
    return helpers.ensure_user(helpers.VICTIM_USER)


def dedup_keys(standin, routing_key=None):
    return [event["body"].get("dedup_key") for event in standin.received()
            if routing_key is None or event["body"].get("routing_key") == routing_key]


def send_as_victim(agent, dedup_key, action="trigger"):
    result = agent.send("-k", VICTIM, "-t", action, "-i", dedup_key, "-d", f"victim {dedup_key}",
                        user=victim_user())
    assert result.returncode == 0, result.stderr


def check(agent, *args):
    result = agent.queue("check", *args)
    return result.returncode, result.stdout


def test_no_name_another_user_chooses_reorders_a_key_or_hides_its_age(agent, standin):
    """A far-future name, an early-stamped event for the victim's key, and create/remove
    storms in pdq/: the victim's trigger still goes before its resolve, and the health check
    still sees how long the trigger has waited, also after a restart."""
    standin.set_faults([{"match": {"routing_key": VICTIM}, "status": 503, "times": -1}])
    agent.start_daemon()
    helpers.plant(agent, "99999999999999999_anything.txt", b"")
    helpers.plant(agent, f"99999999999999999_{routing_key(4201)}.txt", helpers.forged_entry(routing_key(4201), "far").encode())
    time.sleep(0.5)  # the daemon has seen them
    send_as_victim(agent, "incident")
    wait_for(lambda: helpers.attempts(standin, "incident"), message="the trigger tried (503)")
    for number in range(3):  # any user's create-and-remove in pdq/ sets its mtime to now
        staged = helpers.plant(agent, f"{number + 1}_storm.txt")
        assert helpers.as_other(agent, "rm", "-f", staged).returncode == 0
    early = f"1000000000000000_{VICTIM}.txt"  # a name claiming 2001, planted after the trigger
    helpers.plant(agent, early, helpers.forged_entry(VICTIM, "planted-early").encode())
    send_as_victim(agent, "incident", action="resolve")
    code, line = check(agent, "--error-warning", "0")  # files of the storm may have gone to err/
    assert code == 0 and "3 pending" in line, line  # no false alarm from a name claiming 2001

    time.sleep(3)
    code, line = check(agent, "--warning-age", "1", "--critical-age", "2")
    assert code == 2 and "critical over 2 s" in line, line
    report = json.loads(agent.queue("status", "--json").stdout)
    assert report["keys"][VICTIM]["oldest_pending_age_secs"] >= 2.5

    agent.stop_daemon()
    agent.start_daemon()
    standin.set_faults([])
    wait_for(lambda: len(dedup_keys(standin, VICTIM)) == 3, timeout=15, message="all three delivered")
    received = [(event["body"]["dedup_key"], event["body"]["event_action"]) for event in standin.received()
                if event["body"].get("routing_key") == VICTIM]
    assert received == [("incident", "trigger"), ("planted-early", "trigger"), ("incident", "resolve")]


@pytest.mark.parametrize("kind", ["directory", "fifo", "bad JSON"])
def test_entries_that_are_never_sent_take_no_pacing_slot(agent, standin, kind):
    """Three things under the victim key's earliest names, then the victim's page: it goes
    at once, not a pacing minute later."""
    agent.configure(max_events_per_minute_per_key=2)
    agent.start_daemon()
    for number in range(3):
        name = f"{1000000000000000 + number}_{VICTIM}.txt"
        if kind == "bad JSON":
            helpers.plant(agent, name, b"{not json")
        else:
            maker = "mkdir" if kind == "directory" else "mkfifo"
            assert helpers.as_other(agent, "sh", "-c", f'umask 022; {maker} "$1"', "sh",
                               agent.path("pdq", name)).returncode == 0
    time.sleep(0.5)
    send_as_victim(agent, "paced-not")
    wait_for(lambda: "paced-not" in dedup_keys(standin), timeout=8, message="the page, not a minute later")
    send_as_victim(agent, "second")
    wait_for(lambda: "second" in dedup_keys(standin), timeout=8, message="the second page in the same minute")


def test_an_entry_swapped_while_it_is_sent_never_backs_its_key_off(agent, standin):
    """Another user's event for the victim's key is replaced by a directory while its POST
    runs: the directory is left where it is, and the victim's key goes straight on."""
    agent.configure(backoff_interval_secs=60, backoff_max_secs=600)
    standin.set_faults([{"match": {"dedup_key": "swapped"}, "delay": 2, "times": -1}])
    agent.start_daemon()
    name = f"{int(time.time() * 1e6)}_{VICTIM}.txt"
    path = helpers.plant(agent, name, helpers.forged_entry(VICTIM, "swapped").encode())
    wait_for(lambda: helpers.attempts(standin, "swapped"), message="the POST under way")
    result = helpers.as_other(agent, "sh", "-c", 'rm -f "$1" && mkdir -m 755 "$1"', "sh", path)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: "swapped" in dedup_keys(standin), message="its answer")
    send_as_victim(agent, "after-swap")
    wait_for(lambda: "after-swap" in dedup_keys(standin), timeout=8, message="the victim's page, no back-off")
    assert os.path.isdir(path)
    assert helpers.where(agent, name) == "pdq"  # neither moved nor recorded
    assert not os.path.lexists(os.path.join(agent.data_dir, "db", "errors", name + ".json"))
    state = json.loads(agent.queue("status", "--json").stdout)
    assert not state["keys"][VICTIM]["backed_off"]


def test_a_directory_renamed_through_many_names_writes_nothing(agent, standin):
    """Neither a plain nor a world-writable directory under event names is recorded in
    db/errors or moved into err/, however many names it takes; root's discard still works."""
    agent.start_daemon()
    script = ('cd "$1" && umask 0 && mkdir -m "$2" walker && i=1 && while [ $i -le 400 ]; do '
              'mv walker "$((1000000000000000 + i))_$3.txt" && mv "$((1000000000000000 + i))_$3.txt" walker; '
              'i=$((i + 1)); done && mv walker "1000000000000000_$3.txt"')
    for mode, key in (("755", VICTIM), ("777", routing_key(4202))):
        result = helpers.as_other(agent, "sh", "-c", script, "sh", agent.path("pdq"), mode, key)
        assert result.returncode == 0, result.stderr
    send_as_victim(agent, "after-walk")
    wait_for(lambda: "after-walk" in dedup_keys(standin), message="delivery going on")
    time.sleep(float(agent.settings["send_interval_secs"]) + 0.5)  # a rescan too
    errors_dir = os.path.join(agent.data_dir, "db", "errors")
    assert not os.path.isdir(errors_dir) or os.listdir(errors_dir) == []
    assert agent.names("err") == []
    assert os.path.isdir(agent.path("pdq", f"1000000000000000_{routing_key(4202)}.txt"))
    result = agent.queue("discard", "-a")
    assert result.returncode == 0, result.stderr


def test_a_name_learnt_after_its_event_left_cannot_hide_it(agent, standin):
    """The victim's rejected event is in err/; another user puts a directory under its name
    in pdq/. The recorded reason stays, and `pd-queue retry` sends the event again."""
    standin.set_faults([{"match": {"dedup_key": "rejected"}, "status": 400, "times": 1}])
    agent.start_daemon()
    send_as_victim(agent, "rejected")
    [name] = [name for name in agent.names("pdq") + agent.names("err") if VICTIM in name]
    reason_path = os.path.join(agent.data_dir, "db", "errors", name + ".json")
    wait_for(lambda: helpers.where(agent, name) == "err" and os.path.exists(reason_path),
             message="the 400 in err/, its reason recorded")
    with open(reason_path) as reason_file:
        reason = reason_file.read()
    original = Path(agent.path("err", name)).read_bytes()
    assert helpers.as_other(agent, "mkdir", agent.path("pdq", name)).returncode == 0
    time.sleep(float(agent.settings["send_interval_secs"]) + 0.5)  # seen by inotify and a rescan
    assert helpers.as_other(agent, "rmdir", agent.path("pdq", name)).returncode == 0
    helpers.plant(agent, name, b"{not json")  # a regular file now, a bad entry
    wait_for(lambda: "an event of that name is there already" in agent.log_text(), message="the squatter seen")
    with open(reason_path) as reason_file:
        assert reason_file.read() == reason
    assert Path(agent.path("err", name)).read_bytes() == original  # the victim's event, not the squatter
    assert helpers.as_other(agent, "rm", agent.path("pdq", name)).returncode == 0
    assert agent.queue("retry", "-k", VICTIM).stdout == "1 event(s) set up for retry.\n"
    wait_for(lambda: helpers.where(agent, name) == "suc", message="the retried event delivered")


def test_one_accounts_many_keys_delay_another_accounts_page_by_about_one_post(agent, standin):
    """300 keys queued by one account, each POST taking 100 ms: another account's page is
    sent after at most a couple of the flood's POSTs, not after all 300."""
    standin.set_faults([{"match": {}, "delay": 0.1, "times": -1}])
    staging = Path(agent.base) / "flood"  # where the other user can read (pytest's tmp_path is root's)
    staging.mkdir(mode=0o755)
    for number in range(300):
        key = routing_key(5000 + number)
        (staging / f"{1000000000000000 + number}_{key}.txt").write_text(helpers.forged_entry(key, f"flood-{number}"))
    agent.start_daemon()
    result = helpers.as_other(agent, "sh", "-c",
                         'for f in "$1"/*; do n=$(basename "$f"); cp "$f" "$2/tmp/$n" && mv "$2/tmp/$n" "$2/pdq/$n"; '
                         'done', "sh", str(staging), agent.outqueue)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(standin.received()) >= 10, message="the flood under way")
    before = len(standin.received())
    send_as_victim(agent, "page")
    wait_for(lambda: "page" in dedup_keys(standin), timeout=15, message="the page")
    position = dedup_keys(standin).index("page")
    assert position - before <= 3, f"{position - before} of the flood's POSTs went first"
    assert len(standin.received()) < 300  # the flood was still going when the page went
