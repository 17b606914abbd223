"""Unit tests of pdagent.event (v2 bodies, v1 conversion, ISO 8601) and pdagent.jsonwrite."""

import copy
import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdagent import event as ev
from pdagent.jsonwrite import dumps

KEY = "R0utingKey0000000000000000000001"

ALERT_FIELDS = {"routing_key", "event_action", "dedup_key", "payload", "images", "links",
                "client", "client_url"}
ALERT_PAYLOAD_FIELDS = {"summary", "source", "severity", "timestamp", "component", "group",
                        "class", "custom_details"}


def full_trigger():
    return {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "disk-full-web01",
        "payload": {
            "summary": "Disk full on web01",
            "source": "web01.example.com",
            "severity": "critical",
            "timestamp": "2026-11-23T16:40:00.123Z",
            "component": "disk",
            "group": "web",
            "class": "storage",
            "custom_details": {"free": "0%", "nested": [1, 2.5, None, True]},
        },
        "images": [{"src": "https://example.com/g.png", "href": "https://example.com", "alt": "graph"}],
        "links": [{"href": "https://wiki.example.com/runbook", "text": "Runbook"},
                  {"href": "http://plain.example.com"}],
        "client": "Nagios",
        "client_url": "https://nagios.example.com",
    }


def full_change():
    return {
        "routing_key": KEY,
        "payload": {
            "summary": "Deployed v1.2.3",
            "source": "ci.example.com",
            "timestamp": "2026-11-23T16:40:00Z",
            "custom_details": {"build": 42},
        },
        "links": [{"href": "https://ci.example.com/42", "text": "Build 42"}],
    }


def edited(base, path, value):
    """A deep copy of `base` with the field at `path` (a tuple) set, or deleted when value is DELETE."""
    body = copy.deepcopy(base)
    target = body
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


DELETE = object()


# -- validate(): alerts ------------------------------------------------------------------------

def test_complete_alert_and_change_are_valid():
    assert ev.validate("alert", full_trigger()) == []
    assert ev.validate("change", full_change()) == []


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_need_only_key_action_and_dedup_key(action):
    assert ev.validate("alert", {"routing_key": KEY, "event_action": action, "dedup_key": "k"}) == []
    problems = ev.validate("alert", {"routing_key": KEY, "event_action": action})
    assert problems == [f"{action} needs a dedup key (-i)"]


