"""Asks the provider's standard health service how it is, with a deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROVIDER_SERVICES = (
    "binance.provider.v1.MarketData",
    "binance.provider.v1.Trading",
    "binance.provider.v1.Account",
    "binance.provider.v1.Analytics",
)


@dataclass(frozen=True)
class ProviderHealth:
    status: str  # SERVING, NOT_SERVING, UNREACHABLE, ...
    latency_ms: float
    services: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": self.status,
            "latencyMs": round(self.latency_ms, 2),
            "services": self.services,
        }
        if self.error:
            body["error"] = self.error
        return body


def _status_name(response: health_pb2.HealthCheckResponse) -> str:
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def check_provider(channel: grpc.aio.Channel, timeout: float = 2.0) -> ProviderHealth:
    stub = health_pb2_grpc.HealthStub(channel)
    started = time.monotonic()
    try:
        overall = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        services = {}
        for name in PROVIDER_SERVICES:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=timeout)
            services[name] = _status_name(response)
    except grpc.aio.AioRpcError as exc:
        return ProviderHealth(
            "UNREACHABLE", (time.monotonic() - started) * 1000, error=f"{exc.code().name}: {exc.details()}"
        )
    return ProviderHealth(_status_name(overall), (time.monotonic() - started) * 1000, services)
