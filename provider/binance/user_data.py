"""User data over the Binance WebSocket API (reference §9): subscribe, keep the account view, fan out.

The shell around pure parts: `ws_api_wire` builds requests and parses frames, `AccountState`
keeps balances and open orders, `Backoff` paces reconnects. One owned task connects, subscribes
(``userDataStream.subscribe.signature`` for HMAC keys; ``session.logon`` + ``userDataStream.subscribe``
for Ed25519), reconciles from REST (``account`` + ``openOrders``) after every (re)subscribe — events
during a gap are lost (§9.3) — and routes events. The connection is replaced on loss,
``eventStreamTerminated``, ``serverShutdown``, a missed pong (aiohttp heartbeat) or before the
24 h lifetime ends.

Subscribers get bounded queues: one that falls behind loses its backlog, and is told so with a
LAGGED status followed by the current balances; it never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aiohttp

from provider.account.model import (
    AccountInfo,
    AccountPositionEvent,
    BalanceDeltaEvent,
    ExecutionReport,
    MyTrade,
    StreamState,
    StreamStatus,
    UserEvent,
)
from provider.account.state import AccountState
from provider.binance import wire
from provider.binance import ws_api_wire as ws_wire
from provider.binance.rest import RestClient
from provider.binance.signing import KeyType, Signer
from provider.binance.stream_plan import Backoff
from provider.binance.wire import ApiPath, Weight, WireFormatError
from provider.errors import ProviderError
from provider.trading.model import Order

__all__ = [
    "Subscription",
    "UserDataClient",
    "UserDataConfig",
    "fetch_account",
    "fetch_my_trades",
    "fetch_open_orders",
]

log = logging.getLogger(__name__)

_MAX_LIFETIME_S: Final = 23.5 * 3600  # Binance closes at 24 h; replace the connection first


@dataclass(frozen=True, slots=True)
class UserDataConfig:
    url: str
    queue_size: int = 1000
    heartbeat_s: float = 20.0  # our ping; no pong within half of it → reconnect
    request_timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    max_lifetime_s: float = _MAX_LIFETIME_S


# ------------------------------------------------------------------ REST reads (USER_DATA)


async def fetch_account(rest: RestClient) -> AccountInfo:
    body = await rest.signed("GET", ApiPath.ACCOUNT, {}, weight=Weight.ACCOUNT)
    return wire.parse_account(body)


async def fetch_open_orders(rest: RestClient, symbol: str | None = None) -> list[Order]:
    params = {"symbol": symbol} if symbol else {}
    weight = Weight.OPEN_ORDERS_SYMBOL if symbol else Weight.OPEN_ORDERS_ALL
    return wire.parse_orders(await rest.signed("GET", ApiPath.OPEN_ORDERS, params, weight=weight))


async def fetch_my_trades(
    rest: RestClient,
    symbol: str,
    *,
    order_id: int | None = None,
    from_id: int | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
) -> list[MyTrade]:
    params = wire.my_trades_params(symbol, order_id, from_id, start_ms, end_ms, limit)
    weight = Weight.MY_TRADES_BY_ORDER if order_id is not None else Weight.MY_TRADES
    return wire.parse_my_trades(await rest.signed("GET", ApiPath.MY_TRADES, params, weight=weight))


# ------------------------------------------------------------------ fan-out


class Subscription:
    """One StreamUserData caller's bounded queue."""

    def __init__(self, size: int, on_lag: Callable[[], list[UserEvent]], on_close: Callable[[Subscription], None]):
        self._queue: deque[UserEvent] = deque()
        self._size = size
        self._on_lag = on_lag
        self._on_close = on_close
        self._ready = asyncio.Event()
        self.lagged = 0

    def push(self, event: UserEvent) -> None:
        if len(self._queue) >= self._size:
            # Drop the backlog rather than stall the publisher; the state replaces it.
            self._queue.clear()
            self.lagged += 1
            self._queue.extend(self._on_lag())
        self._queue.append(event)
        self._ready.set()

    async def get(self) -> UserEvent:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        self._on_close(self)


class _Gone(Exception):
    """The connection ended (terminated, shut down, closed); reconnect."""


