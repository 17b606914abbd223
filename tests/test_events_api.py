"""pdagent/events_api.py: what each answer of the Events API means, Retry-After, proxies and CAs,
and one POST for real against the stand-in (and tinyproxy), never a mocked `requests`.

The daemon acting on these outcomes end to end is test_daemon.py's and test_faults_matrix.py's;
parse_retry_after against int() and email.utils over arbitrary text is test_differential.py's.
"""

import email.utils
import os

import pytest
from helpers import ProxyWanting407, Tinyproxy, closed_port, routing_key

from pdagent import __version__
from pdagent.event import build_alert
from pdagent.events_api import (
    EventsAPI,
    ca_bundle_for,
    classify_response,
    parse_retry_after,
    proxies_for,
)
from pdagent.outcome import DELIVERED, FAILED, REJECTED, THROTTLED, UNREACHABLE

KEY = routing_key(60)
NOW = 1_800_000_000.0

# (status, Retry-After header, kind, retry_after the outcome carries)
ANSWERS = [
    (200, None, DELIVERED, None),
    (202, "30", DELIVERED, None),           # a wait on success means nothing
    (299, None, DELIVERED, None),
    (400, None, REJECTED, None),            # the event is bad: err/ at once
    (400, "30", REJECTED, None),
    (403, None, REJECTED, None),
    (404, None, REJECTED, None),
    (413, None, REJECTED, None),
    (499, None, REJECTED, None),
    (408, "5", FAILED, 5.0),                # request timeout: the API's trouble, not the event's
    (429, "30", THROTTLED, 30.0),
    (429, None, THROTTLED, None),
    (429, "soon", THROTTLED, None),
    (407, "9", UNREACHABLE, 9.0),           # a proxy wanting credentials: the set-up's fault
    (500, None, FAILED, None),
    (502, "7", FAILED, 7.0),
    (503, " 12 ", FAILED, 12.0),
    (504, None, FAILED, None),
    (302, None, FAILED, None),              # redirects are not followed: an odd answer
    (100, None, FAILED, None),
    (600, None, FAILED, None),
]


@pytest.mark.parametrize("status, header, kind, retry_after", ANSWERS,
                         ids=[f"{row[0]}-{row[1]}" for row in ANSWERS])
def test_each_answer_means_one_kind(status, header, kind, retry_after):
    outcome = classify_response(status, '{"status":"x"}', header)
    assert (outcome.kind, outcome.status, outcome.retry_after) == (kind, status, retry_after)
    assert outcome.reason == f'HTTP {status}: {{"status":"x"}}'


def test_the_reason_is_one_line_of_at_most_500_characters_of_the_answer():
    outcome = classify_response(400, "bad\r\n\tevent  " + "x" * 1000, None)
    assert outcome.reason == "HTTP 400: bad event " + "x" * (500 - len("bad\r\n\tevent  "))
    assert "\n" not in outcome.reason and "\r" not in outcome.reason


