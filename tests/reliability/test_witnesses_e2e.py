"""Witnesses end to end: three ``auditlog witness serve`` processes with a 2-of-3 policy, and
``auditlog serve`` pushing its tenants log to them, every one a real process on 127.0.0.1.

The service's key is fixed (``--log-signing-key-file``), so the tenants log's vkey, and with
it the policy, is known before it starts; the witnesses follow the same policy file.

1. Normal operation: two tenants write; their checkpoints are witnessed by all three
   (``GET /v1/log/witnessed``, ``GET /v1/log/witnesses``); ``auditlog verify --url --policy``
   accepts the log naming its cosigners; a receipt (``auditlog proof``) verifies offline, and
   with one byte of its event changed does not.
2. One witness down (SIGTERM): the quorum is still met by the other two, the service shows the
   down one's error, ``verify`` still accepts; restarted from its state, it catches up.
3. History rewritten, three ways: the store is rolled back to a copy taken after step 1 (the
   witnesses are ahead of it: the service sees it in their ``409`` and refuses to go on); the
   rolled-back store then grows a different history past what the witnesses cosigned (same
   origin, same key, other leaves: every witness answers ``422``, and records it); and a
   fresh store with the same key forks the log from nothing. Every witness refuses each, the
   service logs ``REFUSED`` and counts them. ``verify --policy`` fails on the fresh fork
   (nothing of it is witnessed) and, for the auditor who verified the log before, on the
   regrown one; an auditor with no memory of it is told that only the common prefix is
   witnessed (the events after it are a note, as docs/api.md says of events not witnessed
   yet).
4. The witnesses restarted from their state keep refusing the fork, and their monitoring route
   still serves the honest checkpoint they cosigned.

Every wait is bounded, every process is stopped by its pid in a ``finally`` block.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import pgtest
from auditlog.integrity import note as notes
from auditlog.integrity import tlogproof
from auditlog.integrity.cosignature import CosignerKey
from live_server import LOAD, Server, Storage, auditlog, create_key, environment, free_port, serving

pytestmark = [pytest.mark.slow, LOAD]

ORIGIN = "auditlog"  # the default log_origin: the tenants log's origin
TENANTS = ("acme", "globex")
SCOPES = "events:write,events:read,log:read"
WAIT = 20.0  # seconds any state is awaited
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
#: A down witness is retried with backoff (1 s doubling); it may wait up to twice as long as it
#: was down before it is asked again.
CATCH_UP_WAIT = 40.0


# -- the witnesses ---------------------------------------------------------------------------


class Witness:
    """One ``auditlog witness serve`` process: its key, port and state stay across restarts."""

    def __init__(self, tmp: Path, number: int) -> None:
        self.short = f"w{number}"  # its name in the policy
        self.name = f"witness.test/w{number}"  # its key's name
        self.key_file = tmp / f"{self.short}.key"
        self.state = tmp / f"{self.short}-state"
        self.log_path = tmp / f"{self.short}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        made = auditlog("witness", "key", "--key-file", str(self.key_file), "--name", self.name)
        assert made.returncode == 0, made.stderr
        self.vkey = made.stdout.splitlines()[-1]
        self.key = CosignerKey.from_vkey(self.vkey)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, policy: Path) -> None:
        assert self.process is None or self.process.poll() is not None
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "auditlog", "witness", "serve",
                    "--key-file", str(self.key_file), "--policy", str(policy),
                    "--port", str(self.port), "--state", str(self.state),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment(),
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                assert self.process.poll() is None, f"{self.short} exited:\n{self.log()}"
                assert time.monotonic() < deadline, f"{self.short} did not start:\n{self.log()}"
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/").status_code == 200:
                        return
                time.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM; it must exit 0."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)
        assert self.process.wait(timeout=STOP_TIMEOUT) == 0, self.log()

    def stop(self) -> None:
        """Make sure the process is gone, whatever happened."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def checkpoint(self) -> str:
        """What its monitoring route serves for the tenants log."""
        origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
        answer = httpx.get(f"{self.url}/{origin_hash}/checkpoint", timeout=10.0)
        assert answer.status_code == 200, answer.text
        return answer.text

    def refusals(self) -> list[tuple[int, str]]:
        """The refusals kept in its state: (status, reason)."""
        db = sqlite3.connect(self.state / "witness.db")
        try:
            rows = db.execute("SELECT status, reason FROM refusals ORDER BY id").fetchall()
        finally:
            db.close()
        return [(int(status), str(reason)) for status, reason in rows]


