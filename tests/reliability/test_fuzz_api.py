"""Fuzzing the whole API with schemathesis, from its own OpenAPI document (API.md §6, §7).

schemathesis reads ``/openapi.json`` from the application in process (its ASGI transport,
which also runs the lifespan) and sends each route requests made from the documented schemas,
valid and not, with a credential that holds every scope. No answer may be a 5xx, and every
answer must be one the document lists, with its documented content type, headers and schema.
It runs on SQLite and on PostgreSQL, whose drivers refuse some values SQLite takes (NUL
characters, integers past 64 bits).

The examples per route are bounded so the whole run takes seconds; set ``FUZZ_EXAMPLES`` for
a longer hunt (``FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/reliability/test_fuzz_api.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.python import asgi

import pgtest
from auditlog.config import Settings
from auditlog.server.app import AuditlogApp, build_app
from auditlog.storage.factory import open_store
from live_server import Storage, auditlog, create_key, storage_flags

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
#: Seconds a live stream is read before schemathesis cuts it and checks what came.
STREAM_READ_SECONDS = 0.5
#: No 5xx; only documented statuses, content types and headers; bodies as their schema says;
#: requests that break the schema refused with a 4xx. (Not ``positive_data_acceptance``: the
#: document cannot state every rule, such as ``seq < tree_size``, a cursor the service issued
#: or a real calendar date (docs/api.md lists them), so a schema-valid request may rightly be
#: refused.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.missing_required_header,
    checks.unsupported_method,
]
ALL_SCOPES = "events:write,events:read,log:read,admin"
USERNAME = "fuzzer"
PASSWORD = "a password of the fuzzer"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_data(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, str]:
    """A store with a key of every scope and a login, made by the command line."""
    if request.param == "postgresql":
        url = pgtest.private_url()
        storage = Storage.at(url)
        config = Settings(store=url, read_rate=0, write_rate=0)
    else:
        data = tmp_path_factory.mktemp("fuzz") / "data"
        storage = Storage.sqlite(data)
        config = Settings(data=str(data), read_rate=0, write_rate=0)
    token = create_key(storage, "t", ALL_SCOPES)
    added = auditlog(
        "users", "add", USERNAME, "--tenant", "t", "--scopes", ALL_SCOPES,
        *storage_flags(storage), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return config, token


@pytest.fixture
def fuzz_app(fuzz_data: tuple[Settings, str]) -> Iterator[AuditlogApp]:
    """The application on that store, one per test: schemathesis starts its lifespan on
    the first request and ends it after each test, and an application starts only once."""
    config, _ = fuzz_data
    app = build_app(config, open_store(config))
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture
def fuzz_schema(fuzz_app: AuditlogApp) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


@pytest.fixture
def token(fuzz_data: tuple[Settings, str]) -> str:
    return fuzz_data[1]


def documented_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document, read without any I/O."""
    config = Settings(store="memory:")
    app = build_app(config, open_store(config))
    doc = orjson.loads(app._openapi())
    return [(method.upper(), path) for path, item in doc["paths"].items() for method in item]


# psycopg_pool's tasks draw their reconnection jitter from the global ``random`` module while
# the application runs beside schemathesis's draws; Hypothesis takes that for a strategy using
# ``random``. Nothing of this test's strategies does.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize(("method", "path"), documented_operations())
def test_every_route_answers_as_documented_and_never_5xx(
    fuzz_schema: Any, token: str, method: str, path: str
) -> None:
    operation = fuzz_schema[path][method]
    headers = {"Authorization": f"Bearer {token}"}
    # A live stream never ends: schemathesis checks what came before its read timeout, and
    # what comes at once (the head, the first block, the replay of a short log) is all there
    # is to check.
    timeout = {"timeout": STREAM_READ_SECONDS} if path == "/v1/events/stream" else {}

    @given(operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        deadline=None,
        database=None,
    )
    def call(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS, **timeout)
        statuses.add(response.status_code)

    statuses: set[int] = set()
    call()
    # The credential was taken: not every answer was a refusal of it.
    assert statuses - {401}, statuses
