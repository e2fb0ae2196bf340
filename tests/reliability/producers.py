"""Producer threads that write a mix of events to a real server, recording all in a ``Ledger``.

Each thread has its own keep-alive connection (httpx) and writes, one request after another:
single events with and without a producer-chosen id, JSON-array batches whose events all carry
ids, none do, or some do, and now and then an NDJSON batch. It stops when told to, or at the
first request that gets no answer (the server is gone), or after ``max_requests``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import httpx

from reliability.ledger import Ledger, Sent

REQUEST_TIMEOUT = 30.0
#: How many events a batch holds, at most.
MAX_BATCH = 40
#: Text that exercises the canonical bytes: non-ASCII, escapes, a long word.
_WORDS = ("paid", "refund", "Zürich", "東京", "naïve", 'quote"d', "back\\slash", "x" * 50)


def make_event(rng: random.Random, marker: str, index: int, with_id: bool) -> dict[str, Any]:
    """One event, marked as event ``index`` of request ``marker``."""
    event: dict[str, Any] = {
        "type": rng.choice(("invoice.paid", "user.login", "account created", "file.read")),
        "actor": rng.choice(("alice", "bob", {"id": "svc-7", "type": "service"})),
        "data": {
            "req": marker,
            "i": index,
            "amount": rng.choice((1, 120, 99.5, -3, 10**15)),
            "note": " ".join(rng.choices(_WORDS, k=rng.randint(1, 6))),
            "tags": rng.sample(("a", "b", "c", "d"), k=rng.randint(0, 3)),
        },
    }
    if with_id:
        event["id"] = f"{marker}.{index}"
    if rng.random() < 0.3:
        event["outcome"] = rng.choice(("success", "failure", "unknown"))
    return event


def make_request(rng: random.Random, marker: str, tenant: str) -> Sent:
    """A write request of a random kind."""
    roll = rng.random()
    if roll < 0.35:
        return Sent(marker, tenant, [make_event(rng, marker, 0, True)], batch=False)
    if roll < 0.55:
        return Sent(marker, tenant, [make_event(rng, marker, 0, False)], batch=False)
    size = rng.randint(2, MAX_BATCH)
    if roll < 0.75:
        ids = [True] * size
    elif roll < 0.9:
        ids = [False] * size
    else:
        ids = [rng.random() < 0.5 for _ in range(size)]
    events = [make_event(rng, marker, i, with_id) for i, with_id in enumerate(ids)]
    return Sent(marker, tenant, events, batch=True, ndjson=rng.random() < 0.15)


class Producers:
    """``workers`` threads writing to ``url`` for the tenants of ``tokens`` in turn."""

    def __init__(
        self,
        url: str,
        tokens: dict[str, str],
        ledger: Ledger,
        tag: str,
        *,
        workers: int = 8,
        seed: int = 0,
        max_requests: int = 1_000_000,
        on_answer: Callable[[Sent], None] | None = None,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.ledger = ledger
        self.tag = tag
        self.workers = workers
        self.seed = seed
        self.max_requests = max_requests
        self.on_answer = on_answer
        self.stopping = threading.Event()
        self.answered = threading.Semaphore(0)
        self._threads = [
            threading.Thread(target=self._produce, args=(w,), name=f"producer-{w}", daemon=True)
            for w in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Tell every thread to stop, and wait (bounded) until they have."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"producers still running: {alive}"

    def _produce(self, worker: int) -> None:
        rng = random.Random(f"{self.seed}-{self.tag}-{worker}")
        tenants = sorted(self.tokens)
        clients = {
            t: httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {self.tokens[t]}"},
                timeout=REQUEST_TIMEOUT,
            )
            for t in tenants
        }
        try:
            for n in range(self.max_requests):
                if self.stopping.is_set():
                    return
                tenant = tenants[(worker + n) % len(tenants)]
                sent = make_request(rng, f"{self.tag}-w{worker}-{n}", tenant)
                self.ledger.add(sent)
                sent.post(clients[tenant])
                if self.on_answer is not None:
                    self.on_answer(sent)
                self.answered.release()
                if sent.status is None:
                    return
        finally:
            for client in clients.values():
                client.close()