def test_minimal_trigger_is_valid():
    body = {"routing_key": KEY, "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "info"}}
    assert ev.validate("alert", body) == []


ALERT_PROBLEMS = [
    # (path, value, expected text in the first problem)
    (("unknown",), 1, "field 'unknown' is not defined by the Events API v2"),
    (("routing_key",), DELETE, "routing key (-k) must not be empty"),
    (("routing_key",), "", "routing key (-k) must not be empty"),
    (("routing_key",), 12, "routing key (-k) must not be empty"),
    (("routing_key",), "a/b", "must not contain '/'"),
    (("routing_key",), "a b", "must not contain '/'"),
    (("routing_key",), "a\tb", "must not contain '/'"),
    (("routing_key",), "a\0b", "must not contain '/'"),
    (("routing_key",), "k" * 201, "too long"),
    (("routing_key",), "é" * 101, "too long"),  # 202 bytes in UTF-8
    (("event_action",), DELETE, "event_action must be one of trigger, acknowledge, resolve"),
    (("event_action",), "Trigger", "event_action must be one of"),
    (("event_action",), "change", "event_action must be one of"),
    (("dedup_key",), "", "dedup_key must be a non-empty string"),
    (("dedup_key",), 5, "dedup_key must be a non-empty string"),
    (("dedup_key",), "d" * 256, "dedup_key is longer than 255 characters"),
    (("client",), 3, "client must be a string"),
    (("client_url",), ["x"], "client_url must be a string"),
    (("images",), {"src": "https://x"}, "images must be a list"),
    (("images",), [{"src": "http://insecure.example.com/x.png"}], "each image needs an https URL"),
    (("images",), [{"alt": "no src"}], "each image needs an https URL"),
    (("images",), ["https://x.example.com"], "each image needs an https URL"),
    (("images",), [{"src": "https://x.example.com", "title": "t"}], "an image has only src, href and alt"),
    (("images",), [{"src": "https://x.example.com", "alt": 1}], "an image has only src, href and alt"),
    (("links",), "https://x.example.com", "links must be a list"),
    (("links",), [{"href": "ftp://x.example.com"}], "each link needs an http(s) URL"),
    (("links",), [{"text": "no href"}], "each link needs an http(s) URL"),
    (("links",), [{"href": "https://x.example.com", "rel": "r"}], "a link has only href and text"),
    (("links",), [{"href": "https://x.example.com", "text": 7}], "a link has only href and text"),
    (("payload",), DELETE, "payload must be an object"),
    (("payload",), "text", "payload must be an object"),
    (("payload", "severity_level"), "x", "payload field 'severity_level' is not defined"),
    (("payload", "summary"), DELETE, "summary (-d) must not be blank"),
    (("payload", "summary"), "  \t", "summary (-d) must not be blank"),
    (("payload", "summary"), 42, "summary (-d) must not be blank"),
    (("payload", "summary"), "s" * 1025, "summary is longer than 1024 characters"),
    (("payload", "source"), DELETE, "payload.source must not be blank"),
    (("payload", "source"), " ", "payload.source must not be blank"),
    (("payload", "severity"), DELETE, "severity must be one of critical, error, warning, info"),
    (("payload", "severity"), "fatal", "severity must be one of"),
    (("payload", "severity"), "Error", "severity must be one of"),
    (("payload", "component"), 1, "payload.component must be a string"),
    (("payload", "group"), None, "payload.group must be a string"),
    (("payload", "class"), {}, "payload.class must be a string"),
    (("payload", "timestamp"), "yesterday", "timestamp must be ISO 8601"),
    (("payload", "timestamp"), 1795450952, "timestamp must be ISO 8601"),
]


def test_summary_of_exactly_1024_characters_and_dedup_key_of_255_are_fine():
    body = edited(full_trigger(), ("payload", "summary"), "s" * 1024)
    body["dedup_key"] = "d" * 255
    assert ev.validate("alert", body) == []


def test_every_problem_is_reported():
    body = {"routing_key": "a b", "event_action": "explode", "bogus": 1}
    problems = ev.validate("alert", body)
    assert "field 'bogus' is not defined by the Events API v2" in problems
    assert any("routing key must not contain" in p for p in problems)
    assert any("event_action must be one of" in p for p in problems)


def test_acknowledge_with_payload_checks_the_payload_but_needs_no_summary():
    body = {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "k",
            "payload": {"component": "disk"}}
    assert ev.validate("alert", body) == []
    body["payload"]["timestamp"] = "soon"
    assert len(ev.validate("alert", body)) == 1


@pytest.mark.parametrize("body", [None, [], "x", 1])
def test_body_that_is_not_an_object(body):
    assert ev.validate("alert", body) == ["the event must be a JSON object"]
    assert ev.validate("change", body) == ["the event must be a JSON object"]


# -- validate(): change events ------------------------------------------------------------------

CHANGE_PROBLEMS = [
    (("event_action",), "trigger", "field 'event_action' is not defined"),
    (("dedup_key",), "k", "field 'dedup_key' is not defined"),
    (("images",), [], "field 'images' is not defined"),
    (("client",), "c", "field 'client' is not defined"),
    (("routing_key",), "", "routing key (-k) must not be empty"),
    (("routing_key",), "x/y", "must not contain '/'"),
    (("payload",), DELETE, "payload must be an object"),
    (("payload", "severity"), "error", "payload field 'severity' is not defined"),
    (("payload", "component"), "c", "payload field 'component' is not defined"),
    (("payload", "summary"), DELETE, "summary (-d) must not be blank"),
    (("payload", "summary"), "", "summary (-d) must not be blank"),
    (("payload", "summary"), "s" * 1025, "summary is longer than 1024 characters"),
    (("payload", "source"), 5, "payload.source must be a string"),
    (("payload", "timestamp"), "2026-02-30T00:00:00Z", "timestamp must be ISO 8601"),
    (("links",), [{"href": "nope"}], "each link needs an http(s) URL"),
]


RULES = ([("alert", full_trigger, *rule) for rule in ALERT_PROBLEMS]
         + [("change", full_change, *rule) for rule in CHANGE_PROBLEMS])


@pytest.mark.parametrize("endpoint, valid_body, path, value, expected", RULES,
                         ids=[f"{e}:{'.'.join(p)}={v if v is not DELETE else 'missing'!r:.30}"
                              for e, _, p, v, _ in RULES])
def test_validation_rule(endpoint, valid_body, path, value, expected):
    """One thing wrong with an otherwise valid body: exactly one problem, on one line."""
    problems = ev.validate(endpoint, edited(valid_body(), path, value))
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert "\n" not in problems[0]


def test_change_needs_no_source_or_severity():
    assert ev.validate("change", {"routing_key": KEY, "payload": {"summary": "deployed"}}) == []


# -- building bodies ----------------------------------------------------------------------------

def test_build_alert_maps_every_option():
    body = ev.build_alert(
        KEY, "trigger", summary="sum", dedup_key="dk", severity="warning", source="src",
        component="comp", group="grp", event_class="cls", timestamp="2026-11-23T16:40:00Z",
        custom_details={"a": "b"}, links=[{"href": "https://l"}], images=[{"src": "https://i"}],
        client="cl", client_url="https://cu")
    assert body == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "dk",
        "payload": {"summary": "sum", "source": "src", "severity": "warning",
                    "timestamp": "2026-11-23T16:40:00Z", "component": "comp", "group": "grp",
                    "class": "cls", "custom_details": {"a": "b"}},
        "links": [{"href": "https://l"}], "images": [{"src": "https://i"}],
        "client": "cl", "client_url": "https://cu"}
    assert ev.validate("alert", body) == []


