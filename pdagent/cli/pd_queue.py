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

`check` is a Nagios-style plugin (exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN; one line, then performance data); `metrics` prints the
Prometheus text format for node_exporter's textfile collector.
"""

import argparse
import collections
import errno
import json
import os
import stat
import sys
import time

from pdagent.cli.parser import ArgumentParser
from pdagent.config import ConfigError, load_locations
from pdagent.escape import escape_controls, mask_key, utf8_stdout
from pdagent.formats import is_ascii_digits
from pdagent.spool.files import SpoolError, read_regular_file
from pdagent.spool.names import QUEUE_FOLDERS, parse_file_name
from pdagent.spool.queue import Spool
from pdagent.state import STATE_FILE, read_state
from pdagent.timefmt import utc_text

STATE_NAMES = {"pending": "pdq", "success": "suc", "error": "err"}

# The check's states; each one's index is its exit code (the Nagios plugin API).
CHECK_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
OK, WARNING, CRITICAL, UNKNOWN = range(len(CHECK_STATES))
DEFAULT_WARNING_AGE_SECS = 300
DEFAULT_CRITICAL_AGE_SECS = 900
DEFAULT_ERROR_WARNING = 1
MAX_PID_FILE_BYTES = 64


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


# -- reading the queue ----------------------------------------------------------------------

def read_queue(spool, db_dir, routing_key=None, origins=False):
    """What status --json, check and metrics report: {"counts": {key: {pdq, suc, err}},
    "oldest": {key: when its oldest pending event came (its ctime, not its name)},
    "state": the saved state, "state_saved": when the daemon saved it (epoch seconds) or None,
    "origins": counts_by_origin() when `origins`, which reads every entry}.

    A state file that cannot be read counts as none, as it does for the daemon.
    """
    counts = spool.counts_by_key(routing_key)
    oldest = spool.oldest_pending(routing_key)
    for key in oldest.keys() - counts.keys():  # queued between the two listings
        counts[key] = dict.fromkeys(QUEUE_FOLDERS, 0)
    return {"counts": counts, "oldest": oldest, "state": read_state(db_dir),
            "state_saved": _saved_at(os.path.join(db_dir, STATE_FILE)),
            "origins": counts_by_origin(spool, routing_key) if origins else None}


# -- who queued what: the entries' agent.queued_by ----------------------------------------------

ORIGIN_FOLDERS = {"pending": "pdq", "delivered": "suc"}
MAX_ORIGINS = 16  # any local user writes queued_by: past this many names, the rarest are "other"
_MAX_ORIGIN_CHARS = 64


def counts_by_origin(spool, routing_key=None):
    """{"pending": {queued_by: n}, "delivered": {queued_by: n}} over pdq/ and suc/.

    Reads every entry of the two (status --json and metrics only; the table
    and check read names alone). What no tool could have written, or an entry
    that cannot be read (one the daemon moved meanwhile), counts as "unknown".
    """
    counts = {}
    for label, folder in ORIGIN_FOLDERS.items():
        tally = collections.Counter(_origin(spool, folder, name)
                                    for name in spool.names(folder, routing_key))
        if len(tally) > MAX_ORIGINS:
            kept = dict(tally.most_common(MAX_ORIGINS - 1))
            kept["other"] = kept.get("other", 0) + sum(tally.values()) - sum(kept.values())
            tally = kept
        counts[label] = dict(sorted(tally.items()))
    return counts


def _origin(spool, folder, name):
    try:
        agent = spool.read_entry(folder, name).get("agent")
    except (OSError, SpoolError):
        return "unknown"
    queued_by = agent.get("queued_by") if isinstance(agent, dict) else None
    if not isinstance(queued_by, str) or not queued_by.isprintable() or not 0 < len(queued_by) <= _MAX_ORIGIN_CHARS:
        return "unknown"
    return queued_by


def _saved_at(path):
    """The modification time of the daemon's regular file `path` (not through a link), or None.

    The counters in state.json are what the daemon had when it last saved it, so check and
    metrics say how long ago that was: a delivery made since is not counted yet."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_mtime if stat.S_ISREG(info.st_mode) else None


