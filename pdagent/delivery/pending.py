"""One routing key's pending events in queue order, kept compactly. Pure data, no I/O.

`order` is when the entry came (its ctime, in ns) or, for an entry placed after
a backward clock step, just after the key's last one; `stamp` its name's time,
in µs (what names the file); `owner` the uid that queued it.

A key's events are parallel arrays of integers, not a list of objects: the
order (8 bytes); the stamp as its distance from the order's microsecond (4
bytes: a writer names its file as it queues it, so the two are seconds apart);
and the owner as an index into the key's table of owners (1 byte: a key has
one or a few; no array at all while it has one). A value that does not fit
widens its whole array, so any stamp and any number of owners are kept
exactly, at up to 8 and 4 bytes.
"""

from array import array
from bisect import bisect_left

_SORT_RUN = 65536   # sorted() takes at most this many at once (it builds a list of tuples)
_BUCKETS = 64
_NS_PER_US = 1000
_WIDER = {"B": "H", "H": "I", "i": "q"}  # an owner index is below 2**32: uids are 32-bit


def _fits(column, value):
    bits = 8 * column.itemsize
    low = 0 if column.typecode.isupper() else -(1 << (bits - 1))
    return low <= value < low + (1 << bits)


def _zeros(typecode, size):
    return array(typecode, [0]) * size


def _holding(column, low, high):
    """`column`, or a copy of it in the narrowest wider type that holds `low` to `high`."""
    while not (_fits(column, low) and _fits(column, high)):
        column = array(_WIDER[column.typecode], column)
    return column


class Listed:
    """Events of one key as a listing found them, in no order: parallel arrays."""

    __slots__ = ("orders", "owners", "stamps")

    def __init__(self, orders=None, stamps=None, owners=None):
        self.orders = orders if orders is not None else array("q")
        self.stamps = stamps if stamps is not None else array("q")
        self.owners = owners if owners is not None else array("I")

    def __len__(self):
        return len(self.stamps)

    def append(self, order, stamp, owner):
        self.orders.append(order)
        self.stamps.append(stamp)
        self.owners.append(owner)

    def discard(self, stamps):
        """Take out the events of `stamps` (a set) that are there, in one pass; the last
        events take their places."""
        for at in reversed([at for at, stamp in enumerate(self.stamps) if stamp in stamps]):
            for column in (self.orders, self.stamps, self.owners):
                column[at] = column[-1]
                del column[-1]


