"""The OpenAPI document (API.md §7): every route documented, and documented truthfully.

The structural checks need nothing beyond the standard library. When ``jsonschema`` and
``openapi-spec-validator`` are installed, real answers are validated against the documented
schemas and the document against the OpenAPI 3.1 specification too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from auditlog.errors import StorageError
from auditlog.model.event import ENVELOPE_FIELDS, SERVER_FIELDS
from auditlog.model.fields import OPS
from auditlog.server.app import AuditlogApp
from auditlog.server.asgi import Request, Response
from auditlog.server.openapi import (
    ConflictingSchema,
    Operation,
    UndocumentedRoute,
    openapi_document,
    openapi_value,
)
from auditlog.server.routing import Route
from server.api import Api, bearer
from server.conftest import ControlledStore, MakeApi
from server.logins import PASSWORD, add_user, login, token_of

pytestmark = pytest.mark.anyio

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOGINS = {("POST", "/v1/auth/token"), ("POST", "/login")}


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    value: dict[str, Any] = response.json()
    return value


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert method in METHODS, (path, method)
            yield method.upper(), path, operation


def resolve(doc: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` to what it names."""
    while "$ref" in value:
        ref = value["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        value = target
    return value


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


async def test_the_served_document_is_that_of_the_routes(
    app: AuditlogApp, doc: dict[str, Any]
) -> None:
    assert doc == orjson.loads(openapi_document(app.router.routes))
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] == "auditlog"
    assert doc["info"]["version"]


async def test_every_route_is_documented_and_nothing_else(
    app: AuditlogApp, doc: dict[str, Any]
) -> None:
    routes = {(r.method, r.pattern) for r in app.router.routes}
    documented = {(method, path) for method, path, _ in operations(doc)}
    assert documented == routes
    assert all(r.doc is not None for r in app.router.routes)


async def test_every_operation_is_complete(app: AuditlogApp, doc: dict[str, Any]) -> None:
    scopes = {(r.method, r.pattern): r.scope for r in app.router.routes}
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids))
    for method, path, operation in operations(doc):
        assert re.fullmatch(r"[a-z][A-Za-z]*", operation["operationId"]), operation
        assert operation["summary"]
        assert operation["description"]
        responses = operation["responses"]
        # Every operation says how it succeeds: an answer, or a redirect (GET /ui).
        assert any(status[0] in "23" for status in responses), (method, path)
        for status, response in responses.items():
            assert re.fullmatch(r"[1-5][0-9][0-9]", status)
            response = resolve(doc, response)
            assert response["description"]
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"]
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
        scope = scopes[(method, path)]
        if scope is None:
            assert operation["security"] == []
            # Only a login, which checks a password instead of a credential, answers 401.
            assert ("401" in responses) == ((method, path) in LOGINS)
        else:
            assert operation["security"] == [{"bearer": [scope] if scope else []}]
            assert "401" in responses
            assert ("403" in responses) == bool(scope)
        for name in re.findall(r"\{(\w+)\}", path):
            [param] = [p for p in operation["parameters"] if p["name"] == name]
            assert param["in"] == "path"
            assert param["required"] is True


async def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    found = list(refs(doc))
    assert found
    for ref in found:
        resolve(doc, {"$ref": ref})


