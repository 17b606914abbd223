"""Events API v2 events: build them, validate them, convert original-agent v1 entries.

Pure functions, no I/O: pd-send, the integrations and the daemon share them,
so what pd-send accepts is exactly what the daemon may POST.

A spool entry (one file in outqueue/pdq) is the JSON object
    {"endpoint": "alert" | "change", "event": <v2 body>, "agent": {...}}
where "agent" holds the enqueue metadata (agent_id, queued_by, queued_at),
which is never sent. Entries written by the original agent are v1 objects
(service_key, event_type, incident_key, description, details, client,
client_url, agent); `entry_to_request` turns either into what to POST.
"""

import os
import time

from pdagent.formats import is_iso8601, is_url
from pdagent.spool.names import routing_key_problem

ALERT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ENDPOINT_PATHS = {"alert": "/v2/enqueue", "change": "/v2/change/enqueue"}

MAX_SUMMARY_CHARS = 1024
MAX_DEDUP_KEY_CHARS = 255
MAX_BODY_BYTES = 512 * 1024

_ALERT_FIELDS = {"routing_key", "event_action", "dedup_key", "payload", "images", "links",
                 "client", "client_url"}
_ALERT_PAYLOAD_FIELDS = {"summary", "source", "severity", "timestamp", "component", "group",
                         "class", "custom_details"}
_CHANGE_FIELDS = {"routing_key", "payload", "links"}
_CHANGE_PAYLOAD_FIELDS = {"summary", "source", "timestamp", "custom_details"}

class EventError(ValueError):
    """An event that cannot be queued or sent; the message says why, in one line."""


def new_dedup_key():
    """A random 32-hex-digit key (os.urandom: uuid costs pd-send an import)."""
    return os.urandom(16).hex()


def utc_timestamp(epoch_seconds=None):
    """ISO 8601 in UTC with milliseconds, e.g. 2026-11-23T16:40:00.123Z."""
    now = time.time() if epoch_seconds is None else epoch_seconds
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}Z"


def check_timestamp(text):
    """Raise EventError unless `text` is an ISO 8601 date and time.

    Never looser than datetime.fromisoformat (Python 3.11+): no leap second
    (:60), no year 0000 (formats.py).
    """
    if not (isinstance(text, str) and is_iso8601(text)):
        raise EventError(f"timestamp must be ISO 8601 (e.g. 2026-11-23T16:40:00Z), not {text!r}")


_LISTS = {
    "links": ("href", ("http", "https"), {"href", "text"},
              "each link needs an http(s) URL in href", "a link has only href and text (a string)"),
    "images": ("src", ("https",), {"src", "href", "alt"},
               "each image needs an https URL in src", "an image has only src, href and alt (strings)"),
}


def _problems_of_list(body, field, problems):
    """Check body[field], a list of link or image objects."""
    items = body.get(field)
    if items is None:
        return
    if not isinstance(items, list):
        problems.append(f"{field} must be a list")
        return
    url_key, schemes, allowed, bad_url, bad_keys = _LISTS[field]
    for item in items:
        if not isinstance(item, dict) or not is_url(item.get(url_key), schemes):
            problems.append(bad_url)
        elif set(item) - allowed or not all(isinstance(value, str) for value in item.values()):
            problems.append(bad_keys)


def validate(endpoint, body):
    """Every problem of a v2 body for `endpoint` ("alert" or "change"), as one-line texts."""
    if not isinstance(body, dict):
        return ["the event must be a JSON object"]
    problems = []
    allowed, payload_allowed = (
        (_CHANGE_FIELDS, _CHANGE_PAYLOAD_FIELDS) if endpoint == "change"
        else (_ALERT_FIELDS, _ALERT_PAYLOAD_FIELDS))
    unknown = sorted(set(body) - allowed)
    if unknown:
        problems.append(f"field {unknown[0]!r} is not defined by the Events API v2")
    key_problem = routing_key_problem(body.get("routing_key"))
    if key_problem is not None:
        problems.append(key_problem)

    payload = body.get("payload")
    action = body.get("event_action")
    if endpoint == "alert":
        if action not in ALERT_ACTIONS:
            problems.append(f"event_action must be one of {', '.join(ALERT_ACTIONS)}")
        dedup_key = body.get("dedup_key")
        if dedup_key is not None and (not isinstance(dedup_key, str) or dedup_key == ""):
            problems.append("dedup_key must be a non-empty string")
        elif dedup_key is not None and len(dedup_key) > MAX_DEDUP_KEY_CHARS:
            problems.append(f"dedup_key is longer than {MAX_DEDUP_KEY_CHARS} characters")
        if action in ("acknowledge", "resolve") and dedup_key is None:
            problems.append(f"{action} needs a dedup key (-i)")
        for field in ("client", "client_url"):
            if field in body and not isinstance(body[field], str):
                problems.append(f"{field} must be a string")
        _problems_of_list(body, "images", problems)
    _problems_of_list(body, "links", problems)

    payload_required = endpoint == "change" or action == "trigger"
    if payload is None and not payload_required:
        return problems
    if not isinstance(payload, dict):
        problems.append("payload must be an object with summary, source and severity")
        return problems
    unknown = sorted(set(payload) - payload_allowed)
    if unknown:
        problems.append(f"payload field {unknown[0]!r} is not defined by the Events API v2")
    summary = payload.get("summary")
    if (payload_required or "summary" in payload) and (not isinstance(summary, str) or summary.strip() == ""):
        problems.append("summary (-d) must not be blank")
    elif summary is not None and len(summary) > MAX_SUMMARY_CHARS:
        problems.append(f"summary is longer than {MAX_SUMMARY_CHARS} characters")
    if endpoint == "alert" and (payload_required or "severity" in payload) \
            and payload.get("severity") not in SEVERITIES:
        problems.append(f"severity must be one of {', '.join(SEVERITIES)}")
    source = payload.get("source")
    if "source" in payload and not isinstance(source, str):
        problems.append("payload.source must be a string")
    elif (endpoint == "alert" and payload_required or "source" in payload) and not (source or "").strip():
        problems.append("payload.source must not be blank")
    for field in ("component", "group", "class"):
        if field in payload and not isinstance(payload[field], str):
            problems.append(f"payload.{field} must be a string")
    if "timestamp" in payload:
        try:
            check_timestamp(payload["timestamp"])
        except EventError as error:
            problems.append(str(error))
    return problems