@contextlib.contextmanager
def running(witnesses: list[Witness], policy: Path) -> Iterator[None]:
    try:
        for witness in witnesses:
            witness.start(policy)
        yield
    finally:
        for witness in witnesses:
            witness.stop()


# -- the service ------------------------------------------------------------------------------


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, timeout=30.0, headers={"authorization": f"Bearer {token}"}
    )


def write(server: Server, token: str, prefix: str, count: int = 3) -> list[str]:
    """``count`` events written, acknowledged once a checkpoint covers them; their ids."""
    events = [
        {"id": f"{prefix}-{i}", "type": "witness.test", "data": {"n": i, "word": "quince"}}
        for i in range(count)
    ]
    with client(server, token) as http:
        answer = http.post("/v1/events", params={"wait": "checkpoint"}, json=events)
    assert answer.status_code == 201, answer.text
    return [e["id"] for e in answer.json()["events"]]


def witnesses_state(server: Server, token: str) -> dict[str, Any]:
    with client(server, token) as http:
        answer = http.get("/v1/log/witnesses")
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def by_name(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in state["witnesses"]}


def await_state(
    server: Server, token: str, condition: Callable[[dict[str, Any]], bool], what: str,
    wait: float = WAIT,
) -> dict[str, Any]:  # fmt: skip
    """``GET /v1/log/witnesses`` polled until ``condition`` holds, at most ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        state = witnesses_state(server, token)
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"{what}: not within {wait} s: {state}\n{server.log()}"
        time.sleep(0.1)


def cosigners(note: str, witnesses: list[Witness]) -> set[str]:
    """The witnesses with a cosignature line on ``note`` (their policy names)."""
    signatures = notes.parse(note).signatures
    return {w.short for w in witnesses for s in signatures if w.key.matches(s)}


def await_witnessed(
    server: Server, token: str, size: int, witnesses: list[Witness]
) -> dict[str, Any]:
    """``GET /v1/log/witnessed`` polled until the tenant's witnessed checkpoint covers ``size``
    events and its tenants checkpoint is cosigned by all ``witnesses``."""
    deadline = time.monotonic() + WAIT
    with client(server, token) as http:
        while True:
            answer = http.get("/v1/log/witnessed")
            if answer.status_code == 200:
                found: dict[str, Any] = answer.json()
                tenant_size = int(found["checkpoint"].split("\n")[1])
                names = cosigners(found["tenants_checkpoint"], witnesses)
                if tenant_size >= size and names == {w.short for w in witnesses}:
                    return found
            else:
                assert answer.status_code == 404, answer.text
            assert time.monotonic() < deadline, f"not witnessed: {answer.text}\n{server.log()}"
            time.sleep(0.1)


def verify_url(
    server: Server, token: str, tenant: str, seed: bytes, policy: Path, state: Path, *more: str
) -> subprocess.CompletedProcess[str]:
    tenant_vkey = notes.Signer(f"{ORIGIN}/{tenant}", seed).verifier.vkey
    return auditlog(
        "verify", "--url", server.url, "--token", token, "--public-key", tenant_vkey,
        "--policy", str(policy), "--state", str(state), *more,
    )  # fmt: skip


# -- copies of a store --------------------------------------------------------------------------


def snapshot(storage: Storage, into: Path) -> Callable[[], None]:
    """A copy of the (stopped) store's contents now; the function puts it back (a rollback)."""
    if storage.sqlite_file is not None:
        data = storage.sqlite_file.parent
        shutil.copytree(data, into)

        def restore_files() -> None:
            shutil.rmtree(data)
            shutil.copytree(into, data)

        return restore_files
    url = storage.flags[1]
    copy_url = pgtest.private_url()
    with psycopg.connect(copy_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        copy = row[0]
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n"
                " ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
                " AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            ).fetchall()
        ]
        for table in tables:
            conn.execute(f'CREATE TABLE {copy}."{table}" AS TABLE "{table}"')

    def restore_tables() -> None:
        with psycopg.connect(url) as conn:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
            for table in tables:
                conn.execute(
                    f'INSERT INTO "{table}" OVERRIDING SYSTEM VALUE SELECT * FROM {copy}."{table}"'
                )

    return restore_tables


