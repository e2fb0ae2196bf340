"""Password hashing: scrypt (RFC 7914) from the standard library, in one self-describing string.

A hash reads ``$scrypt$ln=15,r=8,p=1$<salt>$<digest>`` (the PHC string format: ``ln`` is
log2 of the cost ``n``; salt and digest are unpadded standard base64), so stored hashes keep
working when the parameters for new ones change. ``PARAMETERS`` costs about 32 MiB and
50-100 ms per hash on the machine this was measured on: slow enough that a stolen table is
expensive to guess through, fast enough for a login.

Hashing and checking run in a worker thread (``asyncio.to_thread``) so the event loop keeps
serving while scrypt works. A login for a username that does not exist is checked against a
dummy hash made with the same parameters, so that an unknown user and a wrong password take
the same time; digests are compared in constant time.

Passwords are normalised to NFKC before hashing (NIST SP 800-63B 5.1.1.2), so the same
password typed on two keyboards that compose characters differently matches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

SCHEME = "scrypt"
SALT_BYTES = 16
DIGEST_BYTES = 32
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_HASH = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<digest>[A-Za-z0-9+/]+)",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class ScryptParameters:
    """scrypt's cost: ``n = 2**log_n`` (CPU and memory), ``r`` (block size), ``p`` (lanes)."""

    log_n: int = 15
    r: int = 8
    p: int = 1

    @property
    def maxmem(self) -> int:
        # OpenSSL's own count of what scrypt allocates (128 * r * (n + 2 + p) bytes), plus
        # room; it refuses to start with less.
        return 128 * self.r * ((1 << self.log_n) + 2 + self.p) + 1024 * 1024


PARAMETERS = ScryptParameters()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _normalise(password: str) -> bytes:
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _scrypt(password: str, salt: bytes, params: ScryptParameters, length: int) -> bytes:
    return hashlib.scrypt(
        _normalise(password),
        salt=salt,
        n=1 << params.log_n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=length,
    )


def check_password(password: str) -> str:
    """A password acceptable for a new user, or ``ValueError`` saying why (never echoing it)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password must be at most {MAX_PASSWORD} characters long")
    return password


def _encode(params: ScryptParameters, salt: bytes, digest: bytes) -> str:
    return f"${SCHEME}$ln={params.log_n},r={params.r},p={params.p}${_b64(salt)}${_b64(digest)}"


def hash_password(password: str, params: ScryptParameters = PARAMETERS) -> str:
    """The encoded scrypt hash of ``password`` with a new random salt (blocking)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return _encode(params, salt, _scrypt(password, salt, params, DIGEST_BYTES))


def dummy_hash(params: ScryptParameters = PARAMETERS) -> str:
    """A hash no password matches (its digest is random bytes), which costs as much to check
    as a real one with the same parameters."""
    return _encode(params, secrets.token_bytes(SALT_BYTES), secrets.token_bytes(DIGEST_BYTES))


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the encoded hash (blocking; constant-time comparison).

    A hash this module cannot read matches nothing.
    """
    match = _HASH.fullmatch(encoded)
    if match is None:
        return False
    try:
        salt = _unb64(match["salt"])
        expected = _unb64(match["digest"])
    except (binascii.Error, ValueError):
        return False
    params = ScryptParameters(int(match["ln"]), int(match["r"]), int(match["p"]))
    if not (1 <= params.log_n <= 20 and 1 <= params.r <= 32 and 1 <= params.p <= 16):
        return False
    if not expected:
        return False
    try:
        actual = _scrypt(password, salt, params, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


class Passwords:
    """Hash and check passwords off the event loop, with equal time for unknown users."""

    def __init__(self, params: ScryptParameters = PARAMETERS) -> None:
        self._params = params
        self._dummy = dummy_hash(params)

    async def hash(self, password: str) -> str:
        """The encoded hash of a new password."""
        return await asyncio.to_thread(hash_password, password, self._params)

    async def verify(self, password: str, encoded: str | None) -> bool:
        """Whether ``password`` matches ``encoded``; ``None`` (no such user) never matches,
        after the same work as a real check."""
        if encoded is None:
            await asyncio.to_thread(verify_password, password, self._dummy)
            return False
        return await asyncio.to_thread(verify_password, password, encoded)
