"""pd-queue as a real subprocess over spools built by hand: status, list, retry, discard, the lock.

check and metrics, against a running daemon: tests/test_pd_queue_check.py, tests/test_metrics.py.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import LIBFAKETIME, aged, as_user, assert_usage_error, routing_key
from helpers import command as installed_command

from pdagent.spool.queue import Spool

T0 = 1700000000  # 2023-11-14T22:13:20Z, in the past


@pytest.fixture
def home(offline_agent):
    return offline_agent


def trigger(key, dedup_key, summary):
    return {"endpoint": "alert",
            "event": {"routing_key": key, "event_action": "trigger", "dedup_key": dedup_key,
                      "payload": {"summary": summary, "source": "h", "severity": "error"}},
            "agent": {"agent_id": "a", "queued_by": "test", "queued_at": "2026-11-23T16:40:00.000Z"}}


def put(home, state, stamp_us, key, entry):
    """Write an event file by hand; returns its name."""
    name = f"{stamp_us}_{key}.txt"
    with open(home.path(state, name), "w" if not isinstance(entry, bytes) else "wb") as handle:
        handle.write(entry if isinstance(entry, (str, bytes)) else json.dumps(entry))
    return name


def put_reason(home, name, reason):
    errors = os.path.join(home.data_dir, "db", "errors")
    os.makedirs(errors, exist_ok=True)
    if os.geteuid() == 0:  # the daemon makes it: its user owns it
        os.chown(errors, home.uid, home.gid)
    with open(os.path.join(errors, name + ".json"), "w") as handle:
        json.dump({"reason": reason, "at": "2026-11-23T16:41:00Z"}, handle)


def snapshot(top):
    """Every path under `top` with its type, owner, mode, mtime and content."""
    state = {}
    for directory, subdirs, files in os.walk(top):
        for name in subdirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            content = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    content = handle.read()
            state[path] = (info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, info.st_size, content)
    return state


# -- status --------------------------------------------------------------------------------------

def test_status_table_is_the_original_agents_byte_for_byte(home):
    put(home, "pdq", T0 * 10**6, "key1", trigger("key1", "a", "one"))
    put(home, "pdq", T0 * 10**6 + 1, "key2", trigger("key2", "b", "two"))
    put(home, "err", T0 * 10**6 + 2, "key2", trigger("key2", "c", "three"))
    result = home.queue("status")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "Service Key                           Pending   Success  In Error\n"
        "=================================================================\n"
        "key1                                        1         0         0\n"
        "key2                                        1         0         1\n")


def test_status_table_counts_sorts_and_skips_junk(home):
    big = routing_key(7)
    for number in range(12):
        put(home, "pdq", T0 * 10**6 + number, big, trigger(big, str(number), "s"))
    for number in range(3):
        put(home, "suc", T0 * 10**6 + number, "zeta", trigger("zeta", str(number), "s"))
    put(home, "err", T0 * 10**6, "alpha", trigger("alpha", "x", "s"))
    put(home, "pdq", T0 * 10**6, "x_y", "{}")  # a key with an underscore
    for junk in ("README", "123_.txt", "abc_key.txt", "5_key.json", "6_key.txt.tmp"):
        with open(home.path("pdq", junk), "w") as handle:
            handle.write("{}")
    result = home.queue("status")
    assert result.returncode == 0, result.stderr
    expected = [
        "Service Key                           Pending   Success  In Error",
        "=================================================================",
        "R0utingKey0000000000000000000007           12         0         0",
        "alpha                                       0         0         1",
        "x_y                                         1         0         0",
        "zeta                                        0         3         0",
    ]
    assert all(len(line) == 65 for line in expected)  # the literal itself is well formed
    assert result.stdout == "\n".join(expected) + "\n"


def test_status_of_an_empty_spool_and_of_one_key(home):
    header = ("Service Key                           Pending   Success  In Error\n"
              "=================================================================\n")
    assert home.queue("status").stdout == "Nothing to report.\n"  # as the original agent says
    put(home, "pdq", T0 * 10**6, "key1", trigger("key1", "a", "one"))
    assert home.queue("status", "-k", "key2").stdout == "Nothing to report.\n"
    assert home.queue("status", "--json", "-k", "key2").stdout == (
        '{\n  "keys": {},\n  "agent": {\n    "delivered": 0,\n    "failed": 0,\n    "started_on": null\n  },\n'
        '  "queued_by": {\n    "pending": {},\n    "delivered": {}\n  }\n}\n')
    put(home, "err", T0 * 10**6, "key2", trigger("key2", "b", "two"))
    put(home, "err", T0 * 10**6 + 5, "key2", trigger("key2", "c", "two"))
    result = home.queue("status", "-k", "key2")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == header + "key2                                        0         0         2\n"
    assert home.queue("--help").returncode == 0


def test_status_json(home):
    now = time.time()
    key1, key2, key3 = routing_key(1), routing_key(2), routing_key(3)
    put(home, "pdq", int((now - 120) * 10**6), key1, trigger(key1, "a", "oldest"))
    put(home, "pdq", int((now - 60) * 10**6), key1, trigger(key1, "b", "newer"))
    put(home, "err", int((now - 30) * 10**6), key1, trigger(key1, "c", "bad"))
    put(home, "pdq", int((now - 10) * 10**6), key2, trigger(key2, "d", "x"))
    put(home, "suc", int((now - 500) * 10**6), key3, trigger(key3, "e", "done"))
    put(home, "suc", int((now - 400) * 10**6), key3, trigger(key3, "f", "done"))
    backoff_until = int(now) + 600
    with open(os.path.join(home.data_dir, "db", "state.json"), "w") as state_file:
        json.dump({"counters": {"delivered": 12, "failed": 1, "started_on": "2026-11-23T16:00:00Z"},
                   "keys": {key1: {"backoff_until": backoff_until, "backoffs": 2, "failures": 1,
                                   "reason": "HTTP 503"},
                            key2: {"backoff_until": now - 600, "backoffs": 1, "failures": 0}}},
                  state_file)
    result = home.queue("status", "--json", env=aged(home, 120))  # ages: since each entry came, not its name
    finished = time.time()
    assert (result.returncode, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    assert report["agent"] == {"delivered": 12, "failed": 1, "started_on": "2026-11-23T16:00:00Z"}
    keys = report["keys"]
    assert sorted(keys) == [key1, key2, key3]
    age1 = keys[key1].pop("oldest_pending_age_secs")
    assert 120 - 0.01 <= age1 <= finished - now + 120 + 0.02  # ctime: a kernel tick behind time.time() at most
    assert keys[key1] == {"pending": 2, "success": 0, "error": 1, "backed_off": True,
                          "backoff_until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(backoff_until))}
    age2 = keys[key2].pop("oldest_pending_age_secs")
    assert 120 - 0.01 <= age2 <= finished - now + 120 + 0.02
    assert keys[key2] == {"pending": 1, "success": 0, "error": 0, "backed_off": False,
                          "backoff_until": None}
    assert keys[key3] == {"pending": 0, "success": 2, "error": 0, "oldest_pending_age_secs": None,
                          "backed_off": False, "backoff_until": None}

    only = json.loads(home.queue("status", "--json", "-k", key2).stdout)
    assert list(only["keys"]) == [key2] and only["agent"]["delivered"] == 12


def test_status_json_without_a_state_file(home):
    report = json.loads(home.queue("status", "--json").stdout)
    assert report == {"keys": {}, "agent": {"delivered": 0, "failed": 0, "started_on": None},
                      "queued_by": {"pending": {}, "delivered": {}}}


def test_status_json_counts_pending_and_delivered_events_by_who_queued_them(home):
    origins = [f"tool-{number:02d}" for number in range(20)] + ["pd-listen"] * 3 + ["bad\x1b[31m"]
    for number, origin in enumerate(origins):
        entry = dict(trigger("key1", f"o{number}", "x"), agent={"queued_by": origin})
        put(home, "pdq", T0 * 10**6 + number, "key1", entry)
    put(home, "suc", T0 * 10**6, "key1", dict(trigger("key1", "s", "x"), agent=None))
    put(home, "suc", T0 * 10**6 + 1, "key1", dict(trigger("key1", "t", "x"), agent={"queued_by": "pd-listen"}))
    put(home, "err", T0 * 10**6, "key1", dict(trigger("key1", "e", "x"), agent={"queued_by": "pd-listen"}))
    by_origin = json.loads(home.queue("status", "--json").stdout)["queued_by"]
    pending = by_origin["pending"]
    assert len(pending) == 16 and pending["pd-listen"] == 3 and sum(pending.values()) == len(origins)
    assert "other" in pending and "bad\x1b[31m" not in pending
    assert by_origin["delivered"] == {"pd-listen": 1, "unknown": 1}  # err/ is not counted


# -- retry ---------------------------------------------------------------------------------------

def test_retry_one_key_then_all(home):
    key1, key2 = routing_key(1), routing_key(2)
    bodies = {}
    for number, key in enumerate([key1, key1, key2]):
        entry = trigger(key, f"d{number}", f"event {number}")
        name = put(home, "err", T0 * 10**6 + number, key, entry)
        put_reason(home, name, f"HTTP 400 number {number}")
        bodies[name] = entry
    key1_names = sorted(n for n in bodies if key1 in n)
    key2_names = [n for n in bodies if key2 in n]
    errors_dir = os.path.join(home.data_dir, "db", "errors")

    result = home.queue("retry", "-k", key1)
    assert (result.returncode, result.stdout, result.stderr) == (0, "2 event(s) set up for retry.\n", "")
    assert home.names("pdq") == key1_names
    assert home.names("err") == key2_names
    for name in key1_names:
        assert home.read("pdq", name) == bodies[name]
    assert sorted(os.listdir(errors_dir)) == [key2_names[0] + ".json"]

    result = home.queue("retry", "-a")
    assert (result.returncode, result.stdout) == (0, "1 event(s) set up for retry.\n")
    assert home.names("pdq") == sorted(bodies) and home.names("err") == []
    assert os.listdir(errors_dir) == []

    result = home.queue("retry", "--all-keys")
    assert (result.returncode, result.stdout) == (0, "0 event(s) set up for retry.\n")


@pytest.mark.parametrize("command", ["retry", "discard"])
@pytest.mark.parametrize("flags", [[], ["-a", "-k", "key1"]], ids=["neither", "both"])
def test_retry_and_discard_need_exactly_one_of_k_and_a(home, command, flags):
    name = put(home, "err", T0 * 10**6, "key1", trigger("key1", "a", "x"))
    result = home.queue(command, *flags)
    line = assert_usage_error(result, "pd-queue", "give either -k SERVICE_KEY or -a, not both or neither")
    # The sub-command's own name and help, not pd-queue's.
    assert line.startswith(f"pd-queue {command}: error: ")
    assert result.stderr.endswith(f"Try 'pd-queue {command} --help' for more information.\n")
    assert home.names("err") == [name] and home.names("pdq") == []


@pytest.mark.parametrize("argv, phrase", [
    ([], "required"), (["explode"], "invalid choice"), (["status", "--bogus"], "unrecognized"),
    (["list", "--state", "lost"], "invalid choice"),
])
def test_usage_errors(home, argv, phrase):
    assert_usage_error(home.queue(*argv), "pd-queue", phrase)


def test_retry_of_a_key_leaves_keys_ending_with_it_alone(home):
    other = put(home, "err", T0 * 10**6, "a_b", trigger("a_b", "x", "x"))
    mine = put(home, "err", T0 * 10**6 + 1, "b", trigger("b", "y", "y"))
    assert home.queue("retry", "-k", "b").stdout == "1 event(s) set up for retry.\n"
    assert home.names("pdq") == [mine] and home.names("err") == [other]


# -- discard -------------------------------------------------------------------------------------

def test_discard_one_key_then_all_with_their_reasons(home):
    """err/ events and their db/errors/ reasons go; pending and delivered ones, and keys
    ending like the one named, stay."""
    key1, key2 = routing_key(1), routing_key(2)
    rejected = {}
    for number, key in enumerate([key1, key1, key2, "x_" + key1]):
        name = put(home, "err", T0 * 10**6 + number, key, trigger(key, f"d{number}", f"event {number}"))
        put_reason(home, name, f"HTTP 400 number {number}")
        rejected[name] = key
    pending = put(home, "pdq", T0 * 10**6 + 9, key1, trigger(key1, "p", "pending"))
    delivered = put(home, "suc", T0 * 10**6 + 9, key1, trigger(key1, "s", "delivered"))
    errors_dir = os.path.join(home.data_dir, "db", "errors")

    result = home.queue("discard", "-k", key1)
    assert (result.returncode, result.stdout, result.stderr) == (0, "2 event(s) discarded.\n", "")
    left = sorted(name for name, key in rejected.items() if key != key1)
    assert home.names("err") == left
    assert sorted(os.listdir(errors_dir)) == [name + ".json" for name in left]
    assert home.names("pdq") == [pending] and home.names("suc") == [delivered]

    result = home.queue("discard", "--all-keys")
    assert (result.returncode, result.stdout) == (0, "2 event(s) discarded.\n")
    assert home.names("err") == [] and os.listdir(errors_dir) == []
    assert home.names("pdq") == [pending] and home.names("suc") == [delivered]
    assert home.queue("discard", "-a").stdout == "0 event(s) discarded.\n"
    assert home.queue("retry", "-a").stdout == "0 event(s) set up for retry.\n"  # nothing to send


def test_discard_as_root_acts_as_the_spool_owner(home):
    """Root becomes the data directory's owner first, as retry does: where that user may
    not delete (err/ made read-only for it), nothing goes, and the reason is one line."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = put(home, "err", T0 * 10**6, "key1", trigger("key1", "a", "x"))
    os.chmod(home.path("err"), 0o550)
    assert_usage_error(home.queue("discard", "-a"), "pd-queue", "Permission denied")
    assert home.names("err") == [name]
    os.chmod(home.path("err"), 0o2750)
    assert home.queue("discard", "-a").stdout == "1 event(s) discarded.\n"


