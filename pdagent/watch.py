"""Notice new files in a directory at once: Linux inotify through ctypes.

Why not a library: the small, well-kept ones (inotify_simple) are not
packaged by Debian or RHEL, and the .deb/.rpm depend only on distribution
packages. This is the few calls the daemon needs. Where inotify is missing
(another OS, an exhausted watch limit, a filesystem without it), `open_watch`
returns None and the daemon relies on its periodic rescan.

A watch follows the directory's inode, not its path: when the directory is
removed, renamed or replaced, `read()` says the watch is lost (IN_IGNORED,
IN_DELETE_SELF, IN_MOVE_SELF) and the caller opens a new one on the path.
"""

import ctypes
import os
import struct

IN_CREATE = 0x00000100     # link() into the directory
IN_MOVED_TO = 0x00000080   # rename() into the directory
IN_DELETE_SELF = 0x00000400  # the directory itself was removed
IN_MOVE_SELF = 0x00000800    # the directory itself was renamed (or replaced by a rename)
IN_Q_OVERFLOW = 0x00004000  # events were lost: rescan
IN_IGNORED = 0x00008000      # the kernel dropped the watch (directory gone, filesystem unmounted)
_LOST = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class DirectoryWatch:
    """New names in one directory; `fileno()` for select(), `read()` for the names."""

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path

    def fileno(self):
        return self.fd

    def read(self):
        """(new names, overflowed, lost) from everything the kernel has queued; never blocks.

        `lost`: the watched directory is no longer the one at the path.
        """
        names = []
        overflowed = lost = False
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return names, overflowed, lost
            offset = 0
            while offset < len(data):
                _, mask, _, name_length = _EVENT_HEADER.unpack_from(data, offset)
                offset += _EVENT_HEADER.size
                name = data[offset:offset + name_length].rstrip(b"\0")
                offset += name_length
                if mask & IN_Q_OVERFLOW:
                    overflowed = True
                elif mask & _LOST:
                    lost = True
                elif name:
                    names.append(os.fsdecode(name))

    def close(self):
        os.close(self.fd)


def open_watch(path):
    """A DirectoryWatch on `path` for names linked or renamed into it, or None if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
        init, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    if add_watch(fd, os.fsencode(path), IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF) < 0:
        os.close(fd)
        return None
    return DirectoryWatch(fd, path)
