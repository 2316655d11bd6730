"""A local order book for one symbol: pure, exact and fast.

Prices are keyed by exact scaled integers (units of 1e-8, Binance's finest
precision) parsed from the wire's decimal strings; no binary float ever touches a
price or a quantity. Each level keeps the price and quantity strings exactly as
Binance sent them, so answers are decimal strings with no formatting cost.

Layout per side: a dict ``key -> (price, qty)`` holding every level, plus a sorted
list (kept with :mod:`bisect`) of only the top few hundred keys, so that changes deep
in the book never shift a long list. Bids are keyed by ``+price`` and asks by
``-price``, so on both sides the best level is the *last* list element and a top-N
read is one slice.

Levels outside the snapshot depth are unknown until they change. A side can be
given a *bound* (:meth:`OrderBook.set_bounds`): levels beyond it are dropped and
never inserted, so every level the book serves lies in a region it knows
completely (no holes). :mod:`provider.sync` sets the bounds from each snapshot.

The parse of a price string is cached per book and side (prices repeat a lot in a
live feed); the caches are bounded.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "PRICE_DECIMALS",
    "PRICE_SCALE",
    "Level",
    "LevelMismatch",
    "OrderBook",
    "cut_edge",
    "decimal_to_units",
    "is_zero_qty",
    "units_to_decimal",
]

PRICE_DECIMALS = 8
"""Binance spot prices and quantities never have more than 8 decimals."""
PRICE_SCALE = 10**PRICE_DECIMALS

Level = tuple[str, str]
"""One price level as ``(price, quantity)``, both decimal strings as received."""

# Below any real key on either side (bids are +price, asks -price in 1e-8 units).
_NO_BOUND = -(10**60)
# A price cache larger than this is cleared (checked once per apply, not per level).
_CACHE_LIMIT = 50_000
# Sorted "hot" top of each side: initial size, and the largest a read may grow it to.
_HOT_TARGET = 128
_HOT_MAX = 1024


def decimal_to_units(text: str, decimals: int = PRICE_DECIMALS) -> int:
    """Parse a non-negative fixed-point decimal string into an exact integer of 1e-`decimals` units.

    Accepts ``"61837.63000000"``, ``"61837.63"``, ``"5"``, ``".5"``, ``"5."``. Rejects signs,
    exponents, whitespace, underscores, non-ASCII digits, and non-zero digits beyond ``decimals``
    places (``ValueError``).
    """
    whole, _, frac = text.partition(".")
    if not (whole or frac):
        raise ValueError(f"not a non-negative decimal: {text!r}")
    short = decimals - len(frac)
    if short > 0:
        frac += "0" * short
    elif short < 0:
        if frac[decimals:].strip("0"):
            raise ValueError(f"more than {decimals} decimals: {text!r}")
        frac = frac[:decimals]
    digits = whole + frac
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a non-negative decimal: {text!r}")
    return int(digits)


def units_to_decimal(units: int, decimals: int = PRICE_DECIMALS) -> str:
    """Format exact 1e-`decimals` units as a fixed-point string with `decimals` places."""
    if units < 0:
        raise ValueError("negative units")
    whole, frac = divmod(units, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


def cut_edge(levels: Sequence[Sequence[str]], limit: int, book_edge: str | None) -> str | None:
    """Where a copy of one side, taken as the best `limit` levels of a book, stops knowing: its last
    level when it was cut at `limit`, else the book's own edge (None: the book knows that whole side)."""
    if len(levels) >= limit:
        return levels[-1][0]
    return book_edge


def is_zero_qty(text: str) -> bool:
    """True for any fixed-point zero form: ``"0"``, ``"0.0"``, ``"0.00000000"``."""
    return not text.strip("0.")


@dataclass(frozen=True, slots=True)
class LevelMismatch:
    """One level where two books disagree (``None`` = level absent)."""

    side: str  # "bid" or "ask"
    price: str
    qty: str | None
    expected_qty: str | None


