"""What the integration commands share: queueing an alert and reporting like pd-send.

Errors go out as pd-send's do (`<prog>: error: <reason>` and where help is,
exit status 2; pdagent/cli/parser.py) and success as `Event processed. Incident Key: <key>`, so a
monitor's notification log reads the same whichever command it ran.
"""

import sys

from pdagent.cli import utf8_stdout
from pdagent.config import ConfigError, load_locations
from pdagent.enqueue import queue_v2_event
from pdagent.escape import escape_controls
from pdagent.event import EventError
from pdagent.spool.files import SpoolError


def warn(prog, text):
    """One warning line on stderr and in the system log. Nagios 4 and Zabbix show a
    notification command's stderr only when it fails, so a warning about a page that did
    go out (text replaced, a notification passed over) would otherwise be seen by no one:
    syslog (the journal on systemd hosts) is where an admin finds it, under the command's
    name (`journalctl -t pd-nagios`)."""
    line = f"warning: {escape_controls(text)}"
    print(f"{prog}: {line}", file=sys.stderr)
    import syslog  # only when there is something to say
    syslog.openlog(prog, syslog.LOG_PID)
    syslog.syslog(syslog.LOG_WARNING, line)


def queue_alert(parser, make_body):
    """Queue the v2 alert body `make_body(locations)` returns; the exit status on success.

    `make_body` raises EventError for input it cannot use; that, a bad config,
    an invalid event or an unwritable spool ends the program through
    `parser.error` (exit status 2) with nothing queued.
    """
    prog = parser.prog
    try:
        locations = load_locations()  # only where the spool is: no daemon setting stops a page
        body = make_body(locations)
        dedup_key, _ = queue_v2_event(locations, "alert", body, queued_by=prog,
                                      warn=lambda text: warn(prog, text))
    except (ConfigError, EventError, SpoolError) as error:
        parser.error(str(error))
    utf8_stdout()
    print(f"Event processed. Incident Key: {dedup_key}")
    return 0


def severity_of(state, severities, otherwise="error"):
    """The v2 severity a monitor's state name maps to (case and surrounding blanks ignored)."""
    return severities.get(state.strip().upper(), otherwise)
