"""The witness's HTTP interface through ASGI: add-checkpoint, the monitoring route, ``/``,
405s and 404s, the body limit, and the WARNING logged for each refusal."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditlog.integrity import note as notes
from auditlog.integrity.cosignature import Cosigner
from auditlog.witness.app import MAX_BODY, WitnessApp
from auditlog.witness.state import State
from auditlog.witness.verifier import logs_of_policy
from witness.logs import TestLog, witness

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000
OTHER_ROOT = hashlib.sha256(b"another tree").digest()


class Witness:
    def __init__(self, tmp_path: Path) -> None:
        self.log = TestLog(leaves=16)
        self.second = TestLog("example.org/second", leaves=4)
        self.cosigner: Cosigner = witness()
        self.state = State(tmp_path)
        logs = logs_of_policy(self.log.policy() + f"log {self.second.vkey}\n")
        self.app = WitnessApp(self.cosigner, logs, self.state, clock=lambda: NOW)


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[Witness]:
    witness_ = Witness(tmp_path)
    yield witness_
    witness_.state.close()


@pytest.fixture
async def client(w: Witness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=w.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://witness") as c:
        yield c


def _monitoring(origin: str) -> str:
    return f"/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint"


async def test_cosigns_and_serves_the_latest_checkpoint(
    w: Witness, client: httpx.AsyncClient
) -> None:
    assert (await client.get(_monitoring(w.log.origin))).status_code == 404
    answer = await client.post("/add-checkpoint", content=w.log.body(0, 5))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    (signature,) = notes.parse("-\n\n" + answer.text).signatures
    assert w.cosigner.key.verify(w.log.text(5), signature) == NOW

    answer = await client.post("/add-checkpoint", content=w.log.body(5, 12))
    assert answer.status_code == 200, answer.text

    served = await client.get(_monitoring(w.log.origin))
    assert served.status_code == 200
    note = notes.verify(served.text, w.log.signer.verifier)
    assert note.text == w.log.text(12)
    assert [s.name for s in note.signatures] == [w.log.origin, w.cosigner.name]
    assert w.cosigner.key.verify(note.text, note.signatures[1]) == NOW
    # Another log's route is its own.
    assert (await client.get(_monitoring(w.second.origin))).status_code == 404
    head = await client.head(_monitoring(w.log.origin))
    assert (head.status_code, head.content) == (200, b"")


async def test_the_statuses_of_refusals(w: Witness, client: httpx.AsyncClient) -> None:
    assert (await client.post("/add-checkpoint", content=w.log.body(0, 5))).status_code == 200

    conflict = await client.post("/add-checkpoint", content=w.log.body(3, 8))
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "text/x.tlog.size"
    assert conflict.text == "5\n"

    cases = [
        (b"old 0\n", 400, "malformed add-checkpoint request"),
        (TestLog("nobody.example/log").body(0, 1), 404, "unknown log"),
        (
            w.log.body(9, 8, proof=()),
            400,
            "malformed add-checkpoint request: old size 9 is more than",
        ),
        (w.log.body(5, 5, root=OTHER_ROOT), 422, "fork"),
        (w.log.body(5, 8, proof=(OTHER_ROOT,)), 422, "bad consistency proof"),
    ]
    for body, status, reason in cases:
        answer = await client.post("/add-checkpoint", content=body)
        assert answer.status_code == status, (reason, answer.text)
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.text.startswith(reason)
        assert answer.text.count("\n") == 1
    forged = notes.sign(w.log.text(8), notes.Signer(w.log.origin, OTHER_ROOT))
    answer = await client.post("/add-checkpoint", content=b"old 5\n\n" + forged.encode())
    assert (answer.status_code, answer.text.split(":")[0]) == (403, "invalid signature")
    assert w.state.recorded(w.log.origin).size == 5


async def test_each_refusal_is_logged_and_the_signed_ones_recorded(
    w: Witness, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/add-checkpoint", content=w.log.body(0, 5))
    with caplog.at_level(logging.WARNING, logger="auditlog.witness"):
        await client.post("/add-checkpoint", content=w.log.body(5, 5, root=OTHER_ROOT))
        await client.post("/add-checkpoint", content=TestLog("nobody.example/x").body(0, 1))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        f"refused add-checkpoint: origin {w.log.origin!r}, status 422: fork"
    )
    assert warnings[1].startswith(
        "refused add-checkpoint: origin 'nobody.example/x', status 404: unknown log"
    )
    # Only what the log signed is evidence; anyone may send an unknown origin.
    assert [(r.status, r.origin) for r in w.state.refusals()] == [(422, w.log.origin)]


async def test_the_root_says_which_witness(w: Witness, client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.text == f"auditlog witness {w.cosigner.name} {w.cosigner.key.vkey}\n"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/add-checkpoint", "POST"),
        ("PUT", "/add-checkpoint", "POST"),
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/" + "0" * 64 + "/checkpoint", "GET, HEAD"),
    ],
)
async def test_wrong_methods_are_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    answer = await client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    ["/nothing", "/add-checkpoint/", "/" + "A" * 64 + "/checkpoint", "/abc/checkpoint"],
)
async def test_other_paths_are_404(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.text.startswith("no such route")


async def test_a_body_over_the_limit_is_413(w: Witness, client: httpx.AsyncClient) -> None:
    answer = await client.post("/add-checkpoint", content=b"x" * (MAX_BODY + 1))
    assert answer.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(17):
            yield b"y" * 65536

    answer = await client.post("/add-checkpoint", content=chunks())
    assert answer.status_code == 413
    # At the limit it is read, and refused for what it is.
    answer = await client.post("/add-checkpoint", content=b"z" * MAX_BODY)
    assert answer.status_code == 400


async def test_concurrent_requests_for_one_log_are_serialised(
    w: Witness, client: httpx.AsyncClient
) -> None:
    """Eight requests from old size 0 at once: one is cosigned, seven get 409 and its size."""
    answers = await asyncio.gather(
        *(client.post("/add-checkpoint", content=w.log.body(0, n)) for n in range(1, 9))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 7
    size = w.state.recorded(w.log.origin).size
    assert {a.text for a in answers if a.status_code == 409} == {f"{size}\n"}


async def test_lifespan(w: Witness) -> None:
    sent: list[MutableMapping[str, Any]] = []
    incoming: Iterator[MutableMapping[str, Any]] = iter(
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )

    async def receive() -> MutableMapping[str, Any]:
        return next(incoming)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await w.app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
