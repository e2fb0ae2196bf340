"""Checking an archive offline, with the log's public key alone: is it exactly seqs
``first_seq`` .. ``end_seq - 1`` of the log the key signs?

1. The checkpoint: its origin is the manifest's, the key is that log's (the vkey's name is the
   origin) and its signature verifies; its size and root are the manifest's.
2. The events, streamed: each line is a JSON object of the manifest's tenant whose ``seq`` is
   its place in the log (``first_seq`` + its line number); the leaf hashes (SHA-256(0x00 ||
   the line's bytes)) extend the compact range of the prefix (``proof.json``'s ``prefix``, the
   perfect subtrees of [0, first_seq)) to the tree of ``end_seq`` leaves.
3. That root, by the consistency proof, gives the signed checkpoint's root (or is it, when
   ``end_seq`` is the checkpoint's size). The manifest's count and SHA-256 of the events are
   compared with the member too.

A changed event, prefix hash or proof hash changes the root of step 3 and is told as a
**mismatch** of the whole range (no single event can be named then, as in ``auditlog verify``);
an event dropped, moved, inserted, foreign or unreadable is named by its seq in step 2:

* **removed**: seqs missing (the next line says a later seq, and the sequence goes on from it);
* **moved**: the line at seq k says another seq, and the sequence does not resume after it;
* **inserted**: a line that does not belong where it is (the sequence resumes right after it),
  or lines beyond ``end_seq``;
* **foreign**: an event of another tenant, a checkpoint of another log, or a key for another log;
* **unreadable**: a line that is not a JSON object with an integer ``seq``;
* **corrupt**: the file is not a complete ZIP, or a member is damaged (a failed CRC, a broken
  deflate stream, a last line cut short);
* **signature**, **checkpoint**, **proof**, **manifest**: what those members say is wrong.

Memory stays constant whatever the number of events: they are read in chunks, their leaf
hashes folded into the compact range a batch at a time, and findings are kept up to a bound.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import orjson

from auditlog.archive import ArchiveFormatError
from auditlog.archive.format import ArchiveReader, Manifest, Proof
from auditlog.integrity import IntegrityError, ProofError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.compact import CompactRange
from auditlog.integrity.hasher import leaf_hash
from auditlog.integrity.proof import verify_consistency
from auditlog.service.logcheck import Finding

#: Findings kept; the others are counted.
MAX_FINDINGS = 1000
#: Leaf hashes folded into the compact range at a time.
HASH_BATCH = 1024


@dataclass(slots=True)
class ArchiveReport:
    """What checking one archive found; intact when there are no ``findings``."""

    path: str
    manifest: Manifest | None = None
    #: The checkpoint, once its signature verified with the key given.
    checkpoint: checkpoints.Checkpoint | None = None
    #: Event lines read.
    events: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: Findings beyond ``MAX_FINDINGS``, counted only.
    untold: int = 0

    @property
    def tenant(self) -> str:
        return self.manifest.tenant if self.manifest is not None else "?"

    @property
    def first(self) -> Finding | None:
        """The finding to lead with: the first that names a seq, else the first."""
        named = [f for f in self.findings if f.seq is not None]
        if named:
            return min(named, key=lambda f: f.seq if f.seq is not None else 0)
        return self.findings[0] if self.findings else None


class _Line(NamedTuple):
    """What the check needs of one event line: its seq and tenant (``None``: unreadable)."""

    seq: int | None
    tenant: object


def _read_line(body: bytes) -> _Line:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _Line(None, None)
    if not isinstance(event, dict):
        return _Line(None, None)
    seq = event.get("seq")
    return _Line(seq if type(seq) is int else None, event.get("tenant"))


class _Check:
    def __init__(
        self, reader: ArchiveReader, key: notes.Verifier | bytes, report: ArchiveReport
    ) -> None:
        self.reader = reader
        self.key = key
        self.report = report
        self.events_bad = False

    def find(self, seq: int | None, kind: str, detail: str) -> None:
        if len(self.report.findings) >= MAX_FINDINGS:
            self.report.untold += 1
            return
        self.report.findings.append(Finding(self.report.tenant, seq, kind, detail))

    def run(self) -> None:
        try:
            manifest = self.reader.manifest()
        except ArchiveFormatError as exc:
            self.find(None, "manifest", str(exc))
            return
        self.report.manifest = manifest
        span = manifest.end_seq - manifest.first_seq
        if manifest.events != span:
            self.find(
                None,
                "manifest",
                f"it says {manifest.events} events, but seq {manifest.first_seq}.."
                f"{manifest.end_seq - 1} are {span}",
            )
        signed = self.checkpoint(manifest)
        proof = self.proof(manifest)
        prefix: CompactRange | None = None
        if proof is not None:
            try:
                prefix = CompactRange(manifest.first_seq, proof.prefix)
            except ValueError as exc:
                self.find(None, "proof", f"the prefix hashes: {exc}")
        grown = self.events(manifest, prefix)
        if signed is not None and proof is not None and grown is not None:
            self.compare(manifest, grown, signed, proof)

    # -- the checkpoint and the proof ------------------------------------------------------

    def checkpoint(self, manifest: Manifest) -> checkpoints.Checkpoint | None:
        """The archive's checkpoint, once it is the manifest's log's and its signature by the
        key verifies; ``None`` (and a finding) otherwise."""
        try:
            text = self.reader.checkpoint()
            signed = checkpoints.parse(notes.parse(text).text)
        except (ArchiveFormatError, IntegrityError) as exc:
            self.find(
                None, "checkpoint", f"the checkpoint member is not a signed checkpoint: {exc}"
            )
            return None
        if signed.origin != manifest.origin:
            self.find(
                None,
                "foreign",
                f"the checkpoint is of the log {signed.origin!r}; the archive says "
                f"{manifest.origin!r}",
            )
            return None
        try:
            verifier = (
                self.key
                if isinstance(self.key, notes.Verifier)
                else notes.Verifier(manifest.origin, self.key)
            )
        except IntegrityError as exc:
            self.find(None, "manifest", f"origin {manifest.origin!r}: {exc}")
            return None
        if verifier.name != manifest.origin:
            self.find(
                None,
                "foreign",
                f"the archive is of the log {manifest.origin!r}; the key given is of "
                f"{verifier.name!r}",
            )
            return None
        try:
            checkpoints.verify(text, verifier, origin=manifest.origin)
        except IntegrityError as exc:
            self.find(None, "signature", f"the checkpoint of size {signed.size}: {exc}")
            return None
        self.report.checkpoint = signed
        if signed.size != manifest.checkpoint_size:
            self.find(
                None,
                "checkpoint",
                f"the signed checkpoint is of size {signed.size}; the manifest says "
                f"{manifest.checkpoint_size}",
            )
            return None
        if signed.root_hash != manifest.root_hash:
            self.find(None, "manifest", "its root_hash is not the signed checkpoint's")
        return signed

    def proof(self, manifest: Manifest) -> Proof | None:
        try:
            return self.reader.proof()
        except ArchiveFormatError as exc:
            self.find(None, "proof", str(exc))
            return None

    # -- the events ------------------------------------------------------------------------

    def events(self, manifest: Manifest, prefix: CompactRange | None) -> CompactRange | None:
        """Read every line: check it, and grow ``prefix`` by its leaf hash. The tree of
        ``end_seq`` leaves, or ``None`` when a line was found wrong (or ``prefix`` is)."""
        digest = hashlib.sha256()
        tree = prefix
        pending: list[bytes] = []
        self.pos = manifest.first_seq  # the next seq the sequence expects
        self.position = manifest.first_seq  # the seq of the line being judged (its leaf)
        previous: _Line | None = None
        complete = False
        try:
            for body in self.reader.event_lines(manifest.first_seq, digest):
                pending.append(leaf_hash(body))
                if len(pending) >= HASH_BATCH and tree is not None:
                    tree, _ = tree.grow(pending)
                    pending.clear()
                line = _read_line(body)
                if previous is not None:
                    self.judge(manifest, previous, line)
                previous = line
                self.report.events += 1
            complete = True
        except ArchiveFormatError as exc:
            self.find(exc.seq, "corrupt", str(exc))
            self.events_bad = True
        if previous is not None:
            self.judge(manifest, previous, None)
        if complete:
            if self.pos < manifest.end_seq:
                shown = f"{self.pos}..{manifest.end_seq - 1}"
                self.find(
                    self.pos,
                    "removed",
                    f"seq {shown} missing: the archive ends after {self.report.events} events",
                )
                self.events_bad = True
            if digest.hexdigest() != manifest.events_sha256:
                self.find(
                    None,
                    "manifest",
                    f"the events member's SHA-256 is {digest.hexdigest()}; the manifest says "
                    f"{manifest.events_sha256}",
                )
        if tree is None or self.events_bad:
            return None
        tree, _ = tree.grow(pending)
        return tree

    def judge(self, manifest: Manifest, line: _Line, after: _Line | None) -> None:
        """Judge the line at ``self.position`` by its seq and tenant, knowing the next line's
        seq (``after``): the sequence of seqs tells a gap from a move or an insertion."""
        position = self.position
        self.position += 1
        if position == manifest.end_seq:
            self.find(
                position,
                "inserted",
                f"the archive holds more events than seq {manifest.first_seq}.."
                f"{manifest.end_seq - 1}",
            )
            self.events_bad = True
        if line.seq is None:
            self.find(position, "unreadable", "the line is not a JSON object with an integer seq")
            self.events_bad = True
            self.pos += 1
            return
        kind, detail, where = "", "", position
        following = after.seq if after is not None else None
        if line.seq == self.pos:
            self.pos += 1
        elif line.seq == self.pos + 1 and following == self.pos:
            kind = "moved"  # two events swapped (the next line is told as moved too)
            detail = f"the event at seq {position} of the archive says seq {line.seq}"
            self.pos += 1
        elif following == self.pos:
            kind = "inserted"
            detail = f"an event that says seq {line.seq} is in the archive before seq {self.pos}"
        elif line.seq > self.pos and (after is None or following == line.seq + 1):
            last = f"..{line.seq - 1}" if line.seq - 1 > self.pos else ""
            kind = "removed"
            detail = (
                f"seq {self.pos}{last} missing (the next event in the archive is seq {line.seq})"
            )
            where = self.pos
            self.pos = line.seq + 1
        else:
            kind = "moved"
            detail = f"the event at seq {position} of the archive says seq {line.seq}"
            self.pos += 1
        if line.tenant != manifest.tenant:
            kind, where = "foreign", position
            detail = f"the event at seq {position} is of tenant {line.tenant!r}"
        if kind:
            self.find(where, kind, detail)
            self.events_bad = True

    # -- the root --------------------------------------------------------------------------

    def compare(
        self,
        manifest: Manifest,
        tree: CompactRange,
        signed: checkpoints.Checkpoint,
        proof: Proof,
    ) -> None:
        try:
            verify_consistency(
                manifest.end_seq, signed.size, proof.consistency, tree.root, signed.root_hash
            )
        except ProofError as exc:
            self.find(
                manifest.first_seq,
                "mismatch",
                f"seq {manifest.first_seq}..{manifest.end_seq - 1}, after the prefix hashes, "
                f"do not give the root of the signed checkpoint of size {signed.size}: an "
                f"event was changed, or a hash of proof.json ({exc})",
            )


def check_archive(path: str | Path, key: notes.Verifier | bytes) -> ArchiveReport:
    """Check the archive at ``path`` with the log's key: a vkey (whose name must be the
    archive's origin) or the 32 bytes of the Ed25519 public key. ``OSError`` when the file
    cannot be read; anything wrong with what it holds is a finding of the report."""
    report = ArchiveReport(str(path))
    try:
        reader = ArchiveReader(path)
    except ArchiveFormatError as exc:
        report.findings.append(Finding("?", None, "corrupt", str(exc)))
        return report
    with reader:
        _Check(reader, key, report).run()
    return report
