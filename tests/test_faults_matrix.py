"""The fault matrix: every kind of answer (or non-answer) the Events API or the way to it can give.

Each row is its own test against a real stand-in (or a real proxy, or a TLS
server with a bad certificate), through real pd-send and pdagentd processes.
Each queues a0 and a1 on key A and b0 on key B, and asserts where every event
ends: a retryable fault keeps a0 in pdq/ (never err/) while it lasts, with a1
waiting behind it, and delivers both in order once the fault is cleared; a
rejection moves a0 to err/ at once with its reason, and a1 goes on. Nothing is
ever lost: every event is in exactly one of suc/, err/ or pdq/.
The expected behaviour per answer is events_api.py's table (classify_response).
"""

import os
import shutil
import tempfile

import helpers
import pytest
from helpers import StandIn, routing_key, wait_for

KEY_A = routing_key(600)
KEY_B = routing_key(601)


@pytest.fixture(scope="module")
def tls_material():
    pytest.importorskip("trustme")
    directory = tempfile.mkdtemp(prefix="pdagent-tls-faults-")
    os.chmod(directory, 0o755)
    yield helpers.make_tls_material(directory)
    shutil.rmtree(directory, ignore_errors=True)


def _queue_three(agent):
    """a0, a1 on key A (in this order) and b0 on key B, through pd-send."""
    return (helpers.send(agent, KEY_A, "a0"), helpers.send(agent, KEY_A, "a1"), helpers.send(agent, KEY_B, "b0"))


def _assert_held(agent, name, kinds, attempts=2, timeout=20):
    """The event is tried again and again (logged), and stays in pdq/; nothing goes to err/."""
    wait_for(lambda: len(helpers.log_attempts(agent, name, kinds)) >= attempts, timeout=timeout,
             message=f"{attempts} attempts at {name} logged as {'/'.join(kinds)}")
    assert helpers.where(agent, name) == "pdq"
    assert agent.names("err") == []
    assert helpers.daemon_alive(agent)


def _assert_delivered(agent, names, timeout=20):
    wait_for(lambda: all(helpers.where(agent, name) == "suc" for name in names), timeout=timeout,
             message="every event in suc/")
    assert agent.names("pdq") == [] and agent.names("err") == []


def _assert_order(received_dedup_keys):
    """a0's first arrival comes before a1's: a key's events never overtake each other."""
    assert "a0" in received_dedup_keys and "a1" in received_dedup_keys
    assert received_dedup_keys.index("a0") < received_dedup_keys.index("a1")


# -- answers of the Events API that mean "try again later" -------------------------------------

RETRYABLE = [
    pytest.param({"status": 500}, "failed", None, {}, id="500"),
    pytest.param({"status": 502, "retry_after": "2"}, "failed", 2, {}, id="502-retry-after"),
    pytest.param({"status": 503, "retry_after": "2"}, "failed", 2, {}, id="503-retry-after"),
    pytest.param({"status": 429, "retry_after": "2"}, "throttled", 2, {}, id="429-retry-after"),
    pytest.param({"status": 429}, "throttled", None, {}, id="429"),
    pytest.param({"status": 408}, "failed", None, {}, id="408"),
    pytest.param({"delay": 2.0}, "failed", None, {"http_timeout_secs": 1}, id="slower-than-timeout"),
    pytest.param({"action": "reset"}, "unreachable", None, {}, id="reset-mid-response"),
    pytest.param({"action": "close"}, "unreachable", None, {}, id="closed-without-answer"),
]


@pytest.mark.parametrize(("rule", "kind", "retry_after", "settings"), RETRYABLE)
def test_retryable_answer(agent, standin, rule, kind, retry_after, settings):
    agent.configure(**settings)
    standin.set_faults([dict(rule, match={"routing_key": KEY_A}, times=-1)])
    helpers.start_daemon(agent)
    a0, a1, b0 = _queue_three(agent)

    wait_for(lambda: helpers.where(agent, b0) == "suc", message="key B to flow while A is held")
    _assert_held(agent, a0, (kind,))
    assert helpers.where(agent, a1) == "pdq"
    tried = [request["body"]["dedup_key"] for request in standin.requests()
             if isinstance(request["body"], dict)]
    assert "a1" not in tried, "a1 was sent while a0 was still pending"
    if retry_after:
        times = [request["received_at"] for request in helpers.attempts(standin, "a0")]
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert gaps and min(gaps) >= retry_after - 0.1, f"Retry-After not honoured: {gaps}"

    standin.set_faults([])
    _assert_delivered(agent, [a0, a1, b0])
    received = helpers.dedup_keys_received(standin)
    _assert_order(received)
    if "delay" not in rule:
        assert sorted(received) == ["a0", "a1", "b0"]  # nothing sent twice
    else:
        # The stand-in still takes the requests the agent gave up on: at-least-once,
        # the same body each time (so the same dedup key for PagerDuty).
        bodies = [body for body in standin.bodies() if body["dedup_key"] == "a0"]
        assert len(bodies) >= 1 and all(body == bodies[0] for body in bodies)
    assert helpers.daemon_alive(agent)


