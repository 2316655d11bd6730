from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from numpy.typing import NDArray

from provider.analytics.window import (
    AnalyticsInputError,
    DataQualityFlag,
    TickGrid,
    Window,
    coverage,
    resolve_window,
    trades_in,
)
from tests.provider.analytics import T0, make_trades, seconds

F = DataQualityFlag
REQ = Window(T0, T0 + 10_000)


def clock(times: list[int]) -> NDArray[np.int64]:
    return np.array(times, np.int64)


@pytest.mark.parametrize(
    ("times", "covered", "gaps", "flags"),
    [
        pytest.param([], (T0, T0), [], [F.PARTIAL_WINDOW], id="empty"),
        pytest.param(seconds(10), (T0, T0 + 10_000), [], [], id="full"),
        pytest.param(
            [t for t in seconds(10) if t not in (T0 + 3000, T0 + 4000)],
            (T0, T0 + 10_000),
            [(T0 + 3000, T0 + 5000)],
            [F.RECORDING_GAP],
            id="two-missing-seconds",
        ),
        pytest.param(
            [t for t in seconds(10) if t != T0 + 6000], (T0, T0 + 10_000), [(T0 + 6000, T0 + 7000)],
            [F.RECORDING_GAP], id="one-missing-second",
        ),
        pytest.param(seconds(5, T0 + 5000), (T0 + 5000, T0 + 10_000), [], [F.PARTIAL_WINDOW], id="late-start"),
        pytest.param(seconds(9, T0 + 1000), (T0 + 1000, T0 + 10_000), [], [], id="1s-late-within-slack"),
        pytest.param(seconds(6), (T0, T0 + 6000), [], [F.PARTIAL_WINDOW], id="stopped-early"),
        pytest.param(
            [T0 + 40, T0 + 1010, T0 + 1999, T0 + 3005], (T0 + 40, T0 + 4005), [], [F.PARTIAL_WINDOW],
            id="snapshot-jitter-is-no-gap",
        ),
    ],
)  # fmt: skip
def test_coverage(times: list[int], covered: tuple[int, int], gaps: list[tuple[int, int]], flags: list[F]) -> None:
    cov = coverage(REQ, [clock(times)])
    assert cov.covered == Window(*covered)
    assert [(g.start_ms, g.end_ms) for g in cov.gaps] == gaps
    assert list(cov.flags) == flags


def test_coverage_of_two_clocks_is_the_intersection_and_gaps_the_union() -> None:
    a = clock([t for t in seconds(10) if t not in (T0 + 2000, T0 + 5000)])
    b = clock([t for t in seconds(7, T0 + 3000) if t != T0 + 7000])
    cov = coverage(REQ, [a, b], np.array([False, True]))
    assert cov.covered == Window(T0 + 3000, T0 + 10_000)
    # a's hole at second 2 is before the covered window; its hole at 5 and b's at 7 are inside.
    assert [(g.start_ms, g.end_ms) for g in cov.gaps] == [(T0 + 5000, T0 + 6000), (T0 + 7000, T0 + 8000)]
    assert cov.recorded_seconds == 5.0
    assert set(cov.flags) == {F.PARTIAL_WINDOW, F.RECORDING_GAP, F.BOOK_RESYNCED}


def test_coverage_is_empty_when_one_clock_has_no_samples() -> None:
    cov = coverage(REQ, [clock(seconds(10)), clock([])])
    assert cov.covered.duration_ms == 0
    assert cov.recorded_seconds == 0


def test_trades_in_is_half_open() -> None:
    tr = make_trades([(T0 - 1, 1, 1, False), (T0, 2, 1, False), (T0 + 9999, 3, 1, True), (T0 + 10_000, 4, 1, True)])
    assert trades_in(tr, REQ).price.tolist() == [2, 3]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((60, 0, 0, 1_000_000), Window(940_000, 1_000_000)),
        ((0, 500, 700, 1_000_000), Window(500, 700)),
        ((0, 500, 0, 1_000_000), Window(500, 1_000_000)),
    ],
)
def test_resolve_window(args: tuple[int, int, int, int], expected: Window) -> None:
    assert resolve_window(*args) == expected


@pytest.mark.parametrize(
    ("args", "field"),
    [((0, 0, 0, 1000), "window.lookback_seconds"), ((0, 700, 500, 1000), "window.start_ms"), ((5, 1, 2, 3), "window")],
)
def test_resolve_window_rejects(args: tuple[int, int, int, int], field: str) -> None:
    with pytest.raises(AnalyticsInputError) as e:
        resolve_window(*args)
    assert e.value.field == field


@pytest.mark.parametrize(
    ("tick", "price", "text"),
    [
        ("0.01000000", 61837.63, "61837.63"),
        (Decimal("0.5"), 10.0, "10.0"),
        (0.01, 0.07, "0.07"),
        ("1", 42.0, "42"),
        ("0.00000100", 0.000123, "0.000123"),
    ],
)
def test_tick_grid_formats_on_the_grid(tick: str | Decimal | float, price: float, text: str) -> None:
    grid = TickGrid(tick)
    assert grid.fmt_price(price) == text
    assert grid.ticks(np.array([price])).tolist() == [grid.tick_of(price)]


@pytest.mark.parametrize("tick", ["0", "-1", "abc", "nan"])
def test_tick_grid_rejects_bad_ticks(tick: str) -> None:
    with pytest.raises(AnalyticsInputError):
        TickGrid(tick)
