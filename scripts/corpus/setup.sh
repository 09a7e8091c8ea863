#!/usr/bin/env bash
# The Python environment that writes the real-model corpus (.cache/corpus-venv): PyTorch,
# transformers, onnx, onnxruntime and onnxscript, as users export with. About 4 GB (PyTorch
# from PyPI brings CUDA libraries), so CI does not install it: the corpus is committed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.cache/corpus-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/scripts/corpus/requirements.txt"
