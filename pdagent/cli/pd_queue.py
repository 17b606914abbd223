"""pd-queue: look at and repair the local event queue, and report on it to monitoring.

status, list, check and metrics only read the spool; retry moves err/
events back to pdq/ and discard deletes them, both under the queue lock
the daemon also takes.

The daemon's account owns the tree and may plant links anywhere in it, so
root never writes there as root: `retry` and `discard` run by root first
become the user that owns the data directory. Nothing is opened through a
link or waited on (event files, error reasons, the state, the pid file, the
queue lock: non-blocking opens, regular files only), and text from the
files is shown with its control characters escaped.

The reports (status, list, check, metrics) are pdagent/report/'s; here are
the command line and the two commands that change the queue.
"""

import argparse
import json
import os
import sys
import time

from pdagent.cli import utf8_stdout
from pdagent.cli.parser import ArgumentParser
from pdagent.config import ConfigError, load_locations
from pdagent.report.check import (
    DEFAULT_CRITICAL_AGE_SECS,
    DEFAULT_ERROR_WARNING,
    DEFAULT_WARNING_AGE_SECS,
    UNKNOWN,
    run_check,
)
from pdagent.report.daemon_status import daemon_status
from pdagent.report.metrics import metrics_text
from pdagent.report.snapshot import read_snapshot
from pdagent.report.status import (
    STATE_NAMES,
    list_lines,
    one_line,
    status_json,
    status_table,
)
from pdagent.spool.files import SpoolError
from pdagent.spool.queue import Spool


def _count(text):
    """A whole number >= 0, for argparse."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_count.__name__ = "count"  # argparse's error: "invalid count value: '-1'"


def _add_key_or_all(parser, verb):
    parser.add_argument("-k", "--service-key", "--routing-key", dest="routing_key",
                        metavar="SERVICE_KEY",
                        help=f"{verb} events in given Service API Key (not to be used with -a)")
    parser.add_argument("-a", "--all-keys", action="store_true",
                        help=f"{verb} events in all Service API Keys (not to be used with -k)")


def build_parser():
    parser = ArgumentParser(prog="pd-queue", description="Access local queue of PagerDuty Agent.")
    commands = parser.add_subparsers(dest="command", title="sub-commands",
                                     metavar="{status,retry,discard,list,check,metrics}")
    commands.required = True

    status = commands.add_parser("status", help="print out status of local event queue.",
                                 description="Print out status of local event queue.")
    status.add_argument("-k", "--service-key", "--routing-key", dest="routing_key",
                        metavar="SERVICE_KEY", help="print status of events in given Service API Key")
    status.add_argument("--json", action="store_true",
                        help="print counts, ages, back-off state and counters as JSON")

    retry = commands.add_parser("retry", help="set up 'dead' PagerDuty events for retry.",
                                description="Set up 'dead' pagerduty events for retry.")
    _add_key_or_all(retry, "retry")

    discard = commands.add_parser("discard", help="delete 'dead' PagerDuty events, never to be sent.",
                                  description="Delete 'dead' PagerDuty events (in error) and why they "
                                              "were rejected, e.g. after a wrong key was fixed.")
    _add_key_or_all(discard, "discard")

    listing = commands.add_parser("list", help="list events, one line each.",
                                  description="List events: time, key, action, dedup key, summary "
                                              "and, for errors, why.")
    listing.add_argument("--state", choices=STATE_NAMES, default="pending",
                         help="which events (default: pending)")
    listing.add_argument("-k", "--service-key", "--routing-key", dest="routing_key",
                         metavar="SERVICE_KEY", help="only events of this key")

    check = commands.add_parser(
        "check", help="check the agent's health, as a Nagios/Icinga/Sensu plugin.",
        description="Check the agent's health as a monitoring plugin: exit 0 OK, 1 WARNING, "
                    "2 CRITICAL (pdagentd not running, or the oldest pending event older than "
                    "--critical-age), 3 UNKNOWN (the spool cannot be read); one line of text "
                    "and performance data.")
    check.usage_error_status = UNKNOWN
    check.add_argument("--warning-age", type=_count, default=DEFAULT_WARNING_AGE_SECS, metavar="SECS",
                       help="WARNING when the oldest pending event is older than this "
                            f"(default: {DEFAULT_WARNING_AGE_SECS})")
    check.add_argument("--critical-age", type=_count, default=DEFAULT_CRITICAL_AGE_SECS, metavar="SECS",
                       help="CRITICAL when the oldest pending event is older than this "
                            f"(default: {DEFAULT_CRITICAL_AGE_SECS})")
    check.add_argument("--error-warning", type=_count, default=DEFAULT_ERROR_WARNING, metavar="N",
                       help="WARNING when at least N events are in error; 0: never "
                            f"(default: {DEFAULT_ERROR_WARNING})")

    commands.add_parser(
        "metrics", help="print metrics in the Prometheus text format.",
        description="Print the queue's and the daemon's metrics in the Prometheus text "
                    "exposition format, for node_exporter's textfile collector.")
    return parser


def command_parser(parser, command):
    """The sub-command's own parser: its usage errors show its usage, and its exit status."""
    subcommands = next(action for action in parser._actions
                       if isinstance(action, argparse._SubParsersAction))
    return subcommands.choices[command]


