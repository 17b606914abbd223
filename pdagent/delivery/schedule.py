"""The delivery schedule: which routing key sends next, and when. Pure data and decisions, no I/O.

delivery/engine.py runs the threads, reads and moves the spool's files and talks
HTTP around this; here are only data and decisions, with the clock injected
(a callable returning monotonic seconds), so tests can drive the schedule
through clock steps, restarts and days of simulated time in milliseconds.

Invariants:
- Per routing key, at most one event is out of the queue at a time: SENDING
  while its POST runs, then SYNCING until its move out of pdq/ is on disk.
  The next event a key sends is always the first in its queue order, so a
  resolve never overtakes its trigger, and a power cut can undo at most the
  last move of each key.
- Queue order is when each entry came, as the kernel saw it (its ctime),
  ties broken by the name's stamp; never the stamp alone, which any user
  chooses. An entry seen arriving (inotify) with an earlier ctime than one
  of its key's already known (the wall clock stepped back) is placed after
  them, and keeps that place across listings (`_Key.placed`) while the
  daemon runs.
- A key is in exactly one phase (IDLE, READY, WAITING, SENDING, SYNCING).
  READY keys take turns per owner, then per key: the local accounts whose
  events are first in line take turns (round robin), and each account's
  ready keys take turns among themselves, so one account's many keys delay
  another's page by at most one send per busy account. Each WAITING key has
  exactly one entry in the heap of deadlines.
- Every deadline is on the injected monotonic clock: a step of the wall
  clock changes nothing here. Wall time comes in only as an argument, when
  back-offs are saved for state.json or restored from it.
- Back-off from failures lives in memory only: a restart tries every key at
  once. The one deadline that survives a restart is the API's own (429 with
  Retry-After), which restart.py saves and takes back.
- Pacing: at most `max_per_minute` POSTs per key in any 60 s (PagerDuty's
  window), so bursts wait here instead of bouncing with 429. An attempt
  that sent nothing (the entry was gone, or no event) does not count.
- Pending events are kept per key in compact parallel arrays of integers
  (pending.py), not a list of objects.
"""

import collections
import heapq
import random

from pdagent.delivery.pending import PendingEvents, keep_placed
from pdagent.outcome import BACK_OFF_KINDS, DELIVERED, THROTTLED, UNSENT_KINDS

# Where a routing key is in the schedule: its phase.
IDLE = "idle"          # nothing pending, or just finished and not yet placed
READY = "ready"        # in the round robin
WAITING = "waiting"    # in the deadline heap: paced or backed off
SENDING = "sending"    # one event out for its POST
SYNCING = "syncing"    # its last event moved out of pdq/; waiting for the directory fsync

PACING_WINDOW_SECS = 60.0
MIN_RETRY_AFTER_SECS = 1.0      # `Retry-After: 0` must not make a hot loop
MAX_RETRY_AFTER_SECS = 3600.0   # nor a huge one stop a key for days
MAX_BACKOFF_EXPONENT = 30



class _Key:
    """One routing key: its pending events, its phase, its pacing and back-off."""

    __slots__ = ("backoff_until", "backoffs", "failures", "in_flight", "pending", "phase", "placed",
                 "reason", "recent_sends", "routing_key", "throttled")

    def __init__(self, routing_key, max_per_minute):
        self.routing_key = routing_key
        self.pending = PendingEvents()
        self.placed = None     # {stamp: order} of events placed after a backward clock step
        self.phase = IDLE
        self.in_flight = None  # (order, stamp, owner) of the event SENDING or SYNCING
        self.recent_sends = collections.deque(maxlen=max_per_minute or 1)
        self.backoffs = 0          # back-offs in a row: sets the next wait
        self.failures = 0          # failures in a row of the oldest event that may be its own (5xx, timeouts)
        self.backoff_until = 0.0   # monotonic
        self.throttled = False     # the back-off is the API's own deadline (429 with Retry-After)
        self.reason = ""

    def in_flight_stamp(self):
        return self.in_flight[1] if self.in_flight is not None else None


