"""``AsyncClient`` against a real server: background ``log``, ``alog`` with a receipt that
verifies, and the reads as async iterators."""

from __future__ import annotations

import pytest
from auditlog_client import AsyncClient, ConflictError, Receipt, verify_inclusion

from .conftest import Live
from .helpers import stored


@pytest.mark.anyio
async def test_the_async_client_writes_and_reads(live: Live, token: str) -> None:
    async with AsyncClient(live.url, token, batch_events=10, flush_interval=600) as client:
        ids = [client.log("async.test", data={"i": i}) for i in range(25)]
        assert await client.flush(60)
        assert client.stats().sent == 25
        assert [e["id"] async for e in client.events(type="async.test", page_size=7)] == ids
        assert [e["id"] async for e in client.export(type="async.test")] == ids
        assert (await client.get(ids[3]))["data"] == {"i": 3}

        receipt = await client.alog("async.receipt", actor="carol", wait="checkpoint")
        assert isinstance(receipt, Receipt)
        key = await client.public_key()
        assert verify_inclusion(receipt.event, receipt, key["vkey"]).size > receipt.event["seq"]

        await client.alog("async.conflict", id="dup", data={"v": 1})
        with pytest.raises(ConflictError):
            await client.alog("async.conflict", id="dup", data={"v": 2})

        tail = client.tail(after_seq=receipt.event["seq"] - 1, type="async.receipt")
        first = await anext(tail)
        await tail.aclose()
        assert first["id"] == receipt.event["id"]
    assert [e["id"] for e in stored(live.url, token, type="async.test")] == ids
