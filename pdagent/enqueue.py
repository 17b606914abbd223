"""Queue one v2 event: the single path pd-send, the integrations and the library API share.

Fills what the Events API needs but the caller may leave out (a dedup key for
a trigger, the default source), validates the body exactly as the daemon will
before POSTing it, and writes the spool entry. Never touches the network.
"""

import os

from pdagent.event import (
    MAX_BODY_BYTES,
    EventError,
    make_entry,
    new_dedup_key,
    truncate_summary,
    validate,
)
from pdagent.jsonwrite import dumps
from pdagent.spool import Spool, read_agent_id, read_small_file

# The daemon writes this host's FQDN here at start-up, so that pd-send never
# waits on a DNS lookup to fill payload.source.
SOURCE_HOST_FILE = "fqdn.txt"

# PagerDuty answers 400 to a routing key of another length. Such an event is
# still queued, as the original agent did (a test key, a key PagerDuty may one
# day lengthen), but the caller hears of it at once rather than from err/.
INTEGRATION_KEY_LENGTH = 32


# Names that say nothing of which host an alert is from (as the first label:
# localhost.localdomain, localhost6.localdomain6, ...).
_LOOPBACK_NAMES = ("localhost", "localhost4", "localhost6", "ip6-localhost", "ip6-loopback")


def names_a_host(name):
    """False for a host name no one could find the host by: empty, localhost, a loopback address."""
    name = (name or "").strip().rstrip(".").lower()
    return not (name == "" or name.split(".")[0] in _LOOPBACK_NAMES or name.endswith(".localhost")
                or name.startswith("127.") or name in ("::1", "0.0.0.0", "::"))


def cached_host_name(data_dir):
    """The FQDN the daemon cached in `data_dir`, else the node name; never a DNS lookup.

    A cached name that does not name the host (an old daemon's `localhost`) is passed over.
    """
    cached = read_small_file(os.path.join(data_dir, SOURCE_HOST_FILE), limit=256)
    return cached if names_a_host(cached) else os.uname().nodename  # gethostname(), without socket


def default_source(locations):
    """payload.source when none is given."""
    return cached_host_name(locations.data_dir)


def queue_v2_event(locations, endpoint, body, queued_by, warn=None):
    """Validate `body` and spool it under `locations` (config.load_locations());
    returns (dedup key or None, spool file name).

    Raises EventError (a one-line reason) if the event is not valid, SpoolError
    if it cannot be written. `warn(text)` hears about fixes such as a cut summary.
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
    entry = make_entry(endpoint, body, read_agent_id(locations.agent_id_file), queued_by)
    try:
        data = dumps(entry).encode("ascii")
    except ValueError as error:  # NaN or infinity: not JSON
        raise EventError(f"the event is not valid JSON: {error}") from None
    if len(data) > MAX_BODY_BYTES:
        raise EventError(f"event is {len(data)} bytes; the Events API takes at most {MAX_BODY_BYTES}")
    spool = Spool(locations.outqueue_dir, locations.db_dir)
    name = spool.enqueue(body["routing_key"], data)
    return body.get("dedup_key"), name


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
