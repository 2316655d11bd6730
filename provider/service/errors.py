"""Provider errors → gRPC status with google.rpc details: the one translation on this hop.

The convention (common.proto): ErrorInfo(reason, domain, metadata binance_code / binance_msg /
retryable), BadRequest for the field at fault, PreconditionFailure, RetryInfo for how long to wait.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from provider import errors as e

log = logging.getLogger(__name__)

DOMAIN = "binance.provider.v1"

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _retry_info(ms: int) -> any_pb2.Any:
    delay = duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)
    return _pack(error_details_pb2.RetryInfo(retry_delay=delay))


def _precondition(kind: str, subject: str, description: str) -> any_pb2.Any:
    violation = error_details_pb2.PreconditionFailure.Violation(type=kind, subject=subject, description=description)
    return _pack(error_details_pb2.PreconditionFailure(violations=[violation]))


def to_status(error: e.ProviderError) -> status_pb2.Status:
    """The gRPC status (with details) a client receives for `error`."""
    metadata = {"retryable": "true" if error.retryable else "false"}
    details: list[any_pb2.Any] = []
    code = code_pb2.INTERNAL
    reason = "ERROR_REASON_UNSPECIFIED"
    retry_ms = getattr(error, "retry_after_ms", None)

    if isinstance(error, e.InvalidArgument):
        code = code_pb2.INVALID_ARGUMENT
        reason = "ERROR_REASON_UNKNOWN_SYMBOL" if error.field == "symbol" and "unknown" in error.message else ""
        if isinstance(error, e.FilterViolation):
            reason = "ERROR_REASON_FILTER_VIOLATION"
            metadata["filter_type"] = error.filter_type
            if error.nearest_valid is not None:
                metadata["nearest_valid"] = error.nearest_valid
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    elif isinstance(error, e.BookNotInSync):
        code = code_pb2.FAILED_PRECONDITION
        reason = "ERROR_REASON_BOOK_OUT_OF_SYNC"
        violation = error_details_pb2.PreconditionFailure.Violation(
            type="BOOK_OUT_OF_SYNC", subject=error.symbol, description=error.message
        )
        details.append(_pack(error_details_pb2.PreconditionFailure(violations=[violation])))
    elif isinstance(error, e.IpBanned):
        code, reason = code_pb2.RESOURCE_EXHAUSTED, "ERROR_REASON_IP_BANNED"
    elif isinstance(error, e.RateLimited):
        code, reason = code_pb2.RESOURCE_EXHAUSTED, "ERROR_REASON_RATE_LIMITED"
        if error.code is not None:
            metadata["binance_code"] = str(error.code)
    elif isinstance(error, e.ExecutionUnknown):
        code, reason = code_pb2.UNAVAILABLE, "ERROR_REASON_EXECUTION_UNKNOWN"
        if error.code is not None:
            metadata["binance_code"] = str(error.code)
    elif isinstance(error, e.ExchangeUnavailable):
        code, reason = code_pb2.UNAVAILABLE, "ERROR_REASON_EXCHANGE_UNAVAILABLE"
    elif isinstance(error, e.BinanceError):
        reason = "ERROR_REASON_EXCHANGE_REJECTED"
        metadata["binance_code"] = str(error.code)
        metadata["binance_msg"] = error.msg
        if error.code == e.CODE_BAD_SYMBOL:
            code, reason = code_pb2.INVALID_ARGUMENT, "ERROR_REASON_UNKNOWN_SYMBOL"
        elif error.code == e.CODE_NO_SUCH_ORDER:
            code = code_pb2.NOT_FOUND
        elif error.is_bad_request:
            code = code_pb2.INVALID_ARGUMENT
        elif error.is_auth_error:
            code = code_pb2.PERMISSION_DENIED
        elif error.retryable or error.http_status >= 500:
            code = code_pb2.UNAVAILABLE
        else:
            code = code_pb2.FAILED_PRECONDITION
    elif isinstance(error, e.TradingDisabled):
        code, reason = code_pb2.FAILED_PRECONDITION, "ERROR_REASON_TRADING_DISABLED"
        details.append(_precondition("TRADING_DISABLED", "trading", error.message))
    elif isinstance(error, e.NotionalLimit):
        code, reason = code_pb2.FAILED_PRECONDITION, "ERROR_REASON_NOTIONAL_LIMIT"
        details.append(_precondition("NOTIONAL_LIMIT", error.symbol, error.message))
    elif isinstance(error, e.InsufficientBalance):
        code, reason = code_pb2.FAILED_PRECONDITION, "ERROR_REASON_INSUFFICIENT_BALANCE"
        metadata.update(binance_code=str(error.code), binance_msg=error.msg, asset=error.asset)
        if error.available is not None:
            metadata["available"] = error.available
        details.append(_precondition("INSUFFICIENT_BALANCE", error.asset, error.message))
    elif isinstance(error, e.CredentialsMissing):
        code, reason = code_pb2.FAILED_PRECONDITION, "ERROR_REASON_NO_CREDENTIALS"
    elif isinstance(error, e.StreamEnded):
        code = code_pb2.UNAVAILABLE
    elif isinstance(error, e.NotBuilt):
        code = code_pb2.UNIMPLEMENTED
    elif isinstance(error, e.UnexpectedResponse):
        code, reason = code_pb2.UNAVAILABLE, "ERROR_REASON_EXCHANGE_UNAVAILABLE"

    if reason:
        details.insert(0, _pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)))
    if isinstance(retry_ms, int) and retry_ms > 0 and error.retryable:
        details.append(_retry_info(retry_ms))
    return status_pb2.Status(code=code, message=error.message, details=details)


async def abort(context: Context, error: e.ProviderError) -> None:
    # grpc-stubs lacks abort_with_status on the asyncio context (grpcio has it).
    await context.abort_with_status(rpc_status.to_status(to_status(error)))  # type: ignore[attr-defined]


def translate_unary(
    method: Callable[[Any, Req, Context], Awaitable[Resp]],
) -> Callable[[Any, Req, Context], Awaitable[Resp]]:
    """Turn a ProviderError raised by a unary servicer method into its gRPC status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except e.ProviderError as error:
            await abort(context, error)
            raise AssertionError("unreachable: abort raises") from error

    return wrapper


def translate_stream(
    method: Callable[[Any, Req, Context], AsyncIterator[Resp]],
) -> Callable[[Any, Req, Context], AsyncIterator[Resp]]:
    """The same for server-streaming methods (errors before or during the stream)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except e.ProviderError as error:
            await abort(context, error)

    return wrapper
