"""pdagent/listen/server.py, batches.py and api.py in-process: whole requests that wait together are answered
as one batch (their events share the spool's fsyncs), each in its own words, and nothing taken
is left unanswered by a bug or a stop.

pd-listen as a real process, and its hostile clients, are test_pd_listen*.py's.
"""

import http.client
import json
import logging
import os
import socket
import threading
import time

import pytest
from helpers import routing_key, wait_for

from pdagent.config import Locations
from pdagent.listen import batches as listen_batches
from pdagent.listen.api import V1_PATH, Answer, Listener
from pdagent.listen.http import RequestHead
from pdagent.listen.limits import SMALL_BODY_BYTES, Limits
from pdagent.listen.server import Server
from pdagent.spool import SpoolTree
from pdagent.spool.names import parse_file_name

KEY = routing_key(80)
BIG = SMALL_BODY_BYTES + 1000  # a body the server counts


class GatedListener:
    """Answers every event 202 and records each batch's size; the first batch waits for `gate`."""

    def __init__(self, fail_on=None):
        self.batches = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def check_head(self, head):
        return None

    def answer_all(self, requests):
        self.batches.append(len(requests))
        if len(self.batches) == 1:
            self.gate.wait(10)
        if any(body == self.fail_on for _, body in requests):
            raise RuntimeError("a bug in answering")
        return [Answer(202, {"status": "success", "body": body.decode()}, log_line=f"queued {body.decode()[:20]}")
                for _, body in requests]


@pytest.fixture
def serve():
    running = []

    def start(listener, limits=None):
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen(64)
        server = Server(listener, [listening], limits or Limits())
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        return server, listening.getsockname()[1]
    yield start
    for server, thread in running:
        server.stop()
        thread.join(10)


def post_in_background(port, body, answers):
    def post():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", "/v2/enqueue", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answers[body] = (response.status, json.loads(response.read()))
        finally:
            connection.close()
    thread = threading.Thread(target=post)
    thread.start()
    return thread


def one_then_five_waiting(serve, body_size=0):
    """Post one request and, while its batch is held, five more (bodies of `body_size`
    characters, at least their names); release them. Returns (the batches' sizes,
    {body: (status, answer)})."""
    listener = GatedListener()
    server, port = serve(listener)
    answers = {}
    clients = [post_in_background(port, "first", answers)]
    wait_for(lambda: listener.batches, message="the first request to be taken")
    clients += [post_in_background(port, f"next {number}".ljust(body_size, "."), answers) for number in range(5)]
    wait_for(lambda: server._enqueuer.waiting() == 5, message="five requests to wait")
    listener.gate.set()
    for client in clients:
        client.join(10)
    return listener.batches, answers


def test_requests_that_wait_together_are_answered_as_one_batch(serve):
    batches, answers = one_then_five_waiting(serve)
    assert batches == [1, 5]
    assert answers == {body: (202, {"status": "success", "body": body})
                       for body in ["first"] + [f"next {number}" for number in range(5)]}


class RecordingHandler(logging.Handler):
    """Records pd-listen's log lines; a line containing `slow_on` takes a second to write."""

    def __init__(self, slow_on=None):
        super().__init__()
        self.lines, self.slow_on = [], slow_on

    def emit(self, record):
        line = record.getMessage()
        if self.slow_on and self.slow_on in line:
            time.sleep(1.0)
        self.lines.append(line)


@pytest.fixture
def listen_log():
    logger = logging.getLogger("pdagent.listen")
    level, handlers = logger.level, []

    def attach(**kwargs):
        handler = RecordingHandler(**kwargs)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        handlers.append(handler)
        return handler
    yield attach
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


def test_no_client_waits_for_the_log_lines_of_its_batch(serve, listen_log):
    handler = listen_log(slow_on="queued")
    listener = GatedListener()
    listener.gate.set()
    _server, port = serve(listener)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    connection.request("POST", "/v2/enqueue", "first", {"Content-Type": "application/json"})
    assert connection.getresponse().status == 202
    assert time.monotonic() - started < 0.8  # answered before its (one second) log line
    connection.close()
    wait_for(lambda: handler.lines, message="the log line")
    assert handler.lines[0].startswith("202 from 127.0.0.1") and handler.lines[0].endswith("queued first")


