"""pdagent/enqueue.py: the one path every v2 entry is queued by (pd-send, the integrations, the
library's queue_event): what it fills in, repairs and refuses, and what it writes.

pd-send and the library through real processes are test_pd_send.py's and test_library_api.py's;
which host name fills payload.source is test_source_host.py's.
"""

import json
import os
import re

import pytest
from helpers import routing_key

from pdagent.config import load_locations
from pdagent.enqueue import encode_v2_entry, queue_v2_event, queue_v2_events
from pdagent.event import MAX_BODY_BYTES, EventError, build_alert
from pdagent.spool.names import parse_file_name

KEY = routing_key(70)
AGENT_ID = "enqueue-agent-0001"
NOT_UTF8_WARNING = "text that is not valid UTF-8 is sent with U+FFFD in place of the bad bytes"


@pytest.fixture
def locations(offline_agent):
    with open(os.path.join(offline_agent.data_dir, "agent_id.txt"), "w") as id_file:
        id_file.write(AGENT_ID + "\n")
    return load_locations(offline_agent.config_path)


def alert(summary="disk full", **fields):
    return build_alert(KEY, "trigger", summary=summary, source="db1.example.com", **fields)


def encode(body, endpoint="alert"):
    """encode_v2_entry's (body sent, entry as JSON, warnings)."""
    warnings = []
    sent, data = encode_v2_entry(endpoint, body, AGENT_ID, "test", warn=warnings.append)
    assert data == data.decode("ascii").encode("ascii")  # every character past ASCII escaped
    return sent, json.loads(data), warnings


def test_an_event_is_queued_as_one_entry_in_pdq(offline_agent, locations):
    dedup_key, name = queue_v2_event(locations, "alert", alert(dedup_key="disk-db1"), queued_by="pd-send")
    assert dedup_key == "disk-db1"
    assert offline_agent.names("pdq") == [name] and offline_agent.names("tmp") == []
    assert parse_file_name(name)[1] == KEY
    entry = offline_agent.read("pdq", name)
    assert entry["endpoint"] == "alert" and entry["event"] == alert(dedup_key="disk-db1")
    assert entry["agent"]["agent_id"] == AGENT_ID and entry["agent"]["queued_by"] == "pd-send"


def test_a_trigger_without_a_dedup_key_gets_a_new_one(offline_agent, locations):
    first, name = queue_v2_event(locations, "alert", alert(), queued_by="pd-send")
    second, _ = queue_v2_event(locations, "alert", alert(), queued_by="pd-send")
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
    assert offline_agent.read("pdq", name)["event"]["dedup_key"] == first


def test_a_change_event_gets_no_dedup_key():
    sent, entry, _ = encode({"routing_key": KEY, "payload": {"summary": "deployed", "source": "ci"}},
                            endpoint="change")
    assert "dedup_key" not in sent and "dedup_key" not in entry["event"]


@pytest.mark.parametrize("body, reason", [
    ({"routing_key": KEY, "event_action": "acknowledge"}, "acknowledge needs a dedup key (-i)"),
    (alert(custom_details={"load": float("nan")}), "the event is not valid JSON: JSON has no NaN or infinity"),
    (alert(custom_details={"load": float("-inf")}), "the event is not valid JSON: JSON has no NaN or infinity"),
    ({**alert(), "routing_key": "ab\udcff" + "c" * 29}, "routing key must be valid UTF-8"),
], ids=["invalid", "NaN", "infinity", "routing key not UTF-8"])
def test_what_the_daemon_would_refuse_is_refused_and_nothing_is_written(offline_agent, locations, body,
                                                                         reason):
    with pytest.raises(EventError) as refused:
        queue_v2_event(locations, "alert", body, queued_by="pd-send")
    assert str(refused.value) == reason
    assert offline_agent.names("pdq") == [] and offline_agent.names("tmp") == []


