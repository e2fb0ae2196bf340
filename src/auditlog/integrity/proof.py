"""Inclusion and consistency proofs of the log's Merkle tree, RFC 9162 §2.1.3 and §2.1.4.

Proofs are made from a ``SubtreeHash``: a function that returns the hash of any perfect
subtree [start, start + 2^k) with start a multiple of 2^k. Storage serves it from the subtree
hashes a ``CompactRange`` reported as the tree grew, so a proof costs O(log n) reads: every
hash in a proof is a perfect subtree, but one (the subtree along the right edge of the tree,
which is itself made of at most log n perfect subtrees). The ``*_of_leaves`` functions make
the same proofs from a list of leaf hashes.

A proof lists hashes from the leaves up, as RFC 9162 defines ``PATH`` and ``PROOF``.
Verification follows the steps of RFC 9162 §2.1.3.2 and §2.1.4.2; it raises ``ProofError``
with the reason when a proof does not verify, and the ``root_from_*`` functions return the
root hash a proof leads to, for the caller to compare with a signed checkpoint.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from auditlog.integrity import ProofError
from auditlog.integrity.compact import SubtreeHash, fold, perfect_subtrees
from auditlog.integrity.hasher import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "SubtreeHash",
    "consistency",
    "consistency_of_leaves",
    "inclusion",
    "inclusion_of_leaves",
    "leaves_subtree_hash",
    "root",
    "root_from_consistency",
    "root_from_inclusion",
    "root_of_leaves",
    "verify_consistency",
    "verify_inclusion",
]


def _split(n: int) -> int:
    """k of RFC 9162 §2.1.1: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fetch(subtree_hash: SubtreeHash, start: int, end: int) -> bytes:
    h = subtree_hash(start, end)
    if len(h) != HASH_SIZE:
        raise ValueError(f"subtree_hash({start}, {end}) gave {len(h)} bytes, not {HASH_SIZE}")
    return h


def _range_hash(start: int, end: int, subtree_hash: SubtreeHash) -> bytes:
    """``MTH(D[start:end])`` for a subtree of RFC 9162's tree shape.

    Every such subtree starts at a multiple of a power of two at least ``end - start``, so it
    is made of the perfect subtrees of its size's one bits, each aligned to its own size.
    """
    return fold(
        _fetch(subtree_hash, start + s, start + e) for s, e in perfect_subtrees(end - start)
    )


def root(size: int, subtree_hash: SubtreeHash) -> bytes:
    """The root hash of the tree of ``size`` leaves, ``MTH(D[0:size])`` (RFC 9162 §2.1.1).

    Reads popcount(``size``) perfect subtrees; the empty tree's root is ``EMPTY_ROOT``.
    """
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return _range_hash(0, size, subtree_hash)


def inclusion(index: int, size: int, subtree_hash: SubtreeHash) -> tuple[bytes, ...]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1).

    ``PATH(index, D[0:size])``: the sibling of each node on the way from the leaf to the root,
    lowest first. Raises ``ValueError`` unless 0 <= index < size.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    siblings: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append(_range_hash(lo + k, hi, subtree_hash))
            hi = lo + k
        else:
            siblings.append(_range_hash(lo, lo + k, subtree_hash))
            lo += k
    return tuple(reversed(siblings))


def consistency(first: int, second: int, subtree_hash: SubtreeHash) -> tuple[bytes, ...]:
    """The consistency proof from the tree of ``first`` leaves to that of ``second`` leaves.

    ``PROOF(first, D[0:second])`` of RFC 9162 §2.1.4.1 for 0 < first < second; empty when
    ``first`` is 0 or equals ``second``, which need no proof. Raises ``ValueError`` unless
    0 <= first <= second.
    """
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from tree size {first} to tree size {second}")
    if first in (0, second):
        return ()
    hashes: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], b), unrolled: `first` stays an absolute leaf position, and
    # `whole` is b, true while [lo, hi) is still a left part of the first tree's root.
    lo, hi, whole = 0, second, True
    while hi != first:
        k = _split(hi - lo)
        if first <= lo + k:
            hashes.append(_range_hash(lo + k, hi, subtree_hash))
            hi = lo + k
        else:
            hashes.append(_range_hash(lo, lo + k, subtree_hash))
            lo += k
            whole = False
    if not whole:
        hashes.append(_range_hash(lo, hi, subtree_hash))
    return tuple(reversed(hashes))


def leaves_subtree_hash(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    """A ``SubtreeHash`` computed from the leaf hashes: O(2^k) hashing for a subtree of 2^k."""

    def subtree_hash(start: int, end: int) -> bytes:
        width = end - start
        if width <= 0 or width & (width - 1) or start % width or end > len(leaf_hashes):
            raise ValueError(f"[{start}, {end}) is not a perfect subtree of {len(leaf_hashes)}")
        level = list(leaf_hashes[start:end])
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]

    return subtree_hash


