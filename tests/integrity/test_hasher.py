"""Leaf and node hashes: RFC 6962 known answers, the definition, and domain separation."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity.hasher import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    event_leaf_hash,
    leaf_hash,
    node_hash,
)

# Known answers from transparency-dev/merkle rfc6962/rfc6962_test.go (TestRFC6962Hasher),
# each also derivable with `echo -n <hex> | xxd -r -p | sha256sum`.
EMPTY_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_LEAF_HEX = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
LEAF_L123456_HEX = "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
NODE_N123_N456_HEX = "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_prefixes_are_those_of_rfc_9162() -> None:
    assert LEAF_PREFIX == b"\x00"
    assert NODE_PREFIX == b"\x01"
    assert HASH_SIZE == 32


def test_empty_root_is_the_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == EMPTY_HEX


def test_empty_leaf_is_not_the_empty_root() -> None:
    assert leaf_hash(b"").hex() == EMPTY_LEAF_HEX
    assert leaf_hash(b"") != EMPTY_ROOT


def test_leaf_known_answer() -> None:
    assert leaf_hash(b"L123456").hex() == LEAF_L123456_HEX


def test_node_known_answer() -> None:
    assert node_hash(b"N123", b"N456").hex() == NODE_N123_N456_HEX


@given(st.binary(max_size=200))
def test_leaf_hash_is_the_definition(data: bytes) -> None:
    assert leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_node_hash_is_the_definition(left: bytes, right: bytes) -> None:
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_domains_are_separated(left: bytes, right: bytes) -> None:
    # A node cannot pass for the leaf of its children's concatenation, nor a leaf for a node.
    assert node_hash(left, right) != leaf_hash(left + right)
    assert leaf_hash(b"\x01" + left + right) != node_hash(left, right)


def test_children_order_matters() -> None:
    a, b = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert a != b
    assert node_hash(a, b) != node_hash(b, a)


EVENT: dict[str, Any] = {
    "type": "invoice.billed",
    "id": "01J0000000000000000000000",
    "time": "2026-11-27T02:27:53.123456Z",
    "actor": {"id": "zoë", "type": "user"},
    "source": "billing",
    "data": {"amount": 120, "lines": [{"z": 1, "a": "é"}], "note": None},
    "tenant": "acme",
    "seq": 41,
    "received_at": "2026-11-27T02:27:53.223456Z",
}


def test_event_leaf_is_the_api_definition_of_canonical_bytes() -> None:
    # API.md §5, spelled out here independently of auditlog.model.canonical.
    canonical = json.dumps(EVENT, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(b"\x00" + canonical.encode("utf-8")).digest()
    assert event_leaf_hash(EVENT) == expected


def test_event_leaf_depends_on_every_field() -> None:
    base = event_leaf_hash(EVENT)
    for key in EVENT:
        changed = {k: v for k, v in EVENT.items() if k != key}
        assert event_leaf_hash(changed) != base, key


@pytest.mark.parametrize("key_order", [list(EVENT), sorted(EVENT), list(reversed(EVENT))])
def test_event_leaf_ignores_key_order(key_order: list[str]) -> None:
    assert event_leaf_hash({k: EVENT[k] for k in key_order}) == event_leaf_hash(EVENT)
