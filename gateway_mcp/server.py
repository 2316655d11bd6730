"""The MCP server: tools over the provider's gRPC API, on the official `mcp` SDK."""

from __future__ import annotations

import time

import grpc
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provider_client.health import check_provider

INSTRUCTIONS = (
    "Binance Spot market data, order books, analytics and (when enabled) trading, served by a "
    "gateway in front of a provider that owns the exchange connection. Call service_status first "
    "if a tool fails with an unavailable error."
)


class ServiceStatus(BaseModel):
    """The provider's health as the gateway sees it."""

    provider_status: str = Field(description="SERVING, NOT_SERVING or UNREACHABLE")
    provider_latency_ms: float = Field(description="round trip of the health check")
    services: dict[str, str] = Field(description="health of each provider service")
    error: str = Field(default="", description="why the provider could not be reached, if it could not")


def build_server(channel: grpc.aio.Channel) -> MCPServer:
    started_at = time.monotonic()
    server = MCPServer(name="binance-spot-gateway", instructions=INSTRUCTIONS, version="0.1.0")

    @server.tool(
        name="service_status",
        title="Service status",
        description=(
            "Report whether the market-data provider behind this gateway is reachable and which of "
            "its services (MarketData, Trading, Account, Analytics) are serving."
        ),
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def service_status() -> ServiceStatus:
        health = await check_provider(channel)
        return ServiceStatus(
            provider_status=health.status,
            provider_latency_ms=round(health.latency_ms, 2),
            services=health.services,
            error=health.error,
        )

    async def health(request: Request) -> Response:
        provider = await check_provider(channel)
        body = {
            "status": "ok" if provider.serving else "degraded",
            "gateway": {"name": "gateway_mcp", "uptimeSeconds": round(time.monotonic() - started_at, 1)},
            "provider": provider.as_dict(),
        }
        return JSONResponse(body, status_code=200 if provider.serving else 503)

    server.custom_route("/health", methods=["GET"])(health)
    return server
