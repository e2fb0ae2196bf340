"""Making archives from a store: what they hold, byte for byte and hash for hash, held to a
reference computed from the events alone; the range a time or seq gives; and the refusals."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import orjson
import pytest

from archive.logs import TENANT, Log, event_lines, manifest_of, members, new_log
from auditlog.archive import ArchiveError, make
from auditlog.archive.check import check_archive
from auditlog.archive.format import CHECKPOINT, EVENTS, MEMBERS, PROOF
from auditlog.integrity import proof
from auditlog.integrity.compact import perfect_subtrees
from auditlog.model import times
from auditlog.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def prefix_reference(leaves: list[bytes], first: int) -> list[str]:
    subtree = proof.leaves_subtree_hash(leaves)
    return [b64(subtree(start, end)) for start, end in perfect_subtrees(first)]


async def check_known_answer(log: Log, path: Path, first: int, end: int, size: int) -> None:
    """The archive at ``path`` is exactly what the format says for seqs [first, end) and the
    checkpoint of ``size``, computed here from the events' own leaf hashes."""
    leaves = log.leaves[TENANT]
    checkpoint = await log.store.checkpoint_at_least(TENANT, end)
    assert checkpoint is not None
    assert checkpoint.size == size
    content = members(path)
    assert list(content) == list(MEMBERS)
    events = b"".join(body + b"\n" for body in log.bodies[TENANT][first:end])
    assert content[EVENTS] == events
    assert content[CHECKPOINT] == checkpoint.note.encode()
    assert orjson.loads(content[PROOF]) == {
        "prefix": prefix_reference(leaves, first),
        "consistency": [b64(h) for h in proof.consistency_of_leaves(end, leaves[:size])],
    }
    manifest = manifest_of(path)
    created_at = manifest.pop("created_at")
    times.parse_rfc3339(created_at)
    assert manifest == {
        "format": "auditlog-archive/1",
        "tenant": TENANT,
        "origin": f"log.example/{TENANT}",
        "first_seq": first,
        "end_seq": end,
        "events": end - first,
        "events_sha256": hashlib.sha256(events).hexdigest(),
        "checkpoint_size": size,
        "root_hash": b64(proof.root_of_leaves(leaves[:size])),
        "created_by": "cli:test",
    }
    with pytest.raises(KeyError):
        manifest["no such field"]
    report = check_archive(path, log.key.verifier(TENANT))
    assert report.findings == []
    assert report.events == end - first
    assert report.checkpoint is not None
    assert report.checkpoint.size == size


async def test_an_archive_from_seq_0_below_the_checkpoint_size(tmp_path: Path) -> None:
    log = await new_log(5, 7, 20)  # checkpoints of size 5, 12 and 32
    record = await log.archive(tmp_path / "a.zip", through_seq=9)
    await check_known_answer(log, tmp_path / "a.zip", 0, 10, 12)
    data = (tmp_path / "a.zip").read_bytes()
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert (record.first_seq, record.end_seq, record.checkpoint_size) == (0, 10, 12)
    assert record.location == str(tmp_path / "a.zip")
    assert record.created_by == "cli:test"
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]  # no temporary file left


async def test_an_archive_up_to_the_checkpoint_size_has_an_empty_consistency_proof(
    tmp_path: Path,
) -> None:
    log = await new_log(5, 7, 20)
    await log.archive(tmp_path / "a.zip", through_seq=11)
    await check_known_answer(log, tmp_path / "a.zip", 0, 12, 12)
    assert orjson.loads(members(tmp_path / "a.zip")[PROOF])["consistency"] == []


async def test_an_archive_from_a_pruned_horizon_carries_the_prefix(tmp_path: Path) -> None:
    log = await new_log(5, 7, 20)
    await log.prune(7)
    record = await log.archive(tmp_path / "a.zip", through_seq=20)
    assert (record.first_seq, record.end_seq, record.checkpoint_size) == (7, 21, 32)
    await check_known_answer(log, tmp_path / "a.zip", 7, 21, 32)
    assert len(orjson.loads(members(tmp_path / "a.zip")[PROOF])["prefix"]) == 3  # 4 + 2 + 1


async def test_every_horizon_and_end_gives_an_archive_that_checks(tmp_path: Path) -> None:
    log = await new_log(1, 2, 5, 8, 13, 11)  # checkpoints of size 1, 3, 8, 16, 29 and 40
    for horizon in (0, 1, 2, 3, 4, 7, 8, 9, 16, 31):
        if horizon:
            await log.prune(horizon)
        for end in sorted({horizon + 1, horizon + 2, 16, 29, 33, 40}):
            if end <= horizon:
                continue
            path = tmp_path / f"{horizon}-{end}.zip"
            await log.archive(path, through_seq=end - 1)
            checkpoint = await log.store.checkpoint_at_least(TENANT, end)
            assert checkpoint is not None
            await check_known_answer(log, path, horizon, end, checkpoint.size)


async def test_events_are_streamed_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(make, "BATCH", 3)
    log = await new_log(10, 10)
    await log.prune(2)
    await log.archive(tmp_path / "a.zip", through_seq=16)
    await check_known_answer(log, tmp_path / "a.zip", 2, 17, 20)


# -- the range ---------------------------------------------------------------------------------


async def timed_log(monkeypatch: pytest.MonkeyPatch, *batches: tuple[int, int]) -> Log:
    """A log whose batches of events are received at given seconds: (count, second)."""
    log = Log()
    for n, second in batches:
        monkeypatch.setattr(times, "now_us", lambda s=second: s * 1_000_000)
        await log.add(n)
    monkeypatch.undo()
    return log


