"""The decision on one add-checkpoint request (C2SP tlog-witness v1), without I/O.

The checks come in the order of the spec, each with its status:

=====  ==================================================================================
400    the body is not an add-checkpoint request (an old size line, proof lines, a blank
       line, a signed checkpoint), or the checkpoint is malformed
404    the checkpoint's origin is not a log of the policy
403    no trusted key of that log signed the checkpoint, or a trusted key's signature does
       not verify (or its signature line is malformed)
400    the old size is larger than the checkpoint's size
409    the old size is not the size of the latest checkpoint cosigned for the log (0 if
       none): the body is that size and a newline, of type ``text/x.tlog.size``
422    a checkpoint of size 0 without the empty tree's root; a proof from old size 0 that is
       not empty; a consistency proof that does not verify; a checkpoint of the cosigned
       size with another root hash (a fork)
200    cosigned: the body is the cosignature line ``— <name> <base64>``
=====  ==================================================================================

The body is read by ``tlogproof.parse_add_checkpoint``, which also refuses a note that is not
well-formed and an old size beyond the checkpoint's. Such a request still gets 403 when its
log's trusted key's signature is bad, as the spec checks the signature first; when the log's
signature verifies, the 400 is marked as signed by the log (evidence, see ``Refused``).

``open_request`` makes the checks that do not depend on what was cosigned before (up to the
403), ``check`` those that do, given the ``Recorded`` size and root, and ``accept`` cosigns.
``decide`` runs all three, for one request and a fixed record. The state (``state``) runs
``check`` and ``accept`` inside the transaction that records the new checkpoint, so that no
concurrent request can roll the record back.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from auditlog.integrity import (
    CheckpointError,
    NoteError,
    PolicyError,
    ProofError,
    SignatureError,
    WitnessRequestError,
)
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import policy as policies
from auditlog.integrity import proof as proofs
from auditlog.integrity.cosignature import Cosigner
from auditlog.integrity.hasher import EMPTY_ROOT
from auditlog.integrity.tlogproof import parse_add_checkpoint

#: The content type of a 409's body, the tree size the witness holds (C2SP tlog-witness).
SIZE_TYPE = "text/x.tlog.size"
#: The content type of every other answer: a cosignature line or a one-line reason.
TEXT_TYPE = "text/plain; charset=utf-8"

#: The logs a witness follows: each origin and the keys trusted to sign its checkpoints.
Logs = Mapping[str, tuple[notes.Verifier, ...]]


def logs_of_policy(text: str) -> dict[str, tuple[notes.Verifier, ...]]:
    """The logs of a C2SP tlog-policy file: its ``log`` lines, by origin (the key's name).

    ``witness``, ``group`` and ``quorum`` lines are read for their form only: they are for
    those who verify cosigned checkpoints, not for the witness. Raises ``PolicyError``.
    """
    logs: dict[str, tuple[notes.Verifier, ...]] = {}
    for log in policies.parse(text).logs:
        logs[log.verifier.name] = (*logs.get(log.verifier.name, ()), log.verifier)
    if not logs:
        raise PolicyError("the policy names no log (no log line): the witness would follow none")
    return logs


@dataclass(frozen=True, slots=True)
class Recorded:
    """The latest checkpoint cosigned for a log: its size and root (0 and the empty root if
    none was)."""

    size: int
    root_hash: bytes

    @classmethod
    def none(cls) -> Recorded:
        return cls(0, EMPTY_ROOT)


class Refused(Exception):
    """A request the witness does not cosign: the HTTP status and the reason.

    ``size`` is the recorded size a 409 answers with. ``signed`` is whether the request's
    checkpoint carried a valid signature of the log, which makes it evidence of what the log
    said.
    """

    def __init__(self, status: int, reason: str, *, size: int = 0, signed: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.size = size
        self.signed = signed


@dataclass(frozen=True, slots=True)
class Submission:
    """An add-checkpoint request whose checkpoint a trusted key of its log signed."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: checkpoints.Checkpoint
    #: The signed note as received.
    message: str
    #: The note's text and its signatures by the log's trusted keys.
    verified: notes.Note

    @property
    def origin(self) -> str:
        return self.checkpoint.origin


@dataclass(frozen=True, slots=True)
class Accepted:
    """A cosigned checkpoint: what the state records and the 200's body."""

    origin: str
    size: int
    root_hash: bytes
    timestamp: int
    #: The signed note as received.
    received: str
    #: The note with the log's verified signatures and the witness's cosignature: what the
    #: monitoring route serves.
    cosigned: str
    #: The 200's body: the cosignature line.
    body: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one add-checkpoint request."""

    status: int
    reason: str
    body: str
    content_type: str

    @classmethod
    def of_refusal(cls, refused: Refused) -> Decision:
        if refused.status == 409:
            return cls(409, refused.reason, f"{refused.size}\n", SIZE_TYPE)
        return cls(refused.status, refused.reason, refused.reason + "\n", TEXT_TYPE)

    @classmethod
    def of_acceptance(cls, accepted: Accepted) -> Decision:
        return cls(200, f"cosigned size {accepted.size}", accepted.body, TEXT_TYPE)


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def origin_of(message: str) -> str:
    """The first line of a note: a checkpoint's origin, whatever the rest holds."""
    return message.split("\n", 1)[0]


def _malformed_trusted_line(message: str, verifiers: tuple[notes.Verifier, ...]) -> str | None:
    """The name of a trusted key whose signature line in ``message`` is malformed, if any."""
    split = message.rfind("\n\n")
    if split < 0:
        return None
    names = {v.name for v in verifiers}
    for line in message[split + 2 :].split("\n"):
        if not line.startswith(notes.SIGNATURE_PREFIX):
            continue
        name = line[len(notes.SIGNATURE_PREFIX) :].partition(" ")[0]
        if name not in names:
            continue
        try:
            notes.parse("-\n\n" + line + "\n")
        except NoteError:
            return name
    return None


def _trusted_signatures(note: notes.Note, verifiers: tuple[notes.Verifier, ...]) -> notes.Note:
    trusted = {(v.name, v.key_id) for v in verifiers}
    return notes.Note(note.text, tuple(s for s in note.signatures if (s.name, s.key_id) in trusted))


def _verified(message: str, verifiers: tuple[notes.Verifier, ...]) -> notes.Note:
    """The note once a trusted key's signature verifies; ``Refused`` (403) when none does,
    or when a trusted key's signature line is malformed. ``NoteError`` for another flaw."""
    try:
        return notes.verify(message, verifiers)
    except SignatureError as exc:
        raise Refused(403, f"invalid signature: {exc}") from None
    except NoteError:
        name = _malformed_trusted_line(message, verifiers)
        if name is not None:
            raise Refused(
                403, f"invalid signature: the signature line of trusted key {name} is malformed"
            ) from None
        raise


def _malformed(body: bytes, logs: Logs, error: WitnessRequestError) -> Refused:
    """The refusal of a body that is not a well-formed request.

    400, but 403 when its checkpoint names a log whose trusted key's signature is bad: the
    spec checks the signature before the sizes, and ``parse_add_checkpoint`` checks both the
    note's form and that the old size is not beyond the checkpoint's. A malformed request
    that the log did sign is marked ``signed``, as evidence.
    """
    refused = Refused(400, f"malformed add-checkpoint request: {error}")
    try:
        message = body.partition(b"\n\n")[2].decode("utf-8")
    except UnicodeDecodeError:
        return refused
    verifiers = logs.get(origin_of(message))
    if verifiers is None:
        return refused
    try:
        _verified(message, verifiers)
    except Refused as signature:
        return signature
    except NoteError:
        return refused
    return Refused(400, refused.reason, signed=True)


def open_request(body: bytes, logs: Logs) -> Submission:
    """The request, once its form and its log's signature are checked: 400, 404 or 403.

    Raises ``Refused`` with the status and reason otherwise.
    """
    try:
        request = parse_add_checkpoint(body)
    except WitnessRequestError as exc:
        raise _malformed(body, logs, exc) from None
    message = request.checkpoint
    origin = origin_of(message)
    verifiers = logs.get(origin)
    if verifiers is None:
        raise Refused(404, f"unknown log: origin {origin!r} is not a log this witness follows")
    try:
        note = _verified(message, verifiers)
        checkpoint = checkpoints.parse(note.text)
    except (NoteError, CheckpointError) as exc:  # parse_add_checkpoint has checked the form
        raise Refused(400, f"malformed checkpoint: {exc}") from None
    return Submission(
        request.old_size,
        tuple(request.proof),
        checkpoint,
        message,
        _trusted_signatures(note, verifiers),
    )


def check(submission: Submission, recorded: Recorded) -> None:
    """The checks against the latest cosigned checkpoint: 400, 409 or 422 (``Refused``)."""
    old, size, root = (
        submission.old_size,
        submission.checkpoint.size,
        submission.checkpoint.root_hash,
    )
    if old > size:
        raise Refused(
            400, f"old size {old} is larger than the checkpoint's size {size}", signed=True
        )
    if old != recorded.size:
        raise Refused(
            409,
            f"old size {old} is not the size of the latest cosigned checkpoint, {recorded.size}",
            size=recorded.size,
            signed=True,
        )
    if size == 0 and root != EMPTY_ROOT:
        raise Refused(
            422,
            f"a checkpoint of size 0 has root {_b64(root)}, not the empty tree's "
            f"{_b64(EMPTY_ROOT)}",
            signed=True,
        )
    proof = submission.proof
    if old == 0 and proof:
        raise Refused(
            422,
            f"consistency proof from size 0 has {len(proof)} hashes; the empty tree needs none",
            signed=True,
        )
    if old == size and root != recorded.root_hash:
        raise Refused(
            422,
            f"fork: the checkpoint of size {size} has root {_b64(root)}, but the cosigned "
            f"checkpoint of that size has root {_b64(recorded.root_hash)}",
            signed=True,
        )
    if old == 0:
        return
    try:
        proofs.verify_consistency(old, size, proof, recorded.root_hash, root)
    except ProofError as exc:
        raise Refused(422, f"bad consistency proof: {exc}", signed=True) from None


def cosigned_note(submission: Submission, cosignature: notes.Signature) -> str:
    """The note the monitoring route serves: the text, the log's verified signatures, and
    the witness's cosignature."""
    verified = submission.verified
    return notes.Note(verified.text, (*verified.signatures, cosignature)).message


def accept(submission: Submission, cosigner: Cosigner, timestamp: int) -> Accepted:
    """The checkpoint cosigned at ``timestamp`` (POSIX seconds, at least 1)."""
    if timestamp < 1:
        raise ValueError(f"a cosignature's timestamp must not be zero (got {timestamp})")
    checkpoint = submission.checkpoint
    cosignature = cosigner.cosign(submission.verified.text, timestamp)
    return Accepted(
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root_hash,
        timestamp,
        submission.message,
        cosigned_note(submission, cosignature),
        cosignature.line,
    )


def decide(
    body: bytes,
    logs: Logs,
    recorded: Callable[[str], Recorded],
    cosigner: Cosigner,
    timestamp: int,
) -> tuple[Decision, Accepted | None]:
    """The answer to one request given the record of each origin (``recorded``), and what
    to record when it is cosigned."""
    try:
        submission = open_request(body, logs)
        check(submission, recorded(submission.origin))
        accepted = accept(submission, cosigner, timestamp)
    except Refused as refused:
        return Decision.of_refusal(refused), None
    return Decision.of_acceptance(accepted), accepted
