"""Password hashing (``auditlog.service.passwords``): the stored form, checks, and fairness."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from auditlog.service import passwords
from auditlog.service.passwords import (
    PARAMETERS,
    Passwords,
    ScryptParameters,
    check_password,
    dummy_hash,
    hash_password,
    verify_password,
)

#: Cheap parameters where the test is about the format, not the cost.
FAST = ScryptParameters(log_n=4, r=8, p=1)
HASH_FORM = r"\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}"


def test_a_hash_names_its_parameters_and_salt() -> None:
    encoded = hash_password("correct horse battery")
    assert encoded.startswith(f"$scrypt$ln={PARAMETERS.log_n},r={PARAMETERS.r},p={PARAMETERS.p}$")
    assert re.fullmatch(HASH_FORM, encoded), encoded
    assert "correct horse battery" not in encoded


def test_the_right_password_matches_and_no_other() -> None:
    encoded = hash_password("correct horse battery")
    assert verify_password("correct horse battery", encoded)
    for wrong in ("correct horse batter", "Correct horse battery", "", "correct horse battery "):
        assert not verify_password(wrong, encoded)


def test_each_hash_has_its_own_salt() -> None:
    first, second = hash_password("same", FAST), hash_password("same", FAST)
    assert first != second
    assert verify_password("same", first)
    assert verify_password("same", second)


def test_hashes_made_with_other_parameters_keep_working() -> None:
    for params in (FAST, ScryptParameters(log_n=10, r=4, p=2)):
        encoded = hash_password("pässwörd ☃", params)
        assert f"ln={params.log_n},r={params.r},p={params.p}" in encoded
        assert verify_password("pässwörd ☃", encoded)
        assert not verify_password("passwort", encoded)


def test_passwords_are_compared_after_nfkc_normalisation() -> None:
    composed = "caf\u00e9 au lait"  # é as one code point
    decomposed = "cafe\u0301 au lait"  # e + combining acute accent
    encoded = hash_password(composed, FAST)
    assert verify_password(decomposed, encoded)
    assert verify_password("\uff43af\u00e9 au lait", encoded)  # a full-width c
    assert not verify_password("cafe au lait", encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain text",
        "$scrypt$",
        "$scrypt$ln=4,r=8,p=1$c2FsdA$",
        "$scrypt$ln=4,r=8,p=1$$ZGlnZXN0",
        "$scrypt$ln=4,r=8,p=1$not*base64$ZGlnZXN0",
        "$scrypt$ln=4,r=8,p=1$c2FsdA$ZGlnZXN0$extra",
        "$scrypt$ln=0,r=8,p=1$c2FsdA$ZGlnZXN0",
        "$scrypt$ln=40,r=8,p=1$c2FsdA$ZGlnZXN0",  # would need terabytes
        "$scrypt$ln=4,r=99,p=1$c2FsdA$ZGlnZXN0",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$ZGlnZXN0",
        "$SCRYPT$ln=4,r=8,p=1$c2FsdA$ZGlnZXN0",
    ],
)
def test_a_hash_that_cannot_be_read_matches_nothing(encoded: str) -> None:
    assert not verify_password("anything", encoded)
    assert not verify_password("", encoded)


def test_the_dummy_hash_costs_what_a_real_one_costs_and_matches_nothing() -> None:
    dummy = dummy_hash()
    assert dummy.startswith(f"$scrypt$ln={PARAMETERS.log_n},r={PARAMETERS.r},p={PARAMETERS.p}$")
    assert dummy != dummy_hash()
    assert not verify_password("", dummy)
    assert not verify_password("correct horse battery", dummy)


@pytest.mark.parametrize("password", ["", "short", "7chars!"])
def test_a_new_password_is_at_least_8_characters(password: str) -> None:
    with pytest.raises(ValueError, match="at least 8") as info:
        check_password(password)
    if password:
        assert password not in str(info.value)


def test_a_new_password_is_at_most_1024_characters() -> None:
    assert check_password("x" * 1024) == "x" * 1024
    with pytest.raises(ValueError, match="at most 1024") as info:
        check_password("secret" * 200)
    assert "secret" not in str(info.value)


@pytest.mark.anyio
async def test_checking_an_unknown_user_does_the_same_work(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    real = passwords.verify_password

    def spy(password: str, encoded: str) -> bool:
        checked.append(encoded)
        return real(password, encoded)

    monkeypatch.setattr(passwords, "verify_password", spy)
    service = Passwords(FAST)
    encoded = await service.hash("correct horse battery")
    assert await service.verify("correct horse battery", encoded)
    assert not await service.verify("correct horse battery", None)
    assert not await service.verify("", None)
    assert len(checked) == 3
    real_params, dummy_params = checked[0].split("$")[2], checked[1].split("$")[2]
    assert real_params == dummy_params == "ln=4,r=8,p=1"
    assert checked[1] == checked[2]  # one dummy per service


@pytest.mark.anyio
@pytest.mark.parametrize("operation", ["hash", "verify", "verify_unknown"])
async def test_hashing_and_checking_leave_the_event_loop_free(
    monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    # scrypt is held at a gate that only the event loop opens: if the work ran on the loop,
    # the loop could not open it and the wait would time out.
    gate = threading.Event()
    real = passwords._scrypt

    def gated(*args: object) -> bytes:
        assert gate.wait(10), "the event loop was blocked while scrypt ran"
        return real(*args)  # type: ignore[arg-type]

    service = Passwords(FAST)
    encoded = hash_password("correct horse battery", FAST)
    monkeypatch.setattr(passwords, "_scrypt", gated)
    if operation == "hash":
        work = asyncio.ensure_future(service.hash("correct horse battery"))
    elif operation == "verify":
        work = asyncio.ensure_future(service.verify("correct horse battery", encoded))
    else:
        work = asyncio.ensure_future(service.verify("correct horse battery", None))
    await asyncio.sleep(0)
    assert not work.done()
    gate.set()
    result = await work
    expected = {"verify": True, "verify_unknown": False}
    if operation in expected:
        assert result is expected[operation]
    else:
        assert isinstance(result, str)
        assert verify_password("correct horse battery", result)
