"""PostgreSQL for tests: the server named by ``AUDITLOG_TEST_POSTGRES_URL``, one schema each.

Tests that need PostgreSQL call ``require()``, which skips them with a reason where the
variable is unset (a laptop without PostgreSQL) and fails them in CI, where they must run.
Each test process works in a schema of its own (``session_url``), so runs side by side do not
meet; ``fresh_url`` empties it for the next test, and ``private_url`` gives a schema of its own
to a test that runs server processes.
"""

from __future__ import annotations

import atexit
import os
import secrets
from urllib.parse import quote

import psycopg
import pytest

URL = os.environ.get("AUDITLOG_TEST_POSTGRES_URL", "")
SKIP_REASON = "AUDITLOG_TEST_POSTGRES_URL is not set: the PostgreSQL tests need a server"
TABLES = (
    "tenants, events, event_search, event_numbers, path_flags, index_progress, api_keys, users,"
    " secrets, tree_nodes, checkpoints, streams, retention, legal_holds, horizons, pruned_ids,"
    " archives, tenants_log, tenants_leaves, tenants_nodes, tenants_checkpoints, witness_states"
)

_schemas: list[str] = []
_session: dict[int, str] = {}


def require() -> str:
    """The server's URL; skips the test where there is none (fails it in CI)."""
    if not URL:
        if os.environ.get("CI"):
            pytest.fail("AUDITLOG_TEST_POSTGRES_URL must be set in CI: PostgreSQL tests never skip")
        pytest.skip(SKIP_REASON)
    return URL


def in_schema(url: str, schema: str) -> str:
    """``url`` with its connections' ``search_path`` set to ``schema``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def _drop_all() -> None:
    if not _schemas:
        return
    with psycopg.connect(URL, autocommit=True) as conn:
        for schema in _schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def private_url() -> str:
    """A new, empty schema (dropped when the test process exits)."""
    base = require()
    schema = f"auditlog_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    if not _schemas:
        atexit.register(_drop_all)
    _schemas.append(schema)
    return in_schema(base, schema)


def session_url(slot: int = 0) -> str:
    """One of this test process's shared schemas (a test that needs two stores at once gives
    each its own ``slot``)."""
    if slot not in _session:
        _session[slot] = private_url()
    return _session[slot]


def fresh_url(slot: int = 0) -> str:
    """A shared schema, emptied: every row of a migrated schema deleted."""
    url = session_url(slot)
    with psycopg.connect(url, autocommit=True) as conn:
        migrated = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
        if migrated is not None and migrated[0]:
            # DELETE, not TRUNCATE: the tables are small, and TRUNCATE makes new files for
            # every partition and index (a quarter of a second each time).
            for table in TABLES.split(","):
                conn.execute(f"DELETE FROM {table.strip()}")
    return url
