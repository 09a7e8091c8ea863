"""Writes the real-model corpus: ONNX files made the way users make them.

Each family is a Hugging Face `transformers` architecture (tiny config, random weights: loading and
agreement with onnxruntime do not depend on the weights) exported by PyTorch's exporter with
dynamic axes, then turned into the forms model hubs ship beside `model.onnx`:

  fp32        the export itself
  int8-dyn    onnxruntime's quantize_dynamic, QOperator (DynamicQuantizeLinear, MatMulInteger,
              ConvInteger): what hubs ship as model_quantized.onnx
  int8-qdq    onnxruntime's quantize_static, QDQ format (QuantizeLinear / DequantizeLinear pairs)
  int8-qop    onnxruntime's quantize_static, QOperator format (QLinearMatMul, QLinearConv)
  fp16        onnxruntime's float16 converter (weights, activations, float inputs and outputs)
  extdata     the fp32 model with its weights in an external file (model.onnx + model.onnx_data)

The manifest (corpus/manifest.json) lists every file with its exporter, versions, opset, dynamic
axes and the inputs the corpus test feeds at two shapes. Usage:

  python scripts/corpus/gen_corpus.py --out test/corpus [--only bert,gpt2]
"""
import argparse
import logging
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import transformers
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

OPSET = 17
VOCAB = 256
TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128)


# --- inputs ---------------------------------------------------------------------------------------
# Each input is described by name, dtype, shape with symbolic axes, and how values are drawn, so the
# test can draw the same kind of values at any shape.

def text_inputs(*names):
    kinds = {"input_ids": ("int64", ["batch", "sequence"], {"ids": VOCAB}),
             "attention_mask": ("int64", ["batch", "sequence"], {"mask": True}),
             "token_type_ids": ("int64", ["batch", "sequence"], {"zeros": True})}
    return [dict(name=n, dtype=kinds[n][0], shape=kinds[n][1], values=kinds[n][2]) for n in names]


TEXT_SHAPES = [{"batch": 1, "sequence": 7}, {"batch": 3, "sequence": 16}]


def image_input(channels=3, name="pixel_values"):
    return [dict(name=name, dtype="float32", shape=["batch", channels, "height", "width"], values={"normal": 1.0})]


def draw(spec, dims, rng):
    shape = [dims[d] if isinstance(d, str) else d for d in spec["shape"]]
    v = spec["values"]
    if "ids" in v:
        return rng.integers(0, v["ids"], size=shape).astype(spec["dtype"])
    if "mask" in v:
        m = np.ones(shape, dtype=spec["dtype"])
        if len(shape) == 2 and shape[0] > 1:  # right-padded rows, as a tokenizer pads a batch
            for r in range(1, shape[0]):
                m[r, shape[1] - r:] = 0
        return m
    if "zeros" in v:
        return np.zeros(shape, dtype=spec["dtype"])
    if "ones" in v:
        return np.ones(shape, dtype=spec["dtype"])
    return (rng.standard_normal(shape) * v["normal"]).astype(spec["dtype"])


# --- families -------------------------------------------------------------------------------------

class Outputs(torch.nn.Module):
    """Returns a model's tensor outputs as a flat tuple, as exporters trace them."""

    def __init__(self, model, keys, call=None):
        super().__init__()
        self.model, self.keys, self.call = model, keys, call

    def forward(self, *args):
        out = self.call(self.model, *args) if self.call else self.model(*args)
        return tuple(out[k] for k in self.keys)


def encoder(config_cls, model_cls, names, outputs=("last_hidden_state",), **extra):
    def build():
        cfg = config_cls(**{**TEXT, **extra})
        model = model_cls(cfg).eval()
        return Outputs(model, outputs, lambda m, *a: m(**dict(zip(names, a)))), text_inputs(*names), list(outputs)
    return build


def vision(config_cls, model_cls, size, outputs=("last_hidden_state",), **cfg):
    def build():
        model = model_cls(config_cls(**cfg)).eval()
        return Outputs(model, outputs, lambda m, x: m(pixel_values=x)), image_input(), list(outputs)
    return build, [{"batch": 1, "height": size, "width": size}, {"batch": 2, "height": size, "width": size}]


