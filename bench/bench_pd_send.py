"""Benchmark: pd-send's wall time against `python -c pass`, and pd-queue status on a big spool.

    .venv/bin/python bench/bench_pd_send.py [--runs 40] [--pending 100000] [--before DIR]

pd-send is timed as each way of installing it runs it, against `python -c pass`
in the same run, interleaved, so machine noise hits all alike:
- the checkout launcher: `python bin/pd-send`;
- the command of this interpreter's environment (`make venv`: bin/'s launcher, pdagent by a
  path entry to the checkout), if any;
- `pip install .` into a new venv: the checkout's wheel is built here (offline:
  --no-deps --no-build-isolation, which needs `wheel` or setuptools >= 70.1
  beside this interpreter) and installed into a venv without system
  site-packages, its dependencies importable from this interpreter's.
With --before DIR (another checkout, e.g. `git worktree add DIR <commit>`), its
bin/pd-send and bin/pd-queue are timed in the same interleaved runs: a change's
before and after, side by side.
Prints medians of wall and CPU time (user + system, which a busy machine
moves less) and their ratios; the targets are pd-send <= 1.5x `python -c pass`
however installed, and pd-queue status <= 0.3 s over 100,000 pending events on
10 keys.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.dirname(sys.executable)
ROUTING_KEY = "b" * 32
PD_SEND_ARGS = ["-k", ROUTING_KEY, "-t", "trigger", "-d", "disk full on db1", "-f", "mount=/var", "-q"]


def timed(command, env):
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_with_cpu(command, env):
    """(wall seconds, CPU seconds) of one run; CPU time moves less than wall time on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(command, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def write_config(directory):
    path = os.path.join(directory, "pdagent.conf")
    with open(path, "w") as config_file:
        config_file.write(f"[Main]\ndata_dir = {directory}\nlog_dir = {directory}\n"
                          f"pid_dir = {directory}\n")
    return path


def pip_install(directory):
    """The checkout installed by pip as `pip install .` does it, into a new venv under
    `directory`, offline; returns the venv's bin/ directory."""
    source, wheels, venv = (os.path.join(directory, name) for name in ("source", "wheels", "venv"))
    os.makedirs(source)
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    # a copy: the build writes build/ and *.egg-info beside setup.py; conf/ and packaging/ hold
    # setup.py's data_files
    for name in ("pdagent", "bin", "conf", "packaging"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(source, name), symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", wheels, source], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    venv_python = os.path.join(venv, "bin", "python")
    (wheel,) = os.listdir(wheels)
    subprocess.run([sys.executable, "-m", "pip", "--python", venv_python, "install", "--quiet", "--no-deps",
                    "--no-index", os.path.join(wheels, wheel)], check=True)
    # requests, python-daemon, lockfile: from here (the system's site-packages may run
    # .pth files of their own at every start, which is not pdagent's cost).
    site_packages = subprocess.run([venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site_packages, "pdagent-dependencies.pth"), "w") as path_file:
        path_file.write(sysconfig.get_paths()["purelib"] + "\n")
    return os.path.join(venv, "bin")


def bench_pd_send(runs, env, pip_bin_dir, before):
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "checkout bin/pd-send": [sys.executable, os.path.join(ROOT, "bin", "pd-send"), *PD_SEND_ARGS]}
    if before:
        commands["before: bin/pd-send"] = [sys.executable, os.path.join(before, "bin", "pd-send"), *PD_SEND_ARGS]
    if os.path.exists(os.path.join(BIN_DIR, "pd-send")):
        commands["this venv's pd-send"] = [os.path.join(BIN_DIR, "pd-send"), *PD_SEND_ARGS]
    commands["pip install . pd-send"] = [os.path.join(pip_bin_dir, "pd-send"), *PD_SEND_ARGS]
    for _ in range(3):  # warm the page cache and .pyc files
        for command in commands.values():
            timed(command, env)
    load = os.getloadavg()[0]
    walls, cpus = ({name: [] for name in commands} for _ in range(2))
    for _ in range(runs):
        for name, command in commands.items():
            wall, cpu = timed_with_cpu(command, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base_wall, base_cpu = statistics.median(walls["python -c pass"]), statistics.median(cpus["python -c pass"])
    print(f"medians of {runs} interleaved runs, load average {load:.2f} at the start")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        ratios = "" if name == "python -c pass" else \
            f"  ratio {wall / base_wall:.2f}x wall, {cpu / base_cpu:.2f}x CPU (target <= 1.5x)"
        print(f"{name:24} {wall * 1000:6.1f} ms wall {cpu * 1000:6.1f} ms CPU{ratios}")


def bench_status(pending, env, data_dir, before):
    pdq = os.path.join(data_dir, "outqueue", "pdq")
    os.makedirs(pdq, exist_ok=True)
    start_us = int(time.time() * 1_000_000) - pending
    body = b'{"endpoint":"alert","event":{}}'
    for index in range(pending):
        name = f"{start_us + index}_key{index % 10:02d}{'k' * 27}.txt"
        with open(os.path.join(pdq, name), "wb") as entry:
            entry.write(body)
    commands = {"pd-queue status": [os.path.join(BIN_DIR, "pd-queue"), "status"]}
    if before:
        commands["before: pd-queue status"] = [sys.executable, os.path.join(before, "bin", "pd-queue"), "status"]
    times = {name: [] for name in commands}
    for command in commands.values():
        timed(command, env)
    for _ in range(5):
        for name, command in commands.items():
            times[name].append(timed(command, env))
    for name in commands:
        print(f"{name:24} median {statistics.median(times[name]) * 1000:7.1f} ms over {pending} "
              f"pending events, 10 keys (target <= 300 ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--before", metavar="DIR", help="another checkout to time beside this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as install_dir:
        env = dict(os.environ, PDAGENT_CONFIG=write_config(data_dir))
        # Installed code runs from bytecode: let the warm-up runs write what is missing or stale.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        print(f"interpreter: {sys.executable} ({sys.version.split()[0]})")
        bench_pd_send(args.runs, env, pip_install(install_dir), args.before)
    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ, PDAGENT_CONFIG=write_config(data_dir))
        bench_status(args.pending, env, data_dir, args.before)


if __name__ == "__main__":
    main()
