"""The offline check of an archive: an intact one passes with the log's key alone, and every
kind of tampering is caught and named, by the first bad seq where one can be named."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive.logs import TENANT, Log, event_lines, manifest_of, members, new_log, rezip
from auditlog.archive import format as archive_format
from auditlog.archive.check import ArchiveReport, check_archive
from auditlog.archive.format import CHECKPOINT, EVENTS, MANIFEST, MEMBERS, PROOF
from auditlog.integrity import note as notes
from auditlog.model.canonical import canonical_bytes


@dataclass
class Base:
    """An archive of seqs 3..17 of tenant acme (a pruned prefix of 3, the checkpoint of
    size 32), and what tampering with it needs."""

    path: Path
    log: Log
    verifier: notes.Verifier
    notes_by_size: dict[int, str]
    other_note: str
    other_vkey: str

    @property
    def lines(self) -> list[bytes]:
        return event_lines(self.path)

    @property
    def events(self) -> bytes:
        return members(self.path)[EVENTS]

    @property
    def proof(self) -> dict[str, list[str]]:
        value: dict[str, list[str]] = orjson.loads(members(self.path)[PROOF])
        return value


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    path = tmp_path_factory.mktemp("base") / "acme.zip"

    async def build() -> Base:
        log = await new_log(5, 7, 20, 8)  # checkpoints of size 5, 12, 32 and 40
        await log.add(6, "other")
        await log.prune(3)
        await log.archive(path, through_seq=17)
        by_size = {c.size: c.note for c in await log.store.list_checkpoints(TENANT)}
        other = await log.store.latest_checkpoint("other")
        assert other is not None
        return Base(
            path,
            log,
            log.key.verifier(TENANT),
            by_size,
            other.note,
            log.key.verifier("other").vkey,
        )

    return asyncio.run(build())


def check(path: Path, base: Base) -> ArchiveReport:
    return check_archive(path, base.verifier)


def kinds(report: ArchiveReport) -> list[tuple[int | None, str]]:
    return [(f.seq, f.kind) for f in report.findings]


def event_kinds(report: ArchiveReport) -> list[tuple[int | None, str]]:
    """The findings but the manifest's (whose count a forger left or changed)."""
    return [k for k in kinds(report) if k[1] != "manifest"]


def events_of(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def edited(line: bytes, **changes: object) -> bytes:
    event = orjson.loads(line)
    event.update(changes)
    return canonical_bytes(event)


def test_an_intact_archive_passes(base: Base) -> None:
    report = check(base.path, base)
    assert report.findings == []
    assert report.first is None
    assert report.manifest is not None
    assert (report.manifest.first_seq, report.manifest.end_seq) == (3, 18)
    assert report.events == 15
    assert report.checkpoint is not None
    assert report.checkpoint.size == 32
    assert report.tenant == TENANT


def test_the_raw_public_key_does_as_well_as_the_vkey(base: Base) -> None:
    assert check_archive(base.path, base.verifier.public_key).findings == []


# -- the events --------------------------------------------------------------------------------


@pytest.mark.parametrize("fix_manifest", [False, True])
def test_a_changed_event_is_a_mismatch_of_the_range(
    base: Base, tmp_path: Path, fix_manifest: bool
) -> None:
    lines = base.lines
    lines[7] = edited(lines[7], data={"n": 1000})
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=fix_manifest)
    report = check(path, base)
    expected = [(3, "mismatch")] if fix_manifest else [(None, "manifest"), (3, "mismatch")]
    assert kinds(report) == expected
    assert "seq 3..17" in report.findings[-1].detail


@pytest.mark.parametrize(
    ("drop", "first"),
    [(0, 3), (7, 10), (14, 17)],  # the first, one inside and the last event
)
def test_a_dropped_event_is_removed(base: Base, tmp_path: Path, drop: int, first: int) -> None:
    lines = base.lines
    del lines[drop]
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    report = check(path, base)
    assert report.first is not None
    assert (report.first.seq, report.first.kind) == (first, "removed")
    assert event_kinds(report) == [(first, "removed")]


