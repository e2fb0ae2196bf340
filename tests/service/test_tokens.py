"""Login tokens (``auditlog.service.tokens``): what is issued, every forgery refused, and
tokens that end with their user (removed, or given a new password)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditlog.errors import StorageError, Unauthorized
from auditlog.model.credentials import User
from auditlog.service.tokens import (
    LEEWAY_SECONDS,
    PASSWORD_CHANGED,
    STORED_KEY_NAME,
    USER_REMOVED,
    Tokens,
    password_version,
)
from auditlog.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000
ALICE = User("alice", "acme", ("events:read", "events:write"), "$scrypt$x", 0)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
        signature,
    )


def assemble(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


@pytest.fixture
async def store() -> MemoryStore:
    """A store where ALICE is a user."""
    memory = MemoryStore()
    assert await memory.create_user(ALICE)
    return memory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def tokens(store: MemoryStore, clock: Clock) -> Tokens:
    service = Tokens(store, 300, clock)
    await service.load_key()
    return service


async def signing_key(store: MemoryStore) -> Ed25519PrivateKey:
    raw = await store.load_or_create_secret(STORED_KEY_NAME, b"unused")
    return Ed25519PrivateKey.from_private_bytes(raw)


async def good_claims(tokens: Tokens) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = segments((await tokens.issue(ALICE)).token)
    return header, claims


# -- issuing ---------------------------------------------------------------------------------


async def test_a_token_carries_the_user_and_its_lifetime(tokens: Tokens, clock: Clock) -> None:
    issued = await tokens.issue(ALICE)
    assert issued.expires_in == 300
    header, claims, _ = segments(issued.token)
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": tokens.key_id}
    assert len(tokens.key_id) == 16
    assert set(claims) == {"iss", "sub", "tenant", "scopes", "iat", "exp", "jti", "pwv"}
    assert claims["iss"] == "auditlog"
    assert claims["sub"] == "alice"
    assert claims["tenant"] == "acme"
    assert claims["scopes"] == ["events:read", "events:write"]
    assert claims["iat"] == NOW
    assert claims["exp"] == NOW + 300
    assert len(claims["jti"]) >= 16
    assert claims["pwv"] == password_version(ALICE.password_hash)
    credential = await tokens.verify(issued.token)
    assert credential == issued.credential
    assert credential.principal == "user:alice"
    assert credential.name == "alice"
    assert credential.tenant == "acme"
    assert credential.scopes == frozenset({"events:read", "events:write"})
    assert credential.kind == "jwt"
    assert credential.credential_id == claims["jti"]
    assert credential.expires_us == (NOW + 300) * 1_000_000


async def test_every_token_has_its_own_id(tokens: Tokens) -> None:
    ids = {(await tokens.issue(ALICE)).credential.credential_id for _ in range(20)}
    assert len(ids) == 20


async def test_the_key_is_made_once_per_store_and_shared(store: MemoryStore) -> None:
    first, second = Tokens(store, 300), Tokens(store, 60)
    issued = await first.issue(ALICE)
    assert (await second.verify(issued.token)).credential_id == issued.credential.credential_id
    assert first.key_id == second.key_id
    other = Tokens(MemoryStore(), 300)
    with pytest.raises(Unauthorized):
        await other.verify(issued.token)
    assert other.key_id != first.key_id


async def test_a_stored_key_that_is_not_a_key_stops_the_start(store: MemoryStore) -> None:
    await store.load_or_create_secret(STORED_KEY_NAME, b"too short")
    with pytest.raises(StorageError, match="not an Ed25519 key"):
        await Tokens(store, 300).load_key()


# -- expiry ----------------------------------------------------------------------------------


async def test_a_token_expires_after_its_lifetime_give_or_take_the_leeway(
    tokens: Tokens, clock: Clock
) -> None:
    token = (await tokens.issue(ALICE)).token
    clock.now = NOW + 300 + LEEWAY_SECONDS - 1
    await tokens.verify(token)
    clock.now = NOW + 300 + LEEWAY_SECONDS
    with pytest.raises(Unauthorized, match="expired"):
        await tokens.verify(token)
    clock.now = NOW + 86_400
    with pytest.raises(Unauthorized, match="expired"):
        await tokens.verify(token)


async def test_a_token_issued_in_the_future_is_refused(store: MemoryStore, clock: Clock) -> None:
    ahead = Tokens(store, 300, Clock(NOW + LEEWAY_SECONDS + 1))
    token = (await ahead.issue(ALICE)).token
    with pytest.raises(Unauthorized, match="not a valid credential"):
        await Tokens(store, 300, clock).verify(token)
    slightly = Tokens(store, 300, Clock(NOW + LEEWAY_SECONDS))
    await Tokens(store, 300, clock).verify((await slightly.issue(ALICE)).token)


# -- forgeries -------------------------------------------------------------------------------


async def refused(tokens: Tokens, token: str) -> None:
    with pytest.raises(Unauthorized) as info:
        await tokens.verify(token)
    assert info.value.detail == "the token is not a valid credential"


@pytest.mark.parametrize(
    "token",
    ["", "x", "a.b", "a.b.c", "a.b.c.d", "....", "eyJhbGciOiJFZERTQSJ9.e30.", "alk_x_y", "é.é.é"],
)
async def test_garbage_is_refused(tokens: Tokens, token: str) -> None:
    await refused(tokens, token)


async def test_alg_none_is_refused(tokens: Tokens) -> None:
    header, claims = await good_claims(tokens)
    for alg in ("none", "None", "NONE"):
        unsigned = assemble({**header, "alg": alg}, claims, lambda data: b"")
        await refused(tokens, unsigned)
        await refused(tokens, unsigned.rsplit(".", 1)[0] + ".")
    await refused(
        tokens, jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
    )


async def test_hmac_signed_with_the_public_key_is_refused(
    tokens: Tokens, store: MemoryStore
) -> None:
    # Algorithm confusion: a verifier that let the token choose HS256 would check the HMAC
    # with the public key as the secret, and anybody can compute that.
    header, claims = await good_claims(tokens)
    public = (await signing_key(store)).public_key()
    forms = [
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ]
    for key in forms:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            forged = assemble(
                {**header, "alg": alg},
                {**claims, "scopes": ["admin"]},
                lambda data, key=key, digest=digest: hmac.new(key, data, digest).digest(),
            )
            await refused(tokens, forged)


async def test_a_changed_payload_is_refused(tokens: Tokens) -> None:
    issued = (await tokens.issue(ALICE)).token
    head, body, signature = issued.split(".")
    _, claims, _ = segments(issued)
    for change in (
        {"scopes": ["admin"]},
        {"tenant": "globex"},
        {"sub": "mallory"},
        {"exp": claims["exp"] + 3600},
    ):
        altered = b64(json.dumps({**claims, **change}).encode())
        await refused(tokens, f"{head}.{altered}.{signature}")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    for at in (0, len(raw) // 2, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[at] ^= 0x01
        await refused(tokens, f"{head}.{body}.{b64(bytes(flipped))}")
    await refused(tokens, f"{head}.{body}.{b64(raw[:-1])}")
    await refused(tokens, f"{head}.{body}.")


async def test_another_key_is_refused(tokens: Tokens) -> None:
    header, claims = await good_claims(tokens)
    stranger = Ed25519PrivateKey.generate()
    await refused(tokens, jwt.encode(claims, stranger, algorithm="EdDSA", headers=header))
    await refused(
        tokens, jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": "0" * 16})
    )


async def test_another_kid_is_refused_even_when_signed_with_our_key(
    tokens: Tokens, store: MemoryStore
) -> None:
    _, claims = await good_claims(tokens)
    key = await signing_key(store)
    await refused(tokens, jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "other"}))
    await refused(tokens, jwt.encode(claims, key, algorithm="EdDSA"))


@pytest.mark.parametrize("claim", ["iss", "sub", "tenant", "scopes", "iat", "exp", "jti", "pwv"])
async def test_a_token_without_a_claim_is_refused(
    tokens: Tokens, store: MemoryStore, claim: str
) -> None:
    header, claims = await good_claims(tokens)
    del claims[claim]
    token = jwt.encode(claims, await signing_key(store), algorithm="EdDSA", headers=header)
    await refused(tokens, token)


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "someone-else"},
        {"sub": ""},
        {"sub": "user:alice"},
        {"sub": 7},
        {"tenant": ""},
        {"tenant": "a b"},
        {"tenant": ["acme"]},
        {"scopes": "admin"},
        {"scopes": ["root"]},
        {"scopes": [["admin"]]},
        {"iat": "1800000000"},
        {"exp": "1800000300"},
        {"exp": 1.8e9 + 300.5},
        {"exp": True},
        {"exp": NOW - 1},  # expires before it was issued
        {"jti": ""},
        {"jti": 5},
        {"pwv": 5},
        {"pwv": None},
        {"pwv": ["x"]},
    ],
)
async def test_a_token_with_an_ill_typed_claim_is_refused(
    tokens: Tokens, store: MemoryStore, change: dict[str, Any]
) -> None:
    header, claims = await good_claims(tokens)
    token = jwt.encode(
        {**claims, **change}, await signing_key(store), algorithm="EdDSA", headers=header
    )
    await refused(tokens, token)


async def test_a_well_formed_token_signed_with_our_key_is_accepted(
    tokens: Tokens, store: MemoryStore
) -> None:
    # The control for the forgeries above: the same construction with nothing changed passes.
    header, claims = await good_claims(tokens)
    token = jwt.encode(claims, await signing_key(store), algorithm="EdDSA", headers=header)
    assert (await tokens.verify(token)).name == "alice"


# -- tokens end with their user ---------------------------------------------------------------


async def ended(tokens: Tokens, token: str, why: str) -> None:
    with pytest.raises(Unauthorized) as info:
        await tokens.verify(token)
    assert info.value.detail == why


async def test_a_removed_users_tokens_are_refused(tokens: Tokens, store: MemoryStore) -> None:
    token = (await tokens.issue(ALICE)).token
    await tokens.verify(token)
    assert await store.delete_user("alice") == ALICE
    await ended(tokens, token, USER_REMOVED)
    # The same name made again, in another tenant, is another person.
    assert await store.create_user(replace(ALICE, tenant="globex"))
    await ended(tokens, token, USER_REMOVED)


async def test_a_user_made_again_in_its_tenant_does_not_revive_old_tokens(
    tokens: Tokens, store: MemoryStore
) -> None:
    token = (await tokens.issue(ALICE)).token
    assert await store.delete_user("alice") == ALICE
    again = replace(ALICE, password_hash="$scrypt$another salt")
    assert await store.create_user(again)
    await ended(tokens, token, PASSWORD_CHANGED)
    await tokens.verify((await tokens.issue(again)).token)


async def test_a_new_password_ends_the_tokens_issued_before(
    tokens: Tokens, store: MemoryStore
) -> None:
    before = (await tokens.issue(ALICE)).token
    changed = await store.set_password_hash("alice", "$scrypt$new")
    assert changed is not None
    await ended(tokens, before, PASSWORD_CHANGED)
    after = (await tokens.issue(changed)).token
    assert (await tokens.verify(after)).name == "alice"


async def test_a_token_issued_under_a_password_already_replaced_is_refused(
    tokens: Tokens, store: MemoryStore
) -> None:
    # A login that read the user just before a new password was stored gets a token that
    # the next request refuses.
    assert await store.set_password_hash("alice", "$scrypt$new") is not None
    await ended(tokens, (await tokens.issue(ALICE)).token, PASSWORD_CHANGED)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def get_user(self, username: str) -> User | None:
        self.lookups += 1
        return await super().get_user(username)


async def test_only_a_token_whose_signature_holds_costs_a_lookup(clock: Clock) -> None:
    store = CountingStore()
    assert await store.create_user(ALICE)
    tokens = Tokens(store, 300, clock)
    token = (await tokens.issue(ALICE)).token
    head, body, signature = token.split(".")
    for bad in ("garbage", f"{head}.{body}.{signature[::-1]}", f"{head}.{body}."):
        await refused(tokens, bad)
    clock.now = NOW + 3600
    with pytest.raises(Unauthorized, match="expired"):
        await tokens.verify(token)
    assert store.lookups == 0
    clock.now = NOW
    await tokens.verify(token)
    assert store.lookups == 1


def test_the_password_version_is_a_short_digest_of_the_hash() -> None:
    version = password_version(ALICE.password_hash)
    assert version == password_version("$scrypt$x")
    expected = hashlib.sha256(b"$scrypt$x").digest()[:12]
    assert base64.urlsafe_b64decode(version) == expected
    assert len(version) == 16
    assert password_version("$scrypt$y") != version
