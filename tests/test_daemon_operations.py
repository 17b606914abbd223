"""pdagentd as an operator runs it over days, through real processes: a restart
after a fix, the wall clock stepping back (libfaketime), a suspended holder of the queue lock,
pdq/ replaced under the daemon, a stale pid file naming another process, state.json that
stays small, and the library queueing into a spool that does not exist yet."""

import json
import os
import signal
import subprocess
import sys
import time

import helpers
import pytest
from helpers import as_user, command, routing_key, wait_for

KEY = routing_key(1101)
OTHER_KEY = routing_key(1102)
needs_libfaketime = pytest.mark.skipif(
    helpers.LIBFAKETIME is None, reason="libfaketime is not installed (Debian package 'faketime')")


def dedup_keys(standin, key=KEY):
    return [body["dedup_key"] for body in standin.bodies(key)]


# -- restart means try now --------------------------------------------------------------------

def test_a_restart_after_fixing_the_url_delivers_at_once(agent, standin):
    agent.configure(events_api_url=f"http://127.0.0.1:{helpers.closed_port()}",
                    backoff_interval_secs=60, backoff_max_secs=60)
    helpers.start_daemon(agent)
    helpers.send(agent, KEY, "after-the-fix")
    wait_for(lambda: "result=unreachable" in agent.log_text(), message="a failed attempt")
    helpers.restart_daemon(agent, events_api_url=standin.url)
    wait_for(lambda: dedup_keys(standin) == ["after-the-fix"], timeout=5,
             message="delivery right after the restart, not after the saved back-off")
    assert "throttled" not in agent.log_text()


def test_state_json_keeps_no_entry_for_keys_that_were_only_rejected(agent, standin):
    agent.configure(retry_limit_for_possible_errors=1, backoff_interval_secs=1, backoff_max_secs=1)
    standin.set_faults([{"status": 500, "times": -1}])
    helpers.start_daemon(agent)
    names = helpers.enqueue(agent, [helpers.alert_body(routing_key(1200 + number), number) for number in range(40)])
    wait_for(lambda: len(agent.names("err")) == len(names), timeout=20, message="every event in err/")
    time.sleep(1.2)  # the back-offs after giving up are over
    helpers.stop_daemon(agent)
    with open(os.path.join(agent.data_dir, "db", "state.json")) as state_file:
        state = json.load(state_file)
    assert state["keys"] == {} and state["counters"]["failed"] == len(names)


# -- the wall clock steps back ----------------------------------------------------------------

def _start_daemon_with_faketime(agent, offset_file):
    """pdagentd -f as the daemon user with libfaketime loaded after setpriv: loaded into
    setpriv (root), it would share a semaphore with the daemon that the daemon may not open.

    `env` starts the daemon, so the interpreter path must be searchable by the daemon
    user; the test venv's may live under a 0700 /root (setpriv itself gets there with
    root's capabilities), hence CAP_DAC_READ_SEARCH, which grants no write.
    """
    settings = [f"{name}={value}" for name, value in helpers.faketime_settings(offset_file=offset_file).items()]
    argv = ["setpriv", f"--reuid={agent.uid}", f"--regid={agent.gid}", "--init-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
            "env", *settings, *command("pdagentd"), "-f"]
    agent._output = open(agent.daemon_output, "ab")  # noqa: SIM115 (closed when it stops)
    agent.daemon = subprocess.Popen(argv, env=agent.env(), stdout=agent._output, stderr=subprocess.STDOUT)
    helpers.wait_started(agent, agent.daemon.pid)


def _set_offset(path, offset):
    with open(path, "w") as offset_file:
        offset_file.write(offset + "\n")
    os.chmod(path, 0o644)


@needs_libfaketime
def test_a_backward_step_of_the_daemons_clock_does_not_stall_a_backed_off_key(agent, standin):
    agent.configure(backoff_interval_secs=2, backoff_max_secs=2)
    offset_file = os.path.join(agent.base, "faketime")
    _set_offset(offset_file, "+0")
    standin.set_faults([{"match": {"routing_key": KEY}, "status": 503, "times": 1}])
    _start_daemon_with_faketime(agent, offset_file)
    helpers.send(agent, KEY, "stepped")
    wait_for(lambda: helpers.attempts(standin, "stepped"), message="the first attempt (503)")
    _set_offset(offset_file, "-1h")  # an NTP step while the key is backed off
    wait_for(lambda: dedup_keys(standin) == ["stepped"], timeout=8,
             message="the retry after the back-off, not an hour later")


@needs_libfaketime
def test_events_queued_after_the_clock_went_back_sort_after_the_earlier_ones(agent, standin):
    standin.set_faults([{"match": {"routing_key": KEY}, "status": 503, "times": -1}])
    helpers.start_daemon(agent)
    first = helpers.send(agent, KEY, "first")
    offset_file = os.path.join(agent.base, "faketime")
    _set_offset(offset_file, "-1h")
    later = [helpers.send(agent, KEY, dedup_key, env=agent.env(**helpers.faketime_settings(offset_file=offset_file)))
             for dedup_key in ("second", "third")]
    assert sorted([first] + later) == later + [first]  # their names claim an hour earlier ...
    standin.set_faults([])
    wait_for(lambda: len(dedup_keys(standin)) == 3, timeout=15, message="all three delivered")
    assert dedup_keys(standin) == ["first", "second", "third"]  # ... but they came later


# -- a suspended holder of the queue lock -----------------------------------------------------

HOLD_LOCK = """
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
signal.pause()
"""


