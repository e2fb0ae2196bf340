"""Witness policies (C2SP tlog-policy): the spec's example, every rule of the file format,
quorum evaluation against a reference evaluator, and checking cosigned checkpoints."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.integrity import CheckpointError, PolicyError, SignatureError
from auditlog.integrity import checkpoint as cp
from auditlog.integrity import cosignature as c
from auditlog.integrity import note as n
from auditlog.integrity import policy as p

ORIGIN = "example.com/log"
LOG = n.Signer(ORIGIN, bytes(range(32)))
OTHER_LOG = n.Signer("example.com/other", bytes(range(1, 33)))
X = [c.Cosigner(f"x{i}.example", bytes([10 + i]) * 32) for i in (1, 2, 3)]
Y = [c.Cosigner(f"y{i}.example", bytes([20 + i]) * 32) for i in (1, 2, 3)]
OUTSIDER = c.Cosigner("z.example", bytes([30]) * 32)

EXAMPLE = f"""\
log {LOG.verifier.vkey}

witness X1 {X[0].key.vkey}
witness X2 {X[1].key.vkey}
witness X3 {X[2].key.vkey}
group X-witnesses 2 X1 X2 X3

witness Y1 {Y[0].key.vkey}
witness Y2 {Y[1].key.vkey}
witness Y3 {Y[2].key.vkey}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""
POLICY = p.parse(EXAMPLE)
COSIGNERS = dict(zip(["X1", "X2", "X3", "Y1", "Y2", "Y3"], [*X, *Y], strict=True))


def test_the_spec_example() -> None:
    assert [log.verifier for log in POLICY.logs] == [LOG.verifier]
    assert [(w.name, w.key, w.url) for w in POLICY.witnesses] == [
        (name, cosigner.key, None) for name, cosigner in COSIGNERS.items()
    ]
    assert POLICY.groups == (
        p.PolicyGroup("X-witnesses", 2, ("X1", "X2", "X3")),
        p.PolicyGroup("Y-witnesses", 1, ("Y1", "Y2", "Y3")),
        p.PolicyGroup("X-and-Y", 2, ("X-witnesses", "Y-witnesses")),
    )
    assert POLICY.quorum == "X-and-Y"
    assert p.parse(p.format(POLICY)) == POLICY
    assert p.parse(EXAMPLE.encode()) == POLICY


@pytest.mark.parametrize(
    ("cosigners", "satisfied", "missing"),
    [
        ({"X1", "X2", "Y3"}, True, ""),
        ({"X1", "X2", "X3", "Y1", "Y2", "Y3"}, True, ""),
        (
            {"X1", "Y1"},
            False,
            "group X-and-Y needs 2 of X-witnesses, Y-witnesses and has 1 (Y-witnesses); "
            "group X-witnesses needs 2 of X1, X2, X3 and has 1 (X1)",
        ),
        (
            {"X1", "X3"},
            False,
            "group X-and-Y needs 2 of X-witnesses, Y-witnesses and has 1 (X-witnesses); "
            "group Y-witnesses needs 1 of Y1, Y2, Y3 and has 0",
        ),
        (
            set(),
            False,
            "group X-and-Y needs 2 of X-witnesses, Y-witnesses and has 0; "
            "group X-witnesses needs 2 of X1, X2, X3 and has 0; "
            "group Y-witnesses needs 1 of Y1, Y2, Y3 and has 0",
        ),
    ],
)
def test_example_quorum(cosigners: set[str], satisfied: bool, missing: str) -> None:
    assert POLICY.satisfied(cosigners) is satisfied
    assert POLICY.missing(cosigners) == missing


