"""Orders, account and /ws/user through the HTTP gateway over a running system with trading on:
simulator -> provider -> gateway_http, as a Binance-style client sees them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import orjson
import pytest

from gateway_auth.tokens import Scope
from launcher.system import System
from tests.e2e.conftest import GatewayTokens, running_system

pytestmark = pytest.mark.timeout(120)

TIMEOUT = aiohttp.ClientTimeout(total=40)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5)


@pytest.fixture(scope="module")
def trading_system(tmp_path_factory: pytest.TempPathFactory, gateway_tokens: GatewayTokens) -> Iterator[System]:
    root = tmp_path_factory.mktemp("http-trading")
    env = {
        "PROVIDER_TRADING": "on",
        "PROVIDER_SYMBOLS": "BTCUSDT",
        "GATEWAY_TOKENS_FILE": str(gateway_tokens.path),
    }
    with running_system(root, env) as system:
        yield system


@pytest.fixture
async def http(trading_system: System) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{trading_system.ports.http}", timeout=TIMEOUT) as session:
        yield session


def bearer(tokens: GatewayTokens, scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.by_scope[scope]}"}


async def document(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/openapi.json") as response:
        body: dict[str, Any] = await response.json()
        return body


def schema(doc: dict[str, Any], method: str, path: str, status: int = 200) -> dict[str, Any]:
    found: dict[str, Any] = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"][
        "schema"
    ]
    return found


async def resting_price(http: aiohttp.ClientSession, tokens: GatewayTokens) -> str:
    """10 % under the best bid: a LIMIT BUY there rests on the book."""
    params = {"symbol": "BTCUSDT"}
    async with http.get("/api/v1/ticker/bookTicker", params=params, headers=bearer(tokens, Scope.READ)) as response:
        assert response.status == 200
        bid = Decimal((await response.json())["bidPrice"])
    return str((bid * Decimal("0.9")).quantize(Decimal("0.01")))


async def frames_until(ws: aiohttp.ClientWebSocketResponse, want: set[tuple[str, str]], client_id: str) -> list[Any]:
    """executionReport (x, X) pairs of `client_id` (as c or C) until every wanted pair arrived."""
    seen: list[Any] = []
    deadline = time.monotonic() + 20
    while not want <= {(f["x"], f["X"]) for f in seen}:
        assert time.monotonic() < deadline, f"missing {want} in {seen}"
        frame = orjson.loads(await ws.receive_str(timeout=15))
        if frame["type"] == "executionReport" and client_id in (frame["c"], frame["C"]):
            seen.append(frame)
    return seen


async def test_place_query_cancel_and_user_stream(http: aiohttp.ClientSession, gateway_tokens: GatewayTokens) -> None:
    doc = await document(http)
    trade, account = bearer(gateway_tokens, Scope.TRADE), bearer(gateway_tokens, Scope.ACCOUNT)
    client_id = f"e2e-http-{time.monotonic_ns()}"
    async with http.ws_connect("/ws/user", headers=account, timeout=WS_TIMEOUT) as ws:
        first = orjson.loads(await ws.receive_str(timeout=15))
        assert first["type"] == "status" and first["state"] in ("connected", "reconciled")
        form = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.00100",
            "price": await resting_price(http, gateway_tokens),
            "newClientOrderId": client_id,
            "timestamp": str(int(time.time() * 1000)),
        }
        async with http.post("/api/v1/order", data=form, headers=trade) as response:  # a form body, as Binance's
            placed = await response.json()
            assert response.status == 200, placed
        jsonschema.validate(placed, schema(doc, "post", "/api/v1/order"))
        assert placed["status"] == "NEW" and placed["clientOrderId"] == client_id and "fills" in placed
        assert Decimal(placed["origQty"]) == Decimal("0.001") and Decimal(placed["price"]) == Decimal(form["price"])

        query = {"symbol": "BTCUSDT", "origClientOrderId": client_id}
        async with http.get("/api/v1/order", params=query, headers=account) as response:
            got = await response.json()
            assert response.status == 200, got
        jsonschema.validate(got, schema(doc, "get", "/api/v1/order"))
        assert got["orderId"] == placed["orderId"] and got["isWorking"] is True

        async with http.get("/api/v1/openOrders", params={"symbol": "BTCUSDT"}, headers=account) as response:
            open_orders = await response.json()
            assert response.status == 200 and int(response.headers["X-As-Of-Ms"]) > 0
        jsonschema.validate(open_orders, schema(doc, "get", "/api/v1/openOrders"))
        assert placed["orderId"] in [o["orderId"] for o in open_orders]

        params = {"symbol": "BTCUSDT", "orderId": str(placed["orderId"]), "limit": "1"}
        async with http.get("/api/v1/allOrders", params=params, headers=account) as response:
            page = await response.json()
            assert response.status == 200
            assert response.headers["X-Next-Order-Id"] == str(placed["orderId"] + 1)
        jsonschema.validate(page, schema(doc, "get", "/api/v1/allOrders"))
        assert [o["clientOrderId"] for o in page] == [client_id]

        cancel = {"symbol": "BTCUSDT", "orderId": placed["orderId"], "newClientOrderId": f"{client_id}-x"}
        async with http.delete("/api/v1/order", json=cancel, headers=trade) as response:  # a JSON body
            cancelled = await response.json()
            assert response.status == 200, cancelled
        jsonschema.validate(cancelled, schema(doc, "delete", "/api/v1/order"))
        assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == client_id
        assert cancelled["clientOrderId"] == f"{client_id}-x"

        reports = await frames_until(ws, {("NEW", "NEW"), ("CANCELED", "CANCELED")}, client_id)
        assert all(r["s"] == "BTCUSDT" and r["i"] == placed["orderId"] and r["S"] == "BUY" for r in reports)

        async with http.delete("/api/v1/openOrders", params={"symbol": "BTCUSDT"}, headers=trade) as response:
            assert response.status == 200
            jsonschema.validate(await response.json(), schema(doc, "delete", "/api/v1/openOrders"))


async def test_test_order_and_errors_name_the_field(http: aiohttp.ClientSession, gateway_tokens: GatewayTokens) -> None:
    trade = bearer(gateway_tokens, Scope.TRADE)
    price = await resting_price(http, gateway_tokens)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001"}
    # quantity as a JSON number: read as its exact text, never as a binary float.
    body_text = orjson.dumps({**order, "price": price}).decode().replace('"0.001"', "0.001")
    json_type = {**trade, "Content-Type": "application/json"}
    async with http.post("/api/v1/order/test", data=body_text, headers=json_type) as response:
        assert response.status == 200, await response.text()
        tested = await response.json()
    assert Decimal(tested["notional"]) == Decimal(price) * Decimal("0.001")

    async with http.post("/api/v1/order", params={**order, "price": price + "3"}, headers=trade) as response:
        body = await response.json()
    assert response.status == 400 and body["reason"] == "ERROR_REASON_FILTER_VIOLATION", body
    assert body["field"] == "price" and body["details"]["nearestValid"] == price
    assert body["details"]["filterType"] == "PRICE_FILTER"

    async with http.post("/api/v1/order", data={**order, "price": "abc"}, headers=trade) as response:
        body = await response.json()
    assert response.status == 400 and body["field"] == "price" and body["reason"] == "INVALID_PARAMETER"
    async with http.post("/api/v1/order", data={**order, "side": "HOLD"}, headers=trade) as response:
        assert response.status == 400 and (await response.json())["field"] == "side"
    async with http.post("/api/v1/order", json={"symbol": "BTCUSDT", "side": "BUY"}, headers=trade) as response:
        assert response.status == 400 and (await response.json())["field"] == "type"
    limit_without_tif = {k: v for k, v in order.items() if k != "timeInForce"}
    async with http.post("/api/v1/order", json={**limit_without_tif, "price": price}, headers=trade) as response:
        body = await response.json()
    assert response.status == 400 and body["field"] == "timeInForce", body


async def test_account_balances_and_my_trades(http: aiohttp.ClientSession, gateway_tokens: GatewayTokens) -> None:
    doc = await document(http)
    trade, account = bearer(gateway_tokens, Scope.TRADE), bearer(gateway_tokens, Scope.ACCOUNT)
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    async with http.post("/api/v1/order", params=market, headers=trade) as response:
        filled = await response.json()
        assert response.status == 200, filled
    assert filled["status"] == "FILLED" and filled["fills"]

    async with http.get("/api/v1/account", params={"omitZeroBalances": "true"}, headers=account) as response:
        info = await response.json()
        assert response.status == 200, info
    jsonschema.validate(info, schema(doc, "get", "/api/v1/account"))
    assert info["asOf"] > 0 and {"BTC", "USDT"} <= {b["asset"] for b in info["balances"]}

    async with http.get("/api/v1/account/balance", headers=account) as response:
        balances = await response.json()
        assert response.status == 200
    jsonschema.validate(balances, schema(doc, "get", "/api/v1/account/balance"))
    assert balances["asOf"] > 0 and all(Decimal(b["free"]) + Decimal(b["locked"]) > 0 for b in balances["balances"])

    params = {"symbol": "BTCUSDT", "orderId": str(filled["orderId"])}
    async with http.get("/api/v1/myTrades", params=params, headers=account) as response:
        trades = await response.json()
        assert response.status == 200 and int(response.headers["X-As-Of-Ms"]) > 0
    jsonschema.validate(trades, schema(doc, "get", "/api/v1/myTrades"))
    assert {t["id"] for t in trades} == {f["tradeId"] for f in filled["fills"]}
    assert sum(Decimal(t["qty"]) for t in trades) == Decimal("0.001")


async def test_scopes(http: aiohttp.ClientSession, gateway_tokens: GatewayTokens) -> None:
    async with http.post("/api/v1/order", data={"symbol": "BTCUSDT"}) as response:
        assert response.status == 401
    for scope in (Scope.READ, Scope.ACCOUNT):
        async with http.post("/api/v1/order", headers=bearer(gateway_tokens, scope)) as response:
            assert response.status == 403
        async with http.delete("/api/v1/openOrders", headers=bearer(gateway_tokens, scope)) as response:
            assert response.status == 403
    for path in ("/api/v1/account", "/api/v1/account/balance", "/api/v1/openOrders"):
        for scope in (Scope.READ, Scope.TRADE):
            async with http.get(path, headers=bearer(gateway_tokens, scope)) as response:
                assert response.status == 403, path
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/ws/user", headers=bearer(gateway_tokens, Scope.READ), timeout=WS_TIMEOUT)
    assert refused.value.status == 403
