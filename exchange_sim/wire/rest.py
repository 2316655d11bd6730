"""The simulator's REST API under /api/v3, answering as Binance does (paths, weights, headers,
error codes). Market data endpoints; every response carries X-MBX-USED-WEIGHT-1M."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from exchange_sim.faults import FaultPlan, RestFaultRule, rest_fault_answer
from exchange_sim.market.candles import INTERVAL_MS, fmt
from exchange_sim.market.replay import REPLAY
from exchange_sim.matching import EngineError
from exchange_sim.venue import AGG_ID, AGG_TIME, TradeEntry, Venue, agg_trade_fields
from exchange_sim.wire.ratelimit import RateLimiter, RateLimitError

VENUE = web.AppKey("venue", Venue)
LIMITER = web.AppKey("limiter", RateLimiter)
FAULTS = web.AppKey("faults", FaultPlan)  # armed faults and the simulator's clock
_FAULT_RELEASE = web.AppKey("fault_release", asyncio.Event)  # set at shutdown: held requests end


def now_ms() -> int:
    """Wall-clock ms. Inside the app use `request_now_ms` (the simulator clock, which the clock fault shifts)."""
    return int(time.time() * 1000)


def request_now_ms(request: web.Request) -> int:
    """The simulator's clock as used for serverTime, event times and timestamp/recvWindow checks."""
    faults = request.app.get(FAULTS)
    return faults.clock.now_ms() if faults is not None else now_ms()


class ApiError(Exception):
    """A Binance error answer: HTTP status, code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


Weigher = Callable[[web.Request], int]
Handler = Callable[[web.Request, Venue, int], Awaitable[object]]


def endpoint(weigh: Weigher | int, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Rate-limit, run, and answer with Binance's headers and error shape."""

    async def handle(request: web.Request) -> web.Response:
        limiter = request.app[LIMITER]
        ip = request.remote or "unknown"
        now = request_now_ms(request)
        faults = request.app.get(FAULTS)
        if faults is not None and (rule := faults.take_rest(request.path)) is not None:
            return await _injected_fault(request, rule, ip, now)
        try:
            weight = weigh(request) if callable(weigh) else weigh
            limiter.check_request(ip, now, weight)
        except RateLimitError as exc:
            return _json(exc.to_json(), exc.http_status, {**exc.headers(), **limiter.response_headers(ip, now)})
        except ApiError as exc:
            return _json({"code": exc.code, "msg": exc.msg}, exc.status, limiter.response_headers(ip, now))
        try:
            body = await handler(request, request.app[VENUE], now)
        except ApiError as exc:
            return _json({"code": exc.code, "msg": exc.msg}, exc.status, limiter.response_headers(ip, now))
        except EngineError as exc:
            return _json({"code": exc.code, "msg": exc.msg}, 400, limiter.response_headers(ip, now))
        return _json(body, 200, limiter.response_headers(ip, now))

    return handle


async def _injected_fault(request: web.Request, rule: RestFaultRule, ip: str, now: int) -> web.Response:
    """Answer with an armed fault, or (TIMEOUT) hold the request and drop the connection unanswered."""
    answer = rest_fault_answer(rule, now)
    if answer is None:
        release = request.app.get(_FAULT_RELEASE)
        if release is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), rule.hold_s)
        else:
            await asyncio.sleep(rule.hold_s)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=504)  # never written: the connection is gone (aiohttp ignores that)
    headers = dict(answer.headers)
    if answer.binance_headers:
        headers.update(request.app[LIMITER].response_headers(ip, now))
    return web.Response(body=answer.body, status=answer.status, content_type=answer.content_type, headers=headers)


# ----------------------------------------------------------------- parameters


def _symbol(request: web.Request, venue: Venue, required: bool = True) -> str | None:
    value = request.query.get("symbol")
    if value is None or value == "":
        if required:
            raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    symbol = value.upper()
    if symbol not in venue.feeds:
        raise ApiError(400, -1121, "Invalid symbol.")
    return symbol


def _symbols(request: web.Request, venue: Venue) -> list[str] | None:
    """`symbol` or `symbols` (JSON array), not both; None for neither (all symbols)."""
    if "symbol" in request.query and "symbols" in request.query:
        raise ApiError(400, -1128, "Combination of optional parameters invalid.")
    if "symbols" not in request.query:
        single = _symbol(request, venue, required=False)
        return None if single is None else [single]
    try:
        names = orjson.loads(request.query["symbols"])
    except orjson.JSONDecodeError:
        raise ApiError(400, -1135, "JSON sent for parameter 'symbols' is not valid") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ApiError(400, -1135, "JSON sent for parameter 'symbols' is not valid")
    if len(set(names)) != len(names):
        raise ApiError(400, -1151, "Symbol is present multiple times in the list.")
    for name in names:
        if name.upper() not in venue.feeds:
            raise ApiError(400, -1121, "Invalid symbol.")
    return [n.upper() for n in names]


