"""The gRPC channel to the provider: reconnects on its own, with capped backoff and keepalive."""

from __future__ import annotations

import grpc

from service_runtime.config import Address

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def open_channel(target: Address) -> grpc.aio.Channel:
    """A lazily connecting channel; calls made while the provider is down fail fast (UNAVAILABLE)
    and the channel keeps trying to reconnect in the background."""
    return grpc.aio.insecure_channel(str(target), options=CHANNEL_OPTIONS)
