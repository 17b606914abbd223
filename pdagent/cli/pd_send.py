"""pd-send: queue one event on the local spool for pdagentd to deliver.

Fast and offline by design: it imports neither requests nor python-daemon,
never resolves a host name, and returns as soon as the event is on disk. Of
the configuration it reads only where the spool is (config.load_locations),
so no daemon-only setting can stop a user from queueing.
"""

import sys

from pdagent.cli import utf8_stdout
from pdagent.config import ConfigError, load_locations
from pdagent.enqueue import queue_v2_event
from pdagent.event import (
    ALERT_ACTIONS,
    SEVERITIES,
    EventError,
    build_alert,
    build_change,
    check_timestamp,
    utc_timestamp,
)
from pdagent.hostname import default_source
from pdagent.spool.files import SpoolError

DESCRIPTION = "Queue up a trigger, acknowledge, resolve or change event to PagerDuty."
EPILOG = "The event is written to the local spool and sent by the pdagentd daemon."


def parse_field(text):
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise ValueError(text)
    return key, value


parse_field.__name__ = "KEY=VALUE"  # argparse names it in its error: "invalid KEY=VALUE value"


def _link(text):
    href, _, label = text.partition("|")
    link = {"href": href}
    if label:
        link["text"] = label
    return link


def _image(text):
    src, _, rest = text.partition("|")
    alt, _, href = rest.partition("|")
    image = {"src": src}
    if alt:
        image["alt"] = alt
    if href:
        image["href"] = href
    return image


# One table drives both parsers: argparse (help and every error) and the fast path.
OPTIONS = [
    (("-k", "--service-key", "--routing-key"),
     {"dest": "routing_key", "metavar": "SERVICE_KEY", "help": "integration (routing) key of the service"}),
    (("-t", "--event-type"), {"choices": ALERT_ACTIONS + ("change",), "help": "type of event"}),
    (("-d", "--description"), {"help": "short description (payload.summary)"}),
    (("-i", "--incident-key", "--dedup-key"),
     {"dest": "dedup_key", "metavar": "INCIDENT_KEY", "help": "incident (dedup) key"}),
    (("-c", "--client"), {"help": "name of the monitoring client"}),
    (("-u", "--client-url"), {"help": "URL of the monitoring client"}),
    (("-f", "--field"), {"dest": "fields", "action": "append", "type": parse_field, "default": [],
                             "metavar": "KEY=VALUE", "help": "add a custom detail (repeatable)"}),
    (("-q", "--quiet"), {"action": "store_true", "help": "print nothing on success"}),
    (("--severity",), {"choices": SEVERITIES, "type": str.lower,
                        "help": "how bad it is, in any case (default: error)"}),
    (("--source",), {"help": "affected system (default: this host's FQDN)"}),
    (("--component",), {"help": "affected component"}),
    (("--group",), {"help": "logical group of components"}),
    (("--class",), {"dest": "event_class", "help": "class or type of the event"}),
    (("--timestamp",), {"help": "when it happened, ISO 8601 (default: when pd-send ran)"}),
    (("--link",), {"dest": "links", "action": "append", "type": _link, "default": [],
                       "metavar": "URL[|TEXT]",
                       "help": "add a link shown with the alert (repeatable), e.g. "
                               "--link 'https://wiki.example.com/runbook|Runbook'"}),
    (("--image",), {"dest": "images", "action": "append", "type": _image, "default": [],
                        "metavar": "SRC[|ALT[|HREF]]",
                        "help": "add an image: an https URL, optional alt text and link (repeatable)"}),
    (("--event-file",), {"metavar": "FILE",
                             "help": "queue a complete v2 event from a JSON file ('-' for stdin)"}),
]


def _dest(flags, spec):
    """The attribute argparse stores an option in: `dest`, else its first long flag."""
    long_flag = next(flag for flag in flags if flag.startswith("--"))
    return spec.get("dest") or long_flag[2:].replace("-", "_")


