#!/usr/bin/env python3
"""Generate ONNX test fixtures for oxinfer.

Usage:
    .venv/bin/python scripts/gen_fixtures.py [--out .cache/fixtures]

Writes (all deterministic, fixed seeds):
    conformance/<case>/{model.onnx,input_<i>.npy,output_<i>.npy}
    conformance/index.json     ONNX backend *node* test cases + metadata
    cnn.onnx                   small image CNN, image[N,3,32,32] -> probs[N,10]
    encoder.onnx               tiny BERT-style encoder (hidden 64, 2 layers)
    encoder-minilm.onnx        MiniLM-L6 shaped encoder (random weights)
    minilm.onnx                the same graph with all-MiniLM-L6-v2's trained weights
    encoder-minilm-int8.onnx,  those two with every MatMul by a weight matrix quantized the way
    minilm-int8.onnx           onnxruntime's quantize_dynamic(per_channel=True) does it, for
                               onnxruntime's own int8 next to oxinfer's precision 'int8'
    tiny-bert/                 a tiny BERT folder (MiniLM's tokenizer, random weights) for
                               fast embedder tests and the safetensors/tokenizer fuzzers
    add.onnx                   c = a + b, float32[1]
    gather-shifted.onnx        y = table[x + 1], a 4x2 constant table: an index out of range
                               that no input check can see (it is computed), for the engine's
                               panic guard
    dtypes.onnx                one input/output pair per supported dtype
    reference/<model>/...      sample inputs + outputs of the models above,
                               computed with onnx.reference (pure numpy)
    fixtures.json              summary of everything written
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# ONNX element types we are willing to put in .npy files: plain numeric + bool.
# Everything else (STRING, BFLOAT16, FLOAT8*, INT4/UINT4, complex) is skipped;
# onnx represents those with custom/structured numpy dtypes or TensorProtos.
PLAIN_TYPES = {
    TensorProto.FLOAT16: "float16", TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64",
    TensorProto.INT8: "int8", TensorProto.INT16: "int16", TensorProto.INT32: "int32",
    TensorProto.INT64: "int64", TensorProto.UINT8: "uint8", TensorProto.UINT16: "uint16",
    TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64", TensorProto.BOOL: "bool",
}
PLAIN_DTYPES = {np.dtype(n) for n in PLAIN_TYPES.values()}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def save_npy(path: Path, arr: np.ndarray) -> None:
    # Force little-endian, C-contiguous; np.save writes .npy v1.0 for these.
    arr = np.asarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    # (np.ascontiguousarray would turn 0-d arrays into 1-d; copy(order="C") keeps them 0-d)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    np.save(path, arr, allow_pickle=False)


def save_model(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model, full_check=True)  # includes strict shape inference
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.save(model, str(path))


def make_model(graph: onnx.GraphProto, opset: int = OPSET) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="oxinfer-gen-fixtures",
    )
    # Pin IR version so the file does not depend on helper defaults.
    model.ir_version = 8
    return model


def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def vi_desc(vi: onnx.ValueInfoProto) -> dict:
    tt = vi.type.tensor_type
    dims = []
    for d in tt.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return {
        "name": vi.name,
        "dtype": PLAIN_TYPES[tt.elem_type],
        "shape": dims,
    }


# --------------------------------------------------------------------------
# a. ONNX backend node conformance cases
# --------------------------------------------------------------------------

def _is_plain_tensor_type(tp: onnx.TypeProto) -> str | None:
    """Return None if tp is a tensor of a plain numpy-representable type,
    else a short reason string."""
    kind = tp.WhichOneof("value")
    if kind != "tensor_type":
        return f"non-tensor graph io ({kind})"
    et = tp.tensor_type.elem_type
    if et not in PLAIN_TYPES:
        return f"unsupported element type {TensorProto.DataType.Name(et)}"
    return None


def _check_value(v) -> str | None:
    if v is None:
        return "optional (None) value"
    if isinstance(v, (list, tuple)):
        return "sequence value"
    if isinstance(v, dict):
        return "map value"
    if not isinstance(v, (np.ndarray, np.generic)):
        return f"non-numpy value ({type(v).__name__})"
    dt = np.asarray(v).dtype
    if dt.fields is not None or dt not in PLAIN_DTYPES:
        return f"unsupported numpy dtype {dt}"
    return None


def gen_conformance(out: Path) -> dict:
    from onnx.backend.test.case import node as node_cases

    # Many node test cases draw from the global numpy RNG; seed it so that
    # repeated runs produce byte-identical fixtures.
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow/div-by-zero in reference code
        cases = node_cases.collect_testcases(None)  # None = all op types

    cdir = out / "conformance"
    cdir.mkdir(parents=True, exist_ok=True)
    index, skipped, written = [], [], set()

    for case in sorted(cases, key=lambda c: c.name):
        reason = None
        if case.kind != "node":
            reason = f"kind {case.kind}"
        elif case.model is None or not case.data_sets:
            reason = "no model/data"
        elif len(case.data_sets) != 1:
            reason = f"{len(case.data_sets)} data sets"
        model = case.model
        if reason is None:
            inputs, outputs = case.data_sets[0]
            g = model.graph
            if len(inputs) != len(g.input):
                reason = f"{len(inputs)} inputs for {len(g.input)} graph inputs"
            elif len(outputs) != len(g.output):
                reason = f"{len(outputs)} outputs for {len(g.output)} graph outputs"
        if reason is None:
            for vi in list(g.input) + list(g.output):
                reason = _is_plain_tensor_type(vi.type)
                if reason:
                    break
        if reason is None:
            for v in list(inputs) + list(outputs):
                reason = _check_value(v)
                if reason:
                    break
        if reason is None:
            # data must agree with the graph-declared element type
            for vi, v in zip(list(g.input) + list(g.output), list(inputs) + list(outputs)):
                want = np.dtype(PLAIN_TYPES[vi.type.tensor_type.elem_type])
                if np.asarray(v).dtype != want:
                    reason = f"dtype mismatch {vi.name}: data {np.asarray(v).dtype} vs graph {want}"
                    break
        if reason is not None:
            skipped.append({"name": case.name, "reason": reason})
            continue

        d = cdir / case.name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        onnx.save(model, str(d / "model.onnx"))
        for i, v in enumerate(inputs):
            save_npy(d / f"input_{i}.npy", v)
        for i, v in enumerate(outputs):
            save_npy(d / f"output_{i}.npy", v)

        opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
        entry = {
            "name": case.name,
            "inputs": [
                {"name": vi.name, "dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v))}
                for vi, v in zip(g.input, inputs)
            ],
            "outputs": [
                {"name": vi.name, "dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v))}
                for vi, v in zip(g.output, outputs)
            ],
            "opset": opsets.get("ai.onnx"),
            "rtol": case.rtol,
            "atol": case.atol,
        }
        if set(opsets) - {"ai.onnx"}:
            entry["opset_imports"] = opsets
        index.append(entry)
        written.add(case.name)

    # Drop directories left over from a previous run with a different onnx version.
    for p in cdir.iterdir():
        if p.is_dir() and p.name not in written:
            shutil.rmtree(p)

    (cdir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    reasons: dict[str, int] = {}
    for s in skipped:
        key = s["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "onnx_version": onnx.__version__,
        "total_cases": len(cases),
        "written": len(index),
        "skipped": len(skipped),
        "skip_reason_counts": dict(sorted(reasons.items())),
        "skipped_cases": skipped,
    }


# --------------------------------------------------------------------------
# b. small CNN
# --------------------------------------------------------------------------

def build_cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    f32 = np.float32

    def he(shape, fan_in):  # He init keeps ReLU activations O(1)
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(f32)

    inits = [
        init("conv1.W", he((16, 3, 3, 3), 3 * 9)),
        init("conv1.B", (rng.standard_normal(16) * 0.05).astype(f32)),
        init("bn1.scale", (1.0 + 0.1 * rng.standard_normal(16)).astype(f32)),
        init("bn1.bias", (0.1 * rng.standard_normal(16)).astype(f32)),
        init("bn1.mean", (0.1 * rng.standard_normal(16)).astype(f32)),
        init("bn1.var", (1.0 + 0.1 * np.abs(rng.standard_normal(16))).astype(f32)),
        init("conv2.W", he((32, 16, 3, 3), 16 * 9)),
        init("conv2.B", (rng.standard_normal(32) * 0.05).astype(f32)),
        init("fc.W", (rng.standard_normal((10, 32)) / math.sqrt(32)).astype(f32)),
        init("fc.B", (rng.standard_normal(10) * 0.05).astype(f32)),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv1.W", "conv1.B"], ["c1"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
                         ["b1"], epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.W", "conv2.B"], ["c2"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.W", "fc.B"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    return make_model(graph)


# --------------------------------------------------------------------------
# c. BERT-style encoder
# --------------------------------------------------------------------------

def build_encoder(*, name: str, vocab: int, hidden: int, layers: int, heads: int,
                  ffn: int, max_pos: int, type_vocab: int = 2, seed: int = 0,
                  std: float = 0.02, weights: dict | None = None) -> onnx.ModelProto:
    """BERT encoder from plain opset-17 ops. Random N(0, std) weights, zero biases,
    LayerNorm gamma=1/beta=0, like BERT's initializer; or, with `weights`, a trained BERT's
    parameters by their ONNX names here (see bert_weights)."""
    assert hidden % heads == 0
    head_dim = hidden // heads
    rng = np.random.default_rng(seed)
    f32 = np.float32
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def w(n, shape):
        arr = weights[n] if weights is not None else (rng.standard_normal(shape) * std).astype(f32)
        assert arr.shape == tuple(shape), (n, arr.shape, shape)
        inits.append(init(n, arr))
        return n

    def param(n, arr):  # biases and LayerNorm parameters: given, or BERT's initial values
        return const(n, weights[n] if weights is not None else arr)

    def const(n, arr):
        inits.append(init(n, np.asarray(arr)))
        return n

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def layer_norm(x, prefix):
        g = param(f"{prefix}.gamma", np.ones(hidden, f32))
        b = param(f"{prefix}.beta", np.zeros(hidden, f32))
        return node("LayerNormalization", [x, g, b], f"{prefix}.out", axis=-1, epsilon=1e-12)

    def linear(x, prefix, d_in, d_out):
        W = w(f"{prefix}.W", (d_in, d_out))
        B = param(f"{prefix}.B", np.zeros(d_out, f32))
        return node("Add", [node("MatMul", [x, W], f"{prefix}.mm"), B], f"{prefix}.out")

    # shared constants
    const("c.one_f", np.array(1.0, f32))
    const("c.mask_neg", np.array(-10000.0, f32))
    const("c.scale", np.array(1.0 / math.sqrt(head_dim), f32))
    const("c.half", np.array(0.5, f32))
    const("c.inv_sqrt2", np.array(1.0 / math.sqrt(2.0), f32))
    const("c.axes12", np.array([1, 2], np.int64))
    const("c.zero1", np.array([0], np.int64))
    const("c.one1", np.array([1], np.int64))
    const("c.two1", np.array([2], np.int64))
    const("c.shape_heads", np.array([0, 0, heads, head_dim], np.int64))  # 0 = copy dim
    const("c.shape_hidden", np.array([0, 0, hidden], np.int64))

    # --- embeddings ---
    word = node("Gather", [w("emb.word", (vocab, hidden)), "input_ids"], "emb.word_out", axis=0)
    # positions 0..S-1: slice the first S rows of the position table
    shp = node("Shape", ["input_ids"], "emb.ids_shape")
    seq = node("Slice", [shp, "c.one1", "c.two1", "c.zero1"], "emb.seq_len")  # [S]
    pos = node("Slice", [w("emb.pos", (max_pos, hidden)), "c.zero1", seq, "c.zero1"], "emb.pos_out")
    typ = node("Gather", [w("emb.type", (type_vocab, hidden)), "token_type_ids"], "emb.type_out", axis=0)
    x = node("Add", [node("Add", [word, pos], "emb.sum1"), typ], "emb.sum2")
    x = layer_norm(x, "emb.ln")

    # --- additive attention mask: (1 - mask) * -10000, shape [N,1,1,S] ---
    m = node("Cast", ["attention_mask"], "mask.f", to=TensorProto.FLOAT)
    m = node("Unsqueeze", [m, "c.axes12"], "mask.u")
    m = node("Sub", ["c.one_f", m], "mask.inv")
    mask = node("Mul", [m, "c.mask_neg"], "mask.add")

    for li in range(layers):
        p = f"l{li}"
        q = linear(x, f"{p}.q", hidden, hidden)
        k = linear(x, f"{p}.k", hidden, hidden)
        v = linear(x, f"{p}.v", hidden, hidden)
        q = node("Transpose", [node("Reshape", [q, "c.shape_heads"], f"{p}.q_r")], f"{p}.q_t", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [k, "c.shape_heads"], f"{p}.k_r")], f"{p}.k_t", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [v, "c.shape_heads"], f"{p}.v_r")], f"{p}.v_t", perm=[0, 2, 1, 3])
        s = node("MatMul", [q, k], f"{p}.scores")            # [N,H,S,S]
        s = node("Mul", [s, "c.scale"], f"{p}.scores_scaled")
        s = node("Add", [s, mask], f"{p}.scores_masked")
        a = node("Softmax", [s], f"{p}.probs", axis=-1)
        c = node("MatMul", [a, v], f"{p}.ctx")               # [N,H,S,D]
        c = node("Transpose", [c], f"{p}.ctx_t", perm=[0, 2, 1, 3])
        c = node("Reshape", [c, "c.shape_hidden"], f"{p}.ctx_r")
        o = linear(c, f"{p}.attn_out", hidden, hidden)
        x = layer_norm(node("Add", [o, x], f"{p}.attn_res"), f"{p}.attn_ln")
        # FFN with exact GELU: 0.5 * h * (1 + erf(h / sqrt(2)))
        h = linear(x, f"{p}.ffn1", hidden, ffn)
        e = node("Erf", [node("Mul", [h, "c.inv_sqrt2"], f"{p}.gelu_div")], f"{p}.gelu_erf")
        e = node("Add", [e, "c.one_f"], f"{p}.gelu_add")
        g = node("Mul", [node("Mul", [h, e], f"{p}.gelu_mul"), "c.half"], f"{p}.gelu")
        f = linear(g, f"{p}.ffn2", ffn, hidden)
        x = layer_norm(node("Add", [f, x], f"{p}.ffn_res"), f"{p}.ffn_ln")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.INT64, ["N", "S"])  # noqa: E731
    graph = helper.make_graph(
        nodes, name,
        [io("input_ids"), io("attention_mask"), io("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["N", "S", hidden])],
        initializer=inits,
    )
    return make_model(graph)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of a .safetensors file (8-byte header size, JSON header, data)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for key, t in header.items():
        if key == "__metadata__" or t["dtype"] != "F32":  # e.g. BERT's int64 position_ids buffer
            continue
        a, b = t["data_offsets"]
        out[key] = np.frombuffer(raw[8 + n + a:8 + n + b], np.float32).reshape(t["shape"])
    return out


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> None:
    """Writes float32 tensors in the safetensors layout (8-byte LE header size, JSON, data)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data starts 8-aligned
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def build_tiny_bert(out: Path, tokenizer_json: Path) -> None:
    """A tiny BERT folder for fast embedder tests and fuzzing: all-MiniLM's tokenizer and
    vocabulary, hidden 32, 2 layers, random weights (seeded)."""
    rng = np.random.default_rng(7)
    vocab, hidden, layers, ffn, max_pos = 30522, 32, 2, 64, 128
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": vocab, "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": 4, "intermediate_size": ffn,
              "hidden_act": "gelu", "max_position_embeddings": max_pos, "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute"}
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    w = lambda *shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)  # noqa: E731
    t = {"embeddings.word_embeddings.weight": w(vocab, hidden),
         "embeddings.position_embeddings.weight": w(max_pos, hidden),
         "embeddings.token_type_embeddings.weight": w(2, hidden),
         "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
         "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                             "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                             "intermediate.dense": (ffn, hidden), "output.dense": (hidden, ffn)}.items():
            t[p + name + ".weight"] = w(o, n)
            t[p + name + ".bias"] = w(o)
        for name in ["attention.output.LayerNorm", "output.LayerNorm"]:
            t[p + name + ".weight"] = np.ones(hidden, np.float32)
            t[p + name + ".bias"] = np.zeros(hidden, np.float32)
    write_safetensors(out / "model.safetensors", t, {"format": "pt"})


