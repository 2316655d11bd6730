"""The provider's gRPC server: services, standard health checking and server reflection."""

from __future__ import annotations

import logging

import grpc
from binance.provider.v1 import (
    account_pb2,
    account_pb2_grpc,
    analytics_pb2,
    analytics_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
    trading_pb2,
    trading_pb2_grpc,
)
from binance.provider.v1 import market_data_pb2_grpc as md_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service_runtime.config import Address

log = logging.getLogger(__name__)

MARKET_DATA = market_data_pb2.DESCRIPTOR.services_by_name["MarketData"]
TRADING = trading_pb2.DESCRIPTOR.services_by_name["Trading"]
ACCOUNT = account_pb2.DESCRIPTOR.services_by_name["Account"]
ANALYTICS = analytics_pb2.DESCRIPTOR.services_by_name["Analytics"]
SERVICES = (MARKET_DATA, TRADING, ACCOUNT, ANALYTICS)

OVERALL = ""  # the health service's name for the server as a whole


class ProviderServer:
    def __init__(
        self,
        address: Address,
        *,
        market_data: md_grpc.MarketDataServicer,
        trading: trading_pb2_grpc.TradingServicer,
        account: account_pb2_grpc.AccountServicer,
        analytics: analytics_pb2_grpc.AnalyticsServicer,
    ) -> None:
        self._address = address
        self._server = grpc.aio.server(
            options=[
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        # grpc-stubs lacks the asyncio health servicer that grpcio-health-checking ships.
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.port = 0
        market_data_pb2_grpc.add_MarketDataServicer_to_server(market_data, self._server)
        trading_pb2_grpc.add_TradingServicer_to_server(trading, self._server)
        account_pb2_grpc.add_AccountServicer_to_server(account, self._server)
        analytics_pb2_grpc.add_AnalyticsServicer_to_server(analytics, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [s.full_name for s in SERVICES]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self._server,
        )

    async def start(self) -> None:
        self.port = self._server.add_insecure_port(str(self._address))
        if self.port == 0:
            raise OSError(f"PROVIDER_GRPC_ADDR: cannot listen on {self._address}")
        await self.set_venue_reachable(False)
        await self._server.start()
        log.info("gRPC listening on %s:%d", self._address.host, self.port)

    async def set_venue_reachable(self, reachable: bool) -> None:
        """Health follows the venue: every service needs the exchange (or its recorded history)."""
        status = health_pb2.HealthCheckResponse.SERVING if reachable else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in (OVERALL, *(service.full_name for service in SERVICES)):
            await self._health.set(name, status)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let running ones finish within `grace` seconds."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
