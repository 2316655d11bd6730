"""The pure parts of the account tools: balances, order views, own-trade totals and renderings."""

from __future__ import annotations

from binance.provider.v1 import account_pb2 as ac
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t

from gateway_mcp.tools_account import (
    MAX_BALANCES,
    Balances,
    MyTrades,
    balance_rows,
    my_trade,
    my_trades_summary,
    order_view,
    render_balances,
    render_my_trades,
    rest_freshness,
)
from gateway_mcp.tools_market import Freshness


def test_balances_filtered_sorted_totalled_exactly_and_capped() -> None:
    pb = [
        ac.Balance(asset="USDT", free="0.10000000", locked="0.20000000"),
        ac.Balance(asset="BTC", free="1.00000000", locked="0.00000000"),
        ac.Balance(asset="ETH", free="3", locked="1"),
    ]
    rows, omitted = balance_rows(pb, ["usdt", "btc"])
    assert [(r.asset, r.total) for r in rows] == [("BTC", "1"), ("USDT", "0.3")]  # 0.1 + 0.2, not 0.30000000000000004
    assert rows[1].free == "0.10000000"  # exchange strings untouched
    assert omitted == 0
    many = [ac.Balance(asset=f"A{i:03d}", free="1", locked="0") for i in range(MAX_BALANCES + 3)]
    rows, omitted = balance_rows(many, None)
    assert len(rows) == MAX_BALANCES and omitted == 3


def test_balance_text_has_freshness() -> None:
    fresh = rest_freshness(1_000, c.DATA_SOURCE_LOCAL_STREAM, 1_250)
    assert (fresh.source, fresh.age_ms, fresh.event_time_ms) == ("LOCAL_STREAM", 250, 1_000)
    rows, _ = balance_rows([ac.Balance(asset="BTC", free="1", locked="0.5")], None)
    text = render_balances(Balances(balances=rows, omitted=0, freshness=fresh))
    assert (
        "BTC    1     0.5" in text and text.splitlines()[-1] == "(source LOCAL_STREAM, as of 00:00:01 UTC, age 250 ms)"
    )


def test_order_view_names_enums_and_drops_empty_values() -> None:
    o = order_view(
        t.Order(
            symbol="BTCUSDT",
            order_id=7,
            client_order_id="mcp-1",
            side=c.SIDE_SELL,
            type=c.ORDER_TYPE_MARKET,
            status=c.ORDER_STATUS_FILLED,
            price="0.00000000",
            original_quantity="0.00100000",
            executed_quantity="0.00100000",
            cumulative_quote_quantity="65.00000000",
        )
    )
    assert (o.side, o.type, o.status, o.time_in_force) == ("SELL", "MARKET", "FILLED", None)
    assert o.price is None and o.quantity == "0.00100000" and o.stop_price is None


def test_my_trades_summary_is_exact_per_side_and_commission_asset() -> None:
    trades = [
        my_trade(
            ac.MyTrade(
                symbol="BTCUSDT",
                id=1,
                price="100",
                quantity="0.1",
                quote_quantity="10",
                commission="0.0001",
                commission_asset="BTC",
                time_ms=2_000,
                is_buyer=True,
            )
        ),
        my_trade(
            ac.MyTrade(
                symbol="BTCUSDT",
                id=2,
                price="110",
                quantity="0.2",
                quote_quantity="22",
                commission="0.022",
                commission_asset="USDT",
                time_ms=1_000,
                is_buyer=False,
                is_maker=True,
            )
        ),
        my_trade(
            ac.MyTrade(
                symbol="BTCUSDT",
                id=3,
                price="100",
                quantity="0.2",
                quote_quantity="20",
                commission="0.0002",
                commission_asset="BTC",
                time_ms=3_000,
                is_buyer=True,
            )
        ),
    ]
    s = my_trades_summary(trades)
    assert s is not None
    assert (s.bought, s.sold, s.spent_quote, s.received_quote) == ("0.3", "0.2", "30", "22")
    assert s.commissions == {"BTC": "0.0003", "USDT": "0.022"}
    assert (s.first_time_ms, s.last_time_ms) == (1_000, 3_000)
    assert my_trades_summary([]) is None
    text = render_my_trades(
        MyTrades(
            symbol="BTCUSDT",
            trades=trades,
            summary=s,
            next_from_id=4,
            freshness=Freshness(source="EXCHANGE_REST", fetched_at_ms=1),
        )
    )
    assert "bought 0.3 for 30, sold 0.2 for 22; commission 0.0003 BTC, 0.022 USDT" in text
    assert "from_id=4" in text
