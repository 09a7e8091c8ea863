//! The loss operators that tract-onnx lacks, `NegativeLogLikelihoodLoss` and
//! `SoftmaxCrossEntropyLoss`, rewritten in the file's graph as the standard ops that their ONNX
//! function bodies use: the target class's value gathered along axis 1, negated, weighted per
//! class, targets equal to `ignore_index` counted as weight 0, then reduced ('none', 'sum', or
//! 'mean': the weighted sum over the sum of the weights). `SoftmaxCrossEntropyLoss` is the same
//! loss over the log-softmax of its scores along axis 1, which it also outputs when asked.

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

use super::proto::{f32_constant, get_int, input, int64_constant, int_attr, ints_attr, plain, prefix};

/// Rewrites every loss node of the model's main graph.
pub(crate) fn rewrite(proto: &mut ModelProto) {
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version);
    if let Some(graph) = proto.graph.as_mut() {
        rewrite_graph(graph, opset);
    }
}

fn rewrite_graph(graph: &mut GraphProto, opset: i64) {
    if !graph.node.iter().any(|n| is_loss(n)) {
        return;
    }
    let mut nodes = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        if !is_loss(&node) {
            nodes.push(node);
            continue;
        }
        let mut b = Builder { prefix: prefix(&node), opset, nodes: Vec::new(), count: 0 };
        let softmax = node.op_type == "SoftmaxCrossEntropyLoss";
        let scores = if softmax {
            let wanted = node.output.get(1).filter(|o| !o.is_empty()).cloned();
            b.log_softmax(input(&node, 0), wanted)
        } else {
            input(&node, 0)
        };
        b.nll(&node, scores);
        nodes.extend(b.nodes);
    }
    graph.node = nodes;
}

fn is_loss(node: &NodeProto) -> bool {
    (node.domain.is_empty() || node.domain == "ai.onnx")
        && matches!(node.op_type.as_str(), "NegativeLogLikelihoodLoss" | "SoftmaxCrossEntropyLoss")
}

struct Builder {
    prefix: String,
    opset: i64,
    nodes: Vec<NodeProto>,
    count: usize,
}

