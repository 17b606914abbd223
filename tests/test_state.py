"""pdagent/state.py: db/state.json read whatever it holds (never trusted, never followed as a
link, never waited on), and the daemon's counters saved and read back.

What the daemon does with the saved keys across a restart is test_scheduler.py's (in-process)
and test_daemon_operations.py's (real processes); get_stats reading it is test_library_api.py's.
"""

import json
import os
import re
import stat

import pytest

from pdagent.state import MAX_STATE_BYTES, STATE_FILE, SavedState, read_state

EMPTY = {"counters": {"delivered": 0, "failed": 0, "started_on": None}, "keys": {}}
SAVED_KEY = {"backoff_until": 1795450952.5, "backoffs": 2, "failures": 1, "reason": "HTTP 503",
             "throttled": False}


@pytest.fixture
def db_dir(tmp_path):
    return str(tmp_path)


def write_state(db_dir, content):
    with open(os.path.join(db_dir, STATE_FILE), "wb") as state_file:
        state_file.write(content if isinstance(content, bytes) else json.dumps(content).encode())


def read_warned(db_dir):
    """read_state's result and what it said to `warn`."""
    warnings = []
    return read_state(db_dir, warn=warnings.append), warnings


def test_no_file_is_an_empty_state_without_a_warning(db_dir):
    assert read_warned(db_dir) == (EMPTY, [])


def test_a_saved_state_is_read_back(db_dir):
    saved = {"counters": {"delivered": 12, "failed": 1, "started_on": "2026-11-23T16:40:00Z"},
             "keys": {"K1": SAVED_KEY}}
    write_state(db_dir, saved)
    assert read_warned(db_dir) == (saved, [])


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b"",
], ids=["not JSON", "not UTF-8", "nested too deeply", "empty"])
def test_a_file_that_is_not_json_is_ignored_with_one_warning(db_dir, content):
    write_state(db_dir, content)
    state, warnings = read_warned(db_dir)
    assert state == EMPTY
    assert len(warnings) == 1 and warnings[0].startswith(f"ignoring unreadable {STATE_FILE}: ")


@pytest.mark.parametrize("content", [
    [1, 2], "text", 5, None,
    {"counters": [1], "keys": "K1"},
    {"counters": None, "keys": None},
], ids=["list", "string", "number", "null", "wrong inner types", "null inner"])
def test_json_of_the_wrong_shape_is_an_empty_state(db_dir, content):
    write_state(db_dir, content)
    assert read_warned(db_dir) == (EMPTY, [])


@pytest.mark.parametrize("value", [-1, True, 2.5, "7", None, [3]])
def test_a_counter_that_is_not_a_count_reads_as_0(db_dir, value):
    write_state(db_dir, {"counters": {"delivered": value, "failed": 4}})
    assert read_state(db_dir)["counters"] == {"delivered": 0, "failed": 4, "started_on": None}


def test_a_key_whose_entry_is_not_an_object_is_dropped(db_dir):
    write_state(db_dir, {"keys": {"K1": SAVED_KEY, "K2": 5, "K3": [1], "K4": None}})
    assert read_state(db_dir)["keys"] == {"K1": SAVED_KEY}


def test_a_link_is_not_followed(db_dir, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"counters": {"delivered": 99}}))
    os.symlink(target, os.path.join(db_dir, STATE_FILE))
    state, warnings = read_warned(db_dir)
    assert state == EMPTY
    assert warnings == [f"ignoring unreadable {STATE_FILE}: a symbolic link; not followed"]


def test_a_fifo_is_not_waited_on(db_dir):
    os.mkfifo(os.path.join(db_dir, STATE_FILE))
    state, warnings = read_warned(db_dir)  # would block for good if it opened the FIFO to read
    assert state == EMPTY
    assert warnings == [f"ignoring unreadable {STATE_FILE}: not a regular file"]


def test_a_file_over_the_limit_is_not_read(db_dir):
    path = os.path.join(db_dir, STATE_FILE)
    with open(path, "wb") as state_file:
        state_file.truncate(MAX_STATE_BYTES + 1)  # sparse: no disk used
    state, warnings = read_warned(db_dir)
    assert state == EMPTY
    limit = f"{MAX_STATE_BYTES + 1} bytes, over the {MAX_STATE_BYTES}-byte limit"
    assert warnings == [f"ignoring unreadable {STATE_FILE}: {limit}"]


# -- SavedState: the daemon's side --------------------------------------------------------------

def test_counters_saved_and_loaded_by_the_next_daemon(db_dir):
    state = SavedState(db_dir)
    assert not state.dirty and state.counters == EMPTY["counters"]
    state.start()
    assert state.dirty
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", state.counters["started_on"])
    state.count("delivered")
    state.count("delivered")
    state.count("failed")
    data = state.encode({"K1": SAVED_KEY})
    assert not state.dirty
    state.write(data)

    again = SavedState(db_dir)
    assert again.counters == {"delivered": 2, "failed": 1, "started_on": state.counters["started_on"]}
    assert again.saved_keys == {"K1": SAVED_KEY}
    assert read_state(db_dir) == {"counters": again.counters, "keys": {"K1": SAVED_KEY}}


def test_the_file_is_replaced_whole_and_readable_by_the_daemons_group_only(db_dir):
    write_state(db_dir, {"counters": {"delivered": 1}})
    os.chmod(os.path.join(db_dir, STATE_FILE), 0o666)
    state = SavedState(db_dir)
    state.count("delivered")
    state.write(state.encode({}))
    assert os.listdir(db_dir) == [STATE_FILE]  # no temporary file left beside it
    assert stat.S_IMODE(os.stat(os.path.join(db_dir, STATE_FILE)).st_mode) == 0o640
    assert read_state(db_dir)["counters"]["delivered"] == 2


def test_encode_is_stable_json(db_dir):
    state = SavedState(db_dir)
    first = state.encode({"b": {"x": 1}, "a": {"y": 2}})
    assert first == state.encode({"a": {"y": 2}, "b": {"x": 1}})
    assert json.loads(first) == {"counters": EMPTY["counters"], "keys": {"a": {"y": 2}, "b": {"x": 1}}}


def test_an_unreadable_file_at_start_up_is_logged_and_the_daemon_starts_afresh(db_dir, caplog):
    write_state(db_dir, b"{broken")
    with caplog.at_level("WARNING", logger="pdagent.state"):
        state = SavedState(db_dir)
    assert state.counters == EMPTY["counters"] and state.saved_keys == {}
    assert [record.getMessage().split(":")[0] for record in caplog.records] \
        == [f"ignoring unreadable {STATE_FILE}"]
