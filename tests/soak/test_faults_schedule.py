"""The soak's seeded fault schedule and its pure report figures."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from soak.auditor import BookCopy, Compared, Comparison
from soak.faults import CONTROL_FAULTS, DEPTH_PATH, ScheduleConfig, SoakFault, build_schedule, control_calls
from soak.report import CounterTotals, InjectedFault, percentile, recovery_time

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    config = ScheduleConfig.for_duration(120, stall_s=3)
    assert build_schedule(7, config, SYMBOLS) == build_schedule(7, config, SYMBOLS)
    assert build_schedule(7, config, SYMBOLS) != build_schedule(8, config, SYMBOLS)


@pytest.mark.parametrize("duration", [120, 600])
def test_every_fault_once_at_least_one_kill_one_restart_all_inside_the_window(duration: float) -> None:
    config = ScheduleConfig.for_duration(duration, stall_s=3)
    schedule = build_schedule(1, config, SYMBOLS)
    kinds = Counter(f.kind for f in schedule)
    assert set(CONTROL_FAULTS) <= set(kinds)
    assert kinds[SoakFault.PROVIDER_KILL] == 1 and kinds[SoakFault.GATEWAY_RESTART] == 1
    times = [f.at_s for f in schedule]
    assert times == sorted(times)
    assert all(b - a >= config.min_spacing_s * 0.75 for a, b in itertools.pairwise(times))
    assert config.quiet_s <= times[0] and times[-1] <= duration - config.settle_s
    assert {f.symbol for f in schedule} <= set(SYMBOLS)
    kill_at = next(f.at_s for f in schedule if f.kind is SoakFault.PROVIDER_KILL)
    restart_at = next(f.at_s for f in schedule if f.kind is SoakFault.GATEWAY_RESTART)
    assert kill_at < restart_at


def test_too_short_a_run_gets_no_schedule() -> None:
    assert build_schedule(1, ScheduleConfig.for_duration(40, stall_s=3), SYMBOLS) == ()


def test_rest_faults_on_the_snapshot_are_paired_with_a_gap_on_their_symbol() -> None:
    for kind in (SoakFault.REST_429, SoakFault.REST_418, SoakFault.REST_500, SoakFault.REST_503):
        rest, gap = control_calls(kind, "ETHUSDT", stall_s=3)
        assert rest.path == "rest" and rest.body["path"] == DEPTH_PATH and rest.body["count"] == 1
        assert str(rest.body["status"]) == kind.value.removeprefix("rest_")
        assert gap.path == "ws/gap" and gap.body["symbol"] == "ETHUSDT"
    (stall,) = control_calls(SoakFault.WS_STALL, "BTCUSDT", stall_s=3)
    assert stall.body["seconds"] == 6  # longer than the watchdog: it must trip
    assert control_calls(SoakFault.PROVIDER_KILL, "BTCUSDT", stall_s=3) == ()


def test_book_copy_continuity_and_history() -> None:
    book = BookCopy(keep_history=True)
    book.snapshot([("10", "1"), ("9", "2")], [("11", "1")], 100)
    assert book.diff(101, 103, [("9", "0")], [("12", "5")])
    assert book.top() == book.history[103].top
    assert [str(p) for p, _ in book.top()[0]] == ["10"]
    assert not book.diff(105, 106, [], [])  # 104 is missing
    assert not book.valid
    assert not book.diff(107, 107, [], [])  # void until the next snapshot


def test_counters_survive_a_restart() -> None:
    totals = CounterTotals()
    totals.observe({"x_total": 5, 'g_total{symbol="A"}': 1})
    totals.observe({"x_total": 7, 'g_total{symbol="A"}': 2})
    totals.observe({"x_total": 1})  # the process started again
    assert totals.total("x_total") == 8
    assert totals.total_of("g_total") == 2


def test_recovery_is_timed_from_the_fault_to_a_match_after_its_void() -> None:
    fault = InjectedFault(100.0, SoakFault.WS_GAP, "BTCUSDT")
    comparisons = [
        Comparison(100.05, 100.1, 1, Compared.MATCH),  # before the gap bit: does not count
        Comparison(100.4, 100.6, 2, Compared.UNAVAILABLE),
        Comparison(100.7, 101.2, 3, Compared.MATCH),
    ]
    assert recovery_time(fault, [100.3], comparisons) == pytest.approx(1.2)
    # No void at all: the first match after the fault.
    assert recovery_time(fault, [], comparisons) == pytest.approx(0.1)
    assert recovery_time(fault, [100.3], comparisons[:2]) is None


def test_percentile_nearest_rank() -> None:
    assert percentile([], 99) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
