"""The pure parts of the analytics tool: coverage, caps, rounding and the text rendering."""

from __future__ import annotations

from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import common_pb2 as c

from gateway_mcp.tools_analytics import (
    MAX_BINS,
    MAX_SERIES,
    Analysis,
    AnalyticsKind,
    anomalies,
    coverage,
    health,
    liquidity_map,
    order_flow,
    render_analysis,
    volume_profile,
)
from gateway_mcp.tools_market import Freshness

START, END = 1_714_568_400_000, 1_714_568_700_000  # 2024-05-01 13:00:00 to 13:05:00 UTC

META = an.AnalysisMeta(
    symbol="BTCUSDT",
    requested=c.TimeWindow(start_ms=START - 60_000, end_ms=END),
    covered=c.TimeWindow(start_ms=START, end_ms=END),
    trade_count=120,
    snapshot_count=300,
    book_update_count=4000,
    thresholds=[an.Threshold(name="strong_ratio", value=2.0)],
    flags=[an.DATA_QUALITY_FLAG_PARTIAL_WINDOW, an.DATA_QUALITY_FLAG_RECORDING_GAP],
    gaps=[c.TimeWindow(start_ms=START + i * 1000, end_ms=START + i * 1000 + 1000) for i in range(15)],
    freshness=c.Freshness(
        last_update_id=77, event_time_ms=END - 500, age_ms=500, in_sync=True, source=c.DATA_SOURCE_STORAGE
    ),
)
FRESH = Freshness(
    source="STORAGE", fetched_at_ms=END, event_time_ms=END - 500, age_ms=500, last_update_id=77, in_sync=True
)


def test_coverage_states_the_window_samples_flags_and_caps_the_gaps() -> None:
    cov = coverage(META)
    assert cov.covered is not None and (cov.covered.start_ms, cov.covered.end_ms) == (START, END)
    assert cov.requested.start_ms == START - 60_000
    assert (cov.trade_count, cov.snapshot_count, cov.book_update_count) == (120, 300, 4000)
    assert cov.flags == ["PARTIAL_WINDOW", "RECORDING_GAP"]
    assert cov.gap_count == 15 and len(cov.gaps) == 10
    assert cov.thresholds == {"strong_ratio": 2.0}


def test_an_empty_covered_window_is_null() -> None:
    empty = an.AnalysisMeta(requested=c.TimeWindow(start_ms=START, end_ms=END), covered=c.TimeWindow())
    assert coverage(empty).covered is None


def test_order_flow_rounds_and_keeps_the_latest_buckets() -> None:
    series = [
        an.FlowBucket(
            start_ms=START + i * 1000, buy_volume=1.0, sell_volume=0.5, delta=0.5, cumulative_delta=0.5 * (i + 1)
        )
        for i in range(MAX_SERIES + 5)
    ]
    flow = order_flow(
        an.GetOrderFlowResponse(
            buy_volume=12.3456789,
            sell_volume=4.0,
            buy_count=10,
            sell_count=4,
            delta=8.3456789,
            buy_sell_ratio=3.08641975,
            direction=an.FLOW_DIRECTION_STRONG_BUY,
            series=series,
            book_imbalance=-0.123456,
        )
    )
    assert flow.buy_volume == 12.3457 and flow.delta == 8.34568  # 6 significant digits
    assert flow.buy_sell_ratio == 3.0864 and flow.book_imbalance == -0.1235
    assert flow.direction == "STRONG_BUY"
    assert len(flow.series) == MAX_SERIES and flow.series_omitted == 5
    assert flow.series[0].start_ms == START + 5000  # the oldest are dropped; CVD values stay cumulative
    assert flow.series[-1].cumulative_delta == 0.5 * (MAX_SERIES + 5)


def test_volume_profile_keeps_the_largest_bins_in_price_order() -> None:
    bins = [
        an.VolumeBin(
            price_low=str(100 + i), price_high=str(101 + i), total_volume=float(i % 7), buy_volume=0, sell_volume=0
        )
        for i in range(MAX_BINS + 10)
    ]
    profile = volume_profile(
        an.GetVolumeProfileResponse(
            bin_size="1",
            bins=bins,
            point_of_control="106",
            value_area_low="101",
            value_area_high="140",
            value_area_fraction=0.7,
            vacuums=[an.PriceRange(price_low="120", price_high="122", severity=an.SEVERITY_HIGH, volume_ratio=0.05)],
        )
    )
    assert len(profile.bins) == MAX_BINS and profile.bins_omitted == 10
    lows = [int(b.price_low) for b in profile.bins]
    assert lows == sorted(lows)
    dropped = {100 + i for i in range(MAX_BINS + 10)} - set(lows)
    assert max(int(b.total_volume) for b in bins if int(b.price_low) in dropped) <= min(
        b.total_volume for b in profile.bins
    )
    assert profile.vacuums[0].severity == "HIGH"


def test_anomalies_most_severe_first() -> None:
    found = anomalies(
        an.GetAnomaliesResponse(
            anomalies=[
                an.Anomaly(type=an.ANOMALY_TYPE_ICEBERG, severity=an.SEVERITY_LOW, confidence=0.9, price="100.5"),
                an.Anomaly(
                    type=an.ANOMALY_TYPE_FLASH_CRASH_RISK,
                    severity=an.SEVERITY_CRITICAL,
                    confidence=0.61234,
                    evidence=[an.Evidence(name="depth_drop", value=0.8123456, detail="bid depth fell")],
                    recommended_action="widen stops",
                ),
            ]
        )
    )
    assert [a.type for a in found.anomalies] == ["FLASH_CRASH_RISK", "ICEBERG"]
    assert found.anomalies[0].confidence == 0.6123 and found.anomalies[0].price is None
    assert found.anomalies[1].price == "100.5"
    assert found.anomalies[0].evidence[0].value == 0.812346


def test_health_and_liquidity_map() -> None:
    h = health(
        an.GetMicrostructureHealthResponse(
            score=71.249, components=[an.HealthComponent(name="liquidity_depth", weight=0.35, value=12.0, score=80.04)]
        )
    )
    assert h.score == 71.2 and h.components[0].score == 80.0
    m = liquidity_map(
        an.GetLiquidityMapResponse(
            walls=[an.Wall(side=c.SIDE_BUY, price="99", quantity="5", size_vs_median=4.567, persisted_seconds=40)],
            stop_suggestions=[an.StopSuggestion(position_side=c.SIDE_BUY, stop_price="98.99", rationale="below wall")],
        )
    )
    assert m.walls[0].side == "BUY" and m.walls[0].size_vs_median == 4.57
    assert m.stop_suggestions[0].stop_price == "98.99"


def test_the_text_states_coverage_first_and_freshness_last() -> None:
    result = Analysis(
        symbol="BTCUSDT",
        kind=AnalyticsKind.HEALTH,
        coverage=coverage(META),
        health=health(an.GetMicrostructureHealthResponse(score=50.0)),
        freshness=FRESH,
    )
    lines = render_analysis(result).splitlines()
    assert lines[0] == "BTCUSDT health; covered 2024-05-01 13:00:00 to 13:05:00 UTC (300 s)"
    assert "120 trades, 300 snapshots" in lines[1] and "flags PARTIAL_WINDOW, RECORDING_GAP" in lines[1]
    assert "health score 50.0/100" in lines
    assert lines[-1].startswith("(source STORAGE") and "age 500 ms" in lines[-1]
