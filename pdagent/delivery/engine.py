"""The delivery engine: the main loop and the sender threads, around the schedule.

Threads: sender threads take the next event, POST it and act on the answer
themselves (commit.py moves its file); the syncer makes moves durable; the
main thread watches pdq/ (inotify), runs the timers (back-offs ending,
saving state) and takes signals; rescans and cleanups run on threads of
their own, so a million names never hold up a new key's event. The main
thread is not woken per event: at hundreds of events a second, thread
ping-pong would cost more than the POST.

Clocks and sleep are injected (`clock` monotonic, `wall_clock`, `sleep`),
as is the Events API client, so a test can drive the engine without a real
HTTP server.
"""

import logging
import os
import select
import threading
import time

from pdagent.delivery.commit import Committer, Move
from pdagent.delivery.guard import GuardedSchedule
from pdagent.delivery.housekeeping import Housekeeper
from pdagent.delivery.index import PendingIndex
from pdagent.delivery.schedule import Scheduler
from pdagent.escape import mask_key, mask_name
from pdagent.event import EventError, entry_to_request
from pdagent.outcome import (
    BAD_ENTRY,
    DELIVERED,
    FAILED,
    GONE,
    REJECTED,
    UNREACHABLE,
    Outcome,
)
from pdagent.spool.files import SpoolError
from pdagent.spool.names import event_file_name
from pdagent.spool.queue import parse_entry
from pdagent.wakeup import WakeupPipe

log = logging.getLogger("pdagent.delivery")

STATE_SAVE_INTERVAL_SECS = 1.0
FORGET_IDLE_KEYS_SECS = 300.0


class Attempt:
    """One try at an event: the answer (an Outcome), what it was (action, dedup key) and the
    inode that was read (None if nothing was)."""

    __slots__ = ("inode", "outcome", "summary")

    def __init__(self, outcome, summary=("-", "-"), inode=None):
        self.outcome = outcome
        self.summary = summary
        self.inode = inode


