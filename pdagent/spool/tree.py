"""SpoolTree: where the spool's folders are, and creating them where missing."""

import os

from pdagent.spool.files import SpoolError
from pdagent.spool.lock import QueueLock
from pdagent.spool.names import QUEUE_FOLDERS


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

    def lock(self, required=True, on_failure=None):
        return QueueLock(self.db_dir, required, on_failure)

    def create_dirs(self):
        """Create the tree where missing (dev layout and first use; packages create it with its modes)."""
        for folder in ("tmp",) + QUEUE_FOLDERS:
            path = self.folder(folder)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as error:
                raise SpoolError(f"cannot create the spool directory {path}: {error.strerror}") from None
