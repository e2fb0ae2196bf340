"""The witness key file: the cosigner's private key in text form, on one line.

The file holds ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || 32-byte seed)>`` and a
newline: an Ed25519 cosigner key of C2SP tlog-cosignature v1. ``make`` writes a new one with
mode 0600 and never replaces a file that exists; ``load`` reads one back.
"""

from __future__ import annotations

import os
from pathlib import Path

from auditlog.integrity import IntegrityError
from auditlog.integrity.cosignature import Cosigner


class KeyFileError(Exception):
    """The key file cannot be written or read, or does not hold a cosigner key."""


def make(path: Path, name: str) -> Cosigner:
    """A new cosigner named ``name``, its key written to ``path`` (mode 0600).

    Raises ``KeyFileError`` if ``path`` exists (it is left as it is), the name cannot name a
    key, or the file cannot be written.
    """
    try:
        cosigner = Cosigner.generate(name)
    except (IntegrityError, ValueError) as exc:
        raise KeyFileError(f"cannot make a key named {name!r}: {exc}") from None
    data = (cosigner.skey() + "\n").encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; a key file is never replaced") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write {path}: {exc.strerror}") from None
    return cosigner


def load(path: Path) -> Cosigner:
    """The cosigner whose key ``path`` holds; ``KeyFileError`` saying why not."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not ASCII text"
        raise KeyFileError(f"cannot read the key file {path}: {reason}") from None
    try:
        return Cosigner.from_skey(text.strip())
    except (IntegrityError, ValueError) as exc:
        raise KeyFileError(f"{path} does not hold a witness (cosigner) key: {exc}") from None
