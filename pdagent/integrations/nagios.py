"""pd-nagios: a Nagios (or Icinga) notification as an Events API v2 alert.

    pd-nagios -k KEY -t NOTIFICATIONTYPE -n {host,service} [-i KEY] -f MACRO=VALUE ...

The -f fields are Nagios macros by name (HOSTNAME, SERVICEDESC, SERVICESTATE,
...). All of them go to custom_details; the summary, dedup key, source and
severity are made from a few of them, which must therefore be given and not
be empty. conf/nagios/pagerduty_nagios.cfg (installed in /usr/share/doc/pdagent/examples/)
shows the commands to define.
"""

import re
import sys

from pdagent.cli.parser import ArgumentParser
from pdagent.cli.pd_send import (
    parse_field as key_value,  # pd-send's -f KEY=VALUE parser
)
from pdagent.event import EventError, build_alert, utc_timestamp
from pdagent.integrations.common import queue_alert, severity_of, warn

ACTIONS = {"PROBLEM": "trigger", "ACKNOWLEDGEMENT": "acknowledge", "RECOVERY": "resolve"}

# Nagios has no notification option to leave CUSTOM notifications (an
# operator's broadcast) out of a contact's, and they say nothing an incident
# should follow: they are passed over with a warning (common.warn), exit status 0.
IGNORED_TYPES = ("CUSTOM",)

# Nagios escapes these macros' text: a newline as a backslash and an n, a backslash
# as two. The example config single-quotes them, so that /bin/sh passes the escapes
# on as they are, and `unescaped` undoes them, so both a newline and a literal
# backslash-n (C:\new\data, a regex a\nb) arrive as the plugin wrote them.
ESCAPED_MACROS = ("LONGSERVICEOUTPUT", "LONGHOSTOUTPUT")
_NAGIOS_ESCAPE = re.compile(r"\\([\\n])")

# Nagios host states (UP, DOWN, UNREACHABLE) and service states (OK, WARNING,
# CRITICAL, UNKNOWN). OK and UP can reach a PROBLEM notification only through
# odd configurations (e.g. a custom notification command); they become info,
# the lowest severity, rather than an error. A state Nagios does not define
# becomes error, the severity pd-send sends when it is not told one.
SEVERITIES = {
    "CRITICAL": "critical", "DOWN": "critical", "UNREACHABLE": "critical",
    "WARNING": "warning",
    "UNKNOWN": "error",
    "OK": "info", "UP": "info",
}

# The macros each kind of notification is made from, in summary order.
SUMMARY_MACROS = {
    "service": ("SERVICEDESC", "SERVICESTATE", "HOSTNAME"),
    "host": ("HOSTNAME", "HOSTSTATE"),
}


def build_parser():
    parser = ArgumentParser(
        prog="pd-nagios",
        description="Queue a Nagios notification as a PagerDuty (Events API v2) alert.")
    parser.add_argument("-k", "--service-key", "--routing-key", dest="routing_key", required=True,
                        metavar="KEY", help="integration (routing) key, e.g. $CONTACTPAGER$")
    parser.add_argument("-t", "--notification-type", required=True, metavar="TYPE",
                        help="$NOTIFICATIONTYPE$: PROBLEM, ACKNOWLEDGEMENT or RECOVERY")
    parser.add_argument("-n", "--notification-source", dest="kind", required=True,
                        choices=tuple(SUMMARY_MACROS), help="a host or a service notification")
    parser.add_argument("-i", "--incident-key", "--dedup-key", dest="dedup_key", metavar="KEY",
                        help="dedup key (default: made from HOSTNAME and SERVICEDESC)")
    parser.add_argument("-f", "--field", dest="macros", action="append", type=key_value, default=[],
                        metavar="NAME=VALUE", help="a Nagios macro and its value (repeatable)")
    return parser


def unescaped(text):
    """Nagios's escapes undone, left to right: `\\n` a newline, `\\\\` a backslash (so
    `\\\\n` is a backslash and an n); any other backslash stays as it is."""
    return _NAGIOS_ESCAPE.sub(lambda escape: "\n" if escape.group(1) == "n" else "\\", text)


def alert_from_notification(routing_key, notification_type, kind, macros, dedup_key=None):
    """The v2 alert body for one notification; EventError if it cannot make one."""
    action = ACTIONS.get(notification_type.strip().upper())
    if action is None:
        raise EventError(f"notification type {notification_type!r} is not sent to PagerDuty "
                         f"(only {', '.join(ACTIONS)}); leave it out of the contact's "
                         "notification options")
    names = SUMMARY_MACROS[kind]
    missing = [name for name in names if not macros.get(name, "").strip()]
    if missing:
        raise EventError(f"a {kind} notification needs non-empty "
                         + ", ".join(f"-f {name}=..." for name in missing))
    host = macros["HOSTNAME"]
    if kind == "service":
        state = macros["SERVICESTATE"]
        default_dedup_key = f"event_source=service;host_name={host};service_desc={macros['SERVICEDESC']}"
    else:
        state = macros["HOSTSTATE"]
        default_dedup_key = f"event_source=host;host_name={host}"
    return build_alert(
        routing_key, action,
        summary="; ".join(f"{name}={macros[name]}" for name in names),
        dedup_key=dedup_key or default_dedup_key,
        severity=severity_of(state, SEVERITIES),
        source=host,
        component=macros["SERVICEDESC"] if kind == "service" else None,
        group=macros.get("HOSTGROUPNAME") or None,
        timestamp=utc_timestamp(),
        custom_details={name: unescaped(value) if name in ESCAPED_MACROS else value
                        for name, value in macros.items()})


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    notification_type = args.notification_type.strip().upper()
    if notification_type in IGNORED_TYPES:
        warn(parser.prog, f"{notification_type} notification not sent to PagerDuty "
                          f"(only {', '.join(ACTIONS)} are)")
        return 0
    return queue_alert(parser, lambda _locations: alert_from_notification(
        args.routing_key, args.notification_type, args.kind, dict(args.macros), args.dedup_key))


if __name__ == "__main__":
    sys.exit(main())
