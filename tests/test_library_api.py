"""The original agent's library API, used by a script outside the checkout, as integrations do."""

import argparse
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import routing_key

from pdagent.event import check_timestamp, validate
from pdagent.spool import parse_file_name

KEY = routing_key(1)
OTHER = routing_key(2)

# Exactly what third-party scripts written for the original agent do.
SCRIPT = r'''
import json
import sys

from pdagent.config import load_agent_config

c = load_agent_config()
enqueuer = c.get_enqueuer()
queue = c.get_queue()
agent_id = c.get_agent_id()
main_config = c.get_main_config()
conf_dirs = c.get_conf_dirs()

from pdagent.pdagentutil import queue_event, resurrect_events, get_stats

key, other = sys.argv[1], sys.argv[2]
results = {"agent_id": agent_id, "main_config": main_config, "conf_dirs": conf_dirs}
results["trigger"] = queue_event(enqueuer, "trigger", key, "inc-1", "desc", "client", "http://c",
                                 {"a": "b"}, agent_id, "my-script")
with open(sys.argv[3], "w") as marker:
    marker.write("queued")
results["ack_without_key"] = queue_event(enqueuer, "acknowledge", key, None, None, None, None, None,
                                         agent_id, "my-script")
results["bad_routing_key"] = queue_event(enqueuer, "trigger", "not a key", "inc-2", "d", None, None,
                                         None, agent_id, "my-script")
results["stats_before"] = get_stats(queue)
results["stats_of_key"] = get_stats(queue, key)
results["resurrected"] = resurrect_events(queue, key)
results["stats_after"] = get_stats(queue)

from pdagent.thirdparty.argparse import ArgumentParser
import argparse
results["argparse_is_stdlib"] = ArgumentParser is argparse.ArgumentParser
parser = ArgumentParser(prog="integration")
parser.add_argument("-k")
results["parsed"] = vars(parser.parse_args(["-k", "x"]))
import pdagent
results["pdagent_from"] = pdagent.__file__
print(json.dumps(results))
'''


def put_error(agent, stamp_us, key, dedup_key):
    name = f"{stamp_us}_{key}.txt"
    with open(agent.path("err", name), "w") as handle:
        json.dump({"endpoint": "alert", "event": {"routing_key": key, "event_action": "resolve",
                                                  "dedup_key": dedup_key},
                   "agent": {"agent_id": None, "queued_by": "x", "queued_at": "2023-11-14T22:13:20Z"}},
                  handle)
    return name


def run_script(agent):
    script = os.path.join(agent.base, "integration_script.py")
    with open(script, "w") as handle:
        handle.write(SCRIPT)
    elsewhere = os.path.join(agent.base, "elsewhere")
    os.makedirs(elsewhere, exist_ok=True)
    marker = os.path.join(agent.base, "marker")
    result = subprocess.run([sys.executable, script, KEY, OTHER, marker],
                            cwd=elsewhere, env={"PDAGENT_CONFIG": agent.config_path},
                            capture_output=True, text=True, timeout=60, check=False)
    return result


@pytest.fixture
def results(agent):
    with open(os.path.join(agent.data_dir, "agent_id.txt"), "w") as id_file:
        id_file.write("lib-agent-0001\n")
    with open(os.path.join(agent.data_dir, "fqdn.txt"), "w") as fqdn_file:
        fqdn_file.write("monitor.example.com\n")
    put_error(agent, 1700000000000000, KEY, "old-1")
    put_error(agent, 1700000000000001, OTHER, "old-2")
    result = run_script(agent)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_script_runs_outside_the_checkout(agent, results):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert not os.path.abspath(os.path.join(agent.base, "elsewhere")).startswith(root)
    assert results["pdagent_from"].endswith(os.path.join("pdagent", "__init__.py"))


def test_config_accessors(agent, results):
    assert results["agent_id"] == "lib-agent-0001"
    assert results["main_config"]["events_api_url"] == agent.settings["events_api_url"]
    assert results["main_config"]["send_interval_secs"] == 2
    assert results["main_config"]["cleanup_threshold_secs"] == 604800
    assert results["main_config"]["data_dir"] == agent.data_dir
    assert results["conf_dirs"]["data_dir"] == agent.data_dir
    assert results["conf_dirs"]["outqueue_dir"] == agent.outqueue
    assert results["conf_dirs"]["log_dir"] == agent.log_dir
    assert results["conf_dirs"]["pid_dir"] == agent.pid_dir


