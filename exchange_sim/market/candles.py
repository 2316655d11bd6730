"""Trade-derived market statistics: 1-second candles, klines of every interval, rolling 24h tickers.

Pure: time is always an argument. Klines of any Binance interval are aggregated exactly from
1-second candles (every interval is a whole number of seconds; months follow the calendar).
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

INTERVAL_MS: dict[str, int] = {
    "1s": SECOND,
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "2h": 2 * HOUR,
    "4h": 4 * HOUR,
    "6h": 6 * HOUR,
    "8h": 8 * HOUR,
    "12h": 12 * HOUR,
    "1d": DAY,
    "3d": 3 * DAY,
    "1w": 7 * DAY,
    "1M": 0,  # 1M: calendar month
}
WEEK_ORIGIN_MS = 4 * DAY  # Binance weeks open on Monday 00:00 UTC; the epoch was a Thursday


def fmt(value: Decimal) -> str:
    """Binance's fixed 8-decimal rendering."""
    return f"{value:.8f}"


def interval_open(interval: str, time_ms: int) -> int:
    """Open time of the candle of `interval` that contains `time_ms`."""
    if interval == "1M":
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
        return int(calendar.timegm((moment.year, moment.month, 1, 0, 0, 0)) * 1000)
    step = INTERVAL_MS[interval]
    if interval == "1w":
        return (time_ms - WEEK_ORIGIN_MS) // step * step + WEEK_ORIGIN_MS
    return time_ms // step * step


def interval_close(interval: str, open_ms: int) -> int:
    if interval == "1M":
        moment = datetime.fromtimestamp(open_ms / 1000, UTC)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return int(calendar.timegm((year, month, 1, 0, 0, 0)) * 1000) - 1
    return open_ms + INTERVAL_MS[interval] - 1


@dataclass(slots=True)
class Candle:
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal
    first_trade_id: int
    last_trade_id: int

    def merge(self, other: Candle) -> None:
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.close = other.close
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trades += other.trades
        self.taker_buy_volume += other.taker_buy_volume
        self.taker_buy_quote_volume += other.taker_buy_quote_volume
        self.last_trade_id = other.last_trade_id

    def copy_at(self, open_ms: int) -> Candle:
        return Candle(
            open_ms,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.trades,
            self.taker_buy_volume,
            self.taker_buy_quote_volume,
            self.first_trade_id,
            self.last_trade_id,
        )

    def kline_row(self, interval: str) -> list[object]:
        """The REST klines row (12 elements)."""
        return [
            self.open_ms,
            fmt(self.open),
            fmt(self.high),
            fmt(self.low),
            fmt(self.close),
            fmt(self.volume),
            interval_close(interval, self.open_ms),
            fmt(self.quote_volume),
            self.trades,
            fmt(self.taker_buy_volume),
            fmt(self.taker_buy_quote_volume),
            "0",
        ]


