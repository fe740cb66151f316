#!/usr/bin/env bash
# The one check command: set-up, format, lint, types, import contracts, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-browser
UV="uv"; command -v uv >/dev/null || UV="python3 -m uv"
echo "== ruff format --check"; $UV run ruff format --check .
echo "== ruff check"; $UV run ruff check .
echo "== mypy"; $UV run mypy
echo "== import contracts"; $UV run lint-imports
echo "== pytest"; $UV run pytest --cov --cov-report=term:skip-covered --durations=15 "$@"
