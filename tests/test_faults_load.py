"""Load: 50 pd-send processes at once while the daemon drains and `pd-queue retry -a` runs over and over.

Some events are refused (400) once, so err/ has something for the operator's
retries to move back. Nothing may be lost, and no event may be sent twice
except the refused ones, once more, because the operator asked (retry).
"""

import collections
import concurrent.futures
import threading
import time

import helpers
import pytest
from helpers import routing_key, wait_for

KEYS = [routing_key(900 + number) for number in range(10)]
WORKERS = 50


def _load(agent, standin, per_worker):
    user = helpers.ensure_user(helpers.SECOND_USER)
    agent.configure(max_events_per_minute_per_key=0)
    refused = {f"load-{worker}-{number}" for worker in range(WORKERS) for number in range(per_worker)
               if (worker * per_worker + number) % 9 == 4}
    standin.set_faults([{"match": {"dedup_key": dedup_key}, "status": 400, "times": 1}
                        for dedup_key in sorted(refused)])
    pid = helpers.start_daemon(agent)

    def worker(number):
        results = []
        for sequence in range(per_worker):
            dedup_key = f"load-{number}-{sequence}"
            result = agent.send("-k", KEYS[number % len(KEYS)], "-t", "trigger", "-i", dedup_key,
                                "-d", f"load {number}/{sequence}", user=user)
            results.append((dedup_key, result.returncode, result.stderr))
        return results

    retries = {"runs": 0, "moved": 0}
    senders_done = threading.Event()

    def operator():
        while not senders_done.is_set():
            result = agent.queue("retry", "-a")
            assert result.returncode == 0, result.stderr
            retries["runs"] += 1
            retries["moved"] += int(result.stdout.split()[0])
            time.sleep(0.05)

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(WORKERS + 1) as pool:
        retrying = pool.submit(operator)
        outcomes = [item for items in pool.map(worker, range(WORKERS)) for item in items]
        senders_done.set()
        retrying.result()
    failures = [(dedup_key, code, stderr) for dedup_key, code, stderr in outcomes if code != 0]
    assert not failures, failures[:3]
    total = len(outcomes)

    # Every refusal has happened once; the operator retries what is left in err/.
    wait_for(lambda: sum(1 for request in standin.requests() if request["status"] == 400) == len(refused)
             and not agent.names("pdq"), timeout=60, message="every refusal answered and pdq/ drained")
    while agent.names("err"):
        retries["moved"] += int(agent.queue("retry", "-a").stdout.split()[0])
        retries["runs"] += 1
        wait_for(lambda: not agent.names("pdq"), timeout=30, message="the retried events drained")
    wait_for(lambda: len(agent.names("suc")) == total, timeout=30, message="every event in suc/")
    assert helpers.daemon_alive(agent) and agent.daemon.pid == pid

    posts = collections.Counter()
    accepted = collections.Counter()
    for request in standin.requests():
        body = request["body"]
        posts[body["dedup_key"]] += 1
        accepted[body["dedup_key"]] += request["status"] == 202
        assert request["status"] in (202, 400), request["status"]
    sent = {dedup_key for dedup_key, _, _ in outcomes}
    assert set(accepted) == sent and all(count == 1 for count in accepted.values()), "lost or doubled"
    for dedup_key in sent:
        assert posts[dedup_key] == (2 if dedup_key in refused else 1), (dedup_key, posts[dedup_key])
    assert retries["moved"] == len(refused)

    # Per key, each writer's events arrive in the order it queued them, the operator's retries
    # aside (writers running at once queue in whichever order their files came into pdq/).
    for key in KEYS:
        arrived = collections.defaultdict(list)
        for body in standin.bodies(key):
            if body["dedup_key"] not in refused:
                _, worker, sequence = body["dedup_key"].split("-")
                arrived[worker].append(int(sequence))
        assert all(sequences == sorted(sequences) for sequences in arrived.values()), f"key {key} out of order"
    helpers.report("load", pd_send_processes=WORKERS, events=total, refused_then_retried=len(refused),
              retry_runs=retries["runs"], lost=0, sent_twice_unasked=0,
              seconds=round(time.time() - started, 1))


def test_parallel_pd_send_drain_and_retry(agent, standin):
    _load(agent, standin, per_worker=3)


@pytest.mark.slow
def test_parallel_pd_send_drain_and_retry_long(agent, standin):
    _load(agent, standin, per_worker=12)


def test_pd_send_usable_by_any_user_under_load(agent, standin):
    """The same, done by two unprivileged users at once: both get through (the spool is shared)."""
    users = [helpers.ensure_user(helpers.SECOND_USER), (agent.uid, agent.gid)]
    helpers.start_daemon(agent)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda number: agent.run(
            "pd-send", "-k", KEYS[number % 2], "-t", "trigger", "-i", f"user-{number}",
            "-d", "x", user=users[number % 2]), range(20)))
    assert all(result.returncode == 0 for result in results), [r.stderr for r in results][:2]
    wait_for(lambda: len(agent.names("suc")) == 20, timeout=20, message="both users' events delivered")
    assert sorted(helpers.dedup_keys_received(standin)) == sorted(f"user-{n}" for n in range(20))
