"""The webhook sink: a batch as one signed ``POST`` (API.md §11, Standard Webhooks).

The body is ``{"events":[e1,e2,...]}`` where each ``e`` is an event's stored JSON bytes,
joined as they are (never serialised again), with ``Content-Type: application/json``.
It is signed as the Standard Webhooks specification says:

* ``webhook-id``: ``msg_<stream id>_<first seq>_<last seq>``, the same for a batch and every
  retry of it, so that a receiver can recognise a repeat;
* ``webhook-timestamp``: Unix seconds of this attempt (receivers refuse old ones, so a
  retry is signed anew);
* ``webhook-signature``: ``v1,`` and the standard base64 of HMAC-SHA256 over
  ``"{id}.{timestamp}.{body}"``, keyed with the base64-decoded part of the secret after
  ``whsec_``.

Any 2xx answer means delivered; redirects are not followed (a 3xx is a failure whose
message says so). Connections are kept alive between batches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import httpx

from auditlog.service.delivery import httppost
from auditlog.service.delivery.destinations import webhook_key
from auditlog.service.delivery.sink import Batch


def encode(batch: Batch) -> bytes:
    """The request body: the stored events, as stored, in an ``events`` array."""
    return b'{"events":[' + b",".join(event for _, event in batch.events) + b"]}"


def message_id(batch: Batch) -> str:
    """The batch's ``webhook-id``: the same for the batch and every retry of it."""
    return f"msg_{batch.stream_id}_{batch.first_seq}_{batch.last_seq}"


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of id.timestamp.body."""
    signed = b"%s.%d.%s" % (msg_id.encode("ascii"), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookSink:
    """POSTs each batch to ``url``, signed with ``secret`` (``whsec_...``)."""

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._key = webhook_key(secret)
        self._timeout = timeout
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    async def send(self, batch: Batch) -> None:
        body = encode(batch)
        msg_id = message_id(batch)
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, msg_id, timestamp, body),
        }
        if self._client is None:
            self._client = httppost.new_client(self._timeout)
        await httppost.post(
            self._client, self._url, body, headers, self._timeout, clock=self._clock
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
