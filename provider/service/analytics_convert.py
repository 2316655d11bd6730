"""Analytics results (provider.analytics value types) → analytics.proto messages, field for field."""

from __future__ import annotations

from collections.abc import Iterable

from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import common_pb2 as c

from provider.analytics.anomalies import Anomalies
from provider.analytics.health import Health
from provider.analytics.liquidity import LiquidityMap
from provider.analytics.order_flow import OrderFlow
from provider.analytics.volume_profile import PriceRange, VolumeProfile
from provider.analytics.window import Freshness, Meta, Window
from provider.history.codec import SnapshotRecord


def window(w: Window) -> c.TimeWindow:
    return c.TimeWindow(start_ms=w.start_ms, end_ms=w.end_ms)


def freshness(f: Freshness) -> c.Freshness:
    return c.Freshness(
        last_update_id=f.last_update_id,
        event_time_ms=f.event_time_ms,
        age_ms=f.age_ms,
        in_sync=f.in_sync,
        source=c.DataSource.ValueType(int(f.source)),
    )


def meta(m: Meta) -> an.AnalysisMeta:
    return an.AnalysisMeta(
        symbol=m.symbol,
        requested=window(m.requested),
        covered=window(m.covered),
        trade_count=m.trade_count,
        snapshot_count=m.snapshot_count,
        book_update_count=m.book_update_count,
        thresholds=[an.Threshold(name=t.name, value=t.value) for t in m.thresholds],
        flags=[an.DataQualityFlag.ValueType(int(f)) for f in m.flags],
        gaps=[window(g) for g in m.gaps],
        freshness=freshness(m.freshness),
        computed_at_ms=m.computed_at_ms,
    )


def price_ranges(ranges: Iterable[PriceRange]) -> list[an.PriceRange]:
    return [
        an.PriceRange(
            price_low=r.price_low,
            price_high=r.price_high,
            severity=an.Severity.ValueType(int(r.severity)),
            volume_ratio=r.volume_ratio,
        )
        for r in ranges
    ]


def order_flow(r: OrderFlow) -> an.GetOrderFlowResponse:
    return an.GetOrderFlowResponse(
        meta=meta(r.meta),
        buy_volume=r.buy_volume,
        sell_volume=r.sell_volume,
        buy_count=r.buy_count,
        sell_count=r.sell_count,
        delta=r.delta,
        buy_sell_ratio=r.buy_sell_ratio,
        direction=an.FlowDirection.ValueType(int(r.direction)),
        series=[
            an.FlowBucket(
                start_ms=b.start_ms,
                buy_volume=b.buy_volume,
                sell_volume=b.sell_volume,
                delta=b.delta,
                cumulative_delta=b.cumulative_delta,
            )
            for b in r.series
        ],
        bid_added_per_second=r.bid_added_per_second,
        ask_added_per_second=r.ask_added_per_second,
        net_flow_per_second=r.net_flow_per_second,
        book_imbalance=r.book_imbalance,
    )


def volume_profile(r: VolumeProfile) -> an.GetVolumeProfileResponse:
    return an.GetVolumeProfileResponse(
        meta=meta(r.meta),
        bin_size=r.bin_size,
        bins=[
            an.VolumeBin(
                price_low=b.price_low,
                price_high=b.price_high,
                buy_volume=b.buy_volume,
                sell_volume=b.sell_volume,
                total_volume=b.total_volume,
            )
            for b in r.bins
        ],
        point_of_control=r.point_of_control,
        value_area_high=r.value_area_high,
        value_area_low=r.value_area_low,
        value_area_fraction=r.value_area_fraction,
        high_volume_nodes=list(r.high_volume_nodes),
        low_volume_nodes=list(r.low_volume_nodes),
        vacuums=price_ranges(r.vacuums),
    )


def anomalies(r: Anomalies) -> an.GetAnomaliesResponse:
    return an.GetAnomaliesResponse(
        meta=meta(r.meta),
        anomalies=[
            an.Anomaly(
                type=an.AnomalyType.ValueType(int(a.type)),
                severity=an.Severity.ValueType(int(a.severity)),
                confidence=a.confidence,
                detected_at_ms=a.detected_at_ms,
                window=window(a.window),
                price=a.price,
                evidence=[an.Evidence(name=e.name, value=e.value, detail=e.detail) for e in a.evidence],
                recommended_action=a.recommended_action,
            )
            for a in r.anomalies
        ],
    )


def health(r: Health) -> an.GetMicrostructureHealthResponse:
    return an.GetMicrostructureHealthResponse(
        meta=meta(r.meta),
        score=r.score,
        components=[
            an.HealthComponent(name=str(h.name), weight=h.weight, value=h.value, score=h.score, formula=h.formula)
            for h in r.components
        ],
    )


def liquidity_map(r: LiquidityMap) -> an.GetLiquidityMapResponse:
    return an.GetLiquidityMapResponse(
        meta=meta(r.meta),
        walls=[
            an.Wall(
                side=c.Side.ValueType(int(w.side)),
                price=w.price,
                quantity=w.quantity,
                size_vs_median=w.size_vs_median,
                persisted_seconds=w.persisted_seconds,
            )
            for w in r.walls
        ],
        absorptions=[
            an.AbsorptionEvent(
                aggressor_side=c.Side.ValueType(int(a.aggressor_side)),
                price=a.price,
                traded_volume=a.traded_volume,
                time_ms=a.time_ms,
                held_seconds=a.held_seconds,
            )
            for a in r.absorptions
        ],
        vacuums=price_ranges(r.vacuums),
        stop_suggestions=[
            an.StopSuggestion(
                position_side=c.Side.ValueType(int(s.position_side)),
                stop_price=s.stop_price,
                rationale=s.rationale,
            )
            for s in r.stop_suggestions
        ],
    )


def snapshot(r: SnapshotRecord) -> an.BookSnapshot:
    return an.BookSnapshot(
        time_ms=r.time_ms,
        last_update_id=r.last_update_id,
        bids=[c.PriceLevel(price=p, quantity=q) for p, q in r.bids],
        asks=[c.PriceLevel(price=p, quantity=q) for p, q in r.asks],
    )
