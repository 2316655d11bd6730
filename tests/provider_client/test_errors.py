"""Decoding the provider's rich gRPC statuses, from bytes and over a real loopback gRPC call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from provider_client.errors import (
    DETAILS_METADATA_KEY,
    ERROR_DOMAIN,
    FieldViolation,
    PreconditionViolation,
    ProviderCallError,
    decode_rpc_error,
    decode_status,
)


def packed(message: Message) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def rich_status(code: int, message: str, *details: Message) -> status_pb2.Status:
    return status_pb2.Status(code=code, message=message, details=[packed(d) for d in details])


def error_info(reason: str, **metadata: str) -> Message:
    info: Message = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    return info


def test_every_detail_kind_is_decoded() -> None:
    status = rich_status(
        code_pb2.FAILED_PRECONDITION,
        "insufficient balance",
        error_info(
            "ERROR_REASON_INSUFFICIENT_BALANCE",
            binance_code="-2010",
            binance_msg="Account has insufficient balance for requested action.",
            retryable="false",
        ),
        error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field="quantity", description="too small")]
        ),
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(type="BALANCE", subject="USDT", description="short")
            ]
        ),
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)),
    )
    decoded = decode_status(
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient balance",
        [("other", "x"), (DETAILS_METADATA_KEY, status.SerializeToString())],
    )
    assert decoded == ProviderCallError(
        status_code=grpc.StatusCode.FAILED_PRECONDITION,
        reason="ERROR_REASON_INSUFFICIENT_BALANCE",
        message="insufficient balance",
        binance_code=-2010,
        binance_msg="Account has insufficient balance for requested action.",
        retryable=False,
        retry_after_ms=2500,
        field_violations=(FieldViolation("quantity", "too small"),),
        precondition_violations=(PreconditionViolation("BALANCE", "USDT", "short"),),
    )


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, False),  # an order may have gone through
        (grpc.StatusCode.INTERNAL, False),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
    ],
)
def test_without_details_the_status_code_decides_retryable(code: grpc.StatusCode, retryable: bool) -> None:
    decoded = decode_status(code, "connection refused")
    assert decoded.reason == "ERROR_REASON_UNSPECIFIED"
    assert decoded.retryable is retryable
    assert decoded.binance_code is None and decoded.binance_msg is None and decoded.retry_after_ms is None


def test_explicit_retryable_wins_over_the_status_code() -> None:
    status = rich_status(code_pb2.UNAVAILABLE, "banned", error_info("ERROR_REASON_IP_BANNED", retryable="false"))
    decoded = decode_status(grpc.StatusCode.UNAVAILABLE, "banned", [(DETAILS_METADATA_KEY, status.SerializeToString())])
    assert decoded.reason == "ERROR_REASON_IP_BANNED"
    assert decoded.retryable is False


def test_garbled_or_odd_details_still_give_code_and_message() -> None:
    decoded = decode_status(grpc.StatusCode.INTERNAL, "boom", [(DETAILS_METADATA_KEY, b"\xff\xff\xff")])
    assert (decoded.status_code, decoded.message, decoded.reason) == (
        grpc.StatusCode.INTERNAL,
        "boom",
        "ERROR_REASON_UNSPECIFIED",
    )
    status = rich_status(code_pb2.INTERNAL, "x", error_info("ERROR_REASON_EXCHANGE_REJECTED", binance_code="abc"))
    decoded = decode_status(grpc.StatusCode.INTERNAL, "x", [(DETAILS_METADATA_KEY, status.SerializeToString())])
    assert decoded.binance_code is None


FAILING_METHOD = "/test.Failing/Fail"


@pytest.fixture
async def failing_server() -> AsyncIterator[str]:
    """A real gRPC server whose one method aborts the way the provider's servicers do."""

    async def fail(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        status = rich_status(
            code_pb2.RESOURCE_EXHAUSTED,
            "too much request weight used",
            error_info(
                "ERROR_REASON_RATE_LIMITED", binance_code="-1003", binance_msg="Too many requests.", retryable="true"
            ),
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3)),
        )
        # what grpcio-status's abort_with_status sends: the rich status in the trailing metadata
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED, status.message, ((DETAILS_METADATA_KEY, status.SerializeToString()),)
        )

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("test.Failing", {"Fail": grpc.unary_unary_rpc_method_handler(fail)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_an_aio_rpc_error_from_a_real_call_is_decoded(failing_server: str) -> None:
    async with grpc.aio.insecure_channel(failing_server) as channel:
        call = channel.unary_unary(FAILING_METHOD, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(b"", timeout=10)
    decoded = decode_rpc_error(raised.value)
    assert decoded == ProviderCallError(
        status_code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        reason="ERROR_REASON_RATE_LIMITED",
        message="too much request weight used",
        binance_code=-1003,
        binance_msg="Too many requests.",
        retryable=True,
        retry_after_ms=3000,
    )
