"""The pdagentd process: checks, pid file, daemonising, signals, logs, around the engine.

- Refuses root; checks up front that every directory it writes is writable.
- One instance: python-daemon's lockfile-based pid file. A pid file whose
  process is gone (kill -9) or is not a pdagentd is removed before starting,
  so no lock or pid file ever needs cleaning by hand.
- SIGTERM/SIGINT: stop, giving events in flight until 12 s to be answered
  (systemd's stop timeout is 15 s); unanswered ones stay in pdq/.
- SIGHUP: reopen the log file (for logrotate and friends); the log also
  rotates itself at 10 MiB, keeping 5 files.
"""

import logging
import logging.handlers
import os
import signal
import sys
import threading
import uuid

from pdagent import __version__
from pdagent.escape import escape_controls
from pdagent.hostname import cache_host_name, cached_host_name, look_up_host_name
from pdagent.spool.files import SpoolError, read_small_file, write_file_atomically
from pdagent.spool.names import QUEUE_FOLDERS
from pdagent.spool.queue import Spool

log = logging.getLogger("pdagent.daemon")

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
STOP_GRACE_SECS = 12.0


class StartError(Exception):
    """Why the daemon cannot start, in one line."""


def check_can_start(main_config):
    if os.geteuid() == 0:
        raise StartError("should not be run as root (run it as the pdagent user)")
    spool = Spool(main_config.outqueue_dir, main_config.db_dir)
    try:
        # A spool made here has the package's modes, so that every user's events are ours to read.
        spool.create_dirs()
    except SpoolError as error:
        raise StartError(str(error)) from None
    spool_dirs = [spool.folder(folder) for folder in ("tmp",) + QUEUE_FOLDERS]
    for directory in spool_dirs + [main_config.db_dir, main_config.data_dir, main_config.log_dir,
                                   main_config.pid_dir]:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise StartError(f"cannot create directory {directory}: {error.strerror}") from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StartError(f"directory {directory} is not writable by user "
                             f"{_user_name()} (uid {os.geteuid()})")
        # The spool's must be listable too: one root's pd-send made is writable, not readable.
        if directory in spool_dirs and not os.access(directory, os.R_OK):
            raise StartError(f"directory {directory} is not readable by user "
                             f"{_user_name()} (uid {os.geteuid()})")


def _user_name():
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


# What the daemon's launcher is called: /usr/bin/pdagentd, and the original agent's
# /usr/share/pdagent/bin/pdagentd.py, which the packages' unit and init script run
# so that process checks matching "pdagentd.py" find it.
DAEMON_PROGRAMS = (b"pdagentd", b"pdagentd.py")


def is_pdagentd(pid, uid):
    """True if process `pid` is a pdagentd of user `uid`, not any process that names it.

    Its command line is the launcher itself ("/usr/bin/pdagentd -f"), or an
    interpreter running it ("/usr/bin/python3 -s /usr/share/pdagent/bin/pdagentd.py"):
    the first argument that is not an option. `tail -f pdagentd.log`, or an
    editor on the script, are not. pd-queue check asks it of the spool's owner.

    None if that cannot be told: the process exists but /proc hides it from
    us (mounted with hidepid=, as hardened hosts do for other users' processes).
    """
    try:
        if os.stat(f"/proc/{pid}").st_uid != uid:
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            arguments = cmdline.read().split(b"\0")
    except OSError:
        return None if _process_exists(pid) else False
    program = os.path.basename(arguments[0])
    if program in DAEMON_PROGRAMS:
        return True
    if not program.startswith(b"python"):
        return False
    script = next((argument for argument in arguments[1:] if not argument.startswith(b"-")), b"")
    return os.path.basename(script) in DAEMON_PROGRAMS


def _process_exists(pid):
    """True if process `pid` exists, whoever's it is (kill 0 asks no permission of /proc)."""
    if pid <= 0:
        return False  # kill would name process groups
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def claim_pid_file(path):
    """The pid-file object, after refusing a running instance and removing a stale file."""
    from daemon.pidfile import TimeoutPIDLockFile
    pid_file = TimeoutPIDLockFile(path, acquire_timeout=0)
    pid = pid_file.read_pid()
    if pid is not None and pid != os.getpid() and is_pdagentd(pid, os.geteuid()):
        raise StartError(f"already running (pid {pid}, pid file {path})")
    if pid is not None or os.path.lexists(path):
        pid_file.break_lock()  # left by a killed daemon, or an unreadable leftover
    return pid_file


class _ReopenableLog(logging.handlers.RotatingFileHandler):
    def shouldRollover(self, record):
        # The base class formats each record twice (here, then to write it) and stats
        # the path twice, for every event the daemon logs; the size so far is enough
        # to decide (a file may end one line past the limit).
        if self.stream is None:
            self.stream = self._open()
        return self.maxBytes > 0 and self.stream.tell() >= self.maxBytes

    def reopen(self):
        self.acquire()
        try:
            if self.stream:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


