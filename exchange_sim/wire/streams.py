"""The simulator's WebSocket market streams (§1.1, §7): ``/ws/<stream>``, ``/ws`` and ``/stream?streams=a/b/c``.

Per connection: one handler task reading the client (control messages, pings, pongs) and one writer
task sending what the hub queued. Behaviour, as Binance documents it:

* raw ``/ws/<stream>`` (or ``/ws`` then SUBSCRIBE) sends bare events; combined ``/stream?streams=…``
  wraps them as ``{"stream":…,"data":…}``; SET_PROPERTY ``combined`` switches between the two.
  ``/ws/<a>/<b>`` is not a Binance shape: 404. URL-encoded names are accepted (aiohttp decodes them).
* ``timeUnit=MILLISECOND|MICROSECOND`` (any case); anything else → HTTP 400 ``{"code":-1194,…}``.
  MICROSECOND converts the time fields of each event once per event (see `hub.to_microseconds`).
* control messages SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY with the
  documented errors (codes 0–3), answered as ``{"result":…,"id":…}`` or ``{"code":…,"msg":…,"id":…}``.
* at most 1024 streams per connection; more in the URL → HTTP 400, more by SUBSCRIBE → code 2 error
  and nothing subscribed (Binance documents the limit, not the answer: both answers are ours).
* at most 5 incoming messages (text, binary, ping or pong frames) in any 1 s window; the 6th closes
  the connection with 1008.
* a ping every 20 s whose payload is the server time in ms; a pong carrying the payload of any
  unanswered ping is the keepalive; none within 60 s of the oldest unanswered ping closes with 1008.
  Unsolicited pongs are accepted and ignored. Client pings are answered with pongs (same payload).
* a connection lives 24 h, then is closed with 1001.
* on app shutdown every connection is closed with 1001 and the handlers finish before cleanup ends.

A requested close sends the queued frames, then the close frame; a connection that is still open
`close_timeout` seconds later is aborted. Slow consumers and the disconnect faults are aborted at once
(TCP dropped, no close frame). Per-message deflate is never negotiated: every frame is sent as the
one pre-encoded text, never compressed per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

import orjson
from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter

from exchange_sim.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY_VIOLATION,
    OPCODE_PING,
    OPCODE_PONG,
    StreamHub,
    Subscriber,
    TooManyStreams,
    stream_key,
)

log = logging.getLogger("exchange_sim.streams")

METHODS: Final = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ID_STRING = re.compile(r"[A-Za-z0-9_-]{0,36}")  # "alphanumeric, at most 36" (UUIDs included)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_MAX_INCOMING_MESSAGE: Final = 1 << 20  # a SUBSCRIBE of 1024 long names fits well within it


@dataclass(frozen=True)
class StreamSettings:
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    max_lifetime: float = 24 * 3600.0
    messages_per_second: int = 5
    close_timeout: float = 5.0  # a close not finished by then becomes an abort
    shutdown_timeout: float = 10.0  # app shutdown waits this long for the handlers to finish


_SERVER_KEY: Final = web.AppKey("exchange_sim.streams", object)


def add_stream_routes(app: web.Application, hub: StreamHub, settings: StreamSettings | None = None) -> None:
    """Serve ``/ws``, ``/ws/<stream>`` and ``/stream`` from `hub`; close every connection on shutdown."""
    server = StreamServer(hub, settings or StreamSettings())
    app[_SERVER_KEY] = server
    app.router.add_get("/ws", server.handle_raw)
    app.router.add_get("/ws/", server.handle_raw)
    app.router.add_get("/ws/{stream}", server.handle_raw)
    app.router.add_get("/stream", server.handle_combined)
    app.on_shutdown.append(server.on_shutdown)


class StreamServer:
    """The connection side of the stream server: request handlers and the open connections."""

    def __init__(self, hub: StreamHub, settings: StreamSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.connections: set[StreamConnection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def handle_raw(self, request: web.Request) -> web.StreamResponse:
        stream = request.match_info.get("stream", "")
        return await self._serve(request, combined=False, names=[stream] if stream else [])

    async def handle_combined(self, request: web.Request) -> web.StreamResponse:
        names = [name for name in (_query_param(request, "streams") or "").split("/") if name]
        return await self._serve(request, combined=True, names=names)

    async def on_shutdown(self, app: web.Application) -> None:
        self._stopping = True
        self.hub.close_all(CLOSE_GOING_AWAY, "Server shutdown")
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            log.warning("%d stream connections still open at shutdown: aborting them", len(self.connections))
            for conn in list(self.connections):
                conn.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.settings.close_timeout)
        self.hub.shutdown()

    async def _serve(self, request: web.Request, *, combined: bool, names: list[str]) -> web.StreamResponse:
        unit = _query_param(request, "timeUnit")
        if unit is not None and unit.upper() not in ("MILLISECOND", "MICROSECOND"):
            return _json_error(400, -1194, "Invalid value for time unit; expected MILLISECOND or MICROSECOND.")
        if len({stream_key(name) for name in names}) > self.hub.max_streams:
            return _json_error(400, 2, f"Invalid request: too many streams; at most {self.hub.max_streams}")
        if self._stopping:
            return _json_error(503, -1, "Server is shutting down.")
        ws = web.WebSocketResponse(
            autoping=False,  # pings and pongs count against the message limit; pongs are checked here
            compress=False,
            max_msg_size=_MAX_INCOMING_MESSAGE,
            timeout=self.settings.close_timeout,
        )
        if not ws.can_prepare(request).ok:
            return _json_error(400, -1, "Expected a WebSocket upgrade request.")
        http_writer = await ws.prepare(request)
        conn = StreamConnection(
            self, request, ws, http_writer, combined=combined, micro=unit is not None and unit.upper() == "MICROSECOND"
        )
        self.connections.add(conn)
        self._idle.clear()
        try:
            await conn.run(names)
        finally:
            self.connections.discard(conn)
            if not self.connections:
                self._idle.set()
        return ws


def _query_param(request: web.Request, name: str) -> str | None:
    """A query parameter, percent-decoded but with "+" kept literal (``kline_1m@+08:00``), unlike
    `request.query`, which follows HTML forms and reads "+" as a space."""
    for part in request.rel_url.raw_query_string.split("&"):
        key, _, value = part.partition("=")
        if unquote(key) == name:
            return unquote(value)
    return None


def _json_error(status: int, code: int, msg: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"code": code, "msg": msg}), content_type="application/json")


class _BadRequest(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class StreamConnection(Subscriber):
    """One WebSocket connection: the read loop runs in the handler task, the writes in a writer task."""

    def __init__(
        self,
        server: StreamServer,
        request: web.Request,
        ws: web.WebSocketResponse,
        http_writer: AbstractStreamWriter,
        *,
        combined: bool,
        micro: bool,
    ) -> None:
        super().__init__(combined=combined, micro=micro)
        self._server = server
        self._hub = server.hub
        self._settings = server.settings
        self._ws = ws
        self._http_writer = http_writer
        self._transport = request.transport
        self._loop = asyncio.get_running_loop()
        self._recent: deque[float] = deque(maxlen=max(self._settings.messages_per_second, 1))
        self._outstanding: dict[bytes, float] = {}  # unanswered ping payloads
        self._ping_seq = 0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._lifetime_timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ hub hooks

    def close(self, code: int, reason: str) -> None:
        if self.request_close(code, reason):
            self._abort_timer = self._loop.call_later(self._settings.close_timeout, self.abort)

    def abort(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort()  # also when closing: it may be stuck flushing to a client that does not read

    # ------------------------------------------------------------------ lifecycle

    async def run(self, names: list[str]) -> None:
        hub = self._hub
        hub.open(self)
        writer = asyncio.create_task(self._write_loop())
        try:
            if names:
                hub.subscribe(self, names)  # the count was checked before the upgrade
            self._ping_timer = self._loop.call_later(self._settings.ping_interval, self._ping_due)
            self._lifetime_timer = self._loop.call_later(self._settings.max_lifetime, self._lifetime_over)
            await self._read_loop()
        finally:
            for timer in (self._ping_timer, self._pong_timer, self._lifetime_timer, self._abort_timer):
                if timer is not None:
                    timer.cancel()
            hub.close(self)
            self.finish()
            try:
                await asyncio.wait_for(writer, self._settings.close_timeout)
            except TimeoutError:
                self.abort()
            except Exception:
                log.exception("stream writer failed")
            if not self._ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._ws.close(), self._settings.close_timeout)

    async def _write_loop(self) -> None:
        ws = self._ws
        transport = self._transport
        drain = self._http_writer.drain
        counters = self._hub.counters
        try:
            while True:
                await self.wait()
                if self.finished:
                    return
                if self._control:
                    for opcode, data in self.take_control():
                        await ws.send_frame(data, WSMsgType(opcode))
                while self._queue:
                    # Every queued frame in one write: one send() per wake-up instead of one per event.
                    frames = self.take()
                    if transport is None or transport.is_closing():
                        raise ConnectionResetError("transport closed")
                    transport.write(text_frames(frames))
                    counters["messages_sent"] += len(frames)
                    await drain()  # waits only while the client is not reading fast enough
                if self.close_request is not None and not self._control:
                    break
            assert self.close_request is not None
            code, reason = self.close_request
            await ws.close(code=code, message=reason.encode())
        except ConnectionError:
            pass  # the peer went away or the transport was aborted; the read loop sees it too

    async def _read_loop(self) -> None:
        ws = self._ws
        hub = self._hub
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if self.close_request is not None:
                continue  # closing: read until the close completes
            if not self._admit():
                hub.counters["rate_limit_closes"] += 1
                log.info("closing a stream connection: more than %d messages/s", self._settings.messages_per_second)
                self.close(CLOSE_POLICY_VIOLATION, "Too many messages")
                continue
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                self.push_reply(self._control_message(msg.data))
            elif kind is WSMsgType.PING:
                if hub.pings_stopped:
                    hub.fault_counters["pings_skipped"] += 1
                else:
                    self.push_control(OPCODE_PONG, bytes(msg.data))
            elif kind is WSMsgType.PONG:
                self._on_pong(bytes(msg.data))

    def _admit(self) -> bool:
        """The incoming message limit: at most `messages_per_second` in any one-second window."""
        now = self._loop.time()
        recent = self._recent
        if len(recent) == recent.maxlen and now - recent[0] < 1.0:
            return False
        recent.append(now)
        return True

    # ------------------------------------------------------------------ keepalive and lifetime

    def _ping_due(self) -> None:
        self._ping_timer = self._loop.call_later(self._settings.ping_interval, self._ping_due)
        if self.close_request is not None:
            return
        if self._hub.pings_stopped:
            self._hub.fault_counters["pings_skipped"] += 1
            return
        self._ping_seq += 1
        payload = b"%d" % int(time.time() * 1000)  # the server time in ms
        if payload in self._outstanding:  # only with sub-millisecond test intervals
            payload += b".%d" % self._ping_seq
        self._outstanding[payload] = self._loop.time()
        self.push_control(OPCODE_PING, payload)
        if self._pong_timer is None:
            self._pong_timer = self._loop.call_later(self._settings.pong_timeout, self._pong_missed)

    def _on_pong(self, data: bytes) -> None:
        if self._hub.pongs_ignored:
            self._hub.fault_counters["pongs_ignored"] += 1
            return
        if data not in self._outstanding:
            return  # unsolicited: allowed, but not a keepalive
        self._outstanding.clear()
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None

    def _pong_missed(self) -> None:
        self._pong_timer = None
        if self._hub.pings_stopped:
            self._outstanding.clear()  # stop_pings: the server checks nothing, the client's watchdog must act
            return
        self._hub.counters["pong_timeout_closes"] += 1
        log.info("closing a stream connection: no pong within %.1f s", self._settings.pong_timeout)
        self.close(CLOSE_POLICY_VIOLATION, "Pong timeout")

    def _lifetime_over(self) -> None:
        self._lifetime_timer = None
        self._hub.counters["lifetime_closes"] += 1
        self.close(CLOSE_GOING_AWAY, "Connection lifetime exceeded")

    # ------------------------------------------------------------------ control messages (§7.2)

    def _control_message(self, data: str | bytes) -> bytes:
        try:
            request = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return _error(3, f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}", None)
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if not isinstance(request, dict):
            return _error(2, f"Invalid request: invalid type, expected an object {_where(text, 1)}", None)
        req_id = request.get("id")
        try:
            method = self._method(request, text)
            _check_id(request)
            return _result(self._dispatch(method, request), req_id)
        except _BadRequest as exc:
            return _error(exc.code, exc.msg, req_id if _valid_id(req_id) else None)

    @staticmethod
    def _method(request: dict[str, Any], text: str) -> str:
        if "method" not in request:
            raise _BadRequest(2, f"Invalid request: missing field `method` {_where(text, len(text.rstrip()))}")
        method = request["method"]
        if method not in METHODS:
            value = orjson.dumps(method).decode()
            shown = f"unknown variant `{method}`" if isinstance(method, str) else f"invalid type: {value}"
            expected = ", ".join(f"`{name}`" for name in METHODS)
            start = text.find(value, text.find('"method"') + len('"method"'))
            column = start + len(value) if start >= 0 else len(text)
            raise _BadRequest(2, f"Invalid request: {shown}, expected one of {expected} {_where(text, column)}")
        return str(method)

    def _dispatch(self, method: str, request: dict[str, Any]) -> object:
        params = request.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = _stream_names(params)
            if method == "UNSUBSCRIBE":
                self._hub.unsubscribe(self, names)
                return None
            try:
                self._hub.subscribe(self, names)
            except TooManyStreams as exc:
                raise _BadRequest(2, f"Invalid request: too many streams; at most {exc.limit} per connection") from None
            return None
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise _BadRequest(2, "Invalid request: too many parameters")
            return list(self.streams.values())
        # GET_PROPERTY / SET_PROPERTY
        if params is None:
            params = []
        if not isinstance(params, list):
            raise _BadRequest(2, "Invalid request: property name must be a string")
        if len(params) > (1 if method == "GET_PROPERTY" else 2):
            raise _BadRequest(2, "Invalid request: too many parameters")
        if not params or not isinstance(params[0], str):
            raise _BadRequest(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise _BadRequest(0, "Unknown property")
        if method == "GET_PROPERTY":
            return self.combined
        if len(params) < 2 or not isinstance(params[1], bool):
            raise _BadRequest(1, "Invalid value type: expected Boolean")
        self._hub.set_combined(self, params[1])
        return None


def text_frames(payloads: Iterable[bytes]) -> bytes:
    """Unmasked, unfragmented RFC 6455 text frames (FIN + opcode 1), one per payload, concatenated."""
    parts: list[bytes] = []
    append = parts.append
    headers = _HEADERS
    for payload in payloads:
        size = len(payload)
        header = headers.get(size)
        if header is None:
            if size < 126:
                header = bytes((0x81, size))
            elif size < 65536:
                header = b"\x81\x7e" + size.to_bytes(2, "big")
            else:
                header = b"\x81\x7f" + size.to_bytes(8, "big")
            if size < 65536:
                headers[size] = header
        append(header)
        append(payload)
    return b"".join(parts)


_HEADERS: dict[int, bytes] = {}


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if type(value) is int:
        return _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, str) and _ID_STRING.fullmatch(value) is not None


def _check_id(request: dict[str, Any]) -> None:
    if "id" not in request or not _valid_id(request["id"]):
        raise _BadRequest(2, "Invalid request: request ID must be an unsigned integer")


def _stream_names(params: object) -> list[str]:
    if params is None:
        return []
    if not isinstance(params, list):
        raise _BadRequest(2, "Invalid request: invalid type, expected a sequence of stream names")
    for name in params:
        if not isinstance(name, str):
            raise _BadRequest(2, f"Invalid request: invalid type: {orjson.dumps(name).decode()}, expected a string")
        if not name or "/" in name or any(ch.isspace() for ch in name):
            raise _BadRequest(2, f"Invalid request: invalid stream name {orjson.dumps(name).decode()}")
    return params


def _where(text: str, offset: int) -> str:
    """serde's "at line L column C" for a 1-based character offset into `text`."""
    offset = max(min(offset, len(text)), 1)
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1)
    return f"at line {line} column {column}"


def _result(result: object, req_id: object) -> bytes:
    return orjson.dumps({"result": result, "id": req_id})


def _error(code: int, msg: str, req_id: object) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "id": req_id})