RETRY_AFTERS = [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("", None),
    (None, None),
    ("-5", None),
    ("+5", None),
    ("1e3", None),
    ("٣", None),                           # int() reads it; a header's digits are ASCII
    ("soon", None),
    (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
    (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),   # a date past is no wait
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ("Wed, 31 Feb 2015 07:28:00 GMT", None),                 # no such day
]


@pytest.mark.parametrize("header, seconds", RETRY_AFTERS, ids=[repr(row[0]) for row in RETRY_AFTERS])
def test_retry_after_is_delta_seconds_or_an_http_date(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


# -- proxies and CAs, read once from the settings or the environment -------------------------------

@pytest.fixture
def clean_environment(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "no_proxy", "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_configured_proxy_wins_over_the_environment(clean_environment):
    clean_environment.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    assert proxies_for("https://events.example.com", "http://configured:8080") \
        == {"http": "http://configured:8080", "https": "http://configured:8080"}


def test_the_environments_proxy_is_used_unless_no_proxy_names_the_host(clean_environment):
    clean_environment.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    assert proxies_for("https://events.example.com", "")["https"] == "http://env-proxy:3128"
    clean_environment.setenv("NO_PROXY", "example.com")
    assert proxies_for("https://events.example.com", "") == {}
    assert proxies_for("https://other.example.org", "")["https"] == "http://env-proxy:3128"


def test_no_proxy_anywhere_means_none(clean_environment):
    assert proxies_for("https://events.example.com", "") == {}
    assert EventsAPI("https://events.example.com", 5).proxy is None


@pytest.mark.parametrize("configured, environment, expected", [
    ("/etc/pd/ca.pem", {"REQUESTS_CA_BUNDLE": "/r.pem", "CURL_CA_BUNDLE": "/c.pem"}, "/etc/pd/ca.pem"),
    ("", {"REQUESTS_CA_BUNDLE": "/r.pem", "CURL_CA_BUNDLE": "/c.pem"}, "/r.pem"),
    ("", {"CURL_CA_BUNDLE": "/c.pem"}, "/c.pem"),
    ("", {}, True),                         # the system's CAs; never False: TLS is always verified
])
def test_the_ca_bundle_is_configured_else_the_environments_else_the_systems(
        clean_environment, configured, environment, expected):
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    assert ca_bundle_for(configured) == expected
    assert EventsAPI("https://events.example.com", 5, ca_bundle=configured).session.verify == expected


def test_the_environment_is_read_once_at_start_up(clean_environment):
    clean_environment.setenv("HTTP_PROXY", "http://first:3128")
    api = EventsAPI("http://events.example.com", 5)
    clean_environment.setenv("HTTP_PROXY", "http://second:3128")
    assert api.proxy == "http://first:3128"
    assert api.session.trust_env is False


# -- one POST for real ---------------------------------------------------------------------------

def alert(dedup_key):
    return build_alert(KEY, "trigger", summary="sender test", source="host.example.com",
                       dedup_key=dedup_key)


def post(api, dedup_key):
    try:
        return api.post("alert", alert(dedup_key))
    finally:
        api.close()


def test_an_accepted_event_is_delivered_with_our_user_agent(standin):
    outcome = post(EventsAPI(standin.url, 5), "accepted")
    assert (outcome.kind, outcome.status) == (DELIVERED, 202)
    (received,) = standin.received()
    assert received["path"] == "/v2/enqueue" and received["body"] == alert("accepted")
    assert received["user_agent"] == f"pdagent/{__version__}"


def test_a_change_event_goes_to_its_own_path(standin):
    api = EventsAPI(standin.url, 5)
    try:
        outcome = api.post("change", {"routing_key": KEY, "payload": {"summary": "deployed",
                                                                      "source": "ci"}})
    finally:
        api.close()
    assert outcome.kind == DELIVERED
    assert [received["path"] for received in standin.received()] == ["/v2/change/enqueue"]


@pytest.mark.parametrize("rule, kind, status, retry_after", [
    ({"status": 429, "retry_after": 30}, THROTTLED, 429, 30.0),
    ({"status": 503, "retry_after": 4}, FAILED, 503, 4.0),
    ({"status": 500}, FAILED, 500, None),
    ({"status": 400}, REJECTED, 400, None),
    ({"status": 408}, FAILED, 408, None),
], ids=["429", "503", "500", "400", "408"])
def test_the_stand_ins_answers_are_classified_as_the_table_says(standin, rule, kind, status, retry_after):
    standin.set_faults([{**rule, "times": 1}])
    outcome = post(EventsAPI(standin.url, 5), "faulted")
    assert (outcome.kind, outcome.status, outcome.retry_after) == (kind, status, retry_after)


def test_an_invalid_event_is_rejected_by_the_api(standin):
    api = EventsAPI(standin.url, 5)
    try:
        outcome = api.post("alert", {"routing_key": KEY, "event_action": "trigger"})  # no payload
    finally:
        api.close()
    assert (outcome.kind, outcome.status) == (REJECTED, 400)


@pytest.mark.parametrize("action", ["reset", "close"])
def test_a_dropped_connection_is_unreachable(standin, action):
    standin.set_faults([{"action": action, "times": -1}])
    outcome = post(EventsAPI(standin.url, 5), "dropped")
    assert outcome.kind == UNREACHABLE and outcome.status is None
    assert outcome.reason.startswith("connection failed: ")


def test_a_refused_connection_is_unreachable():
    outcome = post(EventsAPI(f"http://127.0.0.1:{closed_port()}", 5), "refused")
    assert outcome.kind == UNREACHABLE and outcome.reason.startswith("connection failed: ")


def test_no_answer_in_time_is_a_failure_not_unreachable(standin):
    standin.set_faults([{"delay": 3, "times": 1}])
    outcome = post(EventsAPI(standin.url, 1), "slow")
    assert outcome.kind == FAILED and outcome.reason == "no answer within 1 s"


def test_through_a_configured_proxy(standin, tmp_path):
    os.chmod(tmp_path, 0o755)
    proxy = Tinyproxy(str(tmp_path))
    try:
        api = EventsAPI(standin.url, 5, proxy_url=proxy.url)
        assert api.proxy == proxy.url
        outcome = post(api, "proxied")
    finally:
        proxy.stop()
    assert outcome.kind == DELIVERED
    assert standin.bodies()[0]["dedup_key"] == "proxied"
    assert f"127.0.0.1:{standin.port}" in proxy.log_text()


def test_through_the_environments_proxy(standin, tmp_path, clean_environment):
    os.chmod(tmp_path, 0o755)
    proxy = Tinyproxy(str(tmp_path))
    try:
        clean_environment.setenv("HTTP_PROXY", proxy.url)
        api = EventsAPI(standin.url, 5)
        assert api.proxy == proxy.url
        outcome = post(api, "env-proxied")
    finally:
        proxy.stop()
    assert outcome.kind == DELIVERED
    assert f"127.0.0.1:{standin.port}" in proxy.log_text()


def test_a_proxy_wanting_credentials_is_unreachable_not_a_bad_event(standin):
    proxy = ProxyWanting407()
    try:
        outcome = post(EventsAPI(standin.url, 5, proxy_url=proxy.url), "407")
    finally:
        proxy.stop()
    assert (outcome.kind, outcome.status) == (UNREACHABLE, 407)
    assert standin.received() == []


def test_a_proxy_that_is_not_there_is_unreachable(standin):
    outcome = post(EventsAPI(standin.url, 5, proxy_url=f"http://127.0.0.1:{closed_port()}"), "no-proxy")
    assert outcome.kind == UNREACHABLE and outcome.reason.startswith("proxy error: ")
