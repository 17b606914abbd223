"""The spool's name parser against the standard library: no name in pdq/ can stop delivery.

parse_file_name is hand-written (pd-send and the daemon's rescans run it on
every name); here it is held against a reference built from `re`, `int()`,
`unicodedata` and the routing-key validator, over arbitrary Unicode, and
counts_by_key (a regex over the joined listing) against it on a real directory.
"""

import os
import re
import shutil
import tempfile
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pdagent.spool.names import (
    MAX_STAMP_DIGITS,
    event_file_name,
    parse_file_name,
    routing_key_problem,
)
from pdagent.spool.queue import Spool

REFERENCE = re.compile(rf"([1-9][0-9]{{0,{MAX_STAMP_DIGITS - 1}}})_(.+)\.txt", re.ASCII | re.DOTALL)


def printable(text):
    """Python's definition of printable, from the Unicode database: no Other (C*), no Separator (Z*) but ' '."""
    return all(char == " " or unicodedata.category(char)[0] not in "CZ" for char in text)


def reference_parse(name):
    match = REFERENCE.fullmatch(name)
    if not match:
        return None
    routing_key = match.group(2)
    if "/" in routing_key or any(char.isspace() or char == "\0" for char in routing_key):
        return None
    try:
        if len(routing_key.encode("utf-8")) > 200:
            return None
    except UnicodeEncodeError:
        return None
    if not printable(routing_key):
        return None
    return int(match.group(1)), routing_key


digits = st.text(alphabet=st.sampled_from("0123456789²³¹٣۴߅१০੬૭୮௯౦೧൨๓໔༥၆႗០᠑𝟎𝟗"), max_size=32)
keys = st.text(max_size=40) | st.from_regex(r"[0-9A-Za-z_.\-]{1,40}", fullmatch=True)
suffixes = st.sampled_from([".txt", ".txt.tmp", ".TXT", "txt", "", ".txt\n", ".json"])
names = (st.builds(lambda stamp, key, suffix: f"{stamp}_{key}{suffix}", digits, keys, suffixes)
         | st.builds(lambda stamp, key: f"{stamp}_{key}.txt", st.integers(0, 10**20), keys)
         | st.text())


@given(names)
@example("²_x.txt")
@example("1" * 30 + "_key.txt")
@example("1700000000000000_\x1b[31mred.txt")
@example("1700000000000000_new\nline.txt")
@example("1700000000000000_bad\udcffutf8.txt")
@example("1700000000000000_a_b.txt")
@example("01_key.txt")
@example("1_.txt")
@example("1_" + "k" * 200 + ".txt")
@example("1_" + "k" * 201 + ".txt")
@settings(max_examples=2000, deadline=None)
def test_parse_file_name_agrees_with_the_standard_library(name):
    parsed = parse_file_name(name)  # never raises, whatever the name
    assert parsed == reference_parse(name)
    if parsed:
        assert event_file_name(*parsed) == name


def fits_on_disk(name):
    try:
        return name not in (".", "..") and len(os.fsencode(name)) <= 255
    except UnicodeEncodeError:  # a surrogate no byte decodes to (only U+DC80..U+DCFF do)
        return False


valid_on_disk = st.text(st.characters(blacklist_characters="/\0"), min_size=1, max_size=60).filter(fits_on_disk)


@given(st.lists(names.filter(lambda name: "/" not in name and "\0" not in name) | valid_on_disk,
                max_size=12, unique=True))
@settings(max_examples=60, deadline=None)
def test_counts_by_key_counts_exactly_the_names_parse_file_name_takes(listing):
    top = tempfile.mkdtemp(prefix="pdagent-names-")
    try:
        spool = Spool(os.path.join(top, "outqueue"), os.path.join(top, "db"))
        spool.create_dirs()
        written = []
        for name in listing:
            try:
                with open(spool.path("pdq", name), "wb"):
                    written.append(name)
            except OSError:  # too long for the filesystem, or the like: not a name here
                pass
        expected = {}
        for name in written:
            parsed = reference_parse(name)
            if parsed:
                per_key = expected.setdefault(parsed[1], {"pdq": 0, "suc": 0, "err": 0})
                per_key["pdq"] += 1
        assert spool.counts_by_key() == expected
        assert spool.names("pdq") == sorted(name for name in written if reference_parse(name))
    finally:
        shutil.rmtree(top)


# -- the routing-key rule ------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["R0utingKey0000000000000000000001", "a", "k" * 200, "key-with_punct.and:colons",
                                 "é" * 100])
def test_routing_key_that_is_safe_as_a_file_name(key):
    assert routing_key_problem(key) is None


@pytest.mark.parametrize(("key", "problem"), [
    ("", "must not be empty"), (None, "must not be empty"), (5, "must not be empty"),
    ("a/b", "'/', NUL or white space"), ("/", "'/', NUL or white space"), ("a b", "'/', NUL or white space"),
    ("a\tb", "'/', NUL or white space"), ("a\nb", "'/', NUL or white space"), ("a\0b", "'/', NUL or white space"),
    ("a\u00a0b", "'/', NUL or white space"), ("abc\udcff", "valid UTF-8"),
    ("key\x1b[31m", "non-printable"), ("key\u202e", "non-printable"),
    ("k" * 201, "too long"), ("é" * 101, "too long"),
])
def test_routing_key_that_is_not(key, problem):
    assert problem in routing_key_problem(key)
