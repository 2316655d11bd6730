"""Binance Spot REST client: the provider's only HTTP path to the exchange.

A thin shell around pure parts: `WeightBudget` decides whether a request may go now,
`ServerClock` stamps signed requests, `signing.sign_rest` builds the exact bytes, and `wire`
knows paths, weights and shapes. This module sends, reports every response's headers to the
budget, and turns failures into the provider's error tree (reference §4.3, §4.6):

* weight is reserved before sending; a short wait (≤ ``max_budget_wait_s``) is waited out,
  a longer one is refused with `RateLimited`, and during an IP ban (418) nothing is sent:
  calls fail at once with `IpBanned`;
* reads: network errors, timeouts and 5xx → `ExchangeUnavailable`;
* ``order=True`` (state-changing TRADE calls): anything after the request may have left —
  timeout, dropped connection, 5xx, -1006/-1007 — is `ExecutionUnknown` and never retried here;
* -1021: the clock offset is re-measured; a read is retried once, an order call is not.

Logs name the method, path, status and weight only: never the query, body, key or signature.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
import orjson
from yarl import URL

from provider.binance import wire
from provider.binance.budget import WeightBudget
from provider.binance.clock import ServerClock
from provider.binance.signing import Params, ParamValue, Signer, encode_params, sign_rest
from provider.binance.wire import ApiPath, Method, Weight, WireFormatError
from provider.errors import (
    CODE_INVALID_TIMESTAMP,
    UNKNOWN_EXECUTION_CODES,
    BinanceError,
    ClockSkew,
    CredentialsMissing,
    ExchangeUnavailable,
    ExecutionUnknown,
    IpBanned,
    ProviderError,
    RateLimited,
    UnexpectedResponse,
)
from provider.marketdata.model import (
    AggTrade,
    AvgPrice,
    BookTicker,
    DepthSnapshot,
    ExchangeInfo,
    Kline,
    Ticker24h,
    TickerPrice,
    Trade,
)

__all__ = ["DEFAULT_TIMEOUT", "RestClient"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=10, connect=3)
_RESERVED_PARAMS: Final = frozenset({"timestamp", "signature"})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Reply:
    body: Any
    sent_local_ms: float
    recv_local_ms: float


class RestClient:
    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        budget: WeightBudget | None = None,
        signer: Signer | None = None,
        clock: ServerClock | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_budget_wait_s: float = 2.0,
        recv_window_ms: int = wire.DEFAULT_RECV_WINDOW_MS,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._signer = signer
        self._timeout = timeout
        self._max_budget_wait_s = max_budget_wait_s
        self._recv_window_ms = recv_window_ms
        self._closed = False
        self.budget = budget if budget is not None else WeightBudget()
        self.clock = clock if clock is not None else ServerClock()

    @property
    def has_credentials(self) -> bool:
        return self._signer is not None

    async def close(self) -> None:
        """Refuse further calls. The session belongs to the caller and stays open."""
        self._closed = True

    # ------------------------------------------------------------------ sending

    async def _acquire(self, weight: int, *, order: bool, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_budget_wait_s
        while True:
            now = self.clock.now_ms()
            permit = self.budget.try_acquire(weight, now, order=order)
            if permit.allowed:
                return
            if permit.banned:
                raise IpBanned(f"{what}: IP banned, not sent", permit.delay_ms, now + permit.delay_ms)
            wait_s = permit.delay_ms / 1000
            if loop.time() + wait_s > deadline:
                raise RateLimited(f"{what}: weight budget ({permit.reason}), not sent", permit.delay_ms)
            log.info("%s: waiting %d ms for request weight (%s)", what, permit.delay_ms, permit.reason)
            await asyncio.sleep(wait_s)

    async def _send(
        self,
        method: Method,
        path: str,
        *,
        weight: int,
        query: str = "",
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        order: bool = False,
    ) -> _Reply:
        what = f"{method} {path}"
        if self._closed:
            raise ExchangeUnavailable(f"{what}: REST client closed")
        await self._acquire(weight, order=order, what=what)
        # Already percent-encoded (and signed byte for byte): yarl must not re-encode it.
        url = URL(f"{self._base_url}{path}?{query}" if query else f"{self._base_url}{path}", encoded=True)
        sent_at = self.clock.now_ms()
        sent_local = self.clock.local_ms()
        try:
            async with self._session.request(
                method, url, data=body or None, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status, reason, response_headers = response.status, response.reason, response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection was made, so nothing was sent and nothing was charged.
            self.budget.refund(weight, spent_at_ms=sent_at, now_ms=self.clock.now_ms())
            raise ExchangeUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")
            if order:
                raise ExecutionUnknown(f"{detail}; execution status unknown") from exc
            raise ExchangeUnavailable(detail) from exc
        recv_local = self.clock.local_ms()
        now = self.clock.now_ms()

        try:
            payload: Any = orjson.loads(raw) if raw else None
            decoded = True
        except orjson.JSONDecodeError:
            payload, decoded = None, False
        error = wire.parse_error(payload) if status >= 400 else None
        code, msg = error if error is not None else (None, None)
        self.budget.on_response(status, response_headers, sent_at_ms=sent_at, now_ms=now, code=code, message=msg)
        log.debug("%s -> %d (weight %d, code %s)", what, status, weight, code)

        if 200 <= status < 300:
            if not decoded:
                if order:
                    raise ExecutionUnknown(f"{what}: HTTP {status} with a body that is not JSON", http_status=status)
                raise UnexpectedResponse(f"{what}: HTTP {status} with a body that is not JSON")
            if order:
                self.budget.refund(weight, spent_at_ms=sent_at, now_ms=now)  # successful orders weigh 0
            return _Reply(payload, sent_local, recv_local)
        raise self._failure(what, status, reason or "", code, msg, payload, now, order=order)

    def _failure(
        self,
        what: str,
        status: int,
        reason: str,
        code: int | None,
        msg: str | None,
        payload: Any,
        now: int,
        *,
        order: bool,
    ) -> ProviderError:
        said = f"{code}: {msg}" if code is not None else f"HTTP {status} {reason}".rstrip()
        if status == 418:
            until = self.budget.state(now).banned_until_ms or now
            log.error("%s: IP banned by the exchange for %d ms (%s)", what, until - now, said)
            return IpBanned(f"{what}: IP banned ({said})", until - now, until)
        if status == 429:
            delay = self.budget.peek(0, now, order=order).delay_ms
            log.warning("%s: rate limited for %d ms (%s)", what, delay, said)
            return RateLimited(f"{what}: rate limited ({said})", delay, code)
        if status >= 500 or code in UNKNOWN_EXECUTION_CODES:
            if order:
                return ExecutionUnknown(f"{what}: {said}; execution status unknown", code=code, http_status=status)
            return ExchangeUnavailable(f"{what}: {said}")
        if code == CODE_INVALID_TIMESTAMP:
            return ClockSkew(msg or "", status)
        if code is not None and msg is not None:
            data = payload.get("data") if isinstance(payload, Mapping) else None
            return BinanceError(code, msg, status, data=data)
        return BinanceError(0, f"HTTP {status} {reason}".rstrip(), status)

    async def _get(self, path: ApiPath, weight: int, params: Params | None = None) -> Any:
        reply = await self._send(Method.GET, path, weight=weight, query=encode_params(params))
        return reply.body

    @staticmethod
    def _parse(parse: Callable[[Any], T], body: Any, what: str) -> T:
        try:
            return parse(body)
        except WireFormatError as exc:
            raise UnexpectedResponse(f"{what}: {exc}") from exc

    # ------------------------------------------------------------------ general

    async def ping(self) -> None:
        await self._get(ApiPath.PING, Weight.PING)

    async def server_time(self) -> int:
        """Server time (epoch ms); also re-measures `clock`'s offset."""
        reply = await self._send(Method.GET, ApiPath.TIME, weight=Weight.TIME)
        server_ms = self._parse(wire.parse_server_time, reply.body, ApiPath.TIME)
        self.clock.observe(server_ms, reply.sent_local_ms, reply.recv_local_ms)
        return server_ms

    async def exchange_info(self, symbols: Sequence[str] | None = None) -> ExchangeInfo:
        """Symbols' trading rules; its REQUEST_WEIGHT limits become the budget's limits."""
        body = await self._get(ApiPath.EXCHANGE_INFO, Weight.EXCHANGE_INFO, wire.symbols_params(symbols))
        info = self._parse(wire.parse_exchange_info, body, ApiPath.EXCHANGE_INFO)
        self.budget.set_limits_from_exchange_info(wire.raw_rate_limits(body))
        return info

    # ------------------------------------------------------------------ market data

    async def depth(self, symbol: str, limit: int = 1000) -> DepthSnapshot:
        body = await self._get(ApiPath.DEPTH, wire.depth_weight(limit), [("symbol", symbol), ("limit", limit)])
        return self._parse(wire.parse_depth, body, ApiPath.DEPTH)

    async def recent_trades(self, symbol: str, limit: int | None = None) -> list[Trade]:
        params: Params = [("symbol", symbol)] if limit is None else [("symbol", symbol), ("limit", limit)]
        body = await self._get(ApiPath.TRADES, Weight.TRADES, params)
        return self._parse(wire.parse_trades, body, ApiPath.TRADES)

    async def historical_trades(self, symbol: str, from_id: int | None = None, limit: int | None = None) -> list[Trade]:
        """Trades from `from_id` on, oldest first (without it, the latest): how a trade stream's
        skipped ids are fetched."""
        params = wire.historical_trades_params(symbol, from_id, limit)
        body = await self._get(ApiPath.HISTORICAL_TRADES, Weight.HISTORICAL_TRADES, params)
        return self._parse(wire.parse_trades, body, ApiPath.HISTORICAL_TRADES)

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> list[AggTrade]:
        params = wire.agg_trades_params(symbol, from_id, start_ms, end_ms, limit)
        body = await self._get(ApiPath.AGG_TRADES, Weight.AGG_TRADES, params)
        return self._parse(wire.parse_agg_trades, body, ApiPath.AGG_TRADES)

    async def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
        time_zone: str | None = None,
    ) -> list[Kline]:
        params = wire.klines_params(symbol, interval, start_ms, end_ms, limit, time_zone)
        body = await self._get(ApiPath.KLINES, Weight.KLINES, params)
        return self._parse(wire.parse_klines, body, ApiPath.KLINES)

    async def avg_price(self, symbol: str) -> AvgPrice:
        body = await self._get(ApiPath.AVG_PRICE, Weight.AVG_PRICE, [("symbol", symbol)])
        return self._parse(wire.parse_avg_price, body, ApiPath.AVG_PRICE)

    async def ticker_24h(self, symbols: Sequence[str] | None = None) -> list[Ticker24h]:
        params = wire.symbols_params(symbols)
        weight = wire.ticker_24h_weight(None if symbols is None else len(symbols))
        body = await self._get(ApiPath.TICKER_24H, weight, params)
        return self._parse(wire.parse_ticker_24h, body, ApiPath.TICKER_24H)

    async def ticker_price(self, symbols: Sequence[str] | None = None) -> list[TickerPrice]:
        params = wire.symbols_params(symbols)
        weight = wire.ticker_price_weight(None if symbols is None else len(symbols))
        body = await self._get(ApiPath.TICKER_PRICE, weight, params)
        return self._parse(wire.parse_ticker_prices, body, ApiPath.TICKER_PRICE)

    async def book_ticker(self, symbols: Sequence[str] | None = None) -> list[BookTicker]:
        params = wire.symbols_params(symbols)
        weight = wire.book_ticker_weight(None if symbols is None else len(symbols))
        body = await self._get(ApiPath.BOOK_TICKER, weight, params)
        return self._parse(wire.parse_book_tickers, body, ApiPath.BOOK_TICKER)

    # ------------------------------------------------------------------ signed

    async def signed(
        self,
        method: str,
        path: str,
        params: Mapping[str, ParamValue],
        *,
        weight: int,
        order: bool = False,
    ) -> Any:
        """A SIGNED (USER_DATA / TRADE) call; returns the parsed JSON body.

        ``order=True`` for calls that change state (place/cancel): their successful weight is
        refunded, and an unknown outcome raises `ExecutionUnknown` without retrying.
        Parameters go in the query string for GET/DELETE and in a form body for POST/PUT;
        ``recvWindow`` (unless given) and ``timestamp`` from `clock` are appended.
        """
        if self._signer is None:
            raise CredentialsMissing(f"{method} {path}: no API credentials configured")
        signer = self._signer
        verb = Method(method.upper())
        reserved = _RESERVED_PARAMS.intersection(params)
        if reserved:
            raise ValueError(f"parameters {sorted(reserved)} are added by the client")
        recv_window = None if "recvWindow" in params else self._recv_window_ms
        if not self.clock.measured:
            await self.server_time()
        retried = False
        while True:
            items = list(params.items())
            request = sign_rest(
                signer,
                None if verb.params_in_body else items,
                items if verb.params_in_body else None,
                timestamp_ms=self.clock.now_ms(),
                recv_window_ms=recv_window,
            )
            try:
                reply = await self._send(
                    verb,
                    path,
                    weight=weight,
                    query=request.query,
                    body=request.body,
                    headers=request.headers,
                    order=order,
                )
            except ClockSkew:
                await self._remeasure_clock()
                if order or retried:
                    raise
                retried = True
                continue
            return reply.body

    async def _remeasure_clock(self) -> None:
        before = self.clock.offset_ms()
        try:
            await self.server_time()
        except ProviderError as exc:
            log.warning("clock offset not re-measured after -1021: %s", exc.message)
            return
        log.info("clock offset re-measured after -1021: %d ms -> %d ms", before, self.clock.offset_ms())
