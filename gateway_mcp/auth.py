"""Who may use which tool.

On HTTP the gateway checks `Authorization: Bearer <token>` against the tokens file it shares with
gateway_http (the SDK's bearer middleware answers 401 before any MCP handling, and binds each
session to the token name that opened it). Each tool declares the scope it needs; a caller sees
only the tools its scopes allow and is refused the others if it calls them anyway. Without tokens
(GATEWAY_MCP_AUTH=off on loopback, or stdio) a caller gets `anonymous_scopes`: read only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.types import CallToolResult, TextContent
from starlette.requests import Request

from gateway_auth.tokens import Scope, TokenStore, hash_token, sorted_scopes


@dataclass(frozen=True)
class AccessPolicy:
    """How callers are identified on one transport and what a caller without a token may use."""

    tokens: TokenStore | None  # None: no bearer tokens on this transport
    anonymous_scopes: frozenset[Scope] = frozenset()

    @classmethod
    def bearer(cls, tokens: TokenStore) -> AccessPolicy:
        return cls(tokens=tokens)

    @classmethod
    def without_tokens(cls) -> AccessPolicy:
        """GATEWAY_MCP_AUTH=off (loopback only) and stdio: market data and analytics, nothing private."""
        return cls(tokens=None, anonymous_scopes=frozenset({Scope.READ}))


class TokenFileVerifier:
    """The SDK's TokenVerifier over the shared tokens file."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = self._tokens.authenticate(token)
        if principal is None:
            return None
        # The digest, not the token: nothing downstream needs the secret itself.
        return AccessToken(token=hash_token(token), client_id=principal.name, scopes=sorted_scopes(principal.scopes))


@dataclass(frozen=True)
class ToolScopes:
    """The scope each tool needs. `None`: any caller the transport admitted (service_status).
    A tool missing from the map needs every scope (fail closed)."""

    required: Mapping[str, Scope | None] = field(default_factory=dict)

    def allows(self, tool: str, scopes: frozenset[Scope]) -> bool:
        if tool not in self.required:
            return scopes >= frozenset(Scope)
        needed = self.required[tool]
        return needed is None or needed in scopes

    def refusal(self, tool: str) -> str:
        needed = self.required.get(tool)
        if isinstance(needed, Scope):
            return (
                f"Tool {tool!r} is not available to this caller: it needs the {needed.value!r} scope, which this "
                "token does not grant. Use only the tools listed by tools/list."
            )
        return f"Unknown or unavailable tool {tool!r}. Use only the tools listed by tools/list."


ANONYMOUS_CALLER = "anonymous"


def _access_token(request: object) -> AccessToken | None:
    user = request.scope.get("user") if isinstance(request, Request) else None
    return user.access_token if isinstance(user, AuthenticatedUser) else get_access_token()


def caller_identity(request: object) -> str:
    """Who is calling, for binding state to a caller: the digest of their bearer token (never the
    token itself), or ANONYMOUS_CALLER without one (stdio, GATEWAY_MCP_AUTH=off)."""
    token = _access_token(request)
    return f"token:{token.token}" if token is not None else ANONYMOUS_CALLER


def caller_scopes(policy: AccessPolicy, request: object) -> frozenset[Scope]:
    """The scopes of the caller: from the HTTP request the message came with (the bearer middleware put
    the token there), else from the SDK's context var; stdio has neither."""
    token = _access_token(request)
    if token is None:
        # With tokens the bearer middleware already refused token-less requests; stay closed anyway.
        return policy.anonymous_scopes if policy.tokens is None else frozenset()
    granted: set[Scope] = set()
    for name in token.scopes:
        try:
            granted.add(Scope(name))
        except ValueError:
            continue  # a scope this gateway does not know grants nothing
    return frozenset(granted)


class ScopeGuard(ServerMiddleware[Any]):
    """Hides from tools/list the tools a caller may not use, and refuses tools/call for them."""

    def __init__(self, policy: AccessPolicy, scopes: ToolScopes) -> None:
        self._policy = policy
        self._scopes = scopes

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call":
            name = ctx.params.get("name") if ctx.params else None
            if isinstance(name, str) and not self._scopes.allows(name, caller_scopes(self._policy, ctx.request)):
                return CallToolResult(
                    content=[TextContent(type="text", text=self._scopes.refusal(name))], is_error=True
                )
            return await call_next(ctx)
        if ctx.method == "tools/list":
            result = await call_next(ctx)
            scopes = caller_scopes(self._policy, ctx.request)
            listed = result.get("tools") if isinstance(result, dict) else None
            if not isinstance(result, dict) or not isinstance(listed, list):
                raise TypeError(f"tools/list returned {type(result).__name__}; cannot filter it by scope")
            tools = [t for t in listed if isinstance(t, dict) and self._scopes.allows(str(t.get("name")), scopes)]
            return {**result, "tools": tools}
        return await call_next(ctx)