def _int(
    request: web.Request, name: str, default: int | None = None, low: int = 0, high: int | None = None
) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        message = f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        raise ApiError(400, -1100, message) from None
    if value < low:
        raise ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")
    if high is not None and value > high:
        value = high  # Binance caps limits rather than rejecting them
    return value


def _limit(request: web.Request, default: int, high: int) -> int:
    value = _int(request, "limit", default, low=1, high=high)
    assert value is not None
    return value


# ----------------------------------------------------------------- weights


def depth_weight(request: web.Request) -> int:
    limit = _int(request, "limit", 100, low=1) or 100
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def ticker_24h_weight(request: web.Request) -> int:
    if "symbol" in request.query:
        return 2
    if "symbols" in request.query:
        try:
            count = len(orjson.loads(request.query["symbols"]))
        except (orjson.JSONDecodeError, TypeError):
            return 2
        return 2 if count <= 20 else 40 if count <= 100 else 80
    return 80


def single_or_all_weight(request: web.Request) -> int:
    return 2 if "symbol" in request.query else 4


# ----------------------------------------------------------------- handlers


async def ping(request: web.Request, venue: Venue, now: int) -> object:
    return {}


async def server_time(request: web.Request, venue: Venue, now: int) -> object:
    return {"serverTime": now}


async def exchange_info(request: web.Request, venue: Venue, now: int) -> object:
    symbols = _symbols(request, venue) or list(venue.feeds)
    limiter = request.app[LIMITER]
    return {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": limiter.config.exchange_info_rate_limits(),
        "exchangeFilters": [],
        "symbols": [_symbol_info(venue, s) for s in symbols],
    }


def _symbol_info(venue: Venue, symbol: str) -> dict[str, Any]:
    spec = venue.engine.spec(symbol)
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base_asset,
        "baseAssetPrecision": spec.base_asset_precision,
        "quoteAsset": spec.quote_asset,
        "quotePrecision": spec.quote_asset_precision,
        "quoteAssetPrecision": spec.quote_asset_precision,
        "baseCommissionPrecision": spec.base_asset_precision,
        "quoteCommissionPrecision": spec.quote_asset_precision,
        "orderTypes": [str(t) for t in spec.order_types],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": spec.quote_order_qty_market_allowed,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": spec.exchange_info_filters(),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": str(spec.default_stp_mode),
        "allowedSelfTradePreventionModes": [str(m) for m in spec.allowed_stp_modes],
    }


async def depth(request: web.Request, venue: Venue, now: int) -> object:
    symbol = _symbol(request, venue)
    assert symbol is not None
    replay = request.app.get(REPLAY)
    if replay is not None and replay.serves(symbol):
        return replay.depth(symbol, _limit(request, 100, 5000))
    last_id, bids, asks = venue.engine.depth(symbol, _limit(request, 100, 5000))
    return {
        "lastUpdateId": last_id,
        "bids": [[fmt(p), fmt(q)] for p, q in bids],
        "asks": [[fmt(p), fmt(q)] for p, q in asks],
    }


def _trade_fields(entry: TradeEntry) -> dict[str, object]:
    trade_id, price, qty, quote_qty, at, is_buyer_maker = entry
    return {
        "id": trade_id,
        "price": price,
        "qty": qty,
        "quoteQty": quote_qty,
        "time": at,
        "isBuyerMaker": is_buyer_maker,
        "isBestMatch": True,
    }


async def trades(request: web.Request, venue: Venue, now: int) -> object:
    symbol = _symbol(request, venue)
    assert symbol is not None
    tape = venue.feeds[symbol].trades
    limit = _limit(request, 500, 1000)
    return [_trade_fields(t) for t in itertools.islice(tape, max(0, len(tape) - limit), None)]


async def historical_trades(request: web.Request, venue: Venue, now: int) -> object:
    """Trades from fromId on, oldest first, as far as the tape still holds them; without it, the latest."""
    symbol = _symbol(request, venue)
    assert symbol is not None
    from_id = _int(request, "fromId")
    if from_id is None:
        return await trades(request, venue, now)
    tape = venue.feeds[symbol].trades
    start = bisect.bisect_left(tape, from_id, key=lambda entry: entry[0])  # the tape is in id order
    return [_trade_fields(t) for t in itertools.islice(tape, start, start + _limit(request, 500, 1000))]