@pytest.mark.parametrize(
    ("before", "end"),
    [
        (1001, 4),  # after the first batch
        (2000, 4),  # received at exactly that time is not before it
        (2000.000001, 9),
        (2999, 9),
        (4000, 15),
        (99_999, 15),
    ],
)
async def test_before_a_time_archives_through_the_last_event_received_before_it(
    monkeypatch: pytest.MonkeyPatch, before: float, end: int
) -> None:
    log = await timed_log(monkeypatch, (4, 1000), (5, 2000), (6, 3000))
    plan = await make.plan(log.store, TENANT, before_us=round(before * 1_000_000))
    assert (plan.first_seq, plan.end_seq) == (0, end)
    assert plan.checkpoint.size >= end


async def test_before_a_time_starts_from_the_horizon(monkeypatch: pytest.MonkeyPatch) -> None:
    log = await timed_log(monkeypatch, (4, 1000), (5, 2000), (6, 3000))
    await log.prune(6)
    plan = await make.plan(log.store, TENANT, before_us=2500 * 1_000_000)
    assert (plan.first_seq, plan.end_seq, plan.events) == (6, 9, 3)
    with pytest.raises(ArchiveError, match=r"no kept event .* received before .*begins at seq 6"):
        await make.plan(log.store, TENANT, before_us=1500 * 1_000_000)


async def test_nothing_received_before_the_time_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = await timed_log(monkeypatch, (4, 1000))
    with pytest.raises(ArchiveError, match="no event of tenant acme was received before"):
        await make.plan(log.store, TENANT, before_us=999 * 1_000_000)


async def test_a_range_no_checkpoint_covers_yet_is_refused(tmp_path: Path) -> None:
    log = await new_log(5)
    await log.add(3, sign=False)
    assert (await make.plan(log.store, TENANT, through_seq=4)).checkpoint.size == 5
    with pytest.raises(ArchiveError, match=r"not yet covered .*latest is of size 5"):
        await make.plan(log.store, TENANT, through_seq=5)
    with pytest.raises(ArchiveError, match="not yet covered"):
        await make.plan(log.store, TENANT, before_us=times.now_us() + 10**9)


async def test_a_seq_beyond_the_log_or_below_the_horizon_is_refused() -> None:
    log = await new_log(5, 5)
    with pytest.raises(ArchiveError, match=r"holds seq 0\.\.9; there is no seq 10"):
        await make.plan(log.store, TENANT, through_seq=10)
    await log.prune(4)
    with pytest.raises(ArchiveError, match="seq 3 of tenant acme is pruned already"):
        await make.plan(log.store, TENANT, through_seq=3)
    assert (await make.plan(log.store, TENANT, through_seq=4)).events == 1
    with pytest.raises(ArchiveError, match="tenant nobody has no events"):
        await make.plan(log.store, "nobody", through_seq=0)


async def test_plan_takes_a_seq_or_a_time() -> None:
    log = await new_log(5)
    with pytest.raises(ValueError, match="exactly one"):
        await make.plan(log.store, TENANT)
    with pytest.raises(ValueError, match="exactly one"):
        await make.plan(log.store, TENANT, through_seq=1, before_us=1)


# -- putting the file in place -----------------------------------------------------------------


async def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    log = await new_log(5, 7)
    target = tmp_path / "a.zip"
    target.write_bytes(b"precious")
    with pytest.raises(ArchiveError, match="exists; --force replaces it"):
        await log.archive(target, through_seq=3)
    assert target.read_bytes() == b"precious"
    record = await log.archive(target, through_seq=3, force=True)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == record.sha256
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]


async def test_a_file_made_meanwhile_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await new_log(5)
    target = tmp_path / "a.zip"
    written = make.write

    async def write_then_race(*args: object, **kwargs: object) -> object:
        manifest = await written(*args, **kwargs)  # type: ignore[arg-type]
        target.write_bytes(b"someone else's")
        return manifest

    monkeypatch.setattr(make, "write", write_then_race)
    with pytest.raises(ArchiveError, match="exists"):
        await log.archive(target, through_seq=3)
    assert target.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]


class _Damaged(MemoryStore):
    """A store whose event of seq 3 reads, once ``damaged``, with other bytes than the tree
    committed to."""

    damaged = False

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await super().read_leaves(tenant, start, limit)
        if not self.damaged:
            return rows
        return [(s, b.replace(b'"n":3', b'"n":4') if s == 3 else b) for s, b in rows]


async def test_a_written_archive_that_fails_its_check_is_not_put_in_place(
    tmp_path: Path,
) -> None:
    store = _Damaged()
    log = Log(store=store)
    await log.add(8)
    store.damaged = True
    with pytest.raises(ArchiveError, match=r"does not pass its check: .*mismatch"):
        await log.archive(tmp_path / "a.zip", through_seq=6)
    assert os.listdir(tmp_path) == []


async def test_the_events_are_the_lines_of_the_events_member(tmp_path: Path) -> None:
    log = await new_log(3)
    await log.archive(tmp_path / "a.zip", through_seq=2)
    assert event_lines(tmp_path / "a.zip") == log.bodies[TENANT]
    assert [orjson.loads(line)["seq"] for line in event_lines(tmp_path / "a.zip")] == [0, 1, 2]
