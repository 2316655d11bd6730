"""REST market data: GET /api/v1/... in Binance's shapes, answered by the provider's MarketData service.

Each handler reads its parsed parameters, makes one provider call (with a deadline) and
converts the answer in gateway_http.convert. Provider errors are translated by
errors_middleware (unknown symbol 400, book out of sync 409, provider down 503, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc

from gateway_auth.tokens import Scope
from gateway_http import convert
from gateway_http.errors import ApiError, GatewayReason
from gateway_http.openapi import PARAMS, Api, JsonSchema, Param, Params
from gateway_http.provider_stub import ProviderStub
from provider_client.intervals import KLINE_INTERVALS

CALL_TIMEOUT_S = 10.0
MAX_SYMBOLS = 100  # the provider's limit per call
SYMBOL_PATTERN = "^[A-Z0-9]{2,20}$"
_QUOTED_SYMBOL = r'"[A-Z0-9]{2,20}"'
_WS = r"[ \t\n\r]*"  # JSON's whitespace only (a regex \s also takes form feeds, which JSON refuses)
SYMBOLS_PATTERN = rf"^\[{_WS}{_QUOTED_SYMBOL}({_WS},{_WS}{_QUOTED_SYMBOL})*{_WS}\]$"
TIME_ZONE_PATTERN = r"^[+-]?[0-9]{1,2}(:[0-9]{2})?$"
TAGS = ("market data",)

ChannelKey = web.AppKey[grpc.aio.Channel]


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _symbol_param(required: bool = False) -> Param:
    return Param("symbol", str, required=required, pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")


SYMBOLS_PARAM = Param(
    "symbols",
    str,
    pattern=SYMBOLS_PATTERN,
    description=f'a JSON array like ["BTCUSDT","ETHUSDT"] (at most {MAX_SYMBOLS}); not with symbol',
)
SYMBOL_SELECTION = (_symbol_param(), SYMBOLS_PARAM)
SELECTION_NOTE = "symbol: one object; symbols: an array for those; neither: an array for every symbol."


def selected_symbols(params: Params) -> tuple[list[str], bool]:
    """The symbols asked for and whether one object (not an array) is answered."""
    symbol, symbols = params.optional("symbol", str), params.optional("symbols", str)
    if symbol is not None and symbols is not None:
        raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "give symbol or symbols, not both", field="symbols")
    if symbol is not None:
        return [symbol], True
    if symbols is None:
        return [], False
    try:
        names = orjson.loads(symbols)  # the declared pattern already admits only a JSON array of symbols
    except orjson.JSONDecodeError:
        names = None  # defence in depth: a pattern and a parser may still disagree on an edge
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "expected a JSON array of symbols", field="symbols")
    if len(names) > MAX_SYMBOLS:
        raise ApiError.of(
            400, GatewayReason.INVALID_PARAMETER, f"at most {MAX_SYMBOLS} symbols; got {len(names)}", field="symbols"
        )
    return names, False


def one_or_many(items: Sequence[object], single: bool) -> web.Response:
    if not single:
        return _json(list(items))
    if not items:
        raise ApiError.of(404, GatewayReason.NOT_FOUND, "the provider returned nothing for this symbol", field="symbol")
    return _json(items[0])


def check_time_range(params: Params) -> tuple[int, int]:
    start, end = params.optional("startTime", int) or 0, params.optional("endTime", int) or 0
    if start and end and start > end:
        raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "startTime is after endTime", field="startTime")
    return start, end


TIME_PARAMS = (
    Param("startTime", int, minimum=1, description="ms since the epoch, inclusive"),
    Param("endTime", int, minimum=1, description="ms since the epoch, inclusive"),
)


def _limit(default: int, maximum: int) -> Param:
    return Param("limit", int, minimum=1, maximum=maximum, default=default)


class MarketRoutes:
    """The handlers, bound to the application's provider channel."""

    def __init__(self, channel_key: ChannelKey) -> None:
        self._stub: ProviderStub[md_grpc.MarketDataAsyncStub] = ProviderStub(channel_key, md_grpc.MarketDataStub)

    async def ticker_price(self, request: web.Request) -> web.Response:
        symbols, single = selected_symbols(request[PARAMS])
        answer = await self._stub(request).GetTickerPrice(
            md.GetTickerPriceRequest(symbols=symbols), timeout=CALL_TIMEOUT_S
        )
        return one_or_many([convert.ticker_price(p) for p in answer.prices], single)

    async def ticker_24h(self, request: web.Request) -> web.Response:
        symbols, single = selected_symbols(request[PARAMS])
        answer = await self._stub(request).GetTicker24h(md.GetTicker24hRequest(symbols=symbols), timeout=CALL_TIMEOUT_S)
        return one_or_many([convert.ticker_24h(t) for t in answer.tickers], single)

    async def book_ticker(self, request: web.Request) -> web.Response:
        symbols, single = selected_symbols(request[PARAMS])
        answer = await self._stub(request).GetBookTicker(
            md.GetBookTickerRequest(symbols=symbols), timeout=CALL_TIMEOUT_S
        )
        return one_or_many([convert.book_ticker(t) for t in answer.tickers], single)

    async def avg_price(self, request: web.Request) -> web.Response:
        symbol = request[PARAMS].get("symbol", str)
        answer = await self._stub(request).GetAveragePrice(
            md.GetAveragePriceRequest(symbol=symbol), timeout=CALL_TIMEOUT_S
        )
        return _json(convert.avg_price(answer))

    async def klines(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        start, end = check_time_range(params)
        req = md.GetKlinesRequest(
            symbol=params.get("symbol", str),
            interval=KLINE_INTERVALS[params.get("interval", str)],
            start_time_ms=start,
            end_time_ms=end,
            limit=params.get("limit", int),
            time_zone=params.get("timeZone", str),
        )
        answer = await self._stub(request).GetKlines(req, timeout=CALL_TIMEOUT_S)
        return _json([convert.kline(k) for k in answer.klines])

    async def depth(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        req = md.GetOrderBookRequest(
            symbol=params.get("symbol", str),
            limit=params.get("limit", int),
            allow_stale=params.get("allowStale", bool),
        )
        answer = await self._stub(request).GetOrderBook(req, timeout=CALL_TIMEOUT_S)
        return _json(convert.order_book(answer))

    async def trades(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        req = md.GetRecentTradesRequest(
            symbol=params.get("symbol", str),
            limit=params.get("limit", int),
            from_id=params.optional("fromId", int) or 0,
        )
        answer = await self._stub(request).GetRecentTrades(req, timeout=CALL_TIMEOUT_S)
        return _json([convert.trade(t) for t in answer.trades])

    async def agg_trades(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        start, end = check_time_range(params)
        req = md.GetAggregateTradesRequest(
            symbol=params.get("symbol", str),
            from_id=params.optional("fromId", int) or 0,
            start_time_ms=start,
            end_time_ms=end,
            limit=params.get("limit", int),
        )
        answer = await self._stub(request).GetAggregateTrades(req, timeout=CALL_TIMEOUT_S)
        return _json([convert.agg_trade(t) for t in answer.trades])

    async def exchange_info(self, request: web.Request) -> web.Response:
        symbols, _ = selected_symbols(request[PARAMS])
        answer = await self._stub(request).GetExchangeInfo(
            md.GetExchangeInfoRequest(symbols=symbols), timeout=CALL_TIMEOUT_S
        )
        return _json(convert.exchange_info(answer))


def add_market_routes(api: Api, channel_key: ChannelKey) -> None:
    routes = MarketRoutes(channel_key)

    def get(
        path: str, handler: Handler, summary: str, params: Sequence[Param], response: JsonSchema, description: str = ""
    ) -> None:
        api.route(
            "GET",
            path,
            handler,
            scope=Scope.READ,
            summary=summary,
            params=params,
            response=response,
            tags=TAGS,
            description=description,
        )

    get(
        "/api/v1/ticker/price",
        routes.ticker_price,
        "Latest price",
        SYMBOL_SELECTION,
        convert.one_or_many(convert.TICKER_PRICE_SCHEMA),
        description=SELECTION_NOTE,
    )
    get(
        "/api/v1/ticker/24hr",
        routes.ticker_24h,
        "24 h rolling ticker",
        SYMBOL_SELECTION,
        convert.one_or_many(convert.TICKER_24H_SCHEMA),
        description=SELECTION_NOTE,
    )
    get(
        "/api/v1/ticker/bookTicker",
        routes.book_ticker,
        "Best bid and ask",
        SYMBOL_SELECTION,
        convert.one_or_many(convert.BOOK_TICKER_SCHEMA),
        description=SELECTION_NOTE,
    )
    get(
        "/api/v1/avgPrice",
        routes.avg_price,
        "Average price over the exchange's window (mins)",
        [_symbol_param(required=True)],
        convert.AVG_PRICE_SCHEMA,
    )
    get(
        "/api/v1/klines",
        routes.klines,
        "Candles, as Binance's 12-element arrays",
        [
            _symbol_param(required=True),
            Param("interval", str, required=True, choices=tuple(KLINE_INTERVALS)),
            *TIME_PARAMS,
            Param(
                "timeZone",
                str,
                default="0",
                pattern=TIME_ZONE_PATTERN,
                description="interval boundaries' time zone, -12:00 to +14:00 (times stay UTC)",
            ),
            _limit(500, 1000),
        ],
        convert.KLINES_SCHEMA,
    )
    get(
        "/api/v1/depth",
        routes.depth,
        "Order book from the provider's synchronised local book",
        [
            _symbol_param(required=True),
            _limit(100, 5000),
            Param(
                "allowStale",
                bool,
                default=False,
                description="answer with inSync=false while the book resynchronises instead of 409",
            ),
        ],
        convert.DEPTH_SCHEMA,
        description="Binance's lastUpdateId, bids, asks plus the book's freshness: eventTime, ageMs, inSync, source. "
        "409 (reason ERROR_REASON_BOOK_OUT_OF_SYNC) while the book resynchronises, unless allowStale=true.",
    )
    get(
        "/api/v1/trades",
        routes.trades,
        "Public trades: the latest, or from an id on",
        [
            _symbol_param(required=True),
            Param(
                "fromId",
                int,
                minimum=0,
                description="trades from this id on, oldest first (Binance's historicalTrades); "
                "e.g. the ids a trade stream's gap notice names",
            ),
            _limit(500, 1000),
        ],
        convert.TRADES_SCHEMA,
    )
    get(
        "/api/v1/aggTrades",
        routes.agg_trades,
        "Aggregate trades, with Binance's short keys",
        [
            _symbol_param(required=True),
            Param("fromId", int, minimum=0, description="inclusive"),
            *TIME_PARAMS,
            _limit(500, 1000),
        ],
        convert.AGG_TRADES_SCHEMA,
    )
    get(
        "/api/v1/exchangeInfo",
        routes.exchange_info,
        "Trading rules: symbols with their filters, rate limits",
        SYMBOL_SELECTION,
        convert.EXCHANGE_INFO_SCHEMA,
        description="symbol or symbols restrict the symbols listed; neither lists every symbol.",
    )
