#!/usr/bin/env bash
# Create .venv (if missing) with CPU torch and reluscope installed in editable mode.
# Usage: bash scripts/setup.sh [dev]   (the "all" extras: experiments and pictures;
#                                      "dev" adds pytest, hypothesis, ruff, mypy)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch first, pinned: the CPU build of 2.13.0 (a bare `torch` would pull a CUDA build).
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
extra="[all]"
[ "${1:-}" = "dev" ] && extra="[dev]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
