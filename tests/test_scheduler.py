"""The pure scheduler (pdagent/scheduler.py) driven through an injected clock: order, turns,
pacing, back-off, restarts, clock steps, listings, and days of simulated time over thousands
of keys, each in milliseconds."""

import collections
import random
from array import array

import pytest

from pdagent.scheduler import (
    BAD_ENTRY,
    DELIVERED,
    FAILED,
    GONE,
    MAX_RETRY_AFTER_SECS,
    MIN_RETRY_AFTER_SECS,
    PACING_WINDOW_SECS,
    READY,
    REJECTED,
    SENDING,
    SYNCING,
    THROTTLED,
    UNREACHABLE,
    WAITING,
    Scheduler,
    sorted_stamps,
)

WALL = 1795452000.0  # 2026-11-23T16:40:00Z


class Clock:
    """Monotonic seconds that only the test moves."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def schedule(clock, **settings):
    values = {"max_per_minute": 0, "backoff_interval": 60.0, "backoff_max": 600.0, "retry_limit": 60,
              "rng": random.Random(7)}
    values.update(settings)
    return Scheduler(clock, **values)


def run_due(scheduler):
    """Wake what is due, then take every ready job."""
    scheduler.wake_due()
    jobs = []
    job = scheduler.next_job()
    while job:
        jobs.append(job)
        job = scheduler.next_job()
    return jobs


def assert_due_after(scheduler, seconds, job):
    """Nothing is due until `seconds` from now; then `job` is."""
    scheduler.clock.advance(seconds - 0.001)
    assert run_due(scheduler) == []
    scheduler.clock.advance(0.001)
    assert run_due(scheduler) == [job]


# -- order and turns ---------------------------------------------------------------------

def test_a_key_sends_oldest_first_one_at_a_time_and_keys_take_turns():
    clock = Clock()
    scheduler = schedule(clock)
    for stamp in (30, 10, 20):
        scheduler.add("A", stamp)
    scheduler.add("B", 5)
    assert run_due(scheduler) == [("A", 10), ("B", 5)]  # one of A in flight; B not behind A's others
    scheduler.finish("A", DELIVERED, left_queue=True)
    scheduler.finish("B", DELIVERED, left_queue=True)
    assert run_due(scheduler) == [("A", 20)]
    scheduler.finish("A", FAILED, left_queue=False)  # put back and backed off: 30 must wait too
    assert scheduler.keys["A"].state == WAITING and run_due(scheduler) == []
    clock.advance(60)
    assert run_due(scheduler) == [("A", 20)]


def test_a_moved_event_holds_its_key_until_the_move_is_durable_but_not_the_others():
    clock = Clock()
    scheduler = schedule(clock)
    for stamp in (1, 2):
        scheduler.add("A", stamp)
        scheduler.add("B", stamp)
    assert run_due(scheduler) == [("A", 1), ("B", 1)]
    scheduler.finish("A", DELIVERED, left_queue=True, moved=True)
    scheduler.finish("B", DELIVERED, left_queue=True, moved=True)
    assert scheduler.keys["A"].state == SYNCING and run_due(scheduler) == []
    scheduler.synced(["B"])
    assert run_due(scheduler) == [("B", 2)]
    scheduler.synced(["A"])
    assert run_due(scheduler) == [("A", 2)]


def test_a_file_gone_before_its_turn_lets_the_key_go_on_and_is_not_counted_as_a_send():
    clock = Clock()
    scheduler = schedule(clock, max_per_minute=1)
    scheduler.add("A", 1)
    scheduler.add("A", 2)
    assert run_due(scheduler) == [("A", 1)]
    scheduler.finish("A", GONE, left_queue=True)
    assert run_due(scheduler) == [("A", 2)]


# -- back-off, throttling, pacing ---------------------------------------------------------------

def test_back_off_doubles_with_jitter_up_to_the_maximum_and_a_delivery_resets_it():
    clock = Clock()
    scheduler = schedule(clock, backoff_interval=10.0, backoff_max=45.0)
    scheduler.add("A", 1)
    waits = []
    for _ in range(5):
        assert run_due(scheduler) == [("A", 1)]
        scheduler.finish("A", UNREACHABLE, left_queue=False, reason="connection refused")
        waits.append(scheduler.keys["A"].backoff_until - clock())
        clock.advance(waits[-1])
    for wait, full in zip(waits, [10, 20, 40, 45, 45]):
        assert 0.75 * full <= wait <= full
    assert run_due(scheduler) == [("A", 1)]
    scheduler.finish("A", DELIVERED, left_queue=True)
    scheduler.add("A", 2)
    assert run_due(scheduler) == [("A", 2)]
    scheduler.finish("A", FAILED, left_queue=False)
    assert scheduler.keys["A"].backoff_until - clock() <= 10  # from the first step again


@pytest.mark.parametrize(("retry_after", "wait"), [
    (0, MIN_RETRY_AFTER_SECS),           # Retry-After: 0 would be a hot loop
    (0.2, MIN_RETRY_AFTER_SECS),
    (30, 30),
    (10 ** 9, MAX_RETRY_AFTER_SECS),
])
def test_retry_after_is_honoured_between_a_floor_and_a_cap(retry_after, wait):
    clock = Clock()
    scheduler = schedule(clock)
    scheduler.add("A", 1)
    run_due(scheduler)
    scheduler.finish("A", THROTTLED, left_queue=False, retry_after=retry_after)
    assert_due_after(scheduler, wait, ("A", 1))


def test_pacing_allows_the_limit_in_any_sixty_seconds_and_other_keys_go_meanwhile():
    clock = Clock()
    scheduler = schedule(clock, max_per_minute=3)
    for stamp in range(1, 8):
        scheduler.add("A", stamp)
    sent = []
    for _ in range(3):
        sent += run_due(scheduler)
        scheduler.finish("A", DELIVERED, left_queue=True)
        clock.advance(1)
    assert sent == [("A", 1), ("A", 2), ("A", 3)]
    scheduler.add("B", 1)
    assert run_due(scheduler) == [("B", 1)]
    assert_due_after(scheduler, PACING_WINDOW_SECS - 3, ("A", 4))


def test_the_retry_limit_counts_only_failures_of_one_event_in_a_row():
    clock = Clock()
    scheduler = schedule(clock, retry_limit=3)
    scheduler.add("A", 1)
    counts = []
    for _ in range(3):
        run_due(scheduler)
        counts.append(scheduler.count_failure("A"))
        scheduler.finish("A", FAILED, left_queue=counts[-1] >= 3, moved=counts[-1] >= 3)
        clock.advance(600)
    assert counts == [1, 2, 3]
    scheduler.synced(["A"])
    scheduler.add("A", 2)
    run_due(scheduler)
    assert scheduler.count_failure("A") == 1  # the next event starts from none


# -- restarts and clock steps -----------------------------------------------------------------

def _backed_off_then_restarted(kind, retry_after, wall_at_restart, clock_at_restart=5.0):
    clock = Clock()
    before = schedule(clock)
    before.add("A", 1)
    run_due(before)
    before.finish("A", kind, left_queue=False, retry_after=retry_after, reason="why")
    saved = before.saved_keys(WALL)
    restarted = schedule(Clock(clock_at_restart))  # a new boot: monotonic time starts anew
    restarted.restore(saved, wall_at_restart)
    restarted.add("A", 1)
    return saved, restarted


@pytest.mark.parametrize("kind", [UNREACHABLE, FAILED, THROTTLED])
def test_a_restart_forgets_back_off_from_failures(kind):
    saved, restarted = _backed_off_then_restarted(kind, None, WALL + 1)
    assert saved["A"]["backoff_until"] > WALL and saved["A"]["throttled"] is False
    assert run_due(restarted) == [("A", 1)]


def test_a_restart_honours_the_apis_own_throttling_deadline():
    saved, restarted = _backed_off_then_restarted(THROTTLED, 120, WALL + 20)
    assert saved["A"] == {"backoff_until": WALL + 120, "backoffs": 1, "failures": 0,
                          "reason": "why", "throttled": True}
    assert_due_after(restarted, 100, ("A", 1))


def test_a_wall_clock_stepped_back_across_a_restart_never_lengthens_a_throttle_past_the_cap():
    _, restarted = _backed_off_then_restarted(THROTTLED, 120, WALL - 30 * 86400)
    assert_due_after(restarted, MAX_RETRY_AFTER_SECS, ("A", 1))


def test_wall_time_never_enters_the_schedule():
    """A paced and a backed-off key wake on the monotonic clock whatever the wall clock says:
    saving with the wall clock an hour back (an NTP step) changes no deadline."""
    clock = Clock()
    scheduler = schedule(clock, max_per_minute=2, backoff_interval=5.0, backoff_max=5.0)
    for stamp in (1, 2, 3):
        scheduler.add("paced", stamp)
    scheduler.add("failing", 1)
    for _ in range(2):
        for key, _ in run_due(scheduler):
            scheduler.finish(key, DELIVERED if key == "paced" else UNREACHABLE, left_queue=key == "paced")
    before = scheduler.saved_keys(WALL)["failing"]["backoff_until"]
    stepped = scheduler.saved_keys(WALL - 3600)["failing"]["backoff_until"]
    assert before - stepped == 3600  # only what is shown moves with the wall clock
    clock.advance(5)
    assert run_due(scheduler) == [("failing", 1)]
    clock.advance(PACING_WINDOW_SECS - 5)
    assert run_due(scheduler) == [("paced", 3)]


def test_failure_counts_survive_a_restart():
    clock = Clock()
    before = schedule(clock, retry_limit=5)
    before.add("A", 1)
    run_due(before)
    before.count_failure("A")
    before.finish("A", FAILED, left_queue=False)
    restarted = schedule(Clock(), retry_limit=5)
    restarted.restore(before.saved_keys(WALL), WALL)
    restarted.add("A", 1)
    run_due(restarted)
    assert restarted.count_failure("A") == 2


def test_only_keys_in_trouble_are_saved():
    clock = Clock()
    scheduler = schedule(clock)
    for number in range(3000):
        scheduler.add(f"K{number}", 1)
    for routing_key, _ in run_due(scheduler):
        scheduler.finish(routing_key, REJECTED if routing_key != "K7" else UNREACHABLE,
                         left_queue=routing_key != "K7")
    assert list(scheduler.saved_keys(WALL)) == ["K7"]
    scheduler.forget_idle_keys()
    assert list(scheduler.keys) == ["K7"]


# -- listings of pdq/ -------------------------------------------------------------------------

def test_a_listing_keeps_what_changed_while_it_was_taken():
    clock = Clock()
    scheduler = schedule(clock)
    for stamp in (1, 2, 3):
        scheduler.add("A", stamp)
    scheduler.add("gone", 9)
    assert run_due(scheduler) == [("A", 1), ("gone", 9)]  # in flight when the listing starts
    scheduler.begin_listing()
    scheduler.finish("gone", DELIVERED, left_queue=True)
    scheduler.finish("A", FAILED, left_queue=False)   # put back meanwhile
    scheduler.add("B", 7)                              # notified meanwhile
    listing = {"A": array("q", [3, 1, 2]), "gone": array("q", [9]), "C": array("q", [4, 5])}
    scheduler.end_listing(listing)                     # taken before those changes
    assert list(scheduler.keys["A"].pending) == [1, 2, 3]
    assert "gone" not in scheduler.keys               # sent meanwhile: not put back
    assert list(scheduler.keys["B"].pending) == [7]
    assert run_due(scheduler) == [("B", 7), ("C", 4)]


def test_a_listing_drops_files_removed_by_hand():
    scheduler = schedule(Clock())
    for stamp in (1, 2):
        scheduler.add("A", stamp)
    scheduler.begin_listing()
    scheduler.end_listing({"A": array("q", [2])})
    assert run_due(scheduler) == [("A", 2)]


@pytest.mark.parametrize("stamps", [
    list(range(200_000, 0, -1)),                                    # over the run size, one clump
    [1_700_000_000_000_000 + (n * 7919) % 150_001 for n in range(150_001)],  # a shuffled range
    [5, 3, 1, 2**62, 4],
    [],
])
def test_sorted_stamps_sorts_without_a_list_of_everything(stamps):
    data = array("q", stamps)
    result = sorted_stamps(data)
    assert list(result) == sorted(stamps) and len(data) == 0


# -- long runs ---------------------------------------------------------------------------------

def test_days_of_traffic_over_thousands_of_keys_keep_every_rule():
    """Three simulated days, 2,000 keys, random answers: per-key order, pacing, back-off and
    the retry limit hold at every send, every event ends delivered or rejected, and idle keys
    are forgotten."""
    rng = random.Random(11)
    clock = Clock()
    limit, max_per_minute = 4, 20
    scheduler = Scheduler(clock, max_per_minute=max_per_minute, backoff_interval=30.0,
                          backoff_max=900.0, retry_limit=limit, rng=random.Random(3))
    keys = [f"K{number:04d}" for number in range(2000)]
    next_stamp = collections.Counter()
    queued = collections.defaultdict(list)
    finished = collections.defaultdict(list)
    sends = collections.defaultdict(list)
    end = clock() + 3 * 86400
    arrivals = sorted(clock() + rng.uniform(0, 3 * 86400 - 3600) for _ in range(20000))
    while clock() < end:
        while arrivals and arrivals[0] <= clock():
            arrivals.pop(0)
            key = rng.choice(keys)
            next_stamp[key] += 1
            queued[key].append(next_stamp[key])
            scheduler.add(key, next_stamp[key])
        for key, stamp in run_due(scheduler):
            record = scheduler.keys[key]
            assert record.state == SENDING and clock() >= record.backoff_until
            assert stamp == min(set(queued[key]) - set(finished[key]))  # oldest first
            sends[key].append(clock())
            recent = [when for when in sends[key] if when > clock() - PACING_WINDOW_SECS]
            assert len(recent) <= max_per_minute
            kind = rng.choice([DELIVERED] * 6 + [REJECTED, BAD_ENTRY, FAILED, UNREACHABLE, THROTTLED])
            gives_up = kind == FAILED and scheduler.count_failure(key) >= limit
            left = kind in (DELIVERED, REJECTED, BAD_ENTRY) or gives_up
            if left:
                finished[key].append(stamp)
            scheduler.finish(key, kind, left_queue=left, moved=left,
                             retry_after=rng.choice([None, 0, 5]) if kind == THROTTLED else None)
            if left:
                scheduler.synced([key])
        upcoming = [when for when in (scheduler.next_deadline(), arrivals[0] if arrivals else None)
                    if when is not None]
        clock.now = max(clock() + 0.001, min(upcoming)) if upcoming else end
    scheduler.forget_idle_keys()
    assert sum(map(len, finished.values())) == 20000
    assert all(sorted(finished[key]) == queued[key] for key in queued)
    assert scheduler.keys == {} and scheduler.in_flight == 0


def test_a_million_event_backlog_is_indexed_compactly_and_drains_in_order():
    scheduler = schedule(Clock())
    stamps = array("q", range(1_000_000, 0, -1))
    scheduler.begin_listing()
    scheduler.end_listing({"A": stamps})
    pending = scheduler.keys["A"].pending
    assert pending._stamps.itemsize == 8 and len(pending) == 1_000_000
    for expected in range(1, 20001):
        assert run_due(scheduler) == [("A", expected)]
        scheduler.finish("A", DELIVERED, left_queue=True)
    assert scheduler.keys["A"].state == READY and len(pending) == 980_000
