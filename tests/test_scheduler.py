"""The pure scheduler (pdagent/delivery/schedule.py) driven through an injected clock: order, turns,
pacing, back-off, restarts, clock steps, listings, and days of simulated time over thousands
of keys, each in milliseconds."""

import collections
import random
from array import array

import pytest

from pdagent.delivery.pending import Listed, PendingEvents
from pdagent.delivery.restart import restore, saved_keys
from pdagent.delivery.schedule import (
    MAX_RETRY_AFTER_SECS,
    MIN_RETRY_AFTER_SECS,
    PACING_WINDOW_SECS,
    READY,
    SENDING,
    SYNCING,
    WAITING,
    Scheduler,
)
from pdagent.outcome import (
    BAD_ENTRY,
    DELIVERED,
    FAILED,
    GONE,
    REJECTED,
    THROTTLED,
    UNREACHABLE,
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


def add(scheduler, routing_key, stamp, changed=None, owner=0):
    """An entry seen arriving; its ctime is its stamp unless given (an honest writer's clock)."""
    scheduler.add(routing_key, stamp, stamp if changed is None else changed, owner)


def listing(**stamps_by_key):
    """What a listing of pdq/ finds: {key: Listed} whose ctimes are the stamps."""
    found = {}
    for routing_key, stamps in stamps_by_key.items():
        found[routing_key] = Listed()
        for stamp in stamps:
            found[routing_key].append(stamp, stamp, 0)
    return found


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

def test_a_key_sends_in_the_order_its_entries_came_one_at_a_time_and_keys_take_turns():
    """Queue order is the entries' ctimes, not the stamps their names claim."""
    clock = Clock()
    scheduler = schedule(clock)
    scheduler.begin_listing()
    found = listing(B=[5])
    for stamp, changed in ((30, 100), (10, 300), (20, 200)):
        found.setdefault("A", Listed()).append(changed, stamp, 0)
    scheduler.end_listing(found)
    assert sorted(run_due(scheduler)) == [("A", 30), ("B", 5)]  # one of A in flight; B not behind A's others
    scheduler.finish("A", DELIVERED, left_queue=True)
    scheduler.finish("B", DELIVERED, left_queue=True)
    assert run_due(scheduler) == [("A", 20)]
    scheduler.finish("A", FAILED, left_queue=False)  # put back and backed off: 10 must wait too
    assert scheduler.keys["A"].phase == WAITING and run_due(scheduler) == []
    clock.advance(60)
    assert run_due(scheduler) == [("A", 20)]


def test_an_early_stamp_does_not_jump_the_line():
    """A name claiming an early time, put there after a key's events, goes after them."""
    scheduler = schedule(Clock())
    add(scheduler, "A", 1000, changed=5000)
    add(scheduler, "A", 1, changed=5000)      # the same kernel tick, a stamp from long ago
    add(scheduler, "A", 2000, changed=6000)
    add(scheduler, "A", 3, changed=7000)
    order = []
    for _ in range(4):
        [(_, stamp)] = run_due(scheduler)
        order.append(stamp)
        scheduler.finish("A", DELIVERED, left_queue=True)
    assert order == [1, 1000, 2000, 3]  # ties in one tick by name; never before an earlier tick


def test_entries_arriving_after_the_clock_stepped_back_go_last_and_keep_their_place():
    clock = Clock()
    scheduler = schedule(clock)
    add(scheduler, "A", 5000, changed=5000)
    add(scheduler, "A", 6000, changed=6000)
    add(scheduler, "A", 1000, changed=1000)   # the clock stepped back an hour meanwhile
    add(scheduler, "A", 1500, changed=1500)
    add(scheduler, "A", 1000, changed=1000)   # a late notification of the same entry
    scheduler.begin_listing()                 # a rescan finds them all by their ctimes
    scheduler.end_listing(listing(A=[1500, 1000, 6000, 5000]))
    sent = []
    for _ in range(4):
        [(_, stamp)] = run_due(scheduler)
        sent.append(stamp)
        scheduler.finish("A", DELIVERED, left_queue=True)
    assert sent == [5000, 6000, 1000, 1500] and run_due(scheduler) == []
    assert "A" not in scheduler.keys  # nothing of it is remembered once it drained


def test_owners_take_turns_before_keys():
    """One account's 300 keys delay another account's page by one send, not 300."""
    scheduler = schedule(Clock())
    for number in range(300):
        add(scheduler, f"flood-{number}", 1, owner=1001)
    add(scheduler, "victim", 2, owner=1002)
    first = [scheduler.next_job() for _ in range(3)]
    assert ("victim", 2) in first[:2]
    assert [key for key, _ in first].count("victim") == 1


def test_a_moved_event_holds_its_key_until_the_move_is_durable_but_not_the_others():
    clock = Clock()
    scheduler = schedule(clock)
    for stamp in (1, 2):
        add(scheduler, "A", stamp)
        add(scheduler, "B", stamp)
    assert run_due(scheduler) == [("A", 1), ("B", 1)]
    scheduler.finish("A", DELIVERED, left_queue=True, moved=True)
    scheduler.finish("B", DELIVERED, left_queue=True, moved=True)
    assert scheduler.keys["A"].phase == SYNCING and run_due(scheduler) == []
    scheduler.synced(["B"])
    assert run_due(scheduler) == [("B", 2)]
    scheduler.synced(["A"])
    assert run_due(scheduler) == [("A", 2)]


@pytest.mark.parametrize("kind", [GONE, BAD_ENTRY])
def test_an_attempt_that_sent_nothing_lets_the_key_go_on_and_is_not_counted_as_a_send(kind):
    clock = Clock()
    scheduler = schedule(clock, max_per_minute=1)
    for stamp in (1, 2, 3):
        add(scheduler, "A", stamp)
    assert run_due(scheduler) == [("A", 1)]
    scheduler.finish("A", kind, left_queue=True)
    assert run_due(scheduler) == [("A", 2)]
    scheduler.finish("A", DELIVERED, left_queue=True)
    assert run_due(scheduler) == []  # a POST takes the one slot a minute


# -- back-off, throttling, pacing ---------------------------------------------------------------

def test_back_off_doubles_with_jitter_up_to_the_maximum_and_a_delivery_resets_it():
    clock = Clock()
    scheduler = schedule(clock, backoff_interval=10.0, backoff_max=45.0)
    add(scheduler, "A", 1)
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
    add(scheduler, "A", 2)
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
    add(scheduler, "A", 1)
    run_due(scheduler)
    scheduler.finish("A", THROTTLED, left_queue=False, retry_after=retry_after)
    assert_due_after(scheduler, wait, ("A", 1))


def test_pacing_allows_the_limit_in_any_sixty_seconds_and_other_keys_go_meanwhile():
    clock = Clock()
    scheduler = schedule(clock, max_per_minute=3)
    for stamp in range(1, 8):
        add(scheduler, "A", stamp)
    sent = []
    for _ in range(3):
        sent += run_due(scheduler)
        scheduler.finish("A", DELIVERED, left_queue=True)
        clock.advance(1)
    assert sent == [("A", 1), ("A", 2), ("A", 3)]
    add(scheduler, "B", 1)
    assert run_due(scheduler) == [("B", 1)]
    assert_due_after(scheduler, PACING_WINDOW_SECS - 3, ("A", 4))


def test_the_retry_limit_counts_only_failures_of_one_event_in_a_row():
    clock = Clock()
    scheduler = schedule(clock, retry_limit=3)
    add(scheduler, "A", 1)
    counts = []
    for _ in range(3):
        run_due(scheduler)
        counts.append(scheduler.count_failure("A"))
        scheduler.finish("A", FAILED, left_queue=counts[-1] >= 3, moved=counts[-1] >= 3)
        clock.advance(600)
    assert counts == [1, 2, 3]
    scheduler.synced(["A"])
    add(scheduler, "A", 2)
    run_due(scheduler)
    assert scheduler.count_failure("A") == 1  # the next event starts from none


# -- restarts and clock steps -----------------------------------------------------------------

def _backed_off_then_restarted(kind, retry_after, wall_at_restart, clock_at_restart=5.0):
    clock = Clock()
    before = schedule(clock)
    add(before, "A", 1)
    run_due(before)
    before.finish("A", kind, left_queue=False, retry_after=retry_after, reason="why")
    saved = saved_keys(before, WALL)
    restarted = schedule(Clock(clock_at_restart))  # a new boot: monotonic time starts anew
    restore(restarted, saved, wall_at_restart)
    add(restarted, "A", 1)
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
        add(scheduler, "paced", stamp)
    add(scheduler, "failing", 1)
    for _ in range(2):
        for key, _ in run_due(scheduler):
            scheduler.finish(key, DELIVERED if key == "paced" else UNREACHABLE, left_queue=key == "paced")
    before = saved_keys(scheduler, WALL)["failing"]["backoff_until"]
    stepped = saved_keys(scheduler, WALL - 3600)["failing"]["backoff_until"]
    assert before - stepped == 3600  # only what is shown moves with the wall clock
    clock.advance(5)
    assert run_due(scheduler) == [("failing", 1)]
    clock.advance(PACING_WINDOW_SECS - 5)
    assert run_due(scheduler) == [("paced", 3)]


def test_failure_counts_survive_a_restart():
    clock = Clock()
    before = schedule(clock, retry_limit=5)
    add(before, "A", 1)
    run_due(before)
    before.count_failure("A")
    before.finish("A", FAILED, left_queue=False)
    restarted = schedule(Clock(), retry_limit=5)
    restore(restarted, saved_keys(before, WALL), WALL)
    add(restarted, "A", 1)
    run_due(restarted)
    assert restarted.count_failure("A") == 2


def test_only_keys_in_trouble_are_saved():
    clock = Clock()
    scheduler = schedule(clock)
    for number in range(3000):
        add(scheduler, f"K{number}", 1)
    for routing_key, _ in run_due(scheduler):
        scheduler.finish(routing_key, REJECTED if routing_key != "K7" else UNREACHABLE,
                         left_queue=routing_key != "K7")
    assert list(saved_keys(scheduler, WALL)) == ["K7"]
    scheduler.forget_idle_keys()
    assert list(scheduler.keys) == ["K7"]


# -- listings of pdq/ -------------------------------------------------------------------------

def test_a_listing_keeps_what_changed_while_it_was_taken():
    clock = Clock()
    scheduler = schedule(clock)
    for stamp in (1, 2, 3):
        add(scheduler, "A", stamp)
    add(scheduler, "gone", 9)
    assert run_due(scheduler) == [("A", 1), ("gone", 9)]  # in flight when the listing starts
    scheduler.begin_listing()
    scheduler.finish("gone", DELIVERED, left_queue=True)
    scheduler.finish("A", FAILED, left_queue=False)   # put back meanwhile
    add(scheduler, "B", 7)                              # notified meanwhile
    found = listing(A=[3, 1, 2], gone=[9], C=[4, 5])
    scheduler.end_listing(found)                     # taken before those changes
    assert list(scheduler.keys["A"].pending.stamps()) == [1, 2, 3]
    assert "gone" not in scheduler.keys               # sent meanwhile: not put back
    assert list(scheduler.keys["B"].pending.stamps()) == [7]
    assert run_due(scheduler) == [("B", 7), ("C", 4)]


def test_a_listing_drops_files_removed_by_hand():
    scheduler = schedule(Clock())
    for stamp in (1, 2):
        add(scheduler, "A", stamp)
    scheduler.begin_listing()
    scheduler.end_listing(listing(A=[2]))
    assert run_due(scheduler) == [("A", 2)]


@pytest.mark.parametrize("orders", [
    list(range(200_000, 0, -1)),                                    # over the run size, one clump
    [1_700_000_000_000_000 + (n * 7919) % 150_001 for n in range(150_001)],  # a shuffled range
    [5, 3, 1, 2**62, 4],
    [7] * 70_000 + [3],                                             # one tick over the run size
    [],
])
def test_a_listing_is_sorted_without_a_list_of_everything(orders):
    listed = Listed()
    for number, order in enumerate(orders):
        listed.append(order, len(orders) - number, number % 3)
    expected = sorted(zip(orders, range(len(orders), 0, -1), (number % 3 for number in range(len(orders)))))
    assert list(PendingEvents.from_listed(listed)) == expected and len(listed) == 0


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
            add(scheduler, key, next_stamp[key])
        for key, stamp in run_due(scheduler):
            record = scheduler.keys[key]
            assert record.phase == SENDING and clock() >= record.backoff_until
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
    scheduler.end_listing({"A": Listed(array("q", stamps), stamps, array("I", [0]) * 1_000_000)})
    pending = scheduler.keys["A"].pending
    assert sum(column.itemsize for column in pending._columns()) == 12 and len(pending) == 1_000_000
    for expected in range(1, 20001):
        assert run_due(scheduler) == [("A", expected)]
        scheduler.finish("A", DELIVERED, left_queue=True)
    assert scheduler.keys["A"].phase == READY and len(pending) == 980_000
