"""Kill a loaded server with SIGKILL, restart it on the same store, and check what survived.

``CrashRun`` drives the rounds shared by ``tests/reliability/test_crash.py`` (a few kills) and
``bench/crash.py`` (many): each round loads the running server with producer threads, kills it
at a random moment, starts a new server on the same store, retries the idempotent requests
that got no answer (as a producer would), and checks the whole ledger against the stored logs
(``reliability.ledger.check``). ``finish`` stops the last server with SIGTERM and checks the
store below the API: ``auditlog verify`` and, for SQLite, ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from live_server import Server, Storage, create_key, verify
from reliability.ledger import Ledger, Report, check
from reliability.producers import REQUEST_TIMEOUT, Producers

#: Serve flags of the crash runs: reads are neither recorded in the log nor rate limited, so
#: the checks, which read everything back after each kill, do not add to what they check.
CRASH_FLAGS = ("--no-audit-reads", "--read-rate", "0", "--write-rate", "0")
SCOPES = "events:write,events:read"


@dataclass
class Round:
    """One kill: when it came, what was in flight, and what the check found."""

    number: int
    kill_after: float
    requests: int
    unanswered: int
    #: Of those, requests the kill cut off after they were sent (not a refused connection).
    in_flight: int
    retried: int
    #: Retries answered 200: committed before the kill, but the answer never left.
    committed_unanswered: int
    report: Report


@dataclass
class CrashRun:
    storage: Storage
    workdir: Path
    seed: int
    seconds: float = 1.0
    workers: int = 8
    tenants: tuple[str, ...] = ("t1", "t2")
    fetch_limit: int | None = None
    flags: tuple[str, ...] = CRASH_FLAGS
    ledger: Ledger = field(default_factory=Ledger)
    rounds: list[Round] = field(default_factory=list)
    server: Server | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    starts: int = 0

    def start(self) -> None:
        """Make a key per tenant and start the first server."""
        self.tokens = {t: create_key(self.storage, t, SCOPES) for t in self.tenants}
        self.server = self._serve()

    def _serve(self) -> Server:
        self.starts += 1
        log = self.workdir / f"serve-{self.starts}.log"
        server = Server(self.storage, log, *self.flags)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _clients(self, server: Server) -> dict[str, httpx.Client]:
        return {
            tenant: httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=REQUEST_TIMEOUT,
            )
            for tenant, token in self.tokens.items()
        }

    def crash_round(self) -> Round:
        """Load, SIGKILL at a random moment, restart, retry, check."""
        assert self.server is not None
        number = len(self.rounds) + 1
        rng = random.Random(f"{self.seed}-round-{number}")
        before = len(self.ledger.requests)
        producers = Producers(
            self.server.url,
            self.tokens,
            self.ledger,
            f"s{self.seed}r{number}",
            workers=self.workers,
            seed=self.seed,
        )
        kill_after = rng.uniform(0.0, self.seconds)
        producers.start()
        try:
            # The kill lands while writes flow: after the first answer, at a random moment.
            assert producers.answered.acquire(timeout=REQUEST_TIMEOUT), self.server.log()
            time.sleep(kill_after)
            self.server.kill()
        finally:
            producers.stop()
        self.server.stop()
        unanswered = [s for s in self.ledger.requests[before:] if s.status is None]
        self.server = self._serve()
        clients = self._clients(self.server)
        try:
            retried = committed = 0
            for sent in unanswered:
                if sent.ids_given:  # a retry with the same ids is safe: at most once
                    sent.post(clients[sent.tenant])
                    assert sent.status in (200, 201), (sent.marker, sent.status, sent.body)
                    retried += 1
                    committed += sent.status == 200
            report = check(self.ledger, clients, self.fetch_limit)
        finally:
            for client in clients.values():
                client.close()
        done = Round(
            number,
            kill_after,
            len(self.ledger.requests) - before,
            len(unanswered),
            sum(1 for s in unanswered if not s.error.startswith("ConnectError")),
            retried,
            committed,
            report,
        )
        self.rounds.append(done)
        return done

    def finish(self) -> tuple[int, str, str]:
        """SIGTERM the last server; (its exit status, verify's output, integrity_check's)."""
        assert self.server is not None
        returncode = self.server.terminate()
        self.server.stop()
        self.server = None
        verified = verify(self.storage)
        if verified.returncode != 0:
            return returncode, verified.stdout + verified.stderr, ""
        return returncode, verified.stdout, sqlite_integrity(self.storage)

    def stop(self) -> None:
        """Make sure the server is gone, whatever happened."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def sqlite_integrity(storage: Storage) -> str:
    """``PRAGMA integrity_check`` of the SQLite files (events and search index): ``ok`` when
    sound; ``ok`` for other backends, which have no such files."""
    if storage.sqlite_file is None:
        return "ok"
    results = []
    for path in (storage.sqlite_file, Path(str(storage.sqlite_file) + "-terms")):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
        results.append("; ".join(str(r[0]) for r in rows))
    return "ok" if all(r == "ok" for r in results) else " / ".join(results)
