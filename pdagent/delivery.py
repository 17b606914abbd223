"""The delivery engine: from the spool's pdq/ to the Events API, routing key by key.

Rules:
- Per routing key, one event in flight at a time, oldest name first: nothing
  of a key is sent while an earlier event of it is pending, so a resolve never
  overtakes its trigger.
- Keys take turns (round robin) for the sender thread(s), so a busy,
  throttled or backed-off key never delays another key. With the default
  `send_concurrency = 1` one event is in flight at a time, so a crash can
  make at most one event be sent twice.
- A file leaves pdq/ only after the Events API answered: 2xx -> suc/, a
  rejection -> err/ (with the reason). Anything else leaves it in pdq/ and
  backs the key off (sender.py says which answer means what).
- Pacing: at most `max_events_per_minute_per_key` sends per key in any 60 s,
  PagerDuty's own window, so bursts wait here instead of bouncing with 429.

Threads: sender threads take the next event, POST it and act on the answer
themselves; the main thread watches pdq/ (inotify, rescans), runs the timers
(back-offs ending, cleanup, saving state) and takes signals. All schedule
state is guarded by one lock (with a condition senders wait on); the HTTP
request runs outside it. The main thread is not woken per event: at
hundreds of events a second, thread ping-pong would cost more than the POST.
"""

import collections
import heapq
import logging
import os
import random
import select
import threading
import time

from pdagent.event import EventError, entry_to_request
from pdagent.sender import DELIVERED, FAILED, REJECTED, UNREACHABLE, Outcome
from pdagent.spool import SpoolError, event_file_name, parse_file_name
from pdagent.watch import open_watch

log = logging.getLogger("pdagent.delivery")

GONE, BAD_ENTRY = "gone", "bad entry"  # outcomes found before any POST
IDLE, READY, WAITING, SENDING = "idle", "ready", "waiting", "sending"
MAX_RETRY_AFTER_SECS = 3600
PACING_WINDOW_SECS = 60.0
STATE_SAVE_INTERVAL_SECS = 1.0


def mask_key(routing_key):
    """What logs show of a routing key: its last 4 characters."""
    return "****" + routing_key[-4:]


def mask_name(name):
    """A spool file name as logs show it: the key part masked (whatever else the name holds)."""
    parsed = parse_file_name(name)
    if parsed:
        return event_file_name(parsed[0], mask_key(parsed[1]))
    return f"<{len(name)}-character name ending {name[-4:]!r}>"


class _Key:
    """One routing key's pending events (a heap of enqueue times) and its place in the schedule."""

    __slots__ = ("in_flight", "pending", "recent_sends", "routing_key", "status")

    def __init__(self, routing_key):
        self.routing_key = routing_key
        self.pending = []
        self.status = IDLE
        self.in_flight = None
        self.recent_sends = collections.deque()


