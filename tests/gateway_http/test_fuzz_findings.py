"""Defects schemathesis found in the gateway, each pinned: they answered 500 before the fix."""

from __future__ import annotations

import re

import pytest

from gateway_http.convert import LEVELS
from gateway_http.errors import ApiError
from gateway_http.market_routes import SYMBOLS_PATTERN, selected_symbols
from gateway_http.openapi import Param, ParamError, Params, parse_param


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775809", "62156679021933061242680737005568"])
def test_an_integer_beyond_64_bits_is_a_400_not_a_protobuf_overflow(text: str) -> None:
    with pytest.raises(ParamError, match="64-bit"):
        parse_param(Param("startTime", int), text)


def test_64_bit_bounds_are_accepted() -> None:
    assert parse_param(Param("orderId", int), "9223372036854775807") == 2**63 - 1


@pytest.mark.parametrize("text", ['[\x0c"BTCUSDT"]', '["BTCUSDT"\x0b]', '[\u00a0"BTCUSDT"]'])
def test_the_symbols_pattern_admits_only_json_whitespace(text: str) -> None:
    assert re.search(SYMBOLS_PATTERN, text) is None


def test_symbols_that_json_refuses_are_a_400_naming_the_field() -> None:
    with pytest.raises(ApiError) as refused:
        selected_symbols(Params({"symbols": '[\x0c"BTCUSDT"]'}))
    assert (refused.value.answer.status, refused.value.answer.field) == (400, "symbols")
    assert selected_symbols(Params({"symbols": '[ "BTCUSDT",\n"ETHUSDT" ]'})) == (["BTCUSDT", "ETHUSDT"], False)


def test_a_price_level_is_two_decimals_without_a_tuple_schema() -> None:
    level = LEVELS["items"]
    assert isinstance(level, dict) and "prefixItems" not in level
    assert (level["minItems"], level["maxItems"]) == (2, 2)
