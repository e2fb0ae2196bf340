"""The archive file: one ZIP (ZIP64 allowed, members deflated) of four members, in this order.

``manifest.json``
    what the archive holds: ``{"format": "auditlog-archive/1", "tenant", "origin", "first_seq",
    "end_seq" (exclusive), "events" (their count), "events_sha256" (hex, of the uncompressed
    events member), "checkpoint_size", "root_hash" (base64, the checkpoint's), "created_at"
    (RFC 3339), "created_by"}``.
``events.ndjson``
    the stored events of seqs ``first_seq`` .. ``end_seq - 1``, byte for byte as stored (compact
    JSON, never a newline inside), each followed by a newline.
``checkpoint``
    the tenant's signed checkpoint note that covers ``end_seq`` (C2SP tlog-checkpoint), exactly
    as the log stored it.
``proof.json``
    ``{"prefix": [...], "consistency": [...]}``, base64 hashes: the perfect subtrees covering
    seqs [0, first_seq), left to right (a compact range, ``integrity.compact``), and the
    consistency proof from the tree of ``end_seq`` leaves to the checkpoint's (RFC 9162 §2.1.4).

The two JSON members are written in one canonical form (``orjson``, two-space indent, a final
newline) and read back only in that form, so that no byte of them can change unnoticed. The
reader refuses a file with other members, or these in another order, and reads the events
member as a stream of lines, in constant memory whatever its size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

import orjson

from auditlog.archive import ArchiveFormatError
from auditlog.integrity.hasher import HASH_SIZE
from auditlog.model import times
from auditlog.model.credentials import check_tenant

FORMAT = "auditlog-archive/1"
MANIFEST = "manifest.json"
EVENTS = "events.ndjson"
CHECKPOINT = "checkpoint"
PROOF = "proof.json"
#: The members of an archive, in the order they are written and must be found.
MEMBERS = (MANIFEST, EVENTS, CHECKPOINT, PROOF)
#: The most bytes the manifest, the checkpoint or the proof may hold.
MAX_SMALL = 1 << 20
#: The most bytes one event line may hold: far beyond any event the service stores.
MAX_LINE = 64 << 20
#: Bytes of the events member read at a time.
CHUNK = 1 << 20
#: The largest seq or count a manifest may give (a signed 64-bit integer).
MAX_NUMBER = 2**63 - 1
#: What reading a damaged member may raise, from zipfile and the decompressor beneath it.
DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)

_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_KEYS = (
    "format",
    "tenant",
    "origin",
    "first_seq",
    "end_seq",
    "events",
    "events_sha256",
    "checkpoint_size",
    "root_hash",
    "created_at",
    "created_by",
)


class Digest(Protocol):
    """What ``event_lines`` feeds the member's bytes to: a ``hashlib`` object."""

    def update(self, data: bytes, /) -> None: ...


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def _hash(text: object, what: str) -> bytes:
    """A hash from its canonical standard base64, or ``ArchiveFormatError``."""
    if isinstance(text, str):
        try:
            h = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            h = b""
        if len(h) == HASH_SIZE and b64(h) == text:
            return h
    raise ArchiveFormatError(f"{what} is not the base64 of a {HASH_SIZE}-byte hash")


