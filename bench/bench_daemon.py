"""Benchmark pdagentd against the local stand-in: latency, drain rate and CPU, fairness, memory.

    .venv/bin/python bench/bench_daemon.py [--drain 10000] [--backlog 100000] [--latency-events 30]

Prints, each with its target:
- latency: pd-send's exit -> the stand-in receiving the event, default config (p50 <= 0.1 s);
- drain: 10,000 queued events over 10 keys, pacing off (>= 500 events/s, <= 1 ms daemon CPU
  per event), next to a baseline measured in the same run: a bare requests.Session POST loop
  against the same stand-in (the cost of the HTTP client alone);
- fairness: with a 100,000-event backlog draining on 10 keys, a new event on an 11th key
  (arrives within 1 s);
- memory: the daemon's RSS while that backlog drains (<= 40 MiB, flat).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

from harness import Agent, StandIn, ensure_daemon_user, routing_key, wait_for

from pdagent.event import build_alert, make_entry

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fill_backlog(agent, count, keys, gid):
    """Write `count` pending events straight into pdq/ (setup speed; the same entries pd-send writes)."""
    start_us = int(time.time() * 1_000_000) - count
    pdq = agent.path("pdq")
    payloads = {}
    for number in range(keys):
        key = routing_key(100 + number)
        body = build_alert(key, "trigger", summary="backlog event", source="bench.example.com",
                           severity="error", dedup_key=f"backlog-{number}")
        payloads[key] = json.dumps(make_entry("alert", body, "bench", "bench")).encode()
    key_list = list(payloads)
    for index in range(count):
        key = key_list[index % keys]
        path = os.path.join(pdq, f"{start_us + index}_{key}.txt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.write(fd, payloads[key])
        os.close(fd)
        if os.geteuid() == 0:
            os.chown(path, 0, gid)


def bench_latency(workdir, user, events):
    """From the moment pd-send linked the event into pdq/ (its file name's time, just before
    pd-send exits) to the stand-in receiving it: an upper bound of exit -> received."""
    standin = StandIn(workdir)
    agent = Agent(os.path.join(workdir, "latency"), user, standin.url)
    agent.configure(send_interval_secs=10, backoff_interval_secs=60, backoff_max_secs=600,
                    http_timeout_secs=10)  # the defaults, as a user has them
    try:
        agent.start_daemon(foreground=False)
        for number in range(events):
            agent.send("-k", routing_key(1 + number % 5), "-t", "trigger", "-d", f"latency {number}",
                       "-i", f"latency-{number}", "-q")
            wait_for(lambda n=number: len(standin.received()) > n, timeout=10, interval=0.002,
                     message="the event")
            time.sleep(0.05)  # idle between events, as a monitoring host is
        received_at = {event["body"]["dedup_key"]: event["received_at"] for event in standin.received()}
        latencies = []
        for name in agent.names("suc"):
            queued_at = int(name.split("_", 1)[0]) / 1e6
            latencies.append(received_at[agent.read("suc", name)["event"]["dedup_key"]] - queued_at)
        latencies.sort()
        print(f"latency  queued by pd-send -> stand-in: p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms over {events} events (target p50 <= 100 ms)")
    finally:
        agent.stop_daemon()
        standin.stop()


def bench_client_baseline(standin, posts=2000):
    """CPU of the HTTP client alone: a bare, tuned requests.Session POST loop."""
    import requests
    session = requests.Session()
    session.trust_env = False
    body = json.dumps(build_alert(routing_key(900), "trigger", summary="baseline", source="b",
                                  severity="info", dedup_key="baseline")).encode()
    url = standin.url + "/v2/enqueue"
    headers = {"Content-Type": "application/json"}
    for _ in range(100):
        session.post(url, data=body, headers=headers)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(posts):
        session.post(url, data=body, headers=headers)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / posts, posts / elapsed


def bench_drain(workdir, user, count):
    standin = StandIn(workdir, extra_args=())
    agent = Agent(os.path.join(workdir, "drain"), user, standin.url)
    agent.configure(max_events_per_minute_per_key=0)
    try:
        baseline_cpu, baseline_rate = bench_client_baseline(standin)
        standin.reset()
        fill_backlog(agent, count, 10, user[1])
        pid = agent.start_daemon(foreground=False)
        cpu_start, started = cpu_seconds(pid), time.time()
        wait_for(lambda: len(os.listdir(agent.path("suc"))) >= count, timeout=600, interval=0.05,
                 message="the drain")
        elapsed, cpu = time.time() - started, cpu_seconds(pid) - cpu_start
        print(f"baseline bare requests.Session POST loop: {baseline_cpu * 1000:.2f} ms CPU/POST, "
              f"{baseline_rate:.0f} POSTs/s")
        print(f"drain    {count} events over 10 keys: {count / elapsed:.0f} events/s, "
              f"{cpu / count * 1000:.2f} ms daemon CPU/event "
              f"({cpu / count / baseline_cpu:.2f}x the bare client) "
              f"(targets >= 500 events/s, <= 1 ms/event)")
    finally:
        agent.stop_daemon()
        standin.stop()


def bench_fairness_and_memory(workdir, user, backlog):
    standin = StandIn(workdir)
    agent = Agent(os.path.join(workdir, "fairness"), user, standin.url)
    agent.configure(max_events_per_minute_per_key=0)
    try:
        fill_backlog(agent, backlog, 10, user[1])
        pid = agent.start_daemon(foreground=False)
        samples = [rss_mib(pid)]
        wait_for(lambda: len(standin.received()) >= 500, timeout=60, message="the drain to start")
        new_key = routing_key(999)
        sent_at = time.time()  # before pd-send starts: an upper bound of exit -> received
        agent.send("-k", new_key, "-t", "trigger", "-d", "new key during backlog", "-q")
        received = wait_for(lambda: [event for event in standin.received()[-2000:]
                                     if event["body"]["routing_key"] == new_key],
                            timeout=30, interval=0.01, message="the new key's event")
        print(f"fairness new event on an 11th key during a {backlog}-event backlog on 10 keys: "
              f"arrived (counted from pd-send's start) after {(received[0]['received_at'] - sent_at) * 1000:.0f} ms (target <= 1000 ms)")
        suc = agent.path("suc")
        while len(os.listdir(suc)) < backlog + 1:
            samples.append(rss_mib(pid))
            time.sleep(1)
        samples.append(rss_mib(pid))
        print(f"memory   daemon RSS while draining {backlog} events: start {samples[0]:.1f} MiB, "
              f"peak {max(samples):.1f} MiB, end {samples[-1]:.1f} MiB (target <= 40 MiB, flat)")
    finally:
        agent.stop_daemon()
        standin.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-events", type=int, default=30)
    parser.add_argument("--drain", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    args = parser.parse_args()
    user = ensure_daemon_user()
    print(f"interpreter: {sys.executable} ({sys.version.split()[0]}), {os.cpu_count()} cores")
    for bench, size in ((bench_latency, args.latency_events), (bench_drain, args.drain),
                        (bench_fairness_and_memory, args.backlog)):
        workdir = tempfile.mkdtemp(prefix="pdagent-bench-")
        os.chmod(workdir, 0o755)
        try:
            bench(workdir, user, size)
        finally:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