class Scheduler:
    """Keys, their pending events, and which one goes next. Not thread-safe: the engine locks."""

    def __init__(self, clock, max_per_minute=0, backoff_interval=60.0, backoff_max=600.0,
                 retry_limit=60, rng=None):
        self.clock = clock
        self.max_per_minute = max_per_minute
        self.backoff_interval = backoff_interval
        self.backoff_max = backoff_max
        self.retry_limit = retry_limit
        self.rng = rng or random.Random()
        self.keys = {}
        self.in_flight = 0
        self._ready = _Turns()
        self._waiting = []       # heap of (deadline, routing key), one per WAITING key
        self._listing = None     # while a listing of pdq/ is taken: what changed meanwhile
        self.saved_changed = False  # what restart.saved_keys reports changed since it was saved

    # -- what is pending -------------------------------------------------------

    def record(self, routing_key):
        """The key's record, made if it has none."""
        record = self.keys.get(routing_key)
        if record is None:
            record = self.keys[routing_key] = _Key(routing_key, self.max_per_minute)
        return record

    def add(self, routing_key, stamp, changed, owner):
        """A new event file was seen arriving in pdq/: its key, its name's stamp, its ctime
        (`changed`) and the uid that owns it.

        An arrival whose ctime is before the last event the key has pending came
        after it all the same (the clock stepped back): it goes last.
        """
        record = self.record(routing_key)
        if stamp == record.in_flight_stamp():
            return  # the one out already, seen again by a listing or a late notification
        if record.placed and stamp in record.placed:
            return  # placed after a clock step already
        order = changed
        last = record.pending.last_order()
        if last is not None and changed < last and not record.pending.position(changed, stamp)[1]:
            order = last + 1
            if record.placed is None:
                record.placed = {}
            record.placed[stamp] = order
        self._put_back(record, (order, stamp, owner))
        self._place(record)

    def _put_back(self, record, event):
        """Add `event` to the key's pending events (and to what a listing under way must keep)."""
        if not record.pending.add(*event):
            return False
        if self._listing is not None:
            self._listing[0].append((record.routing_key, event))
        return True

    def begin_listing(self):
        """A full listing of pdq/ starts; `end_listing` takes what it found."""
        out = {(record.routing_key, record.in_flight_stamp()) for record in self.keys.values()
               if record.phase in (SENDING, SYNCING)}
        self._listing = ([], out)

    def abort_listing(self):
        """The listing failed: the index stays as it is."""
        self._listing = None

    def end_listing(self, found):
        """Make the index what the listing `found` ({routing key: Listed}, ordered by ctime;
        emptied here) says, keeping what changed while it was taken: events added
        meanwhile stay, events taken out meanwhile are not put back, and events placed
        after a clock step keep their place."""
        added, taken = self._listing
        self._listing = None
        taken_by_key = collections.defaultdict(set)
        for routing_key, stamp in taken:
            taken_by_key[routing_key].add(stamp)
        for routing_key in list(self.keys):
            if routing_key not in found:
                self.keys[routing_key].pending = PendingEvents()
                self.keys[routing_key].placed = None
        for routing_key in list(found):
            listed = found.pop(routing_key)
            record = self.record(routing_key)
            if record.placed:
                record.placed = keep_placed(record.placed, listed)
            if routing_key in taken_by_key:
                listed.discard(taken_by_key[routing_key])
            record.pending = PendingEvents.from_listed(listed)
        for routing_key, event in added:
            self.record(routing_key).pending.add(*event)
        for record in list(self.keys.values()):
            self._place(record)
            self._forget_if_done(record)

    # -- taking turns ------------------------------------------------------------

    def _place(self, record):
        """Put an idle key with pending events in line: ready now, or waiting until its time."""
        if record.phase != IDLE or not record.pending:
            return
        now = self.clock()
        when = max(record.backoff_until, self._pacing_until(record))
        if when <= now:
            record.phase = READY
            self._ready.append(record.pending.first()[2], record.routing_key)
        else:
            record.phase = WAITING
            heapq.heappush(self._waiting, (when, record.routing_key))

    def _pacing_until(self, record):
        sends = record.recent_sends
        if self.max_per_minute and len(sends) == self.max_per_minute:
            return sends[0] + PACING_WINDOW_SECS
        return 0.0

    def wake_due(self):
        """Move the keys whose deadline has come to the round robin; True if any became ready."""
        now = self.clock()
        woken = False
        while self._waiting and self._waiting[0][0] <= now:
            _, routing_key = heapq.heappop(self._waiting)
            record = self.keys[routing_key]
            record.phase = IDLE
            self._place(record)
            woken = woken or record.phase == READY
        return woken

    def next_deadline(self):
        """The monotonic time the next waiting key is due, or None."""
        return self._waiting[0][0] if self._waiting else None

    def next_job(self):
        """(routing key, stamp) of the event to send now, marked SENDING; None if no key is ready."""
        while self._ready:
            record = self.keys[self._ready.popleft()]
            if not record.pending:  # a listing found its files gone
                record.phase = IDLE
                self._forget_if_done(record)
                continue
            record.in_flight = record.pending.pop_first()
            record.phase = SENDING
            if self.max_per_minute:
                record.recent_sends.append(self.clock())
            if self._listing is not None:
                self._listing[1].add((record.routing_key, record.in_flight_stamp()))
            self.in_flight += 1
            return record.routing_key, record.in_flight_stamp()
        return None

    def ready_count(self):
        return len(self._ready)

    # -- answers ---------------------------------------------------------------

    def count_failure(self, routing_key):
        """One more failure of the key's oldest event that may be its own; how many in a row."""
        record = self.keys[routing_key]
        record.failures += 1
        self.saved_changed = True
        return record.failures

    def finish(self, routing_key, kind, left_queue, moved=False, retry_after=None, reason=""):
        """The key's event in flight is done with.

        `left_queue`: the file is out of pdq/ (moved, gone, or skipped for good);
        otherwise it goes back to the front of the key. `moved`: the engine moved
        it and will call `synced` once the move is on disk. A kind in
        BACK_OFF_KINDS backs the key off; one in UNSENT_KINDS gives back its
        pacing slot.
        """
        record = self.keys[routing_key]
        event, record.in_flight = record.in_flight, None
        self.in_flight -= 1
        if left_queue:
            if record.failures:
                record.failures = 0  # they counted the event that left
                self.saved_changed = True
            if kind == DELIVERED and record.backoffs:
                record.backoffs = 0
                record.reason = ""
                self.saved_changed = True
            if record.placed:
                record.placed.pop(event[1], None)
        else:
            self._put_back(record, event)
        if kind in UNSENT_KINDS and self.max_per_minute and record.recent_sends:
            record.recent_sends.pop()  # nothing was sent
        if kind in BACK_OFF_KINDS:
            self._back_off(record, kind, retry_after, reason)
        if moved:
            record.in_flight = event
            record.phase = SYNCING
        else:
            record.phase = IDLE
            self._place(record)
            self._forget_if_done(record)

    def synced(self, routing_keys):
        """The moves of these SYNCING keys are on disk: they may send again."""
        for routing_key in routing_keys:
            record = self.keys.get(routing_key)
            if record is not None and record.phase == SYNCING:
                record.phase, record.in_flight = IDLE, None
                self._place(record)
                self._forget_if_done(record)

    def _back_off(self, record, kind, retry_after, reason):
        if retry_after is not None:
            delay = min(max(retry_after, MIN_RETRY_AFTER_SECS), MAX_RETRY_AFTER_SECS)
        else:
            exponent = min(record.backoffs, MAX_BACKOFF_EXPONENT)
            delay = min(self.backoff_interval * 2 ** exponent, self.backoff_max)
            delay *= self.rng.uniform(0.75, 1.0)  # jitter: keys that failed together retry apart
        record.backoffs += 1
        record.backoff_until = self.clock() + delay
        record.throttled = kind == THROTTLED and retry_after is not None
        record.reason = reason
        self.saved_changed = True

    def _forget_if_done(self, record):
        """Drop a key with nothing pending, no back-off and no pacing to remember."""
        now = self.clock()
        if (record.phase == IDLE and not record.pending and record.backoff_until <= now
                and (not record.recent_sends or record.recent_sends[-1] <= now - PACING_WINDOW_SECS)):
            del self.keys[record.routing_key]

    def forget_idle_keys(self):
        """Drop every key `_forget_if_done` would (run now and then: keys come and go for days)."""
        for record in list(self.keys.values()):
            self._forget_if_done(record)


class _Turns:
    """Ready keys taking turns: round robin over owners, and over each owner's keys."""

    __slots__ = ("_count", "_keys_of", "_owners")

    def __init__(self):
        self._owners = collections.deque()  # owners with ready keys, in turn
        self._keys_of = {}                  # owner -> deque of its ready keys, in turn
        self._count = 0

    def __len__(self):
        return self._count

    def append(self, owner, routing_key):
        keys = self._keys_of.get(owner)
        if keys is None:
            keys = self._keys_of[owner] = collections.deque()
            self._owners.append(owner)
        keys.append(routing_key)
        self._count += 1

    def popleft(self):
        owner = self._owners.popleft()
        keys = self._keys_of[owner]
        routing_key = keys.popleft()
        if keys:
            self._owners.append(owner)
        else:
            del self._keys_of[owner]
        self._count -= 1
        return routing_key
