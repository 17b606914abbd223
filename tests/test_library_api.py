"""The original agent's library API, used by a script outside the checkout, as integrations do."""

import argparse
import json
import os
import re
import subprocess
import sys

import pytest
from helpers import routing_key, wait_for

from pdagent.event import check_timestamp, validate
from pdagent.spool.names import parse_file_name

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
results = {"agent_id": agent_id, "main_config": main_config, "conf_dirs": conf_dirs,
           "agent_id_file": c.get_agent_id_file()}
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
results["stats_of_unseen_key"] = get_stats(queue, "R0utingKey9999999999999999999999")
# What scripts written for the original read:
results["pending_of_key"] = get_stats(queue, key)["snapshot"][key]["pending_events"]["count"]
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
    assert results["agent_id_file"] == os.path.join(agent.data_dir, "agent_id.txt")
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


def without_ages(stats):
    """A state's stats with the ages checked (seconds, oldest first) and taken out."""
    stats = dict(stats)
    if stats["count"]:
        assert 0 <= stats.pop("newest_age_secs") <= stats.pop("oldest_age_secs")
    assert "oldest_age_secs" not in stats and "newest_age_secs" not in stats
    return stats


def counts(state_stats):
    return {label: without_ages(stats) for label, stats in state_stats.items()}


def test_get_stats_has_the_original_shape_and_resurrect_events(agent, results):
    before = results["stats_before"]
    assert set(before) == {"snapshot", "totals", "aggregate"}
    snapshot = before["snapshot"]
    assert set(snapshot) == {KEY, OTHER, "throttled_service_keys_count"}
    assert counts(snapshot[KEY]) == {"pending_events": {"count": 1, "service_keys_count": 1},
                                     "succeeded_events": {"count": 0, "service_keys_count": 0},
                                     "failed_events": {"count": 1, "service_keys_count": 1}}
    assert counts(snapshot[OTHER]) == {"pending_events": {"count": 0, "service_keys_count": 0},
                                       "succeeded_events": {"count": 0, "service_keys_count": 0},
                                       "failed_events": {"count": 1, "service_keys_count": 1}}
    # The error files were queued in 2023: their ages say so.
    assert snapshot[KEY]["failed_events"]["oldest_age_secs"] > 365 * 86400
    assert snapshot[KEY]["pending_events"]["oldest_age_secs"] <= 60
    assert snapshot["throttled_service_keys_count"] == 0
    assert counts(before["totals"]) == {"pending_events": {"count": 1, "service_keys_count": 1},
                                        "succeeded_events": {"count": 0, "service_keys_count": 0},
                                        "failed_events": {"count": 2, "service_keys_count": 2}}
    assert before["totals"]["failed_events"]["oldest_age_secs"] \
        == snapshot[KEY]["failed_events"]["oldest_age_secs"]  # KEY's error file is the older
    assert before["aggregate"] == {"successful_events_count": 0, "failed_events_count": 0, "started_on": None}

    assert results["pending_of_key"] == 1
    assert set(results["stats_of_key"]["snapshot"]) == {KEY, "throttled_service_keys_count"}
    unseen = results["stats_of_unseen_key"]["snapshot"]["R0utingKey9999999999999999999999"]
    assert {label: stats["count"] for label, stats in unseen.items()} \
        == {"pending_events": 0, "succeeded_events": 0, "failed_events": 0}

    assert results["resurrected"] == 1
    after = results["stats_after"]
    assert after["totals"]["pending_events"]["count"] == 2
    assert after["totals"]["failed_events"]["count"] == 1
    assert after["snapshot"][KEY]["failed_events"]["count"] == 0
    assert agent.names("err") == [f"1700000000000001_{OTHER}.txt"]
    assert f"1700000000000000_{KEY}.txt" in agent.names("pdq")


def test_get_stats_reads_the_daemons_counters_and_back_off(agent, standin):
    """A key the Events API answers 500 is backed off; another is delivered: both show."""
    standin.set_faults([{"match": {"routing_key": OTHER}, "status": 500, "times": -1}])
    agent.configure(backoff_interval_secs=60, backoff_max_secs=600)
    agent.start_daemon()
    for key in (KEY, OTHER):
        assert agent.send("-k", key, "-t", "trigger", "-d", "x", "-i", "stats").returncode == 0
    wait_for(lambda: agent.names("suc"), message="KEY's event delivered")
    code = ("import json, sys\n"
            "from pdagent.config import load_agent_config\n"
            "from pdagent.pdagentutil import get_stats\n"
            "print(json.dumps(get_stats(load_agent_config().get_queue())))\n")

    def stats_once_saved():
        result = subprocess.run([sys.executable, "-c", code], env={"PDAGENT_CONFIG": agent.config_path},
                                capture_output=True, text=True, timeout=60, check=True)
        stats = json.loads(result.stdout)
        saved = (stats["snapshot"]["throttled_service_keys_count"] == 1
                 and stats["aggregate"]["successful_events_count"] == 1)
        return stats if saved else None

    shown = wait_for(stats_once_saved, timeout=15, message="the back-off and the delivery saved by the daemon")
    assert shown["snapshot"][OTHER]["pending_events"]["count"] == 1
    assert shown["snapshot"][KEY]["succeeded_events"]["count"] == 1
    check_timestamp(shown["aggregate"]["started_on"])


