"""What the daemon remembers across restarts, in db/state.json (written atomically).

    {"counters": {"delivered": 12, "failed": 1, "started_on": "2026-11-23T16:40:00Z"},
     "keys": {"<routing key>": {"backoff_until": 1795450952.5, "backoffs": 2, "failures": 1,
                                "reason": "HTTP 503", "throttled": false}}}

Only keys in trouble have an entry: backed off now, or with failures
counted; a key delivered, rejected or idle has none, so the file stays small
however many keys come and go. `backoff_until` is wall time, for pd-queue
status; after a restart only a `throttled` deadline (429 with Retry-After,
the API's own) is honoured, every other back-off is forgotten (a restart
means try now). `backoffs` counts the key's back-offs in a row (it sets the
next wait); `failures` counts failures in a row of the key's oldest event
that may be the event's own fault (5xx, timeout), for
retry_limit_for_possible_errors, and survives restarts.

Only the daemon writes it, at most once a second and outside the schedule's
lock (delivery/housekeeping.py); pd-queue reads it.
"""

import json
import logging
import os

from pdagent.spool.files import SpoolError, read_regular_file, write_file_atomically
from pdagent.timefmt import utc_text

STATE_FILE = "state.json"
MAX_STATE_BYTES = 64 * 1024 * 1024

log = logging.getLogger(__name__)


def read_state(db_dir, warn=None):
    """The saved state, or an empty one when there is none (or it cannot be read: `warn` hears why)."""
    try:
        state = json.loads(read_regular_file(os.path.join(db_dir, STATE_FILE), MAX_STATE_BYTES))
    except FileNotFoundError:
        state = {}
    except (OSError, SpoolError, ValueError, RecursionError) as error:
        if warn:
            warn(f"ignoring unreadable {STATE_FILE}: {error}")
        state = {}
    if not isinstance(state, dict):
        state = {}
    counters = state.get("counters") if isinstance(state.get("counters"), dict) else {}
    keys = state.get("keys") if isinstance(state.get("keys"), dict) else {}
    return {"counters": {"delivered": _count(counters.get("delivered")),
                         "failed": _count(counters.get("failed")),
                         "started_on": counters.get("started_on")},
            "keys": {key: value for key, value in keys.items() if isinstance(value, dict)}}


def _count(value):
    """A saved counter, or 0 if what is saved is not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class SavedState:
    """The daemon's counters and what it saved of the keys; `encode` then `write` saves them."""

    def __init__(self, db_dir):
        self.db_dir = db_dir
        saved = read_state(db_dir, warn=log.warning)
        self.counters = saved["counters"]
        self.saved_keys = saved["keys"]  # as loaded: the schedule takes back what still holds
        self.dirty = False

    def start(self):
        self.counters["started_on"] = utc_text()
        self.dirty = True

    def count(self, counter):
        self.counters[counter] += 1
        self.dirty = True

    def encode(self, keys):
        """The file's bytes for the counters and `keys` (the schedule's saved_keys); clears `dirty`."""
        self.dirty = False
        return json.dumps({"counters": self.counters, "keys": keys}, sort_keys=True).encode()

    def write(self, data):
        write_file_atomically(os.path.join(self.db_dir, STATE_FILE), data, mode=0o640)