def test_an_event_accepted_after_its_client_left_is_logged(serve, listen_log):
    handler = listen_log()
    listener = GatedListener()
    _server, port = serve(listener)
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 4\r\n\r\nleft")
        wait_for(lambda: listener.batches, message="the request to be taken")
    listener.gate.set()  # the client has gone; its event is queued all the same
    wait_for(lambda: handler.lines, message="the log line")
    assert handler.lines[0].startswith("202 from 127.0.0.1") and handler.lines[0].endswith("queued left")


def test_a_batch_is_never_larger_than_max_batch(serve, monkeypatch):
    monkeypatch.setattr(listen_batches, "MAX_BATCH", 2)
    batches, answers = one_then_five_waiting(serve)
    assert batches == [1, 2, 2, 1] and len(answers) == 6


def test_a_batch_stops_before_max_batch_body_bytes(serve, monkeypatch):
    monkeypatch.setattr(listen_batches, "MAX_BATCH_BODY_BYTES", 2500)
    batches, answers = one_then_five_waiting(serve, body_size=1000)
    assert batches == [1, 2, 2, 1] and len(answers) == 6


def test_a_body_past_the_servers_budget_is_refused_unread_until_room_is_free(serve):
    """All connections together may hold so many body bytes: a request whose body would pass
    that is answered 503 with Retry-After at once, its body unread; once the bodies held are
    answered, the same request is taken."""
    listener = GatedListener()
    server, port = serve(listener, Limits(max_buffered_body_bytes=3 * BIG))
    answers = {}
    clients = [post_in_background(port, "a" * BIG, answers)]
    wait_for(lambda: listener.batches, message="the first request to be taken")
    clients.append(post_in_background(port, "b" * BIG, answers))
    wait_for(lambda: server._enqueuer.waiting() == 1, message="the second request to wait")
    refused = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    refused.request("POST", "/v2/enqueue", "c" * (BIG * 3 // 2), {"Content-Type": "application/json"})
    response = refused.getresponse()
    assert (response.status, response.getheader("Retry-After"), response.getheader("Connection")) == (
        503, "5", "close")
    assert "retry shortly" in json.loads(response.read())["message"]
    refused.close()
    listener.gate.set()
    for client in clients:
        client.join(10)
    assert [answers[body][0] for body in ("a" * BIG, "b" * BIG)] == [202, 202]
    kept_open = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # answered, and kept open
    kept_open.request("POST", "/v2/enqueue", "d" * (2 * BIG), {"Content-Type": "application/json"})
    response = kept_open.getresponse()
    assert (response.status, response.read() != b"") == (202, True)
    post_in_background(port, "c" * (BIG * 3 // 2), answers).join(10)
    kept_open.close()
    assert answers["c" * (BIG * 3 // 2)][0] == 202
    assert listener.batches == [1, 1, 1, 1]  # the refused request never reached the listener


def partial_head(port, size):
    """A connection that has sent `size` bytes of a request head, and stalls."""
    sock = socket.create_connection(("127.0.0.1", port))
    start = b"POST /v2/enqueue HTTP/1.1\r\nX-Pad: "
    sock.sendall(start + b"a" * (size - len(start)))
    return sock


def answer_waiting(sock):
    """The status line the server sent on `sock`, or None if it sent nothing yet."""
    sock.settimeout(0.2)
    try:
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()
    except socket.timeout:
        return None


def test_past_the_partial_request_limit_the_quietest_connection_is_refused(serve):
    """Heads and small bodies still coming in are held up to a limit, all connections
    together: past it, the connection quiet the longest gets 503 (and its bytes are let go);
    one that sent lately, a closed one's bytes and a large body the BodyBudget counts do not
    weigh; whole requests are still taken."""
    listener = GatedListener()
    listener.gate.set()
    server, port = serve(listener, Limits(max_partial_request_bytes=2500))

    def held():
        return server._partial.held_bytes
    first, second = partial_head(port, 1000), partial_head(port, 1000)
    wait_for(lambda: held() == 2000, message="two heads held")
    third = partial_head(port, 1000)
    wait_for(lambda: held() == 2000, message="the first refused")
    assert answer_waiting(first) == "HTTP/1.1 503 Service Unavailable"
    assert answer_waiting(second) is None and answer_waiting(third) is None
    second.sendall(b"a" * 200)  # the second is now the latest active: the third is the quietest
    wait_for(lambda: held() == 2200, message="the second's bytes")
    fourth = partial_head(port, 1000)
    wait_for(lambda: held() == 2200, message="the third refused")
    assert answer_waiting(third) == "HTTP/1.1 503 Service Unavailable"
    assert answer_waiting(second) is None and answer_waiting(fourth) is None
    second.close()  # what a closed connection held no longer counts
    wait_for(lambda: held() == 1000, message="the second forgotten")
    fifth = partial_head(port, 1400)
    large = socket.create_connection(("127.0.0.1", port))  # counted by the BodyBudget instead
    large.sendall(b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (4 * BIG) + b"[" * (2 * BIG))
    wait_for(lambda: server._bodies.held_bytes == 4 * BIG, message="the large body reserved")
    assert held() == 2400
    assert answer_waiting(fourth) is None and answer_waiting(fifth) is None and answer_waiting(large) is None
    answers = {}
    post_in_background(port, "whole", answers).join(10)
    assert answers["whole"][0] == 202
    for sock in (first, third, fourth, fifth, large):
        sock.close()


def test_a_request_being_queued_is_never_refused_for_what_follows_it(serve):
    """Bytes of a next request that came with a whole one (pipelined) count only once the
    whole one is answered: while the enqueue thread has it, the connection is never refused."""
    listener = GatedListener()  # the first batch waits for the gate
    server, port = serve(listener, Limits(max_partial_request_bytes=1500))
    pipelining = socket.create_connection(("127.0.0.1", port))
    pipelining.sendall(b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"
                       b"first" + b"POST /v2/enqueue HTTP/1.1\r\nX-Pad: " + b"a" * 966)
    wait_for(lambda: listener.batches, message="the first request to be taken")
    others = [partial_head(port, 1000)]
    wait_for(lambda: server._partial.held_bytes == 1000, message="the other's head held")
    others.append(partial_head(port, 1000))  # over the limit: the quietest other one goes, not the queued one
    assert answer_waiting(others[0]) == "HTTP/1.1 503 Service Unavailable"
    listener.gate.set()
    pipelining.settimeout(5)
    assert pipelining.recv(4096).startswith(b"HTTP/1.1 202 ")
    # Once answered, its next head counts: 2,000 bytes, over the limit, and the quietest other goes.
    wait_for(lambda: answer_waiting(others[1]) == "HTTP/1.1 503 Service Unavailable",
             message="the other refused once the pipelined head counts")
    assert server._partial.held_bytes == 1000
    for sock in [pipelining] + others:
        sock.close()


def test_an_answered_request_lets_go_of_its_bytes_at_once(serve):
    """A head that times out is answered 408 and no longer counts, though the connection stays
    open a moment longer for the client to read its answer."""
    listener = GatedListener()
    server, port = serve(listener, Limits(header_timeout=0.2))
    slow = partial_head(port, 1000)
    wait_for(lambda: server._partial.held_bytes == 1000, message="the head held")
    slow.settimeout(5)
    assert slow.recv(4096).startswith(b"HTTP/1.1 408 ")
    assert server._partial.held_bytes == 0
    slow.close()


def test_small_bodies_are_never_refused_for_room(serve):
    listener = GatedListener()
    server, port = serve(listener, Limits(max_buffered_body_bytes=BIG))
    answers = {}
    clients = [post_in_background(port, "a" * BIG, answers)]  # takes all the room, and is held
    wait_for(lambda: listener.batches, message="the first request to be taken")
    clients.append(post_in_background(port, "s" * SMALL_BODY_BYTES, answers))
    wait_for(lambda: server._enqueuer.waiting() == 1, message="the small request to wait")
    listener.gate.set()
    for client in clients:
        client.join(10)
    assert [answers[body][0] for body in ("a" * BIG, "s" * SMALL_BODY_BYTES)] == [202, 202]


def test_a_bug_answers_its_batch_500_and_the_server_goes_on(serve):
    listener = GatedListener(fail_on=b"poison")
    listener.gate.set()
    _server, port = serve(listener)
    answers = {}
    post_in_background(port, "poison", answers).join(10)
    post_in_background(port, "healthy", answers).join(10)
    assert answers["poison"][0] == 500
    assert answers["healthy"] == (202, {"status": "success", "body": "healthy"})


def test_stopping_answers_the_requests_already_taken(serve):
    listener = GatedListener()
    server, port = serve(listener)
    answers = {}
    client = post_in_background(port, "in flight", answers)
    wait_for(lambda: listener.batches, message="the request to be taken")
    server.stop()
    listener.gate.set()
    client.join(10)
    assert answers == {"in flight": (202, {"status": "success", "body": "in flight"})}


def test_a_connection_that_closes_mid_body_gives_its_room_back(serve):
    listener = GatedListener()
    listener.gate.set()
    server, port = serve(listener, Limits(max_buffered_body_bytes=3 * BIG))
    quitter = socket.create_connection(("127.0.0.1", port))
    quitter.sendall(b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % (2 * BIG) + b"x" * 10)
    wait_for(lambda: server._bodies.held_bytes == 2 * BIG, message="the body to be counted")
    quitter.close()
    wait_for(lambda: server._bodies.held_bytes == 0, message="the room to be given back")
    answers = {}
    post_in_background(port, "y" * (BIG * 5 // 2), answers).join(10)
    assert answers["y" * (BIG * 5 // 2)][0] == 202


def test_pipelined_requests_are_each_answered_in_order(serve):
    """Requests sent back to back on one connection, without waiting for the answers."""
    listener = GatedListener()
    listener.gate.set()
    _server, port = serve(listener)
    requests = b"".join(b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in (b"one", b"two", b"six"))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(requests)
        sock.settimeout(5)
        received = b""
        while received.count(b"HTTP/1.1 202") < 3:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["body"]
              for part in received.split(b"HTTP/1.1 202")[1:]]
    assert bodies == ["one", "two", "six"]


# -- Listener.answer_all on a real spool --------------------------------------------------------

def head(path, method="POST"):
    return RequestHead(method, path, "HTTP/1.1", {"content-type": "application/json"})


def test_each_request_of_a_batch_gets_its_own_answer_and_only_events_are_queued(tmp_path):
    locations = Locations(str(tmp_path / "pdagent.conf"), {"data_dir": str(tmp_path), "log_dir": str(tmp_path),
                                                          "pid_dir": str(tmp_path)})
    SpoolTree(locations.outqueue_dir, locations.db_dir).create_dirs()  # as pd-listen finds it
    trigger = {"routing_key": KEY, "event_action": "trigger", "dedup_key": "disk-1",
               "payload": {"summary": "disk full", "source": "db1", "severity": "error"}}
    change = {"routing_key": KEY, "payload": {"summary": "deployed", "source": "ci"}}
    v1 = {"service_key": KEY, "event_type": "resolve", "incident_key": "disk-1"}
    answers = Listener(locations).answer_all([
        (head("/v2/enqueue"), json.dumps(trigger).encode()),
        (head("/v2/enqueue"), b"{not json"),
        (head("/health", "GET"), b""),
        (head("/v2/enqueue"), json.dumps(dict(trigger, event_action="explode")).encode()),
        (head("/v2/change/enqueue"), json.dumps(change).encode()),
        (head(V1_PATH), json.dumps(v1).encode()),
    ])
    assert [answer.status for answer in answers] == [202, 400, 200, 400, 202, 200]
    assert answers[0].body == {"status": "success", "message": "Event processed", "dedup_key": "disk-1"}
    assert "not JSON" in answers[1].body["errors"][0]
    assert answers[2].body["spool_writable"] is True
    assert "event_action" in answers[3].body["errors"][0]
    assert answers[4].body == {"status": "success", "message": "Event processed"}
    assert answers[5].body == {"status": "success", "message": "Event processed", "incident_key": "disk-1"}
    pdq = os.path.join(str(tmp_path), "outqueue", "pdq")
    queued = sorted(os.listdir(pdq), key=lambda name: parse_file_name(name)[0])
    entries = []
    for name in queued:
        with open(os.path.join(pdq, name)) as entry_file:
            entries.append(json.load(entry_file))
    assert [(entry["endpoint"], entry["event"].get("event_action")) for entry in entries] == [
        ("alert", "trigger"), ("change", None), ("alert", "resolve")]
    assert all(entry["agent"]["queued_by"] == "pd-listen" for entry in entries)
