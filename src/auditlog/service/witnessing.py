"""Pushing the tenants log's checkpoints to witnesses, and keeping their cosignatures.

The witnesses are those of the service's policy (``witness_policy``, C2SP tlog-policy; each
``witness`` line with its submission URL). Each new checkpoint of the tenants log is pushed
to every witness at once, as C2SP tlog-witness ``add-checkpoint`` asks: the size the witness
last cosigned (``old``), the consistency proof from that size, and the signed checkpoint.

* A witness's last size is not known after a start: the first push says ``old 0``, and the
  witness's ``409`` (``text/x.tlog.size``) tells the size to prove from; the push is made
  again at once from there.
* ``200`` carries cosignature lines; each is checked with the witness's key from the policy
  before it is kept, merged into the checkpoint's note, with the store (``add_cosignatures``),
  along with whether the cosigners now meet the policy's quorum.
* A refusal (``400``, ``403``, ``404``, ``422``, a ``409`` naming a size larger than this log
  has, or a cosignature that does not verify) is an alarm: the log may have been forked or
  rolled back, or the witness is not set up for it. It is logged at ERROR, counted in
  ``auditlog_witness_refusals_total`` and kept in the witness's state (``GET
  /v1/log/witnesses``); the witness is asked again after ``REFUSED_RETRY_SECONDS``.
* No answer (timeout, connection refused, 5xx) is retried with backoff (1 s doubling to
  ``MAX_BACKOFF_SECONDS``).

Only the process whose turn it is to integrate (``Store.integrating``) pushes. Pushing never
holds up a write: it runs in its own task, woken by the integrator when it stores a tenants
checkpoint, and pushes only the newest one (a witness that was behind gets a proof from its
size to the newest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from auditlog.errors import ConfigError, StorageError
from auditlog.integrity import IntegrityError, tlogproof
from auditlog.integrity import cosignature as cosignatures
from auditlog.integrity import note as notes
from auditlog.integrity import policy as policies
from auditlog.integrity import proof as proofs
from auditlog.integrity.policy import Policy, PolicyWitness
from auditlog.metrics import Metrics
from auditlog.model import times
from auditlog.service.proofs import with_nodes
from auditlog.storage.base import Store, StoredCheckpoint, WitnessState

log = logging.getLogger("auditlog.witnessing")

#: Seconds before a witness that refused a checkpoint is asked again.
REFUSED_RETRY_SECONDS = 30.0
#: The longest wait between two tries of a witness that does not answer.
MAX_BACKOFF_SECONDS = 60.0
#: Seconds between rounds when nothing wakes the pusher (a witness to catch up, say).
ROUND_SECONDS = 1.0
#: 409 answers followed within one push before giving up until the next round.
MAX_RESYNCS = 2
#: Seconds between two stores of a witness's state that only moved its cosigned size.
KEEP_SECONDS = 5.0
#: The largest answer read from a witness.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(slots=True)
class _Witness:
    """What this process knows of one witness of the policy."""

    policy: PolicyWitness
    url: str
    size: int = -1  # the size it last cosigned; -1: not known (push with old 0)
    error: str = ""
    refusals: int = 0
    failures: int = 0  # pushes in a row that got no answer
    not_before: float = 0.0  # monotonic time before which it is not asked again
    updated_us: int = 0
    kept: WitnessState | None = None  # what the store holds of it
    kept_at: float = 0.0  # monotonic time it was stored

    def state(self) -> WitnessState:
        return WitnessState(
            self.policy.name, self.url, self.size, self.error, self.refusals, self.updated_us
        )


class Refused(Exception):
    """A witness refused a checkpoint; ``reason`` is the metric's label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Witnessing:
    """Pushes the tenants log's newest checkpoint to the policy's witnesses."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        metrics: Metrics,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.policy = policy
        self._metrics = metrics
        self._timeout = timeout
        self._transport = transport
        self._clock = clock
        self._witnesses = [
            _Witness(w, w.url.rstrip("/") + "/add-checkpoint")
            for w in policy.witnesses
            if w.url is not None
        ]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._closing = False
        self._signed_at: dict[int, float] = {}  # tenants checkpoint size -> when it was seen
        self._quorum_size = -1

    # -- the loop ------------------------------------------------------------------------------

    def checkpoint_signed(self, checkpoint: StoredCheckpoint) -> None:
        """The integrator stored a new tenants checkpoint: push it now."""
        self._signed_at.setdefault(checkpoint.size, self._clock())
        if len(self._signed_at) > 1000:
            for size in sorted(self._signed_at)[:500]:
                del self._signed_at[size]
        self._wake.set()

    def start(self) -> None:
        """Start pushing in a task of its own (``run_once`` every round, or when woken)."""
        if self._task is None and self._witnesses:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="auditlog-witnessing"
            )

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), ROUND_SECONDS)
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.run_once()
            except StorageError as exc:
                log.warning("witnessing: storage failed: %s", exc)
            except Exception:
                log.exception("witnessing: a round failed unexpectedly")

    async def run_once(self) -> None:
        """Push the newest tenants checkpoint to every witness that has not cosigned it and
        may be asked now; keep the cosignatures that come back."""
        if not await self._store.integrating():
            return
        latest = await self._store.latest_tenants_checkpoint()
        if latest is None:
            return
        now = self._clock()
        due = [w for w in self._witnesses if w.size != latest.size and w.not_before <= now]
        if due:
            answers = await asyncio.gather(*(self._push(w, latest) for w in due))
            lines = "".join(a for a in answers if a)
            if lines:
                await self._keep(latest, lines)
        await self._store_states()

    async def _store_states(self) -> None:
        """Store each witness's state that changed: at once when its error or refusals did,
        else (only its cosigned size moved, every round) at most every ``KEEP_SECONDS``, and
        in a later round if need be, so the last size is stored too."""
        now = self._clock()
        for w in self._witnesses:
            state = w.state()
            kept = w.kept
            if kept == state or not w.updated_us:  # unchanged, or not asked by this process
                continue
            if (
                kept is None
                or (kept.error, kept.refusals) != (state.error, state.refusals)
                or now - w.kept_at >= KEEP_SECONDS
            ):
                await self._store.set_witness_state(state)
                w.kept, w.kept_at = state, now

    # -- one push ------------------------------------------------------------------------------

    async def _push(self, witness: _Witness, checkpoint: StoredCheckpoint) -> str:
        """Push ``checkpoint`` to one witness; its verified cosignature lines ("" if none)."""
        name = witness.policy.name
        try:
            lines = await self._add_checkpoint(witness, checkpoint)
        except Refused as exc:
            witness.refusals += 1
            witness.error = str(exc)
            witness.not_before = self._clock() + REFUSED_RETRY_SECONDS
            self._metrics.witness_refusals.labels(name, exc.reason).inc()
            log.error(
                "witness %s REFUSED the tenants checkpoint of size %d: %s "
                "(the log may have been forked or rolled back; see GET /v1/log/witnesses)",
                name,
                checkpoint.size,
                exc,
            )
            lines = ""
        except (httpx.HTTPError, _NoAnswer) as exc:
            witness.failures += 1
            witness.error = f"no answer from {witness.url}: {exc or type(exc).__name__}"
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (witness.failures - 1))
            witness.not_before = self._clock() + delay
            self._metrics.witness_failures.labels(name).inc()
            log.warning("witness %s: %s; trying again in %g s", name, witness.error, delay)
            lines = ""
        else:
            witness.failures = 0
            witness.error = ""
            witness.size = checkpoint.size
            self._metrics.witness_cosigned_size.labels(name).set(checkpoint.size)
        witness.updated_us = times.now_us()
        return lines

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport, follow_redirects=False
            )
        return self._client

    async def _add_checkpoint(self, witness: _Witness, checkpoint: StoredCheckpoint) -> str:
        old = max(witness.size, 0)
        for _ in range(MAX_RESYNCS + 1):
            if old > checkpoint.size:
                raise Refused(
                    "rollback",
                    f"the witness has cosigned size {old}, larger than the newest tenants "
                    f"checkpoint here ({checkpoint.size}): the log rolled back?",
                )
            body = tlogproof.format_add_checkpoint(
                tlogproof.AddCheckpoint(
                    old, await self._proof(old, checkpoint.size), checkpoint.note
                )
            )
            requests = self._metrics.witness_requests
            try:
                answer = await self._http().post(
                    witness.url,
                    content=body.encode("utf-8"),
                    headers={"content-type": "text/plain"},
                )
            except httpx.HTTPError:
                requests.labels(witness.policy.name, "0").inc()
                raise
            requests.labels(witness.policy.name, str(answer.status_code)).inc()
            text = answer.content[:MAX_ANSWER_BYTES]
            if answer.status_code == 409:
                try:
                    old = tlogproof.parse_size_body(text)
                except IntegrityError as exc:
                    raise Refused("malformed", f"409 with a malformed size: {exc}") from None
                witness.size = old
                continue
            if answer.status_code >= 500:
                raise _NoAnswer(f"{answer.status_code} {_first_line(text)}")
            if answer.status_code != 200:
                raise Refused(str(answer.status_code), f"{answer.status_code} {_first_line(text)}")
            return self._verified(witness, checkpoint, text)
        raise _NoAnswer(f"the witness answered 409 {MAX_RESYNCS + 1} times in a row")

    async def _proof(self, old: int, size: int) -> tuple[bytes, ...]:
        if old == 0 or old == size:
            return ()
        proof, _ = await with_nodes(
            self._store.get_tenants_nodes,
            "the tenants log",
            lambda subtree: proofs.consistency(old, size, subtree),
        )
        return proof

    def _verified(self, witness: _Witness, checkpoint: StoredCheckpoint, body: bytes) -> str:
        """The witness's cosignature line on ``checkpoint``, checked; ``Refused`` unless there
        is one that verifies with its key (lines of other keys are left out)."""
        try:
            lines = body.decode("utf-8")
            merged = cosignatures.add_cosignatures(checkpoint.note, lines)
            found = cosignatures.verify_cosignatures(merged, (witness.policy.key,))
        except (UnicodeDecodeError, IntegrityError) as exc:
            raise Refused("cosignature", f"200 without a valid cosignature: {exc}") from None
        if not found:
            raise Refused("cosignature", "200 without a cosignature by the witness's key")
        own = [s.line for s in notes.parse(merged).signatures if witness.policy.key.matches(s)]
        return "".join(own)

    # -- keeping cosignatures ------------------------------------------------------------------

    async def _keep(self, checkpoint: StoredCheckpoint, lines: str) -> None:
        kept = await self._store.cosigned_tenants_checkpoint(checkpoint.size)
        note = checkpoint.note if kept is None else kept.note
        merged = cosignatures.add_cosignatures(note, lines)
        cosigners = {
            w.name
            for s in notes.parse(merged).signatures
            if (w := self.policy.witness_by_key(s)) is not None
        }
        quorum = self.policy.satisfied(cosigners)
        await self._store.add_cosignatures(checkpoint.size, merged, quorum)
        if quorum and checkpoint.size > self._quorum_size:
            self._quorum_size = checkpoint.size
            self._metrics.witnessed_size.set(checkpoint.size)
            signed = self._signed_at.pop(checkpoint.size, None)
            if signed is not None:
                self._metrics.witness_push_seconds.observe(self._clock() - signed)

    # -- what GET /v1/log/witnesses shows -------------------------------------------------------

    @property
    def witnesses(self) -> list[PolicyWitness]:
        return [w.policy for w in self._witnesses]


def read_policy(path: str) -> Policy:
    """The witness policy in the file ``path`` (C2SP tlog-policy); ``ConfigError`` saying what
    is wrong with it, or that it names no witness with a URL to push to."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"witness_policy {path}: {exc.strerror or exc}") from None
    try:
        policy = policies.parse(text)
    except IntegrityError as exc:
        raise ConfigError(f"witness_policy {path}: {exc}") from None
    if not any(w.url for w in policy.witnesses):
        raise ConfigError(
            f"witness_policy {path}: no witness line has a URL (its submission prefix) to push "
            "checkpoints to"
        )
    return policy


class _NoAnswer(Exception):
    """The witness gave no usable answer (a 5xx, or 409s without end): try again later."""


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else "(empty body)"
