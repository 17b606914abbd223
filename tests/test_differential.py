"""Every hand-written parser on pd-send's fast path, against the standard library's own.

pd-send avoids importing argparse, configparser, json, datetime, ipaddress,
urllib and email (milliseconds each); what it does by hand instead is checked
here on generated input, arbitrary Unicode included. The rule throughout:
whatever ours accepts, the standard library accepts and reads the same way;
where they would disagree, ours refuses. Where the two grammars are meant to
be the same, the tests also check the other direction, so that "ours refuses
everything" cannot pass.
"""

import configparser
import contextlib
import datetime
import email.utils
import io
import ipaddress
import json
import math
import os
import sys
import urllib.parse

import pytest
from helpers import assert_usage_error, routing_key
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pdagent import event, formats
from pdagent.cli.pd_send import OPTIONS, build_parser, fast_parse
from pdagent.config import ConfigError, read_ini
from pdagent.events_api import parse_retry_after
from pdagent.jsonwrite import dumps

KEY = routing_key(1)
MANY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, lone surrogates included; and the same without them (what a UTF-8 file can hold).
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=12)
FILE_CHAR = st.characters(exclude_categories=("Cs",))
# Characters the parsers care about, so that generated text hits their edges often.
TRICKY = "0123456789²٣０-+:.,=#;[]@/?% \t\x0c\x1c\u2028\u00a0Z T"
TRICKY_TEXT = st.text(st.sampled_from(TRICKY) | ANY_CHAR, max_size=12)


def mutated(strategy):
    """Strings from `strategy`, some with one character replaced, inserted or removed."""
    def edit(draw_args):
        text, position, char, how = draw_args
        position = position % (len(text) + 1)
        if how == "insert":
            return text[:position] + char + text[position:]
        if how == "replace":
            return text[:position] + char + text[position + 1:]
        if how == "delete":
            return text[:position] + text[position + 1:]
        return text
    return st.tuples(strategy, st.integers(0, 200), st.sampled_from(TRICKY) | ANY_CHAR,
                     st.sampled_from(["keep", "insert", "replace", "delete"])).map(edit)


# -- pd-send's fast_parse against argparse ----------------------------------------------------------

FLAGS = [flag for flags, _ in OPTIONS for flag in flags]
LONG_FLAGS = [flag for flag in FLAGS if flag.startswith("--")]
CHOICES = [choice for _, spec in OPTIONS for choice in spec.get("choices", ())]
VALUES = (TEXT | st.sampled_from(CHOICES + ["", "-", "--", "-1", "-x y", "k=v", "=v", "k=", "a|b|c"])
          | TEXT.map(lambda text: "-" + text) | st.tuples(TEXT, TEXT).map("=".join))
TOKENS = (st.sampled_from(FLAGS + ["--bogus", "-x", "--desc", "--help", "--version", "-qq", "-kKEY", "-k=KEY"])
          | st.tuples(st.sampled_from(LONG_FLAGS), VALUES).map("=".join) | VALUES)


def argparse_result(argv):
    """vars() of what argparse makes of argv, or None if it refuses (exits)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(build_parser().parse_args(argv))
        except SystemExit:
            return None


@MANY
@given(st.lists(TOKENS, max_size=8))
@example(["-d", "-x y"])
@example(["--description=", "-q", "-f", "a=b"])
@example(["--severity", "CRITICAL"])
@example(["--severity=İnfo"])
def test_fast_parse_is_argparse_or_nothing(argv):
    fast = fast_parse(argv)
    if fast is not None:
        assert vars(fast) == argparse_result(argv)


WELL_FORMED_VALUE = st.text(FILE_CHAR, max_size=10).filter(lambda text: not text.startswith("-"))


@st.composite
def well_formed_argv(draw):
    """Only known flags, each with a value argparse takes as it is."""
    argv = []
    for flags, spec in draw(st.lists(st.sampled_from(OPTIONS), max_size=8)):
        flag = draw(st.sampled_from(flags))
        if spec.get("action") == "store_true":
            argv.append(flag)
            continue
        value = draw(st.sampled_from(spec["choices"]) if "choices" in spec else WELL_FORMED_VALUE)
        if spec.get("type") is str.lower:  # a choice in any case (--severity CRITICAL)
            value = "".join(draw(st.sampled_from([char, char.upper()])) for char in value)
        if spec.get("metavar") == "KEY=VALUE":
            value = draw(st.text(FILE_CHAR, min_size=1, max_size=5).filter(
                lambda key: "=" not in key and not key.startswith("-"))) + "=" + value
        if flag.startswith("--") and draw(st.booleans()):
            argv.append(f"{flag}={value}")
        else:
            argv += [flag, value]
    return argv


@MANY
@given(well_formed_argv())
@example(["--severity", "CRITICAL"])
def test_fast_parse_takes_every_well_formed_command_line(argv):
    fast = fast_parse(argv)
    assert fast is not None
    assert vars(fast) == argparse_result(argv)


# -- the INI reader against configparser ------------------------------------------------------------

def configparser_reading(path):
    """(sections, defaults) as the reader claims to read: ConfigParser(interpolation=None, strict=False),
    defaults otherwise ('=' and ':', whole-line '#' and ';' comments, blank lines in values...)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as config_file:
            parser.read_file(config_file)
    except configparser.Error:
        return None
    return {name: dict(parser[name]) for name in parser.sections()}, dict(parser.defaults())


