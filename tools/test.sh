#!/usr/bin/env bash
# Everything CI checks, in order: bootstrap, generated code up to date, ruff, mypy, pytest.
# Extra arguments go to pytest (e.g. tools/test.sh -x tests/core).  Stops at the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==> %s\n' "$*"; }

section "bootstrap (rabbitmq-server, uv, uv sync)"
# shellcheck source=tools/bootstrap.sh
source tools/bootstrap.sh

if [ -f tools/gen_spec.py ]; then
    section "generated spec is up to date"
    uv run --no-sync python tools/gen_spec.py --check
fi

section "ruff"
uv run --no-sync ruff check .

section "mypy"
uv run --no-sync mypy

section "documentation site (mkdocs --strict)"
uv run --no-sync mkdocs build --strict --quiet -d "$(mktemp -d)"

section "pytest"
status=0
uv run --no-sync pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
