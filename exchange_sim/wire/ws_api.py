"""The simulator's WebSocket API at ``/ws-api/v3`` (reference §9.1, §3.3, §4.2): request/response
calls and the user data stream.

Framing: requests ``{"id":…,"method":"…","params":{…}}`` (method names may be prefixed ``v3/``);
answers ``{"id":…,"status":200,"result":…,"rateLimits":[…]}`` or ``{"id":…,"status":4xx,"error":
{"code":…,"msg":…}}``. ``rateLimits`` is left out with ``returnRateLimits=false`` (connection URL
parameter, or per request). JSON numbers keep their text (parsed as `Decimal`) so the §3.3 signature
payload is the one the client signed.

Methods: ``ping``, ``time``, ``session.logon`` (Ed25519 keys only), ``session.status``,
``session.logout``, ``session.subscriptions``, ``userDataStream.subscribe`` (after logon),
``userDataStream.subscribe.signature`` (any key type), ``userDataStream.unsubscribe`` (one
``subscriptionId`` or all), and the signed calls of `exchange_sim.wire.trading` (``order.place``,
``order.test``, ``order.cancel``, ``order.status``, ``openOrders.status``, ``openOrders.cancelAll``,
``allOrders``, ``myTrades``, ``account.status``) with the REST weights and errors; after logon they
need no signature (``timestamp`` still required).

User data: events of the subscribed account, wrapped ``{"subscriptionId":N,"event":{…}}``, in the
engine's order (execution reports, then ``outboundAccountPosition``). One subscription per account
per connection (-2035), ids 0, 1, … up to 65535 per connection (-2042). Ending a subscription
(``userDataStream.unsubscribe``; ``session.logout`` for logon-based ones; the control API's
terminate fault) sends ``eventStreamTerminated`` on it before the answer. A key removed from the
registry revokes the session on the next request (``{"id":null,"status":401,…-2015…}``).

Connection: costs 2 weight at connect; a ping every 20 s (payload: server time), no pong with an
outstanding payload within 60 s closes it (1008); 24 h lifetime (1001). Every frame goes through one
bounded queue: a client that does not read fast enough is dropped (TCP aborted), never buffered.

Simulator choices where the reference is silent: a malformed request (bad JSON, id or method) is
``400 -1000``; ``userDataStream.subscribe`` without logon is ``401 -1002``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import orjson
from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter

from exchange_sim.faults import ORDER_UNKNOWN, FaultPlan
from exchange_sim.hub import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, OPCODE_PING, OPCODE_PONG, Subscriber
from exchange_sim.matching import AccountPosition, EngineError, ExecutionReport, UserEvent, fmt
from exchange_sim.wire.auth import MSG_REJECTED_KEY, AuthError, Security, verify_ws
from exchange_sim.wire.ratelimit import RateLimitError
from exchange_sim.wire.rest import ApiError
from exchange_sim.wire.streams import text_frames
from exchange_sim.wire.trading import OPERATIONS, Operation, TradingDesk

__all__ = ["WsApiServer", "WsApiSettings", "add_ws_api_routes", "render_user_event"]

log = logging.getLogger("exchange_sim.ws_api")

_INT64: Final = (-(2**63), 2**63 - 1)
_ID_STRING: Final = re.compile(r"[A-Za-z0-9_-]{0,36}")
_MAX_INCOMING_MESSAGE: Final = 1 << 16
_CONNECT_WEIGHT: Final = 2
_IGNORED_PARAMS: Final = frozenset({"apiKey", "returnRateLimits"})  # read by this layer, not by the calls
_OPS_BY_METHOD: Final = {name.value: op for name, op in OPERATIONS.items()}


@dataclass(frozen=True)
class WsApiSettings:
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    max_lifetime: float = 24 * 3600.0
    queue_limit: int = 1000  # frames waiting for one client; one more drops it
    max_subscription_ids: int = 65_535
    close_timeout: float = 5.0
    shutdown_timeout: float = 10.0


# --------------------------------------------------------------------------- events


def _wire(value: object) -> object:
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, str):
        return str(value)  # enums are StrEnums: plain text on the wire
    return value


def render_execution_report(report: ExecutionReport, strategy: tuple[int | None, int | None] | None) -> dict[str, Any]:
    """``executionReport`` (§9.2): every listed key; ``W`` once working; STP keys on TRADE_PREVENTION."""
    out: dict[str, Any] = {"e": "executionReport"}
    for name, key in ExecutionReport.WIRE_KEYS.items():
        value = getattr(report, name)
        if value is None and key != "N":  # N is null when there is no fill; the others are conditional
            continue
        out[key] = _wire(value)
        if key == "m":
            out["M"] = False  # "ignore"
    if strategy is not None:
        if strategy[0] is not None:
            out["j"] = strategy[0]
        if strategy[1] is not None:
            out["J"] = strategy[1]
    return out


def render_user_event(event: UserEvent, desk: TradingDesk) -> dict[str, Any]:
    if isinstance(event, AccountPosition):
        return {
            "e": "outboundAccountPosition",
            "E": event.event_time,
            "u": event.update_time,
            "B": [{"a": b.asset, "f": fmt(b.free), "l": fmt(b.locked)} for b in event.balances],
        }
    return render_execution_report(event, desk.strategy(event.symbol, event.order_id))


# --------------------------------------------------------------------------- server


def add_ws_api_routes(
    app: web.Application, desk: TradingDesk, faults: FaultPlan | None = None, settings: WsApiSettings | None = None
) -> WsApiServer:
    """Serve ``/ws-api/v3`` from `desk`; close every connection on app shutdown."""
    server = WsApiServer(desk, settings or WsApiSettings(), faults)
    app[WS_API] = server
    app.router.add_get("/ws-api/v3", server.handle)
    app.on_shutdown.append(server.on_shutdown)
    return server


class WsApiServer:
    def __init__(self, desk: TradingDesk, settings: WsApiSettings, faults: FaultPlan | None) -> None:
        self.desk = desk
        self.settings = settings
        self.faults = faults
        self.connections: set[WsApiConnection] = set()
        self.slow_consumer_closes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._remove_hook = faults.on_user_terminate(self.terminate_all) if faults is not None else None

    def terminate_all(self) -> int:
        """End every user data subscription of every connection (eventStreamTerminated on each)."""
        return sum(conn.end_subscriptions(lambda sub: True) for conn in list(self.connections))

    async def on_shutdown(self, app: web.Application) -> None:
        self._stopping = True
        if self._remove_hook is not None:
            self._remove_hook()
        for conn in list(self.connections):
            conn.close(CLOSE_GOING_AWAY, "Server shutdown")
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            for conn in list(self.connections):
                conn.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.settings.close_timeout)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        desk = self.desk
        ip = request.remote or "unknown"
        now = desk.clock()
        if self._stopping:
            return _json_error(503, -1016, "This service is no longer available.")
        try:
            desk.limiter.check_request(ip, now, _CONNECT_WEIGHT)
        except RateLimitError as exc:
            return _json_error(exc.http_status, exc.code, exc.msg, exc.headers())
        ws = web.WebSocketResponse(
            autoping=False, compress=False, max_msg_size=_MAX_INCOMING_MESSAGE, timeout=self.settings.close_timeout
        )
        if not ws.can_prepare(request).ok:
            return _json_error(400, -1000, "Expected a WebSocket upgrade request.")
        http_writer = await ws.prepare(request)
        rate_limits = request.query.get("returnRateLimits", "true").lower() != "false"
        conn = WsApiConnection(self, request, ws, http_writer, ip=ip, rate_limits=rate_limits, connected_at=now)
        self.connections.add(conn)
        self._idle.clear()
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            if not self.connections:
                self._idle.set()
        return ws


WS_API: Final = web.AppKey("exchange_sim.ws_api", WsApiServer)


def _json_error(status: int, code: int, msg: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"code": code, "msg": msg}), content_type="application/json", headers=headers
    )


class _Failure(Exception):
    """An error answer: WS ``status``, Binance code and message, optional ``data``."""

    def __init__(self, status: int, code: int, msg: str, data: dict[str, int] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.data = status, code, msg, data


@dataclass(frozen=True, slots=True)
class _Subscription:
    account_id: int
    via_logon: bool
    remove: Callable[[], None]


def _param_text(value: object) -> str:
    """A JSON param as text, for weights read before authentication."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if type(value) is int:
        return _INT64[0] <= value <= _INT64[1]
    return isinstance(value, str) and _ID_STRING.fullmatch(value) is not None