def our_reading(path):
    try:
        sections = read_ini(path)
    except ConfigError:
        return None
    return {name: values for name, values in sections.items() if name != "DEFAULT"}, sections.get("DEFAULT", {})


INDENT = st.sampled_from(["", "", "", " ", "  ", "\t", "\x0c", "\u3000"])
SECTION_NAME = st.sampled_from(["Main", "DEFAULT", "Other", " Main ", "a]b", "=", " "]) \
    | st.text(FILE_CHAR, min_size=1, max_size=6).filter(lambda name: "\n" not in name and "\r" not in name)
KEY_TEXT = st.sampled_from(["data_dir", "Log_Dir", "a b", "#k", ";k", "ü", "İ", " "]) \
    | st.text(FILE_CHAR, min_size=1, max_size=6)
LINE_TEXT = st.text(FILE_CHAR, max_size=10).filter(lambda text: "\n" not in text and "\r" not in text)


def _clean(text):
    return text.replace("\n", "").replace("\r", "")


@st.composite
def ini_line(draw, exact):
    """One line; with exact=True only lines the reader and configparser must agree on both ways."""
    kind = draw(st.sampled_from(["header", "option", "option", "option", "comment", "blank", "junk"]
                                if not exact else ["header", "option", "option", "option", "comment", "blank"]))
    indent = draw(INDENT)
    if kind == "header":
        return indent + "[" + _clean(draw(SECTION_NAME)) + "]"
    if kind == "option":
        key = _clean(draw(KEY_TEXT))
        if exact:
            key = key.replace("[", "(")  # '[x = 1' is an option to configparser, refused by ours
        delimiter = draw(st.sampled_from(["=", " = ", ":", ": ", " :", "=:", ":="]))
        return indent + key + delimiter + _clean(draw(LINE_TEXT))
    if kind == "comment":
        return indent + draw(st.sampled_from("#;")) + _clean(draw(LINE_TEXT))
    if kind == "blank":
        return draw(st.sampled_from(["", " ", "\t", "\x0c", "\x1c", "\u2028", "\u00a0"]))
    return _clean(draw(LINE_TEXT))


def ini_text(exact):
    lines = st.lists(ini_line(exact), max_size=10)
    ending = st.sampled_from(["\n", "\n", "\r\n", "\r"])
    return st.tuples(lines, ending, st.booleans()).map(
        lambda drawn: drawn[1].join(drawn[0]) + (drawn[1] if drawn[2] else ""))


def write_ini(directory, text):
    path = os.path.join(directory, "generated.conf")
    with open(path, "w", encoding="utf-8", newline="") as config_file:
        config_file.write(text)
    return path


@pytest.fixture(scope="module")
def ini_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ini"))


@MANY
@given(ini_text(exact=False) | st.text(FILE_CHAR, max_size=40))
@example("[Main]\n  a = 1\n  b = 2\n")
@example("[Main]\na =\n  x\n")
@example("[Main]\na = 1\n\n  more\n")
@example("[Main]\n=a:b\n")
@example("[ Main ]\na = 1\n")
@example("[DEFAULT]\nx = 1\n[Main]\na = 2\n")
@example("[Main]\na = x\x0cy\n")
@example("[Main]\na = 1\n[Other]\nb = 2\n[Main]\na = 3\n  more\n")
def test_ini_reader_reads_as_configparser_or_refuses(ini_dir, text):
    path = write_ini(ini_dir, text)
    ours = our_reading(path)
    if ours is not None:
        assert ours == configparser_reading(path)


@MANY
@given(ini_text(exact=True))
def test_ini_reader_agrees_with_configparser_both_ways(ini_dir, text):
    path = write_ini(ini_dir, text)
    assert our_reading(path) == configparser_reading(path)


# -- jsonwrite.dumps against json.dumps -------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | TEXT | st.floats()
    | st.integers() | st.integers(min_value=-10 ** 5000, max_value=10 ** 5000),
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


def leaves(value):
    if isinstance(value, dict):
        yield from value
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def has_surrogate(value):
    return any(isinstance(leaf, str) and any("\ud800" <= char <= "\udfff" for char in leaf)
               for leaf in leaves(value))


