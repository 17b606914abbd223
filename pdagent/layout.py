"""The installed directories (path, mode, owner) and copies, and root's race-free way of setting them.

Why this exists: the package scripts run as root inside /var/lib/pdagent,
which the pdagent account owns. A shell `mkdir -p; chown; chmod` by path
follows whatever that account planted: a link at outqueue/suc to a root-only
directory would have root chown it to pdagent, a link at agent_id.txt would
have root chmod its target 0644. So this module never follows a link below
the system directories (/var/lib, /var/log, /var/run, which only root can
change, and where /var/run is itself a link to /run): it opens each path one
name at a time relative to its parent's descriptor with O_NOFOLLOW, creates
what is missing the same way, renames aside whatever is in the way (a link,
a file), and sets owners and modes through the descriptor it opened. The
copies in /var/lib/pdagent/scripts are written through that descriptor too:
a temporary name created with O_EXCL, then renamed over the copy's name.

The .deb postinst and the rpm %post run it as root:

    cd / && /usr/bin/python3 -I -m pdagent.layout

(-I: nothing from the current directory, the environment or a user's site
directory can be imported); the rpm's %posttrans runs it again. `--root DIR`
lays the tree out under DIR instead of /, and `--user NAME` stands for the
user and group pdagent (tests). The rpm spec's %files must agree with
DIRECTORIES (tests/test_packaging.py checks it).
"""

import argparse
import collections
import errno
import grp
import os
import pwd
import stat
import sys
import time

DAEMON_USER = "pdagent"
SYSTEM_DIRS = ("/var/lib", "/var/log", "/var/run")

Directory = collections.namedtuple("Directory", "path mode owner")

# The spool's directories in outqueue/ and their modes; also how the daemon, pd-send
# and the library make a missing spool (spool.Spool.create_dirs). pdq/ and tmp/:
# any user may drop an event in, nobody else may list them (group pdagent by the
# set-group-ID bit, so the daemon reads every user's entry), and the sticky bit
# lets no one but a file's owner and the daemon delete or replace an entry.
SPOOL_DIRS = (("tmp", 0o3753), ("pdq", 0o3753), ("suc", 0o2750), ("err", 0o2750))

# Parents before children. The daemon's account owns only what it writes in:
# outqueue/ itself is root's, so that account cannot swap tmp/ or pdq/ for links.
DIRECTORIES = (
    Directory("/var/lib/pdagent", 0o755, DAEMON_USER),  # agent_id.txt, fqdn.txt
    Directory("/var/lib/pdagent/outqueue", 0o755, "root"),
    *(Directory(f"/var/lib/pdagent/outqueue/{name}", mode, DAEMON_USER) for name, mode in SPOOL_DIRS),
    Directory("/var/lib/pdagent/db", 0o750, DAEMON_USER),
    Directory("/var/lib/pdagent/scripts", 0o755, "root"),  # COPIES, root's like their sources
    Directory("/var/log/pdagent", 0o750, DAEMON_USER),
    Directory("/var/run/pdagent", 0o750, DAEMON_USER),
)
# Written by the daemon, read by pd-send for any user.
FILES_READ_BY_ALL = ("/var/lib/pdagent/agent_id.txt", "/var/lib/pdagent/fqdn.txt")

Copy = collections.namedtuple("Copy", "path mode source")

# The Agent guide has users take the unit from /var/lib/pdagent/scripts
# (`cp /var/lib/pdagent/scripts/pdagent.service /etc/systemd/system/`). The
# packages ship them in root's tree (source) and this module copies them
# there: as package files under the pdagent account's directory, dpkg and rpm
# would write them by path, through a link that account put at scripts/.
COPIES = (
    Copy("/var/lib/pdagent/scripts/pdagent.service", 0o644, "/usr/share/pdagent/scripts/pdagent.service"),
    Copy("/var/lib/pdagent/scripts/pdagent.init", 0o755, "/usr/share/pdagent/scripts/pdagent.init"),
)

_MAX_TRIES = 5


class LayoutError(Exception):
    """The layout cannot be set; the message is one line."""


def _warn(message):
    print(f"pdagent: {message}", file=sys.stderr)


def _split(path):
    """(system directory, [names below it]) of an absolute installed path."""
    for system_dir in SYSTEM_DIRS:
        if path.startswith(system_dir + "/"):
            return system_dir, path[len(system_dir) + 1:].split("/")
    raise LayoutError(f"{path} is not under {', '.join(SYSTEM_DIRS)}")


