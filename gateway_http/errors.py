"""Errors -> HTTP: the gateway's one translation of provider errors, and the shape of every error body.

Every error answer is JSON with the same keys, whoever produced it:
`{"code": <Binance's code or null>, "msg": "...", "reason": "...", "retryable": bool,
"retryAfterMs": <int or null>, "field": <parameter name or null>}`.
`code` and `msg` are Binance's own when the exchange produced the error (so clients that parse
Binance errors keep working); `reason` is the provider's ErrorReason name (ERROR_REASON_*) or,
for errors of this gateway, one of `GatewayReason`.

gRPC status -> HTTP: INVALID_ARGUMENT 400, NOT_FOUND 404, FAILED_PRECONDITION 409 (the request
is well formed but the current state refuses it: insufficient balance, book resynchronising;
`reason` says which), PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503,
DEADLINE_EXCEEDED 504, UNIMPLEMENTED 501, anything else 500. 429 and 503 carry Retry-After
(seconds, rounded up) when the wait is known; 429 always does.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler

from provider_client.errors import ProviderCallError, decode_rpc_error

log = logging.getLogger("gateway_http.errors")


class GatewayReason(StrEnum):
    """`reason` of errors the gateway itself produces (provider errors keep their ERROR_REASON_*)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    INVALID_PARAMETER = "INVALID_PARAMETER"
    BAD_REQUEST = "BAD_REQUEST"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    INTERNAL = "INTERNAL"


STATUS_BY_GRPC_CODE: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}

_REASON_BY_HTTP_STATUS: Mapping[int, GatewayReason] = {
    400: GatewayReason.BAD_REQUEST,
    404: GatewayReason.NOT_FOUND,
    405: GatewayReason.METHOD_NOT_ALLOWED,
    413: GatewayReason.REQUEST_TOO_LARGE,
}

# JSON Schema of every error body, for the OpenAPI document.
ERROR_SCHEMA: Mapping[str, object] = {
    "type": "object",
    "required": ["code", "msg", "reason", "retryable", "retryAfterMs", "field"],
    "properties": {
        "code": {"type": ["integer", "null"], "description": "Binance's error code when the exchange produced it"},
        "msg": {"type": "string", "description": "Binance's message when it produced the error, else ours"},
        "reason": {"type": "string", "description": "ERROR_REASON_* from the provider, or the gateway's own"},
        "retryable": {"type": "boolean", "description": "whether the same request may succeed if retried"},
        "retryAfterMs": {"type": ["integer", "null"], "description": "how long to wait before retrying"},
        "field": {"type": ["string", "null"], "description": "the request parameter that was wrong"},
        "details": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "present when the provider said more, e.g. filterType and nearestValid (the closest "
            "value that passes the filter) for ERROR_REASON_FILTER_VIOLATION, asset and available for "
            "ERROR_REASON_INSUFFICIENT_BALANCE",
        },
    },
    "additionalProperties": False,
}


def retry_after_seconds(retry_after_ms: int) -> int:
    return max(1, math.ceil(retry_after_ms / 1000))


@dataclass(frozen=True)
class ErrorAnswer:
    """One error as the client receives it: status, headers and the JSON body."""

    status: int
    msg: str
    reason: str
    code: int | None = None
    retryable: bool = False
    retry_after_ms: int | None = None
    field: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    details: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "code": self.code,
            "msg": self.msg,
            "reason": self.reason,
            "retryable": self.retryable,
            "retryAfterMs": self.retry_after_ms,
            "field": self.field,
        }
        if self.details:
            body["details"] = dict(self.details)
        return body

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.status == 429 or (self.status == 503 and self.retry_after_ms is not None):
            headers["Retry-After"] = str(retry_after_seconds(self.retry_after_ms or 1000))
        return headers

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.all_headers())


class ApiError(Exception):
    """Raised by the gateway's own code (auth, parameters, handlers); rendered by `errors_middleware`."""

    def __init__(self, answer: ErrorAnswer) -> None:
        super().__init__(answer.msg)
        self.answer = answer

    @classmethod
    def of(
        cls,
        status: int,
        reason: GatewayReason,
        msg: str,
        *,
        field: str | None = None,
        retry_after_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiError:
        retryable = status in (429, 503)
        return cls(ErrorAnswer(status, msg, reason.value, None, retryable, retry_after_ms, field, dict(headers or {})))


def provider_error_answer(error: ProviderCallError) -> ErrorAnswer:
    """The single provider -> HTTP translation."""
    status = STATUS_BY_GRPC_CODE.get(error.status_code, 500)
    violation = error.field_violations[0] if error.field_violations else None
    msg = error.binance_msg or error.message or error.status_code.name
    return ErrorAnswer(
        status=status,
        msg=msg,
        reason=error.reason,
        code=error.binance_code,
        retryable=error.retryable,
        retry_after_ms=error.retry_after_ms,
        field=violation.field if violation else None,
        details={_camel(key): value for key, value in error.extra.items()},
    )


def _camel(name: str) -> str:
    """The provider's snake_case metadata keys in the JSON bodies' camelCase (nearest_valid -> nearestValid)."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def http_exception_answer(exc: web.HTTPException) -> ErrorAnswer:
    """aiohttp's own 4xx/5xx (no route, wrong method, body too large) in our error shape."""
    headers = {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}
    reason = _REASON_BY_HTTP_STATUS.get(exc.status, GatewayReason.INTERNAL if exc.status >= 500 else None)
    return ErrorAnswer(
        status=exc.status,
        msg=exc.reason,
        reason=(reason or GatewayReason.BAD_REQUEST).value,
        retryable=exc.status in (429, 503),
        headers=headers,
    )


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error the same way; never a traceback in a response."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.answer.response()
    except grpc.RpcError as exc:
        return provider_error_answer(decode_rpc_error(exc)).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        return http_exception_answer(exc).response()
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.rel_url.path)
        return ErrorAnswer(500, "internal error", GatewayReason.INTERNAL.value).response()
