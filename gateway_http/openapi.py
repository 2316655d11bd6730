"""The route registry: one declaration per route gives the aiohttp route, its required scope,
its parsed parameters and its OpenAPI 3.1 operation, so the document cannot drift from the code.

    api = app[API]
    api.route("GET", "/api/v1/depth", depth, scope=Scope.READ, summary="Order book",
              params=[Param("symbol", str, required=True, pattern="^[A-Z0-9]{2,20}$"),
                      Param("limit", int, minimum=1, maximum=5000, default=100)],
              response=DEPTH_SCHEMA)

    async def depth(request: web.Request) -> web.Response:
        params = request[PARAMS]
        symbol, limit = params.get("symbol", str), params.get("limit", int)

Parameters are checked before the handler runs: a missing, malformed, out-of-range or unknown
query parameter is a 400 whose `field` names it. Request bodies are documented here but
validated by the handler.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from gateway_auth.tokens import Scope
from gateway_http.errors import ERROR_SCHEMA, ApiError, GatewayReason

JsonSchema = Mapping[str, object]
ParamValue = str | int | float | bool | Decimal
ParamKind = type[str] | type[int] | type[float] | type[bool] | type[Decimal]
T = TypeVar("T", str, int, float, bool, Decimal)

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearerAuth"
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_INT_RE = re.compile(r"^-?[0-9]+$")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)
_PATH_PARAM_RE = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class ParamIn(StrEnum):
    QUERY = "query"
    PATH = "path"


@dataclass(frozen=True)
class Param:
    """One query or path parameter: its type, whether it is required, default and bounds."""

    name: str
    kind: ParamKind
    required: bool = False
    default: ParamValue | None = None
    minimum: int | float | Decimal | None = None
    maximum: int | float | Decimal | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    description: str = ""
    location: ParamIn = ParamIn.QUERY

    def __post_init__(self) -> None:
        if self.kind not in (str, int, float, bool, Decimal):
            raise TypeError(f"parameter {self.name}: unsupported type {self.kind!r}")
        if self.location is ParamIn.PATH and not self.required:
            raise ValueError(f"path parameter {self.name} must be required")
        if self.required and self.default is not None:
            raise ValueError(f"parameter {self.name}: a required parameter has no default")
        if (self.choices or self.pattern) and self.kind is not str:
            raise ValueError(f"parameter {self.name}: choices and pattern apply to strings only")
        if self.default is not None:
            # A default must itself pass the checks, so the document never advertises a bad value.
            parse_param(self, _default_text(self.default))

    def schema(self) -> dict[str, object]:
        schema: dict[str, object]
        if self.kind is bool:
            schema = {"type": "boolean"}
        elif self.kind is int:
            schema = {"type": "integer"}
        elif self.kind is float:
            schema = {"type": "number"}
        elif self.kind is Decimal:
            schema = {"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN}
        else:
            schema = {"type": "string"}
            if self.choices:
                schema["enum"] = list(self.choices)
            if self.pattern:
                schema["pattern"] = self.pattern
        if self.minimum is not None:
            schema["minimum"] = _json_number(self.minimum)
        if self.maximum is not None:
            schema["maximum"] = _json_number(self.maximum)
        if self.default is not None:
            schema["default"] = str(self.default) if isinstance(self.default, Decimal) else self.default
        return schema

    def openapi(self) -> dict[str, object]:
        doc: dict[str, object] = {"name": self.name, "in": self.location.value, "required": self.required}
        if self.description:
            doc["description"] = self.description
        doc["schema"] = self.schema()
        return doc


def _json_number(value: int | float | Decimal) -> int | float:
    return float(value) if isinstance(value, Decimal) else value


def _default_text(value: ParamValue) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class ParamError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter {name!r}: {message}")
        self.name = name


def parse_param(param: Param, text: str) -> ParamValue:
    """Parse one raw value; ParamError naming the parameter if it is malformed or out of bounds."""
    value: ParamValue
    if param.kind is bool:
        if text not in ("true", "false"):
            raise ParamError(param.name, f"expected true or false, got {text!r}")
        return text == "true"
    if param.kind is int:
        if not _INT_RE.match(text):
            raise ParamError(param.name, f"expected an integer, got {text!r}")
        value = int(text)
        if not INT64_MIN <= value <= INT64_MAX:  # every integer goes into a protobuf int64 field
            raise ParamError(param.name, f"expected a 64-bit integer, got {text}")
    elif param.kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ParamError(param.name, f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ParamError(param.name, f"expected a finite number, got {text!r}")
    elif param.kind is Decimal:
        if not _DECIMAL_RE.match(text):
            raise ParamError(param.name, f"expected a decimal string like 123.45, got {text!r}")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ParamError(param.name, f"expected a decimal string, got {text!r}") from None
    else:
        if param.choices and text not in param.choices:
            raise ParamError(param.name, f"expected one of {', '.join(param.choices)}, got {text!r}")
        if param.pattern and not re.search(param.pattern, text):
            raise ParamError(param.name, f"{text!r} does not match {param.pattern}")
        return text
    if param.minimum is not None and value < param.minimum:
        raise ParamError(param.name, f"must be at least {param.minimum}, got {text}")
    if param.maximum is not None and value > param.maximum:
        raise ParamError(param.name, f"must be at most {param.maximum}, got {text}")
    return value


@dataclass(frozen=True)
class Params:
    """A request's parsed parameters (defaults filled in); absent optional ones are missing."""

    values: Mapping[str, ParamValue] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str, kind: type[T]) -> T:
        value = self.optional(name, kind)
        if value is None:
            raise KeyError(f"parameter {name!r} was not given and has no default")
        return value

    def optional(self, name: str, kind: type[T]) -> T | None:
        value = self.values.get(name)
        if value is None:
            return None
        # bool is an int subclass: match the declared kind exactly.
        if type(value) is not kind:
            raise TypeError(f"parameter {name!r} is {type(value).__name__}, not {kind.__name__}")
        return value


