"""Acting on an answered event's file: the move out of pdq/ under the queue lock (only the
entry that was read), and making moves durable in batches (group commit).

A key whose event was moved stays SYNCING until the target folder, then pdq/,
are fsynced: one pair of fsyncs serves every move made meanwhile.
"""

import logging
import threading

from pdagent.escape import mask_name
from pdagent.spool.files import fsync_directory
from pdagent.spool.queue import NAME_GONE, NAME_REPLACED, NAME_TAKEN

log = logging.getLogger("pdagent.delivery")

LOCK_RETRY_SECS = 0.01
SYNC_BATCH_SECS = 0.02  # a batch of moves waits at most this long for its fsyncs


class Move:
    """What became of an answered event's file: `left_queue` (no longer pending: moved, gone,
    replaced or passed over), `moved` (by us, to be made durable), `replaced` (its owner put
    another entry under its name), `failure` (why it could not be moved; it stays pending)."""

    __slots__ = ("failure", "left_queue", "moved", "replaced")

    def __init__(self, left_queue=False, moved=False, replaced=False, failure=None):
        self.left_queue = left_queue
        self.moved = moved
        self.replaced = replaced
        self.failure = failure


class Committer:
    """Moves answered events out of pdq/ and makes the moves durable (the syncer thread)."""

    def __init__(self, spool, guarded, clock, sleep):
        self.spool = spool
        self.guarded = guarded
        self.clock = clock
        self.sleep = sleep
        self._sync_wanted = threading.Condition(guarded.lock)  # the syncer waits on it
        self._unsynced_keys = []     # keys whose last move is not yet durable
        self._unsynced_folders = set()  # the folders those moves went to
        self._unsynced_since = 0.0   # when the first of them was moved (monotonic)
        self._lock_failure_logged = False
        self._sync_failure_logged = False

    def move_out(self, name, inode, target, outcome):
        """Move an answered event to suc/ or err/ under the queue lock, if the name still
        holds the entry that was read (`inode`).

        Holds only the queue lock, never the schedule's: a `pd-queue retry` that
        holds the queue lock (even suspended) stops this sender, not the main
        loop or the other keys' bookkeeping. A stop meanwhile leaves the event
        queued (sent again after the restart).
        """
        lock = self.spool.lock(required=False, on_failure=self._lock_failed)
        while not lock.try_acquire():
            if self.guarded.stopping:
                return Move()
            self.sleep(LOCK_RETRY_SECS)
        try:
            reason = None if target == "suc" else {"status": outcome.status, "reason": outcome.reason,
                                                   "kind": outcome.kind}
            done = self.spool.move_pending(name, inode, target, reason)
        except OSError as error:
            # Answered but not moved: it stays pending and may be sent again (at least once).
            return Move(failure=error.strerror)
        finally:
            lock.release()
        if done == NAME_GONE:
            return Move(left_queue=True)  # moved away meanwhile (by its owner)
        if done == NAME_REPLACED:
            return Move(left_queue=True, replaced=True)
        if done == NAME_TAKEN:
            # Left where it is, unrecorded, and found again by the next listing: the event
            # in err/ under its name is someone's, and stays.
            log.error("cannot move %s to err/: an event of that name is there already; left in pdq/",
                      mask_name(name))
            return Move(left_queue=True)
        return Move(left_queue=True, moved=True)

    def _lock_failed(self, error):
        # db/ lost its lock file and cannot make another: go on unlocked (pd-queue
        # retry then cannot run), which beats stopping delivery. Said once.
        if not self._lock_failure_logged:
            self._lock_failure_logged = True
            log.error("cannot open the queue lock in %s: %s; delivering without it",
                      self.spool.db_dir, error.strerror)

    # -- durability (callers of these three hold the schedule's lock) ---------------------

    def moved(self, routing_key, target):
        """`routing_key`'s event was moved to `target`: it joins the batch to be synced."""
        if not self._unsynced_keys:
            self._unsynced_since = self.clock()
            self._sync_wanted.notify()  # starts the syncer's batch
        self._unsynced_keys.append(routing_key)
        self._unsynced_folders.add(target)

    def sync_soon(self):
        """A sender has nothing else to send: sync the batch now rather than wait."""
        if self._unsynced_keys:
            self._sync_wanted.notify()

    def wake_for_stop(self):
        self._sync_wanted.notify_all()

    def syncer_loop(self):
        """Sync the moves in batches, so that one pair of fsyncs serves many events.

        A batch is synced once few keys are left ready to send besides those
        waiting for it (the fsync overlaps their sends, and no sender runs
        dry), when a sender has nothing else to send, or SYNC_BATCH_SECS
        after its first move.
        """
        guarded = self.guarded
        while True:
            with guarded.lock:
                while not self._unsynced_keys and not guarded.stopping:
                    self._sync_wanted.wait()
                if not self._unsynced_keys:
                    return
                while not guarded.stopping and \
                        guarded.scheduler.ready_count() > len(self._unsynced_keys) // 4:
                    remaining = self._unsynced_since + SYNC_BATCH_SECS - self.clock()
                    if remaining <= 0:
                        break
                    self._sync_wanted.wait(remaining)
            self.sync_moves()

    def sync_moves(self):
        """Make every move so far durable (target folders, then pdq/), then let those keys go on.

        The target first: were pdq/ made durable alone, a power cut could lose
        the name from both folders.
        """
        guarded = self.guarded
        with guarded.lock:
            keys, targets = self._unsynced_keys, self._unsynced_folders
            self._unsynced_keys, self._unsynced_folders = [], set()
        if not keys:
            return
        for folder in sorted(targets) + ["pdq"]:
            try:
                fsync_directory(self.spool.folder(folder))
            except OSError as error:
                # Not durable, but still moved: a power cut may repeat these events (at least once).
                if not self._sync_failure_logged:
                    self._sync_failure_logged = True
                    log.error("cannot fsync %s: %s", self.spool.folder(folder), error.strerror)
        with guarded.lock:
            guarded.scheduler.synced(keys)
            guarded.changed.notify_all()
