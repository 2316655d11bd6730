"""Who may call what: bearer-token auth with per-route scopes, CORS, per-token rate limits.

Tokens: `Authorization: Bearer <token>`. Browsers cannot set headers on a WebSocket, so a
WebSocket upgrade may instead carry the token as a subprotocol pair: the client offers
`new WebSocket(url, ["bearer", token])`, which sends `Sec-WebSocket-Protocol: bearer, <token>`;
the server selects only `bearer` (pass `protocols=websocket_protocols(request)`), so the secret is never echoed.
Tokens in URLs are never accepted: URLs end up in logs.

Each route declares its scope where it is registered (`Api.route(..., scope=...)`); `None` is
public. A route added to the router without the registry is fail-closed: it needs a token
holding every scope. 401 (with WWW-Authenticate: Bearer) for a missing or unknown token, 403
for a missing scope, 429 with Retry-After when a token exceeds its rate.

CORS: only origins in GATEWAY_HTTP_CORS_ORIGINS are echoed (with Vary: Origin); preflight
OPTIONS requests are answered here, before auth. No cookies are used, so credentials are
never allowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from gateway_auth.tokens import Principal, Scope, TokenStore
from gateway_http.errors import ApiError, GatewayReason
from gateway_http.openapi import Api

REALM = "binance-spot-gateway"
WS_AUTH_SUBPROTOCOL = "bearer"
PRINCIPAL = web.RequestKey("principal", Principal)
CORS_ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_ALLOWED_HEADERS = "Authorization, Content-Type"
CORS_EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"
CORS_MAX_AGE_SECONDS = "600"


# --- tokens -------------------------------------------------------------------------------------


def _offered_subprotocols(request: web.Request) -> list[str]:
    header = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
    return [part.strip() for part in header.split(",") if part.strip()]


def is_websocket_upgrade(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def presented_token(request: web.Request) -> str | None:
    """The bearer token of a request, or None. Raises 401 for a malformed Authorization header."""
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
            raise _unauthenticated("expected `Authorization: Bearer <token>`", "invalid_request")
        return token.strip()
    if is_websocket_upgrade(request):
        offered = _offered_subprotocols(request)
        if WS_AUTH_SUBPROTOCOL in offered:
            index = offered.index(WS_AUTH_SUBPROTOCOL)
            if index + 1 < len(offered):
                return offered[index + 1]
    return None


def websocket_protocols(request: web.Request) -> tuple[str, ...]:
    """What to pass as `web.WebSocketResponse(protocols=...)`: selects `bearer` when the client
    offered it (browsers fail the handshake if offered subprotocols go unanswered), never the token."""
    return (WS_AUTH_SUBPROTOCOL,) if WS_AUTH_SUBPROTOCOL in _offered_subprotocols(request) else ()


def _unauthenticated(msg: str, error: str | None = None) -> ApiError:
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    return ApiError.of(401, GatewayReason.UNAUTHENTICATED, msg, headers={hdrs.WWW_AUTHENTICATE: challenge})


def _insufficient_scope(scope: Scope) -> ApiError:
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope.value}"'
    return ApiError.of(
        403,
        GatewayReason.INSUFFICIENT_SCOPE,
        f"this token lacks the {scope.value!r} scope",
        headers={hdrs.WWW_AUTHENTICATE: challenge},
    )


def auth_middleware(tokens: TokenStore, api: Api) -> Middleware:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)  # no route (404/405): nothing to protect
        operation = api.operation_for(request)
        if operation is None:
            needed = tuple(Scope)  # unregistered route: fail closed
        elif operation.scope is None:
            return await handler(request)
        else:
            needed = (operation.scope,)
        token = presented_token(request)
        if token is None:
            raise _unauthenticated("a bearer token is required")
        principal = tokens.authenticate(token)
        if principal is None:
            raise _unauthenticated("unknown token", "invalid_token")
        for scope in needed:
            if not principal.allows(scope):
                raise _insufficient_scope(scope)
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate


# --- rate limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """Sustained requests per second and the burst allowed above it, per token."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")


def parse_rate_limit(text: str) -> RateLimit | None:
    """`RATE,BURST` (e.g. `20,40`) or `off`."""
    if text.strip().lower() == "off":
        return None
    rate_text, sep, burst_text = text.partition(",")
    try:
        rate = float(rate_text)
        burst = int(burst_text) if sep else max(1, int(rate))
    except ValueError:
        raise ValueError(f"expected RATE,BURST (requests per second, burst) or off, got {text!r}") from None
    return RateLimit(rate, burst)


@dataclass
class TokenBucket:
    """A token bucket (pure: the caller passes the time)."""

    limit: RateLimit
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0.0 if a request may pass now (and counts it), else seconds until one may."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_second