impl Builder {
    /// A value or node name of its own.
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{}::{what}_{}", self.prefix, self.count)
    }

    fn op(&mut self, op: &str, inputs: Vec<String>, attrs: Vec<tract_onnx::pb::AttributeProto>, output: Option<String>) -> String {
        let out = output.unwrap_or_else(|| self.name(&op.to_lowercase()));
        let name = self.name(op);
        self.nodes.push(plain(name, op, inputs, out.clone(), attrs));
        out
    }

    fn int64s(&mut self, values: &[i64]) -> String {
        let (name, out) = (self.name("Constant"), self.name("ints"));
        self.nodes.push(int64_constant(name, out.clone(), values, Some(vec![values.len() as i64])));
        out
    }

    /// A float32 scalar cast to `like`'s type.
    fn scalar_like(&mut self, value: f32, like: &str) -> String {
        let (name, out) = (self.name("Constant"), self.name("float"));
        self.nodes.push(f32_constant(name, out.clone(), value));
        self.op("CastLike", vec![out, like.to_string()], vec![], None)
    }

    /// `Unsqueeze` / `Squeeze` on axis 1: axes an input from opset 13, an attribute before.
    fn on_axis_1(&mut self, op: &str, x: String) -> String {
        if self.opset >= 13 {
            let axes = self.int64s(&[1]);
            self.op(op, vec![x, axes], vec![], None)
        } else {
            self.op(op, vec![x], vec![ints_attr("axes", vec![1])], None)
        }
    }

    /// `ReduceMax` / `ReduceSum` over axis 1, kept: axes an input from opset 18 (ReduceSum:
    /// 13), an attribute before.
    fn reduce_axis_1(&mut self, op: &str, x: String) -> String {
        let input_from = if op == "ReduceSum" { 13 } else { 18 };
        if self.opset >= input_from {
            let axes = self.int64s(&[1]);
            self.op(op, vec![x, axes], vec![int_attr("keepdims", 1)], None)
        } else {
            self.op(op, vec![x], vec![ints_attr("axes", vec![1]), int_attr("keepdims", 1)], None)
        }
    }

    /// Log-softmax along axis 1. `LogSoftmax` takes one axis from opset 13; before, it
    /// flattened the trailing axes, so it is written out: `x - max - log(sum(exp(x - max)))`.
    fn log_softmax(&mut self, x: String, output: Option<String>) -> String {
        if self.opset >= 13 {
            return self.op("LogSoftmax", vec![x], vec![int_attr("axis", 1)], output);
        }
        let max = self.reduce_axis_1("ReduceMax", x.clone());
        let shifted = self.op("Sub", vec![x, max], vec![], None);
        let exp = self.op("Exp", vec![shifted.clone()], vec![], None);
        let sum = self.reduce_axis_1("ReduceSum", exp);
        let log = self.op("Log", vec![sum], vec![], None);
        self.op("Sub", vec![shifted, log], vec![], output)
    }

    /// The negative log-likelihood of `node`'s targets (input 1) in `scores` ([N, C, d...]),
    /// weighted by input 2 when given, written to `node`'s first output.
    fn nll(&mut self, node: &NodeProto, scores: String) {
        let reduction = node
            .attribute
            .iter()
            .find(|a| a.name == "reduction")
            .map_or("mean".to_string(), |a| String::from_utf8_lossy(&a.s).into_owned());
        let ignore = node.attribute.iter().any(|a| a.name == "ignore_index").then(|| get_int(node, "ignore_index", 0));
        let weight = Some(input(node, 2)).filter(|w| !w.is_empty());
        let output = node.output.first().cloned().unwrap_or_default();

        let target = self.on_axis_1("Unsqueeze", input(node, 1)); // [N, 1, d...]
        // Ignored targets gather class 0 and are masked out after.
        let (target, ignored) = match ignore {
            Some(ix) => {
                let wide = self.op("Cast", vec![target.clone()], vec![int_attr("to", 7)], None);
                let ix = self.int64s(&[ix]);
                let mask = self.op("Equal", vec![wide, ix], vec![], None);
                let zero = self.op("Sub", vec![target.clone(), target.clone()], vec![], None);
                let safe = self.op("Where", vec![mask.clone(), zero, target], vec![], None);
                (safe, Some(self.on_axis_1("Squeeze", mask)))
            }
            None => (target, None),
        };
        let picked = self.op("GatherElements", vec![scores.clone(), target.clone()], vec![int_attr("axis", 1)], None);
        let picked = self.on_axis_1("Squeeze", picked); // [N, d...]
        let mut loss = self.op("Neg", vec![picked], vec![], None);
        // Each element's weight: the class weight of its target, 0 where ignored; `None`: all 1.
        let mut weights = match &weight {
            Some(w) => {
                let classes = self.on_axis_1("Squeeze", target);
                Some(self.op("Gather", vec![w.clone(), classes], vec![], None))
            }
            None => None,
        };
        if let Some(mask) = ignored {
            let zero = self.scalar_like(0.0, &scores);
            loss = self.op("Where", vec![mask.clone(), zero.clone(), loss], vec![], None);
            let kept = match weights.take() {
                Some(w) => w,
                None => self.scalar_like(1.0, &scores),
            };
            weights = Some(self.op("Where", vec![mask, zero, kept], vec![], None));
        }
        if let (Some(w), true) = (&weights, weight.is_some()) {
            loss = self.op("Mul", vec![loss, w.clone()], vec![], None);
        }
        let all = || vec![int_attr("keepdims", 0)];
        match reduction.as_str() {
            "none" => {
                self.op("Identity", vec![loss], vec![], Some(output));
            }
            "sum" => {
                self.op("ReduceSum", vec![loss], all(), Some(output));
            }
            _ => match weights {
                Some(w) => {
                    let total = self.op("ReduceSum", vec![loss], all(), None);
                    let count = self.op("ReduceSum", vec![w], all(), None);
                    self.op("Div", vec![total, count], vec![], Some(output));
                }
                None => {
                    self.op("ReduceMean", vec![loss], all(), Some(output));
                }
            },
        }
    }
}
