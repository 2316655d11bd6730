from __future__ import annotations

from decimal import Decimal as D

import pytest

from exchange_sim.market.candles import DAY, HOUR, MINUTE, CandleStore, interval_close, interval_open

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a Tuesday


@pytest.mark.parametrize(
    ("interval", "time_ms", "open_ms"),
    [
        ("1s", T0 + 999, T0),
        ("1m", T0 + 61_000, T0 - 20_000 + 60_000),
        ("1h", T0, 1_699_999_200_000),
        ("1d", T0, 1_699_920_000_000),
        ("1w", T0, 1_699_833_600_000),  # Monday 2023-11-13 00:00 UTC
        ("1M", T0, 1_698_796_800_000),  # 2023-11-01 00:00 UTC
    ],
)
def test_interval_open(interval: str, time_ms: int, open_ms: int) -> None:
    assert interval_open(interval, time_ms) == open_ms


def test_interval_close() -> None:
    assert interval_close("1m", 60_000) == 119_999
    assert interval_close("1M", 1_698_796_800_000) == 1_701_388_800_000 - 1  # to 2023-12-01


def trades(store: CandleStore) -> None:
    # id, price, qty, time, buyer_is_maker (False: the taker bought)
    store.add_trade(1, D("100"), D("1"), T0 + 100, False)
    store.add_trade(2, D("102"), D("2"), T0 + 900, True)
    store.add_trade(3, D("99"), D("1"), T0 + 1_500, False)
    store.add_trade(4, D("101"), D("3"), T0 + 61_000, True)


def test_one_second_candles_aggregate_exactly_into_minutes() -> None:
    store = CandleStore()
    trades(store)
    seconds = store.klines("1s", None, None, 500)
    assert [c.open_ms for c in seconds] == [T0, T0 + 1000, T0 + 61_000]
    first = seconds[0]
    assert (first.open, first.high, first.low, first.close) == (D(100), D(102), D(100), D(102))
    assert first.volume == D(3) and first.quote_volume == D(304)
    assert first.taker_buy_volume == D(1) and first.trades == 2
    minutes = store.klines("1m", None, None, 500)
    assert [c.open_ms for c in minutes] == [T0 - 20_000, T0 + 40_000]
    assert minutes[0].volume == D(4) and minutes[0].close == D(99) and minutes[0].low == D(99)
    assert (minutes[0].first_trade_id, minutes[0].last_trade_id) == (1, 3)
    row = minutes[0].kline_row("1m")
    assert row[1:6] == ["100.00000000", "102.00000000", "99.00000000", "99.00000000", "4.00000000"]
    assert row[6] == T0 + 40_000 - 1 and row[8] == 3 and row[11] == "0"


def test_limit_start_and_end_semantics() -> None:
    store = CandleStore()
    trades(store)
    assert [c.open_ms for c in store.klines("1s", None, None, 2)] == [T0 + 1000, T0 + 61_000]  # most recent
    assert [c.open_ms for c in store.klines("1s", T0, None, 2)] == [T0, T0 + 1000]  # oldest from start
    assert [c.open_ms for c in store.klines("1s", None, T0 + 1000, 5)] == [T0, T0 + 1000]


def test_window_and_average_price() -> None:
    store = CandleStore()
    trades(store)
    window = store.window(T0, T0 + 2_000)
    assert window is not None and window.volume == D(4) and window.high == D(102)
    assert store.window(T0 + 10_000, T0 + 20_000) is None
    price, last = store.average_price(T0 + 61_000, 5)
    assert price == D("100.85714286")  # (304 + 99 + 303) / 7 quote over base, to 8 places
    assert last == T0 + 61_000


def test_old_candles_expire() -> None:
    store = CandleStore(retention_ms=DAY)
    for i in range(3000):
        store.add_trade(i + 1, D(1), D(1), T0 + i * 60_000, False)
    assert store.klines("1s", None, None, 5000)[0].open_ms >= T0 + 3000 * 60_000 - 2 * DAY


def test_old_seconds_fold_into_minutes_and_memory_stays_bounded() -> None:

    store = CandleStore(retention_ms=3 * HOUR, fine_ms=10 * MINUTE)
    t0 = 1_800_000_000_000 // HOUR * HOUR
    for i in range(4 * 3600):  # four hours, one trade a second
        store.add_trade(i + 1, D("100") + i % 7, D("1"), t0 + i * 1000, i % 2 == 0)
    now = t0 + (4 * 3600 - 1) * 1000
    # 10 minutes of seconds plus 3 hours of minutes (and up to 64 expired ones trimmed in chunks),
    # not 14,400 candles
    assert len(store._candles) <= 600 + 3 * 60 + 64 + 2
    # nothing lost inside the retention: the last 2 hours hold 7,200 trades, to the minute
    window = store.window(now - 2 * HOUR + 1, now)
    assert window is not None and window.trades == 7200 and window.volume == 7200
    # 1-minute klines over folded and fine parts alike; 1-second klines only where seconds are kept
    minutes = store.klines("1m", now - 30 * MINUTE, now, 1000)
    assert [c.trades for c in minutes[:-1]] == [60] * (len(minutes) - 1)
    seconds = store.klines("1s", None, None, 100_000)
    assert len(seconds) <= 601 and seconds[0].open_ms >= now - 10 * MINUTE
