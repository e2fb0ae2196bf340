"""Which logs and which quorum of witnesses make a checkpoint valid, C2SP tlog-policy.

A policy file is line based; items are separated by spaces and tabs; empty lines and lines
whose first item starts with ``#`` are ignored::

    log <vkey> [<url>]                    a log's key (signed-note Ed25519, type 0x01)
    witness <name> <vkey> [<url>]         a witness's key (cosignature Ed25519, type 0x04)
    group <name> all|any|<k> <name>...    k of the n members (witnesses or groups) suffice
    quorum <name>                         exactly once; ``none`` asks for no cosignature

Parsing is strict: a line must end in a newline; a name is defined once (``none`` is
predefined) and only used after it is defined; a group lists a member at most once, never
``none``, and needs 1 <= k <= n; two logs, or two witnesses, may not wrap the same public
key; the only control characters are tab and newline. Every refusal is a ``PolicyError``
naming the line.

The spec treats octets with the high bit set as opaque. Bytes are decoded here as UTF-8 with
``surrogateescape``, which maps distinct byte strings to distinct strings, so names compare as
octet strings; a vkey itself must be valid UTF-8, since its name is hashed into its key ID.

``Policy.check`` opens a cosigned checkpoint: signed by one of the logs whose key name is the
checkpoint's origin, every cosignature by a policy witness verified, and the quorum met.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from auditlog.integrity import CheckpointError, KeyFormatError, PolicyError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.cosignature import CosignerKey

__all__ = [
    "NONE",
    "CheckedCheckpoint",
    "Policy",
    "PolicyGroup",
    "PolicyLog",
    "PolicyWitness",
    "format",
    "parse",
]

#: The predefined name of the quorum that asks for no cosignature.
NONE = "none"

_ITEM_SEPARATOR = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[0-9]+")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class PolicyLog:
    """A log the policy accepts: its key, whose name is the log's origin, and its URL."""

    verifier: notes.Verifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    """A witness: its name in the policy, its cosigner key, and its URL."""

    name: str
    key: CosignerKey
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    """A group that witnesses a checkpoint when ``threshold`` of its ``members`` do."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class CheckedCheckpoint:
    """A checkpoint that meets a policy, and the timestamp of each witness's cosignature."""

    checkpoint: checkpoints.Checkpoint
    cosigners: dict[str, int]


