"""A key's pending events (pdagent/delivery/pending.py) in their compact arrays: 12 bytes an
event while stamps are near their ctimes and a key has one owner, 13 with a few owners, wider
arrays when not, and the same events, in the same order, either way."""

import random

import pytest

from pdagent.delivery.pending import Listed, PendingEvents

NOW_NS = 1_795_452_000_123_456_789  # a ctime of 2026-11-23
I32 = 2**31


def itemsizes(pending):
    """Bytes an event in each array: order, stamp, and owner when the key has several."""
    return tuple(column.itemsize for column in pending._columns())


def listed_of(events):
    listed = Listed()
    for event in events:
        listed.append(*event)
    return listed


def built_one_by_one(events):
    """The events added one at a time, in the order given (inserts, not only appends)."""
    pending = PendingEvents()
    for event in events:
        assert pending.add(*event)
    return pending


def test_stamps_seconds_from_their_ctimes_and_one_owner_take_12_bytes_an_event():
    rng = random.Random(5)
    events = []
    for number in range(200_000):
        order = NOW_NS + number * 997_000 + rng.randrange(1000)
        events.append((order, order // 1000 - rng.randrange(-5_000, 120_000_000), 1000))
    pending = PendingEvents.from_listed(listed_of(events))
    assert itemsizes(pending) == (8, 4)
    assert list(pending) == sorted(events)


@pytest.mark.parametrize(("offset", "offset_size"), [
    (I32 - 1, 4), (-I32, 4),              # the ends of 32 bits
    (I32, 8), (-I32 - 1, 8),              # one past them
    (10**16 - NOW_NS // 1000, 8),         # a far-future name, 17 digits
    (1 - NOW_NS // 1000, 8),              # the earliest name there is
])
def test_a_stamp_too_far_from_its_order_widens_the_key_and_every_event_stays_exact(offset, offset_size):
    near = [(NOW_NS + number, (NOW_NS + number) // 1000 + number, 7) for number in range(5)]
    far = (NOW_NS + 2, (NOW_NS + 2) // 1000 + offset, 8)
    if far[1] in {stamp for _, stamp, _ in near}:
        far = (far[0], far[1] + 1, far[2])
    expected = sorted(near + [far])
    listed = PendingEvents.from_listed(listed_of(near + [far]))
    added = built_one_by_one(near + [far])   # appended after the others: widens a full key
    inserted = built_one_by_one([far] + near)  # first: the others are inserted before it
    for pending in (listed, added, inserted):
        assert list(pending) == expected
        assert itemsizes(pending) == (8, offset_size, 1)


def test_a_placed_order_and_a_ctime_before_1970_keep_their_stamps():
    """An order placed after a backward clock step is the key's last plus one, hours from its
    stamp; a clock set before 1970 gives negative ctimes."""
    events = [(-5_000_001_234, 1, 0), (-999, 2, 0), (NOW_NS, NOW_NS // 1000 - 3_600_000_000, 0)]
    for pending in (PendingEvents.from_listed(listed_of(events)), built_one_by_one(events[::-1])):
        assert list(pending) == sorted(events)


def test_a_second_owner_gives_every_event_its_owner_from_then_on():
    events = [(NOW_NS + number * 10, (NOW_NS + number * 10) // 1000, 1000) for number in range(6)]
    pending = PendingEvents.from_listed(listed_of(events))
    assert itemsizes(pending) == (8, 4) and pending.pop_first() == events[0]
    others = [(NOW_NS + 25, (NOW_NS + 25) // 1000 + 1, 1001), (NOW_NS - 1, (NOW_NS - 1) // 1000, 1002)]
    for event in others:  # between two of the first owner's events, then first in line
        assert pending.add(*event)
    assert pending.add(*events[0])  # put back at the front, before the other owner's event
    assert list(pending) == sorted(events + others) and itemsizes(pending) == (8, 4, 1)


@pytest.mark.parametrize(("owners", "slot_size"), [(256, 1), (257, 2), (65_536, 2), (65_537, 4)])
def test_a_key_with_many_owners_keeps_each_events_owner(owners, slot_size):
    uids = [0, 2**32 - 1] + list(range(1000, 1000 + owners - 2))
    events = [(NOW_NS + number, (NOW_NS + number) // 1000, uid) for number, uid in enumerate(uids)]
    listed = PendingEvents.from_listed(listed_of(reversed(events)))
    assert list(listed) == events and itemsizes(listed) == (8, 4, slot_size)
    few = built_one_by_one(events[:200])
    for event in reversed(events[200:]):  # every new owner's event goes first: an insert each
        assert few.add(*event)
    assert list(few) == sorted(events) and itemsizes(few) == (8, 4, slot_size)


@pytest.mark.parametrize("seed", range(6))
def test_adds_pops_and_put_backs_keep_the_same_events_in_the_same_order_as_a_sorted_list(
        seed, monkeypatch):
    """Random traffic on one key, checked against a plain sorted list after every step: arrivals
    in and out of order (some far from their stamps, some of a new owner), repeats, sends,
    events put back at the front, and the arrays compacted as the head moves on."""
    monkeypatch.setattr(PendingEvents, "_COMPACT_AFTER", 16)
    rng = random.Random(seed)
    pending, model = PendingEvents(), []
    owners = [0, 1000, 1001] + ([2000 + number for number in range(300)] if seed % 2 else [])
    for _ in range(3000):
        action = rng.random()
        if action < 0.5 or not model:
            order = NOW_NS + rng.randrange(10**9) * rng.choice([1, 1, 1, 10**4])
            offset = rng.choice([0, rng.randrange(-10**6, 10**8), rng.randrange(-10**15, 10**15)])
            event = (order, order // 1000 + offset, rng.choice(owners))
            if rng.random() < 0.1 and model:
                event = rng.choice(model)  # seen again by a listing or a late notification
            fresh = event not in model
            assert pending.add(*event) == fresh
            if fresh:
                model.append(event)
                model.sort()
        elif action < 0.8:
            assert pending.pop_first() == model.pop(0)
        else:
            event = pending.pop_first()
            assert event == model[0] and pending.add(*event)  # sent and put back
        assert len(pending) == len(model) and list(pending) == model
        assert pending.last_order() == (model[-1][0] if model else None)
        if model:
            assert pending.first() == model[0]
            assert pending.position(*model[-1][:2]) == (pending._head + len(model) - 1, True)


def test_discarding_from_a_listing_takes_out_those_events_only():
    listed = listed_of([(30, 3, 0), (10, 1, 1), (20, 2, 2), (50, 5, 3), (40, 4, 4)])
    listed.discard({1, 4, 9})  # 4 is the last one; 9 is not listed
    assert sorted(zip(listed.orders, listed.stamps, listed.owners)) == [(20, 2, 2), (30, 3, 0), (50, 5, 3)]
    listed.discard({2, 3, 5})
    assert len(listed) == 0