class Engine:
    def __init__(self, main_config, spool, api, state, source_host=None, senders=1):
        self.config = main_config
        self.spool = spool
        self.api = api
        self.state = state
        self.source_host = source_host or (lambda: os.uname().nodename)
        self.senders = senders
        self.pdq_dir = os.path.join(spool.outqueue_dir, "pdq")
        self.keys = {}
        self.ready = collections.deque()
        self.waiting = []  # heap of (when, routing key)
        self.in_flight = 0
        self._changed = threading.Condition()  # guards everything above; senders wait on it
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._warned_names = set()
        self._unmovable = set()  # bad entries that cannot be moved to err/: skipped, not retried
        self._lock_failure_logged = False
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
        watch = open_watch(self.pdq_dir)
        if watch is None:
            log.warning("inotify unavailable for %s: new events are found by the rescan every %s s",
                        self.pdq_dir, self.config.send_interval_secs)
        self._cleanup()
        now = time.time()
        self.rescan(now)
        for thread in threads:
            thread.start()
        next_rescan = now + self.config.send_interval_secs
        next_cleanup = now + self.config.cleanup_interval_secs
        next_save = now
        try:
            while not self._stopping:
                now = time.time()
                if now >= next_rescan:
                    self.rescan(now)
                    next_rescan = now + self.config.send_interval_secs
                if now >= next_cleanup:
                    self._cleanup()
                    next_cleanup = now + self.config.cleanup_interval_secs
                with self._changed:
                    self._wake_due(now)
                    if self.state.dirty and now >= next_save:
                        self._save_state()
                        next_save = now + STATE_SAVE_INTERVAL_SECS
                    deadline = min(next_rescan, next_cleanup,
                                   self.waiting[0][0] if self.waiting else next_rescan,
                                   next_save if self.state.dirty else next_rescan)
                readable, _, _ = select.select([self._wake_read] + ([watch] if watch else []), [], [],
                                               max(0.0, deadline - time.time()))
                if watch is not None and watch in readable:
                    self._take_new_names(watch, time.time())
                self._drain_wake_pipe()
                if on_tick is not None:
                    on_tick()
        finally:
            self._shut_down(threads, stop_grace_secs)
            if watch is not None:
                watch.close()

    def _shut_down(self, threads, grace_secs):
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        deadline = time.time() + grace_secs
        for thread in threads:
            thread.join(max(0.0, deadline - time.time()))
        with self._changed:
            if self.in_flight:
                log.warning("stopping with %d event(s) unanswered; they stay queued and are sent again",
                            self.in_flight)
            self._save_state()

    def _drain_wake_pipe(self):
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    # -- the index of pending events -------------------------------------------

    def _parse(self, name):
        """(enqueue time, routing key) of a pdq/ name in the agent's format, else None (logged once).

        Any local user may create names in pdq/: parse_file_name takes any
        string without raising (tests/test_spool_names.py proves it), so no
        name can stop the rescan or the inotify path.
        """
        if name in self._unmovable:
            return None
        parsed = parse_file_name(name)
        if parsed:
            return parsed
        if name not in self._warned_names and len(self._warned_names) < 10000:
            self._warned_names.add(name)
            log.warning("skipping %r in pdq/: not an event file name (<time>_<key>.txt)",
                        mask_name(name))
        return None

    def rescan(self, now):
        """Rebuild the index from a full listing of pdq/ (the fallback for missed notifications).

        The listing is taken without the lock (senders go on); an event sent
        meanwhile may be indexed again and is skipped as gone when its turn comes.
        """
        found = {}
        try:
            with os.scandir(self.pdq_dir) as entries:
                for entry in entries:
                    parsed = self._parse(entry.name)
                    if parsed:
                        found.setdefault(parsed[1], []).append(parsed[0])
        except OSError as error:
            log.error("cannot list %s: %s", self.pdq_dir, error.strerror)
            return
        with self._changed:
            self._merge_listing(found, now)
            self._changed.notify_all()

    def _merge_listing(self, found, now):
        for routing_key in list(self.keys):
            if routing_key not in found and self.keys[routing_key].status != SENDING:
                del self.keys[routing_key]  # nothing left; a stale schedule entry is skipped
        for routing_key, times in found.items():
            record = self.keys.get(routing_key)
            if record is None:
                record = self.keys[routing_key] = _Key(routing_key)
            if record.in_flight is not None:
                times = [stamp for stamp in times if stamp != record.in_flight]
            heapq.heapify(times)
            record.pending = times
            self._schedule(record, now)

    def _take_new_names(self, watch, now):
        names, overflowed = watch.read()
        if overflowed:
            log.info("inotify queue overflowed: rescanning %s", self.pdq_dir)
            self.rescan(now)
            return
        with self._changed:
            for name in names:
                parsed = self._parse(name)
                if parsed:
                    record = self.keys.get(parsed[1])
                    if record is None:
                        record = self.keys[parsed[1]] = _Key(parsed[1])
                    heapq.heappush(record.pending, parsed[0])
                    self._schedule(record, now)
            self._changed.notify_all()

    # -- the schedule --------------------------------------------------------

    def _schedule(self, record, now):
        """Put an idle key with pending events in line: ready now, or waiting until its time."""
        if record.status != IDLE or not record.pending:
            return
        when = max(self._backoff_until(record.routing_key), self._pacing_until(record, now))
        if when <= now:
            record.status = READY
            self.ready.append(record.routing_key)
        else:
            record.status = WAITING
            heapq.heappush(self.waiting, (when, record.routing_key))

    def _backoff_until(self, routing_key):
        saved = self.state.keys.get(routing_key)
        return saved.get("backoff_until", 0) if saved else 0

    def _pacing_until(self, record, now):
        limit = self.config.max_events_per_minute_per_key
        sends = record.recent_sends
        while sends and sends[0] <= now - PACING_WINDOW_SECS:
            sends.popleft()
        if limit and len(sends) >= limit:
            return sends[-limit] + PACING_WINDOW_SECS
        return 0

    def _wake_due(self, now):
        woken = False
        while self.waiting and self.waiting[0][0] <= now:
            _, routing_key = heapq.heappop(self.waiting)
            record = self.keys.get(routing_key)
            if record is not None and record.status == WAITING:
                record.status = IDLE
                self._schedule(record, now)
                woken = True
        if woken:
            self._changed.notify_all()

    def _take_job(self, now):
        """The next (routing key, enqueue time) to send, marked in flight; None if none is ready."""
        while self.ready and not self._stopping:
            record = self.keys.get(self.ready.popleft())
            if record is None or record.status != READY:
                continue
            if not record.pending:
                record.status = IDLE
                continue
            record.in_flight = heapq.heappop(record.pending)
            record.status = SENDING
            if self.config.max_events_per_minute_per_key:
                record.recent_sends.append(now)
            self.in_flight += 1
            return record.routing_key, record.in_flight
        return None

    # -- sender threads ---------------------------------------------------------

    def _sender_loop(self):
        while True:
            with self._changed:
                job = self._take_job(time.time())
                while job is None:
                    if self._stopping:
                        return
                    self._changed.wait()
                    job = self._take_job(time.time())
            routing_key, enqueue_time = job
            name = event_file_name(enqueue_time, routing_key)
            try:
                outcome, summary = self._send(name, routing_key)
            except Exception as error:  # never lose the thread: the event stays queued
                log.exception("unexpected error sending %s", mask_name(name))
                outcome, summary = Outcome(UNREACHABLE, reason=f"internal error: {error!r}"), None
            with self._changed, self.spool.lock(required=False, on_failure=self._lock_failed):
                self._handle(routing_key, name, outcome, summary, time.time())

    def _lock_failed(self, error):
        # db/ lost its lock file and cannot make another: go on unlocked (pd-queue
        # retry then cannot run), which beats stopping delivery. Said once.
        if not self._lock_failure_logged:
            self._lock_failure_logged = True
            log.error("cannot open the queue lock in %s: %s; delivering without it",
                      self.spool.db_dir, error.strerror)

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

    def _handle(self, routing_key, name, outcome, summary, now):
        """Act on one answer: move the file, count, back off; then put the key back in line."""
        record = self.keys[routing_key]
        record.status, record.in_flight = IDLE, None
        self.in_flight -= 1
        kind = outcome.kind
        if kind == DELIVERED:
            if self._move(name, "suc", record, now):
                self.state.count("delivered")
                self.state.clear_key(routing_key)
        elif kind in (REJECTED, BAD_ENTRY):
            self._reject(name, outcome, record, now)
        elif kind != GONE:  # throttled, failed or unreachable: the key backs off
            # Only failures that may be the event's own (5xx, timeouts) count towards the limit.
            limit = self.config.retry_limit_for_possible_errors
            if kind == FAILED and self._failures_in_a_row(routing_key) >= limit:
                outcome.reason += f" ({limit} failures in a row: moved to the error queue)"
                self._reject(name, outcome, record, now)
                self._back_off(routing_key, outcome, now)
            else:
                self._send_later(record, name, outcome, now)
        self._log(name, routing_key, outcome, summary)
        self._schedule(record, now)
        if record.status == READY:
            self._changed.notify()

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

    def _move(self, name, to_state, record, now):
        try:
            self.spool.move(name, "pdq", to_state)
            return True
        except FileNotFoundError:
            return False  # moved away meanwhile (by hand)
        except OSError as error:
            # Delivered but not moved: it stays pending and may be sent again
            # later (at least once).
            self._cannot_move(record, name, to_state, error, now)
            return False

    def _cannot_move(self, record, name, to_state, error, now):
        """A move out of pdq/ failed: keep the event and back the key off rather than spin on it."""
        log.error("cannot move %s to %s/: %s", mask_name(name), to_state, error.strerror)
        self._send_later(record, name, Outcome(FAILED, reason=error.strerror), now)

    def _send_later(self, record, name, outcome, now):
        """Put the event back at the head of its key, and back the key off."""
        heapq.heappush(record.pending, parse_file_name(name)[0])
        self._back_off(record.routing_key, outcome, now)

    def _reject(self, name, outcome, record, now):
        reason = {"status": outcome.status, "reason": outcome.reason, "kind": outcome.kind}
        try:
            self.spool.reject(name, reason)
        except FileNotFoundError:
            return
        except OSError as error:
            if outcome.kind == BAD_ENTRY:
                # Not an event at all (e.g. a directory another user made, which we
                # may not move): skip it for good rather than block the key behind it.
                self._unmovable.add(name)
                log.error("skipping %s in pdq/: %s, and it cannot be moved to err/: %s",
                          mask_name(name), outcome.reason, error.strerror)
                return
            self._cannot_move(record, name, "err", error, now)
            return
        self.state.count("failed")
        saved = self.state.keys.get(record.routing_key)
        if saved:
            saved["failures"] = 0

    def _failures_in_a_row(self, routing_key):
        """Count one more failure of the key's oldest event; returns how many in a row."""
        saved = self.state.key(routing_key)
        saved["failures"] = saved.get("failures", 0) + 1
        self.state.dirty = True
        return saved["failures"]

    def _back_off(self, routing_key, outcome, now):
        saved = self.state.key(routing_key)
        if outcome.retry_after is not None:
            delay = min(outcome.retry_after, MAX_RETRY_AFTER_SECS)
        else:
            exponent = min(saved.get("backoffs", 0), 30)
            delay = min(self.config.backoff_interval_secs * 2 ** exponent, self.config.backoff_max_secs)
            delay *= random.uniform(0.75, 1.0)  # jitter: keys that failed together retry apart
        saved["backoffs"] = saved.get("backoffs", 0) + 1
        saved["backoff_until"] = now + delay
        saved["reason"] = outcome.reason
        self.state.dirty = True
        # Saved at once (counters wait for the once-a-second save): pd-queue status
        # shows the back-off, and a restart honours it.
        self._save_state()

    # -- housekeeping ----------------------------------------------------------

    def _save_state(self):
        try:
            self.state.save()
        except OSError as error:
            log.error("cannot save %s: %s (kept in memory, retried)", self.state.db_dir, error.strerror)

    def _cleanup(self):
        try:
            removed = self.spool.cleanup(self.config.cleanup_threshold_secs)
        except OSError as error:
            log.error("cleanup failed: %s", error)
            return
        if removed:
            log.info("cleanup removed %d old file(s)", removed)
