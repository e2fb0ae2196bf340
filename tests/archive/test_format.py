"""The archive file format: its JSON members read back only in their one form, the events
member read as lines in constant memory, and the limits on what a member may hold."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from auditlog.archive import ArchiveFormatError
from auditlog.archive import format as archive_format
from auditlog.archive.check import check_archive
from auditlog.archive.format import (
    EVENTS,
    MEMBERS,
    ArchiveReader,
    ArchiveWriter,
    Manifest,
    Proof,
)
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.compact import CompactRange
from auditlog.integrity.hasher import leaf_hash

ROOT = hashlib.sha256(b"root").digest()
MANIFEST = Manifest(
    tenant="acme",
    origin="log.example/acme",
    first_seq=3,
    end_seq=10,
    events=7,
    events_sha256="ab" * 32,
    checkpoint_size=12,
    root_hash=ROOT,
    created_at="2026-05-01T12:00:00.000000Z",
    created_by="cli:anna",
)


def manifest_json(**changes: object) -> bytes:
    value = orjson.loads(MANIFEST.to_json())
    value.update(changes)
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


def test_the_manifest_reads_back_what_was_written() -> None:
    data = MANIFEST.to_json()
    assert Manifest.parse(data) == MANIFEST
    assert data.startswith(b'{\n  "format": "auditlog-archive/1",\n  "tenant": "acme",\n')
    assert data.endswith(b'  "created_by": "cli:anna"\n}\n')


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "zip"}, "format 'zip' is not 'auditlog-archive/1'"),
        ({"tenant": "no spaces"}, "tenant 'no spaces' is not"),
        ({"origin": "log.example/other"}, "is not the log of tenant 'acme'"),
        ({"first_seq": -1}, "first_seq is not a whole number"),
        ({"end_seq": 2.5}, "end_seq is not a whole number"),
        ({"events": True}, "events is not a whole number"),
        ({"first_seq": 10}, "are not in increasing order"),
        ({"checkpoint_size": 9}, "are not in increasing order"),
        ({"events_sha256": "AB" * 32}, "events_sha256 is not 64 lowercase hex"),
        ({"root_hash": "AAAA"}, "root_hash is not the base64 of a 32-byte hash"),
        ({"created_at": "yesterday"}, "created_at: 'yesterday' is not"),
        ({"created_by": 7}, "created_by is not a string"),
        ({"extra": 1}, "expected format, tenant"),
    ],
)
def test_a_malformed_manifest_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ArchiveFormatError, match=message):
        Manifest.parse(manifest_json(**changes))


@pytest.mark.parametrize(
    "data",
    [
        MANIFEST.to_json().rstrip(b"\n"),
        MANIFEST.to_json().replace(b"  ", b"\t"),
        orjson.dumps(orjson.loads(MANIFEST.to_json())),
    ],
)
def test_a_manifest_in_another_form_is_refused(data: bytes) -> None:
    with pytest.raises(ArchiveFormatError, match="not in the form the archive writer gives it"):
        Manifest.parse(data)


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"\xff"])
def test_a_manifest_that_is_no_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(ArchiveFormatError, match=r"manifest\.json is not"):
        Manifest.parse(data)


def test_the_proof_reads_back_what_was_written() -> None:
    proof = Proof((ROOT, bytes(32)), (bytes(range(32)),))
    assert Proof.parse(proof.to_json()) == proof
    assert Proof.parse(Proof((), ()).to_json()) == Proof((), ())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"prefix": []}', "expected prefix, consistency"),
        (b'{"prefix": {}, "consistency": []}', "prefix is not a list"),
        (b'{"prefix": [1], "consistency": []}', "prefix hash 0 is not the base64"),
        # The same 32 bytes in a base64 that is not the canonical one (padding bits set).
        (
            b'{"prefix": [], "consistency": ["' + b"A" * 42 + b'B="]}',
            "consistency hash 0 is not the base64",
        ),
        (b'{"prefix":[],"consistency":[]}', "not in the form"),
    ],
)
def test_a_malformed_proof_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ArchiveFormatError, match=message):
        Proof.parse(data)


def test_a_stored_event_with_a_newline_cannot_be_written() -> None:
    writer = ArchiveWriter(io.BytesIO(), MANIFEST)
    with pytest.raises(ValueError, match="newline"):
        writer.add_events([b'{"a":\n1}'])
    writer.abort()


def archive_bytes(events: bytes, names: tuple[str, ...] = MEMBERS) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, events if name == EVENTS else b"")
    return out.getvalue()


def lines_of(tmp_path: Path, events: bytes, first: int = 5) -> list[bytes]:
    path = tmp_path / "a.zip"
    path.write_bytes(archive_bytes(events))
    with ArchiveReader(path) as reader:
        return list(reader.event_lines(first))


def test_event_lines_are_split_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_format, "CHUNK", 3)
    assert lines_of(tmp_path, b"abcdefg\n\nhi\n") == [b"abcdefg", b"", b"hi"]
    assert lines_of(tmp_path, b"") == []


def test_a_last_line_without_its_newline_names_its_seq(tmp_path: Path) -> None:
    with pytest.raises(ArchiveFormatError, match=r"last line .*\(seq 7\) does not end") as raised:
        lines_of(tmp_path, b"a\nb\nc")
    assert raised.value.seq == 7


def test_a_line_beyond_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_format, "CHUNK", 4)
    monkeypatch.setattr(archive_format, "MAX_LINE", 10)
    assert lines_of(tmp_path, b"x" * 10 + b"\n") == [b"x" * 10]
    with pytest.raises(ArchiveFormatError, match="seq 6 is longer than 10 bytes"):
        lines_of(tmp_path, b"a\n" + b"x" * 11 + b"\n")


def test_a_small_member_beyond_its_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_format, "MAX_SMALL", 10)
    path = tmp_path / "a.zip"
    path.write_bytes(archive_bytes(b""))
    with ArchiveReader(path) as reader:
        assert reader.read_small("checkpoint") == b""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in MEMBERS:
            archive.writestr(name, b"x" * 11)
    path.write_bytes(out.getvalue())
    with ArchiveReader(path) as reader, pytest.raises(ArchiveFormatError, match="larger than 10"):
        reader.read_small("proof.json")


def test_an_encrypted_member_is_refused(tmp_path: Path) -> None:
    data = bytearray(archive_bytes(b"a\n"))
    # The general purpose flag of the first member, in its local and central headers.
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.index(header) + (6 if header == b"PK\x03\x04" else 8)
        data[at] |= 1
    path = tmp_path / "a.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveFormatError, match="encrypted"):
        ArchiveReader(path)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"just text\n")
    with pytest.raises(ArchiveFormatError, match="not a complete ZIP file"):
        ArchiveReader(path)


# -- constant memory ---------------------------------------------------------------------------


SIGNER = notes.Signer("log.example/acme", bytes(range(32)))


def body(seq: int) -> bytes:
    return (
        b'{"data":{"n":%d,"pad":"%s"},"id":"e%d","received_at":"2026-01-01T00:00:00.000000Z",'
        b'"seq":%d,"tenant":"acme","time":"2026-01-01T00:00:00.000000Z","type":"t"}'
        % (seq, b"x" * 80, seq, seq)
    )


def bodies(n: int) -> Iterator[bytes]:
    return (body(seq) for seq in range(n))


def large_archive(path: Path, n: int) -> int:
    """An archive of ``n`` made-up events of a log of exactly those events; its events'
    uncompressed size."""
    tree = CompactRange()
    digest = hashlib.sha256()
    size = 0
    batch: list[bytes] = []
    for line in bodies(n):
        digest.update(line + b"\n")
        size += len(line) + 1
        batch.append(leaf_hash(line))
        if len(batch) == 4096:
            tree, _ = tree.grow(batch)
            batch.clear()
    tree, _ = tree.grow(batch)
    note = checkpoints.sign(checkpoints.Checkpoint(SIGNER.name, n, tree.root), SIGNER)
    manifest = dataclasses.replace(
        MANIFEST,
        first_seq=0,
        end_seq=n,
        events=n,
        events_sha256=digest.hexdigest(),
        checkpoint_size=n,
        root_hash=tree.root,
    )
    with path.open("wb") as out:
        writer = ArchiveWriter(out, manifest)
        for start in range(0, n, 5000):
            writer.add_events(body(seq) for seq in range(start, min(n, start + 5000)))
        writer.finish(note, Proof((), ()))
    return size


def peak_of_check(path: Path) -> int:
    tracemalloc.start()
    try:
        report = check_archive(path, SIGNER.verifier)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.findings == []
    return peak


def test_checking_takes_the_same_memory_for_four_times_the_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_format, "CHUNK", 64 << 10)
    small = large_archive(tmp_path / "small.zip", 10_000)
    large = large_archive(tmp_path / "large.zip", 40_000)
    assert large > 4 * small - 1000
    assert large > 8_000_000
    small_peak = peak_of_check(tmp_path / "small.zip")
    large_peak = peak_of_check(tmp_path / "large.zip")
    assert large_peak < 2_000_000, large_peak
    assert large_peak < small_peak * 1.5 + 200_000, (small_peak, large_peak)
