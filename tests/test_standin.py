"""Tests of scripts/events_api_standin.py, run as a real server in a subprocess."""

from __future__ import annotations

import copy
import datetime
import http.client
import ipaddress
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "events_api_standin.py"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
OTHER_ROUTING_KEY = "fedcba9876543210fedcba9876543210"
STARTUP_TIMEOUT_SECONDS = 10.0

VALID_TRIGGER = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": "disk-full-web01",
    "payload": {
        "summary": "Disk full on web01",
        "source": "web01.example.com",
        "severity": "critical",
        "timestamp": "2024-05-01T12:00:00.000+00:00",
        "component": "disk",
        "group": "web",
        "class": "storage",
        "custom_details": {"free": "0%"},
    },
    "images": [{"src": "https://example.com/graph.png", "href": "https://example.com", "alt": "graph"}],
    "links": [{"href": "https://example.com/runbook", "text": "runbook"}],
    "client": "monitor",
    "client_url": "https://monitor.example.com",
}

VALID_CHANGE = {
    "routing_key": ROUTING_KEY,
    "payload": {
        "summary": "Deployed v1.2.3",
        "source": "ci",
        "timestamp": "2024-05-01T12:00:00Z",
        "custom_details": {"build": 42},
    },
    "links": [{"href": "https://ci.example.com/42"}],
}


def trigger(**changes):
    event = copy.deepcopy(VALID_TRIGGER)
    event.update(changes)
    return event


class StandIn:
    """A running stand-in process and the means to talk to it."""

    def __init__(self, process, port, stderr_path, tls_context=None):
        self.process = process
        self.port = port
        self.stderr_path = stderr_path
        self.tls_context = tls_context

    def connect(self, timeout=5.0):
        if self.tls_context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.tls_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, connection=None):
        """(status, headers, parsed JSON answer); body may be bytes or a JSON value."""
        own_connection = connection is None
        connection = connection or self.connect()
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode("utf-8")
            all_headers = {"Content-Type": "application/json", "User-Agent": "standin-test/1.0"}
            all_headers.update(headers or {})
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
        finally:
            if own_connection:
                connection.close()

    def post(self, body, path="/v2/enqueue", **keywords):
        return self.request("POST", path, body, **keywords)

    def control(self, method, name, body=None):
        status, _, answer = self.request(method, "/_control/" + name, body)
        assert status == 200, answer
        return answer


@pytest.fixture
def start_standin(tmp_path):
    """Starts stand-ins with the given extra arguments; kills them all at teardown."""
    processes = []

    def start(*arguments, tls_context=None):
        port_file = tmp_path / f"standin-{len(processes)}.port"
        stderr_path = tmp_path / f"standin-{len(processes)}.stderr"
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--port", "0", "--port-file", str(port_file), *arguments],
                stdout=subprocess.PIPE, stderr=stderr,
            )
        processes.append(process)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stand-in did not start: {stderr_path.read_text()}")
            time.sleep(0.01)
        return StandIn(process, int(port_file.read_text()), stderr_path, tls_context)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture
def standin(start_standin):
    return start_standin()


# -- the Events API


def test_valid_trigger_is_accepted_with_its_dedup_key(standin):
    status, headers, answer = standin.post(VALID_TRIGGER)
    assert status == 202
    assert headers["Content-Type"] == "application/json"
    assert answer == {"status": "success", "message": "Event processed", "dedup_key": "disk-full-web01"}
    received = standin.control("GET", "received")
    assert [entry["body"] for entry in received] == [VALID_TRIGGER]
    assert received[0]["path"] == "/v2/enqueue"
    assert received[0]["user_agent"] == "standin-test/1.0"


def test_trigger_without_dedup_key_gets_a_generated_one(standin):
    event = trigger()
    del event["dedup_key"]
    status, _, answer = standin.post(event)
    assert status == 202
    assert re.fullmatch(r"[0-9a-f]{32}", answer["dedup_key"])


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_with_dedup_key_need_no_payload(standin, action):
    event = {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "abc"}
    status, _, answer = standin.post(event)
    assert (status, answer["dedup_key"]) == (202, "abc")


