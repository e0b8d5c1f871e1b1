#!/usr/bin/env bash
# Set up and run the checks: ruff, mypy and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# the report is checked in a real headless browser: Debian's Chromium, installed once when
# this machine can (the browser test is skipped, saying so, where it cannot)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || echo "scripts/test.sh: could not install chromium; the browser test will be skipped"
fi
if [ -z "${RELUSCOPE_DATA:-}" ] && [ -d ../shared/datasets/mnist ]; then
  export RELUSCOPE_DATA="$(cd ../shared/datasets && pwd)"
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
