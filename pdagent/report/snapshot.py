"""What pd-queue's status --json, check and metrics report, read once: counts per key and
folder, when each key's oldest pending event came, the daemon's saved state and who
queued what. Read-only: nothing here writes."""

import collections
import os
import stat

from pdagent.spool.files import SpoolError
from pdagent.spool.names import QUEUE_FOLDERS
from pdagent.state import STATE_FILE, read_state


def read_snapshot(spool, db_dir, routing_key=None, origins=False):
    """What status --json, check and metrics report: {"counts": {key: {pdq, suc, err}},
    "oldest": {key: when its oldest pending event came (its ctime, not its name)},
    "state": the saved state, "state_saved": when the daemon saved it (epoch seconds) or None,
    "origins": counts_by_origin() when `origins`, which reads every entry}.

    A state file that cannot be read counts as none, as it does for the daemon.
    """
    counts = spool.counts_by_key(routing_key)
    oldest = spool.oldest_pending(routing_key)
    for key in oldest.keys() - counts.keys():  # queued between the two listings
        counts[key] = dict.fromkeys(QUEUE_FOLDERS, 0)
    return {"counts": counts, "oldest": oldest, "state": read_state(db_dir),
            "state_saved": saved_at(os.path.join(db_dir, STATE_FILE)),
            "origins": counts_by_origin(spool, routing_key) if origins else None}


ORIGIN_FOLDERS = {"pending": "pdq", "delivered": "suc"}
MAX_ORIGINS = 16  # any local user writes queued_by: past this many names, the rarest are "other"
_MAX_ORIGIN_CHARS = 64


def counts_by_origin(spool, routing_key=None):
    """{"pending": {queued_by: n}, "delivered": {queued_by: n}} over pdq/ and suc/.

    Reads every entry of the two (status --json and metrics only; the table
    and check read names alone). What no tool could have written, or an entry
    that cannot be read (one the daemon moved meanwhile), counts as "unknown".
    """
    counts = {}
    for label, folder in ORIGIN_FOLDERS.items():
        tally = collections.Counter(_origin(spool, folder, name)
                                    for name in spool.names(folder, routing_key))
        if len(tally) > MAX_ORIGINS:
            kept = dict(tally.most_common(MAX_ORIGINS - 1))
            kept["other"] = kept.get("other", 0) + sum(tally.values()) - sum(kept.values())
            tally = kept
        counts[label] = dict(sorted(tally.items()))
    return counts


def _origin(spool, folder, name):
    try:
        agent = spool.read_entry(folder, name).get("agent")
    except (OSError, SpoolError):
        return "unknown"
    queued_by = agent.get("queued_by") if isinstance(agent, dict) else None
    if not isinstance(queued_by, str) or not queued_by.isprintable() or not 0 < len(queued_by) <= _MAX_ORIGIN_CHARS:
        return "unknown"
    return queued_by


def saved_at(path):
    """The modification time of the daemon's regular file `path` (not through a link), or None.

    The counters in state.json are what the daemon had when it last saved it, so check and
    metrics say how long ago that was: a delivery made since is not counted yet."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_mtime if stat.S_ISREG(info.st_mode) else None


def saved_age(snapshot, now):
    """Seconds since the counters were saved, to a tenth (never negative), or None."""
    saved = snapshot["state_saved"]
    return None if saved is None else round(max(0.0, now - saved), 1)


def age_secs(since, now):
    """Seconds since an epoch time; never negative (the clock may have stepped back since)."""
    return max(0.0, now - since)


def backed_off(state, key, now):
    return state["keys"].get(key, {}).get("backoff_until", 0) > now
