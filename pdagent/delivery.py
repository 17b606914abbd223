"""The delivery engine: threads, the spool and the HTTP client around the schedule.

What goes next, and when, is scheduler.py's (pure, with its invariants);
this module does the I/O and keeps these rules:
- A file leaves pdq/ only after the Events API answered: 2xx -> suc/, a
  rejection -> err/ (with the reason). Anything else leaves it in pdq/ and
  backs the key off (sender.py says which answer means what).
- A move out of pdq/ is durable before the key's next event is sent: the
  key waits (SYNCING) while the syncer thread fsyncs the target directory,
  then pdq/, once for every move made meanwhile (a group commit, started
  when few other keys are ready or after 20 ms: they go on sending
  meanwhile). A power cut so repeats at most the last event of each key,
  sent in the few milliseconds before it.
- With the default `send_concurrency = 1` one event is in flight at a time,
  so a crash (kill -9) can make at most one event be sent twice.
- Every in-memory deadline is on the monotonic clock; wall time is only
  saved (state.json) and shown.

Threads: sender threads take the next event, POST it and act on the answer
themselves; the syncer makes moves durable; the main thread watches pdq/
(inotify), runs the timers (back-offs ending, saving state) and takes
signals; rescans and cleanups run on threads of their own, so a million
names never hold up a new key's event. One lock guards the schedule (with
a condition senders wait on); no thread holds it while it waits for the
queue lock, a POST, an fsync or a listing. The main thread is not woken per
event: at hundreds of events a second, thread ping-pong would cost more
than the POST.
"""

import logging
import os
import select
import threading
import time

from pdagent.escape import mask_key
from pdagent.event import EventError, entry_to_request
from pdagent.scheduler import (
    BAD_ENTRY,
    DELIVERED,
    FAILED,
    GONE,
    REJECTED,
    UNREACHABLE,
    Scheduler,
)
from pdagent.sender import Outcome
from pdagent.spool import SpoolError, event_file_name, fsync_directory, parse_file_name
from pdagent.watch import open_watch

log = logging.getLogger("pdagent.delivery")

STATE_SAVE_INTERVAL_SECS = 1.0
FORGET_IDLE_KEYS_SECS = 300.0
LOCK_RETRY_SECS = 0.01
SYNC_BATCH_SECS = 0.02  # a batch of moves waits at most this long for its fsyncs
# With inotify working, the periodic rescan is only a safety net: it may take
# at most this share of the time (a million names take seconds to list).
RESCAN_TIME_SHARE = 0.02
# pdq/'s mtime is kept at the newest enqueue time seen, but never further
# ahead of the clock than this (a name from another user can claim any time).
MAX_CLOCK_LEAD_US = 86400 * 1_000_000


def mask_name(name):
    """A spool file name as logs show it: the key part masked (whatever else the name holds)."""
    parsed = parse_file_name(name)
    if parsed:
        return event_file_name(parsed[0], mask_key(parsed[1]))
    return f"<{len(name)}-character name ending {name[-4:]!r}>"


