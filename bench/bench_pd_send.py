"""Benchmark: pd-send's wall time against `python -c pass`, and pd-queue status on a big spool.

    .venv/bin/python bench/bench_pd_send.py [--runs 40] [--pending 100000]

Both baselines run with the same interpreter in the same run, interleaved, so
machine noise hits both alike. Prints medians and the ratio; the targets are
pd-send <= 2.0x `python -c pass` and pd-queue status <= 0.3 s over 100,000
pending events on 10 keys.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.dirname(sys.executable)
ROUTING_KEY = "b" * 32


def timed(command, env):
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def write_config(directory):
    path = os.path.join(directory, "pdagent.conf")
    with open(path, "w") as config_file:
        config_file.write(f"[Main]\ndata_dir = {directory}\nlog_dir = {directory}\n"
                          f"pid_dir = {directory}\n")
    return path


def bench_pd_send(runs, env):
    pd_send = [os.path.join(BIN_DIR, "pd-send"), "-k", ROUTING_KEY, "-t", "trigger",
               "-d", "disk full on db1", "-f", "mount=/var", "-q"]
    baseline = [sys.executable, "-c", "pass"]
    for _ in range(3):  # warm the page cache and .pyc files
        timed(baseline, env)
        timed(pd_send, env)
    base_times, send_times = [], []
    for _ in range(runs):
        base_times.append(timed(baseline, env))
        send_times.append(timed(pd_send, env))
    base, send = statistics.median(base_times), statistics.median(send_times)
    print(f"python -c pass     median {base * 1000:7.1f} ms  ({runs} runs)")
    print(f"pd-send            median {send * 1000:7.1f} ms  ratio {send / base:.2f}x (target <= 2.0x)")


def bench_status(pending, env, data_dir):
    pdq = os.path.join(data_dir, "outqueue", "pdq")
    os.makedirs(pdq, exist_ok=True)
    start_us = int(time.time() * 1_000_000) - pending
    body = b'{"endpoint":"alert","event":{}}'
    for index in range(pending):
        name = f"{start_us + index}_key{index % 10:02d}{'k' * 27}.txt"
        with open(os.path.join(pdq, name), "wb") as entry:
            entry.write(body)
    status = [os.path.join(BIN_DIR, "pd-queue"), "status"]
    timed(status, env)
    times = [timed(status, env) for _ in range(5)]
    print(f"pd-queue status    median {statistics.median(times) * 1000:7.1f} ms over {pending} "
          f"pending events, 10 keys (target <= 300 ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--pending", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ, PDAGENT_CONFIG=write_config(data_dir))
        print(f"interpreter: {sys.executable} ({sys.version.split()[0]})")
        bench_pd_send(args.runs, env)
    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ, PDAGENT_CONFIG=write_config(data_dir))
        bench_status(args.pending, env, data_dir)


if __name__ == "__main__":
    main()