def _without_payload_field(field):
    event = trigger()
    del event["payload"][field]
    return event


def _with_payload_field(field, value):
    event = trigger()
    event["payload"][field] = value
    return event


def _without(field):
    event = trigger()
    del event[field]
    return event


INVALID_ALERTS = {
    "unknown top-level field": (trigger(severity="critical"), "'severity'"),
    "unknown payload field": (_with_payload_field("host", "web01"), "'payload.host'"),
    "missing severity": (_without_payload_field("severity"), "'payload.severity' is missing"),
    "missing summary": (_without_payload_field("summary"), "'payload.summary' is missing"),
    "missing source": (_without_payload_field("source"), "'payload.source' is missing"),
    "31-character routing key": (trigger(routing_key=ROUTING_KEY[:31]), "'routing_key'"),
    "missing routing key": (_without("routing_key"), "'routing_key' is missing"),
    "bad severity": (_with_payload_field("severity", "major"), "'payload.severity'"),
    "bad event action": (trigger(event_action="escalate"), "'event_action'"),
    "acknowledge without dedup key": (
        {"routing_key": ROUTING_KEY, "event_action": "acknowledge"}, "'dedup_key' is required"),
    "resolve without dedup key": (
        {"routing_key": ROUTING_KEY, "event_action": "resolve"}, "'dedup_key' is required"),
    "trigger without payload": (_without("payload"), "'payload' is required"),
    "dedup key too long": (trigger(dedup_key="k" * 256), "'dedup_key'"),
    "summary too long": (_with_payload_field("summary", "s" * 1025), "'payload.summary'"),
    "bad timestamp": (_with_payload_field("timestamp", "yesterday"), "'payload.timestamp'"),
    "image without src": (trigger(images=[{"href": "https://example.com"}]), "'images[0].src'"),
    "link with unknown field": (trigger(links=[{"href": "h", "url": "u"}]), "'links[0].url'"),
    "client not a string": (trigger(client=7), "'client'"),
}


@pytest.mark.parametrize("event, expected_error", INVALID_ALERTS.values(), ids=INVALID_ALERTS.keys())
def test_invalid_alert_is_rejected(standin, event, expected_error):
    status, _, answer = standin.post(event)
    assert status == 400
    assert answer["status"] == "invalid event"
    assert answer["message"] == "Event object is invalid"
    assert any(expected_error in error for error in answer["errors"]), answer["errors"]
    assert standin.control("GET", "received") == []


def test_summary_of_exactly_1024_characters_is_accepted(standin):
    status, _, _ = standin.post(_with_payload_field("summary", "s" * 1024))
    assert status == 202


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"routing_key": NaN}'])
def test_body_that_is_not_a_json_object_is_rejected(standin, body):
    status, _, answer = standin.post(body)
    assert status == 400
    assert answer["status"] == "invalid event"


def test_wrong_content_type_is_rejected(standin):
    status, _, answer = standin.post(VALID_TRIGGER, headers={"Content-Type": "text/plain"})
    assert status == 400
    assert "Content-Type" in answer["errors"][0]


def test_change_event_is_accepted_on_the_change_endpoint(standin):
    status, _, answer = standin.post(VALID_CHANGE, path="/v2/change/enqueue")
    assert status == 202
    assert answer == {"status": "success", "message": "Change event processed"}
    assert standin.control("GET", "received")[0]["path"] == "/v2/change/enqueue"


@pytest.mark.parametrize("field, value", [("event_action", "trigger"), ("dedup_key", "abc"),
                                          ("client", "monitor")])
def test_change_event_with_alert_only_fields_is_rejected(standin, field, value):
    event = copy.deepcopy(VALID_CHANGE)
    event[field] = value
    status, _, answer = standin.post(event, path="/v2/change/enqueue")
    assert status == 400
    assert any(f"'{field}'" in error for error in answer["errors"])


def test_change_event_with_alert_only_payload_field_is_rejected(standin):
    event = copy.deepcopy(VALID_CHANGE)
    event["payload"]["severity"] = "info"
    status, _, answer = standin.post(event, path="/v2/change/enqueue")
    assert status == 400
    assert any("'payload.severity'" in error for error in answer["errors"])


