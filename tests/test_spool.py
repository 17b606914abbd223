"""Unit tests of pdagent.spool on real directories: the write protocol, reading, moving, cleanup."""

import errno
import json
import os
import threading
import time

import pytest

from pdagent.event import EventError
from pdagent.spool import writer as spool_writer
from pdagent.spool.files import SpoolError
from pdagent.spool.names import event_file_name, parse_file_name
from pdagent.spool.queue import (
    MAX_ENTRY_BYTES,
    MOVED,
    NAME_GONE,
    NAME_REPLACED,
    STALE_TMP_SECS,
    Spool,
)

KEY = "R0utingKey0000000000000000000001"
OTHER = "R0utingKey0000000000000000000002"
NOW = 1795452000.123456  # 2026-11-23T16:40:00.123456Z


@pytest.fixture
def spool(tmp_path):
    queue = Spool(str(tmp_path / "outqueue"))
    queue.create_dirs()
    return queue


def listing(spool, state):
    return sorted(os.listdir(os.path.join(spool.outqueue_dir, state)))


def entry_bytes(number=0, key=KEY):
    return json.dumps({"endpoint": "alert",
                       "event": {"routing_key": key, "event_action": "trigger",
                                 "payload": {"summary": f"event {number}", "source": "h",
                                             "severity": "error"}},
                       "agent": {"agent_id": None, "queued_by": "test",
                                 "queued_at": "2026-11-23T16:40:00.000Z"}}).encode()


def put(spool, state, name, data=b"{}"):
    with open(spool.path(state, name), "wb") as handle:
        handle.write(data)


# -- names ---------------------------------------------------------------------------------------

def test_layout_is_the_original_agents(spool, tmp_path):
    assert sorted(os.listdir(tmp_path / "outqueue")) == ["err", "pdq", "suc", "tmp"]
    assert spool.db_dir == str(tmp_path / "db")
    assert spool.errors_dir == str(tmp_path / "db" / "errors")


def test_file_name_round_trip():
    name = event_file_name(1795452000123456, KEY)
    assert name == f"1795452000123456_{KEY}.txt"
    assert parse_file_name(name) == (1795452000123456, KEY)
    assert parse_file_name("12_a_b.txt") == (12, "a_b")


@pytest.mark.parametrize("name", [
    "abc.txt", "_key.txt", "123_.txt", "123_key.json", "123_key.txt.tmp", "12a_key.txt",
    "123key.txt", "-12_key.txt", ".123_key.txt", "", "123_key", " 12_key.txt",
])
def test_parse_file_name_ignores_junk(name):
    assert parse_file_name(name) is None


def test_names_skip_junk_and_sort_in_queue_order(spool):
    wanted = [event_file_name(stamp, key) for stamp, key in
              [(1795452000000009, KEY), (1795452000000010, OTHER), (1795452000000002, KEY)]]
    for name in wanted + ["junk", "123_key.json", ".hidden_x.txt", "x_y.txt", "99_.txt"]:
        put(spool, "pdq", name)
    os.mkdir(spool.path("pdq", "subdir"))
    assert spool.names("pdq") == sorted(wanted)
    assert [parse_file_name(n)[0] for n in spool.names("pdq")] == [
        1795452000000002, 1795452000000009, 1795452000000010]
    assert spool.names("pdq", KEY) == [event_file_name(1795452000000002, KEY),
                                       event_file_name(1795452000000009, KEY)]
    assert spool.names("suc") == []


def test_names_of_missing_state_dir_is_empty(tmp_path):
    assert Spool(str(tmp_path / "nowhere")).names("pdq") == []


def test_names_of_a_key_exclude_keys_that_end_with_it(spool):
    put(spool, "err", event_file_name(1, "a_b"))
    put(spool, "err", event_file_name(2, "b"))
    assert spool.names("err", "b") == [event_file_name(2, "b")]


def test_counts_by_key(spool):
    for stamp in (1, 2, 3):
        put(spool, "pdq", event_file_name(stamp, KEY))
    put(spool, "suc", event_file_name(4, KEY))
    put(spool, "err", event_file_name(5, OTHER))
    put(spool, "err", "junk.txt")
    assert spool.counts_by_key() == {KEY: {"pdq": 3, "suc": 1, "err": 0},
                                     OTHER: {"pdq": 0, "suc": 0, "err": 1}}
    assert spool.counts_by_key(OTHER) == {OTHER: {"pdq": 0, "suc": 0, "err": 1}}


