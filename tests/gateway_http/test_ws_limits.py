"""WebSocket connection limits: the pure counter and its parsing (the wiring is tested end to end)."""

from __future__ import annotations

import pytest

from gateway_http.config import load_config
from gateway_http.errors import ApiError
from gateway_http.security import WsConnections, WsLimits, parse_ws_limits


def refusal(connections: WsConnections, key: str) -> tuple[int, str, str | None]:
    with pytest.raises(ApiError) as refused:
        connections.acquire(key)
    answer = refused.value.answer
    return answer.status, answer.reason, answer.all_headers().get("Retry-After")


def test_per_token_limit_is_429_and_the_total_is_503_both_with_retry_after() -> None:
    connections = WsConnections(WsLimits(total=3, per_token=2))
    connections.acquire("a")
    connections.acquire("a")
    assert refusal(connections, "a") == (429, "TOO_MANY_CONNECTIONS", "1")
    connections.acquire("b")
    assert refusal(connections, "c") == (503, "TOO_MANY_CONNECTIONS", "1")
    assert connections.open_total == 3
    connections.release("a")
    connections.acquire("c")  # a freed slot is usable by anyone
    assert (connections.open_for("a"), connections.open_for("c"), connections.open_total) == (1, 1, 3)


def test_release_forgets_tokens_with_no_client_and_refuses_unbalanced_calls() -> None:
    connections = WsConnections(WsLimits(total=5, per_token=5))
    connections.acquire("a")
    connections.release("a")
    assert connections.open_for("a") == 0 and connections.open_total == 0
    with pytest.raises(ValueError, match="no WebSocket client"):
        connections.release("a")


@pytest.mark.parametrize(("text", "expected"), [("10,3", WsLimits(10, 3)), ("7", WsLimits(7, 7))])
def test_parse_ws_limits(text: str, expected: WsLimits) -> None:
    assert parse_ws_limits(text) == expected


@pytest.mark.parametrize("text", ["", "x", "0,1", "5,0", "5,x"])
def test_parse_ws_limits_refuses_bad_values(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected TOTAL,PER_TOKEN|at least 1"):
        parse_ws_limits(text)


def test_the_setting_reaches_the_config() -> None:
    config = load_config([], {"GATEWAY_HTTP_MAX_WS_CLIENTS": "100,10"})
    assert config.ws_limits == WsLimits(100, 10)
    assert load_config([], {}).ws_limits == WsLimits(4096, 1024)
