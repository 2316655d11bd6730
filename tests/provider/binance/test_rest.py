"""The REST client over real sockets on 127.0.0.1.

Market data is parsed from the simulator's own REST app (`exchange_sim.app.create_app`).
Failure handling, weights and signing run against a small scripted aiohttp app that counts
the requests it receives and verifies signatures with the simulator's `verify_rest`.
Every wait is bounded; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange_sim.app import create_app
from exchange_sim.config import SimConfig
from exchange_sim.wire.auth import AuthError, KeyRegistry, Security, verify_rest
from provider.binance.budget import BudgetConfig, ThrottleReason, WeightBudget, WeightWindow
from provider.binance.clock import ServerClock
from provider.binance.rest import RestClient
from provider.binance.signing import Ed25519Signer, HmacSigner, ParamValue
from provider.errors import (
    BinanceError,
    ClockSkew,
    CredentialsMissing,
    ExchangeUnavailable,
    ExecutionUnknown,
    IpBanned,
    RateLimited,
    UnexpectedResponse,
)
from provider.marketdata.model import FilterType, SymbolStatus
from provider.venue import VenueMonitor
from service_runtime.config import Address

WAIT = 5.0
API_KEY = "testKey123"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SKEW_MS = 30_000  # the scripted server's clock runs this far ahead of ours


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


# --------------------------------------------------------------------------- simulator


@pytest.fixture
async def sim() -> AsyncIterator[str]:
    config = SimConfig(addr=Address("127.0.0.1", 0), symbols=("BTCUSDT", "ETHUSDT"), seed=7)
    server = TestServer(create_app(config))
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_general_endpoints_and_exchange_info(sim: str, session: aiohttp.ClientSession) -> None:
    rest = RestClient(sim, session)
    await rest.ping()
    assert not rest.clock.measured
    before = time.time() * 1000
    server_ms = await rest.server_time()
    assert before - 1000 <= server_ms <= time.time() * 1000 + 1000
    assert rest.clock.measured and abs(rest.clock.offset_ms()) < 1000

    info = await rest.exchange_info()
    assert {s.symbol for s in info.symbols} == {"BTCUSDT", "ETHUSDT"}
    btc = info.symbol("BTCUSDT")
    assert btc is not None and btc.status is SymbolStatus.TRADING
    assert btc.price_filter is not None and btc.price_filter.tick_size == "0.01000000"
    assert btc.lot_size is not None and btc.market_lot_size is not None and btc.notional is not None
    assert Decimal(btc.notional.min_notional) > 0
    weight_rules = [r for r in info.rate_limits if r.rate_limit_type == "REQUEST_WEIGHT"]
    assert weight_rules
    # The budget now runs on the exchange's limits, and the headers reconciled its count.
    state = rest.budget.state(rest.clock.now_ms())
    assert state.limit == weight_rules[0].limit
    assert state.used >= 1 + 1 + 20

    (eth,) = (await rest.exchange_info(["ETHUSDT"])).symbols
    assert eth.symbol == "ETHUSDT" and eth.filter(FilterType.PRICE_FILTER) is not None
    assert len((await rest.exchange_info(["ETHUSDT", "BTCUSDT"])).symbols) == 2


async def test_market_data_methods_parse_the_simulator(sim: str, session: aiohttp.ClientSession) -> None:
    rest = RestClient(sim, session)
    snapshot = await rest.depth("BTCUSDT", limit=500)
    bids = [Decimal(p) for p, _ in snapshot.bids]
    asks = [Decimal(p) for p, _ in snapshot.asks]
    assert snapshot.last_update_id > 0 and bids and asks
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert rest.budget.state(rest.clock.now_ms()).used >= 25  # depth weight by limit

    # The synthetic market trades every tick: poll (bounded) until the tape has something.
    deadline = time.monotonic() + WAIT
    trades = await rest.recent_trades("BTCUSDT", limit=50)
    while not trades and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        trades = await rest.recent_trades("BTCUSDT", limit=50)
    assert 0 < len(trades) <= 50
    assert all(Decimal(t.price) > 0 and Decimal(t.qty) > 0 for t in trades)
    assert [t.id for t in trades] == sorted(t.id for t in trades)
    from_second = await rest.historical_trades("BTCUSDT", from_id=trades[1].id, limit=2)
    assert from_second == trades[1:3]
    assert rest.budget.state(rest.clock.now_ms()).used >= 25 + 2 * 25 + 25  # /trades and historicalTrades: 25 each

    aggs = await rest.agg_trades("BTCUSDT", limit=20)
    assert 0 < len(aggs) <= 20 and all(a.first_trade_id <= a.last_trade_id for a in aggs)
    from_first = await rest.agg_trades("BTCUSDT", from_id=aggs[0].agg_id, limit=2)
    assert from_first[0].agg_id == aggs[0].agg_id
    in_range = await rest.agg_trades("BTCUSDT", start_ms=aggs[0].time_ms, end_ms=aggs[-1].time_ms)
    assert {a.agg_id for a in aggs} <= {a.agg_id for a in in_range}

    klines = await rest.klines("BTCUSDT", "1m", limit=5)
    assert 0 < len(klines) <= 5
    for k in klines:
        assert k.close_time_ms == k.open_time_ms + 60_000 - 1
        assert Decimal(k.low) <= min(Decimal(k.open), Decimal(k.close)) <= Decimal(k.high)
    seconds = await rest.klines("BTCUSDT", "1s", start_ms=klines[0].open_time_ms, limit=3)
    assert 0 < len(seconds) <= 3 and seconds[0].open_time_ms >= klines[0].open_time_ms

    avg = await rest.avg_price("BTCUSDT")
    assert avg.mins == 5 and Decimal(avg.price) > 0

    (one,) = await rest.ticker_24h(["BTCUSDT"])
    assert one.symbol == "BTCUSDT" and Decimal(one.last_price) > 0 and one.count > 0
    assert {t.symbol for t in await rest.ticker_24h(["BTCUSDT", "ETHUSDT"])} == {"BTCUSDT", "ETHUSDT"}
    assert {t.symbol for t in await rest.ticker_24h()} == {"BTCUSDT", "ETHUSDT"}

    (price,) = await rest.ticker_price(["ETHUSDT"])
    assert price.symbol == "ETHUSDT" and Decimal(price.price) > 0
    assert len(await rest.ticker_price()) == 2

    (book,) = await rest.book_ticker(["BTCUSDT"])
    assert Decimal(book.bid_price) < Decimal(book.ask_price) and Decimal(book.bid_qty) > 0
    assert {b.symbol for b in await rest.book_ticker(["BTCUSDT", "ETHUSDT"])} == {"BTCUSDT", "ETHUSDT"}
    assert len(await rest.book_ticker()) == 2


async def test_exchange_errors_keep_code_and_message(sim: str, session: aiohttp.ClientSession) -> None:
    rest = RestClient(sim, session)
    with pytest.raises(BinanceError) as bad_symbol:
        await rest.depth("NOPEUSDT")
    assert (bad_symbol.value.code, bad_symbol.value.http_status) == (-1121, 400)
    assert bad_symbol.value.msg == "Invalid symbol." and bad_symbol.value.is_bad_request
    assert not bad_symbol.value.retryable
    with pytest.raises(BinanceError) as bad_interval:
        await rest.klines("BTCUSDT", "2m")
    assert bad_interval.value.code == -1120


async def test_venue_monitor_still_probes_through_the_client(sim: str, session: aiohttp.ClientSession) -> None:
    status = await VenueMonitor(RestClient(sim, session)).check_once()
    assert status.reachable and abs(status.clock_offset_ms) < 1000


# --------------------------------------------------------------------------- scripted server

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Script:
    """A Binance look-alike whose answers each test scripts, counting requests per path."""

    hits: Counter[str] = field(default_factory=Counter)
    handlers: dict[str, Handler] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    registry: KeyRegistry = field(default_factory=KeyRegistry)
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def answer(self, path: str, body: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return json_response(body, status, headers)

        self.on(path, handler)

    async def hang(self, request: web.Request) -> web.StreamResponse:
        """Never answers within the client's timeout (released at teardown)."""
        await self.release.wait()
        return json_response({})

    async def authenticate(self, request: web.Request) -> dict[str, str]:
        """Verify the request as Binance would, with this server's (skewed) clock."""
        body = await request.read() if request.content_type == "application/x-www-form-urlencoded" else b""
        self.bodies.append(body)
        authenticated = verify_rest(
            self.registry,
            api_key=request.headers.get("X-MBX-APIKEY"),
            raw_query=request.raw_path.partition("?")[2],
            raw_body=body,
            now_ms=server_now(),
            security=Security.TRADE,
        )
        return dict(authenticated.params)


