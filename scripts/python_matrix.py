#!/usr/bin/env python3
"""`make test-matrix`: the fast tests on every Python from 3.6 to 3.13, each Python with the
library versions a distribution ships it with (constraints/<row>.txt).

    scripts/python_matrix.py [-j JOBS] [ROW ...]      # default: every row of ROWS, 2 at a time

For each row, in a venv cached under .matrix/venv/<row>:
- the distribution's libraries, installed with --no-deps exactly as its constraints file lists
  them (distributions patch their packages' requirements: Ubuntu 22.04 pairs requests 2.25.1
  with idna 3.3, which requests' own metadata refuses), then the test tools of
  constraints/test-tools.txt at versions for that Python, the distribution's versions held;
- pdagent as `pip install` installs it (a wheel built once per run from this checkout), so
  pip's Requires-Python check and the installed commands are what the tests run;
- pytest on TESTS, less DESELECTED.
A venv is rebuilt when its constraints file, test-tools.txt or RECIPE changes (its stamp file).
Each row's output goes to .matrix/logs/<row>.log; pytest's is printed when the row ends.

pyenv's Pythons live under /root, which the daemon's user (pdagent-test) cannot enter, and load
libpython through a RUNPATH there. So each row's venv is made from a copy of its Python under
.matrix/python/ whose RUNPATH points into the copy (patchelf): the daemon runs the row's Python.
The Events API stand-in runs on this script's Python (PDAGENT_STANDIN_PYTHON): it plays
PagerDuty's service, not the agent.
"""

import argparse
import concurrent.futures
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from harness import OTHER_USER, ensure_daemon_user, ensure_user

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRAINTS_DIR = os.path.join(ROOT, "constraints")
TEST_TOOLS = os.path.join(CONSTRAINTS_DIR, "test-tools.txt")
MATRIX_DIR = os.path.join(ROOT, ".matrix")
PYENV_VERSIONS = os.path.join(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "versions")
# Changing how a venv is built changes this, so every cached venv is rebuilt.
RECIPE = "2: pip from test-tools, libraries --no-deps, test tools held to the libraries"

# (constraints file, Python): each distribution with the python3 it ships.
ROWS = [
    ("rhel-8", "3.6"),
    ("oldest", "3.7"),  # Amazon Linux 2's python3, with the oldest versions setup.py accepts
    ("ubuntu-20.04", "3.8"),
    ("debian-11", "3.9"),
    ("rhel-9", "3.9"),
    ("ubuntu-22.04", "3.10"),
    ("debian-12", "3.11"),
    ("ubuntu-24.04", "3.12"),
    ("debian-13", "3.13"),
]

# What proves the code on a Python in about two minutes: every module in process, every command
# end to end, the daemon delivering through the row's requests, urllib3, python-daemon and
# lockfile (HTTP answers, TLS, proxies, daemonising, signals), and pdagent.layout as the rpm's
# %post runs it (test_packaging's layout tests only: SELECTION). The long fault, property and
# load suites, the packages and the stand-in's own tests run on 3.11 in `make test`.
TESTS = [
    "tests/test_event.py",
    "tests/test_config.py",
    "tests/test_scheduler.py",
    "tests/test_delivery.py",
    "tests/test_pending.py",
    "tests/test_enqueue.py",
    "tests/test_state.py",
    "tests/test_watch.py",
    "tests/test_hostname.py",
    "tests/test_spool.py",
    "tests/test_spool_names.py",
    "tests/test_durability.py",
    "tests/test_pd_send.py",
    "tests/test_pd_queue.py",
    "tests/test_integrations.py",
    "tests/test_library_api.py",
    "tests/test_daemon_only_settings.py",
    "tests/test_daemon.py",
    "tests/test_pd_listen.py",
    "tests/test_listen_server.py",
    "tests/test_wakeup.py",
    "tests/test_packaging.py",
]
SELECTION = "not test_packaging or layout"
# The slowest of those whose subject does not change with the Python (each 5-20 s, mostly waiting):
# 500 pd-send runs, back-off and pacing timings of the scheduler (pure, and tested in process),
# a random walk through file names. `make test` runs them.
DESELECTED = [
    "tests/test_pd_send.py::test_20_parallel_writers_times_25_events_lose_nothing",
    "tests/test_daemon.py::test_429_backs_off_and_never_errs",
    "tests/test_daemon.py::test_per_key_order_holds_under_failures_and_other_keys_flow",
    "tests/test_daemon.py::test_retryable_answers_keep_the_event_and_deliver_it_later[timeout]",
    "tests/test_spool_names.py::test_parse_file_name_agrees_with_the_standard_library",
]

