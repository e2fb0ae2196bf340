"""What ``Client`` and ``AsyncClient`` share: settings, the background sender, ``log``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from auditlog_client import envelope
from auditlog_client.envelope import Party, TimeLike
from auditlog_client.retry import RetryPolicy
from auditlog_client.sender import Failure, OnFull, Sender, SenderSettings, Stats
from auditlog_client.spool import Spool

USER_AGENT = "auditlog-client-python/0.1.0"
#: Retries of calls a caller waits for (``log_sync``, reads): a few, then the error.
WAITING_RETRY = RetryPolicy(initial=0.25, maximum=5.0, max_attempts=5)


class ClientBase:
    """The configuration and the background half of a client (see ``Client``)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch_events: int = 500,
        batch_bytes: int = 1 << 20,
        flush_interval: float = 0.2,
        max_queue_events: int = 100_000,
        max_queue_bytes: int = 64 << 20,
        on_full: OnFull = "block",
        block_timeout: float = 1.0,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_sync: str = "normal",
        spool_adopt_interval: float = 30.0,
        retry: RetryPolicy | None = None,
        read_retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        on_error: Callable[[Failure], None] | None = None,
        exit_timeout: float = 5.0,
        max_in_flight: int = 1,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        self.retry = retry or RetryPolicy()
        self.read_retry = read_retry or WAITING_RETRY
        settings = SenderSettings(
            batch_events=batch_events,
            batch_bytes=batch_bytes,
            linger=flush_interval,
            max_queue_events=max_queue_events,
            max_queue_bytes=max_queue_bytes,
            on_full=on_full,
            block_timeout=block_timeout,
            exit_timeout=exit_timeout,
            max_in_flight=max_in_flight,
            adopt_interval=spool_adopt_interval,
        )
        self._sender = Sender(
            settings,
            self._sync_http,
            self.retry,
            spool_dir=spool_dir,
            spool_sync=spool_sync,
            on_error=on_error,
        )

    def _sync_http(self) -> httpx.Client:
        """A new synchronous HTTP client to the service (the sender makes its own)."""
        return httpx.Client(
            base_url=self.url,
            headers=self._headers,
            timeout=self._timeout,
            transport=self._transport,
        )

    def log(
        self,
        type: str,
        *,
        actor: Party | None = None,
        subject: Party | None = None,
        outcome: str | None = None,
        data: Mapping[str, Any] | None = None,
        id: str | None = None,
        time: TimeLike | None = None,
        source: str | None = None,
    ) -> str:
        """Queue an event and return its id at once; it is sent in the background.

        The id (a new ULID unless given) and the time (now unless given) are fixed here, so
        every resend is the same event to the service. Raises ``ValueError``/``TypeError``
        for an event that cannot be sent, ``QueueFullError`` on a full queue with
        ``on_full="raise"``, ``ClosedError`` after ``close``. With ``on_full="block"`` or
        ``"drop"`` an event the full queue did not take is counted in ``stats().dropped``.
        """
        event = envelope.build(
            type,
            actor=actor,
            subject=subject,
            outcome=outcome,
            data=data,
            id=id,
            time=time,
            source=source,
        )
        self._sender.put(envelope.encode(event))
        return str(event["id"])

    def stats(self) -> Stats:
        """The counters: sent, retried, dropped, failed, and events queued now."""
        return self._sender.stats()

    @property
    def spool(self) -> Spool | None:
        """The durable spool, when ``spool_dir`` was given."""
        return self._sender.spool
