from binance.provider.v1 import market_data_pb2 as md

from gateway_mcp.tools_market import KlineInterval
from provider_client.intervals import KLINE_INTERVALS


def test_every_binance_interval_maps_to_a_distinct_provider_interval() -> None:
    assert list(KLINE_INTERVALS) == [
        *("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
    ]
    assert len(set(KLINE_INTERVALS.values())) == len(md.KlineInterval.values()) - 1  # all but UNSPECIFIED


def test_the_mcp_tools_offer_exactly_the_intervals_the_table_maps() -> None:
    assert [i.value for i in KlineInterval] == list(KLINE_INTERVALS)
