"""Every single-byte change to a cosigned tlog proof of a real log fails verification, except
where the specs say a byte is not authenticated.

The log has 11 leaves; its checkpoint is signed by the log and cosigned by three witnesses of
the policy, whose quorum needs all three, and by one cosigner the policy does not know. Two
regions are not authenticated, and the specs say so:

* the ``extra`` line of a tlog proof (tlog-proof: "it is not authenticated"): a change there
  either makes the proof malformed or gives the same proof with other extra data;
* the unknown cosigner's signature line (signed-note and tlog-witness: lines of unknown keys
  are ignored): a change there either makes the note malformed, or makes it a known key's
  line that fails, or leaves it unknown and the checkpoint and cosigners unchanged.

Any other changed byte must raise an ``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.integrity import IntegrityError, PolicyError, ProofError, SignatureError
from auditlog.integrity import checkpoint as cp
from auditlog.integrity import cosignature as c
from auditlog.integrity import note as n
from auditlog.integrity import policy as p
from auditlog.integrity import proof as pr
from auditlog.integrity import tlogproof as t
from auditlog.integrity.hasher import leaf_hash

ORIGIN = "example.com/mutations"
LOG = n.Signer(ORIGIN, bytes([7]) * 32)
WITNESSES = [c.Cosigner(f"w{i}.example", bytes([40 + i]) * 32) for i in (1, 2, 3)]
OUTSIDER = c.Cosigner("outsider.example", bytes([50]) * 32)
POLICY = p.parse(
    f"log {LOG.verifier.vkey}\n"
    + "".join(f"witness W{i} {w.key.vkey}\n" for i, w in enumerate(WITNESSES, 1))
    + "group all-three all W1 W2 W3\nquorum all-three\n"
)

LEAVES = [leaf_hash(f"event {i}".encode()) for i in range(11)]
INDEX = 6
CHECKPOINT = cp.Checkpoint(ORIGIN, len(LEAVES), pr.root_of_leaves(LEAVES))
TEXT = cp.format(CHECKPOINT)
COSIGNATURES = tuple(w.cosign(TEXT, 1700000000 + i) for i, w in enumerate(WITNESSES))
OUTSIDER_LINE = OUTSIDER.cosign(TEXT, 1700000009)
NOTE = n.Note(TEXT, (LOG.sign(TEXT), *COSIGNATURES, OUTSIDER_LINE)).message
PROOF = t.TlogProof(INDEX, pr.inclusion_of_leaves(INDEX, LEAVES), NOTE, b"application data")
PROOF_TEXT = t.format(PROOF).encode()
COSIGNERS = {"W1": 1700000000, "W2": 1700000001, "W3": 1700000002}


def _span(data: bytes, part: bytes) -> range:
    start = data.index(part)
    assert data.count(part) == 1
    return range(start, start + len(part))


EXTRA = _span(PROOF_TEXT, b"extra " + t.format(PROOF).split("\n")[1][6:].encode() + b"\n")
EXTRA_DATA = range(EXTRA.start + len("extra "), EXTRA.stop - 1)
OUTSIDER_IN_PROOF = _span(PROOF_TEXT, OUTSIDER_LINE.line.encode())
OUTSIDER_IN_NOTE = _span(NOTE.encode(), OUTSIDER_LINE.line.encode())


def _verify(text: bytes) -> tuple[t.TlogProof, p.CheckedCheckpoint]:
    proof = t.parse(text)
    checkpoint = t.verify(proof, LEAVES[INDEX], [log.verifier for log in POLICY.logs])
    checked = POLICY.check(proof.checkpoint, origin=ORIGIN)
    assert checked.checkpoint == checkpoint
    return proof, checked


def _mutate(data: bytes, position: int, value: int) -> bytes:
    mutated = bytearray(data)
    mutated[position] = value
    return bytes(mutated)


def test_the_unmutated_proof_verifies() -> None:
    proof, checked = _verify(PROOF_TEXT)
    assert proof == PROOF
    assert checked.checkpoint == CHECKPOINT
    assert checked.cosigners == COSIGNERS
    assert c.verify_cosignatures(NOTE, [OUTSIDER.key]) == {"outsider.example": 1700000009}


@settings(max_examples=400)
@given(st.data())
def test_a_changed_byte_of_the_proof_text_fails(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(PROOF_TEXT) - 1), label="position")
    value = data.draw(
        st.integers(0, 255).filter(lambda v: v != PROOF_TEXT[position]), label="value"
    )
    mutated = _mutate(PROOF_TEXT, position, value)
    if position in EXTRA:
        # Unauthenticated: malformed, or the same proof with other extra data.
        try:
            proof, checked = _verify(mutated)
        except IntegrityError:
            return
        assert position in EXTRA_DATA
        assert proof.extra != PROOF.extra
        assert (proof.index, proof.hashes, proof.checkpoint) == (PROOF.index, PROOF.hashes, NOTE)
        assert checked.cosigners == COSIGNERS
    elif position in OUTSIDER_IN_PROOF:
        _unknown_line_changed(lambda: _verify(mutated)[1])
    else:
        with pytest.raises(IntegrityError):
            _verify(mutated)


def _unknown_line_changed(check: Callable[[], p.CheckedCheckpoint]) -> None:
    try:
        checked = check()
    except IntegrityError:
        return
    # Still the line of a key the policy does not know: ignored, nothing else changes.
    assert checked.checkpoint == CHECKPOINT
    assert checked.cosigners == COSIGNERS


@settings(max_examples=400)
@given(st.data())
def test_a_changed_byte_of_the_cosigned_note_fails(data: st.DataObject) -> None:
    note = NOTE.encode()
    position = data.draw(st.integers(0, len(note) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != note[position]), label="value")
    mutated = _mutate(note, position, value)
    if position in OUTSIDER_IN_NOTE:
        _unknown_line_changed(lambda: POLICY.check(mutated))
    else:
        with pytest.raises(IntegrityError):
            POLICY.check(mutated)


@given(
    st.integers(0, len(WITNESSES) - 1),
    st.integers(0, n.KEY_ID_SIZE + c.COSIGNATURE_SIZE - 1),
    st.integers(1, 255),
)
def test_a_changed_byte_of_a_cosignature_fails(witness: int, position: int, xor: int) -> None:
    good = COSIGNATURES[witness]
    raw = bytearray(good.key_id + good.signature)
    raw[position] ^= xor
    bad = n.Signature(good.name, bytes(raw[: n.KEY_ID_SIZE]), bytes(raw[n.KEY_ID_SIZE :]))
    lines = list(COSIGNATURES)
    lines[witness] = bad
    note = n.Note(TEXT, (LOG.sign(TEXT), *lines)).message
    if position < n.KEY_ID_SIZE:
        # Another key ID: the line is no longer the witness's, so its cosignature is missing.
        assert not WITNESSES[witness].key.matches(bad)
        with pytest.raises(PolicyError, match="group all-three needs 3 of W1, W2, W3 and has 2"):
            POLICY.check(note)
    else:
        with pytest.raises(SignatureError, match=f"w{witness + 1}\\.example"):
            WITNESSES[witness].key.verify(TEXT, bad)
        with pytest.raises(SignatureError, match=f"w{witness + 1}\\.example"):
            POLICY.check(note)
        with pytest.raises(SignatureError):
            c.verify_cosignatures(note, [w.key for w in WITNESSES])


@given(st.integers(0, len(PROOF.hashes) - 1), st.integers(0, 31), st.integers(1, 255))
def test_a_changed_byte_of_a_proof_hash_fails(which: int, position: int, xor: int) -> None:
    hashes = [bytearray(h) for h in PROOF.hashes]
    hashes[which][position] ^= xor
    proof = t.TlogProof(INDEX, tuple(bytes(h) for h in hashes), NOTE, PROOF.extra)
    with pytest.raises(ProofError, match="leads to root"):
        t.verify(proof, LEAVES[INDEX], LOG.verifier)
    with pytest.raises(ProofError, match="leads to root"):
        t.verify(t.parse(t.format(proof)), LEAVES[INDEX], LOG.verifier)


@given(st.integers(0, 31), st.integers(1, 255))
def test_a_changed_byte_of_the_leaf_hash_fails(position: int, xor: int) -> None:
    leaf = bytearray(LEAVES[INDEX])
    leaf[position] ^= xor
    with pytest.raises(ProofError, match="leads to root"):
        t.verify(PROOF, bytes(leaf), LOG.verifier)
