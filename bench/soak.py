"""Soak: events through a stand-in that misbehaves at random, for as long as you like.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 10] [--keys 10]
        [--kill-every 60] [--pd-send-share 0.1] [--seed N] [--keep]

For the chosen time, events are queued at `--rate` per second over `--keys`
routing keys (most in-process through the same code pd-send runs, a share by
real pd-send processes) while the real pdagentd delivers them to the Events
API stand-in (scripts/events_api_standin.py). Every few seconds the stand-in's
fault rules are replaced by a random set: 500/502/503/408 (some with
Retry-After), 429 (with and without Retry-After), answers slower than the
agent's timeout, connections reset mid-answer or closed without one, for one
key or for all, for a few requests each. With `--kill-every S` the daemon is
also killed with SIGKILL about every S seconds and started again at once (no
cleanup). Then the faults stop, the queue drains, and it prints:

    sent        events queued (pd-send said `Event processed`)
    delivered   distinct events the stand-in accepted
    lost        sent, but neither delivered nor in err/ nor still pending
    duplicated  extra acceptances of an already delivered event (same body)
    plus rejected (in err/), pending, first arrivals out of per-key order, kills, faults.

No 4xx rejections are injected (they would go to err/ by design, not be lost).
Needs root to run the daemon as the unprivileged `pdagent-test` user, as the
tests do; as another user it runs as you. Exit status 1 if anything was lost
or arrived out of order.
"""

import argparse
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import helpers  # after the path set-up
from harness import Agent, StandIn, routing_key

FAULT_KINDS = ["500", "502-retry-after", "503-retry-after", "408", "429", "429-retry-after",
               "slow", "reset", "close", "all-keys-503"]


