"""pd-listen, the local Events API, as a real process: curl and Python clients in, pdagentd out to the stand-in."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess

import pytest
from harness import LISTEN_USER, Listen
from helpers import as_user, command, routing_key, wait_for

KEY = routing_key(18)
TOKEN = "s3cret-t0ken"

# PagerDuty's documented example bodies (Events API v2 and v1), with a 32-character key.
ALERT_TRIGGER = {
    "payload": {
        "summary": "DISK at 99% on machine prod-datapipe03.example.com",
        "timestamp": "2015-07-17T08:42:58.315+0000", "severity": "critical",
        "source": "prod-datapipe03.example.com", "component": "mysql", "group": "prod-datapipe",
        "class": "disk", "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75},
    },
    "routing_key": KEY, "dedup_key": "samplekeyhere",
    "images": [{"src": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png",
                "href": "https://example.com/", "alt": "Example text"}],
    "links": [{"href": "https://example.com/", "text": "Link text"}],
    "event_action": "trigger", "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.example.com",
}
ALERT_ACKNOWLEDGE = {"routing_key": KEY, "dedup_key": "samplekeyhere", "event_action": "acknowledge"}
ALERT_RESOLVE = {"routing_key": KEY, "dedup_key": "samplekeyhere", "event_action": "resolve"}
CHANGE = {
    "routing_key": KEY,
    "payload": {"summary": "Build Success: Increase snapshot create timeout to 30 seconds",
                "timestamp": "2020-07-17T08:42:58.315+0000", "source": "prod-build-agent-i-0b148d1040d565540",
                "custom_details": {"build_state": "passed", "build_number": "2", "run_time": "1236s"}},
    "links": [{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details in Acme!"}],
}
V1_TRIGGER = {"service_key": KEY, "incident_key": "srv01/HTTP", "event_type": "trigger",
              "description": "FAILURE for production/HTTP on machine srv01.acme.com",
              "client": "Sample Monitoring Service", "client_url": "https://monitoring.service.com",
              "details": {"ping time": "1500ms", "load avg": 0.75}}


@pytest.fixture
def listen(agent):
    server = Listen(agent)
    yield server
    server.stop(signal.SIGKILL)


def curl(*args):
    """(status, parsed body) of one curl call."""
    result = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


def curl_json(url, body, *extra):
    return curl("-X", "POST", url, "-H", "Content-Type: application/json", "--data-binary", body, *extra)


def raw_exchange(port, data, read_timeout=10):
    """Send raw bytes on a fresh connection; the bytes that come back until the server closes or waits."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer and _complete(answer):
                    break
        except (socket.timeout, ConnectionResetError):
            pass
        return answer


