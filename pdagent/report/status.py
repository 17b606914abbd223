"""pd-queue status and list: the original agent's table, the JSON report, one line per event."""

from pdagent.escape import escape_controls
from pdagent.report.snapshot import age_secs, backed_off
from pdagent.spool.files import SpoolError
from pdagent.spool.names import parse_file_name
from pdagent.timefmt import utc_text

# pd-queue's words for the spool's folders (its --state and the metrics' label).
STATE_NAMES = {"pending": "pdq", "success": "suc", "error": "err"}


def status_table(counts):
    """The original agent's table: key in 35 columns, counts right-aligned in 10."""
    if not counts:
        return "Nothing to report."
    lines = [f"{'Service Key':<35}{'Pending':>10}{'Success':>10}{'In Error':>10}", "=" * 65]
    for key in sorted(counts):
        per_key = counts[key]
        lines.append(f"{key:<35}{per_key['pdq']:>10}{per_key['suc']:>10}{per_key['err']:>10}")
    return "\n".join(lines)


def status_json(snapshot, now):
    state = snapshot["state"]
    keys = {}
    for key, per_key in sorted(snapshot["counts"].items()):
        backoff_until = state["keys"].get(key, {}).get("backoff_until", 0)
        oldest = snapshot["oldest"].get(key)
        keys[key] = {
            "pending": per_key["pdq"], "success": per_key["suc"], "error": per_key["err"],
            "oldest_pending_age_secs": None if oldest is None else round(age_secs(oldest, now), 3),
            "backed_off": backed_off(state, key, now),
            "backoff_until": utc_text(backoff_until) if backed_off(state, key, now) else None,
        }
    return {"keys": keys, "agent": state["counters"], "queued_by": snapshot["origins"]}


def one_line(text):
    return escape_controls(" ".join(str(text).split()))


def list_lines(spool, folder, routing_key=None):
    for name in spool.names(folder, routing_key):
        enqueue_time_us, key = parse_file_name(name)
        try:
            entry = spool.read_entry(folder, name)
            event = entry.get("event") if "event" in entry else entry
            event = event if isinstance(event, dict) else {}
            payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
            action = event.get("event_action") or event.get("event_type") or \
                ("change" if entry.get("endpoint") == "change" else "?")
            dedup_key = event.get("dedup_key") or event.get("incident_key") or "-"
            summary = payload.get("summary") or event.get("description") or ""
        except SpoolError as error:
            action, dedup_key, summary = "?", "-", f"(unreadable: {error})"
        line = f"{utc_text(enqueue_time_us / 1e6)}  {key}  {action}  {one_line(dedup_key)}  {one_line(summary)}"
        if folder == "err":
            reason = spool.error_reason(name) or {}
            line += f"  [error: {one_line(reason.get('reason', 'no reason recorded'))}]"
        yield line
