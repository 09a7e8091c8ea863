//! onnxruntime's quantized contrib operators (domain `com.microsoft`), which its static
//! QOperator quantization writes (`QLinearAdd`, `QLinearConcat`, ...), rewritten in the file's
//! graph as the standard ops they stand for: each quantized input dequantized, the float op,
//! the result quantized to the output's scale and zero point. onnxruntime's own reference for
//! these ops computes the same in float.

use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto};

use super::proto::{input, int_attr, plain, prefix};

/// How one contrib op maps onto a float op.
struct Form {
    /// The standard op computed in float.
    float_op: &'static str,
    /// Positions of the (x, scale, zero point) triples among the inputs; `None`: every triple
    /// from `variadic_from` on.
    triples: &'static [usize],
    variadic_from: Option<usize>,
    /// Positions of the output's scale and zero point.
    output: [usize; 2],
    /// Attributes that only the contrib op has.
    drop_attrs: &'static [&'static str],
}

fn form(op_type: &str) -> Option<Form> {
    let unary = |float_op| Form { float_op, triples: &[0], variadic_from: None, output: [3, 4], drop_attrs: &["channels_last"] };
    Some(match op_type {
        "QLinearAdd" => Form { float_op: "Add", triples: &[0, 3], variadic_from: None, output: [6, 7], drop_attrs: &[] },
        "QLinearMul" => Form { float_op: "Mul", triples: &[0, 3], variadic_from: None, output: [6, 7], drop_attrs: &[] },
        "QLinearConcat" => Form { float_op: "Concat", triples: &[], variadic_from: Some(2), output: [0, 1], drop_attrs: &[] },
        "QLinearSigmoid" => unary("Sigmoid"),
        "QLinearLeakyRelu" => unary("LeakyRelu"),
        "QLinearGlobalAveragePool" => unary("GlobalAveragePool"),
        "QLinearAveragePool" => unary("AveragePool"),
        "QLinearSoftmax" => Form { drop_attrs: &["opset"], ..unary("Softmax") },
        _ => return None,
    })
}

/// Rewrites every contrib op of the model's main graph that has a standard form. One in the
/// `channels_last` layout, which the standard ops lack, is left as it is (and fails the load,
/// named).
pub(crate) fn rewrite(proto: &mut ModelProto) {
    if let Some(graph) = proto.graph.as_mut() {
        rewrite_graph(graph);
    }
}

fn channels_last(node: &NodeProto) -> bool {
    node.attribute.iter().any(|a| a.name == "channels_last" && a.i != 0)
}

fn rewrite_graph(graph: &mut GraphProto) {
    let mut nodes = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        if node.domain == "com.microsoft" && node.op_type == "QGemm" {
            nodes.extend(expand_qgemm(&node, graph));
            continue;
        }
        let Some(form) = (node.domain == "com.microsoft").then(|| form(&node.op_type)).flatten() else {
            nodes.push(node);
            continue;
        };
        if channels_last(&node) {
            nodes.push(node);
            continue;
        }
        nodes.extend(expand(&node, &form));
    }
    graph.node = nodes;
}

fn expand(node: &NodeProto, form: &Form) -> Vec<NodeProto> {
    let prefix = prefix(node);
    let triples: Vec<usize> = match form.variadic_from {
        Some(from) => (from..node.input.len()).step_by(3).collect(),
        None => form.triples.to_vec(),
    };
    let mut out = Vec::with_capacity(triples.len() + 2);
    let mut float_inputs = Vec::with_capacity(triples.len());
    for (k, &ix) in triples.iter().enumerate() {
        let name = format!("{prefix}::dequantized_{k}");
        out.push(plain(
            format!("{prefix}::dequantize_{k}"),
            "DequantizeLinear",
            vec![input(node, ix), input(node, ix + 1), input(node, ix + 2)],
            name.clone(),
            vec![],
        ));
        float_inputs.push(name);
    }
    let result = format!("{prefix}::float");
    let attrs: Vec<AttributeProto> =
        node.attribute.iter().filter(|a| !form.drop_attrs.contains(&a.name.as_str())).cloned().collect();
    out.push(plain(format!("{prefix}::{}", form.float_op), form.float_op, float_inputs, result.clone(), attrs));
    out.push(plain(
        format!("{prefix}::quantize"),
        "QuantizeLinear",
        vec![result, input(node, form.output[0]), input(node, form.output[1])],
        node.output.first().cloned().unwrap_or_default(),
        vec![],
    ));
    out
}

