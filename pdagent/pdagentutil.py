"""The original agent's helper functions, kept for third-party integration scripts.

    from pdagent.config import load_agent_config
    from pdagent.pdagentutil import queue_event, resurrect_events, get_stats

They keep their signatures; the events they queue are Events API v2 events.
"""

import json
import time

from pdagent.config import load_main_config
from pdagent.enqueue import default_source
from pdagent.event import (
    build_alert,
    make_entry,
    new_dedup_key,
    truncate_summary,
    utc_timestamp,
    validate,
)
from pdagent.spool import parse_file_name


def queue_event(enqueuer, event_type, service_key, incident_key, description, client,
                client_url, details, agent_id, queued_by, contexts=None):
    """Queue a trigger/acknowledge/resolve; returns (incident_key, problems).

    Nothing is queued when `problems` (a list of one-line texts) is not empty.
    `contexts` takes the original's link/image dicts ({"type": "link", ...}).
    """
    if event_type == "trigger" and not incident_key:
        incident_key = new_dedup_key()
    links, images = _split_contexts(contexts or [])
    body = build_alert(
        service_key, event_type, summary=description, dedup_key=incident_key or None,
        source=default_source(load_main_config()), timestamp=utc_timestamp(),
        custom_details=details or None,
        links=links, images=images, client=client, client_url=client_url)
    truncate_summary(body)
    problems = validate("alert", body)
    if problems:
        return incident_key, problems
    entry = make_entry("alert", body, agent_id, queued_by)
    _, problems = enqueuer.enqueue(service_key, json.dumps(entry, separators=(",", ":")))
    return incident_key, problems


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
    """Counts per routing key and in total: {"snapshot": {...}, "per_key": {...}}."""
    now_us = int(time.time() * 1_000_000)
    per_key = {}
    totals = {"pending_events": 0, "succeeded_events": 0, "failed_events": 0}
    labels = {"pdq": "pending_events", "suc": "succeeded_events", "err": "failed_events"}
    for state, label in labels.items():
        for name in queue.names(state, service_key):
            enqueue_time_us, key = parse_file_name(name)
            stats = per_key.setdefault(key, dict.fromkeys(labels.values(), 0))
            stats[label] += 1
            totals[label] += 1
            if state == "pdq" and "oldest_pending_age_secs" not in stats:
                stats["oldest_pending_age_secs"] = max(0, (now_us - enqueue_time_us) // 1_000_000)
    return {"snapshot": totals, "per_key": per_key}
