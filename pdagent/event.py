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

    Parsed by hand, not with a regex: pd-send checks every event's timestamp
    and importing `re` would cost it a quarter of its start-up budget. Never
    looser than datetime.fromisoformat (Python 3.11+): no leap second (:60),
    no year 0000 (tests/test_differential.py).
    """
    if not (isinstance(text, str) and _is_iso8601(text)):
        raise EventError(f"timestamp must be ISO 8601 (e.g. 2026-11-23T16:40:00Z), not {text!r}")


def is_ascii_digits(text):
    """True for a non-empty run of 0-9. str.isdigit() also says yes to '²', which int()
    refuses, and to '٣', which it reads as 3; str.isascii() is Python 3.7+."""
    return text != "" and not text.strip("0123456789")


def _digits(text, count):
    return len(text) == count and is_ascii_digits(text)


def _is_utc_offset(zone):
    """HH, HHMM or HH:MM, under 24 hours."""
    if len(zone) == 5 and zone[2] == ":":
        zone = zone[:2] + zone[3:]
    if not (_digits(zone, 2) or _digits(zone, 4)):
        return False
    return int(zone[:2]) < 24 and int(zone[2:] or 0) < 60


def _is_iso8601(text):
    """YYYY-MM-DD(T| )HH:MM[:SS[(.|,)fraction]][Z|+HH[:]MM|-HH[:]MM|+HH|-HH]"""
    date, separator, clock = text[:10], text[10:11], text[11:]
    if separator not in ("T", " ") or date[4:5] != "-" or date[7:8] != "-":
        return False
    year, month, day = date[:4], date[5:7], date[8:10]
    if not (_digits(year, 4) and _digits(month, 2) and _digits(day, 2)) or year == "0000":
        return False
    if clock.endswith("Z"):
        clock = clock[:-1]
    elif "+" in clock or "-" in clock:
        at = max(clock.rfind("+"), clock.rfind("-"))
        clock, zone = clock[:at], clock[at + 1:]
        if not _is_utc_offset(zone):
            return False
    hms, dot, fraction = clock.replace(",", ".").partition(".")
    fields = hms.split(":")
    if len(fields) not in (2, 3) or not all(_digits(field, 2) for field in fields):
        return False
    if dot and (len(fields) != 3 or not is_ascii_digits(fraction)):
        return False
    hour, minute, second = int(fields[0]), int(fields[1]), int(fields[2]) if len(fields) == 3 else 0
    return (1 <= int(month) <= 12 and 1 <= int(day) <= _days_in_month(int(year), int(month))
            and hour < 24 and minute < 60 and second < 60)


def _days_in_month(year, month):
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def split_url(url, schemes=("http", "https")):
    """(scheme, host, port or None) of scheme://[user@]host[:port][/path][?query][#fragment], else None.

    Checked by hand (regexes cost pd-send milliseconds) and never looser than
    urllib.parse.urlsplit: what passes here, urlsplit splits into the same
    scheme and host without an error, and its .port reads
    (tests/test_differential.py). No white space or control characters.
    """
    if not isinstance(url, str) or any(char.isspace() or char < " " or char == "\x7f" for char in url):
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in schemes:
        return None
    authority = rest
    for delimiter in "/?#":
        authority = authority.partition(delimiter)[0]
    if authority and max(authority) > "\x7f" and not _nfkc_stable(authority):
        return None  # urlsplit refuses names that NFKC turns into '/', '@', ':'...; we refuse any change
    userinfo, _, host_port = authority.rpartition("@")
    if "[" in userinfo or "]" in userinfo:
        return None
    if host_port.startswith("["):
        host, bracket, after = host_port[1:].partition("]")
        if not bracket or not is_ipv6(host) or after[:1] not in ("", ":"):
            return None
        port = after[1:]
    else:
        if "[" in host_port or "]" in host_port:
            return None
        host, _, port = host_port.partition(":")
    if not host or (port and not (len(port) <= 5 and is_ascii_digits(port) and int(port) <= 65535)):
        return None
    return scheme, host, int(port) if port else None


def _nfkc_stable(text):
    import unicodedata  # only for a non-ASCII host: pd-send's usual path never pays for it
    return unicodedata.normalize("NFKC", text) == text


def is_url(url, schemes=("http", "https")):
    return split_url(url, schemes) is not None


def is_ipv4(text):
    """Dotted quad as ipaddress reads it (3.9.5+): four 0-255 without leading zeros."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        len(part) <= 3 and is_ascii_digits(part) and (part == "0" or part[0] != "0") and int(part) < 256
        for part in parts)


def is_ipv6(text):
    """An IPv6 literal as ipaddress.IPv6Address reads one, without a %zone: eight groups of 1-4
    hex digits, the last two maybe as a dotted quad, one '::' standing for one group or more."""
    head, gap, tail = text.partition("::")
    if "::" in tail:
        return False
    left = head.split(":") if head else []
    right = tail.split(":") if tail else []
    last = right if gap else left
    count = len(left) + len(right)
    if last and "." in last[-1]:
        if not is_ipv4(last.pop()):
            return False
        count += 1  # a dotted quad is two groups
    if not all(0 < len(group) <= 4 and not group.strip("0123456789abcdefABCDEF") for group in left + right):
        return False
    return count < 8 if gap else count == 8


def is_ip_address(text):
    """An IPv4 or IPv6 literal (by hand: socket and ipaddress cost pd-send milliseconds)."""
    return is_ipv4(text) or is_ipv6(text)


# field -> (the URL key, its schemes, the keys allowed, what to say when the URL or the keys are wrong)
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