def gpt2_with_past():
    """A GPT-2 decoder step with past key values, inputs and outputs flat as optimum writes them."""
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=128)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    layers = cfg.n_layer

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, *past):
            cache = transformers.DynamicCache()
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
            present = []
            for i in range(layers):
                layer = out.past_key_values.layers[i]
                present += [layer.keys, layer.values]
            return (out.logits, *present)

    inputs = text_inputs("input_ids", "attention_mask")
    inputs[1]["shape"] = ["batch", "total"]
    inputs[1]["values"] = {"ones": True}
    for i in range(layers):
        for kv in ("key", "value"):
            inputs.append(dict(name=f"past_key_values.{i}.{kv}", dtype="float32",
                               shape=["batch", 2, "past", 16], values={"normal": 1.0}))
    outputs = ["logits"] + [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return Step(), inputs, outputs


def whisper_encoder():
    cfg = transformers.WhisperConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                                     decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50,
                                     max_target_positions=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                     decoder_start_token_id=1)
    model = transformers.WhisperModel(cfg).get_encoder().eval()
    inputs = [dict(name="input_features", dtype="float32", shape=["batch", 16, 100], values={"normal": 1.0})]
    return Outputs(model, ["last_hidden_state"], lambda m, x: m(input_features=x)), inputs, ["last_hidden_state"]


def t5_encoder():
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2)
    model = transformers.T5EncoderModel(cfg).eval()
    names = ("input_ids", "attention_mask")
    return Outputs(model, ["last_hidden_state"], lambda m, *a: m(**dict(zip(names, a)))), text_inputs(*names), ["last_hidden_state"]


def clip_text():
    cfg = transformers.CLIPTextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=64, projection_dim=16)
    model = transformers.CLIPTextModelWithProjection(cfg).eval()
    names = ("input_ids", "attention_mask")
    keys = ["text_embeds", "last_hidden_state"]
    return Outputs(model, keys, lambda m, *a: m(**dict(zip(names, a)))), text_inputs(*names), keys


T = transformers
SMALL_VISION = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
FAMILIES = {
    "bert": (encoder(T.BertConfig, T.BertModel, ("input_ids", "attention_mask", "token_type_ids"),
                     ("last_hidden_state", "pooler_output")), TEXT_SHAPES),
    "distilbert": (encoder(T.DistilBertConfig, T.DistilBertModel, ("input_ids", "attention_mask"), dim=32,
                           n_layers=2, n_heads=2, hidden_dim=64), TEXT_SHAPES),
    "roberta": (encoder(T.RobertaConfig, T.RobertaModel, ("input_ids", "attention_mask")), TEXT_SHAPES),
    "xlm-roberta": (encoder(T.XLMRobertaConfig, T.XLMRobertaForSequenceClassification, ("input_ids", "attention_mask"),
                            ("logits",)), TEXT_SHAPES),
    "deberta-v2": (encoder(T.DebertaV2Config, T.DebertaV2Model, ("input_ids", "attention_mask")),
                   TEXT_SHAPES),
    "mpnet": (encoder(T.MPNetConfig, T.MPNetModel, ("input_ids", "attention_mask")), TEXT_SHAPES),
    "modernbert": (encoder(T.ModernBertConfig, T.ModernBertModel, ("input_ids", "attention_mask"),
                           global_attn_every_n_layers=2, local_attention=16,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=3, sep_token_id=4), TEXT_SHAPES),
    "t5-encoder": (t5_encoder, TEXT_SHAPES),
    "gpt2-with-past": (gpt2_with_past, [{"batch": 1, "sequence": 1, "past": 5, "total": 6},
                                        {"batch": 2, "sequence": 4, "past": 3, "total": 7}]),
    "whisper-encoder": (whisper_encoder, [{"batch": 1}, {"batch": 2}]),
    "clip-text": (clip_text, TEXT_SHAPES),
    "vit": vision(T.ViTConfig, T.ViTModel, 32, ("last_hidden_state", "pooler_output"), **SMALL_VISION),
    "clip-vision": vision(T.CLIPVisionConfig, T.CLIPVisionModelWithProjection, 32, ("image_embeds",),
                          projection_dim=16, **SMALL_VISION),
    "resnet": vision(T.ResNetConfig, T.ResNetForImageClassification, 64, ("logits",), embedding_size=16,
                     hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1], layer_type="bottleneck", num_labels=10),
    "convnext": vision(T.ConvNextConfig, T.ConvNextForImageClassification, 64, ("logits",),
                       hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_labels=10),
    "mobilenet-v2": vision(T.MobileNetV2Config, T.MobileNetV2ForImageClassification, 64, ("logits",),
                           depth_multiplier=0.35, num_labels=10),
    "efficientnet": vision(T.EfficientNetConfig, T.EfficientNetForImageClassification, 64, ("logits",),
                           width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320, num_labels=10,
                           image_size=64),
}
CNNS = {"resnet", "convnext", "mobilenet-v2", "efficientnet"}


# --- export and forms -----------------------------------------------------------------------------

