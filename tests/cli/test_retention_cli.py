"""``auditlog retention set|show`` and ``auditlog hold set|release``: each tenant's retention
policy and legal hold, and the records of their changes in the tenant's own log."""

from __future__ import annotations

import asyncio
import getpass
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditlog import config
from auditlog.cli.main import main
from auditlog.model.query import parse_query
from auditlog.model.retention import Hold, Retention
from auditlog.storage.sqlite.store import SQLiteStore

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)


@pytest.fixture(autouse=True)
def operator(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The local operator running the commands: the actor of their records."""
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-anna")
    return {"id": "cli:ops-anna", "type": "operator"}


def run(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> tuple[int, str, str]:
    """``auditlog ARGV --data DATA`` in this process: exit code, stdout and stderr."""
    code = main([*argv, "--data", str(data)])
    out, err = capsys.readouterr()
    return code, out, err


def stored(data: Path, tenant: str = "acme") -> tuple[Retention | None, Hold | None]:
    async def read() -> tuple[Retention | None, Hold | None]:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            return await store.get_retention(tenant), await store.get_hold(tenant)
        finally:
            await store.close()

    return asyncio.run(read())


def log_of(data: Path, tenant: str) -> list[dict[str, Any]]:
    """The tenant's records, without what the server fills in (id, times, seq)."""

    async def read() -> list[bytes]:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            query, _ = parse_query([("order", "asc"), ("limit", "1000")])
            return list((await store.query(tenant, query)).bodies)
        finally:
            await store.close()

    skip = ("id", "time", "seq", "received_at")
    return [
        {k: v for k, v in orjson.loads(b).items() if k not in skip} for b in asyncio.run(read())
    ]


def recorded(type_: str, data: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    return {
        "type": type_,
        "actor": {"id": "cli:ops-anna", "type": "operator"},
        "source": "auditlog",
        "outcome": "success",
        "data": data,
        "tenant": tenant,
    }


def test_set_stores_the_policy_and_records_it_in_the_tenants_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, tmp_path, "retention", "set", "--tenant", "acme", "--keep", "400d")
    assert (code, err) == (0, "")
    assert out.startswith("retention of tenant acme: keep 400d (was none)\n")
    policy, hold = stored(tmp_path)
    assert policy is not None
    assert hold is None
    assert (policy.keep_seconds, policy.updated_by) == (400 * 86_400, "cli:ops-anna")
    assert run(capsys, tmp_path, "retention", "set", "--tenant", "acme", "--keep", "none")[0] == 0
    policy, _ = stored(tmp_path)
    assert policy is not None
    assert policy.keep_seconds is None
    assert log_of(tmp_path, "acme") == [
        recorded(
            "auditlog.retention.set",
            {"keep": "400d", "keep_seconds": 34_560_000, "previous": "none"},
        ),
        recorded(
            "auditlog.retention.set", {"keep": "none", "keep_seconds": None, "previous": "400d"}
        ),
    ]
    assert log_of(tmp_path, "globex") == []


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--tenant", "acme", "--keep", "400"], "--keep"),
        (["--tenant", "acme", "--keep", "2w"], "s, m, h or d"),
        (["--tenant", "acme", "--keep", "0d"], "--keep"),
        (["--tenant", "a b", "--keep", "1d"], "--tenant"),
    ],
)
def test_bad_arguments_exit_2_and_change_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], named: str
) -> None:
    code, out, err = run(capsys, tmp_path, "retention", "set", *argv)
    assert (code, out) == (2, "")
    assert named in err
    assert stored(tmp_path) == (None, None)
    assert log_of(tmp_path, "acme") == []


def test_show_lists_policies_and_holds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, tmp_path, "retention", "show") == (0, "", "")
    run(capsys, tmp_path, "retention", "set", "--tenant", "globex", "--keep", "12h")
    run(capsys, tmp_path, "hold", "set", "--tenant", "acme", "--reason", "case 117")
    code, out, err = run(capsys, tmp_path, "retention", "show")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        rf"acme\tkeep none\tnever set\theld since {STAMP} by cli:ops-anna: case 117", lines[0]
    )
    assert re.fullmatch(rf"globex\tkeep 12h\tset {STAMP} by cli:ops-anna\tno hold", lines[1])
    code, out, _ = run(capsys, tmp_path, "retention", "show", "--tenant", "globex")
    assert out.splitlines() == lines[1:]
    code, out, _ = run(capsys, tmp_path, "retention", "show", "--tenant", "initech")
    assert (code, out) == (0, "initech\tkeep none\tnever set\tno hold\n")


def test_a_hold_is_set_and_released_each_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, tmp_path, "hold", "set", "--tenant", "acme", "--reason", "case 117"
    )
    assert (code, err) == (0, "")
    assert re.fullmatch(rf"tenant acme is held since {STAMP} by cli:ops-anna: case 117\n", out)
    _, hold = stored(tmp_path)
    assert hold is not None
    assert (hold.reason, hold.set_by) == ("case 117", "cli:ops-anna")
    code, out, err = run(capsys, tmp_path, "hold", "release", "--tenant", "acme")
    assert (code, err) == (0, "")
    assert out == "released the legal hold on tenant acme (set for: case 117)\n"
    assert stored(tmp_path) == (None, None)
    [held, released] = log_of(tmp_path, "acme")
    assert held == recorded("auditlog.hold.set", {"reason": "case 117"})
    set_at = released["data"].pop("set_at")
    assert re.fullmatch(STAMP, set_at)
    assert released == recorded(
        "auditlog.hold.released", {"reason": "case 117", "set_by": "cli:ops-anna"}
    )


def test_a_second_hold_changes_nothing_and_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, tmp_path, "hold", "set", "--tenant", "acme", "--reason", "first")[0] == 0
    code, out, err = run(capsys, tmp_path, "hold", "set", "--tenant", "acme", "--reason", "second")
    assert (code, out) == (1, "")
    assert "already held since" in err
    assert "first" in err
    _, hold = stored(tmp_path)
    assert hold is not None
    assert hold.reason == "first"
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.hold.set"]


def test_releasing_no_hold_exits_1_and_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, tmp_path, "hold", "release", "--tenant", "acme")
    assert (code, out) == (1, "")
    assert "has no legal hold" in err
    assert log_of(tmp_path, "acme") == []


@pytest.mark.parametrize(("reason", "named"), [("", "--reason"), ("a\nb", "--reason")])
def test_a_bad_reason_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reason: str, named: str
) -> None:
    code, out, err = run(capsys, tmp_path, "hold", "set", "--tenant", "acme", "--reason", reason)
    assert (code, out) == (2, "")
    assert named in err
    assert stored(tmp_path) == (None, None)
