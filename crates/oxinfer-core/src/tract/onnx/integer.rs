//! Integer products computed in float32: `MatMulInteger` and `ConvInteger` (what onnxruntime's
//! `quantize_dynamic` writes), `QLinearMatMul` and `QLinearConv` (its static QOperator
//! format), rewritten in the file's graph as the float op over the zero-point-shifted (or
//! dequantized) operands. tract runs the integer forms through generic kernels, up to 50x
//! slower than its float products; with constant weights the shifted or dequantized weights
//! fold to float constants at load and the product runs on the fast float kernels.
//!
//! Exactness: an integer product's terms (|x - zp| <= 255, |w - zp| <= 255) and their sums are
//! exact in float32 up to 2^24, about 256 terms at the extremes and thousands at the values
//! real activations take; past that the float sum differs from the integer one by float32's
//! rounding, far below one quantization step of the output. `QLinear*` requantize a float
//! result where onnxruntime rescales an integer one: a value that falls on a rounding tie may
//! land one step away.

use std::collections::HashMap;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::type_proto::Value;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

use super::proto::{input, int64_constant, int_attr, plain, prefix};

/// Rewrites the integer products of the model's main graph whose operand layouts it can tell.
pub(crate) fn rewrite(proto: &mut ModelProto) {
    if let Some(graph) = proto.graph.as_mut() {
        rewrite_graph(graph);
    }
}

const OPS: &[&str] = &["MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv"];

fn rewrite_graph(graph: &mut GraphProto) {
    if !graph.node.iter().any(|n| n.domain.is_empty() && OPS.contains(&n.op_type.as_str())) {
        return;
    }
    let shapes = Shapes::of(graph);
    // A float Cast that alone reads an integer product's int32 result takes the float product
    // directly.
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for name in graph.node.iter().flat_map(|n| n.input.iter()).chain(graph.output.iter().map(|o| &o.name)) {
        *readers.entry(name.as_str()).or_default() += 1;
    }
    let float_casts: HashMap<String, String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Cast" && n.input.len() == 1 && n.attribute.iter().any(|a| a.name == "to" && a.i == DataType::Float as i64))
        .filter(|n| readers.get(n.input[0].as_str()) == Some(&1))
        .map(|n| (n.input[0].clone(), n.output[0].clone()))
        .collect();
    let mut fused: Vec<String> = Vec::new();
    let mut nodes = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let output = node.output.first().cloned().unwrap_or_default();
        let integer_out = matches!(node.op_type.as_str(), "MatMulInteger" | "ConvInteger");
        let float_out = integer_out.then(|| float_casts.get(&output).cloned()).flatten();
        let expanded = if node.domain.is_empty() {
            match node.op_type.as_str() {
                "MatMulInteger" | "ConvInteger" => integer_product(&node, &shapes, float_out.clone()),
                "QLinearMatMul" | "QLinearConv" => qlinear(&node, &shapes),
                _ => None,
            }
        } else {
            None
        };
        match expanded {
            Some(expanded) => {
                if let Some(f) = float_out.filter(|_| integer_out) {
                    fused.push(f);
                }
                nodes.extend(expanded);
            }
            None => nodes.push(node),
        }
    }
    // The casts whose outputs the float products now write.
    nodes.retain(|n| !(n.op_type == "Cast" && n.output.first().is_some_and(|o| fused.contains(o))));
    graph.node = nodes;
}

/// What the graph tells of its values: initializers' and inputs' dims (`None` for a symbolic
/// dim), and which values are constants.
struct Shapes {
    dims: HashMap<String, Vec<Option<i64>>>,
    constants: std::collections::HashSet<String>,
}

impl Shapes {
    fn of(graph: &GraphProto) -> Shapes {
        let mut map = HashMap::new();
        for v in &graph.input {
            if let Some(Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                if let Some(shape) = &t.shape {
                    use tract_onnx::pb::tensor_shape_proto::dimension::Value as D;
                    let dims = shape.dim.iter().map(|d| match d.value {
                        Some(D::DimValue(v)) => Some(v),
                        _ => None,
                    });
                    map.insert(v.name.clone(), dims.collect());
                }
            }
        }
        for t in &graph.initializer {
            map.insert(t.name.clone(), t.dims.iter().map(|&d| Some(d)).collect());
        }
        // DynamicQuantizeLinear's scale and zero point are scalars.
        for n in graph.node.iter().filter(|n| n.op_type == "DynamicQuantizeLinear") {
            for o in n.output.iter().skip(1) {
                map.insert(o.clone(), Vec::new());
            }
        }
        let constants = graph
            .initializer
            .iter()
            .map(|t| t.name.clone())
            .chain(graph.node.iter().filter(|n| n.op_type == "Constant").flat_map(|n| n.output.iter().cloned()))
            .collect();
        Shapes { dims: map, constants }
    }

