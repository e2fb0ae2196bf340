"""Per-credential request rates (``RequestLimiter``) over HTTP: 429 with Retry-After.

Writes are the routes that need ``events:write``; reads, every other route that needs a
credential. Each credential has a bucket of each kind; the buckets here run on a clock the
tests move.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from auditlog.config import Settings
from auditlog.server.app import AuditlogApp
from auditlog.service.ratelimit import RequestLimiter, TokenBuckets
from security.routes import call_for, credential_routes
from server.api import Api, bearer, problem
from server.conftest import QUIET, MakeApi
from server.logins import add_user, login, token_of
from service.test_ratelimit import Clock

pytestmark = pytest.mark.anyio

WRITE_BURST = 3
READ_BURST = 2


@pytest.fixture
def settings() -> Settings:
    """Small buckets: 3 writes and 2 reads at once, then one of each a second."""
    return replace(QUIET, write_rate=1, write_burst=WRITE_BURST, read_rate=1, read_burst=READ_BURST)


@pytest.fixture
def clock(app: AuditlogApp) -> Clock:
    """The application's buckets as ``settings`` make them, on a clock the test moves."""
    clock = Clock()
    app.services.requests = RequestLimiter(
        TokenBuckets(WRITE_BURST, 1.0, clock), TokenBuckets(READ_BURST, 1.0, clock)
    )
    return clock


def assert_limited(response: httpx.Response, kind: str) -> None:
    doc = problem(response, 429)
    assert response.headers["retry-after"] == "1"
    assert f"over its {kind} rate" in doc["detail"]


async def write(api: Api, n: int) -> httpx.Response:
    return await api.post({"id": f"w{n}", "type": "t"})


async def test_the_settings_make_the_buckets(app: AuditlogApp) -> None:
    limiter = app.services.requests
    assert limiter.writes is not None
    assert limiter.reads is not None
    assert (limiter.writes.capacity, limiter.writes.refill_seconds) == (WRITE_BURST, 1.0)
    assert (limiter.reads.capacity, limiter.reads.refill_seconds) == (READ_BURST, 1.0)


@pytest.mark.usefixtures("clock")
async def test_writes_past_the_burst_are_429_and_not_stored(api: Api, make_api: MakeApi) -> None:
    for n in range(WRITE_BURST):
        assert (await write(api, n)).status_code == 201
    assert_limited(await write(api, 99), "write")
    assert_limited(await api.post([{"id": "b1", "type": "t"}]), "write")
    # Reads have a bucket of their own; another credential, buckets of its own.
    assert [e["id"] for e in await api.everything()] == ["w0", "w1", "w2"]
    other = await make_api("acme", name="other")
    assert (await write(other, 99)).status_code == 201


async def test_a_bucket_refills_at_the_rate(api: Api, clock: Clock) -> None:
    for n in range(WRITE_BURST):
        await write(api, n)
    assert_limited(await write(api, 3), "write")
    clock.now += 1.0
    assert (await write(api, 3)).status_code == 201
    assert_limited(await write(api, 4), "write")
    clock.now += 10.0  # never more than the burst
    for n in range(4, 4 + WRITE_BURST):
        assert (await write(api, n)).status_code == 201
    assert_limited(await write(api, 99), "write")


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize(
    "path", ["/v1/events", "/v1/events/nope", "/v1/auth/whoami", "/auth", "/event"]
)
async def test_every_other_authenticated_route_is_a_read(
    api: Api, client: httpx.AsyncClient, path: str
) -> None:
    for _ in range(READ_BURST):
        assert (await client.get(path, headers=api.headers)).status_code in (200, 404)
    assert_limited(await client.get(path, headers=api.headers), "read")
    assert_limited(await api.query(), "read")  # one bucket for every read
    assert (await write(api, 0)).status_code == 201  # and another for writes


@pytest.mark.usefixtures("clock")
async def test_the_first_versions_write_is_a_write(api: Api, client: httpx.AsyncClient) -> None:
    for n in range(WRITE_BURST):
        response = await client.post(
            "/event", json={"event_type": "t", "event_details": {"n": n}}, headers=api.headers
        )
        assert response.status_code == 200
    assert_limited(await write(api, 0), "write")


@pytest.mark.usefixtures("clock")
async def test_refused_requests_take_no_token(
    api: Api, client: httpx.AsyncClient, make_api: MakeApi
) -> None:
    writer = await make_api("acme", ("events:write",), "writer")
    for _ in range(10):
        problem(await writer.query(), 403)  # no scope: refused before the limit
        problem(await client.get("/v1/events", headers=bearer(writer.token + "x")), 401)
    for _ in range(READ_BURST):
        assert (await client.get("/v1/auth/whoami", headers=writer.headers)).status_code == 200


@pytest.mark.usefixtures("clock")
async def test_routes_without_a_credential_are_not_limited(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app)
    for _ in range(3 * READ_BURST):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/ping")).status_code == 200
    for _ in range(3 * READ_BURST):  # logins have limits of their own, on failures
        assert (await login(client)).status_code == 200


@pytest.mark.usefixtures("clock")
async def test_a_login_token_is_limited_like_a_key(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, scopes=("events:read",))
    reader = Api(client, await token_of(client))
    for _ in range(READ_BURST):
        await reader.page()
    assert_limited(await reader.query(), "read")


@pytest.mark.parametrize(
    "settings",
    [replace(QUIET, write_rate=0, write_burst=1, read_rate=0, read_burst=1)],
    ids=["rate-0"],
)
async def test_a_rate_of_0_is_no_limit(app: AuditlogApp, api: Api) -> None:
    assert app.services.requests.writes is None
    assert app.services.requests.reads is None
    for n in range(20):
        assert (await write(api, n)).status_code == 201
        assert (await api.query()).status_code == 200


@pytest.mark.parametrize("settings", [Settings()], ids=["defaults"])
async def test_the_defaults_limit_reads_and_writes(app: AuditlogApp) -> None:
    limiter = app.services.requests
    assert limiter.writes is not None
    assert limiter.reads is not None
    assert limiter.writes.capacity == 40000
    assert limiter.writes.refill_seconds == pytest.approx(1 / 20000)
    assert limiter.reads.capacity == 1000
    assert limiter.reads.refill_seconds == pytest.approx(1 / 200)


@pytest.mark.usefixtures("clock")
async def test_every_route_with_a_credential_is_limited_and_documents_it(
    app: AuditlogApp, client: httpx.AsyncClient, make_api: MakeApi
) -> None:
    document = (await client.get("/openapi.json")).json()
    for route in credential_routes(app):
        key = await make_api("acme", ("admin",), "all-routes")
        call = call_for(route)
        kind = "write" if route.scope == "events:write" else "read"
        for _ in range(WRITE_BURST if kind == "write" else READ_BURST):
            assert (await call.send(client, key.headers)).status_code != 429, route
        assert_limited(await call.send(client, key.headers), kind)
        assert "429" in document["paths"][route.pattern][route.method.lower()]["responses"]