@dataclass
class RateLimiter:
    """One bucket per token name (bounded: names come from the tokens file)."""

    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def wait_seconds(self, key: str) -> float:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.limit, float(self.limit.burst), now)
        return bucket.take(now)


class RequestLimiter(Protocol):
    """What the rate-limit middleware needs: `RateLimiter` in one process, the shared one over workers."""

    @property
    def limit(self) -> RateLimit: ...

    def wait_seconds(self, key: str) -> float: ...


def rate_limit_middleware(limiter: RequestLimiter) -> Middleware:
    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        principal = request.get(PRINCIPAL)
        if principal is not None:  # public routes are not limited per token
            wait = limiter.wait_seconds(principal.name)
            if wait > 0:
                raise ApiError.of(
                    429,
                    GatewayReason.TOO_MANY_REQUESTS,
                    f"rate limit of {limiter.limit.per_second:g}/s (burst {limiter.limit.burst}) exceeded",
                    retry_after_ms=max(1, round(wait * 1000)),
                )
        return await handler(request)

    return limit


# --- WebSocket connection limits ----------------------------------------------------------------

WS_REFUSAL_RETRY_MS = 1000  # a slot frees when a client leaves; no better estimate exists


@dataclass(frozen=True)
class WsLimits:
    """How many WebSocket clients may be open at once: in total, and per token."""

    total: int
    per_token: int

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_token < 1:
            raise ValueError("WebSocket limits are at least 1")


def parse_ws_limits(text: str) -> WsLimits:
    """`TOTAL,PER_TOKEN` (e.g. `4096,256`); a single number limits both."""
    total_text, sep, per_token_text = text.partition(",")
    try:
        total = int(total_text)
        per_token = int(per_token_text) if sep else total
    except ValueError:
        raise ValueError(f"expected TOTAL,PER_TOKEN (open WebSocket clients), got {text!r}") from None
    return WsLimits(total, per_token)


def ws_token_full(limits: WsLimits) -> ApiError:
    return ApiError.of(
        429,
        GatewayReason.TOO_MANY_CONNECTIONS,
        f"this token already has {limits.per_token} WebSocket clients open (the limit)",
        retry_after_ms=WS_REFUSAL_RETRY_MS,
    )


def ws_gateway_full(limits: WsLimits) -> ApiError:
    return ApiError.of(
        503,
        GatewayReason.TOO_MANY_CONNECTIONS,
        f"the gateway already serves {limits.total} WebSocket clients (the limit)",
        retry_after_ms=WS_REFUSAL_RETRY_MS,
    )


@dataclass
class WsConnections:
    """Open WebSocket clients counted per token name. `acquire` refuses over a limit; `release` undoes it."""

    limits: WsLimits
    open_total: int = 0
    _by_token: dict[str, int] = field(default_factory=dict)

    def acquire(self, key: str) -> None:
        """Count one client of `key`, or raise 429 (this token is at its limit) / 503 (the gateway is full)."""
        if self._by_token.get(key, 0) >= self.limits.per_token:
            raise ws_token_full(self.limits)
        if self.open_total >= self.limits.total:
            raise ws_gateway_full(self.limits)
        self._by_token[key] = self._by_token.get(key, 0) + 1
        self.open_total += 1

    def release(self, key: str) -> None:
        count = self._by_token.get(key, 0)
        if count <= 0:
            raise ValueError(f"no WebSocket client of {key!r} is counted")
        if count == 1:
            del self._by_token[key]  # bounded by the live clients, not by every token ever seen
        else:
            self._by_token[key] = count - 1
        self.open_total -= 1

    def open_for(self, key: str) -> int:
        return self._by_token.get(key, 0)


class ConnectionCounter(Protocol):
    """What the WebSocket routes need: `WsConnections` in one process, the shared one over workers."""

    def acquire(self, key: str) -> None: ...

    def release(self, key: str) -> None: ...


# --- CORS ---------------------------------------------------------------------------------------


def parse_origins(text: str) -> tuple[str, ...]:
    """Comma-separated `scheme://host[:port]` origins, exactly as browsers send them."""
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError(f"expected origins like https://app.example.com, got {origin!r}")
    return origins


def cors_middleware(origins: Sequence[str]) -> Middleware:
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if (
            request.method == hdrs.METH_OPTIONS
            and origin is not None
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        ):
            preflight = web.Response(status=204, headers={hdrs.VARY: "Origin"})
            if origin in allowed:
                preflight.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
                preflight.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = CORS_ALLOWED_METHODS
                preflight.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = CORS_ALLOWED_HEADERS
                preflight.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = CORS_MAX_AGE_SECONDS
            return preflight
        response = await handler(request)
        if response.prepared:  # a WebSocket or stream already sent its headers
            return response
        response.headers.add(hdrs.VARY, "Origin")
        if origin is not None and origin in allowed:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSED_HEADERS
        return response

    return cors