def export(module, inputs, outputs, dims, path, dynamo=False):
    rng = np.random.default_rng(0)
    args = tuple(torch.from_numpy(draw(s, dims, rng)) for s in inputs)
    axes = {s["name"]: {i: d for i, d in enumerate(s["shape"]) if isinstance(d, str)} for s in inputs}
    # Outputs are declared dynamic on every axis the exporter finds symbolic.
    kwargs = dict(input_names=[s["name"] for s in inputs], output_names=outputs, opset_version=OPSET)
    if dynamo:
        torch.onnx.export(module, args, str(path), dynamo=True, dynamic_axes=axes, external_data=False, **kwargs)
    else:
        torch.onnx.export(module, args, str(path), dynamo=False, dynamic_axes=axes, do_constant_folding=True, **kwargs)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return model


class Calibration(CalibrationDataReader):
    def __init__(self, inputs, shapes):
        rng = np.random.default_rng(1)
        self.feeds = iter([{s["name"]: draw(s, dims, rng) for s in inputs} for dims in shapes for _ in range(4)])

    def get_next(self):
        return next(self.feeds, None)


def make_form(form, src, dst, inputs, shapes):
    if form == "int8-dyn":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    elif form in ("int8-qdq", "int8-qop"):
        from onnxruntime.quantization.shape_inference import quant_pre_process
        fmt = QuantFormat.QDQ if form == "int8-qdq" else QuantFormat.QOperator
        # The pre-processing onnxruntime's quantization guide asks for before static quantization.
        pre = dst.with_suffix(".pre.onnx")
        try:
            quant_pre_process(str(src), str(pre))
        except Exception:  # noqa: BLE001 - its symbolic shape inference gives up on some graphs
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(dst), Calibration(inputs, shapes), quant_format=fmt,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        pre.unlink()
    elif form == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=False), str(dst))
    elif form == "extdata":
        model = onnx.load(str(src))
        onnx.save_model(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=dst.name + "_data", size_threshold=0)
    else:
        raise ValueError(form)


def runs_in_onnxruntime(path, inputs, shapes, form):
    """A form onnxruntime cannot run itself (the quantizer breaks some graphs) is no corpus model."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    for dims in shapes:
        feeds = {}
        for s in inputs:
            x = draw(s, dims, rng)
            feeds[s["name"]] = x.astype(np.float16) if form == "fp16" and x.dtype == np.float32 else x
        session.run(None, feeds)


FORMS = ["fp32", "int8-dyn", "int8-qdq", "int8-qop", "fp16", "extdata"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/corpus")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer warns per tensor it leaves in float
    out = Path(args.out).resolve()
    # onnxruntime's calibration leaves scratch files in the working folder.
    scratch = tempfile.TemporaryDirectory()
    os.chdir(scratch.name)
    only = set(filter(None, args.only.split(",")))
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": []}
    entries = {m["id"]: m for m in manifest["models"]}
    versions = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
                "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}
    for family, (build, shapes) in FAMILIES.items():
        if only and family not in only:
            continue
        torch.manual_seed(0)
        folder = out / family
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        base = folder / "model.onnx"
        try:
            module, inputs, outputs = build()
            with torch.no_grad():
                export(module, inputs, outputs, shapes[0], base)
        except Exception as e:  # noqa: BLE001 - an exporter failure is recorded, not fatal
            print(f"corpus: {family}: export failed: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
            shutil.rmtree(folder)
            continue
        for form in FORMS:
            name = "model.onnx" if form == "fp32" else f"model_{form.replace('-', '_')}.onnx"
            dst = folder / name
            entry_id = f"{family}/{form}"
            try:
                if form != "fp32":
                    with tempfile.TemporaryDirectory() as tmp:
                        staged = Path(tmp) / name
                        make_form(form, base, staged, inputs, shapes)
                        for f in Path(tmp).iterdir():
                            shutil.move(str(f), folder / f.name)
                onnx.checker.check_model(str(dst))
                runs_in_onnxruntime(dst, inputs, shapes, form)
            except Exception as e:  # noqa: BLE001
                print(f"corpus: {entry_id}: dropped: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
                for f in folder.glob(name + "*"):
                    f.unlink()
                entries.pop(entry_id, None)
                continue
            form_inputs = [dict(s, dtype="float16") if form == "fp16" and s["dtype"] == "float32" else s
                           for s in inputs]
            entries[entry_id] = dict(
                id=entry_id, family=family, form=form, file=f"{family}/{name}",
                exporter="torch.onnx.export (TorchScript)", opset=OPSET, versions=versions,
                dynamic_axes=sorted({d for s in inputs for d in s["shape"] if isinstance(d, str)}),
                inputs=form_inputs, outputs=outputs, shapes=shapes,
                bytes=sum(f.stat().st_size for f in folder.glob(name + "*")),
            )
            print(f"corpus: {entry_id}: {entries[entry_id]['bytes'] / 1e6:.2f} MB", flush=True)
    manifest["models"] = sorted(entries.values(), key=lambda m: m["id"])
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
