"""Storage URLs to stores: the one place that knows which backends exist."""

from __future__ import annotations

from auditlog.config import Settings
from auditlog.errors import ConfigError
from auditlog.storage.base import Store


def open_store(settings: Settings, serving: bool = False) -> Store:
    """The (not yet opened) store that ``settings.store_url`` names.

    ``serving``: the store backs a running service, so it also runs its background work (the
    SQLite search indexer, PostgreSQL partition upkeep and key revocation notices); commands
    that only administer keys pass ``False``.
    """
    url = settings.store_url
    if url == "memory:":
        from auditlog.storage.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:"):
        from auditlog.storage.sqlite.store import SQLiteStore

        # As in SQLAlchemy: sqlite:///relative/file.db, sqlite:////absolute/file.db
        path = url.removeprefix("sqlite:///")
        if path == url or not path:
            raise ConfigError(f"store {url!r}: expected sqlite:///path/to/file.db")
        return SQLiteStore(path, settings, indexer="process" if serving else "off")
    if url.startswith(("postgresql://", "postgres://")):
        from auditlog.storage.postgres.store import PostgresStore

        return PostgresStore(url, settings, serving=serving)
    raise ConfigError(f"store {url!r}: expected sqlite:///path, postgresql://..., or memory:")