PYTHON_COPY_IGNORED = shutil.ignore_patterns("test", "site-packages", "idlelib", "tkinter", "turtledemo",
                                             "*.a", "__pycache__")
print_lock = threading.Lock()


def main(argv):
    parser = argparse.ArgumentParser(prog="python_matrix.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="rows run at once (default: 2)")
    parser.add_argument("rows", nargs="*", metavar="ROW", help=f"default: all of {' '.join(r for r, _ in ROWS)}")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.rows) - {row for row, _ in ROWS})
    if unknown:
        parser.error(f"no such row: {', '.join(unknown)}")
    rows = [(row, minor) for row, minor in ROWS if row in (arguments.rows or [r for r, _ in ROWS])]
    if shutil.which("patchelf") is None:
        sys.exit("python_matrix: patchelf is missing (apt-get install patchelf; make test-matrix does)")
    started = time.monotonic()
    if os.geteuid() == 0:  # made here once, not by two rows' tests at the same time
        ensure_daemon_user()
        ensure_user(OTHER_USER)
    pythons = {minor: copied_python(minor) for minor in sorted({minor for _, minor in rows})}
    os.makedirs(os.path.join(MATRIX_DIR, "logs"), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pdagent-matrix-") as scratch:
        wheel = build_wheel(scratch)
        with concurrent.futures.ThreadPoolExecutor(max(1, arguments.jobs)) as pool:
            results = list(pool.map(lambda row: run_row(row[0], pythons[row[1]], wheel), rows))
    print(f"\n{'row':14} {'python':8} {'venv':>10} {'tests':>6}  result")
    for row, version, venv_note, seconds, summary, _ in results:
        print(f"{row:14} {version:8} {venv_note:>10} {seconds:5.0f}s  {summary}")
    print(f"python matrix: {time.monotonic() - started:.0f} s in all, {arguments.jobs} rows at a time")
    return 0 if all(passed for *_, passed in results) else 1


def run_row(row, python, wheel):
    """Build (if needed) and test one row; (row, version, venv note, seconds, summary, passed)."""
    version = os.path.basename(os.path.dirname(os.path.dirname(python)))
    log_path = os.path.join(MATRIX_DIR, "logs", f"{row}.log")
    with open(log_path, "w") as log:
        building = time.monotonic()
        try:
            built = ensure_venv(os.path.join(MATRIX_DIR, "venv", row), python,
                                os.path.join(CONSTRAINTS_DIR, f"{row}.txt"), log)
            venv_python = os.path.join(MATRIX_DIR, "venv", row, "bin", "python")
            pip(venv_python, "install", "--no-deps", "--no-index", "--force-reinstall", wheel, log=log)
        except subprocess.CalledProcessError as error:
            report(row, version, f"{' '.join(error.cmd[2:5])} ... failed: see {log_path}")
            return row, version, "failed", 0, "venv not built", False
        venv_note = f"built {time.monotonic() - building:.0f}s" if built else "cached"
        testing = time.monotonic()
        argv = [venv_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", "-k", SELECTION,
                *TESTS]
        argv += [f"--deselect={test}" for test in DESELECTED]
        result = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, PDAGENT_STANDIN_PYTHON=sys.executable),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        seconds = time.monotonic() - testing
        log.write(result.stdout)
    report(row, version, result.stdout)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else f"pytest exited {result.returncode}"
    # Exit 5 is pytest collecting nothing: a row that tested nothing has not passed.
    return row, version, venv_note, seconds, summary, result.returncode == 0


