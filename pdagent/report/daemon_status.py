"""Is pdagentd running? What pd-queue check and metrics tell, from the pid file and /proc,
without ever turning "cannot tell" into "down"."""

import collections
import errno
import os
import stat

from pdagent.formats import is_ascii_digits
from pdagent.spool.files import SpoolError, read_regular_file

MAX_PID_FILE_BYTES = 64

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
                                        f"{user_name(os.geteuid())}")
    if not running:
        return DaemonStatus(False, None, f"pid {pid} in {pid_file} is not a pdagentd of {user_name(owner_uid)}")
    return DaemonStatus(True, pid, None)


def user_name(uid):
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
    return (f" (add {user_name(os.geteuid())} to the group {group} that may read the spool: "
            f"adduser {user_name(os.geteuid())} {group})")