def test_formats_group_cases() -> None:
    # transparency-dev/formats witness/witness_test.go, TestGroup_Satisfied, the cases with
    # thresholds of at least 1 (tlog-policy has no optional groups).
    vectors = Path(__file__).parent / "vectors"
    seeds = [
        n.Signer.from_skey(line.split(" ")[1]).seed
        for line in (vectors / "formats_witnesses.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    ws = [p.PolicyWitness(f"w{i}", c.Cosigner(f"Wit{i}", s).key) for i, s in enumerate(seeds, 1)]
    single = p.Policy((), tuple(ws), (p.PolicyGroup("g", 1, ("w1",)),), "g")
    nested = p.Policy(
        (), tuple(ws), (p.PolicyGroup("g", 1, ("w1",)), p.PolicyGroup("q", 1, ("g",))), "q"
    )
    mixed = p.Policy(
        (),
        tuple(ws),
        (p.PolicyGroup("g23", 1, ("w2", "w3")), p.PolicyGroup("q", 2, ("w1", "g23"))),
        "q",
    )
    cases = [
        (single, {"w1"}, True),
        (single, set(), False),
        (nested, {"w1"}, True),
        (nested, set(), False),
        (mixed, {"w1", "w2", "w3"}, True),
        (mixed, {"w1", "w2"}, True),
        (mixed, {"w1"}, False),
        (mixed, {"w2", "w3"}, False),
    ]
    for policy, cosigners, satisfied in cases:
        assert policy.satisfied(cosigners) is satisfied


def test_none_and_single_witness_quorums() -> None:
    none = p.parse("quorum none\n")
    assert none.satisfied(set())
    assert none.missing(set()) == ""
    one = p.parse(f"witness W {X[0].key.vkey}\nquorum W\n")
    assert not one.satisfied({"V"})
    assert one.missing(set()) == "witness W has not cosigned"
    assert one.satisfied({"W"})


def test_whitespace_comments_and_urls() -> None:
    text = (
        "\n  # a comment\n\t\n"
        f"  log\t{LOG.verifier.vkey}   https://log.example/  \n"
        f"witness\tW  {X[0].key.vkey}\thttps://w.example/\n"
        "# group g any W\n"
        "\tquorum   W\t\n"
    )
    policy = p.parse(text)
    assert policy.logs == (p.PolicyLog(LOG.verifier, "https://log.example/"),)
    assert policy.witnesses == (p.PolicyWitness("W", X[0].key, "https://w.example/"),)
    assert policy.quorum == "W"
    assert p.parse(p.format(policy)) == policy


def test_non_ascii_names_are_opaque_octets() -> None:
    kelvin = "\u212a".encode()
    text = (
        b"witness K " + X[0].key.vkey.encode() + b"\n"
        b"witness " + kelvin + b" " + X[1].key.vkey.encode() + b" https://\xff.example/\n"
        b"group g all K " + kelvin + b"\nquorum g\n"
    )
    policy = p.parse(text)
    assert [w.name for w in policy.witnesses] == ["K", "\u212a"]
    assert policy.witnesses[1].url == "https://\udcff.example/"
    assert policy.satisfied({"K", "\u212a"})
    assert not policy.satisfied({"K", "k"})


W1, W2 = X[0].key.vkey, X[1].key.vkey
LOG_VKEY = LOG.verifier.vkey
SAME_KEY_OTHER_NAME = c.CosignerKey("renamed.example", X[0].key.public_key).vkey


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the policy has no quorum line"),
        ("# only a comment\n", "the policy has no quorum line"),
        ("quorum none", "line 1: the line does not end in a newline"),
        ("quorum none\nquorum none\n", "line 2: a second quorum line"),
        ("quorum\n", "line 1: expected quorum <name>"),
        ("quorum a b\n", "line 1: expected quorum <name>"),
        ("quorum W\n", "line 1: the quorum 'W' is not none or a witness or group defined before"),
        (f"quorum W\nwitness W {W1}\n", "line 1: the quorum 'W' is not none"),
        ("quorum none\r\n", "line 1: the control character 0x0D is not allowed"),
        ("quorum none\x7f\n", "line 1: the control character 0x7F"),
        ("quorum\vnone\n", "line 1: the control character 0x0B"),
        ("\nkey W\nquorum none\n", "line 2: 'key' is not log, witness, group, quorum"),
        ("quorum none #comment\n", "line 1: expected quorum <name>"),
        (f"log {LOG_VKEY} https://a/ extra\nquorum none\n", "line 1: expected log <vkey>"),
        ("log\nquorum none\n", "line 1: expected log <vkey>"),
        (f"log {W1}\nquorum none\n", "line 1: the log key is not a signed-note Ed25519 vkey"),
        ("log nonsense\nquorum none\n", "line 1: the log key is not"),
        (
            f"log {LOG_VKEY}\nlog {LOG_VKEY}\nquorum none\n",
            "line 2: the log key 'example.com/log' is listed twice",
        ),
        (
            f"log {LOG_VKEY}\nlog {n.Verifier('renamed', LOG.verifier.public_key).vkey}\nquorum none\n",
            "line 2: the log key 'renamed' is listed twice",
        ),
        ("witness W\nquorum none\n", "line 1: expected witness <name> <vkey> \\[<url>\\]"),
        (f"witness W {W1} u v\nquorum none\n", "line 1: expected witness"),
        (
            f"witness W {LOG_VKEY}\nquorum none\n",
            "line 1: the key of witness 'W' is not a cosignature vkey \\(type 0x04\\)",
        ),
        (f"witness W x{W1}\nquorum none\n", "line 1: the key of witness 'W'"),
        (
            f"witness W {W1}\nwitness W {W2}\nquorum none\n",
            "line 2: the name 'W' is already defined",
        ),
        (f"witness none {W1}\nquorum none\n", "line 1: the name 'none' is already defined"),
        (
            f"witness W {W1}\nwitness V {W1}\nquorum none\n",
            "line 2: witness 'V' has the key of witness 'W'",
        ),
        (
            f"witness W {W1}\nwitness V {SAME_KEY_OTHER_NAME}\nquorum none\n",
            "line 2: witness 'V' has the key",
        ),
        (
            f"witness W {W1}\ngroup W any W\nquorum none\n",
            "line 2: the name 'W' is already defined",
        ),
        (
            f"witness W {W1}\ngroup g any\nquorum none\n",
            "line 2: expected group <name> all\\|any\\|<k>",
        ),
        (
            f"witness W {W1}\ngroup g some W\nquorum none\n",
            "line 2: group 'g' threshold 'some' is not all, any or a number",
        ),
        (f"witness W {W1}\ngroup g -1 W\nquorum none\n", "line 2: group 'g' threshold '-1'"),
        (
            f"witness W {W1}\ngroup g 0 W\nquorum none\n",
            "line 2: group 'g' needs 0 of 1 members, which is not in 1..n",
        ),
        (f"witness W {W1}\ngroup g 2 W\nquorum none\n", "line 2: group 'g' needs 2 of 1 members"),
        (
            f"witness W {W1}\ngroup g {'9' * 5000} W\nquorum none\n",
            "line 2: group 'g' needs 1000000000 of 1",
        ),
        (f"witness W {W1}\ngroup g any W W\nquorum none\n", "line 2: group 'g' lists 'W' twice"),
        (
            f"witness W {W1}\ngroup g any W none\nquorum none\n",
            "line 2: group 'g' lists none, which is no group member",
        ),
        (
            f"witness W {W1}\ngroup g any V\nquorum none\n",
            "line 2: group 'g' lists 'V', not defined before it",
        ),
        ("group g any g\nquorum none\n", "line 1: group 'g' lists 'g', not defined"),
        ("group g any h\ngroup h any g\nquorum none\n", "line 1: group 'g' lists 'h'"),
        (
            b"log \xff" + LOG_VKEY.encode() + b"\nquorum none\n",
            "line 1: the log key is not valid UTF-8",
        ),
    ],
)
def test_malformed_policies(text: str | bytes, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        p.parse(text)


def test_policy_construction_checks_names() -> None:
    w = p.PolicyWitness("W", X[0].key)
    with pytest.raises(PolicyError, match="'W' is defined twice"):
        p.Policy((), (w, p.PolicyWitness("W", X[1].key)))
    with pytest.raises(PolicyError, match="quorum 'V' is not a witness or group"):
        p.Policy((), (w,), (), "V")
    with pytest.raises(PolicyError, match="lists 'h', not defined before it"):
        p.Policy((), (w,), (p.PolicyGroup("g", 1, ("h",)), p.PolicyGroup("h", 1, ("W",))), "g")


# --- quorum evaluation against a reference --------------------------------------------------


@dataclass
class Tree:
    policy: p.Policy
    cosigners: frozenset[str]


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    n_witnesses = draw(st.integers(1, 6))
    witnesses = tuple(
        p.PolicyWitness(f"w{i}", c.CosignerKey(f"w{i}", bytes([i]) * 32))
        for i in range(n_witnesses)
    )
    names = [w.name for w in witnesses]
    groups: list[p.PolicyGroup] = []
    for g in range(draw(st.integers(0, 5))):
        members = draw(
            st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)
        )
        threshold = draw(st.integers(1, len(members)))
        groups.append(p.PolicyGroup(f"g{g}", threshold, tuple(members)))
        names.append(f"g{g}")
    quorum = draw(st.sampled_from([*names, "none"]))
    cosigners = draw(st.frozensets(st.sampled_from([w.name for w in witnesses] + ["stranger"])))
    return Tree(p.Policy((), witnesses, tuple(groups), quorum), cosigners)


