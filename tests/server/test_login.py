"""Logins over HTTP (API.md §4): POST /v1/auth/token, the JWTs it gives, and their forgeries."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditlog.config import Settings
from auditlog.model import times
from auditlog.model.credentials import User
from auditlog.server.app import AuditlogApp, build_app
from auditlog.service.tokens import STORED_KEY_NAME, Tokens, password_version
from auditlog.storage.sqlite.store import SQLiteStore
from server.api import AnswerGuard, Api, bearer, problem
from server.conftest import QUIET, MakeApi
from server.logins import PASSWORD, add_user, login, token_of

pytestmark = pytest.mark.anyio


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims_of(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return value


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return value


async def signing_key(app: AuditlogApp) -> Ed25519PrivateKey:
    raw = await app.services.store.load_or_create_secret(STORED_KEY_NAME, b"unused")
    return Ed25519PrivateKey.from_private_bytes(raw)


def assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    doc = problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return doc


async def whoami(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/auth/whoami", headers=bearer(token))


@pytest.fixture
async def alice(app: AuditlogApp) -> User:
    return await add_user(app)


# -- logging in ------------------------------------------------------------------------------


async def test_a_login_answers_a_bearer_token(client: httpx.AsyncClient, alice: User) -> None:
    before = int(time.time())
    response = await login(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    token = body["access_token"]
    assert header_of(token)["alg"] == "EdDSA"
    assert len(header_of(token)["kid"]) == 16
    claims = claims_of(token)
    assert set(claims) == {"iss", "sub", "tenant", "scopes", "iat", "exp", "jti", "pwv"}
    assert claims["pwv"] == password_version(alice.password_hash)
    assert (claims["sub"], claims["tenant"], claims["iss"]) == ("alice", "acme", "auditlog")
    assert claims["scopes"] == ["events:read", "events:write"]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 300


async def test_whoami_with_a_login_token(client: httpx.AsyncClient, alice: User) -> None:
    token = await token_of(client)
    claims = claims_of(token)
    response = await whoami(client, token)
    assert response.status_code == 200
    assert response.json() == {
        "principal": "user:alice",
        "tenant": "acme",
        "scopes": ["events:read", "events:write"],
        "expires_at": times.format_us(claims["exp"] * 1_000_000),
        "credential": {"kind": "jwt", "id": claims["jti"], "name": "alice"},
    }
    # The old header form works for login tokens as for keys.
    old = await client.get("/v1/auth/whoami", headers={"Authorization": f"Bearer: {token}"})
    assert old.json() == response.json()


@pytest.mark.parametrize("settings", [replace(QUIET, token_lifetime=42)])
async def test_the_lifetime_is_a_setting(client: httpx.AsyncClient, alice: User) -> None:
    body = (await login(client)).json()
    assert body["expires_in"] == 42
    claims = claims_of(body["access_token"])
    assert claims["exp"] - claims["iat"] == 42


async def test_a_token_acts_within_its_tenant_and_scopes(
    app: AuditlogApp, client: httpx.AsyncClient, make_api: MakeApi
) -> None:
    await add_user(app, "alice", "acme", ("events:read", "events:write"))
    await add_user(app, "eve", "globex", ("admin",))
    await add_user(app, "reader", "acme", ("events:read",))
    alice = Api(client, await token_of(client, "alice"))
    eve = Api(client, await token_of(client, "eve"))
    reader = Api(client, await token_of(client, "reader"))
    stored = await alice.create({"id": "e1", "type": "t"})
    assert stored["tenant"] == "acme"
    assert stored["actor"] == {"id": "user:alice", "type": "credential"}
    assert stored["source"] == "alice"
    assert (await reader.get("e1")).json() == stored
    problem(await reader.post({"type": "t"}), 403)
    problem(await eve.get("e1"), 404)  # another tenant: admin of globex sees nothing of acme
    # globex's log holds eve's login alone; acme's, the logins of alice and reader, and e1.
    logins = "auditlog.login.succeeded"
    assert [(e["type"], e["actor"]["id"]) for e in await eve.everything()] == [(logins, "user:eve")]
    key = await make_api("acme", ("events:read",))
    assert [(e["type"], e["actor"]["id"]) for e in await key.everything()] == [
        (logins, "user:alice"),
        (logins, "user:reader"),
        ("t", "user:alice"),
    ]
    assert (await key.everything())[-1]["id"] == "e1"


# -- failures --------------------------------------------------------------------------------


async def test_a_wrong_password_and_an_unknown_user_answer_alike(
    client: httpx.AsyncClient, alice: User
) -> None:
    wrong = await login(client, "alice", PASSWORD + "!")
    unknown = await login(client, "bob", PASSWORD)
    malformed = await login(client, "not a valid username", PASSWORD)
    for response in (wrong, unknown, malformed):
        doc = assert_unauthorized(response)
        assert doc["detail"] == "invalid username or password"
    assert wrong.content == unknown.content == malformed.content
    # The same headers, but for the id each request was given.
    same = [
        {k: v for k, v in r.headers.items() if k != "x-request-id"}
        for r in (wrong, unknown, malformed)
    ]
    assert same[0] == same[1] == same[2]


async def test_a_failed_login_is_logged_without_the_password(
    client: httpx.AsyncClient, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="auditlog"):
        assert (await login(client, "alice", "the wrong one")).status_code == 401
        assert (await login(client)).status_code == 200
    assert "failed login for username 'alice'" in caplog.text
    assert "the wrong one" not in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"alice"',
        b'{"username": "alice"}',
        b'{"password": "x"}',
        b'{"username": 7, "password": "x"}',
        b'{"username": "alice", "password": null}',
        b'{"username": "alice", "password": "x", "grant_type": "password"}',
    ],
)
async def test_a_body_that_is_not_a_login_is_400(
    client: httpx.AsyncClient, alice: User, body: bytes
) -> None:
    response = await client.post(
        "/v1/auth/token", content=body, headers={"Content-Type": "application/json"}
    )
    problem(response, 400)


async def test_a_login_is_json(client: httpx.AsyncClient, alice: User) -> None:
    form = await client.post("/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    problem(form, 415)
    bare = await client.post(
        "/v1/auth/token", content=json.dumps({"username": "alice", "password": PASSWORD})
    )
    assert bare.status_code == 200  # no Content-Type is read as JSON


async def test_a_huge_login_body_is_refused_unread(client: httpx.AsyncClient) -> None:
    response = await login(client, "alice", "x" * 10_000)
    problem(response, 413)


# -- forged and expired tokens ----------------------------------------------------------------


async def forgeries(app: AuditlogApp, client: httpx.AsyncClient) -> dict[str, str]:
    """Every kind of bad token, made from a real one of alice's."""
    token = await token_of(client)
    header, claims = header_of(token), claims_of(token)
    head, body, signature = token.split(".")
    key = await signing_key(app)
    public = key.public_key()
    escalated = {**claims, "scopes": ["admin"], "tenant": "globex"}

    def assemble(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"

    def hs256(secret: bytes) -> str:
        signing_input = f"{b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{b64(json.dumps(escalated).encode())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    expired = await Tokens(app.services.store, 300, lambda: time.time() - 3600).issue(
        User("alice", "acme", ("events:read",), "", 0)
    )
    out = {
        "alg none": assemble({**header, "alg": "none"}, escalated, b""),
        "alg none, no signature": assemble({**header, "alg": "none"}, escalated, b"")[:-1],
        "HS256 with the raw public key": hs256(
            public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ),
        "HS256 with the PEM public key": hs256(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ),
        "tampered payload": f"{head}.{b64(json.dumps(escalated).encode())}.{signature}",
        "tampered signature": f"{head}.{body}.{signature[::-1]}",
        "another key": jwt.encode(
            escalated, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=header
        ),
        "expired": expired.token,
        "another issuer": jwt.encode(
            {**claims, "iss": "elsewhere"}, key, algorithm="EdDSA", headers=header
        ),
    }
    for claim in ("sub", "tenant", "scopes", "exp", "iat", "jti", "iss", "pwv"):
        partial = {k: v for k, v in claims.items() if k != claim}
        out[f"without {claim}"] = jwt.encode(partial, key, algorithm="EdDSA", headers=header)
    return out