# -- answers that reject the event ------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 404, 413])
def test_rejecting_answer(agent, standin, status):
    standin.set_faults([{"match": {"dedup_key": "a0"}, "status": status, "times": -1}])
    helpers.start_daemon(agent)
    a0, a1, b0 = _queue_three(agent)

    wait_for(lambda: helpers.where(agent, a0) == "err", message="a0 rejected into err/")
    _assert_delivered_except(agent, [a1, b0])
    assert len(helpers.attempts(standin, "a0")) == 1, "a rejected event is not tried again"
    listing = agent.queue("list", "--state", "error")
    assert f"HTTP {status}" in listing.stdout, listing.stdout

    standin.set_faults([])
    retried = agent.queue("retry", "-k", KEY_A)
    assert retried.returncode == 0 and "1 event(s)" in retried.stdout
    _assert_delivered(agent, [a0, a1, b0])
    assert sorted(helpers.dedup_keys_received(standin)) == ["a0", "a1", "b0"]


def _assert_delivered_except(agent, names):
    wait_for(lambda: all(helpers.where(agent, name) == "suc" for name in names),
             message="the other events delivered")


def test_404_from_a_wrong_base_path(agent, standin):
    """events_api_url with a path the API does not serve: 404, so err/; fixed, retried, delivered."""
    agent.configure(events_api_url=standin.url + "/not-the-api")
    helpers.start_daemon(agent)
    names = _queue_three(agent)
    wait_for(lambda: sorted(agent.names("err")) == sorted(names), message="all three in err/")
    assert "HTTP 404" in agent.queue("list", "--state", "error").stdout

    helpers.restart_daemon(agent, events_api_url=standin.url)
    assert agent.queue("retry", "-a").returncode == 0
    _assert_delivered(agent, names)
    _assert_order(helpers.dedup_keys_received(standin))


def test_500_until_the_retry_limit(agent, standin):
    """5xx may be the event's fault: after retry_limit_for_possible_errors in a row, err/."""
    agent.configure(retry_limit_for_possible_errors=3)
    standin.set_faults([{"match": {"dedup_key": "a0"}, "status": 500, "times": -1}])
    helpers.start_daemon(agent)
    a0, a1, b0 = _queue_three(agent)
    wait_for(lambda: helpers.where(agent, a0) == "err", timeout=20, message="a0 in err/ after 3 failures")
    assert len(helpers.attempts(standin, "a0")) == 3
    _assert_delivered_except(agent, [a1, b0])
    assert "3 failures in a row" in agent.queue("list", "--state", "error").stdout

    standin.set_faults([])
    assert agent.queue("retry", "-a").returncode == 0
    _assert_delivered(agent, [a0, a1, b0])


# -- the way to the API is broken ------------------------------------------------------------

def test_connection_refused(agent, standin, tmp_path):
    port = helpers.closed_port()
    agent.configure(events_api_url=f"http://127.0.0.1:{port}")
    helpers.start_daemon(agent)
    a0, a1, b0 = _queue_three(agent)
    _assert_held(agent, a0, ("unreachable",))
    assert "connection failed" in agent.log_text()

    # The API comes up on that port: delivered without touching the daemon.
    late_dir = tmp_path / "late"
    late_dir.mkdir()
    late = StandIn(str(late_dir), extra_args=("--port", str(port)))
    try:
        _assert_delivered(agent, [a0, a1, b0])
        _assert_order([body["dedup_key"] for body in late.bodies()])
    finally:
        late.stop()


def test_unresolvable_host_name(agent, standin):
    agent.configure(events_api_url="http://pdagent-test.invalid")
    helpers.start_daemon(agent)
    a0, a1, b0 = _queue_three(agent)
    _assert_held(agent, a0, ("unreachable",))
    _assert_held(agent, b0, ("unreachable",), attempts=1)

    helpers.restart_daemon(agent, events_api_url=standin.url)
    _assert_delivered(agent, [a0, a1, b0])
    _assert_order(helpers.dedup_keys_received(standin))