# -- enqueue -------------------------------------------------------------------------------------

def test_enqueue_writes_one_complete_file_and_leaves_no_tmp(spool):
    data = entry_bytes()
    name = spool.enqueue(KEY, data, now=NOW)
    assert name == f"1795452000123456_{KEY}.txt"
    assert listing(spool, "pdq") == [name]
    assert listing(spool, "tmp") == []
    with open(spool.path("pdq", name), "rb") as handle:
        assert handle.read() == data
    assert spool.read_entry("pdq", name) == json.loads(data)
    info = os.stat(spool.path("pdq", name))
    assert info.st_nlink == 1  # the tmp/ link is gone
    assert info.st_mode & 0o7777 == 0o640


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o777])
def test_enqueue_mode_is_0640_whatever_the_umask(spool, umask):
    old = os.umask(umask)
    try:
        name = spool.enqueue(KEY, b"{}")
    finally:
        os.umask(old)
    assert os.stat(spool.path("pdq", name)).st_mode & 0o7777 == 0o640


def test_enqueue_uses_the_current_time(spool):
    before = int(time.time() * 1_000_000)
    name = spool.enqueue(KEY, b"{}")
    after = int(time.time() * 1_000_000)
    assert before <= parse_file_name(name)[0] <= after


@pytest.mark.parametrize("key", ["", "a/b", "a b", "../x", "k" * 201])
def test_enqueue_refuses_unsafe_routing_keys(spool, key):
    with pytest.raises(EventError):
        spool.enqueue(key, b"{}")
    assert listing(spool, "pdq") == [] and listing(spool, "tmp") == []


def test_same_microsecond_twice_in_process(spool):
    first = spool.enqueue(KEY, b'{"n":1}', now=NOW)
    second = spool.enqueue(KEY, b'{"n":2}', now=NOW)
    third = spool.enqueue(OTHER, b'{"n":3}', now=NOW)
    assert first != second
    assert parse_file_name(second)[0] == parse_file_name(first)[0] + 1
    assert parse_file_name(third) == (1795452000123456, OTHER)
    assert spool.read_entry("pdq", first) == {"n": 1}
    assert spool.read_entry("pdq", second) == {"n": 2}
    assert spool.read_entry("pdq", third) == {"n": 3}
    assert listing(spool, "tmp") == []


def test_same_microsecond_from_threads(spool):
    threads_count, rounds = 4, 40
    barrier = threading.Barrier(threads_count)
    written, failures = {}, []

    def writer(number):
        try:
            for round_number in range(rounds):
                data = json.dumps({"writer": number, "round": round_number}).encode()
                barrier.wait()
                name = spool.enqueue(KEY, data, now=NOW + round_number)
                written[(number, round_number)] = name
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(repr(error))
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(written) == threads_count * rounds
    assert len(set(written.values())) == threads_count * rounds
    assert sorted(written.values()) == listing(spool, "pdq")
    for (number, round_number), name in written.items():
        assert spool.read_entry("pdq", name) == {"writer": number, "round": round_number}
        assert parse_file_name(name)[0] - int((NOW + round_number) * 1_000_000) in range(threads_count)
    assert listing(spool, "tmp") == []


@pytest.fixture
def failing(monkeypatch):
    """Make os.<function> raise ENOSPC on its n-th call (1-based) from now on."""
    def install(function_name, on_call=1):
        real = getattr(os, function_name)
        calls = []

        def fake(*args, **kwargs):
            calls.append(args)
            if len(calls) == on_call:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kwargs)
        monkeypatch.setattr(os, function_name, fake)
        return calls
    return install


@pytest.mark.parametrize("function_name", ["fsync", "link", "fchmod"])
def test_failure_mid_write_leaves_nothing(spool, failing, function_name):
    calls = failing(function_name)
    with pytest.raises(SpoolError, match="No space left on device"):
        spool.enqueue(KEY, entry_bytes())
    assert calls, f"os.{function_name} was never called"
    assert listing(spool, "pdq") == []
    assert listing(spool, "tmp") == []


