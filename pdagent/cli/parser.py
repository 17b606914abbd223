"""The commands' argument parser: `--version` on each, and usage errors in two lines.

A mistake prints the one line that matters and where help is, as git and
systemctl do, rather than the usage block first:

    pd-send: error: argument -t/--event-type: expected one argument
    Try 'pd-send --help' for more information.

Exit status 2, unless a parser sets its own (a check plugin's is UNKNOWN, 3,
since monitoring reads 2 as CRITICAL). The reason is shown with its control
characters escaped: argparse quotes some arguments it names, not all.
"""

import argparse

from pdagent import __version__
from pdagent.escape import escape_controls


class ArgumentParser(argparse.ArgumentParser):
    usage_error_status = 2

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                          help="print the version and exit")

    def error(self, message):
        self.exit(self.usage_error_status,
                  f"{self.prog}: error: {escape_controls(message)}\n"
                  f"Try '{self.prog} --help' for more information.\n")
