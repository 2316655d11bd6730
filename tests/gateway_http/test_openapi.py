"""The route registry and the OpenAPI 3.1 document it builds: complete, valid JSON Schema,
served as declared, and matching what the routes actually answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from gateway_auth.tokens import Scope, TokenStore
from gateway_http.app import HEALTH_SCHEMA, create_app
from gateway_http.config import HttpGatewayConfig
from gateway_http.openapi import API, PARAMS, Api, Param, ParamError, ParamIn, Params, parse_params
from launcher.processes import free_port
from service_runtime.config import Address

Client = TestClient[web.Request, web.Application]

DEPTH_SCHEMA = {
    "type": "object",
    "required": ["lastUpdateId", "bids", "asks"],
    "properties": {
        "lastUpdateId": {"type": "integer"},
        "bids": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "asks": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
    },
}
ORDER_BODY = {"type": "object", "required": ["symbol"], "properties": {"symbol": {"type": "string"}}}


async def depth(request: web.Request) -> web.Response:
    limit = request[PARAMS].get("limit", int)
    return web.json_response({"lastUpdateId": 1, "bids": [["1.00", "2"]] * min(limit, 2), "asks": []})


async def order(request: web.Request) -> web.Response:
    return web.json_response({"orderId": request[PARAMS].get("orderId", int)})


async def stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close()
    return ws


def register_dummy_routes(api: Api) -> None:
    api.route(
        "GET",
        "/test/depth",
        depth,
        scope=Scope.READ,
        summary="Order book <depth>",
        description="The local book; out-of-sync books are refused.",
        tags=("market data",),
        params=[
            Param("symbol", str, required=True, pattern="^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT"),
            Param("limit", int, minimum=1, maximum=5000, default=100),
        ],
        response=DEPTH_SCHEMA,
    )
    api.route(
        "GET",
        r"/test/orders/{orderId:\d+}",
        order,
        scope=Scope.ACCOUNT,
        summary="One order",
        params=[Param("orderId", int, required=True, location=ParamIn.PATH, minimum=1)],
        response={"type": "object", "properties": {"orderId": {"type": "integer"}}},
    )
    api.route(
        "POST",
        "/test/orders",
        order,
        scope=Scope.TRADE,
        summary="Place an order",
        request_body=ORDER_BODY,
        params=[
            Param("price", Decimal, minimum=Decimal("0.00000001")),
            Param("side", str, choices=("BUY", "SELL")),
            Param("ratio", float, minimum=0.0, maximum=1.0, default=0.5),
            Param("test", bool, default=False),
        ],
        response_status=201,
        response={"type": "object"},
    )
    api.route("GET", "/test/stream", stream, scope=Scope.READ, summary="Live updates", websocket=True)


@pytest.fixture
def app() -> web.Application:
    config = HttpGatewayConfig(
        addr=Address("127.0.0.1", 0),
        provider_addr=Address("127.0.0.1", free_port()),  # nothing listens: /health reports it
        tokens=TokenStore(),
    )
    application = create_app(config)
    register_dummy_routes(application[API])
    return application


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[Client]:
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def schemas_in(node: object) -> Iterator[object]:
    """Every value under a `schema` key (parameters, media types) of the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema":
                yield value
            else:
                yield from schemas_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from schemas_in(item)


def refs_in(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def test_every_registered_route_is_documented_with_its_scope(app: web.Application) -> None:
    document = app[API].document()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    assert isinstance(paths, dict)
    # The app's own routes are there too; these are the plumbing's and this test's.
    assert {(path, method) for path, item in paths.items() for method in item} >= {
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/docs", "get"),
        ("/test/depth", "get"),
        ("/test/orders/{orderId}", "get"),
        ("/test/orders", "post"),
        ("/test/stream", "get"),
    }
    assert paths["/health"]["get"]["security"] == []
    assert paths["/metrics"]["get"]["security"] == []
    depth_op = paths["/test/depth"]["get"]
    assert depth_op["security"] == [{"bearerAuth": ["read"]}]
    assert depth_op["x-required-scope"] == "read"
    assert depth_op["parameters"] == [
        {
            "name": "symbol",
            "in": "query",
            "required": True,
            "description": "e.g. BTCUSDT",
            "schema": {"type": "string", "pattern": "^[A-Z0-9]{2,20}$"},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 100},
        },
    ]
    assert depth_op["responses"]["200"]["content"]["application/json"]["schema"] == DEPTH_SCHEMA
    assert set(depth_op["responses"]) == {"200", "400", "401", "403", "404", "409", "429", "500", "501", "503", "504"}
    assert paths["/test/orders/{orderId}"]["get"]["parameters"][0]["in"] == "path"
    place = paths["/test/orders"]["post"]
    assert place["requestBody"]["content"]["application/json"]["schema"] == ORDER_BODY
    assert "201" in place["responses"] and "200" not in place["responses"]
    assert [p["schema"] for p in place["parameters"]] == [
        {"type": "string", "format": "decimal", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "minimum": 1e-08},
        {"type": "string", "enum": ["BUY", "SELL"]},
        {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 0.5},
        {"type": "boolean", "default": False},
    ]
    assert "101" in paths["/test/stream"]["get"]["responses"]
    assert set(paths["/health"]["get"]["responses"]) == {"200", "500", "503"}


