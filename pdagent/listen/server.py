"""pd-listen's sockets: one selector loop for all connections, a few threads for the spool.

Why this and not http.server: socketserver's threading server starts a thread
per connection, unbounded, and leaves timeouts to each handler, so a few
thousand slow or idle clients exhaust the host. Here every limit is the
server's, enforced in one place:
- Connections: at most `max_connections` open. A new one past that evicts the
  longest-quiet connection that has no whole request in progress (idle, or
  still sending its head), so idle or slow clients can never lock out a
  working one; if every connection is mid-request, the new one is closed.
- Time: a request's head must be complete `header_timeout` after its first
  byte (408); its body may not stall longer than `body_timeout` nor take
  longer than connection.REQUEST_LIMIT_SECS in all (408); an idle keep-alive connection
  closes after `idle_timeout`; a client that does not read its answer is
  dropped after `body_timeout`. One sweep a second checks them all.
- Memory: a connection holds at most one request (the head is bounded by
  http.MAX_HEAD_BYTES, the body by MAX_BODY_BYTES, both refused as soon as
  announced or exceeded); it is not read from while its request is queued.
  All connections together hold at most `max_buffered_body_bytes` of large
  bodies (limits.BodyBudget): a request whose body would not fit is answered
  503 at once, its body unread, and the client retries. Heads and small
  bodies still coming in are held up to `max_partial_request_bytes` in all
  (limits.PartialRequests): past it, the connection quiet the longest is
  answered 503, so thousands of slow clients cannot fill memory either.
- Work: parsing and framing run on the loop; the enqueue (JSON, validation,
  the spool write) runs on one enqueue thread (batches.py), which answers
  the requests that wait together as one batch: a 202 is never ahead of its
  fsync.
After an error answer the connection is shut for writing and its remaining
input discarded for a moment (a "lingering close"), so the client reads the
answer instead of a reset.
"""

import collections
import errno
import logging
import selectors
import time

from pdagent.listen.api import Answer, busy
from pdagent.listen.batches import EnqueueThread
from pdagent.listen.connection import (
    BODY,
    EVICTABLE,
    HEAD,
    IDLE,
    LINGERING,
    RECV_BYTES,
    WORKING,
    WRITING,
    Connection,
)
from pdagent.listen.http import CONTINUE, HttpError, response_bytes
from pdagent.listen.limits import BodyBudget, PartialRequests
from pdagent.listen.sockets import client_name
from pdagent.wakeup import WakeupPipe

log = logging.getLogger("pdagent.listen")

