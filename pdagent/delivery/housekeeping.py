"""Housekeeping around delivery: state.json saved and restored (counters, and what the
schedule keeps across restarts), and suc/, err/ and tmp/ cleaned of old files."""

import logging
import threading

from pdagent.delivery.restart import restore, saved_keys
from pdagent.spool.files import SpoolError

log = logging.getLogger("pdagent.delivery")


class Housekeeper:
    """Saves and restores `saved` (state.SavedState) for the schedule; cleans the spool up."""

    def __init__(self, spool, guarded, saved, cleanup_threshold_secs, wall_clock):
        self.spool = spool
        self.guarded = guarded
        self.saved = saved
        self.cleanup_threshold_secs = cleanup_threshold_secs
        self.wall_clock = wall_clock
        self._cleanup_thread = None

    def save_wanted(self):
        """Whether state.json is behind (callers hold the schedule's lock)."""
        return self.saved.dirty or self.guarded.scheduler.saved_changed

    def restore(self):
        with self.guarded.lock:
            restore(self.guarded.scheduler, self.saved.saved_keys, self.wall_clock())
            self.guarded.scheduler.saved_changed = True  # what was not taken back leaves state.json

    def save(self):
        """Write state.json: encoded under the lock, written (and fsynced) outside it."""
        guarded = self.guarded
        with guarded.lock:
            data = self.saved.encode(saved_keys(guarded.scheduler, self.wall_clock()))
            guarded.scheduler.saved_changed = False
        try:
            self.saved.write(data)
        except OSError as error:
            with guarded.lock:
                self.saved.dirty = True
            log.error("cannot save %s: %s (kept in memory, retried)", self.saved.db_dir, error.strerror)

    def start_cleanup(self):
        """Clean up suc/, err/ and tmp/ on a thread of its own (it may wait for the queue lock)."""
        if self._cleanup_thread is not None and self._cleanup_thread.is_alive():
            return
        self._cleanup_thread = threading.Thread(target=self._cleanup, name="cleanup", daemon=True)
        self._cleanup_thread.start()

    def _cleanup(self):
        try:
            removed = self.spool.cleanup(self.cleanup_threshold_secs, now=self.wall_clock())
        except (OSError, SpoolError) as error:
            log.error("cleanup failed: %s", error)
            return
        if removed:
            log.info("cleanup removed %d old file(s)", removed)