def test_the_document_is_consistent(app: web.Application) -> None:
    document = app[API].document()
    for schema in schemas_in(document):
        jsonschema.Draft202012Validator.check_schema(schema)
    components = document["components"]
    assert isinstance(components, dict)
    for ref in refs_in(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in components["schemas"]
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]  # type: ignore[attr-defined]
    assert len(operation_ids) == len(set(operation_ids))
    assert components["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": components["securitySchemes"]["bearerAuth"]["description"],
    }


async def test_served_document_and_docs_page(client: Client, app: web.Application) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == app[API].document()
    response = await client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    for operation in app[API].operations:
        assert f'id="{operation.operation_id}"' in page
    assert "Order book &lt;depth&gt;" in page  # escaped, not markup
    assert "<script" not in page and "src=" not in page and "http://" not in page and "https://" not in page


async def test_answers_match_their_documented_schemas(client: Client, app: web.Application) -> None:
    document = app[API].document()
    paths = document["paths"]
    assert isinstance(paths, dict)
    error_schema = document["components"]["schemas"]["Error"]  # type: ignore[index]
    health = await client.get("/health")
    assert health.status == 503  # nothing listens at the provider address
    body = await health.json()
    jsonschema.validate(body, paths["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"])
    jsonschema.validate(body, HEALTH_SCHEMA)
    assert body["provider"]["status"] == "UNREACHABLE"
    unauthorized = await client.get("/test/depth", params={"symbol": "BTCUSDT"})
    assert unauthorized.status == 401
    jsonschema.validate(await unauthorized.json(), error_schema)


def test_registration_refuses_inconsistent_declarations() -> None:
    api = Api(web.Application(), "t", "1")
    with pytest.raises(ValueError, match=r"must be declared as ParamIn\.PATH"):
        api.route("GET", "/orders/{orderId}", order, scope=Scope.ACCOUNT, summary="x")
    with pytest.raises(ValueError, match="declared twice"):
        api.route("GET", "/a", depth, scope=Scope.READ, summary="x", params=[Param("a", str), Param("a", int)])
    with pytest.raises(ValueError, match="WebSocket routes are GET"):
        api.route("POST", "/ws", stream, scope=Scope.READ, summary="x", websocket=True)
    with pytest.raises(ValueError, match="unsupported method"):
        api.route("TRACE", "/t", depth, scope=None, summary="x")
    assert api.operations == ()


def test_params_refuse_inconsistent_declarations() -> None:
    with pytest.raises(ValueError, match="has no default"):
        Param("a", int, required=True, default=1)
    with pytest.raises(ValueError, match="strings only"):
        Param("a", int, choices=("1",))
    with pytest.raises(ParamError, match="at most 10"):
        Param("a", int, maximum=10, default=11)
    with pytest.raises(ValueError, match="must be required"):
        Param("a", int, location=ParamIn.PATH)
    with pytest.raises(TypeError, match="unsupported type"):
        Param("a", list)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("param", "text", "expected"),
    [
        (Param("p", Decimal), "0.00012300", Decimal("0.00012300")),
        (Param("p", Decimal), "-5", Decimal("-5")),
        (Param("p", float), "1.5e3", 1500.0),
        (Param("p", int), "-7", -7),
        (Param("p", bool), "false", False),
        (Param("p", str, choices=("BUY", "SELL")), "SELL", "SELL"),
    ],
)
def test_parse_params_values(param: Param, text: str, expected: object) -> None:
    parsed = parse_params([param], MultiDict({"p": text}))
    assert parsed.values["p"] == expected
    assert type(parsed.values["p"]) is type(expected)


@pytest.mark.parametrize(
    ("param", "text"),
    [
        (Param("p", Decimal), "1e5"),  # money is plain decimal strings only
        (Param("p", Decimal), "NaN"),
        (Param("p", Decimal, minimum=Decimal("0.01")), "0.001"),
        (Param("p", float), "nan"),
        (Param("p", float), "inf"),
        (Param("p", int), "1_000"),
        (Param("p", int), " 1"),
        (Param("p", bool), "1"),
        (Param("p", str, choices=("BUY", "SELL")), "buy"),
    ],
)
def test_parse_params_refusals_name_the_parameter(param: Param, text: str) -> None:
    with pytest.raises(ParamError) as raised:
        parse_params([param], MultiDict({"p": text}))
    assert raised.value.name == "p"


def test_parsed_params_are_typed() -> None:
    params = parse_params([Param("n", int, default=3), Param("s", str)], MultiDict())
    assert params.get("n", int) == 3
    assert params.optional("s", str) is None
    with pytest.raises(KeyError):
        params.get("s", str)
    with pytest.raises(TypeError):
        params.get("n", bool)  # bool is not int here
    assert Params().optional("anything", str) is None


async def test_path_parameters_are_parsed() -> None:
    store, token = TokenStore().issue("acct", frozenset({Scope.ACCOUNT}))
    config = HttpGatewayConfig(
        addr=Address("127.0.0.1", 0), provider_addr=Address("127.0.0.1", free_port()), tokens=store
    )
    application = create_app(config)
    register_dummy_routes(application[API])
    async with TestClient(TestServer(application)) as account_client:
        response = await account_client.get("/test/orders/42", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200
        assert await response.json() == {"orderId": 42}
        response = await account_client.get("/test/orders/0", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 400
        assert (await response.json())["field"] == "orderId"
