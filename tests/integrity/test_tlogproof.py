"""tlog proofs (C2SP tlog-proof@v1) and add-checkpoint bodies (C2SP tlog-witness): the specs'
examples, round trips, verification against a real tree, and every malformation refused."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity import (
    CheckpointError,
    NoteError,
    ProofError,
    SignatureError,
    WitnessRequestError,
)
from auditlog.integrity import checkpoint as cp
from auditlog.integrity import note as n
from auditlog.integrity import proof as pr
from auditlog.integrity import tlogproof as t
from auditlog.integrity.hasher import leaf_hash

VECTORS = Path(__file__).parent / "vectors"
ORIGIN = "example.com/log"
LOG = n.Signer(ORIGIN, bytes(range(32)))
LEAVES = [leaf_hash(f"event {i}".encode()) for i in range(13)]
CHECKPOINT = cp.Checkpoint(ORIGIN, len(LEAVES), pr.root_of_leaves(LEAVES))
NOTE = cp.sign(CHECKPOINT, LOG)


def _proof(index: int, extra: bytes | None = None) -> t.TlogProof:
    return t.TlogProof(index, pr.inclusion_of_leaves(index, LEAVES), NOTE, extra)


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


# --- format and parse -----------------------------------------------------------------------


def test_format_is_the_formats_marshal_output() -> None:
    # transparency-dev/formats proof/tlog_proof_test.go, TestMarshal: hashes are SHA-256 of
    # "hash1" and "hash2"; the checkpoint is carried verbatim.
    h1, h2 = hashlib.sha256(b"hash1").digest(), hashlib.sha256(b"hash2").digest()
    extra = b"extra information"
    assert t.format(t.TlogProof(5, (h1, h2), "test checkpoint\n")) == (
        f"c2sp.org/tlog-proof@v1\nindex 5\n{_b64(h1)}\n{_b64(h2)}\n\ntest checkpoint\n"
    )
    assert t.format(t.TlogProof(10, (h1,), "checkpoint data\n", extra)) == (
        f"c2sp.org/tlog-proof@v1\nextra {_b64(extra)}\nindex 10\n{_b64(h1)}\n\ncheckpoint data\n"
    )
    assert (
        t.format(t.TlogProof(0, (), "checkpoint\n"))
        == "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n"
    )


def test_the_spec_example_shape() -> None:
    # The proof lines of the tlog-proof spec's example, with a checkpoint of ours (the
    # example's signatures are elided).
    head = (
        "c2sp.org/tlog-proof@v1\n"
        "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
        "index 73894\n"
        "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
        "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
        "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
        "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
        "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
    )
    proof = t.parse(head + "\n" + NOTE)
    assert proof.index == 73894
    assert proof.extra is not None
    assert proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert [_b64(h) for h in proof.hashes] == head.split("\n")[3:-1]
    assert proof.checkpoint == NOTE
    assert t.format(proof) == head + "\n" + NOTE
    assert t.parse((head + "\n" + NOTE).encode()) == proof


hashes = st.lists(st.binary(min_size=32, max_size=32), max_size=t.MAX_INCLUSION_HASHES)


@given(st.integers(0, 2**64 - 1), hashes, st.none() | st.binary(min_size=1, max_size=100))
def test_round_trip(index: int, hs: list[bytes], extra: bytes | None) -> None:
    proof = t.TlogProof(index, tuple(hs), NOTE, extra)
    text = t.format(proof)
    assert t.parse(text) == proof
    assert t.split(text + text) == [text, text]


HEAD = "c2sp.org/tlog-proof@v1\n"
H = _b64(bytes(32))


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        ("", ProofError, "no empty line"),
        (HEAD + "index 0\n" + NOTE, ProofError, "line 3 of the tlog proof is not the base64"),
        ("wrong-header\nindex 0\n\n" + NOTE, ProofError, "does not start with the line"),
        ("c2sp.org/tlog-proof@v2\nindex 0\n\n" + NOTE, ProofError, "does not start with"),
        (" " + HEAD + "index 0\n\n" + NOTE, ProofError, "does not start with"),
        (HEAD + "extra !!notbase64!!\nindex 0\n\n" + NOTE, ProofError, "extra line is not base64"),
        (HEAD + "extra \nindex 0\n\n" + NOTE, ProofError, "extra line is not base64"),
        (HEAD + "extra YQ\nindex 0\n\n" + NOTE, ProofError, "extra line is not base64"),
        (HEAD + "index 0\nextra YQ==\n\n" + NOTE, ProofError, "line 3 .* not the base64"),
        (HEAD + "\n\n" + NOTE, ProofError, "no empty line|not its index line"),
        (HEAD + "\n" + NOTE, ProofError, "line 2 of the tlog proof is not its index line"),
        (HEAD + "index notanumber\n\n" + NOTE, ProofError, "'notanumber' is not a decimal"),
        (HEAD + "index -5\n\n" + NOTE, ProofError, "'-5' is not a decimal"),
        (HEAD + "index 05\n\n" + NOTE, ProofError, "'05' is not a decimal"),
        (HEAD + "index  5\n\n" + NOTE, ProofError, "' 5' is not a decimal"),
        (HEAD + f"index {2**64}\n\n" + NOTE, ProofError, "is not a decimal number in 0..2"),
        (HEAD + "index 0 \n\n" + NOTE, ProofError, "'0 ' is not"),
        (HEAD + "index 0\n!!notbase64!!\n\n" + NOTE, ProofError, "line 3 .* 32-byte hash"),
        (HEAD + "index 0\n" + _b64(bytes(64)) + "\n\n" + NOTE, ProofError, "32-byte hash"),
        (HEAD + "index 0\n" + H[:-1] + "B\n\n" + NOTE, ProofError, "32-byte hash"),
        (HEAD + "index 0\n" + (H + "\n") * 65 + "\n" + NOTE, ProofError, "65 hashes, more than 64"),
        (HEAD + "index 0\n\ntest checkpoint\n", NoteError, "no blank line"),
        (
            HEAD + "index 0\n\n" + n.sign("not\na checkpoint\n", LOG),
            CheckpointError,
            "2 lines, expected at least 3",
        ),
        (HEAD + "index 0\n\n" + NOTE[:-1], NoteError, "newline"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n\n\xff", ProofError, "not valid UTF-8"),
    ],
)
def test_malformed_proofs(text: str | bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        t.parse(text)


def test_proof_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"not in 0\.\.2"):
        t.TlogProof(-1, (), NOTE)
    with pytest.raises(ValueError, match="31 bytes"):
        t.TlogProof(0, (bytes(31),), NOTE)
    with pytest.raises(ValueError, match="extra data is empty"):
        t.TlogProof(0, (), NOTE, b"")


# --- split ----------------------------------------------------------------------------------


def test_split() -> None:
    a, b = t.format(_proof(3)), t.format(_proof(12, b"x"))
    assert t.split("") == []
    assert t.split(a) == [a]
    assert t.split(a + b + a) == [a, b, a]
    # A checkpoint whose origin is the header line does not start a proof.
    odd = cp.sign(cp.Checkpoint(t.HEADER, 1, bytes(32)), n.Signer(t.HEADER, bytes(32)))
    c = t.format(t.TlogProof(0, (), odd))
    assert t.split(c + a) == [c, a]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x\n", "line 1 starts no tlog proof"),
        (t.format(_proof(3))[:-1], "do not end in a newline"),
        (t.format(_proof(3)) + "\n", "line 13 starts no tlog proof"),
        (HEAD + "index 0\n", "ends before its signatures"),
        (HEAD + "index 0\n\n" + NOTE.split("\n\n")[0] + "\n", "ends before its signatures"),
        (HEAD + "index 0\n\n" + NOTE.split("\n\n")[0] + "\n\n\n", "has no signature line"),
    ],
)
def test_split_refuses(text: str, reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        t.split(text)


# --- verify ---------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(LEAVES)))
def test_verify(index: int) -> None:
    proof = t.parse(t.format(_proof(index)))
    assert t.verify(proof, LEAVES[index], [LOG.verifier], origin=ORIGIN) == CHECKPOINT


def test_verify_refuses() -> None:
    proof = _proof(5)
    with pytest.raises(ProofError, match="leads to root"):
        t.verify(proof, LEAVES[6], LOG.verifier)
    with pytest.raises(ProofError, match="leaf index 13 is not in a tree of size 13"):
        t.verify(t.TlogProof(13, proof.hashes, NOTE), LEAVES[5], LOG.verifier)
    with pytest.raises(ProofError, match="has 3 hashes, expected 4"):
        t.verify(t.TlogProof(5, proof.hashes[:-1], NOTE), LEAVES[5], LOG.verifier)
    with pytest.raises(SignatureError, match="signed by no known key"):
        t.verify(proof, LEAVES[5], n.Signer(ORIGIN, bytes(32)).verifier)
    with pytest.raises(CheckpointError, match="expected 'other'"):
        t.verify(proof, LEAVES[5], LOG.verifier, origin="other")


# --- add-checkpoint -------------------------------------------------------------------------


def test_the_witness_spec_example() -> None:
    body = (VECTORS / "c2sp_add_checkpoint.txt").read_bytes()
    request = t.parse_add_checkpoint(body)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert _b64(request.proof[0]) == "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw="
    assert cp.parse(n.parse(request.checkpoint).text).size == 20852163
    assert len(n.parse(request.checkpoint).signatures) == 2
    assert t.format_add_checkpoint(request).encode() == body


@given(st.integers(0, len(LEAVES)), st.lists(st.binary(min_size=32, max_size=32), max_size=63))
def test_add_checkpoint_round_trip(old: int, proof: list[bytes]) -> None:
    request = t.AddCheckpoint(old, tuple(proof), NOTE)
    assert t.parse_add_checkpoint(t.format_add_checkpoint(request).encode()) == request


def test_a_real_consistency_request() -> None:
    request = t.AddCheckpoint(5, pr.consistency_of_leaves(5, LEAVES), NOTE)
    parsed = t.parse_add_checkpoint(t.format_add_checkpoint(request).encode())
    checkpoint = cp.verify(parsed.checkpoint, LOG.verifier)
    old_root = pr.root_of_leaves(LEAVES[:5])
    pr.verify_consistency(5, checkpoint.size, parsed.proof, old_root, checkpoint.root_hash)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "no empty line"),
        (b"old 0\n" + NOTE.encode(), "line 2 of the request is not the base64"),
        (b"\n\n" + NOTE.encode(), "first line is not old <size>"),
        (b"old\n\n" + NOTE.encode(), "first line is not old <size>"),
        (b"old 01\n\n" + NOTE.encode(), "first line is not old"),
        (b"old -1\n\n" + NOTE.encode(), "first line is not old"),
        (b"old  1\n\n" + NOTE.encode(), "first line is not old"),
        (b"Old 1\n\n" + NOTE.encode(), "first line is not old"),
        (b"old 1 \n\n" + NOTE.encode(), "first line is not old"),
        (f"old {2**64}\n\n".encode() + NOTE.encode(), "first line is not old"),
        (b"old 14\n\n" + NOTE.encode(), "old size 14 is more than the checkpoint's 13"),
        (b"old 1\nnotbase64\n\n" + NOTE.encode(), "line 2 of the request is not the base64"),
        (b"old 1\n" + _b64(bytes(31)).encode() + b"\n\n" + NOTE.encode(), "32-byte hash"),
        (
            b"old 1\n" + (H + "\n").encode() * 64 + b"\n" + NOTE.encode(),
            "64 consistency proof lines",
        ),
        (b"old 1\n\n" + NOTE.encode()[:-1], "checkpoint is malformed: .*newline"),
        (b"old 1\n\n" + n.sign("x\n", LOG).encode(), "checkpoint is malformed"),
        (b"old 1\n\n\xff\n", "not valid UTF-8"),
    ],
)
def test_malformed_add_checkpoint(body: bytes, reason: str) -> None:
    with pytest.raises(WitnessRequestError, match=reason):
        t.parse_add_checkpoint(body)


def test_add_checkpoint_values_are_checked() -> None:
    with pytest.raises(ValueError, match="64 hashes is more than 63"):
        t.AddCheckpoint(0, (bytes(32),) * 64, NOTE)
    with pytest.raises(ValueError, match=r"not in 0\.\.2"):
        t.AddCheckpoint(-1, (), NOTE)


@pytest.mark.parametrize(("body", "size"), [(b"0\n", 0), (b"20852163\n", 20852163)])
def test_size_body(body: bytes, size: int) -> None:
    assert t.parse_size_body(body) == size


@pytest.mark.parametrize(
    "body", [b"", b"\n", b"1", b"01\n", b"1\n\n", b" 1\n", b"-1\n", b"1\r\n", b"\xff\n"]
)
def test_malformed_size_body(body: bytes) -> None:
    with pytest.raises(WitnessRequestError, match="size body is not a decimal"):
        t.parse_size_body(body)
