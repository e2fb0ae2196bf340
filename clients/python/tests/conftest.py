"""Fixtures of the client's tests: a real ``auditlog serve`` process (the project's
``tests/live_server.py``) with a key for one tenant."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_PROJECT_TESTS = Path(__file__).resolve().parents[3] / "tests"
if str(_PROJECT_TESTS) not in sys.path:
    sys.path.insert(0, str(_PROJECT_TESTS))

from live_server import Server, create_key, serving  # noqa: E402

SCOPES = "events:write,events:read,log:read"


class Live:
    """A running server, its data directory and a key of tenant ``t``."""

    def __init__(self, server: Server, data: Path, token: str) -> None:
        self.server = server
        self.data = data
        self.token = token

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the tests of a module; each test uses a tenant of its own
    (``tenant_token``) where the events of others would be in the way."""
    base = tmp_path_factory.mktemp("serve")
    data = base / "data"
    token = create_key(data, "t", SCOPES)
    with serving(data, base / "serve.log", "--checkpoint-interval-ms", "50") as server:
        yield Live(server, data, token)


_counter = iter(range(1_000_000))


@pytest.fixture
def token(live: Live) -> str:
    """A key of a tenant of this test's own, on the module's server."""
    return create_key(live.data, f"tenant{next(_counter)}", SCOPES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
