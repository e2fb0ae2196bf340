"""The id of a request: the client's ``X-Request-ID`` when it is sane, else a new one.

A proxy or a client that already tagged the request (``X-Request-ID``, as nginx's
``$request_id``, HAProxy's ``unique-id`` or an API gateway set it) keeps its id, so one id
follows the request through every log. An id is taken as sent when it is 1 to
``MAX_REQUEST_ID`` characters of visible ASCII (``!`` to ``~``): nothing that could split a
header or a log line, nothing unbounded. Anything else (absent, empty, too long, spaces,
control characters, non-ASCII, the header repeated) gets a new id: 32 lower-case hex digits of
128 random bits.
"""

from __future__ import annotations

import os
import re

HEADER = "x-request-id"
#: Longest id taken from a client, in characters.
MAX_REQUEST_ID = 128
_SANE = re.compile(rf"[!-~]{{1,{MAX_REQUEST_ID}}}", re.ASCII)


def new_request_id() -> str:
    """A new id: 128 random bits as 32 hex digits."""
    return os.urandom(16).hex()


def request_id(sent: str | None) -> str:
    """The id of a request whose ``X-Request-ID`` was ``sent`` (``None``: absent)."""
    if sent is not None and _SANE.fullmatch(sent):
        return sent
    return new_request_id()
