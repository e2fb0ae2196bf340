"""The console's ES modules, their pure parts, run in the browser and compared in Python:
query.js (the URL, the form's view and the API's parameters), proof.js (RFC 9162 inclusion
proofs and C2SP signed notes, against the project's own known answers in tests/integrity/ and
its reference implementation), sse.js (the event-stream format) and times.js.

Each test imports a module into a page of the console (``import("/ui/...")``) through
``page.evaluate`` and hands it plain values: bytes travel as base64.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import cosignature as cosignatures
from auditlog.integrity import note as notes
from auditlog.integrity import policy as policies
from auditlog.integrity.hasher import leaf_hash
from integrity import reference
from integrity.test_cosignature import VECTORS
from integrity.test_note import C2SP_NOTE, GO_ENOCH_LINE, GO_NOTE, GO_TEXT, GO_VKEY
from integrity.test_proof import RFC6962_ENTRIES, RFC6962_INCLUSION, RFC6962_ROOTS
from ui.conftest import Console

pytestmark = pytest.mark.slow


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def js(page: Page, console: Console) -> Page:
    """A page of the console, its modules ready to import."""
    page.goto(f"{console.url}/ui/")
    page.wait_for_selector("#main form")
    return page


def run(page: Page, module: str, body: str, arg: Any = None) -> Any:
    """``body`` (an async function's body) with ``m`` the module and ``arg`` the argument."""
    return page.evaluate(
        f"async ([arg]) => {{ const m = await import('/ui/{module}'); {body} }}", [arg]
    )


# -- query.js ------------------------------------------------------------------------------

NOW = "2026-12-06T12:00:00.000Z"
NOW_MS = int(datetime.fromisoformat(NOW).timestamp() * 1000)


SEARCHES = [
    "",
    "?type=user.login",
    "?q=refund%20card*&type=a&actor=alice&subject=inv-1&source=billing&outcome=failure",
    "?type=a&type[eq]=b&data.amount[gt]=100&data.amount[lte]=1000",
    "?data.location.city=Seattle&data.tags[in]=a,b&actor.type[ne]=bot&data.flag[exists]=false",
    "?range=24h&subject.name[prefix]=Acme%20Inc&order=asc&limit=25",
    "?range=custom&since=2026-12-01T00:00:00.000Z&until=2026-12-02T00:00:00.000Z&tz=local",
    "?range=7d&at=2026-12-06T12:00:00.000Z&cursor=WzEsMl0&event=01ABC",
    "?data.note=a%26b%3Dc%20%2B%20d%25&id=x:y",
]


@pytest.mark.parametrize("search", SEARCHES)
def test_the_url_of_a_view_reads_back_to_the_same_view(js: Page, search: str) -> None:
    first, again, view, reread = run(
        js,
        "query.js",
        """const view = m.parseView(arg);
        const search = m.viewToSearch(view);
        return [search, m.viewToSearch(m.parseView(search)), view, m.parseView(search)];""",
        search,
    )
    assert first == again
    assert view == reread
    # The canonical form is the one given, for those written canonically.
    if search and "type[eq]" not in search:
        assert first == search


def test_a_view_becomes_the_parameters_of_the_api(js: Page) -> None:
    search = (
        "?q=refund&type=a&actor=alice&subject=inv-1&source=billing&outcome=failure"
        "&range=1h&data.amount[gt]=100&type[eq]=b&data.flag[exists]=true&order=asc&limit=25"
        "&cursor=abc&tz=local&event=e1"
    )
    pairs = run(js, "query.js", f"return m.queryParams(m.parseView(arg), {NOW_MS});", search)
    assert pairs == [
        ["q", "refund"],
        ["type", "a"],
        ["actor", "alice"],
        ["subject", "inv-1"],
        ["source", "billing"],
        ["outcome", "failure"],
        ["since", "2026-12-06T11:00:00.000Z"],
        ["data.amount[gt]", "100"],
        ["type[eq]", "b"],
        ["data.flag[exists]", "true"],
        ["order", "asc"],
        ["limit", "25"],
        ["cursor", "abc"],
    ]
    filters = run(js, "query.js", f"return m.filterParams(m.parseView(arg), {NOW_MS});", search)
    assert filters == pairs[:-3]


@pytest.mark.parametrize(
    ("preset", "since"),
    [
        ("15m", "2026-12-06T11:45:00.000Z"),
        ("1h", "2026-12-06T11:00:00.000Z"),
        ("24h", "2026-12-05T12:00:00.000Z"),
        ("7d", "2026-11-29T12:00:00.000Z"),
        ("30d", "2026-11-06T12:00:00.000Z"),
    ],
)
def test_a_time_preset_counts_back_from_its_anchor(js: Page, preset: str, since: str) -> None:
    unanchored, anchored = run(
        js,
        "query.js",
        f"""const v = m.parseView(arg);
        return [m.sinceOf(v, {NOW_MS}), m.sinceOf({{...v, at: "{NOW}"}}, 0)];""",
        f"?range={preset}",
    )
    assert unanchored == since
    assert anchored == since


def test_the_parameters_built_are_ones_the_api_takes(js: Page, console: Console) -> None:
    """Every spelling the console builds is accepted by the service (200, not 400)."""
    key = console.key("acme", "events:read")
    for search in SEARCHES:
        query = run(
            js,
            "query.js",
            f"return m.encodeParams(m.queryParams(m.parseView(arg), {NOW_MS}));",
            search,
        )
        with httpx.Client(base_url=console.url, timeout=30.0) as client:
            answer = client.get(
                f"/v1/events?{query.replace('cursor=WzEsMl0', '')}",
                headers={"Authorization": f"Bearer {key}"},
            )
        assert answer.status_code == 200, (search, query, answer.text)


def test_readable_characters_stay_readable_and_the_rest_is_encoded(js: Page) -> None:
    text = run(
        js,
        "query.js",
        "return m.encodeParams(arg);",
        [["data.a[in]", "x,y"], ["q", "a&b=c #d"], ["time[gte]", "2026-12-06T00:00:00Z"]],
    )
    assert text == "data.a[in]=x,y&q=a%26b%3Dc%20%23d&time[gte]=2026-12-06T00:00:00Z"


def test_filter_by_value_narrows_the_search_to_that_value(js: Page) -> None:
    steps = run(
        js,
        "query.js",
        """let v = m.parseView(arg[0]);
        const out = [];
        for (const [path, value] of arg[1]) { v = m.withValue(v, path, value); out.push(m.viewToSearch(v)); }
        return out;""",
        [
            "?cursor=c1&event=e1&range=1h&at=2026-12-06T00:00:00Z&actor.id[in]=x,y&data.amount[gt]=5",
            [
                ["actor.id", "alice"],
                ["actor.id", "bob"],
                ["data.amount", 120],
                ["data.ok", True],
                ["data.gone", None],
                ["outcome", "success"],
                ["data.amount", 7],
            ],
        ],
    )
    # Equalities on one path are ORed by the API: a new value replaces them (and an `in`),
    # while other conditions on the path (data.amount[gt]) stay.
    assert steps == [
        "?actor=alice&range=1h&data.amount[gt]=5",
        "?actor=bob&range=1h&data.amount[gt]=5",
        "?actor=bob&range=1h&data.amount[gt]=5&data.amount=120",
        "?actor=bob&range=1h&data.amount[gt]=5&data.amount=120&data.ok=true",
        "?actor=bob&range=1h&data.amount[gt]=5&data.amount=120&data.ok=true&data.gone=null",
        "?actor=bob&outcome=success&range=1h&data.amount[gt]=5&data.amount=120&data.ok=true&data.gone=null",
        "?actor=bob&outcome=success&range=1h&data.amount[gt]=5&data.ok=true&data.gone=null&data.amount=7",
    ]


def test_a_viewer_filter_is_said_in_words(js: Page) -> None:
    phrases = run(
        js,
        "query.js",
        "return m.describePairs(m.filterObjectPairs(arg));",
        {"subject": "customer-42", "type": ["a", "b"], "data.amount[gt]": 100, "data.x": True},
    )
    assert phrases == [
        "subject = customer-42",
        "type = a",
        "type = b",
        "data.amount > 100",
        "data.x = true",
    ]


def test_problems_of_a_view_are_found_before_asking(js: Page) -> None:
    problems = run(
        js,
        "query.js",
        "return m.viewProblems(m.parseView(arg));",
        "?foo=1&data.a[zz]=1&data.b[exists]=maybe&data.ok=1",
    )
    assert len(problems) == 3
    assert "“foo” is not a field path" in problems[0]
    assert "“zz” is not an operator" in problems[1]
    assert "“exists” takes true or false" in problems[2]


# -- proof.js: RFC 9162 ---------------------------------------------------------------------


def test_leaf_hashes_are_rfc_6962s(js: Page) -> None:
    got = run(
        js,
        "proof.js",
        """const out = [];
        for (const e of arg) out.push(m.bytesToBase64(await m.leafHash(m.base64ToBytes(e))));
        return out;""",
        [b64(e) for e in RFC6962_ENTRIES],
    )
    assert got == [b64(leaf_hash(e)) for e in RFC6962_ENTRIES]


def test_the_known_inclusion_proofs_lead_to_the_known_roots(js: Page) -> None:
    cases = [
        [
            index,
            size,
            b64(leaf_hash(RFC6962_ENTRIES[index])),
            [b64(bytes.fromhex(h)) for h in proof],
        ]
        for index, size, proof in RFC6962_INCLUSION
    ]
    roots = run(
        js,
        "proof.js",
        """const out = [];
        for (const [index, size, leaf, proof] of arg) {
          const root = await m.rootFromInclusionProof(index, size, m.base64ToBytes(leaf), proof.map(m.base64ToBytes));
          out.push(m.toHex(root));
        }
        return out;""",
        cases,
    )
    assert roots == [RFC6962_ROOTS[size - 1].hex() for _, size, _ in RFC6962_INCLUSION]


_VERIFY_ALL = """const out = [];
for (const [index, size, leaf, proof, root] of arg) {
  out.push(await m.verifyInclusion(index, size, m.base64ToBytes(leaf), proof.map(m.base64ToBytes), m.base64ToBytes(root)));
}
return out;"""


def test_every_inclusion_proof_of_the_reference_verifies(js: Page) -> None:
    """Every leaf of every tree of 1 to 40 entries, proofs from the RFC's own definition."""
    cases = []
    for size in range(1, 41):
        entries = reference.entries(size)
        root = b64(reference.mth(entries))
        for index in range(size):
            proof = [b64(h) for h in reference.path(index, entries)]
            cases.append([index, size, b64(leaf_hash(entries[index])), proof, root])
    assert all(run(js, "proof.js", _VERIFY_ALL, cases))


def test_every_tampered_inclusion_proof_fails(js: Page) -> None:
    """A flipped bit anywhere, a hash dropped or added, another index, size or root: all fail."""
    cases = []
    for size in (1, 2, 3, 5, 8, 13, 21):
        entries = reference.entries(size)
        root = reference.mth(entries)
        for index in range(size):
            leaf = leaf_hash(entries[index])
            proof = reference.path(index, entries)
            for i, h in enumerate(proof):
                flipped = bytes([h[0] ^ 1]) + h[1:]
                cases.append([index, size, leaf, [*proof[:i], flipped, *proof[i + 1 :]], root])
            cases.append([index, size, bytes([leaf[0] ^ 0x80]) + leaf[1:], proof, root])
            cases.append([index, size, leaf, proof, root[:31] + bytes([root[31] ^ 1])])
            cases.append([index, size, leaf, [*proof, root], root])
            if proof:
                cases.append([index, size, leaf, proof[:-1], root])
            if size > 1:
                cases.append([(index + 1) % size, size, leaf, proof, root])
            bigger = reference.mth(reference.entries(size + 1))
            cases.append([index, size + 1, leaf, proof, bigger])
            cases.append([size, size, leaf, proof, root])
    encoded = [
        [i, n, b64(leaf), [b64(h) for h in proof], b64(root)]  # type: ignore[arg-type, union-attr]
        for i, n, leaf, proof, root in cases
    ]
    results = run(js, "proof.js", _VERIFY_ALL, encoded)
    assert not any(results), [
        (number, case[:2])
        for number, (case, ok) in enumerate(zip(encoded, results, strict=True))
        if ok
    ]


# -- proof.js: signed notes -----------------------------------------------------------------


def test_the_go_example_note_verifies(js: Page) -> None:
    result = run(
        js,
        "proof.js",
        "const key = await m.parseVerifierKey(arg[0]); return await m.verifyNote(arg[1], key);",
        [GO_VKEY, GO_NOTE],
    )
    assert result == {"ok": True, "text": GO_TEXT, "reason": ""}


def test_a_note_cosigned_by_an_unknown_key_verifies_and_one_unsigned_by_ours_does_not(
    js: Page,
) -> None:
    results = run(
        js,
        "proof.js",
        """const key = await m.parseVerifierKey(arg[0]);
        const out = [];
        for (const note of arg.slice(1)) out.push(await m.verifyNote(note, key));
        return out;""",
        [GO_VKEY, GO_NOTE + GO_ENOCH_LINE, C2SP_NOTE],
    )
    assert results[0]["ok"] is True
    assert results[1] == {
        "ok": False,
        "text": C2SP_NOTE.split("\n\n\u2014")[0] + "\n",
        "reason": "no signature by PeterNeumann",
    }


def test_a_note_with_its_text_or_signature_changed_fails(js: Page) -> None:
    changed_text = GO_NOTE.replace("cryptography", "cryptographY")
    signature = GO_NOTE.split("\u2014 PeterNeumann ")[1].strip()
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 1
    changed_signature = GO_NOTE.replace(signature, b64(bytes(raw)))
    results = run(
        js,
        "proof.js",
        """const key = await m.parseVerifierKey(arg[0]);
        return [await m.verifyNote(arg[1], key), await m.verifyNote(arg[2], key)];""",
        [GO_VKEY, changed_text, changed_signature],
    )
    assert [r["ok"] for r in results] == [False, False]
    assert results[0]["reason"] == "the signature by PeterNeumann is wrong"


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY.replace("+c74f20a3+", "+c74f20a4+"),  # the key ID of another key
        GO_VKEY.replace("+ARpc", "+AhRpc"),  # not base64 of 0x01 || 32 bytes
        "PeterNeumann+c74f20a3",  # no key
        GO_VKEY.replace("PeterNeumann", "PeterNeumanm"),  # the ID of another name
    ],
)
def test_a_malformed_verifier_key_is_refused(js: Page, vkey: str) -> None:
    error = run(
        js,
        "proof.js",
        "try { await m.parseVerifierKey(arg); return null; } catch (e) { return [e.name, e instanceof m.ProofError]; }",
        vkey,
    )
    assert error == ["Error", True]


