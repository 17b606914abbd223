"""`pd-queue metrics`: the Prometheus text format, read back by prometheus_client's own parser.

Against a running daemon and the stand-in: events delivered (OK), a key the
stand-in answers 503 (a backlog, backed off), a key it answers 400 (events in
error, the failed counter), then the daemon stopped (down). Offline: two keys
that mask alike stay two series, label values are escaped, and a user who
cannot read the spool gets one line and no output (so the textfile collector
keeps the last good file). Besides the parser, the exposition is checked
against the format's rules the parser does not enforce: HELP and TYPE once,
before the samples, valid metric and label names, no series twice.
"""

import hashlib
import os
import re
import time

import pytest
from helpers import (
    aged,
    assert_usage_error,
    routing_key,
    send,
    start_daemon,
    stop_daemon,
    wait_for,
    write_saved_state,
)

from pdagent.spool.queue import Spool

parser = pytest.importorskip("prometheus_client.parser")

KEY_OK, KEY_SLOW, KEY_BAD = routing_key(1), routing_key(2), routing_key(3)
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = {"pdagent_daemon_up": "gauge", "pdagent_daemon_up_known": "gauge", "pdagent_spool_events": "gauge",
         "pdagent_oldest_pending_age_seconds": "gauge", "pdagent_key_backed_off": "gauge",
         "pdagent_key_backoff_remaining_seconds": "gauge", "pdagent_spool_events_by_origin": "gauge",
         "pdagent_events_delivered_total": "counter",
         "pdagent_events_failed_total": "counter", "pdagent_counters_saved_age_seconds": "gauge"}


def check_format_rules(text):
    """What the text format requires beyond what prometheus_client's parser checks."""
    assert text.endswith("\n")
    described, typed, series = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in described and name not in series, line
            described[name] = line
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in typed and name in described, line  # HELP, then TYPE, once
            typed[name] = kind
        else:
            name = re.match(r"[^{ ]+", line).group(0)
            assert METRIC_NAME.match(name) and name in typed, line
            labels = re.findall(r'([^{,=]+)="', line)
            assert all(LABEL_NAME.match(label) and not label.startswith("__") for label in labels), line
            key = line.rsplit(" ", 1)[0]
            assert key not in series, line  # each series once
            series.add(key)
    assert typed == TYPES


def metrics(agent, **kwargs):
    """{sample name: {labels as a sorted tuple: value}}, parsed by prometheus_client."""
    result = agent.queue("metrics", **kwargs)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    check_format_rules(result.stdout)
    samples = {}
    for family in parser.text_string_to_metric_families(result.stdout):
        assert family.documentation, family.name
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def key_labels(key):
    """The labels the metrics give a key: masked as in the log, and its SHA-256's first 8 hex digits."""
    return (("key_id", hashlib.sha256(key.encode()).hexdigest()[:8]), ("routing_key", "****" + key[-4:]))


def events(samples, key):
    return {dict(labels)["state"]: value for labels, value in samples["pdagent_spool_events"].items()
            if labels[:2] == key_labels(key)}


