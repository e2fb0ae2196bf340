"""``auditlog export``: the real command, in this process, against a fake export route on
127.0.0.1 (``tests/cli/fakeapi.py``) that breaks its answers where each test says; and the
record framing it relies on, over every way a stream can be cut into pieces.

What is checked is the output: byte for byte what one uninterrupted export gives, however
often the connection broke and wherever (mid-line, mid-record, inside a quoted CSV cell
after a line break, inside the header), and the parameters each resumption asked with.
Last, the same against a real ``auditlog serve``, its connections cut by a proxy.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import live_server
from auditlog.cli import export
from auditlog.cli.apiclient import retry_after_seconds
from auditlog.cli.export import CsvRecords, NdjsonRecords
from auditlog.cli.main import main
from cli.fakeapi import Cut, ExportRoute, Refuse, awkward_events, cutting, serving

PATH = "/v1/events/export"
#: A column of text with commas, quotes and line breaks (``data`` itself is JSON, on one line).
NOTE = "data.note"
TOKEN = "alk_secretsecretsecret_tokentokentokentokentokentokentokentoke"


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the command asks for, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(export, "sleep", waits.append)
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return waits


def run_export(url: str, *argv: str) -> int:
    return main(["export", "--url", url, "--token", TOKEN, *argv])


def after_seqs(route_requests: list) -> list[tuple[str | None, str | None]]:  # type: ignore[type-arg]
    return [(s.param("after_seq"), s.param("before_seq")) for s in route_requests]


def inside(needle: bytes, nth: int = 0, offset: int = 0):  # type: ignore[no-untyped-def]
    """A cut position: ``offset`` bytes past the ``nth`` occurrence of ``needle``."""

    def at(body: bytes) -> int:
        position = -1
        for _ in range(nth + 1):
            position = body.index(needle, position + 1)
        return position + offset

    return at


# -- whole exports -------------------------------------------------------------------------


def test_an_export_is_written_to_stdout_as_received(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    route = ExportRoute(awkward_events(40), 40, [])
    with serving((PATH, route)) as api:
        code = run_export(api.url, "--after-seq", "2", "type=user.login", "data.amount[gt]=100")
        [seen] = api.requests(PATH)
    assert code == 0
    out, err = capsysbinary.readouterr()
    assert out == route.body(seen.params)
    wanted = [e for e in route.events if e["type"] == "user.login" and e["seq"] > 2]
    assert out.count(b"\n") == len(wanted)
    assert err == b""
    assert seen.params == [
        ("format", "ndjson"),
        ("type", "user.login"),
        ("data.amount[gt]", "100"),
        ("after_seq", "2"),
    ]
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


def test_an_export_of_a_pruned_log_says_where_it_begins(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    route = ExportRoute(awkward_events(30), 30, [], pruned_before=12)
    with serving((PATH, route)) as api:
        code = run_export(api.url)
    assert code == 0
    out, err = capsysbinary.readouterr()
    assert [orjson.loads(line)["seq"] for line in out.splitlines()] == list(range(12, 30))
    assert err == (
        b"auditlog: export: seq 11 and before are pruned (retention); the export begins at seq 12\n"
    )


def test_csv_with_columns_and_after_seq(tmp_path: Path) -> None:
    route = ExportRoute(awkward_events(30), 30, [])
    target = tmp_path / "out.csv"
    with serving((PATH, route)) as api:
        code = run_export(
            api.url,
            "--format",
            "csv",
            "--columns",
            "data.note",
            "--after-seq",
            "4",
            "-o",
            str(target),
        )
        [seen] = api.requests(PATH)
    assert code == 0
    assert seen.params == [("format", "csv"), ("columns", "data.note"), ("after_seq", "4")]
    written = target.read_bytes()
    assert written == route.body(seen.params)
    rows = list(csv.reader(io.StringIO(written.decode(), newline="")))
    assert rows[0] == ["seq", "id", "type", "data", "data.note"]
    assert [int(r[0]) for r in rows[1:]] == list(range(5, 30))
    assert rows[6][4] == "line one\nline two"  # seq 10


# -- broken connections --------------------------------------------------------------------


def test_ndjson_cut_mid_line_resumes_to_exactly_the_uninterrupted_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = awkward_events(60)
    # The first answer is cut inside the line of seq 11, and the log grows meanwhile: the
    # resumed export must still end at the first answer's size.
    plan = [
        Cut(inside(b'"seq":11', offset=3), grow_to=60),
        Cut(inside(b'"id":"ev-30"', offset=5)),
        Cut(inside(b"\n", nth=2, offset=1)),  # just after a line end: nothing partial
    ]
    route = ExportRoute(events, 40, plan)
    target = tmp_path / "out.ndjson"
    with serving((PATH, route)) as api:
        assert run_export(api.url, "-o", str(target)) == 0
        requests = api.requests(PATH)
    assert target.read_bytes() == route.body([], size=40)
    assert after_seqs(requests) == [(None, None), ("10", "40"), ("29", "40"), ("32", "40")]
    err = capsys.readouterr().err
    assert "resuming after seq 10" in err
    assert TOKEN not in err


def test_csv_cut_inside_a_quoted_cell_after_its_line_break(tmp_path: Path) -> None:
    events = awkward_events(50)
    plan = [
        Cut(inside(b"line one\n", offset=len(b"line one\n"))),  # in seq 2's cell
        Cut(inside(b"crlf one\r\n", offset=len(b"crlf one\r"))),  # between CR and LF of seq 3
        Cut(inside(b'"\n"', nth=0, offset=2)),  # inside the quoted line break of seq 7
        Cut(inside(b"seq,id", offset=4)),  # inside the repeated header
        Cut(inside(b"\xf0\x9d\x84\x9e", offset=2)),  # inside a 4-byte UTF-8 character
    ]
    route = ExportRoute(events, 50, plan)
    target = tmp_path / "out.csv"
    with serving((PATH, route)) as api:
        code = run_export(api.url, "--format", "csv", "--columns", NOTE, "-o", str(target))
        requests = api.requests(PATH)
    assert code == 0
    written = target.read_bytes()
    assert written == route.body([("format", "csv"), ("columns", NOTE)])
    assert written.count(b"seq,id,type,data,data.note\r\n") == 1
    assert after_seqs(requests) == [
        (None, None),
        ("1", "50"),
        ("2", "50"),
        ("6", "50"),
        ("6", "50"),
        ("12", "50"),
    ]


def test_a_cut_before_the_first_header_is_complete(tmp_path: Path) -> None:
    route = ExportRoute(awkward_events(10), 10, [Cut(lambda body: 3), Cut(lambda body: 0)])
    target = tmp_path / "out.csv"
    with serving((PATH, route)) as api:
        assert run_export(api.url, "--format", "csv", "-o", str(target)) == 0
        requests = api.requests(PATH)
    assert target.read_bytes() == route.body([("format", "csv")])
    assert after_seqs(requests) == [(None, None), (None, "10"), (None, "10")]


def test_429_and_503_are_waited_out_as_retry_after_says(tmp_path: Path, waits: list[float]) -> None:
    plan = [
        Refuse(429, "too many exports", retry_after="7"),
        Cut(inside(b"\n", nth=4, offset=-2)),
        Refuse(503, "overloaded", retry_after="2"),
    ]
    route = ExportRoute(awkward_events(20), 20, plan)
    target = tmp_path / "out.ndjson"
    with serving((PATH, route)) as api:
        assert run_export(api.url, "-o", str(target)) == 0
        requests = api.requests(PATH)
    assert target.read_bytes() == route.body([])
    assert after_seqs(requests) == [(None, None), (None, None), ("3", "20"), ("3", "20")]
    assert waits[0] >= 7
    assert waits[2] >= 2


def test_it_gives_up_when_the_retries_run_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first answer writes seq 0 and 1; the two retries after it write nothing.
    plan = [
        Cut(inside(b"\n", nth=1, offset=1)),
        Cut(lambda body: 10),
        Refuse(503, "still overloaded", retry_after="1"),
    ]
    route = ExportRoute(awkward_events(20), 20, plan)
    target = tmp_path / "out.ndjson"
    with serving((PATH, route)) as api:
        code = run_export(api.url, "--retries", "2", "-o", str(target))
        requests = api.requests(PATH)
    assert code == 1
    assert after_seqs(requests) == [(None, None), ("1", "20"), ("1", "20")]
    err = capsys.readouterr().err
    assert "gave up after 2 retries" in err
    assert "still overloaded" in err
    assert target.read_bytes() == route.body([], size=2)  # whole records only


@pytest.mark.parametrize(
    ("status", "detail"),
    [(401, "the token is revoked"), (403, "needs events:read"), (400, "unknown operator [gtx]")],
)
def test_a_refusal_ends_the_export_with_its_detail(
    capsys: pytest.CaptureFixture[str], status: int, detail: str
) -> None:
    route = ExportRoute(awkward_events(5), 5, [Refuse(status, detail)])
    with serving((PATH, route)) as api:
        code = run_export(api.url, "data.amount[gtx]=3")
        assert len(api.requests(PATH)) == 1
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert f"answered {status}: {detail}" in err
    assert TOKEN not in err


# -- --resume ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "cut", "expected_after"),
    [
        ("ndjson", inside(b'"seq":17', offset=2), "16"),
        ("csv", inside(b"line one\n", nth=1, offset=4), "9"),  # inside seq 10's quoted cell
        ("csv", inside(b"\r\n12,", offset=2), "11"),  # just after seq 11
        ("csv", inside(b"type,", offset=2), None),  # inside the header
    ],
)
def test_resume_continues_a_truncated_file(
    tmp_path: Path, fmt: str, cut: object, expected_after: str | None
) -> None:
    route = ExportRoute(awkward_events(30), 30, [])
    columns = ["--columns", NOTE] if fmt == "csv" else []
    whole = route.body([("format", fmt), *([("columns", NOTE)] if columns else [])])
    target = tmp_path / f"out.{fmt}"
    target.write_bytes(whole[: cut(whole)])  # type: ignore[operator]
    with serving((PATH, route)) as api:
        code = run_export(api.url, "--format", fmt, *columns, "-o", str(target), "--resume")
        [seen] = api.requests(PATH)
    assert code == 0
    assert target.read_bytes() == whole
    assert (seen.param("after_seq"), seen.param("before_seq")) == (expected_after, None)


def test_resume_of_a_missing_file_exports_it_all(tmp_path: Path) -> None:
    route = ExportRoute(awkward_events(12), 12, [])
    target = tmp_path / "new.ndjson"
    with serving((PATH, route)) as api:
        assert run_export(api.url, "-o", str(target), "--resume", "--after-seq", "3") == 0
    assert target.read_bytes() == route.body([("after_seq", "3")])


def test_resume_refuses_a_file_of_other_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    route = ExportRoute(awkward_events(12), 12, [])
    target = tmp_path / "out.csv"
    target.write_bytes(route.body([("format", "csv")])[:200])
    before = target.read_bytes()
    with serving((PATH, route)) as api:
        code = run_export(
            api.url, "--format", "csv", "--columns", NOTE, "-o", str(target), "--resume"
        )
    assert code == 1
    assert "header" in capsys.readouterr().err
    assert before.startswith(target.read_bytes())


# -- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["type"],
        ["=user.login"],
        ["format=csv"],
        ["--resume"],
        ["--columns", "data.a"],
        ["--retries", "-1"],
    ],
)
def test_bad_usage_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    route = ExportRoute(awkward_events(3), 3, [])
    with serving((PATH, route)) as api:
        assert run_export(api.url, *argv) == 2
        assert api.requests(PATH) == []
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("auditlog: export: ")
    assert TOKEN not in err


def test_a_url_that_is_not_http_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_export("ftp://127.0.0.1/") == 2
    assert "--url" in capsys.readouterr().err


# -- the framing ---------------------------------------------------------------------------


def csv_body(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


cells = st.text(alphabet=st.sampled_from(['"', ",", "\n", "\r", "a", "é", "𝄞", " "]), max_size=8)


@given(
    rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_csv_records_are_the_rows_however_the_bytes_arrive(
    rows: list[list[str]], cuts: list[int]
) -> None:
    body = csv_body(rows)
    framing = CsvRecords()
    records: list[bytes] = []
    start = 0
    for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
        records += framing.feed(body[start:cut])
        start = cut
    assert framing.partial == 0
    assert records == [csv_body([row]) for row in rows]


@given(
    lines=st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_ndjson_records_are_the_lines_however_the_bytes_arrive(
    lines: list[dict[str, str]], cuts: list[int]
) -> None:
    wanted = [orjson.dumps(line) + b"\n" for line in lines]
    body = b"".join(wanted)
    framing = NdjsonRecords()
    records: list[bytes] = []
    start = 0
    for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
        records += framing.feed(body[start:cut])
        start = cut
    assert framing.partial == 0
    assert records == wanted


def test_retry_after_takes_seconds_and_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# -- against the real service --------------------------------------------------------------


def post_events(url: str, token: str, count: int) -> list[dict[str, Any]]:
    """``count`` events of type ``order.placed`` (with awkward notes) posted to the service;
    every such event of the tenant as stored, in seq order."""
    notes = [e["data"]["note"] for e in awkward_events(8)]
    batch = [
        {"type": "order.placed", "data": {"note": notes[n % len(notes)], "amount": n}}
        for n in range(count)
    ]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.post("/v1/events", json=batch)
        assert answer.status_code == 201, answer.text
        return [e for e in live_server.all_events(client) if e["type"] == "order.placed"]


@pytest.mark.slow
def test_a_real_export_through_broken_connections(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = live_server.create_key(data, tenant="acme", scopes="events:write,events:read")
    with live_server.serving(data, tmp_path / "serve.log") as server:
        stored = post_events(server.url, token, 300)
        exports = {}
        for fmt, columns in (("ndjson", []), ("csv", ["--columns", NOTE])):
            whole = tmp_path / f"whole.{fmt}"
            argv = ["--token", token, "--format", fmt, *columns, "type=order.placed"]
            assert main(["export", "--url", server.url, *argv, "-o", str(whole)]) == 0
            broken = tmp_path / f"broken.{fmt}"
            with cutting(server.url, [700, 9000, 30000, 400]) as proxy:
                assert main(["export", "--url", proxy.url, *argv, "-o", str(broken)]) == 0
            assert broken.read_bytes() == whole.read_bytes()
            assert len(proxy.requests) == 5
            assert all("before_seq=" in head for head in proxy.requests[1:])
            exports[fmt] = whole.read_bytes()
            # An earlier run stopped in the middle of a record, continued with --resume.
            middle = len(exports[fmt]) // 2
            broken.write_bytes(exports[fmt][:middle])
            assert main(["export", "--url", server.url, *argv, "-o", str(broken), "--resume"]) == 0
            assert broken.read_bytes() == exports[fmt]
    assert [orjson.loads(line) for line in exports["ndjson"].splitlines()] == stored
    rows = list(csv.reader(io.StringIO(exports["csv"].decode(), newline="")))
    assert rows[0][0] == "seq"
    assert rows[0][-1] == NOTE
    assert [(int(r[0]), r[-1]) for r in rows[1:]] == [(e["seq"], e["data"]["note"]) for e in stored]