class Engine:
    def __init__(self, main_config, spool, api, state, source_host=None, senders=1, clock=time.monotonic):
        self.config = main_config
        self.spool = spool
        self.api = api
        self.state = state
        self.source_host = source_host or (lambda: os.uname().nodename)
        self.senders = senders
        self.clock = clock
        self.pdq_dir = os.path.join(spool.outqueue_dir, "pdq")
        self.scheduler = Scheduler(
            clock, max_per_minute=main_config.max_events_per_minute_per_key,
            backoff_interval=main_config.backoff_interval_secs, backoff_max=main_config.backoff_max_secs,
            retry_limit=main_config.retry_limit_for_possible_errors)
        self._lock = threading.Lock()  # guards the scheduler and everything below
        self._changed = threading.Condition(self._lock)      # senders wait on it
        self._sync_wanted = threading.Condition(self._lock)  # the syncer waits on it
        self._unsynced_keys = []     # keys whose last move is not yet durable
        self._unsynced_dirs = set()  # the directories those moves went to
        self._unsynced_since = 0.0   # when the first of them was moved (monotonic)
        self._rescan_wanted = False
        self._rescan_thread = None
        self._rescan_secs = 0.0      # how long the last listing of pdq/ took
        self._cleanup_thread = None
        self._main_loop_deadline = 0.0  # when the main loop wakes up next (monotonic)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._warned_names = set()
        self._unmovable = set()  # bad entries that cannot be moved to err/: skipped, not retried
        self._lock_failure_logged = False
        self._sync_failure_logged = False
        self._stopping = False

    # -- the main loop -------------------------------------------------------

    def wake(self):
        """Make the main loop look up now (safe from a signal handler)."""
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway

    def stop(self):
        self._stopping = True
        self.wake()

    def run(self, stop_grace_secs=12.0, on_tick=None):
        """Deliver until stop(); then wait up to `stop_grace_secs` for the events in flight.

        `on_tick()` runs in this thread after every wake-up (the daemon reopens
        its log there on SIGHUP, outside any signal handler).
        """
        threads = [threading.Thread(target=self._sender_loop, name=f"sender-{number}", daemon=True)
                   for number in range(self.senders)]
        threads.append(threading.Thread(target=self._syncer_loop, name="syncer", daemon=True))
        self._restore_state()
        watch = self._open_watch()
        if watch is None:
            log.warning("inotify unavailable for %s: new events are found by the rescan every %s s",
                        self.pdq_dir, self.config.send_interval_secs)
        self._list_pending(first=True)
        for thread in threads:
            thread.start()
        now = self.clock()
        self._start_cleanup()
        next_rescan = now + self._rescan_interval(watch)
        next_cleanup = now + self.config.cleanup_interval_secs
        next_forget = now + FORGET_IDLE_KEYS_SECS
        next_save = now
        try:
            while not self._stopping:
                now = self.clock()
                if now >= next_rescan:
                    if watch is None:
                        watch = self._open_watch()
                    self._start_rescan()
                    next_rescan = now + self._rescan_interval(watch)
                if now >= next_cleanup:
                    self._start_cleanup()
                    next_cleanup = now + self.config.cleanup_interval_secs
                with self._lock:
                    if self.scheduler.wake_due():
                        self._changed.notify_all()
                    if now >= next_forget:
                        self.scheduler.forget_idle_keys()
                        next_forget = now + FORGET_IDLE_KEYS_SECS
                    save_wanted = self.state.dirty or self.scheduler.saved_changed
                if save_wanted and now >= next_save:
                    self._save_state()
                    next_save = now + STATE_SAVE_INTERVAL_SECS
                with self._lock:
                    due = self.scheduler.next_deadline()
                    save_wanted = self.state.dirty or self.scheduler.saved_changed
                    deadline = min(next_rescan, next_cleanup, next_forget,
                                   next_rescan if due is None else due,
                                   next_save if save_wanted else next_rescan)
                    self._main_loop_deadline = deadline  # senders wake us for anything sooner
                readable, _, _ = select.select([self._wake_read] + ([watch] if watch else []), [], [],
                                               max(0.0, deadline - self.clock()))
                if watch is not None and watch in readable:
                    watch = self._take_notifications(watch)
                self._drain_wake_pipe()
                if on_tick is not None:
                    on_tick()
        finally:
            self._shut_down(threads, stop_grace_secs)
            if watch is not None:
                watch.close()

    def _shut_down(self, threads, grace_secs):
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
            self._sync_wanted.notify_all()
        deadline = self.clock() + grace_secs
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock()))
        self._sync_moves()  # whatever a sender moved after the syncer stopped
        with self._lock:
            if self.scheduler.in_flight:
                log.warning("stopping with %d event(s) unanswered; they stay queued and are sent again",
                            self.scheduler.in_flight)
        self._save_state()

    def _drain_wake_pipe(self):
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    # -- the index of pending events -------------------------------------------

    def _open_watch(self):
        watch = open_watch(self.pdq_dir)
        if watch is not None:
            self._keep_pdq_mtime_ahead()
        return watch

    def _rescan_interval(self, watch):
        if watch is None:
            return self.config.send_interval_secs  # the only way new events are found
        return max(self.config.send_interval_secs, self._rescan_secs / RESCAN_TIME_SHARE)

    def _skipped(self, name):
        if name not in self._warned_names and len(self._warned_names) < 10000:
            self._warned_names.add(name)
            log.warning("skipping %r in pdq/: not an event file name (<time>_<key>.txt)",
                        mask_name(name))

    def _parse(self, name):
        """(enqueue time, routing key) of a pdq/ name in the agent's format, else None (logged once).

        Any local user may create names in pdq/: parse_file_name takes any
        string without raising (tests/test_spool_names.py proves it), so no
        name can stop the rescan or the inotify path.
        """
        if name in self._unmovable:
            return None
        parsed = parse_file_name(name)
        if parsed is None:
            self._skipped(name)
        return parsed

    def _list_pending(self, first=False):
        """Rebuild the index from a full listing of pdq/ (at start, and as the safety net
        for missed notifications). The listing is taken without the lock: senders go on,
        and the scheduler keeps what changed meanwhile."""
        started = self.clock()
        with self._lock:
            self.scheduler.begin_listing()
        try:
            found = self.spool.pending_stamps(skipped=self._skipped)
        except SpoolError as error:
            log.error("%s", error)
            with self._lock:
                self.scheduler.abort_listing()
            return
        for name in self._unmovable:
            stamp, routing_key = parse_file_name(name)
            if stamp in found.get(routing_key, ()):
                found[routing_key].remove(stamp)
        events, keys = sum(map(len, found.values())), len(found)
        with self._lock:
            self.scheduler.end_listing(found)
            self._changed.notify_all()
        self._rescan_secs = self.clock() - started
        log.log(logging.INFO if first else logging.DEBUG, "indexed %d pending event(s) of %d key(s) in %.2f s",
                events, keys, self._rescan_secs)
        self._keep_pdq_mtime_ahead()

    def _start_rescan(self):
        """List pdq/ again on a thread of its own (once more after it, if one is running)."""
        with self._lock:
            self._rescan_wanted = True
            if self._rescan_thread is not None:
                return
            self._rescan_thread = threading.Thread(target=self._rescan_loop, name="rescan", daemon=True)
            self._rescan_thread.start()

    def _rescan_loop(self):
        while True:
            with self._lock:
                if not self._rescan_wanted or self._stopping:
                    self._rescan_thread = None
                    return
                self._rescan_wanted = False
            self._list_pending()

    def _take_notifications(self, watch):
        """Index the names inotify reported; returns the watch to go on with."""
        names, overflowed, lost = watch.read()
        if lost:
            log.warning("%s was removed or replaced: watching it anew and rescanning", self.pdq_dir)
            watch.close()
            watch = self._open_watch()
            if watch is None:
                log.error("cannot watch %s: new events are found by the rescan every %s s until it can",
                          self.pdq_dir, self.config.send_interval_secs)
            self._start_rescan()
        elif overflowed:
            log.info("inotify queue overflowed: rescanning %s", self.pdq_dir)
            self._start_rescan()
        parsed = [pair for pair in map(self._parse, names) if pair]
        if parsed:
            with self._lock:
                for stamp, routing_key in parsed:
                    self.scheduler.add(routing_key, stamp)
                self._changed.notify_all()
            self._keep_pdq_mtime_ahead()
        return watch

    def _keep_pdq_mtime_ahead(self):
        """After the wall clock stepped back, keep pdq/'s mtime at the newest enqueue time seen.

        Writers take the later of now and pdq/'s mtime (spool.py), but each new
        name or move sets that mtime to the (now earlier) time: put back, it
        keeps a later event of a key sorting after the earlier ones.
        """
        now_us = int(time.time() * 1_000_000)  # not time_ns(): Python 3.6 has none
        newest = self.scheduler.highest_stamp
        if newest < now_us:
            return  # the usual case: the clock is ahead of every name
        ahead_ns = min(newest, now_us + MAX_CLOCK_LEAD_US) * 1000
        try:
            os.utime(self.pdq_dir, ns=(ahead_ns, ahead_ns))
        except OSError as error:
            log.debug("cannot set the time of %s: %s", self.pdq_dir, error.strerror)

    # -- sender threads ---------------------------------------------------------

    def _sender_loop(self):
        while True:
            with self._lock:
                job = None if self._stopping else self.scheduler.next_job()
                while job is None:
                    if self._stopping:
                        return
                    if self._unsynced_keys:
                        self._sync_wanted.notify()  # nothing else to send: sync the batch now
                    self._changed.wait()
                    job = None if self._stopping else self.scheduler.next_job()
            routing_key, enqueue_time = job
            name = event_file_name(enqueue_time, routing_key)
            try:
                outcome, summary = self._send(name, routing_key)
            except Exception as error:  # never lose the thread: the event stays queued
                log.exception("unexpected error sending %s", mask_name(name))
                outcome, summary = Outcome(UNREACHABLE, reason=f"internal error: {error!r}"), None
            self._handle(routing_key, name, outcome, summary)

    def _send(self, name, routing_key):
        """Read, convert and POST one event of `routing_key`; (Outcome, (action, dedup key))."""
        try:
            entry = self.spool.read_entry("pdq", name)
        except FileNotFoundError:
            return Outcome(GONE), None
        except SpoolError as error:
            return Outcome(BAD_ENTRY, reason=str(error)), None
        try:
            endpoint, body = entry_to_request(entry, self.source_host())
        except EventError as error:
            return Outcome(BAD_ENTRY, reason=f"invalid event: {error}"), None
        except Exception as error:  # an entry no check foresaw must not block its key
            log.exception("cannot convert %s", mask_name(name))
            return Outcome(BAD_ENTRY, reason=f"invalid event: {error!r}"), None
        action = body.get("event_action", "change")
        summary = (action, body.get("dedup_key", "-"))
        if body["routing_key"] != routing_key:
            # Sent under the body's key, a file could take the name's place in line
            # and hold up that key's events (a throttled key never ends): refused.
            return Outcome(BAD_ENTRY, reason="the routing key in the event differs from the one "
                                             "in its file name"), summary
        return self.api.post(endpoint, body), summary

    # -- answers -------------------------------------------------------------

    def _handle(self, routing_key, name, outcome, summary):
        """Act on one answer: move the file, count, back off; then give the key back to the schedule.

        The file is moved holding only the queue lock, never the schedule's: a
        `pd-queue retry` that holds the queue lock (even suspended) stops this
        sender, not the main loop or the other keys' bookkeeping.
        """
        kind = outcome.kind
        limit = self.config.retry_limit_for_possible_errors
        gives_up = False
        if kind == FAILED:
            with self._lock:
                gives_up = self.scheduler.count_failure(routing_key) >= limit
            if gives_up:
                outcome.reason += f" ({limit} failures in a row: moved to the error queue)"
        left_queue = moved = False
        finish_kind, reason = kind, outcome.reason
        if kind in (DELIVERED, REJECTED, BAD_ENTRY) or gives_up:
            target = "suc" if kind == DELIVERED else "err"
            left_queue, moved, failure = self._move_out(name, target, outcome)
            if failure is not None:
                log.error("cannot move %s to %s/: %s", mask_name(name), target, failure)
                finish_kind, reason = FAILED, failure  # kept, and the key backs off rather than spin
        elif kind == GONE:
            left_queue = True
        self._log(name, routing_key, outcome, summary)
        with self._lock:
            if moved:
                self.state.count("delivered" if target == "suc" else "failed")
            save_was_wanted = self.scheduler.saved_changed
            self.scheduler.finish(routing_key, finish_kind, left_queue, moved=moved,
                                  retry_after=outcome.retry_after if finish_kind == kind else None,
                                  reason=reason)
            if moved:
                if not self._unsynced_keys:
                    self._unsynced_since = self.clock()
                    self._sync_wanted.notify()  # starts the syncer's batch
                self._unsynced_keys.append(routing_key)
                self._unsynced_dirs.add(target)
            if self.scheduler.ready_count():
                self._changed.notify()
            due = self.scheduler.next_deadline()
            main_loop_must_look = ((due is not None and due < self._main_loop_deadline)
                                   or (self.scheduler.saved_changed and not save_was_wanted))
        if main_loop_must_look:  # a deadline it does not know of, or a back-off to save
            self.wake()

    def _move_out(self, name, target, outcome):
        """Move an answered event to suc/ or err/ under the queue lock.

        Returns (left pdq/, moved by us, why it could not be moved or None). A
        stop while another process holds the lock leaves the event queued
        (sent again after the restart).
        """
        lock = self.spool.lock(required=False, on_failure=self._lock_failed)
        while not lock.acquire(wait=False):
            if self._stopping:
                return False, False, None
            time.sleep(LOCK_RETRY_SECS)
        try:
            if target == "suc":
                self.spool.move(name, "pdq", "suc")
            else:
                self.spool.reject(name, {"status": outcome.status, "reason": outcome.reason,
                                         "kind": outcome.kind})
        except FileNotFoundError:
            return True, False, None  # moved away meanwhile (by hand)
        except OSError as error:
            if outcome.kind == BAD_ENTRY:
                # Not an event at all (e.g. a directory another user made, which we
                # may not move): skip it for good rather than block the key behind it.
                self._unmovable.add(name)
                log.error("skipping %s in pdq/: %s, and it cannot be moved to err/: %s",
                          mask_name(name), outcome.reason, error.strerror)
                return True, False, None
            # Answered but not moved: it stays pending and may be sent again (at least once).
            return False, False, error.strerror
        finally:
            lock.release()
        return True, True, None

    def _lock_failed(self, error):
        # db/ lost its lock file and cannot make another: go on unlocked (pd-queue
        # retry then cannot run), which beats stopping delivery. Said once.
        if not self._lock_failure_logged:
            self._lock_failure_logged = True
            log.error("cannot open the queue lock in %s: %s; delivering without it",
                      self.spool.db_dir, error.strerror)

    def _log(self, name, routing_key, outcome, summary):
        if outcome.kind == GONE:
            return
        action, dedup_key = summary or ("-", "-")
        line = (f"event {mask_name(name)} key={mask_key(routing_key)} action={action} "
                f"dedup_key={dedup_key} status={outcome.status or '-'} result={outcome.kind}")
        if outcome.kind == DELIVERED:
            log.info(line)
        elif outcome.tls_problem:
            log.error("%s TLS VERIFICATION FAILED, will retry: %s", line, outcome.reason)
        else:
            log.warning("%s reason=%s", line, outcome.reason)

    # -- durability ------------------------------------------------------------

    def _syncer_loop(self):
        """Sync the moves in batches, so that one pair of fsyncs serves many events.

        A batch is synced once few keys are left ready to send besides those
        waiting for it (the fsync overlaps their sends, and no sender runs
        dry), when a sender has nothing else to send, or SYNC_BATCH_SECS
        after its first move.
        """
        while True:
            with self._lock:
                while not self._unsynced_keys and not self._stopping:
                    self._sync_wanted.wait()
                if not self._unsynced_keys:
                    return
                while not self._stopping and self.scheduler.ready_count() > len(self._unsynced_keys) // 4:
                    remaining = self._unsynced_since + SYNC_BATCH_SECS - self.clock()
                    if remaining <= 0:
                        break
                    self._sync_wanted.wait(remaining)
            self._sync_moves()

    def _sync_moves(self):
        """Make every move so far durable (target directories, then pdq/), then let those keys go on.

        The target first: were pdq/ made durable alone, a power cut could lose
        the name from both directories.
        """
        with self._lock:
            keys, targets = self._unsynced_keys, self._unsynced_dirs
            self._unsynced_keys, self._unsynced_dirs = [], set()
        if not keys:
            return
        for directory in [self.spool.path(target, "") for target in sorted(targets)] + [self.pdq_dir]:
            try:
                fsync_directory(directory)
            except OSError as error:
                # Not durable, but still moved: a power cut may repeat these events (at least once).
                if not self._sync_failure_logged:
                    self._sync_failure_logged = True
                    log.error("cannot fsync %s: %s", directory, error.strerror)
        self._keep_pdq_mtime_ahead()
        with self._lock:
            self.scheduler.synced(keys)
            self._changed.notify_all()

    # -- housekeeping ----------------------------------------------------------

    def _restore_state(self):
        with self._lock:
            self.scheduler.restore(self.state.saved_keys, time.time())
            self.scheduler.saved_changed = True  # what was not taken back leaves state.json

    def _save_state(self):
        """Write state.json: encoded under the lock, written (and fsynced) outside it."""
        with self._lock:
            data = self.state.encode(self.scheduler.saved_keys(time.time()))
            self.scheduler.saved_changed = False
        try:
            self.state.write(data)
        except OSError as error:
            with self._lock:
                self.state.dirty = True
            log.error("cannot save %s: %s (kept in memory, retried)", self.state.db_dir, error.strerror)

    def _start_cleanup(self):
        """Clean up suc/, err/ and tmp/ on a thread of its own (it may wait for the queue lock)."""
        if self._cleanup_thread is not None and self._cleanup_thread.is_alive():
            return
        self._cleanup_thread = threading.Thread(target=self._cleanup, name="cleanup", daemon=True)
        self._cleanup_thread.start()

    def _cleanup(self):
        try:
            removed = self.spool.cleanup(self.config.cleanup_threshold_secs)
        except (OSError, SpoolError) as error:
            log.error("cleanup failed: %s", error)
            return
        if removed:
            log.info("cleanup removed %d old file(s)", removed)
