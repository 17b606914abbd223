#!/usr/bin/env python3
"""A local stand-in for the PagerDuty Events API v2.

A real HTTP(S) server on the loopback interface that checks events as
strictly as the project wants the agent to be (any field the API does not
define is refused), answers the way the real API does, remembers what it
received, and can be told over HTTP to misbehave (errors, throttling,
delays, dropped or reset connections) so that the agent's retry paths can
be tested for real.

Run `python3 scripts/events_api_standin.py --help` for the options;
scripts/README.md describes the control endpoints and fault rules.
Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ALERT_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
CONTROL_PREFIX = "/_control/"

MAX_BODY_BYTES = 512 * 1024
# Oversized bodies up to this size are read and dropped so that the
# connection stays usable after the 413; larger ones make us hang up.
MAX_DRAINED_BODY_BYTES = 16 * 1024 * 1024
RATE_WINDOW_SECONDS = 60.0
TLS_HANDSHAKE_TIMEOUT_SECONDS = 10.0

ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY_LENGTH = 255
MAX_SUMMARY_LENGTH = 1024
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")

ALERT_FIELDS = frozenset(
    ["routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"]
)
ALERT_PAYLOAD_FIELDS = frozenset(
    ["summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"]
)
CHANGE_FIELDS = frozenset(["routing_key", "payload", "links"])
CHANGE_PAYLOAD_FIELDS = frozenset(["summary", "source", "timestamp", "custom_details"])

FAULT_RULE_FIELDS = frozenset(["match", "times", "status", "retry_after", "delay", "action"])
FAULT_ACTIONS = ("reset", "close")

THROTTLE_ANSWER = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly. Please retry later.",
}

# ISO 8601 / RFC 3339 date with optional time and zone; the numbers are
# range-checked separately by building a datetime.
ISO_8601_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
    r"(?:[Zz]|[+-](\d{2})(?::?(\d{2}))?)?)?$"
)


# ---------------------------------------------------------------------------
# Event validation


def _is_iso_8601(text: str) -> bool:
    found = ISO_8601_PATTERN.match(text)
    if found is None:
        return False
    year, month, day, hour, minute, second, zone_hours, zone_minutes = (
        int(part) if part is not None else 0 for part in found.groups()
    )
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return zone_hours < 24 and zone_minutes < 60


def _check_string(
    container: dict, field: str, where: str, errors: list, min_length: int = 0, max_length: int | None = None
) -> None:
    """Checks container[field] (which must be present) is a string of a fitting length."""
    value = container[field]
    name = where + field
    if not isinstance(value, str):
        errors.append(f"'{name}' must be a string")
    elif len(value) < min_length:
        errors.append(f"'{name}' must not be empty" if min_length == 1 else f"'{name}' is too short")
    elif max_length is not None and len(value) > max_length:
        errors.append(f"'{name}' is {len(value)} characters long (at most {max_length} allowed)")


def _check_no_unknown_fields(container: dict, allowed: frozenset, where: str, errors: list) -> None:
    for field in sorted(set(container) - allowed):
        errors.append(f"'{where}{field}' is not a field of this event")


def _check_routing_key(event: dict, errors: list) -> None:
    if "routing_key" not in event:
        errors.append("'routing_key' is missing")
        return
    routing_key = event["routing_key"]
    if not isinstance(routing_key, str):
        errors.append("'routing_key' must be a string")
    elif len(routing_key) != ROUTING_KEY_LENGTH:
        errors.append(
            f"'routing_key' must be {ROUTING_KEY_LENGTH} characters long (got {len(routing_key)})"
        )


def _check_list_of_objects(
    event: dict, field: str, required: str, optional: tuple, errors: list
) -> None:
    items = event[field]
    if not isinstance(items, list):
        errors.append(f"'{field}' must be a list")
        return
    allowed = frozenset((required,) + optional)
    for index, item in enumerate(items):
        where = f"{field}[{index}]."
        if not isinstance(item, dict):
            errors.append(f"'{field}[{index}]' must be an object")
            continue
        _check_no_unknown_fields(item, allowed, where, errors)
        if required not in item:
            errors.append(f"'{where}{required}' is missing")
        for name in (required,) + optional:
            if name in item:
                _check_string(item, name, where, errors, min_length=1 if name == required else 0)


def _check_payload_fields(payload: dict, required: tuple, errors: list) -> None:
    """Checks the payload fields shared by alert and change events."""
    where = "payload."
    for field in required:
        if field not in payload:
            errors.append(f"'payload.{field}' is missing")
    if "summary" in payload:
        _check_string(payload, "summary", where, errors, min_length=1, max_length=MAX_SUMMARY_LENGTH)
    if "source" in payload:
        _check_string(payload, "source", where, errors, min_length=1)
    if "timestamp" in payload:
        timestamp = payload["timestamp"]
        if not isinstance(timestamp, str):
            errors.append("'payload.timestamp' must be a string")
        elif not _is_iso_8601(timestamp):
            errors.append(f"'payload.timestamp' is not an ISO 8601 date and time: {timestamp!r}")
    # custom_details may be any JSON value.


def validate_alert_event(event: dict) -> list:
    """The reasons an alert event (trigger, acknowledge, resolve) is refused; empty when it is fine."""
    errors: list = []
    _check_no_unknown_fields(event, ALERT_FIELDS, "", errors)
    _check_routing_key(event, errors)

    action = event.get("event_action")
    if "event_action" not in event:
        errors.append("'event_action' is missing")
    elif not isinstance(action, str) or action not in EVENT_ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(EVENT_ACTIONS)}")

    if "dedup_key" in event:
        _check_string(event, "dedup_key", "", errors, min_length=1, max_length=MAX_DEDUP_KEY_LENGTH)
    elif action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required for {action} events")

    if "payload" in event:
        payload = event["payload"]
        if not isinstance(payload, dict):
            errors.append("'payload' must be an object")
        else:
            _check_no_unknown_fields(payload, ALERT_PAYLOAD_FIELDS, "payload.", errors)
            required = ("summary", "source", "severity") if action == "trigger" else ()
            _check_payload_fields(payload, required, errors)
            if "severity" in payload:
                severity = payload["severity"]
                if not isinstance(severity, str) or severity not in SEVERITIES:
                    errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
            for field in ("component", "group", "class"):
                if field in payload:
                    _check_string(payload, field, "payload.", errors)
    elif action == "trigger":
        errors.append("'payload' is required for trigger events")

    if "images" in event:
        _check_list_of_objects(event, "images", "src", ("href", "alt"), errors)
    if "links" in event:
        _check_list_of_objects(event, "links", "href", ("text",), errors)
    for field in ("client", "client_url"):
        if field in event:
            _check_string(event, field, "", errors)
    return errors


def validate_change_event(event: dict) -> list:
    """The reasons a change event is refused; empty when it is fine."""
    errors: list = []
    _check_no_unknown_fields(event, CHANGE_FIELDS, "", errors)
    _check_routing_key(event, errors)
    if "payload" not in event:
        errors.append("'payload' is missing")
    elif not isinstance(event["payload"], dict):
        errors.append("'payload' must be an object")
    else:
        payload = event["payload"]
        _check_no_unknown_fields(payload, CHANGE_PAYLOAD_FIELDS, "payload.", errors)
        _check_payload_fields(payload, ("summary",), errors)
    if "links" in event:
        _check_list_of_objects(event, "links", "href", ("text",), errors)
    return errors


def _refuse_json_constant(name: str) -> Any:
    # Python's json writes NaN and Infinity by default, but they are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes) -> tuple:
    """(value, None) for a JSON document, (None, reason) otherwise."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_json_constant), None
    except UnicodeDecodeError:
        return None, "body is not UTF-8"
    except ValueError as error:
        return None, f"body is not valid JSON: {error}"