# -- proof.js: witnesses' cosignatures (C2SP tlog-cosignature) --------------------------------

COSIGNED_TEXT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
_COSIGN_CHECK = """
  const key = await m.parseCosignerKey(arg[0]);
  const note = m.parseNote(arg[1]);
  const out = [];
  for (const line of note.signatures) {
    if (line.name !== key.name || m.toHex(line.keyId) !== m.toHex(key.keyId)) continue;
    out.push(await m.verifyCosignature(note.text, line, key));
  }
  return out;
"""


def _cosigned(cosigner: cosignatures.Cosigner, text: str, timestamp: int) -> str:
    return text + "\n" + cosigner.cosign(text, timestamp).line


@pytest.mark.parametrize(
    "line",
    [
        line
        for line in (VECTORS / "formats_cosigv1_vkeys.txt").read_text("utf-8").splitlines()
        if line and not line.startswith("#")
    ],
)
def test_cosigner_keys_of_the_formats_vectors(js: Page, line: str) -> None:
    expect, vkey = line.split(" ", 1)
    got = run(
        js,
        "proof.js",
        """try { const k = await m.parseCosignerKey(arg); return [k.name, m.toHex(k.keyId)]; }
        catch (e) { return e instanceof m.ProofError ? "refused" : String(e); }""",
        vkey,
    )
    if expect == "ok":
        key = cosignatures.CosignerKey.from_vkey(vkey)
        assert got == [key.name, key.key_id.hex()]
    else:
        assert got == "refused"


