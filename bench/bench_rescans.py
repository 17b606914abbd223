"""pdagentd's memory across rescans of a large backlog: what each rescan leaves behind.

    .venv/bin/python bench/bench_rescans.py [--size 1000000] [--secs 500]

Fills pdq/ with `size` events on 10 keys that the stand-in refuses (503: nothing drains),
starts the daemon and prints its RSS, lowest and highest, per 20 s window. At a million
events a rescan comes every 200-odd seconds (the listing's time over RESCAN_TIME_SHARE):
a window's highest is the old and the new index side by side, and the lowest after it is
what the rescan left (target: back to the first scan's figure, <= 40 MiB).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

from bench_daemon import (  # bench/ is on the path: this script's own directory
    fill_backlog,
    rss_mib,
)
from bench_growth import BACKLOG_KEYS
from harness import Agent, StandIn, ensure_daemon_user, wait_for

WINDOW_SECS = 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--secs", type=float, default=500)
    args = parser.parse_args()
    user = ensure_daemon_user()
    workdir = tempfile.mkdtemp(prefix="pdagent-bench-rescans-")
    os.chmod(workdir, 0o755)
    standin = StandIn(workdir)
    agent = Agent(os.path.join(workdir, "agent"), user, standin.url)
    agent.configure(max_events_per_minute_per_key=0, send_interval_secs=10,
                    backoff_interval_secs=1, backoff_max_secs=2)
    try:
        fill_backlog(agent, args.size, len(BACKLOG_KEYS), user[1])
        os.sync()
        standin.set_faults([{"match": {"routing_key": key}, "status": 503, "times": -1} for key in BACKLOG_KEYS])
        pid = agent.start_daemon(foreground=False)
        wait_for(lambda: standin.requests(), timeout=120, interval=0.01, message="the first POST")
        started, samples = time.time(), []
        while time.time() - started < args.secs:
            samples.append((time.time() - started, rss_mib(pid)))
            time.sleep(0.5)
        for window in range(0, int(args.secs), WINDOW_SECS):
            values = [rss for at, rss in samples if window <= at < window + WINDOW_SECS]
            if values:
                print(f"{window:4d}-{window + WINDOW_SECS:4d} s: RSS lowest {min(values):5.1f} MiB, "
                      f"highest {max(values):5.1f} MiB")
    finally:
        if agent.daemon_running():
            agent.stop_daemon()
        standin.stop()


if __name__ == "__main__":
    main()