def reference(policy: p.Policy, name: str, cosigners: frozenset[str]) -> bool:
    """The spec's rule, literally: a witness witnesses if it cosigned; a group if at least k of
    its members do; ``none`` always."""
    if name == "none":
        return True
    for group in policy.groups:
        if group.name == name:
            count = 0
            for member in group.members:
                if reference(policy, member, cosigners):
                    count += 1
            return count >= group.threshold
    return name in cosigners


@given(trees())
def test_quorum_matches_the_reference(tree: Tree) -> None:
    want = reference(tree.policy, tree.policy.quorum, tree.cosigners)
    assert tree.policy.satisfied(tree.cosigners) is want
    assert (tree.policy.missing(tree.cosigners) == "") is want
    assert p.parse(p.format(tree.policy)) == tree.policy


@given(trees())
def test_more_cosigners_never_hurt(tree: Tree) -> None:
    if tree.policy.satisfied(tree.cosigners):
        everyone = {w.name for w in tree.policy.witnesses}
        assert tree.policy.satisfied(everyone)


def test_every_subset_of_the_example() -> None:
    names = list(COSIGNERS)
    for size in range(len(names) + 1):
        for subset in itertools.combinations(names, size):
            xs = sum(name.startswith("X") for name in subset)
            ys = size - xs
            assert POLICY.satisfied(set(subset)) is (xs >= 2 and ys >= 1)