class EscapingFormatter(logging.Formatter):
    """Log lines with every control character escaped, whoever chose the text (see escape.py).

    The message and each line of a traceback are escaped on their own, so a
    traceback still takes several lines but none of them carries a raw control.
    """

    def formatMessage(self, record):
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, exc_info):
        return "\n".join(map(escape_controls, super().formatException(exc_info).split("\n")))

    def formatStack(self, stack_info):
        return "\n".join(map(escape_controls, stack_info.split("\n")))


def setup_logging(log_file, level, foreground):
    """Log to `log_file` (rotated at LOG_MAX_BYTES; reopen() on SIGHUP), and to stderr in the foreground.

    pdagentd's and pd-listen's logs: every line with its controls escaped."""
    formatter = EscapingFormatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    file_handler = _ReopenableLog(log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    file_handler.setFormatter(formatter)
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(file_handler)
    if foreground:
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.setFormatter(formatter)
        root.addHandler(stderr_handler)
    return file_handler


def without_credentials(url):
    """A proxy URL fit for a log: user and password replaced."""
    scheme, separator, rest = (url or "").partition("://")
    authority, slash, path = rest.partition("/")
    if separator and "@" in authority:
        return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"
    return url


def ensure_agent_id(path):
    agent_id = read_small_file(path)
    if not agent_id:
        agent_id = str(uuid.uuid4())
        write_file_atomically(path, agent_id.encode() + b"\n", mode=0o644)
    return agent_id


class SourceHost:
    """This host's name for v1 entries' payload.source, looked up off the main thread.

    The lookup may wait on DNS, so it runs in the background; until it is done
    the cached name (or the node name) serves. The result goes to
    data_dir/fqdn.txt for pd-send.
    """

    def __init__(self, data_dir):
        self.name = cached_host_name(data_dir)
        self._data_dir = data_dir
        threading.Thread(target=self._look_up, name="fqdn", daemon=True).start()

    def _look_up(self):
        self.name = look_up_host_name()
        try:
            cache_host_name(self._data_dir, self.name)
        except OSError as error:
            log.warning("cannot write %s: %s", error.filename or self._data_dir, error.strerror)

    def __call__(self):
        return self.name


def run(main_config, foreground):
    """Start the daemon; returns its exit code (StartError for what stops a start)."""
    check_can_start(main_config)
    pid_file = claim_pid_file(main_config.pid_file)
    # Imported here, not at module level: pd-send and pd-queue never need them.
    import daemon

    from pdagent.delivery.engine import Engine
    from pdagent.events_api import EventsAPI
    from pdagent.state import SavedState

    signals = {"stop": False, "reopen": False}
    engine_box = []

    def on_signal(number, _frame):
        signals["reopen" if number == signal.SIGHUP else "stop"] = True
        if engine_box:
            engine_box[0].wake()

    signal_map = {signal.SIGTERM: on_signal, signal.SIGINT: on_signal, signal.SIGHUP: on_signal}
    context = daemon.DaemonContext(
        detach_process=not foreground, pidfile=pid_file, umask=0o027,
        working_directory=main_config.data_dir, signal_map=signal_map,
        stdin=None if not foreground else sys.stdin,
        stdout=None if not foreground else sys.stdout,
        stderr=None if not foreground else sys.stderr,
        prevent_core=False)
    with context:
        log_handler = setup_logging(main_config.log_file, main_config.log_level, foreground)
        for repeated_key in main_config.repeated_keys:
            log.warning("%s", repeated_key)
        try:
            ensure_agent_id(main_config.agent_id_file)
            api = EventsAPI(main_config.events_api_url, main_config.http_timeout_secs,
                            proxy_url=main_config.proxy_url, ca_bundle=main_config.ca_bundle,
                            source_address=main_config.source_address,
                            connections=main_config.send_concurrency)
            saved = SavedState(main_config.db_dir)
            saved.start()
            spool = Spool(main_config.outqueue_dir, main_config.db_dir)
            lock = spool.lock()  # opening it creates db/queue.lock now, while db/ is known to be writable
            if lock.try_acquire():
                lock.release()
            engine = Engine(main_config, spool, api, saved, source_host=SourceHost(main_config.data_dir),
                            senders=main_config.send_concurrency)
            engine_box.append(engine)
            log.info("pdagentd %s started (pid %d): %s, proxy %s, TLS CAs %s, inotify on %s",
                     __version__, os.getpid(), main_config.events_api_url,
                     without_credentials(api.proxy) or "none", api.session.verify if api.session.verify is not True
                     else "system", spool.outqueue_dir)

            def on_tick():
                if signals["reopen"]:
                    signals["reopen"] = False
                    log_handler.reopen()
                    log.info("log file reopened (SIGHUP)")
                if signals["stop"]:
                    engine.stop()

            on_tick()  # a signal may have come before the engine existed
            engine.run(stop_grace_secs=STOP_GRACE_SECS, on_tick=on_tick)
            api.close()
            log.info("pdagentd stopped")
        except Exception:
            log.exception("pdagentd failed")
            return 1
    return 0
