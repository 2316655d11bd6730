"""The pure parts of the market tools, with numbers checked by hand: book summary (spread, mid,
microprice, imbalance, walls), trade and candle summaries, symbol rules, and their renderings."""

from __future__ import annotations

from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md

from gateway_mcp.tools_market import (
    BookSummary,
    Candle,
    Freshness,
    PriceLevel,
    PublicTrade,
    book_freshness,
    candle_summary,
    render_book_summary,
    summarize_book,
    symbol_rules,
    trade_summary,
    walls,
)

FRESH = Freshness(source="LOCAL_BOOK", fetched_at_ms=1, age_ms=5, last_update_id=42, in_sync=True)


def side(*levels: tuple[str, str]) -> list[PriceLevel]:
    return [PriceLevel(price=p, quantity=q) for p, q in levels]


BIDS = side(("100.00000000", "2.00000000"), ("99.90000000", "10.00000000"), ("99.80000000", "1.00000000"))
ASKS = side(("100.20000000", "6.00000000"), ("100.30000000", "1.00000000"), ("100.40000000", "30.00000000"))


def summary() -> BookSummary:
    return summarize_book("TESTUSDT", BIDS, ASKS, 1, FRESH)


def test_top_of_book_figures() -> None:
    s = summary()
    assert s.best_bid == BIDS[0] and s.best_ask == ASKS[0]  # exchange strings untouched
    assert s.spread == "0.2"
    assert s.mid == "100.1"
    assert s.spread_bps == 20.0  # 0.2 / 100.1 x 10 000 = 19.98 -> 3 significant digits
    # (100.0 x 6 + 100.2 x 2) / (2 + 6) = 800.4 / 8
    assert s.microprice == "100.05"
    assert s.imbalance_top == -0.5  # (2 - 6) / (2 + 6)


def test_depth_figures() -> None:
    s = summary()
    assert (s.bid_depth, s.ask_depth) == ("13", "37")
    assert s.imbalance_depth == -0.48  # (13 - 37) / 50
    assert s.depth_levels == 3


def test_walls_are_the_largest_levels_against_the_median() -> None:
    s = summary()
    # bid median 2: 10 is 5x, 0.2 from the mid of 100.1 = 19.98 bps; ask median 6: 30 is 5x, 0.3 -> 29.97 bps
    assert [(w.price, w.size_vs_median, w.distance_bps) for w in s.bid_walls] == [("99.90000000", 5.0, 20.0)]
    assert [(w.price, w.size_vs_median, w.distance_bps) for w in s.ask_walls] == [("100.40000000", 5.0, 30.0)]


def test_wall_ties_prefer_the_level_nearer_the_best_price() -> None:
    levels = side(("10", "1"), ("9", "3"), ("8", "3"), ("7", "1"))
    found = walls(levels, None, 2)
    assert [w.price for w in found] == ["9", "8"]
    assert [w.size_vs_median for w in found] == [1.5, 1.5]  # median of 1, 1, 3, 3 is 2
    assert walls(levels, None, 0) == []


def test_a_book_with_an_empty_side_has_no_top_of_book_figures() -> None:
    s = summarize_book("TESTUSDT", BIDS, [], 2, FRESH)
    assert s.best_ask is None and s.spread is None and s.mid is None and s.microprice is None
    assert s.imbalance_top is None
    assert s.imbalance_depth == 1.0
    assert s.ask_walls == [] and len(s.bid_walls) == 2
    assert "one side of the book is empty" in render_book_summary(s)


def test_book_summary_rendering_is_compact_and_carries_freshness() -> None:
    text = render_book_summary(summary())
    assert text.splitlines()[0] == "TESTUSDT bid 100.00000000 x 2.00000000 | ask 100.20000000 x 6.00000000"
    assert "spread 0.2 (20.0 bps), mid 100.1, microprice 100.05, top imbalance -0.5" in text
    assert "bid walls: 10.00000000 @ 99.90000000 (5.0x median, 20.0 bps)" in text
    assert text.splitlines()[-1] == "(source LOCAL_BOOK, update id 42, age 5 ms, in sync)"


def test_book_freshness_from_the_provider() -> None:
    pb = c.Freshness(last_update_id=7, event_time_ms=1000, age_ms=30, in_sync=False, source=c.DATA_SOURCE_LOCAL_BOOK)
    f = book_freshness(pb, now_ms=2000)
    assert (f.source, f.last_update_id, f.event_time_ms, f.age_ms, f.in_sync) == ("LOCAL_BOOK", 7, 1000, 30, False)


def test_trade_summary() -> None:
    trades = [
        PublicTrade(id=1, price="10.0", quantity="1.0", time_ms=5, taker_side="BUY"),
        PublicTrade(id=2, price="11.0", quantity="3.0", time_ms=7, taker_side="SELL"),
    ]
    s = trade_summary(trades)
    assert s is not None
    assert (s.count, s.buy_volume, s.sell_volume) == (2, "1", "3")
    assert s.buy_share == 0.25
    assert s.vwap == "10.75"  # (10 + 33) / 4; inputs have 0 places -> 2 places
    assert (s.first_time_ms, s.last_time_ms) == (5, 7)
    assert trade_summary([]) is None


def test_candle_summary() -> None:
    def candle(o: str, h: str, lo: str, close: str, v: str) -> Candle:
        return Candle(
            open_time_ms=0, open=o, high=h, low=lo, close=close, volume=v, quote_volume="0", trade_count=1,
            taker_buy_volume="0",
        )  # fmt: skip

    s = candle_summary([candle("100", "105", "99", "102", "1.5"), candle("102", "110", "101", "108", "2.25")])
    assert s is not None
    assert (s.change_percent, s.high, s.low, s.volume) == (8.0, "110", "99", "3.75")
    assert candle_summary([]) is None


def test_symbol_rules_from_exchange_filters() -> None:
    info = md.SymbolInfo(
        symbol="ETHUSDT",
        status=md.SYMBOL_STATUS_TRADING,
        status_text="TRADING",
        base_asset="ETH",
        quote_asset="USDT",
        base_asset_precision=8,
        quote_asset_precision=8,
        order_types=[c.ORDER_TYPE_LIMIT, c.ORDER_TYPE_MARKET],
        is_spot_trading_allowed=True,
        filters=[
            md.SymbolFilter(price=md.PriceFilter(min_price="0.01", max_price="0", tick_size="0.01000000")),
            md.SymbolFilter(lot_size=md.LotSizeFilter(min_quantity="0.0001", max_quantity="9000", step_size="0.0001")),
            md.SymbolFilter(notional=md.NotionalFilter(min_notional="5.00000000", apply_min_to_market=True)),
            md.SymbolFilter(other_json='{"filterType":"TRAILING_DELTA"}'),
        ],
    )
    rules = symbol_rules(info, server_time_ms=123, now_ms=456)
    assert (rules.status, rules.tick_size, rules.step_size, rules.min_notional) == (
        "TRADING", "0.01000000", "0.0001", "5.00000000",
    )  # fmt: skip
    assert rules.max_price is None  # "0": the rule is disabled
    assert rules.max_notional is None and rules.market_max_quantity is None
    assert rules.min_notional_applies_to_market is True
    assert rules.order_types == ["LIMIT", "MARKET"]
    assert rules.freshness.event_time_ms == 123


def test_an_unknown_status_keeps_the_exchange_word() -> None:
    info = md.SymbolInfo(symbol="X", status=md.SYMBOL_STATUS_OTHER, status_text="PRE_TRADING")
    assert symbol_rules(info, 0, 0).status == "PRE_TRADING"
