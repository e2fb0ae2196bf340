"""Leaf and node hashes of the log's Merkle tree, RFC 9162 §2.1.1 with SHA-256.

The two prefixes separate the domains of leaves and interior nodes, so that no leaf can be
passed off as a node (a second preimage of an interior hash) nor a node as a leaf.

A leaf is a stored event exactly as the API returns it: its canonical bytes (API.md §5),
produced by ``auditlog.model.canonical.canonical_bytes``, the only producer of those bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from auditlog.model.canonical import canonical_bytes

#: Bytes in every hash of the tree: SHA-256.
HASH_SIZE = 32
#: Prefix of a leaf's hash input, RFC 9162 §2.1.1: ``MTH({d(0)}) = SHA-256(0x00 || d(0))``.
LEAF_PREFIX = b"\x00"
#: Prefix of an interior node's hash input: ``SHA-256(0x01 || left || right)``.
NODE_PREFIX = b"\x01"
#: The hash of the empty tree, RFC 9162 §2.1.1: ``MTH({}) = SHA-256()``.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: ``SHA-256(0x00 || data)`` (RFC 9162 §2.1.1)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1).

    Any lengths are hashed as given; proof verification checks that hashes it is handed
    are ``HASH_SIZE`` bytes long before it hashes them.
    """
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def event_leaf_hash(event: dict[str, Any]) -> bytes:
    """The leaf hash of a stored event: ``leaf_hash`` of its canonical bytes (API.md §5).

    ``event`` is the stored event as the API returns it, ``tenant``, ``seq`` and
    ``received_at`` included.
    """
    return leaf_hash(canonical_bytes(event))
