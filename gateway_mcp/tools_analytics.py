"""The analytics tool (scope `read`): one `get_analytics` tool whose `kind` picks the provider's
Analytics RPC (order flow, volume profile, anomalies, microstructure health, liquidity map).

One tool rather than five: the five share their inputs (symbol and window) and their coverage
metadata, and the issue's budget of about 20 tools has to hold market, account and trading tools
too (see register_analytics_tools). Results are trimmed for a model's context (series, bins and
lists have caps, and the answer says what was left out) and always state the window really covered,
sample counts, data-quality flags and freshness.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import grpc
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import analytics_pb2_grpc as an_grpc
from binance.provider.v1 import common_pb2 as c
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from gateway_mcp.render import (
    RATIO_PLACES,
    VOLUME_DIGITS,
    explain_provider_error,
    freshness_line,
    round_significant,
    round_stat,
    table,
    utc_second,
    window_text,
)
from gateway_mcp.tools_market import (
    CALL_TIMEOUT_S,
    READ_ONLY,
    Freshness,
    Symbol,
    book_freshness,
    tool_result,
)
from provider_client.errors import decode_rpc_error

DEFAULT_LOOKBACK_S = 300
MAX_LOOKBACK_S = 86_400  # a day of 1-second history is already more than one answer should summarise
MAX_SERIES = 60  # order-flow buckets shown (the most recent)
MAX_BINS = 40  # volume-profile bins shown (the largest by volume, in price order)
MAX_LIST = 10  # nodes, vacuums, walls, absorptions, gaps
MAX_ANOMALIES = 20
DECIMAL_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,20})?$"


class AnalyticsKind(StrEnum):
    ORDER_FLOW = "order_flow"
    VOLUME_PROFILE = "volume_profile"
    ANOMALIES = "anomalies"
    HEALTH = "health"
    LIQUIDITY_MAP = "liquidity_map"


# --- output models --------------------------------------------------------------------------------


class TimeRange(BaseModel):
    start_ms: int
    end_ms: int = Field(description="exclusive")


class Coverage(BaseModel):
    """What the answer is based on: always read it before trusting the figures."""

    requested: TimeRange
    covered: TimeRange | None = Field(description="the part of the window data really existed for; null: none")
    trade_count: int
    snapshot_count: int = Field(description="1-second book snapshots used")
    book_update_count: int
    flags: list[str] = Field(
        description="data-quality flags: PARTIAL_WINDOW, RECORDING_GAP, BOOK_RESYNCED, NO_TRADES, FEW_SAMPLES, "
        "BOOK_OUT_OF_SYNC (book-based parts omitted)"
    )
    gap_count: int = Field(description="recording gaps inside the covered window")
    gaps: list[TimeRange] = Field(description=f"the first {MAX_LIST} gaps")
    thresholds: dict[str, float] = Field(description="thresholds the analysis used, by name")


class FlowBucket(BaseModel):
    start_ms: int
    buy_volume: float
    sell_volume: float
    delta: float = Field(description="buy minus sell taker volume")
    cumulative_delta: float


class OrderFlow(BaseModel):
    buy_volume: float = Field(description="base-asset volume of trades whose aggressor bought")
    sell_volume: float
    buy_count: int
    sell_count: int
    delta: float
    buy_sell_ratio: float
    direction: str = Field(
        description="STRONG_BUY (ratio > 2), MODERATE_BUY, NEUTRAL (0.8-1.2), MODERATE_SELL, STRONG_SELL"
    )
    bid_added_per_second: float = Field(description="liquidity added to bids per second (book diffs)")
    ask_added_per_second: float
    net_flow_per_second: float = Field(description="bid flow minus ask flow")
    book_imbalance: float = Field(description="(bid - ask) / (bid + ask) of near-touch depth, -1..1")
    series: list[FlowBucket] = Field(description=f"cumulative volume delta buckets, oldest first (last {MAX_SERIES})")
    series_omitted: int = Field(description="older buckets left out")


class VolumeBin(BaseModel):
    price_low: str
    price_high: str
    buy_volume: float
    sell_volume: float
    total_volume: float


class PriceRange(BaseModel):
    price_low: str
    price_high: str
    severity: str
    volume_ratio: float = Field(description="volume (or depth) relative to the median")


class VolumeProfile(BaseModel):
    bin_size: str
    point_of_control: str = Field(description="price of the bin with the most volume")
    value_area_low: str
    value_area_high: str
    value_area_fraction: float
    high_volume_nodes: list[str]
    low_volume_nodes: list[str]
    vacuums: list[PriceRange] = Field(description="thin price ranges price tends to cross quickly")
    bins: list[VolumeBin] = Field(description=f"the {MAX_BINS} largest bins by volume, in price order")
    bins_omitted: int = Field(description="smaller bins left out")


class Evidence(BaseModel):
    name: str
    value: float
    detail: str


class Anomaly(BaseModel):
    type: str = Field(description="QUOTE_STUFFING, ICEBERG or FLASH_CRASH_RISK")
    severity: str = Field(description="LOW, MEDIUM, HIGH or CRITICAL")
    confidence: float = Field(description="0..1")
    detected_at_ms: int
    window: TimeRange
    price: str | None = Field(description="the price level concerned, when there is one")
    evidence: list[Evidence]
    recommended_action: str


class Anomalies(BaseModel):
    anomalies: list[Anomaly] = Field(description=f"most severe first, at most {MAX_ANOMALIES}")
    omitted: int


class HealthComponent(BaseModel):
    name: str
    weight: float
    value: float = Field(description="the measured input")
    score: float = Field(description="0..100")
    formula: str


class Health(BaseModel):
    score: float = Field(description="0..100, weighted sum of the components")
    components: list[HealthComponent]


class Wall(BaseModel):
    side: str
    price: str
    quantity: str
    size_vs_median: float
    persisted_seconds: int


class Absorption(BaseModel):
    aggressor_side: str
    price: str
    traded_volume: float
    time_ms: int
    held_seconds: int


class StopSuggestion(BaseModel):
    position_side: str = Field(description="BUY: protects a long (stop below); SELL: a short (stop above)")
    stop_price: str
    rationale: str


class LiquidityMap(BaseModel):
    walls: list[Wall]
    absorptions: list[Absorption] = Field(description="levels that absorbed aggressive volume and held")
    vacuums: list[PriceRange]
    stop_suggestions: list[StopSuggestion]


class Analysis(BaseModel):
    symbol: str
    kind: AnalyticsKind
    coverage: Coverage
    order_flow: OrderFlow | None = Field(default=None, description="set for kind order_flow")
    volume_profile: VolumeProfile | None = Field(default=None, description="set for kind volume_profile")
    anomalies: Anomalies | None = Field(default=None, description="set for kind anomalies")
    health: Health | None = Field(default=None, description="set for kind health")
    liquidity_map: LiquidityMap | None = Field(default=None, description="set for kind liquidity_map")
    freshness: Freshness


# --- pure conversions -----------------------------------------------------------------------------


def volume(value: float) -> float:
    return round_significant(value, VOLUME_DIGITS)


def _enum(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def _range(w: c.TimeWindow) -> TimeRange:
    return TimeRange(start_ms=w.start_ms, end_ms=w.end_ms)


def coverage(meta: an.AnalysisMeta) -> Coverage:
    covered = meta.covered if meta.HasField("covered") and meta.covered.end_ms > meta.covered.start_ms else None
    return Coverage(
        requested=_range(meta.requested),
        covered=_range(covered) if covered is not None else None,
        trade_count=meta.trade_count,
        snapshot_count=meta.snapshot_count,
        book_update_count=meta.book_update_count,
        flags=[_enum(an.DataQualityFlag.Name(f), "DATA_QUALITY_FLAG_") for f in meta.flags],
        gap_count=len(meta.gaps),
        gaps=[_range(g) for g in meta.gaps[:MAX_LIST]],
        thresholds={t.name: round_significant(t.value, VOLUME_DIGITS) for t in meta.thresholds},
    )


def order_flow(r: an.GetOrderFlowResponse) -> OrderFlow:
    series = list(r.series)
    shown = series[-MAX_SERIES:]
    return OrderFlow(
        buy_volume=volume(r.buy_volume),
        sell_volume=volume(r.sell_volume),
        buy_count=r.buy_count,
        sell_count=r.sell_count,
        delta=volume(r.delta),
        buy_sell_ratio=round_stat(r.buy_sell_ratio, RATIO_PLACES),
        direction=_enum(an.FlowDirection.Name(r.direction), "FLOW_DIRECTION_"),
        bid_added_per_second=volume(r.bid_added_per_second),
        ask_added_per_second=volume(r.ask_added_per_second),
        net_flow_per_second=volume(r.net_flow_per_second),
        book_imbalance=round_stat(r.book_imbalance, RATIO_PLACES),
        series=[
            FlowBucket(
                start_ms=b.start_ms,
                buy_volume=volume(b.buy_volume),
                sell_volume=volume(b.sell_volume),
                delta=volume(b.delta),
                cumulative_delta=volume(b.cumulative_delta),
            )
            for b in shown
        ],
        series_omitted=len(series) - len(shown),
    )


def price_ranges(ranges: Sequence[an.PriceRange]) -> list[PriceRange]:
    return [
        PriceRange(
            price_low=r.price_low,
            price_high=r.price_high,
            severity=_enum(an.Severity.Name(r.severity), "SEVERITY_"),
            volume_ratio=round_stat(r.volume_ratio, RATIO_PLACES),
        )
        for r in ranges[:MAX_LIST]
    ]


def volume_profile(r: an.GetVolumeProfileResponse) -> VolumeProfile:
    bins = list(r.bins)
    largest = sorted(range(len(bins)), key=lambda i: -bins[i].total_volume)[:MAX_BINS]
    return VolumeProfile(
        bin_size=r.bin_size,
        point_of_control=r.point_of_control,
        value_area_low=r.value_area_low,
        value_area_high=r.value_area_high,
        value_area_fraction=round_stat(r.value_area_fraction, RATIO_PLACES),
        high_volume_nodes=list(r.high_volume_nodes[:MAX_LIST]),
        low_volume_nodes=list(r.low_volume_nodes[:MAX_LIST]),
        vacuums=price_ranges(r.vacuums),
        bins=[
            VolumeBin(
                price_low=bins[i].price_low,
                price_high=bins[i].price_high,
                buy_volume=volume(bins[i].buy_volume),
                sell_volume=volume(bins[i].sell_volume),
                total_volume=volume(bins[i].total_volume),
            )
            for i in sorted(largest)  # the provider sends bins in price order
        ],
        bins_omitted=len(bins) - len(largest),
    )


def anomalies(r: an.GetAnomaliesResponse) -> Anomalies:
    ranked = sorted(r.anomalies, key=lambda a: (-a.severity, -a.confidence, -a.detected_at_ms))
    shown = ranked[:MAX_ANOMALIES]
    return Anomalies(
        anomalies=[
            Anomaly(
                type=_enum(an.AnomalyType.Name(a.type), "ANOMALY_TYPE_"),
                severity=_enum(an.Severity.Name(a.severity), "SEVERITY_"),
                confidence=round_stat(a.confidence, RATIO_PLACES),
                detected_at_ms=a.detected_at_ms,
                window=_range(a.window),
                price=a.price or None,
                evidence=[
                    Evidence(name=e.name, value=round_significant(e.value, VOLUME_DIGITS), detail=e.detail)
                    for e in a.evidence
                ],
                recommended_action=a.recommended_action,
            )
            for a in shown
        ],
        omitted=len(ranked) - len(shown),
    )


def health(r: an.GetMicrostructureHealthResponse) -> Health:
    return Health(
        score=round_stat(r.score, 1),
        components=[
            HealthComponent(
                name=h.name,
                weight=round_stat(h.weight, RATIO_PLACES),
                value=round_significant(h.value, VOLUME_DIGITS),
                score=round_stat(h.score, 1),
                formula=h.formula,
            )
            for h in r.components
        ],
    )


def _side(side: c.Side.ValueType) -> str:
    return _enum(c.Side.Name(side), "SIDE_")


def liquidity_map(r: an.GetLiquidityMapResponse) -> LiquidityMap:
    return LiquidityMap(
        walls=[
            Wall(
                side=_side(w.side),
                price=w.price,
                quantity=w.quantity,
                size_vs_median=round_stat(w.size_vs_median, 2),
                persisted_seconds=w.persisted_seconds,
            )
            for w in r.walls[:MAX_LIST]
        ],
        absorptions=[
            Absorption(
                aggressor_side=_side(a.aggressor_side),
                price=a.price,
                traded_volume=volume(a.traded_volume),
                time_ms=a.time_ms,
                held_seconds=a.held_seconds,
            )
            for a in r.absorptions[:MAX_LIST]
        ],
        vacuums=price_ranges(r.vacuums),
        stop_suggestions=[
            StopSuggestion(position_side=_side(s.position_side), stop_price=s.stop_price, rationale=s.rationale)
            for s in r.stop_suggestions
        ],
    )


# --- text rendering -------------------------------------------------------------------------------


def render_coverage(symbol: str, kind: AnalyticsKind, cov: Coverage, fresh: Freshness) -> str:
    covered = window_text(cov.covered.start_ms, cov.covered.end_ms) if cov.covered else "no data in the window"
    flags = ", ".join(cov.flags) or "none"
    return (
        f"{symbol} {kind.value.replace('_', ' ')}; covered {covered}\n"
        f"samples: {cov.trade_count} trades, {cov.snapshot_count} snapshots, {cov.book_update_count} book updates; "
        f"gaps {cov.gap_count}; flags {flags}; computed at {utc_second(fresh.fetched_at_ms)} UTC"
    )


def render_order_flow(f: OrderFlow) -> list[str]:
    lines = [
        f"taker buy {f.buy_volume} ({f.buy_count} trades) / sell {f.sell_volume} ({f.sell_count}); delta {f.delta}, "
        f"ratio {f.buy_sell_ratio} -> {f.direction}",
        f"book: bid adds {f.bid_added_per_second}/s, ask adds {f.ask_added_per_second}/s, "
        f"net {f.net_flow_per_second}/s, near-touch imbalance {f.book_imbalance}",
    ]
    if f.series:
        rows = [[utc_second(b.start_ms), str(b.delta), str(b.cumulative_delta)] for b in f.series[-12:]]
        lines.append(table(["bucket UTC", "delta", "CVD"], rows))
    return lines


def render_volume_profile(p: VolumeProfile) -> list[str]:
    lines = [
        f"POC {p.point_of_control}, value area {p.value_area_low} - {p.value_area_high} "
        f"({p.value_area_fraction:.0%} of volume), bin {p.bin_size}",
        f"high-volume nodes: {', '.join(p.high_volume_nodes) or 'none'}; "
        f"low-volume nodes: {', '.join(p.low_volume_nodes) or 'none'}",
        f"vacuums: {_ranges_text(p.vacuums)}",
    ]
    top = sorted(p.bins, key=lambda b: -b.total_volume)[:10]
    if top:
        rows = [
            [f"{b.price_low}-{b.price_high}", str(b.total_volume), str(b.buy_volume), str(b.sell_volume)] for b in top
        ]
        lines.append(table(["price range", "volume", "buy", "sell"], rows))
    return lines


def _ranges_text(ranges: Sequence[PriceRange]) -> str:
    return ", ".join(f"{r.price_low}-{r.price_high} ({r.severity})" for r in ranges) or "none"


def render_anomalies(a: Anomalies) -> list[str]:
    if not a.anomalies:
        return ["no anomalies detected"]
    lines = []
    for x in a.anomalies:
        at = f" at {x.price}" if x.price else ""
        evidence = ", ".join(f"{e.name} {e.value}" for e in x.evidence[:3])
        lines.append(
            f"{x.severity} {x.type}{at} (confidence {x.confidence}, {utc_second(x.detected_at_ms)} UTC): {evidence}; "
            f"{x.recommended_action}"
        )
    if a.omitted:
        lines.append(f"... {a.omitted} more")
    return lines


def render_health(h: Health) -> list[str]:
    rows = [[x.name, str(x.score), str(x.weight), str(x.value)] for x in h.components]
    return [f"health score {h.score}/100", table(["component", "score", "weight", "input"], rows)]


def render_liquidity_map(m: LiquidityMap) -> list[str]:
    walls = ", ".join(
        f"{w.side} {w.quantity} @ {w.price} ({w.size_vs_median}x median, {w.persisted_seconds} s)" for w in m.walls
    )
    absorbed = ", ".join(
        f"{a.aggressor_side} {a.traded_volume} absorbed @ {a.price} (held {a.held_seconds} s)" for a in m.absorptions
    )
    stops = "; ".join(f"{s.position_side} position: stop {s.stop_price} ({s.rationale})" for s in m.stop_suggestions)
    return [
        f"walls: {walls or 'none'}",
        f"absorptions: {absorbed or 'none'}",
        f"vacuums: {_ranges_text(m.vacuums)}",
        f"stop suggestions: {stops or 'none'}",
    ]


def render_analysis(a: Analysis) -> str:
    lines = [render_coverage(a.symbol, a.kind, a.coverage, a.freshness)]
    if a.order_flow is not None:
        lines += render_order_flow(a.order_flow)
    if a.volume_profile is not None:
        lines += render_volume_profile(a.volume_profile)
    if a.anomalies is not None:
        lines += render_anomalies(a.anomalies)
    if a.health is not None:
        lines += render_health(a.health)
    if a.liquidity_map is not None:
        lines += render_liquidity_map(a.liquidity_map)
    f = a.freshness
    lines.append(f"({freshness_line(f.source, age_ms=f.age_ms, last_update_id=f.last_update_id, in_sync=f.in_sync)})")
    return "\n".join(lines)


# --- the tool -------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def register_analytics_tools(server: MCPServer, channel: grpc.aio.Channel) -> list[str]:
    """Add `get_analytics`; returns its name (scope `read`).

    Budget: market (6) + service_status + analytics + account (3) + trading (4) = 15 of about 20.
    Five analytics tools would make 19 and leave no room; their inputs are the same but for one
    optional parameter each, so a `kind` enum costs the model nothing in accuracy."""
    stub = an_grpc.AnalyticsStub(channel)

    @server.tool(
        name="get_analytics",
        title="Market analytics (order flow, volume profile, anomalies, health, liquidity map)",
        description=(
            "Analytics of a symbol over a recent window, computed by the provider from recorded trades and "
            "1-second order-book snapshots. kind: order_flow (taker buy/sell volume, delta, CVD series, "
            "direction, book flow and imbalance); volume_profile (point of control, value area, high/low volume "
            "nodes, vacuums); anomalies (quote stuffing, icebergs, flash-crash risk, with evidence); health "
            "(0-100 microstructure score and its components); liquidity_map (persistent walls, absorption, "
            "vacuums, stop-placement suggestions). Every answer states the window really covered, sample counts "
            "and data-quality flags: a short or gappy coverage means weak figures."
        ),
        annotations=READ_ONLY,
    )
    async def get_analytics(
        symbol: Symbol,
        kind: Annotated[AnalyticsKind, Field(description="which analysis")],
        lookback_seconds: Annotated[
            int,
            Field(ge=1, le=MAX_LOOKBACK_S, description="window ending now, in seconds (ignored with start_time_ms)"),
        ] = DEFAULT_LOOKBACK_S,
        start_time_ms: Annotated[
            int | None, Field(ge=1, description="explicit window start, epoch ms (instead of lookback_seconds)")
        ] = None,
        end_time_ms: Annotated[
            int | None, Field(ge=1, description="explicit window end, epoch ms, exclusive (default now)")
        ] = None,
        bucket_seconds: Annotated[
            int | None, Field(ge=1, le=3600, description="order_flow only: CVD bucket length (default from window)")
        ] = None,
        bin_size: Annotated[
            str | None,
            Field(
                pattern=DECIMAL_PATTERN,
                description="volume_profile only: price bin width, a multiple of the tick size (default automatic)",
            ),
        ] = None,
        depth_levels: Annotated[
            int | None, Field(ge=1, le=100, description="liquidity_map only: book levels per side (default 20)")
        ] = None,
    ) -> Annotated[CallToolResult, Analysis]:
        name = symbol.upper()
        if end_time_ms is not None and start_time_ms is None:
            raise ToolError("Invalid parameter 'end_time_ms': give start_time_ms with it, or use lookback_seconds.")
        if start_time_ms is not None and end_time_ms is not None and start_time_ms >= end_time_ms:
            raise ToolError("Invalid parameter 'start_time_ms': it must be before 'end_time_ms'.")
        window = (
            an.WindowSpec(start_ms=start_time_ms, end_ms=end_time_ms or 0)
            if start_time_ms is not None
            else an.WindowSpec(lookback_seconds=lookback_seconds)
        )
        result = await _analyse(stub, name, kind, window, bucket_seconds, bin_size, depth_levels)
        return tool_result(result, render_analysis(result))

    return ["get_analytics"]


async def _analyse(
    stub: an_grpc.AnalyticsAsyncStub,
    symbol: str,
    kind: AnalyticsKind,
    window: an.WindowSpec,
    bucket_seconds: int | None,
    bin_size: str | None,
    depth_levels: int | None,
) -> Analysis:
    try:
        if kind is AnalyticsKind.ORDER_FLOW:
            flow = await stub.GetOrderFlow(
                an.GetOrderFlowRequest(symbol=symbol, window=window, bucket_seconds=bucket_seconds or 0),
                timeout=CALL_TIMEOUT_S,
            )
            return _analysis(symbol, kind, flow.meta, order_flow=order_flow(flow))
        if kind is AnalyticsKind.VOLUME_PROFILE:
            profile = await stub.GetVolumeProfile(
                an.GetVolumeProfileRequest(symbol=symbol, window=window, bin_size=bin_size or ""),
                timeout=CALL_TIMEOUT_S,
            )
            return _analysis(symbol, kind, profile.meta, volume_profile=volume_profile(profile))
        if kind is AnalyticsKind.ANOMALIES:
            found = await stub.GetAnomalies(
                an.GetAnomaliesRequest(symbol=symbol, window=window), timeout=CALL_TIMEOUT_S
            )
            return _analysis(symbol, kind, found.meta, anomalies=anomalies(found))
        if kind is AnalyticsKind.HEALTH:
            scored = await stub.GetMicrostructureHealth(
                an.GetMicrostructureHealthRequest(symbol=symbol, window=window), timeout=CALL_TIMEOUT_S
            )
            return _analysis(symbol, kind, scored.meta, health=health(scored))
        mapped = await stub.GetLiquidityMap(
            an.GetLiquidityMapRequest(symbol=symbol, window=window, depth_levels=depth_levels or 0),
            timeout=CALL_TIMEOUT_S,
        )
        return _analysis(symbol, kind, mapped.meta, liquidity_map=liquidity_map(mapped))
    except grpc.aio.AioRpcError as exc:
        raise ToolError(explain_provider_error(decode_rpc_error(exc), symbol=symbol)) from None


def _analysis(
    symbol: str,
    kind: AnalyticsKind,
    meta: an.AnalysisMeta,
    *,
    order_flow: OrderFlow | None = None,
    volume_profile: VolumeProfile | None = None,
    anomalies: Anomalies | None = None,
    health: Health | None = None,
    liquidity_map: LiquidityMap | None = None,
) -> Analysis:
    return Analysis(
        symbol=meta.symbol or symbol,
        kind=kind,
        coverage=coverage(meta),
        order_flow=order_flow,
        volume_profile=volume_profile,
        anomalies=anomalies,
        health=health,
        liquidity_map=liquidity_map,
        freshness=book_freshness(meta.freshness, _now_ms()),
    )