def bert_weights(st: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """Maps transformers' BERT parameter names to build_encoder's (Linear weights transposed:
    torch stores (out, in), MatMul here takes (in, out))."""
    st = {k.removeprefix("bert."): v for k, v in st.items()}
    w = {
        "emb.word": st["embeddings.word_embeddings.weight"],
        "emb.pos": st["embeddings.position_embeddings.weight"],
        "emb.type": st["embeddings.token_type_embeddings.weight"],
        "emb.ln.gamma": st["embeddings.LayerNorm.weight"],
        "emb.ln.beta": st["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        p, t = f"l{i}", f"encoder.layer.{i}."
        for ours, theirs in [("q", "attention.self.query"), ("k", "attention.self.key"),
                             ("v", "attention.self.value"), ("attn_out", "attention.output.dense"),
                             ("ffn1", "intermediate.dense"), ("ffn2", "output.dense")]:
            w[f"{p}.{ours}.W"] = np.ascontiguousarray(st[t + theirs + ".weight"].T)
            w[f"{p}.{ours}.B"] = st[t + theirs + ".bias"]
        for ours, theirs in [("attn_ln", "attention.output.LayerNorm"), ("ffn_ln", "output.LayerNorm")]:
            w[f"{p}.{ours}.gamma"] = st[t + theirs + ".weight"]
            w[f"{p}.{ours}.beta"] = st[t + theirs + ".bias"]
    return w


ENCODERS = {
    "encoder.onnx": dict(name="encoder_tiny", vocab=1000, hidden=64, layers=2, heads=4,
                         ffn=128, max_pos=512, seed=0),
    "encoder-minilm.onnx": dict(name="encoder_minilm_l6", vocab=30522, hidden=384, layers=6,
                                heads=12, ffn=1536, max_pos=512, seed=1),
}


def quantize_dynamic(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """`model` with each MatMul by a 2-D float initializer in dynamically quantized int8, as
    onnxruntime's quantize_dynamic(per_channel=True, weight_type=QInt8) writes it (onnxruntime
    is not a dependency here): DynamicQuantizeLinear of the activation (uint8, one scale and
    zero point per tensor), MatMulInteger by the weights as int8 (symmetric, one scale per
    column), the int32 sums cast to float and scaled by the two scales."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    new_inits = [t for t in model.graph.initializer]
    used = set()
    for n in model.graph.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
            nodes.append(n)
            continue
        arr = numpy_helper.to_array(w)
        step = np.abs(arr).max(axis=0) / 127.0
        q = np.round(arr / np.where(step > 0, step, 1.0)).clip(-127, 127).astype(np.int8)
        used.add(w.name)
        p = n.output[0]
        new_inits += [numpy_helper.from_array(q, f"{w.name}.q"), numpy_helper.from_array(step.astype(np.float32), f"{w.name}.step")]
        mk = lambda op, ins, outs: nodes.append(helper.make_node(op, ins, outs, name=outs[0]))  # noqa: E731
        mk("DynamicQuantizeLinear", [n.input[0]], [f"{p}.xq", f"{p}.xs", f"{p}.xz"])
        mk("MatMulInteger", [f"{p}.xq", f"{w.name}.q", f"{p}.xz"], [f"{p}.i32"])
        nodes.append(helper.make_node("Cast", [f"{p}.i32"], [f"{p}.f"], name=f"{p}.f", to=TensorProto.FLOAT))
        mk("Mul", [f"{p}.xs", f"{w.name}.step"], [f"{p}.steps"])
        mk("Mul", [f"{p}.f", f"{p}.steps"], [p])
    graph = helper.make_graph(
        nodes, name, list(model.graph.input), list(model.graph.output),
        initializer=[t for t in new_inits if t.name not in used],
    )
    return make_model(graph)


# --------------------------------------------------------------------------
# d/e. tiny models
# --------------------------------------------------------------------------

def build_add() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "add",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    return make_model(graph)


# (suffix, onnx type, numpy dtype, op, constant)
DTYPE_CASES = [
    ("float32", TensorProto.FLOAT, np.float32, "Mul", 2),
    ("float64", TensorProto.DOUBLE, np.float64, "Mul", 2),
    ("int64", TensorProto.INT64, np.int64, "Add", 1),
    ("int32", TensorProto.INT32, np.int32, "Add", 1),
    ("int8", TensorProto.INT8, np.int8, "Add", 1),
    ("uint8", TensorProto.UINT8, np.uint8, "Add", 1),
    ("bool", TensorProto.BOOL, np.bool_, "Not", None),
]


def build_gather_shifted() -> onnx.ModelProto:
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["ix"], name="shift"),
         helper.make_node("Gather", ["table", "ix"], ["y"], name="gather", axis=0)],
        "gather_shifted",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[init("table", table), init("one", np.array(1, np.int64))],
    )
    return make_model(graph)


def build_dtypes() -> onnx.ModelProto:
    nodes, inits, ins, outs = [], [], [], []
    for suf, et, npt, op, k in DTYPE_CASES:
        x, y = f"x_{suf}", f"y_{suf}"
        ins.append(helper.make_tensor_value_info(x, et, ["N"]))
        outs.append(helper.make_tensor_value_info(y, et, ["N"]))
        if op == "Not":
            nodes.append(helper.make_node("Not", [x], [y]))
        else:
            inits.append(init(f"k_{suf}", np.array(k, dtype=npt)))
            nodes.append(helper.make_node(op, [x, f"k_{suf}"], [y]))
    return make_model(helper.make_graph(nodes, "dtypes", ins, outs, initializer=inits))


# --------------------------------------------------------------------------
# reference inputs/outputs for the hand-built models
# --------------------------------------------------------------------------

def reference_inputs() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1234)

    def bert_inputs(vocab, n=2, s=8):
        ids = rng.integers(1, vocab, size=(n, s), dtype=np.int64)
        mask = np.ones((n, s), np.int64)
        mask[1, 5:] = 0  # second sequence is padded: exercises the attention mask
        ids[1, 5:] = 0
        types = np.zeros((n, s), np.int64)
        types[:, s // 2:] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    return {
        "cnn": {"image": rng.random((2, 3, 32, 32), dtype=np.float32)},
        "encoder": bert_inputs(1000),
        "encoder-minilm": bert_inputs(30522),
        "add": {"a": np.array([1.5], np.float32), "b": np.array([2.25], np.float32)},
        "dtypes": {
            "x_float32": np.array([0.5, -1.0, 3.0], np.float32),
            "x_float64": np.array([0.25, -2.0, 1e10], np.float64),
            "x_int64": np.array([0, -1, 2**40], np.int64),
            "x_int32": np.array([0, -1, 2**30], np.int32),
            "x_int8": np.array([0, -128, 126], np.int8),
            "x_uint8": np.array([0, 1, 254], np.uint8),
            "x_bool": np.array([True, False, True]),
        },
    }


def write_reference(out: Path, stem: str, model: onnx.ModelProto, feeds: dict) -> dict:
    from onnx.reference import ReferenceEvaluator

    d = out / "reference" / stem
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    outs = ReferenceEvaluator(model).run(None, feeds)
    in_names = [i.name for i in model.graph.input]
    out_names = [o.name for o in model.graph.output]
    for i, n in enumerate(in_names):
        save_npy(d / f"input_{i}.npy", feeds[n])
    for i, v in enumerate(outs):
        save_npy(d / f"output_{i}.npy", v)
    meta = {
        "model": f"{stem}.onnx",
        "inputs": [{"name": n, "dtype": feeds[n].dtype.name, "shape": list(feeds[n].shape)} for n in in_names],
        "outputs": [{"name": n, "dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v))}
                    for n, v in zip(out_names, outs)],
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


# --------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".cache/fixtures", help="output folder (default: %(default)s)")
    ap.add_argument("--skip-conformance", action="store_true", help="only build the hand-made models")
    ap.add_argument("--minilm", default=".cache/models/all-MiniLM-L6-v2",
                    help="all-MiniLM-L6-v2 folder (scripts/fetch_models.py) for minilm.onnx (default: %(default)s)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    models = {
        "cnn.onnx": build_cnn(),
        **{fn: build_encoder(**cfg) for fn, cfg in ENCODERS.items()},
        "add.onnx": build_add(),
        "dtypes.onnx": build_dtypes(),
    }
    feeds = reference_inputs()
    summary_models = {}
    for fn, model in models.items():
        save_model(model, out / fn)
        ref = write_reference(out, fn[:-5], model, feeds[fn[:-5]])
        summary_models[fn] = {
            "bytes": (out / fn).stat().st_size,
            "sha256": sha256(out / fn),
            "opset": OPSET,
            "inputs": [vi_desc(v) for v in model.graph.input],
            "outputs": [vi_desc(v) for v in model.graph.output],
            "reference": f"reference/{fn[:-5]}",
            "reference_shapes": ref,
        }
        print(f"wrote {fn} ({summary_models[fn]['bytes']} bytes)", file=sys.stderr)

    def write_int8(fn: str, model: onnx.ModelProto) -> None:
        q = quantize_dynamic(model, f"{model.graph.name}_int8")
        save_model(q, out / fn)
        summary_models[fn] = {"bytes": (out / fn).stat().st_size, "sha256": sha256(out / fn), "opset": OPSET,
                              "quantized_from": fn.replace("-int8", "")}
        print(f"wrote {fn} ({summary_models[fn]['bytes']} bytes)", file=sys.stderr)

    write_int8("encoder-minilm-int8.onnx", models["encoder-minilm.onnx"])
    save_model(build_gather_shifted(), out / "gather-shifted.onnx")
    summary_models["gather-shifted.onnx"] = {"bytes": (out / "gather-shifted.onnx").stat().st_size,
                                             "sha256": sha256(out / "gather-shifted.onnx"), "opset": OPSET}
    # The real all-MiniLM-L6-v2 as ONNX (same graph as encoder-minilm.onnx, trained weights):
    # tract, onnxruntime and the candle embedder side by side on the same weights.
    st = Path(args.minilm) / "model.safetensors"
    if st.is_file():
        cfg = {**ENCODERS["encoder-minilm.onnx"], "name": "all_minilm_l6_v2"}
        model = build_encoder(**cfg, weights=bert_weights(read_safetensors(st), cfg["layers"]))
        save_model(model, out / "minilm.onnx")
        summary_models["minilm.onnx"] = {
            "bytes": (out / "minilm.onnx").stat().st_size,
            "sha256": sha256(out / "minilm.onnx"),
            "opset": OPSET,
            "weights": str(st),
            "inputs": [vi_desc(v) for v in model.graph.input],
            "outputs": [vi_desc(v) for v in model.graph.output],
        }
        print(f"wrote minilm.onnx ({summary_models['minilm.onnx']['bytes']} bytes)", file=sys.stderr)
        write_int8("minilm-int8.onnx", model)
        build_tiny_bert(out / "tiny-bert", Path(args.minilm) / "tokenizer.json")
        print("wrote tiny-bert/", file=sys.stderr)
    else:
        print(f"no {st}: minilm.onnx and tiny-bert/ not written (run scripts/fetch_models.py)", file=sys.stderr)

    conf = None
    if not args.skip_conformance:
        conf = gen_conformance(out)
        print(f"conformance: {conf['written']} written, {conf['skipped']} skipped "
              f"of {conf['total_cases']}", file=sys.stderr)

    # Every file outside the per-case conformance folders (those are listed,
    # with shapes, in conformance/index.json).
    files = sorted(
        str(p.relative_to(out)) for p in out.rglob("*")
        if p.is_file() and p.name != "fixtures.json"
        and not (p.parent.parent == out / "conformance")
    )
    summary = {
        "generator": "scripts/gen_fixtures.py",
        "files": files,
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "models": summary_models,
        "conformance": conf,
    }
    (out / "fixtures.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"done in {time.time() - t0:.1f}s -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