def test_cosignatures_made_in_python_verify_with_their_time_and_changed_ones_do_not(
    js: Page,
) -> None:
    cosigner = cosignatures.Cosigner("witness.example/w1", bytes([7]) * 32)
    good = _cosigned(cosigner, COSIGNED_TEXT, 1_700_000_000)
    late = _cosigned(cosigner, COSIGNED_TEXT, (1 << 63) - 1)
    other_text = COSIGNED_TEXT.replace("20852163", "20852164")
    moved = other_text + "\n" + good.split("\n\n", 1)[1]  # the line on another checkpoint
    raw = bytearray(base64.b64decode(good.rsplit(" ", 1)[1]))
    raw[11] ^= 1  # the timestamp's last byte: the signed time is another
    retimed = good.rsplit(" ", 1)[0] + " " + b64(bytes(raw)) + "\n"
    results = [
        run(js, "proof.js", _COSIGN_CHECK, [cosigner.key.vkey, note])
        for note in (good, late, moved, retimed)
    ]
    assert results[0] == [{"ok": True, "timestamp": 1_700_000_000, "reason": ""}]
    assert results[1][0]["ok"] is True
    assert [r[0]["ok"] for r in results[2:]] == [False, False]
    assert "does not verify" in results[2][0]["reason"]
    # A signed-note key (type 0x01) of the same name is not a cosigner key.
    assert run(
        js,
        "proof.js",
        "try { await m.parseCosignerKey(arg); return null; } catch (e) { return e instanceof m.ProofError; }",
        notes.Signer("witness.example/w1", bytes([7]) * 32).verifier.vkey,
    )