def build_alert(routing_key, action, *, summary=None, dedup_key=None, severity=None,
                source=None, component=None, group=None, event_class=None, timestamp=None,
                custom_details=None, links=(), images=(), client=None, client_url=None):
    """A v2 alert body from pd-send's options (None means "not given")."""
    body = {"routing_key": routing_key, "event_action": action}
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    if action == "trigger" or summary is not None:
        payload = {"summary": summary, "source": source, "severity": severity or "error"}
        optional = {"timestamp": timestamp, "component": component, "group": group,
                    "class": event_class, "custom_details": custom_details or None}
        payload.update((key, value) for key, value in optional.items() if value is not None)
        body["payload"] = payload
    if links:
        body["links"] = list(links)
    if images:
        body["images"] = list(images)
    if client is not None:
        body["client"] = client
    if client_url is not None:
        body["client_url"] = client_url
    return body


def build_change(routing_key, *, summary, source=None, timestamp=None, custom_details=None,
                 links=()):
    """A v2 change-event body."""
    payload = {"summary": summary}
    optional = {"source": source, "timestamp": timestamp, "custom_details": custom_details or None}
    payload.update((key, value) for key, value in optional.items() if value is not None)
    body = {"routing_key": routing_key, "payload": payload}
    if links:
        body["links"] = list(links)
    return body


def truncate_summary(body):
    """Cut an over-long summary to the API's limit; True if it was cut."""
    payload = body.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("summary"), str) \
            and len(payload["summary"]) > MAX_SUMMARY_CHARS:
        payload["summary"] = payload["summary"][:MAX_SUMMARY_CHARS]
        return True
    return False


def make_entry(endpoint, body, agent_id, queued_by, queued_at=None):
    return {"endpoint": endpoint, "event": body,
            "agent": {"agent_id": agent_id, "queued_by": queued_by,
                      "queued_at": queued_at or utc_timestamp()}}


def is_v1_entry(entry):
    return isinstance(entry, dict) and "service_key" in entry and "event" not in entry


def v1_to_v2(entry, source_host):
    """An original-agent v1 entry as a v2 alert body (fields v2 defines, nothing else)."""
    body = {"routing_key": entry.get("service_key"), "event_action": entry.get("event_type")}
    if entry.get("incident_key") is not None:
        body["dedup_key"] = entry["incident_key"]
    description = entry.get("description")
    if entry.get("event_type") == "trigger" or description is not None:
        payload = {"summary": description, "source": source_host, "severity": "error"}
        if entry.get("details"):
            payload["custom_details"] = entry["details"]
        body["payload"] = payload
    for field in ("client", "client_url"):
        if entry.get(field) is not None:
            body[field] = entry[field]
    return body


def entry_to_request(entry, source_host):
    """(endpoint, body) to POST for a spool entry of either format; EventError if unusable."""
    if is_v1_entry(entry):
        endpoint, body = "alert", v1_to_v2(entry, source_host)
        truncate_summary(body)
    elif isinstance(entry, dict) and entry.get("endpoint") in ENDPOINT_PATHS:
        endpoint, body = entry["endpoint"], entry.get("event")
    else:
        raise EventError("not a pdagent event entry (neither v2 nor original-agent v1)")
    problems = validate(endpoint, body)
    if problems:
        raise EventError(problems[0])
    return endpoint, body
