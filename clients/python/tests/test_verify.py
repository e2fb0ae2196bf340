"""Receipts checked offline by the client's own code: the project's known answers (RFC 6962
test data of transparency-dev/merkle, the Go signed-note example, the service's signed
checkpoint of the RFC 6962 tree), real receipts of a running server, and tampered ones
refused."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
from auditlog_client import Client, Receipt, VerificationError, verify_checkpoint, verify_inclusion
from auditlog_client.merkle import leaf_hash, root_from_inclusion, root_of
from auditlog_client.note import VerifierKey, open_note

from .conftest import Live

# --- Known answers, as in the project's tests/integrity ----------------------------------------
# transparency-dev/merkle proof/verify_test.go: the RFC 6962 reference tree of 8 entries, the
# roots of its first 1..8 entries, and inclusion proofs (leaf indexes 0-based here).
ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]  # fmt: skip
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# tests/integrity/test_checkpoint.py: the RFC 6962 tree's 8-entry root as a checkpoint signed
# with the secret key of RFC 8032 §7.1 TEST 1, and its verifier key.
ORIGIN = "auditlog.example/acme"
SIGNED = (
    "auditlog.example/acme\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "— auditlog.example/acme knuShmMD3zezTdkYutpIbRTpRa/LXktAKBrvAS/xiFgVKqB3zsMfDIJvABo6GutlkYvqmI9Ql3TGM1mnzl7r7T6roA8=\n"
)
VKEY = "auditlog.example/acme+927b9286+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
# tests/integrity/test_note.py: golang.org/x/mod sumdb/note's example.
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
GO_ENOCH_LINE = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

LEAVES = [leaf_hash(e) for e in ENTRIES]


def test_known_roots() -> None:
    for size in range(1, 9):
        assert root_of(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    hashes = [bytes.fromhex(h) for h in path]
    assert root_from_inclusion(index, size, LEAVES[index], hashes) == ROOTS[size - 1]


def test_every_proof_of_small_trees_against_the_definition() -> None:
    def path(index: int, leaves: list[bytes]) -> list[bytes]:
        if len(leaves) == 1:
            return []
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        if index < k:
            return [*path(index, leaves[:k]), root_of(leaves[k:])]
        return [*path(index - k, leaves[k:]), root_of(leaves[:k])]

    leaves = [leaf_hash(bytes([i])) for i in range(40)]
    for size in range(1, 41):
        for index in range(size):
            proof = path(index, leaves[:size])
            assert root_from_inclusion(index, size, leaves[index], proof) == root_of(leaves[:size])


def test_the_go_note_example_verifies_cosigned_or_not() -> None:
    key = VerifierKey.parse(GO_VKEY)
    assert key.key_id.hex() == "c74f20a3"
    assert open_note(GO_NOTE, key) == GO_TEXT
    assert open_note(GO_NOTE + GO_ENOCH_LINE, key) == GO_TEXT
    with pytest.raises(VerificationError, match="not signed by"):
        open_note(GO_NOTE.replace("PeterNeumann", "Peter"), key)
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "Cryptography"), key)


def test_the_services_signed_checkpoint_known_answer() -> None:
    checkpoint = verify_checkpoint(SIGNED, VKEY)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (ORIGIN, 8, ROOTS[7])


def known_receipt(index: int = 5) -> dict[str, Any]:
    path = next(p for i, s, p in INCLUSION if (i, s) == (index, 8))
    return {
        "checkpoint": {"tree_size": 8, "note": SIGNED},
        "inclusion_proof": {
            "leaf_index": index,
            "tree_size": 8,
            "leaf_hash": base64.b64encode(LEAVES[index]).decode(),
            "hashes": [base64.b64encode(bytes.fromhex(h)).decode() for h in path],
        },
    }


def test_a_known_answer_receipt_verifies() -> None:
    assert verify_inclusion(ENTRIES[5], known_receipt(5), VKEY).size == 8
    assert verify_inclusion(ENTRIES[0], known_receipt(0), VKEY).root_hash == ROOTS[7]


def flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _hash0(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["hashes"][0] = flip(r["inclusion_proof"]["hashes"][0])


def _hash2(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["hashes"][2] = flip(r["inclusion_proof"]["hashes"][2])


def _dropped(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["hashes"].pop()


def _extra(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["hashes"].append(r["inclusion_proof"]["hashes"][0])


def _index(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["leaf_index"] = 4


def _size(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["tree_size"] = 7


def _leaf(r: dict[str, Any]) -> None:
    r["inclusion_proof"]["leaf_hash"] = flip(r["inclusion_proof"]["leaf_hash"])


def _root(r: dict[str, Any]) -> None:
    r["checkpoint"]["note"] = SIGNED.replace("XcnaeacG", "XcnaeacH")


def _note_size(r: dict[str, Any]) -> None:
    r["checkpoint"]["note"] = SIGNED.replace("\n8\n", "\n9\n")


def _signature(r: dict[str, Any]) -> None:
    r["checkpoint"]["note"] = SIGNED.replace("knuShmMD3zez", "knuShmMD3zey")


def _no_checkpoint(r: dict[str, Any]) -> None:
    r["checkpoint"] = None


@pytest.mark.parametrize(
    "tamper",
    [_hash0, _hash2, _dropped, _extra, _index, _size, _leaf, _root, _note_size, _signature,
     _no_checkpoint],
)  # fmt: skip
def test_a_tampered_receipt_is_refused(tamper: Callable[[dict[str, Any]], None]) -> None:
    receipt = known_receipt(5)
    tamper(receipt)
    with pytest.raises(VerificationError):
        verify_inclusion(ENTRIES[5], receipt, VKEY)


def test_another_event_or_another_key_is_refused() -> None:
    with pytest.raises(VerificationError):
        verify_inclusion(ENTRIES[4], known_receipt(5), VKEY)
    with pytest.raises(VerificationError, match="not signed by"):
        verify_inclusion(ENTRIES[5], known_receipt(5), GO_VKEY)
    other_origin = VKEY.replace("auditlog.example/acme", "auditlog.example/acmf")
    with pytest.raises(VerificationError):
        verify_inclusion(ENTRIES[5], known_receipt(5), other_origin)


# --- Real receipts -----------------------------------------------------------------------------


def test_receipts_of_a_running_server_verify(live: Live, token: str) -> None:
    with Client(live.url, token) as client:
        for i in range(5):
            client.log("filler", data={"i": i})
        assert client.flush(30)
        receipt = client.log_sync(
            "invoice.paid",
            actor={"id": "alice", "type": "user"},
            data={"amount": 99.5, "note": "café ✓", "nested": {"b": [1, 2.0, None], "a": True}},
            wait="checkpoint",
        )
        assert isinstance(receipt, Receipt)
        key = client.public_key()
        checkpoint = verify_inclusion(receipt.event, receipt, key["vkey"])
        assert checkpoint.size > receipt.event["seq"]
        # The event read back later, and the receipt kept as JSON, verify too.
        stored = client.get(receipt.event["id"])
        assert verify_inclusion(stored, receipt.as_dict(), key).origin == key["origin"]

        changed = copy.deepcopy(stored)
        changed["data"]["amount"] = 100
        with pytest.raises(VerificationError, match="not the leaf"):
            verify_inclusion(changed, receipt, key["vkey"])
        tampered = receipt.as_dict()
        tampered["inclusion_proof"] = dict(tampered["inclusion_proof"], leaf_hash=None)
        tampered["inclusion_proof"].pop("leaf_hash")
        tampered["inclusion_proof"]["hashes"] = [flip(h) for h in receipt.inclusion_proof["hashes"]]  # type: ignore[index]
        with pytest.raises(VerificationError, match="root"):
            verify_inclusion(stored, tampered, key["vkey"])