/// `QGemm(A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale, y_zp])`: a `Gemm` of the
/// dequantized A and B, plus the int32 bias C dequantized at `a_scale * b_scale`; the result
/// quantized when the node gives an output scale, float otherwise. A scale of B per output
/// column dequantizes along B's column axis.
fn expand_qgemm(node: &NodeProto, graph: &GraphProto) -> Vec<NodeProto> {
    let prefix = prefix(node);
    let trans_b = node.attribute.iter().any(|a| a.name == "transB" && a.i != 0);
    let per_column = graph
        .initializer
        .iter()
        .find(|t| t.name == input(node, 4))
        .is_some_and(|t| t.dims.iter().product::<i64>() > 1);
    let axis = |i: i64| int_attr("axis", i);
    let column_axis = if per_column { vec![axis(if trans_b { 0 } else { 1 })] } else { vec![] };
    let mut out = vec![
        plain(format!("{prefix}::dequantize_a"), "DequantizeLinear", vec![input(node, 0), input(node, 1), input(node, 2)], format!("{prefix}::a"), vec![]),
        plain(format!("{prefix}::dequantize_b"), "DequantizeLinear", vec![input(node, 3), input(node, 4), input(node, 5)], format!("{prefix}::b"), column_axis),
    ];
    let mut gemm_inputs = vec![format!("{prefix}::a"), format!("{prefix}::b")];
    if !input(node, 6).is_empty() {
        out.push(plain(format!("{prefix}::bias_scale"), "Mul", vec![input(node, 1), input(node, 4)], format!("{prefix}::c_scale"), vec![]));
        let c_axis = if per_column { vec![axis(0)] } else { vec![] };
        out.push(plain(format!("{prefix}::dequantize_c"), "DequantizeLinear", vec![input(node, 6), format!("{prefix}::c_scale")], format!("{prefix}::c"), c_axis));
        gemm_inputs.push(format!("{prefix}::c"));
    }
    let quantized = !input(node, 7).is_empty();
    let result = if quantized { format!("{prefix}::float") } else { node.output.first().cloned().unwrap_or_default() };
    let attrs = node.attribute.iter().filter(|a| ["alpha", "transA", "transB"].contains(&a.name.as_str())).cloned().collect();
    out.push(plain(format!("{prefix}::Gemm"), "Gemm", gemm_inputs, result.clone(), attrs));
    if quantized {
        out.push(plain(
            format!("{prefix}::quantize"),
            "QuantizeLinear",
            vec![result, input(node, 7), input(node, 8)],
            node.output.first().cloned().unwrap_or_default(),
            vec![],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str]) -> NodeProto {
        NodeProto {
            name: "n".into(),
            op_type: op.into(),
            domain: "com.microsoft".into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            ..Default::default()
        }
    }

    #[test]
    fn qlinear_add_becomes_dequantize_add_quantize() {
        let n = node("QLinearAdd", &["a", "as", "az", "b", "bs", "bz", "cs", "cz"]);
        let nodes = expand(&n, &form("QLinearAdd").unwrap());
        let ops: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["DequantizeLinear", "DequantizeLinear", "Add", "QuantizeLinear"]);
        assert_eq!(nodes[1].input, ["b", "bs", "bz"]);
        assert_eq!(nodes[2].input, ["n::dequantized_0", "n::dequantized_1"]);
        assert_eq!(nodes[3].input, ["n::float", "cs", "cz"]);
        assert_eq!(nodes[3].output, ["y"]);
    }

    #[test]
    fn qlinear_concat_takes_every_triple_and_keeps_its_axis() {
        let mut n = node("QLinearConcat", &["ys", "yz", "x0", "s0", "z0", "x1", "s1", ""]);
        n.attribute.push(AttributeProto { name: "axis".into(), i: 1, ..Default::default() });
        let nodes = expand(&n, &form("QLinearConcat").unwrap());
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[1].input, ["x1", "s1"]); // the empty zero point dropped
        assert_eq!(nodes[2].op_type, "Concat");
        assert_eq!(nodes[2].attribute[0].name, "axis");
        assert_eq!(nodes[3].input, ["n::float", "ys", "yz"]);
    }

    #[test]
    fn qgemm_dequantizes_its_bias_at_the_product_of_scales_and_quantizes_when_asked() {
        let mut n = node("QGemm", &["a", "as", "az", "b", "bs", "bz", "c", "ys", "yz"]);
        n.attribute.push(AttributeProto { name: "transB".into(), r#type: 2, i: 1, ..Default::default() });
        let nodes = expand_qgemm(&n, &GraphProto::default());
        let ops: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["DequantizeLinear", "DequantizeLinear", "Mul", "DequantizeLinear", "Gemm", "QuantizeLinear"]);
        assert_eq!(nodes[2].input, ["as", "bs"]);
        assert_eq!(nodes[3].input, ["c", "n::c_scale"]);
        assert_eq!(nodes[4].attribute[0].name, "transB");
        // Without an output scale the Gemm writes the node's float output itself.
        let n = node("QGemm", &["a", "as", "az", "b", "bs", "bz"]);
        let nodes = expand_qgemm(&n, &GraphProto::default());
        assert_eq!(nodes.last().map(|n| (n.op_type.as_str(), n.output[0].as_str())), Some(("Gemm", "y")));
    }
}
