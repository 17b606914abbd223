"""pd-queue check: a Nagios-style plugin (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one
line, then performance data as the plugin guidelines write them)."""

import time

from pdagent.config import ConfigError, load_locations
from pdagent.report.daemon_status import access_hint, daemon_status
from pdagent.report.snapshot import age_secs, backed_off, read_snapshot, saved_age
from pdagent.report.status import one_line
from pdagent.spool.files import SpoolError
from pdagent.spool.queue import Spool

# The check's states; each one's index is its exit code (the Nagios plugin API).
CHECK_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
OK, WARNING, CRITICAL, UNKNOWN = range(len(CHECK_STATES))
DEFAULT_WARNING_AGE_SECS = 300
DEFAULT_CRITICAL_AGE_SECS = 900
DEFAULT_ERROR_WARNING = 1


def check_result(snapshot, daemon, now, warning_age, critical_age, error_warning):
    """(exit code, the plugin's one line) from what `read_snapshot` and `daemon_status` found.

    A daemon that cannot be seen is UNKNOWN, not CRITICAL: only a queue that is
    critical by itself (its oldest event too old) makes that CRITICAL.
    """
    counts = snapshot["counts"].values()
    pending = sum(per_key["pdq"] for per_key in counts)
    errors = sum(per_key["err"] for per_key in counts)
    oldest = min(snapshot["oldest"].values(), default=None)
    age = 0 if oldest is None else int(age_secs(oldest, now))
    backed_off_keys = sum(backed_off(snapshot["state"], key, now) for key in snapshot["counts"])

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
    if backed_off_keys:
        parts.append(f"{backed_off_keys} key(s) backed off")
    counters = snapshot["state"]["counters"]
    counters_age = saved_age(snapshot, now)
    error_threshold = error_warning - 1 if error_warning else ""  # a range: warn above it
    perfdata = [f"pending={pending};;;0", f"oldest_pending_age={age}s;{warning_age};{critical_age};0",
                f"error={errors};{error_threshold};;0", f"backed_off_keys={backed_off_keys};;;0",
                f"delivered={counters['delivered']}c", f"failed={counters['failed']}c",
                f"counters_saved_age={'U' if counters_age is None else f'{counters_age}s'}"]  # U: never saved
    return code, f"PDAGENT {CHECK_STATES[code]} - {'; '.join(parts)} | {' '.join(perfdata)}"


def run_check(args):
    """The plugin: prints one line, returns its exit code; whatever goes wrong is UNKNOWN."""
    now = time.time()
    locations = None
    try:
        locations = load_locations()
        spool = Spool(locations.outqueue_dir, locations.db_dir)
        snapshot = read_snapshot(spool, locations.db_dir)
        daemon = daemon_status(locations)
    except (ConfigError, SpoolError, OSError) as error:
        reason = one_line(error if not isinstance(error, OSError) else
                           f"{error.filename or 'spool'}: {error.strerror}")
        print(f"PDAGENT UNKNOWN - {reason}{access_hint(error, locations) if locations else ''}")
        return UNKNOWN
    if daemon.running is None:
        daemon = daemon._replace(reason=one_line(daemon.reason) + access_hint(daemon.reason, locations))
    code, line = check_result(snapshot, daemon, now, args.warning_age, args.critical_age, args.error_warning)
    print(line)
    return code
