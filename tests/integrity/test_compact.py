"""The compact range: its root is MTH of RFC 9162 for every size, and as it grows it reports
exactly the perfect subtrees, each once, with their hashes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity.compact import CompactRange, Node, fold, grown_position, perfect_subtrees
from auditlog.integrity.hasher import EMPTY_ROOT, leaf_hash, node_hash
from auditlog.integrity.proof import leaves_subtree_hash
from integrity import reference

# The RFC 6962 reference tree of transparency-dev/merkle proof/verify_test.go: its 8 entries
# (hex) and the roots of its first 1..8 entries.
RFC6962_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC6962_ROOTS = [
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

ENTRIES = reference.entries(300)
LEAVES = [leaf_hash(e) for e in ENTRIES]


def perfect_spans(size: int) -> set[tuple[int, int]]:
    """Every perfect subtree within [0, size), as (level, index)."""
    return {(level, index) for level in range(size.bit_length()) for index in range(size >> level)}


def test_empty_range() -> None:
    empty = CompactRange()
    assert empty.size == 0
    assert empty.hashes == ()
    assert empty.root == EMPTY_ROOT
    assert empty.subtrees() == ()


def test_known_roots_of_the_rfc6962_tree_leaf_by_leaf() -> None:
    cr = CompactRange()
    for entry, want in zip(RFC6962_ENTRIES, RFC6962_ROOTS, strict=True):
        cr, _ = cr.append(leaf_hash(entry))
        assert cr.root == want


def test_known_root_of_the_rfc6962_tree_at_once() -> None:
    cr, _ = CompactRange().extend(leaf_hash(e) for e in RFC6962_ENTRIES)
    assert cr.size == 8
    assert cr.hashes == (RFC6962_ROOTS[7],)
    assert cr.root == RFC6962_ROOTS[7]


@pytest.mark.parametrize("size", range(130))
def test_root_is_mth_for_every_size(size: int) -> None:
    cr, _ = CompactRange().extend(LEAVES[:size])
    assert cr.root == reference.mth(ENTRIES[:size])
    assert cr.size == size
    assert len(cr.hashes) == size.bit_count()


def test_append_reports_the_leaf_then_the_subtrees_it_completes_lowest_first() -> None:
    cr, _ = CompactRange().extend(LEAVES[:7])
    grown, nodes = cr.append(LEAVES[7])
    assert [(n.level, n.index) for n in nodes] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert nodes[-1].hash == grown.root == reference.mth(ENTRIES[:8])
    assert grown.hashes == (nodes[-1].hash,)


def test_append_to_an_even_size_completes_only_the_leaf() -> None:
    cr, _ = CompactRange().extend(LEAVES[:6])
    _, nodes = cr.append(LEAVES[6])
    assert nodes == (Node(0, 6, LEAVES[6]),)


@given(st.lists(st.integers(0, 40), max_size=8))
def test_growing_in_chunks_reports_every_perfect_subtree_exactly_once(chunks: list[int]) -> None:
    cr = CompactRange()
    reported: list[Node] = []
    for chunk in chunks:
        before = cr.size
        cr, nodes = cr.extend(LEAVES[before : before + chunk])
        # Exactly the subtrees that lie in the new size but not in the old one.
        assert {(n.level, n.index) for n in nodes} == perfect_spans(cr.size) - perfect_spans(before)
        assert cr.root == reference.mth(ENTRIES[: cr.size])
        reported.extend(nodes)
    spans = [(n.level, n.index) for n in reported]
    assert len(spans) == len(set(spans))
    assert set(spans) == perfect_spans(cr.size)
    for n in reported:
        assert n.hash == reference.mth(ENTRIES[n.start : n.end])


@given(st.integers(0, 200), st.integers(0, 60))
def test_extend_is_append_repeated(start: int, count: int) -> None:
    base, _ = CompactRange().extend(LEAVES[:start])
    at_once, nodes_at_once = base.extend(LEAVES[start : start + count])
    one_by_one, nodes_one_by_one = base, list[Node]()
    for h in LEAVES[start : start + count]:
        one_by_one, nodes = one_by_one.append(h)
        nodes_one_by_one.extend(nodes)
    assert at_once == one_by_one
    assert list(nodes_at_once) == nodes_one_by_one


@given(st.integers(0, 300))
def test_load_from_stored_subtrees_is_the_grown_range(size: int) -> None:
    grown, nodes = CompactRange().extend(LEAVES[:size])
    stored = {(n.start, n.end): n.hash for n in nodes}
    calls: list[tuple[int, int]] = []

    def subtree_hash(start: int, end: int) -> bytes:
        calls.append((start, end))
        return stored[(start, end)]

    loaded = CompactRange.load(size, subtree_hash)
    assert loaded == grown
    assert len(calls) == size.bit_count()
    assert loaded.subtrees() == tuple(
        n for n in nodes if (n.start, n.end) in set(perfect_subtrees(size))
    )


def test_subtrees_name_the_spans_of_the_size_bits() -> None:
    cr, _ = CompactRange().extend(LEAVES[:13])
    subtrees = cr.subtrees()
    assert [(n.level, n.index, n.start, n.end) for n in subtrees] == [
        (3, 0, 0, 8),
        (2, 2, 8, 12),
        (0, 12, 12, 13),
    ]
    assert [n.hash for n in subtrees] == list(cr.hashes)
    assert subtrees[1].hash == reference.mth(ENTRIES[8:12])


def test_perfect_subtrees_follow_the_binary_digits_of_the_size() -> None:
    assert perfect_subtrees(0) == []
    assert perfect_subtrees(1) == [(0, 1)]
    assert perfect_subtrees(8) == [(0, 8)]
    assert perfect_subtrees(13) == [(0, 8), (8, 12), (12, 13)]
    assert perfect_subtrees(2**64 - 1)[-1] == (2**64 - 2, 2**64 - 1)
    with pytest.raises(ValueError, match="negative"):
        perfect_subtrees(-1)


def test_fold_combines_from_the_right() -> None:
    a, b, c = LEAVES[:3]
    assert fold([]) == EMPTY_ROOT
    assert fold([a]) == a
    assert fold([a, b, c]) == node_hash(a, node_hash(b, c))


def test_node_span() -> None:
    node = Node(level=3, index=5, hash=LEAVES[0])
    assert (node.start, node.end) == (40, 48)


def test_a_range_holds_one_hash_per_one_bit_of_its_size() -> None:
    with pytest.raises(ValueError, match="size 5 holds 2 hashes, not 1"):
        CompactRange(5, (LEAVES[0],))
    with pytest.raises(ValueError, match="negative"):
        CompactRange(-1, ())


def test_a_range_holds_32_byte_hashes() -> None:
    with pytest.raises(ValueError, match="31 bytes"):
        CompactRange(1, (b"x" * 31,))
    with pytest.raises(ValueError, match="leaf hash 0 has 3 bytes"):
        CompactRange().append(b"abc")


def test_ranges_are_values() -> None:
    cr, _ = CompactRange().extend(LEAVES[:3])
    again, _ = CompactRange().extend(LEAVES[:3])
    assert cr == again
    assert hash(cr) == hash(again)
    grown, _ = cr.append(LEAVES[3])
    assert (cr.size, grown.size) == (3, 4)  # growing made a new range
    with pytest.raises(AttributeError):
        cr.size = 4  # type: ignore[misc]


def test_subtree_hash_of_leaves_agrees_with_reported_nodes() -> None:
    _, nodes = CompactRange().extend(LEAVES[:64])
    subtree_hash = leaves_subtree_hash(LEAVES[:64])
    for n in itertools.islice(nodes, 0, None, 7):
        assert subtree_hash(n.start, n.end) == n.hash


@given(st.integers(0, 150), st.integers(0, 150))
def test_grown_position_finds_every_subtree_grow_made(start: int, count: int) -> None:
    base, _ = CompactRange().extend(LEAVES[:start])
    grown, created = base.grow(LEAVES[start : start + count])
    for at, (level, index, _) in enumerate(created):
        assert grown_position(start, level, index) == at
    # Subtrees complete before the grow are not among its nodes.
    for n in base.subtrees():
        assert grown_position(start, n.level, n.index) is None
    assert grown.size == start + count
