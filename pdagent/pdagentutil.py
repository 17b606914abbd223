"""The original agent's helper functions, kept for third-party integration scripts.

    from pdagent.config import load_agent_config
    from pdagent.pdagentutil import queue_event, resurrect_events, get_stats

They keep their signatures; the events they queue are Events API v2 events.
"""

import time

from pdagent.config import load_locations
from pdagent.enqueue import encode_v2_entry
from pdagent.event import EventError, build_alert, utc_timestamp
from pdagent.hostname import default_source
from pdagent.spool.names import parse_file_name
from pdagent.state import read_state


def queue_event(enqueuer, event_type, service_key, incident_key, description, client,
                client_url, details, agent_id, queued_by, contexts=None):
    """Queue a trigger/acknowledge/resolve; returns (incident key sent, problems).

    The event is checked, repaired and encoded exactly as pd-send's
    (enqueue.encode_v2_entry), then handed to `enqueuer` as a JSON string.
    Nothing is queued when `problems` (a list of one-line texts) is not empty;
    the incident key returned then is the one given. A trigger without one
    gets a new key. `contexts` takes the original's link/image dicts
    ({"type": "link", ...}).
    """
    links, images = _split_contexts(contexts or [])
    body = build_alert(
        service_key, event_type, summary=description, dedup_key=incident_key or None,
        source=default_source(load_locations()), timestamp=utc_timestamp(),
        custom_details=details or None,
        links=links, images=images, client=client, client_url=client_url)
    try:
        sent, data = encode_v2_entry("alert", body, agent_id, queued_by)
    except EventError as error:
        return incident_key, [str(error)]
    _, problems = enqueuer.enqueue(service_key, data.decode("ascii"))
    return sent.get("dedup_key"), problems


def _split_contexts(contexts):
    links, images = [], []
    for context in contexts:
        fields = {key: value for key, value in context.items() if key != "type" and value}
        (images if context.get("type") == "image" else links).append(fields)
    return links, images


def resurrect_events(queue, service_key):
    """Move a key's (or, with None, every key's) events from err/ back to pdq/."""
    return queue.retry(service_key)


def get_stats(queue, service_key=None):
    """The spool's counts in the original agent's shape, per routing key, plus totals:

        {"snapshot": {"<key>": {"pending_events": {"count": 2, "oldest_age_secs": 40,
                                                   "newest_age_secs": 15, "service_keys_count": 1},
                                "succeeded_events": {"count": 0, "service_keys_count": 0},
                                "failed_events": {...}},
                      "throttled_service_keys_count": 0},
         "totals": {"pending_events": {"count": 5, ..., "service_keys_count": 3}, ...},
         "aggregate": {"successful_events_count": 20, "failed_events_count": 2,
                       "started_on": "2026-11-23T16:40:00Z"}}

    The snapshot holds every key with an event in the spool (with `service_key`,
    that key alone, even with none), each with all three states, so
    stats["snapshot"][key]["pending_events"]["count"] always works; ages are
    there only when the count is not 0. "totals" is the original's snapshot
    without the per-key split; "aggregate" the daemon's counters.
    """
    now_us = int(time.time() * 1_000_000)
    stamps = {}  # routing key -> {state label: [times, microseconds]}
    if service_key is not None:
        stamps[service_key] = {}
    for state, label in _STATE_LABELS:
        for key, time_us in _event_times(queue, state, service_key):
            stamps.setdefault(key, {}).setdefault(label, []).append(time_us)
    snapshot = {key: {label: _state_stats(now_us, [by_label.get(label, [])]) for _, label in _STATE_LABELS}
                for key, by_label in stamps.items()}
    saved = read_state(queue.db_dir)
    snapshot["throttled_service_keys_count"] = sum(
        1 for key, saved_key in saved["keys"].items()
        if (service_key is None or key == service_key) and saved_key.get("backoff_until", 0) > now_us / 1e6)
    totals = {label: _state_stats(now_us, [by_label.get(label, []) for by_label in stamps.values()])
              for _, label in _STATE_LABELS}
    counters = saved["counters"]
    return {"snapshot": snapshot, "totals": totals,
            "aggregate": {"successful_events_count": counters["delivered"],
                          "failed_events_count": counters["failed"],
                          "started_on": counters["started_on"]}}


_STATE_LABELS = (("pdq", "pending_events"), ("suc", "succeeded_events"), ("err", "failed_events"))


def _event_times(queue, state, service_key):
    """(routing key, time in microseconds) of each event in `state`: for pending events when
    they came (ctime: no name another user chose says how long one waits), for the others
    their enqueue time."""
    if state == "pdq":
        for chunk in queue.pending_files():
            for pending in chunk:
                if service_key is None or pending.routing_key == service_key:
                    yield pending.routing_key, pending.changed_ns // 1000
        return
    for name in queue.names(state, service_key):
        enqueue_time_us, key = parse_file_name(name)
        yield key, enqueue_time_us


def _state_stats(now_us, stamps_per_key):
    """Count, ages of the oldest and newest event, and how many keys have any, of lists of enqueue times."""
    stamps = [stamp for key_stamps in stamps_per_key for stamp in key_stamps]
    stats = {"count": len(stamps), "service_keys_count": sum(1 for key_stamps in stamps_per_key if key_stamps)}
    if stamps:
        stats["oldest_age_secs"] = max(0, (now_us - min(stamps)) // 1_000_000)
        stats["newest_age_secs"] = max(0, (now_us - max(stamps)) // 1_000_000)
    return stats
