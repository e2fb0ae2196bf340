"""The decision on one add-checkpoint request: every status of C2SP tlog-witness, its reason,
and the order in which the spec makes the checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from auditlog.integrity import note as notes
from auditlog.integrity.hasher import EMPTY_ROOT
from auditlog.witness.verifier import (
    SIZE_TYPE,
    TEXT_TYPE,
    Recorded,
    decide,
    logs_of_policy,
)
from witness.logs import TestLog, b64, request_body, witness

NOW = 1_700_000_000
OTHER_ROOT = hashlib.sha256(b"another tree").digest()
HASH = hashlib.sha256(b"a hash").digest()


def _other_signer(log: TestLog) -> notes.Signer:
    """A key with the log's name that the policy does not trust."""
    return notes.Signer(log.origin, hashlib.sha256(b"not the log's key").digest())


def _tampered(message: str) -> str:
    """The note with its (only) signature changed in its last byte, still well-formed."""
    note = notes.parse(message)
    s = note.signatures[0]
    bad = notes.Signature(s.name, s.key_id, s.signature[:-1] + bytes([s.signature[-1] ^ 1]))
    return notes.Note(note.text, (bad,)).message


def _non_canonical(message: str) -> str:
    """The note with its signature's base64 spelled with non-zero padding bits."""
    text, _, line = message.rpartition("\n\n")
    assert line.endswith("=\n")
    assert not line.endswith("==\n")
    last = line[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    spoiled = alphabet[alphabet.index(last) | 1]
    return text + "\n\n" + line[:-3] + spoiled + "=\n"


@dataclass(frozen=True)
class Case:
    """One request: its body and the record of its log, built from a fresh log of 10 leaves."""

    make: Callable[[TestLog], tuple[bytes, Recorded]]
    status: int
    reason: str


def _rec(log: TestLog, size: int) -> Recorded:
    return Recorded(size, log.root(size))


CASES: dict[str, Case] = {
    # 200: cosigned.
    "first checkpoint": Case(lambda g: (g.body(0, 5), Recorded.none()), 200, "cosigned size 5"),
    "extends the record": Case(lambda g: (g.body(3, 7), _rec(g, 3)), 200, "cosigned size 7"),
    "the recorded checkpoint again": Case(
        lambda g: (g.body(5, 5), _rec(g, 5)), 200, "cosigned size 5"
    ),
    "the empty tree": Case(lambda g: (g.body(0, 0), Recorded.none()), 200, "cosigned size 0"),
    "from size 1": Case(lambda g: (g.body(1, 10), _rec(g, 1)), 200, "cosigned size 10"),
    "an unknown key's signature is ignored": Case(
        lambda g: (
            request_body(0, (), notes.sign(g.text(4), g.signer, notes.Signer("x", HASH))),
            Recorded.none(),
        ),
        200,
        "cosigned size 4",
    ),
    # 400: malformed.
    "not a request": Case(lambda g: (b"hello\n", Recorded.none()), 400, "malformed add-checkpoint"),
    "no old line": Case(
        lambda g: (g.body(0, 5).removeprefix(b"old 0\n"), Recorded.none()),
        400,
        "malformed add-checkpoint",
    ),
    "leading zero in old": Case(
        lambda g: (b"old 03\n" + g.body(3, 5).partition(b"\n")[2], _rec(g, 3)),
        400,
        "malformed add-checkpoint",
    ),
    "a proof line is not base64": Case(
        lambda g: (g.body(3, 5).replace(b"\n\n", b"\nnot base64\n\n", 1), _rec(g, 3)),
        400,
        "malformed add-checkpoint",
    ),
    "not a checkpoint": Case(
        lambda g: (
            request_body(0, (), notes.sign(f"{g.origin}\n05\n{b64(HASH)}\n", g.signer)),
            Recorded.none(),
        ),
        400,
        "malformed add-checkpoint request: the request's checkpoint is malformed",
    ),
    # 404: the origin is not followed.
    "unknown origin": Case(
        lambda g: (TestLog("example.com/other").body(0, 5), Recorded.none()),
        404,
        "unknown log: origin 'example.com/other'",
    ),
    # 403: signatures.
    "signed by an untrusted key only": Case(
        lambda g: (request_body(0, (), notes.sign(g.text(5), _other_signer(g))), Recorded.none()),
        403,
        "invalid signature: the note is signed by no known key",
    ),
    "the trusted key's signature is bad": Case(
        lambda g: (request_body(0, (), _tampered(g.checkpoint(5))), Recorded.none()),
        403,
        "does not verify",
    ),
    "the trusted key's signature line is malformed": Case(
        lambda g: (request_body(0, (), _non_canonical(g.checkpoint(5))), Recorded.none()),
        403,
        "invalid signature: the signature line of trusted key example.com/log is malformed",
    ),
    # 400: old size beyond the checkpoint.
    "old size beyond the checkpoint": Case(
        lambda g: (request_body(6, (), g.checkpoint(5)), _rec(g, 6)),
        400,
        "old size 6 is more than the checkpoint's 5",
    ),
    # 409: old size not the recorded one.
    "old size behind the record": Case(
        lambda g: (g.body(3, 7), _rec(g, 5)),
        409,
        "old size 3 is not the size of the latest cosigned checkpoint, 5",
    ),
    "old size 0 with a record": Case(
        lambda g: (g.body(0, 7), _rec(g, 5)),
        409,
        "old size 0 is not the size of the latest cosigned checkpoint, 5",
    ),
    "old size ahead of the record": Case(
        lambda g: (g.body(6, 7), _rec(g, 5)),
        409,
        "old size 6 is not the size of the latest cosigned checkpoint, 5",
    ),
    "old size without a record": Case(
        lambda g: (g.body(2, 7), Recorded.none()),
        409,
        "old size 2 is not the size of the latest cosigned checkpoint, 0",
    ),
    # 422: not consistent.
    "size 0 with another root": Case(
        lambda g: (g.body(0, 0, root=OTHER_ROOT), Recorded.none()),
        422,
        "a checkpoint of size 0 has root",
    ),
    "a proof from size 0": Case(
        lambda g: (g.body(0, 5, proof=(HASH,)), Recorded.none()),
        422,
        "consistency proof from size 0 has 1 hashes; the empty tree needs none",
    ),
    "a proof that does not verify": Case(
        lambda g: (g.body(3, 7, proof=(*g.proof(3, 7)[:-1], HASH)), _rec(g, 3)),
        422,
        "bad consistency proof",
    ),
    "a proof too short": Case(
        lambda g: (g.body(3, 7, proof=g.proof(3, 7)[:-1]), _rec(g, 3)),
        422,
        "bad consistency proof",
    ),
    "a proof from another tree": Case(
        lambda g: (g.body(3, 7), Recorded(3, OTHER_ROOT)),
        422,
        "bad consistency proof",
    ),
    "a fork at the recorded size": Case(
        lambda g: (g.body(5, 5, root=OTHER_ROOT), _rec(g, 5)),
        422,
        "fork: the checkpoint of size 5 has root",
    ),
    "a proof from a size to itself": Case(
        lambda g: (g.body(5, 5, proof=(HASH,)), _rec(g, 5)),
        422,
        "bad consistency proof",
    ),
    # The order of the checks.
    "unknown origin before the signature": Case(
        lambda g: (
            request_body(0, (), _tampered(TestLog("a.example/b").checkpoint(2))),
            _rec(g, 0),
        ),
        404,
        "unknown log",
    ),
    "the signature before old > size": Case(
        lambda g: (request_body(6, (), _tampered(g.checkpoint(5))), _rec(g, 6)),
        403,
        "invalid signature",
    ),
    "old > size before the record": Case(
        lambda g: (request_body(6, (), g.checkpoint(5)), _rec(g, 2)),
        400,
        "old size 6 is more than",
    ),
    "the record before the empty root": Case(
        lambda g: (g.body(0, 0, root=OTHER_ROOT), _rec(g, 3)),
        409,
        "not the size of the latest cosigned checkpoint, 3",
    ),
    "the record before the proof": Case(
        lambda g: (g.body(4, 7, proof=(HASH,)), _rec(g, 3)),
        409,
        "old size 4",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decision(name: str) -> None:
    case = CASES[name]
    log = TestLog(leaves=10)
    cosigner = witness()
    body, recorded = case.make(log)
    logs = logs_of_policy(log.policy())
    decision, accepted = decide(body, logs, lambda origin: recorded, cosigner, NOW)
    assert (decision.status, case.reason in decision.reason) == (case.status, True), decision
    if decision.status == 200:
        assert accepted is not None
        assert decision.content_type == TEXT_TYPE
        line = decision.body
        assert line.startswith("— witness.example/w1 ")
        assert line.endswith("\n")
        assert line.count("\n") == 1
        (signature,) = notes.parse("-\n\n" + line).signatures
        text = notes.parse(body.partition(b"\n\n")[2].decode()).text
        assert cosigner.key.verify(text, signature) == NOW
        # The monitoring copy: the text, the log's own signature, and the cosignature.
        served = notes.parse(accepted.cosigned)
        assert served.text == text
        assert [s.name for s in served.signatures] == [log.origin, "witness.example/w1"]
        assert served.signatures[1] == signature
        notes.verify(accepted.cosigned, log.signer.verifier)
    elif decision.status == 409:
        assert accepted is None
        assert decision.content_type == SIZE_TYPE
        assert decision.body == f"{recorded.size}\n"
    else:
        assert accepted is None
        assert decision.content_type == TEXT_TYPE
        assert decision.body == decision.reason + "\n"
        assert "\n" not in decision.reason


def test_every_status_is_in_the_table() -> None:
    assert {c.status for c in CASES.values()} == {200, 400, 403, 404, 409, 422}


def test_the_empty_root_is_the_hash_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


def test_a_log_with_two_keys_accepts_either() -> None:
    log = TestLog(leaves=4)
    second = notes.Signer(log.origin, hashlib.sha256(b"second key").digest())
    policy = f"log {log.vkey}\nlog {second.verifier.vkey}\nquorum none\n"
    logs = logs_of_policy(policy)
    assert list(logs) == [log.origin]
    body = request_body(0, (), notes.sign(log.text(4), second))
    decision, _ = decide(body, logs, lambda origin: Recorded.none(), witness(), NOW)
    assert decision.status == 200


def test_the_policy_lines_of_witnesses_are_ignored() -> None:
    log = TestLog()
    other = witness("other.example/w")
    policy = (
        "# logs this witness follows\n"
        f"log {log.vkey} https://example.com/log\n"
        f"witness w1 {other.key.vkey}\n"
        "group g any w1\n"
        "quorum g\n"
    )
    assert list(logs_of_policy(policy)) == [log.origin]