def test_queue_event_writes_a_v2_entry(agent, results):
    assert results["trigger"] == ["inc-1", []]
    pending = agent.names("pdq")
    assert len(pending) == 2  # the trigger, and the resurrected event of KEY
    queued = [name for name in pending if agent.read("pdq", name)["agent"]["queued_by"] == "my-script"]
    assert len(queued) == 1
    name = queued[0]
    assert parse_file_name(name)[1] == KEY
    entry = agent.read("pdq", name)
    assert set(entry) == {"endpoint", "event", "agent"}
    assert entry["endpoint"] == "alert"
    check_timestamp(entry["event"]["payload"].pop("timestamp"))  # when queue_event ran
    assert entry["event"] == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "inc-1",
        "payload": {"summary": "desc", "source": "monitor.example.com", "severity": "error",
                    "custom_details": {"a": "b"}},
        "client": "client", "client_url": "http://c"}
    assert validate("alert", entry["event"]) == []
    assert entry["agent"]["agent_id"] == "lib-agent-0001"
    assert entry["agent"]["queued_by"] == "my-script"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["agent"]["queued_at"])
    info = os.stat(agent.path("pdq", name))
    assert info.st_mode & 0o7777 == 0o640
    assert info.st_gid == agent.gid
    assert agent.names("tmp") == []


def test_problems_are_returned_and_nothing_is_queued(agent, results):
    incident_key, problems = results["ack_without_key"]
    assert incident_key is None
    assert problems == ["acknowledge needs a dedup key (-i)"]
    incident_key, problems = results["bad_routing_key"]
    assert incident_key == "inc-2"
    assert problems and "routing key" in problems[0]
    queued_by_script = [n for n in agent.names("pdq")
                        if agent.read("pdq", n)["agent"]["queued_by"] == "my-script"]
    assert len(queued_by_script) == 1  # only the valid trigger


def test_get_stats_and_resurrect_events(agent, results):
    before = results["stats_before"]
    assert before["snapshot"] == {"pending_events": 1, "succeeded_events": 0, "failed_events": 2}
    assert before["per_key"][KEY]["pending_events"] == 1
    assert before["per_key"][KEY]["failed_events"] == 1
    assert before["per_key"][OTHER] == {"pending_events": 0, "succeeded_events": 0, "failed_events": 1}
    assert 0 <= before["per_key"][KEY]["oldest_pending_age_secs"] <= 60
    assert list(results["stats_of_key"]["per_key"]) == [KEY]

    assert results["resurrected"] == 1
    after = results["stats_after"]
    assert after["snapshot"] == {"pending_events": 2, "succeeded_events": 0, "failed_events": 1}
    assert agent.names("err") == [f"1700000000000001_{OTHER}.txt"]
    assert f"1700000000000000_{KEY}.txt" in agent.names("pdq")


def test_thirdparty_argparse_is_the_standard_librarys(results):
    assert results["argparse_is_stdlib"] is True
    assert results["parsed"] == {"k": "x"}
    from pdagent.thirdparty.argparse import ArgumentParser
    assert ArgumentParser is argparse.ArgumentParser


def test_trigger_without_incident_key_and_with_contexts(agent):
    code = (
        "import sys\n"
        "from pdagent.config import load_agent_config\n"
        "from pdagent.pdagentutil import queue_event\n"
        "c = load_agent_config()\n"
        "key, problems = queue_event(c.get_enqueuer(), 'trigger', sys.argv[1], None, 'no key given',"
        " None, None, None, c.get_agent_id(), 'ctx-script', contexts=["
        "{'type': 'link', 'href': 'https://runbook.example.com', 'text': 'Runbook'},"
        "{'type': 'image', 'src': 'https://img.example.com/g.png', 'alt': 'graph', 'href': ''}])\n"
        "print(key, problems)\n")
    result = subprocess.run([sys.executable, "-c", code, KEY], cwd=agent.base,
                            env={"PDAGENT_CONFIG": agent.config_path}, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"([0-9a-f]{32}) \[\]\n", result.stdout)
    assert match, result.stdout
    (name,) = agent.names("pdq")
    event = agent.read("pdq", name)["event"]
    assert event["dedup_key"] == match.group(1)
    assert event["payload"]["source"] == os.uname().nodename
    assert event["links"] == [{"href": "https://runbook.example.com", "text": "Runbook"}]
    assert event["images"] == [{"src": "https://img.example.com/g.png", "alt": "graph"}]
    assert validate("alert", event) == []