def test_metrics_of_a_running_daemon_then_of_a_stopped_one(agent, standin):
    agent.configure(retry_limit_for_possible_errors=1000)
    standin.set_faults([{"match": {"routing_key": KEY_SLOW}, "status": 503, "times": -1},
                        {"match": {"routing_key": KEY_BAD}, "status": 400, "times": -1}])
    start_daemon(agent)
    for number in range(2):
        send(agent, KEY_OK, f"ok-{number}")
    send(agent, KEY_BAD, "rejected-1")
    send(agent, KEY_SLOW, "slow-1")

    def settled():
        samples = metrics(agent)
        done = (samples["pdagent_events_delivered_total"][()] == 2
                and samples["pdagent_events_failed_total"][()] == 1
                and samples["pdagent_key_backed_off"].get(key_labels(KEY_SLOW)) == 1)
        return samples if done else None
    samples = wait_for(settled, timeout=20, message="the daemon to deliver, reject and back off")

    assert samples["pdagent_daemon_up"] == {(): 1} and samples["pdagent_daemon_up_known"] == {(): 1}
    assert events(samples, KEY_OK) == {"pending": 0, "success": 2, "error": 0}
    assert events(samples, KEY_BAD) == {"pending": 0, "success": 0, "error": 1}
    assert events(samples, KEY_SLOW) == {"pending": 1, "success": 0, "error": 0}
    assert samples["pdagent_oldest_pending_age_seconds"][()] < 60
    later = metrics(agent, env=aged(agent, 120))  # ages are how long events have waited in pdq/
    assert 120 <= later["pdagent_oldest_pending_age_seconds"][()] < 180
    assert samples["pdagent_key_backed_off"] == {key_labels(KEY_OK): 0, key_labels(KEY_BAD): 0,
                                                 key_labels(KEY_SLOW): 1}
    remaining = samples["pdagent_key_backoff_remaining_seconds"]
    assert 0 < remaining.pop(key_labels(KEY_SLOW)) <= 2  # backoff_max_secs
    assert remaining == {key_labels(KEY_OK): 0, key_labels(KEY_BAD): 0}

    assert samples["pdagent_spool_events_by_origin"] == {
        (("queued_by", "pd-send"), ("state", "delivered")): 2, (("queued_by", "pd-send"), ("state", "pending")): 1}

    stop_daemon(agent)
    down = metrics(agent)
    assert down["pdagent_daemon_up"] == {(): 0} and down["pdagent_daemon_up_known"] == {(): 1}
    assert down["pdagent_events_delivered_total"] == {(): 2} and down["pdagent_events_failed_total"] == {(): 1}
    assert events(down, KEY_SLOW) == {"pending": 1, "success": 0, "error": 0}


def test_the_counters_say_how_long_ago_they_were_saved(offline_agent):
    """The daemon saves its counters after the fact: the metrics say how old the figure is."""
    assert "pdagent_counters_saved_age_seconds" not in metrics(offline_agent)  # never saved: no sample
    write_saved_state(offline_agent, delivered=7, saved_secs_ago=100)
    samples = metrics(offline_agent)
    assert samples["pdagent_events_delivered_total"] == {(): 7}
    assert 100 <= samples["pdagent_counters_saved_age_seconds"][()] < 160


def test_keys_that_mask_alike_stay_apart_and_label_values_are_escaped(offline_agent):
    alike = ["R0utingKey0000000000000000000001", "AnotherKey0000000000000000000001"]
    quoting = 'R0utingKey00000000000000000000"\\'  # its last 4 characters hold " and \
    spool = Spool(offline_agent.outqueue, os.path.join(offline_agent.data_dir, "db"))
    for key in alike + [quoting]:
        spool.enqueue(key, b"{}", now=time.time() - 3000)  # names claiming an old time change no age
    spool.enqueue(alike[0], b"{}")
    samples = metrics(offline_agent, env=aged(offline_agent, 30))
    assert samples["pdagent_daemon_up"] == {(): 0}
    assert key_labels(alike[0])[1] == key_labels(alike[1])[1] == ("routing_key", "****0001")
    assert key_labels(alike[0])[0] != key_labels(alike[1])[0]
    assert events(samples, alike[0])["pending"] == 2 and events(samples, alike[1])["pending"] == 1
    assert events(samples, quoting)["pending"] == 1
    assert dict(key_labels(quoting))["routing_key"] == '****00"\\'  # the parser undid the escaping
    assert 30 <= samples["pdagent_oldest_pending_age_seconds"][()] < 90
    # Nothing of a key but its last 4 characters is shown.
    result = offline_agent.queue("metrics")
    assert not [key for key in alike if key[:-4] in result.stdout]


def test_a_user_who_cannot_read_the_spool_gets_one_line_and_no_metrics(offline_agent, other_user):
    assert_usage_error(offline_agent.queue("metrics", user=other_user), "pd-queue", "Permission denied")


def test_metrics_and_check_write_nothing(offline_agent):
    from test_pd_queue import build_known_spool, snapshot
    build_known_spool(offline_agent)
    before = snapshot(offline_agent.base)
    time.sleep(0.01)
    assert offline_agent.queue("metrics").returncode == 0
    assert offline_agent.queue("check").returncode == 2  # no daemon
    assert snapshot(offline_agent.base) == before
