"""How the agent writes a time everywhere it shows or saves one: 2026-11-23T16:40:00Z (UTC)."""

import time

UTC_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_text(epoch_seconds=None):
    """`epoch_seconds` (now if None) in UTC_TIME_FORMAT."""
    return time.strftime(UTC_TIME_FORMAT, time.gmtime(epoch_seconds))
