"""The security suite runs through the real ASGI application, as the HTTP tests do: the
fixtures of ``tests/server/conftest.py`` (a fresh application on each backend, a client whose
every answer is checked by ``AnswerGuard``, keys made with ``make_api``)."""

from __future__ import annotations

from server.conftest import (  # noqa: F401 (fixtures, found by pytest by their names)
    api,
    app,
    backend,
    client,
    expect_unavailable,
    guard,
    make_api,
    settings,
    store,
)
