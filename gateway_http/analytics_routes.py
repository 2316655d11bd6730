"""REST analytics (scope `read`), answered by the provider's Analytics service from its recorded history.

    GET /api/v1/analytics/orderFlow  /volumeProfile  /anomalies  /health  /liquidity  /snapshots

A window is either `lookbackSeconds` (ending now; default 300) or `startTime`/`endTime`. Every
answer carries `meta`: the window really covered, sample counts, thresholds, data-quality flags
and gaps. Snapshots are the recorded 1-second books of at most one hour per call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from decimal import Decimal
from typing import TypeVar

import grpc
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import analytics_pb2_grpc as an_grpc

from gateway_auth.tokens import Scope
from gateway_http import convert
from gateway_http.errors import ApiError, GatewayReason
from gateway_http.openapi import PARAMS, Api, JsonSchema, Param, Params
from gateway_http.provider_stub import ProviderStub
from gateway_http.trading_routes import provider_call, provider_error

CALL_TIMEOUT_S = 20.0
DEFAULT_LOOKBACK_S = 300
MAX_LOOKBACK_S = 7 * 24 * 3600
MAX_SNAPSHOT_SPAN_MS = 3600 * 1000  # 3,600 one-second books: a bounded answer
MAX_SNAPSHOT_LEVELS = 5000  # the provider's limit
SYMBOL_PATTERN = "^[A-Z0-9]{2,20}$"
TAGS = ("analytics",)

ChannelKey = web.AppKey[grpc.aio.Channel]
R = TypeVar("R")

SYMBOL = Param("symbol", str, required=True, pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")
WINDOW_PARAMS = (
    Param(
        "lookbackSeconds",
        int,
        minimum=1,
        maximum=MAX_LOOKBACK_S,
        description=f"a window ending now; default {DEFAULT_LOOKBACK_S} when no startTime/endTime",
    ),
    Param("startTime", int, minimum=1, description="ms since the epoch, inclusive; not with lookbackSeconds"),
    Param("endTime", int, minimum=1, description="ms since the epoch, exclusive; default now"),
)


def window(params: Params) -> an.WindowSpec:
    lookback = params.optional("lookbackSeconds", int)
    start, end = params.optional("startTime", int) or 0, params.optional("endTime", int) or 0
    if lookback is not None and (start or end):
        raise ApiError.of(
            400,
            GatewayReason.INVALID_PARAMETER,
            "give lookbackSeconds or startTime/endTime, not both",
            field="startTime",
        )
    if start or end:
        if not start:
            raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "endTime needs a startTime", field="startTime")
        if end and end <= start:
            raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "endTime must be after startTime", field="endTime")
        return an.WindowSpec(start_ms=start, end_ms=end)
    return an.WindowSpec(lookback_seconds=lookback or DEFAULT_LOOKBACK_S)


def snapshot_range(params: Params) -> tuple[int, int]:
    start, end = params.get("startTime", int), params.get("endTime", int)
    if end <= start:
        raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "endTime must be after startTime", field="endTime")
    if end - start > MAX_SNAPSHOT_SPAN_MS:
        raise ApiError.of(
            400,
            GatewayReason.INVALID_PARAMETER,
            f"at most {MAX_SNAPSHOT_SPAN_MS // 1000} s of snapshots per call; page with startTime",
            field="endTime",
        )
    return start, end


# The provider's request fields -> the HTTP parameters, for its 400s.
FIELDS = {
    "window": "startTime",
    "window.start_ms": "startTime",
    "window.end_ms": "endTime",
    "window.lookback_seconds": "lookbackSeconds",
    "bucket_seconds": "bucketSeconds",
    "bin_size": "binSize",
    "depth_levels": "depthLevels",
    "start_ms": "startTime",
    "end_ms": "endTime",
}


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


class AnalyticsRoutes:
    def __init__(self, channel_key: ChannelKey) -> None:
        self._stub: ProviderStub[an_grpc.AnalyticsAsyncStub] = ProviderStub(channel_key, an_grpc.AnalyticsStub)

    async def order_flow(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        req = an.GetOrderFlowRequest(
            symbol=params.get("symbol", str),
            window=window(params),
            bucket_seconds=params.optional("bucketSeconds", int) or 0,
        )
        return _json(convert.order_flow(await _call(self._stub(request).GetOrderFlow(req, timeout=CALL_TIMEOUT_S))))

    async def volume_profile(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        bin_size = params.optional("binSize", Decimal)
        req = an.GetVolumeProfileRequest(
            symbol=params.get("symbol", str), window=window(params), bin_size="" if bin_size is None else str(bin_size)
        )
        answer = await _call(self._stub(request).GetVolumeProfile(req, timeout=CALL_TIMEOUT_S))
        return _json(convert.volume_profile(answer))

    async def anomalies(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        req = an.GetAnomaliesRequest(symbol=params.get("symbol", str), window=window(params))
        return _json(convert.anomalies(await _call(self._stub(request).GetAnomalies(req, timeout=CALL_TIMEOUT_S))))

    async def health(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        req = an.GetMicrostructureHealthRequest(symbol=params.get("symbol", str), window=window(params))
        answer = await _call(self._stub(request).GetMicrostructureHealth(req, timeout=CALL_TIMEOUT_S))
        return _json(convert.health(answer))

    async def liquidity(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        req = an.GetLiquidityMapRequest(
            symbol=params.get("symbol", str), window=window(params), depth_levels=params.get("depthLevels", int)
        )
        answer = await _call(self._stub(request).GetLiquidityMap(req, timeout=CALL_TIMEOUT_S))
        return _json(convert.liquidity_map(answer))

    async def snapshots(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        start, end = snapshot_range(params)
        symbol = params.get("symbol", str)
        req = an.GetSnapshotsRequest(symbol=symbol, start_ms=start, end_ms=end, levels=params.get("levels", int))
        batches: list[an.GetSnapshotsResponse] = []
        call = self._stub(request).GetSnapshots(req, timeout=CALL_TIMEOUT_S)
        try:
            async for batch in call:
                batches.append(batch)
        except grpc.RpcError as exc:
            raise provider_error(exc, FIELDS) from None
        return _json(convert.snapshots(symbol, batches))


async def _call(call: Awaitable[R]) -> R:
    return await provider_call(call, FIELDS)


def add_analytics_routes(api: Api, channel_key: ChannelKey) -> None:
    routes = AnalyticsRoutes(channel_key)

    def get(
        path: str, handler: Handler, summary: str, params: Sequence[Param], response: JsonSchema, description: str
    ) -> None:
        api.route(
            "GET",
            f"/api/v1/analytics/{path}",
            handler,
            scope=Scope.READ,
            summary=summary,
            params=[SYMBOL, *params],
            response=response,
            description=description + " " + _META_NOTE,
            tags=TAGS,
        )

    get(
        "orderFlow",
        routes.order_flow,
        "Order flow: buy/sell volume, delta, CVD series, book flow and imbalance",
        [
            *WINDOW_PARAMS,
            Param("bucketSeconds", int, minimum=1, description="CVD series resolution; default chosen from the window"),
        ],
        convert.ORDER_FLOW_SCHEMA,
        "direction: STRONG_BUY (buy/sell ratio > 2), MODERATE_BUY (1.2-2), NEUTRAL, MODERATE_SELL, STRONG_SELL.",
    )
    get(
        "volumeProfile",
        routes.volume_profile,
        "Volume profile: bins, point of control, value area, high/low volume nodes, vacuums",
        [
            *WINDOW_PARAMS,
            Param("binSize", Decimal, minimum=Decimal(0), description="default max(tickSize x 10, range / 100)"),
        ],
        convert.VOLUME_PROFILE_SCHEMA,
        "Prices are decimal strings on the symbol's tick grid.",
    )
    get(
        "anomalies",
        routes.anomalies,
        "Anomalies: quote stuffing, icebergs, flash-crash risk, with evidence",
        WINDOW_PARAMS,
        convert.ANOMALIES_SCHEMA,
        "Each anomaly has a severity, a confidence 0..1, its evidence and a recommended action.",
    )
    get(
        "health",
        routes.health,
        "Microstructure health score 0..100 and its weighted components",
        WINDOW_PARAMS,
        convert.HEALTH_SCHEMA,
        "Components: spread_stability, liquidity_depth, flow_balance, update_rate, each with its formula.",
    )
    get(
        "liquidity",
        routes.liquidity,
        "Liquidity map: walls, absorptions, vacuums, stop suggestions",
        [*WINDOW_PARAMS, Param("depthLevels", int, minimum=1, maximum=MAX_SNAPSHOT_LEVELS, default=20)],
        convert.LIQUIDITY_SCHEMA,
        "Walls are resting levels far above the median size, with how long they persisted.",
    )
    api.route(
        "GET",
        "/api/v1/analytics/snapshots",
        routes.snapshots,
        scope=Scope.READ,
        summary="Recorded 1-second order book snapshots in [startTime, endTime)",
        params=[
            SYMBOL,
            Param("startTime", int, required=True, minimum=1, description="ms since the epoch, inclusive"),
            Param(
                "endTime",
                int,
                required=True,
                minimum=1,
                description=f"ms since the epoch, exclusive; at most {MAX_SNAPSHOT_SPAN_MS // 1000} s after startTime",
            ),
            Param(
                "levels",
                int,
                minimum=0,
                maximum=MAX_SNAPSHOT_LEVELS,
                default=20,
                description="per side; 0: all recorded",
            ),
        ],
        response=convert.SNAPSHOTS_SCHEMA,
        description="In time order; gaps lists the seconds that were not recorded.",
        tags=TAGS,
    )


_META_NOTE = (
    "meta: the requested and covered windows, sample counts, thresholds used, data-quality flags "
    "(PARTIAL_WINDOW, RECORDING_GAP, BOOK_RESYNCED, NO_TRADES, FEW_SAMPLES, BOOK_OUT_OF_SYNC) and recording gaps. "
    "Statistics are numbers (null when undefined); prices are decimal strings."
)
