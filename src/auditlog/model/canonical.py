"""THE bytes of a stored event: what is hashed into the Merkle tree and what the API returns.

Canonical bytes are defined as::

    json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

``canonical_bytes`` is the only producer of these bytes in auditlog. It takes a fast path through
orjson, whose output is identical for every value without floats (a property test holds it to
that), and the definition itself when a float is present, since the two libraries write some
floats differently (``1e-05`` against ``0.00001``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS


def has_float(value: Any) -> bool:
    """Whether a JSON value contains a float anywhere."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False


def canonical_bytes(value: Any, *, floats: bool | None = None) -> bytes:
    """The canonical JSON bytes of ``value``.

    ``floats`` may be passed when the caller already knows whether ``value`` holds a float
    (validation walks the value anyway); ``None`` means look.
    """
    if floats is None:
        floats = has_float(value)
    if not floats:
        return orjson.dumps(value, option=_SORTED)
    return reference_canonical_bytes(value)


def reference_canonical_bytes(value: Any) -> bytes:
    """The definition, written out; the oracle for ``canonical_bytes``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