def _saved_age(queue, now):
    """Seconds since the counters were saved, to a tenth (never negative), or None."""
    saved = queue["state_saved"]
    return None if saved is None else round(max(0.0, now - saved), 1)


def _age_secs(since, now):
    """Seconds since an epoch time; never negative (the clock may have stepped back since)."""
    return max(0.0, now - since)


def _backed_off(state, key, now):
    return state["keys"].get(key, {}).get("backoff_until", 0) > now


def status_table(counts):
    """The original agent's table: key in 35 columns, counts right-aligned in 10."""
    if not counts:
        return "Nothing to report."
    lines = [f"{'Service Key':<35}{'Pending':>10}{'Success':>10}{'In Error':>10}", "=" * 65]
    for key in sorted(counts):
        per_key = counts[key]
        lines.append(f"{key:<35}{per_key['pdq']:>10}{per_key['suc']:>10}{per_key['err']:>10}")
    return "\n".join(lines)


def status_json(queue, now):
    state = queue["state"]
    keys = {}
    for key, per_key in sorted(queue["counts"].items()):
        backoff_until = state["keys"].get(key, {}).get("backoff_until", 0)
        oldest = queue["oldest"].get(key)
        keys[key] = {
            "pending": per_key["pdq"], "success": per_key["suc"], "error": per_key["err"],
            "oldest_pending_age_secs": None if oldest is None else round(_age_secs(oldest, now), 3),
            "backed_off": _backed_off(state, key, now),
            "backoff_until": _iso(backoff_until) if _backed_off(state, key, now) else None,
        }
    return {"keys": keys, "agent": state["counters"], "queued_by": queue["origins"]}


def _iso(epoch_seconds):
    return utc_text(epoch_seconds)


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


# -- is the daemon running? -------------------------------------------------------------------

# What `daemon_status` found: `running` is True (then `pid` is the daemon's), False
# (`reason` says why it is not running) or None: it cannot be told (`reason` says why).
DaemonStatus = collections.namedtuple("DaemonStatus", "running pid reason")


def daemon_status(locations):
    """Whether the pid file names a running pdagentd of the data directory's owner.

    What is at the pid file's name is looked at first (lstat needs no permission
    on the file): a regular file of a pid's size that this user cannot read, or
    a live process /proc hides from this user, is a daemon that cannot be seen,
    not one that is down.
    """
    from pdagent.daemon import is_pdagentd
    pid_file = locations.pid_file
    try:
        info = os.lstat(pid_file)
    except FileNotFoundError:
        return DaemonStatus(False, None, f"no {pid_file}")
    except OSError as error:
        return DaemonStatus(None, None, f"pid file {pid_file}: {error.strerror}")
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PID_FILE_BYTES:
        what = "a symbolic link; not followed" if stat.S_ISLNK(info.st_mode) else "not a pid file"
        return DaemonStatus(False, None, f"pid file {pid_file}: {what}")
    try:
        text = read_regular_file(pid_file, MAX_PID_FILE_BYTES)
    except FileNotFoundError:
        return DaemonStatus(False, None, f"no {pid_file}")  # removed by a daemon that just stopped
    except SpoolError as error:
        return DaemonStatus(None, None, f"pid file {pid_file}: {error}")
    pid = text.decode("ascii", "replace").strip()
    if not is_ascii_digits(pid):
        return DaemonStatus(False, None, f"no pid in {pid_file}")
    pid = int(pid)
    owner_uid = os.stat(locations.data_dir).st_uid
    running = is_pdagentd(pid, owner_uid)
    if running is None:
        return DaemonStatus(None, None, f"pid {pid} in {pid_file} is a process /proc does not show "
                                        f"{_user_name(os.geteuid())}")
    if not running:
        return DaemonStatus(False, None, f"pid {pid} in {pid_file} is not a pdagentd of {_user_name(owner_uid)}")
    return DaemonStatus(True, pid, None)


