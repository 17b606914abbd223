"""The queue lock: db/queue.lock, taken by the daemon to move files and by `pd-queue retry`,
`discard` and cleanup (flock: the kernel drops it when its holder dies)."""

import errno
import fcntl
import os
import stat

from pdagent.spool.files import SpoolError


class QueueLock:
    """The one lock the daemon and `pd-queue retry` serialise on (flock: dies with its holder).

    With `required=False` (the daemon), a lock file that cannot be opened or
    created (db/ made read-only and the file deleted), or is not a regular
    file, is reported to `on_failure` and the work goes on unlocked, rather
    than stopping delivery.
    """

    def __init__(self, db_dir, required=True, on_failure=None):
        self.path = os.path.join(db_dir, "queue.lock")
        self.required = required
        self.on_failure = on_failure
        self._fd = None

    def acquire(self, wait=True):
        """Take the lock; with `wait=False`, return False at once if another process holds it.

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
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()
