"""Crashes: kill -9 of the daemon mid-drain, and of pd-send mid-write.

The guarantee under test: once pd-send said `Event processed`, the event is
delivered at least once, first arrivals per routing key in queue order, and a
crash costs at most one repeat per key it had in flight (the same body, so the
same dedup key, which PagerDuty deduplicates). pd-send killed anywhere leaves
either a whole event in pdq/ or nothing there (a tmp/ leftover at most, which
the daemon's cleanup removes once it is an hour old).
"""

import bisect
import collections
import json
import os
import random
import statistics
import subprocess
import time

import helpers
import pytest
from helpers import as_user, command, routing_key, wait_for

KEYS = [routing_key(500 + number) for number in range(5)]
SENDERS = 4  # the daemon's sender threads: at most this many events in flight


def _kill_daemon_repeatedly(agent, kills, rng, events):
    """Start the daemon and kill -9 it `kills` times at random moments; returns the kill times."""
    kill_times = []
    during_start_up = 0
    for number in range(kills):
        delivered = len(agent.names("suc"))
        pid = helpers.launch_daemon(agent)
        if rng.random() < 0.2:
            # Anywhere in its first moments: before, during or just after the pid file and start-up.
            time.sleep(rng.uniform(0.0, 0.25))
            during_start_up += f"started (pid {pid})" not in agent.log_text()
        else:
            helpers.wait_started(agent, pid)
            # A random point of the drain, spread so that every kill lands mid-drain.
            left = events - delivered
            target = delivered + rng.randint(0, max(1, 2 * left // (kills - number + 2)))
            deadline = time.time() + 10
            while len(agent.names("suc")) < target and time.time() < deadline:
                time.sleep(0.003)
            time.sleep(rng.uniform(0.0, 0.01))
        kill_times.append(time.time())
        helpers.kill_daemon(agent)
    return kill_times, during_start_up


def _check_arrivals(bodies, records, kill_times):
    """The at-least-once, order and duplicate guarantees; returns the figures."""
    sent = {body["dedup_key"]: body for body in bodies}
    seq_of = {body["dedup_key"]: number for number, body in enumerate(bodies)}
    arrivals = collections.defaultdict(list)
    first_order = collections.defaultdict(list)
    per_kill_and_key = collections.Counter()
    unexplained = []
    for record in records:
        body = record["body"]
        dedup_key = body["dedup_key"]
        assert dedup_key in sent, f"the stand-in got an event nobody sent: {dedup_key}"
        assert body == sent[dedup_key], f"{dedup_key} arrived changed"
        if not arrivals[dedup_key]:
            first_order[body["routing_key"]].append(seq_of[dedup_key])
        else:
            # A repeat: it must follow a kill, and each kill may cause one per key.
            kill = bisect.bisect_right(kill_times, record["received_at"]) - 1
            if kill < 0:
                unexplained.append(dedup_key)
            else:
                per_kill_and_key[(kill, body["routing_key"])] += 1
        arrivals[dedup_key].append(record["received_at"])

    lost = sorted(set(sent) - set(arrivals), key=seq_of.get)
    assert not lost, f"{len(lost)} event(s) never arrived, first {lost[:5]}"
    for key, order in first_order.items():
        assert order == sorted(order), f"first arrivals of {key} out of queue order"
    assert not unexplained, f"repeats with no kill before them: {unexplained[:5]}"
    worst = max(per_kill_and_key.values(), default=0)
    assert worst <= 1, f"a kill caused {worst} repeats of one key: {per_kill_and_key.most_common(3)}"
    duplicates = sum(len(times) - 1 for times in arrivals.values())
    per_kill = collections.Counter(kill for kill, _ in per_kill_and_key.elements())
    assert max(per_kill.values(), default=0) <= min(SENDERS, len(KEYS))
    return {"duplicates": duplicates, "lost": len(lost),
            "max_repeats_per_kill": max(per_kill.values(), default=0),
            "max_repeats_per_kill_and_key": worst,
            "kills_that_caused_a_repeat": len(per_kill)}


def _daemon_crash_drain(agent, standin, events, kills, seed):
    rng = random.Random(seed)
    agent.configure(max_events_per_minute_per_key=0)  # drain at full speed: kills land mid-drain
    bodies = [helpers.alert_body(KEYS[number % len(KEYS)], number, tag=f"crash{seed}")
              for number in range(events)]
    names = helpers.enqueue(agent, bodies)
    started = time.time()

    # The first start is a real daemonisation (pid file written by python-daemon); the
    # rest run in the foreground under our control. None cleans anything up.
    agent.start_daemon(foreground=False)
    time.sleep(rng.uniform(0.05, 0.2))
    agent.kill_daemon()
    assert os.path.exists(os.path.join(agent.pid_dir, "pdagentd.pid")), "a crash leaves the pid file"
    kill_times = [time.time()]
    more_times, during_start_up = _kill_daemon_repeatedly(agent, kills - 1, rng, events)
    kill_times += more_times

    helpers.start_daemon(agent)  # the last start, over a stale pid file
    wait_for(lambda: len(agent.names("suc")) == events, timeout=120, message="the drain to finish")
    helpers.stop_daemon(agent)
    assert agent.names("pdq") == [] and agent.names("err") == []
    assert agent.names("suc") == sorted(names)

    figures = _check_arrivals(bodies, helpers.recorded(standin), kill_times)
    figures.update(events=events, kills=kills, kills_during_start_up=during_start_up,
                   seconds=round(time.time() - started, 1), seed=seed)
    helpers.report("daemon kill -9 mid-drain", **figures)


def test_daemon_killed_mid_drain(agent, standin):
    _daemon_crash_drain(agent, standin, events=400, kills=10, seed=int(time.time()))


@pytest.mark.slow
def test_daemon_killed_mid_drain_50_times(agent, standin):
    _daemon_crash_drain(agent, standin, events=2000, kills=50, seed=int(time.time()))


# -- pd-send killed while it writes ------------------------------------------------------------

def _pd_send_argv(key, number, event_file=None):
    if event_file:
        return command("pd-send") + ["--event-file", event_file, "-q"]
    return command("pd-send") + ["-k", key, "-t", "trigger", "-d", f"killed send {number}",
                                 "-i", f"pdsend-{number}", "-f", f"seq={number}"]


def _pd_send_kills(agent, standin, kills, seed):
    rng = random.Random(seed)
    user = helpers.ensure_user(helpers.SECOND_USER)  # any local user may queue: not root, not the daemon
    key = KEYS[0]
    big_event = os.path.join(agent.base, "big-event.json")
    with open(big_event, "w") as event_file:  # ~300 KB: a longer write and fsync to land in
        body = helpers.alert_body(key, 0, tag="big", dedup_key="pdsend-big")
        body["payload"]["custom_details"] = {"blob": "x" * 300_000}
        json.dump(body, event_file)
    os.chmod(big_event, 0o644)

    durations = []
    for number in range(3):
        began = time.perf_counter()
        subprocess.run(as_user(*user, _pd_send_argv(key, f"calibrate{number}")), env=agent.env(),
                       check=True, capture_output=True)
        durations.append(time.perf_counter() - began)
    full_run = statistics.median(durations)

    checked = set(agent.names("pdq"))
    for name in checked:
        helpers.check_entry_file(agent.path("pdq", name))
    outcomes = collections.Counter()
    for number in range(kills):
        argv = _pd_send_argv(key, number, big_event if rng.random() < 0.25 else None)
        process = subprocess.Popen(as_user(*user, argv), env=agent.env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Most of pd-send's life is interpreter start-up; aim at its end, where it writes.
        time.sleep(rng.uniform(0.5, 1.15) * full_run)
        process.kill()
        code = process.wait()
        outcomes["killed" if code == -9 else f"exit {code}"] += 1
        for name in set(agent.names("pdq")) - checked:  # never a partial or unparsable file
            helpers.check_entry_file(agent.path("pdq", name))
            checked.add(name)
    assert set(outcomes) <= {"killed", "exit 0"}, outcomes
    leftovers = agent.names("tmp")
    queued = len(checked)
    return outcomes, leftovers, queued


def _pd_send_crash(agent, standin, kills, seed):
    outcomes, leftovers, queued = _pd_send_kills(agent, standin, kills, seed)
    # Whatever made it to pdq/ is delivered; tmp/ leftovers are never sent nor in the way.
    # A leftover an hour old goes at the daemon's next cleanup; a fresh one (a pd-send
    # still writing) is left alone. Their age is faked with utime (tmp/ ages by mtime).
    fresh = os.path.join(agent.path("tmp"), f"{int(time.time() * 1e6)}_1_00000000.tmp")
    with open(fresh, "wb") as writing:
        writing.write(b'{"endpoint": "alert", "ev')
    an_hour_ago = time.time() - 3700
    for name in leftovers:
        os.utime(agent.path("tmp", name), (an_hour_ago, an_hour_ago))
    agent.configure(cleanup_interval_secs=1, max_events_per_minute_per_key=0)
    helpers.start_daemon(agent)
    wait_for(lambda: len(agent.names("suc")) == queued and agent.names("pdq") == [],
             timeout=30, message="every queued event delivered")
    wait_for(lambda: agent.names("tmp") == [os.path.basename(fresh)], timeout=10,
             message="the daemon's cleanup to remove the hour-old tmp/ leftovers")
    time.sleep(1.5)  # another cleanup round: the fresh file stays
    assert os.path.exists(fresh)
    helpers.stop_daemon(agent)
    received = collections.Counter(event["body"]["dedup_key"] for event in standin.received())
    queued_keys = collections.Counter(agent.read("suc", name)["event"]["dedup_key"]
                                      for name in agent.names("suc"))
    assert received == queued_keys  # each exactly once (the big event is queued more than once)
    helpers.report("pd-send kill -9 while writing", kills=kills, seed=seed, outcomes=dict(outcomes),
              events_in_pdq=queued, tmp_leftovers=len(leftovers), partial_files_in_pdq=0,
              delivered=sum(received.values()), lost=0)


def test_pd_send_killed_while_writing(agent, standin):
    _pd_send_crash(agent, standin, kills=40, seed=int(time.time()))


@pytest.mark.slow
def test_pd_send_killed_while_writing_200_times(agent, standin):
    _pd_send_crash(agent, standin, kills=200, seed=int(time.time()))
