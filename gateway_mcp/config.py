"""The MCP gateway's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service_runtime.config import Address, ConfigError, Setting, Settings, parse_address, parse_on_off


@dataclass(frozen=True)
class McpGatewayConfig:
    addr: Address
    provider_addr: Address
    auth: bool
    stdio: bool


SETTINGS: list[Setting[object]] = [
    Setting("GATEWAY_MCP_ADDR", "127.0.0.1:8765", parse_address, "Streamable HTTP listen address (/mcp)"),
    Setting("PROVIDER_GRPC_ADDR", "127.0.0.1:50051", parse_address, "the provider's gRPC address"),
    Setting(
        "GATEWAY_MCP_AUTH",
        "on",
        parse_on_off,
        "bearer-token auth; off serves read-only tools without a token and needs a loopback address",
    ),
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
    return McpGatewayConfig(addr=addr, provider_addr=provider_addr, auth=auth, stdio=bool(namespace.stdio))
