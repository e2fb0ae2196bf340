"""The oracle: RFC 9162 §2.1 written literally, over lists of entries, for the tests to check
``auditlog.integrity`` against.

Nothing here is clever or fast: each function is the recursive definition as the RFC states
it (MTH in §2.1.1, PATH in §2.1.3.1, PROOF and SUBPROOF in §2.1.4.1), with its own SHA-256
calls rather than the code under test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    """MTH(D_n): the Merkle Tree Hash of the list of entries ``d``."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(d[0:k]) + mth(d[k:n])).digest()


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D_n): the inclusion proof of entry m."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, d[0:k]), mth(d[k:n])]
    return [*path(m - k, d[k:n]), mth(d[0:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D_n, b)."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, d[0:k], b), mth(d[k:n])]
    return [*subproof(m - k, d[k:n], False), mth(d[0:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D_n): the consistency proof from the first m entries, 0 < m < n."""
    return subproof(m, d, True)


def entries(n: int) -> list[bytes]:
    """n distinct entries of different lengths."""
    return [b"entry %d" % i + b"." * (i % 5) for i in range(n)]