def become_spool_owner(data_dir):
    """As root, switch to the user owning `data_dir` (uid, group and groups); otherwise do nothing.

    A data directory owned by root (a checkout used as root), or none yet,
    leaves us root. `data_dir` itself is root's choice (its parent is root's),
    so it is followed if it is a link; nothing below it is. After the switch
    the caller must not import a module it has not imported yet: the
    interpreter may live where only root can read (a venv under /root).
    """
    if os.geteuid() != 0:
        return
    try:
        owner = os.stat(data_dir)
    except FileNotFoundError:
        return
    except OSError as error:
        raise SpoolError(f"cannot look at {data_dir}: {error.strerror}") from None
    if owner.st_uid == 0:
        return
    import pwd
    try:
        account = pwd.getpwuid(owner.st_uid)
        os.initgroups(account.pw_name, account.pw_gid)
        gid = account.pw_gid
    except KeyError:  # an owner with no passwd entry: its uid and the directory's group only
        os.setgroups([])
        gid = owner.st_gid
    os.setgid(gid)
    os.setuid(owner.st_uid)


def main(argv=None):
    utf8_stdout()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    usage = command_parser(parser, args.command)
    if unknown:  # as parse_args would say, but with the sub-command's usage and exit status
        usage.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "check":
        return run_check(args)
    if args.command in ("retry", "discard") and bool(args.routing_key) == bool(args.all_keys):
        usage.error("give either -k SERVICE_KEY or -a, not both or neither")
    try:
        locations = load_locations()
        spool = Spool(locations.outqueue_dir, locations.db_dir)
        if args.command == "status" and args.json:
            snapshot = read_snapshot(spool, locations.db_dir, args.routing_key, origins=True)
            print(json.dumps(status_json(snapshot, time.time()), indent=2))
        elif args.command == "status":
            print(status_table(spool.counts_by_key(args.routing_key)))
        elif args.command == "list":
            for line in list_lines(spool, STATE_NAMES[args.state], args.routing_key):
                print(line)
        elif args.command == "metrics":
            now = time.time()
            snapshot = read_snapshot(spool, locations.db_dir, origins=True)
            daemon = daemon_status(locations)
            if daemon.running is None:
                print(f"pd-queue: cannot tell whether pdagentd is running: {one_line(daemon.reason)}",
                      file=sys.stderr)
            sys.stdout.write(metrics_text(snapshot, daemon.running, now))
        else:
            become_spool_owner(locations.data_dir)
            routing_key = None if args.all_keys else args.routing_key
            if args.command == "retry":
                print(f"{spool.retry(routing_key)} event(s) set up for retry.")
            else:
                print(f"{spool.discard(routing_key)} event(s) discarded.")
    except (ConfigError, SpoolError) as error:
        parser.error(str(error))
    except BrokenPipeError:
        # The reader (e.g. `| head`) has had enough: not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        parser.error(f"{getattr(error, 'filename', None) or 'spool'}: {error.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
