"""``auditlog archive``, ``auditlog archive query`` and ``auditlog verify --archive`` on a
SQLite store in a temporary directory, run in this process through ``auditlog.cli.main``."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from archive.logs import TENANT, Log, event_lines, members, rezip
from auditlog import config
from auditlog.archive.format import EVENTS
from auditlog.cli.main import main
from auditlog.model import times
from auditlog.model.query import parse_query
from auditlog.model.retention import ArchiveRecord
from auditlog.storage.sqlite.store import SQLiteStore


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)


@pytest.fixture(autouse=True)
def _operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-anna")


def with_log(data: Path, act: Callable[[Log], Any]) -> Any:
    """Run ``act`` on the log of the SQLite store in ``data``, as the service would see it."""

    async def go() -> Any:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            return await act(Log(store=store, origin="auditlog"))
        finally:
            await store.close()

    data.mkdir(exist_ok=True)
    return asyncio.run(go())


def build(data: Path, *batches: int, prune: int = 0, unsigned: int = 0) -> None:
    """Commit and integrate ``batches`` of events of tenant acme, then prune its log to
    ``prune`` and commit ``unsigned`` events that no checkpoint covers."""

    async def act(log: Log) -> None:
        for n in batches:
            await log.add(n)
        if prune:
            await log.prune(prune)
        if unsigned:
            await log.add(unsigned, sign=False)

    with_log(data, act)


def vkey(data: Path, tenant: str = TENANT) -> str:
    async def act(log: Log) -> str:
        await log.key.load()
        return log.key.verifier(tenant).vkey

    result: str = with_log(data, act)
    return result


def archives(data: Path) -> list[ArchiveRecord]:
    async def act(log: Log) -> list[ArchiveRecord]:
        return await log.store.list_archives(TENANT)

    result: list[ArchiveRecord] = with_log(data, act)
    return result


def records(data: Path, type_: str) -> list[dict[str, Any]]:
    async def act(log: Log) -> list[dict[str, Any]]:
        query, _ = parse_query([("type", type_), ("limit", "1000")])
        page = await log.store.query(TENANT, query)
        return [orjson.loads(body) for body in page.bodies]

    result: list[dict[str, Any]] = with_log(data, act)
    return result


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def archive(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "archive", *argv, "--data", str(data))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


# -- auditlog archive --------------------------------------------------------------------------


def test_an_archive_is_written_recorded_and_verified(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    build(data, 5, 7, 20)
    out_file = tmp_path / "acme-0-9.zip"
    code, out, err = archive(
        capsys, data, "--tenant", "acme", "--through-seq", "9", "-o", str(out_file)
    )
    assert (code, err) == (0, "")
    sha = hashlib.sha256(out_file.read_bytes()).hexdigest()
    assert out == (
        f"wrote {out_file}: tenant acme, seq 0..9 (10 events), checkpoint of size 12\n"
        f"sha256 {sha}\n"
    )
    [record] = archives(data)
    assert (record.first_seq, record.end_seq, record.checkpoint_size) == (0, 10, 12)
    assert (record.sha256, record.location, record.created_by) == (
        sha,
        str(out_file),
        "cli:ops-anna",
    )
    [created] = records(data, "auditlog.archive.created")
    assert created["actor"] == {"id": "cli:ops-anna", "type": "operator"}
    assert created["source"] == "auditlog"
    assert created["data"] == {
        "first_seq": 0,
        "end_seq": 10,
        "events": 10,
        "checkpoint_size": 12,
        "sha256": sha,
        "location": str(out_file),
    }

    code, out, err = run(capsys, "verify", "--archive", str(out_file), "--public-key", vkey(data))
    assert (code, err) == (0, "")
    assert out == (
        f"archive {out_file}: tenant acme, seq 0..9 (10 events), checkpoint of size 12: intact\n"
    )


def test_an_archive_before_a_time_and_after_a_prune(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    build(data, 5, 7, 20, prune=7)
    later = times.format_us(times.now_us() + 3_600_000_000)
    out_file = tmp_path / "a.zip"
    code, out, err = archive(
        capsys, data, "--tenant", "acme", "--before", later, "-o", str(out_file)
    )
    assert (code, err) == (0, "")
    assert "tenant acme, seq 7..31 (25 events), checkpoint of size 32" in out
    code, out, _ = run(capsys, "verify", "--archive", str(out_file), "--public-key", vkey(data))
    assert code == 0
    assert out.endswith("seq 7..31 (25 events), checkpoint of size 32: intact\n")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_a_relative_output_is_recorded_by_its_absolute_path(
    capsys: pytest.CaptureFixture[str], data: Path, workdir: Path
) -> None:
    build(data, 4)
    code, out, _ = archive(capsys, data, "--tenant", "acme", "--through-seq", "3", "-o", "a.zip")
    assert code == 0
    assert out.startswith(f"wrote {workdir / 'a.zip'}: ")
    assert archives(data)[0].location == str(workdir / "a.zip")


def test_an_existing_file_is_kept_unless_forced(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    build(data, 4)
    out_file = tmp_path / "a.zip"
    out_file.write_text("precious")
    argv = ("--tenant", "acme", "--through-seq", "3", "-o", str(out_file))
    code, out, err = archive(capsys, data, *argv)
    assert (code, out) == (1, "")
    assert err == f"auditlog: archive: {out_file} exists; --force replaces it\n"
    assert out_file.read_text() == "precious"
    assert archives(data) == []
    assert records(data, "auditlog.archive.created") == []
    code, _, _ = archive(capsys, data, *argv, "--force")
    assert code == 0
    assert event_lines(out_file)[0].startswith(b"{")


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        ({}, ("--through-seq", "4"), "holds seq 0..3; there is no seq 4"),
        ({"unsigned": 2}, ("--through-seq", "4"), "not yet covered by a signed checkpoint"),
        ({"prune": 2}, ("--through-seq", "1"), "seq 1 of tenant acme is pruned already"),
        ({}, ("--before", "2000-01-01T00:00:00Z"), "no event of tenant acme was received"),
    ],
)
def test_a_range_that_cannot_be_archived_is_refused(
    capsys: pytest.CaptureFixture[str],
    data: Path,
    tmp_path: Path,
    setup: dict[str, int],
    argv: tuple[str, ...],
    message: str,
) -> None:
    build(data, 4, **setup)
    code, out, err = archive(capsys, data, "--tenant", "acme", *argv, "-o", str(tmp_path / "a"))
    assert (code, out) == (1, "")
    assert err.startswith("auditlog: archive: ")
    assert message in err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--through-seq", "3", "-o", "a.zip"), "needs --tenant"),
        (("--tenant", "acme", "--through-seq", "3"), "needs -o"),
        (("--tenant", "acme", "-o", "a.zip"), "needs --before or --through-seq"),
        (("--tenant", "a b", "--through-seq", "3", "-o", "a.zip"), "--tenant: tenant 'a b'"),
        (("--tenant", "acme", "--through-seq", "-1", "-o", "a.zip"), "is negative"),
        (("--tenant", "acme", "--before", "soon", "-o", "a.zip"), "--before: 'soon' is not"),
    ],
)
def test_bad_usage_exits_2(
    capsys: pytest.CaptureFixture[str], data: Path, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = archive(capsys, data, *argv)
    assert (code, out) == (2, "")
    assert message in err
    assert "usage: auditlog archive --tenant T" in err
    assert not data.exists()  # no store was opened


def test_a_seq_and_a_time_together_are_refused(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        archive(capsys, data, "--tenant", "acme", "--before", "x", "--through-seq", "3")
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# -- auditlog verify --archive -----------------------------------------------------------------


@pytest.fixture
def made(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    build(data, 5, 7, 20, prune=3)
    path = tmp_path / "made.zip"
    code, _, _ = archive(capsys, data, "--tenant", "acme", "--through-seq", "17", "-o", str(path))
    assert code == 0
    return path


def verify(capsys: pytest.CaptureFixture[str], path: Path, key: str) -> tuple[int, str, str]:
    return run(capsys, "verify", "--archive", str(path), "--public-key", key)


def test_a_tampered_archive_fails_naming_the_first_bad_seq(
    capsys: pytest.CaptureFixture[str], made: Path, data: Path, tmp_path: Path
) -> None:
    lines = event_lines(made)
    del lines[5]
    events = b"".join(line + b"\n" for line in lines)
    path = rezip(made, tmp_path / "bad.zip", events=events, fix_manifest=True)
    code, out, err = verify(capsys, path, vkey(data))
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == f"archive {path}: tenant acme, seq 3..17 (14 events), " + (
        "checkpoint of size 32"
    )
    assert "tenant acme: seq 8: removed: seq 8 missing" in out
    assert out.splitlines()[-1] == "FAILED: 2 problems; the first bad seq 8 of tenant acme: removed"


def test_a_changed_event_fails_as_a_mismatch(
    capsys: pytest.CaptureFixture[str], made: Path, data: Path, tmp_path: Path
) -> None:
    events = members(made)[EVENTS].replace(b'"n":9,', b'"n":90,')
    path = rezip(made, tmp_path / "bad.zip", events=events, fix_manifest=True)
    code, out, _ = verify(capsys, path, vkey(data))
    assert code == 1
    assert out.splitlines()[-1] == "FAILED: 1 problem; the first bad seq 3 of tenant acme: mismatch"


def test_a_truncated_archive_fails(
    capsys: pytest.CaptureFixture[str], made: Path, data: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cut.zip"
    path.write_bytes(made.read_bytes()[:-100])
    code, out, _ = verify(capsys, path, vkey(data))
    assert code == 1
    assert "?: checkpoint: corrupt: not a complete ZIP file" in out
    assert out.splitlines()[-1] == "FAILED: 1 problem; the first problem of tenant ?: corrupt"


def test_another_logs_key_fails(capsys: pytest.CaptureFixture[str], made: Path, data: Path) -> None:
    code, out, _ = verify(capsys, made, vkey(data, "other"))
    assert code == 1
    assert out.splitlines()[-1] == "FAILED: 1 problem; the first problem of tenant acme: foreign"


def test_the_key_may_be_given_in_a_file(
    capsys: pytest.CaptureFixture[str], made: Path, data: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "acme.vkey"
    key_file.write_text(vkey(data) + "\n")
    code, out, _ = verify(capsys, made, str(key_file))
    assert code == 0
    assert out.endswith(": intact\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--public-key", "not a key"), "--public-key: expected the vkey"),
        ((), "verify --archive needs --public-key"),
        (("--public-key", "K", "--url", "http://x"), "--archive and --url"),
    ],
)
def test_a_check_that_cannot_be_made_exits_2(
    capsys: pytest.CaptureFixture[str], made: Path, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, "verify", "--archive", str(made), *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_a_missing_archive_exits_2(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    build(data, 1)
    code, out, err = verify(capsys, tmp_path / "absent.zip", vkey(data))
    assert (code, out) == (2, "")
    assert err == f"auditlog: verify: {tmp_path / 'absent.zip'}: No such file or directory\n"


# -- auditlog archive query --------------------------------------------------------------------


def query(capsys: pytest.CaptureFixture[str], path: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "archive", "query", str(path), *argv)


def expected(path: Path, keep: Callable[[dict[str, Any]], bool]) -> str:
    lines = [line for line in event_lines(path) if keep(orjson.loads(line))]
    return "".join(line.decode() + "\n" for line in lines)


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ((), lambda e: True),
        (("type=t.odd",), lambda e: e["type"] == "t.odd"),
        (("actor=user-1",), lambda e: e["actor"]["id"] == "user-1"),
        (("data.n[gt]=12",), lambda e: e["data"]["n"] > 12),
        (("data.n[gte]=5", "data.n[lt]=9", "type=t.even"), lambda e: e["data"]["n"] in (6, 8)),
        (("q=word11",), lambda e: e["data"]["n"] == 11),
        (("type=t.odd", "type=t.even", "seq[in]=4,5,99"), lambda e: e["seq"] in (4, 5)),
        (("until=2000-01-01T00:00:00Z",), lambda e: False),
    ],
)
def test_query_prints_the_matching_events_byte_for_byte(
    capsys: pytest.CaptureFixture[str],
    made: Path,
    filters: tuple[str, ...],
    keep: Callable[[dict[str, Any]], bool],
) -> None:
    code, out, err = query(capsys, made, *filters)
    assert (code, err) == (0, "")
    assert out == expected(made, keep)


def test_query_stops_at_the_limit(capsys: pytest.CaptureFixture[str], made: Path) -> None:
    code, out, _ = query(capsys, made, "type=t.odd", "--limit", "2")
    assert code == 0
    assert [orjson.loads(line)["seq"] for line in out.splitlines()] == [3, 5]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("nonsense",), "filter 'nonsense' is not NAME=VALUE"),
        (("limit=5",), "limit is set by the command"),
        (("colour=red",), "unknown parameter 'colour'"),
        (("data.n[near]=3",), "unknown operator 'near'"),
        (("--limit", "0"), "--limit 0 is not a positive number"),
    ],
)
def test_query_refuses_bad_filters(
    capsys: pytest.CaptureFixture[str], made: Path, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = query(capsys, made, *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_query_of_what_is_not_an_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = query(capsys, tmp_path / "absent.zip")
    assert code == 2
    assert "No such file or directory" in err
    (tmp_path / "text.zip").write_text("hello")
    code, _, err = query(capsys, tmp_path / "text.zip")
    assert code == 1
    assert "not a complete ZIP file" in err


def test_query_stops_at_a_line_that_is_no_event(
    capsys: pytest.CaptureFixture[str], made: Path, tmp_path: Path
) -> None:
    lines = event_lines(made)
    lines[2] = b"garbage"
    path = rezip(made, tmp_path / "bad.zip", events=b"".join(x + b"\n" for x in lines))
    code, out, err = query(capsys, path)
    assert code == 1
    assert len(out.splitlines()) == 2
    assert "the line of seq 5 is not a stored event" in err


def test_the_help_shows_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["archive", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^usage: auditlog archive --tenant T", out, re.M)
    assert "auditlog archive query FILE [FILTER ...] [--limit N]" in out
    with pytest.raises(SystemExit):
        main(["archive", "query", "--help"])
    assert "does not check the archive" in capsys.readouterr().out
