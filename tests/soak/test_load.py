"""The soak's machine-load figures: cores used per minute, across a process restart and a short last window."""

from __future__ import annotations

import pytest

from soak.report import CpuSample, cpu_by_window, max_by_window, mean_by_window


def test_cores_are_cpu_seconds_per_window_counted_per_process_lifetime() -> None:
    samples = [
        CpuSample(0.0, 10, 5.0),
        CpuSample(30.0, 10, 20.0),  # 15 s over 30 s, in window 0
        CpuSample(60.0, 10, 50.0),  # 30 s over 30 s, in window 1
        CpuSample(90.0, 11, 1.0),  # restarted: a new count, not -49
        CpuSample(100.0, 11, 6.0),  # 5 s over 10 s: the last window was sampled for 10 s only
    ]
    assert cpu_by_window(samples, 60.0) == pytest.approx({0: 0.5, 1: 35 / 40})
    assert cpu_by_window(samples, 50.0) == pytest.approx({0: 0.5, 1: 1.0, 2: 0.5})


def test_a_window_keeps_its_largest_sample() -> None:
    assert max_by_window([(1.0, 0.002), (59.0, 0.3), (61.0, 0.01)], 60.0) == {0: 0.3, 1: 0.01}


def test_windows_keep_their_mean() -> None:
    samples = [(1.0, 201.0), (30.0, 12.0), (59.0, 150.0), (61.0, 201.0)]
    assert mean_by_window(samples, 60.0) == {0: 121.0, 1: 201.0}
