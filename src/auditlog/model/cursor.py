"""Cursors: where the next page of a query starts, bound to that query.

A cursor carries the last ``seq`` the previous page returned and the fingerprint of the query
that produced it. Pages are ordered by ``seq``, which is fixed at commit and gap-free, so
continuing after it neither skips nor repeats an event while new events arrive: in ``desc``
order newer events get larger seqs and stay out of later pages; in ``asc`` order they join the
end. A cursor used with another query is refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

import orjson

from auditlog.errors import BadRequest
from auditlog.model.query import Query

_VERSION = 1


def encode(query: Query, last_seq: int) -> str:
    """The cursor of the page after the one that ended at ``last_seq``."""
    raw = orjson.dumps([_VERSION, last_seq, query.fingerprint()])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def apply(query: Query, cursor: str) -> Query:
    """``query`` continued from ``cursor``; ``BadRequest`` naming 'cursor' when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, seq, fingerprint = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("parameter 'cursor': not a cursor this service issued") from None
    if (
        version != _VERSION
        or type(seq) is not int
        or not 0 <= seq < 2**63  # a seq is a signed 64-bit integer in every backend
        or not isinstance(fingerprint, str)
    ):
        raise BadRequest("parameter 'cursor': not a cursor this service issued")
    if fingerprint != query.fingerprint():
        raise BadRequest("parameter 'cursor': belongs to a different query")
    return dataclasses.replace(query, after_seq=seq)
