"""Known answers from litewitness (github.com/FiloSottile/torchwood, cmd/litewitness/testdata/
litewitness.txt): its sequence of add-checkpoint requests for a Sigsum log, sent in order to
one witness, and the status (and body) each one gets.

The requests, the log's key (``ffdc2d4d…``, whose Sigsum origin is
``sigsum.org/v1/tree/<hex SHA-256 of the key>``) and the witness key (the Ed25519 key whose
public half hashes to ``e933707e…``, given there as an OpenSSH key) are litewitness's. One
answer differs, as the spec has changed since: a checkpoint of an origin the witness does not
follow gets 404 Not Found (C2SP tlog-witness), where litewitness answers 403.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from auditlog.integrity import note as notes
from auditlog.integrity.cosignature import Cosigner
from auditlog.witness.app import WitnessApp
from auditlog.witness.state import State
from auditlog.witness.verifier import logs_of_policy

LOG_KEY = bytes.fromhex("ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f")
ORIGIN = "sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562"
WITNESS_SEED = bytes.fromhex("31ffc2116ecbe003acaa800ab70757bd7d53206e3febef6a6d0796d95530b34f")
WITNESS_KEY_HASH = "e933707e0e36c30f01d94b5d81e742da373679d88eb0f85f959ccd80b83b992a"
NOW = 1_700_000_000


def _request(old: int, proof: list[str], origin: str, size: int, root: str, sig: str) -> bytes:
    lines = [f"old {old}", *proof, "", origin, str(size), root, "", f"— {origin} {sig}"]
    return "".join(line + "\n" for line in lines).encode("utf-8")


@dataclass(frozen=True)
class Step:
    body: bytes
    status: int
    #: What the body contains (for 409: what it is).
    expected: str


SIG_1 = (
    "UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQilegKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY="
)
SIG_3 = (
    "UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go="
)
SIG_3_BAD = SIG_3[:-2] + "x="
SIG_5 = (
    "UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wzRns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww="
)
ROOT_1 = "KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
ROOT_3 = "RcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0="
ROOT_5 = "QrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY="
PROOF_1_3 = [
    "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
]
PROOF_3_5 = [
    "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "KgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "wgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=",
    "KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
]
OTHER_ORIGIN = ORIGIN[:-1] + "3"

STEPS = [
    Step(_request(0, [], ORIGIN, 1, ROOT_1, SIG_1), 200, "— example.com/witness "),
    Step(_request(1, PROOF_1_3, ORIGIN, 3, ROOT_3, SIG_3_BAD), 403, "invalid signature"),
    # litewitness: 403 "unknown log"; the spec now asks for 404.
    Step(_request(1, PROOF_1_3, OTHER_ORIGIN, 3, ROOT_3, SIG_3), 404, "unknown log"),
    Step(_request(1, [], ORIGIN, 3, ROOT_3, SIG_3), 422, "consistency proof"),
    Step(
        _request(
            1,
            [PROOF_1_3[0], "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABA="],
            ORIGIN,
            3,
            ROOT_3,
            SIG_3,
        ),
        422,
        "consistency proof",
    ),
    Step(_request(1, PROOF_1_3, ORIGIN, 3, ROOT_3, SIG_3), 200, "— example.com/witness "),
    Step(
        _request(
            1,
            [PROOF_1_3[0], "+fUDV+k970B4I3uKrqJM4aP1lloPZP8mvr2Z4wRw2LI=", PROOF_3_5[3]],
            ORIGIN,
            5,
            ROOT_5,
            SIG_5,
        ),
        409,
        "3\n",
    ),
    Step(_request(3, PROOF_3_5, ORIGIN, 5, ROOT_5, SIG_5), 200, "— example.com/witness "),
    Step(_request(0, [], ORIGIN, 5, ROOT_5, SIG_5), 409, "5\n"),
]


@pytest.fixture
def cosigner() -> Cosigner:
    return Cosigner("example.com/witness", WITNESS_SEED)


@pytest.fixture
async def client(tmp_path: Path, cosigner: Cosigner) -> AsyncIterator[httpx.AsyncClient]:
    log_key = notes.Verifier(ORIGIN, LOG_KEY)
    logs = logs_of_policy(f"log {log_key.vkey}\nquorum none\n")
    state = State(tmp_path)
    app = WitnessApp(cosigner, logs, state, clock=lambda: NOW)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost:7380"
    ) as c:
        yield c
    state.close()


def test_the_keys_are_litewitness_s(cosigner: Cosigner) -> None:
    assert hashlib.sha256(LOG_KEY).hexdigest() == ORIGIN.rsplit("/", 1)[1]
    assert notes.Verifier(ORIGIN, LOG_KEY).key_id.hex() == "5202289b"
    assert hashlib.sha256(cosigner.key.public_key).hexdigest() == WITNESS_KEY_HASH


@pytest.mark.anyio
async def test_litewitness_add_checkpoint_sequence(
    client: httpx.AsyncClient, cosigner: Cosigner
) -> None:
    got = []
    for step in STEPS:
        answer = await client.post("/add-checkpoint", content=step.body)
        got.append(answer.status_code)
        if step.status == 409:
            assert answer.headers["content-type"] == "text/x.tlog.size"
            assert answer.text == step.expected
        else:
            assert step.expected in answer.text, (step.status, answer.text)
        if answer.status_code == 200:
            text = notes.parse(step.body.partition(b"\n\n")[2].decode()).text
            (signature,) = notes.parse("-\n\n" + answer.text).signatures
            assert cosigner.key.verify(text, signature) == NOW
    assert got == [s.status for s in STEPS]
    # litewitness's list-logs: the log is at size 5.
    served = await client.get(f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint")
    assert served.status_code == 200
    assert served.text.startswith(f"{ORIGIN}\n5\n{ROOT_5}\n\n— {ORIGIN} {SIG_5}\n— example.com/")
