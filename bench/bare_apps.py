"""Bare ASGI apps, run on uvicorn by the benchmarks (``harness.start_uvicorn``); no framework.

* ``ceiling``: the HTTP ceiling of measured-ceilings.md §A: read the whole body, parse it
  with orjson, answer ``201 {"id": <uuid4>, "status": "stored"}``. No storage.
* ``receiver``: a webhook receiver that verifies nothing and answers ``204`` as soon as the
  body is read; it counts requests, bytes and events (``"seq":`` in the body, once per
  stored event) and tells them at ``GET /stats`` as JSON.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

Scope = dict[str, Any]


async def _body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def ceiling(scope: Scope, receive: Any, send: Any) -> None:
    body = await _body(receive)
    if body:
        orjson.loads(body)
    answer = b'{"id":"%s","status":"stored"}' % str(uuid.uuid4()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


_counts = {"requests": 0, "bytes": 0, "events": 0}


async def receiver(scope: Scope, receive: Any, send: Any) -> None:
    body = await _body(receive)
    if scope["method"] == "GET" and scope["path"] == "/stats":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps(_counts)})
        return
    _counts["requests"] += 1
    _counts["bytes"] += len(body)
    _counts["events"] += body.count(b'"seq":')
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
