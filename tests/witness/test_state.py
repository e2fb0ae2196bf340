"""The witness's state: atomic check-and-record, a restart that still refuses a fork, and the
bounded table of refusals."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from auditlog.integrity.cosignature import Cosigner
from auditlog.witness import state as states
from auditlog.witness.app import WitnessApp
from auditlog.witness.state import State
from auditlog.witness.verifier import (
    Accepted,
    Recorded,
    Refused,
    Submission,
    accept,
    check,
    logs_of_policy,
    open_request,
)
from witness.logs import TestLog, witness

NOW = 1_700_000_000
OTHER_ROOT = hashlib.sha256(b"another tree").digest()


def _acceptor(
    log: TestLog, body: bytes, cosigner: Cosigner, pause: float = 0.0
) -> tuple[Submission, Callable[[Recorded], Accepted]]:
    submission = open_request(body, logs_of_policy(log.policy()))

    def accepting(recorded: Recorded) -> Accepted:
        time.sleep(pause)  # hold the transaction open, so that the other request waits on it
        check(submission, recorded)
        return accept(submission, cosigner, NOW)

    return submission, accepting


def _race(first: State, second: State, log: TestLog) -> list[object]:
    """Two requests from old size 0, for sizes 3 and 8, at once: what each one got."""
    cosigner = witness()
    results: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int, target: State, size: int) -> None:
        submission, accepting = _acceptor(log, log.body(0, size), cosigner, pause=0.2)
        barrier.wait()
        try:
            results[i] = target.add(submission.origin, submission.old_size, accepting)
        except Refused as refused:
            results[i] = refused

    threads = [
        threading.Thread(target=run, args=(0, first, 3)),
        threading.Thread(target=run, args=(1, second, 8)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.parametrize("shared", [True, False], ids=["one-state", "two-connections"])
def test_two_requests_from_one_old_size_race_and_exactly_one_wins(
    tmp_path: Path, shared: bool
) -> None:
    """Threads on one State, or on two States of one file as two processes would be."""
    log = TestLog(leaves=8)
    first = State(tmp_path)
    second = first if shared else State(tmp_path)
    try:
        results = _race(first, second, log)
        won = [r for r in results if isinstance(r, Accepted)]
        lost = [r for r in results if isinstance(r, Refused)]
        assert len(won) == 1, results
        assert len(lost) == 1, results
        assert lost[0].status == 409
        assert lost[0].size == won[0].size
        assert first.recorded(log.origin) == Recorded(won[0].size, log.root(won[0].size))
        assert second.recorded(log.origin) == first.recorded(log.origin)
    finally:
        first.close()
        if not shared:
            second.close()


def test_a_refused_check_leaves_the_record(tmp_path: Path) -> None:
    log = TestLog(leaves=8)
    cosigner = witness()
    state = State(tmp_path)
    try:
        submission, accepting = _acceptor(log, log.body(0, 5), cosigner)
        state.add(submission.origin, 0, accepting)
        submission, accepting = _acceptor(log, log.body(5, 5, root=OTHER_ROOT), cosigner)
        with pytest.raises(Refused) as refused:
            state.add(submission.origin, 5, accepting)
        assert refused.value.status == 422
        assert state.recorded(log.origin) == Recorded(5, log.root(5))
        with pytest.raises(Refused) as refused:
            state.add(log.origin, 4, accepting)
        assert (refused.value.status, refused.value.size) == (409, 5)
    finally:
        state.close()


def test_after_a_restart_a_fork_is_still_refused(tmp_path: Path) -> None:
    log = TestLog(leaves=8)
    cosigner = witness()
    logs = logs_of_policy(log.policy())
    state = State(tmp_path)
    app = WitnessApp(cosigner, logs, state, clock=lambda: NOW)
    assert app.add_checkpoint(log.body(0, 5)).status == 200
    state.close()

    state = State(tmp_path)
    try:
        app = WitnessApp(cosigner, logs, state, clock=lambda: NOW + 1)
        assert state.recorded(log.origin) == Recorded(5, log.root(5))
        fork = app.add_checkpoint(log.body(5, 5, root=OTHER_ROOT))
        assert fork.status == 422
        assert fork.reason.startswith("fork: the checkpoint of size 5 has root")
        behind = app.add_checkpoint(log.body(3, 8))
        assert (behind.status, behind.body) == (409, "5\n")
        fresh_start = app.add_checkpoint(log.body(0, 8))
        assert (fresh_start.status, fresh_start.body) == (409, "5\n")
        assert app.add_checkpoint(log.body(5, 8)).status == 200
        assert state.recorded(log.origin) == Recorded(8, log.root(8))
        # The refusals are kept, newest first, with the checkpoint as the log signed it.
        refusals = state.refusals()
        assert [(r.status, r.origin, r.time) for r in refusals] == [
            (409, log.origin, NOW + 1),
            (409, log.origin, NOW + 1),
            (422, log.origin, NOW + 1),
        ]
        assert refusals[2].checkpoint == log.checkpoint(5, OTHER_ROOT)
        assert refusals[2].reason == fork.reason
    finally:
        state.close()


def test_the_latest_checkpoint_by_origin_hash(tmp_path: Path) -> None:
    log = TestLog(leaves=4)
    cosigner = witness()
    state = State(tmp_path)
    try:
        digest = hashlib.sha256(log.origin.encode()).hexdigest()
        assert state.latest(digest) is None
        app = WitnessApp(cosigner, logs_of_policy(log.policy()), state, clock=lambda: NOW)
        assert app.add_checkpoint(log.body(0, 4)).status == 200
        stored = state.latest(digest)
        assert stored is not None
        assert (stored.origin, stored.size, stored.root_hash) == (log.origin, 4, log.root(4))
        assert stored.received == log.checkpoint(4)
        assert stored.cosigned_at == NOW
        assert stored.cosigned.startswith(stored.received)
    finally:
        state.close()


def test_sizes_beyond_sqlite_integers_are_kept_exactly(tmp_path: Path) -> None:
    state = State(tmp_path)
    try:
        size = 2**64 - 1
        root = hashlib.sha256(b"big").digest()
        accepted = Accepted("big.example/log", size, root, NOW, "r\n", "c\n", "line\n")
        state.add("big.example/log", 0, lambda recorded: accepted)
        assert state.recorded("big.example/log") == Recorded(size, root)
    finally:
        state.close()


def test_refusals_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(states, "MAX_REFUSALS", 5)
    state = State(tmp_path)
    try:
        for i in range(12):
            state.refuse(NOW + i, "example.com/log", 422, f"refusal {i}", "note\n")
        assert [r.reason for r in state.refusals()] == [f"refusal {i}" for i in range(11, 6, -1)]
    finally:
        state.close()


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    State(tmp_path / "new" / "dir").close()
    db = sqlite3.connect(tmp_path / "new" / "dir" / "witness.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()


def test_an_unusable_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(states.StateError, match="cannot open the witness state"):
        State(tmp_path / "file")