def has_non_finite(value):
    return any(isinstance(leaf, float) and not math.isfinite(leaf) for leaf in leaves(value))


@MANY
@given(JSON_VALUES)
@example("\ud800")
@example([1.5, -0.0, 5e-324, 1e308, 2 ** 64])
@example(10 ** 4300)
def test_dumps_is_compact_json_dumps_or_refuses(value):
    try:
        expected = json.dumps(value, separators=(",", ":"))
    except ValueError:  # an int of more digits than int() will print (Python 3.11+)
        expected = None
    try:
        ours = dumps(value)
    except UnicodeEncodeError:
        assert has_surrogate(value)  # no JSON reader need take a lone surrogate
        return
    except ValueError:
        assert has_non_finite(value) or expected is None  # NaN and Infinity are not JSON
        return
    assert ours == expected
    assert not has_surrogate(value) and not has_non_finite(value)
    assert json.loads(ours) == json.loads(expected)


# -- ISO 8601 timestamps against datetime.fromisoformat --------------------------------------------
# The reference is datetime.fromisoformat of Python 3.11+, the standard library's own ISO 8601
# reader (the versions before it read only isoformat()'s output). datetime.strptime would be the
# same on 3.6-3.13 only for formats without %z (whose grammar changed in 3.7), and it would
# have to be told each of our forms in turn: it checks a format, not ISO 8601. Ours is the same
# code on every version, so what is proven on 3.11+ holds wherever it runs.

needs_fromisoformat = pytest.mark.skipif(sys.version_info < (3, 11),
                                         reason="datetime.fromisoformat reads ISO 8601 from Python 3.11")


def stdlib_reads(text):
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


@st.composite
def our_timestamps(draw):
    """(text, the moment it names) in every form ours documents."""
    moment = draw(st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)))
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{draw(st.sampled_from('T '))}"
            f"{moment.hour:02d}:{moment.minute:02d}")
    if not draw(st.booleans()):
        moment = moment.replace(second=0, microsecond=0)
    elif draw(st.booleans()):
        fraction = draw(st.text(st.sampled_from("0123456789"), min_size=1, max_size=12))
        text += f":{moment.second:02d}{draw(st.sampled_from('.,'))}{fraction}"
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    else:
        text += f":{moment.second:02d}"
        moment = moment.replace(microsecond=0)
    zone = draw(st.sampled_from(["", "Z", "HH:MM", "HHMM", "HH"]))
    hours, minutes = draw(st.integers(0, 23)), 0 if zone == "HH" else draw(st.integers(0, 59))
    sign = draw(st.sampled_from("+-"))
    if zone == "Z":
        text, moment = text + "Z", moment.replace(tzinfo=datetime.timezone.utc)
    elif zone:
        text += sign + {"HH:MM": f"{hours:02d}:{minutes:02d}", "HHMM": f"{hours:02d}{minutes:02d}",
                        "HH": f"{hours:02d}"}[zone]
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        moment = moment.replace(tzinfo=datetime.timezone(offset if sign == "+" else -offset))
    return text, moment


@needs_fromisoformat
@MANY
@given(our_timestamps())
def test_every_timestamp_of_our_forms_is_taken_and_means_what_the_stdlib_reads(timestamp):
    text, moment = timestamp
    event.check_timestamp(text)
    assert datetime.datetime.fromisoformat(text) == moment


@needs_fromisoformat
@MANY
@given(mutated(our_timestamps().map(lambda timestamp: timestamp[0])) | TRICKY_TEXT | TEXT)
@example("2026-12-31T23:59:60Z")
@example("0000-01-01T00:00:00Z")
@example("2026-11-23T16:40:00+0:530")
def test_no_timestamp_ours_takes_is_refused_by_the_stdlib(text):
    try:
        event.check_timestamp(text)
    except event.EventError:
        return
    assert stdlib_reads(text), text


# -- URLs against urllib.parse.urlsplit -------------------------------------------------------------

HOSTS = st.sampled_from(["example.com", "EXAMPLE.com", "127.0.0.1", "[::1]", "[2001:db8::7]", "[v1.x]",
                         "[::1", "::1]", "[abc]", "bücher.example", "ｅxample.com", "a\u2100b", "", "h"]) \
    | st.text(st.sampled_from("abc.-[]:%") | ANY_CHAR, max_size=8)
PORTS = st.sampled_from(["", ":", ":80", ":65535", ":65536", ":0", ":²", ":٣", ":+1", ":8_0", ":99999999999"])


@st.composite
def urls(draw):
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", ""]) | TEXT)
    userinfo = draw(st.sampled_from(["", "user@", "u:p@", "a@b@", "[x@"]) | TEXT.map(lambda text: text + "@"))
    rest = draw(st.sampled_from(["", "/", "/path?q=1#f", "?x@evil/", "#@x:1"]) | TEXT)
    return f"{scheme}://{userinfo}{draw(HOSTS)}{draw(PORTS)}{rest}"