def test_body_over_512_kb_is_refused_and_the_connection_stays_usable(standin):
    event = trigger()
    event["payload"]["custom_details"] = {"blob": "x" * (600 * 1024)}
    connection = standin.connect()
    try:
        status, _, answer = standin.post(event, connection=connection)
        assert status == 413
        assert answer["status"] == "error"
        status, _, _ = standin.post(VALID_TRIGGER, connection=connection)
        assert status == 202
    finally:
        connection.close()


def test_unknown_path_is_404_and_wrong_method_is_405(standin):
    status, _, answer = standin.post(VALID_TRIGGER, path="/v1/enqueue")
    assert status == 404
    assert answer["status"] == "error"
    status, headers, _ = standin.request("GET", "/v2/enqueue")
    assert status == 405
    assert headers["Allow"] == "POST"


# -- fault rules


def test_fault_rule_answers_500_twice_then_the_event_is_accepted(standin):
    standin.control("POST", "faults", [{"match": {"path": "/v2/enqueue"}, "status": 500, "times": 2}])
    connection = standin.connect()
    try:
        answers = [standin.post(VALID_TRIGGER, connection=connection) for _ in range(3)]
    finally:
        connection.close()
    assert [status for status, _, _ in answers] == [500, 500, 202]
    assert answers[0][2] == {"status": "error", "message": "injected 500"}
    assert len(standin.control("GET", "received")) == 1
    assert [entry["status"] for entry in standin.control("GET", "requests")] == [500, 500, 202]
    assert standin.control("GET", "faults")[0]["times"] == 0


def test_fault_rule_only_hits_its_routing_key(standin):
    standin.control("POST", "faults", [{"match": {"routing_key": OTHER_ROUTING_KEY}, "status": 503,
                                        "times": -1}])
    assert standin.post(VALID_TRIGGER)[0] == 202
    assert standin.post(trigger(routing_key=OTHER_ROUTING_KEY))[0] == 503
    assert standin.post(trigger(routing_key=OTHER_ROUTING_KEY))[0] == 503
    assert standin.control("GET", "faults")[0]["times"] == -1


def test_fault_rule_429_sends_retry_after(standin):
    standin.control("POST", "faults", [{"status": 429, "retry_after": "5"}])
    status, headers, answer = standin.post(VALID_TRIGGER)
    assert status == 429
    assert headers["Retry-After"] == "5"
    assert answer["status"] == "throttle event"
    assert standin.post(VALID_TRIGGER)[0] == 202


def test_delay_rule_answers_normally_but_late(standin):
    standin.control("POST", "faults", [{"delay": 0.5}])
    started = time.monotonic()
    status, _, _ = standin.post(VALID_TRIGGER)
    assert status == 202
    assert time.monotonic() - started >= 0.45
    assert len(standin.control("GET", "received")) == 1


def test_close_rule_drops_the_connection_without_an_answer(standin):
    standin.control("POST", "faults", [{"action": "close"}])
    with pytest.raises(ConnectionError):
        standin.post(VALID_TRIGGER)
    assert standin.control("GET", "received") == []
    assert standin.post(VALID_TRIGGER)[0] == 202


def test_reset_rule_resets_the_connection_mid_answer(standin):
    standin.control("POST", "faults", [{"action": "reset", "status": 202}])
    with pytest.raises(ConnectionResetError) as raised:
        standin.post(VALID_TRIGGER)
    # A reset, not the orderly close http.client reports as RemoteDisconnected.
    assert not isinstance(raised.value, http.client.RemoteDisconnected)
    assert standin.control("GET", "received") == []
    assert standin.post(VALID_TRIGGER)[0] == 202


def test_invalid_fault_rules_are_refused(standin):
    status, _, answer = standin.request("POST", "/_control/faults", [{"status": "500"}, {"times": 2}])
    assert status == 400
    assert len(answer["errors"]) == 2


