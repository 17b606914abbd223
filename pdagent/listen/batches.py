"""pd-listen's enqueue thread: whole requests are answered a batch at a time, so that the
events of requests that wait together share the spool's fsyncs (a group commit).

The server's loop puts each whole request here and goes on; the thread takes
every request waiting (up to MAX_BATCH requests and MAX_BATCH_BODY_BYTES of
bodies), has the listener answer them together
(Listener.answer_all: each event durable before its 2xx), and hands the
answers back. One thread, whatever the number of clients: no thread waits per
request, and a slow disk holds up only the answers that wait on it.
"""

import collections
import logging
import threading

from pdagent.listen.api import Answer

log = logging.getLogger("pdagent.listen")

MAX_BATCH = 64
# A batch's bodies are parsed together, each several times its size in memory: a batch stops
# before this many body bytes (it always takes one request, however large).
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024
_INTERNAL_ERROR = Answer(500, {"status": "error", "message": "internal error; see pd-listen.log"}, close=True)


class EnqueueThread:
    """Answers (connection, head, body) requests in batches; `answered(pairs)` is called, on
    this thread, with each batch's (connection, Answer) pairs."""

    def __init__(self, listener, answered):
        self.listener = listener
        self.answered = answered
        self._requests = collections.deque()  # (connection, head, body); None: the end
        self._waiting = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="enqueue", daemon=True)

    def start(self):
        self._thread.start()

    def put(self, connection, head, body):
        with self._waiting:
            self._requests.append((connection, head, body))
            self._waiting.notify()

    def finish(self):
        """Answer the requests already put, then end the thread."""
        with self._waiting:
            self._requests.append(None)
            self._waiting.notify()
        self._thread.join()

    def waiting(self):
        """How many requests wait for the thread (not counting a batch being answered)."""
        return sum(1 for request in self._requests if request is not None)

    def _next_batch(self):
        with self._waiting:
            while not self._requests:
                self._waiting.wait()
            batch, body_bytes = [], 0
            while self._requests and len(batch) < MAX_BATCH and self._requests[0] is not None:
                body_bytes += len(self._requests[0][2])
                if batch and body_bytes > MAX_BATCH_BODY_BYTES:
                    break
                batch.append(self._requests.popleft())
            return batch

    def _run(self):
        while True:
            batch = self._next_batch()
            if not batch:
                return  # the end, with nothing left before it
            try:
                answers = self.listener.answer_all([(head, body) for _, head, body in batch])
            except Exception:  # a bug must not leave the clients waiting: answer 500, log the traceback
                log.exception("answering %s failed", ", ".join(connection.client for connection, _, _ in batch))
                answers = [_INTERNAL_ERROR] * len(batch)
            self.answered([(connection, answer) for (connection, _, _), answer in zip(batch, answers)])