def sorted_runs(listed):
    """`listed`'s events as lists of (order, stamp, owner) rows, by (order, stamp), a run at
    a time; `listed` is emptied on the way.

    Past `_SORT_RUN` events they are split into buckets by order and each
    bucket sorted on its own (a clump is split again), so no list of all of
    them is ever built.
    """
    orders = listed.orders
    if len(orders) > _SORT_RUN:
        low, high = min(orders), max(orders)
        if low < high:
            width = (high - low) // _BUCKETS + 1
            buckets = [Listed() for _ in range(_BUCKETS)]
            columns = (orders, listed.stamps, listed.owners)
            while orders:  # off the end a slice at a time: the listing shrinks as the buckets fill
                cut = max(0, len(orders) - _SORT_RUN // 8)
                for order, stamp, owner in zip(*(column[cut:] for column in columns)):
                    buckets[(order - low) // width].append(order, stamp, owner)
                for column in columns:
                    del column[cut:]
            for bucket in buckets:
                yield from sorted_runs(bucket)
            return
    rows = sorted(zip(orders, listed.stamps, listed.owners))
    del listed.orders[:], listed.stamps[:], listed.owners[:]
    yield rows


class PendingEvents:
    """One key's pending events in queue order: compact parallel arrays with a moving head."""

    __slots__ = ("_head", "_orders", "_owner_slots", "_owners", "_slot_of", "_stamp_offsets")
    _COMPACT_AFTER = 4096

    def __init__(self):
        self._orders = array("q")
        self._stamp_offsets = array("i")  # stamp - order // _NS_PER_US
        self._owner_slots = None          # index in _owners; None while the key has one owner
        self._owners = []                 # uids, each once
        self._slot_of = {}                # uid -> its index in _owners
        self._head = 0

    @classmethod
    def from_listed(cls, listed):
        """The events of `listed` in queue order; `listed` is emptied on the way. Each array
        is made at its full size at once: one block, none left over from growing it."""
        pending = cls()
        size = len(listed)
        for uid in set(listed.owners):
            pending._new_slot(uid)
        slot_of = pending._slot_of
        if len(slot_of) > 1:
            pending._owner_slots = _zeros(_holding(array("B"), 0, len(slot_of) - 1).typecode, size)
        pending._orders = _zeros("q", size)
        pending._stamp_offsets = _zeros("i", size)
        end = 0
        for rows in sorted_runs(listed):
            at, end = end, end + len(rows)
            offsets = [stamp - order // _NS_PER_US for order, stamp, _ in rows]
            if offsets:
                pending._stamp_offsets = _holding(pending._stamp_offsets, min(offsets), max(offsets))
            pending._orders[at:end] = array("q", [row[0] for row in rows])
            pending._stamp_offsets[at:end] = array(pending._stamp_offsets.typecode, offsets)
            if pending._owner_slots is not None:
                pending._owner_slots[at:end] = array(pending._owner_slots.typecode,
                                                     [slot_of[row[2]] for row in rows])
        return pending

    def _new_slot(self, uid):
        slot = self._slot_of[uid] = len(self._owners)
        self._owners.append(uid)
        return slot

    def _encoded(self, order, stamp, owner):
        """The values the arrays keep of an event (one for each of `_columns`), the arrays
        widened to hold them."""
        offset = stamp - order // _NS_PER_US
        self._stamp_offsets = _holding(self._stamp_offsets, offset, offset)
        slot = self._slot_of.get(owner)
        if slot is None:
            slot = self._new_slot(owner)
            if slot == 1:  # a second owner: from now on each event says whose it is
                self._owner_slots = _zeros("B", len(self._orders))
        if self._owner_slots is None:
            return order, offset
        self._owner_slots = _holding(self._owner_slots, slot, slot)
        return order, offset, slot

    def _columns(self):
        if self._owner_slots is None:
            return self._orders, self._stamp_offsets
        return self._orders, self._stamp_offsets, self._owner_slots

    def _stamp(self, at):
        return self._orders[at] // _NS_PER_US + self._stamp_offsets[at]

    def _event(self, at):
        slot = self._owner_slots[at] if self._owner_slots is not None else 0
        return self._orders[at], self._stamp(at), self._owners[slot]

    def __len__(self):
        return len(self._orders) - self._head

    def __iter__(self):
        """(order, stamp, owner) of each event, in queue order."""
        return map(self._event, range(self._head, len(self._orders)))

    def stamps(self):
        return [stamp for _, stamp, _ in self]

    def first(self):
        """(order, stamp, owner) of the event that goes next."""
        return self._event(self._head)

    def last_order(self):
        return self._orders[-1] if len(self) else None

    def position(self, order, stamp):
        """Where (order, stamp) goes, and whether that very event is there already."""
        orders = self._orders
        at = bisect_left(orders, order, self._head)
        while at < len(orders) and orders[at] == order and self._stamp(at) < stamp:
            at += 1
        return at, at < len(orders) and orders[at] == order and self._stamp(at) == stamp

    def add(self, order, stamp, owner):
        """Insert the event in order; False if it is there already."""
        if len(self) == 0 or (order, stamp) > (self._orders[-1], self._stamp(-1)):
            values = self._encoded(order, stamp, owner)  # the usual case: after everything pending
            for column, value in zip(self._columns(), values):
                column.append(value)
            return True
        at, present = self.position(order, stamp)
        if present:
            return False
        values = self._encoded(order, stamp, owner)
        if at == self._head and self._head:
            self._head -= 1  # an event put back at the front: reuse the slot it left
            for column, value in zip(self._columns(), values):
                column[self._head] = value
        else:
            for column, value in zip(self._columns(), values):
                column.insert(at, value)
        return True

    def pop_first(self):
        event = self.first()
        self._head += 1
        if self._head >= self._COMPACT_AFTER and self._head * 2 >= len(self._orders):
            for column in self._columns():
                del column[:self._head]
            self._head = 0
        return event


def keep_placed(placed, listed):
    """The events of `placed` ({stamp: order}) that `listed` still holds: their orders go into
    `listed` in place of their ctimes; the rest are forgotten (None if none is left)."""
    kept = {}
    orders = listed.orders
    for at, stamp in enumerate(listed.stamps):
        order = placed.get(stamp)
        if order is not None:
            orders[at] = kept[stamp] = order
    return kept or None
