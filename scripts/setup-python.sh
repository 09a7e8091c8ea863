#!/usr/bin/env bash
# Create the repo-local Python venv (.venv/) used to generate test fixtures.
# Idempotent: reuses an existing .venv and only installs what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  -r "$ROOT/scripts/requirements.txt"
