//! float16 models computed in float32: the `model_fp16.onnx` that hub repositories ship (weights,
//! and usually inputs and outputs, in float16) rewritten in the file's graph so that every
//! float16 weight, constant and cast becomes float32, with a Cast to float32 after each float16
//! input and a Cast back to float16 before each float16 output. The model's inputs and outputs
//! keep their float16 type.
//!
//! Why: tract computes float16 products and convolutions with scalar code on CPUs without native
//! float16 arithmetic (x86-64 among them), hundreds of times slower than in float32, and
//! onnxruntime's CPU provider likewise runs most float16 ops as float32 between casts. Results
//! differ from a float16 computation by float16's rounding of the intermediate values: they are
//! closer to the float32 model's.

use std::collections::HashSet;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::type_proto::Value;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use tract_onnx::prelude::f16;

const F16: i32 = DataType::Float16 as i32;
const F32: i32 = DataType::Float as i32;

/// Ops whose `dtype` attribute names the type of what they make.
const DTYPE_OPS: &[&str] = &["EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli"];

/// Rewrites a model that holds float16 weights or computes in float16; leaves others as they are.
pub(crate) fn rewrite(proto: &mut ModelProto) {
    let Some(graph) = proto.graph.as_mut() else { return };
    if !uses_float16(graph) {
        return;
    }
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    let produced: HashSet<&str> = graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)).collect();
    let half = |v: &&ValueInfoProto| elem_type(v) == Some(F16);
    // Inputs that the caller feeds (not initializers of an old IR), and outputs that a node
    // computes (not an input or a weight passed through).
    let inputs: Vec<String> =
        graph.input.iter().filter(half).filter(|v| !initialized.contains(v.name.as_str())).map(|v| v.name.clone()).collect();
    let outputs: Vec<String> = graph
        .output
        .iter()
        .filter(half)
        .filter(|v| produced.contains(v.name.as_str()) && !input_names.contains(v.name.as_str()))
        .map(|v| v.name.clone())
        .collect();
    widen_graph(graph);
    let mut head = Vec::new();
    for name in &inputs {
        let wide = widened(name);
        rename_uses(&mut graph.node, name, &wide);
        head.push(cast(name, &wide, F32));
        set_elem_type(graph.input.iter_mut().find(|v| &v.name == name), F16);
    }
    let mut tail = Vec::new();
    for name in &outputs {
        let wide = widened(name);
        rename_uses(&mut graph.node, name, &wide);
        for o in graph.node.iter_mut().flat_map(|n| n.output.iter_mut()).filter(|o| *o == name) {
            o.clone_from(&wide);
        }
        tail.push(cast(&wide, name, F16));
        set_elem_type(graph.output.iter_mut().find(|v| &v.name == name), F16);
    }
    let body = std::mem::take(&mut graph.node);
    graph.node = head.into_iter().chain(body).chain(tail).collect();
}

/// Whether the graph (or one of its subgraphs) holds or makes float16 values.
fn uses_float16(graph: &GraphProto) -> bool {
    graph.initializer.iter().any(|t| t.data_type == F16)
        || graph.input.iter().chain(&graph.output).any(|v| elem_type(v) == Some(F16))
        || graph.node.iter().any(|n| {
            n.attribute.iter().any(|a| {
                a.t.as_ref().is_some_and(|t| t.data_type == F16)
                    || (a.name == "to" && n.op_type == "Cast" && a.i == F16 as i64)
                    || a.g.as_ref().is_some_and(uses_float16)
                    || a.graphs.iter().any(uses_float16)
            })
        })
}

fn widened(name: &str) -> String {
    format!("{name}::oxinfer_float32")
}

fn cast(from: &str, to: &str, dtype: i32) -> NodeProto {
    NodeProto {
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        name: to.to_string(),
        op_type: "Cast".into(),
        attribute: vec![AttributeProto { name: "to".into(), i: dtype as i64, r#type: 2, ..Default::default() }],
        ..Default::default()
    }
}

fn elem_type(v: &ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        Value::TensorType(t) => Some(t.elem_type),
    }
}

fn set_elem_type(v: Option<&mut ValueInfoProto>, dtype: i32) {
    if let Some(Value::TensorType(t)) = v.and_then(|v| v.r#type.as_mut()).and_then(|t| t.value.as_mut()) {
        t.elem_type = dtype;
    }
}

/// Every float16 weight, constant, cast, `dtype` and declared value type of the graph and its
/// subgraphs made float32.
fn widen_graph(graph: &mut GraphProto) {
    for t in graph.initializer.iter_mut() {
        widen_tensor(t);
    }
    // A branch's or loop body's declared inputs and outputs follow the values it computes.
    for v in graph.input.iter_mut().chain(graph.output.iter_mut()).chain(graph.value_info.iter_mut()) {
        if elem_type(v) == Some(F16) {
            set_elem_type(Some(v), F32);
        }
    }
    for node in graph.node.iter_mut() {
        let makes_dtype = DTYPE_OPS.contains(&node.op_type.as_str());
        let casts = node.op_type == "Cast";
        for a in node.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                widen_tensor(t);
            }
            for t in a.tensors.iter_mut() {
                widen_tensor(t);
            }
            if ((casts && a.name == "to") || (makes_dtype && a.name == "dtype")) && a.i == F16 as i64 {
                a.i = F32 as i64;
            }
            if let Some(g) = a.g.as_mut() {
                widen_graph(g);
            }
            for g in a.graphs.iter_mut() {
                widen_graph(g);
            }
        }
    }
}

/// A float16 tensor's values as float32, whether the file stores them as raw bytes or as
/// `int32_data` (one value's bits per element).
fn widen_tensor(t: &mut TensorProto) {
    if t.data_type != F16 {
        return;
    }
    let bits: Vec<u16> = if !t.raw_data.is_empty() {
        t.raw_data.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()
    } else {
        t.int32_data.iter().map(|&v| v as u16).collect()
    };
    t.raw_data = bits.into_iter().flat_map(|b| f16::from_bits(b).to_f32().to_le_bytes()).collect();
    t.int32_data.clear();
    t.data_type = F32;
}

/// Points every use of `from` (in these nodes and the subgraphs they hold, which read outer
/// values by name) at `to`.
fn rename_uses(nodes: &mut [NodeProto], from: &str, to: &str) {
    for node in nodes.iter_mut() {
        for i in node.input.iter_mut().filter(|i| *i == from) {
            *i = to.to_string();
        }
        for a in node.attribute.iter_mut() {
            if let Some(g) = a.g.as_mut() {
                rename_uses(&mut g.node, from, to);
            }
            for g in a.graphs.iter_mut() {
                rename_uses(&mut g.node, from, to);
            }
        }
    }
}