@MANY
@given(urls() | mutated(urls()) | TRICKY_TEXT)
@example("http://h:²/")
@example("http://h?x@evil/")
@example("http://[abc]/")
@example("http://a\uff03b/")
@example("http://h:" + "9" * 5000 + "/")  # int() of over 4300 digits raises (Python 3.11+)
def test_every_url_ours_takes_splits_the_same_in_urlsplit(url):
    parts = formats.split_url(url, ("http", "https"))
    if parts is None:
        return
    scheme, host, port = parts
    split = urllib.parse.urlsplit(url)
    assert (split.scheme, split.hostname, split.port) == (scheme, host.lower(), port)


@MANY
@given(st.sampled_from(["http", "https"]), st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
       st.none() | st.integers(0, 65535), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=10))
def test_plain_urls_are_taken(scheme, host, port, path):
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}/{path}"
    assert formats.split_url(url) == (scheme, host, port)


# -- IP addresses against ipaddress.ip_address -----------------------------------------------------

def stdlib_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


ADDRESSES = (
    st.integers(0, 2 ** 32 - 1).map(lambda number: str(ipaddress.IPv4Address(number)))
    | st.integers(0, 2 ** 128 - 1).map(lambda number: ipaddress.IPv6Address(number))
    .flatmap(lambda address: st.sampled_from([address.compressed, address.exploded, address.compressed.upper()]))
    | st.integers(0, 2 ** 32 - 1).map(lambda number: "::ffff:" + str(ipaddress.IPv4Address(number)))
)


@MANY
@given(ADDRESSES | mutated(ADDRESSES) | TRICKY_TEXT | TEXT)
@example("01.2.3.4")
@example("1.2.3.²")
@example("1.2.3.4::")
@example("::1%eth0")
@example("1:2:3:4:5:6:7::")
def test_ip_check_is_ipaddress(text):
    ours = formats.is_ip_address(text)
    if ours:
        assert stdlib_ip(text), text
    elif "%" not in text and sys.version_info >= (3, 9, 5):  # ours takes no zone; leading zeros went in 3.9.5
        assert not stdlib_ip(text), text


# -- Retry-After against int() and email.utils ------------------------------------------------------

NOW = 1_800_000_000.0
HTTP_DATES = st.datetimes(min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(9999, 12, 31),
                          timezones=st.just(datetime.timezone.utc)).map(email.utils.format_datetime)
RETRY_AFTERS = (st.integers(0, 10 ** 30).map(str) | HTTP_DATES | mutated(HTTP_DATES)
                | st.sampled_from(["²", "٣", "+5", "-5", "5_0", " 7 ", "1e3", "0x10", "Wed, 21 Oct 2015 07:28:00 GMT"])
                | TRICKY_TEXT | TEXT)


@MANY
@given(RETRY_AFTERS)
def test_retry_after_is_int_or_email_date_and_never_raises(value):
    assert parse_retry_after(value, now=NOW) == stdlib_retry_after(value)


def stdlib_retry_after(value):
    """Seconds from NOW by int() on ASCII digits or email.utils on a date; None for what neither reads."""
    stripped = value.strip()
    if stripped and all(char in "0123456789" for char in stripped):
        return float(int(stripped))
    try:
        when = email.utils.parsedate_to_datetime(stripped)
        return None if when is None else max(0.0, when.timestamp() - NOW)  # None: Python < 3.10
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None  # no date, or no moment (year 0, a naive overflow)


# -- digits other than 0-9: one line, never a traceback ---------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--timestamp", "2026-11-23T16:40:0²Z"],
    ["--timestamp", "٢٠٢٦-11-23T16:40:00Z"],
    ["--link", "https://wiki.example.com:²/runbook"],
    ["--image", "https://img.example.com:٣/i.png"],
], ids=["timestamp superscript", "timestamp Arabic-Indic", "link port", "image port"])
def test_pd_send_refuses_unicode_digits_in_one_line(offline_agent, argv):
    result = offline_agent.send("-k", KEY, "-t", "trigger", "-d", "x", *argv)
    assert_usage_error(result, "pd-send", "")
    assert offline_agent.names("pdq") == []


@pytest.mark.parametrize("key, value", [("source_address", "10.0.0.²"), ("events_api_url", "http://127.0.0.1:²"),
                                        ("proxy_url", "http://proxy:٣١٢٨"), ("send_interval_secs", "²")])
def test_daemon_refuses_unicode_digits_in_its_config_in_one_line(offline_agent, key, value):
    offline_agent.configure(**{key: value})
    result = offline_agent.run("pdagentd", "-f", user=(offline_agent.uid, offline_agent.gid))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"pdagentd: {offline_agent.config_path}: key '{key}' must be "), line
