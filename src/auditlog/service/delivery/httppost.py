"""One HTTP POST of an encoded batch, shared by the webhook and Splunk HEC sinks.

``post`` sends a body and returns on any 2xx answer; everything else becomes a
``DeliveryFailed`` with its reason (``http_3xx`` for a redirect, which is never followed;
``http_429``, ``http_4xx``, ``http_5xx``; ``timeout``, ``connect``, ``tls``, ``closed``,
``protocol`` when no answer came) and the ``Retry-After`` the answer asked for, in seconds.
The whole exchange (connection, request, answer) has one deadline, so a receiver that
trickles its answer cannot hold a worker longer than ``timeout``.

Messages name the destination by its origin only (``https://host:port``): the path or query
of a webhook URL can be a credential. Only the first ``MAX_REPLY`` bytes of an answer are
read; a longer answer costs its connection instead of memory.

Clients verify TLS against the system's CA store (where an organisation installs its own
CA), follow no redirects and ignore proxy settings in the environment (settings come from
the service's configuration only).
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from urllib.parse import urlsplit

import httpx

from auditlog import __version__
from auditlog.service.delivery.sink import DeliveryFailed, Reason

#: The most of an answer read: enough for any error document a collector sends.
MAX_REPLY = 4096
#: A Retry-After beyond this is taken as this: a day is long enough to wait for any
#: receiver, and the worker should come back and see.
MAX_RETRY_AFTER = 86_400.0

USER_AGENT = f"auditlog/{__version__}"

Describe = Callable[[int, bytes], str]


def new_client(timeout: float, *, verify_tls: bool = True) -> httpx.AsyncClient:
    """A client that keeps connections alive between batches and follows no redirects."""
    verify: ssl.SSLContext | bool = ssl.create_default_context() if verify_tls else False
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        verify=verify,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL: what a message may say about where it went."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    *,
    describe: Describe | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """POST ``body``; return on 2xx, else raise ``DeliveryFailed``.

    ``describe(status, reply)`` adds what an error answer says to the message (it must
    return nothing secret); ``clock`` gives the Unix time an HTTP-date Retry-After is
    counted from.
    """
    where = origin(url)
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                # Read even a success's answer, so that the connection can serve the next.
                reply = await _read_some(response)
    except (TimeoutError, httpx.TimeoutException):
        raise DeliveryFailed(
            f"{where} did not answer within {timeout:g} s", reason="timeout"
        ) from None
    except httpx.HTTPError as exc:
        failure = _transport_failure(exc, where)
        raise DeliveryFailed(
            _scrub(failure.message, url), reason=failure.reason, retry_after=None
        ) from None
    if 200 <= response.status_code < 300:
        return
    raise _status_failure(response, reply, where, describe, clock)


async def _read_some(response: httpx.Response) -> bytes:
    reply = bytearray()
    async for chunk in response.aiter_bytes():
        reply += chunk
        if len(reply) >= MAX_REPLY:
            break
    return bytes(reply[:MAX_REPLY])


def _status_failure(
    response: httpx.Response,
    reply: bytes,
    where: str,
    describe: Describe | None,
    clock: Callable[[], float] | None,
) -> DeliveryFailed:
    status = response.status_code
    message = f"{where} answered {status} {response.reason_phrase}".rstrip()
    reason: Reason
    if 300 <= status < 400:
        reason = "http_3xx"
        location = response.headers.get("location")
        target = f" to {origin(str(response.url.join(location)))}" if location else ""
        message += f"; redirects{target} are not followed: set the stream's url to the target"
    elif status == 429:
        reason = "http_429"
    elif 400 <= status < 500:
        reason = "http_4xx"
    elif 500 <= status < 600:
        reason = "http_5xx"
    else:
        reason = "protocol"
    if describe is not None:
        said = describe(status, reply)
        if said:
            message += f": {said}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), clock)
    return DeliveryFailed(message, reason=reason, retry_after=retry_after)


def _transport_failure(exc: httpx.HTTPError, where: str) -> DeliveryFailed:
    if _caused_by_tls(exc):
        return DeliveryFailed(f"TLS with {where} failed: {_cause_text(exc)}", reason="tls")
    if isinstance(exc, httpx.ConnectError):
        return DeliveryFailed(f"cannot connect to {where}: {_cause_text(exc)}", reason="connect")
    if isinstance(exc, httpx.RemoteProtocolError) and "disconnect" in str(exc):
        return DeliveryFailed(f"{where} closed the connection without answering", reason="closed")
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return DeliveryFailed(
            f"the connection to {where} broke: {_cause_text(exc)}", reason="closed"
        )
    return DeliveryFailed(f"{where}: {type(exc).__name__}: {_cause_text(exc)}", reason="protocol")


def _scrub(message: str, url: str) -> str:
    """``message`` without the URL's path or query, should an error have quoted them."""
    parts = urlsplit(url)
    for secretive in (url, parts.path + ("?" + parts.query if parts.query else ""), parts.query):
        if len(secretive) > 1:
            message = message.replace(secretive, "...")
    return message


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; a cycle must not hang us
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause_text(exc: BaseException) -> str:
    """What the deepest cause says: httpx's own words are often "All connection attempts
    failed" where the operating system's say "Connection refused"."""
    text = str(exc) or type(exc).__name__
    seen = exc
    for _ in range(10):  # a cause chain is short; a cycle must not hang us
        deeper = seen.__cause__ or seen.__context__
        if deeper is None:
            break
        seen = deeper
        text = str(seen) or text
    return text if len(text) <= 200 else text[:197] + "..."


def parse_retry_after(value: str | None, clock: Callable[[], float] | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    None when there is none or it cannot be read; never negative, at most
    ``MAX_RETRY_AFTER``. ``clock`` (Unix time) is what an HTTP-date is counted from.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(text) if len(text) <= 12 else MAX_RETRY_AFTER
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322, but Python leaves it naive
            when = when.replace(tzinfo=UTC)
        now = clock() if clock is not None else time.time()
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
