"""SpoolListing: what is in the spool's folders, read a chunk at a time (a folder may hold
a million names), for pd-queue, the library and the daemon's index."""

import collections
import itertools
import operator
import os
import re
import stat

from pdagent.spool import SpoolTree
from pdagent.spool.files import SpoolError
from pdagent.spool.names import (
    MAX_STAMP_DIGITS,
    QUEUE_FOLDERS,
    event_file_name,
    is_event_key,
    is_name_of_key,
    parse_file_name,
)

_NAMES_PER_CHUNK = 1000  # small enough to stay in the CPU caches (faster than larger chunks)
_EVENT_NAME = re.compile(rf"^([1-9][0-9]{{0,{MAX_STAMP_DIGITS - 1}}})_(.+)\.txt$", re.MULTILINE)


class PendingFile:
    """A regular file in pdq/ under an event's name, as lstat saw it.

    `changed_ns` (ctime) is when the kernel linked it in, or later if its owner
    changed it since: queue order and ages come from it, never from `stamp`,
    which the writer chose. `owner` is the uid that queued it.
    """

    __slots__ = ("changed_ns", "owner", "routing_key", "stamp")

    def __init__(self, stamp, routing_key, changed_ns, owner):
        self.stamp = stamp
        self.routing_key = routing_key
        self.changed_ns = changed_ns
        self.owner = owner


def _pending_file(stamp, routing_key, name, info, skipped):
    if not stat.S_ISREG(info.st_mode):
        if skipped is not None:
            skipped(name, "not a regular file")
        return None
    return PendingFile(stamp, routing_key, info.st_ctime_ns, info.st_uid)


def _cannot_list(directory, error):
    return f"cannot list {directory}: {error.strerror}"


class SpoolListing(SpoolTree):
    """The names and regular files in the spool's folders."""

    def _listing(self, folder):
        try:
            return os.listdir(self.folder(folder))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise SpoolError(_cannot_list(self.folder(folder), error)) from None

    def names(self, folder, routing_key=None):
        """Sorted event file names in `folder` (pdq, suc or err), of one key or all; others are skipped."""
        entries = self._listing(folder)
        names = [name for name in entries if is_name_of_key(name, routing_key)]
        names.sort()
        return names

    def _event_names(self, folder, skipped=None):
        """The event names of a folder as lists of (stamp text, routing key), a
        chunk at a time, so a million names never sit in memory at once.

        The per-name work runs in C: one regex (parse_file_name's format) over a
        joined chunk; the key rule is applied once per key. A Python loop per
        name takes several times longer, and pd-queue status and the daemon's
        scan of pdq/ read a million names with this. `skipped(name, why)` hears
        of every other name.
        """
        name_of = operator.attrgetter("name")
        key_of = operator.itemgetter(1)
        key_allowed = {}
        try:
            entries = os.scandir(self.folder(folder))
        except FileNotFoundError:
            return
        except OSError as error:
            raise SpoolError(_cannot_list(self.folder(folder), error)) from None
        with entries:
            while True:
                try:
                    names = list(map(name_of, itertools.islice(entries, _NAMES_PER_CHUNK)))
                except OSError as error:
                    raise SpoolError(_cannot_list(self.folder(folder), error)) from None
                if not names:
                    return
                joined = "\n".join(names)
                if joined.count("\n") == len(names) - 1:
                    pairs = _EVENT_NAME.findall(joined)
                else:  # a name with a newline in it: parse name by name
                    pairs = [(str(parsed[0]), parsed[1]) for parsed in map(parse_file_name, names) if parsed]
                for key in set(map(key_of, pairs)) - key_allowed.keys():
                    key_allowed[key] = is_event_key(key)
                if not all(key_allowed[key] for key in set(map(key_of, pairs))):
                    pairs = [pair for pair in pairs if key_allowed[pair[1]]]
                if skipped is not None and len(pairs) < len(names):
                    for name in names:
                        if parse_file_name(name) is None:
                            skipped(name, "not an event file name (<time>_<key>.txt)")
                yield pairs

    def counts_by_key(self, routing_key=None):
        """{routing key: {"pdq": n, "suc": n, "err": n}} over the whole tree."""
        key_of = operator.itemgetter(1)
        counts = {}
        for folder in QUEUE_FOLDERS:
            tally = collections.Counter()
            for pairs in self._event_names(folder):
                tally.update(map(key_of, pairs))
            for key, count in tally.items():
                if routing_key is None or key == routing_key:
                    counts.setdefault(key, dict.fromkeys(QUEUE_FOLDERS, 0))[folder] = count
        return counts

    def pending_file(self, name, skipped=None):
        """The PendingFile at pdq/<name>, or None: not an event's name (`skipped(name, why)`
        hears of it), gone, or not a regular file (heard of too)."""
        parsed = parse_file_name(name)
        if parsed is None:
            if skipped is not None:
                skipped(name, "not an event file name (<time>_<key>.txt)")
            return None
        try:
            info = os.lstat(self.path("pdq", name))
        except OSError:
            return None  # gone already, or pdq/ itself: the rescan will say
        return _pending_file(parsed[0], parsed[1], name, info, skipped)

    def pending_files(self, skipped=None):
        """The regular files under event names in pdq/, as lists of PendingFile, a chunk at a time.

        One lstat per name (from pdq/'s descriptor): a name alone says nothing
        of when an entry came, who queued it or what it is. `skipped(name, why)`
        hears of every name that is not an event.
        """
        pdq_dir = self.folder("pdq")
        try:
            directory_fd = os.open(pdq_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as error:
            raise SpoolError(_cannot_list(pdq_dir, error)) from None
        try:
            for pairs in self._event_names("pdq", skipped):
                chunk = []
                for stamp_text, routing_key in pairs:
                    name = event_file_name(stamp_text, routing_key)
                    try:
                        info = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
                    except OSError:
                        continue  # moved out since the listing
                    pending = _pending_file(int(stamp_text), routing_key, name, info, skipped)
                    if pending is not None:
                        chunk.append(pending)
                yield chunk
        finally:
            os.close(directory_fd)

    def oldest_pending(self, routing_key=None):
        """{routing key: when its oldest pending event came, epoch seconds} (from ctime, not names)."""
        oldest = {}
        for chunk in self.pending_files():
            for pending in chunk:
                if routing_key is None or pending.routing_key == routing_key:
                    known = oldest.get(pending.routing_key)
                    if known is None or pending.changed_ns < known:
                        oldest[pending.routing_key] = pending.changed_ns
        return {key: changed_ns / 1e9 for key, changed_ns in oldest.items()}