def _open_system_dir(root, system_dir, daemon_gid):
    """The system directory, opened by path: only root may change what is in it."""
    path = os.path.join(root, system_dir.lstrip("/"))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise LayoutError(f"{path}: {error.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid != 0 or info.st_mode & 0o002 or (info.st_mode & 0o020 and info.st_gid == daemon_gid):
        os.close(fd)
        raise LayoutError(f"{path} is not root's own (owner uid {info.st_uid}, mode "
                          f"{stat.S_IMODE(info.st_mode):04o}): not laying anything out in it")
    return fd


def _move_aside(parent_fd, name, path, what):
    stamp = time.strftime("%Y%m%d%H%M%S")
    for attempt in range(100):
        aside = f"{name}.pdagent-moved-{stamp}" + (f".{attempt}" if attempt else "")
        try:
            os.lstat(aside, dir_fd=parent_fd)
        except FileNotFoundError:
            os.rename(name, aside, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            _warn(f"{path} was {what}: moved it to {aside}")
            return
    raise LayoutError(f"cannot find a free name to move {path} aside")


def _enter(parent_fd, name, path):
    """A descriptor of the real directory `name` in `parent_fd`, made so if needed."""
    for _ in range(_MAX_TRIES):
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=parent_fd)
        except FileNotFoundError:
            try:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            except FileExistsError:
                pass  # made by someone else meanwhile: look at it again
        except OSError as error:
            if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            _move_aside(parent_fd, name, path, "not a directory (a link or a file)")
    raise LayoutError(f"{path} keeps changing under us: not laying it out")


def _open_directory(root, path, daemon_gid):
    system_dir, names = _split(path)
    fd = _open_system_dir(root, system_dir, daemon_gid)
    walked = system_dir
    try:
        for name in names:
            walked = f"{walked}/{name}"
            child = _enter(fd, name, walked)
            os.close(fd)
            fd = child
    except OSError as error:
        os.close(fd)
        raise LayoutError(f"{walked}: {error.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_readable(parent_fd, name, path, daemon_uid):
    """chmod 0644 the daemon's file `name`, if it is one: never through a link, nobody else's."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        _warn(f"{path} is a symbolic link: left as it is")
        return
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_uid == daemon_uid and info.st_nlink == 1:
            os.fchmod(fd, 0o644)
        else:
            _warn(f"{path} is not a file of the daemon's user with a single link: left as it is")
    finally:
        os.close(fd)


def _read_sources(root):
    """{copy path: its source's bytes}, read before anything is laid out."""
    sources = {}
    for copy in COPIES:
        source = os.path.join(root, copy.source.lstrip("/"))
        try:
            with open(source, "rb") as stream:
                sources[copy.path] = stream.read()
        except OSError as error:
            raise LayoutError(f"{source}: {error.strerror}") from None
    return sources


def _write_copy(dir_fd, name, data, mode, path):
    """Put `data` at `name` in root's directory `dir_fd`: a new file under a random
    name, then renamed over `name` (a link there is replaced, never followed)."""
    for _ in range(_MAX_TRIES):
        temporary = f".{name}.{os.urandom(6).hex()}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise LayoutError(f"cannot find a free temporary name for {path}")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, 0, 0)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except IsADirectoryError:  # left from when another user could write here
            _move_aside(dir_fd, name, path, "a directory")
            os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError as error:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except FileNotFoundError:
            pass  # renamed already
        raise LayoutError(f"{path}: {error.strerror}") from None


def apply(root="/", user=DAEMON_USER):
    """Create DIRECTORIES under `root` where missing, with their modes and owners,
    and write COPIES.

    `user` (and its group of the same name) stands for DAEMON_USER.
    """
    try:
        daemon_uid = pwd.getpwnam(user).pw_uid
        daemon_gid = grp.getgrnam(user).gr_gid
    except KeyError:
        raise LayoutError(f"there is no user and group {user}") from None
    ids = {DAEMON_USER: (daemon_uid, daemon_gid), "root": (0, 0)}
    sources = _read_sources(root)
    for directory in DIRECTORIES:
        fd = _open_directory(root, directory.path, daemon_gid)
        try:
            os.fchown(fd, *ids[directory.owner])
            os.fchmod(fd, directory.mode)  # after fchown, which may clear the set-group-ID bit
            # Through this descriptor: the daemon's user may rename the directory's
            # name away at any time, but not what this descriptor is.
            for copy in COPIES:
                parent, name = copy.path.rsplit("/", 1)
                if parent == directory.path:
                    _write_copy(fd, name, sources[copy.path], copy.mode, copy.path)
        except OSError as error:
            raise LayoutError(f"{directory.path}: {error.strerror}") from None
        finally:
            os.close(fd)
    for path in FILES_READ_BY_ALL:
        parent, name = path.rsplit("/", 1)
        fd = _open_directory(root, parent, daemon_gid)
        try:
            _make_readable(fd, name, path, daemon_uid)
        except OSError as error:
            raise LayoutError(f"{path}: {error.strerror}") from None
        finally:
            os.close(fd)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -I -m pdagent.layout",
        description="Create pdagent's directories with their modes and owners, and the copies "
                    "in /var/lib/pdagent/scripts, following no link.")
    parser.add_argument("--root", default="/", help="lay out under this directory instead of / (tests)")
    parser.add_argument("--user", default=DAEMON_USER, help="the daemon's user and group (tests)")
    args = parser.parse_args(argv)
    try:
        apply(args.root, args.user)
    except LayoutError as error:
        _warn(f"cannot lay out the directories: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
