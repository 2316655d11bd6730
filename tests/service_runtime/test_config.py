from __future__ import annotations

from pathlib import Path

import pytest

from provider.config import SIM_DEMO_API_KEY, load_config
from service_runtime.config import Address, ConfigError, parse_address, parse_on_off, parse_symbols


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", Address("127.0.0.1", 8080)),
        ("localhost:0", Address("localhost", 0)),
        ("[::1]:50051", Address("::1", 50051)),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["localhost", ":80", "host:http", "host:70000", ""])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_address(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert Address(host, 1).is_loopback is loopback


def test_on_off_and_symbols() -> None:
    assert parse_on_off("ON") is True
    assert parse_on_off("off") is False
    with pytest.raises(ValueError, match="on or off"):
        parse_on_off("maybe")
    assert parse_symbols(" btcusdt, ETHUSDT ,") == ("BTCUSDT", "ETHUSDT")
    with pytest.raises(ValueError, match="alphanumeric"):
        parse_symbols("BTC-USDT")


def test_defaults_use_the_simulator_and_its_demo_account() -> None:
    config = load_config([], {})
    assert config.venue == "sim"
    assert config.urls.rest == "http://127.0.0.1:8900"
    assert config.credentials is not None and config.credentials.api_key == SIM_DEMO_API_KEY
    assert str(config.grpc_addr) == "127.0.0.1:50051"
    assert config.trading is False
    assert config.audit_interval_s == 300.0
    assert load_config([], {"PROVIDER_AUDIT_INTERVAL_S": "2.5"}).audit_interval_s == 2.5


def test_flag_beats_environment_beats_default() -> None:
    env = {"PROVIDER_GRPC_ADDR": "127.0.0.1:1111", "PROVIDER_SYMBOLS": "SOLUSDT"}
    config = load_config(["--provider-grpc-addr", "127.0.0.1:2222"], env)
    assert config.grpc_addr.port == 2222
    assert config.symbols == ("SOLUSDT",)


def test_venue_preset_and_url_override() -> None:
    config = load_config([], {"VENUE": "live", "BINANCE_REST_URL": "http://127.0.0.1:9/"})
    assert config.urls.rest == "http://127.0.0.1:9"
    assert config.urls.ws == "wss://stream.binance.com:9443"
    assert config.credentials is None  # a real venue never falls back to the simulator's demo keys


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BINANCE_API_KEY": "k"}, "BINANCE_API_SECRET"),
        ({"BINANCE_API_SECRET": "s"}, "BINANCE_API_KEY"),
        ({"BINANCE_API_KEY": "k", "BINANCE_PRIVATE_KEY_FILE": "/nonexistent.pem"}, "BINANCE_PRIVATE_KEY_FILE"),
        ({"PROVIDER_TRADING": "yes please"}, "PROVIDER_TRADING"),
        ({"BINANCE_WS_URL": "stream.binance.com"}, "BINANCE_WS_URL"),
        ({"PROVIDER_AUDIT_INTERVAL_S": "0"}, "PROVIDER_AUDIT_INTERVAL_S"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config([], env)


def test_secret_never_in_repr(tmp_path: Path) -> None:
    config = load_config([], {"BINANCE_API_KEY": "abcdefgh", "BINANCE_API_SECRET": "TOPSECRET"})
    assert "TOPSECRET" not in repr(config)
    assert "TOPSECRET" not in repr(config.credentials)
