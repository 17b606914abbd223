"""Compact JSON encoding without importing `json` (which compiles regexes at import).

pd-send runs dozens of times a minute and must start within 1.5 times the
time of a bare interpreter; `import json` alone would take most of that
margin. Strings are escaped by the standard library's own C routine (_json),
so the output is exactly what json.dumps(..., separators=(",", ":")) writes,
in ASCII; what json.dumps would write but no strict reader takes (a lone
surrogate, NaN, Infinity) is refused instead (tests/test_differential.py).
Everything else in the agent uses the json module.
"""

from _json import encode_basestring_ascii


def dumps(value):
    """JSON text for dicts, lists, tuples, strings, ints, floats, bools and None."""
    parts = []
    _encode(value, parts.append)
    return "".join(parts)


def _encode(value, write):
    if isinstance(value, str):
        value.encode("utf-8")  # raises UnicodeEncodeError for text no JSON reader can take
        write(encode_basestring_ascii(value))
    elif value is None:
        write("null")
    elif value is True:
        write("true")
    elif value is False:
        write("false")
    elif isinstance(value, int):
        write(int.__repr__(value))
    elif isinstance(value, float):
        if value - value != 0:  # NaN or an infinity, for which it is NaN (0 for every finite float)
            raise ValueError("JSON has no NaN or infinity")
        write(float.__repr__(value))
    elif isinstance(value, dict):
        write("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            write("," if index else "")
            _encode(key, write)
            write(":")
            _encode(item, write)
        write("}")
    elif isinstance(value, (list, tuple)):
        write("[")
        for index, item in enumerate(value):
            write("," if index else "")
            _encode(item, write)
        write("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
