"""Inclusion and consistency proofs, tested three ways: the RFC 6962 known answers of
transparency-dev/merkle, the literal RFC 9162 definitions (``reference``) as the oracle for
every size and index up to 70, and properties over larger trees; every tampered proof fails."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from auditlog.integrity import IntegrityError, ProofError
from auditlog.integrity import proof as p
from auditlog.integrity.compact import CompactRange, SubtreeHash
from auditlog.integrity.hasher import EMPTY_ROOT, leaf_hash
from integrity import reference

# --- Known answers ---------------------------------------------------------------------------
# From transparency-dev/merkle proof/verify_test.go: the RFC 6962 reference tree of 8 entries,
# the roots of its first 1..8 entries, and its inclusion and consistency proofs. The Go file
# numbers leaves from 1 (`{leaf: 1, size: 8}` is leaf index 0); they are 0-based here.
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
RFC6962_LEAVES = [leaf_hash(e) for e in RFC6962_ENTRIES]
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
# (leaf index, tree size, proof)
RFC6962_INCLUSION = [
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
# (first size, second size, proof)
RFC6962_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# From transparency-dev/merkle proof/verify_test.go: a hash that is no node of the tree.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

# From transparency-dev/merkle proof/proof_test.go (TestInclusion, TestConsistency): the nodes,
# as (level, index), that a proof reads when only perfect subtrees are stored. A hash along
# the tree's right edge that is not perfect is made of several ("rehash" there).
NODES_READ_BY_INCLUSION = [
    (1, 0, []),
    (2, 0, [(0, 1)]),
    (2, 1, [(0, 0)]),
    (3, 1, [(0, 0), (0, 2)]),
    (7, 0, [(0, 1), (1, 1), (0, 6), (1, 2)]),
    (7, 1, [(0, 0), (1, 1), (0, 6), (1, 2)]),
    (7, 2, [(0, 3), (1, 0), (0, 6), (1, 2)]),
    (7, 3, [(0, 2), (1, 0), (0, 6), (1, 2)]),
    (7, 4, [(0, 5), (0, 6), (2, 0)]),
    (7, 5, [(0, 4), (0, 6), (2, 0)]),
    (7, 6, [(1, 2), (2, 0)]),
    (4, 2, [(0, 3), (1, 0)]),
    (5, 3, [(0, 2), (1, 0), (0, 4)]),
    (6, 3, [(0, 2), (1, 0), (1, 2)]),
    (6, 4, [(0, 5), (2, 0)]),
    (15, 10, [(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)]),
    (31, 24, [(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)]),
    (95, 81, [(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)]),
]
NODES_READ_BY_CONSISTENCY = [
    (1, 2, [(0, 1)]),
    (1, 4, [(0, 1), (1, 1)]),
    (1, 6, [(0, 1), (1, 1), (1, 2)]),
    (2, 3, [(0, 2)]),
    (2, 8, [(1, 1), (2, 1)]),
    (3, 7, [(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)]),
    (4, 7, [(0, 6), (1, 2)]),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)]),
    (1, 1, []),
    (8, 8, []),
    (2, 4, [(1, 1)]),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)]),
    (4, 6, [(1, 2)]),
    (1, 7, [(0, 1), (1, 1), (0, 6), (1, 2)]),
    (10, 15, [(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)]),
    (24, 31, [(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)]),
    (81, 95, [(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)]),
]

# --- The trees the oracle and the properties run on ------------------------------------------

ORACLE_MAX = 70
ENTRIES = reference.entries(ORACLE_MAX)
LEAVES = [leaf_hash(e) for e in ENTRIES]

BIG = 2048
BIG_ENTRIES = reference.entries(BIG)
BIG_LEAVES = [leaf_hash(e) for e in BIG_ENTRIES]
_, _BIG_NODES = CompactRange().extend(BIG_LEAVES)
# Every perfect subtree of the big tree, as storage would keep them.
BIG_STORED = {(n.start, n.end): n.hash for n in _BIG_NODES}
BIG_ROOTS = [reference.mth(BIG_ENTRIES[:n]) if n <= 8 else b"" for n in range(BIG + 1)]


def big_root(size: int) -> bytes:
    """The root of the first ``size`` big entries, by the oracle (cached)."""
    if not BIG_ROOTS[size]:
        BIG_ROOTS[size] = reference.mth(BIG_ENTRIES[:size])
    return BIG_ROOTS[size]


def stored_subtree_hash(start: int, end: int) -> bytes:
    """What storage serves: only the perfect subtrees it holds (KeyError for anything else)."""
    return BIG_STORED[(start, end)]


def recording(subtree_hash: SubtreeHash, size: int) -> tuple[SubtreeHash, list[tuple[int, int]]]:
    """``subtree_hash`` that records each call, checking it asks for a perfect subtree."""
    calls: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        width = end - start
        assert width > 0, (start, end)
        assert width & (width - 1) == 0, (start, end)
        assert start % width == 0, (start, end)
        assert end <= size, (start, end, size)
        calls.append((start, end))
        return subtree_hash(start, end)

    return record, calls


def fake_subtree_hash(start: int, end: int) -> bytes:
    """A hash for any span, for trees too big to build: structure only, no real tree."""
    return hashlib.sha256(b"%d-%d" % (start, end)).digest()


def flip(proof: Sequence[bytes], i: int, bit: int) -> list[bytes]:
    """``proof`` with one bit of hash ``i`` flipped."""
    changed = list(proof)
    h = bytearray(changed[i])
    h[bit // 8] ^= 1 << (bit % 8)
    changed[i] = bytes(h)
    return changed


def rejects(check: Callable[[], object]) -> bool:
    try:
        check()
    except ProofError:
        return True
    return False


def inclusion_tamperings(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> list[tuple[str, Callable[[], object]]]:
    """transparency-dev's corruptInclusionProof, and one bit flipped in each hash."""
    proof = list(proof)
    cases: list[tuple[str, Callable[[], object]]] = []

    def case(desc: str, i: int, s: int, lf: bytes, pr: Sequence[bytes], rt: bytes) -> None:
        cases.append((desc, lambda: p.verify_inclusion(i, s, lf, pr, rt)))

    case("index - 1", index - 1, size, leaf, proof, root)
    case("index + 1", index + 1, size, leaf, proof, root)
    case("index ^ 2", index ^ 2, size, leaf, proof, root)
    case("size * 2", index, size * 2, leaf, proof, root)
    case("size // 2", index, size // 2, leaf, proof, root)
    case("wrong leaf", index, size, SOME_HASH, proof, root)
    case("empty root", index, size, leaf, proof, EMPTY_ROOT)
    case("some root", index, size, leaf, proof, SOME_HASH)
    case("trailing garbage", index, size, leaf, [*proof, SOME_HASH], root)
    case("trailing root", index, size, leaf, [*proof, root], root)
    case("preceding garbage", index, size, leaf, [SOME_HASH, *proof], root)
    case("preceding root", index, size, leaf, [root, *proof], root)
    for i in range(len(proof)):
        case(f"proof[{i}] bit 3 flipped", index, size, leaf, flip(proof, i, 3), root)
        case(f"proof[{i}] dropped", index, size, leaf, proof[:i] + proof[i + 1 :], root)
    if len(proof) > 1:
        inserted = [proof[0], SOME_HASH, *proof[1:]]
        case("inserted hash", index, size, leaf, inserted, root)
    return cases


def consistency_tamperings(
    first: int, second: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> list[tuple[str, Callable[[], object]]]:
    """transparency-dev's corruptConsistencyProof, and one bit flipped in each hash."""
    proof = list(proof)
    cases: list[tuple[str, Callable[[], object]]] = []

    def case(desc: str, m: int, n: int, pr: Sequence[bytes], r1: bytes, r2: bytes) -> None:
        cases.append((desc, lambda: p.verify_consistency(m, n, pr, r1, r2)))

    case("first - 1", first - 1, second, proof, root1, root2)
    case("first + 1", first + 1, second, proof, root1, root2)
    case("first ^ 2", first ^ 2, second, proof, root1, root2)
    case("second * 2", first, second * 2, proof, root1, root2)
    case("second // 2", first, second // 2, proof, root1, root2)
    case("wrong root1", first, second, proof, SOME_HASH, root2)
    case("wrong root2", first, second, proof, root1, SOME_HASH)
    case("swapped roots", first, second, proof, root2, root1)
    case("empty proof", first, second, [], root1, root2)
    case("trailing garbage", first, second, [*proof, SOME_HASH], root1, root2)
    case("trailing root1", first, second, [*proof, root1], root1, root2)
    case("trailing root2", first, second, [*proof, root2], root1, root2)
    case("preceding garbage", first, second, [SOME_HASH, *proof], root1, root2)
    case("preceding root1", first, second, [root1, *proof], root1, root2)
    case("preceding root2", first, second, [root2, *proof], root1, root2)
    case("preceding proof[0]", first, second, [proof[0], *proof], root1, root2)
    for i in range(len(proof)):
        case(f"proof[{i}] bit 4 flipped", first, second, flip(proof, i, 4), root1, root2)
        case(f"proof[{i}] dropped", first, second, proof[:i] + proof[i + 1 :], root1, root2)
    return cases


def accepted(cases: list[tuple[str, Callable[[], object]]]) -> list[str]:
    return [desc for desc, check in cases if not rejects(check)]


# --- Known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "want"), RFC6962_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, want: list[str]) -> None:
    leaves = RFC6962_LEAVES[:size]
    made = p.inclusion_of_leaves(index, leaves)
    assert [h.hex() for h in made] == want
    root = RFC6962_ROOTS[size - 1]
    assert p.root_from_inclusion(index, size, leaves[index], made) == root
    p.verify_inclusion(index, size, leaves[index], made, root)
    assert accepted(inclusion_tamperings(index, size, leaves[index], made, root)) == []


@pytest.mark.parametrize(("first", "second", "want"), RFC6962_CONSISTENCY)
def test_known_consistency_proofs(first: int, second: int, want: list[str]) -> None:
    made = p.consistency_of_leaves(first, RFC6962_LEAVES[:second])
    assert [h.hex() for h in made] == want
    root1, root2 = RFC6962_ROOTS[first - 1], RFC6962_ROOTS[second - 1]
    assert p.root_from_consistency(first, second, made, root1) == root2
    p.verify_consistency(first, second, made, root1, root2)
    if made:
        assert accepted(consistency_tamperings(first, second, made, root1, root2)) == []


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    assert p.root_of_leaves(RFC6962_LEAVES[:size]) == RFC6962_ROOTS[size - 1]


def test_root_of_no_leaves_is_the_empty_root() -> None:
    assert p.root_of_leaves([]) == EMPTY_ROOT
    assert p.root(0, fake_subtree_hash) == EMPTY_ROOT


@pytest.mark.parametrize(("size", "index", "nodes"), NODES_READ_BY_INCLUSION)
def test_inclusion_reads_the_nodes_transparency_dev_reads(
    size: int, index: int, nodes: list[tuple[int, int]]
) -> None:
    subtree_hash, calls = recording(stored_subtree_hash, size)
    p.inclusion(index, size, subtree_hash)
    read = [((end - start).bit_length() - 1, start // (end - start)) for start, end in calls]
    assert sorted(read) == sorted(nodes)


@pytest.mark.parametrize(("first", "second", "nodes"), NODES_READ_BY_CONSISTENCY)
def test_consistency_reads_the_nodes_transparency_dev_reads(
    first: int, second: int, nodes: list[tuple[int, int]]
) -> None:
    subtree_hash, calls = recording(stored_subtree_hash, second)
    p.consistency(first, second, subtree_hash)
    read = [((end - start).bit_length() - 1, start // (end - start)) for start, end in calls]
    assert sorted(read) == sorted(nodes)


# --- The oracle, for every size and index up to ORACLE_MAX ------------------------------------


@pytest.mark.parametrize("size", range(1, ORACLE_MAX + 1))
def test_inclusion_is_path_for_every_index(size: int) -> None:
    entries, leaves = ENTRIES[:size], LEAVES[:size]
    root = reference.mth(entries)
    assert p.root_of_leaves(leaves) == root
    for index in range(size):
        made = p.inclusion_of_leaves(index, leaves)
        assert list(made) == reference.path(index, entries), index
        assert p.root_from_inclusion(index, size, leaves[index], made) == root
        p.verify_inclusion(index, size, leaves[index], made, root)


@pytest.mark.parametrize("second", range(1, ORACLE_MAX + 1))
def test_consistency_is_proof_for_every_first_size(second: int) -> None:
    entries, leaves = ENTRIES[:second], LEAVES[:second]
    root2 = reference.mth(entries)
    for first in range(1, second):
        made = p.consistency_of_leaves(first, leaves)
        assert list(made) == reference.proof(first, entries), first
        root1 = reference.mth(entries[:first])
        assert p.root_from_consistency(first, second, made, root1) == root2
        p.verify_consistency(first, second, made, root1, root2)
    assert p.consistency_of_leaves(second, leaves) == ()
    assert p.consistency_of_leaves(0, leaves) == ()
    p.verify_consistency(second, second, [], root2, root2)
    p.verify_consistency(0, second, [], EMPTY_ROOT, root2)


@pytest.mark.parametrize("size", range(1, 41))
def test_every_tampered_inclusion_proof_fails(size: int) -> None:
    leaves = LEAVES[:size]
    root = p.root_of_leaves(leaves)
    for index in range(size):
        made = p.inclusion_of_leaves(index, leaves)
        assert accepted(inclusion_tamperings(index, size, leaves[index], made, root)) == []


@pytest.mark.parametrize("second", range(2, 41))
def test_every_tampered_consistency_proof_fails(second: int) -> None:
    leaves = LEAVES[:second]
    root2 = p.root_of_leaves(leaves)
    for first in range(1, second):
        made = p.consistency_of_leaves(first, leaves)
        root1 = p.root_of_leaves(leaves[:first])
        assert accepted(consistency_tamperings(first, second, made, root1, root2)) == []


# --- Properties over bigger trees -------------------------------------------------------------

sizes = st.integers(1, BIG)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(st.integers(2, BIG))
    return draw(st.integers(1, second - 1)), second


@given(leaf_in_tree())
def test_inclusion_from_stored_subtrees_verifies(case: tuple[int, int]) -> None:
    index, size = case
    subtree_hash, calls = recording(stored_subtree_hash, size)
    made = p.inclusion(index, size, subtree_hash)
    assert len(calls) <= 2 * size.bit_length()
    p.verify_inclusion(index, size, BIG_LEAVES[index], made, big_root(size))
    assert made == p.inclusion_of_leaves(index, BIG_LEAVES[:size])


@given(two_sizes())
def test_consistency_from_stored_subtrees_verifies(case: tuple[int, int]) -> None:
    first, second = case
    subtree_hash, calls = recording(stored_subtree_hash, second)
    made = p.consistency(first, second, subtree_hash)
    assert len(calls) <= 2 * second.bit_length()
    root1, root2 = big_root(first), big_root(second)
    assert p.root_from_consistency(first, second, made, root1) == root2
    p.verify_consistency(first, second, made, root1, root2)


@given(leaf_in_tree(), st.data())
def test_any_bit_flipped_in_an_inclusion_proof_fails(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    assume(size > 1)
    made = p.inclusion(index, size, stored_subtree_hash)
    i = data.draw(st.integers(0, len(made) - 1))
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(ProofError, match="leads to root"):
        p.verify_inclusion(index, size, BIG_LEAVES[index], flip(made, i, bit), big_root(size))


@given(leaf_in_tree(), st.integers(0, 255))
def test_any_bit_flipped_in_the_leaf_or_root_fails(case: tuple[int, int], bit: int) -> None:
    index, size = case
    made = p.inclusion(index, size, stored_subtree_hash)
    leaf, root = BIG_LEAVES[index], big_root(size)
    (bad_leaf,) = flip([leaf], 0, bit)
    (bad_root,) = flip([root], 0, bit)
    with pytest.raises(ProofError, match="leads to root"):
        p.verify_inclusion(index, size, bad_leaf, made, root)
    with pytest.raises(ProofError, match="leads to root"):
        p.verify_inclusion(index, size, leaf, made, bad_root)


@given(leaf_in_tree(), st.data())
def test_an_inclusion_proof_proves_no_other_leaf(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    assume(size > 1)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    made = p.inclusion(index, size, stored_subtree_hash)
    root = big_root(size)
    # Neither the same leaf at another index, nor the other leaf at this one.
    assert rejects(lambda: p.verify_inclusion(other, size, BIG_LEAVES[index], made, root))
    assert rejects(lambda: p.verify_inclusion(other, size, BIG_LEAVES[other], made, root))
    assert rejects(lambda: p.verify_inclusion(index, size, BIG_LEAVES[other], made, root))


@given(leaf_in_tree(), st.data())
def test_an_inclusion_proof_proves_nothing_about_another_tree(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    other = data.draw(st.integers(index + 1, BIG).filter(lambda s: s != size))
    made = p.inclusion(index, size, stored_subtree_hash)
    assert rejects(
        lambda: p.verify_inclusion(index, other, BIG_LEAVES[index], made, big_root(other))
    )


@given(leaf_in_tree(), st.data())
def test_a_dropped_or_extra_hash_fails_inclusion(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    made = list(p.inclusion(index, size, stored_subtree_hash))
    root = big_root(size)
    at = data.draw(st.integers(0, len(made)))
    extra = data.draw(st.sampled_from([SOME_HASH, root, BIG_LEAVES[index], *made]))
    longer = [*made[:at], extra, *made[at:]]
    with pytest.raises(ProofError, match=f"has {len(longer)} hashes, expected {len(made)}"):
        p.verify_inclusion(index, size, BIG_LEAVES[index], longer, root)
    if made:
        i = data.draw(st.integers(0, len(made) - 1))
        shorter = made[:i] + made[i + 1 :]
        with pytest.raises(ProofError, match=f"has {len(shorter)} hashes, expected {len(made)}"):
            p.verify_inclusion(index, size, BIG_LEAVES[index], shorter, root)


@given(two_sizes(), st.data())
def test_any_bit_flipped_in_a_consistency_proof_fails(
    case: tuple[int, int], data: st.DataObject
) -> None:
    first, second = case
    made = p.consistency(first, second, stored_subtree_hash)
    i = data.draw(st.integers(0, len(made) - 1))
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(ProofError, match=r"leads to (first|second) root"):
        p.verify_consistency(first, second, flip(made, i, bit), big_root(first), big_root(second))


@given(two_sizes(), st.integers(0, 255))
def test_any_bit_flipped_in_either_root_fails(case: tuple[int, int], bit: int) -> None:
    first, second = case
    made = p.consistency(first, second, stored_subtree_hash)
    root1, root2 = big_root(first), big_root(second)
    (bad1,) = flip([root1], 0, bit)
    (bad2,) = flip([root2], 0, bit)
    # A perfect first tree's root is where the proof starts, so it shows in the second root.
    with pytest.raises(ProofError, match=r"leads to (first|second) root"):
        p.verify_consistency(first, second, made, bad1, root2)
    with pytest.raises(ProofError, match="leads to second root"):
        p.verify_consistency(first, second, made, root1, bad2)


@given(two_sizes(), st.data())
def test_a_consistency_proof_proves_nothing_about_other_sizes(
    case: tuple[int, int], data: st.DataObject
) -> None:
    first, second = case
    made = p.consistency(first, second, stored_subtree_hash)
    m = data.draw(st.integers(1, BIG))
    n = data.draw(st.integers(m, BIG))
    assume((m, n) != (first, second))
    assert rejects(lambda: p.verify_consistency(m, n, made, big_root(m), big_root(n)))


@given(two_sizes(), st.data())
def test_a_dropped_or_extra_hash_fails_consistency(
    case: tuple[int, int], data: st.DataObject
) -> None:
    first, second = case
    made = list(p.consistency(first, second, stored_subtree_hash))
    root1, root2 = big_root(first), big_root(second)
    at = data.draw(st.integers(0, len(made)))
    extra = data.draw(st.sampled_from([SOME_HASH, root1, root2, *made]))
    longer = [*made[:at], extra, *made[at:]]
    with pytest.raises(ProofError, match=f"has {len(longer)} hashes, expected {len(made)}"):
        p.verify_consistency(first, second, longer, root1, root2)
    i = data.draw(st.integers(0, len(made) - 1))
    shorter = made[:i] + made[i + 1 :]
    with pytest.raises(ProofError, match=f"has {len(shorter)} hashes, expected {len(made)}"):
        p.verify_consistency(first, second, shorter, root1, root2)


@given(st.integers(1, 2**64 - 1), st.data())
def test_proofs_of_huge_trees_read_logarithmically_many_subtrees(
    size: int, data: st.DataObject
) -> None:
    # No real tree this big: the fake hashes check the shape of the work, not the hashes.
    index = data.draw(st.integers(0, size - 1))
    subtree_hash, calls = recording(fake_subtree_hash, size)
    made = p.inclusion(index, size, subtree_hash)
    assert len(made) <= size.bit_length()
    assert len(calls) <= 2 * size.bit_length()
    first = data.draw(st.integers(0, size))
    subtree_hash, calls = recording(fake_subtree_hash, size)
    made = p.consistency(first, size, subtree_hash)
    assert len(made) <= 2 * size.bit_length()
    assert len(calls) <= 2 * size.bit_length()
    subtree_hash, calls = recording(fake_subtree_hash, size)
    p.root(size, subtree_hash)
    assert len(calls) == size.bit_count()


# --- Edges and messages -----------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 3), (-1, 4)])
def test_no_inclusion_proof_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(ValueError, match=f"leaf index {index} is not in a tree of size {size}"):
        p.inclusion(index, size, stored_subtree_hash)
    with pytest.raises(ProofError, match=f"leaf index {index} is not in a tree of size {size}"):
        p.verify_inclusion(index, size, LEAVES[0], [], LEAVES[0])


@pytest.mark.parametrize(("first", "second"), [(2, 1), (-1, 3), (9, 8)])
def test_no_consistency_proof_backwards(first: int, second: int) -> None:
    with pytest.raises(ValueError, match=f"from tree size {first} to tree size {second}"):
        p.consistency(first, second, stored_subtree_hash)
    with pytest.raises(ProofError, match=f"from tree size {first} to tree size {second}"):
        p.verify_consistency(first, second, [SOME_HASH], SOME_HASH, SOME_HASH)


def test_root_of_a_negative_size() -> None:
    with pytest.raises(ValueError, match="negative"):
        p.root(-1, stored_subtree_hash)


def test_a_tree_of_one_leaf_has_the_leaf_as_root_and_an_empty_proof() -> None:
    assert p.inclusion(0, 1, stored_subtree_hash) == ()
    p.verify_inclusion(0, 1, BIG_LEAVES[0], [], BIG_LEAVES[0])
    with pytest.raises(ProofError, match="has 1 hashes, expected 0"):
        p.verify_inclusion(0, 1, BIG_LEAVES[0], [BIG_LEAVES[0]], BIG_LEAVES[0])


def test_hashes_must_be_32_bytes() -> None:
    made = p.inclusion_of_leaves(2, LEAVES[:5])
    root = p.root_of_leaves(LEAVES[:5])
    with pytest.raises(ProofError, match="leaf hash has 9 bytes, expected 32"):
        p.verify_inclusion(2, 5, b"WrongLeaf", made, root)
    with pytest.raises(ProofError, match="root hash has 0 bytes"):
        p.verify_inclusion(2, 5, LEAVES[2], made, b"")
    with pytest.raises(ProofError, match="inclusion proof hash 1 has 33 bytes"):
        p.verify_inclusion(2, 5, LEAVES[2], [made[0], made[1] + b"\0", made[2]], root)
    cons = p.consistency_of_leaves(3, LEAVES[:5])
    root3 = p.root_of_leaves(LEAVES[:3])
    with pytest.raises(ProofError, match="first root hash has 9 bytes"):
        p.verify_consistency(3, 5, cons, b"WrongRoot", root)
    with pytest.raises(ProofError, match="second root hash has 9 bytes"):
        p.verify_consistency(3, 5, cons, root3, b"WrongRoot")
    with pytest.raises(ProofError, match="consistency proof hash 0 has 0 bytes"):
        p.verify_consistency(3, 5, [b"", *cons[1:]], root3, root)


def test_a_subtree_hash_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"subtree_hash\(0, 1\) gave 3 bytes, not 32"):
        p.inclusion(1, 2, lambda start, end: b"abc")


def test_leaves_subtree_hash_serves_only_perfect_subtrees() -> None:
    subtree_hash = p.leaves_subtree_hash(LEAVES[:10])
    assert subtree_hash(8, 10) == reference.mth(ENTRIES[8:10])
    for start, end in [(0, 3), (1, 3), (8, 16), (4, 4), (3, 2)]:
        with pytest.raises(ValueError, match="is not a perfect subtree of 10"):
            subtree_hash(start, end)


def test_consistency_with_the_empty_tree() -> None:
    root = p.root_of_leaves(LEAVES[:5])
    p.verify_consistency(0, 5, [], EMPTY_ROOT, root)
    p.verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    assert p.root_from_consistency(0, 0, [], EMPTY_ROOT) == EMPTY_ROOT
    with pytest.raises(ProofError, match="is not the empty tree's root"):
        p.verify_consistency(0, 5, [], root, root)
    with pytest.raises(ProofError, match="has 1 hashes, expected none"):
        p.verify_consistency(0, 5, [root], EMPTY_ROOT, root)
    with pytest.raises(ProofError, match="gives no root of a tree of size 5"):
        p.root_from_consistency(0, 5, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="leads to second root"):
        p.verify_consistency(0, 0, [], EMPTY_ROOT, root)


def test_consistency_of_a_tree_with_itself() -> None:
    root = p.root_of_leaves(LEAVES[:5])
    assert p.root_from_consistency(5, 5, [], root) == root
    p.verify_consistency(5, 5, [], root, root)
    with pytest.raises(ProofError, match="has 1 hashes, expected none"):
        p.verify_consistency(5, 5, [root], root, root)
    with pytest.raises(ProofError, match="leads to second root"):
        p.verify_consistency(5, 5, [], root, SOME_HASH)


def test_an_empty_proof_between_different_sizes_fails() -> None:
    root1, root2 = p.root_of_leaves(LEAVES[:4]), p.root_of_leaves(LEAVES[:8])
    with pytest.raises(ProofError, match="has 0 hashes, expected 1"):
        p.verify_consistency(4, 8, [], root1, root2)


def test_proof_errors_are_integrity_errors() -> None:
    assert issubclass(ProofError, IntegrityError)
