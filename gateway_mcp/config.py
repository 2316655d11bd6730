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
    return McpGatewayConfig(addr=addr, provider_addr=provider_addr, auth=auth, stdio=stdio, venue=venue, tokens=tokens)