def server_now() -> float:
    return time.time() * 1000 + SKEW_MS


@pytest.fixture
async def script() -> AsyncIterator[Script]:
    state = Script()
    state.registry.add_hmac(API_KEY, SECRET, account_id=1)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        state.hits[request.path] += 1
        handler = state.handlers.get(request.path)
        if handler is None:
            return web.Response(status=404, text="<html>not found</html>", content_type="text/html")
        try:
            return await handler(request)
        except AuthError as exc:
            return json_response(exc.to_json(), exc.http_status)

    async def server_time(request: web.Request) -> web.StreamResponse:
        return json_response({"serverTime": int(server_now())})

    state.on("/api/v3/time", server_time)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    server = TestServer(app)
    await server.start_server()
    state.url = str(server.make_url("/"))
    try:
        yield state
    finally:
        state.release.set()
        await server.close()


def client(script: Script, session: aiohttp.ClientSession, **kwargs: Any) -> RestClient:
    kwargs.setdefault("signer", HmacSigner(API_KEY, SECRET))
    return RestClient(script.url, session, **kwargs)


async def test_429_pauses_every_call_for_retry_after(script: Script, session: aiohttp.ClientSession) -> None:
    message = "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."
    script.answer(
        "/api/v3/ping", {"code": -1003, "msg": message}, 429, {"Retry-After": "3", "X-MBX-USED-WEIGHT-1M": "6001"}
    )
    rest = client(script, session)
    with pytest.raises(RateLimited) as first:
        await rest.ping()
    assert first.value.code == -1003 and first.value.retryable
    assert 2000 < first.value.retry_after_ms <= 3000
    # During the pause nothing is sent, whatever the endpoint.
    with pytest.raises(RateLimited) as second:
        await rest.depth("BTCUSDT")
    assert second.value.code is None and 1000 < second.value.retry_after_ms <= 3000
    assert script.hits == Counter({"/api/v3/ping": 1})
    state = rest.budget.state(rest.clock.now_ms())
    assert state.rate_limited == 1 and state.paused_until_ms is not None


