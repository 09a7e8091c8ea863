//! Building blocks for the rewrites that replace a node of the file's graph by standard ONNX
//! nodes (contrib.rs, loss.rs).

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};

/// A node of `op_type` with one output.
pub(crate) fn plain(name: String, op_type: &str, mut inputs: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> NodeProto {
    // A trailing optional input left empty is dropped, as ONNX writes it.
    while inputs.last().is_some_and(|i| i.is_empty()) {
        inputs.pop();
    }
    NodeProto { name, op_type: op_type.into(), input: inputs, output: vec![output], attribute, ..Default::default() }
}

/// What the nodes that replace `node` are named after: its name, or its first output when the
/// file leaves it unnamed.
pub(crate) fn prefix(node: &NodeProto) -> String {
    if node.name.is_empty() { node.output.first().cloned().unwrap_or_default() } else { node.name.clone() }
}

/// The node's input at `ix`, empty when absent.
pub(crate) fn input(node: &NodeProto, ix: usize) -> String {
    node.input.get(ix).cloned().unwrap_or_default()
}

pub(crate) fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i, ..Default::default() }
}

pub(crate) fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints, ..Default::default() }
}

/// A node attribute's integer, or `default`.
pub(crate) fn get_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

/// A `Constant` node whose `value` is a 1-D int64 tensor (`dims: None`: a scalar).
pub(crate) fn int64_constant(name: String, output: String, values: &[i64], dims: Option<Vec<i64>>) -> NodeProto {
    let t = TensorProto {
        dims: dims.unwrap_or_default(),
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    };
    constant(name, output, t)
}

/// A `Constant` node holding one float32 scalar.
pub(crate) fn f32_constant(name: String, output: String, value: f32) -> NodeProto {
    let t = TensorProto { data_type: DataType::Float as i32, raw_data: value.to_le_bytes().to_vec(), ..Default::default() };
    constant(name, output, t)
}

fn constant(name: String, output: String, t: TensorProto) -> NodeProto {
    let value = AttributeProto { name: "value".into(), r#type: 4, t: Some(t), ..Default::default() };
    plain(name, "Constant", vec![], output, vec![value])
}
