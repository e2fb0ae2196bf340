"""Credentials as values: scopes, API key records, users (logins) and the authenticated caller."""

from __future__ import annotations

import re
from dataclasses import dataclass

EVENTS_WRITE = "events:write"
EVENTS_READ = "events:read"
LOG_READ = "log:read"
ADMIN = "admin"
SCOPES = (EVENTS_WRITE, EVENTS_READ, LOG_READ, ADMIN)


TENANT = re.compile(r"[A-Za-z0-9._:\-]{1,128}", re.ASCII)
TENANT_EXPECTED = "1-128 characters of A-Z a-z 0-9 . _ : -"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_tenant(tenant: str) -> str:
    """A tenant name, or ``ValueError`` saying what a tenant name is."""
    if TENANT.fullmatch(tenant) is None:
        raise ValueError(f"tenant {tenant!r} is not {TENANT_EXPECTED}")
    return tenant


def check_credential_name(name: str) -> str:
    """A credential's name, or ``ValueError``; it becomes the ``source`` of its events, so it
    obeys the rules of ``source``: 1-200 characters, no control characters."""
    if not 1 <= len(name) <= 200 or _CONTROL.search(name):
        raise ValueError(f"name {name!r} is not 1-200 characters without control characters")
    return name


USERNAME = re.compile(r"[A-Za-z0-9._@+\-]{1,128}", re.ASCII)
USERNAME_EXPECTED = "1-128 characters of A-Z a-z 0-9 . _ @ + -"


def check_username(username: str) -> str:
    """A username, or ``ValueError`` saying what a username is.

    Usernames are global (one namespace for every tenant) and case-sensitive. The character
    set keeps them safe in logs and in the principal ``user:<username>``; ``@`` and ``+``
    admit e-mail addresses.
    """
    if USERNAME.fullmatch(username) is None:
        raise ValueError(f"username {username!r} is not {USERNAME_EXPECTED}")
    return username


def parse_scopes(text: str) -> tuple[str, ...]:
    """``events:write,events:read`` to a tuple; ``ValueError`` naming an unknown scope."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not scopes:
        raise ValueError(f"no scopes given; expected some of {', '.join(SCOPES)}")
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; expected some of {', '.join(SCOPES)}")
    return scopes


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the secret, only its SHA-256."""

    key_id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: bytes
    created_us: int
    revoked_us: int | None = None
    #: A viewer token's bound filter (JSON text of §3 parameters), ANDed into its every read.
    filter: str | None = None
    #: When the key stops working (viewer tokens), if it does.
    expires_us: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_us is None

    @property
    def viewer(self) -> bool:
        """Whether the key is a viewer token: read-only, bound to a filter, short-lived."""
        return self.filter is not None


@dataclass(frozen=True, slots=True)
class User:
    """A person's login as stored: never the password, only its slow hash.

    ``password_hash`` is a self-describing string (algorithm, parameters, salt, digest) that
    only ``auditlog.service.passwords`` reads. A user belongs to exactly one tenant.
    """

    username: str
    tenant: str
    scopes: tuple[str, ...]
    password_hash: str
    created_us: int

    @property
    def principal(self) -> str:
        return "user:" + self.username


@dataclass(frozen=True, slots=True)
class Credential:
    """An authenticated caller: what every request is authorised against."""

    principal: str
    tenant: str
    name: str
    scopes: frozenset[str]
    kind: str  # "api_key", "jwt" or "viewer"
    credential_id: str
    expires_us: int | None = None
    #: A viewer token's bound filter as §3 parameters: ANDed into every read it makes.
    bound: tuple[tuple[str, str], ...] = ()

    def allows(self, scope: str) -> bool:
        """Whether the credential carries ``scope``; ``admin`` carries every scope."""
        return scope in self.scopes or ADMIN in self.scopes
