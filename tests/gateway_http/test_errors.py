"""Provider errors and the gateway's own errors, rendered as one JSON shape with the right status."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway_http.errors import (
    ERROR_SCHEMA,
    ApiError,
    ErrorAnswer,
    GatewayReason,
    errors_middleware,
    provider_error_answer,
)
from provider_client.errors import DETAILS_METADATA_KEY, FieldViolation, ProviderCallError


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.DATA_LOSS, 500),
    ],
)
def test_grpc_status_to_http_status(code: grpc.StatusCode, status: int) -> None:
    assert provider_error_answer(ProviderCallError(code, "ERROR_REASON_UNSPECIFIED", "m")).status == status


def test_binance_code_and_msg_survive_and_the_field_is_named() -> None:
    answer = provider_error_answer(
        ProviderCallError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "ERROR_REASON_FILTER_VIOLATION",
            "quantity below LOT_SIZE minQty",
            binance_code=-1013,
            binance_msg="Filter failure: LOT_SIZE",
            field_violations=(FieldViolation("quantity", "below minQty"), FieldViolation("price", "tick")),
        )
    )
    assert answer.status == 400
    assert answer.body() == {
        "code": -1013,
        "msg": "Filter failure: LOT_SIZE",
        "reason": "ERROR_REASON_FILTER_VIOLATION",
        "retryable": False,
        "retryAfterMs": None,
        "field": "quantity",
    }
    assert "Retry-After" not in answer.all_headers()
    jsonschema.validate(answer.body(), ERROR_SCHEMA)


def test_without_a_binance_message_the_provider_message_is_used() -> None:
    answer = provider_error_answer(
        ProviderCallError(grpc.StatusCode.NOT_FOUND, "ERROR_REASON_UNKNOWN_SYMBOL", "no XYZ")
    )
    assert answer.body()["msg"] == "no XYZ"
    assert answer.body()["code"] is None


@pytest.mark.parametrize(
    ("code", "retry_after_ms", "header"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 2500, "3"),  # rounded up, never early
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, "1"),  # 429 always says when to come back
        (grpc.StatusCode.UNAVAILABLE, 100, "1"),
        (grpc.StatusCode.UNAVAILABLE, None, None),
        (grpc.StatusCode.NOT_FOUND, 5000, None),
    ],
)
def test_retry_after_header(code: grpc.StatusCode, retry_after_ms: int | None, header: str | None) -> None:
    answer = provider_error_answer(
        ProviderCallError(code, "ERROR_REASON_RATE_LIMITED", "m", retryable=True, retry_after_ms=retry_after_ms)
    )
    assert answer.all_headers().get("Retry-After") == header
    assert answer.body()["retryAfterMs"] == retry_after_ms


def rich_rpc_error() -> grpc.aio.AioRpcError:
    info: Message = error_details_pb2.ErrorInfo(
        reason="ERROR_REASON_EXCHANGE_UNAVAILABLE",
        domain="binance.provider.v1",
        metadata={
            "binance_code": "-1001",
            "binance_msg": "Internal error; unable to process your request.",
            "retryable": "true",
        },
    )
    retry: Message = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="venue 5xx")
    status.details.add().Pack(info)
    status.details.add().Pack(retry)
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((DETAILS_METADATA_KEY, status.SerializeToString())),
        "venue 5xx",
        None,
    )


async def raises_rpc_error(request: web.Request) -> web.Response:
    raise rich_rpc_error()


async def raises_api_error(request: web.Request) -> web.Response:
    raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "bad side", field="side")


async def raises_bug(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals /home/user/.ssh")


async def reads_body(request: web.Request) -> web.Response:
    await request.read()  # aiohttp raises 413 here, inside the middleware
    return web.Response()


async def raises_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024)
    app.router.add_get("/rpc", raises_rpc_error)
    app.router.add_get("/api", raises_api_error)
    app.router.add_get("/bug", raises_bug)
    app.router.add_get("/redirect", raises_redirect)
    app.router.add_post("/read", reads_body)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_middleware_translates_a_provider_error_once(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/rpc")
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    assert await response.json() == {
        "code": -1001,
        "msg": "Internal error; unable to process your request.",
        "reason": "ERROR_REASON_EXCHANGE_UNAVAILABLE",
        "retryable": True,
        "retryAfterMs": 1500,
        "field": None,
    }


async def test_middleware_renders_our_own_errors(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/api")
    assert response.status == 400
    body = await response.json()
    assert body == {
        "code": None,
        "msg": "bad side",
        "reason": "INVALID_PARAMETER",
        "retryable": False,
        "retryAfterMs": None,
        "field": "side",
    }


async def test_unexpected_errors_are_500_without_a_traceback(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/bug")
    assert response.status == 500
    text = await response.text()
    assert "secret" not in text and "Traceback" not in text
    body = await response.json()
    assert (body["reason"], body["msg"]) == ("INTERNAL", "internal error")
    assert "secret internals" in caplog.text  # the operator still sees it


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/nowhere", 404, "NOT_FOUND"),
        ("DELETE", "/api", 405, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_router_errors_have_the_same_shape(
    client: TestClient[web.Request, web.Application], method: str, path: str, status: int, reason: str
) -> None:
    response = await client.request(method, path)
    assert response.status == status
    body = await response.json()
    jsonschema.validate(body, ERROR_SCHEMA)
    assert body["reason"] == reason
    if status == 405:
        assert response.headers["Allow"] == "GET,HEAD"


async def test_request_body_too_large_has_the_same_shape(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/read", data=b"x" * 4096)
    assert response.status == 413
    assert (await response.json())["reason"] == "REQUEST_TOO_LARGE"


async def test_redirects_pass_through(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/redirect", allow_redirects=False)
    assert response.status == 302


def test_error_answer_body_matches_the_documented_schema() -> None:
    jsonschema.validate(ErrorAnswer(429, "slow down", "TOO_MANY_REQUESTS", retry_after_ms=10).body(), ERROR_SCHEMA)
