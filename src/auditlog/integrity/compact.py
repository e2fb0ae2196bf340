"""The compact range of a log: the roots of the perfect subtrees that cover leaves [0, n).

RFC 9162 §2.1.1 splits a tree of n > 1 leaves at k, the largest power of two smaller than n,
and hashes ``MTH(D[0:k])`` with ``MTH(D[k:n])``. Unfolding that split, the tree over [0, n)
is made of one perfect subtree for each one bit of n, largest and leftmost first: n = 13
(0b1101) is covered by [0, 8), [8, 12), [12, 13). Those hashes are all it takes to compute
the root of [0, n) and to keep growing the tree, which is what an integrator keeps between
batches. A perfect subtree is named by its ``level`` (it has 2^level leaves) and its ``index``
among the subtrees of that level, so it covers [index * 2^level, (index + 1) * 2^level).

As the range grows it reports every perfect subtree it completes, leaves included, exactly
once; storing them lets proofs be made with O(log n) reads (see ``proof``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from auditlog.integrity.hasher import EMPTY_ROOT, HASH_SIZE, node_hash

#: The hash of the perfect subtree over leaves [start, end): called only with
#: ``end - start == 2**k`` and ``start`` a multiple of ``2**k``. ``(i, i + 1)`` is leaf i's hash.
SubtreeHash = Callable[[int, int], bytes]


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree of the log: 2^``level`` leaves from ``index`` * 2^``level`` on."""

    level: int
    index: int
    hash: bytes

    @property
    def start(self) -> int:
        """The first leaf the subtree covers."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf the subtree covers."""
        return (self.index + 1) << self.level


def perfect_subtrees(size: int) -> list[tuple[int, int]]:
    """The (start, end) of the perfect subtrees covering [0, ``size``), left to right.

    They are the subtrees RFC 9162 §2.1.1 splits a tree of ``size`` leaves into, one for each
    one bit of ``size``, largest first.
    """
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    spans: list[tuple[int, int]] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            spans.append((start, start + (1 << level)))
            start += 1 << level
    return spans


def fold(hashes: Iterable[bytes]) -> bytes:
    """The root over consecutive perfect subtrees listed largest first, as RFC 9162 §2.1.1.

    The split at the largest power of two puts every smaller subtree to the right, so the
    hashes combine from the right: ``[a, b, c]`` gives ``node(a, node(b, c))``. No hashes
    give ``EMPTY_ROOT``.
    """
    result: bytes | None = None
    for h in reversed(list(hashes)):
        result = h if result is None else node_hash(h, result)
    return EMPTY_ROOT if result is None else result


@dataclass(frozen=True, slots=True)
class CompactRange:
    """The hashes of the perfect subtrees covering leaves [0, ``size``), left to right.

    A value: growing it gives a new range, and the perfect subtrees that appeared on the way.
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"compact range size {self.size} is negative")
        want = self.size.bit_count()
        if len(self.hashes) != want:
            raise ValueError(
                f"a compact range of size {self.size} holds {want} hashes, not {len(self.hashes)}"
            )
        for h in self.hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"a compact range hash has {len(h)} bytes, not {HASH_SIZE}")

    @classmethod
    def load(cls, size: int, subtree_hash: SubtreeHash) -> CompactRange:
        """The compact range of [0, ``size``) read through ``subtree_hash``: popcount(size) calls."""
        return cls(size, tuple(subtree_hash(start, end) for start, end in perfect_subtrees(size)))

    @property
    def root(self) -> bytes:
        """The root hash of the tree over [0, ``size``), ``MTH(D[0:size])`` of RFC 9162 §2.1.1."""
        return fold(self.hashes)

    def subtrees(self) -> tuple[Node, ...]:
        """The perfect subtrees the range holds, left to right, as ``Node`` values."""
        return tuple(
            Node((end - start).bit_length() - 1, start // (end - start), h)
            for (start, end), h in zip(perfect_subtrees(self.size), self.hashes, strict=True)
        )

    def append(self, leaf_hash: bytes) -> tuple[CompactRange, tuple[Node, ...]]:
        """The range grown by one leaf, and the perfect subtrees completed (the leaf first)."""
        return self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> tuple[CompactRange, tuple[Node, ...]]:
        """The range grown by ``leaf_hashes`` in order, and the perfect subtrees completed.

        Each leaf is reported as the level-0 subtree, followed by the subtrees it completes,
        lowest first; a subtree is reported once, when its last leaf arrives. Growing from
        size 0 to n reports exactly the perfect subtrees within [0, n).
        """
        grown, created = self.grow(leaf_hashes)
        return grown, tuple(Node(level, index, h) for level, index, h in created)

    def grow(
        self, leaf_hashes: Iterable[bytes]
    ) -> tuple[CompactRange, list[tuple[int, int, bytes]]]:
        """``extend``, with each completed subtree as a plain (level, index, hash) tuple.

        The same subtrees in the same order; tuples cost less than ``Node`` values to make,
        which matters to an integrator growing the tree by tens of thousands of leaves a second.
        """
        stack = list(self.hashes)
        size = self.size
        created: list[tuple[int, int, bytes]] = []
        append = created.append
        for h in leaf_hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {size} has {len(h)} bytes, not {HASH_SIZE}")
            append((0, size, h))
            stack.append(h)
            # Leaf `size` completes one subtree for each trailing one bit of `size`: the
            # subtree it closes at each level merges with its left sibling already held.
            level = 0
            while size >> level & 1:
                right = stack.pop()
                h = node_hash(stack.pop(), right)
                level += 1
                stack.append(h)
                append((level, size >> level, h))
            size += 1
        return CompactRange(size, tuple(stack)), created


def grown_position(start: int, level: int, index: int) -> int | None:
    """Where ``CompactRange.grow`` from size ``start`` put the subtree (``level``, ``index``)
    in its list, if it made it (it made it when the subtree ends at leaf ``start`` or later
    and the range grew that far): found in O(log n), with no map of the whole list.

    Leaf ``j`` adds its own entry, then one for each subtree it completes, level by level;
    leaves ``start``..``k - 1`` complete ``(k >> l) - (start >> l)`` subtrees at level ``l``. So
    the subtree completed by its last leaf ``k`` comes after those, then after ``level``
    entries of leaf ``k``."""
    last = ((index + 1) << level) - 1
    if last < start:
        return None
    return (
        last
        - start
        + sum((last >> b) - (start >> b) for b in range(1, last.bit_length() + 1))
        + level
    )
