"""Price-time priority book: a dict of levels keyed by integer price, a bisect-maintained
ascending price list, and a FIFO deque of orders per level.

Removal from the middle of a level is lazy: the order is flagged off-book and the level's
live count and total drop at once; the dead entry is skipped (and popped) when it reaches
the head, and a level whose deque is mostly dead is compacted.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator

from .state import Order

__all__ = ["BookSide", "Level"]


class Level:
    __slots__ = ("live", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.total = 0  # sum of live orders' remaining quantity
        self.live = 0  # number of live orders
        self.orders: deque[Order] = deque()

    def live_orders(self) -> Iterator[Order]:
        for order in self.orders:
            if order.on_book:
                yield order


class BookSide:
    __slots__ = ("is_bid", "levels", "prices")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, Level] = {}
        self.prices: list[int] = []  # ascending; best is last for bids, first for asks

    def best_price(self) -> int | None:
        prices = self.prices
        if not prices:
            return None
        return prices[-1] if self.is_bid else prices[0]

    def best_level(self) -> Level | None:
        price = self.best_price()
        return None if price is None else self.levels[price]

    def levels_best_first(self) -> Iterator[Level]:
        levels = self.levels
        for price in reversed(self.prices) if self.is_bid else self.prices:
            yield levels[price]

    def add(self, order: Order) -> int:
        """Append ``order`` at the back of its price level; returns the level's new total."""
        price = order.price
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            insort(self.prices, price)
        level.orders.append(order)
        level.live += 1
        level.total += order.remaining
        order.on_book = True
        return level.total

    def reduce(self, order: Order, qty: int) -> int:
        """``order.remaining`` was just lowered by ``qty``; unlinks the order at zero.
        Returns the level's new total (0 = level gone)."""
        level = self.levels[order.price]
        level.total -= qty
        if order.remaining == 0:
            self._unlink(level, order)
        return level.total

    def remove(self, order: Order) -> int:
        """Take ``order`` (with its whole remaining quantity) off the book; returns the new total."""
        level = self.levels[order.price]
        level.total -= order.remaining
        self._unlink(level, order)
        return level.total

    def _unlink(self, level: Level, order: Order) -> None:
        order.on_book = False
        level.live -= 1
        if level.live == 0:
            price = level.price
            del self.levels[price]
            prices = self.prices
            del prices[bisect_left(prices, price)]
            return
        orders = level.orders
        if orders[0] is order:
            orders.popleft()
            while not orders[0].on_book:
                orders.popleft()
        elif len(orders) > 2 * level.live + 16:
            level.orders = deque([o for o in orders if o.on_book])

    def depth(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (price, total) pairs, best first."""
        prices = self.prices
        chosen = prices[: -limit - 1 : -1] if self.is_bid else prices[:limit]
        levels = self.levels
        return [(p, levels[p].total) for p in chosen]
