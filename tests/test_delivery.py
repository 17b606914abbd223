"""The delivery engine's parts in-process, on a real spool, with an Events API client that
answers from a script instead of the network: index (what is pending), engine (threads,
what each answer does), commit (moves, the entry that was read), housekeeping (state.json,
cleanup on the injected wall clock).

Through real processes and the real stand-in, the same rules are tested in test_daemon.py,
the fault suites and the hostile-user suites; here each part is driven directly and fast.
"""

import json
import os
import threading
import time

import pytest
from helpers import routing_key, wait_for

from pdagent.delivery.commit import Committer
from pdagent.delivery.engine import Engine
from pdagent.delivery.guard import GuardedSchedule
from pdagent.delivery.index import PendingIndex
from pdagent.delivery.schedule import Scheduler
from pdagent.event import build_alert, make_entry
from pdagent.main_config import load_main_config
from pdagent.outcome import BAD_ENTRY, DELIVERED, REJECTED, UNREACHABLE, Outcome
from pdagent.spool.queue import Spool
from pdagent.state import SavedState

KEY, OTHER = routing_key(1400), routing_key(1401)


class ScriptedAPI:
    """Answers each POST with what `answer(body)` says (DELIVERED by default); records bodies."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda body: Outcome(DELIVERED, 202, "HTTP 202"))
        self.bodies = []
        self.lock = threading.Lock()

    def post(self, endpoint, body):
        with self.lock:
            self.bodies.append(body)
        return self.answer(body)

    def dedup_keys(self):
        with self.lock:
            return [body["dedup_key"] for body in self.bodies]


@pytest.fixture
def home(tmp_path):
    data_dir = tmp_path / "data"
    config = tmp_path / "pdagent.conf"
    config.write_text(f"[Main]\ndata_dir = {data_dir}\nlog_dir = {tmp_path}\npid_dir = {tmp_path}\n"
                      "backoff_interval_secs = 60\nbackoff_max_secs = 60\nsend_interval_secs = 60\n")
    main_config = load_main_config(str(config))
    spool = Spool(main_config.outqueue_dir, main_config.db_dir)
    spool.create_dirs()
    os.makedirs(main_config.db_dir, exist_ok=True)
    return main_config, spool


def queue(spool, key, dedup_key, action="trigger"):
    entry = make_entry("alert", build_alert(key, action, summary=dedup_key, source="test", dedup_key=dedup_key),
                       None, "test")
    return spool.enqueue(key, json.dumps(entry).encode())


class Running:
    """An Engine running on a thread of its own until the block ends."""

    def __init__(self, main_config, spool, api, **engine_args):
        self.engine = Engine(main_config, spool, api, SavedState(main_config.db_dir), **engine_args)
        self.thread = threading.Thread(target=self.engine.run, kwargs={"stop_grace_secs": 2.0})

    def __enter__(self):
        self.thread.start()
        return self.engine

    def __exit__(self, *exc_info):
        self.engine.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


# -- engine and commit ------------------------------------------------------------------------

def test_each_answer_moves_the_file_as_the_table_says(home):
    main_config, spool = home
    answers = {"ok": Outcome(DELIVERED, 202, "HTTP 202"), "bad": Outcome(REJECTED, 400, "HTTP 400: nope"),
               "down": Outcome(UNREACHABLE, reason="connection refused")}
    api = ScriptedAPI(lambda body: answers[body["dedup_key"]])
    names = {dedup_key: queue(spool, KEY if dedup_key != "down" else OTHER, dedup_key) for dedup_key in answers}
    with Running(main_config, spool, api):
        wait_for(lambda: sorted(api.dedup_keys()) == ["bad", "down", "ok"], message="one POST each")
        wait_for(lambda: spool.names("suc") == [names["ok"]] and spool.names("err") == [names["bad"]],
                 message="the delivered and the rejected moved")
    assert spool.names("pdq") == [names["down"]]  # unreachable: kept, backed off
    assert spool.error_reason(names["bad"])["reason"] == "HTTP 400: nope"
    with open(os.path.join(main_config.db_dir, "state.json")) as state_file:
        counters = json.load(state_file)["counters"]
    assert (counters["delivered"], counters["failed"]) == (1, 1)


def test_a_key_sends_in_queue_order_one_at_a_time(home):
    main_config, spool = home
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def answer(body):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.01)
        with lock:
            in_flight[0] -= 1
        return Outcome(DELIVERED, 202, "HTTP 202")
    api = ScriptedAPI(answer)
    for number in range(20):
        queue(spool, KEY, f"e{number:02d}")
    with Running(main_config, spool, api, senders=4):
        wait_for(lambda: len(api.bodies) == 20, message="all sent")
    assert api.dedup_keys() == [f"e{number:02d}" for number in range(20)] and most[0] == 1


def test_a_bad_file_goes_to_err_unsent_and_a_directory_is_passed_over(home):
    main_config, spool = home
    with open(spool.path("pdq", f"1000000000000000_{KEY}.txt"), "w") as bad:
        bad.write("{not json")
    os.mkdir(spool.path("pdq", f"1000000000000001_{KEY}.txt"))
    after = queue(spool, KEY, "after")
    api = ScriptedAPI()
    with Running(main_config, spool, api):
        wait_for(lambda: api.dedup_keys() == ["after"], message="the event behind them sent")
        wait_for(lambda: spool.names("suc") == [after], message="and moved")
    assert spool.names("err") == [f"1000000000000000_{KEY}.txt"]
    assert spool.error_reason(f"1000000000000000_{KEY}.txt")["kind"] == BAD_ENTRY
    assert os.path.isdir(spool.path("pdq", f"1000000000000001_{KEY}.txt"))


def test_an_entry_replaced_before_it_is_read_is_passed_over_and_the_key_goes_on(home):
    main_config, spool = home
    first = queue(spool, KEY, "first")
    second = queue(spool, KEY, "second")

    def answer(body):
        if body["dedup_key"] == "first":  # indexed already; its owner swaps it before its turn
            os.unlink(spool.path("pdq", second))
            os.mkdir(spool.path("pdq", second))
        return Outcome(DELIVERED, 202, "HTTP 202")
    api = ScriptedAPI(answer)
    with Running(main_config, spool, api):
        wait_for(lambda: spool.names("suc") == [first], message="the first delivered")
        queue(spool, KEY, "third")
        wait_for(lambda: api.dedup_keys() == ["first", "third"], timeout=5, message="the third, no back-off")
    assert os.path.isdir(spool.path("pdq", second)) and spool.names("err") == []


def test_an_entry_replaced_during_its_post_is_left_alone_and_the_key_goes_on(home):
    main_config, spool = home
    first = queue(spool, KEY, "first")

    def answer(body):
        if body["dedup_key"] == "first":  # its owner swaps the file while the POST runs
            os.unlink(spool.path("pdq", first))
            os.mkdir(spool.path("pdq", first))
        return Outcome(DELIVERED, 202, "HTTP 202")
    api = ScriptedAPI(answer)
    with Running(main_config, spool, api) as engine:
        wait_for(lambda: api.dedup_keys() == ["first"], message="the first POST")
        queue(spool, KEY, "second")
        wait_for(lambda: api.dedup_keys() == ["first", "second"], timeout=5, message="no back-off")
        assert engine.scheduler.keys.get(KEY) is None or engine.scheduler.keys[KEY].backoffs == 0
    assert os.path.isdir(spool.path("pdq", first)) and first not in spool.names("suc")


def test_a_move_waits_for_the_queue_lock_and_gives_up_on_stop(home):
    _, spool = home
    guarded = GuardedSchedule(Scheduler(time.monotonic))
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            guarded.stopping = True
    committer = Committer(spool, guarded, time.monotonic, sleep)
    name = queue(spool, KEY, "held")
    moves = []
    holder = spool.lock()
    assert holder.try_acquire()
    try:
        mover = threading.Thread(target=lambda: moves.append(
            committer.move_out(name, spool.regular_file_inode(name), "suc", Outcome(DELIVERED, 202))), daemon=True)
        mover.start()
        mover.join(5)
        assert not mover.is_alive(), "the move did not give up on stop"
    finally:
        holder.release()
    [move] = moves
    assert (move.moved, move.left_queue, len(sleeps)) == (False, False, 3)
    assert spool.names("pdq") == [name]


# -- index ------------------------------------------------------------------------------------

def test_the_index_orders_by_when_files_came_and_skips_what_is_no_event(home, caplog):
    _, spool = home
    guarded = GuardedSchedule(Scheduler(time.monotonic))
    index = PendingIndex(spool, guarded, 60, time.monotonic)
    late = queue(spool, KEY, "early-name")  # queued first ...
    time.sleep(0.02)
    early_named = spool.enqueue(KEY, b"{}", now=1_000_000_000)  # ... then a name claiming 2001
    os.mkfifo(spool.path("pdq", f"1000000000000002_{KEY}.txt"))
    open(spool.path("pdq", "notes.txt"), "w").close()
    index.list_pending(first=True)
    with guarded.lock:
        jobs = [guarded.scheduler.next_job()]
        guarded.scheduler.finish(KEY, DELIVERED, left_queue=True)
        jobs.append(guarded.scheduler.next_job())
    assert [job[1] for job in jobs] == [int(late.split("_")[0]), int(early_named.split("_")[0])]
    skipped = [record.getMessage() for record in caplog.records if "skipping" in record.getMessage()]
    assert len(skipped) == 2 and any("not a regular file" in line for line in skipped)
    index.arrived(["notes.txt", f"1000000000000002_{KEY}.txt"])  # seen again: logged once each
    assert len([record for record in caplog.records if "skipping" in record.getMessage()]) == 2


# -- housekeeping -----------------------------------------------------------------------------

def test_cleanup_follows_the_injected_wall_clock(home):
    main_config, spool = home
    name = queue(spool, KEY, "old")
    spool.move(name, "pdq", "suc")
    api = ScriptedAPI()
    later = time.time() + main_config.cleanup_threshold_secs + 60
    with Running(main_config, spool, api, wall_clock=lambda: later):
        wait_for(lambda: spool.names("suc") == [], message="suc/ cleaned as of the injected time")


def test_state_is_saved_and_counters_survive_a_restart(home):
    main_config, spool = home
    queue(spool, KEY, "one")
    with Running(main_config, spool, ScriptedAPI()):
        wait_for(lambda: spool.names("suc"), message="delivered")
    queue(spool, KEY, "two")
    with Running(main_config, spool, ScriptedAPI()):
        wait_for(lambda: len(spool.names("suc")) == 2, message="delivered")
    with open(os.path.join(main_config.db_dir, "state.json")) as state_file:
        assert json.load(state_file)["counters"]["delivered"] == 2
