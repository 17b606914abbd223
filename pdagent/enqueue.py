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


def default_source(locations):
    cached = read_small_file(os.path.join(locations.data_dir, SOURCE_HOST_FILE), limit=256)
    return cached or os.uname().nodename  # what gethostname() says, without importing socket


def queue_v2_event(locations, endpoint, body, queued_by, warn=None):
    """Validate `body` and spool it under `locations` (config.load_locations());
    returns (dedup key or None, spool file name).

    Raises EventError (a one-line reason) if the event is not valid, SpoolError
    if it cannot be written. `warn(text)` hears about fixes such as a cut summary.
    """
    if endpoint == "alert" and body.get("event_action") == "trigger" and not body.get("dedup_key"):
        body["dedup_key"] = new_dedup_key()  # so a resolve can follow and a resend never doubles
    if truncate_summary(body) and warn:
        warn("summary is longer than 1024 characters; truncated")
    problems = validate(endpoint, body)
    if problems:
        raise EventError(problems[0])
    entry = make_entry(endpoint, body, read_agent_id(locations.agent_id_file), queued_by)
    try:
        data = dumps(entry).encode("ascii")
    except UnicodeEncodeError:
        raise EventError("the event holds text that is not valid UTF-8") from None
    except ValueError as error:  # NaN or infinity: not JSON
        raise EventError(f"the event is not valid JSON: {error}") from None
    if len(data) > MAX_BODY_BYTES:
        raise EventError(f"event is {len(data)} bytes; the Events API takes at most {MAX_BODY_BYTES}")
    spool = Spool(locations.outqueue_dir, locations.db_dir)
    spool.create_dirs()
    name = spool.enqueue(body["routing_key"], data)
    return body.get("dedup_key"), name
