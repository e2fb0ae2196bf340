"""docs/reliability.md kept honest: every test it names exists, and every test file here is named."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
#: ``tests/x.py``, ``tests/x.py::test_name``, or ``::test_name`` (in the file named last).
REFERENCE = re.compile(r"(tests/[\w/]+\.py)?(?:::(\w+))?")


def references() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    last = ""
    for match in REFERENCE.finditer(DOC.read_text(encoding="utf-8")):
        path, name = match.groups()
        if path:
            last = path
        if path or name:
            found.append((last, name))
    return found


def test_every_test_the_doc_names_exists() -> None:
    refs = references()
    assert refs
    for path, name in refs:
        source = ROOT / path
        assert source.is_file(), path
        if name is not None:
            assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.M), (
                f"{path}::{name}"
            )


def test_every_reliability_test_file_is_in_the_doc() -> None:
    named = {path for path, _ in references()}
    here = Path(__file__).resolve().parent
    for test_file in sorted(here.glob("test_*.py")):
        if test_file.name != Path(__file__).name:
            assert f"tests/reliability/{test_file.name}" in named, test_file.name
