"""The HTTP gateway's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway_auth.tokens import TokenStore, load_gateway_tokens
from gateway_http.security import RateLimit, WsLimits, parse_origins, parse_rate_limit, parse_ws_limits
from gateway_http.socket_writes import PARALLEL_MIN_SOCKETS
from gateway_http.streams import WsBacklog, parse_ws_backlog
from service_runtime.config import Address, Setting, Settings, parse_address, parse_choice

DEFAULT_RATE_LIMIT = RateLimit(per_second=20.0, burst=40)
DEFAULT_WS_LIMITS = WsLimits(total=4096, per_token=1024)
MAX_WORKERS = 64
MAX_WRITE_THREADS = 16


def _count(text: str, what: str, most: int) -> int:
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"expected a number of {what}, got {text!r}") from None
    if not 1 <= count <= most:
        raise ValueError(f"expected 1..{most} {what}, got {count}")
    return count


def parse_workers(text: str) -> int:
    """How many worker processes serve the address: 1..MAX_WORKERS."""
    return _count(text, "worker processes", MAX_WORKERS)


def parse_write_threads(text: str) -> int:
    """Threads per worker that write a WebSocket fan-out batch to its clients: 1..MAX_WRITE_THREADS."""
    return _count(text, "threads", MAX_WRITE_THREADS)


@dataclass(frozen=True)
class HttpGatewayConfig:
    addr: Address
    provider_addr: Address
    venue: str = "sim"
    tokens: TokenStore = field(default_factory=TokenStore)
    cors_origins: tuple[str, ...] = ()
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT
    ws_limits: WsLimits = DEFAULT_WS_LIMITS
    ws_backlog: WsBacklog = field(default_factory=WsBacklog)
    workers: int = 1
    ws_write_threads: int = 2


SETTINGS: list[Setting[object]] = [
    Setting("GATEWAY_HTTP_ADDR", "127.0.0.1:8080", parse_address, "HTTP listen address"),
    Setting("PROVIDER_GRPC_ADDR", "127.0.0.1:50051", parse_address, "the provider's gRPC address"),
    Setting(
        "VENUE", "sim", parse_choice("sim", "testnet", "live"), "venue: with testnet or live a tokens file is required"
    ),
    Setting("GATEWAY_TOKENS_FILE", None, Path, "bearer tokens file (JSON list of name, sha256, scopes)"),
    Setting("GATEWAY_HTTP_CORS_ORIGINS", "", parse_origins, "comma-separated browser origins allowed by CORS"),
    Setting("GATEWAY_HTTP_RATE_LIMIT", "20,40", parse_rate_limit, "per-token requests per second,burst (or off)"),
    Setting(
        "GATEWAY_HTTP_MAX_WS_CLIENTS",
        "4096,1024",
        parse_ws_limits,
        "open WebSocket clients allowed: total,per token (over it: 503 / 429 with Retry-After)",
    ),
    Setting(
        "GATEWAY_HTTP_WS_BACKLOG",
        "256,65536",
        parse_ws_backlog,
        "how far a WebSocket client may fall behind: frames queued in the gateway,bytes its socket may hold "
        "unsent (0: the OS default, megabytes on loopback); past it depth clients are lagged, others closed",
    ),
    Setting(
        "GATEWAY_HTTP_WORKERS",
        "1",
        parse_workers,
        "worker processes sharing the listening socket, so the WebSocket fan-out can use more than one core "
        "(rate limits, WebSocket caps and /metrics hold over all of them)",
    ),
    Setting(
        "GATEWAY_HTTP_WS_WRITE_THREADS",
        "2",
        parse_write_threads,
        "threads in each worker that write one fan-out batch to a stream's WebSocket clients, from "
        f"{PARALLEL_MIN_SOCKETS * 2} clients up (one system call per client; 1: the event loop's thread alone)",
    ),
]


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, *, tokens: TokenStore | None = None
) -> HttpGatewayConfig:
    """The configuration from flags and environment; `tokens`, when given, instead of GATEWAY_TOKENS_FILE's
    (a worker serves the tokens its supervisor read at start, whatever the file holds by now)."""
    values, _ = Settings("python -m gateway_http", "REST and WebSocket gateway", SETTINGS).parse(argv, environ)
    addr, provider_addr = values["GATEWAY_HTTP_ADDR"], values["PROVIDER_GRPC_ADDR"]
    assert isinstance(addr, Address) and isinstance(provider_addr, Address)
    venue, tokens_file = values["VENUE"], values["GATEWAY_TOKENS_FILE"]
    assert isinstance(venue, str) and (tokens_file is None or isinstance(tokens_file, Path))
    origins, rate_limit = values["GATEWAY_HTTP_CORS_ORIGINS"], values["GATEWAY_HTTP_RATE_LIMIT"]
    assert isinstance(origins, tuple) and (rate_limit is None or isinstance(rate_limit, RateLimit))
    ws_limits, ws_backlog = values["GATEWAY_HTTP_MAX_WS_CLIENTS"], values["GATEWAY_HTTP_WS_BACKLOG"]
    assert isinstance(ws_limits, WsLimits) and isinstance(ws_backlog, WsBacklog)
    workers, write_threads = values["GATEWAY_HTTP_WORKERS"], values["GATEWAY_HTTP_WS_WRITE_THREADS"]
    assert isinstance(workers, int) and isinstance(write_threads, int)
    return HttpGatewayConfig(
        addr=addr,
        provider_addr=provider_addr,
        venue=venue,
        tokens=tokens if tokens is not None else load_gateway_tokens(tokens_file, venue),
        cors_origins=origins,
        rate_limit=rate_limit,
        ws_limits=ws_limits,
        ws_backlog=ws_backlog,
        workers=workers,
        ws_write_threads=write_threads,
    )
