"""SpoolWriter.prepare: tmp/ files made ahead of need (pd-listen's), on a real disk.

A spare is an empty tmp/ file that an entry is later written into and linked
from, so that creating it is not part of the entry's wait. What must hold: a
spare is used at most once and only while it is still the empty file made,
under its one name; what replaced it (a link, a FIFO, another file) is never
followed, waited on, written or removed; an old or vanished spare is passed
over and the entry still queued; the writer's end removes what is unused;
no spare holds a descriptor open (a filesystem with one could not be
remounted read-only).
"""

import json
import os
import time

import pytest

from pdagent.spool import writer as spool_writer
from pdagent.spool.writer import SpoolWriter

KEY = "R0utingKey0000000000000000000003"
DATA = json.dumps({"endpoint": "alert", "event": {"routing_key": KEY}}).encode()


@pytest.fixture
def writer(tmp_path):
    spool = SpoolWriter(str(tmp_path / "outqueue"))
    spool.create_dirs()
    yield spool
    spool.close()


def tmp_files(writer):
    return {name: os.lstat(os.path.join(writer.tmp_dir, name)) for name in os.listdir(writer.tmp_dir)}


def pdq_inode(writer, name):
    return os.stat(writer.path("pdq", name)).st_ino


def hold(writer, name):
    """Keep the file open (closed at the test's end) so that its inode number cannot be reused."""
    return os.open(os.path.join(writer.tmp_dir, name), os.O_PATH | os.O_NOFOLLOW)


def open_descriptors_to(directory):
    fd_dir = "/proc/self/fd"
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            continue
    return [target for target in targets if target.startswith(directory)]


def test_spares_are_empty_closed_files_that_entries_are_written_into_oldest_first(writer):
    writer.prepare(3)
    spares = tmp_files(writer)
    assert len(spares) == 3
    assert all(info.st_size == 0 and info.st_mode & 0o7777 == 0o640 for info in spares.values())
    assert open_descriptors_to(writer.tmp_dir) == []
    oldest_first = [info.st_ino for _name, info in sorted(spares.items())]

    names = writer.enqueue_many([(KEY, DATA), (KEY, DATA)])
    assert [pdq_inode(writer, name) for name in names] == oldest_first[:2]
    assert [info.st_ino for info in tmp_files(writer).values()] == oldest_first[2:]
    for name in names:
        with open(writer.path("pdq", name), "rb") as entry:
            assert entry.read() == DATA
        assert os.stat(writer.path("pdq", name)).st_nlink == 1  # the spare's tmp/ name is gone

    third, fourth = writer.enqueue(KEY, DATA), writer.enqueue(KEY, DATA)
    assert pdq_inode(writer, third) == oldest_first[2]
    assert pdq_inode(writer, fourth) not in oldest_first  # none left: a new file
    assert tmp_files(writer) == {}


def test_prepare_tops_up_to_the_count_and_stops_when_asked(writer):
    writer.prepare(2)
    writer.prepare(3)
    assert len(tmp_files(writer)) == 3
    asked = []
    writer.prepare(10, stop=lambda: asked.append(1) or len(asked) > 2)
    assert len(tmp_files(writer)) == 5


def test_close_removes_the_unused_spares_and_nothing_else(writer):
    writer.prepare(2)
    other = os.path.join(writer.tmp_dir, "someone-elses.tmp")
    with open(other, "wb") as handle:
        handle.write(b"x")
    writer.close()
    assert list(tmp_files(writer)) == ["someone-elses.tmp"]
    assert os.path.exists(writer.tmp_dir)


def test_a_spare_removed_meanwhile_is_passed_over_and_the_entry_still_queued(writer):
    """As the daemon's cleanup of tmp/ would, after a wall clock jump: the entry gets a new file."""
    writer.prepare(1)
    (spare_name, spare), = tmp_files(writer).items()
    held = hold(writer, spare_name)
    os.unlink(os.path.join(writer.tmp_dir, spare_name))
    name = writer.enqueue(KEY, DATA)
    assert pdq_inode(writer, name) != spare.st_ino
    assert tmp_files(writer) == {}
    assert os.fstat(held).st_size == 0
    os.close(held)


