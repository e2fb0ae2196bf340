#!/usr/bin/env bash
# Regenerate deploy/requirements.lock (the service's dependencies) and
# deploy/build-requirements.lock (what builds its wheel), pinned with hashes, from
# pyproject.toml. uv runs from a throwaway venv, never the project's. Resolved for
# CPython 3.11 and newer on every platform (--universal), against PyPI only; uv reads
# the system's certificate store (--native-tls), as pip does with PIP_CERT.
#
#   deploy/lock.sh                  # then review the diff and commit both files
#   UV_VERSION=0.14.0 deploy/lock.sh # another uv than the one pinned below
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

uv_version="${UV_VERSION:-0.13.9}"
tool="$(mktemp -d)"
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool/venv"
"$tool/venv/bin/pip" install -q "uv==$uv_version"
uv=("$tool/venv/bin/uv" pip compile --quiet --universal --python-version 3.11
    --generate-hashes --native-tls --index-url https://pypi.org/simple --no-header)

printf 'setuptools>=68\nwheel\n' >"$tool/build.in"
{
    echo "# The build backend of pyproject.toml, pinned with hashes. Regenerate: deploy/lock.sh"
    "${uv[@]}" "$tool/build.in"
} >deploy/build-requirements.lock
{
    echo "# The service's dependencies (pyproject.toml [project].dependencies), pinned with hashes."
    echo "# Installed by the Containerfile with --require-hashes. Regenerate: deploy/lock.sh"
    "${uv[@]}" pyproject.toml
} >deploy/requirements.lock
echo "wrote deploy/requirements.lock and deploy/build-requirements.lock" >&2
