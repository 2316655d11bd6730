from __future__ import annotations

import orjson

from exchange_sim.market.depth_stream import DepthWindow, partial_depth


def test_empty_window_sends_nothing() -> None:
    assert DepthWindow().take("BTCUSDT", 1) is None


def test_window_keeps_last_quantity_per_level_and_contiguous_ids() -> None:
    window = DepthWindow()
    window.add(11, True, "100.00000000", "1.00000000")
    window.add(12, True, "100.00000000", "0.00000000")  # removed again within the window
    window.add(13, False, "101.00000000", "2.00000000")
    window.add(14, True, "99.50000000", "3.00000000")
    event = orjson.loads(window.take("BTCUSDT", 5) or b"")
    assert event == {
        "e": "depthUpdate",
        "E": 5,
        "s": "BTCUSDT",
        "U": 11,
        "u": 14,
        "b": [["100.00000000", "0.00000000"], ["99.50000000", "3.00000000"]],
        "a": [["101.00000000", "2.00000000"]],
    }
    window.add(15, False, "101.00000000", "1.00000000")
    follow = orjson.loads(window.take("BTCUSDT", 6) or b"")
    assert follow["U"] == event["u"] + 1 and follow["u"] == 15 and follow["b"] == []


def test_partial_depth_shape() -> None:
    assert orjson.loads(partial_depth(7, [("1", "2")], [])) == {"lastUpdateId": 7, "bids": [["1", "2"]], "asks": []}
