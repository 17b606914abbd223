"""pd-sensu: a Sensu event (JSON on standard input) as an Events API v2 alert.

    pd-sensu -k KEY [-i KEY] < event.json

Runs as a Sensu pipe handler (conf/sensu/pagerduty_handler.json). Takes both
Sensu 1.x events (client.name, check.name, action) and Sensu Go events
(entity.metadata.name, check.metadata.name, no action). The whole event goes
to custom_details.
"""

import json
import sys

from pdagent.cli.parser import ArgumentParser
from pdagent.event import EventError, build_alert, utc_timestamp
from pdagent.hostname import default_source
from pdagent.integrations.common import queue_alert

# Sensu 1.x's `action`; "flapping" and anything else it may send trigger.
ACTIONS = {"create": "trigger", "resolve": "resolve"}

# check.status is a check's exit status, by the Nagios plugin convention.
SEVERITIES = {0: "info", 1: "warning", 2: "critical"}


def _text(event, *path):
    """The non-blank string at `path` in nested objects, or None."""
    value = event
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON value")  # the Events API takes no NaN or Infinity


def read_event(stream):
    """The Sensu event on `stream` (binary), as a dict; EventError if it is not one.

    Bytes that are not UTF-8 are kept as surrogates: queue_v2_event sends them as U+FFFD.
    """
    try:
        event = json.loads(stream.read().decode("utf-8", "surrogateescape"), parse_constant=_reject_constant)
    except ValueError as error:
        raise EventError(f"standard input is not a valid Sensu event: {error}") from None
    if not isinstance(event, dict):
        raise EventError("standard input must hold one JSON object (a Sensu event)")
    return event


def _action(event, status):
    if "action" in event:
        return ACTIONS.get(event["action"], "trigger")
    # Sensu Go sends no action: a check back at status 0 is its resolution.
    return "resolve" if status == 0 else "trigger"


def alert_from_event(routing_key, event, dedup_key=None, default_host=None):
    """The v2 alert body for one Sensu event; EventError if it cannot make one."""
    host = _text(event, "client", "name") or _text(event, "entity", "metadata", "name")
    check = _text(event, "check", "name") or _text(event, "check", "metadata", "name")
    dedup_key = dedup_key or (f"{host}/{check}" if host and check else _text(event, "id"))
    if not dedup_key:
        raise EventError("the event names no client (or entity) and check, and has no id; "
                         "give a dedup key with -i")
    output = (_text(event, "check", "output") or "").strip()
    status = event["check"].get("status") if isinstance(event.get("check"), dict) else None
    if not isinstance(status, int) or isinstance(status, bool):  # JSON true would equal 1
        status = None
    return build_alert(
        routing_key, _action(event, status),
        summary=f"{dedup_key} : {output}" if output else dedup_key,
        dedup_key=dedup_key,
        severity=SEVERITIES.get(status, "error"),
        source=host or default_host,
        component=check,
        timestamp=utc_timestamp(),
        custom_details=event,
        client="Sensu")


def build_parser():
    parser = ArgumentParser(
        prog="pd-sensu",
        description="Queue a Sensu event, read as JSON from standard input, "
                    "as a PagerDuty (Events API v2) alert.")
    parser.add_argument("-k", "--service-key", "--routing-key", dest="routing_key", required=True,
                        metavar="KEY", help="integration (routing) key")
    parser.add_argument("-i", "--incident-key", "--dedup-key", dest="dedup_key", metavar="KEY",
                        help="dedup key (default: <client>/<check>, else the event id)")
    return parser


def main(argv=None, stdin=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    stdin = sys.stdin.buffer if stdin is None else stdin
    return queue_alert(parser, lambda locations: alert_from_event(
        args.routing_key, read_event(stdin), args.dedup_key,
        default_host=default_source(locations)))


if __name__ == "__main__":
    sys.exit(main())