def test_the_size_limit_is_on_the_entry_as_written():
    unpadded = len(encode_v2_entry("alert", alert(dedup_key="size", custom_details={"pad": ""}),
                                   AGENT_ID, "test")[1])
    exactly = alert(dedup_key="size", custom_details={"pad": "x" * (MAX_BODY_BYTES - unpadded)})
    assert len(encode_v2_entry("alert", exactly, AGENT_ID, "test")[1]) == MAX_BODY_BYTES
    over = alert(dedup_key="size", custom_details={"pad": "x" * (MAX_BODY_BYTES - unpadded + 1)})
    with pytest.raises(EventError) as refused:
        encode_v2_entry("alert", over, AGENT_ID, "test")
    assert str(refused.value) == (f"event is {MAX_BODY_BYTES + 1} bytes; "
                                  f"the Events API takes at most {MAX_BODY_BYTES}")


def test_bytes_that_were_not_utf8_are_sent_as_u_fffd_with_one_warning():
    body = alert(summary="Temp 45\udcb0C on r\u00e9seau", dedup_key="temp-\udcff",
                 custom_details={"out\udce9": ["caf\udce9", {"deep": "\udc80"}]},
                 links=[{"href": "https://x.example/", "text": "r\udce9sum\udce9"}])
    sent, entry, warnings = encode(body)
    assert sent == entry["event"]
    assert entry["event"]["payload"]["summary"] == "Temp 45\ufffdC on r\u00e9seau"
    assert entry["event"]["dedup_key"] == "temp-\ufffd"
    assert entry["event"]["payload"]["custom_details"] == {"out\ufffd": ["caf\ufffd", {"deep": "\ufffd"}]}
    assert entry["event"]["links"] == [{"href": "https://x.example/", "text": "r\ufffdsum\ufffd"}]
    assert warnings == [NOT_UTF8_WARNING]


def test_a_surrogate_that_stands_for_no_byte_is_u_fffd_too():
    _, entry, warnings = encode(alert(summary="json \ud800 escape"))
    assert entry["event"]["payload"]["summary"] == "json \ufffd escape"
    assert warnings == [NOT_UTF8_WARNING]


def test_utf8_decoded_as_ascii_comes_back_whole_and_unwarned():
    """Python 3.6 in the C locale hands over UTF-8 bytes as escapes: they are good text."""
    as_ascii = "r\u00e9seau \u2713".encode("utf-8").decode("ascii", "surrogateescape")
    _, entry, warnings = encode(alert(summary=as_ascii))
    assert entry["event"]["payload"]["summary"] == "r\u00e9seau \u2713"
    assert warnings == []


def test_valid_text_is_sent_as_given_without_a_warning():
    body = alert(summary="\u65e5\u672c \U0001f525 \u2028 tab\there", dedup_key="k\u00e9y",
                 custom_details={"k\u00e9": "v"})
    sent, entry, warnings = encode(body)
    assert sent == entry["event"] == body and warnings == []


def test_an_over_long_summary_is_cut_with_a_warning():
    sent, entry, warnings = encode(alert(summary="s" * 1500))
    assert entry["event"]["payload"]["summary"] == "s" * 1024 == sent["payload"]["summary"]
    assert warnings == ["summary is longer than 1024 characters; truncated"]


def nested(depth):
    value = "bottom"
    for _ in range(depth):
        value = {"deeper": value}
    return value


def test_events_queued_together_each_get_their_own_outcome(offline_agent, locations):
    change = {"routing_key": KEY, "payload": {"summary": "deployed", "source": "ci"}}
    outcomes = queue_v2_events(locations, [
        ("alert", alert(dedup_key="first"), None),
        ("alert", dict(alert(), event_action="explode"), None),
        ("alert", alert(custom_details=nested(100_000)), None),
        ("change", change, None),
    ], "test")
    assert outcomes[0][0] == "first"
    assert isinstance(outcomes[1], EventError) and "event_action" in str(outcomes[1])
    assert isinstance(outcomes[2], EventError) and str(outcomes[2]) == "the event is nested too deeply"
    assert outcomes[3][0] is None
    names = [outcomes[0][1], outcomes[3][1]]
    assert sorted(offline_agent.names("pdq")) == sorted(names)
    assert [offline_agent.read("pdq", name)["endpoint"] for name in names] == ["alert", "change"]

