"""Spool: the operations on queued events: read, move out of pdq/, retry, discard, clean up.

Moving callers hold the queue lock (lock.py); the daemon, `pd-queue` and the
library use this; pd-send never imports it (json costs its start-up).
"""

import json
import os
import stat
import time

from pdagent.spool.files import (
    SpoolError,
    fsync_directory,
    read_regular_file,
    read_regular_file_and_inode,
    unlink_quietly,
    write_file_atomically,
)
from pdagent.spool.listing import SpoolListing
from pdagent.spool.lock import QueueLock
from pdagent.spool.writer import SpoolWriter
from pdagent.timefmt import utc_text

MAX_ENTRY_BYTES = 512 * 1024
STALE_TMP_SECS = 3600

# What `Spool.move_pending` did.
MOVED = "moved"
NAME_GONE = "name gone"
NAME_REPLACED = "name replaced"
NAME_TAKEN = "name taken"


class Spool(SpoolWriter, SpoolListing):
    """The outqueue tree: enqueue (SpoolWriter), list (SpoolListing), read, move, retry, clean up."""

    def lock(self, required=True, on_failure=None):
        return QueueLock(self.db_dir, required, on_failure)

    def read_entry(self, folder, name):
        """The JSON object in a spool file; SpoolError if it is not a regular, sane file.

        The errors do not repeat the file name: it holds the routing key, and
        the daemon logs these reasons.
        """
        return parse_entry(read_regular_file(self.path(folder, name), MAX_ENTRY_BYTES))

    def read_pending(self, name):
        """(bytes, inode) of pdq/<name>, read as `read_entry` reads (`parse_entry` makes the
        entry); the inode is what `move_pending` checks the name still holds."""
        return read_regular_file_and_inode(self.path("pdq", name), MAX_ENTRY_BYTES)

    def regular_file_inode(self, name):
        """The inode of pdq/<name> if it is a regular file, else None."""
        try:
            info = os.lstat(self.path("pdq", name))
        except OSError:
            return None
        return info.st_ino if stat.S_ISREG(info.st_mode) else None

    def _reason_path(self, name):
        """Where `move_pending` records why an err/ event was rejected."""
        return os.path.join(self.errors_dir, name + ".json")

    def error_reason(self, name):
        """What `move_pending` recorded of an err/ event (a dict), or None."""
        try:
            reason = json.loads(read_regular_file(self._reason_path(name), 64 * 1024))
        except (OSError, SpoolError, ValueError, RecursionError):
            return None
        return reason if isinstance(reason, dict) else None

    # -- moving (callers hold the queue lock) ------------------------------

    def move(self, name, from_folder, to_folder):
        os.rename(self.path(from_folder, name), self.path(to_folder, name))

    def move_pending(self, name, inode, to_folder, reason=None):
        """Move pdq/<name> to `to_folder` (suc or err) if it is still the regular file `inode`.

        Returns MOVED, NAME_GONE (no such name any more), NAME_REPLACED (its owner put
        something else there: that is left alone) or NAME_TAKEN (err/ holds an event of
        that name already, which a rename would destroy: a name is guessable, so another
        user may put a file under the name of an event that was rejected); OSError if the
        rename fails. Moving to err/ records `reason` (a dict) once the file is there, so
        only a file really moved gets a record. Callers hold the queue lock, and only the
        daemon's account writes in err/, so nothing comes between the check and the rename.
        """
        source, target = self.path("pdq", name), self.path(to_folder, name)
        try:
            info = os.lstat(source)
        except FileNotFoundError:
            return NAME_GONE
        if info.st_ino != inode or not stat.S_ISREG(info.st_mode):
            return NAME_REPLACED
        if to_folder == "err" and os.path.lexists(target):
            return NAME_TAKEN
        os.rename(source, target)
        try:
            moved_inode = os.lstat(target).st_ino
        except FileNotFoundError:
            moved_inode = None
        if moved_inode != inode:
            # Swapped by its owner between the check and the rename: it goes back untouched.
            if moved_inode is not None and not os.path.lexists(source):
                os.rename(target, source)
            return NAME_REPLACED
        if reason is not None:
            try:
                self._record_reason(name, reason)
            except OSError:
                os.rename(target, source)  # a rejection that cannot be recorded stays queued
                raise
        return MOVED

    def _record_reason(self, name, reason):
        os.makedirs(self.errors_dir, exist_ok=True)
        record = dict(reason, at=utc_text())
        write_file_atomically(self._reason_path(name), json.dumps(record).encode(), mode=0o640)

    def retry(self, routing_key=None):
        """Move err/ events (of one key, or all) back to pdq/; returns how many."""
        moved = 0
        with self.lock():
            for name in self.names("err", routing_key):
                if os.path.lexists(self.path("pdq", name)):
                    continue
                try:
                    self.move(name, "err", "pdq")
                except FileNotFoundError:
                    continue  # cleaned up meanwhile
                moved += 1
                unlink_quietly(self._reason_path(name))
            if moved:  # so that a power cut does not quietly undo the retry
                fsync_directory(self.folder("pdq"))
                fsync_directory(self.folder("err"))
        return moved

    def discard(self, routing_key=None):
        """Delete err/ events (of one key, or all) and their recorded reasons; returns how many.

        For rejections that should never be sent (a wrong key, since fixed).
        Under the queue lock, as `retry`, which moves the same files.
        """
        removed = 0
        with self.lock():
            for name in self.names("err", routing_key):
                try:
                    os.unlink(self.path("err", name))
                except FileNotFoundError:
                    continue  # cleaned up meanwhile
                removed += 1
                unlink_quietly(self._reason_path(name))
            if removed:  # so that a power cut does not bring them back
                fsync_directory(self.folder("err"))
        return removed

    def cleanup(self, threshold_secs, now=None):
        """Delete suc/ and err/ files older than the threshold and tmp/ files over an hour old.

        Only err/ and its reasons need the queue lock (`pd-queue retry` moves
        err/ files); suc/ and tmp/ are cleaned without it, so a large suc/
        never holds up the daemon's moves.
        """
        now = time.time() if now is None else now
        # suc/ and err/ age from when the file got there (rename sets ctime, not mtime);
        # tmp/ leftovers from when they were last written.
        removed = _remove_older(self.folder("suc"), now - threshold_secs, moved_in=True)
        removed += _remove_older(self.tmp_dir, now - STALE_TMP_SECS, moved_in=False)
        with self.lock():
            removed += _remove_older(self.folder("err"), now - threshold_secs,
                                     moved_in=True)
            if os.path.isdir(self.errors_dir):
                for reason_name in os.listdir(self.errors_dir):
                    if not os.path.lexists(self.path("err", reason_name[:-len(".json")])):
                        unlink_quietly(os.path.join(self.errors_dir, reason_name))
        return removed


def parse_entry(data):
    """The JSON object a spool file's bytes hold; SpoolError if they hold none."""
    try:
        entry = json.loads(data)
    except (ValueError, RecursionError):
        raise SpoolError("not valid JSON") from None
    if not isinstance(entry, dict):
        raise SpoolError("not a JSON object")
    return entry


def _remove_older(directory, cutoff, moved_in):
    """Remove the entries of `directory` older than `cutoff`; symlinks are not followed.

    The listing is read as it goes (suc/ may hold a million names)."""
    removed = 0
    try:
        entries = os.scandir(directory)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            age_from = max(info.st_mtime, info.st_ctime) if moved_in else info.st_mtime
            if age_from < cutoff and not entry.is_dir(follow_symlinks=False):
                removed += unlink_quietly(entry.path)
    return removed
