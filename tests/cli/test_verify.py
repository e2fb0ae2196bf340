"""``auditlog verify``: tampering with a real SQLite store is caught and named by seq, offline;
and through the API of a real ``auditlog serve``, a log that is changed, rolled back or forked.

The offline tests build a log as a served one is built (events committed, then integrated and
signed, batch after batch), stop, tamper with the database the way an operator with access to
it could, and run ``auditlog verify`` in this process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from auditlog import config
from auditlog.cli.main import main
from auditlog.cli.progress import Progress
from auditlog.cli.verifystate import StateError, StateFile
from auditlog.model import times
from auditlog.model.canonical import canonical_bytes
from auditlog.model.event import Limits, Principal, validate_event
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.storage.base import AppendRequest
from auditlog.storage.sqlite.store import SQLiteStore

SEQ_BITS = 40


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)


def build_log(data: Path, batches: Sequence[int], tenant: str = "acme", key_file: str = "") -> None:
    """Commit ``batches`` of events to ``tenant``'s log, integrating after each, and stop."""

    async def build() -> None:
        store = SQLiteStore(str(data / "auditlog.db"))
        await store.open()
        try:
            integrator = Integrator(store, LogKey(store, key_file=key_file))
            start = (await store.log_sizes()).get(tenant, 0)
            for n in batches:
                events = tuple(
                    validate_event(
                        {"type": "t", "data": {"n": start + i}},
                        Principal("key:t", "t"),
                        Limits(),
                        times.now_us(),
                    )
                    for i in range(n)
                )
                start += n
                await store.append([AppendRequest(tenant, events)])
                await integrator.integrate_batch(tenant)
        finally:
            await store.close()

    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(build())


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``auditlog verify ARGV...`` in this process: its exit status, and what it printed
    (standard error after standard output)."""
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    assert err == "" or code != 0, err
    return code, out + err


def offline(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> tuple[int, str]:
    return verify(capsys, "--data", str(data), "--wait", "0", *argv)


@contextlib.contextmanager
def database(data: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(data / "auditlog.db", isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def key_of(db: sqlite3.Connection, seq: int, tenant: str = "acme") -> int:
    (tenant_id,) = db.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
    return int(tenant_id) << SEQ_BITS | seq


def body_of(db: sqlite3.Connection, seq: int) -> dict[str, Any]:
    (body,) = db.execute("SELECT body FROM events WHERE key = ?", (key_of(db, seq),)).fetchone()
    value: dict[str, Any] = orjson.loads(body)
    return value


def set_body(db: sqlite3.Connection, seq: int, event: dict[str, Any]) -> None:
    db.execute(
        "UPDATE events SET body = ? WHERE key = ?", (canonical_bytes(event), key_of(db, seq))
    )


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("tenant acme: seq")]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A log of 36 events in 5 signed checkpoints (sizes 5, 12, 21, 32, 36)."""
    path = tmp_path / "data"
    build_log(path, [5, 7, 9, 11, 4])
    return path


# -- intact ------------------------------------------------------------------------------------


