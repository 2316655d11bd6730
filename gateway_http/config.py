"""The HTTP gateway's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service_runtime.config import Address, Setting, Settings, parse_address


@dataclass(frozen=True)
class HttpGatewayConfig:
    addr: Address
    provider_addr: Address


SETTINGS: list[Setting[object]] = [
    Setting("GATEWAY_HTTP_ADDR", "127.0.0.1:8080", parse_address, "HTTP listen address"),
    Setting("PROVIDER_GRPC_ADDR", "127.0.0.1:50051", parse_address, "the provider's gRPC address"),
]


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> HttpGatewayConfig:
    values, _ = Settings("python -m gateway_http", "REST and WebSocket gateway", SETTINGS).parse(argv, environ)
    addr, provider_addr = values["GATEWAY_HTTP_ADDR"], values["PROVIDER_GRPC_ADDR"]
    assert isinstance(addr, Address) and isinstance(provider_addr, Address)
    return HttpGatewayConfig(addr=addr, provider_addr=provider_addr)
