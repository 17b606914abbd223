"""What is pending: pdq/ watched through inotify, listed in full at start and now and then
as the safety net for missed notifications, one lstat per entry (a name alone says
nothing of when an entry came, who queued it or what it is).

Any local user may create names in pdq/: whatever is not an event (a name in
another format, anything but a regular file) is passed over, logged once,
masked and escaped; no name can stop the listing or the inotify path.
"""

import ctypes
import logging
import threading

from pdagent.delivery.pending import Listed
from pdagent.escape import mask_name
from pdagent.spool.files import SpoolError
from pdagent.watch import open_watch

log = logging.getLogger("pdagent.delivery")

# With inotify working, the periodic rescan is only a safety net: it may take
# at most this share of the time (a million names take seconds to list).
RESCAN_TIME_SHARE = 0.02
MAX_WARNED_NAMES = 10000  # names whose skipping was logged (once each)


def return_freed_memory():
    """Hand the C heap's free pages back to the kernel (glibc's malloc_trim; nothing elsewhere).

    A listing builds a new index beside the old one and frees the old: at a
    million pending events that is 11 MiB, which glibc keeps once it has
    raised its mmap threshold, so without this each rescan grew the daemon
    by as much (38 -> 50 -> 62 MiB over two rescans).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _find_malloc_trim():
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int  # int malloc_trim(size_t pad)
    return malloc_trim


_MALLOC_TRIM = _find_malloc_trim()


class PendingIndex:
    """Keeps the schedule's pending events what pdq/ holds."""

    def __init__(self, spool, guarded, send_interval_secs, clock):
        self.spool = spool
        self.guarded = guarded
        self.send_interval_secs = send_interval_secs
        self.clock = clock
        self.pdq_dir = spool.folder("pdq")
        self._rescan_wanted = False
        self._rescan_thread = None
        self._rescan_secs = 0.0  # how long the last listing of pdq/ took
        self._warned_names = set()

    def open_watch(self):
        return open_watch(self.pdq_dir)

    def rescan_interval(self, watch):
        if watch is None:
            return self.send_interval_secs  # the only way new events are found
        return max(self.send_interval_secs, self._rescan_secs / RESCAN_TIME_SHARE)

    def _skipped(self, name, why):
        if name not in self._warned_names and len(self._warned_names) < MAX_WARNED_NAMES:
            self._warned_names.add(name)
            log.warning("skipping %r in pdq/: %s", mask_name(name), why)

    def list_pending(self, first=False):
        """Rebuild the index from a full listing of pdq/. The listing is taken without the
        lock: senders go on, and the scheduler keeps what changed meanwhile."""
        guarded = self.guarded
        started = self.clock()
        with guarded.lock:
            guarded.scheduler.begin_listing()
        found, events = {}, 0
        try:
            for chunk in self.spool.pending_files(skipped=self._skipped):
                for pending in chunk:
                    listed = found.get(pending.routing_key)
                    if listed is None:
                        listed = found[pending.routing_key] = Listed()
                    listed.append(pending.changed_ns, pending.stamp, pending.owner)
                    events += 1
        except SpoolError as error:
            log.error("%s", error)
            with guarded.lock:
                guarded.scheduler.abort_listing()
            return
        keys = len(found)
        with guarded.lock:
            guarded.scheduler.end_listing(found)
            guarded.changed.notify_all()
        return_freed_memory()
        self._rescan_secs = self.clock() - started
        log.log(logging.INFO if first else logging.DEBUG, "indexed %d pending event(s) of %d key(s) in %.2f s",
                events, keys, self._rescan_secs)

    def start_rescan(self):
        """List pdq/ again on a thread of its own (once more after it, if one is running)."""
        with self.guarded.lock:
            self._rescan_wanted = True
            if self._rescan_thread is not None:
                return
            self._rescan_thread = threading.Thread(target=self._rescan_loop, name="rescan", daemon=True)
            self._rescan_thread.start()

    def _rescan_loop(self):
        while True:
            with self.guarded.lock:
                if not self._rescan_wanted or self.guarded.stopping:
                    self._rescan_thread = None
                    return
                self._rescan_wanted = False
            self.list_pending()

    def take_notifications(self, watch):
        """Index the names inotify reported; returns the watch to go on with."""
        names, overflowed, lost = watch.read()
        if lost:
            log.warning("%s was removed or replaced: watching it anew and rescanning", self.pdq_dir)
            watch.close()
            watch = self.open_watch()
            if watch is None:
                log.error("cannot watch %s: new events are found by the rescan every %s s until it can",
                          self.pdq_dir, self.send_interval_secs)
            self.start_rescan()
        elif overflowed:
            log.info("inotify queue overflowed: rescanning %s", self.pdq_dir)
            self.start_rescan()
        self.arrived(names)
        return watch

    def arrived(self, names):
        """Index entries seen arriving in pdq/ (one lstat each, outside the lock)."""
        arrivals = [pending for pending in (self.spool.pending_file(name, self._skipped) for name in names)
                    if pending is not None]
        if arrivals:
            with self.guarded.lock:
                for pending in arrivals:
                    self.guarded.scheduler.add(pending.routing_key, pending.stamp, pending.changed_ns,
                                               pending.owner)
                self.guarded.changed.notify_all()
