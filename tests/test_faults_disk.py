"""Disk trouble: a full spool, directories the daemon cannot write, a read-only spool.

pd-send must fail with one clear line and a non-zero exit and leave no partial
file; the daemon must keep running and lose nothing, and deliver everything
once the disk is fixed. The spool lives on a small tmpfs (skipped where
mounting is not permitted), always unmounted afterwards.
"""

import json
import os

import helpers
from helpers import routing_key, wait_for

KEY = routing_key(700)


def _error_lines(result, command="pd-send"):
    return [line for line in result.stderr.splitlines() if line.startswith(f"{command}: error:")]


def _assert_clean_failure(result, command, reason):
    """Non-zero exit, exactly one error line naming `reason`, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = _error_lines(result, command)
    assert len(lines) == 1 and reason in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def _assert_spool_whole(agent):
    """Nothing half-written anywhere: tmp/ is empty and every pdq/ file is a whole entry."""
    assert agent.names("tmp") == []
    for name in agent.names("pdq"):
        helpers.check_entry_file(agent.path("pdq", name))


def test_spool_full(agent, standin):
    with helpers.tmpfs_data_dir(agent, size="1m"):
        standin.set_faults([{"status": 503, "times": -1}])  # keep them queued while the disk fills
        pid = helpers.start_daemon(agent)
        queued = [helpers.send(agent, KEY, f"before-{number}") for number in range(3)]
        filler = helpers.fill_up(agent.outqueue)

        result = agent.send("-k", KEY, "-t", "trigger", "-d", "disk full", "-i", "full-1")
        _assert_clean_failure(result, "pd-send", "No space left on device")
        _assert_spool_whole(agent)
        assert sorted(agent.names("pdq")) == sorted(queued)

        # The daemon keeps going on a full disk: moving to suc/ is a rename.
        standin.set_faults([])
        wait_for(lambda: sorted(agent.names("suc")) == sorted(queued), timeout=15,
                 message="the queued events delivered on a full disk")
        assert helpers.daemon_alive(agent) and agent.daemon.pid == pid

        os.unlink(filler)
        queued.append(helpers.send(agent, KEY, "after"))
        wait_for(lambda: sorted(agent.names("suc")) == sorted(queued), message="delivery after")
        assert sorted(helpers.dedup_keys_received(standin)) == ["after", "before-0", "before-1", "before-2"]


def test_spool_nearly_full_big_event(agent, standin):
    """A 300 KB event that does not fit: refused, and no partial file stays behind."""
    with helpers.tmpfs_data_dir(agent, size="1m"):
        filler = helpers.fill_up(agent.outqueue)
        os.truncate(filler, os.path.getsize(filler) - 128 * 1024)  # leave ~128 KB
        event = os.path.join(agent.base, "big.json")
        body = helpers.alert_body(KEY, 0, tag="big")
        body["payload"]["custom_details"] = {"blob": "x" * 300_000}
        with open(event, "w") as event_file:
            json.dump(body, event_file)
        result = agent.send("--event-file", event)
        _assert_clean_failure(result, "pd-send", "No space left on device")
        _assert_spool_whole(agent)
        assert agent.names("pdq") == []
        assert helpers.send(agent, KEY, "small")  # a small one still fits


def test_spool_out_of_inodes(agent, standin):
    with helpers.tmpfs_data_dir(agent, size="4m", nr_inodes=64):
        helpers.start_daemon(agent)
        holder = helpers.use_up_inodes(agent.outqueue)
        result = agent.send("-k", KEY, "-t", "trigger", "-d", "no inodes", "-i", "inodes-1")
        _assert_clean_failure(result, "pd-send", "No space left on device")
        _assert_spool_whole(agent)
        assert helpers.daemon_alive(agent)
        for name in os.listdir(holder):
            os.unlink(os.path.join(holder, name))
        name = helpers.send(agent, KEY, "inodes-2")
        wait_for(lambda: helpers.where(agent, name) == "suc", message="delivery once inodes are free")


def test_suc_not_writable(agent, standin):
    """Delivered but cannot be moved to suc/: it stays queued (sent again later), never lost."""
    pid = helpers.start_daemon(agent)
    os.chmod(agent.path("suc"), 0o2550)
    try:
        name = helpers.send(agent, KEY, "stuck")
        wait_for(lambda: "cannot move" in agent.log_text() and len(helpers.attempts(standin, "stuck")) >= 2,
                 timeout=15, message="two deliveries that could not be moved")
        assert helpers.where(agent, name) == "pdq" and agent.names("err") == []
        assert len(helpers.attempts(standin, "stuck")) <= 4, "backed off, not spinning"
    finally:
        os.chmod(agent.path("suc"), 0o2750)
    wait_for(lambda: helpers.where(agent, name) == "suc", message="the move once suc/ is writable")
    bodies = [body for body in standin.bodies() if body["dedup_key"] == "stuck"]
    assert len(bodies) >= 2 and all(body == bodies[0] for body in bodies)  # same dedup key
    assert helpers.daemon_alive(agent) and agent.daemon.pid == pid


def test_state_not_writable(agent, standin):
    """db/ not writable: counters and error reasons cannot be saved; nothing is lost meanwhile."""
    db_dir = os.path.join(agent.data_dir, "db")
    standin.set_faults([{"match": {"dedup_key": "refused"}, "status": 400, "times": -1}])
    pid = helpers.start_daemon(agent)
    lock_file = os.path.join(db_dir, "queue.lock")
    wait_for(lambda: os.path.exists(lock_file), message="the daemon's first use of the queue lock")
    os.chmod(db_dir, 0o550)
    try:
        good = helpers.send(agent, KEY, "good")
        refused = helpers.send(agent, routing_key(701), "refused")
        wait_for(lambda: helpers.where(agent, good) == "suc", message="delivery with db/ read-only")
        wait_for(lambda: "cannot save" in agent.log_text() and "cannot move" in agent.log_text(),
                 timeout=15, message="the daemon to say what it cannot write")
        assert helpers.where(agent, refused) == "pdq", "a rejection it cannot record stays queued"
        assert helpers.daemon_alive(agent)
    finally:
        os.chmod(db_dir, 0o750)
    wait_for(lambda: helpers.where(agent, refused) == "err", timeout=15,
             message="the rejection recorded once db/ is writable")
    assert "HTTP 400" in agent.queue("list", "--state", "error").stdout
    assert agent.daemon.pid == pid


def test_state_not_writable_and_queue_lock_gone(agent, standin):
    """db/ not writable and its lock file gone: delivery goes on without the lock, said once in the log."""
    db_dir = os.path.join(agent.data_dir, "db")
    pid = helpers.start_daemon(agent)
    lock_file = os.path.join(db_dir, "queue.lock")
    wait_for(lambda: os.path.exists(lock_file), message="the daemon's first use of the queue lock")
    os.unlink(lock_file)
    os.chmod(db_dir, 0o550)
    try:
        names = [helpers.send(agent, KEY, f"nolock-{number}") for number in range(6)]
        wait_for(lambda: all(helpers.where(agent, name) == "suc" for name in names), timeout=10,
                 message="everything delivered without the lock")
        assert helpers.daemon_alive(agent)
        assert agent.log_text().count("delivering without it") == 1
    finally:
        os.chmod(db_dir, 0o750)
    assert agent.daemon.pid == pid


def test_state_not_writable_at_start(agent, standin):
    os.chmod(os.path.join(agent.data_dir, "db"), 0o550)
    result = agent.run("pdagentd", "-f", user=(agent.uid, agent.gid), timeout=20)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "db" in lines[0] and "not writable" in lines[0], result.stderr


def test_read_only_spool(agent, standin):
    with helpers.tmpfs_data_dir(agent, size="1m") as data_dir:
        standin.set_faults([{"match": {"dedup_key": "refused"}, "status": 400, "times": 1},
                            {"match": {"dedup_key": "held"}, "status": 503, "times": -1}])
        pid = helpers.start_daemon(agent)
        refused = helpers.send(agent, KEY, "refused")
        held = helpers.send(agent, routing_key(701), "held")
        wait_for(lambda: helpers.where(agent, refused) == "err", message="refused into err/")

        helpers.remount(data_dir, "ro")
        try:
            result = agent.send("-k", KEY, "-t", "trigger", "-d", "read-only", "-i", "ro-1")
            _assert_clean_failure(result, "pd-send", "Read-only file system")
            result = agent.queue("retry", "-a")
            _assert_clean_failure(result, "pd-queue", "Read-only file system")
            assert agent.queue("status").returncode == 0  # looking still works
            # The daemon cannot move the event it delivers; it keeps it and keeps running.
            standin.set_faults([])
            wait_for(lambda: "Read-only file system" in agent.log_text(), timeout=15,
                     message="the daemon to log the read-only spool")
            assert helpers.where(agent, held) == "pdq" and helpers.daemon_alive(agent)
        finally:
            helpers.remount(data_dir, "rw")

        wait_for(lambda: helpers.where(agent, held) == "suc", timeout=15, message="held delivered")
        assert agent.queue("retry", "-a").returncode == 0
        wait_for(lambda: helpers.where(agent, refused) == "suc", message="the retried one delivered")
        assert agent.daemon.pid == pid
