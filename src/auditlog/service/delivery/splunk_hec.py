"""The Splunk HTTP Event Collector sink: a batch as one ``POST`` in HEC's batch format.

``POST <url>/services/collector/event`` with ``Authorization: Splunk <token>`` and a body of
one JSON object per event, concatenated (HEC's batch format; not an array)::

    {"time":1767322800.123456,"sourcetype":"auditlog","index":...,"source":...,"host":...,
     "event":<the stored event>}

``time`` is the event's own ``time`` in Unix seconds with microseconds, so Splunk files the
event under when it happened rather than when it arrived; ``index``, ``source`` and
``host`` appear only when the destination sets them. The stored event is embedded as it is.

Any 2xx answer means HEC accepted the batch. HEC's error answers (``{"text": ...,
"code": ...}``) go into the failure's message; the token never does. Every request carries
an ``X-Splunk-Request-Channel`` (one per sink) so that a token with indexer
acknowledgement turned on accepts it too; acknowledgements are not polled, so delivered
means "accepted by HEC", as for a token without them.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import orjson

from auditlog.model.times import TimeFormatError, parse_rfc3339
from auditlog.service.delivery import httppost
from auditlog.service.delivery.destinations import DEFAULT_SOURCETYPE, Destination
from auditlog.service.delivery.sink import Batch

ENDPOINT = "services/collector/event"
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def event_time(stored: bytes) -> bytes | None:
    """The event's ``time`` as HEC's epoch seconds with microseconds, or None without one."""
    try:
        value: Any = orjson.loads(stored).get("time")
        us = parse_rfc3339(value)
    except (orjson.JSONDecodeError, AttributeError, TypeError, TimeFormatError):
        return None
    sign = "-" if us < 0 else ""
    seconds, micros = divmod(abs(us), 1_000_000)
    return f"{sign}{seconds}.{micros:06d}".encode("ascii")


def encode(batch: Batch, metadata: bytes) -> bytes:
    """HEC's batch body; ``metadata`` is the ``,"sourcetype":...`` members every event has."""
    parts: list[bytes] = []
    for _, stored in batch.events:
        when = event_time(stored)
        # metadata is never empty (sourcetype) and starts with the comma.
        head = b'{"time":' + when + metadata if when is not None else b"{" + metadata[1:]
        parts.append(head + b',"event":' + stored + b"}")
    return b"".join(parts)


class SplunkHecSink:
    """Sends each batch to one HEC endpoint with one token."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float,
        *,
        sourcetype: str = DEFAULT_SOURCETYPE,
        index: str | None = None,
        source: str | None = None,
        host: str | None = None,
        verify_tls: bool = True,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/" + ENDPOINT
        self._token = token
        self._timeout = timeout
        self._verify_tls = verify_tls
        fields: dict[str, str] = {"sourcetype": sourcetype}
        for name, value in (("index", index), ("source", source), ("host", host)):
            if value is not None:
                fields[name] = value
        self._metadata = b"".join(
            b"," + orjson.dumps(name) + b":" + orjson.dumps(value) for name, value in fields.items()
        )
        self._headers = {
            "authorization": f"Splunk {token}",
            "content-type": "application/json",
            "x-splunk-request-channel": str(uuid.uuid4()),
        }
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_destination(cls, dest: Destination, timeout: float) -> SplunkHecSink:
        if dest.kind != "splunk_hec" or dest.secret is None:
            raise ValueError("a splunk_hec destination with its token is needed")
        options = dest.options

        def text(name: str) -> str | None:
            value = options.get(name)
            return value if isinstance(value, str) else None

        return cls(
            dest.url,
            dest.secret,
            timeout,
            sourcetype=text("sourcetype") or DEFAULT_SOURCETYPE,
            index=text("index"),
            source=text("source"),
            host=text("host"),
            verify_tls=options.get("verify_tls", True) is not False,
        )

    async def send(self, batch: Batch) -> None:
        if self._client is None:
            self._client = httppost.new_client(self._timeout, verify_tls=self._verify_tls)
        await httppost.post(
            self._client,
            self._endpoint,
            encode(batch, self._metadata),
            self._headers,
            self._timeout,
            describe=self._describe,
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _describe(self, status: int, reply: bytes) -> str:
        """What HEC's error answer says (``text``, ``code``, the refused event's number)."""
        try:
            answer: Any = orjson.loads(reply)
        except orjson.JSONDecodeError:
            return ""
        if not isinstance(answer, dict):
            return ""
        text = answer.get("text")
        said = _UNPRINTABLE.sub("?", text)[:200] if isinstance(text, str) else ""
        details = [
            f"{label} {value}"
            for label, key in (("code", "code"), ("event", "invalid-event-number"))
            if type(value := answer.get(key)) is int
        ]
        if details:
            said += f" ({', '.join(details)})"
        # A collector has no reason to echo the token, but if one did it must go no further.
        return said.replace(self._token, "[token]").strip()
