#!/usr/bin/env bash
# Set up and run the main demo; prints where the picture is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${RELUSCOPE_DATA:-}" ] && [ -d ../shared/datasets/mnist ]; then
  export RELUSCOPE_DATA="$(cd ../shared/datasets && pwd)"
fi
.venv/bin/reluscope demo "$@"