async def test_418_bans_the_ip_and_nothing_is_sent_during_the_ban(
    script: Script, session: aiohttp.ClientSession
) -> None:
    script.answer(
        "/api/v3/depth",
        {"code": -1003, "msg": "Way too much request weight used; IP banned until 1659146400000."},
        418,
        {"Retry-After": "120"},
    )
    rest = client(script, session)
    with pytest.raises(IpBanned) as banned:
        await rest.depth("BTCUSDT", limit=100)
    assert 119_000 < banned.value.retry_after_ms <= 120_000 and banned.value.retryable
    assert banned.value.until_ms - rest.clock.now_ms() > 119_000
    for call in (rest.ping(), rest.server_time(), rest.signed("GET", "/api/v3/account", {}, weight=20)):
        with pytest.raises(IpBanned):
            await call
    assert script.hits == Counter({"/api/v3/depth": 1})


async def test_418_without_retry_after_uses_the_time_in_the_message(
    script: Script, session: aiohttp.ClientSession
) -> None:
    until = int(time.time() * 1000) + 600_000
    script.answer(
        "/api/v3/ping", {"code": -1003, "msg": f"Way too much request weight used; IP banned until {until}."}, 418
    )
    rest = client(script, session)
    with pytest.raises(IpBanned) as banned:
        await rest.ping()
    assert banned.value.until_ms == until