def test_a_suspended_queue_lock_holder_freezes_neither_the_main_loop_nor_sigterm(agent, standin):
    """What a `pd-queue retry` stopped with SIGSTOP while it holds db/queue.lock does."""
    helpers.start_daemon(agent)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK,
                               os.path.join(agent.data_dir, "db", "queue.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGSTOP)
        helpers.send(agent, KEY, "while-locked")
        wait_for(lambda: dedup_keys(standin) == ["while-locked"], message="the POST (then the move waits)")
        os.kill(agent.daemon.pid, signal.SIGHUP)
        wait_for(lambda: "log file reopened" in agent.log_text(), timeout=3,
                 message="the main loop to handle SIGHUP")
        started = time.time()
        helpers.stop_daemon(agent)
        assert time.time() - started < 5
        assert len(agent.names("pdq")) == 1  # delivered but not moved: sent again later
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        os.kill(holder.pid, signal.SIGCONT)
        holder.wait()
    helpers.start_daemon(agent)
    wait_for(lambda: agent.names("suc") and not agent.names("pdq"), message="the move after the restart")


# -- pdq/ replaced under the daemon ----------------------------------------------------------

def test_a_replaced_pdq_is_watched_again_at_once(agent, standin):
    agent.configure(send_interval_secs=120)  # only the watch can make this fast
    helpers.start_daemon(agent)
    pdq = agent.path("pdq")
    info = os.stat(pdq)
    os.rename(pdq, pdq.rstrip("/") + ".old")
    os.mkdir(pdq)
    os.chown(pdq, info.st_uid, info.st_gid)
    os.chmod(pdq, 0o3753)
    wait_for(lambda: "was removed or replaced" in agent.log_text(), timeout=3, message="the log line")
    helpers.send(agent, KEY, "into-the-new-pdq")
    wait_for(lambda: dedup_keys(standin) == ["into-the-new-pdq"], timeout=3,
             message="delivery through the new watch")


# -- a stale pid file naming another process --------------------------------------------------

@pytest.mark.parametrize("watched", ["pdagentd.log", "pdagentd"])
def test_a_stale_pid_file_naming_a_tail_of_the_log_neither_blocks_nor_signals_it(agent, watched):
    path = os.path.join(agent.log_dir, watched)
    open(path, "a").close()
    os.chown(path, agent.uid, agent.gid)  # the daemon's own log, when it is pdagentd.log
    tail = subprocess.Popen(as_user(agent.uid, agent.gid, ["tail", "-f", path]),
                            stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.stat(f"/proc/{tail.pid}").st_uid == agent.uid, message="tail as the daemon user")
        pid_file = os.path.join(agent.pid_dir, "pdagentd.pid")
        with open(pid_file, "w") as stale:
            stale.write(f"{tail.pid}\n")
        os.chown(pid_file, agent.uid, agent.gid)
        result = subprocess.run(as_user(agent.uid, agent.gid, command("pdagentd")), env=agent.env(),
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: agent.pid() not in (None, tail.pid), message="the new pid file")
        assert tail.poll() is None  # not signalled
    finally:
        tail.kill()
        tail.wait()
        if agent.daemon_running():
            agent.stop_daemon()


# -- the library and a fresh spool ----------------------------------------------------------------

LIBRARY_SCRIPT = """
from pdagent.config import load_agent_config
from pdagent.pdagentutil import queue_event
from pdagent.spool.files import SpoolError
config = load_agent_config()
try:
    print(queue_event(config.get_enqueuer(), "trigger", "%s", "fresh-1", "first run", None, None,
                      None, config.get_agent_id(), "a-script"))
except SpoolError as error:
    print("SpoolError:", error)
"""


@pytest.mark.parametrize("writable", [True, False], ids=["created", "cannot-create"])
def test_the_library_queues_into_a_spool_that_does_not_exist_yet(offline_agent, writable):
    fresh = os.path.join(offline_agent.base, "fresh")
    os.mkdir(fresh, 0o755)
    if writable:
        os.chown(fresh, offline_agent.uid, offline_agent.gid)
    offline_agent.configure(data_dir=os.path.join(fresh, "data"))
    result = subprocess.run(as_user(offline_agent.uid, offline_agent.gid,
                                    [sys.executable, "-c", LIBRARY_SCRIPT % KEY]),
                            env=offline_agent.env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    if writable:
        assert result.stdout.strip() == "('fresh-1', [])"
        pdq = os.path.join(fresh, "data", "outqueue", "pdq")
        assert [name.split("_", 1)[1] for name in os.listdir(pdq)] == [f"{KEY}.txt"]
    else:
        assert result.stdout.strip() == ("SpoolError: cannot create the spool directory "
                                         f"{fresh}/data/outqueue: Permission denied")


# -- the log ---------------------------------------------------------------------------------

def test_the_log_rolls_over_past_its_size_and_keeps_its_backups(tmp_path):
    import logging

    from pdagent.daemon import _ReopenableLog
    handler = _ReopenableLog(str(tmp_path / "pdagentd.log"), maxBytes=1000, backupCount=2)
    logger = logging.getLogger("pdagent.test-rollover")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for number in range(100):
            logger.warning("line %03d %s", number, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert sorted(os.listdir(tmp_path)) == ["pdagentd.log", "pdagentd.log.1", "pdagentd.log.2"]
    assert all(os.path.getsize(tmp_path / name) <= 1000 + 60 for name in os.listdir(tmp_path))
    assert "line 099" in (tmp_path / "pdagentd.log").read_text()
