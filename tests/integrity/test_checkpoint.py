"""Checkpoints (C2SP tlog-checkpoint): the exact text, strict parsing, round trips, and signed
checkpoints that fail when anything in them changes."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity import CheckpointError, IntegrityError, NoteError, SignatureError
from auditlog.integrity import checkpoint as c
from auditlog.integrity import note as n
from auditlog.integrity.hasher import EMPTY_ROOT

# The example of C2SP tlog-checkpoint.md, signed by a key whose public half is not published.
C2SP_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
C2SP_NOTE = (
    C2SP_BODY
    + "\n"
    + "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

# A signed checkpoint of the RFC 6962 reference tree (its 8-entry root, from
# transparency-dev/merkle proof/verify_test.go), signed with the secret key of RFC 8032 §7.1
# TEST 1. The text was made by this implementation; the test below derives it again from the
# specs with hashlib and `cryptography` alone.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ORIGIN = "auditlog.example/acme"
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
SIGNED = (
    "auditlog.example/acme\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "— auditlog.example/acme knuShmMD3zezTdkYutpIbRTpRa/LXktAKBrvAS/xiFgVKqB3zsMfDIJvABo6GutlkYvqmI9Ql3TGM1mnzl7r7T6roA8=\n"
)
VKEY = "auditlog.example/acme+927b9286+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"

SIGNER = n.Signer(ORIGIN, SEED)
CHECKPOINT = c.Checkpoint(ORIGIN, 8, ROOT8)


def test_format_the_c2sp_example() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    checkpoint = c.Checkpoint("example.com/behind-the-sofa", 20852163, root)
    assert c.format(checkpoint) == C2SP_BODY
    assert c.parse(C2SP_BODY) == checkpoint


def test_parse_the_c2sp_example_note() -> None:
    checkpoint = c.parse(n.parse(C2SP_NOTE).text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    with pytest.raises(SignatureError, match="signed by no known key"):
        c.verify(C2SP_NOTE, SIGNER.verifier)


def test_signed_checkpoint_known_answer() -> None:
    assert c.sign(CHECKPOINT, SIGNER) == SIGNED
    assert SIGNER.verifier.vkey == VKEY
    assert c.verify(SIGNED, n.Verifier.from_vkey(VKEY), origin=ORIGIN) == CHECKPOINT


def test_signed_checkpoint_is_derived_from_the_specs() -> None:
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key().public_bytes_raw()
    body = f"{ORIGIN}\n8\n{base64.b64encode(ROOT8).decode()}\n"
    key_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    signature = base64.b64encode(key_id + private.sign(body.encode())).decode()
    assert body + "\n" + "\u2014 " + ORIGIN + " " + signature + "\n" == SIGNED
    encoded_key = base64.b64encode(b"\x01" + public).decode()
    assert f"{ORIGIN}+{key_id.hex()}+{encoded_key}" == VKEY


def test_the_empty_tree() -> None:
    empty = c.Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    text = c.format(empty)
    assert text == f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    assert c.parse(text) == empty


def test_extension_lines() -> None:
    checkpoint = c.Checkpoint(ORIGIN, 8, ROOT8, ("timestamp 1764210473", "more"))
    text = c.format(checkpoint)
    assert text.endswith("\ntimestamp 1764210473\nmore\n")
    assert c.parse(text) == checkpoint
    signed = c.sign(checkpoint, SIGNER)
    assert c.verify(signed, SIGNER.verifier) == checkpoint


origins = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1)
lines = st.lists(origins, max_size=3).map(tuple)
checkpoints = st.builds(
    c.Checkpoint,
    origin=origins,
    size=st.integers(0, c.MAX_SIZE),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=lines,
)


@given(checkpoints)
def test_format_and_parse_round_trip(checkpoint: c.Checkpoint) -> None:
    text = c.format(checkpoint)
    assert c.parse(text) == checkpoint
    assert c.format(c.parse(text)) == text


@given(checkpoints)
def test_sign_and_verify_round_trip(checkpoint: c.Checkpoint) -> None:
    assert c.verify(c.sign(checkpoint, SIGNER), [SIGNER.verifier]) == checkpoint


@given(checkpoints, st.data())
def test_any_character_changed_in_a_signed_checkpoint_fails(
    checkpoint: c.Checkpoint, data: st.DataObject
) -> None:
    signed = c.sign(checkpoint, SIGNER)
    at = data.draw(st.integers(0, len(signed) - 1))
    other = data.draw(
        st.characters(min_codepoint=0x0A, exclude_categories=["Cs"]).filter(
            lambda ch: ch != signed[at]
        )
    )
    with pytest.raises(IntegrityError):
        c.verify(signed[:at] + other + signed[at + 1 :], SIGNER.verifier)


ROOT8_B64 = base64.b64encode(ROOT8).decode()


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [
        (lambda s: s.replace("\n8\n", "\n9\n"), SignatureError, "does not verify"),
        (lambda s: s.replace("\n8\n", "\n08\n"), SignatureError, "does not verify"),
        (lambda s: s.replace("XcnaeacG", "XcnaeacH"), SignatureError, "does not verify"),
        (lambda s: s.replace("example/acme\n", "example/acmf\n"), SignatureError, "not verify"),
        (lambda s: s.replace("\u2014 auditlog.example/acme", "\u2014 x"), SignatureError, "known"),
        (lambda s: s.replace("knuShm", "knuShn"), SignatureError, "does not verify"),
        (lambda s: s.replace("knuShm", "knuSh"), NoteError, "not base64"),
        # An extra blank line before the signature makes it part of the signed text.
        (lambda s: s.replace("Qyg=\n\n", "Qyg=\n\n\n"), SignatureError, "does not verify"),
        (lambda s: s + "\n", NoteError, "no signature after its last blank line"),
        (lambda s: s[:-1], NoteError, "does not end in a newline"),
        (lambda s: s.replace("\n", "\r\n"), NoteError, "control character"),
    ],
)
def test_mutated_signed_checkpoints_fail(
    mutate: Callable[[str], str], error: type[IntegrityError], reason: str
) -> None:
    mutated = mutate(SIGNED)
    assert mutated != SIGNED
    with pytest.raises(error, match=reason):
        c.verify(mutated, SIGNER.verifier)


def test_a_checkpoint_of_another_log_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"for origin 'auditlog\.example/acme', expected 'b'"):
        c.verify(SIGNED, SIGNER.verifier, origin="b")


def test_a_signed_note_that_is_no_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError, match="has 2 lines, expected at least 3"):
        c.verify(n.sign("hello\nworld\n", SIGNER), SIGNER.verifier)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{ORIGIN}\n8\n{ROOT8_B64}", "does not end in a newline"),
        (f"{ORIGIN}\n8\n", "has 2 lines, expected at least 3"),
        (f"\n8\n{ROOT8_B64}\n", "origin is empty"),
        (f"{ORIGIN}\n\n{ROOT8_B64}\n", "tree size '' is not a decimal"),
        (f"{ORIGIN}\n08\n{ROOT8_B64}\n", "tree size '08' is not a decimal"),
        (f"{ORIGIN}\n00\n{ROOT8_B64}\n", "tree size '00' is not a decimal"),
        (f"{ORIGIN}\n+8\n{ROOT8_B64}\n", "tree size '\\+8'"),
        (f"{ORIGIN}\n-1\n{ROOT8_B64}\n", "tree size '-1'"),
        (f"{ORIGIN}\n 8\n{ROOT8_B64}\n", "tree size ' 8'"),
        (f"{ORIGIN}\n8 \n{ROOT8_B64}\n", "tree size '8 '"),
        (f"{ORIGIN}\n1_000\n{ROOT8_B64}\n", "tree size '1_000'"),
        (f"{ORIGIN}\n\u0668\n{ROOT8_B64}\n", "tree size '\u0668'"),  # ARABIC-INDIC DIGIT EIGHT
        (f"{ORIGIN}\n0x8\n{ROOT8_B64}\n", "tree size '0x8'"),
        (f"{ORIGIN}\n{2**64}\n{ROOT8_B64}\n", "tree size 18446744073709551616 is not in"),
        (f"{ORIGIN}\n8\n\n", "root hash '' is not the base64 of a 32-byte hash"),
        (f"{ORIGIN}\n8\n{ROOT8.hex()}\n", "is not the base64 of a 32-byte hash"),
        (f"{ORIGIN}\n8\n{ROOT8_B64[:-1]}\n", "is not the base64"),
        (f"{ORIGIN}\n8\n{ROOT8_B64.rstrip('=')}\n", "is not the base64"),
        (f"{ORIGIN}\n8\n{ROOT8_B64[:-2]}h=\n", "is not the base64"),  # non-zero padding bits
        (f"{ORIGIN}\n8\n {ROOT8_B64}\n", "is not the base64"),
        (f"{ORIGIN}\n8\n{ROOT8_B64.replace('+', '-').replace('/', '_')}\n", "is not the base64"),
        (f"{ORIGIN}\n8\n{base64.b64encode(ROOT8[:31]).decode()}\n", "is not the base64"),
        (f"{ORIGIN}\n8\n{base64.b64encode(ROOT8 + b'x').decode()}\n", "is not the base64"),
        (f"{ORIGIN}\n8\n{ROOT8_B64}\n\n", "extension line 1 is empty"),
        (f"{ORIGIN}\n8\n{ROOT8_B64}\nx\n\ny\n", "extension line 2 is empty"),
        (f"{ORIGIN}\r\n8\n{ROOT8_B64}\n", "origin holds the control character U\\+000D"),
        (f"{ORIGIN}\n8\n{ROOT8_B64}\nx\ty\n", "extension line 1 holds the control character"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        c.parse(text)


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions", "reason"),
    [
        ("", 8, ROOT8, (), "origin is empty"),
        ("a\nb", 8, ROOT8, (), "origin holds the control character U\\+000A"),
        (ORIGIN, -1, ROOT8, (), "tree size -1 is not in"),
        (ORIGIN, 2**64, ROOT8, (), "tree size 18446744073709551616 is not in"),
        (ORIGIN, 8, ROOT8[:31], (), "root hash has 31 bytes, expected 32"),
        (ORIGIN, 8, ROOT8, ("",), "extension line 1 is empty"),
        (ORIGIN, 8, ROOT8, ("a", "b\nc"), "extension line 2 holds the control character"),
    ],
)
def test_a_checkpoint_value_is_checked_when_made(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(CheckpointError, match=reason):
        c.Checkpoint(origin, size, root, extensions)


def test_the_largest_tree_size() -> None:
    largest = c.Checkpoint(ORIGIN, 2**64 - 1, ROOT8)
    assert c.parse(c.format(largest)).size == 18446744073709551615


def test_checkpoints_are_values() -> None:
    assert c.Checkpoint(ORIGIN, 8, ROOT8) == CHECKPOINT
    assert hash(c.Checkpoint(ORIGIN, 8, ROOT8)) == hash(CHECKPOINT)
    with pytest.raises(AttributeError):
        CHECKPOINT.size = 9  # type: ignore[misc]
