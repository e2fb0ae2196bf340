"""What producers sent and what they were answered, checked against what a server stores.

A ``Ledger`` records every write request of a workload: its events, and its answer (a status
and body) or that no answer came (the connection failed: the server was killed, or refused the
connection). ``check`` then reads the tenants' logs back through the API and holds them to the
promises of API.md §2:

* every event that got a 2xx is stored exactly once, with the ``seq`` it was answered with,
  and a single event's stored bytes are the very bytes of its answer (GET and listing);
* a request answered with anything else left nothing behind;
* a request that got no answer is either wholly stored or not at all (a batch is atomic);
* each tenant's ``seq`` runs 0, 1, 2, ... without a gap.

Every event carries a marker in its ``data`` (``req``: the request, ``i``: its place in the
request), so events the server named itself are found again, and a batch's parts are counted.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from live_server import is_own_record

#: Problems listed in a report; the counts cover the rest.
MAX_PROBLEMS = 20
_LISTING_HEAD = '{"events":['


@dataclass
class Sent:
    """One write request and what came of it."""

    marker: str
    tenant: str
    events: list[dict[str, Any]]
    batch: bool
    ndjson: bool = False
    #: The HTTP status, or None while unanswered or when no answer came.
    status: int | None = None
    body: bytes = b""
    retry_after: str | None = None
    error: str = ""

    @property
    def ids_given(self) -> bool:
        """Whether every event carries a producer-chosen id, so a retry is idempotent."""
        return all("id" in e for e in self.events)

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def content(self) -> bytes:
        if self.ndjson:
            return b"".join(orjson.dumps(e) + b"\n" for e in self.events)
        return orjson.dumps(self.events if self.batch else self.events[0])

    def headers(self) -> dict[str, str]:
        kind = "application/x-ndjson" if self.ndjson else "application/json"
        return {"Content-Type": kind}

    def post(self, client: httpx.Client) -> None:
        """Send it once and note the outcome (a transport failure is an outcome too)."""
        try:
            response = client.post("/v1/events", content=self.content(), headers=self.headers())
        except httpx.TransportError as exc:
            self.status, self.body, self.error = None, b"", f"{type(exc).__name__}: {exc}"
            return
        self.status, self.body, self.error = response.status_code, response.content, ""
        self.retry_after = response.headers.get("retry-after")


class Ledger:
    """Every request of a workload, shared by its producer threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Sent] = []

    def add(self, sent: Sent) -> None:
        with self._lock:
            self.requests.append(sent)

    def statuses(self) -> Counter[str]:
        with self._lock:
            return Counter(
                "no answer" if r.status is None else str(r.status) for r in self.requests
            )

    def acknowledged_events(self) -> int:
        with self._lock:
            return sum(len(r.events) for r in self.requests if r.acknowledged)

    def unanswered(self) -> list[Sent]:
        with self._lock:
            return [r for r in self.requests if r.status is None]


# -- reading a log back, byte for byte ---------------------------------------------------------


def split_listing(body: bytes) -> tuple[list[bytes], str | None]:
    """The raw bytes of each event of a ``GET /v1/events`` page, and its ``next_cursor``."""
    text = body.decode()
    if not text.startswith(_LISTING_HEAD):
        raise AssertionError(f"a listing that does not start with {_LISTING_HEAD}: {text[:80]}")
    decoder = json.JSONDecoder()
    items: list[bytes] = []
    at = len(_LISTING_HEAD)
    while text[at] != "]":
        _, end = decoder.raw_decode(text, at)
        items.append(text[at:end].encode())
        at = end + 1 if text[end] == "," else end
    cursor = json.loads(text)["next_cursor"]
    return items, cursor


def stored_log(client: httpx.Client) -> list[bytes]:
    """Every stored event of the client's tenant as the bytes the listing gives, in seq order."""
    found: list[bytes] = []
    params: dict[str, str] = {"order": "asc", "limit": "1000"}
    for _ in range(100_000):
        response = client.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        items, cursor = split_listing(response.content)
        found.extend(items)
        if cursor is None:
            return found
        params["cursor"] = cursor
    raise AssertionError("the listing did not end")


# -- the check -----------------------------------------------------------------------------------


@dataclass
class Report:
    """What a check found. ``problems`` is empty when every promise held."""

    tenants: int = 0
    stored_events: int = 0
    acknowledged_requests: int = 0
    acknowledged_events: int = 0
    unanswered_requests: int = 0
    unanswered_stored: int = 0
    lost: int = 0
    duplicates: int = 0
    partial: int = 0
    changed: int = 0
    refused_but_stored: int = 0
    seq_gaps: int = 0
    fetched: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("... and more")