def parse_params(params: Sequence[Param], query: MultiMapping[str], path: Mapping[str, str] | None = None) -> Params:
    """All parameters of one request; ParamError for the first problem, naming the parameter."""
    declared = {p.name for p in params if p.location is ParamIn.QUERY}
    for name in query:
        if name not in declared:
            raise ParamError(name, "unknown parameter")
    values: dict[str, ParamValue] = {}
    for param in params:
        if param.location is ParamIn.PATH:
            raw = [path[param.name]] if path and param.name in path else []
        else:
            raw = query.getall(param.name, [])
        if len(raw) > 1:
            raise ParamError(param.name, "given more than once")
        if not raw or raw[0] == "":
            if param.required:
                raise ParamError(param.name, "is required")
            if param.default is not None:
                values[param.name] = param.default
            continue
        values[param.name] = parse_param(param, raw[0])
    return Params(MappingProxyType(values))


PARAMS = web.RequestKey("params", Params)


@dataclass(frozen=True)
class Operation:
    """One registered route, as the auth middleware and the OpenAPI document see it."""

    method: str
    path: str
    summary: str
    scope: Scope | None  # None: public, no token needed
    params: tuple[Param, ...] = ()
    response: JsonSchema | None = None
    response_status: int = 200
    response_description: str = "OK"
    response_media_type: str = "application/json"
    description: str = ""
    tags: tuple[str, ...] = ()
    request_body: JsonSchema | None = None
    request_body_required: bool = True
    request_body_media_types: tuple[str, ...] = ("application/json",)
    websocket: bool = False
    calls_provider: bool = True
    extra_responses: Mapping[int, tuple[str, JsonSchema | None]] = field(default_factory=dict)

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM_RE.sub(lambda m: "{" + m.group(1) + "}", self.path)

    @property
    def operation_id(self) -> str:
        words = re.findall(r"[A-Za-z0-9]+", self.openapi_path)
        return self.method.lower() + "".join(w[:1].upper() + w[1:] for w in words)

    def openapi(self) -> dict[str, object]:
        doc: dict[str, object] = {"operationId": self.operation_id, "summary": self.summary}
        if self.description:
            doc["description"] = self.description
        if self.tags:
            doc["tags"] = list(self.tags)
        if self.params:
            doc["parameters"] = [param.openapi() for param in self.params]
        if self.request_body is not None:
            doc["requestBody"] = {
                "required": self.request_body_required,
                "content": {media: {"schema": self.request_body} for media in self.request_body_media_types},
            }
        doc["security"] = [] if self.scope is None else [{SECURITY_SCHEME: [self.scope.value]}]
        if self.scope is not None:
            doc["x-required-scope"] = self.scope.value
        doc["responses"] = self._responses()
        return doc

    def _responses(self) -> dict[str, object]:
        responses: dict[str, object] = {}
        if self.websocket:
            responses["101"] = {"description": "switched to the WebSocket protocol"}
        else:
            success: dict[str, object] = {"description": self.response_description}
            if self.response is not None:
                success["content"] = {self.response_media_type: {"schema": self.response}}
            responses[str(self.response_status)] = success
        for status, (description, schema) in self.extra_responses.items():
            extra: dict[str, object] = {"description": description}
            if schema is not None:
                extra["content"] = {"application/json": {"schema": schema}}
            responses[str(status)] = extra
        errors: list[tuple[int, str]] = []
        if self.websocket:  # first: these descriptions win over the generic ones below
            errors += [
                (400, "not a WebSocket upgrade, or a parameter is wrong (`field` names it)"),
                (429, "this token's rate limit, or its limit of open WebSocket clients, is reached; see Retry-After"),
                (503, "the gateway's limit of open WebSocket clients is reached, or the provider is unavailable"),
            ]
        if self.params or self.request_body is not None:
            errors.append((400, "a parameter is missing, malformed or out of range (`field` names it)"))
        if self.scope is not None:
            errors += [
                (401, "no bearer token, or an unknown one"),
                (403, f"the token lacks the `{self.scope.value}` scope"),
                (429, "this token's rate limit is exceeded; see Retry-After"),
            ]
        if self.calls_provider:
            errors += [
                (404, "not found (for example an unknown symbol)"),
                (409, "refused in the current state (reason says why: balance, book out of sync, ...)"),
                (501, "not implemented by the provider yet"),
                (503, "the provider or the exchange is unavailable; see Retry-After"),
                (504, "the provider did not answer in time"),
            ]
        errors.append((500, "internal error"))
        for status, description in errors:
            responses.setdefault(
                str(status),
                {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
        return dict(sorted(responses.items()))


class Api:
    """The registry of one application's routes."""

    def __init__(self, app: web.Application, title: str, version: str, description: str = "") -> None:
        self._app = app
        self.title = title
        self.version = version
        self.description = description
        self._operations: list[Operation] = []
        self._by_route: dict[web.AbstractRoute, Operation] = {}

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(self._operations)

    def route(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        scope: Scope | None,
        summary: str,
        params: Sequence[Param] = (),
        response: JsonSchema | None = None,
        response_status: int = 200,
        response_description: str = "OK",
        response_media_type: str = "application/json",
        description: str = "",
        tags: Sequence[str] = (),
        request_body: JsonSchema | None = None,
        request_body_required: bool = True,
        request_body_media_types: Sequence[str] = ("application/json",),
        websocket: bool = False,
        calls_provider: bool = True,
        extra_responses: Mapping[int, tuple[str, JsonSchema | None]] | None = None,
    ) -> Operation:
        """Register `handler` for METHOD PATH. `scope` is required (None means public, explicitly)."""
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"{method} {path}: unsupported method")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"{method} {path}: a parameter is declared twice")
        in_path = set(_PATH_PARAM_RE.findall(path))
        declared_path = {p.name for p in params if p.location is ParamIn.PATH}
        if in_path != declared_path:
            raise ValueError(f"{method} {path}: path parameters {sorted(in_path)} must be declared as ParamIn.PATH")
        if websocket and method != "GET":
            raise ValueError(f"{method} {path}: WebSocket routes are GET")
        operation = Operation(
            method=method,
            path=path,
            summary=summary,
            scope=scope,
            params=tuple(params),
            response=response,
            response_status=response_status,
            response_description=response_description,
            response_media_type=response_media_type,
            description=description,
            tags=tuple(tags),
            request_body=request_body,
            request_body_required=request_body_required,
            request_body_media_types=tuple(request_body_media_types),
            websocket=websocket,
            calls_provider=calls_provider,
            extra_responses=dict(extra_responses or {}),
        )
        route = self._app.router.add_route(method, path, _with_params(operation.params, handler))
        self._operations.append(operation)
        self._by_route[route] = operation
        return operation

    def operation_for(self, request: web.Request) -> Operation | None:
        """The operation the request was routed to; None for unregistered routes and for 404/405."""
        route = request.match_info.route
        return self._by_route.get(route)

    def document(self) -> dict[str, object]:
        paths: dict[str, dict[str, object]] = {}
        for operation in self._operations:
            paths.setdefault(operation.openapi_path, {})[operation.method.lower()] = operation.openapi()
        info: dict[str, object] = {"title": self.title, "version": self.version}
        if self.description:
            info["description"] = self.description
        return {
            "openapi": OPENAPI_VERSION,
            "info": info,
            "paths": paths,
            "components": {
                "schemas": {"Error": dict(ERROR_SCHEMA)},
                "securitySchemes": {
                    SECURITY_SCHEME: {
                        "type": "http",
                        "scheme": "bearer",
                        "description": (
                            "A token from the gateways' tokens file, as `Authorization: Bearer <token>`. "
                            "Each operation names the scope it needs (read, account, trade). Browsers "
                            "opening a WebSocket may instead offer the subprotocols `bearer, <token>`; "
                            "the server selects `bearer`."
                        ),
                    }
                },
            },
        }

    def docs_html(self) -> str:
        """A self-contained page listing every operation (no scripts, no CDN)."""
        rows = []
        for op in self._operations:
            params = "".join(
                f"<li><code>{html.escape(p.name)}</code> ({p.location.value}, {p.kind.__name__}"
                f"{', required' if p.required else ''}"
                f"{f', default {html.escape(_default_text(p.default))}' if p.default is not None else ''}"
                f"{f', {p.minimum}..' if p.minimum is not None else ''}"
                f"{f'..{p.maximum}' if p.maximum is not None else ''})"
                f"{' ' + html.escape(p.description) if p.description else ''}</li>"
                for p in op.params
            )
            scope = "public" if op.scope is None else f"scope <code>{op.scope.value}</code>"
            rows.append(
                f'<section id="{html.escape(op.operation_id)}"><h2><span class="m">{op.method}</span> '
                f"<code>{html.escape(op.openapi_path)}</code></h2><p>{html.escape(op.summary)} — {scope}"
                f"{' — WebSocket' if op.websocket else ''}</p>"
                f"{f'<p>{html.escape(op.description)}</p>' if op.description else ''}"
                f"{f'<ul>{params}</ul>' if params else ''}</section>"
            )
        return (
            '<!doctype html><html><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
            "h2{font-size:1.1rem;margin-bottom:.2rem}.m{display:inline-block;min-width:4rem;color:#06c}"
            "section{border-top:1px solid #ddd;padding:.5rem 0}code{background:#f4f4f4}"
            f"</style></head><body><h1>{html.escape(self.title)} {html.escape(self.version)}</h1>"
            f"<p>{html.escape(self.description)}</p>"
            '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). '
            "Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>.</p>" + "".join(rows) + "</body></html>"
        )


def _with_params(params: tuple[Param, ...], handler: Handler) -> Handler:
    async def parsed(request: web.Request) -> web.StreamResponse:
        try:
            request[PARAMS] = parse_params(params, request.query, request.match_info)
        except ParamError as exc:
            raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, str(exc), field=exc.name) from None
        return await handler(request)

    return parsed


API = web.AppKey("api", Api)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[API].document())


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[API].docs_html(),
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


def add_openapi_routes(api: Api) -> None:
    api.route(
        "GET",
        "/openapi.json",
        openapi_json,
        scope=None,
        summary="This API's OpenAPI 3.1 document",
        response={"type": "object", "description": "an OpenAPI 3.1 document"},
        tags=("meta",),
        calls_provider=False,
    )
    api.route(
        "GET",
        "/docs",
        docs_page,
        scope=None,
        summary="Human-readable list of the operations",
        response={"type": "string"},
        response_media_type="text/html",
        tags=("meta",),
        calls_provider=False,
    )