async def test_5xx_and_network_errors_on_reads_are_exchange_unavailable(
    script: Script, session: aiohttp.ClientSession
) -> None:
    script.answer("/api/v3/depth", {"code": -1001, "msg": "Internal error; unable to process your request."}, 503)
    script.answer("/api/v3/ticker/price", "<html>bad gateway</html>", 502)
    script.on("/api/v3/klines", script.hang)
    rest = client(script, session, timeout=aiohttp.ClientTimeout(total=0.3))
    for call in (rest.depth("BTCUSDT"), rest.ticker_price(), rest.klines("BTCUSDT", "1m")):
        with pytest.raises(ExchangeUnavailable) as unavailable:
            await call
        assert unavailable.value.retryable
    assert script.hits == Counter({"/api/v3/depth": 1, "/api/v3/ticker/price": 1, "/api/v3/klines": 1})

    # Connection refused: nothing was sent, so the weight is given back.
    closed = RestClient("http://127.0.0.1:9", session)
    with pytest.raises(ExchangeUnavailable):
        await closed.depth("BTCUSDT", limit=5000)
    assert closed.budget.state(closed.clock.now_ms()).used == 0


async def test_non_json_or_misshapen_success_is_unexpected_response(
    script: Script, session: aiohttp.ClientSession
) -> None:
    script.answer("/api/v3/depth", {"lastUpdateId": 1, "bids": [[1.5, "1"]], "asks": []})
    rest = client(script, session)
    with pytest.raises(UnexpectedResponse, match="depth"):
        await rest.depth("BTCUSDT")
    with pytest.raises(BinanceError) as not_found:
        await rest.avg_price("BTCUSDT")  # the script has no such route: an HTML 404
    assert (not_found.value.code, not_found.value.http_status) == (0, 404)


@pytest.mark.parametrize(
    "failure",
    ["timeout", "disconnect", "http_500", "code_1007", "code_1006_http_400", "not_json"],
)
async def test_order_calls_with_unknown_outcome_are_execution_unknown_and_sent_once(
    script: Script, session: aiohttp.ClientSession, failure: str
) -> None:
    async def disconnect(request: web.Request) -> web.StreamResponse:
        await script.authenticate(request)
        assert request.transport is not None
        request.transport.close()  # the order reached the server; the answer never comes back
        await script.release.wait()
        return json_response({})

    async def not_json(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>ok?</html>", status=200)

    handlers: dict[str, Handler] = {"timeout": script.hang, "disconnect": disconnect, "not_json": not_json}
    if failure in handlers:
        script.on("/api/v3/order", handlers[failure])
    elif failure == "http_500":
        script.answer("/api/v3/order", {"code": -1000, "msg": "An unknown error occurred."}, 500)
    elif failure == "code_1007":
        script.answer(
            "/api/v3/order",
            {
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. "
                "Send status unknown; execution status unknown.",
            },
            504,
        )
    else:
        script.answer("/api/v3/order", {"code": -1006, "msg": "Execution status unknown."}, 400)
    rest = client(script, session, timeout=aiohttp.ClientTimeout(total=0.5, connect=0.5))
    params: dict[str, ParamValue] = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": Decimal("0.01"),
        "price": Decimal("50000.00"),
        "newClientOrderId": "my-order-1",
    }
    with pytest.raises(ExecutionUnknown) as unknown:
        await rest.signed("POST", "/api/v3/order", params, weight=1, order=True)
    assert not unknown.value.retryable
    assert script.hits["/api/v3/order"] == 1
    if failure in ("http_500", "code_1007"):
        assert unknown.value.http_status in (500, 504)


async def test_read_5xx_on_a_signed_call_is_exchange_unavailable(
    script: Script, session: aiohttp.ClientSession
) -> None:
    script.answer("/api/v3/account", {"code": -1001, "msg": "Internal error"}, 503)
    with pytest.raises(ExchangeUnavailable):
        await client(script, session).signed("GET", "/api/v3/account", {}, weight=20)