    /// Whether every one of these values is a constant of the file (an absent optional input
    /// counts).
    fn constant(&self, names: &[String]) -> bool {
        names.iter().all(|n| n.is_empty() || self.constants.contains(n))
    }

    /// Whether `name` is known to hold one value (an absent optional input counts).
    fn single(&self, name: &str) -> bool {
        name.is_empty() || self.dims.get(name).is_some_and(|d| d.iter().all(|d| *d == Some(1)))
    }

    fn rank(&self, name: &str) -> Option<usize> {
        self.dims.get(name).map(Vec::len)
    }
}

/// `MatMulInteger(A, B, a_zp, b_zp)` / `ConvInteger(x, w, x_zp, w_zp)`: the float op over
/// `A - a_zp` and `B - b_zp`, cast to int32 (or, `float_out`, written as float to the output of
/// the float Cast that reads it). `None` where a zero point's layout is unknown: A's zero
/// point must be one value; B's one value or, for a product, one per column (it broadcasts
/// over B's last axis as written), for a convolution one per output channel of weights of known
/// rank.
fn integer_product(node: &NodeProto, shapes: &Shapes, float_out: Option<String>) -> Option<Vec<NodeProto>> {
    let conv = node.op_type == "ConvInteger";
    let p = prefix(node);
    let (a_zp, b_zp) = (input(node, 2), input(node, 3));
    if !shapes.single(&a_zp) {
        return None;
    }
    let b_rank = shapes.rank(&input(node, 1));
    let per_channel = conv && !shapes.single(&b_zp);
    if per_channel && b_rank.is_none() {
        return None;
    }
    let mut out = Vec::new();
    let to_float = |name: String, from: String| plain(format!("{name}.cast"), "Cast", vec![from], name, vec![int_attr("to", DataType::Float as i64)]);
    let shifted = |which: &str, x: String, zp: String, reshape: Option<usize>, out: &mut Vec<NodeProto>| -> String {
        let xf = format!("{p}::{which}_float");
        out.push(to_float(xf.clone(), x));
        if zp.is_empty() {
            return xf;
        }
        let mut zf = format!("{p}::{which}_zero_point");
        out.push(to_float(zf.clone(), zp));
        if let Some(rank) = reshape {
            // One zero point per output channel: [M] -> [M, 1, ...] to broadcast over [M, C, k...].
            let shape = format!("{p}::{which}_zero_point_shape");
            let mut dims = vec![-1i64];
            dims.resize(rank, 1);
            out.push(int64_constant(format!("{shape}.const"), shape.clone(), &dims, Some(vec![rank as i64])));
            let r = format!("{zf}_reshaped");
            out.push(plain(format!("{r}.reshape"), "Reshape", vec![zf, shape], r.clone(), vec![]));
            zf = r;
        }
        let s = format!("{p}::{which}_shifted");
        out.push(plain(format!("{s}.sub"), "Sub", vec![xf, zf], s.clone(), vec![]));
        s
    };
    let a = shifted("a", input(node, 0), a_zp, None, &mut out);
    let b = shifted("b", input(node, 1), b_zp, if per_channel { b_rank } else { None }, &mut out);
    let output = node.output.first().cloned().unwrap_or_default();
    let op = if conv { "Conv" } else { "MatMul" };
    let attrs = if conv { node.attribute.clone() } else { vec![] };
    match float_out {
        Some(f) => out.push(plain(format!("{p}::{op}"), op, vec![a, b], f, attrs)),
        None => {
            let y = format!("{p}::float");
            out.push(plain(format!("{p}::{op}"), op, vec![a, b], y.clone(), attrs));
            out.push(plain(format!("{p}::cast"), "Cast", vec![y], output, vec![int_attr("to", DataType::Int32 as i64)]));
        }
    }
    Some(out)
}

