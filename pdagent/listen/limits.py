"""What pd-listen's server bounds, besides each request's own size (http.py): time,
connections, the large request bodies it holds at once, and the requests still coming in."""

import collections

from pdagent.listen.connection import BODY, HEAD
from pdagent.listen.http import MAX_BODY_BYTES

MAX_BUFFERED_BODY_BYTES = 32 * 1024 * 1024
# Heads and small bodies still coming in, all connections together (PartialRequests).
MAX_PARTIAL_REQUEST_BYTES = 16 * 1024 * 1024
# An event's usual size is a few KiB: bodies up to this size are never refused nor counted,
# so that clients sending large bodies can never keep the usual ones out.
SMALL_BODY_BYTES = 16 * 1024


class Limits:
    def __init__(self, header_timeout=10.0, body_timeout=30.0, idle_timeout=60.0, max_connections=4096,
                 max_buffered_body_bytes=MAX_BUFFERED_BODY_BYTES,
                 max_partial_request_bytes=MAX_PARTIAL_REQUEST_BYTES):
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self.idle_timeout, self.max_connections = idle_timeout, max_connections
        self.max_buffered_body_bytes = max_buffered_body_bytes
        self.max_partial_request_bytes = max_partial_request_bytes


class BodyBudget:
    """The large request bodies held at once (being read, waiting, being answered), counted by
    what each request may hold: its Content-Length, or MAX_BODY_BYTES for a chunked body.
    Each connection can only hold one, but thousands of connections each sending a body as
    large as allowed would otherwise hold gigabytes; a request that does not fit is refused
    before its body is read. Bodies of SMALL_BODY_BYTES or less are let through uncounted
    here: PartialRequests bounds them while they come in."""

    def __init__(self, limit_bytes):
        self.limit_bytes = limit_bytes
        self.held_bytes = 0

    def reserve(self, connection, body_length):
        """Count the body of `connection`'s request (announced `body_length`, None if chunked);
        False, counting nothing, if it does not fit."""
        need = MAX_BODY_BYTES if body_length is None else body_length
        if need <= SMALL_BODY_BYTES:
            return True
        if self.held_bytes + need > self.limit_bytes:
            return False
        connection.reserved_bytes = need
        self.held_bytes += need
        return True

    def release(self, connection):
        """The request of `connection` holds its body no more (answered, or the connection closed)."""
        self.held_bytes -= connection.reserved_bytes
        connection.reserved_bytes = 0


class PartialRequests:
    """The bytes of requests still coming in (heads, and the bodies BodyBudget does not count),
    by connection, the one quiet the longest first.

    A connection holds at most a head (http.MAX_HEAD_BYTES) and a small body
    (SMALL_BODY_BYTES) at a time, but thousands of slow clients each holding
    that much would hold a hundred MiB until their timeouts. Past `limit_bytes`
    the server refuses the request of the connection that has been quiet the
    longest: a client that sends its request at once is never that one, a
    slow one is.
    """

    def __init__(self, limit_bytes):
        self.limit_bytes = limit_bytes
        self.held_bytes = 0
        self._holders = collections.OrderedDict()  # Connection -> bytes it holds, quietest first

    def update(self, connection):
        """`connection` was just read from, or its request taken or answered: count what its
        reader holds of a request still coming in (nothing while BodyBudget counts its
        body), as the latest active."""
        coming_in = connection.phase in (HEAD, BODY) and not connection.reserved_bytes
        held = connection.reader.held_bytes() if coming_in else 0
        self.held_bytes += held - self._holders.pop(connection, 0)
        if held:
            self._holders[connection] = held

    def forget(self, connection):
        self.held_bytes -= self._holders.pop(connection, 0)

    def quietest_over_limit(self, sparing):
        """While more than `limit_bytes` are held: the connection quiet the longest other than
        `sparing` (the one just read from); else None."""
        if self.held_bytes <= self.limit_bytes:
            return None
        return next((connection for connection in self._holders if connection is not sparing), None)