def _user_name(uid):
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def access_hint(error, locations):
    """How to let the user who got `error` read the spool, if it is a permission error."""
    if os.strerror(errno.EACCES) not in str(error):
        return ""
    import grp
    try:
        group = grp.getgrgid(os.stat(locations.data_dir).st_gid).gr_name
    except (OSError, KeyError):
        group = "pdagent"
    return (f" (add {_user_name(os.geteuid())} to the group {group} that may read the spool: "
            f"adduser {_user_name(os.geteuid())} {group})")


# -- check: a monitoring plugin -----------------------------------------------------------------

def check_result(queue, daemon, now, warning_age, critical_age, error_warning):
    """(exit code, the plugin's one line) from what `read_queue` and `daemon_status` found.

    A daemon that cannot be seen is UNKNOWN, not CRITICAL: only a queue that is
    critical by itself (its oldest event too old) makes that CRITICAL.
    """
    counts = queue["counts"].values()
    pending = sum(per_key["pdq"] for per_key in counts)
    errors = sum(per_key["err"] for per_key in counts)
    oldest = min(queue["oldest"].values(), default=None)
    age = 0 if oldest is None else int(_age_secs(oldest, now))
    backed_off = sum(_backed_off(queue["state"], key, now) for key in queue["counts"])

    if daemon.running:
        code, daemon_text = OK, f"pdagentd running (pid {daemon.pid})"
    elif daemon.running is None:
        code, daemon_text = UNKNOWN, f"cannot tell whether pdagentd is running: {daemon.reason}"
    else:
        code, daemon_text = CRITICAL, f"pdagentd is not running: {daemon.reason}"
    pending_text = f"{pending} pending"
    if oldest is not None:
        pending_text += f", the oldest {age} s old"
        if age > critical_age:
            code, pending_text = CRITICAL, pending_text + f" (critical over {critical_age} s)"
        elif age > warning_age:
            code, pending_text = max(code, WARNING), pending_text + f" (warning over {warning_age} s)"
    error_text = f"{errors} in error"
    if error_warning and errors >= error_warning:
        code, error_text = max(code, WARNING), error_text + " (pd-queue list --state error)"
    parts = [daemon_text, pending_text, error_text]
    if backed_off:
        parts.append(f"{backed_off} key(s) backed off")
    counters = queue["state"]["counters"]
    saved_age = _saved_age(queue, now)
    error_threshold = error_warning - 1 if error_warning else ""  # a range: warn above it
    perfdata = [f"pending={pending};;;0", f"oldest_pending_age={age}s;{warning_age};{critical_age};0",
                f"error={errors};{error_threshold};;0", f"backed_off_keys={backed_off};;;0",
                f"delivered={counters['delivered']}c", f"failed={counters['failed']}c",
                f"counters_saved_age={'U' if saved_age is None else f'{saved_age}s'}"]  # U: never saved
    return code, f"PDAGENT {CHECK_STATES[code]} - {'; '.join(parts)} | {' '.join(perfdata)}"


def run_check(args):
    """The plugin: prints one line, returns its exit code; whatever goes wrong is UNKNOWN."""
    now = time.time()
    locations = None
    try:
        locations = load_locations()
        spool = Spool(locations.outqueue_dir, locations.db_dir)
        queue = read_queue(spool, locations.db_dir)
        daemon = daemon_status(locations)
    except (ConfigError, SpoolError, OSError) as error:
        reason = _one_line(error if not isinstance(error, OSError) else
                           f"{error.filename or 'spool'}: {error.strerror}")
        print(f"PDAGENT UNKNOWN - {reason}{access_hint(error, locations) if locations else ''}")
        return UNKNOWN
    if daemon.running is None:
        daemon = daemon._replace(reason=_one_line(daemon.reason) + access_hint(daemon.reason, locations))
    code, line = check_result(queue, daemon, now, args.warning_age, args.critical_age, args.error_warning)
    print(line)
    return code


# -- metrics: the Prometheus text format ------------------------------------------------------