# ---------------------------------------------------------------------------
# Fault rules


def parse_fault_rules(value: Any) -> tuple:
    """(rules, errors) from the JSON sent to POST /_control/faults."""
    if not isinstance(value, list):
        return [], ["fault rules must be a JSON list"]
    rules = []
    errors: list = []
    for index, rule in enumerate(value):
        where = f"rule {index}"
        if not isinstance(rule, dict):
            errors.append(f"{where}: must be an object")
            continue
        for field in sorted(set(rule) - FAULT_RULE_FIELDS):
            errors.append(f"{where}: unknown field {field!r}")

        match = rule.get("match", {})
        if not isinstance(match, dict):
            errors.append(f"{where}: 'match' must be an object")
            match = {}
        times = rule.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times < -1:
            errors.append(f"{where}: 'times' must be a whole number, -1 for forever")
        parsed = {"match": dict(match), "times": times}

        if "status" in rule:
            status = rule["status"]
            if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
                errors.append(f"{where}: 'status' must be an HTTP status from 200 to 599")
            parsed["status"] = status
        if "retry_after" in rule:
            retry_after = rule["retry_after"]
            if isinstance(retry_after, bool) or not isinstance(retry_after, (str, int, float)):
                errors.append(f"{where}: 'retry_after' must be a string or a number")
            elif "status" not in rule:
                errors.append(f"{where}: 'retry_after' needs a 'status'")
            parsed["retry_after"] = str(retry_after)
        if "delay" in rule:
            delay = rule["delay"]
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
                errors.append(f"{where}: 'delay' must be a number of seconds, 0 or more")
            parsed["delay"] = delay
        if "action" in rule:
            if rule["action"] not in FAULT_ACTIONS:
                errors.append(f"{where}: 'action' must be one of {', '.join(FAULT_ACTIONS)}")
            parsed["action"] = rule["action"]
        if not {"status", "delay", "action"} & set(rule):
            errors.append(f"{where}: needs at least one of 'status', 'delay', 'action'")
        rules.append(parsed)
    return rules, errors


