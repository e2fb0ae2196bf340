"""Signed notes (C2SP signed-note) with Ed25519: known answers from the Go reference and RFC
8032, the key ID of the spec, strict parsing, and the spec's rules for known and unknown keys."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity import IntegrityError, KeyFormatError, NoteError, SignatureError
from auditlog.integrity import note as n

# Known answer from golang.org/x/mod sumdb/note/note.go (the package documentation's example):
# the signer key, its verifier key, the text, and the signed note it gives.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n"
    + "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# The same example signed a second time by a key whose private half is not published.
GO_ENOCH_LINE = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# RFC 8032 §7.1, TEST 1: the Ed25519 secret key, its public key, and the signature of the
# empty message.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

# The example of C2SP signed-note.md: a text holding a blank line, signed by an unknown key.
C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)

ALICE = n.Signer("alice.example/log", bytes(range(32)))
BOB = n.Signer("bob.example/witness", bytes(range(32, 64)))
TEXT = "a note\nof two lines\n"


def test_the_go_example_signs_to_the_same_note() -> None:
    signer = n.Signer.from_skey(GO_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier.vkey == GO_VKEY
    assert signer.skey() == GO_SKEY
    assert n.sign(GO_TEXT, signer) == GO_NOTE


def test_the_go_example_verifies() -> None:
    verifier = n.Verifier.from_vkey(GO_VKEY)
    note = n.verify(GO_NOTE, [verifier])
    assert note.text == GO_TEXT
    assert [(s.name, s.key_id.hex()) for s in note.signatures] == [("PeterNeumann", "c74f20a3")]


def test_the_go_example_cosigned_by_an_unknown_key_verifies() -> None:
    cosigned = GO_NOTE + GO_ENOCH_LINE
    note = n.verify(cosigned, n.Verifier.from_vkey(GO_VKEY))
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert note.message == cosigned


def test_ed25519_is_rfc_8032() -> None:
    signer = n.Signer("rfc8032", RFC8032_SECRET)
    assert signer.verifier.public_key == RFC8032_PUBLIC
    assert signer.sign("").signature == RFC8032_SIGNATURE
    assert signer.verifier.verify("", RFC8032_SIGNATURE)
    assert not signer.verifier.verify("x", RFC8032_SIGNATURE)


def test_key_id_is_the_spec_formula() -> None:
    public = ALICE.verifier.public_key
    want = hashlib.sha256(b"alice.example/log" + b"\x0a" + b"\x01" + public).digest()[:4]
    assert n.key_id("alice.example/log", public) == want
    assert ALICE.key_id == want
    assert ALICE.verifier.key_id == want
    # The same key under another name has another ID.
    assert n.key_id("alice.example/other", public) != want


def test_key_id_needs_a_32_byte_key() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes, not 31"):
        n.key_id("x", bytes(31))


def test_signed_note_text_is_exact() -> None:
    message = n.sign(TEXT, ALICE)
    signature = ALICE.sign(TEXT)
    raw = ALICE.key_id + signature.signature
    assert (
        message == TEXT + "\n" + "\u2014 alice.example/log " + base64.b64encode(raw).decode() + "\n"
    )
    assert len(signature.signature) == 64


def test_parse_the_c2sp_example() -> None:
    note = n.parse(C2SP_NOTE)
    assert note.text == (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    )
    (signature,) = note.signatures
    assert signature.name == "quasimodo.example/salvatore"
    assert len(signature.key_id) == 4
    assert len(signature.signature) == 64
    assert note.message == C2SP_NOTE
    assert n.parse(C2SP_NOTE.encode("utf-8")) == note


def test_a_note_by_an_unknown_key_is_refused() -> None:
    with pytest.raises(SignatureError, match="signed by no known key"):
        n.verify(C2SP_NOTE, [ALICE.verifier])


def test_several_signatures() -> None:
    message = n.sign(TEXT, ALICE, BOB)
    assert n.verify(message, [ALICE.verifier]).text == TEXT
    assert n.verify(message, [BOB.verifier]).text == TEXT
    both = n.verify(message, [ALICE.verifier, BOB.verifier])
    assert [s.name for s in both.signatures] == [ALICE.name, BOB.name]


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    forged = n.Note(TEXT, (ALICE.sign(TEXT), n.Signature(BOB.name, BOB.key_id, bytes(64))))
    with pytest.raises(SignatureError, match=f"signature by key {BOB.name}\\+{BOB.key_id.hex()}"):
        n.verify(forged.message, [ALICE.verifier, BOB.verifier])
    # Unknown to this verifier, Bob's line is ignored, as the spec requires.
    assert n.verify(forged.message, [ALICE.verifier]).text == TEXT


def test_a_key_known_by_name_or_id_alone_is_unknown() -> None:
    impostor = n.Signer(ALICE.name, bytes(32))  # Alice's name, another key, so another ID
    same_id_other_name = n.Signature("mallory.example", ALICE.key_id, impostor.sign(TEXT).signature)
    note = n.Note(TEXT, (impostor.sign(TEXT), same_id_other_name))
    with pytest.raises(SignatureError, match="signed by no known key"):
        n.verify(note.message, [ALICE.verifier])
    # Ignored beside a good signature by the known key.
    cosigned = n.Note(TEXT, (*note.signatures, ALICE.sign(TEXT)))
    assert n.verify(cosigned.message, ALICE.verifier).text == TEXT


def test_two_verifiers_for_one_key_are_a_mistake() -> None:
    with pytest.raises(ValueError, match=r"two verifiers for key alice\.example/log"):
        n.verify(n.sign(TEXT, ALICE), [ALICE.verifier, ALICE.verifier])


def test_no_known_verifiers_verifies_nothing() -> None:
    with pytest.raises(SignatureError, match="known none given"):
        n.verify(n.sign(TEXT, ALICE), [])


def test_a_key_signs_once() -> None:
    with pytest.raises(NoteError, match=r"two signatures by key alice\.example/log"):
        n.sign(TEXT, ALICE, ALICE)
    line = ALICE.sign(TEXT).line
    with pytest.raises(NoteError, match=r"two signatures by key alice\.example/log"):
        n.parse(TEXT + "\n" + line + line)


def test_text_to_sign_must_be_a_note_text() -> None:
    with pytest.raises(NoteError, match="end in a newline"):
        n.sign("no newline", ALICE)
    with pytest.raises(NoteError, match="control character U\\+000D"):
        n.sign("crlf\r\n", ALICE)
    with pytest.raises(NoteError, match="at least one signature"):
        n.sign(TEXT)


GOOD = n.sign(TEXT, ALICE)
GOOD_LINE = GOOD[len(TEXT) + 1 :]
GOOD_B64 = GOOD_LINE.split(" ")[-1][:-1]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (TEXT + GOOD_LINE, "no blank line"),
        (GOOD[:-1], "does not end in a newline"),
        (GOOD + "\n", "no signature after its last blank line"),
        (TEXT + "\n", "no signature after its last blank line"),
        (TEXT + "\n" + "- alice.example/log " + GOOD_B64 + "\n", "em dash"),
        (TEXT + "\n" + "\u2014alice.example/log " + GOOD_B64 + "\n", "em dash"),
        (TEXT + "\n" + "\u2014  alice.example/log " + GOOD_B64 + "\n", "no valid key name"),
        (TEXT + "\n" + "\u2014 alice.example/log  " + GOOD_B64 + "\n", "not base64"),
        (TEXT + "\n" + "\u2014 alice+log " + GOOD_B64 + "\n", "no valid key name"),
        (TEXT + "\n" + "\u2014 alice.example/log\n", "no valid key name"),
        (TEXT + "\n" + "\u2014 alice.example/log " + GOOD_B64[:-1] + "\n", "not base64"),
        (TEXT + "\n" + "\u2014 alice.example/log " + GOOD_B64 + " \n", "not base64"),
        (TEXT + "\n" + "\u2014 alice.example/log AAAAAA==\n", "not base64 of a key ID and a"),
        (TEXT + "\n" + "\u2014 alice.example/log -" + GOOD_B64[1:] + "\n", "not base64"),
        (TEXT + "\n" + "\u2014 alice.example/log AAAAAAB=\n", "not base64"),  # padding bits set
        (GOOD.replace("\n", "\r\n"), "control character U\\+000D"),
        (GOOD.replace("two", "\ttwo"), "control character U\\+0009"),
        (GOOD + GOOD_LINE.replace("alice", "a\u00a0lice"), "no valid key name"),
    ],
)
def test_malformed_notes_are_refused(message: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        n.parse(message)
    with pytest.raises(NoteError, match=reason):
        n.verify(message, [ALICE.verifier])


def test_a_note_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8 at byte 2"):
        n.parse(b"a \xff\n\n" + GOOD_LINE.encode())


def test_too_many_signatures_are_refused() -> None:
    signers = [
        n.Signer(f"witness{i}.example", bytes([i]) * 32) for i in range(n.MAX_SIGNATURES + 1)
    ]
    lines = "".join(s.sign(TEXT).line for s in signers)
    with pytest.raises(NoteError, match=f"has {n.MAX_SIGNATURES + 1} signatures, more than"):
        n.parse(TEXT + "\n" + lines)
    # The spec asks verifiers to take at least 16; this takes up to MAX_SIGNATURES.
    allowed = "".join(s.sign(TEXT).line for s in signers[: n.MAX_SIGNATURES])
    assert n.verify(TEXT + "\n" + allowed, signers[-2].verifier).text == TEXT


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [
        (lambda m: m.replace("two lines", "three lines"), SignatureError, "does not verify"),
        (lambda m: m.replace("/log", "/lag"), SignatureError, "signed by no known key"),
        (lambda m: m.replace("a note", "a note\n"), SignatureError, "does not verify"),
        # An extra blank line before the signatures is a blank line at the end of the text.
        (lambda m: m.replace("lines\n\n", "lines\n\n\n"), SignatureError, "does not verify"),
        (lambda m: m + "\n", NoteError, "no signature after its last blank line"),
        (lambda m: m[:-1], NoteError, "does not end in a newline"),
    ],
)
def test_mutated_notes_fail(
    mutate: Callable[[str], str], error: type[IntegrityError], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        n.verify(mutate(GOOD), [ALICE.verifier])


@given(st.integers(4, 4 + 64 - 1), st.integers(0, 7))
def test_any_bit_flipped_in_the_signature_fails(byte: int, bit: int) -> None:
    signature = ALICE.sign(TEXT)
    raw = bytearray(signature.key_id + signature.signature)
    raw[byte] ^= 1 << bit
    message = TEXT + "\n" + "\u2014 " + ALICE.name + " " + base64.b64encode(raw).decode() + "\n"
    with pytest.raises(SignatureError, match="does not verify"):
        n.verify(message, [ALICE.verifier])


@given(st.integers(0, 3), st.integers(0, 7))
def test_any_bit_flipped_in_the_key_id_makes_the_key_unknown(byte: int, bit: int) -> None:
    signature = ALICE.sign(TEXT)
    raw = bytearray(signature.key_id + signature.signature)
    raw[byte] ^= 1 << bit
    message = TEXT + "\n" + "\u2014 " + ALICE.name + " " + base64.b64encode(raw).decode() + "\n"
    with pytest.raises(SignatureError, match="signed by no known key"):
        n.verify(message, [ALICE.verifier])


note_texts = st.lists(
    st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=30),
    min_size=1,
    max_size=5,
).map(lambda lines: "".join(line + "\n" for line in lines))


@given(note_texts)
def test_any_text_signs_and_verifies(text: str) -> None:
    message = n.sign(text, ALICE, BOB)
    note = n.verify(message, [BOB.verifier])
    assert note.text == text
    assert n.parse(message.encode("utf-8")) == note
    assert note.message == message


@given(note_texts, st.data())
def test_any_character_changed_fails(text: str, data: st.DataObject) -> None:
    message = n.sign(text, ALICE)
    at = data.draw(st.integers(0, len(message) - 1))
    other = data.draw(
        st.characters(min_codepoint=0x0A, exclude_categories=["Cs"]).filter(
            lambda c: c != message[at]
        )
    )
    with pytest.raises(IntegrityError):
        n.verify(message[:at] + other + message[at + 1 :], [ALICE.verifier])


def test_verifier_key_round_trip() -> None:
    vkey = ALICE.verifier.vkey
    assert vkey.startswith("alice.example/log+" + ALICE.key_id.hex() + "+")
    assert n.Verifier.from_vkey(vkey) == ALICE.verifier
    assert n.Signer.from_skey(ALICE.skey()) == ALICE


def test_the_private_key_stays_out_of_repr() -> None:
    assert ALICE.seed.hex() not in repr(ALICE)
    assert repr(ALICE.seed) not in repr(ALICE)


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("alice.example/log", "is not <name>"),
        ("alice.example/log+00000000", "is not <name>"),
        (GO_VKEY.replace("c74f20a3", "c74f20a4"), "written with key ID 'c74f20a4'"),
        (GO_VKEY.replace("c74f20a3", "C74F20A3"), "written with key ID 'C74F20A3'"),
        (GO_VKEY.replace("+ARpc", "+AhpC"), "not base64 of 0x01"),  # another algorithm
        (GO_VKEY + "AA", "not base64 of 0x01"),
        (GO_VKEY[:-4], "not base64 of 0x01"),
        ("+c74f20a3+" + GO_VKEY.split("+")[2], "key name ''"),
        ("Peter Neumann+c74f20a3+" + GO_VKEY.split("+")[2], "key name 'Peter Neumann'"),
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str, reason: str) -> None:
    with pytest.raises(KeyFormatError, match=reason):
        n.Verifier.from_vkey(vkey)


@pytest.mark.parametrize(
    ("skey", "reason"),
    [
        (GO_SKEY.removeprefix("PRIVATE+KEY+"), "does not start with PRIVATE\\+KEY\\+"),
        (GO_VKEY, "does not start with PRIVATE\\+KEY\\+"),
        (GO_SKEY.replace("c74f20a3", "00000000"), "written with key ID '00000000'"),
        (GO_SKEY[:-4], "not base64 of 0x01"),
    ],
)
def test_malformed_signer_keys_are_refused(skey: str, reason: str) -> None:
    with pytest.raises(KeyFormatError, match=reason):
        n.Signer.from_skey(skey)


def test_a_signer_needs_a_32_byte_seed() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes, not 64"):
        n.Signer("x", bytes(64))


def test_valid_key_names() -> None:
    assert n.valid_key_name("example.com/log42")
    assert n.valid_key_name("zoë.example")
    for bad in ["", "a b", "a+b", "a\u2003b", "a\nb", "a\x00b"]:
        assert not n.valid_key_name(bad), bad
