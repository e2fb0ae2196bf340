"""What ``auditlog export`` and ``auditlog tail`` share as clients of the HTTP API: their
connection and filter arguments, the HTTP client, how an answer is judged (worth retrying or
not, and what its problem says), ``Retry-After``, and the backoff between attempts."""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import os
import random
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
import orjson

from auditlog import __version__

#: Seconds to wait for the next bytes of an answer before the connection counts as broken.
READ_TIMEOUT = 120.0


class UsageError(Exception):
    """An argument that the command cannot use (exit status 2)."""


class CommandFailed(Exception):
    """The command could not do its work (exit status 1); the message says why."""


class Broken(Exception):
    """An attempt that ended before the work was complete; another may succeed."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``."""
    parser.add_argument("--url", required=True, help="the service, e.g. https://audit.example.com")
    parser.add_argument("--token", required=True, metavar="T", help="a credential with events:read")


def add_filter_argument(parser: argparse.ArgumentParser) -> None:
    """The ``FILTER...`` positional arguments."""
    parser.add_argument(
        "filters",
        nargs="*",
        metavar="FILTER",
        help="NAME=VALUE, a query parameter of GET /v1/events: type=user.login, "
        "data.amount[gt]=100, since=2026-01-01T00:00:00Z (repeatable; a name repeated is OR)",
    )


def parse_filters(filters: Sequence[str], reserved: frozenset[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` arguments as query parameters; ``UsageError`` for anything else. The
    service checks names and values; ``reserved`` names are the command's own."""
    params = []
    for text in filters:
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise UsageError(f"filter {text!r} is not NAME=VALUE (e.g. type=user.login)")
        if name in reserved:
            raise UsageError(f"filter {text!r}: {name} is set by the command, not a filter")
        params.append((name, value))
    return params


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url {url!r} is not an http:// or https:// URL")


def http_client(token: str, read_timeout: float = READ_TIMEOUT) -> httpx.Client:
    """A client that sends ``token`` with every request and waits at most ``read_timeout``
    seconds for the next bytes of an answer (then the connection is taken as broken)."""
    return httpx.Client(
        headers={"Authorization": f"Bearer {token}", "User-Agent": f"auditlog/{__version__}"},
        timeout=httpx.Timeout(30.0, read=read_timeout),
    )


def check_answer(response: httpx.Response, what: str) -> None:
    """Nothing for a ``200``. ``Broken`` for an answer worth trying again later (``429``,
    ``5xx``), with its ``Retry-After``; ``CommandFailed`` with the problem's detail otherwise."""
    if response.status_code == 200:
        return
    response.read()
    detail = problem_detail(response)
    message = f"{what} answered {response.status_code}: {detail}"
    if response.status_code == 429 or response.status_code >= 500:
        raise Broken(message, retry_after_seconds(response.headers.get("Retry-After")))
    raise CommandFailed(message)


def problem_detail(response: httpx.Response) -> str:
    """The ``detail`` of a problem+json answer, else its title, else its reason phrase."""
    try:
        problem = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        problem = None
    if isinstance(problem, dict):
        for key in ("detail", "title"):
            if isinstance(problem.get(key), str) and problem[key]:
                return str(problem[key])
    return response.reason_phrase or "no detail"


def describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: The longest wait a Retry-After can ask for; beyond it the value is taken as this.
LONGEST_RETRY_AFTER = 300.0


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value (seconds or an HTTP date) in seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), LONGEST_RETRY_AFTER)


#: The first wait after a failure, and the longest, in seconds.
BACKOFF_FIRST = 0.2
BACKOFF_LONGEST = 30.0


class Backoff:
    """Exponential backoff with jitter, counting failures in a row; a server's
    ``Retry-After`` (or SSE ``retry``) is waited out in full."""

    def __init__(self) -> None:
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self, at_least: float | None = None) -> float:
        """Counts one more failure; the seconds to wait before the next attempt."""
        self.failures += 1
        ceiling = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_LONGEST)
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, at_least or 0.0)


def sleep(seconds: float) -> None:
    """``time.sleep``, named here so that tests can see the waits asked for."""
    time.sleep(seconds)


def quiet_stdout() -> None:
    """After the reader of standard output went away: no error at exit for its buffer."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