def test_control_reset_clears_everything(standin):
    standin.post(VALID_TRIGGER)
    standin.control("POST", "faults", [{"status": 500, "times": -1}])
    standin.control("POST", "reset")
    assert standin.control("GET", "received") == []
    assert standin.control("GET", "requests") == []
    assert standin.control("GET", "faults") == []
    assert standin.post(VALID_TRIGGER)[0] == 202


# -- command-line options


def test_record_file_gets_one_line_per_accepted_event(start_standin, tmp_path):
    record_path = tmp_path / "record.jsonl"
    standin = start_standin("--record", str(record_path))
    before = time.time()
    assert standin.post(VALID_TRIGGER)[0] == 202
    assert standin.post(trigger(event_action="bogus"))[0] == 400
    assert standin.post(VALID_CHANGE, path="/v2/change/enqueue")[0] == 202
    # Read while the server still runs: every line must already be flushed.
    lines = [json.loads(line) for line in record_path.read_text().splitlines()]
    assert [(line["path"], line["body"]) for line in lines] == [
        ("/v2/enqueue", VALID_TRIGGER), ("/v2/change/enqueue", VALID_CHANGE)]
    assert all(before - 1 <= line["received_at"] <= time.time() for line in lines)
    assert lines[0]["user_agent"] == "standin-test/1.0"
    assert lines == standin.control("GET", "received")


def test_rate_limit_throttles_per_routing_key(start_standin):
    standin = start_standin("--rate-limit", "2")
    assert standin.post(VALID_TRIGGER)[0] == 202
    assert standin.post(VALID_TRIGGER)[0] == 202
    status, _, answer = standin.post(VALID_TRIGGER)
    assert status == 429
    assert answer["status"] == "throttle event"
    assert standin.post(trigger(routing_key=OTHER_ROUTING_KEY))[0] == 202
    assert len(standin.control("GET", "received")) == 3


def _make_certificate(directory):
    """(certificate, key, CA) PEM paths for 127.0.0.1, via cryptography or else openssl."""
    cert_path, key_path, ca_path = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )
        shutil.copy(cert_path, ca_path)
        return cert_path, key_path, ca_path

    # Naive datetimes are taken as UTC; a wide window keeps clock skew out of it.
    not_before, not_after = datetime.datetime(2000, 1, 1), datetime.datetime(2099, 1, 1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return cert_path, key_path, ca_path


def test_https_with_a_self_made_certificate(start_standin, tmp_path):
    cert_path, key_path, ca_path = _make_certificate(tmp_path)
    context = ssl.create_default_context(cafile=str(ca_path))
    standin = start_standin("--tls-cert", str(cert_path), "--tls-key", str(key_path),
                            tls_context=context)
    assert standin.process.stdout.readline().decode() == f"listening on https://127.0.0.1:{standin.port}\n"
    connection = standin.connect()
    try:
        for _ in range(3):
            status, _, answer = standin.post(VALID_TRIGGER, connection=connection)
            assert (status, answer["dedup_key"]) == (202, "disk-full-web01")
    finally:
        connection.close()
    # Python's ssl reports a reset as an EOF, which http.client calls RemoteDisconnected.
    standin.control("POST", "faults", [{"action": "reset"}])
    with pytest.raises(ConnectionError):
        standin.post(VALID_TRIGGER)
    assert len(standin.control("GET", "received")) == 3


def test_keep_alive_serves_200_requests_on_one_connection(standin):
    connection = standin.connect()
    try:
        standin.post(VALID_TRIGGER, connection=connection)
        first_socket = connection.sock
        statuses = []
        for number in range(200):
            status, _, _ = standin.post(trigger(dedup_key=f"key-{number}"), connection=connection)
            statuses.append(status)
            assert connection.sock is first_socket, "the server closed the connection"
    finally:
        connection.close()
    assert statuses == [202] * 200
    assert len(standin.control("GET", "received")) == 201


def test_listening_line_on_stdout(standin):
    assert standin.process.stdout.readline().decode() == f"listening on http://127.0.0.1:{standin.port}\n"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_cleanly(start_standin, stop_signal):
    standin = start_standin()
    assert standin.post(VALID_TRIGGER)[0] == 202
    standin.process.send_signal(stop_signal)
    assert standin.process.wait(timeout=5) == 0
