#!/usr/bin/env bash
# Regenerates test/data/minilm-reference.json with sentence-transformers on CPU. Needs a venv
# with PyTorch (PyPI's Linux torch pulls its CUDA libraries: ~4.5 GB into .cache/refenv), so it
# is not part of `npm test`; the reference file it writes is committed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/refenv/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  torch==2.15.0 sentence-transformers==6.2.0 transformers==5.23.0
"$ROOT/.venv/bin/python" "$ROOT/scripts/fetch_models.py" --out "$ROOT/.cache/models"
cd "$ROOT"
"$VENV/bin/python" scripts/gen_embedding_refs.py "$@"
