"""pd-queue: look at and repair the local event queue (status, list, retry).

status and list only read the spool; retry moves err/ events back to pdq/
under the queue lock the daemon also takes.

The daemon's account owns the tree and may plant links anywhere in it, so
root never writes there as root: `retry` run by root first becomes the user
that owns the data directory. Readers open nothing through a link (event
files, error reasons, the state), and text from the files is shown with its
control characters escaped.
"""

import argparse
import json
import os
import sys
import time

from pdagent.config import ConfigError, load_main_config
from pdagent.escape import escape_controls
from pdagent.spool import QUEUE_STATES, Spool, SpoolError, parse_file_name
from pdagent.state import read_state

STATE_NAMES = {"pending": "pdq", "success": "suc", "error": "err"}


def build_parser():
    parser = argparse.ArgumentParser(prog="pd-queue",
                                     description="Access local queue of PagerDuty Agent.")
    commands = parser.add_subparsers(dest="command", title="sub-commands", metavar="{status,retry,list}")
    commands.required = True

    status = commands.add_parser("status", help="print out status of local event queue.",
                                 description="Print out status of local event queue.")
    status.add_argument("-k", "--service-key", "--routing-key", dest="routing_key",
                        metavar="SERVICE_KEY", help="print status of events in given Service API Key")
    status.add_argument("--json", action="store_true",
                        help="print counts, ages, back-off state and counters as JSON")

    retry = commands.add_parser("retry", help="set up 'dead' PagerDuty events for retry.",
                                description="Set up 'dead' pagerduty events for retry.")
    retry.add_argument("-k", "--service-key", "--routing-key", dest="routing_key",
                       metavar="SERVICE_KEY",
                       help="retry events in given Service API Key (not to be used with -a)")
    retry.add_argument("-a", "--all-keys", action="store_true",
                       help="retry events in all Service API Keys (not to be used with -k)")

    listing = commands.add_parser("list", help="list events, one line each.",
                                  description="List events: time, key, action, dedup key, summary "
                                              "and, for errors, why.")
    listing.add_argument("--state", choices=STATE_NAMES, default="pending",
                         help="which events (default: pending)")
    listing.add_argument("-k", "--service-key", "--routing-key", dest="routing_key",
                         metavar="SERVICE_KEY", help="only events of this key")
    return parser


def status_table(counts, routing_key=None):
    """The original agent's table: key in 35 columns, counts right-aligned in 10."""
    lines = [f"{'Service Key':<35}{'Pending':>10}{'Success':>10}{'In Error':>10}", "=" * 65]
    if routing_key is not None and routing_key not in counts:
        counts = {routing_key: dict.fromkeys(QUEUE_STATES, 0)}
    for key in sorted(counts):
        per_key = counts[key]
        lines.append(f"{key:<35}{per_key['pdq']:>10}{per_key['suc']:>10}{per_key['err']:>10}")
    return "\n".join(lines)


def status_json(spool, db_dir, routing_key=None, now=None):
    now = time.time() if now is None else now
    state = read_state(db_dir)
    oldest = {}
    for name in spool.names("pdq", routing_key):
        enqueue_time_us, key = parse_file_name(name)
        oldest.setdefault(key, enqueue_time_us)
    keys = {}
    for key, per_key in sorted(spool.counts_by_key(routing_key).items()):
        backoff_until = state["keys"].get(key, {}).get("backoff_until", 0)
        keys[key] = {
            "pending": per_key["pdq"], "success": per_key["suc"], "error": per_key["err"],
            "oldest_pending_age_secs": round(now - oldest[key] / 1e6, 3) if key in oldest else None,
            "backed_off": backoff_until > now,
            "backoff_until": _iso(backoff_until) if backoff_until > now else None,
        }
    return {"keys": keys, "agent": state["counters"]}


def _iso(epoch_seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def _one_line(text):
    return escape_controls(" ".join(str(text).split()))


def list_lines(spool, state, routing_key=None):
    for name in spool.names(state, routing_key):
        enqueue_time_us, key = parse_file_name(name)
        try:
            entry = spool.read_entry(state, name)
            event = entry.get("event") if "event" in entry else entry
            event = event if isinstance(event, dict) else {}
            payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
            action = event.get("event_action") or event.get("event_type") or \
                ("change" if entry.get("endpoint") == "change" else "?")
            dedup_key = event.get("dedup_key") or event.get("incident_key") or "-"
            summary = payload.get("summary") or event.get("description") or ""
        except SpoolError as error:
            action, dedup_key, summary = "?", "-", f"(unreadable: {error})"
        line = f"{_iso(enqueue_time_us / 1e6)}  {key}  {action}  {_one_line(dedup_key)}  {_one_line(summary)}"
        if state == "err":
            reason = spool.error_reason(name) or {}
            line += f"  [error: {_one_line(reason.get('reason', 'no reason recorded'))}]"
        yield line


def become_spool_owner(data_dir):
    """As root, switch to the user owning `data_dir` (uid, group and groups); otherwise do nothing.

    A data directory owned by root (a checkout used as root), or none yet,
    leaves us root. `data_dir` itself is root's choice (its parent is root's),
    so it is followed if it is a link; nothing below it is.
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "retry" and bool(args.routing_key) == bool(args.all_keys):
        parser.error("retry: give either -k SERVICE_KEY or -a, not both or neither")
    try:
        main_config = load_main_config()
        spool = Spool(main_config.outqueue_dir, main_config.db_dir)
        if args.command == "status" and args.json:
            print(json.dumps(status_json(spool, main_config.db_dir, args.routing_key), indent=2))
        elif args.command == "status":
            print(status_table(spool.counts_by_key(args.routing_key), args.routing_key))
        elif args.command == "list":
            for line in list_lines(spool, STATE_NAMES[args.state], args.routing_key):
                print(line)
        else:
            become_spool_owner(main_config.data_dir)
            moved = spool.retry(None if args.all_keys else args.routing_key)
            print(f"{moved} event(s) set up for retry.")
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
