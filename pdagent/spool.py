"""The disk spool: one file per event under outqueue/, the original agent's tree.

    outqueue/tmp/   entries being written (never read by anyone else)
    outqueue/pdq/   pending:   <enqueue time, microseconds>_<routing key>.txt
    outqueue/suc/   delivered: same name
    outqueue/err/   rejected:  same name; why is in db/errors/<name>.json

Invariants, which everything else relies on:
- A name in pdq/ always holds a complete, fsynced entry. Writers create the
  file in tmp/, write, fsync, then hard-link it into pdq/ (link fails instead
  of overwriting, so two writers in the same microsecond both succeed: the
  loser takes the next microsecond), fsync again, and unlink the tmp name.
- Name order is queue order; per routing key the daemon sends strictly in
  name order. A writer's enqueue time is the later of now and just after
  pdq/'s last change (its mtime, which any user can stat), so after the wall
  clock steps back a later event still sorts after the ones before it; the
  daemon keeps pdq/'s mtime at the newest enqueue time it has seen while the
  clock is behind it (delivery.py).
- Only the daemon moves files out of pdq/ (rename: atomic), and only after
  the Events API answered; `pd-queue retry` moves err/ -> pdq/. Both do so
  holding the queue lock (flock on db/queue.lock), which the kernel drops
  when a process dies, so no lock is ever left behind. A move is made
  durable by fsyncing the target directory, then pdq/ (delivery.py batches
  these; `retry` does it once at the end).
- Enqueueing takes no lock and never reads pdq/: any local user can drop an
  event into a directory they cannot list (mode 3753, group pdagent). A
  missing spool is created first, as pd-send always did, with those modes.
  An entry pdq/'s owner (the daemon) could not read is refused, never queued. The
  sticky bit means only a file's owner and the daemon (the directory's
  owner) may remove or replace it: no user can take another's event away.
- Other users may put anything in pdq/, so no name is trusted: only names
  in the agent's own format (`parse_file_name`) are events; every other name
  is skipped, and a file whose body names another routing key than its file
  name is a bad entry (delivery.py moves it to err/).
- Readers (pd-queue status/list) only list and read; they write nothing.

pd-send imports this module to write; the reading side imports `json` where
it is used, since importing it costs pd-send's start-up a few milliseconds.
"""

import errno
import fcntl
import os
import stat
import time

from pdagent.event import EventError, check_routing_key

QUEUE_STATES = ("pdq", "suc", "err")
ENTRY_MODE = 0o640
MAX_ENTRY_BYTES = 512 * 1024
STALE_TMP_SECS = 3600

_NAME_SUFFIX = ".txt"
_NAMES_PER_CHUNK = 1000  # small enough to stay in the CPU caches (faster than larger chunks)
_FILE_TIME_TICK_US = 10_000  # the kernel's clock for file times: a tick, 10 ms at most (HZ=100)
# How to fix a spool whose pdq/ and tmp/ are not mode 3753 of the daemon's group.
LAYOUT_HINT = ("pdq/ and tmp/ must belong to the daemon's group, mode 3753: as root, "
               "`python3 -I -m pdagent.layout` sets them in /var/lib/pdagent")


class SpoolError(Exception):
    """The spool could not be written or read; the message is one line."""


# At most 17 digits: microseconds until the year 5138, well inside what
# time.gmtime() can show. Today's stamps have 16.
MAX_STAMP_DIGITS = 17
_ASCII_DIGITS = "0123456789"


def event_file_name(enqueue_time_us, routing_key):
    return f"{enqueue_time_us}_{routing_key}{_NAME_SUFFIX}"


def is_event_key(routing_key):
    """True if `routing_key` may stand in an event file name: what check_routing_key
    allows, less anything that is not printable (control, format and separator
    characters, lone surrogates from undecodable bytes), so no name a log line
    or a terminal shows can carry an escape sequence or a line break."""
    return (routing_key != "" and routing_key.isprintable() and " " not in routing_key
            and "/" not in routing_key and len(routing_key.encode("utf-8")) <= 200)


