"""Domain values ↔ protobuf messages for the MarketData service. The only place both meet."""

from __future__ import annotations

import orjson
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md

from provider.errors import InvalidArgument
from provider.marketdata import model as m
from provider.marketdata.symbol_book import BookView

KLINE_INTERVALS: dict[int, m.KlineInterval] = {
    md.KLINE_INTERVAL_SECOND_1: m.KlineInterval.S1,
    md.KLINE_INTERVAL_MINUTE_1: m.KlineInterval.M1,
    md.KLINE_INTERVAL_MINUTE_3: m.KlineInterval.M3,
    md.KLINE_INTERVAL_MINUTE_5: m.KlineInterval.M5,
    md.KLINE_INTERVAL_MINUTE_15: m.KlineInterval.M15,
    md.KLINE_INTERVAL_MINUTE_30: m.KlineInterval.M30,
    md.KLINE_INTERVAL_HOUR_1: m.KlineInterval.H1,
    md.KLINE_INTERVAL_HOUR_2: m.KlineInterval.H2,
    md.KLINE_INTERVAL_HOUR_4: m.KlineInterval.H4,
    md.KLINE_INTERVAL_HOUR_6: m.KlineInterval.H6,
    md.KLINE_INTERVAL_HOUR_8: m.KlineInterval.H8,
    md.KLINE_INTERVAL_HOUR_12: m.KlineInterval.H12,
    md.KLINE_INTERVAL_DAY_1: m.KlineInterval.D1,
    md.KLINE_INTERVAL_DAY_3: m.KlineInterval.D3,
    md.KLINE_INTERVAL_WEEK_1: m.KlineInterval.W1,
    md.KLINE_INTERVAL_MONTH_1: m.KlineInterval.MONTH1,
}

_SYMBOL_STATUS = {
    m.SymbolStatus.TRADING: md.SYMBOL_STATUS_TRADING,
    m.SymbolStatus.END_OF_DAY: md.SYMBOL_STATUS_END_OF_DAY,
    m.SymbolStatus.HALT: md.SYMBOL_STATUS_HALT,
    m.SymbolStatus.BREAK: md.SYMBOL_STATUS_BREAK,
    m.SymbolStatus.CANCEL_ONLY: md.SYMBOL_STATUS_CANCEL_ONLY,
}

_ORDER_TYPES = {
    m.OrderType.LIMIT: c.ORDER_TYPE_LIMIT,
    m.OrderType.MARKET: c.ORDER_TYPE_MARKET,
    m.OrderType.LIMIT_MAKER: c.ORDER_TYPE_LIMIT_MAKER,
    m.OrderType.STOP_LOSS: c.ORDER_TYPE_STOP_LOSS,
    m.OrderType.STOP_LOSS_LIMIT: c.ORDER_TYPE_STOP_LOSS_LIMIT,
    m.OrderType.TAKE_PROFIT: c.ORDER_TYPE_TAKE_PROFIT,
    m.OrderType.TAKE_PROFIT_LIMIT: c.ORDER_TYPE_TAKE_PROFIT_LIMIT,
}

_STP_MODES = {
    m.SelfTradePreventionMode.NONE: c.SELF_TRADE_PREVENTION_MODE_NONE,
    m.SelfTradePreventionMode.EXPIRE_TAKER: c.SELF_TRADE_PREVENTION_MODE_EXPIRE_TAKER,
    m.SelfTradePreventionMode.EXPIRE_MAKER: c.SELF_TRADE_PREVENTION_MODE_EXPIRE_MAKER,
    m.SelfTradePreventionMode.EXPIRE_BOTH: c.SELF_TRADE_PREVENTION_MODE_EXPIRE_BOTH,
    m.SelfTradePreventionMode.DECREMENT: c.SELF_TRADE_PREVENTION_MODE_DECREMENT,
    m.SelfTradePreventionMode.TRANSFER: c.SELF_TRADE_PREVENTION_MODE_TRANSFER,
}