def random_faults(rng, keys, timeout):
    """A random set of fault rules, and the kinds it holds."""
    rules, kinds = [], []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        kind = rng.choice(FAULT_KINDS)
        times = rng.randint(1, 6)
        match = {"routing_key": rng.choice(keys)}
        rule = {
            "500": {"status": 500},
            "502-retry-after": {"status": 502, "retry_after": str(rng.randint(1, 3))},
            "503-retry-after": {"status": 503, "retry_after": str(rng.randint(1, 3))},
            "408": {"status": 408},
            "429": {"status": 429},
            "429-retry-after": {"status": 429, "retry_after": str(rng.randint(1, 3))},
            "slow": {"delay": timeout + rng.uniform(0.2, 1.5)},
            "reset": {"action": "reset"},
            "close": {"action": "close"},
            "all-keys-503": {"status": 503},
        }[kind]
        if kind == "all-keys-503":
            match, times = {}, rng.randint(5, 30)
        rules.append(dict(rule, match=match, times=times))
        kinds.append(kind)
    return rules, kinds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to send (default 10)")
    parser.add_argument("--rate", type=float, default=10.0, help="events queued per second (default 10)")
    parser.add_argument("--keys", type=int, default=10, help="routing keys (default 10)")
    parser.add_argument("--kill-every", type=float, default=0.0, metavar="SECS",
                        help="kill -9 and restart the daemon about this often (default 0: never)")
    parser.add_argument("--pd-send-share", type=float, default=0.1,
                        help="share of events queued by real pd-send processes (default 0.1)")
    parser.add_argument("--timeout", type=float, default=2.0, help="the agent's http_timeout_secs")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the time)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)

    work = tempfile.mkdtemp(prefix="pdagent-soak-")
    os.chmod(work, 0o755)
    standin_dir = os.path.join(work, "standin")
    os.makedirs(standin_dir)
    standin = StandIn(standin_dir)
    agent = Agent(os.path.join(work, "agent"), helpers.daemon_user_ids(), standin.url,
                  backoff_interval_secs=1, backoff_max_secs=8, http_timeout_secs=args.timeout,
                  send_interval_secs=5)
    keys = [routing_key(7000 + number) for number in range(args.keys)]
    print(f"soak: {args.minutes:g} min, {args.rate:g} events/s over {args.keys} keys, "
          f"kill every {args.kill_every:g} s, seed {seed}, in {work}", flush=True)

    sent = {}  # dedup key -> (routing key, sequence of that key)
    per_key = collections.Counter()
    fault_counts = collections.Counter()
    figures = {"kills": 0, "fault_sets": 0, "pd_send_failures": 0}
    stop = threading.Event()

    def produce():
        number = 0
        next_at = time.time()
        while not stop.is_set():
            key = keys[number % len(keys)]
            dedup_key = f"soak-{seed}-{number}"
            if rng.random() < args.pd_send_share:
                result = agent.send("-k", key, "-t", "trigger", "-i", dedup_key, "-d", f"soak {number}",
                                    "-f", f"seq={number}", "-q")
                ok = result.returncode == 0
            else:
                helpers.enqueue(agent, [helpers.alert_body(key, number, tag="soak", dedup_key=dedup_key)])
                ok = True
            if ok:
                sent[dedup_key] = (key, per_key[key])
                per_key[key] += 1
            else:
                figures["pd_send_failures"] += 1
            number += 1
            next_at += 1.0 / args.rate
            stop.wait(max(0.0, next_at - time.time()))

    helpers.start_daemon(agent)
    producer = threading.Thread(target=produce, name="producer", daemon=True)
    started = time.time()
    producer.start()
    end = started + args.minutes * 60
    next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every if args.kill_every else float("inf")
    next_report = started + 60
    try:
        while time.time() < end:
            rules, kinds = random_faults(rng, keys, args.timeout)
            standin.set_faults(rules)
            fault_counts.update(kinds)
            figures["fault_sets"] += 1
            pause_until = min(end, time.time() + rng.uniform(2.0, 8.0))
            while time.time() < pause_until:
                if time.time() >= next_kill:
                    helpers.kill_daemon(agent)
                    figures["kills"] += 1
                    helpers.start_daemon(agent)
                    next_kill = time.time() + rng.uniform(0.5, 1.5) * args.kill_every
                if time.time() >= next_report:
                    print(f"  {int(time.time() - started)} s: {len(sent)} sent, "
                          f"{len(agent.names('pdq'))} pending, {figures['kills']} kills", flush=True)
                    next_report += 60
                time.sleep(0.1)
        stop.set()
        producer.join()
        standin.set_faults([])
        drained_by = time.time() + 180
        while agent.names("pdq") and time.time() < drained_by:
            time.sleep(0.5)
        time.sleep(1.0)
        helpers.stop_daemon(agent)
        figures["requests"] = len(standin.requests())
        figures["requests_faulted"] = sum(1 for request in standin.requests() if request["fault"])
    finally:
        stop.set()
        if helpers.daemon_alive(agent):
            helpers.stop_daemon(agent)
        standin.stop()

    records = helpers.recorded(standin)
    accepted = collections.Counter(record["body"]["dedup_key"] for record in records)
    rejected = {agent.read("err", name)["event"]["dedup_key"] for name in agent.names("err")}
    pending = {agent.read("pdq", name)["event"]["dedup_key"] for name in agent.names("pdq")}
    lost = sorted(set(sent) - set(accepted) - rejected - pending)
    changed = sum(1 for record in records if record["body"]["dedup_key"] not in sent)
    seen, last_seq, out_of_order = set(), {}, 0
    for record in records:
        dedup_key = record["body"]["dedup_key"]
        if dedup_key in seen or dedup_key not in sent:
            continue
        seen.add(dedup_key)
        key, sequence = sent[dedup_key]
        out_of_order += sequence < last_seq.get(key, -1)
        last_seq[key] = max(sequence, last_seq.get(key, -1))
    summary = {
        "minutes": args.minutes, "seed": seed, "sent": len(sent), "delivered": len(accepted),
        "lost": len(lost), "duplicated": sum(accepted.values()) - len(accepted),
        "rejected": len(rejected), "pending": len(pending), "out_of_order": out_of_order,
        "unknown_arrivals": changed, "kills": figures["kills"], "fault_sets": figures["fault_sets"],
        "pd_send_failures": figures["pd_send_failures"],
        "faults": dict(sorted(fault_counts.items())),
        "requests": figures.get("requests"), "requests_faulted": figures.get("requests_faulted"),
    }
    print(f"sent {summary['sent']}  delivered {summary['delivered']}  lost {summary['lost']}  "
          f"duplicated {summary['duplicated']}")
    print(f"rejected {summary['rejected']}  pending {summary['pending']}  out of order "
          f"{out_of_order}  kills {figures['kills']}  fault sets {figures['fault_sets']}")
    print("SOAK " + json.dumps(summary, sort_keys=True))
    if lost:
        print(f"lost, first few: {lost[:10]}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if lost or out_of_order or changed else 0


if __name__ == "__main__":
    sys.exit(main())