def parse_file_name(name):
    """(enqueue time in microseconds, routing key) of a name in the agent's own format, else None.

    The format is <1 to 17 ASCII digits, no leading zero>_<key>.txt, with a key
    `is_event_key` accepts; the name is exactly `event_file_name` of the result.
    `str.isdigit()` is not used: it accepts digits (e.g. "²") that int() refuses.
    """
    stamp, underscore, rest = name.partition("_")
    if not underscore or not 0 < len(stamp) <= MAX_STAMP_DIGITS or stamp[0] == "0" \
            or stamp.strip(_ASCII_DIGITS) or not rest.endswith(_NAME_SUFFIX):
        return None
    routing_key = rest[:-len(_NAME_SUFFIX)]
    if not is_event_key(routing_key):
        return None
    return int(stamp), routing_key


def _name_of_key(name, routing_key):
    """True if `name` is an event file name (of `routing_key`, when given)."""
    parsed = parse_file_name(name)
    return parsed is not None and (routing_key is None or parsed[1] == routing_key)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_directory(path):
    """fsync a directory so a new name in it survives a crash; False if not allowed.

    A user who may only write (not read) pdq/ cannot open it; the fsync of
    the linked file that precedes this covers the journaling filesystems the
    agent runs on, since link() dirties the inode in the same transaction.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def write_file_atomically(path, data, mode=0o644):
    """Replace `path` with `data` (bytes) so readers see the old or the new, never a mix."""
    tmp_path = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp_path)
        raise
    os.close(fd)
    os.replace(tmp_path, path)
    fsync_directory(os.path.dirname(path) or ".")


def read_regular_file(path, limit):
    """The bytes of `path`; SpoolError (one line, no path) if it is a link, not a regular file or over `limit` bytes.

    It never follows a link nor waits on a FIFO: every directory it reads is
    writable by others than the reader (pdq/ by any user, the rest by the
    daemon's account, which root's tools must not trust). A missing file
    raises FileNotFoundError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SpoolError("a symbolic link; not followed") from None
        raise SpoolError(f"cannot open: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpoolError("not a regular file")
        if info.st_size > limit:
            raise SpoolError(f"{info.st_size} bytes, over the {limit}-byte limit")
        return os.read(fd, limit + 1)
    except OSError as error:
        raise SpoolError(f"cannot read: {error.strerror}") from None
    finally:
        os.close(fd)


def read_small_file(path, limit=4096):
    """The stripped text of a small regular file, or None if it is missing, unreadable or not one."""
    try:
        return read_regular_file(path, limit).decode("utf-8", "replace").strip() or None
    except (OSError, SpoolError):
        return None


def read_agent_id(path):
    return read_small_file(path)


class QueueLock:
    """The one lock the daemon and `pd-queue retry` serialise on (flock: dies with its holder).

    With `required=False` (the daemon), a lock file that cannot be opened or
    created (db/ made read-only and the file deleted), or is not a regular
    file, is reported to `on_failure` and the work goes on unlocked, rather
    than stopping delivery.
    """

    def __init__(self, db_dir, required=True, on_failure=None):
        self.path = os.path.join(db_dir, "queue.lock")
        self.required = required
        self.on_failure = on_failure
        self._fd = None

    def acquire(self, wait=True):
        """Take the lock; with `wait=False`, return False at once if another process holds it.

        True also when the lock file cannot be opened and `required` is False
        (the work goes on unlocked, as said above).
        """
        try:
            fd = self._open()
        except OSError as error:
            if self.required:
                raise SpoolError(f"cannot open the queue lock {self.path}: {error.strerror}") from None
            if self.on_failure:
                self.on_failure(error)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _open(self):
        """A descriptor of the lock file, created if missing; OSError unless it is a regular file.

        db/ belongs to the daemon's account, and root (pd-queue) takes this lock
        too: never through a link (O_NOFOLLOW), never waiting on what that account
        put in its place (O_NONBLOCK: a FIFO would block the open forever).
        """
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, flags | os.O_CREAT, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")
        return fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()


class Spool:
    """The outqueue directory tree: enqueue, list, read, move, retry, clean up."""

    def __init__(self, outqueue_dir, db_dir=None):
        self.outqueue_dir = outqueue_dir
        self.db_dir = db_dir or os.path.join(os.path.dirname(outqueue_dir), "db")
        self.tmp_dir = os.path.join(outqueue_dir, "tmp")
        self.errors_dir = os.path.join(self.db_dir, "errors")

    def path(self, state, name):
        return os.path.join(self.outqueue_dir, state, name)

    def lock(self, required=True, on_failure=None):
        return QueueLock(self.db_dir, required, on_failure)

    def create_dirs(self):
        """Create the spool where missing, with the package's modes (layout.SPOOL_DIRS),
        for whoever creates it first: the daemon at its first start, or pd-send.

        The set-group-ID bit of pdq/ and tmp/ gives every user's entry the
        creator's group, so that a daemon running as the creator reads them all.
        Directories that exist are left as they are.
        """
        # Imported here only: pd-send seldom creates a spool.
        from pdagent.layout import SPOOL_DIRS
        try:
            os.makedirs(self.outqueue_dir, exist_ok=True)
        except OSError as error:
            raise SpoolError(f"cannot create the spool directory {self.outqueue_dir}: {error.strerror}") from None
        for name, mode in SPOOL_DIRS:
            path = os.path.join(self.outqueue_dir, name)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                continue
            except OSError as error:
                raise SpoolError(f"cannot create the spool directory {path}: {error.strerror}") from None
            _set_mode_of_new_directory(path, mode)

    # -- writing ---------------------------------------------------------

    def enqueue(self, routing_key, data, now=None):
        """Queue `data` (bytes) for `routing_key`; returns the pdq/ file name.

        A missing spool is created (SpoolError, one line, if it cannot be).
        `now` (seconds) sets the enqueue time as is, for tests and tools.
        """
        check_routing_key(routing_key)
        if not is_event_key(routing_key):
            raise EventError("routing key must not contain control or other non-printable characters")
        pdq_dir = os.path.join(self.outqueue_dir, "pdq")
        if now is None:
            enqueue_time_us = self._next_enqueue_time(pdq_dir)
        else:
            enqueue_time_us = int(now * 1_000_000)
        tmp_path = os.path.join(self.tmp_dir, f"{enqueue_time_us}_{os.getpid()}_{os.urandom(4).hex()}.tmp")
        fd = self._create_tmp_file(tmp_path)
        try:
            os.fchmod(fd, ENTRY_MODE)  # whatever the caller's umask
            _write_all(fd, data)
            os.fsync(fd)
            name = self._link_unique(tmp_path, pdq_dir, enqueue_time_us, routing_key)
        except OSError as error:
            raise SpoolError(f"cannot write the event to {self.outqueue_dir}: {error.strerror}") from None
        else:
            # The event is queued from here on. The data was fsynced already; these make
            # the new name durable (a failure is not the event's: it is not reported).
            try:
                os.fsync(fd)  # link() dirtied the inode; on journaling filesystems this commits the name
            except OSError:
                pass
            fsync_directory(pdq_dir)
        finally:
            os.close(fd)
            try:
                os.unlink(tmp_path)
            except OSError:
                pass  # the daemon's cleanup removes stale tmp/ files
        return name

    def _next_enqueue_time(self, pdq_dir):
        """Now in microseconds; if pdq/ changed later than now (the clock went back), just
        after that change, so a later event still sorts after the earlier ones.

        File times come from the kernel's coarse clock, up to a tick behind the
        time a writer took for its name: "just after" is one tick after. One
        stat; a missing pdq/ means a spool never used, which is created here.
        """
        now_us = int(time.time() * 1_000_000)  # not time_ns(): Python 3.6 has none
        try:
            changed_us = os.stat(pdq_dir).st_mtime_ns // 1000
        except FileNotFoundError:
            self.create_dirs()
            return now_us
        except OSError:
            return now_us
        return now_us if changed_us <= now_us else changed_us + _FILE_TIME_TICK_US

    def _create_tmp_file(self, tmp_path):
        """A new file at `tmp_path` that the daemon will be able to read (else SpoolError)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                fd = os.open(tmp_path, flags, ENTRY_MODE)
            except FileNotFoundError:
                self.create_dirs()  # tmp/ alone missing (removed by hand)
                fd = os.open(tmp_path, flags, ENTRY_MODE)
        except OSError as error:
            hint = f" ({LAYOUT_HINT})" if error.errno == errno.EACCES else ""
            raise SpoolError(f"cannot create a file in {self.tmp_dir}: {error.strerror}{hint}") from None
        try:
            self._check_daemon_can_read(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp_path)
            raise
        return fd

    def _check_daemon_can_read(self, fd):
        """SpoolError unless the owner of pdq/ (the daemon's account) can read the entry `fd`.

        It can if the entry is its own, or of pdq/'s group where pdq/ is
        set-group-ID (the package's layout, whose group is the daemon's: tmp/
        gives the entry that group, and entries are 0640). Anything else, such
        as root's entry in a spool without that layout, would be accepted here
        and then be unreadable to the daemon: refused instead. One fstat and
        one stat, nothing looked up by name.
        """
        pdq_dir = os.path.join(self.outqueue_dir, "pdq")
        entry = os.fstat(fd)
        try:
            try:
                queue = os.stat(pdq_dir)
            except FileNotFoundError:
                self.create_dirs()  # pdq/ alone missing (removed by hand)
                queue = os.stat(pdq_dir)
        except OSError as error:
            raise SpoolError(f"cannot look at {pdq_dir}: {error.strerror}") from None
        if entry.st_uid == queue.st_uid or (entry.st_gid == queue.st_gid and queue.st_mode & stat.S_ISGID):
            return
        raise SpoolError(f"{pdq_dir} is not set up for other users: its owner (uid {queue.st_uid}), the "
                         f"daemon, could not read this event (uid {entry.st_uid}, group {entry.st_gid}); "
                         f"nothing was queued ({LAYOUT_HINT})")

    @staticmethod
    def _link_unique(tmp_path, pdq_dir, enqueue_time_us, routing_key):
        while True:
            name = event_file_name(enqueue_time_us, routing_key)
            try:
                os.link(tmp_path, os.path.join(pdq_dir, name))
                return name
            except FileExistsError:
                enqueue_time_us += 1  # another writer took this microsecond

    def enqueuer(self):
        return Enqueuer(self)

    # -- reading ---------------------------------------------------------

    def _listing(self, state):
        try:
            return os.listdir(os.path.join(self.outqueue_dir, state))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise SpoolError(f"cannot list {os.path.join(self.outqueue_dir, state)}: "
                             f"{error.strerror}") from None

    def names(self, state, routing_key=None):
        """Sorted event file names in `state` (pdq, suc or err), of one key or all; others are skipped."""
        entries = self._listing(state)
        names = [name for name in entries if _name_of_key(name, routing_key)]
        names.sort()
        return names

    def _event_names(self, state, skipped=None):
        """The event names of a state directory as lists of (stamp text, routing key), a
        chunk at a time, so a million names never sit in memory at once.

        The per-name work runs in C: one regex (parse_file_name's format) over a
        joined chunk; the key rule is applied once per key. A Python loop per
        name takes several times longer, and pd-queue status and the daemon's
        scan of pdq/ read a million names with this. `skipped(name)` hears of
        every other name.
        """
        import itertools
        import operator
        import re
        event_name = re.compile(rf"^([1-9][0-9]{{0,{MAX_STAMP_DIGITS - 1}}})_(.+)\.txt$", re.MULTILINE)
        name_of = operator.attrgetter("name")
        key_of = operator.itemgetter(1)
        key_allowed = {}
        try:
            entries = os.scandir(os.path.join(self.outqueue_dir, state))
        except FileNotFoundError:
            return
        except OSError as error:
            raise SpoolError(f"cannot list {os.path.join(self.outqueue_dir, state)}: "
                             f"{error.strerror}") from None
        with entries:
            while True:
                try:
                    names = list(map(name_of, itertools.islice(entries, _NAMES_PER_CHUNK)))
                except OSError as error:
                    raise SpoolError(f"cannot list {os.path.join(self.outqueue_dir, state)}: "
                                     f"{error.strerror}") from None
                if not names:
                    return
                joined = "\n".join(names)
                if joined.count("\n") == len(names) - 1:
                    pairs = event_name.findall(joined)
                else:  # a name with a newline in it: parse name by name
                    pairs = [(str(parsed[0]), parsed[1]) for parsed in map(parse_file_name, names) if parsed]
                for key in set(map(key_of, pairs)) - key_allowed.keys():
                    key_allowed[key] = is_event_key(key)
                if not all(key_allowed[key] for key in set(map(key_of, pairs))):
                    pairs = [pair for pair in pairs if key_allowed[pair[1]]]
                if skipped is not None and len(pairs) < len(names):
                    for name in names:
                        if parse_file_name(name) is None:
                            skipped(name)
                yield pairs

    def counts_by_key(self, routing_key=None):
        """{routing key: {"pdq": n, "suc": n, "err": n}} over the whole tree."""
        import collections
        import operator
        key_of = operator.itemgetter(1)
        counts = {}
        for state in QUEUE_STATES:
            tally = collections.Counter()
            for pairs in self._event_names(state):
                tally.update(map(key_of, pairs))
            for key, count in tally.items():
                if routing_key is None or key == routing_key:
                    counts.setdefault(key, dict.fromkeys(QUEUE_STATES, 0))[state] = count
        return counts

    def pending_stamps(self, skipped=None):
        """{routing key: array of enqueue times} of everything in pdq/, in no order.

        8 bytes per event (an array, not a list of ints); `skipped(name)` hears
        of names that are not events.
        """
        import itertools
        import operator
        from array import array
        stamp_of, key_of = operator.itemgetter(0), operator.itemgetter(1)
        found = {}
        for pairs in self._event_names("pdq", skipped):
            pairs.sort(key=key_of)
            for key, group in itertools.groupby(pairs, key_of):
                stamps = found.get(key)
                if stamps is None:
                    stamps = found[key] = array("q")
                stamps.extend(map(int, map(stamp_of, group)))
        return found

    def read_entry(self, state, name):
        """The JSON object in a spool file; SpoolError if it is not a regular, sane file.

        The errors do not repeat the file name: it holds the routing key, and
        the daemon logs these reasons.
        """
        data = read_regular_file(self.path(state, name), MAX_ENTRY_BYTES)
        import json
        try:
            entry = json.loads(data)
        except (ValueError, RecursionError):
            raise SpoolError("not valid JSON") from None
        if not isinstance(entry, dict):
            raise SpoolError("not a JSON object")
        return entry

    def _reason_path(self, name):
        """Where `reject` records why an err/ event was rejected."""
        return os.path.join(self.errors_dir, name + ".json")

    def error_reason(self, name):
        """What `reject` recorded of an err/ event (a dict), or None."""
        import json
        try:
            reason = json.loads(read_regular_file(self._reason_path(name), 64 * 1024))
        except (OSError, SpoolError, ValueError, RecursionError):
            return None
        return reason if isinstance(reason, dict) else None

    # -- moving (callers hold the queue lock) ------------------------------

    def move(self, name, from_state, to_state):
        os.rename(self.path(from_state, name), self.path(to_state, name))

    def reject(self, name, reason, from_state="pdq"):
        """Move an event to err/, recording why, so `pd-queue list --state error` can say."""
        import json
        os.makedirs(self.errors_dir, exist_ok=True)
        record = dict(reason, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_file_atomically(self._reason_path(name),
                              json.dumps(record).encode(), mode=0o640)
        self.move(name, from_state, "err")

    def retry(self, routing_key=None):
        """Move err/ events (of one key, or all) back to pdq/; returns how many."""
        moved = 0
        with self.lock():
            for name in self.names("err", routing_key):
                if os.path.lexists(self.path("pdq", name)):
                    continue
                try:
                    self.move(name, "err", "pdq")
                except FileNotFoundError:
                    continue  # cleaned up meanwhile
                moved += 1
                _unlink_quietly(self._reason_path(name))
            if moved:  # so that a power cut does not quietly undo the retry
                fsync_directory(os.path.join(self.outqueue_dir, "pdq"))
                fsync_directory(os.path.join(self.outqueue_dir, "err"))
        return moved

    def discard(self, routing_key=None):
        """Delete err/ events (of one key, or all) and their recorded reasons; returns how many.

        For rejections that should never be sent (a wrong key, since fixed).
        Under the queue lock, as `retry`, which moves the same files.
        """
        removed = 0
        with self.lock():
            for name in self.names("err", routing_key):
                try:
                    os.unlink(self.path("err", name))
                except FileNotFoundError:
                    continue  # cleaned up meanwhile
                removed += 1
                _unlink_quietly(self._reason_path(name))
            if removed:  # so that a power cut does not bring them back
                fsync_directory(os.path.join(self.outqueue_dir, "err"))
        return removed

    def cleanup(self, threshold_secs, now=None):
        """Delete suc/ and err/ files older than the threshold and tmp/ files over an hour old.

        Only err/ and its reasons need the queue lock (`pd-queue retry` moves
        err/ files); suc/ and tmp/ are cleaned without it, so a large suc/
        never holds up the daemon's moves.
        """
        now = time.time() if now is None else now
        # suc/ and err/ age from when the file got there (rename sets ctime, not mtime);
        # tmp/ leftovers from when they were last written.
        removed = _remove_older(os.path.join(self.outqueue_dir, "suc"), now - threshold_secs, moved_in=True)
        removed += _remove_older(self.tmp_dir, now - STALE_TMP_SECS, moved_in=False)
        with self.lock():
            removed += _remove_older(os.path.join(self.outqueue_dir, "err"), now - threshold_secs,
                                     moved_in=True)
            if os.path.isdir(self.errors_dir):
                for reason_name in os.listdir(self.errors_dir):
                    if not os.path.lexists(self.path("err", reason_name[:-len(".json")])):
                        _unlink_quietly(os.path.join(self.errors_dir, reason_name))
        return removed


def _set_mode_of_new_directory(path, mode):
    """chmod the directory just made at `path` (mkdir drops the set-group-ID bit), through
    a descriptor: never a link or a directory someone else put there meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
    except OSError as error:
        raise SpoolError(f"cannot set the mode of the spool directory {path}: {error.strerror}") from None


def _unlink_quietly(path):
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _remove_older(directory, cutoff, moved_in):
    """Remove the entries of `directory` older than `cutoff`; symlinks are not followed.

    The listing is read as it goes (suc/ may hold a million names)."""
    removed = 0
    try:
        entries = os.scandir(directory)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            age_from = max(info.st_mtime, info.st_ctime) if moved_in else info.st_mtime
            if age_from < cutoff and not entry.is_dir(follow_symlinks=False):
                removed += _unlink_quietly(entry.path)
    return removed


class Enqueuer:
    """The original agent's enqueuer interface: `enqueue(service_key, data)` -> (name, problems)."""

    def __init__(self, spool):
        self.spool = spool

    def enqueue(self, service_key, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            return self.spool.enqueue(service_key, data), []
        except ValueError as error:
            return None, [str(error)]
