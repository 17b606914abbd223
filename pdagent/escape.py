"""Show text that others chose (file names, event fields, server answers) without its control
characters, and routing keys only masked.

Local users name files in pdq/ and write event bodies; the network writes
HTTP answers. None of it may reach the daemon's log or an operator's terminal
raw: a newline would forge a log line, an escape sequence would drive the
terminal. Whatever Python does not call printable (control, format and
separator characters, lone surrogates from undecodable file names) is shown
as `repr()` writes it; printable text, ASCII space included, is left as it
is (the commands' stdout can show it at all: cli.utf8_stdout). A routing
key, a secret of sorts, is shown masked (mask_key) by the daemon, pd-listen
and pd-queue metrics alike.
"""

from pdagent.spool.names import event_file_name, parse_file_name


def escape_controls(text):
    """`text` with every non-printable character written as repr() writes it (\\n, \\x1b, \\u202e)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char):
    return repr(char)[1:-1]  # \n, \x1b, \u202e, \udcff, ...


def mask_key(routing_key):
    """What logs and metrics show of a routing key: its last 4 characters."""
    return "****" + str(routing_key)[-4:]


def mask_name(name):
    """A spool file name as logs show it: the key part masked (whatever else the name holds)."""
    parsed = parse_file_name(name)
    if parsed:
        return event_file_name(parsed[0], mask_key(parsed[1]))
    return f"<{len(name)}-character name ending {name[-4:]!r}>"