def root_of_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root hash of the tree over ``leaf_hashes`` (RFC 9162 §2.1.1)."""
    return root(len(leaf_hashes), leaves_subtree_hash(leaf_hashes))


def inclusion_of_leaves(index: int, leaf_hashes: Sequence[bytes]) -> tuple[bytes, ...]:
    """``inclusion`` of leaf ``index`` in the tree over ``leaf_hashes``."""
    return inclusion(index, len(leaf_hashes), leaves_subtree_hash(leaf_hashes))


def consistency_of_leaves(first: int, leaf_hashes: Sequence[bytes]) -> tuple[bytes, ...]:
    """``consistency`` from the first ``first`` leaves to the tree over all ``leaf_hashes``."""
    return consistency(first, len(leaf_hashes), leaves_subtree_hash(leaf_hashes))


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} hash {i} has {len(h)} bytes, expected {HASH_SIZE}")


def _check_hash(what: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} has {len(h)} bytes, expected {HASH_SIZE}")


def _inclusion_length(index: int, size: int) -> int:
    # Below the level where the paths to `index` and to the last leaf part, every level
    # has a sibling; above it, only the levels where the path turns right do.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(first: int, second: int) -> int:
    # The inclusion path of leaf first - 1 in the second tree, less the levels inside the
    # first tree's rightmost perfect subtree, plus that subtree unless it is the whole tree.
    shift = (first & -first).bit_length() - 1
    inner = ((first - 1) ^ (second - 1)).bit_length()
    border = ((first - 1) >> inner).bit_count()
    return inner - shift + border + (0 if first == 1 << shift else 1)


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root hash that an inclusion proof of leaf ``index`` in a tree of ``size`` leads to.

    The steps of RFC 9162 §2.1.3.2 up to the final comparison, which is the caller's (see
    ``verify_inclusion``). Raises ``ProofError`` when the leaf is not in a tree of that size,
    a hash is not 32 bytes, or the proof has not the number of hashes such a proof has.
    """
    _check_hash("leaf hash", leaf_hash)
    _check_hashes("inclusion proof", proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise _inclusion_length_error(index, size, proof)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _inclusion_length_error(index, size, proof)
    return r


def _inclusion_length_error(index: int, size: int, proof: Sequence[bytes]) -> ProofError:
    return ProofError(
        f"inclusion proof of leaf {index} in a tree of size {size} has {len(proof)} hashes, "
        f"expected {_inclusion_length(index, size)}"
    )


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check that ``proof`` shows leaf ``index`` with ``leaf_hash`` in the tree ``root_hash``.

    RFC 9162 §2.1.3.2, for a tree of ``size`` leaves. Raises ``ProofError`` saying why not.
    """
    _check_hash("root hash", root_hash)
    computed = root_from_inclusion(index, size, leaf_hash, proof)
    if computed != root_hash:
        raise ProofError(
            f"inclusion proof of leaf {index} in a tree of size {size} leads to root "
            f"{_b64(computed)}, expected {_b64(root_hash)}"
        )


def _check_trivial(first: int, second: int, proof: Sequence[bytes], first_root: bytes) -> None:
    """The proof from the empty tree, or from a tree to itself: empty, from the right root."""
    if proof:
        raise ProofError(
            f"consistency proof from tree size {first} to {second} has {len(proof)} hashes, "
            "expected none"
        )
    if first == 0 and first_root != EMPTY_ROOT:
        raise ProofError(
            f"first root {_b64(first_root)} is not the empty tree's root {_b64(EMPTY_ROOT)}"
        )


def root_from_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes
) -> bytes:
    """The root hash of the second tree that a consistency proof from ``first_root`` leads to.

    The steps of RFC 9162 §2.1.4.2 for 0 < first < second: the proof must lead back to
    ``first_root`` (else ``ProofError``), and the second root it leads to is returned for the
    caller to compare (see ``verify_consistency``). When ``first == second`` the proof must be
    empty and the root is ``first_root``. The empty tree is consistent with every tree, but
    has no proof that gives a second root: ``first == 0 < second`` raises ``ProofError``.
    """
    _check_hash("first root hash", first_root)
    _check_hashes("consistency proof", proof)
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from tree size {first} to tree size {second}")
    if first in (0, second):
        _check_trivial(first, second, proof, first_root)
        if first < second:
            raise ProofError(f"the empty tree's root gives no root of a tree of size {second}")
        return first_root
    wrong_length = ProofError(
        f"consistency proof from tree size {first} to {second} has {len(proof)} hashes, "
        f"expected {_consistency_length(first, second)}"
    )
    if not proof:
        raise wrong_length
    path = list(proof)
    # When the first tree is perfect, its root is the first hash on the path; the proof
    # leaves it out, since the verifier has it.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise wrong_length
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise wrong_length
    if fr != first_root:
        raise ProofError(
            f"consistency proof from tree size {first} to {second} leads to first root "
            f"{_b64(fr)}, expected {_b64(first_root)}"
        )
    return sr


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Check that the tree ``second_root`` of ``second`` leaves extends ``first_root``.

    RFC 9162 §2.1.4.2: the first ``first`` leaves of the second tree are the first tree.
    Every tree extends the empty one (``first == 0``, empty proof, ``first_root`` the empty
    root), and a tree extends itself (``first == second``, empty proof, equal roots). Raises
    ``ProofError`` saying why not.
    """
    _check_hash("second root hash", second_root)
    if first == 0 < second:
        _check_hash("first root hash", first_root)
        _check_hashes("consistency proof", proof)
        _check_trivial(first, second, proof, first_root)
        return
    computed = root_from_consistency(first, second, proof, first_root)
    if computed != second_root:
        raise ProofError(
            f"consistency proof from tree size {first} to {second} leads to second root "
            f"{_b64(computed)}, expected {_b64(second_root)}"
        )