class _Side:
    """One side of the book. ``sign`` is +1 for bids and -1 for asks; keys are ``sign * price`` units.

    ``levels`` holds every level. ``hot`` is the sorted list (ascending, best last) of exactly the
    keys ``>= hot_min``: the top of the book, a few hundred levels. Changes deeper than ``hot_min``
    touch only the dict, so no insert or delete ever shifts a long list (on this machine one such
    shift of a 2000-level list costs more than parsing and applying a level). Reads come from
    ``hot``; when it runs short (the price moved through it) it is rebuilt from the dict, and when
    it grows past twice its target (the price moved the other way) its deep end is cut off.
    """

    __slots__ = ("bound", "cache", "hot", "hot_min", "levels", "sign", "target")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.cache: dict[str, int] = {}  # price text -> key; survives clear()
        self.levels: dict[int, Level] = {}
        self.hot: list[int] = []  # ascending; best level last
        self.hot_min = _NO_BOUND  # every key >= hot_min is in `hot` (_NO_BOUND: all keys are)
        self.target = _HOT_TARGET
        self.bound = _NO_BOUND  # keys below it are outside the known region

    def clear(self) -> None:
        self.levels = {}
        self.hot = []
        self.hot_min = _NO_BOUND
        self.bound = _NO_BOUND

    def key(self, price: str) -> int:
        k = self.cache.get(price)
        if k is None:
            k = self.cache[price] = self.sign * decimal_to_units(price)
        return k

    def apply(self, updates: Iterable[Sequence[str]]) -> None:
        # The hot loop: everything is a local name.
        cache = self.cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        get = cache.get
        levels = self.levels
        hot = self.hot
        hot_min = self.hot_min
        bound = self.bound
        sign = self.sign
        for price, qty in updates:
            k = get(price)
            if k is None:
                k = cache[price] = sign * decimal_to_units(price)
            if not qty.strip("0."):  # any zero form: delete (absent level: nothing to do)
                if levels.pop(k, None) is not None and k >= hot_min:
                    del hot[bisect_left(hot, k)]
            elif k in levels:
                levels[k] = (price, qty)
            elif k >= bound:
                levels[k] = (price, qty)
                if k >= hot_min:
                    insort(hot, k)
        if len(hot) > 2 * self.target:
            cut = len(hot) - self.target
            self.hot_min = hot[cut]
            del hot[:cut]

    def _rehot(self, keys: list[int]) -> None:
        """Rebuild ``hot`` from all keys, sorted ascending."""
        if len(keys) <= self.target:
            self.hot = keys
            self.hot_min = _NO_BOUND
        else:
            self.hot = keys[-self.target :]
            self.hot_min = self.hot[0]

    def load(self, updates: Iterable[Sequence[str]]) -> None:
        levels: dict[int, Level] = {}
        key = self.key
        for price, qty in updates:
            k = key(price)
            if qty.strip("0."):
                levels[k] = (price, qty)
            else:
                levels.pop(k, None)
        self.levels = levels
        self.bound = _NO_BOUND
        self._rehot(sorted(levels))

    def best(self) -> Level | None:
        hot = self.hot
        if not hot:
            if not self.levels:
                return None
            self._rehot(sorted(self.levels))
            hot = self.hot
        return self.levels[hot[-1]]

    def worst(self) -> Level | None:
        if not self.levels:
            return None
        if self.hot_min == _NO_BOUND:
            return self.levels[self.hot[0]] if self.hot else None
        return self.levels[min(self.levels)]

    def top(self, n: int) -> list[Level]:
        if n <= 0:
            return []
        levels = self.levels
        hot = self.hot
        if len(hot) < n and self.hot_min != _NO_BOUND:  # deeper than `hot` and levels exist there
            if n > _HOT_MAX:  # a rare deep read: sort everything, keep `hot` as it is
                return [levels[k] for k in sorted(levels, reverse=True)[:n]]
            self.target = max(self.target, n)
            self._rehot(sorted(levels))
            hot = self.hot
        return [levels[k] for k in hot[: -n - 1 : -1]]

    def all(self) -> list[Level]:
        levels = self.levels
        return [levels[k] for k in sorted(levels, reverse=True)]

    def prune_below(self, bound: int) -> int:
        levels = self.levels
        doomed = [k for k in levels if k < bound]
        for k in doomed:
            del levels[k]
        hot = self.hot
        if hot and hot[0] < bound:
            del hot[: bisect_left(hot, bound)]
        return len(doomed)

    def prune_depth(self, depth: int) -> int:
        levels = self.levels
        cut = len(levels) - depth
        if cut <= 0:
            return 0
        keys = sorted(levels)
        for k in keys[:cut]:
            del levels[k]
        self._rehot(keys[cut:])
        return cut

    def copy_into(self, other: _Side) -> None:
        other.levels = dict(self.levels)
        other.hot = list(self.hot)
        other.hot_min = self.hot_min
        other.target = self.target
        other.bound = self.bound


