"""Cosignatures (C2SP tlog-cosignature v1, Ed25519): the transparency-dev/formats vectors, the
spec's example, a vector of ours checked by an independent computation, and the rules for
known, unknown and bad cosignature lines."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity import KeyFormatError, NoteError, SignatureError
from auditlog.integrity import cosignature as c
from auditlog.integrity import note as n

VECTORS = Path(__file__).parent / "vectors"


def _lines(name: str) -> list[str]:
    text = (VECTORS / name).read_text("utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
LOG = n.Signer("example.com/behind-the-sofa", bytes(range(32)))
W1 = c.Cosigner("w1.example", bytes([1]) * 32)
W2 = c.Cosigner("w2.example", bytes([2]) * 32)
W3 = c.Cosigner("w3.example", bytes([3]) * 32)


def _signature(line: str) -> n.Signature:
    """The one signature of a note made of ``TEXT`` and ``line``."""
    (signature,) = n.parse(TEXT + "\n" + line).signatures
    return signature


# --- vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("line", _lines("formats_cosigv1_vkeys.txt"))
def test_formats_vkeys(line: str) -> None:
    expect, vkey = line.split(" ", 1)
    if expect == "ok":
        key = c.CosignerKey.from_vkey(vkey)
        assert key.vkey == vkey
        assert key.key_id.hex() == vkey.split("+")[1]
        return
    reason = {
        "type": "not an Ed25519 cosignature key",
        "parts": "not <name>\\+<key ID>\\+<key>",
        "base64": "not base64",
    }[expect]
    with pytest.raises(KeyFormatError, match=reason):
        c.CosignerKey.from_vkey(vkey)


def test_a_signed_note_key_is_not_a_cosigner_key() -> None:
    # The formats vector of type 0x01: a note verifier, and the same public key under type
    # 0x04 has another key ID.
    vkey = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    with pytest.raises(KeyFormatError, match=r"signed-note Ed25519 key \(type 0x01\)"):
        c.CosignerKey.from_vkey(vkey)
    verifier = n.Verifier.from_vkey(vkey)
    as_cosigner = c.CosignerKey(verifier.name, verifier.public_key)
    assert as_cosigner.key_id != verifier.key_id
    assert verifier.key_id.hex() == "7997405c"


def test_the_remora_key_id_is_the_spec_formula() -> None:
    key = c.CosignerKey.from_vkey(
        "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    )
    want = hashlib.sha256(b"remora.n621.de\n\x04" + key.public_key).digest()[:4]
    assert want.hex() == "da77ade7" == key.key_id.hex()


@pytest.mark.parametrize("line", _lines("formats_cosigv1_timestamps.txt"))
def test_formats_cosignature_timestamps(line: str) -> None:
    expect, b64 = line.split(" ", 1)
    raw = base64.b64decode(b64)
    key = c.CosignerKey("k", bytes(32))
    signature = n.Signature("k", key.key_id, raw[4:])
    if expect == "refused":
        with pytest.raises(SignatureError, match="has 64 bytes, expected 72"):
            key.verify(TEXT, signature)
        return
    # The timestamp is the 8 big-endian bytes after the key ID; the signature is the key's,
    # which is not published, so it does not verify under another.
    assert int.from_bytes(raw[4:12], "big") == int(expect)
    with pytest.raises(SignatureError, match=f"at time {expect} does not verify"):
        key.verify(TEXT, signature)


def test_the_c2sp_example() -> None:
    message = (VECTORS / "c2sp_cosigned_checkpoint.txt").read_text("utf-8")
    note = n.parse(message)
    assert note.text == TEXT
    log_line, witness_line = note.signatures
    assert witness_line.name == "witness.example.com/w1"
    assert len(witness_line.signature) == c.COSIGNATURE_SIZE
    # The spec's signed message example has "time 1679315147".
    assert int.from_bytes(witness_line.signature[:8], "big") == 1679315147
    assert len(log_line.signature) == 64
    # Neither key is published: cosigner keys of other names see no cosignature.
    assert c.verify_cosignatures(message, [W1.key, W2.key]) == {}


def test_formats_witness_seeds_cosign_under_type_4() -> None:
    for line in _lines("formats_witnesses.txt"):
        vkey, skey = line.split(" ")
        signer = n.Signer.from_skey(skey)
        assert signer.verifier.vkey == vkey
        cosigner = c.Cosigner(signer.name, signer.seed)
        assert cosigner.key.public_key == signer.verifier.public_key
        assert cosigner.key.key_id != signer.key_id
        line_ = cosigner.cosign("sign me\nI'm a\nnote\n", 1727964367)
        assert cosigner.key.verify("sign me\nI'm a\nnote\n", line_) == 1727964367


def test_generated_vector() -> None:
    lines = (VECTORS / "generated_cosignature.txt").read_text("utf-8").split("\n")
    skey = lines[1].removeprefix("skey ")
    vkey = lines[2].removeprefix("vkey ")
    timestamp = int(lines[3].removeprefix("time "))
    message = "\n".join(lines[4:])
    cosigner = c.Cosigner.from_skey(skey)
    assert cosigner.skey() == skey
    assert cosigner.key.vkey == vkey
    assert c.CosignerKey.from_vkey(vkey) == cosigner.key
    signature = cosigner.cosign(TEXT, timestamp)
    assert TEXT + "\n" + signature.line == message
    assert c.verify_cosignatures(message, [cosigner.key]) == {cosigner.name: timestamp}

    # The same, computed from the spec with hashlib and cryptography alone.
    seed = base64.b64decode(skey.split("+")[-1])[1:]
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes_raw()
    name = cosigner.name.encode()
    key_id = hashlib.sha256(name + b"\n" + b"\x04" + public).digest()[:4]
    signed = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + TEXT.encode()
    raw = key_id + timestamp.to_bytes(8, "big") + private.sign(signed)
    assert message.endswith("\u2014 " + cosigner.name + " " + base64.b64encode(raw).decode() + "\n")
    Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], signed)


# --- the module -------------------------------------------------------------------------------


def test_message_is_the_spec_text() -> None:
    assert c.message(TEXT, 1679315147) == "cosignature/v1\ntime 1679315147\n" + TEXT


def test_keys_round_trip() -> None:
    cosigner = c.Cosigner.generate("w.example")
    assert c.Cosigner.from_skey(cosigner.skey()) == cosigner
    assert c.CosignerKey.from_vkey(cosigner.key.vkey) == cosigner.key
    assert cosigner.key.vkey.split("+")[2].startswith("B")  # base64 of 0x04 ...
    assert "seed" not in repr(cosigner)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("w.example+00000000+" + base64.b64encode(b"\x04" + bytes(32)).decode(), "its ID is"),
        ("w.example+ABCDEF01+" + base64.b64encode(b"\x04" + bytes(32)).decode(), "8 lowercase"),
        ("w.example+00000000+" + base64.b64encode(b"\x04" + bytes(31)).decode(), "31 key bytes"),
        ("w.example+00000000+", "not base64"),
        ("w example+00000000+" + base64.b64encode(b"\x04" + bytes(32)).decode(), "key name"),
    ],
)
def test_malformed_vkeys(text: str, reason: str) -> None:
    with pytest.raises(KeyFormatError, match=reason):
        c.CosignerKey.from_vkey(text)


def test_malformed_skeys() -> None:
    with pytest.raises(KeyFormatError, match="PRIVATE\\+KEY"):
        c.Cosigner.from_skey(W1.key.vkey)
    skey = W1.skey()
    with pytest.raises(KeyFormatError, match="its ID is"):
        c.Cosigner.from_skey(skey.replace(W1.key.key_id.hex(), "00000000"))
    with pytest.raises(KeyFormatError, match="type 0x01"):
        c.Cosigner.from_skey(n.Signer("w1.example", bytes(32)).skey())
    with pytest.raises(KeyFormatError, match="32 bytes, not 31"):
        c.Cosigner("w", bytes(31))


@pytest.mark.parametrize("timestamp", [0, -1, 2**63])
def test_cosign_refuses_timestamps_out_of_range(timestamp: int) -> None:
    with pytest.raises(ValueError, match=r"not in 1\.\.2\^63 - 1"):
        W1.cosign(TEXT, timestamp)


def test_cosign_takes_a_note_text() -> None:
    with pytest.raises(NoteError, match="end in a newline"):
        W1.cosign("no newline", 1)


def test_verify_refuses_what_is_not_the_keys_cosignature() -> None:
    good = W1.cosign(TEXT, 1700000000)
    assert W1.key.verify(TEXT, good) == 1700000000
    with pytest.raises(SignatureError, match=r"is not by w2\.example"):
        W2.key.verify(TEXT, good)
    with pytest.raises(SignatureError, match="at time 1700000000 does not verify"):
        W1.key.verify(TEXT.replace("20852163", "20852164"), good)
    short = n.Signature(good.name, good.key_id, good.signature[:-1])
    with pytest.raises(SignatureError, match="71 bytes, expected 72"):
        W1.key.verify(TEXT, short)
    late = n.Signature(good.name, good.key_id, (2**63).to_bytes(8, "big") + good.signature[8:])
    with pytest.raises(SignatureError, match="more than 2\\^63 - 1"):
        W1.key.verify(TEXT, late)
    # The timestamp is signed: another time does not verify.
    other = n.Signature(
        good.name, good.key_id, (1700000001).to_bytes(8, "big") + good.signature[8:]
    )
    with pytest.raises(SignatureError, match="does not verify"):
        W1.key.verify(TEXT, other)
    # A log's plain note signature by the same seed is no cosignature.
    plain = n.Signer(W1.name, W1.seed).sign(TEXT)
    assert not W1.key.matches(plain)


def test_the_largest_timestamp_verifies() -> None:
    assert W1.key.verify(TEXT, W1.cosign(TEXT, 2**63 - 1)) == 2**63 - 1


def _cosigned(*lines: n.Signature) -> str:
    return n.Note(TEXT, (LOG.sign(TEXT), *lines)).message


def test_verify_cosignatures() -> None:
    message = _cosigned(W1.cosign(TEXT, 10), W2.cosign(TEXT, 20))
    keys = [W1.key, W2.key, W3.key]
    assert c.verify_cosignatures(message, keys) == {"w1.example": 10, "w2.example": 20}
    assert c.verify_cosignatures(message.encode(), [W3.key]) == {}
    assert c.verify_cosignatures(_cosigned(), keys) == {}
    bad = _cosigned(W1.cosign(TEXT, 10), W2.cosign(TEXT + "x\n", 20))
    with pytest.raises(SignatureError, match=r"by key w2\.example\+[0-9a-f]{8}"):
        c.verify_cosignatures(bad, keys)
    # Unknown to these keys, the bad line is ignored.
    assert c.verify_cosignatures(bad, [W1.key]) == {"w1.example": 10}


def test_a_line_under_a_known_name_with_another_key_id_is_ignored() -> None:
    impostor = c.Cosigner(W1.name, bytes([9]) * 32)
    message = _cosigned(impostor.cosign(TEXT, 5))
    assert c.verify_cosignatures(message, [W1.key]) == {}


def test_two_keys_of_one_name_are_a_mistake() -> None:
    with pytest.raises(ValueError, match="two cosigner keys named"):
        c.verify_cosignatures(_cosigned(), [W1.key, c.CosignerKey(W1.name, bytes(32))])


def test_add_cosignatures() -> None:
    message = _cosigned(W1.cosign(TEXT, 10))
    response = W2.cosign(TEXT, 20).line + W1.cosign(TEXT, 30).line + W3.cosign(TEXT, 40).line
    added = c.add_cosignatures(message, response)
    assert added == message + W2.cosign(TEXT, 20).line + W3.cosign(TEXT, 40).line
    keys = [W1.key, W2.key, W3.key]
    assert c.verify_cosignatures(added, keys) == {
        "w1.example": 10,
        "w2.example": 20,
        "w3.example": 40,
    }
    assert c.add_cosignatures(added, response) == added


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ("", "empty"),
        (W1.cosign(TEXT, 1).line[:-1], "does not end in a newline"),
        ("\n", "line 1 does not start with an em dash"),
        (W1.cosign(TEXT, 1).line + "\n", "line 2 does not start with an em dash"),
        ("x " + W1.cosign(TEXT, 1).line, "line 1 does not start"),
        (W1.cosign(TEXT, 1).line + W1.cosign(TEXT, 2).line, "two signatures by key w1.example"),
        ("\u2014 w1.example AAAA\n", "not base64 of a key ID"),
        ("\u2014 w1.example\n", "no valid key name"),
    ],
)
def test_add_cosignatures_refuses_malformed_lines(lines: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        c.add_cosignatures(_cosigned(), lines)


@given(
    st.integers(1, 2**63 - 1),
    st.text(st.characters(min_codepoint=32, exclude_categories=("Cs",)), max_size=20),
)
def test_cosign_verify_round_trip(timestamp: int, line: str) -> None:
    text = TEXT + (line + "\n" if line else "")
    assert W1.key.verify(text, W1.cosign(text, timestamp)) == timestamp
