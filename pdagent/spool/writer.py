"""Enqueueing: what pd-send, the integrations and the library write with.

pd-send imports this module, so it imports only what pd-send's start-up can
afford (os, time and the spool's names and file helpers; no json, no re):
pd-send is run dozens of times a minute by monitoring tools.
"""

import errno
import os
import stat
import time

from pdagent.event import EventError
from pdagent.spool import SpoolTree
from pdagent.spool.files import SpoolError, fsync_directory, unlink_quietly, write_all
from pdagent.spool.names import event_file_name, routing_key_problem

ENTRY_MODE = 0o640
# How to fix a spool whose pdq/ and tmp/ are not mode 3753 of the daemon's group.
LAYOUT_HINT = ("pdq/ and tmp/ must belong to the daemon's group, mode 3753: as root, "
               "`python3 -I -m pdagent.layout` sets them in /var/lib/pdagent")


class SpoolWriter(SpoolTree):
    """Writes entries into pdq/: tmp/, write, fsync, link, then the new names made durable
    (see the package's rules). Several entries may share the waits (a group commit)."""

    def enqueue(self, routing_key, data, now=None):
        """Queue `data` (bytes) for `routing_key`; returns the pdq/ file name.

        A missing spool is created (SpoolError, one line, if it cannot be).
        `now` (seconds) sets the enqueue time as is, for tests and tools.
        """
        outcome = self.enqueue_many([(routing_key, data)], now)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def enqueue_many(self, entries, now=None):
        """Queue each (routing_key, data) of `entries`, in order, sharing the fsyncs' waits.

        Returns, per entry, its pdq/ file name or the EventError or SpoolError
        that kept it out (the others are queued all the same). Each entry's
        data is fsynced before its name appears in pdq/, and every new name is
        durable before this returns: one fsync of pdq/ for them all where this
        user may open it, else one fsync of each linked file, which commits its
        name on journaling filesystems (link() dirtied the inode).
        """
        outcomes = [None] * len(entries)
        written = []  # (index, tmp path, fd, routing key, enqueue time in us)
        pdq_dir = self.folder("pdq")
        try:
            for index, (routing_key, data) in enumerate(entries):
                try:
                    written.append((index, routing_key) + self._write_tmp(routing_key, data, now))
                except (EventError, SpoolError) as error:
                    outcomes[index] = error
            for index, routing_key, tmp_path, fd, enqueue_time_us in written:
                try:
                    os.fsync(fd)
                    outcomes[index] = self._link_unique(tmp_path, pdq_dir, enqueue_time_us, routing_key)
                except OSError as error:
                    outcomes[index] = self._write_error(error)
            # The linked entries are queued from here on: a failure below is not theirs.
            if not self._names_durable_by_folder(pdq_dir):
                for index, _key, _path, fd, _time in written:
                    if isinstance(outcomes[index], str):
                        try:
                            os.fsync(fd)
                        except OSError:
                            pass
        finally:
            for _index, _key, tmp_path, fd, _time in written:
                os.close(fd)
                unlink_quietly(tmp_path)  # else the daemon's cleanup removes it later
        return outcomes

    def _write_tmp(self, routing_key, data, now):
        """(tmp path, fd, enqueue time in us) of a new tmp/ file holding `data`, not yet fsynced."""
        problem = routing_key_problem(routing_key)
        if problem is not None:
            raise EventError(problem)
        enqueue_time_us = int((time.time() if now is None else now) * 1_000_000)
        tmp_path = os.path.join(self.tmp_dir, f"{enqueue_time_us}_{os.getpid()}_{os.urandom(4).hex()}.tmp")
        fd = self._create_tmp_file(tmp_path)
        try:
            os.fchmod(fd, ENTRY_MODE)  # whatever the caller's umask
            write_all(fd, data)
        except OSError as error:
            os.close(fd)
            unlink_quietly(tmp_path)
            raise self._write_error(error) from None
        return tmp_path, fd, enqueue_time_us

    def _write_error(self, error):
        return SpoolError(f"cannot write the event to {self.outqueue_dir}: {error.strerror}")

    @staticmethod
    def _names_durable_by_folder(pdq_dir):
        try:
            return fsync_directory(pdq_dir)
        except OSError:
            return False

    def _create_tmp_file(self, tmp_path):
        """A new file at `tmp_path` that the daemon will be able to read (else SpoolError)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                fd = os.open(tmp_path, flags, ENTRY_MODE)
            except FileNotFoundError:
                self.create_dirs()  # tmp/ alone missing (removed by hand)
                fd = os.open(tmp_path, flags, ENTRY_MODE)
        except OSError as error:
            hint = f" ({LAYOUT_HINT})" if error.errno == errno.EACCES else ""
            raise SpoolError(f"cannot create a file in {self.tmp_dir}: {error.strerror}{hint}") from None
        try:
            self._check_daemon_can_read(fd)
        except BaseException:
            os.close(fd)
            unlink_quietly(tmp_path)
            raise
        return fd

    def _check_daemon_can_read(self, fd):
        """SpoolError unless the owner of pdq/ (the daemon's account) can read the entry `fd`.

        It can if the entry is its own, or of pdq/'s group where pdq/ is
        set-group-ID (the package's layout, whose group is the daemon's: tmp/
        gives the entry that group, and entries are 0640). Anything else, such
        as root's entry in a spool without that layout, would be accepted here
        and then be unreadable to the daemon: refused instead. One fstat and
        one stat, nothing looked up by name.
        """
        pdq_dir = self.folder("pdq")
        entry = os.fstat(fd)
        try:
            try:
                queue = os.stat(pdq_dir)
            except FileNotFoundError:
                self.create_dirs()  # pdq/ alone missing (removed by hand)
                queue = os.stat(pdq_dir)
        except OSError as error:
            raise SpoolError(f"cannot look at {pdq_dir}: {error.strerror}") from None
        if entry.st_uid == queue.st_uid or (entry.st_gid == queue.st_gid and queue.st_mode & stat.S_ISGID):
            return
        raise SpoolError(f"{pdq_dir} is not set up for other users: its owner (uid {queue.st_uid}), the "
                         f"daemon, could not read this event (uid {entry.st_uid}, group {entry.st_gid}); "
                         f"nothing was queued ({LAYOUT_HINT})")

    def _link_unique(self, tmp_path, pdq_dir, enqueue_time_us, routing_key):
        while True:
            name = event_file_name(enqueue_time_us, routing_key)
            try:
                os.link(tmp_path, os.path.join(pdq_dir, name))
                return name
            except FileExistsError:
                enqueue_time_us += 1  # another writer took this microsecond

    def enqueuer(self):
        return Enqueuer(self)


class Enqueuer:
    """The original agent's enqueuer interface: `enqueue(service_key, data)` -> (name, problems)."""

    def __init__(self, spool):
        self.spool = spool

    def enqueue(self, service_key, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            return self.spool.enqueue(service_key, data), []
        except ValueError as error:
            return None, [str(error)]
