#!/usr/bin/env python3
"""Generate hostile ONNX files for the loader's fuzz and robustness tests.

Usage:
    .venv/bin/python scripts/gen_hostile.py [--out .cache/fixtures/hostile]

Every file is built by hand with onnx.helper, without the checker (most of them would not
pass it), and written byte-for-byte deterministically. Loading any of them must give a typed
OxinferError (or a model), never a crash or a hang. Also writes index.json: name -> what it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx
from onnx import AttributeProto, TensorProto, helper

OPSET = 17
F = TensorProto.FLOAT


def model(graph: onnx.GraphProto, opset: int = OPSET, ir_version: int = 8, domain: str = "") -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)], producer_name="oxinfer-hostile")
    m.ir_version = ir_version
    return m


def vi(name: str, shape, dtype: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def unary(op: str, shape_in, shape_out=None, **attrs) -> onnx.ModelProto:
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g", [vi("x", shape_in)], [vi("y", shape_out)])
    return model(g)


def huge_dims() -> dict[str, onnx.ModelProto]:
    return {
        "input_dim_2p40": unary("Relu", [2**40]),
        "input_dim_2p62": unary("Relu", [2**62]),
        "input_dim_int64_max": unary("Relu", [2**63 - 1]),
        "input_dim_negative": unary("Relu", [-5]),
        "input_dims_product_overflows": unary("Relu", [2**40, 2**40, 2**40]),
        "input_dim_zero": unary("Relu", [0, 3]),
    }


def huge_initializers() -> dict[str, onnx.ModelProto]:
    out = {}
    for name, dims in {
        "init_dims_2p40_tiny_data": [2**40],
        "init_dims_overflow_tiny_data": [2**62, 16],
        "init_dims_negative": [-1, 4],
    }.items():
        t = TensorProto(name="w", data_type=F, dims=dims, raw_data=b"\0\0\x80\x3f")
        g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [vi("x", [1])], [vi("y", None)], [t])
        out[name] = model(g)
    # The data is there but its element type cannot hold it (float32 dims [3] with 5 bytes).
    t = TensorProto(name="w", data_type=F, dims=[3], raw_data=b"\1\2\3\4\5")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [vi("x", [3])], [vi("y", None)], [t])
    out["init_raw_data_wrong_length"] = model(g)
    # Typed data (float_data) shorter than the dims.
    t = TensorProto(name="w", data_type=F, dims=[1000], float_data=[1.0, 2.0])
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [vi("x", [1000])], [vi("y", None)], [t])
    out["init_float_data_short"] = model(g)
    # Constant folding would build a huge tensor at load time.
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [2**20, 2**20])
    g = helper.make_graph([helper.make_node("ConstantOfShape", ["shape"], ["y"])], "g", [], [vi("y", None)], [shape])
    out["constant_of_shape_2p40"] = model(g)
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [-7])
    g = helper.make_graph([helper.make_node("ConstantOfShape", ["shape"], ["y"])], "g", [], [vi("y", None)], [shape])
    out["constant_of_shape_negative"] = model(g)
    # Reshape to a shape whose product overflows i64.
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [2**40, 2**40, 2**40])
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [vi("x", [4])], [vi("y", None)], [shape])
    out["reshape_overflow"] = model(g)
    return out


def cycles() -> dict[str, onnx.ModelProto]:
    a = helper.make_node("Add", ["x", "b_out"], ["a_out"], name="A")
    b = helper.make_node("Relu", ["a_out"], ["b_out"], name="B")
    two = model(helper.make_graph([a, b], "g", [vi("x", [1])], [vi("b_out", [1])]))
    self_loop = model(helper.make_graph([helper.make_node("Relu", ["y"], ["y"], name="S")], "g", [vi("x", [1])], [vi("y", [1])]))
    return {"cycle_two_nodes": two, "cycle_self_loop": self_loop}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _graph_attr(name: str, graph: bytes) -> bytes:
    attr = AttributeProto(name=name, type=AttributeProto.GRAPH).SerializeToString(deterministic=True)
    return attr + _field(6, graph)  # AttributeProto.g


def nested_if(depth: int) -> bytes:
    """If inside If ... `depth` levels; every branch reads x and c from the outer scope. Encoded by
    hand: the protobuf runtime refuses to build messages nested this deep (recursion limit)."""
    ser = lambda m: m.SerializeToString(deterministic=True)  # noqa: E731
    inner = ser(helper.make_graph([helper.make_node("Identity", ["x"], ["o0"])], "leaf", [], [vi("o0", [1])]))
    for level in range(1, depth + 1):
        other = ser(helper.make_graph([helper.make_node("Neg", ["x"], [f"e{level}"])], f"else{level}", [], [vi(f"e{level}", [1])]))
        node = ser(onnx.NodeProto(input=["c"], output=[f"o{level}"], op_type="If"))
        node += _field(5, _graph_attr("then_branch", inner)) + _field(5, _graph_attr("else_branch", other))
        graph = helper.make_graph([], f"then{level}", [], [vi(f"o{level}", [1])])
        if level == depth:
            graph = helper.make_graph([], "g", [vi("c", [], TensorProto.BOOL), vi("x", [1])], [vi(f"o{level}", [1])])
        inner = ser(graph) + _field(1, node)  # GraphProto.node
    m = model(helper.make_graph([], "unused", [], []))
    m.ClearField("graph")
    return ser(m) + _field(7, inner)  # ModelProto.graph


def long_chain(n: int) -> onnx.ModelProto:
    one = helper.make_tensor("one", F, [1], [1.0])
    nodes = []
    prev = "x"
    for i in range(n):
        out = f"t{i}" if i < n - 1 else "y"
        nodes.append(helper.make_node("Identity" if i % 2 == 0 else "Add", [prev] if i % 2 == 0 else [prev, "one"], [out]))
        prev = out
    return model(helper.make_graph(nodes, "g", [vi("x", [1])], [vi("y", [1])], [one]))


def bad_ops() -> dict[str, onnx.ModelProto]:
    out = {
        "unknown_op": unary("FrobnicateTensor", [1]),
        "unknown_domain": model(
            helper.make_graph([helper.make_node("Relu", ["x"], ["y"], domain="com.evil")], "g", [vi("x", [1])], [vi("y", [1])])
        ),
        "empty_op_type": unary("", [1]),
        "opset_999": model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1])], [vi("y", [1])]), opset=999),
        "opset_0": model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1])], [vi("y", [1])]), opset=0),
        "ir_version_999": model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1])], [vi("y", [1])]), ir_version=999),
        "relu_missing_input": model(helper.make_graph([helper.make_node("Relu", [], ["y"])], "g", [vi("x", [1])], [vi("y", [1])])),
        "add_too_many_inputs": model(
            helper.make_graph([helper.make_node("Add", ["x", "x", "x", "x"], ["y"])], "g", [vi("x", [1])], [vi("y", [1])])
        ),
    }
    # Attributes of the wrong type.
    out["attr_transpose_perm_string"] = unary("Transpose", [2, 3], perm="01")
    out["attr_transpose_perm_out_of_range"] = unary("Transpose", [2, 3], perm=[5, -9])
    # A repeated axis: tract accepted it and its analysis then ran for seconds and gigabytes
    # (found by mutating encoder.onnx's [0, 2, 1, 3] perms).
    out["attr_transpose_perm_repeated"] = unary("Transpose", ["B", 128, 12, 32], perm=[0, 2, 3, 3])
    out["attr_cast_to_float"] = unary("Cast", [1], to=1.5)
    out["attr_cast_to_unknown_type"] = unary("Cast", [1], to=12345)
    out["attr_softmax_axis_tensor"] = unary("Softmax", [1], axis=helper.make_tensor("a", F, [1], [1.0]))
    out["attr_softmax_axis_huge"] = unary("Softmax", [1], axis=2**62)
    gemm = helper.make_node("Gemm", ["x", "x"], ["y"], alpha=[1, 2, 3], transB="yes")
    out["attr_gemm_alpha_ints"] = model(helper.make_graph([gemm], "g", [vi("x", [2, 2])], [vi("y", None)]))
    # An attribute whose declared type disagrees with the field actually set.
    a = AttributeProto(name="perm", type=AttributeProto.FLOAT, ints=[1, 0])
    n = helper.make_node("Transpose", ["x"], ["y"])
    n.attribute.append(a)
    out["attr_declared_type_mismatch"] = model(helper.make_graph([n], "g", [vi("x", [2, 3])], [vi("y", None)]))
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[0, -3], strides=[0, 0], pads=[-1, -1, -1, -1], dilations=[2**40, 1])
    w = helper.make_tensor("w", F, [1, 1, 3, 3], [0.0] * 9)
    out["attr_conv_degenerate"] = model(helper.make_graph([conv], "g", [vi("x", [1, 1, 8, 8])], [vi("y", None)], [w]))
    return out


def external_data() -> dict[str, onnx.ModelProto]:
    out = {}
    for name, location in {
        "external_missing_file": "missing-weights.bin",
        "external_etc_passwd_relative": "../../../../../../../../../../etc/passwd",
        "external_etc_passwd_absolute": "/etc/passwd",
        "external_proc_self_mem": "/proc/self/mem",
    }.items():
        t = TensorProto(name="w", data_type=F, dims=[4], data_location=TensorProto.EXTERNAL)
        for k, v in (("location", location), ("offset", "0"), ("length", "16")):
            e = t.external_data.add()
            e.key, e.value = k, v
        g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [vi("x", [4])], [vi("y", [4])], [t])
        out[name] = model(g)
    t = TensorProto(name="w", data_type=F, dims=[4], data_location=TensorProto.EXTERNAL)
    e = t.external_data.add()
    e.key, e.value = "location", "w.bin"
    e = t.external_data.add()
    e.key, e.value = "offset", str(2**63 - 1)
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [vi("x", [4])], [vi("y", [4])], [t])
    out["external_huge_offset"] = model(g)
    return out


def names() -> dict[str, onnx.ModelProto]:
    n1 = helper.make_node("Relu", ["x"], ["y"], name="same")
    n2 = helper.make_node("Neg", ["x"], ["y"], name="same")
    dup_out = model(helper.make_graph([n1, n2], "g", [vi("x", [1])], [vi("y", [1])]))
    dup_inputs = model(
        helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "g", [vi("x", [1]), vi("x", [2])], [vi("y", [1])])
    )
    dup_graph_outputs = model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1])], [vi("y", [1]), vi("y", [1])])
    )
    input_is_output = model(helper.make_graph([], "g", [vi("x", [1])], [vi("x", [1])]))
    init_shadows_input = model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1])], [vi("y", [1])], [helper.make_tensor("x", F, [2], [1.0, 2.0])]
        )
    )
    empty_names = model(helper.make_graph([helper.make_node("Relu", [""], [""])], "g", [vi("", [1])], [vi("", [1])]))
    return {
        "duplicate_node_and_output_names": dup_out,
        "duplicate_input_names": dup_inputs,
        "duplicate_graph_outputs": dup_graph_outputs,
        "input_is_output": input_is_output,
        "initializer_shadows_input": init_shadows_input,
        "empty_names": empty_names,
    }


def structure() -> dict[str, onnx.ModelProto]:
    no_graph = onnx.ModelProto(ir_version=8)
    no_graph.opset_import.add().version = OPSET
    return {
        "empty_graph": model(helper.make_graph([], "g", [], [])),
        "no_graph": no_graph,
        "output_nothing_produces": model(
            helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1])], [vi("ghost", [1])])
        ),
        "input_nothing_declares": model(helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "g", [], [vi("y", [1])])),
        "if_without_branches": model(
            helper.make_graph(
                [helper.make_node("If", ["c"], ["y"])], "g", [vi("c", [], TensorProto.BOOL)], [vi("y", [1])]
            )
        ),
        "loop_without_body": model(
            helper.make_graph(
                [helper.make_node("Loop", ["n", "c"], ["y"])],
                "g",
                [vi("n", [], TensorProto.INT64), vi("c", [], TensorProto.BOOL)],
                [vi("y", None)],
            )
        ),
        "input_type_undefined": model(
            helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x", [1], TensorProto.UNDEFINED)], [vi("y", [1])])
        ),
        "input_type_string": model(
            helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [vi("x", [1], TensorProto.STRING)], [vi("y", [1], TensorProto.STRING)])
        ),
        "input_type_99": model(
            helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [vi("x", [1], 99)], [vi("y", [1], 99)])
        ),
    }


def build() -> dict[str, bytes]:
    models: dict[str, onnx.ModelProto] = {}
    models.update(huge_dims())
    models.update(huge_initializers())
    models.update(cycles())
    models["chain_20000"] = long_chain(20_000)
    models.update(bad_ops())
    models.update(external_data())
    models.update(names())
    models.update(structure())
    out = {name: m.SerializeToString(deterministic=True) for name, m in models.items()}
    out["nested_if_200"] = nested_if(200)
    out["nested_if_20"] = nested_if(20)
    # Raw byte files that are not protobufs at all, or barely are.
    out["zero_bytes"] = b""
    out["one_byte"] = b"\x08"
    out["unterminated_varint"] = b"\x08" + b"\xff" * 32
    out["length_prefix_2p62"] = b"\x3a" + b"\x80\x80\x80\x80\x80\x80\x80\x80\x40"  # graph (field 7) of length 2^62
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".cache/fixtures/hostile")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = build()
    for name, data in files.items():
        (out / f"{name}.onnx").write_bytes(data)
        print(f"{name + '.onnx':44s} {len(data):>9d} bytes")
    (out / "index.json").write_text(json.dumps(sorted(f"{n}.onnx" for n in files), indent=1) + "\n")
    print(f"wrote {len(files)} hostile models to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