def _fault_rule_matches(rule: dict, path: str, body: Any) -> bool:
    for field, wanted in rule["match"].items():
        if field == "path":
            if path != wanted:
                return False
        # Any other field is compared with the top-level body field of that name.
        elif not isinstance(body, dict) or field not in body or body[field] != wanted:
            return False
    return True


# ---------------------------------------------------------------------------
# Shared state


class StandInState:
    """What the stand-in has seen and has been told to do; shared by all connections."""

    def __init__(self, record_file: Any, rate_limit: int) -> None:
        self.lock = threading.Lock()
        self.received: list = []
        self.requests: list = []
        self.fault_rules: list = []
        self.record_file = record_file
        self.rate_limit = rate_limit
        # routing key -> monotonic times of the events accepted for it in the window
        self.accepted_times: dict = collections.defaultdict(collections.deque)

    def add_request(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)

    def set_request_status(self, entry: dict, status: int | None, fault: bool) -> None:
        with self.lock:
            entry["status"] = status
            entry["fault"] = fault

    def take_fault(self, path: str, body: Any) -> dict | None:
        """The first rule with times left that matches, counted down by one."""
        with self.lock:
            for rule in self.fault_rules:
                if rule["times"] != 0 and _fault_rule_matches(rule, path, body):
                    if rule["times"] > 0:
                        rule["times"] -= 1
                    return dict(rule)
        return None

    def accept(self, path: str, event: dict, received_at: float, user_agent: str | None) -> bool:
        """Records an accepted event; False (and nothing recorded) when the routing key is over its rate."""
        accepted = {"path": path, "body": event, "received_at": received_at, "user_agent": user_agent}
        with self.lock:
            if self.rate_limit > 0:
                now = time.monotonic()
                times = self.accepted_times[event["routing_key"]]
                while times and times[0] <= now - RATE_WINDOW_SECONDS:
                    times.popleft()
                if len(times) >= self.rate_limit:
                    return False
                times.append(now)
            self.received.append(accepted)
            if self.record_file is not None:
                # One line per event, flushed, so readers can follow the file live.
                self.record_file.write(json.dumps(accepted, separators=(",", ":")) + "\n")
                self.record_file.flush()
        return True

    def set_fault_rules(self, rules: list) -> None:
        with self.lock:
            self.fault_rules = rules

    def reset(self) -> None:
        with self.lock:
            self.received = []
            self.requests = []
            self.fault_rules = []
            self.accepted_times.clear()

    def dump(self, name: str) -> bytes:
        # Serialised under the lock so the handlers cannot change it meanwhile.
        with self.lock:
            return json.dumps(getattr(self, name)).encode("utf-8")


# ---------------------------------------------------------------------------
# HTTP


class _FramingError(Exception):
    """The request body cannot be read; the connection cannot be reused."""


class EventsApiStandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pdagent-events-api-standin"
    # Answers go out as two writes (headers, body); without this the
    # client's delayed ACK would stall each keep-alive request.
    disable_nagle_algorithm = True

    server: StandInServer

    def version_string(self) -> str:
        return self.server_version

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(CONTROL_PREFIX):
            self._handle_control(path)
        else:
            self._handle_api(path)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- reading

    def _read_body(self) -> tuple:
        """(body, too_large); body is None when it is too large to keep."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b"", False
        try:
            length = int(length_text)
        except ValueError:
            raise _FramingError(f"Content-Length is not a number: {length_text!r}") from None
        if length < 0:
            raise _FramingError("Content-Length is negative")
        if length <= MAX_BODY_BYTES:
            body = self.rfile.read(length)
            if len(body) < length:
                raise _FramingError("connection closed before the end of the body")
            return body, False
        if length > MAX_DRAINED_BODY_BYTES:
            self.close_connection = True
            return None, True
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                raise _FramingError("connection closed before the end of the body")
            left -= len(chunk)
        return None, True

    def _read_chunked_body(self) -> tuple:
        parts = []
        total = 0
        while True:
            size_line = self.rfile.readline(65537)
            if not size_line:
                raise _FramingError("connection closed inside a chunked body")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _FramingError("bad chunk size line") from None
            if size == 0:
                break
            total += size
            if total > MAX_DRAINED_BODY_BYTES:
                self.close_connection = True
                return None, True
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _FramingError("connection closed inside a chunked body")
            if total <= MAX_BODY_BYTES:
                parts.append(chunk)
            self.rfile.readline()  # the CRLF that ends each chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers, not used
        if total > MAX_BODY_BYTES:
            return None, True
        return b"".join(parts), False

    # -- answering

    def _send_json(self, status: int, answer: Any, extra_headers: tuple = ()) -> None:
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset_connection(self, status: int) -> None:
        """Starts an answer, then aborts the TCP connection with a RST."""
        connection = self.connection
        if not isinstance(connection, ssl.SSLSocket):
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Unknown"
            self.wfile.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/js".encode("ascii"))
        # Over TLS nothing is sent first: Python's ssl reports the reset as a
        # plain EOF, and http.client would take a cut-off header followed by
        # EOF for a whole (empty) answer with that status.
        self.close_connection = True
        # Linger on with a zero timeout makes close() send RST instead of FIN.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket; the descriptor only closes with both gone.
        self.rfile.close()
        connection.close()

    # -- the Events API

    def _handle_api(self, path: str) -> None:
        received_at = time.time()
        headers = dict(self.headers.items())
        client = self.client_address[0]  # lets tests check the agent's source_address
        try:
            raw, too_large = self._read_body()
        except _FramingError as error:
            self.close_connection = True
            entry = {"path": path, "method": self.command, "status": 400, "fault": False,
                     "body": None, "received_at": received_at, "headers": headers, "client": client}
            self.server.state.add_request(entry)
            self._send_json(400, {"status": "error", "message": str(error)})
            return

        body, json_error = (None, None) if too_large else parse_json_body(raw)
        entry = {"path": path, "method": self.command, "status": None, "fault": False,
                 "body": body, "received_at": received_at, "headers": headers, "client": client}
        state = self.server.state
        state.add_request(entry)

        fault = state.take_fault(path, body)
        if fault is not None:
            if fault.get("delay"):
                time.sleep(fault["delay"])
            action = fault.get("action")
            if action == "close":
                state.set_request_status(entry, None, fault=True)
                self.close_connection = True
                return
            if action == "reset":
                state.set_request_status(entry, None, fault=True)
                self._reset_connection(fault.get("status", 202))
                return
            if "status" in fault:
                status = fault["status"]
                state.set_request_status(entry, status, fault=True)
                answer = THROTTLE_ANSWER if status == 429 else {
                    "status": "error", "message": f"injected {status}"}
                extra = (("Retry-After", fault["retry_after"]),) if "retry_after" in fault else ()
                self._send_json(status, answer, extra)
                return
            # A delay alone: answer as usual, just late.

        status, answer, extra = self._process_event(path, body, json_error, too_large, received_at)
        state.set_request_status(entry, status, fault=False)
        self._send_json(status, answer, extra)

    def _process_event(self, path: str, body: Any, json_error: str | None, too_large: bool,
                       received_at: float) -> tuple:
        """(status, answer, extra headers) for a request that no fault rule took."""
        if path not in (ALERT_PATH, CHANGE_PATH):
            return 404, {"status": "error", "message": f"no such endpoint: {path}"}, ()
        if self.command != "POST":
            return 405, {"status": "error", "message": "use POST"}, (("Allow", "POST"),)
        if too_large:
            return 413, {"status": "error",
                         "message": f"request body is larger than {MAX_BODY_BYTES} bytes"}, ()

        errors = []
        content_type = self.headers.get_content_type()
        if content_type != "application/json":
            errors.append(f"Content-Type must be application/json, not {content_type}")
        if json_error is not None:
            errors.append(json_error)
        elif not isinstance(body, dict):
            errors.append("body must be a JSON object")
        elif path == ALERT_PATH:
            errors.extend(validate_alert_event(body))
        else:
            errors.extend(validate_change_event(body))
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid",
                         "errors": errors}, ()

        if not self.server.state.accept(path, body, received_at, self.headers.get("User-Agent")):
            return 429, THROTTLE_ANSWER, ()
        if path == CHANGE_PATH:
            return 202, {"status": "success", "message": "Change event processed"}, ()
        dedup_key = body.get("dedup_key") or uuid.uuid4().hex
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, ()

    # -- control endpoints

    def _handle_control(self, path: str) -> None:
        try:
            raw, too_large = self._read_body()
        except _FramingError as error:
            self.close_connection = True
            self._send_json(400, {"status": "error", "message": str(error)})
            return
        name = path[len(CONTROL_PREFIX):]
        allowed_methods = {"received": "GET", "requests": "GET", "reset": "POST", "faults": "GET, POST"}
        if name not in allowed_methods:
            self._send_json(404, {"status": "error", "message": f"no such control endpoint: {path}"})
            return
        if self.command not in allowed_methods[name].split(", "):
            self._send_json(405, {"status": "error", "message": f"use {allowed_methods[name]}"},
                            (("Allow", allowed_methods[name]),))
            return

        state = self.server.state
        if name in ("received", "requests"):
            self._send_json(200, state.dump(name))
        elif name == "reset":
            state.reset()
            self._send_json(200, {"status": "ok"})
        elif self.command == "GET":
            self._send_json(200, state.dump("fault_rules"))
        else:
            if too_large:
                self._send_json(413, {"status": "error", "message": "fault rules are too large"})
                return
            value, json_error = parse_json_body(raw)
            rules, errors = parse_fault_rules(value) if json_error is None else ([], [json_error])
            if errors:
                self._send_json(400, {"status": "error", "message": "fault rules are invalid",
                                      "errors": errors})
                return
            state.set_fault_rules(rules)
            self._send_json(200, {"status": "ok", "faults": rules})


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple, state: StandInState, verbose: bool,
                 tls_context: ssl.SSLContext | None) -> None:
        self.state = state
        self.verbose = verbose
        self.tls_context = tls_context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, EventsApiStandInHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up, which can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        # The handshake happens here, in the connection's own thread, so a
        # slow client cannot hold up accepting others.
        request.settimeout(TLS_HANDSHAKE_TIMEOUT_SECONDS)
        tls_request = self.tls_context.wrap_socket(request, server_side=True)
        try:
            tls_request.settimeout(None)
            super().finish_request(tls_request, client_address)
        finally:
            self.shutdown_request(tls_request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping connections is routine in tests; only show it when asked.
        if self.verbose:
            super().handle_error(request, client_address)


# ---------------------------------------------------------------------------
# Command line


def write_port_file(path: str, port: int) -> None:
    """Writes through a temporary file and a rename so readers never see half of it."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary_path = tempfile.mkstemp(prefix=".port-", dir=directory)
    try:
        with os.fdopen(descriptor, "w") as port_file:
            port_file.write(f"{port}\n")
        os.replace(temporary_path, path)
    except BaseException:
        os.unlink(temporary_path)
        raise


