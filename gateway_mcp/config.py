"""The MCP gateway's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway_auth.tokens import TokenStore, load_gateway_tokens
from service_runtime.config import (
    Address,
    ConfigError,
    Setting,
    Settings,
    parse_address,
    parse_choice,
    parse_on_off,
)


@dataclass(frozen=True)
class McpGatewayConfig:
    addr: Address
    provider_addr: Address
    auth: bool
    stdio: bool
    venue: str = "sim"
    tokens: TokenStore = field(default_factory=TokenStore)  # same file and scopes as gateway_http
    order_preview_ttl_ms: int | None = 120_000  # None: place_order places at once, no confirm_order


MAX_CONFIRM_TTL_S = 3600


def parse_confirm_ttl(text: str) -> int:
    """Seconds (1..3600) a previewed order may be confirmed, as milliseconds."""
    seconds = int(text)
    if not 1 <= seconds <= MAX_CONFIRM_TTL_S:
        raise ValueError(f"must be 1..{MAX_CONFIRM_TTL_S} seconds, got {seconds}")
    return seconds * 1000


SETTINGS: list[Setting[object]] = [
    Setting("GATEWAY_MCP_ADDR", "127.0.0.1:8765", parse_address, "Streamable HTTP listen address (/mcp)"),
    Setting("PROVIDER_GRPC_ADDR", "127.0.0.1:50051", parse_address, "the provider's gRPC address"),
    Setting(
        "GATEWAY_MCP_AUTH",
        "on",
        parse_on_off,
        "bearer-token auth; off serves read-only tools without a token and needs a loopback address",
    ),
    Setting(
        "VENUE", "sim", parse_choice("sim", "testnet", "live"), "venue: with testnet or live a tokens file is required"
    ),
    Setting("GATEWAY_TOKENS_FILE", None, Path, "bearer tokens file shared with gateway_http"),
    Setting(
        "GATEWAY_MCP_ORDER_PREVIEW",
        "on",
        parse_on_off,
        "place_order previews and confirm_order places; off places at once (for bots)",
    ),
    Setting("GATEWAY_MCP_CONFIRM_TTL", "120", parse_confirm_ttl, "seconds a previewed order may be confirmed"),
]


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> McpGatewayConfig:
    settings = Settings("python -m gateway_mcp", "MCP gateway for AI assistants", SETTINGS)
    settings.parser.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout")
    values, namespace = settings.parse(argv, environ)
    addr, provider_addr = values["GATEWAY_MCP_ADDR"], values["PROVIDER_GRPC_ADDR"]
    assert isinstance(addr, Address) and isinstance(provider_addr, Address)
    auth = bool(values["GATEWAY_MCP_AUTH"])
    if not auth and not addr.is_loopback:
        raise ConfigError(f"GATEWAY_MCP_AUTH=off is refused unless GATEWAY_MCP_ADDR is loopback (got {addr})")
    venue, tokens_file = values["VENUE"], values["GATEWAY_TOKENS_FILE"]
    assert isinstance(venue, str) and (tokens_file is None or isinstance(tokens_file, Path))
    stdio = bool(namespace.stdio)
    # Tokens guard the HTTP transport; stdio is a local pipe and GATEWAY_MCP_AUTH=off serves no token.
    tokens = load_gateway_tokens(tokens_file, venue, required=auth and not stdio)
    ttl_ms = values["GATEWAY_MCP_CONFIRM_TTL"]
    assert isinstance(ttl_ms, int)
    return McpGatewayConfig(
        addr=addr,
        provider_addr=provider_addr,
        auth=auth,
        stdio=stdio,
        venue=venue,
        tokens=tokens,
        order_preview_ttl_ms=ttl_ms if values["GATEWAY_MCP_ORDER_PREVIEW"] else None,
    )
