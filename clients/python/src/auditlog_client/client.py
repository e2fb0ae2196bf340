"""``Client``: the synchronous client, for threads (Flask, Django, Celery, scripts)."""

from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from auditlog_client import envelope
from auditlog_client.answers import check, error_of
from auditlog_client.base import ClientBase
from auditlog_client.envelope import Party, TimeLike
from auditlog_client.errors import RetryableError, TransportError
from auditlog_client.reading import ExportCursor, TailCursor, page_of
from auditlog_client.receipts import Receipt
from auditlog_client.retry import Backoff, RetryPolicy


class Client(ClientBase):
    """A client of one auditlog service with one token.

    Writing: ``log`` queues an event and returns at once (see ``ClientBase.log``); a
    background thread sends the queue in batches, retrying with backoff; ``log_sync`` sends
    one event and returns it stored (or its receipt). ``flush`` waits for the queue,
    ``close`` ends the client (also at interpreter exit). Reading: ``events``, ``get``,
    ``export``, ``tail``, ``checkpoint``, ``public_key``.

    Thread-safe: every method may be called from any thread. Fork-safe: a forked child gets
    a fresh queue and sender of its own.
    """

    def __init__(self, url: str, token: str, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._http: httpx.Client | None = None
        self._http_pid = 0
        self._http_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        """The HTTP client of calls made in the caller's thread (a new one after a fork)."""
        pid = os.getpid()
        if self._http is not None and self._http_pid == pid:
            return self._http
        if self._http_pid != pid:
            self._http_lock = threading.Lock()  # a fork may have copied it while held
        with self._http_lock:
            if self._http is None or self._http_pid != os.getpid():
                self._http = self._sync_http()
                self._http_pid = os.getpid()
            return self._http

    def _request(
        self, method: str, path: str, policy: RetryPolicy | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One call, retried on connection errors, 429 and 5xx; other errors raised."""
        backoff = Backoff(policy or self.read_retry)
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                error: Exception = TransportError(f"{method} {path}: {type(exc).__name__}: {exc}")
                retry_after = None
            else:
                if response.status_code < 400:
                    return response
                api_error = error_of(response)
                if not isinstance(api_error, RetryableError):
                    raise api_error
                error, retry_after = api_error, api_error.retry_after
            if backoff.policy.gives_up(backoff.failures + 1):
                raise error
            _time.sleep(backoff.next_delay(retry_after))

    # -- writing -------------------------------------------------------------------------------

    def log_sync(
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
        wait: str | None = None,
    ) -> Any:
        """Send one event now and return it as stored (``dict``); with
        ``wait="checkpoint"``, its ``Receipt``. Retried like the background sender, a few
        times (``read_retry``), with the same id; raises ``ConflictError`` (409) and other
        ``APIError``s, or ``TransportError`` when the service stays unreachable."""
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
        response = self._request(
            "POST",
            "/v1/events",
            params={"wait": wait} if wait else None,
            content=envelope.encode(event),
            headers={"Content-Type": "application/json"},
        )
        answer = response.json()
        return Receipt.from_answer(answer) if wait else answer

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event logged before this call is sent (or refused); False if
        ``timeout`` seconds passed first."""
        return self._sender.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to ``timeout`` seconds; ``None``: however long it takes), stop the
        sender, close connections and the spool. Whether everything was sent; what was not
        is lost, unless it is in a spool, whose next client sends it."""
        flushed = self._sender.close(timeout)
        with self._http_lock:
            if self._http is not None and self._http_pid == os.getpid():
                self._http.close()
            self._http = None
        return flushed

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def get(self, id: str) -> dict[str, Any]:
        """The stored event with this id; ``NotFoundError`` if the log has none."""
        result: dict[str, Any] = self._request("GET", f"/v1/events/{quote(id, safe='')}").json()
        return result

    def events(
        self,
        *,
        order: str = "asc",
        page_size: int = 1000,
        filters: list[tuple[str, Any]] | None = None,
        **where: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every event matching the filters (API.md §3), page after page by cursor.

        ``events(type="user.login", **{"data.amount[gt]": 100})``; a list repeats a
        parameter. ``order`` is ``"asc"`` (oldest first, the default here) or ``"desc"``.
        """
        cursor: str | None = None
        while True:
            params = page_of(where, filters or [], order, page_size, cursor)
            page = self._request("GET", "/v1/events", params=params).json()
            yield from page["events"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def export(
        self,
        *,
        after_seq: int | None = None,
        filters: list[tuple[str, Any]] | None = None,
        **where: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every event matching the filters, in ascending seq, through the streamed export
        (API.md §10): the set fixed when it starts, resumed where it broke off after a lost
        connection (``after_seq``/``before_seq``), each event exactly once."""
        cursor = ExportCursor(where, filters or [], after_seq)
        backoff = Backoff(self.read_retry)
        while not cursor.complete:
            try:
                with self.http.stream(
                    "GET", cursor.path, params=tuple(cursor.params())
                ) as response:
                    check(response)
                    cursor.begin(response.headers)
                    for chunk in response.iter_bytes():
                        yield from cursor.feed(chunk)
                        backoff.reset()
                    cursor.end()
            except (httpx.TransportError, RetryableError) as exc:
                retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
                if backoff.policy.gives_up(backoff.failures + 1):
                    if isinstance(exc, RetryableError):
                        raise
                    raise TransportError(f"the export broke off: {exc}") from exc
                cursor.broken()
                _time.sleep(backoff.next_delay(retry_after))

    def export_raw(
        self,
        *,
        format: str = "ndjson",
        columns: list[str] | None = None,
        filters: list[tuple[str, Any]] | None = None,
        **where: Any,
    ) -> Iterator[bytes]:
        """The export's body as the service sends it (``format="csv"`` for CSV), in chunks;
        not resumed: a broken connection raises ``TransportError``."""
        params = ExportCursor(where, filters or [], None).params()
        params.append(("format", format))
        if columns:
            params.append(("columns", ",".join(columns)))
        try:
            with self.http.stream("GET", ExportCursor.path, params=tuple(params)) as response:
                check(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise TransportError(f"the export broke off: {exc}") from exc

    def tail(
        self,
        *,
        after_seq: int | None = None,
        filters: list[tuple[str, Any]] | None = None,
        read_timeout: float = 60.0,
        **where: Any,
    ) -> Iterator[dict[str, Any]]:
        """The matching events as they are committed (API.md §10), forever: reconnects after
        a broken connection with ``Last-Event-ID``, so nothing is missed or repeated. With
        ``after_seq`` it begins after that seq (replaying what came since), else with events
        committed from now on. Stop by breaking out of the loop."""
        cursor = TailCursor(where, filters or [], after_seq)
        backoff = Backoff(RetryPolicy(initial=0.5, maximum=30.0))
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        while True:
            retry_after: float | None = None
            try:
                with self.http.stream(
                    "GET",
                    cursor.path,
                    params=tuple(cursor.params()),
                    headers=cursor.headers(),
                    timeout=timeout,
                ) as response:
                    check(response)
                    for chunk in response.iter_bytes():
                        if chunk:
                            backoff.reset()
                        yield from cursor.feed(chunk)
            except httpx.TransportError:
                pass
            except RetryableError as exc:
                retry_after = exc.retry_after
            _time.sleep(backoff.next_delay(max(retry_after or 0.0, cursor.retry)))

    # -- the log's integrity -------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The latest signed checkpoint (scope ``log:read``)."""
        result: dict[str, Any] = self._request("GET", "/v1/log/checkpoint").json()
        return result

    def public_key(self) -> dict[str, Any]:
        """The key that signs the tenant's checkpoints (its ``vkey`` is what
        ``verify_inclusion`` takes). Pin it: a key fetched from the log proves nothing about
        the log."""
        result: dict[str, Any] = self._request("GET", "/v1/log/public-key").json()
        return result

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """The inclusion proof of ``seq`` (in the latest checkpoint's tree by default)."""
        params = {"seq": seq} if tree_size is None else {"seq": seq, "tree_size": tree_size}
        result: dict[str, Any] = self._request(
            "GET", "/v1/log/proof/inclusion", params=params
        ).json()
        return result
