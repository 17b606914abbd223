"""The man pages (man/*.1): one per command, each naming every option its argparse parser has
(and no option it lacks), so the pages cannot drift from the commands; groff reads them
without a warning, as lintian does.

The parser is the one the command's main() builds: main(["--help"]) runs with argparse's
parse_known_args (which parse_args calls) replaced by one that hands the parser over.
"""

import argparse
import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_packaging import COMMANDS  # {command: its module}

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


class _Built(Exception):
    def __init__(self, parser):
        super().__init__(parser.prog)
        self.parser = parser


def parser_of(module_name, monkeypatch):
    def hand_over(parser, *_args, **_kwargs):
        raise _Built(parser)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", hand_over)
    with pytest.raises(_Built) as built:
        importlib.import_module(module_name).main(["--help"])
    return built.value.parser


def options_and_subcommands(parser):
    """Every option string of the parser and its sub-commands' parsers, and the sub-commands."""
    options, subcommands = set(), set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                subcommands.add(name)
                more_options, more_subcommands = options_and_subcommands(subparser)
                options |= more_options
                subcommands |= more_subcommands
    return options, subcommands


def plain(roff):
    """The page's text with roff's minus signs made hyphens and font changes dropped."""
    return re.sub(r"\\f[BIRP]", "", roff.replace("\\-", "-"))


def option_headings(roff):
    """The options a page describes: those in the tag line of each .TP paragraph."""
    lines = roff.splitlines()
    tags = [lines[number + 1] for number, line in enumerate(lines[:-1]) if line == ".TP"]
    return {option for tag in tags for option in OPTION.findall(plain(tag))}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_man_page_names_every_option_of_the_parser_and_no_other(command, monkeypatch):
    roff = (MAN / f"{command}.1").read_text()
    text = plain(roff)
    options, subcommands = options_and_subcommands(parser_of(COMMANDS[command], monkeypatch))
    assert options, command
    missing = [option for option in sorted(options)
               if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)]
    assert missing == [], f"{command}.1 does not name {missing}"
    for subcommand in subcommands:
        assert f"\n.SS {subcommand}\n" in roff, f"{command}.1 has no section for {subcommand}"
    assert option_headings(roff) - options == set(), f"{command}.1 describes options {command} lacks"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_man_page_is_the_commands(command):
    roff = (MAN / f"{command}.1").read_text()
    assert roff.startswith(f".TH {command.upper()} 1 ")
    name = roff[roff.index(".SH NAME\n") + len(".SH NAME\n"):].splitlines()[0]
    assert name.startswith(f"{command} \\- "), name
    for section in ("SYNOPSIS", "DESCRIPTION", "OPTIONS" if command != "pd-queue" else "COMMANDS",
                    "EXIT STATUS", "SEE ALSO"):
        assert f"\n.SH {section}\n" in roff, (command, section)


def test_there_is_a_page_for_each_command_and_no_other():
    assert sorted(path.name for path in MAN.iterdir()) == sorted(f"{command}.1" for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_groff_reads_the_page_without_a_warning(command):
    """What lintian runs on a package's man pages."""
    if shutil.which("man") is None or shutil.which("groff") is None:
        pytest.skip("man and groff are not installed")
    result = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(MAN / f"{command}.1")],
                            capture_output=True, text=True, check=False,
                            env={"LC_ALL": "C.UTF-8", "MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stderr) == (0, "")
