"""Safe file helpers for a tree others can write into: atomic writes, reads that never
follow a link nor wait on a FIFO, directory fsync.

pd-send imports this: standard library only, nothing that costs start-up.
"""

import errno
import os
import stat


class SpoolError(Exception):
    """The spool could not be written or read; the message is one line."""


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_directory(path):
    """fsync a directory so a new name in it survives a crash; False if not allowed.

    A user who may only write (not read) pdq/ cannot open it; the fsync of
    the linked file that precedes this covers the journaling filesystems the
    agent runs on, since link() dirties the inode in the same transaction.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def write_file_atomically(path, data, mode=0o644):
    """Replace `path` with `data` (bytes) so readers see the old or the new, never a mix."""
    tmp_path = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp_path)
        raise
    os.close(fd)
    os.replace(tmp_path, path)
    fsync_directory(os.path.dirname(path) or ".")


def read_regular_file(path, limit):
    """The bytes of `path`; SpoolError (one line, no path) if it is a link, not a regular file or over `limit` bytes.

    It never follows a link nor waits on a FIFO: every directory it reads is
    writable by others than the reader (pdq/ by any user, the rest by the
    daemon's account, which root's tools must not trust). A missing file
    raises FileNotFoundError.
    """
    return read_regular_file_and_inode(path, limit)[0]


def read_regular_file_and_inode(path, limit):
    """(bytes, inode number) of `path`, read as `read_regular_file` reads it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SpoolError("a symbolic link; not followed") from None
        raise SpoolError(f"cannot open: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpoolError("not a regular file")
        if info.st_size > limit:
            raise SpoolError(f"{info.st_size} bytes, over the {limit}-byte limit")
        return os.read(fd, limit + 1), info.st_ino
    except OSError as error:
        raise SpoolError(f"cannot read: {error.strerror}") from None
    finally:
        os.close(fd)


def read_small_file(path, limit=4096):
    """The stripped text of a small regular file, or None if it is missing, unreadable or not one."""
    try:
        return read_regular_file(path, limit).decode("utf-8", "replace").strip() or None
    except (OSError, SpoolError):
        return None


def read_agent_id(path):
    return read_small_file(path)


def unlink_quietly(path):
    """Remove `path`; True if it was removed, False if it could not be (gone already, say)."""
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