class CandleStore:
    """Candles of one symbol, kept for `retention_ms` (default 25 h: enough for 24h tickers).

    The last `fine_ms` (20 minutes: room for a full 1,000-candle `1s` klines answer) are 1-second
    candles; older ones are folded into 1-minute candles, so memory stays bounded (about 2,700
    candles a symbol) however long the simulator runs. Windows older than that are precise to the
    minute.
    """

    def __init__(self, retention_ms: int = 25 * HOUR, fine_ms: int = 20 * MINUTE) -> None:
        self._opens: list[int] = []
        self._candles: list[Candle] = []
        self._fine = 0  # index of the first 1-second candle; those before it are 1-minute candles
        self._fine_ms = fine_ms
        self._retention_ms = retention_ms
        self.last_price: Decimal | None = None
        self.last_qty: Decimal = Decimal(0)
        self.last_trade_ms = 0

    def add_trade(self, trade_id: int, price: Decimal, qty: Decimal, time_ms: int, buyer_is_maker: bool) -> None:
        second = time_ms // SECOND * SECOND
        quote = price * qty
        taker_buy = not buyer_is_maker
        if self._opens and self._opens[-1] == second:
            c = self._candles[-1]
            c.high = max(c.high, price)
            c.low = min(c.low, price)
            c.close = price
            c.volume += qty
            c.quote_volume += quote
            c.trades += 1
            if taker_buy:
                c.taker_buy_volume += qty
                c.taker_buy_quote_volume += quote
            c.last_trade_id = trade_id
        else:
            zero = Decimal(0)
            self._opens.append(second)
            self._candles.append(
                Candle(
                    second,
                    price,
                    price,
                    price,
                    price,
                    qty,
                    quote,
                    1,
                    qty if taker_buy else zero,
                    quote if taker_buy else zero,
                    trade_id,
                    trade_id,
                )
            )
            self._coarsen(second)
            self._expire(second)
        self.last_price, self.last_qty, self.last_trade_ms = price, qty, time_ms

    def _coarsen(self, now_ms: int) -> None:
        """Fold 1-second candles older than `fine_ms` into their minute's candle."""
        opens, candles = self._opens, self._candles
        cutoff = now_ms - self._fine_ms
        while self._fine < len(opens) and opens[self._fine] < cutoff:
            i = self._fine
            minute = opens[i] // MINUTE * MINUTE
            if i > 0 and opens[i - 1] == minute:  # the minute's candle exists: merge into it
                candles[i - 1].merge(candles[i])
                del opens[i]
                del candles[i]
            else:
                opens[i], candles[i] = minute, candles[i].copy_at(minute)
                self._fine += 1

    def _expire(self, now_ms: int) -> None:
        cut = bisect.bisect_left(self._opens, now_ms - self._retention_ms)
        if cut > 64:  # trim in chunks, not on every new second
            del self._opens[:cut]
            del self._candles[:cut]
            self._fine = max(0, self._fine - cut)

    def klines(self, interval: str, start_ms: int | None, end_ms: int | None, limit: int) -> list[Candle]:
        """Candles of `interval` in chronological order, Binance's start/end/limit semantics."""
        lo = 0 if start_ms is None else bisect.bisect_left(self._opens, interval_open(interval, start_ms))
        if INTERVAL_MS.get(interval, MINUTE) < MINUTE:
            lo = max(lo, self._fine)  # sub-minute klines only from the 1-second part
        hi = len(self._opens) if end_ms is None else bisect.bisect_right(self._opens, end_ms)
        out: list[Candle] = []
        for candle in self._candles[lo:hi]:
            opened = interval_open(interval, candle.open_ms)
            if out and out[-1].open_ms == opened:
                out[-1].merge(candle)
            else:
                out.append(candle.copy_at(opened))
        # With a start: the oldest from there; otherwise the most recent (reference §2).
        return out[:limit] if start_ms is not None else out[-limit:]

    def current_kline(self, interval: str, now_ms: int) -> Candle | None:
        opened = interval_open(interval, now_ms)
        rows = self.klines(interval, opened, now_ms, 1)
        return rows[0] if rows else None

    def window(self, start_ms: int, end_ms: int) -> Candle | None:
        """All trades with start_ms <= time <= end_ms merged into one candle (None if no trade)."""
        lo = bisect.bisect_left(self._opens, start_ms // SECOND * SECOND)
        hi = bisect.bisect_right(self._opens, end_ms)
        merged: Candle | None = None
        for candle in self._candles[lo:hi]:
            if merged is None:
                merged = candle.copy_at(start_ms)
            else:
                merged.merge(candle)
        return merged

    def average_price(self, now_ms: int, minutes: int) -> tuple[Decimal | None, int]:
        """Volume-weighted average price over the last `minutes` (last price when no volume)."""
        candle = self.window(now_ms - minutes * MINUTE, now_ms)
        if candle is None or candle.volume == 0:
            return self.last_price, self.last_trade_ms
        return (candle.quote_volume / candle.volume).quantize(Decimal("0.00000001")), self.last_trade_ms