async def test_every_forged_or_expired_token_is_401(
    app: AuditlogApp, client: httpx.AsyncClient, alice: User, make_api: MakeApi
) -> None:
    owner = await make_api("globex", ("events:write", "events:read"))
    await owner.create({"id": "g1", "type": "t"})
    for name, token in (await forgeries(app, client)).items():
        for method, path in (
            ("GET", "/v1/auth/whoami"),
            ("GET", "/v1/events"),
            ("GET", "/v1/events/g1"),
            ("POST", "/v1/events"),
            ("GET", "/auth"),
            ("GET", "/event"),
        ):
            for form in ("Bearer {t}", "Bearer: {t}"):
                headers = {"Authorization": form.format(t=token)}
                kwargs: dict[str, Any] = {"headers": headers}
                if method == "POST":
                    kwargs["json"] = {"type": "forged"}
                response = await client.request(method, path, **kwargs)
                doc = assert_unauthorized(response)
                expected = "the token has expired" if name == "expired" else "not a valid"
                assert expected in doc["detail"], (name, path, doc)
    assert [e["id"] for e in await owner.everything()] == ["g1"]


async def test_the_forgeries_are_made_right(app: AuditlogApp, client: httpx.AsyncClient) -> None:
    # The control: the forging helpers, used with nothing wrong, make a token that works.
    await add_user(app)
    token = await token_of(client)
    resigned = jwt.encode(
        claims_of(token), await signing_key(app), algorithm="EdDSA", headers=header_of(token)
    )
    assert (await whoami(client, resigned)).status_code == 200


