"""What an answer of the service means to the client: the error it is, if any."""

from __future__ import annotations

import json
from typing import Any

import httpx

from auditlog_client.errors import (
    APIError,
    ConflictError,
    NotFoundError,
    RetryableError,
    TransportError,
)
from auditlog_client.retry import parse_retry_after, retryable_status


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error answer, or what can be said without one."""
    try:
        value = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict):
        return value
    text = response.content[:500].decode("utf-8", "replace")
    return {"status": response.status_code, "title": response.reason_phrase, "detail": text}


def error_of(response: httpx.Response) -> APIError:
    """The error an answer with a status of 400 or more stands for."""
    status = response.status_code
    problem = problem_of(response)
    if retryable_status(status):
        return RetryableError(
            status, problem, parse_retry_after(response.headers.get("retry-after"))
        )
    if status == 409:
        return ConflictError(status, problem)
    if status == 404:
        return NotFoundError(status, problem)
    return APIError(status, problem)


def check(response: httpx.Response) -> httpx.Response:
    """``response`` if it is a success, else raise its error."""
    if response.status_code >= 400:
        raise error_of(response)
    return response


def transport_error(exc: httpx.TransportError, what: str) -> TransportError:
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")
