"""What ``auditlog verify`` remembers between runs: the last checkpoint it verified, per log.

A checkpoint proves nothing about the future on its own: an operator who rewrites history can
sign a new, self-consistent log. What catches that is a checkpoint kept where the operator
cannot reach it, and the demand, at every later run, that the log still extends it. This file
is that memory, kept by whoever runs ``verify``: an auditor's machine, not the server's disk.

It is JSON, one entry per log origin::

    {"version": 1, "logs": {"auditlog/acme": {"size": 12, "root_hash": "<base64>",
      "note": "<signed note>", "verified_at": "2026-11-27T02:27:53.123456Z",
      "source": "https://audit.example.com"}}}

It is replaced atomically (written beside, then renamed), and only after a run found nothing
wrong, so a failed run never moves the remembered checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from auditlog.model import times
from auditlog.service.logcheck import Remembered

VERSION = 1


class StateError(Exception):
    """The state file cannot be read or written."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A checkpoint that a run verified: what the next run must find extended."""

    origin: str
    size: int
    root_hash: bytes
    note: str
    source: str


def default_path() -> Path:
    """Where ``verify --url`` keeps its memory unless told: in the user's home."""
    return Path.home() / ".auditlog" / "verify-state.json"


class StateFile:
    """The remembered checkpoints in one file (which need not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._logs: dict[str, dict[str, Any]] = {}
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateError(f"state file {path}: {exc.strerror or exc}") from None
        try:
            value = orjson.loads(raw)
            if value.get("version") != VERSION or not isinstance(value.get("logs"), dict):
                raise ValueError("not a verify state file of version 1")
            self._logs = value["logs"]
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            raise StateError(f"state file {path}: {exc}") from None

    def origins(self) -> list[str]:
        """The origins of the logs remembered."""
        return sorted(self._logs)

    def get(self, origin: str) -> Remembered | None:
        """The checkpoint remembered for ``origin``, or ``None``."""
        entry = self._logs.get(origin)
        if entry is None:
            return None
        try:
            size = entry["size"]
            root = base64.b64decode(entry["root_hash"], validate=True)
            if not isinstance(size, int) or size < 0 or len(root) != 32:
                raise ValueError("bad size or root")
            return Remembered(size, root, str(entry["verified_at"]))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise StateError(f"state file {self.path}: the entry of {origin!r}: {exc}") from None

    def remember(self, verified: Verified) -> None:
        """Record a checkpoint as verified now (in memory; ``save`` writes the file)."""
        self._logs[verified.origin] = {
            "size": verified.size,
            "root_hash": base64.b64encode(verified.root_hash).decode("ascii"),
            "note": verified.note,
            "verified_at": times.format_us(times.now_us()),
            "source": verified.source,
        }

    def save(self) -> None:
        """Write the file atomically."""
        data = orjson.dumps({"version": VERSION, "logs": self._logs}, option=orjson.OPT_INDENT_2)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".verify-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data + b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temp, self.path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StateError(f"state file {self.path}: {exc.strerror or exc}") from None