@pytest.mark.parametrize("passed_over_by", ["enqueue", "prepare"])
@pytest.mark.parametrize("replacement", ["symlink", "fifo", "another file", "file with data", "hard link"])
def test_a_spare_replaced_or_tampered_with_is_not_followed_waited_on_written_or_removed(writer, tmp_path,
                                                                                          replacement, passed_over_by):
    """Only pdq/'s owner or root may replace a spare (tmp/ is sticky); what they put there is theirs."""
    writer.prepare(1)
    (spare_name, _), = tmp_files(writer).items()
    spare_path = os.path.join(writer.tmp_dir, spare_name)
    time.sleep(0.05)  # so the change shows in the ctime where it only has a clock tick's resolution
    target = tmp_path / "target"
    target.write_bytes(b"not yours")
    if replacement == "symlink":
        os.unlink(spare_path)
        os.symlink(target, spare_path)
    elif replacement == "fifo":
        os.unlink(spare_path)
        os.mkfifo(spare_path)
    elif replacement == "another file":
        os.unlink(spare_path)
        os.link(target, spare_path)
    elif replacement == "file with data":
        with open(spare_path, "ab") as handle:
            handle.write(b"written by someone")
    else:
        os.link(spare_path, tmp_path / "second-name")
    before = os.lstat(spare_path)
    held = hold(writer, spare_name)
    if passed_over_by == "prepare":
        writer.prepare(1)
    name = writer.enqueue(KEY, DATA)  # a FIFO opened for writing would wait here
    os.close(held)
    assert pdq_inode(writer, name) != before.st_ino
    with open(writer.path("pdq", name), "rb") as entry:
        assert entry.read() == DATA
    assert target.read_bytes() == b"not yours"
    if replacement in ("symlink", "fifo", "another file"):
        after = os.lstat(spare_path)  # someone else's: left as it was
        assert (after.st_ino, after.st_mode, after.st_size) == (before.st_ino, before.st_mode, before.st_size)


def test_a_spare_older_than_the_limit_is_removed_not_used(writer, monkeypatch):
    writer.prepare(1)
    (spare_name, spare), = tmp_files(writer).items()
    held = hold(writer, spare_name)
    made = spool_writer.time.monotonic()
    monkeypatch.setattr(spool_writer.time, "monotonic", lambda: made + spool_writer.SPARE_MAX_AGE_SECS + 1)
    name = writer.enqueue(KEY, DATA)
    assert pdq_inode(writer, name) != spare.st_ino
    assert tmp_files(writer) == {}
    assert os.fstat(held).st_size == 0 and os.fstat(held).st_nlink == 0  # removed, never written
    os.close(held)


def test_prepare_replaces_spares_too_old_to_use(writer, monkeypatch):
    writer.prepare(2)
    old = {info.st_ino for info in tmp_files(writer).values()}
    held = [hold(writer, name) for name in tmp_files(writer)]
    made = spool_writer.time.monotonic()
    monkeypatch.setattr(spool_writer.time, "monotonic", lambda: made + spool_writer.SPARE_MAX_AGE_SECS + 1)
    writer.prepare(2)
    fresh = {info.st_ino for info in tmp_files(writer).values()}
    assert len(fresh) == 2 and not fresh & old
    assert all(os.fstat(fd).st_nlink == 0 for fd in held)  # removed
    for fd in held:
        os.close(fd)


def test_a_spare_is_not_what_the_daemons_tmp_cleanup_would_remove_first(writer):
    """The limit is well inside the daemon's hour for tmp/ leftovers, so a spare in use is never
    one the cleanup may remove meanwhile (the clock not jumping)."""
    from pdagent.spool.queue import STALE_TMP_SECS
    assert spool_writer.SPARE_MAX_AGE_SECS * 4 <= STALE_TMP_SECS
