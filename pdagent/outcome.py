"""What became of one attempt at an event: its kind, and the Outcome the HTTP client and
the delivery engine hand on. events_api.py sorts HTTP answers into the first five
kinds; the engine finds the other two before any POST; the scheduler acts on them.
"""

DELIVERED = "delivered"        # 2xx: the file goes to suc/
REJECTED = "rejected"          # a 4xx that blames the event: err/ at once
THROTTLED = "throttled"        # 429: back off, never err/
FAILED = "failed"              # 5xx, 408, timeouts: back off; err/ after the retry limit
UNREACHABLE = "unreachable"    # network, DNS, proxy, TLS: back off, never err/
GONE = "gone"                  # the file left pdq/ before its turn (moved by hand)
BAD_ENTRY = "bad entry"        # not an event we can send: err/ unsent
BACK_OFF_KINDS = (THROTTLED, FAILED, UNREACHABLE)
UNSENT_KINDS = (GONE, BAD_ENTRY)    # no POST was made: the attempt takes no pacing slot


class Outcome:
    """One attempt's result: `kind`, the HTTP `status` if any, a one-line `reason`, the
    Retry-After wait in seconds if given, and whether TLS verification failed."""

    __slots__ = ("kind", "reason", "retry_after", "status", "tls_problem")

    def __init__(self, kind, status=None, reason="", retry_after=None, tls_problem=False):
        self.kind = kind
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.tls_problem = tls_problem

    def __repr__(self):
        return f"Outcome({self.kind}, {self.status}, {self.reason!r})"
