"""One side of a shard's order book: price levels, each a FIFO of orders in time priority.

Bids (requirements) are best at the highest price, asks (availabilities) at the lowest. Only orders
with open quantity rest here; reserved, filled, cancelled and expired quantity does not.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from actors.core.orders import Order

COMPACT_AFTER = 32  # removals from a level before it may be compacted


class BookSide:
    """Price levels of one side. ``levels[price]`` maps order id -> order in priority order.

    A level is a dict (insertion order = time priority; O(1) append, removal by id and iteration
    from the front). A dict keeps the slots of removed entries until it grows, so a deep level
    consumed from the front would make every walk from its front skip the removed ones; ``removed``
    counts removals per level and the level is copied (compacted) once they outnumber its orders
    (amortised O(1) per removal)."""

    __slots__ = ("levels", "prices", "is_bid", "removed")

    def __init__(self, is_bid: bool):
        self.levels: dict[int, dict[str, Order]] = {}
        self.prices: list[int] = []  # ascending
        self.is_bid = is_bid
        self.removed: dict[int, int] = {}

    def __len__(self) -> int:
        return sum(len(lvl) for lvl in self.levels.values())

    def add(self, order: Order) -> None:
        """Append ``order`` at the back of its price level (newest priority)."""
        lvl = self.levels.get(order.price)
        if lvl is None:
            lvl = self.levels[order.price] = {}
            insort(self.prices, order.price)
        lvl[order.order_id] = order

    def add_by_priority(self, order: Order) -> None:
        """Insert ``order`` at its ``priority`` position (after a reservation is released)."""
        self.add(order)
        lvl = self.levels[order.price]
        if len(lvl) > 1 and next(reversed(lvl.values())).priority < max(o.priority for o in lvl.values()):
            self.levels[order.price] = dict(sorted(lvl.items(), key=lambda kv: kv[1].priority))

    def remove(self, order: Order) -> None:
        """Take ``order`` out of the book; no-op if it is not resting."""
        price = order.price
        lvl = self.levels.get(price)
        if lvl is None or lvl.pop(order.order_id, None) is None:
            return
        if not lvl:
            del self.levels[price]
            del self.prices[bisect_left(self.prices, price)]
            self.removed.pop(price, None)
            return
        n = self.removed.get(price, 0) + 1
        if n > COMPACT_AFTER and n > len(lvl):
            self.levels[price] = dict(lvl)
            n = 0
        self.removed[price] = n

    def best_price(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def crossing(self, limit: int) -> Iterator[Order]:
        """Orders that cross a taker's ``limit`` (asks <= limit, or bids >= limit), best price first,
        then time priority. The caller must not mutate the book while iterating."""
        prices = self.prices
        if self.is_bid:
            i = len(prices) - 1
            while i >= 0 and prices[i] >= limit:
                yield from self.levels[prices[i]].values()
                i -= 1
        else:
            n = len(prices)
            i = 0
            while i < n and prices[i] <= limit:
                yield from self.levels[prices[i]].values()
                i += 1

    def crossing_levels(self, limit: int) -> Iterator[tuple[int, dict[str, Order]]]:
        """``(price, orders)`` of the levels that cross ``limit``, best first (see :meth:`crossing`)."""
        prices = self.prices
        if self.is_bid:
            i = len(prices) - 1
            while i >= 0 and prices[i] >= limit:
                yield prices[i], self.levels[prices[i]]
                i -= 1
        else:
            n = len(prices)
            i = 0
            while i < n and prices[i] <= limit:
                yield prices[i], self.levels[prices[i]]
                i += 1

    def iter_levels(self) -> Iterator[tuple[int, dict[str, Order]]]:
        """``(price, orders)`` best level first."""
        seq = reversed(self.prices) if self.is_bid else iter(self.prices)
        for p in seq:
            yield p, self.levels[p]
