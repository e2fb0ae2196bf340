"""Logging in: a username and password for a short-lived token (API.md §4).

One answer for every failure: an unknown username and a wrong password are the same
``Unauthorized`` with the same message, after the same work (the password is checked against
a dummy hash when there is no such user). Failed attempts are limited per username and per
client address (``auditlog.service.ratelimit``); past the limit the answer is ``RateLimited``
whatever the password. The password is never logged; failures are logged with the username
and address, as a security log should.
"""

from __future__ import annotations

import logging

from auditlog.errors import Unauthorized
from auditlog.model.credentials import USERNAME
from auditlog.service.passwords import Passwords
from auditlog.service.ratelimit import LoginLimiter
from auditlog.service.selfaudit import (
    LOGIN_FAILED,
    LOGIN_SUCCEEDED,
    SelfAudit,
    credential_actor,
)
from auditlog.service.tokens import IssuedToken, Tokens
from auditlog.storage.base import Store

log = logging.getLogger("auditlog.login")

INVALID_LOGIN = "invalid username or password"


class Logins:
    """Check a username and password and issue a token."""

    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        tokens: Tokens,
        limiter: LoginLimiter,
        audit: SelfAudit | None = None,
    ) -> None:
        self._audit = audit
        self._store = store
        self._passwords = passwords
        self._tokens = tokens
        self._limiter = limiter

    async def login(self, username: str, password: str, address: str) -> IssuedToken:
        """A token for the user, or ``Unauthorized`` / ``RateLimited``."""
        attempt = self._limiter.begin(username, address)
        user = await self._store.get_user(username) if USERNAME.fullmatch(username) else None
        valid = await self._passwords.verify(password, user.password_hash if user else None)
        if user is None or not valid:
            log.warning("failed login for username %r from %s", username[:200], address)
            if user is not None and self._audit is not None:
                actor = {"id": f"user:{user.username}", "type": "user", "name": user.username}
                await self._audit.record(
                    user.tenant, LOGIN_FAILED, actor, "failure", {"address": address}
                )
            raise Unauthorized(INVALID_LOGIN)
        self._limiter.succeeded(attempt)
        issued = await self._tokens.issue(user)
        if self._audit is not None:
            await self._audit.record(
                user.tenant,
                LOGIN_SUCCEEDED,
                credential_actor(issued.credential),
                "success",
                {"address": address, "credential_id": issued.credential.credential_id},
            )
        log.info(
            "login of %s (tenant %s) from %s: token %s",
            user.username,
            user.tenant,
            address,
            issued.credential.credential_id,
        )
        return issued
