"""``auditlog prune`` end to end, as an operator runs it, on SQLite and PostgreSQL: what is due
stays until an archive covers it or ``--no-archive`` is given, a hold refuses, archives and
prunes follow each other, and afterwards ``auditlog verify`` (the log, and each archive)
passes and the tenant's log holds a record of each prune."""

from __future__ import annotations

import asyncio
import getpass
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import pgtest
from archive.logs import Log
from auditlog import config
from auditlog.cli.main import main
from auditlog.model.query import parse_query
from auditlog.storage.base import Store
from auditlog.storage.factory import open_store

KEEP = 2  # seconds


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-anna")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield pgtest.private_url()


def on_store(url: str, act: Any) -> Any:
    async def go() -> Any:
        store: Store = open_store(config.load({"store": url}, config_file=None))
        await store.open()
        try:
            return await act(Log(store=store, origin="auditlog"))
        finally:
            await store.close()

    return asyncio.run(go())


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--store", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_operator_archives_and_prunes_and_the_log_still_verifies(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    async def old(log: Log) -> str:
        await log.add(30)
        return log.key.verifier("acme").vkey

    vkey = on_store(url, old)
    assert run(capsys, url, "retention", "set", "--tenant", "acme", "--keep", f"{KEEP}s")[0] == 0
    time.sleep(KEEP + 0.3)  # seq 0..30 (the retention record too) are due from now on

    async def new(log: Log) -> None:
        await log.add(5)  # received now: kept for KEEP seconds more

    on_store(url, new)
    code, out, _ = run(capsys, url, "prune", "--tenant", "acme")
    assert code == 1
    assert "seq 0..30 are due but no archive covers them" in out
    assert "--through-seq 30" in out

    assert run(capsys, url, "hold", "set", "--tenant", "acme", "--reason", "case 7")[0] == 0
    code, out, _ = run(capsys, url, "prune", "--tenant", "acme", "--no-archive")
    assert code == 1
    assert "a legal hold is set (case 7" in out
    assert run(capsys, url, "hold", "release", "--tenant", "acme")[0] == 0

    first = tmp_path / "acme-1.zip"
    assert (
        run(capsys, url, "archive", "--tenant", "acme", "--through-seq", "19", "-o", f"{first}")[0]
        == 0
    )
    code, out, _ = run(capsys, url, "prune", "--tenant", "acme")
    assert code == 1  # 20..30 are due too, and no archive holds them yet
    assert "pruned seq 0..19 (20 events)" in out

    second = tmp_path / "acme-2.zip"
    assert (
        run(capsys, url, "archive", "--tenant", "acme", "--through-seq", "30", "-o", str(second))[0]
        == 0
    )
    code, out, _ = run(capsys, url, "prune")
    assert code == 0, out
    assert "tenant acme: pruned seq 20..30 (11 events)" in out

    code, out, err = run(capsys, url, "verify")
    assert code == 0, out + err
    assert re.search(r"seq 0\.\.30 pruned", out), out
    for archive in (first, second):
        code = main(["verify", "--archive", str(archive), "--public-key", vkey])
        assert code == 0, capsys.readouterr()

    async def records(log: Log) -> list[dict[str, Any]]:
        query, _ = parse_query([("type", "auditlog.log.pruned"), ("order", "asc")])
        page = await log.store.query("acme", query)
        return [orjson.loads(b)["data"] for b in page.bodies]

    found = on_store(url, records)
    assert [(r["first_seq"], r["end_seq"], r["without_archive"]) for r in found] == [
        (0, 20, False),
        (20, 31, False),
    ]
    assert all(len(r["archives"]) == 1 for r in found)
