"""``auditlog verify --url``: checking a log from outside, through its API alone, as an auditor.

With a token of the tenant (scopes ``log:read`` and ``events:read``) and the log's public key,
obtained out of band and pinned:

1. fetch the latest checkpoint (the signed note) and verify its signature with the pinned key;
2. if a checkpoint of this log was verified before (the state file), demand that the new one
   extends it: the same root at the same size, or a consistency proof from the old size to
   the new one; a smaller size is a rollback, anything else a fork;
3. fetch every event the checkpoint covers through ``GET /v1/events`` and recompute the tree:
   its root must be the checkpoint's. If it is not, find the first event that differs by
   bisection with consistency proofs (is the tree of our first m events a prefix of the
   log's?), and name its seq;
4. only when nothing was wrong, remember the new checkpoint.

A log whose start was pruned by retention (API.md §14) says where it now begins
(``GET /v1/log/pruned``: the horizon H, and the hashes of the perfect subtrees of [0, H)). The
recomputed tree starts from those hashes and the events are fetched from H on: the roots they
give with the kept events prove them, since they must match the signed checkpoint. When they
do not, the bisection never goes below H, and a prefix that is not a prefix of the log's tree
is named as such. The pruned prefix is a notice. A service without that route (``404``) has
pruned nothing.

Uses only the standard library's HTTP client. ``429`` and ``503`` answers are retried after
their ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from auditlog.integrity import IntegrityError, ProofError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.integrity.compact import CompactRange
from auditlog.integrity.hasher import HASH_SIZE, event_leaf_hash
from auditlog.service import pruned
from auditlog.service.logcheck import Finding, Remembered

PAGE = 1000
#: Leaves between two kept snapshots of the tree, for bisection.
SNAPSHOT = 4096


class AuditError(Exception):
    """The check could not be made (unreachable service, refused token, bad key).

    ``status`` is the HTTP status of the answer that stopped it, when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def read_public_key(text: str) -> notes.Verifier | bytes:
    """The pinned key: a vkey (``<name>+<hex id>+<base64>``), or the base64 of the 32 key
    bytes; either given as such or in a file of that name."""
    text = text.strip()
    path = Path(text)
    if "\n" not in text and len(text) < 4096 and path.is_file():
        text = path.read_text(encoding="utf-8").strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == notes.ED25519_KEY_SIZE:  # (a vkey is never 44 characters of base64)
        return raw
    if text.count("+") >= 2:
        try:
            return notes.Verifier.from_vkey(text)
        except IntegrityError as exc:
            raise AuditError(f"--public-key: {exc}") from None
    raise AuditError(
        "--public-key: expected the vkey of GET /v1/log/public-key "
        "(<name>+<key id>+<key>), the base64 of a 32-byte Ed25519 key, or a file of either"
    )


class ApiClient:
    """GET requests to the service with a bearer token; retries 429 and 503."""

    def __init__(self, url: str, token: str, timeout: float = 30.0, patience: float = 120.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.patience = patience

    def get(
        self, path: str, params: Sequence[tuple[str, str]] = (), accept: str = "application/json"
    ) -> bytes:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        request = urllib.request.Request(  # noqa: S310 (the URL is the operator's)
            url, headers={"Authorization": f"Bearer {self.token}", "Accept": accept}
        )
        deadline = time.monotonic() + self.patience
        while True:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                    body: bytes = answer.read()
                    return body
            except urllib.error.HTTPError as exc:
                detail = _detail(exc)
                if exc.code in (429, 503) and time.monotonic() < deadline:
                    time.sleep(_retry_after(exc.headers.get("Retry-After")))
                    continue
                raise AuditError(f"GET {path} answered {exc.code}: {detail}", exc.code) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise AuditError(f"GET {url}: {reason}") from None

    def json(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        try:
            return orjson.loads(self.get(path, params))
        except orjson.JSONDecodeError as exc:
            raise AuditError(f"GET {path}: the answer is not JSON: {exc}") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(orjson.loads(exc.read()).get("detail", exc.reason))
    except (orjson.JSONDecodeError, AttributeError, OSError):
        return str(exc.reason)


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.1), 30.0)
    except ValueError:
        return 1.0


@dataclass(slots=True)
class RemoteReport:
    """What checking a log through its API found."""

    origin: str = ""
    tenant: str = ""
    checkpoint: checkpoints.Checkpoint | None = None
    note: str = ""
    events: int = 0
    findings: list[Finding] = field(default_factory=list)
    notices: list[Finding] = field(default_factory=list)
    #: The first kept seq: the events before it were pruned by retention (0: none was).
    horizon: int = 0
    #: The key the tenant's checkpoints were checked with.
    verifier: notes.Verifier | None = None


