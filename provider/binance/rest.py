"""Binance Spot REST client (the provider's only HTTP path to the exchange)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from provider.errors import ExchangeUnavailable

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)


class RestClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = session

    async def _get_public(self, path: str) -> Any:
        url = self._base_url + path
        try:
            async with self._session.get(url, timeout=DEFAULT_TIMEOUT) as response:
                body = await response.read()
                if response.status != 200:
                    raise ExchangeUnavailable(f"GET {path}: HTTP {response.status} {body[:200]!r}")
                return orjson.loads(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ExchangeUnavailable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise ExchangeUnavailable(f"GET {path}: invalid JSON: {exc}") from exc

    async def ping(self) -> None:
        await self._get_public("/api/v3/ping")

    async def server_time(self) -> int:
        body = await self._get_public("/api/v3/time")
        try:
            return int(body["serverTime"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeUnavailable(f"GET /api/v3/time: unexpected body {body!r}") from exc