# --- check ----------------------------------------------------------------------------------

CHECKPOINT = cp.Checkpoint(ORIGIN, 7, bytes(range(32)))
TEXT = cp.format(CHECKPOINT)


def _note(*names: str, log: n.Signer = LOG, text: str = TEXT) -> str:
    lines = [COSIGNERS[name].cosign(text, 1000 + i) for i, name in enumerate(names)]
    return n.Note(text, (log.sign(text), *lines)).message


@pytest.mark.parametrize(
    ("names", "met"),
    [((), False), (("X1",), False), (("X1", "Y2"), False), (("X1", "X3", "Y2"), True)],
)
def test_check_counts_cosignatures(names: tuple[str, ...], met: bool) -> None:
    message = _note(*names)
    if met:
        checked = POLICY.check(message, origin=ORIGIN)
        assert checked.checkpoint == CHECKPOINT
        assert checked.cosigners == {name: 1000 + i for i, name in enumerate(names)}
    else:
        with pytest.raises(
            PolicyError, match="the checkpoint does not meet the quorum: group X-and-Y"
        ):
            POLICY.check(message)


def test_check_ignores_unknown_cosigners() -> None:
    message = _note("X1", "X2", "Y1")
    extra = OUTSIDER.cosign(TEXT, 5).line + OUTSIDER.cosign(TEXT, 5).line.replace(
        "z.example", "x1.example"
    )
    # The second extra line has X1's name but the outsider's key ID: not X1's.
    cosigned = c.add_cosignatures(message, extra)
    assert POLICY.check(cosigned).cosigners == {"X1": 1000, "X2": 1001, "Y1": 1002}


def test_check_refuses_a_bad_cosignature_by_a_policy_witness() -> None:
    good = _note("X1", "X2", "Y1")
    bad = n.Note(TEXT, (*n.parse(good).signatures, X[2].cosign(TEXT + "x\n", 5))).message
    with pytest.raises(SignatureError, match=r"x3\.example"):
        POLICY.check(bad)


def test_check_needs_a_policy_log_for_the_origin() -> None:
    other = cp.format(cp.Checkpoint("example.com/other", 7, bytes(32)))
    with pytest.raises(PolicyError, match=r"no log for origin 'example\.com/other'"):
        POLICY.check(_note(log=OTHER_LOG, text=other))
    # The log key's name must be the origin: the right key under another name is no use.
    renamed = n.Signer("example.com/renamed", LOG.seed)
    with pytest.raises(SignatureError, match="signed by no known key"):
        POLICY.check(_note("X1", "X2", "Y1", log=renamed))
    with pytest.raises(CheckpointError, match=r"expected 'example\.com/elsewhere'"):
        POLICY.check(_note("X1", "X2", "Y1"), origin="example.com/elsewhere")
    with pytest.raises(CheckpointError):
        POLICY.check(n.sign("not a checkpoint\n", LOG))


def test_witness_by_key() -> None:
    signature = X[1].cosign(TEXT, 3)
    witness = POLICY.witness_by_key(signature)
    assert witness is not None
    assert witness.name == "X2"
    assert POLICY.witness_by_key(OUTSIDER.cosign(TEXT, 3)) is None
    assert POLICY.witness_by_key(LOG.sign(TEXT)) is None
