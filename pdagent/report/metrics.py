"""pd-queue metrics: the Prometheus text exposition format, for node_exporter's textfile
collector."""

import hashlib

from pdagent.escape import mask_key
from pdagent.report.snapshot import age_secs, backed_off, saved_age
from pdagent.report.status import STATE_NAMES


def _label_value(text):
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def key_labels(routing_key):
    """The labels of a routing key: masked as in the log (its last 4 characters), and
    `key_id`, the first 8 hex digits of its SHA-256, which keeps apart two keys that end
    alike (two series with the same labels would be one) without revealing either."""
    digest = hashlib.sha256(routing_key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f'routing_key="{_label_value(mask_key(routing_key))}",key_id="{digest}"'


def metrics_text(snapshot, daemon_up, now):
    """The exposition: HELP and TYPE for every metric, then its samples.

    `daemon_up` None (whether pdagentd runs cannot be told) leaves out the
    sample of pdagent_daemon_up, and pdagent_daemon_up_known says so.
    """
    state, counts = snapshot["state"], snapshot["counts"]
    labels = {key: key_labels(key) for key in counts.keys() | state["keys"].keys()}
    keys = sorted(labels, key=labels.get)
    oldest = min(snapshot["oldest"].values(), default=None)
    metrics = [
        ("pdagent_daemon_up", "gauge",
         ("1 if pdagentd is running (its pid file names a live pdagentd), else 0; left out when that "
          "cannot be told (see pdagent_daemon_up_known)."),
         [] if daemon_up is None else [("", int(daemon_up))]),
        ("pdagent_daemon_up_known", "gauge",
         ("1 if pdagent_daemon_up is given, 0 if whether pdagentd runs cannot be told (the pid file or "
          "the process cannot be seen by this user)."),
         [("", int(daemon_up is not None))]),
        ("pdagent_spool_events", "gauge",
         ("Events in the spool by routing key (masked) and state: pending, error (rejected), "
         "success (delivered, kept until cleanup)."),
         [(f"{labels[key]},state=\"{state_name}\"", counts.get(key, {}).get(directory, 0))
          for key in keys for state_name, directory in STATE_NAMES.items()]),
        ("pdagent_oldest_pending_age_seconds", "gauge",
         "Age of the oldest pending event, 0 when none is pending.",
         [("", round(0.0 if oldest is None else age_secs(oldest, now), 3))]),
        ("pdagent_key_backed_off", "gauge", "1 while the routing key is backed off, else 0.",
         [(labels[key], int(backed_off(state, key, now))) for key in keys]),
        ("pdagent_key_backoff_remaining_seconds", "gauge",
         "Seconds until the routing key's back-off ends, 0 when it is not backed off.",
         [(labels[key], round(max(0.0, state["keys"].get(key, {}).get("backoff_until", 0) - now), 3))
          for key in keys]),
        ("pdagent_spool_events_by_origin", "gauge",
         ("Pending and delivered (kept until cleanup) events in the spool by who queued them "
          "(the entry's queued_by: pd-send, pd-listen, an integration, a library caller)."),
         [(f"queued_by=\"{_label_value(origin)}\",state=\"{state_name}\"", count)
          for state_name, by_origin in snapshot["origins"].items() for origin, count in by_origin.items()]),
        ("pdagent_events_delivered_total", "counter",
         "Events the daemon delivered (accepted by the Events API), kept across restarts.",
         [("", state["counters"]["delivered"])]),
        ("pdagent_events_failed_total", "counter",
         "Events the daemon moved to the error queue, kept across restarts.",
         [("", state["counters"]["failed"])]),
        ("pdagent_counters_saved_age_seconds", "gauge",
         ("Seconds since the daemon saved the two counters above (db/state.json): what it did "
          "since is not in them yet. No sample before it first saves them."),
         [("", age) for age in [saved_age(snapshot, now)] if age is not None]),
    ]
    lines = []
    for name, kind, help_text, samples in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{{{sample_labels}}} {value}" if sample_labels else f"{name} {value}"
                  for sample_labels, value in samples]
    return "\n".join(lines) + "\n"
