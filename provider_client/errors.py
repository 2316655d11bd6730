"""The provider's errors as a gateway sees them: a gRPC status with google.rpc details, decoded once.

The provider's convention (protos/binance/provider/v1/common.proto): ErrorInfo with the reason
(an ErrorReason name such as "ERROR_REASON_RATE_LIMITED") and metadata binance_code,
binance_msg, retryable; BadRequest field violations; PreconditionFailure; RetryInfo. Each
gateway turns the decoded `ProviderCallError` into its own answer (HTTP status, MCP tool error).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

DETAILS_METADATA_KEY = "grpc-status-details-bin"  # where grpcio-status puts google.rpc.Status
ERROR_DOMAIN = "binance.provider.v1"
UNSPECIFIED_REASON = "ERROR_REASON_UNSPECIFIED"

# Without an explicit "retryable" from the provider (for example the channel itself failed),
# only these are safe to retry: the call did not reach, or was refused before, any exchange effect.
_RETRYABLE_BY_DEFAULT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
_KNOWN_METADATA = frozenset({"binance_code", "binance_msg", "retryable"})


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


@dataclass(frozen=True)
class ProviderCallError:
    """A failed provider call, decoded: a value, not an exception (gateways raise their own)."""

    status_code: grpc.StatusCode
    reason: str  # an ErrorReason name; ERROR_REASON_UNSPECIFIED when the status carried no ErrorInfo
    message: str
    binance_code: int | None = None
    binance_msg: str | None = None
    retryable: bool = False
    retry_after_ms: int | None = None
    field_violations: tuple[FieldViolation, ...] = ()
    precondition_violations: tuple[PreconditionViolation, ...] = ()
    # ErrorInfo metadata beyond code/msg/retryable, e.g. filter_type, nearest_valid, asset, available.
    extra: Mapping[str, str] = field(default_factory=dict)


def _rich_status(trailing_metadata: Iterable[tuple[str, str | bytes]]) -> status_pb2.Status | None:
    for key, value in trailing_metadata:
        if key == DETAILS_METADATA_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None  # a garbled detail must not hide the status code and message
    return None


def decode_status(
    code: grpc.StatusCode, message: str, trailing_metadata: Iterable[tuple[str, str | bytes]] = ()
) -> ProviderCallError:
    """Decode a status code, its message and trailing metadata (which may hold the rich status)."""
    rich = _rich_status(trailing_metadata)
    reason = UNSPECIFIED_REASON
    binance_code: int | None = None
    binance_msg: str | None = None
    retryable: bool | None = None
    retry_after_ms: int | None = None
    fields: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    extra: dict[str, str] = {}
    for detail in rich.details if rich is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason or UNSPECIFIED_REASON
            metadata = dict(info.metadata)
            binance_code = _int_or_none(metadata.get("binance_code"))
            binance_msg = metadata.get("binance_msg") or None
            if "retryable" in metadata:
                retryable = metadata["retryable"].strip().lower() == "true"
            extra = {k: v for k, v in metadata.items() if k not in _KNOWN_METADATA}
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            preconditions.extend(PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after_ms = retry.retry_delay.seconds * 1000 + retry.retry_delay.nanos // 1_000_000
    return ProviderCallError(
        status_code=code,
        reason=reason,
        message=message,
        binance_code=binance_code,
        binance_msg=binance_msg,
        retryable=code in _RETRYABLE_BY_DEFAULT if retryable is None else retryable,
        retry_after_ms=retry_after_ms,
        field_violations=tuple(fields),
        precondition_violations=tuple(preconditions),
        extra=extra,
    )


def decode_rpc_error(error: grpc.RpcError) -> ProviderCallError:
    """Decode what a failed call raised (grpc.aio.AioRpcError or a sync grpc.RpcError)."""
    # At run time the items are (key, value) pairs (namedtuples in sync gRPC, tuples in aio);
    # grpc-stubs types them as objects with .key/.value only.
    metadata = cast(Iterable[tuple[str, str | bytes]], error.trailing_metadata() or ())
    return decode_status(error.code(), error.details() or "", metadata)


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