def _complete(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(answer):
    return int(answer.split(b" ", 2)[1])


def spool_entries(agent, state):
    return [agent.read(state, name) for name in agent.names(state)]


# -- events in, events out ----------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_pagerdutys_example_bodies_posted_with_curl_reach_the_api_in_order(agent, standin, listen):
    """Each documented example is answered as PagerDuty answers it, spooled as pd-listen's, and
    delivered by pdagentd in the order it was accepted."""
    agent.start_daemon()
    assert curl_json(listen.url + "/v2/enqueue", json.dumps(ALERT_TRIGGER)) == (
        202, {"status": "success", "message": "Event processed", "dedup_key": "samplekeyhere"})
    assert curl_json(listen.url + "/v2/enqueue", json.dumps(ALERT_ACKNOWLEDGE))[0] == 202
    assert curl_json(listen.url + "/v2/enqueue", json.dumps(ALERT_RESOLVE))[0] == 202
    status, answer = curl_json(listen.url + "/v2/change/enqueue", json.dumps(CHANGE))
    assert (status, answer) == (202, {"status": "success", "message": "Event processed"})
    assert curl_json(listen.url + "/generic/2010-04-15/create_event.json", json.dumps(V1_TRIGGER)) == (
        200, {"status": "success", "message": "Event processed", "incident_key": "srv01/HTTP"})

    bodies = wait_for(lambda: len(standin.bodies(KEY)) == 5 and standin.bodies(KEY), message="5 events")
    assert bodies[:4] == [ALERT_TRIGGER, ALERT_ACKNOWLEDGE, ALERT_RESOLVE, CHANGE]
    v1 = bodies[4]
    assert (v1["event_action"], v1["dedup_key"], v1["payload"]["summary"], v1["payload"]["custom_details"]) == (
        "trigger", "srv01/HTTP", V1_TRIGGER["description"], V1_TRIGGER["details"])
    wait_for(lambda: len(agent.names("suc")) == 5, message="5 delivered entries")
    assert {entry["agent"]["queued_by"] for entry in spool_entries(agent, "suc")} == {"pd-listen"}
    assert json.loads(agent.queue("status", "--json").stdout)["queued_by"] == {
        "pending": {}, "delivered": {"pd-listen": 5}}
    log = listen.logged(" queued ", 5)
    assert log.count(" queued ") == 5 and "key=****0018" in log and KEY not in log


def test_a_trigger_without_dedup_key_gets_one_and_the_resolve_follows_it(agent, standin, listen):
    agent.start_daemon()
    trigger = dict(ALERT_TRIGGER)
    del trigger["dedup_key"]
    status, answer = listen.post("/v2/enqueue", trigger)
    assert status == 202 and len(answer["dedup_key"]) == 32
    assert listen.post("/v2/enqueue", dict(ALERT_RESOLVE, dedup_key=answer["dedup_key"]))[0] == 202
    bodies = wait_for(lambda: len(standin.bodies(KEY)) == 2 and standin.bodies(KEY), message="both events")
    assert [body["dedup_key"] for body in bodies] == [answer["dedup_key"]] * 2


def test_many_requests_on_one_keep_alive_connection(agent, listen):
    connection = http.client.HTTPConnection("127.0.0.1", listen.port, timeout=10)
    for number in range(20):
        connection.request("POST", "/v2/enqueue", json.dumps(dict(ALERT_TRIGGER, dedup_key=f"k{number}")),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 202 and response.getheader("Connection") == "keep-alive"
        response.read()
    connection.request("GET", "/nowhere")  # an answer without reading a body, then the next request
    response = connection.getresponse()
    assert response.status == 404
    response.read()
    connection.request("POST", "/v2/enqueue", json.dumps(ALERT_TRIGGER), {"Content-Type": "application/json"})
    assert connection.getresponse().status == 202
    connection.close()
    assert len(agent.names("pdq")) == 21
    clients = {line.split(" from ")[1].split(": ")[0] for line in listen.logged(" queued ", 21).splitlines()
               if " queued " in line}
    assert len(clients) == 1  # one connection (one client port) for all 21 events


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_a_unix_socket_takes_events_from_any_local_user(agent, other_user):
    socket_dir = os.path.join(agent.base, "listen")  # as /run/pdagent-listen: pd-listen's own directory
    os.makedirs(socket_dir)
    os.chown(socket_dir, *listen_user())
    socket_path = os.path.join(socket_dir, "events.sock")
    server = Listen(agent, settings={"listen_address": "", "listen_socket": socket_path})
    try:
        assert oct(os.stat(socket_path).st_mode & 0o777) == "0o666"
        result = subprocess.run(as_user(*other_user, ["curl", "-sS", "--unix-socket", socket_path, "-X", "POST",
                                                      "http://localhost/v2/enqueue", "-H",
                                                      "Content-Type: application/json", "--data-binary",
                                                      json.dumps(ALERT_TRIGGER)]),
                                capture_output=True, text=True, timeout=30, check=False)
        assert json.loads(result.stdout)["status"] == "success", result
        server.logged("from unix:uid=")
        assert [entry["event"] for entry in spool_entries(agent, "pdq")] == [ALERT_TRIGGER]
    finally:
        server.stop()
    again = Listen(agent, settings={"listen_address": "", "listen_socket": socket_path})  # a stale one is replaced
    again.stop()


# -- every answer ---------------------------------------------------------------------------------

def test_invalid_events_get_pagerdutys_400_and_nothing_is_queued(agent, listen):
    status, answer = listen.post("/v2/enqueue", {"routing_key": KEY, "event_action": "explode"})
    assert status == 400
    assert answer["status"] == "invalid event" and answer["message"] == "Event object is invalid"
    assert answer["errors"] == ["event_action must be one of trigger, acknowledge, resolve"]
    for body in (b"{not json", b'{"a": NaN}', "{\"routing_key\": \"caf\xe9\"}".encode("latin-1"),
                 b"\xef\xbb\xbf{}", b'{"payload": {"summary": "\\ud800"}}', b"[" * 100000,
                 b"[]", json.dumps(dict(ALERT_TRIGGER, extra=1)).encode()):
        status, answer = listen.post("/v2/enqueue", body)
        assert status == 400 and answer["status"] == "invalid event", (body[:40], answer)
    assert listen.post("/v2/change/enqueue", ALERT_TRIGGER)[0] == 400
    assert listen.post("/generic/2010-04-15/create_event.json", {"service_key": KEY})[0] == 400
    assert agent.names("pdq") == [] and agent.names("tmp") == []


def test_paths_methods_types_and_sizes_get_their_status(agent, listen):
    port = listen.port
    assert status_of(raw_exchange(port, b"GET /v2/enqueue HTTP/1.1\r\nHost: x\r\n\r\n")) == 405
    assert status_of(raw_exchange(port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")) == 404
    assert status_of(raw_exchange(port, b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: text/plain\r\n"
                                        b"Content-Length: 2\r\n\r\n{}")) == 415
    assert status_of(raw_exchange(port, b"POST /v2/enqueue HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")) == 415
    assert status_of(raw_exchange(port, b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                                        b"Content-Length: 524289\r\n\r\n")) == 413
    big = json.dumps(dict(ALERT_TRIGGER, payload=dict(ALERT_TRIGGER["payload"],
                                                      custom_details={"x": "y" * 524288}))).encode()
    assert listen.post("/v2/enqueue", big)[0] == 413
    assert status_of(raw_exchange(port, b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                                        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}")) == 400
    assert status_of(raw_exchange(port, b"BREW /pot HTTP/3\r\n\r\n")) in (400, 505)
    assert agent.names("pdq") == []


def test_a_client_that_expects_100_continue_is_told_to_send_its_body(agent, listen):
    body = json.dumps(ALERT_TRIGGER).encode()
    with socket.create_connection(("127.0.0.1", listen.port), timeout=10) as sock:
        sock.sendall(b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any of the body
        sock.sendall(body)
        assert sock.recv(100).startswith(b"HTTP/1.1 202 ")
    assert len(agent.names("pdq")) == 1


def test_a_request_whose_head_never_completes_gets_408(agent):
    server = Listen(agent, "--header-timeout", "1")
    try:
        answer = raw_exchange(server.port, b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\n", read_timeout=10)
        assert status_of(answer) == 408
        answer = raw_exchange(server.port, b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                                           b"Content-Length: 10\r\n\r\n{", read_timeout=10)
        assert answer == b""  # the body timeout is 30 s: not reached within read_timeout
    finally:
        server.stop()


def test_a_stalled_body_gets_408(agent):
    server = Listen(agent, "--body-timeout", "1")
    try:
        answer = raw_exchange(server.port, b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                                           b"Content-Length: 10\r\n\r\n{", read_timeout=10)
        assert status_of(answer) == 408
        assert agent.names("pdq") == []
    finally:
        server.stop()


def test_an_idle_keep_alive_connection_is_closed(agent):
    server = Listen(agent, "--idle-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert sock.recv(100) == b""  # closed by the server, with nothing said
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while True:  # the answer, then the close once the connection has been idle
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in answer
    finally:
        server.stop()


def test_a_token_is_required_when_configured(agent, listen):
    token_file = os.path.join(agent.base, "token")
    with open(token_file, "w") as token:
        token.write(TOKEN + "\n")
    listen.stop()
    server = Listen(agent, settings={"listen_token_file": token_file})
    try:
        assert server.post("/v2/enqueue", ALERT_TRIGGER)[0] == 401
        assert server.post("/v2/enqueue", ALERT_TRIGGER, {"Authorization": "Bearer wrong"})[0] == 401
        assert server.post("/v2/enqueue", ALERT_TRIGGER, {"Authorization": f"Bearer {TOKEN}"})[0] == 202
        assert len(agent.names("pdq")) == 1
    finally:
        server.stop()


def test_an_unwritable_spool_gets_503_with_the_reason_and_health_says_so(agent, listen):
    with urllib_get(listen.url + "/health") as (status, answer):
        assert status == 200 and answer["spool_writable"] is True
    os.chmod(agent.path("tmp"), 0o750)  # the listen user may no longer create entries
    status, answer = listen.post("/v2/enqueue", ALERT_TRIGGER)
    assert status == 503 and "Permission denied" in answer["message"], answer
    with urllib_get(listen.url + "/health") as (status, answer):
        assert status == 503 and answer["spool_writable"] is False
    assert agent.names("pdq") == []
    os.chmod(agent.path("tmp"), 0o3753)
    assert listen.post("/v2/enqueue", ALERT_TRIGGER)[0] == 202


def test_a_full_or_read_only_disk_gets_503_and_the_client_can_retry(agent):
    """On a real filesystem that fills up, then turns read-only: never a 202 for an event not on disk."""
    from helpers import fill_up, remount, tmpfs_data_dir
    with tmpfs_data_dir(agent, size="2m") as data_dir:
        server = Listen(agent)
        try:
            assert server.post("/v2/enqueue", dict(ALERT_TRIGGER, dedup_key="before"))[0] == 202
            filler = fill_up(data_dir)
            status, answer = server.post("/v2/enqueue", dict(ALERT_TRIGGER, dedup_key="full"))
            assert status == 503 and "No space left on device" in answer["message"], answer
            with urllib_get(server.url + "/health") as (status, answer):
                assert status == 503 and answer["spool_writable"] is False
            os.unlink(filler)
            assert server.post("/v2/enqueue", dict(ALERT_TRIGGER, dedup_key="retried"))[0] == 202
            remount(data_dir, "ro")
            status, answer = server.post("/v2/enqueue", dict(ALERT_TRIGGER, dedup_key="read-only"))
            assert status == 503 and "Read-only file system" in answer["message"], answer
            assert [entry["event"]["dedup_key"] for entry in spool_entries(agent, "pdq")] == ["before", "retried"]
            remount(data_dir, "rw")
        finally:
            server.stop()


class urllib_get:
    def __init__(self, url):
        self.url = url

    def __enter__(self):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def __exit__(self, *exc_info):
        return False


def test_health_tells_whether_pdagentd_runs_where_it_may_read_the_pid_file(agent, listen):
    agent.start_daemon()
    with urllib_get(listen.url + "/health") as (status, answer):
        assert (status, answer["pdagentd_running"]) == (200, None)  # the daemon's pid file is not ours
    listen.stop()
    os.unlink(listen.log_path)  # the listen user's
    as_daemon_user = Listen(agent, user=(agent.uid, agent.gid))
    try:
        with urllib_get(as_daemon_user.url + "/health") as (status, answer):
            assert (status, answer["pdagentd_running"]) == (200, True)
        agent.stop_daemon()
        with urllib_get(as_daemon_user.url + "/health") as (status, answer):
            assert (status, answer["pdagentd_running"]) == (200, False)
        with open(os.path.join(agent.pid_dir, "pdagentd.pid"), "w") as pid_file:
            pid_file.write(f"{as_daemon_user.process.pid}\n")  # a live process, but not a pdagentd
        with urllib_get(as_daemon_user.url + "/health") as (status, answer):
            assert (status, answer["pdagentd_running"]) == (200, False)
    finally:
        as_daemon_user.stop()


# -- the log ----------------------------------------------------------------------------------------

def test_the_log_names_the_client_and_masks_the_key_and_escapes_controls(agent, listen):
    assert listen.post("/v2/enqueue", dict(ALERT_TRIGGER, dedup_key="evil\nforged line\x1b[31m"))[0] == 202
    log = listen.logged(" queued ")
    assert "dedup_key=evil\\nforged line\\x1b[31m" in log
    assert "\x1b" not in log and "\nforged" not in log
    assert "from 127.0.0.1:" in log and "key=****0018" in log and KEY not in log


def test_sighup_reopens_the_log_and_sigterm_stops_cleanly(agent, listen):
    os.rename(listen.log_path, listen.log_path + ".1")  # as logrotate does
    listen.process.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(listen.log_path) and "log file reopened" in listen.log_text(),
             message="the log reopened")
    assert listen.post("/v2/enqueue", ALERT_TRIGGER)[0] == 202
    listen.logged(" queued trigger ")
    assert listen.stop() == 0
    assert "pd-listen stopped" in listen.log_text()


# -- starting -------------------------------------------------------------------------------------

def run_listen(agent, user=None):
    return subprocess.run(as_user(*(user or listen_user()), command("pd-listen")), env=agent.env(),
                          capture_output=True, text=True, timeout=30, check=False)


def listen_user():
    from harness import ensure_user
    return ensure_user(LISTEN_USER) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def test_it_refuses_to_start_with_nothing_to_listen_on_and_says_which_line_to_set(offline_agent):
    result = run_listen(offline_agent)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "listen_address = 127.0.0.1:49463" in result.stderr


def test_a_non_loopback_address_needs_a_token_file(offline_agent):
    offline_agent.configure(listen_address="0.0.0.0:49463")
    result = run_listen(offline_agent)
    assert result.returncode == 1 and "set 'listen_token_file'" in result.stderr
    offline_agent.configure(listen_address="localhost:49463")
    result = run_listen(offline_agent)
    assert result.returncode == 1 and "must be IP:port" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_it_refuses_root(offline_agent):
    offline_agent.configure(listen_address="127.0.0.1:0")
    result = subprocess.run(command("pd-listen"), env=offline_agent.env(), capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 1 and "should not be run as root" in result.stderr


def test_pd_send_and_pdagentd_accept_the_listen_keys(agent, standin):
    agent.configure(listen_address="127.0.0.1:49463", listen_socket="/run/x.sock", listen_token_file="/nope")
    result = agent.send("-k", KEY, "-t", "trigger", "-d", "with listen keys set")
    assert result.returncode == 0, result.stderr
    agent.start_daemon()
    wait_for(lambda: standin.bodies(KEY), message="the event")

