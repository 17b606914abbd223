"""pd-zabbix: a Zabbix alert as an Events API v2 alert.

    pd-zabbix KEY SUBJECT MESSAGE

Zabbix runs it as a media type script with {ALERT.SENDTO}, {ALERT.SUBJECT} and
{ALERT.MESSAGE}. SUBJECT is `trigger`, `acknowledge` or `resolve`. MESSAGE
holds `field:value` lines, set up in the action (conf/zabbix/README.md):

    name:{TRIGGER.NAME}          id:{TRIGGER.ID}         status:{TRIGGER.STATUS}
    hostname:{HOST.NAME}         severity:{TRIGGER.SEVERITY}
    url:{TRIGGER.URL}            (optional) incident_key:...  (optional)

A line starts a field when the text before its first colon is one word (and
is no URL scheme, as in a line "https://..."); any other line continues the
value before it. Every field goes to custom_details.
"""

import sys

from pdagent.cli.parser import ArgumentParser
from pdagent.event import EventError, build_alert, utc_timestamp
from pdagent.formats import is_url  # whole-string check: no white space, a host
from pdagent.integrations.common import queue_alert, severity_of, warn

ACTIONS = ("trigger", "acknowledge", "resolve")

# Zabbix's severity names, and their numbers ({TRIGGER.NSEVERITY}) for setups
# that renamed the severities. A name it does not know becomes error.
SEVERITIES = {
    "DISASTER": "critical", "5": "critical",
    "HIGH": "critical", "4": "critical",
    "AVERAGE": "error", "3": "error",
    "WARNING": "warning", "2": "warning",
    "INFORMATION": "info", "1": "info",
    "NOT CLASSIFIED": "info", "0": "info",
}

# Zabbix starts the message with "NOTE: Escalation cancelled: <why>" when it
# stops an escalation (action or trigger disabled, host removed, ...): no
# recovery message will follow, so the incident is resolved now. Newer Zabbix
# versions spell it "canceled".
ESCALATION_CANCELLED = ("escalation cancelled", "escalation canceled")

LOOSE_TEXT_FIELD = "message"  # where lines before the first field go


def parse_message(message):
    """{field: value} of a `field:value` message; field names in lower case."""
    fields = {}
    current = None
    for line in message.splitlines():  # Zabbix's frontend saves messages with \r\n
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and name and not any(char.isspace() for char in name) \
                and not value.startswith("//"):
            current = name.lower()
            fields[current] = value.strip()
        elif current is not None:
            fields[current] += "\n" + line.strip()
        elif line.strip():
            current = LOOSE_TEXT_FIELD
            fields[current] = line.strip()
    return {name: value.strip() for name, value in fields.items()}


def alert_from_message(routing_key, subject, message, prog="pd-zabbix"):
    """The v2 alert body for one Zabbix alert; EventError if it cannot make one."""
    if not routing_key.strip():
        raise EventError("the routing key (the first argument: the media's 'Send to') is empty")
    action = subject.strip().lower()
    if action not in ACTIONS:
        raise EventError(f"the subject must be one of {', '.join(ACTIONS)}, not {subject!r}")
    fields = parse_message(message)
    needed = ("name", "status", "hostname") + (() if fields.get("incident_key") else ("id",))
    missing = [name for name in needed if not fields.get(name)]
    if missing:
        raise EventError("the message needs non-empty lines "
                         + ", ".join(f"'{name}:...'" for name in missing))
    if action == "trigger" and fields.get("note", "").lower().startswith(ESCALATION_CANCELLED):
        action = "resolve"
    url = fields.get("url", "")
    links = ()
    if is_url(url, ("http", "https")):
        links = ({"href": url, "text": "View in Zabbix"},)
    elif url:
        # A bad link must not cost the alert: it stays in custom_details only.
        warn(prog, f"url {url!r} is not an http(s) URL; sent without a link")
        url = ""
    hostname = fields["hostname"]
    return build_alert(
        routing_key.strip(), action,
        summary=f"{fields['name']} : {fields['status']} for {hostname}",
        dedup_key=fields.get("incident_key") or f"{fields['id']}-{hostname}",
        severity=severity_of(fields.get("severity", ""), SEVERITIES),
        source=hostname,
        timestamp=utc_timestamp(),
        custom_details=fields,
        links=links,
        client="Zabbix",
        client_url=url or None)


def build_parser():
    parser = ArgumentParser(
        prog="pd-zabbix",
        description="Queue a Zabbix alert as a PagerDuty (Events API v2) alert.")
    parser.add_argument("routing_key", metavar="KEY",
                        help="integration (routing) key: {ALERT.SENDTO}")
    parser.add_argument("subject", metavar="SUBJECT",
                        help="trigger, acknowledge or resolve: {ALERT.SUBJECT}")
    parser.add_argument("message", metavar="MESSAGE",
                        help="the 'field:value' lines: {ALERT.MESSAGE}")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return queue_alert(parser, lambda _locations: alert_from_message(
        args.routing_key, args.subject, args.message, parser.prog))


if __name__ == "__main__":
    sys.exit(main())
