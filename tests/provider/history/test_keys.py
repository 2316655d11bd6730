"""Key layout: symbol then big-endian time, so one symbol's time range is one contiguous scan."""

from __future__ import annotations

import pytest

from provider.history.keys import BLOCK_MS, block_key, block_start, parse_key, symbol_end, symbol_prefix


def test_keys_sort_by_symbol_then_time() -> None:
    pairs = [
        (s, t)
        for s in ("BTCUSDT", "BTCUSDTX", "ETHUSDT", "A1")
        for t in (0, BLOCK_MS, 255 * BLOCK_MS, 2**30 * BLOCK_MS)
    ]
    keys = sorted(block_key(s, t) for s, t in pairs)
    assert [parse_key(k) for k in keys] == sorted(pairs)


def test_symbol_keys_lie_between_prefix_and_end() -> None:
    for t in (0, 1_723_161_600_000, 2**62):
        key = block_key("BTCUSDT", t)
        assert key.startswith(symbol_prefix("BTCUSDT"))
        assert symbol_prefix("BTCUSDT") <= key < symbol_end("BTCUSDT")
    # A longer symbol with the same start sorts after every key of the shorter one.
    assert block_key("BTCUSDTX", 0) > symbol_end("BTCUSDT") > block_key("BTCUSDT", 2**62)
    assert not block_key("BTCUSDTX", 0).startswith(symbol_prefix("BTCUSDT"))


def test_times_round_down_to_their_block() -> None:
    assert block_start(0) == 0
    assert block_start(BLOCK_MS - 1) == 0
    assert block_start(1_723_161_659_999) == 1_723_161_600_000
    assert block_key("ETHUSDT", 1_723_161_659_999) == block_key("ETHUSDT", 1_723_161_600_000)
    assert parse_key(block_key("ETHUSDT", 1_723_161_659_999)) == ("ETHUSDT", 1_723_161_600_000)


@pytest.mark.parametrize("symbol", ["", "BTC/USDT", "btc usdt", "BTC\x00", "É", "X" * 33])
def test_bad_symbols_are_refused(symbol: str) -> None:
    with pytest.raises(ValueError, match="symbol"):
        block_key(symbol, 0)


def test_negative_times_and_foreign_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        block_key("BTCUSDT", -1)
    with pytest.raises(ValueError, match="history key"):
        parse_key(b"meta")
