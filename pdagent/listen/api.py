"""A request to pd-listen -> its answer: the Events API's paths and answers over the spool.

Two steps, so that a request the body cannot save is answered before the
body is read: `check_head` (path, method, token, Content-Type, announced
length) and `answer` (the body: strict JSON, then the one enqueue path
pd-send uses, enqueue.queue_v2_event: same fills, same validator, same
entry format, same durable spool writer).

Answers are PagerDuty's (shared/reference/events-api-v2.md): 202 with the
dedup key once the entry is durable in pdq/; 400 "invalid event" with the
validator's reasons; the v1 path converts its body as the daemon converts
v1 spool entries (event.v1_to_v2) and answers as the v1 API did (200 with
incident_key). A spool that cannot be written is a 503 with the reason:
the client keeps the event and retries, nothing is lost in between.
"""

import hmac
import json
import os

from pdagent.enqueue import queue_v2_events
from pdagent.escape import mask_key
from pdagent.event import EventError, v1_to_v2
from pdagent.formats import is_ascii_digits
from pdagent.hostname import default_source
from pdagent.listen.http import MAX_BODY_BYTES
from pdagent.spool.files import SpoolError, read_regular_file

V1_PATH = "/generic/2010-04-15/create_event.json"
ROUTES = {"/v2/enqueue": "alert", "/v2/change/enqueue": "change", V1_PATH: "v1"}
HEALTH_PATH = "/health"
QUEUED_BY = "pd-listen"
RETRY_AFTER_SECS = 30
BUSY_RETRY_AFTER_SECS = 5


class Answer:
    """What to send back, and one line for the log (None: nothing worth logging)."""

    __slots__ = ("body", "close", "headers", "log_line", "status")

    def __init__(self, status, body, log_line=None, headers=(), close=False):
        self.status, self.body, self.log_line = status, body, log_line
        self.headers, self.close = tuple(headers), close

    def body_bytes(self):
        return json.dumps(self.body).encode("ascii")


def _failure(status, status_text, message, **kwargs):
    return Answer(status, {"status": status_text, "message": message}, log_line=message, **kwargs)


def busy(limit_bytes, what="request bodies"):
    """The answer to a request the server has no room to hold now (the rest of it is not
    read, so the connection closes): the client keeps the event and retries shortly."""
    return _failure(503, "unavailable", f"pd-listen holds {limit_bytes // (1024 * 1024)} MiB of {what} "
                    f"already; retry shortly", headers=[("Retry-After", str(BUSY_RETRY_AFTER_SECS))],
                    close=True)


def invalid_event(errors):
    return Answer(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                  log_line=f"invalid event: {errors[0]}")


class Listener:
    """The answers of one pd-listen: where its spool is, and the token it wants, if any."""

    def __init__(self, locations, token=None):
        self.locations = locations
        self._token = None if token is None else token.encode("utf-8")

    def check_head(self, head):
        """The answer for a request its head already settles, else None (read the body)."""
        endpoint = ROUTES.get(head.path)
        if head.path == HEALTH_PATH:
            if head.method != "GET":
                return _failure(405, "method not allowed", "/health takes GET", headers=[("Allow", "GET")])
            return None
        if endpoint is None:
            return _failure(404, "not found", f"no such path; events go to {', '.join(ROUTES)}")
        if head.method != "POST":
            return _failure(405, "method not allowed", f"{head.path} takes POST", headers=[("Allow", "POST")])
        if self._token is not None and not self._authorized(head.headers.get("authorization", "")):
            return _failure(401, "unauthorized", "missing or wrong bearer token",
                            headers=[("WWW-Authenticate", 'Bearer realm="pd-listen"')])
        media_type, _, parameters = head.headers.get("content-type", "").partition(";")
        charset = parameters.strip().lower()
        if media_type.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
            return _failure(415, "unsupported media type", "the body must be application/json (UTF-8)")
        return None

    def _authorized(self, authorization):
        scheme, _, credentials = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode("latin-1"), self._token)

    def answer_all(self, requests):
        """The answers for whole requests (head, body bytes) that check_head let through, in
        order. Their events are queued together, sharing the spool's fsyncs; each 2xx is
        given only once its own entry is durable."""
        answers = [None] * len(requests)
        events = []  # (index, endpoint, body, warnings) of each request that holds an event
        for index, (head, body_bytes) in enumerate(requests):
            if head.path == HEALTH_PATH:
                answers[index] = health(self.locations)
                continue
            endpoint = ROUTES[head.path]
            try:
                events.append((index, endpoint, self._event_body(endpoint, body_bytes), []))
            except EventError as error:
                answers[index] = invalid_event([str(error)])
        outcomes = queue_v2_events(
            self.locations,
            [(self._sent_endpoint(endpoint), body, warnings.append) for _, endpoint, body, warnings in events],
            QUEUED_BY)
        for (index, endpoint, body, warnings), outcome in zip(events, outcomes):
            answers[index] = _queued_answer(endpoint, body, warnings, outcome)
        return answers

    def _event_body(self, endpoint, body_bytes):
        """The event a request's body holds, as queue_v2_events takes it (EventError if none)."""
        try:
            body = parse_json(body_bytes)
        except ValueError as error:
            raise EventError(str(error)) from None
        if not isinstance(body, dict):
            raise EventError("the event must be a JSON object")
        return v1_to_v2(body, default_source(self.locations)) if endpoint == "v1" else body

    @staticmethod
    def _sent_endpoint(endpoint):
        return "alert" if endpoint == "v1" else endpoint