class Engine:
    """Delivers what pdq/ holds until stop()."""

    def __init__(self, main_config, spool, api, saved, source_host=None, senders=1,
                 clock=time.monotonic, wall_clock=time.time, sleep=time.sleep):
        self.config = main_config
        self.spool = spool
        self.api = api
        self.saved = saved
        self.source_host = source_host or (lambda: os.uname().nodename)
        self.senders = senders
        self.clock = clock
        self.guarded = GuardedSchedule(Scheduler(
            clock, max_per_minute=main_config.max_events_per_minute_per_key,
            backoff_interval=main_config.backoff_interval_secs, backoff_max=main_config.backoff_max_secs,
            retry_limit=main_config.retry_limit_for_possible_errors))
        self.scheduler = self.guarded.scheduler
        self.index = PendingIndex(spool, self.guarded, main_config.send_interval_secs, clock)
        self.committer = Committer(spool, self.guarded, clock, sleep)
        self.housekeeper = Housekeeper(spool, self.guarded, saved, main_config.cleanup_threshold_secs, wall_clock)
        self._main_loop_deadline = 0.0  # when the main loop wakes up next (monotonic)
        self._wakeup = WakeupPipe()

    # -- the main loop -------------------------------------------------------

    def wake(self):
        """Make the main loop look up now (safe from a signal handler)."""
        self._wakeup.wake()

    def stop(self):
        self.guarded.stopping = True
        self.wake()

    def run(self, stop_grace_secs=12.0, on_tick=None):
        """Deliver until stop(); then wait up to `stop_grace_secs` for the events in flight.

        `on_tick()` runs in this thread after every wake-up (the daemon reopens
        its log there on SIGHUP, outside any signal handler).
        """
        guarded, index, housekeeper = self.guarded, self.index, self.housekeeper
        threads = [threading.Thread(target=self._sender_loop, name=f"sender-{number}", daemon=True)
                   for number in range(self.senders)]
        threads.append(threading.Thread(target=self.committer.syncer_loop, name="syncer", daemon=True))
        housekeeper.restore()
        watch = index.open_watch()
        if watch is None:
            log.warning("inotify unavailable for %s: new events are found by the rescan every %s s",
                        index.pdq_dir, self.config.send_interval_secs)
        index.list_pending(first=True)
        for thread in threads:
            thread.start()
        now = self.clock()
        housekeeper.start_cleanup()
        next_rescan = now + index.rescan_interval(watch)
        next_cleanup = now + self.config.cleanup_interval_secs
        next_forget = now + FORGET_IDLE_KEYS_SECS
        next_save = now
        try:
            while not guarded.stopping:
                now = self.clock()
                if now >= next_rescan:
                    if watch is None:
                        watch = index.open_watch()
                    index.start_rescan()
                    next_rescan = now + index.rescan_interval(watch)
                if now >= next_cleanup:
                    housekeeper.start_cleanup()
                    next_cleanup = now + self.config.cleanup_interval_secs
                with guarded.lock:
                    if self.scheduler.wake_due():
                        guarded.changed.notify_all()
                    if now >= next_forget:
                        self.scheduler.forget_idle_keys()
                        next_forget = now + FORGET_IDLE_KEYS_SECS
                    save_wanted = housekeeper.save_wanted()
                if save_wanted and now >= next_save:
                    housekeeper.save()
                    next_save = now + STATE_SAVE_INTERVAL_SECS
                with guarded.lock:
                    due = self.scheduler.next_deadline()
                    deadline = min(next_rescan, next_cleanup, next_forget,
                                   next_rescan if due is None else due,
                                   next_save if housekeeper.save_wanted() else next_rescan)
                    self._main_loop_deadline = deadline  # senders wake us for anything sooner
                readable, _, _ = select.select([self._wakeup] + ([watch] if watch else []), [], [],
                                               max(0.0, deadline - self.clock()))
                if watch is not None and watch in readable:
                    watch = index.take_notifications(watch)
                self._wakeup.drain()
                if on_tick is not None:
                    on_tick()
        finally:
            self._shut_down(threads, stop_grace_secs)
            if watch is not None:
                watch.close()

    def _shut_down(self, threads, grace_secs):
        guarded = self.guarded
        with guarded.lock:
            guarded.stopping = True
            guarded.changed.notify_all()
            self.committer.wake_for_stop()
        deadline = self.clock() + grace_secs
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock()))
        self.committer.sync_moves()  # whatever a sender moved after the syncer stopped
        with guarded.lock:
            if self.scheduler.in_flight:
                log.warning("stopping with %d event(s) unanswered; they stay queued and are sent again",
                            self.scheduler.in_flight)
        self.housekeeper.save()

    # -- sender threads ---------------------------------------------------------

    def _sender_loop(self):
        guarded = self.guarded
        while True:
            with guarded.lock:
                job = None if guarded.stopping else self.scheduler.next_job()
                while job is None:
                    if guarded.stopping:
                        return
                    self.committer.sync_soon()  # nothing else to send: sync the batch now
                    guarded.changed.wait()
                    job = None if guarded.stopping else self.scheduler.next_job()
            routing_key, enqueue_time = job
            name = event_file_name(enqueue_time, routing_key)
            try:
                attempt = self._send(name, routing_key)
            except Exception as error:  # never lose the thread: the event stays queued
                log.exception("unexpected error sending %s", mask_name(name))
                attempt = Attempt(Outcome(UNREACHABLE, reason=f"internal error: {error!r}"))
            self._handle(routing_key, name, attempt)

    def _send(self, name, routing_key):
        """Read, convert and POST one event of `routing_key`."""
        try:
            data, inode = self.spool.read_pending(name)
        except FileNotFoundError:
            return Attempt(Outcome(GONE))
        except SpoolError as error:
            # A regular file we cannot read goes to err/ with the reason; anything else
            # (a directory, FIFO or link put there since it was indexed) is passed over.
            return Attempt(Outcome(BAD_ENTRY, reason=str(error)), inode=self.spool.regular_file_inode(name))
        try:
            endpoint, body = entry_to_request(parse_entry(data), self.source_host())
        except SpoolError as error:
            return Attempt(Outcome(BAD_ENTRY, reason=str(error)), inode=inode)
        except EventError as error:
            return Attempt(Outcome(BAD_ENTRY, reason=f"invalid event: {error}"), inode=inode)
        except Exception as error:  # an entry no check foresaw must not block its key
            log.exception("cannot convert %s", mask_name(name))
            return Attempt(Outcome(BAD_ENTRY, reason=f"invalid event: {error!r}"), inode=inode)
        summary = (body.get("event_action", "change"), body.get("dedup_key", "-"))
        if body["routing_key"] != routing_key:
            # Sent under the body's key, a file could take the name's place in line
            # and hold up that key's events (a throttled key never ends): refused.
            return Attempt(Outcome(BAD_ENTRY, reason="the routing key in the event differs from the one "
                                                     "in its file name"), summary, inode)
        return Attempt(self.api.post(endpoint, body), summary, inode)

    def _handle(self, routing_key, name, attempt):
        """Act on one answer: move the file, count, back off; then give the key back to the schedule."""
        guarded, outcome = self.guarded, attempt.outcome
        kind = outcome.kind
        limit = self.config.retry_limit_for_possible_errors
        gives_up = False
        if kind == FAILED:
            with guarded.lock:
                gives_up = self.scheduler.count_failure(routing_key) >= limit
            if gives_up:
                outcome.reason += f" ({limit} failures in a row: moved to the error queue)"
        target = "suc" if kind == DELIVERED else "err"
        if not (kind in (DELIVERED, REJECTED, BAD_ENTRY) or gives_up):
            move = Move(left_queue=kind == GONE)
        elif attempt.inode is None:
            move = Move(left_queue=True)  # not a regular file: passed over, never moved
        else:
            move = self.committer.move_out(name, attempt.inode, target, outcome)
            if move.failure is not None:
                log.error("cannot move %s to %s/: %s", mask_name(name), target, move.failure)
        finish_kind, reason = kind, outcome.reason
        if move.failure is not None:
            finish_kind, reason = FAILED, move.failure  # kept, and the key backs off rather than spin
        if move.replaced:
            finish_kind = GONE if kind in (BAD_ENTRY, GONE) else kind  # its owner's doing, not the key's
        self._log(name, routing_key, outcome, attempt.summary)
        with guarded.lock:
            save_was_wanted = self.housekeeper.save_wanted()
            if move.moved:
                self.saved.count("delivered" if target == "suc" else "failed")
            self.scheduler.finish(routing_key, finish_kind, move.left_queue, moved=move.moved,
                                  retry_after=outcome.retry_after if finish_kind == kind else None,
                                  reason=reason)
            if move.moved:
                self.committer.moved(routing_key, target)
            if self.scheduler.ready_count():
                guarded.changed.notify()
            due = self.scheduler.next_deadline()
            main_loop_must_look = ((due is not None and due < self._main_loop_deadline)
                                   or (self.housekeeper.save_wanted() and not save_was_wanted))
        if move.replaced:
            self.index.arrived([name])  # whatever its owner put there is an entry of its own
        if main_loop_must_look:  # a deadline it does not know of, or counters or a back-off to save
            self.wake()

    def _log(self, name, routing_key, outcome, summary):
        if outcome.kind == GONE:
            return
        action, dedup_key = summary
        line = (f"event {mask_name(name)} key={mask_key(routing_key)} action={action} "
                f"dedup_key={dedup_key} status={outcome.status or '-'} result={outcome.kind}")
        if outcome.kind == DELIVERED:
            log.info(line)
        elif outcome.tls_problem:
            log.error("%s TLS VERIFICATION FAILED, will retry: %s", line, outcome.reason)
        else:
            log.warning("%s reason=%s", line, outcome.reason)
