"""The container image installs exactly deploy/requirements.lock (``--require-hashes``): every
dependency of pyproject.toml must be pinned there, at a version it accepts, or the image
builds without it. Regenerate the lock with deploy/lock.sh."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", re.M)


def pinned() -> dict[str, Version]:
    text = (ROOT / "deploy" / "requirements.lock").read_text(encoding="utf-8")
    return {canonicalize_name(name): Version(v) for name, v in PINNED.findall(text)}


def dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


@pytest.mark.parametrize("requirement", dependencies(), ids=str)
def test_every_dependency_is_pinned_in_the_image_lock(requirement: Requirement) -> None:
    versions = pinned()
    name = canonicalize_name(requirement.name)
    assert name in versions, f"{name} is not in deploy/requirements.lock: run deploy/lock.sh"
    assert requirement.specifier.contains(versions[name], prereleases=True), (
        f"deploy/requirements.lock pins {name} {versions[name]}, outside {requirement.specifier}"
    )