@pytest.mark.parametrize("command, done", [("retry", "set up for retry"), ("discard", "discarded")])
def test_retry_and_discard_wait_for_the_lock_and_a_killed_holder_leaves_none_behind(home, command, done):
    put(home, "err", T0 * 10**6, "key1", trigger("key1", "a", "x"))
    holder_code = ("import sys, time\nfrom pdagent.spool.queue import Spool\n"
                   "lock = Spool(sys.argv[1], sys.argv[2]).lock()\nlock.__enter__()\n"
                   "print('locked', flush=True)\ntime.sleep(60)\n")
    pd_queue = installed_command("pd-queue")
    holder = subprocess.Popen([sys.executable, "-c", holder_code, home.outqueue,
                               os.path.join(home.data_dir, "db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        waiting = subprocess.Popen(pd_queue + [command, "-a"], env=home.env(),
                                   stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert waiting.poll() is None  # blocked on the lock
        assert home.names("err") != []
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        output, _ = waiting.communicate(timeout=10)
        assert (waiting.returncode, output) == (0, f"1 event(s) {done}.\n")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()
    assert home.names("err") == [] and len(home.names("pdq")) == (command == "retry")
    # No stale lock: the next one does not wait.
    started = time.monotonic()
    assert home.queue(command, "-a").returncode == 0
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("command", ["retry", "discard"])
def test_retry_and_discard_give_up_on_a_lock_that_is_never_let_go(home, command):
    """The daemon's account may hold db/queue.lock for good (stuck, hostile, or a suspended
    pd-queue): the operator's command ends with one line after its wait, nothing changed.
    The wait (30 s) passes a hundred times faster under libfaketime."""
    name = put(home, "err", T0 * 10**6, "key1", trigger("key1", "a", "x"))
    holder_code = ("import sys, time\nfrom pdagent.spool.queue import Spool\n"
                   "lock = Spool(sys.argv[1], sys.argv[2]).lock()\nassert lock.try_acquire()\n"
                   "print('locked', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", holder_code, home.outqueue,
                               os.path.join(home.data_dir, "db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        result = home.queue(command, "-a", env=home.env(LD_PRELOAD=LIBFAKETIME, FAKETIME="+0 x100"),
                            timeout=20)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert_usage_error(result, "pd-queue", "queue.lock was held by another process for 30 s")
    assert "nothing was changed" in result.stderr
    assert home.names("err") == [name] and home.names("pdq") == []


# -- list ----------------------------------------------------------------------------------------

def test_list_pending_one_line_per_event(home):
    key1, key2 = routing_key(1), routing_key(2)
    put(home, "pdq", T0 * 10**6, key1, trigger(key1, "disk-1", "Disk full on web01"))
    put(home, "pdq", (T0 + 61) * 10**6, key2,
        {"endpoint": "change", "event": {"routing_key": key2, "payload": {"summary": "Deployed\nv2"}},
         "agent": {}})
    put(home, "pdq", (T0 + 3600) * 10**6, key1,
        {"service_key": key1, "event_type": "resolve", "incident_key": "inc-9", "description": None,
         "details": {}, "agent": {"queued_by": "pd-send"}})  # written by the original agent
    put(home, "pdq", (T0 + 7200) * 10**6, key1, b"\x00junk")
    result = home.queue("list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"2023-11-14T22:13:20Z  {key1}  trigger  disk-1  Disk full on web01",
        f"2023-11-14T22:14:21Z  {key2}  change  -  Deployed v2",
        f"2023-11-14T23:13:20Z  {key1}  resolve  inc-9  ",
        f"2023-11-15T00:13:20Z  {key1}  ?  -  (unreadable: not valid JSON)",
    ]
    keyed = home.queue("list", "-k", key2, "--state", "pending")
    assert keyed.stdout == f"2023-11-14T22:14:21Z  {key2}  change  -  Deployed v2\n"


def test_list_errors_with_the_recorded_reason(home):
    key = routing_key(1)
    spool = Spool(home.outqueue, os.path.join(home.data_dir, "db"))
    with open(home.path("pdq", f"{T0 * 10**6}_{key}.txt"), "w") as handle:
        json.dump(trigger(key, "bad-1", "Rejected one"), handle)
    with spool.lock():
        name = f"{T0 * 10**6}_{key}.txt"
        spool.move_pending(name, spool.regular_file_inode(name), "err", {"reason": "HTTP 400: Event object is invalid"})
    put(home, "err", (T0 + 1) * 10**6, key, trigger(key, "bad-2", "No reason"))
    put(home, "pdq", (T0 + 2) * 10**6, key, trigger(key, "ok", "Pending one"))
    result = home.queue("list", "--state", "error")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"2023-11-14T22:13:20Z  {key}  trigger  bad-1  Rejected one  [error: HTTP 400: Event object is invalid]\n"
        f"2023-11-14T22:13:21Z  {key}  trigger  bad-2  No reason  [error: no reason recorded]\n")


def test_list_success(home):
    key = routing_key(3)
    put(home, "suc", T0 * 10**6, key, trigger(key, "done-1", "Delivered"))
    put(home, "pdq", T0 * 10**6, key, trigger(key, "p", "Pending"))
    result = home.queue("list", "--state", "success")
    assert result.stdout == f"2023-11-14T22:13:20Z  {key}  trigger  done-1  Delivered\n"
    assert home.queue("list", "--state", "error").stdout == ""


# -- status and list are read-only ------------------------------------------------------------------

def build_known_spool(home):
    key1, key2 = routing_key(1), routing_key(2)
    put(home, "pdq", T0 * 10**6, key1, trigger(key1, "a", "pending"))
    name = put(home, "err", (T0 + 1) * 10**6, key2, trigger(key2, "b", "failed"))
    put_reason(home, name, "HTTP 400: bad")
    put(home, "suc", (T0 + 2) * 10**6, key1, trigger(key1, "c", "delivered"))
    with open(os.path.join(home.data_dir, "db", "state.json"), "w") as state_file:
        json.dump({"counters": {"delivered": 1, "failed": 1, "started_on": None}, "keys": {}}, state_file)


READ_ONLY_COMMANDS = [["status"], ["status", "-k", routing_key(1)], ["status", "--json"],
                      ["list"], ["list", "--state", "error"], ["list", "--state", "success"],
                      ["list", "-k", routing_key(2), "--state", "error"]]


def test_status_and_list_write_nothing(home):
    build_known_spool(home)
    before = snapshot(home.base)
    time.sleep(0.01)
    for argv in READ_ONLY_COMMANDS:
        result = home.queue(*argv)
        assert result.returncode == 0 and result.stdout and result.stderr == "", (argv, result.stderr)
    assert snapshot(home.base) == before


def test_status_and_list_need_no_write_access(home, other_user):
    build_known_spool(home)
    expected = {tuple(argv): home.queue(*argv).stdout for argv in READ_ONLY_COMMANDS}
    # A copy of the spool that the other user can read but not write.
    copy_base = os.path.join(home.base, "readonly")
    shutil.copytree(home.data_dir, os.path.join(copy_base, "data"))
    for directory, subdirs, files in os.walk(copy_base):
        os.chown(directory, 0, 0)
        os.chmod(directory, 0o755)
        for name in files:
            os.chown(os.path.join(directory, name), 0, 0)
            os.chmod(os.path.join(directory, name), 0o644)
    os.chmod(copy_base, 0o755)
    config_path = os.path.join(copy_base, "pdagent.conf")
    with open(config_path, "w") as config_file:
        config_file.write(f"[Main]\ndata_dir = {copy_base}/data\nlog_dir = {copy_base}\n"
                          f"pid_dir = {copy_base}\n")
    os.chmod(config_path, 0o644)
    probe = subprocess.run(as_user(*other_user, ["touch", f"{copy_base}/data/outqueue/pdq/probe"]),
                           capture_output=True, check=False)
    assert probe.returncode != 0  # the user really cannot write there
    before = snapshot(copy_base)
    time.sleep(0.01)
    env = home.env(PDAGENT_CONFIG=config_path)
    for argv in READ_ONLY_COMMANDS:
        result = home.queue(*argv, user=other_user, env=env)
        assert (result.returncode, result.stderr) == (0, ""), argv
        if argv == ["status", "--json"]:  # the same but for the ages, which grow
            report, original = json.loads(result.stdout), json.loads(expected[tuple(argv)])
            for per_key in list(report["keys"].values()) + list(original["keys"].values()):
                per_key.pop("oldest_pending_age_secs")
            assert report == original
        else:
            assert result.stdout == expected[tuple(argv)], argv
    assert snapshot(copy_base) == before
    # retry does need write access, and says so in one line.
    result = home.queue("retry", "-a", user=other_user, env=env)
    assert_usage_error(result, "pd-queue", "Permission denied")
    assert snapshot(copy_base) == before


@pytest.mark.parametrize("argv", [["status"], ["list"], ["list", "--state", "error"]])
def test_an_outsider_cannot_look_into_the_spool(home, other_user, argv):
    build_known_spool(home)
    assert_usage_error(home.queue(*argv, user=other_user), "pd-queue", "Permission denied")


def test_an_outsider_cannot_see_the_json_status_either(home, other_user):
    build_known_spool(home)
    result = home.queue("status", "--json", user=other_user)
    # (Before the error, state.py logs a bare "ignoring unreadable state.json" line.)
    assert (result.returncode, result.stdout) == (2, "")
    assert "Traceback" not in result.stderr
    error, help_line = result.stderr.splitlines()[-2:]
    assert error.startswith("pd-queue: error: ") and "Permission denied" in error
    assert help_line == "Try 'pd-queue --help' for more information."


def test_status_of_a_spool_that_does_not_exist_yet(home):
    shutil.rmtree(home.outqueue)
    result = home.queue("status")
    assert (result.returncode, result.stdout) == (0, "Nothing to report.\n")
    assert not os.path.exists(home.outqueue)  # looking creates nothing