def check(
    ledger: Ledger, clients: dict[str, httpx.Client], fetch_limit: int | None = None
) -> Report:
    """Hold each tenant's stored log (read through ``clients``, one per tenant) to the ledger.

    ``fetch_limit``: how many acknowledged single events are also fetched one by one with
    ``GET /v1/events/{id}`` (all when None).
    """
    report = Report(tenants=len(clients))
    by_tenant: dict[str, list[Sent]] = defaultdict(list)
    for sent in ledger.requests:
        by_tenant[sent.tenant].append(sent)
    for tenant, client in sorted(clients.items()):
        _check_tenant(report, tenant, client, by_tenant.get(tenant, []), fetch_limit)
    return report


def _check_tenant(
    report: Report,
    tenant: str,
    client: httpx.Client,
    requests: list[Sent],
    fetch_limit: int | None,
) -> None:
    raw = stored_log(client)
    report.stored_events += len(raw)
    parsed = [orjson.loads(b) for b in raw]
    seqs = [e["seq"] for e in parsed]
    if seqs != list(range(len(seqs))):
        missing = sorted(set(range(len(seqs))) - set(seqs))
        report.seq_gaps += max(len(missing), 1)
        report.problem(f"tenant {tenant}: seqs are not 0..{len(seqs) - 1} (missing {missing[:5]})")
    by_id: dict[str, list[int]] = defaultdict(list)
    by_marker: dict[str, list[int]] = defaultdict(list)
    for at, event in enumerate(parsed):
        if event.get("tenant") != tenant:
            report.problem(f"tenant {tenant}: seq {event.get('seq')} belongs to {event['tenant']}")
        by_id[event["id"]].append(at)
        if not is_own_record(event) and isinstance(event.get("data"), dict):
            marker = event["data"].get("req")
            if isinstance(marker, str):
                by_marker[marker].append(at)
    for event_id, places in by_id.items():
        if len(places) > 1:
            report.duplicates += len(places) - 1
            report.problem(f"tenant {tenant}: id {event_id!r} is stored {len(places)} times")

    fetch = []
    for sent in requests:
        places = by_marker.get(sent.marker, [])
        found = Counter(parsed[at]["data"].get("i") for at in places)
        if any(n > 1 for n in found.values()):
            report.duplicates += sum(n - 1 for n in found.values())
            report.problem(f"{sent.marker}: an event of it is stored more than once")
        if sent.acknowledged:
            report.acknowledged_requests += 1
            report.acknowledged_events += len(sent.events)
            lost = len(sent.events) - len(found)
            if lost:
                report.lost += lost
                report.problem(f"{sent.marker}: acknowledged ({sent.status}), {lost} events lost")
                continue
            if sent.batch:
                _check_batch_answer(report, sent, parsed, places)
            else:
                stored = raw[places[0]]
                if stored != sent.body:
                    report.changed += 1
                    report.problem(
                        f"{sent.marker}: stored {stored[:200]!r}, answered {sent.body[:200]!r}"
                    )
                fetch.append((orjson.loads(sent.body)["id"], sent))
        elif sent.status is not None:
            if places:
                report.refused_but_stored += len(places)
                report.problem(f"{sent.marker}: answered {sent.status}, yet {len(places)} stored")
        else:
            report.unanswered_requests += 1
            if found:
                report.unanswered_stored += 1
            if found and len(found) != len(sent.events):
                report.partial += 1
                report.problem(
                    f"{sent.marker}: no answer, and {len(found)} of its "
                    f"{len(sent.events)} events are stored"
                )
    for event_id, sent in fetch[:fetch_limit]:
        response = client.get(f"/v1/events/{event_id}")
        report.fetched += 1
        if response.status_code != 200 or response.content != sent.body:
            report.changed += 1
            report.problem(
                f"{sent.marker}: GET {event_id} answered {response.status_code} "
                f"{response.content[:200]!r}, not the acknowledged bytes"
            )


def _check_batch_answer(
    report: Report, sent: Sent, parsed: list[dict[str, Any]], places: list[int]
) -> None:
    """A batch's answer names each event's id and seq; each must be what is stored."""
    answered = orjson.loads(sent.body)["events"]
    stored = {parsed[at]["data"]["i"]: parsed[at] for at in places}
    for index, item in enumerate(answered):
        event = stored.get(index)
        given = sent.events[index].get("id")
        if (
            event is None
            or event["id"] != item["id"]
            or event["seq"] != item["seq"]
            or (given is not None and given != item["id"])
            or event["type"] != sent.events[index]["type"]
            or event["data"] != sent.events[index]["data"]
        ):
            report.changed += 1
            report.problem(f"{sent.marker}[{index}]: answered {item}, stored {event}")
