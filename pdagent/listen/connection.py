"""One client connection of pd-listen's server: its socket, the request being read, and its
phase with the deadline that goes with it (the server's sweep holds it to that deadline).

A connection goes IDLE -> HEAD -> BODY -> WORKING (the enqueue thread has its request) ->
WRITING (its answer) -> IDLE again, or LINGERING after an answer that closes it.
"""

import socket

from pdagent.listen.http import RequestReader

REQUEST_LIMIT_SECS = 120.0
LINGER_SECS = 2.0
RECV_BYTES = 65536
_LINGER_BYTES = 1024 * 1024

IDLE, HEAD, BODY, WORKING, WRITING, LINGERING = range(6)
EVICTABLE = (IDLE, HEAD)  # what a new connection may evict when the server is full


class Connection:
    """A client's socket, the request being read, its phase and the deadline of that phase."""

    __slots__ = ("answered", "client", "deadline", "keep_alive", "limits", "lingered", "outbox", "phase",
                 "reader", "request_limit", "reserved_bytes", "sock")

    def __init__(self, sock, client, now, limits):
        self.sock, self.client, self.limits = sock, client, limits
        self.reader = RequestReader()
        self.phase, self.deadline = IDLE, now + limits.idle_timeout
        self.request_limit = 0.0
        self.outbox = b""
        self.keep_alive = True
        self.answered = False  # 100 Continue sent for the current request
        self.lingered = 0
        self.reserved_bytes = 0  # of the server's BodyBudget, for the current request's body

    # -- the phases ------------------------------------------------------------------------

    def bytes_came(self, now):
        """The client sent something: a new request's head starts, or its body goes on."""
        if self.phase == IDLE:
            self._start_head(now)
        elif self.phase == BODY:
            self.deadline = min(now + self.limits.body_timeout, self.request_limit)

    def _start_head(self, now):
        self.phase, self.deadline = HEAD, now + self.limits.header_timeout
        self.request_limit = now + REQUEST_LIMIT_SECS

    def start_body(self, now):
        self.phase = BODY
        self.deadline = min(now + self.limits.body_timeout, self.request_limit)

    def start_answer(self, outbox, keep_alive, now):
        self.outbox, self.keep_alive, self.answered = outbox, keep_alive, False
        self.phase, self.deadline = WRITING, now + self.limits.body_timeout
        if not keep_alive:
            self.reader = RequestReader()  # nothing more is read: let go of what came

    def answer_sent(self, now):
        """The whole answer is out on a connection kept alive; True if the next request is in
        the buffer already (pipelined)."""
        self.phase, self.deadline = IDLE, now + self.limits.idle_timeout
        if self.reader.started:
            self._start_head(now)
            return True
        return False

    def start_lingering(self, now):
        """After an answer that closes: shut for writing and discard input for LINGER_SECS, so
        the client reads the answer rather than a reset. False if the socket is gone."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        self.phase, self.deadline, self.lingered = LINGERING, now + LINGER_SECS, 0
        return True

    # -- the socket ------------------------------------------------------------------------

    def send_quietly(self, data):
        try:
            self.sock.send(data)
        except OSError:
            pass  # the final answer will meet the same problem and close the connection

    def flush_blocking(self):
        """Send what is left of the answer, waiting up to a second (at shut-down only)."""
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(self.outbox)
        except OSError:
            pass

    def lingered_enough(self):
        """Discard what the client still sends after the answer; True once it is done (end
        of input, an error, or more than _LINGER_BYTES)."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        self.lingered += len(data)
        return not data or self.lingered > _LINGER_BYTES
