#!/usr/bin/env python3
"""Optional sanity check of the generated fixtures with onnxruntime.

onnxruntime is deliberately NOT in scripts/requirements.txt; use a scratch venv:
    python3 -m venv /tmp/ortcheck/venv
    /tmp/ortcheck/venv/bin/pip install -q onnxruntime -r scripts/requirements.txt
    /tmp/ortcheck/venv/bin/python scripts/check_fixtures_ort.py [--out .cache/fixtures]

Exit status is non-zero if any hand-built model (cnn, encoders, add, dtypes)
fails to load/run or disagrees with reference/. Conformance results are
informative only (printed as counts).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 4  # silence ORT warnings
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def load_case(d: Path, meta: dict):
    ins = {m["name"]: np.load(d / f"input_{i}.npy") for i, m in enumerate(meta["inputs"])}
    outs = [np.load(d / f"output_{i}.npy") for i in range(len(meta["outputs"]))]
    return ins, outs


def close(got, want, rtol, atol) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if want.dtype.kind in "fc":
        return bool(np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(got, want))


def check_models(out: Path) -> bool:
    ok = True
    for stem in ["cnn", "encoder", "encoder-minilm", "add", "dtypes"]:
        d = out / "reference" / stem
        meta = json.loads((d / "meta.json").read_text())
        try:
            s = session(out / meta["model"])
            ins, want = load_case(d, meta)
            got = s.run(None, ins)
            good = all(close(g, w, 1e-4, 1e-5) for g, w in zip(got, want))
            maxdiff = max(float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)), initial=0))
                          for g, w in zip(got, want))
            # Symbolic dims: run again with a different batch (and seq len).
            extra = ""
            if stem == "cnn":
                r = s.run(None, {"image": np.random.default_rng(5).random((3, 3, 32, 32), dtype=np.float32)})[0]
                extra = f"batch3 shape {r.shape} rowsum {r.sum(1).round(5).tolist()}"
            elif stem.startswith("encoder"):
                feeds = {k: np.ones((1, 17), np.int64) for k in ins}
                r = s.run(None, feeds)[0]
                extra = f"[1,17] -> {r.shape}"
            print(f"  {stem:16s} {'OK ' if good else 'BAD'} max|diff|={maxdiff:.2e} {extra}")
            ok &= good
        except Exception as e:  # noqa: BLE001
            print(f"  {stem:16s} FAIL {type(e).__name__}: {str(e)[:200]}")
            ok = False
    return ok


def check_conformance(out: Path) -> dict:
    index = json.loads((out / "conformance" / "index.json").read_text())
    res = {"pass": [], "load_fail": [], "run_fail": [], "mismatch": []}
    for meta in index:
        d = out / "conformance" / meta["name"]
        try:
            s = session(d / "model.onnx")
        except Exception:  # noqa: BLE001
            res["load_fail"].append(meta["name"])
            continue
        ins, want = load_case(d, meta)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = s.run(None, ins)
        except Exception:  # noqa: BLE001
            res["run_fail"].append(meta["name"])
            continue
        # same tolerances as onnx's backend test runner (rtol/atol from the TestCase)
        if all(close(g, w, meta["rtol"], meta["atol"]) for g, w in zip(got, want)):
            res["pass"].append(meta["name"])
        else:
            res["mismatch"].append(meta["name"])
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".cache/fixtures")
    ap.add_argument("--report", help="write full conformance results as JSON here")
    args = ap.parse_args()
    out = Path(args.out)
    print(f"onnxruntime {ort.__version__}")
    print("hand-built models vs reference/:")
    ok = check_models(out)
    res = check_conformance(out)
    total = sum(len(v) for v in res.values())
    print("conformance (informative): " + ", ".join(f"{k}={len(v)}" for k, v in res.items()) + f" of {total}")
    if args.report:
        Path(args.report).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