async def test_signature_verified_server_side_for_query_and_body(
    script: Script, session: aiohttp.ClientSession
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        params = await script.authenticate(request)
        in_body = bool(script.bodies[-1]) and "?" not in request.raw_path
        return json_response({"method": request.method, "inBody": in_body, "params": params})

    script.on("/api/v3/order", echo)
    script.on("/api/v3/account", echo)
    ed_key = Ed25519PrivateKey.generate()
    ed_signer = Ed25519Signer("edKey456", ed_key)
    script.registry.add_ed25519("edKey456", ed_signer.public_key_pem(), account_id=2)

    for signer in (HmacSigner(API_KEY, SECRET), ed_signer):
        # The server's clock is SKEW_MS ahead: only a client that measured the offset is accepted.
        rest = client(script, session, signer=signer)
        account = await rest.signed("GET", "/api/v3/account", {"omitZeroBalances": True}, weight=20)
        assert account["method"] == "GET" and not account["inBody"]
        assert account["params"]["omitZeroBalances"] == "true" and account["params"]["recvWindow"] == "5000"
        assert abs(rest.clock.offset_ms() - SKEW_MS) < 1000

        params: dict[str, ParamValue] = {
            "symbol": "ＢＴＣUSDT",
            "side": "SELL",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": Decimal("0.01000000"),
            "price": "52000.00",
            "newClientOrderId": "a b/c+d",
        }
        before = rest.budget.state(rest.clock.now_ms())
        order = await rest.signed("POST", "/api/v3/order", params, weight=1, order=True)
        after = rest.budget.state(rest.clock.now_ms())
        assert order["method"] == "POST" and order["inBody"]
        sent = order["params"]
        assert sent["symbol"] == "ＢＴＣUSDT" and sent["quantity"] == "0.01000000"
        assert sent["newClientOrderId"] == "a b/c+d" and sent["price"] == "52000.00"
        # A successful order call weighs 0: the reserved weight was given back (in whichever bucket).
        rolled = after.windows[0].resets_at_ms != before.windows[0].resets_at_ms
        assert after.used == (0 if rolled else before.used)

    cancel = await client(script, session).signed(
        "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 4}, weight=1, order=True
    )
    assert cancel["method"] == "DELETE" and cancel["params"]["orderId"] == "4"


async def test_signed_calls_need_credentials_and_own_the_timestamp(
    script: Script, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(CredentialsMissing):
        await RestClient(script.url, session).signed("GET", "/api/v3/account", {}, weight=20)
    with pytest.raises(ValueError, match="timestamp"):
        await client(script, session).signed("GET", "/api/v3/account", {"timestamp": 1}, weight=20)
    assert not script.hits


async def test_1021_remeasures_the_clock_and_retries_a_read_once(
    script: Script, session: aiohttp.ClientSession
) -> None:
    async def account(request: web.Request) -> web.StreamResponse:
        params = await script.authenticate(request)
        return json_response({"ok": True, "timestamp": params["timestamp"]})

    script.on("/api/v3/account", account)
    clock = ServerClock()
    clock.observe(int(time.time() * 1000), time.time() * 1000, time.time() * 1000)  # wrong: offset ~0, not SKEW_MS
    rest = client(script, session, clock=clock)
    assert (await rest.signed("GET", "/api/v3/account", {}, weight=20))["ok"]
    assert script.hits == Counter({"/api/v3/account": 2, "/api/v3/time": 1})
    assert abs(rest.clock.offset_ms() - SKEW_MS) < 1000

    # A second -1021 after the retry is reported, not retried again.
    script.answer(
        "/api/v3/account", {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}, 400
    )
    script.hits.clear()
    with pytest.raises(ClockSkew) as skew:
        await rest.signed("GET", "/api/v3/account", {}, weight=20)
    assert skew.value.code == -1021 and skew.value.retryable
    assert script.hits == Counter({"/api/v3/account": 2, "/api/v3/time": 2})


async def test_1021_on_an_order_remeasures_but_does_not_retry(script: Script, session: aiohttp.ClientSession) -> None:
    async def order(request: web.Request) -> web.StreamResponse:
        await script.authenticate(request)
        return json_response({"orderId": 1})

    script.on("/api/v3/order", order)
    clock = ServerClock()
    clock.observe(int(time.time() * 1000), time.time() * 1000, time.time() * 1000)
    rest = client(script, session, clock=clock)
    with pytest.raises(ClockSkew):
        await rest.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"}, weight=1, order=True)
    assert script.hits == Counter({"/api/v3/order": 1, "/api/v3/time": 1})
    assert abs(rest.clock.offset_ms() - SKEW_MS) < 1000
    # The caller may now resend safely: the order was rejected, and the clock is right.
    assert await rest.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"}, weight=1, order=True) == {"orderId": 1}


async def test_used_weight_headers_stop_the_client_before_a_429(script: Script, session: aiohttp.ClientSession) -> None:
    script.answer("/api/v3/ping", {}, headers={"X-MBX-USED-WEIGHT-1M": "95"})
    # A frozen clock one second into a minute: the bucket resets 59 s later, beyond the wait allowed.
    frozen_local = 1_704_067_201_000.0
    clock = ServerClock(local_ms=lambda: frozen_local)
    budget = WeightBudget(BudgetConfig(windows=(WeightWindow("MINUTE", 1, 100),), safety_margin=0.05))
    rest = client(script, session, clock=clock, budget=budget)
    await rest.ping()
    state = budget.state(clock.now_ms())
    assert (state.used, state.header_corrections) == (95, 1)  # another user of the IP spent 94
    with pytest.raises(RateLimited) as limited:
        await rest.depth("BTCUSDT", limit=5)
    assert limited.value.code is None
    assert 58_000 < limited.value.retry_after_ms <= 60_000
    assert script.hits == Counter({"/api/v3/ping": 1})
    assert budget.peek(1, clock.now_ms()).reason is ThrottleReason.LOCAL_LIMIT


async def test_a_short_budget_wait_is_waited_out(script: Script, session: aiohttp.ClientSession) -> None:
    script.answer("/api/v3/ping", {}, headers={"X-MBX-USED-WEIGHT-1S": "10"})
    budget = WeightBudget(BudgetConfig(windows=(WeightWindow("SECOND", 1, 10),), safety_margin=0.0))
    rest = client(script, session, budget=budget, max_budget_wait_s=2.0)
    await rest.ping()  # the header says this second's bucket is full
    started = time.monotonic()
    await asyncio.wait_for(rest.ping(), WAIT)  # held until the next second, then sent
    assert time.monotonic() - started >= 0.2  # at least the boundary guard after the reset
    assert script.hits["/api/v3/ping"] == 2
    assert budget.state(rest.clock.now_ms()).throttled >= 1


async def test_logs_never_show_secrets_or_signatures(
    script: Script, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async def account(request: web.Request) -> web.StreamResponse:
        params = await script.authenticate(request)
        return json_response(params)

    script.on("/api/v3/account", account)
    caplog.set_level(logging.DEBUG)
    rest = client(script, session)
    await rest.signed("GET", "/api/v3/account", {"omitZeroBalances": False}, weight=20)
    script.answer("/api/v3/account", {"code": -1022, "msg": "Signature for this request is not valid."}, 400)
    with pytest.raises(BinanceError) as bad:
        await rest.signed("GET", "/api/v3/account", {}, weight=20)
    assert bad.value.is_auth_error and not bad.value.retryable
    # The scripted server's own access log is not ours; everything the client side logged is checked.
    client_logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "/api/v3/account" in client_logs
    for secret in (API_KEY, SECRET, "signature=", "timestamp="):
        assert secret not in client_logs
        assert secret not in str(bad.value)


async def test_closed_client_sends_nothing(script: Script, session: aiohttp.ClientSession) -> None:
    rest = client(script, session)
    await rest.close()
    with pytest.raises(ExchangeUnavailable, match="closed"):
        await rest.ping()
    assert not script.hits
