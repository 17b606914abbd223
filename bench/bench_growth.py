"""How pdagentd and pd-queue behave as the backlog grows: 10,000 -> 100,000 -> 1,000,000 events.

    .venv/bin/python bench/bench_growth.py [--sizes 10000,100000,1000000] [--watch-secs 30]

For each size, a backlog on 10 keys is written straight into pdq/ (the entries
pd-send writes; through pd-send a million would take hours), then:
- `pd-queue status` and `pd-queue status --json`: wall time of the whole process (median of 3);
- the daemon started with the backlog's keys answering 503 (it cannot drain):
  start -> indexed (its log line), start -> first POST, RSS after the scan and
  its peak over `--watch-secs`, and a new key's event sent now and then meanwhile
  (enqueue -> received, and pd-send's start -> received);
- then the 503s stop and the backlog drains for `--drain-secs`: events/s, daemon CPU
  per delivered event, RSS, and new keys' latency during the drain.
Targets (issue 11): RSS flat and <= 40 MiB at 1M, pd-queue status <= 1.5 s at 1M,
a new key's event <= 50 ms during a 1M backlog, <= 0.6 ms daemon CPU per event.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_daemon import cpu_seconds, fill_backlog, rss_mib
from harness import Agent, StandIn, ensure_daemon_user, routing_key, wait_for

BACKLOG_KEYS = [routing_key(100 + number) for number in range(10)]  # fill_backlog's keys


def timed(argv, env, runs=3):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    return statistics.median(times)


def recently_received(standin, key):
    """The stand-in's record (--record, one JSON line per accepted event) of `key`'s event,
    looked for in the file's last 256 KB: the control API would send every request."""
    import json
    try:
        with open(standin.record, "rb") as record:
            record.seek(max(0, os.fstat(record.fileno()).st_size - 256 * 1024))
            tail = record.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        if key in line and line.endswith("}"):
            return json.loads(line)
    return None


def new_key_latency(agent, standin, number):
    """pd-send to a key never seen; (enqueue -> received, pd-send start -> received) in ms."""
    key = routing_key(5000 + number)
    started = time.time()
    agent.send("-k", key, "-t", "trigger", "-d", "new key", "-i", f"new-{number}", "-q")
    received = wait_for(lambda: recently_received(standin, key), timeout=30, interval=0.005,
                        message="the new key's event")
    name = next(name for name in os.listdir(agent.path("pdq")) + os.listdir(agent.path("suc"))
                if name.endswith(f"_{key}.txt"))
    queued_at = int(name.split("_", 1)[0]) / 1e6
    return (received["received_at"] - queued_at) * 1000, (received["received_at"] - started) * 1000


def latency_figures(name, latencies):
    queued, from_pd_send = zip(*latencies)
    return {f"{name}_ms_median": statistics.median(queued), f"{name}_ms_max": max(queued),
            f"{name}_from_pd_send_ms_median": statistics.median(from_pd_send)}


def indexed_after(agent):
    for line in agent.log_text().splitlines():
        if "indexed" in line and "pending event" in line:
            return float(line.rsplit(" in ", 1)[1].split()[0])
    return None


def measure(workdir, user, size, watch_secs, drain_secs):
    standin = StandIn(workdir)
    agent = Agent(os.path.join(workdir, "agent"), user, standin.url)
    agent.configure(max_events_per_minute_per_key=0, send_interval_secs=10,
                    backoff_interval_secs=1, backoff_max_secs=2)
    row = {"size": size}
    try:
        started = time.time()
        fill_backlog(agent, size, len(BACKLOG_KEYS), user[1])
        os.sync()  # a backlog built over days is on disk, not a journal's worth of metadata to flush
        row["fill_secs"] = time.time() - started
        row["status_secs"] = timed(["pd-queue", "status"], agent.env())
        row["status_json_secs"] = timed(["pd-queue", "status", "--json"], agent.env())

        standin.set_faults([{"match": {"routing_key": key}, "status": 503, "times": -1}
                            for key in BACKLOG_KEYS])
        started = time.time()
        pid = agent.start_daemon(foreground=False)
        wait_for(lambda: standin.requests(), timeout=120, interval=0.01, message="the first POST")
        row["first_post_secs"] = standin.requests()[0]["received_at"] - started
        row["index_secs"] = indexed_after(agent)  # logged before the first POST (None: a daemon that does not say)
        rss = [rss_mib(pid)]
        latencies = []
        deadline = time.time() + watch_secs
        number = 0
        while time.time() < deadline:
            rss.append(rss_mib(pid))
            if number < 10:
                latencies.append(new_key_latency(agent, standin, number))
                number += 1
            time.sleep(max(0.0, min(deadline - time.time(), watch_secs / 12)))
        row["rss_after_scan"], row["rss_peak_held"] = rss[1], max(rss)
        row.update(latency_figures("new_key_held", latencies))

        standin.set_faults([])
        time.sleep(3)  # the back-offs of the 503s end
        delivered_before = len(os.listdir(agent.path("suc")))
        cpu_before, drain_started = cpu_seconds(pid), time.time()
        latencies = []
        while time.time() < drain_started + drain_secs:
            rss.append(rss_mib(pid))
            latencies.append(new_key_latency(agent, standin, 100 + number))
            number += 1
            time.sleep(drain_secs / 8)
        delivered = len(os.listdir(agent.path("suc"))) - delivered_before - len(latencies)
        elapsed, cpu = time.time() - drain_started, cpu_seconds(pid) - cpu_before
        row["drain_rate"] = delivered / elapsed
        row["cpu_ms_per_event"] = cpu / delivered * 1000
        row["rss_peak"] = max(rss)
        row.update(latency_figures("new_key_drain", latencies))
    finally:
        if agent.daemon_running():
            agent.stop_daemon()
        standin.stop()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--watch-secs", type=float, default=30)
    parser.add_argument("--drain-secs", type=float, default=20)
    args = parser.parse_args()
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    user = ensure_daemon_user()
    print(f"interpreter: {sys.executable} ({sys.version.split()[0]}), {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    for size in map(int, args.sizes.split(",")):
        workdir = tempfile.mkdtemp(prefix="pdagent-growth-")
        os.chmod(workdir, 0o755)
        try:
            row = measure(workdir, user, size, args.watch_secs, args.drain_secs)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(" ".join(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}"
                       for name, value in row.items()), flush=True)


if __name__ == "__main__":
    main()