class WsApiConnection(Subscriber):
    """One WS API connection: requests are answered in the handler task; a writer task sends."""

    def __init__(
        self,
        server: WsApiServer,
        request: web.Request,
        ws: web.WebSocketResponse,
        http_writer: AbstractStreamWriter,
        *,
        ip: str,
        rate_limits: bool,
        connected_at: int,
    ) -> None:
        super().__init__(combined=False)
        self._limit = server.settings.queue_limit
        self._server = server
        self._desk = server.desk
        self._settings = server.settings
        self._ws = ws
        self._http_writer = http_writer
        self._transport = request.transport
        self._loop = asyncio.get_running_loop()
        self._ip = ip
        self._rate_limits = rate_limits
        self._connected_at = connected_at
        self._session_key: str | None = None
        self._authorized_since: int | None = None
        self._subs: dict[int, _Subscription] = {}
        self._next_sub_id = 0
        self._dropped = False
        self._outstanding: dict[bytes, float] = {}
        self._ping_seq = 0
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------------ lifecycle

    def close(self, code: int, reason: str) -> None:
        if self.request_close(code, reason):
            self._timers["abort"] = self._loop.call_later(self._settings.close_timeout, self.abort)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop(), name="ws-api-writer")
        try:
            self._timers["ping"] = self._loop.call_later(self._settings.ping_interval, self._ping_due)
            self._timers["lifetime"] = self._loop.call_later(self._settings.max_lifetime, self._lifetime_over)
            await self._read_loop()
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._end_silently()
            self.finish()
            try:
                await asyncio.wait_for(writer, self._settings.close_timeout)
            except TimeoutError:
                self.abort()
            except Exception:
                log.exception("ws api writer failed")
            if not self._ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._ws.close(), self._settings.close_timeout)

    async def _write_loop(self) -> None:
        ws = self._ws
        transport = self._transport
        drain = self._http_writer.drain
        try:
            while True:
                await self.wait()
                if self.finished:
                    return
                for opcode, data in self.take_control():
                    await ws.send_frame(data, WSMsgType(opcode))
                while self._queue:
                    frames = self.take()
                    if transport is None or transport.is_closing():
                        raise ConnectionResetError("transport closed")
                    transport.write(text_frames(frames))
                    await drain()
                if self.close_request is not None and not self._control:
                    break
            assert self.close_request is not None
            code, reason = self.close_request
            await ws.close(code=code, message=reason.encode())
        except ConnectionError:
            pass  # the peer went away or the transport was aborted; the read loop sees it too

    async def _read_loop(self) -> None:
        ws = self._ws
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if self.close_request is not None or self._dropped:
                continue
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                self._request(msg.data)
            elif kind is WSMsgType.PING:
                self.push_control(OPCODE_PONG, bytes(msg.data))
            elif kind is WSMsgType.PONG:
                self._on_pong(bytes(msg.data))

    def _send(self, frame: bytes) -> None:
        """Queue one frame; a full queue means the client cannot keep up: drop it."""
        if self._dropped:
            return
        if not self.push(frame):
            self._dropped = True
            self._server.slow_consumer_closes += 1
            log.info("dropping a WS API client that does not keep up (%d frames queued)", self.pending)
            self._end_silently()
            self.abort()

    # ------------------------------------------------------------------ keepalive and lifetime

    def _ping_due(self) -> None:
        self._timers["ping"] = self._loop.call_later(self._settings.ping_interval, self._ping_due)
        if self.close_request is not None:
            return
        self._ping_seq += 1
        payload = b"%d" % int(time.time() * 1000)
        if payload in self._outstanding:
            payload += b".%d" % self._ping_seq
        self._outstanding[payload] = self._loop.time()
        self.push_control(OPCODE_PING, payload)
        if "pong" not in self._timers:
            self._timers["pong"] = self._loop.call_later(self._settings.pong_timeout, self._pong_missed)

    def _on_pong(self, data: bytes) -> None:
        if data not in self._outstanding:
            return  # unsolicited pongs are allowed but are no keepalive
        self._outstanding.clear()
        timer = self._timers.pop("pong", None)
        if timer is not None:
            timer.cancel()

    def _pong_missed(self) -> None:
        self._timers.pop("pong", None)
        log.info("closing a WS API connection: no pong within %.1f s", self._settings.pong_timeout)
        self.close(CLOSE_POLICY_VIOLATION, "Pong timeout")

    def _lifetime_over(self) -> None:
        self.close(CLOSE_GOING_AWAY, "Connection lifetime exceeded")

    # ------------------------------------------------------------------ subscriptions

    def _subscribe(self, account_id: int, *, via_logon: bool) -> int:
        if any(sub.account_id == account_id for sub in self._subs.values()):
            raise _Failure(400, -2035, "User Data Stream subscription already active.")
        if self._next_sub_id >= self._settings.max_subscription_ids:
            raise _Failure(400, -2042, "Maximum subscription ID reached for this connection.")
        sub_id = self._next_sub_id
        self._next_sub_id += 1
        desk = self._desk

        def deliver(event: UserEvent) -> None:
            self._send(orjson.dumps({"subscriptionId": sub_id, "event": render_user_event(event, desk)}))

        self._subs[sub_id] = _Subscription(account_id, via_logon, desk.accounts.listen(account_id, deliver))
        return sub_id

    def end_subscriptions(self, which: Callable[[_Subscription], bool]) -> int:
        """End the chosen subscriptions, each with an ``eventStreamTerminated`` event; how many."""
        ended = [sub_id for sub_id, sub in self._subs.items() if which(sub)]
        for sub_id in ended:
            self._subs.pop(sub_id).remove()
            event = {"e": "eventStreamTerminated", "E": self._desk.clock()}
            self._send(orjson.dumps({"subscriptionId": sub_id, "event": event}))
        return len(ended)

    def _end_silently(self) -> None:
        for sub in self._subs.values():
            sub.remove()
        self._subs.clear()

    # ------------------------------------------------------------------ requests

    def _request(self, data: str | bytes) -> None:
        try:
            request = json.loads(data, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            self._send(_error_frame(None, _Failure(400, -1000, "Malformed request: invalid JSON."), None))
            return
        if not isinstance(request, dict) or not _valid_id(request.get("id")):
            self._send(_error_frame(None, _Failure(400, -1000, "Malformed request: invalid request ID."), None))
            return
        req_id = request.get("id")
        method = request.get("method")
        params = request.get("params", {})
        if params is None:
            params = {}
        if not isinstance(method, str) or not isinstance(params, dict):
            self._send(_error_frame(req_id, _Failure(400, -1000, "Malformed request: bad method or params."), None))
            return
        method = method.removeprefix("v3/")
        rate_limits = self._rate_limits
        if "returnRateLimits" in params:
            rate_limits = params["returnRateLimits"] is not False
        self._check_session()
        limiter = self._desk.limiter
        now = self._desk.clock()
        op = _OPS_BY_METHOD.get(method)
        text_params = {name: _param_text(value) for name, value in params.items()}
        weight = op.weight(text_params) if op is not None else _SESSION_WEIGHTS.get(method, 2)
        admitted = False
        try:
            try:
                limiter.check_request(self._ip, now, weight, charge=op is None or not op.order_call)
                admitted = True
                result, account_id = self._call(method, op, params, now)
            except RateLimitError as exc:
                retry = {"serverTime": now, "retryAfter": exc.retry_at_ms}
                raise _Failure(exc.http_status, exc.code, exc.msg, retry) from None
            except AuthError as exc:
                raise _Failure(exc.http_status, exc.code, exc.msg) from None
            except ApiError as exc:
                raise _Failure(exc.status, exc.code, exc.msg) from None
            except EngineError as exc:
                raise _Failure(400, exc.code, exc.msg) from None
        except _Failure as failure:
            if admitted and op is not None and op.order_call:  # failed order calls weigh (§4.1)
                limiter.charge(self._ip, now, weight)
            limits = limiter.ws_rate_limits(self._ip, now) if rate_limits else None
            self._send(_error_frame(req_id, failure, limits))
            return
        limits = None
        if rate_limits:
            orders = account_id if op is not None and op.places_order else None
            limits = limiter.ws_rate_limits(self._ip, now, account_id=orders)
        body: dict[str, object] = {"id": req_id, "status": 200, "result": result}
        if limits is not None:
            body["rateLimits"] = limits
        self._send(orjson.dumps(body))

    def _call(self, method: str, op: Operation | None, params: dict[str, Any], now: int) -> tuple[object, int | None]:
        """(result, account id) of one admitted request; raises the call's error."""
        if op is None:
            return self._session_method(method, params, now), None
        desk = self._desk
        auth = verify_ws(
            desk.accounts.registry, params, now_ms=now, security=op.security, session_api_key=self._session_key
        )
        if op.places_order:
            desk.limiter.check_new_order(auth.account_id, now)
        outcome = op.call(desk, auth, _IGNORED_PARAMS)
        faults = self._server.faults
        if op.places_order and faults is not None and faults.take_order_unknown():
            # The order executed; the answer says its status is unknown (§4.6).
            raise _Failure(ORDER_UNKNOWN.status, ORDER_UNKNOWN.code, ORDER_UNKNOWN.msg)
        return outcome.body, auth.account_id

    def _check_session(self) -> None:
        """A session whose key was removed is revoked by the next request (§9.1)."""
        key = self._session_key
        if key is not None and key not in self._desk.accounts.registry:
            self._session_key = self._authorized_since = None
            self.end_subscriptions(lambda sub: sub.via_logon)
            error = {"code": -2015, "msg": MSG_REJECTED_KEY}
            self._send(orjson.dumps({"id": None, "status": 401, "error": error}))

    def _session_method(self, method: str, params: dict[str, Any], now: int) -> object:
        registry = self._desk.accounts.registry
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": now}
        if method == "session.logon":
            auth = verify_ws(registry, params, now_ms=now, security=Security.USER_DATA, require_ed25519=True)
            self._session_key = auth.api_key
            self._authorized_since = now
            return self._session_status(now)
        if method == "session.status":
            return self._session_status(now)
        if method == "session.logout":
            self.end_subscriptions(lambda sub: sub.via_logon)
            self._session_key = self._authorized_since = None
            return self._session_status(now)
        if method == "session.subscriptions":
            return [{"subscriptionId": sub_id} for sub_id in self._subs]
        if method == "userDataStream.subscribe":
            if self._session_key is None:
                raise _Failure(401, -1002, "You are not authorized to execute this request.")
            entry = registry.lookup(self._session_key)
            return {"subscriptionId": self._subscribe(entry.account_id, via_logon=True)}
        if method == "userDataStream.subscribe.signature":
            auth = verify_ws(registry, params, now_ms=now, security=Security.USER_STREAM)
            return {"subscriptionId": self._subscribe(auth.account_id, via_logon=False)}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            if wanted is None:
                self.end_subscriptions(lambda sub: True)
                return {}
            if type(wanted) is not int:
                raise _Failure(400, -1102, _MANDATORY_SUBSCRIPTION_ID)
            if wanted not in self._subs:
                raise _Failure(400, -2036, "User Data Stream subscription not active.")
            chosen = self._subs[wanted]
            self.end_subscriptions(lambda sub: sub is chosen)
            return {}
        raise _Failure(400, -1000, f"Malformed request: unknown method '{method}'.")

    def _session_status(self, now: int) -> dict[str, object]:
        return {
            "apiKey": self._session_key,
            "authorizedSince": self._authorized_since,
            "connectedSince": self._connected_at,
            "returnRateLimits": self._rate_limits,
            "serverTime": now,
            "userDataStream": bool(self._subs),
        }


_MANDATORY_SUBSCRIPTION_ID: Final = "Mandatory parameter 'subscriptionId' was not sent, was empty/null, or malformed."
_SESSION_WEIGHTS: Final = {"ping": 1, "time": 1}  # every other session/user-stream method weighs 2


def _error_frame(req_id: object, failure: _Failure, limits: object) -> bytes:
    error: dict[str, object] = {"code": failure.code, "msg": failure.msg}
    if failure.data is not None:
        error["data"] = failure.data
    body: dict[str, object] = {"id": req_id, "status": failure.status, "error": error}
    if limits is not None:
        body["rateLimits"] = limits
    return orjson.dumps(body)
