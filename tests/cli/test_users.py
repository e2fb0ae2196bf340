"""``auditlog users add``: a login for a person, its password from standard input or a prompt."""

from __future__ import annotations

import asyncio
import getpass
import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from auditlog import config
from auditlog.cli.main import main
from auditlog.model.credentials import User
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