def test_two_dropped_events_are_one_gap(base: Base, tmp_path: Path) -> None:
    lines = base.lines
    del lines[4:6]
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    report = check(path, base)
    assert event_kinds(report) == [(7, "removed")]
    assert "seq 7..8 missing" in report.findings[-1].detail


def test_two_swapped_events_are_moved(base: Base, tmp_path: Path) -> None:
    lines = base.lines
    lines[5], lines[6] = lines[6], lines[5]
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    assert kinds(check(path, base)) == [(8, "moved"), (9, "moved")]


def test_an_event_moved_far_is_named(base: Base, tmp_path: Path) -> None:
    lines = base.lines
    lines.insert(10, lines.pop(2))
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines))
    report = check(path, base)
    assert report.first is not None
    assert report.first.seq == 5


@pytest.mark.parametrize("claimed", [9999, 2])
def test_an_inserted_event_is_named(base: Base, tmp_path: Path, claimed: int) -> None:
    lines = base.lines
    lines.insert(4, edited(lines[4], seq=claimed, data={"forged": True}))
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    report = check(path, base)
    assert (7, "inserted") in kinds(report)
    assert report.first is not None
    assert report.first.seq == 7


def test_a_repeated_seq_is_named(base: Base, tmp_path: Path) -> None:
    lines = base.lines
    lines.insert(4, edited(lines[4], data={"forged": True}))  # says seq 7, as the next does
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    report = check(path, base)
    assert report.first is not None
    assert report.first.seq in (7, 8)
    assert report.first.kind == "inserted"


def test_an_event_added_at_the_end_is_inserted(base: Base, tmp_path: Path) -> None:
    lines = base.lines
    lines.append(edited(lines[-1], seq=18, data={"forged": True}))
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    assert event_kinds(check(path, base)) == [(18, "inserted")]


def test_another_tenants_event_is_foreign(base: Base, tmp_path: Path) -> None:
    lines = base.lines
    lines[9] = edited(lines[9], tenant="other")
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    assert kinds(check(path, base)) == [(12, "foreign")]


@pytest.mark.parametrize("line", [b"", b"not json", b"[1, 2]", b'{"seq": "12"}'])
def test_an_unreadable_line_is_named(base: Base, tmp_path: Path, line: bytes) -> None:
    lines = base.lines
    lines[9] = line
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    assert kinds(check(path, base)) == [(12, "unreadable")]


def test_a_last_line_cut_short_is_corrupt(base: Base, tmp_path: Path) -> None:
    events = base.events[:-10]
    path = rezip(base.path, tmp_path / "x.zip", events=events, fix_manifest=True)
    report = check(path, base)
    assert event_kinds(report) == [(17, "corrupt")]
    assert "does not end in a newline" in report.findings[-1].detail


# -- the checkpoint and the key ----------------------------------------------------------------


def test_another_tenants_checkpoint_is_foreign(base: Base, tmp_path: Path) -> None:
    path = rezip(base.path, tmp_path / "x.zip", checkpoint=base.other_note.encode())
    report = check(path, base)
    assert kinds(report) == [(None, "foreign")]
    assert "log.example/other" in report.findings[0].detail


@pytest.mark.parametrize("size", [12, 40])
def test_a_checkpoint_of_another_size_is_refused(base: Base, tmp_path: Path, size: int) -> None:
    note = base.notes_by_size[size].encode()
    path = rezip(base.path, tmp_path / "x.zip", checkpoint=note)
    report = check(path, base)
    assert kinds(report) == [(None, "checkpoint")]
    assert f"of size {size}; the manifest says 32" in report.findings[0].detail