async def test_the_write_operation(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/events"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "application/x-ndjson"}
    one_of = body["content"]["application/json"]["schema"]["oneOf"]
    assert {"$ref": "#/components/schemas/EventInput"} in one_of
    assert {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/components/schemas/EventInput"},
    } in one_of
    assert set(operation["responses"]) == {
        "200", "201", "400", "401", "403", "409", "413", "415", "422", "429", "503"
    }  # fmt: skip
    assert "Location" in operation["responses"]["201"]["headers"]
    for status in ("429", "503"):
        assert "Retry-After" in resolve(doc, operation["responses"][status])["headers"]
    unauthorized = resolve(doc, operation["responses"]["401"])
    assert "WWW-Authenticate" in unauthorized["headers"]


async def test_the_query_operation_lists_every_parameter(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/events"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    named = {"type", "source", "outcome", "actor", "actor.type", "subject", "subject.type"}
    named |= {"since", "until", "q", "order", "limit", "cursor"}
    assert named <= set(params)
    assert all(p["in"] == "query" for p in params.values())
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 100,
    }
    assert params["order"]["schema"]["enum"] == ["desc", "asc"]
    for name in ("type", "actor", "subject.type"):
        assert params[name]["schema"]["type"] == "array"  # repeated: OR
        assert params[name]["explode"] is True
    # Any other field path, with or without an operator: a free-form object of parameters.
    [free] = [p for name, p in params.items() if name not in named]
    assert free["style"] == "form"
    assert free["explode"] is True
    assert free["schema"]["type"] == "object"
    names = re.compile(free["schema"]["propertyNames"]["pattern"])
    for good in ("data.location.city", "data.amount[lt]", "time[gte]", "data.tags[in]"):
        assert names.fullmatch(good), good
    for bad in ("data..city", "data.amount[between]", "data.a b", "x[lt"):
        assert not names.fullmatch(bad), bad
    for op in OPS:
        assert f"`{op}`" in free["description"]
    assert "PATH[op]" in free["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventPage"
    }


async def test_the_event_schemas_have_every_field_of_the_api(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    stored = schemas["Event"]
    assert set(stored["properties"]) == {*ENVELOPE_FIELDS, *SERVER_FIELDS}
    assert set(stored["properties"]) - set(stored["required"]) == {"subject", "outcome"}
    given = schemas["EventInput"]
    assert set(given["properties"]) == set(ENVELOPE_FIELDS)
    assert given["required"] == ["type"]
    assert given["additionalProperties"] is False
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    item = problem["properties"]["errors"]["items"]
    assert set(item["properties"]) == {"index", "field", "message"}
    assert set(item["required"]) == {"field", "message"}


async def test_a_route_without_documentation_cannot_be_described(app: AuditlogApp) -> None:
    async def handler(request: Request, credential: object) -> Response:
        return Response(204)

    extra = Route("DELETE", "/v1/events/{id}", handler, "admin", "events.delete")
    with pytest.raises(UndocumentedRoute, match=re.escape("DELETE /v1/events/{id}")) as raised:
        openapi_document([*app.router.routes, extra])
    # The message says where to write it: in the module that makes the route.
    assert __name__ in str(raised.value)
    assert "doc=Operation(" in str(raised.value)


def _documented_route(pattern: str, schemas: dict[str, Any]) -> Route:
    async def handler(request: Request, credential: object) -> Response:
        return Response(204)

    doc = Operation(
        operation_id="probe",
        summary="A probe",
        description="A route of this test.",
        tag="operations",
        responses={"204": {"description": "Nothing."}},
        schemas=schemas,
    )
    return Route("GET", pattern, handler, None, "probe", doc=doc)


async def test_a_route_may_give_its_own_component_schemas(app: AuditlogApp) -> None:
    own = {"Probe": {"type": "object"}}
    value = openapi_value([*app.router.routes, _documented_route("/probe", own)])
    assert value["components"]["schemas"]["Probe"] == {"type": "object"}
    assert "Probe" not in openapi_value(app.router.routes)["components"]["schemas"]
    # The first version's schemas come with its routes, the old names with them.
    assert "LegacyEvent" in value["components"]["schemas"]


async def test_one_schema_name_cannot_name_two_schemas(app: AuditlogApp) -> None:
    same = _documented_route("/probe", {"Event": {"type": "object"}})
    with pytest.raises(ConflictingSchema, match="'Event'"):
        openapi_value([*app.router.routes, same])
    first = _documented_route("/a", {"Probe": {"type": "object"}})
    second = _documented_route("/b", {"Probe": {"type": "string"}})
    with pytest.raises(ConflictingSchema, match="GET /b"):
        openapi_value([first, second])
    again = _documented_route("/c", {"Probe": {"type": "object"}})
    assert openapi_value([first, again])["components"]["schemas"]["Probe"] == {"type": "object"}


# -- honesty: real answers are what the document says -----------------------------------------


@pytest.fixture
async def answers(
    app: AuditlogApp,
    api: Api,
    make_api: MakeApi,
    client: httpx.AsyncClient,
    store: ControlledStore,
    expect_unavailable: None,
) -> list[httpx.Response]:
    """An answer of every kind each route gives, errors included."""
    reader = await make_api(scopes=("events:read",))
    out = [
        await api.post({"id": "e1", "type": "t", "subject": "s", "outcome": "success"}),
        await api.post({"id": "e1", "type": "t", "subject": "s", "outcome": "success"}),
        await api.post([{"id": "b1", "type": "t"}, {"type": "t", "data": {"n": 1.5}}]),
        await api.post([{"id": "b1", "type": "t"}]),
        await api.post_raw(b'{"type": "n"}\n', "application/x-ndjson"),
        await api.post({"id": "e1", "type": "other"}),
        await api.post({"type": "t", "colour": "red"}),
        await api.post([{"type": "t"}, {}]),
        await api.post({"type": "t", "data": {"pad": "x" * 70_000}}),
        await api.post_raw(b"{", "application/json"),
        await api.post_raw(b"{}", "text/plain"),
        await reader.post({"type": "t"}),
        await api.get("e1"),
        await api.get("nope"),
        await reader.get("e1"),
        await api.query([("limit", "1")]),
        await api.query([("limit", "0")]),
        await api.query([("data.n[gt]", "1"), ("q", "t*")]),
        await client.get("/v1/events"),
        await client.get("/v1/events/e1", headers={"Authorization": "Bearer nonsense"}),
        await client.get("/v1/auth/whoami", headers=api.headers),
        await client.get("/v1/auth/whoami"),
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/metrics"),
        await client.get("/openapi.json"),
    ]
    out += await login_answers(app, client, reader)
    out += await log_answers(app, await make_api(scopes=LOG_SCOPES), reader)
    store.append_error = StorageError("the disk is gone", 1)
    out.append(await api.post({"type": "t"}))
    store.query_error = StorageError("the query took too long", 1)
    out.append(await api.query())
    store.ping_error = StorageError("the database is unreachable", 1)
    out.append(await client.get("/readyz"))
    assert {r.status_code for r in out} >= {200, 201, 400, 401, 403, 404, 409, 413, 415, 422, 503}
    assert 429 in {r.status_code for r in out}
    return out


LOG_SCOPES = ("events:write", "events:read", "log:read")


async def log_answers(app: AuditlogApp, auditor: Api, reader: Api) -> list[httpx.Response]:
    """Answers of the /v1/log routes, and of writes that wait for a checkpoint."""
    client, headers = auditor.client, auditor.headers
    text = {**headers, "Accept": "text/plain"}
    out = [
        await client.get("/v1/log/checkpoint", headers=headers),
        await client.post("/v1/events?wait=checkpoint", json={"type": "t"}, headers=headers),
        await client.post(
            "/v1/events?wait=checkpoint", json=[{"type": "t"}, {"type": "u"}], headers=headers
        ),
        await client.post("/v1/events?wait=soon", json={"type": "t"}, headers=headers),
    ]
    await app.services.integrator.run_once()
    out += [
        await client.get("/v1/log/checkpoint", headers=headers),
        await client.get("/v1/log/checkpoint", headers=text),
        await client.get("/v1/log/proof/inclusion", params={"seq": 1}, headers=headers),
        await client.get("/v1/log/proof/inclusion", params={"seq": "x"}, headers=headers),
        await client.get("/v1/log/proof/inclusion", params={"seq": 1000}, headers=headers),
        await client.get("/v1/log/proof/consistency", params={"first": 1}, headers=headers),
        await client.get("/v1/log/proof/consistency", params={"first": 0}, headers=headers),
        await client.get(
            "/v1/log/proof/consistency", params={"first": 9, "second": 1}, headers=headers
        ),
        await client.get(
            "/v1/log/proof/consistency", params={"first": 1, "second": 999}, headers=headers
        ),
        await client.get("/v1/log/public-key", headers=headers),
        await client.get("/v1/log/public-key", headers=text),
        await client.get("/v1/log/pruned", headers=headers),
        await client.get("/v1/log/checkpoint", headers=reader.headers),
        await client.get("/v1/log/checkpoint"),
    ]
    return out


async def login_answers(
    app: AuditlogApp, client: httpx.AsyncClient, reader: Api
) -> list[httpx.Response]:
    """Answers of the login routes and of the first version's routes."""
    await add_user(app)
    token = await token_of(client)
    old = {"Authorization": f"Bearer: {token}"}
    out = [
        await login(client),
        await login(client, "alice", "wrong"),
        await client.post(
            "/v1/auth/token", content=b"{", headers={"Content-Type": "application/json"}
        ),
        await client.post("/v1/auth/token", content=b"x" * 9000),
        await client.post("/v1/auth/token", data={"username": "alice"}),
        await client.get("/v1/auth/whoami", headers=bearer(token)),
        await client.get("/ping"),
        await client.post("/login", json={"username": "alice", "password": PASSWORD}),
        await client.post("/login", json={"username": "alice", "password": "wrong"}),
        await client.post("/login", json={"username": "alice"}),
        await client.get("/auth", headers=old),
        await client.get("/auth"),
        await client.post("/event", json={"event_type": "t", "event_details": {}}, headers=old),
        await client.post("/event", json={"event_type": 1}, headers=old),
        await client.post("/event", content=b"{}", headers={**old, "Content-Type": "text/plain"}),
        await client.post(
            "/event", json={"event_type": "t", "event_details": {}}, headers=reader.headers
        ),
        await client.get("/event", headers=old),
        await client.get("/event", params={"timeStart": "soon"}, headers=old),
        await client.get("/event"),
    ]
    for _ in range(5):
        out.append(await login(client, "mallory", "guess"))
    out.append(await login(client, "mallory", "guess"))
    return out


def documented(
    doc: dict[str, Any], app: AuditlogApp, response: httpx.Response
) -> tuple[dict[str, Any], str]:
    """The documented response object and media type of a real answer."""
    request = response.request
    route, _ = app.router.match(request.method, request.url.path)
    operation = doc["paths"][route.pattern][request.method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], (request.method, route.pattern, status)
    answer = resolve(doc, operation["responses"][status])
    media = response.headers["content-type"]
    assert media in answer["content"], (request.method, route.pattern, status, media)
    return answer, media


async def test_every_answer_is_documented(
    app: AuditlogApp, doc: dict[str, Any], answers: list[httpx.Response]
) -> None:
    for response in answers:
        answer, _ = documented(doc, app, response)
        for name, header in answer.get("headers", {}).items():
            if resolve(doc, header).get("required"):
                assert name.lower() in response.headers, (response.request.url, name)


async def test_every_answer_matches_its_schema(
    app: AuditlogApp, doc: dict[str, Any], answers: list[httpx.Response]
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    checked = 0
    for response in answers:
        answer, media = documented(doc, app, response)
        if not media.endswith("json"):
            continue
        # The components travel with the schema, so its "#/components/..." references resolve.
        schema = {**answer["content"][media]["schema"], "components": doc["components"]}
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        errors = [e.message for e in validator.iter_errors(response.json())]
        assert errors == [], (response.request.method, response.request.url, errors)
        checked += 1
    assert checked >= 20


async def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """``pattern`` as JSON Schema (ECMA 262) reads it: ``$`` is the end of the text only."""
    jsonschema = pytest.importorskip("jsonschema")
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def allows(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Whether the document's ``schema`` allows ``value``."""
    jsonschema = pytest.importorskip("jsonschema")
    ecma = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
    validator = ecma({**schema, "components": doc["components"]})
    return not list(validator.iter_errors(value))


def parameter_schema(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    for parameter in doc["paths"][path][method]["parameters"]:
        parameter = resolve(doc, parameter)
        if parameter["name"] == name:
            schema: dict[str, Any] = parameter["schema"]
            return schema
    raise AssertionError(f"{method} {path} has no parameter {name}")


def body_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


@pytest.mark.parametrize(
    "event",
    [
        {"type": "a\x00b"},
        {"type": "login\n"},
        {"type": "a", "actor": {"id": "alice\u0085"}},
        {"type": "a", "actor": "\x1f"},
        {"type": "a", "subject": {"id": "x\x7f"}},
        {"type": "a", "source": "s\t"},
        {"type": "a", "time": ""},
        {"type": "a", "time": "2026-13-01T00:00:00Z"},
        {"type": "a", "time": 3.1e281},
        {"type": "a", "time": -62135596801},
        {"type": "a", "id": "a b"},
    ],
)
async def test_the_document_refuses_the_events_the_service_refuses(
    doc: dict[str, Any], api: Api, event: dict[str, Any]
) -> None:
    """Control characters, empty and out-of-range times: the schema says what validation does."""
    assert not allows(doc, body_schema(doc, "/v1/events", "post"), event)
    answer = await api.post(event)
    assert answer.status_code == 422, answer.text


async def test_the_document_allows_what_the_service_takes(doc: dict[str, Any], api: Api) -> None:
    event = {
        "type": "ok",
        "time": "2026-11-27T02:27:53.1234567+05:30",
        "actor": {"id": "alice", "type": "user", "name": "Alice"},
        "subject": "inv-1",
        "data": {"deep": {"n": 1.5}},
    }
    assert allows(doc, body_schema(doc, "/v1/events", "post"), event)
    assert allows(doc, body_schema(doc, "/v1/events", "post"), [event, {"type": "b", "time": 0}])
    answer = await api.post(event)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    ("path", "name", "value", "allowed"),
    [
        ("/event", "timeEnd", "", False),
        ("/event", "timeEnd", "1686250800", True),
        ("/event", "timeStart", "2026-11-27T00:00:00Z", True),
        ("/v1/events", "since", "", False),
        ("/v1/events", "since", "1e3", False),
        ("/v1/events", "until", "-1.5", True),
        ("/v1/events", "q", "", False),
    ],
)
async def test_time_and_text_parameters_say_what_is_read(
    doc: dict[str, Any], path: str, name: str, value: str, allowed: bool
) -> None:
    assert allows(doc, parameter_schema(doc, path, "get", name), value) == allowed


async def test_the_legacy_event_type_refuses_control_characters(doc: dict[str, Any]) -> None:
    schema = body_schema(doc, "/event", "post")
    assert not allows(doc, schema, {"event_type": "a\x01", "event_details": {}})
    assert allows(doc, schema, {"event_type": "a", "event_details": {}})


@pytest.mark.parametrize(
    ("filter_", "allowed"),
    [
        (None, True),
        ({"type": ["a", "b"], "data.amount[gt]": 100, "since": "2026-01-01T00:00:00Z"}, True),
        ({"actor.name[prefix]": "Al"}, True),
        ({"0": 1}, False),
        ({"^": None}, False),
        ({"actor.email": "x"}, False),
        ({"type.x": "x"}, False),
        ({"cursor": "x"}, False),
        ({"type": []}, False),
    ],
)
async def test_a_filter_object_names_only_filters(
    doc: dict[str, Any], client: httpx.AsyncClient, make_api: MakeApi, filter_: Any, allowed: bool
) -> None:
    schema = body_schema(doc, "/v1/viewer-tokens", "post")
    assert allows(doc, schema, {"filter": filter_}) == allowed
    admin = await make_api(scopes=("admin",))
    answer = await client.post("/v1/viewer-tokens", json={"filter": filter_}, headers=admin.headers)
    assert (answer.status_code == 201) == allowed, answer.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/log/proof/consistency", ("first", "second")),
        ("/v1/log/proof/inclusion", ("seq", "tree_size")),
    ],
)
async def test_the_order_of_proof_sizes_is_written_down(
    doc: dict[str, Any], path: str, params: tuple[str, str]
) -> None:
    """JSON Schema cannot relate two parameters; their descriptions say the rule instead."""
    described = [
        resolve(doc, p)["description"]
        for p in doc["paths"][path]["get"]["parameters"]
        if resolve(doc, p)["name"] in params
    ]
    assert any(f"`{params[1]}`" in text and "400" in text for text in described), described