def test_failure_while_writing_the_data_leaves_nothing(spool, monkeypatch):
    def full_disk(fd, data):
        os.write(fd, data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(spool_writer, "write_all", full_disk)
    with pytest.raises(SpoolError):
        spool.enqueue(KEY, entry_bytes())
    assert listing(spool, "pdq") == [] and listing(spool, "tmp") == []


def test_a_missing_spool_is_created_as_pd_send_does(tmp_path):
    queue = Spool(str(tmp_path / "data" / "outqueue"))
    name = queue.enqueue(KEY, entry_bytes())
    assert listing(queue, "pdq") == [name]
    assert sorted(os.listdir(queue.outqueue_dir)) == ["err", "pdq", "suc", "tmp"]
    os.rmdir(queue.tmp_dir)  # tmp/ alone removed by hand
    assert queue.enqueue(KEY, entry_bytes(1)) in listing(queue, "pdq")


def test_failure_to_fsync_after_the_link_still_queues_the_event_once(spool, failing):
    """The data was fsynced before the link: a failing fsync of the new name is not the event's."""
    calls = failing("fsync", on_call=2)
    name = spool.enqueue(KEY, entry_bytes())
    assert len(calls) >= 2
    assert listing(spool, "pdq") == [name]
    assert listing(spool, "tmp") == []


def record_writes(monkeypatch, pdq_dir):
    """The fsyncs and links from now on, in order: ("data", inode) for a file's fsync before any
    link of it, ("name", inode) after, ("folder",) for pdq/, ("link", inode) for a link into pdq/."""
    operations, linked = [], set()
    real_fsync, real_link = os.fsync, os.link
    pdq_inode = os.stat(pdq_dir).st_ino

    def fsync(fd):
        inode = os.fstat(fd).st_ino
        if inode == pdq_inode:
            operations.append(("folder",))
        else:
            operations.append(("name" if inode in linked else "data", inode))
        return real_fsync(fd)

    def link(source, target):
        real_link(source, target)
        inode = os.stat(target).st_ino
        linked.add(inode)
        operations.append(("link", inode))
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    return operations


def assert_each_data_durable_before_its_name(operations):
    links = [position for position, operation in enumerate(operations) if operation[0] == "link"]
    for position in links:
        inode = operations[position][1]
        assert ("data", inode) in operations[:position], f"entry {inode} was linked before its data was fsynced"
    return links[-1]


def test_entries_written_together_are_durable_data_first_and_share_one_fsync_of_pdq(spool, monkeypatch):
    operations = record_writes(monkeypatch, spool.folder("pdq"))
    names = spool.enqueue_many([(KEY, entry_bytes(number)) for number in range(4)])
    assert listing(spool, "pdq") == sorted(names) and listing(spool, "tmp") == []
    last_link = assert_each_data_durable_before_its_name(operations)
    assert operations[last_link + 1:] == [("folder",)]  # every new name at once, where pdq/ may be opened


def test_a_writer_who_may_not_open_pdq_makes_each_new_name_durable_by_its_file(spool, monkeypatch):
    operations = record_writes(monkeypatch, spool.folder("pdq"))
    monkeypatch.setattr(spool_writer, "fsync_directory", lambda path: False)  # pdq/ is -wx for others
    spool.enqueue_many([(KEY, entry_bytes(number)) for number in range(3)])
    last_link = assert_each_data_durable_before_its_name(operations)
    linked = [operation[1] for operation in operations if operation[0] == "link"]
    assert operations[last_link + 1:] == [("name", inode) for inode in linked]


def test_an_entry_that_cannot_be_queued_keeps_only_itself_out_of_the_batch(spool, failing):
    calls = failing("fchmod", on_call=2)  # the third entry's write fails (the second never gets that far)
    outcomes = spool.enqueue_many([(KEY, entry_bytes(0)), ("bad/key", entry_bytes(1)),
                                   (OTHER, entry_bytes(2)), (OTHER, entry_bytes(3))])
    assert len(calls) == 3  # the fourth entry was written all the same
    assert isinstance(outcomes[1], EventError)
    assert isinstance(outcomes[2], SpoolError) and "No space left on device" in str(outcomes[2])
    queued = [outcomes[0], outcomes[3]]
    assert listing(spool, "pdq") == sorted(queued) and listing(spool, "tmp") == []
    assert [spool.read_entry("pdq", name)["event"]["payload"]["summary"] for name in queued] == ["event 0",
                                                                                               "event 3"]


# -- read_entry ----------------------------------------------------------------------------------

def test_read_entry_of_a_symlink_is_not_followed(spool, tmp_path):
    target = tmp_path / "secret.json"
    target.write_text('{"secret": true}')
    name = event_file_name(1, KEY)
    os.symlink(target, spool.path("pdq", name))
    with pytest.raises(SpoolError, match="symbolic link"):
        spool.read_entry("pdq", name)


def test_read_entry_of_a_dangling_symlink(spool):
    name = event_file_name(1, KEY)
    os.symlink("/nonexistent/file", spool.path("pdq", name))
    with pytest.raises(SpoolError, match="symbolic link"):
        spool.read_entry("pdq", name)


def test_read_entry_of_a_directory(spool):
    name = event_file_name(1, KEY)
    os.mkdir(spool.path("pdq", name))
    with pytest.raises(SpoolError, match="not a regular file"):
        spool.read_entry("pdq", name)


def test_read_entry_of_a_fifo_does_not_block(spool):
    name = event_file_name(1, KEY)
    os.mkfifo(spool.path("pdq", name))
    started = time.monotonic()
    with pytest.raises(SpoolError, match="not a regular file"):
        spool.read_entry("pdq", name)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("data, message", [
    (b"", "not valid JSON"),
    (b"\x00\xff\xfe\x80junk\x01", "not valid JSON"),
    (b'{"endpoint": "alert", ', "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'"text"', "not a JSON object"),
    (b"null", "not a JSON object"),
])
def test_read_entry_of_bad_content(spool, data, message):
    name = event_file_name(1, KEY)
    put(spool, "pdq", name, data)
    with pytest.raises(SpoolError, match=message) as raised:
        spool.read_entry("pdq", name)
    assert KEY not in str(raised.value) and "\n" not in str(raised.value)  # logs show these reasons


def test_read_entry_of_an_oversized_file(spool):
    name = event_file_name(1, KEY)
    padding = " " * (MAX_ENTRY_BYTES + 1 - 2)
    put(spool, "pdq", name, b"{" + padding.encode() + b"}")  # valid JSON, but too big
    with pytest.raises(SpoolError, match="over the 524288-byte limit"):
        spool.read_entry("pdq", name)
    just_fits = event_file_name(2, KEY)
    put(spool, "pdq", just_fits, b"{" + padding[1:].encode() + b"}")
    assert spool.read_entry("pdq", just_fits) == {}


def test_read_entry_of_a_v1_file(spool):
    name = event_file_name(1, KEY)
    v1 = {"service_key": KEY, "event_type": "trigger", "description": "d", "details": {},
          "incident_key": None, "agent": {"queued_by": "pd-send"}}
    put(spool, "pdq", name, json.dumps(v1).encode())
    assert spool.read_entry("pdq", name) == v1


def test_read_entry_of_a_vanished_file_is_not_a_spool_error(spool):
    with pytest.raises(FileNotFoundError):
        spool.read_entry("pdq", event_file_name(1, KEY))


# -- reject, retry --------------------------------------------------------------------------------

def test_reject_records_the_reason_and_retry_brings_events_back(spool):
    names = [spool.enqueue(KEY, entry_bytes(n)) for n in range(2)]
    other = spool.enqueue(OTHER, entry_bytes(9, OTHER))
    with spool.lock():
        for name, reason in ((names[0], {"reason": "HTTP 400: invalid routing key", "status": 400}),
                             (names[1], {"reason": "HTTP 400: second"}), (other, {"reason": "HTTP 400: other"})):
            assert spool.move_pending(name, spool.regular_file_inode(name), "err", reason) == MOVED
    assert listing(spool, "pdq") == []
    assert listing(spool, "err") == sorted(names + [other])
    reason = spool.error_reason(names[0])
    assert reason["reason"] == "HTTP 400: invalid routing key" and reason["status"] == 400
    time.strptime(reason["at"], "%Y-%m-%dT%H:%M:%SZ")
    assert os.stat(os.path.join(spool.errors_dir, names[0] + ".json")).st_mode & 0o777 == 0o640

    assert spool.retry(KEY) == 2
    assert listing(spool, "pdq") == sorted(names)
    assert listing(spool, "err") == [other]
    assert spool.error_reason(names[0]) is None
    assert sorted(os.listdir(spool.errors_dir)) == [other + ".json"]
    assert spool.read_entry("pdq", names[1]) == json.loads(entry_bytes(1))

    assert spool.retry() == 1
    assert listing(spool, "err") == [] and os.listdir(spool.errors_dir) == []
    assert spool.retry() == 0


def test_retry_never_overwrites_a_pending_name(spool):
    name = event_file_name(5, KEY)
    put(spool, "err", name, b'{"old": 1}')
    put(spool, "pdq", name, b'{"new": 1}')
    assert spool.retry() == 0
    assert spool.read_entry("pdq", name) == {"new": 1}
    assert spool.read_entry("err", name) == {"old": 1}


def test_error_reason_missing_or_corrupt(spool):
    assert spool.error_reason("nothing.txt") is None
    os.makedirs(spool.errors_dir)
    with open(os.path.join(spool.errors_dir, "x.txt.json"), "w") as handle:
        handle.write("{broken")
    assert spool.error_reason("x.txt") is None


def test_move(spool):
    name = spool.enqueue(KEY, b'{"a": 1}')
    spool.move(name, "pdq", "suc")
    assert listing(spool, "pdq") == [] and listing(spool, "suc") == [name]


# -- cleanup ---------------------------------------------------------------------------------------

def test_cleanup_removes_old_files_and_keeps_fresh_ones(spool):
    threshold = 2 * STALE_TMP_SECS
    pending = spool.enqueue(KEY, b"{}")
    put(spool, "suc", event_file_name(1, KEY))
    put(spool, "err", event_file_name(2, KEY))
    os.makedirs(spool.errors_dir)
    with open(os.path.join(spool.errors_dir, event_file_name(2, KEY) + ".json"), "w") as handle:
        handle.write('{"reason": "r"}')
    with open(os.path.join(spool.errors_dir, event_file_name(3, KEY) + ".json"), "w") as handle:
        handle.write('{"reason": "orphan"}')  # its err/ file is gone
    put(spool, "tmp", "123_456_abcd.tmp")
    os.mkdir(spool.path("tmp", "a-directory"))
    written = time.time()

    # Fresh: nothing removed but the orphaned reason.
    assert spool.cleanup(threshold, now=written + 10) == 0
    assert listing(spool, "tmp") == ["123_456_abcd.tmp", "a-directory"]
    assert sorted(os.listdir(spool.errors_dir)) == [event_file_name(2, KEY) + ".json"]

    # Over an hour later: stale tmp files go, suc/ and err/ are still under the threshold.
    assert spool.cleanup(threshold, now=written + STALE_TMP_SECS + 10) == 1
    assert listing(spool, "tmp") == ["a-directory"]
    assert listing(spool, "suc") == [event_file_name(1, KEY)]
    assert listing(spool, "err") == [event_file_name(2, KEY)]

    # Past the threshold: suc/ and err/ go with their reasons; pdq/ is never touched.
    assert spool.cleanup(threshold, now=written + threshold + 10) == 2
    assert listing(spool, "suc") == [] and listing(spool, "err") == []
    assert os.listdir(spool.errors_dir) == []
    assert listing(spool, "pdq") == [pending]
    assert listing(spool, "tmp") == ["a-directory"]


def test_cleanup_judges_age_by_the_later_of_mtime_and_ctime(spool):
    # A delivered event keeps its old mtime when renamed into suc/; its ctime says when it arrived.
    name = event_file_name(1, KEY)
    put(spool, "suc", name)
    long_ago = time.time() - 30 * 86400
    os.utime(spool.path("suc", name), (long_ago, long_ago))
    assert spool.cleanup(86400) == 0
    assert listing(spool, "suc") == [name]


def test_cleanup_removes_tmp_leftovers_by_their_mtime(spool):
    put(spool, "tmp", "old.tmp")
    put(spool, "tmp", "fresh.tmp")
    two_hours_ago = time.time() - 2 * STALE_TMP_SECS
    os.utime(spool.path("tmp", "old.tmp"), (two_hours_ago, two_hours_ago))
    assert spool.cleanup(10 * STALE_TMP_SECS) == 1
    assert listing(spool, "tmp") == ["fresh.tmp"]


def test_cleanup_does_not_follow_symlinks(spool, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    os.symlink(outside, spool.path("suc", event_file_name(1, KEY)))
    assert spool.cleanup(10, now=time.time() + 100) == 1
    assert listing(spool, "suc") == []
    assert outside.read_text() == "keep me"


# -- the queue lock ---------------------------------------------------------------------------------

def test_queue_lock_is_exclusive_and_released(spool):
    import fcntl
    with spool.lock() as held:
        lock_path = held.path
        probe = os.open(lock_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
    probe = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)


# -- the original agent's enqueuer ----------------------------------------------------------------------

def test_enqueuer_interface(spool):
    enqueuer = spool.enqueuer()
    name, problems = enqueuer.enqueue(KEY, '{"text": "é"}')
    assert problems == []
    assert spool.read_entry("pdq", name) == {"text": "é"}
    name, problems = enqueuer.enqueue("bad key", "{}")
    assert name is None and problems == ["routing key must not contain '/', NUL or white space"]
    assert listing(spool, "tmp") == []


# -- the entries of pdq/: what they are, when they came, who queued them ----------------------------

def test_pending_files_are_regular_files_only_with_their_ctime_and_owner(spool):
    name = spool.enqueue(KEY, entry_bytes(1))
    makers = (os.mkdir, os.mkfifo, lambda path: os.symlink(spool.path("pdq", name), path))
    for number, make in enumerate(makers, 1):
        make(spool.path("pdq", event_file_name(number, KEY)))
    heard = []
    [pending] = [entry for chunk in spool.pending_files(lambda name, why: heard.append(why)) for entry in chunk]
    info = os.lstat(spool.path("pdq", name))
    assert (pending.stamp, pending.routing_key, pending.changed_ns, pending.owner) == \
        (int(name.split("_")[0]), KEY, info.st_ctime_ns, info.st_uid)
    assert heard == ["not a regular file"] * 3
    assert spool.pending_file(event_file_name(9, KEY)) is None  # a name with nothing there


def test_ages_come_from_when_an_entry_came_not_from_its_name(spool):
    before = time.time()
    spool.enqueue(KEY, entry_bytes(1), now=1_000_000_000)    # a name claiming 2001
    spool.enqueue(OTHER, entry_bytes(2, OTHER), now=4 * 10**9)  # and one claiming 2096
    oldest = spool.oldest_pending()
    assert set(oldest) == {KEY, OTHER}
    assert all(before - 0.02 <= when <= time.time() for when in oldest.values())  # ctime: a kernel tick early at most


def test_a_move_takes_only_the_entry_that_was_read(spool):
    name = spool.enqueue(KEY, entry_bytes(1))
    inode = spool.regular_file_inode(name)
    os.link(spool.path("pdq", name), spool.path("tmp", "kept"))  # so no new file gets its inode number
    os.unlink(spool.path("pdq", name))
    assert spool.move_pending(name, inode, "suc") == NAME_GONE
    os.mkdir(spool.path("pdq", name))  # its owner put something else under the name
    assert spool.move_pending(name, inode, "err", {"reason": "bad"}) == NAME_REPLACED
    assert os.path.isdir(spool.path("pdq", name)) and not os.path.lexists(spool.path("err", name))
    assert not os.path.exists(os.path.join(spool.errors_dir, name + ".json"))  # nothing recorded
    os.rmdir(spool.path("pdq", name))
    again = spool.enqueue(KEY, entry_bytes(2), now=int(name.split("_")[0]) / 1e6)
    assert again == name and spool.move_pending(name, inode, "suc") == NAME_REPLACED  # a new inode
    assert spool.move_pending(name, spool.regular_file_inode(name), "suc") == MOVED
    assert spool.read_entry("suc", name) == json.loads(entry_bytes(2))