def test_a_larger_checkpoint_without_its_proof_is_a_mismatch(base: Base, tmp_path: Path) -> None:
    manifest = manifest_of(base.path)
    manifest["checkpoint_size"] = 40
    note = base.notes_by_size[40]
    manifest["root_hash"] = note.split("\n")[2]
    path = rezip(
        base.path,
        tmp_path / "x.zip",
        checkpoint=note.encode(),
        manifest=orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n",
    )
    assert kinds(check(path, base)) == [(3, "mismatch")]


def test_a_forged_signature_is_refused(base: Base, tmp_path: Path) -> None:
    note = members(base.path)[CHECKPOINT].decode()
    text, _, line = note.rpartition("\n\u2014 ")
    name, signature = line.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    forged = f"{text}\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    path = rezip(base.path, tmp_path / "x.zip", checkpoint=forged.encode())
    report = check(path, base)
    assert kinds(report) == [(None, "signature")]
    assert "does not verify" in report.findings[0].detail


def test_a_checkpoint_signed_by_another_key_is_refused(base: Base, tmp_path: Path) -> None:
    note = members(base.path)[CHECKPOINT].decode()
    text = note.split("\n\n")[0] + "\n"
    forger = notes.Signer("log.example/acme", os.urandom(32))
    path = rezip(base.path, tmp_path / "x.zip", checkpoint=notes.sign(text, forger).encode())
    report = check(path, base)
    assert kinds(report) == [(None, "signature")]
    assert "no known key" in report.findings[0].detail


def test_the_key_of_another_log_is_foreign(base: Base) -> None:
    report = check_archive(base.path, notes.Verifier.from_vkey(base.other_vkey))
    assert kinds(report) == [(None, "foreign")]
    assert "the key given is of 'log.example/other'" in report.findings[0].detail


def test_a_checkpoint_that_is_not_a_note_is_named(base: Base, tmp_path: Path) -> None:
    path = rezip(base.path, tmp_path / "x.zip", checkpoint=b"\xff not a note")
    assert kinds(check(path, base)) == [(None, "checkpoint")]


# -- the proof ---------------------------------------------------------------------------------


def flip(hash_b64: str) -> str:
    raw = bytearray(base64.b64decode(hash_b64))
    raw[0] ^= 0x80
    return base64.b64encode(bytes(raw)).decode()


def proof_bytes(value: dict[str, list[str]]) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


@pytest.mark.parametrize(("part", "index"), [("prefix", 0), ("prefix", 1), ("consistency", 0)])
def test_a_changed_proof_hash_is_a_mismatch(
    base: Base, tmp_path: Path, part: str, index: int
) -> None:
    proof = base.proof
    proof[part][index] = flip(proof[part][index])
    path = rezip(base.path, tmp_path / "x.zip", proof=proof_bytes(proof))
    assert kinds(check(path, base)) == [(3, "mismatch")]


def test_a_prefix_of_the_wrong_length_is_named(base: Base, tmp_path: Path) -> None:
    proof = base.proof
    proof["prefix"].append(proof["prefix"][0])
    path = rezip(base.path, tmp_path / "x.zip", proof=proof_bytes(proof))
    report = check(path, base)
    assert kinds(report) == [(None, "proof")]
    assert "holds 2 hashes, not 3" in report.findings[0].detail


def test_a_proof_that_is_not_in_its_form_is_refused(base: Base, tmp_path: Path) -> None:
    data = members(base.path)[PROOF]
    path = rezip(base.path, tmp_path / "x.zip", proof=data.rstrip(b"\n"))
    assert kinds(check(path, base)) == [(None, "proof")]


# -- the manifest and the file -----------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("events", 14), ("events", 16)])
def test_a_wrong_count_in_the_manifest_is_named(
    base: Base, tmp_path: Path, field: str, value: int
) -> None:
    manifest = manifest_of(base.path)
    manifest[field] = value
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    path = rezip(base.path, tmp_path / "x.zip", manifest=data)
    report = check(path, base)
    assert kinds(report) == [(None, "manifest")]
    assert f"it says {value} events, but seq 3..17 are 15" in report.findings[0].detail


