"""The simulator's test-only control API under ``/control`` (``SIM_CONTROL=on``; absent otherwise).

JSON in, JSON out. A bad request answers 400 ``{"error": "...", "field": "<name>"}``. Every fault is
counted: ``GET /control/counters`` shows what was armed and what was injected, by `FaultKind`, plus
the hub's own fault and connection counters.

    POST /control/ws/disconnect      {"scope":"all"} | {"stream":"btcusdt@depth@100ms"} | {"count":N}
    POST /control/ws/gap             {"symbol":"BTCUSDT", "count":1}   skip depth diffs: a sequence gap
    POST /control/ws/reorder         {"symbol":"BTCUSDT"} | {"stream":...}   swap the next two events
    POST /control/ws/stall           {"seconds":S, "stream":optional, "drop":false}
    POST /control/ws/stop_pings      (and /control/ws/resume_pings, /control/ws/ignore_pongs)
    POST /control/ws/server_shutdown {"grace":seconds, optional}
    POST /control/user/terminate     eventStreamTerminated to every WS API user-data subscription
    POST /control/rest               {"status":429|418|403|500|503|"timeout", "count":N, "path":prefix,
                                      "retry_after":s, "body":"json"|"html"|"empty", "hold_seconds":s}
    POST /control/order_unknown      {"count":N}
    POST /control/order_slow         {"count":N, "hold_seconds":s}  the next N REST placements execute,
                                      then answer after s seconds
    POST /control/clock              {"offset_ms":N}
    GET  /control/counters
    GET  /control/depth?symbol=&limit=   /api/v3/depth's answer, never matched by a REST fault and
                                      charged no weight: for a harness checking the venue's book
                                      while faults are aimed at its clients' reads
    POST /control/reset              disarm everything (counters are kept; the clock offset goes to 0)
    GET  /control/replay             replay progress;  POST /control/replay/start {"symbol":optional}
    POST /control/pattern            {"kind":"quote_stuffing"|"iceberg"|"flash_crash", "symbol":"ETHUSDT",
                                      "seconds":N}   an anomaly pattern on the synthetic market (its
                                      status, with the iceberg's price, under "patterns" in counters)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from exchange_sim.faults import (
    DEFAULT_RETRY_AFTER_S,
    DEFAULT_TIMEOUT_HOLD_S,
    ErrorBody,
    FaultKind,
    FaultPlan,
    RestFault,
    RestFaultRule,
)
from exchange_sim.hub import StreamHub
from exchange_sim.market.patterns import PatternError, PatternKind, PatternRunner
from exchange_sim.market.replay import Replay
from exchange_sim.wire import rest

_REST_STATUSES = {f.value: f for f in RestFault if f.value is not None}
_PATTERN_KINDS = {
    PatternKind.QUOTE_STUFFING: FaultKind.PATTERN_QUOTE_STUFFING,
    PatternKind.ICEBERG: FaultKind.PATTERN_ICEBERG,
    PatternKind.FLASH_CRASH: FaultKind.PATTERN_FLASH_CRASH,
}


class BadRequest(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


# ----------------------------------------------------------------- field parsing


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(None, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(None, "body must be a JSON object")
    return body


def _int(body: dict[str, Any], name: str, default: int | None = None, low: int | None = None) -> int:
    value = body.get(name, default)
    if value is None:
        raise BadRequest(name, f"'{name}' is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(name, f"'{name}' must be an integer")
    if low is not None and value < low:
        raise BadRequest(name, f"'{name}' must be at least {low}")
    return value


def _seconds(body: dict[str, Any], name: str, default: float | None = None) -> float:
    value = body.get(name, default)
    if value is None:
        raise BadRequest(name, f"'{name}' is required")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e7:
        raise BadRequest(name, f"'{name}' must be a number of seconds >= 0")
    return float(value)


def _str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(name, f"'{name}' must be a non-empty string")
    return value


def _symbol(body: dict[str, Any], required: bool = True) -> str | None:
    value = _str(body, "symbol")
    if value is None:
        if required:
            raise BadRequest("symbol", "'symbol' is required")
        return None
    if not value.isalnum():
        raise BadRequest("symbol", "'symbol' must be alphanumeric, e.g. BTCUSDT")
    return value.upper()


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(name, f"'{name}' must be true or false")
    return value


# ----------------------------------------------------------------- the API


class ControlApi:
    def __init__(
        self, plan: FaultPlan, hub: StreamHub, replay: Replay | None, patterns: PatternRunner | None = None
    ) -> None:
        self.plan = plan
        self.hub = hub
        self.replay = replay
        self.patterns = patterns

    def routes(self) -> list[tuple[str, str, Callable[[dict[str, Any]], object]]]:
        return [
            ("POST", "/control/ws/disconnect", self.ws_disconnect),
            ("POST", "/control/ws/gap", self.ws_gap),
            ("POST", "/control/ws/reorder", self.ws_reorder),
            ("POST", "/control/ws/stall", self.ws_stall),
            ("POST", "/control/ws/stop_pings", self.ws_stop_pings),
            ("POST", "/control/ws/resume_pings", self.ws_resume_pings),
            ("POST", "/control/ws/ignore_pongs", self.ws_ignore_pongs),
            ("POST", "/control/ws/server_shutdown", self.ws_server_shutdown),
            ("POST", "/control/user/terminate", self.user_terminate),
            ("POST", "/control/rest", self.rest),
            ("POST", "/control/order_unknown", self.order_unknown),
            ("POST", "/control/order_slow", self.order_slow),
            ("POST", "/control/clock", self.clock),
            ("GET", "/control/counters", self.counters),
            ("POST", "/control/reset", self.reset),
            ("GET", "/control/replay", self.replay_status),
            ("POST", "/control/replay/start", self.replay_start),
            ("POST", "/control/pattern", self.pattern),
        ]

    # ---- streams

    def ws_disconnect(self, body: dict[str, Any]) -> object:
        stream, scope = _str(body, "stream"), _str(body, "scope")
        if stream is not None:
            dropped = self.hub.disconnect_stream(stream)
        elif "count" in body:
            dropped = self.hub.disconnect(_int(body, "count", low=1))
        elif scope == "all":
            dropped = self.hub.disconnect_all()
        else:
            raise BadRequest("scope", "give {'scope':'all'}, {'stream':<name>} or {'count':N}")
        self.plan.arm(FaultKind.WS_DISCONNECT)
        self.plan.record(FaultKind.WS_DISCONNECT, dropped)
        return {"disconnected": dropped}

    def _depth_streams(self, body: dict[str, Any]) -> list[str]:
        stream = _str(body, "stream")
        if stream is not None:
            return [stream]
        symbol = _symbol(body)
        assert symbol is not None
        prefix = symbol.lower()
        # Both diff-depth speeds when listened to; the 100 ms one when nobody listens yet.
        listened = [s for s in (f"{prefix}@depth@100ms", f"{prefix}@depth") if self.hub.has_subscribers(s)]
        return listened or [f"{prefix}@depth@100ms"]

    def ws_gap(self, body: dict[str, Any]) -> object:
        count = _int(body, "count", 1, low=1)
        streams = self._depth_streams(body)
        for stream in streams:
            self.hub.drop_next(stream, count)
        self.plan.arm(FaultKind.WS_GAP)
        return {"streams": streams, "count": count}

    def ws_reorder(self, body: dict[str, Any]) -> object:
        streams = self._depth_streams(body)
        for stream in streams:
            self.hub.reorder_next(stream)
        self.plan.arm(FaultKind.WS_REORDER)
        return {"streams": streams}

    def ws_stall(self, body: dict[str, Any]) -> object:
        seconds = _seconds(body, "seconds")
        stream, drop = _str(body, "stream"), _bool(body, "drop")
        self.hub.stall(stream, seconds, drop=drop)
        self.plan.arm(FaultKind.WS_STALL)
        return {"stream": stream, "seconds": seconds, "drop": drop}

    def ws_stop_pings(self, body: dict[str, Any]) -> object:
        self.hub.stop_pings()
        self.plan.arm(FaultKind.WS_STOP_PINGS)
        return {"pings_stopped": True}

    def ws_resume_pings(self, body: dict[str, Any]) -> object:
        self.hub.resume_pings()
        self.plan.arm(FaultKind.WS_RESUME_PINGS)
        return {"pings_stopped": False}

    def ws_ignore_pongs(self, body: dict[str, Any]) -> object:
        self.hub.ignore_pongs()
        self.plan.arm(FaultKind.WS_IGNORE_PONGS)
        return {"pongs_ignored": True}

    def ws_server_shutdown(self, body: dict[str, Any]) -> object:
        grace = _seconds(body, "grace", self.hub.shutdown_grace)
        notified = self.hub.server_shutdown(grace)
        self.plan.arm(FaultKind.WS_SERVER_SHUTDOWN)
        self.plan.record(FaultKind.WS_SERVER_SHUTDOWN, notified)
        return {"notified": notified, "grace": grace}

    def user_terminate(self, body: dict[str, Any]) -> object:
        return {"terminated": self.plan.terminate_user_streams()}

    # ---- REST, orders, clock

    def rest(self, body: dict[str, Any]) -> object:
        status = body.get("status")
        if status == "timeout":
            fault = RestFault.TIMEOUT
        elif isinstance(status, int) and not isinstance(status, bool) and status in _REST_STATUSES:
            fault = _REST_STATUSES[status]
        else:
            choices = ", ".join(str(s) for s in _REST_STATUSES)
            raise BadRequest("status", f"'status' must be one of {choices} or \"timeout\"")
        path = _str(body, "path")
        if path is not None and not path.startswith("/"):
            raise BadRequest("path", "'path' must be a path prefix starting with '/', e.g. /api/v3/depth")
        body_kind = _str(body, "body") or ErrorBody.JSON.value
        if body_kind not in {b.value for b in ErrorBody}:
            raise BadRequest("body", "'body' must be json, html or empty")
        rule = RestFaultRule(
            fault,
            _int(body, "count", 1, low=1),
            path,
            _int(body, "retry_after", DEFAULT_RETRY_AFTER_S, low=0),
            ErrorBody(body_kind),
            _seconds(body, "hold_seconds", DEFAULT_TIMEOUT_HOLD_S),
        )
        self.plan.arm_rest(rule)
        return {"status": status, "count": rule.remaining, "path": path}

    def order_unknown(self, body: dict[str, Any]) -> object:
        count = _int(body, "count", 1, low=1)
        self.plan.arm_order_unknown(count)
        return {"pending": self.plan.pending_order_unknown}

    def order_slow(self, body: dict[str, Any]) -> object:
        count = _int(body, "count", 1, low=1)
        hold_s = _seconds(body, "hold_seconds", None)
        if hold_s == 0:
            raise BadRequest("hold_seconds", "'hold_seconds' must be above 0")
        self.plan.arm_order_slow(count, hold_s)
        return {"count": count, "hold_seconds": hold_s}

    def clock(self, body: dict[str, Any]) -> object:
        offset = _int(body, "offset_ms")
        self.plan.shift_clock(offset)
        return {"offset_ms": offset, "serverTime": self.plan.clock.now_ms()}

    # ---- market patterns

    def pattern(self, body: dict[str, Any]) -> object:
        kind_text = _str(body, "kind")
        if kind_text not in {k.value for k in PatternKind}:
            raise BadRequest("kind", "'kind' must be one of " + ", ".join(k.value for k in PatternKind))
        kind = PatternKind(kind_text)
        symbol = _symbol(body)
        assert symbol is not None
        seconds = _seconds(body, "seconds")
        if self.patterns is None:
            raise BadRequest(None, "no synthetic market to run patterns on")
        try:
            status = self.patterns.start(kind, symbol, seconds, self.plan.clock.now_ms())
        except PatternError as exc:
            raise BadRequest(exc.field, exc.message) from None
        self.plan.arm(_PATTERN_KINDS[kind])
        return {"kind": kind.value, "symbol": symbol, "startMs": status.started_ms, "endMs": status.ends_ms}

    # ---- reporting

    def counters(self, body: dict[str, Any]) -> object:
        report = self.plan.counters()
        hub = self.hub.fault_counters
        injected = report["injected"]
        assert isinstance(injected, dict)
        # The hub counts the effects of the stream faults it applies.
        injected[FaultKind.WS_GAP.value] = hub["events_dropped"]
        injected[FaultKind.WS_REORDER.value] = hub["events_reordered"] // 2
        injected[FaultKind.WS_STALL.value] = hub["events_stalled"]
        injected[FaultKind.WS_STOP_PINGS.value] = hub["pings_skipped"]
        injected[FaultKind.WS_IGNORE_PONGS.value] = hub["pongs_ignored"]
        patterns = [] if self.patterns is None else self.patterns.status()
        if self.patterns is not None:  # a pattern is injected once the market clock has started it
            for kind, fault in _PATTERN_KINDS.items():
                injected[fault.value] = self.patterns.started[kind]
        running = [
            {
                "kind": p.kind.value,
                "symbol": p.symbol,
                "startMs": p.started_ms,
                "endMs": p.ends_ms,
                "operations": p.operations,
                "running": p.running,
                "price": None if p.price is None else str(p.price),  # the iceberg's level
            }
            for p in patterns
        ]
        return {**report, "hub": dict(hub), "streams": dict(self.hub.counters), "patterns": running}

    def reset(self, body: dict[str, Any]) -> object:
        self.plan.reset()
        if self.patterns is not None:
            self.patterns.stop_all(self.plan.clock.now_ms())
        self.hub.reset_faults()
        return {"reset": True}

    def replay_status(self, body: dict[str, Any]) -> object:
        if self.replay is None:
            return {"files": [], "done": True, "speed": None}
        return self.replay.status()

    def replay_start(self, body: dict[str, Any]) -> object:
        symbol = _symbol(body, required=False)
        if self.replay is None:
            raise BadRequest(None, "no replay configured (SIM_REPLAY)")
        if symbol is not None and not self.replay.serves(symbol):
            raise BadRequest("symbol", f"{symbol} is not replayed")
        return {"started": self.replay.start(symbol)}


def _handler(action: Callable[[dict[str, Any]], object]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = await _body(request) if request.method == "POST" else {}
            return _json(action(body))
        except BadRequest as exc:
            return _json({"error": exc.message, "field": exc.field}, 400)

    return handle


async def venue_depth(request: web.Request) -> web.Response:
    """GET /control/depth: the venue's book as /api/v3/depth answers it, outside faults and weights."""
    try:
        return _json(await rest.depth(request, request.app[rest.VENUE], 0))
    except rest.ApiError as exc:
        return _json({"code": exc.code, "msg": exc.msg}, exc.status)


def add_control_routes(
    app: web.Application,
    plan: FaultPlan,
    hub: StreamHub,
    replay: Replay | None,
    patterns: PatternRunner | None = None,
) -> None:
    """Serve the control API (only call this with SIM_CONTROL=on)."""
    for method, path, action in ControlApi(plan, hub, replay, patterns).routes():
        app.router.add_route(method, path, _handler(action))
    app.router.add_get("/control/depth", venue_depth)