def test_thirdparty_argparse_is_the_standard_librarys(results):
    assert results["argparse_is_stdlib"] is True
    assert results["parsed"] == {"k": "x"}
    from pdagent.thirdparty.argparse import ArgumentParser
    assert ArgumentParser is argparse.ArgumentParser


def queue_event_in_a_script(agent, arguments, as_json=False):
    """stdout of a script printing what queue_event(c.get_enqueuer(), <arguments>) returns
    (KEY is sys.argv[1]): space-separated, or as JSON."""
    show = "print(json.dumps(result))" if as_json else "print(*result)"
    code = ("import json, sys\n"
            "from pdagent.config import load_agent_config\n"
            "from pdagent.pdagentutil import queue_event\n"
            "c = load_agent_config()\n"
            f"result = queue_event(c.get_enqueuer(), {arguments})\n"
            f"{show}\n")
    result = subprocess.run([sys.executable, "-c", code, KEY], cwd=agent.base,
                            env={"PDAGENT_CONFIG": agent.config_path}, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_trigger_without_incident_key_and_with_contexts(agent):
    stdout = queue_event_in_a_script(
        agent, "'trigger', sys.argv[1], None, 'no key given', None, None, None, c.get_agent_id(), 'ctx-script',"
        " contexts=[{'type': 'link', 'href': 'https://runbook.example.com', 'text': 'Runbook'},"
        "{'type': 'image', 'src': 'https://img.example.com/g.png', 'alt': 'graph', 'href': ''}]")
    match = re.fullmatch(r"([0-9a-f]{32}) \[\]\n", stdout)
    assert match, stdout
    (name,) = agent.names("pdq")
    event = agent.read("pdq", name)["event"]
    assert event["dedup_key"] == match.group(1)
    assert event["payload"]["source"] == os.uname().nodename
    assert event["links"] == [{"href": "https://runbook.example.com", "text": "Runbook"}]
    assert event["images"] == [{"src": "https://img.example.com/g.png", "alt": "graph"}]
    assert validate("alert", event) == []


def test_queue_event_ignores_daemon_only_settings(agent):
    """A setting only the daemon reads (one it would refuse) never stops a script from queueing."""
    with open(agent.config_path, "a") as config_file:
        config_file.write("ca_bundle = /nowhere/ca.pem\nmystery_key = 1\n")
    stdout = queue_event_in_a_script(
        agent, "'trigger', sys.argv[1], 'lib-k', 'queued anyway', None, None, None, c.get_agent_id(), 'script'")
    assert stdout == "lib-k []\n"
    (name,) = agent.names("pdq")
    assert agent.read("pdq", name)["event"]["payload"]["summary"] == "queued anyway"


# (id, queue_event's arguments after the event type and KEY, the problem it returns or None
# if it queues). Each is what pd-send refuses or repairs; the daemon would refuse it otherwise.
CHECKED_LIKE_PD_SEND = [
    ("NaN in details", "'nan-k', 'd', None, None, {'load': float('nan')}",
     "the event is not valid JSON: JSON has no NaN or infinity"),
    ("infinity in details", "'inf-k', 'd', None, None, {'load': float('inf')}",
     "the event is not valid JSON: JSON has no NaN or infinity"),
    ("body over the Events API's limit", "'big-k', 'd', None, None, {'log': 'x' * 600_000}",
     "event is 600"),
]


@pytest.mark.parametrize("arguments, problem", [case[1:] for case in CHECKED_LIKE_PD_SEND],
                         ids=[case[0] for case in CHECKED_LIKE_PD_SEND])
def test_queue_event_refuses_what_pd_send_refuses(agent, arguments, problem):
    stdout = queue_event_in_a_script(
        agent, f"'trigger', sys.argv[1], {arguments}, c.get_agent_id(), 'script'", as_json=True)
    incident_key, problems = json.loads(stdout)
    assert incident_key in arguments
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    assert agent.names("pdq") == [] and agent.names("tmp") == []


def test_queue_event_repairs_text_that_is_not_utf8_as_pd_send_does(agent):
    """A lone surrogate (a byte that was not UTF-8) is queued as U+FFFD, in the summary and the details."""
    assert agent.send("-k", KEY, "-t", "trigger", "-i", "by-pd-send", "-d", "caf\udce9",
                      "-f", "out=\udcb0C").returncode == 0
    stdout = queue_event_in_a_script(
        agent, "'trigger', sys.argv[1], 'by-script', 'caf\\udce9', None, None, {'out': '\\udcb0C'},"
               " c.get_agent_id(), 'script'", as_json=True)
    assert json.loads(stdout) == ["by-script", []]
    sent = {agent.read("pdq", name)["event"]["dedup_key"]: agent.read("pdq", name)["event"]["payload"]
            for name in agent.names("pdq")}
    assert sent["by-script"]["summary"] == sent["by-pd-send"]["summary"] == "caf\ufffd"
    assert sent["by-script"]["custom_details"] == sent["by-pd-send"]["custom_details"] == {"out": "\ufffdC"}
    assert [validate("alert", agent.read("pdq", name)["event"]) for name in agent.names("pdq")] == [[], []]
