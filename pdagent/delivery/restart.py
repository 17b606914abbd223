"""What the schedule keeps across a restart, in state.json (pure: wall time comes in as an
argument): failure counts in a row, and the API's own throttling deadlines. Every
other back-off is forgotten: a restart means try now."""

from pdagent.delivery.schedule import MAX_RETRY_AFTER_SECS


def saved_keys(scheduler, wall_now):
    """What state.json keeps of the keys: those backed off or with failures counted.

    `backoff_until` is wall time (for pd-queue status and the next start);
    only a `throttled` one is honoured after a restart.
    """
    now = scheduler.clock()
    saved = {}
    for record in scheduler.keys.values():
        backed_off = record.backoff_until > now
        if backed_off or record.failures:
            saved[record.routing_key] = {
                "backoff_until": round(wall_now + record.backoff_until - now, 3) if backed_off else 0,
                "backoffs": record.backoffs, "failures": record.failures,
                "reason": record.reason, "throttled": backed_off and record.throttled}
    return saved

def restore(scheduler, saved, wall_now):
    """Take back into `scheduler` what `saved_keys` reported before a restart: failure counts, and the
    API's throttling deadlines (others are dropped: a restart means try now)."""
    for routing_key, entry in saved.items():
        failures = entry.get("failures")
        until = entry.get("backoff_until")
        throttled = (entry.get("throttled") is True and isinstance(until, (int, float))
                     and until > wall_now)
        counted = isinstance(failures, int) and not isinstance(failures, bool) and failures > 0
        if not (throttled or counted):
            continue
        record = scheduler.record(routing_key)
        record.failures = failures if counted else 0
        scheduler.saved_changed = True
        if throttled:
            # A wall clock stepped back since would lengthen the wait: never past the cap.
            record.backoff_until = scheduler.clock() + min(until - wall_now, MAX_RETRY_AFTER_SECS)
            record.throttled = True
            record.backoffs = 1
            record.reason = str(entry.get("reason", ""))
