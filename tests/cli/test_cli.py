"""The ``auditlog`` command line: ``keys create|list|revoke`` on a real store, and ``--version``."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditlog import __version__, config
from auditlog.cli.main import main
from auditlog.errors import StorageError, Unauthorized
from auditlog.model.credentials import Credential
from auditlog.model.query import parse_query
from auditlog.service import selfaudit
from auditlog.service.auth import ApiKeys
from auditlog.storage.sqlite.store import SQLiteStore

TOKEN = re.compile(r"alk_([a-z2-7]{16})_[A-Za-z0-9_-]{43}")


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read AUDITLOG_* variables; the tests' own choices must not be overridden."""
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``auditlog ARGV...`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def create(
    capsys: pytest.CaptureFixture[str], data: Path, tenant: str = "acme", *extra: str
) -> str:
    code, out, err = run(
        capsys,
        "keys",
        "create",
        "--data",
        str(data),
        "--tenant",
        tenant,
        "--scopes",
        "events:write,events:read",
        *extra,
    )
    assert (code, err) == (0, "")
    return out.splitlines()[-1]


def key_id(token: str) -> str:
    match = TOKEN.fullmatch(token)
    assert match is not None, token
    return match.group(1)


def key_lines(capsys: pytest.CaptureFixture[str], data: Path, *extra: str) -> list[list[str]]:
    code, out, err = run(capsys, "keys", "list", "--data", str(data), *extra)
    assert (code, err) == (0, "")
    return [line.split("\t") for line in out.splitlines()]


def authenticate(data: Path, token: str) -> Credential:
    """What a server on ``data`` makes of ``token``."""

    async def check() -> Credential:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            return await ApiKeys(store).authenticate(token)
        finally:
            await store.close()

    return asyncio.run(check())


def test_create_prints_the_key_alone_on_the_last_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys,
        "keys",
        "create",
        "--data",
        str(tmp_path),
        "--tenant",
        "acme",
        "--scopes",
        "events:write,events:read",
        "--name",
        "billing",
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    match = TOKEN.fullmatch(lines[-1])
    assert match is not None, lines[-1]
    assert lines[-1] not in "\n".join(lines[:-1])  # shown once
    summary = lines[0]
    assert match.group(1) in summary
    assert "billing" in summary
    assert "acme" in summary
    assert (tmp_path / "auditlog.db").is_file()


def test_created_key_authenticates_for_its_tenant_and_scopes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = create(capsys, tmp_path, "acme", "--name", "billing")
    credential = authenticate(tmp_path, token)
    assert credential.tenant == "acme"
    assert credential.scopes == frozenset({"events:write", "events:read"})
    assert credential.name == "billing"


def test_list_shows_id_name_tenant_scopes_state_and_never_the_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = create(capsys, tmp_path, "acme", "--name", "billing")
    second = create(capsys, tmp_path, "globex")
    code, out, err = run(capsys, "keys", "list", "--data", str(tmp_path))
    assert (code, err) == (0, "")
    for token in (first, second):
        assert token.split("_", 2)[2] not in out  # the secret
    rows = [line.split("\t") for line in out.splitlines()]
    first_id, second_id = key_id(first), key_id(second)
    assert rows == [
        [first_id, "billing", "acme", "events:write,events:read", "active"],
        [second_id, f"key-{second_id}", "globex", "events:write,events:read", "active"],
    ]


def test_list_of_one_tenant(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    create(capsys, tmp_path, "acme")
    create(capsys, tmp_path, "globex")
    assert [row[2] for row in key_lines(capsys, tmp_path, "--tenant", "globex")] == ["globex"]
    assert key_lines(capsys, tmp_path, "--tenant", "nobody") == []


def test_revoke_marks_the_key_revoked_and_refuses_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = create(capsys, tmp_path)
    revoked = key_id(token)
    code, out, err = run(capsys, "keys", "revoke", "--data", str(tmp_path), revoked)
    assert (code, err) == (0, "")
    assert revoked in out
    [row] = key_lines(capsys, tmp_path)
    assert row[0] == revoked
    assert re.fullmatch(r"revoked \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row[4]), row[4]
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(tmp_path, token)


def test_revoking_twice_keeps_the_first_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    revoked = key_id(create(capsys, tmp_path))
    assert run(capsys, "keys", "revoke", "--data", str(tmp_path), revoked)[0] == 0
    [first] = key_lines(capsys, tmp_path)
    assert run(capsys, "keys", "revoke", "--data", str(tmp_path), revoked)[0] == 0
    assert key_lines(capsys, tmp_path) == [first]


def test_revoke_of_an_unknown_id_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    create(capsys, tmp_path)
    code, out, err = run(capsys, "keys", "revoke", "--data", str(tmp_path), "nosuchkey")
    assert code == 1
    assert out == ""
    assert "nosuchkey" in err
    assert key_lines(capsys, tmp_path)[0][4] == "active"


# -- the service's own records of key changes -------------------------------------------------


def log_of(data: Path, tenant: str) -> list[dict[str, Any]]:
    """Every event of the tenant's log in the store on ``data``, oldest first."""

    async def read() -> list[dict[str, Any]]:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            query, _ = parse_query([("order", "asc"), ("limit", "1000")])
            page = await store.query(tenant, query)
        finally:
            await store.close()
        return [orjson.loads(body) for body in page.bodies]

    return asyncio.run(read())


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The local operator running the commands: the actor of their records."""
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-anna")
    return {"id": "cli:ops-anna", "type": "operator"}


def own_record(event: dict[str, Any]) -> dict[str, Any]:
    """A record without what the server fills in (id, times, seq)."""
    return {k: v for k, v in event.items() if k not in ("id", "time", "seq", "received_at")}


def test_create_records_the_key_in_its_tenants_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, operator: dict[str, str]
) -> None:
    token = create(capsys, tmp_path, "acme", "--name", "billing")
    [event] = log_of(tmp_path, "acme")
    assert own_record(event) == {
        "type": "auditlog.key.created",
        "actor": operator,
        "source": "auditlog",
        "outcome": "success",
        "data": {
            "key_id": key_id(token),
            "name": "billing",
            "scopes": ["events:write", "events:read"],
        },
        "tenant": "acme",
    }
    assert event["seq"] == 0
    assert log_of(tmp_path, "globex") == []
    secret = token.split("_", 2)[2]  # alk_<id>_<secret>; the secret may hold "_"
    stored = orjson.dumps(event).decode()
    assert secret not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() not in stored


def test_revoke_records_the_revocation_in_the_keys_tenant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, operator: dict[str, str]
) -> None:
    create(capsys, tmp_path, "acme")
    token = create(capsys, tmp_path, "globex", "--name", "etl")
    assert run(capsys, "keys", "revoke", "--data", str(tmp_path), key_id(token))[0] == 0
    created, revoked = log_of(tmp_path, "globex")
    assert created["type"] == "auditlog.key.created"
    assert own_record(revoked) == {
        "type": "auditlog.key.revoked",
        "actor": operator,
        "source": "auditlog",
        "outcome": "success",
        "data": {"key_id": key_id(token), "name": "etl", "scopes": ["events:write", "events:read"]},
        "tenant": "globex",
    }
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.key.created"]
    assert token.split("_", 2)[2] not in orjson.dumps(revoked).decode()


def test_a_revocation_is_recorded_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, operator: dict[str, str]
) -> None:
    revoked = key_id(create(capsys, tmp_path))
    for _ in range(3):
        assert run(capsys, "keys", "revoke", "--data", str(tmp_path), revoked)[0] == 0
    assert [e["type"] for e in log_of(tmp_path, "acme")] == [
        "auditlog.key.created",
        "auditlog.key.revoked",
    ]


def test_revoking_an_unknown_id_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, operator: dict[str, str]
) -> None:
    create(capsys, tmp_path, "acme")
    assert run(capsys, "keys", "revoke", "--data", str(tmp_path), "nosuchkey")[0] == 1
    assert run(capsys, "keys", "revoke", "--data", str(tmp_path), "a" * 16)[0] == 1
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.key.created"]


def test_listing_keys_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, operator: dict[str, str]
) -> None:
    create(capsys, tmp_path, "acme")
    key_lines(capsys, tmp_path)
    assert len(log_of(tmp_path, "acme")) == 1


@pytest.mark.parametrize(
    ("getuser", "actor_id"),
    [(OSError("no passwd entry"), "cli:unknown"), (KeyError("uid"), "cli:unknown"), ("", "cli:unknown"),
     ("tab\tuser", "cli:tabuser")],
    ids=["oserror", "keyerror", "empty", "control-characters"],
)  # fmt: skip
def test_the_operator_is_named_whatever_the_system_says(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    getuser: str | Exception,
    actor_id: str,
) -> None:
    def fake() -> str:
        if isinstance(getuser, Exception):
            raise getuser
        return getuser

    monkeypatch.setattr(getpass, "getuser", fake)
    create(capsys, tmp_path, "acme")
    [event] = log_of(tmp_path, "acme")
    assert event["actor"] == {"id": actor_id, "type": "operator"}


def test_a_key_whose_creation_could_not_be_recorded_is_not_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: object) -> None:
        raise StorageError("the disk is full", 1)

    monkeypatch.setattr(selfaudit, "record_directly", failing)
    code, out, err = run(
        capsys, "keys", "create", "--data", str(tmp_path), "--tenant", "acme", "--scopes", "admin"
    )
    assert code == 1
    assert "disk is full" in err
    assert not TOKEN.search(out + err)


def test_a_revocation_holds_even_if_it_could_not_be_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = create(capsys, tmp_path)

    async def failing(*args: object) -> None:
        raise StorageError("the disk is full", 1)

    monkeypatch.setattr(selfaudit, "record_directly", failing)
    code, _, err = run(capsys, "keys", "revoke", "--data", str(tmp_path), key_id(token))
    assert code == 1
    assert "disk is full" in err
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(tmp_path, token)


@pytest.mark.parametrize(
    ("scopes", "named"),
    [("events:write,bogus", "bogus"), ("", "no scopes"), (" , ", "no scopes")],
)
def test_bad_scopes_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, scopes: str, named: str
) -> None:
    code, out, err = run(
        capsys, "keys", "create", "--data", str(tmp_path), "--tenant", "acme", "--scopes", scopes
    )
    assert code == 2
    assert out == ""
    assert "--scopes" in err
    assert named in err
    assert "events:write" in err  # says what is expected


@pytest.mark.parametrize("tenant", ["", " ", "a b", "x" * 129, "acme\n", "ünï"])
def test_a_bad_tenant_name_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tenant: str
) -> None:
    code, out, err = run(
        capsys, "keys", "create", "--data", str(tmp_path), "--tenant", tenant, "--scopes", "admin"
    )
    assert code == 2
    assert out == ""
    assert "tenant" in err


@pytest.mark.parametrize("name", ["", "x" * 201, "tab\there"])
def test_a_key_name_that_could_not_be_a_source_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    code, out, err = run(
        capsys, "keys", "create", "--data", str(tmp_path), "--tenant", "acme",
        "--scopes", "admin", "--name", name,
    )  # fmt: skip
    assert code == 2
    assert out == ""
    assert "name" in err


def test_every_scope_is_accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    create(capsys, tmp_path)  # events:write,events:read
    code, _, _ = run(
        capsys,
        "keys",
        "create",
        "--data",
        str(tmp_path),
        "--tenant",
        "acme",
        "--scopes",
        "log:read,admin",
    )
    assert code == 0
    assert [row[3] for row in key_lines(capsys, tmp_path)] == [
        "events:write,events:read",
        "log:read,admin",
    ]


def test_memory_store_makes_a_key_and_keeps_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(
        capsys, "keys", "create", "--store", "memory:", "--tenant", "acme", "--scopes", "admin"
    )
    assert (code, err) == (0, "")
    assert TOKEN.fullmatch(out.splitlines()[-1])
    assert run(capsys, "keys", "list", "--store", "memory:") == (0, "", "")
    assert list(tmp_path.iterdir()) == []


def test_sqlite_store_url_with_an_absolute_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "sub" / "keys.db"
    url = "sqlite:///" + str(db)  # sqlite:////absolute/path
    assert url.startswith("sqlite:////")
    code, out, _ = run(
        capsys, "keys", "create", "--store", url, "--tenant", "acme", "--scopes", "admin"
    )
    assert code == 0
    assert db.is_file()
    code, out, _ = run(capsys, "keys", "list", "--store", url)
    assert code == 0
    assert out.split("\t")[2] == "acme"


def test_sqlite_store_url_with_a_relative_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(
        capsys,
        "keys",
        "create",
        "--store",
        "sqlite:///rel/keys.db",
        "--tenant",
        "acme",
        "--scopes",
        "admin",
    )
    assert code == 0
    assert (tmp_path / "rel" / "keys.db").is_file()


@pytest.mark.parametrize("url", ["sqlite://keys.db", "sqlite:///", "mysql://h/db", "x"])
def test_bad_store_url_exits_2(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, "keys", "list", "--store", url)
    assert code == 2
    assert out == ""
    assert url in err


def test_unreachable_postgresql_exits_1_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://auditor:s3cret-pw@127.0.0.1:1/audit?connect_timeout=1"
    code, out, err = run(capsys, "keys", "list", "--store", url)
    assert code == 1
    assert out == ""
    assert "audit" in err
    assert "s3cret-pw" not in err


def test_data_directory_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITLOG_DATA", str(tmp_path / "from-env"))
    code, _, _ = run(
        capsys, "keys", "create", "--tenant", "acme", "--scopes", "events:read", "--name", "e"
    )
    assert code == 0
    assert (tmp_path / "from-env" / "auditlog.db").is_file()
    # A flag beats the environment.
    assert key_lines(capsys, tmp_path / "elsewhere") == []


def test_data_directory_from_a_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "auditlog.toml"
    config.write_text(f'data = "{tmp_path / "from-file"}"\n', encoding="utf-8")
    code, _, _ = run(
        capsys,
        "--config",
        str(config),
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "events:read",
    )
    assert code == 0
    assert (tmp_path / "from-file" / "auditlog.db").is_file()


def test_unknown_setting_in_the_config_file_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "auditlog.toml"
    config.write_text("colour = 'blue'\n", encoding="utf-8")
    code, out, err = run(capsys, "--config", str(config), "keys", "list")
    assert code == 2
    assert out == ""
    assert "colour" in err


def test_a_bodies_budget_smaller_than_one_body_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body between the two sizes could never be taken: refused at start, not per request.
    monkeypatch.setenv("AUDITLOG_MAX_BODIES_BYTES", "65536")
    monkeypatch.setenv("AUDITLOG_MAX_BODY_BYTES", "65537")
    code, out, err = run(capsys, "keys", "list")
    assert code == 2
    assert out == ""
    assert "max_bodies_bytes (65536) must be at least max_body_bytes (65537)" in err
    assert config.load({"max_body_bytes": 65536}, {"AUDITLOG_MAX_BODIES_BYTES": "65536"})


def test_missing_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["keys"], ["keys", "create", "--tenant", "acme"], ["keys", "revoke"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        assert "usage:" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"auditlog {__version__}"


def test_version_as_a_module_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "auditlog", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == f"auditlog {__version__}"