class Server:
    """The loop: accept, read, frame, hand whole requests to the enqueue thread, answer."""

    def __init__(self, listener, listening_sockets, limits):
        self.listener = listener
        self.limits = limits
        self._bodies = BodyBudget(limits.max_buffered_body_bytes)
        self._partial = PartialRequests(limits.max_partial_request_bytes)
        self._selector = selectors.DefaultSelector()
        self._listening = list(listening_sockets)
        self._connections = collections.OrderedDict()  # fd -> Connection, longest quiet first
        self._enqueuer = EnqueueThread(listener, self._answered)
        self._done = collections.deque()  # (connection, Answer) from the enqueue thread
        self._pipelined = collections.deque()  # connections with a next request already in their buffer
        self._wakeup = WakeupPipe()
        self._stopping = False

    # -- running ---------------------------------------------------------------------------

    def wake(self):
        """Make the loop look around now (signal handlers and the enqueue thread call it)."""
        self._wakeup.wake()

    def stop(self):
        self._stopping = True
        self.wake()

    def run(self, on_tick=None):
        for sock in self._listening:
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, None)
        self._selector.register(self._wakeup, selectors.EVENT_READ, None)
        self._enqueuer.start()
        next_sweep = time.monotonic() + 1.0
        while not self._stopping:
            for key, events in self._selector.select(timeout=max(0.0, next_sweep - time.monotonic())):
                if key.fileobj is self._wakeup:
                    self._wakeup.drain()
                elif key.data is None:
                    self._accept(key.fileobj)
                else:
                    self._on_ready(key.data, events)
            self._send_finished_answers()
            self._read_pipelined()
            if on_tick:
                on_tick()
            if time.monotonic() >= next_sweep:
                self._sweep(time.monotonic())
                next_sweep = time.monotonic() + 1.0
        self._shut_down()

    def _shut_down(self):
        """Stop taking requests, let the enqueues in progress finish and answer them, close all."""
        for sock in self._listening:
            self._selector.unregister(sock)
            sock.close()
        self._enqueuer.finish()
        self._send_finished_answers()
        for connection in list(self._connections.values()):
            if connection.phase == WRITING:
                connection.flush_blocking()
            self._close(connection)
        self._selector.close()
        self._wakeup.close()

    # -- connections -----------------------------------------------------------------------

    def _accept(self, listening):
        while True:
            try:
                sock, address = listening.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._evict_one()  # out of descriptors: make room for the next try
                    return
                if error.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            if len(self._connections) >= self.limits.max_connections and not self._evict_one():
                sock.close()
                continue
            sock.setblocking(False)
            connection = Connection(sock, client_name(sock, address), time.monotonic(), self.limits)
            self._connections[sock.fileno()] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _evict_one(self):
        for connection in self._connections.values():
            if connection.phase in EVICTABLE:
                self._close(connection)
                return True
        return False

    def _close(self, connection):
        fd = connection.sock.fileno()
        if fd < 0:
            return
        self._connections.pop(fd, None)
        if connection.phase != WORKING:  # else its body is held until the enqueue thread answers it
            self._selector.unregister(connection.sock)
            self._bodies.release(connection)
        self._partial.forget(connection)
        connection.sock.close()

    # -- reading ---------------------------------------------------------------------------

    def _on_ready(self, connection, events):
        if connection.phase == WRITING:
            self._write(connection)
        elif connection.phase == LINGERING:
            if connection.lingered_enough():
                self._close(connection)
        else:
            self._read(connection)

    def _read(self, connection):
        try:
            data = connection.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        self._connections.move_to_end(connection.sock.fileno())  # the longest quiet stay first
        now = time.monotonic()
        connection.bytes_came(now)
        try:
            connection.reader.feed(data)
        except HttpError as error:
            self._refuse(connection, error)
            return
        self._advance_or_refuse(connection, now)
        self._hold_partial(connection)

    def _hold_partial(self, connection):
        """Count what `connection` holds of a request still coming in; past the limit, refuse
        the request of the connection quiet the longest (PartialRequests)."""
        if connection.sock.fileno() >= 0:
            self._partial.update(connection)
        while True:
            quietest = self._partial.quietest_over_limit(sparing=connection)
            if quietest is None:
                return
            self._answer(quietest, busy(self.limits.max_partial_request_bytes, "requests still coming in"))

    def _advance_or_refuse(self, connection, now):
        try:
            self._advance(connection, now)
        except HttpError as error:
            self._refuse(connection, error)

    def _refuse(self, connection, error):
        """Answer a request that could not be read, and close: its framing can no longer be trusted."""
        self._answer(connection, Answer(error.status, {"status": "bad request", "message": str(error)},
                                        log_line=str(error), close=True))

    def _advance(self, connection, now):
        """Move the request on as far as the bytes so far allow."""
        reader = connection.reader
        if connection.phase == HEAD:
            head = reader.read_head()
            if head is None:
                return
            connection.keep_alive = head.keep_alive
            early = self.listener.check_head(head)
            if early is not None:
                if reader.body_length == 0:
                    reader.read_body()  # nothing to read: the connection is ready for the next request
                else:
                    early.close = True  # the body is not read, so the framing of what follows is lost
                self._answer(connection, early)
                return
            if not self._bodies.reserve(connection, reader.body_length):
                self._answer(connection, busy(self.limits.max_buffered_body_bytes))  # the body is not read
                return
            connection.start_body(now)
            if head.expects_continue and not connection.answered:
                connection.answered = True
                connection.send_quietly(CONTINUE)
        if connection.phase == BODY:
            head = reader.head
            body = reader.read_body()
            if body is None:
                return
            connection.phase = WORKING
            self._selector.unregister(connection.sock)
            self._enqueuer.put(connection, head, body)

    def _answered(self, pairs):
        """On the enqueue thread: queue a batch's (connection, Answer) pairs for the loop."""
        self._done.extend(pairs)
        self.wake()

    def _send_finished_answers(self):
        """Send the enqueue thread's answers, then log them: no client waits for the log
        lines of its batch. An answer whose client has left is logged all the same (a 2xx
        event is queued whether or not anyone hears of it)."""
        answered = []
        while self._done:
            connection, answer = self._done.popleft()
            answered.append((connection, answer))
            if connection.sock.fileno() < 0:
                self._bodies.release(connection)
                continue
            self._selector.register(connection.sock, selectors.EVENT_READ, connection)
            connection.phase = IDLE  # registered again; _send sets the phase that follows
            self._send(connection, answer)
        for connection, answer in answered:
            self._log(connection, answer)

    # -- answering -------------------------------------------------------------------------

    def _answer(self, connection, answer):
        self._send(connection, answer)
        self._log(connection, answer)

    def _send(self, connection, answer):
        self._bodies.release(connection)  # the request is over
        keep_alive = connection.keep_alive and not answer.close
        connection.start_answer(response_bytes(answer.status, answer.body_bytes(), keep_alive, answer.headers),
                                keep_alive, time.monotonic())
        self._partial.update(connection)
        self._write(connection)

    @staticmethod
    def _log(connection, answer):
        if answer.log_line:
            log.log(logging.INFO if answer.status < 500 else logging.WARNING,
                    "%d from %s: %s", answer.status, connection.client, answer.log_line)

    def _write(self, connection):
        try:
            sent = connection.sock.send(connection.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(connection)
            return
        connection.outbox = connection.outbox[sent:]
        if connection.outbox:
            self._selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
            return
        self._selector.modify(connection.sock, selectors.EVENT_READ, connection)
        if not connection.keep_alive:
            if not connection.start_lingering(time.monotonic()):
                self._close(connection)
        elif connection.answer_sent(time.monotonic()):
            self._pipelined.append(connection)  # read by the loop: no recursion however many are sent

    def _read_pipelined(self):
        while self._pipelined:
            connection = self._pipelined.popleft()
            if connection.sock.fileno() >= 0 and connection.phase == HEAD:
                self._advance_or_refuse(connection, time.monotonic())
                self._hold_partial(connection)

    # -- time ------------------------------------------------------------------------------

    def _sweep(self, now):
        for connection in list(self._connections.values()):
            if connection.phase == WORKING or now < connection.deadline:
                continue
            if connection.phase in (HEAD, BODY):
                what = "head" if connection.phase == HEAD else "body"
                self._answer(connection, Answer(408, {"status": "request timeout",
                                                      "message": f"the request {what} took too long"},
                                                log_line=f"request {what} timed out", close=True))
            else:
                self._close(connection)  # idle, not reading its answer, or done lingering