class UserDataClient:
    def __init__(self, session: aiohttp.ClientSession, rest: RestClient, signer: Signer, config: UserDataConfig):
        self._session = session
        self._rest = rest
        self._signer = signer
        self._config = config
        self.state = AccountState()
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self._rng = random.Random()
        self.connected = False
        self.reconciled = asyncio.Event()
        self.connects = 0
        self.reconciliations = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="user-data")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subs.clear()

    @property
    def live(self) -> bool:
        """Subscribed and reconciled: the kept view is current."""
        return self.connected and self.reconciled.is_set()

    def drop_connection(self) -> None:
        """Abort the current connection (tests, operators); the client reconnects and reconciles."""
        if self._ws is not None and not self._ws.closed:
            task = asyncio.ensure_future(self._ws.close())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # ---------------------------------------------------------------- subscribers

    def subscribe(self) -> Subscription:
        sub = Subscription(self._config.queue_size, self._lag_snapshot, self._subs.discard)
        self._subs.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def _lag_snapshot(self) -> list[UserEvent]:
        now = self._rest.clock.now_ms()
        status = StreamStatus(StreamState.LAGGED, "subscriber fell behind; events were dropped", now)
        position = AccountPositionEvent(self.state.balances(), self.state.as_of_ms, now)
        return [status, position]

    def _publish(self, event: UserEvent) -> None:
        for sub in list(self._subs):
            sub.push(event)

    def _status(self, state: StreamState, detail: str) -> None:
        log.info("user data: %s (%s)", state.name, detail)
        self._publish(StreamStatus(state, detail, self._rest.clock.now_ms()))

    # ---------------------------------------------------------------- connection

    async def _run(self) -> None:
        while True:
            detail = "connection closed"
            try:
                await self._connection()
            except _Gone as exc:
                detail = str(exc)
            except (aiohttp.ClientError, OSError, TimeoutError, WireFormatError, ProviderError) as exc:
                detail = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            was_connected = self.connected
            self.connected = False
            self.reconciled.clear()
            if was_connected:
                self._status(StreamState.DISCONNECTED, detail)
            else:
                log.warning("user data: connect failed: %s", detail)
            await asyncio.sleep(self._backoff.next_delay(self._rng.random()))

    async def _connection(self) -> None:
        cfg = self._config
        if not self._rest.clock.measured:
            await self._rest.server_time()
        async with self._session.ws_connect(cfg.url, heartbeat=cfg.heartbeat_s, autoping=True) as ws:
            self._ws = ws
            loop = asyncio.get_running_loop()
            start = loop.time()
            await self._subscribe(ws)
            self.connects += 1
            self.connected = True
            self._backoff.reset()
            self._status(StreamState.CONNECTED, "subscribed")
            await self._read(ws, start + cfg.max_lifetime_s)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, deadline: float) -> None:
        """Route frames until the connection ends; REST reconciles meanwhile, and events that
        arrive before its snapshot is in are held and replayed onto it."""
        loop = asyncio.get_running_loop()
        held: list[_StateEvent] = []
        reconcile: asyncio.Task[_Snapshot] | None = asyncio.create_task(self._snapshot(), name="user-data-reconcile")
        recv: asyncio.Task[aiohttp.WSMessage] | None = None
        try:
            while True:
                if recv is None:
                    recv = asyncio.create_task(ws.receive())
                waiting: set[asyncio.Future[object]] = {recv} if reconcile is None else {recv, reconcile}  # type: ignore[arg-type]
                done, _ = await asyncio.wait(
                    waiting, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    raise _Gone("connection lifetime reached; replacing it")
                if reconcile is not None and reconcile in done:
                    snapshot = reconcile.result()  # a REST failure ends this connection: retry all
                    reconcile = None
                    self._apply_snapshot(snapshot, held)
                    held = []
                if recv in done:
                    msg = recv.result()
                    recv = None
                    event = self._route(msg)
                    if event is None:
                        continue
                    if reconcile is None:
                        self._apply(event)
                    else:
                        held.append(event)
        finally:
            for task in (recv, reconcile):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ProviderError, aiohttp.ClientError):
                        await task

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        signer = self._signer
        now = self._rest.clock.now_ms()
        if signer.key_type is KeyType.ED25519:
            await self._request(
                ws, ws_wire.WsMethod.SESSION_LOGON, lambda i: ws_wire.logon_request(i, signer, timestamp_ms=now)
            )
            await self._request(ws, ws_wire.WsMethod.SUBSCRIBE, ws_wire.subscribe_request)
        else:
            await self._request(
                ws,
                ws_wire.WsMethod.SUBSCRIBE_SIGNATURE,
                lambda i: ws_wire.subscribe_signature_request(i, signer, timestamp_ms=now),
            )

    async def _request(
        self, ws: aiohttp.ClientWebSocketResponse, method: ws_wire.WsMethod, build: Callable[[int], bytes]
    ) -> ws_wire.WsResponse:
        self._next_id += 1
        req_id = self._next_id
        await ws.send_str(build(req_id).decode())
        async with asyncio.timeout(self._config.request_timeout_s):
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise _Gone(f"{method}: connection closed before the answer ({msg.type.name})")
                frame = ws_wire.parse_frame(msg.data)
                if isinstance(frame, ws_wire.WsResponse) and frame.id == req_id:
                    if not frame.ok:
                        raise _Gone(f"{method} refused: {frame.status} {frame.error_code}: {frame.error_msg}")
                    return frame

    def _route(self, msg: aiohttp.WSMessage) -> _StateEvent | None:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise _Gone(f"connection closed ({msg.type.name})")
        frame = ws_wire.parse_frame(msg.data)
        if isinstance(frame, ws_wire.WsResponse):
            if not frame.ok:  # e.g. {"id":null,"status":401}: the session was revoked
                raise _Gone(f"session error {frame.status} {frame.error_code}: {frame.error_msg}")
            return None
        event = frame.event
        if isinstance(event, ws_wire.EventStreamTerminated):
            raise _Gone("eventStreamTerminated")
        if isinstance(event, ws_wire.ServerShutdown):
            raise _Gone("serverShutdown")
        if isinstance(event, ws_wire.OtherEvent):
            return None
        return event

    # ---------------------------------------------------------------- state

    async def _snapshot(self) -> _Snapshot:
        account = await fetch_account(self._rest)
        orders = await fetch_open_orders(self._rest)
        return account, orders

    def _apply_snapshot(self, snapshot: _Snapshot, held: list[_StateEvent]) -> None:
        account, orders = snapshot
        now = self._rest.clock.now_ms()
        self.state.reconcile(account.balances, orders, update_time_ms=account.update_time_ms, now_ms=now)
        self.reconciliations += 1
        self.reconciled.set()
        self._status(StreamState.RECONCILED, f"{len(orders)} open orders, {len(account.balances)} balances from REST")
        self._publish(AccountPositionEvent(self.state.balances(), account.update_time_ms, now))
        for event in held:
            self._apply(event)

    def _apply(self, event: _StateEvent) -> None:
        self.state.apply(event, self._rest.clock.now_ms())
        self._publish(event)


_StateEvent = ExecutionReport | AccountPositionEvent | BalanceDeltaEvent
_Snapshot = tuple[AccountInfo, list[Order]]