def parse_arguments(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local stand-in for the PagerDuty Events API v2.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    parser.add_argument("--port-file", help="write the port number to this file once listening")
    parser.add_argument("--tls-cert", help="PEM certificate chain; serve HTTPS (needs --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--record", help="append each accepted event to this file as a JSON line")
    parser.add_argument("--rate-limit", type=int, default=0, metavar="N",
                        help="answer 429 past N accepted events per routing key in 60 s (0 = off)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    arguments = parser.parse_args(argv)
    if bool(arguments.tls_cert) != bool(arguments.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if arguments.rate_limit < 0:
        parser.error("--rate-limit must be 0 or more")
    return arguments


def main(argv: list | None = None) -> int:
    arguments = parse_arguments(argv)
    tls_context = None
    if arguments.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(arguments.tls_cert, arguments.tls_key)
    with contextlib.ExitStack() as cleanup:
        record_file = None
        if arguments.record:
            record_file = cleanup.enter_context(open(arguments.record, "a", encoding="utf-8"))
        serve(arguments, StandInState(record_file, arguments.rate_limit), tls_context)
    return 0


def serve(arguments: argparse.Namespace, state: StandInState, tls_context: ssl.SSLContext | None) -> None:
    """Serves until SIGTERM or SIGINT."""
    server = StandInServer((arguments.host, arguments.port), state, arguments.verbose, tls_context)
    stop_requested = threading.Event()

    def request_stop(signal_number: int, frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # Served from a thread so the main thread stays free to take signals
    # and call shutdown(), which would deadlock inside serve_forever().
    serve_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                    name="serve", daemon=True)
    serve_thread.start()

    port = server.server_address[1]
    if arguments.port_file:
        write_port_file(arguments.port_file, port)
    scheme = "https" if tls_context else "http"
    host = f"[{arguments.host}]" if ":" in arguments.host else arguments.host
    print(f"listening on {scheme}://{host}:{port}", flush=True)

    while not stop_requested.wait(1.0):
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
