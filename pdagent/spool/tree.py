"""SpoolTree: where the spool's folders are, and creating them where missing."""

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
