"""pdagent/watch.py: inotify on a real directory: new names as they are linked or renamed in,
an overflow said as such, and a watch that knows when its directory is gone or replaced.

The daemon falling back to its rescan when there is no watch is test_daemon_operations.py's.
"""

import os
import select

import pytest

from pdagent.watch import open_watch


@pytest.fixture
def watched(tmp_path):
    directory = tmp_path / "pdq"
    directory.mkdir()
    watch = open_watch(str(directory))
    assert watch is not None, "inotify unavailable"
    yield directory, watch
    watch.close()


def touch(path):
    with open(path, "wb"):
        pass


def test_nothing_new_reads_as_nothing_without_blocking(watched):
    _, watch = watched
    assert watch.read() == ([], False, False)


def test_names_created_linked_and_renamed_in_are_seen_in_order(watched, tmp_path):
    directory, watch = watched
    touch(directory / "1_created.txt")
    touch(tmp_path / "linked.tmp")
    os.link(tmp_path / "linked.tmp", directory / "2_linked.txt")
    touch(tmp_path / "renamed.tmp")
    os.rename(tmp_path / "renamed.tmp", directory / "3_renamed.txt")
    assert watch.read() == (["1_created.txt", "2_linked.txt", "3_renamed.txt"], False, False)
    assert watch.read() == ([], False, False)  # each name once


def test_names_leaving_or_changing_are_not_new(watched, tmp_path):
    directory, watch = watched
    touch(directory / "old.txt")
    watch.read()
    with open(directory / "old.txt", "ab") as changed:
        changed.write(b"more")
    os.rename(directory / "old.txt", tmp_path / "moved-out.txt")
    touch(tmp_path / "gone.txt")
    os.unlink(tmp_path / "gone.txt")
    assert watch.read() == ([], False, False)


def test_select_wakes_on_a_new_name(watched):
    directory, watch = watched
    assert select.select([watch], [], [], 0) == ([], [], [])
    touch(directory / "wake.txt")
    readable, _, _ = select.select([watch], [], [], 5)
    assert readable == [watch]
    assert watch.read()[0] == ["wake.txt"]


def test_a_name_that_is_not_utf8_comes_back_as_the_same_bytes(watched):
    directory, watch = watched
    raw = b"1_caf\xe9.txt"
    touch(os.path.join(os.fsencode(str(directory)), raw))
    (name,), _, _ = watch.read()
    assert os.fsencode(name) == raw


def test_more_names_than_the_kernel_queues_is_an_overflow(watched):
    directory, watch = watched
    with open("/proc/sys/fs/inotify/max_queued_events") as limit_file:
        limit = int(limit_file.read())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to make")
    for number in range(limit + 10):
        touch(directory / f"{number}.txt")
    names, overflowed, lost = watch.read()
    assert overflowed and not lost
    assert len(names) <= limit  # what was queued before the overflow; the caller rescans


@pytest.mark.parametrize("change", ["removed", "renamed", "replaced"])
def test_a_watch_whose_directory_is_gone_or_replaced_says_it_is_lost(watched, tmp_path, change):
    directory, watch = watched
    if change == "removed":
        os.rmdir(directory)
    elif change == "renamed":
        os.rename(directory, tmp_path / "pdq.old")
    else:  # another empty directory renamed over it
        (tmp_path / "pdq.new").mkdir()
        os.rename(tmp_path / "pdq.new", directory)
    _, _, lost = watch.read()
    assert lost
    if directory.exists():
        touch(directory / "after.txt")
    assert watch.read()[0] == []  # the new directory's names are not this watch's


def test_a_missing_directory_has_no_watch(tmp_path):
    assert open_watch(str(tmp_path / "missing")) is None


def test_close_releases_the_descriptor(tmp_path):
    watch = open_watch(str(tmp_path))
    fd = watch.fileno()
    watch.close()
    with pytest.raises(OSError):
        os.fstat(fd)