def another_store(storage: Storage, tmp: Path) -> Storage:
    """An empty store of the same backend as ``storage``."""
    if storage.sqlite_file is not None:
        return Storage.sqlite(tmp)
    return Storage.at(pgtest.private_url())


# -- the scenario -------------------------------------------------------------------------------


def test_three_witnesses_cosign_and_refuse_a_rewritten_log(
    storage: Storage, tmp_path: Path
) -> None:
    seed = os.urandom(32)
    key_file = tmp_path / "log.key"
    key_file.write_text(base64.b64encode(seed).decode() + "\n")
    tenants_vkey = notes.Signer(ORIGIN, seed).verifier.vkey
    witnesses = [Witness(tmp_path, n) for n in (1, 2, 3)]
    w1, w2, w3 = witnesses
    policy = tmp_path / "policy.txt"
    policy.write_text(
        f"log {tenants_vkey}\n"
        + "".join(f"witness {w.short} {w.vkey} {w.url}\n" for w in witnesses)
        + "group g 2 w1 w2 w3\nquorum g\n"
    )
    flags = (
        "--log-signing-key-file", str(key_file), "--checkpoint-interval-ms", "100",
        "--witness-timeout-ms", "2000",
    )  # fmt: skip
    witnessed_flags = (*flags, "--witness-policy", str(policy))
    tokens = {t: create_key(storage, t, SCOPES) for t in TENANTS}
    token = tokens["acme"]
    log = tmp_path / "serve.log"
    verified = tmp_path / "verify-state.json"  # the auditor's memory across the steps

    with running(witnesses, policy):
        # 1. Normal operation.
        with serving(storage, log, *witnessed_flags) as server:
            written = {t: write(server, tokens[t], f"{t}-one") for t in TENANTS}
            for tenant in TENANTS:
                found = await_witnessed(server, tokens[tenant], 3, witnesses)
                assert found["checkpoint"].startswith(f"{ORIGIN}/{tenant}\n")
                assert found["tenants_checkpoint"].startswith(f"{ORIGIN}\n")
            state = await_state(
                server, token,
                lambda s: all(
                    w["cosigned_size"] == s["tenants_size"] and w["last_error"] is None
                    for w in s["witnesses"]
                ),
                "all three cosign the newest",
            )  # fmt: skip
            assert state["tenants_origin"] == ORIGIN
            assert state["tenants_vkey"] == tenants_vkey
            assert state["quorum"] == "group g 2 w1 w2 w3; quorum g"
            assert sorted(by_name(state)) == ["w1", "w2", "w3"]
            assert all(w["refusals"] == 0 for w in state["witnesses"])
            for tenant in TENANTS:
                checked = verify_url(server, tokens[tenant], tenant, seed, policy, verified)
                assert checked.returncode == 0, checked.stdout + checked.stderr
                assert "cosigned by w1, w2, w3" in checked.stdout, checked.stdout

            receipt = tmp_path / "receipt.txt"
            event_id = written["acme"][1]
            fetched = auditlog(
                "proof", "--id", event_id, "--url", server.url, "--token", token,
                "-o", str(receipt),
            )  # fmt: skip
            assert fetched.returncode == 0, fetched.stderr
            acme_vkey = notes.Signer(f"{ORIGIN}/acme", seed).verifier.vkey
            good = auditlog(
                "verify", "--receipt", str(receipt), "--policy", str(policy),
                "--public-key", acme_vkey,
            )  # fmt: skip
            assert good.returncode == 0, good.stdout + good.stderr
            assert f"intact: event {event_id}" in good.stdout
            tampered = tmp_path / "tampered.txt"
            tampered.write_text(change_one_byte_of_the_event(receipt.read_text()))
            bad = auditlog("verify", "--receipt", str(tampered), "--policy", str(policy))
            assert bad.returncode == 1, bad.stdout + bad.stderr
            assert "FAILED" in bad.stdout
            assert server.terminate() == 0
        rollback = snapshot(storage, tmp_path / "copy")

        # 2. One witness down, then back.
        with serving(storage, log, *witnessed_flags) as server:
            before = witnesses_state(server, token)["witnessed_size"]
            w3.terminate()
            for tenant in TENANTS:
                write(server, tokens[tenant], f"{tenant}-two")
            state = await_state(
                server, token,
                lambda s: s["witnessed_size"] is not None
                and s["witnessed_size"] > before
                and by_name(s)["w3"]["last_error"] is not None,
                "the quorum met without w3",
            )  # fmt: skip
            assert "no answer from" in by_name(state)["w3"]["last_error"]
            found = await_witnessed(server, token, 6, [w1, w2])
            assert cosigners(found["tenants_checkpoint"], witnesses) == {"w1", "w2"}
            checked = verify_url(server, token, "acme", seed, policy, verified)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert re.search(r"cosigned by w1, w2$", checked.stdout, re.MULTILINE), checked.stdout

            w3.start(policy)
            for tenant in TENANTS:
                write(server, tokens[tenant], f"{tenant}-three")
            await_state(
                server, token,
                lambda s: by_name(s)["w3"]["cosigned_size"] == s["tenants_size"]
                and by_name(s)["w3"]["last_error"] is None,
                "w3 catches up",
                CATCH_UP_WAIT,
            )  # fmt: skip
            assert server.terminate() == 0
        honest = {w.short: w.checkpoint() for w in witnesses}
        cosigned_size = max(int(note.split("\n")[1]) for note in honest.values())

        # 3a. Rolled back to the copy of step 1: the witnesses are ahead of it.
        rollback()
        with serving(storage, log, *witnessed_flags) as server:
            for tenant in TENANTS:
                write(server, tokens[tenant], f"{tenant}-rolled-back")
            state = await_state(
                server, token,
                lambda s: all(w["refusals"] >= 1 for w in s["witnesses"]),
                "every witness refuses the rolled-back log",
            )  # fmt: skip
            for w in state["witnesses"]:  # the witnesses' 409 name a size it never reached
                assert "rolled back" in w["last_error"], w
            assert "REFUSED" in server.log()
            assert server.terminate() == 0

        # 3b. The rolled-back log grows another history past what the witnesses cosigned, with
        # nobody to push to; then it is pushed: a fork, same origin and key, other leaves.
        with serving(storage, log, *flags) as server:
            grow_past(server, tokens, cosigned_size)
            assert server.terminate() == 0
        with serving(storage, log, *witnessed_flags) as server:
            state = await_state(
                server, token,
                lambda s: all(
                    w["refusals"] >= 1 and "422" in (w["last_error"] or "")
                    for w in s["witnesses"]
                ),
                "every witness refuses the fork with 422",
            )  # fmt: skip
            assert "REFUSED" in server.log()
            # The auditor who verified the log in step 2 is not shown the fork...
            checked = verify_url(server, token, "acme", seed, policy, verified)
            assert checked.returncode == 1, checked.stdout + checked.stderr
            assert "forked" in checked.stdout, checked.stdout
            # ...nor one who never saw the log: only the common prefix, the checkpoint
            # cosigned in step 1, is witnessed, and the fork never will be.
            fresh = verify_url(
                server, token, "acme", seed, policy, tmp_path / "new.json", "--witness-wait", "3"
            )
            assert fresh.returncode == 1, fresh.stdout + fresh.stderr
            assert "not witnessed: the verified checkpoint of size" in fresh.stdout, fresh.stdout
            assert "the newest witnessed checkpoint has size" in fresh.stdout, fresh.stdout
            assert server.terminate() == 0
        for w in witnesses:
            assert any(status == 422 for status, _ in w.refusals()), w.refusals()
            assert "status 422" in w.log()
            assert w.checkpoint() == honest[w.short]

        # 3c. A fresh store with the same key: the log forked from nothing.
        fork = another_store(storage, tmp_path / "fork")
        fork_token = create_key(fork, "acme", SCOPES)
        with serving(fork, tmp_path / "fork.log", *witnessed_flags) as server:
            write(server, fork_token, "forked")
            await_state(
                server, fork_token,
                lambda s: all(w["refusals"] >= 1 for w in s["witnesses"]),
                "every witness refuses the fresh fork",
            )  # fmt: skip
            checked = verify_url(
                server, fork_token, "acme", seed, policy, tmp_path / "fresh-state.json"
            )
            assert checked.returncode != 0, checked.stdout + checked.stderr
            assert "witnessed" in checked.stdout, checked.stdout
            assert "REFUSED" in server.log()
            assert server.terminate() == 0

        # 4. The witnesses restarted from their state still refuse the fork of 3b.
        forks_before = {w.short: forks_refused(w) for w in witnesses}
        for w in witnesses:
            w.terminate()
        for w in witnesses:
            w.start(policy)
        with serving(storage, log, *witnessed_flags) as server:
            deadline = time.monotonic() + WAIT
            while any(forks_refused(w) <= forks_before[w.short] for w in witnesses):
                assert time.monotonic() < deadline, "the restarted witnesses were not asked"
                time.sleep(0.1)
            state = await_state(
                server, token,
                lambda s: all("422" in (w["last_error"] or "") for w in s["witnesses"]),
                "the service sees the restarted witnesses refuse the fork",
            )  # fmt: skip
            assert server.terminate() == 0
        for w in witnesses:
            assert w.checkpoint() == honest[w.short]


def forks_refused(witness: Witness) -> int:
    """How many checkpoints ``witness`` refused as inconsistent with what it cosigned."""
    return sum(status == 422 for status, _ in witness.refusals())


def grow_past(server: Server, tokens: dict[str, str], size: int) -> None:
    """Write until the tenants log has more than ``size`` leaves (bounded)."""
    deadline = time.monotonic() + WAIT
    token = tokens[TENANTS[0]]
    for round_ in range(10_000):
        if witnesses_state(server, token)["tenants_size"] > size:
            return
        assert time.monotonic() < deadline, f"the tenants log did not pass {size}"
        for tenant in TENANTS:
            write(server, tokens[tenant], f"{tenant}-fork{round_}", 1)
    raise AssertionError("unreachable")


def change_one_byte_of_the_event(receipt: str) -> str:
    """The receipt with one byte of its event (the first proof's ``extra``) changed."""
    lines = receipt.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("extra "))
    event = bytearray(base64.b64decode(lines[at].removeprefix("extra ")))
    where = event.index(b"quince")
    event[where] ^= 0x01
    lines[at] = "extra " + base64.b64encode(bytes(event)).decode()
    changed = "\n".join(lines)
    assert tlogproof.split(changed)  # still a well-formed receipt
    return changed