def test_the_c2sp_example_cosignature_is_read_with_its_time(js: Page) -> None:
    message = (VECTORS / "c2sp_cosigned_checkpoint.txt").read_text("utf-8")
    note = run(
        js,
        "proof.js",
        """const n = m.parseNote(arg);
        return n.signatures.map((s) => [s.name, s.signature.length]);""",
        message,
    )
    assert note == [["example.com/behind-the-sofa", 64], ["witness.example.com/w1", 72]]


QUORUMS = [
    ("quorum none", []),
    ("quorum a", ["a"]),
    ("group g 2 a b c; quorum g", ["a", "c"]),
    ("group g all a b; quorum g", ["a", "b"]),
    ("group g any a b; quorum g", ["b"]),
    ("group g 1 a b; group h 2 g c d; quorum h", ["b", "d"]),
]


@pytest.mark.parametrize(("quorum", "enough"), QUORUMS)
def test_quorums_are_met_as_the_policy_says(js: Page, quorum: str, enough: list[str]) -> None:
    keys = "".join(
        f"witness {w} {cosignatures.Cosigner(w, bytes([i + 1]) * 32).key.vkey}\n"
        for i, w in enumerate("abcd")
    )
    policy = policies.parse(keys + quorum.replace("; ", "\n") + "\n")
    subsets = [[w for i, w in enumerate("abcd") if mask >> i & 1] for mask in range(16)]
    got = run(
        js,
        "proof.js",
        "const q = m.parseQuorum(arg[0]); return arg[1].map((s) => m.quorumMet(q, new Set(s)));",
        [quorum, subsets],
    )
    assert got == [policy.satisfied(s) for s in subsets]
    assert got[sum(1 << "abcd".index(w) for w in enough)] is True


