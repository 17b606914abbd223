"""Queue one v2 event: the single path pd-send, the integrations and the library API share.

Fills what the Events API needs but the caller may leave out (a dedup key for
a trigger; hostname.py gives the default source), validates the body exactly as the daemon will
before POSTing it, and writes the spool entry. Never touches the network.
"""

from pdagent.event import (
    MAX_BODY_BYTES,
    EventError,
    make_entry,
    new_dedup_key,
    truncate_summary,
    validate,
)
from pdagent.jsonwrite import dumps
from pdagent.spool.files import read_agent_id
from pdagent.spool.writer import SpoolWriter

# PagerDuty answers 400 to a routing key of another length. Such an event is
# still queued, as the original agent queues it (a test key, a key PagerDuty may
# one day lengthen), but the caller hears of it at once rather than from err/.
INTEGRATION_KEY_LENGTH = 32


def queue_v2_event(locations, endpoint, body, queued_by, warn=None):
    """Validate `body` and spool it under `locations` (config.load_locations());
    returns (dedup key or None, spool file name).

    Raises EventError (a one-line reason) if the event is not valid, SpoolError
    if it cannot be written. `warn(text)` hears about fixes such as a cut summary.
    """
    outcome = queue_v2_events(locations, [(endpoint, body, warn)], queued_by)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def queue_v2_events(locations, events, queued_by):
    """queue_v2_event for each (endpoint, body, warn) of `events`, written together so
    that they share the spool's fsyncs (a group commit).

    Returns, per event, (dedup key or None, spool file name) or the EventError
    or SpoolError that kept it out; the others are queued all the same.
    """
    agent_id = read_agent_id(locations.agent_id_file)
    outcomes = [None] * len(events)
    entries, encoded = [], []  # the spool entries, and (index, dedup key) of each
    for index, (endpoint, body, warn) in enumerate(events):
        try:
            sent, data = encode_v2_entry(endpoint, body, agent_id, queued_by, warn)
        except EventError as error:
            outcomes[index] = error
            continue
        except RecursionError:  # deeper than the checks' recursion: one event's problem, not the batch's
            outcomes[index] = EventError("the event is nested too deeply")
            continue
        entries.append((sent["routing_key"], data))
        encoded.append((index, sent.get("dedup_key")))
    names = SpoolWriter(locations.outqueue_dir, locations.db_dir).enqueue_many(entries)
    for (index, dedup_key), name in zip(encoded, names):
        outcomes[index] = name if isinstance(name, Exception) else (dedup_key, name)
    return outcomes


def encode_v2_entry(endpoint, body, agent_id, queued_by, warn=None):
    """The spool entry for `body` as ASCII JSON bytes, checked as the daemon will check it
    before POSTing; returns (the body as it is sent, the bytes).

    Every writer of a v2 entry goes through here (pd-send and the integrations
    by queue_v2_event, the library's queue_event with its caller's enqueuer), so
    nothing is queued that the daemon would refuse. Raises EventError (one line)
    for an event that is not valid; `warn(text)` hears about fixes.
    """
    body = _with_valid_text(body, warn)
    if endpoint == "alert" and body.get("event_action") == "trigger" and not body.get("dedup_key"):
        body["dedup_key"] = new_dedup_key()  # so a resolve can follow and a resend never doubles
    if truncate_summary(body) and warn:
        warn("summary is longer than 1024 characters; truncated")
    problems = validate(endpoint, body)
    if problems:
        raise EventError(problems[0])
    if warn and len(body["routing_key"]) != INTEGRATION_KEY_LENGTH:
        warn(f"the routing key is {len(body['routing_key'])} characters long; PagerDuty's integration "
             f"keys are {INTEGRATION_KEY_LENGTH}, and it refuses others (queued anyway)")
    entry = make_entry(endpoint, body, agent_id, queued_by)
    try:
        data = dumps(entry).encode("ascii")
    except ValueError as error:  # NaN or infinity: not JSON
        raise EventError(f"the event is not valid JSON: {error}") from None
    if len(data) > MAX_BODY_BYTES:
        raise EventError(f"event is {len(data)} bytes; the Events API takes at most {MAX_BODY_BYTES}")
    return body, data


def _with_valid_text(body, warn):
    """`body` with bytes that were not UTF-8 as U+FFFD, and one warning if there were any.

    Python hands such bytes over as lone surrogates, in arguments and in what
    is decoded with surrogateescape (stdin, event files), and JSON cannot
    carry those. A page must not be lost for a Latin-1 byte in a plugin's
    output, so the text goes with U+FFFD in their place; a routing key, no
    text to guess at, is refused. The check is one encode per string: the
    usual path does nothing more.
    """
    invalid = []
    repaired = _replace_invalid_text(body, invalid)
    if invalid:
        if repaired.get("routing_key") != body.get("routing_key"):
            raise EventError("routing key must be valid UTF-8")
        if warn:
            warn("text that is not valid UTF-8 is sent with U+FFFD in place of the bad bytes")
    return repaired


def _replace_invalid_text(value, invalid):
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _decoded_as_utf8(value, invalid)
        return value
    if isinstance(value, dict):
        return {_replace_invalid_text(key, invalid): _replace_invalid_text(item, invalid)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_invalid_text(item, invalid) for item in value]
    return value


def _decoded_as_utf8(text, invalid):
    """`text` as UTF-8 reads the bytes it was decoded from; `invalid` hears if any were not UTF-8.

    A surrogate that stands for no byte (JSON's \\ud800) is invalid too. Text
    decoded as ASCII (Python 3.6 in the C locale) comes back whole, unwarned.
    """
    escapes_only = "".join("\ufffd" if "\ud800" <= char <= "\udfff" and not "\udc80" <= char <= "\udcff"
                           else char for char in text)
    if escapes_only != text:
        invalid.append(text)
    data = escapes_only.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        invalid.append(text)
        return data.decode("utf-8", "replace")
