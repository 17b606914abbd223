"""Benchmark pd-listen: accept rate and latency, memory idle and under 10,000 idle connections,
each next to a direct POST to the Events API stand-in measured in the same run.

    .venv/bin/python bench/bench_pd_listen.py [--events 2000] [--clients 16] [--idle 10000] [--stalled 4000]
                                              [--dir /dev/shm]

Prints, each with its target:
- events/s from one keep-alive client (>= 1,000) and from 16 concurrent keep-alive clients
  (>= 2,000), and the p99 accept latency at 16 clients (<= 20 ms); the clients are separate
  processes, so the client side is not one GIL; the same loads against the stand-in directly;
- end to end: POST to pd-listen -> received by the stand-in with pdagentd running, next to
  pd-send -> received (the daemon's own path);
- pd-listen's RSS idle (<= 30 MiB), with 10,000 idle connections open and with 4,000 each
  stalled 16 KiB into a request (<= 50 MiB);
- what the disk allows: the spool writer alone (SpoolWriter.enqueue_many, in this process, on
  the same disk, as pd-listen's account does it: each new name made durable by an fsync of its
  file), one entry at a time and 16 at a time; and from it the most one client could get from
  any server here, one such write plus one round trip to the stand-in per event.
pdagentd is stopped while the accept rates are measured, so only pd-listen's work is timed.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import resource
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

from bench_daemon import rss_mib  # bench/ is on the path: this script's own directory
from harness import Agent, Listen, StandIn, ensure_daemon_user, routing_key, wait_for

from pdagent.spool import writer as writer_module
from pdagent.spool.writer import SpoolWriter

KEY = routing_key(77)


def event(number, tag):
    return json.dumps({"routing_key": KEY, "event_action": "trigger", "dedup_key": f"{tag}-{number}",
                       "payload": {"summary": f"bench event {number}", "source": "bench", "severity": "info",
                                   "custom_details": {"number": number}}})


def client_run(arguments):
    """One keep-alive client posting `count` events; returns the latency of each, in seconds."""
    port, count, tag = arguments
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    headers = {"Content-Type": "application/json"}
    for number in range(count):
        body = event(number, tag)
        started = time.perf_counter()
        connection.request("POST", "/v2/enqueue", body, headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 202:
            raise SystemExit(f"answer {response.status}")
    connection.close()
    return latencies


def load(port, clients, per_client, tag):
    """(events/s, p50 ms, p99 ms) of `clients` processes each posting `per_client` events."""
    with multiprocessing.Pool(clients) as pool:
        started = time.perf_counter()
        results = pool.map(client_run, [(port, per_client, f"{tag}{client}") for client in range(clients)])
        elapsed = time.perf_counter() - started
    latencies = sorted(latency for result in results for latency in result)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return clients * per_client / elapsed, statistics.median(latencies) * 1000, p99 * 1000


def end_to_end(agent, standin, listen, count):
    """Median seconds from the 202 (pd-listen) or pd-send's exit to the stand-in receiving it."""
    figures = {"pd-listen": [], "pd-send": []}
    for number in range(count):
        for way, values in figures.items():
            dedup_key = f"e2e-{way}-{number}"
            if way == "pd-listen":
                listen.post("/v2/enqueue", dict(json.loads(event(number, "x")), dedup_key=dedup_key))
            else:
                agent.send("-k", KEY, "-t", "trigger", "-d", "bench", "-i", dedup_key, "-q")
            done = time.perf_counter()
            wait_for(lambda dedup_key=dedup_key: any(body.get("dedup_key") == dedup_key
                                                     for body in standin.bodies(KEY)),
                     interval=0.001, message=dedup_key)
            values.append(time.perf_counter() - done)
    return {way: statistics.median(values) * 1000 for way, values in figures.items()}