def kline_interval(value: int) -> m.KlineInterval:
    interval = KLINE_INTERVALS.get(value)
    if interval is None:
        raise InvalidArgument("interval", "interval is required: KLINE_INTERVAL_SECOND_1 … KLINE_INTERVAL_MONTH_1")
    return interval


def levels(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[c.PriceLevel]:
    return [c.PriceLevel(price=p, quantity=q) for p, q in pairs]


def wire_levels(pairs: object) -> list[c.PriceLevel]:
    """Levels as they came from the stream (``[[price, qty], ...]``)."""
    return [c.PriceLevel(price=p, quantity=q) for p, q in pairs]  # type: ignore[attr-defined]


def freshness(view: BookView) -> c.Freshness:
    return c.Freshness(
        last_update_id=view.last_update_id,
        event_time_ms=view.event_time_ms,
        age_ms=view.age_ms,
        in_sync=view.in_sync,
        source=c.DATA_SOURCE_LOCAL_BOOK,
    )


def ticker_24h(t: m.Ticker24h) -> md.Ticker24h:
    return md.Ticker24h(
        symbol=t.symbol,
        price_change=t.price_change,
        price_change_percent=t.price_change_percent,
        weighted_avg_price=t.weighted_avg_price,
        prev_close_price=t.prev_close_price,
        last_price=t.last_price,
        last_quantity=t.last_qty,
        bid_price=t.bid_price,
        bid_quantity=t.bid_qty,
        ask_price=t.ask_price,
        ask_quantity=t.ask_qty,
        open_price=t.open_price,
        high_price=t.high_price,
        low_price=t.low_price,
        volume=t.volume,
        quote_volume=t.quote_volume,
        open_time_ms=t.open_time_ms,
        close_time_ms=t.close_time_ms,
        first_trade_id=t.first_id,
        last_trade_id=t.last_id,
        trade_count=t.count,
        event_time_ms=t.event_time_ms,
    )


def book_ticker(t: m.BookTicker) -> md.BookTicker:
    return md.BookTicker(
        symbol=t.symbol,
        bid_price=t.bid_price,
        bid_quantity=t.bid_qty,
        ask_price=t.ask_price,
        ask_quantity=t.ask_qty,
        update_id=t.update_id,
    )


def book_ticker_from_view(view: BookView) -> md.BookTicker:
    bid = view.bids[0] if view.bids else ("", "")
    ask = view.asks[0] if view.asks else ("", "")
    return md.BookTicker(
        symbol=view.symbol,
        bid_price=bid[0],
        bid_quantity=bid[1],
        ask_price=ask[0],
        ask_quantity=ask[1],
        update_id=view.last_update_id,
    )


def trade(symbol: str, t: m.Trade) -> md.Trade:
    return md.Trade(
        symbol=symbol,
        id=t.id,
        price=t.price,
        quantity=t.qty,
        quote_quantity=t.quote_qty,
        time_ms=t.time_ms,
        is_buyer_maker=t.is_buyer_maker,
    )


def agg_trade(t: m.AggTrade) -> md.AggregateTrade:
    return md.AggregateTrade(
        id=t.agg_id,
        price=t.price,
        quantity=t.qty,
        first_trade_id=t.first_trade_id,
        last_trade_id=t.last_trade_id,
        time_ms=t.time_ms,
        is_buyer_maker=t.is_buyer_maker,
    )


def kline(k: m.Kline) -> md.Kline:
    return md.Kline(
        open_time_ms=k.open_time_ms,
        open=k.open,
        high=k.high,
        low=k.low,
        close=k.close,
        volume=k.volume,
        close_time_ms=k.close_time_ms,
        quote_volume=k.quote_volume,
        trade_count=k.trades,
        taker_buy_base_volume=k.taker_buy_base_volume,
        taker_buy_quote_volume=k.taker_buy_quote_volume,
    )


def _lot(f: m.LotSizeFilter) -> md.LotSizeFilter:
    return md.LotSizeFilter(min_quantity=f.min_qty, max_quantity=f.max_qty, step_size=f.step_size)


def symbol_filter(f: m.Filter) -> md.SymbolFilter:
    if isinstance(f, m.PriceFilter):
        price = md.PriceFilter(min_price=f.min_price, max_price=f.max_price, tick_size=f.tick_size)
        return md.SymbolFilter(price=price)
    if isinstance(f, m.LotSizeFilter):
        if f.filter_type == m.FilterType.MARKET_LOT_SIZE:
            return md.SymbolFilter(market_lot_size=_lot(f))
        return md.SymbolFilter(lot_size=_lot(f))
    if isinstance(f, m.NotionalFilter):
        return md.SymbolFilter(
            notional=md.NotionalFilter(
                min_notional=f.min_notional,
                apply_min_to_market=f.apply_min_to_market,
                max_notional=f.max_notional,
                apply_max_to_market=f.apply_max_to_market,
                avg_price_minutes=f.avg_price_mins,
            )
        )
    if isinstance(f, m.MinNotionalFilter):
        return md.SymbolFilter(
            notional=md.NotionalFilter(
                min_notional=f.min_notional,
                apply_min_to_market=f.apply_to_market,
                avg_price_minutes=f.avg_price_mins,
            )
        )
    if isinstance(f, m.PercentPriceFilter):
        return md.SymbolFilter(
            percent_price=md.PercentPriceFilter(
                multiplier_up=f.multiplier_up, multiplier_down=f.multiplier_down, avg_price_minutes=f.avg_price_mins
            )
        )
    if isinstance(f, m.MaxNumFilter):
        if f.filter_type == m.FilterType.MAX_NUM_ORDERS:
            return md.SymbolFilter(max_num_orders=f.limit)
        if f.filter_type == m.FilterType.MAX_NUM_ALGO_ORDERS:
            return md.SymbolFilter(max_num_algo_orders=f.limit)
        if f.filter_type == m.FilterType.ICEBERG_PARTS:
            return md.SymbolFilter(iceberg_parts=f.limit)
    return md.SymbolFilter(other_json=orjson.dumps(_raw_filter(f)).decode())


def _raw_filter(f: m.Filter) -> object:
    if isinstance(f, m.UnknownFilter):
        return dict(f.raw)
    # Modelled filters without a dedicated message: back to Binance's camelCase field names.
    fields = {_camel(name): getattr(f, name) for name in getattr(f, "__slots__", ())}
    return {"filterType": str(f.filter_type), **fields}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def symbol_info(r: m.SymbolRules) -> md.SymbolInfo:
    return md.SymbolInfo(
        symbol=r.symbol,
        status=_SYMBOL_STATUS.get(r.status, md.SYMBOL_STATUS_OTHER),
        status_text=str(r.status),
        base_asset=r.base_asset,
        base_asset_precision=r.base_asset_precision,
        quote_asset=r.quote_asset,
        quote_asset_precision=r.quote_asset_precision,
        order_types=[_ORDER_TYPES[t] for t in r.order_types if t in _ORDER_TYPES],
        iceberg_allowed=r.iceberg_allowed,
        quote_order_qty_market_allowed=r.quote_order_qty_market_allowed,
        is_spot_trading_allowed=r.is_spot_trading_allowed,
        filters=[symbol_filter(f) for f in r.filters],
        default_self_trade_prevention_mode=_STP_MODES.get(r.default_stp_mode, c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED)
        if r.default_stp_mode
        else c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED,
        allowed_self_trade_prevention_modes=[_STP_MODES[s] for s in r.allowed_stp_modes if s in _STP_MODES],
    )


def rate_limit(r: m.RateLimitRule) -> md.RateLimit:
    return md.RateLimit(
        rate_limit_type=str(r.rate_limit_type), interval=str(r.interval), interval_num=r.interval_num, limit=r.limit
    )
