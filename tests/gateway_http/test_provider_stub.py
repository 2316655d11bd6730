"""A route's provider stub is built once per channel and follows the application's channel."""

from __future__ import annotations

from typing import cast

import grpc
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway_http.provider_stub import ProviderStub

CHANNEL = web.AppKey("channel", grpc.aio.Channel)


def request_on(channel: object) -> web.Request:
    app = web.Application()
    app[CHANNEL] = cast(grpc.aio.Channel, channel)
    return make_mocked_request("GET", "/", app=app)


def test_one_stub_per_channel_however_many_requests() -> None:
    built: list[object] = []

    def make(channel: grpc.aio.Channel) -> tuple[str, object]:
        built.append(channel)
        return ("stub", channel)

    stub = ProviderStub(CHANNEL, make)
    first, second = object(), object()
    answers = [stub(request_on(first)) for _ in range(3)]
    assert answers == [("stub", first)] * 3 and built == [first]
    assert stub(request_on(second)) == ("stub", second)  # another app's channel: a stub of its own
    assert built == [first, second]