async def agg_trades(request: web.Request, venue: Venue, now: int) -> object:
    symbol = _symbol(request, venue)
    assert symbol is not None
    limit = _limit(request, 500, 1000)
    from_id = _int(request, "fromId")
    start, end = _int(request, "startTime"), _int(request, "endTime")
    aggs = list(venue.feeds[symbol].agg_trades)
    if from_id is not None:
        picked = [a for a in aggs if a[AGG_ID] >= from_id][:limit]
    elif start is not None or end is not None:
        picked = [a for a in aggs if (start is None or a[AGG_TIME] >= start) and (end is None or a[AGG_TIME] <= end)]
        picked = picked[:limit] if start is not None else picked[-limit:]
    else:
        picked = aggs[-limit:]
    return [agg_trade_fields(a) for a in picked]


async def klines(request: web.Request, venue: Venue, now: int) -> object:
    symbol = _symbol(request, venue)
    assert symbol is not None
    interval = request.query.get("interval")
    if not interval:
        raise ApiError(400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
    if interval not in INTERVAL_MS:
        raise ApiError(400, -1120, "Invalid interval.")
    candles = venue.feeds[symbol].candles.klines(
        interval, _int(request, "startTime"), _int(request, "endTime"), _limit(request, 500, 1000)
    )
    return [c.kline_row(interval) for c in candles]


async def avg_price(request: web.Request, venue: Venue, now: int) -> object:
    symbol = _symbol(request, venue)
    assert symbol is not None
    price, close_time = venue.feeds[symbol].candles.average_price(now, 5)
    return {"mins": 5, "price": fmt(price if price is not None else Decimal(0)), "closeTime": close_time}


async def ticker_24h(request: web.Request, venue: Venue, now: int) -> object:
    symbols = _symbols(request, venue)
    mini = request.query.get("type", "FULL").upper()
    if mini not in ("FULL", "MINI"):
        raise ApiError(400, -1130, "Data sent for parameter 'type' is not valid.")
    keys = (
        "symbol",
        "openPrice",
        "highPrice",
        "lowPrice",
        "lastPrice",
        "volume",
        "quoteVolume",
        "openTime",
        "closeTime",
        "firstId",
        "lastId",
        "count",
    )

    def one(symbol: str) -> dict[str, object]:
        full = venue.ticker_24h(symbol, now)
        return {k: full[k] for k in keys} if mini == "MINI" else full

    if symbols is not None and "symbol" in request.query:
        return one(symbols[0])
    return [one(s) for s in (symbols or venue.feeds)]


async def ticker_price(request: web.Request, venue: Venue, now: int) -> object:
    symbols = _symbols(request, venue)

    def one(symbol: str) -> dict[str, object]:
        return {"symbol": symbol, "price": fmt(venue.feeds[symbol].candles.last_price or Decimal(0))}

    if symbols is not None and "symbol" in request.query:
        return one(symbols[0])
    return [one(s) for s in (symbols or venue.feeds)]


async def book_ticker(request: web.Request, venue: Venue, now: int) -> object:
    symbols = _symbols(request, venue)

    def one(symbol: str) -> dict[str, object]:
        t = venue.engine.book_ticker(symbol)
        zero = Decimal(0)
        return {
            "symbol": symbol,
            "bidPrice": fmt(t.bid_price or zero),
            "bidQty": fmt(t.bid_qty or zero),
            "askPrice": fmt(t.ask_price or zero),
            "askQty": fmt(t.ask_qty or zero),
        }

    if symbols is not None and "symbol" in request.query:
        return one(symbols[0])
    return [one(s) for s in (symbols or venue.feeds)]


async def retired_listen_key(request: web.Request) -> web.Response:
    """listenKey user streams were switched off on 2026-02-20: user data comes over the WS API."""
    return _json({"code": -1020, "msg": "This operation is not supported."}, 410)


async def _release_held_requests(app: web.Application) -> None:
    app[_FAULT_RELEASE].set()


def add_routes(app: web.Application) -> None:
    app[_FAULT_RELEASE] = asyncio.Event()
    app.on_shutdown.append(_release_held_requests)
    get = app.router.add_get
    get("/api/v3/ping", endpoint(1, ping))
    get("/api/v3/time", endpoint(1, server_time))
    get("/api/v3/exchangeInfo", endpoint(20, exchange_info))
    get("/api/v3/depth", endpoint(depth_weight, depth))
    get("/api/v3/trades", endpoint(25, trades))
    get("/api/v3/historicalTrades", endpoint(25, historical_trades))
    get("/api/v3/aggTrades", endpoint(4, agg_trades))
    get("/api/v3/klines", endpoint(2, klines))
    get("/api/v3/uiKlines", endpoint(2, klines))
    get("/api/v3/avgPrice", endpoint(2, avg_price))
    get("/api/v3/ticker/24hr", endpoint(ticker_24h_weight, ticker_24h))
    get("/api/v3/ticker/price", endpoint(single_or_all_weight, ticker_price))
    get("/api/v3/ticker/bookTicker", endpoint(single_or_all_weight, book_ticker))
    for method in ("POST", "PUT", "DELETE"):
        app.router.add_route(method, "/api/v3/userDataStream", retired_listen_key)