def test_a_wrong_range_in_the_manifest_is_caught(base: Base, tmp_path: Path) -> None:
    manifest = manifest_of(base.path)
    manifest["first_seq"], manifest["end_seq"] = 4, 19  # the same count, shifted
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    path = rezip(base.path, tmp_path / "x.zip", manifest=data)
    report = check(path, base)
    assert report.first is not None
    assert report.first.seq == 4


def test_a_manifest_of_another_format_is_refused(base: Base, tmp_path: Path) -> None:
    manifest = manifest_of(base.path)
    manifest["format"] = "auditlog-archive/2"
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    report = check(rezip(base.path, tmp_path / "x.zip", manifest=data), base)
    assert kinds(report) == [(None, "manifest")]
    assert "auditlog-archive/2" in report.findings[0].detail


def test_members_in_another_order_or_an_extra_member_are_refused(
    base: Base, tmp_path: Path
) -> None:
    order = (MANIFEST, CHECKPOINT, EVENTS, PROOF)
    report = check(rezip(base.path, tmp_path / "x.zip", order=order), base)
    assert kinds(report) == [(None, "corrupt")]
    assert report.tenant == "?"
    missing = check(rezip(base.path, tmp_path / "y.zip", order=MEMBERS[:3]), base)
    assert kinds(missing) == [(None, "corrupt")]


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -22, -1])
def test_a_truncated_file_is_corrupt(base: Base, tmp_path: Path, keep: float) -> None:
    data = base.path.read_bytes()
    length = int(len(data) * keep) if keep > 0 else len(data) + int(keep)
    path = tmp_path / "x.zip"
    path.write_bytes(data[:length])
    report = check(path, base)
    assert kinds(report) == [(None, "corrupt")]
    assert "not a complete ZIP file" in report.findings[0].detail


def test_damaged_compressed_events_are_corrupt(base: Base, tmp_path: Path) -> None:
    data = bytearray(base.path.read_bytes())
    start = data.index(b"events.ndjson") + len(b"events.ndjson") + 40
    for offset in range(start, start + 200, 7):
        damaged = bytearray(data)
        damaged[offset] ^= 0x55
        path = tmp_path / "x.zip"
        path.write_bytes(bytes(damaged))
        report = check(path, base)
        assert report.findings, offset
        assert any(f.kind == "corrupt" for f in report.findings), offset


def test_an_unreadable_file_raises(base: Base, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check(tmp_path / "absent.zip", base)


def test_findings_are_bounded(base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditlog.archive import check as check_module

    monkeypatch.setattr(check_module, "MAX_FINDINGS", 3)
    lines = [b"x"] * 10
    path = rezip(base.path, tmp_path / "x.zip", events=events_of(lines), fix_manifest=True)
    report = check(path, base)
    assert len(report.findings) == 3
    assert report.untold > 0


# -- any byte --------------------------------------------------------------------------------


@given(
    member=st.sampled_from(["events", "proof"]),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    value=st.integers(min_value=0, max_value=255),
    fix_manifest=st.booleans(),
)
def test_any_changed_byte_of_the_events_or_the_proof_fails(
    base: Base, member: str, where: float, value: int, fix_manifest: bool
) -> None:
    data = bytearray(members(base.path)[EVENTS if member == "events" else PROOF])
    index = int(where * len(data))
    if data[index] == value:
        value ^= 0xFF
    data[index] = value
    path = base.path.with_name("mutated.zip")
    if member == "events":
        rezip(base.path, path, fix_manifest=fix_manifest, events=bytes(data))
    else:
        rezip(base.path, path, fix_manifest=fix_manifest, proof=bytes(data))
    assert check(path, base).findings, (member, index, value)


def test_the_events_member_is_read_in_chunks(base: Base, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_format, "CHUNK", 7)
    assert check(base.path, base).findings == []