/// `QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)` / `QLinearConv(x, x_scale,
/// x_zp, w, w_scale, w_zp, y_scale, y_zp, [bias])`: dequantized operands, the float op (the
/// int32 bias dequantized at `x_scale * w_scale`), the result quantized. `None` where a scale's
/// layout is unknown: a's and y's must be one value; b's one value or one per column of a
/// matrix of known rank (per output channel for a convolution); and where scales or zero points
/// are not constants, which tract's DequantizeLinear and QuantizeLinear need.
fn qlinear(node: &NodeProto, shapes: &Shapes) -> Option<Vec<NodeProto>> {
    let conv = node.op_type == "QLinearConv";
    let p = prefix(node);
    let params: Vec<String> = [1, 2, 4, 5, 6, 7].iter().map(|&i| input(node, i)).collect();
    if !shapes.single(&input(node, 1)) || !shapes.single(&input(node, 6)) || !shapes.constant(&params) {
        return None;
    }
    let per_axis = !shapes.single(&input(node, 4));
    let b_axis = if !per_axis {
        None
    } else if conv {
        Some(0)
    } else {
        Some(shapes.rank(&input(node, 3))?.checked_sub(1)? as i64)
    };
    let axis = |a: Option<i64>| a.map(|a| vec![int_attr("axis", a)]).unwrap_or_default();
    let (a, b, y) = (format!("{p}::a"), format!("{p}::b"), format!("{p}::float"));
    let mut out = vec![
        plain(format!("{a}.dequantize"), "DequantizeLinear", vec![input(node, 0), input(node, 1), input(node, 2)], a.clone(), vec![]),
        plain(format!("{b}.dequantize"), "DequantizeLinear", vec![input(node, 3), input(node, 4), input(node, 5)], b.clone(), axis(b_axis)),
    ];
    let mut operands = vec![a, b];
    let bias = input(node, 8);
    if conv && !bias.is_empty() {
        let (scale, c) = (format!("{p}::bias_scale"), format!("{p}::bias"));
        out.push(plain(format!("{scale}.mul"), "Mul", vec![input(node, 1), input(node, 4)], scale.clone(), vec![]));
        out.push(plain(format!("{c}.dequantize"), "DequantizeLinear", vec![bias, scale], c.clone(), axis(b_axis)));
        operands.push(c);
    }
    let (op, attrs) = if conv { ("Conv", node.attribute.clone()) } else { ("MatMul", vec![]) };
    out.push(plain(format!("{p}::{op}"), op, operands, y.clone(), attrs));
    let output = node.output.first().cloned().unwrap_or_default();
    out.push(plain(format!("{p}::quantize"), "QuantizeLinear", vec![y, input(node, 6), input(node, 7)], output, vec![]));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::TensorProto;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            name: output.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn initializer(name: &str, dims: &[i64]) -> TensorProto {
        TensorProto { name: name.into(), dims: dims.to_vec(), ..Default::default() }
    }

    fn ops(g: &GraphProto) -> Vec<&str> {
        g.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    #[test]
    fn a_dynamic_product_and_its_float_cast_become_one_float_matmul() {
        let mut cast = node("Cast", &["y"], "yf");
        cast.attribute.push(int_attr("to", DataType::Float as i64));
        let mut g = GraphProto {
            node: vec![
                NodeProto { output: vec!["xq".into(), "xs".into(), "xz".into()], ..node("DynamicQuantizeLinear", &["x"], "xq") },
                node("MatMulInteger", &["xq", "w", "xz", "wz"], "y"),
                cast,
            ],
            initializer: vec![initializer("w", &[4, 3]), initializer("wz", &[3])],
            ..Default::default()
        };
        rewrite_graph(&mut g);
        assert_eq!(ops(&g), ["DynamicQuantizeLinear", "Cast", "Cast", "Sub", "Cast", "Cast", "Sub", "MatMul"]);
        let matmul = g.node.last().unwrap();
        assert_eq!(matmul.output, ["yf"]);
        assert_eq!(matmul.input, ["y::a_shifted", "y::b_shifted"]);
    }

    #[test]
    fn a_conv_zero_point_per_channel_is_shaped_to_broadcast_over_the_weights() {
        let mut g = GraphProto {
            node: vec![node("ConvInteger", &["x", "w", "", "wz"], "y")],
            initializer: vec![initializer("w", &[8, 3, 3, 3]), initializer("wz", &[8])],
            ..Default::default()
        };
        rewrite_graph(&mut g);
        assert_eq!(ops(&g), ["Cast", "Cast", "Cast", "Constant", "Reshape", "Sub", "Conv", "Cast"]);
        let shape = &g.node[3].attribute[0].t.as_ref().unwrap().raw_data;
        let dims: Vec<i64> = shape.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(dims, [-1, 1, 1, 1]);
        assert_eq!(g.node.last().unwrap().output, ["y"]); // int32 result, as the op's
    }

    #[test]
    fn a_qlinear_product_with_scales_fed_at_run_time_stays() {
        let inputs = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"];
        let mut g = GraphProto { node: vec![node("QLinearMatMul", &inputs, "y")], ..Default::default() };
        rewrite_graph(&mut g);
        assert_eq!(ops(&g), ["QLinearMatMul"]);
        g.initializer = ["as", "az", "bs", "bz", "ys", "yz"].iter().map(|n| initializer(n, &[])).collect();
        rewrite_graph(&mut g);
        assert_eq!(ops(&g), ["DequantizeLinear", "DequantizeLinear", "MatMul", "QuantizeLinear"]);
    }
}
