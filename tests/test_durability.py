"""Power loss: what a cut at any moment of a drain can make the daemon send again.

The engine runs in-process against the real stand-in, with os.fsync wrapped:
at every fsync of a directory the spool's listing is recorded as what is
durable from then on. That is the model of the journaling filesystems the
agent runs on (ext4, xfs), which spool/ relies on already: a rename is one
journal transaction, and an fsync commits every metadata change made before
it. A power cut at any point of the recorded history leaves the spool as the
most advanced listing of the fsyncs completed so far; after it, the daemon
sends again every event still in pdq/, so the repeats of a cut are the
events whose POST had started but which were still in pdq/ then. What the README states is what
this measures: at most one event per routing key, never a lost one.
"""

import collections
import os
import threading

import helpers
from helpers import routing_key

from pdagent.delivery.engine import Engine
from pdagent.events_api import EventsAPI
from pdagent.main_config import load_main_config
from pdagent.spool.names import parse_file_name
from pdagent.spool.queue import Spool
from pdagent.state import SavedState

KEYS = [routing_key(1300 + number) for number in range(4)]


class SpoolHistory:
    """What was durable when: fsync snapshots and POSTs, in one order."""

    def __init__(self, spool):
        self.spool = spool
        self.lock = threading.Lock()
        self.entries = []  # ("durable", {state: names}) or ("post", name)

    def listing(self):
        # pdq/ before suc/ and err/: a move between the listings shows the name twice
        # (counted as a repeat), never nowhere.
        return {state: set(os.listdir(self.spool.path(state, ""))) for state in ("pdq", "suc", "err")}

    def wrap_fsync(self, real_fsync):
        def fsync(fd):
            snapshot = self.listing() if os.path.isdir(f"/proc/self/fd/{fd}") else None
            real_fsync(fd)
            if snapshot is not None:
                with self.lock:
                    self.entries.append(("durable", snapshot))
        return fsync

    def wrap_post(self, real_post, names_by_dedup_key):
        def post(endpoint, body):
            with self.lock:
                self.entries.append(("post", names_by_dedup_key[body["dedup_key"]]))
            return real_post(endpoint, body)
        return post


def advance(durable, snapshot):
    """What is durable after an fsync whose listing is `snapshot`: it only ever advances.

    The listing is taken as the fsync begins, and fsyncs run on several
    threads (the syncer's, state.json's of db/): one begun earlier may end
    after a later one, and its older listing then undoes nothing. No event is
    queued during the drain, so names only leave pdq/.
    """
    return {"pdq": durable["pdq"] & snapshot["pdq"],
            "suc": durable["suc"] | snapshot["suc"],
            "err": durable["err"] | snapshot["err"]}


def test_a_power_cut_at_any_moment_repeats_at_most_one_event_per_key(agent, standin, monkeypatch):
    agent.configure(max_events_per_minute_per_key=0)
    bodies = [helpers.alert_body(KEYS[number % len(KEYS)], number, tag="power") for number in range(240)]
    names = helpers.enqueue(agent, bodies)
    names_by_dedup_key = {body["dedup_key"]: name for body, name in zip(bodies, names)}
    main_config = load_main_config(agent.config_path)
    spool = Spool(main_config.outqueue_dir, main_config.db_dir)
    history = SpoolHistory(spool)
    initial = history.listing()
    api = EventsAPI(standin.url, 10)
    api.post = history.wrap_post(api.post, names_by_dedup_key)
    monkeypatch.setattr(os, "fsync", history.wrap_fsync(os.fsync))
    engine = Engine(main_config, spool, api, SavedState(main_config.db_dir))
    runner = threading.Thread(target=engine.run, kwargs={"stop_grace_secs": 5})
    runner.start()
    try:
        helpers.wait_for(lambda: len(agent.names("suc")) == len(names), timeout=60, message="the drain")
    finally:
        engine.stop()
        runner.join(10)
    api.close()

    durable, posted = initial, set()
    worst_total = 0
    for kind, what in history.entries + [("end", None)]:
        # A cut here: the spool is `durable`; the daemon re-sends its pdq/.
        pending = durable["pdq"]
        lost = [name for name in names if name not in pending and name not in durable["suc"]]
        assert not lost, (len(lost), lost[:3], kind, len(pending), len(durable["suc"]))
        repeats = [name for name in pending if name in posted]
        per_key = collections.Counter(parse_file_name(name)[1] for name in repeats)
        assert max(per_key.values(), default=0) <= 1, per_key
        worst_total = max(worst_total, len(repeats))
        if kind == "durable":
            durable = advance(durable, what)
        elif kind == "post":
            posted.add(what)
    assert durable["pdq"] == set() and len(posted) == len(names)
    assert worst_total <= len(KEYS)
    fsyncs = sum(kind == "durable" for kind, _ in history.entries)
    helpers.report("power-cut", events=len(names), keys=len(KEYS), directory_fsyncs=fsyncs,
              worst_repeats_in_one_cut=worst_total)

