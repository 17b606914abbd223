"""The queue lock: db/queue.lock, taken by the daemon to move files and by `pd-queue retry`,
`discard` and cleanup (flock: the kernel drops it when its holder dies)."""

import errno
import fcntl
import os
import stat
import time

from pdagent.spool.files import SpoolError

# How long `with lock:` waits for another holder: the daemon holds the lock for one move at a
# time, a pd-queue retry for its moves; a holder that never lets go gets an error instead.
WAIT_SECS = 30.0
_WAIT_POLL_SECS = 0.05


class QueueLock:
    """The one lock the daemon and `pd-queue retry` serialise on (flock: dies with its holder).

    With `required=False` (the daemon), a lock file that cannot be opened or
    created (db/ made read-only and the file deleted), or is not a regular
    file, is reported to `on_failure` and the work goes on unlocked, rather
    than stopping delivery.

    Nothing ever waits on it without end: the daemon's account can hold it
    forever (a stuck or hostile daemon, a suspended pd-queue), so `with lock:`
    gives up after WAIT_SECS with a SpoolError, and the daemon's moves poll
    try_acquire() between looking at whether they should stop.
    """

    def __init__(self, db_dir, required=True, on_failure=None):
        self.path = os.path.join(db_dir, "queue.lock")
        self.required = required
        self.on_failure = on_failure
        self._fd = None

    def try_acquire(self):
        """Take the lock if no other process holds it: True, else False at once.

        True also when the lock file cannot be opened and `required` is False
        (the work goes on unlocked, as said above).
        """
        try:
            fd = self._open()
        except OSError as error:
            if self.required:
                raise SpoolError(f"cannot open the queue lock {self.path}: {error.strerror}") from None
            if self.on_failure:
                self.on_failure(error)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _open(self):
        """A descriptor of the lock file, created if missing; OSError unless it is a regular file.

        db/ belongs to the daemon's account, and root (pd-queue) takes this lock
        too: never through a link (O_NOFOLLOW), never waiting on what that account
        put in its place (O_NONBLOCK: a FIFO would block the open forever).
        """
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, flags | os.O_CREAT, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")
        return fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        deadline = time.monotonic() + WAIT_SECS
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise SpoolError(f"the queue lock {self.path} was held by another process for "
                                 f"{WAIT_SECS:g} s (pdagentd, or another pd-queue retry or "
                                 f"discard); nothing was changed: try again")
            time.sleep(_WAIT_POLL_SECS)
        return self

    def __exit__(self, *exc_info):
        self.release()
