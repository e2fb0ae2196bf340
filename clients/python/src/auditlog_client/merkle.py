"""RFC 9162 §2.1 Merkle tree hashing and inclusion proof verification, SHA-256.

The leaf of an event is its canonical bytes (API.md §5): the stored event as JSON with keys
sorted at every level, no insignificant whitespace, UTF-8, non-ASCII unescaped. Written here
from the definitions, not taken from the service, so a receipt is checked by code the
service's operator does not control.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from auditlog_client.errors import VerificationError

HASH_SIZE = 32


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes of a stored event that its leaf hashes (API.md §5)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that the audit ``path`` of leaf ``index`` in a tree of ``size`` leaves leads
    to (RFC 9162 §2.1.3.2). Raises ``VerificationError`` for a path that cannot be one."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in path):
        raise VerificationError(f"a hash of the proof is not {HASH_SIZE} bytes long")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise VerificationError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the inclusion proof is shorter than the tree is deep")
    return r


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over ``leaves`` (leaf hashes), by the definition (RFC 9162
    §2.1.1); for tests and small trees."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))
