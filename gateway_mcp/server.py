"""The MCP server: tools over the provider's gRPC API, on the official `mcp` SDK."""

from __future__ import annotations

import socket
import time

import grpc
from mcp.server.auth.settings import AuthSettings
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import INVALID_REQUEST, ToolAnnotations
from mcp_types.version import SUPPORTED_PROTOCOL_VERSIONS
from pydantic import AnyHttpUrl, BaseModel, Field
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from gateway_auth.tokens import Scope
from gateway_mcp.auth import AccessPolicy, ScopeGuard, TokenFileVerifier, ToolScopes
from gateway_mcp.confirmations import DEFAULT_TTL_MS, ConfirmationBook
from gateway_mcp.tools_account import register_account_tools
from gateway_mcp.tools_analytics import register_analytics_tools
from gateway_mcp.tools_market import register_market_tools
from gateway_mcp.tools_trading import OrderParams, TradingGate, register_trading_tools
from provider_client.health import check_provider
from service_runtime.config import Address

MCP_PATH = "/mcp"
PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
# A client that vanishes without DELETE leaves its session behind; it is closed after this long
# without a request, so abandoned sessions never pile up against MAX_SESSIONS.
SESSION_IDLE_TIMEOUT_S = 600.0
MAX_SESSIONS = 1000
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

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


def build_server(
    channel: grpc.aio.Channel,
    access: AccessPolicy,
    *,
    base_url: str = "http://127.0.0.1",
    order_preview_ttl_ms: int | None = DEFAULT_TTL_MS,
) -> MCPServer:
    """The MCP server with every tool, guarded by `access` (tokens on HTTP, or read-only without).
    `base_url` is where this gateway is reached; the SDK's auth settings need one.
    `order_preview_ttl_ms`: how long a previewed order may be confirmed; None places orders at once."""
    started_at = time.monotonic()
    verifier = TokenFileVerifier(access.tokens) if access.tokens is not None else None
    server = MCPServer(
        name="binance-spot-gateway",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        token_verifier=verifier,
        # Resource-server mode only: no OAuth endpoints, no metadata routes; issuer_url is required but unused.
        auth=AuthSettings(issuer_url=AnyHttpUrl(base_url), resource_server_url=None) if verifier is not None else None,
        # tools/list differs per token: never let a cache share it across callers.
        cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
    )
    scopes: dict[str, Scope | None] = {"service_status": None}

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
    scopes.update(dict.fromkeys(register_market_tools(server, channel), Scope.READ))
    scopes.update(dict.fromkeys(register_analytics_tools(server, channel), Scope.READ))
    scopes.update(dict.fromkeys(register_account_tools(server, channel), Scope.ACCOUNT))
    previews = ConfirmationBook[OrderParams](order_preview_ttl_ms) if order_preview_ttl_ms is not None else None
    trading = register_trading_tools(server, channel, previews)
    scopes.update(dict.fromkeys(trading, Scope.TRADE))
    # Outside ScopeGuard: the provider is asked about trading only for callers that may trade.
    server.middleware.append(TradingGate(channel, trading))
    server.middleware.append(ScopeGuard(access, ToolScopes(scopes)))
    return server


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def transport_security(addr: Address) -> TransportSecuritySettings:
    """Host and Origin checks against DNS rebinding: loopback names, plus the bound address (or, on a
    wildcard bind, this machine's name). A browser page from any other origin is refused with 403."""
    hosts = list(_LOOPBACK_HOSTS)
    if addr.host in ("0.0.0.0", "::"):
        hosts.append(socket.gethostname())
    elif not addr.is_loopback:
        hosts.append(_host(addr.host))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:*" for h in hosts],
        allowed_origins=[f"{scheme}://{h}:*" for h in hosts for scheme in ("http", "https")],
    )


class ProtocolVersionGate:
    """400 naming the supported versions for an MCP-Protocol-Version this server does not speak.
    (The SDK also answers 400, but its message is about a missing `_meta` envelope.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == MCP_PATH:
            version = Headers(scope=scope).get(PROTOCOL_VERSION_HEADER)
            if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
                supported = list(SUPPORTED_PROTOCOL_VERSIONS)
                error = {
                    "code": INVALID_REQUEST,
                    "message": f"Unsupported MCP-Protocol-Version {version!r}; supported: {', '.join(supported)}",
                    "data": {"supported": supported, "requested": version},
                }
                response = JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_http_app(
    server: MCPServer, addr: Address, *, session_idle_timeout: float = SESSION_IDLE_TIMEOUT_S
) -> Starlette:
    """Streamable HTTP at /mcp (SSE answers to POSTs, sessions with Mcp-Session-Id), plus /health."""
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        session_idle_timeout=session_idle_timeout,
        max_sessions=MAX_SESSIONS,
        transport_security=transport_security(addr),
        host=addr.host,
    )
    app.add_middleware(ProtocolVersionGate)
    return app