@pytest.mark.parametrize("certificate", ["self_signed", "expired", "wrong_host"])
def test_bad_tls_certificate(agent, tmp_path, tls_material, certificate):
    bad_dir, good_dir = tmp_path / "bad", tmp_path / "good"
    bad_dir.mkdir()
    good_dir.mkdir()
    bad = helpers.unverified_control(StandIn(str(bad_dir), tls=tls_material[certificate]))
    good = StandIn(str(good_dir), tls=tls_material["good"])
    try:
        # The right CA for the expired and wrong-host ones; the system's for the self-signed.
        ca_bundle = "" if certificate == "self_signed" else tls_material["ca"]
        agent.configure(events_api_url=bad.url, ca_bundle=ca_bundle)
        helpers.start_daemon(agent)
        a0, a1, b0 = _queue_three(agent)
        _assert_held(agent, a0, ("unreachable",))
        failures = [line for line in agent.log_text().splitlines() if "TLS VERIFICATION FAILED" in line]
        assert failures and all(" ERROR " in line for line in failures), "a TLS failure is logged loudly"
        assert bad.requests() == [], "no request may go over an unverified connection"

        helpers.restart_daemon(agent, events_api_url=good.url, ca_bundle=tls_material["ca"])
        _assert_delivered(agent, [a0, a1, b0])
        _assert_order([body["dedup_key"] for body in good.bodies()])
    finally:
        bad.stop()
        good.stop()


def test_proxy_down(agent, standin, tmp_path):
    port = helpers.closed_port()
    agent.configure(proxy_url=f"http://127.0.0.1:{port}")
    helpers.start_daemon(agent)
    a0, a1, b0 = _queue_three(agent)
    _assert_held(agent, a0, ("unreachable",))
    assert "proxy error" in agent.log_text()
    assert standin.requests() == []

    # The proxy comes back on its port: delivered through it, no restart needed.
    proxy = helpers.Tinyproxy(str(tmp_path), port=port)
    try:
        _assert_delivered(agent, [a0, a1, b0])
        assert proxy.log_text().count("/v2/enqueue") >= 3, "not delivered through the proxy"
        _assert_order(helpers.dedup_keys_received(standin))
    finally:
        proxy.stop()


def test_proxy_answers_407(agent, standin, tmp_path):
    """A proxy that wants credentials answers 407: the setup's fault, never the event's."""
    fake = helpers.ProxyWanting407()
    try:
        agent.configure(proxy_url=fake.url)
        helpers.start_daemon(agent)
        a0, a1, b0 = _queue_three(agent)
        _assert_held(agent, a0, ("unreachable",))
        assert "status=407" in "\n".join(helpers.log_attempts(agent, a0))
        assert standin.requests() == []
    finally:
        fake.stop()
    # With credentials, through a real proxy that wants them.
    proxy = helpers.Tinyproxy(str(tmp_path), auth=("pdagent", "s3cret"))
    try:
        helpers.restart_daemon(agent, proxy_url=f"http://pdagent:s3cret@127.0.0.1:{proxy.port}")
        _assert_delivered(agent, [a0, a1, b0])
        assert proxy.log_text().count("/v2/enqueue") >= 3
        _assert_order(helpers.dedup_keys_received(standin))
    finally:
        proxy.stop()


def test_proxy_refuses_connect_with_407(agent, tls_standin, test_ca, tmp_path):
    """HTTPS through a proxy that wants credentials: its CONNECT is refused with 407."""
    proxy = helpers.Tinyproxy(str(tmp_path), auth=("pdagent", "s3cret"))
    try:
        agent.configure(events_api_url=tls_standin.url, proxy_url=proxy.url, ca_bundle=test_ca[2])
        helpers.start_daemon(agent)
        a0, a1, b0 = _queue_three(agent)
        _assert_held(agent, a0, ("unreachable",))
        assert "407" in "\n".join(helpers.log_attempts(agent, a0))
        assert tls_standin.requests() == []

        helpers.restart_daemon(agent, proxy_url=f"http://pdagent:s3cret@127.0.0.1:{proxy.port}")
        _assert_delivered(agent, [a0, a1, b0])
        assert "CONNECT" in proxy.log_text()
        _assert_order([body["dedup_key"] for body in tls_standin.bodies()])
    finally:
        proxy.stop()
