"""Binance's kline interval strings and the provider's enum for each: one table for both gateways.

Case-sensitive: ``1m`` is a minute, ``1M`` a month.
"""

from __future__ import annotations

from collections.abc import Mapping

from binance.provider.v1 import market_data_pb2 as md

KLINE_INTERVALS: Mapping[str, md.KlineInterval.ValueType] = {
    "1s": md.KLINE_INTERVAL_SECOND_1,
    "1m": md.KLINE_INTERVAL_MINUTE_1,
    "3m": md.KLINE_INTERVAL_MINUTE_3,
    "5m": md.KLINE_INTERVAL_MINUTE_5,
    "15m": md.KLINE_INTERVAL_MINUTE_15,
    "30m": md.KLINE_INTERVAL_MINUTE_30,
    "1h": md.KLINE_INTERVAL_HOUR_1,
    "2h": md.KLINE_INTERVAL_HOUR_2,
    "4h": md.KLINE_INTERVAL_HOUR_4,
    "6h": md.KLINE_INTERVAL_HOUR_6,
    "8h": md.KLINE_INTERVAL_HOUR_8,
    "12h": md.KLINE_INTERVAL_HOUR_12,
    "1d": md.KLINE_INTERVAL_DAY_1,
    "3d": md.KLINE_INTERVAL_DAY_3,
    "1w": md.KLINE_INTERVAL_WEEK_1,
    "1M": md.KLINE_INTERVAL_MONTH_1,
}