class _Tree:
    """Leaf hashes in order from ``base`` on (the pruned prefix's compact range, or the empty
    tree), with snapshots of the compact range for prefix roots."""

    def __init__(self, base: CompactRange | None = None) -> None:
        self.start = 0 if base is None else base.size
        self.leaves = bytearray()
        self.snapshots = [base or CompactRange()]

    @property
    def size(self) -> int:
        return self.start + len(self.leaves) // HASH_SIZE

    def append(self, h: bytes) -> None:
        self.leaves += h
        if (self.size - self.start) % SNAPSHOT == 0:
            last = self.snapshots[-1]
            grown, _ = last.extend(self._hashes(last.size, self.size))
            self.snapshots.append(grown)

    def _hashes(self, start: int, end: int) -> list[bytes]:
        data, first = self.leaves, self.start
        return [
            bytes(data[(i - first) * HASH_SIZE : (i - first + 1) * HASH_SIZE])
            for i in range(start, end)
        ]

    def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves; ``size`` at least ``start``."""
        base = self.snapshots[(size - self.start) // SNAPSHOT]
        grown, _ = base.extend(self._hashes(base.size, size))
        return grown.root


def check_remote(
    client: ApiClient,
    key: notes.Verifier | bytes,
    remembered: Callable[[str], Remembered | None],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RemoteReport:
    """Check the log behind ``client`` (see the module). ``remembered(origin)`` gives the
    checkpoint verified before, if any. Raises ``AuditError`` when it cannot check."""
    report = RemoteReport()
    text = client.get("/v1/log/checkpoint", accept="text/plain").decode("utf-8", "replace")
    verifier = _verifier(client, key, text)
    report.origin = verifier.name
    report.verifier = verifier
    report.tenant = verifier.name.rsplit("/", 1)[-1]

    def find(seq: int | None, kind: str, detail: str) -> None:
        report.findings.append(Finding(report.tenant, seq, kind, detail))

    try:
        signed = checkpoints.verify(text, verifier, origin=verifier.name)
    except IntegrityError as exc:
        find(None, "signature", f"the latest checkpoint: {exc}")
        return report
    report.checkpoint, report.note = signed, text
    previous = remembered(verifier.name)
    if previous is not None:
        _check_extends(client, signed, previous, find)
    base = _pruned_prefix(client, signed, report, find)
    if base is not None:
        _check_events(client, signed, report, find, progress, base)
    return report


#: The finding of a pruned prefix whose hashes do not lead to the log's roots.
NOT_THE_LOGS = "the pruned prefix's hashes are not the log's"


def _pruned_prefix(
    client: ApiClient,
    signed: checkpoints.Checkpoint,
    report: RemoteReport,
    find: Callable[[int | None, str, str], None],
) -> CompactRange | None:
    """The compact range the recomputed tree starts from: the pruned prefix the service gives
    (``GET /v1/log/pruned``), or the empty tree; ``None`` when it cannot be used."""
    try:
        answer = client.json("/v1/log/pruned")
    except AuditError as exc:
        if exc.status == 404:  # a service from before pruning: nothing is pruned
            return CompactRange()
        raise
    horizon = answer.get("horizon") if isinstance(answer, dict) else None
    hashes = answer.get("prefix") if isinstance(answer, dict) else None
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not isinstance(hashes, list):
        raise AuditError("GET /v1/log/pruned: the answer is not a pruned prefix")
    if horizon == 0 and not hashes:
        return CompactRange()
    report.horizon = horizon
    report.notices.append(Finding(report.tenant, 0, "pruned", _describe(horizon, answer)))
    try:
        base = CompactRange(horizon, tuple(base64.b64decode(h, validate=True) for h in hashes))
    except (ValueError, TypeError, binascii.Error) as exc:
        find(0, "pruned prefix", f"{NOT_THE_LOGS}: {exc}")
        return None
    if horizon > signed.size:
        find(
            0,
            "pruned prefix",
            f"{NOT_THE_LOGS}: seq 0..{horizon - 1} are said to be pruned, but the latest "
            f"checkpoint covers only {signed.size} events",
        )
        return None
    return base


def _describe(horizon: int, answer: dict[str, Any]) -> str:
    """The pruned prefix in words: the seqs, and the archives recorded of them."""
    archives = answer.get("archives")
    spans: list[pruned.Held] = []
    for a in archives if isinstance(archives, list) else []:
        if isinstance(a, dict):
            first, end, sha = a.get("first_seq"), a.get("end_seq"), a.get("sha256")
            if isinstance(first, int) and isinstance(end, int):
                spans.append((first, end, str(sha)))
    return pruned.describe(horizon, spans)


def _verifier(client: ApiClient, key: notes.Verifier | bytes, text: str) -> notes.Verifier:
    if isinstance(key, notes.Verifier):
        return key
    # A bare key names no log: the origin is the checkpoint's, which must be the caller's
    # tenant's, so that another tenant's log (signed by the same key) is not taken for it.
    try:
        origin = checkpoints.parse(notes.parse(text).text).origin
    except IntegrityError as exc:
        raise AuditError(f"the checkpoint is malformed: {exc}") from None
    tenant = client.json("/v1/auth/whoami").get("tenant")
    if not isinstance(tenant, str) or not origin.endswith("/" + tenant):
        raise AuditError(f"the checkpoint's origin {origin!r} is not of the token's tenant")
    try:
        return notes.Verifier(origin, key)
    except IntegrityError as exc:
        raise AuditError(f"the checkpoint's origin {origin!r}: {exc}") from None


def _check_extends(
    client: ApiClient,
    signed: checkpoints.Checkpoint,
    previous: Remembered,
    find: Callable[[int | None, str, str], None],
) -> None:
    earlier = f"the checkpoint of size {previous.size} verified on {previous.verified_at}"
    if signed.size < previous.size:
        find(
            signed.size,
            "rolled back",
            f"the log's checkpoint has size {signed.size}, smaller than {earlier}: seq "
            f"{signed.size}..{previous.size - 1} are gone",
        )
    elif signed.size == previous.size:
        if signed.root_hash != previous.root_hash:
            find(
                None,
                "forked",
                f"the checkpoint of size {signed.size} has another root than {earlier}",
            )
    else:
        answer = client.json(
            "/v1/log/proof/consistency",
            [("first", str(previous.size)), ("second", str(signed.size))],
        )
        try:
            path = [base64.b64decode(h, validate=True) for h in answer["hashes"]]
            proofs.verify_consistency(
                previous.size, signed.size, path, previous.root_hash, signed.root_hash
            )
        except (ProofError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            find(
                None,
                "forked",
                f"the checkpoint of size {signed.size} does not extend {earlier}: {exc}",
            )


def _check_events(
    client: ApiClient,
    signed: checkpoints.Checkpoint,
    report: RemoteReport,
    find: Callable[[int | None, str, str], None],
    progress: Callable[[int, int], None],
    base: CompactRange,
) -> None:
    tree = _Tree(base)
    aligned = True
    cursor: str | None = None
    while True:
        params = [("order", "asc"), ("limit", str(PAGE)), ("seq[lt]", str(signed.size))]
        if tree.start:
            params.append(("seq[gte]", str(tree.start)))
        if cursor is not None:
            params.append(("cursor", cursor))
        page = client.json("/v1/events", params)
        events = page.get("events") if isinstance(page, dict) else None
        if not isinstance(events, list):
            raise AuditError("GET /v1/events: the answer is not a page of events")
        for event in events:
            seq = event.get("seq") if isinstance(event, dict) else None
            if not isinstance(seq, int) or seq != tree.size:
                if aligned:
                    if isinstance(seq, int) and seq > tree.size:
                        find(
                            tree.size,
                            "removed",
                            f"seq {tree.size}..{seq - 1} are missing from the events the API returns",
                        )
                    else:
                        find(
                            tree.size,
                            "moved",
                            f"the API returns seq {seq} where seq {tree.size} belongs",
                        )
                aligned = False
                continue
            if event.get("tenant") != report.tenant:
                find(seq, "foreign", f"the event is of tenant {event.get('tenant')!r}")
            tree.append(event_leaf_hash(event))
        report.events += len(events)
        progress(len(events), signed.size - tree.start)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if not aligned:
        return
    if tree.size < signed.size:
        find(
            tree.size,
            "removed",
            f"seq {tree.size}..{signed.size - 1} are covered by the checkpoint, but the API "
            "does not return them",
        )
        return
    if tree.root(signed.size) != signed.root_hash:
        bad = _first_difference(client, tree, signed)
        if bad is None:
            find(
                0,
                "pruned prefix",
                f"{NOT_THE_LOGS}: with them the tree of {tree.start} events is not a prefix of "
                f"the checkpoint of size {signed.size}",
            )
            return
        find(
            bad,
            "changed",
            f"the event the API returns for seq {bad} is not the one the log's tree holds",
        )


def _is_prefix(client: ApiClient, tree: _Tree, size: int, signed: checkpoints.Checkpoint) -> bool:
    """Whether our tree of ``size`` leaves is a prefix of the signed one (a consistency proof)."""
    if size == signed.size:
        return tree.root(size) == signed.root_hash
    answer = client.json(
        "/v1/log/proof/consistency", [("first", str(size)), ("second", str(signed.size))]
    )
    try:
        path = [base64.b64decode(h, validate=True) for h in answer["hashes"]]
        proofs.verify_consistency(size, signed.size, path, tree.root(size), signed.root_hash)
    except (ProofError, KeyError, TypeError, ValueError, binascii.Error):
        return False
    return True


def _first_difference(client: ApiClient, tree: _Tree, signed: checkpoints.Checkpoint) -> int | None:
    """The first seq where our events and the log's tree part, by bisection on prefixes,
    never below the pruned prefix; ``None`` when the pruned prefix itself is not the log's."""
    if tree.start and not _is_prefix(client, tree, tree.start, signed):
        return None
    # Our first `good` events are the log's; our first `bad` are not.
    good, bad = tree.start, signed.size
    while bad - good > 1:
        middle = (good + bad) // 2
        if _is_prefix(client, tree, middle, signed):
            good = middle
        else:
            bad = middle
    return good