def build_parser():
    import argparse

    from pdagent.cli.parser import ArgumentParser
    parser = ArgumentParser(
        prog="pd-send", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for flags, spec in OPTIONS:
        parser.add_argument(*flags, **spec)
    return parser


class _Args:
    def __init__(self, values):
        self.__dict__.update(values)


def fast_parse(argv):
    """Parse a plain, well-formed command line without importing argparse, or return None.

    argparse's imports are most of what pd-send's start-up could lose; anything unusual
    (help, an error, an abbreviation, -kKEY, a value starting with '-')
    returns None so argparse handles it. Whatever this returns, argparse
    returns too (tests/test_differential.py).
    """
    specs = {}
    values = {}
    for flags, spec in OPTIONS:
        dest = _dest(flags, spec)
        for flag in flags:
            specs[flag] = (dest, spec)
        default = spec.get("default", False if spec.get("action") == "store_true" else None)
        values[dest] = list(default) if isinstance(default, list) else default
    index = 0
    while index < len(argv):
        flag, equals, inline = argv[index].partition("=") if argv[index].startswith("--") \
            else (argv[index], "", "")
        if flag not in specs:
            return None
        dest, spec = specs[flag]
        if spec.get("action") == "store_true":
            if equals:
                return None
            values[dest] = True
            index += 1
            continue
        if equals:
            value, index = inline, index + 1
        elif index + 1 < len(argv):
            value, index = argv[index + 1], index + 2
        else:
            return None
        if value.startswith("-"):  # an option to argparse, or a value it treats specially ('--')
            return None
        try:
            value = spec["type"](value) if "type" in spec else value
        except ValueError:
            return None
        if value not in spec.get("choices", (value,)):
            return None
        if spec.get("action") == "append":
            values[dest].append(value)
        else:
            values[dest] = value
    return _Args(values)


_EVENT_FLAGS = ("description", "dedup_key", "client", "client_url", "fields", "source", "severity",
                "component", "group", "event_class", "timestamp", "links", "images")


def _event_from_file(args):
    if any(getattr(args, flag) for flag in _EVENT_FLAGS):
        raise EventError("--event-file takes the whole event; use only -k, -t and -q with it")
    try:
        if args.event_file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.event_file, "rb") as event_file:
                data = event_file.read()
    except OSError as error:
        raise EventError(f"cannot read {args.event_file}: {error.strerror or error}") from None
    text = data.decode("utf-8", "surrogateescape")  # bytes that are not UTF-8: see queue_v2_event
    import json  # only here: the usual path does not import json (start-up)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise EventError(f"{args.event_file} is not valid JSON: {str(error) or 'nested too deeply'}") from None
    if not isinstance(body, dict):
        raise EventError(f"{args.event_file} must hold one JSON object")
    if args.routing_key and body.setdefault("routing_key", args.routing_key) != args.routing_key:
        raise EventError("-k differs from the routing_key in the event file")
    if args.event_type == "change" or (args.event_type is None and "event_action" not in body):
        return "change", body
    if args.event_type and body.setdefault("event_action", args.event_type) != args.event_type:
        raise EventError("-t differs from the event_action in the event file")
    return "alert", body


def _event_from_flags(args, locations, warn):
    if args.routing_key is None:
        raise EventError("the following arguments are required: -k/--service-key")
    if args.routing_key == "":
        raise EventError("the routing key (-k/--service-key) is empty")
    if not args.event_type:
        raise EventError("the following arguments are required: -t/--event-type")
    if args.event_type in ("trigger", "change") and (args.description or "").strip() == "":
        raise EventError(f"{args.event_type} needs a non-blank description (-d)")
    if args.event_type in ("acknowledge", "resolve") and not args.dedup_key:
        raise EventError(f"{args.event_type} needs an incident key (-i)")
    if args.timestamp is not None:
        check_timestamp(args.timestamp)
    custom_details = dict(args.fields)
    timestamp = args.timestamp or utc_timestamp()
    source = args.source
    if args.event_type == "change":
        alert_only = {"-i": args.dedup_key, "-c": args.client, "-u": args.client_url,
                      "--image": args.images, "--severity": args.severity,
                      "--component": args.component, "--group": args.group, "--class": args.event_class}
        given = [flag for flag, value in alert_only.items() if value]
        if given:
            raise EventError(f"a change event takes no {', '.join(given)}")
        return "change", build_change(
            args.routing_key, summary=args.description, source=source or default_source(locations),
            timestamp=timestamp, custom_details=custom_details, links=args.links)
    if source is None and (args.event_type == "trigger" or args.description is not None):
        source = default_source(locations)
    if custom_details and args.description is None and args.event_type in ("acknowledge", "resolve"):
        # v2 keeps custom details only in a payload, and a payload needs a summary.
        warn(f"-f fields are not sent: Events API v2 carries custom details only with a summary, "
             f"and this {args.event_type} has no -d")
    return "alert", build_alert(
        args.routing_key, args.event_type, summary=args.description, dedup_key=args.dedup_key,
        severity=args.severity, source=source, component=args.component, group=args.group,
        event_class=args.event_class, timestamp=timestamp, custom_details=custom_details,
        links=args.links, images=args.images, client=args.client, client_url=args.client_url)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = fast_parse(argv) or build_parser().parse_args(argv)
    def warn(text):
        print(f"pd-send: warning: {text}", file=sys.stderr)

    try:
        locations = load_locations()
        if args.event_file is not None:
            endpoint, body = _event_from_file(args)
        else:
            endpoint, body = _event_from_flags(args, locations, warn)
        dedup_key, _ = queue_v2_event(locations, endpoint, body, queued_by="pd-send", warn=warn)
    except (ConfigError, EventError, SpoolError) as error:
        build_parser().error(str(error))
    if not args.quiet:
        utf8_stdout()
        if dedup_key:
            print(f"Event processed. Incident Key: {dedup_key}")
        else:
            print("Event processed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
