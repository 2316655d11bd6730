"""The simulator's signed REST endpoints (§3, §4.2, §6.3, §6.4) seen by a plain client written from the
reference: requests are signed here with hmac/hashlib, sent as the exact bytes signed.

Fills are tested on TSTUSDT, a symbol the synthetic market does not drive: only the test's own
orders (a maker and a taker account from an accounts file) move it, so every number is exact.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from exchange_sim.accounts import DEMO_API_KEY, DEMO_API_SECRET, load_accounts_file
from exchange_sim.app import create_app
from exchange_sim.config import SimConfig
from exchange_sim.matching import MatchingEngine
from exchange_sim.symbols import symbol_setup
from exchange_sim.wire import rest
from exchange_sim.wire.trading import DESK, TradingDesk
from service_runtime.config import parse_address

WAIT = aiohttp.ClientTimeout(total=5)
QUIET = "TSTUSDT"  # tick 0.0001, step 0.01, min notional 5
MAKER = ("makerKey01", "makerSecret01")
TAKER = ("takerKey01", "takerSecret01")
POOR = ("poorKey01", "poorSecret01")
ACCOUNTS: list[dict[str, Any]] = [
    {"api_key": MAKER[0], "secret": MAKER[1], "balances": {"USDT": "100000", "TST": "1000"}},
    {"api_key": TAKER[0], "secret": TAKER[1], "balances": {"USDT": "1000", "TST": "2"}},
    {"api_key": POOR[0], "secret": POOR[1], "balances": {"USDT": "50"}},
]
Key = tuple[str, str]
Params = Sequence[tuple[str, str]]


def sign(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def weight(self) -> int:
        return int(self.headers["X-MBX-USED-WEIGHT-1M"])


@dataclass
class Sim:
    app: web.Application
    base: str
    session: aiohttp.ClientSession

    @property
    def desk(self) -> TradingDesk:
        return self.app[DESK]

    @property
    def engine(self) -> MatchingEngine:
        return self.app[rest.VENUE].engine

    def engine_id(self, key: Key) -> str:
        entry = self.desk.accounts.registry.get(key[0])
        assert entry is not None
        return self.desk.accounts.engine_id(entry.account_id)

    def balance(self, key: Key, asset: str) -> tuple[Decimal, Decimal]:
        b = self.engine.balance(self.engine_id(key), asset)
        return b.free, b.locked

    async def call(
        self,
        method: str,
        path: str,
        key: Key | None,
        params: Params = (),
        *,
        in_body: bool = False,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Reply:
        """A signed call: `params` + timestamp, HMAC over the exact query (or body) bytes."""
        stamped = [*params, ("timestamp", str(timestamp if timestamp is not None else int(time.time() * 1000)))]
        payload = urlencode(stamped)
        signed = f"{payload}&signature={sign(payload, secret or (key[1] if key else 'x'))}"
        headers = {} if key is None else {"X-MBX-APIKEY": key[0]}
        url = URL(self.base + path + ("" if in_body else "?" + signed), encoded=True)
        data = None
        if in_body:
            data = signed.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return await self.raw(method, url, headers, data)

    async def raw(self, method: str, url: URL | str, headers: dict[str, str], data: bytes | None = None) -> Reply:
        async with self.session.request(method, url, headers=headers, data=data, timeout=WAIT) as resp:
            return Reply(resp.status, await resp.json(content_type=None), resp.headers)

    async def order(self, key: Key, *params: tuple[str, str], expect: int = 200) -> Any:
        reply = await self.call("POST", "/api/v3/order", key, [("symbol", QUIET), *params])
        assert reply.status == expect, reply.body
        return reply.body

    async def limit(self, key: Key, side: str, qty: str, price: str, *extra: tuple[str, str]) -> Any:
        return await self.order(
            key, ("side", side), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", qty), ("price", price), *extra
        )


async def start_sim(tmp_path: Path, accounts: list[dict[str, Any]] = ACCOUNTS) -> tuple[Sim, web.AppRunner]:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(accounts))
    config = SimConfig(
        addr=parse_address("127.0.0.1:0"), symbols=("BTCUSDT",), seed=1, accounts=load_accounts_file(str(path))
    )
    app = create_app(config)
    app[rest.VENUE].add_symbol(symbol_setup(QUIET)[0])  # no synthetic flow on it
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Sim(app, f"http://127.0.0.1:{port}", aiohttp.ClientSession()), runner


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    started, runner = await start_sim(tmp_path)
    try:
        yield started
    finally:
        await started.session.close()
        await asyncio.wait_for(runner.cleanup(), 15)


# --------------------------------------------------------------------------- accounts and auth


async def test_demo_account_is_funded_and_is_the_providers(sim: Sim) -> None:
    from provider.config import SIM_DEMO_API_KEY, SIM_DEMO_API_SECRET

    assert (DEMO_API_KEY, DEMO_API_SECRET) == (SIM_DEMO_API_KEY, SIM_DEMO_API_SECRET)
    reply = await sim.call("GET", "/api/v3/account", (SIM_DEMO_API_KEY, SIM_DEMO_API_SECRET))
    assert reply.status == 200, reply.body
    account = reply.body
    balances = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}
    assert balances == {
        "USDT": (Decimal(100000), Decimal(0)),
        "BTC": (Decimal(10), Decimal(0)),
        "ETH": (Decimal(100), Decimal(0)),
        "BNB": (Decimal(1000), Decimal(0)),
    }
    assert account["uid"] == 1 and account["accountType"] == "SPOT" and account["canTrade"] is True
    assert account["commissionRates"] == {
        "maker": "0.00100000",
        "taker": "0.00100000",
        "buyer": "0.00000000",
        "seller": "0.00000000",
    }
    assert account["makerCommission"] == 10 and account["permissions"] == ["SPOT"]


async def test_auth_failures(sim: Sim) -> None:
    bad_sig = await sim.call("GET", "/api/v3/account", TAKER, secret="wrong")
    assert (bad_sig.status, bad_sig.body["code"]) == (400, -1022)
    stale = await sim.call("GET", "/api/v3/account", TAKER, timestamp=int(time.time() * 1000) - 10_000)
    assert (stale.status, stale.body) == (
        400,
        {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    ahead = await sim.call("GET", "/api/v3/account", TAKER, timestamp=int(time.time() * 1000) + 5_000)
    assert (ahead.status, ahead.body["code"]) == (400, -1021)
    unknown = await sim.call("GET", "/api/v3/account", ("nobodyKey", "s"))
    assert (unknown.status, unknown.body["code"]) == (401, -2015)
    missing = await sim.call("GET", "/api/v3/account", None)
    assert (missing.status, missing.body["code"]) == (401, -2014)
    unsigned = await sim.raw(
        "GET", f"{sim.base}/api/v3/account?timestamp={int(time.time() * 1000)}", {"X-MBX-APIKEY": TAKER[0]}
    )
    assert (unsigned.status, unsigned.body["code"]) == (400, -1102)
    big_window = await sim.call("GET", "/api/v3/account", TAKER, [("recvWindow", "60001")])
    assert big_window.status == 400 and big_window.body["code"] < 0
    assert all("X-MBX-USED-WEIGHT-1M" in r.headers for r in (bad_sig, stale, unknown, missing))


async def test_signature_over_query_then_body(sim: Sim) -> None:
    query = urlencode([("symbol", QUIET), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC")])
    body = urlencode([("quantity", "1"), ("price", "9"), ("timestamp", str(int(time.time() * 1000)))])
    signature = sign(query + body, TAKER[1])  # no separator between query and body (§3.2)
    reply = await sim.raw(
        "POST",
        URL(f"{sim.base}/api/v3/order?{query}", encoded=True),
        {"X-MBX-APIKEY": TAKER[0], "Content-Type": "application/x-www-form-urlencoded"},
        f"{body}&signature={signature}".encode(),
    )
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "NEW" and reply.body["price"] == "9.00000000"


# --------------------------------------------------------------------------- order flows


async def test_limit_rests_then_cancel_by_client_order_id(sim: Sim) -> None:
    placed = await sim.call(
        "POST",
        "/api/v3/order",
        TAKER,
        [
            ("symbol", QUIET),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "10"),
            ("price", "9.5"),
            ("newClientOrderId", "myOrder1"),
            ("newOrderRespType", "RESULT"),
        ],
        in_body=True,
    )
    assert placed.status == 200, placed.body
    order = placed.body
    assert order["clientOrderId"] == "myOrder1" and order["status"] == "NEW" and order["orderListId"] == -1
    assert {"transactTime", "workingTime", "origQuoteOrderQty", "selfTradePreventionMode"} <= order.keys()
    assert "fills" not in order  # RESULT, not FULL
    assert placed.headers["X-MBX-ORDER-COUNT-10S"] == "1" and placed.headers["X-MBX-ORDER-COUNT-1D"] == "1"
    assert sim.balance(TAKER, "USDT") == (Decimal("905"), Decimal("95"))  # 10 x 9.5 locked

    dup = await sim.call(
        "POST",
        "/api/v3/order",
        TAKER,
        [("symbol", QUIET), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"),
         ("price", "9"), ("newClientOrderId", "myOrder1")],
    )  # fmt: skip
    assert (dup.status, dup.body) == (400, {"code": -2010, "msg": "Duplicate order sent."})

    query = await sim.call("GET", "/api/v3/order", TAKER, [("symbol", QUIET), ("origClientOrderId", "myOrder1")])
    assert query.status == 200 and query.body["orderId"] == order["orderId"] and query.body["isWorking"] is True
    assert {"stopPrice", "icebergQty", "time", "updateTime"} <= query.body.keys()
    open_orders = await sim.call("GET", "/api/v3/openOrders", TAKER, [("symbol", QUIET)])
    assert [o["clientOrderId"] for o in open_orders.body] == ["myOrder1"]

    canceled = await sim.call(
        "DELETE",
        "/api/v3/order",
        TAKER,
        [("symbol", QUIET), ("origClientOrderId", "myOrder1"), ("newClientOrderId", "cancelMyOrder1")],
    )
    assert canceled.status == 200, canceled.body
    assert canceled.body["origClientOrderId"] == "myOrder1" and canceled.body["clientOrderId"] == "cancelMyOrder1"
    assert canceled.body["status"] == "CANCELED" and canceled.body["orderId"] == order["orderId"]
    assert sim.balance(TAKER, "USDT") == (Decimal("1000"), Decimal("0"))
    again = await sim.call("DELETE", "/api/v3/order", TAKER, [("symbol", QUIET), ("orderId", str(order["orderId"]))])
    assert (again.status, again.body) == (400, {"code": -2011, "msg": "Unknown order sent."})
    # The client id is free again once the order is closed.
    reused = await sim.limit(TAKER, "BUY", "1", "9", ("newClientOrderId", "myOrder1"))
    assert reused["clientOrderId"] == "myOrder1" and reused["orderId"] != order["orderId"]


async def test_market_fill_partial_fill_and_trades(sim: Sim) -> None:
    ask = await sim.limit(MAKER, "SELL", "5", "10")
    before = (await sim.call("GET", "/api/v3/account", TAKER)).weight
    taker = await sim.call(
        "POST", "/api/v3/order", TAKER, [("symbol", QUIET), ("side", "BUY"), ("type", "MARKET"), ("quantity", "2")]
    )
    assert taker.status == 200, taker.body
    assert taker.weight == before  # a successful order costs no weight (2026-04-02)
    assert taker.headers["X-MBX-ORDER-COUNT-10S"] == "0"  # filled at once: it gives its count back
    full = taker.body
    assert full["status"] == "FILLED" and full["executedQty"] == "2.00000000"
    assert full["cummulativeQuoteQty"] == "20.00000000"
    assert full["fills"] == [
        {"price": "10.00000000", "qty": "2.00000000", "commission": "0.00200000", "commissionAsset": "TST",
         "tradeId": 1}
    ]  # fmt: skip
    assert sim.balance(TAKER, "USDT") == (Decimal("980"), Decimal("0"))
    assert sim.balance(TAKER, "TST") == (Decimal("3.998"), Decimal("0"))  # 2 + 2 - 0.1 % commission
    assert sim.balance(MAKER, "USDT") == (Decimal("100019.98"), Decimal("0"))  # 20 - 0.1 % commission

    maker_order = await sim.call("GET", "/api/v3/order", MAKER, [("symbol", QUIET), ("orderId", str(ask["orderId"]))])
    assert maker_order.body["status"] == "PARTIALLY_FILLED" and maker_order.body["executedQty"] == "2.00000000"

    trades = await sim.call("GET", "/api/v3/myTrades", MAKER, [("symbol", QUIET), ("orderId", str(ask["orderId"]))])
    assert maker_order.weight - taker.weight == 4 and trades.weight - maker_order.weight == 5  # 5 with orderId
    (trade,) = trades.body
    assert trade["isMaker"] is True and trade["isBuyer"] is False and trade["commissionAsset"] == "USDT"
    assert trade["quoteQty"] == "20.00000000" and trade["id"] == 1 and trade["orderListId"] == -1
    # The trade went through Venue.apply: the public tape has it.
    public = await sim.raw("GET", f"{sim.base}/api/v3/trades?symbol={QUIET}", {})
    assert [(t["price"], t["qty"], t["isBuyerMaker"]) for t in public.body] == [("10.00000000", "2.00000000", False)]


async def test_ioc_and_fok_expire(sim: Sim) -> None:
    await sim.limit(MAKER, "SELL", "2", "10")
    ioc_body = await sim.order(
        TAKER, ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "IOC"), ("quantity", "3"), ("price", "10")
    )
    assert ioc_body["status"] == "EXPIRED" and ioc_body["executedQty"] == "2.00000000"
    assert ioc_body["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED" and len(ioc_body["fills"]) == 1
    await sim.limit(MAKER, "SELL", "2", "10")
    fok = await sim.order(
        TAKER, ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "FOK"), ("quantity", "3"), ("price", "10")
    )
    assert fok["status"] == "EXPIRED" and fok["executedQty"] == "0.00000000" and fok["fills"] == []
    assert fok["expiryReason"] == "UNFILLED_FOK_ORDER_EXPIRED"
    assert sim.balance(TAKER, "USDT") == (Decimal("980"), Decimal("0"))  # only the IOC's 2 @ 10 traded


async def test_engine_rejections(sim: Sim) -> None:
    await sim.limit(MAKER, "SELL", "2", "10")
    maker = await sim.order(
        TAKER, ("side", "BUY"), ("type", "LIMIT_MAKER"), ("quantity", "1"), ("price", "10"), expect=400
    )
    assert maker == {"code": -2010, "msg": "Order would immediately match and take."}
    poor = await sim.call(
        "POST", "/api/v3/order", POOR,
        [("symbol", QUIET), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "10"),
         ("price", "9")],
    )  # fmt: skip
    assert (poor.status, poor.body) == (
        400,
        {"code": -2010, "msg": "Account has insufficient balance for requested action."},
    )
    lot = await sim.order(TAKER, ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001"), expect=400)
    assert lot == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
    precision = await sim.order(TAKER, ("side", "BUY"), ("type", "MARKET"), ("quantity", "1.123456789"), expect=400)
    assert precision["code"] == -1111
    side = await sim.order(TAKER, ("side", "UP"), ("type", "MARKET"), ("quantity", "1"), expect=400)
    assert side == {"code": -1117, "msg": "Invalid side."}
    no_type = await sim.order(TAKER, ("side", "BUY"), ("quantity", "1"), expect=400)
    assert no_type["code"] == -1102
    unread = await sim.order(TAKER, ("side", "BUY"), ("type", "MARKET"), ("quantity", "1"), ("colour", "red"),
                             expect=400)  # fmt: skip
    assert unread["code"] == -1104
    bad_symbol = await sim.call("POST", "/api/v3/order", TAKER, [("symbol", "NOPEUSDT"), ("side", "BUY"),
                                                                ("type", "MARKET"), ("quantity", "1")])  # fmt: skip
    assert (bad_symbol.status, bad_symbol.body["code"]) == (400, -1121)
    assert sim.balance(POOR, "USDT") == (Decimal("50"), Decimal("0"))  # rejected calls change nothing


async def test_stop_loss_triggers(sim: Sim) -> None:
    await sim.limit(MAKER, "SELL", "1", "10")
    await sim.limit(TAKER, "BUY", "1", "10")  # last price 10
    stop = await sim.order(TAKER, ("side", "SELL"), ("type", "STOP_LOSS"), ("quantity", "1"), ("stopPrice", "9.5"))
    assert set(stop) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}  # ACK by default
    status = await sim.call("GET", "/api/v3/order", TAKER, [("symbol", QUIET), ("orderId", str(stop["orderId"]))])
    assert status.body["status"] == "NEW" and status.body["isWorking"] is False and status.body["workingTime"] == -1
    immediate = await sim.order(
        TAKER, ("side", "SELL"), ("type", "STOP_LOSS"), ("quantity", "1"), ("stopPrice", "10.5"), expect=400
    )
    assert immediate == {"code": -2010, "msg": "Order would trigger immediately."}

    await sim.limit(MAKER, "BUY", "5", "9.4")
    await sim.limit(MAKER, "SELL", "1", "9.4")  # the maker trades with itself at 9.4: the stop fires
    done = await sim.call("GET", "/api/v3/order", TAKER, [("symbol", QUIET), ("orderId", str(stop["orderId"]))])
    assert done.body["status"] == "FILLED" and done.body["type"] == "STOP_LOSS"
    assert done.body["executedQty"] == "1.00000000" and done.body["cummulativeQuoteQty"] == "9.40000000"
    assert sim.balance(TAKER, "TST") == (Decimal("1.999"), Decimal("0"))  # 2 + 0.999 bought - 1 sold


async def test_cancel_open_orders_and_queries(sim: Sim) -> None:
    first = await sim.limit(TAKER, "BUY", "1", "8")
    await sim.limit(TAKER, "BUY", "1", "7")
    restricted = await sim.call(
        "DELETE",
        "/api/v3/order",
        TAKER,
        [("symbol", QUIET), ("orderId", str(first["orderId"])), ("cancelRestrictions", "ONLY_PARTIALLY_FILLED")],
    )
    assert (restricted.status, restricted.body) == (
        400,
        {"code": -2011, "msg": "Order was not canceled due to cancel restrictions."},
    )
    bad_restriction = await sim.call(
        "DELETE", "/api/v3/order", TAKER, [("symbol", QUIET), ("orderId", "1"), ("cancelRestrictions", "SOMETIMES")]
    )
    assert bad_restriction.body["code"] == -1145
    no_symbol = await sim.call("GET", "/api/v3/openOrders", TAKER)
    with_symbol = await sim.call("GET", "/api/v3/openOrders", TAKER, [("symbol", QUIET)])
    assert len(no_symbol.body) == len(with_symbol.body) == 2
    assert with_symbol.weight - no_symbol.weight == 6 and no_symbol.weight >= 80

    canceled = await sim.call("DELETE", "/api/v3/openOrders", TAKER, [("symbol", QUIET)])
    assert canceled.status == 200 and [c["status"] for c in canceled.body] == ["CANCELED", "CANCELED"]
    assert all(c["clientOrderId"] != c["origClientOrderId"] for c in canceled.body)
    none_left = await sim.call("DELETE", "/api/v3/openOrders", TAKER, [("symbol", QUIET)])
    assert (none_left.status, none_left.body["code"]) == (400, -2011)

    everything = await sim.call("GET", "/api/v3/allOrders", TAKER, [("symbol", QUIET)])
    assert [o["status"] for o in everything.body] == ["CANCELED", "CANCELED"]
    later = await sim.call(
        "GET", "/api/v3/allOrders", TAKER, [("symbol", QUIET), ("orderId", str(first["orderId"] + 1)), ("limit", "1")]
    )
    assert [o["orderId"] for o in later.body] == [first["orderId"] + 1]

    neither = await sim.call("GET", "/api/v3/order", TAKER, [("symbol", QUIET)])
    assert (neither.status, neither.body["code"]) == (400, -1102)
    unknown = await sim.call("GET", "/api/v3/order", TAKER, [("symbol", QUIET), ("orderId", "999")])
    assert (unknown.status, unknown.body) == (400, {"code": -2013, "msg": "Order does not exist."})
    garbled = await sim.call("GET", "/api/v3/order", TAKER, [("symbol", QUIET), ("orderId", "abc")])
    assert (garbled.status, garbled.body["code"]) == (400, -1100)
    no_symbol_trades = await sim.call("GET", "/api/v3/myTrades", TAKER)
    assert (no_symbol_trades.status, no_symbol_trades.body["code"]) == (400, -1102)

    account = await sim.call("GET", "/api/v3/account", POOR, [("omitZeroBalances", "true")])
    assert [b["asset"] for b in account.body["balances"]] == ["USDT"]


async def test_order_test_endpoint(sim: Sim) -> None:
    params = [("symbol", QUIET), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1000"),
              ("price", "9")]  # fmt: skip
    plain = await sim.call("POST", "/api/v3/order/test", POOR, params)  # no balance check: never reaches the engine
    assert (plain.status, plain.body) == (200, {})
    rates = await sim.call("POST", "/api/v3/order/test", POOR, [*params, ("computeCommissionRates", "true")])
    assert rates.status == 200 and rates.weight - plain.weight == 20
    assert rates.body["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
    assert {"specialCommissionForOrder", "taxCommissionForOrder", "discount"} <= rates.body.keys()
    bad = await sim.call("POST", "/api/v3/order/test", POOR, [*params[:4], ("quantity", "0.001"), ("price", "9")])
    assert (bad.status, bad.body) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert sim.engine.open_orders(sim.engine_id(POOR)) == []


async def test_market_buy_on_the_synthetic_book(sim: Sim) -> None:
    demo = (DEMO_API_KEY, DEMO_API_SECRET)
    reply = await sim.call(
        "POST", "/api/v3/order", demo, [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"),
                                        ("quoteOrderQty", "100")]
    )  # fmt: skip
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["status"] in ("FILLED", "EXPIRED") and body["fills"]
    assert sum(Decimal(f["qty"]) for f in body["fills"]) == Decimal(body["executedQty"])
    assert Decimal(body["cummulativeQuoteQty"]) <= Decimal(100)
    commission = sum(Decimal(f["commission"]) for f in body["fills"])
    free, locked = sim.balance(demo, "BTC")
    assert free == Decimal(10) + Decimal(body["executedQty"]) - commission and locked == 0


def test_accounts_file_errors_name_the_setting(tmp_path: Path) -> None:
    from exchange_sim.config import load_config
    from service_runtime.config import ConfigError

    path = tmp_path / "accounts.json"
    for text, problem in (
        ("{", "not valid JSON"),
        ('[{"api_key": "k1", "balances": {"USDT": "1"}}]', "exactly one of"),
        ('[{"api_key": "k1", "secret": "s", "balances": {"USDT": 1.5}}]', "decimal string"),
        ('[{"api_key": "k1", "ed25519_public_key": "not a pem"}]', "account #1"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match="SIM_ACCOUNTS_FILE") as info:
            load_config([], {"SIM_ACCOUNTS_FILE": str(path)})
        assert problem in str(info.value)
    path.write_text('[{"api_key": "k1", "secret": "topSecret123", "balances": {"USDT": "1.5"}}]')
    config = load_config([], {"SIM_ACCOUNTS_FILE": str(path)})
    assert [a.balances for a in config.accounts] == [{"USDT": Decimal("1.5")}]
    assert "topSecret123" not in repr(config) and DEMO_API_SECRET not in repr(config)
