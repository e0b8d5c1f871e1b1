#!/usr/bin/env bash
# Set up and run the checks: ruff, mypy and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
if [ -z "${RELUSCOPE_DATA:-}" ] && [ -d ../shared/datasets/mnist ]; then
  export RELUSCOPE_DATA="$(cd ../shared/datasets && pwd)"
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
