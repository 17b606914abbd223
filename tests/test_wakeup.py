"""pdagent/wakeup.py: the self-pipe that signal handlers and threads wake a select() loop with."""

import os
import selectors

from pdagent.wakeup import WakeupPipe


def test_a_wake_makes_the_pipe_readable_until_drained():
    pipe = WakeupPipe()
    selector = selectors.DefaultSelector()
    selector.register(pipe, selectors.EVENT_READ)
    try:
        assert selector.select(timeout=0) == []
        pipe.wake()
        pipe.wake()
        assert len(selector.select(timeout=0)) == 1
        pipe.drain()
        assert selector.select(timeout=0) == []
    finally:
        selector.close()
        pipe.close()


def test_many_wakes_never_block():
    pipe = WakeupPipe()
    for _ in range(100_000):  # far more than a pipe's buffer holds
        pipe.wake()
    pipe.close()


def test_a_wake_after_close_writes_into_no_file_that_took_its_descriptor(tmp_path):
    """A late signal or thread may wake a loop that has ended: the descriptor numbers the pipe
    had are free by then, and the next file opened takes them."""
    pipe = WakeupPipe()
    pipe.close()
    fds = [os.open(str(tmp_path / f"file{number}"), os.O_RDWR | os.O_CREAT) for number in range(2)]
    try:
        pipe.wake()
        assert [os.fstat(fd).st_size for fd in fds] == [0, 0]
    finally:
        for fd in fds:
            os.close(fd)