@dataclass(frozen=True)
class Policy:
    """Logs, witnesses, groups and the quorum: a witness's or a group's name, or ``NONE``.

    Constructing one checks what ``parse`` checks of names: each defined once, groups naming
    only earlier groups and witnesses, 1 <= threshold <= members, and a defined quorum.
    """

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...] = ()
    quorum: str = NONE
    _groups: dict[str, PolicyGroup] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        defined = {NONE}
        for witness in self.witnesses:
            if witness.name in defined:
                raise PolicyError(f"the name {witness.name!r} is defined twice")
            defined.add(witness.name)
        for group in self.groups:
            _check_group(group, defined)
            defined.add(group.name)
        if self.quorum not in defined:
            raise PolicyError(f"the quorum {self.quorum!r} is not a witness or group")
        object.__setattr__(self, "_groups", {g.name: g for g in self.groups})

    def _witnessed(self, name: str, cosigners: Collection[str]) -> bool:
        group = self._groups.get(name)
        if group is None:
            return name == NONE or name in cosigners
        done = sum(self._witnessed(m, cosigners) for m in group.members)
        return done >= group.threshold

    def satisfied(self, cosigners: Collection[str]) -> bool:
        """Whether the witnesses named ``cosigners`` (policy names) meet the quorum."""
        return self._witnessed(self.quorum, cosigners)

    def missing(self, cosigners: Collection[str]) -> str:
        """What the quorum lacks, as sentences; ``""`` when ``cosigners`` meet it."""
        if self.satisfied(cosigners):
            return ""
        sentences: list[str] = []
        self._explain(self.quorum, cosigners, sentences)
        return "; ".join(sentences)

    def _explain(self, name: str, cosigners: Collection[str], sentences: list[str]) -> None:
        group = self._groups.get(name)
        if group is None:
            sentences.append(f"witness {name} has not cosigned")
            return
        done = [m for m in group.members if self._witnessed(m, cosigners)]
        has = f"{len(done)} ({', '.join(done)})" if done else "0"
        sentences.append(
            f"group {name} needs {group.threshold} of {', '.join(group.members)} and has {has}"
        )
        for member in group.members:
            if member in self._groups and member not in done:
                self._explain(member, cosigners, sentences)

    def witness_by_key(self, signature: notes.Signature) -> PolicyWitness | None:
        """The witness whose key (name and key ID) made the signature line, if any."""
        for witness in self.witnesses:
            if witness.key.matches(signature):
                return witness
        return None

    def check(self, message: str | bytes, *, origin: str | None = None) -> CheckedCheckpoint:
        """The checkpoint a cosigned note carries, once it meets the policy.

        The note must be signed by a policy log whose key name is the checkpoint's origin
        (``origin``, if given, must be that origin too), as ``checkpoint.verify`` checks it;
        every cosignature line by a policy witness must verify, else ``SignatureError``; and
        the witnesses whose cosignatures verified must meet the quorum, else ``PolicyError``
        saying what is missing. ``NoteError``, ``CheckpointError`` and ``SignatureError`` as
        ``checkpoint.verify`` raises them.
        """
        note = notes.parse(message)
        claimed = checkpoints.parse(note.text)
        if origin is not None and claimed.origin != origin:
            raise CheckpointError(
                f"checkpoint is for origin {claimed.origin!r}, expected {origin!r}"
            )
        verifiers = [log.verifier for log in self.logs if log.verifier.name == claimed.origin]
        if not verifiers:
            raise PolicyError(f"the policy has no log for origin {claimed.origin!r}")
        checkpoint = checkpoints.verify(message, verifiers, origin=origin)
        cosigners: dict[str, int] = {}
        for signature in note.signatures:
            witness = self.witness_by_key(signature)
            if witness is not None:
                cosigners[witness.name] = witness.key.verify(note.text, signature)
        if not self.satisfied(cosigners):
            raise PolicyError(f"the checkpoint does not meet the quorum: {self.missing(cosigners)}")
        return CheckedCheckpoint(checkpoint, cosigners)


def _check_group(group: PolicyGroup, defined: set[str]) -> None:
    if group.name in defined:
        raise PolicyError(f"the name {group.name!r} is defined twice")
    if not group.members:
        raise PolicyError(f"group {group.name!r} has no member")
    seen: set[str] = set()
    for member in group.members:
        if member == NONE:
            raise PolicyError(f"group {group.name!r} lists none, which is no group member")
        if member not in defined:
            raise PolicyError(f"group {group.name!r} lists {member!r}, not defined before it")
        if member in seen:
            raise PolicyError(f"group {group.name!r} lists {member!r} twice")
        seen.add(member)
    if not 1 <= group.threshold <= len(group.members):
        raise PolicyError(
            f"group {group.name!r} needs {group.threshold} of {len(group.members)} members, "
            "which is not in 1..n"
        )


def _vkey(token: str, number: int, what: str) -> str:
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        raise PolicyError(f"line {number}: the {what} key is not valid UTF-8") from None
    return token