def test_an_intact_log(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    build_log(data, [3, 2], tenant="beta")
    code, out = offline(capsys, data)
    assert code == 0, out
    assert "tenant acme: 36 events, 5 checkpoints (the latest of size 36): intact" in out
    assert "tenant beta: 5 events, 2 checkpoints (the latest of size 5): intact" in out
    assert out.splitlines()[-1] == "intact: 2 tenants, 41 events"


def test_an_empty_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = offline(capsys, tmp_path / "empty")
    assert (code, out.splitlines()[-1]) == (0, "intact: 0 tenants, 0 events")


# -- tampering, offline ------------------------------------------------------------------------


def test_an_updated_event_is_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:
        event = body_of(db, 14)
        event["data"]["n"] = 1000
        set_body(db, 14, event)
    code, out = offline(capsys, data)
    assert code == 1
    assert problems(out) == [
        "tenant acme: seq 14: changed: its leaf hash differs from the one the tree committed to"
    ]
    assert out.splitlines()[-1] == "FAILED: 1 problem; the first bad seq 14 of tenant acme: changed"


def test_an_event_edited_as_text_is_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:  # as the sqlite3 shell would: the body becomes TEXT
        db.execute(
            "UPDATE events SET body = replace(body, '\"n\":3', '\"n\":4') WHERE key = ?",
            (key_of(db, 3),),
        )
    code, out = offline(capsys, data)
    assert code == 1
    assert [line.split(":")[1] for line in problems(out)] == [" seq 3"]


def test_a_deleted_event_is_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:
        db.execute("DELETE FROM events WHERE key = ?", (key_of(db, 20),))
    code, out = offline(capsys, data)
    assert code == 1
    assert problems(out) == [
        "tenant acme: seq 20: removed: seq 20 missing from the stored events "
        "(the next stored is seq 21)"
    ]


def test_deleted_last_events_are_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:
        db.execute("DELETE FROM events WHERE key >= ?", (key_of(db, 30),))
        db.execute("UPDATE tenants SET size = 30")  # even the recorded size, to hide it
    code, out = offline(capsys, data)
    assert code == 1
    assert problems(out) == [
        "tenant acme: seq 30: removed: seq 30..35 are covered by the checkpoint of size 36, "
        "and gone"
    ]


def test_two_swapped_events_are_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:
        third, ninth = body_of(db, 3), body_of(db, 9)
        set_body(db, 3, ninth)
        set_body(db, 9, third)
    code, out = offline(capsys, data)
    assert code == 1
    assert problems(out) == [
        "tenant acme: seq 3: moved: the event stored at seq 3 says seq 9",
        "tenant acme: seq 9: moved: the event stored at seq 9 says seq 3",
    ]


def test_two_swapped_contents_are_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:  # the seqs put right again: only the contents moved
        third, ninth = body_of(db, 3), body_of(db, 9)
        set_body(db, 3, {**ninth, "seq": 3})
        set_body(db, 9, {**third, "seq": 9})
    code, out = offline(capsys, data)
    assert code == 1
    assert [p.split(":")[1:3] for p in problems(out)] == [
        [" seq 3", " changed"],
        [" seq 9", " changed"],
    ]


def forged_event(db: sqlite3.Connection, seq: int, received_at: str) -> dict[str, Any]:
    forged = body_of(db, 0)
    forged.update(
        id="forged", seq=seq, received_at=received_at, data={"note": "this never happened"}
    )
    return forged


def insert(db: sqlite3.Connection, event: dict[str, Any]) -> None:
    (tenant_id,) = db.execute("SELECT tenant_id FROM tenants WHERE name = 'acme'").fetchone()
    db.execute(
        "INSERT INTO events (key, tenant_id, id, type, time_us, body) VALUES (?, ?, ?, ?, ?, ?)",
        (
            key_of(db, event["seq"]),
            tenant_id,
            event["id"],
            event["type"],
            times.parse_rfc3339(event["time"]),
            canonical_bytes(event),
        ),
    )


def test_an_appended_forgery_is_named(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    with database(data) as db:
        insert(db, forged_event(db, 36, body_of(db, 2)["received_at"]))
    code, out = offline(capsys, data)
    assert code == 1
    assert "tenant acme: seq 36: inserted: seq 36..36 are beyond the log size" in out
    assert "FAILED" in out.splitlines()[-1]
    assert "seq 36" in out.splitlines()[-1]


def test_a_backdated_forgery_with_its_size_is_named(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    with database(data) as db:  # the forger also records the new size, as an append would
        earlier = times.parse_rfc3339(body_of(db, 2)["received_at"]) - 3_600_000_000
        insert(db, forged_event(db, 36, times.format_us(earlier)))  # an hour "before"
        db.execute("UPDATE tenants SET size = 37")
    code, out = offline(capsys, data)
    assert code == 1
    assert problems(out) == [
        "tenant acme: seq 36: uncovered: seq 36 (1 events) are covered by no signed "
        "checkpoint, though received before the latest one was signed ("
        + out.split("latest one was signed (")[1].split(")")[0]
        + "): put there behind the service's back"
    ]


def test_events_not_integrated_yet_are_only_noted(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    # What a command writes while the service is down, or an append right now, is not
    # tampering: the service will integrate it. An operator can append; see the design notes.
    with database(data) as db:
        insert(db, forged_event(db, 36, times.format_us(times.now_us() + 60_000_000)))
        db.execute("UPDATE tenants SET size = 37")
    code, out = offline(capsys, data)
    assert code == 0, out
    assert "note: tenant acme: seq 36: not yet covered: 1 events after the latest" in out


def test_an_event_changed_with_its_tree_node_is_caught_by_the_checkpoint(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    from auditlog.integrity.hasher import leaf_hash

    with database(data) as db:
        event = body_of(db, 16)
        event["data"]["n"] = -1
        set_body(db, 16, event)
        db.execute(
            "UPDATE tree_nodes SET hash = ? WHERE level = 0 AND idx = 16",
            (leaf_hash(canonical_bytes(event)),),
        )
    code, out = offline(capsys, data)
    assert code == 1
    # The checkpoints of 12 events and fewer still hold; that of 21 does not.
    assert problems(out) == [
        "tenant acme: seq 12: mismatch: seq 12..20 do not give the root of the checkpoint of "
        "size 21: an event among them was changed along with the tree"
    ]


def test_a_checkpoint_with_a_bad_signature_is_named(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    with database(data) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size = 21").fetchone()
        text, _, signature = note.rpartition(" ")
        raw = bytearray(base64.b64decode(signature))
        raw[10] ^= 1
        forged = text + " " + base64.b64encode(bytes(raw)).decode() + "\n"
        db.execute("UPDATE checkpoints SET note = ? WHERE size = 21", (forged,))
    code, out = offline(capsys, data)
    assert code == 1
    lines = [line for line in out.splitlines() if "checkpoint:" in line]
    assert lines == [
        "tenant acme: checkpoint: signature: the checkpoint of size 21: the signature by key "
        + lines[0].split("the signature by key ")[1]
    ]
    assert "does not verify" in lines[0]
    assert out.splitlines()[-1] == (
        "FAILED: 1 problem; the first bad a checkpoint of tenant acme: signature"
    )


def test_a_rolled_back_store_is_caught_with_the_state(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    shutil.copy(data / "auditlog.db", backup)  # the log of 36 events, closed (no WAL)
    state = tmp_path / "state.json"
    build_log(data, [10])
    code, out = offline(capsys, data, "--state", str(state))
    assert code == 0, out
    assert StateFile(state).get("auditlog/acme") is not None
    remembered = StateFile(state).get("auditlog/acme")
    assert remembered is not None
    assert remembered.size == 46
    # The operator puts back the older database: consistent in itself, signed, but shorter.
    shutil.copy(backup, data / "auditlog.db")
    code, out = offline(capsys, data)
    assert code == 0  # the store alone cannot tell
    code, out = offline(capsys, data, "--state", str(state))
    assert code == 1
    assert problems(out) == [
        "tenant acme: seq 36: rolled back: seq 36..45 are covered by the checkpoint verified on "
        f"{remembered.verified_at} (size 46), and gone"
    ]
    # A failed run leaves the state as it was.
    assert StateFile(state).get("auditlog/acme") == remembered


def test_a_rolled_back_and_regrown_store_is_a_fork(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    shutil.copy(data / "auditlog.db", backup)
    state = tmp_path / "state.json"
    build_log(data, [10])
    assert offline(capsys, data, "--state", str(state))[0] == 0
    shutil.copy(backup, data / "auditlog.db")
    build_log(data, [20])  # other events, now signed: a log of 56 that does not extend 46
    code, out = offline(capsys, data, "--state", str(state))
    assert code == 1
    assert [p.split(":")[1:3] for p in problems(out)] == [[" seq 36", " forked"]]


def test_a_pinned_key_refuses_checkpoints_of_another(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    other = base64.b64encode(bytes(range(32))).decode()
    code, out = offline(capsys, data, "--public-key", other)
    assert code == 1
    assert out.count("checkpoint: signature:") == 5


def test_a_key_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key_file = tmp_path / "checkpoint.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    data = tmp_path / "data"
    build_log(data, [4, 4], key_file=str(key_file))
    code, out = offline(capsys, data, "--log-signing-key-file", str(key_file))
    assert code == 0, out
    code, out = offline(capsys, data)  # the store's own key did not sign this log
    assert code == 1


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["verify", "--url", "http://127.0.0.1:9"])
    assert code == 2
    assert "needs --token and --public-key" in capsys.readouterr().err
    code = main(["verify", "--data", str(tmp_path), "--public-key", "nonsense"])
    assert code == 2
    assert "--public-key" in capsys.readouterr().err
    bad_state = tmp_path / "state.json"
    bad_state.write_text("[1, 2]")
    code = main(["verify", "--data", str(tmp_path), "--state", str(bad_state)])
    assert code == 2
    assert "state file" in capsys.readouterr().err
    with pytest.raises(StateError):
        StateFile(bad_state)


def test_the_progress_bar() -> None:
    stream = io.StringIO()
    progress = Progress(1000, "verifying acme", stream=stream, enabled=True, delay=0)
    progress.advance(250)
    assert "verifying acme [#######-" in stream.getvalue()
    assert " 25% 250/1,000 events" in stream.getvalue()
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")
    quiet = io.StringIO()
    hidden = Progress(1000, stream=quiet, enabled=False, delay=0)
    hidden.advance(500)
    hidden.close()
    assert quiet.getvalue() == ""
    short = io.StringIO()
    waiting = Progress(1000, stream=short, enabled=True, delay=60)  # a short run shows nothing
    waiting.advance(999)
    assert short.getvalue() == ""


# -- through the API, against a real server -----------------------------------------------------


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUDITLOG_")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(data: Path, log: Path) -> Iterator[str]:
    """``auditlog serve`` on ``data`` at a free port of 127.0.0.1; stopped by its pid."""
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "auditlog",
                "serve",
                "--data",
                str(data),
                "--port",
                str(port),
                "--checkpoint-interval-ms",
                "50",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def create_key(data: Path) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditlog",
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "events:write,events:read,log:read",
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def write(url: str, token: str, n: int) -> int:
    """Write ``n`` events and wait for their checkpoint; its size."""
    answer = httpx.post(
        url + "/v1/events?wait=checkpoint",
        json=[{"type": "t", "data": {"i": i}} for i in range(n)],
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    checkpoint = answer.json()["checkpoint"]
    if checkpoint is not None:
        size: int = checkpoint["tree_size"]
        return size
    # Not signed within checkpoint_wait_ms (a busy machine): wait for a checkpoint that
    # covers the events, as a client would.
    needed = answer.json()["events"][-1]["seq"] + 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest = httpx.get(
            url + "/v1/log/checkpoint", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        if latest["tree_size"] >= needed:
            return int(latest["tree_size"])
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint covered seq {needed - 1} within 60 s")


@pytest.mark.slow
def test_an_auditor_through_the_api(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_key(data)
    state = tmp_path / "auditor.json"
    with serving(data, tmp_path / "serve.log") as url:
        write(url, token, 20)
        vkey = httpx.get(
            url + "/v1/log/public-key",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
        ).text.strip()
        args = ["--url", url, "--public-key", vkey, "--token", token, "--state", str(state)]
        code, out = verify(capsys, *args)
        assert code == 0, out
        assert out.splitlines()[-1].startswith("intact: checkpoint of size ")
        first = StateFile(state).get("auditlog/acme")
        assert first is not None
        # More events: the next run demands (and gets) a consistency proof from the first.
        write(url, token, 15)
        code, out = verify(capsys, *args)
        assert code == 0, out
        second = StateFile(state).get("auditlog/acme")
        assert second is not None
        assert second.size > first.size
        # The public key may also be given as its raw base64, or as a file.
        raw = httpx.get(
            url + "/v1/log/public-key", headers={"Authorization": f"Bearer {token}"}
        ).json()["public_key"]
        key_file = tmp_path / "log.pub"
        key_file.write_text(vkey + "\n")
        for key in (raw, str(key_file)):
            code, out = verify(capsys, "--url", url, "--public-key", key, "--token", token,
                               "--state", str(tmp_path / "other.json"))  # fmt: skip
            assert code == 0, out
        # The operator edits an event in the database behind the running service.
        with database(data) as db:
            event = body_of(db, 11)
            event["data"]["i"] = 99
            set_body(db, 11, event)
        code, out = verify(capsys, *args)
        assert code == 1
        assert "tenant acme: seq 11: changed: the event the API returns for seq 11" in out
        assert StateFile(state).get("auditlog/acme") == second  # a failed run remembers nothing


@pytest.mark.slow
def test_an_auditor_catches_a_rollback_and_a_fork(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    token = create_key(data)
    state = tmp_path / "auditor.json"
    backup = tmp_path / "backup.db"
    with serving(data, tmp_path / "serve.log") as url:
        write(url, token, 10)
        vkey = httpx.get(
            url + "/v1/log/public-key",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
        ).text.strip()
    shutil.copy(data / "auditlog.db", backup)  # stopped cleanly: everything is in the file
    args = ["--public-key", vkey, "--token", token, "--state", str(state)]
    with serving(data, tmp_path / "serve2.log") as url:
        size = write(url, token, 30)
        code, out = verify(capsys, "--url", url, *args)
        assert code == 0, out
    remembered = StateFile(state).get("auditlog/acme")
    assert remembered is not None
    assert remembered.size >= size
    # The operator restores the backup: the log shrinks.
    for suffix in ("", "-wal", "-shm", "-terms", "-terms-wal", "-terms-shm"):
        (data / f"auditlog.db{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, data / "auditlog.db")
    with serving(data, tmp_path / "serve3.log") as url:
        code, out = verify(capsys, "--url", url, *args)
        assert code == 1
        assert "tenant acme: seq " in out
        assert ": rolled back: the log's checkpoint has size " in out
        # ... and grows again past what the auditor saw, with other events: a fork.
        write(url, token, remembered.size)
        code, out = verify(capsys, "--url", url, *args)
        assert code == 1
        assert "forked: the checkpoint of size " in out
        assert f"does not extend the checkpoint of size {remembered.size}" in out
    assert StateFile(state).get("auditlog/acme") == remembered
