"""Bytes streamed to a client, with something to release when the streaming ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable


class Chunks:
    """An async iterator of bytes that calls ``on_close`` once when it is closed, whether it
    was read to its end, part of the way, or not at all (a HEAD request)."""

    def __init__(self, inner: AsyncGenerator[bytes, None], on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close: Callable[[], None] | None = on_close

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        return await self._inner.__anext__()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None
