#!/usr/bin/env bash
# Builds the CUDA variant of the addon, oxinfer.linux-x64-gnu.cuda.node, on a machine without a
# GPU or a CUDA install: nvcc, headers and libraries come from NVIDIA's PyPI wheels (13.0 line,
# accepted by a 13.0 driver), into .cache/cuda. It shares the target folder with the CPU build
# (tract is compiled once); the CPU addon (oxinfer.linux-x64-gnu.node) is not touched.
#
#   bash scripts/build-cuda.sh            # CUDA_COMPUTE_CAP defaults to 90 (H100)
#
# The .node links libcuda.so.1, libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and
# libnvrtc.so.13 dynamically: it loads only where those exist (LD_LIBRARY_PATH).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/cuda"
VENV="$CACHE/venv"
SDK="$CACHE/sdk" # a CUDA_ROOT-shaped view of the wheels: bin/, include/, lib64/
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
  nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 \
  nvidia-cuda-nvrtc==13.0.88
CU="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"

rm -rf "$SDK" && mkdir -p "$SDK/lib64"
ln -s "$CU/bin" "$SDK/bin"
ln -s "$CU/include" "$SDK/include"
ln -s "$CU/nvvm" "$SDK/nvvm"
# The wheels carry versioned sonames only; the linker's -lcublas needs libcublas.so.
for lib in "$CU"/lib/lib*.so.*; do
  name="$(basename "$lib")"
  ln -sf "$lib" "$SDK/lib64/$name"
  ln -sf "$lib" "$SDK/lib64/${name%%.so.*}.so"
done
ln -sf "$CU"/lib/*.a "$SDK/lib64/"

# libcuda (the driver) is not in any wheel: link against a stub that defines every driver
# function cudarc declares, with the driver's soname, so the .node records libcuda.so.1 and
# binds the real driver where it runs. (An empty stub would be dropped by --as-needed.)
CUDARC_SYS="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*cudarc-0.19.10/src/driver/sys/mod.rs' | head -1)"
if [ -z "$CUDARC_SYS" ]; then
  (cd "$ROOT" && cargo fetch -q)
  CUDARC_SYS="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*cudarc-0.19.10/src/driver/sys/mod.rs' | head -1)"
fi
grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$CUDARC_SYS" | sed -E 's/^\s+fn ([A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u > "$CACHE/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$SDK/lib64/libcuda.so" "$CACHE/libcuda_stub.c"

export CUDA_ROOT="$SDK" CUDA_HOME="$SDK" CUDA_PATH="$SDK"
export PATH="$SDK/bin:$PATH"
export LIBRARY_PATH="$SDK/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}"
nvcc --version | tail -1

host=$(rustc -vV | sed -n 's/^host: //p')
cd "$ROOT"
cargo build --release -p oxinfer-node --features cuda --target "$host"
cp "target/$host/release/liboxinfer_node.so" oxinfer.linux-x64-gnu.cuda.node
echo "built $ROOT/oxinfer.linux-x64-gnu.cuda.node ($(du -h oxinfer.linux-x64-gnu.cuda.node | cut -f1)); needs:"
readelf -d oxinfer.linux-x64-gnu.cuda.node | grep NEEDED | sed 's/^/  /'
