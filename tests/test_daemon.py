"""pdagentd through real processes: the daemon (as an unprivileged user), pd-send, the stand-in.

What it shows: every row of the answer table, per-key order under
failures, other keys flowing while one backs off, 429 never reaching err/,
TLS and proxy delivery, kill -9 mid-drain, one instance, stale pid file,
SIGTERM in time, legacy v1 entries delivered as v2, state across restarts.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest
from helpers import ROUTING_KEY, Tinyproxy, as_user, command, routing_key, wait_for

from pdagent import __version__

OTHER_KEY = routing_key(2)


def send(agent, *args, key=ROUTING_KEY):
    result = agent.send("-k", key, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.rsplit(" ", 1)[-1].strip()


def trigger(agent, summary, key=ROUTING_KEY, dedup_key=None):
    return send(agent, "-t", "trigger", "-d", summary, *(["-i", dedup_key] if dedup_key else []), key=key)


def summaries(standin, key=ROUTING_KEY):
    return [body["payload"]["summary"] for body in standin.bodies(key) if "payload" in body]


def status_json(agent):
    result = agent.queue("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the happy path ------------------------------------------------------------------------

def test_delivers_every_kind_of_event_in_order_with_its_fields(agent, standin):
    trigger(agent, "queued before the daemon runs", dedup_key="db1-disk")
    agent.start_daemon()
    send(agent, "-t", "acknowledge", "-i", "db1-disk")
    send(agent, "-t", "resolve", "-i", "db1-disk")
    send(agent, "-t", "change", "-d", "deployed 1.2.3", "--link", "https://ci.example.com/42|build")
    wait_for(lambda: len(standin.received()) == 4, message="4 events at the stand-in")

    received = standin.received()
    assert [event["path"] for event in received] == ["/v2/enqueue"] * 3 + ["/v2/change/enqueue"]
    assert [event["body"].get("event_action") for event in received[:3]] == \
        ["trigger", "acknowledge", "resolve"]
    assert {event["body"].get("dedup_key") for event in received[:3]} == {"db1-disk"}
    assert received[0]["body"]["payload"]["summary"] == "queued before the daemon runs"
    assert received[3]["body"]["links"] == [{"href": "https://ci.example.com/42", "text": "build"}]
    assert all(event["user_agent"] == f"pdagent/{__version__}" for event in received)
    assert "agent" not in received[0]["body"]  # enqueue metadata is never sent

    wait_for(lambda: len(agent.names("suc")) == 4, message="4 files in suc/")
    assert agent.names("pdq") == [] and agent.names("err") == []
    wait_for(lambda: status_json(agent)["agent"]["delivered"] == 4, message="the counter (saved each second)")
    log = agent.log_text()
    assert ROUTING_KEY not in log
    assert f"key=****{ROUTING_KEY[-4:]} action=trigger dedup_key=db1-disk status=202" in log


def test_notices_new_events_at_once(agent, standin):
    agent.configure(send_interval_secs=60)  # only inotify can make this fast
    agent.start_daemon()
    started = time.time()
    trigger(agent, "fast")
    wait_for(lambda: standin.received(), timeout=5, message="the event")
    assert time.time() - started < 3


# -- the answer table -------------------------------------------------------------------------

def test_400_goes_to_err_at_once_with_its_reason_and_the_key_goes_on(agent, standin):
    standin.set_faults([{"match": {"dedup_key": "bad"}, "status": 400, "times": -1}])
    agent.start_daemon()
    trigger(agent, "rejected one", dedup_key="bad")
    trigger(agent, "next one")
    wait_for(lambda: summaries(standin) == ["next one"], message="the next event")
    wait_for(lambda: len(agent.names("err")) == 1, message="the rejected event in err/")
    listing = agent.queue("list", "--state", "error").stdout
    assert "rejected one" in listing and "HTTP 400" in listing
    wait_for(lambda: status_json(agent)["agent"]["failed"] == 1, message="the failed counter")


@pytest.mark.parametrize("status", [404, 413])
def test_other_4xx_go_to_err_at_once(agent, standin, status):
    standin.set_faults([{"status": status, "times": 1}])
    agent.start_daemon()
    trigger(agent, "refused")
    wait_for(lambda: len(agent.names("err")) == 1, message="the event in err/")
    assert f"HTTP {status}" in agent.queue("list", "--state", "error").stdout


@pytest.mark.parametrize("retry_after", [None, "2"])
def test_429_backs_off_and_never_errs(agent, standin, retry_after):
    rule = {"status": 429, "times": 3}
    if retry_after:
        rule["retry_after"] = retry_after
    standin.set_faults([rule])
    agent.start_daemon()
    trigger(agent, "throttled")
    wait_for(lambda: status_json(agent)["keys"].get(ROUTING_KEY, {}).get("backed_off"),
             message="the key to be backed off")
    assert agent.names("err") == [] and len(agent.names("pdq")) == 1
    wait_for(lambda: summaries(standin) == ["throttled"], timeout=20, message="delivery after 429s")
    assert agent.names("err") == []
    assert status_json(agent)["agent"]["failed"] == 0
    assert "result=throttled" in agent.log_text()


@pytest.mark.parametrize("rule", [
    {"status": 500, "times": 2},
    {"status": 503, "times": 2, "retry_after": "1"},
    {"delay": 4.5, "times": 1},          # slower than http_timeout_secs (3)
    {"action": "reset", "times": 2},     # connection reset mid-response
    {"action": "close", "times": 2},     # connection dropped without an answer
], ids=["500", "503-retry-after", "timeout", "reset", "close"])
def test_retryable_answers_keep_the_event_and_deliver_it_later(agent, standin, rule):
    standin.set_faults([rule])
    agent.start_daemon()
    trigger(agent, "retry me")
    wait_for(lambda: summaries(standin) == ["retry me"], timeout=25, message="delivery after the fault")
    wait_for(lambda: len(agent.names("suc")) == 1, message="the file in suc/")
    assert agent.names("err") == []


def test_5xx_past_the_retry_limit_goes_to_err_and_retry_brings_it_back(agent, standin):
    agent.configure(retry_limit_for_possible_errors=2)
    standin.set_faults([{"status": 502, "times": -1}])
    agent.start_daemon()
    trigger(agent, "server keeps failing")
    wait_for(lambda: len(agent.names("err")) == 1, timeout=20, message="the event in err/")
    assert "2 failures in a row" in agent.queue("list", "--state", "error").stdout
    standin.set_faults([])
    assert agent.queue("retry", "-a").stdout.strip() == "1 event(s) set up for retry."
    wait_for(lambda: summaries(standin) == ["server keeps failing"], timeout=20,
             message="delivery after pd-queue retry")


def test_connection_refused_never_errs(agent, standin):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    agent.configure(events_api_url=f"http://127.0.0.1:{closed_port}", retry_limit_for_possible_errors=1)
    agent.start_daemon()
    trigger(agent, "network down")
    wait_for(lambda: "result=unreachable" in agent.log_text(), message="a failed attempt")
    time.sleep(2.5)  # more attempts than the retry limit
    assert agent.names("err") == [] and len(agent.names("pdq")) == 1
    agent.stop_daemon()
    agent.configure(events_api_url=standin.url)
    agent.start_daemon()
    wait_for(lambda: summaries(standin) == ["network down"], message="delivery once reachable")


# -- order and fairness -------------------------------------------------------------------------

def test_per_key_order_holds_under_failures_and_other_keys_flow(agent, standin):
    standin.set_faults([{"match": {"routing_key": ROUTING_KEY}, "status": 503, "times": 3}])
    agent.start_daemon()
    for number in range(5):
        trigger(agent, f"A{number}")
    trigger(agent, "B0", key=OTHER_KEY)
    wait_for(lambda: summaries(standin, OTHER_KEY) == ["B0"], timeout=3,
             message="the other key's event while the first key backs off")
    assert summaries(standin) == []
    wait_for(lambda: len(summaries(standin)) == 5, timeout=30, message="all of the first key")
    assert summaries(standin) == [f"A{number}" for number in range(5)]


def test_a_resolve_never_overtakes_its_trigger(agent, standin):
    standin.set_faults([{"match": {"event_action": "trigger"}, "status": 500, "times": 2}])
    agent.start_daemon()
    trigger(agent, "disk full", dedup_key="disk")
    send(agent, "-t", "resolve", "-i", "disk")
    wait_for(lambda: len(standin.bodies()) == 2, timeout=20, message="both events")
    assert [body["event_action"] for body in standin.bodies()] == ["trigger", "resolve"]


def test_pacing_holds_a_key_to_its_rate_without_slowing_others(agent, standin):
    agent.configure(max_events_per_minute_per_key=3)
    for number in range(5):
        trigger(agent, f"burst {number}")
    agent.start_daemon()
    wait_for(lambda: len(summaries(standin)) == 3, message="the first 3")
    trigger(agent, "other key", key=OTHER_KEY)
    wait_for(lambda: summaries(standin, OTHER_KEY) == ["other key"], message="the other key")
    time.sleep(1.5)
    assert summaries(standin) == ["burst 0", "burst 1", "burst 2"]
    assert len(agent.names("pdq")) == 2
    assert [request["status"] for request in standin.requests()].count(429) == 0


# -- TLS and proxies ----------------------------------------------------------------------------

def test_https_with_the_configured_ca_bundle(agent, tls_standin, test_ca):
    agent.configure(events_api_url=tls_standin.url, ca_bundle=test_ca[2])
    agent.start_daemon()
    trigger(agent, "over TLS")
    wait_for(lambda: summaries(tls_standin) == ["over TLS"], message="delivery over HTTPS")


def test_tls_verification_failure_is_loud_and_never_errs(agent, tls_standin):
    agent.configure(events_api_url=tls_standin.url, retry_limit_for_possible_errors=1)
    agent.start_daemon(env=agent.env(REQUESTS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"))
    trigger(agent, "untrusted server")
    wait_for(lambda: "TLS VERIFICATION FAILED" in agent.log_text(), message="a loud TLS error")
    time.sleep(2.5)
    assert agent.names("err") == [] and len(agent.names("pdq")) == 1
    assert tls_standin.received() == []


@pytest.fixture
def tinyproxy(agent_home):
    proxy = Tinyproxy(agent_home)
    yield proxy
    proxy.stop()


def _proxied(proxy, port):
    return re.search(rf"127\.0\.0\.1:{port}", proxy.log_text())


def test_delivery_through_a_proxy_from_the_config(agent, standin, tinyproxy):
    agent.configure(proxy_url=tinyproxy.url)
    agent.start_daemon()
    trigger(agent, "via proxy_url")
    wait_for(lambda: summaries(standin) == ["via proxy_url"], message="delivery through the proxy")
    assert _proxied(tinyproxy, standin.port), "the proxy's own log shows no request to the stand-in"


def test_delivery_through_a_proxy_from_the_environment(agent, tls_standin, test_ca, tinyproxy):
    agent.configure(events_api_url=tls_standin.url, ca_bundle=test_ca[2])
    agent.start_daemon(env=agent.env(HTTPS_PROXY=tinyproxy.url))
    trigger(agent, "via HTTPS_PROXY")
    wait_for(lambda: summaries(tls_standin) == ["via HTTPS_PROXY"], message="delivery via the env proxy")
    assert _proxied(tinyproxy, tls_standin.port), "the proxy's log shows no CONNECT to the stand-in"


def test_no_proxy_bypasses_the_environment_proxy(agent, standin):
    agent.start_daemon(env=agent.env(HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1"))
    trigger(agent, "direct")
    wait_for(lambda: summaries(standin) == ["direct"], message="direct delivery")


# -- the process ------------------------------------------------------------------------------------

def test_kill_9_mid_drain_then_restart_loses_nothing(agent, standin):
    standin.set_faults([{"delay": 0.02, "times": -1}])  # make the drain take a while
    dedup_keys = [trigger(agent, f"event {number}", key=routing_key(number % 3)) for number in range(60)]
    agent.start_daemon(foreground=False)
    wait_for(lambda: len(standin.received()) >= 10, message="the drain to start")
    agent.kill_daemon()
    assert agent.pid() is not None  # the pid file is left behind, as after a crash
    agent.start_daemon(foreground=False)
    wait_for(lambda: len(agent.names("suc")) == 60, timeout=30, message="all 60 in suc/")
    received = {body["dedup_key"] for body in standin.bodies()}
    assert set(dedup_keys) <= received
    assert len(standin.bodies()) <= 61  # at most the one event in flight twice


def test_second_instance_is_refused(agent):
    first = agent.start_daemon(foreground=False)
    result = subprocess.run(as_user(agent.uid, agent.gid, command("pdagentd")), env=agent.env(),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert f"already running (pid {first}" in result.stderr
    assert agent.pid() == first and agent.daemon_running()


@pytest.mark.parametrize("leftover", ["killed-daemon", "garbage", "other-process"])
def test_stale_pid_files_do_not_block_a_start(agent, leftover):
    pid_file = os.path.join(agent.pid_dir, "pdagentd.pid")
    if leftover == "killed-daemon":
        agent.start_daemon(foreground=False)
        agent.kill_daemon()
    else:
        with open(pid_file, "w") as stale:
            stale.write("not a pid\n" if leftover == "garbage" else "1\n")
        if os.geteuid() == 0:
            os.chown(pid_file, agent.uid, agent.gid)
    new_pid = agent.start_daemon(foreground=False)
    assert agent.daemon_running() and new_pid != 1


def test_sigterm_stops_in_time_and_keeps_the_unanswered_event(agent, standin):
    standin.set_faults([{"delay": 30, "times": 1}])
    agent.configure(http_timeout_secs=60)
    agent.start_daemon()
    trigger(agent, "slow answer")
    wait_for(lambda: standin.requests(), message="the request to be in flight")
    assert agent.stop_daemon() < 15
    assert len(agent.names("pdq")) == 1 and agent.names("suc") == []


def test_daemonised_start_writes_pid_file_agent_id_and_reopens_its_log_on_sighup(agent):
    pid = agent.start_daemon(foreground=False)
    with open(f"/proc/{pid}/status") as status:
        assert re.search(rf"^Uid:\s+{agent.uid}\b", status.read(), re.MULTILINE)
    agent_id_file = os.path.join(agent.data_dir, "agent_id.txt")
    assert oct(os.stat(agent_id_file).st_mode & 0o777) == "0o644"
    with open(agent_id_file) as agent_id:
        uuid.UUID(agent_id.read().strip())
    log_path = os.path.join(agent.log_dir, "pdagentd.log")
    os.rename(log_path, log_path + ".1")
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: os.path.exists(log_path) and "reopened" in agent.log_text(), message="a new log")


def test_foreground_mode_also_logs_to_stderr(agent, standin):
    agent.start_daemon(foreground=True)
    trigger(agent, "watched")
    wait_for(lambda: summaries(standin) == ["watched"], message="delivery")
    agent.stop_daemon()
    with open(agent.daemon_output) as output:
        text = output.read()
    assert "started" in text and "result=delivered" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to try running pdagentd as root")
def test_refuses_to_run_as_root(agent):
    result = subprocess.run(command("pdagentd") + ["-f"], env=agent.env(), capture_output=True, check=False,
                            text=True, timeout=30)
    assert result.returncode != 0 and "should not be run as root" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory the daemon cannot write")
def test_names_a_directory_it_cannot_write(agent):
    success_dir = os.path.join(agent.outqueue, "suc")
    os.chown(success_dir, 0, 0)
    result = subprocess.run(as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"]),
                            env=agent.env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert f"directory {success_dir} is not writable" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to queue as root")
def test_names_a_spool_directory_it_cannot_list(agent):
    """A spool root's pd-send made (nothing there yet): root's, so it is refused at start, named."""
    shutil.rmtree(agent.outqueue)
    sent = agent.send("-k", ROUTING_KEY, "-t", "trigger", "-d", "first on this host")
    assert sent.returncode == 0, sent.stderr
    result = subprocess.run(as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"]),
                            env=agent.env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert f"directory {agent.path('tmp').rstrip('/')} is not readable by user" in result.stderr


# -- the spool the original agent left -----------------------------------------------------------

def test_original_agent_v1_entries_are_sent_as_v2(agent, standin):
    v1_entry = {"service_key": ROUTING_KEY, "event_type": "trigger", "incident_key": "legacy-1",
                "description": "written by the original agent", "details": {"disk": "/var"},
                "client": "Nagios", "client_url": "http://nagios.example.com",
                "agent": {"agent_id": "x", "queued_by": "pd-send", "queued_at": "2020-01-01T00:00:00Z"}}
    name = f"{int(time.time() * 1e6) - 10**9}_{ROUTING_KEY}.txt"
    with open(agent.path("pdq", name), "w") as entry:
        json.dump(v1_entry, entry)
    if os.geteuid() == 0:
        os.chown(agent.path("pdq", name), 0, agent.gid)
        os.chmod(agent.path("pdq", name), 0o640)
    agent.start_daemon()
    wait_for(lambda: standin.bodies(), message="the converted event")
    body = standin.bodies()[0]
    assert body == {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "legacy-1",
                    "payload": {"summary": "written by the original agent", "severity": "error",
                                "source": body["payload"]["source"], "custom_details": {"disk": "/var"}},
                    "client": "Nagios", "client_url": "http://nagios.example.com"}
    assert body["payload"]["source"]
    wait_for(lambda: agent.names("suc") == [name], message="the v1 file in suc/")


# -- state across restarts ----------------------------------------------------------------------

def test_counters_and_back_off_survive_a_restart(agent, standin):
    agent.start_daemon()
    trigger(agent, "one")
    wait_for(lambda: summaries(standin) == ["one"], message="the first event")
    standin.set_faults([{"status": 429, "retry_after": "30", "times": -1}])
    trigger(agent, "throttled")
    wait_for(lambda: status_json(agent)["keys"][ROUTING_KEY]["backed_off"], message="a back-off")
    agent.stop_daemon()
    agent.start_daemon()
    status = status_json(agent)
    assert status["agent"]["delivered"] == 1
    assert status["keys"][ROUTING_KEY]["backed_off"] and status["keys"][ROUTING_KEY]["pending"] == 1
    time.sleep(1)
    assert len([request for request in standin.requests() if request["status"] == 429]) == 1


# -- connection and housekeeping settings ------------------------------------------------------

def test_source_address_binds_the_outgoing_connection(agent, standin):
    agent.configure(source_address="127.0.0.2")  # any loopback address is local on Linux
    agent.start_daemon()
    trigger(agent, "from 127.0.0.2")
    wait_for(lambda: summaries(standin) == ["from 127.0.0.2"], message="delivery")
    assert {request["client"] for request in standin.requests()} == {"127.0.0.2"}


def test_periodic_cleanup_removes_old_delivered_events_and_stale_tmp_files(agent, standin):
    agent.configure(cleanup_interval_secs=1, cleanup_threshold_secs=1)
    stale_tmp = agent.path("tmp", "1_killed-pd-send.tmp")
    with open(stale_tmp, "w") as leftover:
        leftover.write("half an ev")
    two_hours_ago = time.time() - 7200
    os.utime(stale_tmp, (two_hours_ago, two_hours_ago))
    agent.start_daemon()
    trigger(agent, "soon cleaned up")
    wait_for(lambda: summaries(standin) == ["soon cleaned up"], message="delivery")
    wait_for(lambda: agent.names("suc") == [] and agent.names("tmp") == [], timeout=10,
             message="cleanup of suc/ and tmp/")
    assert "cleanup removed" in agent.log_text()
