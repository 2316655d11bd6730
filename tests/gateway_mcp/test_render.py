"""Rounding, number formatting, tables and provider errors as tool-error text."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest

from gateway_mcp.render import (
    decimal_text,
    derived_price,
    explain_provider_error,
    freshness_line,
    places_of,
    round_significant,
    round_stat,
    table,
    utc_minute,
)
from provider_client.errors import FieldViolation, ProviderCallError


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [(0.123456, 4, 0.1235), (-0.00001, 4, 0.0), (float("nan"), 2, 0.0), (float("inf"), 2, 0.0), (2.5, 0, 2.0)],
)
def test_round_stat(value: float, places: int, expected: float) -> None:
    result = round_stat(value, places)
    assert result == expected
    assert str(result) != "-0.0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0016666, 0.00167), (19.98001998, 20.0), (1234.5678, 1230.0), (-0.049949, -0.0499), (0.0, 0.0)],
)
def test_round_significant_keeps_three_digits(value: float, expected: float) -> None:
    assert round_significant(value, 3) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.2300", "1.23"), ("100", "100"), ("1E+3", "1000"), ("0.00000000", "0"), ("0.00010000", "0.0001")],
)
def test_decimal_text_is_plain_without_trailing_zeros(value: str, expected: str) -> None:
    assert decimal_text(Decimal(value)) == expected


def test_places_ignore_binance_padding() -> None:
    assert places_of("60000.01000000") == 2
    assert places_of("0.00001000") == 5
    assert places_of("100.00000000") == 0


def test_derived_price_has_two_digits_below_the_finest_input() -> None:
    # (100.0 x 6 + 100.2 x 2) / 8 = 100.05; inputs have 1 place -> 3 places
    assert derived_price(Decimal("800.4") / 8, ["100.00000000", "100.20000000"]) == "100.05"
    assert derived_price(Decimal("60000.0053846095"), ["60000.00000000", "60000.01000000"]) == "60000.0054"


def test_table_aligns_columns_without_trailing_spaces() -> None:
    text = table(["a", "price"], [["BTCUSDT", "1"], ["X", "22222"]])
    assert text.splitlines() == ["a        price", "BTCUSDT  1", "X        22222"]


def test_freshness_line_flags_an_out_of_sync_book() -> None:
    line = freshness_line("LOCAL_BOOK", age_ms=12, last_update_id=99, in_sync=False)
    assert line == "source LOCAL_BOOK, update id 99, age 12 ms, NOT IN SYNC"
    assert freshness_line("EXCHANGE_REST", age_ms=None, last_update_id=None, in_sync=None) == "source EXCHANGE_REST"


def test_utc_minute() -> None:
    assert utc_minute(1_700_000_000_000) == "2023-11-14 22:13"


def _error(
    code: grpc.StatusCode,
    reason: str,
    *,
    binance_code: int | None = None,
    binance_msg: str | None = None,
    retry_after_ms: int | None = None,
    field_violations: tuple[FieldViolation, ...] = (),
) -> ProviderCallError:
    return ProviderCallError(
        status_code=code,
        reason=reason,
        message="boom",
        binance_code=binance_code,
        binance_msg=binance_msg,
        retry_after_ms=retry_after_ms,
        field_violations=field_violations,
    )


def test_unknown_symbol_says_so_and_suggests_the_format() -> None:
    error = _error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "ERROR_REASON_UNKNOWN_SYMBOL",
        binance_code=-1121,
        binance_msg="Invalid symbol.",
    )
    text = explain_provider_error(error, symbol="BTC-USDT")
    assert text.startswith("Unknown symbol 'BTC-USDT'")
    assert "Binance -1121: Invalid symbol." in text
    assert "e.g. BTCUSDT" in text


def test_out_of_sync_book_says_retry_shortly() -> None:
    error = _error(grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_BOOK_OUT_OF_SYNC")
    assert "retry shortly" in explain_provider_error(error, symbol="ETHUSDT")
    waited = _error(grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_BOOK_OUT_OF_SYNC", retry_after_ms=1500)
    assert "retry after 2 s" in explain_provider_error(waited, symbol="ETHUSDT")


def test_a_bad_parameter_is_named() -> None:
    error = _error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "ERROR_REASON_UNSPECIFIED",
        field_violations=(FieldViolation("start_time_ms", "start_time_ms is after end_time_ms"),),
    )
    assert explain_provider_error(error) == (
        "Invalid request: parameter 'start_time_ms': start_time_ms is after end_time_ms."
    )


def test_unavailable_points_at_service_status() -> None:
    error = _error(grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_EXCHANGE_UNAVAILABLE", retry_after_ms=30_000)
    text = explain_provider_error(error)
    assert "retry after 30 s" in text and "service_status" in text


def test_rate_limit_keeps_the_exchange_code() -> None:
    error = _error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "ERROR_REASON_RATE_LIMITED", binance_code=-1003, binance_msg="Too many."
    )
    assert (
        explain_provider_error(error)
        == "The exchange rate limit was reached (Binance -1003: Too many.); retry in a minute."
    )
