"""The PyTorch side of the GPU check, on the same GPU and weights: sentence-transformers'
vectors of the reference sentences (fp32, fp16 and bf16), and embeddings per second for token batches
of 1, 32 and 256 at S=128 through the same model (the transformer forward, mean pooling and
normalization sentence-transformers runs), medians of repetitions. Writes torch-refs.json next
to this file and torch-bench.json into $OUT."""
import json, os, statistics, sys, time
from pathlib import Path

import torch
import sentence_transformers
from sentence_transformers import SentenceTransformer

here = Path(__file__).resolve().parent
ref = json.loads((here / "minilm-reference.json").read_text())
out = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
       "gpu": torch.cuda.get_device_name(0), "embeddings": {}, "bench": []}

def lcg_ids(n, s, seed):
    x, a = seed, []
    for _ in range(n * s):
        x = (x * 1664525 + 1013904223) % 2**32
        a.append(1000 + x % 28000)
    return torch.tensor(a, dtype=torch.long).reshape(n, s)

for dtype, tdt in [("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)]:
    model = SentenceTransformer(str(here / "all-MiniLM-L6-v2"), device="cuda")
    model = model.to(tdt)
    model.eval()
    # via a tensor: numpy has no bfloat16
    vecs = model.encode(ref["sentences"], batch_size=32, convert_to_tensor=True).float().cpu().numpy()
    out["embeddings"][dtype] = vecs.tolist()
    for n in [1, 32, 256]:
        ids = lcg_ids(n, 128, n).cuda()
        feats = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
        with torch.inference_mode():
            for _ in range(3):
                model(feats)
            torch.cuda.synchronize()
            times = []
            for _ in range(10 if n == 256 else 20):
                t0 = time.perf_counter()
                model(feats)["sentence_embedding"].float().cpu()
                torch.cuda.synchronize()
                times.append((time.perf_counter() - t0) * 1000)
        ms = statistics.median(times)
        out["bench"].append({"engine": "pytorch", "dtype": dtype, "batch": n, "seq": 128, "medianMs": ms,
                             "perSecond": n * 1000 / ms, "reps": len(times)})
(here / "torch-refs.json").write_text(json.dumps({"embeddings": out["embeddings"]}))
del out["embeddings"]
Path(os.environ.get("OUT", "."), "torch-bench.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