def _json(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"


def _object(data: bytes, member: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object of a member with exactly ``keys``, or ``ArchiveFormatError``."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ArchiveFormatError(f"{member} is not JSON") from None
    if not isinstance(value, dict):
        raise ArchiveFormatError(f"{member} is not a JSON object")
    if sorted(value) != sorted(keys):
        raise ArchiveFormatError(
            f"{member} has the fields {', '.join(sorted(value))}; expected {', '.join(keys)}"
        )
    return value


def _number(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_NUMBER:
        raise ArchiveFormatError(f"{MANIFEST}: {name} is not a whole number in 0-{MAX_NUMBER}")
    return value


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ArchiveFormatError(f"{MANIFEST}: {name} is not a string")
    return value


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an archive says it holds (``manifest.json``)."""

    tenant: str
    origin: str
    first_seq: int
    end_seq: int
    events: int
    events_sha256: str
    checkpoint_size: int
    root_hash: bytes
    created_at: str
    created_by: str

    def to_json(self) -> bytes:
        """The member's bytes, in their one canonical form."""
        return _json(
            {
                "format": FORMAT,
                "tenant": self.tenant,
                "origin": self.origin,
                "first_seq": self.first_seq,
                "end_seq": self.end_seq,
                "events": self.events,
                "events_sha256": self.events_sha256,
                "checkpoint_size": self.checkpoint_size,
                "root_hash": b64(self.root_hash),
                "created_at": self.created_at,
                "created_by": self.created_by,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """The manifest in a member's bytes, or ``ArchiveFormatError`` saying what is wrong.

        Its numbers must agree with one another (``first_seq < end_seq <= checkpoint_size``);
        whether ``events`` agrees with them is for the check to say, as a finding.
        """
        value = _object(data, MANIFEST, _KEYS)
        if value["format"] != FORMAT:
            raise ArchiveFormatError(
                f"{MANIFEST}: format {value['format']!r} is not {FORMAT!r} (another kind of file, "
                "or an archive of a later version)"
            )
        tenant = _text(value["tenant"], "tenant")
        try:
            check_tenant(tenant)
        except ValueError as exc:
            raise ArchiveFormatError(f"{MANIFEST}: {exc}") from None
        origin = _text(value["origin"], "origin")
        if not origin.endswith("/" + tenant):
            raise ArchiveFormatError(
                f"{MANIFEST}: origin {origin!r} is not the log of tenant {tenant!r}"
            )
        sha = _text(value["events_sha256"], "events_sha256")
        if not _HEX.fullmatch(sha):
            raise ArchiveFormatError(f"{MANIFEST}: events_sha256 is not 64 lowercase hex digits")
        created_at = _text(value["created_at"], "created_at")
        try:
            times.parse_rfc3339(created_at)
        except ValueError as exc:
            raise ArchiveFormatError(f"{MANIFEST}: created_at: {exc}") from None
        manifest = cls(
            tenant=tenant,
            origin=origin,
            first_seq=_number(value["first_seq"], "first_seq"),
            end_seq=_number(value["end_seq"], "end_seq"),
            events=_number(value["events"], "events"),
            events_sha256=sha,
            checkpoint_size=_number(value["checkpoint_size"], "checkpoint_size"),
            root_hash=_hash(value["root_hash"], f"{MANIFEST}: root_hash"),
            created_at=created_at,
            created_by=_text(value["created_by"], "created_by"),
        )
        if not manifest.first_seq < manifest.end_seq <= manifest.checkpoint_size:
            raise ArchiveFormatError(
                f"{MANIFEST}: first_seq {manifest.first_seq}, end_seq {manifest.end_seq} and "
                f"checkpoint_size {manifest.checkpoint_size} are not in increasing order"
            )
        if manifest.to_json() != data:
            raise ArchiveFormatError(f"{MANIFEST} is not in the form the archive writer gives it")
        return manifest


@dataclass(frozen=True, slots=True)
class Proof:
    """``proof.json``: the prefix's perfect subtrees and the consistency proof, as hashes."""

    prefix: tuple[bytes, ...]
    consistency: tuple[bytes, ...]

    def to_json(self) -> bytes:
        """The member's bytes, in their one canonical form."""
        return _json(
            {
                "prefix": [b64(h) for h in self.prefix],
                "consistency": [b64(h) for h in self.consistency],
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Proof:
        """The proof in a member's bytes, or ``ArchiveFormatError`` saying what is wrong."""
        value = _object(data, PROOF, ("prefix", "consistency"))
        lists: dict[str, tuple[bytes, ...]] = {}
        for name in ("prefix", "consistency"):
            items = value[name]
            if not isinstance(items, list):
                raise ArchiveFormatError(f"{PROOF}: {name} is not a list")
            lists[name] = tuple(_hash(h, f"{PROOF}: {name} hash {i}") for i, h in enumerate(items))
        proof = cls(lists["prefix"], lists["consistency"])
        if proof.to_json() != data:
            raise ArchiveFormatError(f"{PROOF} is not in the form the archive writer gives it")
        return proof


def _zip_time(created_at: str) -> tuple[int, int, int, int, int, int]:
    """The ZIP entries' time: the archive's creation time (UTC), within what ZIP can hold."""
    when = datetime.fromtimestamp(times.parse_rfc3339(created_at) / 1_000_000, UTC)
    if when.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


class ArchiveWriter:
    """Writes an archive to ``file``: the manifest now, then the events (``add_events``, as
    often as needed), then the checkpoint and the proof (``finish``)."""

    def __init__(self, file: BinaryIO, manifest: Manifest) -> None:
        self._stamp = _zip_time(manifest.created_at)
        self._zip = zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._zip.writestr(self._info(MANIFEST), manifest.to_json())
        self._events = self._zip.open(self._info(EVENTS), "w", force_zip64=True)

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, self._stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def add_events(self, bodies: Iterable[bytes]) -> None:
        """Append stored events, one line each, in seq order."""
        lines = []
        for body in bodies:
            if b"\n" in body:
                raise ValueError("a stored event holds a newline; it cannot be one line")
            lines.append(body)
            lines.append(b"\n")
        self._events.write(b"".join(lines))

    def finish(self, checkpoint: str, proof: Proof) -> None:
        """Close the events member, write the checkpoint note and the proof, and close."""
        self._events.close()
        self._zip.writestr(self._info(CHECKPOINT), checkpoint.encode("utf-8"))
        self._zip.writestr(self._info(PROOF), proof.to_json())
        self._zip.close()

    def abort(self) -> None:
        """Give up: close what is open (the file is left for the caller to remove)."""
        try:
            self._events.close()
            self._zip.close()
        except (OSError, ValueError):
            pass


def _check_length(line: bytes, seq: int) -> None:
    if len(line) > MAX_LINE:
        raise ArchiveFormatError(f"the line of seq {seq} is longer than {MAX_LINE} bytes", seq)


class ArchiveReader:
    """Reads an archive file: its members' names and order checked when it is opened.

    ``OSError`` when the file cannot be read at all; ``ArchiveFormatError`` when it is not
    an archive, or a member is damaged (including a truncated file).
    """

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        try:
            try:
                self._zip = zipfile.ZipFile(self._file)
            except DAMAGE as exc:
                raise ArchiveFormatError(
                    f"not a complete ZIP file (truncated or damaged?): {exc}"
                ) from None
            names = [info.filename for info in self._zip.infolist()]
            if names != list(MEMBERS):
                raise ArchiveFormatError(
                    f"the ZIP holds {', '.join(names) or 'nothing'}; an archive holds "
                    f"{', '.join(MEMBERS)} in that order"
                )
            for info in self._zip.infolist():
                if info.flag_bits & 0x1:
                    raise ArchiveFormatError(f"member {info.filename} is encrypted")
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def size(self, name: str) -> int:
        """The uncompressed size the ZIP records for a member."""
        return self._zip.getinfo(name).file_size

    def read_small(self, name: str) -> bytes:
        """A whole member that is not the events (at most ``MAX_SMALL`` bytes), CRC checked."""
        try:
            with self._zip.open(name) as member:
                data = member.read(MAX_SMALL + 1)
        except DAMAGE as exc:
            raise ArchiveFormatError(f"member {name} is damaged: {exc}") from None
        if len(data) > MAX_SMALL:
            raise ArchiveFormatError(f"member {name} is larger than {MAX_SMALL} bytes")
        return data

    def manifest(self) -> Manifest:
        return Manifest.parse(self.read_small(MANIFEST))

    def proof(self) -> Proof:
        return Proof.parse(self.read_small(PROOF))

    def checkpoint(self) -> str:
        data = self.read_small(CHECKPOINT)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveFormatError(f"member {CHECKPOINT} is not UTF-8 text") from None

    def event_lines(self, first_seq: int, digest: Digest | None = None) -> Iterator[bytes]:
        """The events member's lines without their newlines, streamed in constant memory.

        ``digest`` (a ``hashlib`` object), if given, is fed every byte of the member. Damage
        (a failed CRC or a broken deflate stream, a line longer than ``MAX_LINE``, a last line
        without its newline) raises ``ArchiveFormatError`` naming the seq of the line it is
        in, counting the first line as ``first_seq``.
        """
        seq = first_seq
        rest = b""
        try:
            member = self._zip.open(EVENTS)
        except DAMAGE as exc:
            raise ArchiveFormatError(f"member {EVENTS} is damaged: {exc}", seq) from None
        with member:
            while True:
                try:
                    chunk = member.read(CHUNK)
                except DAMAGE as exc:
                    raise ArchiveFormatError(
                        f"member {EVENTS} is damaged from about seq {seq} on: {exc}", seq
                    ) from None
                if not chunk:
                    break
                if digest is not None:
                    digest.update(chunk)
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    _check_length(line, seq)
                    yield line
                    seq += 1
                _check_length(rest, seq)
        if rest:
            raise ArchiveFormatError(
                f"the last line of {EVENTS} (seq {seq}) does not end in a newline: cut short?",
                seq,
            )


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
