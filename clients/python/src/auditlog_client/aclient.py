"""``AsyncClient``: the client for asyncio services (FastAPI, aiohttp, Starlette).

``log`` is the same non-blocking call as ``Client.log`` (the batches go out from the same
kind of background thread, so a busy event loop never delays them); with the default
``on_full="drop"`` it never blocks the loop (``"block"`` would, up to ``block_timeout``).
Everything that waits is a coroutine: ``alog``, ``flush``, ``close``, and the reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
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


class AsyncClient(ClientBase):
    """The asyncio client; see ``Client`` for what each method does."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        async_transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("on_full", "drop")
        super().__init__(url, token, **options)
        self._async_transport = async_transport
        self._ahttp: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(
                base_url=self.url,
                headers=self._headers,
                timeout=self._timeout,
                transport=self._async_transport,
            )
        return self._ahttp

    async def _request(
        self, method: str, path: str, policy: RetryPolicy | None = None, **kwargs: Any
    ) -> httpx.Response:
        backoff = Backoff(policy or self.read_retry)
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
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
            await asyncio.sleep(backoff.next_delay(retry_after))

    async def alog(
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
        """Send one event now; the stored event, or with ``wait="checkpoint"`` its
        ``Receipt`` (see ``Client.log_sync``)."""
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
        response = await self._request(
            "POST",
            "/v1/events",
            params={"wait": wait} if wait else None,
            content=envelope.encode(event),
            headers={"Content-Type": "application/json"},
        )
        answer = response.json()
        return Receipt.from_answer(answer) if wait else answer

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait (off the event loop) until every event logged before is sent."""
        return await asyncio.to_thread(self._sender.flush, timeout)

    async def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to ``timeout`` seconds) and close; see ``Client.close``."""
        flushed = await asyncio.to_thread(self._sender.close, timeout)
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None
        return flushed

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- reading -------------------------------------------------------------------------------

    async def get(self, id: str) -> dict[str, Any]:
        result: dict[str, Any] = (
            await self._request("GET", f"/v1/events/{quote(id, safe='')}")
        ).json()
        return result

    async def events(
        self,
        *,
        order: str = "asc",
        page_size: int = 1000,
        filters: list[tuple[str, Any]] | None = None,
        **where: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            params = page_of(where, filters or [], order, page_size, cursor)
            page = (await self._request("GET", "/v1/events", params=params)).json()
            for event in page["events"]:
                yield event
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def export(
        self,
        *,
        after_seq: int | None = None,
        filters: list[tuple[str, Any]] | None = None,
        **where: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        cursor = ExportCursor(where, filters or [], after_seq)
        backoff = Backoff(self.read_retry)
        while not cursor.complete:
            try:
                async with self.http.stream(
                    "GET", cursor.path, params=tuple(cursor.params())
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                    check(response)
                    cursor.begin(response.headers)
                    async for chunk in response.aiter_bytes():
                        for event in cursor.feed(chunk):
                            yield event
                        backoff.reset()
                    cursor.end()
            except (httpx.TransportError, RetryableError) as exc:
                retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
                if backoff.policy.gives_up(backoff.failures + 1):
                    if isinstance(exc, RetryableError):
                        raise
                    raise TransportError(f"the export broke off: {exc}") from exc
                cursor.broken()
                await asyncio.sleep(backoff.next_delay(retry_after))

    async def tail(
        self,
        *,
        after_seq: int | None = None,
        filters: list[tuple[str, Any]] | None = None,
        read_timeout: float = 60.0,
        **where: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        cursor = TailCursor(where, filters or [], after_seq)
        backoff = Backoff(RetryPolicy(initial=0.5, maximum=30.0))
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        while True:
            retry_after: float | None = None
            try:
                async with self.http.stream(
                    "GET",
                    cursor.path,
                    params=tuple(cursor.params()),
                    headers=cursor.headers(),
                    timeout=timeout,
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                    check(response)
                    async for chunk in response.aiter_bytes():
                        if chunk:
                            backoff.reset()
                        for event in cursor.feed(chunk):
                            yield event
            except httpx.TransportError:
                pass
            except RetryableError as exc:
                retry_after = exc.retry_after
            await asyncio.sleep(backoff.next_delay(max(retry_after or 0.0, cursor.retry)))

    async def checkpoint(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self._request("GET", "/v1/log/checkpoint")).json()
        return result

    async def public_key(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self._request("GET", "/v1/log/public-key")).json()
        return result
