"""The docs kept honest: every setting, route, command, operator, status and metric documented,
the README's examples valid, and its quick start the two commands that CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from auditlog.cli.main import main
from auditlog.config import SETTINGS, Setting, Settings
from auditlog.errors import FieldError
from auditlog.metrics import Metrics
from auditlog.model import times
from auditlog.model.batch import validate_batch
from auditlog.model.event import Limits, Principal
from auditlog.model.fields import OPS
from auditlog.model.query import parse_query
from auditlog.server.app import build_app
from auditlog.server.problems import PROBLEM_BASE, PROBLEM_TYPES
from auditlog.storage.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def all_docs() -> str:
    return "\n".join(read(p) for p in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))])


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, re.DOTALL | re.MULTILINE)


def section(markdown: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next heading of that level."""
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


# -- configuration -------------------------------------------------------------------------


def render_default(setting: Setting) -> str:
    if isinstance(setting.default, bool):
        return "true" if setting.default else "false"
    if setting.default == "":
        return '""'
    return str(setting.default)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented_with_its_variable_flag_and_default(setting: Setting) -> None:
    rows = [
        line
        for line in read(DOCS / "configuration.md").splitlines()
        if line.startswith(f"| `{setting.name}` |")
    ]
    assert len(rows) == 1, f"docs/configuration.md needs one table row for {setting.name}"
    [row] = rows
    assert f"`{setting.env}`" in row
    assert f"`{setting.flag}`" in row
    assert f"`{render_default(setting)}`" in row, f"default of {setting.name}"


def test_configuration_lists_no_setting_that_does_not_exist() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \| `AUDITLOG_", read(DOCS / "configuration.md"), re.M)
    assert sorted(documented) == sorted(s.name for s in SETTINGS)


# -- the HTTP API --------------------------------------------------------------------------


def test_every_route_is_documented() -> None:
    api = read(DOCS / "api.md")
    app = build_app(Settings(), MemoryStore())
    for route in app.router.routes:
        assert f"{route.method} {route.pattern}" in api, f"{route.method} {route.pattern}"


def test_every_query_operator_is_documented() -> None:
    reading = section(read(DOCS / "api.md"), "Reading")
    table = reading.split("**Operators.**", 1)[1].split("\n\n", 2)[1]
    documented = set()
    for row in table.splitlines()[2:]:
        documented.update(re.findall(r"`([a-z]+)`", row.split("|")[1]))
    assert documented == set(OPS)


def test_every_problem_status_is_documented() -> None:
    errors = section(read(DOCS / "api.md"), "Errors")
    assert f"`{PROBLEM_BASE}`" in errors
    for status, name in PROBLEM_TYPES.items():
        assert f"`{status}`" in errors, status
        assert f"`{name}`" in errors, name


def test_every_metric_is_documented() -> None:
    operations = read(DOCS / "operations.md")
    for family in Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}" in operations, name


# -- the command line ----------------------------------------------------------------------


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def subcommands(help_output: str) -> list[str]:
    """The subcommands an argparse help lists (four spaces in, under ``positional arguments``)."""
    positional = help_output.split("positional arguments:", 1)[-1].split("\n\n", 1)[0]
    return re.findall(r"^    (\w[\w-]*)", positional, re.M)


def test_every_command_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    docs = all_docs()
    commands: list[list[str]] = []
    pending: list[list[str]] = [[]]
    while pending:
        prefix = pending.pop()
        found = subcommands(help_text(capsys, *prefix))
        if prefix and not found:
            commands.append(prefix)
        pending += [[*prefix, name] for name in found]
    assert ["serve"] in commands
    assert ["keys", "create"] in commands
    for command in commands:
        assert "auditlog " + " ".join(command) in docs, command


# -- the README ----------------------------------------------------------------------------


def quick_start() -> list[str]:
    [block, *_] = shell_blocks(section(read(ROOT / "README.md"), "Quick start"))
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_to_serve_and_to_test() -> None:
    commands = quick_start()
    assert len(commands) == 2, commands
    serve, test = commands
    assert serve == "python3 dev.py serve"
    assert test == "python3 dev.py test"


def test_ci_runs_the_readme_test_command() -> None:
    test = quick_start()[1]
    ci = read(ROOT / ".ci" / "run")
    commands = [line.split("||")[0].strip() for line in ci.splitlines()]
    assert test in commands, f".ci/run must run {test!r}"


def test_ci_script_is_strict_and_exports_the_postgres_url() -> None:
    ci = read(ROOT / ".ci" / "run")
    assert "set -euo pipefail" in ci
    assert "export AUDITLOG_TEST_POSTGRES_URL=" in ci
    assert "python3 dev.py check" in ci


def readme_examples() -> str:
    readme = read(ROOT / "README.md")
    return "\n".join(shell_blocks(section(readme, "Try it")))


def test_readme_query_parameters_are_valid() -> None:
    examples = readme_examples()
    params = re.findall(r"--data-urlencode '([^=']+)=([^']*)'", examples)
    assert len(params) >= 5
    for name, value in params:
        parse_query([(name, value)])  # raises BadRequest if the README is wrong


def test_readme_event_bodies_are_valid() -> None:
    examples = readme_examples()
    bodies = [orjson.loads(b) for b in re.findall(r" -d '(.*?)'", examples, re.DOTALL)]
    bodies += [
        [orjson.loads(line) for line in re.findall(r"^  '(\{.*\})'", examples, re.MULTILINE)]
    ]
    assert len(bodies) >= 3
    principal = Principal("key:docs", "docs")
    for body in bodies:
        batch = isinstance(body, list)
        values = body if batch else [body]
        events = validate_batch(values, batch, principal, Limits(), times.now_us())
        assert len(events) == len(values)


def test_field_error_shape_matches_the_api_reference() -> None:
    # docs/api.md documents errors as {"index"?, "field", "message"}.
    assert list(FieldError("type", "is required", 3).as_dict()) == ["index", "field", "message"]
    assert list(FieldError("type", "is required").as_dict()) == ["field", "message"]