def writer_alone(base, count, batch):
    """Entries a second that the spool writer alone makes durable, `batch` entries at a time."""
    writer = SpoolWriter(os.path.join(base, "writer-alone", "outqueue"))
    writer.create_dirs()
    entry = event(0, "alone").encode()
    # pd-listen's account may not open pdq/: each name is made durable by its file's fsync
    writer_module.fsync_directory = lambda path: False
    started = time.perf_counter()
    for _ in range(count // batch):
        writer.enqueue_many([(KEY, entry)] * batch)
    return count // batch * batch / (time.perf_counter() - started)


def idle_rss(listen, count):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    sockets = []
    for _ in range(count):
        sockets.append(socket.create_connection(("127.0.0.1", listen.port)))
    time.sleep(2)
    figure = rss_mib(listen.process.pid)
    status, _ = listen.post("/v2/enqueue", json.loads(event(0, "during-idle")))
    for sock in sockets:
        sock.close()
    return figure, status


def stalled_rss(listen, count, request_bytes=16 * 1024):
    """pd-listen's RSS with `count` connections each stalled one byte short of a request of
    `request_bytes` (a head, then a body it does not finish), and how many it refused (503, or
    closed after it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    head = (b"POST /v2/enqueue HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % request_bytes)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", listen.port))
        sock.sendall(head + b"[" * (request_bytes - 1))
        sockets.append(sock)
    time.sleep(2)
    figure = rss_mib(listen.process.pid)
    refused = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            refused += sock.recv(64).startswith(b"HTTP/1.1 503 ")
        except BlockingIOError:
            pass  # still held
        except OSError:
            refused += 1  # answered and closed (reset: what it sent was not read)
        sock.close()
    return figure, refused


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--stalled", type=int, default=4000)
    parser.add_argument("--e2e", type=int, default=20)
    parser.add_argument("--dir", help="where the spool goes (default: the temporary directory); "
                        "/dev/shm, a tmpfs where an fsync costs nothing, shows pd-listen's ceiling "
                        "without its disk")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="pdagent-bench-listen-", dir=args.dir)
    os.chmod(base, 0o755)
    standin = StandIn(base)
    agent = Agent(base, ensure_daemon_user(), standin.url, max_events_per_minute_per_key=0)
    listen = Listen(agent, "--max-connections", str(max(args.idle, args.stalled) + 100))
    try:
        time.sleep(1)
        print(f"pd-listen RSS idle: {rss_mib(listen.process.pid):.1f} MiB (target <= 30)")
        per_client = max(1, args.events // args.clients)
        one_client = {}
        for name, port in (("pd-listen", listen.port), ("stand-in direct", standin.port)):
            rate, p50, p99 = load(port, 1, args.events, f"one-{name}")
            one_client[name] = rate
            print(f"{name}, 1 keep-alive client: {rate:.0f} events/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            rate, p50, p99 = load(port, args.clients, per_client, f"many-{name}")
            print(f"{name}, {args.clients} clients: {rate:.0f} events/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        rss, status = idle_rss(listen, args.idle)
        print(f"pd-listen RSS with {args.idle} idle connections: {rss:.1f} MiB (target <= 50); "
              f"a POST meanwhile: {status}")
        rss, refused = stalled_rss(listen, args.stalled)
        print(f"pd-listen RSS with {args.stalled} connections stalled 16 KiB into a request: {rss:.1f} MiB "
              f"(target <= 50); {refused} of them refused")
        for name in agent.names("pdq"):
            os.unlink(agent.path("pdq", name))
        standin.reset()
        agent.start_daemon()
        medians = end_to_end(agent, standin, listen, args.e2e)
        print(f"end to end, median: pd-listen 202 -> stand-in {medians['pd-listen']:.1f} ms; "
              f"pd-send exit -> stand-in {medians['pd-send']:.1f} ms")
        agent.stop_daemon()
        alone = {batch: writer_alone(base, args.events, batch) for batch in (1, args.clients)}
        for batch, rate in alone.items():
            print(f"the spool writer alone, {batch} at a time: {rate:.0f} events/s")
        # One client waits for each answer before it sends again, so no server can beat one
        # durable write plus one round trip that writes nothing (the stand-in's).
        bound = 1 / (1 / alone[1] + 1 / one_client["stand-in direct"])
        print(f"about the most 1 client could get here (a write alone + a round trip to the stand-in): "
              f"{bound:.0f} events/s; pd-listen got {one_client['pd-listen'] / bound:.0%} of it")
    finally:
        if agent.daemon_running():
            agent.stop_daemon()
        listen.stop()
        standin.stop()


if __name__ == "__main__":
    main()
