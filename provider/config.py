"""The provider's configuration (see the README's configuration table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from service_runtime.config import (
    Address,
    ConfigError,
    Setting,
    Settings,
    parse_address,
    parse_choice,
    parse_on_off,
    parse_symbols,
)

# Demo credentials of the simulator's default funded account (documented in the README).
SIM_DEMO_API_KEY = "simDemoApiKey0000000000000000000000000000000000000000000000000000"
SIM_DEMO_API_SECRET = "simDemoApiSecretNotForRealVenues000000000000000000000000000000000"


@dataclass(frozen=True)
class VenueUrls:
    rest: str
    ws: str
    ws_api: str


VENUE_PRESETS: dict[str, VenueUrls] = {
    "sim": VenueUrls("http://127.0.0.1:8900", "ws://127.0.0.1:8900", "ws://127.0.0.1:8900/ws-api/v3"),
    "testnet": VenueUrls(
        "https://testnet.binance.vision",
        "wss://stream.testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
    ),
    "live": VenueUrls(
        "https://api.binance.com", "wss://stream.binance.com:9443", "wss://ws-api.binance.com:443/ws-api/v3"
    ),
}


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://", "ws://", "wss://")):
        raise ValueError(f"expected an http(s):// or ws(s):// URL, got {text!r}")
    return text.rstrip("/")


def _snapshot_limit(text: str) -> int:
    value = int(text)
    if value not in (100, 500, 1000, 5000):
        raise ValueError(f"expected 100, 500, 1000 or 5000 (Binance's depth weight steps), got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


def _optional_notional(text: str) -> Decimal | None:
    """A cap in the quote asset as a decimal string ("50000"), or off for no cap."""
    if text.strip().lower() == "off":
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"expected a decimal amount such as 50000, or off; got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"expected a positive decimal amount, or off; got {text!r}")
    return value


def _optional_address(text: str) -> Address | None:
    return None if text.strip().lower() == "off" else parse_address(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _optional_mb(text: str) -> float | None:
    return None if text.strip().lower() == "off" else _positive_float(text)


SETTINGS: list[Setting[object]] = [
    Setting("VENUE", "sim", parse_choice("sim", "testnet", "live"), "venue preset: sim, testnet or live"),
    Setting("BINANCE_REST_URL", None, _url, "REST base URL (overrides the venue preset)"),
    Setting("BINANCE_WS_URL", None, _url, "market streams base URL (overrides the venue preset)"),
    Setting("BINANCE_WS_API_URL", None, _url, "WebSocket API URL (overrides the venue preset)"),
    Setting("BINANCE_API_KEY", None, str, "API key"),
    Setting("BINANCE_API_SECRET", None, str, "HMAC API secret (never logged)"),
    Setting("BINANCE_PRIVATE_KEY_FILE", None, Path, "Ed25519 private key PEM file"),
    Setting("PROVIDER_GRPC_ADDR", "127.0.0.1:50051", parse_address, "gRPC listen address"),
    Setting("PROVIDER_SYMBOLS", "BTCUSDT,ETHUSDT", parse_symbols, "symbols tracked from start"),
    Setting("PROVIDER_DATA_DIR", "./data", Path, "LMDB data directory"),
    Setting("PROVIDER_TRADING", "off", parse_on_off, "allow orders: on or off"),
    Setting(
        "PROVIDER_MAX_ORDER_NOTIONAL", "off", _optional_notional, "cap per order, in its quote asset (off: no cap)"
    ),
    Setting(
        "PROVIDER_MAX_SYMBOL_NOTIONAL",
        "off",
        _optional_notional,
        "cap on a symbol's open orders plus a new one, in its quote asset (off: no cap)",
    ),
    Setting("PROVIDER_SNAPSHOT_LIMIT", "1000", _snapshot_limit, "local book snapshot size: 100, 500, 1000 or 5000"),
    Setting("PROVIDER_AUDIT_INTERVAL_S", "300", _seconds, "audit each book against a fresh snapshot this often"),
    Setting("PROVIDER_IDLE_RELEASE_S", "600", _seconds, "release on-demand symbols after this idle time"),
    Setting("PROVIDER_STREAM_STALL_S", "30", _seconds, "a stream connection with no event for this long is dead"),
    Setting("PROVIDER_METRICS_ADDR", "127.0.0.1:9464", _optional_address, "Prometheus /metrics address, or off"),
    Setting("PROVIDER_SNAPSHOT_LEVELS", "20", _positive_int, "levels per side in each recorded 1-second snapshot"),
    Setting("PROVIDER_RETENTION_DAYS", "7", _positive_float, "days of recorded history kept"),
    Setting("PROVIDER_HISTORY_MAX_MB", "off", _optional_mb, "size cap of the recorded history in MB, or off"),
    Setting("SIM_API_KEY", SIM_DEMO_API_KEY, str, "simulator account API key (used with VENUE=sim)"),
    Setting("SIM_API_SECRET", SIM_DEMO_API_SECRET, str, "simulator account API secret (used with VENUE=sim)"),
]


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str | None = field(default=None, repr=False)
    private_key_file: Path | None = None

    def __repr__(self) -> str:  # the secret never appears in logs or tracebacks
        kind = "ed25519" if self.private_key_file else "hmac"
        return f"Credentials(api_key={self.api_key[:4]}…, kind={kind})"


@dataclass(frozen=True)
class ProviderConfig:
    venue: str
    urls: VenueUrls
    credentials: Credentials | None
    grpc_addr: Address
    symbols: tuple[str, ...]
    data_dir: Path
    trading: bool
    snapshot_limit: int = 1000
    audit_interval_s: float = 300.0
    idle_release_s: float = 600.0
    stream_stall_s: float = 30.0
    metrics_addr: Address | None = None
    max_order_notional: Decimal | None = None
    max_symbol_notional: Decimal | None = None
    snapshot_levels: int = 20
    retention_days: float = 7.0
    history_max_mb: float | None = None


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ProviderConfig:
    values, _ = Settings("python -m provider", "Binance Spot gRPC provider", SETTINGS).parse(argv, environ)
    venue = str(values["VENUE"])
    preset = VENUE_PRESETS[venue]
    urls = VenueUrls(
        rest=str(values["BINANCE_REST_URL"] or preset.rest),
        ws=str(values["BINANCE_WS_URL"] or preset.ws),
        ws_api=str(values["BINANCE_WS_API_URL"] or preset.ws_api),
    )
    api_key = values["BINANCE_API_KEY"]
    secret = values["BINANCE_API_SECRET"]
    key_file = values["BINANCE_PRIVATE_KEY_FILE"]
    credentials: Credentials | None = None
    if api_key:
        if not secret and not key_file:
            raise ConfigError("BINANCE_API_KEY is set but neither BINANCE_API_SECRET nor BINANCE_PRIVATE_KEY_FILE is")
        if secret and key_file:
            raise ConfigError("set only one of BINANCE_API_SECRET and BINANCE_PRIVATE_KEY_FILE")
        if isinstance(key_file, Path) and not key_file.is_file():
            raise ConfigError(f"BINANCE_PRIVATE_KEY_FILE: no such file {key_file}")
        credentials = Credentials(
            str(api_key), str(secret) if secret else None, key_file if isinstance(key_file, Path) else None
        )
    elif secret or key_file:
        raise ConfigError("BINANCE_API_SECRET/BINANCE_PRIVATE_KEY_FILE is set but BINANCE_API_KEY is not")
    elif venue == "sim":
        credentials = Credentials(str(values["SIM_API_KEY"]), str(values["SIM_API_SECRET"]))
    symbols = values["PROVIDER_SYMBOLS"]
    grpc_addr = values["PROVIDER_GRPC_ADDR"]
    metrics_addr = values["PROVIDER_METRICS_ADDR"]
    assert isinstance(symbols, tuple) and isinstance(grpc_addr, Address)
    assert metrics_addr is None or isinstance(metrics_addr, Address)
    return ProviderConfig(
        venue=venue,
        urls=urls,
        credentials=credentials,
        grpc_addr=grpc_addr,
        symbols=symbols,
        data_dir=Path(str(values["PROVIDER_DATA_DIR"])),
        trading=bool(values["PROVIDER_TRADING"]),
        snapshot_limit=int(str(values["PROVIDER_SNAPSHOT_LIMIT"])),
        audit_interval_s=float(str(values["PROVIDER_AUDIT_INTERVAL_S"])),
        idle_release_s=float(str(values["PROVIDER_IDLE_RELEASE_S"])),
        stream_stall_s=float(str(values["PROVIDER_STREAM_STALL_S"])),
        metrics_addr=metrics_addr,
        max_order_notional=_decimal_or_none(values["PROVIDER_MAX_ORDER_NOTIONAL"]),
        max_symbol_notional=_decimal_or_none(values["PROVIDER_MAX_SYMBOL_NOTIONAL"]),
        snapshot_levels=int(str(values["PROVIDER_SNAPSHOT_LEVELS"])),
        retention_days=float(str(values["PROVIDER_RETENTION_DAYS"])),
        history_max_mb=_float_or_none(values["PROVIDER_HISTORY_MAX_MB"]),
    )


def _float_or_none(value: object) -> float | None:
    assert value is None or isinstance(value, float)
    return value


def _decimal_or_none(value: object) -> Decimal | None:
    assert value is None or isinstance(value, Decimal)
    return value
