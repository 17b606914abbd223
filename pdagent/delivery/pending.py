"""One routing key's pending events in queue order, kept compactly: parallel arrays of
integers (order, stamp, owner), 20 bytes an event, so a million-event backlog
costs 20 MB, not a list of objects. Pure data, no I/O.

`order` is when the entry came (its ctime, in ns) or, for an entry placed after
a backward clock step, just after the key's last one; `stamp` its name's time
(what names the file); `owner` the uid that queued it.
"""

from array import array
from bisect import bisect_left

_SORT_RUN = 65536   # sorted() takes at most this many at once (it builds a list of tuples)
_BUCKETS = 64


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


def sorted_events(listed):
    """A new Listed of `listed`'s events by (order, stamp); `listed` is emptied on the way.

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
            for order, stamp, owner in zip(orders, listed.stamps, listed.owners):
                buckets[(order - low) // width].append(order, stamp, owner)
            _empty(listed)
            result = Listed()
            for bucket in buckets:
                part = sorted_events(bucket)
                result.orders.extend(part.orders)
                result.stamps.extend(part.stamps)
                result.owners.extend(part.owners)
            return result
    rows = sorted(zip(orders, listed.stamps, listed.owners))
    _empty(listed)
    return Listed(array("q", [row[0] for row in rows]), array("q", [row[1] for row in rows]),
                  array("I", [row[2] for row in rows]))


def _empty(listed):
    del listed.orders[:], listed.stamps[:], listed.owners[:]


class PendingEvents:
    """One key's pending events in queue order: parallel arrays with a moving head."""

    __slots__ = ("_head", "_orders", "_owners", "_stamps")
    _COMPACT_AFTER = 4096

    def __init__(self, ordered=None):
        ordered = ordered if ordered is not None else Listed()
        self._orders, self._stamps, self._owners = ordered.orders, ordered.stamps, ordered.owners
        self._head = 0

    def __len__(self):
        return len(self._stamps) - self._head

    def stamps(self):
        return self._stamps[self._head:]

    def first(self):
        """(order, stamp, owner) of the event that goes next."""
        head = self._head
        return self._orders[head], self._stamps[head], self._owners[head]

    def last_order(self):
        return self._orders[-1] if len(self) else None

    def position(self, order, stamp):
        """Where (order, stamp) goes, and whether that very event is there already."""
        orders, stamps = self._orders, self._stamps
        at = bisect_left(orders, order, self._head)
        while at < len(orders) and orders[at] == order and stamps[at] < stamp:
            at += 1
        return at, at < len(orders) and orders[at] == order and stamps[at] == stamp

    def add(self, order, stamp, owner):
        """Insert the event in order; False if it is there already."""
        orders = self._orders
        if len(orders) == self._head or (order, stamp) > (orders[-1], self._stamps[-1]):
            self._append(order, stamp, owner)  # the usual case: after everything pending
            return True
        at, present = self.position(order, stamp)
        if present:
            return False
        if at == self._head and self._head:
            self._head -= 1  # an event put back at the front: reuse the slot it left
            at = self._head
            orders[at], self._stamps[at], self._owners[at] = order, stamp, owner
        else:
            orders.insert(at, order)
            self._stamps.insert(at, stamp)
            self._owners.insert(at, owner)
        return True

    def _append(self, order, stamp, owner):
        self._orders.append(order)
        self._stamps.append(stamp)
        self._owners.append(owner)

    def remove(self, stamp):
        """Take out the event of `stamp` (a key's stamps are unique: they are its names)."""
        try:
            at = self._head + self._stamps[self._head:].index(stamp)  # array.index takes no start before 3.10
        except ValueError:
            return
        del self._orders[at], self._stamps[at], self._owners[at]

    def pop_first(self):
        event = self.first()
        self._head += 1
        if self._head >= self._COMPACT_AFTER and self._head * 2 >= len(self._stamps):
            head = self._head
            del self._orders[:head], self._stamps[:head], self._owners[:head]
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