def test_build_alert_leaves_out_what_was_not_given():
    assert ev.build_alert(KEY, "resolve", dedup_key="dk") == {
        "routing_key": KEY, "event_action": "resolve", "dedup_key": "dk"}
    trigger = ev.build_alert(KEY, "trigger", summary="s", source="h", custom_details={})
    assert trigger["payload"] == {"summary": "s", "source": "h", "severity": "error"}


def test_build_change():
    body = ev.build_change(KEY, summary="deployed", source="ci", timestamp="2026-11-23T16:40:00Z",
                           custom_details={"v": "1"}, links=[{"href": "https://ci"}])
    assert body == {"routing_key": KEY,
                    "payload": {"summary": "deployed", "source": "ci",
                                "timestamp": "2026-11-23T16:40:00Z", "custom_details": {"v": "1"}},
                    "links": [{"href": "https://ci"}]}
    assert ev.validate("change", body) == []


def test_truncate_summary():
    body = ev.build_alert(KEY, "trigger", summary="x" * 2000, source="h")
    assert ev.truncate_summary(body) is True
    assert body["payload"]["summary"] == "x" * 1024
    assert ev.truncate_summary(body) is False
    assert ev.truncate_summary({"routing_key": KEY}) is False


def test_new_dedup_key_is_32_random_hex_digits():
    keys = {ev.new_dedup_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)


def test_utc_timestamp_format():
    assert ev.utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert ev.utc_timestamp(1795452000.25) == "2026-11-23T16:40:00.250Z"
    ev.check_timestamp(ev.utc_timestamp())


def test_make_entry():
    entry = ev.make_entry("alert", {"x": 1}, "agent-1", "me", queued_at="2026-11-23T16:40:00.000Z")
    assert entry == {"endpoint": "alert", "event": {"x": 1},
                     "agent": {"agent_id": "agent-1", "queued_by": "me",
                               "queued_at": "2026-11-23T16:40:00.000Z"}}
    ev.check_timestamp(ev.make_entry("change", {}, None, "me")["agent"]["queued_at"])


# -- v1 (original agent) entries ------------------------------------------------------------------

V1_TRIGGER = {
    "service_key": KEY, "event_type": "trigger", "incident_key": "inc-1",
    "description": "CPU high", "details": {"load": "9"}, "client": "Zabbix",
    "client_url": "https://zabbix.example.com",
    "agent": {"agent_id": "x", "queued_by": "pd-send", "queued_at": "2014-01-01T00:00:00Z"},
}


def test_v1_trigger_to_v2():
    assert ev.is_v1_entry(V1_TRIGGER)
    body = ev.v1_to_v2(V1_TRIGGER, "host.example.com")
    assert body == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "inc-1",
        "payload": {"summary": "CPU high", "source": "host.example.com", "severity": "error",
                    "custom_details": {"load": "9"}},
        "client": "Zabbix", "client_url": "https://zabbix.example.com"}
    assert ev.validate("alert", body) == []


def test_v1_conversion_keeps_nothing_v2_does_not_define():
    entry = dict(V1_TRIGGER, unknown_v1_field="x", contexts=[{"type": "link", "href": "https://x"}])
    body = ev.v1_to_v2(entry, "h")
    assert set(body) <= ALERT_FIELDS
    assert set(body["payload"]) <= ALERT_PAYLOAD_FIELDS
    assert "agent" not in body and "unknown_v1_field" not in body


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_v1_acknowledge_and_resolve_carry_no_payload(action):
    entry = {"service_key": KEY, "event_type": action, "incident_key": "inc-1", "details": {}}
    body = ev.v1_to_v2(entry, "h")
    assert body == {"routing_key": KEY, "event_action": action, "dedup_key": "inc-1"}
    assert ev.validate("alert", body) == []


def test_v1_trigger_without_details_or_incident_key():
    body = ev.v1_to_v2({"service_key": KEY, "event_type": "trigger", "description": "d",
                        "details": {}}, "h")
    assert body == {"routing_key": KEY, "event_action": "trigger",
                    "payload": {"summary": "d", "source": "h", "severity": "error"}}


