"""Kline streams: at an interval boundary the candle that closed gets a final update with x=true."""

from __future__ import annotations

import orjson

from exchange_sim.market.candles import interval_open
from exchange_sim.matching import MatchingEngine
from exchange_sim.symbols import symbol_setup
from exchange_sim.venue import Venue


class RecordingHub:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, object]]] = []

    def has_subscribers(self, stream: str) -> bool:
        return stream == "btcusdt@kline_1s"

    def publish(self, stream: str, payload: bytes) -> None:
        self.published.append((stream, orjson.loads(payload)))


def test_closed_candle_is_sent_once_with_x_true_then_the_new_one() -> None:
    hub = RecordingHub()
    venue = Venue(MatchingEngine(), hub)  # type: ignore[arg-type]
    venue.add_symbol(symbol_setup("BTCUSDT")[0])
    start = interval_open("1s", 1_800_000_000_000)
    venue.flush_1000ms(start + 100)
    venue.flush_1000ms(start + 600)  # same candle: no final event
    venue.flush_1000ms(start + 1_100)
    klines = [event for stream, event in hub.published if stream == "btcusdt@kline_1s"]
    summary = [(e["k"]["t"], e["k"]["x"], e["E"]) for e in klines]  # type: ignore[index]
    assert summary == [
        (start, False, start + 100),
        (start, False, start + 600),
        (start, True, start + 1_100),
        (start + 1_000, False, start + 1_100),
    ]
    assert klines[2]["k"]["T"] == start + 999  # type: ignore[index]
