"""No secret in a log line or an error answer: a session of bad requests of every kind, with
every log record captured, and each secret looked for in all of it.

The secrets: the password (and a near miss of it), the API key and its secret part, login
tokens and their signatures, the stored password hash and key digest, and the token signing
key. Successful answers that hand a token out are the one place a token may appear.

Secrets a client puts where no secret belongs (a query parameter, an event id, an event field)
are its own words: an error answer names the bad value it was sent (as every error message
does), so those answers may quote them back to their sender; the log may not.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import replace

import httpx
import pytest

from auditlog.config import Settings
from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.server.app import AuditlogApp
from auditlog.service.tokens import STORED_KEY_NAME
from security.routes import call_for, credential_routes
from server.api import Api, bearer
from server.conftest import QUIET, ControlledStore, MakeApi
from server.logins import PASSWORD, add_user, login, token_of

pytestmark = pytest.mark.anyio

NEAR_MISS = PASSWORD.replace("staple", "stable")


@pytest.fixture
def settings() -> Settings:
    """Reads recorded, and small request buckets, so that those paths run too."""
    return replace(QUIET, audit_reads=True, read_rate=1, read_burst=400)


class Session:
    """Every answer of the session, and the secrets to look for."""

    def __init__(self) -> None:
        self.errors: list[httpx.Response] = []
        self.quoting: list[httpx.Response] = []
        self.secrets: dict[str, str] = {}

    def keep(self, response: httpx.Response) -> httpx.Response:
        """An answer to a request that carried secrets only as credentials."""
        if response.status_code >= 400:
            self.errors.append(response)
        return response

    def misplaced(self, response: httpx.Response) -> httpx.Response:
        """An answer to a request that put a secret in its content: it may quote it."""
        self.quoting.append(response)
        return response


def b64(data: bytes) -> list[str]:
    return [base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode().rstrip("=")]


async def bad_requests(
    app: AuditlogApp, client: httpx.AsyncClient, make_api: MakeApi, store: ControlledStore
) -> Session:
    session = Session()
    keep, misplaced = session.keep, session.misplaced
    alice = await add_user(app, "alice", "acme", ("events:read",))
    key = await make_api("acme", ("events:write", "events:read"), "producer")
    token = await token_of(client)
    revoked = await make_api("acme", ("admin",), "revoked")
    assert await app.services.store.revoke_api_key(revoked.key_id, times.now_us())
    stored_key = await app.services.store.get_api_key(key.key_id)
    assert stored_key is not None
    signing = await app.services.store.load_or_create_secret(STORED_KEY_NAME, b"unused")
    key_secret = key.token.split("_", 2)[2]  # alk_<id>_<secret>; the secret may hold "_"
    session.secrets = {
        "password": PASSWORD,
        "near miss": NEAR_MISS,
        "password hash": alice.password_hash,
        "password digest": alice.password_hash.rsplit("$", 1)[-1],
        "API key": key.token,
        "API key secret": key_secret,
        "revoked key": revoked.token,
        "key digest (hex)": stored_key.secret_hash.hex(),
        "login token": token,
        "login token signature": token.rsplit(".", 1)[1],
        "signing key (hex)": signing.hex(),
    }
    for i, encoded in enumerate([*b64(stored_key.secret_hash), *b64(signing)]):
        session.secrets[f"encoded secret {i}"] = encoded

    # Logins gone wrong, carrying the password in every way a body can.
    for username, password in (("alice", NEAR_MISS), ("Alice", PASSWORD), ("nobody", PASSWORD)):
        keep(await login(client, username, password))
        keep(await client.post("/login", json={"username": username, "password": password}))
    for body in (
        b'{"username": "alice", "password": "' + PASSWORD.encode() + b'"',
        b'{"username": "alice", "password": "' + PASSWORD.encode() + b'", "x": 1}',
        b'{"password": "' + PASSWORD.encode() + b'"}',
        b'["alice", "' + PASSWORD.encode() + b'"]',
        b'{"username": "alice", "password": "' + PASSWORD.encode() + b'\x00\xff"}',
        b'{"username": "alice", "password": "' + PASSWORD.encode() * 400 + b'"}',
    ):
        keep(await client.post("/v1/auth/token", content=body))
        keep(await client.post("/login", content=body))
    keep(await client.post("/v1/auth/token", data={"username": "alice", "password": PASSWORD}))
    for _ in range(6):  # past the failed-login limit
        keep(await login(client, "alice", NEAR_MISS))

    # Credentials gone wrong, on every route.
    spoiled = [
        key.token + "x",
        key.token[:-1],
        key.token.replace(key_secret, key_secret[::-1]),
        revoked.token,
        token[:-2],
        token.rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1][::-1],
        PASSWORD,
    ]
    for route in credential_routes(app):
        call = call_for(route)
        for bad in spoiled:
            keep(await call.send(client, bearer(bad)))
        keep(
            await call.send(
                client, {"Authorization": f"Basic {b64(f'alice:{PASSWORD}'.encode())[0]}"}
            )
        )
        keep(await call.send(client, bearer(token)))  # a scope alice lacks, for writes
    # Secrets where no secret belongs: in parameters, ids, paths and bodies.
    for secret in (key.token, token, PASSWORD):
        reader = Api(client, key.token)
        misplaced(await reader.query([("access_token", secret)]))
        misplaced(await reader.query([("since", secret), ("limit", secret)]))
        misplaced(await reader.query([("cursor", secret)]))
        misplaced(await reader.query([(f"data.{secret}", "1")]))
        misplaced(await reader.get(secret))
        misplaced(await client.get(f"/v1/events?token={secret}", headers=bearer(secret)))
        misplaced(await client.get("/event", params={"timeStart": secret}, headers=key.headers))
        misplaced(await key.post({"type": "t", "password": secret}))
        misplaced(await key.post({"type": "t", "time": secret, "id": secret}))
        misplaced(await client.post("/event", json={"event_type": secret}, headers=key.headers))
        misplaced(await client.delete(f"/v1/events/{secret}", headers=bearer(secret)))
    # Storage failing under a credential's request.
    store.append_error = StorageError("the disk is gone", 1)
    keep(await key.post({"type": "t"}))
    keep(await login(client))
    keep(await Api(client, token).query())
    store.append_error = None
    return session


@pytest.mark.usefixtures("expect_unavailable")
async def test_no_secret_in_a_log_line_or_an_error_answer(
    app: AuditlogApp,
    client: httpx.AsyncClient,
    make_api: MakeApi,
    store: ControlledStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session = await bad_requests(app, client, make_api, store)
    statuses = {r.status_code for r in [*session.errors, *session.quoting]}
    assert statuses >= {400, 401, 403, 404, 405, 413, 415, 422, 429, 503}, statuses
    # The service's log records (the test's own client logs the URLs it requests).
    records = [r for r in caplog.records if r.name.startswith(("auditlog", "uvicorn"))]
    logged: list[str] = []
    for entry in records:
        logged.append(logging.Formatter().format(entry))  # message, with any traceback
        logged.append(repr(entry.args))
    assert any("failed login for username 'alice'" in line for line in logged)
    answers: list[str] = []
    for response in session.errors:
        answers.append(response.text)
        answers.append(json.dumps(dict(response.headers)))
    for name, secret in session.secrets.items():
        assert len(secret) >= 16, name
        for line in logged:
            assert secret not in line, f"the {name} is in the log: {line[:300]}"
        for answer in answers:
            assert secret not in answer, f"the {name} is in an error answer: {answer[:300]}"
