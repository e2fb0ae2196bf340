"""The ``storage`` fixture: each store the reliability tests run real servers on.

A backend joins by adding an entry to ``STORES``: a name and a function of the test's
``tmp_path`` that gives a ``Storage`` (``Storage.sqlite(DIR)`` for ``--data DIR``, or
``Storage.at(URL)`` for ``--store URL``) holding nothing yet. PostgreSQL runs where
``AUDITLOG_TEST_POSTGRES_URL`` names a server (each test in a schema of its own, ``pgtest``),
and is skipped elsewhere (never in CI).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import pgtest
from live_server import Storage

STORES: dict[str, Callable[[Path], Storage]] = {
    "sqlite": lambda tmp_path: Storage.sqlite(tmp_path / "data"),
    "postgresql": lambda tmp_path: Storage.at(pgtest.private_url()),
}


@pytest.fixture(params=sorted(STORES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty store of each backend in turn."""
    return STORES[request.param](tmp_path)