def _queued_answer(endpoint, body, warnings, outcome):
    """The answer to a v2 `body` (a v1 one converted) once queue_v2_events is done with it."""
    if isinstance(outcome, EventError):
        return invalid_event([str(outcome)])
    if isinstance(outcome, SpoolError):
        return _failure(503, "unavailable", f"the event was not queued: {outcome}",
                        headers=[("Retry-After", str(RETRY_AFTER_SECS))])
    dedup_key, name = outcome
    action = "change" if endpoint == "change" else body.get("event_action")
    log_line = (f"queued {action} key={mask_key(body.get('routing_key'))} dedup_key={dedup_key} "
                f"as {name[:name.index('_')]}" + "".join(f"; {warning}" for warning in warnings))
    if endpoint == "v1":
        return Answer(200, {"status": "success", "message": "Event processed", "incident_key": dedup_key},
                      log_line=log_line)
    success = {"status": "success", "message": "Event processed"}
    if dedup_key is not None:
        success["dedup_key"] = dedup_key
    return Answer(202, success, log_line=log_line)


_PROBE_BYTES = 4096  # a page: an entry's size, so a full disk fails the probe as it would fail an entry


def spool_write_problem(locations):
    """None if a file of an entry's size can be written in the spool's tmp/ (as enqueueing
    does first), else why not. Nothing is left behind either way."""
    probe = os.path.join(locations.outqueue_dir, "tmp", f"health-{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        return f"cannot create a file in {os.path.dirname(probe)}: {error.strerror}"
    try:
        os.write(fd, b"\0" * _PROBE_BYTES)
    except OSError as error:
        return f"cannot write in {os.path.dirname(probe)}: {error.strerror}"
    finally:
        os.close(fd)
        os.unlink(probe)
    return None


def pdagentd_running(locations):
    """True if the pid file names a running pdagentd of the data directory's owner; None if the
    pid file cannot be read (it is the daemon's; pd-listen's packaged account may not read it)."""
    from pdagent.daemon import is_pdagentd
    try:
        owner_uid = os.stat(locations.data_dir).st_uid
        text = read_regular_file(locations.pid_file, 64).decode("ascii", "replace").strip()
    except FileNotFoundError:
        return False
    except (OSError, SpoolError):
        return None
    return is_ascii_digits(text) and is_pdagentd(int(text), owner_uid)


def health(locations):
    """200 while the spool can be written, else 503; and whether pdagentd runs (null: cannot tell)."""
    problem = spool_write_problem(locations)
    body = {"status": "ok" if problem is None else "unavailable", "spool_writable": problem is None,
            "pdagentd_running": pdagentd_running(locations)}
    if problem is not None:
        body["message"] = problem
        return Answer(503, body, log_line=f"health: {problem}")
    return Answer(200, body)


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_json(data):
    """The value of a JSON text in UTF-8 (RFC 8259), nothing repaired; ValueError says what is wrong.

    No byte order mark (json refuses one), no NaN or Infinity, no escaped lone surrogate (which
    UTF-8 cannot carry), no nesting deeper than the parser's recursion allows.
    """
    if len(data) > MAX_BODY_BYTES:
        raise ValueError(f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except ValueError as error:
        raise ValueError(f"the body is not JSON: {error}") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the JSON holds an escaped lone surrogate, which is not text") from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    return value