# -- rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [replace(QUIET, login_failures_per_user=2)])
async def test_failed_logins_for_a_username_are_limited(
    app: AuditlogApp, client: httpx.AsyncClient, alice: User
) -> None:
    await add_user(app, "bob")
    for _ in range(2):
        assert_unauthorized(await login(client, "alice", "wrong password"))
    for password in ("wrong password", PASSWORD):
        response = await login(client, "alice", password)
        doc = problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert "too many failed logins" in doc["detail"]
    # Other users are not affected; neither are credentials already given.
    assert (await login(client, "bob")).status_code == 200
    # An unknown username is limited just the same.
    for _ in range(2):
        assert_unauthorized(await login(client, "nobody", "x"))
    problem(await login(client, "nobody", "x"), 429)


@pytest.mark.parametrize("settings", [replace(QUIET, login_failures_per_address=3)])
async def test_failed_logins_from_an_address_are_limited(
    app: AuditlogApp, alice: User, guard: AnswerGuard
) -> None:
    @contextlib.asynccontextmanager
    async def client_at(host: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://auditlog.test", event_hooks={"response": [guard]}
        ) as client:
            yield client

    async with client_at("192.0.2.66") as attacker:
        for i in range(3):
            assert_unauthorized(await login(attacker, f"guess{i}", "x"))
        response = await login(attacker, "alice", PASSWORD)
        problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 15
    async with client_at("198.51.100.7") as elsewhere:
        assert (await login(elsewhere, "alice", PASSWORD)).status_code == 200


@pytest.mark.parametrize("settings", [replace(QUIET, login_failures_per_user=3)])
async def test_successful_logins_are_not_limited(client: httpx.AsyncClient, alice: User) -> None:
    for _ in range(8):
        assert (await login(client)).status_code == 200


# -- the secrets stay secret ------------------------------------------------------------------


async def test_no_answer_shows_the_password_or_the_signing_key(
    app: AuditlogApp, client: httpx.AsyncClient, alice: User
) -> None:
    key = await signing_key(app)
    raw = key.private_bytes_raw()
    secrets = [
        PASSWORD,
        raw.hex(),
        base64.b64encode(raw).decode(),
        b64(raw),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        alice.password_hash,
        alice.password_hash.split("$")[-1],
    ]
    token = await token_of(client)
    responses = [
        await login(client),
        await login(client, "alice", "wrong"),
        await client.post("/login", json={"username": "alice", "password": PASSWORD}),
        await whoami(client, token),
        await client.get("/openapi.json"),
        await client.get("/metrics"),
        await client.get("/auth", headers=bearer(token)),
    ]
    for response in responses:
        text = response.text + json.dumps(dict(response.headers))
        for secret in secrets:
            assert secret not in text, response.request.url


# -- one key per store -----------------------------------------------------------------------


async def test_tokens_outlive_a_restart_and_serve_every_process(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first = build_app(Settings(), SQLiteStore(path))
    second = build_app(Settings(), SQLiteStore(path))
    await first.startup()
    await second.startup()
    try:
        await add_user(first)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first), base_url="http://a.test"
        ) as one:
            token = await token_of(one)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second), base_url="http://b.test"
        ) as two:
            assert (await whoami(two, token)).json()["principal"] == "user:alice"
    finally:
        await first.shutdown()
        await second.shutdown()
    restarted = build_app(Settings(), SQLiteStore(path))
    await restarted.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=restarted), base_url="http://c.test"
        ) as three:
            assert (await whoami(three, token)).status_code == 200
    finally:
        await restarted.shutdown()
