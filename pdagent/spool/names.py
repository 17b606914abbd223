"""Spool file names: `<enqueue time, microseconds>_<routing key>.txt`, and the one rule for
routing keys (a key is part of a file name).

pd-send imports this: standard library only, nothing that costs start-up.
"""

QUEUE_FOLDERS = ("pdq", "suc", "err")
MAX_KEY_BYTES = 200  # <17-digit time>_<key>.txt must fit in a 255-byte file name
# At most 17 digits: microseconds until the year 5138, well inside what
# time.gmtime() can show. Today's stamps have 16.
MAX_STAMP_DIGITS = 17
NAME_SUFFIX = ".txt"
_ASCII_DIGITS = "0123456789"


def routing_key_problem(routing_key):
    """Why `routing_key` cannot name event files (one line), or None if it can.

    Besides '/', NUL and white space, anything that is not printable
    (control, format and separator characters, lone surrogates from
    undecodable bytes) is refused, so no name a log line or a terminal shows
    can carry an escape sequence or a line break.
    """
    if not isinstance(routing_key, str) or routing_key == "":
        return "routing key (-k) must not be empty"
    if "/" in routing_key or "\0" in routing_key or any(char.isspace() for char in routing_key):
        return "routing key must not contain '/', NUL or white space"
    try:
        encoded = routing_key.encode("utf-8")
    except UnicodeEncodeError:
        return "routing key must be valid UTF-8"
    if not routing_key.isprintable():
        return "routing key must not contain control or other non-printable characters"
    if len(encoded) > MAX_KEY_BYTES:
        return f"routing key is too long (at most {MAX_KEY_BYTES} bytes)"
    return None


def is_event_key(routing_key):
    """True if `routing_key` may stand in an event file name."""
    return routing_key_problem(routing_key) is None


def event_file_name(enqueue_time_us, routing_key):
    return f"{enqueue_time_us}_{routing_key}{NAME_SUFFIX}"


def parse_file_name(name):
    """(enqueue time in microseconds, routing key) of a name in the agent's own format, else None.

    The format is <1 to 17 ASCII digits, no leading zero>_<key>.txt, with a key
    `is_event_key` accepts; the name is exactly `event_file_name` of the result.
    `str.isdigit()` is not used: it accepts digits (e.g. "²") that int() refuses.
    """
    stamp, underscore, rest = name.partition("_")
    if not underscore or not 0 < len(stamp) <= MAX_STAMP_DIGITS or stamp[0] == "0" \
            or stamp.strip(_ASCII_DIGITS) or not rest.endswith(NAME_SUFFIX):
        return None
    routing_key = rest[:-len(NAME_SUFFIX)]
    if not is_event_key(routing_key):
        return None
    return int(stamp), routing_key


def is_name_of_key(name, routing_key):
    """True if `name` is an event file name (of `routing_key`, when given)."""
    parsed = parse_file_name(name)
    return parsed is not None and (routing_key is None or parsed[1] == routing_key)
