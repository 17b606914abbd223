"""pd-listen under hostile clients: each gets a 4xx or a closed connection in bounded time, while a
well-behaved client keeps getting its 202s, pd-listen's memory stays bounded, pdagentd runs on,
and every event accepted reaches the Events API stand-in exactly once.

The counts are scaled down from the production figures (bench/bench_pd_listen.py runs 10,000 idle
connections) so the file runs in well under a minute on two cores; each attack is the real one.
"""

import collections
import http.client
import json
import resource
import selectors
import socket
import threading
import time

import pytest
from harness import Listen
from helpers import routing_key, wait_for

KEY = routing_key(19)


def trigger(dedup_key):
    return {"routing_key": KEY, "event_action": "trigger", "dedup_key": dedup_key,
            "payload": {"summary": "well-behaved client", "source": "web1", "severity": "error"}}


class WellBehavedClient(threading.Thread):
    """Posts one event after another on a keep-alive connection until stopped, as a monitoring tool
    would: a connection closed before the answer is reopened and the same event sent again.
    `fresh_connections`: a new connection for every event (a client without keep-alive)."""

    def __init__(self, port, fresh_connections=False):
        super().__init__(daemon=True)
        self.port = port
        self.fresh_connections = fresh_connections
        self.accepted = []
        self.refused = []
        self._stop_event = threading.Event()

    def run(self):
        connection = None
        number = 0
        while not self._stop_event.is_set():
            dedup_key = f"good-{number}"
            for _attempt in range(5):
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    connection.request("POST", "/v2/enqueue", json.dumps(trigger(dedup_key)),
                                       {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    (self.accepted if response.status == 202 else self.refused).append((dedup_key, response.status))
                    if self.fresh_connections:
                        connection.close()
                        connection = None
                    break
                except (OSError, http.client.HTTPException):
                    connection = None
            else:
                self.refused.append((dedup_key, "no answer in 5 tries"))
            number += 1
            time.sleep(0.05)

    def finish(self):
        self._stop_event.set()
        self.join(30)
        return self.accepted


@pytest.fixture
def attacked(agent, standin):
    """(agent, stand-in, a function starting pd-listen with options) with pdagentd running, unpaced."""
    agent.configure(max_events_per_minute_per_key=0)
    agent.start_daemon()
    started = []

    def start(*args):
        server = Listen(agent, *args)
        started.append(server)
        return server

    yield agent, standin, start
    for server in started:
        server.stop()


def check_outcome(agent, standin, server, client):
    """The well-behaved client got only 202s; each of those events reached the stand-in once;
    pdagentd still runs; pd-listen is still up."""
    accepted = client.finish()
    assert accepted and client.refused == []
    expected = sorted(dedup_key for dedup_key, _ in accepted)
    wait_for(lambda: len(standin.bodies(KEY)) >= len(expected), timeout=60, message="every accepted event")
    time.sleep(0.5)
    received = sorted(body["dedup_key"] for body in standin.bodies(KEY))
    assert received == expected  # nothing lost, nothing doubled
    assert agent.daemon_running() and server.process.poll() is None


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def read_answer_or_close(sock, timeout):
    """The status of the answer on `sock`, or "closed" if the server closed or reset it first."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return "closed"
            data += chunk
    except ConnectionResetError:
        return "closed"
    return int(data.split(b" ", 2)[1])


def test_slow_header_senders_get_408_while_others_are_served(attacked):
    """300 connections each sending a header byte a second: all answered 408 or closed once the
    10-second head timeout passes."""
    agent, standin, start = attacked
    server = start()
    client = WellBehavedClient(server.port)
    client.start()
    head = b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
    outcome = {}
    started = time.monotonic()
    for second in range(len(head)):
        for sock in slow:
            if sock not in outcome:
                try:
                    sock.send(head[second:second + 1])
                except OSError:
                    outcome[sock] = "closed"
        for sock in slow:
            if sock not in outcome:
                sock.setblocking(False)
                try:
                    data = sock.recv(4096)
                    outcome[sock] = int(data.split(b" ", 2)[1]) if data else "closed"
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    outcome[sock] = "closed"
                sock.setblocking(True)
        if len(outcome) == len(slow) or time.monotonic() - started > 20:
            break
        time.sleep(1)
    assert len(outcome) == len(slow)
    assert set(outcome.values()) <= {408, "closed"} and 408 in outcome.values()
    for sock in slow:
        sock.close()
    check_outcome(agent, standin, server, client)


def test_a_100_mb_body_and_an_endless_chunked_body_are_cut_off(attacked):
    agent, standin, start = attacked
    server = start()
    client = WellBehavedClient(server.port)
    client.start()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 104857600\r\n\r\n")
        assert read_answer_or_close(sock, 10) == 413  # before a byte of the body is taken
        sent = 0
        try:
            for _ in range(1600):
                sock.sendall(b"x" * 65536)
                sent += 65536
        except OSError:
            pass
        assert sent < 100 * 1024 * 1024  # closed long before the 100 MB
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"[" * 65536 + b"\r\n"
        sent = 0
        try:
            while sent < 100 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        assert sent < 100 * 1024 * 1024
        assert read_answer_or_close(sock, 10) in (413, "closed")
    assert rss_mib(server.process.pid) < 50
    check_outcome(agent, standin, server, client)


def test_many_large_bodies_at_once_are_held_within_a_budget(attacked):
    """200 connections each announce a body of 512 KiB, send 400 KiB of it and stall: pd-listen
    holds at most 32 MiB of such bodies (64 of them); the others are answered 503 at once,
    their bodies unread; its memory stays bounded, and a client sending usual events keeps
    getting its 202s meanwhile."""
    agent, standin, start = attacked
    server = start()
    client = WellBehavedClient(server.port)
    client.start()
    head = (b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (512 * 1024))
    senders = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(head)
        senders.append(sock)
    statuses = collections.Counter()
    for sock in senders:
        try:
            sock.sendall(b"[" * (400 * 1024))  # a refused one drains it while it closes
        except OSError:
            pass
        sock.settimeout(0.3)
        try:
            statuses[sock.recv(64).split(b" ", 2)[1].decode()] += 1
        except socket.timeout:
            statuses["still sending"] += 1
    try:
        assert statuses == {"503": 136, "still sending": 64}
        assert rss_mib(server.process.pid) < 64
    finally:
        for sock in senders:
            sock.close()
    check_outcome(agent, standin, server, client)


def test_thousands_of_slow_clients_holding_part_of_a_request_do_not_fill_memory(attacked):
    """3,000 connections each send a head and all but the last byte of a 16 KiB body, and
    stall (a slowloris under the large-body budget): pd-listen holds at most 16 MiB of such
    requests, answering 503 to the connections quiet the longest; its memory stays bounded
    and a client sending usual events keeps getting its 202s meanwhile."""
    agent, standin, start = attacked
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    body_bytes = 16 * 1024
    request = (b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % body_bytes + b"[" * (body_bytes - 1))
    senders = []
    try:
        server = start()
        client = WellBehavedClient(server.port)
        client.start()
        for _ in range(3000):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(request)
            senders.append(sock)
        time.sleep(1)
        assert rss_mib(server.process.pid) < 50
        with selectors.DefaultSelector() as selector:
            for sock in senders:
                selector.register(sock, selectors.EVENT_READ)
            answered = [key.fileobj for key, _ in selector.select(timeout=2)]
        answers = collections.Counter(read_answer_or_close(sock, 5) for sock in answered)
        still_sending = len(senders) - len(answered)
        assert set(answers) == {503} and still_sending > 0, (answers, still_sending)
        assert still_sending * body_bytes <= 16 * 1024 * 1024
        check_outcome(agent, standin, server, client)
    finally:
        for sock in senders:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


BAD_REQUESTS = {
    "not JSON": (b"/v2/enqueue", b"application/json", b'{"routing_key": '),
    "nested 100,000 deep": (b"/v2/enqueue", b"application/json", b"[" * 100000 + b"]" * 100000),
    "not UTF-8": (b"/v2/enqueue", b"application/json", b'{"routing_key": "\xff\xfe"}'),
    "wrong Content-Type": (b"/v2/enqueue", b"application/x-www-form-urlencoded", b"routing_key=x"),
    "unknown path": (b"/v2/../../etc/passwd", b"application/json", b"{}"),
    "v3 path": (b"/v3/enqueue", b"application/json", b"{}"),
}


def test_malformed_requests_each_get_a_4xx(attacked):
    agent, standin, start = attacked
    server = start()
    client = WellBehavedClient(server.port)
    client.start()
    for name, (path, content_type, body) in BAD_REQUESTS.items():
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST " + path + b" HTTP/1.1\r\nContent-Type: " + content_type
                         + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            status = read_answer_or_close(sock, 10)
            assert status in (400, 404, 415), (name, status)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:  # request smuggling's favourite
        sock.sendall(b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /v2/enqueue HTTP/1.1\r\n\r\n")
        sock.settimeout(10)
        answers = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answers += chunk
        assert answers.startswith(b"HTTP/1.1 400 ")
        assert answers.count(b"HTTP/1.1 ") == 1  # then closed: the smuggled request is never read
    check_outcome(agent, standin, server, client)
    assert agent.names("err") == []


def test_thousands_of_idle_connections_neither_lock_out_a_client_nor_grow_memory(attacked):
    """1,500 idle connections against a limit of 500: the quiet ones give way to new ones (the
    working client opens a new connection for every event), memory stays bounded, and the idle
    ones are closed after the timeout."""
    agent, standin, start = attacked
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    try:
        server = start("--max-connections", "500", "--idle-timeout", "5")
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(1500)]
        client = WellBehavedClient(server.port, fresh_connections=True)  # each time past a full server
        client.start()
        assert rss_mib(server.process.pid) < 50
        time.sleep(1)
        closed = collections.Counter()
        for sock in idle:
            closed[read_answer_or_close(sock, 15)] += 1  # evicted at once, or closed at the idle timeout
        assert closed == {"closed": 1500}
        for sock in idle:
            sock.close()
        check_outcome(agent, standin, server, client)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
