"""Command-line entry points: pd-send, pd-queue, pdagentd, pd-listen (and the integrations),
and what every command does with its terminal."""

import codecs
import io
import sys


def utf8_stdout():
    """In the C locale, Python 3.6 (RHEL 8) writes stdout as ASCII and fails on any other
    character, where 3.7 and later write UTF-8 (PEP 540): a key or a summary that is not
    ASCII would fail a command whose work is done. Make stdout UTF-8 there, as 3.7 does.
    (codecs and io are loaded at every start: importing them costs nothing.)"""
    # Only a real text stream is rewrapped: stdout may be closed (None), or a stand-in
    # (a test's capture) with no encoding or no buffer to detach.
    encoding = getattr(sys.stdout, "encoding", None)
    if encoding and codecs.lookup(encoding).name == "ascii" and isinstance(sys.stdout, io.TextIOWrapper):
        line_buffering = sys.stdout.line_buffering
        sys.stdout = io.TextIOWrapper(sys.stdout.detach(), encoding="utf-8", errors="backslashreplace",
                                      line_buffering=line_buffering)