def test_entry_to_request_for_both_formats():
    long_v1 = dict(V1_TRIGGER, description="y" * 3000)
    endpoint, body = ev.entry_to_request(long_v1, "h")
    assert endpoint == "alert" and body["payload"]["summary"] == "y" * 1024
    v2 = ev.make_entry("change", full_change(), "a", "me")
    assert ev.entry_to_request(v2, "h") == ("change", full_change())
    with pytest.raises(ev.EventError, match="neither v2 nor original-agent v1"):
        ev.entry_to_request({"endpoint": "other", "event": {}}, "h")
    with pytest.raises(ev.EventError, match="dedup key"):
        ev.entry_to_request({"service_key": KEY, "event_type": "resolve"}, "h")
    assert not ev.is_v1_entry(v2)


# -- ISO 8601 ----------------------------------------------------------------------------------

VALID_TIMESTAMPS = [
    "2026-11-23T16:40:00Z",
    "2026-11-23T16:40:00.123Z",
    "2026-11-23T16:40:00.123456789Z",
    "2026-11-23T16:40:00,5Z",
    "2026-11-23T16:40Z",
    "2026-11-23T16:40:00",
    "2026-11-23 16:40:00",
    "2026-11-23T16:40:00+05:30",
    "2026-11-23T16:40:00-0800",
    "2026-11-23T16:40:00+01",
    "2026-11-23T16:40:00.5-03:00",
    "2024-02-29T00:00:00Z",
    "2000-02-29T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999+23:59",
    "2026-01-31T00:00:00Z",
]

INVALID_TIMESTAMPS = [
    "",
    "yesterday",
    "2026-11-23",
    "2026-11-23T",
    "20261123T164000Z",
    "2026/11/23T16:40:00Z",
    "2026-11-23X16:40:00Z",
    "26-11-23T16:40:00Z",
    "2026-1-23T16:40:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-11-23T24:00:00Z",
    "2026-11-23T16:60:00Z",
    "2026-11-23T16:40:61Z",
    "2026-12-31T23:59:60Z",  # a leap second: datetime has none
    "0000-01-01T00:00:00Z",  # nor a year 0
    "2026-11-23T16:40:00+0:530",
    "2026-11-23T16:40:00+053:0",
    "2026-11-23T16:40:00.²Z",
    "2026-11-23T16:40:0²Z",
    "2026-11-23T16Z",
    "2026-11-23T16:40:00.Z",
    "2026-11-23T16:40.5Z",
    "2026-11-23T16:40:00+5",
    "2026-11-23T16:40:00+05:3",
    "2026-11-23T16:40:00Z+01:00",
    "2026-11-23T16:40:00 Z",
    "2026-11-23T16:40:00Z ",
    " 2026-11-23T16:40:00Z",
    "2026-11-23T1a:40:00Z",
    "２０２６-11-23T16:40:00Z",  # full-width digits
    "2026-11-23T16:40:00.1a2Z",
]


@pytest.mark.parametrize("text", VALID_TIMESTAMPS)
def test_valid_iso_8601(text):
    ev.check_timestamp(text)


@pytest.mark.parametrize("text", INVALID_TIMESTAMPS)
def test_invalid_iso_8601(text):
    with pytest.raises(ev.EventError, match="timestamp must be ISO 8601"):
        ev.check_timestamp(text)


@pytest.mark.parametrize("value", [None, 1795452000, 1.5, ["2026-11-23T16:40:00Z"]])
def test_timestamp_that_is_not_text(value):
    with pytest.raises(ev.EventError):
        ev.check_timestamp(value)


@pytest.mark.parametrize("text", ["2026-11-23T16:40:00+05:99", "2026-11-23T16:40:00+99:00",
                                  "2026-11-23T16:40:00-2400"])
def test_utc_offset_out_of_range_is_invalid(text):
    with pytest.raises(ev.EventError):
        ev.check_timestamp(text)


# -- jsonwrite.dumps -------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_dumps_equals_compact_json_dumps(value):
    text = dumps(value)
    assert text == json.dumps(value, separators=(",", ":"))
    assert all(ord(char) < 128 for char in text)  # str.isascii() is Python 3.7+
    assert json.loads(text) == value


@given(st.lists(JSON_VALUES, max_size=3))
@settings(max_examples=50, deadline=None)
def test_dumps_of_tuples_equals_lists(items):
    assert dumps(tuple(items)) == json.dumps(items, separators=(",", ":"))


@pytest.mark.parametrize("value", ["\x00\x1f\"\\/\u2028\U0001f600é", -0.0, 1e300, 5e-324, 2 ** 70,
                                   {"": ""}, [[], {}]])
def test_dumps_examples(value):
    assert dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value, error", [
    (math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
    ({1: "x"}, TypeError), ({None: "x"}, TypeError), (object(), TypeError), ({"a": {1, 2}}, TypeError),
    (b"bytes", TypeError), ("\ud800", UnicodeEncodeError),
])
def test_dumps_refuses_what_is_not_portable_json(value, error):
    with pytest.raises(error):
        dumps(value)
