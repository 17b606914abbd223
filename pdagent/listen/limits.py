"""What pd-listen's server bounds, besides each request's own size (http.py): time,
connections, and the request bodies it holds at once."""

from pdagent.listen.http import MAX_BODY_BYTES

MAX_BUFFERED_BODY_BYTES = 32 * 1024 * 1024
# An event's usual size is a few KiB: bodies up to this size are never refused nor counted,
# so that clients sending large bodies can never keep the usual ones out.
SMALL_BODY_BYTES = 16 * 1024


class Limits:
    def __init__(self, header_timeout=10.0, body_timeout=30.0, idle_timeout=60.0, max_connections=4096,
                 max_buffered_body_bytes=MAX_BUFFERED_BODY_BYTES):
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self.idle_timeout, self.max_connections = idle_timeout, max_connections
        self.max_buffered_body_bytes = max_buffered_body_bytes


class BodyBudget:
    """The large request bodies held at once (being read, waiting, being answered), counted by
    what each request may hold: its Content-Length, or MAX_BODY_BYTES for a chunked body.
    Each connection can only hold one, but thousands of connections each sending a body as
    large as allowed would otherwise hold gigabytes; a request that does not fit is refused
    before its body is read. Bodies of SMALL_BODY_BYTES or less are let through uncounted:
    they hold at most max_connections times that."""

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
