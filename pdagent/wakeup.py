"""A self-pipe: how a signal handler or another thread wakes a loop that waits in select().

The handler only writes a byte (safe in a signal handler); the loop selects on
`fileno()` and drains what was written before it looks around.
"""

import os


class WakeupPipe:
    def __init__(self):
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self):
        return self._read

    def wake(self):
        if self._write < 0:
            return  # closed: nothing waits, and the descriptor's number may be another file's now
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway

    def drain(self):
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self):
        read, write = self._read, self._write
        self._read = self._write = -1
        os.close(read)
        os.close(write)