class OrderBook:
    """Price levels of one symbol. Not thread-safe; no IO.

    Inputs are Binance wire levels: sequences of ``[price, qty]`` decimal strings, with
    absolute quantities; a zero quantity (any form) removes the level, and removing an
    absent level is normal. Outputs are ``(price, qty)`` string tuples, best first.
    """

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids = _Side(1)
        self._asks = _Side(-1)

    # ----------------------------------------------------------------- mutation
    def clear(self) -> None:
        """Remove every level and both bounds (the price parse caches stay warm)."""
        self._bids.clear()
        self._asks.clear()

    def load_snapshot(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """Replace the whole book with a snapshot's levels (any order; zero quantities skipped).

        Clears both bounds; the caller sets them with :meth:`set_bounds` if the snapshot was
        truncated at a depth limit.
        """
        self._bids.load(bids)
        self._asks.load(asks)

    def apply(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """Apply one diff's levels: set each to its absolute quantity, delete on zero.

        A new level outside a side's bound is ignored. Raises ``ValueError`` on a malformed
        price (levels before it in the same diff are already applied).
        """
        self._bids.apply(bids)
        self._asks.apply(asks)

    def set_bounds(self, bid_floor: str | None, ask_ceiling: str | None) -> int:
        """Limit the book to the region it knows: bids ``>= bid_floor``, asks ``<= ask_ceiling``.

        Levels outside are removed now and never inserted later. ``None`` removes a bound.
        Returns the number of levels removed.
        """
        bids, asks = self._bids, self._asks
        bids.bound = _NO_BOUND if bid_floor is None else bids.key(bid_floor)
        asks.bound = _NO_BOUND if ask_ceiling is None else asks.key(ask_ceiling)
        return bids.prune_below(bids.bound) + asks.prune_below(asks.bound)

    def prune(self, depth: int) -> int:
        """Keep only the best ``depth`` levels per side; return how many were removed."""
        if depth < 0:
            raise ValueError("depth must be >= 0")
        return self._bids.prune_depth(depth) + self._asks.prune_depth(depth)

    def copy(self) -> OrderBook:
        """An independent copy (levels and bounds)."""
        other = OrderBook()
        self._bids.copy_into(other._bids)
        self._asks.copy_into(other._asks)
        return other

    def replace_with(self, other: OrderBook) -> None:
        """Make this book a copy of ``other`` (levels and bounds), keeping this object."""
        other._bids.copy_into(self._bids)
        other._asks.copy_into(self._asks)

    # ------------------------------------------------------------------ queries
    def best_bid(self) -> Level | None:
        return self._bids.best()

    def best_ask(self) -> Level | None:
        return self._asks.best()

    def worst_bid(self) -> Level | None:
        """The lowest bid held (the edge of the known region after a truncated snapshot)."""
        return self._bids.worst()

    def worst_ask(self) -> Level | None:
        """The highest ask held."""
        return self._asks.worst()

    def bids(self, n: int | None = None) -> list[Level]:
        """Best ``n`` bids (all when ``None``), highest price first."""
        return self._bids.all() if n is None else self._bids.top(n)

    def asks(self, n: int | None = None) -> list[Level]:
        """Best ``n`` asks (all when ``None``), lowest price first."""
        return self._asks.all() if n is None else self._asks.top(n)

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)``: the best ``n`` levels of each side, best first."""
        return self._bids.top(n), self._asks.top(n)

    def bid_qty(self, price: str) -> str | None:
        level = self._bids.levels.get(self._bids.key(price))
        return None if level is None else level[1]

    def ask_qty(self, price: str) -> str | None:
        level = self._asks.levels.get(self._asks.key(price))
        return None if level is None else level[1]

    def is_crossed(self) -> bool:
        """True if best bid >= best ask (impossible on the exchange: the book is wrong)."""
        b, a = self._bids.hot, self._asks.hot
        if b and a:
            return b[-1] >= -a[-1]
        bid, ask = self._bids.best(), self._asks.best()  # a side's `hot` ran empty
        return bid is not None and ask is not None and decimal_to_units(bid[0]) >= decimal_to_units(ask[0])

    @property
    def bid_count(self) -> int:
        return len(self._bids.levels)

    @property
    def ask_count(self) -> int:
        return len(self._asks.levels)

    def __len__(self) -> int:
        return len(self._bids.levels) + len(self._asks.levels)

    @property
    def bid_floor(self) -> str | None:
        """The bid bound as a price string, or ``None`` if the bid side is unbounded."""
        b = self._bids.bound
        return None if b == _NO_BOUND else units_to_decimal(b)

    @property
    def ask_ceiling(self) -> str | None:
        a = self._asks.bound
        return None if a == _NO_BOUND else units_to_decimal(-a)

    def compare(self, expected: OrderBook, limit: int = 20) -> list[LevelMismatch]:
        """Levels where this book differs from ``expected`` inside both books' known regions.

        Each side is compared from its best level down to the tighter of the two bounds.
        Quantities are compared as exact numbers (``"1.5"`` equals ``"1.50000000"``).
        Returns at most ``limit`` mismatches (empty list = identical there).
        """
        out: list[LevelMismatch] = []
        for name, mine, theirs in (("bid", self._bids, expected._bids), ("ask", self._asks, expected._asks)):
            bound = max(mine.bound, theirs.bound)
            a, b = mine.levels, theirs.levels
            for k in sorted({k for k in a if k >= bound} | {k for k in b if k >= bound}):
                la, lb = a.get(k), b.get(k)
                if la is not None and lb is not None and decimal_to_units(la[1]) == decimal_to_units(lb[1]):
                    continue
                price = (la or lb or ("", ""))[0]
                out.append(LevelMismatch(name, price, None if la is None else la[1], None if lb is None else lb[1]))
                if len(out) >= limit:
                    return out
        return out