def _label_value(text):
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def key_labels(routing_key):
    """The labels of a routing key: masked as in the log (its last 4 characters), and
    `key_id`, the first 8 hex digits of its SHA-256, which keeps apart two keys that end
    alike (two series with the same labels would be one) without revealing either."""
    import hashlib

    digest = hashlib.sha256(routing_key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f'routing_key="{_label_value(mask_key(routing_key))}",key_id="{digest}"'


def metrics_text(queue, daemon_up, now):
    """The exposition: HELP and TYPE for every metric, then its samples.

    `daemon_up` None (whether pdagentd runs cannot be told) leaves out the
    sample of pdagent_daemon_up, and pdagent_daemon_up_known says so.
    """
    state, counts = queue["state"], queue["counts"]
    labels = {key: key_labels(key) for key in counts.keys() | state["keys"].keys()}
    keys = sorted(labels, key=labels.get)
    oldest = min(queue["oldest"].values(), default=None)
    metrics = [
        ("pdagent_daemon_up", "gauge",
         ("1 if pdagentd is running (its pid file names a live pdagentd), else 0; left out when that "
          "cannot be told (see pdagent_daemon_up_known)."),
         [] if daemon_up is None else [("", int(daemon_up))]),
        ("pdagent_daemon_up_known", "gauge",
         ("1 if pdagent_daemon_up is given, 0 if whether pdagentd runs cannot be told (the pid file or "
          "the process cannot be seen by this user)."),
         [("", int(daemon_up is not None))]),
        ("pdagent_spool_events", "gauge",
         ("Events in the spool by routing key (masked) and state: pending, error (rejected), "
         "success (delivered, kept until cleanup)."),
         [(f"{labels[key]},state=\"{state_name}\"", counts.get(key, {}).get(directory, 0))
          for key in keys for state_name, directory in STATE_NAMES.items()]),
        ("pdagent_oldest_pending_age_seconds", "gauge",
         "Age of the oldest pending event, 0 when none is pending.",
         [("", round(0.0 if oldest is None else _age_secs(oldest, now), 3))]),
        ("pdagent_key_backed_off", "gauge", "1 while the routing key is backed off, else 0.",
         [(labels[key], int(_backed_off(state, key, now))) for key in keys]),
        ("pdagent_key_backoff_remaining_seconds", "gauge",
         "Seconds until the routing key's back-off ends, 0 when it is not backed off.",
         [(labels[key], round(max(0.0, state["keys"].get(key, {}).get("backoff_until", 0) - now), 3))
          for key in keys]),
        ("pdagent_spool_events_by_origin", "gauge",
         ("Pending and delivered (kept until cleanup) events in the spool by who queued them "
          "(the entry's queued_by: pd-send, pd-listen, an integration, a library caller)."),
         [(f"queued_by=\"{_label_value(origin)}\",state=\"{state_name}\"", count)
          for state_name, by_origin in queue["origins"].items() for origin, count in by_origin.items()]),
        ("pdagent_events_delivered_total", "counter",
         "Events the daemon delivered (accepted by the Events API), kept across restarts.",
         [("", state["counters"]["delivered"])]),
        ("pdagent_events_failed_total", "counter",
         "Events the daemon moved to the error queue, kept across restarts.",
         [("", state["counters"]["failed"])]),
        ("pdagent_counters_saved_age_seconds", "gauge",
         ("Seconds since the daemon saved the two counters above (db/state.json): what it did "
          "since is not in them yet. No sample before it first saves them."),
         [("", age) for age in [_saved_age(queue, now)] if age is not None]),
    ]
    lines = []
    for name, kind, help_text, samples in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{{{sample_labels}}} {value}" if sample_labels else f"{name} {value}"
                  for sample_labels, value in samples]
    return "\n".join(lines) + "\n"


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
            queue = read_queue(spool, locations.db_dir, args.routing_key, origins=True)
            print(json.dumps(status_json(queue, time.time()), indent=2))
        elif args.command == "status":
            print(status_table(spool.counts_by_key(args.routing_key)))
        elif args.command == "list":
            for line in list_lines(spool, STATE_NAMES[args.state], args.routing_key):
                print(line)
        elif args.command == "metrics":
            now = time.time()
            queue = read_queue(spool, locations.db_dir, origins=True)
            daemon = daemon_status(locations)
            if daemon.running is None:
                print(f"pd-queue: cannot tell whether pdagentd is running: {_one_line(daemon.reason)}",
                      file=sys.stderr)
            sys.stdout.write(metrics_text(queue, daemon.running, now))
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
