"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) paging through pd-listen.

Alertmanager posts its PagerDuty v2 events to pd-listen's /v2/enqueue; pdagentd delivers them to
the Events API stand-in. The firing alert and its resolution arrive in order with Alertmanager's
dedup key; and what Alertmanager alone would lose (PagerDuty down, then Alertmanager gone) is
delivered once PagerDuty answers again.
"""

import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import urllib.request

import pytest
from harness import Listen, closed_port, stop_process
from helpers import routing_key, wait_for

ALERTMANAGER = shutil.which("prometheus-alertmanager")
KEY = routing_key(20)

pytestmark = pytest.mark.skipif(ALERTMANAGER is None,
                                reason="prometheus-alertmanager is not installed (make test installs it)")


class Alertmanager:
    """prometheus-alertmanager as a plain process on loopback, no cluster, one PagerDuty receiver."""

    def __init__(self, workdir, events_url):
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_path = os.path.join(workdir, "alertmanager.yml")
        with open(config_path, "w") as config:
            config.write(f"""route:
  receiver: pd
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: pd
  pagerduty_configs:
  - routing_key: {KEY}
    url: {events_url}
    send_resolved: true
""")
        storage = os.path.join(workdir, "alertmanager-data")
        os.makedirs(storage, exist_ok=True)
        self._output = open(os.path.join(workdir, "alertmanager.out"), "wb")  # noqa: SIM115 (closed by kill)
        self.process = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={config_path}", f"--storage.path={storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self._output, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=30, message="Alertmanager to be ready")

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"alertmanager exited {self.process.returncode}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def post_alert(self, name, resolved=False):
        now = datetime.datetime.now(datetime.timezone.utc)
        alert = {"labels": {"alertname": name, "instance": "db1"},
                 "annotations": {"summary": f"{name} on db1"},
                 "startsAt": (now - datetime.timedelta(minutes=1)).isoformat()}
        if resolved:
            alert["endsAt"] = (now - datetime.timedelta(seconds=1)).isoformat()
        request = urllib.request.Request(self.url + "/api/v2/alerts", data=json.dumps([alert]).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._output.close()

    def stop(self):
        if self.process.poll() is None:
            stop_process(self.process)
            self._output.close()


def group_dedup_key(name):
    """Alertmanager's dedup key: the hex SHA-256 of the aggregation group's key."""
    return hashlib.sha256(f'{{}}:{{alertname="{name}"}}'.encode()).hexdigest()


@pytest.fixture
def paging(agent, standin):
    agent.start_daemon()
    listen = Listen(agent)
    alertmanager = Alertmanager(agent.base, listen.url + "/v2/enqueue")
    yield agent, standin, listen, alertmanager
    alertmanager.stop()
    listen.stop()


def test_a_firing_alert_and_its_resolution_arrive_in_order_with_alertmanagers_dedup_key(paging):
    agent, standin, _listen, alertmanager = paging
    alertmanager.post_alert("DiskFull")
    wait_for(lambda: standin.bodies(KEY), timeout=30, message="the trigger")
    alertmanager.post_alert("DiskFull", resolved=True)
    bodies = wait_for(lambda: len(standin.bodies(KEY)) >= 2 and standin.bodies(KEY), timeout=30,
                      message="the resolution")
    assert [body["event_action"] for body in bodies] == ["trigger", "resolve"]
    assert {body["dedup_key"] for body in bodies} == {group_dedup_key("DiskFull")}
    trigger = bodies[0]
    assert trigger["client"] == "Alertmanager" and trigger["payload"]["severity"] == "error"
    assert "DiskFull" in trigger["payload"]["summary"]
    assert trigger["payload"]["custom_details"]["num_firing"] == "1"
    assert bodies[1]["payload"]["custom_details"]["num_resolved"] == "1"
    assert {entry["agent"]["queued_by"] for entry in (agent.read("suc", name) for name in agent.names("suc"))} \
        == {"pd-listen"}


def test_events_alertmanager_handed_over_survive_pagerduty_down_and_alertmanager_gone(paging):
    """PagerDuty answers 503; Alertmanager gets its 202 from pd-listen and is killed for good;
    pdagentd restarts; once PagerDuty answers 202, both events arrive, in order, once each."""
    agent, standin, listen, alertmanager = paging
    standin.set_faults([{"status": 503, "times": -1}])
    alertmanager.post_alert("PagerDutyDown")
    wait_for(lambda: listen.log_text().count(" queued trigger ") == 1, timeout=30, message="the trigger queued")
    alertmanager.post_alert("PagerDutyDown", resolved=True)
    wait_for(lambda: listen.log_text().count(" queued resolve ") == 1, timeout=30, message="the resolve queued")
    wait_for(lambda: any(request["status"] == 503 for request in standin.requests()), timeout=30,
             message="pdagentd to meet the 503")
    alertmanager.kill()
    agent.stop_daemon()
    assert standin.bodies(KEY) == []
    agent.start_daemon()
    standin.set_faults([])
    bodies = wait_for(lambda: len(standin.bodies(KEY)) >= 2 and standin.bodies(KEY), timeout=60,
                      message="both events")
    assert [(body["event_action"], body["dedup_key"]) for body in bodies] == [
        ("trigger", group_dedup_key("PagerDutyDown")), ("resolve", group_dedup_key("PagerDutyDown"))]
    wait_for(lambda: agent.names("pdq") == [], message="an empty queue")
    assert len(standin.bodies(KEY)) == 2