class _Parser:
    def __init__(self) -> None:
        self.logs: list[PolicyLog] = []
        self.witnesses: list[PolicyWitness] = []
        self.groups: list[PolicyGroup] = []
        self.defined: set[str] = {NONE}
        self.quorum: str | None = None

    def line(self, number: int, items: list[str]) -> None:
        keyword, args = items[0], items[1:]
        if keyword == "log":
            self.log(number, args)
        elif keyword == "witness":
            self.witness(number, args)
        elif keyword == "group":
            self.group(number, args)
        elif keyword == "quorum":
            self.set_quorum(number, args)
        else:
            raise PolicyError(
                f"line {number}: {keyword!r} is not log, witness, group, quorum or a # comment"
            )

    def log(self, number: int, args: list[str]) -> None:
        if len(args) not in (1, 2):
            raise PolicyError(f"line {number}: expected log <vkey> [<url>]")
        try:
            verifier = notes.Verifier.from_vkey(_vkey(args[0], number, "log"))
        except KeyFormatError as exc:
            raise PolicyError(
                f"line {number}: the log key is not a signed-note Ed25519 vkey (type 0x01): {exc}"
            ) from None
        for log in self.logs:
            if log.verifier.public_key == verifier.public_key:
                raise PolicyError(f"line {number}: the log key {verifier.name!r} is listed twice")
        self.logs.append(PolicyLog(verifier, args[1] if len(args) == 2 else None))

    def witness(self, number: int, args: list[str]) -> None:
        if len(args) not in (2, 3):
            raise PolicyError(f"line {number}: expected witness <name> <vkey> [<url>]")
        name = args[0]
        self.define(number, name)
        try:
            key = CosignerKey.from_vkey(_vkey(args[1], number, "witness"))
        except KeyFormatError as exc:
            raise PolicyError(
                f"line {number}: the key of witness {name!r} is not a cosignature vkey "
                f"(type 0x04): {exc}"
            ) from None
        for witness in self.witnesses:
            if witness.key.public_key == key.public_key:
                raise PolicyError(
                    f"line {number}: witness {name!r} has the key of witness {witness.name!r}"
                )
        self.witnesses.append(PolicyWitness(name, key, args[2] if len(args) == 3 else None))
        self.defined.add(name)

    def group(self, number: int, args: list[str]) -> None:
        if len(args) < 3:
            raise PolicyError(f"line {number}: expected group <name> all|any|<k> <name>...")
        name, k, members = args[0], args[1], tuple(args[2:])
        self.define(number, name)
        if k == "all":
            threshold = len(members)
        elif k == "any":
            threshold = 1
        elif _DECIMAL.fullmatch(k):
            # A number this long exceeds any group's size; int() of it could be slow.
            threshold = int(k) if len(k) <= 9 else 10**9
        else:
            raise PolicyError(
                f"line {number}: group {name!r} threshold {k!r} is not all, any or a number"
            )
        group = PolicyGroup(name, threshold, members)
        try:
            _check_group(group, self.defined)
        except PolicyError as exc:
            raise PolicyError(f"line {number}: {exc}") from None
        self.groups.append(group)
        self.defined.add(name)

    def set_quorum(self, number: int, args: list[str]) -> None:
        if len(args) != 1:
            raise PolicyError(f"line {number}: expected quorum <name>")
        if self.quorum is not None:
            raise PolicyError(f"line {number}: a second quorum line; a policy has exactly one")
        if args[0] not in self.defined:
            raise PolicyError(
                f"line {number}: the quorum {args[0]!r} is not none or a witness or group "
                "defined before it"
            )
        self.quorum = args[0]

    def define(self, number: int, name: str) -> None:
        if name in self.defined:
            raise PolicyError(f"line {number}: the name {name!r} is already defined")


def parse(text: str | bytes) -> Policy:
    """The policy of a tlog-policy file, checked strictly (see the module); else ``PolicyError``.

    Bytes are decoded as UTF-8 with ``surrogateescape``: non-ASCII octets stay opaque.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if text and not text.endswith("\n"):
        last = text.count("\n") + 1
        raise PolicyError(f"line {last}: the line does not end in a newline")
    parser = _Parser()
    for number, line in enumerate(text[:-1].split("\n") if text else [], 1):
        bad = _FORBIDDEN.search(line)
        if bad:
            raise PolicyError(
                f"line {number}: the control character 0x{ord(bad.group()):02X} is not allowed"
            )
        items = [item for item in _ITEM_SEPARATOR.split(line) if item]
        if not items or items[0].startswith("#"):
            continue
        parser.line(number, items)
    if parser.quorum is None:
        raise PolicyError("the policy has no quorum line")
    return Policy(tuple(parser.logs), tuple(parser.witnesses), tuple(parser.groups), parser.quorum)


def format(policy: Policy) -> str:
    """The policy as a tlog-policy file that ``parse`` reads back to an equal policy."""
    lines: list[str] = []
    for log in policy.logs:
        lines.append(_join("log", log.verifier.vkey, log.url))
    for witness in policy.witnesses:
        lines.append(_join("witness", witness.name, witness.key.vkey, witness.url))
    for group in policy.groups:
        lines.append(_join("group", group.name, str(group.threshold), *group.members))
    lines.append(f"quorum {policy.quorum}")
    return "".join(line + "\n" for line in lines)


def _join(*items: str | None) -> str:
    return " ".join(item for item in items if item is not None)
