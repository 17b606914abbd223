"""HTTP/1.1 requests from bytes and answers as bytes: pure, no sockets, so any input can be fed in.

Only what the Events API's clients send is taken, and each limit is checked
before the bytes it guards are kept:
- a request line `METHOD SP target SP HTTP/1.0|1.1`, then header lines, each
  ending in CRLF, all of it at most MAX_HEAD_BYTES (else 431);
- a body by Content-Length, or by `Transfer-Encoding: chunked` (the only
  coding taken, else 501), at most MAX_BODY_BYTES in all (else 413, told as
  soon as a length or a chunk says so, before the bytes are read);
- Content-Length together with Transfer-Encoding, two different
  Content-Lengths, a header line folded or holding NUL or a bare CR: 400,
  and the connection closes. These are the ambiguities request smuggling
  lives on (RFC 9112 6.1, 6.3), so none is guessed at.

Every error is an HttpError carrying the status; after one, the connection's
framing cannot be trusted, so the server answers and closes.
"""

from pdagent.formats import is_ascii_digits

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 512 * 1024
_MAX_CHUNK_LINE_BYTES = 1024
_METHODS_WITH_BODY = ("POST", "PUT", "PATCH")
# Headers whose second copy would be a second meaning: refused rather than chosen between.
_SINGLE_HEADERS = ("content-length", "host", "authorization", "content-type")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
    415: "Unsupported Media Type", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpError(Exception):
    """A request that cannot be read; `status` is the answer, the message says why in one line."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class RequestHead:
    """The request line and headers (names lower-cased; a repeated header's values joined by ', ')."""

    __slots__ = ("headers", "method", "target", "version")

    def __init__(self, method, target, version, headers):
        self.method, self.target, self.version, self.headers = method, target, version, headers

    @property
    def path(self):
        return self.target.partition("?")[0]

    @property
    def keep_alive(self):
        tokens = [token.strip().lower() for token in self.headers.get("connection", "").split(",")]
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def expects_continue(self):
        return self.headers.get("expect", "").lower() == "100-continue"


def parse_head(raw):
    """A RequestHead from the bytes before the blank line; HttpError if they are not HTTP/1.x."""
    text = raw.decode("latin-1")  # header bytes are octets; only ASCII is compared below
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN_CHARS or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505 if version.startswith("HTTP/") else 400, "only HTTP/1.0 and HTTP/1.1 are spoken")
    if any(char <= " " or char == "\x7f" for char in target):
        raise HttpError(400, "malformed request target")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or not set(name) <= _TOKEN_CHARS:
            raise HttpError(400, "malformed header line (or a folded one)")
        value = value.strip(" \t")
        if "\r" in value or "\n" in value or "\0" in value:
            raise HttpError(400, "control character in a header value")
        name = name.lower()
        if name in headers:
            if name in _SINGLE_HEADERS:
                if name == "content-length" and headers[name] == value:
                    continue  # RFC 9112 6.3 allows repeating the same length
                raise HttpError(400, f"header {name} given twice")
            value = f"{headers[name]}, {value}"
        headers[name] = value
    return RequestHead(method, target, version, headers)


class RequestReader:
    """Bytes of one connection in, whole requests out.

    feed() the bytes as they come; read_head() returns the next request's head
    once it is complete (None until then), then read_body() its body (None
    until complete). `body_length` is the announced length (None for chunked),
    known as soon as the head is, so an answer can go before the body comes.
    """

    def __init__(self):
        self._buffer = bytearray()
        self.head = None
        self.body_length = None
        self._chunked = False
        self._body = bytearray()
        self._chunk_left = 0  # bytes of the current chunk still to come, its closing CRLF included
        self._in_trailers = False

    def held_bytes(self):
        """Bytes of requests still coming in that this reader holds."""
        return len(self._buffer) + len(self._body)

    @property
    def started(self):
        """True once a byte of the next request has come (an idle connection has none)."""
        return bool(self._buffer) or self.head is not None

    def feed(self, data):
        self._buffer += data
        if self.head is None and len(self._buffer) > MAX_HEAD_BYTES and b"\r\n\r\n" not in self._buffer:
            raise HttpError(431, f"request head longer than {MAX_HEAD_BYTES} bytes")

    def read_head(self):
        if self.head is not None:
            return self.head
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        if end > MAX_HEAD_BYTES:
            raise HttpError(431, f"request head longer than {MAX_HEAD_BYTES} bytes")
        raw = bytes(self._buffer[:end])
        del self._buffer[:end + 4]
        head = parse_head(raw)
        self._frame_body(head)
        self.head = head
        return head

    def _frame_body(self, head):
        headers = head.headers
        transfer_encoding = headers.get("transfer-encoding")
        if transfer_encoding is not None:
            if "content-length" in headers:
                raise HttpError(400, "Content-Length together with Transfer-Encoding")
            if transfer_encoding.strip().lower() != "chunked":
                raise HttpError(501, "only Transfer-Encoding: chunked is taken")
            self._chunked, self.body_length = True, None
            return
        length = headers.get("content-length")
        if length is None:
            if head.method in _METHODS_WITH_BODY:
                raise HttpError(400, "a body needs Content-Length or chunked encoding")
            self.body_length = 0
            return
        if not (is_ascii_digits(length) and len(length) <= 12):
            raise HttpError(400, "Content-Length is not one number")
        self.body_length = int(length)
        if self.body_length > MAX_BODY_BYTES:
            raise HttpError(413, f"body of {self.body_length} bytes; at most {MAX_BODY_BYTES} are taken")

    def read_body(self):
        """The body once complete, else None; the reader is then ready for the next request."""
        if self._chunked:
            if not self._read_chunks():
                return None
            body = bytes(self._body)
        else:
            if len(self._buffer) < self.body_length:
                return None
            body = bytes(self._buffer[:self.body_length])
            del self._buffer[:self.body_length]
        self.head, self.body_length, self._chunked = None, None, False
        self._body, self._chunk_left, self._in_trailers = bytearray(), 0, False
        return body

    def _read_chunks(self):
        """Move what has come of a chunked body into _body; True once its last chunk and trailers are in."""
        while True:
            if self._chunk_left:
                taken = self._buffer[:self._chunk_left]
                del self._buffer[:self._chunk_left]
                self._body += taken
                self._chunk_left -= len(taken)
                if self._chunk_left:
                    return False
                if self._body[-2:] != b"\r\n":
                    raise HttpError(400, "a chunk is not followed by CRLF")
                del self._body[-2:]
                continue
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                if len(self._buffer) > _MAX_CHUNK_LINE_BYTES:
                    raise HttpError(400, "chunk size line too long")
                return False
            line = bytes(self._buffer[:line_end])
            del self._buffer[:line_end + 2]
            if self._in_trailers:
                if line == b"":
                    return True
                if len(line) > _MAX_CHUNK_LINE_BYTES:
                    raise HttpError(400, "trailer line too long")
                continue  # trailer fields are read and dropped
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF") or len(size_text) > 8:
                raise HttpError(400, "bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                self._in_trailers = True
                continue
            if len(self._body) + size > MAX_BODY_BYTES:
                raise HttpError(413, f"chunked body over {MAX_BODY_BYTES} bytes")
            self._chunk_left = size + 2


def response_bytes(status, body, keep_alive, extra_headers=()):
    """An HTTP/1.1 answer with a JSON body (bytes) and its Content-Length."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             "Connection: keep-alive" if keep_alive else "Connection: close"]
    lines += [f"{name}: {value}" for name, value in extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
