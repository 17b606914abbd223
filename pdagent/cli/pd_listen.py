"""pd-listen: a local Events API v2. Clients POST events here; each is in the spool before its 202.

Runs in the foreground (systemd, or the init script's start-stop-daemon) as
an unprivileged account that has only pd-send's rights over the spool; it
refuses root. SIGTERM/SIGINT: stop taking requests, answer the ones being
queued, exit. SIGHUP: reopen the log (log_dir/pd-listen.log, rotated as
pdagentd.log is).
"""

import argparse
import logging
import os
import resource
import signal
import sys

from pdagent import __version__
from pdagent.config import ConfigError
from pdagent.listen.settings import load_listen_settings

log = logging.getLogger("pdagent.listen")
LOG_FILE_NAME = "pd-listen.log"


def _seconds(text):
    value = float(text)
    if not 0 < value < 86400:
        raise ValueError(text)
    return value


_seconds.__name__ = "seconds"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="pd-listen", description="Take Events API v2 requests over HTTP and queue them for pdagentd.",
        epilog="Where to listen: listen_address / listen_socket in the config file.")
    parser.add_argument("--pid-file", help="write the process id here (for init scripts)")
    parser.add_argument("--log-dir", help="write pd-listen.log here rather than in log_dir (the packages: "
                                          "/var/log/pdagent-listen, since pdagentd's log directory is not ours)")
    parser.add_argument("--header-timeout", type=_seconds, default=10.0, metavar="SECS",
                        help="a request's head must arrive within this (default 10)")
    parser.add_argument("--body-timeout", type=_seconds, default=30.0, metavar="SECS",
                        help="a body may stall this long (default 30)")
    parser.add_argument("--idle-timeout", type=_seconds, default=60.0, metavar="SECS",
                        help="an idle keep-alive connection closes after this (default 60)")
    parser.add_argument("--max-connections", type=int, default=4096, metavar="N",
                        help="connections open at once; past it the longest-idle one is closed (default 4096)")
    return parser


def _raise_file_limit(connections):
    """Room for `connections` sockets plus the spool's files, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY
                                                    else min(wanted, hard), hard))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.max_connections < 1:
        build_parser().error("--max-connections must be at least 1")
    if os.geteuid() == 0:
        print("pd-listen: should not be run as root (run it as the pdagent-listen user)", file=sys.stderr)
        return 1
    try:
        settings = load_listen_settings()
    except ConfigError as error:
        print(f"pd-listen: {error}", file=sys.stderr)
        return 1
    # Imported after the checks: a refused start costs nothing more.
    from pdagent.daemon import setup_logging
    from pdagent.listen.api import Listener
    from pdagent.listen.limits import Limits
    from pdagent.listen.server import Server
    from pdagent.listen.sockets import open_listening_sockets
    from pdagent.spool.files import write_file_atomically

    log_dir = args.log_dir or settings.locations.log_dir
    try:
        log_handler = setup_logging(os.path.join(log_dir, LOG_FILE_NAME), "INFO", False)
    except OSError as error:
        print(f"pd-listen: cannot open the log in {log_dir}: {error.strerror}", file=sys.stderr)
        return 1
    try:
        sockets = open_listening_sockets(settings)
    except OSError as error:
        where = " and ".join(filter(None, [settings.locations.listen_address, settings.socket_path]))
        print(f"pd-listen: cannot listen on {where}: {error.strerror}", file=sys.stderr)
        log.error("cannot listen on %s: %s", where, error.strerror)
        return 1
    _raise_file_limit(args.max_connections)
    limits = Limits(args.header_timeout, args.body_timeout, args.idle_timeout, args.max_connections)
    server = Server(Listener(settings.locations, settings.token), sockets, limits)
    reopen = []

    def on_signal(number, _frame):
        if number == signal.SIGHUP:
            reopen.append(True)
            server.wake()
        else:
            server.stop()

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)

    def on_tick():
        if reopen:
            del reopen[:]
            log_handler.reopen()
            log.info("log file reopened (SIGHUP)")

    if args.pid_file:
        write_file_atomically(args.pid_file, f"{os.getpid()}\n".encode(), mode=0o644)
    log.info("pd-listen %s started (pid %d): listening on %s; spool %s%s", __version__, os.getpid(),
             ", ".join(_where(sock) for sock in sockets), settings.locations.outqueue_dir,
             "; bearer token required" if settings.token else "")
    try:
        server.run(on_tick=on_tick)
    finally:
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except OSError:
                pass
    log.info("pd-listen stopped")
    return 0


def _where(sock):
    address = sock.getsockname()
    if isinstance(address, str):
        return f"unix:{address}"
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"http://{host}:{address[1]}"


if __name__ == "__main__":
    sys.exit(main())
