"""Defects schemathesis found in the gateway, each pinned: they answered 500 before the fix."""

from __future__ import annotations

import re

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest

from gateway_http.convert import KLINES_SCHEMA, LEVELS
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


def _keywords(schema: object) -> set[str]:
    if isinstance(schema, dict):
        return set(schema) | {key for value in schema.values() for key in _keywords(value)}
    if isinstance(schema, list):
        return {key for value in schema for key in _keywords(value)}
    return set()


KLINE_ROW = [
    1499040000000,
    "0.0163",
    "0.8",
    "0.0157",
    "0.0157",
    "148976.1",
    1499644799999,
    "2434.1",
    308,
    "1756.8",
    "28.4",
    "0",
]


def test_a_kline_has_no_tuple_schema_and_still_types_its_twelve_fields() -> None:
    # Schemathesis 4.32 turns a response's prefixItems into draft-4 `items: [...]` and then calls the
    # document invalid, so the kline schema says the same thing without prefixItems.
    assert "prefixItems" not in _keywords(KLINES_SCHEMA)
    validator = jsonschema.Draft202012Validator(KLINES_SCHEMA)  # the dialect of OpenAPI 3.1
    assert validator.is_valid([KLINE_ROW])
    wrong = {
        "eleven fields": KLINE_ROW[:11],
        "thirteen fields": [*KLINE_ROW, "0"],
        "an integer where a decimal string goes": [*KLINE_ROW[:1], 1, *KLINE_ROW[2:]],
        "a string where the trade count goes": [*KLINE_ROW[:8], "308", *KLINE_ROW[9:]],
        "a float": [*KLINE_ROW[:4], 0.0157, *KLINE_ROW[5:]],
        "a non-decimal string": [*KLINE_ROW[:5], "1e5", *KLINE_ROW[6:]],
    }
    for what, row in wrong.items():
        assert not validator.is_valid([row]), what
