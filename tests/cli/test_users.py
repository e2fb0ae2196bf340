"""``auditlog users add|list|remove|passwd``: people's logins, their passwords from standard
input or a prompt, and the records of their changes in the user's tenant's log."""

from __future__ import annotations

import asyncio
import getpass
import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditlog import config
from auditlog.cli.main import main
from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.model.credentials import User
from auditlog.model.query import parse_query
from auditlog.service import selfaudit
from auditlog.service.passwords import verify_password
from auditlog.storage.sqlite.store import SQLiteStore

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)


class Stdin(io.StringIO):
    """Standard input from a pipe or file, or (``tty``) a terminal."""

    def __init__(self, text: str, tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def add(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data: Path,
    stdin: str,
    *argv: str,
    username: str = "alice",
    tenant: str = "acme",
    scopes: str = "events:read,events:write",
) -> tuple[int, str, str, Stdin]:
    """``auditlog users add`` in this process: exit code, stdout, stderr and stdin."""
    source = Stdin(stdin)
    monkeypatch.setattr(sys, "stdin", source)
    code = main(
        ["users", "add", username, "--data", str(data), "--tenant", tenant, "--scopes", scopes,
         *argv]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err, source


def stored(data: Path, username: str = "alice") -> User | None:
    async def read() -> User | None:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            return await store.get_user(username)
        finally:
            await store.close()

    return asyncio.run(read())


def test_the_password_is_read_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, out, err, stdin = add(capsys, monkeypatch, tmp_path, PASSWORD + "\nnext line\n")
    assert (code, err) == (0, "")
    assert out == "created user alice for tenant acme with scopes events:read,events:write\n"
    assert stdin.read() == "next line\n"  # one line only
    user = stored(tmp_path)
    assert user is not None
    assert (user.username, user.tenant, user.scopes) == (
        "alice",
        "acme",
        ("events:read", "events:write"),
    )
    assert user.password_hash.startswith("$scrypt$ln=15,r=8,p=1$")
    assert PASSWORD not in user.password_hash
    assert verify_password(PASSWORD, user.password_hash)
    assert not verify_password(PASSWORD + "\n", user.password_hash)


@pytest.mark.parametrize("ending", ["\r\n", ""])
def test_the_line_end_is_not_part_of_the_password(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ending: str,
) -> None:
    assert add(capsys, monkeypatch, tmp_path, PASSWORD + ending)[0] == 0
    user = stored(tmp_path)
    assert user is not None
    assert verify_password(PASSWORD, user.password_hash)


def test_at_a_terminal_the_password_is_asked_twice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return PASSWORD

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys, "stdin", Stdin("", tty=True))
    code = main(["users", "add", "bob", "--data", str(tmp_path), "--tenant", "acme",
                 "--scopes", "events:read"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert prompts == ["Password: ", "Password (again): "]
    assert PASSWORD not in out
    user = stored(tmp_path, "bob")
    assert user is not None
    assert verify_password(PASSWORD, user.password_hash)


def test_two_different_entries_at_a_terminal_store_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: next(answers))
    monkeypatch.setattr(sys, "stdin", Stdin("", tty=True))
    code = main(["users", "add", "bob", "--data", str(tmp_path), "--tenant", "acme",
                 "--scopes", "events:read"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "differ" in err
    assert PASSWORD not in err
    assert stored(tmp_path, "bob") is None


@pytest.mark.parametrize(
    ("username", "tenant", "scopes", "named"),
    [
        ("alice", "a b", "events:read", "tenant"),
        ("alice", "", "events:read", "tenant"),
        ("alice", "acme", "events:read,root", "root"),
        ("alice", "acme", "", "no scopes"),
        ("a b", "acme", "events:read", "username"),
        ("", "acme", "events:read", "username"),
        ("x" * 129, "acme", "events:read", "username"),
        ("user:alice", "acme", "events:read", "username"),
        ("älice", "acme", "events:read", "username"),
    ],
)
def test_bad_arguments_exit_2_before_the_password_is_read(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    username: str,
    tenant: str,
    scopes: str,
    named: str,
) -> None:
    code, out, err, stdin = add(
        capsys, monkeypatch, tmp_path, PASSWORD + "\n",
        username=username, tenant=tenant, scopes=scopes,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert named in err
    assert stdin.tell() == 0  # the password was never read
    assert PASSWORD not in err


@pytest.mark.parametrize("password", ["", "\n", "short\n", "1234567\n"])
def test_a_short_password_exits_2_without_showing_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    password: str,
) -> None:
    code, out, err, _ = add(capsys, monkeypatch, tmp_path, password)
    assert (code, out) == (2, "")
    assert "at least 8 characters" in err
    if password.strip():
        assert password.strip() not in err
    assert stored(tmp_path) is None


def test_a_taken_username_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert add(capsys, monkeypatch, tmp_path, PASSWORD)[0] == 0
    code, out, err, _ = add(capsys, monkeypatch, tmp_path, "another password", tenant="globex")
    assert (code, out) == (1, "")
    assert "'alice' is taken" in err
    user = stored(tmp_path)
    assert user is not None
    assert user.tenant == "acme"
    assert verify_password(PASSWORD, user.password_hash)


def test_there_is_no_password_argument(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(PASSWORD))
    with pytest.raises(SystemExit) as info:
        main(["users", "add", "alice", "--data", str(tmp_path), "--tenant", "acme",
              "--scopes", "events:read", "--password", PASSWORD])  # fmt: skip
    assert info.value.code == 2
    assert stored(tmp_path) is None


def test_nothing_logs_the_password(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert add(capsys, monkeypatch, tmp_path, PASSWORD)[0] == 0
    assert PASSWORD not in caplog.text


def test_the_installed_command_reads_a_piped_password(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "auditlog", "users", "add", "carol", "--data", str(tmp_path),
         "--tenant", "acme", "--scopes", "log:read"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert PASSWORD not in result.stdout
    user = stored(tmp_path, "carol")
    assert user is not None
    assert user.scopes == ("log:read",)
    assert verify_password(PASSWORD, user.password_hash)


# -- list, remove, passwd ----------------------------------------------------------------------

NEW_PASSWORD = "tr0ub4dor and three"


def users(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data: Path,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str, Stdin]:
    """``auditlog users ARGV... --data DATA`` in this process: exit code, stdout, stderr, stdin."""
    source = Stdin(stdin)
    monkeypatch.setattr(sys, "stdin", source)
    code = main(["users", *argv, "--data", str(data)])
    out, err = capsys.readouterr()
    return code, out, err, source


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


def record(event: dict[str, Any]) -> dict[str, Any]:
    """A record without what the server fills in (id, times, seq)."""
    return {k: v for k, v in event.items() if k not in ("id", "time", "seq", "received_at")}


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The local operator running the commands: the actor of their records."""
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-anna")
    return {"id": "cli:ops-anna", "type": "operator"}


@pytest.fixture
def alice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> User:
    """alice of acme, made with ``users add``, her password ``PASSWORD``."""
    assert add(capsys, monkeypatch, tmp_path, PASSWORD + "\n")[0] == 0
    user = stored(tmp_path)
    assert user is not None
    return user


def test_add_records_the_user_in_its_tenants_log(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    operator: dict[str, str],
) -> None:
    assert add(capsys, monkeypatch, tmp_path, PASSWORD, tenant="globex")[0] == 0
    [event] = log_of(tmp_path, "globex")
    assert record(event) == {
        "type": "auditlog.user.created",
        "actor": operator,
        "source": "auditlog",
        "outcome": "success",
        "data": {"username": "alice", "scopes": ["events:read", "events:write"]},
        "tenant": "globex",
    }
    assert log_of(tmp_path, "acme") == []
    user = stored(tmp_path)
    assert user is not None
    assert user.password_hash not in orjson.dumps(event).decode()


def test_a_taken_username_records_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert add(capsys, monkeypatch, tmp_path, PASSWORD)[0] == 0
    assert add(capsys, monkeypatch, tmp_path, PASSWORD, tenant="globex")[0] == 1
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.user.created"]
    assert log_of(tmp_path, "globex") == []


def test_list_shows_username_tenant_scopes_and_created_time_never_the_hash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert users(capsys, monkeypatch, tmp_path, "list")[:3] == (0, "", "")
    assert add(capsys, monkeypatch, tmp_path, PASSWORD, username="bob", tenant="globex",
               scopes="admin")[0] == 0  # fmt: skip
    assert add(capsys, monkeypatch, tmp_path, PASSWORD, username="alice@example.com")[0] == 0
    bob, alice = stored(tmp_path, "bob"), stored(tmp_path, "alice@example.com")
    assert bob is not None
    assert alice is not None
    code, out, err, _ = users(capsys, monkeypatch, tmp_path, "list")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"bob\tglobex\tadmin\t{times.format_us(bob.created_us)}",
        f"alice@example.com\tacme\tevents:read,events:write\t{times.format_us(alice.created_us)}",
    ]
    assert bob.password_hash not in out
    assert alice.password_hash not in out
    assert "$scrypt$" not in out
    code, out, err, _ = users(capsys, monkeypatch, tmp_path, "list", "--tenant", "acme")
    assert (code, err) == (0, "")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["alice@example.com"]
    assert users(capsys, monkeypatch, tmp_path, "list", "--tenant", "initech")[:3] == (0, "", "")


def test_list_of_a_bad_tenant_name_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, out, err, _ = users(capsys, monkeypatch, tmp_path, "list", "--tenant", "a b")
    assert (code, out) == (2, "")
    assert "tenant 'a b'" in err


def test_listing_users_records_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, alice: User, tmp_path: Path
) -> None:
    assert users(capsys, monkeypatch, tmp_path, "list")[0] == 0
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.user.created"]


def test_remove_removes_the_user_and_records_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    alice: User,
    operator: dict[str, str],
) -> None:
    code, out, err, stdin = users(capsys, monkeypatch, tmp_path, "remove", "alice", stdin="x\n")
    assert (code, err) == (0, "")
    assert out == "removed user alice of tenant acme; its login tokens are refused\n"
    assert stdin.tell() == 0  # no password is asked for
    assert stored(tmp_path) is None
    assert users(capsys, monkeypatch, tmp_path, "list")[1] == ""
    created, removed = log_of(tmp_path, "acme")
    assert created["type"] == "auditlog.user.created"
    assert record(removed) == {
        "type": "auditlog.user.removed",
        "actor": operator,
        "source": "auditlog",
        "outcome": "success",
        "data": {"username": "alice", "scopes": ["events:read", "events:write"]},
        "tenant": "acme",
    }
    assert alice.password_hash not in orjson.dumps(removed).decode()
    # The name is free again.
    assert add(capsys, monkeypatch, tmp_path, NEW_PASSWORD, tenant="globex")[0] == 0


def test_removing_an_unknown_user_exits_1_and_records_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    for name in ("bob", "Alice"):
        code, out, err, _ = users(capsys, monkeypatch, tmp_path, "remove", name)
        assert (code, out) == (1, "")
        assert err == f"auditlog: no user {name!r}\n"
    assert users(capsys, monkeypatch, tmp_path, "remove", "alice")[0] == 0
    assert users(capsys, monkeypatch, tmp_path, "remove", "alice")[0] == 1
    assert [e["type"] for e in log_of(tmp_path, "acme")] == [
        "auditlog.user.created",
        "auditlog.user.removed",
    ]


@pytest.mark.parametrize("command", ["remove", "passwd"])
@pytest.mark.parametrize("name", ["a b", "", "user:alice", "x" * 129])
def test_a_bad_username_exits_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    alice: User,
    command: str,
    name: str,
) -> None:
    code, out, err, stdin = users(
        capsys, monkeypatch, tmp_path, command, name, stdin=NEW_PASSWORD + "\n"
    )
    assert (code, out) == (2, "")
    assert "username" in err
    assert stdin.tell() == 0
    assert stored(tmp_path) == alice


def test_a_removal_holds_even_if_it_could_not_be_recorded(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    async def failing(*args: object) -> None:
        raise StorageError("the disk is full", 1)

    monkeypatch.setattr(selfaudit, "record_directly", failing)
    code, _, err, _ = users(capsys, monkeypatch, tmp_path, "remove", "alice")
    assert code == 1
    assert "disk is full" in err
    assert stored(tmp_path) is None


def test_passwd_reads_the_new_password_from_standard_input_and_records_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    alice: User,
    operator: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        code, out, err, stdin = users(
            capsys, monkeypatch, tmp_path, "passwd", "alice", stdin=NEW_PASSWORD + "\nnext\n"
        )
    assert (code, err) == (0, "")
    assert out == (
        "changed the password of user alice of tenant acme; login tokens issued before are "
        "refused\n"
    )
    assert stdin.read() == "next\n"  # one line only
    user = stored(tmp_path)
    assert user is not None
    assert user == User(alice.username, alice.tenant, alice.scopes, user.password_hash,
                        alice.created_us)  # fmt: skip
    assert verify_password(NEW_PASSWORD, user.password_hash)
    assert not verify_password(PASSWORD, user.password_hash)
    created, changed = log_of(tmp_path, "acme")
    assert created["type"] == "auditlog.user.created"
    assert record(changed) == {
        "type": "auditlog.user.password_changed",
        "actor": operator,
        "source": "auditlog",
        "outcome": "success",
        "data": {"username": "alice", "scopes": ["events:read", "events:write"]},
        "tenant": "acme",
    }
    shown = orjson.dumps(changed).decode() + out + caplog.text
    for secret in (NEW_PASSWORD, PASSWORD, user.password_hash, alice.password_hash):
        assert secret not in shown


def test_the_same_password_again_is_a_new_hash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    assert users(capsys, monkeypatch, tmp_path, "passwd", "alice", stdin=PASSWORD)[0] == 0
    user = stored(tmp_path)
    assert user is not None
    assert user.password_hash != alice.password_hash  # a new salt: old tokens end all the same
    assert verify_password(PASSWORD, user.password_hash)


def test_passwd_at_a_terminal_asks_twice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return NEW_PASSWORD

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys, "stdin", Stdin("", tty=True))
    code = main(["users", "passwd", "alice", "--data", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert prompts == ["Password: ", "Password (again): "]
    assert NEW_PASSWORD not in out
    user = stored(tmp_path)
    assert user is not None
    assert verify_password(NEW_PASSWORD, user.password_hash)


def test_passwd_with_two_different_entries_changes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    answers = iter([NEW_PASSWORD, NEW_PASSWORD + "x"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: next(answers))
    monkeypatch.setattr(sys, "stdin", Stdin("", tty=True))
    code = main(["users", "passwd", "alice", "--data", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "differ" in err
    assert NEW_PASSWORD not in err
    assert stored(tmp_path) == alice
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.user.created"]


@pytest.mark.parametrize("password", ["", "\n", "short\n"])
def test_passwd_with_a_short_password_exits_2_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    alice: User,
    password: str,
) -> None:
    code, out, err, _ = users(capsys, monkeypatch, tmp_path, "passwd", "alice", stdin=password)
    assert (code, out) == (2, "")
    assert "at least 8 characters" in err
    assert stored(tmp_path) == alice


def test_passwd_of_an_unknown_user_exits_1_before_asking(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    code, out, err, stdin = users(
        capsys, monkeypatch, tmp_path, "passwd", "bob", stdin=NEW_PASSWORD + "\n"
    )
    assert (code, out) == (1, "")
    assert err == "auditlog: no user 'bob'\n"
    assert stdin.tell() == 0  # the password was never read
    assert stored(tmp_path, "bob") is None
    assert [e["type"] for e in log_of(tmp_path, "acme")] == ["auditlog.user.created"]


def test_passwd_takes_no_password_argument(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alice: User
) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(NEW_PASSWORD))
    with pytest.raises(SystemExit) as info:
        main(["users", "passwd", "alice", NEW_PASSWORD, "--data", str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["users", "passwd", "alice", "--password", NEW_PASSWORD, "--data", str(tmp_path)])
    assert stored(tmp_path) == alice


def test_the_installed_command_changes_a_piped_password(tmp_path: Path, alice: User) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "auditlog", "users", "passwd", "alice", "--data", str(tmp_path)],
        input=NEW_PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert NEW_PASSWORD not in result.stdout
    user = stored(tmp_path)
    assert user is not None
    assert verify_password(NEW_PASSWORD, user.password_hash)
