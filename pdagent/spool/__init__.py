"""The disk spool: one file per event under outqueue/, the original agent's tree.

    outqueue/tmp/   entries being written (never read by anyone else)
    outqueue/pdq/   pending:   <enqueue time, microseconds>_<routing key>.txt
    outqueue/suc/   delivered: same name
    outqueue/err/   rejected:  same name; why is in db/errors/<name>.json

Invariants, which everything else relies on:
- A name in pdq/ always holds a complete, fsynced entry. Writers create the
  file in tmp/, write, fsync, then hard-link it into pdq/ (link fails instead
  of overwriting, so two writers in the same microsecond both succeed: the
  loser takes the next microsecond), make the new name durable (fsync pdq/,
  or the file where the writer may not open pdq/), and unlink the tmp name.
  Entries written together share these fsyncs (a group commit).
- Queue order is the order the kernel saw entries arrive, never a name:
  per routing key the daemon sends in the order of each entry's ctime
  (set by the kernel when the name is linked in; its owner can only push it
  to "now", nobody can set it back), ties broken by name. A name's stamp is
  the writer's wall clock and only names the file: another user chooses it
  freely, so neither order nor ages rest on it. Entries the daemon sees
  arrive (inotify) after the clock stepped back still go after the key's
  earlier ones (delivery/schedule.py).
- Only regular files are events: a directory, FIFO, socket or link under
  an event's name is passed over, never read, moved or recorded.
- Only the daemon moves files out of pdq/ (rename: atomic), and only after
  the Events API answered; `pd-queue retry` moves err/ -> pdq/. Both do so
  holding the queue lock (flock on db/queue.lock), which the kernel drops
  when a process dies, so no lock is ever left behind. A move checks first
  that the name still holds the inode that was read (only its owner could
  have swapped it), and again after: nothing else is ever moved. A move is
  made durable by fsyncing the target folder, then pdq/ (the delivery
  engine batches these; `retry` does it once at the end).
- Enqueueing takes no lock and never reads pdq/: any local user can drop an
  event into a folder they cannot list (mode 3753, group pdagent). A missing
  spool is created first, with those modes. An entry pdq/'s owner (the
  daemon) could not read is refused, never queued. The sticky bit means only a file's owner and the
  daemon (the folder's owner) may remove or replace it: no user can take
  another's event away.
- Other users may put anything in pdq/, so no name is trusted: only names
  in the agent's own format (names.py) are events; every other name is
  skipped, and a file whose body names another routing key than its file
  name is a bad entry (the delivery engine moves it to err/).
- Readers (pd-queue status/list) only list and read; they write nothing.

SpoolTree, here, says where the folders are and creates them. One module per
operation, each layer on the one before:
    names.py    the file name format and the routing-key rule
    files.py    safe file helpers: atomic writes, reads that never follow a
                link or wait on a FIFO, directory fsync
    writer.py   enqueue: what pd-send imports (its start-up budget is here)
    listing.py  SpoolListing: what is in the folders, a chunk at a time
    queue.py    Spool: read, move, retry, discard, clean up, under the queue
                lock (lock.py)
"""

import os

from pdagent.spool.files import SpoolError


def db_dir_of(outqueue_dir):
    """db/ (state, reasons, the queue lock) beside outqueue/, as the original agent lays it out."""
    return os.path.join(os.path.dirname(outqueue_dir), "db")


class SpoolTree:
    """outqueue/ and its folders (tmp, pdq, suc, err), and db/ beside it."""

    def __init__(self, outqueue_dir, db_dir=None):
        self.outqueue_dir = outqueue_dir
        self.db_dir = db_dir or db_dir_of(outqueue_dir)
        self.tmp_dir = os.path.join(outqueue_dir, "tmp")
        self.errors_dir = os.path.join(self.db_dir, "errors")

    def folder(self, folder):
        return os.path.join(self.outqueue_dir, folder)

    def path(self, folder, name):
        return os.path.join(self.outqueue_dir, folder, name)

    def create_dirs(self):
        """Create the spool where missing, with the package's modes (layout.SPOOL_DIRS),
        for whoever creates it first: the daemon at its first start, or pd-send.

        The set-group-ID bit of pdq/ and tmp/ gives every user's entry the
        creator's group, so that a daemon running as the creator reads them all.
        Folders that exist are left as they are.
        """
        # Imported only here: pd-send seldom creates a spool.
        from pdagent.layout import SPOOL_DIRS
        try:
            os.makedirs(self.outqueue_dir, exist_ok=True)
        except OSError as error:
            raise SpoolError(f"cannot create the spool directory {self.outqueue_dir}: {error.strerror}") from None
        for folder, mode in SPOOL_DIRS:
            path = self.folder(folder)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                continue
            except OSError as error:
                raise SpoolError(f"cannot create the spool directory {path}: {error.strerror}") from None
            _set_mode_of_new_directory(path, mode)


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