def report(row, version, text):
    with print_lock:
        print(f"\n=== {row} (Python {version}, constraints/{row}.txt)\n{text.rstrip()}", flush=True)


def copied_python(minor):
    """The newest pyenv Python `minor` (3.6.15 for "3.6"), copied under .matrix/python/."""
    versions = [os.path.basename(path) for path in glob.glob(os.path.join(PYENV_VERSIONS, f"{minor}.*"))
                if re.fullmatch(rf"{re.escape(minor)}\.\d+", os.path.basename(path))]
    if not versions:
        sys.exit(f"python_matrix: no Python {minor} in {PYENV_VERSIONS} (pyenv install {minor})")
    version = max(versions, key=lambda name: int(name.rsplit(".", 1)[1]))
    source = os.path.join(PYENV_VERSIONS, version)
    copy = os.path.join(MATRIX_DIR, "python", version)
    binary = os.path.join(copy, "bin", f"python{minor}")
    stamp = os.path.join(copy, ".copied")
    if not os.path.exists(stamp):
        shutil.rmtree(copy, ignore_errors=True)
        os.makedirs(os.path.join(copy, "bin"))
        os.makedirs(os.path.join(copy, "lib"))
        shutil.copy2(os.path.join(source, "bin", f"python{minor}"), binary)
        for library in glob.glob(os.path.join(source, "lib", "libpython*.so*")):
            shutil.copy2(library, os.path.join(copy, "lib"), follow_symlinks=False)
        shutil.copytree(os.path.join(source, "lib", f"python{minor}"), os.path.join(copy, "lib", f"python{minor}"),
                        symlinks=True, ignore=PYTHON_COPY_IGNORED)
        subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib", binary], check=True)
        open(stamp, "w").close()
    return binary


def ensure_venv(venv, python, constraints, log):
    """Build `venv` unless its stamp says it holds exactly this recipe; True if it was built."""
    digest = hashlib.sha256(RECIPE.encode() + python.encode())
    for path in (constraints, TEST_TOOLS):
        with open(path, "rb") as source:
            digest.update(source.read())
    stamp_path = os.path.join(venv, ".matrix-stamp")
    if _read(stamp_path) == digest.hexdigest():
        return False
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", venv], stdout=log, stderr=subprocess.STDOUT, check=True)
    venv_python = os.path.join(venv, "bin", "python")
    pip(venv_python, "install", "-c", TEST_TOOLS, "pip", log=log)
    pip(venv_python, "install", "--no-deps", "-r", constraints, log=log)
    pip(venv_python, "install", "-c", constraints, "-r", TEST_TOOLS, log=log)
    with open(stamp_path, "w") as stamp:
        stamp.write(digest.hexdigest())
    return True


def build_wheel(scratch):
    """pdagent's wheel, built from a copy of the checkout (the build writes beside setup.py)."""
    source, wheels = os.path.join(scratch, "source"), os.path.join(scratch, "wheels")
    os.makedirs(source)
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    # conf/ and packaging/ hold setup.py's data_files (the config, the unit, the init script)
    for name in ("pdagent", "bin", "conf", "packaging"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(source, name), symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, source)
    (wheel,) = glob.glob(os.path.join(wheels, "*.whl"))
    return wheel


def pip(python, *args, log=None):
    """pip through `python`, its output to `log` (a file) if one is given."""
    if log is not None:
        log.flush()
    subprocess.run([python, "-m", "pip", "--quiet", "--disable-pip-version-check", *args],
                   stdout=log, stderr=None if log is None else subprocess.STDOUT, check=True)


def _read(path):
    try:
        with open(path) as stamp:
            return stamp.read()
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