# -- proof.js: an event in its log ----------------------------------------------------------


def a_log(size: int) -> tuple[list[bytes], notes.Signer, str]:
    """Events as stored bytes, the log's signer, and its signed checkpoint of them all."""
    events = [
        json.dumps(
            {"id": f"e{i}", "seq": i, "type": "t", "data": {"n": i}},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        for i in range(size)
    ]
    signer = notes.Signer("example.com/log", hashlib.sha256(b"seed").digest())
    root = reference.mth(events)
    note = checkpoints.sign(checkpoints.Checkpoint("example.com/log", size, root), signer)
    return events, signer, note


def check_event(
    page: Page,
    events: list[bytes],
    seq: int,
    note: str,
    vkey: str,
    *,
    proof_of: list[bytes] | None = None,
    size: int | None = None,
    event: bytes | None = None,
) -> dict[str, Any]:
    tree = proof_of or events
    n = size if size is not None else len(tree)
    inclusion = {
        "leaf_index": seq,
        "tree_size": n,
        "leaf_hash": b64(leaf_hash(tree[seq])),
        "hashes": [b64(h) for h in reference.path(seq, tree[:n])],
    }
    result: dict[str, Any] = run(
        page,
        "proof.js",
        """const r = await m.checkEvent({eventBytes: m.base64ToBytes(arg.event), seq: arg.seq,
            inclusion: arg.inclusion, note: arg.note, vkey: arg.vkey});
        return {ok: r.ok, steps: r.steps};""",
        {
            "event": b64(event if event is not None else events[seq]),
            "seq": seq,
            "inclusion": inclusion,
            "note": note,
            "vkey": vkey,
        },
    )
    return result


def failed(result: dict[str, Any]) -> list[str]:
    return [s["name"] for s in result["steps"] if not s["ok"]]


def test_an_event_of_a_signed_log_checks_out(js: Page) -> None:
    events, signer, note = a_log(11)
    for seq in (0, 5, 10):
        result = check_event(js, events, seq, note, signer.verifier.vkey)
        assert result["ok"], result
        assert [s["name"] for s in result["steps"]] == ["key", "signature", "leaf", "inclusion"]


def test_an_event_whose_bytes_changed_fails_at_its_leaf(js: Page) -> None:
    events, signer, note = a_log(11)
    changed = events[4].replace(b'"n":4', b'"n":5')
    result = check_event(js, events, 4, note, signer.verifier.vkey, event=changed)
    assert not result["ok"]
    assert failed(result) == ["leaf", "inclusion"]


def test_a_log_whose_event_changed_everywhere_fails_at_its_root(js: Page) -> None:
    """The service changed the event and its leaf and its proof, but not the signed root."""
    events, signer, note = a_log(11)
    forged = [*events[:4], events[4].replace(b'"n":4', b'"n":5'), *events[5:]]
    result = check_event(js, forged, 4, note, signer.verifier.vkey)
    assert failed(result) == ["inclusion"]


def test_a_checkpoint_signed_by_another_key_fails_at_its_signature(js: Page) -> None:
    events, _, note = a_log(11)
    other = notes.Signer("example.com/log", hashlib.sha256(b"other").digest())
    result = check_event(js, events, 3, note, other.verifier.vkey)
    assert failed(result) == ["signature"]
    forged = checkpoints.sign(
        checkpoints.Checkpoint("example.com/log", 11, reference.mth(events)), other
    )
    result = check_event(js, events, 3, forged, a_log(11)[1].verifier.vkey)
    assert failed(result) == ["signature"]


def test_a_checkpoint_of_another_origin_fails(js: Page) -> None:
    events, _, _ = a_log(11)
    signer = notes.Signer("example.com/log", hashlib.sha256(b"seed").digest())
    other = checkpoints.sign(
        checkpoints.Checkpoint("example.com/other", 11, reference.mth(events)), signer
    )
    result = check_event(js, events, 3, other, signer.verifier.vkey)
    assert failed(result) == ["origin"]


def test_a_proof_of_another_tree_size_fails(js: Page) -> None:
    events, signer, note = a_log(11)
    result = check_event(js, events, 3, note, signer.verifier.vkey, size=9)
    assert failed(result) == ["inclusion"]


# -- sse.js and times.js ------------------------------------------------------------------------


def test_the_event_stream_is_split_as_the_html_standard_says(js: Page) -> None:
    chunks = [
        "\ufeffretry: 2000\nid: 41\n\n",
        'id: 42\nevent: audit\ndata: {"a":',
        "1}\n\n: keep-alive\n\r\nid: 43\r",
        "\nevent: audit\r\ndata: line one\ndata: line two\n\n",
        "data: no id\n\nid\n\n",
    ]
    blocks, retry = run(
        js,
        "sse.js",
        """const blocks = [];
        const p = new m.SseParser((b) => blocks.push(b));
        for (const chunk of arg) p.push(chunk);
        return [blocks, p.retry];""",
        chunks,
    )
    assert retry == 2000
    assert blocks == [
        {"id": "41", "event": "message", "data": "", "hasData": False},
        {"id": "42", "event": "audit", "data": '{"a":1}', "hasData": True},
        {"comment": "keep-alive"},
        {"id": "43", "event": "audit", "data": "line one\nline two", "hasData": True},
        {"id": "43", "event": "message", "data": "no id", "hasData": True},
        {"id": "", "event": "message", "data": "", "hasData": False},
    ]


def test_times_are_shown_in_utc_with_their_microseconds(js: Page) -> None:
    shown = run(
        js,
        "times.js",
        """return [m.formatTime("2026-12-06T03:12:45.123456Z", "utc"),
          m.formatTime("2026-12-06T04:12:45.5+01:00", "utc"),
          m.formatTime("not a time", "utc"),
          m.fromInputValue("2026-12-06T03:12", "utc"),
          m.toInputValue("2026-12-06T03:12:45.123456Z", "utc"),
          m.fromInputValue("", "utc")];""",
    )
    assert shown == [
        "2026-12-06 03:12:45.123456",
        "2026-12-06 03:12:45.500",
        "not a time",
        "2026-12-06T03:12:00.000Z",
        "2026-12-06T03:12:45",
        "",
    ]


def test_local_time_follows_the_browser_zone(browser: Any, console: Console) -> None:
    context = browser.new_context(timezone_id="Asia/Kolkata")
    try:
        page = context.new_page()
        page.goto(f"{console.url}/ui/")
        shown = run(
            page,
            "times.js",
            """return [m.formatTime("2026-12-06T03:12:45.123456Z", "local"),
              m.fromInputValue("2026-12-06T08:42:45", "local"),
              m.toInputValue("2026-12-06T03:12:45Z", "local")];""",
        )
        assert shown == [
            "2026-12-06 08:42:45.123456 +05:30",
            "2026-12-06T03:12:45.000Z",
            "2026-12-06T08:42:45",
        ]
    finally:
        context.close()
