"""Checks of text formats the agent reads from users and the network: ISO 8601 times, URLs,
IP addresses, ASCII digits.

Each is hand-written, not a regex or the standard library's parser: pd-send
checks its arguments on every call and importing `re`, `urllib.parse` or
`ipaddress` would cost a large share of its start-up budget. Each is proven
never looser than the standard library's parser by tests/test_differential.py.
"""

def is_ascii_digits(text):
    """True for a non-empty run of 0-9. str.isdigit() also says yes to '²', which int()
    refuses, and to '٣', which it reads as 3; str.isascii() is Python 3.7+."""
    return text != "" and not text.strip("0123456789")


def _digits(text, count):
    return len(text) == count and is_ascii_digits(text)


def _is_utc_offset(zone):
    """HH, HHMM or HH:MM, under 24 hours."""
    if len(zone) == 5 and zone[2] == ":":
        zone = zone[:2] + zone[3:]
    if not (_digits(zone, 2) or _digits(zone, 4)):
        return False
    return int(zone[:2]) < 24 and int(zone[2:] or 0) < 60


def is_iso8601(text):
    """YYYY-MM-DD(T| )HH:MM[:SS[(.|,)fraction]][Z|+HH[:]MM|-HH[:]MM|+HH|-HH]"""
    date, separator, clock = text[:10], text[10:11], text[11:]
    if separator not in ("T", " ") or date[4:5] != "-" or date[7:8] != "-":
        return False
    year, month, day = date[:4], date[5:7], date[8:10]
    if not (_digits(year, 4) and _digits(month, 2) and _digits(day, 2)) or year == "0000":
        return False
    if clock.endswith("Z"):
        clock = clock[:-1]
    elif "+" in clock or "-" in clock:
        at = max(clock.rfind("+"), clock.rfind("-"))
        clock, zone = clock[:at], clock[at + 1:]
        if not _is_utc_offset(zone):
            return False
    hms, dot, fraction = clock.replace(",", ".").partition(".")
    fields = hms.split(":")
    if len(fields) not in (2, 3) or not all(_digits(field, 2) for field in fields):
        return False
    if dot and (len(fields) != 3 or not is_ascii_digits(fraction)):
        return False
    hour, minute, second = int(fields[0]), int(fields[1]), int(fields[2]) if len(fields) == 3 else 0
    return (1 <= int(month) <= 12 and 1 <= int(day) <= _days_in_month(int(year), int(month))
            and hour < 24 and minute < 60 and second < 60)


def _days_in_month(year, month):
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def split_url(url, schemes=("http", "https")):
    """(scheme, host, port or None) of scheme://[user@]host[:port][/path][?query][#fragment], else None.

    Never looser than urllib.parse.urlsplit: what passes here, urlsplit
    splits into the same scheme and host without an error, and its .port reads
    (tests/test_differential.py). No white space or control characters.
    """
    if not isinstance(url, str) or any(char.isspace() or char < " " or char == "\x7f" for char in url):
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in schemes:
        return None
    authority = rest
    for delimiter in "/?#":
        authority = authority.partition(delimiter)[0]
    if authority and max(authority) > "\x7f" and not _nfkc_stable(authority):
        return None  # urlsplit refuses names that NFKC turns into '/', '@', ':'...; we refuse any change
    userinfo, _, host_port = authority.rpartition("@")
    if "[" in userinfo or "]" in userinfo:
        return None
    if host_port.startswith("["):
        host, bracket, after = host_port[1:].partition("]")
        if not bracket or not is_ipv6(host) or after[:1] not in ("", ":"):
            return None
        port = after[1:]
    else:
        if "[" in host_port or "]" in host_port:
            return None
        host, _, port = host_port.partition(":")
    if not host or (port and not (len(port) <= 5 and is_ascii_digits(port) and int(port) <= 65535)):
        return None
    return scheme, host, int(port) if port else None


def _nfkc_stable(text):
    import unicodedata  # only for a non-ASCII host: pd-send's usual path never pays for it
    return unicodedata.normalize("NFKC", text) == text


def is_url(url, schemes=("http", "https")):
    return split_url(url, schemes) is not None


def is_ipv4(text):
    """Dotted quad as ipaddress reads it (3.9.5+): four 0-255 without leading zeros."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        len(part) <= 3 and is_ascii_digits(part) and (part == "0" or part[0] != "0") and int(part) < 256
        for part in parts)


def is_ipv6(text):
    """An IPv6 literal as ipaddress.IPv6Address reads one, without a %zone: eight groups of 1-4
    hex digits, the last two maybe as a dotted quad, one '::' standing for one group or more."""
    head, gap, tail = text.partition("::")
    if "::" in tail:
        return False
    left = head.split(":") if head else []
    right = tail.split(":") if tail else []
    last = right if gap else left
    count = len(left) + len(right)
    if last and "." in last[-1]:
        if not is_ipv4(last.pop()):
            return False
        count += 1  # a dotted quad is two groups
    if not all(0 < len(group) <= 4 and not group.strip("0123456789abcdefABCDEF") for group in left + right):
        return False
    return count < 8 if gap else count == 8


def is_ip_address(text):
    """An IPv4 or IPv6 literal."""
    return is_ipv4(text) or is_ipv6(text)


# field -> (the URL key, its schemes, the keys allowed, what to say when the URL or the keys are wrong)
