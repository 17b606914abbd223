"""Show text that others chose (file names, event fields, server answers) without its control characters.

Local users name files in pdq/ and write event bodies; the network writes
HTTP answers. None of it may reach the daemon's log or an operator's terminal
raw: a newline would forge a log line, an escape sequence would drive the
terminal. Whatever Python does not call printable (control, format and
separator characters, lone surrogates from undecodable file names) is shown
as `repr()` writes it; printable text, ASCII space included, is left as it
is.
"""


def escape_controls(text):
    """`text` with every non-printable character written as repr() writes it (\\n, \\x1b, \\u202e)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char):
    return repr(char)[1:-1]  # \n, \x1b, \u202e, \udcff, ...
